#!/usr/bin/env bash
# Creates, updates, rotates, revokes or lists registry credentials of the system that
# deploy/run.sh runs (each change is an event naming the OS user who ran this):
#   bash deploy/credentials.sh create --name "ParnasSys OBS De Regenboog" --brin 12AB
#   bash deploy/credentials.sh update CLIENT_ID --add-brin 56EF --remove-brin 12AB
#   bash deploy/credentials.sh rotate CLIENT_ID --overlap-hours 24
#   bash deploy/credentials.sh revoke CLIENT_ID
#   bash deploy/credentials.sh list
set -euo pipefail
cd "$(dirname "$0")/.."
. deploy/operator-env.sh
export SAMENVEILIG_DATABASE_URL=${REGISTRY_DATABASE_URL:-sqlite:///$data/registry.sqlite}
# The registry's event codec opens the system's key store (credential events carry no personal data).
export SAMENVEILIG_KEYSTORE_URL=${SAMENVEILIG_KEYSTORE_URL:-sqlite:///$data/keystore.sqlite}
exec .venv/bin/python -m services.registry.credentials "$@"
