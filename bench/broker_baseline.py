"""Broker baseline: what the broker and kafka-python do on their own, and what is left of it
after the project's plumbing (envelope, sealing, idempotent publisher, the access processor's
effectively-once ConsumerRunner on SQLite) - measured in one run, so the ratios compare like
with like on the same machine and broker.

    .venv/bin/python -m bench.broker_baseline [--messages N] [--roundtrips M] [--chunk C]
                                              [--bootstrap HOST:PORT] [--fetch-wait-ms W] [--json]

The broker, progress, time limits and the report: bench.harness.
"""

from __future__ import annotations

import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from kafka import KafkaProducer
from sqlalchemy import func, select

from bench.events import staff_joined
from bench.harness import (
    KEYS,
    PARTITIONS,
    RAW_PRODUCER_CONFIG,
    REPLICATION,
    SINGLE_ROUNDTRIP_LIMIT_S,
    VALUE_BYTES,
    WARMUP,
    Deadline,
    Run,
    Table,
    Worker,
    apply_limit,
    cli,
    fmt_rate,
    latency_summary_ms,
    produce_limit,
    progress,
    publisher_codec,
    rate,
    ratio,
    raw_consumer,
    raw_produce,
    raw_producer,
    raw_records,
    raw_roundtrips,
    read_all,
    require_positive,
    roundtrip_limit,
    run_benchmark,
    seal,
    wait_for_partitions,
    wait_until,
)
from services.access import store
from services.access.bootstrap import build, build_runner
from services.access.settings import AccessSettings
from shared.contracts.envelope import EventCodec
from shared.contracts.events import StaffDeparted, StaffJoined
from shared.contracts.topics import Topic
from shared.db import make_engine
from shared.kafka.admin import ensure_topics
from shared.kafka.producer import EventPublisher, make_producer

# How often the plumbing round trip looks for its row in the access database.
DB_POLL_INTERVAL_S = 0.001


# --- raw baseline ----------------------------------------------------------------------------

def raw_roundtrips_sequential(producer: KafkaProducer, bootstrap: str, topic: str, m: int,
                              fetch_wait_ms: int) -> dict[str, Any]:
    """The same pairs as raw_roundtrips, but the consumer polls only once the send is
    acknowledged, in the same thread: no fetch is waiting at the broker when the record lands."""
    deadline = Deadline(roundtrip_limit(m + WARMUP), "raw sequential round trips")
    consumer = raw_consumer(bootstrap, "bench-raw-sequential", fetch_wait_ms)
    try:
        assigned = wait_for_partitions(consumer, topic, deadline)
        consumer.assign(assigned)
        for tp in assigned:
            consumer.seek(tp, 0)  # a fresh, empty topic
        consumer.poll(timeout_ms=100)
        producer.partitions_for(topic)
        latencies: list[float] = []
        for i, record in enumerate(raw_records(WARMUP + m, keys=1)):
            deadline.check(f"{i} round trips done")
            marker = record.value[:10]
            sent = time.perf_counter()
            producer.send(topic, key=record.key, value=record.value).get(timeout=SINGLE_ROUNDTRIP_LIMIT_S)
            single = Deadline(min(SINGLE_ROUNDTRIP_LIMIT_S, deadline.remaining()), f"round trip {i}")
            arrived = None
            while arrived is None:
                single.check()
                for records in consumer.poll(timeout_ms=200).values():
                    if any(r.value[:10] == marker for r in records):
                        arrived = time.perf_counter()
            if i >= WARMUP:
                latencies.append(arrived - sent)
        return latency_summary_ms(latencies)
    finally:
        consumer.close()


