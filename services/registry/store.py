"""The registry's own tables: the state its rules need, the mutations it accepted, the event and
mail outboxes, and the credentials of school systems. SQLite embedded, PostgreSQL deployed."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from sqlalchemy import (
    Boolean,
    Column,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Connection, Row

from services.registry.domain import Branch, Dossier, Person, Pupil, References, RegistryState
from shared.contracts.events import Address, StaffRole
from shared.db import UtcDateTime, migrate
from shared.kafka.progress import define_progress_tables
from shared.outbox import define_outbox_tables

MIGRATIONS = Path(__file__).parent / "migrations"
VERSION_TABLE = "alembic_version_registry"

metadata = MetaData()
branches = Table(
    "registry_branches", metadata,
    Column("branch_id", String(36), primary_key=True),
    Column("vestigingscode", String(6), nullable=False),
    Column("name", String(200), nullable=False),
    Column("address", Text, nullable=False),  # JSON of the Address model
    Column("phone", String(20), nullable=False),
    Column("wijknetwerk", String(80), nullable=False),
    Column("closed", Boolean, nullable=False),
)
codes = Table(
    "registry_codes", metadata,
    Column("vestigingscode", String(6), primary_key=True),
    Column("branch_id", String(36), nullable=False),
)
people = Table(
    "registry_people", metadata,
    Column("staff_id", String(36), primary_key=True),
    Column("branch_id", String(36), nullable=True),
    Column("role", String(40), nullable=False),
    Column("active", Boolean, nullable=False),
    # Consultants: the office that registered them, and their wijknetwerken (JSON list).
    Column("office", String(64), nullable=True),
    Column("wijknetwerken", Text, nullable=True),
    # When the current join took effect (None: joined before this was recorded). Written by the
    # service beside the state, from the join's effective time, which the event does not carry.
    Column("joined_at", UtcDateTime(), nullable=True),
)
pupils = Table(
    "registry_pupils", metadata,
    Column("pupil_id", String(36), primary_key=True),
    Column("branch_id", String(36), nullable=False),
    Column("enrolled", Boolean, nullable=False),
)
dossiers = Table(
    "registry_dossiers", metadata,
    Column("dossier_id", String(36), primary_key=True),
    Column("branch_id", String(36), nullable=False),
    Column("pupil_id", String(36), nullable=False),
    Column("contact_staff_id", String(36), nullable=False),
    Column("open", Boolean, nullable=False),
)
mutations = Table(
    "registry_mutations", metadata,
    Column("sender", String(64), primary_key=True),
    Column("mutation_id", String(100), primary_key=True),
    Column("kind", String(40), nullable=False),
    # SHA-256 of the mutation as received: the same id with other content is a conflict.
    Column("fingerprint", String(64), nullable=False),
    Column("status", String(20), nullable=False),  # accepted | scheduled
    Column("event_ids", Text, nullable=False),  # JSON list
    Column("received_at", UtcDateTime(), nullable=False),
    Column("effective_at", UtcDateTime(), nullable=False),
    # JSON object: the ids of the entities the mutation touched ({"staff_id": ...}); NULL before 0004.
    Column("entity_ids", Text, nullable=True),
)
outbox, mail_outbox = define_outbox_tables(metadata, "registry")
credentials = Table(
    "registry_credentials", metadata,
    Column("client_id", String(32), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("key_hash", String(64), nullable=False),
    Column("signing_key", LargeBinary, nullable=False),  # wrapped under the master key
    Column("brins", Text, nullable=False),  # JSON list
    Column("wijknetwerken", Text, nullable=False),  # JSON list
    Column("created_at", UtcDateTime(), nullable=False),
    Column("revoked_at", UtcDateTime(), nullable=True),
    # The SWV office's identity (None: its client id; school systems have none).
    Column("office", String(64), nullable=True),
    # Branches served outside its BRINs (JSON list of ids; None: none): its own that changed BRIN.
    Column("branch_ids", Text, nullable=True),
    # The keys before the last rotation, accepted until previous_valid_until.
    Column("previous_key_hash", String(64), nullable=True),
    Column("previous_signing_key", LargeBinary, nullable=True),
    Column("previous_valid_until", UtcDateTime(), nullable=True),
)
processed_events, consumer_positions, stream_versions = define_progress_tables(metadata)


def migrate_to_newest(url: str) -> None:
    migrate(url, MIGRATIONS, VERSION_TABLE)


# --- state ----------------------------------------------------------------------------------

def branch_id_for(connection: Connection, vestigingscode: str) -> UUID | None:
    value = connection.execute(select(codes.c.branch_id).where(codes.c.vestigingscode == vestigingscode)).scalar()
    return UUID(value) if value else None


def load_state(connection: Connection, refs: References, branch_ids: Iterable[UUID] = ()) -> RegistryState:
    """The slice of registry state that `refs` names, as the domain's RegistryState."""
    code_rows = connection.execute(select(codes).where(codes.c.vestigingscode.in_(refs.vestigingscodes))).all() \
        if refs.vestigingscodes else []
    wanted = {row.branch_id for row in code_rows} | {str(b) for b in branch_ids}
    branch_rows = connection.execute(select(branches).where(branches.c.branch_id.in_(wanted))).all() if wanted else []
    people_rows = connection.execute(select(people).where(people.c.staff_id.in_([str(p) for p in refs.people]))).all() \
        if refs.people else []
    pupil_rows = connection.execute(select(pupils).where(pupils.c.pupil_id.in_([str(p) for p in refs.pupils]))).all() \
        if refs.pupils else []
    dossier_rows = connection.execute(
        select(dossiers).where(dossiers.c.dossier_id.in_([str(d) for d in refs.dossiers]))).all() \
        if refs.dossiers else []
    return RegistryState(
        branches={UUID(r.branch_id): Branch(UUID(r.branch_id), r.vestigingscode, r.name,
                                            Address.model_validate_json(r.address), r.phone, r.wijknetwerk, r.closed)
                  for r in branch_rows},
        codes={r.vestigingscode: UUID(r.branch_id) for r in code_rows},
        people={UUID(r.staff_id): _person(r) for r in people_rows},
        pupils={UUID(r.pupil_id): Pupil(UUID(r.pupil_id), UUID(r.branch_id), r.enrolled) for r in pupil_rows},
        dossiers={UUID(r.dossier_id): Dossier(UUID(r.dossier_id), UUID(r.branch_id), UUID(r.pupil_id),
                                              UUID(r.contact_staff_id), r.open) for r in dossier_rows},
    )


