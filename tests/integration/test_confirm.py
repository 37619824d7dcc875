"""The relay's read-back over a real broker: a broker that comes back without what it
acknowledged (here an in-memory Tansu restarted empty, as after an unclean leader election or
a restore from an older backup) gets every lost event again, with the same id and stream
version, and the relay confirms them once they are really there."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from deploy.localbroker import LocalBroker
from services.access import store
from services.access.bootstrap import build
from services.access.settings import AccessSettings
from shared.clock import SystemClock
from shared.contracts.events import StaffDeparted
from shared.contracts.topics import Topic
from shared.kafka.admin import ensure_topics
from shared.kafka.confirm import PublishedConfirmer
from shared.kafka.producer import STREAM_VERSION_HEADER, EventPublisher, NotAcknowledged
from shared.outbox import enqueue_event, publish_due
from tests.support import read_all, wait_until

pytestmark = [pytest.mark.every_database, pytest.mark.broker, pytest.mark.tansu_only, pytest.mark.timeout(120)]


@pytest.fixture
def forgetful_broker(broker) -> Iterator[LocalBroker]:
    if broker.kind != "tansu":
        pytest.skip(f"restarts a local Tansu of its own; the session broker is {broker.kind}")
    local = LocalBroker(storage="memory").start()
    yield local
    local.stop()


def test_events_the_broker_lost_after_acknowledging_them_are_published_again(
        forgetful_broker, topic_prefix, database_url, master_key, tmp_path):
    bootstrap = forgetful_broker.bootstrap
    deps = build(AccessSettings(kafka_bootstrap_servers=bootstrap, topic_prefix=topic_prefix,
                                database_url=database_url, keystore_url=f"sqlite:///{tmp_path / 'k.sqlite'}",
                                master_key=master_key))
    topic = deps.topics(Topic.REGISTRY_EVENTS)
    ensure_topics(bootstrap, [topic], partitions=1, replication=1)
    clock = SystemClock()
    branches = [uuid.uuid4(), uuid.uuid4()]
    events = [deps.codec.encode(StaffDeparted(branch_id=branch, staff_id=uuid.uuid4()), event_id=str(uuid.uuid4()),
                                recorded_at=datetime.now(UTC)) for branch in (*branches, branches[0])]
    with deps.engine.begin() as connection:
        for encoded in events:
            enqueue_event(connection, store.outbox, encoded, clock.now())
    # A round waits 5 s (the relay's 30 s would make the stuck round after the restart the
    # slowest part of the suite); a round that timed out whole gets a fresh producer.
    publisher = EventPublisher.connect(bootstrap, "confirm-test", send_timeout_s=5)
    confirmer = PublishedConfirmer(deps.engine, store.outbox, bootstrap, clock, interval_s=0, sweep_every=1)
    try:
        assert publish_due(deps.engine, store.outbox, publisher, clock) == 3
        wait_until(lambda: all_confirmed(confirmer, deps), message="all three confirmed")
        for _round in range(5):  # rounds over a log that holds everything republish nothing
            confirmer()
        assert confirmer.republished == 0

        forgetful_broker.kill_broker()
        forgetful_broker.start_broker()  # in memory: it comes back with nothing
        ensure_topics(bootstrap, [topic], partitions=1, replication=1)

        def relay_round() -> None:  # what the relay does each round: read back, then publish what is due
            confirmer()
            with contextlib.suppress(NotAcknowledged):
                publish_due(deps.engine, store.outbox, publisher, clock)

        def republished_and_confirmed() -> bool:
            relay_round()
            return len(read_all(bootstrap, topic)) >= 3 and all_confirmed(confirmer, deps)
        wait_until(republished_and_confirmed, timeout_s=90, message="the lost events published again and confirmed")
    finally:
        publisher.close()
        confirmer.close()

    on_log = read_all(bootstrap, topic)
    versions = {r.value: dict(r.headers)[STREAM_VERSION_HEADER] for r in on_log}
    assert sorted(versions.values()) == [b"1", b"1", b"2"], "each stream keeps its versions"
    # The same events. A round that timed out may have landed after all before a fresh producer
    # (a new producer id) sent it again: a copy with the same id and version, which consumers
    # drop by its event id (the processed-events table).
    assert {r.value for r in on_log} == {e.value for e in events}, "the same events"
    assert confirmer.republished >= 1


def all_confirmed(confirmer: PublishedConfirmer, deps) -> bool:
    confirmer()
    with deps.engine.connect() as connection:
        return not connection.execute(select(store.outbox.c.seq).where(store.outbox.c.confirmed_at.is_(None))).all()
