"""Alembic environment of the auth service."""

from services.auth.store import metadata
from shared.db import run_migrations_from_env_py

run_migrations_from_env_py(metadata)
