"""The envelope codec: round trips, sealing of personal data, crypto-shredding, rejections."""

from __future__ import annotations

import base64
import json
import uuid

import pytest

from shared.contracts import envelope as envelope_module
from shared.contracts import generate
from shared.contracts.envelope import SEALED_FIELD, EventCodec, UndecodableMessage, derived_id
from shared.contracts.events import (
    ERASED,
    EVENT_TYPE_NAME,
    EVENT_TYPES,
    DataCategory,
    StaffDeparted,
    Topic,
    category_key_id,
    subject_key_ids,
)
from shared.crypto import InMemoryKeyStore, KeyDestroyed
from tests.unit.samples import BRANCH, MOMENT, SAMPLES, STAFF, sample


@pytest.fixture
def keys() -> InMemoryKeyStore:
    return InMemoryKeyStore()


@pytest.fixture
def codec(keys) -> EventCodec:
    return EventCodec(keys, source="/samenveilig/test")


def test_every_event_type_has_a_sample_and_a_stable_name():
    assert {type(s).event_type for s in SAMPLES} == set(EVENT_TYPES)
    for name, cls in EVENT_TYPES.items():
        assert EVENT_TYPE_NAME.match(name)
        assert cls.schema_version >= 1


@pytest.mark.parametrize("event", SAMPLES, ids=lambda e: e.event_type)
def test_every_event_survives_the_round_trip(codec, event):
    encoded = codec.encode(event, event_id=f"evt-{event.event_type}", recorded_at=MOMENT)
    recorded = codec.decode(encoded.value)
    assert recorded.event == event
    assert recorded.type == event.event_type
    assert recorded.recorded_at == recorded.effective_at == MOMENT
    assert encoded.key == event.partition_key().encode()
    assert encoded.topic == str(event.topic)
    assert not recorded.erased


@pytest.mark.parametrize("event", [s for s in SAMPLES if s.personal_fields()], ids=lambda e: e.event_type)
def test_personal_data_never_travels_in_clear(codec, event):
    encoded = codec.encode(event, event_id="evt-1", recorded_at=MOMENT)
    for name in event.personal_fields():
        value = getattr(event, name)
        for fragment in value if isinstance(value, list) else [value]:
            assert str(fragment).encode() not in encoded.value, f"{name} leaked in clear"
    envelope = json.loads(encoded.value)
    assert envelope["keyid"] == event.data_subject()
    assert set(envelope["data"]).isdisjoint(event.personal_fields())


def test_destroying_the_subjects_key_erases_every_copy_but_replay_still_works(codec, keys):
    enrolled, dossier = sample("PupilEnrolled"), sample("DossierOpened")  # PupilEnrolled, DossierOpened: same pupil
    stored = [codec.encode(enrolled, event_id="e1", recorded_at=MOMENT).value,
              codec.encode(dossier, event_id="e2", recorded_at=MOMENT).value]
    # The purge destroys every key of the pupil: one per category of data.
    assert [keys.destroy(key_id) for key_id in subject_key_ids(enrolled.data_subject())] == [True, True, True]

    first, second = (codec.decode(value) for value in stored)
    assert first.erased and second.erased
    assert first.event.name == ERASED and first.event.date_of_birth == ERASED
    assert first.event.parent_emails == ERASED and second.event.summary == ERASED
    # What is not personal stays readable, so folds over the history still work.
    assert first.event.pupil_id == enrolled.pupil_id and second.event.dossier_id == dossier.dossier_id


def test_one_category_of_a_pupils_data_is_erased_on_its_own(codec, keys):
    """Medical details when no longer needed, a hulpvraag's text on request: each has a key of
    its own, so destroying it erases that category in every copy and leaves the rest readable."""
    enrolled, dossier = sample("PupilEnrolled"), sample("DossierOpened")
    stored = [codec.encode(enrolled, event_id="e1", recorded_at=MOMENT).value,
              codec.encode(dossier, event_id="e2", recorded_at=MOMENT).value]
    assert b"Pinda" not in stored[0] and b"sealed_medical" in stored[0]
    assert keys.destroy(category_key_id(enrolled.data_subject(), DataCategory.MEDICAL))
    first, second = (codec.decode(value) for value in stored)
    assert first.erased and first.event.medical_notes == ERASED
    assert first.event.name == "Daan Jansen" and first.event.parent_emails == ["ouder.jansen@example.nl"]
    assert not second.erased and second.event.summary == dossier.summary
    assert keys.destroy(category_key_id(enrolled.data_subject(), DataCategory.DOSSIER))
    assert codec.decode(stored[1]).event.summary == ERASED
    assert codec.decode(stored[0]).event.name == "Daan Jansen"
    # A later event of the pupil still carries identity data; a medical note no longer can.
    codec.encode(enrolled.model_copy(update={"medical_notes": None}), event_id="e3", recorded_at=MOMENT)
    with pytest.raises(KeyDestroyed):
        codec.encode(enrolled, event_id="e4", recorded_at=MOMENT)


