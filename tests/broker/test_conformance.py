"""Conformance: the Kafka behaviour the services rely on, runnable against any broker.

The `broker` fixture gives Tansu locally, or a real Apache Kafka (KAFKA_BOOTSTRAP_SERVERS, or a
container). Every test names its topics and groups from `topic_prefix`, so tests never collide on
the shared session broker. Known Tansu 0.6 defects live in test_tansu_defects.py.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict

import pytest
from kafka import KafkaAdminClient, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from tests.broker.helpers import (
    assigned_reader,
    create_topics,
    group_consumer,
    partition_counts,
    poll_until,
    produce_batches,
    producer,
    wait_for_partitions,
)

pytestmark = [pytest.mark.broker, pytest.mark.timeout(60)]


def test_create_topics_with_partition_counts_and_reject_duplicates(broker, topic_prefix):
    wanted = {f"{topic_prefix}one": 1, f"{topic_prefix}three": 3, f"{topic_prefix}eight": 8}
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=10_000)
    try:
        admin.create_topics([NewTopic(name, n, 1) for name, n in wanted.items()])
        wait_for_partitions(admin, wanted, timeout_s=20)
        assert partition_counts(admin, wanted) == wanted
        assert set(wanted) <= set(admin.list_topics())

        with pytest.raises(TopicAlreadyExistsError):
            admin.create_topics([NewTopic(f"{topic_prefix}three", 3, 1)])
        # A duplicate create must not have changed the existing topic.
        assert partition_counts(admin, [f"{topic_prefix}three"]) == {f"{topic_prefix}three": 3}
    finally:
        admin.close()


def test_keys_values_and_headers_arrive_intact_and_ordered_per_key(broker, topic_prefix):
    topic = f"{topic_prefix}keyed"
    partitions = 4
    create_topics(broker.bootstrap, {topic: partitions})
    keys = [f"key-{i}".encode() for i in range(8)]
    sent: list[tuple[bytes, bytes, list[tuple[str, bytes]]]] = []
    prod = producer(broker.bootstrap, acks="all", linger_ms=5)
    try:
        futures = []
        for seq in range(5):
            for key in keys:
                value = f"{key.decode()}:{seq}".encode() + b"\x00\xff binary"
                headers = [("event-type", b"StaffJoined"), ("seq", str(seq).encode()),
                           ("empty", b""), ("bin", bytes(range(256)))]
                sent.append((key, value, headers))
                futures.append(prod.send(topic, key=key, value=value, headers=headers))
        prod.flush(timeout=10)
        metadata = [f.get(timeout=10) for f in futures]
    finally:
        prod.close(timeout=5)

    partition_of_key: dict[bytes, set[int]] = defaultdict(set)
    for (key, _, _), md in zip(sent, metadata, strict=True):
        partition_of_key[key].add(md.partition)
    assert all(len(p) == 1 for p in partition_of_key.values()), partition_of_key
    assert len({next(iter(p)) for p in partition_of_key.values()}) > 1, "8 keys all on one partition"

    consumer, _ = assigned_reader(broker.bootstrap, topic, partitions)
    try:
        records = poll_until(consumer, lambda rs: len(rs) >= len(sent), what=f"{len(sent)} records")
    finally:
        consumer.close()
    assert len(records) == len(sent)

    received = {(r.key, r.value): r for r in records}
    for key, value, headers in sent:
        record = received[(key, value)]
        assert record.headers == headers
        assert record.partition in partition_of_key[key]

    by_key: dict[bytes, list[tuple[int, int, bytes]]] = defaultdict(list)
    for r in records:
        by_key[r.key].append((r.partition, r.offset, r.value))
    for key in keys:
        in_log_order = [value for _, _, value in sorted(by_key[key])]
        assert in_log_order == [v for k, v, _ in sent if k == key], f"order lost for {key!r}"
        assert len({p for p, _, _ in by_key[key]}) == 1


def test_idempotent_acks_all_producer(broker, topic_prefix):
    topic = f"{topic_prefix}idempotent"
    create_topics(broker.bootstrap, {topic: 1})
    prod = producer(broker.bootstrap, acks="all", enable_idempotence=True, linger_ms=5)
    try:
        futures = [prod.send(topic, key=b"k", value=f"v{i}".encode()) for i in range(20)]
        prod.flush(timeout=10)
        offsets = [f.get(timeout=10).offset for f in futures]
    finally:
        prod.close(timeout=5)
    assert offsets == list(range(20))

    consumer, _ = assigned_reader(broker.bootstrap, topic)
    try:
        records = poll_until(consumer, lambda rs: len(rs) >= 20, what="20 records")
    finally:
        consumer.close()
    assert [r.value for r in records] == [f"v{i}".encode() for i in range(20)]
    assert [r.offset for r in records] == list(range(20))


def test_group_resumes_exactly_after_committed_offset(broker, topic_prefix):
    topic = f"{topic_prefix}resume"
    group = f"{topic_prefix}group"
    tp = TopicPartition(topic, 0)
    create_topics(broker.bootstrap, {topic: 1})
    produce_batches(broker.bootstrap, topic, [1] * 10)

    first = group_consumer(broker.bootstrap, group, topic, max_poll_records=4)
    try:
        read = poll_until(first, lambda rs: len(rs) >= 1, timeout_s=30, what="first records in the group")
        assert [r.offset for r in read] == list(range(len(read))), "group did not start at the beginning"
        assert 1 <= len(read) <= 4
        first.commit()  # commits the position: just after the last record returned
        committed = len(read)
        assert first.committed(tp) == committed
    finally:
        first.close()

    second = group_consumer(broker.bootstrap, group, topic)
    try:
        assert second.committed(tp) == committed
        rest = poll_until(second, lambda rs: len(rs) >= 10 - committed, timeout_s=30,
                          what=f"records {committed}..9")
        # A few more polls: nothing beyond offset 9 may show up (no duplicates, no re-read).
        for _ in range(3):
            for _tp, batch in second.poll(timeout_ms=200).items():
                rest.extend(batch)
    finally:
        second.close()
    assert [r.offset for r in rest] == list(range(committed, 10))
    assert [r.value for r in rest] == [f"r{i}".encode() for i in range(committed, 10)]


def test_two_members_split_partitions(broker, topic_prefix):
    topic = f"{topic_prefix}split"
    group = f"{topic_prefix}group"
    create_topics(broker.bootstrap, {topic: 4})
    everything = {TopicPartition(topic, p) for p in range(4)}
    assignments: list[set[TopicPartition]] = [set(), set()]
    stop = threading.Event()

    def member(index: int) -> None:
        # Each member polls without pause in its own thread, as a real processor does, so
        # that neither holds up the other's rebalance.
        consumer = group_consumer(broker.bootstrap, group, topic)
        try:
            while not stop.is_set():
                consumer.poll(timeout_ms=100)
                assignments[index] = set(consumer.assignment())
        finally:
            consumer.close()

    threads = [threading.Thread(target=member, args=(i,), daemon=True) for i in range(2)]
    for thread in threads:
        thread.start()
    try:
        settled_since: float | None = None
        deadline = time.monotonic() + 60
        while True:
            a, b = assignments
            split = bool(a) and bool(b) and not (a & b) and (a | b) == everything
            if split:
                settled_since = settled_since or time.monotonic()
                if time.monotonic() - settled_since >= 2.0:  # stable for 2 s
                    break
            else:
                settled_since = None
            if time.monotonic() > deadline:
                raise AssertionError(f"assignments did not settle: {sorted(a)} / {sorted(b)}")
            time.sleep(0.05)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=15)
    assert a and b
    assert not (a & b)
    assert a | b == everything


def test_highwater_in_fetch_after_multi_record_batches(broker, topic_prefix):
    topic = f"{topic_prefix}hw"
    create_topics(broker.bootstrap, {topic: 1})
    offsets = produce_batches(broker.bootstrap, topic, [5, 3])
    assert offsets == list(range(8))

    consumer, (tp,) = assigned_reader(broker.bootstrap, topic)
    try:
        records = poll_until(consumer, lambda rs: len(rs) >= 8, what="8 records")
        assert [r.offset for r in records] == list(range(8))
        assert [r.value for r in records] == [f"r{i}".encode() for i in range(8)]
        assert consumer.highwater(tp) == 8
        assert consumer.position(tp) == 8
    finally:
        consumer.close()
