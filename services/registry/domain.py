"""The registry's domain: which reported mutations become which canonical events, and the state
those events build. Pure: no I/O, no clock, no logging. The live service and the audit replay
both fold with `evolve`, which runs from one dispatch table (`HANDLERS`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from types import MappingProxyType
from typing import Any
from uuid import UUID

from shared.contracts.envelope import derived_id
from shared.contracts.events import (
    Address,
    BranchBrinChanged,
    BranchClosed,
    BranchFounded,
    BranchMoved,
    BranchRenamed,
    BranchWijknetwerkChanged,
    ConsultantDeparted,
    ConsultantJoined,
    ContactPersonMissing,
    DossierClosed,
    DossierContactAssigned,
    DossierOpened,
    Event,
    PupilDataPurged,
    PupilEnrolled,
    PupilLeft,
    StaffDeparted,
    StaffJoined,
    StaffRole,
    StaffRoleChanged,
)
from shared.contracts.mutations import (
    BranchChange,
    BranchReport,
    ConsultantDepartedReport,
    ConsultantJoinedReport,
    DossierClosedReport,
    DossierContactAssignedReport,
    DossierOpenedReport,
    Mutation,
    PupilEnrolledReport,
    PupilLeftReport,
    StaffDepartedReport,
    StaffJoinedReport,
    StaffRoleChangedReport,
)


@dataclass(frozen=True)
class Branch:
    branch_id: UUID
    vestigingscode: str
    name: str
    address: Address
    phone: str
    wijknetwerk: str
    closed: bool = False


@dataclass(frozen=True)
class Person:
    """A staff member of a branch, or an SWV consultant (branch_id None)."""

    staff_id: UUID
    branch_id: UUID | None
    role: StaffRole
    active: bool
    # Consultants only: the SWV office that registered them (None: registered before offices
    # were recorded, and not recovered), and the wijknetwerken they serve (None: not known).
    office: str | None = None
    wijknetwerken: frozenset[str] | None = None
    # When the current join took effect, as the service recorded it (None: not known). Not set
    # by `evolve`: the event does not carry its effective time, its envelope does.
    joined_at: datetime | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Pupil:
    pupil_id: UUID
    branch_id: UUID
    enrolled: bool


@dataclass(frozen=True)
class Dossier:
    dossier_id: UUID
    branch_id: UUID
    pupil_id: UUID
    contact_staff_id: UUID
    open: bool


@dataclass(frozen=True)
class RegistryState:
    """The registry as far as the rules need it. The service loads the slice a command touches;
    the audit replay folds the whole log into one."""

    branches: Mapping[UUID, Branch] = field(default_factory=lambda: MappingProxyType({}))
    # Every vestigingscode ever used, to the branch that used it last: old codes stay aliases.
    codes: Mapping[str, UUID] = field(default_factory=lambda: MappingProxyType({}))
    people: Mapping[UUID, Person] = field(default_factory=lambda: MappingProxyType({}))
    pupils: Mapping[UUID, Pupil] = field(default_factory=lambda: MappingProxyType({}))
    dossiers: Mapping[UUID, Dossier] = field(default_factory=lambda: MappingProxyType({}))

    def branch_by_code(self, vestigingscode: str) -> Branch | None:
        branch_id = self.codes.get(vestigingscode)
        return self.branches.get(branch_id) if branch_id else None

    def code_in_use(self, vestigingscode: str) -> bool:
        """A code is in use while an open branch carries it as its current code."""
        branch = self.branch_by_code(vestigingscode)
        return branch is not None and not branch.closed and branch.vestigingscode == vestigingscode


INITIAL_STATE = RegistryState()


# --- ids: derived from natural keys, so retries and replays give the same ids ---------------

def founded_branch_id(sender: str, mutation_id: str) -> UUID:
    return UUID(derived_id("branch", sender, mutation_id))


def staff_id(branch_id: UUID, staff_ref: str) -> UUID:
    return UUID(derived_id("staff", str(branch_id), staff_ref))


def consultant_id(office: str, consultant_ref: str) -> UUID:
    """A consultant's id is the registering office's: another office naming the same reference
    names a consultant of its own, never this one."""
    return UUID(derived_id("consultant", office, consultant_ref))


def legacy_consultant_id(consultant_ref: str) -> UUID:
    """The id consultants got before ids were scoped by office; still looked up, so that a
    consultant registered then can be departed by its office."""
    return UUID(derived_id("consultant", consultant_ref))


def pupil_id(branch_id: UUID, pupil_ref: str) -> UUID:
    return UUID(derived_id("pupil", str(branch_id), pupil_ref))


def dossier_id(branch_id: UUID, dossier_ref: str) -> UUID:
    return UUID(derived_id("dossier", str(branch_id), dossier_ref))


@dataclass(frozen=True)
class References:
    """The entities a mutation touches, by id, so the service can load just those."""

    vestigingscodes: tuple[str, ...] = ()
    people: tuple[UUID, ...] = ()
    pupils: tuple[UUID, ...] = ()
    dossiers: tuple[UUID, ...] = ()


def references(mutation: Mutation, branch_id: UUID | None, office: str = "") -> References:
    """What to load for `mutation`, given the branch its vestigingscode resolves to (if any) and,
    for a consultant, the reporting office."""
    match mutation:
        case BranchReport():
            codes = (mutation.vestigingscode,) + ((mutation.new_vestigingscode,)
                                                  if mutation.new_vestigingscode else ())
            return References(vestigingscodes=codes)
        case ConsultantJoinedReport() | ConsultantDepartedReport():
            return References(people=(consultant_id(office, mutation.consultant_ref),
                                      legacy_consultant_id(mutation.consultant_ref)))
    codes = (mutation.vestigingscode,)
    if branch_id is None:
        return References(vestigingscodes=codes)
    match mutation:
        case StaffJoinedReport() | StaffRoleChangedReport() | StaffDepartedReport():
            return References(codes, people=(staff_id(branch_id, mutation.staff_ref),))
        case PupilEnrolledReport() | PupilLeftReport():
            return References(codes, pupils=(pupil_id(branch_id, mutation.pupil_ref),))
        case DossierOpenedReport():
            return References(codes, people=(staff_id(branch_id, mutation.contact_staff_ref),),
                              pupils=(pupil_id(branch_id, mutation.pupil_ref),),
                              dossiers=(dossier_id(branch_id, mutation.dossier_ref),))
        case DossierContactAssignedReport():
            return References(codes, people=(staff_id(branch_id, mutation.contact_staff_ref),),
                              dossiers=(dossier_id(branch_id, mutation.dossier_ref),))
        case DossierClosedReport():
            return References(codes, dossiers=(dossier_id(branch_id, mutation.dossier_ref),))
    raise TypeError(f"unhandled mutation {type(mutation).__name__}")


# --- decide ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class ReportMutation:
    """Command: a sender reports a mutation. Times and the sender's scope are filled in at the edge."""

    mutation: Mutation
    sender: str
    received_at: datetime
    effective_at: datetime
    # For the SWV office: the office it acts for (default: the sender) and its wijknetwerken.
    office: str | None = None
    wijknetwerken: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Accepted:
    events: tuple[Event, ...]


