"""The auth service's rules: what registry events ask of it, the facts it records about accounts
and sessions (one table each), TOTP codes without replay, lockout with growing delays, session
lifetimes. Pure: no I/O, no clock (times come in), no logging.

TOTP is RFC 6238 (30-second steps, 6 digits), computed by pyotp; what pyotp does not give us is
the replay rule of RFC 6238 section 5.2: a code is accepted for one step of clock drift either
side, and a step is never accepted twice, nor one older than the last accepted.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any, Literal
from uuid import UUID

import pyotp
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from zxcvbn import zxcvbn

from shared.contracts.envelope import RecordedEvent
from shared.contracts.events import (
    ERASED,
    AccountDisabled,
    AccountInvited,
    AccountLocked,
    AccountReinvited,
    ConsultantDeparted,
    ConsultantJoined,
    Event,
    FactorResetApproved,
    LoginFailed,
    LoginSucceeded,
    RecoveryCodeUsed,
    SecondFactorEnrolled,
    SessionEnded,
    StaffDeparted,
    StaffJoined,
    StaffRoleChanged,
)

STEP_SECONDS = 30
DRIFT_STEPS = 1

# Lockout: this many failures are free; then each further failure locks for a doubling time.
# A lock never shuts the rightful user out (see decide_password): it only makes a stranger's
# guesses worthless. And it decays: a counter whose last failure is this old starts again.
FREE_FAILURES = 5
FIRST_LOCK = timedelta(minutes=1)
LONGEST_LOCK = timedelta(hours=1)
FORGET_AFTER = timedelta(hours=1)

IDLE_TIMEOUT = timedelta(minutes=30)
ABSOLUTE_TIMEOUT = timedelta(hours=12)


def time_step(now: datetime) -> int:
    return int(now.timestamp()) // STEP_SECONDS


@dataclass(frozen=True)
class CodeAccepted:
    step: int


@dataclass(frozen=True)
class CodeRefused:
    reason: Literal["bad-code", "code-replayed", "bad-recovery-code", "bad-passkey"]


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
    last_failed_at: datetime | None = None

    def locked(self, now: datetime) -> bool:
        return self.locked_until is not None and now < self.locked_until

    def current(self, now: datetime) -> Failures:
        """Forgotten once the last failure is FORGET_AFTER old and no lock holds."""
        if self.last_failed_at is not None and now - self.last_failed_at >= FORGET_AFTER and not self.locked(now):
            return Failures()
        return self


def after_failure(failures: Failures, now: datetime) -> Failures:
    count = failures.current(now).count + 1
    if count < FREE_FAILURES:
        return Failures(count, None, now)
    lock = min(LONGEST_LOCK, FIRST_LOCK * 2 ** (count - FREE_FAILURES))
    return Failures(count, now + lock, now)


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


# Words a Dutch school's password is made of that zxcvbn's (English) lists do not know: a
# password built on them is as guessable as "password1" (NIST 800-63B 5.1.1.2: a blocklist of
# values known to be commonly used or expected).
GUESSABLE_WORDS = (
    "welkom", "wachtwoord", "kindkans", "ppo", "rotterdam", "school", "basisschool", "leerling", "juf",
    "meester", "klas", "groep", "zomer", "winter", "lente", "herfst", "vakantie", "maandag", "dinsdag",
    "woensdag", "donderdag", "vrijdag", "januari", "februari", "maart", "april", "mei", "juni", "juli",
    "augustus", "september", "oktober", "november", "december", "feyenoord", "ajax", "geheim", "hallo",
    "liefde", "schat", "voetbal", "samenveilig", "inloggen", "test",
)
# zxcvbn's score 4: at least 10^10 guesses ("very unguessable"). Score 3 (10^8) let
# "Herfst2026!!" and "Zomerzomer2025" through: a season, a year and a symbol is what people pick.
MIN_STRENGTH = 4


def valid_password(password: str, user_inputs: tuple[str, ...] = ()) -> str | None:
    """None when acceptable, else why not (in Dutch: shown to the user). `user_inputs`: words of
    this user (their address) that must not make the password."""
    if len(password) < 12:
        return "Kies een wachtwoord van minstens 12 tekens."
    if len(password) > 256:
        return "Kies een wachtwoord van hoogstens 256 tekens."
    if len(set(password)) < 5:
        return "Kies een wachtwoord met meer verschillende tekens."
    lowered = password.lower()
    if any(len(word) >= 4 and word.lower() in lowered for word in user_inputs):
        return "Gebruik uw naam of e-mailadres niet in uw wachtwoord."
    # zxcvbn's cost grows with length; what lies past 100 characters does not make it weaker.
    if zxcvbn(password[:100], user_inputs=[*user_inputs, *GUESSABLE_WORDS])["score"] < MIN_STRENGTH:
        return ("Dit wachtwoord is te makkelijk te raden. Kies bijvoorbeeld vier losse woorden die niets "
                "met school of uzelf te maken hebben.")
    return None


# --- the auth service's facts, and the one table that says which event changes them ----------
#
# What a registry event asks of auth is decided here (`REACTIONS`); carrying it out (a token, an
# invitation mail, rows) is the service's I/O. What auth records about accounts and sessions is
# folded from its own events (`EVOLVERS`), by the replay and, through `AuthService`, by nothing
# else: the live tables hold the same facts (`services.auth.projection`), which the property test
# proves for generated histories. Secrets (password hashes, TOTP secrets, recovery codes, token
# hashes) are never on the log: they are not facts to replay but credentials to lose with the
# database, after which the staff member is invited again.


@dataclass(frozen=True)
class Invite:
    """A staff member joined: an account, as if new, and an invitation to its address. The role
    and branch are what the provider's tokens tell relying parties."""

    staff_id: str
    email: str
    role: str
    branch_id: str | None


