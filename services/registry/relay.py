"""The registry's relay: applies scheduled changes when their moment comes, publishes the event
outbox to Kafka in order, and sends the office mail over SMTP. `python -m services.registry.relay`."""

from __future__ import annotations

from services.registry.bootstrap import SERVICE

if __name__ == "__main__":
    SERVICE.run_relay()
