"""Auth throughput: how many two-factor logins and session introspections the auth service does
per second, and how fast a departure ends a live session, against the broker's own round trip -
measured in one run, on one broker.

    .venv/bin/python -m bench.auth_throughput [--logins N] [--introspections M] [--departures D]
                                              [--bootstrap HOST:PORT] [--fetch-wait-ms W] [--json] [--profile]

1. Raw round trip: bench.harness.raw_roundtrips (send().get() -> received by a consumer that is
   already polling, with the fetch wait the ConsumerRunner uses), D pairs.
2. Logins: accounts enrolled through the service (StaffJoined applied, password set through the
   invitation token from the mail outbox, TOTP enrolment finished), with the argon2 cost of the
   AuthSettings defaults. Then N full logins, each `login_password` and `login_code` (a TOTP code)
   in a transaction of its own, as the API does. The clock is a ManualClock moved on 30 s after
   every round over the accounts, so that no TOTP step is used twice (the no-replay rule). Also:
   argon2 verify alone, and N/4 logins through the HTTP pages in-process (httpx ASGITransport).
3. Introspection: D accounts with a live session each (prepared through the service with CHEAP
   argon2 parameters - preparation only), then M x `introspect` of a session token in-process,
   each in a transaction of its own as the pages do. Then, as a relying party asks: a client
   registered with the OpenID provider (authorization_code + refresh_token), an access token for
   up to 100 of those sessions (a code issued for the session, exchanged with its PKCE verifier,
   in-process through the provider - preparation only), and M/10 x RFC 7662 `POST
   /oauth2/introspect` with client_secret_basic, in-process over HTTP (httpx ASGITransport).
4. Session end: the auth processor (ConsumerRunner in a thread) on the same database. D times, one
   after the other: publish StaffDeparted for a person with a live session (acks=all) and ask
   `introspect` on a fresh transaction every 1 ms until the session is inactive.

--profile runs the in-process introspections once more under cProfile; top costs to stderr.
The broker, progress, time limits and the report: bench.harness.
"""

from __future__ import annotations

import asyncio
import random
import re
import secrets
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import metadata
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pyotp
from argon2 import PasswordHasher, extract_parameters
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from fastapi import FastAPI
from sqlalchemy import func, select

from bench.events import staff_joined
from bench.harness import (
    PARTITIONS,
    SINGLE_ROUNDTRIP_LIMIT_S,
    WARMUP,
    Deadline,
    Run,
    Table,
    Worker,
    cli,
    departure_latencies,
    fmt_rate,
    fmt_ratio,
    latency_and_rate,
    latency_summary_ms,
    profile_top,
    progress,
    publisher_codec,
    ratio,
    raw_roundtrip_phase,
    require_positive,
    run_benchmark,
    seal,
    wait_until,
)
from services.auth import store
from services.auth.api import create_app
from services.auth.bootstrap import build, build_runner
from services.auth.deps import AuthDeps
from services.auth.domain import STEP_SECONDS
from services.auth.provider import AuthorizationRefused
from services.auth.settings import AuthSettings
from shared.clock import ManualClock
from shared.contracts.events import StaffDeparted, StaffRole
from shared.kafka.producer import EventPublisher, make_producer

# The cost the service runs with unless configured otherwise.
DEFAULT_TIME_COST: int = AuthSettings.model_fields["argon2_time_cost"].default
DEFAULT_MEMORY_KIB: int = AuthSettings.model_fields["argon2_memory_kib"].default
# For preparing the session-end accounts only (the tests' cost): nothing measured hashes with it.
CHEAP_TIME_COST = 1
CHEAP_MEMORY_KIB = 8192

PASSWORD = "paard-batterij-nietje-correct"
CLIENT = "192.0.2.10"  # the failure counters' client key (TEST-NET-1)
# Accounts the logins go round; the ManualClock moves one TOTP step after every round.
LOGIN_POOL = 20
LOGIN_WARMUP = 2
HTTP_LOGIN_SHARE = 4  # the HTTP pages do N/4 logins
INTROSPECT_WARMUP = 200
API_WARMUP = 20
API_SHARE = 10  # the HTTP API does M/10 introspections (and as many with unknown tokens in-process)
ACCESS_TOKENS = 100  # sessions given an access token for the RFC 7662 introspections
REDIRECT = "https://kindkans.bench/callback"  # the benchmark relying party's (never followed)
# The first departure waits for the processor's group join (Tansu: about half the session timeout).
GROUP_JOIN_LIMIT_S = 60.0
SEED = 20261125
BRANCH = uuid.UUID("00000000-0000-4000-8000-00000000a417")
INVITATION_LINK = re.compile(r"/uitnodiging/(\S+)")


