"""Registry throughput: how many staff mutations per second the registry turns into published
canonical events, through its Kafka door and its HTTP door, against what the broker and
kafka-python do on their own with records of the same size - measured in one run, on one broker.

    .venv/bin/python -m bench.registry_throughput [--mutations N] [--bootstrap HOST:PORT] [--json]
                                                  [--fetch-wait-ms W] [--profile DIR]

The registry runs in this process, wired by its own bootstrap: the relay (outbox -> Kafka, office
mail to a loopback SMTP catcher) and, for the Kafka door, the intake runner, each in a thread
(deployed, they are separate processes), on SQLite files in a temporary directory. --profile DIR
runs the intake and relay threads under cProfile and writes intake.pstats and relay.pstats there
(slower: use a small N). The broker, progress, time limits and the report: bench.harness.
"""

from __future__ import annotations

import asyncio
import base64
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from kafka import KafkaProducer
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from bench.events import ADDRESS, staff_joined_mutation
from bench.harness import (
    PARTITIONS,
    REPLICATION,
    Deadline,
    RawRecord,
    Receiver,
    Run,
    Table,
    Worker,
    apply_limit,
    cli,
    consume_limit,
    fmt_rate,
    fmt_ratio,
    median_run,
    produce_limit,
    progress,
    rate,
    ratio,
    raw_produce,
    raw_producer,
    require_positive,
    run_benchmark,
    send_all,
    wait_until,
    watch,
)
from services.registry import store
from services.registry.api import create_app
from services.registry.bootstrap import RegistryDeps, build, build_intake_runner, build_relay, ensure_registry_topics
from services.registry.credentials import CLIENT_HEADER, SIGNATURE_HEADER, IssuedCredential, sign
from services.registry.settings import RegistrySettings
from shared.contracts.mutations import BranchReport
from shared.contracts.topics import Topic
from shared.db import make_engine
from shared.kafka.admin import ensure_topics
from tests.support import SmtpCatcher, read_all

BRIN = "12AB"
VESTIGINGSCODE = "12AB00"
HTTP_BATCH = 100
# Each raw rate is measured this many times (each on a new topic); the median counts.
RAW_REPEATS = 3
# The target for the Kafka door: end-to-end mutations/s at least this share of the raw
# produce+consume rate on the same broker.
TARGET_RATIO = 0.30
# How often the main thread looks at the runner's counter and the outbox while timing. Short
# enough to be exact to about 10 ms, long enough not to take the interpreter lock from the
# threads measured (the outbox count runs in SQLite, which releases it).
WATCH_INTERVAL_S = 0.01
JOIN_LIMIT_S = 60.0


def signed_records(school: IssuedCredential, phase: str, n: int) -> list[RawRecord]:
    """As a school system sends them to the Kafka door (see tests/integration/test_registry.py)."""
    signing_key = base64.b64decode(school.signing_key)
    records = []
    for i in range(n):
        value = json.dumps(staff_joined_mutation(phase, i, VESTIGINGSCODE)).encode()
        records.append(RawRecord(school.client_id.encode(), value, (
            (CLIENT_HEADER, school.client_id.encode()), (SIGNATURE_HEADER, sign(signing_key, value).encode()))))
    return records


# --- raw baseline -------------------------------------------------------------------------------

def raw_produce_consume(producer: KafkaProducer, run: Run, topic: str, records: list[RawRecord]) -> dict[str, Any]:
    """From the first send until a consumer already polling (manual assignment, no group) has
    received all N records."""
    n = len(records)
    deadline = Deadline(produce_limit(n) + consume_limit(n), "raw produce+consume")
    with Receiver(run.bootstrap, topic, deadline, run.fetch_wait_ms) as receiver:
        producer.partitions_for(topic)
        started = time.perf_counter()
        send_all(producer, topic, records, deadline)
        produced = time.perf_counter()
        received, last = 0, started
        while received < n:
            deadline.check(f"{received} of {n} received")
            arrival = receiver.next_arrival(0.5)
            if arrival is not None:
                received, last = received + 1, arrival[1]
    return {"messages": n, "seconds": round(last - started, 4), "rate_per_s": rate(n, last - started),
            "produce_seconds": round(produced - started, 4)}


