"""What the event log holds about pupils, for the two questions that need all of it: a data
leak (which parents must be told, and who could see the dossiers) and an inspection request
(everything held about one pupil, across all services). Pure: the log comes in as decoded
entries; who could see what is the access service's own `evolve`, folded by its `state_at`,
so no copy of the access rules lives here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from uuid import UUID

from services.access.domain import AccessState
from services.access.history import state_at, what_could_see, who_could_see
from shared.contracts.events import (
    ERASED,
    BranchFounded,
    BranchRenamed,
    DataLeaked,
    DossierClosed,
    DossierOpened,
    DossierViewed,
    ParentsNotified,
    PupilDetailsCorrected,
    PupilEnrolled,
    PupilLeft,
)
from shared.kafka.log import Entry


@dataclass
class PupilFacts:
    pupil_id: UUID
    branch_id: UUID
    name: str
    date_of_birth: date | str | None
    parent_emails: list[str]
    erased: bool
    enrolled_at: datetime
    left_on: date | None = None
    dossier_ids: list[UUID] = field(default_factory=list)


@dataclass
class LogIndex:
    pupils: dict[UUID, PupilFacts] = field(default_factory=dict)
    dossier_pupil: dict[UUID, UUID] = field(default_factory=dict)
    branch_names: dict[UUID, str] = field(default_factory=dict)


def in_log_order(entries: Iterable[Entry]) -> list[Entry]:
    return sorted(entries, key=lambda e: (e.event.recorded_at, e.record.topic, e.record.partition, e.record.offset))


def build_index(entries: Iterable[Entry]) -> LogIndex:
    """Each pupil's facts as they stand now: as enrolled, then corrected."""
    index = LogIndex()
    for entry in in_log_order(entries):
        event, recorded = entry.event.event, entry.event
        if isinstance(event, BranchFounded | BranchRenamed):
            index.branch_names[event.branch_id] = event.name
        elif isinstance(event, PupilEnrolled):
            emails = event.parent_emails if isinstance(event.parent_emails, list) else []
            before = index.pupils.get(event.pupil_id)
            index.pupils[event.pupil_id] = PupilFacts(
                event.pupil_id, event.branch_id, event.name, event.date_of_birth, [str(e) for e in emails],
                recorded.erased, recorded.effective_at, dossier_ids=before.dossier_ids if before else [])
        elif isinstance(event, PupilDetailsCorrected) and event.pupil_id in index.pupils:
            facts = index.pupils[event.pupil_id]
            if recorded.erased:
                facts.erased = True
                continue
            facts.name = event.name if event.name is not None else facts.name
            facts.date_of_birth = event.date_of_birth if event.date_of_birth is not None else facts.date_of_birth
            if isinstance(event.parent_emails, list):
                facts.parent_emails = [str(e) for e in event.parent_emails]
        elif isinstance(event, PupilLeft) and event.pupil_id in index.pupils:
            index.pupils[event.pupil_id].left_on = event.left_on
        elif isinstance(event, DossierOpened):
            index.dossier_pupil[event.dossier_id] = event.pupil_id
            if event.pupil_id in index.pupils:
                index.pupils[event.pupil_id].dossier_ids.append(event.dossier_id)
    return index


# --- data leaks --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Exposure:
    """Someone who could see a leaked dossier at the moment of discovery, and by which rule."""

    dossier_id: UUID
    staff_id: UUID
    rule: str


@dataclass(frozen=True)
class LeakScope:
    pupil_ids: tuple[UUID, ...]        # every affected pupil, sorted
    dossier_ids: tuple[UUID, ...]      # every affected dossier, sorted
    exposures: tuple[Exposure, ...]    # who could see those dossiers at the discovery
    unknown: tuple[UUID, ...]          # ids in the report that the log does not know


def leak_scope(entries: Sequence[Entry], index: LogIndex, leak: DataLeaked) -> LeakScope:
    """Which pupils a leak affects: the pupils named, the pupils of the dossiers named, and the
    pupils of every dossier a leaked account could see when the leak was discovered (an account
    that departed before the discovery exposed nothing then: name its dossiers instead)."""
    access: AccessState = state_at(entries, leak.discovered_at, "valid")
    dossiers = set(leak.dossier_ids)
    for staff_id in leak.staff_ids:
        dossiers.update(a.dossier_id for a in what_could_see(access, staff_id, leak.discovered_at))
    pupils = set(leak.pupil_ids) | {index.dossier_pupil[d] for d in dossiers if d in index.dossier_pupil}
    # A pupil named as leaked: their hulpvragen count as theirs to assess. A pupil found through
    # one dossier: only that dossier (their other hulpvragen did not leak).
    for pupil_id in leak.pupil_ids:
        dossiers.update(index.pupils[pupil_id].dossier_ids if pupil_id in index.pupils else ())
    exposures = [Exposure(a.dossier_id, a.staff_id, a.decision.rule)
                 for dossier_id in sorted(dossiers) for a in who_could_see(access, dossier_id, leak.discovered_at)]
    unknown = sorted({p for p in leak.pupil_ids if p not in index.pupils}
                     | {d for d in leak.dossier_ids if d not in index.dossier_pupil}
                     | {s for s in leak.staff_ids if s not in access.staff})
    return LeakScope(tuple(sorted(p for p in pupils if p in index.pupils)), tuple(sorted(dossiers)),
                     tuple(exposures), tuple(unknown))


