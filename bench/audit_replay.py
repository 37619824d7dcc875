"""Audit replay: how fast the audit reads and folds a year of events, and how fast it answers
"who could see this dossier at T" - against the broker's raw consume rate, in one run.

    .venv/bin/python -m bench.audit_replay [--events N] [--bootstrap HOST:PORT] [--json] [--profile]

1. A realistic school year of N events (default 1,000,000; bench.events.SchoolYear) is generated,
   encoded with the EventCodec (an InMemoryKeyStore seals the personal fields) and produced to a
   new prefix's registry.events.v1 and access.events.v1 (3 partitions; acks=all, linger 20 ms,
   large batches). Generating and producing are timed apart and are not part of the replay.
2. Raw consume: the same topics read to the end with manual assignment, only counting records,
   with the consumer settings read_topics uses; and, for context, with kafka-python's default
   fetch sizes, per topic.
3. Replay as the audit CLI does it: read_topics + decode_all (an empty InMemoryKeyStore, so
   personal fields read as "verwijderd") + reduce(evolve) into an AccessState. Split into read,
   decode and fold, each with its time in the garbage collector; target 1M events < 30 s. Then,
   on the same records, alternatives not adopted: a fold into mutable dicts, and decoding only the
   events that can change the state (skipping views by their ce_type header).
4. Point in time, after gc.freeze() as the CLI's load_log does: state_at(entries, T, "valid") +
   who_could_see(state, dossier, T) for 20 random dossiers at a mid-year T; target < 100 ms.
   Also who_could_see alone on a folded state, and alternatives the CLI could adopt (implemented
   here only): a sorted index of the events that change the access state, folded up to T
   (bisect) with evolve or with mutable dicts, and checkpoints of the folded state. Every
   alternative's answers are checked against state_at's.

The targets print PASS or MISS for information; a MISS does not fail the run. --profile runs
decode and fold of 50,000 of the records under cProfile afterwards and prints the top costs to
stderr. The broker, progress, time limits and the report: bench.harness.
"""

from __future__ import annotations

import bisect
import gc
import os
import random
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import reduce
from types import MappingProxyType
from typing import Any
from uuid import UUID

from bench.events import MID_YEAR, YEAR_END, YEAR_START, SchoolYear
from bench.harness import (
    GC,
    PARTITIONS,
    READ_TOPICS_CONSUMER,
    Deadline,
    Run,
    Table,
    cli,
    crc32c_implementation,
    fmt_rate,
    latency_summary_ms,
    peak_rss_mb,
    produce_stream,
    profile_top,
    progress,
    ratio,
    read_all,
    rss_mb,
    run_benchmark,
    verdict,
)
from services.access.domain import (
    INITIAL_STATE,
    AccessState,
    branch_wijknetwerk,
    evolve,
    evolve_dossier,
    evolve_grant,
    evolve_member,
)
from services.access.history import state_at, who_could_see
from shared.contracts.envelope import EventCodec, RecordedEvent
from shared.contracts.events import (
    AccessGranted,
    AccessRevoked,
    BranchBrinChanged,
    BranchFounded,
    BranchWijknetwerkChanged,
    ConsultantDeparted,
    ConsultantJoined,
    DossierClosed,
    DossierContactAssigned,
    DossierOpened,
    DossierViewed,
    NotificationsStopped,
    PupilDataPurged,
    StaffDeparted,
    StaffJoined,
    StaffRoleChanged,
)
from shared.contracts.topics import EVENT_TOPICS, Topic, TopicNames
from shared.crypto import InMemoryKeyStore
from shared.kafka.log import Entry, LogRecord, decode_all, read_topics

# Targets from the issue (informational: PASS or MISS, never a failed run).
REPLAY_TARGET_S = 30.0  # for 1,000,000 events
REPLAY_TARGET_EVENTS = 1_000_000
QUERY_TARGET_MS = 100.0
QUERIES = 20
SLOW_QUERIES = 5  # the sorted index folded with evolve: a few suffice to show its cost
SEED = 20261125
ENCODE_CHUNK = 50_000  # events generated and encoded, then sent and flushed (timed), at a time
CHECKPOINT_EVERY = 500  # checkpoint every so many state-changing events (the checkpoint alternative)
PROFILE_SAMPLE = 50_000
MIN_EVENTS = 2_000
# Events the access fold never changes the state for: what the sorted index leaves out.
FOLD_NO_OPS = (DossierViewed, NotificationsStopped)


