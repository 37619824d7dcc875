"""Events only from their owner: every record of a service's topic is signed by that service,
and a reader accepts nothing else (issue 15, item 7). No broker: the codec and the key files."""

from __future__ import annotations

import base64
import json
import stat
import time
import uuid

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shared.contracts.envelope import (
    SIGNATURE_HEADER,
    SIGNER_HEADER,
    SIGNING_KEY_HEADER,
    SIGNING_SERVICES,
    EventCodec,
    UndecodableMessage,
    service_codec,
    signed_message,
)
from shared.contracts.events import PupilDataPurged, StaffRole, StaffRoleChanged
from shared.contracts.topics import TopicNames
from shared.crypto import (
    SIGNED_FROM_FILE,
    InMemoryKeyStore,
    SigningKeys,
    new_signing_key,
    signing_key_id,
)
from shared.kafka.consumer import ConsumerRunner
from tests.unit.samples import BRANCH, MOMENT, STAFF

TOPICS = TopicNames("t.")
FORGED_ROLE = StaffRoleChanged(branch_id=BRANCH, staff_id=uuid.uuid4(), role=StaffRole.IB_ER,
                               previous_role=StaffRole.LEERKRACHT)
PUPIL = uuid.uuid4()
PURGE = PupilDataPurged(pupil_id=PUPIL, key_id=f"pupil/{PUPIL}")


@pytest.fixture
def signing_dir(tmp_path):
    return tmp_path / "signing"


@pytest.fixture
def registry(signing_dir) -> EventCodec:
    """The registry's codec on the embedded default: every service's key made in one directory."""
    return service_codec(InMemoryKeyStore(), "registry", TOPICS, (signing_dir, signing_dir), create_keys=True)


def _record(encoded) -> tuple[str, int, int, bytes, bytes, list[tuple[str, bytes]]]:
    return encoded.topic, 0, 0, encoded.key, encoded.value, encoded.headers


def _reason(codec: EventCodec, topic, partition, offset, key, value, headers) -> str:
    with pytest.raises(UndecodableMessage) as caught:
        codec.decode_record(topic, partition, offset, key, value, headers)
    return caught.value.reason


def test_an_event_signed_by_its_topics_owner_is_accepted_and_the_signature_is_in_headers(registry):
    encoded = registry.encode(FORGED_ROLE, event_id="e1", recorded_at=MOMENT)
    headers = dict(encoded.headers)
    assert headers[SIGNER_HEADER] == b"registry" and headers[SIGNING_KEY_HEADER] and headers[SIGNATURE_HEADER]
    assert registry.decode_record(*_record(encoded)).event == FORGED_ROLE
    assert json.loads(encoded.value)["specversion"] == "1.0", "the value stays a plain CloudEvent"


def test_an_unsigned_event_is_refused(registry):
    unsigned = EventCodec(InMemoryKeyStore(), source="/samenveilig/registry", topics=TOPICS)
    encoded = unsigned.encode(FORGED_ROLE, event_id="e1", recorded_at=MOMENT)
    assert _reason(registry, *_record(encoded)) == "unsigned"


def test_a_changed_value_key_or_topic_fails_the_signature(registry):
    encoded = registry.encode(FORGED_ROLE, event_id="e1", recorded_at=MOMENT)
    topic, partition, offset, key, value, headers = _record(encoded)
    changed = value.replace(b'"ib_er"', b'"directeur"')
    assert changed != value
    assert _reason(registry, topic, partition, offset, key, changed, headers) == "bad-signature"
    assert _reason(registry, topic, partition, offset, b"another-branch", value, headers) == "bad-signature"
    # The registry's event copied onto the retention topic: signer and owner differ.
    assert _reason(registry, TOPICS("retention.events.v1"), partition, offset, key, value, headers) == \
        "signer-not-owner"


def test_a_service_cannot_sign_for_a_topic_it_does_not_own(signing_dir, registry):
    """The access service's own key, honestly named, on the registry's topic: refused. And a
    forger naming the registry as signer with the access key: the key is not the registry's."""
    access = service_codec(InMemoryKeyStore(), "access", TOPICS, (signing_dir, signing_dir), create_keys=False)
    access_key = SigningKeys.load(signing_dir).for_service("access")
    assert access_key is not None
    unsigned = EventCodec(InMemoryKeyStore(), source="/samenveilig/registry", topics=TOPICS)
    encoded = unsigned.encode(FORGED_ROLE, event_id="e1", recorded_at=MOMENT)
    signature = base64.b64encode(access_key.sign(signed_message("registry.events.v1", encoded.key, encoded.value)))
    honest = [*encoded.headers, (SIGNER_HEADER, b"access"), (SIGNING_KEY_HEADER, access_key.key_id.encode()),
              (SIGNATURE_HEADER, signature)]
    lying = [*encoded.headers, (SIGNER_HEADER, b"registry"), (SIGNING_KEY_HEADER, access_key.key_id.encode()),
             (SIGNATURE_HEADER, signature)]
    assert _reason(access, encoded.topic, 0, 0, encoded.key, encoded.value, honest) == "signer-not-owner"
    assert _reason(access, encoded.topic, 0, 0, encoded.key, encoded.value, lying) == "signer-not-owner"


def test_a_key_nobody_listed_is_refused(registry):
    """A forger with a key of their own, naming it as the registry's."""
    forger = Ed25519PrivateKey.generate()
    unsigned = EventCodec(InMemoryKeyStore(), source="/samenveilig/registry", topics=TOPICS)
    encoded = unsigned.encode(FORGED_ROLE, event_id="e1", recorded_at=MOMENT)
    headers = [*encoded.headers, (SIGNER_HEADER, b"registry"),
               (SIGNING_KEY_HEADER, signing_key_id(forger.public_key()).encode()),
               (SIGNATURE_HEADER, base64.b64encode(forger.sign(signed_message("registry.events.v1", encoded.key,
                                                                              encoded.value))))]
    assert _reason(registry, encoded.topic, 0, 0, encoded.key, encoded.value, headers) == "unknown-signing-key"


