"""Crypto-shredding costs: sealing personal data per event against plain serialisation, and the
purge of one pupil with 1,000 events. `python -m bench.retention_crypto [--events N] [--json]`.

Both sides of every ratio are measured in the same run, on this machine.
"""

from __future__ import annotations

import argparse
import base64
import json
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime
from pathlib import Path

from services.retention import store as retention_store
from services.retention.service import RetentionService
from shared.clock import ManualClock
from shared.contracts.envelope import EventCodec
from shared.contracts.events import ERASED, DossierOpened, PupilEnrolled, pupil_key_id
from shared.crypto import InMemoryKeyStore, SqlKeyStore, new_master_key
from shared.db import make_engine


def events_for(pupils: int) -> list[PupilEnrolled]:
    branch = uuid.uuid4()
    return [PupilEnrolled(branch_id=branch, pupil_id=uuid.uuid4(), name=f"Leerling {n}", date_of_birth=date(2015, 3, 1),
                          parent_emails=[f"ouder{n}@example.nl"]) for n in range(pupils)]


def per_event_us(seconds: float, count: int) -> float:
    return seconds / count * 1e6


def measure_codec(n: int) -> dict[str, float]:
    events = events_for(n)
    now = datetime.now(UTC)
    started = time.perf_counter()
    plain = [e.model_dump_json().encode() for e in events]
    plain_encode = time.perf_counter() - started
    started = time.perf_counter()
    for value in plain:
        PupilEnrolled.model_validate_json(value)
    plain_decode = time.perf_counter() - started

    codec = EventCodec(InMemoryKeyStore(), source="/bench")
    started = time.perf_counter()
    sealed = [codec.encode(e, event_id=str(i), recorded_at=now).value for i, e in enumerate(events)]
    sealed_encode = time.perf_counter() - started
    started = time.perf_counter()
    for value in sealed:
        codec.decode(value)
    sealed_decode = time.perf_counter() - started
    return {"plain_encode_us": per_event_us(plain_encode, n), "plain_decode_us": per_event_us(plain_decode, n),
            "sealed_encode_us": per_event_us(sealed_encode, n), "sealed_decode_us": per_event_us(sealed_decode, n),
            "encode_ratio": sealed_encode / plain_encode, "decode_ratio": sealed_decode / plain_decode}


def measure_purge(events_per_pupil: int, rounds: int) -> dict[str, float]:
    timings, reread = [], []
    for _ in range(rounds):
        with tempfile.TemporaryDirectory() as folder:
            master = base64.b64decode(new_master_key())
            keys = SqlKeyStore(make_engine(f"sqlite:///{Path(folder) / 'keys.sqlite'}"), master)
            url = f"sqlite:///{Path(folder) / 'retention.sqlite'}"
            retention_store.migrate_to_newest(url)
            engine = make_engine(url)
            codec = EventCodec(keys, source="/bench")
            pupil, branch = uuid.uuid4(), uuid.uuid4()
            now = datetime(2029, 8, 1, tzinfo=UTC)
            log = [codec.encode(DossierOpened(branch_id=branch, dossier_id=uuid.uuid4(), pupil_id=pupil,
                                              contact_staff_id=uuid.uuid4(), summary=f"Notitie {i} over de leerling"),
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
            assert purged == 1 and keys.key_for_reading(pupil_key_id(pupil)) is None
            started = time.perf_counter()
            assert all(codec.decode(v).event.summary == ERASED for v in log)
            reread.append(time.perf_counter() - started)
    return {"purge_ms_p50": statistics.median(timings) * 1000, "purge_ms_max": max(timings) * 1000,
            "reread_1000_events_ms_p50": statistics.median(reread) * 1000}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    started = time.monotonic()
    codec = measure_codec(args.events)
    purge = measure_purge(1000, rounds=5)
    report = {"events": args.events, "codec": codec, "purge": purge, "seconds": time.monotonic() - started}
    if args.json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
        return 0
    lines = [
        f"samenveilig retention crypto, {datetime.now(UTC):%Y-%m-%dT%H:%M}Z, N={args.events} PupilEnrolled events",
        "SEALING (AES-256-GCM per data subject, key from an in-memory store) vs plain pydantic JSON",
        f"  encode   plain {codec['plain_encode_us']:7.1f} us/event   sealed {codec['sealed_encode_us']:7.1f} us/event"
        f"   ratio {codec['encode_ratio']:.2f}",
        f"  decode   plain {codec['plain_decode_us']:7.1f} us/event   sealed {codec['sealed_decode_us']:7.1f} us/event"
        f"   ratio {codec['decode_ratio']:.2f}",
        "PURGE of one pupil with 1,000 sealed events (SQL key store and retention DB on SQLite, 5 rounds)",
        f"  purge (destroy key, record, emit)   p50 {purge['purge_ms_p50']:.1f} ms"
        f"   max {purge['purge_ms_max']:.1f} ms",
        f"  reading the 1,000 events afterwards (all 'verwijderd')   p50 {purge['reread_1000_events_ms_p50']:.1f} ms",
        f"run took {report['seconds']:.1f} s",
    ]
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