def setup_limit(n: int) -> float:
    return 180.0 + n * 0.0025


def consume_limit(n: int) -> float:
    return 60.0 + n * 0.002


def replay_limit(n: int) -> float:
    return 120.0 + n * 0.002


def query_limit(n: int) -> float:
    return 300.0 + n * 0.001


# --- 1. the school year, 2. raw consume ----------------------------------------------------

def generate_and_produce(run: Run, n: int) -> tuple[dict[str, Any], SchoolYear]:
    topics = run.topics
    started = time.perf_counter()
    year = SchoolYear(n, SEED)
    plan_s = time.perf_counter() - started
    keys = InMemoryKeyStore()
    codecs = {Topic.REGISTRY_EVENTS: EventCodec(keys, source="/samenveilig/registry", topics=topics),
              Topic.ACCESS_EVENTS: EventCodec(keys, source="/samenveilig/access", topics=topics)}
    # The audit reads the auth and retention topics too: they exist, empty.
    codecs.update({t: codecs[Topic.REGISTRY_EVENTS] for t in EVENT_TOPICS if t not in codecs})
    progress(f"generating and producing {n:,} events ({year.branch_count} branches, {len(year.people):,} staff, "
             f"{len(year.dossiers):,} dossiers, {year.views:,} views)")
    produced = produce_stream(run.bootstrap, topics, codecs, year.stream(), n, chunk=ENCODE_CHUNK,
                              limit_s=setup_limit(n), client_id="bench-audit-producer")
    return {**produced.summary(), **year.summary(), "plan_seconds": round(plan_s, 2)}, year


def run_raw_consume(run: Run, produced: dict[str, Any]) -> dict[str, Any]:
    physical = [run.topics(t) for t in EVENT_TOPICS]
    n = produced["events"]
    progress("raw consume: all audited topics to the end (read_topics' fetch settings)")
    result = {"read_topics_settings": read_all(run.bootstrap, physical, expected=n, what="raw consume",
                                               limit_s=consume_limit(n), **READ_TOPICS_CONSUMER)}
    progress(f"  {result['read_topics_settings']['rate_per_s']:,.0f} msg/s")
    progress("raw consume: per topic with kafka-python's default fetch sizes")
    seconds = sum(read_all(run.bootstrap, [run.topics(logical)], expected=count,
                           limit_s=consume_limit(count))["seconds"] for logical, count in produced["per_topic"].items())
    result["default_fetch_sizes"] = {"messages": n, "seconds": round(seconds, 3), "rate_per_s": round(n / seconds, 1)}
    progress(f"  {result['default_fetch_sizes']['rate_per_s']:,.0f} msg/s")
    return result


# --- 3. the replay -------------------------------------------------------------------------

MEMBER_EVENTS = (StaffJoined, StaffRoleChanged, StaffDeparted, ConsultantJoined, ConsultantDeparted)
DOSSIER_EVENTS = (DossierOpened, DossierContactAssigned, DossierClosed)
BRANCH_EVENTS = (BranchFounded, BranchWijknetwerkChanged, BranchBrinChanged)


def _copied(mapping: Mapping[Any, Any]) -> dict[Any, Any]:
    return mapping.copy() if isinstance(mapping, MappingProxyType) else dict(mapping)


