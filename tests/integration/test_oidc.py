"""The OpenID Connect provider as a relying party meets it: the auth API served by uvicorn on a
loopback port, a relying party built on authlib's client (code flow with PKCE, the ID token
checked against the provider's JWKS with joserfc), a back-channel logout endpoint of its own,
the real broker for the registry's departures, and real SMTP for the invitations."""

from __future__ import annotations

import http.server
import json
import secrets
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pyotp
import pytest
import uvicorn
from authlib.integrations.httpx_client import OAuth2Client
from fastapi.testclient import TestClient
from joserfc import jwk, jwt
from joserfc.errors import JoseError

from deploy.localbroker import free_port
from services.auth import store
from services.auth.api import create_app
from services.auth.provider import OpenIdProvider
from shared.clock import ManualClock
from shared.contracts import events as e
from shared.contracts.topics import Topic
from shared.crypto import new_master_key
from tests.integration.test_auth import BRANCH, PASSWORD, Auth, Enrolled, enrol, running_auth
from tests.support import SmtpCatcher, read_all, wait_until

REDIRECT = "https://kindkans.example/callback"
AFTER_LOGOUT = "https://kindkans.example/uitgelogd"


class BackChannel(http.server.ThreadingHTTPServer):
    """The relying party's back-channel logout endpoint: keeps what it is sent; `down` answers 503."""

    def __init__(self) -> None:
        self.received: list[str] = []
        self.refused = 0
        self.down = False
        super().__init__(("127.0.0.1", 0), _BackChannelHandler)

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/backchannel-logout"


class _BackChannelHandler(http.server.BaseHTTPRequestHandler):
    server: BackChannel

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
        if self.server.down:
            self.server.refused += 1
            self.send_response(503)
        else:
            self.server.received.extend(parse_qs(body).get("logout_token", []))
            self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@dataclass
class Provider:
    auth: Auth
    base: str
    back_channel: BackChannel
    client_id: str = ""
    client_secret: str = ""
    service_id: str = ""
    service_secret: str = ""
    tokens: dict = field(default_factory=dict)

    def relying_party(self, **kwargs) -> OAuth2Client:
        return OAuth2Client(self.client_id, self.client_secret, scope="openid profile", redirect_uri=REDIRECT,
                            code_challenge_method="S256", **kwargs)

    def keys(self) -> jwk.KeySet:
        discovery = httpx.get(f"{self.base}/.well-known/openid-configuration").json()
        return jwk.KeySet.import_key_set(httpx.get(discovery["jwks_uri"]).json())

    def introspect(self, token: str, auth: tuple[str, str] | None = None) -> httpx.Response:
        return httpx.post(f"{self.base}/oauth2/introspect", data={"token": token},
                          auth=auth or (self.client_id, self.client_secret))


@pytest.fixture(scope="module")
def running_provider(broker, module_database_url, tmp_path_factory) -> Iterator[tuple[Auth, str]]:
    """One provider (processor, relay, the API on uvicorn) for the module: each test registers
    relying parties and enrols people of its own."""
    directory = tmp_path_factory.mktemp("provider")
    smtp = SmtpCatcher().start()
    port = free_port()
    try:
        with running_auth(broker, f"t{uuid.uuid4().hex[:10]}.", module_database_url, new_master_key(), directory,
                          smtp, auth_url=f"http://127.0.0.1:{port}") as harness:
            server = uvicorn.Server(uvicorn.Config(create_app(harness.deps), host="127.0.0.1", port=port,
                                                   log_config=None, access_log=False, proxy_headers=False))
            thread = threading.Thread(target=server.run, daemon=True)
            thread.start()
            wait_until(lambda: server.started, message="the auth API")
            try:
                yield harness, f"http://127.0.0.1:{port}"
            finally:
                server.should_exit = True
                thread.join(timeout=10)
    finally:
        smtp.stop()


