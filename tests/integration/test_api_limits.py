"""Limits before work, on every API: a body over the limit is refused before it is read, an
`after_event` that is no event id is refused at once, and only so many requests may wait for
the state to catch up (each holds a worker thread)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

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
from tests.support import ACCESS_SCOPES, TOKENS, api_client, wait_until

LIMIT = 64 * 1024
DOSSIER = uuid.uuid4()

# Each API with a route that takes a body.
APIS: dict[str, tuple[Callable[..., FastAPI], Callable[..., object], type, str]] = {
    "access": (access_app, build_access, AccessSettings, f"/v1/dossiers/{DOSSIER}/views"),
    "registry": (registry_app, build_registry, RegistrySettings, "/v1/mutations"),
    "auth": (auth_app, build_auth, AuthSettings, "/v1/sessions/logout"),
    "retention": (retention_app, build_retention, RetentionSettings, "/v1/leaks"),
}


def client_for(name: str, tmp_path, master_key: str, **settings: object) -> TestClient:
    create_app, build, settings_type, _ = APIS[name]
    deps = build(settings_type(database_url=f"sqlite:///{tmp_path / f'{name}.sqlite'}",
                               keystore_url=f"sqlite:///{tmp_path / 'keys.sqlite'}", master_key=master_key,
                               api_max_body_bytes=LIMIT, **settings))
    if name == "access":  # behind tokens: a service's, as the Kindkans backend sends
        return api_client(create_app(deps), "access", ACCESS_SCOPES, base_url="http://127.0.0.1")
    return TestClient(create_app(deps), base_url="http://127.0.0.1")


def chunks(total: int, size: int = 16 * 1024) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        part = min(size, total - sent)
        sent += part
        yield b" " * part


@pytest.mark.parametrize("name", sorted(APIS))
def test_a_body_over_the_limit_is_refused_before_it_is_read(name, tmp_path, master_key):
    client = client_for(name, tmp_path, master_key)
    path = APIS[name][3]
    # Declared too long: judged from the header, nothing read (the body sent is only 2 bytes).
    declared = client.post(path, content=b"{}", headers={"Content-Type": "application/json",
                                                           "Content-Length": str(47_000_000)})
    assert declared.status_code == 413, declared.text
    assert declared.headers["content-type"] == "application/problem+json"
    assert declared.json()["type"] == "/problems/too-large" and str(LIMIT) in declared.json()["detail"]
    # Streamed without a length: refused once it passes the limit.
    streamed = client.post(path, content=chunks(LIMIT + 1), headers={"Content-Type": "application/json"})
    assert streamed.status_code == 413
    # At the limit it is read and judged by the route (not valid JSON here: a 4xx of its own).
    within = client.post(path, content=chunks(LIMIT), headers={"Content-Type": "application/json"})
    assert within.status_code not in (413, 500), within.text


def test_an_after_event_that_is_no_event_id_is_refused_at_once(tmp_path, master_key):
    client = client_for("access", tmp_path, master_key, max_wait_ms=3000)
    started = time.monotonic()
    answer = client.get("/v1/check", params={"staff_id": str(uuid.uuid4()), "dossier_id": str(DOSSIER),
                                             "after_event": "x" * 90})
    assert answer.status_code == 422 and answer.json()["type"] == "/problems/validation-error"
    assert time.monotonic() - started < 2.5, "a string that is no event id must not hold a worker"


def test_only_so_many_requests_wait_for_the_state_to_catch_up(tmp_path, master_key):
    app = client_for("access", tmp_path, master_key, max_wait_ms=3000, max_waiting_requests=2).app
    params = {"staff_id": str(uuid.uuid4()), "dossier_id": str(DOSSIER), "after_event": str(uuid.uuid4())}
    waiting: list[int] = []

    token = TOKENS.headers("test-service", ACCESS_SCOPES, "access")

    def wait() -> None:
        with TestClient(app, base_url="http://127.0.0.1", headers=token) as own:
            waiting.append(own.get("/v1/check", params=params).status_code)

    threads = [threading.Thread(target=wait) for _ in range(2)]
    for thread in threads:
        thread.start()
    wait_until(lambda: app.state.waiters.waiting == 2, timeout_s=5, message="both waiting")
    with TestClient(app, base_url="http://127.0.0.1", headers=token) as third:
        refused = third.get("/v1/check", params=params)
    assert refused.status_code == 503 and refused.json()["type"] == "/problems/too-many-waiting"
    assert refused.headers["retry-after"] == "1"
    for thread in threads:
        thread.join(timeout=10)
    # The two that waited gave up after max_wait_ms, failing closed.
    assert waiting == [503, 503]
