"""The retention service's API: consent, legal holds, the purge report, data-subject requests,
the breach register with the 72-hour clock, and metrics."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import date, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response
from fastapi.responses import HTMLResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from pydantic import AwareDatetime, BaseModel, EmailStr, Field, model_validator

from services.retention import policy, store
from services.retention.deps import RetentionDeps
from services.retention.leaks import LeakReport
from services.retention.letters import LEAK_NOTICES, answer_letter, inspection_page
from services.retention.policy import Action, Actor
from services.retention.requests import Correction
from services.retention.service import NotPossible
from shared.bearer import Caller, current_caller, public, requires
from shared.contracts.events import ConsentGiver, ConsentPurpose, DataCategory, StaffRole, SubjectRequestKind
from shared.problems import Problem


class ConsentPublic(BaseModel):
    pupil_id: UUID
    purpose: ConsentPurpose
    allowed: bool
    reason: str
    needs: list[ConsentGiver] = Field(description="Whose consent is needed on this date (the pupil's own from 16).")
    on: date


class ConsentIn(BaseModel):
    giver: ConsentGiver
    given: bool = Field(description="true: consent given; false: withdrawn (takes effect at once)")


class HoldIn(BaseModel):
    reason: str = Field(min_length=3, max_length=200)


class PurgePublic(BaseModel):
    pupil_id: UUID
    category: str
    due_on: date
    purged_at: datetime
    removed: str
    # When the last copy is gone: the Kafka door's raw messages (in clear as the school system
    # wrote them) and their dead letters are deleted by retention, not by the key (README, "Erasure").
    last_copy_gone_by: datetime
    remains_until_then: str


class ScheduledPurgePublic(BaseModel):
    pupil_id: UUID
    branch_id: UUID
    category: str
    left_on: date | None
    due_on: date
    # Under a legal hold the purge waits, past its date too, until the hold is released.
    legal_hold: bool
    days_left: int = Field(description="Days until due_on (negative: overdue, which only a hold explains).")


class ScheduledPurgesPublic(BaseModel):
    scheduled: list[ScheduledPurgePublic]
    next_after: str | None = Field(description="Give as `after` for the next page; null on the last page.")


class RequestIn(BaseModel):
    kind: SubjectRequestKind
    requested_by: ConsentGiver = Field(description="A parent, or the pupil (from 16).")
    received_on: date | None = Field(None, description="When the school received it (default: today). The "
                                                       "one-month deadline runs from here.")


class RequestPublic(BaseModel):
    request_id: UUID
    pupil_id: UUID
    branch_id: UUID
    kind: SubjectRequestKind
    requested_by: ConsentGiver
    received_on: date
    due_on: date = Field(description="Answer by this date (AVG art. 12(3)).")
    extension_reason: str | None
    status: Literal["open", "export-ready", "answered"]
    overdue: bool
    days_left: int | None
    outcome: Literal["provided", "corrected", "deleted", "refused"] | None
    refusal_reason: str | None
    answered_at: datetime | None
    corrected_fields: list[str]
    export_ready: bool


class ExtensionIn(BaseModel):
    reason: str = Field(min_length=3, max_length=200)


class CorrectionIn(BaseModel):
    name: str | None = Field(None, min_length=1, max_length=200)
    date_of_birth: date | None = None
    parent_emails: list[EmailStr] | None = Field(None, max_length=4)


class AnswerIn(BaseModel):
    outcome: Literal["provided", "corrected", "deleted", "refused"]
    refusal_reason: str | None = Field(None, min_length=3, max_length=300,
                                       description="Shown in the letter. Give the legal ground; no other "
                                                   "people's details. Removed when the pupil's data is purged.")
    correction: CorrectionIn | None = None


class LeakIn(BaseModel):
    nature: str = Field(min_length=3, max_length=200, description="What leaked, in categories and systems; "
                                                                  "never a child's name. For the register "
                                                                  "only: never in the parents' mail.")
    notice: str = Field("anders", pattern="^(" + "|".join(LEAK_NOTICES) + ")$",
                        description="Which fixed Dutch text the parents' mail is built from: "
                                    + ", ".join(LEAK_NOTICES) + ".")
    discovered_at: AwareDatetime
    # Bounded so the DataLeaked event stays well within a broker message (1 MB by default); a
    # larger leak is registered in parts, or by the accounts it went through.
    pupil_ids: list[UUID] = Field(default_factory=list, max_length=10_000)
    dossier_ids: list[UUID] = Field(default_factory=list, max_length=10_000)
    staff_ids: list[UUID] = Field(default_factory=list, max_length=1_000,
                                  description="Accounts whose access leaked: what they could see counts.")
    consequences: str | None = Field(None, max_length=2000)
    measures: str | None = Field(None, max_length=2000)

    @model_validator(mode="after")
    def names_something(self) -> LeakIn:
        if not (self.pupil_ids or self.dossier_ids or self.staff_ids):
            raise ValueError("name the pupils, the dossiers, or the accounts the leak concerns")
        return self


class LeakAssessmentIn(BaseModel):
    consequences: str | None = Field(None, max_length=2000)
    measures: str | None = Field(None, max_length=2000)
    not_reportable_reason: str | None = Field(
        None, min_length=3, max_length=200,
        description="Why the leak is unlikely to result in a risk (AVG art. 33(1)): no report due, no alarm.")


class RegulatorReportIn(BaseModel):
    reported_at: AwareDatetime
    reference: str = Field(min_length=1, max_length=200, description="The Autoriteit Persoonsgegevens' number.")
    delay_reason: str | None = Field(None, min_length=3, max_length=200,
                                     description="Required when reported after 72 hours (AVG art. 33(1)).")


def get_deps(request: Request) -> RetentionDeps:
    deps: RetentionDeps = request.app.state.deps
    return deps


Deps = Annotated[RetentionDeps, Depends(get_deps)]
CurrentCaller = Annotated[Caller, Depends(current_caller)]
# Behind tokens: reading (consent, purges, requests and their exports, leaks) takes
# retention:read, every change retention:write and a person's token: the board's FG, or for
# consent the school's director or administrator. Which pupils, requests and leaks are theirs
# is policy.py's, asked per resource below (README, "Who may call").
FG = StaffRole.FG.value
READ = requires("retention:read")
WRITE = requires("retention:write", roles=[FG])
WRITE_CONSENT = requires("retention:write", roles=[FG, *policy.CONSENT_KEEPERS])


def actor_of(caller: Caller) -> Actor:
    return Actor(is_person=caller.is_person, role=caller.role,
                 branch_id=UUID(caller.branch_id) if caller.branch_id else None)


def _refuse(refusal: policy.Refusal | None) -> None:
    if refusal is not None:
        raise Problem(403, "forbidden", "Not yours to handle", detail=refusal.detail, reason=refusal.rule)


def _boards(connection: Any, caller: Caller, *branches: UUID) -> policy.Boards:
    actor = actor_of(caller)
    return store.boards_of(connection, {*branches, *([actor.branch_id] if actor.branch_id else [])})


def permit_pupil(connection: Any, caller: Caller, action: Action, pupil_id: UUID) -> None:
    """403 unless the caller may do this for the pupil; an unknown pupil is the route's 404."""
    pupil = store.load_pupil(connection, pupil_id)
    if pupil is not None:
        branch = UUID(pupil.branch_id)
        _refuse(policy.refusal(actor_of(caller), action, branch, _boards(connection, caller, branch)))


