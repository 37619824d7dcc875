"""The registry over the real broker, a real database and a real SMTP server: both doors, the
credentials, idempotency, scheduled changes and the office mail."""

from __future__ import annotations

import base64
import json
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from services.registry.api import create_app
from services.registry.bootstrap import RegistryDeps, build, build_intake_runner, build_relay
from services.registry.credentials import CLIENT_HEADER, SIGNATURE_HEADER, IssuedCredential, sign
from services.registry.settings import RegistrySettings
from shared.clock import ManualClock
from shared.contracts.envelope import RecordedEvent
from shared.contracts.events import StaffDeparted
from shared.contracts.topics import Topic
from shared.kafka.producer import make_producer
from tests.support import read_all, wait_until

START = datetime.now(UTC).replace(microsecond=0)
ADDRESS = {"street": "Schiekade", "house_number": "12", "postcode": "3032 AJ", "city": "Rotterdam"}


def branch_founded(code: str, mutation_id: str) -> dict:
    return {"kind": "branch", "change": "founded", "mutation_id": mutation_id, "vestigingscode": code,
            "name": "OBS De Regenboog", "address": ADDRESS, "phone": "010-1234567", "wijknetwerk": "Noord"}


def staff_joined(code: str, mutation_id: str, ref: str = "emp-1") -> dict:
    return {"kind": "staff_joined", "mutation_id": mutation_id, "vestigingscode": code, "staff_ref": ref,
            "role": "ib_er", "name": "Fatima el Amrani", "email": "f.elamrani@regenboog.example"}


def staff_departed(code: str, mutation_id: str, ref: str = "emp-1", effective_at: datetime | None = None) -> dict:
    body = {"kind": "staff_departed", "mutation_id": mutation_id, "vestigingscode": code, "staff_ref": ref}
    if effective_at:
        body["effective_at"] = effective_at.isoformat()
    return body


@dataclass
class Registry:
    deps: RegistryDeps
    clock: ManualClock
    api: TestClient
    school: IssuedCredential  # serves 12AB
    other_school: IssuedCredential  # serves 34CD
    bootstrap: str
    # The Kafka door starts with the first record sent to it: a test of the HTTP door alone does
    # not pay for a consumer group's join and leave.
    start_intake: Callable[[], None]

    def post(self, body: dict, credential: IssuedCredential | None = None):
        headers = {"Authorization": f"Bearer {(credential or self.school).api_key}"}
        return self.api.post("/v1/mutations", json=body, headers=headers)

    def send_to_kafka(self, body: dict | bytes, credential: IssuedCredential | None = None, signed: bool = True,
                      signing_key: bytes | None = None) -> None:
        self.start_intake()
        credential = credential or self.school
        value = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = [(CLIENT_HEADER, credential.client_id.encode())]
        if signed:
            key = signing_key or base64.b64decode(credential.signing_key)
            headers.append((SIGNATURE_HEADER, sign(key, value).encode()))
        producer = make_producer(self.bootstrap, "school-system")
        producer.send(self.deps.topics(Topic.REGISTRY_MUTATIONS), key=credential.client_id.encode(), value=value,
                      headers=headers).get(timeout=10)
        producer.close()

    def events(self) -> list[RecordedEvent]:
        """The events about branches, staff, pupils and dossiers (not the credentials' own)."""
        return [e for e in self.all_events() if not e.type.startswith("Credential")]

    def all_events(self) -> list[RecordedEvent]:
        records = read_all(self.bootstrap, self.deps.topics(Topic.REGISTRY_EVENTS))
        # In log order: one branch's events share a key, so their partition keeps them in order.
        return [self.deps.codec.decode(r.value) for r in records]

    def dead_letters(self) -> list:
        return read_all(self.bootstrap, self.deps.topics(Topic.REGISTRY_MUTATIONS) + ".dlq")


