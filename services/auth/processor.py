"""The auth processor: registry events in (joined -> invited, departed -> disabled, sessions
ended). `python -m services.auth.processor`."""

from __future__ import annotations


def main() -> None:
    from services.auth.bootstrap import build, build_runner
    from services.auth.settings import AuthSettings
    from shared.kafka.consumer import stop_on_signals
    from shared.logging import configure_logging

    settings = AuthSettings()
    configure_logging("auth-processor", settings.log_level)
    runner = build_runner(build(settings))
    stop_on_signals(runner)
    runner.run()


if __name__ == "__main__":
    main()
