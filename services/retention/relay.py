"""The retention relay. `python -m services.retention.relay`."""

from __future__ import annotations


def main() -> None:
    from services.retention.bootstrap import build, build_relay
    from services.retention.settings import RetentionSettings
    from shared.logging import configure_logging

    settings = RetentionSettings()
    configure_logging("retention-relay", settings.log_level)
    worker = build_relay(build(settings))
    worker.stop_on_signals()
    worker.run()


if __name__ == "__main__":
    main()
