"""Alembic environment of the registry service."""

from services.registry.store import metadata
from shared.db import run_migrations_from_env_py

run_migrations_from_env_py(metadata)
