"""The HTTP shell every service API shares: one FastAPI app per service with its dependencies
on `app.state`, RFC 9457 problem documents, /healthz, the outbox's operations routes, and one
way to serve it (JSON logs, no access log: request lines would carry ids of children)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

import uvicorn
from fastapi import APIRouter, FastAPI, Request
from pydantic import BaseModel
from sqlalchemy import Table
from sqlalchemy.engine import Engine

from shared.clock import Clock
from shared.logging import configure_logging
from shared.outbox import outbox_status
from shared.problems import install_problem_handlers
from shared.settings import CommonSettings


async def read_body(request: Request, limit: int) -> bytes | None:
    """The request's body, or None as soon as it is longer than `limit`: a declared length is
    refused before anything is read, a streamed one once the limit is passed."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


class OutboxStatusPublic(BaseModel):
    pending: int
    oldest_pending_at: datetime | None
    oldest_pending_age_s: float


def outbox_router(engine_of: Callable[[Any], Engine], outbox: Table, clock_of: Callable[[Any], Clock]) -> APIRouter:
    """`GET /v1/outbox`: how much of this service's event outbox is not yet on the broker and
    since when. Downstream services fail closed on it: an accepted change stuck here is a
    change they cannot know about yet."""
    router = APIRouter(tags=["operations"])

    @router.get("/v1/outbox", response_model=OutboxStatusPublic)
    def status(request: Request) -> OutboxStatusPublic:
        deps = request.app.state.deps
        now = clock_of(deps).now()
        with engine_of(deps).connect() as connection:
            found = outbox_status(connection, outbox, now)
        age = 0.0 if found.oldest_pending_at is None else max(0.0, (now - found.oldest_pending_at).total_seconds())
        return OutboxStatusPublic(pending=found.pending, oldest_pending_at=found.oldest_pending_at,
                                  oldest_pending_age_s=age)

    return router


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
    # No proxy headers from uvicorn (it would believe X-Forwarded-For from any loopback peer):
    # the services ask `shared.ratelimit.client_address`, which believes configured proxies only.
    uvicorn.run(create_app(), host=settings.api_host, port=settings.api_port, log_config=None, access_log=False,
                proxy_headers=False)
