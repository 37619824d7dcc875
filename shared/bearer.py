"""Who is calling: bearer tokens from our OpenID Connect provider, checked locally, and the one
place where a route says what its caller needs.

An API trusts no network: every route declares either `requires(...)` (scopes, and optionally
that the caller is a person with one of some roles) or why it takes no token (`NoToken`), and
`service_app` refuses to build an app with a route that declares neither
(`check_every_route_declares`). A
token is an RFC 9068 JWT access token (`typ` at+jwt) signed ES256 by the provider: signature
against the provider's JWKS (fetched once, again only for a key id not seen yet, at most every
`refetch_after_s`), issuer, audience (the API's resource name; the provider puts it in `aud`
for every scope `<resource>:...` it grants), expiry. The acting person comes from the token's
`sub` when the token is a person's (it carries `role`); a service's own token (client
credentials) has the client as subject and no role.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

import httpx
from fastapi import Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.routing import APIRoute
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from starlette.types import ASGIApp, Receive, Scope, Send

from shared.contracts.events import ActedBy
from shared.problems import Problem, problem_response

ALGORITHMS = ["ES256"]
LEEWAY_S = 30


@dataclass(frozen=True)
class Caller:
    """The verified caller of one request."""

    subject: str  # a staff id for a person, the client id for a service
    client_id: str
    scopes: frozenset[str]
    role: str | None = None  # set for a person's token only
    branch_id: str | None = None
    # The service acting for the person (RFC 8693 `act`): set when a client exchanged the
    # person's token for one of its own, e.g. the Kindkans backend calling for an IB'er.
    acting_client: str | None = None

    @property
    def is_person(self) -> bool:
        return self.role is not None

    def acted_by(self) -> ActedBy:
        """Who did it, with which client, on whose behalf (NEN 7513), for the event it causes."""
        return ActedBy(actor=self.subject if self.is_person else f"client:{self.client_id}",
                       client=self.acting_client or self.client_id,
                       on_behalf_of=self.subject if self.acting_client and self.is_person else None)


class KeySource:
    """The provider's signing keys, by key id: fetched from its JWKS when a token names a key
    not seen yet (a rotation), never more often than every `refetch_after_s` (so that tokens
    with made-up key ids cannot make us hammer the provider)."""

    def __init__(self, fetch: Callable[[], dict[str, Any]], refetch_after_s: float = 1.0) -> None:
        self._fetch = fetch
        self._refetch_after_s = refetch_after_s
        self._lock = threading.Lock()
        self._keys: KeySet | None = None
        self._kids: set[str] = set()
        self._fetched_at = -float("inf")

    @classmethod
    def from_url(cls, jwks_url: str, timeout_s: float = 2.0) -> KeySource:
        return cls(lambda: httpx.get(jwks_url, timeout=timeout_s).raise_for_status().json())

    @classmethod
    def static(cls, jwks: dict[str, Any]) -> KeySource:
        return cls(lambda: jwks)

    def _must_fetch(self, kid: str | None) -> bool:
        return self._keys is None or (kid not in self._kids
                                      and time.monotonic() - self._fetched_at >= self._refetch_after_s)

    def cached(self, kid: str | None) -> KeySet | None:
        """The keys without any fetch: None when `keys_for` would fetch first."""
        with self._lock:
            return None if self._must_fetch(kid) else self._keys

    def keys_for(self, kid: str | None) -> KeySet | None:
        with self._lock:
            if self._must_fetch(kid):
                try:
                    document = self._fetch()
                except (httpx.HTTPError, ValueError):
                    document = None
                self._fetched_at = time.monotonic()
                if document is not None:
                    self._keys = KeySet.import_key_set(document)  # type: ignore[arg-type]
                    self._kids = {str(key.get("kid")) for key in document.get("keys", [])}
            return self._keys


class TokenVerifier:
    # Verified tokens, kept until they expire: a client sends the same token for its 5 minutes,
    # and an ES256 check is most of the cost per request (bench/token_check.py). Bounded; the
    # oldest goes first. Only tokens that passed every check are kept, with their expiry.
    CACHE_SIZE = 4096

    def __init__(self, issuer: str, audience: str, keys: KeySource, now: Callable[[], float] = time.time) -> None:
        self.issuer = issuer.rstrip("/")
        self.audience = audience
        self._keys = keys
        self._now = now
        self._verified: dict[str, tuple[Caller, float]] = {}

    def verify(self, token: str, fetch: bool = True) -> Caller:
        """The caller the token names, or a 401 problem saying what is wrong (never the token).
        With fetch=False, raises KeysNeeded instead of fetching the provider's keys."""
        known = self._verified.get(token)
        if known is not None and known[1] > self._now():
            return known[0]
        caller, expires_at = self._check(token, fetch)
        if len(self._verified) >= self.CACHE_SIZE:
            self._verified.pop(next(iter(self._verified)), None)
        self._verified[token] = (caller, expires_at)
        return caller

    def _check(self, token: str, fetch: bool) -> tuple[Caller, float]:
        if len(token) > 8192 or token.count(".") != 2:
            raise unauthorized("not a JWT access token")
        try:
            header = jws.extract_compact(token.encode()).protected
        except (JoseError, ValueError) as error:
            raise unauthorized("not a JWT access token") from error
        if header.get("typ") != "at+jwt" or header.get("alg") not in ALGORITHMS:
            raise unauthorized("not an access token (typ at+jwt, ES256)")
        keys = self._keys.keys_for(header.get("kid")) if fetch else self._keys.cached(header.get("kid"))
        if keys is None and not fetch:
            raise KeysNeeded
        if keys is None:
            raise Problem(503, "unavailable", "The provider's signing keys cannot be fetched")
        try:
            claims = jwt.decode(token, keys, algorithms=ALGORITHMS).claims
            jwt.JWTClaimsRegistry(now=int(self._now()), leeway=LEEWAY_S,
                                  iss={"essential": True, "value": self.issuer},
                                  exp={"essential": True}).validate(claims)
        except (JoseError, ValueError) as error:
            raise unauthorized("the token's signature, issuer or expiry is not valid") from error
        audiences = claims.get("aud")
        if self.audience not in (audiences if isinstance(audiences, list) else [audiences]):
            raise unauthorized(f"the token is not meant for {self.audience}")
        role = claims.get("role")
        act = claims.get("act")
        caller = Caller(subject=str(claims.get("sub", "")), client_id=str(claims.get("client_id", "")),
                        scopes=frozenset(str(claims.get("scope", "")).split()),
                        role=str(role) if role else None,
                        branch_id=str(claims["branch_id"]) if claims.get("branch_id") else None,
                        acting_client=str(act["sub"]) if isinstance(act, dict) and act.get("sub") else None)
        return caller, float(claims["exp"]) + LEEWAY_S


