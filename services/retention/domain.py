"""The retention rules: when a pupil's data must go, and whether consent holds. Pure: dates and
times come in; nothing is read from a clock here.

- Data is kept at most 2 years after the pupil leaves (the SSOE statement's promise): every
  category's default is 2 years. A longer legal period (the SWV's own dossier, enrolment and
  absence data) applies only when the operator configures it, and is warned about at start-up
  (`above_promise`). A pupil's personal data is sealed under one key, so it goes at the latest
  moment that applies to what we hold about them.
- From 16, the pupil's own consent is needed as well as a parent's (date of birth decides, on
  the date the question is asked).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from types import MappingProxyType
from typing import Any, Protocol
from uuid import UUID

from shared.contracts.envelope import RecordedEvent
from shared.contracts.events import (
    BranchFounded,
    ConsentGiven,
    ConsentGiver,
    ConsentPurpose,
    ConsentWithdrawn,
    DossierOpened,
    Event,
    LegalHoldPlaced,
    LegalHoldReleased,
    PupilDataPurged,
    PupilDetailsCorrected,
    PupilEnrolled,
    PupilLeft,
    PurgeScheduled,
)
from shared.fold import evolve_through

# "maximaal 2 jaar na vertrek": no category is kept longer unless the operator says so.
PROMISED_YEARS = 2
DEFAULT_PERIODS: Mapping[str, int] = MappingProxyType({
    "leerlingdossier": PROMISED_YEARS,       # pupil data
    "verwijzing_so": PROMISED_YEARS,         # referred to special education
    "swv_dossier": PROMISED_YEARS,           # the SWV's own dossier (hulpvragen)
    "inschrijving_verzuim": PROMISED_YEARS,  # enrolment and absence data
})
OWN_CONSENT_FROM_AGE = 16


def retention_periods(configured: Mapping[str, int]) -> dict[str, int]:
    """The periods in force: every default category, with the operator's configured values over
    them (a configuration naming one category keeps the others at their defaults)."""
    return {**DEFAULT_PERIODS, **configured}


def above_promise(periods: Mapping[str, int]) -> list[tuple[str, int]]:
    """Each category kept longer than the promised 2 years after leaving, by name: the operator
    chose that, and the start-up says so."""
    return sorted((category, years) for category, years in periods.items() if years > PROMISED_YEARS)


def add_years(day: date, years: int) -> date:
    """The same calendar day `years` later; 29 February becomes 28 February (never later than
    the period allows)."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, day=28)


def category_for(has_swv_dossier: bool) -> str:
    return "swv_dossier" if has_swv_dossier else "leerlingdossier"


def purge_due(left_on: date, category: str, periods: Mapping[str, int] = DEFAULT_PERIODS) -> date:
    return add_years(left_on, periods[category])


def age_on(date_of_birth: date, on: date) -> int:
    years = on.year - date_of_birth.year
    return years - 1 if (on.month, on.day) < (date_of_birth.month, date_of_birth.day) else years


@dataclass(frozen=True)
class ConsentAnswer:
    allowed: bool
    reason: str
    needs: tuple[ConsentGiver, ...]


def consent(purpose: ConsentPurpose, date_of_birth: date | None, given: Mapping[ConsentGiver, bool],
            on: date) -> ConsentAnswer:
    """May we, for this pupil, for this purpose, on this date? `given` holds each giver's latest
    answer (True given, False withdrawn); a withdrawal counts at once."""
    if date_of_birth is None:
        return ConsentAnswer(False, "date of birth unknown: consent cannot be judged", (ConsentGiver.PARENT,))
    needs = (ConsentGiver.PARENT,) + ((ConsentGiver.PUPIL,) if age_on(date_of_birth, on) >= OWN_CONSENT_FROM_AGE
                                      else ())
    missing = [giver for giver in needs if not given.get(giver, False)]
    if missing:
        who = " and ".join("the pupil (16 or older)" if g is ConsentGiver.PUPIL else "a parent" for g in missing)
        return ConsentAnswer(False, f"no consent from {who} for {purpose.value}", needs)
    return ConsentAnswer(True, f"consent from {' and '.join(g.value for g in needs)} for {purpose.value}", needs)