def login_limit(n: int) -> float:
    return 60.0 + n * 3.0


def prepare_limit(n: int, hashing: bool) -> float:
    return 60.0 + n * (3.0 if hashing else 0.3)


def introspect_limit(n: int) -> float:
    return 60.0 + n * 0.02


def api_limit(n: int) -> float:
    return 60.0 + n * 0.1


# --- accounts ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Account:
    staff_id: uuid.UUID
    username: str
    secret: str
    recovery_codes: list[str]


def auth_settings(run: Run, database: str, time_cost: int, memory_kib: int, **extra: Any) -> AuthSettings:
    # The argon2 cost is given explicitly, whatever the environment says. cookie_secure stays at
    # its default (True). Every HTTP login and token request comes from one address: the
    # per-address throttles (60 logins, 1200 token and 12000 introspection requests a minute)
    # are lifted, the benchmark
    # measures the work, not the limit.
    return run.settings(AuthSettings, database, f"{run.prefix}auth", argon2_time_cost=time_cost,
                        argon2_memory_kib=memory_kib, login_rate_per_address="100000000/minute",
                        token_rate_per_address="100000000/minute",
                        introspect_rate_per_address="100000000/minute", **extra)


def totp_now(secret: str, moment: datetime) -> str:
    return pyotp.TOTP(secret).at(int(moment.timestamp()))


def invitation_token(connection: Any, email: str) -> str:
    """The invitation link is only in the queued mail until the relay sends it."""
    mail = store.mail_outbox
    body = connection.execute(select(mail.c.body).where(mail.c.recipient == email)
                              .order_by(mail.c.id.desc())).scalars().first()
    found = INVITATION_LINK.search(body or "")
    if found is None:
        raise RuntimeError(f"no invitation mail queued for {email}")
    return found.group(1)


def enrol(deps: AuthDeps, number: int, with_session: bool) -> tuple[Account, str | None]:
    """StaffJoined (sealed and decoded as the processor would) -> invitation -> password -> TOTP
    enrolment; with_session: also a two-step login with a recovery code. One transaction."""
    joined = staff_joined(BRANCH, number, StaffRole.LEERKRACHT)
    email = str(joined.email)
    recorded = deps.codec.decode(seal(deps.codec, joined, deps.clock.now()).value)
    service = deps.service
    with deps.engine.begin() as connection:
        service.apply(recorded, connection)
        enrolment, problem = service.set_password(connection, invitation_token(connection, email), PASSWORD)
        if enrolment is None:
            raise RuntimeError(f"set_password refused: {problem}")
        started = service.start_enrolment(connection, enrolment)
        if started is None:
            raise RuntimeError("start_enrolment refused the enrolment token")
        codes = service.finish_enrolment(connection, enrolment, totp_now(started.secret, deps.clock.now()))
        if codes is None:
            raise RuntimeError("finish_enrolment refused the TOTP code")
        account = Account(joined.staff_id, email, started.secret, codes)
        if not with_session:
            return account, None
        # The TOTP step is used up by the enrolment: the first login takes a recovery code.
        first = service.login_password(connection, email, PASSWORD, CLIENT)
        second = service.login_code(connection, first.token or "", codes[0], CLIENT) if first.ok else first
        if not second.ok or second.token is None:
            raise RuntimeError(f"preparation login failed: {second.message}")
        return account, second.token


def prepare(deps: AuthDeps, count: int, with_session: bool, what: str) -> tuple[list[Account], list[str], float]:
    deadline = Deadline(prepare_limit(count, hashing=not with_session), what)
    accounts: list[Account] = []
    tokens: list[str] = []
    started = time.perf_counter()
    for i in range(count):
        if i % 50 == 0:
            deadline.check(f"{i} of {count} accounts")
        account, token = enrol(deps, i, with_session)
        accounts.append(account)
        if token is not None:
            tokens.append(token)
    return accounts, tokens, time.perf_counter() - started


