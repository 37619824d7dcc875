"""A bounded retention for the Kafka door where the broker does not enforce `retention.ms`.

The raw intake (`registry.mutations.v1`) holds what school systems wrote, names and parents'
addresses in clear, and its dead letters the same. Kafka deletes them by `retention.ms`
(`shared.contracts.topics.intake_topic_configs`); Tansu 0.6 on object storage enforces no
retention and answers DeleteRecords with a panic (`todo!()` in its S3 engine). What it does do is
delete a topic with every object of it. So the intake, when it has read every partition to its
end and the oldest record is older than the retention, deletes the topic and its dead letters,
makes them anew, puts the dead letters still younger than the retention back (with their own
timestamps, so they go at their time), forgets its progress on the old offsets, and has the
object store compact its volumes so the deleted objects' bytes leave the disk.

A school system's write that lands between the last read and the deletion is lost (a window of
milliseconds, only after a quiet second): this is the embedded default's price; the deployment's
Kafka deletes by retention and loses nothing."""

from __future__ import annotations

import contextlib
import logging
import time
import urllib.request
from dataclasses import dataclass

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError, UnknownTopicOrPartitionError
from sqlalchemy.engine import Engine

from shared.contracts.topics import QUIET_S
from shared.kafka.admin import connect_admin
from shared.kafka.progress import Progress
from shared.kafka.security import client_options

log = logging.getLogger(__name__)

# SeaweedFS deletes a deleted object's chunks from its volumes a moment later (the filer's
# deletion queue, about a second): a vacuum at once finds nothing to compact. So the object store
# is vacuumed at every round for this long after a sweep (with the default interval: once).
VACUUM_FOR_S = 15.0


@dataclass(frozen=True)
class KeptRecord:
    partition: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


class RetentionSweep:
    def __init__(self, bootstrap: str, topics: list[tuple[str, str]], *, retention_s: float, interval_s: float,
                 partitions: int, replication: int, configs: dict[str, dict[str, str]], engine: Engine,
                 progress: Progress, subscribed: list[str], vacuum_url: str = "") -> None:
        self._bootstrap = bootstrap
        self._subscribed = subscribed  # what the consumer follows, subscribed again after a sweep
        self._topics = topics  # (followed topic, its dead-letter topic)
        self._retention_ms = int(retention_s * 1000)
        self._interval_s = interval_s
        self._partitions = partitions
        self._replication = replication
        self._configs = configs
        self._engine = engine
        self._progress = progress
        if vacuum_url and not vacuum_url.startswith(("http://", "https://")):
            raise ValueError("the storage vacuum URL must be http(s)")
        self._vacuum_url = vacuum_url
        self._next_at = time.monotonic() + interval_s
        self._vacuum_until = 0.0
        self.sweeps = 0

    def __call__(self, consumer: KafkaConsumer) -> None:
        if time.monotonic() < self._next_at:
            return
        self._next_at = time.monotonic() + self._interval_s
        try:
            if self._vacuum_url and time.monotonic() < self._vacuum_until:
                self._vacuum()
            for topic, dead_letters in self._topics:
                self._sweep(consumer, topic, dead_letters)
        except (KafkaError, OSError) as error:  # the next round tries again
            log.warning("retention sweep failed", extra={"topic": ",".join(t for t, _ in self._topics),
                                                         "reason": type(error).__name__})

    def _sweep(self, consumer: KafkaConsumer, topic: str, dead_letters: str) -> None:
        now_ms = int(time.time() * 1000)
        cutoff = now_ms - self._retention_ms
        intake, letters = _read(self._bootstrap, topic), _read(self._bootstrap, dead_letters)
        stamps = [record.timestamp_ms for record in intake + letters]
        if not stamps or min(stamps) > cutoff:
            return  # nothing older than the retention
        if intake and now_ms - max(record.timestamp_ms for record in intake) < QUIET_S * 1000:
            return  # a school system is writing: the next round
        started = time.monotonic()
        kept = [record for record in letters if record.timestamp_ms > cutoff]
        consumer.unsubscribe()
        try:
            self._remake(topic, dead_letters, kept)
        finally:  # whatever happened, the intake goes on reading
            consumer.subscribe(self._subscribed)
        self.sweeps += 1
        log.info("intake swept: raw messages older than the retention deleted from the broker",
                 extra={"topic": topic, "count": len(intake) + len(letters) - len(kept),
                        "duration_ms": round((time.monotonic() - started) * 1000, 1)})


    def _remake(self, topic: str, dead_letters: str, kept: list[KeptRecord]) -> None:
        admin = connect_admin(self._bootstrap)
        try:
            admin.delete_topics([topic, dead_letters])
            deadline = time.monotonic() + 30
            while {topic, dead_letters} & set(admin.list_topics()) and time.monotonic() < deadline:
                time.sleep(0.05)
            for name in (topic, dead_letters):
                with contextlib.suppress(TopicAlreadyExistsError):  # a producer's auto-creation came first
                    admin.create_topics([NewTopic(name, self._partitions, self._replication,
                                                  topic_configs=self._configs.get(name, {}))])
        finally:
            admin.close()
        with self._engine.begin() as connection:
            self._progress.forget_topic(connection, topic)
        if kept:
            producer = KafkaProducer(bootstrap_servers=self._bootstrap, acks="all", **client_options())
            try:
                for record in kept:
                    producer.send(dead_letters, key=record.key, value=record.value, headers=record.headers,
                                  partition=record.partition % self._partitions, timestamp_ms=record.timestamp_ms)
                producer.flush(timeout=30)
            finally:
                producer.close()
        self._vacuum_until = time.monotonic() + max(VACUUM_FOR_S, self._interval_s * 1.5)

    def _vacuum(self) -> None:
        """Compact the object store's volumes: a deleted object's bytes leave the disk."""
        with urllib.request.urlopen(self._vacuum_url, timeout=60) as answer:  # noqa: S310 - http(s), checked
            answer.read()


def _read(bootstrap: str, topic: str, timeout_s: float = 30.0) -> list[KeptRecord]:
    """Every record of the topic, read to the high-water marks of the fetch responses (ListOffsets
    is wrong on Tansu after multi-record batches)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest",
                             fetch_max_wait_ms=100, **client_options())
    try:
        try:
            partitions = consumer.partitions_for_topic(topic) or set()
        except UnknownTopicOrPartitionError:
            return []
        assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not assigned:
            return []
        consumer.assign(assigned)
        consumer.seek_to_beginning(*assigned)
        records: list[KeptRecord] = []
        done: set[TopicPartition] = set()
        deadline = time.monotonic() + timeout_s
        while len(done) < len(assigned):
            if time.monotonic() > deadline:
                raise KafkaError(f"could not read {topic} to its end")
            for batch in consumer.poll(timeout_ms=200).values():
                records.extend(KeptRecord(r.partition, r.timestamp, r.key, r.value, list(r.headers)) for r in batch)
            for partition in assigned:
                high_water = consumer.highwater(partition)
                if high_water is not None and consumer.position(partition) >= high_water:
                    done.add(partition)
        return records
    finally:
        consumer.close()
