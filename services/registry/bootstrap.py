"""The registry, declared once (`SERVICE`), and its real adapters; tests build their own with
other ones."""

from __future__ import annotations

from functools import partial

from services.registry import store
from services.registry.credentials import CredentialStore
from services.registry.deps import RegistryDeps
from services.registry.handlers import apply_retention_event, handle_intake, make_intake_decoder
from services.registry.service import RegistryService
from services.registry.settings import RegistrySettings
from shared.clock import Clock, SystemClock
from shared.contracts.envelope import service_codec
from shared.contracts.topics import Topic, TopicNames
from shared.crypto import open_key_store
from shared.db import make_engine
from shared.kafka.consumer import ConsumerRunner
from shared.kit import Processor, RelayTask, ServiceDeclaration
from shared.outbox import OutboxRelay


def build(settings: RegistrySettings, clock: Clock | None = None) -> RegistryDeps:
    store.migrate_to_newest(settings.database_url)
    engine = make_engine(settings.database_url)
    clock = clock or SystemClock()
    keys = open_key_store(settings.keystore_url, settings.master_key_bytes(), settings.epoch_keys_url)
    topics = TopicNames(settings.topic_prefix)
    codec = service_codec(keys, "registry", topics, settings.signing_paths(), settings.signing_create_keys)
    service = RegistryService(codec, clock, office_email=str(settings.office_email),
                              mail_domain=str(settings.mail_from).split("@")[1])
    return RegistryDeps(settings=settings, engine=engine, codec=codec, topics=topics, clock=clock, service=service,
                        credentials=CredentialStore(engine, settings.master_key_bytes(), clock, codec))


def relay_tasks(deps: RegistryDeps) -> list[RelayTask]:
    """Scheduled changes are applied when their moment comes."""
    def apply_due() -> int:
        with deps.engine.begin() as connection:
            return deps.service.apply_due(connection, deps.clock.now())

    return [apply_due]


SERVICE: ServiceDeclaration[RegistrySettings, RegistryDeps] = ServiceDeclaration(
    name="registry",
    description="The door through which school systems report branch, staff, pupil and dossier mutations. "
                "Answers are RFC 9457 problem documents on error.",
    settings=RegistrySettings, build=build, tables=store,
    # The mutations topic is the Kafka door: made here too, so school systems can publish to it.
    publishes=(Topic.REGISTRY_MUTATIONS, Topic.REGISTRY_EVENTS),
    processors=(
        # The Kafka door: signed mutations, decided exactly as the HTTP door decides them.
        Processor("registry-intake", (Topic.REGISTRY_MUTATIONS,),
                  lambda deps: partial(handle_intake, deps.service),
                  decoder=lambda deps: make_intake_decoder(deps.credentials)),
        # A purged pupil's registry rows go.
        Processor("registry-follower", (Topic.RETENTION_EVENTS,), lambda deps: apply_retention_event,
                  group_suffix="-follower"),
    ),
    routes="services.registry.routes",
    relay_tasks=relay_tasks,
)


def ensure_registry_topics(deps: RegistryDeps) -> None:
    SERVICE.ensure_published_topics(deps)


def build_relay(deps: RegistryDeps) -> OutboxRelay:
    return SERVICE.relay(deps)


def build_intake_runner(deps: RegistryDeps) -> ConsumerRunner:
    return SERVICE.runner(deps, "registry-intake")


def build_follower(deps: RegistryDeps) -> ConsumerRunner:
    return SERVICE.runner(deps, "registry-follower")
