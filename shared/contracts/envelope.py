"""The envelope: CloudEvents 1.0 in structured JSON mode, with personal fields sealed per subject.

Envelope attributes stay readable (routing, audit, replay); only the personal fields of `data`
are encrypted, under the data subject's key, so destroying that key erases them everywhere.

Every record on a service's topic is signed by that service (Ed25519, over the topic, the key and
the exact bytes of the value; the signature travels in Kafka headers, so the value stays plain
CloudEvents). A reader accepts a record only when the topic's owner signed it (`decode_record`);
anything else is an `UndecodableMessage` with its reason, which the consumer dead-letters.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from cryptography.exceptions import InvalidTag
from pydantic import AwareDatetime, BaseModel, ConfigDict, ValidationError

from shared.contracts.events import ERASED, DataCategory, Event, category_key_id, event_class
from shared.contracts.topics import Topic, TopicNames
from shared.crypto import (
    KeyStore,
    SigningKeys,
    TrustedSigners,
    UntrustedSignature,
    load_event_signing,
    seal,
    unseal,
)

CONTENT_TYPE = "application/cloudevents+json"
SEALED_FIELD = "sealed"


def sealed_field(category: DataCategory) -> str:
    """Where in `data` a category's sealed fields travel: `sealed` (identity and contact, and
    everything of an event written before categories), `sealed_medical`, `sealed_dossier`."""
    return SEALED_FIELD if category is DataCategory.IDENTITY else f"{SEALED_FIELD}_{category.value}"
SAMENVEILIG_NAMESPACE = uuid.UUID("6f1c7d0e-5a43-4b8e-9a8e-2f6d1b7c9e10")

# Who may write each topic of canonical events. The raw intake topic (registry.mutations.v1) is
# not here: school systems write it, and it keeps their HMAC as its proof (services/registry).
TOPIC_OWNERS: dict[str, str] = {
    Topic.REGISTRY_EVENTS.value: "registry",
    Topic.ACCESS_EVENTS.value: "access",
    Topic.AUTH_EVENTS.value: "auth",
    Topic.RETENTION_EVENTS.value: "retention",
}
SIGNING_SERVICES = tuple(sorted(set(TOPIC_OWNERS.values())))
SIGNER_HEADER = "samenveilig-signer"
SIGNING_KEY_HEADER = "samenveilig-signing-key"
SIGNATURE_HEADER = "samenveilig-envelope-signature"
_SIGNATURE_HEADERS = (SIGNER_HEADER, SIGNING_KEY_HEADER, SIGNATURE_HEADER)
_SIGNATURE_CONTEXT = b"samenveilig-envelope-signature/v1"


def signed_message(topic: str, key: bytes | None, value: bytes) -> bytes:
    """What a signature covers: the logical topic (a copy onto another topic does not verify), the
    record key and the value's exact bytes, each length-prefixed. Not the stream-version header:
    the relay assigns it after the event was signed; a copy with another version is either a
    duplicate (skipped by event id) or a gap the audit's stream check reports."""
    parts = [_SIGNATURE_CONTEXT, topic.encode(), key or b"", value]
    return b"".join(len(part).to_bytes(4, "big") + part for part in parts)


def derived_id(*natural_key: str) -> str:
    """An id that survives retries: the same natural key always gives the same id."""
    return str(uuid.uuid5(SAMENVEILIG_NAMESPACE, "\x1f".join(natural_key)))


class Envelope(BaseModel):
    """CloudEvents 1.0 attributes plus our extensions (lowercase, as the spec requires)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    specversion: Literal["1.0"] = "1.0"
    id: str
    source: str
    type: str
    subject: str | None = None
    # When we learned of the fact (record time).
    time: AwareDatetime
    datacontenttype: Literal["application/json"] = "application/json"
    dataschema: str
    schemaversion: int
    correlationid: str
    causationid: str | None = None
    # When the fact takes effect (valid time); may lie before or after `time`.
    effectivetime: AwareDatetime
    # The data subject's key id when `data` holds sealed personal fields.
    keyid: str | None = None
    partitionkey: str
    data: dict[str, Any]


class UndecodableMessage(Exception):
    """A message that can never be processed: it belongs in the dead-letter topic."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class RecordedEvent:
    """An event as read back: the envelope's facts beside the typed event."""

    id: str
    type: str
    source: str
    recorded_at: datetime
    effective_at: datetime
    correlation_id: str
    causation_id: str | None
    key_id: str | None
    event: Event
    # True when the subject's key was destroyed and personal fields read as ERASED.
    erased: bool


@dataclass(frozen=True)
class EncodedEvent:
    id: str
    topic: str
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


# (event type, schema version) -> function lifting that version's data one version up.
Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
UPCASTERS: dict[tuple[str, int], Upcaster] = {
    # v2 only seals the reason; the data of v1 is the same.
    ("LegalHoldPlaced", 1): dict,
}


