"""A departure the registry accepted but could not get onto the broker makes the access check
fail closed instead of answering from state that does not know it (the chaos run: `caught_up:
true` and an allowed check while the registry's outbox held the change)."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import uvicorn

from deploy.localbroker import free_port
from services.access.api import create_app as create_access_app
from services.access.bootstrap import build as build_access
from services.access.settings import AccessSettings
from services.registry import store as registry_store
from services.registry.api import create_app as create_registry_app
from services.registry.bootstrap import build as build_registry
from services.registry.bootstrap import build_relay
from services.registry.settings import RegistrySettings
from shared.clock import ManualClock
from shared.contracts.events import StaffDeparted
from shared.contracts.topics import Topic
from shared.outbox import enqueue_event
from tests.support import ACCESS_SCOPES, TOKENS, api_client, wait_until

BRANCH = uuid.UUID("00000000-0000-4000-8000-0000000000f1")


pytestmark = [pytest.mark.every_database]


def test_a_change_stuck_in_the_registry_outbox_makes_the_access_check_fail_closed(
        broker, topic_prefix, database_url, master_key, tmp_path, smtp_server):
    clock = ManualClock(datetime.now(UTC))
    registry = build_registry(RegistrySettings(
        kafka_bootstrap_servers=broker.bootstrap, topic_prefix=topic_prefix, database_url=database_url,
        keystore_url=f"sqlite:///{tmp_path / 'keys.sqlite'}", master_key=master_key,
        smtp_port=smtp_server.port), clock=clock)
    port = free_port()
    registry_app = create_registry_app(registry)
    registry_app.state.verifier = TOKENS.verifier("registry")
    server = uvicorn.Server(uvicorn.Config(registry_app, host="127.0.0.1", port=port,
                                           log_config=None, access_log=False))
    threading.Thread(target=server.run, daemon=True).start()
    wait_until(lambda: server.started, message="the registry API to listen")
    access = build_access(AccessSettings(
        kafka_bootstrap_servers=broker.bootstrap, topic_prefix=topic_prefix,
        database_url=f"sqlite:///{tmp_path / 'access.sqlite'}", keystore_url=f"sqlite:///{tmp_path / 'keys.sqlite'}",
        master_key=master_key, max_wait_ms=100, upstream_outbox_urls=f"http://127.0.0.1:{port}",
        outbox_max_age_s=5))
    api = api_client(create_access_app(access), "access", ACCESS_SCOPES)
    with access.engine.begin() as connection:  # the access processor is caught up with the log
        access.progress.advance(connection, access.topics(Topic.REGISTRY_EVENTS), 0, 12, 12, access.clock.now())
    check = {"staff_id": str(uuid.uuid4()), "dossier_id": str(uuid.uuid4())}
    relay = None
    try:
        # The registry's outbox counts are behind a token too: without the access service's own,
        # or with one for another scope, it cannot tell, and fails closed.
        assert api.get("/v1/check", params=check).status_code == 503
        access.upstream_outboxes.token = lambda: TOKENS.token("access-service", "registry:read",
                                                              ["access-service", "registry"])
        wait_until(lambda: "cannot tell" in api.get("/v1/check", params=check).json().get("detail", ""),
                   timeout_s=5, message="a token without registry:outbox refused")
        access.upstream_outboxes.token = lambda: TOKENS.token("access-service", "registry:outbox",
                                                              ["access-service", "registry"])
        wait_until(lambda: api.get("/v1/check", params=check).status_code == 200, timeout_s=5,
                   message="the check answering with the access service's own token")

        # Accepted by the registry (in its outbox), not on the broker: no relay runs.
        departure = registry.codec.encode(StaffDeparted(branch_id=BRANCH, staff_id=uuid.UUID(check["staff_id"])),
                                          event_id=str(uuid.uuid4()), recorded_at=clock.now())
        with registry.engine.begin() as connection:
            enqueue_event(connection, registry_store.outbox, departure, emit_at=clock.now())
        clock.advance(timedelta(seconds=30))
        response = wait_until(lambda: (r := api.get("/v1/check", params=check)).status_code == 503 and r,
                              timeout_s=5, message="the check failing closed (answers are cached for 0.5 s)")
        assert "not yet on the broker" in response.json()["detail"]

        relay = build_relay(registry)
        threading.Thread(target=relay.run, daemon=True).start()
        wait_until(lambda: api.get("/v1/check", params=check).status_code == 200, timeout_s=30,
                   message="the check answering once the registry's outbox drained")
    finally:
        if relay is not None:
            relay.stop_event.set()
        server.should_exit = True


def test_an_unreachable_upstream_counts_as_stuck(broker, topic_prefix, master_key, tmp_path):
    access = build_access(AccessSettings(
        kafka_bootstrap_servers=broker.bootstrap, topic_prefix=topic_prefix,
        database_url=f"sqlite:///{tmp_path / 'access.sqlite'}", keystore_url=f"sqlite:///{tmp_path / 'keys.sqlite'}",
        master_key=master_key, max_wait_ms=100, upstream_outbox_urls=f"http://127.0.0.1:{free_port()}"))
    with access.engine.begin() as connection:
        access.progress.advance(connection, access.topics(Topic.REGISTRY_EVENTS), 0, 3, 3, access.clock.now())
    access.upstream_outboxes.token = lambda: TOKENS.token("access-service", "registry:outbox",
                                                          ["access-service", "registry"])
    response = api_client(create_access_app(access), "access", ACCESS_SCOPES).get(
        "/v1/check", params={"staff_id": str(uuid.uuid4()), "dossier_id": str(uuid.uuid4())})
    assert response.status_code == 503
    assert "cannot tell" in response.json()["detail"]
