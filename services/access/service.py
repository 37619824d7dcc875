"""The access service's use of its domain: load -> evolve -> save, inside the caller's transaction."""

from __future__ import annotations

from sqlalchemy.engine import Connection

from services.access import store
from services.access.domain import evolve
from shared.contracts.envelope import RecordedEvent
from shared.contracts.events import StaffDeparted, StaffJoined, StaffRoleChanged

STAFF_EVENTS = (StaffJoined, StaffRoleChanged, StaffDeparted)


def apply_registry_event(recorded: RecordedEvent, connection: Connection) -> None:
    """Handler for the consumer runner: one registry event into the access tables."""
    event = recorded.event
    if not isinstance(event, STAFF_EVENTS):
        return  # other registry facts are not needed by this slice yet
    member = evolve(store.load_member(connection, event.staff_id), recorded)
    if member is not None:
        store.save_member(connection, member)
    if isinstance(event, StaffDeparted):
        store.record_departure(connection, recorded)