@dataclass(frozen=True)
class ChangeRole:
    staff_id: str
    role: str


@dataclass(frozen=True)
class Disable:
    """A staff member left: the account is disabled from `at`, and every session ends now."""

    staff_id: str
    at: datetime


Reaction = Invite | Disable | ChangeRole


def _joined(recorded: RecordedEvent) -> list[Reaction]:
    event = recorded.event
    assert isinstance(event, StaffJoined | ConsultantJoined)
    if str(event.email) == ERASED:  # a purged staff member's join, replayed: nobody to invite
        return []
    if isinstance(event, StaffJoined):
        return [Invite(str(event.staff_id), str(event.email).lower(), str(event.role), str(event.branch_id))]
    return [Invite(str(event.staff_id), str(event.email).lower(), "swv_consultant", None)]


def _role_changed(recorded: RecordedEvent) -> list[Reaction]:
    event = recorded.event
    assert isinstance(event, StaffRoleChanged)
    return [ChangeRole(str(event.staff_id), str(event.role))]


def _departed(recorded: RecordedEvent) -> list[Reaction]:
    event = recorded.event
    assert isinstance(event, StaffDeparted | ConsultantDeparted)
    return [Disable(str(event.staff_id), recorded.effective_at)]


REACTIONS: Mapping[type[Event], Callable[[RecordedEvent], list[Reaction]]] = MappingProxyType({
    StaffJoined: _joined,
    ConsultantJoined: _joined,
    StaffDeparted: _departed,
    ConsultantDeparted: _departed,
    StaffRoleChanged: _role_changed,
})
FOLLOWED_TYPES = frozenset(cls.event_type for cls in REACTIONS)


def react(recorded: RecordedEvent) -> list[Reaction]:
    reaction = REACTIONS.get(type(recorded.event))
    return reaction(recorded) if reaction else []


@dataclass(frozen=True)
class AccountFacts:
    enrolled: bool = False
    disabled_at: datetime | None = None


@dataclass(frozen=True)
class SessionFacts:
    staff_id: str
    second_factor: str
    ended_reason: str | None = None  # None while the session is active


@dataclass(frozen=True)
class AuthState:
    accounts: Mapping[str, AccountFacts] = field(default_factory=dict)
    sessions: Mapping[str, SessionFacts] = field(default_factory=dict)


INITIAL_STATE = AuthState()


def _invited(state: AuthState, recorded: RecordedEvent) -> AuthState:
    event = recorded.event
    assert isinstance(event, AccountInvited)
    return replace(state, accounts={**state.accounts, str(event.staff_id): AccountFacts()})


def _disabled(state: AuthState, recorded: RecordedEvent) -> AuthState:
    event = recorded.event
    assert isinstance(event, AccountDisabled)
    account = state.accounts.get(str(event.staff_id))
    if account is None:  # a departure of someone never invited (an erased join): nothing to disable
        return state
    return replace(state, accounts={**state.accounts,
                                    str(event.staff_id): replace(account, disabled_at=recorded.effective_at)})


