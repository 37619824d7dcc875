"""Starting a service's long-running workers the same way everywhere: JSON logs, its settings,
a clean stop on SIGTERM or Ctrl-C, and /healthz and /metrics when a health port is set."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from shared.health import WorkerHealth, relay_health, runner_health
from shared.kafka.consumer import ConsumerRunner, stop_on_signals
from shared.logging import configure_logging
from shared.outbox import OutboxRelay
from shared.settings import CommonSettings

S = TypeVar("S", bound=CommonSettings)


def run_consumer(name: str, settings: S, build: Callable[[S], Any], build_runner: Callable[[Any], ConsumerRunner]
                 ) -> None:
    configure_logging(name, settings.log_level)
    runner = build_runner(build(settings))
    stop_on_signals(runner)
    health = _serve(settings, runner_health(runner))
    try:
        runner.run()
    finally:
        if health:
            health.stop()


def run_relay(name: str, settings: S, build: Callable[[S], Any], build_relay: Callable[[Any], OutboxRelay]) -> None:
    configure_logging(name, settings.log_level)
    relay = build_relay(build(settings))
    relay.stop_on_signals()
    health = None
    if relay.relayed is not None:
        watched = relay.relayed
        health = _serve(settings, relay_health(relay, engine=watched.engine, outbox=watched.outbox,
                                               publisher=watched.publisher, clock=watched.clock,
                                               max_outbox_age_s=settings.health_outbox_max_age_s))
    try:
        relay.run()
    finally:
        if health:
            health.stop()


def _serve(settings: CommonSettings, health: WorkerHealth) -> WorkerHealth | None:
    if settings.health_port is None:
        return None
    return health.serve(settings.api_host, settings.health_port)
