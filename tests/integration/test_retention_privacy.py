"""Data leaks and data-subject requests over the real broker, database and SMTP server.

A school reports pupils and dossiers through the registry; the retention service reads the whole
event log to work out which parents a leak affects (including through an account whose access
leaked: what it could see, by the access service's rules) and mails exactly them; the 72-hour
clock raises its alarm event and metric. Requests: an inspection export from the log, a
correction that the next leak mail follows, a refused and a granted deletion.
"""

from __future__ import annotations

import base64
import threading
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from uuid import UUID, uuid4

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from services.registry.api import create_app as registry_app
from services.registry.bootstrap import build as build_registry
from services.registry.bootstrap import build_relay as registry_relay
from services.registry.settings import RegistrySettings
from services.retention import store as retention_store
from services.retention.api import create_app as retention_app
from services.retention.bootstrap import build as build_retention
from services.retention.bootstrap import build_relay as retention_relay
from services.retention.bootstrap import build_runner as retention_runner
from services.retention.domain import answer_due
from services.retention.settings import RetentionSettings
from shared.clock import ManualClock
from shared.contracts.envelope import EventCodec
from shared.contracts.events import ActedBy
from shared.contracts.topics import Topic
from shared.crypto import SqlKeyStore
from shared.db import make_engine
from tests.support import RETENTION_SCOPES, TOKENS, api_client, fg_headers, read_all, wait_until

ADDRESS = {"street": "Schiekade", "house_number": "12", "postcode": "3032 AJ", "city": "Rotterdam"}
OTHER = {"street": "Coolsingel", "house_number": "40", "postcode": "3011 AD", "city": "Rotterdam"}


