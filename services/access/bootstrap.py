"""Wires the access service's real adapters; tests build their own with other ones."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Engine

from services.access import store
from services.access.service import AccessService
from services.access.settings import AccessSettings
from shared.clock import Clock, SystemClock
from shared.contracts.envelope import EventCodec
from shared.contracts.topics import Topic, TopicNames
from shared.crypto import KeyStore, SqlKeyStore
from shared.db import make_engine
from shared.kafka.admin import ensure_topics
from shared.kafka.confirm import PublishedConfirmer
from shared.kafka.consumer import ConsumerRunner
from shared.kafka.producer import EventPublisher
from shared.kafka.progress import Progress
from shared.outbox import MailSender, OutboxRelay, RelayedOutbox, UpstreamOutboxes, publish_due
from shared.runtime import build_consumer


@dataclass
class AccessDeps:
    settings: AccessSettings
    engine: Engine
    keys: KeyStore
    codec: EventCodec
    topics: TopicNames
    clock: Clock
    service: AccessService
    upstream_outboxes: UpstreamOutboxes
    # What the processor applied, where it stands; the service marks its own grants in it too.
    progress: Progress


def build(settings: AccessSettings, clock: Clock | None = None) -> AccessDeps:
    store.migrate_to_newest(settings.database_url)
    engine = make_engine(settings.database_url)
    keys = SqlKeyStore(make_engine(settings.keystore_url), settings.master_key_bytes())
    topics = TopicNames(settings.topic_prefix)
    clock = clock or SystemClock()
    codec = EventCodec(keys, source="/samenveilig/access", topics=topics)
    own_progress = Progress(store.processed_events, store.consumer_positions, settings.consumer_group,
                            store.stream_versions)
    service = AccessService(codec, clock, settings.kindkans_url, str(settings.mail_from).split("@")[1],
                            progress=own_progress)
    upstream = UpstreamOutboxes(settings.upstream_outbox_urls.split(","), settings.outbox_max_age_s)
    return AccessDeps(settings=settings, engine=engine, keys=keys, codec=codec, topics=topics, clock=clock,
                      service=service, upstream_outboxes=upstream, progress=own_progress)


def progress(deps: AccessDeps) -> Progress:
    return deps.progress


def source_topics(deps: AccessDeps) -> list[str]:
    # Registry facts, our own explicit grants (so the tables rebuild from the log alone), and
    # purges (so a purged pupil's rows go).
    return [deps.topics(Topic.REGISTRY_EVENTS), deps.topics(Topic.ACCESS_EVENTS), deps.topics(Topic.RETENTION_EVENTS)]


def build_runner(deps: AccessDeps) -> ConsumerRunner:
    return build_consumer(deps.settings, store, topics=source_topics(deps), engine=deps.engine, codec=deps.codec,
                          handler=deps.service.apply, clock=deps.clock, group=deps.settings.consumer_group)


def build_relay(deps: AccessDeps) -> OutboxRelay:
    settings = deps.settings
    sources = source_topics(deps)
    ensure_topics(settings.kafka_bootstrap_servers, sources, settings.topic_partitions, settings.topic_replication)
    confirmer = PublishedConfirmer(deps.engine, store.outbox, settings.kafka_bootstrap_servers, deps.clock)
    publisher = EventPublisher.connect(settings.kafka_bootstrap_servers, "access-relay")
    mail = MailSender(deps.engine, store.mail_outbox, deps.clock, settings.smtp_host, settings.smtp_port,
                      str(settings.mail_from), check=deps.service.send_check)
    return OutboxRelay("access-relay", [lambda: publish_due(deps.engine, store.outbox, publisher, deps.clock),
                                        confirmer,
                                        mail.send_pending], settings.relay_interval_s,
                       relayed=RelayedOutbox(deps.engine, store.outbox, publisher, deps.clock))