def _associated_data(event_id: str, event_type: str, key_id: str) -> bytes:
    # Binds the ciphertext to its envelope: it cannot be moved to another event or subject.
    return f"{event_id}\x1f{event_type}\x1f{key_id}".encode()


class EventCodec:
    """Encodes (and, with `signing`, signs as the topic's owner) and decodes (`decode_record`:
    verified against `trust`) events. `decode(value)` alone checks no signature: for a service
    reading back what it wrote itself, and for tests."""

    def __init__(self, keys: KeyStore, source: str, topics: TopicNames | None = None, *,
                 signing: SigningKeys | None = None, trust: TrustedSigners | None = None) -> None:
        self._keys = keys
        self._source = source
        self._topics = topics or TopicNames()
        self._signing = signing
        self._trust = trust

    @property
    def verifies(self) -> bool:
        return self._trust is not None

    def signature_headers(self, topic: Topic, key: bytes, value: bytes) -> list[tuple[str, bytes]]:
        """The headers that sign a record of `topic` as its owner (none without signing keys).
        `encode` adds them; a repair tool re-publishing a corrected dead letter would too."""
        if self._signing is None:
            return []
        owner = TOPIC_OWNERS.get(topic.value, "")
        signing_key = self._signing.for_service(owner)
        if signing_key is None:
            # A service writes only its own topic; in a deployment it holds only its own key.
            raise ValueError(f"this process holds no signing key of {owner or 'an owner'}, "
                             f"which alone may write {topic.value}")
        signature = signing_key.sign(signed_message(topic.value, key, value))
        return [(SIGNER_HEADER, owner.encode()), (SIGNING_KEY_HEADER, signing_key.key_id.encode()),
                (SIGNATURE_HEADER, base64.b64encode(signature))]

    def verify_record(self, topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None,
                      headers: list[tuple[str, bytes]] | tuple[tuple[str, bytes], ...] | None) -> None:
        """Raises UndecodableMessage unless the owner of `topic` (a physical or logical name)
        signed this record, or it lies below the offset from which the topic is signed."""
        if self._trust is None:
            raise RuntimeError("this codec has no trusted signers: it cannot verify records")
        logical = self._topics.logical(topic)
        owner = TOPIC_OWNERS.get(logical)
        if owner is None:
            raise UndecodableMessage("no-owner", f"{logical} is not a topic of a service's events")
        found: dict[str, list[bytes]] = {}
        for name, header in headers or ():
            if name in _SIGNATURE_HEADERS:
                found.setdefault(name, []).append(header)
        if not found:
            if offset < self._trust.unsigned_below(logical, partition):
                return  # written before this topic was signed (README, "Who may write a topic")
            raise UndecodableMessage("unsigned", f"{logical} accepts only events signed by {owner}")
        if any(len(found.get(name, [])) != 1 for name in _SIGNATURE_HEADERS):
            raise UndecodableMessage("bad-signature", "signature headers missing or repeated")
        signer = found[SIGNER_HEADER][0].decode(errors="replace")
        if signer != owner:
            raise UndecodableMessage("signer-not-owner", f"signed by {signer[:40]!r}; {logical} is {owner}'s")
        try:
            signature = base64.b64decode(found[SIGNATURE_HEADER][0], validate=True)
        except ValueError as error:
            raise UndecodableMessage("bad-signature", "signature is not base64") from error
        try:
            self._trust.verify(owner, found[SIGNING_KEY_HEADER][0].decode(errors="replace"), signature,
                               signed_message(logical, key, value or b""))
        except UntrustedSignature as error:
            raise UndecodableMessage(error.reason, error.detail) from error

    def decode_record(self, topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None,
                      headers: list[tuple[str, bytes]] | tuple[tuple[str, bytes], ...] | None) -> RecordedEvent:
        """A record read from the log: its signature verified, then decoded."""
        self.verify_record(topic, partition, offset, key, value, headers)
        return self.decode(value)

    def encode(self, event: Event, *, event_id: str, recorded_at: datetime,
               effective_at: datetime | None = None, correlation_id: str | None = None,
               causation_id: str | None = None) -> EncodedEvent:
        data = event.model_dump(mode="json")
        personal = event.personal_fields()
        key_id = event.data_subject() if personal else None
        if personal:
            if key_id is None:
                raise TypeError(f"{event.event_type} has personal fields but no data subject")
            for category, names in event.personal_categories().items():
                secret = {name: data.pop(name) for name in names}
                if category is not DataCategory.IDENTITY and all(value is None for value in secret.values()):
                    continue  # nothing of this category (an optional field left out): no key for it
                category_key = category_key_id(key_id, category)
                sealed = seal(self._keys.key_for_writing(category_key),
                              json.dumps(secret, separators=(",", ":")).encode(),
                              _associated_data(event_id, event.event_type, category_key))
                data[sealed_field(category)] = base64.b64encode(sealed).decode()
        envelope = Envelope(
            id=event_id, source=self._source, type=event.event_type,
            subject=event.subject_reference(), time=recorded_at,
            dataschema=f"urn:samenveilig:event:{event.event_type}:v{event.schema_version}",
            schemaversion=event.schema_version, correlationid=correlation_id or event_id,
            causationid=causation_id, effectivetime=effective_at or recorded_at,
            keyid=key_id, partitionkey=event.partition_key(), data=data,
        )
        key = envelope.partitionkey.encode()
        value = envelope.model_dump_json(exclude_none=True).encode()
        return EncodedEvent(
            id=event_id, topic=self._topics(event.topic), key=key, value=value,
            headers=[("content-type", CONTENT_TYPE.encode()),
                     ("ce_type", event.event_type.encode()), ("ce_id", event_id.encode()),
                     *self.signature_headers(event.topic, key, value)],
        )

    def decode(self, value: bytes | None) -> RecordedEvent:
        if value is None:
            raise UndecodableMessage("empty", "message has no value (tombstone)")
        try:
            raw = json.loads(value)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise UndecodableMessage("not-json", type(error).__name__) from error
        try:
            envelope = Envelope.model_validate(raw)
        except ValidationError as error:
            raise UndecodableMessage("not-a-cloudevent", summarise_validation_error(error)) from error
        cls = event_class(envelope.type)
        if cls is None:
            raise UndecodableMessage("unknown-type", f"unknown event type {envelope.type!r}")
        data = dict(envelope.data)
        version = envelope.schemaversion
        written_in_clear = version < cls.sealed_from_version
        while version < cls.schema_version:
            upcaster = UPCASTERS.get((envelope.type, version))
            if upcaster is None:
                raise UndecodableMessage("unsupported-schema-version",
                                         f"{envelope.type} v{version} cannot be upcast")
            data = upcaster(data)
            version += 1
        if version > cls.schema_version:
            raise UndecodableMessage("unsupported-schema-version",
                                     f"{envelope.type} v{version} is newer than this reader")
        erased = False
        blobs = {category: data.pop(sealed_field(category), None) for category in DataCategory}
        personal = cls.personal_fields()
        if personal and written_in_clear and all(blob is None for blob in blobs.values()):
            pass  # from before these fields were sealed: read as written (the README, "Erasure")
        elif personal:
            if all(blob is None for blob in blobs.values()) or envelope.keyid is None:
                raise UndecodableMessage("not-sealed", "personal fields must arrive sealed")
            # Each category under its own key; an event from before categories has them all in
            # the identity blob. A destroyed key reads as ERASED for the fields it sealed.
            categories = cls.personal_categories()
            readable: dict[str, Any] = {}
            unreadable: set[str] = set()
            for category, blob in blobs.items():
                if blob is None:
                    continue
                category_key = category_key_id(envelope.keyid, category)
                key = self._keys.key_for_reading(category_key)
                if key is None:
                    erased = True
                    # The identity blob of an event from before categories held every field.
                    unreadable |= personal if category is DataCategory.IDENTITY else categories.get(category, set())
                    continue
                try:
                    plain = unseal(key, base64.b64decode(blob),
                                   _associated_data(envelope.id, envelope.type, category_key))
                except (InvalidTag, ValueError) as error:
                    raise UndecodableMessage("tampered", "sealed data fails authentication") from error
                readable.update(json.loads(plain))
            data.update({name: readable.get(name, ERASED) for name in personal
                         if name in readable or name in unreadable})
        elif any(blob is not None for blob in blobs.values()):
            raise UndecodableMessage("invalid-data", "sealed data on an event without personal fields")
        try:
            event = cls.model_validate(data)
        except ValidationError as error:
            raise UndecodableMessage("invalid-data", summarise_validation_error(error)) from error
        return RecordedEvent(
            id=envelope.id, type=envelope.type, source=envelope.source,
            recorded_at=envelope.time, effective_at=envelope.effectivetime,
            correlation_id=envelope.correlationid, causation_id=envelope.causationid,
            key_id=envelope.keyid, event=event, erased=erased,
        )


def service_codec(keys: KeyStore, service: str, topics: TopicNames, signing_paths: tuple[Path, Path],
                  create_keys: bool) -> EventCodec:
    """A service's codec: it signs what the service publishes and verifies what it reads. With
    `create_keys` (the embedded default) missing keys of every service are made first."""
    signing, trust = load_event_signing(*signing_paths, service, create_for=SIGNING_SERVICES if create_keys else ())
    return EventCodec(keys, source=f"/samenveilig/{service}", topics=topics, signing=signing, trust=trust)


def summarise_validation_error(error: ValidationError) -> str:
    # Where and what, never the offending values (they may be personal data).
    return "; ".join(
        f"{'.'.join(str(p) for p in item['loc']) or '<root>'}: {item['type']}"
        for item in error.errors()[:10]
    )
