"""The access service's use of its domain: load -> evolve -> save, reactions into the outbox,
notifications into the mail outbox; all inside the caller's transaction."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from uuid import UUID
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Connection

from services.access import store
from services.access.domain import (
    Action,
    ChangeKind,
    Decision,
    Dossier,
    Refused,
    StaffMember,
    decide_agreement,
    decide_agreement_revoke,
    decide_grant,
    decide_revoke,
    handle,
    may_change,
    may_see,
)
from services.access.mail import contact_missing, dossier_changed
from shared.clock import Clock
from shared.contracts.envelope import EventCodec, RecordedEvent, derived_id
from shared.contracts.events import (
    AccessGranted,
    AccessRevoked,
    ActedBy,
    ConfidentialityAgreementRecorded,
    ConfidentialityAgreementRevoked,
    ContactPersonMissing,
    DossierClosed,
    DossierContactAssigned,
    DossierOpened,
    DossierViewed,
    Event,
    PupilDataPurged,
    view_entry_hash,
)
from shared.db import scrub_after_commit
from shared.kafka.progress import Progress
from shared.outbox import Outbox, enqueue_mail

DOSSIER_EVENTS = (DossierOpened, DossierContactAssigned, DossierClosed)
# Our own events the API answers from at once (see _record).
APPLIED_AT_ONCE = (AccessGranted, AccessRevoked, ConfidentialityAgreementRecorded, ConfidentialityAgreementRevoked)
DUTCH = ZoneInfo("Europe/Amsterdam")


class AccessService:
    def __init__(self, codec: EventCodec, clock: Clock, kindkans_url: str, mail_domain: str,
                 progress: Progress | None = None) -> None:
        self._codec = codec
        self._outbox = Outbox(store.outbox, codec)
        # Where the processor records what it applied: our own grants are applied at once and
        # marked there, so they are not applied twice when they come back from the log.
        self._progress = progress
        self._clock = clock
        self._kindkans_url = kindkans_url
        self._mail_domain = mail_domain

    # --- the processor's handler ------------------------------------------------------------

    def apply(self, recorded: RecordedEvent, connection: Connection) -> None:
        """Fold the event into the tables through the domain's handler table, emit what follows
        from it, and send the mail it calls for."""
        event = recorded.event
        self._emit(connection, recorded, handle(store.Tables(connection), recorded))
        if isinstance(event, DossierContactAssigned):
            store.resolve_missing_contact(connection, event.dossier_id)
        if isinstance(event, DOSSIER_EVENTS):
            dossier = store.load_dossier(connection, event.dossier_id)
            if dossier is not None:
                self._notify(connection, recorded, dossier)
        elif isinstance(event, ContactPersonMissing):
            self._flag_missing_contact(recorded, event, connection)
        if isinstance(event, PupilDataPurged):
            scrub_after_commit(connection)  # the dropped rows leave the SQLite file and its WAL too

    def _flag_missing_contact(self, recorded: RecordedEvent, event: ContactPersonMissing,
                              connection: Connection) -> None:
        store.flag_missing_contact(connection, event.dossier_id, event.branch_id, event.previous_contact_staff_id,
                                   recorded.effective_at)
        notice = contact_missing(event.dossier_id, self._kindkans_url)
        for director in store.directors_of(connection, event.branch_id):
            self._queue_mail(connection, recorded, director.staff_id, event.dossier_id, notice.subject, notice.body)

    def _notify(self, connection: Connection, recorded: RecordedEvent, dossier: Dossier) -> None:
        """Everyone who may see the dossier now, and nobody else (checked again at send time)."""
        notice = dossier_changed(recorded.type, dossier.dossier_id, self._kindkans_url)
        for member in self.who_may_see(connection, dossier, self._clock.now()):
            self._queue_mail(connection, recorded, member[0].staff_id, dossier.dossier_id, notice.subject, notice.body)

    def _queue_mail(self, connection: Connection, recorded: RecordedEvent, staff_id: UUID, dossier_id: UUID,
                    subject: str, body: str) -> None:
        email, subscribed = store.email_of(connection, str(staff_id))
        if email is None or not subscribed:
            return
        enqueue_mail(connection, store.mail_outbox, message_id=f"<{recorded.id}.{staff_id}@{self._mail_domain}>",
                     recipient=email, subject=subject, body=body, created_at=self._clock.now(),
                     staff_id=str(staff_id), dossier_id=str(dossier_id))

    def _emit(self, connection: Connection, cause: RecordedEvent, events: list[Event]) -> None:
        now = self._clock.now()
        for index, event in enumerate(events):
            self._outbox.emit(connection, event, event_id=derived_id("access-event", cause.id, str(index)), now=now,
                              cause=cause)

    # --- commands from the API: decided by the domain, applied at once, queued for the log ------

    def record_view(self, connection: Connection, staff_id: UUID, dossier_id: UUID, now: datetime,
                    acted_by: ActedBy | None = None, what: ChangeKind | None = None) -> Decision | None:
        """Decide whether the view (or, with `what`, the change) is allowed and log it either way,
        linked into the dossier's hash chain. None: another entry for this dossier took the
        chain's head first (the caller tries again in a new transaction; this one wrote nothing)."""
        if what is None:
            decision, action = self.decide(connection, staff_id, dossier_id, now), Action.VIEW
        else:
            decision, action = self.decide_change(connection, staff_id, dossier_id, what, now), Action.CHANGE
        member = store.load_member(connection, staff_id)
        dossier = store.load_dossier(connection, dossier_id)
        event_id = str(uuid.uuid4())
        previous, length = store.chain_head(connection, dossier_id)
        entry_hash = view_entry_hash(previous, event_id, staff_id, dossier_id, decision.allowed, decision.rule, now,
                                     action.value, what.value if what else None)
        if not store.advance_chain(connection, dossier_id, previous, entry_hash, event_id, length):
            return None
        viewed = DossierViewed(staff_id=staff_id, branch_id=dossier.branch_id if dossier else
                               (member.branch_id if member else None), dossier_id=dossier_id,
                               allowed=decision.allowed, rule=decision.rule, viewed_at=now,
                               previous_hash=previous, entry_hash=entry_hash, acted_by=acted_by,
                               action=action.value, what=what.value if what else None)
        self._record(connection, viewed, event_id, now)
        return decision

    def grant(self, connection: Connection, granted_by: UUID, staff_id: UUID, dossier_id: UUID,
              until: datetime | None, now: datetime, acted_by: ActedBy | None = None) -> str | Refused:
        """An explicit grant, if the domain allows it: its event id, or why not."""
        outcome = decide_grant(store.load_member(connection, granted_by),
                               self.decide(connection, granted_by, dossier_id, now),
                               store.load_member(connection, staff_id), store.load_dossier(connection, dossier_id),
                               until, now, acted_by)
        if isinstance(outcome, Refused):
            return outcome
        event_id = derived_id("grant", str(staff_id), str(dossier_id), now.isoformat())
        self._record(connection, outcome, event_id, now)
        return event_id

    def revoke(self, connection: Connection, revoked_by: UUID, staff_id: UUID, dossier_id: UUID,
               now: datetime, acted_by: ActedBy | None = None) -> Refused | None:
        outcome = decide_revoke(store.load_member(connection, revoked_by),
                                self.decide(connection, revoked_by, dossier_id, now),
                                store.load_grant(connection, staff_id, dossier_id), now, acted_by)
        if isinstance(outcome, Refused):
            return outcome
        self._record(connection, outcome, derived_id("revoke", str(staff_id), str(dossier_id), now.isoformat()), now)
        return None

    def record_agreement(self, connection: Connection, recorded_by: UUID, staff_id: UUID, version: str,
                         signed_on: date, valid_until: date, now: datetime,
                         acted_by: ActedBy | None = None) -> str | Refused:
        """An extern's or stagiair's confidentiality agreement, if the domain allows it: its event
        id, or why not. It takes effect when it was signed (the valid-time axis of the audit);
        the record-time axis shows when we learned of it."""
        outcome = decide_agreement(store.load_member(connection, recorded_by), store.load_member(connection, staff_id),
                                   store.load_agreement(connection, staff_id), version, signed_on, valid_until,
                                   now.astimezone(DUTCH).date(), now, acted_by)
        if isinstance(outcome, Refused):
            return outcome
        signed = datetime.combine(signed_on, datetime.min.time(), DUTCH).astimezone(now.tzinfo)
        event_id = derived_id("agreement", str(staff_id), version, now.isoformat())
        self._record(connection, outcome, event_id, now, effective_at=min(signed, now))
        return event_id

    def revoke_agreement(self, connection: Connection, revoked_by: UUID, staff_id: UUID, reason: str,
                         now: datetime, acted_by: ActedBy | None = None) -> str | Refused:
        outcome = decide_agreement_revoke(store.load_member(connection, revoked_by),
                                          store.load_member(connection, staff_id),
                                          store.load_agreement(connection, staff_id), reason, now, acted_by)
        if isinstance(outcome, Refused):
            return outcome
        event_id = derived_id("agreement-revoked", str(staff_id), outcome.version, now.isoformat())
        self._record(connection, outcome, event_id, now)
        return event_id

    def _record(self, connection: Connection, event: Event, event_id: str, now: datetime,
                effective_at: datetime | None = None) -> None:
        """Queue our own event for the log; a grant, a revocation or an agreement is applied at
        once (the API answers from it) and marked as processed, so the processor does not apply it
        again when it comes back from the log: a grant re-applied after its revocation would
        revive it."""
        encoded = self._outbox.emit(connection, event, event_id=event_id, now=now, effective_at=effective_at)
        if encoded is not None and isinstance(event, APPLIED_AT_ONCE):
            self.apply(self._codec.decode(encoded.value), connection)
            if self._progress is not None:
                self._progress.mark_processed(connection, event_id, encoded.topic, -1, -1, now)

    # --- queries, used by the API and by the mail check at send time -------------------------

    def decide(self, connection: Connection, staff_id: UUID, dossier_id: UUID, now: datetime) -> Decision:
        dossier = store.load_dossier(connection, dossier_id)
        return may_see(store.load_member(connection, staff_id), dossier,
                       store.wijknetwerk_of(connection, dossier.branch_id) if dossier else None,
                       store.load_grant(connection, staff_id, dossier_id), now,
                       store.load_agreement(connection, staff_id))

    def decide_change(self, connection: Connection, staff_id: UUID, dossier_id: UUID, what: ChangeKind,
                      now: datetime) -> Decision:
        dossier = store.load_dossier(connection, dossier_id)
        return may_change(store.load_member(connection, staff_id), dossier,
                          store.wijknetwerk_of(connection, dossier.branch_id) if dossier else None,
                          store.load_grant(connection, staff_id, dossier_id), what, now,
                          store.load_agreement(connection, staff_id))

    def who_may_see(self, connection: Connection, dossier: Dossier,
                    now: datetime) -> list[tuple[StaffMember, Decision]]:
        wijknetwerk = store.wijknetwerk_of(connection, dossier.branch_id)
        candidates = store.candidate_staff(connection, dossier, wijknetwerk)
        grants = store.load_grants_for(connection, [c.staff_id for c in candidates], dossier.dossier_id)
        signed = store.load_agreements_for(connection, [c.staff_id for c in candidates])
        decided = [(member, may_see(member, dossier, wijknetwerk, grants.get(member.staff_id), now,
                                    signed.get(member.staff_id)))
                   for member in candidates]
        return [(member, decision) for member, decision in decided if decision.allowed]

    def send_check(self, connection: Connection, staff_id: str, dossier_id: str) -> str | None:
        """At the moment of sending: None if the mail may go, else why not."""
        decision = self.decide(connection, UUID(staff_id), UUID(dossier_id), self._clock.now())
        if not decision.allowed:
            return decision.rule
        _, subscribed = store.email_of(connection, staff_id)
        return None if subscribed else "unsubscribed"
