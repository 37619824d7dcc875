"""Point-in-time answers from the log: who could see what, when, and why. The access service
offers them (the audit and the retention service's leak answers ask); pure: folds the same
`evolve` the access processor runs live.

Two time axes, because late reports happen:
- valid time: the world as we now know it was at T (every event that took effect by T, even if
  it was reported later);
- record time: the world as the system knew it at T (only events recorded by T that had taken
  effect by T) — what access decisions were actually based on.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import reduce
from typing import Literal
from uuid import UUID

from services.access.domain import FOLDED_TYPES, INITIAL_STATE, AccessState, ChangeKind, Decision, evolve
from shared.contracts.events import (
    AccessGranted,
    AccessRevoked,
    BranchBrinChanged,
    ConfidentialityAgreementRecorded,
    ConfidentialityAgreementRevoked,
    ContactPersonMissing,
    DossierClosed,
    DossierContactAssigned,
    DossierOpened,
    DossierViewed,
    NotificationsStopped,
    PupilDataPurged,
    StaffDeparted,
)
from shared.kafka.log import Entry

Axis = Literal["valid", "record"]


def events_known(entries: Iterable[Entry], at: datetime, axis: Axis) -> list[Entry]:
    """The events that shape the state at `at` on the given axis, in the order they took effect."""
    chosen = [e for e in entries if e.event.effective_at <= at and (axis == "valid" or e.event.recorded_at <= at)]
    return sorted(chosen, key=lambda e: (e.event.effective_at, e.event.recorded_at, e.record.topic,
                                         e.record.partition, e.record.offset))


def state_at(entries: Iterable[Entry], at: datetime, axis: Axis = "valid") -> AccessState:
    folded = (e for e in entries if e.event.type in FOLDED_TYPES)  # the rest leaves the state as it is
    return reduce(evolve, (e.event for e in events_known(folded, at, axis)), INITIAL_STATE)


@dataclass(frozen=True)
class Access:
    staff_id: UUID
    dossier_id: UUID
    decision: Decision


def who_could_see(state: AccessState, dossier_id: UUID, at: datetime) -> list[Access]:
    out = [Access(staff_id, dossier_id, state.decide(staff_id, dossier_id, at)) for staff_id in sorted(state.staff)]
    return [a for a in out if a.decision.allowed]


def what_could_see(state: AccessState, staff_id: UUID, at: datetime) -> list[Access]:
    out = [Access(staff_id, dossier_id, state.decide(staff_id, dossier_id, at))
           for dossier_id in sorted(state.dossiers)]
    return [a for a in out if a.decision.allowed]


@dataclass(frozen=True)
class ChangeRights:
    """What of a dossier one staff member could change, each with its decision (only the allowed)."""

    staff_id: UUID
    dossier_id: UUID
    decisions: dict[ChangeKind, Decision]

    @property
    def what(self) -> list[ChangeKind]:
        return list(self.decisions)


def change_rights(state: AccessState, staff_id: UUID, dossier_id: UUID, at: datetime) -> ChangeRights:
    decided = {what: state.decide_change(staff_id, dossier_id, what, at) for what in ChangeKind}
    return ChangeRights(staff_id, dossier_id, {what: d for what, d in decided.items() if d.allowed})


def who_could_change(state: AccessState, dossier_id: UUID, at: datetime) -> list[ChangeRights]:
    """Who could change something of the dossier at `at` (the same may_change as the live check)."""
    out = [change_rights(state, staff_id, dossier_id, at) for staff_id in sorted(state.staff)]
    return [rights for rights in out if rights.decisions]


def what_could_change(state: AccessState, staff_id: UUID, at: datetime) -> list[ChangeRights]:
    out = [change_rights(state, staff_id, dossier_id, at) for dossier_id in sorted(state.dossiers)]
    return [rights for rights in out if rights.decisions]


def timeline(entries: Iterable[Entry], dossier_id: UUID) -> list[Entry]:
    """Everything that happened to one dossier and its access, in the order it was recorded: its
    own events (a contact left without a successor too), its branch's grants, revocations,
    departures and BRIN changes, the purge of its pupil, and the confidentiality agreements of
    everyone granted it (they decide whether the grant counts)."""
    branch_id = pupil_id = None
    granted: set[UUID] = set()
    for entry in entries:
        if isinstance(entry.event.event, DossierOpened) and entry.event.event.dossier_id == dossier_id:
            branch_id, pupil_id = entry.event.event.branch_id, entry.event.event.pupil_id
        if isinstance(entry.event.event, AccessGranted) and entry.event.event.dossier_id == dossier_id:
            granted.add(entry.event.event.staff_id)
    relevant = []
    for entry in entries:
        event = entry.event.event
        if isinstance(event, ConfidentialityAgreementRecorded | ConfidentialityAgreementRevoked):
            if event.staff_id in granted:
                relevant.append(entry)
        elif (getattr(event, "dossier_id", None) == dossier_id and isinstance(
                event, DossierOpened | DossierContactAssigned | DossierClosed | DossierViewed | AccessGranted
                | AccessRevoked | ContactPersonMissing)) or (branch_id is not None and getattr(
                event, "branch_id", None) == branch_id and isinstance(
                event, AccessGranted | AccessRevoked | NotificationsStopped | StaffDeparted | BranchBrinChanged)
                and getattr(event, "dossier_id", None) is None) or (
                pupil_id is not None and isinstance(event, PupilDataPurged) and event.pupil_id == pupil_id):
            relevant.append(entry)
    return sorted(relevant, key=lambda e: (e.event.recorded_at, e.record.topic, e.record.offset))
