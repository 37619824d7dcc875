"""Alembic environment of the access service."""

from services.access.store import metadata
from shared.db import run_migrations_from_env_py

run_migrations_from_env_py(metadata)
