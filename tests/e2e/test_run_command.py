"""The README's run command, started as a user starts it: broker, processor and API come up,
a departure flows through, Ctrl-C stops everything, and a second start has the data intact."""

from __future__ import annotations

import base64
import contextlib
import email
import email.policy
import json
import os
import signal
import subprocess
import time
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest

from deploy.localbroker import _free_port_run, free_port
from shared.contracts.topics import Topic
from tests.support import read_all, wait_until

REPO = Path(__file__).resolve().parents[2]


class RunCommand:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.ports = {name: free_port() for name in ("BROKER_PORT", "ACCESS_API_PORT", "REGISTRY_API_PORT",
                                                     "AUTH_API_PORT", "RETENTION_API_PORT", "SMTP_PORT")}
        # The object store takes S3_PORT and the four after it, each also + 10000 (gRPC).
        self.ports["S3_PORT"] = _free_port_run(5)
        # Relays and processors serve health on HEALTH_PORT_BASE+1 .. +9: free ones too, not the
        # default 8100s another run on the machine may hold (a processor then exits at start).
        self.ports["HEALTH_PORT_BASE"] = _free_port_run(10)
        self.process: subprocess.Popen[bytes] | None = None
        self.output = data_dir.parent / "run.out"
        self._client: dict | None = None
        self._token: tuple[str, float] | None = None

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.ports['ACCESS_API_PORT']}"

    @property
    def registry(self) -> str:
        return f"http://127.0.0.1:{self.ports['REGISTRY_API_PORT']}"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if k not in ("KAFKA_BOOTSTRAP_SERVERS",) and not k.startswith("SAMENVEILIG_")}
        env.update({k: str(v) for k, v in self.ports.items()})
        env["SAMENVEILIG_DATA_DIR"] = str(self.data_dir)
        return env

    def create_credential(self, name: str, brin: str) -> dict:
        done = subprocess.run(["bash", "deploy/credentials.sh", "create", "--name", name, "--brin", brin],
                              cwd=REPO, env=self.env(), capture_output=True, check=True, timeout=60)
        return json.loads(done.stdout)

    def report(self, api_key: str, body: dict) -> tuple[int, dict]:
        request = urllib.request.Request(f"{self.registry}/v1/mutations", data=json.dumps(body).encode(),
                                         headers={"Authorization": f"Bearer {api_key}",
                                                  "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.ports['BROKER_PORT']}"

    def start(self) -> None:
        env = self.env()
        # Its own process group, like a terminal session, so Ctrl-C reaches every process.
        self.process = subprocess.Popen(["bash", "deploy/run.sh"], cwd=REPO, env=env,
                                        stdout=self.output.open("ab"), stderr=subprocess.STDOUT,
                                        start_new_session=True)
        wait_until(self.healthy, timeout_s=120, interval_s=0.2, message="the run command to come up")

    def healthy(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"run command exited early:\n{self.output.read_text()[-3000:]}")
        try:
            for base in (self.api, self.registry, f"http://127.0.0.1:{self.ports['AUTH_API_PORT']}",
                         f"http://127.0.0.1:{self.ports['RETENTION_API_PORT']}"):
                with urllib.request.urlopen(f"{base}/healthz", timeout=1) as response:
                    if response.status != 200:
                        return False
            return True
        except OSError:
            return False

    SCOPES = "access:read retention:read"

    def service_token(self) -> str:
        """A client-credentials token for the APIs from the running provider, as a back office gets
        one: the client registered once with `deploy/auth.sh` (kept across restarts)."""
        if self._client is None:
            scopes = [part for scope in self.SCOPES.split() for part in ("--scope", scope)]
            done = subprocess.run(["bash", "deploy/auth.sh", "clients", "add", "--name", "Back office",
                                   "--grant", "client_credentials", *scopes],
                                  cwd=REPO, env=self.env(), capture_output=True, check=True, timeout=60)
            self._client = json.loads(done.stdout)
        if self._token is None or self._token[1] < time.monotonic():
            form = urllib.parse.urlencode({"grant_type": "client_credentials", "scope": self.SCOPES}).encode()
            secret = base64.b64encode(f"{self._client['client_id']}:{self._client['client_secret']}".encode())
            request = urllib.request.Request(f"http://127.0.0.1:{self.ports['AUTH_API_PORT']}/oauth2/token",
                                             data=form, headers={"Authorization": f"Basic {secret.decode()}"})
            with urllib.request.urlopen(request, timeout=10) as response:
                answer = json.loads(response.read())
            self._token = (answer["access_token"], time.monotonic() + answer["expires_in"] - 60)
        return self._token[0]

    def person_token(self, address: str, scope: str) -> str:
        """What a person does to act through an API: follow the invitation mail, choose a password
        and pair an authenticator app, then log in to a relying party (the console, registered once
        with `deploy/auth.sh`) with both factors. The access token the code flow gives it."""
        import re
        import secrets

        import httpx
        import pyotp
        from authlib.integrations.httpx_client import OAuth2Client

        from tests.integration.test_auth import PASSWORD

        auth = f"http://127.0.0.1:{self.ports['AUTH_API_PORT']}"
        mail = wait_until(lambda: [m for m in (self.data_dir / "mail" / "new").glob("*")
                                   if address.encode() in m.read_bytes() and b"Welkom bij Kindkans" in m.read_bytes()],
                          timeout_s=60, message=f"the invitation to {address}")[0]
        text = email.message_from_bytes(mail.read_bytes(), policy=email.policy.default).get_content()
        link = urllib.parse.urlsplit(re.search(r"http://\S+/uitnodiging/\S+", text).group(0))
        browser = httpx.Client(base_url=auth, follow_redirects=True)
        chosen = browser.post(link.path, data={"wachtwoord": PASSWORD, "herhaling": PASSWORD})
        assert chosen.status_code == 200, (chosen.status_code, chosen.text[-2000:])
        secret = re.search(r'id="totp-secret" class="geheim">([A-Z2-7]+)<', chosen.text).group(1)
        step = int(time.time()) // 30
        assert browser.post("/tweestaps", data={"code": pyotp.TOTP(secret).at(step * 30)}).status_code == 200
        callback = "https://console.example/callback"
        done = subprocess.run(["bash", "deploy/auth.sh", "clients", "add", "--name", "Console", "--redirect-uri",
                               callback, *[part for one in scope.split() for part in ("--scope", one)]],
                              cwd=REPO, env=self.env(), capture_output=True, check=True, timeout=60)
        client = json.loads(done.stdout)
        rp = OAuth2Client(client["client_id"], client["client_secret"], scope=f"openid {scope}",
                          redirect_uri=callback, code_challenge_method="S256")
        verifier = secrets.token_urlsafe(48)
        url, _ = rp.create_authorization_url(f"{auth}/oauth2/authorize", code_verifier=verifier)
        login = httpx.Client(base_url=auth)
        assert login.get(url).status_code == 303
        assert login.post("/inloggen", data={"gebruikersnaam": address, "wachtwoord": PASSWORD}).status_code == 303
        # The next time step's code (within the accepted window): the enrolment's is used up.
        back = login.post("/inloggen/code", data={"code": pyotp.TOTP(secret).at((step + 1) * 30)})
        assert back.status_code == 303, back.text
        redirect = login.get(back.headers["location"])
        token = rp.fetch_token(f"{auth}/oauth2/token", authorization_response=redirect.headers["location"],
                               code_verifier=verifier)
        return str(token["access_token"])

    def get(self, path: str) -> tuple[int, dict]:
        """GET on the access API, with the service token."""
        request = urllib.request.Request(f"{self.api}{path}",
                                         headers={"Authorization": f"Bearer {self.service_token()}"})
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def call(self, port: str, path: str, body: dict | None = None, token: str | None = None) -> tuple[int, dict]:
        """GET (or POST with a JSON body) on one of the services' APIs, with the service token
        unless a person's is given."""
        request = urllib.request.Request(f"http://127.0.0.1:{self.ports[port]}{path}",
                                         data=json.dumps(body).encode() if body is not None else None,
                                         headers={"Content-Type": "application/json",
                                                  "Authorization": f"Bearer {token or self.service_token()}"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def ctrl_c(self) -> int:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGINT)
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            raise AssertionError("Ctrl-C did not stop the run command within 30 s") from None


@pytest.fixture
def run(tmp_path):
    command = RunCommand(tmp_path / "data")
    yield command
    if command.process and command.process.poll() is None:
        os.killpg(command.process.pid, signal.SIGKILL)
    # Whatever the outcome, nothing this run started may outlive the test: honcho puts its
    # children in process groups of their own, so find them by the data directory they were given.
    _kill_processes_of(command.data_dir)


def _kill_processes_of(data_dir: Path) -> None:
    marker = f"SAMENVEILIG_DATA_DIR={data_dir}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environment = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if marker in environment:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(entry.name), signal.SIGKILL)


def _port_closed(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


ADDRESS = {"street": "Schiekade", "house_number": "12", "postcode": "3032 AJ", "city": "Rotterdam"}


def test_run_command_survives_ctrl_c_and_a_second_start_with_data_intact(run):
    run.start()
    # A school system gets its credential from the operator, then reports through the registry.
    school = run.create_credential("ParnasSys OBS De Regenboog", "12AB")
    status, body = run.report(school["api_key"], {"mutations": [
        {"kind": "branch", "change": "founded", "mutation_id": "e2e-1", "vestigingscode": "12AB00",
         "name": "OBS De Regenboog", "address": ADDRESS, "phone": "010-1234567", "wijknetwerk": "Noord"},
        {"kind": "staff_joined", "mutation_id": "e2e-2", "vestigingscode": "12AB00", "staff_ref": "emp-1",
         "role": "leerkracht", "name": "Jan de Boer", "email": "j.deboer@school.example",
         "effective_at": "2026-07-01T08:00:00+02:00"},  # before the departure: one dated earlier is refused
        {"kind": "staff_departed", "mutation_id": "e2e-3", "vestigingscode": "12AB00", "staff_ref": "emp-1",
         "effective_at": "2026-07-31T17:00:00+02:00"},
        {"kind": "pupil_enrolled", "mutation_id": "e2e-4", "vestigingscode": "12AB00", "pupil_ref": "lln-1",
         "name": "Sanne Bakker", "date_of_birth": "2015-03-01", "parent_emails": ["ouder.bakker@example.nl"]},
        # The school board's privacy officer (FG), who registers leaks.
        {"kind": "staff_joined", "mutation_id": "e2e-5", "vestigingscode": "12AB00", "staff_ref": "fg-1",
         "role": "fg", "name": "Fatima Gerrits", "email": "fg@bestuur.example"}]})
    assert status == 202, body
    staff_id = _staff_id_from_access(run, body)
    departed = wait_until(lambda: run.get(f"/v1/staff/{staff_id}")[1].get("status") == "departed", timeout_s=60,
                          message="the departure to reach the access service")
    assert departed
    # The branch change reached the office mailbox (the run command's SMTP catcher).
    def office_mail() -> list[Path]:
        return [m for m in (run.data_dir / "mail" / "new").glob("*")
                if b"Aard van de wijziging: oprichting" in m.read_bytes()]

    assert wait_until(office_mail, timeout_s=30, message="the office mail")
    # The new staff member's invitation to Kindkans (auth service) arrived too, with a link to
    # the login pages where this run serves them (the processor builds the mail, not the API).
    invitation = wait_until(lambda: [m for m in (run.data_dir / "mail" / "new").glob("*")
                                     if b"Welkom bij Kindkans" in m.read_bytes()], timeout_s=30,
                            message="the invitation")[0]
    text = email.message_from_bytes(invitation.read_bytes(), policy=email.policy.default).get_content()
    assert f"http://127.0.0.1:{run.ports['AUTH_API_PORT']}/uitnodiging/" in text
    # A data leak concerning the pupil, registered by the board's FG with her own token (a
    # service's own token changes nothing): the retention service mails the parent.
    pupil_id = _data_of(run, body["results"][3]["event_ids"][0])["pupil_id"]
    wait_until(lambda: run.call("RETENTION_API_PORT", f"/v1/pupils/{pupil_id}/consent/photo_video")[0] == 200,
               timeout_s=60, message="the pupil to reach the retention service")
    leak_report = {"nature": "Een klassenlijst is naar een verkeerd adres gemaild.",
                   "discovered_at": datetime.now(UTC).isoformat(), "pupil_ids": [pupil_id]}
    assert run.call("RETENTION_API_PORT", "/v1/leaks", leak_report)[0] == 403
    fg = run.person_token("fg@bestuur.example", "retention:read retention:write")
    status, leak = run.call("RETENTION_API_PORT", "/v1/leaks", leak_report, token=fg)
    assert status == 202, leak
    assert wait_until(lambda: [m for m in (run.data_dir / "mail" / "new").glob("*")
                               if b"ouder.bakker@example.nl" in m.read_bytes() and b"Datalek" in m.read_bytes()],
                      timeout_s=60, message="the leak mail to the parent")

    assert run.ctrl_c() in (0, 130, -signal.SIGINT)
    for port in run.ports.values():
        assert _port_closed(port), f"port {port} still open after Ctrl-C"
    assert "Traceback" not in run.output.read_text()

    run.start()
    status, body = run.get(f"/v1/staff/{staff_id}")
    assert status == 200 and body["status"] == "departed"
    assert body["departures_recorded"] == 1, "restart must not apply the departure again"
    # The broker kept its log across the restart (S3 storage): all five events are still there.
    records = _branch_records(read_all(run.bootstrap, Topic.REGISTRY_EVENTS.value))
    assert len(records) == 5
    assert b"Jan de Boer" not in b"".join(r.value for r in records), "names travel sealed"
    assert b"Sanne" not in b"".join(r.value for r in records) and b"ouder.bakker" not in b"".join(
        r.value for r in records)
    # The registry kept its state: the same report again is recognised, nothing new is emitted.
    again_status, again = run.report(school["api_key"], {
        "kind": "staff_departed", "mutation_id": "e2e-3", "vestigingscode": "12AB00", "staff_ref": "emp-1",
        "effective_at": "2026-07-31T17:00:00+02:00"})
    assert again_status == 202 and again["results"][0]["replayed"] is True
    assert run.ctrl_c() in (0, 130, -signal.SIGINT)


def _staff_id_from_access(run: RunCommand, body: dict) -> str:
    """The staff member's stable id, as the access service knows it (from the StaffJoined event)."""
    return str(_data_of(run, body["results"][1]["event_ids"][0])["staff_id"])


def _data_of(run: RunCommand, event_id: str) -> dict:
    """The readable part of an event on the registry topic (personal fields stay sealed)."""
    records = wait_until(lambda: len(_branch_records(read_all(run.bootstrap, Topic.REGISTRY_EVENTS.value))) == 5 and
                         _branch_records(read_all(run.bootstrap, Topic.REGISTRY_EVENTS.value)), timeout_s=60,
                         message="five events on the registry topic")
    envelope = next(json.loads(r.value) for r in records if json.loads(r.value)["id"] == event_id)
    return dict(envelope["data"])


def _branch_records(records: list) -> list:
    """The registry topic without the credentials' own events (keyed credential/<client id>)."""
    return [r for r in records if not (r.key or b"").startswith(b"credential/")]