@pytest.fixture
def school(broker, topic_prefix, database_url, master_key, tmp_path, smtp_server):
    common = {"kafka_bootstrap_servers": broker.bootstrap, "topic_prefix": topic_prefix, "master_key": master_key,
              "keystore_url": f"sqlite:///{tmp_path / 'keys.sqlite'}", "smtp_port": smtp_server.port}
    registry = build_registry(RegistrySettings(database_url=f"sqlite:///{tmp_path / 'registry.sqlite'}",
                                               consumer_group=f"{topic_prefix}registry", **common))
    clock = ManualClock(datetime.now(UTC))
    retention = build_retention(RetentionSettings(database_url=database_url, consumer_group=f"{topic_prefix}ret",
                                                  privacy_contact="fg@pporotterdam.example",
                                                  leak_mail_second_approval_above=3, **common), clock=clock)
    workers = [registry_relay(registry), retention_runner(retention), retention_relay(retention)]
    threads = [threading.Thread(target=w.run, daemon=True) for w in workers]
    for thread in threads:
        thread.start()

    credential = registry.credentials.create("ParnasSys", ["12AB", "34CD"], [])

    def staff(ref: str, school_code: str, role: str) -> dict[str, str]:
        return {"kind": "staff_joined", "mutation_id": f"m-{ref}", "vestigingscode": school_code, "staff_ref": ref,
                "role": role, "name": f"Medewerker {ref}", "email": f"{ref}@school.example"}

    def pupil(ref: str, school_code: str, name: str, parents: list[str], born: str = "2015-03-01"):
        return {"kind": "pupil_enrolled", "mutation_id": f"m-{ref}", "vestigingscode": school_code, "pupil_ref": ref,
                "name": name, "date_of_birth": born, "parent_emails": parents}

    def dossier(ref: str, school_code: str, pupil_ref: str, contact: str) -> dict[str, str]:
        return {"kind": "dossier_opened", "mutation_id": f"m-{ref}", "vestigingscode": school_code,
                "dossier_ref": ref, "pupil_ref": pupil_ref, "contact_staff_ref": contact,
                "summary": f"Hulpvraag {ref}: leest moeizaam."}

    reported = TestClient(registry_app(registry)).post("/v1/mutations", headers={
        "Authorization": f"Bearer {credential.api_key}"}, json={"mutations": [
            {"kind": "branch", "change": "founded", "mutation_id": "b-1", "vestigingscode": "12AB00",
             "name": "OBS De Regenboog", "address": ADDRESS, "phone": "010-1234567", "wijknetwerk": "Noord",
             "bevoegd_gezag": "41234"},
            {"kind": "branch", "change": "founded", "mutation_id": "b-2", "vestigingscode": "34CD00",
             "name": "CBS Het Anker", "address": OTHER, "phone": "010-7654321", "wijknetwerk": "Zuid",
             "bevoegd_gezag": "57890"},
            staff("ib", "12AB00", "ib_er"), staff("juf", "12AB00", "leerkracht"),
            staff("meester", "12AB00", "leerkracht"), staff("ib2", "34CD00", "ib_er"),
            pupil("anna", "12AB00", "Anna Jansen", ["anna.ouder1@example.nl", "anna.ouder2@example.nl"]),
            pupil("noor", "12AB00", "Noor Jansen", ["anna.ouder2@example.nl", "anna.ouder1@example.nl"]),
            pupil("bram", "12AB00", "Bram de Vries", ["bram.ouder@example.nl"]),
            pupil("daan", "12AB00", "Daan Visser", ["daan.ouder@example.nl"], born="2009-01-10"),
            pupil("cas", "34CD00", "Cas Bakker", ["cas.ouder@example.nl"]),
            dossier("hv-anna", "12AB00", "anna", "juf"), dossier("hv-daan", "12AB00", "daan", "meester"),
            dossier("hv-cas", "34CD00", "cas", "ib2")]})
    assert reported.status_code == 202, reported.text

    keys = SqlKeyStore(make_engine(f"sqlite:///{tmp_path / 'keys.sqlite'}"), base64.b64decode(master_key))
    codec = EventCodec(keys, source="/test")

    def events(topic: Topic) -> list:
        return [codec.decode(r.value) for r in read_all(broker.bootstrap, f"{topic_prefix}{topic}")]

    def published_ids() -> dict[str, UUID]:
        found: dict[str, UUID] = {}
        for recorded in events(Topic.REGISTRY_EVENTS):
            event = recorded.event
            if recorded.type == "PupilEnrolled":
                found[event.name.split()[0].lower()] = event.pupil_id
            elif recorded.type == "DossierOpened":
                found[event.summary.split()[1].rstrip(":")] = event.dossier_id
            elif recorded.type == "StaffJoined":
                found[event.email.split("@")[0]] = event.staff_id
        return found

    # The registry's relay publishes a moment after the 202: wait for all 12 (4 staff, 5 pupils,
    # 3 dossiers) instead of reading whatever is on the log already.
    def all_published() -> dict[str, UUID] | None:
        found = published_ids()
        return found if len(found) == 12 else None

    ids = wait_until(all_published, message="the registry's events on the log")

    def known_pupils() -> int:
        with retention.engine.connect() as connection:
            return len(connection.execute(select(retention_store.pupils)).all())

    wait_until(lambda: known_pupils() == 5, message="retention follows the pupils")
    # The leak is discovered now, after all of the above took effect.
    clock.set(datetime.now(UTC) + timedelta(seconds=1))

    def report(*mutations: dict) -> None:
        answer = TestClient(registry_app(registry)).post("/v1/mutations", json={"mutations": list(mutations)},
                                                         headers={"Authorization": f"Bearer {credential.api_key}"})
        assert answer.status_code == 202, answer.text

    branches = {r.event.vestigingscode: r.event.branch_id for r in events(Topic.REGISTRY_EVENTS)
                if r.type == "BranchFounded"}
    # The school board's FG (of De Regenboog's board) acts, with a person's token of her own.
    fg = uuid4()
    api = api_client(retention_app(retention), "retention", RETENTION_SCOPES)
    api.headers.update(fg_headers(fg, branches["12AB00"]))
    yield SimpleNamespace(api=api, clock=clock, ids=ids, events=events, smtp=smtp_server, retention=retention,
                          report=report, relay=workers[2], branches=branches, fg=fg)
    for worker in workers:
        worker.stop_event.set()
    for thread in threads:
        thread.join(timeout=15)


