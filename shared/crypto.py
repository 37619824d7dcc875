"""Crypto-shredding: personal data is encrypted under a key per data subject, so destroying
that one key erases the subject from every copy of every topic. And the services' signing keys:
which service wrote an event."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat
from sqlalchemy import Column, Integer, LargeBinary, MetaData, String, Table, func, inspect, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

from shared.clock import Clock, SystemClock
from shared.db import UtcDateTime, scrub_database

NONCE_BYTES = 12
KEY_BYTES = 32


class KeyDestroyed(Exception):
    """The subject's key was destroyed (purged); no new personal data may be written under it."""


class KeyStore(Protocol):
    def key_for_writing(self, key_id: str) -> bytes:
        """The subject's key, created on first use. Raises KeyDestroyed after a purge."""
        ...

    def key_for_reading(self, key_id: str) -> bytes | None:
        """The subject's key, or None when it never existed or was destroyed."""
        ...

    def destroy(self, key_id: str) -> bool:
        """Destroy the key for good. True when a live key was destroyed."""
        ...

    def rotate(self) -> int | None:
        """After a round of destroys: leave no old copy of them readable (epoch keys); the new epoch."""
        ...


def seal(key: bytes, plaintext: bytes, associated_data: bytes) -> bytes:
    """AES-256-GCM with a fresh random nonce, returned as nonce || ciphertext+tag."""
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, associated_data)


def unseal(key: bytes, sealed: bytes, associated_data: bytes) -> bytes:
    return AESGCM(key).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], associated_data)


class InMemoryKeyStore:
    """For unit tests and benchmarks; forgets everything when the process ends."""

    def __init__(self) -> None:
        self._keys: dict[str, bytes | None] = {}
        self._lock = threading.Lock()

    def key_for_writing(self, key_id: str) -> bytes:
        with self._lock:
            if key_id in self._keys:
                key = self._keys[key_id]
                if key is None:
                    raise KeyDestroyed(key_id)
                return key
            key = AESGCM.generate_key(bit_length=256)
            self._keys[key_id] = key
            return key

    def key_for_reading(self, key_id: str) -> bytes | None:
        with self._lock:
            return self._keys.get(key_id)

    def destroy(self, key_id: str) -> bool:
        with self._lock:
            live = self._keys.get(key_id) is not None
            self._keys[key_id] = None
            return live

    def rotate(self) -> int | None:
        return None  # nothing outlives a destroy in memory


