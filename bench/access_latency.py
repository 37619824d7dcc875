"""Access latency: how fast a departure reaches the access check (revocation latency), and how
fast one check is with a realistic number of staff and dossiers, against the broker's own
round trip - measured in one run, on one broker.

    .venv/bin/python -m bench.access_latency [--departures N] [--staff S] [--dossiers D]
                                             [--bootstrap HOST:PORT] [--fetch-wait-ms W] [--json] [--profile]

1. Raw round trip: bench.harness.raw_roundtrips (send().get() -> received by a consumer that is
   already polling, with the fetch wait the ConsumerRunner uses), N pairs.
2. Revocation: a branch, N IB'ers and one dossier go through the broker into the access
   processor (ConsumerRunner in a thread, SQLite in a temporary directory). Then N times, one
   after the other: publish StaffDeparted for one IB'er (EventPublisher.publish, acks=all) and
   ask `AccessService.decide` on a fresh connection, as the API does, until it denies.
3. Check: S staff and D dossiers written straight into a second access database with the store
   functions (not through Kafka), then `decide` for random (staff, dossier) pairs on one reused
   connection, and `GET /v1/check` through the HTTP API in-process (TestClient).

--profile runs the in-process checks once more under cProfile and prints the top costs to stderr.
The broker, progress, time limits and the report: bench.harness.
"""

from __future__ import annotations

import random
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import delete, insert
from sqlalchemy.engine import Connection

from bench.events import WIJKNETWERKEN, branch_founded, dossier_opened, staff_joined
from bench.harness import (
    PARTITIONS,
    WARMUP,
    Deadline,
    Run,
    Table,
    Worker,
    apply_limit,
    cli,
    departure_latencies,
    fmt_ratio,
    latency_summary_ms,
    profile_top,
    progress,
    publisher_codec,
    ratio,
    raw_roundtrip_phase,
    require_positive,
    run_benchmark,
    seal,
    verdict,
    wait_until,
)
from services.access import store
from services.access.api import create_app
from services.access.bootstrap import AccessDeps, build, build_runner
from services.access.domain import TIME_BOUND_ROLES, Agreement, Decision, Dossier, Grant, StaffMember
from services.access.settings import AccessSettings
from shared.contracts.events import StaffDeparted, StaffRole
from shared.contracts.topics import Topic
from shared.kafka.producer import EventPublisher, make_producer
from tests.support import ACCESS_SCOPES, api_client

# Targets from the issue (informational: the run prints PASS or MISS, it does not fail on them).
REVOCATION_P99_TARGET_MS = 200.0
CHECK_P99_TARGET_MS = 1.0
CHECK_PAIRS = 20_000
API_PAIRS = 2_000
CHECK_WARMUP = 200  # decides before the timed ones (statement cache, page cache)
API_WARMUP = 20
# The API fails closed when the processor has not reported for stale_after_s; the check phase
# has no processor, so it writes the processor's position row itself every so many requests.
API_REFRESH_EVERY = 200
SEED = 20261125
POPULATE_CHUNK = 2_000  # rows per transaction while populating


def populate_limit(staff: int, dossiers: int) -> float:
    return 300.0 + (staff + dossiers) * 0.005


def check_limit(pairs: int) -> float:
    return 60.0 + pairs * 0.02


def api_limit(pairs: int) -> float:
    return 60.0 + pairs * 0.1


def decide_fresh(deps: AccessDeps, staff_id: UUID, dossier_id: UUID) -> Decision:
    """One check as the API makes it: a connection from the pool, the clock's now."""
    with deps.engine.connect() as connection:
        return deps.service.decide(connection, staff_id, dossier_id, deps.clock.now())


# --- 2. revocation latency -----------------------------------------------------------------