# --- data-subject requests (AVG art. 12(3), 15-17) ----------------------------------------------

ANSWER_WITHIN_MONTHS = 1   # AVG art. 12(3): without undue delay, at the latest one month after receipt
EXTENSION_MONTHS = 2       # ...extendable by two further months for complex requests, with reasons


def add_months(day: date, months: int) -> date:
    """The same day `months` later; a day the month lacks becomes its last day (31 January + 1
    month = 28 or 29 February), so a deadline never lands after the month it should."""
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    last = (date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)).day
    return date(year, month, min(day.day, last))


def answer_due(received_on: date, extended: bool = False) -> date:
    """One month after receipt; an extension adds two months to that first deadline (the strict
    reading: 31 January is due 28 February, extended 28 April, not 30 April)."""
    first = add_months(received_on, ANSWER_WITHIN_MONTHS)
    return add_months(first, EXTENSION_MONTHS) if extended else first


def may_ask(requested_by: ConsentGiver, date_of_birth: date | None, on: date) -> str | None:
    """None when this person may make a request about the pupil; otherwise why not. Parents
    always may; the pupil from 16 (the same line as for consent)."""
    if requested_by is ConsentGiver.PARENT:
        return None
    if date_of_birth is None:
        return "the pupil's date of birth is unknown, so their own request cannot be accepted"
    if age_on(date_of_birth, on) < OWN_CONSENT_FROM_AGE:
        return "a pupil may make their own request from 16; below that, a parent asks"
    return None


def may_delete_early(enrolled: bool, legal_hold: bool, purged: bool) -> str | None:
    """None when erasing the pupil's data now is lawful; otherwise the reason it is not (AVG art.
    17(3)(b): a legal obligation to keep it). A school must keep the pupil's file while the pupil
    is enrolled (WPO), and a legal hold means a legal obligation or claim needs it."""
    if purged:
        return "the pupil's data has already been removed"
    if enrolled:
        return "the pupil is still enrolled: the school is required by law to keep the pupil file"
    if legal_hold:
        return "a legal hold is in force: the data is needed for a legal obligation or claim"
    return None


# --- data leaks: the 72-hour clock (AVG art. 33) ----------------------------------------------

REPORT_WITHIN = timedelta(hours=72)


def regulator_deadline(discovered_at: datetime) -> datetime:
    """72 hours after the controller became aware: clock hours, so a daylight-saving change in
    between neither adds nor takes an hour."""
    if discovered_at.tzinfo is None:
        raise ValueError("discovered_at needs a time zone")
    return discovered_at.astimezone(UTC) + REPORT_WITHIN


@dataclass(frozen=True)
class LeakClock:
    deadline: datetime
    status: str            # "open", "overdue", "reported", "reported-late", "not-reportable"
    seconds_left: float    # negative once overdue; 0 once reported or assessed not reportable


def leak_clock(discovered_at: datetime, reported_at: datetime | None, now: datetime,
               not_reportable: bool = False) -> LeakClock:
    deadline = regulator_deadline(discovered_at)
    if not_reportable:
        return LeakClock(deadline, "not-reportable", 0.0)
    if reported_at is not None:
        return LeakClock(deadline, "reported" if reported_at <= deadline else "reported-late", 0.0)
    left = (deadline - now).total_seconds()
    return LeakClock(deadline, "open" if left >= 0 else "overdue", left)


def report_problem(discovered_at: datetime, reported_at: datetime, delay_reason: str | None,
                   now: datetime) -> str | None:
    """None when a report to the regulator can be recorded like this; otherwise why not."""
    if reported_at > now:
        return "a report cannot be recorded before it was made"
    if reported_at < discovered_at:
        return "a report cannot precede the discovery of the leak"
    if reported_at > regulator_deadline(discovered_at) and not delay_reason:
        return "the report was made after 72 hours: AVG art. 33(1) requires the reasons for the delay"
    return None


# --- the retention state and its dispatch table --------------------------------------------