def _enrolled(state: AuthState, recorded: RecordedEvent) -> AuthState:
    event = recorded.event
    assert isinstance(event, SecondFactorEnrolled)
    account = state.accounts.get(str(event.staff_id), AccountFacts())
    return replace(state, accounts={**state.accounts, str(event.staff_id): replace(account, enrolled=True)})


def _factor_reset(state: AuthState, recorded: RecordedEvent) -> AuthState:
    event = recorded.event
    assert isinstance(event, FactorResetApproved | AccountReinvited)
    account = state.accounts.get(str(event.staff_id), AccountFacts())
    return replace(state, accounts={**state.accounts, str(event.staff_id): replace(account, enrolled=False)})


def _session_started(state: AuthState, recorded: RecordedEvent) -> AuthState:
    event = recorded.event
    assert isinstance(event, LoginSucceeded)
    session = SessionFacts(str(event.staff_id), event.second_factor)
    return replace(state, sessions={**state.sessions, str(event.session_id): session})


def _session_ended(state: AuthState, recorded: RecordedEvent) -> AuthState:
    event = recorded.event
    assert isinstance(event, SessionEnded)
    session = state.sessions.get(str(event.session_id))
    if session is None or session.ended_reason is not None:
        return state
    return replace(state, sessions={**state.sessions, str(event.session_id): replace(session,
                                                                                      ended_reason=event.reason)})


EVOLVERS: Mapping[type[Event], Callable[[AuthState, RecordedEvent], AuthState]] = MappingProxyType({
    AccountInvited: _invited,
    AccountDisabled: _disabled,
    SecondFactorEnrolled: _enrolled,
    FactorResetApproved: _factor_reset,
    AccountReinvited: _factor_reset,
    LoginSucceeded: _session_started,
    SessionEnded: _session_ended,
})
FOLDED_TYPES = frozenset(cls.event_type for cls in EVOLVERS)


def evolve(state: AuthState, recorded: RecordedEvent) -> AuthState:
    """The replay's step over auth.events.v1."""
    evolver = EVOLVERS.get(type(recorded.event))
    return evolver(state, recorded) if evolver else state


# --- the two login steps, decided: what the caller proved in, the counters and events out ----
#
# The service reads the account and the failure counters, asks what to do, verifies what it is
# told to verify (argon2, the TOTP code, a recovery code: the expensive or consuming checks happen
# only once nothing rules the attempt out), asks again with the verdict, and stores and emits
# what comes back. The answer to the user never says whether an account exists.

GENERIC_FAILURE = "Onjuiste gebruikersnaam of wachtwoord, of het account is (tijdelijk) geblokkeerd."
CODE_FAILURE = "De code klopt niet of is al gebruikt, of het account is (tijdelijk) geblokkeerd."
ENROL_FIRST = ("Rond eerst de tweestapsverificatie af. We hebben u een nieuwe link gemaild waarmee u verdergaat "
               "waar u gebleven was.")

LoginFailure = Literal["bad-password", "bad-code", "code-replayed", "bad-recovery-code", "bad-passkey", "locked",
                       "unknown-account", "account-disabled", "not-enrolled"]


@dataclass(frozen=True)
class AccountView:
    """What a login step needs to know of an account (no secrets)."""

    staff_id: str
    has_password: bool
    enrolled: bool
    disabled_at: datetime | None

    def disabled(self, now: datetime) -> bool:
        return self.disabled_at is not None and self.disabled_at <= now


@dataclass(frozen=True)
class Verify:
    """Nothing rules the attempt out: check the secret now (`against_dummy`: there is no real
    hash to check, check a dummy one so that the answer takes as long)."""

    against_dummy: bool = False


@dataclass(frozen=True)
class StepDecided:
    accepted: bool
    failures: Mapping[str, Failures]  # the counters to store
    events: tuple[Event, ...]
    message: str | None = None  # Dutch, for the user, when refused
    # The password step while the name is locked: the answer is the code step whether the
    # password was right or not, so a stranger's guesses tell nothing; only `accepted` (the
    # right password) gives the code step a chance to open a session.
    blind: bool = False
    # Right password, enrolment never finished: mail a fresh enrolment link.
    resume_enrolment: bool = False


def name_key(username: str) -> str:
    """The password counter of a login name: the same for a name with an account and without,
    so that locking tells nothing about which names exist (and keeps no address in the table)."""
    return "password|name|" + hashlib.sha256(username.strip().lower().encode()).hexdigest()[:40]


