"""The auth service: accounts from registry events, invitation, TOTP enrolment, login with two
factors, sessions, and their end when staff depart. Each method runs in the caller's transaction."""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.engine import Connection, Row
from sqlalchemy.exc import NoResultFound

from services.auth import store
from services.auth.domain import (
    CODE_FAILURE,
    RESET_LINK_LIFETIME,
    AccountView,
    ChangeRole,
    CodeAccepted,
    CodeRefused,
    Failures,
    Invite,
    PasskeyAccepted,
    RecoveryCodeAccepted,
    ResetRequest,
    Session,
    StepDecided,
    Verify,
    code_keys,
    decide_code,
    decide_password,
    password_keys,
    react,
    refuse_reinvitation,
    refuse_reset_approval,
    refuse_reset_request,
    session_state,
    valid_password,
    verify_code,
)
from services.auth.passkeys import WebAuthn, b64url, challenge_of, from_b64url, passkey_id
from services.auth.provider import OpenIdProvider
from shared import dutch
from shared.clock import Clock
from shared.contracts.envelope import EventCodec, RecordedEvent, derived_id
from shared.contracts.events import (
    AccountDisabled,
    AccountInvited,
    AccountReinvited,
    Event,
    FactorResetApproved,
    FactorResetRequested,
    LoginSucceeded,
    PasskeyRemoved,
    SecondFactorEnrolled,
    SessionEnded,
)
from shared.crypto import seal, unseal
from shared.outbox import Outbox, enqueue_mail

INVITATION_LIFETIME = timedelta(days=14)
ENROLMENT_LIFETIME = timedelta(minutes=15)
CHALLENGE_LIFETIME = timedelta(minutes=5)
PASSKEY_CHALLENGE_LIFETIME = timedelta(minutes=2)
RECOVERY_CODES = 10
LAST_SEEN_RESOLUTION = timedelta(minutes=1)
ISSUER = "Kindkans (PPO Rotterdam)"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_recovery_code() -> str:
    # 16 base32 characters: 80 bits, so a fast hash is enough (no offline guessing).
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
    raw = "".join(secrets.choice(alphabet) for _ in range(16))
    return "-".join(raw[i:i + 4] for i in range(0, 16, 4))


def normalise_recovery_code(code: str) -> str:
    return code.replace("-", "").replace(" ", "").upper()


@dataclass(frozen=True)
class Enrolment:
    secret: str
    provisioning_uri: str
    username: str


@dataclass(frozen=True)
class LoginResult:
    ok: bool
    token: str | None = None  # the challenge after a password, the session token after a code
    message: str | None = None  # Dutch, for the user; never says whether the account exists




