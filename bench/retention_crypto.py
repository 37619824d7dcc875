"""Crypto-shredding costs: sealing personal data per event against plain serialisation, and the
purge of one pupil with 1,000 events. Both sides of every ratio are measured in the same run.

    .venv/bin/python -m bench.retention_crypto [--events N] [--json]

No broker. Progress, time limits and the report: bench.harness.
"""

from __future__ import annotations

import base64
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from bench.events import dossier_opened, pupil_enrolled
from bench.harness import Run, Table, cli, require_positive, run_benchmark
from services.retention import store as retention_store
from services.retention.service import RetentionService
from shared.clock import ManualClock
from shared.contracts.envelope import EventCodec
from shared.contracts.events import ERASED, PupilEnrolled, pupil_key_id
from shared.crypto import InMemoryKeyStore, SqlKeyStore, new_master_key
from shared.db import make_engine

PURGE_EVENTS = 1000
PURGE_ROUNDS = 5


def timed_us(fn: Any, items: list[Any]) -> tuple[list[Any], float]:
    """[fn(item) for item in items], and microseconds per item."""
    started = time.perf_counter()
    out = [fn(item) for item in items]
    return out, (time.perf_counter() - started) / len(items) * 1e6


def measure_codec(n: int) -> dict[str, float]:
    branch = uuid.uuid4()
    events = [pupil_enrolled(branch, i) for i in range(n)]
    now = datetime.now(UTC)
    plain, plain_encode = timed_us(lambda e: e.model_dump_json().encode(), events)
    _, plain_decode = timed_us(PupilEnrolled.model_validate_json, plain)
    codec = EventCodec(InMemoryKeyStore(), source="/bench")
    numbered = list(enumerate(events))
    sealed, sealed_encode = timed_us(lambda ie: codec.encode(ie[1], event_id=str(ie[0]), recorded_at=now).value,
                                     numbered)
    _, sealed_decode = timed_us(codec.decode, sealed)
    return {"plain_encode_us": plain_encode, "plain_decode_us": plain_decode, "sealed_encode_us": sealed_encode,
            "sealed_decode_us": sealed_decode, "encode_ratio": sealed_encode / plain_encode,
            "decode_ratio": sealed_decode / plain_decode}


def measure_purge(events_per_pupil: int, rounds: int) -> dict[str, float]:
    timings, reread = [], []
    for _ in range(rounds):
        with tempfile.TemporaryDirectory() as folder:
            keys = SqlKeyStore(make_engine(f"sqlite:///{Path(folder) / 'keys.sqlite'}"),
                               base64.b64decode(new_master_key()))
            url = f"sqlite:///{Path(folder) / 'retention.sqlite'}"
            retention_store.migrate_to_newest(url)
            engine = make_engine(url)
            codec = EventCodec(keys, source="/bench")
            pupil, branch = uuid.uuid4(), uuid.uuid4()
            now = datetime(2029, 8, 1, tzinfo=UTC)
            log = [codec.encode(dossier_opened(branch, uuid.uuid4(), pupil_id=pupil,
                                               summary=f"Notitie {i} over de leerling"),
                                event_id=str(uuid.uuid4()), recorded_at=now).value for i in range(events_per_pupil)]
            with engine.begin() as connection:
                connection.execute(retention_store.pupils.insert().values(
                    pupil_id=str(pupil), branch_id=str(branch), date_of_birth=date(2015, 3, 1), enrolled=False,
                    left_on=date(2026, 7, 17), has_swv_dossier=True, category="swv_dossier",
                    due_on=date(2029, 7, 17), legal_hold=False))
            service = RetentionService(codec, keys, ManualClock(now))
            started = time.perf_counter()
            purged = service.purge_due(engine)
            timings.append(time.perf_counter() - started)
            if purged != 1 or keys.key_for_reading(pupil_key_id(pupil)) is not None:
                raise RuntimeError(f"purge_due purged {purged} pupils and left the key")
            started = time.perf_counter()
            if not all(codec.decode(v).event.summary == ERASED for v in log):
                raise RuntimeError("an event of the purged pupil still reads")
            reread.append(time.perf_counter() - started)
            engine.dispose()
    return {"purge_ms_p50": statistics.median(timings) * 1000, "purge_ms_max": max(timings) * 1000,
            "reread_1000_events_ms_p50": statistics.median(reread) * 1000}


def measure(run: Run) -> dict[str, Any]:
    return {"events": run.args.events, "codec": measure_codec(run.args.events),
            "purge": measure_purge(PURGE_EVENTS, PURGE_ROUNDS)}


def render(report: dict[str, Any]) -> str:
    codec, purge = report["codec"], report["purge"]
    table = Table("retention crypto", report["machine"], width=48, value_width=18)
    table.header("sizes", f"N={report['events']} PupilEnrolled events; purge of one pupil with {PURGE_EVENTS:,} "
                          f"sealed events, {PURGE_ROUNDS} rounds")
    table.section("SEALING (AES-256-GCM per data subject, key from an in-memory store) vs plain pydantic JSON")
    for step in ("encode", "decode"):
        table.figure(f"{step}   plain", f"{codec[f'plain_{step}_us']:.1f} us/event",
                     f"sealed {codec[f'sealed_{step}_us']:7.1f} us/event")
    table.section("RATIOS (sealed / plain, both measured in this run)")
    table.ratio("encode", codec["encode_ratio"], digits=2)
    table.ratio("decode", codec["decode_ratio"], digits=2)
    table.section(f"PURGE of one pupil with {PURGE_EVENTS:,} sealed events (SQL key store and retention DB on SQLite)")
    table.figure("purge (destroy key, record, emit)", f"p50 {purge['purge_ms_p50']:.1f} ms",
                 f"max {purge['purge_ms_max']:.1f} ms")
    table.figure(f"reading the {PURGE_EVENTS:,} events afterwards (all 'verwijderd')",
                 f"p50 {purge['reread_1000_events_ms_p50']:.1f} ms")
    return table.render(report)


def main(argv: list[str] | None = None) -> int:
    parser = cli("bench.retention_crypto", __doc__, broker=False)
    parser.add_argument("--events", type=int, default=20_000, help="N, events sealed and decoded (default 20000)")
    args = parser.parse_args(argv)
    require_positive(parser, args, "events")
    return run_benchmark(args, measure, render, broker=False)


if __name__ == "__main__":
    sys.exit(main())
