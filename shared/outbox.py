"""Outboxes: events and e-mail decided in a service's database transaction, sent afterwards.

The database is the one place a decision is recorded: a crash after the commit and before the
broker or the mail server acknowledged only delays the send, it never loses it. A send whose
acknowledgement was lost is repeated with the same event id / Message-ID, so consumers
(processed-events table) and mail clients (Message-ID) recognise the repeat.
"""

from __future__ import annotations

import contextlib
import json
import logging
import smtplib
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime
from itertools import takewhile
from typing import Any

import httpx
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Row,
    String,
    Table,
    Text,
    and_,
    bindparam,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Connection, Engine

from shared.clock import Clock
from shared.contracts.envelope import EncodedEvent, EventCodec, RecordedEvent
from shared.contracts.events import Event
from shared.db import UtcDateTime
from shared.kafka.producer import STREAM_VERSION_HEADER, EventPublisher, NotAcknowledged, OutgoingRecord

log = logging.getLogger(__name__)


def define_outbox_tables(metadata: MetaData, prefix: str) -> tuple[Table, Table]:
    events = Table(
        f"{prefix}_outbox", metadata,
        Column("seq", Integer, primary_key=True, autoincrement=True),
        Column("event_id", String(100), nullable=False, unique=True),
        Column("topic", String(250), nullable=False),
        Column("key", LargeBinary, nullable=False),
        Column("value", LargeBinary, nullable=False),  # the encoded envelope: personal data sealed
        Column("headers", Text, nullable=False),
        # Published (and, if scheduled, applied to the service's state) once the clock reaches it.
        Column("emit_at", UtcDateTime(), nullable=False, index=True),
        Column("applied", Boolean, nullable=False),
        Column("published_at", UtcDateTime(), nullable=True, index=True),
        # The event's place in its stream (topic and key), given when it is first sent and kept
        # for every resend; consumers apply a stream in this order and see a gap as a loss.
        Column("stream_version", BigInteger, nullable=True),
        # Where the broker said it put the event, and when we saw it there ourselves.
        Column("ack_partition", Integer, nullable=True),
        Column("ack_offset", BigInteger, nullable=True),
        Column("confirmed_at", UtcDateTime(), nullable=True),
        Index(f"ix_{prefix}_outbox_stream", "topic", "key", "stream_version"),
    )
    mail = Table(
        f"{prefix}_mail_outbox", metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("message_id", String(200), nullable=False, unique=True),
        Column("recipient", String(320), nullable=False),
        Column("subject", String(300), nullable=False),
        Column("body", Text, nullable=False),
        # For mail about a dossier: who it is for and what about, so that the policy can be
        # checked again at the moment of sending (a departed IB'er gets nothing more).
        Column("staff_id", String(36), nullable=True),
        Column("dossier_id", String(36), nullable=True),
        Column("created_at", UtcDateTime(), nullable=False),
        Column("sent_at", UtcDateTime(), nullable=True, index=True),
        Column("suppressed_at", UtcDateTime(), nullable=True),
        Column("suppressed_reason", String(100), nullable=True),
        Column("attempts", Integer, nullable=False),
    )
    return events, mail