def run_raw(run: Run, records: list[RawRecord]) -> dict[str, Any]:
    topics = [f"{run.prefix}raw{i}" for i in range(RAW_REPEATS)]
    both_topics = [f"{run.prefix}raw-produce-consume{i}" for i in range(RAW_REPEATS)]
    ensure_topics(run.bootstrap, topics + both_topics, PARTITIONS, REPLICATION)
    # The raw baseline's configuration: what the school system's producer costs is not ours.
    producer = raw_producer(run.bootstrap, "bench-raw-producer")
    try:
        result: dict[str, Any] = {"avg_record_bytes": round(sum(r.size for r in records) / len(records), 1),
                                  "avg_value_bytes": round(sum(len(r.value) for r in records) / len(records), 1),
                                  "repeats": RAW_REPEATS}
        progress(f"raw: producing {len(records)} records shaped like signed mutations "
                 f"(avg value {result['avg_value_bytes']:.0f} bytes + key + 2 headers), {RAW_REPEATS} times")
        result["produce"] = median_run([raw_produce(producer, topic, records) for topic in topics])
        progress(f"  median {result['produce']['rate_per_s']:.0f} msg/s")
        progress(f"raw: produce + consume (consumer polling before the first send), {RAW_REPEATS} times")
        result["produce_consume"] = median_run([raw_produce_consume(producer, run, topic, records)
                                                for topic in both_topics])
        progress(f"  median {result['produce_consume']['rate_per_s']:.0f} msg/s")
        return result
    finally:
        producer.close(timeout=10)


# --- the registry --------------------------------------------------------------------------------

@dataclass
class Registry:
    deps: RegistryDeps
    school: IssuedCredential
    relay: Worker
    watch_engine: Engine  # the watcher's own connection to the registry database
    events_expected: int = 0  # events the relay must have published so far

    def published(self) -> int:
        """Events the relay has published: outbox rows marked published once the broker acked them."""
        with self.watch_engine.connect() as connection:
            return int(connection.execute(select(func.count()).select_from(store.outbox)
                                          .where(store.outbox.c.published_at.is_not(None))).scalar_one())

    def wait_published(self, deadline: Deadline) -> float:
        expected = self.events_expected
        return wait_until(lambda: self.published() >= expected, deadline,
                          lambda: f"{self.published()} of {expected} events published", [self.relay], WATCH_INTERVAL_S)


def open_registry(run: Run, smtp: SmtpCatcher) -> Registry:
    settings = run.settings(RegistrySettings, "registry.sqlite", f"{run.prefix}registry-intake", smtp_port=smtp.port)
    deps = build(settings)
    ensure_registry_topics(deps)
    school = deps.credentials.create("ParnasSys De Regenboog (bench)", [BRIN], [])
    credential = deps.credentials.by_client_id(school.client_id)
    assert credential is not None
    # The branch, founded through the service itself (its event and office mail go out via the relay).
    founded = BranchReport.model_validate({
        "kind": "branch", "change": "founded", "mutation_id": "bench-branch", "vestigingscode": VESTIGINGSCODE,
        "name": "OBS De Regenboog", "address": ADDRESS.model_dump(), "phone": "010-1234567", "wijknetwerk": "Noord"})
    with deps.engine.begin() as connection:
        deps.service.report(connection, credential, [founded])
    profile = run.args.profile
    relay = Worker("registry-relay", build_relay(deps), profile / "relay.pstats" if profile else None).start()
    registry = Registry(deps, school, relay, make_engine(settings.database_url), events_expected=1)
    try:
        registry.wait_published(Deadline(30, "relay publishing the founding event"))
    except BaseException:
        relay.stop()
        raise
    return registry