def load_reaction_state(connection: Connection, staff_id: UUID, branch_id: UUID) -> RegistryState:
    """What `react` needs after a departure: the person's open dossiers, the branch's people."""
    dossier_rows = connection.execute(select(dossiers).where(
        dossiers.c.contact_staff_id == str(staff_id), dossiers.c.open.is_(True))).all()
    people_rows = connection.execute(select(people).where(people.c.branch_id == str(branch_id))).all()
    return RegistryState(
        people={UUID(r.staff_id): _person(r) for r in people_rows},
        dossiers={UUID(r.dossier_id): Dossier(UUID(r.dossier_id), UUID(r.branch_id), UUID(r.pupil_id),
                                              UUID(r.contact_staff_id), r.open) for r in dossier_rows})


def _person(row: Row[Any]) -> Person:
    return Person(UUID(row.staff_id), UUID(row.branch_id) if row.branch_id else None, StaffRole(row.role), row.active,
                  office=row.office,
                  wijknetwerken=frozenset(json.loads(row.wijknetwerken)) if row.wijknetwerken is not None else None,
                  joined_at=row.joined_at)


def _upsert(connection: Connection, table: Table, key: str, rows: list[dict[str, Any]]) -> None:
    for row in rows:
        if not connection.execute(update(table).where(table.c[key] == row[key]).values(**row)).rowcount:
            connection.execute(insert(table).values(**row))


def save_state(connection: Connection, state: RegistryState, before: RegistryState | None = None) -> None:
    """Write a (partial) state back: only what differs from `before`, when given; what `before`
    held and `state` no longer does is deleted (a purged pupil and their dossiers)."""
    if before is not None:
        for table, key, old, new in ((branches, "branch_id", before.branches, state.branches),
                                     (codes, "vestigingscode", before.codes, state.codes),
                                     (people, "staff_id", before.people, state.people),
                                     (pupils, "pupil_id", before.pupils, state.pupils),
                                     (dossiers, "dossier_id", before.dossiers, state.dossiers)):
            gone = [str(k) for k in old.keys() - new.keys()]
            if gone:
                connection.execute(delete(table).where(table.c[key].in_(gone)))
        state = RegistryState(
            branches={k: v for k, v in state.branches.items() if before.branches.get(k) != v},
            codes={k: v for k, v in state.codes.items() if before.codes.get(k) != v},
            people={k: v for k, v in state.people.items() if before.people.get(k) != v},
            pupils={k: v for k, v in state.pupils.items() if before.pupils.get(k) != v},
            dossiers={k: v for k, v in state.dossiers.items() if before.dossiers.get(k) != v})
    _upsert(connection, branches, "branch_id", [
        {"branch_id": str(b.branch_id), "vestigingscode": b.vestigingscode, "name": b.name,
         "address": b.address.model_dump_json(), "phone": b.phone, "wijknetwerk": b.wijknetwerk, "closed": b.closed}
        for b in state.branches.values()])
    _upsert(connection, codes, "vestigingscode", [
        {"vestigingscode": code, "branch_id": str(branch_id)} for code, branch_id in state.codes.items()])
    _upsert(connection, people, "staff_id", [
        {"staff_id": str(p.staff_id), "branch_id": str(p.branch_id) if p.branch_id else None, "role": p.role.value,
         "active": p.active, "office": p.office,
         "wijknetwerken": json.dumps(sorted(p.wijknetwerken)) if p.wijknetwerken is not None else None}
        for p in state.people.values()])
    _upsert(connection, pupils, "pupil_id", [
        {"pupil_id": str(p.pupil_id), "branch_id": str(p.branch_id), "enrolled": p.enrolled}
        for p in state.pupils.values()])
    _upsert(connection, dossiers, "dossier_id", [
        {"dossier_id": str(d.dossier_id), "branch_id": str(d.branch_id), "pupil_id": str(d.pupil_id),
         "contact_staff_id": str(d.contact_staff_id), "open": d.open} for d in state.dossiers.values()])