def create_outbox_tables(op: Any, prefix: str) -> None:
    """Alembic step of every service's first migration: its event outbox and mail outbox (the
    tables `define_outbox_tables` describes), defined here once."""
    import sqlalchemy as sa

    op.create_table(
        f"{prefix}_outbox",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(length=100), nullable=False),
        sa.Column("topic", sa.String(length=250), nullable=False),
        sa.Column("key", sa.LargeBinary(), nullable=False),
        sa.Column("value", sa.LargeBinary(), nullable=False),
        sa.Column("headers", sa.Text(), nullable=False),
        sa.Column("emit_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("applied", sa.Boolean(), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("event_id"),
    )
    op.create_index(op.f(f"ix_{prefix}_outbox_emit_at"), f"{prefix}_outbox", ["emit_at"], unique=False)
    op.create_index(op.f(f"ix_{prefix}_outbox_published_at"), f"{prefix}_outbox", ["published_at"], unique=False)
    op.create_table(
        f"{prefix}_mail_outbox",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("message_id", sa.String(length=200), nullable=False),
        sa.Column("recipient", sa.String(length=320), nullable=False),
        sa.Column("subject", sa.String(length=300), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("staff_id", sa.String(length=36), nullable=True),
        sa.Column("dossier_id", sa.String(length=36), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("suppressed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("suppressed_reason", sa.String(length=100), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("message_id"),
    )
    op.create_index(op.f(f"ix_{prefix}_mail_outbox_sent_at"), f"{prefix}_mail_outbox", ["sent_at"], unique=False)


def migrate_outbox_to_streams(op: Any, prefix: str) -> None:
    """Alembic step every service's migrations call: stream versions and read-back columns."""
    import sqlalchemy as sa

    table = f"{prefix}_outbox"
    with op.batch_alter_table(table) as batch:
        batch.add_column(sa.Column("stream_version", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("ack_partition", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("ack_offset", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index(f"ix_{prefix}_outbox_stream", table, ["topic", "key", "stream_version"], unique=False)


def enqueue_event(connection: Connection, outbox: Table, encoded: EncodedEvent, emit_at: datetime,
                  applied: bool = True) -> None:
    connection.execute(insert(outbox).values(
        event_id=encoded.id, topic=encoded.topic, key=encoded.key, value=encoded.value,
        headers=json.dumps([[k, v.decode()] for k, v in encoded.headers]), emit_at=emit_at, applied=applied))


class Outbox:
    """The one way a service writes an event: encoded (personal fields sealed) and queued in its
    outbox inside the caller's transaction, for its relay to publish."""

    def __init__(self, table: Table, codec: EventCodec) -> None:
        self.table = table
        self._codec = codec

    def emit(self, connection: Connection, event: Event, *, event_id: str, now: datetime,
             cause: RecordedEvent | None = None, effective_at: datetime | None = None,
             correlation_id: str | None = None, emit_at: datetime | None = None,
             applied: bool = True, unless_queued: bool = False) -> EncodedEvent | None:
        """Queue `event`; it takes effect at `effective_at` (else its cause's, else now) and is
        published from `emit_at` (else now). With `unless_queued`, an id queued before is not
        queued again and None comes back (a decision repeated on purpose); without it a second
        id fails on the table's unique key, as it should where ids are never repeated."""
        if unless_queued and connection.execute(
                select(self.table.c.seq).where(self.table.c.event_id == event_id)).first():
            return None
        encoded = self._codec.encode(
            event, event_id=event_id, recorded_at=now,
            effective_at=effective_at or (cause.effective_at if cause else now),
            correlation_id=correlation_id or (cause.correlation_id if cause else None),
            causation_id=cause.id if cause else None)
        enqueue_event(connection, self.table, encoded, emit_at=emit_at or now, applied=applied)
        return encoded


def enqueue_mail(connection: Connection, outbox: Table, *, message_id: str, recipient: str, subject: str, body: str,
                 created_at: datetime, staff_id: str | None = None, dossier_id: str | None = None) -> bool:
    """False when a mail with this Message-ID is already queued (a repeated decision)."""
    exists = connection.execute(select(outbox.c.id).where(outbox.c.message_id == message_id)).first()
    if exists:
        return False
    connection.execute(insert(outbox).values(
        message_id=message_id, recipient=recipient, subject=subject, body=body, staff_id=staff_id,
        dossier_id=dossier_id, created_at=created_at, attempts=0))
    return True


def publish_due(engine: Engine, outbox: Table, publisher: EventPublisher, clock: Clock, limit: int = 500) -> int:
    """Publish due, applied, unpublished events in order; mark them published once acknowledged.

    Each event gets its stream version before its first send (one relay per outbox, so the
    order of versions is the order of sending). Only the acknowledged prefix is marked: from the
    first record the broker did not confirm at a real offset on, the rows stay unpublished and
    go again, in order, next round (consumers skip by event id whatever did arrive)."""
    now = clock.now()
    with engine.begin() as connection:
        rows = connection.execute(select(outbox).where(
            outbox.c.published_at.is_(None), outbox.c.applied.is_(True), outbox.c.emit_at <= now)
            .order_by(outbox.c.seq).limit(limit)).all()
        if not rows:
            return 0
        versions = _assign_stream_versions(connection, outbox, rows)
    acks = publisher.send_records([
        OutgoingRecord(row.topic, row.key, row.value,
                       [(k, v.encode()) for k, v in json.loads(row.headers)]
                       + [(STREAM_VERSION_HEADER, str(versions[row.seq]).encode())])
        for row in rows])
    published = [(row.seq, ack) for row, ack in takewhile(lambda pair: pair[1] is not None,
                                                           zip(rows, acks, strict=True))]
    if published:
        at = clock.now()
        with engine.begin() as connection:
            connection.execute(update(outbox).where(outbox.c.seq == bindparam("row_seq")).values(
                published_at=at, ack_partition=bindparam("partition"), ack_offset=bindparam("offset"),
                confirmed_at=None),
                [{"row_seq": seq, "partition": ack.partition, "offset": ack.offset}
                 for seq, ack in published if ack is not None])
    if len(published) < len(rows):
        raise NotAcknowledged(f"{len(rows) - len(published)} of {len(rows)} events not acknowledged")
    return len(published)


def _assign_stream_versions(connection: Connection, outbox: Table, rows: Sequence[Row[Any]]) -> dict[int, int]:
    versions = {row.seq: row.stream_version for row in rows if row.stream_version is not None}
    newest: dict[tuple[str, bytes], int] = {}
    fresh = []
    for row in rows:
        if row.stream_version is not None:
            continue
        stream = (row.topic, row.key)
        if stream not in newest:
            newest[stream] = connection.execute(select(func.coalesce(func.max(outbox.c.stream_version), 0)).where(
                outbox.c.topic == row.topic, outbox.c.key == row.key)).scalar_one()
        newest[stream] += 1
        versions[row.seq] = newest[stream]
        fresh.append({"row_seq": row.seq, "version": newest[stream]})
    if fresh:
        connection.execute(update(outbox).where(outbox.c.seq == bindparam("row_seq"))
                           .values(stream_version=bindparam("version")), fresh)
    return versions


@dataclass(frozen=True)
class OutboxStatus:
    pending: int
    oldest_pending_at: datetime | None  # emit_at of the oldest due, unpublished event


def outbox_status(connection: Connection, outbox: Table, now: datetime) -> OutboxStatus:
    """How much of the outbox is due and not yet on the broker, and since when."""
    due = and_(outbox.c.published_at.is_(None), outbox.c.applied.is_(True), outbox.c.emit_at <= now)
    row = connection.execute(select(func.count(), func.min(outbox.c.emit_at)).where(due)).one()
    return OutboxStatus(pending=int(row[0]), oldest_pending_at=row[1])


# Decides, at the moment of sending, whether a dossier mail may still go: (staff_id, dossier_id)
# -> None to send, or the reason not to.
SendCheck = Callable[[Connection, str, str], str | None]


class MailSender:
    def __init__(self, engine: Engine, outbox: Table, clock: Clock, smtp_host: str, smtp_port: int,
                 mail_from: str, check: SendCheck | None = None, redact_after_send: bool = False) -> None:
        self._engine = engine
        self._outbox = outbox
        self._clock = clock
        self._smtp_host = smtp_host
        self._smtp_port = smtp_port
        self._mail_from = mail_from
        self._check = check
        # For mail that carries a secret (an invitation link): once sent, the body is not kept.
        self._redact_after_send = redact_after_send
        self.failures = 0
        self.suppressed = 0

    def send_pending(self, limit: int = 50) -> int:
        outbox = self._outbox
        with self._engine.connect() as connection:
            rows = connection.execute(select(outbox).where(outbox.c.sent_at.is_(None),
                                                           outbox.c.suppressed_at.is_(None))
                                      .order_by(outbox.c.id).limit(limit)).all()
        sent = 0
        # One connection per round, opened at the first mail that may go: not one per mail (a
        # mailing to a wijknetwerk's parents is hundreds), and none when nothing is to be sent.
        with contextlib.ExitStack() as round_:
            smtp: smtplib.SMTP | None = None
            for row in rows:
                if self._suppressed(row):
                    continue
                try:
                    if smtp is None:
                        smtp = round_.enter_context(smtplib.SMTP(self._smtp_host, self._smtp_port, timeout=10))
                    smtp.send_message(self._message(row))
                except (OSError, smtplib.SMTPException) as error:
                    self.failures += 1
                    self._mark(row.id, attempts=row.attempts + 1)
                    log.warning("mail not sent, will retry", extra={"reason": type(error).__name__,
                                                                   "attempt": row.attempts + 1})
                    break  # the server is down or refused: try again next round, on a new connection
                done: dict[str, Any] = {"sent_at": self._clock.now(), "attempts": row.attempts + 1}
                if self._redact_after_send:
                    done["body"] = "[verzonden; inhoud niet bewaard]"
                self._mark(row.id, **done)
                sent += 1
        return sent

    def _suppressed(self, row: Row[Any]) -> bool:
        if self._check is None or row.staff_id is None or row.dossier_id is None:
            return False
        with self._engine.connect() as connection:
            reason = self._check(connection, row.staff_id, row.dossier_id)
        if reason is None:
            return False
        self._mark(row.id, suppressed_at=self._clock.now(), suppressed_reason=reason[:100])
        self.suppressed += 1
        log.info("mail suppressed at send time", extra={"reason": reason})
        return True

    def _message(self, row: Row[Any]) -> EmailMessage:
        message = EmailMessage()
        message["From"] = self._mail_from
        message["To"] = row.recipient
        message["Subject"] = row.subject
        message["Message-ID"] = row.message_id
        message["Date"] = format_datetime(row.created_at)
        message.set_content(row.body)
        return message

    def _mark(self, row_id: int, **values: Any) -> None:
        with self._engine.begin() as connection:
            connection.execute(update(self._outbox).where(self._outbox.c.id == row_id).values(**values))


@dataclass(frozen=True)
class RelayedOutbox:
    """The event outbox a relay drains and the publisher it drains it with: what its health
    endpoint watches."""

    engine: Engine
    outbox: Table
    publisher: EventPublisher
    clock: Clock


class OutboxRelay:
    """Runs a service's outbox work in rounds until stopped: each task returns how much it did."""

    def __init__(self, name: str, tasks: list[Callable[[], int]], interval_s: float = 0.05,
                 relayed: RelayedOutbox | None = None) -> None:
        self.name = name
        self._tasks = tasks
        self._interval_s = interval_s
        self.relayed = relayed
        self.stop_event = threading.Event()
        self.rounds = 0
        self.task_failures = 0
        self.last_round_at = time.monotonic()

    def run(self) -> None:
        log.info("relay started", extra={"service": self.name})
        while not self.stop_event.is_set():
            busy = False
            for task in self._tasks:
                try:
                    busy = bool(task()) or busy
                except Exception as error:  # the next round retries; the outbox keeps the work
                    self.task_failures += 1
                    log.warning("relay task failed, retrying", extra={"reason": type(error).__name__})
            self.rounds += 1
            self.last_round_at = time.monotonic()
            if not busy:
                self.stop_event.wait(self._interval_s)
        log.info("relay stopped", extra={"service": self.name})

    def stop_on_signals(self) -> None:
        import signal

        def _stop(_signum: int, _frame: object) -> None:
            self.stop_event.set()

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)


class UpstreamOutboxes:
    """Asks upstream services' `GET /v1/outbox` whether anything they accepted waits longer than
    max_age_s to reach the broker. Answers are kept for cache_s so that a busy API asks about
    twice a second, not per request. Unreachable counts as stuck: fail closed."""

    def __init__(self, urls: list[str], max_age_s: float, cache_s: float = 0.5, timeout_s: float = 1.0,
                 token: Callable[[], str | None] | None = None) -> None:
        self.urls = [url.rstrip("/") for url in urls if url.strip()]
        # This service's own bearer token for the upstream APIs (their /v1/outbox takes one).
        self.token = token or (lambda: None)
        self._max_age_s = max_age_s
        self._cache_s = cache_s
        self._timeout_s = timeout_s
        self._lock = threading.Lock()
        self._checked_at = -float("inf")
        self._problem: str | None = None

    def problem(self) -> str | None:
        if not self.urls:
            return None
        with self._lock:
            if time.monotonic() - self._checked_at >= self._cache_s:
                self._problem = self._ask()
                self._checked_at = time.monotonic()
            return self._problem

    def _ask(self) -> str | None:
        bearer = self.token()
        if bearer is None:
            return "cannot tell whether upstream services have unpublished changes: no token for them"
        for url in self.urls:
            try:
                status = httpx.get(f"{url}/v1/outbox", headers={"Authorization": f"Bearer {bearer}"},
                                   timeout=self._timeout_s).raise_for_status().json()
            except (httpx.HTTPError, ValueError) as error:
                log.warning("upstream outbox not reachable", extra={"reason": type(error).__name__})
                return f"cannot tell whether {url} has unpublished changes"
            if status["pending"] and status["oldest_pending_age_s"] > self._max_age_s:
                return (f"{url} has {status['pending']} accepted changes not yet on the broker, "
                        f"the oldest for {status['oldest_pending_age_s']:.0f} s")
        return None
