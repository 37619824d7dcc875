"""Credentials of school systems (scoped to BRINs) and of the SWV office (scoped to wijknetwerken).

API keys are random 256-bit secrets, stored as SHA-256 hashes: a slow password hash buys
nothing against a secret nobody can guess, and would cost every request. The Kafka door needs
the school's signing key to check an HMAC, so that key is stored wrapped (AES-GCM) under the
master key. Both are shown once, when the operator creates or rotates the credential:

    python -m services.registry.credentials create --name "ParnasSys OBS De Regenboog" --brin 12AB
    python -m services.registry.credentials create --name "SWV-bureau" --wijknetwerk Noord
    python -m services.registry.credentials update CLIENT_ID --add-brin 56EF --remove-brin 12AB
    python -m services.registry.credentials rotate CLIENT_ID --overlap-hours 24
    python -m services.registry.credentials revoke CLIENT_ID
    python -m services.registry.credentials list

Every change is an event on the registry's topic (`CredentialIssued`, `CredentialScopeChanged`,
`CredentialRotated`, `CredentialRevoked`), written through the registry's outbox in the same
transaction as the change, carrying who made it (`acted_by`) and never a secret or its hash.
A credential follows its school's branches: when it reports a BRIN change for a branch it
serves, it keeps serving that branch under the new code (`follow_branch`).
"""

from __future__ import annotations

import argparse
import base64
import getpass
import hashlib
import hmac
import json
import re
import secrets
import sys
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal
from uuid import UUID

from sqlalchemy import Row
from sqlalchemy.engine import Connection, Engine

from services.registry import store
from shared.clock import Clock, SystemClock
from shared.contracts.envelope import EventCodec, derived_id, service_codec
from shared.contracts.events import (
    CredentialEvent,
    CredentialIssued,
    CredentialRevoked,
    CredentialRotated,
    CredentialScopeChanged,
)
from shared.contracts.mutations import brin_of
from shared.crypto import seal, unseal
from shared.outbox import Outbox