@dataclass(frozen=True)
class Refused:
    code: str
    detail: str
    # True when the sender may not do this (outside its scope), not when the registry's rules
    # refuse it: the HTTP door answers 403 instead of 422.
    not_allowed: bool = False


Decision = Accepted | Refused


def decide(command: ReportMutation, state: RegistryState) -> Decision:
    mutation = command.mutation
    match mutation:
        case BranchReport():
            return _decide_branch(command, mutation, state)
        case ConsultantJoinedReport():
            return _decide_consultant_joined(command, mutation, state)
        case ConsultantDepartedReport():
            return _decide_consultant_departed(command, mutation, state)
    branch = state.branch_by_code(mutation.vestigingscode)
    if branch is None:
        return Refused("unknown-branch", f"no branch with vestigingscode {mutation.vestigingscode}")
    match mutation:
        case StaffDepartedReport():
            person = state.people.get(staff_id(branch.branch_id, mutation.staff_ref))
            if person is None:
                return Refused("staff-never-joined", "no staff member with this reference joined this branch")
            if not person.active:
                return Refused("staff-already-departed", "this staff member has already departed")
            if person.joined_at is not None and command.effective_at < person.joined_at:
                return Refused("departure-before-join", "the departure is dated before this staff member joined")
            return Accepted((StaffDeparted(branch_id=branch.branch_id, staff_id=person.staff_id),))
        case DossierClosedReport():
            dossier = state.dossiers.get(dossier_id(branch.branch_id, mutation.dossier_ref))
            if dossier is None or not dossier.open:
                return Refused("dossier-not-open", "no open dossier with this reference")
            return Accepted((DossierClosed(branch_id=branch.branch_id, dossier_id=dossier.dossier_id),))
        case PupilLeftReport():
            pupil = state.pupils.get(pupil_id(branch.branch_id, mutation.pupil_ref))
            if pupil is None or not pupil.enrolled:
                return Refused("pupil-not-enrolled", "no enrolled pupil with this reference")
            return Accepted((PupilLeft(branch_id=branch.branch_id, pupil_id=pupil.pupil_id,
                                       left_on=mutation.left_on),))
    # Everything below adds to a branch, which must be open.
    if branch.closed:
        return Refused("branch-closed", f"branch {branch.vestigingscode} is closed")
    match mutation:
        case StaffJoinedReport():
            new_id = staff_id(branch.branch_id, mutation.staff_ref)
            person = state.people.get(new_id)
            if person is not None and person.active:
                return Refused("staff-already-joined", "this staff member is already active here")
            return Accepted((StaffJoined(branch_id=branch.branch_id, staff_id=new_id, role=mutation.role,
                                         name=mutation.name, email=mutation.email,
                                         access_until=mutation.access_until),))
        case StaffRoleChangedReport():
            person = state.people.get(staff_id(branch.branch_id, mutation.staff_ref))
            if person is None or not person.active:
                return Refused("staff-not-active", "no active staff member with this reference")
            if person.role is mutation.role and mutation.access_until is None:
                return Refused("nothing-changed", "the staff member already has this role")
            return Accepted((StaffRoleChanged(branch_id=branch.branch_id, staff_id=person.staff_id,
                                              previous_role=person.role, role=mutation.role,
                                              access_until=mutation.access_until),))
        case PupilEnrolledReport():
            new_id = pupil_id(branch.branch_id, mutation.pupil_ref)
            pupil = state.pupils.get(new_id)
            if pupil is not None and pupil.enrolled:
                return Refused("pupil-already-enrolled", "this pupil is already enrolled here")
            return Accepted((PupilEnrolled(branch_id=branch.branch_id, pupil_id=new_id, name=mutation.name,
                                           date_of_birth=mutation.date_of_birth,
                                           parent_emails=list(mutation.parent_emails),
                                           medical_notes=mutation.medical_notes),))
        case DossierOpenedReport():
            new_id = dossier_id(branch.branch_id, mutation.dossier_ref)
            if new_id in state.dossiers:
                return Refused("dossier-exists", "a dossier with this reference exists")
            pupil = state.pupils.get(pupil_id(branch.branch_id, mutation.pupil_ref))
            if pupil is None or not pupil.enrolled:
                return Refused("pupil-not-enrolled", "the pupil is not enrolled at this branch")
            contact = state.people.get(staff_id(branch.branch_id, mutation.contact_staff_ref))
            if contact is None or not contact.active:
                return Refused("contact-not-active", "the contact person does not work at this branch")
            return Accepted((DossierOpened(branch_id=branch.branch_id, dossier_id=new_id, pupil_id=pupil.pupil_id,
                                           contact_staff_id=contact.staff_id, summary=mutation.summary),))
        case DossierContactAssignedReport():
            dossier = state.dossiers.get(dossier_id(branch.branch_id, mutation.dossier_ref))
            if dossier is None or not dossier.open:
                return Refused("dossier-not-open", "no open dossier with this reference")
            contact = state.people.get(staff_id(branch.branch_id, mutation.contact_staff_ref))
            if contact is None or not contact.active:
                return Refused("contact-not-active", "the contact person does not work at this branch")
            return Accepted((DossierContactAssigned(branch_id=branch.branch_id, dossier_id=dossier.dossier_id,
                                                    contact_staff_id=contact.staff_id, reason="reported"),))
    raise TypeError(f"unhandled mutation {type(mutation).__name__}")


