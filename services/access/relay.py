"""The access relay: publishes the access outbox (grants, revocations, views) and sends the
notification mail, checking the policy again at the moment of sending. `python -m services.access.relay`."""

from __future__ import annotations


def main() -> None:
    from services.access.bootstrap import build, build_relay
    from services.access.settings import AccessSettings
    from shared.runtime import run_relay

    run_relay("access-relay", AccessSettings(), build, build_relay)


if __name__ == "__main__":
    main()
