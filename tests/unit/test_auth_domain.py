"""The auth rules: TOTP without replay (RFC 6238 section 5.2), lockout timing and its decay, a lock
that never shuts the rightful user out, guessable passwords refused, session lifetimes."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pyotp
import pytest

from services.auth.domain import (
    FIRST_LOCK,
    FORGET_AFTER,
    FREE_FAILURES,
    LONGEST_LOCK,
    RESET_REQUEST_LIFETIME,
    AccountView,
    CodeAccepted,
    CodeRefused,
    Failures,
    RecoveryCodeAccepted,
    ResetRequest,
    Session,
    StepDecided,
    Verify,
    after_failure,
    code_keys,
    decide_code,
    decide_password,
    password_keys,
    refuse_reinvitation,
    refuse_reset_approval,
    refuse_reset_request,
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
    assert failures.locked(NOW) and failures.locked_until == NOW + FIRST_LOCK and failures.last_failed_at == NOW
    assert failures.locked(NOW + FIRST_LOCK - timedelta(seconds=1))
    assert not failures.locked(NOW + FIRST_LOCK)
    later = NOW + FIRST_LOCK
    failures = after_failure(failures, later)
    assert failures.locked_until == later + 2 * FIRST_LOCK
    for _ in range(20):
        failures = after_failure(failures, later)
    assert failures.locked_until == later + LONGEST_LOCK


def test_a_counter_decays_so_one_guess_an_hour_does_not_keep_an_account_locked():
    failures = Failures()
    for _ in range(FREE_FAILURES):
        failures = after_failure(failures, NOW)
    assert failures.locked(NOW)
    # One more guess each time the lock ends would keep it locked for ever if nothing decayed.
    hour_later = NOW + FORGET_AFTER
    assert failures.current(hour_later) == Failures()
    assert not after_failure(failures, hour_later).locked(hour_later)
    assert after_failure(failures, hour_later).count == 1
    # Within the hour it still counts on.
    assert after_failure(failures, NOW + FIRST_LOCK).count == FREE_FAILURES + 1


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


@pytest.mark.parametrize("guessable", ["Welkom123456", "Wachtwoord2026!", "Kindkans2026!", "Password1234",
                                       "Zomer2025Zomer", "qwertyuiop123", "Rotterdam010!!",
                                       "Herfst2026!!", "Feyenoord1908"])
def test_commonly_used_passwords_are_refused(guessable):
    assert "te makkelijk te raden" in valid_password(guessable)


def test_a_password_made_of_the_users_own_address_is_refused():
    assert "naam of e-mailadres" in valid_password("Jansen-fiets-regen-haven", ("jansen", "school", "example"))
    assert valid_password("jansen-pietersen-2026") is None


# --- the login steps, decided ------------------------------------------------------------------

STAFF_ID = "5a5a5a5a-0000-4000-8000-000000000001"
ENROLLED = AccountView(STAFF_ID, has_password=True, enrolled=True, disabled_at=None)
CLIENT = "10.0.0.1"
NAME = "ib@school.example"


def fresh_failures() -> dict[str, Failures]:
    return {key: Failures() for key in password_keys(NAME)}


def locked_failures() -> dict[str, Failures]:
    failures = Failures()
    for _ in range(FREE_FAILURES):
        failures = after_failure(failures, NOW)
    return {key: failures for key in password_keys(NAME)}


def test_a_right_password_is_checked_then_accepted_and_resets_the_counters():
    counted = {key: Failures(count=3) for key in password_keys(NAME)}
    assert decide_password(ENROLLED, counted, CLIENT, NOW, None) == Verify(against_dummy=False)
    step = decide_password(ENROLLED, counted, CLIENT, NOW, True)
    assert step == StepDecided(True, {key: Failures() for key in counted}, ())


def test_an_unknown_name_is_checked_against_a_dummy_and_refused_like_a_wrong_password():
    assert decide_password(None, fresh_failures(), CLIENT, NOW, None) == Verify(against_dummy=True)
    unknown = decide_password(None, fresh_failures(), CLIENT, NOW, False)
    wrong = decide_password(ENROLLED, fresh_failures(), CLIENT, NOW, False)
    assert not unknown.accepted and unknown.message == wrong.message
    assert [e.reason for e in unknown.events] == ["unknown-account"] and unknown.events[0].staff_id is None
    assert [e.reason for e in wrong.events] == ["bad-password"]
    # The name's counter counts either way, so a lock tells nothing about which names exist.
    assert unknown.failures == wrong.failures and set(unknown.failures) == set(password_keys(NAME))


def test_the_failure_that_crosses_the_line_locks_the_account_once():
    almost = {key: Failures(count=FREE_FAILURES - 1) for key in password_keys(NAME)}
    locking = decide_password(ENROLLED, almost, CLIENT, NOW, False)
    assert [type(e).__name__ for e in locking.events] == ["AccountLocked", "LoginFailed"]
    assert locking.events[0].until == NOW + FIRST_LOCK
    again = decide_password(ENROLLED, locking.failures, CLIENT, NOW, False)
    assert [type(e).__name__ for e in again.events] == ["LoginFailed"] and again.events[0].reason == "locked"


@pytest.mark.parametrize("account", [ENROLLED, None], ids=["real-name", "unknown-name"])
def test_a_locked_name_still_checks_the_password_so_every_refusal_takes_as_long(account):
    assert decide_password(account, locked_failures(), CLIENT, NOW, None) == Verify(against_dummy=account is None)


def test_a_locked_name_answers_a_right_and_a_wrong_password_alike_and_only_the_right_one_can_pass():
    right = decide_password(ENROLLED, locked_failures(), CLIENT, NOW, True)
    wrong = decide_password(ENROLLED, locked_failures(), CLIENT, NOW, False)
    unknown = decide_password(None, locked_failures(), CLIENT, NOW, False)
    # All three go on to the code step (the stranger learns nothing, the user is not shut out);
    # only the right password's step can open a session there.
    assert right.blind and wrong.blind and unknown.blind
    assert right.accepted and not wrong.accepted and not unknown.accepted
    assert right.failures == {} and right.events == (), "the right password is not a failure"
    assert all(f.count == FREE_FAILURES + 1 for f in wrong.failures.values())


def test_a_departed_or_not_enrolled_account_is_refused_after_the_right_password_without_counting():
    departed = AccountView(STAFF_ID, has_password=True, enrolled=True, disabled_at=NOW - timedelta(days=1))
    step = decide_password(departed, fresh_failures(), CLIENT, NOW, True)
    assert not step.accepted and [e.reason for e in step.events] == ["account-disabled"] and step.failures == {}
    assert not decide_password(departed, locked_failures(), CLIENT, NOW, True).accepted
    halfway = AccountView(STAFF_ID, has_password=True, enrolled=False, disabled_at=None)
    step = decide_password(halfway, fresh_failures(), CLIENT, NOW, True)
    assert not step.accepted and "tweestapsverificatie" in step.message and step.resume_enrolment


def test_the_code_step_opens_a_session_with_the_factor_used():
    failures = {key: Failures() for key in code_keys(STAFF_ID, NAME)}
    session = "5a5a5a5a-0000-4000-8000-0000000000aa"
    assert decide_code(ENROLLED, failures, CLIENT, NOW, None, session) == Verify()
    totp = decide_code(ENROLLED, failures, CLIENT, NOW, CodeAccepted(time_step(NOW)), session)
    assert totp.accepted and [(type(e).__name__, e.second_factor) for e in totp.events] == [("LoginSucceeded", "totp")]
    recovery = decide_code(ENROLLED, failures, CLIENT, NOW, RecoveryCodeAccepted(remaining=9), session)
    assert [type(e).__name__ for e in recovery.events] == ["RecoveryCodeUsed", "LoginSucceeded"]
    assert recovery.events[0].remaining == 9 and recovery.events[1].second_factor == "recovery-code"
    replayed = decide_code(ENROLLED, failures, CLIENT, NOW, CodeRefused("code-replayed"), session)
    assert not replayed.accepted and [e.reason for e in replayed.events] == ["code-replayed"]
    # The code's counter counts; the password's is left as it is (it is reset by a session).
    assert {key: f.count for key, f in replayed.failures.items()} == {f"code|account|{STAFF_ID}": 1}
    assert all(f == Failures() for f in totp.failures.values()) and set(totp.failures) == set(failures)


# --- the four-eyes reset ---------------------------------------------------------------------

ADMIN, OTHER_ADMIN = "5a5a5a5a-0000-4000-8000-0000000000a1", "5a5a5a5a-0000-4000-8000-0000000000a2"


def test_a_reset_is_asked_by_an_admin_for_someone_else_who_has_a_factor():
    assert refuse_reset_request(ADMIN, True, ENROLLED, NOW) is None
    assert "beheerder" in refuse_reset_request(ADMIN, False, ENROLLED, NOW)
    assert "eigen" in refuse_reset_request(STAFF_ID, True, ENROLLED, NOW)
    halfway = AccountView(STAFF_ID, has_password=True, enrolled=False, disabled_at=None)
    assert "uitnodiging" in refuse_reset_request(ADMIN, True, halfway, NOW)
    departed = AccountView(STAFF_ID, has_password=True, enrolled=True, disabled_at=NOW)
    assert refuse_reset_request(ADMIN, True, departed, NOW) is not None
    assert refuse_reset_request(ADMIN, True, None, NOW) is not None


def test_a_reset_is_approved_by_a_second_admin_who_is_not_its_subject_within_a_week():
    asked = ResetRequest("r", STAFF_ID, ADMIN, NOW, None)
    assert refuse_reset_approval(asked, OTHER_ADMIN, True, NOW) is None
    assert "tweede beheerder" in refuse_reset_approval(asked, ADMIN, True, NOW)
    assert "eigen account" in refuse_reset_approval(asked, STAFF_ID, True, NOW)
    assert refuse_reset_approval(asked, OTHER_ADMIN, False, NOW) is not None
    assert "verlopen" in refuse_reset_approval(asked, OTHER_ADMIN, True, NOW + RESET_REQUEST_LIFETIME)
    assert refuse_reset_approval(replace(asked, approved_at=NOW), OTHER_ADMIN, True, NOW) is not None


def test_one_admin_re_invites_only_an_account_that_never_finished_its_enrolment():
    halfway = AccountView(STAFF_ID, has_password=True, enrolled=False, disabled_at=None)
    assert refuse_reinvitation(True, halfway, NOW) is None
    assert "herstel" in refuse_reinvitation(True, ENROLLED, NOW)
    assert refuse_reinvitation(False, halfway, NOW) is not None