def mails_to(smtp_server, subject_part: str = "Datalek") -> list[str]:
    return sorted(m["To"] for m in smtp_server.messages if subject_part in m["Subject"])


def settled(smtp_server, api: TestClient, leak_id: str, expected_mails: int, retention) -> dict:
    leak = wait_until(lambda: (r := api.get(f"/v1/leaks/{leak_id}").json())["resolved_at"] and r,
                      message="leak resolved")
    wait_until(lambda: len(mails_to(smtp_server)) >= expected_mails, message="leak mail delivered")
    # The leak's mail is queued with its resolution: once none waits, every one of them was
    # delivered, and "exactly" can be asserted.
    wait_until(lambda: unsent_mail(retention) == 0, message="the retention relay to send all its mail")
    return leak


def unsent_mail(retention) -> int:
    outbox = retention_store.mail_outbox
    with retention.engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(outbox).where(
            outbox.c.sent_at.is_(None), outbox.c.suppressed_at.is_(None))).scalar_one()


def test_a_leak_mails_exactly_the_affected_parents_and_runs_the_72_hour_clock(school):
    api, clock, ids, events, smtp_server = school.api, school.clock, school.ids, school.events, school.smtp
    discovered = clock.now()
    # A list with Anna's hulpvraag and the details of Bram and of Noor (Anna's sister) went to the
    # wrong school. Anna's and Noor's parents get one mail each, not one per child.
    answer = api.post("/v1/leaks", json={
        "nature": "Een overzicht van hulpvragen is naar een verkeerde school gemaild.",
        "discovered_at": discovered.isoformat(), "dossier_ids": [str(ids["hv-anna"])],
        "pupil_ids": [str(ids["bram"]), str(ids["noor"])], "notice": "verkeerde-ontvanger",
        "measures": "De ontvanger heeft het overzicht verwijderd."})
    assert answer.status_code == 202, answer.text
    leak_id = answer.json()["leak_id"]
    assert answer.headers["Location"] == f"/v1/leaks/{leak_id}"

    leak = settled(smtp_server, api, leak_id, 3, school.retention)
    assert mails_to(smtp_server) == ["anna.ouder1@example.nl", "anna.ouder2@example.nl", "bram.ouder@example.nl"]
    body = next(m for m in smtp_server.messages if m["To"] == "bram.ouder@example.nl").get_content()
    assert "datalek" in body and "fg@pporotterdam.example" in body
    # Built from the chosen fixed text; the FG's own words stay in the register.
    assert "bij een verkeerde ontvanger terechtgekomen" in body and "De ontvanger heeft" not in body
    assert "naar een verkeerde school gemaild" not in body
    leak_mails = [m for m in smtp_server.messages if "Datalek" in m["Subject"]]
    assert [(name, m["Subject"]) for m in leak_mails for name in ("Anna", "Bram", "Noor", "Jansen", "leest moeizaam")
            if name in m.get_content() or name in m["Subject"]] == []
    assert set(leak["affected_pupil_ids"]) == {str(ids["anna"]), str(ids["bram"]), str(ids["noor"])}
    assert {(c["staff_id"], c["rule"]) for c in leak["could_see"]} == {
        (str(ids["ib"]), "ib_er-sees-branch"), (str(ids["juf"]), "contact-person")}
    assert leak["parents_mailed"] == 3 and leak["pupils_unreachable"] == 0
    assert leak["regulator"]["status"] == "open"
    notified = [e.event for e in events(Topic.RETENTION_EVENTS) if e.type == "ParentsNotified"]
    assert sorted((n.pupil_id, n.recipients) for n in notified) == sorted(
        [(ids["anna"], 2), (ids["noor"], 2), (ids["bram"], 1)])

    # A teacher's password was phished: everything "meester" could see leaked (Daan's hulpvraag).
    smtp_server.messages.clear()
    answer = api.post("/v1/leaks", json={"nature": "Wachtwoord van een leerkracht is buitgemaakt (phishing).",
                                         "discovered_at": discovered.isoformat(), "staff_ids": [str(ids["meester"])]})
    second = answer.json()["leak_id"]
    settled(smtp_server, api, second, 1, school.retention)
    assert mails_to(smtp_server) == ["daan.ouder@example.nl"]

    # The school assesses the phishing leak as unlikely to be a risk (the session was blocked at
    # once): no report due, no alarm. The register is completed as the investigation goes.
    assessed = api.patch(f"/v1/leaks/{second}", json={
        "not_reportable_reason": "Sessie direct geblokkeerd; geen inzage vastgesteld in het toegangslog.",
        "measures": "Wachtwoord gereset, tweestapsverificatie opnieuw ingesteld."})
    assert assessed.status_code == 200 and assessed.json()["regulator"]["status"] == "not-reportable"
    assert assessed.json()["measures"].startswith("Wachtwoord gereset")

    # The 72-hour clock: one second past the deadline, the alarm event and the metric.
    assert "samenveilig_leaks_report_overdue 0.0" in api.get("/metrics").text
    clock.set(discovered + timedelta(hours=72, seconds=1))
    wait_until(lambda: [e.event.leak_id for e in events(Topic.RETENTION_EVENTS) if e.type == "LeakReportOverdue"]
               == [UUID(leak_id)], message="the overdue alarm")
    metrics = api.get("/metrics").text
    assert "samenveilig_leaks_report_overdue 1.0" in metrics and "samenveilig_leaks_report_open 1.0" in metrics
    assert api.get(f"/v1/leaks/{leak_id}").json()["regulator"]["status"] == "overdue"

    late = api.post(f"/v1/leaks/{leak_id}/regulator-report",
                    json={"reported_at": clock.now().isoformat(), "reference": "AP-2026-0042"})
    assert late.status_code == 409 and late.headers["content-type"] == "application/problem+json"
    assert "reasons for the delay" in late.json()["detail"]
    reported = api.post(f"/v1/leaks/{leak_id}/regulator-report", json={
        "reported_at": clock.now().isoformat(), "reference": "AP-2026-0042",
        "delay_reason": "De omvang werd pas na forensisch onderzoek duidelijk."})
    assert reported.status_code == 200 and reported.json()["regulator"]["status"] == "reported-late"
    assert "samenveilig_leaks_report_overdue 0.0" in api.get("/metrics").text
    wait_until(lambda: any(e.type == "RegulatorNotified" and e.event.reference == "AP-2026-0042"
                           for e in events(Topic.RETENTION_EVENTS)), message="RegulatorNotified published")
    assert {entry["leak_id"] for entry in api.get("/v1/leaks").json()} == {leak_id, second}
    # More relay rounds, each of which looks for overdue reports: the alarm is raised once.
    rounds = school.relay.rounds
    wait_until(lambda: school.relay.rounds >= rounds + 5, message="five more relay rounds")
    assert len([e for e in events(Topic.RETENTION_EVENTS) if e.type == "LeakReportOverdue"]) == 1


