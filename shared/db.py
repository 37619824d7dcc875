"""Database access: SQLAlchemy engines (SQLite embedded, PostgreSQL deployed) and Alembic migrations."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import DateTime, Engine, TypeDecorator, create_engine, event
from sqlalchemy.engine import Connection, Dialect, make_url
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError


def make_engine(url: str, **kwargs: Any) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            # WAL lets the API read while the processor writes; NORMAL sync is durable in WAL mode
            # against process crashes (SIGKILL), which is what the processors must survive.
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            # What a delete or update frees is overwritten with zeros, not left in free pages:
            # an erasure must not stay readable in the file (issue 16).
            cursor.execute("PRAGMA secure_delete=ON")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True, **kwargs)


def scrub_database(engine: Engine, *tables: str) -> None:
    """After personal data was deleted or overwritten: leave no readable copy of the old bytes.
    SQLite (with `secure_delete` on every connection, see make_engine) copies the WAL into the
    database and truncates the WAL to zero bytes; readers still open may hold the checkpoint
    back, so it is retried briefly. PostgreSQL cannot overwrite a row version: VACUUM prunes the
    tables' dead ones (their bytes may survive in PostgreSQL's WAL until it is recycled; the
    README, "Erasure", says what that means)."""
    if engine.dialect.name == "sqlite":
        for _ in range(50):
            with engine.connect() as connection:
                busy = connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").first()
            if busy is None or busy[0] == 0:
                return
            time.sleep(0.02)
        return
    if engine.dialect.name == "postgresql" and tables:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            for table in tables:
                connection.exec_driver_sql(f'VACUUM "{table}"')


_SCRUB_AFTER_COMMIT = "samenveilig.scrub_after_commit"


def scrub_after_commit(connection: Connection, *tables: str) -> None:
    """Ask for `scrub_database` once this transaction commits (the consumer runner does it): a
    handler that dropped a purged pupil's rows cannot checkpoint from inside its transaction."""
    connection.info.setdefault(_SCRUB_AFTER_COMMIT, set()).update(tables)


def take_scrub_request(connection: Connection) -> set[str] | None:
    """The tables a handler asked to scrub in this transaction (None: nothing asked)."""
    requested = connection.info.pop(_SCRUB_AFTER_COMMIT, None)
    return None if requested is None else set(requested)


def migrate(url: str, script_location: Path, version_table: str) -> None:
    """Bring the schema to the newest revision. Each service keeps its own version table so
    several services can share one PostgreSQL database."""
    config = Config()
    config.set_main_option("script_location", str(script_location))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["version_table"] = version_table
    # The API and the processor of a service start together and both migrate; when both try
    # the same DDL at once one fails, and its retry finds the work done.
    for attempt in range(5):
        try:
            command.upgrade(config, "head")
            return
        except (OperationalError, ProgrammingError, IntegrityError):
            if attempt == 4:
                raise
            time.sleep(0.2 * (attempt + 1))


def run_migrations_from_env_py(metadata: Any) -> None:
    """Body of every service's migrations/env.py (online mode only: we always have the DB)."""
    from alembic import context

    config = context.config
    engine = make_engine(config.get_main_option("sqlalchemy.url") or "")
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            version_table=config.attributes.get("version_table", "alembic_version"),
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in, timezone-aware UTC out, on SQLite (which drops the zone) too."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; pass a timezone-aware one")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


T = TypeVar("T")


def read_once(url: str, query: Callable[[Connection], T]) -> T:
    """One read on a database opened for it and closed after (offline tools such as the audit)."""
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return query(connection)
    finally:
        engine.dispose()
