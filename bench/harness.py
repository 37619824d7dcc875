"""The benchmarks' shared harness: one command line, one broker, one way to time, wait, read and
write Kafka, and one report (the aligned table on stdout, or with --json one JSON object).

Every benchmark is `main(argv)` = `cli(...)` for its options, then `run_benchmark(args, measure,
render)`: the broker is opened (`--bootstrap`, else KAFKA_BOOTSTRAP_SERVERS, else an in-memory
Tansu this run starts and stops), a temporary directory and a topic prefix `bench<hex>.` are made,
`measure(run)` returns the figures, and `render(report)` turns them into a `Table`. Progress goes
to stderr. Every loop checks a `Deadline`; `--time-limit` caps them all, so a run ends with exit
code 1 instead of hanging. The domain events the benchmarks feed come from `bench.events`.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import logging
import math
import os
import platform
import pstats
import queue
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import kafka
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from deploy.localbroker import WEED, LocalBroker, tansu_binary, wait_for_kafka
from shared.contracts.envelope import EncodedEvent, EventCodec
from shared.contracts.events import Event
from shared.contracts.topics import Topic, TopicNames
from shared.crypto import SqlKeyStore, new_master_key
from shared.db import make_engine
from shared.kafka.admin import ensure_topics
from shared.kafka.producer import EventPublisher
from shared.settings import CommonSettings

T = TypeVar("T")

PARTITIONS = 3
REPLICATION = 1
VALUE_BYTES = 250
# Distinct record keys of the raw records: the project keys registry events by branch.
KEYS = 30
# Round trips and departures run first unmeasured (connections, metadata, first fetch session).
WARMUP = 5
SINGLE_ROUNDTRIP_LIMIT_S = 15.0
# How often a loop asks the database again: a busy loop would take the GIL from the thread it waits for.
POLL_INTERVAL_S = 0.001
# The raw baseline's producer: plain kafka-python with acks=all and the same linger as
# make_producer. make_producer adds idempotence (and retries); that cost counts as plumbing.
RAW_PRODUCER_CONFIG: dict[str, Any] = {"acks": "all", "linger_ms": 1}
# Bulk loading a year of events: batching, as an import would do it.
BULK_PRODUCER_CONFIG: dict[str, Any] = {"acks": "all", "linger_ms": 20, "batch_size": 512 * 1024}
# The consumer settings shared.kafka.log.read_topics uses, so a raw read compares with it.
READ_TOPICS_CONSUMER: dict[str, Any] = {"max_partition_fetch_bytes": 8 * 1024 * 1024,
                                        "fetch_max_bytes": 64 * 1024 * 1024, "max_poll_records": 5000}
# The fetch wait the services run with unless configured otherwise (--fetch-wait-ms changes it
# for both sides of a comparison at once).
DEFAULT_FETCH_WAIT_MS: int = CommonSettings.model_fields["consumer_fetch_max_wait_ms"].default


# --- time limits, summaries, progress --------------------------------------------------------

class BenchTimeout(Exception):
    """A benchmark phase ran past its time limit."""


_run_end: float | None = None  # set by --time-limit: no Deadline ends later


class Deadline:
    """A time limit for one phase; every loop of a benchmark checks one."""

    def __init__(self, seconds: float, what: str) -> None:
        self.what = what
        end = time.monotonic() + seconds
        self.capped = _run_end is not None and _run_end < end
        self._end = _run_end if self.capped and _run_end is not None else end
        self.seconds = self._end - time.monotonic()

    def remaining(self) -> float:
        return max(0.0, self._end - time.monotonic())

    def expired(self) -> bool:
        return time.monotonic() >= self._end

    def check(self, detail: str = "") -> None:
        if self.expired():
            suffix = f" ({detail})" if detail else ""
            limit = "the run's --time-limit" if self.capped else f"{self.seconds:.0f}s"
            raise BenchTimeout(f"{self.what} did not finish within {limit}{suffix}")


def produce_limit(n: int) -> float:
    return 60.0 + n * 0.01


def consume_limit(n: int) -> float:
    return 60.0 + n * 0.005


def apply_limit(n: int) -> float:
    return 120.0 + n * 0.05


def roundtrip_limit(count: int) -> float:
    return 30.0 + count * 2.0


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sequence."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def latency_summary_ms(seconds: Sequence[float]) -> dict[str, Any]:
    """p50 / p99 / max / mean in milliseconds, plus the count."""
    return {
        "count": len(seconds),
        "p50_ms": round(percentile(seconds, 50) * 1000, 3),
        "p99_ms": round(percentile(seconds, 99) * 1000, 3),
        "max_ms": round(max(seconds) * 1000, 3),
        "mean_ms": round(sum(seconds) / len(seconds) * 1000, 3),
    }


def latency_and_rate(seconds: Sequence[float], wall_s: float, digits: int = 1) -> dict[str, Any]:
    """latency_summary_ms of the calls, with the rate of the loop around them (count / wall time)."""
    return {**latency_summary_ms(seconds), "rate_per_s": round(len(seconds) / wall_s, digits),
            "seconds": round(wall_s, 3)}


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return round(numerator / denominator, 4)


def rate(count: int, seconds: float) -> float | None:
    return round(count / seconds, 1) if seconds > 0 else None


def median_run(runs: list[dict[str, Any]], key: str = "rate_per_s") -> dict[str, Any]:
    """The run with the median `key`, with every run's value beside it (`runs`): a short run is
    moved a lot by one stall of the machine."""
    ordered = sorted(runs, key=lambda run: float(run[key]))
    return {**ordered[len(ordered) // 2], "runs": [run[key] for run in runs]}


class Progress:
    """Progress lines on stderr, stamped with the time since the run started."""

    def __init__(self) -> None:
        self.started = time.monotonic()

    def __call__(self, message: str) -> None:
        sys.stderr.write(f"[{time.monotonic() - self.started:7.1f}s] {message}\n")
        sys.stderr.flush()


progress = Progress()


class GcClock:
    """Time spent inside the garbage collector (gc.callbacks), to split it out of each phase."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.collections: Counter[int] = Counter()
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._started
            self.collections[info["generation"]] += 1

    def __enter__(self) -> GcClock:
        gc.callbacks.append(self)
        return self

    def __exit__(self, *_: object) -> None:
        gc.callbacks.remove(self)


