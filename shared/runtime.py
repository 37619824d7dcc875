"""Starting a service's long-running workers the same way everywhere: JSON logs, its settings,
a clean stop on SIGTERM or Ctrl-C."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

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
    runner.run()


def run_relay(name: str, settings: S, build: Callable[[S], Any], build_relay: Callable[[Any], OutboxRelay]) -> None:
    configure_logging(name, settings.log_level)
    relay = build_relay(build(settings))
    relay.stop_on_signals()
    relay.run()
