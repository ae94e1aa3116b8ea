#!/usr/bin/env bash
# make dev: MariaDB (found or started), the system schema and tenant template
# migrated, every function built and served behind the local gateway on
# :${PORT:-8080}, crons on their schedules. Ctrl-C stops it all.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_mysql
echo "dev: system database ${MYSQL_DSN}"
make --no-print-directory build-local
.dev/bin/tenantctl migrate >/dev/null 2>.dev/migrate.log || { cat .dev/migrate.log >&2; exit 1; }
echo "dev: schema migrated; starting the gateway on :${PORT:-8080}"
exec .dev/bin/gateway -template template.yaml -bin .dev/bin -addr ":${PORT:-8080}"