def permit_request(connection: Any, caller: Caller, action: Action, request_id: UUID) -> None:
    branch = store.request_branch(connection, request_id)
    if branch is not None:
        _refuse(policy.refusal(actor_of(caller), action, branch, _boards(connection, caller, branch)))


def permit_leak(connection: Any, caller: Caller, action: Action, leak_id: UUID) -> None:
    row = store.load_leak(connection, leak_id)
    if row is not None:
        _refuse(policy.leak_refusal(actor_of(caller), action, row.board, _boards(connection, caller)))


def on_pupil(action: Action) -> Any:
    """For a route's `dependencies`, after its `requires`: 403 unless the pupil in the path is the
    caller's to act for. A dependency, so the refusal comes before the body is even read."""
    def check(pupil_id: UUID, deps: Deps, caller: CurrentCaller) -> None:
        with deps.engine.connect() as connection:
            permit_pupil(connection, caller, action, pupil_id)
    return Depends(check)


def on_request(action: Action) -> Any:
    def check(request_id: UUID, deps: Deps, caller: CurrentCaller) -> None:
        with deps.engine.connect() as connection:
            permit_request(connection, caller, action, request_id)
    return Depends(check)


def on_leak(action: Action) -> Any:
    def check(leak_id: UUID, deps: Deps, caller: CurrentCaller) -> None:
        with deps.engine.connect() as connection:
            permit_leak(connection, caller, action, leak_id)
    return Depends(check)


