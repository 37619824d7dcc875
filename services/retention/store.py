"""The retention service's own tables. Date of birth is the only personal datum kept here
(consent from 16 depends on it), and it goes with the purge."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Boolean, Column, Date, MetaData, String, Table

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
outbox, mail_outbox = define_outbox_tables(metadata, "retention")
processed_events, consumer_positions = define_progress_tables(metadata)


def migrate_to_newest(url: str) -> None:
    migrate(url, MIGRATIONS, VERSION_TABLE)