@pytest.fixture
def provider(running_provider) -> Iterator[Provider]:
    """A relying party (with a back-channel endpoint of its own) and a service client, new for each test."""
    harness, base = running_provider
    back_channel = BackChannel()
    threading.Thread(target=back_channel.serve_forever, daemon=True).start()
    found = Provider(harness, base, back_channel)
    with harness.deps.engine.begin() as connection:
        rp = harness.deps.service.provider.register_client(
            connection, "Kindkans", [REDIRECT], [AFTER_LOGOUT], back_channel.uri,
            ["authorization_code", "refresh_token"], [])
        service = harness.deps.service.provider.register_client(
            connection, "SWV-rapportage", [], [], None, ["client_credentials"], ["registry:read"])
    found.client_id, found.client_secret = rp.client_id, rp.secret
    found.service_id, found.service_secret = service.client_id, service.secret
    try:
        yield found
    finally:
        back_channel.shutdown()


def browser_login(provider: Provider, person: Enrolled, authorization_url: str, code: str) -> str:
    """What the user's browser does: our login pages, then back to the relying party. Returns
    the callback URL the relying party receives."""
    browser = httpx.Client(base_url=provider.base)
    first = browser.get(authorization_url)
    assert first.status_code == 303 and first.headers["location"] == "/inloggen"
    assert browser.post("/inloggen", data={"gebruikersnaam": person.username, "wachtwoord": PASSWORD}
                        ).status_code == 303
    back = browser.post("/inloggen/code", data={"code": code})
    assert back.status_code == 303 and back.headers["location"].startswith("/oauth2/authorize?"), back.text
    callback = browser.get(back.headers["location"])
    assert callback.status_code == 303, callback.text
    provider.tokens["browser"] = browser
    return callback.headers["location"]


def log_in(provider: Provider, person: Enrolled, code: str | None = None, **authorize: str) -> dict:
    """The whole code flow with PKCE, as a relying party does it; the token response."""
    rp = provider.relying_party()
    verifier = secrets.token_urlsafe(48)
    nonce = secrets.token_urlsafe(16)
    url, state = rp.create_authorization_url(f"{provider.base}/oauth2/authorize", code_verifier=verifier,
                                             nonce=nonce, **authorize)
    callback = browser_login(provider, person, url, code or pyotp.TOTP(person.secret).at(
        (person.enrolled_step + 1) * 30))
    assert parse_qs(urlsplit(callback).query)["state"] == [state]
    assert parse_qs(urlsplit(callback).query)["iss"] == [provider.base]
    token = rp.fetch_token(f"{provider.base}/oauth2/token", authorization_response=callback, code_verifier=verifier)
    return {**token, "nonce": nonce}


def test_a_relying_party_logs_in_with_code_and_pkce_and_checks_the_id_token_against_the_jwks(provider):
    person = enrol(provider.auth)
    token = log_in(provider, person)
    keys = provider.keys()
    identity = jwt.decode(token["id_token"], keys, algorithms=["ES256"])
    jwt.JWTClaimsRegistry(iss={"essential": True, "value": provider.base},
                          aud={"essential": True, "value": provider.client_id},
                          nonce={"essential": True, "value": token["nonce"]}).validate(identity.claims)
    assert identity.claims["sub"] == str(person.staff_id)
    assert identity.claims["amr"] == ["pwd", "otp", "mfa"] and identity.claims["role"] == "ib_er"
    assert identity.claims["branch_id"] == str(BRANCH)
    access = jwt.decode(token["access_token"], keys, algorithms=["ES256"])
    assert access.header["typ"] == "at+jwt" and access.claims["aud"] == provider.client_id
    assert access.claims["exp"] - access.claims["iat"] == 300
    # The relying party asks whether the access token is still good: yes, and whose it is.
    answer = provider.introspect(token["access_token"]).json()
    assert answer["active"] is True and answer["sub"] == str(person.staff_id) and "username" not in answer
    # Nobody else may ask.
    assert provider.introspect(token["access_token"], auth=(provider.client_id, "wrong")).status_code == 401
    assert httpx.post(f"{provider.base}/oauth2/introspect", data={"token": token["access_token"]}).status_code == 401


