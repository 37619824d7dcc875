"""Purge by crypto-shredding over the real broker: a pupil reported through the registry leaves,
the retention period passes (clock moved), the key is destroyed, every topic reads "verwijderd",
every service drops its rows, and the audit replay still completes."""

from __future__ import annotations

import base64
import json
import threading
from datetime import UTC, date, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from services.access import store as access_store
from services.access.bootstrap import build as build_access
from services.access.bootstrap import build_runner as access_runner
from services.access.settings import AccessSettings
from services.audit.cli import app as audit_app
from services.registry import store as registry_store
from services.registry.api import create_app as registry_app
from services.registry.bootstrap import build as build_registry
from services.registry.bootstrap import build_follower
from services.registry.bootstrap import build_relay as registry_relay
from services.registry.settings import RegistrySettings
from services.retention import store as retention_store
from services.retention.api import create_app as retention_app
from services.retention.bootstrap import build as build_retention
from services.retention.bootstrap import build_relay as retention_relay
from services.retention.bootstrap import build_runner as retention_runner
from services.retention.settings import RetentionSettings
from shared.clock import ManualClock
from shared.contracts.envelope import EventCodec
from shared.contracts.events import ERASED
from shared.contracts.topics import Topic
from shared.crypto import SqlKeyStore, data_keys
from shared.db import make_engine
from tests.support import RETENTION_SCOPES, api_client, read_all, wait_until

ADDRESS = {"street": "Schiekade", "house_number": "12", "postcode": "3032 AJ", "city": "Rotterdam"}
NAME = "Sanne Bakker"


@pytest.fixture
def system(broker, topic_prefix, database_url, master_key, tmp_path, smtp_server):
    common = {"kafka_bootstrap_servers": broker.bootstrap, "topic_prefix": topic_prefix, "master_key": master_key,
              "keystore_url": f"sqlite:///{tmp_path / 'keys.sqlite'}", "smtp_port": smtp_server.port}
    registry = build_registry(RegistrySettings(database_url=f"sqlite:///{tmp_path / 'registry.sqlite'}",
                                               consumer_group=f"{topic_prefix}registry", **common))
    access = build_access(AccessSettings(database_url=f"sqlite:///{tmp_path / 'access.sqlite'}",
                                         consumer_group=f"{topic_prefix}access", **common))
    clock = ManualClock(datetime.now(UTC))
    retention = build_retention(RetentionSettings(database_url=database_url, consumer_group=f"{topic_prefix}ret",
                                                  **common), clock=clock)
    workers = [registry_relay(registry), build_follower(registry), access_runner(access),
               retention_runner(retention), retention_relay(retention)]
    threads = [threading.Thread(target=w.run, daemon=True) for w in workers]
    for thread in threads:
        thread.start()
    yield registry, access, retention, clock
    for worker in workers:
        worker.stop_event.set()
    for thread in threads:
        thread.join(timeout=15)


