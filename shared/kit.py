"""The service kit: a service is declared once (`ServiceDeclaration`), and the kit gives it its
processors, its relay, its API app and the `main` of each of its processes. Every service is
wired the same way, so what one process does (topics made before use, dead letters, health,
JSON logs, a clean stop) every process does.

A declaration names: the service, its settings, how its dependencies are built, its store module
(the plumbing tables: outbox, mail outbox, processed events, consumer positions), the topics it
publishes, its processors (the topics each follows and the handler that applies an event, which
dispatches through the domain's table), the relay's own tasks, and the module of its routes.
The routes (and FastAPI with them) are imported only when an app is made: a processor or a
relay does not load the web stack it never serves (about half of a process's start-up).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import import_module
from types import ModuleType
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from sqlalchemy.engine import Engine

from shared.clock import Clock
from shared.contracts.envelope import EventCodec
from shared.contracts.topics import Topic, TopicNames, intake_topic_configs
from shared.kafka.admin import ensure_topics
from shared.kafka.confirm import PublishedConfirmer
from shared.kafka.consumer import ConsumerRunner, Decoder, Handler
from shared.kafka.producer import EventPublisher
from shared.outbox import MailSender, OutboxRelay, RelayedOutbox, publish_due
from shared.runtime import build_consumer, run_consumer, run_relay
from shared.settings import MailSettings

if TYPE_CHECKING:
    from fastapi import FastAPI


class ServiceDeps(Protocol):
    """What the kit needs of every service's dependencies (each service's `XDeps` dataclass)."""

    @property
    def settings(self) -> MailSettings: ...

    @property
    def engine(self) -> Engine: ...

    @property
    def codec(self) -> EventCodec: ...

    @property
    def topics(self) -> TopicNames: ...

    @property
    def clock(self) -> Clock: ...


S = TypeVar("S", bound=MailSettings)
D = TypeVar("D", bound=ServiceDeps)
RelayTask = Callable[[], int]


@dataclass(frozen=True)
class Processor(Generic[D]):
    """One consuming process of a service: the topics it follows and what applies each event."""

    process: str  # the process's name (logs, health), e.g. "access-processor"
    follows: Sequence[Topic]
    handler: Callable[[D], Handler]
    # The consumer group is the service's `consumer_group` setting plus this suffix.
    group_suffix: str = ""
    # A door for records not in our envelope (signed school-system mutations) decodes them itself.
    decoder: Callable[[D], Decoder] | None = None


@dataclass(frozen=True)
class ServiceDeclaration(Generic[S, D]):
    name: str
    description: str  # the API's OpenAPI description
    settings: Callable[[], S]
    build: Callable[[S], D]
    tables: ModuleType  # the service's store module
    publishes: Sequence[Topic]  # made (with their dead-letter topics) before the relay publishes
    processors: Sequence[Processor[D]]
    # The module whose ROUTERS the API serves, e.g. "services.access.routes". Anything an app
    # needs beyond its routers (a metrics collector) is that module's `configure_app(app, deps)`.
    routes: str
    # Work of the relay's own, run each round before the outbox is published (due purges,
    # scheduled mutations, alarms), so what they emit goes out in the same round.
    relay_tasks: Callable[[D], list[RelayTask]] = field(default=lambda deps: [])
    # Options of the mail sender (a send-time policy check; not keeping a body that held a secret).
    mail_options: Callable[[D], dict[str, Any]] = field(default=lambda deps: {})

    # --- what the kit gives a service ----------------------------------------------------

    def processor(self, process: str) -> Processor[D]:
        for processor in self.processors:
            if processor.process == process:
                return processor
        raise KeyError(f"{self.name} has no processor {process!r}")

    def runner(self, deps: D, process: str | None = None) -> ConsumerRunner:
        """The consumer runner of one processor (the only one when the service has one)."""
        declared = self.processor(process) if process else self._only_processor()
        return build_consumer(
            deps.settings, self.tables, topics=[deps.topics(topic) for topic in declared.follows],
            engine=deps.engine, codec=None if declared.decoder else deps.codec,
            decoder=declared.decoder(deps) if declared.decoder else None, handler=declared.handler(deps),
            clock=deps.clock, group=f"{deps.settings.consumer_group}{declared.group_suffix}")

    def ensure_published_topics(self, deps: D) -> None:
        names = [deps.topics(topic) for topic in self.publishes]
        ensure_topics(deps.settings.kafka_bootstrap_servers, names + [f"{name}.dlq" for name in names],
                      deps.settings.topic_partitions, deps.settings.topic_replication,
                      configs=intake_topic_configs(deps.topics, deps.settings.intake_retention_s))

    def relay(self, deps: D) -> OutboxRelay:
        """The relay's own tasks, then the outbox published in order, confirmed against the
        broker's log, and the mail sent."""
        settings, tables = deps.settings, self.tables
        self.ensure_published_topics(deps)
        publisher = EventPublisher.connect(settings.kafka_bootstrap_servers, f"{self.name}-relay")
        mail = MailSender(deps.engine, tables.mail_outbox, deps.clock, settings.smtp_host, settings.smtp_port,
                          str(settings.mail_from), **self.mail_options(deps))
        tasks: list[RelayTask] = [*self.relay_tasks(deps),
                                  lambda: publish_due(deps.engine, tables.outbox, publisher, deps.clock),
                                  PublishedConfirmer(deps.engine, tables.outbox,
                                                     settings.kafka_bootstrap_servers, deps.clock),
                                  mail.send_pending]
        return OutboxRelay(f"{self.name}-relay", tasks, settings.relay_interval_s,
                           relayed=RelayedOutbox(deps.engine, tables.outbox, publisher, deps.clock))

    def app(self, deps: D) -> FastAPI:
        from shared.api import service_app
        from shared.bearer import KeySource, TokenVerifier, check_every_route_declares

        routes = import_module(self.routes)
        settings = deps.settings
        # Tokens for this API name it (its service name) as audience; keys from the provider's JWKS.
        jwks_url = settings.oidc_jwks_url or f"{settings.oidc_issuer.rstrip('/')}/oauth2/jwks"
        verifier = TokenVerifier(settings.oidc_issuer, self.name, KeySource.from_url(jwks_url))
        app = service_app(name=self.name, description=self.description, deps=deps, routers=routes.ROUTERS,
                          outbox=self.tables.outbox, max_body_bytes=settings.api_max_body_bytes, verifier=verifier)
        if hasattr(routes, "configure_app"):
            routes.configure_app(app, deps)
        check_every_route_declares(app)
        return app

    # --- the processes' mains ------------------------------------------------------------

    def run_processor(self, process: str | None = None) -> None:
        declared = self.processor(process) if process else self._only_processor()
        run_consumer(declared.process, self.settings(), self.build,
                     lambda deps: self.runner(deps, declared.process))

    def run_relay(self) -> None:
        run_relay(f"{self.name}-relay", self.settings(), self.build, self.relay)

    def run_api(self) -> None:
        from shared.api import serve

        settings = self.settings()
        serve(f"{self.name}-api", settings, lambda: self.app(self.build(settings)))

    def _only_processor(self) -> Processor[D]:
        if len(self.processors) != 1:
            raise ValueError(f"{self.name} has {len(self.processors)} processors: name the one meant")
        return self.processors[0]
