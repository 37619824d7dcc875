"""The access processor: registry events in, access tables out. `python -m services.access.processor`."""

from __future__ import annotations

import logging

from services.access.bootstrap import build, build_runner
from services.access.settings import AccessSettings

log = logging.getLogger(__name__)


def main() -> None:
    from shared.runtime import run_consumer

    run_consumer("access-processor", AccessSettings(), build, build_runner)


if __name__ == "__main__":
    main()