@pytest.fixture
def registry(broker, topic_prefix, database_url, master_key, tmp_path, smtp_server) -> Iterator[Registry]:
    clock = ManualClock(START)
    settings = RegistrySettings(
        kafka_bootstrap_servers=broker.bootstrap, topic_prefix=topic_prefix, database_url=database_url,
        keystore_url=f"sqlite:///{tmp_path / 'keys.sqlite'}", master_key=master_key,
        consumer_group=f"{topic_prefix}registry-intake", smtp_port=smtp_server.port)
    deps = build(settings, clock=clock)
    workers: list = []
    threads: list[threading.Thread] = []

    def start(worker) -> None:
        thread = threading.Thread(target=worker.run, daemon=True)
        workers.append(worker)
        threads.append(thread)
        thread.start()

    def start_intake() -> None:
        if len(workers) == 1:
            start(build_intake_runner(deps))

    start(build_relay(deps))
    yield Registry(deps, clock, TestClient(create_app(deps)),
                   deps.credentials.create("ParnasSys De Regenboog", ["12AB"], []),
                   deps.credentials.create("ESIS De Horizon", ["34CD"], []), broker.bootstrap, start_intake)
    for worker in workers:
        worker.stop_event.set()
    for thread in threads:
        thread.join(timeout=15)


def _comparable(event: RecordedEvent) -> tuple:
    data = event.event.model_dump(mode="json", exclude={"branch_id", "staff_id", "vestigingscode"})
    return event.type, json.dumps(data, sort_keys=True)


def test_http_and_kafka_doors_make_the_same_canonical_events(registry):
    through_http = [branch_founded("12AB00", "h-1"), staff_joined("12AB00", "h-2"), staff_departed("12AB00", "h-3")]
    response = registry.post({"mutations": through_http})
    assert response.status_code == 202, response.text
    http_ids = [i for r in response.json()["results"] for i in r["event_ids"]]
    for body in [branch_founded("12AB01", "k-1"), staff_joined("12AB01", "k-2"), staff_departed("12AB01", "k-3")]:
        registry.send_to_kafka(body)

    events = wait_until(lambda: len(registry.events()) == 6 and registry.events(), message="six events")
    by_code = {}
    for event in events:
        code = getattr(event.event, "vestigingscode", None) or next(
            e.event.vestigingscode for e in events if e.type == "BranchFounded" and
            e.event.branch_id == event.event.branch_id)
        by_code.setdefault(code, []).append(event)
    assert [e.id for e in by_code["12AB00"]] == http_ids
    assert [_comparable(e) for e in by_code["12AB00"]] == [_comparable(e) for e in by_code["12AB01"]]
    assert [e.type for e in by_code["12AB01"]] == ["BranchFounded", "StaffJoined", "StaffDeparted"]
    # The name travels sealed in both.
    raw = b"".join(r.value for r in read_all(registry.bootstrap, registry.deps.topics(Topic.REGISTRY_EVENTS)))
    assert b"Fatima" not in raw

    # The same mutation id through the other door: the same events, nothing new.
    again = registry.post(staff_joined("12AB01", "k-2"), credential=registry.school)
    assert again.status_code == 202 and again.json()["results"][0]["replayed"] is True
    assert again.json()["results"][0]["event_ids"] == [by_code["12AB01"][1].id]
    assert not registry.dead_letters()


def test_a_wrong_school_key_is_refused_at_both_doors(registry):
    assert registry.post(branch_founded("12AB00", "f-1")).status_code == 202
    response = registry.post(staff_joined("12AB00", "x-1"), credential=registry.other_school)
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["reason"] == "wrong-school" and "Fatima" not in response.text

    registry.send_to_kafka(staff_joined("12AB00", "x-2"), credential=registry.other_school)
    registry.send_to_kafka(staff_joined("12AB00", "x-3"), signed=False)
    registry.send_to_kafka(staff_joined("12AB00", "x-4"), signing_key=b"not the school's key" * 2)
    dead = wait_until(lambda: len(registry.dead_letters()) == 3 and registry.dead_letters(), message="dead letters")
    reasons = sorted(dict(r.headers)["dlq-reason"].decode() for r in dead)
    assert reasons == ["bad-signature", "unsigned", "wrong-school"]
    assert [e.type for e in registry.events()] == ["BranchFounded"]