def visible(connection: Any, caller: Caller) -> frozenset[UUID] | None:
    """The branches a listing shows the caller (None: every branch)."""
    actor = actor_of(caller)
    boards = store.same_board(connection, actor.branch_id) if actor.branch_id else {}
    return policy.visible_branches(actor, boards)
pupils = APIRouter(prefix="/v1/pupils", tags=["pupils"])
purges = APIRouter(prefix="/v1/purges", tags=["purges"])
requests = APIRouter(prefix="/v1/requests", tags=["data-subject requests"])
leaks = APIRouter(prefix="/v1/leaks", tags=["data leaks"])
ops = APIRouter(tags=["operations"], dependencies=[public("operational counts, no personal data")])


@pupils.get("/{pupil_id}/consent/{purpose}", response_model=ConsentPublic,
            dependencies=[READ, on_pupil(Action.READ_CONSENT)])
def may_we(pupil_id: UUID, purpose: ConsentPurpose, deps: Deps) -> ConsentPublic:
    """May we, for this pupil, for this purpose, today? With the reason."""
    with deps.engine.connect() as connection:
        answer = deps.service.consent_answer(connection, pupil_id, purpose)
    if answer is None:
        raise Problem(404, "not-found", "Unknown pupil")
    return ConsentPublic(pupil_id=pupil_id, purpose=purpose, allowed=answer.allowed, reason=answer.reason,
                         needs=list(answer.needs), on=deps.service.today())


@pupils.put("/{pupil_id}/consent/{purpose}", status_code=204,
            dependencies=[WRITE_CONSENT, on_pupil(Action.CHANGE_CONSENT)])
def change_consent(pupil_id: UUID, purpose: ConsentPurpose, body: ConsentIn, deps: Deps,
                   caller: CurrentCaller) -> None:
    with deps.engine.begin() as connection:
        if not deps.service.record_consent(connection, pupil_id, purpose, body.giver, body.given,
                                           caller.acted_by()):
            raise Problem(404, "not-found", "Unknown pupil")


@pupils.put("/{pupil_id}/legal-hold", status_code=204, dependencies=[WRITE, on_pupil(Action.CHANGE)])
def place_hold(pupil_id: UUID, body: HoldIn, deps: Deps, caller: CurrentCaller) -> None:
    """Stops the purge until released."""
    with deps.engine.begin() as connection:
        if not deps.service.set_hold(connection, pupil_id, body.reason, caller.acted_by()):
            raise Problem(404, "not-found", "Unknown pupil")


@pupils.delete("/{pupil_id}/legal-hold", status_code=204, dependencies=[WRITE, on_pupil(Action.CHANGE)])
def release_hold(pupil_id: UUID, deps: Deps, caller: CurrentCaller) -> None:
    with deps.engine.begin() as connection:
        if not deps.service.set_hold(connection, pupil_id, None, caller.acted_by()):
            raise Problem(404, "not-found", "Unknown pupil")