def record_joined(connection: Connection, staff_id: UUID, joined_at: datetime) -> None:
    """The moment a staff member's join took effect (the row exists: the state was saved first)."""
    connection.execute(update(people).where(people.c.staff_id == str(staff_id)).values(joined_at=joined_at))


def clear_state(connection: Connection) -> None:
    """Empties the state tables, before a rebuild from the log."""
    for table in (branches, codes, people, pupils, dossiers):
        connection.execute(delete(table))


# --- accepted mutations ---------------------------------------------------------------------

def find_mutation(connection: Connection, sender: str, mutation_id: str) -> Any:
    return connection.execute(select(mutations).where(
        mutations.c.sender == sender, mutations.c.mutation_id == mutation_id)).first()


def record_mutation(connection: Connection, *, sender: str, mutation_id: str, kind: str, fingerprint: str,
                    status: str, event_ids: list[str], received_at: datetime, effective_at: datetime,
                    entity_ids: dict[str, str]) -> None:
    connection.execute(insert(mutations).values(
        sender=sender, mutation_id=mutation_id, kind=kind, fingerprint=fingerprint, status=status,
        event_ids=json.dumps(event_ids), received_at=received_at, effective_at=effective_at,
        entity_ids=json.dumps(entity_ids, sort_keys=True)))


def entity_ids_of(row: Row[Any]) -> dict[str, str]:
    """A recorded mutation's entity ids (`{}` for one recorded before they were kept)."""
    return dict(json.loads(row.entity_ids)) if row.entity_ids else {}


# --- lookups by the school's own references -------------------------------------------------

def find_person(connection: Connection, staff_id: UUID) -> Person | None:
    row = connection.execute(select(people).where(people.c.staff_id == str(staff_id))).first()
    return _person(row) if row else None


def find_pupil(connection: Connection, pupil_id: UUID) -> Pupil | None:
    row = connection.execute(select(pupils).where(pupils.c.pupil_id == str(pupil_id))).first()
    return Pupil(UUID(row.pupil_id), UUID(row.branch_id), row.enrolled) if row else None


def find_dossier(connection: Connection, dossier_id: UUID) -> Dossier | None:
    row = connection.execute(select(dossiers).where(dossiers.c.dossier_id == str(dossier_id))).first()
    return Dossier(UUID(row.dossier_id), UUID(row.branch_id), UUID(row.pupil_id), UUID(row.contact_staff_id),
                   row.open) if row else None


# --- credentials of school systems and the SWV office ----------------------------------------

def add_credential(connection: Connection, *, client_id: str, name: str, key_hash: str, sealed_signing_key: bytes,
                   brins: list[str], wijknetwerken: list[str], created_at: datetime, office: str | None) -> None:
    connection.execute(insert(credentials).values(
        client_id=client_id, name=name, key_hash=key_hash, signing_key=sealed_signing_key, brins=json.dumps(brins),
        wijknetwerken=json.dumps(wijknetwerken), created_at=created_at, office=office, branch_ids="[]"))


def set_credential_scope(connection: Connection, client_id: str, *, brins: list[str], wijknetwerken: list[str],
                         branch_ids: list[str]) -> None:
    connection.execute(update(credentials).where(credentials.c.client_id == client_id).values(
        brins=json.dumps(brins), wijknetwerken=json.dumps(wijknetwerken), branch_ids=json.dumps(branch_ids)))