_metadata = MetaData()
data_keys = Table(
    "data_keys",
    _metadata,
    Column("key_id", String(200), primary_key=True),
    # The data key wrapped (AES-GCM) under the master key; NULL once destroyed. The row stays
    # as a tombstone so a purged subject's key is never silently re-created.
    Column("wrapped_key", LargeBinary, nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("destroyed_at", UtcDateTime(), nullable=True),
    # Which epoch key wraps it (EpochKeys); NULL: wrapped under the master key itself.
    Column("epoch", Integer, nullable=True),
)

_epoch_metadata = MetaData()
epoch_keys_table = Table(
    "epoch_keys",
    _epoch_metadata,
    Column("epoch", Integer, primary_key=True),
    Column("wrapped_key", LargeBinary, nullable=True),  # under the master key; NULL once destroyed
    Column("created_at", UtcDateTime(), nullable=False),
    Column("destroyed_at", UtcDateTime(), nullable=True),
)


class EpochKeys:
    """Key-encryption keys per period, for a key store on PostgreSQL (issue 16).

    PostgreSQL cannot overwrite an old row version: a destroyed data key's wrapped bytes stay in
    dead tuples and in PostgreSQL's WAL for a while. So on PostgreSQL every data key is wrapped
    under the current epoch key, and `SqlKeyStore.rotate` (run after every purge round) re-wraps
    the live keys under a new epoch key and destroys the old one. What is left of a destroyed
    data key in PostgreSQL is then wrapped under a key that no longer exists anywhere.

    The epoch keys themselves live outside PostgreSQL, in a small SQLite file where a destroy
    really overwrites (secure_delete, overwrite in place, WAL checkpointed and truncated): the
    local default of what a KMS would do in a larger deployment. The file is shared by the
    processes of the key store (one volume), and is no use without the master key."""

    def __init__(self, engine: Engine, master_key: bytes, clock: Clock | None = None) -> None:
        if engine.dialect.name != "sqlite":
            raise ValueError("epoch keys need a store that can overwrite in place (SQLite)")
        self._engine = engine
        self._master = master_key
        self._clock = clock or SystemClock()
        _epoch_metadata.create_all(engine)

    def current(self) -> tuple[int, bytes]:
        """The newest live epoch and its key (the first is made on first use)."""
        with self._engine.begin() as connection:
            connection.exec_driver_sql("PRAGMA secure_delete=ON")
            row = connection.execute(
                select(epoch_keys_table.c.epoch, epoch_keys_table.c.wrapped_key)
                .where(epoch_keys_table.c.wrapped_key.is_not(None))
                .order_by(epoch_keys_table.c.epoch.desc()).limit(1)).first()
        if row is None:
            return self.begin_epoch()
        return row.epoch, self._unwrap(row.epoch, row.wrapped_key)

    def key(self, epoch: int) -> bytes | None:
        with self._engine.connect() as connection:
            wrapped = connection.execute(select(epoch_keys_table.c.wrapped_key)
                                         .where(epoch_keys_table.c.epoch == epoch)).scalar()
        return None if wrapped is None else self._unwrap(epoch, wrapped)

    def begin_epoch(self) -> tuple[int, bytes]:
        key = AESGCM.generate_key(bit_length=256)
        with self._engine.begin() as connection:
            newest = connection.execute(select(func.max(epoch_keys_table.c.epoch))).scalar() or 0
            epoch = newest + 1
            connection.execute(epoch_keys_table.insert().values(
                epoch=epoch, wrapped_key=self._wrap(epoch, key), created_at=self._clock.now()))
        return epoch, key

    def destroy_before(self, epoch: int) -> list[int]:
        """Destroy every live epoch key older than `epoch`, overwritten where it lay."""
        now = self._clock.now()
        with self._engine.begin() as connection:
            connection.exec_driver_sql("PRAGMA secure_delete=ON")
            old = connection.execute(select(epoch_keys_table.c.epoch, epoch_keys_table.c.wrapped_key)
                                     .where(epoch_keys_table.c.epoch < epoch,
                                            epoch_keys_table.c.wrapped_key.is_not(None))).all()
            for row in old:
                where = epoch_keys_table.c.epoch == row.epoch
                connection.execute(update(epoch_keys_table).where(where)
                                   .values(wrapped_key=os.urandom(len(row.wrapped_key))))
                connection.execute(update(epoch_keys_table).where(where).values(wrapped_key=None, destroyed_at=now))
        scrub_database(self._engine)
        return [row.epoch for row in old]

    def _wrap(self, epoch: int, key: bytes) -> bytes:
        return seal(self._master, key, f"epoch/{epoch}".encode())

    def _unwrap(self, epoch: int, wrapped: bytes) -> bytes:
        return unseal(self._master, wrapped, f"epoch/{epoch}".encode())


class SqlKeyStore:
    """Keys in a SQL table (SQLite or PostgreSQL), wrapped under a master key from settings, or,
    with `epochs`, under the current epoch key (PostgreSQL: see EpochKeys).

    No key is cached in memory: a destroyed key must stop decrypting in every process at once.
    """

    # The advisory lock that keeps a rotation and a new key's insert apart (PostgreSQL).
    ROTATION_LOCK = 0x5A3E_16

    def __init__(self, engine: Engine, master_key: bytes, clock: Clock | None = None,
                 epochs: EpochKeys | None = None) -> None:
        if len(master_key) != KEY_BYTES:
            raise ValueError("master key must be 32 bytes")
        self._clock = clock or SystemClock()
        self._engine = engine
        self._master = master_key
        self._epochs = epochs
        # Several services open the same key store at start; when two create the table at once,
        # one fails and its retry finds the table there.
        for attempt in range(5):
            try:
                _metadata.create_all(engine)
                if "epoch" not in {column["name"] for column in inspect(engine).get_columns("data_keys")}:
                    with engine.begin() as connection:  # a key store from before epochs
                        connection.execute(text("ALTER TABLE data_keys ADD COLUMN epoch INTEGER"))
                break
            except (OperationalError, ProgrammingError, IntegrityError):
                if attempt == 4:
                    raise
                time.sleep(0.1 * (attempt + 1))

    def _wrap(self, key_id: str, key: bytes) -> tuple[bytes, int | None]:
        if self._epochs is None:
            return seal(self._master, key, key_id.encode()), None
        epoch, epoch_key = self._epochs.current()
        return seal(epoch_key, key, key_id.encode()), epoch

    def _unwrap(self, key_id: str, wrapped: bytes, epoch: int | None) -> bytes | None:
        """None when the epoch key that wrapped it is gone (a rotation re-wrapped it meanwhile)."""
        if epoch is None:
            return unseal(self._master, wrapped, key_id.encode())
        if self._epochs is None:
            raise ValueError(f"{key_id} is wrapped under epoch {epoch}: the key store needs its epoch keys")
        epoch_key = self._epochs.key(epoch)
        return None if epoch_key is None else unseal(epoch_key, wrapped, key_id.encode())

    def _read(self, key_id: str) -> tuple[bytes | None, bool] | None:
        """(key, destroyed) or None when never made. Reads again once when a rotation moved the
        key to a new epoch between reading the row and reading its epoch key."""
        for _ in range(3):
            row = self._load(key_id)
            if row is None:
                return None
            wrapped, destroyed, epoch = row
            if destroyed or wrapped is None:
                return None, True
            key = self._unwrap(key_id, wrapped, epoch)
            if key is not None:
                return key, False
        raise KeyDestroyed(f"{key_id}: its epoch key is gone (lost in a rotation)")

    def key_for_writing(self, key_id: str) -> bytes:
        existing = self._read(key_id)
        if existing is not None:
            if existing[1] or existing[0] is None:
                raise KeyDestroyed(key_id)
            return existing[0]
        key = AESGCM.generate_key(bit_length=256)
        with self._engine.begin() as connection:
            dialect = connection.dialect.name
            if dialect == "postgresql" and self._epochs is not None:
                # A rotation holds this lock exclusively from its new epoch to the re-wrap's
                # commit: a key inserted here is either re-wrapped by it or wrapped under its epoch.
                connection.execute(text("SELECT pg_advisory_xact_lock_shared(:lock)"), {"lock": self.ROTATION_LOCK})
            wrapped, epoch = self._wrap(key_id, key)
            values = {"key_id": key_id, "wrapped_key": wrapped, "epoch": epoch, "created_at": self._clock.now()}
            insert_stmt = (postgresql.insert(data_keys) if dialect == "postgresql"
                           else sqlite.insert(data_keys))
            inserted = connection.execute(insert_stmt.values(**values).on_conflict_do_nothing()).rowcount
        if inserted == 1:
            return key
        # Another process won the race; whichever key is stored is the key.
        stored = self._read(key_id)
        if stored is None or stored[1] or stored[0] is None:
            raise KeyDestroyed(key_id)
        return stored[0]

    def key_for_reading(self, key_id: str) -> bytes | None:
        existing = self._read(key_id)
        if existing is None or existing[1]:
            return None
        return existing[0]

    def rotate(self) -> int | None:
        """With epoch keys: re-wrap every live key under a new epoch key, then destroy the older
        epoch keys, so that the old row versions of keys destroyed before (dead tuples, WAL) are
        wrapped under keys that exist nowhere. Returns the new epoch (None without epochs)."""
        if self._epochs is None:
            return None
        with self._engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:lock)"), {"lock": self.ROTATION_LOCK})
            epoch, epoch_key = self._epochs.begin_epoch()
            live = connection.execute(
                select(data_keys.c.key_id, data_keys.c.wrapped_key, data_keys.c.epoch)
                .where(data_keys.c.wrapped_key.is_not(None),
                       (data_keys.c.epoch.is_(None)) | (data_keys.c.epoch != epoch))).all()
            epoch_keys: dict[int, bytes | None] = {}  # one read of each old epoch key, not one per row
            for row in live:
                if row.epoch is None:
                    key: bytes | None = unseal(self._master, row.wrapped_key, row.key_id.encode())
                else:
                    if row.epoch not in epoch_keys:
                        epoch_keys[row.epoch] = self._epochs.key(row.epoch)
                    old_key = epoch_keys[row.epoch]
                    key = None if old_key is None else unseal(old_key, row.wrapped_key, row.key_id.encode())
                if key is None:
                    continue  # its epoch is gone already: nothing can read it any more
                connection.execute(update(data_keys).where(data_keys.c.key_id == row.key_id)
                                   .values(wrapped_key=seal(epoch_key, key, row.key_id.encode()), epoch=epoch))
        self._epochs.destroy_before(epoch)
        self.scrub()
        return epoch

    def destroy(self, key_id: str) -> bool:
        """Destroy the key where it lay. On SQLite the row's bytes are overwritten with random
        bytes of the same length before the NULL (with `secure_delete` on, SQLite zeroes what it
        frees), and the WAL is checkpointed and truncated, so neither the database file, its free
        pages nor the WAL keep the wrapped key (issue 16: a probe read it back from the WAL). On
        PostgreSQL an old row version cannot be overwritten: see `scrub` and the README."""
        now = self._clock.now()
        with self._engine.begin() as connection:
            if connection.dialect.name == "sqlite":
                connection.exec_driver_sql("PRAGMA secure_delete=ON")  # also on an engine not made by make_engine
            stored = connection.execute(
                select(data_keys.c.wrapped_key).where(data_keys.c.key_id == key_id,
                                                      data_keys.c.wrapped_key.is_not(None))).first()
            if stored is not None:
                # Same length, so SQLite rewrites the cell in place rather than moving it.
                connection.execute(update(data_keys).where(data_keys.c.key_id == key_id)
                                   .values(wrapped_key=os.urandom(len(stored.wrapped_key))))
                connection.execute(update(data_keys).where(data_keys.c.key_id == key_id)
                                   .values(wrapped_key=None, destroyed_at=now))
            else:
                dialect = connection.dialect.name
                insert_stmt = (postgresql.insert(data_keys) if dialect == "postgresql"
                               else sqlite.insert(data_keys))
                connection.execute(insert_stmt.values(key_id=key_id, wrapped_key=None, created_at=now,
                                                      destroyed_at=now).on_conflict_do_nothing())
        if stored is not None:
            self.scrub()
        return stored is not None

    def scrub(self) -> None:
        """Make what a destroy freed unreadable on disk: SQLite checkpoints the WAL into the
        (securely overwritten) database and truncates it; PostgreSQL vacuums the key table, so
        its dead row versions are pruned (what remains in PostgreSQL's WAL and in the pruned
        pages' free space is the residual risk the README names)."""
        scrub_database(self._engine, data_keys.name)

    def _load(self, key_id: str) -> tuple[bytes | None, bool, int | None] | None:
        with self._engine.connect() as connection:
            row = connection.execute(
                select(data_keys.c.wrapped_key, data_keys.c.destroyed_at, data_keys.c.epoch)
                .where(data_keys.c.key_id == key_id)).first()
        if row is None:
            return None
        return row.wrapped_key, row.destroyed_at is not None, row.epoch


