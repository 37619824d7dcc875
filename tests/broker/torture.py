"""Broker torture: concurrent idempotent acks=all producers write sequence-numbered messages
while the local broker is SIGKILLed and started again on the same storage (and the object store
once); afterwards every acknowledged message must be on the log, at the offset it was
acknowledged at, in order per key, with no record written twice, per partition.

    python -m tests.broker.torture --storage seaweedfs|s3rver [--duration S] [--strict]
    python -m tests.broker.torture --bootstrap HOST:PORT     (any broker, without the kills)

prints a JSON summary and exits 1 when a property is violated (tests/broker/test_torture.py
asserts the same properties one by one).

Each send carries its own identity, `key:seq:attempt`: a producer sends key's next sequence
number only once the previous one was acknowledged at an offset, and sends the same seq again
(attempt + 1) after an error or an acknowledgement at offset -1. What counts as acknowledged: an
acknowledgement with an offset >= 0. Tansu advances an idempotent producer's sequence in
meta.json before it writes the watermark and the batch; a kill between those steps makes the
retry answer DUPLICATE_SEQUENCE_NUMBER, which kafka-python reports as success at offset -1. Such
an answer says nothing about where (or whether) the message is, so the producer sends it again,
as our publisher does.

Two findings are Tansu's own and known (README, "What remains Tansu's own"), so they are
reported apart from the failures, as "Tansu defects", and tolerated only within what the
unacknowledged sends explain: an offset below the high-water mark without a record (an offset
taken by a send that was never written) and a second copy of an acknowledged message (an
earlier attempt that was written after all, although answered -1 or an error; consumers skip it
by event id). `--strict` fails on those too. Everything else (a lost or moved acknowledged
message, an offset acknowledged twice, one send written twice, a key out of order, a record
beyond the high-water mark) fails always.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import os
import random
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import KafkaError

from deploy.localbroker import STORAGES, LocalBroker, wait_for_kafka
from tests.broker.helpers import wait_for_partitions

SECONDS_ENV = "SAMENVEILIG_TORTURE_SECONDS"
DEFAULT_SECONDS = 45.0

# Errors after which kafka-python's idempotent producer is no use any more (or, on Tansu, keeps
# failing): the producer is closed and a new one (a new producer id) sends the payload again.
RECREATE_ON = frozenset({"OutOfOrderSequenceNumberError", "UnknownProducerIdError",
                         "InvalidProducerEpochError", "ProducerFencedError",
                         "InvalidProducerIdMappingError", "IllegalStateError",
                         # An expired send: a producer that could not deliver for
                         # delivery_timeout_ms is usually waiting on a producer id it will not
                         # get (a CI run saw its next send hang for good); start afresh.
                         "KafkaTimeoutError"})
RECREATE_AFTER_CONSECUTIVE_FAILURES = 3


@dataclass(frozen=True)
class TortureConfig:
    duration_s: float = DEFAULT_SECONDS
    producers: int = 20
    partitions: int = 3
    # Chaos, local broker only: a SIGKILL of Tansu every kill_every_s; the round numbered
    # storage_round restarts the object store instead (SIGKILL, start on the same directory).
    # No round starts in the last quiet_tail_s: every producer must recover before the end.
    kill_every_s: float = 6.0
    storage_round: int = 3
    # A send started just before the last kill may take delivery_timeout_ms to expire, and its
    # fresh producer a few seconds more: the tail leaves room for both.
    # 20 s, not 15: on a loaded CI machine two of the 20 producers once needed longer than 15 s
    # after the last kill before a send was acknowledged again (the same four rounds run).
    quiet_tail_s: float = 20.0
    max_down_s: float = 1.0  # Tansu stays dead a random 0..max_down_s before it is started again
    seed: int = 20_250
    # Bounds for each send: a future always resolves (acknowledged or expired) within these.
    request_timeout_ms: int = 5_000
    delivery_timeout_ms: int = 10_000
    # Reading the log back. Tansu bounds each partition's fetch (a listing of all its batch
    # objects, then one GET per batch) by the request's fetch wait: the reader waits long.
    read_fetch_max_wait_ms: int = 2_000
    read_timeout_s: float = 60.0
    read_stall_s: float = 6.0
    # Live consumers following the run, one per fetch wait; then a replay of the whole topic
    # from offset 0 with each fetch wait, at most replay_s each (0: no replay).
    tail_fetch_waits_ms: tuple[int, ...] = (50, 500)
    tail_catch_up_s: float = 10.0
    replay_s: float = 6.0

    @classmethod
    def from_env(cls, **overrides: Any) -> TortureConfig:
        seconds = float(os.environ.get(SECONDS_ENV, DEFAULT_SECONDS))
        return cls(**{"duration_s": seconds, **overrides})


# A message: (key, seq); a send: (key, seq, attempt).
Message = tuple[str, int]
Send = tuple[str, int, int]


@dataclass(frozen=True)
class Ack:
    key: str
    seq: int
    attempt: int
    partition: int
    offset: int
    at: float  # seconds since the run started

    @property
    def send(self) -> Send:
        return (self.key, self.seq, self.attempt)


@dataclass(frozen=True)
class FailedSend:
    key: str
    seq: int
    attempt: int
    outcome: str  # "offset-minus-one" or the error's class name


def payload(key: str, seq: int, attempt: int) -> bytes:
    return f"{key}:{seq}:{attempt}".encode()


def parse(value: bytes | None) -> Send | None:
    try:
        key, seq, attempt = (value or b"").decode().rsplit(":", 2)
        return key, int(seq), int(attempt)
    except (ValueError, UnicodeDecodeError):
        return None


def label(send: Send | Message) -> str:
    return ":".join(str(part) for part in send)


# -- producers ---------------------------------------------------------------------------------

@dataclass
class ProducerStats:
    key: str
    acknowledged: int = 0
    sends: int = 0
    resends: int = 0  # sends of a seq that was sent before
    minus_one_acks: int = 0  # "success" at offset -1: not published, sent again
    errors: Counter[str] = field(default_factory=Counter)
    recreations: int = 0
    recreate_reasons: Counter[str] = field(default_factory=Counter)
    create_failures: int = 0
    unresolved_at_stop: bool = False  # the last seq was still unacknowledged at the end
    stopped_after_s: float | None = None  # from the end of the schedule until the thread ended


class TortureProducer(threading.Thread):
    """Sends key's next sequence number only once the previous one was acknowledged at an offset."""

    def __init__(self, bootstrap: str, topic: str, key: str, config: TortureConfig, started: float,
                 stop: threading.Event) -> None:
        super().__init__(name=f"torture-{key}", daemon=True)
        self.bootstrap, self.topic, self.key, self.config = bootstrap, topic, key, config
        self.started, self.stop_event = started, stop
        self.stats = ProducerStats(key)
        self.acks: list[Ack] = []
        self.failed: list[FailedSend] = []
        self.crashed: str | None = None

    def _new_producer(self) -> KafkaProducer | None:
        while not self.stop_event.is_set():
            try:
                return KafkaProducer(
                    bootstrap_servers=self.bootstrap, client_id=f"torture-{self.key}", acks="all",
                    enable_idempotence=True, linger_ms=1,
                    request_timeout_ms=self.config.request_timeout_ms,
                    delivery_timeout_ms=self.config.delivery_timeout_ms, max_block_ms=5_000)
            except KafkaError:
                self.stats.create_failures += 1
                self.stop_event.wait(0.2)
        return None

    def _close(self, producer: KafkaProducer) -> None:
        try:
            producer.close(timeout=1)
        except Exception:
            # close() flushes first and gives up when that times out (a producer in a fatal
            # state, or with an unresolved send), leaving its sender thread running: a stale
            # attempt could still go out. Stop the sender without sending what it holds.
            self.stats.errors["close-failed"] += 1
            sender = getattr(producer, "_sender", None)
            if sender is not None:
                sender.force_close()
                sender.join(2)
            producer._closed = True  # its __del__ would try (and fail) to flush again

    def run(self) -> None:
        try:
            self._run()
        except Exception as error:  # reported in the summary: a crashed worker fails the run
            self.crashed = f"{type(error).__name__}: {error}"
        finally:
            if self.stop_event.is_set():
                self.stats.stopped_after_s = round(
                    time.monotonic() - self.started - self.config.duration_s, 3)

    def _run(self) -> None:
        producer = self._new_producer()
        seq, attempt, consecutive_failures = 0, 0, 0
        # A send resolves within delivery_timeout_ms, except while the idempotent producer has
        # no producer id: kafka-python's sender then waits for InitProducerId and expires
        # nothing, so a send can hang for good. Past wait_s the producer counts as hung.
        wait_s = self.config.delivery_timeout_ms / 1000 + 2
        while producer is not None and not self.stop_event.is_set():
            self.stats.sends += 1
            self.stats.resends += attempt > 0
            failure: str | None = None
            future = None
            try:
                future = producer.send(self.topic, key=self.key.encode(), value=payload(self.key, seq, attempt))
                metadata = future.get(timeout=wait_s)
                if metadata.offset is None or metadata.offset < 0:
                    self.stats.minus_one_acks += 1
                    failure = "offset-minus-one"
                else:
                    self.acks.append(Ack(self.key, seq, attempt, metadata.partition, metadata.offset,
                                         time.monotonic() - self.started))
                    self.stats.acknowledged += 1
                    seq, attempt, consecutive_failures = seq + 1, 0, 0
            except KafkaError as error:
                failure = "hung" if future is not None and not future.is_done else type(error).__name__
                self.stats.errors[failure] += 1
            if failure is None:
                continue
            self.failed.append(FailedSend(self.key, seq, attempt, failure))
            attempt += 1
            consecutive_failures += 1
            manager = getattr(producer, "_transaction_manager", None)
            fatal = bool(manager is not None and manager.has_fatal_error())
            reason = ("fatal-state" if fatal else failure if failure in RECREATE_ON or failure == "hung" else
                      "consecutive-failures" if consecutive_failures >= RECREATE_AFTER_CONSECUTIVE_FAILURES
                      else None)
            if reason is not None:
                self.stats.recreations += 1
                self.stats.recreate_reasons[reason] += 1
                self._close(producer)
                producer = self._new_producer()
                consecutive_failures = 0
        self.stats.unresolved_at_stop = attempt > 0
        if producer is not None:
            self._close(producer)