def parents_to_tell(index: LogIndex, pupil_id: UUID) -> list[str]:
    """The parents' addresses as they stand now (after corrections); none once purged."""
    facts = index.pupils.get(pupil_id)
    if facts is None or facts.erased:
        return []
    return sorted(set(facts.parent_emails))


# --- inspection: everything held about one pupil ----------------------------------------------

def _about(entry: Entry, pupil_id: UUID, dossier_ids: set[UUID]) -> bool:
    event = entry.event.event
    if getattr(event, "pupil_id", None) == pupil_id or getattr(event, "dossier_id", None) in dossier_ids:
        return True
    if isinstance(event, DataLeaked):
        return pupil_id in event.pupil_ids or bool(dossier_ids & set(event.dossier_ids))
    return isinstance(event, ParentsNotified) and event.pupil_id == pupil_id


# Fields that are about other people: staff (their own privacy; the export names their role) and
# other pupils (a leak event lists everyone it concerns). AVG art. 15(4).
OTHER_PEOPLE_FIELDS = frozenset({"staff_id", "contact_staff_id", "previous_contact_staff_id", "staff_ids",
                                 "pupil_ids", "dossier_ids", "entry_hash", "previous_hash"})


def _only_about_the_pupil(entry: Entry, roles: dict[UUID, str | None]) -> dict[str, Any]:
    event = entry.event.event
    data = {k: v for k, v in event.model_dump(mode="json").items() if k not in OTHER_PEOPLE_FIELDS}
    for field_name in ("staff_id", "contact_staff_id"):
        staff_id = getattr(event, field_name, None)
        if isinstance(staff_id, UUID):
            data[field_name.replace("staff_id", "staff_role")] = roles.get(staff_id)
    return data


def _plain(value: Any) -> Any:
    if isinstance(value, UUID):
        return str(value)
    return value.isoformat() if isinstance(value, date) else value  # datetime is a date too


def inspection(entries: Sequence[Entry], index: LogIndex, pupil_id: UUID, now: datetime,
               held_here: dict[str, Any]) -> dict[str, Any] | None:
    """The complete export for an inspection request: the pupil's details, each dossier with who
    may see it now and every view, and every event about the pupil in any topic. `held_here` is
    what the retention service's own tables hold (consent, schedule, requests). None when the log
    does not know the pupil."""
    facts = index.pupils.get(pupil_id)
    if facts is None:
        return None
    dossier_ids = set(facts.dossier_ids)
    about = [e for e in in_log_order(entries) if _about(e, pupil_id, dossier_ids)]
    access = state_at(entries, now, "valid")
    staff_roles = {sid: (m.role.value if m.role else None) for sid, m in access.staff.items()}
    dossiers = []
    for dossier_id in facts.dossier_ids:
        opened = next((e.event for e in about if isinstance(e.event.event, DossierOpened)
                       and e.event.event.dossier_id == dossier_id), None)
        closed = next((e.event for e in about if isinstance(e.event.event, DossierClosed)
                       and e.event.event.dossier_id == dossier_id), None)
        summary = opened.event.summary if opened and isinstance(opened.event, DossierOpened) else ERASED
        viewed = [e.event for e in about if isinstance(e.event.event, DossierViewed)
                  and e.event.event.dossier_id == dossier_id]
        views = [{"at": _plain(v.effective_at), "role": staff_roles.get(v.event.staff_id),
                  "allowed": v.event.allowed} for v in viewed if isinstance(v.event, DossierViewed)]
        dossiers.append({
            "dossier_id": str(dossier_id), "opened_at": _plain(opened.effective_at) if opened else None,
            "summary": summary, "closed_at": _plain(closed.effective_at) if closed else None,
            "may_see_now": [{"role": staff_roles.get(a.staff_id), "rule": a.decision.rule}
                            for a in who_could_see(access, dossier_id, now)],
            "views": views})
    return {
        "pupil_id": str(pupil_id),
        "generated_at": _plain(now),
        "details": {"name": facts.name, "date_of_birth": _plain(facts.date_of_birth),
                    "parent_emails": facts.parent_emails,
                    "school": index.branch_names.get(facts.branch_id), "enrolled_at": _plain(facts.enrolled_at),
                    "left_on": _plain(facts.left_on)},
        "dossiers": dossiers,
        "held_by_retention": held_here,
        "events": [{"id": e.event.id, "type": e.event.type, "topic": e.record.topic,
                    "recorded_at": _plain(e.event.recorded_at), "effective_at": _plain(e.event.effective_at),
                    "source": e.event.source, "data": _only_about_the_pupil(e, staff_roles)} for e in about],
    }