GC = GcClock()


def timed(fn: Callable[[], T]) -> tuple[T, float, float]:
    """(result, seconds, seconds of it in the garbage collector: counted while `GC` is entered)."""
    gc_at = GC.seconds
    started = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - started, GC.seconds - gc_at


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def rss_mb() -> float:
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return float("nan")


def crc32c_implementation() -> str:
    """kafka-python checks (and the producer computes) CRC-32C per record batch: in C when the
    `crc32c` package is installed (a dependency since the audit replay), else in pure Python."""
    from kafka.record import util

    return "C (crc32c package)" if getattr(util, "crc32c_c", None) is not None else "pure Python (no crc32c package)"


def profile_top(fn: Callable[[], Any], top: int = 25, sorts: Sequence[str] = ("tottime", "cumulative"),
                title: str = "") -> str:
    """`fn()` under cProfile; the top `top` lines for each sort order, as text for stderr."""
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        fn()
    finally:
        profiler.disable()
    out = io.StringIO()
    if title:
        out.write(f"\n=== cProfile: {title} ===\n")
    stats = pstats.Stats(profiler, stream=out)
    for order in sorts:
        stats.sort_stats(order).print_stats(top)
    return out.getvalue()


# --- the command line ------------------------------------------------------------------------

def cli(prog: str, doc: str | None, *, broker: bool = True, fetch_wait: bool = False) -> argparse.ArgumentParser:
    """The options every benchmark has: --json and --time-limit; with `broker`, --bootstrap; with
    `fetch_wait`, --fetch-wait-ms (the processors' and the raw consumers' fetch wait alike)."""
    parser = argparse.ArgumentParser(prog=f"python -m {prog}", description=doc,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    if broker:
        parser.add_argument("--bootstrap", help="HOST:PORT of a running broker (default: "
                            "KAFKA_BOOTSTRAP_SERVERS, else a local in-memory Tansu started by this run)")
    if fetch_wait:
        parser.add_argument("--fetch-wait-ms", type=int, default=DEFAULT_FETCH_WAIT_MS,
                            help="fetch_max_wait_ms of the processors and of the raw consumers they are "
                                 f"compared with (default: the services' default, {DEFAULT_FETCH_WAIT_MS})")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    parser.add_argument("--time-limit", type=float, metavar="SECONDS",
                        help="end the run (exit code 1) once it has taken this long; every phase also has "
                             "a limit of its own")
    return parser


def require_positive(parser: argparse.ArgumentParser, args: argparse.Namespace, *names: str) -> None:
    bad = [f"--{n.replace('_', '-')}" for n in names if getattr(args, n) < 1]
    if bad:
        parser.error(f"{', '.join(bad)} must be positive")


# --- the broker ------------------------------------------------------------------------------

def _version(command: list[str], pick: Callable[[str], str], unknown: str) -> str:
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=10, check=False)
        return pick(out.stdout) or unknown
    except (OSError, subprocess.TimeoutExpired, IndexError):
        return unknown