# -- chaos -------------------------------------------------------------------------------------

@dataclass
class ChaosEvent:
    kind: str  # "broker-kill" or "storage-restart"
    at: float  # seconds since the run started, when the kill was sent
    down_s: float  # from the kill until the broker answered a metadata request again
    error: str | None = None


class Chaos(threading.Thread):
    def __init__(self, local: LocalBroker, config: TortureConfig, started: float,
                 stop: threading.Event) -> None:
        super().__init__(name="torture-chaos", daemon=True)
        self.local, self.config, self.started, self.stop_event = local, config, started, stop
        self.events: list[ChaosEvent] = []
        self.random = random.Random(config.seed)

    def run(self) -> None:
        round_ = 0
        while not self.stop_event.wait(self.config.kill_every_s):
            if time.monotonic() - self.started > self.config.duration_s - self.config.quiet_tail_s:
                return
            round_ += 1
            at = time.monotonic()
            storage = round_ == self.config.storage_round and self.local.store is not None
            event = ChaosEvent("storage-restart" if storage else "broker-kill", at - self.started, 0.0)
            try:
                if storage:
                    self.local.restart_storage()
                    wait_for_kafka(self.local.bootstrap, timeout_s=30)
                else:
                    self.local.kill_broker()
                    self.stop_event.wait(self.random.uniform(0, self.config.max_down_s))  # down a while
                    self.local.start_broker()
            except Exception as error:  # the summary shows it; the final read then fails loudly
                event.error = f"{type(error).__name__}: {error}"
            event.down_s = time.monotonic() - at
            self.events.append(event)


