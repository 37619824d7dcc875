"""The registry's follower of retention events: when a pupil's data is purged, the registry's
rows about them go too. `python -m services.registry.follower`."""

from __future__ import annotations

from sqlalchemy.engine import Connection

from services.registry import store
from shared.contracts.envelope import RecordedEvent
from shared.contracts.events import PupilDataPurged


def apply_retention_event(recorded: RecordedEvent, connection: Connection) -> None:
    if isinstance(recorded.event, PupilDataPurged):
        store.drop_pupil(connection, recorded.event.pupil_id)


def main() -> None:
    from services.registry.bootstrap import build, build_follower
    from services.registry.settings import RegistrySettings
    from shared.runtime import run_consumer

    run_consumer("registry-follower", RegistrySettings(), build, build_follower)


if __name__ == "__main__":
    main()
