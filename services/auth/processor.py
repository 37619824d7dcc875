"""The auth processor: registry events in (joined -> invited, departed -> disabled, sessions
ended). `python -m services.auth.processor`."""

from __future__ import annotations


def main() -> None:
    from services.auth.bootstrap import build, build_runner
    from services.auth.settings import AuthSettings
    from shared.runtime import run_consumer

    run_consumer("auth-processor", AuthSettings(), build, build_runner)


if __name__ == "__main__":
    main()