def _ensure_up(local: LocalBroker) -> None:
    """The broker answers again (a restart in the last chaos round may have failed)."""
    try:
        wait_for_kafka(local.bootstrap, timeout_s=10)
    except KafkaError:
        local.kill_broker()
        local.start_broker()


# -- consumers: how a live consumer follows the restarts, and how fast one replays the log ------

@dataclass
class TailReport:
    fetch_max_wait_ms: int
    records: int = 0
    longest_gap_s: float = 0.0  # longest time without a new record while producers were writing
    resume_after_event_s: list[float | None] = field(default_factory=list)  # per chaos event
    caught_up: bool = False
    # From the end of producing until this consumer had every record up to the high-water mark
    # (negative: it had them before the last producer thread ended).
    caught_up_after_produce_s: float | None = None
    error: str | None = None


class Tailer(threading.Thread):
    """A group-less consumer on every partition from the start, polling as a processor does."""

    def __init__(self, bootstrap: str, topic: str, partitions: int, fetch_max_wait_ms: int,
                 started: float) -> None:
        super().__init__(name=f"torture-tail-{fetch_max_wait_ms}", daemon=True)
        self.bootstrap, self.topic, self.partitions, self.started = bootstrap, topic, partitions, started
        self.report = TailReport(fetch_max_wait_ms)
        self.arrivals: list[float] = []  # seconds since start, one per poll that brought records
        self.caught_up_at: float | None = None
        self.offsets: dict[int, int] = {}
        self.stop_event = threading.Event()
        self.target: dict[int, int] | None = None  # high-water marks to reach, set after the run
        self.ready = threading.Event()

    def run(self) -> None:
        try:
            consumer = KafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False,
                                     auto_offset_reset="earliest", request_timeout_ms=10_000,
                                     fetch_max_wait_ms=self.report.fetch_max_wait_ms)
        except KafkaError as error:
            self.report.error = type(error).__name__
            self.ready.set()
            return
        try:
            tps = [TopicPartition(self.topic, p) for p in range(self.partitions)]
            consumer.assign(tps)
            consumer.seek_to_beginning(*tps)
            self.ready.set()
            while not self.stop_event.is_set():
                try:
                    polled = consumer.poll(timeout_ms=200)
                except KafkaError as error:  # counted; a live consumer keeps polling
                    self.report.error = type(error).__name__
                    continue
                got = sum(len(batch) for batch in polled.values())
                for tp, batch in polled.items():
                    self.offsets[tp.partition] = batch[-1].offset + 1
                if got:
                    self.report.records += got
                    self.arrivals.append(time.monotonic() - self.started)
                target = self.target
                if target is not None and all(self.offsets.get(p, 0) >= hw for p, hw in target.items()):
                    self.report.caught_up = True
                    self.caught_up_at = self.arrivals[-1] if self.arrivals else 0.0
                    return
        finally:
            consumer.close()


