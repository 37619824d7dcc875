"""The auth service's own tables. Secrets are never stored in clear: passwords as argon2 hashes,
tokens and recovery codes as SHA-256 hashes, TOTP seeds sealed with AES-GCM under the master key."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Boolean, Column, Integer, LargeBinary, MetaData, String, Table, delete, insert, select, update
from sqlalchemy.engine import Connection, Row

from services.auth.domain import AccountFacts, AuthState, Failures, SessionFacts
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
    Column("last_failed_at", UtcDateTime(), nullable=True),  # a counter decays from here
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


def load_facts(connection: Connection) -> AuthState:
    """What the tables say about accounts and sessions, as the domain's fold of the log says it."""
    return AuthState(
        accounts={row.staff_id: AccountFacts(enrolled=row.enrolled_at is not None, disabled_at=row.disabled_at)
                  for row in connection.execute(select(accounts.c.staff_id, accounts.c.enrolled_at,
                                                       accounts.c.disabled_at))},
        sessions={row.session_id: SessionFacts(row.staff_id, row.second_factor,
                                               None if row.active else row.ended_reason)
                  for row in connection.execute(select(sessions.c.session_id, sessions.c.staff_id,
                                                       sessions.c.second_factor, sessions.c.active,
                                                       sessions.c.ended_reason))})


# --- accounts ------------------------------------------------------------------------------

def find_account(connection: Connection, staff_id: str) -> Row[Any] | None:
    return connection.execute(select(accounts).where(accounts.c.staff_id == staff_id)).first()


def find_account_by_username(connection: Connection, username: str) -> Row[Any] | None:
    return connection.execute(select(accounts).where(accounts.c.username == username)).first()


def add_account(connection: Connection, staff_id: str, username: str, invited_at: datetime) -> None:
    connection.execute(insert(accounts).values(staff_id=staff_id, username=username, invited_at=invited_at))


def reset_account(connection: Connection, staff_id: str, username: str, invited_at: datetime) -> None:
    """As if newly invited: no password, no second factor, not disabled."""
    connection.execute(update(accounts).where(accounts.c.staff_id == staff_id).values(
        username=username, password_hash=None, totp_secret=None, totp_pending=None, enrolled_at=None,
        last_step=None, invited_at=invited_at, disabled_at=None))


def disable_account(connection: Connection, staff_id: str, at: datetime) -> None:
    connection.execute(update(accounts).where(accounts.c.staff_id == staff_id).values(disabled_at=at))


def set_password_hash(connection: Connection, staff_id: str, password_hash: str) -> None:
    connection.execute(update(accounts).where(accounts.c.staff_id == staff_id).values(password_hash=password_hash))


def set_pending_totp(connection: Connection, staff_id: str, sealed_secret: bytes) -> None:
    connection.execute(update(accounts).where(accounts.c.staff_id == staff_id).values(totp_pending=sealed_secret))


def complete_enrolment(connection: Connection, staff_id: str, sealed_secret: bytes, enrolled_at: datetime,
                       last_step: int) -> None:
    connection.execute(update(accounts).where(accounts.c.staff_id == staff_id).values(
        totp_secret=sealed_secret, totp_pending=None, enrolled_at=enrolled_at, last_step=last_step))


def take_step(connection: Connection, staff_id: str, step: int) -> bool:
    """Records `step` as the last used TOTP step, in one statement with the check that it is
    newer than the last one: False when another login took it (or a later one) first."""
    return bool(connection.execute(update(accounts).where(
        accounts.c.staff_id == staff_id, (accounts.c.last_step.is_(None)) | (accounts.c.last_step < step))
        .values(last_step=step)).rowcount)


# --- tokens --------------------------------------------------------------------------------

def add_token(connection: Connection, token_hash: str, kind: str, staff_id: str, expires_at: datetime) -> None:
    connection.execute(insert(tokens).values(token_hash=token_hash, kind=kind, staff_id=staff_id,
                                             expires_at=expires_at))


def find_token(connection: Connection, token_hash: str, kind: str) -> Row[Any] | None:
    return connection.execute(select(tokens).where(tokens.c.token_hash == token_hash, tokens.c.kind == kind)).first()


