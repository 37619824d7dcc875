"""Issue 16, item 1: nothing readable after an erasure. The key-recovery attempt: after a destroy,
the destroyed wrapped key is searched for in the key store's own files (SQLite: the database, its
WAL and shared memory) and, on PostgreSQL, in the key table's raw pages (dead row versions)."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from shared.crypto import SqlKeyStore, data_keys, new_master_key
from shared.db import make_engine


def _wrapped(engine, key_id: str) -> bytes:
    with engine.connect() as connection:
        return bytes(connection.execute(select(data_keys.c.wrapped_key).where(data_keys.c.key_id == key_id))
                     .scalar_one())


def _files_of(database: Path) -> list[Path]:
    return [path for path in database.parent.iterdir() if path.name.startswith(database.name)]


def test_a_destroyed_key_is_not_in_the_sqlite_file_nor_its_wal(tmp_path):
    database = tmp_path / "keystore.sqlite"
    engine = make_engine(f"sqlite:///{database}")
    store = SqlKeyStore(engine, base64.b64decode(new_master_key()))
    for number in range(20):  # neighbours on the same page, so the page stays in use
        store.key_for_writing(f"pupil/{number}")
    destroyed = _wrapped(engine, "pupil/7")
    kept = _wrapped(engine, "pupil/8")
    assert any(destroyed in path.read_bytes() for path in _files_of(database))

    assert store.destroy("pupil/7") is True

    found = [path.name for path in _files_of(database) if destroyed in path.read_bytes()]
    assert found == [], f"the destroyed wrapped key can be read back from {found}"
    wal = database.with_name(database.name + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0, "the WAL is checkpointed and truncated"
    assert store.key_for_reading("pupil/8") is not None and _wrapped(engine, "pupil/8") == kept
