"""The retention service: follows pupils through registry events, schedules their purge, destroys
their key when due (crypto-shredding), and keeps consent."""

from __future__ import annotations

import logging
import time
import uuid
from datetime import date, timedelta
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Connection, Engine

from services.retention import store
from services.retention.domain import HANDLERS, ConsentAnswer, consent, handle, retention_periods
from shared.clock import Clock
from shared.contracts.envelope import EventCodec, RecordedEvent, derived_id
from shared.contracts.events import (
    ActedBy,
    ConsentGiven,
    ConsentGiver,
    ConsentPurpose,
    ConsentWithdrawn,
    DataCategory,
    Event,
    LegalHoldPlaced,
    LegalHoldReleased,
    PupilCategoryErased,
    PupilDataPurged,
    category_key_id,
    pupil_key_id,
    subject_key_ids,
)
from shared.crypto import KeyStore
from shared.db import scrub_database
from shared.outbox import Outbox

log = logging.getLogger(__name__)
AMSTERDAM = ZoneInfo("Europe/Amsterdam")


def forget_pupil(connection: Connection, pupil_id: str) -> None:
    """Drop what the retention service holds about a purged pupil beyond its state (the pupil
    and the consents go with the fold of PupilDataPurged) and the purge report: the sealed
    inspection exports (unreadable already), the free texts of the requests, and the leak mails
    to the parents (their addresses; a mail still unsent then is not sent: the erasure wins).
    The request register and the breach register keep ids and dates only."""
    store.clear_request_free_texts(connection, pupil_id)
    store.drop_leak_mails(connection, pupil_id)


class NotPossible(Exception):
    """The request is understood but cannot be done in this state; the message says why."""


