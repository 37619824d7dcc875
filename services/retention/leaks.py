"""Data leaks: the breach register (AVG art. 33(5)), telling the affected parents (art. 34), and
the 72-hour clock for the report to the Autoriteit Persoonsgegevens (art. 33(1)).

A leak is registered at once (`DataLeaked`); working out who is affected needs the whole event
history, so the relay does that in its next round: it reads the log, folds it (the access
service's own rules tell who could see each dossier at the discovery), queues one Dutch mail per
parent address and records `ParentsNotified` per pupil, in one transaction. That work runs beside
the relay's other rounds (see bootstrap), so a long read never holds up purges, alarms or mail.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy.engine import Connection, Engine, Row

from services.retention import store
from services.retention.domain import leak_clock, regulator_deadline, report_problem
from services.retention.history import LeakScope, LogIndex, build_index, leak_scope, parents_to_tell
from services.retention.letters import leak_notice
from services.retention.service import NotPossible, RetentionService
from shared.contracts.envelope import derived_id
from shared.contracts.events import (
    ActedBy,
    DataLeaked,
    LeakMailingApproved,
    LeakNotReportable,
    LeakReportOverdue,
    ParentsNotified,
    RegulatorNotified,
)
from shared.kafka.log import Entry
from shared.outbox import enqueue_mail

log = logging.getLogger(__name__)
HistoryReader = Callable[[], Sequence[Entry]]


class _AlreadyResolved(Exception):
    pass


@dataclass(frozen=True)
class LeakReport:
    nature: str
    discovered_at: datetime
    pupil_ids: list[UUID]
    dossier_ids: list[UUID]
    staff_ids: list[UUID]
    consequences: str | None = None
    measures: str | None = None
    board: str | None = None  # the registering FG's school board (policy.board_of)
    acted_by: ActedBy | None = None
    notice: str = "anders"  # which fixed text the parents' mail is built from (letters.LEAK_NOTICES)


def message_id(leak_id: str, pupil_ids: list[str], number: int) -> str:
    # Each pupil id sits between dots so the purge can find (and drop) the mails about a pupil.
    return f"<leak-{leak_id}.{'.'.join(pupil_ids)}.{number}@samenveilig>"


class LeakDesk:
    def __init__(self, service: RetentionService, history: HistoryReader, privacy_contact: str,
                 second_approval_above: int = 50) -> None:
        self._service = service
        self._history = history
        self._privacy_contact = privacy_contact
        self._second_approval_above = second_approval_above

    def register(self, connection: Connection, leak_id: UUID, report: LeakReport) -> None:
        now = self._service.clock.now()
        if report.discovered_at > now:
            raise NotPossible("a leak cannot be discovered in the future")
        store.add_leak(connection, leak_id, nature=report.nature, consequences=report.consequences,
                       measures=report.measures, discovered_at=report.discovered_at, registered_at=now,
                       deadline=regulator_deadline(report.discovered_at), pupil_ids=report.pupil_ids,
                       dossier_ids=report.dossier_ids, staff_ids=report.staff_ids, board=report.board,
                       registered_by=report.acted_by.actor if report.acted_by else None, notice=report.notice)
        self._service.emit(connection, self._event(leak_id, report), derived_id("retention", str(leak_id), "leaked"),
                           None)
        log.warning("data leak registered", extra={"leak_id": str(leak_id)})

    @staticmethod
    def _event(leak_id: UUID, report: LeakReport) -> DataLeaked:
        return DataLeaked(leak_id=leak_id, nature=report.nature, discovered_at=report.discovered_at,
                          pupil_ids=report.pupil_ids, dossier_ids=report.dossier_ids, staff_ids=report.staff_ids,
                          acted_by=report.acted_by, notice=report.notice)

    # --- the relay's rounds ----------------------------------------------------------------

    def resolve_pending(self, engine: Engine) -> int:
        """Work out who each new leak affects and queue the parents' mail."""
        with engine.connect() as connection:
            pending = store.unresolved_leaks(connection)
        if not pending:
            return 0
        entries = self._history()
        index = build_index(entries)
        for row in pending:
            leak = DataLeaked(leak_id=UUID(row.leak_id), nature=row.nature, discovered_at=row.discovered_at,
                              pupil_ids=[UUID(p) for p in row.reported_pupil_ids],
                              dossier_ids=[UUID(d) for d in row.reported_dossier_ids],
                              staff_ids=[UUID(s) for s in row.reported_staff_ids])
            scope = leak_scope(entries, index, leak)
            try:
                mailed, unreachable = self._notify(engine, row, index, scope)
            except _AlreadyResolved:
                continue
            log.warning("data leak resolved", extra={"leak_id": row.leak_id, "count": len(scope.pupil_ids),
                                                     "mails": mailed, "unreachable": unreachable})
        return len(pending)

    def _notify(self, engine: Engine, row: Row[Any], index: LogIndex, scope: LeakScope) -> tuple[int, int]:
        leak_id = UUID(row.leak_id)
        unreachable = 0
        # One mail per parent address, also when siblings are affected (the mail names no child).
        pupils_of: dict[str, list[str]] = {}
        notice = leak_notice(leak_id, row.discovered_at, row.notice or "anders", self._privacy_contact)
        with engine.begin() as connection:
            told: list[tuple[UUID, int]] = []
            for pupil_id in scope.pupil_ids:
                addresses = parents_to_tell(index, pupil_id)
                if not addresses:
                    unreachable += 1
                    continue
                for address in addresses:
                    pupils_of.setdefault(address, []).append(str(pupil_id))
                told.append((pupil_id, len(addresses)))
            if len(pupils_of) > self._second_approval_above and row.mailing_approved_at is None:
                # Too many parents for one FG alone: the scope is recorded, nothing is mailed
                # until a second FG of the board approves (approve_mailing).
                if not store.resolve_leak(connection, row.leak_id, scope, 0, unreachable, self._service.clock.now(),
                                          mailing_status="awaiting-approval", recipients=len(pupils_of)):
                    raise _AlreadyResolved()
                log.warning("leak mailing awaits a second FG", extra={"leak_id": row.leak_id,
                                                                      "count": len(pupils_of)})
                return 0, unreachable
            for pupil_id, recipients in told:
                self._service.emit(connection, ParentsNotified(leak_id=leak_id, pupil_id=pupil_id,
                                                               recipients=recipients),
                                   derived_id("retention", row.leak_id, "parents", str(pupil_id)), None)
            for number, address in enumerate(sorted(pupils_of)):
                enqueue_mail(connection, store.mail_outbox, message_id=message_id(row.leak_id, pupils_of[address],
                                                                                  number),
                             recipient=address, subject=notice.subject, body=notice.body,
                             created_at=self._service.clock.now())
            mailed = len(pupils_of)
            # Guarded: a second relay that got here first has done it; this transaction then
            # rolls back with its mails and events.
            if not store.resolve_leak(connection, row.leak_id, scope, mailed, unreachable, self._service.clock.now()):
                raise _AlreadyResolved()  # rolls back this transaction's mails and events
        return mailed, unreachable

    def raise_alarms(self, engine: Engine) -> int:
        """Once per leak: 72 hours passed and no report to the regulator recorded."""
        now = self._service.clock.now()
        with engine.begin() as connection:
            overdue = store.leaks_overdue_unalarmed(connection, now)
            for row in overdue:
                self._service.emit(connection, LeakReportOverdue(leak_id=UUID(row.leak_id), deadline=row.deadline),
                                   derived_id("retention", row.leak_id, "overdue"), None)
                store.record_overdue_alarm(connection, row.leak_id, now)
                log.error("leak not reported to the Autoriteit Persoonsgegevens within 72 hours",
                          extra={"leak_id": row.leak_id})
        return len(overdue)

    def approve_mailing(self, connection: Connection, leak_id: UUID, acted_by: ActedBy) -> bool:
        """A second FG approves a large mailing; the relay mails in its next round. False for an
        unknown leak."""
        row = store.load_leak(connection, leak_id)
        if row is None:
            return False
        if row.mailing_status != "awaiting-approval":
            raise NotPossible("this leak's mail is not waiting for an approval")
        if acted_by.actor == row.registered_by:
            raise NotPossible("a second FG must approve: not the one who registered the leak")
        if not store.approve_leak_mailing(connection, leak_id, acted_by.actor, self._service.clock.now()):
            raise NotPossible("this leak's mail is not waiting for an approval")
        self._service.emit(connection, LeakMailingApproved(leak_id=leak_id, recipients=row.mailing_recipients or 0,
                                                           acted_by=acted_by),
                           derived_id("retention", str(leak_id), "mailing-approved"), None)
        return True

    # --- the regulator report and the register -----------------------------------------------

    def record_report(self, connection: Connection, leak_id: UUID, reported_at: datetime, reference: str,
                      delay_reason: str | None, acted_by: ActedBy | None = None) -> bool:
        row = store.load_leak(connection, leak_id)
        if row is None:
            return False
        if row.not_reportable_reason is not None:
            raise NotPossible("the leak was assessed as not reportable; a report after all is recorded as a new "
                              "assessment is not supported: register the leak again")
        if row.reported_at is not None:
            raise NotPossible(f"already reported on {row.reported_at.isoformat()} (reference {row.report_reference})")
        problem = report_problem(row.discovered_at, reported_at, delay_reason, self._service.clock.now())
        if problem:
            raise NotPossible(problem)
        store.record_regulator_report(connection, leak_id, reported_at, reference, delay_reason)
        self._service.emit(connection, RegulatorNotified(leak_id=leak_id, reported_at=reported_at, reference=reference,
                                                         delay_reason=delay_reason, acted_by=acted_by),
                           derived_id("retention", str(leak_id), "reported"), None)
        return True

    def assess(self, connection: Connection, leak_id: UUID, consequences: str | None, measures: str | None,
               not_reportable_reason: str | None, acted_by: ActedBy | None = None) -> bool:
        """Complete the register as the investigation goes (art. 33(4): in phases), and record the
        assessment that no report is due because a risk is unlikely (art. 33(1))."""
        row = store.load_leak(connection, leak_id)
        if row is None:
            return False
        newly_not_reportable: str | None = None
        if not_reportable_reason is not None:
            if row.reported_at is not None:
                raise NotPossible("the leak was already reported to the Autoriteit Persoonsgegevens")
            if row.not_reportable_reason is None:
                newly_not_reportable = not_reportable_reason
                self._service.emit(connection, LeakNotReportable(leak_id=leak_id, reason=not_reportable_reason,
                                                                         acted_by=acted_by),
                                   derived_id("retention", str(leak_id), "not-reportable"), None)
        store.amend_leak(connection, leak_id, consequences=consequences, measures=measures,
                         not_reportable_reason=newly_not_reportable)
        return True

    def entry(self, row: Row[Any]) -> dict[str, Any]:
        clock = leak_clock(row.discovered_at, row.reported_at, self._service.clock.now(),
                           not_reportable=row.not_reportable_reason is not None)
        return {
            "leak_id": row.leak_id, "nature": row.nature, "consequences": row.consequences, "measures": row.measures,
            "discovered_at": row.discovered_at, "registered_at": row.registered_at,
            "reported": {"pupil_ids": row.reported_pupil_ids, "dossier_ids": row.reported_dossier_ids,
                         "staff_ids": row.reported_staff_ids},
            "resolved_at": row.resolved_at, "affected_pupil_ids": row.affected_pupil_ids,
            "affected_dossier_ids": row.affected_dossier_ids, "could_see": row.exposures,
            "unknown_ids": row.unknown_ids, "parents_mailed": row.parents_mailed, "notice": row.notice,
            "mailing": {"status": row.mailing_status, "recipients": row.mailing_recipients,
                        "approved_at": row.mailing_approved_at, "approved_by": row.mailing_approved_by},
            "pupils_unreachable": row.pupils_unreachable,
            "regulator": {"deadline": clock.deadline, "status": clock.status, "seconds_left": clock.seconds_left,
                          "reported_at": row.reported_at, "reference": row.report_reference,
                          "delay_reason": row.delay_reason, "not_reportable_reason": row.not_reportable_reason,
                          "overdue_alarm_at": row.overdue_alarm_at},
        }

    def register_entries(self, connection: Connection, board: str | None = None) -> list[dict[str, Any]]:
        return [self.entry(row) for row in store.breach_register(connection, board)]

    def one(self, connection: Connection, leak_id: UUID) -> dict[str, Any] | None:
        row = store.load_leak(connection, leak_id)
        return self.entry(row) if row else None

    def overdue_count(self, connection: Connection) -> int:
        return store.overdue_leak_count(connection, self._service.clock.now())

    def open_count(self, connection: Connection) -> int:
        return store.open_leak_count(connection)
