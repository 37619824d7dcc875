"""The registry's Kafka door: signed mutations from `registry.mutations.v1`, decided exactly as the
HTTP door decides them (`services.registry.handlers`). `python -m services.registry.processor`."""

from __future__ import annotations

from services.registry.bootstrap import SERVICE

if __name__ == "__main__":
    SERVICE.run_processor("registry-intake")
