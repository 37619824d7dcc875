"""A service starting while the broker restarts (the run command's supervisor brings a killed
Tansu back within a second) waits for it: found in a run of the run command, where the access
relay exited at start on "socket disconnected" and took every other process down with it."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from deploy.localbroker import LocalBroker
from shared.kafka import admin
from tests.broker.helpers import wait_for_partitions

pytestmark = [pytest.mark.broker, pytest.mark.tansu_only, pytest.mark.timeout(120)]


@pytest.fixture
def restartable(broker) -> Iterator[LocalBroker]:
    if broker.kind != "tansu":
        pytest.skip(f"kills a local Tansu of its own; the session broker is {broker.kind}")
    local = LocalBroker(storage="memory").start()
    yield local
    local.stop()


def test_topics_are_ensured_across_a_broker_restart_in_the_middle(restartable, monkeypatch):
    connect = admin.connect_admin
    restarted = threading.Event()
    comebacks: list[threading.Timer] = []

    def connect_then_crash(bootstrap: str, wait_seconds: float = 30.0):
        client = connect(bootstrap, wait_seconds)
        if not restarted.is_set():  # the broker dies right after the service connected
            restarted.set()
            restartable.kill_broker()
            comebacks.append(threading.Timer(1.0, restartable.start_broker))
            comebacks[0].start()
        return client

    monkeypatch.setattr(admin, "connect_admin", connect_then_crash)
    created = admin.ensure_topics(restartable.bootstrap, ["restart.at.start"], partitions=3, replication=1)
    for comeback in comebacks:  # done starting before the fixture stops the broker (a CI warning otherwise)
        comeback.join(timeout=60)
    assert restarted.is_set() and created == ["restart.at.start"]
    client = connect(restartable.bootstrap)
    try:
        wait_for_partitions(client, {"restart.at.start": 3}, timeout_s=30)
    finally:
        client.close()