@dataclass
class ReplayReport:
    """A fresh consumer reading the whole topic from offset 0 (a processor catching up)."""

    fetch_max_wait_ms: int
    records: int
    target: int
    elapsed_s: float
    records_per_s: float
    complete: bool
    first_record_s: float | None


def replay(bootstrap: str, topic: str, high_water: dict[int, int], fetch_max_wait_ms: int,
           cap_s: float) -> ReplayReport:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                             auto_offset_reset="earliest", request_timeout_ms=10_000,
                             fetch_max_wait_ms=fetch_max_wait_ms)
    tps = [TopicPartition(topic, p) for p in high_water]
    started = time.monotonic()
    records, first, done = 0, None, False
    try:
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        while not done and time.monotonic() - started < cap_s:
            polled = consumer.poll(timeout_ms=200)
            got = sum(len(batch) for batch in polled.values())
            if got and first is None:
                first = round(time.monotonic() - started, 3)
            records += got
            done = all(consumer.position(tp) >= high_water[tp.partition] for tp in tps)
    except KafkaError:
        pass  # reported as incomplete
    finally:
        consumer.close()
    elapsed = time.monotonic() - started
    return ReplayReport(fetch_max_wait_ms, records, sum(high_water.values()), round(elapsed, 3),
                        round(records / max(elapsed, 1e-9), 1), done, first)


# -- reading the log back ----------------------------------------------------------------------

@dataclass
class LogRead:
    complete: bool
    elapsed_s: float
    high_water: dict[int, int]
    records: dict[int, dict[int, bytes | None]]  # partition -> offset -> value
    stalls: dict[int, list[int]]  # offsets where the reader made no progress and skipped one
    fetch_max_wait_ms: int
    log_start: dict[int, int]  # the broker's earliest offset: 0, as nothing is ever deleted here


def read_log(bootstrap: str, topic: str, partitions: int, fetch_max_wait_ms: int = 2_000,
             timeout_s: float = 60.0, stall_s: float = 6.0, max_skips: int = 25) -> LogRead:
    """Every record of every partition up to the high-water mark of the fetch responses
    (never ListOffsets: wrong on Tansu after multi-record batches). A reader that makes no
    progress below the mark for stall_s skips one offset (a hole it cannot read past); every
    offset skipped so is fetched again on its own before it counts as missing."""
    started = time.monotonic()
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                             auto_offset_reset="earliest", request_timeout_ms=30_000,
                             fetch_max_wait_ms=fetch_max_wait_ms)
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    records: dict[int, dict[int, bytes | None]] = {p: {} for p in range(partitions)}
    stalls: dict[int, list[int]] = {p: [] for p in range(partitions)}
    high_water: dict[int, int] = {}
    complete = False
    try:
        consumer.assign(tps)
        log_start = {tp.partition: offset for tp, offset in consumer.beginning_offsets(tps).items()}
        for tp in tps:
            consumer.seek(tp, 0)  # not seek_to_beginning: a log start moved up hides records
        progress = {tp: (-1, started) for tp in tps}
        deadline = started + timeout_s
        while not complete and time.monotonic() < deadline:
            for tp, batch in consumer.poll(timeout_ms=200).items():
                for record in batch:
                    records[tp.partition][record.offset] = record.value
            done = 0
            now = time.monotonic()
            for tp in tps:
                hw, position = consumer.highwater(tp), consumer.position(tp)
                if hw is None:
                    continue
                high_water[tp.partition] = hw
                if position >= hw:
                    done += 1
                elif position != progress[tp][0]:
                    progress[tp] = (position, now)
                elif now - progress[tp][1] > stall_s and len(stalls[tp.partition]) < max_skips:
                    stalls[tp.partition].append(position)
                    consumer.seek(tp, position + 1)
                    progress[tp] = (position + 1, now)
            complete = done == len(tps)
        for partition, skipped in stalls.items():
            for offset in skipped:
                value = _read_one(consumer, TopicPartition(topic, partition), offset, stall_s)
                if value is not None:
                    records[partition][offset] = value[0]
        return LogRead(complete, time.monotonic() - started, high_water, records, stalls, fetch_max_wait_ms,
                       log_start)
    finally:
        consumer.close()


