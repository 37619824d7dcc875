# Sourced by the operator commands (credentials.sh, auth.sh): the data directory and master key
# of the system that deploy/run.sh runs, exported for the Python command that follows.
data=${SAMENVEILIG_DATA_DIR:-.data}
if [ -z "${SAMENVEILIG_MASTER_KEY:-}" ]; then
    [ -s "$data/master.key" ] || { echo "no $data/master.key: start deploy/run.sh once first" >&2; exit 1; }
    SAMENVEILIG_MASTER_KEY=$(cat "$data/master.key")
fi
export SAMENVEILIG_MASTER_KEY
# The system's event-signing keys: an operator command that writes events (credentials.sh) signs
# as the service it acts for, with that service's own key, and never makes keys of its own.
export SAMENVEILIG_SIGNING_DIR=${SAMENVEILIG_SIGNING_DIR:-$data/signing}
export SAMENVEILIG_SIGNING_CREATE_KEYS=false
