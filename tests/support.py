"""Helpers for tests that talk to the real broker."""

from __future__ import annotations

import email
import email.message
import email.policy
import time
from collections.abc import Callable
from typing import TypeVar

from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

T = TypeVar("T")


def wait_until(check: Callable[[], T], timeout_s: float = 30.0, interval_s: float = 0.05,
               message: str = "condition") -> T:
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {message}")
        time.sleep(interval_s)


def read_all(bootstrap: str, topic: str, timeout_s: float = 20.0, fetch_max_wait_ms: int = 50
             ) -> list[ConsumerRecord]:
    """Every record on the topic, reading until the high-water mark from fetch responses.

    Not end_offsets(): on Tansu 0.6 ListOffsets is wrong after multi-record batches (defect 1).
    The fetch wait is the tests' processors' (tests/conftest.py): with kafka-python's 500 ms an
    empty partition's answer takes a quarter of a second (Tansu, defect 5), and tests poll this.
    """
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                             auto_offset_reset="earliest", fetch_max_wait_ms=fetch_max_wait_ms)
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not assigned:
            return []  # the topic does not exist (yet)
        consumer.assign(assigned)
        consumer.seek_to_beginning(*assigned)
        records: list[ConsumerRecord] = []
        done: set[TopicPartition] = set()
        deadline = time.monotonic() + timeout_s
        while len(done) < len(assigned):
            if time.monotonic() > deadline:
                raise AssertionError(f"could not read {topic} to its end in {timeout_s}s")
            for batch in consumer.poll(timeout_ms=200).values():
                records.extend(batch)
            for tp in assigned:
                high_water = consumer.highwater(tp)
                if high_water is not None and consumer.position(tp) >= high_water:
                    done.add(tp)
        return sorted(records, key=lambda r: (r.partition, r.offset))
    finally:
        consumer.close()


class SmtpCatcher:
    """A real SMTP server (aiosmtpd) on loopback that keeps what it receives, for assertions."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        from deploy.localbroker import free_port

        self.messages: list[email.message.EmailMessage] = []
        self.port = free_port()
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        content = envelope.content  # type: ignore[attr-defined]
        message = email.message_from_bytes(content if isinstance(content, bytes) else content.encode(),
                                           policy=email.policy.default)
        message["X-Envelope-To"] = ",".join(envelope.rcpt_tos)  # type: ignore[attr-defined]
        self.messages.append(message)  # type: ignore[arg-type]
        return "250 Message accepted for delivery"

    def start(self) -> SmtpCatcher:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()


class TestTokens:
    """Access tokens as our provider signs them (ES256, typ at+jwt, RFC 9068 claims), with a key
    of its own, for the APIs under test: `app.state.verifier = tokens.verifier("access")`."""

    __test__ = False  # not a test class
    ISSUER = "http://127.0.0.1:8002"

    def __init__(self) -> None:
        from joserfc.jwk import ECKey

        self.key = ECKey.generate_key("P-256", parameters={"kid": "test-key", "alg": "ES256", "use": "sig"})

    def jwks(self) -> dict:
        return {"keys": [self.key.as_dict(private=False)]}

    def verifier(self, audience: str):
        from shared.bearer import KeySource, TokenVerifier

        return TokenVerifier(self.ISSUER, audience, KeySource.static(self.jwks()))

    def token(self, subject: str, scopes: str, audience: str | list[str], role: str | None = None,
              lifetime_s: int = 300, key=None, **claims) -> str:
        import uuid as uuid_

        from joserfc import jwt

        now = int(time.time())
        body = {"iss": self.ISSUER, "sub": subject, "aud": audience, "client_id": "test-client", "scope": scopes,
                "iat": now, "exp": now + lifetime_s, "jti": str(uuid_.uuid4()),
                **({"role": role} if role else {}), **claims}
        return jwt.encode({"alg": "ES256", "typ": "at+jwt", "kid": "test-key"}, body, key or self.key)

    def headers(self, subject: str, scopes: str, audience: str, role: str | None = None, **claims) -> dict:
        return {"Authorization": f"Bearer {self.token(subject, scopes, audience, role, **claims)}"}

    def person(self, staff_id, role: str, scopes: str, audience: str) -> dict:
        """A person's own token (the code flow), for routes that act for them."""
        return self.headers(str(staff_id), scopes, audience, role=role)


TOKENS = TestTokens()
ACCESS_SCOPES = "access:read access:write"
RETENTION_SCOPES = "retention:read retention:write"


def fg_headers(staff_id, branch_id) -> dict:
    """The token of a school board's FG (role fg) whose own branch is `branch_id`: she acts for
    every branch of that board (services/retention/policy.py)."""
    return TOKENS.headers(str(staff_id), RETENTION_SCOPES, "retention", role="fg", branch_id=str(branch_id))


def api_client(app, audience: str, scopes: str, **kwargs):
    """A TestClient for a service API that accepts TOKENS' tokens and sends a service's token
    (client credentials: no role) unless a request gives its own Authorization header."""
    from fastapi.testclient import TestClient

    app.state.verifier = TOKENS.verifier(audience)
    return TestClient(app, headers=TOKENS.headers("test-service", scopes, audience), **kwargs)


def log_entries(start, *events) -> list:
    """Log entries as the audit reads them, one a minute from `start`, for pure tests of what
    the audit makes of a history."""
    import uuid as uuid_
    from datetime import timedelta

    from shared.contracts.envelope import RecordedEvent
    from shared.kafka.log import Entry, LogRecord

    found = []
    for number, event in enumerate(events):
        at = start + timedelta(minutes=number)
        recorded = RecordedEvent(id=str(uuid_.uuid4()), type=event.event_type, source="/test", recorded_at=at,
                                 effective_at=at, correlation_id="c", causation_id=None, key_id=None, event=event,
                                 erased=False)
        found.append(Entry(LogRecord(topic=str(event.topic), partition=0, offset=number, key=None, value=b"",
                                     headers=()), recorded))
    return found
