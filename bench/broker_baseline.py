"""Broker baseline: what the broker and kafka-python do on their own, and what is left of it
after the project's plumbing (envelope, sealing, idempotent publisher, the access processor's
effectively-once ConsumerRunner on SQLite) - measured in one run, so the ratios compare like
with like on the same machine and broker.

    .venv/bin/python -m bench.broker_baseline [--messages N] [--roundtrips M] [--bootstrap HOST:PORT]
                                              [--chunk C] [--json]

The broker: --bootstrap, else KAFKA_BOOTSTRAP_SERVERS, else a local in-memory Tansu started
(and stopped) by this run. Progress goes to stderr; the table (or with --json, one JSON object)
to stdout. Every loop is bounded in time; a phase that runs out of time aborts the run.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kafka
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from sqlalchemy import func, select

from bench.common import BenchTimeout, Deadline, Progress, latency_summary_ms, ratio
from deploy.localbroker import LocalBroker, tansu_binary, wait_for_kafka
from services.access import store
from services.access.bootstrap import build, build_runner
from services.access.settings import AccessSettings
from shared.contracts.envelope import EventCodec
from shared.contracts.events import StaffDeparted, StaffJoined, StaffRole
from shared.contracts.topics import Topic, TopicNames
from shared.crypto import SqlKeyStore, new_master_key
from shared.db import make_engine
from shared.kafka.admin import ensure_topics
from shared.kafka.producer import EventPublisher, make_producer
from shared.settings import CommonSettings

PARTITIONS = 3
REPLICATION = 1
VALUE_BYTES = 250
# Distinct record keys (branches): the project keys registry events by branch, so both sides
# spread their records over the partitions by the same kind of key.
BRANCHES = 30
# Round trips run first unmeasured (connections, metadata, first fetch session).
WARMUP = 5
# How often the plumbing round trip looks for its row in the access database.
DB_POLL_INTERVAL_S = 0.001
# The raw baseline's producer: plain kafka-python with acks=all and the same linger as
# make_producer. make_producer adds idempotence (and retries); that cost counts as plumbing.
RAW_PRODUCER_CONFIG: dict[str, Any] = {"acks": "all", "linger_ms": 1}

progress = Progress()


# --- time limits ---------------------------------------------------------------------------

def produce_limit(n: int) -> float:
    return 60.0 + n * 0.01


def consume_limit(n: int) -> float:
    return 60.0 + n * 0.005


def apply_limit(n: int) -> float:
    return 120.0 + n * 0.05


def roundtrip_limit(count: int) -> float:
    return 30.0 + count * 2.0


SINGLE_ROUNDTRIP_LIMIT_S = 15.0


# --- the broker ------------------------------------------------------------------------------

@dataclass
class Broker:
    bootstrap: str
    kind: str
    local: LocalBroker | None = None


def tansu_version() -> str:
    try:
        out = subprocess.run([str(tansu_binary()), "--version"], capture_output=True, text=True,
                             timeout=10, check=False)
        return out.stdout.strip() or "tansu (version unknown)"
    except (OSError, subprocess.TimeoutExpired):
        return "tansu (version unknown)"


def open_broker(bootstrap: str | None) -> Broker:
    if bootstrap:
        wait_for_kafka(bootstrap, timeout_s=30)
        return Broker(bootstrap, "external (--bootstrap)")
    env_bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if env_bootstrap:
        wait_for_kafka(env_bootstrap, timeout_s=30)
        return Broker(env_bootstrap, "external (KAFKA_BOOTSTRAP_SERVERS)")
    local = LocalBroker(storage="memory").start()
    return Broker(local.bootstrap, f"{tansu_version()} (local, storage=memory, started by this run)",
                  local)


def wait_for_partitions(client: KafkaConsumer, topic: str, deadline: Deadline) -> list[TopicPartition]:
    while True:
        partitions = client.partitions_for_topic(topic)
        if partitions:
            return [TopicPartition(topic, p) for p in sorted(partitions)]
        deadline.check(f"metadata for {topic}")
        time.sleep(0.1)


# The fetch wait the project's processors use, so raw and plumbing round trips compare alike.
FETCH_MAX_WAIT_MS = CommonSettings.model_fields["consumer_fetch_max_wait_ms"].default


def raw_consumer(bootstrap: str, client_id: str) -> KafkaConsumer:
    # No group: manual assignment, nothing committed. Fetch settings as in the ConsumerRunner.
    return KafkaConsumer(bootstrap_servers=bootstrap, client_id=client_id, group_id=None,
                         enable_auto_commit=False, auto_offset_reset="earliest",
                         fetch_max_wait_ms=FETCH_MAX_WAIT_MS)


# --- raw baseline ----------------------------------------------------------------------------

def raw_produce(producer: KafkaProducer, topic: str, n: int) -> dict[str, Any]:
    deadline = Deadline(produce_limit(n), "raw produce")
    keys = [str(uuid.uuid4()).encode() for _ in range(BRANCHES)]
    filler = os.urandom(VALUE_BYTES)
    values = [f"{i:010d}".encode() + filler[10:] for i in range(n)]
    producer.partitions_for(topic)  # metadata before the clock starts
    started = time.perf_counter()
    futures = []
    for i, value in enumerate(values):
        if i % 1000 == 0:
            deadline.check(f"{i} sent")
        futures.append(producer.send(topic, key=keys[i % BRANCHES], value=value))
    producer.flush(timeout=deadline.remaining())
    for future in futures:
        future.get(timeout=max(0.1, deadline.remaining()))  # raises if any record failed
    elapsed = time.perf_counter() - started
    return {"messages": n, "seconds": round(elapsed, 4), "rate_per_s": round(n / elapsed, 1),
            "value_bytes": VALUE_BYTES}


def raw_consume(bootstrap: str, topic: str, n: int) -> dict[str, Any]:
    deadline = Deadline(consume_limit(n), "raw consume")
    consumer = raw_consumer(bootstrap, "bench-raw-consumer")
    try:
        assigned = wait_for_partitions(consumer, topic, deadline)
        consumer.assign(assigned)
        for tp in assigned:
            consumer.seek(tp, 0)
        received = 0
        payload = 0
        started = time.perf_counter()
        while received < n:
            deadline.check(f"{received} of {n} received")
            for records in consumer.poll(timeout_ms=200).values():
                received += len(records)
                payload += sum(len(r.value) for r in records)
        elapsed = time.perf_counter() - started
        # Caught up by the fetch responses' high-water marks, never ListOffsets (Tansu defect 1).
        high_water = sum(consumer.highwater(tp) or 0 for tp in assigned)
        return {"messages": received, "seconds": round(elapsed, 4),
                "rate_per_s": round(received / elapsed, 1), "high_water_total": high_water,
                "bytes": payload}
    finally:
        consumer.close()


class Receiver(threading.Thread):
    """A consumer already positioned at the end of the round-trip topic, polling all the time
    and stamping each record as it arrives."""

    def __init__(self, bootstrap: str, topic: str, deadline: Deadline) -> None:
        super().__init__(name="bench-raw-receiver", daemon=True)
        self.arrivals: queue.Queue[tuple[bytes, float]] = queue.Queue()
        self.stop_event = threading.Event()
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self._servers = bootstrap
        self._topic = topic
        self._deadline = deadline

    def run(self) -> None:
        try:
            consumer = raw_consumer(self._servers, "bench-raw-receiver")
            try:
                assigned = wait_for_partitions(consumer, self._topic, self._deadline)
                consumer.assign(assigned)
                for tp in assigned:
                    consumer.seek(tp, 0)  # a fresh, empty topic: its start is its end
                consumer.poll(timeout_ms=100)
                self.ready.set()
                while not self.stop_event.is_set() and not self._deadline.expired():
                    for records in consumer.poll(timeout_ms=200).values():
                        now = time.perf_counter()
                        for record in records:
                            self.arrivals.put((record.value[:10], now))
            finally:
                consumer.close()
        except BaseException as error:  # reported by the main thread
            self.error = error
            self.ready.set()


def raw_roundtrips(producer: KafkaProducer, bootstrap: str, topic: str, m: int) -> dict[str, Any]:
    deadline = Deadline(roundtrip_limit(m + WARMUP), "raw round trips")
    receiver = Receiver(bootstrap, topic, deadline)
    receiver.start()
    try:
        if not receiver.ready.wait(timeout=deadline.remaining()) or receiver.error:
            raise RuntimeError(f"round-trip receiver did not start: {receiver.error!r}")
        key = str(uuid.uuid4()).encode()
        filler = os.urandom(VALUE_BYTES)
        producer.partitions_for(topic)
        latencies: list[float] = []
        for i in range(WARMUP + m):
            deadline.check(f"{i} round trips done")
            marker = f"{i:010d}".encode()
            sent = time.perf_counter()
            producer.send(topic, key=key, value=marker + filler[10:]).get(timeout=SINGLE_ROUNDTRIP_LIMIT_S)
            arrived = wait_for_arrival(receiver, marker, deadline)
            if i >= WARMUP:
                latencies.append(arrived - sent)
        return latency_summary_ms(latencies)
    finally:
        receiver.stop_event.set()
        receiver.join(timeout=10)


def raw_roundtrips_sequential(producer: KafkaProducer, bootstrap: str, topic: str, m: int) -> dict[str, Any]:
    """The same pairs, but the consumer polls only once the send is acknowledged, in the same
    thread: no fetch is waiting at the broker when the record lands."""
    deadline = Deadline(roundtrip_limit(m + WARMUP), "raw sequential round trips")
    consumer = raw_consumer(bootstrap, "bench-raw-sequential")
    try:
        assigned = wait_for_partitions(consumer, topic, deadline)
        consumer.assign(assigned)
        for tp in assigned:
            consumer.seek(tp, 0)  # a fresh, empty topic
        consumer.poll(timeout_ms=100)
        key = str(uuid.uuid4()).encode()
        filler = os.urandom(VALUE_BYTES)
        producer.partitions_for(topic)
        latencies: list[float] = []
        for i in range(WARMUP + m):
            deadline.check(f"{i} round trips done")
            marker = f"{i:010d}".encode()
            sent = time.perf_counter()
            producer.send(topic, key=key, value=marker + filler[10:]).get(timeout=SINGLE_ROUNDTRIP_LIMIT_S)
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


def wait_for_arrival(receiver: Receiver, marker: bytes, deadline: Deadline) -> float:
    limit = time.monotonic() + min(SINGLE_ROUNDTRIP_LIMIT_S, deadline.remaining())
    while True:
        remaining = limit - time.monotonic()
        if remaining <= 0 or receiver.error:
            raise BenchTimeout(f"record {marker.decode()} not received ({receiver.error!r})")
        try:
            got, at = receiver.arrivals.get(timeout=min(remaining, 1.0))
        except queue.Empty:
            continue
        if got == marker:
            return at


# --- through the project's plumbing ----------------------------------------------------------

@dataclass
class Plumbing:
    settings: AccessSettings
    workdir: Path
    topic: str


def staff_joined_events(n: int) -> list[StaffJoined]:
    branches = [uuid.uuid4() for _ in range(BRANCHES)]
    return [StaffJoined(branch_id=branches[i % BRANCHES], staff_id=uuid.uuid4(), role=StaffRole.IB_ER,
                        name=f"Fatima el Amrani {i}", email=f"f.elamrani{i}@school.example")
            for i in range(n)]


def plumbing_produce(publisher: EventPublisher, producer: KafkaProducer, codec: EventCodec,
                     topic: str, events: list[StaffJoined], chunk: int) -> dict[str, Any]:
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
        encoded = [codec.encode(event, event_id=str(uuid.uuid4()), recorded_at=recorded_at)
                   for event in events[start:start + chunk]]
        t1 = time.perf_counter()
        publisher.publish_all(encoded, timeout_s=max(1.0, deadline.remaining()))
        t2 = time.perf_counter()
        encode_s += t1 - t0
        publish_s += t2 - t1
        value_bytes += sum(len(e.value) for e in encoded)
    elapsed = time.perf_counter() - started
    return {"messages": n, "seconds": round(elapsed, 4), "rate_per_s": round(n / elapsed, 1),
            "encode_seconds": round(encode_s, 4), "encode_rate_per_s": round(n / encode_s, 1),
            "publish_seconds": round(publish_s, 4), "publish_rate_per_s": round(n / publish_s, 1),
            "chunk": chunk, "avg_value_bytes": round(value_bytes / n, 1)}


def wait_for(condition: Callable[[], bool], deadline: Deadline, detail: Callable[[], str],
             interval_s: float, thread: threading.Thread) -> float:
    while not condition():
        if not thread.is_alive():
            raise RuntimeError(f"the access processor stopped ({detail()})")
        deadline.check(detail())
        time.sleep(interval_s)
    return time.perf_counter()


def plumbing_roundtrips(publisher: EventPublisher, codec: EventCodec, database_url: str,
                        staff: list[StaffJoined], count: int, thread: threading.Thread) -> dict[str, Any]:
    deadline = Deadline(roundtrip_limit(count + WARMUP), "plumbing round trips")
    engine = make_engine(database_url)  # a reader of its own, as the access API would be
    departures = store.staff_departures
    try:
        latencies: list[float] = []
        for i in range(WARMUP + count):
            deadline.check(f"{i} round trips done")
            joined = staff[i % len(staff)]
            event_id = str(uuid.uuid4())
            encoded = codec.encode(StaffDeparted(branch_id=joined.branch_id, staff_id=joined.staff_id),
                                   event_id=event_id, recorded_at=datetime.now(UTC))
            query = select(departures.c.id).where(departures.c.event_id == event_id)

            def visible(query: Any = query) -> bool:
                with engine.connect() as connection:
                    return connection.execute(query).first() is not None

            sent = time.perf_counter()
            publisher.publish(encoded, timeout_s=SINGLE_ROUNDTRIP_LIMIT_S)
            single = Deadline(min(SINGLE_ROUNDTRIP_LIMIT_S, deadline.remaining()),
                              f"plumbing round trip {i}")
            seen = wait_for(visible, single, lambda: "departure row not visible",
                            DB_POLL_INTERVAL_S, thread)
            if i >= WARMUP:
                latencies.append(seen - sent)
        return latency_summary_ms(latencies)
    finally:
        engine.dispose()


def run_plumbing(bootstrap: str, n: int, roundtrips: int, chunk: int) -> dict[str, Any]:
    prefix = f"bench{uuid.uuid4().hex[:8]}."
    workdir = Path(tempfile.mkdtemp(prefix="samenveilig-bench-"))
    result: dict[str, Any] = {"topic_prefix": prefix}
    publisher: EventPublisher | None = None
    runner = None
    thread: threading.Thread | None = None
    try:
        settings = AccessSettings(
            kafka_bootstrap_servers=bootstrap, topic_prefix=prefix,
            database_url=f"sqlite:///{workdir / 'access.sqlite'}",
            keystore_url=f"sqlite:///{workdir / 'keys.sqlite'}",
            master_key=new_master_key(), consumer_group=f"{prefix}access",
            topic_partitions=PARTITIONS, topic_replication=REPLICATION)
        deps = build(settings)  # migrates the access database; its codec decodes with SqlKeyStore
        topics = TopicNames(prefix)
        topic = topics(Topic.REGISTRY_EVENTS)
        ensure_topics(bootstrap, [topic, f"{topic}.dlq"], PARTITIONS, REPLICATION)
        # The publishing side (the registry, in production) seals with keys in the same key
        # store file the processor reads: a SqlKeyStore of its own on that SQLite file.
        writer_keys = SqlKeyStore(make_engine(settings.keystore_url), settings.master_key_bytes())
        codec = EventCodec(writer_keys, source="/samenveilig/registry", topics=topics)
        producer = make_producer(bootstrap, "bench-plumbing-publisher")
        publisher = EventPublisher(producer)

        events = staff_joined_events(n)
        progress(f"plumbing: producing {n} StaffJoined events (encode + publish_all in chunks of {chunk})")
        result["produce"] = plumbing_produce(publisher, producer, codec, topic, events, chunk)
        progress(f"  {result['produce']['rate_per_s']:.0f} msg/s")

        progress("plumbing: access processor consuming and applying them (joins a group first)")
        runner = build_runner(deps)
        deadline = Deadline(apply_limit(n), "plumbing consume+apply")
        thread = threading.Thread(target=runner.run, name="access-processor", daemon=True)
        the_runner = runner
        started = time.perf_counter()
        thread.start()
        first = wait_for(lambda: the_runner.stats.applied > 0, deadline,
                         lambda: "no event applied yet", 0.002, thread)
        applied_at_first = runner.stats.applied
        done = wait_for(lambda: the_runner.stats.applied >= n, deadline,
                        lambda: f"{the_runner.stats.applied} of {n} applied", 0.01, thread)
        stats = runner.stats
        if stats.dead_lettered:
            raise RuntimeError(f"{stats.dead_lettered} events were dead-lettered: {stats.reasons}")
        with deps.engine.connect() as connection:
            rows = connection.execute(select(func.count()).select_from(store.staff)).scalar_one()
        if rows != n:
            raise RuntimeError(f"{rows} staff rows in the access database, expected {n}")
        measured = n - applied_at_first
        result["consume_apply"] = {
            "messages": n, "seconds_after_first": round(done - first, 4),
            "rate_per_s": round(measured / (done - first), 1) if done > first else None,
            "seconds_from_start": round(done - started, 4), "batches": stats.batches,
            "duplicates": stats.duplicates, "rows_verified": rows,
        }
        result["group_join"] = {"seconds": round(first - started, 4),
                                "session_timeout_ms": settings.consumer_session_timeout_ms}
        progress(f"  {result['consume_apply']['rate_per_s']:.0f} msg/s after a "
                 f"{result['group_join']['seconds']:.2f}s group join")

        progress(f"plumbing: {roundtrips} round trips, publish StaffDeparted -> row in the access DB")
        result["roundtrip"] = plumbing_roundtrips(publisher, codec, settings.database_url, events,
                                                  roundtrips, thread)
        progress(f"  p50 {result['roundtrip']['p50_ms']:.1f} ms")
        return result
    finally:
        if runner is not None and thread is not None:
            runner.stop_event.set()
            thread.join(timeout=20)
            if thread.is_alive():
                progress("warning: the access processor did not stop within 20s")
        if publisher is not None:
            publisher.close()
        shutil.rmtree(workdir, ignore_errors=True)


def run_raw(bootstrap: str, n: int, roundtrips: int) -> dict[str, Any]:
    prefix = f"bench{uuid.uuid4().hex[:8]}."
    topic, rt_topic, seq_topic = f"{prefix}raw", f"{prefix}raw-roundtrip", f"{prefix}raw-sequential"
    ensure_topics(bootstrap, [topic, rt_topic, seq_topic], PARTITIONS, REPLICATION)
    producer = KafkaProducer(bootstrap_servers=bootstrap, client_id="bench-raw-producer",
                             **RAW_PRODUCER_CONFIG)
    result: dict[str, Any] = {"topic_prefix": prefix, "producer_config": dict(RAW_PRODUCER_CONFIG)}
    try:
        progress(f"raw: producing {n} records of {VALUE_BYTES} bytes to {topic}")
        result["produce"] = raw_produce(producer, topic, n)
        progress(f"  {result['produce']['rate_per_s']:.0f} msg/s")
        progress("raw: consuming them (manual assignment, no group)")
        result["consume"] = raw_consume(bootstrap, topic, n)
        if result["consume"]["messages"] != n:
            raise RuntimeError(f"consumed {result['consume']['messages']} records, expected {n}")
        progress(f"  {result['consume']['rate_per_s']:.0f} msg/s")
        progress(f"raw: {roundtrips} round trips, send().get() -> received by a polling consumer")
        result["roundtrip"] = raw_roundtrips(producer, bootstrap, rt_topic, roundtrips)
        progress(f"  p50 {result['roundtrip']['p50_ms']:.1f} ms")
        progress(f"raw: {roundtrips} round trips, polling only after the ack")
        result["roundtrip_sequential"] = raw_roundtrips_sequential(producer, bootstrap, seq_topic, roundtrips)
        progress(f"  p50 {result['roundtrip_sequential']['p50_ms']:.1f} ms")
        return result
    finally:
        producer.close(timeout=10)


# --- report ------------------------------------------------------------------------------------

def machine_context(broker: Broker) -> dict[str, Any]:
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "kafka_python": kafka.__version__,
        "broker": broker.kind,
        "bootstrap": broker.bootstrap,
    }


def fmt_rate(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f} msg/s"


def fmt_ratio(value: float | None, suffix: str = "") -> str:
    return "-" if value is None else f"{value:.3f}{suffix}"


def render(report: dict[str, Any]) -> str:
    ctx, raw, plumb, ratios = report["machine"], report["raw"], report["plumbing"], report["ratios"]
    p = report["params"]
    rp, rc, rr, rs = raw["produce"], raw["consume"], raw["roundtrip"], raw["roundtrip_sequential"]
    pp, pc, pr, pj = plumb["produce"], plumb["consume_apply"], plumb["roundtrip"], plumb["group_join"]
    width = 60
    lines = [
        f"samenveilig broker baseline, {ctx['date']}",
        f"machine   {ctx['cpu_count']} CPUs, Python {ctx['python']}, kafka-python {ctx['kafka_python']}, "
        f"{ctx['platform']}",
        f"broker    {ctx['broker']} at {ctx['bootstrap']}",
        f"sizes     N={p['messages']} messages, {PARTITIONS} partitions, raw round trips={p['roundtrips']}, "
        f"plumbing round trips={p['plumbing_roundtrips']} (+{WARMUP} warm-up each, not counted)",
        "",
        "RAW BASELINE (kafka-python: acks=all, linger 1 ms, no idempotence; "
        f"{VALUE_BYTES}-byte values, {BRANCHES} keys)",
        f"  {'produce':<{width}}{fmt_rate(rp['rate_per_s']):>16}   ({rp['messages']} in {rp['seconds']:.2f} s)",
        f"  {'consume (manual assignment, no group)':<{width}}{fmt_rate(rc['rate_per_s']):>16}   "
        f"({rc['messages']} in {rc['seconds']:.2f} s)",
        f"  {'round trip send().get() -> received by a polling consumer':<{width}}"
        f"p50 {rr['p50_ms']:.2f} ms   p99 {rr['p99_ms']:.2f} ms   max {rr['max_ms']:.2f} ms  (n={rr['count']})",
        f"  {'  same, but polling only after the ack (for context)':<{width}}"
        f"p50 {rs['p50_ms']:.2f} ms   p99 {rs['p99_ms']:.2f} ms   max {rs['max_ms']:.2f} ms  (n={rs['count']})",
        "",
        "PROJECT PLUMBING (StaffJoined: EventCodec, sealed with SqlKeyStore; EventPublisher; "
        "access ConsumerRunner on SQLite)",
        f"  {'produce (encode + publish_all)':<{width}}{fmt_rate(pp['rate_per_s']):>16}   "
        f"({pp['messages']} in {pp['seconds']:.2f} s, chunks of {pp['chunk']}, "
        f"avg value {pp['avg_value_bytes']:.0f} bytes)",
        f"  {'  of which encode (incl. creating each subject key)':<{width}}"
        f"{fmt_rate(pp['encode_rate_per_s']):>16}   ({pp['encode_seconds']:.2f} s)",
        f"  {'  of which publish_all':<{width}}{fmt_rate(pp['publish_rate_per_s']):>16}   "
        f"({pp['publish_seconds']:.2f} s)",
        f"  {'consume+apply (from first applied event)':<{width}}{fmt_rate(pc['rate_per_s']):>16}   "
        f"({pc['messages']} applied, {pc['seconds_after_first']:.2f} s after the first)",
        f"  {'group join (Tansu defect 3: about half the session timeout)':<{width}}"
        f"{pj['seconds']:>12.2f} s     (runner start -> first applied event; "
        f"session timeout {pj['session_timeout_ms']} ms)",
        f"  {'round trip publish StaffDeparted -> row in access DB':<{width}}"
        f"p50 {pr['p50_ms']:.2f} ms   p99 {pr['p99_ms']:.2f} ms   max {pr['max_ms']:.2f} ms  (n={pr['count']})",
        "",
        "RATIOS (plumbing / raw, both measured in this run)",
        f"  {'produce rate':<{width}}{fmt_ratio(ratios['produce']):>16}",
        f"  {'consume+apply rate / raw consume rate':<{width}}{fmt_ratio(ratios['consume']):>16}",
        f"  {'round-trip p50':<{width}}{fmt_ratio(ratios['roundtrip_p50'], ' x'):>16}",
        "",
        "note: a round trip to a consumer that is already polling includes the wait for its fetch in",
        f"      flight at the broker (fetch_max_wait_ms={FETCH_MAX_WAIT_MS}, as the ConsumerRunner uses; Tansu",
        "      answers a waiting fetch after about half of it, defect 5); the poll-after-ack line shows",
        "      the round trip without it.",
        f"run took {report['duration_s']:.1f} s",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.broker_baseline", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=20000, help="N, records per rate (default 20000)")
    parser.add_argument("--roundtrips", type=int, default=500,
                        help="M, raw round trips; the plumbing does M/5 (default 500)")
    parser.add_argument("--bootstrap", help="HOST:PORT of a running broker (default: "
                        "KAFKA_BOOTSTRAP_SERVERS, else a local in-memory Tansu)")
    parser.add_argument("--chunk", type=int, default=1000, help="events per publish_all (default 1000)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = parser.parse_args(argv)
    if args.messages < 1 or args.roundtrips < 1 or args.chunk < 1:
        parser.error("--messages, --roundtrips and --chunk must be positive")
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("kafka").setLevel(logging.CRITICAL)

    started = time.perf_counter()
    plumbing_roundtrips_count = max(1, args.roundtrips // 5)
    progress("starting the broker" if not (args.bootstrap or os.environ.get("KAFKA_BOOTSTRAP_SERVERS"))
             else "connecting to the broker")
    broker = open_broker(args.bootstrap)
    try:
        raw = run_raw(broker.bootstrap, args.messages, args.roundtrips)
        plumbing = run_plumbing(broker.bootstrap, args.messages, plumbing_roundtrips_count, args.chunk)
    except (BenchTimeout, RuntimeError) as error:
        progress(f"benchmark failed: {error}")
        return 1
    finally:
        if broker.local is not None:
            broker.local.stop()
    report = {
        "machine": machine_context(broker),
        "params": {"messages": args.messages, "roundtrips": args.roundtrips,
                   "plumbing_roundtrips": plumbing_roundtrips_count, "chunk": args.chunk,
                   "partitions": PARTITIONS, "value_bytes": VALUE_BYTES, "keys": BRANCHES,
                   "warmup_roundtrips": WARMUP},
        "raw": raw,
        "plumbing": plumbing,
        "ratios": {
            "produce": ratio(plumbing["produce"]["rate_per_s"], raw["produce"]["rate_per_s"]),
            "consume": ratio(plumbing["consume_apply"]["rate_per_s"], raw["consume"]["rate_per_s"]),
            "roundtrip_p50": ratio(plumbing["roundtrip"]["p50_ms"], raw["roundtrip"]["p50_ms"]),
        },
        "duration_s": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(report, indent=2) if args.json else render(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
