"""The auth service's pages (Dutch, server-rendered) and its API for other services.

Tokens live only in HttpOnly, SameSite=Strict cookies (so other sites cannot post our forms with
them) and in the database as SHA-256 hashes. No secret is ever logged or put in a problem.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import qrcode
import qrcode.image.svg
from fastapi import APIRouter, Cookie, Depends, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, Field
from sqlalchemy.engine import Connection

from services.auth.deps import AuthDeps
from services.auth.oidc_routes import OIDC_ROUTERS
from services.auth.provider import AuthorizationRefused
from shared import dutch
from shared.api import read_body
from shared.bearer import own_credential, public
from shared.ratelimit import client_address

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
ENROL_COOKIE, CHALLENGE_COOKIE, SESSION_COOKIE = "sv_enrol", "sv_challenge", "sv_session"
NEXT_COOKIE = "sv_next"  # where the login pages send the browser after a login (our own path only)
AUTHORIZE_PATH = "/oauth2/authorize?"


class SessionTokenIn(BaseModel):
    token: str = Field(min_length=1, max_length=200)


def get_deps(request: Request) -> AuthDeps:
    deps: AuthDeps = request.app.state.deps
    return deps


Deps = Annotated[AuthDeps, Depends(get_deps)]
# The provider's own pages and endpoints take no bearer token: they are where people and
# clients prove who they are.
pages = APIRouter(include_in_schema=False, dependencies=[own_credential(
    "the login pages: password and second factor, then the session cookie (admins' pages check it)")])
api = APIRouter(prefix="/v1/sessions", tags=["sessions"], dependencies=[own_credential(
    "the session token it ends is the credential")])
ops = APIRouter(tags=["operations"], dependencies=[public("operational counts, no personal data")])
disclosure = APIRouter(include_in_schema=False, dependencies=[public("responsible disclosure: who to tell")])


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
               sv_challenge: Annotated[str | None, Cookie()] = None,
               sv_next: Annotated[str | None, Cookie()] = None) -> Response:
    if not sv_challenge:
        return _page(request, "inloggen.html", "Inloggen", 401, error="Log eerst in met uw wachtwoord.")
    if (throttled := _throttled(request, deps, "code.html", "Code invoeren")) is not None:
        return throttled
    with deps.engine.begin() as connection:
        result = deps.service.login_code(connection, sv_challenge, code, _client(request, deps))
    if not result.ok or result.token is None:
        return _page(request, "code.html", "Code invoeren", 401, error=result.message)
    # Back to the relying party that sent the user here, if one did (only to our own endpoint).
    back = sv_next if sv_next and sv_next.startswith(AUTHORIZE_PATH) else "/account"
    response = RedirectResponse(back, status_code=303)
    response.delete_cookie(CHALLENGE_COOKIE, path="/inloggen/code")
    response.delete_cookie(NEXT_COOKIE, path="/")
    _cookie(response, deps, SESSION_COOKIE, result.token, "/", 12 * 3600)
    return response


@pages.get("/account")
def account(request: Request, deps: Deps, sv_session: Annotated[str | None, Cookie()] = None) -> Response:
    with deps.engine.begin() as connection:
        session = deps.service.introspect(connection, sv_session) if sv_session else {"active": False}
    if not session["active"]:
        return RedirectResponse("/inloggen", status_code=303)
    with deps.engine.connect() as connection:
        passkeys = [{"name": row.name, "credential_id": row.credential_id, "created": dutch.day(row.created_at),
                     "used": dutch.moment(row.last_used_at) if row.last_used_at else None}
                    for row in deps.service.passkeys(connection, str(session["staff_id"]))]
    return _page(request, "account.html", "Kindkans", username=session["username"], passkeys=passkeys)


# --- passkeys ---------------------------------------------------------------------------------

JSON_LIMIT = 16_384  # bytes of a WebAuthn answer; more is not one


async def _json_body(request: Request) -> dict[str, Any] | None:
    body = await read_body(request, JSON_LIMIT)
    if body is None:
        return None
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) and isinstance(parsed.get("credential"), dict) else None


def _session_staff(deps: AuthDeps, sv_session: str | None) -> str | None:
    if not sv_session:
        return None
    with deps.engine.begin() as connection:
        session = deps.service.introspect(connection, sv_session)
    return str(session["staff_id"]) if session["active"] else None


def _answer(body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers={"Cache-Control": "no-store", **(headers or {})})


@pages.post("/passkeys/opties")
def passkey_registration_options(deps: Deps, sv_session: Annotated[str | None, Cookie()] = None) -> Response:
    staff_id = _session_staff(deps, sv_session)
    if staff_id is None:
        return _answer({"message": "U bent niet ingelogd."}, 401)
    with deps.engine.begin() as connection:
        options = deps.service.passkey_registration_options(connection, staff_id)
    return Response(options, media_type="application/json", headers={"Cache-Control": "no-store"})


@pages.post("/passkeys")
async def register_passkey(request: Request, deps: Deps,
                           sv_session: Annotated[str | None, Cookie()] = None) -> Response:
    staff_id = _session_staff(deps, sv_session)
    if staff_id is None:
        return _answer({"message": "U bent niet ingelogd."}, 401)
    body = await _json_body(request)
    with deps.engine.begin() as connection:
        registered = body is not None and deps.service.register_passkey(connection, staff_id, body["credential"],
                                                                         str(body.get("name", "Passkey")))
    if not registered:
        return _answer({"message": "De passkey kon niet worden gekoppeld."}, 422)
    return _answer({}, 201)


@pages.post("/passkeys/verwijderen")
def remove_passkey(deps: Deps, credential_id: Annotated[str, Form(max_length=1400)],
                   sv_session: Annotated[str | None, Cookie()] = None) -> Response:
    staff_id = _session_staff(deps, sv_session)
    if staff_id is None:
        return RedirectResponse("/inloggen", status_code=303)
    with deps.engine.begin() as connection:
        deps.service.remove_passkey(connection, staff_id, credential_id)
    return RedirectResponse("/account", status_code=303)


@pages.post("/inloggen/code/passkey-opties")
def passkey_login_options(request: Request, deps: Deps,
                          sv_challenge: Annotated[str | None, Cookie()] = None) -> Response:
    if (wait := deps.throttle.retry_after("login", _client(request, deps))) is not None:
        return _answer({"message": "Te veel pogingen vanaf dit adres."}, 429, {"Retry-After": str(wait)})
    with deps.engine.begin() as connection:
        options = deps.service.passkey_login_options(connection, sv_challenge) if sv_challenge else None
    if options is None:
        return _answer({"message": "Voor dit account is geen passkey gekoppeld, of de inlogpoging is verlopen."},
                       404)
    return Response(options, media_type="application/json", headers={"Cache-Control": "no-store"})


@pages.post("/inloggen/code/passkey")
async def login_passkey(request: Request, deps: Deps, sv_challenge: Annotated[str | None, Cookie()] = None,
                        sv_next: Annotated[str | None, Cookie()] = None) -> Response:
    if (wait := deps.throttle.retry_after("login", _client(request, deps))) is not None:
        return _answer({"message": "Te veel pogingen vanaf dit adres."}, 429, {"Retry-After": str(wait)})
    body = await _json_body(request)
    if not sv_challenge or body is None:
        return _answer({"message": "Log eerst in met uw wachtwoord."}, 401)
    with deps.engine.begin() as connection:
        result = deps.service.login_passkey(connection, sv_challenge, body["credential"], _client(request, deps))
    if not result.ok or result.token is None:
        return _answer({"message": result.message}, 401)
    back = sv_next if sv_next and sv_next.startswith(AUTHORIZE_PATH) else "/account"
    response = _answer({"redirect": back})
    response.delete_cookie(CHALLENGE_COOKIE, path="/inloggen/code")
    response.delete_cookie(NEXT_COOKIE, path="/")
    _cookie(response, deps, SESSION_COOKIE, result.token, "/", 12 * 3600)
    return response


@pages.post("/uitloggen")
def logout_page(deps: Deps, sv_session: Annotated[str | None, Cookie()] = None) -> Response:
    if sv_session:
        with deps.engine.begin() as connection:
            deps.service.logout(connection, sv_session)
    response = RedirectResponse("/inloggen?uitgelogd=true", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@api.post("/logout", status_code=204)
def logout(body: SessionTokenIn, deps: Deps) -> None:
    with deps.engine.begin() as connection:
        deps.service.logout(connection, body.token)


@pages.get("/oauth2/authorize")
def authorize(request: Request, deps: Deps, sv_session: Annotated[str | None, Cookie()] = None) -> Response:
    params = {key: value[:2000] for key, value in request.query_params.items()}
    provider = deps.service.provider
    with deps.engine.begin() as connection:
        asked = provider.authorization_request(connection, params)
        if isinstance(asked, AuthorizationRefused):
            if asked.redirect:
                return RedirectResponse(asked.redirect, status_code=303)
            return _page(request, "inloggen.html", "Inloggen", 400, error=asked.description)
        session = deps.service.introspect(connection, sv_session) if sv_session else {"active": False}
        if session["active"] and asked.prompt != "login":
            return RedirectResponse(provider.issue_code(connection, asked, str(session["session_id"]),
                                                        str(session["staff_id"])), status_code=303)
    if asked.prompt == "none":
        return RedirectResponse(provider.refused_login_required(asked), status_code=303)
    response = RedirectResponse("/inloggen", status_code=303)
    # Back here after the login; the cookie holds our own path only (no open redirect).
    back = request.url.path + "?" + request.url.query
    response.set_cookie(NEXT_COOKIE, back[:4000], max_age=15 * 60, path="/", httponly=True, samesite="lax",
                        secure=deps.settings.cookie_secure)
    if asked.prompt == "login" and sv_session:
        response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@pages.get("/oauth2/logout")
def end_session(deps: Deps, id_token_hint: str | None = None, post_logout_redirect_uri: str | None = None,
                state: str | None = None, sv_session: Annotated[str | None, Cookie()] = None) -> Response:
    """RP-initiated logout 1.0: the browser's session ends (and the one the ID token names);
    back to the client only at a URI registered for it."""
    with deps.engine.begin() as connection:
        session_id, redirect = deps.service.provider.logout_redirect(
            connection, (id_token_hint or "")[:8000] or None, post_logout_redirect_uri, (state or "")[:500] or None)
        if sv_session:
            deps.service.logout(connection, sv_session)
        if session_id:
            deps.service.end_session(connection, session_id)
    response = RedirectResponse(redirect or "/inloggen?uitgelogd=true", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# --- SWV admins: four-eyes factor resets and re-invitations ----------------------------------

def _admin(deps: AuthDeps, sv_session: str | None) -> str | None:
    """The staff id of the logged-in admin behind the session cookie, else None."""
    if not sv_session:
        return None
    with deps.engine.begin() as connection:
        session = deps.service.introspect(connection, sv_session)
        if session["active"] and deps.service.is_admin(connection, str(session["staff_id"])):
            return str(session["staff_id"])
    return None


def _admin_page(request: Request, deps: AuthDeps, admin: str, status_code: int = 200, **context: Any) -> Response:
    with deps.engine.connect() as connection:
        pending = [{"reset_id": row.reset_id, "username": row.username, "requested": dutch.moment(row.requested_at),
                    "mine": row.requested_by == admin} for row in deps.service.pending_resets(connection)]
    return _page(request, "beheer.html", "Beheer van inlogaccounts", status_code, pending=pending, **context)


def _not_admin(request: Request) -> Response:
    return _page(request, "inloggen.html", "Inloggen", 403,
                 error="Deze pagina is alleen voor beheerders van het samenwerkingsverband. Log in als beheerder.")


@pages.get("/beheer")
def admin_page(request: Request, deps: Deps, sv_session: Annotated[str | None, Cookie()] = None) -> Response:
    admin = _admin(deps, sv_session)
    return _admin_page(request, deps, admin) if admin else _not_admin(request)


def _admin_action(request: Request, deps: AuthDeps, sv_session: str | None,
                  act: Callable[[Connection, str], tuple[object, str]]) -> Response:
    """An admin's action: only for a logged-in admin (the acting admin is the session's, never
    a form field); the page again, with what came of it."""
    if (throttled := _throttled(request, deps, "inloggen.html", "Beheer van inlogaccounts")) is not None:
        return throttled
    admin = _admin(deps, sv_session)
    if admin is None:
        return _not_admin(request)
    with deps.engine.begin() as connection:
        done, message = act(connection, admin)
    if not done:
        return _admin_page(request, deps, admin, 422, error=message)
    return _admin_page(request, deps, admin, notice=message)


@pages.post("/beheer/herstel")
def request_reset(request: Request, deps: Deps, gebruikersnaam: Annotated[str, Form(max_length=320)],
                  reden: Annotated[str, Form(min_length=10, max_length=500)],
                  sv_session: Annotated[str | None, Cookie()] = None) -> Response:
    return _admin_action(request, deps, sv_session,
                         lambda connection, admin: deps.service.request_reset(connection, admin, gebruikersnaam, reden))


@pages.post("/beheer/herstel/{reset_id}")
def approve_reset(request: Request, reset_id: str, deps: Deps,
                  sv_session: Annotated[str | None, Cookie()] = None) -> Response:
    return _admin_action(request, deps, sv_session,
                         lambda connection, admin: deps.service.approve_reset(connection, admin, reset_id))


@pages.post("/beheer/uitnodigen")
def reinvite(request: Request, deps: Deps, gebruikersnaam: Annotated[str, Form(max_length=320)],
             sv_session: Annotated[str | None, Cookie()] = None) -> Response:
    return _admin_action(request, deps, sv_session,
                         lambda connection, admin: deps.service.reinvite(connection, admin, gebruikersnaam))


@pages.get("/")
def home() -> RedirectResponse:
    return RedirectResponse("/inloggen", status_code=303)


@disclosure.get("/.well-known/security.txt", response_class=PlainTextResponse)
def security_txt(deps: Deps) -> PlainTextResponse:
    """RFC 9116: where to report a vulnerability, in English and Dutch, valid for a while."""
    settings = deps.settings
    expires = deps.clock.now() + timedelta(days=settings.security_txt_valid_days)
    base = settings.auth_url.rstrip("/")
    lines = [f"Contact: {settings.security_contact}", f"Contact: {settings.privacy_officer_contact}",
             f"Expires: {expires.strftime('%Y-%m-%dT%H:%M:%SZ')}", "Preferred-Languages: nl, en",
             f"Canonical: {base}/.well-known/security.txt", f"Policy: {base}/beveiliging"]
    return PlainTextResponse("\n".join(lines) + "\n", headers={"Cache-Control": "max-age=86400"})


@disclosure.get("/beveiliging", response_class=HTMLResponse)
def disclosure_page(request: Request, deps: Deps) -> HTMLResponse:
    settings = deps.settings
    return _page(request, "beveiliging.html", "Een kwetsbaarheid melden",
                 security=settings.security_contact.removeprefix("mailto:"),
                 privacy_officer=settings.privacy_officer_contact.removeprefix("mailto:"))


ROUTERS = (pages, api, ops, disclosure, *OIDC_ROUTERS)
