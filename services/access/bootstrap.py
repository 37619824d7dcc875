"""The access service, declared once (`SERVICE`), and its real adapters; tests build their own
with other ones."""

from __future__ import annotations

from collections.abc import Callable

from services.access import store
from services.access.deps import AccessDeps
from services.access.service import AccessService
from services.access.settings import AccessSettings
from shared.bearer import ClientCredentials
from shared.clock import Clock, SystemClock
from shared.contracts.envelope import service_codec
from shared.contracts.topics import Topic, TopicNames
from shared.crypto import open_key_store
from shared.db import make_engine
from shared.kafka.consumer import ConsumerRunner
from shared.kafka.progress import Progress
from shared.kit import Processor, ServiceDeclaration
from shared.outbox import OutboxRelay, UpstreamOutboxes

UPSTREAM_SCOPES = "registry:outbox retention:outbox"


def upstream_token(settings: AccessSettings) -> Callable[[], str | None]:
    """The access service's own token for the registry's and retention's /v1/outbox."""
    if not settings.oidc_client_id:
        return lambda: None
    token_url = settings.oidc_token_url or f"{settings.oidc_issuer.rstrip('/')}/oauth2/token"
    return ClientCredentials(token_url, settings.oidc_client_id, settings.oidc_client_secret.get_secret_value(),
                             UPSTREAM_SCOPES).token


def build(settings: AccessSettings, clock: Clock | None = None) -> AccessDeps:
    store.migrate_to_newest(settings.database_url)
    engine = make_engine(settings.database_url)
    keys = open_key_store(settings.keystore_url, settings.master_key_bytes(), settings.epoch_keys_url)
    topics = TopicNames(settings.topic_prefix)
    clock = clock or SystemClock()
    codec = service_codec(keys, "access", topics, settings.signing_paths(), settings.signing_create_keys)
    own_progress = Progress(store.processed_events, store.consumer_positions, settings.consumer_group,
                            store.stream_versions)
    service = AccessService(codec, clock, settings.kindkans_url, str(settings.mail_from).split("@")[1],
                            progress=own_progress)
    upstream = UpstreamOutboxes(settings.upstream_outbox_urls.split(","), settings.outbox_max_age_s,
                                token=upstream_token(settings))
    return AccessDeps(settings=settings, engine=engine, keys=keys, codec=codec, topics=topics, clock=clock,
                      service=service, upstream_outboxes=upstream, progress=own_progress)


# Registry facts, our own explicit grants (so the tables rebuild from the log alone), and purges
# (so a purged pupil's rows go).
FOLLOWS = (Topic.REGISTRY_EVENTS, Topic.ACCESS_EVENTS, Topic.RETENTION_EVENTS)

SERVICE: ServiceDeclaration[AccessSettings, AccessDeps] = ServiceDeclaration(
    name="access",
    description="Who may see which hulpvraag dossier, and why. Fails closed.",
    settings=AccessSettings, build=build, tables=store,
    publishes=(Topic.ACCESS_EVENTS,),
    processors=(Processor("access-processor", FOLLOWS, lambda deps: deps.service.apply),),
    routes="services.access.routes",
    # The notification mail checks the policy again at the moment of sending.
    mail_options=lambda deps: {"check": deps.service.send_check},
)


def source_topics(deps: AccessDeps) -> list[str]:
    return [deps.topics(topic) for topic in FOLLOWS]


def build_runner(deps: AccessDeps) -> ConsumerRunner:
    return SERVICE.runner(deps)


def build_relay(deps: AccessDeps) -> OutboxRelay:
    return SERVICE.relay(deps)
