"""The auth service over the real broker, a real database and a real SMTP server: invitation,
enrolment, login with two factors, lockout, sessions ended by a departure, and no secret leaks."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import re
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pyotp
import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from services.audit.cli import app as audit_app
from services.auth import store
from services.auth.api import create_app
from services.auth.bootstrap import AuthDeps, build, build_relay, build_runner
from services.auth.domain import name_key
from services.auth.service import AuthService
from services.auth.settings import AuthSettings
from shared.contracts import events as e
from shared.contracts.topics import Topic
from shared.crypto import new_master_key
from shared.kafka.producer import EventPublisher, make_producer
from shared.logging import JsonFormatter, RedactingFilter
from tests.support import TOKENS, SmtpCatcher, read_all, wait_until

BRANCH = uuid.UUID("00000000-0000-4000-8000-0000000000d1")
PASSWORD = "paard-batterij-nietje-correct"


@dataclass
class Auth:
    deps: AuthDeps
    settings: AuthSettings
    publisher: EventPublisher
    smtp: SmtpCatcher
    bootstrap: str
    workers: list
    log: io.StringIO

    def publish(self, *events: e.Event) -> list[str]:
        now = datetime.now(UTC)
        encoded = [self.deps.codec.encode(ev, event_id=str(uuid.uuid4()), recorded_at=now) for ev in events]
        self.publisher.publish_all(encoded)
        return [x.id for x in encoded]

    def client(self) -> TestClient:
        return TestClient(create_app(self.deps), base_url="http://127.0.0.1")

    def invitation_link(self, address: str) -> str:
        mail = wait_until(lambda: [m for m in self.smtp.messages if m["X-Envelope-To"] == address],
                          message="the invitation mail")[0]
        return re.search(r"http://\S+/uitnodiging/\S+", mail.get_content()).group(0)


@contextlib.contextmanager
def running_auth(broker, topic_prefix: str, database_url: str, master_key: str, tmp_path: Path, smtp_server,
                 **overrides: Any) -> Iterator[Auth]:
    """The auth service's processor and relay on threads, its log captured as deployed."""
    settings = AuthSettings(kafka_bootstrap_servers=broker.bootstrap, topic_prefix=topic_prefix,
                            database_url=database_url, keystore_url=f"sqlite:///{tmp_path / 'keys.sqlite'}",
                            master_key=master_key, consumer_group=f"{topic_prefix}auth", smtp_port=smtp_server.port,
                            cookie_secure=False, argon2_time_cost=1,
                            argon2_memory_kib=8192, **overrides)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactingFilter())
    # The service's own log at its production level; the test's SMTP server (mail.log) and HTTP
    # client (httpx) are not the service.
    handler.addFilter(lambda record: not record.name.startswith(("mail.", "httpx")))
    root = logging.getLogger()
    root.addHandler(handler)
    old_level = root.level
    root.setLevel(logging.INFO)
    deps = build(settings)
    harness = Auth(deps, settings, EventPublisher(make_producer(broker.bootstrap, "registry-under-test")),
                   smtp_server, broker.bootstrap, [], stream)
    for worker in (build_runner(deps), build_relay(deps)):
        thread = threading.Thread(target=worker.run, daemon=True)
        thread.start()
        harness.workers.append((worker, thread))
    try:
        yield harness
    finally:
        for worker, _ in harness.workers:
            worker.stop_event.set()
        for _, thread in harness.workers:
            thread.join(timeout=15)
        harness.publisher.close()
        root.removeHandler(handler)
        root.setLevel(old_level)


@pytest.fixture
def auth(broker, topic_prefix, database_url, master_key, tmp_path, smtp_server) -> Iterator[Auth]:
    with running_auth(broker, topic_prefix, database_url, master_key, tmp_path, smtp_server) as harness:
        yield harness


@pytest.fixture(scope="module")
def module_auth(broker, module_database_url, tmp_path_factory) -> Iterator[Auth]:
    """One running auth service for the tests that look only at the people they enrol
    themselves: every group join on Tansu takes a second, and building a stack half of one."""
    directory = tmp_path_factory.mktemp("auth")
    smtp = SmtpCatcher().start()
    try:
        with running_auth(broker, f"t{uuid.uuid4().hex[:10]}.", module_database_url, new_master_key(), directory,
                          smtp) as harness:
            yield harness
    finally:
        smtp.stop()


@dataclass
class Enrolled:
    staff_id: uuid.UUID
    username: str
    secret: str
    recovery_codes: list[str]
    enrolled_step: int  # the TOTP step the enrolment used (not accepted again)


