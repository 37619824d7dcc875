"""The audit over the real broker: a scripted school year, point-in-time questions checked
against hand-derived answers, replay equal to live, and a tampered access log caught."""

from __future__ import annotations

import contextlib
import json
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from services.access.api import create_app
from services.access.bootstrap import build, build_relay, build_runner
from services.access.settings import AccessSettings
from services.audit.cli import app
from shared.contracts import events as e
from shared.contracts.topics import Topic
from shared.crypto import new_master_key
from shared.kafka.admin import ensure_topics
from shared.kafka.producer import STREAM_VERSION_HEADER, EventPublisher, make_producer
from tests.support import ACCESS_SCOPES, TOKENS, SmtpCatcher, api_client, read_all, wait_until

BRANCH, DOSSIER = uuid.uuid4(), uuid.uuid4()
IB_ER, TEACHER, CONSULTANT, NEW_IB_ER = (uuid.uuid4() for _ in range(4))
ADDRESS = e.Address(street="Schiekade", house_number="12", postcode="3032 AJ", city="Rotterdam")


def day(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# (event, effective, recorded): the departure of the IB'er is reported three weeks late.
SCHOOL_YEAR = [
    (e.BranchFounded(branch_id=BRANCH, vestigingscode="12AB00", name="OBS De Regenboog", address=ADDRESS,
                     phone="+31101234567", wijknetwerk="Noord"), "2025-08-01", "2025-08-01"),
    (e.StaffJoined(branch_id=BRANCH, staff_id=IB_ER, role=e.StaffRole.IB_ER, name="A", email="a@school.example"),
     "2025-08-15", "2025-08-15"),
    (e.StaffJoined(branch_id=BRANCH, staff_id=TEACHER, role=e.StaffRole.LEERKRACHT, name="T",
                   email="t@school.example"), "2025-08-15", "2025-08-15"),
    (e.DossierOpened(branch_id=BRANCH, dossier_id=DOSSIER, pupil_id=uuid.uuid4(), contact_staff_id=TEACHER,
                     summary="Leesproblemen"), "2025-09-10", "2025-09-10"),
    (e.ConsultantJoined(staff_id=CONSULTANT, name="C", email="c@swv.example", wijknetwerken=["Noord"]),
     "2025-11-01", "2025-11-01"),
    (e.StaffJoined(branch_id=BRANCH, staff_id=NEW_IB_ER, role=e.StaffRole.IB_ER, name="N", email="n@school.example"),
     "2026-02-01", "2026-02-01"),
    (e.StaffDeparted(branch_id=BRANCH, staff_id=IB_ER), "2026-01-31", "2026-02-20"),
    (e.DossierContactAssigned(branch_id=BRANCH, dossier_id=DOSSIER, contact_staff_id=NEW_IB_ER, reason="reported"),
     "2026-03-01", "2026-03-01"),
]


@contextlib.contextmanager
def school_year(broker, topic_prefix: str, database_url: str, master_key: str, keys_dir: Path,
                smtp_port: int) -> Iterator[tuple[object, AccessSettings]]:
    """The access service live, the scripted year processed, three views logged."""
    settings = AccessSettings(kafka_bootstrap_servers=broker.bootstrap, topic_prefix=topic_prefix,
                              database_url=database_url, keystore_url=f"sqlite:///{keys_dir / 'keys.sqlite'}",
                              master_key=master_key, consumer_group=f"{topic_prefix}access",
                              smtp_port=smtp_port)
    deps = build(settings)
    ensure_topics(broker.bootstrap, [deps.topics(t) for t in Topic], 3, 1)
    workers = [build_runner(deps), build_relay(deps)]
    threads = [threading.Thread(target=w.run, daemon=True) for w in workers]
    for thread in threads:
        thread.start()
    try:
        publisher = EventPublisher(make_producer(broker.bootstrap, "school-year"))
        ids = []
        for event, effective, recorded in SCHOOL_YEAR:
            encoded = deps.codec.encode(event, event_id=str(uuid.uuid4()), recorded_at=day(recorded),
                                        effective_at=day(effective))
            publisher.publish(encoded)
            ids.append(encoded.id)
        publisher.close()
        api = api_client(create_app(deps), "access", ACCESS_SCOPES)
        wait_until(lambda: api.get("/v1/check", params={"staff_id": str(NEW_IB_ER), "dossier_id": str(DOSSIER),
                                                       "after_event": ids[-1]}).status_code == 200,
                   message="processed")
        for who in (NEW_IB_ER, IB_ER, TEACHER):  # views, allowed and not, into the hash-chained log
            api.post(f"/v1/dossiers/{DOSSIER}/views", json={}, headers=TOKENS.person(who, "ib_er", ACCESS_SCOPES,
                                                                                     "access"))
        wait_until(lambda: len([r for r in read_all(broker.bootstrap, deps.topics(Topic.ACCESS_EVENTS))]) >= 7,
                   message="the access events published")
        yield deps, settings
    finally:
        for worker in workers:
            worker.stop_event.set()
        for thread in threads:
            thread.join(timeout=15)


@pytest.fixture(scope="module")
def year(broker, tmp_path_factory) -> Iterator[tuple[object, AccessSettings]]:
    """One year for every test that only reads it (the questions, the tampered copies)."""
    directory = tmp_path_factory.mktemp("audit-year")
    smtp = SmtpCatcher().start()
    try:
        with school_year(broker, f"t{uuid.uuid4().hex[:10]}.", f"sqlite:///{directory / 'access.sqlite'}",
                         new_master_key(), directory, smtp.port) as built:
            yield built
    finally:
        smtp.stop()


@pytest.fixture
def own_year(broker, topic_prefix, database_url, master_key, tmp_path, smtp_server):
    """A year of its own, for a test that adds to it."""
    with school_year(broker, topic_prefix, database_url, master_key, tmp_path, smtp_server.port) as built:
        yield built


def audit(broker, prefix: str, *args: str) -> tuple[int, dict]:
    result = CliRunner().invoke(app, ["--json", *args],
                                env={"KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap, "SAMENVEILIG_TOPIC_PREFIX": prefix})
    return result.exit_code, json.loads(result.stdout) if result.stdout.strip() else {}


@pytest.mark.parametrize(("at", "axis", "expected"), [
    ("2025-09-05T12:00:00+00:00", "valid", {}),
    ("2025-10-01T12:00:00+00:00", "valid", {IB_ER: "ib_er-sees-branch", TEACHER: "contact-person"}),
    ("2025-12-01T12:00:00+00:00", "valid", {IB_ER: "ib_er-sees-branch", TEACHER: "contact-person",
                                            CONSULTANT: "swv-consultant-sees-wijknetwerk"}),
    # The departure took effect on 31 January: as we now know it, the IB'er could not see it on 10 February...
    ("2026-02-10T12:00:00+00:00", "valid", {TEACHER: "contact-person", CONSULTANT: "swv-consultant-sees-wijknetwerk",
                                            NEW_IB_ER: "ib_er-sees-branch"}),
    # ...but it was reported on 20 February, so on 10 February the system still let them.
    ("2026-02-10T12:00:00+00:00", "record", {IB_ER: "ib_er-sees-branch", TEACHER: "contact-person",
                                             CONSULTANT: "swv-consultant-sees-wijknetwerk",
                                             NEW_IB_ER: "ib_er-sees-branch"}),
    ("2026-03-15T12:00:00+00:00", "valid", {CONSULTANT: "swv-consultant-sees-wijknetwerk",
                                            NEW_IB_ER: "ib_er-sees-branch"}),
])
def test_who_could_see_the_dossier_at_moments_of_the_school_year(year, broker, at, axis, expected):
    code, answer = audit(broker, year[1].topic_prefix, "who-could-see", str(DOSSIER), "--at", at, "--axis", axis)
    assert code == 0
    assert {uuid.UUID(row["staff_id"]): row["rule"] for row in answer["could_see"]} == expected


def test_what_could_see_timeline_replay_and_verify(year, broker, tmp_path):
    _, settings = year
    topic_prefix = settings.topic_prefix
    code, answer = audit(broker, topic_prefix, "what-could-see", str(IB_ER), "--at", "2025-10-01T12:00:00+00:00")
    assert code == 0 and [row["dossier_id"] for row in answer["could_see"]] == [str(DOSSIER)]

    code, answer = audit(broker, topic_prefix, "timeline", str(DOSSIER))
    kinds = [row["type"] for row in answer["timeline"]]
    assert kinds[0] == "DossierOpened" and kinds.count("DossierViewed") == 3
    assert "DossierContactAssigned" in kinds and "NotificationsStopped" in kinds

    code, answer = audit(broker, topic_prefix, "replay", "--access-db", settings.database_url)
    assert code == 0 and answer["replay_equals_live"] and answer["events"] >= len(SCHOOL_YEAR)

    code, answer = audit(broker, topic_prefix, "verify", "--access-db", settings.database_url)
    assert code == 0 and answer["ok"], answer
    out = tmp_path / "rapport.html"
    code, _ = audit(broker, topic_prefix, "report", str(DOSSIER), "--from", "2025-08-01T00:00:00+00:00",
                    "--to", "2026-12-31T00:00:00+00:00", "--out", str(out))
    assert code == 0 and "Wie kon de hulpvraag inzien" in out.read_text()


@pytest.mark.parametrize("tampering", ["altered", "removed", "removed-renumbered", "reordered"])
def test_a_tampered_access_log_is_caught(year, broker, tampering):
    deps, settings = year
    topic_prefix = settings.topic_prefix
    copy = f"{topic_prefix}copy{tampering}."
    ensure_topics(broker.bootstrap, [f"{copy}{t}" for t in Topic], 3, 1)
    producer = make_producer(broker.bootstrap, "tamperer", enable_idempotence=False)
    for topic in (Topic.REGISTRY_EVENTS, Topic.AUTH_EVENTS):
        for record in read_all(broker.bootstrap, deps.topics(topic)):
            producer.send(f"{copy}{topic}", key=record.key, value=record.value, headers=record.headers,
                          partition=record.partition)
    access = read_all(broker.bootstrap, deps.topics(Topic.ACCESS_EVENTS))
    views = [r for r in access if b'"DossierViewed"' in r.value]
    others = [r for r in access if r not in views]
    if tampering == "altered":
        views[1] = views[1]._replace(value=views[1].value.replace(b'"allowed":false', b'"allowed":true'))
    elif tampering == "removed":
        views.pop(1)
    elif tampering == "removed-renumbered":
        # A careful forger also closes the gap in the stream versions: the hash chain still shows it.
        removed = views.pop(1)
        gone = stream_version(removed)
        others, views = ([renumbered(r, gone) if r.key == removed.key else r for r in part] for part in (others, views))
    else:
        views[0], views[1] = views[1], views[0]
    for record in others + views:
        producer.send(f"{copy}{Topic.ACCESS_EVENTS}", key=record.key, value=record.value, headers=record.headers,
                      partition=record.partition)
    producer.flush()
    producer.close()
    code, answer = audit(broker, copy, "verify")
    findings = {f["check"]: f for f in answer["findings"]}
    chain = findings["the access log hash chain is intact"]
    streams = findings["every event stream is complete (versions 1..n)"]
    assert code == 1
    if tampering == "removed":
        # The views after the gap are held, as every consumer holds them; the gap is the finding.
        assert not streams["ok"] and "are missing" in streams["problems"][0], streams
    elif tampering == "reordered":
        assert not streams["ok"] and "come before" in streams["problems"][0], streams
    else:
        assert streams["ok"] and not chain["ok"], chain


def stream_version(record) -> int:
    return int(dict(record.headers)[STREAM_VERSION_HEADER])


def renumbered(record, gone: int):
    """The record with its stream version moved down by one if it came after the removed one."""
    version = stream_version(record)
    if version <= gone:
        return record
    return record._replace(headers=[(k, str(version - 1).encode() if k == STREAM_VERSION_HEADER else v)
                                    for k, v in record.headers])


def test_a_replay_resumes_from_a_snapshot_and_a_changed_rulebook_starts_over(own_year, broker, topic_prefix,
                                                                               tmp_path, monkeypatch):
    deps, settings = own_year
    snapshots = tmp_path / "snapshots"
    code, first = audit(broker, topic_prefix, "replay", "--access-db", settings.database_url,
                        "--snapshot-dir", str(snapshots))
    assert code == 0 and not first["resumed_from_snapshot"] and list(snapshots.glob("access-*.json"))

    late = uuid.uuid4()
    publisher = EventPublisher(make_producer(broker.bootstrap, "more"))
    encoded = deps.codec.encode(e.StaffJoined(branch_id=BRANCH, staff_id=late, role=e.StaffRole.DIRECTEUR, name="D",
                                              email="d@school.example"), event_id=str(uuid.uuid4()),
                                recorded_at=day("2026-04-01"))
    publisher.publish(encoded)
    publisher.close()
    api = api_client(create_app(deps), "access", ACCESS_SCOPES)
    wait_until(lambda: api.get("/v1/check", params={"staff_id": str(late), "dossier_id": str(DOSSIER),
                                                   "after_event": encoded.id}).status_code == 200)
    wait_until(lambda: len(read_all(broker.bootstrap, deps.topics(Topic.ACCESS_EVENTS))) >= 8, message="grant")

    code, resumed = audit(broker, topic_prefix, "replay", "--access-db", settings.database_url,
                          "--snapshot-dir", str(snapshots))
    assert code == 0 and resumed["resumed_from_snapshot"] and resumed["replay_equals_live"]
    assert resumed["events"] < first["events"], "only what came after the snapshot was read"

    import services.audit.snapshot as snapshot_module

    monkeypatch.setattr(snapshot_module, "snapshot_version", lambda: "changed-rules")
    code, fresh = audit(broker, topic_prefix, "replay", "--access-db", settings.database_url,
                        "--snapshot-dir", str(snapshots))
    assert code == 0 and not fresh["resumed_from_snapshot"] and fresh["events"] > first["events"]
