"""The retention service's API (`services.retention.routes`). `python -m services.retention.api`;
OpenAPI at /docs."""

from __future__ import annotations

from services.retention.bootstrap import SERVICE

create_app = SERVICE.app

if __name__ == "__main__":
    SERVICE.run_api()
