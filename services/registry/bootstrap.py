"""Wires the registry's real adapters; tests build their own with other ones."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Engine

from services.registry import store
from services.registry.credentials import CredentialStore
from services.registry.handlers import apply_retention_event, handle_intake, make_intake_decoder
from services.registry.service import RegistryService
from services.registry.settings import RegistrySettings
from shared.clock import Clock, SystemClock
from shared.contracts.envelope import EventCodec
from shared.contracts.topics import Topic, TopicNames
from shared.crypto import SqlKeyStore
from shared.db import make_engine
from shared.kafka.admin import ensure_topics
from shared.kafka.confirm import PublishedConfirmer
from shared.kafka.consumer import ConsumerRunner
from shared.kafka.producer import EventPublisher
from shared.outbox import MailSender, OutboxRelay, RelayedOutbox, publish_due
from shared.runtime import build_consumer


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
    """Applies scheduled changes when their moment comes, publishes the outbox, sends office mail."""
    settings = deps.settings
    ensure_registry_topics(deps)
    publisher = EventPublisher.connect(settings.kafka_bootstrap_servers, "registry-relay")

    def apply_due() -> int:
        with deps.engine.begin() as connection:
            return deps.service.apply_due(connection, deps.clock.now())

    mail = MailSender(deps.engine, store.mail_outbox, deps.clock, settings.smtp_host, settings.smtp_port,
                      str(settings.mail_from))
    return OutboxRelay("registry-relay", [
        apply_due,
        lambda: publish_due(deps.engine, store.outbox, publisher, deps.clock),
        PublishedConfirmer(deps.engine, store.outbox, settings.kafka_bootstrap_servers, deps.clock),
        mail.send_pending,
    ], settings.relay_interval_s, relayed=RelayedOutbox(deps.engine, store.outbox, publisher, deps.clock))


def build_intake_runner(deps: RegistryDeps) -> ConsumerRunner:
    ensure_registry_topics(deps)
    return build_consumer(deps.settings, store, topics=[deps.topics(Topic.REGISTRY_MUTATIONS)], engine=deps.engine,
                          codec=None, decoder=make_intake_decoder(deps.credentials),
                          handler=lambda message, connection: handle_intake(deps.service, message, connection),
                          clock=deps.clock, group=deps.settings.consumer_group)


def build_follower(deps: RegistryDeps) -> ConsumerRunner:
    """Follows the retention service: a purged pupil's registry rows go."""
    return build_consumer(deps.settings, store, topics=[deps.topics(Topic.RETENTION_EVENTS)], engine=deps.engine,
                          codec=deps.codec, handler=apply_retention_event, clock=deps.clock,
                          group=f"{deps.settings.consumer_group}-follower")