def test_what_the_provider_refuses(provider):
    person = enrol(provider.auth)
    rp = provider.relying_party()
    verifier = secrets.token_urlsafe(48)
    # A redirect URI that is not registered exactly gets a page, never a redirect to it.
    url, _ = rp.create_authorization_url(f"{provider.base}/oauth2/authorize", code_verifier=verifier,
                                         redirect_uri=REDIRECT + "/../evil")
    refused = httpx.get(url)
    assert refused.status_code == 400 and "location" not in refused.headers
    # Without PKCE (or with the plain method): an error back to the client.
    plain = httpx.get(f"{provider.base}/oauth2/authorize", params={
        "response_type": "code", "client_id": provider.client_id, "redirect_uri": REDIRECT, "scope": "openid",
        "state": "s1", "code_challenge": "x" * 43, "code_challenge_method": "plain"})
    assert plain.status_code == 303 and "error=invalid_request" in plain.headers["location"]
    assert "state=s1" in plain.headers["location"]

    # A verifier that does not match the challenge.
    url, _ = rp.create_authorization_url(f"{provider.base}/oauth2/authorize", code_verifier=verifier)
    callback = browser_login(provider, person, url, pyotp.TOTP(person.secret).at((person.enrolled_step + 1) * 30))
    code = parse_qs(urlsplit(callback).query)["code"][0]
    mismatch = token_request(provider, grant_type="authorization_code", code=code, redirect_uri=REDIRECT,
                             code_verifier=secrets.token_urlsafe(48))
    assert mismatch.status_code == 400 and mismatch.json()["error"] == "invalid_grant"
    # That code is spent now, even for the right verifier.
    spent = token_request(provider, grant_type="authorization_code", code=code, redirect_uri=REDIRECT,
                          code_verifier=verifier)
    assert spent.json()["error"] == "invalid_grant"

    # A replayed code: refused, and what the first exchange gave is revoked with it.
    session = provider.tokens["browser"]
    url, _ = rp.create_authorization_url(f"{provider.base}/oauth2/authorize", code_verifier=verifier)
    again = session.get(url)  # the browser still has its session: straight back with a code
    code = parse_qs(urlsplit(again.headers["location"]).query)["code"][0]
    first = token_request(provider, grant_type="authorization_code", code=code, redirect_uri=REDIRECT,
                          code_verifier=verifier).json()
    replay = token_request(provider, grant_type="authorization_code", code=code, redirect_uri=REDIRECT,
                           code_verifier=verifier)
    assert replay.json()["error"] == "invalid_grant"
    assert provider.introspect(first["refresh_token"]).json() == {"active": False}

    # A refresh token rotates; the old one used again kills the whole family.
    url, _ = rp.create_authorization_url(f"{provider.base}/oauth2/authorize", code_verifier=verifier)
    code = parse_qs(urlsplit(session.get(url).headers["location"]).query)["code"][0]
    issued = token_request(provider, grant_type="authorization_code", code=code, redirect_uri=REDIRECT,
                           code_verifier=verifier).json()
    rotated = token_request(provider, grant_type="refresh_token", refresh_token=issued["refresh_token"]).json()
    assert rotated["refresh_token"] != issued["refresh_token"] and "access_token" in rotated
    reused = token_request(provider, grant_type="refresh_token", refresh_token=issued["refresh_token"])
    assert reused.json()["error"] == "invalid_grant"
    after = token_request(provider, grant_type="refresh_token", refresh_token=rotated["refresh_token"])
    assert after.json()["error"] == "invalid_grant", "the rotated token died with its family"

    # A token for another audience, an expired one and a tampered one are not accepted.
    keys = provider.keys()
    other = jwt.JWTClaimsRegistry(aud={"essential": True, "value": provider.service_id})
    with pytest.raises(JoseError):
        other.validate(jwt.decode(rotated["access_token"], keys, algorithms=["ES256"]).claims)
    with provider.auth.deps.engine.begin() as connection:
        later = OpenIdProvider(ManualClock(provider.auth.deps.clock.now() + timedelta(minutes=6)),
                               provider.auth.settings.master_key_bytes(), provider.base)
        assert later.verify_jwt(connection, rotated["access_token"]) is None, "expired"
        assert provider.auth.deps.service.provider.verify_jwt(connection, rotated["access_token"]) is not None
    # No secret of the flows reached the service's log or a topic.
    raw = b"".join(r.value or b"" for r in read_all(provider.auth.bootstrap,
                                                     provider.auth.deps.topics(Topic.AUTH_EVENTS)))
    for secret in (provider.client_secret, issued["refresh_token"], rotated["refresh_token"], code, verifier):
        assert secret not in provider.auth.log.getvalue() and secret.encode() not in raw
    header, claims, signature = rotated["access_token"].split(".")
    forged_claims = claims[:-4] + ("AAAA" if claims[-4:] != "AAAA" else "BBBB")
    assert provider.introspect(f"{header}.{forged_claims}.{signature}").json() == {"active": False}


