#!/usr/bin/env bash
# First-start initialisation for the postgres:16 container in deploy/compose.yaml, mounted into
# /docker-entrypoint-initdb.d/. The image runs it once, when the data volume is still empty,
# against a temporary server on the unix socket, as $POSTGRES_USER (a superuser it just created).
#
# A shell script rather than a .sql file: it needs $POSTGRES_USER, and SQL init files cannot read
# the environment. One database per service (plus the key store) keeps each service's data
# separately backed-up, restorable and erasable.
set -euo pipefail

for db in access registry auth retention keystore; do
    # psql variables (:"name") quote the identifiers; ON_ERROR_STOP makes a failure abort init.
    psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname "${POSTGRES_DB:-$POSTGRES_USER}" \
        -v db="$db" -v owner="$POSTGRES_USER" <<'SQL'
CREATE DATABASE :"db" OWNER :"owner";
SQL
done
