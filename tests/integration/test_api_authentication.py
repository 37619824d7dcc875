"""No API trusts its network: every route of every service declares who may call it, and every
route behind tokens refuses, from its own OpenAPI document, a missing, foreign, expired,
tampered or wrong-typed token (401) and a token without the scope or role it needs (403)."""

from __future__ import annotations

import re
import uuid

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient
from joserfc.jwk import ECKey

from services.access.api import create_app as access_app
from services.access.bootstrap import build as build_access
from services.access.settings import AccessSettings
from services.auth.api import create_app as auth_app
from services.auth.bootstrap import build as build_auth
from services.auth.settings import AuthSettings
from services.registry.api import create_app as registry_app
from services.registry.bootstrap import build as build_registry
from services.registry.settings import RegistrySettings
from services.retention.api import create_app as retention_app
from services.retention.bootstrap import build as build_retention
from services.retention.settings import RetentionSettings
from shared.bearer import DeclaredRoute, NoToken, Requirement, check_every_route_declares, declared_routes, requires
from tests.support import ACCESS_SCOPES, RETENTION_SCOPES, TOKENS, api_client, fg_headers

APPS = {"access": (access_app, build_access, AccessSettings), "auth": (auth_app, build_auth, AuthSettings),
        "registry": (registry_app, build_registry, RegistrySettings),
        "retention": (retention_app, build_retention, RetentionSettings)}
# Services with routes still open to the network, each declared `not-yet` with its reason: this
# may only shrink (README, "Who may call"). Behind tokens: access and retention.
NOT_YET: set[str] = set()
# Each service's outbox counts take its `<name>:outbox` scope (the access service's own token).
BEHIND_TOKENS = {"access": f"{ACCESS_SCOPES} access:outbox", "retention": f"{RETENTION_SCOPES} retention:outbox",
                 "registry": "registry:outbox", "auth": "auth:outbox"}
PUBLIC = {("GET", "/healthz"), ("GET", "/metrics")}


def app_of(name: str, tmp_path, master_key: str) -> FastAPI:
    create_app, build, settings_type = APPS[name]
    return create_app(build(settings_type(database_url=f"sqlite:///{tmp_path / f'{name}.sqlite'}",
                                          keystore_url=f"sqlite:///{tmp_path / 'keys.sqlite'}",
                                          master_key=master_key)))


def protected_routes(app: FastAPI) -> list[DeclaredRoute]:
    return [route for route in declared_routes(app) if isinstance(route.declaration, Requirement)]


def request_for(route: DeclaredRoute) -> tuple[str, str]:
    return route.method, re.sub(r"\{[^}]+\}", lambda _: str(uuid.uuid4()), route.path)


@pytest.mark.parametrize("name", sorted(APPS))
def test_every_route_of_every_service_declares_who_may_call_it(name, tmp_path, master_key):
    app = app_of(name, tmp_path, master_key)  # building it runs the check
    kinds = {route.declaration.kind if isinstance(route.declaration, NoToken) else "token"
             for route in declared_routes(app)}
    assert ("not-yet" in kinds) == (name in NOT_YET), kinds
    assert ("token" in kinds) == (name in BEHIND_TOKENS), kinds


def test_a_route_that_declares_nothing_does_not_start():
    declared, silent = APIRouter(dependencies=[requires("access:read")]), APIRouter(prefix="/v1")

    @declared.get("/v1/old")
    def old() -> dict:
        return {}

    @silent.get("/new")
    def new() -> dict:
        return {}

    app = FastAPI()
    app.state.routers = [declared]
    app.include_router(declared)
    check_every_route_declares(app)
    app.state.routers.append(silent)
    app.include_router(silent)
    with pytest.raises(RuntimeError, match="GET /v1/new"):
        check_every_route_declares(app)


@pytest.mark.parametrize("name", sorted(BEHIND_TOKENS))
def test_every_route_behind_tokens_refuses_a_caller_without_a_good_token(name, tmp_path, master_key):
    scopes = BEHIND_TOKENS[name]
    client = api_client(app_of(name, tmp_path, master_key), name, scopes)
    bare = TestClient(client.app)  # no default token: each request carries only its own headers
    routes = protected_routes(client.app)
    documented = {(method.upper(), path) for path, operations in client.app.openapi()["paths"].items()
                  for method in operations}
    without_token = {(r.method, r.path) for r in declared_routes(client.app) if isinstance(r.declaration, NoToken)}
    assert {(r.method, r.path) for r in routes} == documented - without_token
    if name in ("access", "retention"):  # the registry's door and the login take credentials of their own
        assert documented & without_token <= PUBLIC
    stranger = ECKey.generate_key("P-256", parameters={"kid": "test-key", "alg": "ES256"})
    refused = {
        "no token": {},
        "not bearer": {"Authorization": "Basic dXNlcjpwdw=="},
        "another API's": TOKENS.headers("svc", scopes, "access" if name == "registry" else "registry"),
        "expired": TOKENS.headers("svc", scopes, name, lifetime_s=-120),
        "signed by someone else": {"Authorization": "Bearer " + TOKENS.token("svc", scopes, name, key=stranger)},
        "another issuer's": TOKENS.headers("svc", scopes, name, iss="https://evil.example"),
        "garbage": {"Authorization": "Bearer not.a.token"},
    }
    for route in routes:
        method, path = request_for(route)
        for why, headers in refused.items():
            answer = bare.request(method, path, headers=headers, json={} if method != "GET" else None)
            assert answer.status_code == 401, (why, method, path, answer.text)
            assert answer.headers["content-type"] == "application/problem+json"
            assert answer.headers["www-authenticate"].startswith("Bearer")
        unscoped = bare.request(method, path, headers=TOKENS.headers("svc", "registry:read", name),
                                json={} if method != "GET" else None)
        assert unscoped.status_code == 403, (method, path, unscoped.text)
        if route.declaration.roles is not None:  # a person's act: a service's own token is not enough
            as_service = client.request(method, path, json={} if method != "GET" else None)
            assert as_service.status_code == 403 and "role" in as_service.json()["detail"], (method, path)


