"""What the access service's processes share, built by `services.access.bootstrap.build`."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Engine

from services.access.service import AccessService
from services.access.settings import AccessSettings
from shared.clock import Clock
from shared.contracts.envelope import EventCodec
from shared.contracts.topics import TopicNames
from shared.crypto import KeyStore
from shared.kafka.progress import Progress
from shared.outbox import UpstreamOutboxes


@dataclass
class AccessDeps:
    settings: AccessSettings
    engine: Engine
    keys: KeyStore
    codec: EventCodec
    topics: TopicNames
    clock: Clock
    service: AccessService
    upstream_outboxes: UpstreamOutboxes
    # What the processor applied, where it stands; the service marks its own grants in it too.
    progress: Progress