def enrol(auth: Auth, role: str = "ib_er") -> Enrolled:
    staff_id = uuid.uuid4()
    username = f"{staff_id.hex[:8]}@school.example"
    auth.publish(e.StaffJoined(branch_id=BRANCH, staff_id=staff_id, role=e.StaffRole(role), name="N", email=username))
    link = auth.invitation_link(username)
    client = auth.client()
    path = urlsplit(link).path
    response = client.post(path, data={"wachtwoord": PASSWORD, "herhaling": PASSWORD})
    assert response.status_code == 200 and "Authenticator-app koppelen" in response.text
    secret = re.search(r'id="totp-secret" class="geheim">([A-Z2-7]+)<', response.text).group(1)
    step = time_step_now()
    done = client.post("/tweestaps", data={"code": pyotp.TOTP(secret).at(step * 30)})
    assert done.status_code == 200, done.text
    codes = re.findall(r"<li>([A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4})</li>", done.text)
    assert len(codes) == 10
    return Enrolled(staff_id, username, secret, codes, step)


def login(auth: Auth, who: Enrolled, code: str | None = None, password: str = PASSWORD) -> tuple[TestClient, int]:
    client = auth.client()
    first = client.post("/inloggen", data={"gebruikersnaam": who.username, "wachtwoord": password},
                        follow_redirects=False)
    if first.status_code != 303:
        return client, first.status_code
    second = client.post("/inloggen/code", data={"code": code or pyotp.TOTP(who.secret).now()},
                         follow_redirects=False)
    return client, second.status_code


def introspect(auth: Auth, token: str) -> dict:
    """The session behind a login cookie, as the account page asks (relying parties ask the
    provider's RFC 7662 endpoint, tests/integration/test_oidc.py)."""
    with auth.deps.engine.begin() as connection:
        return auth.deps.service.introspect(connection, token)


@pytest.mark.every_database
def test_a_departure_ends_the_live_session_at_once_and_for_good(auth):
    person = enrol(auth)
    # The code used at enrolment cannot be used again in the same step: wait for a fresh one.
    wait_until(lambda: pyotp.TOTP(person.secret).now() != pyotp.TOTP(person.secret).at(datetime.now(UTC).timestamp()
                                                                                          - 30), timeout_s=1)
    client, status = login(auth, person, code=person.recovery_codes[0])
    assert status == 303
    token = client.cookies.get("sv_session")
    assert introspect(auth, token)["active"] is True

    (departure,) = auth.publish(e.StaffDeparted(branch_id=BRANCH, staff_id=person.staff_id))
    wait_until(lambda: introspect(auth, token)["active"] is False, timeout_s=20, message="the session to end")
    ended = wait_until(lambda: [r for r in auth_events(auth) if r.type == "SessionEnded"], message="SessionEnded")
    assert ended[0].event.reason == "staff departed" and ended[0].causation_id == departure

    # A restart (new process: new engine, new service) does not revive it.
    restarted = build(auth.settings)
    with restarted.engine.begin() as connection:
        assert restarted.service.introspect(connection, token) == {"active": False}
    assert login(auth, person, code=person.recovery_codes[1])[1] == 401

    # The audit's replay of auth.events.v1 gives the tables' facts: the account disabled since the
    # departure, the session ended for it.
    wait_until(lambda: outbox_status_of(auth)["pending"] == 0, message="the auth outbox to be published")
    replay = CliRunner().invoke(audit_app, ["--json", "replay", "--auth-db", auth.settings.database_url],
                                env={"KAFKA_BOOTSTRAP_SERVERS": auth.bootstrap,
                                     "SAMENVEILIG_TOPIC_PREFIX": auth.settings.topic_prefix})
    answer = json.loads(replay.stdout)
    assert replay.exit_code == 0 and answer["differences"]["auth"] == [], answer
    assert answer["by_type"]["AccountDisabled"] == 1 and answer["by_type"]["LoginSucceeded"] == 1


def outbox_status_of(auth: Auth) -> dict:
    """`GET /v1/outbox` as a downstream service asks it, with its own token (scope auth:outbox)."""
    client = auth.client()
    client.app.state.verifier = TOKENS.verifier("auth")
    return client.get("/v1/outbox", headers=TOKENS.headers("access-service", "auth:outbox", "auth")).json()


def auth_events(auth: Auth) -> list:
    return [auth.deps.codec.decode(r.value) for r in read_all(auth.bootstrap, auth.deps.topics(Topic.AUTH_EVENTS))]


