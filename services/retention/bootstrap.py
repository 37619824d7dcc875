"""The retention service, declared once (`SERVICE`), and its real adapters; tests build their own
with other ones."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from services.retention import store
from services.retention.deps import RetentionDeps
from services.retention.domain import PROMISED_YEARS, above_promise, retention_periods
from services.retention.leaks import HistoryReader, LeakDesk
from services.retention.requests import RequestDesk
from services.retention.service import RetentionService
from services.retention.settings import RetentionSettings
from shared.clock import Clock, SystemClock
from shared.contracts.envelope import EventCodec, service_codec
from shared.contracts.topics import Topic, TopicNames
from shared.crypto import open_key_store
from shared.db import make_engine
from shared.kafka.consumer import ConsumerRunner
from shared.kafka.log import Entry, LogRecord, decode_all, in_stream_order, read_topics
from shared.kit import Processor, RelayTask, ServiceDeclaration
from shared.outbox import OutboxRelay

log = logging.getLogger(__name__)

# What the leak and inspection work reads: the topics where pupils, their dossiers, who could see
# them and what retention did are recorded (auth holds nothing about pupils).
HISTORY_TOPICS = [Topic.REGISTRY_EVENTS, Topic.ACCESS_EVENTS, Topic.RETENTION_EVENTS]


def log_reader(settings: RetentionSettings, topics: TopicNames, codec: EventCodec,
               skip_types: frozenset[str] = frozenset()) -> HistoryReader:
    """`skip_types`: event types not decoded at all (by their `ce_type` header), for work that
    never looks at them: views are most of the log and the leak work needs none."""
    skip_headers = {t.encode() for t in skip_types}

    def wanted(record: LogRecord) -> bool:
        return not any(k == "ce_type" and v in skip_headers for k, v in record.headers)

    def read() -> Sequence[Entry]:
        records = read_topics(settings.kafka_bootstrap_servers, topics, [str(t) for t in HISTORY_TOPICS])
        entries, _undecodable = decode_all(codec, [r for rs in records.values() for r in in_stream_order(rs)
                                                   if wanted(r)])
        return entries  # undecodable records are the dead-letter topics' and the audit's concern

    return read


def warn_above_promise(periods: dict[str, int]) -> None:
    """The SSOE statement promises "maximaal 2 jaar na vertrek": a configured longer period is
    the operator's choice (a legal period may demand it), and is said at every start."""
    for category, years in above_promise(periods):
        log.warning("retention period above the promise of %d years after leaving: %s is kept %d years "
                    "(SAMENVEILIG_RETENTION_YEARS)", PROMISED_YEARS, category, years,
                    extra={"category": category, "years": years})


def build(settings: RetentionSettings, clock: Clock | None = None) -> RetentionDeps:
    store.migrate_to_newest(settings.database_url)
    engine = make_engine(settings.database_url)
    clock = clock or SystemClock()
    keys = open_key_store(settings.keystore_url, settings.master_key_bytes(), settings.epoch_keys_url)
    topics = TopicNames(settings.topic_prefix)
    codec = service_codec(keys, "retention", topics, settings.signing_paths(), settings.signing_create_keys)
    periods = retention_periods(settings.retention_years)
    warn_above_promise(periods)
    service = RetentionService(codec, keys, clock, periods, settings.intake_copies_gone_within_s())
    return RetentionDeps(settings=settings, engine=engine, codec=codec, topics=topics, clock=clock, service=service,
                         leaks=LeakDesk(service, log_reader(settings, topics, codec, frozenset({"DossierViewed"})),
                                        settings.privacy_contact, settings.leak_mail_second_approval_above),
                         requests=RequestDesk(service, log_reader(settings, topics, codec)))


class InBackground:
    """Runs slow relay work (a read of the whole event log) in a thread of its own, so the relay's
    other rounds (publishing, mail, purges, alarms) go on meanwhile. One run at a time; after a
    failure (the broker away) it waits before reading the log again."""

    def __init__(self, name: str, work: Callable[[], int], retry_after_s: float = 10.0) -> None:
        self._name = name
        self._work = work
        self._retry_after_s = retry_after_s
        self._thread: threading.Thread | None = None
        self._not_before = 0.0
        self._done = 0

    def __call__(self) -> int:
        if (self._thread is not None and self._thread.is_alive()) or time.monotonic() < self._not_before:
            return 0
        done, self._done = self._done, 0
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()
        return done

    def _run(self) -> None:
        try:
            self._done = self._work()
        except Exception as error:  # the work is still pending in the database: retried later
            self._not_before = time.monotonic() + self._retry_after_s
            log.warning("background relay work failed, retrying later",
                        extra={"task": self._name, "reason": type(error).__name__})


def relay_tasks(deps: RetentionDeps) -> list[RelayTask]:
    """Purges when due (also catching up after downtime), works out who new leaks affect, raises
    the 72-hour alarms, builds inspection exports."""
    return [lambda: deps.service.purge_due(deps.engine),
            InBackground("leaks", lambda: deps.leaks.resolve_pending(deps.engine)),
            lambda: deps.leaks.raise_alarms(deps.engine),
            InBackground("exports", lambda: deps.requests.prepare_exports(deps.engine))]


SERVICE: ServiceDeclaration[RetentionSettings, RetentionDeps] = ServiceDeclaration(
    name="retention",
    description="Retention, crypto-shredding purges, consent, data-subject requests, data leaks.",
    settings=RetentionSettings, build=build, tables=store,
    publishes=(Topic.RETENTION_EVENTS,),
    processors=(Processor("retention-processor", (Topic.REGISTRY_EVENTS,), lambda deps: deps.service.apply),),
    routes="services.retention.routes",
    relay_tasks=relay_tasks,
)


def build_runner(deps: RetentionDeps) -> ConsumerRunner:
    return SERVICE.runner(deps)


def build_relay(deps: RetentionDeps) -> OutboxRelay:
    return SERVICE.relay(deps)