def _decide_consultant_joined(command: ReportMutation, report: ConsultantJoinedReport,
                              state: RegistryState) -> Decision:
    office = command.office or command.sender
    own = state.people.get(consultant_id(office, report.consultant_ref))
    legacy = state.people.get(legacy_consultant_id(report.consultant_ref))
    if (own is not None and own.active) or (legacy is not None and legacy.active and legacy.office == office):
        return Refused("consultant-already-joined", "this consultant is already registered")
    return Accepted((ConsultantJoined(staff_id=consultant_id(office, report.consultant_ref), name=report.name,
                                      email=report.email, wijknetwerken=report.wijknetwerken, office=office),))


def _decide_consultant_departed(command: ReportMutation, report: ConsultantDepartedReport,
                                state: RegistryState) -> Decision:
    office = command.office or command.sender
    person = state.people.get(consultant_id(office, report.consultant_ref))
    if person is None or not person.active:
        # Registered before ids were scoped by office: its office (where known) departs it.
        person = state.people.get(legacy_consultant_id(report.consultant_ref))
        if person is None or not person.active:
            return Refused("consultant-never-joined", "no active consultant with this reference")
        if person.office is not None and person.office != office:
            return Refused("consultant-of-another-office", "this consultant was registered by another SWV office",
                           not_allowed=True)
    if person.wijknetwerken is not None and not person.wijknetwerken <= command.wijknetwerken:
        return Refused("wrong-wijknetwerk", "this credential does not serve every wijknetwerk of this consultant",
                       not_allowed=True)
    return Accepted((ConsultantDeparted(staff_id=person.staff_id),))