# --- a relying party of the OpenID provider --------------------------------------------------

@dataclass(frozen=True)
class RelyingParty:
    client_id: str
    secret: str


def register_relying_party(deps: AuthDeps, backchannel_logout_uri: str | None = None) -> RelyingParty:
    """A client of the code flow, as `samenveilig-auth` registers one."""
    with deps.engine.begin() as connection:
        registered = deps.service.provider.register_client(
            connection, "Kindkans (bench)", [REDIRECT], [], backchannel_logout_uri,
            ["authorization_code", "refresh_token"], [])
    return RelyingParty(registered.client_id, registered.secret)


def session_of(connection: Any, deps: AuthDeps, token: str) -> tuple[str, str]:
    """(session id, staff id) of a live session token, as the authorize page finds them."""
    answer = deps.service.introspect(connection, token)
    if not answer["active"]:
        raise RuntimeError("a prepared session is not active")
    return str(answer["session_id"]), str(answer["staff_id"])


def authorize(connection: Any, deps: AuthDeps, rp: RelyingParty, session_id: str, staff_id: str) -> tuple[str, str]:
    """What GET /oauth2/authorize does for a browser that has a session: the request checked, a
    single-use code bound to the session. Returns (code, PKCE verifier)."""
    verifier = secrets.token_urlsafe(48)
    asked = deps.service.provider.authorization_request(connection, {
        "response_type": "code", "client_id": rp.client_id, "redirect_uri": REDIRECT, "scope": "openid profile",
        "state": secrets.token_urlsafe(8), "nonce": secrets.token_urlsafe(16),
        "code_challenge": create_s256_code_challenge(verifier), "code_challenge_method": "S256"})
    if isinstance(asked, AuthorizationRefused):
        raise RuntimeError(f"authorization request refused: {asked.error} {asked.description}")
    redirect = deps.service.provider.issue_code(connection, asked, session_id, staff_id)
    return parse_qs(urlsplit(redirect).query)["code"][0], verifier


def token_request(connection: Any, deps: AuthDeps, rp: RelyingParty, form: dict[str, str]) -> dict[str, Any]:
    """What POST /oauth2/token does in its transaction: the client authenticated, the grant decided."""
    provider = deps.service.provider
    return provider.token(connection, provider.authenticate_client(connection, rp.client_id, rp.secret), form)


def exchange_code(connection: Any, deps: AuthDeps, rp: RelyingParty, code: str, verifier: str) -> dict[str, Any]:
    return token_request(connection, deps, rp, {"grant_type": "authorization_code", "code": code,
                                                "redirect_uri": REDIRECT, "code_verifier": verifier})


def access_tokens(deps: AuthDeps, rp: RelyingParty, session_tokens: list[str]) -> list[str]:
    """An access token for each session (code + PKCE, exchanged), all in one transaction."""
    with deps.engine.begin() as connection:
        issued = []
        for token in session_tokens:
            code, verifier = authorize(connection, deps, rp, *session_of(connection, deps, token))
            issued.append(str(exchange_code(connection, deps, rp, code, verifier)["access_token"]))
    return issued


# --- 2. logins -----------------------------------------------------------------------------

class LoginCursor:
    """Goes round the accounts; after each round the clock moves one TOTP step, so every login
    has a step its account has not used yet."""

    def __init__(self, accounts: list[Account], clock: ManualClock) -> None:
        self.accounts = accounts
        self.clock = clock
        self.count = 0

    def next(self) -> tuple[Account, str]:
        if self.count % len(self.accounts) == 0:
            self.clock.advance(timedelta(seconds=STEP_SECONDS))
        account = self.accounts[self.count % len(self.accounts)]
        self.count += 1
        return account, totp_now(account.secret, self.clock.now())


def login_in_process(deps: AuthDeps, account: Account, code: str) -> tuple[float, float]:
    """One login as the pages make it: each step in a transaction of its own."""
    t0 = time.perf_counter()
    with deps.engine.begin() as connection:
        first = deps.service.login_password(connection, account.username, PASSWORD, CLIENT)
    t1 = time.perf_counter()
    if not first.ok or first.token is None:
        raise RuntimeError(f"login_password failed for {account.username}: {first.message}")
    with deps.engine.begin() as connection:
        second = deps.service.login_code(connection, first.token, code, CLIENT)
    t2 = time.perf_counter()
    if not second.ok or second.token is None:
        raise RuntimeError(f"login_code failed for {account.username}: {second.message}")
    return t1 - t0, t2 - t1