@pupils.post("/{pupil_id}/categories/{category}/erasure", status_code=204,
             dependencies=[WRITE, on_pupil(Action.CHANGE)])
def erase_category(pupil_id: UUID, category: DataCategory, deps: Deps, caller: CurrentCaller) -> None:
    """The board's FG erases one category of a pupil's data on its own (`medical` once no longer
    needed, `dossier` text): its key goes, every copy of it reads "verwijderd", the rest stays.
    New data of that category for the pupil is refused from then on."""
    try:
        with deps.engine.begin() as connection:
            if not deps.service.erase_category(connection, pupil_id, category, caller.acted_by()):
                raise Problem(404, "not-found", "Unknown pupil")
    except NotPossible as refusal:
        raise Problem(409, "conflict", "This category cannot be erased now", detail=str(refusal)) from None


@purges.get("", response_model=list[PurgePublic], dependencies=[READ])
def purge_report(deps: Deps, caller: CurrentCaller) -> list[PurgePublic]:
    """What was purged and when; never what it was. An FG sees their own board's purges."""
    with deps.engine.connect() as connection:
        branches = visible(connection, caller)
        return [PurgePublic(**row) for row in deps.service.purge_report(connection, branches)]


@purges.get("/scheduled", response_model=ScheduledPurgesPublic, dependencies=[READ],
            responses={403: {"description": "A branch or board that is not the FG's"},
                       422: {"description": "Both branch_id and bevoegd_gezag, or a malformed `after`"}})
def purge_forecast(deps: Deps, caller: CurrentCaller, branch_id: UUID | None = None,
                   bevoegd_gezag: Annotated[str | None, Query(pattern=r"^[0-9]{5}$")] = None,
                   after: Annotated[str | None, Query(max_length=60, description="`next_after` of the page before")
                                    ] = None,
                   limit: Annotated[int, Query(ge=1, le=500)] = 100) -> ScheduledPurgesPublic:
    """What goes when: every pupil who left, with the purge's date, category and whether a legal
    hold stops it, soonest first, for one branch or one board (a service with retention:read:
    everything; the FG: her own board). Ids and dates only, never what is held."""
    if branch_id is not None and bevoegd_gezag is not None:
        raise Problem(422, "validation-error", "Give branch_id or bevoegd_gezag, not both")
    cursor = _forecast_cursor(after)
    with deps.engine.connect() as connection:
        shown = visible(connection, caller)
        asked: frozenset[UUID] | None = None
        if branch_id is not None:
            asked = frozenset({branch_id})
        elif bevoegd_gezag is not None:
            asked = store.board_branch_ids(connection, bevoegd_gezag)
        if asked is not None and shown is not None and not asked <= shown:
            _refuse(policy.Refusal("other-board", "this branch or board is not the FG's own"))
        branches = asked if asked is not None else shown
        rows = store.scheduled_purges(connection, branches, cursor, limit)
    today = deps.service.today()
    page = [ScheduledPurgePublic(pupil_id=UUID(r.pupil_id), branch_id=UUID(r.branch_id), category=r.category,
                                 left_on=r.left_on, due_on=r.due_on, legal_hold=r.legal_hold,
                                 days_left=(r.due_on - today).days) for r in rows]
    last = page[-1] if len(page) == limit else None
    cursor_out = f"{last.due_on.isoformat()}_{last.pupil_id}" if last else None
    return ScheduledPurgesPublic(scheduled=page, next_after=cursor_out)


def _forecast_cursor(after: str | None) -> tuple[date, str] | None:
    if after is None:
        return None
    day, _, pupil = after.partition("_")
    try:
        return date.fromisoformat(day), str(UUID(pupil))
    except ValueError:
        raise Problem(422, "validation-error", "`after` is the `next_after` of a page") from None


