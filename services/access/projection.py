"""The access state as comparable facts, from the live tables or from a fold of the log: the
audit's "replay equals live" compares the two. Offered here so that nobody else reads the
access tables; which facts count is the access service's own knowledge."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from services.access import store
from services.access.domain import AccessState
from shared.db import read_once

# "staff <id>" / "dossier <id>" / "agreement <staff id>" -> the facts a replay must reproduce.
Facts = dict[str, tuple[str | bool | datetime | None, ...]]


def of_state(state: AccessState) -> Facts:
    facts: Facts = {}
    for staff_id, member in state.staff.items():
        facts[f"staff {staff_id}"] = (member.role.value if member.role else None,
                                      str(member.branch_id) if member.branch_id else None, member.departed_at)
    for dossier in state.dossiers.values():
        facts[f"dossier {dossier.dossier_id}"] = (str(dossier.contact_staff_id), dossier.open)
    for agreement in state.agreements.values():
        facts[f"agreement {agreement.staff_id}"] = (agreement.version, agreement.valid_until, agreement.revoked_at)
    return facts


def of_tables(database_url: str) -> Facts:
    staff, dossiers, agreements = read_once(database_url, store.projection_rows)
    facts: Facts = {f"staff {UUID(row.staff_id)}": (row.role, row.branch_id, row.departed_at) for row in staff}
    facts.update({f"dossier {row.dossier_id}": (row.contact_staff_id, row.open) for row in dossiers})
    facts.update({f"agreement {UUID(row.staff_id)}": (row.version, row.valid_until, row.revoked_at)
                  for row in agreements})
    return facts


def view_chain_heads(database_url: str) -> dict[str, tuple[str, int]]:
    """Per dossier the head of its hash chain of views (the audit checks the log against it)."""
    return read_once(database_url, store.chain_heads)