def token_request(provider: Provider, **form: str) -> httpx.Response:
    return httpx.post(f"{provider.base}/oauth2/token", data=form, auth=(provider.client_id, provider.client_secret))


def test_a_service_gets_a_token_for_its_own_scopes_only(provider):
    granted = httpx.post(f"{provider.base}/oauth2/token", data={"grant_type": "client_credentials",
                                                                "scope": "registry:read"},
                         auth=(provider.service_id, provider.service_secret))
    assert granted.status_code == 200 and granted.headers["cache-control"] == "no-store"
    claims = jwt.decode(granted.json()["access_token"], provider.keys(), algorithms=["ES256"]).claims
    assert claims["sub"] == provider.service_id and claims["scope"] == "registry:read"
    wider = httpx.post(f"{provider.base}/oauth2/token", data={"grant_type": "client_credentials",
                                                              "scope": "registry:read access:grant"},
                       auth=(provider.service_id, provider.service_secret))
    assert wider.status_code == 400 and wider.json()["error"] == "invalid_scope"
    # A client of the code flow may not use client credentials.
    assert token_request(provider, grant_type="client_credentials").json()["error"] == "unauthorized_client"


@pytest.mark.every_database
def test_a_departure_logs_the_person_out_of_every_relying_party_over_the_back_channel(provider):
    person = enrol(provider.auth)
    token = log_in(provider, person)
    # The relying party is down when the departure comes: it is told when it is back.
    provider.back_channel.down = True
    provider.auth.publish(e.StaffDeparted(branch_id=BRANCH, staff_id=person.staff_id))
    wait_until(lambda: provider.back_channel.refused >= 2, timeout_s=30, message="attempts while the RP is down")
    # Meanwhile nothing it holds works any more.
    refreshed = token_request(provider, grant_type="refresh_token", refresh_token=token["refresh_token"])
    assert refreshed.status_code == 400 and refreshed.json()["error"] == "invalid_grant"
    assert provider.introspect(token["access_token"]).json() == {"active": False}
    provider.back_channel.down = False
    (logout_token,) = wait_until(lambda: provider.back_channel.received, timeout_s=30, message="the logout token")
    decoded = jwt.decode(logout_token, provider.keys(), algorithms=["ES256"])
    jwt.JWTClaimsRegistry(iss={"essential": True, "value": provider.base},
                          aud={"essential": True, "value": provider.client_id}).validate(decoded.claims)
    assert decoded.header["typ"] == "logout+jwt"
    assert decoded.claims["sub"] == str(person.staff_id)
    assert decoded.claims["sid"] == jwt.decode(token["id_token"], provider.keys()).claims["sid"]
    assert "http://schemas.openid.net/event/backchannel-logout" in decoded.claims["events"]
    assert "nonce" not in decoded.claims


