"""The access service's HTTP routes: checks (view and change), listings, explicit grants,
confidentiality agreements, the access log.

Every answer about access fails closed: when the processor has not caught up, has stopped
reporting, or the database is unavailable, the answer is a 503 problem, never an allow.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from datetime import date, datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError

from services.access import store
from services.access.deps import AccessDeps
from services.access.domain import Action, ChangeKind, Decision, Refused
from shared.bearer import Caller, current_caller, requires
from shared.contracts.events import StaffRole
from shared.outbox import outbox_status
from shared.problems import Problem


class DecisionPublic(BaseModel):
    staff_id: UUID
    dossier_id: UUID
    allowed: bool
    rule: str
    reason: str
    role: StaffRole | None
    since: datetime | None
    decided_at: datetime
    action: Action = Action.VIEW
    what: ChangeKind | None = Field(default=None, description="For a change: what of the dossier.")


class DossierEntryPublic(BaseModel):
    dossier_id: UUID
    rule: str
    since: datetime | None


class DossierPagePublic(BaseModel):
    items: list[DossierEntryPublic]
    total: int = Field(description="How many dossiers the staff member may see in all.")
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


class StaffEntryPublic(BaseModel):
    staff_id: UUID
    role: StaffRole | None
    rule: str
    since: datetime | None


class ViewIn(BaseModel):
    staff_id: UUID | None = Field(default=None, description=(
        "Who views: the token's person (may be left out; another person's id is refused)."))


class ChangeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")  # the changer is the token's person, never a field
    what: ChangeKind = Field(description="What of the dossier is to change: contact, text or status.")


class AgreementIn(BaseModel):
    model_config = ConfigDict(extra="forbid")  # who records it is the token's person
    version: str = Field(min_length=1, max_length=200, description="Which agreement text was signed.")
    signed_on: date
    valid_until: date = Field(description="Valid through this day (Dutch time).")


class AgreementPublic(BaseModel):
    event_id: str
    staff_id: UUID
    version: str
    signed_on: date
    valid_until: date


class GrantIn(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a `granted_by` of old: the granter is the token's person
    staff_id: UUID = Field(description="Who gets access.")
    until: AwareDatetime | None = Field(default=None, description="Required for extern and stagiair.")


class GrantPublic(BaseModel):
    event_id: str
    staff_id: UUID
    dossier_id: UUID
    until: datetime | None


class SubscriptionIn(BaseModel):
    subscribed: bool


class MissingContactPublic(BaseModel):
    dossier_id: UUID
    branch_id: UUID
    previous_contact_staff_id: UUID
    flagged_at: datetime


class MissingContactPagePublic(BaseModel):
    items: list[MissingContactPublic]
    total: int
    next_cursor: str | None


class StaffStatusPublic(BaseModel):
    staff_id: UUID
    branch_id: UUID | None
    role: StaffRole | None
    status: str
    departed_at: datetime | None
    departure_recorded_at: datetime | None
    departures_recorded: int
    agreement_version: str | None = Field(default=None, description="Externs and interns: the agreement in force.")
    agreement_valid_until: datetime | None = None


class PartitionProgressPublic(BaseModel):
    topic: str
    partition: int
    next_offset: int
    high_water: int | None
    caught_up: bool


def get_deps(request: Request) -> AccessDeps:
    deps: AccessDeps = request.app.state.deps
    return deps


Deps = Annotated[AccessDeps, Depends(get_deps)]
AfterEvent = Annotated[UUID | None, Query(description=(
    "Read your writes: the id of an event you caused; the answer waits until it is processed."))]


class Waiters:
    """How many requests may wait for the state to catch up at once (each holds a worker thread)."""

    def __init__(self, limit: int) -> None:
        self._slots = threading.BoundedSemaphore(limit)
        self._lock = threading.Lock()
        self.waiting = 0

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        if not self._slots.acquire(blocking=False):
            raise Problem(503, "too-many-waiting", "Too many requests are waiting",
                          detail="try again in a second", headers={"Retry-After": "1"})
        with self._lock:
            self.waiting += 1
        try:
            yield
        finally:
            with self._lock:
                self.waiting -= 1
            self._slots.release()


def fresh(request: Request, deps: Deps, after_event: AfterEvent = None) -> AccessDeps:
    """Fails closed: only answer from state known to be current."""
    event_id = str(after_event) if after_event is not None else None
    try:
        with deps.engine.connect() as connection:
            problem = _not_current(deps, connection, event_id)
        if problem is None:
            return deps
        waiters: Waiters = request.app.state.waiters
        with waiters.slot():
            deadline = time.monotonic() + deps.settings.max_wait_ms / 1000
            while problem is not None:
                if time.monotonic() >= deadline:
                    raise Problem(503, "not-caught-up", "Access state is not current", detail=problem)
                time.sleep(0.01)
                with deps.engine.connect() as connection:
                    problem = _not_current(deps, connection, event_id)
        return deps
    except OperationalError as error:
        raise Problem(503, "unavailable", "The access database is unavailable") from error


def _not_current(deps: AccessDeps, connection: Connection, event_id: str | None) -> str | None:
    if event_id is not None and not deps.progress.already_processed(connection, event_id):
        return "the given event has not been processed yet"
    return _staleness(deps, connection)


def configure_app(app: FastAPI, deps: AccessDeps) -> None:
    app.state.waiters = Waiters(deps.settings.max_waiting_requests)


def _staleness(deps: AccessDeps, connection: Connection) -> str | None:
    positions = store.consumer_position_rows(connection, deps.settings.consumer_group)
    if not positions:
        return "the access processor has not processed anything yet"
    newest = max(row.updated_at for row in positions)
    if (deps.clock.now() - newest).total_seconds() > deps.settings.stale_after_s:
        return "the access processor has not reported recently"
    if any(row.high_water is not None and row.next_offset > row.high_water for row in positions):
        # Never "caught up" past the end: the broker lost events this service had read.
        return "the log ends before what the access processor already read; it is re-reading"
    gaps = deps.progress.open_gaps(connection)
    if gaps:
        # Versions missing in a stream: an event the log lost (its producer publishes it again).
        # Whatever it said (a departure, a revoked grant) could make this answer wrong.
        return (f"{len(gaps)} event streams miss earlier events (oldest: {gaps[0].topic}, "
                f"version {gaps[0].applied_version + 1} of {gaps[0].held_version}); waiting for them")
    lag = sum(max(0, (row.high_water or 0) - row.next_offset) for row in positions)
    if lag > deps.settings.max_lag_events:
        return f"the access processor is {lag} events behind"
    own = outbox_status(connection, store.outbox, deps.clock.now())
    if own.oldest_pending_at is not None and (
            (deps.clock.now() - own.oldest_pending_at).total_seconds() > deps.settings.outbox_max_age_s):
        return f"{own.pending} access events are not yet on the broker"
    return deps.upstream_outboxes.problem()


Fresh = Annotated[AccessDeps, Depends(fresh)]
CurrentCaller = Annotated[Caller, Depends(current_caller)]
# Scopes: the Kindkans backend (or a school's tool) reads with access:read; a person's own token
# with access:write views, grants and changes their own subscription.
READ, WRITE = "access:read", "access:write"
PEOPLE = tuple(role.value for role in StaffRole)
GRANTERS = (StaffRole.IB_ER.value, StaffRole.DIRECTEUR.value)


def acting_person(caller: Caller, named: UUID | None) -> UUID:
    """The person the token is for; a request that names someone else is refused (the finding:
    views logged under a colleague's id, anyone's subscription changed)."""
    person = UUID(caller.subject)
    if named is not None and named != person:
        raise Problem(403, "forbidden", "You may act only for yourself", detail="the token is another person's")
    return person
checks_router = APIRouter(tags=["checks"])
dossiers_router = APIRouter(prefix="/v1/dossiers", tags=["dossiers"])
staff_router = APIRouter(prefix="/v1/staff", tags=["staff"])
swv_router = APIRouter(prefix="/v1/missing-contacts", tags=["swv"])
ops_router = APIRouter(tags=["operations"])


def _public(staff_id: UUID, dossier_id: UUID, decision: Decision, at: datetime,
            what: ChangeKind | None = None) -> DecisionPublic:
    return DecisionPublic(staff_id=staff_id, dossier_id=dossier_id, allowed=decision.allowed, rule=decision.rule,
                          reason=decision.reason, role=decision.role, since=decision.since, decided_at=at,
                          action=Action.VIEW if what is None else Action.CHANGE, what=what)


@checks_router.get("/v1/check", response_model=DecisionPublic, dependencies=[requires(READ)])
def check(staff_id: UUID, dossier_id: UUID, deps: Fresh, after_event: AfterEvent = None,
          action: Annotated[Action, Query(description="view (default) or change")] = Action.VIEW,
          what: Annotated[ChangeKind | None, Query(description="with action=change: contact, text or status")
                          ] = None) -> DecisionPublic:
    """May this staff member see (or change `what` of) this dossier now, and why (or why not)?"""
    if action is Action.CHANGE and what is None:
        raise Problem(422, "validation-error", "A change check names what is to change",
                      detail="give what=contact, what=text or what=status")
    if action is Action.VIEW and what is not None:
        raise Problem(422, "validation-error", "`what` belongs to a change check", detail="give action=change")
    now = deps.clock.now()
    with deps.engine.connect() as connection:
        decision = (deps.service.decide(connection, staff_id, dossier_id, now) if what is None
                    else deps.service.decide_change(connection, staff_id, dossier_id, what, now))
    return _public(staff_id, dossier_id, decision, now, what)


@dossiers_router.post("/{dossier_id}/views", response_model=DecisionPublic,
                      dependencies=[requires(WRITE, roles=PEOPLE)])
def view(dossier_id: UUID, body: ViewIn, deps: Fresh, caller: CurrentCaller,
         after_event: AfterEvent = None) -> DecisionPublic:
    """Kindkans asks, with the viewer's own token, before it shows a dossier; allowed or not,
    the view is logged (DossierViewed) under the token's person."""
    viewer = acting_person(caller, body.staff_id)
    now = deps.clock.now()
    for _attempt in range(5):
        with deps.engine.begin() as connection:
            decision = deps.service.record_view(connection, viewer, dossier_id, now, caller.acted_by())
        if decision is not None:
            return _public(viewer, dossier_id, decision, now)
        # another view of this dossier won the race for the chain's head: link to it instead
    raise Problem(503, "unavailable", "The access log is busy; nothing was shown", detail="Try again.")


