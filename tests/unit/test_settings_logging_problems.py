"""Settings refuse placeholder secrets; logs redact secrets; problem documents echo nothing."""

from __future__ import annotations

import base64
import io
import json
import logging
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel, SecretStr, ValidationError

from shared.crypto import new_master_key
from shared.logging import JsonFormatter, RedactingFilter
from shared.problems import Problem, install_problem_handlers
from shared.settings import CommonSettings


@pytest.mark.parametrize("placeholder", ["", "changeme", "not base64!", base64.b64encode(b"\0" * 32).decode(),
                                         base64.b64encode(b"short").decode()])
def test_settings_refuse_a_placeholder_master_key(placeholder):
    with pytest.raises(ValidationError):
        CommonSettings(master_key=SecretStr(placeholder))


def test_settings_take_the_broker_from_the_usual_variable(monkeypatch):
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka-1:9092,kafka-2:9092")
    monkeypatch.setenv("SAMENVEILIG_MASTER_KEY", new_master_key())
    settings = CommonSettings()
    assert settings.kafka_bootstrap_servers == "kafka-1:9092,kafka-2:9092"
    assert "SecretStr" in repr(settings.master_key) and len(settings.master_key_bytes()) == 32


@pytest.fixture
def captured_log():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("test.redaction")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield logger, stream
    logger.removeHandler(handler)


def test_logs_redact_secrets_and_personal_data_but_keep_ids(captured_log):
    logger, stream = captured_log
    logger.info("login for ouder@example.nl with password=hunter2 token: abc.def seed JBSWY3DPEHPK3PXPJBSWY3DP "
                "via /uitnodiging/q0V1nv1tat10n-T0ken",
                extra={"event_id": "evt-1", "partition": 2, "offset": 41, "totp_seed": "JBSWY3DPEHPK3PXP",
                       "pupil_name": "Daan Jansen", "recovery_codes": ["a1b2"]})
    line = stream.getvalue()
    for secret in ("ouder@example.nl", "hunter2", "abc.def", "JBSWY3DPEHPK3PXP", "Daan Jansen", "a1b2",
                   "q0V1nv1tat10n-T0ken"):
        assert secret not in line
    record = json.loads(line)
    assert (record["event_id"], record["partition"], record["offset"]) == ("evt-1", 2, 41)


def test_exceptions_are_logged_by_type_not_by_traceback(captured_log):
    logger, stream = captured_log
    try:
        raise ValueError("name was Daan Jansen")
    except ValueError:
        logger.exception("failed")
    record = json.loads(stream.getvalue())
    assert record["exception_type"] == "ValueError"
    assert "Daan" not in stream.getvalue()


class Login(BaseModel):
    username: str
    code: int


def _app() -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)

    @app.post("/login")
    def login(body: Login) -> dict[str, str]:
        raise Problem(409, "conflict", "Already logged in", detail="Log out first.")

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret internals")

    return app


def test_validation_problem_lists_fields_without_echoing_input():
    client = TestClient(_app())
    response = client.post("/login", json={"username": "juf.sanne", "code": "hunter2-secret"})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"] == "/problems/validation-error" and body["status"] == 422
    assert [e["field"] for e in body["errors"]] == ["body.code"]
    assert "hunter2-secret" not in response.text and "juf.sanne" not in response.text


def test_domain_problems_and_crashes_answer_problem_json():
    client = TestClient(_app(), raise_server_exceptions=False)
    conflict = client.post("/login", json={"username": "a", "code": 1})
    assert conflict.status_code == 409 and conflict.json()["detail"] == "Log out first."
    crash = client.get("/boom")
    assert crash.status_code == 500 and crash.json()["type"] == "/problems/internal-error"
    assert "secret internals" not in crash.text
    missing = client.get("/nowhere")
    assert missing.status_code == 404 and missing.json()["type"] == "/problems/not-found"
    assert client.get("/problems/conflict").status_code == 200


def test_the_deployment_publishes_no_api_beyond_the_hosts_loopback():
    """The compose file's APIs listen on the host's loopback only: the reverse proxy in front of
    them (TLS) is the one entry point, not every interface of the host."""
    import yaml

    compose = yaml.safe_load((Path(__file__).resolve().parents[2] / "deploy" / "compose.yaml").read_text())
    published = {name: service.get("ports", []) for name, service in compose["services"].items()}
    assert any(published.values()), "the APIs are published for the proxy"
    for name, ports in published.items():
        for port in ports:
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} on every interface"


def test_the_kafka_doors_raw_messages_have_a_bounded_retention_and_the_promise_covers_it():
    from shared.contracts.topics import TopicNames, intake_topic_configs

    configs = intake_topic_configs(TopicNames("t."), 7 * 24 * 3600)
    assert set(configs) == {"t.registry.mutations.v1", "t.registry.mutations.v1.dlq"}
    assert configs["t.registry.mutations.v1"]["retention.ms"] == str(7 * 24 * 3600 * 1000)
    assert configs["t.registry.mutations.v1"]["segment.ms"] == str(3600 * 1000)
    on_kafka = CommonSettings(master_key=SecretStr(new_master_key()))
    assert on_kafka.intake_copies_gone_within_s() == 7 * 24 * 3600 + 3600 + 300  # segment roll, retention check
    local = CommonSettings(master_key=SecretStr(new_master_key()), intake_sweep=True, intake_retention_s=10,
                           intake_sweep_interval_s=1)
    assert local.intake_copies_gone_within_s() == 10 + 2 + 1 + 10  # two rounds, a quiet second, the deletion queue
