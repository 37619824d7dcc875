"""The relay's own check that what the broker acknowledged is really in the log, and stays there.

An acknowledgement is the broker's word. Tansu on object storage has given offsets it later did
not hold; real Kafka loses acknowledged records in an unclean leader election; a restore from
backup rolls a log back. So the relay reads back, from the log, the events it published: each
one found at its acknowledged offset is confirmed; one that is not there (another event at that
offset, a hole, or a log that now ends before it) is published again, with the same event id
and stream version, together with every later event of its stream (consumers apply a stream in
version order, so they held those back). Rows stay in the outbox for this; nothing is pruned.
"""

from __future__ import annotations

import json
import logging
import time
from collections import defaultdict
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError
from sqlalchemy import Table, and_, bindparam, func, select, update
from sqlalchemy.engine import Engine

from shared.clock import Clock
from shared.kafka.security import client_options

log = logging.getLogger(__name__)


class PublishedConfirmer:
    """A relay task: every interval_s, confirm published events against the log; every
    sweep_every rounds also re-read the newest confirmed event of each partition, so a log that
    became shorter after confirmation is noticed too. Returns how many it settled."""

    def __init__(self, engine: Engine, outbox: Table, bootstrap: str, clock: Clock, *, interval_s: float = 2.0,
                 sweep_every: int = 15, batch: int = 5000, read_timeout_s: float = 10.0) -> None:
        self._engine = engine
        self._outbox = outbox
        self._bootstrap = bootstrap
        self._clock = clock
        self._interval_s = interval_s
        self._sweep_every = sweep_every
        self._batch = batch
        self._read_timeout_s = read_timeout_s
        self._next_at = 0.0
        self._rounds = 0
        self._consumer: KafkaConsumer | None = None
        self.confirmed = 0
        self.republished = 0

    def __call__(self) -> int:
        if time.monotonic() < self._next_at:
            return 0
        self._next_at = time.monotonic() + self._interval_s
        self._rounds += 1
        rows = self._rows_to_check(sweep=(self._rounds - 1) % self._sweep_every == 0)
        if not rows:
            return 0
        try:
            found, reached, high_water = self._read_back(rows)
        except KafkaError as error:
            log.warning("could not read the log back, will retry", extra={"reason": type(error).__name__})
            self._drop_consumer()
            return 0
        confirmed, lost = [], []
        for row in rows:
            tp = (row.topic, row.ack_partition)
            if found.get(tp, {}).get(row.ack_offset) == row.event_id:
                if row.confirmed_at is None:
                    confirmed.append(row.seq)
            elif high_water.get(tp) is not None and (row.ack_offset >= high_water[tp] or row.ack_offset < reached[tp]):
                lost.append(row)
        self._settle(confirmed, lost)
        return len(confirmed) + len(lost)

    def _rows_to_check(self, sweep: bool) -> list[Any]:
        outbox = self._outbox
        with self._engine.connect() as connection:
            rows = list(connection.execute(select(outbox).where(
                outbox.c.published_at.is_not(None), outbox.c.confirmed_at.is_(None),
                outbox.c.ack_offset.is_not(None)).order_by(outbox.c.seq).limit(self._batch)).all())
            if sweep:
                newest = select(outbox.c.topic, outbox.c.ack_partition,
                                func.max(outbox.c.ack_offset).label("offset")).where(
                    outbox.c.confirmed_at.is_not(None)).group_by(outbox.c.topic, outbox.c.ack_partition).subquery()
                rows += connection.execute(select(outbox).join(newest, and_(
                    outbox.c.topic == newest.c.topic, outbox.c.ack_partition == newest.c.ack_partition,
                    outbox.c.ack_offset == newest.c.offset)).where(outbox.c.confirmed_at.is_not(None))).all()
        return rows

    def _read_back(self, rows: list[Any]) -> tuple[dict[tuple[str, int], dict[int, str]], dict[tuple[str, int], int],
                                                   dict[tuple[str, int], int | None]]:
        start: dict[tuple[str, int], int] = {}
        for row in rows:
            tp = (row.topic, row.ack_partition)
            start[tp] = min(start.get(tp, row.ack_offset), row.ack_offset)
        consumer = self._consumer or self._connect()
        partitions = [TopicPartition(topic, partition) for topic, partition in start]
        # Forget the last round's partition state: kafka-python keeps a partition's high-water
        # mark across assign() and seek(), and a stale mark makes a round that fetched nothing
        # look complete, so events on the log would be taken for lost and published again.
        consumer.unsubscribe()
        consumer.assign(partitions)
        for tp in partitions:
            consumer.seek(tp, start[(tp.topic, tp.partition)])
        found: dict[tuple[str, int], dict[int, str]] = defaultdict(dict)
        deadline = time.monotonic() + self._read_timeout_s
        pending = set(partitions)
        while pending and time.monotonic() < deadline:
            for tp, records in consumer.poll(timeout_ms=200).items():
                for record in records:
                    found[(tp.topic, tp.partition)][record.offset] = _event_id(record.value)
            for tp in list(pending):
                high_water = consumer.highwater(tp)
                if high_water is not None and consumer.position(tp) >= high_water:
                    pending.discard(tp)
        reached = {(tp.topic, tp.partition): consumer.position(tp) for tp in partitions}
        high_water = {(tp.topic, tp.partition): consumer.highwater(tp) for tp in partitions}
        return found, reached, high_water

    def _settle(self, confirmed: list[int], lost: list[Any]) -> None:
        outbox = self._outbox
        now = self._clock.now()
        with self._engine.begin() as connection:
            if confirmed:
                connection.execute(update(outbox).where(outbox.c.seq.in_(confirmed)).values(confirmed_at=now))
            for row in {(row.topic, row.ack_partition) for row in lost if row.confirmed_at is not None}:
                # A log that lost what we had seen in it may have lost more than its newest event:
                # everything confirmed on that partition is checked again, in the next rounds.
                connection.execute(update(outbox).where(
                    outbox.c.topic == row[0], outbox.c.ack_partition == row[1], outbox.c.confirmed_at.is_not(None))
                    .values(confirmed_at=None))
            for row in lost:
                # It and everything after it in its stream go again, in order, same ids and versions.
                connection.execute(update(outbox).where(
                    outbox.c.topic == row.topic, outbox.c.key == row.key,
                    outbox.c.stream_version >= bindparam("from_version"), outbox.c.published_at.is_not(None))
                    .values(published_at=None, ack_partition=None, ack_offset=None, confirmed_at=None),
                    {"from_version": row.stream_version})
        self.confirmed += len(confirmed)
        if lost:
            self.republished += len(lost)
            log.error("published events are missing from the log: publishing them again", extra={
                "count": len(lost), "topic": lost[0].topic, "partition": lost[0].ack_partition,
                "offset": lost[0].ack_offset, "event_id": lost[0].event_id})

    def _connect(self) -> KafkaConsumer:
        # Longer fetch waits than the processors: this reads ranges, it does not chase the tail.
        self._consumer = KafkaConsumer(bootstrap_servers=self._bootstrap, enable_auto_commit=False,
                                       group_id=None, fetch_max_wait_ms=500, request_timeout_ms=15_000,
                                       client_id="outbox-confirmer", **client_options())
        return self._consumer

    def _drop_consumer(self) -> None:
        if self._consumer is not None:
            try:
                self._consumer.close()
            finally:
                self._consumer = None

    def close(self) -> None:
        self._drop_consumer()


def _event_id(value: bytes | None) -> str:
    try:
        return str(json.loads(value or b"{}").get("id", ""))
    except (ValueError, AttributeError):
        return ""
