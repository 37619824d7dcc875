"""The auth rules: TOTP without replay (RFC 6238 section 5.2), lockout timing, session lifetimes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyotp
import pytest

from services.auth.domain import (
    FIRST_LOCK,
    FREE_FAILURES,
    LONGEST_LOCK,
    AccountView,
    CodeAccepted,
    CodeRefused,
    Failures,
    RecoveryCodeAccepted,
    Session,
    StepDecided,
    Verify,
    after_failure,
    code_keys,
    decide_code,
    decide_password,
    password_keys,
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


# --- the login steps, decided ------------------------------------------------------------------

STAFF_ID = "5a5a5a5a-0000-4000-8000-000000000001"
ENROLLED = AccountView(STAFF_ID, has_password=True, enrolled=True, disabled_at=None)
CLIENT = "10.0.0.1"


def fresh_failures(account: AccountView | None) -> dict[str, Failures]:
    return {key: Failures() for key in password_keys(CLIENT, account)}


def test_a_right_password_is_checked_then_accepted_and_resets_the_counters():
    counted = {key: Failures(count=3) for key in password_keys(CLIENT, ENROLLED)}
    assert decide_password(ENROLLED, counted, CLIENT, NOW, None) == Verify(against_dummy=False)
    step = decide_password(ENROLLED, counted, CLIENT, NOW, True)
    assert step == StepDecided(True, {key: Failures() for key in counted}, ())


def test_an_unknown_name_is_checked_against_a_dummy_and_refused_like_a_wrong_password():
    assert decide_password(None, fresh_failures(None), CLIENT, NOW, None) == Verify(against_dummy=True)
    unknown = decide_password(None, fresh_failures(None), CLIENT, NOW, False)
    wrong = decide_password(ENROLLED, fresh_failures(ENROLLED), CLIENT, NOW, False)
    assert not unknown.accepted and unknown.message == wrong.message
    assert [e.reason for e in unknown.events] == ["unknown-account"] and unknown.events[0].staff_id is None
    assert [e.reason for e in wrong.events] == ["bad-password"]
    assert set(unknown.failures) == {f"password|client|{CLIENT}"}  # the client's counter only


def test_the_failure_that_crosses_the_line_locks_the_account_once_and_then_nothing_is_checked():
    almost = {key: Failures(count=FREE_FAILURES - 1) for key in password_keys(CLIENT, ENROLLED)}
    locking = decide_password(ENROLLED, almost, CLIENT, NOW, False)
    assert [type(e).__name__ for e in locking.events] == ["AccountLocked", "LoginFailed"]
    assert locking.events[0].until == NOW + FIRST_LOCK
    locked = locking.failures
    assert not isinstance(again := decide_password(ENROLLED, locked, CLIENT, NOW, None), Verify)
    assert [e.reason for e in again.events] == ["locked"] and again.failures == {}, "a locked attempt is not counted"


def test_a_departed_or_not_enrolled_account_is_refused_after_the_right_password_without_counting():
    departed = AccountView(STAFF_ID, has_password=True, enrolled=True, disabled_at=NOW - timedelta(days=1))
    step = decide_password(departed, fresh_failures(departed), CLIENT, NOW, True)
    assert not step.accepted and [e.reason for e in step.events] == ["account-disabled"] and step.failures == {}
    halfway = AccountView(STAFF_ID, has_password=True, enrolled=False, disabled_at=None)
    step = decide_password(halfway, fresh_failures(halfway), CLIENT, NOW, True)
    assert not step.accepted and "tweestapsverificatie" in step.message


def test_the_code_step_opens_a_session_with_the_factor_used():
    failures = {key: Failures() for key in code_keys(CLIENT, STAFF_ID)}
    session = "5a5a5a5a-0000-4000-8000-0000000000aa"
    assert decide_code(ENROLLED, failures, CLIENT, NOW, None, session) == Verify()
    totp = decide_code(ENROLLED, failures, CLIENT, NOW, CodeAccepted(time_step(NOW)), session)
    assert totp.accepted and [(type(e).__name__, e.second_factor) for e in totp.events] == [("LoginSucceeded", "totp")]
    recovery = decide_code(ENROLLED, failures, CLIENT, NOW, RecoveryCodeAccepted(remaining=9), session)
    assert [type(e).__name__ for e in recovery.events] == ["RecoveryCodeUsed", "LoginSucceeded"]
    assert recovery.events[0].remaining == 9 and recovery.events[1].second_factor == "recovery-code"
    replayed = decide_code(ENROLLED, failures, CLIENT, NOW, CodeRefused("code-replayed"), session)
    assert not replayed.accepted and [e.reason for e in replayed.events] == ["code-replayed"]
    assert all(f.count == 1 for f in replayed.failures.values())
