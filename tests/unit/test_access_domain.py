"""The access slice's fold over staff events (pure: no broker, no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import reduce

from services.access.domain import StaffMember, evolve
from shared.contracts.envelope import RecordedEvent
from shared.contracts.events import Event, StaffDeparted, StaffJoined, StaffRole, StaffRoleChanged
from tests.unit.samples import BRANCH, STAFF

JULY = datetime(2026, 7, 1, tzinfo=UTC)


def recorded(event: Event, effective_at: datetime, recorded_at: datetime | None = None) -> RecordedEvent:
    return RecordedEvent(id=f"e-{effective_at.isoformat()}-{event.event_type}", type=event.event_type,
                         source="/test", recorded_at=recorded_at or effective_at, effective_at=effective_at,
                         correlation_id="c", causation_id=None, key_id=None, event=event, erased=False)


def joined(at: datetime) -> RecordedEvent:
    return recorded(StaffJoined(branch_id=BRANCH, staff_id=STAFF, role=StaffRole.IB_ER, name="F",
                                email="f@school.example"), at)


def fold(history: list[RecordedEvent]) -> StaffMember | None:
    return reduce(evolve, history, None)


def test_a_departure_takes_effect_at_its_moment_and_records_when_we_learned_it():
    reported = JULY + timedelta(days=3)
    member = fold([joined(JULY - timedelta(days=300)),
                   recorded(StaffDeparted(branch_id=BRANCH, staff_id=STAFF), JULY, reported)])
    assert member is not None
    assert member.departed_at == JULY and member.departure_recorded_at == reported
    assert member.has_departed(JULY) and not member.has_departed(JULY - timedelta(seconds=1))


def test_a_future_departure_is_not_yet_a_departure():
    member = fold([joined(JULY), recorded(StaffDeparted(branch_id=BRANCH, staff_id=STAFF),
                                          JULY + timedelta(days=30), JULY)])
    assert member is not None and not member.has_departed(JULY + timedelta(days=29))


def test_a_rehire_clears_the_earlier_departure():
    member = fold([joined(JULY), recorded(StaffDeparted(branch_id=BRANCH, staff_id=STAFF), JULY),
                   joined(JULY + timedelta(days=60))])
    assert member is not None and member.departed_at is None


def test_a_role_change_is_kept():
    member = fold([joined(JULY), recorded(StaffRoleChanged(
        branch_id=BRANCH, staff_id=STAFF, previous_role=StaffRole.IB_ER, role=StaffRole.DIRECTEUR), JULY)])
    assert member is not None and member.role is StaffRole.DIRECTEUR


def test_events_about_others_change_nothing():
    from tests.unit.samples import sample

    assert evolve(None, recorded(sample("BranchFounded"), JULY)) is None