def test_rp_initiated_logout_ends_the_session_and_returns_only_to_a_registered_uri(provider):
    person = enrol(provider.auth)
    token = log_in(provider, person)
    browser = provider.tokens["browser"]
    elsewhere = browser.get("/oauth2/logout", params={"id_token_hint": token["id_token"],
                                                      "post_logout_redirect_uri": "https://evil.example/"})
    assert elsewhere.status_code == 303 and elsewhere.headers["location"] == "/inloggen?uitgelogd=true"
    assert provider.introspect(token["access_token"]).json() == {"active": False}
    (logout_token,) = wait_until(lambda: provider.back_channel.received, timeout_s=30, message="the logout token")
    assert jwt.decode(logout_token, provider.keys()).claims["sub"] == str(person.staff_id)

    token = log_in(provider, person, code=person.recovery_codes[0])
    back = provider.tokens["browser"].get("/oauth2/logout", params={
        "id_token_hint": token["id_token"], "post_logout_redirect_uri": AFTER_LOGOUT, "state": "tot-ziens"})
    assert back.headers["location"] == f"{AFTER_LOGOUT}?state=tot-ziens"


def test_a_rotated_signing_key_stays_published_until_its_tokens_have_expired(provider):
    person = enrol(provider.auth)
    token = log_in(provider, person)
    old_kid = jwt.decode(token["id_token"], provider.keys()).header["kid"]
    with provider.auth.deps.engine.begin() as connection:
        new_kid = provider.auth.deps.service.provider.rotate_signing_key(connection)
    published = {key["kid"] for key in httpx.get(f"{provider.base}/oauth2/jwks").json()["keys"]}
    assert published == {old_kid, new_kid}
    # The old token still checks out against the JWKS; new tokens are signed with the new key.
    jwt.decode(token["id_token"], provider.keys())
    rotated = token_request(provider, grant_type="refresh_token", refresh_token=token["refresh_token"]).json()
    assert jwt.decode(rotated["id_token"], provider.keys()).header["kid"] == new_kid
    # Once every token the old key signed has expired, it is no longer published.
    with provider.auth.deps.engine.begin() as connection:
        later = OpenIdProvider(ManualClock(provider.auth.deps.clock.now() + timedelta(minutes=7)),
                               provider.auth.settings.master_key_bytes(), provider.base)
        assert {key["kid"] for key in later.jwks(connection)["keys"]} == {new_kid}


def test_discovery_names_every_endpoint_and_promises_only_what_is_served(provider):
    discovery = httpx.get(f"{provider.base}/.well-known/openid-configuration").json()
    assert discovery["issuer"] == provider.base
    assert discovery["code_challenge_methods_supported"] == ["S256"]
    assert discovery["backchannel_logout_supported"] is True
    for name in ("authorization_endpoint", "token_endpoint", "jwks_uri", "introspection_endpoint",
                 "revocation_endpoint", "end_session_endpoint"):
        assert discovery[name].startswith(provider.base)
        method = httpx.get if name in ("jwks_uri",) else None
        if method:
            assert method(discovery[name]).status_code == 200
    # Revocation: a refresh token revoked by its client is dead; an unknown one is answered 200.
    person = enrol(provider.auth)
    token = log_in(provider, person)
    revoke = httpx.post(discovery["revocation_endpoint"], data={"token": token["refresh_token"]},
                        auth=(provider.client_id, provider.client_secret))
    assert revoke.status_code == 200
    assert provider.introspect(token["refresh_token"]).json() == {"active": False}
    assert httpx.post(discovery["revocation_endpoint"], data={"token": "unknown"},
                      auth=(provider.client_id, provider.client_secret)).status_code == 200



def test_an_id_token_is_not_an_access_token_and_a_revoked_clients_tokens_die_at_once(provider):
    person = enrol(provider.auth)
    token = log_in(provider, person)
    # Signed by us, not expired, and still no access token: introspection answers by type.
    assert provider.introspect(token["id_token"]).json() == {"active": False}
    assert provider.introspect(token["access_token"]).json()["active"] is True
    service = httpx.post(f"{provider.base}/oauth2/token", data={"grant_type": "client_credentials"},
                         auth=(provider.service_id, provider.service_secret)).json()
    assert provider.introspect(service["access_token"]).json()["active"] is True
    with provider.auth.deps.engine.begin() as connection:
        store.revoke_client(connection, provider.service_id, provider.auth.deps.clock.now())
        store.revoke_client(connection, provider.client_id, provider.auth.deps.clock.now())
    # Nobody may introspect with the revoked client's credentials; with another's, its tokens are dead.
    with provider.auth.deps.engine.begin() as connection:
        watcher = provider.auth.deps.service.provider.register_client(connection, "Toezicht", [], [], None,
                                                                      ["client_credentials"], [])
    for dead in (service["access_token"], token["access_token"], token["refresh_token"]):
        assert provider.introspect(dead, auth=(watcher.client_id, watcher.secret)).json() == {"active": False}


