"""The SQL key store: keys wrapped at rest, destroyed for good, shared between processes."""

from __future__ import annotations

import base64

import pytest
from cryptography.exceptions import InvalidTag
from sqlalchemy import select

from shared.crypto import KeyDestroyed, SqlKeyStore, data_keys, new_master_key
from shared.db import make_engine


@pytest.fixture
def engine(tmp_path):
    return make_engine(f"sqlite:///{tmp_path / 'keys.sqlite'}")


def master() -> bytes:
    return base64.b64decode(new_master_key())


def test_a_key_is_made_once_and_found_again_by_another_store(engine):
    secret = master()
    first = SqlKeyStore(engine, secret).key_for_writing("pupil/1")
    assert SqlKeyStore(engine, secret).key_for_reading("pupil/1") == first
    assert SqlKeyStore(engine, secret).key_for_writing("pupil/1") == first
    assert SqlKeyStore(engine, secret).key_for_reading("pupil/2") is None


def test_keys_are_stored_wrapped_not_in_clear(engine):
    store = SqlKeyStore(engine, master())
    key = store.key_for_writing("pupil/1")
    with engine.connect() as connection:
        stored = connection.execute(select(data_keys.c.wrapped_key)).scalar_one()
    assert key not in stored
    with pytest.raises(InvalidTag):
        SqlKeyStore(engine, master()).key_for_reading("pupil/1")  # another master key


def test_destroyed_keys_stay_destroyed(engine):
    store = SqlKeyStore(engine, master())
    store.key_for_writing("pupil/1")
    assert store.destroy("pupil/1") is True
    assert store.key_for_reading("pupil/1") is None
    with pytest.raises(KeyDestroyed):
        store.key_for_writing("pupil/1")
    assert store.destroy("pupil/1") is False
    with engine.connect() as connection:
        assert connection.execute(select(data_keys.c.wrapped_key)).scalar_one() is None


def test_destroying_a_key_never_made_blocks_it_from_being_made(engine):
    store = SqlKeyStore(engine, master())
    assert store.destroy("pupil/9") is False
    with pytest.raises(KeyDestroyed):
        store.key_for_writing("pupil/9")
