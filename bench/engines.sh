#!/usr/bin/env bash
# The API's main figures on each engine, in one run: get-user (the `http` bench), API-channel ingest end to
# end and the conversation list (the `desk` bench), the monolith with its namespaces as SQLite files, then
# as schemas on this machine's PostgreSQL, then as databases on its MariaDB (as scripts/test sets them up).
# Each engine's namespaces are fresh and dropped after.
#
#   bench/engines.sh [MESSAGES]        # default 20000 posts, 32 posters, paced part at 1,000/s
set -euo pipefail
cd "$(dirname "$0")/.."
messages="${1:-20000}"
postgres="${TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"
mysql="${TEST_MYSQL_URL:-mysql://root@127.0.0.1:3306/}"
prefix="bench$$"

drop() {
  psql -q "$postgres" -tc "select 'drop schema ' || nspname || ' cascade;' from pg_namespace where nspname like '${prefix}%'" \
    | psql -q "$postgres" >/dev/null 2>&1 || true
  mariadb -uroot -h127.0.0.1 -N -e "select concat('drop database ', schema_name, ';') from information_schema.schemata
    where schema_name like '${prefix}%'" | mariadb -uroot -h127.0.0.1 >/dev/null 2>&1 || true
}
trap drop EXIT

command -v wrk >/dev/null || { echo "the conversation list is measured with wrk: apt-get install wrk" >&2; exit 1; }
cargo bench -p omnidesk --bench http --bench desk --no-run --quiet
for engine in sqlite postgres mariadb; do
  echo "=== $engine"
  case "$engine" in
    sqlite) unset DATABASE_URL OMNIDESK_DATA__NAMESPACE ;;
    postgres) export DATABASE_URL="$postgres" OMNIDESK_DATA__NAMESPACE="${prefix}pg_{service}" ;;
    mariadb) export DATABASE_URL="$mysql" OMNIDESK_DATA__NAMESPACE="${prefix}my_{service}" ;;
  esac
  cargo bench -p omnidesk --bench http --quiet -- 10 16 monolith 2>/dev/null | grep -v '^$'
  cargo bench -p omnidesk --bench desk --quiet -- "$messages" 32 1000 monolith 2>/dev/null | grep -v '^$'
done
