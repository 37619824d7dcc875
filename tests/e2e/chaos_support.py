"""Helpers for the chaos test (tests/e2e/test_chaos.py): the run command started as in
test_run_command, the Tansu process found and killed, a burst of mutations through both of the
registry's doors, and what "idle" and "nothing lost" mean when read from the run's data.

Only processes this test started are ever signalled: the run command's honcho group, and
processes found below it (or carrying its data directory in their environment)."""

from __future__ import annotations

import base64
import contextlib
import email.parser
import email.policy
import hashlib
import hmac
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError

from deploy.localbroker import _free_port_run, free_port, wait_for_kafka
from services.registry.credentials import CLIENT_HEADER, SIGNATURE_HEADER
from services.registry.domain import dossier_id, founded_branch_id, staff_id
from shared.contracts.envelope import derived_id
from shared.contracts.topics import Topic, TopicNames, dead_letter_topic
from shared.kafka.log import LogRecord, read_topics
from tests.e2e.test_run_command import REPO, RunCommand, _kill_processes_of
from tests.support import wait_until

SERVICES = ("registry", "access", "auth", "retention")
ADDRESS = {"street": "Schiekade", "house_number": "12", "postcode": "3032 AJ", "city": "Rotterdam"}


# --- processes --------------------------------------------------------------------------------

def _parent_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after the last ")".
    return int(stat.rsplit(")", 1)[1].split()[1])


def descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            parent = _parent_of(int(entry.name))
            if parent is not None:
                children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def cmdline(pid: int) -> list[str]:
    try:
        return [part.decode(errors="replace") for part in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                if part]
    except OSError:
        return []


def _free_health_base() -> int:
    """A base with base+1 .. base+9 free (the relays' and processors' health ports)."""
    while True:
        base = free_port()
        if base + 9 >= 65536:
            continue
        ok = True
        for port in range(base + 1, base + 10):
            with socket.socket() as sock:
                try:
                    sock.bind(("127.0.0.1", port))
                except OSError:
                    ok = False
                    break
        if ok:
            return base


@dataclass
class TansuRestart:
    killed_pid: int
    new_pid: int
    seconds: float  # from the kill until the broker answered metadata again
    restarted_by: str  # "supervisor" (the run command's broker process) or "test"


class ChaosRun(RunCommand):
    """The README's run command, with every port free (also SeaweedFS' five and their gRPC twins,
    and the nine health ports) and the means to kill its Tansu."""

    def __init__(self, data_dir: Path) -> None:
        super().__init__(data_dir)
        self.ports["S3_PORT"] = _free_port_run(5)
        self.ports["HEALTH_PORT_BASE"] = _free_health_base()
        self.started_here: list[subprocess.Popen[bytes]] = []  # only a fallback Tansu, if ever

    def start(self) -> None:
        started = time.monotonic()
        super().start()
        self.start_seconds = time.monotonic() - started

    def broker_pid(self) -> int:
        assert self.process is not None
        for pid in descendants(self.process.pid):
            command = cmdline(pid)
            if "deploy.localbroker" in command and "run" in command:
                return pid
        raise AssertionError("no broker process (python -m deploy.localbroker run) below the run command")

    def tansu_pid(self) -> int | None:
        for pid in descendants(self.broker_pid()):
            command = cmdline(pid)  # empty for a zombie not yet reaped
            if command and Path(command[0]).name == "tansu":
                return pid
        return None

    def kill_tansu_and_wait_back(self, supervisor_timeout_s: float = 30.0) -> TansuRestart:
        """SIGKILL Tansu (a crash), then wait for the broker to answer again. The run command's
        broker process is expected to start it again; if it does not within the timeout, the test
        does what a supervisor would: start the same command with the same environment."""
        pid = self.tansu_pid()
        assert pid is not None, "no Tansu process below the broker process"
        command, environment = cmdline(pid), _environ(pid)
        cwd = os.readlink(f"/proc/{pid}/cwd")
        killed_at = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        by = "supervisor"
        try:
            new_pid = wait_until(lambda: (p := self.tansu_pid()) is not None and p != pid and p,
                                 timeout_s=supervisor_timeout_s, interval_s=0.05,
                                 message="the broker process to start Tansu again")
        except AssertionError:
            by = "test"
            log = (self.data_dir / "broker" / "logs" / "tansu-restarted-by-test.log").open("ab")
            process = subprocess.Popen(command, env=environment, cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                                       start_new_session=True)
            self.started_here.append(process)
            new_pid = process.pid
        wait_for_kafka(self.bootstrap, timeout_s=60)
        return TansuRestart(pid, int(new_pid), time.monotonic() - killed_at, by)

    def cleanup(self) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        for process in self.started_here:
            if process.poll() is None:
                process.kill()
                process.wait()
        _kill_processes_of(self.data_dir)

    def database_url(self, service: str) -> str:
        return f"sqlite:///{self.data_dir / f'{service}.sqlite'}"

    def audit_verify(self) -> tuple[int, dict[str, Any] | None, str]:
        """`samenveilig-audit verify` against this run's broker and databases: (exit code, JSON, stderr)."""
        env = self.env()
        env["KAFKA_BOOTSTRAP_SERVERS"] = self.bootstrap
        tool = Path(sys.executable).with_name("samenveilig-audit")
        base = [str(tool)] if tool.exists() else [sys.executable, "-m", "services.audit.cli"]
        done = subprocess.run(base + ["--json", "verify", "--access-db", self.database_url("access"),
                                      "--registry-db", self.database_url("registry")],
                              cwd=REPO, env=env, capture_output=True, timeout=180)
        try:
            payload = json.loads(done.stdout)
        except ValueError:
            payload = None
        return done.returncode, payload, done.stderr.decode(errors="replace")[-3000:]


