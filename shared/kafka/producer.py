"""The producer every service publishes with: acks from all in-sync replicas, idempotent."""

from __future__ import annotations

import time
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError

from shared.contracts.envelope import EncodedEvent


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


class EventPublisher:
    """Publishes encoded events and waits for the broker's acknowledgement."""

    def __init__(self, producer: KafkaProducer) -> None:
        self._producer = producer

    def publish(self, encoded: EncodedEvent, timeout_s: float = 15.0) -> tuple[int, int]:
        """Returns (partition, offset) once the broker has the event."""
        metadata = self._producer.send(encoded.topic, key=encoded.key, value=encoded.value,
                                       headers=encoded.headers).get(timeout=timeout_s)
        return metadata.partition, metadata.offset

    def publish_all(self, events: list[EncodedEvent], timeout_s: float = 15.0) -> list[tuple[int, int]]:
        futures = [self._producer.send(e.topic, key=e.key, value=e.value, headers=e.headers)
                   for e in events]
        self._producer.flush(timeout=timeout_s)
        return [(m.partition, m.offset) for m in (f.get(timeout=timeout_s) for f in futures)]

    def close(self) -> None:
        self._producer.close()