def test_requests_without_a_valid_key_are_unauthorised(registry):
    response = registry.api.post("/v1/mutations", json=branch_founded("12AB00", "u-1"))
    assert response.status_code == 401 and response.json()["type"] == "/problems/unauthorized"
    bad = registry.api.post("/v1/mutations", json=branch_founded("12AB00", "u-1"),
                            headers={"Authorization": "Bearer svk_000000000000_" + "A" * 43})
    assert bad.status_code == 401
    registry.deps.credentials.revoke(registry.school.client_id)
    assert registry.post(branch_founded("12AB00", "u-2")).status_code == 401


def test_field_errors_are_listed_and_nothing_is_stored(registry):
    body = {"mutations": [branch_founded("12AB00", "v-1"),
                          {**branch_founded("12ab0", "v-2"), "phone": "12", "address": {**ADDRESS, "postcode": "X"}}]}
    response = registry.post(body)
    assert response.status_code == 422
    fields = {error["field"] for error in response.json()["errors"]}
    assert {"body.batch.mutations.1.branch.vestigingscode", "body.batch.mutations.1.branch.phone",
            "body.batch.mutations.1.branch.address.postcode"} == fields
    assert registry.api.get("/v1/branches/12AB00", headers={
        "Authorization": f"Bearer {registry.school.api_key}"}).status_code == 404


def test_a_rule_violation_refuses_the_whole_batch(registry):
    response = registry.post({"mutations": [branch_founded("12AB00", "r-1"), staff_departed("12AB00", "r-2")]})
    assert response.status_code == 422
    problem = response.json()
    assert (problem["reason"], problem["mutation_index"], problem["mutation_id"]) == ("staff-never-joined", 1, "r-2")
    assert registry.post(branch_founded("12AB00", "r-1")).json()["results"][0]["replayed"] is False


def test_a_malformed_kafka_message_lands_in_the_dead_letter_topic(registry):
    registry.send_to_kafka(b"{not json")
    registry.send_to_kafka({"kind": "staff_joined", "mutation_id": "m-1", "vestigingscode": "12AB00"})
    registry.send_to_kafka(staff_departed("12AB00", "m-2"))  # valid, but the rules refuse it
    dead = wait_until(lambda: len(registry.dead_letters()) == 3 and registry.dead_letters(), message="dead letters")
    by_offset = sorted(dead, key=lambda r: int(dict(r.headers)["dlq-source-offset"]))
    assert [dict(r.headers)["dlq-reason"] for r in dead].count(b"invalid-mutation") == 2
    assert b"unknown-branch" in {dict(r.headers)["dlq-reason"] for r in by_offset}
    detail = {dict(r.headers)["dlq-detail"] for r in dead}
    assert any(b"staff_ref" in d for d in detail), "the detail names the missing fields"


@pytest.mark.every_database
def test_a_replayed_mutation_id_emits_nothing_new_and_a_reused_one_is_refused(registry):
    first = registry.post(branch_founded("12AB00", "d-1"))
    second = registry.post(branch_founded("12AB00", "d-1"))
    assert first.json()["results"][0]["event_ids"] == second.json()["results"][0]["event_ids"]
    assert second.json()["results"][0]["replayed"] is True
    registry.send_to_kafka(branch_founded("12AB00", "d-1"))  # a Kafka redelivery of the same report
    conflict = registry.post({**branch_founded("12AB00", "d-1"), "name": "Andere naam"})
    assert conflict.status_code == 409 and conflict.json()["reason"] == "mutation-id-reused"
    wait_until(lambda: registry.deps.service is not None and _intake_caught_up(registry), message="intake done")
    assert [e.type for e in registry.events()] == ["BranchFounded"]


