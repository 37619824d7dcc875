"""The auth service, declared once (`SERVICE`), and its real adapters; tests build their own with
other ones."""

from __future__ import annotations

from argon2 import PasswordHasher

from services.auth import store
from services.auth.deps import AuthDeps
from services.auth.service import AuthService
from services.auth.settings import AuthSettings
from shared.clock import Clock, SystemClock
from shared.contracts.envelope import service_codec
from shared.contracts.topics import Topic, TopicNames
from shared.crypto import open_key_store
from shared.db import make_engine
from shared.kafka.consumer import ConsumerRunner
from shared.kit import Processor, ServiceDeclaration
from shared.outbox import OutboxRelay
from shared.ratelimit import Throttle, trusted_networks


def build(settings: AuthSettings, clock: Clock | None = None) -> AuthDeps:
    store.migrate_to_newest(settings.database_url)
    engine = make_engine(settings.database_url)
    clock = clock or SystemClock()
    keys = open_key_store(settings.keystore_url, settings.master_key_bytes(), settings.epoch_keys_url)
    topics = TopicNames(settings.topic_prefix)
    codec = service_codec(keys, "auth", topics, settings.signing_paths(), settings.signing_create_keys)
    hasher = PasswordHasher(time_cost=settings.argon2_time_cost, memory_cost=settings.argon2_memory_kib)
    service = AuthService(codec, clock, settings.master_key_bytes(), hasher, settings.auth_url,
                          str(settings.mail_from).split("@")[1])
    throttle = Throttle({"login": settings.login_rate_per_address, "token": settings.token_rate_per_address,
                         "introspect": settings.introspect_rate_per_address})
    return AuthDeps(settings=settings, engine=engine, codec=codec, topics=topics, clock=clock, service=service,
                    throttle=throttle, proxies=trusted_networks(settings.trusted_proxies))


SERVICE: ServiceDeclaration[AuthSettings, AuthDeps] = ServiceDeclaration(
    name="auth",
    description="Kindkans login with two factors, and an OpenID Connect provider for other applications.",
    settings=AuthSettings, build=build, tables=store,
    publishes=(Topic.AUTH_EVENTS,),
    # Joined -> invited; departed -> disabled, every session ended.
    processors=(Processor("auth-processor", (Topic.REGISTRY_EVENTS,), lambda deps: deps.service.apply),),
    routes="services.auth.routes",
    # Back-channel logouts go out from the relay, beside the outbox and the mail.
    relay_tasks=lambda deps: [lambda: deps.service.provider.deliver_logouts(deps.engine)],
    # An invitation carries a secret link: once sent, its body is not kept.
    mail_options=lambda deps: {"redact_after_send": True},
)


def build_runner(deps: AuthDeps) -> ConsumerRunner:
    return SERVICE.runner(deps)


def build_relay(deps: AuthDeps) -> OutboxRelay:
    return SERVICE.relay(deps)