def tansu_version() -> str:
    return _version([str(tansu_binary()), "--version"], str.strip, "tansu (version unknown)")


def weed_version() -> str:
    return _version([str(WEED), "version"], lambda out: f"weed {out.split()[2]}", "weed (version unknown)")


@dataclass
class Broker:
    bootstrap: str
    kind: str
    local: LocalBroker | None = None

    def stop(self) -> None:
        """Stops the Tansu this run started; an external broker is left as it is."""
        if self.local is not None:
            self.local.stop()


def open_broker(bootstrap: str | None) -> Broker:
    """--bootstrap, else KAFKA_BOOTSTRAP_SERVERS, else an in-memory Tansu started by this run."""
    for given, kind in ((bootstrap, "external (--bootstrap)"),
                        (os.environ.get("KAFKA_BOOTSTRAP_SERVERS"), "external (KAFKA_BOOTSTRAP_SERVERS)")):
        if given:
            progress("connecting to the broker")
            wait_for_kafka(given, timeout_s=30)
            return Broker(given, kind)
    progress("starting the broker")
    local = LocalBroker(storage="memory").start()
    return Broker(local.bootstrap, f"{tansu_version()} (local, storage=memory, started by this run)", local)


def machine_context(broker: Broker | None) -> dict[str, Any]:
    context: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "kafka_python": kafka.__version__,
    }
    if broker is not None:
        context.update(broker=broker.kind, bootstrap=broker.bootstrap)
    return context


# --- running a benchmark ---------------------------------------------------------------------

@dataclass
class Run:
    """What `measure` gets: the options, the broker, a temporary directory (deleted at the end),
    a fresh topic prefix, a master key for the run's key stores, and the fetch wait."""

    args: argparse.Namespace
    broker: Broker | None
    workdir: Path
    prefix: str = field(default_factory=lambda: f"bench{uuid.uuid4().hex[:8]}.")
    master_key: str = field(default_factory=new_master_key)

    @property
    def bootstrap(self) -> str:
        if self.broker is None:
            raise RuntimeError("this benchmark runs without a broker")
        return self.broker.bootstrap

    @property
    def fetch_wait_ms(self) -> int:
        return int(getattr(self.args, "fetch_wait_ms", DEFAULT_FETCH_WAIT_MS))

    @property
    def topics(self) -> TopicNames:
        return TopicNames(self.prefix)

    def settings(self, cls: type[T], database: str, group: str | None = None, **extra: Any) -> T:
        """A service's settings on SQLite files in the work directory and this run's broker, prefix,
        master key and fetch wait (given explicitly: the environment cannot change them)."""
        return cls(kafka_bootstrap_servers=self.bootstrap, topic_prefix=self.prefix,
                   database_url=f"sqlite:///{self.workdir / database}",
                   keystore_url=f"sqlite:///{self.workdir / 'keys.sqlite'}", master_key=self.master_key,
                   consumer_group=group or f"{self.prefix}{Path(database).stem}", topic_partitions=PARTITIONS,
                   topic_replication=REPLICATION, consumer_fetch_max_wait_ms=self.fetch_wait_ms, **extra)


def setup_logging(quiet: Iterable[str] = ()) -> None:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    for name in quiet:
        logging.getLogger(name).setLevel(logging.ERROR)