def _read_one(consumer: KafkaConsumer, tp: TopicPartition, offset: int,
              timeout_s: float) -> tuple[bytes | None] | None:
    """The record at offset (as a 1-tuple), or None when the broker hands out a later one first,
    or nothing within timeout_s."""
    others = [p for p in consumer.assignment() if p != tp]
    consumer.pause(*others)
    try:
        consumer.seek(tp, offset)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for record in consumer.poll(timeout_ms=200).get(tp, []):
                return (record.value,) if record.offset == offset else None
        return None
    finally:
        consumer.resume(*others)


# -- checking ----------------------------------------------------------------------------------

def ranges(offsets: Iterable[int]) -> list[list[int]]:
    """[3, 4, 5, 9] -> [[3, 5], [9, 9]]"""
    out: list[list[int]] = []
    for offset in sorted(offsets):
        if out and offset == out[-1][1] + 1:
            out[-1][1] = offset
        else:
            out.append([offset, offset])
    return out


@dataclass
class PartitionCheck:
    partition: int
    high_water: int
    records: int
    acknowledged: int
    unacknowledged_sends: int  # sends of this partition's keys answered -1 or an error
    # Always failures:
    lost: list[str]  # acknowledged messages (key:seq) nowhere in the partition
    misplaced: list[dict[str, Any]]  # the acknowledged offset holds another send, or nothing
    offsets_reused: list[int]  # acknowledged to two different sends
    sends_written_twice: dict[str, list[int]]  # one send (key:seq:attempt) at several offsets
    out_of_order: list[dict[str, Any]]  # a key's acknowledged sequence numbers going back
    beyond_high_water: list[int]
    unparseable: list[int]
    # Tansu's known defects, tolerated within what unacknowledged sends explain:
    holes: list[list[int]]  # offset ranges below the high-water mark without a record
    resend_copies: dict[str, list[int]]  # acknowledged message also there from another attempt
    # Reported only:
    unacknowledged_present: int  # sends on the log although never acknowledged at an offset
    unacknowledged_out_of_order: list[dict[str, Any]]  # such a send after a later seq of its key
    stalls: list[int]

    @property
    def hole_count(self) -> int:
        return sum(b - a + 1 for a, b in self.holes)

    @property
    def resend_copy_count(self) -> int:
        """Records beyond the first copy of each acknowledged message."""
        return sum(len(offsets) - 1 for offsets in self.resend_copies.values())

    @property
    def unexplained_holes(self) -> int:
        """Holes beyond one per unacknowledged send that is not on the log (each such send
        may have taken an offset and never written its batch)."""
        return max(0, self.hole_count - (self.unacknowledged_sends - self.unacknowledged_present))


def check_partition(partition: int, acks: list[Ack], failed: list[FailedSend], log: LogRead) -> PartitionCheck:
    values = log.records[partition]
    hw = log.high_water.get(partition, 0)
    where: dict[Send, list[int]] = {}
    unparseable: list[int] = []
    for offset in sorted(values):
        send = parse(values[offset])
        if send is None:
            unparseable.append(offset)
        else:
            where.setdefault(send, []).append(offset)
    acked_sends = {ack.send for ack in acks}
    acked_messages = {(ack.key, ack.seq) for ack in acks}
    copies: dict[Message, list[int]] = {}
    for (key, seq, _attempt), offsets in where.items():
        copies.setdefault((key, seq), []).extend(offsets)

    by_offset: dict[int, set[Send]] = {}
    misplaced = []
    for ack in acks:
        by_offset.setdefault(ack.offset, set()).add(ack.send)
        found = parse(values[ack.offset]) if ack.offset in values else None
        if found != ack.send:
            misplaced.append({"send": label(ack.send), "offset": ack.offset,
                              "found": None if found is None else label(found)})

    out_of_order = []
    for key in sorted({ack.key for ack in acks}):
        mine = sorted((a for a in acks if a.key == key), key=lambda a: a.seq)
        out_of_order.extend({"key": key, "seq": b.seq, "offset": b.offset, "previous_offset": a.offset}
                            for a, b in itertools.pairwise(mine) if b.offset <= a.offset)
    # An unacknowledged send that landed after a later seq of its key (a stale attempt).
    highest_acked: dict[str, list[tuple[int, int]]] = {}
    for ack in acks:
        highest_acked.setdefault(ack.key, []).append((ack.offset, ack.seq))
    unacked_out_of_order = []
    for (key, seq, attempt), offsets in where.items():
        if (key, seq, attempt) in acked_sends:
            continue
        for offset in offsets:
            later = [s for o, s in highest_acked.get(key, []) if o < offset and s > seq]
            if later:
                unacked_out_of_order.append({"send": label((key, seq, attempt)), "offset": offset,
                                             "after_seq": max(later)})

    keys_here = {ack.key for ack in acks} | {key for key, _seq, _attempt in where}
    unacked_present = sum(len(offsets) for send, offsets in where.items() if send not in acked_sends)
    return PartitionCheck(
        partition=partition, high_water=hw, records=len(values), acknowledged=len(acks),
        unacknowledged_sends=sum(1 for f in failed if f.key in keys_here),
        lost=sorted(label(m) for m in acked_messages if m not in copies),
        misplaced=misplaced,
        offsets_reused=sorted(o for o, sends in by_offset.items() if len(sends) > 1),
        sends_written_twice={label(s): o for s, o in sorted(where.items()) if len(o) > 1},
        out_of_order=out_of_order,
        beyond_high_water=sorted(o for o in values if o >= hw),
        unparseable=unparseable,
        holes=ranges(set(range(hw)) - set(values)),
        resend_copies={label(m): sorted(o) for m, o in sorted(copies.items())
                       if m in acked_messages and len(o) > 1},
        unacknowledged_present=unacked_present,
        unacknowledged_out_of_order=unacked_out_of_order,
        stalls=log.stalls[partition])