def test_a_leak_without_scope_or_from_the_future_is_refused(school):
    api, clock = school.api, school.clock
    empty = api.post("/v1/leaks", json={"nature": "iets", "discovered_at": clock.now().isoformat()})
    assert empty.status_code == 422 and empty.headers["content-type"] == "application/problem+json"
    future = api.post("/v1/leaks", json={"nature": "iets", "pupil_ids": [str(UUID(int=1))],
                                         "discovered_at": (clock.now() + timedelta(hours=1)).isoformat()})
    assert future.status_code == 422 and "future" in future.json()["detail"]
    assert api.get("/v1/leaks").json() == []


@pytest.mark.every_database
def test_inspect_correct_and_delete_requests(school):
    api, clock, ids, events, smtp_server = school.api, school.clock, school.ids, school.events, school.smtp
    retention = school.retention
    anna, bram, daan = ids["anna"], ids["bram"], ids["daan"]

    # Inspection: a complete export, built from the log, kept sealed; a Dutch page and letter.
    received = api.post(f"/v1/pupils/{anna}/requests", json={"kind": "inspect", "requested_by": "parent"})
    assert received.status_code == 201, received.text
    request = received.json()
    assert request["due_on"] == answer_due(retention.service.today()).isoformat()
    assert request["status"] == "open" and request["overdue"] is False and request["days_left"] >= 28
    listed = api.get("/v1/requests", params={"branch_id": request["branch_id"]}).json()
    assert [r["request_id"] for r in listed] == [request["request_id"]]
    export = wait_until(lambda: (r := api.get(f"/v1/requests/{request['request_id']}/export.json")).status_code == 200
                        and r.json(), message="export built")
    assert export["details"]["name"] == "Anna Jansen"
    assert export["details"]["parent_emails"] == ["anna.ouder1@example.nl", "anna.ouder2@example.nl"]
    assert export["details"]["school"] == "OBS De Regenboog"
    assert [d["summary"] for d in export["dossiers"]] == ["Hulpvraag hv-anna: leest moeizaam."]
    assert {"PupilEnrolled", "DossierOpened", "SubjectRequestReceived"} <= {e["type"] for e in export["events"]}
    assert "Bram" not in str(export) and "Daan" not in str(export)
    page = api.get(f"/v1/requests/{request['request_id']}/export.html")
    assert page.status_code == 200 and "Welke gegevens wij over uw kind bewaren" in page.text
    assert "Anna Jansen" in page.text
    with retention.engine.connect() as connection:
        stored = connection.execute(select(retention_store.requests.c.export_sealed)).scalar_one()
    assert b"Anna" not in stored, "the export is stored sealed under the pupil's key"
    assert api.get(f"/v1/requests/{request['request_id']}/letter").status_code == 409
    done = api.post(f"/v1/requests/{request['request_id']}/answer", json={"outcome": "provided"})
    assert done.status_code == 200 and done.json()["status"] == "answered"
    letter = api.get(f"/v1/requests/{request['request_id']}/letter").text
    assert "Antwoord op uw verzoek om inzage" in letter and "fg@pporotterdam.example" in letter
    assert api.get("/v1/requests", params={"branch_id": request["branch_id"]}).json() == []

    # Bram (10) may not ask himself; Daan (17) may.
    too_young = api.post(f"/v1/pupils/{bram}/requests", json={"kind": "delete", "requested_by": "pupil"})
    assert too_young.status_code == 422 and "from 16" in too_young.json()["detail"]
    assert api.post(f"/v1/pupils/{daan}/requests",
                    json={"kind": "correct", "requested_by": "pupil"}).status_code == 201

    # Correction: Anna's parents have a new address; the next leak mail goes there.
    correct = api.post(f"/v1/pupils/{anna}/requests", json={"kind": "correct", "requested_by": "parent"}).json()
    corrected = api.post(f"/v1/requests/{correct['request_id']}/answer", json={
        "outcome": "corrected", "correction": {"parent_emails": ["anna.nieuw@example.nl"]}})
    assert corrected.status_code == 200 and corrected.json()["corrected_fields"] == ["parent_emails"]
    wait_until(lambda: any(e.type == "PupilDetailsCorrected" for e in events(Topic.RETENTION_EVENTS)),
               message="correction published")
    leak_id = api.post("/v1/leaks", json={"nature": "Laptop met hulpvragen gestolen.",
                                          "discovered_at": clock.now().isoformat(),
                                          "pupil_ids": [str(anna), str(bram)]}).json()["leak_id"]
    settled(smtp_server, api, leak_id, 2, school.retention)
    assert mails_to(smtp_server) == ["anna.nieuw@example.nl", "bram.ouder@example.nl"]

    # Deletion: refused while enrolled (with the reason in the letter).
    delete = api.post(f"/v1/pupils/{anna}/requests", json={"kind": "delete", "requested_by": "parent"}).json()
    unlawful = api.post(f"/v1/requests/{delete['request_id']}/answer", json={"outcome": "deleted"})
    assert unlawful.status_code == 409 and "still enrolled" in unlawful.json()["detail"]
    refused = api.post(f"/v1/requests/{delete['request_id']}/answer", json={
        "outcome": "refused", "refusal_reason": "Anna staat nog ingeschreven; de school moet het dossier bewaren."})
    assert refused.status_code == 200
    assert "Wij kunnen de gegevens van uw kind nu niet verwijderen" in api.get(
        f"/v1/requests/{delete['request_id']}/letter").text

    # ...and granted once the pupil has left: the key goes at once, long before the schedule.
    school.report({"kind": "pupil_left", "mutation_id": "m-bram-left", "vestigingscode": "12AB00",
                   "pupil_ref": "bram", "left_on": retention.service.today().isoformat()})

    def bram_left() -> bool:
        with retention.engine.connect() as connection:
            return connection.execute(select(retention_store.pupils.c.enrolled).where(
                retention_store.pupils.c.pupil_id == str(bram))).scalar_one() is False

    wait_until(bram_left, message="the leaving reaches retention")
    delete = api.post(f"/v1/pupils/{bram}/requests", json={"kind": "delete", "requested_by": "parent"}).json()
    erased = api.post(f"/v1/requests/{delete['request_id']}/answer", json={"outcome": "deleted"})
    assert erased.status_code == 200 and erased.json()["outcome"] == "deleted"
    wait_until(lambda: any(e.type == "PupilDataPurged" and e.event.pupil_id == bram
                           for e in events(Topic.RETENTION_EVENTS)), message="purge published")
    bram_enrolled = next(e for e in events(Topic.REGISTRY_EVENTS)
                         if e.type == "PupilEnrolled" and e.event.pupil_id == bram)
    assert bram_enrolled.erased and bram_enrolled.event.name == "verwijderd"
    assert api.get("/v1/purges").json()[0]["category"] == "erasure-request"
    with retention.engine.connect() as connection:
        mails = connection.execute(select(retention_store.mail_outbox.c.recipient)).scalars().all()
    assert "anna.nieuw@example.nl" in mails and "bram.ouder@example.nl" not in mails
    assert api.post(f"/v1/pupils/{bram}/requests", json={"kind": "inspect", "requested_by": "parent"}).status_code \
        == 404