def run_kafka_door(registry: Registry, run: Run, n: int) -> dict[str, Any]:
    deps = registry.deps
    topic = deps.topics(Topic.REGISTRY_MUTATIONS)
    runner = build_intake_runner(deps)
    profile = run.args.profile
    intake = Worker("registry-intake", runner, profile / "intake.pstats" if profile else None)
    producer = raw_producer(run.bootstrap, "bench-school-system")  # a school system's, not ours
    workers = [registry.relay, intake]

    def dead_letters() -> str | None:
        return f"dead-lettered: {runner.stats.reasons}" if runner.stats.dead_lettered else None

    try:
        producer.partitions_for(topic)
        progress("kafka door: starting the intake runner; one warm-up mutation (group join)")
        intake.start()
        send_all(producer, topic, signed_records(registry.school, "warm", 1), Deadline(30, "warm-up send"))
        joined = watch("intake warm-up", {"applied": lambda: runner.stats.applied >= 1},
                       Deadline(JOIN_LIMIT_S, "intake group join + warm-up"),
                       lambda: "warm-up mutation not applied yet", workers, dead_letters)
        join_s = joined["applied"] - intake.started_at
        registry.events_expected += 1
        registry.wait_published(Deadline(30, "relay publishing the warm-up event"))
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
                    dead_letters, WATCH_INTERVAL_S)
        elapsed, apply_s = met["published"] - started, met["applied"] - started
        result = {
            "mutations": n, "seconds": round(elapsed, 4), "rate_per_s": rate(n, elapsed),
            "send_seconds": round(sent - started, 4),
            "apply_seconds": round(apply_s, 4), "apply_rate_per_s": rate(n, apply_s),
            "publish_lag_seconds": round(met["published"] - met["applied"], 4),
            "batches": runner.stats.batches, "dead_lettered": runner.stats.dead_lettered,
            "group_join": {"seconds": round(join_s, 4),
                           "session_timeout_ms": deps.settings.consumer_session_timeout_ms},
        }
        progress(f"  {result['rate_per_s']:.0f} mutations/s end to end (applied at {result['apply_rate_per_s']:.0f}/s)")
        return result
    finally:
        intake.stop()
        producer.close(timeout=10)


async def post_all(app: FastAPI, bodies: list[Any], api_key: str, deadline: Deadline) -> None:
    """One school system posting one request after the other. httpx's ASGI transport runs the app
    in this event loop, and FastAPI runs the sync endpoint and dependencies in its thread pool, as
    under uvicorn (minus the HTTP parsing). Starlette's TestClient adds a thread hop per request
    that about doubled the time of a one-mutation request here."""
    headers = {"Authorization": f"Bearer {api_key}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://registry.bench") as client:
        for i, body in enumerate(bodies):
            if i % 100 == 0:
                deadline.check(f"{i} of {len(bodies)} requests sent")
            response = await client.post("/v1/mutations", json=body, headers=headers,
                                         timeout=max(1.0, deadline.remaining()))
            if response.status_code != 202:
                raise RuntimeError(f"http door answered {response.status_code}: {response.text[:300]}")


def run_http_door(registry: Registry, app: FastAPI, n: int, batch: int, phase: str) -> dict[str, Any]:
    progress(f"http door: {n} mutations, {'one' if batch == 1 else batch} per request")
    mutations = [staff_joined_mutation(phase, i, VESTIGINGSCODE) for i in range(n)]
    bodies: list[Any] = (mutations if batch == 1 else
                         [{"mutations": mutations[i:i + batch]} for i in range(0, n, batch)])
    registry.events_expected += n
    deadline = Deadline(apply_limit(n), f"http door ({phase})")
    started = time.perf_counter()
    asyncio.run(post_all(app, bodies, registry.school.api_key, deadline))
    answered = time.perf_counter()
    elapsed = registry.wait_published(deadline) - started
    result = {"mutations": n, "requests": len(bodies), "batch": batch, "seconds": round(elapsed, 4),
              "rate_per_s": rate(n, elapsed), "answer_seconds": round(answered - started, 4),
              "answer_rate_per_s": rate(n, answered - started),
              "request_ms": round((answered - started) / len(bodies) * 1000, 3)}
    progress(f"  {result['rate_per_s']:.0f} mutations/s end to end ({result['request_ms']:.2f} ms per request)")
    return result


