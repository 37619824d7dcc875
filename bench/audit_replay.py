"""Audit replay: how fast the audit reads and folds a year of events, and how fast it answers
"who could see this dossier at T" - against the broker's raw consume rate, in one run.

    .venv/bin/python -m bench.audit_replay [--events N] [--bootstrap HOST:PORT] [--json] [--profile]

1. A realistic school year of N events (default 1,000,000) is generated, encoded with the
   EventCodec (an InMemoryKeyStore seals the personal fields) and produced to a new prefix's
   registry.events.v1 and access.events.v1 (3 partitions; kafka-python, acks=all, linger 20 ms,
   large batches). About 200 branches in 10 wijknetwerken, staff joining, changing role and
   departing (some reported late), dossiers opened, reassigned and closed, explicit grants and
   revocations, and - most of the events - DossierViewed, hash-chained per dossier. Generating
   and producing are timed apart and are not part of the replay.
2. Raw consume: the same topics read to the high-water marks of the fetch responses with manual
   assignment, only counting records, with the consumer settings read_topics uses; and, for
   context, bench.broker_baseline.raw_consume (kafka-python's default fetch sizes) per topic, and
   the baseline with check_crcs=False (what kafka-python's CRC check costs).
3. Replay as the audit CLI does it: read_topics + decode_all (an empty InMemoryKeyStore, so
   personal fields read as "verwijderd") + reduce(evolve) into an AccessState. Split into read,
   decode and fold, each with its time in the garbage collector; target 1M events < 30 s. Then,
   on the same records: evolve copying its mappings with .copy(), a fold into mutable dicts, and
   decoding only the events that can change the state (skipping views by their ce_type header).
4. Point in time: state_at(entries, T, "valid") + who_could_see(state, dossier, T) for 20 random
   dossiers at a mid-year T; target < 100 ms. Also who_could_see alone on a folded state, and
   alternatives the CLI could adopt (implemented here only): a sorted index of the events that
   change the access state, folded up to T (bisect) with evolve or with mutable dicts, and
   checkpoints of the folded state, also after gc.freeze(). Every alternative's answers are
   checked against state_at's.

The broker: --bootstrap, else KAFKA_BOOTSTRAP_SERVERS, else a local in-memory Tansu started (and
stopped) by this run. Progress goes to stderr; the table (or with --json, one JSON object) to
stdout. Every wait is bounded; a phase that runs out of time aborts the run with exit code 1.
The targets print PASS or MISS for information; a MISS does not fail the run. --profile runs
decode and fold of 50,000 of the records under cProfile afterwards and prints the top costs to
stderr.
"""

from __future__ import annotations

import argparse
import bisect
import cProfile
import gc
import io
import json
import logging
import os
import pstats
import random
import resource
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from functools import reduce
from types import MappingProxyType
from typing import Any
from uuid import UUID

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from bench.broker_baseline import (
    PARTITIONS,
    REPLICATION,
    machine_context,
    open_broker,
    raw_consume,
    wait_for_partitions,
)
from bench.common import BenchTimeout, Deadline, Progress, latency_summary_ms, ratio
from services.access.domain import (
    BRANCH_RULES,
    INITIAL_STATE,
    RULE_CONTACT,
    RULE_EXPLICIT,
    RULE_SWV,
    AccessState,
    branch_wijknetwerk,
    evolve,
    evolve_dossier,
    evolve_grant,
    evolve_member,
)
from services.access.history import events_known, state_at, who_could_see
from shared.contracts.envelope import EventCodec, RecordedEvent
from shared.contracts.events import (
    AccessGranted,
    AccessRevoked,
    Address,
    BranchBrinChanged,
    BranchFounded,
    BranchWijknetwerkChanged,
    ConsultantDeparted,
    ConsultantJoined,
    DossierClosed,
    DossierContactAssigned,
    DossierOpened,
    DossierViewed,
    Event,
    NotificationsStopped,
    PupilDataPurged,
    StaffDeparted,
    StaffJoined,
    StaffRole,
    StaffRoleChanged,
    view_entry_hash,
)
from shared.contracts.topics import EVENT_TOPICS, Topic, TopicNames
from shared.crypto import InMemoryKeyStore
from shared.kafka.admin import ensure_topics
from shared.kafka.log import Entry, LogRecord, decode_all, read_topics

# Targets from the issue (informational: PASS or MISS, never a failed run).
REPLAY_TARGET_S = 30.0  # for 1,000,000 events
REPLAY_TARGET_EVENTS = 1_000_000
QUERY_TARGET_MS = 100.0
QUERIES = 20
SLOW_QUERIES = 5  # the sorted index folded with evolve: a few suffice to show its cost
SEED = 20261125
# The producer: batching, as a bulk import would do it.
PRODUCER_CONFIG: dict[str, Any] = {"acks": "all", "linger_ms": 20, "batch_size": 512 * 1024}
ENCODE_CHUNK = 50_000  # events generated and encoded, then sent and flushed (timed), at a time
# The consumer settings read_topics uses, so the raw baseline reads as the replay does.
READ_TOPICS_CONSUMER: dict[str, Any] = {"max_partition_fetch_bytes": 8 * 1024 * 1024,
                                        "fetch_max_bytes": 64 * 1024 * 1024, "max_poll_records": 5000}
# Checkpoint every so many state-changing events (the checkpoint alternative).
CHECKPOINT_EVERY = 500
PROFILE_SAMPLE = 50_000
EVENTS_PER_BRANCH_BUDGET = 500  # one branch per 500 events, at most MAX_BRANCHES
MAX_BRANCHES = 200
MIN_EVENTS = 2_000

WIJKNETWERKEN = ["Centrum", "Charlois", "Delfshaven", "Feijenoord", "Hillegersberg-Schiebroek",
                 "IJsselmonde", "Kralingen-Crooswijk", "Noord", "Overschie", "Prins Alexander"]
ADDRESS = Address(street="Schiekade", house_number="12", postcode="3032 AJ", city="Rotterdam")
YEAR_START = datetime(2025, 8, 1, 6, 0, tzinfo=UTC)
YEAR_END = datetime(2026, 7, 17, 16, 0, tzinfo=UTC)
MID_YEAR = datetime(2026, 2, 2, 10, 0, tzinfo=UTC)
# Events the access fold never changes the state for: what the sorted index leaves out.
FOLD_NO_OPS = (DossierViewed, NotificationsStopped)

progress = Progress()


# --- time limits ---------------------------------------------------------------------------

def generate_limit(n: int) -> float:
    return 120.0 + n * 0.0005


def produce_limit(n: int) -> float:
    return 60.0 + n * 0.002


def consume_limit(n: int) -> float:
    return 60.0 + n * 0.002


def replay_limit(n: int) -> float:
    return 120.0 + n * 0.002


def query_limit(n: int) -> float:
    return 300.0 + n * 0.001


# --- memory --------------------------------------------------------------------------------

def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def rss_mb() -> float:
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return float("nan")


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


# --- 1. the school year --------------------------------------------------------------------

@dataclass
class Person:
    staff_id: UUID
    branch: int | None  # None: an SWV consultant
    role: StaffRole
    joined: datetime
    access_until: date | None = None
    new_role: tuple[datetime, StaffRole] | None = None
    departed: datetime | None = None  # effective
    departure_recorded: datetime | None = None
    wijknetwerken: tuple[str, ...] = ()

    def role_at(self, at: datetime) -> StaffRole:
        if self.new_role is not None and self.new_role[0] <= at:
            return self.new_role[1]
        return self.role

    def present(self, at: datetime) -> bool:
        return self.joined <= at and (self.departed is None or at < self.departed)


@dataclass
class PlannedDossier:
    dossier_id: UUID
    branch: int
    opened: datetime
    closed: datetime | None
    contacts: list[tuple[datetime, UUID]] = field(default_factory=list)