API_KEY_PATTERN = re.compile(r"^svk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
BRIN_PATTERN = re.compile(r"^[0-9]{2}[A-Z]{2}$")
OFFICE_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
CLIENT_HEADER = "samenveilig-client"
SIGNATURE_HEADER = "samenveilig-signature"
DEFAULT_OVERLAP = timedelta(hours=24)


@dataclass(frozen=True)
class Credential:
    client_id: str
    name: str
    brins: frozenset[str]
    wijknetwerken: frozenset[str]
    signing_key: bytes
    # Branches it serves outside its BRINs: its own branches that changed BRIN.
    branch_ids: frozenset[UUID] = frozenset()
    # The signing key before the last rotation, while the overlap lasts (else None).
    previous_signing_key: bytes | None = None
    # The SWV office it acts for, when not its own client id.
    office_id: str | None = None

    def covers(self, vestigingscode: str, branch_id: UUID | None) -> bool:
        """May report for the branch this code names: by its BRIN, or as a branch it follows."""
        return brin_of(vestigingscode) in self.brins or (branch_id is not None and branch_id in self.branch_ids)

    @property
    def is_swv_office(self) -> bool:
        return bool(self.wijknetwerken)

    @property
    def office(self) -> str:
        """The identity its consultants are registered under (stable across rotations and updates)."""
        return self.office_id or self.client_id

    def signature_matches(self, value: bytes, signature: str) -> bool:
        keys = (self.signing_key,) + ((self.previous_signing_key,) if self.previous_signing_key else ())
        # Every key is compared, so the time taken does not say which one matched.
        matches = [signature_matches(key, value, signature) for key in keys]
        return any(matches)


@dataclass(frozen=True)
class IssuedCredential:
    client_id: str
    api_key: str
    signing_key: str  # base64, for the HMAC on the Kafka door
    # After a rotation: until when the previous keys still work.
    previous_keys_valid_until: datetime | None = None


class UnknownCredential(LookupError):
    """No active credential with this client id."""


def sign(signing_key: bytes, value: bytes) -> str:
    """The signature a school system puts in the `samenveilig-signature` header."""
    return "sha256=" + hmac.new(signing_key, value, hashlib.sha256).hexdigest()


def signature_matches(signing_key: bytes, value: bytes, signature: str) -> bool:
    return hmac.compare_digest(sign(signing_key, value), signature)


def operator() -> str:
    """`acted_by` of a change made with the operator's command: the OS user running it."""
    try:
        user = getpass.getuser()
    except (OSError, KeyError):
        user = "unknown"
    return f"operator:{user}"[:200]


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _ordered(values: Iterable[str]) -> list[str]:
    return sorted(set(values))


def _check_scope(brins: list[str], wijknetwerken: list[str]) -> None:
    if bool(brins) == bool(wijknetwerken):
        raise ValueError("a credential serves BRINs (a school system) or wijknetwerken (the SWV office)")
    bad = [brin for brin in brins if not BRIN_PATTERN.match(brin)]
    if bad:
        raise ValueError(f"not a BRIN: {', '.join(bad)}")
    if any(not w.strip() or len(w) > 80 for w in wijknetwerken):
        raise ValueError("a wijknetwerk is 1 to 80 characters")


ScopeChangeReason = Literal["operator", "branch-brin-changed"]


def _scope_event(row: Row[Any], acted_by: str, reason: ScopeChangeReason, *, brins: list[str],
                 wijknetwerken: list[str], branch_ids: list[str]) -> CredentialScopeChanged:
    return CredentialScopeChanged(client_id=row.client_id, acted_by=acted_by, brins=brins,
                                  wijknetwerken=wijknetwerken, branch_ids=[UUID(b) for b in branch_ids],
                                  reason=reason)


def follow_branch(connection: Connection, outbox: Outbox, *, branch_id: UUID, previous_vestigingscode: str,
                  reported_by: str, event_id_of: Any, now: datetime, correlation_id: str) -> list[str]:
    """A branch changed BRIN: every active credential that served it under its previous code
    (by that code's BRIN, or following it already) serves it under the new one, as a branch it
    follows (not the whole new BRIN). Returns the client ids whose scope changed."""
    changed = []
    rows = {row.client_id: row for row in store.active_credentials_for_brin(
        connection, brin_of(previous_vestigingscode))}
    rows.update({row.client_id: row for row in store.active_credentials_following(connection, branch_id)})
    for client_id, row in sorted(rows.items()):
        followed = json.loads(row.branch_ids or "[]")
        if str(branch_id) in followed:
            continue
        branch_ids = _ordered([*followed, str(branch_id)])
        brins, wijknetwerken = json.loads(row.brins), json.loads(row.wijknetwerken)
        store.set_credential_scope(connection, client_id, brins=brins, wijknetwerken=wijknetwerken,
                                   branch_ids=branch_ids)
        outbox.emit(connection, _scope_event(row, f"client:{reported_by}", "branch-brin-changed", brins=brins,
                                             wijknetwerken=wijknetwerken, branch_ids=branch_ids),
                    event_id=event_id_of(client_id), now=now, correlation_id=correlation_id)
        changed.append(client_id)
    return changed


class CredentialStore:
    """The operator's changes to credentials, and the doors' look-ups. `acted_by` defaults to
    the OS user running the process (`operator()`)."""

    def __init__(self, engine: Engine, master_key: bytes, clock: Clock | None = None,
                 codec: EventCodec | None = None) -> None:
        self._engine = engine
        self._master = master_key
        self._clock = clock or SystemClock()
        self._outbox = Outbox(store.outbox, codec) if codec is not None else None

    def create(self, name: str, brins: list[str], wijknetwerken: list[str], *, office: str | None = None,
               acted_by: str | None = None) -> IssuedCredential:
        _check_scope(brins, wijknetwerken)
        if office is not None and (brins or not OFFICE_PATTERN.match(office)):
            raise ValueError("an office identity is for SWV-office credentials: letters, digits, . _ : -")
        client_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        signing_key = secrets.token_bytes(32)
        now = self._clock.now()
        with self._engine.begin() as connection:
            store.add_credential(connection, client_id=client_id, name=name, key_hash=_hash(secret),
                                 sealed_signing_key=seal(self._master, signing_key, client_id.encode()),
                                 brins=_ordered(brins), wijknetwerken=_ordered(wijknetwerken),
                                 created_at=now, office=office)
            self._emit(connection, CredentialIssued(
                client_id=client_id, acted_by=acted_by or operator(), name=name, brins=_ordered(brins),
                wijknetwerken=_ordered(wijknetwerken), office=(office or client_id) if wijknetwerken else None), now)
        return IssuedCredential(client_id, f"svk_{client_id}_{secret}", base64.b64encode(signing_key).decode())

    def update(self, client_id: str, *, add_brins: Iterable[str] = (), remove_brins: Iterable[str] = (),
               add_wijknetwerken: Iterable[str] = (), remove_wijknetwerken: Iterable[str] = (),
               remove_branches: Iterable[UUID] = (), acted_by: str | None = None) -> dict[str, Any]:
        """Change what the credential serves; takes effect at the next request. Raises
        UnknownCredential, or ValueError for a scope that is not allowed."""
        now = self._clock.now()
        with self._engine.begin() as connection:
            row = store.active_credential(connection, client_id)
            if row is None:
                raise UnknownCredential(client_id)
            brins = _ordered((set(json.loads(row.brins)) | set(add_brins)) - set(remove_brins))
            wijknetwerken = _ordered((set(json.loads(row.wijknetwerken)) | set(add_wijknetwerken))
                                     - set(remove_wijknetwerken))
            branch_ids = _ordered(set(json.loads(row.branch_ids or "[]")) - {str(b) for b in remove_branches})
            _check_scope(brins, wijknetwerken)
            if bool(json.loads(row.brins)) != bool(brins):
                raise ValueError("a school system's credential cannot become the SWV office's, nor the reverse")
            store.set_credential_scope(connection, client_id, brins=brins, wijknetwerken=wijknetwerken,
                                       branch_ids=branch_ids)
            self._emit(connection, _scope_event(row, acted_by or operator(), "operator", brins=brins,
                                                wijknetwerken=wijknetwerken, branch_ids=branch_ids), now)
        return {"client_id": client_id, "brins": brins, "wijknetwerken": wijknetwerken, "branch_ids": branch_ids}

    def rotate(self, client_id: str, *, overlap: timedelta = DEFAULT_OVERLAP,
               acted_by: str | None = None) -> IssuedCredential:
        """A new API key and signing key; the current ones keep working for `overlap` (keys of an
        earlier rotation still in their overlap stop at once). Raises UnknownCredential."""
        if overlap < timedelta(0):
            raise ValueError("the overlap cannot be negative")
        secret = secrets.token_urlsafe(32)
        signing_key = secrets.token_bytes(32)
        now = self._clock.now()
        until = now + overlap
        with self._engine.begin() as connection:
            if store.active_credential(connection, client_id) is None:
                raise UnknownCredential(client_id)
            store.rotate_credential_keys(connection, client_id, key_hash=_hash(secret),
                                         sealed_signing_key=seal(self._master, signing_key, client_id.encode()),
                                         previous_valid_until=until)
            self._emit(connection, CredentialRotated(client_id=client_id, acted_by=acted_by or operator(),
                                                     previous_keys_valid_until=until), now)
        return IssuedCredential(client_id, f"svk_{client_id}_{secret}", base64.b64encode(signing_key).decode(),
                                previous_keys_valid_until=until)

    def revoke(self, client_id: str, *, acted_by: str | None = None) -> bool:
        """Revoke at once (its keys, also those of an overlap, stop working). False when there is
        no active credential with this id."""
        now = self._clock.now()
        with self._engine.begin() as connection:
            revoked = store.revoke_credential(connection, client_id, now)
            if revoked:
                self._emit(connection, CredentialRevoked(client_id=client_id, acted_by=acted_by or operator()), now)
            return revoked

    def authenticate(self, api_key: str) -> Credential | None:
        match = API_KEY_PATTERN.match(api_key)
        if match is None:
            return None
        client_id, secret = match.groups()
        row = self._row(client_id)
        if row is None:
            return None
        offered = _hash(secret)
        current = hmac.compare_digest(row.key_hash, offered)
        previous = self._in_overlap(row) and hmac.compare_digest(row.previous_key_hash, offered)
        return self._credential(row) if current or previous else None

    def by_client_id(self, client_id: str) -> Credential | None:
        row = self._row(client_id)
        return self._credential(row) if row is not None else None

    def list(self) -> list[dict[str, object]]:
        with self._engine.connect() as connection:
            rows = store.credential_listing(connection)
        now = self._clock.now()
        return [{"client_id": r.client_id, "name": r.name, "brins": json.loads(r.brins),
                 "wijknetwerken": json.loads(r.wijknetwerken), "branch_ids": json.loads(r.branch_ids or "[]"),
                 "office": (r.office or r.client_id) if json.loads(r.wijknetwerken) else None,
                 "created_at": r.created_at.isoformat(),
                 "previous_keys_valid_until": r.previous_valid_until.isoformat()
                 if r.previous_valid_until and r.previous_valid_until > now else None,
                 "revoked_at": r.revoked_at.isoformat() if r.revoked_at else None} for r in rows]

    def _emit(self, connection: Connection, event: CredentialEvent, now: datetime) -> None:
        if self._outbox is None:
            raise RuntimeError("this credential store was built without the registry's event codec")
        # An operator's change is made once, not retried: a fresh id.
        self._outbox.emit(connection, event, event_id=derived_id("registry-credential", str(uuid.uuid4())), now=now)

    def _in_overlap(self, row: Row[Any]) -> bool:
        return (row.previous_key_hash is not None and row.previous_valid_until is not None
                and self._clock.now() < row.previous_valid_until)

    def _row(self, client_id: str) -> Row[Any] | None:
        with self._engine.connect() as connection:
            return store.active_credential(connection, client_id)

    def _credential(self, row: Row[Any]) -> Credential:
        aad = row.client_id.encode()
        return Credential(
            client_id=row.client_id, name=row.name, brins=frozenset(json.loads(row.brins)),
            wijknetwerken=frozenset(json.loads(row.wijknetwerken)),
            signing_key=unseal(self._master, row.signing_key, aad),
            branch_ids=frozenset(UUID(b) for b in json.loads(row.branch_ids or "[]")),
            previous_signing_key=unseal(self._master, row.previous_signing_key, aad)
            if self._in_overlap(row) else None,
            office_id=row.office)


def main(argv: list[str] | None = None) -> int:
    from services.registry.settings import RegistrySettings
    from shared.contracts.topics import TopicNames
    from shared.crypto import open_key_store
    from shared.db import make_engine

    parser = argparse.ArgumentParser(prog="python -m services.registry.credentials",
                                     description="Create, update, rotate, revoke and list registry credentials. "
                                                 "Every change is an event naming the OS user who made it.")
    sub = parser.add_subparsers(dest="command", required=True)
    create = sub.add_parser("create", help="create a credential; its secrets are shown once")
    create.add_argument("--name", required=True, help="who uses it, e.g. 'ParnasSys OBS De Regenboog'")
    create.add_argument("--brin", action="append", default=[], help="a BRIN the school system serves")
    create.add_argument("--wijknetwerk", action="append", default=[], help="for the SWV office")
    create.add_argument("--office", help="SWV office only: the office it acts for (default: its own client id); "
                                         "give a revoked office credential's to take over its consultants")
    update = sub.add_parser("update", help="add or remove BRINs (or wijknetwerken); effective at once")
    update.add_argument("client_id")
    update.add_argument("--add-brin", action="append", default=[])
    update.add_argument("--remove-brin", action="append", default=[])
    update.add_argument("--add-wijknetwerk", action="append", default=[])
    update.add_argument("--remove-wijknetwerk", action="append", default=[])
    update.add_argument("--remove-branch", action="append", default=[], type=UUID,
                        help="stop following a branch it followed across a BRIN change (its id)")
    rotate = sub.add_parser("rotate", help="new API key and signing key, shown once; the old ones keep "
                                           "working for the overlap")
    rotate.add_argument("client_id")
    rotate.add_argument("--overlap-hours", type=float, default=DEFAULT_OVERLAP.total_seconds() / 3600,
                        help="how long the old keys keep working (default 24; 0: stop at once)")
    revoke = sub.add_parser("revoke", help="revoke a credential at once")
    revoke.add_argument("client_id")
    sub.add_parser("list", help="list credentials (never their secrets)")
    args = parser.parse_args(argv)

    settings = RegistrySettings()
    store.migrate_to_newest(settings.database_url)
    # The events go out through the registry's outbox, sent by its relay (now, or when it starts),
    # signed with the registry's own key like every registry event.
    keys = open_key_store(settings.keystore_url, settings.master_key_bytes(), settings.epoch_keys_url)
    codec = service_codec(keys, "registry",
                          TopicNames(settings.topic_prefix), settings.signing_paths(), settings.signing_create_keys)
    credentials = CredentialStore(make_engine(settings.database_url), settings.master_key_bytes(), codec=codec)
    try:
        if args.command == "create":
            issued = credentials.create(args.name, args.brin, args.wijknetwerk, office=args.office)
            return _show_secrets(issued)
        if args.command == "update":
            _write(credentials.update(args.client_id, add_brins=args.add_brin, remove_brins=args.remove_brin,
                                      add_wijknetwerken=args.add_wijknetwerk,
                                      remove_wijknetwerken=args.remove_wijknetwerk,
                                      remove_branches=args.remove_branch))
            return 0
        if args.command == "rotate":
            return _show_secrets(credentials.rotate(args.client_id, overlap=timedelta(hours=args.overlap_hours)))
        if args.command == "revoke":
            if not credentials.revoke(args.client_id):
                raise UnknownCredential(args.client_id)
            return 0
    except UnknownCredential:
        sys.stderr.write("error: no active credential with that client id\n")
        return 1
    except ValueError as error:
        sys.stderr.write(f"error: {error}\n")
        return 2
    _write(credentials.list())
    return 0


def _show_secrets(issued: IssuedCredential) -> int:
    shown: dict[str, Any] = {"client_id": issued.client_id, "api_key": issued.api_key,
                             "signing_key": issued.signing_key}
    if issued.previous_keys_valid_until is not None:
        shown["previous_keys_valid_until"] = issued.previous_keys_valid_until.isoformat()
    _write(shown)
    sys.stderr.write("Store these now: they are not shown again.\n")
    return 0


def _write(value: object) -> None:
    sys.stdout.write(json.dumps(value, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())