def run_revocation(run: Run, n: int) -> dict[str, Any]:
    settings = run.settings(AccessSettings, "access-revocation.sqlite", f"{run.prefix}access")
    deps = build(settings)
    codec = publisher_codec(settings, run.topics)
    publisher = EventPublisher(make_producer(run.bootstrap, "bench-access-publisher"))
    worker: Worker | None = None
    try:
        branch = uuid.uuid4()
        teacher = staff_joined(branch, 0, StaffRole.LEERKRACHT)
        ib_ers = [staff_joined(branch, i + 1) for i in range(n + WARMUP)]
        opened = dossier_opened(branch, teacher.staff_id)
        events = [branch_founded(branch), teacher, *ib_ers, opened]
        deadline = Deadline(apply_limit(len(events)), "revocation setup")
        progress(f"revocation: publishing the branch, {len(ib_ers)} IB'ers, a teacher and a dossier "
                 f"({n} measured + {WARMUP} warm-up departures)")
        now = datetime.now(UTC)
        publisher.publish_all([seal(codec, event, now) for event in events], timeout_s=max(1.0, deadline.remaining()))

        runner = build_runner(deps)
        worker = Worker("access-processor", runner).start()
        wait_until(lambda: runner.stats.applied >= len(events), deadline,
                   lambda: f"{runner.stats.applied} of {len(events)} applied", [worker])
        if runner.stats.dead_lettered:
            raise RuntimeError(f"{runner.stats.dead_lettered} events were dead-lettered: {runner.stats.reasons}")
        setup_s = time.perf_counter() - worker.started_at
        progress(f"  processor applied {len(events)} events {setup_s:.1f} s after its start (incl. the group join)")

        def allowed(ib_er: Any) -> bool:
            decision = decide_fresh(deps, ib_er.staff_id, opened.dossier_id)
            if not decision.allowed and decision.rule != "departed":
                raise RuntimeError(f"an IB'er was denied with rule {decision.rule}, expected 'departed'")
            return decision.allowed

        progress(f"revocation: {n} departures, publish StaffDeparted -> decide() denies")
        result = departure_latencies(
            publisher, ib_ers, lambda ib_er: seal(codec, StaffDeparted(branch_id=branch, staff_id=ib_er.staff_id)),
            allowed, worker, "revocations")
        result.update({"setup_seconds": round(setup_s, 2), "dead_lettered": runner.stats.dead_lettered})
        return result
    finally:
        if worker is not None:
            worker.stop()
        publisher.close()
        deps.engine.dispose()


# --- 3. check latency ----------------------------------------------------------------------

@dataclass
class Population:
    """What was written, kept in memory to draw realistic pairs from."""

    branches: list[UUID] = field(default_factory=list)
    wijknetwerk_of: dict[UUID, str] = field(default_factory=dict)
    staff_of_branch: dict[UUID, list[UUID]] = field(default_factory=dict)
    leaders_of_branch: dict[UUID, list[UUID]] = field(default_factory=dict)  # IB'ers and directeur
    consultants_of: dict[str, list[UUID]] = field(default_factory=dict)
    all_staff: list[UUID] = field(default_factory=list)
    dossiers: list[tuple[UUID, UUID, UUID]] = field(default_factory=list)  # (dossier, branch, contact)
    grants: list[tuple[UUID, UUID]] = field(default_factory=list)
    grants_of_dossier: dict[UUID, list[UUID]] = field(default_factory=dict)
    roles: Counter[str] = field(default_factory=Counter)
    departed: int = 0
    expired: int = 0
    closed: int = 0
    grant_kinds: Counter[str] = field(default_factory=Counter)


