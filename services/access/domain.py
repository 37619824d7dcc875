"""The access service's domain: what it knows about staff members, folded from registry events.

Pure: no I/O, no clock, no logging. The live processor and the audit replay both use `evolve`.
(The full access policy, grants per role, arrives with the access issue; this is its first slice.)
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from uuid import UUID

from shared.contracts.envelope import RecordedEvent
from shared.contracts.events import StaffDeparted, StaffJoined, StaffRole, StaffRoleChanged


@dataclass(frozen=True)
class StaffMember:
    staff_id: UUID
    branch_id: UUID
    role: StaffRole | None
    joined_at: datetime | None
    # The moment the departure takes effect, and the moment we learned of it (audit needs both).
    departed_at: datetime | None = None
    departure_recorded_at: datetime | None = None

    def has_departed(self, at: datetime) -> bool:
        return self.departed_at is not None and self.departed_at <= at


def evolve(member: StaffMember | None, recorded: RecordedEvent) -> StaffMember | None:
    """One staff member's state after one more event about them."""
    event = recorded.event
    match event:
        case StaffJoined():
            # A re-hire starts a fresh membership: an earlier departure no longer applies.
            return StaffMember(staff_id=event.staff_id, branch_id=event.branch_id, role=event.role,
                               joined_at=recorded.effective_at)
        case StaffRoleChanged():
            base = member or StaffMember(event.staff_id, event.branch_id, None, None)
            return replace(base, role=event.role, branch_id=event.branch_id)
        case StaffDeparted():
            base = member or StaffMember(event.staff_id, event.branch_id, None, None)
            return replace(base, departed_at=recorded.effective_at,
                           departure_recorded_at=recorded.recorded_at)
        case _:
            return member