class ClientCredentials:
    """A service's own access token (client credentials) for calling other services' APIs: asked
    of the provider once, kept until a minute before it expires. None when it cannot be had, so
    the caller fails closed (a token is good for 5 minutes: a provider that is away longer than
    that stops the calls that need one)."""

    RENEW_BEFORE_S = 60

    def __init__(self, token_url: str, client_id: str, client_secret: str, scope: str,
                 timeout_s: float = 2.0, now: Callable[[], float] = time.time) -> None:
        self._url = token_url
        self._auth = (client_id, client_secret)
        self._scope = scope
        self._timeout_s = timeout_s
        self._now = now
        self._lock = threading.Lock()
        self._token: tuple[str, float] | None = None

    def token(self) -> str | None:
        with self._lock:
            if self._token is None or self._token[1] - self.RENEW_BEFORE_S <= self._now():
                try:
                    answer = httpx.post(self._url, data={"grant_type": "client_credentials", "scope": self._scope},
                                        auth=self._auth, timeout=self._timeout_s).raise_for_status().json()
                    self._token = (str(answer["access_token"]), self._now() + float(answer["expires_in"]))
                except (httpx.HTTPError, ValueError, KeyError):
                    return self._token[0] if self._token and self._token[1] > self._now() else None
            return self._token[0]


class KeysNeeded(Exception):
    """The token's key is not cached: verify again with fetch=True, off the event loop."""


def unauthorized(detail: str) -> Problem:
    return Problem(401, "unauthorized", "A valid bearer token is required", detail=detail,
                   headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})