def fold_mutable(events: Iterable[RecordedEvent], base: AccessState = INITIAL_STATE) -> AccessState:
    """The same fold as reduce(evolve, events, base), through the same per-entity evolve
    functions, but into mutable dicts that are wrapped once at the end: evolve copies a whole
    mapping for every change (quadratic in the number of staff, dossiers and grants)."""
    staff, dossiers = _copied(base.staff), _copied(base.dossiers)
    wijknetwerken, grants = _copied(base.wijknetwerken), _copied(base.grants)
    for recorded in events:
        event = recorded.event
        if isinstance(event, MEMBER_EVENTS):
            member = evolve_member(staff.get(event.staff_id), recorded)
            if member is not None:
                staff[member.staff_id] = member
        elif isinstance(event, DOSSIER_EVENTS):
            dossier = evolve_dossier(dossiers.get(event.dossier_id), recorded)
            if dossier is not None:
                dossiers[dossier.dossier_id] = dossier
        elif isinstance(event, BRANCH_EVENTS):
            wijknetwerk = branch_wijknetwerk(wijknetwerken.get(event.branch_id), event)
            if wijknetwerk is not None:
                wijknetwerken[event.branch_id] = wijknetwerk
        elif isinstance(event, PupilDataPurged):
            gone = {d.dossier_id for d in dossiers.values() if d.pupil_id == event.pupil_id}
            for dossier_id in gone:
                del dossiers[dossier_id]
            for key in [k for k in grants if k[1] in gone]:
                del grants[key]
        elif (isinstance(event, AccessGranted | AccessRevoked) and getattr(event, "staff_id", None) is not None
              and event.dossier_id is not None):
            key = (event.staff_id, event.dossier_id)
            grant = evolve_grant(grants.get(key), recorded)
            if grant is not None:
                grants[key] = grant
    return AccessState(staff=MappingProxyType(staff), dossiers=MappingProxyType(dossiers),
                       wijknetwerken=MappingProxyType(wijknetwerken), grants=MappingProxyType(grants))


def _header(record: LogRecord, name: str) -> bytes | None:
    for key, value in record.headers:
        if key == name:
            return value
    return None


def run_replay(run: Run, year: SchoolYear, n: int) -> tuple[dict[str, Any], list[Entry], AccessState, dict[str, Any]]:
    deadline = Deadline(replay_limit(n), "replay")
    names = [str(t) for t in EVENT_TOPICS]
    rss_before = rss_mb()
    progress("replay: read_topics (as the audit CLI)")
    gc_at = GC.seconds
    started = time.perf_counter()
    records = read_topics(run.bootstrap, run.topics, names, timeout_s=deadline.remaining())
    read_s = time.perf_counter() - started
    read_gc, gc_at = GC.seconds - gc_at, GC.seconds
    read_count = sum(len(r) for r in records.values())
    rss_read = rss_mb()
    progress(f"  {read_count:,} records in {read_s:.1f} s ({read_count / read_s:,.0f}/s), RSS {rss_read:,.0f} MB")
    deadline.check("after reading")

    progress("replay: decode_all with an empty InMemoryKeyStore")
    codec = EventCodec(InMemoryKeyStore(), source="/samenveilig/audit")
    started = time.perf_counter()
    entries: list[Entry] = []
    undecodable = []
    for name in names:
        decoded, bad = decode_all(codec, records.get(name, []))
        entries += decoded
        undecodable += bad
    decode_s = time.perf_counter() - started
    decode_gc, gc_at = GC.seconds - gc_at, GC.seconds
    rss_decoded = rss_mb()
    progress(f"  {len(entries):,} events in {decode_s:.1f} s ({len(entries) / decode_s:,.0f}/s), "
             f"RSS {rss_decoded:,.0f} MB")
    if undecodable:
        raise RuntimeError(f"{len(undecodable)} records did not decode: {undecodable[0][1]}")
    if len(entries) != n:
        raise RuntimeError(f"{len(entries)} events decoded, expected {n}")
    deadline.check("after decoding")

    progress("replay: fold with the access evolve (reduce, as the audit CLI)")
    started = time.perf_counter()
    state = reduce(evolve, (e.event for e in entries), INITIAL_STATE)
    fold_s = time.perf_counter() - started
    fold_gc = GC.seconds - gc_at
    progress(f"  folded in {fold_s:.2f} s")
    expected = (len(year.people) + len(year.consultants), len(year.dossiers), len(year.grants))
    if (len(state.staff), len(state.dossiers), len(state.grants)) != expected:
        raise RuntimeError(f"folded {len(state.staff)} staff, {len(state.dossiers)} dossiers, {len(state.grants)} "
                           f"grants; expected {expected}")
    total_s = read_s + decode_s + fold_s
    replay = {
        "events": len(entries), "read_seconds": round(read_s, 3), "decode_seconds": round(decode_s, 3),
        "fold_seconds": round(fold_s, 3), "total_seconds": round(total_s, 3),
        "rate_per_s": round(len(entries) / total_s, 1), "read_rate_per_s": round(read_count / read_s, 1),
        "decode_rate_per_s": round(len(entries) / decode_s, 1), "fold_rate_per_s": round(len(entries) / fold_s, 1),
        "gc_seconds": {"read": round(read_gc, 3), "decode": round(decode_gc, 3), "fold": round(fold_gc, 3)},
        "rss_mb": {"before": round(rss_before), "after_read": round(rss_read), "after_decode": round(rss_decoded),
                   "after_fold": round(rss_mb())},
        "state": {"staff": len(state.staff), "dossiers": len(state.dossiers), "grants": len(state.grants),
                  "wijknetwerken": len(state.wijknetwerken)},
    }

    # Alternatives for the fold and for the decode, on the same records.
    progress("replay alternatives: fold with mutable dicts; decode only what changes the state")
    started = time.perf_counter()
    state_mutable = fold_mutable(e.event for e in entries)
    fold_mutable_s = time.perf_counter() - started
    if state_mutable != state:
        raise RuntimeError("fold_mutable gave another state than reduce(evolve)")
    skip_types = {cls.event_type.encode() for cls in FOLD_NO_OPS}
    started = time.perf_counter()
    relevant: list[Entry] = []
    for name in names:
        relevant += decode_all(codec, [r for r in records.get(name, []) if _header(r, "ce_type") not in skip_types])[0]
    decode_relevant_s = time.perf_counter() - started
    started = time.perf_counter()
    state_relevant = fold_mutable(e.event for e in relevant)
    fold_relevant_s = time.perf_counter() - started
    if state_relevant != state:
        raise RuntimeError("folding only the state-changing events gave another state")
    skip_total = read_s + decode_relevant_s + fold_relevant_s
    alternatives = {
        "fold_mutable_seconds": round(fold_mutable_s, 3),
        "skip_views": {"decoded": len(relevant), "decode_seconds": round(decode_relevant_s, 3),
                       "fold_seconds": round(fold_relevant_s, 3), "total_seconds": round(skip_total, 3),
                       "rate_per_s": round(len(entries) / skip_total, 1)},
    }
    progress(f"  mutable fold {fold_mutable_s:.2f} s; skipping views by header: decode {decode_relevant_s:.2f} s "
             f"+ fold {fold_relevant_s:.2f} s for {len(relevant):,} events")
    return replay, entries, state, alternatives


