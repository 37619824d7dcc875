"""The envelope: CloudEvents 1.0 in structured JSON mode, with personal fields sealed per subject.

Envelope attributes stay readable (routing, audit, replay); only the personal fields of `data`
are encrypted, under the data subject's key, so destroying that key erases them everywhere.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from cryptography.exceptions import InvalidTag
from pydantic import AwareDatetime, BaseModel, ConfigDict, ValidationError

from shared.contracts.events import ERASED, Event, event_class
from shared.contracts.topics import TopicNames
from shared.crypto import KeyStore, seal, unseal

CONTENT_TYPE = "application/cloudevents+json"
SEALED_FIELD = "sealed"
SAMENVEILIG_NAMESPACE = uuid.UUID("6f1c7d0e-5a43-4b8e-9a8e-2f6d1b7c9e10")


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
UPCASTERS: dict[tuple[str, int], Upcaster] = {}


def _associated_data(event_id: str, event_type: str, key_id: str) -> bytes:
    # Binds the ciphertext to its envelope: it cannot be moved to another event or subject.
    return f"{event_id}\x1f{event_type}\x1f{key_id}".encode()


class EventCodec:
    def __init__(self, keys: KeyStore, source: str, topics: TopicNames | None = None) -> None:
        self._keys = keys
        self._source = source
        self._topics = topics or TopicNames()

    def encode(self, event: Event, *, event_id: str, recorded_at: datetime,
               effective_at: datetime | None = None, correlation_id: str | None = None,
               causation_id: str | None = None) -> EncodedEvent:
        data = event.model_dump(mode="json")
        personal = event.personal_fields()
        key_id = event.data_subject() if personal else None
        if personal:
            if key_id is None:
                raise TypeError(f"{event.event_type} has personal fields but no data subject")
            secret = {name: data.pop(name) for name in personal}
            sealed = seal(self._keys.key_for_writing(key_id),
                          json.dumps(secret, separators=(",", ":")).encode(),
                          _associated_data(event_id, event.event_type, key_id))
            data[SEALED_FIELD] = base64.b64encode(sealed).decode()
        envelope = Envelope(
            id=event_id, source=self._source, type=event.event_type,
            subject=event.subject_reference(), time=recorded_at,
            dataschema=f"urn:samenveilig:event:{event.event_type}:v{event.schema_version}",
            schemaversion=event.schema_version, correlationid=correlation_id or event_id,
            causationid=causation_id, effectivetime=effective_at or recorded_at,
            keyid=key_id, partitionkey=event.partition_key(), data=data,
        )
        key = envelope.partitionkey.encode()
        return EncodedEvent(
            id=event_id, topic=self._topics(event.topic), key=key,
            value=envelope.model_dump_json(exclude_none=True).encode(),
            headers=[("content-type", CONTENT_TYPE.encode()),
                     ("ce_type", event.event_type.encode()), ("ce_id", event_id.encode())],
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
        sealed = data.pop(SEALED_FIELD, None)
        personal = cls.personal_fields()
        if personal:
            if sealed is None or envelope.keyid is None:
                raise UndecodableMessage("not-sealed", "personal fields must arrive sealed")
            key = self._keys.key_for_reading(envelope.keyid)
            if key is None:
                erased = True
                data.update({name: ERASED for name in personal})
            else:
                try:
                    plain = unseal(key, base64.b64decode(sealed),
                                   _associated_data(envelope.id, envelope.type, envelope.keyid))
                except (InvalidTag, ValueError) as error:
                    raise UndecodableMessage("tampered", "sealed data fails authentication") from error
                data.update(json.loads(plain))
        elif sealed is not None:
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


def summarise_validation_error(error: ValidationError) -> str:
    # Where and what, never the offending values (they may be personal data).
    return "; ".join(
        f"{'.'.join(str(p) for p in item['loc']) or '<root>'}: {item['type']}"
        for item in error.errors()[:10]
    )