@dataclass(frozen=True)
class RetainedPupil:
    """What retention keeps about a pupil: enough to know when their data must go."""

    pupil_id: UUID
    branch_id: UUID
    date_of_birth: date | None  # None once erased (the field reads "verwijderd")
    enrolled: bool
    left_on: date | None
    has_swv_dossier: bool
    category: str | None  # which period applies, once the pupil has left
    due_on: date | None  # when the purge is due
    legal_hold: bool
    hold_reason: str | None


@dataclass(frozen=True)
class Consent:
    pupil_id: UUID
    purpose: ConsentPurpose
    giver: ConsentGiver
    given: bool
    at: datetime


ConsentKey = tuple[UUID, ConsentPurpose, ConsentGiver]


@dataclass(frozen=True)
class RetentionState:
    pupils: Mapping[UUID, RetainedPupil] = field(default_factory=lambda: MappingProxyType({}))
    consents: Mapping[ConsentKey, Consent] = field(default_factory=lambda: MappingProxyType({}))
    # Each branch's school board (bevoegd gezag; None: not reported): whose FG acts for it (policy.py).
    boards: Mapping[UUID, str | None] = field(default_factory=lambda: MappingProxyType({}))


INITIAL_STATE = RetentionState()


class RetentionEntities(Protocol):
    """Where the handlers read and write: the service's tables live (`store.Tables`), a
    RetentionState in a replay (`StateEntities`)."""

    def pupil(self, pupil_id: UUID) -> RetainedPupil | None: ...
    def save_pupil(self, pupil: RetainedPupil) -> None: ...
    def save_consent(self, consent: Consent) -> None: ...
    def drop_pupil(self, pupil_id: UUID) -> None: ...
    def save_board(self, branch_id: UUID, board: str | None) -> None: ...


def _branch_founded(entities: RetentionEntities, recorded: RecordedEvent) -> None:
    event = recorded.event
    assert isinstance(event, BranchFounded)
    entities.save_board(event.branch_id, event.bevoegd_gezag)


def _enrolled(entities: RetentionEntities, recorded: RecordedEvent) -> None:
    event = recorded.event
    assert isinstance(event, PupilEnrolled)
    known = entities.pupil(event.pupil_id)
    # Enrolled (again): no longer left, nothing scheduled; an SWV dossier and a legal hold stay.
    entities.save_pupil(RetainedPupil(
        event.pupil_id, event.branch_id, event.date_of_birth if isinstance(event.date_of_birth, date) else None,
        enrolled=True, left_on=None, has_swv_dossier=known.has_swv_dossier if known else False, category=None,
        due_on=None, legal_hold=known.legal_hold if known else False, hold_reason=known.hold_reason if known else None))


def _changed(**changes: Any) -> Callable[[RetentionEntities, RecordedEvent], None]:
    """A handler that changes fields of a known pupil (an unknown one is left alone)."""
    def fold(entities: RetentionEntities, recorded: RecordedEvent) -> None:
        event = recorded.event
        pupil = entities.pupil(event.pupil_id)  # type: ignore[attr-defined]
        if pupil is not None:
            values = {name: value(event) if callable(value) else value for name, value in changes.items()}
            entities.save_pupil(replace(pupil, **values))
    return fold


def _corrected(entities: RetentionEntities, recorded: RecordedEvent) -> None:
    event = recorded.event
    assert isinstance(event, PupilDetailsCorrected)
    pupil = entities.pupil(event.pupil_id)
    if pupil is not None and isinstance(event.date_of_birth, date):
        entities.save_pupil(replace(pupil, date_of_birth=event.date_of_birth))


def _consent(entities: RetentionEntities, recorded: RecordedEvent) -> None:
    event = recorded.event
    assert isinstance(event, ConsentGiven | ConsentWithdrawn)
    giver = event.given_by if isinstance(event, ConsentGiven) else event.withdrawn_by
    entities.save_consent(Consent(event.pupil_id, event.purpose, giver, isinstance(event, ConsentGiven),
                                  recorded.recorded_at))


