"""The registry's relay: applies scheduled changes when their moment comes, publishes the event
outbox to Kafka in order, and sends the office mail over SMTP. `python -m services.registry.relay`."""

from __future__ import annotations

from services.registry.bootstrap import build, build_relay
from services.registry.settings import RegistrySettings
from shared.runtime import run_relay


def main() -> None:
    run_relay("registry-relay", RegistrySettings(), build, build_relay)


if __name__ == "__main__":
    main()
