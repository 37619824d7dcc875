"""The registry's use of its domain: authorise -> dedup -> load -> decide -> evolve -> outbox.

Called by both doors (HTTP and Kafka) inside the caller's transaction, so both give the same
outcome for the same mutation, and by the relay when a scheduled change falls due.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from functools import reduce
from uuid import UUID

from sqlalchemy.engine import Connection

from services.registry import store
from services.registry.credentials import Credential, follow_branch
from services.registry.domain import Accepted, References, ReportMutation, decide, evolve, react, references
from services.registry.mail import branch_change_mail
from shared.clock import Clock
from shared.contracts.envelope import EventCodec, derived_id
from shared.contracts.events import (
    BranchBrinChanged,
    BranchEvent,
    ConsultantEvent,
    DossierEvent,
    Event,
    PupilEvent,
    StaffDeparted,
    StaffEvent,
    StaffJoined,
)
from shared.contracts.mutations import (
    BranchChange,
    BranchReport,
    ConsultantDepartedReport,
    ConsultantJoinedReport,
    Mutation,
)
from shared.outbox import Outbox, enqueue_mail


class MutationProblem(Exception):
    """A mutation that is refused; `code` is stable, `detail` names no personal data."""

    status = 422

    def __init__(self, index: int, mutation_id: str, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.index = index
        self.mutation_id = mutation_id
        self.code = code
        self.detail = detail


class NotAllowed(MutationProblem):
    status = 403


class MutationConflict(MutationProblem):
    status = 409


@dataclass(frozen=True)
class MutationOutcome:
    mutation_id: str
    status: str  # "accepted" (in effect now) or "scheduled" (emitted at effective_at)
    event_ids: list[str]
    effective_at: datetime
    # True when this mutation id was seen before: the same events, nothing new emitted.
    replayed: bool = False
    # The ids of what the mutation touched, by role: branch_id, staff_id, pupil_id, dossier_id,
    # contact_staff_id; so a school system need not derive them.
    entity_ids: dict[str, str] = field(default_factory=dict)


def fingerprint(mutation: Mutation) -> str:
    return hashlib.sha256(mutation.model_dump_json().encode()).hexdigest()


class RegistryService:
    def __init__(self, codec: EventCodec, clock: Clock, office_email: str, mail_domain: str) -> None:
        self._codec = codec
        self._outbox = Outbox(store.outbox, codec)
        self._clock = clock
        self._office_email = office_email
        self._mail_domain = mail_domain

    def report(self, connection: Connection, credential: Credential,
               mutations: list[Mutation]) -> list[MutationOutcome]:
        """All or nothing: the first refused mutation raises, and the caller rolls back."""
        now = self._clock.now()
        return [self._report_one(connection, credential, mutation, index, now)
                for index, mutation in enumerate(mutations)]

    def _report_one(self, connection: Connection, credential: Credential, mutation: Mutation, index: int,
                    now: datetime) -> MutationOutcome:
        code = getattr(mutation, "vestigingscode", None)
        branch_id = store.branch_id_for(connection, code) if code else None
        _authorise(credential, mutation, index, branch_id)
        sender = credential.client_id
        mutation_print = fingerprint(mutation)
        seen = store.find_mutation(connection, sender, mutation.mutation_id)
        if seen is not None:
            if seen.fingerprint != mutation_print:
                raise MutationConflict(index, mutation.mutation_id, "mutation-id-reused",
                                       "this mutation_id was used before for a different mutation")
            return MutationOutcome(mutation.mutation_id, seen.status, json.loads(seen.event_ids), seen.effective_at,
                                   replayed=True, entity_ids=store.entity_ids_of(seen))
        state = store.load_state(connection, references(mutation, branch_id, credential.office))
        effective_at = mutation.effective_at or now
        decision = decide(ReportMutation(mutation, sender, received_at=now, effective_at=effective_at,
                                         office=credential.office, wijknetwerken=credential.wijknetwerken), state)
        if not isinstance(decision, Accepted):
            refusal = NotAllowed if decision.not_allowed else MutationProblem
            raise refusal(index, mutation.mutation_id, decision.code, decision.detail)
        scheduled = effective_at > now
        events = list(decision.events)
        if not scheduled:
            # Later mutations in this batch, and every later request, see the change at once.
            store.save_state(connection, reduce(evolve, events, state), before=state)
            _record_joins(connection, events, effective_at)
            events += self._reactions(connection, events)
        event_ids = [derived_id("registry-event", sender, mutation.mutation_id, str(n)) for n in range(len(events))]
        correlation = derived_id("mutation", sender, mutation.mutation_id)
        for event_id, event in zip(event_ids, events, strict=True):
            self._outbox.emit(connection, event, event_id=event_id, now=now, effective_at=effective_at,
                              correlation_id=correlation, emit_at=effective_at if scheduled else now,
                              applied=not scheduled)
        for event in decision.events:
            if isinstance(event, BranchBrinChanged):
                # The school's credentials keep serving the branch under its new code. At once,
                # also for a change that takes effect later: they serve the branch already.
                follow_branch(connection, self._outbox, branch_id=event.branch_id,
                              previous_vestigingscode=event.previous_vestigingscode, reported_by=sender,
                              event_id_of=lambda client_id: derived_id("registry-credential", sender,
                                                                       mutation.mutation_id, client_id),
                              now=now, correlation_id=correlation)
        if isinstance(mutation, BranchReport):
            mail = branch_change_mail(mutation, reported_by=credential.name, effective_at=effective_at,
                                      reference=event_ids[0], domain=self._mail_domain)
            enqueue_mail(connection, store.mail_outbox, message_id=mail.message_id, recipient=self._office_email,
                         subject=mail.subject, body=mail.body, created_at=now)
        status = "scheduled" if scheduled else "accepted"
        touched = entity_ids(decision.events)
        store.record_mutation(connection, sender=sender, mutation_id=mutation.mutation_id, kind=mutation.kind,
                              fingerprint=mutation_print, status=status, event_ids=event_ids, received_at=now,
                              effective_at=effective_at, entity_ids=touched)
        return MutationOutcome(mutation.mutation_id, status, event_ids, effective_at, entity_ids=touched)

    def apply_due(self, connection: Connection, now: datetime, limit: int = 500) -> int:
        """Scheduled events whose moment has come change the state now; the relay then publishes them."""
        rows = store.due_scheduled_events(connection, now, limit)
        for row in rows:
            recorded = self._codec.decode(row.value)
            refs, branch_ids = _event_references(recorded.event)
            state = store.load_state(connection, refs, branch_ids)
            store.save_state(connection, evolve(state, recorded.event), before=state)
            _record_joins(connection, [recorded.event], recorded.effective_at)
            store.mark_applied(connection, row.seq)
            for n, reaction in enumerate(self._reactions(connection, [recorded.event])):
                self._outbox.emit(connection, reaction, event_id=derived_id("registry-reaction", recorded.id, str(n)),
                                  now=now, cause=recorded)
        return len(rows)

    def _reactions(self, connection: Connection, events: list[Event]) -> list[Event]:
        """Apply and return what follows from `events` (contact persons of departed staff)."""
        out: list[Event] = []
        for event in events:
            if isinstance(event, StaffDeparted):
                state = store.load_reaction_state(connection, event.staff_id, event.branch_id)
                reactions = list(react(state, event))
                store.save_state(connection, reduce(evolve, reactions, state), before=state)
                out += reactions
        return out


ENTITY_FIELDS = ("branch_id", "staff_id", "pupil_id", "dossier_id", "contact_staff_id")


def entity_ids(events: tuple[Event, ...]) -> dict[str, str]:
    """The ids a mutation's own events name (not what follows from them), by field."""
    found: dict[str, str] = {}
    for event in events:
        for name in ENTITY_FIELDS:
            value = getattr(event, name, None)
            if value is not None:
                found.setdefault(name, str(value))
    return found


