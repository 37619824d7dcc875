"""The auth state as comparable facts (accounts: enrolled, disabled since; sessions: whose, which
second factor, why ended), from the live tables or from a fold of auth.events.v1: what the
audit's "replay equals live" compares, offered here so that nobody else reads the auth tables."""

from __future__ import annotations

from datetime import datetime

from services.auth import store
from services.auth.domain import AuthState
from shared.db import read_once

# "account <id>" / "session <id>" -> the facts a replay must reproduce.
Facts = dict[str, tuple[str | bool | datetime | None, ...]]


def of_state(state: AuthState) -> Facts:
    facts: Facts = {f"account {staff_id}": (account.enrolled, account.disabled_at)
                    for staff_id, account in state.accounts.items()}
    facts.update({f"session {session_id}": (session.staff_id, session.second_factor, session.ended_reason)
                  for session_id, session in state.sessions.items()})
    return facts


def of_tables(database_url: str) -> Facts:
    return of_state(read_once(database_url, store.load_facts))
