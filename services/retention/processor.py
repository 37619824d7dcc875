"""The retention processor. `python -m services.retention.processor`."""

from __future__ import annotations


def main() -> None:
    from services.retention.bootstrap import build, build_runner
    from services.retention.settings import RetentionSettings
    from shared.kafka.consumer import stop_on_signals
    from shared.logging import configure_logging

    settings = RetentionSettings()
    configure_logging("retention-processor", settings.log_level)
    worker = build_runner(build(settings))
    stop_on_signals(worker)
    worker.run()


if __name__ == "__main__":
    main()
