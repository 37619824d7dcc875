"""Data-leak handling in the retention service: how long the relay takes, once a leak is
registered, to read the event log, work out who the leak affects and queue the parents' mail -
against a plain read of the same topics, measured in the same run.

    .venv/bin/python -m bench.retention_leak [--events N [N ...]] [--bootstrap HOST:PORT] [--json]

For each log size N (default 10,000 and 100,000 events):

1. A seeded school year of N events is generated and produced to a new prefix's
   registry.events.v1 and access.events.v1 (3 partitions; retention.events.v1 is created and
   stays empty). The branches, staff (IB'ers, directeuren, leerkrachten, externs, stagiairs, SWV
   consultants), dossiers, grants, departures and hash-chained DossierViewed events are
   bench.audit_replay's SchoolYear, with one branch per 1,000 events (at most 200). On top of
   that every branch enrols 150-250 pupils (`PupilEnrolled`, 1 or 2 parent e-mails; some
   siblings share an address; a few `PupilLeft`), every dossier belongs to one of them, and one
   dossier in ten is a second dossier of a pupil who already has one. Every event is encoded with
   `EventCodec` and a `SqlKeyStore` on the key file the retention service uses (a new key per
   pupil and per staff member, as in the services), and sent by a plain `KafkaProducer`
   (bench.audit_replay's batching). Generating and producing are setup, timed apart.
2. Baseline: `read_topics` on the topics the leak work reads (registry, access, retention), to
   the high-water marks, alone; then `decode_all` with the service's codec (its SqlKeyStore).
   For context: a raw consumer that only counts the records, `decode_all` with an empty
   in-memory key store (what the key store's lookups cost), and `decode_all` of only the records
   whose ce_type header is not DossierViewed (each scope in (3) is checked to stay the same).
3. `build_index` on the decoded entries, and `leak_scope` for three leaks discovered just after
   the log's last event: one naming a single dossier, one naming an IB'er's account (who sees
   every dossier of the branch), and one naming an SWV consultant's account (every dossier of
   one or two wijknetwerken). `state_at` (the access fold inside `leak_scope`) is timed apart.
   Each scope is checked against what the generator knows (which pupils, which parents).
4. End to end: the retention service from `services.retention.bootstrap.build` (SQLite
   database and key store in a temporary directory, a ManualClock, the broker); each leak is
   registered with `LeakDesk.register` and `LeakDesk.resolve_pending(engine)` is timed, as the
   relay calls it. Checked: the breach register row is resolved with the scope from (3), and the
   mail outbox holds one mail per parent address of each affected pupil.

The components in (2) and (3) are the median of 3 runs; each end-to-end run is one call.
Ratios are against the median `read_topics` time of the same N. The broker: --bootstrap, else
KAFKA_BOOTSTRAP_SERVERS, else a local in-memory Tansu started (and stopped) by this run.
Progress goes to stderr; the table (or with --json, one JSON object) to stdout. Every phase is
bounded in time; one that runs out aborts the run with exit code 1. No timed assertions.
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import gc
import json
import logging
import os
import random
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID

from kafka import KafkaProducer
from sqlalchemy import func, select

from bench.audit_replay import (
    MAX_BRANCHES,
    PRODUCER_CONFIG,
    YEAR_END,
    GcClock,
    Person,
    SchoolYear,
    crc32c_implementation,
    peak_rss_mb,
    raw_consume_to_high_water,
)
from bench.broker_baseline import PARTITIONS, REPLICATION, machine_context, open_broker
from bench.common import BenchTimeout, Deadline, Progress, ratio
from services.access.history import state_at
from services.retention import store as retention_store
from services.retention.bootstrap import HISTORY_TOPICS, build
from services.retention.history import LeakScope, build_index, leak_scope, parents_to_tell
from services.retention.leaks import LeakReport
from services.retention.settings import RetentionSettings
from shared.clock import ManualClock
from shared.contracts.envelope import EventCodec
from shared.contracts.events import DataLeaked, DossierOpened, DossierViewed, PupilEnrolled, PupilLeft, StaffRole
from shared.contracts.topics import Topic, TopicNames
from shared.crypto import InMemoryKeyStore, SqlKeyStore, new_master_key
from shared.db import make_engine
from shared.kafka.admin import ensure_topics
from shared.kafka.log import LogRecord, decode_all, read_topics

SEED = 20261126
DEFAULT_SIZES = (10_000, 100_000)
MIN_EVENTS = 5_000
EVENTS_PER_BRANCH = 1_000  # one branch per 1,000 events, at most MAX_BRANCHES (200)
PUPILS_PER_BRANCH = (150, 250)
TWO_PARENTS = 0.6  # share of pupils with two parent addresses
SIBLINGS = 0.08  # share of pupils whose parents' addresses are an earlier pupil's of the branch
SECOND_DOSSIER = 0.1  # share of dossiers that belong to a pupil who already has one
PUPILS_LEAVING = 0.03  # share of pupils without a dossier who leave during the year
REPEATS = 3
ENCODE_CHUNK = 20_000
SCHOOL_START = datetime(2025, 8, 18, 7, 0, tzinfo=UTC)
WINDOW_S = 72 * 3600  # AVG art. 33(1): report to the Autoriteit Persoonsgegevens within 72 hours

progress = Progress()
GC = GcClock()
T = TypeVar("T")


# --- time limits ---------------------------------------------------------------------------

def setup_limit(n: int) -> float:
    return 120.0 + n * 0.003


def read_limit(n: int) -> float:
    return 60.0 + n * 0.002


def work_limit(n: int) -> float:
    return 120.0 + n * 0.01


# --- 1. the log ----------------------------------------------------------------------------

class LeakYear(SchoolYear):
    """bench.audit_replay's school year, with fewer branches per event and pupils added: every
    dossier's pupil is enrolled (with parent addresses) before the dossier opens, and most pupils
    have no dossier at all."""

    def __init__(self, n: int, seed: int = SEED) -> None:
        self.pupil_emails: dict[UUID, list[str]] = {}
        self.pupil_branch: dict[UUID, int] = {}
        self.dossier_pupil: dict[UUID, UUID] = {}
        self.dossier_branch: dict[UUID, int] = {}
        self.pupils_left = 0
        super().__init__(n, seed)

    def _plan(self) -> None:
        self.branch_count = max(1, min(MAX_BRANCHES, self.n // EVENTS_PER_BRANCH))
        super()._plan()
        self._plan_pupils()
        self.planned.sort(key=lambda p: (p.recorded, p.seq))

    def _plan_pupils(self) -> None:
        rng = self.rng
        opened_by_branch: dict[int, list[int]] = {}
        for i, planned in enumerate(self.planned):
            if isinstance(planned.event, DossierOpened):
                branch = self.branch_ids.index(planned.event.branch_id)
                opened_by_branch.setdefault(branch, []).append(i)
        for b, branch_id in enumerate(self.branch_ids):
            pupils: list[UUID] = []
            first_seen: dict[UUID, datetime] = {}  # when each pupil's first dossier opens
            # The dossiers' pupils: one dossier in ten belongs to a pupil of an earlier dossier.
            with_dossier: list[UUID] = []
            for i in sorted(opened_by_branch.get(b, []), key=lambda i: self.planned[i].recorded):
                planned = self.planned[i]
                event = planned.event
                assert isinstance(event, DossierOpened)
                pupil_id = (rng.choice(with_dossier) if with_dossier and rng.random() < SECOND_DOSSIER
                            else event.pupil_id)
                if pupil_id != event.pupil_id:
                    self.planned[i] = dataclasses.replace(planned, event=event.model_copy(
                        update={"pupil_id": pupil_id}))
                else:
                    with_dossier.append(pupil_id)
                    first_seen[pupil_id] = planned.recorded
                self.dossier_pupil[event.dossier_id] = pupil_id
                self.dossier_branch[event.dossier_id] = b
            for pupil_id in with_dossier:
                opened = first_seen[pupil_id]
                at = (self.between(SCHOOL_START - timedelta(days=3), SCHOOL_START)
                      if opened > SCHOOL_START + timedelta(days=1)
                      else opened - timedelta(days=rng.randint(1, 3)))
                self._enrol(b, pupils, pupil_id, min(at, opened - timedelta(hours=1)))
            for _ in range(max(0, rng.randint(*PUPILS_PER_BRANCH) - len(with_dossier))):
                pupil_id = self.uid()
                late = rng.random() < 0.1
                at = (self.between(datetime(2025, 9, 1, tzinfo=UTC), datetime(2026, 5, 31, tzinfo=UTC)) if late
                      else self.between(SCHOOL_START - timedelta(days=3), SCHOOL_START))
                self._enrol(b, pupils, pupil_id, at)
                if not late and rng.random() < PUPILS_LEAVING:
                    left = self.between(datetime(2025, 10, 1, tzinfo=UTC), datetime(2026, 6, 30, tzinfo=UTC))
                    self.add(PupilLeft(branch_id=branch_id, pupil_id=pupil_id, left_on=left.date()), left)
                    self.pupils_left += 1

    def _enrol(self, b: int, pupils: list[UUID], pupil_id: UUID, at: datetime) -> None:
        rng = self.rng
        number = len(self.pupil_emails) + 1
        if pupils and rng.random() < SIBLINGS:
            emails = list(self.pupil_emails[rng.choice(pupils)])
        else:
            emails = [f"ouder{number}a@example.nl"]
            if rng.random() < TWO_PARENTS:
                emails.append(f"ouder{number}b@example.nl")
        pupils.append(pupil_id)
        self.pupil_emails[pupil_id] = emails
        self.pupil_branch[pupil_id] = b
        self.add(PupilEnrolled(branch_id=self.branch_ids[b], pupil_id=pupil_id, name=f"Leerling {number}",
                               date_of_birth=date(rng.randint(2013, 2021), rng.randint(1, 12), rng.randint(1, 28)),
                               parent_emails=emails), at)


def generate_and_produce(bootstrap: str, topics: TopicNames, keys: SqlKeyStore, n: int
                         ) -> tuple[dict[str, Any], LeakYear]:
    names = [topics(t) for t in HISTORY_TOPICS]
    ensure_topics(bootstrap, names, PARTITIONS, REPLICATION)
    started = time.perf_counter()
    year = LeakYear(n)
    plan_s = time.perf_counter() - started
    codecs = {Topic.REGISTRY_EVENTS: EventCodec(keys, source="/samenveilig/registry", topics=topics),
              Topic.ACCESS_EVENTS: EventCodec(keys, source="/samenveilig/access", topics=topics)}
    producer = KafkaProducer(bootstrap_servers=bootstrap, client_id="bench-leak-producer", **PRODUCER_CONFIG)
    failures: list[BaseException] = []
    deadline = Deadline(setup_limit(n), "generating, encoding and producing the log")
    try:
        for name in names:
            producer.partitions_for(name)  # metadata before the clock starts
        progress(f"N={n:,}: generating, sealing and producing ({year.branch_count} branches, "
                 f"{len(year.people):,} staff, {len(year.pupil_emails):,} pupils, {len(year.dossiers):,} dossiers, "
                 f"{year.views:,} views)")
        stream = year.stream()
        encode_s = produce_s = 0.0
        sent = value_bytes = 0
        sealed = 0
        per_topic: Counter[str] = Counter()
        by_type: Counter[str] = Counter()
        while sent < n:
            started = time.perf_counter()
            chunk = []
            for event, event_id, recorded, effective in stream:
                encoded = codecs[event.topic].encode(event, event_id=event_id, recorded_at=recorded,
                                                     effective_at=effective)
                chunk.append(encoded)
                by_type[event.event_type] += 1
                sealed += bool(event.personal_fields())
                if len(chunk) >= ENCODE_CHUNK:
                    break
            encode_s += time.perf_counter() - started
            deadline.check(f"{sent + len(chunk):,} encoded")
            if not chunk:
                break
            started = time.perf_counter()
            for encoded in chunk:
                producer.send(encoded.topic, key=encoded.key, value=encoded.value,
                              headers=encoded.headers).add_errback(failures.append)
                per_topic[topics.logical(encoded.topic)] += 1
                value_bytes += len(encoded.value)
            producer.flush(timeout=max(1.0, deadline.remaining()))
            produce_s += time.perf_counter() - started
            deadline.check(f"{sent:,} sent")
            if failures:
                raise RuntimeError(f"{len(failures)} records failed to send: {failures[0]!r}")
            sent += len(chunk)
            progress(f"  {sent:,} produced")
        if sent != n:
            raise RuntimeError(f"generated {sent} events, expected {n}")
    finally:
        producer.close(timeout=10)
    emails = [len(e) for e in year.pupil_emails.values()]
    result = {
        "events": n, "per_topic": dict(per_topic), "by_type": dict(sorted(by_type.items())), "sealed": sealed,
        "branches": year.branch_count, "staff": len(year.people), "consultants": len(year.consultants),
        "pupils": len(year.pupil_emails), "pupils_with_dossier": len(set(year.dossier_pupil.values())),
        "pupils_left": year.pupils_left, "parent_addresses": len({a for e in year.pupil_emails.values() for a in e}),
        "pupils_two_parents": sum(1 for c in emails if c == 2), "dossiers": len(year.dossiers),
        "views": year.views, "plan_seconds": round(plan_s, 2),
        "encode_seconds": round(encode_s, 2), "encode_rate_per_s": round(n / encode_s, 1),
        "produce_seconds": round(produce_s, 2), "produce_rate_per_s": round(n / produce_s, 1),
        "avg_value_bytes": round(value_bytes / n, 1),
    }
    return result, year


# --- timing helpers --------------------------------------------------------------------------

def timed(fn: Callable[[], T]) -> tuple[T, float, float]:
    """(result, seconds, seconds of it in the garbage collector)."""
    gc_at = GC.seconds
    started = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - started, GC.seconds - gc_at


def median_of(what: str, fn: Callable[[], T], deadline: Deadline, repeats: int = REPEATS
              ) -> tuple[T, dict[str, Any]]:
    runs, gcs = [], []
    result: Any = None
    for i in range(repeats):
        deadline.check(f"{what}: run {i + 1} of {repeats}")
        result = None
        gc.collect()
        result, seconds, in_gc = timed(fn)
        runs.append(seconds)
        gcs.append(in_gc)
    middle = sorted(range(repeats), key=lambda i: runs[i])[repeats // 2]
    summary = {"seconds": round(runs[middle], 4), "gc_seconds": round(gcs[middle], 4),
               "runs": [round(r, 4) for r in runs]}
    progress(f"  {what}: {summary['seconds']:.3f} s (runs {', '.join(f'{r:.3f}' for r in runs)})")
    return result, summary


def ce_type(record: LogRecord) -> bytes | None:
    for key, value in record.headers:
        if key == "ce_type":
            return value
    return None


# --- 2.-4. the measurements ------------------------------------------------------------------

@dataclasses.dataclass
class LeakCase:
    name: str
    label: str
    report: LeakReport
    expected_pupils: set[UUID]


def leak_cases(year: LeakYear, discovered: datetime) -> list[LeakCase]:
    rng = random.Random(SEED + 1)
    dossier = rng.choice(sorted(year.dossier_pupil))

    def present_as(person: Person, role: StaffRole) -> bool:
        return person.present(discovered) and person.role_at(discovered) is role

    ib_er = rng.choice([p for p in year.people if p.branch is not None and present_as(p, StaffRole.IB_ER)])
    consultant = rng.choice([p for p in year.consultants if p.present(discovered)])
    wijks = set(consultant.wijknetwerken)
    nature = "Bench: gegevens zijn bij de verkeerde ontvanger terechtgekomen."

    def pupils_of(dossiers: set[UUID]) -> set[UUID]:
        return {year.dossier_pupil[d] for d in dossiers}

    return [
        LeakCase("dossier", "1 dossier", LeakReport(nature, discovered, [], [dossier], []),
                 pupils_of({dossier})),
        LeakCase("ib_er", "an IB'er's account (the branch)", LeakReport(nature, discovered, [], [], [ib_er.staff_id]),
                 pupils_of({d for d, b in year.dossier_branch.items() if b == ib_er.branch})),
        LeakCase("consultant", f"an SWV consultant's account ({len(wijks)} wijknetwerk{'en' * (len(wijks) > 1)})",
                 LeakReport(nature, discovered, [], [], [consultant.staff_id]),
                 pupils_of({d for d, b in year.dossier_branch.items() if year.branch_wijk[b] in wijks})),
    ]


def leak_event(case: LeakCase) -> DataLeaked:
    r = case.report
    return DataLeaked(leak_id=uuid.uuid4(), nature=r.nature, discovered_at=r.discovered_at, pupil_ids=r.pupil_ids,
                      dossier_ids=r.dossier_ids, staff_ids=r.staff_ids)


def expected_mails(year: LeakYear, pupils: set[UUID]) -> int:
    return len({a for p in pupils for a in year.pupil_emails[p]})


def measure_components(bootstrap: str, topics: TopicNames, codec: EventCodec, year: LeakYear,
                       cases: list[LeakCase], discovered: datetime
                       ) -> tuple[dict[str, Any], dict[str, LeakScope], dict[str, dict[str, Any]]]:
    """Steps 2 and 3: the baseline read and decode, build_index, state_at and leak_scope."""
    n = year.n
    names = [str(t) for t in HISTORY_TOPICS]
    deadline = Deadline(read_limit(n) * (2 * REPEATS + 1), f"N={n:,}: baseline reads")

    # 2. baseline
    progress(f"N={n:,}: baseline")
    raw = raw_consume_to_high_water(bootstrap, [topics(t) for t in HISTORY_TOPICS], deadline)
    if raw["messages"] != n:
        raise RuntimeError(f"raw consume got {raw['messages']} records, expected {n}")
    progress(f"  raw consume (counting only): {raw['seconds']:.3f} s")
    records_by_topic, read = median_of(
        "read_topics", lambda: read_topics(bootstrap, topics, names, timeout_s=read_limit(n)), deadline)
    records = [r for rs in records_by_topic.values() for r in rs]  # as log_reader flattens them
    del records_by_topic
    if len(records) != n:
        raise RuntimeError(f"read_topics returned {len(records)} records, expected {n}")
    deadline = Deadline(work_limit(n), f"N={n:,}: decode, index and scope")
    decoded, decode = median_of("decode_all (service codec, SqlKeyStore)",
                                lambda: decode_all(codec, records), deadline)
    entries, undecodable = decoded
    if undecodable or len(entries) != n:
        raise RuntimeError(f"{len(entries)} decoded, {len(undecodable)} undecodable, expected {n} events")
    empty = EventCodec(InMemoryKeyStore(), source="/bench")
    erased, decode_empty = median_of("decode_all (empty in-memory key store)", lambda: decode_all(empty, records),
                                     deadline)
    del erased
    # Context: the leak work never looks at a view (build_index skips them, evolve leaves the state
    # as it is), so decoding could skip them by their ce_type header, before any JSON parsing.
    views = DossierViewed.event_type.encode()
    (relevant, _bad), decode_no_views = median_of(
        "decode_all without DossierViewed (ce_type header; SqlKeyStore)",
        lambda: decode_all(codec, [r for r in records if ce_type(r) != views]), deadline)
    sealed_in_log = sum(1 for e in entries if e.event.key_id)

    # 3. index and scopes
    progress(f"N={n:,}: build_index and leak_scope")
    index, index_t = median_of("build_index", lambda: build_index(entries), deadline)
    if len(index.pupils) != len(year.pupil_emails):
        raise RuntimeError(f"build_index found {len(index.pupils)} pupils, expected {len(year.pupil_emails)}")
    scopes: dict[str, LeakScope] = {}
    scope_t: dict[str, dict[str, Any]] = {}
    checks: dict[str, dict[str, Any]] = {}
    _, state_t = median_of("state_at (inside leak_scope)",
                           lambda: state_at(entries, discovered, "valid"), deadline)
    for case in cases:
        event = leak_event(case)

        def scope_of(leak: DataLeaked = event) -> LeakScope:
            return leak_scope(entries, index, leak)

        scope, scope_t[case.name] = median_of(f"leak_scope, {case.label}", scope_of, deadline)
        scopes[case.name] = scope
        # One mail per parent address (siblings' parents get one).
        mails = len({a for p in scope.pupil_ids for a in parents_to_tell(index, p)})
        checks[case.name] = {
            "pupils": len(scope.pupil_ids), "dossiers": len(scope.dossier_ids),
            "exposures": len(scope.exposures), "unknown": len(scope.unknown), "mails": mails,
            "pupils_as_generated": set(scope.pupil_ids) == case.expected_pupils,
            "mails_as_generated": mails == expected_mails(year, case.expected_pupils),
        }
        checks[case.name]["same_scope_without_views"] = leak_scope(relevant, build_index(relevant), event) == scope
        if not checks[case.name]["pupils_as_generated"]:
            progress(f"  WARNING: leak_scope({case.label}) gave {len(scope.pupil_ids)} pupils, the generator "
                     f"expects {len(case.expected_pupils)}")
    components = {
        "raw_consume": {"seconds": raw["seconds"], "rate_per_s": raw["rate_per_s"]},
        "read_topics": read, "decode_all": decode, "decode_all_empty_keystore": decode_empty,
        "decode_all_without_views": {**decode_no_views, "decoded": len(relevant)},
        "sealed_in_log": sealed_in_log, "build_index": index_t, "state_at": state_t, "leak_scope": scope_t,
    }
    return components, scopes, checks


def measure_size(bootstrap: str, n: int) -> dict[str, Any]:
    prefix = f"bench{uuid.uuid4().hex[:8]}."
    topics = TopicNames(prefix)
    with tempfile.TemporaryDirectory(prefix="bench-leak-") as folder:
        master_key = new_master_key()
        keystore_url = f"sqlite:///{Path(folder) / 'keys.sqlite'}"
        keys = SqlKeyStore(make_engine(keystore_url), base64.b64decode(master_key))
        produced, year = generate_and_produce(bootstrap, topics, keys, n)
        discovered = (max(YEAR_END, max(p.recorded for p in year.planned)) + timedelta(hours=1)).replace(microsecond=0)
        clock = ManualClock(discovered + timedelta(minutes=10))
        settings = RetentionSettings(kafka_bootstrap_servers=bootstrap, topic_prefix=prefix, master_key=master_key,
                                     keystore_url=keystore_url,
                                     database_url=f"sqlite:///{Path(folder) / 'retention.sqlite'}",
                                     consumer_group=f"{prefix}ret")
        deps = build(settings, clock=clock)
        cases = leak_cases(year, discovered)
        components, scopes, checks = measure_components(bootstrap, topics, deps.codec, year, cases, discovered)
        # The relay process holds only what resolve_pending reads itself: this run's copies of the
        # log are gone (they lived in measure_components), and the plan goes too, so the garbage
        # collector does not walk them during the end-to-end calls.
        del year
        gc.collect()

        # 4. end to end
        progress(f"N={n:,}: end to end, LeakDesk.resolve_pending on the retention service from build()")
        e2e: dict[str, dict[str, Any]] = {}
        deadline = Deadline(work_limit(n) * len(cases), f"N={n:,}: end to end")
        for case in cases:
            deadline.check(case.label)
            leak_id = uuid.uuid4()
            with deps.engine.begin() as connection:
                deps.leaks.register(connection, leak_id, case.report)
            gc.collect()
            resolved, seconds, in_gc = timed(lambda: int(deps.leaks.resolve_pending(deps.engine)))
            with deps.engine.connect() as connection:
                row = connection.execute(select(retention_store.leaks).where(
                    retention_store.leaks.c.leak_id == str(leak_id))).one()
                mails, addresses = connection.execute(
                    select(func.count(), func.count(retention_store.mail_outbox.c.recipient.distinct()))
                    .where(retention_store.mail_outbox.c.message_id.like(f"<leak-{leak_id}.%"))).one()
            scope = scopes[case.name]
            ok = (resolved == 1 and row.resolved_at is not None
                  and row.affected_pupil_ids == [str(p) for p in scope.pupil_ids]
                  and row.parents_mailed == mails == checks[case.name]["mails"])
            if not ok:
                raise RuntimeError(f"resolve_pending({case.label}): resolved {resolved}, {row.parents_mailed} "
                                   f"mailed, {mails} mails queued; expected the scope measured above")
            e2e[case.name] = {"seconds": round(seconds, 4), "gc_seconds": round(in_gc, 4), "mails": mails,
                              "distinct_addresses": addresses,
                              "pupils": len(row.affected_pupil_ids), "unreachable": row.pupils_unreachable}
            progress(f"  resolve_pending, {case.label}: {seconds:.3f} s ({mails} mails to {addresses} addresses)")
        deps.engine.dispose()
    read, decode = components["read_topics"], components["decode_all"]
    scope_t = components.pop("leak_scope")
    return {
        "events": n, "topic_prefix": prefix, "discovered_at": discovered.isoformat(), "produce": produced,
        **components,
        "cases": [{"name": c.name, "label": c.label, "leak_scope": scope_t[c.name], "check": checks[c.name],
                   "resolve_pending": e2e[c.name]} for c in cases],
        "ratios": {
            "decode_to_read": ratio(decode["seconds"], read["seconds"]),
            "index_to_read": ratio(components["build_index"]["seconds"], read["seconds"]),
            **{f"scope_{c.name}_to_read": ratio(scope_t[c.name]["seconds"], read["seconds"]) for c in cases},
            **{f"e2e_{c.name}_to_read": ratio(e2e[c.name]["seconds"], read["seconds"]) for c in cases},
            **{f"e2e_{c.name}_to_read_decode": ratio(e2e[c.name]["seconds"], read["seconds"] + decode["seconds"])
               for c in cases},
        },
    }


# --- report ----------------------------------------------------------------------------------

def render(report: dict[str, Any]) -> str:
    ctx = report["machine"]
    width = 58

    def line(label: str, value: str, note: str = "") -> str:
        return f"  {label:<{width}}{value:>12}   {note}".rstrip()

    def secs(s: float) -> str:
        return f"{s:.3f} s"

    lines = [
        f"samenveilig retention leak handling, {ctx['date']}",
        f"machine   {ctx['cpu_count']} CPUs, Python {ctx['python']}, kafka-python {ctx['kafka_python']}, "
        f"CRC-32C in {report['crc32c']}, {ctx['platform']}",
        f"broker    {ctx['broker']} at {ctx['bootstrap']}",
    ]
    for size in report["sizes"]:
        n, p = size["events"], size["produce"]
        read = size["read_topics"]["seconds"]
        decode = size["decode_all"]["seconds"]
        empty = size["decode_all_empty_keystore"]["seconds"]
        state = size["state_at"]["seconds"]
        by_type = p["by_type"]

        def x(seconds: float, base: float = read) -> str:
            return f"{seconds / base:6.2f} x read"

        lines += [
            "",
            f"=== N={n:,} events: {p['per_topic'].get(str(Topic.REGISTRY_EVENTS), 0):,} registry + "
            f"{p['per_topic'].get(str(Topic.ACCESS_EVENTS), 0):,} access, avg value {p['avg_value_bytes']:.0f} bytes, "
            f"{PARTITIONS} partitions",
            f"    {p['branches']} branches, {p['staff']:,} staff + {p['consultants']} consultants, "
            f"{p['pupils']:,} pupils ({p['pupils_with_dossier']:,} with a dossier, "
            f"{p['pupils_two_parents']:,} with two parents, "
            f"{p['parent_addresses']:,} addresses, {p['pupils_left']} left), {p['dossiers']:,} dossiers, "
            f"{by_type.get('DossierViewed', 0):,} views; {size['sealed_in_log']:,} events sealed",
            f"    leaks discovered at {size['discovered_at'][:16]} UTC (just after the log's last event)",
            "  SETUP (not part of any number below)",
            line("generate + encode (EventCodec, SqlKeyStore)", f"{p['encode_rate_per_s']:,.0f}/s",
                 f"({p['encode_seconds']:.1f} s)"),
            line("produce (acks=all, linger 20 ms, 512 KiB batches)", f"{p['produce_rate_per_s']:,.0f}/s",
                 f"({p['produce_seconds']:.1f} s)"),
            "  BASELINE (median of 3)",
            line("read_topics (registry, access, retention) to high water", secs(read),
                 f"{n / read:,.0f} records/s  (= 1.00; raw consumer counting only: "
                 f"{size['raw_consume']['seconds']:.3f} s)"),
            line("decode_all, the service's codec (SqlKeyStore)", secs(decode),
                 f"{x(decode)}  ({n / decode:,.0f} events/s; in gc {size['decode_all']['gc_seconds']:.2f} s)"),
            line("  decode_all with an empty in-memory key store (context)",
                 secs(size["decode_all_empty_keystore"]["seconds"]),
                 f"{x(size['decode_all_empty_keystore']['seconds'])}  (sealed fields read as 'verwijderd')"),
            line("  of which the key store (difference of the two)", secs(decode - empty),
                 f"{x(decode - empty)}  ({size['sealed_in_log']:,} sealed events: "
                 f"{(decode - empty) / max(1, size['sealed_in_log']) * 1000:.2f} ms each)"),
            line("  decode_all skipping views by ce_type header (context)",
                 secs(size["decode_all_without_views"]["seconds"]),
                 f"{x(size['decode_all_without_views']['seconds'])}  "
                 f"({size['decode_all_without_views']['decoded']:,} decoded; every scope the same: "
                 f"{'yes' if all(c['check']['same_scope_without_views'] for c in size['cases']) else 'NO'})"),
            line("read + decode (what log_reader does)", secs(read + decode), x(read + decode)),
            "  LEAK SCOPE (median of 3, on the decoded entries)",
            line("build_index", secs(size["build_index"]["seconds"]), x(size["build_index"]["seconds"])),
            line("state_at(entries, discovery) alone (inside leak_scope)", secs(size["state_at"]["seconds"]),
                 x(size["state_at"]["seconds"])),
        ]
        for case in size["cases"]:
            c, s = case["check"], case["leak_scope"]["seconds"]
            ok = "checked" if c["pupils_as_generated"] and c["mails_as_generated"] else "DIFFERS FROM THE GENERATOR"
            lines.append(line(f"leak_scope, {case['label']}", secs(s),
                              f"{x(s)}  ({c['dossiers']} dossiers, {c['pupils']} pupils, {c['exposures']} "
                              f"exposures, {c['mails']} mails: {ok}; beyond state_at {max(0.0, s - state):.3f} s)"))
        lines.append("  END TO END: LeakDesk.resolve_pending (one call, one leak pending)")
        for case in size["cases"]:
            e = case["resolve_pending"]
            s = e["seconds"]
            parts = read + decode + size["build_index"]["seconds"] + case["leak_scope"]["seconds"]
            lines.append(line(f"{case['label']}", secs(s),
                              f"{x(s)}, {s / (read + decode):.2f} x read+decode  ({e['mails']} mails to "
                              f"{e['distinct_addresses']} addresses; in gc "
                              f"{e['gc_seconds']:.2f} s; {s / WINDOW_S:.1e} of 72 h; after read, decode, index "
                              f"and scope {max(0.0, s - parts):.3f} s)"))
    lines += ["", f"memory    peak RSS {report['peak_rss_mb']:,.0f} MB (ru_maxrss, whole run)",
              f"run took {report['duration_s']:.1f} s"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.retention_leak", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, nargs="+", default=list(DEFAULT_SIZES),
                        help="log sizes N (default: 10000 100000)")
    parser.add_argument("--bootstrap", help="HOST:PORT of a running broker (default: "
                        "KAFKA_BOOTSTRAP_SERVERS, else a local in-memory Tansu)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = parser.parse_args(argv)
    if min(args.events) < MIN_EVENTS:
        parser.error(f"every size must be at least {MIN_EVENTS}")
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    logging.getLogger("services.retention.leaks").setLevel(logging.ERROR)  # "data leak registered/resolved"

    started = time.perf_counter()
    progress("starting the broker" if not (args.bootstrap or os.environ.get("KAFKA_BOOTSTRAP_SERVERS"))
             else "connecting to the broker")
    broker = open_broker(args.bootstrap)
    sizes = []
    try:
        with GC:
            for n in args.events:
                sizes.append(measure_size(broker.bootstrap, n))
                gc.collect()
    except (BenchTimeout, RuntimeError, TimeoutError) as error:
        progress(f"benchmark failed: {type(error).__name__}: {error}")
        return 1
    finally:
        if broker.local is not None:
            broker.local.stop()
    report = {"machine": machine_context(broker), "crc32c": crc32c_implementation(), "seed": SEED,
              "repeats": REPEATS, "sizes": sizes, "peak_rss_mb": round(peak_rss_mb()),
              "duration_s": round(time.perf_counter() - started, 1)}
    print(json.dumps(report, indent=2, default=str) if args.json else render(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
