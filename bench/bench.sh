#!/usr/bin/env bash
#
# bench.sh: kvstore's speed, measured side by side in one run.
#
#   sudo bench/bench.sh [SECONDS]
#
# Starts a throwaway single-node Kafka and PostgreSQL (as test/check.sh
# does) and measures, each against its baseline:
#
#   1. write latency: kv_put from one session (median, p99) against the raw
#      librdkafka produce-to-consume round trip with the same settings
#      (bench/roundtrip.c: idempotent, acks=all, linger.ms=0, read_committed)
#   2. batched writes: kv_put_many of 100 records, per record
#   3. read throughput: kv_get through pgbench with prepared statements,
#      against a primary-key look-up in an ordinary table and SELECT 1
#   4. replay: the time a server takes to rebuild a 1,000,000-record topic
#
# Timings on a shared machine are noisy: compare the ratios of one run.
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
work=$(kv_make_workdir bench)
mkdir -p "$work/pg"
kv_user_kafka "$work"
chown "$KV_USER" "$work/pg"
brokers=$(kv_kafka_start "$work/kafka" 1)
port=$(kv_pg_start "$work/pg" "$brokers" "kvstore.shared_memory = '512MB'")
gcc -O2 -Wall -o "$work/roundtrip" "$KV_ROOT/bench/roundtrip.c" -lrdkafka

sql() { kv_as_user psql -X -qAt -h "$work/pg" -p "$port" -U postgres -c "$1" postgres; }
bench() { kv_as_user pgbench -h "$work/pg" -p "$port" -U postgres -n "$@" postgres 2>&1; }
# median and p99 of numbers on stdin, in ms, from microseconds
percentiles() { sort -n | awk '{a[NR] = $1} END {printf "median %.2f ms, p99 %.2f ms", a[int(NR * 0.5)] / 1000, a[int(NR * 0.99)] / 1000}'; }
tps() { grep -oE 'tps = [0-9.]+' | head -n 1 | cut -d' ' -f3; }

sql "CREATE EXTENSION kvstore"
sql "SELECT kv_put('bench', 'warm', 'up'), kv_put('roundtrip', 'warm', 'up')" >/dev/null

echo "== 1. write latency, one session, 2000 writes"
raw=$(kv_as_user "$work/roundtrip" "$brokers" roundtrip 2000 | percentiles)
cat > "$work/put.sql" <<'SQL'
\set k random(1, 100000)
SELECT kv_put('bench', 'key:' || :k, 'value ' || :k);
SQL
chown "$KV_USER" "$work/put.sql"
(cd "$work" && kv_as_user pgbench -h "$work/pg" -p "$port" -U postgres -n -M prepared \
	-f "$work/put.sql" -t 2000 -c 1 -l --log-prefix="$work/putlog" postgres >/dev/null 2>&1)
put=$(cat "$work"/putlog.* | awk '{print $3}' | percentiles)
echo "librdkafka round trip:  $raw"
echo "kv_put:                 $put"

echo "== 2. batched writes: kv_put_many of 100 records"
cat > "$work/batch.sql" <<'SQL'
\set k random(1, 1000)
SELECT kv_put_many('bench', array(SELECT 'b:' || :k || ':' || g FROM generate_series(1, 100) g), array(SELECT 'v' FROM generate_series(1, 100)));
SQL
chown "$KV_USER" "$work/batch.sql"
batch=$(bench -M prepared -f "$work/batch.sql" -T "$seconds" -c 1 | tps)
awk -v t="$batch" 'BEGIN {printf "kv_put_many(100):       %.0f records/s, %.3f ms per record\n", t * 100, 1000 / (t * 100)}'

echo "== 3. read throughput, pgbench -M prepared, 2 clients, ${seconds}s each"
sql "SELECT kv_put_many('bench', array(SELECT 'key:' || g FROM generate_series(1, 100000) g), array(SELECT 'value ' || g FROM generate_series(1, 100000) g))" >/dev/null
sql "CREATE TABLE plain (key text PRIMARY KEY, value text); INSERT INTO plain SELECT 'key:' || g, 'value ' || g FROM generate_series(1, 100000) g"
sql "VACUUM ANALYZE plain"
printf '%s\n' '\set k random(1, 100000)' "SELECT kv_get('bench', 'key:' || :k);" > "$work/get.sql"
printf '%s\n' '\set k random(1, 100000)' "SELECT value FROM plain WHERE key = 'key:' || :k;" > "$work/pk.sql"
printf '%s\n' 'SELECT 1;' > "$work/one.sql"
chown "$KV_USER" "$work"/*.sql
get=$(bench -M prepared -f "$work/get.sql" -T "$seconds" -c 2 -j 2 | tps)
pk=$(bench -M prepared -f "$work/pk.sql" -T "$seconds" -c 2 -j 2 | tps)
one=$(bench -M prepared -f "$work/one.sql" -T "$seconds" -c 2 -j 2 | tps)
awk -v g="$get" -v p="$pk" -v o="$one" 'BEGIN {
	printf "kv_get:                 %8.0f tps  (%.2f x primary key, %.2f x SELECT 1)\n", g, g / p, g / o
	printf "primary-key look-up:    %8.0f tps\n", p
	printf "SELECT 1:               %8.0f tps\n", o
}'

echo "== 4. replay of 1,000,000 records"
sql "SELECT kv_put_many('replay', array(SELECT 'r:' || g FROM generate_series(s, s + 99999) g), array(SELECT 'value ' || g FROM generate_series(s, s + 99999) g)) FROM generate_series(1, 1000000, 100000) s" >/dev/null
kv_as_user "$KV_PGBIN/pg_ctl" -D "$work/pg/data" -w restart >/dev/null
start=$(date +%s.%N)
sql "SELECT kv_get('replay', 'r:1')" >/dev/null
end=$(date +%s.%N)
sql "SELECT keys, applied_offset, extract(epoch FROM bootstrap_duration) FROM kv_topics WHERE topic = 'replay'" |
	awk -F'|' -v wall="$(awk -v s="$start" -v e="$end" 'BEGIN {print e - s}')" '{printf "replay:                 %d keys (%d offsets) in %.2f s, %.0f records/s; first read after restart took %.2f s\n", $1, $2, $3, $2 / $3, wall}'
