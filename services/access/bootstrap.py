"""Wires the access service's real adapters; tests build their own with other ones."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Engine

from services.access import store
from services.access.service import apply_registry_event
from services.access.settings import AccessSettings
from shared.clock import Clock, SystemClock
from shared.contracts.envelope import EventCodec
from shared.contracts.topics import Topic, TopicNames
from shared.crypto import KeyStore, SqlKeyStore
from shared.db import make_engine
from shared.kafka.admin import ensure_topics
from shared.kafka.consumer import ConsumerRunner
from shared.kafka.producer import make_producer
from shared.kafka.progress import Progress


@dataclass
class AccessDeps:
    settings: AccessSettings
    engine: Engine
    keys: KeyStore
    codec: EventCodec
    topics: TopicNames
    clock: Clock


def build(settings: AccessSettings, clock: Clock | None = None) -> AccessDeps:
    store.migrate_to_newest(settings.database_url)
    engine = make_engine(settings.database_url)
    keys = SqlKeyStore(make_engine(settings.keystore_url), settings.master_key_bytes())
    topics = TopicNames(settings.topic_prefix)
    return AccessDeps(settings=settings, engine=engine, keys=keys,
                      codec=EventCodec(keys, source="/samenveilig/access", topics=topics),
                      topics=topics, clock=clock or SystemClock())


def progress(deps: AccessDeps) -> Progress:
    return Progress(store.processed_events, store.consumer_positions, deps.settings.consumer_group)


def build_runner(deps: AccessDeps) -> ConsumerRunner:
    settings = deps.settings
    source = deps.topics(Topic.REGISTRY_EVENTS)
    ensure_topics(settings.kafka_bootstrap_servers, [source, f"{source}.dlq"],
                  settings.topic_partitions, settings.topic_replication)
    return ConsumerRunner(
        consumer_name=settings.consumer_group, topics=[source],
        bootstrap=settings.kafka_bootstrap_servers, engine=deps.engine, codec=deps.codec,
        handler=apply_registry_event, progress=progress(deps),
        dlq_producer=make_producer(settings.kafka_bootstrap_servers, f"{settings.consumer_group}-dlq"),
        clock=deps.clock, session_timeout_ms=settings.consumer_session_timeout_ms,
        fetch_max_wait_ms=settings.consumer_fetch_max_wait_ms)