def test_an_oversized_or_malformed_token_request_is_refused_before_any_work(provider):
    big = httpx.post(f"{provider.base}/oauth2/token", content=b"grant_type=x&" + b"a" * 20_000,
                     headers={"Content-Type": "application/x-www-form-urlencoded"},
                     auth=(provider.client_id, provider.client_secret))
    assert big.status_code == 400 and big.json()["error"] == "invalid_request"
    as_json = httpx.post(f"{provider.base}/oauth2/token", json={"grant_type": "client_credentials"},
                         auth=(provider.service_id, provider.service_secret))
    assert as_json.status_code == 400 and "urlencoded" in as_json.json()["error_description"]


def test_the_kindkans_backend_acting_for_an_ib_er_grants_an_extern_and_the_event_names_both(
        provider, tmp_path, master_key):
    """RFC 8693 token exchange, end to end: the IB'er logs in to the Kindkans backend (code flow,
    two factors); the backend exchanges her token for one that names her and itself (`act`)
    and grants an extern one dossier of her branch through the running access service. The
    AccessGranted event names the IB'er as actor and the backend as client; the same call for a
    dossier of another branch is refused, and the exchange refuses what it should."""
    from services.access.api import create_app as access_app
    from services.access.bootstrap import build as build_access
    from services.access.bootstrap import build_relay as access_relay
    from services.access.bootstrap import build_runner as access_runner
    from services.access.settings import AccessSettings
    from services.auth.domain import ACCESS_TOKEN_TYPE, TOKEN_EXCHANGE
    from shared.kafka.producer import EventPublisher, make_producer

    harness = provider.auth
    prefix = harness.settings.topic_prefix
    access = build_access(AccessSettings(
        kafka_bootstrap_servers=harness.bootstrap, topic_prefix=prefix,
        consumer_group=f"{prefix}access-{uuid.uuid4().hex[:6]}",
        database_url=f"sqlite:///{tmp_path / 'access.sqlite'}", keystore_url=f"sqlite:///{tmp_path / 'keys.sqlite'}",
        master_key=master_key, oidc_issuer=provider.base, smtp_port=harness.smtp.port))
    workers = [access_runner(access), access_relay(access)]
    threads = [threading.Thread(target=worker.run, daemon=True) for worker in workers]
    for thread in threads:
        thread.start()
    publisher = EventPublisher(make_producer(harness.bootstrap, "registry-under-test"))
    try:
        ib_er = enrol(harness, "ib_er")
        other_branch = uuid.uuid4()
        address = e.Address(street="Schiekade", house_number="12", postcode="3032 AJ", city="Rotterdam")
        extern = e.StaffJoined(branch_id=BRANCH, staff_id=uuid.uuid4(), role=e.StaffRole.EXTERN, name="N",
                               email="logopedie@extern.example",
                               access_until=(datetime.now(UTC) + timedelta(days=90)).date())
        ours = e.DossierOpened(branch_id=BRANCH, dossier_id=uuid.uuid4(), pupil_id=uuid.uuid4(),
                               contact_staff_id=ib_er.staff_id, summary="Leesproblemen")
        theirs = e.DossierOpened(branch_id=other_branch, dossier_id=uuid.uuid4(), pupil_id=uuid.uuid4(),
                                 contact_staff_id=uuid.uuid4(), summary="Rekenen")
        now = datetime.now(UTC)
        encoded = [access.codec.encode(event, event_id=str(uuid.uuid4()), recorded_at=now, effective_at=now)
                   for event in (e.BranchFounded(branch_id=BRANCH, vestigingscode="12AB00", name="OBS De Regenboog",
                                                 address=address, phone="+31101234567", wijknetwerk="Noord"),
                                 e.BranchFounded(branch_id=other_branch, vestigingscode="34CD00", name="OBS Elders",
                                                 address=address, phone="+31101234567", wijknetwerk="Noord"),
                                 extern, ours, theirs)]
        publisher.publish_all(encoded)
        api = TestClient(access_app(access))

        with harness.deps.engine.begin() as connection:
            backend = harness.deps.service.provider.register_client(
                connection, "Kindkans backend", [REDIRECT], [], None,
                ["authorization_code", "refresh_token", TOKEN_EXCHANGE], ["access:write"])
        as_backend = replace(provider, client_id=backend.client_id, client_secret=backend.secret)
        login = log_in(as_backend, ib_er, scope="openid access:write")

        def exchange(subject_token: str, auth: tuple[str, str] = (backend.client_id, backend.secret),
                     **extra: str) -> httpx.Response:
            return httpx.post(f"{provider.base}/oauth2/token", auth=auth, data={
                "grant_type": TOKEN_EXCHANGE, "subject_token": subject_token,
                "subject_token_type": ACCESS_TOKEN_TYPE, **extra})

        exchanged = exchange(login["access_token"], scope="access:write")
        assert exchanged.status_code == 200, exchanged.text
        assert exchanged.json()["issued_token_type"] == ACCESS_TOKEN_TYPE
        claims = jwt.decode(exchanged.json()["access_token"], provider.keys()).claims
        assert claims["sub"] == str(ib_er.staff_id) and claims["act"] == {"sub": backend.client_id}
        assert claims["role"] == "ib_er" and "access" in claims["aud"]
        bearer = {"Authorization": f"Bearer {exchanged.json()['access_token']}"}
        until = (datetime.now(UTC) + timedelta(days=30)).isoformat()
        last = encoded[-1].id
        granted = wait_until(lambda: (r := api.post(f"/v1/dossiers/{ours.dossier_id}/grants?after_event={last}",
                                                    headers=bearer,
                                                    json={"staff_id": str(extern.staff_id), "until": until})
                                      ).status_code != 503 and r, timeout_s=20, message="the access state")
        assert granted.status_code == 201, granted.text
        refused = api.post(f"/v1/dossiers/{theirs.dossier_id}/grants", headers=bearer,
                           json={"staff_id": str(extern.staff_id), "until": until})
        assert refused.status_code == 403 and refused.json()["reason"] == "not-allowed-to-grant"

        def granted_events() -> list:
            return [x.event for x in (access.codec.decode(r.value)
                                      for r in read_all(harness.bootstrap, access.topics(Topic.ACCESS_EVENTS)))
                    if x.type == "AccessGranted" and x.event.dossier_id == ours.dossier_id]

        viewed = api.post(f"/v1/dossiers/{ours.dossier_id}/views", headers=bearer, json={})
        assert viewed.status_code == 200 and viewed.json()["allowed"] is True

        def views() -> list:
            return [x.event for x in (access.codec.decode(r.value)
                                      for r in read_all(harness.bootstrap, access.topics(Topic.ACCESS_EVENTS)))
                    if x.type == "DossierViewed" and x.event.dossier_id == ours.dossier_id]

        view = wait_until(views, message="the view on the log")[0]
        assert (view.staff_id, view.acted_by.client) == (ib_er.staff_id, backend.client_id)
        event = wait_until(granted_events, message="the grant on the log")[0]
        assert event.staff_id == extern.staff_id
        assert event.acted_by == e.ActedBy(actor=str(ib_er.staff_id), client=backend.client_id,
                                           on_behalf_of=str(ib_er.staff_id))

        # The audit lists it per actor and per pupil, with the client that carried it.
        from typer.testing import CliRunner

        from services.audit.cli import app as audit_app

        def audit(*args: str) -> list[dict]:
            result = CliRunner().invoke(audit_app, ["--json", "actions", *args],
                                        env={"KAFKA_BOOTSTRAP_SERVERS": harness.bootstrap,
                                             "SAMENVEILIG_TOPIC_PREFIX": prefix})
            assert result.exit_code == 0, result.output
            return list(json.loads(result.stdout)["actions"])

        mine = audit("--actor", str(ib_er.staff_id))
        assert [(row["type"], row["client"], row["on_behalf_of"], row["pupil_ids"]) for row in mine] == [
            ("AccessGranted", backend.client_id, str(ib_er.staff_id), [str(ours.pupil_id)])]
        assert [row["actor"] for row in audit("--pupil", str(ours.pupil_id))] == [str(ib_er.staff_id)]
        assert audit("--pupil", str(theirs.pupil_id)) == []

        # What the exchange refuses: another client holding her token, a service's own token,
        # a scope her token does not carry, and an exchanged token exchanged again.
        with harness.deps.engine.begin() as connection:
            other = harness.deps.service.provider.register_client(
                connection, "Een andere dienst", [], [], None, [TOKEN_EXCHANGE], ["access:write"])
        assert exchange(login["access_token"], auth=(other.client_id, other.secret)).json()["error"] == "invalid_grant"
        service_token = httpx.post(f"{provider.base}/oauth2/token", data={"grant_type": "client_credentials"},
                                   auth=(provider.service_id, provider.service_secret)).json()["access_token"]
        assert exchange(service_token).json()["error"] == "invalid_grant"
        assert exchange(login["access_token"], scope="access:write retention:write").json()["error"] == "invalid_scope"
        assert exchange(exchanged.json()["access_token"]).json()["error"] == "invalid_grant"
        assert exchange(login["access_token"], subject_token_type="urn:x").json()["error"] == "invalid_request"
    finally:
        for worker in workers:
            worker.stop_event.set()
        for thread in threads:
            thread.join(timeout=15)
        publisher.close()


