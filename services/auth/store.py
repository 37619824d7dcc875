"""The auth service's own tables. Secrets are never stored in clear: passwords as argon2 hashes,
tokens and recovery codes as SHA-256 hashes, TOTP seeds sealed with AES-GCM under the master key."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Boolean, Column, Integer, LargeBinary, MetaData, String, Table

from shared.db import UtcDateTime, migrate
from shared.kafka.progress import define_progress_tables
from shared.outbox import define_outbox_tables

MIGRATIONS = Path(__file__).parent / "migrations"
VERSION_TABLE = "alembic_version_auth"

metadata = MetaData()
accounts = Table(
    "auth_accounts", metadata,
    Column("staff_id", String(36), primary_key=True),
    # The staff member's e-mail address, lowercased: what they log in with.
    Column("username", String(320), nullable=False, unique=True),
    Column("password_hash", String(200), nullable=True),
    Column("totp_secret", LargeBinary, nullable=True),  # sealed; set once enrolment completes
    Column("totp_pending", LargeBinary, nullable=True),  # sealed; shown once, awaiting the first code
    Column("enrolled_at", UtcDateTime(), nullable=True),
    Column("last_step", Integer, nullable=True),  # the last accepted TOTP time step (no replay)
    Column("invited_at", UtcDateTime(), nullable=False),
    Column("disabled_at", UtcDateTime(), nullable=True),
)
tokens = Table(
    "auth_tokens", metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("kind", String(20), nullable=False),  # invitation | enrolment | challenge
    Column("staff_id", String(36), nullable=False, index=True),
    Column("expires_at", UtcDateTime(), nullable=False),
    Column("used_at", UtcDateTime(), nullable=True),
)
recovery_codes = Table(
    "auth_recovery_codes", metadata,
    Column("staff_id", String(36), primary_key=True),
    Column("code_hash", String(64), primary_key=True),
    Column("used_at", UtcDateTime(), nullable=True),
)
failures = Table(
    "auth_failures", metadata,
    # factor|scope|id, e.g. "code|account|<staff id>" or "password|client|127.0.0.1"
    Column("key", String(400), primary_key=True),
    Column("count", Integer, nullable=False),
    Column("locked_until", UtcDateTime(), nullable=True),
)
sessions = Table(
    "auth_sessions", metadata,
    Column("session_id", String(36), primary_key=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("staff_id", String(36), nullable=False, index=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("last_seen_at", UtcDateTime(), nullable=False),
    Column("ended_at", UtcDateTime(), nullable=True),
    Column("ended_reason", String(40), nullable=True),
    Column("second_factor", String(20), nullable=False),
    Column("active", Boolean, nullable=False, index=True),
)
outbox, mail_outbox = define_outbox_tables(metadata, "auth")
processed_events, consumer_positions, stream_versions = define_progress_tables(metadata)


def migrate_to_newest(url: str) -> None:
    migrate(url, MIGRATIONS, VERSION_TABLE)