def run_raw(run: Run, n: int, roundtrips: int) -> dict[str, Any]:
    prefix, bootstrap, wait = run.prefix, run.bootstrap, run.fetch_wait_ms
    topic, rt_topic, seq_topic = f"{prefix}raw", f"{prefix}raw-roundtrip", f"{prefix}raw-sequential"
    ensure_topics(bootstrap, [topic, rt_topic, seq_topic], PARTITIONS, REPLICATION)
    producer = raw_producer(bootstrap, "bench-raw-producer")
    result: dict[str, Any] = {"producer_config": dict(RAW_PRODUCER_CONFIG)}
    try:
        progress(f"raw: producing {n} records of {VALUE_BYTES} bytes to {topic}")
        result["produce"] = raw_produce(producer, topic, raw_records(n))
        progress(f"  {result['produce']['rate_per_s']:.0f} msg/s")
        progress("raw: consuming them (manual assignment, no group)")
        result["consume"] = read_all(bootstrap, [topic], expected=n, fetch_wait_ms=wait)
        progress(f"  {result['consume']['rate_per_s']:.0f} msg/s")
        progress(f"raw: {roundtrips} round trips, send().get() -> received by a polling consumer")
        result["roundtrip"] = raw_roundtrips(producer, bootstrap, rt_topic, roundtrips, wait)
        progress(f"  p50 {result['roundtrip']['p50_ms']:.1f} ms")
        progress(f"raw: {roundtrips} round trips, polling only after the ack")
        result["roundtrip_sequential"] = raw_roundtrips_sequential(producer, bootstrap, seq_topic, roundtrips, wait)
        progress(f"  p50 {result['roundtrip_sequential']['p50_ms']:.1f} ms")
        return result
    finally:
        producer.close(timeout=10)


# --- through the project's plumbing ----------------------------------------------------------

def staff_joined_events(n: int) -> list[StaffJoined]:
    branches = [uuid.uuid4() for _ in range(KEYS)]
    return [staff_joined(branches[i % KEYS], i) for i in range(n)]


def plumbing_produce(publisher: EventPublisher, producer: KafkaProducer, codec: EventCodec, topic: str,
                     events: list[StaffJoined], chunk: int) -> dict[str, Any]:
    n = len(events)
    deadline = Deadline(produce_limit(n) + n * 0.01, "plumbing produce")
    producer.partitions_for(topic)
    encode_s = publish_s = 0.0
    value_bytes = 0
    recorded_at = datetime.now(UTC)
    started = time.perf_counter()
    for start in range(0, n, chunk):
        deadline.check(f"{start} of {n} published")
        t0 = time.perf_counter()
        encoded = [seal(codec, event, recorded_at) for event in events[start:start + chunk]]
        t1 = time.perf_counter()
        publisher.publish_all(encoded, timeout_s=max(1.0, deadline.remaining()))
        t2 = time.perf_counter()
        encode_s += t1 - t0
        publish_s += t2 - t1
        value_bytes += sum(len(e.value) for e in encoded)
    elapsed = time.perf_counter() - started
    return {"messages": n, "seconds": round(elapsed, 4), "rate_per_s": rate(n, elapsed),
            "encode_seconds": round(encode_s, 4), "encode_rate_per_s": rate(n, encode_s),
            "publish_seconds": round(publish_s, 4), "publish_rate_per_s": rate(n, publish_s),
            "chunk": chunk, "avg_value_bytes": round(value_bytes / n, 1)}


def plumbing_roundtrips(publisher: EventPublisher, codec: EventCodec, database_url: str, staff: list[StaffJoined],
                        count: int, worker: Worker) -> dict[str, Any]:
    deadline = Deadline(roundtrip_limit(count + WARMUP), "plumbing round trips")
    engine = make_engine(database_url)  # a reader of its own, as the access API would be
    departures = store.staff_departures
    try:
        latencies: list[float] = []
        for i in range(WARMUP + count):
            deadline.check(f"{i} round trips done")
            joined = staff[i % len(staff)]
            encoded = seal(codec, StaffDeparted(branch_id=joined.branch_id, staff_id=joined.staff_id))
            query = select(departures.c.id).where(departures.c.event_id == encoded.id)

            def visible(query: Any = query) -> bool:
                with engine.connect() as connection:
                    return connection.execute(query).first() is not None

            sent = time.perf_counter()
            publisher.publish(encoded, timeout_s=SINGLE_ROUNDTRIP_LIMIT_S)
            seen = wait_until(visible, Deadline(min(SINGLE_ROUNDTRIP_LIMIT_S, deadline.remaining()),
                                                f"plumbing round trip {i}"),
                              lambda: "departure row not visible", [worker], DB_POLL_INTERVAL_S)
            if i >= WARMUP:
                latencies.append(seen - sent)
        return latency_summary_ms(latencies)
    finally:
        engine.dispose()


