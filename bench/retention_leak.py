"""Data-leak handling in the retention service: how long the relay takes, once a leak is
registered, to read the event log, work out who the leak affects and queue the parents' mail -
against a plain read of the same topics, measured in the same run.

    .venv/bin/python -m bench.retention_leak [--events N [N ...]] [--bootstrap HOST:PORT] [--json]

For each log size N (default 10,000 and 100,000 events):

1. A seeded school year of N events (bench.events.SchoolYear with pupils: one branch per 1,000
   events, at most 200; every branch enrols 150-250 pupils with 1 or 2 parent e-mails, some
   siblings sharing an address, a few leaving; every dossier belongs to one of them, one in ten
   to a pupil who already has one) is produced to a new prefix's registry.events.v1 and
   access.events.v1 (3 partitions; retention.events.v1 is created and stays empty). Every event
   is encoded with `EventCodec` and a `SqlKeyStore` on the key file the retention service uses (a
   new key per pupil and per staff member, as in the services). Generating and producing are
   setup, timed apart.
2. Baseline: `read_topics` on the topics the leak work reads (registry, access, retention), to
   the high-water marks, alone; then `decode_all` with the service's codec (its SqlKeyStore) of
   the records the leak reader decodes (every one whose ce_type header is not DossierViewed).
   For context: a raw consumer that only counts the records, and `decode_all` of the same records
   with an empty in-memory key store (what the key store's lookups cost).
3. `build_index` on the decoded entries, and `leak_scope` for three leaks discovered just after
   the log's last event: one naming a single dossier, one naming an IB'er's account (who sees
   every dossier of the branch), and one naming an SWV consultant's account (every dossier of
   one or two wijknetwerken). `state_at` (the access fold inside `leak_scope`) is timed apart.
   Each scope is checked against what the generator knows (which pupils, which parents).
4. End to end: the retention service from `services.retention.bootstrap.build` (SQLite
   database and key store in a temporary directory, a ManualClock, the broker); each leak is
   registered with `LeakDesk.register` and `LeakDesk.resolve_pending(engine)` is timed, as the
   relay calls it. Checked: the breach register row is resolved with the scope from (3), and the
   mail outbox holds one mail per parent address of each affected pupil.

The components in (2) and (3) are the median of 3 runs; each end-to-end run is one call.
Ratios are against the median `read_topics` time of the same N. No timed assertions. The broker,
progress, time limits and the report: bench.harness.
"""

from __future__ import annotations

import base64
import dataclasses
import gc
import random
import sys
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID

from sqlalchemy import func, select

from bench.events import YEAR_END, Person, SchoolYear
from bench.harness import (
    GC,
    PARTITIONS,
    READ_TOPICS_CONSUMER,
    Deadline,
    Run,
    Table,
    cli,
    crc32c_implementation,
    peak_rss_mb,
    produce_stream,
    progress,
    ratio,
    read_all,
    run_benchmark,
    timed,
)
from services.access.history import state_at
from services.retention import store as retention_store
from services.retention.bootstrap import HISTORY_TOPICS, build
from services.retention.history import LeakScope, build_index, leak_scope, parents_to_tell
from services.retention.leaks import LeakReport
from services.retention.settings import RetentionSettings
from shared.clock import ManualClock
from shared.contracts.envelope import EventCodec
from shared.contracts.events import DataLeaked, DossierViewed, StaffRole
from shared.contracts.topics import Topic, TopicNames
from shared.crypto import InMemoryKeyStore, SqlKeyStore
from shared.db import make_engine
from shared.kafka.log import LogRecord, decode_all, in_stream_order, read_topics

SEED = 20261126
DEFAULT_SIZES = (10_000, 100_000)
MIN_EVENTS = 5_000
EVENTS_PER_BRANCH = 1_000
REPEATS = 3
ENCODE_CHUNK = 20_000
WINDOW_S = 72 * 3600  # AVG art. 33(1): report to the Autoriteit Persoonsgegevens within 72 hours
T = TypeVar("T")