def rotate_credential_keys(connection: Connection, client_id: str, *, key_hash: str, sealed_signing_key: bytes,
                           previous_valid_until: datetime) -> None:
    """The current keys become the previous ones (replacing any still in their overlap)."""
    connection.execute(update(credentials).where(credentials.c.client_id == client_id).values(
        previous_key_hash=credentials.c.key_hash, previous_signing_key=credentials.c.signing_key,
        previous_valid_until=previous_valid_until, key_hash=key_hash, signing_key=sealed_signing_key))


def active_credentials_for_brin(connection: Connection, brin: str) -> list[Row[Any]]:
    """Active credentials that may serve `brin` (the JSON list is matched in Python: few rows)."""
    rows = connection.execute(select(credentials).where(
        credentials.c.revoked_at.is_(None), credentials.c.brins.contains(f'"{brin}"'))).all()
    return [row for row in rows if brin in json.loads(row.brins)]


def active_credentials_following(connection: Connection, branch_id: UUID) -> list[Row[Any]]:
    rows = connection.execute(select(credentials).where(
        credentials.c.revoked_at.is_(None), credentials.c.branch_ids.contains(str(branch_id)))).all()
    return [row for row in rows if str(branch_id) in json.loads(row.branch_ids or "[]")]


def revoke_credential(connection: Connection, client_id: str, at: datetime) -> bool:
    """False when there is no active credential with this id."""
    return bool(connection.execute(update(credentials).where(
        credentials.c.client_id == client_id, credentials.c.revoked_at.is_(None)).values(revoked_at=at)).rowcount)


def credential_listing(connection: Connection) -> Sequence[Any]:
    """Every credential, oldest first, without its secrets."""
    return connection.execute(select(
        credentials.c.client_id, credentials.c.name, credentials.c.brins, credentials.c.wijknetwerken,
        credentials.c.branch_ids, credentials.c.office, credentials.c.created_at, credentials.c.revoked_at,
        credentials.c.previous_valid_until).order_by(credentials.c.created_at)).all()


def active_credential(connection: Connection, client_id: str) -> Row[Any] | None:
    return connection.execute(select(credentials).where(
        credentials.c.client_id == client_id, credentials.c.revoked_at.is_(None))).first()


def branch_with_aliases(connection: Connection, vestigingscode: str) -> tuple[Any, list[str]]:
    """The branch a current or earlier vestigingscode names (None if none), and all its codes."""
    branch_id = branch_id_for(connection, vestigingscode)
    if branch_id is None:
        return None, []
    row = connection.execute(select(branches).where(branches.c.branch_id == str(branch_id))).first()
    aliases = connection.execute(select(codes.c.vestigingscode).where(
        codes.c.branch_id == str(branch_id)).order_by(codes.c.vestigingscode)).scalars().all()
    return row, list(aliases)


def due_scheduled_events(connection: Connection, now: datetime, limit: int) -> Sequence[Any]:
    """Scheduled events whose moment has come and that have not changed the state yet, oldest first."""
    return connection.execute(select(outbox.c.seq, outbox.c.value).where(
        outbox.c.applied.is_(False), outbox.c.emit_at <= now).order_by(outbox.c.seq).limit(limit)).all()


def mark_applied(connection: Connection, seq: int) -> None:
    connection.execute(update(outbox).where(outbox.c.seq == seq).values(applied=True))


def dossier_ids_of(connection: Connection, pupil_id: UUID) -> tuple[UUID, ...]:
    return tuple(UUID(row.dossier_id) for row in connection.execute(
        select(dossiers.c.dossier_id).where(dossiers.c.pupil_id == str(pupil_id))))


def load_all(connection: Connection) -> RegistryState:
    """Every entity in the tables (the live side of "replay equals live")."""
    return load_state(connection, References(
        vestigingscodes=tuple(row.vestigingscode for row in connection.execute(select(codes.c.vestigingscode))),
        people=tuple(UUID(row.staff_id) for row in connection.execute(select(people.c.staff_id))),
        pupils=tuple(UUID(row.pupil_id) for row in connection.execute(select(pupils.c.pupil_id))),
        dossiers=tuple(UUID(row.dossier_id) for row in connection.execute(select(dossiers.c.dossier_id)))),
        branch_ids=[UUID(row.branch_id) for row in connection.execute(select(branches.c.branch_id))])


def projection_rows(connection: Connection) -> tuple[Sequence[Any], Sequence[Any]]:
    """Branches (id, vestigingscode, name, closed) and people (id, active): what a replay of the
    log must reproduce (`services.registry.projection`)."""
    return (connection.execute(select(branches.c.branch_id, branches.c.vestigingscode, branches.c.name,
                                      branches.c.closed)).all(),
            connection.execute(select(people.c.staff_id, people.c.active)).all())


def all_mutations(connection: Connection) -> list[Any]:
    return list(connection.execute(select(mutations)).all())