def _decide_branch(command: ReportMutation, report: BranchReport, state: RegistryState) -> Decision:
    if report.change is BranchChange.FOUNDED:
        if state.code_in_use(report.vestigingscode):
            return Refused("code-in-use", f"vestigingscode {report.vestigingscode} belongs to an open branch")
        return Accepted((BranchFounded(
            branch_id=founded_branch_id(command.sender, report.mutation_id), vestigingscode=report.vestigingscode,
            name=report.name, address=report.address, phone=report.phone, wijknetwerk=report.wijknetwerk,
            bevoegd_gezag=report.bevoegd_gezag),))
    branch = state.branch_by_code(report.vestigingscode)
    if branch is None:
        return Refused("unknown-branch", f"no branch with vestigingscode {report.vestigingscode}")
    if branch.closed:
        return Refused("branch-closed", f"branch {branch.vestigingscode} is closed")
    code = branch.vestigingscode
    match report.change:
        case BranchChange.MOVED:
            if report.address == branch.address and report.phone == branch.phone:
                return Refused("nothing-changed", "the branch already has this address and phone number")
            return Accepted((BranchMoved(branch_id=branch.branch_id, vestigingscode=code,
                                         address=report.address, phone=report.phone),))
        case BranchChange.RENAMED:
            if report.name == branch.name:
                return Refused("nothing-changed", "the branch already has this name")
            return Accepted((BranchRenamed(branch_id=branch.branch_id, vestigingscode=code, name=report.name),))
        case BranchChange.BRIN_CHANGED:
            assert report.new_vestigingscode is not None  # guaranteed by the report's validation
            if state.code_in_use(report.new_vestigingscode):
                return Refused("code-in-use", f"vestigingscode {report.new_vestigingscode} belongs to an open branch")
            return Accepted((BranchBrinChanged(branch_id=branch.branch_id, previous_vestigingscode=code,
                                               vestigingscode=report.new_vestigingscode),))
        case BranchChange.WIJKNETWERK_CHANGED:
            if report.wijknetwerk == branch.wijknetwerk:
                return Refused("nothing-changed", "the branch is already in this wijknetwerk")
            return Accepted((BranchWijknetwerkChanged(branch_id=branch.branch_id, vestigingscode=code,
                                                      wijknetwerk=report.wijknetwerk),))
        case BranchChange.CLOSED:
            return Accepted((BranchClosed(branch_id=branch.branch_id, vestigingscode=code),))
    raise TypeError(f"unhandled branch change {report.change}")


