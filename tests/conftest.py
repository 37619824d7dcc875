"""Fixtures shared by every test: one broker per session, a database per test.

The broker: KAFKA_BOOTSTRAP_SERVERS when set; else Apache Kafka in a container when a Docker
engine answers (testcontainers); else the local Tansu broker, in memory.
Databases: SQLite always; PostgreSQL too when SAMENVEILIG_TEST_POSTGRES_URL is set (the test
command starts one), each test in a database of its own.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from deploy.localbroker import LocalBroker
from shared.crypto import new_master_key
from tests.support import SmtpCatcher

# The in-memory broker has no object listing to pay for, and answers a waiting fetch after half
# the wait (defect 5): a short wait keeps in-process tests fast. The run command (and so the e2e
# tests, whose environment drops SAMENVEILIG_*) keeps the default of 500 ms.
os.environ.setdefault("SAMENVEILIG_CONSUMER_FETCH_MAX_WAIT_MS", "50")


@dataclass(frozen=True)
class BrokerUnderTest:
    bootstrap: str
    kind: str  # "external", "container" or "tansu"
    local: LocalBroker | None = None

    @property
    def is_tansu(self) -> bool:
        return self.kind == "tansu"


def _docker_engine_answers() -> bool:
    try:
        import docker

        client = docker.from_env(timeout=2)
        client.ping()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def broker() -> Iterator[BrokerUnderTest]:
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if external:
        yield BrokerUnderTest(external, "external")
        return
    if _docker_engine_answers():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer("apache/kafka:3.9.0").with_kraft() as container:
            yield BrokerUnderTest(container.get_bootstrap_server(), "container")
        return
    local = LocalBroker(storage="memory").start()
    try:
        yield BrokerUnderTest(local.bootstrap, "tansu", local)
    finally:
        local.stop()


@pytest.fixture
def topic_prefix() -> str:
    """Isolates one test's topics from every other test's on the shared broker."""
    return f"t{uuid.uuid4().hex[:10]}."


# Tansu completes a group join after about half the session timeout (6 s: 3 s per join; 2 s:
# 1 s, its floor). Every service the tests build reads this through its settings; the
# deployment keeps 6 s (shared/settings.py), where a join happens once per start.
TEST_SESSION_TIMEOUT_MS = 2000
os.environ.setdefault("SAMENVEILIG_CONSUMER_SESSION_TIMEOUT_MS", str(TEST_SESSION_TIMEOUT_MS))


def _database_backends() -> list[str]:
    return ["sqlite", "postgresql"] if os.environ.get("SAMENVEILIG_TEST_POSTGRES_URL") else ["sqlite"]


# The runs of the whole system or of a broker under kills take turns, so that none competes with
# another for the two cores (their timing bounds are the user's, not a harness's); the other
# files run beside them. Under `--dist loadfile` they are one work unit, started first on a
# worker that takes nothing else until they are done (`SystemRunsFirst`): no worker sits
# waiting for another's run. Under any other distribution a file lock makes them take turns.
# In this order: the broker torture last, when the other workers are done and its producers'
# timing bounds meet the least contention.
SYSTEM_RUNS = ("tests/e2e/test_run_command.py", "tests/e2e/test_readme_examples.py", "tests/e2e/test_chaos.py",
               "tests/broker/test_torture.py")
SYSTEM_RUNS_SCOPE = "system-runs"
# The same worker then runs a file of pure computation (generated histories), which the
# others would otherwise have to fit in while it waits for an empty queue.
SYSTEM_WORKER = (*SYSTEM_RUNS, "tests/integration/test_live_equals_replay.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def system_run_rank(item: pytest.Item) -> int:
        path = item.nodeid.split("::", 1)[0]
        return SYSTEM_WORKER.index(path) + 1 if path in SYSTEM_WORKER else 0

    items.sort(key=system_run_rank)  # stable: every other test keeps its place


def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object | None:
    if config.getoption("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class SystemRunsFirst(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return SYSTEM_RUNS_SCOPE if path in SYSTEM_WORKER else path

        def _assign_work_unit(self, node: object) -> None:
            if SYSTEM_RUNS_SCOPE in self.workqueue:
                self.workqueue.move_to_end(SYSTEM_RUNS_SCOPE, last=False)
            super()._assign_work_unit(node)

        def _reschedule(self, node: object) -> None:
            running = self.assigned_work.get(node, {}).get(SYSTEM_RUNS_SCOPE)
            if running is not None and not all(running.values()):
                return  # anything queued behind the system runs would wait minutes for a free worker
            super()._reschedule(node)

    return SystemRunsFirst(config, log)


@pytest.fixture(scope="module", autouse=True)
def one_system_run_at_a_time(request: pytest.FixtureRequest,
                             tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    path = Path(str(request.path)).relative_to(Path(str(request.config.rootpath))).as_posix()
    if path not in SYSTEM_RUNS or not hasattr(request.config, "workerinput"):
        yield
        return
    # The workers' temporary directories share a parent: the lock lives there.
    with (tmp_path_factory.getbasetemp().parent / "system-runs.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test that needs a service database runs on SQLite; those marked every_database (the
    store tests: SQL, transactions, locking, what PostgreSQL does differently) run on
    PostgreSQL too, when the test command started one."""
    every = metafunc.definition.get_closest_marker("every_database") is not None
    backends = _database_backends() if every else ["sqlite"]
    if "database_url" in metafunc.fixturenames:
        metafunc.parametrize("database_url", backends, indirect=True)
    if "module_database_url" in metafunc.fixturenames:
        # Module scope: pytest orders the module's tests by backend and builds each database once.
        metafunc.parametrize("module_database_url", backends, indirect=True, scope="module")


@pytest.fixture
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with _service_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture(scope="module")
def module_database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One service database for a module's tests that share a running service (each of them
    uses ids of its own): every group join on Tansu takes a second (README, "The two commands")."""
    with _service_database(request.param, tmp_path_factory.mktemp("module-db")) as url:
        yield url


@contextlib.contextmanager
def _service_database(backend: str, directory: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{directory / 'service.sqlite'}"
        return
    server_url = os.environ["SAMENVEILIG_TEST_POSTGRES_URL"]
    name = f"test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def master_key() -> str:
    return new_master_key()


@pytest.fixture
def smtp_server() -> Iterator[SmtpCatcher]:
    server = SmtpCatcher().start()
    yield server
    server.stop()
