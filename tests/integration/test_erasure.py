"""Issue 16, item 1: nothing readable after an erasure. The key-recovery attempt: after a destroy,
the destroyed wrapped key is searched for in the key store's own files (SQLite: the database, its
WAL and shared memory) and, on PostgreSQL, in the key table's raw pages (dead row versions)."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag
from sqlalchemy import select, text
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


def _recover_from_postgresql(engine, wrapped: bytes, key_id: str, candidates: list[bytes]) -> bytes | None:
    """What an attacker with the database's superuser (or its files) and every key still in
    existence tries: find the destroyed row version in the key table's raw pages and in
    PostgreSQL's WAL, and unwrap it with each key there is."""
    from shared.crypto import unseal

    with engine.connect() as connection:
        connection.execute(text("CREATE EXTENSION IF NOT EXISTS pageinspect"))
        connection.commit()
        blocks = connection.execute(text("SELECT pg_relation_size('data_keys') / current_setting('block_size')::int"
                                         )).scalar_one()
        pages = [bytes(connection.execute(text("SELECT get_raw_page('data_keys', :n)"), {"n": n}).scalar_one())
                 for n in range(blocks)]
        wal = [bytes(connection.execute(text("SELECT pg_read_binary_file('pg_wal/' || :name)"),
                                        {"name": name}).scalar_one())
               for name in connection.execute(text("SELECT name FROM pg_ls_waldir()")).scalars()]
    if not any(wrapped in blob for blob in pages + wal):
        return None
    for candidate in candidates:
        try:
            return unseal(candidate, wrapped, key_id.encode())
        except InvalidTag:  # not this key
            continue
    return None


@pytest.mark.every_database
def test_a_destroyed_key_cannot_be_recovered_from_postgresqls_dead_tuples_and_wal(database_url, tmp_path):
    from shared.crypto import EpochKeys, open_key_store

    if make_url(database_url).get_backend_name() != "postgresql":
        pytest.skip("PostgreSQL only (SAMENVEILIG_TEST_POSTGRES_URL)")
    master = base64.b64decode(new_master_key())
    epochs_url = f"sqlite:///{tmp_path / 'epoch-keys.sqlite'}"
    store = open_key_store(database_url, master, epochs_url)
    engine = make_engine(database_url)
    for number in range(20):
        store.key_for_writing(f"pupil/{number}")
    wrapped = _wrapped(engine, "pupil/7")
    kept = store.key_for_reading("pupil/8")

    epochs = EpochKeys(make_engine(epochs_url), master)
    first_epoch_key = epochs.key(1)
    with make_engine(epochs_url).connect() as connection:
        first_epoch_wrapped = bytes(connection.execute(text("SELECT wrapped_key FROM epoch_keys")).scalar_one())

    assert store.destroy("pupil/7") is True
    # Until the rotation the old row version is readable: the attack works (the window the README
    # names lasts until the purge round's rotation, right after its destroys).
    assert _recover_from_postgresql(engine, wrapped, "pupil/7", [master, first_epoch_key]) is not None
    assert store.rotate() == 2

    live_epoch_keys = [key for epoch in range(1, 10) if (key := epochs.key(epoch)) is not None]
    assert len(live_epoch_keys) == 1
    assert _recover_from_postgresql(engine, wrapped, "pupil/7", [master, *live_epoch_keys]) is None
    # The epoch key that wrapped it is not in the epoch file (nor its WAL) either.
    database = tmp_path / "epoch-keys.sqlite"
    assert [path.name for path in _files_of(database) if first_epoch_wrapped in path.read_bytes()] == []
    assert open_key_store(database_url, master, epochs_url).key_for_reading("pupil/8") == kept
    assert store.key_for_reading("pupil/7") is None
    assert all(path.stat().st_size == 0 for path in _files_of(database) if path.name.endswith("-wal"))


@pytest.mark.every_database
def test_without_epoch_keys_postgresql_gives_a_destroyed_key_back(database_url):
    """The finding of issue 16, kept as proof that the attack above is a real one: a key store on
    PostgreSQL without epoch keys keeps the destroyed key recoverable (so it refuses to open)."""
    from shared.crypto import open_key_store

    if make_url(database_url).get_backend_name() != "postgresql":
        pytest.skip("PostgreSQL only (SAMENVEILIG_TEST_POSTGRES_URL)")
    master = base64.b64decode(new_master_key())
    engine = make_engine(database_url)
    store = SqlKeyStore(engine, master)
    key = store.key_for_writing("pupil/7")
    wrapped = _wrapped(engine, "pupil/7")
    store.destroy("pupil/7")
    assert _recover_from_postgresql(engine, wrapped, "pupil/7", [master]) == key
    with pytest.raises(ValueError, match="EPOCH_KEYS_URL"):
        open_key_store(database_url, master)
