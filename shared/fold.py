"""One replay step for every domain whose dispatch table folds through an entities port: the
same handlers as the live service, applied to an in-memory state instead of the tables."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar

from shared.contracts.envelope import RecordedEvent

S = TypeVar("S")


class InMemory(Protocol[S]):
    """A domain's entities port over an immutable state; `state` is the state after the saves."""

    state: S


def evolve_through(handlers: Mapping[type, Any], in_memory: Callable[[S], InMemory[S]], state: S,
                   recorded: RecordedEvent) -> S:
    """`handlers[type(event)].fold` on `in_memory(state)`; an event without a handler changes nothing."""
    handler = handlers.get(type(recorded.event))
    if handler is None:
        return state
    entities = in_memory(state)
    handler.fold(entities, recorded)
    return entities.state
