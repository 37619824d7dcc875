"""Kindkans login as another application meets it, in a real browser (Debian's chromium through
Playwright): a relying party (authlib's client) sends the user to our authorization endpoint,
the user logs in on our pages with password and TOTP, the relying party exchanges the code with
PKCE and checks the ID token against our JWKS; the user then adds a passkey (Chromium's virtual
authenticator over CDP) and the next login uses it instead of a code. Two SWV admins reset a
lost factor in two browsers. Every page passes axe-core's WCAG 2.1 AA rules."""

from __future__ import annotations

import http.server
import os
import secrets
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pyotp
import pytest
import uvicorn
from authlib.integrations.httpx_client import OAuth2Client
from joserfc import jwk, jwt

from deploy.localbroker import free_port
from services.auth import store
from services.auth.api import create_app
from services.auth.bootstrap import AuthDeps, build, build_relay, build_runner
from services.auth.domain import STEP_SECONDS
from services.auth.settings import AuthSettings
from shared.contracts import events as e
from shared.kafka.producer import EventPublisher, make_producer
from tests.e2e.test_auth_browser import CHROMIUM, RealTimeAhead
from tests.support import wait_until

BRANCH = uuid.UUID("00000000-0000-4000-8000-0000000000f2")
PASSWORD = "tulp-kanaal-brug-molen"
WCAG_21_AA = {"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}}

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists() and not os.environ.get("CI"),
                                reason="Debian's chromium is installed by deploy/test.sh (in CI this never skips)")


