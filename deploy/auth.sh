#!/usr/bin/env bash
# The auth service's operator commands on the system that deploy/run.sh runs:
#   bash deploy/auth.sh clients add --name "Kindkans" --grant client_credentials --scope access:read
#   bash deploy/auth.sh clients list;  bash deploy/auth.sh admins grant fg@bestuur.example
set -euo pipefail
cd "$(dirname "$0")/.."
. deploy/operator-env.sh
export SAMENVEILIG_DATABASE_URL=${AUTH_DATABASE_URL:-sqlite:///$data/auth.sqlite}
export SAMENVEILIG_KEYSTORE_URL=${SAMENVEILIG_KEYSTORE_URL:-sqlite:///$data/keystore.sqlite}
export SAMENVEILIG_AUTH_URL=${SAMENVEILIG_AUTH_URL:-http://127.0.0.1:${AUTH_API_PORT:-8002}}
exec .venv/bin/python -m services.auth.cli "$@"
