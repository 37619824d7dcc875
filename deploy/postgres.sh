#!/usr/bin/env bash
# Throwaway PostgreSQL server for the test suite and CI (Debian 12).
#
# Usage:
#   deploy/postgres.sh install              # apt-get install postgresql if missing (needs root)
#   deploy/postgres.sh start DATADIR PORT   # initdb if DATADIR is empty, start, print URL (last line)
#   deploy/postgres.sh stop DATADIR         # fast shutdown; no-op if not running
#
# `start` prints only the SQLAlchemy URL on stdout (as its last line); everything else goes
# to stderr, so callers can do: url="$(deploy/postgres.sh start .data/pg 55432 | tail -n1)".
#
# PostgreSQL refuses to run as root, so when invoked as root every server-side command runs
# as the `postgres` OS user (created by the Debian package). Invoked as a normal user, the
# commands run as that user instead. DATADIR and all of its parent directories must be
# traversable (o+x) by whichever user runs the server.
set -euo pipefail

PG_USER=postgres

log() { printf 'postgres.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
    sed -n '4,7p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

# Newest /usr/lib/postgresql/<major>/bin that has both initdb and pg_ctl; empty if none.
find_bindir() {
    local dir
    for dir in /usr/lib/postgresql/*/bin; do
        if [[ -x "$dir/initdb" && -x "$dir/pg_ctl" ]]; then
            printf '%s\n' "$dir"
        fi
    done | sort -V | tail -n 1
}

require_bindir() {
    BINDIR="$(find_bindir)"
    [[ -n "$BINDIR" ]] || die "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin; run '$0 install' first"
}

# Run a command as the server user. `cd /` first: the caller's cwd (e.g. /root) is often not
# readable by postgres, which makes initdb/pg_ctl print spurious "could not change directory".
as_pg() {
    if [[ "$(id -u)" -eq 0 ]]; then
        (cd / && runuser -u "$PG_USER" -- "$@")
    else
        (cd / && "$@")
    fi
}

absolute() {
    case "$1" in
        /*) printf '%s' "$1" ;;
        *) printf '%s/%s' "$PWD" "$1" ;;
    esac
}

is_running() {
    [[ -f "$1/PG_VERSION" ]] && as_pg "$BINDIR/pg_ctl" -D "$1" status >/dev/null 2>&1
}

cmd_install() {
    if [[ -n "$(find_bindir)" ]]; then
        log "PostgreSQL already installed in $(find_bindir)"
        return 0
    fi
    [[ "$(id -u)" -eq 0 ]] || die "install needs root (apt-get)"
    log "installing PostgreSQL with apt-get"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    [[ -n "$(find_bindir)" ]] || die "apt-get install postgresql did not provide initdb/pg_ctl"
    log "installed PostgreSQL in $(find_bindir)"
}

cmd_start() {
    [[ $# -eq 2 ]] || usage
    local datadir port
    datadir="$(absolute "$1")"
    port="$2"
    if ! [[ "$port" =~ ^[1-9][0-9]{0,4}$ ]] || (( port > 65535 )); then
        die "invalid port: $port"
    fi
    require_bindir

    # The unix socket lives inside DATADIR (not /var/run/postgresql, which needs root to create
    # and is shared with any system cluster). sun_path is limited to 107 bytes.
    local socket="$datadir/.s.PGSQL.$port"
    (( ${#socket} <= 107 )) || die "DATADIR path too long for a unix socket ($socket); use a shorter path"

    # umask 022 so parent directories we create stay traversable by the postgres user.
    (umask 022 && mkdir -p "$datadir")
    if [[ "$(id -u)" -eq 0 ]]; then
        as_pg test -x "$datadir" -a -r "$datadir" \
            || die "user $PG_USER cannot reach $datadir; every parent directory needs o+x"
    fi

    if [[ ! -f "$datadir/PG_VERSION" ]]; then
        [[ -z "$(ls -A "$datadir")" ]] || die "$datadir is not empty and is not a PostgreSQL data directory"
        if [[ "$(id -u)" -eq 0 ]]; then
            chown "$PG_USER:$PG_USER" "$datadir"
        fi
        chmod 700 "$datadir"
        log "initdb in $datadir"
        # Trust auth for local socket and loopback TCP: a disposable test server that only
        # listens on 127.0.0.1. Locale C avoids depending on generated locales in CI images;
        # --no-sync skips flushing the fresh cluster to disk (disposable, see fsync below).
        as_pg "$BINDIR/initdb" -D "$datadir" -U postgres --auth-local=trust --auth-host=trust \
            --encoding=UTF8 --locale=C --no-sync >&2
        printf "\ninclude_if_exists = 'samenveilig-test.conf'\n" \
            | as_pg tee -a "$datadir/postgresql.conf" >/dev/null
    fi

    if is_running "$datadir"; then
        local running_port
        running_port="$(sed -n 4p "$datadir/postmaster.pid" 2>/dev/null || true)"
        [[ "$running_port" == "$port" ]] \
            || die "server in $datadir already running on port ${running_port:-?}, not $port"
        log "server in $datadir already running on port $port"
    else
        # Rewritten on every start so the same DATADIR can be reused with another port.
        # Settings live in an included file rather than `pg_ctl -o`, whose string is re-parsed
        # by /bin/sh and would break on paths with spaces.
        local sockdir_quoted="${datadir//\'/\'\'}"
        as_pg tee "$datadir/samenveilig-test.conf" >/dev/null <<EOF
# Written by deploy/postgres.sh on every start; do not edit.
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$sockdir_quoted'
# The suite opens a database per service plus pools per test worker.
max_connections = 200
# Test data is disposable: skipping fsync and full-page images makes commits and
# checkpoints much cheaper. Both only matter for surviving an OS crash / power loss,
# after which this cluster may be corrupt -- acceptable for tests, never for production.
fsync = off
full_page_writes = off
EOF
        log "starting PostgreSQL on 127.0.0.1:$port (log: $datadir/server.log)"
        as_pg "$BINDIR/pg_ctl" -D "$datadir" -l "$datadir/server.log" -w -t 60 start >&2 \
            || { tail -n 30 "$datadir/server.log" >&2 || true; die "pg_ctl start failed"; }
    fi

    local _
    for _ in $(seq 1 120); do
        if "$BINDIR/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres; then
            printf 'postgresql+psycopg://postgres@127.0.0.1:%s/postgres\n' "$port"
            return 0
        fi
        sleep 0.5
    done
    tail -n 30 "$datadir/server.log" >&2 || true
    die "server on 127.0.0.1:$port did not become ready within 60s"
}

cmd_stop() {
    [[ $# -eq 1 ]] || usage
    local datadir
    datadir="$(absolute "$1")"
    require_bindir
    if is_running "$datadir"; then
        as_pg "$BINDIR/pg_ctl" -D "$datadir" -m fast -w -t 60 stop >&2
    else
        log "no server running in $datadir"
    fi
}

[[ $# -ge 1 ]] || usage
sub="$1"
shift
case "$sub" in
    install) [[ $# -eq 0 ]] || usage; cmd_install ;;
    start) cmd_start "$@" ;;
    stop) cmd_stop "$@" ;;
    -h | --help | help) usage ;;
    *) usage ;;
esac
