"""The retention processor: registry events in (departures start the retention clock).
`python -m services.retention.processor`."""

from __future__ import annotations

from services.retention.bootstrap import SERVICE

if __name__ == "__main__":
    SERVICE.run_processor()
