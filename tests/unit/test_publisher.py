"""The publisher only believes acknowledgements at a real offset, and replaces a producer that
is stuck in a fatal state; the outbox marks only the acknowledged prefix as published.

The producer here is a stand-in for kafka-python's (what it answers is the point, not the
broker: the torture test in tests/broker shows the same answers from a real Tansu)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest
from kafka.errors import KafkaTimeoutError
from sqlalchemy import MetaData, create_engine, insert, select

from shared.clock import ManualClock
from shared.kafka.producer import EventPublisher, NotAcknowledged, OutgoingRecord
from shared.outbox import define_outbox_tables, outbox_status, publish_due


@dataclass
class Metadata:
    partition: int
    offset: int


@dataclass
class Future:
    result: Metadata | Exception

    def get(self, timeout: float) -> Metadata:
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


@dataclass
class TransactionManager:
    fatal: bool = False

    def has_fatal_error(self) -> bool:
        return self.fatal


@dataclass
class ScriptedProducer:
    """Answers each send with the next scripted offset (-1: Tansu's DUPLICATE_SEQUENCE answer)."""

    offsets: list[int | Exception]
    sent: list[bytes] = field(default_factory=list)
    _transaction_manager: TransactionManager = field(default_factory=TransactionManager)
    closed: bool = False

    def send(self, topic: str, key: bytes | None, value: bytes, headers: list) -> Future:
        self.sent.append(value)
        answer = self.offsets.pop(0) if self.offsets else len(self.sent) - 1
        return Future(answer if isinstance(answer, Exception) else Metadata(0, answer))

    def flush(self, timeout: float) -> None:
        return None

    def close(self, timeout: float = 0) -> None:
        self.closed = True


def record(n: int) -> OutgoingRecord:
    return OutgoingRecord("registry.events.v1", b"branch", f"event-{n}".encode(), [])


def test_an_acknowledgement_at_offset_minus_one_is_not_believed():
    publisher = EventPublisher(ScriptedProducer([0, -1, 2]))  # type: ignore[arg-type]
    acks = publisher.send_records([record(0), record(1), record(2)])
    assert [a.offset if a else None for a in acks] == [0, None, 2]
    assert publisher.health.unconfirmed == 1
    with pytest.raises(NotAcknowledged):
        EventPublisher(ScriptedProducer([-1])).send_record(record(0))  # type: ignore[arg-type]


def test_a_fatal_producer_is_replaced_by_a_new_one():
    broken = ScriptedProducer([])
    broken._transaction_manager.fatal = True
    made = [broken]
    fresh = ScriptedProducer([])
    publisher = EventPublisher(factory=lambda: made.pop(0) if made else fresh)  # type: ignore[arg-type,return-value]
    ack = publisher.send_record(record(0))
    assert ack.offset == 0
    assert broken.closed and not broken.sent  # nothing was sent with the fatal producer
    assert fresh.sent == [b"event-0"]
    assert publisher.health.recreated == 1 and publisher.health.fatal is False


def test_repeated_failures_recreate_the_producer_and_without_a_factory_stay_visible():
    timeouts = ScriptedProducer([KafkaTimeoutError()] * 3)
    later = ScriptedProducer([])
    made = [timeouts, later]
    publisher = EventPublisher(factory=lambda: made.pop(0), recreate_after=3)  # type: ignore[arg-type,return-value]
    for _ in range(3):
        assert publisher.send_records([record(0)]) == [None]
    assert publisher.health.consecutive_failures == 3
    assert publisher.send_record(record(0)).offset == 0
    assert publisher.health.recreated == 1 and later.sent == [b"event-0"]

    alone = ScriptedProducer([])
    alone._transaction_manager.fatal = True
    without = EventPublisher(alone)  # type: ignore[arg-type]
    without.send_records([record(0)])
    assert without.health.fatal is True


class StuckProducer(ScriptedProducer):
    """Like kafka-python after a broker came back without its producer state: nothing resolves."""

    def flush(self, timeout: float) -> None:
        raise KafkaTimeoutError("Timeout waiting for future")


def test_a_round_that_timed_out_whole_gets_a_new_producer_at_once():
    stuck, fresh = StuckProducer([]), ScriptedProducer([])
    made = [stuck, fresh]
    publisher = EventPublisher(factory=lambda: made.pop(0), recreate_after=3)  # type: ignore[arg-type,return-value]
    assert publisher.send_records([record(0)]) == [None]
    assert publisher.send_record(record(0)).offset == 0  # not two more rounds of waiting first
    assert stuck.closed and publisher.health.recreated == 1 and fresh.sent == [b"event-0"]


def _outbox(tmp_path):
    metadata = MetaData()
    outbox, _mail = define_outbox_tables(metadata, "test")
    engine = create_engine(f"sqlite:///{tmp_path / 'outbox.sqlite'}")
    metadata.create_all(engine)
    now = datetime(2026, 9, 1, 8, 0, tzinfo=UTC)
    with engine.begin() as connection:
        for n in range(4):
            connection.execute(insert(outbox).values(
                event_id=f"e{n}", topic="registry.events.v1", key=b"branch", value=f"event-{n}".encode(),
                headers=json.dumps([]), emit_at=now, applied=True))
    return engine, outbox, ManualClock(now)


def test_the_outbox_marks_only_the_acknowledged_prefix_and_sends_the_rest_again_in_order(tmp_path):
    engine, outbox, clock = _outbox(tmp_path)
    producer = ScriptedProducer([0, -1, 1, 2])  # the second event was lost halfway, the later ones landed
    with pytest.raises(NotAcknowledged):
        publish_due(engine, outbox, EventPublisher(producer), clock)  # type: ignore[arg-type]
    with engine.connect() as connection:
        published = connection.execute(select(outbox.c.event_id).where(outbox.c.published_at.is_not(None))).all()
        status = outbox_status(connection, outbox, clock.now())
    assert [row.event_id for row in published] == ["e0"]
    assert status.pending == 3 and status.oldest_pending_at == clock.now()

    again = ScriptedProducer([])
    assert publish_due(engine, outbox, EventPublisher(again), clock) == 3  # type: ignore[arg-type]
    assert again.sent == [b"event-1", b"event-2", b"event-3"]
    with engine.connect() as connection:
        assert outbox_status(connection, outbox, clock.now()).pending == 0
