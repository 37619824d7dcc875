# Sourced by the operator commands (credentials.sh, auth.sh): the data directory and master key
# of the system that deploy/run.sh runs, exported for the Python command that follows.
data=${SAMENVEILIG_DATA_DIR:-.data}
if [ -z "${SAMENVEILIG_MASTER_KEY:-}" ]; then
    [ -s "$data/master.key" ] || { echo "no $data/master.key: start deploy/run.sh once first" >&2; exit 1; }
    SAMENVEILIG_MASTER_KEY=$(cat "$data/master.key")
fi
export SAMENVEILIG_MASTER_KEY