class AuthService:
    def __init__(self, codec: EventCodec, clock: Clock, master_key: bytes, hasher: PasswordHasher,
                 auth_url: str, mail_domain: str) -> None:
        self._codec = codec
        self._outbox = Outbox(store.outbox, codec)
        self._clock = clock
        self._master = master_key
        self._hasher = hasher
        self._auth_url = auth_url.rstrip("/")
        self._mail_domain = mail_domain
        self.provider = OpenIdProvider(clock, master_key, auth_url)
        self.webauthn = WebAuthn(auth_url)
        # Verified against when the account does not exist, so both answers take as long.
        self._dummy_hash = hasher.hash(secrets.token_urlsafe(16))

    # --- registry events -------------------------------------------------------------------

    def apply(self, recorded: RecordedEvent, connection: Connection) -> None:
        """A registry event, through the domain's table of what each asks of auth."""
        for reaction in react(recorded):
            if isinstance(reaction, Invite):
                self._invite(recorded, reaction.staff_id, reaction.email, connection)
                store.set_staff_facts(connection, reaction.staff_id, reaction.role, reaction.branch_id)
            elif isinstance(reaction, ChangeRole):
                store.set_role(connection, reaction.staff_id, reaction.role)
            else:
                self.disable(connection, reaction.staff_id, reaction.at, cause=recorded)

    def _invite(self, recorded: RecordedEvent, staff_id: str, email: str, connection: Connection) -> None:
        now = self._clock.now()
        if store.find_account(connection, staff_id) is None:
            store.add_account(connection, staff_id, email, now)
        else:  # a re-hire: a fresh start, nothing of the old credentials survives (nor a session)
            store.reset_account(connection, staff_id, email, now)
            store.drop_recovery_codes(connection, staff_id)
            store.drop_tokens_of(connection, staff_id)
            self._end_sessions(connection, staff_id, "re-invited", recorded)
        self._mail_link(connection, INVITATION_MAIL, staff_id, email, f"<{recorded.id}.invite@{self._mail_domain}>")
        self._emit(connection, AccountInvited(staff_id=uuid.UUID(staff_id), expires_at=now + INVITATION_LIFETIME),
                   derived_id("auth", recorded.id, "invited"), recorded)

    def disable(self, connection: Connection, staff_id: str, effective_at: datetime,
                cause: RecordedEvent | None = None) -> int:
        """Departed: the account is disabled and every session ends, at once and for good."""
        store.disable_account(connection, staff_id, effective_at)
        store.drop_tokens_of(connection, staff_id)
        ended = self._end_sessions(connection, staff_id, "staff departed", cause)
        if cause is not None:
            self._emit(connection, AccountDisabled(staff_id=uuid.UUID(staff_id), reason="staff departed"),
                       derived_id("auth", cause.id, "disabled"), cause)
        return ended

    def _end_sessions(self, connection: Connection, staff_id: str, reason: str, cause: RecordedEvent | None) -> int:
        ended = store.end_sessions_of(connection, staff_id, self._clock.now(), reason)
        for session_id in ended:
            self.provider.session_ended(connection, session_id, staff_id)
            self._emit(connection, SessionEnded(staff_id=uuid.UUID(staff_id), session_id=uuid.UUID(session_id),
                                                reason=reason),
                       derived_id("auth", session_id, "ended"), cause)
        return len(ended)

    # --- invitation and enrolment ----------------------------------------------------------

    def set_password(self, connection: Connection, invitation: str, password: str) -> tuple[str | None, str | None]:
        """Returns (enrolment token, None) or (None, Dutch message)."""
        invited = self._peek(connection, "invitation", invitation)
        if invited is None:
            return None, "Deze uitnodiging is ongeldig, verlopen of al gebruikt."
        problem = valid_password(password, _words_of(self._account(connection, invited).username))
        if problem:
            return None, problem
        staff_id = self._redeem(connection, "invitation", invitation)
        assert staff_id == invited
        store.set_password_hash(connection, staff_id, self._hasher.hash(password))
        return self._issue_token(connection, "enrolment", staff_id, self._clock.now() + ENROLMENT_LIFETIME), None

    def start_enrolment(self, connection: Connection, enrolment: str) -> Enrolment | None:
        """A fresh secret, shown once; it only counts after the first valid code."""
        staff_id = self._peek(connection, "enrolment", enrolment)
        if staff_id is None:
            return None
        account = self._account(connection, staff_id)
        secret = pyotp.random_base32()
        store.set_pending_totp(connection, staff_id, seal(self._master, secret.encode(), staff_id.encode()))
        uri = pyotp.TOTP(secret).provisioning_uri(name=account.username, issuer_name=ISSUER)
        return Enrolment(secret, uri, account.username)

    def finish_enrolment(self, connection: Connection, enrolment: str, code: str) -> list[str] | None:
        """The first valid code completes enrolment; returns the recovery codes, shown once."""
        staff_id = self._peek(connection, "enrolment", enrolment)
        if staff_id is None:
            return None
        account = self._account(connection, staff_id)
        if account.totp_pending is None:
            return None
        secret = unseal(self._master, account.totp_pending, staff_id.encode()).decode()
        outcome = verify_code(secret, code, self._clock.now(), None)
        if not isinstance(outcome, CodeAccepted):
            return None
        self._redeem(connection, "enrolment", enrolment)
        codes = [new_recovery_code() for _ in range(RECOVERY_CODES)]
        store.replace_recovery_codes(connection, staff_id,
                                     [token_hash(normalise_recovery_code(recovery)) for recovery in codes])
        store.complete_enrolment(connection, staff_id, account.totp_pending, self._clock.now(), outcome.step)
        self._emit(connection, SecondFactorEnrolled(staff_id=uuid.UUID(staff_id)), str(uuid.uuid4()), None)
        return codes

    # --- login -------------------------------------------------------------------------------

    def login_password(self, connection: Connection, username: str, password: str, client: str) -> LoginResult:
        now = self._clock.now()
        row = store.find_account_by_username(connection, username.strip().lower())
        account = _view(row)
        failures = self._failures(connection, password_keys(username))
        step = decide_password(account, failures, client, now, None)
        assert isinstance(step, Verify)
        # The same work for every attempt (unknown name, locked name, wrong or right password):
        # timing tells nothing.
        verified = self._verify(self._dummy_hash if step.against_dummy or row is None else row.password_hash,
                                password)
        decided = decide_password(account, failures, client, now, verified)
        assert isinstance(decided, StepDecided)
        self._carry_out(connection, decided)
        if decided.resume_enrolment and row is not None:
            self._mail_enrolment_link(connection, row)
        if decided.accepted and account is not None:
            return LoginResult(True, token=self._issue_token(connection, "challenge", account.staff_id,
                                                             now + CHALLENGE_LIFETIME))
        if decided.blind:
            # A challenge that no code can pass: the answer looks like the right password's.
            return LoginResult(True, token=self._issue_token(connection, "dead-challenge", "",
                                                             now + CHALLENGE_LIFETIME))
        return LoginResult(False, message=decided.message)

    def _mail_enrolment_link(self, connection: Connection, row: Row[Any]) -> None:
        """A half-finished enrolment goes on where it stopped: a fresh link to the address the
        invitation went to (whoever typed the password must also read that mailbox)."""
        self._mail_link(connection, RESUME_MAIL, row.staff_id, row.username,
                        f"<{uuid.uuid4()}.enrol@{self._mail_domain}>")

    def login_code(self, connection: Connection, challenge: str, code: str, client: str) -> LoginResult:
        """The second factor: a TOTP code, or a recovery code (single use)."""
        return self._second_step(connection, challenge, client,
                                 lambda row: self._check_code(connection, row, code, self._clock.now()))

    def _second_step(self, connection: Connection, challenge: str, client: str,
                     check: Callable[[Row[Any]], CodeAccepted | CodeRefused | RecoveryCodeAccepted | PasskeyAccepted]
                     ) -> LoginResult:
        """The second step, whatever the factor: `check` verifies it once nothing rules the
        attempt out; a session opens when the domain accepts."""
        now = self._clock.now()
        staff_id = self._peek(connection, "challenge", challenge)
        if staff_id is None:
            if self._redeem(connection, "dead-challenge", challenge) is not None:
                # After a locked name's wrong password: refused, the factor never looked at (the
                # failure was counted at the password step).
                return LoginResult(False, message=CODE_FAILURE)
            return LoginResult(False, message="Uw inlogpoging is verlopen. Log opnieuw in.")
        row = self._account(connection, staff_id)
        account = _view(row)
        assert account is not None
        failures = self._failures(connection, code_keys(staff_id, row.username))
        session_id = str(uuid.uuid4())
        step = decide_code(account, failures, client, now, None, session_id)
        if isinstance(step, Verify):
            step = decide_code(account, failures, client, now, check(row), session_id)
        assert isinstance(step, StepDecided)
        if not step.accepted:
            self._carry_out(connection, step)
            return LoginResult(False, message=step.message)
        self._redeem(connection, "challenge", challenge)
        token = secrets.token_urlsafe(32)
        factor = next(e.second_factor for e in step.events if isinstance(e, LoginSucceeded))
        store.add_session(connection, session_id, token_hash(token), staff_id, now, factor)
        self._carry_out(connection, step)
        return LoginResult(True, token=token)

    def _check_code(self, connection: Connection, row: Row[Any], code: str, now: datetime
                    ) -> CodeAccepted | CodeRefused | RecoveryCodeAccepted:
        """A TOTP code (its step recorded at once: never accepted twice), else a recovery code
        (used up at once)."""
        cleaned = code.strip().replace(" ", "")
        if len(cleaned) == 6 and cleaned.isdigit():
            secret = unseal(self._master, row.totp_secret, row.staff_id.encode()).decode()
            outcome = verify_code(secret, cleaned, now, row.last_step)
            # The step is taken in the statement that accepts it: of parallel logins with one
            # code, one wins and the others find the step used (row.last_step was read before).
            if isinstance(outcome, CodeAccepted) and not store.take_step(connection, row.staff_id, outcome.step):
                return CodeRefused("code-replayed")
            return outcome
        digest = token_hash(normalise_recovery_code(cleaned))
        if not store.use_recovery_code(connection, row.staff_id, digest, now):
            return CodeRefused("bad-recovery-code")
        return RecoveryCodeAccepted(store.unused_recovery_codes(connection, row.staff_id))

    def _failures(self, connection: Connection, keys: list[str]) -> dict[str, Failures]:
        return {key: store.load_failures(connection, key) for key in keys}

    def _carry_out(self, connection: Connection, step: StepDecided) -> None:
        for key, failures in step.failures.items():
            store.save_failures(connection, key, failures)
        for event in step.events:
            self._emit(connection, event, str(uuid.uuid4()), None)

    # --- passkeys ---------------------------------------------------------------------------

    def passkeys(self, connection: Connection, staff_id: str) -> list[Row[Any]]:
        return store.passkeys_of(connection, staff_id)

    def passkey_registration_options(self, connection: Connection, staff_id: str) -> str:
        """For a logged-in staff member: the options of a new passkey (a fresh challenge, kept
        hashed and single-use for two minutes)."""
        account = self._account(connection, staff_id)
        challenge = secrets.token_bytes(32)
        store.add_token(connection, token_hash(b64url(challenge)), "passkey-register", staff_id,
                        self._clock.now() + PASSKEY_CHALLENGE_LIFETIME)
        existing = [row.credential_id for row in store.passkeys_of(connection, staff_id)]
        return self.webauthn.registration_options(staff_id, account.username, existing, challenge)

    def register_passkey(self, connection: Connection, staff_id: str, credential: dict[str, Any], name: str) -> bool:
        challenge = challenge_of(credential)
        if challenge is None or self._redeem(connection, "passkey-register", challenge) != staff_id:
            return False
        new = self.webauthn.verify_registration(credential, from_b64url(challenge))
        if new is None or store.find_passkey(connection, new.credential_id) is not None:
            return False
        store.add_passkey(connection, new.credential_id, staff_id, new.public_key, new.sign_count,
                          name.strip()[:100] or "Passkey", self._clock.now())
        self._emit(connection, SecondFactorEnrolled(staff_id=uuid.UUID(staff_id), method="passkey"),
                   str(uuid.uuid4()), None)
        return True

    def remove_passkey(self, connection: Connection, staff_id: str, credential_id: str) -> bool:
        if not store.remove_passkey(connection, staff_id, credential_id[:1400]):
            return False
        self._emit(connection, PasskeyRemoved(staff_id=uuid.UUID(staff_id), passkey_id=passkey_id(credential_id)),
                   str(uuid.uuid4()), None)
        return True

    def passkey_login_options(self, connection: Connection, challenge: str) -> str | None:
        """The second step with a passkey, after the password: its options, or None when the
        login's challenge is not a live one. The options are the same for every account and for a
        locked name's dead challenge (no list of the account's credentials: passkeys are
        discoverable), so they tell nothing about the account or the password."""
        staff_id = self._peek(connection, "challenge", challenge)
        if staff_id is None and self._peek(connection, "dead-challenge", challenge) is None:
            return None
        nonce = secrets.token_bytes(32)
        store.add_token(connection, token_hash(b64url(nonce)), "passkey-login", staff_id or "",
                        self._clock.now() + PASSKEY_CHALLENGE_LIFETIME)
        return self.webauthn.authentication_options(nonce)

    def login_passkey(self, connection: Connection, challenge: str, credential: dict[str, Any],
                      client: str) -> LoginResult:
        """The second step with a passkey instead of a code; the same counters and events."""
        return self._second_step(connection, challenge, client,
                                 lambda row: self._check_passkey(connection, row.staff_id, credential))

    def _check_passkey(self, connection: Connection, staff_id: str, credential: dict[str, Any]
                       ) -> PasskeyAccepted | CodeRefused:
        nonce = challenge_of(credential)
        passkey = store.find_passkey(connection, str(credential.get("id", ""))[:1400])
        if nonce is None or passkey is None or passkey.staff_id != staff_id \
                or self._redeem(connection, "passkey-login", nonce) != staff_id:
            return CodeRefused("bad-passkey")
        count = self.webauthn.verify_authentication(credential, from_b64url(nonce), passkey.public_key,
                                                    passkey.sign_count)
        # The counter moves on in the statement that checks it has not moved meanwhile.
        if count is None or not store.use_passkey(connection, passkey.credential_id, passkey.sign_count, count,
                                                  self._clock.now()):
            return CodeRefused("bad-passkey")
        return PasskeyAccepted()

    # --- SWV admins: the four-eyes reset of a lost second factor, and re-invitations --------

    def is_admin(self, connection: Connection, staff_id: str) -> bool:
        return store.is_admin(connection, staff_id)

    def request_reset(self, connection: Connection, admin: str, username: str, reason: str) -> tuple[str | None, str]:
        """(the reset's id, a Dutch message) or (None, why not)."""
        now = self._clock.now()
        row = store.find_account_by_username(connection, username.strip().lower())
        refusal = refuse_reset_request(admin, store.is_admin(connection, admin), _view(row), now)
        if refusal or row is None:
            return None, refusal or ""
        reset_id = str(uuid.uuid4())
        store.add_factor_reset(connection, reset_id, row.staff_id, admin, now)
        self._emit(connection, FactorResetRequested(staff_id=uuid.UUID(row.staff_id), reset_id=uuid.UUID(reset_id),
                                                    requested_by=uuid.UUID(admin), reason=reason),
                   derived_id("auth", reset_id, "requested"), None)
        return reset_id, "Het verzoek is ingediend. Een tweede beheerder moet het goedkeuren."

    def pending_resets(self, connection: Connection) -> list[Row[Any]]:
        return store.pending_factor_resets(connection)

    def approve_reset(self, connection: Connection, approver: str, reset_id: str) -> tuple[bool, str]:
        now = self._clock.now()
        row = store.find_factor_reset(connection, reset_id[:36])
        reset = None if row is None else ResetRequest(row.reset_id, row.staff_id, row.requested_by, row.requested_at,
                                                      row.approved_at)
        refusal = refuse_reset_approval(reset, approver, store.is_admin(connection, approver), now)
        if refusal or row is None or not store.approve_factor_reset(connection, row.reset_id, approver, now):
            return False, refusal or "Dit verzoek bestaat niet of is al afgehandeld."
        account = self._account(connection, row.staff_id)
        store.drop_second_factor(connection, row.staff_id)
        store.drop_tokens_of(connection, row.staff_id)
        self._emit(connection, FactorResetApproved(staff_id=uuid.UUID(row.staff_id), reset_id=uuid.UUID(row.reset_id),
                                                   approved_by=uuid.UUID(approver)),
                   derived_id("auth", row.reset_id, "approved"), None)
        self._end_sessions(connection, row.staff_id, "second factor reset", None)
        self._mail_link(connection, RESET_MAIL, row.staff_id, account.username,
                        f"<{row.reset_id}.reset@{self._mail_domain}>")
        return True, "Goedgekeurd. De medewerker krijgt een link om een nieuwe app te koppelen."

    def reinvite(self, connection: Connection, admin: str, username: str) -> tuple[bool, str]:
        """A fresh invitation for an account that never finished its enrolment (a lost mail, an
        expired link, a browser closed halfway)."""
        now = self._clock.now()
        row = store.find_account_by_username(connection, username.strip().lower())
        refusal = refuse_reinvitation(store.is_admin(connection, admin), _view(row), now)
        if refusal or row is None:
            return False, refusal or ""
        store.reset_account(connection, row.staff_id, row.username, now)
        store.drop_recovery_codes(connection, row.staff_id)
        store.drop_tokens_of(connection, row.staff_id)
        self._end_sessions(connection, row.staff_id, "re-invited", None)
        self._mail_link(connection, INVITATION_MAIL, row.staff_id, row.username,
                        f"<{uuid.uuid4()}.invite@{self._mail_domain}>")
        self._emit(connection, AccountReinvited(staff_id=uuid.UUID(row.staff_id), invited_by=uuid.UUID(admin),
                                                expires_at=now + INVITATION_LIFETIME), str(uuid.uuid4()), None)
        return True, "Er is een nieuwe uitnodiging verstuurd."

    # --- sessions ---------------------------------------------------------------------------

    def introspect(self, connection: Connection, token: str) -> dict[str, Any]:
        now = self._clock.now()
        row = store.find_session(connection, token_hash(token))
        if row is None:
            return {"active": False}
        account = self._account(connection, row.staff_id)
        session = Session(row.session_id, row.staff_id, row.created_at, row.last_seen_at,
                          row.ended_at if not row.active else None)
        state = session_state(session, now, account.disabled_at)
        if state != "active":
            reason = {"idle": "idle", "expired": "expired", "account-disabled": "account disabled"}.get(state)
            # Only a session still marked active is ended here: a departure processed meanwhile
            # already ended it, with its own reason and time, which must not be overwritten.
            if reason and store.end_session_if_active(connection, row.session_id, now, reason):
                self.provider.session_ended(connection, row.session_id, row.staff_id)
                self._emit(connection, SessionEnded(staff_id=uuid.UUID(row.staff_id),
                                                    session_id=uuid.UUID(row.session_id), reason=reason),
                           derived_id("auth", row.session_id, "ended"), None)
            return {"active": False}
        if now - row.last_seen_at >= LAST_SEEN_RESOLUTION:
            # The idle clock needs minutes, not every call: most introspections only read.
            store.mark_seen(connection, row.session_id, now)
        return {"active": True, "staff_id": row.staff_id, "session_id": row.session_id,
                "username": account.username, "expires_at": min(row.created_at + timedelta(hours=12),
                                                                now + timedelta(minutes=30)).isoformat()}

    def logout(self, connection: Connection, token: str) -> bool:
        row = store.find_active_session(connection, token_hash(token))
        return row is not None and self.end_session(connection, row.session_id)

    def end_session(self, connection: Connection, session_id: str) -> bool:
        """A logout: from our pages (the cookie's session) or a relying party's (RP-initiated,
        the session its ID token names)."""
        row = store.find_session_by_id(connection, session_id)
        if row is None or not store.end_session_if_active(connection, session_id, self._clock.now(), "logout"):
            return False
        self.provider.session_ended(connection, row.session_id, row.staff_id)
        self._emit(connection, SessionEnded(staff_id=uuid.UUID(row.staff_id), session_id=uuid.UUID(row.session_id),
                                            reason="logout"), derived_id("auth", row.session_id, "ended"), None)
        return True

    # --- helpers ----------------------------------------------------------------------------

    def _account(self, connection: Connection, staff_id: str) -> Row[Any]:
        account = store.find_account(connection, staff_id)
        if account is None:  # only reached with a staff id from a token or session: the tables disagree
            raise NoResultFound(f"No auth account for staff member {staff_id}")
        return account

    def _verify(self, password_hash: str, password: str) -> bool:
        try:
            return bool(self._hasher.verify(password_hash, password))
        except (VerificationError, InvalidHashError):
            return False

    def _issue_token(self, connection: Connection, kind: str, staff_id: str, expires_at: datetime) -> str:
        token = secrets.token_urlsafe(32)
        store.add_token(connection, token_hash(token), kind, staff_id, expires_at)
        return token

    def _mail_link(self, connection: Connection, mail: LinkMail, staff_id: str, recipient: str,
                   message_id: str) -> None:
        """A fresh single-use token, and the mail that carries its link (sent by the relay)."""
        now = self._clock.now()
        token = self._issue_token(connection, mail.token_kind, staff_id, now + mail.lifetime)
        enqueue_mail(connection, store.mail_outbox, message_id=message_id, recipient=recipient,
                     subject=mail.subject, body=_link_body(mail, f"{self._auth_url}{mail.path}/{token}",
                                                           now + mail.lifetime), created_at=now)

    def _peek(self, connection: Connection, kind: str, token: str) -> str | None:
        row = store.find_token(connection, token_hash(token), kind)
        if row is None or row.used_at is not None or row.expires_at <= self._clock.now():
            return None
        return str(row.staff_id)

    def _redeem(self, connection: Connection, kind: str, token: str) -> str | None:
        staff_id = self._peek(connection, kind, token)
        if staff_id is not None:
            store.mark_token_used(connection, token_hash(token), self._clock.now())
        return staff_id

    def record_operator_action(self, connection: Connection, event: Event) -> None:
        """An operator's change (a client registered or revoked, an admin appointed or removed),
        on the log in the change's own transaction."""
        self._emit(connection, event, str(uuid.uuid4()), None)

    def _emit(self, connection: Connection, event: Event, event_id: str, cause: RecordedEvent | None) -> None:
        self._outbox.emit(connection, event, event_id=event_id, now=self._clock.now(), cause=cause, unless_queued=True)


