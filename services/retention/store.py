"""The retention service's own tables. Date of birth is the only personal datum kept in the
clear (consent from 16 depends on it); an inspection export is kept sealed under the pupil's
key. Both go with the purge."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any
from uuid import UUID

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    and_,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Connection, Row

from services.retention.domain import Consent, RetainedPupil, RetentionState
from shared.contracts.events import ConsentGiver, ConsentPurpose, SubjectRequestKind
from shared.db import UtcDateTime, migrate
from shared.kafka.progress import define_progress_tables
from shared.outbox import define_outbox_tables

if TYPE_CHECKING:
    from services.retention.history import LeakScope

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
# Each branch's school board (bevoegd gezag), from BranchFounded: whose FG acts for its pupils.
branches = Table(
    "retention_branches", metadata,
    Column("branch_id", String(36), primary_key=True),
    Column("bevoegd_gezag", String(5), nullable=True, index=True),
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
    Column("branch_id", String(36), nullable=True),  # whose board's report it is (None: before boards)
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
    # The school board whose FG registered the leak (policy.board_of): theirs to read and complete.
    Column("board", String(60), nullable=True, index=True),
    Column("registered_by", String(200), nullable=True),  # the actor (a staff id)
    Column("notice", String(40), nullable=True),  # the fixed text the parents' mail is built from
    # A mailing to more parents than the setting allows waits for a second FG: "awaiting-approval".
    Column("mailing_status", String(20), nullable=True),
    Column("mailing_recipients", Integer, nullable=True),
    Column("mailing_approved_at", UtcDateTime(), nullable=True),
    Column("mailing_approved_by", String(200), nullable=True),
    Column("overdue_alarm_at", UtcDateTime(), nullable=True),
)
outbox, mail_outbox = define_outbox_tables(metadata, "retention")
processed_events, consumer_positions, stream_versions = define_progress_tables(metadata)


def migrate_to_newest(url: str) -> None:
    migrate(url, MIGRATIONS, VERSION_TABLE)



# --- pupils -----------------------------------------------------------------------------------

def load_pupil(connection: Connection, pupil_id: UUID | str) -> Row[Any] | None:
    return connection.execute(select(pupils).where(pupils.c.pupil_id == str(pupil_id))).first()


def pupil_exists(connection: Connection, pupil_id: UUID) -> bool:
    return connection.execute(select(pupils.c.pupil_id).where(pupils.c.pupil_id == str(pupil_id))).first() is not None


# --- consents ---------------------------------------------------------------------------------

def update_consent(connection: Connection, pupil_id: UUID, purpose: ConsentPurpose, giver: ConsentGiver,
                   given: bool, at: datetime) -> bool:
    """False when this giver has not answered for this purpose before."""
    return bool(connection.execute(update(consents).where(
        consents.c.pupil_id == str(pupil_id), consents.c.purpose == purpose.value, consents.c.giver == giver.value)
        .values(given=given, at=at)).rowcount)


def add_consent(connection: Connection, pupil_id: UUID, purpose: ConsentPurpose, giver: ConsentGiver,
                given: bool, at: datetime) -> None:
    connection.execute(insert(consents).values(pupil_id=str(pupil_id), purpose=purpose.value, giver=giver.value,
                                               given=given, at=at))


def consents_for(connection: Connection, pupil_id: UUID, purpose: ConsentPurpose) -> Sequence[Row[Any]]:
    return connection.execute(select(consents).where(
        consents.c.pupil_id == str(pupil_id), consents.c.purpose == purpose.value)).all()


def consents_of(connection: Connection, pupil_id: str) -> Sequence[Row[Any]]:
    return connection.execute(select(consents).where(consents.c.pupil_id == pupil_id)
                              .order_by(consents.c.purpose, consents.c.giver)).all()


# --- the purge --------------------------------------------------------------------------------

def pupils_due_for_purge(connection: Connection, today: date) -> Sequence[Row[Any]]:
    return connection.execute(select(pupils).where(
        pupils.c.due_on <= today, pupils.c.legal_hold.is_(False), pupils.c.enrolled.is_(False))).all()


def record_purge(connection: Connection, pupil_id: str, key_id: str, category: str, due_on: date,
                 purged_at: datetime, branch_id: str | None = None) -> None:
    connection.execute(insert(purges).values(
        pupil_id=pupil_id, key_id=key_id, category=category, due_on=due_on, purged_at=purged_at, branch_id=branch_id))


# The tables a purge changes, vacuumed after it on PostgreSQL (shared.db.scrub_database).
PURGED_TABLES = ("retention_pupils", "retention_consents", "retention_requests", "retention_mail_outbox")


def drop_consents(connection: Connection, pupil_id: str) -> None:
    connection.execute(delete(consents).where(consents.c.pupil_id == pupil_id))


def clear_request_free_texts(connection: Connection, pupil_id: str) -> None:
    connection.execute(update(requests).where(requests.c.pupil_id == pupil_id).values(
        export_sealed=None, refusal_reason=None, extension_reason=None))


def drop_leak_mails(connection: Connection, pupil_id: str) -> None:
    # Leak mails name the pupil in their Message-ID (see leaks.message_id).
    connection.execute(delete(mail_outbox).where(mail_outbox.c.message_id.contains(f".{pupil_id}.")))


def drop_pupil(connection: Connection, pupil_id: str) -> None:
    connection.execute(delete(pupils).where(pupils.c.pupil_id == pupil_id))


def purge_report(connection: Connection, branch_ids: frozenset[UUID] | None = None) -> Sequence[Row[Any]]:
    """Every purge, or those of these branches."""
    query = select(purges).order_by(purges.c.purged_at)
    if branch_ids is not None:
        query = query.where(purges.c.branch_id.in_([str(b) for b in branch_ids]))
    return connection.execute(query).all()


# --- the purge forecast -----------------------------------------------------------------------

def scheduled_purges(connection: Connection, branch_ids: frozenset[UUID] | None, after: tuple[date, str] | None,
                     limit: int) -> Sequence[Any]:
    """Pupils who left and whose purge has a date, soonest first (then by pupil id, so a page
    boundary is stable): every branch, or these; after the (due date, pupil id) a page ended on."""
    query = select(pupils.c.pupil_id, pupils.c.branch_id, pupils.c.category, pupils.c.due_on, pupils.c.left_on,
                   pupils.c.legal_hold).where(pupils.c.due_on.is_not(None), pupils.c.enrolled.is_(False))
    if branch_ids is not None:
        query = query.where(pupils.c.branch_id.in_([str(b) for b in branch_ids]))
    if after is not None:
        query = query.where(or_(pupils.c.due_on > after[0], and_(pupils.c.due_on == after[0],
                                                                  pupils.c.pupil_id > after[1])))
    return connection.execute(query.order_by(pupils.c.due_on, pupils.c.pupil_id).limit(limit)).all()


def board_branch_ids(connection: Connection, bevoegd_gezag: str) -> frozenset[UUID]:
    """Every branch reported with this bevoegd gezag."""
    rows = connection.execute(select(branches.c.branch_id).where(branches.c.bevoegd_gezag == bevoegd_gezag))
    return frozenset(UUID(row.branch_id) for row in rows)


# --- data-subject requests --------------------------------------------------------------------

def load_request(connection: Connection, request_id: UUID) -> Row[Any] | None:
    return connection.execute(select(requests).where(requests.c.request_id == str(request_id))).first()


def add_request(connection: Connection, request_id: UUID, pupil_id: UUID, branch_id: str, kind: SubjectRequestKind,
                requested_by: ConsentGiver, received_on: date, due_on: date) -> None:
    connection.execute(insert(requests).values(
        request_id=str(request_id), pupil_id=str(pupil_id), branch_id=branch_id, kind=kind.value,
        requested_by=requested_by.value, received_on=received_on, due_on=due_on, status="open"))


def extend_request(connection: Connection, request_id: UUID, due_on: date, reason: str) -> None:
    connection.execute(update(requests).where(requests.c.request_id == str(request_id)).values(
        due_on=due_on, extension_reason=reason))


def inspections_awaiting_export(connection: Connection) -> Sequence[Row[Any]]:
    """Open inspection requests without an export, of pupils still held: after a purge there is
    nothing to export (the officer answers the request as refused, saying the data has been removed)."""
    return connection.execute(
        select(requests).join(pupils, pupils.c.pupil_id == requests.c.pupil_id)
        .where(requests.c.kind == SubjectRequestKind.INSPECT.value, requests.c.status == "open",
               requests.c.export_sealed.is_(None))).all()


def attach_export(connection: Connection, request_id: str, sealed: bytes) -> None:
    # Guarded: an answer recorded meanwhile (a refusal) must not flip back.
    connection.execute(update(requests).where(
        requests.c.request_id == request_id, requests.c.status == "open",
        requests.c.export_sealed.is_(None)).values(export_sealed=sealed, status="export-ready"))


def requests_of(connection: Connection, pupil_id: str) -> Sequence[Row[Any]]:
    return connection.execute(select(requests).where(requests.c.pupil_id == pupil_id)
                              .order_by(requests.c.received_on)).all()


def record_answer(connection: Connection, request_id: str, outcome: str, answered_at: datetime, *,
                  refusal_reason: str | None = None, corrected_fields: list[str] | None = None) -> None:
    values: dict[str, Any] = {}
    if refusal_reason is not None:
        values["refusal_reason"] = refusal_reason
    if corrected_fields is not None:
        values["corrected_fields"] = corrected_fields
    connection.execute(update(requests).where(requests.c.request_id == request_id).values(
        status="answered", outcome=outcome, answered_at=answered_at, **values))


def requests_by_urgency(connection: Connection, branch_ids: frozenset[UUID] | None,
                        open_only: bool) -> Sequence[Row[Any]]:
    """The most urgent first; of these branches only, when given."""
    query = select(requests).order_by(requests.c.due_on, requests.c.received_on)
    if branch_ids is not None:
        query = query.where(requests.c.branch_id.in_([str(b) for b in branch_ids]))
    if open_only:
        query = query.where(requests.c.status != "answered")
    return connection.execute(query).all()


def overdue_request_count(connection: Connection, today: date) -> int:
    return int(connection.execute(select(func.count()).select_from(requests).where(
        requests.c.status != "answered", requests.c.due_on < today)).scalar_one())


def events_unpublished(connection: Connection, now: datetime) -> bool:
    """Whether any event due by now is still waiting in the outbox."""
    return connection.execute(select(outbox.c.seq).where(
        outbox.c.published_at.is_(None), outbox.c.emit_at <= now).limit(1)).first() is not None


# --- data leaks -------------------------------------------------------------------------------

def load_leak(connection: Connection, leak_id: UUID) -> Row[Any] | None:
    return connection.execute(select(leaks).where(leaks.c.leak_id == str(leak_id))).first()


def add_leak(connection: Connection, leak_id: UUID, *, nature: str, consequences: str | None, measures: str | None,
             discovered_at: datetime, registered_at: datetime, deadline: datetime, pupil_ids: Sequence[UUID],
             dossier_ids: Sequence[UUID], staff_ids: Sequence[UUID], board: str | None = None,
             registered_by: str | None = None, notice: str | None = None) -> None:
    connection.execute(insert(leaks).values(board=board, registered_by=registered_by, notice=notice,
        leak_id=str(leak_id), nature=nature, consequences=consequences, measures=measures,
        discovered_at=discovered_at, registered_at=registered_at, deadline=deadline,
        reported_pupil_ids=[str(p) for p in pupil_ids], reported_dossier_ids=[str(d) for d in dossier_ids],
        reported_staff_ids=[str(s) for s in staff_ids]))


def unresolved_leaks(connection: Connection) -> Sequence[Row[Any]]:
    return connection.execute(select(leaks).where(leaks.c.resolved_at.is_(None))
                              .order_by(leaks.c.registered_at)).all()


def resolve_leak(connection: Connection, leak_id: str, scope: LeakScope, parents_mailed: int,
                 pupils_unreachable: int, at: datetime, mailing_status: str = "sent",
                 recipients: int | None = None) -> bool:
    """False when the leak was resolved already (by another relay that got here first)."""
    return bool(connection.execute(update(leaks).where(
        leaks.c.leak_id == leak_id, leaks.c.resolved_at.is_(None)).values(
        resolved_at=at, mailing_status=mailing_status,
        mailing_recipients=parents_mailed if recipients is None else recipients,
        affected_pupil_ids=[str(p) for p in scope.pupil_ids],
        affected_dossier_ids=[str(d) for d in scope.dossier_ids],
        exposures=[{"dossier_id": str(e.dossier_id), "staff_id": str(e.staff_id), "rule": e.rule}
                   for e in scope.exposures],
        unknown_ids=[str(u) for u in scope.unknown], parents_mailed=parents_mailed,
        pupils_unreachable=pupils_unreachable)).rowcount)


def leaks_overdue_unalarmed(connection: Connection, now: datetime) -> Sequence[Row[Any]]:
    """Past the deadline with no report recorded, not assessed as not reportable, and no alarm raised yet."""
    return connection.execute(select(leaks).where(
        leaks.c.reported_at.is_(None), leaks.c.overdue_alarm_at.is_(None),
        leaks.c.not_reportable_reason.is_(None), leaks.c.deadline < now)).all()


def record_overdue_alarm(connection: Connection, leak_id: str, at: datetime) -> None:
    connection.execute(update(leaks).where(leaks.c.leak_id == leak_id).values(overdue_alarm_at=at))


def record_regulator_report(connection: Connection, leak_id: UUID, reported_at: datetime, reference: str,
                            delay_reason: str | None) -> None:
    connection.execute(update(leaks).where(leaks.c.leak_id == str(leak_id)).values(
        reported_at=reported_at, report_reference=reference, delay_reason=delay_reason))


def amend_leak(connection: Connection, leak_id: UUID, *, consequences: str | None = None,
               measures: str | None = None, not_reportable_reason: str | None = None) -> None:
    """Sets what is given; None leaves a field as it is."""
    values: dict[str, Any] = {}
    if consequences is not None:
        values["consequences"] = consequences
    if measures is not None:
        values["measures"] = measures
    if not_reportable_reason is not None:
        values["not_reportable_reason"] = not_reportable_reason
    if values:
        connection.execute(update(leaks).where(leaks.c.leak_id == str(leak_id)).values(**values))


def breach_register(connection: Connection, board: str | None = None) -> Sequence[Row[Any]]:
    """The newest discovery first; one board's leaks only, when given."""
    query = select(leaks).order_by(leaks.c.discovered_at.desc())
    if board is not None:
        query = query.where(leaks.c.board == board)
    return connection.execute(query).all()