def run_benchmark(args: argparse.Namespace, measure: Callable[[Run], dict[str, Any]],
                  render: Callable[[dict[str, Any]], str], *, broker: bool = True,
                  failures: tuple[type[BaseException], ...] = (), quiet: Iterable[str] = ()) -> int:
    """Open the broker, measure, stop the broker, print the report. The report is what `measure`
    returns, with `machine` (merged with any `machine` it returns) and `duration_s` added."""
    global _run_end
    setup_logging(quiet)
    started = time.perf_counter()
    if args.time_limit:
        _run_end = time.monotonic() + args.time_limit
    opened: Broker | None = None
    workdir = Path(tempfile.mkdtemp(prefix="samenveilig-bench-"))
    try:
        if broker:
            opened = open_broker(args.bootstrap)
        figures = measure(Run(args, opened, workdir))
    except (BenchTimeout, RuntimeError, TimeoutError, *failures) as error:
        progress(f"benchmark failed: {type(error).__name__}: {error}")
        return 1
    finally:
        if opened is not None:
            opened.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    report = {"machine": {**machine_context(opened), **figures.pop("machine", {})}, **figures,
              "duration_s": round(time.perf_counter() - started, 1)}
    print(json.dumps(report, indent=2, default=str) if args.json else render(report))
    return 0


# --- the report ------------------------------------------------------------------------------

def fmt_rate(value: float | None, unit: str = "msg/s", digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f} {unit}"


def fmt_ratio(value: float | None, digits: int = 3, suffix: str = "") -> str:
    return "-" if value is None else f"{value:.{digits}f}{suffix}"


def fmt_s(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f} s"


def fmt_latency(summary: dict[str, Any], digits: int = 2, gc_ms: bool = False) -> str:
    """p50 / p99 / max of a latency_summary_ms, and its count (and time in the collector)."""
    tail = f", in gc {summary.get('gc_ms', 0):.0f} ms" if gc_ms else ""
    return (f"p50 {summary['p50_ms']:.{digits}f} ms   p99 {summary['p99_ms']:.{digits}f} ms   "
            f"max {summary['max_ms']:.{digits}f} ms  (n={summary['count']}{tail})")


def verdict(value: float, target: float) -> str:
    """Against a target that is an upper bound (informational: a MISS never fails the run)."""
    return "PASS" if value < target else "MISS"


class Table:
    """The printed report: a header (title, machine, broker and free `key   text` lines), sections,
    figure lines (`label ..... value   note`), ratio lines, free text, and the run's duration."""

    def __init__(self, title: str, machine: dict[str, Any] | None, *, width: int = 60, value_width: int = 16,
                 machine_extra: str = "") -> None:
        self.width = width
        self.value_width = value_width
        self.lines: list[str] = [f"samenveilig {title}, {machine['date'] if machine else ''}".rstrip(", ")]
        if machine is not None:
            extra = f"{machine_extra}, " if machine_extra else ""
            self.header("machine", f"{machine['cpu_count']} CPUs, Python {machine['python']}, kafka-python "
                                   f"{machine['kafka_python']}, {extra}{machine['platform']}")
            if "broker" in machine:
                self.header("broker", f"{machine['broker']} at {machine['bootstrap']}")

    def header(self, key: str, text: str) -> Table:
        self.lines.append(f"{key:<10}{text}")
        return self

    def text(self, *lines: str) -> Table:
        self.lines.extend(lines)
        return self

    def section(self, heading: str) -> Table:
        self.lines += ["", heading]
        return self

    def figure(self, label: str, value: str = "", note: str = "", indent: int = 0) -> Table:
        label = " " * indent + label
        self.lines.append(f"  {label:<{self.width}}{value:>{self.value_width}}   {note}".rstrip())
        return self

    def latency(self, label: str, summary: dict[str, Any], digits: int = 2, value: str = "", indent: int = 0,
                gc_ms: bool = False) -> Table:
        return self.figure(label, value, fmt_latency(summary, digits, gc_ms), indent)

    def ratio(self, label: str, value: float | None, note: str = "", digits: int = 3, suffix: str = "",
              indent: int = 0) -> Table:
        return self.figure(label, fmt_ratio(value, digits, suffix), note, indent)

    def render(self, report: dict[str, Any]) -> str:
        return "\n".join([*self.lines, "", f"run took {report['duration_s']:.1f} s"])


# --- Kafka: raw producers and consumers ------------------------------------------------------