class Callback(http.server.ThreadingHTTPServer):
    """The relying party's redirect URI: it only has to answer."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Answer)

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/callback"


class _Answer(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"<!doctype html><html lang='nl'><title>Kindkans</title><main><h1>Terug bij Kindkans</h1></main></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@dataclass
class Site:
    base: str
    deps: AuthDeps
    callback: Callback
    client_id: str
    client_secret: str


@pytest.fixture
def site(broker, topic_prefix, master_key, tmp_path, smtp_server) -> Iterator[Site]:
    port = free_port()
    # localhost, not 127.0.0.1: a passkey's relying party id must be a host name.
    settings = AuthSettings(kafka_bootstrap_servers=broker.bootstrap, topic_prefix=topic_prefix,
                            database_url=f"sqlite:///{tmp_path / 'auth.sqlite'}",
                            keystore_url=f"sqlite:///{tmp_path / 'keys.sqlite'}", master_key=master_key,
                            consumer_group=f"{topic_prefix}auth", smtp_port=smtp_server.port,
                            auth_url=f"http://localhost:{port}", cookie_secure=False,
                            argon2_time_cost=1, argon2_memory_kib=8192)
    deps = build(settings, clock=RealTimeAhead())
    callback = Callback()
    workers = [build_runner(deps), build_relay(deps)]
    server = uvicorn.Server(uvicorn.Config(create_app(deps), host="127.0.0.1", port=port, log_config=None,
                                           access_log=False))
    threads = [threading.Thread(target=w.run, daemon=True) for w in [*workers, server]]
    threads.append(threading.Thread(target=callback.serve_forever, daemon=True))
    for thread in threads:
        thread.start()
    wait_until(lambda: server.started, message="the auth pages to be served")
    with deps.engine.begin() as connection:
        client = deps.service.provider.register_client(connection, "Kindkans", [callback.uri], [], None,
                                                       ["authorization_code", "refresh_token"], [])
    yield Site(f"http://localhost:{port}", deps, callback, client.client_id, client.secret)
    server.should_exit = True
    callback.shutdown()
    for worker in workers:
        worker.stop_event.set()
    for thread in threads:
        thread.join(timeout=15)


def join(site: Site, smtp_server, broker, email: str) -> str:
    """A staff member joins at the school system; the invitation link from the mail."""
    staff_id = uuid.uuid4()
    publisher = EventPublisher(make_producer(broker.bootstrap, "registry-under-test"))
    publisher.publish(site.deps.codec.encode(e.StaffJoined(branch_id=BRANCH, staff_id=staff_id,
                                                           role=e.StaffRole.IB_ER, name="Nieuwe IB'er", email=email),
                                             event_id=str(uuid.uuid4()), recorded_at=datetime.now(UTC)))
    publisher.close()
    mail = wait_until(lambda: [m for m in smtp_server.messages if m["X-Envelope-To"] == email],
                      message="the invitation mail")[0]
    return next(word for word in mail.get_content().split() if "/uitnodiging/" in word)


def accessible(axe, page, what: str) -> None:
    results = axe.run(page, options=WCAG_21_AA)
    assert results.violations_count == 0, f"{what}: {results.generate_report()}"


def enrol(page, axe, link: str, site: Site) -> pyotp.TOTP:
    page.goto(link)
    accessible(axe, page, "the password page")
    page.fill("#wachtwoord", PASSWORD)
    page.fill("#herhaling", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("text=Authenticator-app koppelen")
    accessible(axe, page, "the enrolment page")
    totp = pyotp.TOTP(page.inner_text("#totp-secret").strip())
    page.fill("#code", totp.at(site.deps.clock.now()))
    page.click("button[type=submit]")
    page.wait_for_selector("#recovery-codes")
    accessible(axe, page, "the recovery codes")
    return totp


def relying_party(site: Site) -> tuple[OAuth2Client, str, str, str]:
    rp = OAuth2Client(site.client_id, site.client_secret, scope="openid", redirect_uri=site.callback.uri,
                      code_challenge_method="S256")
    verifier, nonce = secrets.token_urlsafe(48), secrets.token_urlsafe(16)
    url, _ = rp.create_authorization_url(f"{site.base}/oauth2/authorize", code_verifier=verifier, nonce=nonce)
    return rp, url, verifier, nonce


def identity(site: Site, rp: OAuth2Client, callback_url: str, verifier: str, nonce: str) -> dict:
    """What the relying party does with the callback: the code for tokens, the ID token checked."""
    token = rp.fetch_token(f"{site.base}/oauth2/token", authorization_response=callback_url, code_verifier=verifier)
    keys = jwk.KeySet.import_key_set(httpx.get(f"{site.base}/oauth2/jwks").json())
    decoded = jwt.decode(token["id_token"], keys, algorithms=["ES256"])
    # The provider's clock runs up to a minute ahead here (the test jumps it instead of waiting
    # for TOTP steps): the leeway a relying party allows for clock skew.
    jwt.JWTClaimsRegistry(leeway=120, iss={"essential": True, "value": site.base},
                          aud={"essential": True, "value": site.client_id},
                          nonce={"essential": True, "value": nonce}).validate(decoded.claims)
    return decoded.claims


def test_a_relying_party_logs_a_staff_member_in_with_a_code_and_then_with_a_passkey(site, smtp_server, broker):
    from axe_playwright_python.sync_playwright import Axe
    from playwright.sync_api import sync_playwright

    email = "passkey.ib@regenboog.example"
    link = join(site, smtp_server, broker, email)
    axe = Axe()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        page = browser.new_page()
        authenticator = page.context.new_cdp_session(page)
        authenticator.send("WebAuthn.enable")
        authenticator.send("WebAuthn.addVirtualAuthenticator", {"options": {
            "protocol": "ctap2", "transport": "internal", "hasResidentKey": True, "hasUserVerification": True,
            "isUserVerified": True}})
        totp = enrol(page, axe, link.replace("127.0.0.1", "localhost"), site)

        # Kindkans (the relying party) sends the browser to us; we send it back with a code.
        # Whoever finds a weakness finds whom to tell, in Dutch, on a page that passes axe too.
        page.goto(f"{site.base}/beveiliging")
        page.wait_for_selector("text=Zo meldt u")
        accessible(axe, page, "the disclosure page")
        rp, url, verifier, nonce = relying_party(site)
        page.goto(url)
        page.wait_for_selector("#gebruikersnaam")
        accessible(axe, page, "the login page")
        page.fill("#gebruikersnaam", email)
        page.fill("#wachtwoord", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_selector("text=Code invoeren")
        accessible(axe, page, "the code page")
        site.deps.clock.ahead += timedelta(seconds=STEP_SECONDS)  # the enrolment's step is used
        page.fill("#code", totp.at(site.deps.clock.now()))
        with page.expect_navigation(url=lambda u: u.startswith(site.callback.uri)):
            page.click("form[action='/inloggen/code'] button[type=submit]")
        claims = identity(site, rp, page.url, verifier, nonce)
        assert claims["amr"] == ["pwd", "otp", "mfa"] and claims["role"] == "ib_er"

        # On the account page the staff member adds a passkey (the virtual authenticator answers).
        page.goto(f"{site.base}/account")
        accessible(axe, page, "the account page")
        page.fill("#passkey-naam", "Laptop")
        page.click("#passkey-toevoegen")
        page.wait_for_selector("#passkeys .passkey-naam")
        assert page.inner_text("#passkeys .passkey-naam") == "Laptop"
        accessible(axe, page, "the account page with a passkey")
        page.click("text=Uitloggen")
        page.wait_for_selector("text=U bent uitgelogd.")

        # The next login: password, then the passkey instead of a code.
        rp, url, verifier, nonce = relying_party(site)
        page.goto(url)
        page.fill("#gebruikersnaam", email)
        page.fill("#wachtwoord", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_selector("#passkey-inloggen")
        with page.expect_navigation(url=lambda u: u.startswith(site.callback.uri)):
            page.click("#passkey-inloggen")
        claims = identity(site, rp, page.url, verifier, nonce)
        assert claims["amr"] == ["pwd", "hwk", "mfa"]
        with site.deps.engine.connect() as connection:
            (passkey,) = store.passkeys_of(connection, claims["sub"])
            assert passkey.last_used_at is not None
        query = parse_qs(urlsplit(page.url).query)
        assert query["iss"] == [site.base]

        # Removed, it no longer logs anyone in.
        page.goto(f"{site.base}/account")
        page.click("button[aria-label='Passkey Laptop verwijderen']")
        page.wait_for_selector("text=U heeft nog geen passkey.")
        browser.close()


def test_two_admins_reset_a_lost_second_factor_in_their_browsers(site, smtp_server, broker):
    from axe_playwright_python.sync_playwright import Axe
    from playwright.sync_api import sync_playwright

    people = {name: f"{name}@ppo.example" for name in ("verloren", "beheerder1", "beheerder2")}
    links = {name: join(site, smtp_server, broker, email) for name, email in people.items()}
    axe = Axe()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        pages, apps = {}, {}
        for name in people:
            pages[name] = browser.new_context().new_page()
            apps[name] = enrol(pages[name], axe, links[name].replace("127.0.0.1", "localhost"), site)
        with site.deps.engine.begin() as connection:
            for name in ("beheerder1", "beheerder2"):
                account = store.find_account_by_username(connection, people[name])
                store.grant_admin(connection, account.staff_id, datetime.now(UTC))
        site.deps.clock.ahead += timedelta(seconds=STEP_SECONDS)

        def log_in(name: str) -> None:
            page = pages[name]
            page.goto(f"{site.base}/inloggen")
            page.fill("#gebruikersnaam", people[name])
            page.fill("#wachtwoord", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_selector("text=Code invoeren")
            page.fill("#code", apps[name].at(site.deps.clock.now()))
            page.click("form[action='/inloggen/code'] button[type=submit]")
            page.wait_for_selector("#ingelogd-als")

        log_in("beheerder1")
        first = pages["beheerder1"]
        first.goto(f"{site.base}/beheer")
        accessible(axe, first, "the admin page")
        first.fill("#herstel-adres", people["verloren"])
        first.fill("#herstel-reden", "Telefoon kwijt; identiteit gecontroleerd via de directeur")
        first.click("text=Verzoek indienen")
        first.wait_for_selector("text=Een tweede beheerder moet het goedkeuren.")
        assert first.locator("text=U heeft dit verzoek zelf ingediend").count() == 1
        accessible(axe, first, "the admin page with a request")

        log_in("beheerder2")
        second = pages["beheerder2"]
        second.goto(f"{site.base}/beheer")
        second.click(f"button[aria-label='Herstel voor {people['verloren']} goedkeuren']")
        second.wait_for_selector("text=Goedgekeurd.")

        mail = wait_until(lambda: [m for m in smtp_server.messages if m["X-Envelope-To"] == people["verloren"]
                                   and "nieuwe tweede factor" in m["Subject"]], message="the reset mail")[0]
        relink = next(word for word in mail.get_content().split() if "/koppelen/" in word)
        lost = pages["verloren"]
        lost.goto(relink)
        lost.wait_for_selector("text=Authenticator-app koppelen")
        new_app = pyotp.TOTP(lost.inner_text("#totp-secret").strip())
        lost.fill("#code", new_app.at(site.deps.clock.now()))
        lost.click("button[type=submit]")
        lost.wait_for_selector("#recovery-codes")
        apps["verloren"] = new_app
        site.deps.clock.ahead += timedelta(seconds=STEP_SECONDS)
        log_in("verloren")
        browser.close()
