"""Data-subject requests: inspect (AVG art. 15), correct (art. 16) and delete (art. 17), by a
parent or by the pupil from 16, answered within one month (art. 12(3)).

Every request is registered with its deadline and shows on the school's list for the privacy
officer. An inspection export is built by the relay from the whole event log (everything every
service holds is rebuilt from it) and kept sealed under the pupil's key, so a later purge shreds
it too. A correction emits `PupilDetailsCorrected`; a deletion, where lawful, makes the pupil's
purge due today: the relay's next round erases it by the same crypto-shredding as a scheduled
purge.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy.engine import Connection, Engine, Row

from services.retention import store
from services.retention.domain import answer_due, may_ask, may_delete_early
from services.retention.history import build_index, inspection
from services.retention.leaks import HistoryReader
from services.retention.service import NotPossible, RetentionService
from shared.contracts.envelope import derived_id
from shared.contracts.events import (
    ActedBy,
    ConsentGiver,
    PupilDetailsCorrected,
    PurgeScheduled,
    SubjectRequestAnswered,
    SubjectRequestKind,
    SubjectRequestReceived,
    pupil_key_id,
)
from shared.crypto import KeyDestroyed, seal, unseal

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Correction:
    """The corrected values the privacy officer decided on; None: unchanged."""

    name: str | None = None
    date_of_birth: date | None = None
    parent_emails: list[str] | None = None

    def fields(self) -> list[str]:
        return [name for name in ("name", "date_of_birth", "parent_emails") if getattr(self, name) is not None]


def _export_aad(request_id: str) -> bytes:
    return f"inspection-export\x1f{request_id}".encode()


class RequestDesk:
    RETRY_AFTER = timedelta(seconds=10)

    def __init__(self, service: RetentionService, history: HistoryReader) -> None:
        self._service = service
        self._history = history
        # Requests whose pupil the log did not know yet: not before this moment again (each try
        # reads the whole log).
        self._not_before: dict[str, datetime] = {}

    def receive(self, connection: Connection, pupil_id: UUID, kind: SubjectRequestKind, requested_by: ConsentGiver,
                received_on: date | None, acted_by: ActedBy | None = None) -> dict[str, Any] | None:
        pupil = store.load_pupil(connection, pupil_id)
        if pupil is None:
            return None
        today = self._service.today()
        received = received_on or today
        if received > today:
            raise NotPossible("a request cannot be received in the future")
        refusal = may_ask(requested_by, pupil.date_of_birth, received)
        if refusal:
            raise NotPossible(refusal)
        request_id = uuid.uuid4()
        due = answer_due(received)
        store.add_request(connection, request_id, pupil_id, pupil.branch_id, kind, requested_by, received, due)
        self._service.emit(connection, SubjectRequestReceived(pupil_id=pupil_id, request_id=request_id, kind=kind,
                                                              requested_by=requested_by, due_on=due,
                                                              acted_by=acted_by),
                           derived_id("retention", str(request_id), "received"), None)
        return self.one(connection, request_id)

    def extend(self, connection: Connection, request_id: UUID, reason: str) -> dict[str, Any] | None:
        """Two more months for a complex request; the requester must be told why within the first."""
        row = self._row(connection, request_id)
        if row is None:
            return None
        if row.status == "answered" or row.extension_reason:
            raise NotPossible("the request is already answered" if row.status == "answered"
                              else "the deadline was already extended once")
        if self._service.today() > row.due_on:
            raise NotPossible("the first month has passed: the extension had to be announced within it")
        store.extend_request(connection, request_id, answer_due(row.received_on, extended=True), reason)
        return self.one(connection, request_id)

    # --- the relay's round: build inspection exports --------------------------------------------

    def prepare_exports(self, engine: Engine) -> int:
        now = self._service.clock.now()
        with engine.connect() as connection:
            pending = [row for row in store.inspections_awaiting_export(connection)
                       if self._not_before.get(row.request_id, now) <= now]
        if not pending or self._own_events_unpublished(engine):
            return 0
        entries = self._history()
        index = build_index(entries)
        built = 0
        for row in pending:
            pupil_id = UUID(row.pupil_id)
            facts = index.pupils.get(pupil_id)
            if facts is None or facts.erased:
                self._not_before[row.request_id] = now + self.RETRY_AFTER  # not (yet) in the log
                continue
            try:
                key = self._service.keys.key_for_writing(pupil_key_id(pupil_id))
            except KeyDestroyed:
                continue  # purged meanwhile: the purge closes this off
            with engine.begin() as connection:
                export = inspection(entries, index, pupil_id, now, self._held_here(connection, row.pupil_id))
                if export is None:
                    continue
                sealed = seal(key, json.dumps(export, ensure_ascii=False).encode(), _export_aad(row.request_id))
                store.attach_export(connection, row.request_id, sealed)
            self._not_before.pop(row.request_id, None)
            built += 1
            log.info("inspection export ready", extra={"request_id": row.request_id})
        return built

    def _own_events_unpublished(self, engine: Engine) -> bool:
        """The export is read from the log, so it waits until our own events (the request itself,
        a consent just given) are in it."""
        with engine.connect() as connection:
            return store.events_unpublished(connection, self._service.clock.now())

    def _held_here(self, connection: Connection, pupil_id: str) -> dict[str, Any]:
        pupil = store.load_pupil(connection, pupil_id)
        consents = store.consents_of(connection, pupil_id)
        requests = store.requests_of(connection, pupil_id)
        return {
            "consents": [{"purpose": c.purpose, "giver": c.giver, "given": c.given, "at": c.at.isoformat()}
                         for c in consents],
            "purge_category": pupil.category if pupil else None,
            "purge_due_on": pupil.due_on.isoformat() if pupil and pupil.due_on else None,
            "legal_hold": bool(pupil.legal_hold) if pupil else False,
            "requests": [{"request_id": r.request_id, "kind": r.kind, "received_on": r.received_on.isoformat(),
                          "due_on": r.due_on.isoformat(), "status": r.status} for r in requests],
        }

    def export(self, connection: Connection, request_id: UUID) -> dict[str, Any] | None:
        """The sealed export, opened; None when there is none (not ready, or shredded)."""
        row = self._row(connection, request_id)
        if row is None or row.export_sealed is None:
            return None
        key = self._service.keys.key_for_reading(pupil_key_id(UUID(row.pupil_id)))
        if key is None:
            return None
        exported: dict[str, Any] = json.loads(unseal(key, row.export_sealed, _export_aad(row.request_id)))
        return exported

    # --- answers -------------------------------------------------------------------------------

    def answer(self, connection: Connection, request_id: UUID, outcome: str, *, refusal_reason: str | None = None,
               correction: Correction | None = None, acted_by: ActedBy | None = None) -> dict[str, Any] | None:
        """Record the answer. `outcome` is "provided" (inspect), "corrected" (correct), "deleted"
        (delete) or "refused" (any, with the reason)."""
        row = self._row(connection, request_id)
        if row is None:
            return None
        if row.status == "answered":
            raise NotPossible(f"the request was already answered ({row.outcome})")
        expected = {"inspect": "provided", "correct": "corrected", "delete": "deleted"}[row.kind]
        if outcome not in (expected, "refused"):
            raise NotPossible(f"a {row.kind} request is answered with {expected!r} or 'refused'")
        pupil_id = UUID(row.pupil_id)
        given_reason: str | None = None
        corrected_fields: list[str] | None = None
        if outcome == "refused":
            if not refusal_reason:
                raise NotPossible("a refusal must give the reason (AVG art. 12(4))")
            given_reason = refusal_reason
        elif outcome == "provided" and row.export_sealed is None:
            raise NotPossible("the export is not ready yet")
        elif outcome == "corrected":
            if correction is None or not correction.fields():
                raise NotPossible("a correction names at least one corrected field")
            self._correct(connection, pupil_id, UUID(row.request_id), correction, acted_by)
            corrected_fields = correction.fields()
        elif outcome == "deleted":
            pupil = store.load_pupil(connection, row.pupil_id)
            reason = may_delete_early(enrolled=bool(pupil and pupil.enrolled),
                                      legal_hold=bool(pupil and pupil.legal_hold), purged=pupil is None)
            if reason:
                raise NotPossible(f"deleting is not lawful now: {reason}; answer 'refused' with that reason")
        store.record_answer(connection, row.request_id, outcome, self._service.clock.now(),
                            refusal_reason=given_reason, corrected_fields=corrected_fields)
        self._service.emit(connection, SubjectRequestAnswered(pupil_id=pupil_id, request_id=UUID(row.request_id),
                                                              outcome=outcome, acted_by=acted_by),
                           derived_id("retention", row.request_id, "answered"), None)
        if outcome == "deleted":
            # Due today: the relay's next round shreds the key and emits PupilDataPurged, by the same
            # steps (and the same crash safety) as every scheduled purge.
            self._service.emit(connection, PurgeScheduled(pupil_id=pupil_id, category="erasure-request",
                                                          due_on=self._service.today()),
                               derived_id("retention", row.request_id, "erasure-scheduled"), None)
            log.info("pupil data erasure granted", extra={"request_id": row.request_id})
        return self.one(connection, request_id)

    def _correct(self, connection: Connection, pupil_id: UUID, request_id: UUID, correction: Correction,
                 acted_by: ActedBy | None) -> None:
        event = PupilDetailsCorrected.model_validate({
            "pupil_id": pupil_id, "request_id": request_id, "name": correction.name,
            "date_of_birth": correction.date_of_birth, "parent_emails": correction.parent_emails,
            "acted_by": acted_by})
        self._service.emit(connection, event, derived_id("retention", str(request_id), "corrected"), None)

    # --- reading ---------------------------------------------------------------------------------

    def _row(self, connection: Connection, request_id: UUID) -> Row[Any] | None:
        return store.load_request(connection, request_id)

    def _public(self, row: Row[Any]) -> dict[str, Any]:
        today = self._service.today()
        return {"request_id": row.request_id, "pupil_id": row.pupil_id, "branch_id": row.branch_id,
                "kind": row.kind, "requested_by": row.requested_by, "received_on": row.received_on,
                "due_on": row.due_on, "extension_reason": row.extension_reason, "status": row.status,
                "overdue": row.status != "answered" and today > row.due_on,
                "days_left": (row.due_on - today).days if row.status != "answered" else None,
                "outcome": row.outcome, "refusal_reason": row.refusal_reason, "answered_at": row.answered_at,
                "corrected_fields": row.corrected_fields or [], "export_ready": row.export_sealed is not None}

    def one(self, connection: Connection, request_id: UUID) -> dict[str, Any] | None:
        row = self._row(connection, request_id)
        return self._public(row) if row else None

    def listed(self, connection: Connection, branch_ids: frozenset[UUID] | None,
               open_only: bool) -> list[dict[str, Any]]:
        """The privacy officer's list: the most urgent first (of these branches, when given)."""
        return [self._public(row) for row in store.requests_by_urgency(connection, branch_ids, open_only)]

    def overdue_count(self, connection: Connection) -> int:
        return store.overdue_request_count(connection, self._service.today())