@dataclass(frozen=True)
class RawRecord:
    key: bytes
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()

    @property
    def size(self) -> int:
        return len(self.key) + len(self.value) + sum(len(k) + len(v) for k, v in self.headers)


def raw_records(n: int, keys: int = KEYS, value_bytes: int = VALUE_BYTES) -> list[RawRecord]:
    """N records of `value_bytes` (the first 10 bytes their number) over `keys` keys."""
    key_list = [str(uuid.uuid4()).encode() for _ in range(keys)]
    filler = os.urandom(value_bytes)
    return [RawRecord(key_list[i % keys], f"{i:010d}".encode() + filler[10:]) for i in range(n)]


def raw_producer(bootstrap: str, client_id: str, config: dict[str, Any] | None = None) -> KafkaProducer:
    return KafkaProducer(bootstrap_servers=bootstrap, client_id=client_id, **(config or RAW_PRODUCER_CONFIG))


def raw_consumer(bootstrap: str, client_id: str, fetch_wait_ms: int = DEFAULT_FETCH_WAIT_MS,
                 **config: Any) -> KafkaConsumer:
    # No group: manual assignment, nothing committed.
    return KafkaConsumer(bootstrap_servers=bootstrap, client_id=client_id, group_id=None, enable_auto_commit=False,
                         auto_offset_reset="earliest", fetch_max_wait_ms=fetch_wait_ms, **config)


def wait_for_partitions(client: KafkaConsumer, topic: str, deadline: Deadline) -> list[TopicPartition]:
    while True:
        partitions = client.partitions_for_topic(topic)
        if partitions:
            return [TopicPartition(topic, p) for p in sorted(partitions)]
        deadline.check(f"metadata for {topic}")
        time.sleep(0.1)


def send_all(producer: KafkaProducer, topic: str, records: Sequence[RawRecord], deadline: Deadline) -> None:
    """Send without waiting, flush, and check every future (raises if any record failed)."""
    futures = []
    for i, record in enumerate(records):
        if i % 500 == 0:
            deadline.check(f"{i} sent")
        futures.append(producer.send(topic, key=record.key, value=record.value, headers=list(record.headers)))
    producer.flush(timeout=max(0.1, deadline.remaining()))
    for future in futures:
        future.get(timeout=max(0.1, deadline.remaining()))


def raw_produce(producer: KafkaProducer, topic: str, records: Sequence[RawRecord]) -> dict[str, Any]:
    """Timed from the first send until flush returns and every future has succeeded."""
    n = len(records)
    deadline = Deadline(produce_limit(n), "raw produce")
    producer.partitions_for(topic)  # metadata before the clock starts
    started = time.perf_counter()
    send_all(producer, topic, records, deadline)
    elapsed = time.perf_counter() - started
    return {"messages": n, "seconds": round(elapsed, 4), "rate_per_s": rate(n, elapsed)}


def read_all(bootstrap: str, topics: Sequence[str], *, expected: int | None = None,
             fetch_wait_ms: int = DEFAULT_FETCH_WAIT_MS, what: str = "raw consume", limit_s: float | None = None,
             client_id: str = "bench-raw-consumer", **config: Any) -> dict[str, Any]:
    """Every record of `topics` from offset 0, only counted: manual assignment, no group. Done at
    `expected` records, else when every partition's position reaches the high-water mark of the
    fetch responses (never ListOffsets: Tansu defect 1); with `expected`, the high-water marks must
    add up to it. Timed from the first poll."""
    deadline = Deadline(limit_s or consume_limit(expected or 100_000), what)
    consumer = raw_consumer(bootstrap, client_id, fetch_wait_ms, **config)
    try:
        assigned = [tp for topic in topics for tp in wait_for_partitions(consumer, topic, deadline)]
        consumer.assign(assigned)
        for tp in assigned:
            consumer.seek(tp, 0)
        received = payload = polls = 0
        started = time.perf_counter()
        while True:
            if expected is not None and received >= expected:
                break
            if expected is None and polls and all(
                    (hw := consumer.highwater(tp)) is not None and consumer.position(tp) >= hw for tp in assigned):
                break
            deadline.check(f"{received:,} received")
            polls += 1
            for records in consumer.poll(timeout_ms=200).values():
                received += len(records)
                payload += sum(len(r.value) for r in records)
        elapsed = time.perf_counter() - started
        high_water = sum(consumer.highwater(tp) or 0 for tp in assigned)
    finally:
        consumer.close()
    if expected is not None and (received != expected or high_water != expected):
        raise RuntimeError(f"{what}: received {received}, high-water total {high_water}, expected {expected}")
    return {"messages": received, "seconds": round(elapsed, 4), "rate_per_s": rate(received, elapsed),
            "bytes": payload, "polls": polls, "high_water_total": high_water, "fetch_max_wait_ms": fetch_wait_ms}