def test_the_fg_acts_for_her_own_boards_pupils_only_and_every_action_names_her(school):
    """Board rules (policy.py): the FG of De Regenboog's board handles its pupils, not Cas of
    Het Anker (another board); a service's own token reads but changes nothing; a director keeps
    consent for her own school only; a teacher does none of it. Each change names the FG."""
    api, ids, branches = school.api, school.ids, school.branches
    anna, cas = ids["anna"], ids["cas"]
    service = {"Authorization": TOKENS.headers("back-office", RETENTION_SCOPES, "retention")["Authorization"]}
    other_fg = fg_headers(uuid4(), branches["34CD00"])

    placed = api.put(f"/v1/pupils/{anna}/legal-hold", json={"reason": "Lopend bezwaar"})
    assert placed.status_code == 204, placed.text
    for method, path, body in [("PUT", f"/v1/pupils/{cas}/legal-hold", {"reason": "Lopend bezwaar"}),
                               ("DELETE", f"/v1/pupils/{cas}/legal-hold", None),
                               ("PUT", f"/v1/pupils/{cas}/consent/photo_video", {"giver": "parent", "given": True}),
                               ("GET", f"/v1/pupils/{cas}/consent/photo_video", None),
                               ("POST", f"/v1/pupils/{cas}/requests", {"kind": "inspect", "requested_by": "parent"})]:
        refused = api.request(method, path, json=body)
        assert refused.status_code == 403 and refused.json()["reason"] == "other-board", (method, path, refused.text)
    named = api.post("/v1/leaks", json={"nature": "Lijst verkeerd gemaild.", "pupil_ids": [str(cas)],
                                        "discovered_at": school.clock.now().isoformat()})
    assert named.status_code == 403 and named.json()["reason"] == "other-board"

    # A request of Anna's: hers to read and answer, not the other board's FG's; a service reads it.
    request = api.post(f"/v1/pupils/{anna}/requests", json={"kind": "correct", "requested_by": "parent"}).json()
    assert api.get(f"/v1/requests/{request['request_id']}", headers=other_fg).status_code == 403
    assert api.get("/v1/requests", headers=other_fg).json() == []
    assert [r["request_id"] for r in api.get("/v1/requests").json()] == [request["request_id"]]
    assert api.get(f"/v1/requests/{request['request_id']}", headers=service).status_code == 200
    for method, path, body in [("POST", f"/v1/requests/{request['request_id']}/answer", {"outcome": "refused",
                                                                                          "refusal_reason": "Geen"}),
                               ("PUT", f"/v1/pupils/{anna}/legal-hold", {"reason": "Lopend bezwaar"}),
                               ("POST", "/v1/leaks", {"nature": "Lijst kwijt", "pupil_ids": [str(anna)],
                                                      "discovered_at": school.clock.now().isoformat()})]:
        assert api.request(method, path, json=body, headers=service).status_code == 403, (method, path)
        assert api.request(method, path, json=body, headers=other_fg).status_code == 403, (method, path)

    leak = api.post("/v1/leaks", json={"nature": "Lijst verkeerd gemaild.", "pupil_ids": [str(anna)],
                                       "discovered_at": school.clock.now().isoformat()}).json()
    assert api.get(f"/v1/leaks/{leak['leak_id']}", headers=other_fg).status_code == 403
    assert api.get("/v1/leaks", headers=other_fg).json() == []
    assert api.patch(f"/v1/leaks/{leak['leak_id']}", json={"measures": "x"}, headers=other_fg).status_code == 403
    assert [entry["leak_id"] for entry in api.get("/v1/leaks").json()] == [leak["leak_id"]]

    # Consent: the school's director keeps it for her own school; a teacher only asks.
    director = TOKENS.headers(str(ids["ib"]), RETENTION_SCOPES, "retention", role="directeur",
                              branch_id=str(branches["12AB00"]))
    teacher = TOKENS.headers(str(ids["juf"]), RETENTION_SCOPES, "retention", role="leerkracht",
                             branch_id=str(branches["12AB00"]))
    assert api.put(f"/v1/pupils/{anna}/consent/photo_video", json={"giver": "parent", "given": True},
                   headers=director).status_code == 204
    assert api.put(f"/v1/pupils/{cas}/consent/photo_video", json={"giver": "parent", "given": True},
                   headers=director).json()["reason"] == "other-branch"
    assert api.put(f"/v1/pupils/{anna}/legal-hold", json={"reason": "x y z"}, headers=director).status_code == 403
    assert api.get(f"/v1/pupils/{anna}/consent/photo_video", headers=teacher).json()["allowed"] is True
    assert api.put(f"/v1/pupils/{anna}/consent/photo_video", json={"giver": "parent", "given": False},
                   headers=teacher).status_code == 403

    # Who did it: every change names its person and client (NEN 7513).
    def acted() -> dict[str, ActedBy | None]:
        return {r.type: r.event.acted_by for r in school.events(Topic.RETENTION_EVENTS)
                if r.type in ("LegalHoldPlaced", "SubjectRequestReceived", "DataLeaked", "ConsentGiven")}

    found = wait_until(lambda: len(acted()) == 4 and acted(), message="the changes on the log")
    assert found["LegalHoldPlaced"] == ActedBy(actor=str(school.fg), client="test-client")
    assert found["DataLeaked"].actor == found["SubjectRequestReceived"].actor == str(school.fg)
    assert found["ConsentGiven"].actor == str(ids["ib"])