# --- 4. point in time ----------------------------------------------------------------------

def _sort_key(entry: Entry) -> tuple[Any, ...]:
    # The order events_known folds in (services.access.history).
    return (entry.event.effective_at, entry.event.recorded_at, entry.record.topic, entry.record.partition,
            entry.record.offset)


@dataclass
class SortedIndex:
    """The events that can change the access state, sorted once as events_known sorts them, with
    their effective times for bisect. Valid time: the prefix up to T is what state_at folds, less
    the no-ops; record time: that prefix, less the events recorded after T."""

    events: list[RecordedEvent]
    effective: list[datetime]

    @classmethod
    def build(cls, entries: list[Entry]) -> SortedIndex:
        chosen = sorted((e for e in entries if not isinstance(e.event.event, FOLD_NO_OPS)), key=_sort_key)
        return cls([e.event for e in chosen], [e.event.effective_at for e in chosen])

    def upto(self, at: datetime) -> int:
        return bisect.bisect_right(self.effective, at)

    def state_evolve(self, at: datetime) -> AccessState:
        return reduce(evolve, self.events[:self.upto(at)], INITIAL_STATE)

    def state_mutable(self, at: datetime, axis: str = "valid") -> AccessState:
        prefix = self.events[:self.upto(at)]
        if axis == "record":
            prefix = [e for e in prefix if e.recorded_at <= at]
        return fold_mutable(prefix)