def _purged(entities: RetentionEntities, recorded: RecordedEvent) -> None:
    entities.drop_pupil(recorded.event.pupil_id)  # type: ignore[attr-defined]


def _schedule(entities: RetentionEntities, recorded: RecordedEvent, periods: Mapping[str, int]) -> list[Event]:
    """Once a pupil has left, the purge is due when the longest period that applies ends; an
    SWV dossier opened later may lengthen it."""
    pupil = entities.pupil(recorded.event.pupil_id)  # type: ignore[attr-defined]
    if pupil is None or pupil.left_on is None:
        return []
    category = category_for(pupil.has_swv_dossier)
    due = purge_due(pupil.left_on, category, periods)
    if (pupil.category, pupil.due_on) == (category, due):
        return []
    return [PurgeScheduled(pupil_id=pupil.pupil_id, category=category, due_on=due)]


def _no_reactions(entities: RetentionEntities, recorded: RecordedEvent, periods: Mapping[str, int]) -> list[Event]:
    return []


@dataclass(frozen=True)
class Handler:
    """`fold` changes the state; `react` says what the retention service emits because of it
    (live only: a replay reads those from the log)."""

    fold: Callable[[RetentionEntities, RecordedEvent], None]
    react: Callable[[RetentionEntities, RecordedEvent, Mapping[str, int]], list[Event]] = _no_reactions


HANDLERS: Mapping[type[Event], Handler] = MappingProxyType({
    BranchFounded: Handler(_branch_founded),
    PupilEnrolled: Handler(_enrolled),
    DossierOpened: Handler(_changed(has_swv_dossier=True), _schedule),
    PupilLeft: Handler(_changed(enrolled=False, left_on=lambda event: event.left_on), _schedule),
    PurgeScheduled: Handler(_changed(category=lambda event: event.category, due_on=lambda event: event.due_on)),
    LegalHoldPlaced: Handler(_changed(legal_hold=True, hold_reason=lambda event: event.reason)),
    LegalHoldReleased: Handler(_changed(legal_hold=False, hold_reason=None)),
    ConsentGiven: Handler(_consent), ConsentWithdrawn: Handler(_consent),
    PupilDetailsCorrected: Handler(_corrected),
    PupilDataPurged: Handler(_purged),
})
FOLDED_TYPES = frozenset(cls.event_type for cls in HANDLERS)


def handle(entities: RetentionEntities, recorded: RecordedEvent, periods: Mapping[str, int]) -> list[Event]:
    """The live step: fold one event into the tables, return what follows from it."""
    handler = HANDLERS.get(type(recorded.event))
    if handler is None:
        return []
    handler.fold(entities, recorded)
    return handler.react(entities, recorded, periods)


class StateEntities:
    """A RetentionState behind the RetentionEntities port, for a replay."""

    def __init__(self, state: RetentionState) -> None:
        self.state = state

    def pupil(self, pupil_id: UUID) -> RetainedPupil | None:
        return self.state.pupils.get(pupil_id)

    def save_pupil(self, pupil: RetainedPupil) -> None:
        self.state = replace(self.state, pupils=MappingProxyType({**self.state.pupils, pupil.pupil_id: pupil}))

    def save_consent(self, consent: Consent) -> None:
        key = (consent.pupil_id, consent.purpose, consent.giver)
        self.state = replace(self.state, consents=MappingProxyType({**self.state.consents, key: consent}))

    def drop_pupil(self, pupil_id: UUID) -> None:
        self.state = replace(
            self.state, pupils=MappingProxyType({k: v for k, v in self.state.pupils.items() if k != pupil_id}),
            consents=MappingProxyType({k: v for k, v in self.state.consents.items() if k[0] != pupil_id}))

    def save_board(self, branch_id: UUID, board: str | None) -> None:
        self.state = replace(self.state, boards=MappingProxyType({**self.state.boards, branch_id: board}))


def evolve(state: RetentionState, recorded: RecordedEvent) -> RetentionState:
    """The replay's step: the same fold as the live service's, into a RetentionState."""
    return evolve_through(HANDLERS, StateEntities, state, recorded)
