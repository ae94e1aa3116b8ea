#!/usr/bin/env bash
# Finds or starts the MySQL-compatible server that `make dev`, `make test`,
# `make invoke` and `make bench` use, and prints its DSN without a database,
# e.g. root@tcp(127.0.0.1:3306)/
#
# In order:
#   1. $MYSQL_DSN when set (its database part is dropped; callers add their own);
#   2. MariaDB on 127.0.0.1:3306, if root logs in there without a password;
#   3. a private mariadbd under .dev/mysql on 127.0.0.1:$DEV_MYSQL_PORT (3307),
#      installing Debian's mariadb-server with apt-get when it is missing.
# Set DEV_MYSQL_PRIVATE=1 to skip step 2 (how the fresh-machine path is tested).
# `scripts/mysql.sh stop` stops the private server.
set -euo pipefail
cd "$(dirname "$0")/.."

dir="$PWD/.dev/mysql"
port="${DEV_MYSQL_PORT:-3307}"
log() { echo "mysql.sh: $*" >&2; }

client() { command -v mariadb || command -v mysql || true; }

# can_login HOST PORT: root without password can create and drop a database
# there (a server whose data dir is gone answers queries but cannot).
can_login() {
  local c; c=$(client)
  if [ -n "$c" ]; then
    "$c" --no-defaults --protocol=tcp -h "$1" -P "$2" -uroot --connect-timeout=2 \
      -e "CREATE DATABASE IF NOT EXISTS ut_probe_$$; DROP DATABASE ut_probe_$$" >/dev/null 2>&1
  else
    # No client yet: an open port is the best we can tell.
    (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
  fi
}

install_mariadb() {
  log "mariadb-server is not installed; installing it with apt-get (one time)"
  local policy=/usr/sbin/policy-rc.d made_policy=0
  # Keep the package from starting a system-wide server: ours runs privately.
  if [ ! -e "$policy" ]; then printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod +x "$policy"; made_policy=1; fi
  local sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mariadb-server mariadb-client >&2 || { [ $made_policy = 1 ] && rm -f "$policy"; exit 1; }
  [ $made_policy = 1 ] && rm -f "$policy"
  return 0
}

find_bin() { # find_bin NAME...: the first that exists on PATH or in sbin
  local n
  for n in "$@"; do
    command -v "$n" 2>/dev/null && return 0
    [ -x "/usr/sbin/$n" ] && { echo "/usr/sbin/$n"; return 0; }
    [ -x "/usr/bin/$n" ] && { echo "/usr/bin/$n"; return 0; }
  done
  return 1
}

start_private() {
  if can_login 127.0.0.1 "$port"; then return 0; fi
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    log "127.0.0.1:$port is taken by a server that is not usable (stop it, or set DEV_MYSQL_PORT)"
    exit 1
  fi
  local server installer
  server=$(find_bin mariadbd mysqld) || { install_mariadb; server=$(find_bin mariadbd mysqld); }
  installer=$(find_bin mariadb-install-db mysql_install_db) || { install_mariadb; installer=$(find_bin mariadb-install-db mysql_install_db); }
  mkdir -p "$dir"
  local user; user=$(id -un)
  if [ ! -d "$dir/data/mysql" ]; then
    log "initialising a private MariaDB data dir in .dev/mysql/data"
    "$installer" --no-defaults --datadir="$dir/data" --user="$user" \
      --auth-root-authentication-method=normal --skip-test-db >"$dir/install.log" 2>&1 \
      || { cat "$dir/install.log" >&2; exit 1; }
  fi
  log "starting a private MariaDB on 127.0.0.1:$port (log: .dev/mysql/error.log)"
  # setsid: the server outlives this script and the make that ran it.
  setsid "$server" --no-defaults --datadir="$dir/data" --user="$user" \
    --bind-address=127.0.0.1 --port="$port" --socket="$dir/mysqld.sock" \
    --pid-file="$dir/mysqld.pid" --log-error="$dir/error.log" \
    --skip-name-resolve --skip-log-bin --max-connections=2000 \
    --innodb-buffer-pool-size=256M --innodb-flush-log-at-trx-commit=2 \
    --innodb-log-file-size=128M </dev/null >/dev/null 2>&1 &
  for _ in $(seq 1 120); do
    if can_login 127.0.0.1 "$port"; then return 0; fi
    sleep 0.25
  done
  log "the private MariaDB did not come up; last lines of .dev/mysql/error.log:"
  tail -n 20 "$dir/error.log" >&2 || true
  exit 1
}

case "${1:-}" in
  stop)
    if [ -f "$dir/mysqld.pid" ]; then kill "$(cat "$dir/mysqld.pid")" 2>/dev/null || true; fi
    exit 0 ;;
esac

if [ -n "${MYSQL_DSN:-}" ]; then
  # Drop the database part: user:pass@tcp(host:port)/db?params -> ...tcp(host:port)/?params
  echo "$MYSQL_DSN" | sed -E 's#\)/[^?]*#)/#'
  exit 0
fi
if [ "${DEV_MYSQL_PRIVATE:-0}" != 1 ] && can_login 127.0.0.1 3306; then
  echo "root@tcp(127.0.0.1:3306)/"
  exit 0
fi
start_private
echo "root@tcp(127.0.0.1:$port)/"
