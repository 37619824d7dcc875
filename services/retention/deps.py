"""What the retention service's processes share, built by `services.retention.bootstrap.build`."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Engine

from services.retention.leaks import LeakDesk
from services.retention.requests import RequestDesk
from services.retention.service import RetentionService
from services.retention.settings import RetentionSettings
from shared.clock import Clock
from shared.contracts.envelope import EventCodec
from shared.contracts.topics import TopicNames


@dataclass
class RetentionDeps:
    settings: RetentionSettings
    engine: Engine
    codec: EventCodec
    topics: TopicNames
    clock: Clock
    service: RetentionService
    leaks: LeakDesk
    requests: RequestDesk
