"""Events only from their owner, over the real broker (issue 15, item 7): whoever can write a
topic cannot make a random id an IB'er, remove a dossier from access, or rebuild the view log's
hash chain. Forgeries are written with a plain kafka-python producer, as an outsider would."""

from __future__ import annotations

import base64
import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from kafka import KafkaProducer
from typer.testing import CliRunner

from services.access.api import create_app
from services.access.bootstrap import AccessDeps, build, build_relay, build_runner
from services.access.settings import AccessSettings
from services.audit.cli import app as audit_app
from shared import crypto as crypto_module
from shared.contracts import envelope as envelope_module
from shared.contracts import events as e
from shared.contracts.envelope import EventCodec
from shared.contracts.topics import Topic, dead_letter_topic
from shared.crypto import InMemoryKeyStore
from shared.kafka.admin import ensure_topics
from shared.kafka.producer import EventPublisher, make_producer
from tests.support import ACCESS_SCOPES, TOKENS, api_client, read_all, wait_until

BRANCH = uuid.uuid4()
ADDRESS = e.Address(street="Schiekade", house_number="12", postcode="3032 AJ", city="Rotterdam")
BRANCH_FOUNDED = e.BranchFounded(branch_id=BRANCH, vestigingscode="12AB00", name="OBS De Regenboog",
                                 address=ADDRESS, phone="+31101234567", wijknetwerk="Noord")


@dataclass
class Access:
    deps: AccessDeps
    settings: AccessSettings
    signing_dir: Path
    bootstrap: str
    workers: list

    def publish(self, *events: e.Event) -> list[str]:
        """As the owners publish: through the service codec, signed by each topic's owner."""
        now = datetime.now(UTC)
        encoded = [self.deps.codec.encode(event, event_id=str(uuid.uuid4()), recorded_at=now) for event in events]
        publisher = EventPublisher(make_producer(self.bootstrap, "owners"))
        publisher.publish_all(encoded)
        publisher.close()
        return [x.id for x in encoded]

    def check(self, staff_id: uuid.UUID, dossier_id: uuid.UUID) -> dict:
        api = api_client(create_app(self.deps), "access", ACCESS_SCOPES)
        response = api.get("/v1/check", params={"staff_id": str(staff_id), "dossier_id": str(dossier_id)})
        assert response.status_code == 200, response.text
        return response.json()

    def dead_letters(self, topic: Topic) -> list[str]:
        return [dict(r.headers)["dlq-reason"].decode()
                for r in read_all(self.bootstrap, dead_letter_topic(self.deps.topics(topic)))]

    def start(self, worker) -> None:
        thread = threading.Thread(target=worker.run, daemon=True)
        thread.start()
        self.workers.append((worker, thread))


@pytest.fixture
def access(broker, topic_prefix, database_url, master_key, tmp_path, smtp_server) -> Iterator[Access]:
    signing_dir = tmp_path / "signing"
    settings = AccessSettings(kafka_bootstrap_servers=broker.bootstrap, topic_prefix=topic_prefix,
                              database_url=database_url, keystore_url=f"sqlite:///{tmp_path / 'keys.sqlite'}",
                              master_key=master_key, consumer_group=f"{topic_prefix}access",
                              smtp_port=smtp_server.port, signing_dir=str(signing_dir))
    deps = build(settings)
    ensure_topics(broker.bootstrap, [name for t in Topic for name in (deps.topics(t), f"{deps.topics(t)}.dlq")], 3, 1)
    harness = Access(deps, settings, signing_dir, broker.bootstrap, [])
    yield harness
    for worker, _ in harness.workers:
        worker.stop_event.set()
    for _, thread in harness.workers:
        thread.join(timeout=15)


def forge(access: Access, event: e.Event, how: str, event_id: str | None = None) -> str:
    """An envelope as valid as the owner's, written straight to the topic by an outsider:
    unsigned; signed with a key of the forger's own, named as the owner's; or signed with a
    real key of another service (a reader, or a compromised access service)."""
    source = envelope_module.TOPIC_OWNERS[event.topic.value] if how != "unsigned" else "registry"
    encoded = EventCodec(InMemoryKeyStore(), source=f"/samenveilig/{source}", topics=access.deps.topics).encode(
        event, event_id=event_id or str(uuid.uuid4()), recorded_at=datetime.now(UTC))
    headers = list(encoded.headers)
    if how != "unsigned":
        if how == "own-key":
            private = Ed25519PrivateKey.generate()
        else:  # "another-service": the access service's real key, on a topic it does not own
            private = crypto_module.SigningKeys.load(access.signing_dir).for_service("access").private
        message = envelope_module.signed_message(event.topic.value, encoded.key, encoded.value)
        headers += [("samenveilig-signer", source.encode()),
                    ("samenveilig-signing-key", crypto_module.signing_key_id(private.public_key()).encode()),
                    ("samenveilig-envelope-signature", base64.b64encode(private.sign(message)))]
    producer = KafkaProducer(bootstrap_servers=access.bootstrap)
    producer.send(encoded.topic, key=encoded.key, value=encoded.value, headers=headers).get(timeout=15)
    producer.close()
    return encoded.id


