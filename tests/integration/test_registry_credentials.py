"""Registry credentials follow the school (issue 15, item 5) and consultant ids belong to the office
that registered them (item 8): over the real broker and database, through both doors and the
operator's command."""

from __future__ import annotations

import getpass
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.registry import credentials as credentials_cli
from services.registry import store
from services.registry.domain import Person, RegistryState
from shared.contracts.events import StaffRole
from shared.contracts.topics import Topic
from tests.integration import test_registry
from tests.integration.test_registry import Registry, branch_founded, staff_joined
from tests.support import read_all, wait_until

# The registry over the real broker and database, as tests/integration/test_registry.py runs it.
registry = test_registry.registry

OPERATOR = f"operator:{getpass.getuser()}"


def brin_changed(code: str, new_code: str, mutation_id: str) -> dict:
    return {**branch_founded(code, mutation_id), "change": "brin_changed", "new_vestigingscode": new_code}


def credential_events(registry: Registry, client_id: str, count: int) -> list:
    def found() -> list:
        events = [e for e in registry.all_events() if getattr(e.event, "client_id", None) == client_id]
        return events if len(events) >= count else []
    return wait_until(found, timeout_s=20, message=f"{count} events of credential {client_id}")


def reasons_of_dead_letters(registry: Registry, count: int) -> list[str]:
    dead = wait_until(lambda: len(registry.dead_letters()) >= count and registry.dead_letters(),
                      message=f"{count} dead letters")
    return sorted(dict(r.headers)["dlq-reason"].decode() for r in dead)


def branch_of(registry: Registry, code: str, credential=None):
    key = (credential or registry.school).api_key
    return registry.api.get(f"/v1/branches/{code}", headers={"Authorization": f"Bearer {key}"})


# --- a BRIN change -------------------------------------------------------------------------

def test_the_schools_own_key_reports_its_brin_change_and_serves_the_branch_under_the_new_code(registry):
    assert registry.post(branch_founded("12AB00", "bc-1")).status_code == 202
    # The school's system reports that its branch is re-registered under a new BRIN: its own key.
    response = registry.post(brin_changed("12AB00", "56EF00", "bc-2"))
    assert response.status_code == 202, response.text

    # Afterwards the same key reports for the branch under its new code, through both doors ...
    assert registry.post(staff_joined("56EF00", "bc-3", ref="emp-1")).status_code == 202
    registry.send_to_kafka(staff_joined("56EF00", "bc-4", ref="emp-2"))
    wait_until(lambda: len([e for e in registry.events() if e.type == "StaffJoined"]) == 2, message="two joins")
    assert branch_of(registry, "56EF00").status_code == 200
    # ... and under the old one (other branches of 12AB stay the school's).
    assert registry.post(staff_joined("12AB00", "bc-5", ref="emp-3")).status_code == 202
    # What follows is the branch, not the whole new BRIN: another branch of 56EF is not the school's.
    refused = registry.post(branch_founded("56EF01", "bc-6"))
    assert refused.status_code == 403 and refused.json()["reason"] == "wrong-school"
    # Another school's key gains nothing.
    assert registry.post(staff_joined("56EF00", "bc-7", ref="x"), credential=registry.other_school).status_code == 403
    assert branch_of(registry, "56EF00", registry.other_school).status_code == 403

    # The credential's new scope is a fact on the registry's topic, saying who and why.
    changed = [e for e in credential_events(registry, registry.school.client_id, 2)
               if e.type == "CredentialScopeChanged"]
    assert len(changed) == 1
    branch_id = uuid.UUID(branch_of(registry, "12AB00").json()["branch_id"])
    assert changed[0].event.branch_ids == [branch_id] and changed[0].event.brins == ["12AB"]
    assert changed[0].event.acted_by == f"client:{registry.school.client_id}"
    assert changed[0].event.reason == "branch-brin-changed"
    assert not registry.dead_letters()


# --- BRINs added and removed -----------------------------------------------------------------

