#!/usr/bin/env bash
# The auth service's operator commands on the system that deploy/run.sh runs:
#   bash deploy/auth.sh clients add --name "Kindkans" --grant client_credentials --scope access:read
#   bash deploy/auth.sh clients list | bash deploy/auth.sh admins grant fg@bestuur.example | ...
set -euo pipefail
cd "$(dirname "$0")/.."
data=${SAMENVEILIG_DATA_DIR:-.data}
if [ -z "${SAMENVEILIG_MASTER_KEY:-}" ]; then
    [ -s "$data/master.key" ] || { echo "no $data/master.key: start deploy/run.sh once first" >&2; exit 1; }
    SAMENVEILIG_MASTER_KEY=$(cat "$data/master.key")
fi
export SAMENVEILIG_MASTER_KEY
export SAMENVEILIG_DATABASE_URL=${AUTH_DATABASE_URL:-sqlite:///$data/auth.sqlite}
export SAMENVEILIG_KEYSTORE_URL=${SAMENVEILIG_KEYSTORE_URL:-sqlite:///$data/keystore.sqlite}
export SAMENVEILIG_AUTH_URL=${SAMENVEILIG_AUTH_URL:-http://127.0.0.1:${AUTH_API_PORT:-8002}}
exec .venv/bin/python -m services.auth.cli "$@"
