"""Alembic environment of the retention service."""

from services.retention.store import metadata
from shared.db import run_migrations_from_env_py

run_migrations_from_env_py(metadata)