def test_a_leak_mail_to_more_parents_than_one_fg_may_send_waits_for_a_second_fg(school):
    """Above the setting (3 parents here), the scope is worked out and nothing is mailed until a
    second FG of the board approves: not the FG who registered it, not another board's."""
    api, ids, branches, smtp_server = school.api, school.ids, school.branches, school.smtp
    answer = api.post("/v1/leaks", json={
        "nature": "Een export van alle hulpvragen stond open op een gedeelde schijf.", "notice": "systeem-inbraak",
        "discovered_at": school.clock.now().isoformat(),
        "pupil_ids": [str(ids[name]) for name in ("anna", "noor", "bram", "daan")]})
    assert answer.status_code == 202, answer.text
    leak_id = answer.json()["leak_id"]
    waiting = wait_until(lambda: (r := api.get(f"/v1/leaks/{leak_id}").json())["resolved_at"] and r,
                         message="the leak's scope worked out")
    assert waiting["mailing"] == {"status": "awaiting-approval", "recipients": 4, "approved_at": None,
                                  "approved_by": None}
    rounds = school.relay.rounds
    wait_until(lambda: school.relay.rounds >= rounds + 3, message="three more relay rounds")
    assert mails_to(smtp_server) == [] and unsent_mail(school.retention) == 0, "nothing mailed, nothing queued"

    same = api.post(f"/v1/leaks/{leak_id}/mailing-approval")
    assert same.status_code == 409 and "second FG" in same.json()["detail"]
    other_board = api.post(f"/v1/leaks/{leak_id}/mailing-approval", headers=fg_headers(uuid4(), branches["34CD00"]))
    assert other_board.status_code == 403
    second_fg = uuid4()
    approved = api.post(f"/v1/leaks/{leak_id}/mailing-approval", headers=fg_headers(second_fg, branches["12AB00"]))
    assert approved.status_code == 200, approved.text
    assert approved.json()["mailing"]["approved_by"] == str(second_fg)
    settled(smtp_server, api, leak_id, 4, school.retention)
    assert mails_to(smtp_server) == ["anna.ouder1@example.nl", "anna.ouder2@example.nl", "bram.ouder@example.nl",
                                     "daan.ouder@example.nl"]
    assert api.get(f"/v1/leaks/{leak_id}").json()["mailing"]["status"] == "sent"
    assert api.post(f"/v1/leaks/{leak_id}/mailing-approval",
                    headers=fg_headers(uuid4(), branches["12AB00"])).status_code == 409
    approvals = [r.event for r in school.events(Topic.RETENTION_EVENTS) if r.type == "LeakMailingApproved"]
    assert [(a.recipients, a.acted_by.actor) for a in approvals] == [(4, str(second_fg))]


