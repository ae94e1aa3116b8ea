# Sourced by the scripts: finds or starts MySQL and sets
#   MYSQL_SERVER_DSN  the server, no database
#   MYSQL_DSN         the system database (unitenant), unless already set
ensure_mysql() {
  MYSQL_SERVER_DSN=$(scripts/mysql.sh)
  export MYSQL_SERVER_DSN
  if [ -z "${MYSQL_DSN:-}" ]; then
    MYSQL_DSN=$(echo "$MYSQL_SERVER_DSN" | sed -E 's#\)/#)/unitenant#')
    export MYSQL_DSN
  fi
}
