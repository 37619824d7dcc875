"""The retention rules: when a pupil's data must go, and whether consent holds. Pure: dates and
times come in; nothing is read from a clock here.

- Data is kept at most 2 years after the pupil leaves (the SSOE statement); the sector keeps
  the SWV's own dossier 3 years. A pupil's personal data is sealed under one key, so it goes at
  the latest moment that applies to what we hold about them.
- From 16, the pupil's own consent is needed as well as a parent's (date of birth decides, on
  the date the question is asked).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from shared.contracts.events import ConsentGiver, ConsentPurpose

DEFAULT_PERIODS: Mapping[str, int] = {
    "leerlingdossier": 2,        # pupil data: at most 2 years after leaving (the seed)
    "verwijzing_so": 3,          # referred to special education
    "swv_dossier": 3,            # the SWV's own dossier (hulpvragen)
    "inschrijving_verzuim": 5,   # enrolment and absence data
}
OWN_CONSENT_FROM_AGE = 16


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