@pytest.mark.parametrize("how", ["unsigned", "own-key", "another-service"])
def test_a_forged_staff_role_changed_makes_nobody_an_ib_er_and_is_dead_lettered_with_its_reason(access, how):
    access.start(build_runner(access.deps))
    teacher, stranger = uuid.uuid4(), uuid.uuid4()
    opened = e.DossierOpened(branch_id=BRANCH, dossier_id=uuid.uuid4(), pupil_id=uuid.uuid4(),
                             contact_staff_id=teacher, summary="Leesproblemen")
    access.publish(BRANCH_FOUNDED, e.StaffJoined(branch_id=BRANCH, staff_id=teacher, role=e.StaffRole.LEERKRACHT,
                                                 name="T", email="t@school.example"), opened)
    wait_until(lambda: access.check(teacher, opened.dossier_id)["allowed"], message="the dossier known")

    forge(access, e.StaffRoleChanged(branch_id=BRANCH, staff_id=stranger, role=e.StaffRole.IB_ER,
                                     previous_role=e.StaffRole.LEERKRACHT), how)
    wait_until(lambda: access.dead_letters(Topic.REGISTRY_EVENTS)
               or access.check(stranger, opened.dossier_id)["allowed"], message="the forgery handled")
    decision = access.check(stranger, opened.dossier_id)
    assert not decision["allowed"], f"a forged StaffRoleChanged made a random id an IB'er: {decision}"
    expected = {"unsigned": "unsigned", "own-key": "unknown-signing-key", "another-service": "signer-not-owner"}
    assert access.dead_letters(Topic.REGISTRY_EVENTS) == [expected[how]]
    # Processing goes on after the forgery.
    later = uuid.uuid4()
    access.publish(e.StaffJoined(branch_id=BRANCH, staff_id=later, role=e.StaffRole.IB_ER, name="I",
                                 email="i@school.example"))
    wait_until(lambda: access.check(later, opened.dossier_id)["allowed"], message="a genuine event after it")


def test_a_forged_pupil_data_purged_leaves_the_dossier_in_access_and_is_dead_lettered(access):
    access.start(build_runner(access.deps))
    ib_er, pupil = uuid.uuid4(), uuid.uuid4()
    opened = e.DossierOpened(branch_id=BRANCH, dossier_id=uuid.uuid4(), pupil_id=pupil, contact_staff_id=ib_er,
                             summary="Leesproblemen")
    access.publish(BRANCH_FOUNDED, e.StaffJoined(branch_id=BRANCH, staff_id=ib_er, role=e.StaffRole.IB_ER,
                                                 name="I", email="i@school.example"), opened)
    wait_until(lambda: access.check(ib_er, opened.dossier_id)["allowed"], message="the dossier known")

    forge(access, e.PupilDataPurged(pupil_id=pupil, key_id=f"pupil/{pupil}"), "unsigned")
    wait_until(lambda: access.dead_letters(Topic.RETENTION_EVENTS)
               or not access.check(ib_er, opened.dossier_id)["allowed"], message="the forgery handled")
    decision = access.check(ib_er, opened.dossier_id)
    assert decision["allowed"], f"a forged PupilDataPurged removed the dossier from access: {decision}"
    assert access.dead_letters(Topic.RETENTION_EVENTS) == ["unsigned"]


def audit(access: Access, *args: str) -> tuple[int, dict]:
    result = CliRunner().invoke(audit_app, ["--json", *args], env={
        "KAFKA_BOOTSTRAP_SERVERS": access.bootstrap, "SAMENVEILIG_TOPIC_PREFIX": access.settings.topic_prefix,
        "SAMENVEILIG_SIGNING_PUBLIC_DIR": str(access.signing_dir)})
    return result.exit_code, json.loads(result.stdout) if result.stdout.strip() else {}


