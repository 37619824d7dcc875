"""Starting a service's long-running workers the same way everywhere: JSON logs, its settings,
a clean stop on SIGTERM or Ctrl-C, and /healthz and /metrics when a health port is set."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy.engine import Engine

from shared.clock import Clock
from shared.contracts.envelope import EventCodec
from shared.contracts.topics import TopicNames, dead_letter_topic, intake_topic_configs
from shared.health import WorkerHealth, relay_health, runner_health
from shared.kafka.admin import ensure_topics
from shared.kafka.consumer import ConsumerRunner, Decoder, Handler, stop_on_signals
from shared.kafka.producer import EventPublisher
from shared.kafka.progress import Progress
from shared.kafka.sweep import RetentionSweep
from shared.logging import configure_logging
from shared.outbox import OutboxRelay
from shared.settings import CommonSettings

S = TypeVar("S", bound=CommonSettings)


def build_consumer(settings: CommonSettings, tables: Any, *, topics: list[str], engine: Engine,
                   codec: EventCodec | None, handler: Handler, clock: Clock, group: str,
                   decoder: Decoder | None = None) -> ConsumerRunner:
    """The consumer runner of every processor, wired one way: the topics and their dead-letter
    topics exist, its progress lives in the service's own plumbing tables (`tables`: the
    service's store module), its dead letters go out under the group's name, its timings come
    from the settings."""
    bootstrap = settings.kafka_bootstrap_servers
    configs = intake_topic_configs(TopicNames(settings.topic_prefix), settings.intake_retention_s)
    ensure_topics(bootstrap, topics + [f"{name}.dlq" for name in topics], settings.topic_partitions,
                  settings.topic_replication,
                  configs=configs)
    progress = Progress(tables.processed_events, tables.consumer_positions, group, tables.stream_versions)
    swept = [topic for topic in topics if topic in configs]
    sweep = None
    if settings.intake_sweep and swept:
        # The broker does not delete by retention.ms (Tansu on object storage): the intake does.
        sweep = RetentionSweep(bootstrap, [(topic, dead_letter_topic(topic)) for topic in swept],
                               retention_s=settings.intake_retention_s, interval_s=settings.intake_sweep_interval_s,
                               partitions=settings.topic_partitions, replication=settings.topic_replication,
                               configs=configs, engine=engine, progress=progress, subscribed=topics,
                               vacuum_url=settings.broker_storage_vacuum_url)
    return ConsumerRunner(
        consumer_name=group, topics=topics, bootstrap=bootstrap, engine=engine, codec=codec, decoder=decoder,
        handler=handler, clock=clock,
        progress=progress, dlq=EventPublisher.connect(bootstrap, f"{group}-dlq"),
        session_timeout_ms=settings.consumer_session_timeout_ms, fetch_max_wait_ms=settings.consumer_fetch_max_wait_ms,
        idle_task=sweep)


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
