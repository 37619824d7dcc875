"""Small, bounded helpers for the broker conformance tests (kafka-python clients only)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.consumer.fetcher import ConsumerRecord

from tests.support import wait_until

# Tansu 0.6 joins a consumer group in about half the session timeout (defect 3): keep it short.
GROUP_TIMEOUTS = {"session_timeout_ms": 2000, "heartbeat_interval_ms": 333}  # a join in ~1 s on Tansu


def create_topics(bootstrap: str, topics: dict[str, int], timeout_s: float = 20.0) -> None:
    """Create each topic with its partition count and wait until metadata shows all of them."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    try:
        admin.create_topics([NewTopic(name, partitions, 1) for name, partitions in topics.items()])
        wait_for_partitions(admin, topics, timeout_s)
    finally:
        admin.close()


def partition_counts(admin: KafkaAdminClient, names: Iterable[str]) -> dict[str, int]:
    described = admin.describe_topics(list(names))
    return {t["name"]: len(t["partitions"]) for t in described if t["error_code"] == 0}


def wait_for_partitions(admin: KafkaAdminClient, topics: dict[str, int], timeout_s: float) -> None:
    wait_until(lambda: partition_counts(admin, topics) == topics, timeout_s=timeout_s, interval_s=0.1,
               message=f"metadata to show {topics}")


def producer(bootstrap: str, **config: object) -> KafkaProducer:
    return KafkaProducer(bootstrap_servers=bootstrap, request_timeout_ms=10_000, max_block_ms=10_000,
                         **config)


def poll_until(consumer: KafkaConsumer, done: Callable[[list[ConsumerRecord]], bool],
               timeout_s: float = 20.0, what: str = "records") -> list[ConsumerRecord]:
    """Poll, collecting records, until done(records) holds; fail after timeout_s."""
    records: list[ConsumerRecord] = []
    deadline = time.monotonic() + timeout_s
    while not done(records):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}; got {len(records)}: "
                                 f"{[(r.topic, r.partition, r.offset) for r in records]}")
        for _tp, batch in consumer.poll(timeout_ms=200).items():
            records.extend(batch)
    return records


def assigned_reader(bootstrap: str, topic: str, partitions: int = 1) -> tuple[KafkaConsumer, list[TopicPartition]]:
    """A group-less consumer assigned to every partition of topic, at the beginning."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                             auto_offset_reset="earliest", request_timeout_ms=10_000)
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    return consumer, tps


def group_consumer(bootstrap: str, group: str, topic: str, **config: object) -> KafkaConsumer:
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group,
                             enable_auto_commit=False, auto_offset_reset="earliest",
                             request_timeout_ms=10_000, **{**GROUP_TIMEOUTS, **config})
    return consumer


def produce_batches(bootstrap: str, topic: str, batches: list[int]) -> list[int]:
    """Send len(batches) multi-record batches (one flush each) to partition 0; return offsets."""
    prod = producer(bootstrap, linger_ms=100, batch_size=1 << 20)
    try:
        futures = []
        n = 0
        for size in batches:
            for _ in range(size):
                futures.append(prod.send(topic, value=f"r{n}".encode(), partition=0))
                n += 1
            prod.flush(timeout=10)
        return [f.get(timeout=10).offset for f in futures]
    finally:
        prod.close(timeout=5)