@dataclass
class TortureSummary:
    storage: str
    bootstrap: str
    topic: str
    config: dict[str, Any]
    elapsed_s: float
    produce_s: float
    acknowledged: int
    acks_per_s: float
    sends: int
    resends: int
    minus_one_acks: int
    unacknowledged_sends: int
    errors: dict[str, int]
    recreations: int
    recreate_reasons: dict[str, int]
    producer_create_failures: int
    producers_crashed: list[str]
    producers_acked_after_last_event: int
    # Those that did not: what they were doing (errors, recreations, their last failed sends).
    producers_idle_after_last_event: list[dict[str, Any]]
    slowest_producer_stop_s: float | None  # after the schedule ended, waiting for a last send
    keys_on_several_partitions: list[str]
    chaos: list[dict[str, Any]]
    read: dict[str, Any]
    partitions: list[dict[str, Any]]
    totals: dict[str, int]
    tails: list[dict[str, Any]]
    replays: list[dict[str, Any]]

    def failures(self) -> list[str]:
        """Every violated property, in words; empty when the run passed (Tansu's known defects,
        within what unacknowledged sends explain, are in tansu_defects())."""
        t = self.totals
        found = [f"{t[name]} {words}" for name, words in (
            ("lost", "acknowledged messages lost"),
            ("misplaced", "acknowledged offsets not holding their send"),
            ("offsets_reused", "offsets acknowledged to two sends"),
            ("sends_written_twice", "sends on the log more than once"),
            ("out_of_order", "acknowledged messages out of sequence order for their key"),
            ("beyond_high_water", "records beyond the high-water mark"),
            ("unparseable", "records that are not torture messages"),
            ("unexplained_holes", "offsets below the high-water mark without a record, beyond one per "
                                  "unacknowledged send"),
        ) if t[name]]
        if t["high_water"] != t["records"] + t["holes"]:
            found.append(f"high-water marks ({t['high_water']}) are not records ({t['records']}) + holes "
                         f"({t['holes']})")
        if not self.read["complete"]:
            found.append("the log could not be read to its high-water mark")
        moved = {p: start for p, start in self.read["log_start"].items() if start}
        if moved:
            found.append(f"log start offsets above 0 (records below them gone): {moved}")
        if self.producers_crashed:
            found.append(f"producer threads crashed: {self.producers_crashed}")
        if self.keys_on_several_partitions:
            found.append(f"keys acknowledged on several partitions: {self.keys_on_several_partitions}")
        errors = [f"{e['kind']} at {e['at']:.1f} s: {e['error']}" for e in self.chaos if e["error"]]
        if errors:
            found.append(f"chaos steps failed: {errors}")
        return found

    def tansu_defects(self) -> list[str]:
        """The strict properties Tansu 0.6 cannot keep (README, "What remains Tansu's own")."""
        t = self.totals
        return [f"{t[name]} {words}" for name, words in (
            ("holes", "offsets below the high-water mark without a record (high-water above the count)"),
            ("resend_copies", "second copies of acknowledged messages (an attempt answered -1 or an error "
                              "was written after all)"),
        ) if t[name]]

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "failures": self.failures(), "tansu_defects": self.tansu_defects()},
                          indent=2)


def _create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    try:
        # acks=all against a deployment with min.insync.replicas=2 needs the topic replicated.
        replication = min(3, len(admin.describe_cluster()["brokers"]))
        admin.create_topics([NewTopic(topic, partitions, replication)])
        wait_for_partitions(admin, {topic: partitions}, 20.0)
    finally:
        admin.close()


def _resume_latency(arrivals: list[float], event: ChaosEvent) -> float | None:
    back = event.at + event.down_s
    return next((round(t - back, 3) for t in arrivals if t >= back), None)


