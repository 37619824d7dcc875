"""Generates the checked-in JSON Schemas and AsyncAPI 3.0 document from the contracts.

`python -m shared.contracts.generate` writes them; `--check` fails when they are stale
(a test runs the check, so a contract change without regenerating fails the suite).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

from shared.contracts.envelope import CONTENT_TYPE, SEALED_FIELD, Envelope
from shared.contracts.events import EVENT_TYPES, PERSONAL_DATA_MARK, json_schema
from shared.contracts.topics import Topic, dead_letter_topic

HERE = Path(__file__).parent
SCHEMA_DIR = HERE / "schemas"
ASYNCAPI = HERE / "asyncapi.yaml"

_KEYS = {
    Topic.REGISTRY_MUTATIONS: "The reporting school system's id; one sender's mutations in order.",
    Topic.REGISTRY_EVENTS: "The branch's stable internal id: one branch's events stay in order, "
                           "also across a BRIN change (SWV consultants: consultant/<id>).",
    Topic.ACCESS_EVENTS: "The staff member's id (DossierViewed: the dossier's id, so its views stay in order).",
    Topic.AUTH_EVENTS: "The staff member's id.",
    Topic.RETENTION_EVENTS: "The pupil's id (the leak's id for data-leak events).",
}

_DLQ_HEADERS = {
    "type": "object",
    "description": "The original message's headers, plus the reason it could not be processed.",
    "properties": {name: {"type": "string", "description": text} for name, text in {
        "dlq-reason": "Stable reason code: not-json, not-a-cloudevent, unknown-type, "
                      "unsupported-schema-version, not-sealed, tampered, invalid-data, handler-failed.",
        "dlq-detail": "Where the message failed (field paths, counts); never its values.",
        "dlq-exception-type": "The exception's type name.",
        "dlq-source-topic": "Topic the message was read from.",
        "dlq-source-partition": "Partition it was read from.",
        "dlq-source-offset": "Offset it was read from.",
        "dlq-consumer": "The consumer group that gave up on it.",
        "dlq-time": "When it was dead-lettered (ISO 8601).",
    }.items()},
}


def event_schemas() -> dict[str, dict[str, Any]]:
    return {f"{cls.event_type}.v{cls.schema_version}.json": json_schema(cls)
            for cls in EVENT_TYPES.values()}


def _channel_id(topic: str) -> str:
    head, *rest = topic.replace(".", "-").split("-")
    return head + "".join(part.capitalize() for part in rest)


def asyncapi_document() -> dict[str, Any]:
    envelope_schema = Envelope.model_json_schema()
    envelope_schema["description"] = (
        "CloudEvents 1.0, structured JSON mode. `time` is when the fact was recorded, "
        "`effectivetime` when it takes effect. Fields marked x-personal-data travel inside "
        f"`data.{SEALED_FIELD}` (AES-256-GCM under the data subject's key `keyid`), never in clear.")
    messages: dict[str, Any] = {}
    schemas: dict[str, Any] = {"Envelope": envelope_schema}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for cls in EVENT_TYPES.values():
        schema = json_schema(cls)
        personal = sorted(name for name, prop in schema.get("properties", {}).items()
                          if isinstance(prop, dict) and prop.get(PERSONAL_DATA_MARK))
        schemas[cls.event_type] = schema
        messages[cls.event_type] = {
            "name": cls.event_type,
            "title": cls.event_type,
            "contentType": CONTENT_TYPE,
            "summary": (cls.__doc__ or cls.event_type).strip().splitlines()[0],
            "payload": {"allOf": [{"$ref": "#/components/schemas/Envelope"}, {
                "type": "object",
                "properties": {"type": {"const": cls.event_type},
                               "schemaversion": {"const": cls.schema_version},
                               "data": {"$ref": f"#/components/schemas/{cls.event_type}"}}}]},
            "x-personal-data-fields": personal,
        }
    for topic in Topic:
        channel = _channel_id(topic.value)
        members = [cls.event_type for cls in EVENT_TYPES.values() if cls.topic == topic]
        refs = [{"$ref": f"#/components/messages/{name}"} for name in members]
        channels[channel] = {
            "address": topic.value,
            "description": f"Kafka key: {_KEYS[topic]}",
            "messages": {name: {"$ref": f"#/components/messages/{name}"} for name in members},
            "bindings": {"kafka": {"partitions": 3, "bindingVersion": "0.5.0"}},
        }
        dlq = dead_letter_topic(topic.value)
        channels[_channel_id(dlq)] = {
            "address": dlq,
            "description": f"Dead letters of {topic.value}: the original bytes and key, with the reason.",
            "messages": {"DeadLetter": {"$ref": "#/components/messages/DeadLetter"}},
        }
        if refs:
            operations[f"publish{channel[0].upper()}{channel[1:]}"] = {
                "action": "send", "channel": {"$ref": f"#/channels/{channel}"},
                "messages": [{"$ref": f"#/channels/{channel}/messages/{name}"} for name in members]}
    messages["DeadLetter"] = {"name": "DeadLetter", "title": "Dead letter",
                              "summary": "A message no consumer could process, kept with its reason.",
                              "headers": _DLQ_HEADERS, "payload": {}}
    return {
        "asyncapi": "3.0.0",
        "info": {"title": "samenveilig events", "version": "1.0.0",
                 "description": "Canonical events of samenveilig (Kindkans privacy backbone). "
                                "Generated from shared/contracts; do not edit by hand."},
        "defaultContentType": CONTENT_TYPE,
        "servers": {"local": {"host": "127.0.0.1:9092", "protocol": "kafka",
                              "description": "The local Tansu broker of the run command."}},
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    }


def rendered() -> dict[Path, str]:
    files = {SCHEMA_DIR / name: json.dumps(schema, indent=2, sort_keys=True) + "\n"
             for name, schema in event_schemas().items()}
    files[ASYNCAPI] = yaml.safe_dump(asyncapi_document(), sort_keys=False, width=100)
    return files


def stale_files() -> list[Path]:
    expected = rendered()
    stale = [path for path, text in expected.items()
             if not path.exists() or path.read_text() != text]
    stale += [path for path in SCHEMA_DIR.glob("*.json") if path not in expected]
    return stale


def main(argv: list[str]) -> int:
    if argv == ["--check"]:
        stale = stale_files()
        for path in stale:
            sys.stderr.write(f"stale: {path}\n")
        return 1 if stale else 0
    SCHEMA_DIR.mkdir(exist_ok=True)
    for path in SCHEMA_DIR.glob("*.json"):
        path.unlink()
    for path, text in rendered().items():
        path.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