async def http_logins(app: FastAPI, cursor: LoginCursor, count: int, deadline: Deadline) -> list[float]:
    """Logins through the pages: POST /inloggen, then POST /inloggen/code with the challenge
    cookie. https, because the cookies are Secure (cookie_secure's default). httpx's ASGI
    transport runs the app in this event loop and FastAPI the sync endpoints in its thread pool,
    as under uvicorn minus the HTTP parsing (Starlette's TestClient adds a thread hop per request)."""
    latencies: list[float] = []
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://auth.bench") as client:
        for i in range(count):
            deadline.check(f"{i} of {count} HTTP logins")
            account, code = cursor.next()
            client.cookies.clear()  # a fresh browser each time
            t0 = time.perf_counter()
            first = await client.post("/inloggen", data={"gebruikersnaam": account.username, "wachtwoord": PASSWORD},
                                      timeout=max(1.0, deadline.remaining()))
            if first.status_code != 303 or not client.cookies.get("sv_challenge"):
                raise RuntimeError(f"POST /inloggen answered {first.status_code}")
            second = await client.post("/inloggen/code", data={"code": code}, timeout=max(1.0, deadline.remaining()))
            latencies.append(time.perf_counter() - t0)
            if second.status_code != 303 or not client.cookies.get("sv_session"):
                raise RuntimeError(f"POST /inloggen/code answered {second.status_code}")
    return latencies


