"""The consumer runner's careful path over the real broker: a handler that fails on one event
in the middle of a batch costs that event a dead letter and nobody else anything."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from services.access import store
from services.access.bootstrap import build
from services.access.settings import AccessSettings
from shared.clock import SystemClock
from shared.contracts.events import StaffDeparted
from shared.contracts.topics import Topic
from shared.kafka.admin import ensure_topics
from shared.kafka.consumer import ConsumerRunner
from shared.kafka.producer import STREAM_VERSION_HEADER, EventPublisher, OutgoingRecord, make_producer
from tests.conftest import TEST_SESSION_TIMEOUT_MS
from tests.support import read_all, wait_until

BRANCH = uuid.UUID("00000000-0000-4000-8000-0000000000c1")


pytestmark = [pytest.mark.every_database]


def test_a_failing_event_is_dead_lettered_and_its_batch_neighbours_applied_once(
        broker, topic_prefix, database_url, master_key, tmp_path):
    settings = AccessSettings(kafka_bootstrap_servers=broker.bootstrap, topic_prefix=topic_prefix,
                              database_url=database_url, keystore_url=f"sqlite:///{tmp_path / 'k.sqlite'}",
                              master_key=master_key, consumer_group=f"{topic_prefix}runner")
    deps = build(settings)
    topic = deps.topics(Topic.REGISTRY_EVENTS)
    ensure_topics(broker.bootstrap, [topic, f"{topic}.dlq"], partitions=1, replication=1)
    staff_ids = [uuid.uuid4() for _ in range(50)]
    poisoned = staff_ids[25]
    calls: dict[uuid.UUID, int] = {}

    def fragile_handler(recorded, connection):
        staff_id = recorded.event.staff_id
        calls[staff_id] = calls.get(staff_id, 0) + 1
        if staff_id == poisoned:
            raise RuntimeError("a bug that only this event triggers")
        deps.service.apply(recorded, connection)

    publisher = EventPublisher(make_producer(broker.bootstrap, "runner-test"))
    publisher.publish_all([deps.codec.encode(StaffDeparted(branch_id=BRANCH, staff_id=s), event_id=str(s),
                                             recorded_at=datetime(2026, 3, 1, tzinfo=UTC)) for s in staff_ids])
    publisher.close()
    runner = ConsumerRunner(
        consumer_name=settings.consumer_group, topics=[topic], bootstrap=broker.bootstrap, engine=deps.engine,
        codec=deps.codec, handler=fragile_handler, progress=deps.progress,
        dlq=EventPublisher.connect(broker.bootstrap, "runner-test-dlq"), clock=SystemClock(),
        retry_backoff_s=0.01, session_timeout_ms=TEST_SESSION_TIMEOUT_MS)
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    try:
        dead = wait_until(lambda: read_all(broker.bootstrap, f"{topic}.dlq"), message="the dead letter")
        wait_until(lambda: runner.stats.applied >= 49, message="the other 49 applied")
    finally:
        runner.stop_event.set()
        thread.join(timeout=15)

    assert len(dead) == 1
    headers = dict(dead[0].headers)
    assert headers["dlq-reason"] == b"handler-failed"
    assert headers["dlq-exception-type"] == b"RuntimeError"
    assert b"a bug" not in b"".join(headers.values()), "exception messages may hold personal data"
    assert calls[poisoned] == 1 + 3, "one try in the batch, then three on its own"
    with deps.engine.connect() as connection:
        rows = connection.execute(select(store.staff_departures.c.staff_id)).scalars().all()
        positions = deps.progress.positions_of(connection)
    assert sorted(rows) == sorted(str(s) for s in staff_ids if s != poisoned)
    assert positions[(topic, 0)][0] == 50, "the runner moved past the dead letter"
    with deps.engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(store.processed_events)).scalar_one() == 49


def test_a_stream_is_applied_in_version_order_even_when_the_log_holds_a_gap_and_then_the_resend(
        broker, topic_prefix, database_url, master_key, tmp_path):
    """The log as a relay leaves it after the broker lost version 2 of a stream: v1, v3, v4, then
    (republished) v2, v3, v4. The consumer holds v3 and v4 back while v2 is missing, reports the
    gap, and applies v1..v4 once each, in order."""
    settings = AccessSettings(kafka_bootstrap_servers=broker.bootstrap, topic_prefix=topic_prefix,
                              database_url=database_url, keystore_url=f"sqlite:///{tmp_path / 'k.sqlite'}",
                              master_key=master_key, consumer_group=f"{topic_prefix}streams")
    deps = build(settings)
    topic = deps.topics(Topic.REGISTRY_EVENTS)
    ensure_topics(broker.bootstrap, [topic, f"{topic}.dlq"], partitions=1, replication=1)
    staff_ids = [uuid.uuid4() for _ in range(4)]
    events = {version: deps.codec.encode(StaffDeparted(branch_id=BRANCH, staff_id=staff), event_id=str(staff),
                                         recorded_at=datetime(2026, 3, 1, tzinfo=UTC))
              for version, staff in enumerate(staff_ids, start=1)}
    applied: list[uuid.UUID] = []

    def recording_handler(recorded, connection):
        applied.append(recorded.event.staff_id)
        deps.service.apply(recorded, connection)

    def send(versions: list[int]) -> None:
        publisher = EventPublisher(make_producer(broker.bootstrap, "stream-test"))
        try:
            acks = publisher.send_records([
                OutgoingRecord(events[v].topic, events[v].key, events[v].value,
                               [*events[v].headers, (STREAM_VERSION_HEADER, str(v).encode())]) for v in versions])
            assert all(ack is not None for ack in acks)
        finally:
            publisher.close()

    runner = ConsumerRunner(
        consumer_name=settings.consumer_group, topics=[topic], bootstrap=broker.bootstrap, engine=deps.engine,
        codec=deps.codec, handler=recording_handler, progress=deps.progress,
        dlq=EventPublisher.connect(broker.bootstrap, "stream-test-dlq"), clock=SystemClock(),
        retry_backoff_s=0.01, session_timeout_ms=TEST_SESSION_TIMEOUT_MS)
    thread = threading.Thread(target=runner.run, daemon=True)
    send([1, 3, 4])
    thread.start()
    try:
        wait_until(lambda: runner.stats.held >= 2, message="v3 and v4 held back")
        # Counted when held, recorded with the batch's transaction: wait for the record too.
        gaps = wait_until(runner.open_gaps, message="the gap recorded")
        assert [(g.applied_version, g.held_version) for g in gaps] == [(1, 4)], "the gap is reported"
        assert applied == staff_ids[:1], "nothing after the gap is applied out of order"
        send([2, 3, 4])
        wait_until(lambda: len(applied) >= 4 and not runner.open_gaps(), message="the stream completed")
        send([4])  # a late copy of something applied: skipped
        wait_until(lambda: runner.stats.duplicates >= 1, message="the late copy skipped")
    finally:
        runner.stop_event.set()
        thread.join(timeout=15)
    assert applied == staff_ids, "v1, v2, v3, v4, each once, in version order"
