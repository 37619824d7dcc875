"""The registry's HTTP door (`services.registry.routes`). `python -m services.registry.api`;
OpenAPI at /docs."""

from __future__ import annotations

from services.registry.bootstrap import SERVICE

create_app = SERVICE.app

if __name__ == "__main__":
    SERVICE.run_api()