def verify(registry: Registry, run: Run, smtp: SmtpCatcher) -> dict[str, Any]:
    """After timing: every event is in the outbox as published, and on the events topic."""
    progress("verifying: outbox rows published and events on the topic (read to the high-water mark)")
    deps = registry.deps
    with deps.engine.connect() as connection:
        published = connection.execute(select(func.count()).select_from(store.outbox)
                                       .where(store.outbox.c.published_at.is_not(None))).scalar_one()
        people = connection.execute(select(func.count()).select_from(store.people)).scalar_one()
    # Read to the high-water marks of the fetch responses, never end_offsets (Tansu defect 1).
    on_topic = len(read_all(run.bootstrap, deps.topics(Topic.REGISTRY_EVENTS), timeout_s=60))
    expected = registry.events_expected
    if published != expected or on_topic != expected:
        raise RuntimeError(f"expected {expected} events; outbox has {published} published, topic has {on_topic}")
    return {"events": expected, "outbox_published": published, "on_topic": on_topic, "staff_rows": people,
            "office_mails": len(smtp.messages), "relay_interval_s": deps.settings.relay_interval_s}


def measure(run: Run) -> dict[str, Any]:
    """The raw baseline and both doors, on one broker, with one registry."""
    n = run.args.mutations
    smtp = SmtpCatcher().start()  # the relay's office mail goes here
    registry = None
    try:
        progress("registry: migrating SQLite, creating a school credential (12AB), founding 12AB00")
        registry = open_registry(run, smtp)
        # Raw records carry the same key, value sizes and headers as the door's (other refs).
        raw = run_raw(run, signed_records(registry.school, "raw", n))
        doors: dict[str, Any] = {"kafka": run_kafka_door(registry, run, n)}
        app = create_app(registry.deps)
        doors["http_single"] = run_http_door(registry, app, n, 1, "http1")
        doors["http_batch"] = run_http_door(registry, app, n, HTTP_BATCH, "httpb")
        doors["verified"] = verify(registry, run, smtp)
    finally:
        if registry is not None:
            registry.relay.stop()
            registry.watch_engine.dispose()
        smtp.stop()
    raw_pc, raw_p = raw["produce_consume"]["rate_per_s"], raw["produce"]["rate_per_s"]
    kafka_ratio = ratio(doors["kafka"]["rate_per_s"], raw_pc)
    return {
        "params": {"mutations": n, "partitions": PARTITIONS, "http_batch": HTTP_BATCH, "target_ratio": TARGET_RATIO,
                   "fetch_max_wait_ms": run.fetch_wait_ms, "topic_prefix": run.prefix},
        "raw": raw,
        "registry": doors,
        "ratios": {
            "kafka_vs_raw_produce_consume": kafka_ratio,
            "kafka_target_met": kafka_ratio is not None and kafka_ratio >= TARGET_RATIO,
            "kafka_vs_raw_produce": ratio(doors["kafka"]["rate_per_s"], raw_p),
            "http_single_vs_raw_produce": ratio(doors["http_single"]["rate_per_s"], raw_p),
            "http_batch_vs_raw_produce": ratio(doors["http_batch"]["rate_per_s"], raw_p),
        },
    }


