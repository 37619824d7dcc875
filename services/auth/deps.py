"""What the auth service's processes share, built by `services.auth.bootstrap.build`."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Engine

from services.auth.service import AuthService
from services.auth.settings import AuthSettings
from shared.clock import Clock
from shared.contracts.envelope import EventCodec
from shared.contracts.topics import TopicNames


@dataclass
class AuthDeps:
    settings: AuthSettings
    engine: Engine
    codec: EventCodec
    topics: TopicNames
    clock: Clock
    service: AuthService
