"""What the auth service's processes share, built by `services.auth.bootstrap.build`."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Engine

from services.auth.service import AuthService
from services.auth.settings import AuthSettings
from shared.clock import Clock
from shared.contracts.envelope import EventCodec
from shared.contracts.topics import TopicNames
from shared.ratelimit import Network, Throttle


@dataclass
class AuthDeps:
    settings: AuthSettings
    engine: Engine
    codec: EventCodec
    topics: TopicNames
    clock: Clock
    service: AuthService
    throttle: Throttle  # per real peer address, for the login steps
    proxies: tuple[Network, ...]  # whose X-Forwarded-For is believed
