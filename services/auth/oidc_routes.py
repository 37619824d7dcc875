"""The OpenID Connect provider's endpoints (services/auth/provider.py says what each does).

The authorization and logout endpoints are pages (routes.py). These answer machines in JSON,
errors as RFC 6749 section 5.2 asks (`error`, `error_description`), with `Cache-Control:
no-store`. Clients authenticate with `client_secret_basic` or `client_secret_post`.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any
from urllib.parse import parse_qsl, unquote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.engine import Connection, Row

from services.auth.deps import AuthDeps
from services.auth.provider import OAuthError
from shared.api import read_body
from shared.bearer import own_credential
from shared.ratelimit import client_address

FORM_LIMIT = 16_384  # bytes of a token request; more is not a token request

oidc = APIRouter(tags=["openid-connect"], dependencies=[own_credential(
    "OpenID Connect: public discovery and JWKS documents, OAuth client authentication (RFC 6749) on the rest")])


def get_deps(request: Request) -> AuthDeps:
    deps: AuthDeps = request.app.state.deps
    return deps


Deps = Annotated[AuthDeps, Depends(get_deps)]


def _json(body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers={"Cache-Control": "no-store", "Pragma": "no-cache",
                                                           **(headers or {})})


def _error(error: OAuthError) -> JSONResponse:
    headers = {"WWW-Authenticate": 'Basic realm="kindkans"'} if error.status == 401 else None
    return _json({"error": error.error, "error_description": error.description}, error.status, headers)


async def _form(request: Request) -> dict[str, str]:
    """The form of a token, introspection or revocation request (RFC 6749: urlencoded only)."""
    body = await read_body(request, FORM_LIMIT)
    if body is None:
        raise OAuthError("invalid_request", "The request is too large")
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        raise OAuthError("invalid_request", "The request must be application/x-www-form-urlencoded")
    try:
        return dict(parse_qsl(body.decode(), max_num_fields=50))
    except (UnicodeDecodeError, ValueError) as error:
        raise OAuthError("invalid_request", "The form cannot be read") from error


def _client_credentials(request: Request, form: dict[str, str]) -> tuple[str | None, str | None]:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("basic "):
        try:
            decoded = base64.b64decode(header[6:], validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None, None
        client_id, _, secret = decoded.partition(":")
        # RFC 6749 2.3.1: both are form-urlencoded inside the Basic header.
        return unquote(client_id), unquote(secret)
    return form.get("client_id"), form.get("client_secret")


def _authenticated(connection: Connection, deps: AuthDeps, request: Request, form: dict[str, str]) -> Row[Any]:
    client_id, secret = _client_credentials(request, form)
    return deps.service.provider.authenticate_client(connection, client_id, secret)


def _throttled(request: Request, deps: AuthDeps, limit: str = "token") -> JSONResponse | None:
    wait = deps.throttle.retry_after(limit, client_address(request, deps.proxies))
    if wait is None:
        return None
    return _json({"error": "slow_down", "error_description": "Too many requests from this address"}, 429,
                 {"Retry-After": str(wait)})


@oidc.get("/.well-known/openid-configuration")
def discovery(deps: Deps) -> JSONResponse:
    return JSONResponse(deps.service.provider.discovery())


@oidc.get("/oauth2/jwks")
def jwks(deps: Deps) -> JSONResponse:
    with deps.engine.begin() as connection:
        keys = deps.service.provider.jwks(connection)
    # Relying parties may cache the keys briefly; a rotated key is published well beyond that.
    return JSONResponse(keys, headers={"Cache-Control": "public, max-age=60"})


@oidc.post("/oauth2/token")
async def token(request: Request, deps: Deps) -> JSONResponse:
    if (throttled := _throttled(request, deps)) is not None:
        return throttled
    try:
        form = await _form(request)
    except OAuthError as error:
        return _error(error)
    refused: OAuthError | None = None
    with deps.engine.begin() as connection:
        try:
            client = _authenticated(connection, deps, request, form)
            answer = deps.service.provider.token(connection, client, form)
        except OAuthError as error:
            # Committed all the same: a refused exchange still spends its code, and a reused
            # refresh token still revokes its family.
            refused = error
    return _error(refused) if refused else _json(answer)


@oidc.post("/oauth2/introspect")
async def introspect(request: Request, deps: Deps) -> JSONResponse:
    """RFC 7662, for authenticated clients only."""
    if (throttled := _throttled(request, deps, "introspect")) is not None:
        return throttled
    try:
        form = await _form(request)
        with deps.engine.begin() as connection:
            _authenticated(connection, deps, request, form)
            return _json(deps.service.provider.introspect(connection, form.get("token", "")[:8000]))
    except OAuthError as error:
        return _error(error)


@oidc.post("/oauth2/revoke")
async def revoke(request: Request, deps: Deps) -> Response:
    """RFC 7009: 200 whether or not the token was known."""
    if (throttled := _throttled(request, deps)) is not None:
        return throttled
    try:
        form = await _form(request)
        with deps.engine.begin() as connection:
            client = _authenticated(connection, deps, request, form)
            deps.service.provider.revoke(connection, client, form.get("token", "")[:8000])
    except OAuthError as error:
        return _error(error)
    return _json({})


OIDC_ROUTERS = (oidc,)
