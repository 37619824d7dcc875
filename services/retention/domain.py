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
from datetime import date

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
