"""The registry's relay: applies scheduled changes when their moment comes, publishes the event
outbox to Kafka in order, and sends the office mail over SMTP. `python -m services.registry.relay`.

Outboxes make the database the one place a decision is recorded: a crash after the commit and
before the broker or the mail server acknowledged only delays the send, it never loses it. A
send whose acknowledgement was lost is repeated with the same event id / Message-ID, so
consumers (processed-events table) and mail clients (Message-ID) recognise the repeat.
"""

from __future__ import annotations

import json
import logging
import signal
import smtplib
import threading
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime
from types import FrameType

from kafka import KafkaProducer
from sqlalchemy import select, update
from sqlalchemy.engine import Engine

from services.registry import store
from services.registry.service import RegistryService
from shared.clock import Clock

log = logging.getLogger(__name__)


@dataclass
class RelayStats:
    applied: int = 0
    published: int = 0
    mailed: int = 0
    mail_failures: int = 0


class Relay:
    def __init__(self, *, engine: Engine, service: RegistryService, producer: KafkaProducer, clock: Clock,
                 smtp_host: str, smtp_port: int, mail_from: str, interval_s: float = 0.05) -> None:
        self._engine = engine
        self._service = service
        self._producer = producer
        self._clock = clock
        self._smtp_host = smtp_host
        self._smtp_port = smtp_port
        self._mail_from = mail_from
        self._interval_s = interval_s
        self.stats = RelayStats()
        self.stop_event = threading.Event()

    def run(self) -> RelayStats:
        log.info("relay started")
        while not self.stop_event.is_set():
            try:
                busy = self.run_once()
            except Exception as error:
                log.warning("relay round failed, retrying", extra={"reason": type(error).__name__})
                busy = False
            if not busy:
                self.stop_event.wait(self._interval_s)
        self._producer.flush()
        log.info("relay stopped", extra={"count": self.stats.published})
        return self.stats

    def run_once(self) -> bool:
        """One round; True when there was work (so the next round starts without waiting)."""
        now = self._clock.now()
        with self._engine.begin() as connection:
            applied = self._service.apply_due(connection, now)
        published = self._publish(now)
        mailed = self._send_mail()
        self.stats.applied += applied
        self.stats.published += published
        self.stats.mailed += mailed
        return bool(applied or published or mailed)

    def _publish(self, now: object, limit: int = 500) -> int:
        with self._engine.connect() as connection:
            rows = connection.execute(select(store.outbox).where(
                store.outbox.c.published_at.is_(None), store.outbox.c.applied.is_(True),
                store.outbox.c.emit_at <= now).order_by(store.outbox.c.seq).limit(limit)).all()
        if not rows:
            return 0
        futures = [self._producer.send(row.topic, key=row.key, value=row.value,
                                       headers=[(k, v.encode()) for k, v in json.loads(row.headers)])
                   for row in rows]
        self._producer.flush(timeout=30)
        for future in futures:
            future.get(timeout=30)  # raises if the broker did not take it: those rows stay unpublished
        with self._engine.begin() as connection:
            connection.execute(update(store.outbox).where(store.outbox.c.seq.in_([row.seq for row in rows]))
                               .values(published_at=self._clock.now()))
        return len(rows)

    def _send_mail(self, limit: int = 20) -> int:
        with self._engine.connect() as connection:
            rows = connection.execute(select(store.mail_outbox).where(store.mail_outbox.c.sent_at.is_(None))
                                      .order_by(store.mail_outbox.c.id).limit(limit)).all()
        sent = 0
        for row in rows:
            message = EmailMessage()
            message["From"] = self._mail_from
            message["To"] = row.recipient
            message["Subject"] = row.subject
            message["Message-ID"] = row.message_id
            message["Date"] = format_datetime(row.created_at)
            message.set_content(row.body)
            try:
                with smtplib.SMTP(self._smtp_host, self._smtp_port, timeout=10) as smtp:
                    smtp.send_message(message)
            except (OSError, smtplib.SMTPException) as error:
                self.stats.mail_failures += 1
                with self._engine.begin() as connection:
                    connection.execute(update(store.mail_outbox).where(store.mail_outbox.c.id == row.id)
                                       .values(attempts=row.attempts + 1))
                log.warning("office mail not sent, will retry", extra={"reason": type(error).__name__,
                                                                      "attempt": row.attempts + 1})
                break  # the server is down: try again next round
            with self._engine.begin() as connection:
                connection.execute(update(store.mail_outbox).where(store.mail_outbox.c.id == row.id)
                                   .values(sent_at=self._clock.now(), attempts=row.attempts + 1))
            sent += 1
        return sent


def main() -> None:
    from services.registry.bootstrap import build, build_relay
    from services.registry.settings import RegistrySettings
    from shared.logging import configure_logging

    settings = RegistrySettings()
    configure_logging("registry-relay", settings.log_level)
    relay = build_relay(build(settings))

    def _stop(_signum: int, _frame: FrameType | None) -> None:
        relay.stop_event.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    relay.run()


if __name__ == "__main__":
    main()