def test_brins_added_and_removed_take_effect_at_once(registry):
    registry.post(branch_founded("12AB00", "ad-1"))
    registry.deps.credentials.update(registry.other_school.client_id, add_brins=["12AB"], remove_brins=["34CD"],
                                     acted_by="operator:tester")
    assert registry.post(staff_joined("12AB00", "ad-2"), credential=registry.other_school).status_code == 202
    refused = registry.post(branch_founded("34CD00", "ad-3"), credential=registry.other_school)
    assert refused.status_code == 403 and refused.json()["reason"] == "wrong-school"

    registry.deps.credentials.update(registry.school.client_id, remove_brins=["12AB"], add_brins=["78GH"],
                                     acted_by="operator:tester")
    assert registry.post(staff_joined("12AB00", "ad-4", ref="emp-9")).json()["reason"] == "wrong-school"
    # The Kafka door reads the same scope.
    registry.send_to_kafka(staff_joined("12AB00", "ad-5", ref="emp-8"))
    assert reasons_of_dead_letters(registry, 1) == ["wrong-school"]
    assert registry.post(branch_founded("78GH00", "ad-6")).status_code == 202

    with pytest.raises(ValueError, match="not a BRIN"):
        registry.deps.credentials.update(registry.school.client_id, add_brins=["78gh"], acted_by="operator:tester")
    with pytest.raises(ValueError, match="serves BRINs"):
        registry.deps.credentials.update(registry.school.client_id, remove_brins=["78GH"], acted_by="operator:tester")


# --- rotation with an overlap ----------------------------------------------------------------

def test_a_rotated_api_key_works_during_the_overlap_and_is_refused_after(registry):
    old = registry.school
    new = registry.deps.credentials.rotate(old.client_id, overlap=timedelta(hours=24), acted_by="operator:tester")
    assert new.client_id == old.client_id and new.api_key != old.api_key and new.signing_key != old.signing_key
    assert registry.post(branch_founded("12AB00", "ro-1"), credential=old).status_code == 202
    assert registry.post(staff_joined("12AB00", "ro-2"), credential=new).status_code == 202

    registry.clock.advance(timedelta(hours=23, minutes=59))
    assert registry.post(staff_joined("12AB00", "ro-3", ref="emp-2"), credential=old).status_code == 202
    registry.clock.advance(timedelta(minutes=1))
    refused = registry.post(staff_joined("12AB00", "ro-4", ref="emp-3"), credential=old)
    assert refused.status_code == 401
    assert registry.post(staff_joined("12AB00", "ro-5", ref="emp-4"), credential=new).status_code == 202

    # A second rotation with no overlap retires the key at once.
    newest = registry.deps.credentials.rotate(old.client_id, overlap=timedelta(0), acted_by="operator:tester")
    assert registry.post(staff_joined("12AB00", "ro-6", ref="emp-5"), credential=new).status_code == 401
    assert registry.post(staff_joined("12AB00", "ro-7", ref="emp-6"), credential=newest).status_code == 202


def test_a_rotated_signing_key_works_on_the_kafka_door_during_the_overlap_and_is_refused_after(registry):
    old = registry.school
    new = registry.deps.credentials.rotate(old.client_id, overlap=timedelta(hours=2), acted_by="operator:tester")
    registry.send_to_kafka(branch_founded("12AB00", "rk-1"), credential=old)
    registry.send_to_kafka(staff_joined("12AB00", "rk-2"), credential=new)
    wait_until(lambda: [e.type for e in registry.events()] == ["BranchFounded", "StaffJoined"],
               message="both signatures accepted")

    registry.clock.advance(timedelta(hours=2))
    registry.send_to_kafka(staff_joined("12AB00", "rk-3", ref="emp-2"), credential=old)
    assert reasons_of_dead_letters(registry, 1) == ["bad-signature"]
    registry.send_to_kafka(staff_joined("12AB00", "rk-4", ref="emp-3"), credential=new)
    wait_until(lambda: len(registry.events()) == 3, message="the new signing key accepted")
    assert len(registry.dead_letters()) == 1


# --- every change is an event, saying who made it ----------------------------------------------

@pytest.fixture
def operator_environment(registry, monkeypatch):
    settings = registry.deps.settings
    for name, value in {"SAMENVEILIG_DATABASE_URL": settings.database_url,
                        "SAMENVEILIG_KEYSTORE_URL": settings.keystore_url,
                        "SAMENVEILIG_MASTER_KEY": settings.master_key.get_secret_value(),
                        "SAMENVEILIG_TOPIC_PREFIX": settings.topic_prefix}.items():
        monkeypatch.setenv(name, value)


