"""The auth service's rules: TOTP codes without replay, lockout with growing delays, session
lifetimes. Pure: no I/O, no clock (times come in), no logging.

TOTP is RFC 6238 (30-second steps, 6 digits), computed by pyotp; what pyotp does not give us is
the replay rule of RFC 6238 section 5.2: a code is accepted for one step of clock drift either
side, and a step is never accepted twice, nor one older than the last accepted.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

import pyotp

STEP_SECONDS = 30
DRIFT_STEPS = 1

# Lockout: this many failures are free; then each further failure locks for a doubling time.
FREE_FAILURES = 5
FIRST_LOCK = timedelta(minutes=1)
LONGEST_LOCK = timedelta(hours=1)

IDLE_TIMEOUT = timedelta(minutes=30)
ABSOLUTE_TIMEOUT = timedelta(hours=12)


def time_step(now: datetime) -> int:
    return int(now.timestamp()) // STEP_SECONDS


@dataclass(frozen=True)
class CodeAccepted:
    step: int


@dataclass(frozen=True)
class CodeRefused:
    reason: Literal["bad-code", "code-replayed"]


def verify_code(secret: str, code: str, now: datetime, last_used_step: int | None) -> CodeAccepted | CodeRefused:
    """Accept a code of the current step or one step either side, unless that step (or a later
    one) was used before."""
    if not (len(code) == 6 and code.isdigit()):
        return CodeRefused("bad-code")
    totp = pyotp.TOTP(secret)
    current = time_step(now)
    for step in (current - DRIFT_STEPS, current, current + DRIFT_STEPS):
        if hmac.compare_digest(totp.at(step * STEP_SECONDS), code):
            if last_used_step is not None and step <= last_used_step:
                return CodeRefused("code-replayed")
            return CodeAccepted(step)
    return CodeRefused("bad-code")


@dataclass(frozen=True)
class Failures:
    """Failed attempts of one factor (password or code) for one key (an account or a client)."""

    count: int = 0
    locked_until: datetime | None = None

    def locked(self, now: datetime) -> bool:
        return self.locked_until is not None and now < self.locked_until


def after_failure(failures: Failures, now: datetime) -> Failures:
    count = failures.count + 1
    if count < FREE_FAILURES:
        return Failures(count, failures.locked_until)
    lock = min(LONGEST_LOCK, FIRST_LOCK * 2 ** (count - FREE_FAILURES))
    return Failures(count, now + lock)


AFTER_SUCCESS = Failures()


@dataclass(frozen=True)
class Session:
    session_id: str
    staff_id: str
    created_at: datetime
    last_seen_at: datetime
    ended_at: datetime | None = None


def session_state(session: Session, now: datetime, account_disabled_at: datetime | None
                  ) -> Literal["active", "ended", "idle", "expired", "account-disabled"]:
    if session.ended_at is not None and session.ended_at <= now:
        return "ended"
    if account_disabled_at is not None and account_disabled_at <= now:
        return "account-disabled"
    if now >= session.created_at + ABSOLUTE_TIMEOUT:
        return "expired"
    if now >= session.last_seen_at + IDLE_TIMEOUT:
        return "idle"
    return "active"


def valid_password(password: str) -> str | None:
    """None when acceptable, else why not (in Dutch: shown to the user)."""
    if len(password) < 12:
        return "Kies een wachtwoord van minstens 12 tekens."
    if len(password) > 256:
        return "Kies een wachtwoord van hoogstens 256 tekens."
    if len(set(password)) < 5:
        return "Kies een wachtwoord met meer verschillende tekens."
    return None