def _environ(pid: int) -> dict[str, str]:
    pairs = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(p.decode(errors="replace").split("=", 1) for p in pairs if b"=" in p)


# --- the burst --------------------------------------------------------------------------------

@dataclass
class BranchPlan:
    code: str
    door: str  # "http" or "kafka": one branch's mutations all go through one door, in order
    mutations: list[dict[str, Any]]
    founded_id: str
    staff_roles: dict[str, str]  # staff_ref -> role
    dossiers: dict[str, str]  # dossier_ref -> contact staff_ref


class BurstPlan:
    """Branches with staff, pupils and dossiers; half the branches through each door. What must
    follow from it (event ids, dossier ids, mail Message-IDs) is derived the way the registry
    derives it (uuid5 of sender, mutation id and references)."""

    def __init__(self, client_id: str, tag: str, branches: int = 4, pupils: int = 30) -> None:
        self.client_id = client_id
        self.branches: list[BranchPlan] = []
        for b in range(branches):
            code = f"12AB{b:02d}"
            door = "http" if b % 2 == 0 else "kafka"
            n = iter(range(10_000))

            def mid(code: str = code, n: Any = n) -> str:
                return f"{tag}-{code}-{next(n):04d}"

            founded = mid()
            mutations: list[dict[str, Any]] = [
                {"kind": "branch", "change": "founded", "mutation_id": founded, "vestigingscode": code,
                 "name": f"OBS Chaos {code}", "address": ADDRESS, "phone": "010-1234567",
                 "wijknetwerk": "Noord" if b < 2 else "Zuid"}]
            roles = {"ib-1": "ib_er", "dir-1": "directeur", "lk-1": "leerkracht", "lk-2": "leerkracht",
                     "lk-3": "leerkracht"}
            for ref, role in roles.items():
                mutations.append({"kind": "staff_joined", "mutation_id": mid(), "vestigingscode": code,
                                  "staff_ref": ref, "role": role, "name": f"Medewerker {ref} {code}",
                                  "email": f"{ref}.{code.lower()}@school.example"})
            dossiers = {}
            for p in range(pupils):
                mutations.append({"kind": "pupil_enrolled", "mutation_id": mid(), "vestigingscode": code,
                                  "pupil_ref": f"lln-{p}", "name": f"Leerling {p}", "date_of_birth": "2016-05-01",
                                  "parent_emails": [f"ouder.{p}.{code.lower()}@example.nl"]})
                contact = f"lk-{p % 3 + 1}"
                dossiers[f"hv-{p}"] = contact
                mutations.append({"kind": "dossier_opened", "mutation_id": mid(), "vestigingscode": code,
                                  "dossier_ref": f"hv-{p}", "pupil_ref": f"lln-{p}", "contact_staff_ref": contact,
                                  "summary": "Ondersteuningsvraag rond lezen."})
            self.branches.append(BranchPlan(code, door, mutations, founded, roles, dossiers))

    def through(self, door: str) -> list[dict[str, Any]]:
        """The door's mutations, branches interleaved, each branch's own order kept."""
        queues = [list(b.mutations) for b in self.branches if b.door == door]
        out: list[dict[str, Any]] = []
        while any(queues):
            for queue in queues:
                if queue:
                    out.append(queue.pop(0))
        return out

    @property
    def mutations(self) -> list[dict[str, Any]]:
        return [m for b in self.branches for m in b.mutations]

    def event_id(self, mutation_id: str, n: int = 0) -> str:
        return derived_id("registry-event", self.client_id, mutation_id, str(n))

    def branch_id(self, branch: BranchPlan) -> str:
        return str(founded_branch_id(self.client_id, branch.founded_id))

    def staff_id(self, branch: BranchPlan, ref: str) -> str:
        return str(staff_id(founded_branch_id(self.client_id, branch.founded_id), ref))

    def dossier_ids(self) -> dict[str, set[str]]:
        """dossier id -> the staff ids that may see it (IB'er, directeur, contact person)."""
        out = {}
        for branch in self.branches:
            bid = founded_branch_id(self.client_id, branch.founded_id)
            for ref, contact in branch.dossiers.items():
                out[str(dossier_id(bid, ref))] = {self.staff_id(branch, "ib-1"), self.staff_id(branch, "dir-1"),
                                                  self.staff_id(branch, contact)}
        return out

    def expected_mail(self) -> set[str]:
        """Message-IDs (the part before '@') of every mail the burst must cause: the office mail per
        branch report, an invitation per staff member, a notification per opened dossier to each
        who may see it."""
        expected = set()
        for branch in self.branches:
            for m in branch.mutations:
                event = self.event_id(m["mutation_id"])
                if m["kind"] == "branch":
                    expected.add(event)
                elif m["kind"] == "staff_joined":
                    expected.add(f"{event}.invite")
                elif m["kind"] == "dossier_opened":
                    for ref in ("ib-1", "dir-1", m["contact_staff_ref"]):
                        expected.add(f"{event}.{self.staff_id(branch, ref)}")
        return expected


