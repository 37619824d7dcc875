"""The auth rules: TOTP without replay (RFC 6238 section 5.2), lockout timing, session lifetimes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyotp
import pytest

from services.auth.domain import (
    FIRST_LOCK,
    FREE_FAILURES,
    LONGEST_LOCK,
    CodeAccepted,
    CodeRefused,
    Failures,
    Session,
    after_failure,
    session_state,
    time_step,
    valid_password,
    verify_code,
)

SECRET = pyotp.random_base32()
NOW = datetime(2026, 11, 25, 8, 0, 15, tzinfo=UTC)


def code_at(moment: datetime) -> str:
    return pyotp.TOTP(SECRET).at(moment)


def test_a_current_code_is_accepted_once_and_then_refused_as_a_replay():
    first = verify_code(SECRET, code_at(NOW), NOW, None)
    assert first == CodeAccepted(time_step(NOW))
    again = verify_code(SECRET, code_at(NOW), NOW + timedelta(seconds=5), first.step)
    assert again == CodeRefused("code-replayed")


def test_the_previous_steps_code_is_accepted_once_for_clock_drift():
    previous = code_at(NOW - timedelta(seconds=30))
    accepted = verify_code(SECRET, previous, NOW, None)
    assert accepted == CodeAccepted(time_step(NOW) - 1)
    assert verify_code(SECRET, previous, NOW, accepted.step) == CodeRefused("code-replayed")


def test_an_older_step_is_refused_after_a_newer_one_was_used():
    newer = verify_code(SECRET, code_at(NOW), NOW, None)
    older = code_at(NOW - timedelta(seconds=30))
    assert verify_code(SECRET, older, NOW, newer.step) == CodeRefused("code-replayed")


def test_codes_two_steps_away_are_refused():
    assert verify_code(SECRET, code_at(NOW - timedelta(seconds=60)), NOW, None) == CodeRefused("bad-code")
    assert verify_code(SECRET, code_at(NOW + timedelta(seconds=60)), NOW, None) == CodeRefused("bad-code")


@pytest.mark.parametrize("code", ["", "12345", "1234567", "abcdef", "12 456"])
def test_malformed_codes_are_refused(code):
    assert verify_code(SECRET, code, NOW, None) == CodeRefused("bad-code")


def test_the_first_failures_are_free_then_locks_grow_and_end():
    failures = Failures()
    for _ in range(FREE_FAILURES - 1):
        failures = after_failure(failures, NOW)
        assert not failures.locked(NOW)
    failures = after_failure(failures, NOW)
    assert failures.locked(NOW) and failures.locked_until == NOW + FIRST_LOCK
    assert failures.locked(NOW + FIRST_LOCK - timedelta(seconds=1))
    assert not failures.locked(NOW + FIRST_LOCK)
    later = NOW + FIRST_LOCK
    failures = after_failure(failures, later)
    assert failures.locked_until == later + 2 * FIRST_LOCK
    for _ in range(20):
        failures = after_failure(failures, later)
    assert failures.locked_until == later + LONGEST_LOCK


def test_sessions_end_when_idle_too_long_or_too_old_or_ended_or_disabled():
    session = Session("s", "p", created_at=NOW, last_seen_at=NOW)
    assert session_state(session, NOW + timedelta(minutes=29), None) == "active"
    assert session_state(session, NOW + timedelta(minutes=30), None) == "idle"
    busy = Session("s", "p", created_at=NOW, last_seen_at=NOW + timedelta(hours=11, minutes=59))
    assert session_state(busy, NOW + timedelta(hours=12), None) == "expired"
    assert session_state(Session("s", "p", NOW, NOW, ended_at=NOW), NOW, None) == "ended"
    assert session_state(session, NOW + timedelta(minutes=1), account_disabled_at=NOW) == "account-disabled"


def test_passwords_must_be_long_and_varied():
    assert valid_password("kort") is not None
    assert valid_password("aaaaaaaaaaaaaaaa") is not None
    assert valid_password("paard-batterij-nietje-correct") is None