@dossiers_router.post("/{dossier_id}/changes", response_model=DecisionPublic,
                      dependencies=[requires(WRITE, roles=PEOPLE)])
def change(dossier_id: UUID, body: ChangeIn, deps: Fresh, caller: CurrentCaller,
           after_event: AfterEvent = None) -> DecisionPublic:
    """Kindkans asks, with the changer's own token, before it saves a change of the dossier's
    contact, text or status; allowed or not, the attempt is logged in the dossier's access log
    (DossierViewed with action "change") under the token's person."""
    changer = UUID(caller.subject)
    now = deps.clock.now()
    for _attempt in range(5):
        with deps.engine.begin() as connection:
            decision = deps.service.record_view(connection, changer, dossier_id, now, caller.acted_by(), body.what)
        if decision is not None:
            return _public(changer, dossier_id, decision, now, body.what)
    raise Problem(503, "unavailable", "The access log is busy; nothing was changed", detail="Try again.")


@dossiers_router.get("/{dossier_id}/staff", response_model=list[StaffEntryPublic], dependencies=[requires(READ)])
def who_may_see(dossier_id: UUID, deps: Fresh, after_event: AfterEvent = None) -> list[StaffEntryPublic]:
    """Everyone who may see the dossier now, each with the rule that lets them."""
    now = deps.clock.now()
    with deps.engine.connect() as connection:
        dossier = store.load_dossier(connection, dossier_id)
        if dossier is None:
            raise Problem(404, "not-found", "Unknown dossier")
        allowed = deps.service.who_may_see(connection, dossier, now)
    return [StaffEntryPublic(staff_id=m.staff_id, role=m.role, rule=d.rule, since=d.since) for m, d in allowed]


