"""The retention relay. `python -m services.retention.relay`."""

from __future__ import annotations


def main() -> None:
    from services.retention.bootstrap import build, build_relay
    from services.retention.settings import RetentionSettings
    from shared.runtime import run_relay

    run_relay("retention-relay", RetentionSettings(), build, build_relay)


if __name__ == "__main__":
    main()
