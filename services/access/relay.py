"""The access relay: publishes the access outbox (grants, revocations, views) and sends the
notification mail, checking the policy again at the moment of sending. `python -m services.access.relay`."""

from __future__ import annotations

from services.access.bootstrap import SERVICE

if __name__ == "__main__":
    SERVICE.run_relay()
