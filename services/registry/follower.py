"""The registry's follower of retention events: when a pupil's data is purged, the registry's
rows about them go too (`services.registry.handlers`). `python -m services.registry.follower`."""

from __future__ import annotations

from services.registry.bootstrap import SERVICE

if __name__ == "__main__":
    SERVICE.run_processor("registry-follower")
