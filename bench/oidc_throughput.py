"""OpenID Connect throughput: how many tokens the auth service's provider issues per second, how
many access tokens a relying party validates per second with a local JWKS or has introspected,
and how fast a departure reaches a relying party as a back-channel logout - against the broker's
own round trip, measured in one run, on one broker.

    .venv/bin/python -m bench.oidc_throughput [--tokens T] [--validations V] [--introspections I]
                                              [--departures D] [--roundtrips R] [--relay-interval-ms MS]
                                              [--bootstrap HOST:PORT] [--fetch-wait-ms W] [--json] [--profile]

0. Raw round trip: bench.harness.raw_roundtrips (send().get() -> received by a consumer that is
   already polling, with the fetch wait the ConsumerRunner uses), R pairs (default: D, at most 200).
   Every figure below is also given as its p50 over this p50.
1. Preparation (not timed): a client registered with the provider (authorization_code +
   refresh_token, a back-channel logout URI on a loopback http.server), D+6 staff members each
   with a live session given to that client (a code issued for it): StaffJoined applied by the
   service, the session row written with the store, 100 a transaction.
2. Tokens, in-process through the provider, each step in a transaction of its own as its
   endpoint has it: T x authorize (the request checked, a code issued for a session, PKCE S256),
   T x code exchange (client authenticated, code + verifier -> access, ID and refresh token), and
   T x refresh rotation (each refresh token once -> a new access, ID and refresh token).
3. Validation at a relying party: V x joserfc `jwt.decode` + `JWTClaimsRegistry.validate` (iss,
   aud, exp, typ at+jwt) of the rotated access tokens against a KeySet imported once from
   `provider.jwks()` (a relying party caches the JWKS).
4. Introspection: I x `provider.introspect` in-process (a transaction each), and I x RFC 7662
   `POST /oauth2/introspect` with client_secret_basic in-process over HTTP (httpx ASGITransport).
5. Back-channel logout: the auth processor (ConsumerRunner) and the auth relay (OutboxRelay, with
   the provider's `deliver_logouts` task, mail to a loopback SMTP catcher) in threads. D times, one
   after the other: publish StaffDeparted (acks=all) for a person with a live session and wait
   until the relying party's endpoint receives the logout token for that session (stamped on
   arrival; the endpoint verifies it against the JWKS, as a relying party must, before it answers
   200). The relay's interval (relay_interval_s) bounds the wait between the processor's commit
   and the delivery.

--profile runs the code exchanges and the HTTP introspections once more under cProfile; top costs to
stderr. The broker, progress, time limits and the report: bench.harness.
"""

from __future__ import annotations

import asyncio
import http.server
import random
import secrets
import sys
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

from joserfc import jwk, jwt
from joserfc.errors import JoseError
from sqlalchemy import func, select

from bench.auth_throughput import (
    API_WARMUP,
    BRANCH,
    CHEAP_MEMORY_KIB,
    CHEAP_TIME_COST,
    GROUP_JOIN_LIMIT_S,
    RelyingParty,
    api_limit,
    auth_settings,
    authorize,
    exchange_code,
    http_introspect,
    introspect_fresh,
    register_relying_party,
    token_request,
)
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
    roundtrip_limit,
    run_benchmark,
    seal,
    wait_until,
)
from services.auth import store
from services.auth.api import create_app
from services.auth.bootstrap import build, build_relay, build_runner
from services.auth.deps import AuthDeps
from services.auth.provider import BACKCHANNEL_LOGOUT_EVENT
from services.auth.service import token_hash
from services.auth.settings import AuthSettings
from shared.contracts.events import StaffDeparted, StaffRole
from shared.kafka.producer import EventPublisher, make_producer
from shared.outbox import OutboxRelay
from tests.support import SmtpCatcher

SEED = 20261203
PREPARE_BATCH = 100  # accounts per preparation transaction
TOKEN_CHUNK = 200  # codes issued, then exchanged, this many at a time (a code lives one minute)
TOKEN_WARMUP = 20
VALIDATION_WARMUP = 200
INTROSPECT_WARMUP = 50
MAX_DEFAULT_ROUNDTRIPS = 200
DEFAULT_RELAY_INTERVAL_S: float = AuthSettings.model_fields["relay_interval_s"].default


def token_limit(n: int) -> float:
    return 60.0 + n * 0.1


def validation_limit(n: int) -> float:
    return 60.0 + n * 0.01


def introspect_limit(n: int) -> float:
    return 60.0 + n * 0.05


# --- the relying party's back-channel logout endpoint -----------------------------------------

