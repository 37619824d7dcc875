"""The registry's relay: applies scheduled changes when their moment comes, publishes the event
outbox to Kafka in order, and sends the office mail over SMTP. `python -m services.registry.relay`."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from services.registry import store
from services.registry.service import RegistryService
from shared.clock import Clock
from shared.kafka.confirm import PublishedConfirmer
from shared.kafka.producer import EventPublisher
from shared.outbox import MailSender, OutboxRelay, RelayedOutbox, publish_due


def make_relay(*, engine: Engine, service: RegistryService, publisher: EventPublisher, bootstrap: str, clock: Clock,
               smtp_host: str, smtp_port: int, mail_from: str, interval_s: float = 0.05) -> OutboxRelay:
    def apply_due() -> int:
        with engine.begin() as connection:
            return service.apply_due(connection, clock.now())

    mail = MailSender(engine, store.mail_outbox, clock, smtp_host, smtp_port, mail_from)
    return OutboxRelay("registry-relay", [
        apply_due,
        lambda: publish_due(engine, store.outbox, publisher, clock),
        PublishedConfirmer(engine, store.outbox, bootstrap, clock),
        mail.send_pending,
    ], interval_s, relayed=RelayedOutbox(engine, store.outbox, publisher, clock))


def main() -> None:
    from services.registry.bootstrap import build, build_relay
    from services.registry.settings import RegistrySettings
    from shared.runtime import run_relay

    run_relay("registry-relay", RegistrySettings(), build, build_relay)


if __name__ == "__main__":
    main()
