"""The auth API as it is deployed (its own process, `python -m services.auth.api`, uvicorn as the
service kit starts it): who the caller is comes from the TCP peer, and a forwarded header only
counts when the peer is a configured proxy. Attempts are throttled per real address with 429 and
Retry-After."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from deploy.localbroker import free_port
from tests.support import wait_until

REPO = Path(__file__).resolve().parents[2]


def start_api(tmp_path: Path, master_key: str, **settings: str) -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "SAMENVEILIG_DATABASE_URL": f"sqlite:///{tmp_path / 'auth.sqlite'}",
           "SAMENVEILIG_KEYSTORE_URL": f"sqlite:///{tmp_path / 'keys.sqlite'}", "SAMENVEILIG_MASTER_KEY": master_key,
           "SAMENVEILIG_API_PORT": str(port), "SAMENVEILIG_COOKIE_SECURE": "false",
           "SAMENVEILIG_ARGON2_TIME_COST": "1", "SAMENVEILIG_ARGON2_MEMORY_KIB": "8192",
           "SAMENVEILIG_LOGIN_RATE_PER_ADDRESS": "3/minute",
           **{f"SAMENVEILIG_{name.upper()}": value for name, value in settings.items()}}
    log = (tmp_path / "auth-api.log").open("wb")
    process = subprocess.Popen([sys.executable, "-m", "services.auth.api"], env=env, cwd=REPO, stdout=log,
                               stderr=log)
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return process.poll() is not None

    try:
        wait_until(up, timeout_s=30, message="the auth API")
        assert process.poll() is None, (tmp_path / "auth-api.log").read_text()
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def api(tmp_path, master_key) -> Iterator[str]:
    yield from start_api(tmp_path, master_key)


@pytest.fixture
def api_behind_proxy(tmp_path, master_key) -> Iterator[str]:
    yield from start_api(tmp_path, master_key, trusted_proxies="127.0.0.1")


def attempt(base: str, forwarded_for: str, username: str = "iemand@school.example") -> httpx.Response:
    return httpx.post(f"{base}/inloggen", data={"gebruikersnaam": username,
                                                "wachtwoord": "verkeerd-wachtwoord-123"},
                      headers={"X-Forwarded-For": forwarded_for}, timeout=10)


def test_a_claimed_address_does_not_escape_the_throttle(api):
    # Each attempt claims a new address; the peer is the same loopback client every time.
    answers = [attempt(api, f"203.0.113.{n}") for n in range(1, 6)]
    assert [a.status_code for a in answers] == [401, 401, 401, 429, 429]
    refused = answers[3]
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert "Te veel pogingen" in refused.text


def test_behind_a_configured_proxy_the_forwarded_address_is_the_caller(api_behind_proxy):
    # The proxy (loopback) forwards five different clients: none is throttled by another's attempts...
    assert [attempt(api_behind_proxy, f"203.0.113.{n}").status_code for n in range(1, 6)] == [401] * 5
    # ...one client is, even when it puts an address of its own in front of the proxy's.
    # (Another name each time: five failures lock a name, which answers differently.)
    same = [attempt(api_behind_proxy, f"198.51.100.{n}, 192.0.2.7", f"iemand{n}@school.example").status_code
            for n in range(1, 5)]
    assert same == [401, 401, 401, 429]


def test_a_finder_of_a_vulnerability_knows_whom_to_tell(tmp_path, master_key):
    """RFC 9116 security.txt and the Dutch disclosure page, from settings (issue: API authentication, item 6)."""
    from fastapi.testclient import TestClient

    from services.auth.api import create_app
    from services.auth.bootstrap import build
    from services.auth.settings import AuthSettings

    deps = build(AuthSettings(database_url=f"sqlite:///{tmp_path / 'auth.sqlite'}",
                              keystore_url=f"sqlite:///{tmp_path / 'keys.sqlite'}", master_key=master_key,
                              auth_url="https://login.kindkans.example", security_contact="mailto:meld@ppo.example",
                              privacy_officer_contact="mailto:fg@ppo.example"))
    client = TestClient(create_app(deps))
    text = client.get("/.well-known/security.txt")
    assert text.status_code == 200 and text.headers["content-type"].startswith("text/plain")
    fields = [line.split(": ", 1) for line in text.text.splitlines()]
    assert ["Contact", "mailto:meld@ppo.example"] in fields and ["Contact", "mailto:fg@ppo.example"] in fields
    assert ["Policy", "https://login.kindkans.example/beveiliging"] in fields
    expires = datetime.fromisoformat(dict(fields)["Expires"].replace("Z", "+00:00"))
    assert timedelta(days=1) < expires - datetime.now(UTC) < timedelta(days=365), "RFC 9116: less than a year ahead"
    page = client.get("/beveiliging")
    assert page.status_code == 200 and "Een kwetsbaarheid melden" in page.text
    assert "meld@ppo.example" in page.text and "fg@ppo.example" in page.text and 'lang="nl"' in page.text
