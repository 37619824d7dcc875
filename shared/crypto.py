"""Crypto-shredding: personal data is encrypted under a key per data subject, so destroying
that one key erases the subject from every copy of every topic."""

from __future__ import annotations

import base64
import os
import sys
import threading
import time
from typing import Protocol

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Column, LargeBinary, MetaData, String, Table, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

from shared.clock import Clock, SystemClock
from shared.db import UtcDateTime

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
)


class SqlKeyStore:
    """Keys in a SQL table (SQLite or PostgreSQL), wrapped under a master key from settings.

    No key is cached in memory: a destroyed key must stop decrypting in every process at once.
    """

    def __init__(self, engine: Engine, master_key: bytes, clock: Clock | None = None) -> None:
        if len(master_key) != KEY_BYTES:
            raise ValueError("master key must be 32 bytes")
        self._clock = clock or SystemClock()
        self._engine = engine
        self._master = master_key
        # Several services open the same key store at start; when two create the table at once,
        # one fails and its retry finds the table there.
        for attempt in range(5):
            try:
                _metadata.create_all(engine)
                break
            except (OperationalError, ProgrammingError, IntegrityError):
                if attempt == 4:
                    raise
                time.sleep(0.1 * (attempt + 1))

    def _wrap(self, key_id: str, key: bytes) -> bytes:
        return seal(self._master, key, key_id.encode())

    def _unwrap(self, key_id: str, wrapped: bytes) -> bytes:
        return unseal(self._master, wrapped, key_id.encode())

    def key_for_writing(self, key_id: str) -> bytes:
        existing = self._load(key_id)
        if existing is not None:
            wrapped, destroyed = existing
            if destroyed or wrapped is None:
                raise KeyDestroyed(key_id)
            return self._unwrap(key_id, wrapped)
        key = AESGCM.generate_key(bit_length=256)
        values = {"key_id": key_id, "wrapped_key": self._wrap(key_id, key),
                  "created_at": self._clock.now()}
        with self._engine.begin() as connection:
            dialect = connection.dialect.name
            insert_stmt = (postgresql.insert(data_keys) if dialect == "postgresql"
                           else sqlite.insert(data_keys))
            inserted = connection.execute(insert_stmt.values(**values).on_conflict_do_nothing()).rowcount
        if inserted == 1:
            return key
        # Another process won the race; whichever key is stored is the key.
        stored = self._load(key_id)
        if stored is None or stored[1] or stored[0] is None:
            raise KeyDestroyed(key_id)
        return self._unwrap(key_id, stored[0])

    def key_for_reading(self, key_id: str) -> bytes | None:
        existing = self._load(key_id)
        if existing is None or existing[1] or existing[0] is None:
            return None
        return self._unwrap(key_id, existing[0])

    def destroy(self, key_id: str) -> bool:
        now = self._clock.now()
        with self._engine.begin() as connection:
            result = connection.execute(
                update(data_keys).where(data_keys.c.key_id == key_id,
                                        data_keys.c.wrapped_key.is_not(None))
                .values(wrapped_key=None, destroyed_at=now))
            if result.rowcount:
                return True
            dialect = connection.dialect.name
            insert_stmt = (postgresql.insert(data_keys) if dialect == "postgresql"
                           else sqlite.insert(data_keys))
            connection.execute(insert_stmt.values(key_id=key_id, wrapped_key=None, created_at=now,
                                                  destroyed_at=now).on_conflict_do_nothing())
            return False

    def _load(self, key_id: str) -> tuple[bytes | None, bool] | None:
        with self._engine.connect() as connection:
            row = connection.execute(
                select(data_keys.c.wrapped_key, data_keys.c.destroyed_at)
                .where(data_keys.c.key_id == key_id)).first()
        if row is None:
            return None
        return row.wrapped_key, row.destroyed_at is not None


def new_master_key() -> str:
    return base64.b64encode(os.urandom(KEY_BYTES)).decode()


if __name__ == "__main__":  # `python -m shared.crypto new-key`
    if sys.argv[1:] == ["new-key"]:
        sys.stdout.write(new_master_key() + "\n")
    else:
        sys.stderr.write("usage: python -m shared.crypto new-key\n")
        sys.exit(2)