@staff_router.get("/{staff_id}/dossiers", response_model=DossierPagePublic, dependencies=[requires(READ)])
def dossiers_of(staff_id: UUID, deps: Fresh, cursor: Annotated[str | None, Query(max_length=36)] = None,
                limit: Annotated[int, Query(ge=1, le=1000)] = 100, after_event: AfterEvent = None
                ) -> DossierPagePublic:
    """Every dossier the staff member may see, in pages; `total` says how many there are in all."""
    now = deps.clock.now()
    with deps.engine.connect() as connection:
        member = store.load_member(connection, staff_id)
        if member is None:
            raise Problem(404, "not-found", "Unknown staff member")
        if member.has_departed(now):
            return DossierPagePublic(items=[], total=0, next_cursor=None)
        ids, total = store.candidate_dossiers(connection, member, cursor, limit, now)
        items = []
        for dossier_id in ids:
            decision = deps.service.decide(connection, staff_id, UUID(dossier_id), now)
            if decision.allowed:
                items.append(DossierEntryPublic(dossier_id=UUID(dossier_id), rule=decision.rule,
                                                since=decision.since))
    return DossierPagePublic(items=items, total=total, next_cursor=ids[-1] if len(ids) == limit else None)


@dossiers_router.post("/{dossier_id}/grants", response_model=GrantPublic, status_code=201,
                      dependencies=[requires(WRITE, roles=GRANTERS)])
