"""Wires the registry's real adapters; tests build their own with other ones."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Engine

from services.registry import store
from services.registry.credentials import CredentialStore
from services.registry.processor import handle_intake, make_intake_decoder
from services.registry.relay import make_relay
from services.registry.service import RegistryService
from services.registry.settings import RegistrySettings
from shared.clock import Clock, SystemClock
from shared.contracts.envelope import EventCodec
from shared.contracts.topics import Topic, TopicNames
from shared.crypto import SqlKeyStore
from shared.db import make_engine
from shared.kafka.admin import ensure_topics
from shared.kafka.consumer import ConsumerRunner
from shared.kafka.producer import EventPublisher
from shared.kafka.progress import Progress
from shared.outbox import OutboxRelay


@dataclass
class RegistryDeps:
    settings: RegistrySettings
    engine: Engine
    codec: EventCodec
    topics: TopicNames
    clock: Clock
    service: RegistryService
    credentials: CredentialStore


def build(settings: RegistrySettings, clock: Clock | None = None) -> RegistryDeps:
    store.migrate_to_newest(settings.database_url)
    engine = make_engine(settings.database_url)
    clock = clock or SystemClock()
    keys = SqlKeyStore(make_engine(settings.keystore_url), settings.master_key_bytes())
    topics = TopicNames(settings.topic_prefix)
    codec = EventCodec(keys, source="/samenveilig/registry", topics=topics)
    service = RegistryService(codec, clock, office_email=str(settings.office_email),
                              mail_domain=str(settings.mail_from).split("@")[1])
    return RegistryDeps(settings=settings, engine=engine, codec=codec, topics=topics, clock=clock, service=service,
                        credentials=CredentialStore(engine, settings.master_key_bytes(), clock))


def ensure_registry_topics(deps: RegistryDeps) -> None:
    names = [deps.topics(Topic.REGISTRY_MUTATIONS), deps.topics(Topic.REGISTRY_EVENTS)]
    ensure_topics(deps.settings.kafka_bootstrap_servers, names + [f"{name}.dlq" for name in names],
                  deps.settings.topic_partitions, deps.settings.topic_replication)


def build_relay(deps: RegistryDeps) -> OutboxRelay:
    settings = deps.settings
    ensure_registry_topics(deps)
    return make_relay(engine=deps.engine, service=deps.service,
                 publisher=EventPublisher.connect(settings.kafka_bootstrap_servers, "registry-relay"),
                 bootstrap=settings.kafka_bootstrap_servers, clock=deps.clock,
                 smtp_host=settings.smtp_host, smtp_port=settings.smtp_port, mail_from=str(settings.mail_from),
                 interval_s=settings.relay_interval_s)


def build_intake_runner(deps: RegistryDeps) -> ConsumerRunner:
    settings = deps.settings
    ensure_registry_topics(deps)
    return ConsumerRunner(
        consumer_name=settings.consumer_group, topics=[deps.topics(Topic.REGISTRY_MUTATIONS)],
        bootstrap=settings.kafka_bootstrap_servers, engine=deps.engine, codec=None,
        decoder=make_intake_decoder(deps.credentials),
        handler=lambda message, connection: handle_intake(deps.service, message, connection),
        progress=Progress(store.processed_events, store.consumer_positions, settings.consumer_group,
                          store.stream_versions),
        dlq=EventPublisher.connect(settings.kafka_bootstrap_servers, f"{settings.consumer_group}-dlq"),
        clock=deps.clock, session_timeout_ms=settings.consumer_session_timeout_ms,
        fetch_max_wait_ms=settings.consumer_fetch_max_wait_ms)


def build_follower(deps: RegistryDeps) -> ConsumerRunner:
    """Follows the retention service: a purged pupil's registry rows go."""
    from services.registry.follower import apply_retention_event

    settings = deps.settings
    source = deps.topics(Topic.RETENTION_EVENTS)
    ensure_topics(settings.kafka_bootstrap_servers, [source, f"{source}.dlq"], settings.topic_partitions,
                  settings.topic_replication)
    group = f"{settings.consumer_group}-follower"
    return ConsumerRunner(
        consumer_name=group, topics=[source], bootstrap=settings.kafka_bootstrap_servers, engine=deps.engine,
        codec=deps.codec, handler=apply_retention_event,
        progress=Progress(store.processed_events, store.consumer_positions, group,
                          store.stream_versions),
        dlq=EventPublisher.connect(settings.kafka_bootstrap_servers, f"{group}-dlq"), clock=deps.clock,
        session_timeout_ms=settings.consumer_session_timeout_ms, fetch_max_wait_ms=settings.consumer_fetch_max_wait_ms)
