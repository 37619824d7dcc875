"""The retention service's API: consent, legal holds, the purge report.
`python -m services.retention.api`; OpenAPI at /docs."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated
from uuid import UUID

import uvicorn
from fastapi import APIRouter, Depends, FastAPI, Request
from pydantic import BaseModel, Field

from services.retention.bootstrap import RetentionDeps, build
from services.retention.settings import RetentionSettings
from shared.contracts.events import ConsentGiver, ConsentPurpose
from shared.logging import configure_logging
from shared.problems import Problem, install_problem_handlers


class ConsentPublic(BaseModel):
    pupil_id: UUID
    purpose: ConsentPurpose
    allowed: bool
    reason: str
    needs: list[ConsentGiver] = Field(description="Whose consent is needed on this date (the pupil's own from 16).")
    on: date


class ConsentChange(BaseModel):
    giver: ConsentGiver
    given: bool = Field(description="true: consent given; false: withdrawn (takes effect at once)")


class HoldRequest(BaseModel):
    reason: str = Field(min_length=3, max_length=200)


class PurgePublic(BaseModel):
    pupil_id: UUID
    category: str
    due_on: date
    purged_at: datetime
    removed: str


def get_deps(request: Request) -> RetentionDeps:
    deps: RetentionDeps = request.app.state.deps
    return deps


Deps = Annotated[RetentionDeps, Depends(get_deps)]
pupils = APIRouter(prefix="/v1/pupils", tags=["pupils"])
purges = APIRouter(prefix="/v1/purges", tags=["purges"])
ops = APIRouter(tags=["operations"])


@pupils.get("/{pupil_id}/consent/{purpose}", response_model=ConsentPublic)
def may_we(pupil_id: UUID, purpose: ConsentPurpose, deps: Deps) -> ConsentPublic:
    """May we, for this pupil, for this purpose, today? With the reason."""
    with deps.engine.connect() as connection:
        answer = deps.service.consent_answer(connection, pupil_id, purpose)
    if answer is None:
        raise Problem(404, "not-found", "Unknown pupil")
    return ConsentPublic(pupil_id=pupil_id, purpose=purpose, allowed=answer.allowed, reason=answer.reason,
                         needs=list(answer.needs), on=deps.service.today())


@pupils.put("/{pupil_id}/consent/{purpose}", status_code=204)
def change_consent(pupil_id: UUID, purpose: ConsentPurpose, body: ConsentChange, deps: Deps) -> None:
    with deps.engine.begin() as connection:
        if not deps.service.record_consent(connection, pupil_id, purpose, body.giver, body.given):
            raise Problem(404, "not-found", "Unknown pupil")


@pupils.put("/{pupil_id}/legal-hold", status_code=204)
def place_hold(pupil_id: UUID, body: HoldRequest, deps: Deps) -> None:
    """Stops the purge until released."""
    with deps.engine.begin() as connection:
        if not deps.service.set_hold(connection, pupil_id, body.reason):
            raise Problem(404, "not-found", "Unknown pupil")


@pupils.delete("/{pupil_id}/legal-hold", status_code=204)
def release_hold(pupil_id: UUID, deps: Deps) -> None:
    with deps.engine.begin() as connection:
        if not deps.service.set_hold(connection, pupil_id, None):
            raise Problem(404, "not-found", "Unknown pupil")


@purges.get("", response_model=list[PurgePublic])
def purge_report(deps: Deps) -> list[PurgePublic]:
    """What was purged and when; never what it was."""
    with deps.engine.connect() as connection:
        return [PurgePublic(**row) for row in deps.service.purge_report(connection)]


@ops.get("/healthz")
def health() -> dict[str, str]:
    return {"status": "ok"}


def create_app(deps: RetentionDeps) -> FastAPI:
    app = FastAPI(title="samenveilig retention", version="1.0.0",
                  description="Retention, crypto-shredding purges, consent.")
    app.state.deps = deps
    install_problem_handlers(app)
    for router in (pupils, purges, ops):
        app.include_router(router)
    return app


def main() -> None:
    settings = RetentionSettings()
    configure_logging("retention-api", settings.log_level)
    uvicorn.run(create_app(build(settings)), host=settings.api_host, port=settings.api_port, log_config=None,
                access_log=False)


if __name__ == "__main__":
    main()