@dataclass(frozen=True)
class Planned:
    """One event of the history: when it was recorded (log order) and when it takes effect."""

    recorded: datetime
    seq: int
    effective: datetime
    event: Event


class SchoolYear:
    """A seeded, realistic year of registry and access events. The structural events (branches,
    staff, dossiers, grants) are planned up front; the views are generated in time order and
    merged in, each by someone the access service would have let in as far as it knew then."""

    def __init__(self, n: int, seed: int = SEED) -> None:
        self.n = n
        self.rng = random.Random(seed)
        self.branch_count = max(1, min(MAX_BRANCHES, n // EVENTS_PER_BRANCH_BUDGET))
        self.branch_ids: list[UUID] = []
        self.branch_wijk: list[str] = []
        self.people: list[Person] = []
        self.consultants: list[Person] = []
        self.dossiers: list[PlannedDossier] = []
        self.grants: list[tuple[UUID, UUID]] = []
        self.planned: list[Planned] = []
        self._seq = 0
        self._plan()
        self.views = n - len(self.planned)
        if self.views < 0:
            raise ValueError(f"{n} events are too few for {self.branch_count} branches")

    # helpers
    def uid(self) -> UUID:
        return UUID(int=self.rng.getrandbits(128), version=4)

    def between(self, start: datetime, end: datetime) -> datetime:
        seconds = max(0.0, (end - start).total_seconds())
        return (start + timedelta(seconds=int(self.rng.random() * seconds))).replace(microsecond=0)

    def add(self, event: Event, recorded: datetime, effective: datetime | None = None) -> None:
        self._seq += 1
        self.planned.append(Planned(recorded, self._seq, effective or recorded, event))

    # planning
    def _plan(self) -> None:
        rng = self.rng
        for i in range(self.branch_count):
            branch_id = self.uid()
            wijk = WIJKNETWERKEN[i % len(WIJKNETWERKEN)]
            self.branch_ids.append(branch_id)
            self.branch_wijk.append(wijk)
            code = f"{10 + i // 26 % 90:02d}{chr(65 + i % 26)}{chr(65 + i // 26 % 26)}00"
            self.add(BranchFounded(branch_id=branch_id, vestigingscode=code, name=f"Basisschool {i}",
                                   address=ADDRESS, phone="+31101234567", wijknetwerk=wijk),
                     YEAR_START + timedelta(minutes=i))
        by_branch: list[list[Person]] = [[] for _ in range(self.branch_count)]
        school_start = datetime(2025, 8, 18, 7, 0, tzinfo=UTC)
        for b in range(self.branch_count):
            roles = ([StaffRole.IB_ER] * rng.randint(1, 2) + [StaffRole.DIRECTEUR, StaffRole.ADMINISTRATOR]
                     + [StaffRole.EXTERN] * rng.randint(1, 3) + [StaffRole.STAGIAIR] * rng.randint(0, 2)
                     + [StaffRole.LEERKRACHT] * rng.randint(12, 20))
            for role in roles:
                if role in (StaffRole.EXTERN, StaffRole.STAGIAIR):
                    joined = self.between(datetime(2025, 9, 1, 7, tzinfo=UTC), datetime(2026, 3, 31, tzinfo=UTC))
                    days = rng.randint(60, 200) if role is StaffRole.EXTERN else rng.randint(90, 150)
                    until = min((joined + timedelta(days=days)).date(), YEAR_END.date())
                    person = Person(self.uid(), b, role, joined, access_until=until)
                else:
                    joined = (self.between(school_start, school_start + timedelta(days=11)) if rng.random() < 0.9
                              else self.between(datetime(2025, 9, 1, tzinfo=UTC), datetime(2026, 5, 31, tzinfo=UTC)))
                    person = Person(self.uid(), b, role, joined)
                    if role is StaffRole.LEERKRACHT and rng.random() < 0.02:
                        person.new_role = (self.between(joined + timedelta(days=14), datetime(2026, 6, 1, tzinfo=UTC)),
                                           StaffRole.IB_ER)
                    elif role is StaffRole.IB_ER and rng.random() < 0.05:
                        person.new_role = (self.between(joined + timedelta(days=14), datetime(2026, 6, 1, tzinfo=UTC)),
                                           StaffRole.LEERKRACHT)
                    if rng.random() < 0.05:
                        earliest = max(joined, person.new_role[0] if person.new_role else joined) + timedelta(days=20)
                        if earliest < YEAR_END - timedelta(days=30):
                            person.departed = self.between(earliest, YEAR_END - timedelta(days=21))
                            late = rng.random() < 0.3  # reported late, as in the audit test
                            person.departure_recorded = (person.departed + timedelta(hours=rng.randint(24, 21 * 24))
                                                         if late else person.departed)
                self.people.append(person)
                by_branch[b].append(person)
        consultants = max(1, len(self.people) // 500)
        for c in range(consultants):
            wijks = tuple(sorted({WIJKNETWERKEN[c % len(WIJKNETWERKEN)],
                                  *(rng.sample(WIJKNETWERKEN, 1) if rng.random() < 0.5 else [])}))
            person = Person(self.uid(), None, StaffRole.SWV_CONSULTANT,
                            datetime(2025, 8, 25, 8, tzinfo=UTC) + timedelta(minutes=c), wijknetwerken=wijks)
            if c == 0 and consultants >= 4:
                person.departed = person.departure_recorded = datetime(2026, 3, 2, 9, tzinfo=UTC)
            self.consultants.append(person)
        self._plan_staff_events()
        self._plan_dossiers(by_branch)
        self._plan_grants(by_branch)
        self._plan_departures()
        self.planned.sort(key=lambda p: (p.recorded, p.seq))

    def _plan_staff_events(self) -> None:
        for n, person in enumerate(self.people):
            branch_id = self.branch_ids[person.branch]  # type: ignore[index]
            self.add(StaffJoined(branch_id=branch_id, staff_id=person.staff_id, role=person.role,
                                 name=f"Medewerker {n}", email=f"m{n}@school.example",
                                 access_until=person.access_until), person.joined)
            if person.role in BRANCH_RULES:  # the access service's reaction
                self.add(AccessGranted(staff_id=person.staff_id, branch_id=branch_id,
                                       rule=BRANCH_RULES[person.role]), person.joined + timedelta(seconds=1))
            if person.new_role is not None:
                at, role = person.new_role
                self.add(StaffRoleChanged(branch_id=branch_id, staff_id=person.staff_id, previous_role=person.role,
                                          role=role), at)
                if person.role in BRANCH_RULES:
                    self.add(AccessRevoked(staff_id=person.staff_id, branch_id=branch_id,
                                           rule=BRANCH_RULES[person.role], reason="role changed"),
                             at + timedelta(seconds=1))
                if role in BRANCH_RULES:
                    self.add(AccessGranted(staff_id=person.staff_id, branch_id=branch_id, rule=BRANCH_RULES[role]),
                             at + timedelta(seconds=1))
        for n, person in enumerate(self.consultants):
            self.add(ConsultantJoined(staff_id=person.staff_id, name=f"Consulent {n}", email=f"c{n}@swv.example",
                                      wijknetwerken=list(person.wijknetwerken)), person.joined)
            self.add(AccessGranted(staff_id=person.staff_id, rule=RULE_SWV), person.joined + timedelta(seconds=1))
            if person.departed is not None:
                self.add(ConsultantDeparted(staff_id=person.staff_id), person.departed)
                self.add(AccessRevoked(staff_id=person.staff_id, rule=RULE_SWV, reason="staff departed"),
                         person.departed + timedelta(seconds=2))
                self.add(NotificationsStopped(staff_id=person.staff_id, reason="staff departed"),
                         person.departed + timedelta(seconds=2))

    def _contact_candidates(self, staff: list[Person], at: datetime) -> list[Person]:
        teachers = [p for p in staff if p.present(at) and p.role_at(at) is StaffRole.LEERKRACHT
                    and (p.departure_recorded is None or at < p.departure_recorded)]
        ib_ers = [p for p in staff if p.present(at) and p.role_at(at) is StaffRole.IB_ER]
        if teachers and (self.rng.random() < 0.85 or not ib_ers):
            return teachers
        return ib_ers or [p for p in staff if p.present(at) and p.role_at(at) is StaffRole.DIRECTEUR]

    def _plan_dossiers(self, by_branch: list[list[Person]]) -> None:
        rng = self.rng
        year_open = datetime(2025, 8, 25, 8, tzinfo=UTC)
        for b, staff in enumerate(by_branch):
            branch_id = self.branch_ids[b]
            for _ in range(rng.randint(20, 30)):
                opened = (self.between(year_open, year_open + timedelta(days=14)) if rng.random() < 0.15
                          else self.between(datetime(2025, 9, 8, tzinfo=UTC), datetime(2026, 6, 30, tzinfo=UTC)))
                candidates = self._contact_candidates(staff, opened)
                if not candidates:
                    continue
                closed = (self.between(opened + timedelta(days=14), YEAR_END - timedelta(days=1))
                          if rng.random() < 0.3 and opened + timedelta(days=15) < YEAR_END else None)
                dossier = PlannedDossier(self.uid(), b, opened, closed)
                contact = rng.choice(candidates)
                dossier.contacts.append((opened, contact.staff_id))
                self.add(DossierOpened(branch_id=branch_id, dossier_id=dossier.dossier_id, pupil_id=self.uid(),
                                       contact_staff_id=contact.staff_id,
                                       summary="Zorgen over lezen en concentratie in de klas."), opened)
                end = closed or YEAR_END
                reported = (self.between(opened + timedelta(days=7), end) if rng.random() < 0.2
                            and opened + timedelta(days=8) < end else None)
                current = contact
                # The contact person's departure (reported when it was) moves the dossier to an IB'er.
                while True:
                    gone = current.departure_recorded
                    if gone is not None and gone + timedelta(minutes=1) < end and (reported is None or gone < reported):
                        at = gone + timedelta(minutes=1)
                        successors = [p for p in staff if p.present(at) and p.role_at(at) is StaffRole.IB_ER]
                        if successors:
                            current = rng.choice(successors)
                            dossier.contacts.append((at, current.staff_id))
                            self.add(DossierContactAssigned(branch_id=branch_id, dossier_id=dossier.dossier_id,
                                                            contact_staff_id=current.staff_id,
                                                            reason="contact departed"), at)
                            continue
                    if reported is not None:
                        candidates = [p for p in self._contact_candidates(staff, reported)
                                      if p.staff_id != current.staff_id]
                        if candidates:
                            current = rng.choice(candidates)
                            dossier.contacts.append((reported, current.staff_id))
                            self.add(DossierContactAssigned(branch_id=branch_id, dossier_id=dossier.dossier_id,
                                                            contact_staff_id=current.staff_id, reason="reported"),
                                     reported)
                        reported = None
                        continue
                    break
                if closed is not None:
                    self.add(DossierClosed(branch_id=branch_id, dossier_id=dossier.dossier_id), closed)
                self.dossiers.append(dossier)

    def _plan_grants(self, by_branch: list[list[Person]]) -> None:
        rng = self.rng
        dossiers_of: list[list[PlannedDossier]] = [[] for _ in range(self.branch_count)]
        for dossier in self.dossiers:
            dossiers_of[dossier.branch].append(dossier)
        self._grant_windows: dict[UUID, list[tuple[UUID, datetime, datetime | None, datetime | None]]] = {}

        def grant(person: Person, dossier: PlannedDossier, at: datetime, until: datetime | None) -> None:
            branch_id = self.branch_ids[dossier.branch]
            self.add(AccessGranted(staff_id=person.staff_id, branch_id=branch_id, dossier_id=dossier.dossier_id,
                                   rule=RULE_EXPLICIT, until=until), at)
            revoked = None
            if rng.random() < 0.1:
                revoked = self.between(at + timedelta(hours=1), min(until or YEAR_END, YEAR_END))
                self.add(AccessRevoked(staff_id=person.staff_id, branch_id=branch_id, dossier_id=dossier.dossier_id,
                                       rule=RULE_EXPLICIT, reason="revoked by IB'er or director"), revoked)
            self.grants.append((person.staff_id, dossier.dossier_id))
            self._grant_windows.setdefault(person.staff_id, []).append((dossier.dossier_id, at, until, revoked))

        for b, staff in enumerate(by_branch):
            for person in staff:
                if person.role not in (StaffRole.EXTERN, StaffRole.STAGIAIR) or person.access_until is None:
                    continue
                access_end = datetime.combine(person.access_until, datetime.min.time(), UTC) + timedelta(days=1)
                chosen: set[UUID] = set()
                for _ in range(rng.randint(3, 8)):
                    at = self.between(person.joined, min(access_end, YEAR_END))
                    open_now = [d for d in dossiers_of[b] if d.opened < at and (d.closed is None or at < d.closed)
                                and d.dossier_id not in chosen]
                    if not open_now:
                        continue
                    dossier = rng.choice(open_now)
                    chosen.add(dossier.dossier_id)
                    grant(person, dossier, at, min(at + timedelta(days=rng.randint(30, 120)), access_end))
            for dossier in dossiers_of[b]:
                if rng.random() < 0.05:
                    end = dossier.closed or YEAR_END
                    at = self.between(dossier.opened + timedelta(hours=1), end)
                    contacts = {c for _, c in dossier.contacts}
                    teachers = [p for p in staff if p.present(at) and p.role_at(at) is StaffRole.LEERKRACHT
                                and (p.departure_recorded is None or at < p.departure_recorded)
                                and p.staff_id not in contacts]
                    if teachers:
                        until = at + timedelta(days=rng.randint(30, 90)) if rng.random() < 0.5 else None
                        grant(rng.choice(teachers), dossier, at, until)

    def _plan_departures(self) -> None:
        for person in self.people:
            if person.departed is None or person.departure_recorded is None:
                continue
            branch_id = self.branch_ids[person.branch]  # type: ignore[index]
            self.add(StaffDeparted(branch_id=branch_id, staff_id=person.staff_id), person.departure_recorded,
                     person.departed)
            # The access service's reactions, when it learns of the departure.
            reacted = person.departure_recorded + timedelta(seconds=2)
            role = person.role_at(person.departed)
            if role in BRANCH_RULES:
                self.add(AccessRevoked(staff_id=person.staff_id, branch_id=branch_id, rule=BRANCH_RULES[role],
                                       reason="staff departed"), reacted, person.departed)
            for dossier_id, at, until, revoked in self._grant_windows.get(person.staff_id, []):
                if at <= person.departed and (until is None or person.departed < until) and (
                        revoked is None or person.departed < revoked):
                    self.add(AccessRevoked(staff_id=person.staff_id, branch_id=branch_id, dossier_id=dossier_id,
                                           rule=RULE_EXPLICIT, reason="staff departed"), reacted, person.departed)
            self.add(NotificationsStopped(staff_id=person.staff_id, branch_id=branch_id, reason="staff departed"),
                     reacted, person.departed)

    # the stream, in log (record-time) order
    def stream(self) -> Iterator[tuple[Event, str, datetime, datetime]]:
        """(event, event id, recorded_at, effective_at) for all N events, in the order recorded."""
        rng = self.rng
        view_times = self._view_times()
        world = _World(self)
        planned = iter(self.planned)
        upcoming = next(planned, None)
        for ts, index in view_times:
            at = datetime.fromtimestamp(ts, UTC)
            while upcoming is not None and upcoming.recorded <= at:
                world.apply(upcoming.event)
                yield upcoming.event, str(self.uid()), upcoming.recorded, upcoming.effective
                upcoming = next(planned, None)
            dossier = self.dossiers[index]
            staff_id, allowed, rule = world.viewer(dossier, at, rng)
            event_id = str(self.uid())
            previous = world.chain.get(dossier.dossier_id)
            entry_hash = view_entry_hash(previous, event_id, staff_id, dossier.dossier_id, allowed, rule, at)
            world.chain[dossier.dossier_id] = entry_hash
            yield (DossierViewed(staff_id=staff_id, branch_id=self.branch_ids[dossier.branch],
                                 dossier_id=dossier.dossier_id, allowed=allowed, rule=rule, viewed_at=at,
                                 previous_hash=previous, entry_hash=entry_hash), event_id, at, at)
        while upcoming is not None:
            yield upcoming.event, str(self.uid()), upcoming.recorded, upcoming.effective
            upcoming = next(planned, None)

    def _view_times(self) -> list[tuple[float, int]]:
        """Each view's moment and dossier: dossiers drawn by how long they are open, the moment
        uniform in that time (from a minute after opening), all in time order."""
        spans = []
        for dossier in self.dossiers:
            start = dossier.opened.timestamp() + 60
            end = (dossier.closed or YEAR_END).timestamp() - 60
            spans.append((start, max(end - start, 1.0)))
        cumulative = []
        total = 0.0
        for _, width in spans:
            total += width
            cumulative.append(total)
        chosen = self.rng.choices(range(len(spans)), cum_weights=cumulative, k=self.views)
        rnd = self.rng.random
        out = [(spans[i][0] + rnd() * spans[i][1], i) for i in chosen]
        out.sort()
        return out


class _World:
    """What the live access service knew at each moment while the views were made."""

    def __init__(self, year: SchoolYear) -> None:
        self.role: dict[UUID, StaffRole] = {}
        self.active: set[UUID] = set()
        self.by_branch_role: dict[tuple[UUID, StaffRole], list[UUID]] = {}
        self.consultants: dict[str, list[UUID]] = {}
        self.contact: dict[UUID, UUID] = {}
        self.grants: dict[UUID, dict[UUID, datetime | None]] = {}
        self.teachers: dict[UUID, list[UUID]] = {}
        self.chain: dict[UUID, str] = {}
        self.branch_wijk = dict(zip(year.branch_ids, year.branch_wijk, strict=True))
        self.branch_ids = year.branch_ids

    def _place(self, branch_id: UUID, staff_id: UUID, role: StaffRole, present: bool) -> None:
        members = self.by_branch_role.setdefault((branch_id, role), [])
        if present and staff_id not in members:
            members.append(staff_id)
        elif not present and staff_id in members:
            members.remove(staff_id)

    def apply(self, event: Event) -> None:
        match event:
            case StaffJoined():
                self.role[event.staff_id] = event.role
                self.active.add(event.staff_id)
                self._place(event.branch_id, event.staff_id, event.role, True)
            case StaffRoleChanged():
                self._place(event.branch_id, event.staff_id, event.previous_role, False)
                self._place(event.branch_id, event.staff_id, event.role, True)
                self.role[event.staff_id] = event.role
            case StaffDeparted():
                self.active.discard(event.staff_id)
                self._place(event.branch_id, event.staff_id, self.role[event.staff_id], False)
            case ConsultantJoined():
                self.role[event.staff_id] = StaffRole.SWV_CONSULTANT
                self.active.add(event.staff_id)
                for wijk in event.wijknetwerken:
                    self.consultants.setdefault(wijk, []).append(event.staff_id)
            case ConsultantDeparted():
                self.active.discard(event.staff_id)
                for members in self.consultants.values():
                    if event.staff_id in members:
                        members.remove(event.staff_id)
            case DossierOpened() | DossierContactAssigned():
                self.contact[event.dossier_id] = event.contact_staff_id
            case AccessGranted(rule=rule) if rule == RULE_EXPLICIT and event.dossier_id is not None:
                self.grants.setdefault(event.dossier_id, {})[event.staff_id] = event.until
            case AccessRevoked(rule=rule) if rule == RULE_EXPLICIT and event.dossier_id is not None:
                self.grants.get(event.dossier_id, {}).pop(event.staff_id, None)

    def viewer(self, dossier: PlannedDossier, at: datetime, rng: random.Random) -> tuple[UUID, bool, str]:
        """Who opens the dossier now, and what the access check said."""
        branch_id = self.branch_ids[dossier.branch]
        contact = self.contact[dossier.dossier_id]
        r = rng.random()
        pool: list[UUID] = []
        if r < 0.25:
            pool = self.by_branch_role.get((branch_id, StaffRole.IB_ER), [])
        elif r < 0.35:
            pool = self.by_branch_role.get((branch_id, StaffRole.DIRECTEUR), [])
        elif r < 0.45:
            pool = [s for s, until in self.grants.get(dossier.dossier_id, {}).items()
                    if s in self.active and (until is None or at < until)]
        elif r < 0.50:
            pool = self.consultants.get(self.branch_wijk[branch_id], [])
        elif r < 0.55:
            teachers = self.by_branch_role.get((branch_id, StaffRole.LEERKRACHT), [])
            if teachers:
                other = rng.choice(teachers)
                if other != contact:
                    return other, False, "no-rule"
        staff_id = rng.choice(pool) if pool else contact
        if staff_id not in self.active:
            return staff_id, False, "departed"
        role = self.role.get(staff_id)
        if role in BRANCH_RULES:
            return staff_id, True, BRANCH_RULES[role]
        if role is StaffRole.SWV_CONSULTANT:
            return staff_id, True, RULE_SWV
        if staff_id == contact:
            return staff_id, True, RULE_CONTACT
        return staff_id, True, RULE_EXPLICIT


def generate_and_produce(bootstrap: str, prefix: str, n: int) -> tuple[dict[str, Any], SchoolYear]:
    topics = TopicNames(prefix)
    names = [topics(t) for t in EVENT_TOPICS]
    ensure_topics(bootstrap, names, PARTITIONS, REPLICATION)
    plan_started = time.perf_counter()
    year = SchoolYear(n)
    plan_s = time.perf_counter() - plan_started
    keys = InMemoryKeyStore()
    codecs = {Topic.REGISTRY_EVENTS: EventCodec(keys, source="/samenveilig/registry", topics=topics),
              Topic.ACCESS_EVENTS: EventCodec(keys, source="/samenveilig/access", topics=topics)}
    producer = KafkaProducer(bootstrap_servers=bootstrap, client_id="bench-audit-producer", **PRODUCER_CONFIG)
    failures: list[BaseException] = []
    generate_deadline = Deadline(generate_limit(n), "generating and encoding the year")
    produce_deadline = Deadline(produce_limit(n), "producing the year")
    try:
        for name in names:
            producer.partitions_for(name)  # metadata before the clock starts
        progress(f"generating and producing {n:,} events ({year.branch_count} branches, {len(year.people):,} staff, "
                 f"{len(year.dossiers):,} dossiers, {year.views:,} views)")
        stream = year.stream()
        generate_s = produce_s = 0.0
        sent = value_bytes = 0
        per_topic: Counter[str] = Counter()
        by_type: Counter[str] = Counter()
        while sent < n:
            started = time.perf_counter()
            chunk = []
            for event, event_id, recorded, effective in stream:
                chunk.append(codecs[event.topic].encode(event, event_id=event_id, recorded_at=recorded,
                                                        effective_at=effective))
                by_type[event.event_type] += 1
                if len(chunk) >= ENCODE_CHUNK:
                    break
            generate_s += time.perf_counter() - started
            generate_deadline.check(f"{sent + len(chunk):,} generated")
            if not chunk:
                break
            started = time.perf_counter()
            for encoded in chunk:
                producer.send(encoded.topic, key=encoded.key, value=encoded.value,
                              headers=encoded.headers).add_errback(failures.append)
                per_topic[topics.logical(encoded.topic)] += 1
                value_bytes += len(encoded.value)
            producer.flush(timeout=max(1.0, produce_deadline.remaining()))
            produce_s += time.perf_counter() - started
            produce_deadline.check(f"{sent:,} sent")
            if failures:
                raise RuntimeError(f"{len(failures)} records failed to send: {failures[0]!r}")
            sent += len(chunk)
            progress(f"  {sent:,} produced ({sent / produce_s:,.0f} msg/s sending, "
                     f"{sent / generate_s:,.0f} events/s generating+encoding)")
        if sent != n:
            raise RuntimeError(f"generated {sent} events, expected {n}")
    finally:
        producer.close(timeout=10)
    result = {
        "events": n, "per_topic": dict(per_topic), "by_type": dict(sorted(by_type.items())),
        "branches": year.branch_count, "wijknetwerken": len(set(year.branch_wijk)), "staff": len(year.people),
        "consultants": len(year.consultants), "dossiers": len(year.dossiers), "explicit_grants": len(year.grants),
        "departures": sum(1 for p in year.people if p.departed), "late_reports": sum(
            1 for p in year.people if p.departed and p.departure_recorded != p.departed),
        "plan_seconds": round(plan_s, 2), "generate_encode_seconds": round(generate_s, 2),
        "generate_encode_rate_per_s": round(n / generate_s, 1),
        "produce_seconds": round(produce_s, 2), "produce_rate_per_s": round(n / produce_s, 1),
        "avg_value_bytes": round(value_bytes / n, 1), "producer_config": dict(PRODUCER_CONFIG),
    }
    return result, year


# --- 2. raw consume ------------------------------------------------------------------------

def raw_consume_to_high_water(bootstrap: str, physical: list[str], deadline: Deadline,
                              check_crcs: bool = True) -> dict[str, Any]:
    """Every record of the topics, counted, with manual assignment and read_topics' fetch settings;
    done when each partition's position reaches the fetch responses' high-water mark."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, client_id="bench-audit-raw", group_id=None,
                             enable_auto_commit=False, auto_offset_reset="earliest", check_crcs=check_crcs,
                             **READ_TOPICS_CONSUMER)
    try:
        assigned: list[TopicPartition] = []
        for topic in physical:
            assigned += wait_for_partitions(consumer, topic, deadline)
        consumer.assign(assigned)
        consumer.seek_to_beginning(*assigned)
        done: set[TopicPartition] = set()
        received = payload = 0
        started = time.perf_counter()
        while len(done) < len(assigned):
            deadline.check(f"{received:,} received")
            for records in consumer.poll(timeout_ms=200).values():
                received += len(records)
                payload += sum(len(r.value) for r in records)
            for tp in assigned:
                high_water = consumer.highwater(tp)
                if high_water is not None and consumer.position(tp) >= high_water:
                    done.add(tp)
        elapsed = time.perf_counter() - started
        return {"messages": received, "seconds": round(elapsed, 3), "rate_per_s": round(received / elapsed, 1),
                "bytes": payload, "consumer_config": dict(READ_TOPICS_CONSUMER)}
    finally:
        consumer.close()


def run_raw_consume(bootstrap: str, prefix: str, produced: dict[str, Any]) -> dict[str, Any]:
    topics = TopicNames(prefix)
    physical = [topics(t) for t in EVENT_TOPICS]
    n = produced["events"]
    progress("raw consume: all audited topics to the high-water mark (read_topics' fetch settings)")
    result = {"read_topics_settings": raw_consume_to_high_water(bootstrap, physical,
                                                                Deadline(consume_limit(n), "raw consume"))}
    if result["read_topics_settings"]["messages"] != n:
        raise RuntimeError(f"raw consume got {result['read_topics_settings']['messages']} records, expected {n}")
    progress(f"  {result['read_topics_settings']['rate_per_s']:,.0f} msg/s")
    progress("raw consume: bench.broker_baseline.raw_consume per topic (kafka-python's default fetch sizes)")
    seconds = 0.0
    for logical, count in produced["per_topic"].items():
        one = raw_consume(bootstrap, topics(logical), count)
        seconds += one["seconds"]
    result["broker_baseline_defaults"] = {"messages": n, "seconds": round(seconds, 3),
                                          "rate_per_s": round(n / seconds, 1)}
    progress(f"  {result['broker_baseline_defaults']['rate_per_s']:,.0f} msg/s")
    progress("raw consume: read_topics' fetch settings, but check_crcs=False (what the CRC check costs)")
    result["no_crc_check"] = raw_consume_to_high_water(bootstrap, physical, Deadline(consume_limit(n), "raw consume"),
                                                       check_crcs=False)
    progress(f"  {result['no_crc_check']['rate_per_s']:,.0f} msg/s")
    return result


def crc32c_implementation() -> str:
    """kafka-python checks (and the producer computes) CRC-32C per record batch: in C when the
    optional `crc32c` package is installed, else in pure Python."""
    from kafka.record import util

    return "C (crc32c package)" if getattr(util, "crc32c_c", None) is not None else "pure Python (no crc32c package)"


# --- 3. the replay -------------------------------------------------------------------------

MEMBER_EVENTS = (StaffJoined, StaffRoleChanged, StaffDeparted, ConsultantJoined, ConsultantDeparted)
DOSSIER_EVENTS = (DossierOpened, DossierContactAssigned, DossierClosed)
BRANCH_EVENTS = (BranchFounded, BranchWijknetwerkChanged, BranchBrinChanged)


def _copied(mapping: Mapping[Any, Any]) -> dict[Any, Any]:
    # MappingProxyType.copy() copies the dict behind it in C; {**proxy} and dict(proxy) go through
    # the mapping protocol and hash every key again (UUID.__hash__ is Python code).
    return mapping.copy() if isinstance(mapping, MappingProxyType) else dict(mapping)


def evolve_copying(state: AccessState, recorded: RecordedEvent) -> AccessState:
    """services.access.domain.evolve with one change: each mapping is copied with .copy()
    instead of {**mapping, key: value}. Still a new mapping per change."""
    event = recorded.event
    staff_id = getattr(event, "staff_id", None)
    if isinstance(event, MEMBER_EVENTS):
        member = evolve_member(state.staff.get(event.staff_id), recorded)
        if member is not None:
            staff = _copied(state.staff)
            staff[member.staff_id] = member
            state = replace(state, staff=MappingProxyType(staff))
    elif isinstance(event, DOSSIER_EVENTS):
        dossier = evolve_dossier(state.dossiers.get(event.dossier_id), recorded)
        if dossier is not None:
            dossiers = _copied(state.dossiers)
            dossiers[dossier.dossier_id] = dossier
            state = replace(state, dossiers=MappingProxyType(dossiers))
    elif isinstance(event, BRANCH_EVENTS):
        wijknetwerk = branch_wijknetwerk(state.wijknetwerken.get(event.branch_id), event)
        if wijknetwerk is not None:
            merged = _copied(state.wijknetwerken)
            merged[event.branch_id] = wijknetwerk
            state = replace(state, wijknetwerken=MappingProxyType(merged))
    elif isinstance(event, PupilDataPurged):
        gone = {d.dossier_id for d in state.dossiers.values() if d.pupil_id == event.pupil_id}
        state = replace(state, dossiers=MappingProxyType({k: v for k, v in state.dossiers.items() if k not in gone}),
                        grants=MappingProxyType({k: v for k, v in state.grants.items() if k[1] not in gone}))
    elif isinstance(event, AccessGranted | AccessRevoked) and staff_id is not None and event.dossier_id is not None:
        key = (staff_id, event.dossier_id)
        grant = evolve_grant(state.grants.get(key), recorded)
        if grant is not None:
            grants = _copied(state.grants)
            grants[key] = grant
            state = replace(state, grants=MappingProxyType(grants))
    return state


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


def run_replay(bootstrap: str, prefix: str, year: SchoolYear, n: int) -> tuple[dict[str, Any], list[Entry],
                                                                                AccessState, dict[str, Any]]:
    deadline = Deadline(replay_limit(n), "replay")
    names = [str(t) for t in EVENT_TOPICS]
    rss_before = rss_mb()
    progress("replay: read_topics (as the audit CLI)")
    gc_at = GC.seconds
    started = time.perf_counter()
    records = read_topics(bootstrap, TopicNames(prefix), names, timeout_s=deadline.remaining())
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
    expected_staff = len(year.people) + len(year.consultants)
    if (len(state.staff), len(state.dossiers), len(state.grants)) != (expected_staff, len(year.dossiers),
                                                                       len(year.grants)):
        raise RuntimeError(f"folded {len(state.staff)} staff, {len(state.dossiers)} dossiers, {len(state.grants)} "
                           f"grants; expected {expected_staff}, {len(year.dossiers)}, {len(year.grants)}")
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
    progress("replay alternatives: evolve copying with .copy(); fold with mutable dicts; decode only what "
             "changes the state")
    started = time.perf_counter()
    state_copying = reduce(evolve_copying, (e.event for e in entries), INITIAL_STATE)
    fold_copying_s = time.perf_counter() - started
    if state_copying != state:
        raise RuntimeError("evolve_copying gave another state than evolve")
    del state_copying
    started = time.perf_counter()
    state_mutable = fold_mutable(e.event for e in entries)
    fold_mutable_s = time.perf_counter() - started
    if state_mutable != state:
        raise RuntimeError("fold_mutable gave another state than reduce(evolve)")
    skip_types = {cls.event_type.encode() for cls in FOLD_NO_OPS}
    started = time.perf_counter()
    relevant: list[Entry] = []
    for name in names:
        chosen = [r for r in records.get(name, []) if _header(r, "ce_type") not in skip_types]
        relevant += decode_all(codec, chosen)[0]
    decode_relevant_s = time.perf_counter() - started
    started = time.perf_counter()
    state_relevant = fold_mutable(e.event for e in relevant)
    fold_relevant_s = time.perf_counter() - started
    if state_relevant != state:
        raise RuntimeError("folding only the state-changing events gave another state")
    alternatives = {
        "fold_copying_seconds": round(fold_copying_s, 3),
        "fold_mutable_seconds": round(fold_mutable_s, 3),
        "skip_views": {"decoded": len(relevant), "decode_seconds": round(decode_relevant_s, 3),
                       "fold_seconds": round(fold_relevant_s, 3),
                       "total_seconds": round(read_s + decode_relevant_s + fold_relevant_s, 3),
                       "rate_per_s": round(len(entries) / (read_s + decode_relevant_s + fold_relevant_s), 1)},
    }
    progress(f"  evolve with .copy() {fold_copying_s:.2f} s; mutable fold {fold_mutable_s:.2f} s; "
             f"skipping views by header: decode {decode_relevant_s:.2f} s "
             f"+ fold {fold_relevant_s:.2f} s for {len(relevant):,} events")
    return replay, entries, state, alternatives


def _header(record: LogRecord, name: str) -> bytes | None:
    for key, value in record.headers:
        if key == name:
            return value
    return None


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


def timed_queries(name: str, dossiers: list[UUID], answer: Callable[[UUID], list[Any]],
                  expected: dict[UUID, list[Any]] | None,
                  deadline: Deadline) -> tuple[dict[str, Any], dict[UUID, list[Any]]]:
    seconds: list[float] = []
    answers: dict[UUID, list[Any]] = {}
    gc_at = GC.seconds
    for dossier_id in dossiers:
        deadline.check(f"{name}: {len(seconds)} of {len(dossiers)} queries")
        started = time.perf_counter()
        answers[dossier_id] = answer(dossier_id)
        seconds.append(time.perf_counter() - started)
        if expected is not None and answers[dossier_id] != expected[dossier_id]:
            raise RuntimeError(f"{name} answered differently from state_at for dossier {dossier_id}")
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
    result: dict[str, Any] = {"at": at.isoformat(), "dossiers": len(dossiers)}

    progress(f"point in time: state_at(entries, T, 'valid') + who_could_see for {len(dossiers)} dossiers at "
             f"{at:%Y-%m-%d %H:%M}")
    result["state_at"], expected = timed_queries(
        "state_at + who_could_see", dossiers, lambda d: who_could_see(state_at(entries, at, "valid"), d, at),
        None, deadline)
    result["allowed_per_dossier"] = round(sum(len(v) for v in expected.values()) / len(expected), 1)

    # who_could_see alone: on the state at T, and on the fully folded state.
    at_state = state_at(entries, at, "valid")
    result["who_could_see_at_state"], _ = timed_queries(
        "who_could_see alone (state at T)", dossiers, lambda d: who_could_see(at_state, d, at), expected,
        deadline)
    result["who_could_see_full_state"], _ = timed_queries(
        "who_could_see alone (state after the whole log)", dossiers, lambda d: who_could_see(state, d, at),
        None, deadline)

    progress("point in time: alternatives (answers checked against state_at's)")
    result["events_known_mutable"], _ = timed_queries(
        "events_known (filter + sort all) + mutable fold", dossiers[:SLOW_QUERIES],
        lambda d: who_could_see(fold_mutable(e.event for e in events_known(entries, at, "valid")), d, at),
        expected, deadline)
    started = time.perf_counter()
    index = SortedIndex.build(entries)
    index_s = time.perf_counter() - started
    result["index"] = {"build_seconds": round(index_s, 3), "events": len(index.events),
                       "events_up_to_t": index.upto(at)}
    result["index_evolve"], _ = timed_queries(
        "sorted index + bisect, reduce(evolve)", dossiers[:SLOW_QUERIES],
        lambda d: who_could_see(index.state_evolve(at), d, at), expected, deadline)
    result["index_copying"], _ = timed_queries(
        "sorted index + bisect, reduce(evolve with .copy())", dossiers,
        lambda d: who_could_see(reduce(evolve_copying, index.events[:index.upto(at)], INITIAL_STATE), d, at),
        expected, deadline)
    result["index_mutable"], _ = timed_queries(
        "sorted index + bisect, mutable fold", dossiers,
        lambda d: who_could_see(index.state_mutable(at), d, at), expected, deadline)
    # Record time through the index, checked once against state_at's record axis.
    started = time.perf_counter()
    record_state = index.state_mutable(at, "record")
    record_s = time.perf_counter() - started
    if record_state != state_at(entries, at, "record"):
        raise RuntimeError("the sorted index gave another record-time state than state_at")
    result["index_record_axis_ms"] = round(record_s * 1000, 1)
    del record_state
    started = time.perf_counter()
    checkpoints = Checkpoints.build(index, CHECKPOINT_EVERY)
    checkpoints_s = time.perf_counter() - started
    result["checkpoints"] = {"build_seconds": round(checkpoints_s, 3), "every": CHECKPOINT_EVERY,
                             "count": len(checkpoints.states)}
    result["checkpoint_evolve"], _ = timed_queries(
        f"checkpoint every {CHECKPOINT_EVERY} + reduce(evolve) to T", dossiers,
        lambda d: who_could_see(checkpoints.state_evolve(at), d, at), expected, deadline)
    result["checkpoint_mutable"], _ = timed_queries(
        f"checkpoint every {CHECKPOINT_EVERY} + mutable fold to T", dossiers,
        lambda d: who_could_see(checkpoints.state_mutable(at), d, at), expected, deadline)
    result["checkpoint_random_moments"] = random_moment_queries(
        "  same, each at its own random moment", index, checkpoints, dossiers, moments, deadline)

    # The same after gc.freeze(): the loaded log moves to the permanent generation, so a
    # collection no longer walks millions of objects that will never be garbage.
    progress("point in time: after gc.freeze() (the log no longer scanned by the garbage collector)")
    gc.freeze()
    try:
        result["frozen_index_mutable"], _ = timed_queries(
            "frozen: sorted index + bisect, mutable fold", dossiers,
            lambda d: who_could_see(index.state_mutable(at), d, at), expected, deadline)
        result["frozen_checkpoint_mutable"], _ = timed_queries(
            "frozen: checkpoint + mutable fold to T", dossiers,
            lambda d: who_could_see(checkpoints.state_mutable(at), d, at), expected, deadline)
        result["frozen_checkpoint_random_moments"] = random_moment_queries(
            "  frozen: same, each at its own random moment", index, checkpoints, dossiers, moments, deadline)
    finally:
        gc.unfreeze()
    return result


def random_moment_queries(name: str, index: SortedIndex, checkpoints: Checkpoints, dossiers: list[UUID],
                          moments: list[datetime], deadline: Deadline) -> dict[str, Any]:
    """Checkpoint + mutable fold, each dossier at its own moment of the year; every answer is
    checked against the sorted index's."""
    seconds: list[float] = []
    gc_at = GC.seconds
    for dossier_id, moment in zip(dossiers, moments, strict=True):
        deadline.check(f"{name}: {len(seconds)} of {len(dossiers)} queries")
        started = time.perf_counter()
        got = who_could_see(checkpoints.state_mutable(moment), dossier_id, moment)
        seconds.append(time.perf_counter() - started)
        if got != who_could_see(index.state_mutable(moment), dossier_id, moment):
            raise RuntimeError(f"{name}: the checkpoint's answer differs from the sorted index's")
    summary: dict[str, Any] = latency_summary_ms(seconds)
    summary["gc_ms"] = round((GC.seconds - gc_at) * 1000, 1)
    progress(f"  {name.strip()}: p50 {summary['p50_ms']:.1f} ms, p99 {summary['p99_ms']:.1f} ms")
    return summary


# --- profile ---------------------------------------------------------------------------------

def profile_decode_and_fold(bootstrap: str, prefix: str, n: int) -> str:
    """cProfile of decode_all and the reduce(evolve) fold on PROFILE_SAMPLE records of the log
    (a seeded sample in log order, so the mix of event types is the log's)."""
    names = [str(t) for t in EVENT_TOPICS]
    records = read_topics(bootstrap, TopicNames(prefix), names, timeout_s=replay_limit(n))
    every = [r for name in names for r in records.get(name, [])]
    sample = sorted(random.Random(SEED + 2).sample(range(len(every)), min(PROFILE_SAMPLE, len(every))))
    chosen = [every[i] for i in sample]
    del records, every
    codec = EventCodec(InMemoryKeyStore(), source="/samenveilig/audit")
    out = io.StringIO()
    profiler = cProfile.Profile()
    profiler.enable()
    entries, _ = decode_all(codec, chosen)
    profiler.disable()
    out.write(f"\n=== cProfile: decode_all of {len(chosen):,} records ===\n")
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(18)
    profiler = cProfile.Profile()
    profiler.enable()
    reduce(evolve, (e.event for e in entries), INITIAL_STATE)
    profiler.disable()
    out.write(f"\n=== cProfile: reduce(evolve) over {len(entries):,} events ===\n")
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(12)
    return out.getvalue()


# --- report ----------------------------------------------------------------------------------

def verdict(value: float, target: float) -> str:
    return "PASS" if value < target else "MISS"


def fmt_rate(value: float | None, unit: str = "events/s") -> str:
    return "-" if value is None else f"{value:,.0f} {unit}"


def render(report: dict[str, Any]) -> str:
    ctx, p, gen, raw = report["machine"], report["params"], report["produce"], report["raw_consume"]
    rep, alt, pit, ratios = report["replay"], report["replay_alternatives"], report["point_in_time"], report["ratios"]
    width = 60
    n = p["events"]

    def lat(s: dict[str, Any]) -> str:
        return (f"p50 {s['p50_ms']:8.1f} ms  p99 {s['p99_ms']:8.1f} ms  (n={s['count']}, "
                f"in gc {s.get('gc_ms', 0):.0f} ms)")

    def line(label: str, value: str, note: str = "") -> str:
        return f"  {label:<{width}}{value:>16}   {note}".rstrip()

    def query(label: str, s: dict[str, Any]) -> str:
        return line(label, verdict(s["p99_ms"], QUERY_TARGET_MS), lat(s))

    sk, rss, gcs = alt["skip_views"], rep["rss_mb"], rep["gc_seconds"]
    total = rep["total_seconds"]
    target_s = REPLAY_TARGET_S * n / REPLAY_TARGET_EVENTS
    gc_total = gcs["read"] + gcs["decode"] + gcs["fold"]
    rt, bd, nc = raw["read_topics_settings"], raw["broker_baseline_defaults"], raw["no_crc_check"]
    lines = [
        f"samenveilig audit replay, {ctx['date']}",
        f"machine   {ctx['cpu_count']} CPUs, Python {ctx['python']}, kafka-python {ctx['kafka_python']}, "
        f"{ctx['platform']}",
        f"broker    {ctx['broker']} at {ctx['bootstrap']}",
        f"history   N={n:,} events: {gen['per_topic'].get(str(Topic.REGISTRY_EVENTS), 0):,} registry + "
        f"{gen['per_topic'].get(str(Topic.ACCESS_EVENTS), 0):,} access ({gen['by_type'].get('DossierViewed', 0):,} "
        f"DossierViewed), {PARTITIONS} partitions, avg value {gen['avg_value_bytes']:.0f} bytes",
        f"          {gen['branches']} branches in {gen['wijknetwerken']} wijknetwerken, {gen['staff']:,} staff + "
        f"{gen['consultants']} consultants, {gen['dossiers']:,} dossiers, {gen['explicit_grants']:,} explicit grants, "
        f"{gen['departures']} departures ({gen['late_reports']} reported late)",
        "",
        "SETUP (not part of the replay)",
        line("generate + encode (EventCodec, InMemoryKeyStore)", fmt_rate(gen["generate_encode_rate_per_s"]),
             f"({gen['generate_encode_seconds']:.1f} s)"),
        line("produce (acks=all, linger 20 ms, 512 KiB batches)", fmt_rate(gen["produce_rate_per_s"], "msg/s"),
             f"({gen['produce_seconds']:.1f} s)"),
        "",
        "RAW BASELINE (manual assignment, to the fetch high-water mark, only counting records)",
        line("consume, read_topics' fetch settings", fmt_rate(rt["rate_per_s"], "msg/s"),
             f"({rt['messages']:,} in {rt['seconds']:.1f} s)"),
        line("  broker_baseline.raw_consume (default fetch sizes)", fmt_rate(bd["rate_per_s"], "msg/s"),
             f"({bd['seconds']:.1f} s)"),
        line("  read_topics' settings, check_crcs=False (for context)", fmt_rate(nc["rate_per_s"], "msg/s"),
             f"({nc['seconds']:.1f} s; CRC-32C in {report['crc32c']})"),
        "",
        "REPLAY (read_topics + decode_all with an empty key store + reduce(evolve), as samenveilig-audit replay)",
        line("replay", fmt_rate(rep["rate_per_s"]), f"({rep['events']:,} in {total:.1f} s)"),
        line("  read_topics", fmt_rate(rep["read_rate_per_s"]),
             f"({rep['read_seconds']:.1f} s, {rep['read_seconds'] / total:.0%}; in gc {gcs['read']:.1f} s)"),
        line("  decode_all", fmt_rate(rep["decode_rate_per_s"]),
             f"({rep['decode_seconds']:.1f} s, {rep['decode_seconds'] / total:.0%}; in gc {gcs['decode']:.1f} s)"),
        line("  fold reduce(evolve)", fmt_rate(rep["fold_rate_per_s"]),
             f"({rep['fold_seconds']:.1f} s, {rep['fold_seconds'] / total:.0%}; in gc {gcs['fold']:.1f} s)"),
        line(f"  target 1M events < {REPLAY_TARGET_S:.0f} s (scaled to N: < {target_s:.1f} s)",
             verdict(total, target_s), f"(at this rate 1M takes {REPLAY_TARGET_EVENTS / rep['rate_per_s']:.1f} s)"),
        line("  replay rate / raw consume rate", f"{ratios['replay_to_raw']:.3f}"),
        line("  read_topics rate / raw consume rate", f"{ratios['read_to_raw']:.3f}"),
        line("  garbage collector, all three phases", f"{gc_total:.1f} s", f"({gc_total / total:.0%} of the replay)"),
        line("  RSS after read / decode / fold", f"{rss['after_read']:,} / {rss['after_decode']:,} / "
             f"{rss['after_fold']:,} MB", f"(before: {rss['before']:,} MB)"),
        "  alternatives on the same records (each gives the same AccessState, checked):",
        line("    reduce(evolve), mappings copied with .copy()", f"{alt['fold_copying_seconds']:.2f} s",
             "(evolve's {**proxy, k: v} re-hashes every UUID key)"),
        line("    fold with mutable dicts, same evolve_* functions", f"{alt['fold_mutable_seconds']:.2f} s",
             f"(reduce(evolve): {rep['fold_seconds']:.2f} s)"),
        line("    decode only what can change the state (ce_type)", f"{sk['decode_seconds']:.2f} s",
             f"({sk['decoded']:,} decoded, then mutable fold {sk['fold_seconds']:.2f} s)"),
        line("    replay = read_topics + those two", fmt_rate(sk["rate_per_s"]),
             f"({sk['total_seconds']:.1f} s: {verdict(sk['total_seconds'], target_s)}, "
             f"{ratios['skip_views_replay_to_raw']:.3f} of raw)"),
        "",
        f"POINT IN TIME (T = {pit['at'][:16]} UTC, valid time; {pit['dossiers']} random dossiers opened by T, "
        f"{pit['allowed_per_dossier']} staff allowed each on average)",
        query(f"state_at(entries, T) + who_could_see, target {QUERY_TARGET_MS:.0f} ms", pit["state_at"]),
        line("who_could_see alone, on the state at T", "", lat(pit["who_could_see_at_state"])),
        line("who_could_see alone, on the state after the whole log", "", lat(pit["who_could_see_full_state"])),
        "  alternatives (each answer checked against state_at's):",
        query("  events_known (filter + sort all) + mutable fold", pit["events_known_mutable"]),
        f"  a sorted index of the {pit['index']['events']:,} events that can change the state "
        f"(built once in {pit['index']['build_seconds']:.2f} s; {pit['index']['events_up_to_t']:,} up to T):",
        query("  index + bisect, reduce(evolve) + who_could_see", pit["index_evolve"]),
        query("  index + bisect, reduce(evolve with .copy())", pit["index_copying"]),
        query("  index + bisect, mutable fold + who_could_see", pit["index_mutable"]),
        line("    same on record time (one query, checked vs state_at)", f"{pit['index_record_axis_ms']:.1f} ms"),
        f"  checkpoints: the state after every {pit['checkpoints']['every']} indexed events "
        f"({pit['checkpoints']['count']} states, built in {pit['checkpoints']['build_seconds']:.2f} s)",
        query("  checkpoint + reduce(evolve) to T + who_could_see", pit["checkpoint_evolve"]),
        query("  checkpoint + mutable fold to T + who_could_see", pit["checkpoint_mutable"]),
        query("    same, each query at its own random moment", pit["checkpoint_random_moments"]),
        "  after gc.freeze() (the loaded log no longer walked by the garbage collector):",
        query("  index + bisect, mutable fold + who_could_see", pit["frozen_index_mutable"]),
        query("  checkpoint + mutable fold to T + who_could_see", pit["frozen_checkpoint_mutable"]),
        query("    same, each query at its own random moment", pit["frozen_checkpoint_random_moments"]),
        "",
        f"memory    peak RSS {report['peak_rss_mb']:,.0f} MB (ru_maxrss, whole run; "
        f"{report['machine_memory_gib']:.0f} GiB in the machine)",
        f"run took {report['duration_s']:.1f} s",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.audit_replay", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000, help="N, events in the year (default 1000000)")
    parser.add_argument("--bootstrap", help="HOST:PORT of a running broker (default: "
                        "KAFKA_BOOTSTRAP_SERVERS, else a local in-memory Tansu)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    parser.add_argument("--profile", action="store_true",
                        help=f"afterwards, cProfile decode and fold of {PROFILE_SAMPLE:,} records; top costs to stderr")
    args = parser.parse_args(argv)
    if args.events < MIN_EVENTS:
        parser.error(f"--events must be at least {MIN_EVENTS}")
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("kafka").setLevel(logging.CRITICAL)

    started = time.perf_counter()
    progress("starting the broker" if not (args.bootstrap or os.environ.get("KAFKA_BOOTSTRAP_SERVERS"))
             else "connecting to the broker")
    broker = open_broker(args.bootstrap)
    prefix = f"bench{uuid.uuid4().hex[:8]}."
    profile = ""
    try:
        with GC:
            produced, year = generate_and_produce(broker.bootstrap, prefix, args.events)
            del year.planned
            gc.collect()
            raw = run_raw_consume(broker.bootstrap, prefix, produced)
            replay, entries, state, alternatives = run_replay(broker.bootstrap, prefix, year, args.events)
            point_in_time = run_point_in_time(entries, state, args.events)
            del entries, state
            gc.collect()
            if args.profile:
                progress(f"profile: decode_all and reduce(evolve) on {PROFILE_SAMPLE:,} records under cProfile")
                profile = profile_decode_and_fold(broker.bootstrap, prefix, args.events)
    except (BenchTimeout, RuntimeError, TimeoutError, MemoryError) as error:
        progress(f"benchmark failed: {type(error).__name__}: {error}")
        return 1
    finally:
        if broker.local is not None:
            broker.local.stop()
    raw_rate = raw["read_topics_settings"]["rate_per_s"]
    report = {
        "machine": machine_context(broker),
        "crc32c": crc32c_implementation(),
        "params": {"events": args.events, "partitions": PARTITIONS, "seed": SEED, "topic_prefix": prefix,
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
            "replay_seconds": {"target": REPLAY_TARGET_S * args.events / REPLAY_TARGET_EVENTS,
                               "measured": replay["total_seconds"],
                               "verdict": verdict(replay["total_seconds"],
                                                  REPLAY_TARGET_S * args.events / REPLAY_TARGET_EVENTS)},
            "state_at_p99_ms": {"target": QUERY_TARGET_MS, "measured": point_in_time["state_at"]["p99_ms"],
                                "verdict": verdict(point_in_time["state_at"]["p99_ms"], QUERY_TARGET_MS)},
        },
        "peak_rss_mb": round(peak_rss_mb()),
        "machine_memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "duration_s": round(time.perf_counter() - started, 1),
    }
    if profile:
        sys.stderr.write(profile)
    print(json.dumps(report, indent=2, default=str) if args.json else render(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
