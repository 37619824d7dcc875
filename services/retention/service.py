"""The retention service: follows pupils through registry events, schedules their purge, destroys
their key when due (crypto-shredding), and keeps consent."""

from __future__ import annotations

import logging
import uuid
from datetime import date
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from sqlalchemy import delete, insert, select, update
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
    connection.execute(delete(store.consents).where(store.consents.c.pupil_id == pupil_id))
    connection.execute(update(store.requests).where(store.requests.c.pupil_id == pupil_id).values(
        export_sealed=None, refusal_reason=None, extension_reason=None))
    # Leak mails name the pupil in their Message-ID (see leaks.message_id).
    connection.execute(delete(store.mail_outbox).where(store.mail_outbox.c.message_id.contains(f".{pupil_id}.")))


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
            values = {"branch_id": str(event.branch_id), "date_of_birth": birth, "enrolled": True, "left_on": None,
                      "due_on": None, "category": None}
            if not connection.execute(update(store.pupils).where(store.pupils.c.pupil_id == str(event.pupil_id))
                                      .values(**values)).rowcount:
                connection.execute(insert(store.pupils).values(pupil_id=str(event.pupil_id), has_swv_dossier=False,
                                                               legal_hold=False, **values))
        elif isinstance(event, DossierOpened):
            connection.execute(update(store.pupils).where(store.pupils.c.pupil_id == str(event.pupil_id))
                               .values(has_swv_dossier=True))
            self._schedule(connection, event.pupil_id, recorded)  # a longer period may now apply
        elif isinstance(event, PupilLeft):
            connection.execute(update(store.pupils).where(store.pupils.c.pupil_id == str(event.pupil_id))
                               .values(enrolled=False, left_on=event.left_on))
            self._schedule(connection, event.pupil_id, recorded)

    def _schedule(self, connection: Connection, pupil_id: UUID, cause: RecordedEvent) -> None:
        row = connection.execute(select(store.pupils).where(store.pupils.c.pupil_id == str(pupil_id))).first()
        if row is None or row.left_on is None:
            return
        category = category_for(row.has_swv_dossier)
        due = purge_due(row.left_on, category, self._periods)
        if (row.category, row.due_on) == (category, due):
            return
        connection.execute(update(store.pupils).where(store.pupils.c.pupil_id == str(pupil_id))
                           .values(category=category, due_on=due))
        self.emit(connection, PurgeScheduled(pupil_id=pupil_id, category=category, due_on=due),
                   derived_id("retention", cause.id, "scheduled"), cause)

    # --- the purge: crypto-shredding -------------------------------------------------------

    def purge_due(self, engine: Engine) -> int:
        """Destroy the keys of every pupil whose time has come (and catch up on missed days)."""
        today = self.today()
        with engine.connect() as connection:
            due = connection.execute(select(store.pupils).where(
                store.pupils.c.due_on <= today, store.pupils.c.legal_hold.is_(False),
                store.pupils.c.enrolled.is_(False))).all()
        for row in due:
            key_id = pupil_key_id(UUID(row.pupil_id))
            # The key goes first: if we stop after this, the next round finds it gone and finishes.
            self.keys.destroy(key_id)
            with engine.begin() as connection:
                connection.execute(insert(store.purges).values(
                    pupil_id=row.pupil_id, key_id=key_id, category=row.category, due_on=row.due_on,
                    purged_at=self.clock.now()))
                forget_pupil(connection, row.pupil_id)
                connection.execute(delete(store.pupils).where(store.pupils.c.pupil_id == row.pupil_id))
                self.emit(connection, PupilDataPurged(pupil_id=UUID(row.pupil_id), key_id=key_id),
                           derived_id("retention", row.pupil_id, "purged"), None)
            log.info("pupil data purged", extra={"count": 1})
        return len(due)

    def purge_report(self, connection: Connection) -> list[dict[str, Any]]:
        rows = connection.execute(select(store.purges).order_by(store.purges.c.purged_at))
        return [{"pupil_id": r.pupil_id, "category": r.category, "due_on": r.due_on, "purged_at": r.purged_at,
                 "removed": "the pupil's key (every sealed field in every topic), and every service's rows "
                            "about the pupil"} for r in rows]

    # --- legal hold and consent (the API) ----------------------------------------------------

    def set_hold(self, connection: Connection, pupil_id: UUID, reason: str | None) -> bool:
        held = reason is not None
        if not connection.execute(update(store.pupils).where(store.pupils.c.pupil_id == str(pupil_id))
                                  .values(legal_hold=held, hold_reason=reason)).rowcount:
            return False
        event: Event = LegalHoldPlaced(pupil_id=pupil_id, reason=reason) if reason else LegalHoldReleased(
            pupil_id=pupil_id)
        self.emit(connection, event, str(uuid.uuid4()), None)
        return True

    def record_consent(self, connection: Connection, pupil_id: UUID, purpose: ConsentPurpose, giver: ConsentGiver,
                       given: bool) -> bool:
        if connection.execute(select(store.pupils.c.pupil_id).where(
                store.pupils.c.pupil_id == str(pupil_id))).first() is None:
            return False
        now = self.clock.now()
        key = (store.consents.c.pupil_id == str(pupil_id), store.consents.c.purpose == purpose.value,
               store.consents.c.giver == giver.value)
        if not connection.execute(update(store.consents).where(*key).values(given=given, at=now)).rowcount:
            connection.execute(insert(store.consents).values(pupil_id=str(pupil_id), purpose=purpose.value,
                                                             giver=giver.value, given=given, at=now))
        event: Event = (ConsentGiven(pupil_id=pupil_id, purpose=purpose, given_by=giver) if given
                        else ConsentWithdrawn(pupil_id=pupil_id, purpose=purpose, withdrawn_by=giver))
        self.emit(connection, event, str(uuid.uuid4()), None)
        return True

    def consent_answer(self, connection: Connection, pupil_id: UUID, purpose: ConsentPurpose) -> ConsentAnswer | None:
        row = connection.execute(select(store.pupils).where(store.pupils.c.pupil_id == str(pupil_id))).first()
        if row is None:
            return None
        given = {ConsentGiver(r.giver): r.given for r in connection.execute(select(store.consents).where(
            store.consents.c.pupil_id == str(pupil_id), store.consents.c.purpose == purpose.value))}
        return consent(purpose, row.date_of_birth, given, self.today())

    def emit(self, connection: Connection, event: Event, event_id: str, cause: RecordedEvent | None) -> None:
        self._outbox.emit(connection, event, event_id=event_id, now=self.clock.now(), cause=cause, unless_queued=True)