def open_key_store(keystore_url: str, master_key: bytes, epoch_keys_url: str = "",
                   clock: Clock | None = None) -> SqlKeyStore:
    """The key store as the services open it: on PostgreSQL with epoch keys (in the SQLite file
    at `epoch_keys_url`), on SQLite without (a destroy there overwrites in place)."""
    from shared.db import make_engine

    engine = make_engine(keystore_url)
    epochs = EpochKeys(make_engine(epoch_keys_url), master_key, clock) if epoch_keys_url else None
    if engine.dialect.name == "postgresql" and epochs is None:
        raise ValueError("a key store on PostgreSQL needs SAMENVEILIG_EPOCH_KEYS_URL (a SQLite file): "
                         "PostgreSQL keeps old row versions of destroyed keys (README, \"Erasure\")")
    return SqlKeyStore(engine, master_key, clock, epochs)


# --- Event signatures: which service wrote an event ------------------------------------------
# Each service signs what it publishes with an Ed25519 key of its own; readers hold only the
# public keys, so a reader (or anyone who can write a topic) cannot sign as another service.
# Files: `<service>.signing-key` (PKCS#8 PEM, 0600) in the private directory, and one
# `<service>.<key id>.pub` per public key (raw key, base64) in the public directory. Rotation: a
# new private key replaces the old one and its .pub is added beside the old one's; readers accept
# every listed key of the owner until the old .pub is removed.
SIGNING_KEY_SUFFIX = ".signing-key"
PUBLIC_KEY_SUFFIX = ".pub"
# Per topic and partition, the offset from which every record must be signed (events written
# before signing began sit below it); see `shared.kafka.signing adopt`.
SIGNED_FROM_FILE = "signed-from.json"


