"""What durability costs on the local broker: Tansu on SeaweedFS (the run command's default)
against Tansu in memory, both started by this run and measured phase by phase side by side, and
how long Tansu on SeaweedFS takes to come back after a crash or a stop.

    .venv/bin/python -m bench.broker_durability [--messages N] [--producers P] [--single S]
                                                [--restarts R] [--json]

Both brokers are started by the run (free ports, a temporary data directory that is deleted at
the end) and only their own processes are signalled. Every producer is the project's
(`make_producer`: idempotent, acks=all, linger 1 ms). Progress goes to stderr; the table (or with
--json, one JSON object) to stdout. Every loop is bounded in time; a phase that runs out of time
aborts the run with exit code 1.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError

from bench.harness import (
    KEYS,
    PARTITIONS,
    REPLICATION,
    VALUE_BYTES,
    BenchTimeout,
    Deadline,
    Run,
    Table,
    cli,
    fmt_s,
    latency_summary_ms,
    median_run,
    progress,
    rate,
    ratio,
    raw_consumer,
    read_all,
    require_positive,
    run_benchmark,
    tansu_version,
    weed_version,
)
from deploy.localbroker import LocalBroker, wait_for_kafka
from shared.kafka.admin import ensure_topics
from shared.kafka.producer import make_producer

STORAGES = ("memory", "seaweedfs")
# Pipelined produce and the consume rates are short: median of this many runs, each on a topic
# of its own.
REPEATS = 3
# The fetch waits compared: kafka-python's default (and the one catch-up readers use) and the
# project's processors' (tests on the in-memory broker use 50).
FETCH_WAITS_MS = (500, 50)
# After a restart, "read everything" uses the wait that catches up fastest on Tansu.
CATCH_UP_WAIT_MS = 500


def produce_limit(n: int) -> float:
    return 60.0 + n * 0.02  # about 280 idempotent msg/s is the floor on SeaweedFS


def consume_limit(n: int) -> float:
    return 60.0 + n * 0.01


RESTART_LIMIT_S = 90.0


# --- records ---------------------------------------------------------------------------------

KEY_LIST = [f"branch-{i:02d}".encode() for i in range(KEYS)]
FILLER = os.urandom(VALUE_BYTES)


def value(i: int) -> bytes:
    return f"{i:010d}".encode() + FILLER[10:]


@dataclass
class Side:
    """One broker with what this run wrote to it: topic -> records sent (every send was
    acknowledged; an acknowledgement at offset -1 is counted apart, see ProduceRun)."""

    storage: str
    broker: LocalBroker
    prefix: str
    written: dict[str, int] = field(default_factory=dict)

    @property
    def bootstrap(self) -> str:
        return self.broker.bootstrap

    def topic(self, name: str) -> str:
        return f"{self.prefix}{name}"


def new_topics(side: Side, names: list[str]) -> list[str]:
    topics = [side.topic(n) for n in names]
    ensure_topics(side.bootstrap, topics, PARTITIONS, REPLICATION)
    for topic in topics:
        side.written.setdefault(topic, 0)
    return topics


# --- produce ---------------------------------------------------------------------------------

@dataclass
class ProduceRun:
    messages: int
    seconds: float
    offset_minus_one: int  # Tansu's DUPLICATE_SEQUENCE_NUMBER answer, reported as success
    latencies: list[float]

    def summary(self, producers: int, mode: str) -> dict[str, Any]:
        out: dict[str, Any] = {"messages": self.messages, "producers": producers, "mode": mode,
                               "seconds": round(self.seconds, 4),
                               "rate_per_s": rate(self.messages, self.seconds),
                               "acks_at_offset_minus_one": self.offset_minus_one}
        if self.latencies:
            out["ack_latency"] = latency_summary_ms(self.latencies)
        return out


def produce(side: Side, topic: str, producers: int, per_producer: int, one_at_a_time: bool) -> ProduceRun:
    """`producers` project producers, each in its own thread, send `per_producer` keyed records
    to `topic`: pipelined (send all, flush, check every future) or one at a time
    (send().get(), the ack latency of each). Timed from a common start until the last ack."""
    total = producers * per_producer
    deadline = Deadline(produce_limit(total), f"{side.storage}: produce to {topic}")
    clients = [make_producer(side.bootstrap, f"bench-durability-{i}") for i in range(producers)]
    for client in clients:
        client.partitions_for(topic)  # metadata and InitProducerId before the clock starts
    barrier = threading.Barrier(producers + 1)
    minus_one = [0] * producers
    latencies: list[list[float]] = [[] for _ in range(producers)]
    errors: list[BaseException] = []

    def work(index: int, client: KafkaProducer) -> None:
        try:
            barrier.wait(timeout=30)
            base = index * per_producer
            if one_at_a_time:
                for i in range(per_producer):
                    if deadline.expired():
                        raise BenchTimeout(f"{deadline.what}: {i} of {per_producer} sent by producer {index}")
                    sent = time.perf_counter()
                    meta = client.send(topic, key=KEY_LIST[(base + i) % KEYS], value=value(base + i)).get(
                        timeout=max(0.1, deadline.remaining()))
                    latencies[index].append(time.perf_counter() - sent)
                    minus_one[index] += meta.offset < 0
            else:
                futures = [client.send(topic, key=KEY_LIST[(base + i) % KEYS], value=value(base + i))
                           for i in range(per_producer)]
                client.flush(timeout=deadline.remaining())
                minus_one[index] = sum(f.get(timeout=max(0.1, deadline.remaining())).offset < 0
                                       for f in futures)
        except BaseException as error:  # reported by the main thread
            errors.append(error)

    threads = [threading.Thread(target=work, args=(i, c), name=f"bench-producer-{i}", daemon=True)
               for i, c in enumerate(clients)]
    try:
        for thread in threads:
            thread.start()
        barrier.wait(timeout=30)
        started = time.perf_counter()
        for thread in threads:
            thread.join(timeout=deadline.remaining() + 5)
        elapsed = time.perf_counter() - started
        if any(t.is_alive() for t in threads):
            raise BenchTimeout(f"{deadline.what} did not finish within {deadline.seconds:.0f}s")
        if errors:
            raise RuntimeError(f"{deadline.what} failed: {errors[0]!r}")
    finally:
        for client in clients:
            client.close(timeout=10)
    side.written[topic] = side.written.get(topic, 0) + total
    return ProduceRun(total, elapsed, sum(minus_one), [x for per in latencies for x in per])


# --- consume ---------------------------------------------------------------------------------

def read_written(bootstrap: str, topics: dict[str, int], fetch_max_wait_ms: int, what: str) -> dict[str, Any]:
    """Every record of `topics` from offset 0 until the expected count has arrived, then the
    high-water marks checked against it (bench.harness.read_all). Timed from the first poll."""
    expected = sum(topics.values())
    return read_all(bootstrap, list(topics), expected=expected, fetch_wait_ms=fetch_max_wait_ms, what=what,
                    limit_s=consume_limit(expected), client_id="bench-durability-reader", request_timeout_ms=15_000)


# --- restarts --------------------------------------------------------------------------------

def first_ack(client: KafkaProducer, topic: str, i: int, deadline: Deadline) -> tuple[float | None, str | None]:
    """Send one record and wait for an ack with a real offset; (time of the ack, error)."""
    try:
        meta = client.send(topic, key=KEY_LIST[i % KEYS], value=value(i)).get(
            timeout=max(0.1, deadline.remaining()))
    except KafkaError as error:
        return None, type(error).__name__
    if meta.offset < 0:
        return None, "acknowledged at offset -1"
    return time.perf_counter(), None


def restart(side: Side, kind: str, survivor: KafkaProducer, topic: str, serial: int) -> dict[str, Any]:
    """Take the broker down (kind: 'kill-tansu', 'kill-both', 'stop-both'), bring it back on the
    same data in a thread, and meanwhile ask `survivor` (a producer that was connected before,
    as a relay would be) for an ack. Times are from the kill (or the start of the stop)."""
    broker = side.broker
    deadline = Deadline(RESTART_LIMIT_S, f"{side.storage}: restart ({kind})")
    marks: dict[str, float] = {}
    failure: list[BaseException] = []

    def bring_back() -> None:
        try:
            if kind != "kill-tansu" and broker.store is not None:
                broker.store.start(30.0)
                marks["storage_ready"] = time.perf_counter()
            broker.start_broker(30.0)
            marks["kafka_answers"] = time.perf_counter()
        except BaseException as error:  # reported by the main thread
            failure.append(error)

    t0 = time.perf_counter()
    if kind == "kill-tansu":
        broker.kill_broker()
    elif kind == "kill-both":
        broker.kill_broker()
        broker.kill_storage()
    elif kind == "stop-both":
        broker.stop()  # SIGTERM to each, as the run command's stop does
        marks["stopped"] = time.perf_counter()
    else:
        raise ValueError(kind)
    down = time.perf_counter()
    thread = threading.Thread(target=bring_back, name="bench-restart", daemon=True)
    thread.start()
    acked_at, survivor_error = first_ack(survivor, topic, serial, deadline)
    thread.join(timeout=deadline.remaining())
    if thread.is_alive() or failure:
        raise RuntimeError(f"{deadline.what}: broker did not come back: {failure[0]!r}" if failure
                           else f"{deadline.what}: broker did not come back")
    if acked_at is not None:
        side.written[topic] += 1
    # A producer created after the broker is back, as a process started afterwards would.
    fresh = make_producer(side.bootstrap, "bench-durability-fresh")
    try:
        fresh_ack, fresh_error = first_ack(fresh, topic, serial + 1, deadline)
    finally:
        fresh.close(timeout=10)
    if fresh_ack is None:
        raise RuntimeError(f"{deadline.what}: a new producer got no ack ({fresh_error})")
    side.written[topic] += 1
    read_started = time.perf_counter()
    everything = read_written(side.bootstrap, dict(side.written), CATCH_UP_WAIT_MS,
                          f"{side.storage}: read everything after {kind}")
    read_done = time.perf_counter()

    def since(mark: float | None) -> float | None:
        return None if mark is None else round(mark - t0, 4)

    return {
        "kind": kind,
        "down_s": round(down - t0, 4),
        "storage_ready_s": since(marks.get("storage_ready")),
        "kafka_answers_s": since(marks["kafka_answers"]),
        "survivor_ack_s": since(acked_at),
        "survivor_error": survivor_error,
        "fresh_producer_ack_s": since(fresh_ack),
        "read_everything_s": round(read_done - read_started, 4),
        "everything_read_s": since(read_done),
        "records_read": everything["messages"],
        "read_rate_per_s": everything["rate_per_s"],
    }


def memory_restart(side: Side) -> dict[str, Any]:
    """For context: Tansu in memory, SIGKILLed and started again, comes back empty."""
    t0 = time.perf_counter()
    side.broker.kill_broker()
    side.broker.start_broker(30.0)
    answers = time.perf_counter() - t0
    consumer = raw_consumer(side.bootstrap, "bench-durability-reader", CATCH_UP_WAIT_MS)
    try:
        left = sorted(t for t in consumer.topics() if t.startswith(side.prefix))
    finally:
        consumer.close()
    return {"kind": "kill-tansu", "kafka_answers_s": round(answers, 4), "bench_topics_left": len(left),
            "records_before": sum(side.written.values())}


# --- the run ---------------------------------------------------------------------------------

def both(sides: dict[str, Side], what: str, measure: Callable[[Side], dict[str, Any]]) -> dict[str, Any]:
    out = {}
    for storage, side in sides.items():
        progress(f"{storage}: {what}")
        out[storage] = measure(side)
        rate = out[storage].get("rate_per_s")
        if rate is not None:
            progress(f"  {rate:,.0f} msg/s")
    return out


def measure_sides(run: Run) -> dict[str, Any]:
    args, workdir = run.args, run.workdir
    n, producers, single, restarts = args.messages, args.producers, args.single, args.restarts
    sides: dict[str, Side] = {}
    result: dict[str, Any] = {"start": {}}
    try:
        for storage in STORAGES:
            progress(f"starting Tansu on {storage} (empty)")
            data_dir = None if storage == "memory" else workdir / storage
            log_dir = None if storage == "memory" else workdir / f"{storage}-logs"
            started = time.perf_counter()
            broker = LocalBroker(storage=storage, data_dir=data_dir, log_dir=log_dir)
            sides[storage] = Side(storage, broker, f"bench{uuid.uuid4().hex[:8]}.")
            broker.start(30.0)
            result["start"][storage] = {"seconds": round(time.perf_counter() - started, 4)}
        for side in sides.values():
            wait_for_kafka(side.bootstrap, 30)

        # 1. One producer, pipelined: a relay publishing a chunk.
        def pipelined(side: Side) -> dict[str, Any]:
            runs = []
            for topic in new_topics(side, [f"bulk-{r}" for r in range(REPEATS)]):
                runs.append(produce(side, topic, 1, n, one_at_a_time=False).summary(1, "pipelined"))
            return median_run(runs)
        result["produce_pipelined"] = both(sides, f"1 producer, {n} records pipelined (median of {REPEATS})",
                                           pipelined)

        # 2. P producers at once, pipelined: several relays publishing.
        per = max(1, n // producers)
        result["produce_concurrent"] = both(
            sides, f"{producers} producers x {per} records pipelined",
            lambda side: produce(side, new_topics(side, ["concurrent"])[0], producers, per,
                                 one_at_a_time=False).summary(producers, "pipelined"))

        # 3. One at a time: every record is its own produce request (and its own batch).
        result["produce_single"] = both(
            sides, f"1 producer, {single} records one at a time (send().get())",
            lambda side: produce(side, new_topics(side, ["single"])[0], 1, single,
                                 one_at_a_time=True).summary(1, "one at a time"))
        per_single = max(1, single // 3)
        result["produce_single_concurrent"] = both(
            sides, f"{producers} producers x {per_single} records one at a time",
            lambda side: produce(side, new_topics(side, ["single-concurrent"])[0], producers, per_single,
                                 one_at_a_time=True).summary(producers, "one at a time"))

        # 4. Consume: a log of few large batches, and a log of one record per batch.
        for wait in FETCH_WAITS_MS:
            result[f"consume_bulk_{wait}"] = both(
                sides, f"read {n} records in large batches, fetch_max_wait_ms={wait} (median of {REPEATS})",
                lambda side, wait=wait: median_run([
                    read_written(side.bootstrap, {side.topic(f"bulk-{r}"): side.written[side.topic(f"bulk-{r}")]},
                             wait, f"{side.storage}: read bulk-{r}") for r in range(REPEATS)]))
        for wait in FETCH_WAITS_MS:
            result[f"consume_batches_{wait}"] = both(
                sides, f"read the one-record batches, fetch_max_wait_ms={wait}",
                lambda side, wait=wait: read_written(
                    side.bootstrap, {side.topic("single-concurrent"): side.written[side.topic("single-concurrent")]},
                    wait, f"{side.storage}: read single-concurrent"))

        # 5. Restarts on SeaweedFS (memory only for context: it comes back empty).
        durable = sides["seaweedfs"]
        restart_topic = new_topics(durable, ["restart"])[0]
        # The project's producer configuration unchanged, as a relay's.
        survivor = make_producer(durable.bootstrap, "bench-durability-survivor")
        serial = 0
        try:
            first_ack(survivor, restart_topic, serial, Deadline(30, "survivor's first ack"))
            durable.written[restart_topic] += 1
            kinds = ["kill-tansu"] * restarts + ["kill-both", "stop-both"]
            result["restarts"] = []
            for kind in kinds:
                serial += 10
                progress(f"seaweedfs: restart ({kind}), {sum(durable.written.values())} records on the log")
                outcome = restart(durable, kind, survivor, restart_topic, serial)
                progress(f"  Kafka answers {outcome['kafka_answers_s']:.2f} s, survivor ack "
                         f"{outcome['survivor_ack_s'] if outcome['survivor_ack_s'] is not None else '-'} s, "
                         f"all {outcome['records_read']} read {outcome['everything_read_s']:.2f} s after the kill")
                result["restarts"].append(outcome)
        finally:
            survivor.close(timeout=10)
        progress("memory: restart (kill-tansu), for context")
        result["memory_restart"] = memory_restart(sides["memory"])
        result["records_written"] = {s: sum(side.written.values()) for s, side in sides.items()}
        return result
    finally:
        for side in sides.values():
            side.broker.stop()


# --- report ------------------------------------------------------------------------------------

PHASES = [
    ("produce_pipelined", "produce, 1 producer, pipelined (median of 3)"),
    ("produce_concurrent", "produce, {P} producers, pipelined"),
    ("produce_single", "produce, 1 producer, one at a time"),
    ("produce_single_concurrent", "produce, {P} producers, one at a time"),
    ("consume_bulk_500", "consume, large batches, fetch wait 500 ms (median of 3)"),
    ("consume_bulk_50", "consume, large batches, fetch wait 50 ms (median of 3)"),
    ("consume_batches_500", "consume, one record per batch, fetch wait 500 ms"),
    ("consume_batches_50", "consume, one record per batch, fetch wait 50 ms"),
]


def ratios(result: dict[str, Any]) -> dict[str, float | None]:
    return {key: ratio(result[key]["seaweedfs"]["rate_per_s"], result[key]["memory"]["rate_per_s"])
            for key, _ in PHASES}


def measure(run: Run) -> dict[str, Any]:
    args = run.args
    load_before = os.getloadavg()
    result = measure_sides(run)
    return {
        "machine": {"load_before": " ".join(f"{x:.2f}" for x in load_before),
                    "load_after": " ".join(f"{x:.2f}" for x in os.getloadavg()),
                    "tansu": tansu_version(), "weed": weed_version()},
        "params": {"messages": args.messages, "producers": args.producers, "single": args.single,
                   "restarts": args.restarts, "partitions": PARTITIONS, "value_bytes": VALUE_BYTES,
                   "keys": KEYS, "repeats": REPEATS, "catch_up_fetch_wait_ms": CATCH_UP_WAIT_MS},
        "result": result,
        "ratios": ratios(result),
    }


def render(report: dict[str, Any]) -> str:
    ctx, p, res, rat = report["machine"], report["params"], report["result"], report["ratios"]
    table = Table("broker durability", None, width=58)
    table.lines[0] = f"samenveilig broker durability, {ctx['date']}"
    table.header("machine", f"{ctx['cpu_count']} CPUs, load average {ctx['load_before']} before, "
                            f"{ctx['load_after']} after; Python {ctx['python']}, kafka-python {ctx['kafka_python']}")
    table.header("broker", f"{ctx['tansu']}, started by this run: storage=memory and storage=seaweedfs ({ctx['weed']})")
    table.header("sizes", f"N={p['messages']}, P={p['producers']} producers, S={p['single']} one at a time; "
                          f"{PARTITIONS} partitions, {VALUE_BYTES}-byte values, {KEYS} keys; make_producer "
                          "(idempotent, acks=all, linger 1 ms)")
    table.text("", f"  {'RATES':<58}{'memory':>14}{'seaweedfs':>14}{'sw/mem':>9}")
    for key, label in PHASES:
        mem, sw = res[key]["memory"], res[key]["seaweedfs"]
        table.text(f"  {label.format(P=p['producers']):<58}{mem['rate_per_s']:>8,.0f} msg/s"
                   f"{sw['rate_per_s']:>8,.0f} msg/s{rat[key]:>9.3f}")
        extra = []
        if "ack_latency" in mem:
            lm, ls = mem["ack_latency"], sw["ack_latency"]
            extra.append(f"ack p50 {lm['p50_ms']:.1f} / {ls['p50_ms']:.1f} ms, p99 {lm['p99_ms']:.1f} / "
                         f"{ls['p99_ms']:.1f} ms")
        extra.append(f"{sw['messages']} msgs: {mem['seconds']:.2f} s / {sw['seconds']:.2f} s")
        if "runs" in sw:
            extra.append("seaweedfs runs " + " / ".join(f"{r:,.0f}" for r in sw["runs"]))
        minus = sum(res[key][s].get("acks_at_offset_minus_one", 0) for s in STORAGES)
        if minus:
            extra.append(f"{minus} acks at offset -1")
        table.text(f"      {'; '.join(extra)}")
    table.text("", f"  {'START (empty data)':<58}{fmt_s(res['start']['memory']['seconds']):>14}"
                   f"{fmt_s(res['start']['seaweedfs']['seconds']):>14}")
    table.section("RESTARTS OF TANSU ON SEAWEEDFS (seconds from the kill, or from the start of the stop)")
    table.text(f"  {'kind':<12}{'down':>7}{'storage':>9}{'Kafka':>8}{'survivor':>10}{'new prod':>10}"
               f"{'read all':>10}{'records':>9}{'read rate':>11}",
               f"  {'':<12}{'':>7}{'ready':>9}{'answers':>8}{'ack':>10}{'ack':>10}{'done':>10}{'':>9}{'msg/s':>11}")

    def secs(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}"

    for r in res["restarts"]:
        survivor = secs(r["survivor_ack_s"]) if r["survivor_error"] is None else r["survivor_error"][:9]
        table.text(f"  {r['kind']:<12}{r['down_s']:>7.2f}{secs(r['storage_ready_s']):>9}"
                   f"{r['kafka_answers_s']:>8.2f}{survivor:>10}{r['fresh_producer_ack_s']:>10.2f}"
                   f"{r['everything_read_s']:>10.2f}{r['records_read']:>9}{r['read_rate_per_s']:>11,.0f}")
    mr = res["memory_restart"]
    table.text(f"  memory, for context: Kafka answers {mr['kafka_answers_s']:.2f} s after a kill; "
               f"{mr['bench_topics_left']} of the run's topics left ({mr['records_before']} records before)",
               "", "note: survivor = a producer connected before the kill (as a relay is); new prod = a producer",
               f"      created once Kafka answers; read all = a new consumer (no group, fetch wait {CATCH_UP_WAIT_MS} "
               "ms) has read", "      every record this run wrote, checked against the high-water marks.")
    return table.render(report)


def main(argv: list[str] | None = None) -> int:
    # No --bootstrap: the run starts (and kills) its own two brokers.
    parser = cli("bench.broker_durability", __doc__, broker=False)
    parser.add_argument("--messages", type=int, default=5000,
                        help="N, records per pipelined produce run (default 5000)")
    parser.add_argument("--producers", type=int, default=10, help="P, concurrent producers (default 10)")
    parser.add_argument("--single", type=int, default=300,
                        help="S, records sent one at a time by one producer; P producers send S/3 "
                        "each (default 300)")
    parser.add_argument("--restarts", type=int, default=3, help="R, Tansu-only kills (default 3)")
    args = parser.parse_args(argv)
    require_positive(parser, args, "messages", "producers", "single", "restarts")
    return run_benchmark(args, measure, render, broker=False, failures=(KafkaError,))


if __name__ == "__main__":
    sys.exit(main())
