"""The access service's own tables (SQLite embedded, PostgreSQL deployed)."""

from __future__ import annotations

from pathlib import Path
from uuid import UUID

from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select, update
from sqlalchemy.engine import Connection

from services.access.domain import StaffMember
from shared.contracts.envelope import RecordedEvent
from shared.contracts.events import StaffDeparted, StaffRole
from shared.db import UtcDateTime, migrate
from shared.kafka.progress import define_progress_tables

MIGRATIONS = Path(__file__).parent / "migrations"
VERSION_TABLE = "alembic_version_access"

metadata = MetaData()
staff = Table(
    "access_staff", metadata,
    Column("staff_id", String(36), primary_key=True),
    Column("branch_id", String(36), nullable=False),
    Column("role", String(40), nullable=True),
    Column("joined_at", UtcDateTime(), nullable=True),
    Column("departed_at", UtcDateTime(), nullable=True),
    Column("departure_recorded_at", UtcDateTime(), nullable=True),
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
processed_events, consumer_positions = define_progress_tables(metadata)



def migrate_to_newest(url: str) -> None:
    migrate(url, MIGRATIONS, VERSION_TABLE)


def load_member(connection: Connection, staff_id: UUID) -> StaffMember | None:
    row = connection.execute(select(staff).where(staff.c.staff_id == str(staff_id))).first()
    if row is None:
        return None
    return StaffMember(
        staff_id=UUID(row.staff_id), branch_id=UUID(row.branch_id),
        role=StaffRole(row.role) if row.role else None, joined_at=row.joined_at,
        departed_at=row.departed_at, departure_recorded_at=row.departure_recorded_at)


def save_member(connection: Connection, member: StaffMember) -> None:
    values = {"branch_id": str(member.branch_id), "role": member.role.value if member.role else None,
              "joined_at": member.joined_at, "departed_at": member.departed_at,
              "departure_recorded_at": member.departure_recorded_at}
    changed = connection.execute(update(staff).where(staff.c.staff_id == str(member.staff_id))
                                 .values(**values)).rowcount
    if not changed:
        connection.execute(insert(staff).values(staff_id=str(member.staff_id), **values))


def record_departure(connection: Connection, recorded: RecordedEvent) -> None:
    assert isinstance(recorded.event, StaffDeparted)
    connection.execute(insert(staff_departures).values(
        event_id=recorded.id, staff_id=str(recorded.event.staff_id),
        effective_at=recorded.effective_at, recorded_at=recorded.recorded_at))


def departures_of(connection: Connection, staff_id: UUID) -> list[dict[str, object]]:
    rows = connection.execute(select(staff_departures).where(
        staff_departures.c.staff_id == str(staff_id)).order_by(staff_departures.c.id))
    return [dict(row._mapping) for row in rows]