class Receiver(threading.Thread):
    """A consumer already positioned at the end of a new topic, polling all the time and stamping
    each record as it arrives (its first 10 bytes and the perf_counter time)."""

    def __init__(self, bootstrap: str, topic: str, deadline: Deadline, fetch_wait_ms: int) -> None:
        super().__init__(name="bench-raw-receiver", daemon=True)
        self.arrivals: queue.Queue[tuple[bytes, float]] = queue.Queue()
        self.stop_event = threading.Event()
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self._servers, self._topic, self._deadline, self._wait = bootstrap, topic, deadline, fetch_wait_ms

    def run(self) -> None:
        try:
            consumer = raw_consumer(self._servers, "bench-raw-receiver", self._wait)
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

    def __enter__(self) -> Receiver:
        self.start()
        if not self.ready.wait(timeout=self._deadline.remaining()) or self.error:
            raise RuntimeError(f"the raw receiver did not start: {self.error!r}")
        return self

    def __exit__(self, *_: object) -> None:
        self.stop_event.set()
        self.join(timeout=10)

    def next_arrival(self, limit_s: float) -> tuple[bytes, float] | None:
        if self.error:
            raise RuntimeError(f"the raw receiver failed: {self.error!r}")
        try:
            return self.arrivals.get(timeout=limit_s)
        except queue.Empty:
            return None

    def wait_for(self, marker: bytes, deadline: Deadline) -> float:
        limit = time.monotonic() + min(SINGLE_ROUNDTRIP_LIMIT_S, deadline.remaining())
        while (remaining := limit - time.monotonic()) > 0:
            got = self.next_arrival(min(remaining, 1.0))
            if got is not None and got[0] == marker:
                return got[1]
        deadline.check(f"record {marker.decode()} not received")
        raise BenchTimeout(f"record {marker.decode()} not received within {SINGLE_ROUNDTRIP_LIMIT_S:.0f}s")


def raw_roundtrips(producer: KafkaProducer, bootstrap: str, topic: str, m: int, fetch_wait_ms: int) -> dict[str, Any]:
    """M sequential pairs (after WARMUP): send().get(), then the time until a consumer that is
    already polling receives the record."""
    deadline = Deadline(roundtrip_limit(m + WARMUP), "raw round trips")
    records = raw_records(WARMUP + m, keys=1)
    with Receiver(bootstrap, topic, deadline, fetch_wait_ms) as receiver:
        producer.partitions_for(topic)
        latencies: list[float] = []
        for i, record in enumerate(records):
            deadline.check(f"{i} round trips done")
            sent = time.perf_counter()
            producer.send(topic, key=record.key, value=record.value).get(timeout=SINGLE_ROUNDTRIP_LIMIT_S)
            arrived = receiver.wait_for(record.value[:10], deadline)
            if i >= WARMUP:
                latencies.append(arrived - sent)
    return latency_summary_ms(latencies)


def raw_roundtrip_phase(run: Run, count: int) -> dict[str, Any]:
    """The raw baseline of the latency benchmarks: `raw_roundtrips` on a new topic of this run."""
    topic = f"{run.prefix}raw-roundtrip"
    ensure_topics(run.bootstrap, [topic], PARTITIONS, REPLICATION)
    producer = raw_producer(run.bootstrap, "bench-raw-producer")
    try:
        progress(f"raw: {count} round trips, send().get() -> received by a polling consumer "
                 f"(fetch_max_wait_ms={run.fetch_wait_ms})")
        result = raw_roundtrips(producer, run.bootstrap, topic, count, run.fetch_wait_ms)
        progress(f"  p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms")
        return result
    finally:
        producer.close(timeout=10)


# --- Kafka: the project's side ---------------------------------------------------------------

