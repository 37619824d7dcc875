"""The audit's reading of a log the relays repaired: a lost event published again, with the
events after it, is one event in its place; a copy that differs, or a version nobody put back,
is a finding."""

from __future__ import annotations

import json

from services.audit.verify import continuous_streams, unique_event_ids
from shared.kafka.log import LogRecord, in_stream_order
from shared.kafka.producer import STREAM_VERSION_HEADER


def record(offset: int, event_id: str, version: int | None, key: bytes = b"branch-1", body: str = "x") -> LogRecord:
    headers = ((STREAM_VERSION_HEADER, str(version).encode()),) if version is not None else ()
    return LogRecord("registry.events.v1", 0, offset, key, json.dumps({"id": event_id, "data": body}).encode(),
                     headers)


def repaired_log() -> list[LogRecord]:
    # v2 was lost; the relay noticed and published v2, v3, v4 again after v4.
    versions = [1, 3, 4, 2, 3, 4]
    return [record(offset, f"e{v}", v) for offset, v in enumerate(versions)]


def test_a_repaired_stream_reads_as_each_version_once_in_version_order():
    ordered = in_stream_order(repaired_log())
    assert [json.loads(r.value)["id"] for r in ordered] == ["e1", "e2", "e3", "e4"]
    assert [r.offset for r in ordered] == [0, 3, 4, 5], "the copies applied are the ones after the gap"


def test_streams_are_independent_and_unversioned_records_keep_their_place():
    log = [record(0, "old", None), record(1, "a1", 1, key=b"a"), record(2, "b2", 2, key=b"b"),
           record(3, "a2", 2, key=b"a")]
    assert [json.loads(r.value)["id"] for r in in_stream_order(log)] == ["old", "a1", "a2"]


def test_identical_copies_are_counted_not_reported_but_a_different_event_under_one_id_is():
    repaired = unique_event_ids(repaired_log())
    assert repaired.ok and repaired.copies == 2
    forged = unique_event_ids([record(0, "e1", 1), record(1, "e1", 1, body="something else")])
    assert not forged.ok and "differs" in forged.problems[0]


def test_a_version_nobody_put_back_is_a_finding():
    assert continuous_streams({"registry.events.v1": repaired_log()}).ok
    lost = continuous_streams({"registry.events.v1": [record(0, "e1", 1), record(1, "e3", 3)]})
    assert not lost.ok and "versions [2] of 3 are missing" in lost.problems[0]
    reordered = continuous_streams({"registry.events.v1": [record(0, "e2", 2), record(1, "e1", 1)]})
    assert not reordered.ok and "versions after 1 come before version 1" in reordered.problems[0]
    clash = continuous_streams({"registry.events.v1": [record(0, "e1", 1), record(1, "other", 1)]})
    assert not clash.ok and "version 1 is both" in clash.problems[0]
