"""The auth relay: publishes auth.events.v1 and sends invitations. `python -m services.auth.relay`."""

from __future__ import annotations

from services.auth.bootstrap import SERVICE

if __name__ == "__main__":
    SERVICE.run_relay()
