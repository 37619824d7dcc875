"""Tables every consuming service keeps beside its own state, written in the same transaction:
which events it has applied (so redelivery has no effect twice) and how far it has read."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any

from sqlalchemy import BigInteger, Column, Integer, MetaData, String, Table, and_, insert, select, update
from sqlalchemy.engine import Connection

from shared.db import UtcDateTime


def define_progress_tables(metadata: MetaData) -> tuple[Table, Table, Table]:
    processed = Table(
        "processed_events", metadata,
        Column("consumer", String(100), primary_key=True),
        Column("event_id", String(100), primary_key=True),
        Column("topic", String(250), nullable=False),
        Column("partition", Integer, nullable=False),
        Column("offset", BigInteger, nullable=False),
        Column("processed_at", UtcDateTime(), nullable=False),
    )
    positions = Table(
        "consumer_positions", metadata,
        Column("consumer", String(100), primary_key=True),
        Column("topic", String(250), primary_key=True),
        Column("partition", Integer, primary_key=True),
        # The next offset to read: everything before it is applied or dead-lettered.
        Column("next_offset", BigInteger, nullable=False),
        # The high-water mark seen in the last fetch response (ListOffsets is wrong on Tansu).
        Column("high_water", BigInteger, nullable=True),
        Column("dead_lettered", BigInteger, nullable=False, default=0),
        Column("updated_at", UtcDateTime(), nullable=False),
    )
    streams = Table(
        "stream_versions", metadata,
        Column("consumer", String(100), primary_key=True),
        Column("topic", String(250), primary_key=True),
        Column("stream_key", String(200), primary_key=True),  # the record key, hex
        # Every version up to this one is applied (or dead-lettered), none after it.
        Column("applied_version", BigInteger, nullable=False),
        # While a later version was seen and held back: the highest one, and since when. The
        # versions between are missing from the log; their producer publishes them again.
        Column("held_version", BigInteger, nullable=True),
        Column("held_since", UtcDateTime(), nullable=True),
        Column("updated_at", UtcDateTime(), nullable=False),
    )
    return processed, positions, streams


def create_progress_tables(op: Any) -> None:
    """Alembic step of every consuming service's first migration: consumer positions and
    processed events (the tables `define_progress_tables` describes), defined here once."""
    import sqlalchemy as sa

    op.create_table(
        "consumer_positions",
        sa.Column("consumer", sa.String(length=100), nullable=False),
        sa.Column("topic", sa.String(length=250), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("next_offset", sa.BigInteger(), nullable=False),
        sa.Column("high_water", sa.BigInteger(), nullable=True),
        sa.Column("dead_lettered", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "topic", "partition"),
    )
    op.create_table(
        "processed_events",
        sa.Column("consumer", sa.String(length=100), nullable=False),
        sa.Column("event_id", sa.String(length=100), nullable=False),
        sa.Column("topic", sa.String(length=250), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "event_id"),
    )


def migrate_to_stream_versions(op: Any) -> None:
    """Alembic step every consuming service's migrations call: the stream_versions table."""
    import sqlalchemy as sa

    op.create_table(
        "stream_versions",
        sa.Column("consumer", sa.String(length=100), nullable=False),
        sa.Column("topic", sa.String(length=250), nullable=False),
        sa.Column("stream_key", sa.String(length=200), nullable=False),
        sa.Column("applied_version", sa.BigInteger(), nullable=False),
        sa.Column("held_version", sa.BigInteger(), nullable=True),
        sa.Column("held_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "topic", "stream_key"),
    )


@dataclass(frozen=True)
class StreamGap:
    """A stream waiting: versions after applied_version and before held_version are missing."""

    topic: str
    stream_key: str
    applied_version: int
    held_version: int
    since: datetime


class StreamStep(Enum):
    APPLY = "apply"  # the next version of its stream
    SEEN = "seen"  # this version or a later one is applied already
    HOLD = "hold"  # versions before it are missing: not yet


class Progress:
    """Reads and writes the progress tables on a caller's connection (inside its transaction)."""

    def __init__(self, processed: Table, positions: Table, consumer: str, streams: Table | None = None) -> None:
        self.processed = processed
        self.positions = positions
        self.consumer = consumer
        self.streams = streams

    def stream_step(self, connection: Connection, topic: str, stream_key: str, version: int, now: datetime
                    ) -> StreamStep:
        """Where a versioned event stands in its stream; a held event is recorded as a gap."""
        if self.streams is None:
            return StreamStep.APPLY
        streams = self.streams
        where = and_(streams.c.consumer == self.consumer, streams.c.topic == topic,
                     streams.c.stream_key == stream_key)
        row = connection.execute(select(streams.c.applied_version, streams.c.held_version).where(where)).first()
        applied = row.applied_version if row else 0
        if version <= applied:
            return StreamStep.SEEN
        if version == applied + 1:
            return StreamStep.APPLY
        if row is None:
            connection.execute(insert(streams).values(consumer=self.consumer, topic=topic, stream_key=stream_key,
                                                      applied_version=0, held_version=version, held_since=now,
                                                      updated_at=now))
        elif row.held_version is None or version > row.held_version:
            values: dict[str, Any] = {"held_version": version, "updated_at": now}
            if row.held_version is None:
                values["held_since"] = now
            connection.execute(update(streams).where(where).values(**values))
        return StreamStep.HOLD

    def stream_applied(self, connection: Connection, topic: str, stream_key: str, version: int, now: datetime
                       ) -> None:
        if self.streams is None:
            return
        streams = self.streams
        where = and_(streams.c.consumer == self.consumer, streams.c.topic == topic,
                     streams.c.stream_key == stream_key)
        row = connection.execute(select(streams.c.held_version).where(where)).first()
        if row is None:
            connection.execute(insert(streams).values(consumer=self.consumer, topic=topic, stream_key=stream_key,
                                                      applied_version=version, updated_at=now))
            return
        gap_closed = row.held_version is not None and version >= row.held_version
        values: dict[str, Any] = {"applied_version": version, "updated_at": now}
        if gap_closed:
            values.update(held_version=None, held_since=None)
        connection.execute(update(streams).where(where).values(**values))

    def open_gaps(self, connection: Connection) -> list[StreamGap]:
        """Every stream of this consumer that waits for missing versions, oldest first."""
        if self.streams is None:
            return []
        streams = self.streams
        rows = connection.execute(select(streams).where(streams.c.consumer == self.consumer,
                                                        streams.c.held_version.is_not(None))
                                  .order_by(streams.c.held_since))
        return [StreamGap(r.topic, r.stream_key, r.applied_version, r.held_version, r.held_since) for r in rows]

    def already_processed(self, connection: Connection, event_id: str) -> bool:
        row = connection.execute(select(self.processed.c.event_id).where(
            self.processed.c.consumer == self.consumer, self.processed.c.event_id == event_id)).first()
        return row is not None

    def mark_processed(self, connection: Connection, event_id: str, topic: str, partition: int,
                       offset: int, now: datetime) -> None:
        connection.execute(insert(self.processed).values(
            consumer=self.consumer, event_id=event_id, topic=topic, partition=partition,
            offset=offset, processed_at=now))

    def advance(self, connection: Connection, topic: str, partition: int, next_offset: int,
                high_water: int | None, now: datetime, dead_lettered: int = 0) -> None:
        where = and_(self.positions.c.consumer == self.consumer, self.positions.c.topic == topic,
                     self.positions.c.partition == partition)
        current = connection.execute(
            select(self.positions.c.next_offset, self.positions.c.dead_lettered).where(where)).first()
        if current is None:
            connection.execute(insert(self.positions).values(
                consumer=self.consumer, topic=topic, partition=partition, next_offset=next_offset,
                high_water=high_water, dead_lettered=dead_lettered, updated_at=now))
            return
        values: dict[str, Any] = {"updated_at": now,
                                  "dead_lettered": current.dead_lettered + dead_lettered}
        # Never move backwards: a redelivered older message must not undo progress.
        values["next_offset"] = max(current.next_offset, next_offset)
        if high_water is not None:
            values["high_water"] = high_water
        connection.execute(update(self.positions).where(where).values(**values))

    def forget_topic(self, connection: Connection, topic: str) -> None:
        """The topic was deleted and made anew (the retention sweep): its offsets start again at
        0, so what this consumer recorded about the old offsets must not skip the new records."""
        from sqlalchemy import delete

        for table in (self.processed, self.positions, *([self.streams] if self.streams is not None else [])):
            connection.execute(delete(table).where(table.c.consumer == self.consumer, table.c.topic == topic))

    def rewind(self, connection: Connection, topic: str, partition: int, next_offset: int,
               high_water: int, now: datetime) -> None:
        """Set the position back on purpose (the log became shorter than what was read): the one
        write allowed to move it backwards."""
        connection.execute(update(self.positions).where(
            self.positions.c.consumer == self.consumer, self.positions.c.topic == topic,
            self.positions.c.partition == partition).values(next_offset=next_offset, high_water=high_water,
                                                            updated_at=now))

    def positions_of(self, connection: Connection) -> dict[tuple[str, int], tuple[int, int | None]]:
        rows = connection.execute(select(
            self.positions.c.topic, self.positions.c.partition, self.positions.c.next_offset,
            self.positions.c.high_water).where(self.positions.c.consumer == self.consumer))
        return {(r.topic, r.partition): (r.next_offset, r.high_water) for r in rows}