@dataclass
class Checkpoints:
    """The folded state after every `every` events of a SortedIndex. Valid time only: on record
    time a late-reported event in the prefix may not count yet at T."""

    index: SortedIndex
    every: int
    states: list[AccessState]

    @classmethod
    def build(cls, index: SortedIndex, every: int) -> Checkpoints:
        states = [INITIAL_STATE]
        state = INITIAL_STATE
        for start in range(0, len(index.events), every):
            state = fold_mutable(index.events[start:start + every], state)
            states.append(state)
        return cls(index, every, states)

    def state_evolve(self, at: datetime) -> AccessState:
        upto = self.index.upto(at)
        base = upto // self.every
        return reduce(evolve, self.index.events[base * self.every:upto], self.states[base])

    def state_mutable(self, at: datetime) -> AccessState:
        upto = self.index.upto(at)
        base = upto // self.every
        return fold_mutable(self.index.events[base * self.every:upto], self.states[base])


def timed_queries(name: str, queries: list[tuple[UUID, datetime]], answer: Callable[[UUID, datetime], list[Any]],
                  expected: Callable[[UUID, datetime], list[Any]] | None,
                  deadline: Deadline) -> tuple[dict[str, Any], dict[UUID, list[Any]]]:
    """Each (dossier, moment) answered and timed; each answer checked against `expected`'s."""
    seconds: list[float] = []
    answers: dict[UUID, list[Any]] = {}
    gc_at = GC.seconds
    for dossier_id, moment in queries:
        deadline.check(f"{name}: {len(seconds)} of {len(queries)} queries")
        started = time.perf_counter()
        answers[dossier_id] = answer(dossier_id, moment)
        seconds.append(time.perf_counter() - started)
        if expected is not None and answers[dossier_id] != expected(dossier_id, moment):
            raise RuntimeError(f"{name} answered differently from the reference for dossier {dossier_id}")
    summary: dict[str, Any] = latency_summary_ms(seconds)
    summary["gc_ms"] = round((GC.seconds - gc_at) * 1000, 1)
    progress(f"  {name}: p50 {summary['p50_ms']:.1f} ms, p99 {summary['p99_ms']:.1f} ms "
             f"(garbage collector {summary['gc_ms']:.0f} ms in all)")
    return summary, answers


def run_point_in_time(entries: list[Entry], state: AccessState, n: int) -> dict[str, Any]:
    deadline = Deadline(query_limit(n), "point-in-time queries")
    rng = random.Random(SEED + 1)
    at = MID_YEAR
    candidates = sorted(d.dossier_id for d in state.dossiers.values() if d.opened_at <= at)
    dossiers = rng.sample(candidates, min(QUERIES, len(candidates)))
    if not dossiers:
        raise RuntimeError("no dossier was open at the mid-year moment")
    moments = [YEAR_START + timedelta(seconds=rng.random() * (YEAR_END - YEAR_START).total_seconds())
               for _ in dossiers]
    queries = [(d, at) for d in dossiers]
    result: dict[str, Any] = {"at": at.isoformat(), "dossiers": len(dossiers)}

    def query(key: str, name: str, answer: Callable[[UUID, datetime], list[Any]], chosen: list[tuple[UUID, datetime]]
              = queries, check: Callable[[UUID, datetime], list[Any]] | None = None) -> None:
        result[key], _ = timed_queries(name, chosen, answer, check or (lambda d, _t: expected[d]), deadline)

    progress(f"point in time: state_at(entries, T, 'valid') + who_could_see for {len(dossiers)} dossiers at "
             f"{at:%Y-%m-%d %H:%M}")
    result["state_at"], expected = timed_queries(
        "state_at + who_could_see", queries, lambda d, t: who_could_see(state_at(entries, t, "valid"), d, t),
        None, deadline)
    result["allowed_per_dossier"] = round(sum(len(v) for v in expected.values()) / len(expected), 1)
    at_state = state_at(entries, at, "valid")
    query("who_could_see_at_state", "who_could_see alone (state at T)", lambda d, t: who_could_see(at_state, d, t))
    result["who_could_see_full_state"], _ = timed_queries(
        "who_could_see alone (state after the whole log)", queries, lambda d, t: who_could_see(state, d, t), None,
        deadline)

    progress("point in time: alternatives (answers checked against state_at's)")
    started = time.perf_counter()
    index = SortedIndex.build(entries)
    result["index"] = {"build_seconds": round(time.perf_counter() - started, 3), "events": len(index.events),
                       "events_up_to_t": index.upto(at)}
    query("index_evolve", "sorted index + bisect, reduce(evolve)",
          lambda d, t: who_could_see(index.state_evolve(t), d, t), queries[:SLOW_QUERIES])
    query("index_mutable", "sorted index + bisect, mutable fold",
          lambda d, t: who_could_see(index.state_mutable(t), d, t))
    # Record time through the index, checked once against state_at's record axis.
    started = time.perf_counter()
    record_state = index.state_mutable(at, "record")
    result["index_record_axis_ms"] = round((time.perf_counter() - started) * 1000, 1)
    if record_state != state_at(entries, at, "record"):
        raise RuntimeError("the sorted index gave another record-time state than state_at")
    del record_state
    started = time.perf_counter()
    checkpoints = Checkpoints.build(index, CHECKPOINT_EVERY)
    result["checkpoints"] = {"build_seconds": round(time.perf_counter() - started, 3), "every": CHECKPOINT_EVERY,
                             "count": len(checkpoints.states)}
    query("checkpoint_evolve", f"checkpoint every {CHECKPOINT_EVERY} + reduce(evolve) to T",
          lambda d, t: who_could_see(checkpoints.state_evolve(t), d, t))
    query("checkpoint_mutable", f"checkpoint every {CHECKPOINT_EVERY} + mutable fold to T",
          lambda d, t: who_could_see(checkpoints.state_mutable(t), d, t))
    query("checkpoint_random_moments", "same, each at its own random moment (checked vs the index)",
          lambda d, t: who_could_see(checkpoints.state_mutable(t), d, t), list(zip(dossiers, moments, strict=True)),
          lambda d, t: who_could_see(index.state_mutable(t), d, t))
    return result