def test_the_fg_erases_one_category_of_a_pupils_data_and_the_rest_stays(school):
    """Keys per category: the hulpvraag's text of Anna goes (every copy on the log reads
    "verwijderd"), her name and her parents' addresses stay; a hold stops it; another board's FG
    and the category of identity (that is the whole pupil: a deletion request) are refused."""
    api, ids, branches = school.api, school.ids, school.branches
    anna, daan = ids["anna"], ids["daan"]
    assert api.post(f"/v1/pupils/{anna}/categories/dossier/erasure",
                    headers=fg_headers(uuid4(), branches["34CD00"])).status_code == 403
    assert api.post(f"/v1/pupils/{anna}/categories/identity/erasure").status_code == 409
    assert api.put(f"/v1/pupils/{daan}/legal-hold", json={"reason": "Lopend bezwaar"}).status_code == 204
    held = api.post(f"/v1/pupils/{daan}/categories/dossier/erasure")
    assert held.status_code == 409 and "legal hold" in held.json()["detail"]

    assert api.post(f"/v1/pupils/{anna}/categories/dossier/erasure").status_code == 204
    registry = {r.type: r for r in school.events(Topic.REGISTRY_EVENTS)
                if r.type in ("PupilEnrolled", "DossierOpened") and getattr(r.event, "pupil_id", None) == anna}
    assert registry["DossierOpened"].event.summary == "verwijderd" and registry["DossierOpened"].erased
    assert registry["PupilEnrolled"].event.name == "Anna Jansen" and not registry["PupilEnrolled"].erased
    daan_dossier = next(r for r in school.events(Topic.REGISTRY_EVENTS)
                        if r.type == "DossierOpened" and r.event.pupil_id == daan)
    assert daan_dossier.event.summary.startswith("Hulpvraag hv-daan")
    erased = wait_until(lambda: [r.event for r in school.events(Topic.RETENTION_EVENTS)
                                 if r.type == "PupilCategoryErased"], message="the erasure on the log")
    assert [(x.pupil_id, x.category, x.acted_by.actor) for x in erased] == [(anna, "dossier", str(school.fg))]