class RetentionService:
    def __init__(self, codec: EventCodec, keys: KeyStore, clock: Clock,
                 periods: dict[str, int] | None = None,
                 intake_copies_gone_within_s: float = 7 * 24 * 3600 + 3600) -> None:
        self._codec = codec
        self._outbox = Outbox(store.outbox, codec)
        self.keys = keys
        self.clock = clock
        self._periods = retention_periods(periods or {})
        # How long after the purge a raw intake message or dead letter about the pupil may remain.
        self._intake_window = timedelta(seconds=intake_copies_gone_within_s)

    def today(self) -> date:
        return self.clock.now().astimezone(AMSTERDAM).date()

    # --- registry events -------------------------------------------------------------------

    def apply(self, recorded: RecordedEvent, connection: Connection) -> None:
        """A registry event, folded through the domain's table; a purge it (re)schedules is emitted."""
        for event in handle(store.Tables(connection), recorded, self._periods):
            self.emit(connection, event, derived_id("retention", recorded.id, "scheduled"), recorded)

    # --- the purge: crypto-shredding -------------------------------------------------------

    def purge_due(self, engine: Engine) -> int:
        """Destroy the keys of every pupil whose time has come (and catch up on missed days)."""
        today = self.today()
        with engine.connect() as connection:
            due = store.pupils_due_for_purge(connection, today)
        for row in due:
            key_id = pupil_key_id(UUID(row.pupil_id))
            # The keys go first (every category's): if we stop after this, the next round finds
            # them gone and finishes.
            for category_key in subject_key_ids(key_id):
                self.keys.destroy(category_key)
            with engine.begin() as connection:
                store.record_purge(connection, row.pupil_id, key_id, row.category, row.due_on, self.clock.now(),
                                   row.branch_id)
                forget_pupil(connection, row.pupil_id)
                self.emit(connection, PupilDataPurged(pupil_id=UUID(row.pupil_id), key_id=key_id),
                           derived_id("retention", row.pupil_id, "purged"), None)
            log.info("pupil data purged", extra={"count": 1})
        if due:
            # The old row versions of the keys just destroyed (PostgreSQL) become unreadable now,
            # not at some later period's end; the rows dropped above leave the SQLite files too.
            started = time.monotonic()
            epoch = self.keys.rotate()
            scrub_database(engine, *store.PURGED_TABLES)
            log.info("key store rotated and databases scrubbed after the purge",
                     extra={"epoch": epoch, "duration_ms": round((time.monotonic() - started) * 1000, 1)})
        return len(due)

    def purge_report(self, connection: Connection, branch_ids: frozenset[UUID] | None = None) -> list[dict[str, Any]]:
        return [{"pupil_id": r.pupil_id, "category": r.category, "due_on": r.due_on, "purged_at": r.purged_at,
                 "removed": "the pupil's key (every sealed field in every topic), and every service's rows "
                            "about the pupil",
                 "last_copy_gone_by": r.purged_at + self._intake_window,
                 "remains_until_then": "raw mutations of the Kafka door (registry.mutations.v1) and their dead "
                                       "letters, deleted by the topics' retention"}
                for r in store.purge_report(connection, branch_ids)]

    # --- legal hold and consent (the API) ----------------------------------------------------

    def set_hold(self, connection: Connection, pupil_id: UUID, reason: str | None,
                 acted_by: ActedBy | None = None) -> bool:
        if not store.pupil_exists(connection, pupil_id):
            return False
        event: Event = LegalHoldPlaced(pupil_id=pupil_id, reason=reason, acted_by=acted_by) if reason \
            else LegalHoldReleased(pupil_id=pupil_id, acted_by=acted_by)
        self.emit(connection, event, str(uuid.uuid4()), None)
        return True

    def record_consent(self, connection: Connection, pupil_id: UUID, purpose: ConsentPurpose, giver: ConsentGiver,
                       given: bool, acted_by: ActedBy | None = None) -> bool:
        if not store.pupil_exists(connection, pupil_id):
            return False
        event: Event = (ConsentGiven(pupil_id=pupil_id, purpose=purpose, given_by=giver, acted_by=acted_by) if given
                        else ConsentWithdrawn(pupil_id=pupil_id, purpose=purpose, withdrawn_by=giver,
                                              acted_by=acted_by))
        self.emit(connection, event, str(uuid.uuid4()), None)
        return True

    def erase_category(self, connection: Connection, pupil_id: UUID, category: DataCategory,
                       acted_by: ActedBy | None = None) -> bool:
        """Erase one category of a pupil's data on its own (medical details no longer needed, a
        hulpvraag's text on request) by destroying its key. False for an unknown pupil."""
        pupil = store.load_pupil(connection, pupil_id)
        if pupil is None:
            return False
        if category is DataCategory.IDENTITY:
            raise NotPossible("identity and contact details go with the whole pupil: a deletion request")
        if pupil.legal_hold:
            raise NotPossible("a legal hold keeps the pupil's data until it is released")
        key_id = category_key_id(pupil_key_id(pupil_id), category)
        self.keys.destroy(key_id)  # first: irreversible, and the event says it happened
        self.keys.rotate()  # as after a purge: no old row version of the key stays readable (PostgreSQL)
        self.emit(connection, PupilCategoryErased(pupil_id=pupil_id, category=category, key_id=key_id,
                                                  acted_by=acted_by),
                  derived_id("retention", str(pupil_id), "erased", category.value), None)
        log.info("pupil data category erased", extra={"reason": category.value})
        return True

    def consent_answer(self, connection: Connection, pupil_id: UUID, purpose: ConsentPurpose) -> ConsentAnswer | None:
        row = store.load_pupil(connection, pupil_id)
        if row is None:
            return None
        given = {ConsentGiver(r.giver): r.given for r in store.consents_for(connection, pupil_id, purpose)}
        return consent(purpose, row.date_of_birth, given, self.today())

    def emit(self, connection: Connection, event: Event, event_id: str, cause: RecordedEvent | None) -> None:
        """Queue our own event and fold it into the tables at once, through the same table a
        replay folds it with (the processor does not read our own topic back)."""
        encoded = self._outbox.emit(connection, event, event_id=event_id, now=self.clock.now(), cause=cause,
                                    unless_queued=True)
        if encoded is not None and type(event) in HANDLERS:
            handle(store.Tables(connection), self._codec.decode(encoded.value), self._periods)


