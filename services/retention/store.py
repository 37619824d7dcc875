"""The retention service's own tables. Date of birth is the only personal datum kept in the
clear (consent from 16 depends on it); an inspection export is kept sealed under the pupil's
key. Both go with the purge."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import JSON, Boolean, Column, Date, Integer, LargeBinary, MetaData, String, Table, Text

from shared.db import UtcDateTime, migrate
from shared.kafka.progress import define_progress_tables
from shared.outbox import define_outbox_tables

MIGRATIONS = Path(__file__).parent / "migrations"
VERSION_TABLE = "alembic_version_retention"

metadata = MetaData()
pupils = Table(
    "retention_pupils", metadata,
    Column("pupil_id", String(36), primary_key=True),
    Column("branch_id", String(36), nullable=False),
    Column("date_of_birth", Date, nullable=True),
    Column("enrolled", Boolean, nullable=False),
    Column("left_on", Date, nullable=True),
    Column("has_swv_dossier", Boolean, nullable=False),
    Column("category", String(40), nullable=True),
    Column("due_on", Date, nullable=True, index=True),
    Column("legal_hold", Boolean, nullable=False),
    Column("hold_reason", String(200), nullable=True),
)
consents = Table(
    "retention_consents", metadata,
    Column("pupil_id", String(36), primary_key=True),
    Column("purpose", String(40), primary_key=True),
    Column("giver", String(10), primary_key=True),
    Column("given", Boolean, nullable=False),
    Column("at", UtcDateTime(), nullable=False),
)
# The purge report: what went and when, never what it was.
purges = Table(
    "retention_purges", metadata,
    Column("pupil_id", String(36), primary_key=True),
    Column("key_id", String(100), nullable=False),
    Column("category", String(40), nullable=False),
    Column("due_on", Date, nullable=False),
    Column("purged_at", UtcDateTime(), nullable=False),
)
# Data-subject requests (inspect, correct, delete): the privacy officer's list.
requests = Table(
    "retention_requests", metadata,
    Column("request_id", String(36), primary_key=True),
    Column("pupil_id", String(36), nullable=False, index=True),
    Column("branch_id", String(36), nullable=False, index=True),
    Column("kind", String(10), nullable=False),
    Column("requested_by", String(10), nullable=False),
    Column("received_on", Date, nullable=False),
    Column("due_on", Date, nullable=False),
    Column("extension_reason", String(200), nullable=True),
    Column("status", String(20), nullable=False),  # open, export-ready, answered
    Column("outcome", String(20), nullable=True),  # provided, corrected, deleted, refused
    Column("refusal_reason", String(300), nullable=True),
    Column("answered_at", UtcDateTime(), nullable=True),
    # What a correction changed, by field name only (never the values).
    Column("corrected_fields", JSON, nullable=True),
    # The inspection export (JSON), sealed under the pupil's key: shredded with the pupil.
    Column("export_sealed", LargeBinary, nullable=True),
)
# The breach register (AVG art. 33(5)): facts, effects and measures of every leak.
leaks = Table(
    "retention_leaks", metadata,
    Column("leak_id", String(36), primary_key=True),
    Column("nature", String(200), nullable=False),
    Column("consequences", Text, nullable=True),
    Column("measures", Text, nullable=True),
    Column("discovered_at", UtcDateTime(), nullable=False),
    Column("registered_at", UtcDateTime(), nullable=False),
    Column("deadline", UtcDateTime(), nullable=False, index=True),
    Column("reported_pupil_ids", JSON, nullable=False),
    Column("reported_dossier_ids", JSON, nullable=False),
    Column("reported_staff_ids", JSON, nullable=False),
    Column("resolved_at", UtcDateTime(), nullable=True),
    Column("affected_pupil_ids", JSON, nullable=True),
    Column("affected_dossier_ids", JSON, nullable=True),
    Column("exposures", JSON, nullable=True),  # [{dossier_id, staff_id, rule}]
    Column("unknown_ids", JSON, nullable=True),
    Column("parents_mailed", Integer, nullable=True),
    Column("pupils_unreachable", Integer, nullable=True),  # no address on file, or already purged
    Column("reported_at", UtcDateTime(), nullable=True),
    Column("report_reference", String(200), nullable=True),
    Column("delay_reason", String(200), nullable=True),
    # Art. 33(1): assessed as unlikely to result in a risk, so no report is due (with why).
    Column("not_reportable_reason", String(200), nullable=True),
    Column("overdue_alarm_at", UtcDateTime(), nullable=True),
)
outbox, mail_outbox = define_outbox_tables(metadata, "retention")
processed_events, consumer_positions, stream_versions = define_progress_tables(metadata)


def migrate_to_newest(url: str) -> None:
    migrate(url, MIGRATIONS, VERSION_TABLE)