# --- the dispatch table: what each event does to the registry, and what follows from it -----

def _contact_successors(state: RegistryState, event: StaffDeparted) -> tuple[Event, ...]:
    """Every open dossier keeps a working contact person: when a contact person departs, each of
    their open dossiers goes to the branch's IB'er, or is flagged when the branch has none.
    `state` must hold the departed person's open dossiers and the branch's people."""
    orphaned = sorted((d for d in state.dossiers.values() if d.open and d.contact_staff_id == event.staff_id),
                      key=lambda d: d.dossier_id)
    successors = sorted(p.staff_id for p in state.people.values()
                        if p.active and p.branch_id == event.branch_id and p.role is StaffRole.IB_ER
                        and p.staff_id != event.staff_id)
    if successors:
        return tuple(DossierContactAssigned(branch_id=d.branch_id, dossier_id=d.dossier_id,
                                            contact_staff_id=successors[0], reason="contact departed")
                     for d in orphaned)
    return tuple(ContactPersonMissing(branch_id=d.branch_id, dossier_id=d.dossier_id,
                                      previous_contact_staff_id=event.staff_id) for d in orphaned)


def _branch_founded(state: RegistryState, event: BranchFounded) -> RegistryState:
    branch = Branch(event.branch_id, event.vestigingscode, event.name, event.address, event.phone, event.wijknetwerk)
    return _with(state, branches={branch.branch_id: branch}, codes={branch.vestigingscode: branch.branch_id})


def _branch_moved(state: RegistryState, event: BranchMoved) -> RegistryState:
    return _change_branch(state, event.branch_id, address=event.address, phone=event.phone)


def _branch_renamed(state: RegistryState, event: BranchRenamed) -> RegistryState:
    return _change_branch(state, event.branch_id, name=event.name)


def _branch_wijknetwerk_changed(state: RegistryState, event: BranchWijknetwerkChanged) -> RegistryState:
    return _change_branch(state, event.branch_id, wijknetwerk=event.wijknetwerk)


def _branch_closed(state: RegistryState, event: BranchClosed) -> RegistryState:
    return _change_branch(state, event.branch_id, closed=True)


def _branch_brin_changed(state: RegistryState, event: BranchBrinChanged) -> RegistryState:
    changed = _change_branch(state, event.branch_id, vestigingscode=event.vestigingscode)
    # The old code stays an alias of the same branch: history follows the branch.
    return _with(changed, codes={event.vestigingscode: event.branch_id})


def _staff_joined(state: RegistryState, event: StaffJoined) -> RegistryState:
    return _with(state, people={event.staff_id: Person(event.staff_id, event.branch_id, event.role, True)})


def _consultant_joined(state: RegistryState, event: ConsultantJoined) -> RegistryState:
    return _with(state, people={event.staff_id: Person(event.staff_id, None, StaffRole.SWV_CONSULTANT, True,
                                                       office=event.office,
                                                       wijknetwerken=frozenset(event.wijknetwerken))})


def _staff_role_changed(state: RegistryState, event: StaffRoleChanged) -> RegistryState:
    person = state.people.get(event.staff_id)
    return _with(state, people={event.staff_id: replace(person, role=event.role)}) if person else state


def _departed(state: RegistryState, event: StaffDeparted | ConsultantDeparted) -> RegistryState:
    person = state.people.get(event.staff_id)
    return _with(state, people={event.staff_id: replace(person, active=False)}) if person else state


def _pupil_enrolled(state: RegistryState, event: PupilEnrolled) -> RegistryState:
    return _with(state, pupils={event.pupil_id: Pupil(event.pupil_id, event.branch_id, True)})


