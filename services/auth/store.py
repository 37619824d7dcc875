"""The auth service's own tables. Secrets are never stored in clear: passwords as argon2 hashes,
tokens and recovery codes as SHA-256 hashes, TOTP seeds sealed with AES-GCM under the master key."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    delete,
    insert,
    or_,
    select,
    update,
)
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
    # From the registry's events, for the tokens' claims: what the relying parties are told.
    Column("role", String(40), nullable=True),
    Column("branch_id", String(36), nullable=True),
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
# --- the OpenID Connect provider's tables -------------------------------------------------------

clients = Table(
    "auth_clients", metadata,
    Column("client_id", String(64), primary_key=True),
    Column("secret_hash", String(64), nullable=False),  # SHA-256 of a 256-bit secret, shown once
    Column("name", String(200), nullable=False),
    Column("redirect_uris", Text, nullable=False),  # JSON list, matched exactly
    Column("post_logout_redirect_uris", Text, nullable=False),  # JSON list
    Column("backchannel_logout_uri", String(500), nullable=True),
    Column("grant_types", Text, nullable=False),  # JSON list: authorization_code, refresh_token, client_credentials
    Column("scopes", Text, nullable=False),  # JSON list: what a client-credentials token may carry
    Column("created_at", UtcDateTime(), nullable=False),
    Column("revoked_at", UtcDateTime(), nullable=True),
)
authorization_codes = Table(
    "auth_authorization_codes", metadata,
    Column("code_hash", String(64), primary_key=True),
    Column("client_id", String(64), nullable=False),
    Column("session_id", String(36), nullable=False, index=True),
    Column("staff_id", String(36), nullable=False),
    Column("redirect_uri", String(500), nullable=False),
    Column("code_challenge", String(128), nullable=False),
    Column("nonce", String(200), nullable=True),
    Column("scope", String(500), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),
    Column("used_at", UtcDateTime(), nullable=True),
)
refresh_tokens = Table(
    "auth_refresh_tokens", metadata,
    Column("token_hash", String(64), primary_key=True),
    # Every token rotated from one authorization shares its family: a reuse revokes them all.
    Column("family_id", String(36), nullable=False, index=True),
    Column("client_id", String(64), nullable=False),
    Column("session_id", String(36), nullable=False, index=True),
    Column("staff_id", String(36), nullable=False),
    Column("scope", String(500), nullable=False),
    Column("issued_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),
    Column("rotated_at", UtcDateTime(), nullable=True),
    Column("revoked_at", UtcDateTime(), nullable=True),
)
signing_keys = Table(
    "auth_signing_keys", metadata,
    Column("kid", String(64), primary_key=True),
    Column("private_jwk", LargeBinary, nullable=False),  # sealed under the master key
    Column("public_jwk", Text, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    # No longer signs from here; published until every token it signed has expired.
    Column("retired_at", UtcDateTime(), nullable=True),
)
logout_deliveries = Table(
    "auth_logout_deliveries", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("client_id", String(64), nullable=False),
    Column("uri", String(500), nullable=False),
    Column("staff_id", String(36), nullable=False),
    Column("session_id", String(36), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UtcDateTime(), nullable=False, index=True),
    Column("delivered_at", UtcDateTime(), nullable=True),
    Column("last_status", String(100), nullable=True),
)

passkeys = Table(
    "auth_passkeys", metadata,
    Column("credential_id", String(1400), primary_key=True),  # base64url, as the browser names it
    Column("staff_id", String(36), nullable=False, index=True),
    Column("public_key", LargeBinary, nullable=False),  # COSE; public, so not sealed
    Column("sign_count", Integer, nullable=False),
    Column("name", String(100), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("last_used_at", UtcDateTime(), nullable=True),
)
admins = Table(
    "auth_admins", metadata,
    # SWV admins, appointed by the operator (samenveilig-auth admins grant): they may ask for
    # and approve factor resets and re-invite.
    Column("staff_id", String(36), primary_key=True),
    Column("granted_at", UtcDateTime(), nullable=False),
)
factor_resets = Table(
    "auth_factor_resets", metadata,
    Column("reset_id", String(36), primary_key=True),
    Column("staff_id", String(36), nullable=False, index=True),
    Column("requested_by", String(36), nullable=False),
    Column("requested_at", UtcDateTime(), nullable=False),
    Column("approved_by", String(36), nullable=True),
    Column("approved_at", UtcDateTime(), nullable=True),
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


def set_staff_facts(connection: Connection, staff_id: str, role: str | None, branch_id: str | None) -> None:
    connection.execute(update(accounts).where(accounts.c.staff_id == staff_id).values(role=role, branch_id=branch_id))


def set_role(connection: Connection, staff_id: str, role: str) -> None:
    connection.execute(update(accounts).where(accounts.c.staff_id == staff_id).values(role=role))


def find_session_by_id(connection: Connection, session_id: str) -> Row[Any] | None:
    return connection.execute(select(sessions).where(sessions.c.session_id == session_id)).first()


# --- OpenID Connect: clients ------------------------------------------------------------------

def add_client(connection: Connection, **values: Any) -> None:
    connection.execute(insert(clients).values(**values))


def find_client(connection: Connection, client_id: str) -> Row[Any] | None:
    return connection.execute(select(clients).where(clients.c.client_id == client_id)).first()


def list_clients(connection: Connection) -> list[Row[Any]]:
    return list(connection.execute(select(clients).order_by(clients.c.created_at)))


def revoke_client(connection: Connection, client_id: str, at: datetime) -> bool:
    return bool(connection.execute(update(clients).where(clients.c.client_id == client_id,
                                                         clients.c.revoked_at.is_(None))
                                   .values(revoked_at=at)).rowcount)


# --- OpenID Connect: codes and refresh tokens --------------------------------------------------

def add_code(connection: Connection, **values: Any) -> None:
    connection.execute(insert(authorization_codes).values(**values))


def take_code(connection: Connection, code_hash: str, at: datetime) -> tuple[Row[Any] | None, bool]:
    """The code's row, and whether this was its first use: it is marked used by the statement
    that finds it unused, so of two parallel exchanges one wins."""
    row = connection.execute(select(authorization_codes).where(authorization_codes.c.code_hash == code_hash)).first()
    if row is None:
        return None, False
    taken = connection.execute(update(authorization_codes).where(
        authorization_codes.c.code_hash == code_hash, authorization_codes.c.used_at.is_(None))
        .values(used_at=at)).rowcount
    return row, bool(taken)


def add_refresh_token(connection: Connection, **values: Any) -> None:
    connection.execute(insert(refresh_tokens).values(**values))


def find_refresh_token(connection: Connection, token_hash: str) -> Row[Any] | None:
    return connection.execute(select(refresh_tokens).where(refresh_tokens.c.token_hash == token_hash)).first()


def rotate_refresh_token(connection: Connection, token_hash: str, at: datetime) -> bool:
    """False when it was rotated (or revoked) before: a reuse."""
    return bool(connection.execute(update(refresh_tokens).where(
        refresh_tokens.c.token_hash == token_hash, refresh_tokens.c.rotated_at.is_(None),
        refresh_tokens.c.revoked_at.is_(None)).values(rotated_at=at)).rowcount)


def revoke_family(connection: Connection, family_id: str, at: datetime) -> None:
    connection.execute(update(refresh_tokens).where(refresh_tokens.c.family_id == family_id,
                                                    refresh_tokens.c.revoked_at.is_(None)).values(revoked_at=at))


def revoke_refresh_tokens_of_session(connection: Connection, session_id: str, at: datetime) -> None:
    connection.execute(update(refresh_tokens).where(refresh_tokens.c.session_id == session_id,
                                                    refresh_tokens.c.revoked_at.is_(None)).values(revoked_at=at))


def clients_of_session(connection: Connection, session_id: str) -> list[str]:
    """Every client a session's login was given to (a code was issued for it)."""
    return list(connection.execute(select(authorization_codes.c.client_id).where(
        authorization_codes.c.session_id == session_id).distinct()).scalars())


