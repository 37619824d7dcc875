"""Who may do what in the retention service: pure rules over the verified caller and the branch a
pupil (or request, or leak) belongs to. The routes ask; nothing here reads a table or a clock.

- The school board's privacy officer (role `fg`, functionaris gegevensbescherming) handles
  data-subject requests, leaks, legal holds and consent for every branch of their own board:
  the branches whose `bevoegd_gezag` is the same as their own branch's. A branch whose board was
  never reported is a board of its own.
- A school's director or administrator records and reads consent for their own branch; any staff
  member of the branch may ask whether consent holds ("may we publish this photo?").
- A service acting on its own (client credentials: no person) reads, with `retention:read`
  (an auditor's tool, the back office), and never changes anything: every change is a person's,
  directly or through a service acting for them with an exchanged token (RFC 8693).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from uuid import UUID

from shared.contracts.events import StaffRole


class Action(StrEnum):
    READ_CONSENT = "read-consent"
    CHANGE_CONSENT = "change-consent"
    READ = "read"  # requests, exports, letters, leaks, purges
    CHANGE = "change"  # holds, requests, leaks


@dataclass(frozen=True)
class Actor:
    """The verified caller as the rules see it."""

    is_person: bool
    role: str | None
    branch_id: UUID | None


@dataclass(frozen=True)
class Refusal:
    rule: str
    detail: str


FG = StaffRole.FG.value
CONSENT_KEEPERS = frozenset({StaffRole.DIRECTEUR.value, StaffRole.ADMINISTRATOR.value})
Boards = Mapping[UUID, str | None]  # branch -> bevoegd gezag (None: not reported)


def board_of(branch_id: UUID, boards: Boards) -> str:
    """The board a branch belongs to; an unreported one is a board of its own."""
    return boards.get(branch_id) or f"branch:{branch_id}"


def board_branches(board: str, boards: Boards) -> frozenset[UUID]:
    return frozenset(branch for branch in boards if board_of(branch, boards) == board)


def actor_board(actor: Actor, boards: Boards) -> str | None:
    """The board an FG acts for; None for anyone else."""
    if not actor.is_person or actor.role != FG or actor.branch_id is None:
        return None
    return board_of(actor.branch_id, boards)


def refusal(actor: Actor, action: Action, branch_id: UUID | None, boards: Boards) -> Refusal | None:
    """Why the actor may not do this for a pupil of `branch_id` (None: no pupil in particular,
    e.g. a listing or a new leak); None when they may."""
    if not actor.is_person:
        if action in (Action.READ, Action.READ_CONSENT):
            return None
        return Refusal("person-required", "changes are made by a person (the board's FG), not by a service on its own")
    board = actor_board(actor, boards)
    if board is not None:
        if branch_id is None or board_of(branch_id, boards) == board:
            return None
        return Refusal("other-board", "this concerns a pupil of another school board than the FG's")
    own_branch = branch_id is not None and actor.branch_id == branch_id
    if action is Action.READ_CONSENT and own_branch:
        return None
    if action is Action.CHANGE_CONSENT and own_branch and actor.role in CONSENT_KEEPERS:
        return None
    if action in (Action.READ_CONSENT, Action.CHANGE_CONSENT) and not own_branch:
        return Refusal("other-branch", "consent is kept by the pupil's own school")
    return Refusal("fg-only", "only the school board's FG (functionaris gegevensbescherming) may do this")


def visible_branches(actor: Actor, boards: Boards) -> frozenset[UUID] | None:
    """What a listing shows the actor: every branch (None) for a service that reads, the board's
    branches for an FG, nothing for anyone else."""
    if not actor.is_person:
        return None
    board = actor_board(actor, boards)
    return board_branches(board, boards) | ({actor.branch_id} if actor.branch_id else set()) if board else frozenset()


def leak_refusal(actor: Actor, action: Action, leak_board: str | None, boards: Boards) -> Refusal | None:
    """A leak belongs to the board whose FG registered it: theirs to read and complete. A service
    that reads sees every leak; a leak from before boards were recorded (None) only services read."""
    if not actor.is_person:
        return None if action is Action.READ else Refusal(
            "person-required", "changes are made by a person (the board's FG), not by a service on its own")
    board = actor_board(actor, boards)
    if board is None:
        return Refusal("fg-only", "only the school board's FG (functionaris gegevensbescherming) may do this")
    if leak_board != board:
        return Refusal("other-board", "this leak was registered for another school board")
    return None