@pupils.post("/{pupil_id}/requests", response_model=RequestPublic, status_code=201,
             dependencies=[WRITE, on_pupil(Action.CHANGE)])
def receive_request(pupil_id: UUID, body: RequestIn, deps: Deps, response: Response,
                    caller: CurrentCaller) -> dict[str, Any]:
    """Register an inspect, correct or delete request; the one-month deadline starts."""
    try:
        with deps.engine.begin() as connection:
                registered = deps.requests.receive(connection, pupil_id, body.kind, body.requested_by, body.received_on,
                                               caller.acted_by())
    except NotPossible as refusal:
        raise Problem(422, "rule-violation", "This request cannot be registered", detail=str(refusal)) from None
    if registered is None:
        raise Problem(404, "not-found", "Unknown pupil")
    response.headers["Location"] = f"/v1/requests/{registered['request_id']}"
    return registered


@requests.get("", response_model=list[RequestPublic], dependencies=[READ])
def list_requests(deps: Deps, caller: CurrentCaller, branch_id: UUID | None = None,
                  open_only: Annotated[bool, Query(alias="open")] = True) -> list[dict[str, Any]]:
    """The privacy officer's list, the most urgent first: for a school (`branch_id`) or, for an
    FG, every school of their board."""
    with deps.engine.connect() as connection:
        branches = visible(connection, caller)
        if branch_id is not None:
            branches = frozenset({branch_id}) & branches if branches is not None else frozenset({branch_id})
        return deps.requests.listed(connection, branches, open_only)


def _request(deps: RetentionDeps, request_id: UUID) -> dict[str, Any]:
    with deps.engine.connect() as connection:
        found = deps.requests.one(connection, request_id)
    if found is None:
        raise Problem(404, "not-found", "Unknown request")
    return found


@requests.get("/{request_id}", response_model=RequestPublic,
              dependencies=[READ, on_request(Action.READ)])
def get_request(request_id: UUID, deps: Deps) -> dict[str, Any]:
    return _request(deps, request_id)


@requests.post("/{request_id}/extension", response_model=RequestPublic,
               dependencies=[WRITE, on_request(Action.CHANGE)])
def extend_request(request_id: UUID, body: ExtensionIn, deps: Deps) -> dict[str, Any]:
    """Two more months for a complex request (once, within the first month, with the reason)."""
    try:
        with deps.engine.begin() as connection:
            extended = deps.requests.extend(connection, request_id, body.reason)
    except NotPossible as refusal:
        raise Problem(409, "conflict", "The deadline cannot be extended", detail=str(refusal)) from None
    if extended is None:
        raise Problem(404, "not-found", "Unknown request")
    return extended


@requests.post("/{request_id}/answer", response_model=RequestPublic,
               dependencies=[WRITE, on_request(Action.CHANGE)])
def answer_request(request_id: UUID, body: AnswerIn, deps: Deps, caller: CurrentCaller) -> dict[str, Any]:
    """Record the answer: `provided` (inspect), `corrected` (with the corrected values),
    `deleted` (where lawful: the purge runs in the relay's next round) or `refused` (with the reason)."""
    correction = Correction(name=body.correction.name, date_of_birth=body.correction.date_of_birth,
                            parent_emails=[str(e) for e in body.correction.parent_emails]
                            if body.correction.parent_emails is not None else None) if body.correction else None
    try:
        with deps.engine.begin() as connection:
            answered = deps.requests.answer(connection, request_id, body.outcome, refusal_reason=body.refusal_reason,
                                            correction=correction, acted_by=caller.acted_by())
    except NotPossible as refusal:
        raise Problem(409, "conflict", "The request cannot be answered like this", detail=str(refusal)) from None
    if answered is None:
        raise Problem(404, "not-found", "Unknown request")
    return answered