def mark_token_used(connection: Connection, token_hash: str, at: datetime) -> None:
    connection.execute(update(tokens).where(tokens.c.token_hash == token_hash).values(used_at=at))


def drop_tokens_of(connection: Connection, staff_id: str) -> None:
    connection.execute(delete(tokens).where(tokens.c.staff_id == staff_id))


# --- recovery codes ------------------------------------------------------------------------

def drop_recovery_codes(connection: Connection, staff_id: str) -> None:
    connection.execute(delete(recovery_codes).where(recovery_codes.c.staff_id == staff_id))


def replace_recovery_codes(connection: Connection, staff_id: str, code_hashes: list[str]) -> None:
    drop_recovery_codes(connection, staff_id)
    for code_hash in code_hashes:
        connection.execute(insert(recovery_codes).values(staff_id=staff_id, code_hash=code_hash))


def use_recovery_code(connection: Connection, staff_id: str, code_hash: str, at: datetime) -> bool:
    """False when the staff member has no such code, or it was used before."""
    return bool(connection.execute(update(recovery_codes).where(
        recovery_codes.c.staff_id == staff_id, recovery_codes.c.code_hash == code_hash,
        recovery_codes.c.used_at.is_(None)).values(used_at=at)).rowcount)


def unused_recovery_codes(connection: Connection, staff_id: str) -> int:
    return len(connection.execute(select(recovery_codes.c.code_hash).where(
        recovery_codes.c.staff_id == staff_id, recovery_codes.c.used_at.is_(None))).all())


# --- failures ------------------------------------------------------------------------------

def load_failures(connection: Connection, key: str) -> Failures:
    row = connection.execute(select(failures).where(failures.c.key == key)).first()
    # Through the mapping: on a row, `count` is the tuple method.
    return Failures(row._mapping["count"], row.locked_until, row.last_failed_at) if row else Failures()


def save_failures(connection: Connection, key: str, value: Failures) -> None:
    values = {"count": value.count, "locked_until": value.locked_until, "last_failed_at": value.last_failed_at}
    if not connection.execute(update(failures).where(failures.c.key == key).values(**values)).rowcount:
        connection.execute(insert(failures).values(key=key, **values))


# --- sessions ------------------------------------------------------------------------------

def add_session(connection: Connection, session_id: str, token_hash: str, staff_id: str, created_at: datetime,
                second_factor: str) -> None:
    connection.execute(insert(sessions).values(
        session_id=session_id, token_hash=token_hash, staff_id=staff_id, created_at=created_at,
        last_seen_at=created_at, second_factor=second_factor, active=True))


def find_session(connection: Connection, token_hash: str) -> Row[Any] | None:
    """Ended ones too, unlike find_active_session."""
    return connection.execute(select(sessions).where(sessions.c.token_hash == token_hash)).first()


def find_active_session(connection: Connection, token_hash: str) -> Row[Any] | None:
    return connection.execute(select(sessions).where(sessions.c.token_hash == token_hash,
                                                     sessions.c.active.is_(True))).first()


def mark_seen(connection: Connection, session_id: str, at: datetime) -> None:
    connection.execute(update(sessions).where(sessions.c.session_id == session_id).values(last_seen_at=at))


def end_session(connection: Connection, session_id: str, at: datetime, reason: str) -> None:
    connection.execute(update(sessions).where(sessions.c.session_id == session_id).values(
        active=False, ended_at=at, ended_reason=reason))


def end_session_if_active(connection: Connection, session_id: str, at: datetime, reason: str) -> bool:
    """False when the session had already ended (its reason and time stay as they were)."""
    return bool(connection.execute(update(sessions).where(
        sessions.c.session_id == session_id, sessions.c.active.is_(True))
        .values(active=False, ended_at=at, ended_reason=reason)).rowcount)


def end_sessions_of(connection: Connection, staff_id: str, at: datetime, reason: str) -> list[str]:
    """Ends every active session of the staff member; returns their ids."""
    live = connection.execute(select(sessions.c.session_id).where(
        sessions.c.staff_id == staff_id, sessions.c.active.is_(True))).scalars().all()
    for session_id in live:
        end_session(connection, session_id, at, reason)
    return list(live)