@pytest.mark.every_database
def test_a_pupil_is_purged_everywhere_when_the_period_ends(system, broker, topic_prefix, master_key, tmp_path):
    registry, access, retention, clock = system
    school = registry.credentials.create("ParnasSys De Regenboog", ["12AB"], [])
    reported = TestClient(registry_app(registry)).post("/v1/mutations", headers={
        "Authorization": f"Bearer {school.api_key}"}, json={"mutations": [
            {"kind": "branch", "change": "founded", "mutation_id": "r-1", "vestigingscode": "12AB00",
             "name": "OBS De Regenboog", "address": ADDRESS, "phone": "010-1234567", "wijknetwerk": "Noord"},
            {"kind": "staff_joined", "mutation_id": "r-2", "vestigingscode": "12AB00", "staff_ref": "emp-1",
             "role": "ib_er", "name": "Fatima el Amrani", "email": "f@school.example"},
            {"kind": "pupil_enrolled", "mutation_id": "r-3", "vestigingscode": "12AB00", "pupil_ref": "lln-1",
             "name": NAME, "date_of_birth": "2015-03-01", "parent_emails": ["ouder.bakker@example.nl"]},
            {"kind": "dossier_opened", "mutation_id": "r-4", "vestigingscode": "12AB00", "dossier_ref": "hv-1",
             "pupil_ref": "lln-1", "contact_staff_ref": "emp-1", "summary": "Sanne leest moeizaam."},
            {"kind": "pupil_left", "mutation_id": "r-5", "vestigingscode": "12AB00", "pupil_ref": "lln-1",
             "left_on": "2026-07-17"}]})
    assert reported.status_code == 202, reported.text
    pupil_event = reported.json()["results"][2]["event_ids"][0]

    def pupil_row():
        with retention.engine.connect() as connection:
            return connection.execute(select(retention_store.pupils)).first()

    # With an SWV dossier, its category applies: 2 years by default, like every category (the promise).
    row = wait_until(lambda: (r := pupil_row()) is not None and r.due_on is not None and r, message="scheduled")
    assert row.due_on == date(2028, 7, 17) and row.category == "swv_dossier"
    consent = api_client(retention_app(retention), "retention", RETENTION_SCOPES).get(
        f"/v1/pupils/{row.pupil_id}/consent/photo_video").json()
    assert consent["allowed"] is False and consent["needs"] == ["parent"]

    keys = SqlKeyStore(make_engine(f"sqlite:///{tmp_path / 'keys.sqlite'}"), base64.b64decode(master_key))
    codec = EventCodec(keys, source="/test")

    def decoded(topic: Topic):
        return [codec.decode(r.value) for r in read_all(broker.bootstrap, f"{topic_prefix}{topic}")]

    enrolled = next(e for e in decoded(Topic.REGISTRY_EVENTS) if e.id == pupil_event)
    with keys._engine.connect() as connection:  # what a probe would look for once it is destroyed
        wrapped_key = bytes(connection.execute(select(data_keys.c.wrapped_key).where(
            data_keys.c.key_id == f"pupil/{row.pupil_id}")).scalar_one())
    assert enrolled.event.name == NAME, "readable while the pupil's data is kept"

    def access_dossier():
        with access.engine.connect() as connection:
            return connection.execute(select(access_store.dossiers)).first()

    # The access processor follows on its own (its group join takes a few seconds on Tansu).
    wait_until(lambda: access_dossier() is not None, message="the access service holds the dossier")

    clock.set(datetime(2028, 7, 17, 6, 0, tzinfo=UTC))  # 08:00 in Rotterdam: the day has come
    wait_until(lambda: any(e.type == "PupilDataPurged" for e in decoded(Topic.RETENTION_EVENTS)), timeout_s=30,
               message="the purge")

    raw = b"".join(r.value or b"" for topic in Topic
                   for r in read_all(broker.bootstrap, f"{topic_prefix}{topic}"))
    assert NAME.encode() not in raw and b"Bakker" not in raw and b"ouder.bakker" not in raw
    after = {e.type: e for e in decoded(Topic.REGISTRY_EVENTS)}
    assert after["PupilEnrolled"].erased and after["PupilEnrolled"].event.name == ERASED
    assert after["DossierOpened"].event.summary == ERASED
    assert after["StaffJoined"].event.name == "Fatima el Amrani", "other people's data is untouched"

    def rows_left() -> dict[str, int]:
        with access.engine.connect() as a, registry.engine.connect() as r, retention.engine.connect() as t:
            return {"access dossiers": len(a.execute(select(access_store.dossiers)).all()),
                    "registry pupils": len(r.execute(select(registry_store.pupils)).all()),
                    "registry dossiers": len(r.execute(select(registry_store.dossiers)).all()),
                    "retention pupils": len(t.execute(select(retention_store.pupils)).all())}

    wait_until(lambda: not any(rows_left().values()), timeout_s=30, message=f"rows dropped: {rows_left()}")
    # Nothing readable is left in any database file, its WAL or journal, nor the key store's
    # (issue 16: the date of birth stayed in retention.sqlite and its WAL, the key in the WAL).
    def readable_copies() -> list[str]:
        return [f"{path.name}: {needle!r}" for path in sorted(tmp_path.rglob("*")) if path.is_file()
                for needle in (NAME.encode(), b"ouder.bakker", b"2015-03-01", wrapped_key)
                if needle in path.read_bytes()]

    wait_until(lambda: not readable_copies(), timeout_s=30, message=f"no readable copies: {readable_copies()}")
    report = api_client(retention_app(retention), "retention", RETENTION_SCOPES).get("/v1/purges").json()
    assert [r["pupil_id"] for r in report] == [row.pupil_id] and NAME not in str(report)

    result = CliRunner().invoke(audit_app, ["--json", "replay", "--access-db", str(access.settings.database_url)],
                                env={"KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
                                     "SAMENVEILIG_TOPIC_PREFIX": topic_prefix})
    assert result.exit_code == 0, result.stdout
    assert json.loads(result.stdout)["replay_equals_live"]