def _intake_caught_up(registry: Registry) -> bool:
    from services.registry import store
    from shared.kafka.progress import Progress

    progress = Progress(store.processed_events, store.consumer_positions, registry.deps.settings.consumer_group,
                          store.stream_versions)
    with registry.deps.engine.connect() as connection:
        positions = progress.positions_of(connection)
    return sum(next_offset for next_offset, _ in positions.values()) >= 1


@pytest.mark.every_database
def test_a_future_dated_departure_is_emitted_at_its_moment(registry):
    registry.post({"mutations": [branch_founded("12AB00", "s-1"), staff_joined("12AB00", "s-2")]})
    leaving = START + timedelta(days=10)
    response = registry.post(staff_departed("12AB00", "s-3", effective_at=leaving))
    assert response.json()["results"][0]["status"] == "scheduled"
    wait_until(lambda: len(registry.events()) == 2, message="founding and joining published")
    registry.clock.advance(timedelta(days=9, hours=23))
    # The relay keeps looking; nothing may appear before the moment.
    assert not wait_for_type(registry, "StaffDeparted", timeout_s=1.0)

    registry.clock.advance(timedelta(hours=1))
    departed = wait_for_type(registry, "StaffDeparted", timeout_s=15)
    assert departed is not None
    assert departed.effective_at == leaving and departed.recorded_at == START
    assert isinstance(departed.event, StaffDeparted)


def wait_for_type(registry: Registry, event_type: str, timeout_s: float) -> RecordedEvent | None:
    try:
        return wait_until(lambda: next((e for e in registry.events() if e.type == event_type), None),
                          timeout_s=timeout_s, interval_s=0.1)
    except AssertionError:
        return None


def test_a_past_dated_change_takes_effect_now_and_keeps_both_times(registry):
    # Joined before the departure's date: a departure dated before the join is refused.
    joined = {**staff_joined("12AB00", "p-2"), "effective_at": (START - timedelta(days=30)).isoformat()}
    registry.post({"mutations": [branch_founded("12AB00", "p-1"), joined]})
    left = START - timedelta(days=20)
    assert registry.post(staff_departed("12AB00", "p-3", effective_at=left)).json()["results"][0]["status"] == \
        "accepted"
    departed = wait_for_type(registry, "StaffDeparted", timeout_s=15)
    assert departed.effective_at == left and departed.recorded_at == START


def test_a_branch_change_mails_the_office_once_in_dutch(registry, smtp_server):
    registry.post(branch_founded("12AB00", "b-1"))
    moved = {**branch_founded("12AB00", "b-2"), "change": "moved",
             "address": {**ADDRESS, "street": "Bergweg", "house_number": "300", "postcode": "3037 EK"},
             "effective_at": (START + timedelta(days=30)).isoformat()}
    assert registry.post(moved).status_code == 202
    mails = wait_until(lambda: len(smtp_server.messages) == 2 and smtp_server.messages, message="two mails")
    founded_mail, moved_mail = mails
    assert moved_mail["X-Envelope-To"] == "info@pporotterdam.nl"
    assert "verhuizing" in moved_mail["Subject"] and "12AB00" in moved_mail["Subject"]
    body = moved_mail.get_content()
    for line in ("Naam vestiging:        OBS De Regenboog", "Aard van de wijziging: verhuizing",
                 "Adres:                 Bergweg 300, 3037 EK Rotterdam", "Telefoonnummer:        +31101234567",
                 "Wijknetwerk:           Noord", "Gemeld door:           ParnasSys De Regenboog"):
        assert line in body
    assert "Ingangsdatum:" in body and moved_mail["Message-ID"] != founded_mail["Message-ID"]
    # The relay keeps running: no second copy appears.
    assert not wait_until_or_none(lambda: len(smtp_server.messages) > 2, timeout_s=1.0)


def wait_until_or_none(check, timeout_s: float):
    try:
        return wait_until(check, timeout_s=timeout_s)
    except AssertionError:
        return None


