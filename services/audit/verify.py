"""The audit's proofs that nothing was lost or altered. Pure: works on what was read from the log
(and, where given, on rows from a service's database)."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from services.audit.log import Entry, LogRecord
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


@dataclass
class Finding:
    check: str
    ok: bool
    checked: int
    problems: list[str] = field(default_factory=list)

    def add(self, problem: str) -> None:
        self.ok = False
        if len(self.problems) < 50:
            self.problems.append(problem)


def unique_event_ids(entries: Iterable[Entry]) -> Finding:
    seen: dict[str, LogRecord] = {}
    finding = Finding("event ids are unique", True, 0)
    for entry in entries:
        finding.checked += 1
        earlier = seen.get(entry.event.id)
        if earlier is not None:
            finding.add(f"event {entry.event.id} at {_where(entry.record)} repeats {_where(earlier)}")
        seen[entry.event.id] = entry.record
    return finding


def continuous_offsets(records: dict[str, list[LogRecord]]) -> Finding:
    finding = Finding("offsets are continuous per partition", True, 0)
    for topic, rows in records.items():
        by_partition: dict[int, list[int]] = defaultdict(list)
        for row in rows:
            by_partition[row.partition].append(row.offset)
        for partition, offsets in by_partition.items():
            finding.checked += len(offsets)
            expected = list(range(offsets[0], offsets[0] + len(offsets))) if offsets else []
            if offsets and (offsets[0] != 0 or sorted(offsets) != expected):
                missing = sorted(set(range(0, max(offsets) + 1)) - set(offsets))
                finding.add(f"{topic}[{partition}]: offsets missing {missing[:10]}")
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
                                     view.allowed, view.rule, view.viewed_at)
        if recomputed != view.entry_hash:
            finding.add(f"view {entry.event.id} of dossier {dossier} at {_where(entry.record)} was altered")
        last[dossier] = (view.entry_hash, length + 1)
    for dossier, (head, length) in (heads or {}).items():
        if last.get(dossier, (None, 0)) != (head, length):
            finding.add(f"dossier {dossier}: the log's last view is not the chain head the access service holds "
                        f"({last.get(dossier, (None, 0))[1]} of {length} entries found)")
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


def _where(record: LogRecord) -> str:
    return f"{record.topic}[{record.partition}]@{record.offset}"