def grant(dossier_id: UUID, body: GrantIn, deps: Fresh, caller: CurrentCaller) -> GrantPublic:
    """An IB'er or director (the token's person, directly or through a service acting for them
    with an exchanged token) grants one dossier of their own branch to a colleague, an extern or
    a stagiair. The event names who did it, with which client, on whose behalf."""
    now = deps.clock.now()
    with deps.engine.begin() as connection:
        outcome = deps.service.grant(connection, UUID(caller.subject), body.staff_id, dossier_id, body.until, now,
                                     caller.acted_by())
    if isinstance(outcome, Refused):
        raise Problem(403 if outcome.code == "not-allowed-to-grant" else 422, "rule-violation",
                      "Grant refused", detail=outcome.detail, reason=outcome.code)
    return GrantPublic(event_id=outcome, staff_id=body.staff_id, dossier_id=dossier_id, until=body.until)


@dossiers_router.delete("/{dossier_id}/grants/{staff_id}", status_code=204,
                        dependencies=[requires(WRITE, roles=GRANTERS)])
def revoke(dossier_id: UUID, staff_id: UUID, deps: Fresh, caller: CurrentCaller) -> None:
    now = deps.clock.now()
    with deps.engine.begin() as connection:
        refused = deps.service.revoke(connection, UUID(caller.subject), staff_id, dossier_id, now, caller.acted_by())
    if refused is not None:
        raise Problem(403 if refused.code == "not-allowed-to-grant" else 404,
                      "forbidden" if refused.code == "not-allowed-to-grant" else "not-found",
                      "Revocation refused", detail=refused.detail, reason=refused.code)


@staff_router.post("/{staff_id}/agreements", response_model=AgreementPublic, status_code=201,
                   dependencies=[requires(WRITE, roles=GRANTERS)])
def record_agreement(staff_id: UUID, body: AgreementIn, deps: Fresh, caller: CurrentCaller) -> AgreementPublic:
    """An IB'er or director (the token's person) records the confidentiality agreement an extern
    or stagiair of their own branch signed; until it is recorded, and after it expires, no grant
    of theirs takes effect."""
    now = deps.clock.now()
    with deps.engine.begin() as connection:
        outcome = deps.service.record_agreement(connection, UUID(caller.subject), staff_id, body.version,
                                                body.signed_on, body.valid_until, now, caller.acted_by())
    if isinstance(outcome, Refused):
        raise Problem(403 if outcome.code == "not-allowed-to-record" else 422, "rule-violation",
                      "Agreement refused", detail=outcome.detail, reason=outcome.code)
    return AgreementPublic(event_id=outcome, staff_id=staff_id, version=body.version, signed_on=body.signed_on,
                           valid_until=body.valid_until)


