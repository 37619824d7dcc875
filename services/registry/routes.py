"""The registry's HTTP door: mutations in (`services.registry.handlers` decides), branches out."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Body, Depends, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError

from services.registry import domain, store
from services.registry.credentials import Credential
from services.registry.deps import RegistryDeps
from services.registry.service import MutationProblem
from shared.bearer import own_credential
from shared.contracts.events import Address
from shared.contracts.mutations import MutationBatch, MutationRequest
from shared.problems import Problem

bearer = HTTPBearer(auto_error=False, description="The school system's API key: `Authorization: Bearer svk_...`")


class MutationResultPublic(BaseModel):
    mutation_id: str
    status: Literal["accepted", "scheduled"]
    event_ids: list[str]
    # What the mutation touched, by role (branch_id, staff_id, pupil_id, dossier_id,
    # contact_staff_id): the ids the access and retention APIs and the audit take.
    entity_ids: dict[str, UUID]
    effective_at: datetime
    replayed: bool


class MutationsAcceptedPublic(BaseModel):
    results: list[MutationResultPublic]


class StaffPublic(BaseModel):
    staff_id: UUID
    branch_id: UUID
    staff_ref: str
    role: str
    active: bool


class ConsultantPublic(BaseModel):
    staff_id: UUID
    consultant_ref: str
    active: bool
    wijknetwerken: list[str] | None


class PupilPublic(BaseModel):
    pupil_id: UUID
    branch_id: UUID
    pupil_ref: str
    enrolled: bool


class DossierPublic(BaseModel):
    dossier_id: UUID
    branch_id: UUID
    dossier_ref: str
    pupil_id: UUID
    contact_staff_id: UUID
    open: bool


class BranchPublic(BaseModel):
    branch_id: UUID
    vestigingscode: str
    aliases: list[str]
    name: str
    address: Address
    phone: str
    wijknetwerk: str
    closed: bool


_ADDRESS = {"street": "Schiekade", "house_number": "12", "postcode": "3032 AJ", "city": "Rotterdam"}
EXAMPLES = {
    "branch_founded": {"summary": "A new branch (oprichting)", "value": {
        "kind": "branch", "change": "founded", "mutation_id": "parnassys-2026-0001", "vestigingscode": "12AB00",
        "name": "OBS De Regenboog", "address": _ADDRESS, "phone": "010-1234567", "wijknetwerk": "Noord",
        "effective_at": "2026-08-01T00:00:00+02:00"}},
    "staff_batch": {"summary": "An IB'er joins; a teacher leaves at the end of the month", "value": {"mutations": [
        {"kind": "staff_joined", "mutation_id": "parnassys-2026-0002", "vestigingscode": "12AB00",
         "staff_ref": "emp-1043", "role": "ib_er", "name": "Fatima el Amrani", "email": "f.elamrani@school.example"},
        {"kind": "staff_departed", "mutation_id": "parnassys-2026-0003", "vestigingscode": "12AB00",
         "staff_ref": "emp-0877", "effective_at": "2026-08-31T23:59:00+02:00"}]}},
}


def get_deps(request: Request) -> RegistryDeps:
    deps: RegistryDeps = request.app.state.deps
    return deps


Deps = Annotated[RegistryDeps, Depends(get_deps)]


def authenticated(deps: Deps, token: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Credential:
    credential = deps.credentials.authenticate(token.credentials) if token else None
    if credential is None:
        raise Problem(401, "unauthorized", "A valid API key is required",
                      detail="Send `Authorization: Bearer <api key>`; keys come from the PPO operators.")
    return credential


Sender = Annotated[Credential, Depends(authenticated)]
# School systems authenticate with their own credential (an API key, `Sender`), scoped to their BRINs.
SCHOOL_KEY = own_credential("a school system's API key (Authorization: Bearer svk_...), scoped to its BRINs")
mutations_router = APIRouter(prefix="/v1/mutations", tags=["mutations"], dependencies=[SCHOOL_KEY])
branches_router = APIRouter(prefix="/v1/branches", tags=["branches"], dependencies=[SCHOOL_KEY])
ops_router = APIRouter(tags=["operations"], dependencies=[SCHOOL_KEY])


@mutations_router.post("", status_code=status.HTTP_202_ACCEPTED, response_model=MutationsAcceptedPublic,
                       responses={401: {"description": "No valid API key"},
                                  403: {"description": "The key does not serve this BRIN"},
                                  409: {"description": "mutation_id reused for other content"},
                                  422: {"description": "Field errors, or a rule of the registry refuses it"}})
def report_mutations(deps: Deps, sender: Sender,
                     body: Annotated[MutationRequest, Body(description="One mutation, or a batch.",
                                                          openapi_examples=EXAMPLES)],
                     ) -> MutationsAcceptedPublic:
    """Report one mutation or a batch. A batch is all or nothing; a mutation_id sent again
    answers as the first time and changes nothing."""
    mutations = body.mutations if isinstance(body, MutationBatch) else [body]
    try:
        with deps.engine.begin() as connection:
            outcomes = deps.service.report(connection, sender, mutations)
    except MutationProblem as problem:
        raise Problem(problem.status, {403: "forbidden", 409: "conflict"}.get(problem.status, "rule-violation"),
                      "Mutation refused", detail=problem.detail, reason=problem.code,
                      mutation_index=problem.index, mutation_id=problem.mutation_id) from problem
    except OperationalError as error:
        raise Problem(503, "unavailable", "The registry database is unavailable; nothing was stored") from error
    return MutationsAcceptedPublic(results=[MutationResultPublic(**vars(outcome)) for outcome in outcomes])


@mutations_router.get("/{mutation_id}", response_model=MutationResultPublic)
def mutation_status(mutation_id: str, deps: Deps, sender: Sender) -> MutationResultPublic:
    with deps.engine.connect() as connection:
        row = store.find_mutation(connection, sender.client_id, mutation_id)
    if row is None:
        raise Problem(404, "not-found", "No mutation with this id from this sender")
    return MutationResultPublic(mutation_id=row.mutation_id, status=row.status, event_ids=json.loads(row.event_ids),
                                entity_ids=store.entity_ids_of(row), effective_at=row.effective_at, replayed=False)


@branches_router.get("/{vestigingscode}", response_model=BranchPublic)
def branch(vestigingscode: str, deps: Deps, sender: Sender) -> BranchPublic:
    """A branch by its current or any earlier vestigingscode, with its stable id."""
    with deps.engine.connect() as connection:
        row, aliases = store.branch_with_aliases(connection, vestigingscode)
    # Checked before saying whether the branch exists; a branch it follows it sees under every code.
    if not sender.is_swv_office and not sender.covers(vestigingscode, UUID(row.branch_id) if row else None):
        raise Problem(403, "forbidden", "This key does not serve that BRIN")
    if row is None:
        raise Problem(404, "not-found", "No branch with this vestigingscode")
    return BranchPublic(branch_id=UUID(row.branch_id), vestigingscode=row.vestigingscode, aliases=list(aliases),
                        name=row.name, address=Address.model_validate_json(row.address), phone=row.phone,
                        wijknetwerk=row.wijknetwerk, closed=row.closed)


def _school_branch(connection: Connection, sender: Credential, vestigingscode: str) -> UUID:
    """The branch a school's own reference starts from: one its key serves (checked before saying
    whether the branch exists, as for the branch itself)."""
    if sender.is_swv_office:
        raise Problem(403, "forbidden", "The SWV office looks up its consultants, not a school's people",
                      reason="not-a-school")
    branch_id = store.branch_id_for(connection, vestigingscode)
    if not sender.covers(vestigingscode, branch_id):
        raise Problem(403, "forbidden", "This key does not serve that BRIN", reason="wrong-school")
    if branch_id is None:
        raise Problem(404, "not-found", "No branch with this vestigingscode")
    return branch_id


_LOOKUP: dict[int | str, dict[str, Any]] = {
    401: {"description": "No valid API key"}, 403: {"description": "The key does not serve this BRIN"},
           404: {"description": "Nothing with this reference at this branch"}}


@branches_router.get("/{vestigingscode}/staff/{staff_ref}", response_model=StaffPublic, responses=_LOOKUP)
def staff_by_ref(vestigingscode: str, staff_ref: str, deps: Deps, sender: Sender) -> StaffPublic:
    """A staff member's id from the school's own reference (also after they departed)."""
    with deps.engine.connect() as connection:
        branch_id = _school_branch(connection, sender, vestigingscode)
        person = store.find_person(connection, domain.staff_id(branch_id, staff_ref))
    if person is None:
        raise Problem(404, "not-found", "No staff member with this reference joined this branch")
    return StaffPublic(staff_id=person.staff_id, branch_id=branch_id, staff_ref=staff_ref, role=person.role.value,
                       active=person.active)


@branches_router.get("/{vestigingscode}/pupils/{pupil_ref}", response_model=PupilPublic, responses=_LOOKUP)
def pupil_by_ref(vestigingscode: str, pupil_ref: str, deps: Deps, sender: Sender) -> PupilPublic:
    """A pupil's id from the school's own reference (until the pupil's data is purged)."""
    with deps.engine.connect() as connection:
        branch_id = _school_branch(connection, sender, vestigingscode)
        pupil = store.find_pupil(connection, domain.pupil_id(branch_id, pupil_ref))
    if pupil is None:
        raise Problem(404, "not-found", "No pupil with this reference at this branch")
    return PupilPublic(pupil_id=pupil.pupil_id, branch_id=branch_id, pupil_ref=pupil_ref, enrolled=pupil.enrolled)


@branches_router.get("/{vestigingscode}/dossiers/{dossier_ref}", response_model=DossierPublic, responses=_LOOKUP)
def dossier_by_ref(vestigingscode: str, dossier_ref: str, deps: Deps, sender: Sender) -> DossierPublic:
    """A dossier's id from the school's own reference (until its pupil's data is purged)."""
    with deps.engine.connect() as connection:
        branch_id = _school_branch(connection, sender, vestigingscode)
        dossier = store.find_dossier(connection, domain.dossier_id(branch_id, dossier_ref))
    if dossier is None:
        raise Problem(404, "not-found", "No dossier with this reference at this branch")
    return DossierPublic(dossier_id=dossier.dossier_id, branch_id=branch_id, dossier_ref=dossier_ref,
                         pupil_id=dossier.pupil_id, contact_staff_id=dossier.contact_staff_id, open=dossier.open)


consultants_router = APIRouter(prefix="/v1/consultants", tags=["consultants"], dependencies=[SCHOOL_KEY])


@consultants_router.get("/{consultant_ref}", response_model=ConsultantPublic, responses=_LOOKUP)
def consultant_by_ref(consultant_ref: str, deps: Deps, sender: Sender) -> ConsultantPublic:
    """One of this SWV office's consultants by its own reference (the office's credential only)."""
    if not sender.is_swv_office:
        raise Problem(403, "forbidden", "Consultants are the SWV office's", reason="not-swv-office")
    with deps.engine.connect() as connection:
        person = store.find_person(connection, domain.consultant_id(sender.office, consultant_ref))
        legacy = store.find_person(connection, domain.legacy_consultant_id(consultant_ref))
    if person is None and legacy is not None and legacy.office in (None, sender.office):
        person = legacy  # registered before ids were scoped by office
    if person is None:
        raise Problem(404, "not-found", "No consultant of this office with this reference")
    return ConsultantPublic(staff_id=person.staff_id, consultant_ref=consultant_ref, active=person.active,
                            wijknetwerken=sorted(person.wijknetwerken) if person.wijknetwerken is not None else None)


ROUTERS = (mutations_router, branches_router, consultants_router, ops_router)