def password_keys(username: str) -> list[str]:
    """The counters a password attempt counts against. A peer address is throttled, not
    counted (`shared.ratelimit`): one school's shared address must not lock its staff out."""
    return [name_key(username)]


def code_keys(staff_id: str, username: str) -> list[str]:
    """The code step counts against the account's code counter; a session opened resets the
    password counter too."""
    return [f"code|account|{staff_id}", name_key(username)]


def decide_password(account: AccountView | None, failures: Mapping[str, Failures], client: str, now: datetime,
                    verified: bool | None) -> Verify | StepDecided:
    """The password step. `verified`: None before the hash was checked, then its outcome. The
    hash (or a dummy) is checked for every attempt, locked or not: every refusal takes as long."""
    if verified is None:
        return Verify(against_dummy=account is None or not account.has_password)
    staff_id = account.staff_id if account else None
    failures = {key: value.current(now) for key, value in failures.items()}
    locked = any(f.locked(now) for f in failures.values())
    right = account is not None and account.has_password and verified
    if locked:
        # Whatever was typed, on to the code step: a stranger cannot keep the rightful user out,
        # who passes with the second factor; a wrong password makes that step refuse.
        if right and account is not None and account.enrolled and not account.disabled(now):
            return StepDecided(True, {}, (), blind=True)
        return replace(_refused("locked", "password", staff_id, client, {} if right else failures, now,
                                CODE_FAILURE), blind=True)
    if account is None or not account.has_password:
        return _refused("unknown-account" if account is None else "not-enrolled", "password", staff_id, client,
                        failures, now, GENERIC_FAILURE)
    if not verified:
        return _refused("bad-password", "password", staff_id, client, failures, now, GENERIC_FAILURE)
    if account.disabled(now):
        return _refused("account-disabled", "password", staff_id, client, {}, now, GENERIC_FAILURE)
    if not account.enrolled:
        return replace(_refused("not-enrolled", "password", staff_id, client, {}, now, ENROL_FIRST),
                       resume_enrolment=True)
    return StepDecided(True, {key: AFTER_SUCCESS for key in failures}, ())


@dataclass(frozen=True)
class RecoveryCodeAccepted:
    remaining: int


@dataclass(frozen=True)
class PasskeyAccepted:
    """A passkey's assertion checked out, with user verification."""


def decide_code(account: AccountView, failures: Mapping[str, Failures], client: str, now: datetime,
                verdict: CodeAccepted | CodeRefused | RecoveryCodeAccepted | PasskeyAccepted | None,
                session_id: str) -> Verify | StepDecided:
    """The second step, after a password that was right. `verdict`: None before the code was
    checked; then the TOTP verdict, a recovery code accepted, or refused ("bad-recovery-code")."""
    failures = {key: value.current(now) for key, value in failures.items()}
    codes = {key: value for key, value in failures.items() if key.startswith("code|")}
    if any(f.locked(now) for f in codes.values()):
        return _refused("locked", "code", account.staff_id, client, {}, now, CODE_FAILURE)
    if account.disabled(now):
        return _refused("account-disabled", "code", account.staff_id, client, {}, now, CODE_FAILURE)
    if verdict is None:
        return Verify()
    if isinstance(verdict, CodeRefused):
        return _refused(verdict.reason, "code", account.staff_id, client, codes, now, CODE_FAILURE)
    staff = UUID(account.staff_id)
    used: tuple[Event, ...] = ((RecoveryCodeUsed(staff_id=staff, remaining=verdict.remaining),)
                               if isinstance(verdict, RecoveryCodeAccepted) else ())
    factor: Literal["totp", "recovery-code", "passkey"] = (
        "recovery-code" if used else "passkey" if isinstance(verdict, PasskeyAccepted) else "totp")
    return StepDecided(True, {key: AFTER_SUCCESS for key in failures},
                       (*used, LoginSucceeded(staff_id=staff, session_id=UUID(session_id), second_factor=factor)))


