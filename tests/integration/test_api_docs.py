"""`/docs` on every API works without internet: Swagger UI's page names only assets the API
serves itself (from the npm package swagger-ui-dist), and they are there."""

from __future__ import annotations

import re

import pytest

from shared.api import SWAGGER_UI_DIR
from tests.integration.test_api_limits import APIS, client_for


def test_the_swagger_ui_assets_are_installed():
    assert (SWAGGER_UI_DIR / "swagger-ui-bundle.js").stat().st_size > 100_000
    assert (SWAGGER_UI_DIR / "package.json").read_text().count('"version": "5.') == 1


@pytest.mark.parametrize("name", sorted(APIS))
def test_docs_load_every_asset_from_the_api_itself(name, tmp_path, master_key):
    client = client_for(name, tmp_path, master_key)
    page = client.get("/docs")
    assert page.status_code == 200 and "swagger-ui" in page.text
    urls = re.findall(r"""(?:src|href)=["']([^"']+)["']|url: ?'([^']+)'""", page.text)
    found = [u for pair in urls for u in pair if u]
    assert not [u for u in found if u.startswith(("http://", "https://", "//"))], found
    assets = [u for u in found if u.startswith("/docs/assets/")]
    assert {u.rsplit("/", 1)[1] for u in assets} >= {"swagger-ui-bundle.js", "swagger-ui.css"}
    for url in assets:
        answer = client.get(url)
        assert answer.status_code == 200 and len(answer.content) > 100, url
    assert client.get("/openapi.json").json()["openapi"].startswith("3.")