def test_every_retention_route_refuses_another_boards_fg_for_a_pupil_request_or_leak(tmp_path, master_key):
    """From the OpenAPI document: every route about one pupil, request or leak answers 403 to the
    FG of another school board (and to a teacher), before it reads a body; the FG of the pupil's
    own board gets past the rule (whatever the route then says of an empty body)."""
    from datetime import UTC, date, datetime

    from sqlalchemy import insert

    from services.retention import store
    from shared.contracts.events import ConsentGiver, SubjectRequestKind

    ours, theirs = uuid.uuid4(), uuid.uuid4()
    pupil, request, leak = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    client = api_client(app_of("retention", tmp_path, master_key), "retention", RETENTION_SCOPES)
    engine = client.app.state.deps.engine
    with engine.begin() as connection:
        connection.execute(insert(store.branches), [{"branch_id": str(ours), "bevoegd_gezag": "11111"},
                                                    {"branch_id": str(theirs), "bevoegd_gezag": "22222"}])
        connection.execute(insert(store.pupils).values(
            pupil_id=str(pupil), branch_id=str(ours), date_of_birth=date(2015, 1, 1), enrolled=True,
            has_swv_dossier=False, legal_hold=False))
        store.add_request(connection, request, pupil, str(ours), SubjectRequestKind.INSPECT, ConsentGiver.PARENT,
                          date(2026, 12, 1), date(2027, 1, 1))
        now = datetime.now(UTC)
        store.add_leak(connection, leak, nature="Lijst kwijt", consequences=None, measures=None, discovered_at=now,
                       registered_at=now, deadline=now, pupil_ids=[pupil], dossier_ids=[], staff_ids=[],
                       board="11111")
    ids = {"pupil_id": pupil, "request_id": request, "leak_id": leak}
    other_fg = fg_headers(uuid.uuid4(), theirs)
    teacher = TOKENS.headers(str(uuid.uuid4()), RETENTION_SCOPES, "retention", role="leerkracht",
                             branch_id=str(ours))
    own_fg = fg_headers(uuid.uuid4(), ours)
    checked = []
    for route in protected_routes(client.app):
        named = [name for name in ids if "{" + name + "}" in route.path]
        if not named:
            continue
        path = re.sub(r"\{([^}]+)\}", lambda m: str(ids.get(m.group(1), "photo_video")), route.path)
        body = {} if route.method != "GET" else None
        refused = client.request(route.method, path, headers=other_fg, json=body)
        assert refused.status_code == 403 and refused.json()["reason"] == "other-board", (route, refused.text)
        by_teacher = client.request(route.method, path, headers=teacher, json=body)
        asks_consent = (route.method, route.path) == ("GET", "/v1/pupils/{pupil_id}/consent/{purpose}")
        assert (by_teacher.status_code == 403) != asks_consent, (route, by_teacher.text)  # any colleague may ask
        allowed = client.request(route.method, path, headers=own_fg, json=body)
        assert allowed.status_code != 403, (route, allowed.text)
        checked.append(f"{route.method} {route.path}")
    assert len(checked) >= 14, checked


def test_an_id_token_is_no_access_token(tmp_path, master_key):
    from joserfc import jwt

    client = api_client(app_of("access", tmp_path, master_key), "access", ACCESS_SCOPES)
    claims = {"iss": TOKENS.ISSUER, "sub": "x", "aud": "access", "scope": ACCESS_SCOPES, "exp": 2**31}
    id_token = jwt.encode({"alg": "ES256", "typ": "JWT", "kid": "test-key"}, claims, TOKENS.key)
    answer = client.get("/v1/progress", headers={"Authorization": f"Bearer {id_token}"})
    assert answer.status_code == 401 and "at+jwt" in answer.json()["detail"]
    assert TestClient(client.app).get("/healthz").status_code == 200, "health checks take no token"


def test_a_verified_token_is_kept_only_until_it_expires():
    from shared.bearer import KeySource, TokenVerifier
    from shared.problems import Problem

    clock = [1_000_000.0]
    verifier = TokenVerifier(TOKENS.ISSUER, "access", KeySource.static(TOKENS.jwks()), now=lambda: clock[0])
    token = TOKENS.token("svc", ACCESS_SCOPES, "access", iat=int(clock[0]), exp=int(clock[0]) + 300)
    assert verifier.verify(token).subject == "svc"
    assert verifier.verify(token).subject == "svc", "kept: the same answer without a second check"
    clock[0] += 300 + 31  # past its expiry and the 30 s leeway
    with pytest.raises(Problem) as refused:
        verifier.verify(token)
    assert refused.value.status == 401
