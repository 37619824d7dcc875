"""The access service's HTTP API (`services.access.routes`). `python -m services.access.api`;
OpenAPI at /docs."""

from __future__ import annotations

from services.access.bootstrap import SERVICE

create_app = SERVICE.app

if __name__ == "__main__":
    SERVICE.run_api()