@requests.get("/{request_id}/letter", response_class=HTMLResponse,
              dependencies=[READ, on_request(Action.READ)])
def request_letter(request_id: UUID, deps: Deps) -> HTMLResponse:
    """The answer letter (Dutch), once answered."""
    found = _request(deps, request_id)
    if found["status"] != "answered":
        raise Problem(409, "conflict", "Not answered yet", detail="The letter exists once the answer is recorded.")
    return HTMLResponse(answer_letter(found, deps.settings.privacy_contact))


def _export(deps: RetentionDeps, request_id: UUID) -> dict[str, Any]:
    found = _request(deps, request_id)
    with deps.engine.connect() as connection:
        exported = deps.requests.export(connection, request_id)
    if exported is None:
        detail = ("The export is being built from the event log; try again shortly." if found["kind"] == "inspect"
                  and found["status"] == "open" else "There is no export for this request (any more).")
        raise Problem(409 if found["status"] == "open" else 404, "not-found" if found["status"] != "open"
                      else "conflict", "No export", detail=detail)
    return exported


@requests.get("/{request_id}/export.json",
              dependencies=[READ, on_request(Action.READ)])
def request_export_json(request_id: UUID, deps: Deps) -> dict[str, Any]:
    """Everything held about the pupil, across all services (for an inspection request)."""
    return _export(deps, request_id)


@requests.get("/{request_id}/export.html", response_class=HTMLResponse,
              dependencies=[READ, on_request(Action.READ)])
def request_export_html(request_id: UUID, deps: Deps) -> HTMLResponse:
    """The same export as a readable Dutch page for the parents."""
    return HTMLResponse(inspection_page(_export(deps, request_id), request_id))


@leaks.post("", status_code=202, dependencies=[WRITE])
def report_leak(body: LeakIn, deps: Deps, response: Response, caller: CurrentCaller) -> dict[str, Any]:
    """Register a data leak (the board's FG). The 72-hour clock starts at `discovered_at`; the
    relay works out the affected parents and mails them within moments (see `GET /v1/leaks/{id}`).
    Pupils named must be of the FG's own board; the leak is that board's to complete."""
    leak_id = uuid.uuid4()
    try:
        with deps.engine.begin() as connection:
            for pupil_id in body.pupil_ids:
                permit_pupil(connection, caller, Action.CHANGE, pupil_id)
            board = policy.actor_board(actor_of(caller), _boards(connection, caller))
            report = LeakReport(nature=body.nature, discovered_at=body.discovered_at, pupil_ids=body.pupil_ids,
                                dossier_ids=body.dossier_ids, staff_ids=body.staff_ids,
                                consequences=body.consequences, measures=body.measures, board=board,
                                acted_by=caller.acted_by(), notice=body.notice)
            deps.leaks.register(connection, leak_id, report)
            registered = deps.leaks.one(connection, leak_id)
    except NotPossible as refusal:
        raise Problem(422, "rule-violation", "This leak cannot be registered", detail=str(refusal)) from None
    response.headers["Location"] = f"/v1/leaks/{leak_id}"
    assert registered is not None
    return registered


@leaks.get("", dependencies=[READ])
def breach_register(deps: Deps, caller: CurrentCaller) -> list[dict[str, Any]]:
    """The breach register (AVG art. 33(5)): every leak, its effects, measures and report; for an
    FG, the leaks of their own board."""
    with deps.engine.connect() as connection:
        actor = actor_of(caller)
        if not actor.is_person:
            return deps.leaks.register_entries(connection)
        board = policy.actor_board(actor, _boards(connection, caller))
        _refuse(None if board else policy.Refusal("fg-only", "only the school board's FG may read the register"))
        return deps.leaks.register_entries(connection, board)


@leaks.get("/{leak_id}", dependencies=[READ, on_leak(Action.READ)])
def get_leak(leak_id: UUID, deps: Deps) -> dict[str, Any]:
    with deps.engine.connect() as connection:
        found = deps.leaks.one(connection, leak_id)
    if found is None:
        raise Problem(404, "not-found", "Unknown leak")
    return found


