#!/usr/bin/env bash
# make test: a real MariaDB (found or started), gofmt and vet, then every test.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_mysql
export TEST_MYSQL_DSN="$MYSQL_SERVER_DSN"
echo "test: MySQL at ${TEST_MYSQL_DSN}"

unformatted=$(find . -name '*.go' -not -path './.dev/*' -not -path './dist/*' -print0 | xargs -0 gofmt -s -l)
if [ -n "$unformatted" ]; then echo "gofmt -s would change:"; echo "$unformatted"; exit 1; fi
go vet ./...
# Packages run in parallel; each test makes and drops its own databases.
go test -count=1 -timeout 14m ${TEST_FLAGS:-} ./...