@pytest.mark.every_database
def test_a_brin_change_keeps_the_branch_under_both_codes(registry):
    registry.post(branch_founded("12AB00", "c-1"))
    changed = {**branch_founded("12AB00", "c-2"), "change": "brin_changed", "new_vestigingscode": "12AB05"}
    assert registry.post(changed).status_code == 202
    headers = {"Authorization": f"Bearer {registry.school.api_key}"}
    old = registry.api.get("/v1/branches/12AB00", headers=headers).json()
    new = registry.api.get("/v1/branches/12AB05", headers=headers).json()
    assert old == new and old["vestigingscode"] == "12AB05" and old["aliases"] == ["12AB00", "12AB05"]
    events = wait_until(lambda: len(registry.events()) == 2 and registry.events(), message="two events")
    assert len({e.event.branch_id for e in events}) == 1
    # (The credentials' own events are keyed by credential; tests/integration/test_registry_credentials.py.)
    assert {r.key for r in read_all(registry.bootstrap, registry.deps.topics(Topic.REGISTRY_EVENTS))
            if not r.key.startswith(b"credential/")} == {old["branch_id"].encode()}


def test_swv_consultants_are_registered_by_the_swv_office_only(registry):
    office = registry.deps.credentials.create("SWV-bureau PPO", [], ["Noord", "Charlois"])
    consultant = {"kind": "consultant_joined", "mutation_id": "swv-1", "consultant_ref": "c-9", "name": "Anouk Visser",
                  "email": "a.visser@ppo.example", "wijknetwerken": ["Noord"]}
    assert registry.post(consultant).status_code == 403
    assert registry.post(consultant, credential=office).status_code == 202
    elsewhere = {**consultant, "mutation_id": "swv-2", "consultant_ref": "c-10", "wijknetwerken": ["Delfshaven"]}
    assert registry.post(elsewhere, credential=office).json()["reason"] == "wrong-wijknetwerk"
    assert uuid.UUID(wait_for_type(registry, "ConsultantJoined", timeout_s=15).event.staff_id.hex)


# --- issue 16: departures before the join, entity ids, lookups by the school's own references --

def test_a_departure_dated_before_the_join_is_refused_and_nobody_is_invited(registry):
    before_the_join = START - timedelta(days=3)
    batch = [branch_founded("12AB00", "j-1"), staff_joined("12AB00", "j-2", ref="emp-0877"),
             staff_departed("12AB00", "j-3", ref="emp-0877", effective_at=before_the_join)]
    refused = registry.post({"mutations": batch})
    assert refused.status_code == 422, refused.text
    assert refused.json()["reason"] == "departure-before-join" and refused.json()["mutation_index"] == 2
    # All or nothing: no StaffJoined went out, so the auth service invites nobody.
    assert registry.events() == []
    assert registry.post({"mutations": batch[:2]}).status_code == 202
    later = registry.post(staff_departed("12AB00", "j-4", ref="emp-0877", effective_at=before_the_join))
    assert later.status_code == 422 and later.json()["reason"] == "departure-before-join"
    on_time = registry.post(staff_departed("12AB00", "j-5", ref="emp-0877", effective_at=START + timedelta(days=1)))
    assert on_time.status_code == 202 and on_time.json()["results"][0]["status"] == "scheduled"