def publisher_codec(settings: CommonSettings, topics: TopicNames, source: str = "/samenveilig/registry") -> EventCodec:
    """The publishing side (the registry, in production) seals with a key store of its own on the
    same key file the processor under test reads."""
    return EventCodec(SqlKeyStore(make_engine(settings.keystore_url), settings.master_key_bytes()),
                      source=source, topics=topics)


def seal(codec: EventCodec, event: Event, at: datetime | None = None) -> EncodedEvent:
    return codec.encode(event, event_id=str(uuid.uuid4()), recorded_at=at or datetime.now(UTC))


@dataclass
class Produced:
    """What `produce_stream` sent: counts per topic and event type, sizes and the split timing."""

    events: int = 0
    sealed: int = 0
    value_bytes: int = 0
    encode_seconds: float = 0.0
    produce_seconds: float = 0.0
    per_topic: Counter[str] = field(default_factory=Counter)
    by_type: Counter[str] = field(default_factory=Counter)

    def summary(self) -> dict[str, Any]:
        n = self.events
        return {"events": n, "per_topic": dict(self.per_topic), "by_type": dict(sorted(self.by_type.items())),
                "sealed": self.sealed, "encode_seconds": round(self.encode_seconds, 2),
                "encode_rate_per_s": rate(n, self.encode_seconds), "produce_seconds": round(self.produce_seconds, 2),
                "produce_rate_per_s": rate(n, self.produce_seconds), "avg_value_bytes": round(self.value_bytes / n, 1),
                "producer_config": dict(BULK_PRODUCER_CONFIG)}


def produce_stream(bootstrap: str, topics: TopicNames, codecs: dict[Topic, EventCodec],
                   stream: Iterable[tuple[Event, str, datetime, datetime]], n: int, *, chunk: int,
                   limit_s: float, client_id: str) -> Produced:
    """Encode a stream of (event, event id, recorded_at, effective_at) a chunk at a time with the
    codec of its topic, then send the chunk and flush (BULK_PRODUCER_CONFIG). Encoding and sending
    are timed apart; the stream must yield exactly N events."""
    names = [topics(t) for t in codecs]
    ensure_topics(bootstrap, names, PARTITIONS, REPLICATION)
    producer = raw_producer(bootstrap, client_id, BULK_PRODUCER_CONFIG)
    failures: list[BaseException] = []
    deadline = Deadline(limit_s, "generating, encoding and producing the events")
    out = Produced()
    events = iter(stream)
    try:
        for name in names:
            producer.partitions_for(name)  # metadata before the clock starts
        while out.events < n:
            started = time.perf_counter()
            encoded: list[EncodedEvent] = []
            for event, event_id, recorded, effective in events:
                encoded.append(codecs[event.topic].encode(event, event_id=event_id, recorded_at=recorded,
                                                          effective_at=effective))
                out.by_type[event.event_type] += 1
                out.sealed += bool(event.personal_fields())
                if len(encoded) >= chunk:
                    break
            out.encode_seconds += time.perf_counter() - started
            deadline.check(f"{out.events + len(encoded):,} encoded")
            if not encoded:
                break
            started = time.perf_counter()
            for record in encoded:
                producer.send(record.topic, key=record.key, value=record.value,
                              headers=record.headers).add_errback(failures.append)
                out.per_topic[topics.logical(record.topic)] += 1
                out.value_bytes += len(record.value)
            producer.flush(timeout=max(1.0, deadline.remaining()))
            out.produce_seconds += time.perf_counter() - started
            deadline.check(f"{out.events:,} sent")
            if failures:
                raise RuntimeError(f"{len(failures)} records failed to send: {failures[0]!r}")
            out.events += len(encoded)
            progress(f"  {out.events:,} produced ({out.events / out.produce_seconds:,.0f} msg/s sending, "
                     f"{out.events / out.encode_seconds:,.0f} events/s generating+encoding)")
    finally:
        producer.close(timeout=10)
    if out.events != n:
        raise RuntimeError(f"generated {out.events} events, expected {n}")
    return out


