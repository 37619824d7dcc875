"""The access service's use of its domain: load -> evolve -> save, reactions into the outbox,
notifications into the mail outbox; all inside the caller's transaction."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from sqlalchemy.engine import Connection

from services.access import store
from services.access.domain import (
    Decision,
    Dossier,
    StaffMember,
    evolve_dossier,
    evolve_grant,
    evolve_member,
    may_see,
    reactions,
)
from services.access.mail import contact_missing, dossier_changed
from shared.clock import Clock
from shared.contracts.envelope import EventCodec, RecordedEvent, derived_id
from shared.contracts.events import (
    ERASED,
    AccessGranted,
    AccessRevoked,
    BranchFounded,
    BranchWijknetwerkChanged,
    ConsultantDeparted,
    ConsultantJoined,
    ContactPersonMissing,
    DossierClosed,
    DossierContactAssigned,
    DossierOpened,
    Event,
    PupilDataPurged,
    StaffDeparted,
    StaffJoined,
    StaffRoleChanged,
)
from shared.outbox import enqueue_event, enqueue_mail

STAFF_EVENTS = (StaffJoined, StaffRoleChanged, StaffDeparted, ConsultantJoined, ConsultantDeparted)
DOSSIER_EVENTS = (DossierOpened, DossierContactAssigned, DossierClosed)


class AccessService:
    def __init__(self, codec: EventCodec, clock: Clock, kindkans_url: str, mail_domain: str) -> None:
        self._codec = codec
        self._clock = clock
        self._kindkans_url = kindkans_url
        self._mail_domain = mail_domain

    # --- the processor's handler ------------------------------------------------------------

    def apply(self, recorded: RecordedEvent, connection: Connection) -> None:
        event = recorded.event
        if isinstance(event, STAFF_EVENTS):
            self._apply_staff(recorded, connection)
        elif isinstance(event, DOSSIER_EVENTS):
            self._apply_dossier(recorded, connection)
        elif isinstance(event, ContactPersonMissing):
            self._flag_missing_contact(recorded, event, connection)
        elif isinstance(event, BranchFounded | BranchWijknetwerkChanged):
            store.save_wijknetwerk(connection, event.branch_id, event.wijknetwerk)
        elif isinstance(event, PupilDataPurged):
            store.drop_pupil(connection, event.pupil_id)
        elif isinstance(event, AccessGranted | AccessRevoked) and event.dossier_id is not None:
            # Explicit grants: written by our own API, applied again here so the log rebuilds them.
            grant = evolve_grant(store.load_grant(connection, event.staff_id, event.dossier_id), recorded)
            if grant is not None:
                store.save_grant(connection, grant)

    def _apply_staff(self, recorded: RecordedEvent, connection: Connection) -> None:
        event = recorded.event
        staff_id: UUID = event.staff_id  # type: ignore[attr-defined]
        before = store.load_member(connection, staff_id)
        after = evolve_member(before, recorded)
        if after is None:
            return
        email = getattr(event, "email", None)
        store.save_member(connection, after, email=email if email and email != ERASED else None)
        if isinstance(event, StaffDeparted | ConsultantDeparted):
            store.record_departure(connection, recorded)
        self._emit(connection, recorded, reactions(recorded, before, after, store.grants_of(connection, staff_id)))

    def _apply_dossier(self, recorded: RecordedEvent, connection: Connection) -> None:
        event = recorded.event
        dossier_id: UUID = event.dossier_id  # type: ignore[attr-defined]
        dossier = evolve_dossier(store.load_dossier(connection, dossier_id), recorded)
        if dossier is None:
            return
        store.save_dossier(connection, dossier)
        if isinstance(event, DossierContactAssigned):
            store.resolve_missing_contact(connection, dossier_id)
        self._notify(connection, recorded, dossier)

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
            encoded = self._codec.encode(event, event_id=derived_id("access-event", cause.id, str(index)),
                                         recorded_at=now, effective_at=cause.effective_at,
                                         correlation_id=cause.correlation_id, causation_id=cause.id)
            enqueue_event(connection, store.outbox, encoded, emit_at=now)

    # --- queries, used by the API and by the mail check at send time -------------------------

    def decide(self, connection: Connection, staff_id: UUID, dossier_id: UUID, now: datetime) -> Decision:
        dossier = store.load_dossier(connection, dossier_id)
        return may_see(store.load_member(connection, staff_id), dossier,
                       store.wijknetwerk_of(connection, dossier.branch_id) if dossier else None,
                       store.load_grant(connection, staff_id, dossier_id), now)

    def who_may_see(self, connection: Connection, dossier: Dossier,
                    now: datetime) -> list[tuple[StaffMember, Decision]]:
        wijknetwerk = store.wijknetwerk_of(connection, dossier.branch_id)
        candidates = store.candidate_staff(connection, dossier, wijknetwerk)
        grants = store.load_grants_for(connection, [c.staff_id for c in candidates], dossier.dossier_id)
        decided = [(member, may_see(member, dossier, wijknetwerk, grants.get(member.staff_id), now))
                   for member in candidates]
        return [(member, decision) for member, decision in decided if decision.allowed]

    def send_check(self, connection: Connection, staff_id: str, dossier_id: str) -> str | None:
        """At the moment of sending: None if the mail may go, else why not."""
        decision = self.decide(connection, UUID(staff_id), UUID(dossier_id), self._clock.now())
        if not decision.allowed:
            return decision.rule
        _, subscribed = store.email_of(connection, staff_id)
        return None if subscribed else "unsubscribed"