def render(report: dict[str, Any]) -> str:
    raw, reg, ratios, p = report["raw"], report["registry"], report["ratios"], report["params"]
    rp, rc = raw["produce"], raw["produce_consume"]
    k, hs, hb, ver = reg["kafka"], reg["http_single"], reg["http_batch"], reg["verified"]

    def runs(result: dict[str, Any]) -> str:
        return " / ".join(f"{r:,.0f}" for r in result["runs"])

    table = Table("registry throughput", report["machine"])
    table.header("sizes", f"N={p['mutations']} staff_joined mutations per door, {PARTITIONS} partitions, one school "
                          f"system (one record key), avg record {raw['avg_record_bytes']:.0f} bytes "
                          f"(value {raw['avg_value_bytes']:.0f})")
    table.section("RAW BASELINE (kafka-python: acks=all, linger 1 ms; the same key, value size and headers as the "
                  f"door; median of {raw['repeats']})")
    table.figure("produce", fmt_rate(rp["rate_per_s"]), f"({rp['messages']} in {rp['seconds']:.2f} s; runs {runs(rp)})")
    table.figure("produce+consume (consumer polling first, no group)", fmt_rate(rc["rate_per_s"]),
                 f"({rc['messages']} in {rc['seconds']:.2f} s, sending {rc['produce_seconds']:.2f} s; runs {runs(rc)})")
    table.section("KAFKA DOOR (signed staff_joined -> registry.mutations.v1 -> intake runner -> outbox -> relay -> "
                  "registry.events.v1)")
    table.figure("end to end: first send -> N events published", fmt_rate(k["rate_per_s"]),
                 f"({k['mutations']} in {k['seconds']:.2f} s)")
    table.figure("intake applied (first send -> N applied)", fmt_rate(k["apply_rate_per_s"]),
                 f"({k['apply_seconds']:.2f} s; relay done {k['publish_lag_seconds']:.2f} s later)", indent=2)
    table.figure("school system sending them", "", f"({k['send_seconds']:.2f} s)", indent=2)
    table.figure("group join (not timed above; Tansu defect 3)", f"{k['group_join']['seconds']:.2f} s",
                 f"(runner start -> warm-up applied; session timeout {k['group_join']['session_timeout_ms']} ms)")
    table.section("HTTP DOOR (POST /v1/mutations in process via httpx's ASGI transport -> outbox -> relay -> "
                  "registry.events.v1)")
    table.figure("one mutation per request: first request -> N published", fmt_rate(hs["rate_per_s"]),
                 f"({hs['mutations']} in {hs['seconds']:.2f} s; {hs['request_ms']:.2f} ms per request)")
    table.figure(f"{HTTP_BATCH} per request: first request -> N published", fmt_rate(hb["rate_per_s"]),
                 f"({hb['mutations']} in {hb['seconds']:.2f} s; {hb['request_ms']:.1f} ms per request)")
    table.section("RATIOS (both sides measured in this run)")
    verdict = "PASS" if ratios["kafka_target_met"] else "MISS"
    table.figure("kafka door / raw produce+consume", fmt_ratio(ratios["kafka_vs_raw_produce_consume"]),
                 f"{verdict} against the target >= {TARGET_RATIO:.2f} (informational)")
    table.ratio("kafka door / raw produce", ratios["kafka_vs_raw_produce"])
    table.ratio("http single / raw produce", ratios["http_single_vs_raw_produce"])
    table.ratio("http batch / raw produce", ratios["http_batch_vs_raw_produce"])
    table.text("", f"verified  {ver['events']} events published in the outbox and on the topic, {ver['staff_rows']} "
                   f"staff rows, {ver['office_mails']} office mail(s); relay interval {ver['relay_interval_s']} s")
    return table.render(report)


def main(argv: list[str] | None = None) -> int:
    parser = cli("bench.registry_throughput", __doc__, fetch_wait=True)
    parser.add_argument("--mutations", type=int, default=3000, help="N, mutations per door (default 3000)")
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="run the intake and relay threads under cProfile; write DIR/intake.pstats "
                             "and DIR/relay.pstats")
    args = parser.parse_args(argv)
    require_positive(parser, args, "mutations")
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    return run_benchmark(args, measure, render)


if __name__ == "__main__":
    sys.exit(main())