class Door(threading.Thread):
    """Sends its mutations at a steady pace (spread over `spread_s`), retrying what was not
    acknowledged (the same mutation again is harmless: the registry answers it as replayed)."""

    def __init__(self, name: str, mutations: list[dict[str, Any]], spread_s: float, give_up_s: float) -> None:
        super().__init__(name=name, daemon=True)
        self.mutations = mutations
        self.spread_s = spread_s
        self.give_up_s = give_up_s
        self.sent = 0
        self.retries = 0
        self.errors: list[str] = []
        self.failure_reasons: Counter[str] = Counter()
        self.blocked_s = 0.0  # the longest a single send waited to be acknowledged

    @property
    def progress(self) -> float:
        return self.sent / max(1, len(self.mutations))

    def pace(self, started: float, index: int) -> None:
        due = started + self.spread_s * index / max(1, len(self.mutations))
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)  # load shaping (a steady stream), not waiting for a condition


class HttpDoor(Door):
    def __init__(self, run: ChaosRun, api_key: str, mutations: list[dict[str, Any]], batch: int = 3,
                 spread_s: float = 10.0, give_up_s: float = 90.0) -> None:
        super().__init__("http-door", mutations, spread_s, give_up_s)
        self.run_command = run
        self.api_key = api_key
        self.batch = batch

    def run(self) -> None:
        started = time.monotonic()
        for start in range(0, len(self.mutations), self.batch):
            self.pace(started, start)
            batch = self.mutations[start:start + self.batch]
            first_try = time.monotonic()
            while True:
                try:
                    status, body = self.run_command.report(self.api_key, {"mutations": batch})
                except (OSError, ValueError) as error:
                    status, body = -1, {"error": type(error).__name__}
                if status == 202:
                    bad = [r for r in body["results"] if r["status"] != "accepted"]
                    if bad:
                        self.errors.append(f"not accepted: {bad}")
                    break
                self.failure_reasons[str(status)] += 1
                if status not in (-1, 500, 502, 503, 504) or time.monotonic() - first_try > self.give_up_s:
                    self.errors.append(f"batch at {start}: HTTP {status} {str(body)[:300]}")
                    break
                self.retries += 1
                time.sleep(0.2)
            self.blocked_s = max(self.blocked_s, time.monotonic() - first_try)
            self.sent += len(batch)


@dataclass(frozen=True)
class IntakeAck:
    mutation_id: str
    partition: int
    offset: int
    value: bytes


