"""The HTTP shell every service API shares: one FastAPI app per service with its dependencies
on `app.state`, RFC 9457 problem documents, /healthz, the outbox's operations routes, and one
way to serve it (JSON logs, no access log: request lines would carry ids of children)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from sqlalchemy import Table
from sqlalchemy.engine import Engine
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.bearer import BearerFirst, TokenVerifier, public, requires
from shared.clock import Clock
from shared.logging import configure_logging
from shared.outbox import outbox_status
from shared.problems import install_problem_handlers, problem_response
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


class BodyLimit:
    """ASGI middleware: a request body longer than `limit` bytes gets a 413 problem before the
    app reads or parses any of it. A declared Content-Length is judged from the header alone; a
    streamed (chunked) body is held up to the limit and refused once it passes it. Without it,
    a 47 MB body was read and parsed whole (six in parallel took an API to 832 MB)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await self._refuse(scope, receive, send)
            return
        held: list[Message] = []
        size = 0
        while True:
            message = await receive()
            held.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > self.limit:
                await self._refuse(scope, receive, send)
                return
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            return held.pop(0) if held else await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem_response(413, "too-large", "Request body too large",
                                    detail=f"at most {self.limit} bytes", instance=scope.get("path"))
        response.headers["Connection"] = "close"  # the rest of the body is not read
        await response(scope, receive, send)


class OutboxStatusPublic(BaseModel):
    pending: int
    oldest_pending_at: datetime | None
    oldest_pending_age_s: float


def outbox_router(name: str, engine_of: Callable[[Any], Engine], outbox: Table,
                  clock_of: Callable[[Any], Clock]) -> APIRouter:
    """`GET /v1/outbox`: how much of this service's event outbox is not yet on the broker and
    since when. Downstream services fail closed on it: an accepted change stuck here is a
    change they cannot know about yet. They ask with their own token, scope `<name>:outbox`."""
    router = APIRouter(tags=["operations"], dependencies=[requires(f"{name}:outbox")])

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


health_router = APIRouter(tags=["operations"], dependencies=[public("liveness, for the orchestrator")])


@health_router.get("/healthz")
def health() -> dict[str, str]:
    return {"status": "ok"}


# Swagger UI's assets, from the npm package `swagger-ui-dist` that deploy/setup.sh installs
# (deploy/package.json): /docs works on a machine without internet. FastAPI's default loads them
# from a CDN, and the page stayed blank offline.
SWAGGER_UI_DIR = Path(os.environ.get("SAMENVEILIG_SWAGGER_UI_DIR")
                      or Path(__file__).resolve().parents[1] / "deploy" / "node_modules" / "swagger-ui-dist")
DOCS_ASSETS = "/docs/assets"


def docs_router(app: FastAPI) -> APIRouter:
    """`/docs`: Swagger UI for this API, every asset served by the API itself."""
    router = APIRouter(tags=["operations"], dependencies=[public("the API's documentation page")])

    @router.get("/docs", include_in_schema=False, response_class=HTMLResponse)
    def docs(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(openapi_url=f"{root}{app.openapi_url}", title=f"{app.title} - API",
                                   swagger_js_url=f"{root}{DOCS_ASSETS}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{root}{DOCS_ASSETS}/swagger-ui.css",
                                   swagger_favicon_url=f"{root}{DOCS_ASSETS}/favicon-32x32.png",
                                   oauth2_redirect_url=f"{root}/docs/oauth2-redirect")

    @router.get("/docs/oauth2-redirect", include_in_schema=False, response_class=HTMLResponse)
    def oauth2_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    return router


def service_app(*, name: str, description: str, deps: Any, routers: Iterable[APIRouter], outbox: Table,
                max_body_bytes: int, verifier: TokenVerifier) -> FastAPI:
    """`deps` must have `engine` and `clock` (the outbox routes read them). Every route must
    declare its callers (`shared.bearer`); call `check_every_route_declares` once it is complete."""
    app = FastAPI(title=f"samenveilig {name}", version="1.0.0", description=description, docs_url=None,
                  redoc_url=None)
    app.state.deps = deps
    app.state.verifier = verifier
    # Outermost first: the body limit, then the token, then the app (which parses the body).
    app.add_middleware(BearerFirst, service=app)
    app.add_middleware(BodyLimit, limit=max_body_bytes)
    install_problem_handlers(app, dependencies=[public("what each problem type means")])
    # Kept for `shared.bearer.declared_routes`: FastAPI does not flatten included routers.
    app.state.routers = [*routers, health_router, docs_router(app),
                         outbox_router(name, lambda deps: deps.engine, outbox, lambda deps: deps.clock)]
    for router in app.state.routers:
        app.include_router(router)
    # Static files only (no route of the API): the JavaScript and CSS the /docs page loads.
    app.mount(DOCS_ASSETS, StaticFiles(directory=SWAGGER_UI_DIR, check_dir=False), name="docs-assets")
    return app


def serve(name: str, settings: CommonSettings, create_app: Callable[[], FastAPI]) -> None:
    configure_logging(name, settings.log_level)
    # No proxy headers from uvicorn (it would believe X-Forwarded-For from any loopback peer):
    # the services ask `shared.ratelimit.client_address`, which believes configured proxies only.
    uvicorn.run(create_app(), host=settings.api_host, port=settings.api_port, log_config=None, access_log=False,
                proxy_headers=False)