def _change_leak(deps: RetentionDeps, leak_id: UUID, change: Callable[[Any], bool], refused: str) -> dict[str, Any]:
    """One change to a leak in one transaction: 404 for an unknown leak, 409 with the reason when
    its state does not allow it; the leak as it is afterwards."""
    try:
        with deps.engine.begin() as connection:
            if not change(connection):
                raise Problem(404, "not-found", "Unknown leak")
            found = deps.leaks.one(connection, leak_id)
    except NotPossible as refusal:
        raise Problem(409, "conflict", refused, detail=str(refusal)) from None
    assert found is not None
    return found


@leaks.patch("/{leak_id}", dependencies=[WRITE, on_leak(Action.CHANGE)])
def assess_leak(leak_id: UUID, body: LeakAssessmentIn, deps: Deps, caller: CurrentCaller) -> dict[str, Any]:
    """Complete the register as the investigation goes (consequences, measures), or record the
    assessment that no report to the regulator is due (`LeakNotReportable`)."""
    return _change_leak(deps, leak_id, lambda connection: deps.leaks.assess(
        connection, leak_id, body.consequences, body.measures, body.not_reportable_reason, caller.acted_by()),
        "The assessment cannot be recorded")


@leaks.post("/{leak_id}/mailing-approval", dependencies=[WRITE, on_leak(Action.CHANGE)])
def approve_leak_mailing(leak_id: UUID, deps: Deps, caller: CurrentCaller) -> dict[str, Any]:
    """A second FG of the board approves a mailing to more parents than one FG may send alone
    (`LeakMailingApproved`); the relay mails them in its next round."""
    return _change_leak(deps, leak_id, lambda connection: deps.leaks.approve_mailing(
        connection, leak_id, caller.acted_by()), "The mailing cannot be approved")


@leaks.post("/{leak_id}/regulator-report", dependencies=[WRITE, on_leak(Action.CHANGE)])
def record_regulator_report(leak_id: UUID, body: RegulatorReportIn, deps: Deps,
                            caller: CurrentCaller) -> dict[str, Any]:
    """Record the report to the Autoriteit Persoonsgegevens (`RegulatorNotified`)."""
    return _change_leak(deps, leak_id, lambda connection: deps.leaks.record_report(
        connection, leak_id, body.reported_at, body.reference, body.delay_reason, caller.acted_by()),
        "The report cannot be recorded")


class RetentionCollector(Collector):
    """Read at every scrape, from the database: what the relay and an alarm rule need."""

    def __init__(self, deps: RetentionDeps) -> None:
        self._deps = deps

    def collect(self) -> Any:
        deps = self._deps
        with deps.engine.connect() as connection:
            values = {
                "samenveilig_leaks_report_overdue": ("Leaks not reported to the AP within 72 hours of discovery.",
                                                     deps.leaks.overdue_count(connection)),
                "samenveilig_leaks_report_open": ("Leaks not yet reported to the AP.",
                                                  deps.leaks.open_count(connection)),
                "samenveilig_subject_requests_overdue": ("Data-subject requests past their deadline.",
                                                         deps.requests.overdue_count(connection)),
            }
        for name, (documentation, value) in values.items():
            yield GaugeMetricFamily(name, documentation, value=value)


@ops.get("/metrics", response_class=Response)
def metrics(request: Request) -> Response:
    """Prometheus text format."""
    return Response(generate_latest(request.app.state.metrics), media_type=CONTENT_TYPE_LATEST)


ROUTERS = (pupils, requests, purges, leaks, ops)


def configure_app(app: FastAPI, deps: RetentionDeps) -> None:
    """/metrics reads the service's own tables on each scrape."""
    app.state.metrics = CollectorRegistry(auto_describe=False)
    app.state.metrics.register(RetentionCollector(deps))