def _record_joins(connection: Connection, events: list[Event], effective_at: datetime) -> None:
    for event in events:
        if isinstance(event, StaffJoined):
            store.record_joined(connection, event.staff_id, effective_at)


def _authorise(credential: Credential, mutation: Mutation, index: int, branch_id: UUID | None) -> None:
    """The credential's scope; `branch_id`: the branch the mutation's vestigingscode names now.
    Which consultant an office may depart needs the registry's state: the domain decides that."""
    if isinstance(mutation, ConsultantJoinedReport | ConsultantDepartedReport):
        if not credential.is_swv_office:
            raise NotAllowed(index, mutation.mutation_id, "not-swv-office",
                             "SWV consultants are registered by the SWV office only")
        if isinstance(mutation, ConsultantJoinedReport) and not set(mutation.wijknetwerken) <= credential.wijknetwerken:
            raise NotAllowed(index, mutation.mutation_id, "wrong-wijknetwerk",
                             "this credential does not serve every wijknetwerk named")
        return
    # A new branch is founded under a BRIN the credential serves; anything else concerns the
    # branch the code names (a BRIN change: the code before it), which it serves by BRIN or follows.
    founding = isinstance(mutation, BranchReport) and mutation.change is BranchChange.FOUNDED
    if not credential.covers(mutation.vestigingscode, None if founding else branch_id):
        raise NotAllowed(index, mutation.mutation_id, "wrong-school",
                         "this credential does not serve the BRIN of this mutation")


def _event_references(event: Event) -> tuple[References, list[UUID]]:
    people = (event.staff_id,) if isinstance(event, StaffEvent | ConsultantEvent) else ()
    pupils = (event.pupil_id,) if isinstance(event, PupilEvent) else ()
    dossiers = (event.dossier_id,) if isinstance(event, DossierEvent) else ()
    codes = tuple(code for code in (getattr(event, "vestigingscode", None),
                                    getattr(event, "previous_vestigingscode", None)) if code)
    branch_ids: list[UUID] = [event.branch_id] if isinstance(event, BranchEvent) else []
    return References(vestigingscodes=codes, people=people, pupils=pupils, dossiers=dossiers), branch_ids