@dataclass(frozen=True)
class Requirement:
    """What a route's caller needs: every one of `scopes`; with `roles`, a person's token with
    one of them. The caller is on `request.state.caller` for the route (`current_caller`)."""

    scopes: frozenset[str]
    roles: frozenset[str] | None = None

    async def __call__(self, request: Request) -> Caller:
        verifier: TokenVerifier = request.app.state.verifier
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Problem(401, "unauthorized", "A valid bearer token is required", detail="no bearer token",
                          headers={"WWW-Authenticate": "Bearer"})
        # On the event loop (0.1 ms of ES256) when the keys are cached; a fetch of the provider's
        # keys (a new key id) blocks, so it goes to a worker thread.
        try:
            caller = verifier.verify(token.strip(), fetch=False)
        except KeysNeeded:
            caller = await run_in_threadpool(verifier.verify, token.strip())
        missing = sorted(self.scopes - caller.scopes)
        if missing:
            raise Problem(403, "forbidden", "The token lacks a scope this needs", detail=f"missing scope {missing[0]}",
                          headers={"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{missing[0]}"'})
        if self.roles is not None and caller.role not in self.roles:
            raise Problem(403, "forbidden", "Only some roles may do this",
                          detail="a person's token with role " + " or ".join(sorted(self.roles)))
        request.state.caller = caller
        return caller


@dataclass(frozen=True)
class NoToken:
    """A route that takes no bearer token, and why: `public` (health checks, discovery
    documents), `own-credential` (it authenticates its caller another way: a school system's
    API key, the login pages' password and second factor, OAuth client authentication), or
    `not-yet` (an API not yet behind tokens: listed in the README, to go)."""

    kind: Literal["public", "own-credential", "not-yet"]
    reason: str

    async def __call__(self) -> None:  # async: no worker thread for a declaration that checks nothing
        return None


def requires(*scopes: str, roles: Iterable[str] | None = None) -> Any:
    """For a route's or router's `dependencies=[...]`: the one declaration of what its caller needs."""
    return Depends(Requirement(frozenset(scopes), frozenset(roles) if roles is not None else None))


def public(reason: str) -> Any:
    return Depends(NoToken("public", reason))


def own_credential(reason: str) -> Any:
    return Depends(NoToken("own-credential", reason))


def not_yet_behind_tokens(reason: str) -> Any:
    return Depends(NoToken("not-yet", reason))


def current_caller(request: Request) -> Caller:
    """The caller the route's `requires` verified."""
    caller: Caller = request.state.caller
    return caller


@dataclass(frozen=True)
class DeclaredRoute:
    method: str
    path: str
    declaration: Requirement | NoToken | None


def _declaration(dependencies: Iterable[Any]) -> Requirement | NoToken | None:
    for dependency in dependencies:
        if isinstance(getattr(dependency, "dependency", None), Requirement | NoToken):
            return dependency.dependency  # type: ignore[no-any-return]
    return None


def declared_routes(app: FastAPI) -> list[DeclaredRoute]:
    """Every route of the app with what it declares: the routers `service_app` included (their
    own `dependencies` count for each of their routes) and routes added to the app itself."""
    found: list[DeclaredRoute] = []
    for router in getattr(app.state, "routers", ()):
        for route in router.routes:
            if isinstance(route, APIRoute):
                declaration = _declaration([*router.dependencies, *route.dependencies])
                found += [DeclaredRoute(method, route.path, declaration)
                          for method in sorted(route.methods or ())]
    for route in app.router.routes:
        if isinstance(route, APIRoute):
            found += [DeclaredRoute(method, route.path, _declaration(route.dependencies))
                      for method in sorted(route.methods or ())]
    return found


def check_every_route_declares(app: FastAPI) -> None:
    """Refuse an app with a route that says nothing about its callers: a new route cannot be
    open by accident."""
    silent = [f"{route.method} {route.path}" for route in declared_routes(app) if route.declaration is None]
    if silent:
        raise RuntimeError(f"routes without requires(...) or a NoToken reason: {', '.join(silent)}")


class BearerFirst:
    """ASGI middleware: a request for a route behind tokens is refused (401) when its token is
    missing or not valid before the app reads its body: FastAPI parses a JSON body before it
    runs a route's dependencies, so an unauthenticated caller would otherwise get its JSON
    judged (a 422) first. The route's own `requires` still checks scopes and roles."""

    def __init__(self, app: ASGIApp, service: FastAPI) -> None:
        self.app = app
        self._service = service
        self._protected: list[tuple[str, re.Pattern[str]]] | None = None

    def _routes(self) -> list[tuple[str, re.Pattern[str]]]:
        if self._protected is None:
            self._protected = [(route.method, re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", route.path) + "$"))
                               for route in declared_routes(self._service)
                               if isinstance(route.declaration, Requirement)]
        return self._protected

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and any(method == scope["method"] and pattern.match(scope["path"])
                                           for method, pattern in self._routes()):
            request = Request(scope)
            try:
                await Requirement(frozenset())(request)
            except Problem as problem:
                response = problem_response(problem.status, problem.code, problem.title, problem.detail,
                                            instance=scope["path"])
                response.headers.update(problem.headers)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