def run_torture(bootstrap: str, config: TortureConfig, local: LocalBroker | None = None,
                topic: str | None = None, log: Callable[[str], None] | None = None) -> TortureSummary:
    """The workload against bootstrap; with local (a LocalBroker) also the kills. The broker is up
    again when this returns."""
    say = log or (lambda _line: None)
    topic = topic or f"torture.{uuid.uuid4().hex[:8]}"
    _create_topic(bootstrap, topic, config.partitions)
    started = time.monotonic()
    stop = threading.Event()
    tailers = [Tailer(bootstrap, topic, config.partitions, wait, started) for wait in config.tail_fetch_waits_ms]
    for tailer in tailers:
        tailer.start()
    for tailer in tailers:
        tailer.ready.wait(15)
    producers = [TortureProducer(bootstrap, topic, f"p{n:02d}", config, started, stop)
                 for n in range(config.producers)]
    for producer in producers:
        producer.start()
    chaos = Chaos(local, config, started, stop) if local is not None else None
    if chaos is not None:
        chaos.start()
    say(f"torture: {config.producers} producers on {topic} for {config.duration_s:.0f} s"
        f"{' with kills' if chaos else ''}")
    stop.wait(config.duration_s)  # the run's length is the schedule, not a condition
    stop.set()
    if chaos is not None:
        chaos.join(60)
    join_s = (config.delivery_timeout_ms + config.request_timeout_ms) / 1000 + 15
    join_deadline = time.monotonic() + join_s
    for producer in producers:
        producer.join(max(0.0, join_deadline - time.monotonic()))
    produce_s = time.monotonic() - started
    if local is not None:
        _ensure_up(local)
    say(f"torture: producers stopped after {produce_s:.1f} s, reading the log back")
    read = read_log(bootstrap, topic, config.partitions, fetch_max_wait_ms=config.read_fetch_max_wait_ms,
                    timeout_s=config.read_timeout_s, stall_s=config.read_stall_s)
    for tailer in tailers:
        tailer.target = dict(read.high_water)
    tail_deadline = time.monotonic() + config.tail_catch_up_s
    for tailer in tailers:
        tailer.join(max(0.0, tail_deadline - time.monotonic()))
        tailer.stop_event.set()
    for tailer in tailers:
        tailer.join(5)
        if tailer.caught_up_at is not None:
            tailer.report.caught_up_after_produce_s = round(tailer.caught_up_at - produce_s, 3)
    replays = []
    if config.replay_s > 0 and read.high_water:
        say("torture: replaying the topic from offset 0")
        replays = [replay(bootstrap, topic, read.high_water, wait, config.replay_s)
                   for wait in config.tail_fetch_waits_ms]
    elapsed = time.monotonic() - started

    acks = [ack for producer in producers for ack in producer.acks]
    failed = [f for producer in producers for f in producer.failed]
    partitions_of_key: dict[str, set[int]] = {}
    for ack in acks:
        partitions_of_key.setdefault(ack.key, set()).add(ack.partition)
    checks = [check_partition(p, [a for a in acks if a.partition == p], failed, read)
              for p in range(config.partitions)]
    events = chaos.events if chaos is not None else []
    last_event_end = max((e.at + e.down_s for e in events), default=0.0)
    for tailer in tailers:
        tailer.report.resume_after_event_s = [_resume_latency(tailer.arrivals, e) for e in events]
        gaps = [b - a for a, b in zip([0.0, *tailer.arrivals], tailer.arrivals, strict=False)
                if b <= produce_s]
        tailer.report.longest_gap_s = round(max(gaps, default=0.0), 3)
    errors: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    for producer in producers:
        errors.update(producer.stats.errors)
        reasons.update(producer.stats.recreate_reasons)
    totals = {
        "acknowledged": len(acks),
        "unacknowledged_sends": len(failed),
        "records": sum(c.records for c in checks),
        "high_water": sum(c.high_water for c in checks),
        "lost": sum(len(c.lost) for c in checks),
        "misplaced": sum(len(c.misplaced) for c in checks),
        "offsets_reused": sum(len(c.offsets_reused) for c in checks),
        "sends_written_twice": sum(len(c.sends_written_twice) for c in checks),
        "out_of_order": sum(len(c.out_of_order) for c in checks),
        "beyond_high_water": sum(len(c.beyond_high_water) for c in checks),
        "unparseable": sum(len(c.unparseable) for c in checks),
        "holes": sum(c.hole_count for c in checks),
        "unexplained_holes": sum(c.unexplained_holes for c in checks),
        "resend_copies": sum(c.resend_copy_count for c in checks),
        "unacknowledged_present": sum(c.unacknowledged_present for c in checks),
        "unacknowledged_out_of_order": sum(len(c.unacknowledged_out_of_order) for c in checks),
        "stalls": sum(len(c.stalls) for c in checks),
    }
    stops = [p.stats.stopped_after_s for p in producers if p.stats.stopped_after_s is not None]
    return TortureSummary(
        storage=local.storage if local is not None else "external",
        bootstrap=bootstrap, topic=topic, config=asdict(config),
        elapsed_s=round(elapsed, 2), produce_s=round(produce_s, 2),
        acknowledged=len(acks), acks_per_s=round(len(acks) / max(produce_s, 1e-9), 1),
        sends=sum(p.stats.sends for p in producers), resends=sum(p.stats.resends for p in producers),
        minus_one_acks=sum(p.stats.minus_one_acks for p in producers), unacknowledged_sends=len(failed),
        errors=dict(errors), recreations=sum(p.stats.recreations for p in producers),
        recreate_reasons=dict(reasons),
        producer_create_failures=sum(p.stats.create_failures for p in producers),
        producers_crashed=[f"{p.key}: {p.crashed}" for p in producers if p.crashed]
        + [f"{p.key}: still running" for p in producers if p.is_alive()],
        producers_acked_after_last_event=sum(
            1 for p in producers if any(a.at > last_event_end for a in p.acks)),
        producers_idle_after_last_event=[
            {"key": p.key, "acknowledged": p.stats.acknowledged,
             "last_ack_at": round(p.acks[-1].at, 3) if p.acks else None,
             "errors": dict(p.stats.errors), "recreations": p.stats.recreations,
             "create_failures": p.stats.create_failures, "last_failed": [asdict(f) for f in p.failed[-3:]],
             "stopped_after_s": p.stats.stopped_after_s}
            for p in producers if not any(a.at > last_event_end for a in p.acks)],
        slowest_producer_stop_s=max(stops, default=None),
        keys_on_several_partitions=sorted(k for k, ps in partitions_of_key.items() if len(ps) > 1),
        chaos=[asdict(e) for e in events],
        read={"complete": read.complete, "elapsed_s": round(read.elapsed_s, 3),
              "fetch_max_wait_ms": read.fetch_max_wait_ms, "log_start": read.log_start},
        partitions=[_partition_summary(c) for c in checks],
        totals=totals,
        tails=[asdict(t.report) for t in tailers],
        replays=[asdict(r) for r in replays])