def signing_key_id(public: Ed25519PublicKey) -> str:
    """A key's id: the start of the SHA-256 of its raw public bytes (names it in headers and files)."""
    return hashlib.sha256(public.public_bytes(Encoding.Raw, PublicFormat.Raw)).hexdigest()[:16]


@dataclass(frozen=True)
class SigningKey:
    service: str
    key_id: str
    private: Ed25519PrivateKey

    def sign(self, message: bytes) -> bytes:
        return self.private.sign(message)


class SigningKeys:
    """The private signing keys this process holds: its own service's (on the embedded default,
    where every service shares one data directory, every service's)."""

    def __init__(self, keys: dict[str, SigningKey]) -> None:
        self._keys = dict(keys)

    def for_service(self, service: str) -> SigningKey | None:
        return self._keys.get(service)

    def services(self) -> set[str]:
        return set(self._keys)

    @classmethod
    def load(cls, directory: Path) -> SigningKeys:
        keys = {}
        for path in sorted(directory.glob(f"*{SIGNING_KEY_SUFFIX}")):
            service = path.name.removesuffix(SIGNING_KEY_SUFFIX)
            private = serialization.load_pem_private_key(path.read_bytes(), password=None)
            if not isinstance(private, Ed25519PrivateKey):
                raise ValueError(f"{path} is not an Ed25519 key")
            keys[service] = SigningKey(service, signing_key_id(private.public_key()), private)
        return cls(keys)


