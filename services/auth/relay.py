"""The auth relay: publishes auth.events.v1 and sends invitations. `python -m services.auth.relay`."""

from __future__ import annotations


def main() -> None:
    from services.auth.bootstrap import build, build_relay
    from services.auth.settings import AuthSettings
    from shared.runtime import run_relay

    run_relay("auth-relay", AuthSettings(), build, build_relay)


if __name__ == "__main__":
    main()
