"""The auth service's pages (Dutch, server-rendered) and its API for other services.

Tokens live only in HttpOnly, SameSite=Strict cookies (so other sites cannot post our forms with
them) and in the database as SHA-256 hashes. No secret is ever logged or put in a problem.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Annotated, Any
from uuid import UUID

import qrcode
import qrcode.image.svg
from fastapi import APIRouter, Cookie, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, Field
from sqlalchemy.exc import OperationalError

from services.auth.deps import AuthDeps
from shared.problems import Problem
from shared.ratelimit import client_address

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
ENROL_COOKIE, CHALLENGE_COOKIE, SESSION_COOKIE = "sv_enrol", "sv_challenge", "sv_session"


class IntrospectIn(BaseModel):
    token: str = Field(min_length=1, max_length=200)


class IntrospectionPublic(BaseModel):
    active: bool
    staff_id: UUID | None = None
    session_id: UUID | None = None
    username: str | None = None
    expires_at: str | None = None


def get_deps(request: Request) -> AuthDeps:
    deps: AuthDeps = request.app.state.deps
    return deps


Deps = Annotated[AuthDeps, Depends(get_deps)]
pages = APIRouter(include_in_schema=False)
api = APIRouter(prefix="/v1/sessions", tags=["sessions"])
ops = APIRouter(tags=["operations"])


def _page(request: Request, template: str, title: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    response = templates.TemplateResponse(request, template, {"title": title, **context}, status_code=status_code)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"  # invitation tokens live in the URL
    response.headers["X-Frame-Options"] = "DENY"
    return response


def _cookie(response: Response, deps: AuthDeps, name: str, value: str, path: str, max_age: int) -> None:
    response.set_cookie(name, value, max_age=max_age, path=path, httponly=True, samesite="strict",
                        secure=deps.settings.cookie_secure)


def _client(request: Request, deps: AuthDeps) -> str:
    return client_address(request, deps.proxies)


def _throttled(request: Request, deps: AuthDeps, template: str, title: str) -> Response | None:
    """The page that says "not now" when this address has tried too often, else None."""
    wait = deps.throttle.retry_after("login", _client(request, deps))
    if wait is None:
        return None
    response = _page(request, template, title, 429,
                     error=f"Te veel pogingen vanaf dit adres. Probeer het over {wait} seconden opnieuw.")
    response.headers["Retry-After"] = str(wait)
    return response


@pages.get("/uitnodiging/{invitation}")
def invitation_page(request: Request, invitation: str) -> HTMLResponse:
    return _page(request, "wachtwoord.html", "Wachtwoord instellen")


@pages.post("/uitnodiging/{invitation}")
def set_password(request: Request, invitation: str, deps: Deps, wachtwoord: Annotated[str, Form()],
                 herhaling: Annotated[str, Form()]) -> Response:
    if wachtwoord != herhaling:
        return _page(request, "wachtwoord.html", "Wachtwoord instellen", 422,
                     error="De twee wachtwoorden zijn niet gelijk.")
    with deps.engine.begin() as connection:
        enrolment, problem = deps.service.set_password(connection, invitation, wachtwoord)
    if enrolment is None:
        return _page(request, "wachtwoord.html", "Wachtwoord instellen", 422, error=problem)
    response = RedirectResponse("/tweestaps", status_code=303)
    _cookie(response, deps, ENROL_COOKIE, enrolment, "/tweestaps", 15 * 60)
    return response


@pages.get("/tweestaps")
def enrolment_page(request: Request, deps: Deps, sv_enrol: Annotated[str | None, Cookie()] = None) -> Response:
    with deps.engine.begin() as connection:
        enrolment = deps.service.start_enrolment(connection, sv_enrol) if sv_enrol else None
    if enrolment is None:
        return _page(request, "inloggen.html", "Inloggen", 401,
                     error="Uw koppelsessie is verlopen. Gebruik de link uit uw uitnodiging opnieuw of log in.")
    buffer = io.BytesIO()
    qrcode.make(enrolment.provisioning_uri, image_factory=qrcode.image.svg.SvgPathImage).save(buffer)
    svg = buffer.getvalue().decode()
    svg = svg[svg.index("<svg"):]
    return _page(request, "tweestaps.html", "Authenticator-app koppelen", qr_svg=svg, secret=enrolment.secret,
                 username=enrolment.username)


@pages.get("/koppelen/{enrolment}")
def resume_enrolment(enrolment: str, deps: Deps) -> Response:
    """The mailed link that resumes a half-finished enrolment: its token becomes the cookie of
    the enrolment page (checked there)."""
    response = RedirectResponse("/tweestaps", status_code=303)
    response.headers["Referrer-Policy"] = "no-referrer"
    _cookie(response, deps, ENROL_COOKIE, enrolment[:100], "/tweestaps", 15 * 60)
    return response


@pages.post("/tweestaps")
def finish_enrolment(request: Request, deps: Deps, code: Annotated[str, Form()],
                     sv_enrol: Annotated[str | None, Cookie()] = None) -> Response:
    if (throttled := _throttled(request, deps, "inloggen.html", "Koppelen")) is not None:
        return throttled
    with deps.engine.begin() as connection:
        codes = deps.service.finish_enrolment(connection, sv_enrol, code) if sv_enrol else None
    if codes is None:
        return _page(request, "inloggen.html", "Koppelen mislukt", 422,
                     error="De code klopt niet. Open de koppelpagina opnieuw (/tweestaps) en probeer het nog eens.")
    response = _page(request, "herstelcodes.html", "Uw herstelcodes", codes=codes)
    response.delete_cookie(ENROL_COOKIE, path="/tweestaps")
    return response


@pages.get("/inloggen")
def login_page(request: Request, uitgelogd: bool = False) -> HTMLResponse:
    return _page(request, "inloggen.html", "Inloggen", notice="U bent uitgelogd." if uitgelogd else None)


@pages.post("/inloggen")
def login(request: Request, deps: Deps, gebruikersnaam: Annotated[str, Form(max_length=320)],
          wachtwoord: Annotated[str, Form(max_length=256)]) -> Response:
    if (throttled := _throttled(request, deps, "inloggen.html", "Inloggen")) is not None:
        return throttled
    with deps.engine.begin() as connection:
        result = deps.service.login_password(connection, gebruikersnaam, wachtwoord, _client(request, deps))
    if not result.ok or result.token is None:
        return _page(request, "inloggen.html", "Inloggen", 401, error=result.message)
    response = RedirectResponse("/inloggen/code", status_code=303)
    _cookie(response, deps, CHALLENGE_COOKIE, result.token, "/inloggen/code", 5 * 60)
    return response


@pages.get("/inloggen/code")
def code_page(request: Request) -> HTMLResponse:
    return _page(request, "code.html", "Code invoeren")


@pages.post("/inloggen/code")
def login_code(request: Request, deps: Deps, code: Annotated[str, Form(max_length=40)],
               sv_challenge: Annotated[str | None, Cookie()] = None) -> Response:
    if not sv_challenge:
        return _page(request, "inloggen.html", "Inloggen", 401, error="Log eerst in met uw wachtwoord.")
    if (throttled := _throttled(request, deps, "code.html", "Code invoeren")) is not None:
        return throttled
    with deps.engine.begin() as connection:
        result = deps.service.login_code(connection, sv_challenge, code, _client(request, deps))
    if not result.ok or result.token is None:
        return _page(request, "code.html", "Code invoeren", 401, error=result.message)
    response = RedirectResponse("/account", status_code=303)
    response.delete_cookie(CHALLENGE_COOKIE, path="/inloggen/code")
    _cookie(response, deps, SESSION_COOKIE, result.token, "/", 12 * 3600)
    return response


@pages.get("/account")
def account(request: Request, deps: Deps, sv_session: Annotated[str | None, Cookie()] = None) -> Response:
    with deps.engine.begin() as connection:
        session = deps.service.introspect(connection, sv_session) if sv_session else {"active": False}
    if not session["active"]:
        return RedirectResponse("/inloggen", status_code=303)
    return _page(request, "account.html", "Kindkans", username=session["username"])


@pages.post("/uitloggen")
def logout_page(deps: Deps, sv_session: Annotated[str | None, Cookie()] = None) -> Response:
    if sv_session:
        with deps.engine.begin() as connection:
            deps.service.logout(connection, sv_session)
    response = RedirectResponse("/inloggen?uitgelogd=true", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@api.post("/introspect", response_model=IntrospectionPublic, response_model_exclude_none=True)
def introspect(body: IntrospectIn, deps: Deps) -> IntrospectionPublic:
    """For other services: is this session token active, and whose is it? Fails closed."""
    try:
        with deps.engine.begin() as connection:
            return IntrospectionPublic(**deps.service.introspect(connection, body.token))
    except OperationalError as error:
        raise Problem(503, "unavailable", "The auth database is unavailable") from error


@api.post("/logout", status_code=204)
def logout(body: IntrospectIn, deps: Deps) -> None:
    with deps.engine.begin() as connection:
        deps.service.logout(connection, body.token)


@pages.get("/")
def home() -> RedirectResponse:
    return RedirectResponse("/inloggen", status_code=303)


ROUTERS = (pages, api, ops)