class UntrustedSignature(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class TrustedSigners:
    """Every service's public keys a reader accepts, by key id, and where unsigned records of
    a log written before signing began end. Loaded once; read again (at most every
    `reload_after_s`) only when an unknown key id arrives, so a rotation needs no restart."""

    def __init__(self, keys: dict[str, tuple[str, Ed25519PublicKey]],
                 signed_from: dict[str, dict[int, int]] | None = None, directory: Path | None = None,
                 reload_after_s: float = 10.0) -> None:
        self._keys = dict(keys)
        self._signed_from = signed_from or {}
        self._directory = directory
        self._reload_after_s = reload_after_s
        self._loaded_at = time.monotonic()
        self._lock = threading.Lock()

    @classmethod
    def load(cls, directory: Path) -> TrustedSigners:
        keys, signed_from = _read_trust(directory)
        return cls(keys, signed_from, directory)

    def service_of(self, key_id: str) -> str | None:
        known = self._keys.get(key_id)
        if known is None and self._directory is not None:
            with self._lock:
                if time.monotonic() - self._loaded_at >= self._reload_after_s:
                    self._keys, self._signed_from = _read_trust(self._directory)
                    self._loaded_at = time.monotonic()
            known = self._keys.get(key_id)
        return known[0] if known else None

    def verify(self, owner: str, key_id: str, signature: bytes, message: bytes) -> None:
        """Raises UntrustedSignature unless `owner` signed `message` with a key listed for it."""
        service = self.service_of(key_id)
        if service is None:
            raise UntrustedSignature("unknown-signing-key", f"no trusted key {key_id[:32]!r}")
        if service != owner:
            raise UntrustedSignature("signer-not-owner", f"key {key_id} is {service}'s, the topic is {owner}'s")
        try:
            self._keys[key_id][1].verify(signature, message)
        except InvalidSignature as error:
            raise UntrustedSignature("bad-signature", f"signature by {owner} key {key_id} does not match") from error

    def unsigned_below(self, topic: str, partition: int) -> int:
        """Records of `topic` at offsets below this were written before signing began."""
        return self._signed_from.get(topic, {}).get(partition, 0)


def _read_trust(directory: Path) -> tuple[dict[str, tuple[str, Ed25519PublicKey]], dict[str, dict[int, int]]]:
    keys: dict[str, tuple[str, Ed25519PublicKey]] = {}
    for path in sorted(directory.glob(f"*{PUBLIC_KEY_SUFFIX}")):
        service, _, _ = path.name.removesuffix(PUBLIC_KEY_SUFFIX).partition(".")
        public = Ed25519PublicKey.from_public_bytes(base64.b64decode(path.read_text().strip()))
        keys[signing_key_id(public)] = (service, public)
    signed_from: dict[str, dict[int, int]] = {}
    marks = directory / SIGNED_FROM_FILE
    if marks.exists():
        signed_from = {topic: {int(p): int(o) for p, o in partitions.items()}
                       for topic, partitions in json.loads(marks.read_text()).items()}
    return keys, signed_from


def public_key_file(public_dir: Path, service: str, public: Ed25519PublicKey) -> Path:
    return public_dir / f"{service}.{signing_key_id(public)}{PUBLIC_KEY_SUFFIX}"


def new_signing_key(private_dir: Path, public_dir: Path, service: str, rotate: bool = False) -> str:
    """Makes `service`'s signing key (its .pub published first, so no reader ever meets a key it
    cannot know). Without `rotate`, a key already there is kept: safe when processes start at
    once. Returns the id of the key now in use."""
    private_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    public_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    target = private_dir / f"{service}{SIGNING_KEY_SUFFIX}"
    if target.exists() and not rotate:
        return SigningKeys.load(private_dir).for_service(service).key_id  # type: ignore[union-attr]
    private = Ed25519PrivateKey.generate()
    public_path = public_key_file(public_dir, service, private.public_key())
    public_path.write_text(base64.b64encode(private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))
                           .decode() + "\n")
    pem = private.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    temporary = private_dir / f".{service}.{os.getpid()}.{threading.get_ident()}.tmp"
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(pem)
    try:
        if rotate:
            os.replace(temporary, target)
        else:
            os.link(temporary, target)  # fails when another process made the key first
    except FileExistsError:
        public_path.unlink(missing_ok=True)
        return SigningKeys.load(private_dir).for_service(service).key_id  # type: ignore[union-attr]
    finally:
        temporary.unlink(missing_ok=True)
    return signing_key_id(private.public_key())