# --- OpenID Connect: signing keys ------------------------------------------------------------

def add_signing_key(connection: Connection, kid: str, private_jwk: bytes, public_jwk: str, at: datetime) -> None:
    connection.execute(insert(signing_keys).values(kid=kid, private_jwk=private_jwk, public_jwk=public_jwk,
                                                   created_at=at))


def current_signing_key(connection: Connection) -> Row[Any] | None:
    return connection.execute(select(signing_keys).where(signing_keys.c.retired_at.is_(None))
                              .order_by(signing_keys.c.created_at.desc())).first()


def retire_signing_keys(connection: Connection, at: datetime) -> None:
    connection.execute(update(signing_keys).where(signing_keys.c.retired_at.is_(None)).values(retired_at=at))


def published_signing_keys(connection: Connection, retired_after: datetime) -> list[Row[Any]]:
    return list(connection.execute(select(signing_keys).where(
        or_(signing_keys.c.retired_at.is_(None), signing_keys.c.retired_at > retired_after))
        .order_by(signing_keys.c.created_at.desc())))


def drop_signing_keys_retired_before(connection: Connection, before: datetime) -> None:
    connection.execute(delete(signing_keys).where(signing_keys.c.retired_at.is_not(None),
                                                  signing_keys.c.retired_at <= before))


# --- OpenID Connect: back-channel logout deliveries -------------------------------------------