def cli(capsys, *argv: str) -> dict | list:
    assert credentials_cli.main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def test_every_credential_change_from_the_operator_is_an_event_naming_the_operator(
        registry, operator_environment, capsys):
    issued = cli(capsys, "create", "--name", "ParnasSys OBS Het Anker", "--brin", "12AB")
    client_id = issued["client_id"]
    scope = cli(capsys, "update", client_id, "--add-brin", "34CD", "--remove-brin", "12AB")
    assert scope["brins"] == ["34CD"]
    rotated = cli(capsys, "rotate", client_id, "--overlap-hours", "12")
    assert rotated["client_id"] == client_id and rotated["api_key"] != issued["api_key"]
    # The command runs on the system clock, as the operator does.
    valid_until = datetime.fromisoformat(rotated["previous_keys_valid_until"])
    assert timedelta(hours=11, minutes=59) < valid_until - datetime.now(UTC) <= timedelta(hours=12)
    assert credentials_cli.main(["revoke", client_id]) == 0
    listed = {c["client_id"]: c for c in cli(capsys, "list")}
    assert listed[client_id]["revoked_at"] is not None and listed[client_id]["brins"] == ["34CD"]

    # The command's outbox rows carry the system clock's time; the relay runs on the test's clock.
    registry.clock.advance(max(datetime.now(UTC) - registry.clock.now(), timedelta(0)) + timedelta(seconds=1))
    events = credential_events(registry, client_id, 4)
    assert [e.type for e in events] == ["CredentialIssued", "CredentialScopeChanged", "CredentialRotated",
                                        "CredentialRevoked"]
    assert {e.event.acted_by for e in events} == {OPERATOR}
    assert events[0].event.brins == ["12AB"] and events[1].event.brins == ["34CD"]
    assert events[2].event.previous_keys_valid_until == valid_until
    # Ids and scopes only: no secret, no hash of one.
    raw = b"".join(r.value for r in read_all(registry.bootstrap, registry.deps.topics(Topic.REGISTRY_EVENTS)))
    for secret in (issued["api_key"], issued["signing_key"], rotated["api_key"], rotated["signing_key"]):
        assert secret.encode() not in raw and secret.split("_")[-1].encode() not in raw
    with registry.deps.engine.connect() as connection:
        hashes = [row.key_hash for row in connection.execute(store.credentials.select())]
    assert all(h.encode() not in raw for h in hashes)


def test_an_update_of_an_unknown_or_revoked_credential_fails_and_emits_nothing(registry, operator_environment,
                                                                                capsys):
    assert credentials_cli.main(["update", "000000000000", "--add-brin", "12AB"]) == 1
    registry.deps.credentials.revoke(registry.other_school.client_id, acted_by="operator:tester")
    assert credentials_cli.main(["rotate", registry.other_school.client_id]) == 1
    assert credentials_cli.main(["update", registry.school.client_id, "--add-brin", "1"]) == 2
    capsys.readouterr()


# --- consultant ids belong to the office that registered them ---------------------------------

def consultant(ref: str, mutation_id: str, email: str = "a.visser@ppo.example", wijknetwerken=("Noord",)) -> dict:
    return {"kind": "consultant_joined", "mutation_id": mutation_id, "consultant_ref": ref, "name": "Anouk Visser",
            "email": email, "wijknetwerken": list(wijknetwerken)}


def departed(ref: str, mutation_id: str) -> dict:
    return {"kind": "consultant_departed", "mutation_id": mutation_id, "consultant_ref": ref}


def test_another_office_can_neither_depart_nor_take_over_an_offices_consultant(registry):
    office = registry.deps.credentials.create("SWV-bureau PPO Noord", [], ["Noord"])
    other_office = registry.deps.credentials.create("SWV-bureau elders", [], ["Noord", "Charlois"])
    joined = registry.post(consultant("c-9", "o-1"), credential=office)
    assert joined.status_code == 202

    refused = registry.post(departed("c-9", "x-1"), credential=other_office)
    assert refused.status_code == 422 and refused.json()["reason"] == "consultant-never-joined"
    registry.send_to_kafka(departed("c-9", "x-2"), credential=other_office)
    assert reasons_of_dead_letters(registry, 1) == ["consultant-never-joined"]
    # Registering the same reference gives the other office a consultant of its own, not this one.
    taken = registry.post(consultant("c-9", "x-3", email="indringer@elders.example"), credential=other_office)
    assert taken.status_code == 202

    joins = wait_until(lambda: len([e for e in registry.events() if e.type == "ConsultantJoined"]) == 2 and
                       [e for e in registry.events() if e.type == "ConsultantJoined"], message="two joins")
    assert joins[0].event.staff_id != joins[1].event.staff_id
    assert [e.type for e in registry.events()].count("ConsultantDeparted") == 0
    # The owning office still departs its own consultant.
    assert registry.post(departed("c-9", "o-2"), credential=office).status_code == 202
    gone = wait_until(lambda: [e for e in registry.events() if e.type == "ConsultantDeparted"], message="departed")
    # The two joins are on their own partitions (keyed by consultant): found by office, not by order.
    own = next(join for join in joins if join.event.office == office.client_id)
    assert gone[0].event.staff_id == own.event.staff_id