@dataclass(frozen=True)
class LinkMail:
    """A Dutch mail with a personal single-use link into the login pages."""

    subject: str
    intro: tuple[str, ...]
    token_kind: str  # the token the link carries
    path: str
    lifetime: timedelta
    warning: str | None = None
    day_only: bool = False  # "geldig tot 17 december 2026" instead of the moment


INVITATION_MAIL = LinkMail(
    "Welkom bij Kindkans: stel uw wachtwoord in",
    ("Er is een Kindkans-account voor u aangemaakt. Kindkans gebruikt tweestapsverificatie: u logt",
     "in met uw wachtwoord en een steeds veranderende code uit een app op uw eigen smartphone",
     "(bijvoorbeeld een authenticator-app).",
     "",
     "Stel uw wachtwoord in en koppel uw app via deze persoonlijke link:"),
    "invitation", "/uitnodiging", INVITATION_LIFETIME, day_only=True)
RESUME_MAIL = LinkMail(
    "Kindkans: ga verder met uw tweestapsverificatie",
    ("U heeft uw wachtwoord voor Kindkans ingesteld, maar de koppeling met de app op uw smartphone",
     "is nog niet afgerond. Ga verder via deze persoonlijke link:"),
    "enrolment", "/koppelen", ENROLMENT_LIFETIME,
    "Heeft u niet zelf geprobeerd in te loggen? Meld dit dan bij uw privacyfunctionaris.")