def run_logins(run: Run, n: int) -> dict[str, Any]:
    settings = auth_settings(run, "auth-logins.sqlite", DEFAULT_TIME_COST, DEFAULT_MEMORY_KIB)
    clock_start = datetime.now(UTC)
    clock = ManualClock(clock_start)
    deps = build(settings, clock)
    try:
        pool = min(LOGIN_POOL, n + LOGIN_WARMUP)
        progress(f"logins: enrolling {pool} accounts through the service (argon2 t={settings.argon2_time_cost}, "
                 f"m={settings.argon2_memory_kib} KiB, the AuthSettings defaults)")
        accounts, _, prepare_s = prepare(deps, pool, with_session=False, what="login accounts")
        with deps.engine.connect() as connection:
            stored = connection.execute(select(store.accounts.c.password_hash)
                                        .where(store.accounts.c.staff_id == str(accounts[0].staff_id))).scalar_one()
        params = extract_parameters(stored)
        progress(f"  {pool} accounts in {prepare_s:.1f} s; stored hash: {params.type.name} t={params.time_cost} "
                 f"m={params.memory_cost} KiB p={params.parallelism}")

        samples = max(5, min(50, n // 4))
        progress(f"logins: argon2 verify alone, {samples} times on a stored hash")
        hasher = PasswordHasher(time_cost=settings.argon2_time_cost, memory_cost=settings.argon2_memory_kib)
        verify_times: list[float] = []
        for _ in range(samples):
            t0 = time.perf_counter()
            hasher.verify(stored, PASSWORD)
            verify_times.append(time.perf_counter() - t0)
        verify = latency_summary_ms(verify_times)
        progress(f"  p50 {verify['p50_ms']:.1f} ms")

        cursor = LoginCursor(accounts, clock)
        progress(f"logins: {n} x login_password + login_code (TOTP) in-process, a transaction each "
                 f"(+{LOGIN_WARMUP} warm-up)")
        deadline = Deadline(login_limit(n + LOGIN_WARMUP), "in-process logins")
        for _ in range(LOGIN_WARMUP):
            login_in_process(deps, *cursor.next())
        passwords: list[float] = []
        codes: list[float] = []
        started = time.perf_counter()
        for i in range(n):
            deadline.check(f"{i} of {n} logins")
            password_s, code_s = login_in_process(deps, *cursor.next())
            passwords.append(password_s)
            codes.append(code_s)
        service_result = latency_and_rate([p + c for p, c in zip(passwords, codes, strict=True)],
                                          time.perf_counter() - started, 2)
        service_result.update({"login_password": latency_summary_ms(passwords),
                               "login_code": latency_summary_ms(codes)})
        progress(f"  {service_result['rate_per_s']:.1f} logins/s, p50 {service_result['p50_ms']:.1f} ms")

        http_n = max(1, n // HTTP_LOGIN_SHARE)
        progress(f"logins: {http_n} through the pages in-process (httpx ASGITransport, +{LOGIN_WARMUP} warm-up)")
        app = create_app(deps)
        http_deadline = Deadline(login_limit(http_n + LOGIN_WARMUP), "HTTP logins")
        asyncio.run(http_logins(app, cursor, LOGIN_WARMUP, http_deadline))
        started = time.perf_counter()
        http_times = asyncio.run(http_logins(app, cursor, http_n, http_deadline))
        http_result = latency_and_rate(http_times, time.perf_counter() - started, 2)
        progress(f"  {http_result['rate_per_s']:.1f} logins/s, p50 {http_result['p50_ms']:.1f} ms")

        with deps.engine.connect() as connection:
            sessions = connection.execute(select(func.count()).select_from(store.sessions)).scalar_one()
        if sessions != cursor.count:
            raise RuntimeError(f"{sessions} sessions in the login database, expected {cursor.count}")
        return {
            "accounts": pool, "prepare_seconds": round(prepare_s, 2),
            "argon2": {"type": params.type.name, "time_cost": params.time_cost, "memory_kib": params.memory_cost,
                       "parallelism": params.parallelism, "hash_len": params.hash_len},
            "argon2_verify": verify, "service": service_result, "http": http_result,
            "sessions_verified": sessions, "clock_advanced_s": round((clock.now() - clock_start).total_seconds()),
        }
    finally:
        deps.engine.dispose()


# --- 3. introspection ----------------------------------------------------------------------

def time_introspect(deps: AuthDeps, tokens: list[str], expect_active: bool, deadline: Deadline
                    ) -> tuple[list[float], list[float], float]:
    """Each introspection in a transaction of its own, as the API does. Returns the times with the
    transaction (pool checkout, BEGIN, COMMIT), the times of the call alone, and the wall time."""
    whole: list[float] = []
    calls: list[float] = []
    service = deps.service
    started = time.perf_counter()
    for i, token in enumerate(tokens):
        if i % 1000 == 0:
            deadline.check(f"{i} of {len(tokens)} introspections")
        t0 = time.perf_counter()
        with deps.engine.begin() as connection:
            t1 = time.perf_counter()
            answer = service.introspect(connection, token)
            t2 = time.perf_counter()
        t3 = time.perf_counter()
        if answer["active"] is not expect_active:
            raise RuntimeError(f"introspection {i} answered active={answer['active']}, expected {expect_active}")
        whole.append(t3 - t0)
        calls.append(t2 - t1)
    return whole, calls, time.perf_counter() - started


async def http_introspect(app: FastAPI, rp: RelyingParty, tokens: list[str], deadline: Deadline) -> list[float]:
    """RFC 7662 as a relying party asks: POST /oauth2/introspect, the client's id and secret in
    the Basic header (client_secret_basic), each answer checked to be an active access token."""
    latencies: list[float] = []
    auth = httpx.BasicAuth(rp.client_id, rp.secret)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://auth.bench") as client:
        for i, token in enumerate(tokens):
            if i % 100 == 0:
                deadline.check(f"{i} of {len(tokens)} API introspections")
            t0 = time.perf_counter()
            response = await client.post("/oauth2/introspect", data={"token": token}, auth=auth,
                                         timeout=max(1.0, deadline.remaining()))
            latencies.append(time.perf_counter() - t0)
            answer = response.json() if response.status_code == 200 else {}
            if answer.get("active") is not True or answer.get("token_type") != "access_token":
                raise RuntimeError(f"POST /oauth2/introspect answered {response.status_code}: {response.text[:200]}")
    return latencies


def run_introspection(deps: AuthDeps, tokens: list[str], m: int, profile: bool) -> dict[str, Any]:
    rng = random.Random(SEED)
    picks = [rng.choice(tokens) for _ in range(m)]
    progress(f"introspection: {m} x introspect in-process, a transaction each, over {len(tokens)} live "
             f"sessions (+{INTROSPECT_WARMUP} warm-up)")
    time_introspect(deps, picks[:INTROSPECT_WARMUP], True, Deadline(introspect_limit(INTROSPECT_WARMUP), "warm-up"))
    whole, calls, wall = time_introspect(deps, picks, True, Deadline(introspect_limit(m), "in-process introspections"))
    service_result = latency_and_rate(whole, wall)
    service_result["call_alone"] = latency_summary_ms(calls)
    progress(f"  {service_result['rate_per_s']:.0f}/s, p50 {service_result['p50_ms']:.3f} ms, "
             f"p99 {service_result['p99_ms']:.3f} ms")

    small = max(1, m // API_SHARE)
    unknown_tokens = [secrets.token_urlsafe(32) for _ in range(small)]
    progress(f"introspection: {small} x introspect in-process with unknown tokens")
    u_whole, _, u_wall = time_introspect(deps, unknown_tokens, False, Deadline(introspect_limit(small), "unknown"))
    unknown = latency_and_rate(u_whole, u_wall)

    given = tokens[:ACCESS_TOKENS]
    progress(f"introspection: a relying party registered; an access token for {len(given)} of the sessions "
             "(code + PKCE exchanged in-process, one transaction; preparation only)")
    rp = register_relying_party(deps)
    access = access_tokens(deps, rp, given)
    access_picks = [rng.choice(access) for _ in range(small)]
    progress(f"introspection: {small} x POST /oauth2/introspect (RFC 7662, client_secret_basic) in-process "
             f"(httpx ASGITransport, +{API_WARMUP} warm-up)")
    app = create_app(deps)
    deadline = Deadline(api_limit(small + API_WARMUP), "API introspections")
    asyncio.run(http_introspect(app, rp, access_picks[:API_WARMUP], deadline))
    started = time.perf_counter()
    api_times = asyncio.run(http_introspect(app, rp, access_picks, deadline))
    api = latency_and_rate(api_times, time.perf_counter() - started)
    api["access_tokens"] = len(access)
    progress(f"  {api['rate_per_s']:.0f}/s, p50 {api['p50_ms']:.2f} ms, p99 {api['p99_ms']:.2f} ms")
    if profile:
        progress(f"introspection: {m} x introspect again, under cProfile")
        profiled = Deadline(introspect_limit(len(picks)) * 3, "profiled introspections")
        sys.stderr.write(profile_top(lambda: time_introspect(deps, picks, True, profiled)))
    return {"sessions": len(tokens), "service": service_result, "unknown_token": unknown, "api": api}


# --- 4. session end after StaffDeparted ----------------------------------------------------

def introspect_fresh(deps: AuthDeps, token: str) -> bool:
    """One introspection as the API makes it: a pooled connection, a transaction of its own."""
    with deps.engine.begin() as connection:
        return bool(deps.service.introspect(connection, token)["active"])


def run_session_end(run: Run, deps: AuthDeps, accounts: list[Account], tokens: list[str], d: int) -> dict[str, Any]:
    codec = publisher_codec(deps.settings, deps.topics)
    publisher = EventPublisher(make_producer(run.bootstrap, "bench-auth-publisher"))
    worker: Worker | None = None

    def departure(subject: tuple[Account, str]) -> Any:
        return seal(codec, StaffDeparted(branch_id=BRANCH, staff_id=subject[0].staff_id))

    try:
        runner = build_runner(deps)  # creates the registry and auth topics
        worker = Worker("auth-processor", runner).start()
        progress("session end: first departure, through the processor's group join")
        first = (accounts[0], tokens[0])
        publisher.publish(departure(first), timeout_s=SINGLE_ROUNDTRIP_LIMIT_S)
        joined = wait_until(lambda: not introspect_fresh(deps, tokens[0]),
                            Deadline(GROUP_JOIN_LIMIT_S, "group join + first departure"),
                            lambda: "session still active", [worker], 0.001)
        join_s = joined - worker.started_at
        progress(f"  ended {join_s:.1f} s after the processor's start")

        progress(f"session end: {d} departures, publish StaffDeparted -> introspect says inactive "
                 f"(+{WARMUP} warm-up)")
        result = departure_latencies(publisher, list(zip(accounts[1:], tokens[1:], strict=True)), departure,
                                     lambda subject: introspect_fresh(deps, subject[1]), worker, "session ends")
        sessions = store.sessions
        with deps.engine.connect() as connection:
            still_active = connection.execute(select(func.count()).select_from(sessions)
                                              .where(sessions.c.active.is_(True))).scalar_one()
            reasons = {str(reason): count for reason, count in connection.execute(
                select(sessions.c.ended_reason, func.count()).group_by(sessions.c.ended_reason)
                .order_by(func.count().desc()))}
        if still_active:
            raise RuntimeError(f"{still_active} sessions are still active after all departures")
        if runner.stats.dead_lettered:
            raise RuntimeError(f"{runner.stats.dead_lettered} events were dead-lettered: {runner.stats.reasons}")
        result.update({"group_join_seconds": round(join_s, 2),
                       "session_timeout_ms": deps.settings.consumer_session_timeout_ms, "ended_reasons": reasons,
                       "applied": runner.stats.applied, "batches": runner.stats.batches,
                       "dead_lettered": runner.stats.dead_lettered})
        return result
    finally:
        if worker is not None:
            worker.stop()
        publisher.close()


def run_sessions(run: Run, m: int, d: int, profile: bool) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    deps = build(auth_settings(run, "auth-sessions.sqlite", CHEAP_TIME_COST, CHEAP_MEMORY_KIB))
    try:
        count = 1 + WARMUP + d  # the group-join departure, the warm-up ones, the measured ones
        progress(f"sessions: preparing {count} enrolled accounts with a live session each, through the service "
                 f"with CHEAP argon2 (t={CHEAP_TIME_COST}, m={CHEAP_MEMORY_KIB} KiB; preparation only)")
        accounts, tokens, prepare_s = prepare(deps, count, with_session=True, what="session accounts")
        progress(f"  {count} accounts with sessions in {prepare_s:.1f} s")
        prep = {"accounts": count, "seconds": round(prepare_s, 2), "argon2_time_cost": CHEAP_TIME_COST,
                "argon2_memory_kib": CHEAP_MEMORY_KIB}
        introspection = run_introspection(deps, tokens, m, profile)
        session_end = run_session_end(run, deps, accounts, tokens, d)
        return prep, introspection, session_end
    finally:
        deps.engine.dispose()


def measure(run: Run) -> dict[str, Any]:
    args = run.args
    raw = raw_roundtrip_phase(run, args.departures)
    logins = run_logins(run, args.logins)
    preparation, introspection, session_end = run_sessions(run, args.introspections, args.departures, args.profile)
    return {
        "params": {"logins": args.logins, "http_logins": max(1, args.logins // HTTP_LOGIN_SHARE),
                   "introspections": args.introspections,
                   "api_introspections": max(1, args.introspections // API_SHARE),
                   "departures": args.departures, "raw_roundtrips": args.departures, "warmup": WARMUP,
                   "login_warmup": LOGIN_WARMUP, "introspect_warmup": INTROSPECT_WARMUP, "partitions": PARTITIONS,
                   "fetch_max_wait_ms": run.fetch_wait_ms, "argon2_cffi": metadata.version("argon2-cffi"),
                   "seed": SEED, "topic_prefix": run.prefix},
        "raw_roundtrip": raw,
        "logins": logins,
        "preparation": preparation,
        "introspection": introspection,
        "session_end": session_end,
        "ratios": {"session_end_p50": ratio(session_end["p50_ms"], raw["p50_ms"]),
                   "session_end_p99": ratio(session_end["p99_ms"], raw["p99_ms"])},
    }


def render(report: dict[str, Any]) -> str:
    p, lg, prep, intro, end = (report["params"], report["logins"], report["preparation"], report["introspection"],
                               report["session_end"])
    ratios = report["ratios"]
    a2, sv, http, ver = lg["argon2"], lg["service"], lg["http"], lg["argon2_verify"]
    isv, iun, iapi = intro["service"], intro["unknown_token"], intro["api"]
    table = Table("auth throughput", report["machine"], width=58, value_width=18,
                  machine_extra=f"argon2-cffi {p['argon2_cffi']}")
    table.header("sizes", f"N={p['logins']} logins ({p['http_logins']} over HTTP), M={p['introspections']} "
                          f"introspections ({p['api_introspections']} over HTTP), D={p['departures']} departures "
                          f"(+{WARMUP} warm-up)")
    table.section(f"RAW BASELINE (bench.harness.raw_roundtrips; fetch_max_wait_ms={p['fetch_max_wait_ms']} as the "
                  "ConsumerRunner)")
    table.latency("round trip send().get() -> received by a polling consumer", report["raw_roundtrip"])
    table.section(f"LOGINS (argon2 as configured by default: {a2['type']} t={a2['time_cost']} m={a2['memory_kib']} "
                  f"KiB p={a2['parallelism']}; {lg['accounts']} enrolled accounts)")
    table.latency("argon2 verify alone", ver, 1)
    table.latency("login_password + login_code (TOTP), in-process", sv, 1, fmt_rate(sv["rate_per_s"], "logins/s", 1))
    table.latency("of which login_password (its transaction)", sv["login_password"], 1, indent=2)
    table.latency("of which login_code (its transaction)", sv["login_code"], 2, indent=2)
    table.figure("argon2 verify p50 / login p50", f"{ver['p50_ms'] / sv['p50_ms'] * 100 if sv['p50_ms'] else 0:.0f} %",
                 indent=2)
    table.latency("POST /inloggen + /inloggen/code (httpx ASGITransport)", http, 1,
                  fmt_rate(http["rate_per_s"], "logins/s", 1))
    table.section(f"INTROSPECTION ({intro['sessions']} live sessions, each call in a transaction of its own as "
                  "the API)")
    table.text("  session tokens in-process, as the pages ask; access tokens over RFC 7662, as a relying party asks")
    table.latency("introspect(), live token, in-process", isv, 3, fmt_rate(isv["rate_per_s"], "calls/s"))
    table.latency("of which the call alone (no BEGIN/COMMIT/checkout)", isv["call_alone"], 3, indent=2)
    table.latency("introspect(), unknown token, in-process", iun, 3, fmt_rate(iun["rate_per_s"], "calls/s"))
    table.latency("POST /oauth2/introspect (RFC 7662), access token", iapi, 2, fmt_rate(iapi["rate_per_s"], "calls/s"))
    table.figure("client_secret_basic, httpx ASGITransport", "", f"access tokens of {iapi['access_tokens']} sessions",
                 indent=2)
    table.section("SESSION END (StaffDeparted published, acks=all -> auth processor -> introspect says inactive)")
    table.figure("prepared", "", f"{prep['accounts']} accounts with a live session, through the service with CHEAP "
                                 f"argon2 (t={prep['argon2_time_cost']}, m={prep['argon2_memory_kib']} KiB) - "
                                 f"preparation only, in {prep['seconds']:.0f} s")
    table.latency("publish start -> introspect inactive", end)
    table.latency("of which publish until acked", end["publish_ack"], indent=2)
    table.latency("of which ack -> inactive", end["after_ack"], indent=2)
    table.figure("ratio to raw round trip", "", f"p50 {fmt_ratio(ratios['session_end_p50'], 2, ' x')}   "
                                                f"p99 {fmt_ratio(ratios['session_end_p99'], 2, ' x')}", indent=2)
    table.figure("polls", "", f"introspect every {end['poll_interval_ms']:.0f} ms, {end['polls_mean']:.1f} polls on "
                              f"average; group join {end['group_join_seconds']:.1f} s (not counted)", indent=2)
    table.figure("sessions ended, by recorded reason", "",
                 ", ".join(f"{reason} {count}" for reason, count in end["ended_reasons"].items()), indent=2)
    return table.render(report)


def main(argv: list[str] | None = None) -> int:
    parser = cli("bench.auth_throughput", __doc__, fetch_wait=True)
    parser.add_argument("--logins", type=int, default=200, help="N, in-process logins measured (default 200)")
    parser.add_argument("--introspections", type=int, default=20_000,
                        help="M, in-process introspections; the HTTP API does M/10 (default 20000)")
    parser.add_argument("--departures", type=int, default=1000,
                        help="D, departures measured, and raw round trips (default 1000)")
    parser.add_argument("--profile", action="store_true",
                        help="run the in-process introspections again under cProfile; top costs to stderr")
    args = parser.parse_args(argv)
    require_positive(parser, args, "logins", "introspections", "departures")
    return run_benchmark(args, measure, render)


if __name__ == "__main__":
    sys.exit(main())
