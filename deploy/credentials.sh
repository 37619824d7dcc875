#!/usr/bin/env bash
# Creates, revokes or lists registry credentials of the system that deploy/run.sh runs:
#   bash deploy/credentials.sh create --name "ParnasSys OBS De Regenboog" --brin 12AB
#   bash deploy/credentials.sh revoke CLIENT_ID
#   bash deploy/credentials.sh list
set -euo pipefail
cd "$(dirname "$0")/.."
. deploy/operator-env.sh
export SAMENVEILIG_DATABASE_URL=${REGISTRY_DATABASE_URL:-sqlite:///$data/registry.sqlite}
exec .venv/bin/python -m services.registry.credentials "$@"