class KafkaDoor(Door):
    """Signed mutations on registry.mutations.v1, as in the README (acks=all), one at a time so
    that one branch's mutations keep their order; a send that fails is sent again on a new
    producer once the broker answers."""

    def __init__(self, bootstrap: str, credential: dict[str, str], mutations: list[dict[str, Any]],
                 spread_s: float = 10.0, give_up_s: float = 90.0) -> None:
        super().__init__("kafka-door", mutations, spread_s, give_up_s)
        self.bootstrap = bootstrap
        self.client_id = credential["client_id"]
        self.signing_key = base64.b64decode(credential["signing_key"])
        self.acks: list[IntakeAck] = []
        self.producers = 0
        self._producer: KafkaProducer | None = None

    def _connect(self) -> KafkaProducer:
        while self._producer is None:
            try:
                self._producer = KafkaProducer(bootstrap_servers=self.bootstrap, acks="all", linger_ms=0,
                                               request_timeout_ms=5000, delivery_timeout_ms=8000,
                                               max_block_ms=5000, retries=2)
                self.producers += 1
            except KafkaError as error:
                self.failure_reasons[type(error).__name__] += 1
                time.sleep(0.2)
        return self._producer

    def _drop(self) -> None:
        if self._producer is not None:
            with contextlib.suppress(Exception):
                self._producer.close(timeout=1)
        self._producer = None

    def run(self) -> None:
        started = time.monotonic()
        try:
            for index, mutation in enumerate(self.mutations):
                self.pace(started, index)
                value = json.dumps(mutation).encode()
                signature = "sha256=" + hmac.new(self.signing_key, value, hashlib.sha256).hexdigest()
                headers = [(CLIENT_HEADER, self.client_id.encode()), (SIGNATURE_HEADER, signature.encode())]
                first_try = time.monotonic()
                while True:
                    try:
                        metadata = self._connect().send(Topic.REGISTRY_MUTATIONS.value, key=self.client_id.encode(),
                                                        value=value, headers=headers).get(timeout=15)
                        if metadata.offset is not None and metadata.offset >= 0:
                            self.acks.append(IntakeAck(mutation["mutation_id"], metadata.partition,
                                                       metadata.offset, value))
                            break
                        # Tansu after a kill can answer -1 to an idempotent producer again and
                        # again (the torture saw it): a fresh producer sends it once more.
                        self.failure_reasons["acknowledged-without-offset"] += 1
                        self._drop()
                    except KafkaError as error:
                        self.failure_reasons[type(error).__name__] += 1
                        self._drop()
                    if time.monotonic() - first_try > self.give_up_s:
                        self.errors.append(f"{mutation['mutation_id']}: never acknowledged")
                        break
                    self.retries += 1
                    time.sleep(0.2)
                self.blocked_s = max(self.blocked_s, time.monotonic() - first_try)
                self.sent += 1
        finally:
            self._drop()


# --- reading what the run holds ---------------------------------------------------------------