def setup_limit(n: int) -> float:
    return 120.0 + n * 0.003


def read_limit(n: int) -> float:
    return 60.0 + n * 0.002


def work_limit(n: int) -> float:
    return 120.0 + n * 0.01


def median_of(what: str, fn: Callable[[], T], deadline: Deadline, repeats: int = REPEATS
              ) -> tuple[T, dict[str, Any]]:
    runs, gcs = [], []
    result: Any = None
    for i in range(repeats):
        deadline.check(f"{what}: run {i + 1} of {repeats}")
        result = None
        gc.collect()
        result, seconds, in_gc = timed(fn)
        runs.append(seconds)
        gcs.append(in_gc)
    middle = sorted(range(repeats), key=lambda i: runs[i])[repeats // 2]
    summary = {"seconds": round(runs[middle], 4), "gc_seconds": round(gcs[middle], 4),
               "runs": [round(r, 4) for r in runs]}
    progress(f"  {what}: {summary['seconds']:.3f} s (runs {', '.join(f'{r:.3f}' for r in runs)})")
    return result, summary


def not_a_view(record: LogRecord) -> bool:
    """What the leak reader decodes (services.retention.bootstrap.log_reader, skip_types)."""
    views = DossierViewed.event_type.encode()
    return not any(key == "ce_type" and value == views for key, value in record.headers)


def generate_and_produce(run: Run, topics: TopicNames, keys: SqlKeyStore, n: int) -> tuple[dict[str, Any], SchoolYear]:
    year = SchoolYear(n, SEED, EVENTS_PER_BRANCH, pupils=True)
    codecs = {Topic.REGISTRY_EVENTS: EventCodec(keys, source="/samenveilig/registry", topics=topics),
              Topic.ACCESS_EVENTS: EventCodec(keys, source="/samenveilig/access", topics=topics)}
    codecs[Topic.RETENTION_EVENTS] = codecs[Topic.REGISTRY_EVENTS]  # created, stays empty
    progress(f"N={n:,}: generating, sealing and producing ({year.branch_count} branches, "
             f"{len(year.people):,} staff, {len(year.pupil_emails):,} pupils, {len(year.dossiers):,} dossiers, "
             f"{year.views:,} views)")
    produced = produce_stream(run.bootstrap, topics, codecs, year.stream(), n, chunk=ENCODE_CHUNK,
                              limit_s=setup_limit(n), client_id="bench-leak-producer")
    emails = [len(e) for e in year.pupil_emails.values()]
    return {**produced.summary(), **year.summary(), "pupils": len(year.pupil_emails),
            "pupils_with_dossier": len(set(year.dossier_pupil.values())), "pupils_left": year.pupils_left,
            "parent_addresses": len({a for e in year.pupil_emails.values() for a in e}),
            "pupils_two_parents": sum(1 for c in emails if c == 2)}, year


# --- 2.-4. the measurements ------------------------------------------------------------------

@dataclasses.dataclass
class LeakCase:
    name: str
    label: str
    report: LeakReport
    expected_pupils: set[UUID]


def leak_cases(year: SchoolYear, discovered: datetime) -> list[LeakCase]:
    rng = random.Random(SEED + 1)
    dossier = rng.choice(sorted(year.dossier_pupil))

    def present_as(person: Person, role: StaffRole) -> bool:
        return person.present(discovered) and person.role_at(discovered) is role

    ib_er = rng.choice([p for p in year.people if p.branch is not None and present_as(p, StaffRole.IB_ER)])
    consultant = rng.choice([p for p in year.consultants if p.present(discovered)])
    wijks = set(consultant.wijknetwerken)
    nature = "Bench: gegevens zijn bij de verkeerde ontvanger terechtgekomen."

    def pupils_of(dossiers: set[UUID]) -> set[UUID]:
        return {year.dossier_pupil[d] for d in dossiers}

    return [
        LeakCase("dossier", "1 dossier", LeakReport(nature, discovered, [], [dossier], []),
                 pupils_of({dossier})),
        LeakCase("ib_er", "an IB'er's account (the branch)", LeakReport(nature, discovered, [], [], [ib_er.staff_id]),
                 pupils_of({d for d, b in year.dossier_branch.items() if b == ib_er.branch})),
        LeakCase("consultant", f"an SWV consultant's account ({len(wijks)} wijknetwerk{'en' * (len(wijks) > 1)})",
                 LeakReport(nature, discovered, [], [], [consultant.staff_id]),
                 pupils_of({d for d, b in year.dossier_branch.items() if year.branch_wijk[b] in wijks})),
    ]


def leak_event(case: LeakCase) -> DataLeaked:
    r = case.report
    return DataLeaked(leak_id=uuid.uuid4(), nature=r.nature, discovered_at=r.discovered_at, pupil_ids=r.pupil_ids,
                      dossier_ids=r.dossier_ids, staff_ids=r.staff_ids)


def expected_mails(year: SchoolYear, pupils: set[UUID]) -> int:
    return len({a for p in pupils for a in year.pupil_emails[p]})


def measure_components(run: Run, topics: TopicNames, codec: EventCodec, year: SchoolYear, cases: list[LeakCase],
                       discovered: datetime) -> tuple[dict[str, Any], dict[str, LeakScope], dict[str, dict[str, Any]]]:
    """Steps 2 and 3: the baseline read and decode, build_index, state_at and leak_scope."""
    n = year.n
    names = [str(t) for t in HISTORY_TOPICS]
    deadline = Deadline(read_limit(n) * (2 * REPEATS + 1), f"N={n:,}: baseline reads")

    # 2. baseline
    progress(f"N={n:,}: baseline")
    raw = read_all(run.bootstrap, [topics(t) for t in HISTORY_TOPICS], expected=n, limit_s=read_limit(n),
                   **READ_TOPICS_CONSUMER)
    progress(f"  raw consume (counting only): {raw['seconds']:.3f} s")
    records_by_topic, read = median_of(
        "read_topics", lambda: read_topics(run.bootstrap, topics, names, timeout_s=read_limit(n)), deadline)
    if sum(len(rs) for rs in records_by_topic.values()) != n:
        raise RuntimeError(f"read_topics returned {sum(len(rs) for rs in records_by_topic.values())}, expected {n}")
    # As log_reader flattens them for the leak desk: in stream order, views skipped by header.
    records = [r for rs in records_by_topic.values() for r in in_stream_order(rs) if not_a_view(r)]
    del records_by_topic
    deadline = Deadline(work_limit(n), f"N={n:,}: decode, index and scope")
    (entries, undecodable), decode = median_of("decode_all (service codec, SqlKeyStore; views skipped)",
                                               lambda: decode_all(codec, records), deadline)
    expected = n - year.views
    if undecodable or len(entries) != expected:
        raise RuntimeError(f"{len(entries)} decoded, {len(undecodable)} undecodable, expected {expected} events")
    empty = EventCodec(InMemoryKeyStore(), source="/bench")
    _, decode_empty = median_of("decode_all (empty in-memory key store)", lambda: decode_all(empty, records),
                                deadline)
    sealed_in_log = sum(1 for e in entries if e.event.key_id)

    # 3. index and scopes
    progress(f"N={n:,}: build_index and leak_scope")
    index, index_t = median_of("build_index", lambda: build_index(entries), deadline)
    if len(index.pupils) != len(year.pupil_emails):
        raise RuntimeError(f"build_index found {len(index.pupils)} pupils, expected {len(year.pupil_emails)}")
    scopes: dict[str, LeakScope] = {}
    scope_t: dict[str, dict[str, Any]] = {}
    checks: dict[str, dict[str, Any]] = {}
    _, state_t = median_of("state_at (inside leak_scope)", lambda: state_at(entries, discovered, "valid"), deadline)
    for case in cases:
        event = leak_event(case)

        def scope_of(leak: DataLeaked = event) -> LeakScope:
            return leak_scope(entries, index, leak)

        scope, scope_t[case.name] = median_of(f"leak_scope, {case.label}", scope_of, deadline)
        scopes[case.name] = scope
        # One mail per parent address (siblings' parents get one).
        mails = len({a for p in scope.pupil_ids for a in parents_to_tell(index, p)})
        checks[case.name] = {
            "pupils": len(scope.pupil_ids), "dossiers": len(scope.dossier_ids),
            "exposures": len(scope.exposures), "unknown": len(scope.unknown), "mails": mails,
            "pupils_as_generated": set(scope.pupil_ids) == case.expected_pupils,
            "mails_as_generated": mails == expected_mails(year, case.expected_pupils),
        }
        if not checks[case.name]["pupils_as_generated"]:
            progress(f"  WARNING: leak_scope({case.label}) gave {len(scope.pupil_ids)} pupils, the generator "
                     f"expects {len(case.expected_pupils)}")
    components = {
        "raw_consume": {"seconds": raw["seconds"], "rate_per_s": raw["rate_per_s"]},
        "read_topics": read, "decode_all": {**decode, "decoded": len(entries)},
        "decode_all_empty_keystore": decode_empty, "sealed_in_log": sealed_in_log, "build_index": index_t,
        "state_at": state_t, "leak_scope": scope_t,
    }
    return components, scopes, checks


def measure_size(run: Run, n: int) -> dict[str, Any]:
    prefix = f"{run.prefix}n{n}."
    topics = TopicNames(prefix)
    folder = run.workdir / f"n{n}"
    folder.mkdir()
    keystore_url = f"sqlite:///{Path(folder) / 'keys.sqlite'}"
    keys = SqlKeyStore(make_engine(keystore_url), base64.b64decode(run.master_key))
    produced, year = generate_and_produce(run, topics, keys, n)
    discovered = (max(YEAR_END, max(p.recorded for p in year.planned)) + timedelta(hours=1)).replace(microsecond=0)
    clock = ManualClock(discovered + timedelta(minutes=10))
    settings = RetentionSettings(kafka_bootstrap_servers=run.bootstrap, topic_prefix=prefix, master_key=run.master_key,
                                 keystore_url=keystore_url,
                                 database_url=f"sqlite:///{Path(folder) / 'retention.sqlite'}",
                                 consumer_group=f"{prefix}ret")
    deps = build(settings, clock=clock)
    cases = leak_cases(year, discovered)
    components, scopes, checks = measure_components(run, topics, deps.codec, year, cases, discovered)
    # The relay process holds only what resolve_pending reads itself: this run's copies of the
    # log are gone (they lived in measure_components), and the plan goes too, so the garbage
    # collector does not walk them during the end-to-end calls.
    del year
    gc.collect()

    # 4. end to end
    progress(f"N={n:,}: end to end, LeakDesk.resolve_pending on the retention service from build()")
    e2e: dict[str, dict[str, Any]] = {}
    deadline = Deadline(work_limit(n) * len(cases), f"N={n:,}: end to end")
    for case in cases:
        deadline.check(case.label)
        leak_id = uuid.uuid4()
        with deps.engine.begin() as connection:
            deps.leaks.register(connection, leak_id, case.report)
        gc.collect()
        resolved, seconds, in_gc = timed(lambda: int(deps.leaks.resolve_pending(deps.engine)))
        with deps.engine.connect() as connection:
            row = connection.execute(select(retention_store.leaks).where(
                retention_store.leaks.c.leak_id == str(leak_id))).one()
            mails, addresses = connection.execute(
                select(func.count(), func.count(retention_store.mail_outbox.c.recipient.distinct()))
                .where(retention_store.mail_outbox.c.message_id.like(f"<leak-{leak_id}.%"))).one()
        scope = scopes[case.name]
        ok = (resolved == 1 and row.resolved_at is not None
              and row.affected_pupil_ids == [str(p) for p in scope.pupil_ids]
              and row.parents_mailed == mails == checks[case.name]["mails"])
        if not ok:
            raise RuntimeError(f"resolve_pending({case.label}): resolved {resolved}, {row.parents_mailed} "
                               f"mailed, {mails} mails queued; expected the scope measured above")
        e2e[case.name] = {"seconds": round(seconds, 4), "gc_seconds": round(in_gc, 4), "mails": mails,
                          "distinct_addresses": addresses,
                          "pupils": len(row.affected_pupil_ids), "unreachable": row.pupils_unreachable}
        progress(f"  resolve_pending, {case.label}: {seconds:.3f} s ({mails} mails to {addresses} addresses)")
    deps.engine.dispose()
    read, decode = components["read_topics"], components["decode_all"]
    scope_t = components.pop("leak_scope")
    return {
        "events": n, "topic_prefix": prefix, "discovered_at": discovered.isoformat(), "produce": produced,
        **components,
        "cases": [{"name": c.name, "label": c.label, "leak_scope": scope_t[c.name], "check": checks[c.name],
                   "resolve_pending": e2e[c.name]} for c in cases],
        "ratios": {
            "decode_to_read": ratio(decode["seconds"], read["seconds"]),
            "index_to_read": ratio(components["build_index"]["seconds"], read["seconds"]),
            **{f"scope_{c.name}_to_read": ratio(scope_t[c.name]["seconds"], read["seconds"]) for c in cases},
            **{f"e2e_{c.name}_to_read": ratio(e2e[c.name]["seconds"], read["seconds"]) for c in cases},
            **{f"e2e_{c.name}_to_read_decode": ratio(e2e[c.name]["seconds"], read["seconds"] + decode["seconds"])
               for c in cases},
        },
    }


# --- report ----------------------------------------------------------------------------------

def measure(run: Run) -> dict[str, Any]:
    sizes = []
    with GC:
        for n in run.args.events:
            sizes.append(measure_size(run, n))
            gc.collect()
    return {"crc32c": crc32c_implementation(), "seed": SEED, "repeats": REPEATS, "sizes": sizes,
            "peak_rss_mb": round(peak_rss_mb())}


def render(report: dict[str, Any]) -> str:
    table = Table("retention leak handling", report["machine"], width=58, value_width=12,
                  machine_extra=f"CRC-32C in {report['crc32c']}")
    for size in report["sizes"]:
        n, p = size["events"], size["produce"]
        read, decode = size["read_topics"]["seconds"], size["decode_all"]["seconds"]
        empty, state = size["decode_all_empty_keystore"]["seconds"], size["state_at"]["seconds"]

        def x(seconds: float, base: float = read) -> str:
            return f"{seconds / base:6.2f} x read"

        table.section(f"=== N={n:,} events: {p['per_topic'].get(str(Topic.REGISTRY_EVENTS), 0):,} registry + "
                      f"{p['per_topic'].get(str(Topic.ACCESS_EVENTS), 0):,} access, avg value "
                      f"{p['avg_value_bytes']:.0f} bytes, {PARTITIONS} partitions")
        table.text(f"    {p['branches']} branches, {p['staff']:,} staff + {p['consultants']} consultants, "
                   f"{p['pupils']:,} pupils ({p['pupils_with_dossier']:,} with a dossier, {p['pupils_two_parents']:,} "
                   f"with two parents, {p['parent_addresses']:,} addresses, {p['pupils_left']} left), "
                   f"{p['dossiers']:,} dossiers, {p['by_type'].get('DossierViewed', 0):,} views; "
                   f"{size['sealed_in_log']:,} events sealed",
                   f"    leaks discovered at {size['discovered_at'][:16]} UTC (just after the log's last event)",
                   "  SETUP (not part of any number below)")
        table.figure("generate + encode (EventCodec, SqlKeyStore)", f"{p['encode_rate_per_s']:,.0f}/s",
                     f"({p['encode_seconds']:.1f} s)")
        table.figure("produce (acks=all, linger 20 ms, 512 KiB batches)", f"{p['produce_rate_per_s']:,.0f}/s",
                     f"({p['produce_seconds']:.1f} s)")
        table.text("  BASELINE (median of 3)")
        table.figure("read_topics (registry, access, retention) to high water", f"{read:.3f} s",
                     f"{n / read:,.0f} records/s  (= 1.00; raw consumer counting only: "
                     f"{size['raw_consume']['seconds']:.3f} s)")
        table.figure("decode_all, the service's codec, views skipped by header", f"{decode:.3f} s",
                     f"{x(decode)}  ({size['decode_all']['decoded']:,} decoded, "
                     f"{size['decode_all']['decoded'] / decode:,.0f} events/s; in gc "
                     f"{size['decode_all']['gc_seconds']:.2f} s)")
        table.figure("decode_all with an empty in-memory key store (context)", f"{empty:.3f} s",
                     f"{x(empty)}  (sealed fields read as 'verwijderd')", indent=2)
        table.figure("of which the key store (difference of the two)", f"{decode - empty:.3f} s",
                     f"{x(decode - empty)}  ({size['sealed_in_log']:,} sealed events: "
                     f"{(decode - empty) / max(1, size['sealed_in_log']) * 1000:.2f} ms each)", indent=2)
        table.figure("read + decode (what log_reader does)", f"{read + decode:.3f} s", x(read + decode))
        table.text("  LEAK SCOPE (median of 3, on the decoded entries)")
        table.figure("build_index", f"{size['build_index']['seconds']:.3f} s", x(size["build_index"]["seconds"]))
        table.figure("state_at(entries, discovery) alone (inside leak_scope)", f"{state:.3f} s", x(state))
        for case in size["cases"]:
            c, s = case["check"], case["leak_scope"]["seconds"]
            ok = "checked" if c["pupils_as_generated"] and c["mails_as_generated"] else "DIFFERS FROM THE GENERATOR"
            table.figure(f"leak_scope, {case['label']}", f"{s:.3f} s",
                         f"{x(s)}  ({c['dossiers']} dossiers, {c['pupils']} pupils, {c['exposures']} exposures, "
                         f"{c['mails']} mails: {ok}; beyond state_at {max(0.0, s - state):.3f} s)")
        table.text("  END TO END: LeakDesk.resolve_pending (one call, one leak pending)")
        for case in size["cases"]:
            e = case["resolve_pending"]
            s = e["seconds"]
            parts = read + decode + size["build_index"]["seconds"] + case["leak_scope"]["seconds"]
            table.figure(case["label"], f"{s:.3f} s",
                         f"{x(s)}, {s / (read + decode):.2f} x read+decode  ({e['mails']} mails to "
                         f"{e['distinct_addresses']} addresses; in gc {e['gc_seconds']:.2f} s; {s / WINDOW_S:.1e} of "
                         f"72 h; after read, decode, index and scope {max(0.0, s - parts):.3f} s)")
    table.text("", f"memory    peak RSS {report['peak_rss_mb']:,.0f} MB (ru_maxrss, whole run)")
    return table.render(report)


def main(argv: list[str] | None = None) -> int:
    parser = cli("bench.retention_leak", __doc__)
    parser.add_argument("--events", type=int, nargs="+", default=list(DEFAULT_SIZES),
                        help="log sizes N (default: 10000 100000)")
    args = parser.parse_args(argv)
    if min(args.events) < MIN_EVENTS:
        parser.error(f"every size must be at least {MIN_EVENTS}")
    return run_benchmark(args, measure, render, quiet=["services.retention.leaks"])  # "data leak registered/resolved"


if __name__ == "__main__":
    sys.exit(main())
