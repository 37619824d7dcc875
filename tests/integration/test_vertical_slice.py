"""The first slice through the plumbing: registry events -> access processor -> its database,
over the real broker, with dead letters and a crash in the middle."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from services.access import store
from services.access.api import create_app
from services.access.bootstrap import AccessDeps, build, build_runner
from services.access.settings import AccessSettings
from shared.contracts.envelope import EncodedEvent, Envelope
from shared.contracts.events import StaffDeparted, StaffJoined, StaffRole
from shared.contracts.topics import Topic
from shared.kafka.producer import EventPublisher, make_producer
from tests.support import ACCESS_SCOPES, api_client, read_all, wait_until

REPO = Path(__file__).resolve().parents[2]
BRANCH = uuid.UUID("00000000-0000-4000-8000-0000000000b1")


@pytest.fixture
def settings(broker, topic_prefix, database_url, master_key, tmp_path) -> AccessSettings:
    return AccessSettings(
        kafka_bootstrap_servers=broker.bootstrap, topic_prefix=topic_prefix,
        database_url=database_url, keystore_url=f"sqlite:///{tmp_path / 'keys.sqlite'}",
        master_key=master_key, consumer_group=f"{topic_prefix}access")


@pytest.fixture
def deps(settings) -> AccessDeps:
    return build(settings)


@pytest.fixture
def publisher(broker) -> Iterator[EventPublisher]:
    publisher = EventPublisher(make_producer(broker.bootstrap, "test-publisher"))
    yield publisher
    publisher.close()


@pytest.fixture
def running_processor(deps) -> Iterator[None]:
    runner = build_runner(deps)
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    yield
    runner.stop_event.set()
    thread.join(timeout=15)
    assert not thread.is_alive(), "processor did not stop on request"


def staff_events(deps: AccessDeps, staff_id: uuid.UUID, departed_at: datetime) -> list[EncodedEvent]:
    joined = StaffJoined(branch_id=BRANCH, staff_id=staff_id, role=StaffRole.IB_ER,
                         name="Fatima el Amrani", email="f.elamrani@school.example")
    departed = StaffDeparted(branch_id=BRANCH, staff_id=staff_id)
    joined_at = departed_at - timedelta(days=400)
    return [
        deps.codec.encode(joined, event_id=str(uuid.uuid4()), recorded_at=joined_at),
        deps.codec.encode(departed, event_id=str(uuid.uuid4()),
                          recorded_at=departed_at + timedelta(days=2), effective_at=departed_at),
    ]


def test_staff_departed_reaches_the_access_database(deps, publisher, running_processor):
    staff_id = uuid.uuid4()
    departed_at = datetime(2026, 7, 10, 16, 0, tzinfo=UTC)
    publisher.publish_all(staff_events(deps, staff_id, departed_at))

    api = api_client(create_app(deps), "access", ACCESS_SCOPES)

    def departed() -> dict | None:
        body = api.get(f"/v1/staff/{staff_id}").json()
        return body if body.get("status") == "departed" else None

    body = wait_until(departed, message="the departure to be applied")
    # Both times travel with the fact: when it took effect and when we learned it.
    assert datetime.fromisoformat(body["departed_at"]) == departed_at
    assert datetime.fromisoformat(body["departure_recorded_at"]) == departed_at + timedelta(days=2)
    assert body["role"] == "ib_er"
    progress = api.get("/v1/progress").json()
    assert sum(p["next_offset"] for p in progress) == 2
    assert all(p["caught_up"] for p in progress)


def test_unknown_staff_is_a_problem_document(deps):
    response = api_client(create_app(deps), "access", ACCESS_SCOPES).get(f"/v1/staff/{uuid.uuid4()}")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "/problems/not-found"


def test_bad_messages_go_to_the_dead_letter_topic_with_their_reason(
        broker, deps, settings, publisher, running_processor):
    topic = deps.topics(Topic.REGISTRY_EVENTS)
    producer = make_producer(broker.bootstrap, "test-garbage")
    good = staff_events(deps, uuid.uuid4(), datetime(2026, 1, 5, tzinfo=UTC))
    valid_envelope = Envelope.model_validate_json(good[1].value)
    unknown_type = valid_envelope.model_copy(update={"type": "StaffTeleported", "id": "evt-unknown"})
    bad_field = valid_envelope.model_copy(update={"id": "evt-bad", "data": {"staff_id": "nope"}})
    for value in (b"\x00\xffgarbage", b'{"hello": "world"}',
                  unknown_type.model_dump_json().encode(), bad_field.model_dump_json().encode()):
        # Signed by the topic's owner: bad bytes only the owner could have written (an unsigned
        # record is dead-lettered as "unsigned" before anything else is looked at).
        key = str(BRANCH).encode()
        producer.send(topic, key=key, value=value,
                      headers=deps.codec.signature_headers(Topic.REGISTRY_EVENTS, key, value))
    producer.flush()
    producer.close()
    publisher.publish_all(good)  # the stream goes on after the bad ones

    dead = wait_until(lambda: len(read_all(broker.bootstrap, f"{topic}.dlq")) >= 4 and
                      read_all(broker.bootstrap, f"{topic}.dlq"), message="four dead letters")
    reasons = sorted(dict(r.headers)["dlq-reason"].decode() for r in dead)
    assert reasons == ["invalid-data", "not-a-cloudevent", "not-json", "unknown-type"]
    for record in dead:
        headers = dict(record.headers)
        assert headers["dlq-source-topic"].decode() == topic
        assert int(headers["dlq-source-offset"]) >= 0
        assert headers["dlq-consumer"].decode() == settings.consumer_group
    assert b"\x00\xffgarbage" in {r.value for r in dead}, "the original bytes are kept for repair"

    api = api_client(create_app(deps), "access", ACCESS_SCOPES)
    wait_until(lambda: sum(p["next_offset"] for p in api.get("/v1/progress").json()) == 6,
               message="the processor to move past the dead letters")


def _processor_env(settings: AccessSettings) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "SAMENVEILIG_TOPIC_PREFIX": settings.topic_prefix,
        "SAMENVEILIG_DATABASE_URL": settings.database_url,
        "SAMENVEILIG_KEYSTORE_URL": settings.keystore_url,
        "SAMENVEILIG_MASTER_KEY": settings.master_key.get_secret_value(),
        "SAMENVEILIG_CONSUMER_GROUP": settings.consumer_group,
    })
    return env


@pytest.mark.every_database
def test_processor_killed_mid_stream_loses_nothing_and_applies_nothing_twice(
        deps, settings, publisher, tmp_path):
    departures, chunk = 600, 25
    staff_ids = [uuid.uuid4() for _ in range(departures)]
    moment = datetime(2026, 6, 30, tzinfo=UTC)
    events = [deps.codec.encode(StaffDeparted(branch_id=BRANCH, staff_id=s), event_id=str(uuid.uuid4()),
                                recorded_at=moment) for s in staff_ids]

    def school_system() -> None:
        # A steady stream over a few seconds (24 chunks), so the kill lands while events keep coming.
        for start in range(0, departures, chunk):
            publisher.publish_all(events[start:start + chunk])
            time.sleep(0.1)

    def applied() -> int:
        with deps.engine.connect() as connection:
            return connection.execute(select(func.count()).select_from(store.staff_departures)).scalar_one()

    stream = threading.Thread(target=school_system)
    stream.start()
    log = (tmp_path / "processor.log").open("wb")
    command = [sys.executable, "-m", "services.access.processor"]
    first = subprocess.Popen(command, env=_processor_env(settings), cwd=REPO, stdout=log, stderr=log)
    try:
        wait_until(lambda: applied() >= 100, timeout_s=60, interval_s=0.01, message="some progress")
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
    assert applied() < departures, "the kill must land mid-stream for this test to mean anything"

    second = subprocess.Popen(command, env=_processor_env(settings), cwd=REPO, stdout=log, stderr=log)
    try:
        stream.join(timeout=120)
        wait_until(lambda: applied() >= departures, timeout_s=90, message="all departures applied")
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=20) == 0, "SIGTERM is a clean stop"
    finally:
        if second.poll() is None:
            second.kill()
    with deps.engine.connect() as connection:
        rows = connection.execute(select(store.staff_departures.c.event_id,
                                         store.staff_departures.c.staff_id)).all()
    assert len(rows) == departures
    assert len({row.event_id for row in rows}) == departures, "an event was applied twice"
    assert {row.staff_id for row in rows} == {str(s) for s in staff_ids}, "a departure was lost"