def test_the_access_api_takes_the_providers_tokens_for_it_and_no_others(provider, tmp_path, master_key):
    """What crosses between the services: a service's client-credentials token from the running
    provider, checked by the access API against the provider's own JWKS over HTTP. (Last in the
    module: it rotates the shared provider's key.)"""
    from services.access.api import create_app as access_app
    from services.access.bootstrap import build as build_access
    from services.access.settings import AccessSettings

    access = build_access(AccessSettings(database_url=f"sqlite:///{tmp_path / 'access.sqlite'}",
                                         keystore_url=f"sqlite:///{tmp_path / 'keys.sqlite'}", master_key=master_key,
                                         oidc_issuer=provider.base))
    api = TestClient(access_app(access))
    with provider.auth.deps.engine.begin() as connection:
        backend = provider.auth.deps.service.provider.register_client(
            connection, "Kindkans backend", [], [], None, ["client_credentials"], ["access:read"])

    def token(client_id: str, secret: str, scope: str) -> str:
        answer = httpx.post(f"{provider.base}/oauth2/token", data={"grant_type": "client_credentials", "scope": scope},
                            auth=(client_id, secret))
        assert answer.status_code == 200, answer.text
        return answer.json()["access_token"]

    for_access = token(backend.client_id, backend.secret, "access:read")
    assert jwt.decode(for_access, provider.keys()).claims["aud"] == [backend.client_id, "access"]
    answer = api.get("/v1/progress", headers={"Authorization": f"Bearer {for_access}"})
    assert answer.status_code == 200, answer.text
    # A token of another client for another API: not for the access API.
    for_registry = token(provider.service_id, provider.service_secret, "registry:read")
    refused = api.get("/v1/progress", headers={"Authorization": f"Bearer {for_registry}"})
    assert refused.status_code == 401 and "access" in refused.json()["detail"]
    # After a key rotation, new tokens are signed with a key the API has not seen: it fetches it.
    with provider.auth.deps.engine.begin() as connection:
        provider.auth.deps.service.provider.rotate_signing_key(connection)
    rotated = token(backend.client_id, backend.secret, "access:read")
    wait_until(lambda: api.get("/v1/progress", headers={"Authorization": f"Bearer {rotated}"}).status_code == 200,
               timeout_s=5, message="the new key fetched (at most once a second)")