def test_the_answer_names_the_entities_and_the_schools_references_find_them(registry):
    pupil = {"kind": "pupil_enrolled", "mutation_id": "l-3", "vestigingscode": "12AB00", "pupil_ref": "lln-2041",
             "name": "Sanne Bakker", "date_of_birth": "2015-03-01", "parent_emails": ["ouder@example.nl"]}
    dossier = {"kind": "dossier_opened", "mutation_id": "l-4", "vestigingscode": "12AB00", "dossier_ref": "hv-1",
               "pupil_ref": "lln-2041", "contact_staff_ref": "emp-1043", "summary": "Leest moeizaam."}
    answer = registry.post({"mutations": [branch_founded("12AB00", "l-1"), staff_joined("12AB00", "l-2", "emp-1043"),
                                          pupil, dossier]})
    assert answer.status_code == 202, answer.text
    founded, joined, enrolled, opened = (r["entity_ids"] for r in answer.json()["results"])
    branch_id = founded["branch_id"]
    assert joined == {"branch_id": branch_id, "staff_id": joined["staff_id"]}
    assert opened == {"branch_id": branch_id, "dossier_id": opened["dossier_id"], "pupil_id": enrolled["pupil_id"],
                      "contact_staff_id": joined["staff_id"]}
    again = registry.post(dossier).json()["results"][0]
    assert again["replayed"] is True and again["entity_ids"] == opened
    headers = {"Authorization": f"Bearer {registry.school.api_key}"}
    assert registry.api.get("/v1/mutations/l-2", headers=headers).json()["entity_ids"] == joined

    def lookup(path: str, credential=None):
        return registry.api.get(path, headers={"Authorization": f"Bearer {(credential or registry.school).api_key}"})

    staff = lookup("/v1/branches/12AB00/staff/emp-1043").json()
    assert staff == {"staff_id": joined["staff_id"], "branch_id": branch_id, "staff_ref": "emp-1043",
                     "role": "ib_er", "active": True}
    assert lookup("/v1/branches/12AB00/pupils/lln-2041").json()["pupil_id"] == enrolled["pupil_id"]
    found = lookup("/v1/branches/12AB00/dossiers/hv-1").json()
    assert (found["dossier_id"], found["pupil_id"], found["open"]) == (opened["dossier_id"], enrolled["pupil_id"], True)
    # Scoped like everything else: another school's key learns nothing, not even whether it exists.
    for path in ("/v1/branches/12AB00/staff/emp-1043", "/v1/branches/12AB00/staff/nobody"):
        other = lookup(path, registry.other_school)
        assert other.status_code == 403 and other.json()["reason"] == "wrong-school"
    assert lookup("/v1/branches/12AB00/staff/nobody").status_code == 404
    assert lookup("/v1/branches/12AB00/dossiers/hv-none").status_code == 404
    assert registry.api.get("/v1/branches/12AB00/pupils/lln-2041").status_code == 401
    # After a BRIN change the new code finds the same people.
    change = {"kind": "branch", "change": "brin_changed", "mutation_id": "l-5", "vestigingscode": "12AB00",
              "new_vestigingscode": "12AB07", "name": "OBS De Regenboog", "address": ADDRESS,
              "phone": "010-1234567", "wijknetwerk": "Noord"}
    assert registry.post(change).status_code == 202
    assert lookup("/v1/branches/12AB07/staff/emp-1043").json()["staff_id"] == joined["staff_id"]


def test_the_swv_office_looks_up_its_own_consultants_only(registry):
    office = registry.deps.credentials.create("SWV-bureau PPO", [], ["Noord"])
    other_office = registry.deps.credentials.create("SWV-bureau elders", [], ["Noord"])
    consultant = {"kind": "consultant_joined", "mutation_id": "swv-l1", "consultant_ref": "c-9",
                  "name": "Anouk Visser", "email": "a.visser@ppo.example", "wijknetwerken": ["Noord"]}
    joined = registry.post(consultant, credential=office).json()["results"][0]["entity_ids"]

    def lookup(path: str, credential):
        return registry.api.get(path, headers={"Authorization": f"Bearer {credential.api_key}"})

    found = lookup("/v1/consultants/c-9", office).json()
    assert found == {"staff_id": joined["staff_id"], "consultant_ref": "c-9", "active": True,
                     "wijknetwerken": ["Noord"]}
    assert lookup("/v1/consultants/c-9", other_office).status_code == 404  # its own c-9 would be another
    assert lookup("/v1/consultants/c-9", registry.school).json()["reason"] == "not-swv-office"
    assert lookup("/v1/branches/12AB00/staff/emp-1", office).json()["reason"] == "not-a-school"
