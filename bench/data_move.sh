#!/usr/bin/env bash
# Move throughput of `omnidesk data move` (release build) on an inbox of MESSAGES messages (default
# 1,000,000): SQLite → PostgreSQL, PostgreSQL → PostgreSQL, PostgreSQL → SQLite and SQLite → MariaDB, one
# after another on the same data, on this machine's servers (as scripts/test sets them up). Each move prints
# its rows, copy time and rate, the search documents rebuilt at the target, and how long the service's
# writes were held; the wall time of the whole command (drain, copy, rebuild, compare, switch) is beside it.
# Beside them, the ceilings: the bare engine's own bulk load of the same messages table, and the same work
# as the move's (read the source, load the target, build its key and index) done by sqlite3 and psql piped.
#
#   bench/data_move.sh [MESSAGES]
set -euo pipefail
cd "$(dirname "$0")/.."
messages="${1:-1000000}"
postgres="${TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"
mysql="${TEST_MYSQL_URL:-mysql://root@127.0.0.1:3306/}"
mysql="${mysql%/}"
prefix="bench$$"

cargo build --release -p omnidesk --quiet
omnidesk="$PWD/target/release/omnidesk"
work="$(mktemp -d)"
cleanup() {
  psql -q "$postgres" -c "drop schema if exists ${prefix}_a cascade; drop schema if exists ${prefix}_b cascade;" \
    >/dev/null 2>&1 || true
  mariadb -uroot -h127.0.0.1 -e "drop database if exists ${prefix}_inbox" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

export OMNIDESK_LOG=warn
"$omnidesk" migrate --service inbox --data-dir "$work" >/dev/null
python3 bench/fill_inbox.py "$work/inbox.db" "$messages"
"$omnidesk" data status --data-dir "$work" | grep -E '^inbox|size|rows in'

move() {
  local to="$1" started ended
  echo "== $2"
  started="$(date +%s.%N)"
  "$omnidesk" data move --service inbox --to "$to" --data-dir "$work" 2>/dev/null | grep 'moved to'
  ended="$(date +%s.%N)"
  printf '   the whole command: %.1f s\n' "$(echo "$ended - $started" | bc)"
}

move "$postgres?schema=${prefix}_a" "SQLite → PostgreSQL"
move "$postgres?schema=${prefix}_b" "PostgreSQL → PostgreSQL"
move "sqlite://$work/inbox.db" "PostgreSQL → SQLite"
move "$mysql/${prefix}_inbox" "SQLite → MariaDB"

# The ceiling: each engine loading the messages table from a file by its own bulk path, no OmniDesk between.
echo "== ceiling: the messages table by the engines' own bulk load"
sqlite3 "$work/inbox.db" ".mode csv" ".output $work/messages.csv" \
  "select id, account_id, conversation_id, kind, content, sender_id, attributes, delivery_status, delivery_error, created_at from messages" 2>/dev/null \
  || echo "   (sqlite3 is not installed: apt-get install sqlite3)"
if [[ -s "$work/messages.csv" ]]; then
  rows="$(wc -l <"$work/messages.csv")"
  # Into a table with the messages table's own key, index and checks (the work the move's target does,
  # save the foreign key), and into one without them.
  for like in "including all:with the key and index" ":without any index"; do
    started="$(date +%s.%N)"
    psql -q "$postgres" -c "set client_min_messages = warning" -c "drop table if exists ${prefix}_a.bare" \
      -c "create table ${prefix}_a.bare (like ${prefix}_a.messages ${like%%:*})" \
      -c "\\copy ${prefix}_a.bare from '$work/messages.csv' with (format csv)"
    ended="$(date +%s.%N)"
    printf '   PostgreSQL COPY, %s: %s rows in %.1f s (%.0f rows/s)\n' "${like#*:}" "$rows" \
      "$(echo "$ended - $started" | bc)" "$(echo "$rows / ($ended - $started)" | bc -l)"
  done
  # The move's own work for this table done by the bare tools, piped: sqlite3 reads the source while psql
  # loads an unindexed table, then the key and index are built (what the move does since it defers them).
  started="$(date +%s.%N)"
  sqlite3 "$work/inbox.db" ".mode csv" \
    "select id, account_id, conversation_id, kind, content, sender_id, attributes, delivery_status, delivery_error, created_at from messages" |
    psql -q "$postgres" -c "set client_min_messages = warning" -c "drop table if exists ${prefix}_a.bare" \
      -c "create table ${prefix}_a.bare (like ${prefix}_a.messages)" \
      -c "\\copy ${prefix}_a.bare from pstdin with (format csv)" \
      -c "alter table ${prefix}_a.bare add primary key (id)" \
      -c "create index on ${prefix}_a.bare (conversation_id, created_at, id)"
  ended="$(date +%s.%N)"
  printf '   sqlite3 piped into PostgreSQL COPY, key and index built after: %s rows in %.1f s (%.0f rows/s)\n' "$rows" \
    "$(echo "$ended - $started" | bc)" "$(echo "$rows / ($ended - $started)" | bc -l)"
  started="$(date +%s.%N)"
  mariadb -uroot -h127.0.0.1 --local-infile=1 "${prefix}_inbox" -e \
    "create table bare like messages; load data local infile '$work/messages.csv' into table bare
     fields terminated by ',' optionally enclosed by '\"' lines terminated by '\n'"
  ended="$(date +%s.%N)"
  printf '   MariaDB LOAD DATA, with the key and index: %s rows in %.1f s (%.0f rows/s)\n' "$rows" "$(echo "$ended - $started" | bc)" \
    "$(echo "$rows / ($ended - $started)" | bc -l)"
fi
