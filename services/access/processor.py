"""The access processor: registry, access and retention events in, access tables out.
`python -m services.access.processor`."""

from __future__ import annotations

from services.access.bootstrap import SERVICE

if __name__ == "__main__":
    SERVICE.run_processor()
