"""The audit's proofs that nothing was lost or altered. Pure: works on what was read from the log
(and, where given, on rows from a service's database)."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from shared.contracts.envelope import derived_id
from shared.contracts.events import (
    AccountDisabled,
    ConsultantDeparted,
    DossierViewed,
    NotificationsStopped,
    StaffDeparted,
    view_entry_hash,
)
from shared.contracts.topics import Topic
from shared.kafka.log import Entry, LogRecord, stream_version


@dataclass
class Finding:
    check: str
    ok: bool
    checked: int
    problems: list[str] = field(default_factory=list)
    copies: int = 0  # records that repeat an earlier one exactly (republished), not problems
    holes: int = 0  # offsets without a record (a broker crash mid-write), not problems
    notes: list[str] = field(default_factory=list)

    def add(self, problem: str) -> None:
        self.ok = False
        if len(self.problems) < 50:
            self.problems.append(problem)


def unique_event_ids(records: Iterable[LogRecord]) -> Finding:
    """An event id names one event: a second record with it must be the same bytes (the relay
    published it again after the log lost it, or after an acknowledgement it could not trust);
    anything else is two different facts under one name."""
    seen: dict[str, LogRecord] = {}
    finding = Finding("event ids are unique (a republished copy is identical)", True, 0)
    for record in records:
        event_id = _event_id(record)
        if event_id is None:
            continue  # undecodable: reported by its own check
        finding.checked += 1
        earlier = seen.get(event_id)
        if earlier is None:
            seen[event_id] = record
        elif _same(earlier, record):
            finding.copies += 1
        else:
            finding.add(f"event {event_id} at {_where(record)} differs from the one at {_where(earlier)}")
    return finding


def continuous_streams(records: dict[str, list[LogRecord]]) -> Finding:
    """Every stream (a topic and key), read in log order as the consumers read it, applies each
    version from 1 to its newest, each one event: a version missing, or one that came only
    before its predecessor and was not published again after it, is an event the consumers
    never applied."""
    finding = Finding("every event stream is complete (versions 1..n)", True, 0)
    for topic, rows in records.items():
        versions: dict[bytes | None, dict[int, str]] = defaultdict(dict)
        applied: dict[bytes | None, int] = defaultdict(int)
        for record in rows:
            version, event_id = stream_version(record), _event_id(record)
            if version is None or event_id is None:
                continue
            known = versions[record.key].setdefault(version, event_id)
            if known != event_id:
                finding.add(f"{topic} stream {_key(record.key)}: version {version} is both {known} and {event_id}")
            if version == applied[record.key] + 1:
                applied[record.key] = version
        for key, seen in versions.items():
            finding.checked += len(seen)
            newest, complete = max(seen), applied[key]
            missing = sorted(set(range(1, newest + 1)) - set(seen))
            if missing:
                finding.add(f"{topic} stream {_key(key)}: versions {missing[:10]} of {newest} are missing")
            elif complete < newest:
                finding.add(f"{topic} stream {_key(key)}: versions after {complete} come before version "
                            f"{complete} and not again after it: they never apply")
    return finding


def continuous_offsets(records: dict[str, list[LogRecord]]) -> Finding:
    """Each partition starts at offset 0 and has no offset twice. An offset without a record
    between records (a hole) is counted, not failed: Tansu leaves one when it is killed while
    writing a batch it had not acknowledged (the producer got offset -1 and sent it again). That
    no acknowledged event is in such a hole is proven elsewhere: every event stream is complete,
    and every accepted mutation has its events."""
    finding = Finding("offsets are continuous per partition (holes counted)", True, 0)
    for topic, rows in records.items():
        by_partition: dict[int, list[int]] = defaultdict(list)
        for row in rows:
            by_partition[row.partition].append(row.offset)
        for partition, offsets in by_partition.items():
            finding.checked += len(offsets)
            if not offsets:
                continue
            if min(offsets) != 0:
                finding.add(f"{topic}[{partition}]: the log starts at offset {min(offsets)}, not 0")
            if len(set(offsets)) != len(offsets):
                finding.add(f"{topic}[{partition}]: an offset holds two records")
            missing = sorted(set(range(0, max(offsets) + 1)) - set(offsets))
            finding.holes += len(missing)
            if missing and len(finding.notes) < 50:
                finding.notes.append(f"{topic}[{partition}]: no record at offsets {missing[:10]}")
    return finding


def departures_followed(entries: list[Entry], auth_deployed: bool) -> Finding:
    """Every departure was followed by revoked access, stopped mail and (with auth) a disabled account."""
    finding = Finding("every departure was followed by revocation and session end", True, 0)
    caused: dict[str, set[str]] = defaultdict(set)
    for entry in entries:
        if entry.event.causation_id:
            caused[entry.event.causation_id].add(entry.event.type)
    for entry in entries:
        if isinstance(entry.event.event, StaffDeparted | ConsultantDeparted):
            finding.checked += 1
            followers = caused.get(entry.event.id, set())
            needed = {NotificationsStopped.event_type}
            if auth_deployed:
                needed.add(AccountDisabled.event_type)
            missing = needed - followers
            if missing:
                finding.add(f"departure {entry.event.id} not followed by {sorted(missing)}")
    return finding


def access_log_chain(entries: list[Entry], heads: dict[str, tuple[str, int]] | None = None) -> Finding:
    """Each dossier's DossierViewed entries link, in log order, each to the hash of the one before;
    with the access database's chain heads, a cut-off end shows too."""
    finding = Finding("the access log hash chain is intact", True, 0)
    last: dict[str, tuple[str, int]] = {}
    views = [e for e in entries if isinstance(e.event.event, DossierViewed)]
    views.sort(key=lambda e: (e.record.partition, e.record.offset))
    for entry in views:
        finding.checked += 1
        view = entry.event.event
        assert isinstance(view, DossierViewed)
        dossier = str(view.dossier_id)
        previous, length = last.get(dossier, (None, 0))
        if view.previous_hash != previous:
            finding.add(f"view {entry.event.id} of dossier {dossier} at {_where(entry.record)} does not link to "
                        "the entry before it (an entry was removed or reordered)")
        recomputed = view_entry_hash(view.previous_hash, entry.event.id, view.staff_id, view.dossier_id,
                                     view.allowed, view.rule, view.viewed_at, view.action, view.what)
        if recomputed != view.entry_hash:
            finding.add(f"view {entry.event.id} of dossier {dossier} at {_where(entry.record)} was altered")
        last[dossier] = (view.entry_hash, length + 1)
    for dossier, (head, length) in (heads or {}).items():
        if last.get(dossier, (None, 0)) != (head, length):
            finding.add(f"dossier {dossier}: the log's last view is not the chain head the access service holds "
                        f"({last.get(dossier, (None, 0))[1]} of {length} entries found)")
    return finding