def test_a_rebuilt_view_chain_is_caught_by_the_audit(access):
    """The chain's hashes have no secret: anyone who can write the topic can make a consistent
    chain of views that never happened. Only the access service's signature tells them apart."""
    access.start(build_runner(access.deps))
    access.start(build_relay(access.deps))
    ib_er = uuid.uuid4()
    opened = e.DossierOpened(branch_id=BRANCH, dossier_id=uuid.uuid4(), pupil_id=uuid.uuid4(),
                             contact_staff_id=ib_er, summary="Leesproblemen")
    access.publish(BRANCH_FOUNDED, e.StaffJoined(branch_id=BRANCH, staff_id=ib_er, role=e.StaffRole.IB_ER,
                                                 name="I", email="i@school.example"), opened)
    wait_until(lambda: access.check(ib_er, opened.dossier_id)["allowed"], message="the dossier known")
    api = api_client(create_app(access.deps), "access", ACCESS_SCOPES)
    assert api.post(f"/v1/dossiers/{opened.dossier_id}/views", json={},
                    headers=TOKENS.person(ib_er, "ib_er", ACCESS_SCOPES, "access")).status_code == 200
    wait_until(lambda: any(dict(r.headers).get("ce_type") == b"DossierViewed"
                           for r in read_all(access.bootstrap, access.deps.topics(Topic.ACCESS_EVENTS))),
               message="the genuine view published")
    code, answer = audit(access, "verify", "--access-db", access.settings.database_url)
    assert code == 0, answer

    # Views of another dossier by a colleague that never happened, chained exactly as the access
    # service chains them.
    other, colleague, previous = uuid.uuid4(), uuid.uuid4(), None
    for _ in range(2):
        event_id, at = str(uuid.uuid4()), datetime.now(UTC)
        entry = e.view_entry_hash(previous, event_id, colleague, other, True, "ib_er-sees-branch", at)
        forge(access, e.DossierViewed(staff_id=colleague, dossier_id=other, allowed=True, rule="ib_er-sees-branch",
                                      viewed_at=at, previous_hash=previous, entry_hash=entry), "unsigned",
              event_id=event_id)
        previous = entry
    code, answer = audit(access, "verify", "--access-db", access.settings.database_url)
    findings = {f["check"]: f for f in answer.get("findings", [])}
    assert code == 1, "the audit took a rebuilt chain for the access log"
    signed = findings["every event is signed by its topic's owner"]
    assert not signed["ok"] and len(signed["problems"]) == 2 and all("unsigned" in p for p in signed["problems"])
    assert findings["the access log hash chain is intact"]["ok"], "the genuine chain is still whole"


def test_a_log_written_before_signing_is_adopted_and_nothing_unsigned_is_accepted_after_it(access):
    """Events of an old log carry no signature: below the offsets recorded by `adopt` they are
    read as before; an unsigned event after them is forged."""
    from shared.kafka.signing import adopt

    ib_er = uuid.uuid4()
    opened = e.DossierOpened(branch_id=BRANCH, dossier_id=uuid.uuid4(), pupil_id=uuid.uuid4(),
                             contact_staff_id=ib_er, summary="Leesproblemen")
    old = EventCodec(InMemoryKeyStore(), source="/samenveilig/registry", topics=access.deps.topics)
    publisher = EventPublisher(make_producer(access.bootstrap, "old-registry"))
    publisher.publish_all([old.encode(event, event_id=str(uuid.uuid4()), recorded_at=datetime.now(UTC)) for event in (
        BRANCH_FOUNDED, e.StaffJoined(branch_id=BRANCH, staff_id=ib_er, role=e.StaffRole.IB_ER, name="I",
                                      email="i@school.example"), opened)])
    publisher.close()
    marks = adopt(access.bootstrap, access.deps.topics, access.signing_dir)
    assert sum(marks[Topic.REGISTRY_EVENTS.value].values()) == 3
    assert adopt(access.bootstrap, access.deps.topics, access.signing_dir) == marks, "a mark is never moved"

    deps = build(access.settings)  # the first start of the version that signs
    access.deps = deps
    access.start(build_runner(deps))
    wait_until(lambda: access.check(ib_er, opened.dossier_id)["allowed"], message="the old events applied")
    stranger = uuid.uuid4()
    forge(access, e.StaffRoleChanged(branch_id=BRANCH, staff_id=stranger, role=e.StaffRole.IB_ER,
                                     previous_role=e.StaffRole.LEERKRACHT), "unsigned")
    wait_until(lambda: access.dead_letters(Topic.REGISTRY_EVENTS), message="the unsigned newcomer dead-lettered")
    assert access.dead_letters(Topic.REGISTRY_EVENTS) == ["unsigned"]
    assert not access.check(stranger, opened.dossier_id)["allowed"]
