"""RFC 9457 problem details for every FastAPI edge: a stable type per error, never echoing input."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_MEDIA_TYPE = "application/problem+json"
log = logging.getLogger(__name__)

# Every problem type a samenveilig API answers with, and what it means (served at /problems/...).
PROBLEM_TYPES: dict[str, str] = {
    "validation-error": "The request does not match the documented shape; see `errors`.",
    "not-found": "No such resource, or you may not know that it exists.",
    "method-not-allowed": "This resource does not accept that method.",
    "unauthorized": "Credentials are missing or not valid.",
    "forbidden": "Your credentials do not allow this.",
    "conflict": "The request conflicts with the current state.",
    "not-caught-up": "The service has not yet processed the events this answer depends on.",
    "unavailable": "A dependency of the service is unavailable; nothing was changed.",
    "rule-violation": "The request breaks a domain rule; see `detail`.",
    "internal-error": "Something went wrong on our side; nothing you sent is at fault.",
    "http-error": "A protocol-level error.",
    "too-large": "The request body is longer than this API accepts; it was not read and nothing changed.",
    "too-many-waiting": "Too many requests are waiting for events to be processed; try again shortly.",
}


def problem_type_uri(code: str) -> str:
    # Relative URI (allowed by RFC 9457 section 3.1.1), resolved against the API that answered.
    return f"/problems/{code}"


class Problem(Exception):
    """Raise from a route to answer with a problem document."""

    def __init__(self, status: int, code: str, title: str, detail: str | None = None,
                 headers: dict[str, str] | None = None, **extensions: Any) -> None:
        if code not in PROBLEM_TYPES:
            raise ValueError(f"unknown problem code {code!r}")
        super().__init__(title)
        self.status = status
        self.code = code
        self.title = title
        self.detail = detail
        self.headers = headers or {}
        self.extensions = extensions


def problem_response(status: int, code: str, title: str, detail: str | None = None,
                     instance: str | None = None, **extensions: Any) -> JSONResponse:
    body: dict[str, Any] = {"type": problem_type_uri(code), "title": title, "status": status}
    if detail:
        body["detail"] = detail
    if instance:
        body["instance"] = instance
    body.update(extensions)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE)


def _field_errors(error: RequestValidationError) -> list[dict[str, str]]:
    # Location and message only: pydantic's `input` would echo what was sent, secrets included.
    return [
        {"field": ".".join(str(part) for part in item["loc"]), "message": item["msg"],
         "code": item["type"]}
        for item in error.errors()
    ]


_STATUS_CODES = {404: "not-found", 405: "method-not-allowed", 401: "unauthorized",
                 403: "forbidden", 409: "conflict", 503: "unavailable"}


def install_problem_handlers(app: FastAPI, dependencies: Sequence[Any] = ()) -> None:
    """The handlers, and /problems/{code} (its callers declared by `dependencies`)."""
    async def on_problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, Problem)
        response = problem_response(exc.status, exc.code, exc.title, exc.detail,
                                    instance=request.url.path, **exc.extensions)
        response.headers.update(exc.headers)
        return response

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return problem_response(422, "validation-error", "Request is not valid",
                                instance=request.url.path, errors=_field_errors(exc))

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = _STATUS_CODES.get(exc.status_code, "http-error")
        return problem_response(exc.status_code, code, str(exc.detail), instance=request.url.path)

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error", exc_info=exc, extra={"url": request.url.path})
        return problem_response(500, "internal-error", "Internal error", instance=request.url.path)

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_unexpected)

    @app.get("/problems/{code}", include_in_schema=False, response_class=HTMLResponse,
             dependencies=list(dependencies))
    async def describe_problem(code: str) -> HTMLResponse:
        if code not in PROBLEM_TYPES:
            raise Problem(404, "not-found", "Unknown problem type")
        return HTMLResponse(f"<h1>{code}</h1><p>{PROBLEM_TYPES[code]}</p>")
