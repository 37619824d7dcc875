"""The registry state as comparable facts, from the live tables or from a fold of the log, and
the mutations it accepted: what the audit compares and accounts for, offered here so that
nobody else reads the registry tables."""

from __future__ import annotations

import json
from datetime import datetime

from services.registry import store
from services.registry.domain import RegistryState
from shared.db import read_once

# "branch <id>" / "person <id>" -> the facts a replay must reproduce.
Facts = dict[str, tuple[str | bool | None, ...]]


def of_state(state: RegistryState) -> Facts:
    facts: Facts = {f"branch {b.branch_id}": (b.vestigingscode, b.name, b.closed) for b in state.branches.values()}
    facts.update({f"person {p.staff_id}": (p.active,) for p in state.people.values()})
    return facts


def of_tables(database_url: str) -> Facts:
    branches, people = read_once(database_url, store.projection_rows)
    facts: Facts = {f"branch {row.branch_id}": (row.vestigingscode, row.name, row.closed) for row in branches}
    facts.update({f"person {row.staff_id}": (row.active,) for row in people})
    return facts


def accepted_mutations(database_url: str, now: datetime) -> list[tuple[str, list[str], bool]]:
    """(sender/mutation id, the event ids it led to, still scheduled for later) per recorded mutation."""
    rows = read_once(database_url, store.all_mutations)
    return [(f"{row.sender}/{row.mutation_id}", json.loads(row.event_ids),
             row.status == "scheduled" and row.effective_at > now) for row in rows]