class BackChannel(http.server.ThreadingHTTPServer):
    """The relying party's back-channel logout endpoint on loopback: stamps each POST as it
    arrives (perf_counter and wall clock), verifies the logout token as OpenID Back-Channel Logout
    1.0 section 2.6 asks (signature by a key of the JWKS, iss, aud, iat/exp, the event, a sid, no
    nonce), answers 200 when it holds and 400 when not, and wakes whoever waits for that session."""

    daemon_threads = True

    def __init__(self, keys: jwk.KeySet, issuer: str) -> None:
        self.keys = keys
        self.issuer = issuer
        self.client_id = ""  # set once the client is registered
        self.arrivals: dict[str, tuple[float, float]] = {}  # sid -> (perf_counter, time.time)
        self.refused: list[str] = []
        self.changed = threading.Condition()
        super().__init__(("127.0.0.1", 0), _BackChannelHandler)

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/backchannel-logout"

    def accept(self, token: str) -> str | None:
        """The session id of a valid logout token, else None (and the reason kept)."""
        try:
            decoded = jwt.decode(token, self.keys, algorithms=["ES256"])
            jwt.JWTClaimsRegistry(iss={"essential": True, "value": self.issuer},
                                  aud={"essential": True, "value": self.client_id},
                                  iat={"essential": True}, sid={"essential": True},
                                  events={"essential": True}).validate(decoded.claims)
        except (JoseError, ValueError) as error:
            self.refused.append(type(error).__name__)
            return None
        if decoded.header.get("typ") != "logout+jwt" or "nonce" in decoded.claims \
                or BACKCHANNEL_LOGOUT_EVENT not in decoded.claims["events"]:
            self.refused.append("not a logout token")
            return None
        return str(decoded.claims["sid"])

    def wait_for(self, session_id: str, timeout_s: float) -> tuple[float, float] | None:
        with self.changed:
            self.changed.wait_for(lambda: session_id in self.arrivals or bool(self.refused), timeout=timeout_s)
            return self.arrivals.get(session_id)


class _BackChannelHandler(http.server.BaseHTTPRequestHandler):
    server: BackChannel

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
        stamped = (time.perf_counter(), time.time())
        tokens = parse_qs(body).get("logout_token", [])
        session_id = self.server.accept(tokens[0]) if len(tokens) == 1 else None
        with self.server.changed:
            if session_id is not None:
                self.server.arrivals.setdefault(session_id, stamped)
            elif len(tokens) != 1:
                self.server.refused.append("no logout_token")
            self.server.changed.notify_all()
        self.send_response(200 if session_id is not None else 400)
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


# --- 1. preparation --------------------------------------------------------------------------

def prepare_sessions(deps: AuthDeps, rp: RelyingParty, count: int) -> tuple[list[tuple[str, str, str]], float]:
    """`count` staff members, each with a live session given to the client: StaffJoined applied by
    the service (sealed and decoded as the processor would: account, role and branch), a session
    row written with the store as login_code writes it, and one code issued for it (never
    exchanged). No password, TOTP or recovery code: no path measured here reads them (the login is
    bench.auth_throughput's). PREPARE_BATCH a transaction. Returns (session token, session id,
    staff id) each."""
    deadline = Deadline(60.0 + count * 0.1, "preparing the sessions")
    sessions: list[tuple[str, str, str]] = []
    started = time.perf_counter()
    for first in range(0, count, PREPARE_BATCH):
        deadline.check(f"{first} of {count} sessions")
        with deps.engine.begin() as connection:
            for number in range(first, min(first + PREPARE_BATCH, count)):
                joined = staff_joined(BRANCH, number, StaffRole.LEERKRACHT)
                deps.service.apply(deps.codec.decode(seal(deps.codec, joined, deps.clock.now()).value), connection)
                staff_id, session_id, token = str(joined.staff_id), str(uuid.uuid4()), secrets.token_urlsafe(32)
                store.add_session(connection, session_id, token_hash(token), staff_id, deps.clock.now(), "totp")
                authorize(connection, deps, rp, session_id, staff_id)
                sessions.append((token, session_id, staff_id))
    return sessions, time.perf_counter() - started


# --- 2. tokens -------------------------------------------------------------------------------

