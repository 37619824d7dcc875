"""Who did what, on whose behalf: every administrative and privacy action on the log (grants,
revocations, consent, holds, data-subject requests and their answers, leaks and their mailing
approvals, factor resets, re-invitations, registry credentials, OIDC clients and admins), with
its actor, client and on-behalf-of person as NEN 7513 records them, and the pupils it concerns.
Pure: entries in, rows out.

A grant names a dossier; its pupil is the one the dossier was opened for. A leak's later steps
(report, assessment) concern the pupils the leak named. Events from before actors were recorded
carry no `acted_by`: they are listed with the actor unknown, never left out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from shared.contracts.events import (
    AccessGranted,
    AccessRevoked,
    AccountReinvited,
    ActedBy,
    AdminAppointed,
    AdminRemoved,
    ConfidentialityAgreementRecorded,
    ConfidentialityAgreementRevoked,
    CredentialEvent,
    DataLeaked,
    DossierOpened,
    Event,
    FactorResetApproved,
    FactorResetRequested,
    LeakEvent,
    OidcClientEvent,
    ParentsNotified,
    RetentionEvent,
)
from shared.kafka.log import Entry

UNKNOWN = "onbekend"


@dataclass(frozen=True)
class Action:
    recorded_at: datetime
    type: str
    actor: str
    client: str
    on_behalf_of: str | None
    pupil_ids: tuple[UUID, ...]
    about: str  # what it was done to, by id (a dossier, a request, a leak, an account)
    event_id: str


def _acted_by(event: Event) -> ActedBy | None:
    """Who did it: `acted_by` where recorded; the auth service's admin actions name their admin."""
    acted_by = getattr(event, "acted_by", None)
    if isinstance(acted_by, ActedBy):
        return acted_by
    if isinstance(event, CredentialEvent):  # the operator's command: no OAuth client, an OS user
        return ActedBy(actor=event.acted_by, client="samenveilig-credentials")
    if isinstance(event, FactorResetRequested):
        return ActedBy(actor=str(event.requested_by), client="samenveilig-auth")
    if isinstance(event, FactorResetApproved):
        return ActedBy(actor=str(event.approved_by), client="samenveilig-auth")
    if isinstance(event, AccountReinvited):
        return ActedBy(actor=str(event.invited_by), client="samenveilig-auth")
    return None


def _is_action(event: Event) -> bool:
    """An action by someone, not a fact a rule produced (a standing rule's grant, a scheduled
    purge, a mail sent): explicit grants and revocations, every retention event that can carry
    an actor, the auth service's admin actions, and confidentiality agreements recorded or revoked."""
    if isinstance(event, AccessGranted):
        return event.acted_by is not None or (event.dossier_id is not None and event.rule == "explicit-grant")
    if isinstance(event, AccessRevoked):  # not the revocations a departure or a role change causes
        return event.acted_by is not None or event.reason == "revoked by IB'er or director"
    if isinstance(event, FactorResetRequested | FactorResetApproved | AccountReinvited | CredentialEvent
                  | OidcClientEvent | AdminAppointed | AdminRemoved | ConfidentialityAgreementRecorded
                  | ConfidentialityAgreementRevoked):
        return True
    return isinstance(event, RetentionEvent | LeakEvent) and "acted_by" in type(event).model_fields \
        and not isinstance(event, ParentsNotified)


def actions(entries: Iterable[Entry], actor: str | None = None, pupil: UUID | None = None) -> list[Action]:
    """Every action in log order; only those of `actor` and/or concerning `pupil` when given."""
    pupil_of: dict[UUID, UUID] = {}
    leak_pupils: dict[UUID, tuple[UUID, ...]] = {}
    found: list[Action] = []
    for entry in entries:
        event = entry.event.event
        if isinstance(event, DossierOpened):
            pupil_of[event.dossier_id] = event.pupil_id
        if isinstance(event, DataLeaked):
            leak_pupils[event.leak_id] = tuple(event.pupil_ids) + tuple(
                pupil_of[d] for d in event.dossier_ids if d in pupil_of)
        if not _is_action(event):
            continue
        acted_by = _acted_by(event)
        pupils, about = _concerns(event, pupil_of, leak_pupils)
        row = Action(entry.event.recorded_at, entry.event.type, acted_by.actor if acted_by else UNKNOWN,
                     acted_by.client if acted_by else UNKNOWN, acted_by.on_behalf_of if acted_by else None,
                     pupils, about, entry.event.id)
        if actor is not None and actor not in (row.actor, row.on_behalf_of):
            continue
        if pupil is not None and pupil not in row.pupil_ids:
            continue
        found.append(row)
    return found


def _concerns(event: Event, pupil_of: dict[UUID, UUID], leak_pupils: dict[UUID, tuple[UUID, ...]]
              ) -> tuple[tuple[UUID, ...], str]:
    if isinstance(event, AccessGranted | AccessRevoked):
        dossier = event.dossier_id
        return ((pupil_of[dossier],) if dossier in pupil_of else ()), f"dossier/{dossier} staff/{event.staff_id}"
    if isinstance(event, RetentionEvent):
        request = getattr(event, "request_id", None)
        return (event.pupil_id,), f"request/{request}" if request else f"pupil/{event.pupil_id}"
    if isinstance(event, LeakEvent):
        return leak_pupils.get(event.leak_id, ()), f"leak/{event.leak_id}"
    if isinstance(event, CredentialEvent):
        return (), f"credential/{event.client_id}"
    if isinstance(event, OidcClientEvent):
        return (), f"client/{event.client_id}"
    return (), f"staff/{getattr(event, 'staff_id', '')}"