RESET_MAIL = LinkMail(
    "Kindkans: koppel uw nieuwe tweede factor",
    ("Op uw verzoek is de koppeling van Kindkans met uw oude telefoon of app verwijderd; twee",
     "beheerders van het samenwerkingsverband hebben dit goedgekeurd. Uw wachtwoord blijft hetzelfde.",
     "Koppel uw nieuwe app via deze persoonlijke link:"),
    "enrolment", "/koppelen", RESET_LINK_LIFETIME,
    "Heeft u hier niet om gevraagd? Meld dit dan direct bij uw privacyfunctionaris.")


def _link_body(mail: LinkMail, link: str, expires_at: datetime) -> str:
    until = dutch.day(expires_at) if mail.day_only else dutch.moment(expires_at)
    return "\n".join([
        "Beste collega,",
        "",
        *mail.intro,
        link,
        "",
        f"De link is geldig tot {until} en werkt één keer. Deel hem met niemand.",
        *([mail.warning] if mail.warning else []),
    ]) + "\n"


def _words_of(username: str) -> tuple[str, ...]:
    """The parts of an address a password must not be made of."""
    return tuple(word for word in re.split(r"[@._+-]", username) if len(word) >= 3)


def _view(row: Row[Any] | None) -> AccountView | None:
    if row is None:
        return None
    return AccountView(staff_id=str(row.staff_id), has_password=row.password_hash is not None,
                       enrolled=row.enrolled_at is not None, disabled_at=row.disabled_at)