def issue_tokens(deps: AuthDeps, rp: RelyingParty, sessions: list[tuple[str, str, str]], count: int,
                 deadline: Deadline) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any]]:
    """`count` codes issued and exchanged, a transaction each, round-robin over the sessions;
    TOKEN_CHUNK codes are issued, then those exchanged (a code lives one minute)."""
    issued: list[dict[str, Any]] = []
    authorize_s: list[float] = []
    exchange_s: list[float] = []
    authorize_wall = exchange_wall = 0.0
    for first in range(0, count, TOKEN_CHUNK):
        deadline.check(f"{first} of {count} code exchanges")
        codes = []
        started = time.perf_counter()
        for i in range(first, min(first + TOKEN_CHUNK, count)):
            _, session_id, staff_id = sessions[i % len(sessions)]
            t0 = time.perf_counter()
            with deps.engine.begin() as connection:
                codes.append(authorize(connection, deps, rp, session_id, staff_id))
            authorize_s.append(time.perf_counter() - t0)
        authorize_wall += time.perf_counter() - started
        started = time.perf_counter()
        for code, verifier in codes:
            t0 = time.perf_counter()
            with deps.engine.begin() as connection:
                answer = exchange_code(connection, deps, rp, code, verifier)
            exchange_s.append(time.perf_counter() - t0)
            issued.append(answer)
        exchange_wall += time.perf_counter() - started
    for answer in issued:
        if not {"access_token", "id_token", "refresh_token"} <= answer.keys():
            raise RuntimeError(f"a code exchange answered without a token: {sorted(answer)}")
    return issued, latency_and_rate(authorize_s, authorize_wall), latency_and_rate(exchange_s, exchange_wall)


