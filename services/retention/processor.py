"""The retention processor. `python -m services.retention.processor`."""

from __future__ import annotations


def main() -> None:
    from services.retention.bootstrap import build, build_runner
    from services.retention.settings import RetentionSettings
    from shared.runtime import run_consumer

    run_consumer("retention-processor", RetentionSettings(), build, build_runner)


if __name__ == "__main__":
    main()