def _partition_summary(check: PartitionCheck, sample: int = 10) -> dict[str, Any]:
    """Counts, and the first few of each kind of finding (a lossy run has thousands)."""
    summary: dict[str, Any] = {}
    for name, value in asdict(check).items():
        if isinstance(value, list):
            summary[name] = len(value) if name != "holes" else check.hole_count
            if value:
                summary[f"{name}_first"] = value[:sample]
        elif isinstance(value, dict):
            summary[name] = len(value)
            if value:
                summary[f"{name}_first"] = dict(list(value.items())[:sample])
        else:
            summary[name] = value
    summary["unexplained_holes"] = check.unexplained_holes
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.broker.torture", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--storage", choices=[s for s in STORAGES if s != "memory"], default="seaweedfs")
    parser.add_argument("--duration", type=float,
                        default=float(os.environ.get(SECONDS_ENV, DEFAULT_SECONDS)), help="seconds of producing")
    parser.add_argument("--bootstrap", help="torture this broker instead, without kills")
    parser.add_argument("--keep", type=Path, help="keep the local broker's data and logs in this directory")
    parser.add_argument("--client-log", type=Path, help="write kafka-python's warnings and errors to this file")
    parser.add_argument("--strict", action="store_true",
                        help="fail on Tansu's known defects too (holes, second copies of acknowledged messages)")
    args = parser.parse_args(argv)
    config = TortureConfig(duration_s=args.duration)
    if args.client_log:
        logging.basicConfig(filename=args.client_log, level=logging.WARNING,
                            format="%(asctime)s %(threadName)s %(name)s %(message)s")

    def say(line: str) -> None:
        sys.stderr.write(line + "\n")

    if args.bootstrap:
        summary = run_torture(args.bootstrap, config, log=say)
    else:
        data_dir = args.keep or Path(tempfile.mkdtemp(prefix="samenveilig-torture-"))
        local = LocalBroker(storage=args.storage, data_dir=data_dir, log_dir=data_dir / "logs")
        try:
            local.start()
            summary = run_torture(local.bootstrap, config, local=local, log=say)
        finally:
            local.stop()
            if args.keep is None:
                shutil.rmtree(data_dir, ignore_errors=True)
    sys.stdout.write(summary.to_json() + "\n")
    failures = summary.failures()
    for failure in failures:
        say(f"torture: FAILED: {failure}")
    for defect in summary.tansu_defects():
        say(f"torture: {'FAILED' if args.strict else 'Tansu defect'}: {defect}")
    return 1 if failures or (args.strict and summary.tansu_defects()) else 0


if __name__ == "__main__":
    sys.exit(main())