def test_recovery_codes_work_once_and_a_stranger_cannot_keep_a_staff_member_locked_out(auth):
    person = enrol(auth)
    client, status = login(auth, person, code=person.recovery_codes[0])
    assert status == 303 and client.get("/account").status_code == 200
    assert login(auth, person, code=person.recovery_codes[0])[1] == 401, "a recovery code works once"
    used = wait_until(lambda: [r for r in auth_events(auth) if r.type == "RecoveryCodeUsed"], message="event")
    assert used[0].event.remaining == 9

    # A stranger guesses: after five wrong passwords the name is locked...
    for _ in range(6):
        assert login(auth, person, password="verkeerd-wachtwoord-123")[1] == 401
    locked = wait_until(lambda: [r for r in auth_events(auth) if r.type == "AccountLocked"], message="lock event")
    assert locked[0].event.factor == "password"
    with auth.deps.engine.connect() as connection:
        keys = {row.key for row in connection.execute(select(store.failures)) if row.locked_until}
    assert keys == {name_key(person.username)}, "the code counter cannot be locked with passwords"
    # ...and while it is, a wrong password still gets as far as the code page (the stranger cannot
    # tell a right guess from a wrong one), where no code passes it, not even the right one...
    guess = auth.client()
    assert guess.post("/inloggen", data={"gebruikersnaam": person.username, "wachtwoord": "nog-een-gok-456"},
                      follow_redirects=False).status_code == 303
    dead_options = guess.post("/inloggen/code/passkey-opties")
    assert dead_options.status_code == 200 and dead_options.json().get("allowCredentials", []) == []
    assert guess.post("/inloggen/code", data={"code": person.recovery_codes[5]}).status_code == 401
    # ...and the rightful user, with the right password and a second factor, gets in.
    client, status = login(auth, person, code=person.recovery_codes[2])
    assert status == 303 and client.get("/account").status_code == 200
    # The session's start reset the counter: the name is no longer locked.
    with auth.deps.engine.connect() as connection:
        assert not [row for row in connection.execute(select(store.failures)) if row.locked_until
                    and row.key == name_key(person.username)]
    # The recovery code tried behind the wrong password was not used up.
    assert login(auth, person, code=person.recovery_codes[5])[1] == 303


@pytest.mark.every_database
def test_one_code_opens_one_session_even_on_parallel_challenges(module_auth):
    auth = module_auth
    person = enrol(auth)
    challenges = []
    for _ in range(8):
        client = auth.client()
        assert client.post("/inloggen", data={"gebruikersnaam": person.username, "wachtwoord": PASSWORD},
                           follow_redirects=False).status_code == 303
        challenges.append(client)
    # The step after the enrolment's: accepted now (one step of drift) and in the next 60 s.
    code = pyotp.TOTP(person.secret).at((person.enrolled_step + 1) * 30)
    start = threading.Barrier(len(challenges))
    answers: list[int] = []

    def send(client: TestClient) -> None:
        start.wait()
        answers.append(client.post("/inloggen/code", data={"code": code}, follow_redirects=False).status_code)

    threads = [threading.Thread(target=send, args=(client,)) for client in challenges]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(answers) == [303] + [401] * 7, answers
    with auth.deps.engine.connect() as connection:
        sessions = connection.execute(select(store.sessions).where(
            store.sessions.c.staff_id == str(person.staff_id))).all()
    assert len(sessions) == 1


def time_step_now() -> int:
    return int(datetime.now(UTC).timestamp()) // 30


class CountingHasher(PasswordHasher):
    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=8192)
        self.verified = 0

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:
        self.verified += 1
        return super().verify(hash, password)


def test_every_refusal_checks_one_password_hash_so_timing_tells_nothing(module_auth):
    auth = module_auth
    person = enrol(auth)
    hasher = CountingHasher()
    service = AuthService(auth.deps.codec, auth.deps.clock, auth.settings.master_key_bytes(), hasher,
                          auth.settings.auth_url, "school.example")
    attempts = [("niemand@school.example", "verkeerd-wachtwoord-123")] * 6 + [
        (person.username, "verkeerd-wachtwoord-123")] * 6 + [(person.username, PASSWORD)]
    for number, (username, password) in enumerate(attempts, start=1):
        with auth.deps.engine.begin() as connection:
            service.login_password(connection, username, password, "192.0.2.1")
        # Unknown name, wrong password, either name locked (from the fifth), the right password
        # on a locked name: one argon2 check each, never a shortcut.
        assert hasher.verified == number


