"""The registry's Kafka door: signed mutations from `registry.mutations.v1`, decided exactly as the
HTTP door decides them (`services.registry.handlers`). `python -m services.registry.processor`."""

from __future__ import annotations

from services.registry.bootstrap import build, build_intake_runner
from services.registry.settings import RegistrySettings
from shared.runtime import run_consumer


def main() -> None:
    run_consumer("registry-intake", RegistrySettings(), build, build_intake_runner)


if __name__ == "__main__":
    main()
