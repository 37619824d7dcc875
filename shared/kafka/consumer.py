"""The consumer runner every processor uses.

At-least-once from Kafka, effectively-once in the database: each event is applied in one DB
transaction together with its `processed_events` row, and the Kafka offset is committed only
after that transaction (and any dead-letter send) is durable. A redelivered event finds its row
and is skipped. Nothing is skipped silently: a message that cannot be applied goes to
`<topic>.dlq` with the reason in its headers.
"""

from __future__ import annotations

import hashlib
import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from types import FrameType
from typing import Any, Protocol

from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import CommitFailedError, KafkaError
from kafka.structs import OffsetAndMetadata
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from shared.clock import Clock
from shared.contracts.envelope import EventCodec, UndecodableMessage
from shared.contracts.topics import dead_letter_topic
from shared.db import scrub_database, take_scrub_request
from shared.kafka.producer import STREAM_VERSION_HEADER, EventPublisher, NotAcknowledged, OutgoingRecord
from shared.kafka.progress import Progress, StreamGap, StreamStep
from shared.kafka.security import client_options

log = logging.getLogger(__name__)

class Decoded(Protocol):
    """What a decoder makes of a record: anything with a stable id (for dedup) and a type."""

    @property
    def id(self) -> str: ...

    @property
    def type(self) -> str: ...


# Applies one decoded message to the service's state, on a connection inside the runner's
# transaction. A handler touches nothing but that connection (e-mail and the like go through an
# outbox table): its work may be rolled back and done again, batched or one message at a time.
Handler = Callable[[Any, Connection], None]
# Turns a record into a message; raises UndecodableMessage for one that never will be.
Decoder = Callable[[ConsumerRecord], Decoded]


class RejectedMessage(Exception):
    """Raised by a handler for a message the domain refuses: dead-lettered at once, no retries."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass
class RunnerStats:
    applied: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    retries: int = 0
    batches: int = 0
    # Partitions found shorter than what this consumer had already read: the broker lost events.
    log_truncations: int = 0
    # Events held back because versions before them in their stream were missing.
    held: int = 0
    # Polls that failed because the broker was unreachable (waited out, never fatal).
    broker_errors: int = 0
    reasons: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class DeadLetter:
    reason: str
    detail: str
    exception_type: str


def _is_transient(error: BaseException) -> bool:
    """A database that cannot be reached is no fault of the message: wait, don't dead-letter."""
    return isinstance(error, DBAPIError) and (error.connection_invalidated or
                                              type(error).__name__ in ("OperationalError", "InterfaceError"))


class StallWatch:
    """Partitions read no further while records wait below the high-water mark. Tansu has left
    holes in a partition after a kill mid-write, and a consumer once sat still at one for good
    with nothing in its logs; behind-and-not-moving is the signal, whatever the cause."""

    def __init__(self) -> None:
        # (topic, partition) -> (position last seen, records behind, monotonic time it last moved)
        self._seen: dict[tuple[str, int], tuple[int, int, float]] = {}

    def observe(self, key: tuple[str, int], position: int, behind: int, at: float) -> None:
        last = self._seen.get(key)
        # Stalled only from the first observation behind at this position: quiet time at the end doesn't count.
        still = last is not None and last[0] == position and last[1] > 0 and behind > 0
        since = last[2] if still and last is not None else at
        self._seen[key] = (position, behind, since)

    def stalled(self, at: float) -> dict[tuple[str, int], tuple[int, float]]:
        """Per partition still behind: (records behind, seconds without moving)."""
        return {key: (behind, at - since) for key, (_, behind, since) in self._seen.items() if behind > 0}


