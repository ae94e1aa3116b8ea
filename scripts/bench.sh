#!/usr/bin/env bash
# make bench: build what is measured, give it a migrated database of its own,
# run the Go benchmarks and the load scenarios, write BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_mysql
export MYSQL_DSN=$(echo "$MYSQL_SERVER_DSN" | sed -E 's#\)/#)/unitenant_bench#')
export TEMPLATE_DATABASE=unitenant_bench_template
make --no-print-directory build-local build >/dev/null
.dev/bin/tenantctl migrate >/dev/null 2>.dev/migrate.log || { cat .dev/migrate.log >&2; exit 1; }
export TEST_MYSQL_DSN="$MYSQL_SERVER_DSN"
go run ./scripts/bench -bin .dev/bin -dist dist -out BENCHMARKS.md
