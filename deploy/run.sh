#!/usr/bin/env bash
# The run command: installs what is missing, then runs the broker (Tansu, durable through the
# local S3 server) and every service and processor in the foreground. Ctrl-C stops them all;
# data stays in .data/ for the next start.
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/setup.sh

export SAMENVEILIG_DATA_DIR=${SAMENVEILIG_DATA_DIR:-.data}
data=$SAMENVEILIG_DATA_DIR
mkdir -p "$data"
chmod 700 "$data"
# Wherever it is (inside a checkout too), git never offers its keys and databases for a commit.
[ -e "$data/.gitignore" ] || echo '*' > "$data/.gitignore"
# A local master key, made once and kept out of git, unless the operator gives one.
if [ -z "${SAMENVEILIG_MASTER_KEY:-}" ]; then
    if [ ! -s "$data/master.key" ]; then
        (umask 077 && .venv/bin/python -m shared.crypto new-key > "$data/master.key")
    fi
    SAMENVEILIG_MASTER_KEY=$(cat "$data/master.key")
fi
export SAMENVEILIG_MASTER_KEY
export BROKER_PORT=${BROKER_PORT:-9092}
export S3_PORT=${S3_PORT:-9000}
export ACCESS_API_PORT=${ACCESS_API_PORT:-8003}
export REGISTRY_API_PORT=${REGISTRY_API_PORT:-8001}
export AUTH_API_PORT=${AUTH_API_PORT:-8002}
export RETENTION_API_PORT=${RETENTION_API_PORT:-8004}
export SMTP_PORT=${SMTP_PORT:-1025}
# Relays and processors serve /healthz and /metrics on HEALTH_PORT_BASE+1 .. +9.
export HEALTH_PORT_BASE=${HEALTH_PORT_BASE:-8100}
export SAMENVEILIG_SMTP_PORT=$SMTP_PORT
# Where the login pages are, for every auth process: the processor writes the invitations.
export SAMENVEILIG_AUTH_URL=${SAMENVEILIG_AUTH_URL:-http://127.0.0.1:$AUTH_API_PORT}
# Whose access tokens the APIs accept: that provider's (its JWKS at /oauth2/jwks).
export SAMENVEILIG_OIDC_ISSUER=${SAMENVEILIG_OIDC_ISSUER:-$SAMENVEILIG_AUTH_URL}
# With KAFKA_BOOTSTRAP_SERVERS set, that broker is used and no local one is started.
processes=()
external_broker=${KAFKA_BOOTSTRAP_SERVERS:-}
if [ -n "$external_broker" ]; then
    processes=(mail registry-api registry-intake registry-relay registry-follower auth-api auth-processor
               auth-relay retention-api retention-processor retention-relay access-processor access-relay access-api)
    broker_line="external broker at $KAFKA_BOOTSTRAP_SERVERS"
else
    export KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:$BROKER_PORT
    # Tansu enforces no retention.ms: the intake deletes the raw messages (and dead letters) older
    # than SAMENVEILIG_INTAKE_RETENTION_S itself, and the object store (SeaweedFS master, S3_PORT+1)
    # compacts its volumes after, so their bytes leave the disk (README, "Erasure").
    export SAMENVEILIG_INTAKE_SWEEP=true
    export SAMENVEILIG_BROKER_STORAGE_VACUUM_URL="http://127.0.0.1:$((S3_PORT + 1))/vol/vacuum?garbageThreshold=0.000001"
    broker_line="kafka://$KAFKA_BOOTSTRAP_SERVERS (Tansu on SeaweedFS, S3 on 127.0.0.1:$S3_PORT)
                         survives kills and restarts of either (restarted on the same data); a power
                         cut can lose the last writes: the deployment's Kafka (replication 3) does not"
fi
# One database per service; the key store is shared (it belongs to the retention service).
export ACCESS_DATABASE_URL=${ACCESS_DATABASE_URL:-sqlite:///$data/access.sqlite}
export REGISTRY_DATABASE_URL=${REGISTRY_DATABASE_URL:-sqlite:///$data/registry.sqlite}
export AUTH_DATABASE_URL=${AUTH_DATABASE_URL:-sqlite:///$data/auth.sqlite}
export RETENTION_DATABASE_URL=${RETENTION_DATABASE_URL:-sqlite:///$data/retention.sqlite}
export SAMENVEILIG_KEYSTORE_URL=${SAMENVEILIG_KEYSTORE_URL:-sqlite:///$data/keystore.sqlite}
export PYTHONUNBUFFERED=1
# Every service's event-signing key (one file each, 0600) and the public keys the readers trust,
# in the data directory: the embedded default (README, "Who may write a topic").
export SAMENVEILIG_SIGNING_DIR=${SAMENVEILIG_SIGNING_DIR:-$data/signing}
if [ ! -e "$SAMENVEILIG_SIGNING_DIR/registry.signing-key" ]; then
    if [ -z "$external_broker" ] && [ -d "$data/broker" ]; then
        # A log written before events were signed: record, with the local broker up for a
        # moment, from which offsets every event must be signed. Before the keys, so that a
        # failure here is tried again at the next start.
        echo "samenveilig: adopting the existing log (events before now carry no signature)" >&2
        .venv/bin/python -m deploy.localbroker run --port "$BROKER_PORT" --s3-port "$S3_PORT" \
            --data-dir "$data/broker" & adopting_broker=$!
        .venv/bin/python -m deploy.localbroker wait
        .venv/bin/python -m shared.kafka.signing adopt --public-dir "$SAMENVEILIG_SIGNING_DIR" >/dev/null
        kill -TERM "$adopting_broker"
        wait "$adopting_broker" || true
    fi
    (umask 077 && for service in registry access auth retention; do
        .venv/bin/python -m shared.crypto new-signing-key --service "$service" \
            --private-dir "$SAMENVEILIG_SIGNING_DIR" --public-dir "$SAMENVEILIG_SIGNING_DIR" >/dev/null
    done)
fi

# The access service's own client at the provider: its fail-closed checks read the registry's
# and retention's /v1/outbox with a token of its own (scopes registry:outbox retention:outbox).
# Registered once, kept in the data directory (0600) like the master key.
access_client=$data/access-service.client.json
if [ ! -s "$access_client" ]; then
    (umask 077 && bash deploy/auth.sh clients add \
        --name "access service (reads the upstream outboxes)" --grant client_credentials \
        --scope registry:outbox --scope retention:outbox > "$access_client.tmp" && mv "$access_client.tmp" "$access_client")
fi
export ACCESS_CLIENT_ID ACCESS_CLIENT_SECRET
ACCESS_CLIENT_ID=$(.venv/bin/python -c 'import json,sys; print(json.load(open(sys.argv[1]))["client_id"])' "$access_client")
ACCESS_CLIENT_SECRET=$(.venv/bin/python -c 'import json,sys; print(json.load(open(sys.argv[1]))["client_secret"])' "$access_client")

cat <<BANNER
samenveilig is starting (Ctrl-C stops everything; data is kept in $data/):
  Kafka broker           $broker_line
  registry API           http://127.0.0.1:$REGISTRY_API_PORT/docs   (school systems report mutations here)
  registry intake        consumes registry.mutations.v1 (signed mutations)
  registry relay         publishes registry.events.v1, sends office mail
  auth (Kindkans login)  http://127.0.0.1:$AUTH_API_PORT/inloggen   (invitations arrive in the mail catcher)
  auth processor/relay   accounts from registry.events.v1; publishes auth.events.v1, sends invitations
  retention API          http://127.0.0.1:$RETENTION_API_PORT/docs   (consent, legal holds, purge report)
  retention relay        purges pupils when due (crypto-shredding); registry/access follow PupilDataPurged
  access API             http://127.0.0.1:$ACCESS_API_PORT/docs
  access processor       consumes registry.events.v1 and access.events.v1
  access relay           publishes access.events.v1, sends notifications (policy checked at send time)
  mail (SMTP catcher)    smtp://127.0.0.1:$SMTP_PORT, mail kept in $data/mail/
  health and metrics     /healthz and /metrics of relays and processors on ports $((HEALTH_PORT_BASE+1))-$((HEALTH_PORT_BASE+9))
Credentials for school systems: bash deploy/credentials.sh create --name NAME --brin 12AB (also update, rotate, revoke)
Clients of the login (OIDC):     bash deploy/auth.sh clients add --name NAME ... (see the README, "Who may call")
BANNER
exec .venv/bin/honcho start --procfile deploy/Procfile --app-root . "${processes[@]}"
