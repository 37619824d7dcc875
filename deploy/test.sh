#!/usr/bin/env bash
# The test command: installs everything (Python packages, broker, S3 server, PostgreSQL),
# starts a throwaway PostgreSQL, checks lint and types, and runs the whole suite against a
# real broker. Extra arguments go to pytest. Exit 5 from pytest (no tests ran) is a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/setup.sh
bash deploy/postgres.sh install
# The browser tests drive Debian's chromium with Playwright (it cannot download browsers here).
if [ ! -x /usr/bin/chromium ]; then
    echo "setup: installing chromium (Debian package)" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

# PostgreSQL runs as the postgres user, so its directory lives where that user may enter.
pg_dir=$(mktemp -d /tmp/samenveilig-pg.XXXXXX)
chmod 755 "$pg_dir"
pg_port=$(.venv/bin/python -c 'from deploy.localbroker import free_port; print(free_port())')
cleanup() { bash deploy/postgres.sh stop "$pg_dir/data" || true; rm -rf "$pg_dir"; }
trap cleanup EXIT
SAMENVEILIG_TEST_POSTGRES_URL=$(bash deploy/postgres.sh start "$pg_dir/data" "$pg_port" 2>"$pg_dir/start.log" | tail -n1) \
    || { cat "$pg_dir/start.log" >&2; exit 1; }
export SAMENVEILIG_TEST_POSTGRES_URL

echo "== ruff"
.venv/bin/ruff check .
echo "== mypy"
.venv/bin/mypy shared services deploy
echo "== import-linter (the boundaries between services)"
.venv/bin/lint-imports
echo "== pytest"
status=0
# Line coverage of shared/, services/ and deploy/ ([tool.coverage.run]), summed up at the end.
# The 20 slowest tests are listed: the suite has a time budget (README, "The two commands").
# Four workers (PYTEST_WORKERS; 0 runs in one process). Each file stays on one worker, so that
# its module fixtures are built once; the longest system runs take turns (tests/conftest.py,
# SYSTEM_RUNS); each worker has its own session broker. Most of the suite's time is spent
# waiting (group joins, kills, timeouts), so four fit on two cores.
.venv/bin/python -m pytest -n "${PYTEST_WORKERS:-4}" --dist loadfile --cov --cov-report=term:skip-covered \
    --durations=20 "$@" || status=$?
if [ "$status" -eq 5 ]; then
    echo "pytest collected no tests: that is a failure" >&2
    exit 1
fi
exit "$status"