def test_repeated_signature_headers_are_refused(registry):
    encoded = registry.encode(FORGED_ROLE, event_id="e1", recorded_at=MOMENT)
    topic, partition, offset, key, value, headers = _record(encoded)
    doubled = [*headers, (SIGNER_HEADER, b"registry")]
    assert _reason(registry, topic, partition, offset, key, value, doubled) == "bad-signature"


def test_a_codec_holding_only_its_own_key_cannot_write_another_services_topic(tmp_path):
    private, public = tmp_path / "access-private", tmp_path / "public"
    new_signing_key(private, public, "access")
    access = service_codec(InMemoryKeyStore(), "access", TOPICS, (private, public), create_keys=False)
    with pytest.raises(ValueError, match="registry"):
        access.encode(FORGED_ROLE, event_id="e1", recorded_at=MOMENT)


def test_a_service_without_its_key_refuses_to_start_where_keys_are_provisioned(tmp_path):
    with pytest.raises(ValueError, match="no signing key for auth"):
        service_codec(InMemoryKeyStore(), "auth", TOPICS, (tmp_path, tmp_path), create_keys=False)


def test_key_files_are_private_and_one_per_service(signing_dir, registry):
    assert {p.name.removesuffix(".signing-key") for p in signing_dir.glob("*.signing-key")} == set(SIGNING_SERVICES)
    for path in signing_dir.glob("*.signing-key"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(list(signing_dir.glob("*.pub"))) == len(SIGNING_SERVICES)
    # Made again at the next start: the same keys, not new ones.
    before = {s: SigningKeys.load(signing_dir).for_service(s).key_id for s in SIGNING_SERVICES}  # type: ignore[union-attr]
    service_codec(InMemoryKeyStore(), "access", TOPICS, (signing_dir, signing_dir), create_keys=True)
    assert before == {s: SigningKeys.load(signing_dir).for_service(s).key_id  # type: ignore[union-attr]
                      for s in SIGNING_SERVICES}


def test_after_a_rotation_readers_accept_the_old_and_the_new_key_without_a_restart(signing_dir, registry):
    old = registry.encode(FORGED_ROLE, event_id="e1", recorded_at=MOMENT)
    reader = service_codec(InMemoryKeyStore(), "access", TOPICS, (signing_dir, signing_dir), create_keys=False)
    new_signing_key(signing_dir, signing_dir, "registry", rotate=True)
    rotated = service_codec(InMemoryKeyStore(), "registry", TOPICS, (signing_dir, signing_dir), create_keys=False)
    new = rotated.encode(FORGED_ROLE, event_id="e2", recorded_at=MOMENT)
    assert dict(new.headers)[SIGNING_KEY_HEADER] != dict(old.headers)[SIGNING_KEY_HEADER]
    reader._trust._reload_after_s = 0  # type: ignore[union-attr]  # the reader started before the rotation
    assert reader.decode_record(*_record(old)).id == "e1"
    assert reader.decode_record(*_record(new)).id == "e2"


def test_unsigned_records_written_before_signing_began_are_accepted_and_none_after(signing_dir, registry):
    (signing_dir / SIGNED_FROM_FILE).write_text(json.dumps({"retention.events.v1": {"0": 5}}))
    reader = service_codec(InMemoryKeyStore(), "access", TOPICS, (signing_dir, signing_dir), create_keys=False)
    old = EventCodec(InMemoryKeyStore(), source="/samenveilig/retention", topics=TOPICS).encode(
        PURGE, event_id="e1", recorded_at=MOMENT)
    assert reader.decode_record(old.topic, 0, 4, old.key, old.value, old.headers).id == "e1"
    assert _reason(reader, old.topic, 0, 5, old.key, old.value, old.headers) == "unsigned"
    assert _reason(reader, old.topic, 1, 0, old.key, old.value, old.headers) == "unsigned"


def test_a_consumer_runner_needs_a_codec_that_verifies():
    with pytest.raises(ValueError, match="verifies"):
        ConsumerRunner(consumer_name="c", topics=["t"], bootstrap="127.0.0.1:1", engine=None,  # type: ignore[arg-type]
                       codec=EventCodec(InMemoryKeyStore(), source="/x"), handler=lambda m, c: None,
                       progress=None, dlq=None, clock=None)  # type: ignore[arg-type]


def test_verifying_costs_about_a_tenth_of_a_millisecond(registry):
    """Rough, and generous: the number for the README is printed (pytest -s)."""
    encoded = registry.encode(FORGED_ROLE, event_id="e1", recorded_at=MOMENT)
    record = _record(encoded)
    rounds = 500
    started = time.perf_counter()
    for _ in range(rounds):
        registry.verify_record(*record)
    verify_ms = (time.perf_counter() - started) / rounds * 1000
    started = time.perf_counter()
    for n in range(rounds):
        registry.encode(FORGED_ROLE, event_id=f"e{n}", recorded_at=MOMENT)
    encode_ms = (time.perf_counter() - started) / rounds * 1000
    print(f"verify {verify_ms:.3f} ms per event, encode with signing {encode_ms:.3f} ms")
    assert verify_ms < 2.0


def test_staff_sample_still_decodes_without_a_signature_check(registry):
    """`decode(value)` alone is what a service uses on what it wrote itself (its outbox)."""
    assert STAFF
    encoded = registry.encode(FORGED_ROLE, event_id="e1", recorded_at=MOMENT)
    assert registry.decode(encoded.value).id == "e1"
