"""The access service's HTTP API. `python -m services.access.api`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

import uvicorn
from fastapi import APIRouter, Depends, FastAPI, Request
from pydantic import BaseModel

from services.access import store
from services.access.bootstrap import AccessDeps, build, progress
from services.access.settings import AccessSettings
from shared.contracts.events import StaffRole
from shared.logging import configure_logging
from shared.problems import Problem, install_problem_handlers


class StaffStatusPublic(BaseModel):
    staff_id: UUID
    branch_id: UUID
    role: StaffRole | None
    status: str
    departed_at: datetime | None
    departure_recorded_at: datetime | None
    departures_recorded: int


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

staff_router = APIRouter(prefix="/v1/staff", tags=["staff"])
ops_router = APIRouter(tags=["operations"])


@staff_router.get("/{staff_id}", response_model=StaffStatusPublic)
def staff_status(staff_id: UUID, deps: Deps) -> StaffStatusPublic:
    with deps.engine.connect() as connection:
        member = store.load_member(connection, staff_id)
        departures = store.departures_of(connection, staff_id)
    if member is None:
        raise Problem(404, "not-found", "Unknown staff member")
    departed = member.has_departed(deps.clock.now())
    return StaffStatusPublic(
        staff_id=member.staff_id, branch_id=member.branch_id, role=member.role,
        status="departed" if departed else ("leaving" if member.departed_at else "active"),
        departed_at=member.departed_at, departure_recorded_at=member.departure_recorded_at,
        departures_recorded=len(departures))


@ops_router.get("/healthz")
def health() -> dict[str, str]:
    return {"status": "ok"}


@ops_router.get("/v1/progress", response_model=list[PartitionProgressPublic])
def consumer_progress(deps: Deps) -> list[PartitionProgressPublic]:
    """How far the processor has read, per partition (high-water mark from fetch responses)."""
    with deps.engine.connect() as connection:
        positions = progress(deps).positions_of(connection)
    return [PartitionProgressPublic(topic=deps.topics.logical(topic), partition=partition,
                                    next_offset=next_offset, high_water=high_water,
                                    caught_up=high_water is not None and next_offset >= high_water)
            for (topic, partition), (next_offset, high_water) in sorted(positions.items())]


def create_app(deps: AccessDeps) -> FastAPI:
    app = FastAPI(title="samenveilig access", version="0.1.0")
    app.state.deps = deps
    install_problem_handlers(app)
    app.include_router(staff_router)
    app.include_router(ops_router)
    return app


def main() -> None:
    settings = AccessSettings()
    configure_logging("access-api", settings.log_level)
    app = create_app(build(settings))
    uvicorn.run(app, host=settings.api_host, port=settings.api_port, log_config=None,
                access_log=False)


if __name__ == "__main__":
    main()
