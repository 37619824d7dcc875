"""Property-based run of the registry's own OpenAPI document (schemathesis): whatever is sent,
the registry answers with a documented status and never with a server error."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from services.registry.api import create_app
from services.registry.bootstrap import build
from services.registry.settings import RegistrySettings


@pytest.fixture
def registry_app(tmp_path, master_key):
    deps = build(RegistrySettings(database_url=f"sqlite:///{tmp_path / 'registry.sqlite'}",
                                  keystore_url=f"sqlite:///{tmp_path / 'keys.sqlite'}", master_key=master_key))
    issued = deps.credentials.create("schemathesis", ["12AB", "34CD"], [])
    app = create_app(deps)
    app.state.test_api_key = issued.api_key
    return app


def test_registry_api_never_answers_with_a_server_error(registry_app):
    schema = schemathesis.openapi.from_asgi("/openapi.json", registry_app)
    headers = {"Authorization": f"Bearer {registry_app.state.test_api_key}"}
    checked = []
    statuses: dict[int, int] = {}
    for result in schema.get_all_operations():
        operation = result.ok()

        # The documented examples first (they reach the domain's rules), then generated input,
        # valid and invalid.
        strategies = [*operation.get_strategies_from_examples(), operation.as_strategy(),
                      operation.as_strategy(generation_mode=GenerationMode.NEGATIVE)]

        @given(case=st.one_of(strategies))
        @settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def never_a_server_error(case):
            response = case.call(headers=headers)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            case.validate_response(response, checks=[not_a_server_error])
            if response.status_code >= 400:
                assert response.headers["content-type"] == ["application/problem+json"]

        never_a_server_error()
        checked.append(operation.label)
    assert "POST /v1/mutations" in checked
    assert statuses.get(202), "the documented examples must reach the domain"