@staff_router.delete("/{staff_id}/agreement", status_code=204, dependencies=[requires(WRITE, roles=GRANTERS)])
def revoke_agreement(staff_id: UUID, deps: Fresh, caller: CurrentCaller) -> None:
    """The agreement in force ends now (withdrawn, or recorded in error): their grants stop."""
    now = deps.clock.now()
    with deps.engine.begin() as connection:
        outcome = deps.service.revoke_agreement(connection, UUID(caller.subject), staff_id,
                                                "revoked by IB'er or director", now, caller.acted_by())
    if isinstance(outcome, Refused):
        raise Problem(403 if outcome.code == "not-allowed-to-record" else 404,
                      "forbidden" if outcome.code == "not-allowed-to-record" else "not-found",
                      "Revocation refused", detail=outcome.detail, reason=outcome.code)


@staff_router.put("/{staff_id}/subscription", status_code=204, dependencies=[requires(WRITE, roles=PEOPLE)])
def subscription(staff_id: UUID, body: SubscriptionIn, deps: Deps, caller: CurrentCaller) -> None:
    """Whether the staff member (the token's person: nobody else's) wants e-mail about dossiers they may see."""
    acting_person(caller, staff_id)
    with deps.engine.begin() as connection:
        if not store.set_subscribed(connection, staff_id, body.subscribed):
            raise Problem(404, "not-found", "Unknown staff member")


@staff_router.get("/{staff_id}", response_model=StaffStatusPublic, dependencies=[requires(READ)])
def staff_status(staff_id: UUID, deps: Deps) -> StaffStatusPublic:
    with deps.engine.connect() as connection:
        member = store.load_member(connection, staff_id)
        departures = store.departures_of(connection, staff_id)
        agreement = store.load_agreement(connection, staff_id)
    if member is None:
        raise Problem(404, "not-found", "Unknown staff member")
    departed = member.has_departed(deps.clock.now())
    return StaffStatusPublic(
        staff_id=member.staff_id, branch_id=member.branch_id, role=member.role,
        status="departed" if departed else ("leaving" if member.departed_at else "active"),
        departed_at=member.departed_at, departure_recorded_at=member.departure_recorded_at,
        departures_recorded=len(departures),
        agreement_version=agreement.version if agreement and agreement.revoked_at is None else None,
        agreement_valid_until=agreement.valid_until if agreement and agreement.revoked_at is None else None)


@swv_router.get("", response_model=MissingContactPagePublic, dependencies=[requires(READ)])
def missing_contacts(deps: Fresh, cursor: Annotated[str | None, Query(max_length=36)] = None,
                     limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> MissingContactPagePublic:
    """Open dossiers without a contact person, for the SWV to follow up."""
    with deps.engine.connect() as connection:
        rows, total = store.list_missing_contacts(connection, cursor, limit)
    items = [MissingContactPublic(dossier_id=UUID(r.dossier_id), branch_id=UUID(r.branch_id),
                                  previous_contact_staff_id=UUID(r.previous_contact_staff_id),
                                  flagged_at=r.flagged_at) for r in rows]
    return MissingContactPagePublic(items=items, total=total,
                                    next_cursor=rows[-1].dossier_id if len(rows) == limit else None)


@ops_router.get("/v1/progress", response_model=list[PartitionProgressPublic], dependencies=[requires(READ)])
def consumer_progress(deps: Deps) -> list[PartitionProgressPublic]:
    """How far the processor has read, per partition (high-water mark from fetch responses)."""
    with deps.engine.connect() as connection:
        positions = deps.progress.positions_of(connection)
    return [PartitionProgressPublic(topic=deps.topics.logical(topic), partition=partition,
                                    next_offset=next_offset, high_water=high_water,
                                    caught_up=high_water is not None and next_offset == high_water)
            for (topic, partition), (next_offset, high_water) in sorted(positions.items())]


ROUTERS = (checks_router, dossiers_router, staff_router, swv_router, ops_router)
