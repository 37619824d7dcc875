"""The auth processor: registry events in (joined -> invited, departed -> disabled, sessions
ended). `python -m services.auth.processor`."""

from __future__ import annotations

from services.auth.bootstrap import SERVICE

if __name__ == "__main__":
    SERVICE.run_processor()
