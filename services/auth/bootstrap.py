"""Wires the auth service's real adapters; tests build their own with other ones."""

from __future__ import annotations

from dataclasses import dataclass

from argon2 import PasswordHasher
from sqlalchemy.engine import Engine

from services.auth import store
from services.auth.service import AuthService
from services.auth.settings import AuthSettings
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
class AuthDeps:
    settings: AuthSettings
    engine: Engine
    codec: EventCodec
    topics: TopicNames
    clock: Clock
    service: AuthService


def build(settings: AuthSettings, clock: Clock | None = None) -> AuthDeps:
    store.migrate_to_newest(settings.database_url)
    engine = make_engine(settings.database_url)
    clock = clock or SystemClock()
    keys = SqlKeyStore(make_engine(settings.keystore_url), settings.master_key_bytes())
    topics = TopicNames(settings.topic_prefix)
    codec = EventCodec(keys, source="/samenveilig/auth", topics=topics)
    hasher = PasswordHasher(time_cost=settings.argon2_time_cost, memory_cost=settings.argon2_memory_kib)
    service = AuthService(codec, clock, settings.master_key_bytes(), hasher, settings.auth_url,
                          str(settings.mail_from).split("@")[1])
    return AuthDeps(settings=settings, engine=engine, codec=codec, topics=topics, clock=clock, service=service)


def build_runner(deps: AuthDeps) -> ConsumerRunner:
    return build_consumer(deps.settings, store, topics=[deps.topics(Topic.REGISTRY_EVENTS)], engine=deps.engine,
                          codec=deps.codec, handler=deps.service.apply, clock=deps.clock,
                          group=deps.settings.consumer_group)


def build_relay(deps: AuthDeps) -> OutboxRelay:
    settings = deps.settings
    ensure_topics(settings.kafka_bootstrap_servers, [deps.topics(Topic.AUTH_EVENTS)], settings.topic_partitions,
                  settings.topic_replication)
    confirmer = PublishedConfirmer(deps.engine, store.outbox, settings.kafka_bootstrap_servers, deps.clock)
    publisher = EventPublisher.connect(settings.kafka_bootstrap_servers, "auth-relay")
    mail = MailSender(deps.engine, store.mail_outbox, deps.clock, settings.smtp_host, settings.smtp_port,
                      str(settings.mail_from), redact_after_send=True)
    return OutboxRelay("auth-relay", [lambda: publish_due(deps.engine, store.outbox, publisher, deps.clock),
                                      confirmer,
                                      mail.send_pending], settings.relay_interval_s,
                       relayed=RelayedOutbox(deps.engine, store.outbox, publisher, deps.clock))