def _query(db: Path, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return connection.execute(sql, args).fetchall()
    finally:
        connection.close()


def _tables(db: Path) -> set[str]:
    return {row[0] for row in _query(db, "SELECT name FROM sqlite_master WHERE type = 'table'")}


def system_state(data_dir: Path) -> dict[str, Any]:
    """Per service: events not yet on the broker, mail not yet sent, consumer lag; plus what was
    processed and how many mails arrived (the fingerprint of progress)."""
    state: dict[str, Any] = {"mail_files": len(maildir_files(data_dir))}
    for service in SERVICES:
        db = data_dir / f"{service}.sqlite"
        tables = _tables(db)
        row: dict[str, Any] = {}
        if f"{service}_outbox" in tables:
            row["unpublished"] = _query(db, f"SELECT count(*) FROM {service}_outbox "
                                            "WHERE published_at IS NULL AND applied = 1")[0][0]
        if f"{service}_mail_outbox" in tables:
            row["unsent_mail"] = _query(db, f"SELECT count(*) FROM {service}_mail_outbox "
                                            "WHERE sent_at IS NULL AND suppressed_at IS NULL")[0][0]
        if "consumer_positions" in tables:
            positions = _query(db, "SELECT consumer, topic, partition, next_offset, high_water "
                                   "FROM consumer_positions ORDER BY 1, 2, 3")
            row["lag"] = sum(max(0, (hw or 0) - nxt) for *_, nxt, hw in positions)
            row["unknown_high_water"] = sum(hw is None for *_, hw in positions)
            row["beyond_end"] = sum(hw is not None and nxt > hw for *_, nxt, hw in positions)
            row["positions"] = [list(p) for p in positions]
        if "processed_events" in tables:
            row["processed"] = _query(db, "SELECT count(*) FROM processed_events")[0][0]
        state[service] = row
    return state


def is_quiet(state: dict[str, Any]) -> bool:
    return all(not state[s].get(k) for s in SERVICES
               for k in ("unpublished", "unsent_mail", "lag", "unknown_high_water", "beyond_end"))


class IdleWatch:
    """Idle: nothing waits in any outbox, every consumer is at its high-water mark, and nothing
    moved (processed rows, positions, mails) for `still_s`."""

    def __init__(self, data_dir: Path, still_s: float = 3.0) -> None:
        self.data_dir = data_dir
        self.still_s = still_s
        self.last: dict[str, Any] | None = None
        self.since = time.monotonic()

    def __call__(self) -> bool:
        try:
            state = system_state(self.data_dir)
        except sqlite3.OperationalError:
            return False
        if state != self.last or not is_quiet(state):
            self.last, self.since = state, time.monotonic()
            return False
        return time.monotonic() - self.since >= self.still_s


def maildir_files(data_dir: Path) -> list[Path]:
    root = data_dir / "mail"
    return [p for sub in ("new", "cur") for p in (root / sub).glob("*") if p.is_file()]


def mail_ids(data_dir: Path) -> Counter[str]:
    """Message-IDs in the run's Maildir, the part before '@', counted."""
    parser = email.parser.BytesHeaderParser(policy=email.policy.compat32)
    found: Counter[str] = Counter()
    for path in maildir_files(data_dir):
        message_id = str(parser.parsebytes(path.read_bytes()).get("Message-ID", "")).strip().strip("<>")
        found[message_id.rsplit("@", 1)[0]] += 1
    return found


def read_log(bootstrap: str) -> dict[str, list[LogRecord]]:
    names = [t.value for t in Topic] + [dead_letter_topic(t.value) for t in Topic]
    return read_topics(bootstrap, TopicNames(""), names, timeout_s=120)


def event_ids(records: list[LogRecord]) -> Counter[str]:
    found: Counter[str] = Counter()
    for record in records:
        try:
            found[str(json.loads(record.value or b"{}").get("id"))] += 1
        except ValueError:
            found["<not json>"] += 1
    return found


def published_outbox(data_dir: Path) -> dict[str, list[tuple[str, str]]]:
    """Per service: (event id, topic) of every row its relay marked published."""
    out = {}
    for service in SERVICES:
        db = data_dir / f"{service}.sqlite"
        if f"{service}_outbox" in _tables(db):
            out[service] = [(r[0], r[1]) for r in _query(
                db, f"SELECT event_id, topic FROM {service}_outbox WHERE published_at IS NOT NULL")]
    return out


def registry_mutations(data_dir: Path, sender: str) -> dict[str, tuple[str, list[str]]]:
    """mutation id -> (status, event ids) as the registry recorded them."""
    rows = _query(data_dir / "registry.sqlite",
                  "SELECT mutation_id, status, event_ids FROM registry_mutations WHERE sender = ?", (sender,))
    return {r[0]: (r[1], json.loads(r[2])) for r in rows}


@dataclass
class Findings:
    problems: list[str] = field(default_factory=list)
    numbers: dict[str, Any] = field(default_factory=dict)

    def check(self, ok: bool, problem: str) -> None:
        if not ok:
            self.problems.append(problem)


def log_errors(output: Path) -> dict[str, int]:
    """Lines in the run's output that report an error, per process (honcho prefixes each line)."""
    counts: Counter[str] = Counter()
    for line in output.read_text(errors="replace").splitlines():
        name, _, rest = line.partition("|")
        lowered = rest.lower()
        if "traceback" in lowered or '"level": "error"' in lowered or '"level": "critical"' in lowered:
            counts[name.split()[-1] if name.split() else "?"] += 1
    return dict(counts)


def recovery_notes(output: Path) -> dict[str, dict[str, int]]:
    """What the services logged about the broker losing or refusing their writes, per process:
    events republished because the log lost them (shared.kafka.confirm), events held back because
    earlier versions of their stream were missing (shared.kafka.consumer), publishes not
    acknowledged (shared.kafka.producer): occurrences and the events they counted."""
    notes: dict[str, Counter[str]] = {}
    for line in output.read_text(errors="replace").splitlines():
        name, _, rest = line.partition("|")
        start = rest.find("{")
        if start < 0 or '"logger": "shared.kafka.' not in rest:
            continue
        try:
            entry = json.loads(rest[start:])
        except ValueError:
            continue
        if entry.get("level") not in ("warning", "error"):
            continue
        process = name.split()[-1] if name.split() else "?"
        key = f"{entry.get('logger')}: {entry.get('message')}"
        counts = notes.setdefault(process, Counter())
        counts[key] += 1
        if isinstance(entry.get("count"), int):
            counts[f"{key} (events)"] += entry["count"]
    return {process: dict(counts) for process, counts in sorted(notes.items())}