def test_an_event_sealed_before_categories_still_reads_and_is_erased_with_the_pupil(codec, keys):
    """Events written with every personal field under the pupil's one key (before categories)."""
    from shared.contracts.envelope import _associated_data
    from shared.crypto import seal

    dossier = sample("DossierOpened")
    envelope = json.loads(codec.encode(dossier, event_id="old", recorded_at=MOMENT).value)
    del envelope["data"]["sealed_dossier"]
    key_id = dossier.data_subject()
    envelope["data"][SEALED_FIELD] = base64.b64encode(seal(
        keys.key_for_writing(key_id), json.dumps({"summary": dossier.summary}).encode(),
        _associated_data("old", "DossierOpened", key_id))).decode()
    old = json.dumps(envelope).encode()
    assert codec.decode(old).event.summary == dossier.summary
    for each in subject_key_ids(key_id):
        keys.destroy(each)
    assert codec.decode(old).event.summary == ERASED and codec.decode(old).erased


def test_no_new_personal_data_is_written_for_a_purged_subject(codec, keys):
    keys.destroy(sample("PupilEnrolled").data_subject())
    with pytest.raises(KeyDestroyed):
        codec.encode(sample("PupilEnrolled"), event_id="e3", recorded_at=MOMENT)


def test_tampered_or_transplanted_ciphertext_is_rejected(codec):
    joined = sample("StaffJoined")
    envelope = json.loads(codec.encode(joined, event_id="e1", recorded_at=MOMENT).value)
    sealed = bytearray(base64.b64decode(envelope["data"][SEALED_FIELD]))
    sealed[-1] ^= 1
    flipped = {**envelope, "data": {**envelope["data"], SEALED_FIELD: base64.b64encode(sealed).decode()}}
    with pytest.raises(UndecodableMessage) as caught:
        codec.decode(json.dumps(flipped).encode())
    assert caught.value.reason == "tampered"
    # The same sealed blob under another event id does not authenticate either.
    transplanted = {**envelope, "id": "e-other"}
    with pytest.raises(UndecodableMessage) as caught:
        codec.decode(json.dumps(transplanted).encode())
    assert caught.value.reason == "tampered"


@pytest.mark.parametrize(("value", "reason"), [
    (None, "empty"),
    (b"\xff\x00", "not-json"),
    (b"[1, 2]", "not-a-cloudevent"),
    (b'{"specversion": "0.3"}', "not-a-cloudevent"),
])
def test_garbage_is_undecodable_with_a_reason(codec, value, reason):
    with pytest.raises(UndecodableMessage) as caught:
        codec.decode(value)
    assert caught.value.reason == reason


def _departed(codec: EventCodec) -> dict:
    event = StaffDeparted(branch_id=BRANCH, staff_id=STAFF)
    return json.loads(codec.encode(event, event_id="e1", recorded_at=MOMENT).value)


@pytest.mark.parametrize(("change", "reason"), [
    ({"type": "StaffVanished"}, "unknown-type"),
    ({"schemaversion": 9}, "unsupported-schema-version"),
    ({"data": {"branch_id": "not-a-uuid"}}, "invalid-data"),
    ({"data": {"branch_id": str(BRANCH), "staff_id": str(STAFF), "name": "extra"}}, "invalid-data"),
    ({"data": {"branch_id": str(BRANCH), "staff_id": str(STAFF), SEALED_FIELD: "AAAA"}}, "invalid-data"),
])
def test_wrong_content_is_undecodable_with_a_reason(codec, change, reason):
    with pytest.raises(UndecodableMessage) as caught:
        codec.decode(json.dumps({**_departed(codec), **change}).encode())
    assert caught.value.reason == reason