class Worker:
    """A processor, relay or runner of the service under test in a thread of its own (deployed,
    each is a process), optionally under cProfile. `stop` sets its stop_event and joins it."""

    def __init__(self, name: str, runner: Any, profile_to: Path | None = None) -> None:
        self.name = name
        self.runner = runner  # anything with run() and stop_event: a ConsumerRunner, an OutboxRelay
        self.profile_to = profile_to
        self.error: BaseException | None = None
        self.started_at = 0.0
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> Worker:
        self.started_at = time.perf_counter()
        self.thread.start()
        return self

    def _run(self) -> None:
        try:
            if self.profile_to is None:
                self.runner.run()
                return
            profiler = cProfile.Profile()
            try:
                profiler.runcall(self.runner.run)
            finally:
                profiler.dump_stats(str(self.profile_to))
        except BaseException as error:  # reported by the main thread
            self.error = error

    def alive(self) -> bool:
        return self.thread.is_alive()

    def stop(self, timeout_s: float = 20.0) -> None:
        self.runner.stop_event.set()
        if self.thread.ident is not None:
            self.thread.join(timeout=timeout_s)
            if self.thread.is_alive():
                progress(f"warning: {self.name} did not stop within {timeout_s:.0f}s")
        dlq = getattr(self.runner, "dlq_publisher", None)
        if dlq is not None:  # a ConsumerRunner does not close its dead-letter producer itself
            dlq.close()

    def failed(self) -> RuntimeError:
        return RuntimeError(f"{self.name} stopped ({self.error!r})")


def watch(what: str, conditions: dict[str, Callable[[], bool]], deadline: Deadline, status: Callable[[], str],
          workers: Sequence[Worker] = (), failure: Callable[[], str | None] = lambda: None,
          interval_s: float = 0.01) -> dict[str, float]:
    """The perf_counter time at which each condition first held; all of them, within the deadline,
    while every worker stays alive and `failure` says nothing."""
    met: dict[str, float] = {}
    while True:
        now = time.perf_counter()
        for name, condition in conditions.items():
            if name not in met and condition():
                met[name] = now
        if len(met) == len(conditions):
            return met
        problem = failure()
        if problem:
            raise RuntimeError(f"{what}: {problem}")
        for worker in workers:
            if not worker.alive():
                raise worker.failed()
        deadline.check(status())
        time.sleep(interval_s)


def wait_until(condition: Callable[[], bool], deadline: Deadline, status: Callable[[], str],
               workers: Sequence[Worker] = (), interval_s: float = 0.01) -> float:
    return watch(deadline.what, {"met": condition}, deadline, status, workers, interval_s=interval_s)["met"]


def departure_latencies(publisher: EventPublisher, subjects: Sequence[T], departure: Callable[[T], EncodedEvent],
                        still_allowed: Callable[[T], bool], worker: Worker, what: str) -> dict[str, Any]:
    """One subject at a time: it must still be allowed; publish its departure (acks=all), then ask
    `still_allowed` every POLL_INTERVAL_S until it says no. Timed from the publish call, split at
    the broker's ack; the first WARMUP subjects are not counted."""
    deadline = Deadline(roundtrip_limit(len(subjects)), what)
    total: list[float] = []
    acks: list[float] = []
    after_ack: list[float] = []
    polls: list[int] = []
    for i, subject in enumerate(subjects):
        deadline.check(f"{i} done")
        if not still_allowed(subject):
            raise RuntimeError(f"{what}: subject {i} is denied before its departure")
        encoded = departure(subject)
        single = Deadline(min(SINGLE_ROUNDTRIP_LIMIT_S, deadline.remaining()), f"{what}: departure {i}")
        sent = time.perf_counter()
        publisher.publish(encoded, timeout_s=SINGLE_ROUNDTRIP_LIMIT_S)
        acked = time.perf_counter()
        asked = 0
        while still_allowed(subject):
            asked += 1
            if not worker.alive():
                raise worker.failed()
            single.check("still allowed")
            time.sleep(POLL_INTERVAL_S)
        ended = time.perf_counter()
        if i >= WARMUP:
            total.append(ended - sent)
            acks.append(acked - sent)
            after_ack.append(ended - acked)
            polls.append(asked + 1)
    result: dict[str, Any] = latency_summary_ms(total)
    result.update({"publish_ack": latency_summary_ms(acks), "after_ack": latency_summary_ms(after_ack),
                   "polls_mean": round(sum(polls) / len(polls), 2), "poll_interval_ms": POLL_INTERVAL_S * 1000})
    progress(f"  p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms, max {result['max_ms']:.1f} ms")
    return result