def profile_decode_and_fold(run: Run, n: int) -> str:
    """cProfile of decode_all and the reduce(evolve) fold on PROFILE_SAMPLE records of the log
    (a seeded sample in log order, so the mix of event types is the log's)."""
    names = [str(t) for t in EVENT_TOPICS]
    records = read_topics(run.bootstrap, TopicNames(run.prefix), names, timeout_s=replay_limit(n))
    every = [r for name in names for r in records.get(name, [])]
    sample = sorted(random.Random(SEED + 2).sample(range(len(every)), min(PROFILE_SAMPLE, len(every))))
    chosen = [every[i] for i in sample]
    del records, every
    codec = EventCodec(InMemoryKeyStore(), source="/samenveilig/audit")
    decoded: list[list[Entry]] = []
    out = profile_top(lambda: decoded.append(decode_all(codec, chosen)[0]), 18, ("tottime",),
                      f"decode_all of {len(chosen):,} records")
    events = [e.event for e in decoded[0]]
    return out + profile_top(lambda: reduce(evolve, events, INITIAL_STATE), 12, ("tottime",),
                             f"reduce(evolve) over {len(events):,} events")


def measure(run: Run) -> dict[str, Any]:
    n = run.args.events
    profile = ""
    with GC:
        produced, year = generate_and_produce(run, n)
        del year.planned
        gc.collect()
        raw = run_raw_consume(run, produced)
        replay, entries, state, alternatives = run_replay(run, year, n)
        # As the CLI's load_log: the loaded log out of the generations the collector walks.
        progress("point in time: gc.collect() + gc.freeze(), as the audit CLI after loading the log")
        gc.collect()
        gc.freeze()
        try:
            point_in_time = run_point_in_time(entries, state, n)
        finally:
            gc.unfreeze()
        del entries, state
        gc.collect()
        if run.args.profile:
            progress(f"profile: decode_all and reduce(evolve) on {PROFILE_SAMPLE:,} records under cProfile")
            profile = profile_decode_and_fold(run, n)
    raw_rate = raw["read_topics_settings"]["rate_per_s"]
    target_s = REPLAY_TARGET_S * n / REPLAY_TARGET_EVENTS
    if profile:
        sys.stderr.write(profile)
    return {
        "crc32c": crc32c_implementation(),
        "params": {"events": n, "partitions": PARTITIONS, "seed": SEED, "topic_prefix": run.prefix,
                   "queries": QUERIES, "checkpoint_every": CHECKPOINT_EVERY},
        "produce": produced,
        "raw_consume": raw,
        "replay": replay,
        "replay_alternatives": alternatives,
        "point_in_time": point_in_time,
        "ratios": {"replay_to_raw": ratio(replay["rate_per_s"], raw_rate),
                   "read_to_raw": ratio(replay["read_rate_per_s"], raw_rate),
                   "skip_views_replay_to_raw": ratio(alternatives["skip_views"]["rate_per_s"], raw_rate)},
        "targets": {
            "replay_seconds": {"target": target_s, "measured": replay["total_seconds"],
                               "verdict": verdict(replay["total_seconds"], target_s)},
            "state_at_p99_ms": {"target": QUERY_TARGET_MS, "measured": point_in_time["state_at"]["p99_ms"],
                                "verdict": verdict(point_in_time["state_at"]["p99_ms"], QUERY_TARGET_MS)},
        },
        "peak_rss_mb": round(peak_rss_mb()),
        "machine_memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
    }