class ConsumerRunner:
    def __init__(self, *, consumer_name: str, topics: list[str], bootstrap: str, engine: Engine,
                 codec: EventCodec | None, handler: Handler, progress: Progress, dlq: EventPublisher,
                 clock: Clock, max_attempts: int = 3, retry_backoff_s: float = 0.1,
                 session_timeout_ms: int = 6000, fetch_max_wait_ms: int = 50, poll_timeout_ms: int = 200,
                 max_poll_records: int = 500, decoder: Decoder | None = None,
                 heartbeat_interval_s: float = 1.0,
                 idle_task: Callable[[KafkaConsumer], None] | None = None) -> None:
        self.consumer_name = consumer_name
        self.topics = topics
        self._bootstrap = bootstrap
        self._engine = engine
        if decoder is None:
            if codec is None:
                raise ValueError("a codec or a decoder is needed")
            if not codec.verifies:
                # Whoever can write a topic could otherwise make anyone an IB'er (issue 15).
                raise ValueError("a consumer of service events needs a codec that verifies their signatures")
            event_codec = codec

            def decoder(record: ConsumerRecord) -> Decoded:
                # A forged record (unsigned, signed by another service or with a key not
                # trusted) raises UndecodableMessage: dead-lettered with its reason.
                return event_codec.decode_record(record.topic, record.partition, record.offset, record.key,
                                                 record.value, record.headers)
        self._decode: Decoder = decoder
        # Run when a poll brought nothing and every assigned partition is read to its end (the
        # intake's retention sweep on a broker that does not enforce retention.ms).
        self._idle_task = idle_task
        self._handler = handler
        self._progress = progress
        self._dlq = dlq
        self._clock = clock
        self._max_attempts = max_attempts
        self._retry_backoff_s = retry_backoff_s
        self._session_timeout_ms = session_timeout_ms
        self._fetch_max_wait_ms = fetch_max_wait_ms
        self._poll_timeout_ms = poll_timeout_ms
        self._max_poll_records = max_poll_records
        self._heartbeat_interval_s = heartbeat_interval_s
        self.stats = RunnerStats()
        # For /metrics and /healthz, written by the consumer thread only.
        self.partition_lag: dict[tuple[str, int], int] = {}
        self.stalls = StallWatch()
        self.last_loop_at = time.monotonic()
        self.stop_event = threading.Event()
        self._consumer: KafkaConsumer | None = None

    @property
    def dlq_publisher(self) -> EventPublisher:
        return self._dlq

    def open_gaps(self) -> list[StreamGap]:
        """Streams this consumer holds back because versions before what it saw are missing."""
        with self._engine.connect() as connection:
            return self._progress.open_gaps(connection)

    def oldest_gap_age_s(self, gaps: list[StreamGap]) -> float:
        now = self._clock.now()
        return max(((now - gap.since).total_seconds() for gap in gaps), default=0.0)

    def _connect(self, wait_seconds: float = 60.0) -> KafkaConsumer:
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                return KafkaConsumer(
                    bootstrap_servers=self._bootstrap,
                    group_id=self.consumer_name,
                    client_id=self.consumer_name,
                    enable_auto_commit=False,
                    auto_offset_reset="earliest",
                    session_timeout_ms=self._session_timeout_ms,
                    heartbeat_interval_ms=max(100, self._session_timeout_ms // 6),
                    max_poll_records=self._max_poll_records,
                    fetch_max_wait_ms=self._fetch_max_wait_ms,
                    **client_options(),
                )
            except KafkaError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def run(self) -> RunnerStats:
        """Consume until `stop_event` is set, then commit what is done and leave the group."""
        consumer = self._consumer = self._connect()
        consumer.subscribe(self.topics)
        log.info("consumer started", extra={"consumer": self.consumer_name, "topic": ",".join(self.topics)})
        last_heartbeat = 0.0
        try:
            while not self.stop_event.is_set():
                self.last_loop_at = time.monotonic()
                try:
                    batch = consumer.poll(timeout_ms=self._poll_timeout_ms)
                except KafkaError as error:
                    # The broker went away under a request (a coordinator lookup, found by the
                    # chaos run): wait for it to come back. Exiting would stop every process the
                    # run command started with this one; the same consumer reconnects.
                    self.stats.broker_errors += 1
                    log.warning("broker unreachable, polling again", extra={"consumer": self.consumer_name,
                                                                          "reason": type(error).__name__})
                    self.stop_event.wait(0.5)
                    continue
                if batch:
                    self._process_batch(consumer, batch)
                elif self._idle_task is not None and self._caught_up(consumer):
                    self._idle_task(consumer)
                if time.monotonic() - last_heartbeat >= self._heartbeat_interval_s and not self.stop_event.is_set():
                    self._heartbeat(consumer)
                    last_heartbeat = time.monotonic()
        finally:
            consumer.close(autocommit=False)
            log.info("consumer stopped", extra={"consumer": self.consumer_name,
                                                "count": self.stats.applied})
        return self.stats

    @staticmethod
    def _caught_up(consumer: KafkaConsumer) -> bool:
        assigned = consumer.assignment()
        for partition in assigned:
            high_water = consumer.highwater(partition)
            if high_water is None or consumer.position(partition) < high_water:
                return False
        return bool(assigned)

    def _heartbeat(self, consumer: KafkaConsumer) -> None:
        """Record, also when idle, how far each assigned partition is read and its high-water
        mark, so that readers in other processes can tell "caught up" from "processor gone"."""
        now = self._clock.now()
        try:
            with self._engine.begin() as connection:
                saved = self._progress.positions_of(connection)
                for partition in consumer.assignment():
                    high_water = consumer.highwater(partition)
                    if high_water is None:
                        continue  # no fetch answered yet for this partition
                    position = consumer.position(partition)
                    self.partition_lag[(partition.topic, partition.partition)] = max(0, high_water - position)
                    self.stalls.observe((partition.topic, partition.partition), position,
                                        max(0, high_water - position), time.monotonic())
                    saved_next = saved.get((partition.topic, partition.partition), (0, None))[0]
                    if max(position, saved_next) > high_water:
                        self._log_truncated(consumer, connection, partition, max(position, saved_next),
                                            high_water, now)
                        continue
                    self._progress.advance(connection, partition.topic, partition.partition,
                                           position, high_water, now)
        except Exception as error:  # a heartbeat is best effort; the next one tries again
            log.warning("heartbeat not recorded", extra={"consumer": self.consumer_name,
                                                         "reason": type(error).__name__})

    def _log_truncated(self, consumer: KafkaConsumer, connection: Connection, partition: TopicPartition,
                       read_up_to: int, high_water: int, now: datetime) -> None:
        """The partition ends before what we already read: the broker lost events (a storage
        failure, an unclean leader election, a restore). Reading on from our position would
        skip whatever the broker writes at the reused offsets, so read the partition again from
        its start; the processed-events table skips what was applied already. Until that read
        is done the position row shows the lag, so the API fails closed."""
        self.stats.log_truncations += 1
        log.error("log ends before this consumer's position: events were lost by the broker; re-reading",
                  extra={"consumer": self.consumer_name, "topic": partition.topic,
                         "partition": partition.partition, "offset": read_up_to, "count": high_water})
        self._progress.rewind(connection, partition.topic, partition.partition, 0, high_water, now)
        consumer.seek_to_beginning(partition)

    def _process_batch(self, consumer: KafkaConsumer,
                       batch: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        to_commit: dict[TopicPartition, OffsetAndMetadata] = {}
        for partition, records in batch.items():
            if self.stop_event.is_set():
                break
            next_offset = self._process_partition(records, consumer.highwater(partition))
            if next_offset is not None:
                to_commit[partition] = OffsetAndMetadata(next_offset, "", -1)
        # Dead letters are acknowledged one by one (_dead_letter) before their offsets are committed.
        if to_commit:
            try:
                consumer.commit(to_commit)
            except (CommitFailedError, KafkaError) as error:
                # The group rebalanced; the new owner re-reads and the processed table dedups.
                log.warning("offset commit failed", extra={"consumer": self.consumer_name,
                                                           "reason": type(error).__name__})
        self.stats.batches += 1

    def _process_partition(self, records: list[ConsumerRecord], high_water: int | None) -> int | None:
        """Apply one partition's records; returns the offset to commit next (None: nothing done)."""
        if self._apply_together(records, high_water):
            return int(records[-1].offset) + 1
        # Something in the batch needs care: one by one, with retries and dead letters.
        next_offset = None
        for record in records:
            if self.stop_event.is_set() or not self._process_record(record, high_water):
                break
            next_offset = int(record.offset) + 1
        return next_offset

    def _apply_together(self, records: list[ConsumerRecord], high_water: int | None) -> bool:
        """The fast path: a whole partition batch in one transaction (a transaction per event
        costs more than the event). False, with nothing written, when anything in it needs the
        careful path: an undecodable message, a handler error, an outage."""
        try:
            decoded = [(record, self._decode(record)) for record in records]
        except Exception:
            return False
        now = self._clock.now()
        applied = duplicates = 0
        try:
            with self._engine.begin() as connection:
                for record, recorded in decoded:
                    step = self._step(connection, record, recorded, now)
                    if step is not StreamStep.APPLY:
                        duplicates += step is StreamStep.SEEN
                        continue
                    self._handler(recorded, connection)
                    self._done(connection, record, recorded, now)
                    applied += 1
                last = records[-1]
                self._progress.advance(connection, last.topic, last.partition, last.offset + 1,
                                       high_water, now)
                scrub = take_scrub_request(connection)
        except Exception as error:
            log.info("batch falls back to one event at a time", extra={
                "consumer": self.consumer_name, "topic": records[0].topic,
                "partition": records[0].partition, "count": len(records), "reason": type(error).__name__})
            return False
        if scrub is not None:
            scrub_database(self._engine, *scrub)
        self.stats.applied += applied
        self.stats.duplicates += duplicates
        return True

    def _process_record(self, record: ConsumerRecord, high_water: int | None) -> bool:
        """Apply or dead-letter one record. False only when asked to stop during an outage."""
        ids: dict[str, object] = {"topic": record.topic, "partition": record.partition,
                                  "offset": record.offset, "consumer": self.consumer_name}
        attempt = 0
        while True:
            try:
                recorded = self._decode(record)
                ids["event_id"] = recorded.id
                ids["event_type"] = recorded.type
                attempt += 1
                self._apply(record, recorded, high_water)
                return True
            except (UndecodableMessage, RejectedMessage) as error:
                self._dead_letter(record, DeadLetter(error.reason, error.detail, type(error).__name__),
                                  high_water)
                return True
            except Exception as error:
                if _is_transient(error) or "event_id" not in ids:
                    # The database or key store is unreachable: no fault of the message.
                    log.warning("dependency unavailable, waiting",
                                extra={**ids, "reason": type(error).__name__})
                    if self.stop_event.wait(1.0):
                        return False
                    attempt = 0
                    continue
                if attempt >= self._max_attempts:
                    self._dead_letter(record, DeadLetter(
                        "handler-failed", f"failed {attempt} times", type(error).__name__), high_water)
                    log.error("event dead-lettered after retries", exc_info=error,
                              extra={**ids, "attempt": attempt})
                    return True
                self.stats.retries += 1
                log.warning("handler failed, retrying", extra={**ids, "attempt": attempt,
                                                               "reason": type(error).__name__})
                time.sleep(self._retry_backoff_s * attempt)

    def _apply(self, record: ConsumerRecord, recorded: Decoded, high_water: int | None) -> None:
        now = self._clock.now()
        with self._engine.begin() as connection:
            step = self._step(connection, record, recorded, now)
            if step is StreamStep.SEEN:
                self.stats.duplicates += 1
            elif step is StreamStep.APPLY:
                self._handler(recorded, connection)
                self._done(connection, record, recorded, now)
                self.stats.applied += 1
            self._progress.advance(connection, record.topic, record.partition, record.offset + 1,
                                   high_water, now)
            scrub = take_scrub_request(connection)
        if scrub is not None:
            scrub_database(self._engine, *scrub)

    def _step(self, connection: Connection, record: ConsumerRecord, recorded: Decoded, now: datetime) -> StreamStep:
        """Apply, skip as seen, or hold back: an event whose stream has versions missing before
        it waits for them (their producer publishes them again) instead of being applied out of
        order or the gap being skipped."""
        if self._progress.already_processed(connection, recorded.id):
            return StreamStep.SEEN
        version = stream_version(record)
        if version is None:
            return StreamStep.APPLY  # published before streams were versioned
        step = self._progress.stream_step(connection, record.topic, _stream_key(record), version, now)
        if step is StreamStep.HOLD:
            self.stats.held += 1
            log.error("event held back: earlier events of its stream are missing from the log", extra={
                "consumer": self.consumer_name, "topic": record.topic, "partition": record.partition,
                "offset": record.offset, "event_id": recorded.id, "count": version})
        return step

    def _done(self, connection: Connection, record: ConsumerRecord, recorded: Decoded, now: datetime) -> None:
        self._progress.mark_processed(connection, recorded.id, record.topic, record.partition, record.offset, now)
        version = stream_version(record)
        if version is not None:
            self._progress.stream_applied(connection, record.topic, _stream_key(record), version, now)

    def _dead_letter(self, record: ConsumerRecord, letter: DeadLetter, high_water: int | None) -> None:
        headers = list(record.headers or []) + [
            ("dlq-reason", letter.reason.encode()),
            ("dlq-detail", letter.detail.encode()),
            ("dlq-exception-type", letter.exception_type.encode()),
            ("dlq-source-topic", record.topic.encode()),
            ("dlq-source-partition", str(record.partition).encode()),
            ("dlq-source-offset", str(record.offset).encode()),
            ("dlq-consumer", self.consumer_name.encode()),
            ("dlq-time", self._clock.now().isoformat().encode()),
        ]
        # Wait for the acknowledgement at a real offset: an unacknowledged dead letter would be a
        # silent loss. The broker being away is no reason to move on: try until it takes it.
        letter_record = OutgoingRecord(dead_letter_topic(record.topic), record.key, record.value, headers)
        while True:
            try:
                self._dlq.send_record(letter_record)
                break
            except NotAcknowledged:
                if self.stop_event.wait(1.0):
                    raise
        with self._engine.begin() as connection:
            version = stream_version(record)
            now = self._clock.now()
            # A dead letter takes its place in the stream: the stream goes on after it.
            if version is not None and self._progress.stream_step(
                    connection, record.topic, _stream_key(record), version, now) is StreamStep.APPLY:
                self._progress.stream_applied(connection, record.topic, _stream_key(record), version, now)
            self._progress.advance(connection, record.topic, record.partition, record.offset + 1,
                                   high_water, now, dead_lettered=1)
        self.stats.dead_lettered += 1
        self.stats.reasons[letter.reason] = self.stats.reasons.get(letter.reason, 0) + 1
        log.warning("message dead-lettered", extra={
            "topic": record.topic, "partition": record.partition, "offset": record.offset,
            "consumer": self.consumer_name, "reason": letter.reason})


def stream_version(record: ConsumerRecord) -> int | None:
    for name, value in record.headers or ():
        if name == STREAM_VERSION_HEADER:
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _stream_key(record: ConsumerRecord) -> str:
    if not record.key:
        return ""
    # Keys are ids (a branch's, a pupil's); a longer one is named by its hash.
    return record.key.hex() if len(record.key) <= 64 else hashlib.sha256(record.key).hexdigest()


def stop_on_signals(runner: ConsumerRunner) -> None:
    """SIGTERM and SIGINT finish the message in hand, commit, and leave the group."""

    def _stop(signum: int, _frame: FrameType | None) -> None:
        log.info("stopping on signal", extra={"consumer": runner.consumer_name, "status": signum})
        runner.stop_event.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
