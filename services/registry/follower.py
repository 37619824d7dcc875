"""The registry's follower of retention events: when a pupil's data is purged, the registry's
rows about them go too (`services.registry.handlers`). `python -m services.registry.follower`."""

from __future__ import annotations

from services.registry.bootstrap import build, build_follower
from services.registry.settings import RegistrySettings
from shared.runtime import run_consumer


def main() -> None:
    run_consumer("registry-follower", RegistrySettings(), build, build_follower)


if __name__ == "__main__":
    main()