def run_plumbing(run: Run, n: int, roundtrips: int, chunk: int) -> dict[str, Any]:
    result: dict[str, Any] = {}
    settings = run.settings(AccessSettings, "access.sqlite", f"{run.prefix}access")
    deps = build(settings)  # migrates the access database; its codec decodes with SqlKeyStore
    topic = run.topics(Topic.REGISTRY_EVENTS)
    ensure_topics(run.bootstrap, [topic, f"{topic}.dlq"], PARTITIONS, REPLICATION)
    codec = publisher_codec(settings, run.topics)
    producer = make_producer(run.bootstrap, "bench-plumbing-publisher")
    publisher = EventPublisher(producer)
    worker: Worker | None = None
    try:
        events = staff_joined_events(n)
        progress(f"plumbing: producing {n} StaffJoined events (encode + publish_all in chunks of {chunk})")
        result["produce"] = plumbing_produce(publisher, producer, codec, topic, events, chunk)
        progress(f"  {result['produce']['rate_per_s']:.0f} msg/s")

        progress("plumbing: access processor consuming and applying them (joins a group first)")
        runner = build_runner(deps)
        deadline = Deadline(apply_limit(n), "plumbing consume+apply")
        worker = Worker("access-processor", runner).start()
        first = wait_until(lambda: runner.stats.applied > 0, deadline, lambda: "no event applied yet", [worker],
                           0.002)
        applied_at_first = runner.stats.applied
        done = wait_until(lambda: runner.stats.applied >= n, deadline,
                          lambda: f"{runner.stats.applied} of {n} applied", [worker])
        stats = runner.stats
        if stats.dead_lettered:
            raise RuntimeError(f"{stats.dead_lettered} events were dead-lettered: {stats.reasons}")
        with deps.engine.connect() as connection:
            rows = connection.execute(select(func.count()).select_from(store.staff)).scalar_one()
        if rows != n:
            raise RuntimeError(f"{rows} staff rows in the access database, expected {n}")
        result["consume_apply"] = {
            "messages": n, "seconds_after_first": round(done - first, 4),
            "rate_per_s": rate(n - applied_at_first, done - first),
            "seconds_from_start": round(done - worker.started_at, 4), "batches": stats.batches,
            "duplicates": stats.duplicates, "rows_verified": rows,
        }
        result["group_join"] = {"seconds": round(first - worker.started_at, 4),
                                "session_timeout_ms": settings.consumer_session_timeout_ms}
        progress(f"  {result['consume_apply']['rate_per_s']:.0f} msg/s after a "
                 f"{result['group_join']['seconds']:.2f}s group join")

        progress(f"plumbing: {roundtrips} round trips, publish StaffDeparted -> row in the access DB")
        result["roundtrip"] = plumbing_roundtrips(publisher, codec, settings.database_url, events, roundtrips, worker)
        progress(f"  p50 {result['roundtrip']['p50_ms']:.1f} ms")
        return result
    finally:
        if worker is not None:
            worker.stop()
        publisher.close()
        deps.engine.dispose()


