#!/usr/bin/env bash
# make dev: MariaDB (found or started), the system schema and tenant template
# migrated, the super admin, demo tenants k001 and k002 and a demo user seeded
# (tenantctl dev-seed; passwords generated once into .dev/credentials.json
# unless DEV_ADMIN_PASSWORD / DEV_USER_PASSWORD are set), the demo AI model
# `dev-fake` served by a local fake OpenAI-compatible provider on
# 127.0.0.1:${DEV_AI_PORT:-8090} (scripts/fakeai; DEV_AI_ENDPOINT points the
# model elsewhere instead), every function built and served behind the local
# gateway on :${PORT:-8080}, crons on their schedules. Ctrl-C stops it all.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_mysql
echo "dev: system database ${MYSQL_DSN}"
make --no-print-directory build-local
.dev/bin/tenantctl migrate >/dev/null 2>.dev/migrate.log || { cat .dev/migrate.log >&2; exit 1; }
pids=()
stop() { kill "${pids[@]}" 2>/dev/null || true; wait; }
trap stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
if [ -z "${DEV_AI_ENDPOINT:-}" ]; then
  .dev/bin/fakeai -addr "127.0.0.1:${DEV_AI_PORT:-8090}" &
  pids+=($!)
  export DEV_AI_ENDPOINT="http://127.0.0.1:${DEV_AI_PORT:-8090}/v1"
fi
# dev-seed prints the logins and example curl commands on stderr, its JSON result on stdout.
.dev/bin/tenantctl dev-seed --port "${PORT:-8080}" >.dev/seed.json
echo "dev: schema migrated and seeded; starting the gateway on :${PORT:-8080}"
.dev/bin/gateway -template template.yaml -bin .dev/bin -addr ":${PORT:-8080}" &
pids+=($!)
wait -n "${pids[@]}"
