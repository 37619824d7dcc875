"""The retention service: follows pupils through registry events, schedules their purge, destroys
their key when due (crypto-shredding), and keeps consent."""

from __future__ import annotations

import logging
import uuid
from datetime import date
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Connection, Engine

from services.retention import store
from services.retention.domain import DEFAULT_PERIODS, ConsentAnswer, category_for, consent, purge_due
from shared.clock import Clock
from shared.contracts.envelope import EventCodec, RecordedEvent, derived_id
from shared.contracts.events import (
    ConsentGiven,
    ConsentGiver,
    ConsentPurpose,
    ConsentWithdrawn,
    DossierOpened,
    Event,
    LegalHoldPlaced,
    LegalHoldReleased,
    PupilDataPurged,
    PupilEnrolled,
    PupilLeft,
    PurgeScheduled,
    pupil_key_id,
)
from shared.crypto import KeyStore
from shared.outbox import Outbox

log = logging.getLogger(__name__)
AMSTERDAM = ZoneInfo("Europe/Amsterdam")


def forget_pupil(connection: Connection, pupil_id: str) -> None:
    """Drop what the retention service holds about a purged pupil besides the purge report: the
    consents, the sealed inspection exports (unreadable already), the free texts of the requests,
    and the leak mails to the parents (their addresses; a mail still unsent then is not sent: the
    erasure wins). The request register and the breach register keep ids and dates only."""
    store.drop_consents(connection, pupil_id)
    store.clear_request_free_texts(connection, pupil_id)
    store.drop_leak_mails(connection, pupil_id)


class NotPossible(Exception):
    """The request is understood but cannot be done in this state; the message says why."""


class RetentionService:
    def __init__(self, codec: EventCodec, keys: KeyStore, clock: Clock,
                 periods: dict[str, int] | None = None) -> None:
        self._codec = codec
        self._outbox = Outbox(store.outbox, codec)
        self.keys = keys
        self.clock = clock
        self._periods = dict(periods or DEFAULT_PERIODS)

    def today(self) -> date:
        return self.clock.now().astimezone(AMSTERDAM).date()

    # --- registry events -------------------------------------------------------------------

    def apply(self, recorded: RecordedEvent, connection: Connection) -> None:
        event = recorded.event
        if isinstance(event, PupilEnrolled):
            birth = event.date_of_birth if isinstance(event.date_of_birth, date) else None
            if not store.update_enrolment(connection, event.pupil_id, event.branch_id, birth):
                store.add_pupil(connection, event.pupil_id, event.branch_id, birth)
        elif isinstance(event, DossierOpened):
            store.note_swv_dossier(connection, event.pupil_id)
            self._schedule(connection, event.pupil_id, recorded)  # a longer period may now apply
        elif isinstance(event, PupilLeft):
            store.record_leaving(connection, event.pupil_id, event.left_on)
            self._schedule(connection, event.pupil_id, recorded)

    def _schedule(self, connection: Connection, pupil_id: UUID, cause: RecordedEvent) -> None:
        row = store.load_pupil(connection, pupil_id)
        if row is None or row.left_on is None:
            return
        category = category_for(row.has_swv_dossier)
        due = purge_due(row.left_on, category, self._periods)
        if (row.category, row.due_on) == (category, due):
            return
        store.schedule_purge(connection, pupil_id, category, due)
        self.emit(connection, PurgeScheduled(pupil_id=pupil_id, category=category, due_on=due),
                   derived_id("retention", cause.id, "scheduled"), cause)

    # --- the purge: crypto-shredding -------------------------------------------------------

    def purge_due(self, engine: Engine) -> int:
        """Destroy the keys of every pupil whose time has come (and catch up on missed days)."""
        today = self.today()
        with engine.connect() as connection:
            due = store.pupils_due_for_purge(connection, today)
        for row in due:
            key_id = pupil_key_id(UUID(row.pupil_id))
            # The key goes first: if we stop after this, the next round finds it gone and finishes.
            self.keys.destroy(key_id)
            with engine.begin() as connection:
                store.record_purge(connection, row.pupil_id, key_id, row.category, row.due_on, self.clock.now())
                forget_pupil(connection, row.pupil_id)
                store.drop_pupil(connection, row.pupil_id)
                self.emit(connection, PupilDataPurged(pupil_id=UUID(row.pupil_id), key_id=key_id),
                           derived_id("retention", row.pupil_id, "purged"), None)
            log.info("pupil data purged", extra={"count": 1})
        return len(due)

    def purge_report(self, connection: Connection) -> list[dict[str, Any]]:
        return [{"pupil_id": r.pupil_id, "category": r.category, "due_on": r.due_on, "purged_at": r.purged_at,
                 "removed": "the pupil's key (every sealed field in every topic), and every service's rows "
                            "about the pupil"} for r in store.purge_report(connection)]

    # --- legal hold and consent (the API) ----------------------------------------------------

    def set_hold(self, connection: Connection, pupil_id: UUID, reason: str | None) -> bool:
        held = reason is not None
        if not store.set_legal_hold(connection, pupil_id, held, reason):
            return False
        event: Event = LegalHoldPlaced(pupil_id=pupil_id, reason=reason) if reason else LegalHoldReleased(
            pupil_id=pupil_id)
        self.emit(connection, event, str(uuid.uuid4()), None)
        return True

    def record_consent(self, connection: Connection, pupil_id: UUID, purpose: ConsentPurpose, giver: ConsentGiver,
                       given: bool) -> bool:
        if not store.pupil_exists(connection, pupil_id):
            return False
        now = self.clock.now()
        if not store.update_consent(connection, pupil_id, purpose, giver, given, now):
            store.add_consent(connection, pupil_id, purpose, giver, given, now)
        event: Event = (ConsentGiven(pupil_id=pupil_id, purpose=purpose, given_by=giver) if given
                        else ConsentWithdrawn(pupil_id=pupil_id, purpose=purpose, withdrawn_by=giver))
        self.emit(connection, event, str(uuid.uuid4()), None)
        return True

    def consent_answer(self, connection: Connection, pupil_id: UUID, purpose: ConsentPurpose) -> ConsentAnswer | None:
        row = store.load_pupil(connection, pupil_id)
        if row is None:
            return None
        given = {ConsentGiver(r.giver): r.given for r in store.consents_for(connection, pupil_id, purpose)}
        return consent(purpose, row.date_of_birth, given, self.today())

    def emit(self, connection: Connection, event: Event, event_id: str, cause: RecordedEvent | None) -> None:
        self._outbox.emit(connection, event, event_id=event_id, now=self.clock.now(), cause=cause, unless_queued=True)