def _pupil_left(state: RegistryState, event: PupilLeft) -> RegistryState:
    pupil = state.pupils.get(event.pupil_id)
    return _with(state, pupils={event.pupil_id: replace(pupil, enrolled=False)}) if pupil else state


def _pupil_purged(state: RegistryState, event: PupilDataPurged) -> RegistryState:
    """The pupil's data was erased (retention): the pupil and their dossiers leave the registry.
    `state` must hold the pupil's dossiers."""
    return replace(state, pupils=MappingProxyType({k: v for k, v in state.pupils.items() if k != event.pupil_id}),
                   dossiers=MappingProxyType({k: v for k, v in state.dossiers.items()
                                              if v.pupil_id != event.pupil_id}))


def _dossier_opened(state: RegistryState, event: DossierOpened) -> RegistryState:
    opened = Dossier(event.dossier_id, event.branch_id, event.pupil_id, event.contact_staff_id, True)
    return _with(state, dossiers={event.dossier_id: opened})


def _dossier_contact_assigned(state: RegistryState, event: DossierContactAssigned) -> RegistryState:
    dossier = state.dossiers.get(event.dossier_id)
    return _with(state, dossiers={event.dossier_id: replace(dossier, contact_staff_id=event.contact_staff_id)}) \
        if dossier else state


def _dossier_closed(state: RegistryState, event: DossierClosed) -> RegistryState:
    dossier = state.dossiers.get(event.dossier_id)
    return _with(state, dossiers={event.dossier_id: replace(dossier, open=False)}) if dossier else state


def _no_reactions(state: RegistryState, event: Any) -> tuple[Event, ...]:
    return ()


@dataclass(frozen=True)
class Handler:
    """`evolve` gives the registry after the event; `react` the facts that follow from it (the
    live service emits those; a replay reads them from the log)."""

    evolve: Callable[[RegistryState, Any], RegistryState]
    react: Callable[[RegistryState, Any], tuple[Event, ...]] = _no_reactions


HANDLERS: Mapping[type[Event], Handler] = MappingProxyType({
    BranchFounded: Handler(_branch_founded), BranchMoved: Handler(_branch_moved),
    BranchRenamed: Handler(_branch_renamed), BranchWijknetwerkChanged: Handler(_branch_wijknetwerk_changed),
    BranchClosed: Handler(_branch_closed), BranchBrinChanged: Handler(_branch_brin_changed),
    StaffJoined: Handler(_staff_joined), StaffRoleChanged: Handler(_staff_role_changed),
    StaffDeparted: Handler(_departed, _contact_successors),
    ConsultantJoined: Handler(_consultant_joined), ConsultantDeparted: Handler(_departed),
    PupilEnrolled: Handler(_pupil_enrolled), PupilLeft: Handler(_pupil_left),
    PupilDataPurged: Handler(_pupil_purged),
    DossierOpened: Handler(_dossier_opened), DossierContactAssigned: Handler(_dossier_contact_assigned),
    DossierClosed: Handler(_dossier_closed),
})

# The event types `evolve` reads, whatever topic they are on (a purge comes from retention).
FOLDED_TYPES = frozenset(cls.event_type for cls in HANDLERS)


def evolve(state: RegistryState, event: Event) -> RegistryState:
    """The registry after one more canonical event."""
    handler = HANDLERS.get(type(event))
    return handler.evolve(state, event) if handler else state


def react(state: RegistryState, event: Event) -> tuple[Event, ...]:
    """What follows from `event` (contact persons of departed staff); `state` as `evolve` left it."""
    handler = HANDLERS.get(type(event))
    return handler.react(state, event) if handler else ()


def _change_branch(state: RegistryState, branch_id: UUID, **changes: Any) -> RegistryState:
    branch = state.branches.get(branch_id)
    if branch is None:
        return state
    return _with(state, branches={branch_id: replace(branch, **changes)})


def _with(state: RegistryState, **updates: Mapping[Any, Any]) -> RegistryState:
    merged = {name: MappingProxyType({**getattr(state, name), **changes}) for name, changes in updates.items()}
    return replace(state, **merged)


