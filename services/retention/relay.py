"""The retention relay: purges when due, leak and export work, the 72-hour alarms, the outbox and
the mail. `python -m services.retention.relay`."""

from __future__ import annotations

from services.retention.bootstrap import SERVICE

if __name__ == "__main__":
    SERVICE.run_relay()