def test_invalid_data_detail_names_fields_not_values(codec):
    secret = "Fatima el Amrani"
    with pytest.raises(UndecodableMessage) as caught:
        codec.decode(json.dumps({**_departed(codec), "data": {"branch_id": secret}}).encode())
    assert "branch_id" in caught.value.detail
    assert secret not in caught.value.detail


def test_old_schema_versions_are_upcast_on_read(codec, monkeypatch):
    stored_v1 = json.dumps(_departed(codec)).encode()
    monkeypatch.setattr(StaffDeparted, "schema_version", 2)
    with pytest.raises(UndecodableMessage) as caught:
        codec.decode(stored_v1)
    assert caught.value.reason == "unsupported-schema-version"
    monkeypatch.setitem(envelope_module.UPCASTERS, ("StaffDeparted", 1), lambda data: dict(data))
    assert codec.decode(stored_v1).event.staff_id == STAFF


def test_both_times_of_a_change_travel_with_it(codec):
    later = MOMENT.replace(month=10)
    encoded = codec.encode(StaffDeparted(branch_id=BRANCH, staff_id=STAFF), event_id="e1",
                           recorded_at=later, effective_at=MOMENT, correlation_id="c1", causation_id="m1")
    recorded = codec.decode(encoded.value)
    assert (recorded.recorded_at, recorded.effective_at) == (later, MOMENT)
    assert (recorded.correlation_id, recorded.causation_id) == ("c1", "m1")


def test_a_brin_change_keeps_the_branch_on_the_same_key():
    founded, brin_changed = sample("BranchFounded"), sample("BranchBrinChanged")
    assert founded.vestigingscode != brin_changed.vestigingscode
    assert founded.partition_key() == brin_changed.partition_key() == str(BRANCH)
    assert founded.topic == brin_changed.topic == Topic.REGISTRY_EVENTS


def test_events_with_personal_fields_name_their_data_subject():
    for event in SAMPLES:
        if event.personal_fields():
            assert event.data_subject(), event.event_type


def test_derived_ids_are_stable_and_distinct():
    assert derived_id("mutation", "abc") == derived_id("mutation", "abc")
    assert derived_id("mutation", "abc") != derived_id("mutation", "abd")
    uuid.UUID(derived_id("x"))


def test_checked_in_schemas_and_asyncapi_are_current():
    stale = generate.stale_files()
    assert not stale, f"regenerate with `python -m shared.contracts.generate`: {stale}"


def test_asyncapi_lists_every_event_on_its_topic():
    document = generate.asyncapi_document()
    assert document["asyncapi"] == "3.0.0"
    addresses = {channel["address"]: channel for channel in document["channels"].values()}
    for name, cls in EVENT_TYPES.items():
        assert name in addresses[str(cls.topic)]["messages"]
    for topic in Topic:
        assert f"{topic}.dlq" in addresses


def test_free_text_about_a_child_is_sealed_under_the_pupils_key(codec):
    """Issue 16: legal-hold reasons travelled unsealed on retention.events.v1 (a dispute, an
    investigation: free text about a child)."""
    hold = sample("LegalHoldPlaced").model_copy(update={"reason": "Bezwaarprocedure ouders Bakker"})
    assert "reason" in hold.personal_fields()
    encoded = codec.encode(hold, event_id="evt-hold", recorded_at=MOMENT)
    assert b"Bakker" not in encoded.value and b"Bezwaar" not in encoded.value
    assert json.loads(encoded.value)["keyid"] == f"pupil/{hold.pupil_id}"


def test_a_legal_hold_written_before_its_reason_was_sealed_still_reads(codec):
    hold = sample("LegalHoldPlaced")
    envelope = json.loads(codec.encode(sample("LegalHoldReleased"), event_id="evt-old", recorded_at=MOMENT).value)
    envelope.update(type="LegalHoldPlaced", schemaversion=1, keyid=None,
                    data={"pupil_id": str(hold.pupil_id), "reason": "bezwaarprocedure", "acted_by": None})
    recorded = codec.decode(json.dumps(envelope).encode())
    assert recorded.event.reason == "bezwaarprocedure" and not recorded.erased
    envelope["schemaversion"] = 2
    with pytest.raises(UndecodableMessage, match="sealed"):
        codec.decode(json.dumps(envelope).encode())