def approve_leak_mailing(connection: Connection, leak_id: UUID, approved_by: str, at: datetime) -> bool:
    """The second FG's approval: the leak is resolved again (now mailing) in the relay's next
    round. False when it was not waiting for one (approved already, by a parallel call)."""
    return bool(connection.execute(update(leaks).where(
        leaks.c.leak_id == str(leak_id), leaks.c.mailing_status == "awaiting-approval").values(
        mailing_status="approved", mailing_approved_at=at, mailing_approved_by=approved_by,
        resolved_at=None)).rowcount)


def request_branch(connection: Connection, request_id: UUID) -> UUID | None:
    row = connection.execute(select(requests.c.branch_id).where(requests.c.request_id == str(request_id))).first()
    return UUID(row.branch_id) if row else None


def overdue_leak_count(connection: Connection, now: datetime) -> int:
    return int(connection.execute(select(func.count()).select_from(leaks).where(
        leaks.c.reported_at.is_(None), leaks.c.not_reportable_reason.is_(None), leaks.c.deadline < now)).scalar_one())


def open_leak_count(connection: Connection) -> int:
    """Neither reported to the regulator nor assessed as not reportable."""
    return int(connection.execute(select(func.count()).select_from(leaks).where(
        leaks.c.reported_at.is_(None), leaks.c.not_reportable_reason.is_(None))).scalar_one())


