"""The auth service's pages and API (`services.auth.routes`). `python -m services.auth.api`;
OpenAPI at /docs."""

from __future__ import annotations

from services.auth.bootstrap import SERVICE

create_app = SERVICE.app

if __name__ == "__main__":
    SERVICE.run_api()
