#!/usr/bin/env bash
#
# fdw.sh: foreign tables against ordinary tables holding the same rows,
# side by side in one run.
#
#   sudo bench/fdw.sh [SECONDS]
#
# Starts a throwaway single-node Kafka and PostgreSQL (test/lib.sh; set
# KV_PREFIX to install kvstore into a private copy of the server) and
# loads 100,000 keys into a foreign table and into an ordinary table with
# a primary key, both keyed by text COLLATE "C".  Then, with pgbench, one
# client, SECONDS each (default 10):
#
#   lookup   SELECT value ... WHERE key = $1 (prepared), a random key
#   prefix   the 100 keys of one prefix, as a range of the key (the
#            ordinary table's index serves a range of parameters, not a
#            LIKE of one)
#   ordered  every row in key order (the ordinary table by its index)
#   join     10,000 orders joined to the 100,000 keys
#
# and the rate of INSERT ... SELECT and of COPY FROM of 1,000,000 rows
# into a foreign table.  Prints one table: each scenario's rate for both
# tables and their ratio.  Timings on a shared machine are noisy: compare
# the ratios of one run.
#
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../test/lib.sh"

seconds=${1:-10}
[ "$(id -u)" = 0 ] || { kv_log "run as root (it installs packages)"; exit 1; }

work=""
cleanup() {
	local rc=$?
	[ -z "$work" ] || kv_remove_workdir "$work"
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

kv_install_packages
kv_ensure_user
kv_build
kv_fetch_kafka
work=$(kv_make_workdir fdwbench)
mkdir -p "$work/pg"
kv_user_kafka "$work"
chown "$KV_USER" "$work/pg"
brokers=$(kv_kafka_start "$work/kafka" 1)
port=$(kv_pg_start "$work/pg" "$brokers" "kvstore.shared_memory = '1GB'
shared_buffers = '256MB'")

sql() { kv_as_user psql -X -qAt -v ON_ERROR_STOP=1 -h "$work/pg" -p "$port" -U postgres -c "$1" postgres; }
# tps SCRIPT: transactions per second of one pgbench client running SCRIPT
tps() {
	kv_as_user pgbench -h "$work/pg" -p "$port" -U postgres -n -M prepared -c 1 -T "$seconds" \
		-f "$1" postgres 2>&1 | grep -oE 'tps = [0-9.]+' | head -n 1 | cut -d' ' -f3
}
# seconds_of SQL: wall time of one statement, in seconds
seconds_of() {
	local start end
	start=$(date +%s.%N)
	sql "$1" >/dev/null
	end=$(date +%s.%N)
	echo "$start $end" | awk '{printf "%.3f", $2 - $1}'
}

kv_log "loading 100,000 keys into both tables"
sql "CREATE EXTENSION kvstore"
sql "SELECT kv_create_topic('bench_users'), kv_create_topic('bench_load')"
sql "CREATE SERVER kafka FOREIGN DATA WRAPPER kvstore"
sql "CREATE FOREIGN TABLE f_users (key text COLLATE \"C\", value text) SERVER kafka OPTIONS (topic 'bench_users')"
sql "CREATE TABLE l_users (key text COLLATE \"C\" PRIMARY KEY, value text)"
sql "INSERT INTO l_users SELECT 'k' || lpad(g::text, 6, '0'), md5(g::text) FROM generate_series(0, 99999) g"
sql "INSERT INTO f_users SELECT * FROM l_users"
sql "CREATE TABLE orders (id int PRIMARY KEY, user_key text)"
sql "INSERT INTO orders SELECT g, 'k' || lpad((g * 7919 % 100000)::text, 6, '0') FROM generate_series(1, 10000) g"
sql "VACUUM ANALYZE l_users, orders"
sql "ANALYZE f_users"
sql "CREATE FOREIGN TABLE f_load (key text COLLATE \"C\", value text) SERVER kafka OPTIONS (topic 'bench_load')"

for t in f l; do
	cat > "$work/lookup_$t.sql" <<SQL
\\set k random(0, 99999)
SELECT value FROM ${t}_users WHERE key = 'k' || lpad(:k::text, 6, '0');
SQL
	cat > "$work/prefix_$t.sql" <<SQL
\\set p random(0, 998)
SELECT count(*), max(value) FROM ${t}_users
WHERE key >= 'k' || lpad(:p::text, 4, '0') AND key < 'k' || lpad((:p + 1)::text, 4, '0');
SQL
	cat > "$work/ordered_$t.sql" <<SQL
SET enable_seqscan = off;
SET enable_sort = off;
SELECT count(*), max(value) FROM (SELECT key, value FROM ${t}_users ORDER BY key OFFSET 0) s;
SQL
	cat > "$work/join_$t.sql" <<SQL
SELECT count(*), max(u.value) FROM orders o JOIN ${t}_users u ON u.key = o.user_key;
SQL
done
chmod a+r "$work"/*.sql

results=()
for s in lookup prefix ordered join; do
	f=$(tps "$work/${s}_f.sql")
	l=$(tps "$work/${s}_l.sql")
	results+=("$s|$f|$l")
	kv_log "$s: foreign table $f tps, ordinary table $l tps"
done

kv_log "1,000,000 rows: INSERT ... SELECT and COPY"
insert_s=$(seconds_of "INSERT INTO f_load SELECT 'row:' || g, md5(g::text) FROM generate_series(1, 1000000) g")
kv_as_user psql -X -qAt -h "$work/pg" -p "$port" -U postgres \
	-c "COPY (SELECT 'copy:' || g, md5(g::text) FROM generate_series(1, 1000000) g) TO '$work/rows.tsv'" postgres
copy_s=$(seconds_of "COPY f_load FROM '$work/rows.tsv'")
rows=$(sql "SELECT count(*) FROM f_load")
sql "CREATE TABLE l_load (key text COLLATE \"C\" PRIMARY KEY, value text)"
l_insert_s=$(seconds_of "INSERT INTO l_load SELECT 'row:' || g, md5(g::text) FROM generate_series(1, 1000000) g")

echo
echo "foreign table against ordinary table, $seconds s per run, one client, Kafka $KV_KAFKA_VERSION ($(date -u +%Y-%m-%d))"
echo
printf '| %-8s | %14s | %14s | %6s |\n' scenario "foreign (tps)" "ordinary (tps)" ratio
printf '|%s|%s|%s|%s|\n' "----------" "----------------" "----------------" "--------"
for r in "${results[@]}"; do
	IFS='|' read -r s f l <<<"$r"
	printf '| %-8s | %14s | %14s | %6s |\n' "$s" "$f" "$l" "$(awk -v a="$f" -v b="$l" 'BEGIN {printf "%.2f", a / b}')"
done
echo
printf 'INSERT ... SELECT of 1,000,000 rows into the foreign table: %s s, %s rows/s (ordinary table: %s s)\n' \
	"$insert_s" "$(awk -v s="$insert_s" 'BEGIN {printf "%.0f", 1000000 / s}')" "$l_insert_s"
printf 'COPY FROM of 1,000,000 rows into the foreign table: %s s, %s rows/s\n' \
	"$copy_s" "$(awk -v s="$copy_s" 'BEGIN {printf "%.0f", 1000000 / s}')"
printf 'keys in the foreign table afterwards: %s\n' "$rows"