def _refused(reason: LoginFailure, factor: Literal["password", "code"],
             staff_id: str | None, client: str, counted: Mapping[str, Failures], now: datetime,
             message: str) -> StepDecided:
    """A refusal: each counted key one failure more (a lock when that crosses the line, an
    AccountLocked the moment an account's counter locks), and the LoginFailed that says why."""
    after = {key: after_failure(before, now) for key, before in counted.items()}
    events: list[Event] = [
        AccountLocked(staff_id=UUID(staff_id), factor=factor, until=after[key].locked_until)
        for key, before in counted.items()
        if staff_id and after[key].locked(now) and not before.locked(now)]
    events.append(LoginFailed(staff_id=UUID(staff_id) if staff_id else None, reason=reason,
                              client=client[:200] or "unknown"))
    return StepDecided(False, after, tuple(events), message)


# --- the OpenID Connect provider's rules ------------------------------------------------------
#
# Lifetimes, PKCE, what an authorization code and a refresh token may be exchanged for, and what
# a token says about how its holder logged in. The provider (provider.py) signs and stores.

CODE_LIFETIME = timedelta(minutes=1)
ACCESS_TOKEN_LIFETIME = timedelta(minutes=5)
ID_TOKEN_LIFETIME = timedelta(minutes=5)
# A signing key is published this long after it stopped signing: every token it signed has
# expired by then (and a minute of clock skew).
KEY_PUBLISHED_AFTER_RETIREMENT = max(ACCESS_TOKEN_LIFETIME, ID_TOKEN_LIFETIME) + timedelta(minutes=1)
LOGOUT_TOKEN_LIFETIME = timedelta(minutes=2)
# Back-channel logout retries: 1 s, 2 s, 4 s ... at most every 10 minutes, for a day.
LOGOUT_RETRY_FIRST = timedelta(seconds=1)
LOGOUT_RETRY_LONGEST = timedelta(minutes=10)
LOGOUT_GIVE_UP_AFTER = timedelta(days=1)

# RFC 7636 section 4.1: 43 to 128 characters of [A-Za-z0-9-._~].
_VERIFIER_CHARACTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def pkce_matches(challenge: str, verifier: str) -> bool:
    """S256 only: the plain method would let whoever saw the request redeem the code."""
    if not 43 <= len(verifier) <= 128 or not set(verifier) <= _VERIFIER_CHARACTERS:
        return False
    return hmac.compare_digest(create_s256_code_challenge(verifier), challenge)


@dataclass(frozen=True)
class CodeGrant:
    """What an authorization code was issued for."""

    client_id: str
    redirect_uri: str
    code_challenge: str
    expires_at: datetime
    used: bool


def decide_code_exchange(code: CodeGrant | None, client_id: str, redirect_uri: str, verifier: str,
                         now: datetime) -> Literal["issue", "replayed", "invalid"]:
    """RFC 6749 section 4.1.3 with PKCE: the code once, by the client it was issued to, with the
    same redirect URI and the verifier of its challenge. A replayed code revokes what the first
    exchange gave (section 4.1.2)."""
    if code is None or code.client_id != client_id:
        return "invalid"
    if code.used:
        return "replayed"
    if now >= code.expires_at or code.redirect_uri != redirect_uri or not pkce_matches(code.code_challenge, verifier):
        return "invalid"
    return "issue"


@dataclass(frozen=True)
class RefreshGrant:
    client_id: str
    expires_at: datetime
    rotated: bool
    revoked: bool


def decide_refresh(token: RefreshGrant | None, client_id: str, now: datetime, session_active: bool
                   ) -> Literal["rotate", "reuse", "invalid"]:
    """A refresh token is used once and replaced (rotation); a second use of one means it was
    stolen, so its whole family dies (OAuth 2.0 Security BCP, RFC 9700 section 4.14.2). It dies
    with its session too: a departure or a logout ends what any client holds."""
    if token is None or token.client_id != client_id or token.revoked:
        return "invalid"
    if token.rotated:
        return "reuse"
    if now >= token.expires_at or not session_active:
        return "invalid"
    return "rotate"


def authentication_methods(second_factor: str) -> list[str]:
    """The `amr` claim (RFC 8176): a password and the second factor the session was opened with."""
    return ["pwd", {"totp": "otp", "recovery-code": "otp", "passkey": "hwk"}.get(second_factor, "otp"), "mfa"]


def token_audience(client_id: str, scopes: Iterable[str]) -> str | list[str]:
    """An access token is meant for its client and for every API whose scopes it carries
    (`access:read` -> the access API, resource name "access"): the API checks its own name."""
    resources = sorted({scope.split(":", 1)[0] for scope in scopes if ":" in scope})
    return [client_id, *resources] if resources else client_id


