"""Tables every consuming service keeps beside its own state, written in the same transaction:
which events it has applied (so redelivery has no effect twice) and how far it has read."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Column, Integer, MetaData, String, Table, and_, insert, select, update
from sqlalchemy.engine import Connection

from shared.db import UtcDateTime


def define_progress_tables(metadata: MetaData) -> tuple[Table, Table]:
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
    return processed, positions


class Progress:
    """Reads and writes the two progress tables on a caller's connection (inside its transaction)."""

    def __init__(self, processed: Table, positions: Table, consumer: str) -> None:
        self.processed = processed
        self.positions = positions
        self.consumer = consumer

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
