"""The HTTP shell every service API shares: one FastAPI app per service with its dependencies
on `app.state`, RFC 9457 problem documents, /healthz, the outbox's operations routes, and one
way to serve it (JSON logs, no access log: request lines would carry ids of children)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import uvicorn
from fastapi import APIRouter, FastAPI
from sqlalchemy import Table

from shared.logging import configure_logging
from shared.outbox import outbox_router
from shared.problems import install_problem_handlers
from shared.settings import CommonSettings

health_router = APIRouter(tags=["operations"])


@health_router.get("/healthz")
def health() -> dict[str, str]:
    return {"status": "ok"}


def service_app(*, name: str, description: str, deps: Any, routers: Iterable[APIRouter], outbox: Table) -> FastAPI:
    """`deps` must have `engine` and `clock` (the outbox routes read them)."""
    app = FastAPI(title=f"samenveilig {name}", version="1.0.0", description=description)
    app.state.deps = deps
    install_problem_handlers(app)
    for router in routers:
        app.include_router(router)
    app.include_router(health_router)
    app.include_router(outbox_router(lambda deps: deps.engine, outbox, lambda deps: deps.clock))
    return app


def serve(name: str, settings: CommonSettings, create_app: Callable[[], FastAPI]) -> None:
    configure_logging(name, settings.log_level)
    uvicorn.run(create_app(), host=settings.api_host, port=settings.api_port, log_config=None, access_log=False)