def add_logout_delivery(connection: Connection, client_id: str, uri: str, staff_id: str, session_id: str,
                        at: datetime) -> None:
    connection.execute(insert(logout_deliveries).values(client_id=client_id, uri=uri, staff_id=staff_id,
                                                        session_id=session_id, created_at=at, attempts=0,
                                                        next_attempt_at=at))


def due_logout_deliveries(connection: Connection, now: datetime, limit: int = 100) -> list[Row[Any]]:
    return list(connection.execute(select(logout_deliveries).where(
        logout_deliveries.c.delivered_at.is_(None), logout_deliveries.c.next_attempt_at <= now)
        .order_by(logout_deliveries.c.id).limit(limit)))


def record_logout_attempt(connection: Connection, delivery_id: int, status: str, delivered_at: datetime | None,
                          next_attempt_at: datetime) -> None:
    connection.execute(update(logout_deliveries).where(logout_deliveries.c.id == delivery_id).values(
        attempts=logout_deliveries.c.attempts + 1, last_status=status[:100], delivered_at=delivered_at,
        next_attempt_at=next_attempt_at))


# --- admins and factor resets -------------------------------------------------------------

def is_admin(connection: Connection, staff_id: str) -> bool:
    return connection.execute(select(admins.c.staff_id).where(admins.c.staff_id == staff_id)).first() is not None


def grant_admin(connection: Connection, staff_id: str, at: datetime) -> None:
    if not is_admin(connection, staff_id):
        connection.execute(insert(admins).values(staff_id=staff_id, granted_at=at))


def revoke_admin(connection: Connection, staff_id: str) -> bool:
    return bool(connection.execute(delete(admins).where(admins.c.staff_id == staff_id)).rowcount)


def add_factor_reset(connection: Connection, reset_id: str, staff_id: str, requested_by: str, at: datetime) -> None:
    connection.execute(insert(factor_resets).values(reset_id=reset_id, staff_id=staff_id, requested_by=requested_by,
                                                    requested_at=at))


def find_factor_reset(connection: Connection, reset_id: str) -> Row[Any] | None:
    return connection.execute(select(factor_resets).where(factor_resets.c.reset_id == reset_id)).first()


def pending_factor_resets(connection: Connection) -> list[Row[Any]]:
    return list(connection.execute(
        select(factor_resets, accounts.c.username).join(accounts, accounts.c.staff_id == factor_resets.c.staff_id)
        .where(factor_resets.c.approved_at.is_(None)).order_by(factor_resets.c.requested_at)))


def approve_factor_reset(connection: Connection, reset_id: str, approved_by: str, at: datetime) -> bool:
    """False when it was approved before (by a parallel request, say)."""
    return bool(connection.execute(update(factor_resets).where(
        factor_resets.c.reset_id == reset_id, factor_resets.c.approved_at.is_(None))
        .values(approved_by=approved_by, approved_at=at)).rowcount)


def drop_second_factor(connection: Connection, staff_id: str) -> None:
    """The TOTP secret, its pending successor, the passkeys and the recovery codes are gone; the
    password stays."""
    connection.execute(update(accounts).where(accounts.c.staff_id == staff_id).values(
        totp_secret=None, totp_pending=None, enrolled_at=None, last_step=None))
    drop_recovery_codes(connection, staff_id)
    drop_passkeys(connection, staff_id)


# --- passkeys -------------------------------------------------------------------------------

def add_passkey(connection: Connection, credential_id: str, staff_id: str, public_key: bytes, sign_count: int,
                name: str, at: datetime) -> None:
    connection.execute(insert(passkeys).values(credential_id=credential_id, staff_id=staff_id, public_key=public_key,
                                               sign_count=sign_count, name=name, created_at=at))


def passkeys_of(connection: Connection, staff_id: str) -> list[Row[Any]]:
    return list(connection.execute(select(passkeys).where(passkeys.c.staff_id == staff_id)
                                   .order_by(passkeys.c.created_at)))


def find_passkey(connection: Connection, credential_id: str) -> Row[Any] | None:
    return connection.execute(select(passkeys).where(passkeys.c.credential_id == credential_id)).first()


def use_passkey(connection: Connection, credential_id: str, old_count: int, new_count: int, at: datetime) -> bool:
    """Records a use; False when another use of the same count came first (a cloned key, or a
    replayed assertion racing this one)."""
    return bool(connection.execute(update(passkeys).where(
        passkeys.c.credential_id == credential_id, passkeys.c.sign_count == old_count)
        .values(sign_count=new_count, last_used_at=at)).rowcount)


def remove_passkey(connection: Connection, staff_id: str, credential_id: str) -> bool:
    return bool(connection.execute(delete(passkeys).where(passkeys.c.staff_id == staff_id,
                                                          passkeys.c.credential_id == credential_id)).rowcount)


def drop_passkeys(connection: Connection, staff_id: str) -> None:
    connection.execute(delete(passkeys).where(passkeys.c.staff_id == staff_id))
