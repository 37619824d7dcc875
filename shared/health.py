"""Health and metrics of a worker process (relay or processor): `/healthz` answers 503 with the
reasons when the worker cannot do its job (a fatal producer, an outbox that stopped draining, a
loop that stopped turning); `/metrics` gives outbox age, consumer lag and dead letters in the
Prometheus text format. Values are read from the worker at scrape time, never kept twice."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from shared.clock import Clock
from shared.outbox import outbox_status

if TYPE_CHECKING:
    from sqlalchemy import Table
    from sqlalchemy.engine import Engine

    from shared.kafka.consumer import ConsumerRunner
    from shared.kafka.producer import EventPublisher
    from shared.outbox import OutboxRelay

log = logging.getLogger(__name__)

# None when healthy, else why not (no personal data: ids, counts and ages only).
Check = Callable[[], str | None]
Samples = Callable[[], Iterable[Metric]]

# A loop that has not completed a round in this long is stuck (an SMTP or broker call hangs
# at most ~30 s before its own timeout).
STUCK_AFTER_S = 60.0
# A stream gap heals within a relay round or two (the producer publishes the missing events
# again); one open longer than this is an event the log lost and nobody has put back.
GAP_ALARM_AFTER_S = 60.0
# A processor behind the high-water mark reads on within a poll or two; one that has not moved for
# this long while behind is stuck (a hole in the log, a handler retrying, a fetch that never answers).
STALL_ALARM_AFTER_S = 60.0


class _Collector(Collector):
    def __init__(self, samples: Samples) -> None:
        self._samples = samples

    def collect(self) -> Iterator[Metric]:
        yield from self._samples()


class WorkerHealth:
    def __init__(self, worker: str, checks: list[Check], samples: Samples) -> None:
        self.worker = worker
        self.checks = checks
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Collector(samples))
        self._server: ThreadingHTTPServer | None = None

    def problems(self) -> list[str]:
        found = []
        for check in self.checks:
            try:
                problem = check()
            except Exception as error:  # a check that cannot run is itself a problem
                problem = f"check failed: {type(error).__name__}"
            if problem:
                found.append(problem)
        return found

    def serve(self, host: str, port: int) -> WorkerHealth:
        health = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/healthz":
                    problems = health.problems()
                    body = json.dumps({"worker": health.worker, "status": "fail" if problems else "ok",
                                       "problems": problems}).encode()
                    self._answer(503 if problems else 200, "application/json", body)
                elif self.path == "/metrics":
                    self._answer(200, "text/plain; version=0.0.4; charset=utf-8", generate_latest(health.registry))
                else:
                    self._answer(404, "application/json", b'{"status": "not-found"}')

            def _answer(self, status: int, content_type: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer((host, port), Handler)
        threading.Thread(target=self._server.serve_forever, name=f"{self.worker}-health", daemon=True).start()
        log.info("health endpoint listening", extra={"worker": self.worker, "port": self._server.server_address[1]})
        return self

    @property
    def port(self) -> int | None:
        return int(self._server.server_address[1]) if self._server else None

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


def _publisher_samples(worker: str, publisher: EventPublisher, role: str) -> Iterator[Metric]:
    labels = {"worker": worker, "role": role}
    health = publisher.health
    for name, value, doc in (
            ("samenveilig_producer_acknowledged", health.acknowledged, "Records the broker confirmed at an offset"),
            ("samenveilig_producer_unconfirmed_acks", health.unconfirmed,
             "Acknowledgements without an offset (sent again)"),
            ("samenveilig_producer_failures", health.failures, "Send rounds that were not fully acknowledged"),
            ("samenveilig_producer_recreated", health.recreated, "Producers replaced after a fatal state")):
        counter = CounterMetricFamily(name, doc, labels=list(labels))
        counter.add_metric(list(labels.values()), value)
        yield counter
    fatal = GaugeMetricFamily("samenveilig_producer_fatal", "1 while the producer is in a fatal state",
                              labels=list(labels))
    fatal.add_metric(list(labels.values()), 1.0 if health.fatal else 0.0)
    yield fatal


def _publisher_check(publisher: EventPublisher, role: str) -> Check:
    def check() -> str | None:
        if publisher.health.fatal:
            return f"{role} producer is in a fatal state"
        return None
    return check


def relay_health(relay: OutboxRelay, *, engine: Engine, outbox: Table, publisher: EventPublisher, clock: Clock,
                 max_outbox_age_s: float) -> WorkerHealth:
    """A relay is unhealthy when its producer is fatal, its loop stopped, or the oldest due
    event waits longer than max_outbox_age_s (the broker does not take it)."""
    worker = relay.name

    def pending() -> tuple[int, float]:
        with engine.connect() as connection:
            status = outbox_status(connection, outbox, clock.now())
        age = 0.0 if status.oldest_pending_at is None else (clock.now() - status.oldest_pending_at).total_seconds()
        return status.pending, max(0.0, age)

    def outbox_check() -> str | None:
        count, age = pending()
        if age > max_outbox_age_s:
            return f"{count} events wait in the outbox, the oldest for {age:.0f} s"
        return None

    def loop_check() -> str | None:
        idle = time.monotonic() - relay.last_round_at
        return f"relay loop has not completed a round for {idle:.0f} s" if idle > STUCK_AFTER_S else None

    def samples() -> Iterator[Metric]:
        count, age = pending()
        labels = ["worker"]
        for name, value, doc in (("samenveilig_outbox_pending", count, "Due events not yet on the broker"),
                                 ("samenveilig_outbox_oldest_pending_seconds", age,
                                  "Age of the oldest due event not yet on the broker")):
            gauge = GaugeMetricFamily(name, doc, labels=labels)
            gauge.add_metric([worker], float(value))
            yield gauge
        failed = CounterMetricFamily("samenveilig_relay_task_failures", "Relay task rounds that raised",
                                     labels=labels)
        failed.add_metric([worker], relay.task_failures)
        yield failed
        yield from _publisher_samples(worker, publisher, "outbox")

    return WorkerHealth(worker, [_publisher_check(publisher, "outbox"), outbox_check, loop_check], samples)


def runner_health(runner: ConsumerRunner) -> WorkerHealth:
    """A processor is unhealthy when its dead-letter producer is fatal, its loop stopped, a
    stream has waited longer than GAP_ALARM_AFTER_S for events the log lost, or a partition
    behind its high-water mark has not been read further for STALL_ALARM_AFTER_S."""
    worker = runner.consumer_name

    def loop_check() -> str | None:
        idle = time.monotonic() - runner.last_loop_at
        return f"consumer loop has not turned for {idle:.0f} s" if idle > STUCK_AFTER_S else None

    def gap_check() -> str | None:
        gaps = runner.open_gaps()
        age = runner.oldest_gap_age_s(gaps)
        if age > GAP_ALARM_AFTER_S:
            oldest = min(gaps, key=lambda gap: gap.since)
            return (f"{len(gaps)} streams wait for missing events, the oldest for {age:.0f} s "
                    f"({oldest.topic}: have version {oldest.applied_version}, saw {oldest.held_version})")
        return None

    def stall_check() -> str | None:
        stalled = {key: (behind, still) for key, (behind, still) in runner.stalls.stalled(time.monotonic()).items()
                   if still > STALL_ALARM_AFTER_S}
        if not stalled:
            return None
        (topic, partition), (behind, still) = max(stalled.items(), key=lambda item: item[1][1])
        return (f"{len(stalled)} partitions read no further while behind, the longest for {still:.0f} s "
                f"({topic}[{partition}]: {behind} records behind)")

    def samples() -> Iterator[Metric]:
        stalled = GaugeMetricFamily("samenveilig_consumer_stalled_seconds",
                                    "Seconds a partition behind its high-water mark has not been read further",
                                    labels=["worker", "topic", "partition"])
        for (topic, partition), (_, still) in sorted(runner.stalls.stalled(time.monotonic()).items()):
            stalled.add_metric([worker, topic, str(partition)], still)
        yield stalled
        gaps = runner.open_gaps()
        for name, value, doc in (("samenveilig_stream_gaps_open", float(len(gaps)),
                                  "Streams holding back events because earlier versions are missing"),
                                 ("samenveilig_stream_gap_oldest_seconds", runner.oldest_gap_age_s(gaps),
                                  "Age of the oldest open stream gap")):
            gauge = GaugeMetricFamily(name, doc, labels=["worker"])
            gauge.add_metric([worker], value)
            yield gauge
        lag = GaugeMetricFamily("samenveilig_consumer_lag", "Records behind the high-water mark",
                                labels=["worker", "topic", "partition"])
        for (topic, partition), behind in sorted(runner.partition_lag.items()):
            lag.add_metric([worker, topic, str(partition)], float(behind))
        yield lag
        stats = runner.stats
        for name, value, doc in (("samenveilig_consumer_applied", stats.applied, "Events applied"),
                                 ("samenveilig_consumer_duplicates", stats.duplicates, "Redelivered events skipped"),
                                 ("samenveilig_dead_letters", stats.dead_lettered, "Messages sent to a .dlq topic"),
                                 ("samenveilig_consumer_held", stats.held,
                                  "Events held back until the missing versions before them arrive"),
                                 ("samenveilig_log_truncations", stats.log_truncations,
                                  "Partitions found shorter than already read (events lost by the broker)")):
            counter = CounterMetricFamily(name, doc, labels=["worker"])
            counter.add_metric([worker], value)
            yield counter
        yield from _publisher_samples(worker, runner.dlq_publisher, "dead-letter")

    return WorkerHealth(worker, [_publisher_check(runner.dlq_publisher, "dead-letter"), loop_check, gap_check,
                                 stall_check],
                        samples)
