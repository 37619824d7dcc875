"""Property-based run of the retention service's own OpenAPI document (schemathesis): whatever
is sent (consent, requests, answers, leaks, assessments, reports), the service answers with a
documented status and never with a server error; errors are problem details."""

from __future__ import annotations

from datetime import date

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from sqlalchemy import insert

from services.retention import store
from services.retention.api import create_app
from services.retention.bootstrap import build
from services.retention.settings import RetentionSettings
from tests.support import RETENTION_SCOPES, TOKENS

PUPIL = "33333333-3333-4333-8333-333333333333"


def test_retention_api_never_answers_with_a_server_error(tmp_path, master_key):
    deps = build(RetentionSettings(database_url=f"sqlite:///{tmp_path / 'retention.sqlite'}",
                                   keystore_url=f"sqlite:///{tmp_path / 'keys.sqlite'}", master_key=master_key))
    with deps.engine.begin() as connection:  # one known pupil, so generated paths can reach the rules
        connection.execute(insert(store.pupils).values(
            pupil_id=PUPIL, branch_id="11111111-1111-4111-8111-111111111111", date_of_birth=date(2009, 1, 10),
            enrolled=False, left_on=date(2025, 7, 1), has_swv_dossier=False, legal_hold=False))
    app = create_app(deps)
    app.state.verifier = TOKENS.verifier("retention")
    # The board's FG (the known pupil's branch is hers): the rules let every generated call through.
    token = TOKENS.headers("33333333-0000-4000-8000-000000000001", RETENTION_SCOPES, "retention", role="fg",
                           branch_id="11111111-1111-4111-8111-111111111111")
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    checked, statuses = [], {}
    for result in schema.get_all_operations():
        operation = result.ok()
        strategies = [operation.as_strategy(), operation.as_strategy(generation_mode=GenerationMode.NEGATIVE)]

        @given(case=st.one_of(strategies))
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None,
                  derandomize=True)  # the same examples every run: a 202 is always among them
        def never_a_server_error(case):
            if "pupil_id" in (case.path_parameters or {}) and case.path_parameters["pupil_id"][:1] == "3":
                case.path_parameters["pupil_id"] = PUPIL
            response = case.call(headers=token)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            case.validate_response(response, checks=[not_a_server_error])
            if response.status_code >= 400:
                assert response.headers["content-type"] == ["application/problem+json"]

        never_a_server_error()
        checked.append(operation.label)
    assert {"POST /v1/leaks", "POST /v1/pupils/{pupil_id}/requests", "POST /v1/requests/{request_id}/answer",
            "PATCH /v1/leaks/{leak_id}"} <= set(checked)
    assert statuses.get(422) and statuses.get(404) and statuses.get(202), statuses


def test_without_a_token_every_retention_operation_answers_401(tmp_path, master_key):
    """The same generated requests with no token: nothing but 401, before any validation or work."""
    deps = build(RetentionSettings(database_url=f"sqlite:///{tmp_path / 'retention.sqlite'}",
                                   keystore_url=f"sqlite:///{tmp_path / 'keys.sqlite'}", master_key=master_key))
    app = create_app(deps)
    app.state.verifier = TOKENS.verifier("retention")
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    statuses: dict[int, int] = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path in ("/healthz", "/v1/outbox", "/metrics"):
            continue

        strategies = [operation.as_strategy(), operation.as_strategy(generation_mode=GenerationMode.NEGATIVE)]

        @given(case=st.one_of(strategies))
        @settings(max_examples=5, deadline=None, suppress_health_check=list(HealthCheck), database=None,
                  derandomize=True)
        def refused(case):
            response = case.call()
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            assert response.status_code == 401, (case.method, case.path, response.text)

        refused()
    assert statuses and set(statuses) == {401}, statuses
