"""The access service's own tables (SQLite embedded, PostgreSQL deployed). All of it can be
rebuilt from registry.events.v1 and access.events.v1."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any
from uuid import UUID

from sqlalchemy import (
    Boolean,
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    and_,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from services.access.domain import TIME_BOUND_ROLES, AccessState, Agreement, Dossier, Grant, StaffMember
from shared.contracts.envelope import RecordedEvent
from shared.contracts.events import ERASED, ConsultantDeparted, StaffDeparted, StaffRole
from shared.db import UtcDateTime, migrate
from shared.kafka.progress import define_progress_tables
from shared.outbox import define_outbox_tables

MIGRATIONS = Path(__file__).parent / "migrations"
VERSION_TABLE = "alembic_version_access"

metadata = MetaData()
staff = Table(
    "access_staff", metadata,
    Column("staff_id", String(36), primary_key=True),
    Column("branch_id", String(36), nullable=True, index=True),
    Column("role", String(40), nullable=True),
    Column("joined_at", UtcDateTime(), nullable=True),
    Column("role_since", UtcDateTime(), nullable=True),
    Column("access_until", UtcDateTime(), nullable=True),
    Column("wijknetwerken", String(2000), nullable=False),  # JSON list, consultants only
    Column("departed_at", UtcDateTime(), nullable=True),
    Column("departure_recorded_at", UtcDateTime(), nullable=True),
    # Where notifications go; personal data, kept only while needed for the mail.
    Column("email", String(320), nullable=True),
    Column("subscribed", Boolean, nullable=False),
)
# Append-only: one row per applied departure. Kept for the audit ("when did we learn it"), and
# because a row applied twice would show here, which makes effectively-once checkable.
staff_departures = Table(
    "access_staff_departures", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(100), nullable=False),
    Column("staff_id", String(36), nullable=False, index=True),
    Column("effective_at", UtcDateTime(), nullable=False),
    Column("recorded_at", UtcDateTime(), nullable=False),
)
branches = Table(
    "access_branches", metadata,
    Column("branch_id", String(36), primary_key=True),
    Column("wijknetwerk", String(80), nullable=False, index=True),
)
dossiers = Table(
    "access_dossiers", metadata,
    Column("dossier_id", String(36), primary_key=True),
    Column("branch_id", String(36), nullable=False, index=True),
    Column("contact_staff_id", String(36), nullable=False, index=True),
    Column("contact_since", UtcDateTime(), nullable=False),
    Column("open", Boolean, nullable=False),
    Column("opened_at", UtcDateTime(), nullable=False),
    # Whose dossier: only so that a purge can find the pupil's rows (PupilDataPurged).
    Column("pupil_id", String(36), nullable=True, index=True),
)
grants = Table(
    "access_grants", metadata,
    Column("staff_id", String(36), primary_key=True),
    Column("dossier_id", String(36), primary_key=True),
    Column("granted_at", UtcDateTime(), nullable=False),
    Column("until", UtcDateTime(), nullable=True),
    Column("revoked_at", UtcDateTime(), nullable=True),
    Index("ix_access_grants_dossier", "dossier_id"),
)
# One row per extern or stagiair: the confidentiality agreement that binds them now (the newest).
agreements = Table(
    "access_agreements", metadata,
    Column("staff_id", String(36), primary_key=True),
    Column("version", String(200), nullable=False),
    Column("valid_from", UtcDateTime(), nullable=False),
    Column("valid_until", UtcDateTime(), nullable=False),
    Column("revoked_at", UtcDateTime(), nullable=True),
)
missing_contacts = Table(
    "access_missing_contacts", metadata,
    Column("dossier_id", String(36), primary_key=True),
    Column("branch_id", String(36), nullable=False),
    Column("previous_contact_staff_id", String(36), nullable=False),
    Column("flagged_at", UtcDateTime(), nullable=False),
)
# The head of each dossier's access-log hash chain: where the next DossierViewed links to, and
# an anchor the audit compares the log's last entry with (a truncated log shows).
view_chain = Table(
    "access_view_chain", metadata,
    Column("dossier_id", String(36), primary_key=True),
    Column("last_hash", String(64), nullable=False),
    Column("last_event_id", String(100), nullable=False),
    Column("length", Integer, nullable=False),
)
outbox, mail_outbox = define_outbox_tables(metadata, "access")
processed_events, consumer_positions, stream_versions = define_progress_tables(metadata)


def migrate_to_newest(url: str) -> None:
    migrate(url, MIGRATIONS, VERSION_TABLE)


# --- staff ----------------------------------------------------------------------------------

def _member(row: Any) -> StaffMember:
    return StaffMember(
        staff_id=UUID(row.staff_id), branch_id=UUID(row.branch_id) if row.branch_id else None,
        role=StaffRole(row.role) if row.role else None, joined_at=row.joined_at, role_since=row.role_since,
        access_until=row.access_until, wijknetwerken=tuple(json.loads(row.wijknetwerken)),
        departed_at=row.departed_at, departure_recorded_at=row.departure_recorded_at)


# The lookups every access check makes, built once: building a statement per call cost more
# than running it (bench/access_latency.py).
_MEMBER = select(staff).where(staff.c.staff_id == bindparam("staff_id"))
_DOSSIER = select(dossiers).where(dossiers.c.dossier_id == bindparam("dossier_id"))
_WIJKNETWERK = select(branches.c.wijknetwerk).where(branches.c.branch_id == bindparam("branch_id"))
_GRANT = select(grants).where(grants.c.staff_id == bindparam("staff_id"),
                              grants.c.dossier_id == bindparam("dossier_id"))


def load_member(connection: Connection, staff_id: UUID) -> StaffMember | None:
    row = connection.execute(_MEMBER, {"staff_id": str(staff_id)}).first()
    return _member(row) if row is not None else None


def save_member(connection: Connection, member: StaffMember, email: str | None = None) -> None:
    values: dict[str, Any] = {
        "branch_id": str(member.branch_id) if member.branch_id else None,
        "role": member.role.value if member.role else None, "joined_at": member.joined_at,
        "role_since": member.role_since, "access_until": member.access_until,
        "wijknetwerken": json.dumps(list(member.wijknetwerken)), "departed_at": member.departed_at,
        "departure_recorded_at": member.departure_recorded_at}
    if email is not None:
        values["email"] = email
    if not connection.execute(update(staff).where(staff.c.staff_id == str(member.staff_id)).values(**values)).rowcount:
        connection.execute(insert(staff).values(staff_id=str(member.staff_id), subscribed=True,
                                                **{"email": None, **values}))


def email_of(connection: Connection, staff_id: str) -> tuple[str | None, bool]:
    row = connection.execute(select(staff.c.email, staff.c.subscribed).where(staff.c.staff_id == staff_id)).first()
    return (row.email, row.subscribed) if row is not None else (None, False)


def set_subscribed(connection: Connection, staff_id: UUID, subscribed: bool) -> bool:
    return bool(connection.execute(update(staff).where(staff.c.staff_id == str(staff_id))
                                   .values(subscribed=subscribed)).rowcount)


def record_departure(connection: Connection, recorded: RecordedEvent) -> None:
    connection.execute(insert(staff_departures).values(
        event_id=recorded.id, staff_id=str(recorded.event.staff_id),  # type: ignore[attr-defined]
        effective_at=recorded.effective_at, recorded_at=recorded.recorded_at))


def departures_of(connection: Connection, staff_id: UUID) -> list[dict[str, object]]:
    rows = connection.execute(select(staff_departures).where(
        staff_departures.c.staff_id == str(staff_id)).order_by(staff_departures.c.id))
    return [dict(row._mapping) for row in rows]


# --- branches, dossiers, grants -------------------------------------------------------------

def wijknetwerk_of(connection: Connection, branch_id: UUID) -> str | None:
    value = connection.execute(_WIJKNETWERK, {"branch_id": str(branch_id)}).scalar()
    return str(value) if value is not None else None


def save_wijknetwerk(connection: Connection, branch_id: UUID, wijknetwerk: str) -> None:
    if not connection.execute(update(branches).where(branches.c.branch_id == str(branch_id))
                              .values(wijknetwerk=wijknetwerk)).rowcount:
        connection.execute(insert(branches).values(branch_id=str(branch_id), wijknetwerk=wijknetwerk))


def _dossier(row: Any) -> Dossier:
    return Dossier(UUID(row.dossier_id), UUID(row.branch_id), UUID(row.contact_staff_id), row.contact_since,
                   row.open, row.opened_at, UUID(row.pupil_id) if row.pupil_id else None)


def load_dossier(connection: Connection, dossier_id: UUID) -> Dossier | None:
    row = connection.execute(_DOSSIER, {"dossier_id": str(dossier_id)}).first()
    return _dossier(row) if row is not None else None


def save_dossier(connection: Connection, dossier: Dossier) -> None:
    values = {"branch_id": str(dossier.branch_id), "contact_staff_id": str(dossier.contact_staff_id),
              "contact_since": dossier.contact_since, "open": dossier.open, "opened_at": dossier.opened_at,
              "pupil_id": str(dossier.pupil_id) if dossier.pupil_id else None}
    if not connection.execute(update(dossiers).where(dossiers.c.dossier_id == str(dossier.dossier_id))
                              .values(**values)).rowcount:
        connection.execute(insert(dossiers).values(dossier_id=str(dossier.dossier_id), **values))


def _grant(row: Any) -> Grant:
    return Grant(UUID(row.staff_id), UUID(row.dossier_id), row.granted_at, row.until, row.revoked_at)


def load_grant(connection: Connection, staff_id: UUID, dossier_id: UUID) -> Grant | None:
    row = connection.execute(_GRANT, {"staff_id": str(staff_id), "dossier_id": str(dossier_id)}).first()
    return _grant(row) if row is not None else None


def grants_of(connection: Connection, staff_id: UUID) -> list[Grant]:
    rows = connection.execute(select(grants).where(grants.c.staff_id == str(staff_id)))
    return [_grant(row) for row in rows]


def save_grant(connection: Connection, grant: Grant) -> None:
    values = {"granted_at": grant.granted_at, "until": grant.until, "revoked_at": grant.revoked_at}
    if not connection.execute(update(grants).where(grants.c.staff_id == str(grant.staff_id),
                                                   grants.c.dossier_id == str(grant.dossier_id))
                              .values(**values)).rowcount:
        connection.execute(insert(grants).values(staff_id=str(grant.staff_id), dossier_id=str(grant.dossier_id),
                                                 **values))


def _agreement(row: Any) -> Agreement:
    return Agreement(UUID(row.staff_id), row.version, row.valid_from, row.valid_until, row.revoked_at)


_AGREEMENT = select(agreements).where(agreements.c.staff_id == bindparam("staff_id"))


def load_agreement(connection: Connection, staff_id: UUID) -> Agreement | None:
    row = connection.execute(_AGREEMENT, {"staff_id": str(staff_id)}).first()
    return _agreement(row) if row is not None else None


def load_agreements_for(connection: Connection, staff_ids: Sequence[UUID]) -> dict[UUID, Agreement]:
    if not staff_ids:
        return {}
    rows = connection.execute(select(agreements).where(agreements.c.staff_id.in_([str(s) for s in staff_ids])))
    return {UUID(row.staff_id): _agreement(row) for row in rows}


def save_agreement(connection: Connection, agreement: Agreement) -> None:
    values = {"version": agreement.version, "valid_from": agreement.valid_from,
              "valid_until": agreement.valid_until, "revoked_at": agreement.revoked_at}
    if not connection.execute(update(agreements).where(agreements.c.staff_id == str(agreement.staff_id))
                              .values(**values)).rowcount:
        connection.execute(insert(agreements).values(staff_id=str(agreement.staff_id), **values))


def flag_missing_contact(connection: Connection, dossier_id: UUID, branch_id: UUID, previous: UUID,
                         at: datetime) -> None:
    connection.execute(delete(missing_contacts).where(missing_contacts.c.dossier_id == str(dossier_id)))
    connection.execute(insert(missing_contacts).values(dossier_id=str(dossier_id), branch_id=str(branch_id),
                                                       previous_contact_staff_id=str(previous), flagged_at=at))


def resolve_missing_contact(connection: Connection, dossier_id: UUID) -> None:
    connection.execute(delete(missing_contacts).where(missing_contacts.c.dossier_id == str(dossier_id)))


def list_missing_contacts(connection: Connection, after: str | None, limit: int) -> tuple[list[Any], int]:
    query = select(missing_contacts).order_by(missing_contacts.c.dossier_id)
    if after:
        query = query.where(missing_contacts.c.dossier_id > after)
    total = connection.execute(select(func.count()).select_from(missing_contacts)).scalar_one()
    return list(connection.execute(query.limit(limit)).all()), int(total)


# --- queries for the listing APIs -----------------------------------------------------------

def candidate_dossiers(connection: Connection, member: StaffMember, after: str | None, limit: int,
                       now: datetime) -> tuple[list[str], int]:
    """Dossier ids the member may see, in id order: one page, and how many in all. The query
    mirrors the policy so that `total` is exact; the caller still decides each with the policy."""
    if member.role in TIME_BOUND_ROLES and member.access_until is not None and member.access_until <= now:
        return [], 0
    if member.role in TIME_BOUND_ROLES:
        agreement = load_agreement(connection, member.staff_id)
        if agreement is None or not agreement.valid(now):
            return [], 0
    active_grants = select(grants.c.dossier_id).where(
        grants.c.staff_id == str(member.staff_id), grants.c.revoked_at.is_(None), grants.c.granted_at <= now,
        or_(grants.c.until.is_(None), grants.c.until > now))
    if member.role in TIME_BOUND_ROLES:
        active_grants = active_grants.where(grants.c.until.is_not(None))
    conditions: list[ColumnElement[bool]] = [dossiers.c.dossier_id.in_(active_grants)]
    if member.role not in TIME_BOUND_ROLES:
        conditions.append(dossiers.c.contact_staff_id == str(member.staff_id))
    if member.role in (StaffRole.IB_ER, StaffRole.DIRECTEUR) and member.branch_id is not None:
        conditions.append(dossiers.c.branch_id == str(member.branch_id))
    if member.role is StaffRole.SWV_CONSULTANT and member.wijknetwerken:
        conditions.append(dossiers.c.branch_id.in_(select(branches.c.branch_id).where(
            branches.c.wijknetwerk.in_(member.wijknetwerken))))
    where = or_(*conditions)
    page = select(dossiers.c.dossier_id).where(where).order_by(dossiers.c.dossier_id)
    if after:
        page = page.where(dossiers.c.dossier_id > after)
    total = connection.execute(select(func.count()).select_from(dossiers).where(where)).scalar_one()
    return [row.dossier_id for row in connection.execute(page.limit(limit))], int(total)


def candidate_staff(connection: Connection, dossier: Dossier, wijknetwerk: str | None) -> list[StaffMember]:
    """Everyone some rule might let see `dossier`; the caller decides each with the policy."""
    conditions: list[ColumnElement[bool]] = [
        and_(staff.c.branch_id == str(dossier.branch_id),
             staff.c.role.in_([StaffRole.IB_ER.value, StaffRole.DIRECTEUR.value])),
        staff.c.staff_id == str(dossier.contact_staff_id),
        staff.c.staff_id.in_(select(grants.c.staff_id).where(grants.c.dossier_id == str(dossier.dossier_id))),
    ]
    if wijknetwerk is not None:
        conditions.append(and_(staff.c.role == StaffRole.SWV_CONSULTANT.value,
                               staff.c.wijknetwerken.contains(json.dumps(wijknetwerk))))
    rows = connection.execute(select(staff).where(or_(*conditions)).order_by(staff.c.staff_id))
    return [_member(row) for row in rows]


def directors_of(connection: Connection, branch_id: UUID) -> list[StaffMember]:
    rows = connection.execute(select(staff).where(staff.c.branch_id == str(branch_id),
                                                  staff.c.role == StaffRole.DIRECTEUR.value))
    return [_member(row) for row in rows]


def load_grants_for(connection: Connection, staff_ids: Sequence[UUID], dossier_id: UUID) -> dict[UUID, Grant]:
    if not staff_ids:
        return {}
    rows = connection.execute(select(grants).where(grants.c.dossier_id == str(dossier_id),
                                                   grants.c.staff_id.in_([str(s) for s in staff_ids])))
    return {UUID(row.staff_id): _grant(row) for row in rows}


def chain_head(connection: Connection, dossier_id: UUID) -> tuple[str | None, int]:
    row = connection.execute(select(view_chain.c.last_hash, view_chain.c.length).where(
        view_chain.c.dossier_id == str(dossier_id))).first()
    return (row.last_hash, row.length) if row is not None else (None, 0)


def advance_chain(connection: Connection, dossier_id: UUID, previous: str | None, new_hash: str, event_id: str,
                  length: int) -> bool:
    """Compare-and-set: False when another writer moved the head meanwhile (the caller retries)."""
    if previous is None:
        exists = connection.execute(select(view_chain.c.dossier_id).where(
            view_chain.c.dossier_id == str(dossier_id))).first()
        if exists:
            return False
        connection.execute(insert(view_chain).values(dossier_id=str(dossier_id), last_hash=new_hash,
                                                     last_event_id=event_id, length=1))
        return True
    return bool(connection.execute(update(view_chain).where(
        view_chain.c.dossier_id == str(dossier_id), view_chain.c.last_hash == previous)
        .values(last_hash=new_hash, last_event_id=event_id, length=length + 1)).rowcount)


def drop_pupil(connection: Connection, pupil_id: UUID) -> int:
    """Every row about the pupil's dossiers goes (the pupil's data was purged)."""
    ids = [row.dossier_id for row in connection.execute(select(dossiers.c.dossier_id).where(
        dossiers.c.pupil_id == str(pupil_id)))]
    if not ids:
        return 0
    connection.execute(delete(grants).where(grants.c.dossier_id.in_(ids)))
    connection.execute(delete(missing_contacts).where(missing_contacts.c.dossier_id.in_(ids)))
    connection.execute(delete(view_chain).where(view_chain.c.dossier_id.in_(ids)))
    connection.execute(delete(mail_outbox).where(mail_outbox.c.dossier_id.in_(ids), mail_outbox.c.sent_at.is_(None)))
    connection.execute(delete(dossiers).where(dossiers.c.dossier_id.in_(ids)))
    return len(ids)


def projection_rows(connection: Connection) -> tuple[Sequence[Any], Sequence[Any], Sequence[Any]]:
    """Staff (id, role, branch, departure), dossiers (id, contact, open) and agreements (staff,
    version, end, revocation): what a replay of the log must reproduce (`services.access.projection`)."""
    return (connection.execute(select(staff.c.staff_id, staff.c.role, staff.c.branch_id, staff.c.departed_at)).all(),
            connection.execute(select(dossiers.c.dossier_id, dossiers.c.contact_staff_id, dossiers.c.open)).all(),
            connection.execute(select(agreements.c.staff_id, agreements.c.version, agreements.c.valid_until,
                                      agreements.c.revoked_at)).all())


def consumer_position_rows(connection: Connection, consumer: str) -> Sequence[Any]:
    """Where the processor stands per partition (the API fails closed on what these say)."""
    return connection.execute(select(consumer_positions).where(consumer_positions.c.consumer == consumer)).all()


def chain_heads(connection: Connection) -> dict[str, tuple[str, int]]:
    return {row.dossier_id: (row.last_hash, row.length) for row in connection.execute(select(view_chain))}


class Tables:
    """The access tables behind the domain's AccessEntities port: the live processor folds every
    event through the same handlers (`domain.HANDLERS`) as a replay does into an AccessState."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def member(self, staff_id: UUID) -> StaffMember | None:
        return load_member(self.connection, staff_id)

    def save_member(self, member: StaffMember, recorded: RecordedEvent) -> None:
        email = getattr(recorded.event, "email", None)
        save_member(self.connection, member, email=email if email and email != ERASED else None)
        if isinstance(recorded.event, StaffDeparted | ConsultantDeparted):
            record_departure(self.connection, recorded)

    def dossier(self, dossier_id: UUID) -> Dossier | None:
        return load_dossier(self.connection, dossier_id)

    def save_dossier(self, dossier: Dossier) -> None:
        save_dossier(self.connection, dossier)

    def save_wijknetwerk(self, branch_id: UUID, wijknetwerk: str) -> None:
        save_wijknetwerk(self.connection, branch_id, wijknetwerk)

    def grant(self, staff_id: UUID, dossier_id: UUID) -> Grant | None:
        return load_grant(self.connection, staff_id, dossier_id)

    def save_grant(self, grant: Grant) -> None:
        save_grant(self.connection, grant)

    def grants_of(self, staff_id: UUID) -> list[Grant]:
        return grants_of(self.connection, staff_id)

    def drop_pupil(self, pupil_id: UUID) -> None:
        drop_pupil(self.connection, pupil_id)

    def agreement(self, staff_id: UUID) -> Agreement | None:
        return load_agreement(self.connection, staff_id)

    def save_agreement(self, agreement: Agreement) -> None:
        save_agreement(self.connection, agreement)


def load_state(connection: Connection) -> AccessState:
    """Every entity in the tables as one AccessState (the live side of "replay equals live")."""
    members = {UUID(row.staff_id): _member(row) for row in connection.execute(select(staff))}
    found = {UUID(row.dossier_id): _dossier(row) for row in connection.execute(select(dossiers))}
    wijknetwerken = {UUID(row.branch_id): row.wijknetwerk for row in connection.execute(select(branches))}
    explicit = {(UUID(row.staff_id), UUID(row.dossier_id)): _grant(row) for row in connection.execute(select(grants))}
    signed = {UUID(row.staff_id): _agreement(row) for row in connection.execute(select(agreements))}
    return AccessState(MappingProxyType(members), MappingProxyType(found), MappingProxyType(wijknetwerken),
                       MappingProxyType(explicit), MappingProxyType(signed))