def test_a_guessable_password_is_refused_at_the_invitation(module_auth):
    auth = module_auth
    staff_id = uuid.uuid4()
    username = f"{staff_id.hex[:8]}@school.example"
    auth.publish(e.StaffJoined(branch_id=BRANCH, staff_id=staff_id, role=e.StaffRole("ib_er"), name="N",
                               email=username))
    path = urlsplit(auth.invitation_link(username)).path
    refused = auth.client().post(path, data={"wachtwoord": "Welkom123456", "herhaling": "Welkom123456"})
    assert refused.status_code == 422 and "te makkelijk te raden" in refused.text
    # The invitation still works for a good one.
    accepted = auth.client().post(path, data={"wachtwoord": PASSWORD, "herhaling": PASSWORD})
    assert accepted.status_code == 200 and "Authenticator-app koppelen" in accepted.text


def test_a_half_finished_enrolment_goes_on_with_a_fresh_mailed_link(module_auth):
    auth = module_auth
    staff_id = uuid.uuid4()
    username = f"{staff_id.hex[:8]}@school.example"
    auth.publish(e.StaffJoined(branch_id=BRANCH, staff_id=staff_id, role=e.StaffRole("ib_er"), name="N",
                               email=username))
    path = urlsplit(auth.invitation_link(username)).path
    # The password is set, then the browser is closed: the enrolment cookie is gone.
    assert auth.client().post(path, data={"wachtwoord": PASSWORD, "herhaling": PASSWORD}).status_code == 200
    refused = auth.client().post("/inloggen", data={"gebruikersnaam": username, "wachtwoord": PASSWORD})
    assert refused.status_code == 401 and "nieuwe link gemaild" in refused.text
    mail = wait_until(lambda: [m for m in auth.smtp.messages if m["X-Envelope-To"] == username
                               and "ga verder" in m["Subject"]], message="the resume mail")[0]
    link = re.search(r"http://\S+/koppelen/\S+", mail.get_content()).group(0)
    client = auth.client()
    page = client.get(urlsplit(link).path)
    assert page.status_code == 200 and "Authenticator-app koppelen" in page.text
    secret = re.search(r'id="totp-secret" class="geheim">([A-Z2-7]+)<', page.text).group(1)
    assert client.post("/tweestaps", data={"code": pyotp.TOTP(secret).now()}).status_code == 200
    # Only the right password mails a link: a wrong one for a half-enrolled account queues nothing.
    auth.client().post("/inloggen", data={"gebruikersnaam": username, "wachtwoord": "verkeerd-wachtwoord-123"})
    with auth.deps.engine.connect() as connection:
        queued = connection.execute(select(store.mail_outbox.c.subject).where(
            store.mail_outbox.c.recipient == username)).scalars().all()
    assert sorted(queued) == ["Kindkans: ga verder met uw tweestapsverificatie",
                              "Welkom bij Kindkans: stel uw wachtwoord in"]


def test_answers_do_not_reveal_whether_an_account_exists(module_auth):
    auth = module_auth
    person = enrol(auth)
    # A name nobody has (nor any other test: a locked name answers differently, by design).
    unknown = auth.client().post("/inloggen", data={"gebruikersnaam": f"niemand-{uuid.uuid4().hex[:8]}@school.example",
                                                    "wachtwoord": "verkeerd-wachtwoord-123"})
    wrong = auth.client().post("/inloggen", data={"gebruikersnaam": person.username,
                                                  "wachtwoord": "verkeerd-wachtwoord-123"})
    assert unknown.status_code == wrong.status_code == 401
    message = re.compile(r'role="alert">(.*?)<')
    assert message.search(unknown.text).group(1) == message.search(wrong.text).group(1)


def test_no_secret_appears_in_logs_events_or_answers(module_auth):
    auth = module_auth
    person = enrol(auth)
    client, status = login(auth, person, code=person.recovery_codes[3])
    token = client.cookies.get("sv_session")
    assert status == 303 and token
    client.post("/uitloggen")
    wait_until(lambda: any(r.type == "SessionEnded" for r in auth_events(auth)), message="logout event")
    invitation = auth.invitation_link(person.username).rsplit("/", 1)[1]
    raw_topics = b"".join(r.value or b"" for topic in (Topic.AUTH_EVENTS, Topic.REGISTRY_EVENTS)
                          for r in read_all(auth.bootstrap, auth.deps.topics(topic)))
    log = auth.log.getvalue()
    for secret in [PASSWORD, person.secret, token, invitation, *person.recovery_codes,
                   *[c.replace("-", "") for c in person.recovery_codes]]:
        assert secret.encode() not in raw_topics, "a secret reached a topic"
        assert secret not in log, "a secret reached the log"
    assert json.loads(log.splitlines()[-1])  # the log is structured JSON
    problem = auth.client().post("/v1/sessions/logout", json={"token": "x" * 500})
    assert problem.status_code == 422 and "xxxx" not in problem.text
