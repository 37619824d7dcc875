"""What the registry's processes share, built by `services.registry.bootstrap.build`."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Engine

from services.registry.credentials import CredentialStore
from services.registry.service import RegistryService
from services.registry.settings import RegistrySettings
from shared.clock import Clock
from shared.contracts.envelope import EventCodec
from shared.contracts.topics import TopicNames


@dataclass
class RegistryDeps:
    settings: RegistrySettings
    engine: Engine
    codec: EventCodec
    topics: TopicNames
    clock: Clock
    service: RegistryService
    credentials: CredentialStore