# --- the retention state behind the domain's port ----------------------------------------------

def _pupil(row: Row[Any]) -> RetainedPupil:
    return RetainedPupil(UUID(row.pupil_id), UUID(row.branch_id), row.date_of_birth, row.enrolled, row.left_on,
                         row.has_swv_dossier, row.category, row.due_on, row.legal_hold, row.hold_reason)


class Tables:
    """The retention tables behind the domain's RetentionEntities port: the live service folds
    every event through the same handlers (`domain.HANDLERS`) as a replay does."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def pupil(self, pupil_id: UUID) -> RetainedPupil | None:
        row = load_pupil(self.connection, pupil_id)
        return _pupil(row) if row is not None else None

    def save_pupil(self, pupil: RetainedPupil) -> None:
        values = {"branch_id": str(pupil.branch_id), "date_of_birth": pupil.date_of_birth,
                  "enrolled": pupil.enrolled, "left_on": pupil.left_on, "has_swv_dossier": pupil.has_swv_dossier,
                  "category": pupil.category, "due_on": pupil.due_on, "legal_hold": pupil.legal_hold,
                  "hold_reason": pupil.hold_reason}
        if not self.connection.execute(update(pupils).where(pupils.c.pupil_id == str(pupil.pupil_id))
                                       .values(**values)).rowcount:
            self.connection.execute(insert(pupils).values(pupil_id=str(pupil.pupil_id), **values))

    def save_consent(self, consent: Consent) -> None:
        if not update_consent(self.connection, consent.pupil_id, consent.purpose, consent.giver, consent.given,
                              consent.at):
            add_consent(self.connection, consent.pupil_id, consent.purpose, consent.giver, consent.given, consent.at)

    def drop_pupil(self, pupil_id: UUID) -> None:
        drop_consents(self.connection, str(pupil_id))
        drop_pupil(self.connection, str(pupil_id))

    def save_board(self, branch_id: UUID, board: str | None) -> None:
        if not self.connection.execute(update(branches).where(branches.c.branch_id == str(branch_id))
                                       .values(bevoegd_gezag=board)).rowcount:
            self.connection.execute(insert(branches).values(branch_id=str(branch_id), bevoegd_gezag=board))


def boards_of(connection: Connection, branch_ids: set[UUID]) -> dict[UUID, str | None]:
    """The boards of these branches (a branch not founded through the registry is absent)."""
    rows = connection.execute(select(branches).where(branches.c.branch_id.in_([str(b) for b in branch_ids])))
    return {UUID(row.branch_id): row.bevoegd_gezag for row in rows}


def same_board(connection: Connection, branch_id: UUID) -> dict[UUID, str | None]:
    """The branch and every branch of its board, with their boards."""
    own = boards_of(connection, {branch_id})
    if own.get(branch_id) is None:
        return own
    rows = connection.execute(select(branches).where(branches.c.bevoegd_gezag == own[branch_id]))
    return {UUID(row.branch_id): row.bevoegd_gezag for row in rows}


def load_state(connection: Connection) -> RetentionState:
    """Every pupil and consent in the tables (the live side of "replay equals live")."""
    found = {UUID(row.pupil_id): _pupil(row) for row in connection.execute(select(pupils))}
    given = {(UUID(r.pupil_id), ConsentPurpose(r.purpose), ConsentGiver(r.giver)):
             Consent(UUID(r.pupil_id), ConsentPurpose(r.purpose), ConsentGiver(r.giver), r.given, r.at)
             for r in connection.execute(select(consents))}
    boards = {UUID(row.branch_id): row.bevoegd_gezag for row in connection.execute(select(branches))}
    return RetentionState(MappingProxyType(found), MappingProxyType(given), MappingProxyType(boards))