def granted_scopes(requested: str, allowed: list[str]) -> list[str] | None:
    """A client-credentials request may ask for any of the client's scopes; None when it asks for
    one it does not have."""
    asked = requested.split() or list(allowed)
    return asked if set(asked) <= set(allowed) else None


TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"  # noqa: S105 (a grant name)
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"  # noqa: S105 (a token type)


def decide_token_exchange(subject: Mapping[str, Any] | None, client_id: str, client_scopes: Iterable[str],
                          requested: str) -> list[str] | str:
    """RFC 8693: a service (the Kindkans backend) acting for the person who logged in to it. It
    presents that person's access token (issued to this same client, not itself already an
    exchanged one) and gets a token for the APIs with the person as subject and itself as actor
    (`act`), with no scope the person's token or the client lacks. The scopes, or why not."""
    if subject is None:
        return "the subject token is not a valid access token of ours"
    if not subject.get("role"):
        return "the subject token is not a person's"
    if "act" in subject:
        return "the subject token is already an exchanged one"
    if subject.get("client_id") != client_id:
        return "the subject token was issued to another client"
    held = set(str(subject.get("scope", "")).split()) & set(client_scopes)
    asked = requested.split() or sorted(held)
    if not asked or not set(asked) <= held:
        return "the person's token or the client lacks a scope asked for"
    return asked


def next_logout_attempt(attempts: int, first_at: datetime, now: datetime) -> datetime | None:
    """When to try a back-channel logout again after `attempts` failed tries; None: give up."""
    if now - first_at >= LOGOUT_GIVE_UP_AFTER:
        return None
    pause: timedelta = min(LOGOUT_RETRY_LONGEST, LOGOUT_RETRY_FIRST * 2 ** min(attempts, 20))
    return now + pause


# --- the four-eyes reset of a lost second factor, and a re-invitation -------------------------
#
# A lost phone is not reset by e-mail alone (whoever holds the mailbox would hold the account),
# nor by one person: an SWV admin asks, with a reason, a second admin approves, and only then
# does the staff member get a fresh single-use enrolment link. Never the same admin twice, never
# for oneself. Refusals are Dutch: the admins read them.

RESET_REQUEST_LIFETIME = timedelta(days=7)
RESET_LINK_LIFETIME = timedelta(hours=24)


@dataclass(frozen=True)
class ResetRequest:
    reset_id: str
    staff_id: str
    requested_by: str
    requested_at: datetime
    approved_at: datetime | None


def refuse_reset_request(admin: str, admin_is_admin: bool, target: AccountView | None, now: datetime) -> str | None:
    """None when the admin may ask to reset the target's second factor, else why not."""
    if not admin_is_admin:
        return "Alleen een beheerder van het samenwerkingsverband kan dit doen."
    if target is None or target.disabled(now):
        return "Er is geen actief account met dit e-mailadres."
    if target.staff_id == admin:
        return "U kunt niet uw eigen tweede factor herstellen; vraag een andere beheerder."
    if not target.enrolled:
        return "Dit account heeft nog geen tweede factor: stuur een nieuwe uitnodiging."
    return None


def refuse_reset_approval(reset: ResetRequest | None, approver: str, approver_is_admin: bool,
                          now: datetime) -> str | None:
    """None when the approver may approve the request, else why not."""
    if not approver_is_admin:
        return "Alleen een beheerder van het samenwerkingsverband kan dit doen."
    if reset is None or reset.approved_at is not None:
        return "Dit verzoek bestaat niet of is al afgehandeld."
    if now >= reset.requested_at + RESET_REQUEST_LIFETIME:
        return "Dit verzoek is verlopen; dien een nieuw verzoek in."
    if approver == reset.requested_by:
        return "Een tweede beheerder moet het verzoek goedkeuren, niet degene die het indiende."
    if approver == reset.staff_id:
        return "U kunt geen herstel van uw eigen account goedkeuren."
    return None


def refuse_reinvitation(admin_is_admin: bool, target: AccountView | None, now: datetime) -> str | None:
    """A re-invitation by one admin is only for an account that never finished its enrolment:
    an enrolled account's factor is reset with four eyes."""
    if not admin_is_admin:
        return "Alleen een beheerder van het samenwerkingsverband kan dit doen."
    if target is None or target.disabled(now):
        return "Er is geen actief account met dit e-mailadres."
    if target.enrolled:
        return "Dit account is al in gebruik; herstel een verloren tweede factor via een verzoek met goedkeuring."
    return None