def rotate_refresh_tokens(deps: AuthDeps, rp: RelyingParty, issued: list[dict[str, Any]], deadline: Deadline
                          ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    rotated: list[dict[str, Any]] = []
    times: list[float] = []
    started = time.perf_counter()
    for i, answer in enumerate(issued):
        if i % 200 == 0:
            deadline.check(f"{i} of {len(issued)} refresh rotations")
        t0 = time.perf_counter()
        with deps.engine.begin() as connection:
            new = token_request(connection, deps, rp, {"grant_type": "refresh_token",
                                                       "refresh_token": answer["refresh_token"]})
        times.append(time.perf_counter() - t0)
        if new.get("refresh_token") in (None, answer["refresh_token"]) or "access_token" not in new:
            raise RuntimeError("a refresh rotation did not give a new refresh and access token")
        rotated.append(new)
    return rotated, latency_and_rate(times, time.perf_counter() - started)


def run_tokens(deps: AuthDeps, rp: RelyingParty, sessions: list[tuple[str, str, str]], t: int, profile: bool
               ) -> tuple[list[str], dict[str, Any]]:
    progress(f"tokens: {TOKEN_WARMUP} warm-up code exchanges and rotations")
    warm, _, _ = issue_tokens(deps, rp, sessions, TOKEN_WARMUP, Deadline(token_limit(TOKEN_WARMUP), "warm-up"))
    rotate_refresh_tokens(deps, rp, warm, Deadline(token_limit(TOKEN_WARMUP), "warm-up"))
    progress(f"tokens: {t} x authorize (code issued) + {t} x code exchange, a transaction each, over "
             f"{len(sessions)} sessions")
    issued, authorized, exchanged = issue_tokens(deps, rp, sessions, t, Deadline(token_limit(t), "code exchanges"))
    progress(f"  authorize {authorized['rate_per_s']:.0f}/s (p50 {authorized['p50_ms']:.2f} ms), exchange "
             f"{exchanged['rate_per_s']:.0f}/s (p50 {exchanged['p50_ms']:.2f} ms)")
    progress(f"tokens: {t} x refresh rotation, a transaction each")
    rotated, rotations = rotate_refresh_tokens(deps, rp, issued, Deadline(token_limit(t), "refresh rotations"))
    progress(f"  {rotations['rate_per_s']:.0f}/s, p50 {rotations['p50_ms']:.2f} ms")
    if profile:
        progress(f"tokens: {min(t, 500)} code exchanges again, under cProfile")
        sys.stderr.write(profile_top(lambda: issue_tokens(deps, rp, sessions, min(t, 500),
                                                          Deadline(token_limit(t) * 3, "profiled exchanges")),
                                     title="authorize + code exchange"))
    sizes = {kind: round(sum(len(a[kind]) for a in rotated) / len(rotated)) for kind in ("access_token", "id_token")}
    return [str(answer["access_token"]) for answer in rotated], {
        "authorize": authorized, "exchange": exchanged, "refresh": rotations, "sessions": len(sessions),
        "avg_token_chars": sizes}


# --- 3. validation at the relying party --------------------------------------------------------

def run_validation(deps: AuthDeps, rp: RelyingParty, access: list[str], v: int) -> dict[str, Any]:
    with deps.engine.begin() as connection:
        keys = jwk.KeySet.import_key_set(deps.service.provider.jwks(connection))  # type: ignore[arg-type]
    issuer = deps.service.provider.issuer
    registry = jwt.JWTClaimsRegistry(iss={"essential": True, "value": issuer},
                                     aud={"essential": True, "value": rp.client_id},
                                     exp={"essential": True}, sub={"essential": True})
    rng = random.Random(SEED)
    picks = [rng.choice(access) for _ in range(v)]

    def validate(tokens: list[str], deadline: Deadline) -> tuple[list[float], float]:
        times: list[float] = []
        started = time.perf_counter()
        for i, token in enumerate(tokens):
            if i % 2000 == 0:
                deadline.check(f"{i} of {len(tokens)} validations")
            t0 = time.perf_counter()
            decoded = jwt.decode(token, keys, algorithms=["ES256"])
            if decoded.header.get("typ") != "at+jwt":
                raise RuntimeError("an access token without typ at+jwt")
            registry.validate(decoded.claims)
            times.append(time.perf_counter() - t0)
        return times, time.perf_counter() - started

    progress(f"validation: {v} x jwt.decode + JWTClaimsRegistry against a local JWKS "
             f"({len(keys.keys)} key(s)), +{VALIDATION_WARMUP} warm-up")
    validate(picks[:VALIDATION_WARMUP], Deadline(validation_limit(VALIDATION_WARMUP), "warm-up"))
    times, wall = validate(picks, Deadline(validation_limit(v), "JWT validations"))
    result = latency_and_rate(times, wall)
    result["keys"] = len(keys.keys)
    progress(f"  {result['rate_per_s']:.0f}/s, p50 {result['p50_ms']:.3f} ms")
    return result


# --- 4. introspection --------------------------------------------------------------------------

def time_provider_introspect(deps: AuthDeps, tokens: list[str], deadline: Deadline) -> tuple[list[float], float]:
    times: list[float] = []
    provider = deps.service.provider
    started = time.perf_counter()
    for i, token in enumerate(tokens):
        if i % 500 == 0:
            deadline.check(f"{i} of {len(tokens)} introspections")
        t0 = time.perf_counter()
        with deps.engine.begin() as connection:
            answer = provider.introspect(connection, token)
        times.append(time.perf_counter() - t0)
        if answer.get("active") is not True:
            raise RuntimeError(f"introspection {i}: an issued access token is not active")
    return times, time.perf_counter() - started


def run_introspection(deps: AuthDeps, rp: RelyingParty, access: list[str], n: int, profile: bool) -> dict[str, Any]:
    rng = random.Random(SEED + 1)
    picks = [rng.choice(access) for _ in range(n)]
    progress(f"introspection: {n} x provider.introspect in-process, a transaction each (+{INTROSPECT_WARMUP} "
             "warm-up)")
    time_provider_introspect(deps, picks[:INTROSPECT_WARMUP], Deadline(introspect_limit(INTROSPECT_WARMUP), "warm-up"))
    times, wall = time_provider_introspect(deps, picks, Deadline(introspect_limit(n), "in-process introspections"))
    in_process = latency_and_rate(times, wall)
    progress(f"  {in_process['rate_per_s']:.0f}/s, p50 {in_process['p50_ms']:.2f} ms")

    progress(f"introspection: {n} x POST /oauth2/introspect (RFC 7662, client_secret_basic, httpx ASGITransport, "
             f"+{API_WARMUP} warm-up)")
    app = create_app(deps)
    deadline = Deadline(api_limit(n + API_WARMUP), "RFC 7662 introspections")
    asyncio.run(http_introspect(app, rp, picks[:API_WARMUP], deadline))
    started = time.perf_counter()
    api_times = asyncio.run(http_introspect(app, rp, picks, deadline))
    api = latency_and_rate(api_times, time.perf_counter() - started)
    progress(f"  {api['rate_per_s']:.0f}/s, p50 {api['p50_ms']:.2f} ms")
    if profile:
        count = min(n, 1000)
        progress(f"introspection: {count} x POST /oauth2/introspect again, under cProfile")
        profiled = Deadline(api_limit(count) * 3, "profiled introspections")
        sys.stderr.write(profile_top(lambda: asyncio.run(http_introspect(app, rp, picks[:count], profiled)),
                                     title="POST /oauth2/introspect"))
    return {"in_process": in_process, "api": api}


# --- 5. departure -> back-channel logout -------------------------------------------------------

class TimedTask:
    """A relay task with its time kept: the rounds in which it did something ("busy") apart."""

    def __init__(self, name: str, task: Callable[[], int]) -> None:
        self.name = name
        self.task = task
        self.reset()

    def reset(self) -> None:
        self.calls = 0
        self.items = 0
        self.busy: list[float] = []
        self.seconds = 0.0

    def __call__(self) -> int:
        started = time.perf_counter()
        try:
            done = self.task()
        finally:
            elapsed = time.perf_counter() - started
            self.calls += 1
            self.seconds += elapsed
        if done:
            self.items += done
            self.busy.append(elapsed)
        return done

    def summary(self) -> dict[str, Any]:
        return {"calls": self.calls, "busy_calls": len(self.busy), "items": self.items,
                "seconds": round(self.seconds, 3), **({"busy": latency_summary_ms(self.busy)} if self.busy else {})}


def timed_relay_tasks(relay: OutboxRelay) -> list[TimedTask]:
    """The auth relay's tasks in their order (SERVICE.relay_tasks, then the kit's publish, confirm
    and mail), each wrapped to keep its time. Reaches into the relay: a benchmark's licence."""
    names = ["deliver_logouts (back-channel)", "publish the outbox", "confirm published (read back)", "send mail"]
    tasks = relay._tasks
    if len(tasks) != len(names):
        raise RuntimeError(f"the auth relay has {len(tasks)} tasks, this benchmark knows {len(names)}")
    timed = [TimedTask(name, task) for name, task in zip(names, tasks, strict=True)]
    tasks[:] = timed
    return timed


def mail_and_outbox_pending(deps: AuthDeps) -> tuple[int, int]:
    outbox, mail = store.outbox, store.mail_outbox
    with deps.engine.connect() as connection:
        events = connection.execute(select(func.count()).select_from(outbox)
                                    .where(outbox.c.published_at.is_(None))).scalar_one()
        mails = connection.execute(select(func.count()).select_from(mail).where(
            mail.c.sent_at.is_(None), mail.c.suppressed_at.is_(None))).scalar_one()
    return int(events), int(mails)


def run_backchannel(run: Run, deps: AuthDeps, back_channel: BackChannel, sessions: list[tuple[str, str, str]],
                    d: int) -> dict[str, Any]:
    codec = publisher_codec(deps.settings, deps.topics)
    publisher = EventPublisher(make_producer(run.bootstrap, "bench-oidc-publisher"))
    workers: list[Worker] = []

    def depart(staff_id: str) -> None:
        publisher.publish(seal(codec, StaffDeparted(branch_id=BRANCH, staff_id=uuid.UUID(staff_id))),
                          timeout_s=SINGLE_ROUNDTRIP_LIMIT_S)

    try:
        runner = build_runner(deps)  # creates the registry and auth topics
        relay = build_relay(deps)
        relay_tasks = timed_relay_tasks(relay)
        workers += [Worker("auth-processor", runner).start(), Worker("auth-relay", relay).start()]
        processor = workers[0]
        progress("back-channel: the relay publishes the preparation's events and sends its invitations first")
        wait_until(lambda: mail_and_outbox_pending(deps) == (0, 0), Deadline(120.0, "relay catching up"),
                   lambda: "{} events, {} mails pending".format(*mail_and_outbox_pending(deps)), workers, 0.05)
        for task in relay_tasks:  # from here on, the departures' work only
            task.reset()
        progress("back-channel: first departure, through the processor's group join")
        _, first_sid, first_staff = sessions[0]
        depart(first_staff)
        joined = Deadline(GROUP_JOIN_LIMIT_S, "group join + first back-channel logout")
        wait_until(lambda: first_sid in back_channel.arrivals, joined,
                   lambda: f"no logout token yet; refused: {back_channel.refused}", workers, 0.005)
        join_s = back_channel.arrivals[first_sid][0] - processor.started_at
        progress(f"  received {join_s:.1f} s after the processor's start")

        subjects = sessions[1:1 + WARMUP + d]
        progress(f"back-channel: {d} departures, publish StaffDeparted -> logout token received by the relying "
                 f"party (+{WARMUP} warm-up; relay_interval_s={deps.settings.relay_interval_s})")
        deadline = Deadline(roundtrip_limit(len(subjects)), "back-channel logouts")
        total: list[float] = []
        acks: list[float] = []
        sent_wall: dict[str, float] = {}
        for i, (token, session_id, staff_id) in enumerate(subjects):
            deadline.check(f"{i} done")
            if not introspect_fresh(deps, token):
                raise RuntimeError(f"departure {i}: the session ended before the departure")
            sent_wall[session_id] = time.time()
            sent = time.perf_counter()
            depart(staff_id)
            acked = time.perf_counter()
            arrived = back_channel.wait_for(session_id, min(SINGLE_ROUNDTRIP_LIMIT_S, deadline.remaining()))
            if arrived is None:
                for worker in workers:
                    if not worker.alive():
                        raise worker.failed()
                deadline.check(f"departure {i}: no logout token")
                raise RuntimeError(f"departure {i}: no logout token within {SINGLE_ROUNDTRIP_LIMIT_S:.0f} s; "
                                   f"refused: {back_channel.refused}")
            if i >= WARMUP:
                total.append(arrived[0] - sent)
                acks.append(acked - sent)
        result: dict[str, Any] = latency_summary_ms(total)
        progress(f"  p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms, max {result['max_ms']:.1f} ms")

        # The split, from the delivery rows (the processor's clock, the same wall clock as here),
        # once the relay has recorded the last delivery (it does so after the POST is answered).
        deliveries = store.logout_deliveries

        def unrecorded() -> int:
            with deps.engine.connect() as connection:
                return int(connection.execute(select(func.count()).select_from(deliveries)
                                              .where(deliveries.c.delivered_at.is_(None))).scalar_one())

        wait_until(lambda: unrecorded() == 0, Deadline(SINGLE_ROUNDTRIP_LIMIT_S, "recording the deliveries"),
                   lambda: f"{unrecorded()} deliveries not recorded as delivered", workers)
        measured = {session_id for _, session_id, _ in subjects[WARMUP:]}
        with deps.engine.connect() as connection:
            rows = [row for row in connection.execute(select(deliveries)) if row.session_id in measured]
            attempts = {int(a): int(c) for a, c in connection.execute(
                select(deliveries.c.attempts, func.count()).group_by(deliveries.c.attempts))}
            undelivered = connection.execute(select(func.count()).select_from(deliveries)
                                             .where(deliveries.c.delivered_at.is_(None))).scalar_one()
            still_active = connection.execute(select(func.count()).select_from(store.sessions).where(
                store.sessions.c.active.is_(True),
                store.sessions.c.session_id.in_([sid for _, sid, _ in [sessions[0], *subjects]]))).scalar_one()
        queued = [row.created_at.timestamp() - sent_wall[row.session_id] for row in rows]
        delivered = [back_channel.arrivals[row.session_id][1] - row.created_at.timestamp() for row in rows]
        if len(rows) != d or undelivered or still_active or back_channel.refused:
            raise RuntimeError(f"back-channel: {len(rows)} delivery rows for {d} departures, {undelivered} "
                               f"undelivered, {still_active} sessions still active, refused: {back_channel.refused}")
        if runner.stats.dead_lettered:
            raise RuntimeError(f"{runner.stats.dead_lettered} events were dead-lettered: {runner.stats.reasons}")
        result.update({
            "publish_ack": latency_summary_ms(acks), "queued": latency_summary_ms(queued),
            "queued_to_received": latency_summary_ms(delivered), "group_join_seconds": round(join_s, 2),
            "session_timeout_ms": deps.settings.consumer_session_timeout_ms,
            "relay_interval_s": deps.settings.relay_interval_s, "relay_rounds": relay.rounds,
            "relay_task_failures": relay.task_failures, "attempts": attempts,
            "relay_tasks": {task.name: task.summary() for task in relay_tasks},
            "applied": runner.stats.applied, "dead_lettered": runner.stats.dead_lettered})
        return result
    finally:
        for worker in reversed(workers):
            worker.stop()
        publisher.close()


# --- the run -----------------------------------------------------------------------------------

def measure(run: Run) -> dict[str, Any]:
    args = run.args
    d = args.departures
    roundtrips = args.roundtrips or min(d, MAX_DEFAULT_ROUNDTRIPS)
    raw = raw_roundtrip_phase(run, roundtrips)
    smtp = SmtpCatcher().start()  # the relay sends the preparation's invitations here
    extra: dict[str, Any] = {"smtp_port": smtp.port}
    if args.relay_interval_ms is not None:
        extra["relay_interval_s"] = args.relay_interval_ms / 1000
    deps = build(auth_settings(run, "auth-oidc.sqlite", CHEAP_TIME_COST, CHEAP_MEMORY_KIB, **extra))
    back_channel: BackChannel | None = None
    try:
        with deps.engine.begin() as connection:
            keys = jwk.KeySet.import_key_set(deps.service.provider.jwks(connection))  # type: ignore[arg-type]
        back_channel = BackChannel(keys, deps.service.provider.issuer)
        threading.Thread(target=back_channel.serve_forever, name="bench-back-channel", daemon=True).start()
        rp = register_relying_party(deps, back_channel.uri)
        back_channel.client_id = rp.client_id
        count = 1 + WARMUP + d
        progress(f"preparing {count} staff members with a live session given to the client (StaffJoined through "
                 f"the service, the session row through the store), {PREPARE_BATCH} a transaction")
        sessions, prepare_s = prepare_sessions(deps, rp, count)
        progress(f"  {count} in {prepare_s:.1f} s")
        access, tokens = run_tokens(deps, rp, sessions, args.tokens, args.profile)
        validation = run_validation(deps, rp, access, args.validations)
        introspection = run_introspection(deps, rp, access, args.introspections, args.profile)
        logout = run_backchannel(run, deps, back_channel, sessions, d)
    finally:
        if back_channel is not None:
            back_channel.shutdown()
            back_channel.server_close()
        smtp.stop()
        deps.engine.dispose()
    raw_p50 = raw["p50_ms"]
    return {
        "params": {"tokens": args.tokens, "validations": args.validations, "introspections": args.introspections,
                   "departures": d, "raw_roundtrips": roundtrips, "warmup": WARMUP, "token_warmup": TOKEN_WARMUP,
                   "partitions": PARTITIONS, "fetch_max_wait_ms": run.fetch_wait_ms,
                   "relay_interval_s": deps.settings.relay_interval_s, "prepare_batch": PREPARE_BATCH,
                   "seed": SEED, "topic_prefix": run.prefix},
        "raw_roundtrip": raw,
        "preparation": {"accounts": count, "seconds": round(prepare_s, 2), "batch": PREPARE_BATCH},
        "tokens": tokens,
        "validation": validation,
        "introspection": introspection,
        "backchannel_logout": logout,
        "ratios": {
            "authorize_p50": ratio(tokens["authorize"]["p50_ms"], raw_p50),
            "exchange_p50": ratio(tokens["exchange"]["p50_ms"], raw_p50),
            "refresh_p50": ratio(tokens["refresh"]["p50_ms"], raw_p50),
            "validation_p50": ratio(validation["p50_ms"], raw_p50),
            "introspect_in_process_p50": ratio(introspection["in_process"]["p50_ms"], raw_p50),
            "introspect_api_p50": ratio(introspection["api"]["p50_ms"], raw_p50),
            "backchannel_p50": ratio(logout["p50_ms"], raw_p50),
            "backchannel_p99": ratio(logout["p99_ms"], raw["p99_ms"]),
            "introspect_api_over_validation_p50": ratio(introspection["api"]["p50_ms"], validation["p50_ms"]),
        },
    }


def render(report: dict[str, Any]) -> str:
    p, prep, tok, val, intro, out, ratios = (report["params"], report["preparation"], report["tokens"],
                                             report["validation"], report["introspection"],
                                             report["backchannel_logout"], report["ratios"])
    table = Table("OpenID Connect throughput", report["machine"], width=60, value_width=16)
    table.header("sizes", f"T={p['tokens']} code exchanges and refresh rotations, V={p['validations']} validations, "
                          f"I={p['introspections']} introspections, D={p['departures']} departures "
                          f"(+{p['warmup']} warm-up), R={p['raw_roundtrips']} raw round trips")
    table.section(f"RAW BASELINE (bench.harness.raw_roundtrips; fetch_max_wait_ms={p['fetch_max_wait_ms']} as the "
                  "ConsumerRunner)")
    table.latency("round trip send().get() -> received by a polling consumer", report["raw_roundtrip"])

    def vs_raw(key: str) -> str:
        return f"p50 / raw p50 {fmt_ratio(ratios[key], 4)}"

    table.section(f"TOKENS (in-process through the provider, a transaction each; {tok['sessions']} sessions, ES256)")
    for label, summary, unit, key in (
            ("authorize: request checked, code issued (PKCE S256)", tok["authorize"], "codes/s", "authorize_p50"),
            ("code exchange -> access + ID + refresh token", tok["exchange"], "exchanges/s", "exchange_p50"),
            ("refresh rotation -> access + ID + refresh token", tok["refresh"], "rotations/s", "refresh_p50")):
        table.latency(label, summary, 2, fmt_rate(summary["rate_per_s"], unit))
        table.figure(vs_raw(key), indent=2)
    sizes = tok["avg_token_chars"]
    table.figure("token sizes", "", f"access token {sizes['access_token']} chars, ID token {sizes['id_token']} chars",
                 indent=2)
    table.section(f"VALIDATION AT A RELYING PARTY (joserfc jwt.decode + JWTClaimsRegistry; local JWKS of "
                  f"{val['keys']} key(s))")
    table.latency("access token: signature, typ, iss, aud, exp, sub", val, 3, fmt_rate(val["rate_per_s"], "tokens/s"))
    table.figure(vs_raw("validation_p50"), indent=2)
    table.section("INTROSPECTION (RFC 7662; access tokens; each call in a transaction of its own)")
    table.latency("provider.introspect(), in-process", intro["in_process"], 2,
                  fmt_rate(intro["in_process"]["rate_per_s"], "calls/s"))
    table.figure(vs_raw("introspect_in_process_p50"), indent=2)
    table.latency("POST /oauth2/introspect, client_secret_basic (ASGITransport)", intro["api"], 2,
                  fmt_rate(intro["api"]["rate_per_s"], "calls/s"))
    table.figure(vs_raw("introspect_api_p50"), indent=2)
    table.ratio("introspection over HTTP p50 / local validation p50", ratios["introspect_api_over_validation_p50"],
                digits=1, suffix=" x", indent=2)
    table.section(f"BACK-CHANNEL LOGOUT (StaffDeparted published, acks=all -> auth processor -> auth relay "
                  f"(relay_interval_s={out['relay_interval_s']}) -> logout token POSTed to the relying party)")
    table.figure("prepared", "", f"{prep['accounts']} staff members with a live session given to the client "
                                 f"(StaffJoined through the service, session rows through the store, {prep['batch']} "
                                 f"a transaction) - preparation only, in {prep['seconds']:.1f} s")
    table.latency("publish start -> logout token received", out)
    table.latency("of which publish until acked", out["publish_ack"], indent=2)
    table.latency("publish -> delivery queued (processor's commit)", out["queued"], indent=2)
    table.latency("delivery queued -> received (relay round + POST)", out["queued_to_received"], indent=2)
    table.figure("ratio to raw round trip", "", f"p50 {fmt_ratio(ratios['backchannel_p50'], 2, ' x')}   "
                                                f"p99 {fmt_ratio(ratios['backchannel_p99'], 2, ' x')}", indent=2)
    table.figure("relay", "", f"interval {out['relay_interval_s'] * 1000:.0f} ms when a round found nothing to do "
                              f"(bounds the queued -> received wait); {out['relay_rounds']} rounds, "
                              f"{out['relay_task_failures']} task failures", indent=2)
    for name, task in out["relay_tasks"].items():
        busy = task.get("busy")
        note = (f"busy in {task['busy_calls']} of {task['calls']} rounds ({task['items']} done): p50 "
                f"{busy['p50_ms']:.1f} ms   p99 {busy['p99_ms']:.1f} ms   max {busy['max_ms']:.1f} ms"
                if busy else f"idle in all {task['calls']} rounds")
        table.figure(f"relay task: {name}", f"{task['seconds']:.1f} s", note, indent=4)
    table.figure("deliveries by attempts", "", ", ".join(f"{a} attempt(s): {c}" for a, c in out["attempts"].items())
                 + f"; group join {out['group_join_seconds']:.1f} s (not counted)", indent=2)
    table.text("  (the queued split is the processor's wall clock against this run's; both on this machine)")
    return table.render(report)


def main(argv: list[str] | None = None) -> int:
    parser = cli("bench.oidc_throughput", __doc__, fetch_wait=True)
    parser.add_argument("--tokens", type=int, default=1000,
                        help="T, code exchanges and as many refresh rotations (default 1000)")
    parser.add_argument("--validations", type=int, default=20_000,
                        help="V, access-token validations at the relying party (default 20000)")
    parser.add_argument("--introspections", type=int, default=2000,
                        help="I, introspections in-process and as many over HTTP (default 2000)")
    parser.add_argument("--departures", type=int, default=1000,
                        help="D, departures measured to their back-channel logout (default 1000)")
    parser.add_argument("--roundtrips", type=int, default=0,
                        help=f"R, raw round trips (default: D, at most {MAX_DEFAULT_ROUNDTRIPS})")
    parser.add_argument("--relay-interval-ms", type=float, default=None,
                        help="the auth relay's relay_interval_s in ms (default: the settings' default, "
                             f"{DEFAULT_RELAY_INTERVAL_S * 1000:.0f})")
    parser.add_argument("--profile", action="store_true",
                        help="run the code exchanges and HTTP introspections again under cProfile; top costs to stderr")
    args = parser.parse_args(argv)
    require_positive(parser, args, "tokens", "validations", "introspections", "departures")
    if args.roundtrips < 0 or (args.relay_interval_ms is not None and args.relay_interval_ms <= 0):
        parser.error("--roundtrips must not be negative and --relay-interval-ms must be positive")
    return run_benchmark(args, measure, render)


if __name__ == "__main__":
    sys.exit(main())