def load_event_signing(private_dir: Path, public_dir: Path, service: str, *, create_for: tuple[str, ...] = ()
                       ) -> tuple[SigningKeys, TrustedSigners]:
    """A service's signing keys and the readers' trust, made first for `create_for` where
    missing (the embedded default makes every service's; a deployment provisions them and
    makes none). Refuses to start without the service's own key."""
    for name in create_for:
        new_signing_key(private_dir, public_dir, name)
    signing = SigningKeys.load(private_dir) if private_dir.exists() else SigningKeys({})
    if signing.for_service(service) is None:
        raise ValueError(f"no signing key for {service} in {private_dir}: provision one with "
                         f"`python -m shared.crypto new-signing-key --service {service}`")
    return signing, TrustedSigners.load(public_dir)


def new_master_key() -> str:
    return base64.b64encode(os.urandom(KEY_BYTES)).decode()


USAGE = """usage: python -m shared.crypto new-key
       python -m shared.crypto new-signing-key --service NAME --private-dir DIR --public-dir DIR [--rotate]
"""


def _main(argv: list[str]) -> int:
    if argv == ["new-key"]:
        sys.stdout.write(new_master_key() + "\n")
        return 0
    if argv[:1] == ["new-signing-key"]:
        import argparse

        parser = argparse.ArgumentParser(prog="python -m shared.crypto new-signing-key")
        parser.add_argument("--service", required=True)
        parser.add_argument("--private-dir", required=True, type=Path)
        parser.add_argument("--public-dir", required=True, type=Path)
        parser.add_argument("--rotate", action="store_true", help="replace the key in use (old .pub stays)")
        args = parser.parse_args(argv[1:])
        sys.stdout.write(new_signing_key(args.private_dir, args.public_dir, args.service, args.rotate) + "\n")
        return 0
    sys.stderr.write(USAGE)
    return 2


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
