"""The README's run command, started as a user starts it: broker, processor and API come up,
a departure flows through, Ctrl-C stops everything, and a second start has the data intact."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from deploy.localbroker import free_port
from shared.contracts.envelope import EventCodec
from shared.contracts.events import StaffDeparted, StaffJoined, StaffRole
from shared.contracts.topics import Topic
from shared.crypto import SqlKeyStore
from shared.db import make_engine
from shared.kafka.producer import EventPublisher, make_producer
from tests.support import read_all, wait_until

REPO = Path(__file__).resolve().parents[2]
BRANCH = uuid.UUID("00000000-0000-4000-8000-0000000000e2")


class RunCommand:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.ports = {"BROKER_PORT": free_port(), "S3_PORT": free_port(), "ACCESS_API_PORT": free_port()}
        self.process: subprocess.Popen[bytes] | None = None
        self.output = data_dir.parent / "run.out"

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.ports['ACCESS_API_PORT']}"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.ports['BROKER_PORT']}"

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items()
               if k not in ("KAFKA_BOOTSTRAP_SERVERS",) and not k.startswith("SAMENVEILIG_")}
        env.update({k: str(v) for k, v in self.ports.items()})
        env["SAMENVEILIG_DATA_DIR"] = str(self.data_dir)
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
            with urllib.request.urlopen(f"{self.api}/healthz", timeout=1) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def get(self, path: str) -> tuple[int, dict]:
        try:
            with urllib.request.urlopen(f"{self.api}{path}", timeout=5) as response:
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


def _port_closed(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def test_run_command_survives_ctrl_c_and_a_second_start_with_data_intact(run):
    run.start()
    master_key = (run.data_dir / "master.key").read_text().strip()
    import base64

    keys = SqlKeyStore(make_engine(f"sqlite:///{run.data_dir / 'keystore.sqlite'}"), base64.b64decode(master_key))
    codec = EventCodec(keys, source="/school-system/e2e")
    staff_id = uuid.uuid4()
    departed_at = datetime(2026, 8, 1, tzinfo=UTC)
    publisher = EventPublisher(make_producer(run.bootstrap, "e2e"))
    publisher.publish_all([
        codec.encode(StaffJoined(branch_id=BRANCH, staff_id=staff_id, role=StaffRole.LEERKRACHT,
                                 name="Jan de Boer", email="j.deboer@school.example"),
                     event_id=str(uuid.uuid4()), recorded_at=departed_at.replace(year=2025)),
        codec.encode(StaffDeparted(branch_id=BRANCH, staff_id=staff_id), event_id=str(uuid.uuid4()),
                     recorded_at=departed_at),
    ])
    publisher.close()
    wait_until(lambda: run.get(f"/v1/staff/{staff_id}")[1].get("status") == "departed", timeout_s=60,
               message="the departure to show in the API")

    assert run.ctrl_c() in (0, 130, -signal.SIGINT)
    for port in run.ports.values():
        assert _port_closed(port), f"port {port} still open after Ctrl-C"
    assert "Traceback" not in run.output.read_text()

    run.start()
    status, body = run.get(f"/v1/staff/{staff_id}")
    assert status == 200 and body["status"] == "departed"
    assert body["departures_recorded"] == 1, "restart must not apply the departure again"
    # The broker kept its log across the restart (S3 storage), both events are still there.
    records = read_all(run.bootstrap, Topic.REGISTRY_EVENTS.value)
    assert len(records) == 2
    assert b"Jan de Boer" not in b"".join(r.value for r in records), "names travel sealed"
    assert run.ctrl_c() in (0, 130, -signal.SIGINT)
