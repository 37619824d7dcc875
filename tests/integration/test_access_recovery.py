"""The access service when things go wrong in its log or its process: a stream missing an
event, a processor killed in the middle of a batch (apart from tests/integration/test_access.py,
so that the two files share the workers)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from datetime import UTC, datetime

from sqlalchemy import func, select

from services.access import store
from services.access.bootstrap import build_relay, build_runner
from shared.contracts import events as e
from shared.contracts.envelope import EncodedEvent
from shared.kafka.producer import STREAM_VERSION_HEADER, OutgoingRecord
from tests.integration import test_access
from tests.integration.test_access import BRANCH, BRANCH_FOUNDED, REPO, dossier, person
from tests.support import wait_until

access = test_access.access  # the same fixture: the access service, its workers started by each test


def test_a_check_fails_closed_while_the_log_misses_an_event_of_a_stream_and_answers_once_it_is_back(access):
    """The broker lost a departure (version 1 of the branch's stream) but kept what came after
    it: the check must not answer "allowed" from a state without the departure."""
    access.deps.settings.max_wait_ms = 1000  # how long a check waits before its 503 (5 s deployed)
    access.start(build_runner(access.deps))
    access.start(build_relay(access.deps))  # publishes what the departure leads to (revocations)
    ib_er = person("ib_er", "ib@school.example")
    opened = dossier(ib_er.staff_id)
    ids = access.publish(BRANCH_FOUNDED, ib_er, opened)
    params = {"staff_id": str(ib_er.staff_id), "dossier_id": str(opened.dossier_id), "after_event": ids[-1]}
    wait_until(lambda: access.api.get("/v1/check", params=params).status_code == 200, message="processed")
    assert access.check(ib_er.staff_id, opened.dossier_id)["allowed"]

    now = datetime.now(UTC)
    departure, later = (access.deps.codec.encode(event, event_id=str(uuid.uuid4()), recorded_at=now)
                        for event in (e.StaffDeparted(branch_id=BRANCH, staff_id=ib_er.staff_id),
                                      person("leerkracht", "juf@school.example")))
    assert departure.key == later.key, "one stream: the branch's"

    def send(*versioned: tuple[int, EncodedEvent]) -> None:
        acks = access.publisher.send_records([
            OutgoingRecord(x.topic, x.key, x.value, [*x.headers, (STREAM_VERSION_HEADER, str(v).encode())])
            for v, x in versioned])
        assert all(ack is not None for ack in acks)

    send((2, later))  # version 1, the departure, is missing from the log
    held = {**params, "after_event": later.id}
    gap = wait_until(lambda: access.api.get("/v1/check", params=held).json().get("detail", ""),
                     message="the gap noticed")
    failed = access.api.get("/v1/check", params=params)
    assert failed.status_code == 503 and failed.json()["type"] == "/problems/not-caught-up", failed.text
    assert "miss earlier events" in failed.json()["detail"] and "allowed" not in failed.json(), gap

    send((1, departure), (2, later))  # the relay publishes them again
    back = {**params, "after_event": departure.id}
    wait_until(lambda: access.api.get("/v1/check", params=back).status_code == 200,
               message="the gap filled")
    decision = access.check(ib_er.staff_id, opened.dossier_id)
    assert not decision["allowed"] and decision["rule"] == "departed"


def test_a_processor_killed_mid_batch_loses_no_grant_and_sends_no_mail_twice(access, broker, tmp_path):
    ib_er = person("ib_er", "ib@school.example")
    dossiers = [dossier(ib_er.staff_id) for _ in range(600)]  # the kill lands at 100
    access.publish(BRANCH_FOUNDED, ib_er)
    for start in range(0, len(dossiers), 100):
        access.publish(*dossiers[start:start + 100])
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
           "SAMENVEILIG_TOPIC_PREFIX": access.settings.topic_prefix,
           "SAMENVEILIG_DATABASE_URL": access.settings.database_url,
           "SAMENVEILIG_KEYSTORE_URL": access.settings.keystore_url,
           "SAMENVEILIG_MASTER_KEY": access.settings.master_key.get_secret_value(),
           "SAMENVEILIG_CONSUMER_GROUP": access.settings.consumer_group}

    def mails_queued() -> int:
        with access.deps.engine.connect() as connection:
            return connection.execute(select(func.count()).select_from(store.mail_outbox)).scalar_one()

    log = (tmp_path / "processor.log").open("wb")
    command = [sys.executable, "-m", "services.access.processor"]
    first = subprocess.Popen(command, env=env, cwd=REPO, stdout=log, stderr=log)
    wait_until(lambda: mails_queued() >= 100, timeout_s=60, interval_s=0.005, message="some progress")
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    assert mails_queued() < len(dossiers), "the kill must land mid-stream"
    second = subprocess.Popen(command, env=env, cwd=REPO, stdout=log, stderr=log)
    try:
        wait_until(lambda: mails_queued() >= len(dossiers), timeout_s=120, message="all dossiers processed")
        access.start(build_relay(access.deps))
        wait_until(lambda: len(access.smtp.messages) >= len(dossiers), timeout_s=120, message="all mail sent")
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=20)
    message_ids = [m["Message-ID"] for m in access.smtp.messages]
    assert len(message_ids) == len(set(message_ids)) == len(dossiers), "a mail was lost or sent twice"
    granted = [x for x in access.access_events() if x.type == "AccessGranted"]
    assert len(granted) == 1 and granted[0].event.rule == "ib_er-sees-branch"
    with access.deps.engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(store.dossiers)).scalar_one() == len(dossiers)