def measure(run: Run) -> dict[str, Any]:
    args = run.args
    plumbing_count = max(1, args.roundtrips // 5)
    raw = run_raw(run, args.messages, args.roundtrips)
    plumbing = run_plumbing(run, args.messages, plumbing_count, args.chunk)
    return {
        "params": {"messages": args.messages, "roundtrips": args.roundtrips, "plumbing_roundtrips": plumbing_count,
                   "chunk": args.chunk, "partitions": PARTITIONS, "value_bytes": VALUE_BYTES, "keys": KEYS,
                   "warmup_roundtrips": WARMUP, "fetch_max_wait_ms": run.fetch_wait_ms, "topic_prefix": run.prefix},
        "raw": raw,
        "plumbing": plumbing,
        "ratios": {
            "produce": ratio(plumbing["produce"]["rate_per_s"], raw["produce"]["rate_per_s"]),
            "consume": ratio(plumbing["consume_apply"]["rate_per_s"], raw["consume"]["rate_per_s"]),
            "roundtrip_p50": ratio(plumbing["roundtrip"]["p50_ms"], raw["roundtrip"]["p50_ms"]),
        },
    }


def render(report: dict[str, Any]) -> str:
    raw, plumb, ratios, p = report["raw"], report["plumbing"], report["ratios"], report["params"]
    rp, rc = raw["produce"], raw["consume"]
    pp, pc, pj = plumb["produce"], plumb["consume_apply"], plumb["group_join"]
    table = Table("broker baseline", report["machine"])
    table.header("sizes", f"N={p['messages']} messages, {PARTITIONS} partitions, raw round trips={p['roundtrips']}, "
                          f"plumbing round trips={p['plumbing_roundtrips']} (+{WARMUP} warm-up each, not counted)")
    table.section("RAW BASELINE (kafka-python: acks=all, linger 1 ms, no idempotence; "
                  f"{VALUE_BYTES}-byte values, {KEYS} keys)")
    table.figure("produce", fmt_rate(rp["rate_per_s"]), f"({rp['messages']} in {rp['seconds']:.2f} s)")
    table.figure("consume (manual assignment, no group)", fmt_rate(rc["rate_per_s"]),
                 f"({rc['messages']} in {rc['seconds']:.2f} s)")
    table.latency("round trip send().get() -> received by a polling consumer", raw["roundtrip"])
    table.latency("same, but polling only after the ack (for context)", raw["roundtrip_sequential"], indent=2)
    table.section("PROJECT PLUMBING (StaffJoined: EventCodec, sealed with SqlKeyStore; EventPublisher; "
                  "access ConsumerRunner on SQLite)")
    table.figure("produce (encode + publish_all)", fmt_rate(pp["rate_per_s"]),
                 f"({pp['messages']} in {pp['seconds']:.2f} s, chunks of {pp['chunk']}, "
                 f"avg value {pp['avg_value_bytes']:.0f} bytes)")
    table.figure("of which encode (incl. creating each subject key)", fmt_rate(pp["encode_rate_per_s"]),
                 f"({pp['encode_seconds']:.2f} s)", indent=2)
    table.figure("of which publish_all", fmt_rate(pp["publish_rate_per_s"]), f"({pp['publish_seconds']:.2f} s)",
                 indent=2)
    table.figure("consume+apply (from first applied event)", fmt_rate(pc["rate_per_s"]),
                 f"({pc['messages']} applied, {pc['seconds_after_first']:.2f} s after the first)")
    table.figure("group join (Tansu defect 3: about half the session timeout)", f"{pj['seconds']:.2f} s",
                 f"(runner start -> first applied event; session timeout {pj['session_timeout_ms']} ms)")
    table.latency("round trip publish StaffDeparted -> row in access DB", plumb["roundtrip"])
    table.section("RATIOS (plumbing / raw, both measured in this run)")
    table.ratio("produce rate", ratios["produce"])
    table.ratio("consume+apply rate / raw consume rate", ratios["consume"])
    table.ratio("round-trip p50", ratios["roundtrip_p50"], suffix=" x")
    table.text("", "note: a round trip to a consumer that is already polling includes the wait for its fetch in",
               f"      flight at the broker (fetch_max_wait_ms={p['fetch_max_wait_ms']}, as the ConsumerRunner uses; "
               "Tansu", "      answers a waiting fetch after about half of it, defect 5); the poll-after-ack line "
               "shows", "      the round trip without it.")
    return table.render(report)


def main(argv: list[str] | None = None) -> int:
    parser = cli("bench.broker_baseline", __doc__, fetch_wait=True)
    parser.add_argument("--messages", type=int, default=20000, help="N, records per rate (default 20000)")
    parser.add_argument("--roundtrips", type=int, default=500,
                        help="M, raw round trips; the plumbing does M/5 (default 500)")
    parser.add_argument("--chunk", type=int, default=1000, help="events per publish_all (default 1000)")
    args = parser.parse_args(argv)
    require_positive(parser, args, "messages", "roundtrips", "chunk")
    return run_benchmark(args, measure, render)


if __name__ == "__main__":
    sys.exit(main())
