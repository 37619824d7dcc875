"""The access service over the real broker, a real database and a real SMTP server."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from services.access import store
from services.access.api import create_app
from services.access.bootstrap import AccessDeps, build, build_relay, build_runner
from services.access.settings import AccessSettings
from shared.contracts import events as e
from shared.contracts.topics import Topic
from shared.kafka.producer import EventPublisher, make_producer
from tests.support import ACCESS_SCOPES, TOKENS, SmtpCatcher, api_client, read_all, wait_until

REPO = Path(__file__).resolve().parents[2]
BRANCH = uuid.UUID("00000000-0000-4000-8000-0000000000a1")
ADDRESS = e.Address(street="Schiekade", house_number="12", postcode="3032 AJ", city="Rotterdam")


@dataclass
class Access:
    deps: AccessDeps
    settings: AccessSettings
    api: TestClient
    publisher: EventPublisher
    smtp: SmtpCatcher
    bootstrap: str
    workers: list

    def publish(self, *events: e.Event, effective_at: datetime | None = None) -> list[str]:
        now = datetime.now(UTC)
        encoded = [self.deps.codec.encode(event, event_id=str(uuid.uuid4()), recorded_at=now,
                                          effective_at=effective_at or now) for event in events]
        self.publisher.publish_all(encoded)
        return [x.id for x in encoded]

    def check(self, staff_id, dossier_id, after_event: str | None = None) -> dict:
        params = {"staff_id": str(staff_id), "dossier_id": str(dossier_id)}
        if after_event:
            params["after_event"] = after_event
        response = self.api.get("/v1/check", params=params)
        assert response.status_code == 200, response.text
        return response.json()

    def start(self, worker) -> None:
        thread = threading.Thread(target=worker.run, daemon=True)
        thread.start()
        self.workers.append((worker, thread))

    def mails_to(self, address: str) -> list:
        return [m for m in self.smtp.messages if m["X-Envelope-To"] == address]

    def access_events(self) -> list:
        records = read_all(self.bootstrap, self.deps.topics(Topic.ACCESS_EVENTS))
        return [self.deps.codec.decode(r.value) for r in records]


def settings_for(broker, topic_prefix, database_url, master_key, tmp_path, smtp) -> AccessSettings:
    return AccessSettings(kafka_bootstrap_servers=broker.bootstrap, topic_prefix=topic_prefix,
                          database_url=database_url, keystore_url=f"sqlite:///{tmp_path / 'keys.sqlite'}",
                          master_key=master_key, consumer_group=f"{topic_prefix}access", smtp_port=smtp.port)


@pytest.fixture
def access(broker, topic_prefix, database_url, master_key, tmp_path, smtp_server) -> Iterator[Access]:
    settings = settings_for(broker, topic_prefix, database_url, master_key, tmp_path, smtp_server)
    deps = build(settings)
    publisher = EventPublisher(make_producer(broker.bootstrap, "registry-under-test"))
    harness = Access(deps, settings, api_client(create_app(deps), "access", ACCESS_SCOPES), publisher, smtp_server,
                     broker.bootstrap, [])
    yield harness
    for worker, _ in harness.workers:
        worker.stop_event.set()
    for _, thread in harness.workers:
        thread.join(timeout=15)
    publisher.close()


def person(role: str, email: str, staff_id: uuid.UUID | None = None, **extra) -> e.StaffJoined:
    return e.StaffJoined(branch_id=BRANCH, staff_id=staff_id or uuid.uuid4(), role=e.StaffRole(role), name="N",
                         email=email, **extra)


def dossier(contact: uuid.UUID, dossier_id: uuid.UUID | None = None) -> e.DossierOpened:
    return e.DossierOpened(branch_id=BRANCH, dossier_id=dossier_id or uuid.uuid4(), pupil_id=uuid.uuid4(),
                           contact_staff_id=contact, summary="Leesproblemen")


BRANCH_FOUNDED = e.BranchFounded(branch_id=BRANCH, vestigingscode="12AB00", name="OBS De Regenboog",
                                 address=ADDRESS, phone="+31101234567", wijknetwerk="Noord")


def test_a_departed_ib_er_is_denied_at_once_and_gets_no_more_mail_while_the_successor_does(access):
    access.start(build_runner(access.deps))
    access.start(build_relay(access.deps))
    old_ib_er, teacher = person("ib_er", "oud.ib@school.example"), person("leerkracht", "juf@school.example")
    first = dossier(teacher.staff_id)
    access.publish(BRANCH_FOUNDED, old_ib_er, teacher, first)
    wait_until(lambda: len(access.smtp.messages) == 2, message="mail about the first dossier")
    assert access.check(old_ib_er.staff_id, first.dossier_id)["rule"] == "ib_er-sees-branch"

    new_ib_er = person("ib_er", "nieuw.ib@school.example")
    (departure,) = access.publish(e.StaffDeparted(branch_id=BRANCH, staff_id=old_ib_er.staff_id))
    decision = access.check(old_ib_er.staff_id, first.dossier_id, after_event=departure)
    assert not decision["allowed"] and decision["rule"] == "departed"
    second = dossier(teacher.staff_id)
    access.publish(new_ib_er, second, e.DossierClosed(branch_id=BRANCH, dossier_id=first.dossier_id))
    wait_until(lambda: len(access.mails_to("nieuw.ib@school.example")) == 2, message="the successor's mail")
    wait_until(lambda: len(access.mails_to("juf@school.example")) == 3, message="the teacher's mail")

    old = access.mails_to("oud.ib@school.example")
    assert len(old) == 1 and "Nieuwe hulpvraag" in old[0]["Subject"]
    body = old[0].get_content()
    assert str(first.dossier_id) in body and "Leesproblemen" not in body, "no pupil details in mail"
    revoked = wait_until(lambda: [x for x in access.access_events() if x.event.staff_id == old_ib_er.staff_id
                                  and x.type in ("AccessRevoked", "NotificationsStopped")], message="revocations")
    assert {x.type for x in revoked} == {"AccessRevoked", "NotificationsStopped"}
    who = access.api.get(f"/v1/dossiers/{second.dossier_id}/staff").json()
    assert {w["staff_id"] for w in who} == {str(new_ib_er.staff_id), str(teacher.staff_id)}


@pytest.mark.every_database
def test_mail_queued_before_a_departure_is_not_sent_after_it(access):
    access.start(build_runner(access.deps))
    ib_er, teacher = person("ib_er", "ib@school.example"), person("leerkracht", "meester@school.example")
    opened = dossier(teacher.staff_id)
    access.publish(BRANCH_FOUNDED, ib_er, teacher, opened)
    (departure,) = access.publish(e.StaffDeparted(branch_id=BRANCH, staff_id=ib_er.staff_id))
    # The runner's first group join can take longer than one check's wait on a loaded CI machine.
    processed = {"staff_id": str(ib_er.staff_id), "dossier_id": str(opened.dossier_id), "after_event": departure}
    wait_until(lambda: access.api.get("/v1/check", params=processed).status_code == 200, message="processed")
    access.start(build_relay(access.deps))  # only now does mail go out
    wait_until(lambda: len(access.mails_to("meester@school.example")) == 1, message="the teacher's mail")

    def mail_left() -> int:  # neither sent nor suppressed yet (the relay goes through them in turn)
        with access.deps.engine.connect() as connection:
            return len(connection.execute(select(store.mail_outbox.c.id).where(
                store.mail_outbox.c.sent_at.is_(None), store.mail_outbox.c.suppressed_at.is_(None))).all())
    wait_until(lambda: mail_left() == 0, message="every queued mail sent or suppressed")
    with access.deps.engine.connect() as connection:
        suppressed = connection.execute(select(store.mail_outbox.c.recipient, store.mail_outbox.c.suppressed_reason)
                                        .where(store.mail_outbox.c.suppressed_at.is_not(None))).all()
    assert [(r.recipient, r.suppressed_reason) for r in suppressed] == [("ib@school.example", "departed")]
    assert not access.mails_to("ib@school.example")


def test_checks_fail_closed_when_nothing_is_processed_or_the_store_is_gone(access):
    access.deps.settings.max_wait_ms = 1000  # how long a check waits before its 503 (5 s deployed)
    response = access.api.get("/v1/check", params={"staff_id": str(uuid.uuid4()), "dossier_id": str(uuid.uuid4())})
    assert response.status_code == 503 and response.json()["type"] == "/problems/not-caught-up"
    assert "not processed anything" in response.json()["detail"]

    access.start(build_runner(access.deps))
    ib_er = person("ib_er", "ib@school.example")
    opened = dossier(ib_er.staff_id)
    ids = access.publish(BRANCH_FOUNDED, ib_er, opened)
    # The runner's first group join can take longer than one check's wait on a loaded CI machine.
    params = {"staff_id": str(ib_er.staff_id), "dossier_id": str(opened.dossier_id), "after_event": ids[-1]}
    wait_until(lambda: access.api.get("/v1/check", params=params).status_code == 200, message="processed")
    assert access.check(ib_er.staff_id, opened.dossier_id, after_event=ids[-1])["allowed"]

    from sqlalchemy import create_engine

    access.deps.engine = create_engine("postgresql+psycopg://nobody@127.0.0.1:9/none",
                                       connect_args={"connect_timeout": 1})
    gone = access.api.get("/v1/check", params={"staff_id": str(ib_er.staff_id),
                                               "dossier_id": str(opened.dossier_id)})
    assert gone.status_code == 503 and gone.json()["type"] == "/problems/unavailable"
    assert "allowed" not in gone.json()


@pytest.mark.every_database
def test_listings_are_complete_and_paged(access):
    access.start(build_runner(access.deps))
    # Its own events (the IB'er's rule-wide grant) must reach the broker, or the API fails
    # closed once they are 5 s old: as deployed, the relay runs beside the processor.
    access.start(build_relay(access.deps))
    ib_er, teacher = person("ib_er", "ib@school.example"), person("leerkracht", "juf@school.example")
    dossiers = [dossier(teacher.staff_id if n % 5 == 0 else ib_er.staff_id) for n in range(60)]
    ids = access.publish(BRANCH_FOUNDED, ib_er, teacher, *dossiers)
    # 63 events can take a loaded machine longer than one request may wait (5 s): first wait
    # until the last is processed, then page.
    processed = {"staff_id": str(ib_er.staff_id), "dossier_id": str(dossiers[-1].dossier_id), "after_event": ids[-1]}
    wait_until(lambda: access.api.get("/v1/check", params=processed).status_code == 200, timeout_s=90,
               message="all 63 events processed")
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 25, "after_event": ids[-1], **({"cursor": cursor} if cursor else {})}
        page = access.api.get(f"/v1/staff/{ib_er.staff_id}/dossiers", params=params).json()
        assert page["total"] == 60
        seen += [item["dossier_id"] for item in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3 and sorted(seen) == sorted(str(d.dossier_id) for d in dossiers) and len(set(seen)) == 60
    mine = access.api.get(f"/v1/staff/{teacher.staff_id}/dossiers", params={"limit": 1000}).json()
    assert mine["total"] == 12 and {i["rule"] for i in mine["items"]} == {"contact-person"}


@pytest.mark.every_database
def test_views_are_logged_allowed_or_not_and_explicit_grants_work(access):
    access.start(build_runner(access.deps))
    access.start(build_relay(access.deps))
    ib_er, teacher = person("ib_er", "ib@school.example"), person("leerkracht", "juf@school.example")
    opened = dossier(ib_er.staff_id)
    ids = access.publish(BRANCH_FOUNDED, ib_er, teacher, opened)
    wait_until(lambda: access.api.get("/v1/check", params={"staff_id": str(teacher.staff_id),
                                                           "dossier_id": str(opened.dossier_id),
                                                           "after_event": ids[-1]}).status_code == 200)
    # Each acts with a token of their own (the code flow's): the person is the token's, never a field.
    as_teacher = TOKENS.person(teacher.staff_id, "leerkracht", ACCESS_SCOPES, "access")
    as_ib_er = TOKENS.person(ib_er.staff_id, "ib_er", ACCESS_SCOPES, "access")
    denied = access.api.post(f"/v1/dossiers/{opened.dossier_id}/views", json={}, headers=as_teacher)
    assert denied.status_code == 200 and denied.json()["allowed"] is False
    # A view logged under a colleague's id, a grant in someone else's name: refused.
    posing = access.api.post(f"/v1/dossiers/{opened.dossier_id}/views", json={"staff_id": str(ib_er.staff_id)},
                             headers=as_teacher)
    assert posing.status_code == 403
    named = access.api.post(f"/v1/dossiers/{opened.dossier_id}/grants", headers=as_teacher,
                            json={"staff_id": str(teacher.staff_id), "granted_by": str(ib_er.staff_id)})
    assert named.status_code in (403, 422), "granted_by is no field any more, and a teacher grants nothing"
    teacher_as_director = TOKENS.person(teacher.staff_id, "directeur", ACCESS_SCOPES, "access")
    refused = access.api.post(f"/v1/dossiers/{opened.dossier_id}/grants", headers=teacher_as_director,
                              json={"staff_id": str(ib_er.staff_id)})
    assert refused.status_code == 403 and refused.json()["reason"] == "not-allowed-to-grant", (
        "the domain checks the granter's own record, not the token's role alone")
    granted = access.api.post(f"/v1/dossiers/{opened.dossier_id}/grants", headers=as_ib_er,
                              json={"staff_id": str(teacher.staff_id),
                                    "until": (datetime.now(UTC) + timedelta(days=30)).isoformat()})
    assert granted.status_code == 201, granted.text
    allowed = access.api.post(f"/v1/dossiers/{opened.dossier_id}/views", json={}, headers=as_teacher)
    assert allowed.json()["allowed"] is True and allowed.json()["rule"] == "explicit-grant"
    as_service = access.api.delete(f"/v1/dossiers/{opened.dossier_id}/grants/{teacher.staff_id}")
    assert as_service.status_code == 403, "a service's own token revokes nothing: a person does"
    revoked = access.api.delete(f"/v1/dossiers/{opened.dossier_id}/grants/{teacher.staff_id}", headers=as_ib_er)
    assert revoked.status_code == 204
    assert access.check(teacher.staff_id, opened.dossier_id)["allowed"] is False

    log = wait_until(lambda: len([x for x in access.access_events() if x.type == "DossierViewed"]) == 2 and
                     [x for x in access.access_events() if x.type == "DossierViewed"], message="the view log")
    assert sorted(x.event.allowed for x in log) == [False, True]
    assert {x.event.staff_id for x in log} == {teacher.staff_id}
    grants = [x.type for x in access.access_events() if x.event.staff_id == teacher.staff_id
              and x.type in ("AccessGranted", "AccessRevoked")]
    assert grants == ["AccessGranted", "AccessRevoked"]


def test_a_dossier_without_contact_is_listed_for_the_swv_and_mailed_to_the_director(access):
    access.start(build_runner(access.deps))
    access.start(build_relay(access.deps))
    director, teacher = person("directeur", "directeur@school.example"), person("leerkracht", "juf@school.example")
    opened = dossier(teacher.staff_id)
    access.publish(BRANCH_FOUNDED, director, teacher, opened)
    ids = access.publish(e.StaffDeparted(branch_id=BRANCH, staff_id=teacher.staff_id),
                         e.ContactPersonMissing(branch_id=BRANCH, dossier_id=opened.dossier_id,
                                                previous_contact_staff_id=teacher.staff_id))
    wait_until(lambda: access.api.get("/v1/missing-contacts", params={"after_event": ids[-1]}).status_code == 200)
    listed = access.api.get("/v1/missing-contacts").json()
    assert listed["total"] == 1 and listed["items"][0]["dossier_id"] == str(opened.dossier_id)
    mail = wait_until(lambda: [m for m in access.mails_to("directeur@school.example")
                               if "zonder contactpersoon" in m["Subject"]], message="the director's alert")
    assert "Wijs in Kindkans een nieuwe contactpersoon toe" in mail[0].get_content()
    access.publish(e.DossierContactAssigned(branch_id=BRANCH, dossier_id=opened.dossier_id,
                                            contact_staff_id=director.staff_id, reason="reported"))
    wait_until(lambda: access.api.get("/v1/missing-contacts").json()["total"] == 0, message="resolved")


class ShiftedClock:
    """The wall clock moved forward by `offset`, for every part of the service at once (the
    processor's reports, the freshness check, the policy): how an expiry weeks away is reached."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset


@pytest.fixture
def shifted_access(broker, topic_prefix, database_url, master_key, tmp_path, smtp_server
                   ) -> Iterator[tuple[Access, ShiftedClock]]:
    settings = settings_for(broker, topic_prefix, database_url, master_key, tmp_path, smtp_server)
    clock = ShiftedClock()
    deps = build(settings, clock=clock)
    publisher = EventPublisher(make_producer(broker.bootstrap, "registry-under-test"))
    harness = Access(deps, settings, api_client(create_app(deps), "access", ACCESS_SCOPES), publisher, smtp_server,
                     broker.bootstrap, [])
    yield harness, clock
    for worker, _ in harness.workers:
        worker.stop_event.set()
    for _, thread in harness.workers:
        thread.join(timeout=15)
    publisher.close()


def test_an_intern_without_an_agreement_is_refused_with_one_allowed_and_after_its_expiry_refused_again(
        shifted_access, topic_prefix):
    """Issue 16, items 4 and 5, over the real broker: the agreement is an event naming who recorded
    it; the grant takes effect only while it is valid; interns never change; the change check is
    logged in the dossier's access log; the audit answers who could see and change on both axes."""
    import json
    from zoneinfo import ZoneInfo

    from typer.testing import CliRunner

    from services.audit.cli import app as audit_app

    access, clock = shifted_access
    access.start(build_runner(access.deps))
    access.start(build_relay(access.deps))
    today = datetime.now(ZoneInfo("Europe/Amsterdam")).date()
    ib_er, teacher = person("ib_er", "ib@school.example"), person("leerkracht", "juf@school.example")
    intern = person("stagiair", "stagiair@school.example", access_until=today + timedelta(days=90))
    opened = dossier(teacher.staff_id)
    ids = access.publish(BRANCH_FOUNDED, ib_er, teacher, intern, opened)
    wait_until(lambda: access.api.get("/v1/check", params={"staff_id": str(intern.staff_id),
                                                           "dossier_id": str(opened.dossier_id),
                                                           "after_event": ids[-1]}).status_code == 200)
    as_ib_er = TOKENS.person(ib_er.staff_id, "ib_er", ACCESS_SCOPES, "access")
    as_teacher = TOKENS.person(teacher.staff_id, "leerkracht", ACCESS_SCOPES, "access")
    as_intern = TOKENS.person(intern.staff_id, "stagiair", ACCESS_SCOPES, "access")
    granted = access.api.post(f"/v1/dossiers/{opened.dossier_id}/grants", headers=as_ib_er,
                              json={"staff_id": str(intern.staff_id),
                                    "until": (datetime.now(UTC) + timedelta(days=30)).isoformat()})
    assert granted.status_code == 201, granted.text

    # Without an agreement: the grant stands but does not take effect, and the check says why.
    refused = access.check(intern.staff_id, opened.dossier_id)
    assert (refused["allowed"], refused["rule"]) == (False, "no-agreement")
    viewed = access.api.post(f"/v1/dossiers/{opened.dossier_id}/views", json={}, headers=as_intern)
    assert viewed.json()["allowed"] is False and viewed.json()["rule"] == "no-agreement"
    before_agreement = datetime.now(UTC)

    # Only the IB'er or director of the branch records it, for an extern or intern, in their own name.
    agreement = {"version": "geheimhouding-2026-1", "signed_on": today.isoformat(),
                 "valid_until": (today + timedelta(days=10)).isoformat()}
    assert access.api.post(f"/v1/staff/{intern.staff_id}/agreements", json=agreement,
                           headers=as_teacher).status_code == 403
    not_time_bound = access.api.post(f"/v1/staff/{teacher.staff_id}/agreements", json=agreement, headers=as_ib_er)
    assert not_time_bound.status_code == 422 and not_time_bound.json()["reason"] == "not-time-bound"
    assert access.api.post(f"/v1/staff/{intern.staff_id}/agreements", json={**agreement, "recorded_by": "x"},
                           headers=as_ib_er).status_code == 422, "the recorder is the token's person, no field"
    recorded = access.api.post(f"/v1/staff/{intern.staff_id}/agreements", json=agreement, headers=as_ib_er)
    assert recorded.status_code == 201, recorded.text

    allowed = access.check(intern.staff_id, opened.dossier_id)
    assert (allowed["allowed"], allowed["rule"]) == (True, "explicit-grant")
    assert access.api.get(f"/v1/staff/{intern.staff_id}").json()["agreement_version"] == "geheimhouding-2026-1"
    # View rights only: an intern never changes; the contact person changes the text, not the status.
    changing = access.api.post(f"/v1/dossiers/{opened.dossier_id}/changes", json={"what": "text"}, headers=as_intern)
    assert changing.status_code == 200 and (changing.json()["allowed"], changing.json()["rule"],
                                            changing.json()["action"]) == (False, "view-only", "change")
    text = access.api.get("/v1/check", params={"staff_id": str(teacher.staff_id),
                                               "dossier_id": str(opened.dossier_id), "action": "change",
                                               "what": "text"}).json()
    assert (text["allowed"], text["rule"], text["what"]) == (True, "contact-person", "text")
    status = access.api.post(f"/v1/dossiers/{opened.dossier_id}/changes", json={"what": "status"},
                             headers=as_teacher).json()
    assert (status["allowed"], status["rule"]) == (False, "contact-person-changes-text-only")
    assert access.api.get("/v1/check", params={"staff_id": str(teacher.staff_id), "dossier_id": str(opened.dossier_id),
                                               "action": "change"}).status_code == 422, "what is to change?"
    after_agreement = datetime.now(UTC)

    # Eleven days on, the agreement has expired: refused again, like after an end date.
    clock.offset = timedelta(days=11)
    expired = wait_until(lambda: (r := access.api.get("/v1/check", params={
        "staff_id": str(intern.staff_id), "dossier_id": str(opened.dossier_id)})).status_code == 200 and r.json(),
        message="a fresh answer on the shifted clock")
    assert (expired["allowed"], expired["rule"]) == (False, "agreement-expired")
    assert access.api.get(f"/v1/staff/{intern.staff_id}/dossiers").json()["total"] == 0

    events = wait_until(lambda: (found := [x for x in access.access_events()
                                           if x.type == "ConfidentialityAgreementRecorded"]) and
                        len([x for x in access.access_events() if x.type == "DossierViewed"]) == 3 and found,
                        message="the agreement and the access log on the broker")
    assert events[0].event.staff_id == intern.staff_id and events[0].event.acted_by.actor == str(ib_er.staff_id)
    entries = [x.event for x in access.access_events() if x.type == "DossierViewed"]
    assert [(v.action, v.what, v.allowed) for v in entries] == [("view", None, False), ("change", "text", False),
                                                                ("change", "status", False)]

    def audit(*args: str) -> dict:
        result = CliRunner().invoke(audit_app, ["--json", *args], env={
            "KAFKA_BOOTSTRAP_SERVERS": access.bootstrap, "SAMENVEILIG_TOPIC_PREFIX": topic_prefix})
        assert result.exit_code == 0, result.output
        return dict(json.loads(result.stdout))

    assert audit("verify")["ok"], "the access log's chain, change checks included, verifies"
    # Between the grant and the recording: signed that day, so on the valid axis the intern could
    # see; as the system knew it then (record axis), not.
    moment = before_agreement.isoformat()
    valid = {row["staff_id"] for row in audit("who-could-see", str(opened.dossier_id), "--at", moment)["could_see"]}
    record = {row["staff_id"] for row in audit("who-could-see", str(opened.dossier_id), "--at", moment,
                                               "--axis", "record")["could_see"]}
    assert str(intern.staff_id) in valid and str(intern.staff_id) not in record
    for axis in ("valid", "record"):
        changers = audit("who-could-see", str(opened.dossier_id), "--at", after_agreement.isoformat(), "--axis",
                         axis, "--action", "change")["could_change"]
        assert {row["staff_id"]: row["may_change"] for row in changers} == {
            str(ib_er.staff_id): ["contact", "text", "status"], str(teacher.staff_id): ["text"]}
    mine = audit("what-could-see", str(teacher.staff_id), "--at", after_agreement.isoformat(), "--action", "change")
    assert [(row["dossier_id"], row["may_change"]) for row in mine["could_change"]] == [
        (str(opened.dossier_id), ["text"])]
    timeline = audit("timeline", str(opened.dossier_id))["timeline"]
    assert [row["detail"] for row in timeline if row["type"] == "ConfidentialityAgreementRecorded"] == [
        f"version=geheimhouding-2026-1 valid_until={today + timedelta(days=10)}"], "the granted intern's agreement"
    assert "change text: allowed=False rule=view-only" in [row["detail"] for row in timeline]
