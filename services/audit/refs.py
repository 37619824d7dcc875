"""The school's own references (`vestigingscode/ref`) to the ids the log uses, from the log alone:
the branch from its founding and BRIN changes, the entity's id derived as the registry derives
it, and found only when the log holds that entity."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal
from uuid import UUID

from services.registry.domain import dossier_id, pupil_id, staff_id
from shared.contracts.events import BranchBrinChanged, BranchFounded, DossierOpened, PupilEnrolled, StaffJoined
from shared.kafka.log import Entry

Kind = Literal["staff", "pupil", "dossier"]
_DERIVE = {"staff": staff_id, "pupil": pupil_id, "dossier": dossier_id}
_FIRST = {"staff": (StaffJoined, "staff_id"), "pupil": (PupilEnrolled, "pupil_id"),
          "dossier": (DossierOpened, "dossier_id")}


class UnknownReference(ValueError):
    """The reference names nothing in the log, or more than one thing; the message says which."""


def split_reference(reference: str) -> tuple[str, str]:
    vestigingscode, slash, ref = reference.partition("/")
    if not slash or not vestigingscode or not ref:
        raise UnknownReference("give the reference as VESTIGINGSCODE/REF, e.g. 12AB00/hv-2026-0001")
    return vestigingscode, ref


def resolve(entries: Iterable[Entry], kind: Kind, reference: str) -> UUID:
    """The id of the staff member, pupil or dossier that the branch `vestigingscode` (under any
    code it ever carried) calls `ref`."""
    vestigingscode, ref = split_reference(reference)
    branches: set[UUID] = set()
    known: set[UUID] = set()
    event_type, field = _FIRST[kind]
    for entry in entries:
        event = entry.event.event
        if isinstance(event, BranchFounded | BranchBrinChanged) and event.vestigingscode == vestigingscode:
            branches.add(event.branch_id)
        elif isinstance(event, event_type):
            known.add(getattr(event, field))
    found = {_DERIVE[kind](branch, ref) for branch in branches} & known
    if not found:
        raise UnknownReference(f"no {kind} {ref!r} at {vestigingscode} in the log")
    if len(found) > 1:
        raise UnknownReference(f"{vestigingscode} was carried by more than one branch, each with a {kind} {ref!r}: "
                               f"give the id ({', '.join(sorted(map(str, found)))})")
    return found.pop()
