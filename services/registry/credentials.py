"""Credentials of school systems (scoped to BRINs) and of the SWV office (scoped to wijknetwerken).

API keys are random 256-bit secrets, stored as SHA-256 hashes: a slow password hash buys
nothing against a secret nobody can guess, and would cost every request. The Kafka door needs
the school's signing key to check an HMAC, so that key is stored wrapped (AES-GCM) under the
master key. Both are shown once, when the operator creates the credential:

    python -m services.registry.credentials create --name "ParnasSys OBS De Regenboog" --brin 12AB
    python -m services.registry.credentials create --name "SWV-bureau" --wijknetwerk Noord
    python -m services.registry.credentials revoke CLIENT_ID
    python -m services.registry.credentials list
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import re
import secrets
import sys
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row
from sqlalchemy.engine import Engine

from services.registry import store
from shared.clock import Clock, SystemClock
from shared.crypto import seal, unseal

API_KEY_PATTERN = re.compile(r"^svk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
BRIN_PATTERN = re.compile(r"^[0-9]{2}[A-Z]{2}$")
CLIENT_HEADER = "samenveilig-client"
SIGNATURE_HEADER = "samenveilig-signature"


@dataclass(frozen=True)
class Credential:
    client_id: str
    name: str
    brins: frozenset[str]
    wijknetwerken: frozenset[str]
    signing_key: bytes

    def may_report_for(self, brins: set[str]) -> bool:
        return bool(brins) and brins <= self.brins

    @property
    def is_swv_office(self) -> bool:
        return bool(self.wijknetwerken)


@dataclass(frozen=True)
class IssuedCredential:
    client_id: str
    api_key: str
    signing_key: str  # base64, for the HMAC on the Kafka door


def sign(signing_key: bytes, value: bytes) -> str:
    """The signature a school system puts in the `samenveilig-signature` header."""
    return "sha256=" + hmac.new(signing_key, value, hashlib.sha256).hexdigest()


def signature_matches(signing_key: bytes, value: bytes, signature: str) -> bool:
    return hmac.compare_digest(sign(signing_key, value), signature)


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class CredentialStore:
    def __init__(self, engine: Engine, master_key: bytes, clock: Clock | None = None) -> None:
        self._engine = engine
        self._master = master_key
        self._clock = clock or SystemClock()

    def create(self, name: str, brins: list[str], wijknetwerken: list[str]) -> IssuedCredential:
        if bool(brins) == bool(wijknetwerken):
            raise ValueError("a credential serves BRINs (a school system) or wijknetwerken (the SWV office)")
        bad = [brin for brin in brins if not BRIN_PATTERN.match(brin)]
        if bad:
            raise ValueError(f"not a BRIN: {', '.join(bad)}")
        client_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        signing_key = secrets.token_bytes(32)
        with self._engine.begin() as connection:
            store.add_credential(connection, client_id=client_id, name=name, key_hash=_hash(secret),
                                 sealed_signing_key=seal(self._master, signing_key, client_id.encode()),
                                 brins=sorted(set(brins)), wijknetwerken=sorted(set(wijknetwerken)),
                                 created_at=self._clock.now())
        return IssuedCredential(client_id, f"svk_{client_id}_{secret}", base64.b64encode(signing_key).decode())

    def authenticate(self, api_key: str) -> Credential | None:
        match = API_KEY_PATTERN.match(api_key)
        if match is None:
            return None
        client_id, secret = match.groups()
        row = self._row(client_id)
        if row is None or not hmac.compare_digest(row.key_hash, _hash(secret)):
            return None
        return self._credential(row)

    def by_client_id(self, client_id: str) -> Credential | None:
        row = self._row(client_id)
        return self._credential(row) if row is not None else None

    def revoke(self, client_id: str) -> bool:
        with self._engine.begin() as connection:
            return store.revoke_credential(connection, client_id, self._clock.now())

    def list(self) -> list[dict[str, object]]:
        with self._engine.connect() as connection:
            rows = store.credential_listing(connection)
        return [{"client_id": r.client_id, "name": r.name, "brins": json.loads(r.brins),
                 "wijknetwerken": json.loads(r.wijknetwerken), "created_at": r.created_at.isoformat(),
                 "revoked_at": r.revoked_at.isoformat() if r.revoked_at else None} for r in rows]

    def _row(self, client_id: str) -> Row[Any] | None:
        with self._engine.connect() as connection:
            return store.active_credential(connection, client_id)

    def _credential(self, row: Row[Any]) -> Credential:
        return Credential(
            client_id=row.client_id, name=row.name, brins=frozenset(json.loads(row.brins)),
            wijknetwerken=frozenset(json.loads(row.wijknetwerken)),
            signing_key=unseal(self._master, row.signing_key, row.client_id.encode()))


def main(argv: list[str] | None = None) -> int:
    from services.registry.settings import RegistrySettings
    from shared.db import make_engine

    parser = argparse.ArgumentParser(prog="python -m services.registry.credentials",
                                     description="Create, revoke and list registry credentials.")
    sub = parser.add_subparsers(dest="command", required=True)
    create = sub.add_parser("create", help="create a credential; its secrets are shown once")
    create.add_argument("--name", required=True, help="who uses it, e.g. 'ParnasSys OBS De Regenboog'")
    create.add_argument("--brin", action="append", default=[], help="a BRIN the school system serves")
    create.add_argument("--wijknetwerk", action="append", default=[], help="for the SWV office")
    revoke = sub.add_parser("revoke", help="revoke a credential at once")
    revoke.add_argument("client_id")
    sub.add_parser("list", help="list credentials (never their secrets)")
    args = parser.parse_args(argv)

    settings = RegistrySettings()
    store.migrate_to_newest(settings.database_url)
    credentials = CredentialStore(make_engine(settings.database_url), settings.master_key_bytes())
    if args.command == "create":
        try:
            issued = credentials.create(args.name, args.brin, args.wijknetwerk)
        except ValueError as error:
            sys.stderr.write(f"error: {error}\n")
            return 2
        sys.stdout.write(json.dumps({"client_id": issued.client_id, "api_key": issued.api_key,
                                     "signing_key": issued.signing_key}, indent=2) + "\n")
        sys.stderr.write("Store these now: they are not shown again.\n")
        return 0
    if args.command == "revoke":
        if not credentials.revoke(args.client_id):
            sys.stderr.write("error: no active credential with that client id\n")
            return 1
        return 0
    sys.stdout.write(json.dumps(credentials.list(), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
