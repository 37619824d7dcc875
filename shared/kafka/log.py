"""Reading the event log: every record of the given topics to their high-water marks, and the
records in the order consumers apply them (per stream, by version). Used by the audit and by the
retention service's leak and inspection answers."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from kafka import KafkaConsumer, TopicPartition

from shared.contracts.envelope import EventCodec, RecordedEvent, UndecodableMessage
from shared.contracts.topics import TopicNames
from shared.kafka.producer import STREAM_VERSION_HEADER
from shared.kafka.security import client_options


@dataclass(frozen=True)
class LogRecord:
    topic: str  # logical name, without any prefix
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]


@dataclass(frozen=True)
class Entry:
    """A decoded event with where it stands in the log."""

    record: LogRecord
    event: RecordedEvent


def read_topics(bootstrap: str, topics: TopicNames, names: list[str], timeout_s: float = 600.0,
                progress: Callable[[int], None] | None = None,
                start: dict[tuple[str, int], int] | None = None) -> dict[str, list[LogRecord]]:
    """Every record of each topic (from `start` offsets where given, else the beginning), read to
    the high-water mark in fetch responses (never ListOffsets: Tansu 0.6 answers it wrongly)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest",
                             max_partition_fetch_bytes=8 * 1024 * 1024, fetch_max_bytes=64 * 1024 * 1024,
                             max_poll_records=5000, **client_options())
    try:
        assigned: list[TopicPartition] = []
        for name in names:
            for partition in sorted(consumer.partitions_for_topic(topics(name)) or set()):
                assigned.append(TopicPartition(topics(name), partition))
        out: dict[str, list[LogRecord]] = {name: [] for name in names}
        if not assigned:
            return out
        consumer.assign(assigned)
        consumer.seek_to_beginning(*assigned)
        for tp in assigned:
            offset = (start or {}).get((topics.logical(tp.topic), tp.partition))
            if offset is not None:
                consumer.seek(tp, offset)
        done: set[TopicPartition] = set()
        deadline = time.monotonic() + timeout_s
        count = 0
        while len(done) < len(assigned):
            if time.monotonic() > deadline:
                raise TimeoutError("could not read the log to its end in time")
            for tp, batch in consumer.poll(timeout_ms=200).items():
                logical = topics.logical(tp.topic)
                out[logical].extend(LogRecord(logical, r.partition, r.offset, r.key, r.value,
                                              tuple(r.headers or ())) for r in batch)
                count += len(batch)
            for tp in assigned:
                high_water = consumer.highwater(tp)
                if high_water is not None and consumer.position(tp) >= high_water:
                    done.add(tp)
            if progress:
                progress(count)
        for records in out.values():
            records.sort(key=lambda r: (r.partition, r.offset))
        return out
    finally:
        consumer.close()


def stream_version(record: LogRecord) -> int | None:
    value = dict(record.headers).get(STREAM_VERSION_HEADER)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def in_stream_order(records: list[LogRecord]) -> list[LogRecord]:
    """The records as the consumers apply them: per stream (topic and key) each version once, in
    version order. After a loss the producer publishes the lost event again together with every
    later one of its stream; the copies that came early (before the gap was filled) and the
    second copies are left out, exactly as a consumer holds and skips them. Records without a
    version (published before versions existed) are kept where they are."""
    applied: dict[tuple[str, bytes | None], int] = {}
    out = []
    for record in records:
        version = stream_version(record)
        if version is None:
            out.append(record)
            continue
        stream = (record.topic, record.key)
        if version == applied.get(stream, 0) + 1:
            applied[stream] = version
            out.append(record)
    return out


def decode_all(codec: EventCodec, records: list[LogRecord]) -> tuple[list[Entry], list[tuple[LogRecord, str]]]:
    """The records as events; what does not decode, or (with a codec that verifies) was not signed
    by its topic's owner, is left out with its reason: a forged event never reaches a fold."""
    entries, undecodable = [], []
    for record in records:
        try:
            if codec.verifies:
                event = codec.decode_record(record.topic, record.partition, record.offset, record.key,
                                            record.value, record.headers)
            else:
                event = codec.decode(record.value)
            entries.append(Entry(record, event))
        except UndecodableMessage as error:
            undecodable.append((record, error.reason))
    return entries, undecodable
