"""The producer every service publishes with: acks from all in-sync replicas, idempotent, and a
publisher around it that only believes an acknowledgement with a real offset and heals itself."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError, KafkaTimeoutError

from shared.contracts.envelope import EncodedEvent
from shared.kafka.security import client_options

log = logging.getLogger(__name__)

Headers = list[tuple[str, bytes]]
# The Kafka header carrying an event's version in its stream (topic and key), set by relays.
STREAM_VERSION_HEADER = "samenveilig-stream-version"
# A flush that timed out: not one record of the round resolved.
ROUND_TIMED_OUT = "round-timed-out"


def make_producer(bootstrap: str, client_id: str, wait_seconds: float = 30.0,
                  **overrides: Any) -> KafkaProducer:
    config: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "client_id": client_id,
        "acks": "all",
        # kafka-python's idempotent producer works on Tansu (aiokafka's does not: defect 2).
        "enable_idempotence": True,
        "linger_ms": 1,
        "retries": 10,
        "request_timeout_ms": 15_000,
        **client_options(),
    }
    config.update(overrides)
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            return KafkaProducer(**config)
        except KafkaError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@dataclass(frozen=True)
class OutgoingRecord:
    topic: str
    key: bytes | None
    value: bytes
    headers: Headers


@dataclass(frozen=True)
class Acknowledged:
    partition: int
    offset: int


class NotAcknowledged(Exception):
    """The broker did not confirm the record at a real offset: it must be sent again."""


@dataclass
class PublisherHealth:
    """What /healthz and /metrics report about a publisher."""

    acknowledged: int = 0
    # Acks without an offset: Tansu answers a retry whose first attempt it lost halfway with
    # DUPLICATE_SEQUENCE_NUMBER, which kafka-python reports as success at offset -1.
    unconfirmed: int = 0
    failures: int = 0
    consecutive_failures: int = 0
    recreated: int = 0
    fatal: bool = False
    last_acknowledged_at: float | None = None  # time.time()


class EventPublisher:
    """Sends records and waits for the broker's acknowledgement.

    An acknowledgement counts only with an offset >= 0; anything else raises `NotAcknowledged`
    (or is reported as None), so the caller keeps the record and sends it again. A producer that
    is in a fatal state (kafka-python's idempotent producer after an `OutOfOrderSequenceNumber`
    on a broker that gave its id to another producer), that failed `recreate_after` rounds in
    a row, or whose round timed out whole (after a broker came back without its producer state,
    kafka-python resets its sequence and retries for good), is closed and replaced by a new one
    (a new producer id) when a factory is given;
    without one the failure stays visible in `health.fatal`."""

    def __init__(self, producer: KafkaProducer | None = None, *,
                 factory: Callable[[], KafkaProducer] | None = None, recreate_after: int = 3,
                 send_timeout_s: float = 30.0) -> None:
        if producer is None and factory is None:
            raise ValueError("a producer or a factory is needed")
        self._factory = factory
        self._producer = producer if producer is not None else factory()  # type: ignore[misc]
        self._recreate_after = recreate_after
        # How long one round of sends may wait for its acknowledgements.
        self._send_timeout_s = send_timeout_s
        self._lock = threading.Lock()
        self.health = PublisherHealth()

    @classmethod
    def connect(cls, bootstrap: str, client_id: str, send_timeout_s: float = 30.0, **overrides: Any
                ) -> EventPublisher:
        return cls(factory=lambda: make_producer(bootstrap, client_id, **overrides), send_timeout_s=send_timeout_s)

    @property
    def producer(self) -> KafkaProducer:
        return self._producer

    def send_records(self, records: Sequence[OutgoingRecord], timeout_s: float | None = None
                     ) -> list[Acknowledged | None]:
        """Send all, wait for all; per record its acknowledgement, or None if it must be resent."""
        timeout_s = timeout_s if timeout_s is not None else self._send_timeout_s
        with self._lock:
            self._heal()
            try:
                futures = [self._producer.send(r.topic, key=r.key, value=r.value, headers=r.headers)
                           for r in records]
                self._producer.flush(timeout=timeout_s)
            except KafkaError as error:
                self._failed(ROUND_TIMED_OUT if isinstance(error, KafkaTimeoutError) else type(error).__name__)
                return [None] * len(records)
            results: list[Acknowledged | None] = []
            failure: str | None = None
            for future in futures:
                try:
                    metadata = future.get(timeout=timeout_s)
                except KafkaError as error:
                    failure = failure or type(error).__name__
                    results.append(None)
                    continue
                if metadata.offset is None or metadata.offset < 0:
                    self.health.unconfirmed += 1
                    failure = failure or "acknowledged-without-offset"
                    results.append(None)
                    continue
                results.append(Acknowledged(metadata.partition, metadata.offset))
            acknowledged = sum(result is not None for result in results)
            self.health.acknowledged += acknowledged
            if acknowledged:
                self.health.last_acknowledged_at = time.time()
            if failure is None:
                self.health.consecutive_failures = 0
            else:
                self._failed(failure)
            return results

    def send_record(self, record: OutgoingRecord, timeout_s: float | None = None) -> Acknowledged:
        result = self.send_records([record], timeout_s)[0]
        if result is None:
            raise NotAcknowledged(record.topic)
        return result

    def publish(self, encoded: EncodedEvent, timeout_s: float = 15.0) -> tuple[int, int]:
        """Returns (partition, offset) once the broker has the event."""
        ack = self.send_record(_outgoing(encoded), timeout_s)
        return ack.partition, ack.offset

    def publish_all(self, events: list[EncodedEvent], timeout_s: float = 15.0) -> list[tuple[int, int]]:
        results = self.send_records([_outgoing(e) for e in events], timeout_s)
        if any(result is None for result in results):
            raise NotAcknowledged(f"{sum(r is None for r in results)} of {len(results)} not acknowledged")
        return [(r.partition, r.offset) for r in results if r is not None]

    def close(self) -> None:
        with self._lock:
            self._producer.close(timeout=5)

    def _failed(self, reason: str) -> None:
        self.health.failures += 1
        self.health.consecutive_failures += 1
        if reason == ROUND_TIMED_OUT:  # nothing resolved in timeout_s: waiting longer will not help
            self.health.consecutive_failures = max(self.health.consecutive_failures, self._recreate_after)
        self.health.fatal = _is_fatal(self._producer)
        log.warning("publish not acknowledged, will retry", extra={
            "reason": reason, "attempt": self.health.consecutive_failures})

    def _heal(self) -> None:
        fatal = _is_fatal(self._producer)
        self.health.fatal = fatal
        if self._factory is None:
            return
        if not fatal and self.health.consecutive_failures < self._recreate_after:
            return
        log.warning("recreating the producer", extra={
            "reason": "fatal" if fatal else "repeated-failures", "count": self.health.recreated + 1})
        try:
            self._producer.close(timeout=1)
        except Exception as error:  # a broken producer may fail to close; it is dropped anyway
            log.info("old producer did not close cleanly", extra={"reason": type(error).__name__})
        self._producer = self._factory()
        self.health.recreated += 1
        self.health.consecutive_failures = 0
        self.health.fatal = False


def _outgoing(encoded: EncodedEvent) -> OutgoingRecord:
    return OutgoingRecord(encoded.topic, encoded.key, encoded.value, list(encoded.headers))


def _is_fatal(producer: KafkaProducer) -> bool:
    # kafka-python keeps the idempotent producer's state in its transaction manager; once in
    # FATAL_ERROR every send fails until the producer is replaced.
    manager = getattr(producer, "_transaction_manager", None)
    return bool(manager is not None and manager.has_fatal_error())