def test_an_office_departs_only_consultants_within_its_wijknetwerken(registry):
    office = registry.deps.credentials.create("SWV-bureau PPO", [], ["Noord", "Charlois"])
    assert registry.post(consultant("c-1", "w-1", wijknetwerken=("Noord", "Charlois")), credential=office
                         ).status_code == 202
    registry.deps.credentials.update(office.client_id, remove_wijknetwerken=["Charlois"], acted_by="operator:tester")
    refused = registry.post(departed("c-1", "w-2"), credential=office)
    assert refused.status_code == 403 and refused.json()["reason"] == "wrong-wijknetwerk"
    registry.deps.credentials.update(office.client_id, add_wijknetwerken=["Charlois"], acted_by="operator:tester")
    assert registry.post(departed("c-1", "w-3"), credential=office).status_code == 202


def _legacy_consultant(registry: Registry, ref: str, office: str | None) -> uuid.UUID:
    """A consultant as the registry stored it before ids were scoped by office (the migration
    recovers the office from the mutation that registered it, where it can)."""
    from services.registry.domain import legacy_consultant_id

    staff_id = legacy_consultant_id(ref)
    with registry.deps.engine.begin() as connection:
        store.save_state(connection, RegistryState(people={staff_id: Person(
            staff_id, None, StaffRole.SWV_CONSULTANT, True, office=office, wijknetwerken=frozenset({"Noord"}))}))
    return staff_id


def test_a_consultant_registered_under_the_old_ids_is_departed_by_its_own_office_only(registry):
    office = registry.deps.credentials.create("SWV-bureau PPO Noord", [], ["Noord"])
    other_office = registry.deps.credentials.create("SWV-bureau elders", [], ["Noord"])
    staff_id = _legacy_consultant(registry, "c-old", office.client_id)

    refused = registry.post(departed("c-old", "l-1"), credential=other_office)
    assert refused.status_code == 403 and refused.json()["reason"] == "consultant-of-another-office"
    again = registry.post(consultant("c-old", "l-2"), credential=office)
    assert again.status_code == 422 and again.json()["reason"] == "consultant-already-joined"
    assert registry.post(departed("c-old", "l-3"), credential=office).status_code == 202
    gone = wait_until(lambda: [e for e in registry.events() if e.type == "ConsultantDeparted"], message="departed")
    assert gone[0].event.staff_id == staff_id


@pytest.mark.every_database
def test_the_migration_recovers_the_office_of_a_consultant_registered_under_the_old_ids(database_url, tmp_path,
                                                                                        master_key):
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import insert, select

    from services.registry.domain import References, legacy_consultant_id
    from shared.contracts.envelope import EventCodec
    from shared.contracts.events import ConsultantJoined
    from shared.crypto import SqlKeyStore
    from shared.db import make_engine
    from shared.outbox import enqueue_event

    config = Config()
    config.set_main_option("script_location", str(store.MIGRATIONS))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    config.attributes["version_table"] = store.VERSION_TABLE
    command.upgrade(config, "0002")  # the registry as it was before
    engine = make_engine(database_url)
    codec = EventCodec(SqlKeyStore(make_engine(f"sqlite:///{tmp_path / 'keys.sqlite'}"),
                                   base64_master(master_key)), source="/samenveilig/registry")
    staff_id = legacy_consultant_id("c-old")
    when = datetime(2026, 3, 1, tzinfo=UTC)
    with engine.begin() as connection:
        joined = codec.encode(ConsultantJoined(staff_id=staff_id, name="Anouk Visser", email="a.visser@ppo.example",
                                               wijknetwerken=["Noord", "Charlois"]),
                              event_id="evt-legacy-1", recorded_at=when)
        enqueue_event(connection, store.outbox, joined, emit_at=when)
        connection.execute(insert(store.mutations).values(
            sender="0ff1ce000001", mutation_id="old-1", kind="consultant_joined", fingerprint="0" * 64,
            status="accepted", event_ids='["evt-legacy-1"]', received_at=when, effective_at=when))
        connection.execute(insert(store.people).values(
            staff_id=str(staff_id), branch_id=None, role="swv_consultant", active=True))
    store.migrate_to_newest(database_url)
    with engine.connect() as connection:
        person = store.load_state(connection, References(people=(staff_id,))).people[staff_id]
        assert connection.execute(select(store.credentials.c.office)).all() == []
    assert (person.office, person.wijknetwerken) == ("0ff1ce000001", frozenset({"Noord", "Charlois"}))
    engine.dispose()


def base64_master(master_key: str) -> bytes:
    import base64

    return base64.b64decode(master_key)