def plan_population(rng: random.Random, staff_total: int, dossier_total: int,
                    now: datetime) -> tuple[Population, list[tuple[StaffMember, str]], list[Dossier], list[Grant]]:
    pop = Population()
    branch_count = max(1, round(staff_total / 100))
    networks = [WIJKNETWERKEN[k % len(WIJKNETWERKEN)] + ("" if k < len(WIJKNETWERKEN) else f" {k}")
                for k in range(max(1, branch_count // 10))]
    consultant_count = min(max(1, staff_total // 500), max(1, staff_total // 10))
    members: list[tuple[StaffMember, str]] = []

    def joined() -> datetime:
        return now - timedelta(days=rng.randint(30, 3650))

    def add(member: StaffMember) -> None:
        members.append((member, f"staff{len(members)}@school.example"))
        pop.all_staff.append(member.staff_id)
        pop.roles[member.role.value if member.role else "none"] += 1

    for k in range(consultant_count):
        covers = tuple(sorted({networks[k % len(networks)], rng.choice(networks)}))
        at = joined()
        member = StaffMember(uuid.uuid4(), None, StaffRole.SWV_CONSULTANT, at, at, wijknetwerken=covers)
        add(member)
        for network in covers:
            pop.consultants_of.setdefault(network, []).append(member.staff_id)

    per_branch = (staff_total - consultant_count) // branch_count
    extra = (staff_total - consultant_count) % branch_count
    teachers_of: dict[UUID, list[UUID]] = {}
    time_bound_of: dict[UUID, list[StaffMember]] = {}
    for b in range(branch_count):
        branch = uuid.uuid4()
        pop.branches.append(branch)
        pop.wijknetwerk_of[branch] = networks[b % len(networks)]
        size = per_branch + (1 if b < extra else 0)
        ib_ers = 1 if size < 10 else rng.choice((1, 2))
        roles = [StaffRole.IB_ER] * ib_ers + [StaffRole.DIRECTEUR]
        if size >= 10:
            roles += [StaffRole.ADMINISTRATOR] + [StaffRole.EXTERN] * rng.randint(1, 3) \
                + [StaffRole.STAGIAIR] * rng.randint(1, 2)
        roles = roles[:size] + [StaffRole.LEERKRACHT] * max(0, size - len(roles))
        pop.staff_of_branch[branch] = []
        pop.leaders_of_branch[branch] = []
        teachers_of[branch] = []
        time_bound_of[branch] = []
        for role in roles:
            at = joined()
            access_until = None
            if role in (StaffRole.EXTERN, StaffRole.STAGIAIR):
                # Most still within their period, some past it.
                access_until = now + timedelta(days=rng.randint(-60, 300))
                pop.expired += access_until <= now
            departed_at = None
            if role is StaffRole.LEERKRACHT and rng.random() < 0.03:
                departed_at = now - timedelta(days=rng.randint(1, 400))
                pop.departed += 1
            member = StaffMember(uuid.uuid4(), branch, role, at, at, access_until, (), departed_at,
                                 departed_at)
            add(member)
            pop.staff_of_branch[branch].append(member.staff_id)
            if role in (StaffRole.IB_ER, StaffRole.DIRECTEUR):
                pop.leaders_of_branch[branch].append(member.staff_id)
            elif role is StaffRole.LEERKRACHT:
                teachers_of[branch].append(member.staff_id)
            elif role in (StaffRole.EXTERN, StaffRole.STAGIAIR):
                time_bound_of[branch].append(member)

    dossiers: list[Dossier] = []
    for _ in range(dossier_total):
        branch = rng.choice(pop.branches)
        teachers = teachers_of[branch]
        contact = rng.choice(teachers) if teachers and rng.random() < 0.85 else rng.choice(
            pop.leaders_of_branch[branch])
        opened_at = now - timedelta(days=rng.randint(1, 1100), seconds=rng.randint(0, 86399))
        is_open = rng.random() < 0.75
        pop.closed += not is_open
        dossiers.append(Dossier(uuid.uuid4(), branch, contact, opened_at, is_open, opened_at))
        pop.dossiers.append((dossiers[-1].dossier_id, branch, contact))

    by_branch: dict[UUID, list[Dossier]] = {}
    for dossier in dossiers:
        by_branch.setdefault(dossier.branch_id, []).append(dossier)
    grants: dict[tuple[UUID, UUID], Grant] = {}

    def grant(staff_id: UUID, dossier: Dossier, until: datetime | None, revoked: datetime | None, kind: str) -> None:
        if (staff_id, dossier.dossier_id) in grants:
            return
        granted_at = max(dossier.opened_at, now - timedelta(days=rng.randint(1, 200)))
        grants[(staff_id, dossier.dossier_id)] = Grant(staff_id, dossier.dossier_id, granted_at, until, revoked)
        pop.grant_kinds[kind] += 1

    for branch, externs in time_bound_of.items():
        branch_dossiers = by_branch.get(branch, [])
        for member in externs:
            for dossier in rng.sample(branch_dossiers, min(len(branch_dossiers), rng.randint(3, 8))):
                r = rng.random()
                if r < 0.1:
                    grant(member.staff_id, dossier, now - timedelta(days=rng.randint(1, 60)), None, "extern-expired")
                elif r < 0.15:
                    grant(member.staff_id, dossier, now + timedelta(days=90), now - timedelta(days=1),
                          "extern-revoked")
                else:
                    grant(member.staff_id, dossier, now + timedelta(days=rng.randint(7, 180)), None, "extern")
    for _ in range(dossier_total // 20):  # colleagues asked along on one dossier in twenty
        dossier = rng.choice(dossiers)
        teachers = teachers_of[dossier.branch_id]
        if teachers:
            grant(rng.choice(teachers), dossier, None, None, "colleague")
    for staff_id, dossier_id in grants:
        pop.grants.append((staff_id, dossier_id))
        pop.grants_of_dossier.setdefault(dossier_id, []).append(staff_id)
    return pop, members, dossiers, list(grants.values())


def populate(deps: AccessDeps, staff_total: int, dossier_total: int, rng: random.Random) -> tuple[Population, float]:
    deadline = Deadline(populate_limit(staff_total, dossier_total), "populating the check database")
    now = datetime.now(UTC)
    pop, members, dossiers, grants = plan_population(rng, staff_total, dossier_total, now)
    started = time.perf_counter()

    def in_chunks(rows: list[Any], write: Callable[[Connection, Any], None], what: str) -> None:
        for start in range(0, len(rows), POPULATE_CHUNK):
            deadline.check(f"{start} of {len(rows)} {what} written")
            with deps.engine.begin() as connection:
                for row in rows[start:start + POPULATE_CHUNK]:
                    write(connection, row)

    in_chunks(pop.branches, lambda c, b: store.save_wijknetwerk(c, b, pop.wijknetwerk_of[b]), "branches")
    in_chunks(members, lambda c, m: store.save_member(c, m[0], email=m[1]), "staff")
    progress(f"  {len(members)} staff written ({time.perf_counter() - started:.1f} s)")
    in_chunks(dossiers, store.save_dossier, "dossiers")
    progress(f"  {len(dossiers)} dossiers written ({time.perf_counter() - started:.1f} s)")
    in_chunks(grants, store.save_grant, "grants")
    in_chunks(plan_agreements(members, now), store.save_agreement, "agreements")
    return pop, time.perf_counter() - started


def plan_agreements(members: list[Any], now: datetime) -> list[Agreement]:
    """Externs and interns are bound by a confidentiality agreement: most valid, one in twenty
    expired, one in twenty never recorded (their own generator: the population's draws stay as
    they were)."""
    rng = random.Random(len(members))
    out = []
    for member, _email in members:
        if member.role not in TIME_BOUND_ROLES:
            continue
        r = rng.random()
        if r < 0.05:
            continue
        signed = now - timedelta(days=rng.randint(30, 400))
        until = now - timedelta(days=rng.randint(1, 20)) if r < 0.10 else now + timedelta(days=rng.randint(30, 365))
        out.append(Agreement(member.staff_id, "geheimhouding-1", signed, until))
    return out


def draw_pairs(rng: random.Random, pop: Population, count: int) -> list[tuple[UUID, UUID, str]]:
    """Pairs as the checks come: mostly people near the dossier (its branch, its contact, its
    grants, its consultants), some strangers, a few unknown ids."""
    pairs: list[tuple[UUID, UUID, str]] = []
    for _ in range(count):
        r = rng.random()
        dossier_id, branch, contact = rng.choice(pop.dossiers)
        if r < 0.30:
            related = [contact, *pop.leaders_of_branch[branch], *pop.grants_of_dossier.get(dossier_id, []),
                       *pop.consultants_of.get(pop.wijknetwerk_of[branch], [])]
            pairs.append((rng.choice(related), dossier_id, "related"))
        elif r < 0.45 and pop.grants:
            staff_id, granted = rng.choice(pop.grants)
            pairs.append((staff_id, granted, "grant-holder"))
        elif r < 0.85:
            pairs.append((rng.choice(pop.staff_of_branch[branch]), dossier_id, "same-branch"))
        elif r < 0.99:
            pairs.append((rng.choice(pop.all_staff), dossier_id, "anyone"))
        elif r < 0.995:
            pairs.append((uuid.uuid4(), dossier_id, "unknown-staff"))
        else:
            pairs.append((rng.choice(pop.all_staff), uuid.uuid4(), "unknown-dossier"))
    return pairs


def time_decide(deps: AccessDeps, pairs: list[tuple[UUID, UUID, str]], deadline: Deadline
                ) -> tuple[list[float], list[Decision]]:
    latencies: list[float] = []
    decisions: list[Decision] = []
    with deps.engine.connect() as connection:  # one connection, as one request holds one
        for staff_id, dossier_id, _ in pairs[:CHECK_WARMUP]:
            deps.service.decide(connection, staff_id, dossier_id, deps.clock.now())
        for i, (staff_id, dossier_id, _) in enumerate(pairs):
            if i % 1000 == 0:
                deadline.check(f"{i} checks done")
            now = deps.clock.now()
            t0 = time.perf_counter()
            decision = deps.service.decide(connection, staff_id, dossier_id, now)
            latencies.append(time.perf_counter() - t0)
            decisions.append(decision)
    return latencies, decisions


def mark_processor_fresh(deps: AccessDeps) -> None:
    """The processor's heartbeat, written by hand: caught up (no lag), reported just now."""
    positions = store.consumer_positions
    with deps.engine.begin() as connection:
        connection.execute(delete(positions).where(positions.c.consumer == deps.settings.consumer_group))
        for partition in range(PARTITIONS):
            connection.execute(insert(positions).values(
                consumer=deps.settings.consumer_group, topic=deps.topics(Topic.REGISTRY_EVENTS),
                partition=partition, next_offset=0, high_water=0, dead_lettered=0,
                updated_at=deps.clock.now()))


def time_api(deps: AccessDeps, pairs: list[tuple[UUID, UUID, str]], expected: list[Decision],
             deadline: Deadline) -> list[float]:
    latencies: list[float] = []
    # With a service's bearer token, checked on every request as deployed (tests.support.TOKENS).
    with api_client(create_app(deps), "access", ACCESS_SCOPES) as client:
        def get(staff_id: UUID, dossier_id: UUID) -> Any:
            return client.get("/v1/check", params={"staff_id": str(staff_id), "dossier_id": str(dossier_id)})

        mark_processor_fresh(deps)
        for staff_id, dossier_id, _ in pairs[:API_WARMUP]:
            get(staff_id, dossier_id)
        for i, (staff_id, dossier_id, _) in enumerate(pairs):
            if i % API_REFRESH_EVERY == 0:
                deadline.check(f"{i} API checks done")
                mark_processor_fresh(deps)
            t0 = time.perf_counter()
            response = get(staff_id, dossier_id)
            latencies.append(time.perf_counter() - t0)
            if response.status_code != 200:
                raise RuntimeError(f"GET /v1/check answered {response.status_code}: {response.text[:300]}")
            body = response.json()
            if body["allowed"] != expected[i].allowed or body["rule"] != expected[i].rule:
                raise RuntimeError(f"the API and decide() disagree on pair {i}: {body['rule']} / {expected[i].rule}")
    return latencies


def run_checks(run: Run, staff_total: int, dossier_total: int, profile: bool) -> dict[str, Any]:
    deps = build(run.settings(AccessSettings, "access-check.sqlite", f"{run.prefix}access-check"))
    try:
        rng = random.Random(SEED)
        progress(f"check: writing {staff_total} staff and {dossier_total} dossiers straight into the access "
                 "database with the store functions (not through Kafka)")
        pop, populate_s = populate(deps, staff_total, dossier_total, rng)
        progress(f"  populated in {populate_s:.1f} s: {len(pop.branches)} branches, "
                 f"{len(set(pop.wijknetwerk_of.values()))} wijknetwerken, {len(pop.grants)} grants")
        pairs = draw_pairs(rng, pop, CHECK_PAIRS)

        progress(f"check: {CHECK_PAIRS} x decide() in-process on one connection (+{CHECK_WARMUP} warm-up)")
        latencies, decisions = time_decide(deps, pairs, Deadline(check_limit(CHECK_PAIRS), "in-process checks"))
        decide: dict[str, Any] = dict(latency_summary_ms(latencies))
        allowed = sum(d.allowed for d in decisions)
        decide.update({"allowed": allowed, "denied": len(decisions) - allowed,
                       "rules": dict(Counter(d.rule for d in decisions).most_common()),
                       "pair_kinds": dict(Counter(kind for _, _, kind in pairs).most_common())})
        by_outcome = {"allowed": [t for t, d in zip(latencies, decisions, strict=True) if d.allowed],
                      "denied": [t for t, d in zip(latencies, decisions, strict=True) if not d.allowed]}
        decide["by_outcome"] = {k: latency_summary_ms(v) for k, v in by_outcome.items() if v}
        progress(f"  p50 {decide['p50_ms']:.3f} ms, p99 {decide['p99_ms']:.3f} ms; {allowed} allowed")

        progress(f"check: {API_PAIRS} x GET /v1/check through the API in-process (TestClient, +{API_WARMUP} warm-up)")
        api = latency_summary_ms(time_api(deps, pairs[:API_PAIRS], decisions[:API_PAIRS],
                                          Deadline(api_limit(API_PAIRS), "API checks")))
        progress(f"  p50 {api['p50_ms']:.2f} ms, p99 {api['p99_ms']:.2f} ms")
        db_bytes = sum(p.stat().st_size for p in run.workdir.glob("access-check.sqlite*"))
        if profile:
            progress(f"check: {CHECK_PAIRS} x decide() again, under cProfile")
            deadline = Deadline(check_limit(len(pairs)) * 3, "profiled checks")
            sys.stderr.write(profile_top(lambda: time_decide(deps, pairs, deadline)))
        return {
            "populate_seconds": round(populate_s, 1), "populated_through": "store functions, not Kafka",
            "branches": len(pop.branches), "wijknetwerken": len(set(pop.wijknetwerk_of.values())),
            "staff": len(pop.all_staff), "roles": dict(pop.roles.most_common()), "departed_staff": pop.departed,
            "extern_stagiair_expired": pop.expired, "dossiers": len(pop.dossiers), "closed_dossiers": pop.closed,
            "grants": len(pop.grants), "grant_kinds": dict(pop.grant_kinds.most_common()),
            "database_bytes": db_bytes, "decide": decide, "api": api,
        }
    finally:
        deps.engine.dispose()


def measure(run: Run) -> dict[str, Any]:
    args = run.args
    raw = raw_roundtrip_phase(run, args.departures)
    revocation = run_revocation(run, args.departures)
    check = run_checks(run, args.staff, args.dossiers, args.profile)
    return {
        "params": {"departures": args.departures, "staff": args.staff, "dossiers": args.dossiers,
                   "check_pairs": CHECK_PAIRS, "api_pairs": API_PAIRS, "raw_roundtrips": args.departures,
                   "warmup": WARMUP, "partitions": PARTITIONS, "fetch_max_wait_ms": run.fetch_wait_ms,
                   "seed": SEED, "topic_prefix": run.prefix},
        "raw_roundtrip": raw,
        "revocation": revocation,
        "check": check,
        "ratios": {"revocation_p50": ratio(revocation["p50_ms"], raw["p50_ms"]),
                   "revocation_p99": ratio(revocation["p99_ms"], raw["p99_ms"])},
        "targets": {
            "revocation_p99_ms": {"target": REVOCATION_P99_TARGET_MS, "measured": revocation["p99_ms"],
                                  "verdict": verdict(revocation["p99_ms"], REVOCATION_P99_TARGET_MS)},
            "check_p99_ms": {"target": CHECK_P99_TARGET_MS, "measured": check["decide"]["p99_ms"],
                             "verdict": verdict(check["decide"]["p99_ms"], CHECK_P99_TARGET_MS)},
        },
    }


def render(report: dict[str, Any]) -> str:
    p, rev, chk, ratios = report["params"], report["revocation"], report["check"], report["ratios"]
    dec = chk["decide"]
    table = Table("access latency", report["machine"], width=58)
    table.header("sizes", f"N={p['departures']} departures (+{WARMUP} warm-up), S={p['staff']} staff, "
                          f"D={p['dossiers']} dossiers, {p['check_pairs']} in-process checks, "
                          f"{p['api_pairs']} API checks")
    table.section(f"RAW BASELINE (bench.harness.raw_roundtrips; fetch_max_wait_ms={p['fetch_max_wait_ms']} as the "
                  "ConsumerRunner)")
    table.latency("round trip send().get() -> received by a polling consumer", report["raw_roundtrip"])
    table.section("REVOCATION (StaffDeparted published, acks=all -> access processor -> decide() denies)")
    table.latency("publish start -> first deny", rev)
    table.latency("of which publish until acked", rev["publish_ack"], indent=2)
    table.latency("of which ack -> first deny", rev["after_ack"], indent=2)
    table.figure("ratio to raw round trip", "", f"p50 {fmt_ratio(ratios['revocation_p50'], 2, ' x')}   "
                                                f"p99 {fmt_ratio(ratios['revocation_p99'], 2, ' x')}", indent=2)
    table.figure(f"target p99 < {REVOCATION_P99_TARGET_MS:.0f} ms", verdict(rev["p99_ms"], REVOCATION_P99_TARGET_MS),
                 f"(decide() polled every {rev['poll_interval_ms']:.0f} ms, {rev['polls_mean']:.1f} polls on average)")
    table.section(f"CHECK (S={chk['staff']} staff, D={chk['dossiers']} dossiers written with the store functions, "
                  "NOT through Kafka)")
    table.text(f"  data      {chk['branches']} branches in {chk['wijknetwerken']} wijknetwerken, {chk['grants']} "
               f"explicit grants, {chk['departed_staff']} departed staff, {chk['closed_dossiers']} closed dossiers, "
               f"{chk['database_bytes'] / 1e6:.0f} MB SQLite (written in {chk['populate_seconds']:.0f} s)")
    table.latency("decide() in-process, one connection", dec, 3)
    table.figure("allowed / denied", f"{dec['allowed']} / {dec['denied']}",
                 ", ".join(f"{rule} {count}" for rule, count in dec["rules"].items()), indent=2)
    for outcome, summary in dec["by_outcome"].items():
        table.latency(outcome, summary, 3, indent=4)
    table.figure(f"target p99 < {CHECK_P99_TARGET_MS:.0f} ms", verdict(dec["p99_ms"], CHECK_P99_TARGET_MS), indent=2)
    table.latency("GET /v1/check via TestClient (incl. freshness check)", chk["api"])
    return table.render(report)


def main(argv: list[str] | None = None) -> int:
    parser = cli("bench.access_latency", __doc__, fetch_wait=True)
    parser.add_argument("--departures", type=int, default=1000, help="N, departures measured (default 1000)")
    parser.add_argument("--staff", type=int, default=10_000, help="S, staff in the check database (default 10000)")
    parser.add_argument("--dossiers", type=int, default=100_000,
                        help="D, dossiers in the check database (default 100000)")
    parser.add_argument("--profile", action="store_true",
                        help="afterwards, run the in-process checks under cProfile; top costs to stderr")
    args = parser.parse_args(argv)
    require_positive(parser, args, "departures", "staff", "dossiers")
    return run_benchmark(args, measure, render)


if __name__ == "__main__":
    sys.exit(main())
