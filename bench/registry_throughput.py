"""Registry throughput: how many staff mutations per second the registry turns into published
canonical events, through its Kafka door and its HTTP door, against what the broker and
kafka-python do on their own with records of the same size - measured in one run, on one broker.

    .venv/bin/python -m bench.registry_throughput [--mutations N] [--bootstrap HOST:PORT] [--json]
                                                  [--profile DIR]

The broker: --bootstrap, else KAFKA_BOOTSTRAP_SERVERS, else a local in-memory Tansu started (and
stopped) by this run. The registry runs in this process, wired by its own bootstrap: the relay
(outbox -> Kafka, office mail to a loopback SMTP catcher) and, for the Kafka door, the intake
runner, each in a thread (deployed, they are separate processes), on SQLite files in a temporary
directory. Progress goes to stderr; the table
(or with --json, one JSON object) to stdout. Every wait is bounded; a phase that runs out of
time aborts the run with exit code 1. --profile DIR runs the intake and relay threads under
cProfile and writes intake.pstats and relay.pstats there (slower: use a small N).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import cProfile
import json
import logging
import os
import queue
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from kafka import KafkaProducer
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from bench.broker_baseline import (
    PARTITIONS,
    RAW_PRODUCER_CONFIG,
    Broker,
    Receiver,
    apply_limit,
    consume_limit,
    fmt_rate,
    fmt_ratio,
    machine_context,
    open_broker,
    produce_limit,
)
from bench.common import BenchTimeout, Deadline, Progress, ratio
from services.registry import store
from services.registry.api import create_app
from services.registry.bootstrap import (
    RegistryDeps,
    build,
    build_intake_runner,
    build_relay,
    ensure_registry_topics,
)
from services.registry.credentials import CLIENT_HEADER, SIGNATURE_HEADER, IssuedCredential, sign
from services.registry.settings import RegistrySettings
from shared.contracts.mutations import BranchReport
from shared.contracts.topics import Topic
from shared.crypto import new_master_key
from shared.db import make_engine
from shared.kafka.admin import ensure_topics
from shared.kafka.consumer import ConsumerRunner
from tests.support import SmtpCatcher, read_all

BRIN = "12AB"
VESTIGINGSCODE = "12AB00"
HTTP_BATCH = 100
# Each raw rate is measured this many times (each on a new topic); the median counts.
RAW_REPEATS = 3
# The target for the Kafka door: end-to-end mutations/s at least this share of the raw
# produce+consume rate on the same broker.
TARGET_RATIO = 0.30
ADDRESS = {"street": "Schiekade", "house_number": "12", "postcode": "3032 AJ", "city": "Rotterdam"}
# How often the main thread looks at the runner's counter and the outbox while timing. Short
# enough to be exact to about 10 ms, long enough not to take the interpreter lock from the
# threads measured (the outbox count runs in SQLite, which releases it).
WATCH_INTERVAL_S = 0.01
JOIN_LIMIT_S = 60.0

progress = Progress()


# --- mutations ---------------------------------------------------------------------------------

def staff_joined(phase: str, i: int) -> dict[str, Any]:
    """A school system reports a new staff member; refs and ids are distinct per phase and i."""
    ref = f"{phase}-{i:06d}"
    return {"kind": "staff_joined", "mutation_id": ref, "vestigingscode": VESTIGINGSCODE, "staff_ref": ref,
            "role": "ib_er", "name": f"Fatima el Amrani {i}", "email": f"f.elamrani{i}@regenboog.example"}


@dataclass(frozen=True)
class SignedRecord:
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]

    @property
    def size(self) -> int:
        return len(self.key) + len(self.value) + sum(len(k) + len(v) for k, v in self.headers)


def signed_records(school: IssuedCredential, phase: str, n: int) -> list[SignedRecord]:
    """As a school system sends them to the Kafka door (see tests/integration/test_registry.py)."""
    signing_key = base64.b64decode(school.signing_key)
    records = []
    for i in range(n):
        value = json.dumps(staff_joined(phase, i)).encode()
        records.append(SignedRecord(key=school.client_id.encode(), value=value, headers=[
            (CLIENT_HEADER, school.client_id.encode()), (SIGNATURE_HEADER, sign(signing_key, value).encode())]))
    return records


def send_all(producer: KafkaProducer, topic: str, records: list[SignedRecord], deadline: Deadline) -> None:
    futures = []
    for i, record in enumerate(records):
        if i % 500 == 0:
            deadline.check(f"{i} sent")
        futures.append(producer.send(topic, key=record.key, value=record.value, headers=record.headers))
    producer.flush(timeout=max(0.1, deadline.remaining()))
    for future in futures:
        future.get(timeout=max(0.1, deadline.remaining()))  # raises if any record failed


def school_producer(bootstrap: str, client_id: str) -> KafkaProducer:
    # The raw baseline's configuration: what the school system's producer costs is not ours.
    return KafkaProducer(bootstrap_servers=bootstrap, client_id=client_id, **RAW_PRODUCER_CONFIG)


# --- raw baseline -------------------------------------------------------------------------------

def raw_produce(producer: KafkaProducer, topic: str, records: list[SignedRecord]) -> dict[str, Any]:
    n = len(records)
    deadline = Deadline(produce_limit(n), "raw produce")
    producer.partitions_for(topic)  # metadata before the clock starts
    started = time.perf_counter()
    send_all(producer, topic, records, deadline)
    elapsed = time.perf_counter() - started
    return {"messages": n, "seconds": round(elapsed, 4), "rate_per_s": round(n / elapsed, 1)}


def raw_produce_consume(producer: KafkaProducer, bootstrap: str, topic: str,
                        records: list[SignedRecord]) -> dict[str, Any]:
    """From the first send until a consumer already polling (manual assignment, no group) has
    received all N records."""
    n = len(records)
    deadline = Deadline(produce_limit(n) + consume_limit(n), "raw produce+consume")
    receiver = Receiver(bootstrap, topic, deadline)
    receiver.start()
    try:
        if not receiver.ready.wait(timeout=deadline.remaining()) or receiver.error:
            raise RuntimeError(f"raw receiver did not start: {receiver.error!r}")
        producer.partitions_for(topic)
        started = time.perf_counter()
        send_all(producer, topic, records, deadline)
        produced = time.perf_counter()
        received, last = 0, started
        while received < n:
            deadline.check(f"{received} of {n} received")
            if receiver.error:
                raise RuntimeError(f"raw receiver failed: {receiver.error!r}")
            try:
                _, last = receiver.arrivals.get(timeout=0.5)
            except queue.Empty:
                continue
            received += 1
        elapsed = last - started
        return {"messages": n, "seconds": round(elapsed, 4), "rate_per_s": round(n / elapsed, 1),
                "produce_seconds": round(produced - started, 4)}
    finally:
        receiver.stop_event.set()
        receiver.join(timeout=10)


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median rate, and every run's rate: a raw run takes well under a second,
    so one stall of the machine would move a single one a lot."""
    ordered = sorted(runs, key=lambda run: float(run["rate_per_s"]))
    return {**ordered[len(ordered) // 2], "runs_rate_per_s": [run["rate_per_s"] for run in runs]}


def run_raw(bootstrap: str, prefix: str, records: list[SignedRecord]) -> dict[str, Any]:
    topics = [f"{prefix}raw{i}" for i in range(RAW_REPEATS)]
    both_topics = [f"{prefix}raw-produce-consume{i}" for i in range(RAW_REPEATS)]
    ensure_topics(bootstrap, topics + both_topics, PARTITIONS, 1)
    producer = school_producer(bootstrap, "bench-raw-producer")
    try:
        result: dict[str, Any] = {"avg_record_bytes": round(sum(r.size for r in records) / len(records), 1),
                                  "avg_value_bytes": round(sum(len(r.value) for r in records) / len(records), 1),
                                  "repeats": RAW_REPEATS}
        progress(f"raw: producing {len(records)} records shaped like signed mutations "
                 f"(avg value {result['avg_value_bytes']:.0f} bytes + key + 2 headers), {RAW_REPEATS} times")
        result["produce"] = median_of([raw_produce(producer, topic, records) for topic in topics])
        progress(f"  median {result['produce']['rate_per_s']:.0f} msg/s "
                 f"(runs: {', '.join(f'{r:.0f}' for r in result['produce']['runs_rate_per_s'])})")
        progress(f"raw: produce + consume (consumer polling before the first send), {RAW_REPEATS} times")
        result["produce_consume"] = median_of([raw_produce_consume(producer, bootstrap, topic, records)
                                               for topic in both_topics])
        progress(f"  median {result['produce_consume']['rate_per_s']:.0f} msg/s "
                 f"(runs: {', '.join(f'{r:.0f}' for r in result['produce_consume']['runs_rate_per_s'])})")
        return result
    finally:
        producer.close(timeout=10)


# --- the registry --------------------------------------------------------------------------------

@dataclass
class Worker:
    """A relay or intake runner in its own thread, optionally under cProfile."""

    name: str
    target: Callable[[], Any]
    stop_event: threading.Event
    profile_to: Path | None = None
    thread: threading.Thread | None = None
    error: BaseException | None = None
    started_at: float = 0.0

    def start(self) -> Worker:
        self.thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self.started_at = time.perf_counter()
        self.thread.start()
        return self

    def _run(self) -> None:
        try:
            if self.profile_to is None:
                self.target()
                return
            profiler = cProfile.Profile()
            try:
                profiler.runcall(self.target)
            finally:
                profiler.dump_stats(str(self.profile_to))
        except BaseException as error:  # reported by the main thread
            self.error = error

    def alive(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def stop(self, timeout_s: float = 20.0) -> None:
        self.stop_event.set()
        if self.thread is not None:
            self.thread.join(timeout=timeout_s)
            if self.thread.is_alive():
                progress(f"warning: {self.name} did not stop within {timeout_s:.0f}s")


@dataclass
class Registry:
    deps: RegistryDeps
    school: IssuedCredential
    relay: Any  # what build_relay returns: run() and stop_event
    relay_worker: Worker
    watch_engine: Engine  # the watcher's own connection to the registry database
    events_expected: int = 0  # events the relay must have published so far

    def published(self) -> int:
        """Events the relay has published: outbox rows marked published once the broker acked them."""
        with self.watch_engine.connect() as connection:
            return int(connection.execute(select(func.count()).select_from(store.outbox)
                                          .where(store.outbox.c.published_at.is_not(None))).scalar_one())


def watch(what: str, conditions: dict[str, Callable[[], bool]], deadline: Deadline,
          status: Callable[[], str], workers: list[Worker],
          failure: Callable[[], str | None] = lambda: None) -> dict[str, float]:
    """perf_counter time at which each condition first held; all of them, within the deadline."""
    met: dict[str, float] = {}
    while len(met) < len(conditions):
        now = time.perf_counter()
        for name, condition in conditions.items():
            if name not in met and condition():
                met[name] = now
        if len(met) == len(conditions):
            break
        problem = failure()
        if problem:
            raise RuntimeError(f"{what}: {problem}")
        for worker in workers:
            if not worker.alive():
                raise RuntimeError(f"{what}: {worker.name} stopped ({worker.error!r})")
        deadline.check(status())
        time.sleep(WATCH_INTERVAL_S)
    return met


def wait_published(registry: Registry, deadline: Deadline) -> float:
    expected = registry.events_expected
    return watch("relay", {"published": lambda: registry.published() >= expected}, deadline,
                 lambda: f"{registry.published()} of {expected} events published",
                 [registry.relay_worker])["published"]


def open_registry(bootstrap: str, prefix: str, smtp: SmtpCatcher, workdir: Path,
                  profile_dir: Path | None) -> Registry:
    settings = RegistrySettings(
        kafka_bootstrap_servers=bootstrap, topic_prefix=prefix,
        database_url=f"sqlite:///{workdir / 'registry.sqlite'}",
        keystore_url=f"sqlite:///{workdir / 'keys.sqlite'}",
        master_key=new_master_key(), consumer_group=f"{prefix}registry-intake", smtp_port=smtp.port,
        topic_partitions=PARTITIONS, topic_replication=1)
    deps = build(settings)
    ensure_registry_topics(deps)
    school = deps.credentials.create("ParnasSys De Regenboog (bench)", [BRIN], [])
    credential = deps.credentials.by_client_id(school.client_id)
    assert credential is not None
    # The branch, founded through the service itself (its event and office mail go out via the relay).
    founded = BranchReport.model_validate({
        "kind": "branch", "change": "founded", "mutation_id": "bench-branch", "vestigingscode": VESTIGINGSCODE,
        "name": "OBS De Regenboog", "address": ADDRESS, "phone": "010-1234567", "wijknetwerk": "Noord"})
    with deps.engine.begin() as connection:
        deps.service.report(connection, credential, [founded])
    relay = build_relay(deps)
    worker = Worker("registry-relay", relay.run, relay.stop_event,
                    profile_dir / "relay.pstats" if profile_dir else None).start()
    registry = Registry(deps, school, relay, worker, make_engine(settings.database_url), events_expected=1)
    try:
        wait_published(registry, Deadline(30, "relay publishing the founding event"))
    except BaseException:
        worker.stop()
        raise
    return registry


def run_kafka_door(registry: Registry, bootstrap: str, n: int, profile_dir: Path | None) -> dict[str, Any]:
    deps = registry.deps
    topic = deps.topics(Topic.REGISTRY_MUTATIONS)
    runner: ConsumerRunner = build_intake_runner(deps)
    intake = Worker("registry-intake", runner.run, runner.stop_event,
                    profile_dir / "intake.pstats" if profile_dir else None)
    producer = school_producer(bootstrap, "bench-school-system")
    workers = [registry.relay_worker, intake]
    try:
        producer.partitions_for(topic)
        progress("kafka door: starting the intake runner; one warm-up mutation (group join)")
        intake.start()
        warmup = signed_records(registry.school, "warm", 1)
        send_all(producer, topic, warmup, Deadline(30, "warm-up send"))
        joined = watch("intake warm-up", {"applied": lambda: runner.stats.applied >= 1},
                       Deadline(JOIN_LIMIT_S, "intake group join + warm-up"),
                       lambda: "warm-up mutation not applied yet", workers,
                       lambda: f"dead-lettered: {runner.stats.reasons}" if runner.stats.dead_lettered else None)
        join_s = joined["applied"] - intake.started_at
        registry.events_expected += 1
        wait_published(registry, Deadline(30, "relay publishing the warm-up event"))
        progress(f"  joined and applied the warm-up in {join_s:.2f} s")

        records = signed_records(registry.school, "kafka", n)
        applied0, published0 = runner.stats.applied, registry.published()
        registry.events_expected += n
        expected = registry.events_expected
        progress(f"kafka door: {n} signed staff_joined mutations -> {topic} -> events published")
        deadline = Deadline(produce_limit(n) + apply_limit(n), "kafka door")
        started = time.perf_counter()
        send_all(producer, topic, records, deadline)
        sent = time.perf_counter()
        met = watch("kafka door", {"applied": lambda: runner.stats.applied >= applied0 + n,
                                   "published": lambda: registry.published() >= expected},
                    deadline, lambda: f"{runner.stats.applied - applied0} applied, "
                                      f"{registry.published() - published0} published of {n}", workers,
                    lambda: f"dead-lettered: {runner.stats.reasons}" if runner.stats.dead_lettered else None)
        elapsed = met["published"] - started
        apply_s = met["applied"] - started
        result = {
            "mutations": n, "seconds": round(elapsed, 4), "rate_per_s": round(n / elapsed, 1),
            "send_seconds": round(sent - started, 4),
            "apply_seconds": round(apply_s, 4), "apply_rate_per_s": round(n / apply_s, 1),
            "publish_lag_seconds": round(met["published"] - met["applied"], 4),
            "batches": runner.stats.batches, "dead_lettered": runner.stats.dead_lettered,
            "group_join": {"seconds": round(join_s, 4),
                           "session_timeout_ms": deps.settings.consumer_session_timeout_ms},
        }
        progress(f"  {result['rate_per_s']:.0f} mutations/s end to end "
                 f"(applied at {result['apply_rate_per_s']:.0f}/s)")
        return result
    finally:
        intake.stop()
        producer.close(timeout=10)
        # The runner does not close its dead-letter producer; close it so no thread outlives the run.
        runner._dlq.close(timeout=10)


async def post_all(app: FastAPI, bodies: list[Any], api_key: str, deadline: Deadline) -> None:
    """One school system posting one request after the other. httpx's ASGI transport runs the app
    in this event loop, and FastAPI runs the sync endpoint and dependencies in its thread pool, as
    under uvicorn (minus the HTTP parsing). Starlette's TestClient adds a thread hop per request
    that about doubled the time of a one-mutation request here."""
    headers = {"Authorization": f"Bearer {api_key}"}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://registry.bench") as client:
        for i, body in enumerate(bodies):
            if i % 100 == 0:
                deadline.check(f"{i} of {len(bodies)} requests sent")
            response = await client.post("/v1/mutations", json=body, headers=headers,
                                         timeout=max(1.0, deadline.remaining()))
            if response.status_code != 202:
                raise RuntimeError(f"http door answered {response.status_code}: {response.text[:300]}")


def run_http_door(registry: Registry, app: FastAPI, n: int, batch: int, phase: str) -> dict[str, Any]:
    mutations = [staff_joined(phase, i) for i in range(n)]
    bodies: list[Any] = (mutations if batch == 1 else
                         [{"mutations": mutations[i:i + batch]} for i in range(0, n, batch)])
    registry.events_expected += n
    deadline = Deadline(apply_limit(n), f"http door ({phase})")
    started = time.perf_counter()
    asyncio.run(post_all(app, bodies, registry.school.api_key, deadline))
    answered = time.perf_counter()
    published = wait_published(registry, deadline)
    elapsed = published - started
    return {"mutations": n, "requests": len(bodies), "batch": batch, "seconds": round(elapsed, 4),
            "rate_per_s": round(n / elapsed, 1), "answer_seconds": round(answered - started, 4),
            "answer_rate_per_s": round(n / (answered - started), 1),
            "request_ms": round((answered - started) / len(bodies) * 1000, 3)}


def verify(registry: Registry, bootstrap: str, smtp: SmtpCatcher) -> dict[str, Any]:
    """After timing: every event is in the outbox as published, and on the events topic."""
    deps = registry.deps
    with deps.engine.connect() as connection:
        published = connection.execute(select(func.count()).select_from(store.outbox)
                                       .where(store.outbox.c.published_at.is_not(None))).scalar_one()
        people = connection.execute(select(func.count()).select_from(store.people)).scalar_one()
    # Read to the high-water marks of the fetch responses, never end_offsets (Tansu defect 1).
    on_topic = len(read_all(bootstrap, deps.topics(Topic.REGISTRY_EVENTS), timeout_s=60))
    expected = registry.events_expected
    if published != expected or on_topic != expected:
        raise RuntimeError(f"expected {expected} events; outbox has {published} published, topic has {on_topic}")
    return {"events": expected, "outbox_published": published, "on_topic": on_topic, "staff_rows": people,
            "office_mails": len(smtp.messages)}


def run_all(bootstrap: str, n: int, profile_dir: Path | None, smtp: SmtpCatcher,
            workdir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The raw baseline and both doors, on one broker, with one registry (fresh topic prefix)."""
    prefix = f"bench{uuid.uuid4().hex[:8]}."
    registry = None
    try:
        progress("registry: migrating SQLite, creating a school credential (12AB), founding 12AB00")
        registry = open_registry(bootstrap, prefix, smtp, workdir, profile_dir)
        # Raw records carry the same key, value sizes and headers as the door's (other refs).
        raw = run_raw(bootstrap, prefix, signed_records(registry.school, "raw", n))
        result: dict[str, Any] = {"topic_prefix": prefix}
        result["kafka"] = run_kafka_door(registry, bootstrap, n, profile_dir)
        app = create_app(registry.deps)
        progress(f"http door: {n} mutations, one per request")
        result["http_single"] = run_http_door(registry, app, n, 1, "http1")
        progress(f"  {result['http_single']['rate_per_s']:.0f} mutations/s end to end "
                 f"({result['http_single']['request_ms']:.2f} ms per request)")
        progress(f"http door: {n} mutations, {HTTP_BATCH} per request")
        result["http_batch"] = run_http_door(registry, app, n, HTTP_BATCH, "httpb")
        progress(f"  {result['http_batch']['rate_per_s']:.0f} mutations/s end to end "
                 f"({result['http_batch']['request_ms']:.1f} ms per request)")
        progress("verifying: outbox rows published and events on the topic (read to the high-water mark)")
        result["verified"] = verify(registry, bootstrap, smtp)
        result["relay"] = {"interval_s": registry.deps.settings.relay_interval_s}
        return raw, result
    finally:
        if registry is not None:
            registry.relay_worker.stop()
            registry.watch_engine.dispose()


# --- report --------------------------------------------------------------------------------------

def render(report: dict[str, Any]) -> str:
    ctx, raw, reg, ratios, p = report["machine"], report["raw"], report["registry"], report["ratios"], report["params"]
    rp, rc = raw["produce"], raw["produce_consume"]
    k, hs, hb = reg["kafka"], reg["http_single"], reg["http_batch"]
    width = 60
    verdict = "PASS" if ratios["kafka_target_met"] else "MISS"
    lines = [
        f"samenveilig registry throughput, {ctx['date']}",
        f"machine   {ctx['cpu_count']} CPUs, Python {ctx['python']}, kafka-python {ctx['kafka_python']}, "
        f"{ctx['platform']}",
        f"broker    {ctx['broker']} at {ctx['bootstrap']}",
        f"sizes     N={p['mutations']} staff_joined mutations per door, {PARTITIONS} partitions, one school "
        f"system (one record key), avg record {raw['avg_record_bytes']:.0f} bytes "
        f"(value {raw['avg_value_bytes']:.0f})",
        "",
        "RAW BASELINE (kafka-python: acks=all, linger 1 ms; the same key, value size and headers as the door; "
        f"median of {raw['repeats']})",
        f"  {'produce':<{width}}{fmt_rate(rp['rate_per_s']):>16}   ({rp['messages']} in {rp['seconds']:.2f} s; "
        f"runs {' / '.join(f'{r:,.0f}' for r in rp['runs_rate_per_s'])})",
        f"  {'produce+consume (consumer polling first, no group)':<{width}}{fmt_rate(rc['rate_per_s']):>16}   "
        f"({rc['messages']} in {rc['seconds']:.2f} s, sending {rc['produce_seconds']:.2f} s; "
        f"runs {' / '.join(f'{r:,.0f}' for r in rc['runs_rate_per_s'])})",
        "",
        "KAFKA DOOR (signed staff_joined -> registry.mutations.v1 -> intake runner -> outbox -> relay -> "
        "registry.events.v1)",
        f"  {'end to end: first send -> N events published':<{width}}{fmt_rate(k['rate_per_s']):>16}   "
        f"({k['mutations']} in {k['seconds']:.2f} s)",
        f"  {'  intake applied (first send -> N applied)':<{width}}{fmt_rate(k['apply_rate_per_s']):>16}   "
        f"({k['apply_seconds']:.2f} s; relay done {k['publish_lag_seconds']:.2f} s later)",
        f"  {'  school system sending them':<{width}}{'':>16}   ({k['send_seconds']:.2f} s)",
        f"  {'group join (not timed above; Tansu defect 3)':<{width}}{k['group_join']['seconds']:>12.2f} s     "
        f"(runner start -> warm-up applied; session timeout {k['group_join']['session_timeout_ms']} ms)",
        "",
        "HTTP DOOR (POST /v1/mutations in process via httpx's ASGI transport -> outbox -> relay -> registry.events.v1)",
        f"  {'one mutation per request: first request -> N published':<{width}}{fmt_rate(hs['rate_per_s']):>16}   "
        f"({hs['mutations']} in {hs['seconds']:.2f} s; {hs['request_ms']:.2f} ms per request)",
        f"  {f'{HTTP_BATCH} per request: first request -> N published':<{width}}{fmt_rate(hb['rate_per_s']):>16}   "
        f"({hb['mutations']} in {hb['seconds']:.2f} s; {hb['request_ms']:.1f} ms per request)",
        "",
        "RATIOS (both sides measured in this run)",
        f"  {'kafka door / raw produce+consume':<{width}}{fmt_ratio(ratios['kafka_vs_raw_produce_consume']):>16}   "
        f"{verdict} against the target >= {TARGET_RATIO:.2f} (informational)",
        f"  {'kafka door / raw produce':<{width}}{fmt_ratio(ratios['kafka_vs_raw_produce']):>16}",
        f"  {'http single / raw produce':<{width}}{fmt_ratio(ratios['http_single_vs_raw_produce']):>16}",
        f"  {'http batch / raw produce':<{width}}{fmt_ratio(ratios['http_batch_vs_raw_produce']):>16}",
        "",
        f"verified  {reg['verified']['events']} events published in the outbox and on the topic, "
        f"{reg['verified']['staff_rows']} staff rows, {reg['verified']['office_mails']} office mail(s); "
        f"relay interval {reg['relay']['interval_s']} s",
        f"run took {report['duration_s']:.1f} s",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.registry_throughput", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mutations", type=int, default=3000, help="N, mutations per door (default 3000)")
    parser.add_argument("--bootstrap", help="HOST:PORT of a running broker (default: "
                        "KAFKA_BOOTSTRAP_SERVERS, else a local in-memory Tansu)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="run the intake and relay threads under cProfile; write DIR/intake.pstats "
                             "and DIR/relay.pstats")
    args = parser.parse_args(argv)
    if args.mutations < 1:
        parser.error("--mutations must be positive")
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("kafka").setLevel(logging.CRITICAL)

    started = time.perf_counter()
    progress("starting the broker" if not (args.bootstrap or os.environ.get("KAFKA_BOOTSTRAP_SERVERS"))
             else "connecting to the broker")
    broker: Broker = open_broker(args.bootstrap)
    smtp: SmtpCatcher | None = None
    workdir = Path(tempfile.mkdtemp(prefix="samenveilig-bench-registry-"))
    n = args.mutations
    try:
        smtp = SmtpCatcher().start()  # the relay's office mail goes here
        raw, registry = run_all(broker.bootstrap, n, args.profile, smtp, workdir)
    except (BenchTimeout, RuntimeError) as error:
        progress(f"benchmark failed: {error}")
        return 1
    finally:
        if smtp is not None:
            smtp.stop()
        if broker.local is not None:
            broker.local.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    raw_pc, raw_p = raw["produce_consume"]["rate_per_s"], raw["produce"]["rate_per_s"]
    kafka_ratio = ratio(registry["kafka"]["rate_per_s"], raw_pc)
    report: dict[str, Any] = {
        "machine": machine_context(broker),
        "params": {"mutations": n, "partitions": PARTITIONS, "http_batch": HTTP_BATCH,
                   "target_ratio": TARGET_RATIO},
        "raw": raw,
        "registry": registry,
        "ratios": {
            "kafka_vs_raw_produce_consume": kafka_ratio,
            "kafka_target_met": kafka_ratio is not None and kafka_ratio >= TARGET_RATIO,
            "kafka_vs_raw_produce": ratio(registry["kafka"]["rate_per_s"], raw_p),
            "http_single_vs_raw_produce": ratio(registry["http_single"]["rate_per_s"], raw_p),
            "http_batch_vs_raw_produce": ratio(registry["http_batch"]["rate_per_s"], raw_p),
        },
        "duration_s": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(report, indent=2) if args.json else render(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
