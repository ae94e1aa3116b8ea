#!/usr/bin/env bash
# make invoke FN=... EVENT=...: the system database migrated, then the event
# through the function's Lambda path (scripts/invoke), response on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_mysql
.dev/bin/tenantctl migrate >/dev/null 2>.dev/migrate.log || { cat .dev/migrate.log >&2; exit 1; }
exec .dev/bin/invoke -fn "$1" -event "$2"
