"""Retention arithmetic and consent around the 16th birthday (pure)."""

from __future__ import annotations

import logging
from datetime import date

import pytest

from services.retention.bootstrap import warn_above_promise
from services.retention.domain import (
    DEFAULT_PERIODS,
    above_promise,
    add_years,
    age_on,
    category_for,
    consent,
    purge_due,
    retention_periods,
)
from shared.contracts.events import ConsentGiver, ConsentPurpose

PARENT, PUPIL = ConsentGiver.PARENT, ConsentGiver.PUPIL


@pytest.mark.parametrize(("left", "category", "due"), [
    (date(2026, 7, 17), "leerlingdossier", date(2028, 7, 17)),
    (date(2024, 2, 29), "leerlingdossier", date(2026, 2, 28)),   # a leap day: never later than allowed
    # Every category keeps the promise by default: at most 2 years after leaving.
    (date(2024, 2, 29), "inschrijving_verzuim", date(2026, 2, 28)),
    (date(2026, 7, 17), "swv_dossier", date(2028, 7, 17)),
    (date(2026, 7, 17), "verwijzing_so", date(2028, 7, 17)),
    (date(2020, 3, 1), "leerlingdossier", date(2022, 3, 1)),       # a leaving date in the past
])
def test_purge_dates(left, category, due):
    assert purge_due(left, category) == due


def test_periods_are_configurable_per_category():
    assert purge_due(date(2026, 1, 1), "leerlingdossier", {"leerlingdossier": 1}) == date(2027, 1, 1)


def test_no_default_period_is_longer_than_the_promise():
    assert set(DEFAULT_PERIODS.values()) == {2} and above_promise(DEFAULT_PERIODS) == []


def test_a_configured_period_replaces_its_default_only():
    periods = retention_periods({"swv_dossier": 3})
    assert periods == {"leerlingdossier": 2, "verwijzing_so": 2, "swv_dossier": 3, "inschrijving_verzuim": 2}
    assert purge_due(date(2026, 7, 17), "swv_dossier", periods) == date(2029, 7, 17)


def test_the_start_warns_for_each_category_above_the_promise(caplog):
    periods = retention_periods({"swv_dossier": 3, "inschrijving_verzuim": 5, "leerlingdossier": 1})
    assert above_promise(periods) == [("inschrijving_verzuim", 5), ("swv_dossier", 3)]
    with caplog.at_level(logging.WARNING, logger="services.retention.bootstrap"):
        warn_above_promise(periods)
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 2
    assert "inschrijving_verzuim is kept 5 years" in warned[0] and "swv_dossier is kept 3 years" in warned[1]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="services.retention.bootstrap"):
        warn_above_promise(retention_periods({}))
    assert not caplog.records


def test_a_pupil_with_an_swv_dossier_has_its_category():
    assert category_for(True) == "swv_dossier" and category_for(False) == "leerlingdossier"


def test_age_turns_on_the_birthday():
    assert age_on(date(2010, 5, 15), date(2026, 5, 14)) == 15
    assert age_on(date(2010, 5, 15), date(2026, 5, 15)) == 16
    assert add_years(date(2008, 2, 29), 16) == date(2024, 2, 29)


def test_before_16_a_parents_consent_is_enough():
    answer = consent(ConsentPurpose.PHOTO_VIDEO, date(2010, 5, 15), {PARENT: True}, date(2026, 5, 14))
    assert answer.allowed and answer.needs == (PARENT,)


def test_from_the_16th_birthday_the_pupil_must_consent_too():
    on_birthday = date(2026, 5, 15)
    answer = consent(ConsentPurpose.PHOTO_VIDEO, date(2010, 5, 15), {PARENT: True}, on_birthday)
    assert not answer.allowed and "the pupil (16 or older)" in answer.reason
    assert consent(ConsentPurpose.PHOTO_VIDEO, date(2010, 5, 15), {PARENT: True, PUPIL: True}, on_birthday).allowed


def test_a_withdrawal_counts_at_once_and_unknown_birth_dates_deny():
    assert not consent(ConsentPurpose.RESEARCH, date(2015, 1, 1), {PARENT: False}, date(2026, 1, 1)).allowed
    assert not consent(ConsentPurpose.RESEARCH, None, {PARENT: True}, date(2026, 1, 1)).allowed
