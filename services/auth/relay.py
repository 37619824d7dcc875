"""The auth relay: publishes auth.events.v1 and sends invitations. `python -m services.auth.relay`."""

from __future__ import annotations


def main() -> None:
    from services.auth.bootstrap import build, build_relay
    from services.auth.settings import AuthSettings
    from shared.logging import configure_logging

    settings = AuthSettings()
    configure_logging("auth-relay", settings.log_level)
    relay = build_relay(build(settings))
    relay.stop_on_signals()
    relay.run()


if __name__ == "__main__":
    main()
