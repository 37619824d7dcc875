"""Helpers for tests that talk to the real broker."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

T = TypeVar("T")


def wait_until(check: Callable[[], T], timeout_s: float = 30.0, interval_s: float = 0.05,
               message: str = "condition") -> T:
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {message}")
        time.sleep(interval_s)


def read_all(bootstrap: str, topic: str, timeout_s: float = 20.0) -> list[ConsumerRecord]:
    """Every record on the topic, reading until the high-water mark from fetch responses.

    Not end_offsets(): on Tansu 0.6 ListOffsets is wrong after multi-record batches (defect 1).
    """
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                             auto_offset_reset="earliest")
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(assigned)
        consumer.seek_to_beginning(*assigned)
        records: list[ConsumerRecord] = []
        done: set[TopicPartition] = set()
        deadline = time.monotonic() + timeout_s
        while len(done) < len(assigned):
            if time.monotonic() > deadline:
                raise AssertionError(f"could not read {topic} to its end in {timeout_s}s")
            for batch in consumer.poll(timeout_ms=200).values():
                records.extend(batch)
            for tp in assigned:
                high_water = consumer.highwater(tp)
                if high_water is not None and consumer.position(tp) >= high_water:
                    done.add(tp)
        return sorted(records, key=lambda r: (r.partition, r.offset))
    finally:
        consumer.close()
