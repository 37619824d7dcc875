"""The access processor: registry events in, access tables out. `python -m services.access.processor`."""

from __future__ import annotations

import logging

from services.access.bootstrap import build, build_runner
from services.access.settings import AccessSettings
from shared.kafka.consumer import stop_on_signals
from shared.logging import configure_logging

log = logging.getLogger(__name__)


def main() -> None:
    settings = AccessSettings()
    configure_logging("access-processor", settings.log_level)
    runner = build_runner(build(settings))
    stop_on_signals(runner)
    runner.run()


if __name__ == "__main__":
    main()