def render(report: dict[str, Any]) -> str:
    p, gen, raw = report["params"], report["produce"], report["raw_consume"]
    rep, alt, pit, ratios = report["replay"], report["replay_alternatives"], report["point_in_time"], report["ratios"]
    n = p["events"]
    sk, rss, gcs = alt["skip_views"], rep["rss_mb"], rep["gc_seconds"]
    total = rep["total_seconds"]
    target_s = REPLAY_TARGET_S * n / REPLAY_TARGET_EVENTS
    gc_total = gcs["read"] + gcs["decode"] + gcs["fold"]
    rt, df = raw["read_topics_settings"], raw["default_fetch_sizes"]
    table = Table("audit replay", report["machine"], machine_extra=f"CRC-32C in {report['crc32c']}")
    table.header("history", f"N={n:,} events: {gen['per_topic'].get(str(Topic.REGISTRY_EVENTS), 0):,} registry + "
                            f"{gen['per_topic'].get(str(Topic.ACCESS_EVENTS), 0):,} access "
                            f"({gen['by_type'].get('DossierViewed', 0):,} DossierViewed), {PARTITIONS} partitions, "
                            f"avg value {gen['avg_value_bytes']:.0f} bytes")
    table.header("", f"{gen['branches']} branches in {gen['wijknetwerken']} wijknetwerken, {gen['staff']:,} staff + "
                     f"{gen['consultants']} consultants, {gen['dossiers']:,} dossiers, {gen['explicit_grants']:,} "
                     f"explicit grants, {gen['departures']} departures ({gen['late_reports']} reported late)")

    def query(label: str, s: dict[str, Any], target: bool = True) -> None:
        table.latency(label, s, 1, verdict(s["p99_ms"], QUERY_TARGET_MS) if target else "", gc_ms=True)

    table.section("SETUP (not part of the replay)")
    table.figure("generate + encode (EventCodec, InMemoryKeyStore)", fmt_rate(gen["encode_rate_per_s"], "events/s"),
                 f"({gen['encode_seconds']:.1f} s)")
    table.figure("produce (acks=all, linger 20 ms, 512 KiB batches)", fmt_rate(gen["produce_rate_per_s"]),
                 f"({gen['produce_seconds']:.1f} s)")
    table.section("RAW BASELINE (manual assignment, to the fetch high-water mark, only counting records)")
    table.figure("consume, read_topics' fetch settings", fmt_rate(rt["rate_per_s"]),
                 f"({rt['messages']:,} in {rt['seconds']:.1f} s)")
    table.figure("kafka-python's default fetch sizes, per topic", fmt_rate(df["rate_per_s"]),
                 f"({df['seconds']:.1f} s)", indent=2)
    table.section("REPLAY (read_topics + decode_all with an empty key store + reduce(evolve), as samenveilig-audit "
                  "replay)")
    table.figure("replay", fmt_rate(rep["rate_per_s"], "events/s"), f"({rep['events']:,} in {total:.1f} s)")
    for part, label in (("read", "read_topics"), ("decode", "decode_all"), ("fold", "fold reduce(evolve)")):
        table.figure(label, fmt_rate(rep[f"{part}_rate_per_s"], "events/s"),
                     f"({rep[f'{part}_seconds']:.1f} s, {rep[f'{part}_seconds'] / total:.0%}; in gc {gcs[part]:.1f} s)",
                     indent=2)
    table.figure(f"target 1M events < {REPLAY_TARGET_S:.0f} s (scaled to N: < {target_s:.1f} s)",
                 verdict(total, target_s), f"(at this rate 1M takes {REPLAY_TARGET_EVENTS / rep['rate_per_s']:.1f} s)",
                 indent=2)
    table.ratio("replay rate / raw consume rate", ratios["replay_to_raw"], indent=2)
    table.ratio("read_topics rate / raw consume rate", ratios["read_to_raw"], indent=2)
    table.figure("garbage collector, all three phases", f"{gc_total:.1f} s", f"({gc_total / total:.0%} of the replay)",
                 indent=2)
    table.figure("RSS after read / decode / fold", f"{rss['after_read']:,} / {rss['after_decode']:,} / "
                 f"{rss['after_fold']:,} MB", f"(before: {rss['before']:,} MB)", indent=2)
    table.text("  alternatives on the same records (each gives the same AccessState, checked):")
    table.figure("fold with mutable dicts, same evolve_* functions", f"{alt['fold_mutable_seconds']:.2f} s",
                 f"(reduce(evolve): {rep['fold_seconds']:.2f} s)", indent=4)
    table.figure("decode only what can change the state (ce_type)", f"{sk['decode_seconds']:.2f} s",
                 f"({sk['decoded']:,} decoded, then mutable fold {sk['fold_seconds']:.2f} s)", indent=4)
    table.figure("replay = read_topics + those two", fmt_rate(sk["rate_per_s"], "events/s"),
                 f"({sk['total_seconds']:.1f} s: {verdict(sk['total_seconds'], target_s)}, "
                 f"{ratios['skip_views_replay_to_raw']:.3f} of raw)", indent=4)
    table.section(f"POINT IN TIME (after gc.freeze(), as the CLI; T = {pit['at'][:16]} UTC, valid time; "
                  f"{pit['dossiers']} random dossiers opened by T, {pit['allowed_per_dossier']} staff allowed each "
                  "on average)")
    query(f"state_at(entries, T) + who_could_see, target {QUERY_TARGET_MS:.0f} ms", pit["state_at"])
    query("who_could_see alone, on the state at T", pit["who_could_see_at_state"], False)
    query("who_could_see alone, on the state after the whole log", pit["who_could_see_full_state"], False)
    table.text(f"  alternatives (each answer checked): a sorted index of the {pit['index']['events']:,} events that "
               f"can change the state (built once in {pit['index']['build_seconds']:.2f} s; "
               f"{pit['index']['events_up_to_t']:,} up to T):")
    query("  index + bisect, reduce(evolve) + who_could_see", pit["index_evolve"])
    query("  index + bisect, mutable fold + who_could_see", pit["index_mutable"])
    table.figure("same on record time (one query, checked vs state_at)", f"{pit['index_record_axis_ms']:.1f} ms",
                 indent=4)
    table.text(f"  checkpoints: the state after every {pit['checkpoints']['every']} indexed events "
               f"({pit['checkpoints']['count']} states, built in {pit['checkpoints']['build_seconds']:.2f} s)")
    query("  checkpoint + reduce(evolve) to T + who_could_see", pit["checkpoint_evolve"])
    query("  checkpoint + mutable fold to T + who_could_see", pit["checkpoint_mutable"])
    query("    same, each query at its own random moment", pit["checkpoint_random_moments"])
    table.text("", f"memory    peak RSS {report['peak_rss_mb']:,.0f} MB (ru_maxrss, whole run; "
                   f"{report['machine_memory_gib']:.0f} GiB in the machine)")
    return table.render(report)


def main(argv: list[str] | None = None) -> int:
    parser = cli("bench.audit_replay", __doc__)
    parser.add_argument("--events", type=int, default=1_000_000, help="N, events in the year (default 1000000)")
    parser.add_argument("--profile", action="store_true",
                        help=f"afterwards, cProfile decode and fold of {PROFILE_SAMPLE:,} records; top costs to stderr")
    args = parser.parse_args(argv)
    if args.events < MIN_EVENTS:
        parser.error(f"--events must be at least {MIN_EVENTS}")
    return run_benchmark(args, measure, render, failures=(MemoryError,))


if __name__ == "__main__":
    sys.exit(main())