# The reasons a reader refuses a record as not its topic owner's (shared/contracts/envelope.py).
SIGNATURE_REASONS = frozenset({"unsigned", "bad-signature", "signer-not-owner", "unknown-signing-key", "no-owner"})


def signed_by_owners(entries: list[Entry], undecodable: list[tuple[LogRecord, str]]) -> Finding:
    """Every event was signed by the service that owns its topic. A forged record is never folded
    (the log reader leaves it out), so without this check a forgery would only show as what it
    broke: a rebuilt view chain, for one, is consistent in itself and only its signatures give it
    away."""
    finding = Finding("every event is signed by its topic's owner", True, len(entries))
    for record, reason in undecodable:
        if reason in SIGNATURE_REASONS:
            finding.checked += 1
            finding.add(f"{_where(record)}: {reason}")
    return finding


def mutations_accounted(intake: list[LogRecord], dead_letters: list[LogRecord], canonical: list[Entry],
                        accepted: list[tuple[str, list[str], bool]] | None = None) -> Finding:
    """Every mutation that reached a door became canonical events or a dead letter with a reason.
    `accepted`: (mutation key, event ids, scheduled-and-not-yet-due) from the registry database."""
    finding = Finding("every reported mutation became events or a dead letter", True, 0)
    dead = {(_header(r, "dlq-source-topic"), _header(r, "dlq-source-partition"), _header(r, "dlq-source-offset"))
            for r in dead_letters}
    correlations = {e.event.correlation_id for e in canonical}
    event_ids = {e.event.id for e in canonical}
    for record in intake:
        finding.checked += 1
        if any(topic.endswith(Topic.REGISTRY_MUTATIONS.value) and partition == str(record.partition)
               and offset == str(record.offset) for topic, partition, offset in dead):
            continue
        client = dict(record.headers).get("samenveilig-client", b"").decode(errors="replace")
        try:
            mutation_id = json.loads(record.value or b"{}").get("mutation_id", "")
        except ValueError:
            mutation_id = ""
        if derived_id("mutation", client, str(mutation_id)) not in correlations:
            finding.add(f"intake record {_where(record)} has neither events nor a dead letter")
    for key, ids, pending in accepted or []:
        finding.checked += 1
        if not pending and not set(ids) <= event_ids:
            finding.add(f"accepted mutation {key} is missing events {sorted(set(ids) - event_ids)[:3]}")
    return finding


def _header(record: LogRecord, name: str) -> str:
    value = dict(record.headers).get(name)
    return value.decode(errors="replace") if value else ""


def _same(a: LogRecord, b: LogRecord) -> bool:
    return (a.key, a.value, stream_version(a)) == (b.key, b.value, stream_version(b))


def _event_id(record: LogRecord) -> str | None:
    try:
        value = json.loads(record.value or b"")
    except ValueError:
        return None
    event_id = value.get("id") if isinstance(value, dict) else None
    return str(event_id) if event_id else None


def _key(key: bytes | None) -> str:
    return (key or b"").decode(errors="replace")[:40]


def _where(record: LogRecord) -> str:
    return f"{record.topic}[{record.partition}]@{record.offset}"
