#!/usr/bin/env bash
#
# report.sh: kvstore's speed against its baselines, written up as a report.
#
#   sudo bench/report.sh [REPETITIONS]
#
# Starts a throwaway single-node Kafka and PostgreSQL (test/lib.sh; set
# KV_PREFIX to install kvstore into a private copy of the server), builds
# the baselines:
#
#   bench/roundtrip.c  a raw librdkafka produce-then-consume round trip;
#                      with -s, the first write of a new producer
#   bench/txn.c        a raw librdkafka transaction of N records, committed
#                      and consumed (read_committed); or, with -p, the same
#                      records without a transaction
#   bench/gokv/        a Go client of the design kvstore replaces (franz-go
#                      and go-memdb, fetched through the Go module proxy into
#                      bench/.go, which git ignores)
#
# and runs every scenario REPETITIONS times (default 3), kvstore and its
# baseline one after the other.  Writes bench/results/DATE/report.md,
# results.csv and PNG charts (gnuplot), with the machine, the versions and
# the settings.  Timings on a shared machine are noisy: compare the ratios
# of one run, which is what the targets are.
#
# Environment:
#   KV_BENCH_SECONDS    length of each throughput run (default 10)
#   KV_BENCH_RESTORE    record counts of the restore scenarios
#                       (default "1000000 10000000")
#   KV_BENCH_GROWTH     keys the growing topic reaches (default 5000000)
#   KV_BENCH_OUT        output folder (default bench/results/DATE)
#
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../test/lib.sh"
source "$KV_ROOT/bench/lib.sh"

reps=${1:-3}
seconds=${KV_BENCH_SECONDS:-10}
restore_sizes=${KV_BENCH_RESTORE:-1000000 10000000}
growth=${KV_BENCH_GROWTH:-5000000}
stamp=$(date -u +%Y-%m-%d-%H%M)
out=${KV_BENCH_OUT:-$KV_ROOT/bench/results/$stamp}

work=""
cleanup() {
	local rc=$?
	[ -z "$work" ] || kv_remove_workdir "$work"
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

kv_bench_prepare report
dpkg-query -W -f='${Status}' gnuplot-nox 2>/dev/null | grep -q "ok installed" || {
	kv_log "installing gnuplot-nox"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gnuplot-nox >/dev/null
}
kv_fetch_kafka
mkdir -p "$work/pg" "$out"
kv_user_kafka "$work"
chown "$KV_USER" "$work/pg"

# ---- the Go baseline (roundtrip and txn are built)
gocache=$KV_ROOT/bench/.go
(cd "$KV_ROOT/bench/gokv" &&
	GOPATH=$gocache/path GOMODCACHE=$gocache/mod GOCACHE=$gocache/cache GOFLAGS=-modcacherw \
	go build -o "$work/bin/gokv" .)
chmod -R a+rX "$work/bin"

pgdir=$work/pg
kafkadir=$work/kafka
brokers=$(kv_kafka_start "$kafkadir" 1)
port=$(kv_pg_start "$pgdir" "$brokers" "kvstore.shared_memory = '3GB'
kvstore.max_topics = 32
kvstore.auto_create_topics = on
shared_buffers = '256MB'")

csv=$out/results.csv
conninfo="host=$pgdir port=$port user=postgres dbname=postgres"
echo "scenario,system,repetition,value,unit" > "$csv"

sql "CREATE EXTENSION kvstore"
for t in bench batch batch1000 many first; do
	sql "SELECT kv_put('$t', 'warm', 'up')" >/dev/null
done
for t in raw-rt raw-txn raw-txn1000 raw-plain go-put go-batch raw-many raw-many-txn go-txn; do
	kafka_topic "$t"
done

write_scripts
cat > "$work/many.sql" <<'SQL'
\set k random(0, 9999)
SELECT kv_put_many('many', array(SELECT 'key-' || lpad((:k * 100 + g)::text, 8, '0') FROM generate_series(0, 99) g), array(SELECT 'value-' || lpad((:k * 100 + g)::text, 8, '0') FROM generate_series(0, 99) g));
SQL
chown -R "$KV_USER" "$work"

# ---- scenarios; each prints its rows

# 1. one write, sequential: median and p99 of 2000
scenario_put() {
	local r=$1 lat
	lat=$(put_latencies)
	row put_latency_median kvstore "$r" "$(median <<<"$lat")" ms
	row put_latency_p99 kvstore "$r" "$(p99 <<<"$lat")" ms
	lat=$(kv_as_user "$work/bin/roundtrip" "$brokers" raw-rt 2000)
	row put_latency_median librdkafka "$r" "$(median <<<"$lat")" ms
	row put_latency_p99 librdkafka "$r" "$(p99 <<<"$lat")" ms
	lat=$(kv_as_user "$work/bin/gokv" put "$brokers" go-put 2000)
	row put_latency_median go "$r" "$(median <<<"$lat")" ms
	row put_latency_p99 go "$r" "$(p99 <<<"$lat")" ms
}

# 2. batches of 100 and 1,000, one session
scenario_batch() {
	local r=$1 n t lat
	for n in 100 1000; do
		# the arrays bound by the client, as an application sends them
		row "batch${n}_rate" kvstore "$r" "$(kv_as_user "$work/bin/batch" "$conninfo" \
			"$([ $n = 100 ] && echo batch || echo batch1000)" $n "$seconds" | rate_of $n)" records/s
		# the arrays built in SQL by the statement (pgbench)
		row "batch${n}_rate" kvstore_sql_arrays "$r" "$(pgb_rate $n 1 "$work/batch$n.sql")" records/s
		lat=$(txn_latencies $n "raw-txn$([ $n = 100 ] || echo 1000)")
		row "batch${n}_rate" librdkafka_txn "$r" "$(rate_of $n <<<"$lat")" records/s
		row "batch${n}_txn_median" librdkafka_txn "$r" "$(median <<<"$lat")" ms
		lat=$(txn_latencies $n "raw-txn$([ $n = 100 ] || echo 1000)" -f)
		row "batch${n}_rate" librdkafka_txn_flush "$r" "$(rate_of $n <<<"$lat")" records/s
		lat=$(txn_latencies $n raw-plain -p)
		row "batch${n}_rate" librdkafka_plain "$r" "$(rate_of $n <<<"$lat")" records/s
		row "batch${n}_rate" go_plain "$r" "$(kv_as_user "$work/bin/gokv" batch "$brokers" go-batch $n "$seconds")" records/s
	done
	lat=$(kv_as_user "$work/bin/gokv" txn "$brokers" go-txn 100 200)
	row batch100_rate go_txn "$r" "$(rate_of 100 <<<"$lat")" records/s
}

# 3. the first kv_put_many and the first kv_put of a new backend
scenario_first() {
	local r=$1 ms
	ms=$(kv_as_user psql -X -qAt -h "$work/pg" -p "$port" -U postgres postgres <<SQL | grep -oE '^Time: [0-9.]+' | head -n 1 | cut -d' ' -f2
\\timing on
SELECT kv_put_many('first', array['key-$r-a', 'key-$r-b'], array['a', 'b']);
SQL
)
	row first_put_many kvstore "$r" "$ms" ms
	ms=$(kv_as_user psql -X -qAt -h "$work/pg" -p "$port" -U postgres postgres <<SQL | grep -oE '^Time: [0-9.]+' | head -n 1 | cut -d' ' -f2
\\timing on
SELECT kv_put('first', 'key-$r-c', 'c');
SQL
)
	row first_put kvstore "$r" "$ms" ms
	ms=$(kv_as_user "$work/bin/txn" -s "$brokers" raw-txn 2 1 2>&1 >/dev/null |
		awk '/^start-up/ {s = $2} /^first transaction/ {t = $4 + $8 + $11 + $14} END {printf "%.1f", s + t}')
	row first_put_many librdkafka_txn "$r" "$ms" ms
	ms=$(kv_as_user "$work/bin/roundtrip" -s "$brokers" raw-rt 1 2>&1 >/dev/null |
		awk '/^first write/ {print $3}')
	row first_put librdkafka "$r" "$ms" ms
}

# 4. 16 sessions: single writes, and atomic batches of 100
scenario_sessions() {
	local r=$1 t i
	row sessions16_put_rate kvstore "$r" "$(pgb_rate 1 16 "$work/put.sql")" records/s
	# 16 raw clients, each its own producer and consumer; their rates add up
	for i in $(seq 1 16); do
		kv_as_user "$work/bin/roundtrip" "$brokers" raw-many $((seconds * 100)) > "$work/rt.$i" &
	done
	wait
	t=$(for i in $(seq 1 16); do awk '{s += $1; c++} END {printf "%f\n", c / (s / 1e6)}' "$work/rt.$i"; done |
		awk '{s += $1} END {printf "%.0f", s}')
	row sessions16_put_rate librdkafka "$r" "$t" records/s
	row sessions16_batch100_rate kvstore "$r" "$(pgb_rate 100 16 "$work/many.sql")" records/s
	# 16 raw transactional clients of 100 records, on one partition as the
	# sessions are: what Kafka's transactions allow together
	for i in $(seq 1 16); do
		kv_as_user "$work/bin/txn" "$brokers" raw-many-txn 100 $((seconds * 10)) > "$work/txn.$i" &
	done
	wait
	t=$(for i in $(seq 1 16); do rate_of 100 < "$work/txn.$i"; echo; done |
		awk '{s += $1} END {printf "%.0f", s}')
	row sessions16_batch100_rate librdkafka_txn "$r" "$t" records/s
	row sessions16_batch100_rate go_plain_1client "$r" "$(kv_as_user "$work/bin/gokv" batch "$brokers" go-batch 100 "$seconds")" records/s
}

# 5. reads: kv_get against SELECT 1 and a primary-key look-up, 2 clients;
# with the key bound by the client (get_bound) and computed in SQL from
# the number pgbench binds (get), the latter also against that key
# expression alone
scenario_reads() {
	local r=$1
	row get_bound_rate kvstore "$r" "$(pgb -M prepared -f "$work/get_bound.sql" -T "$seconds" -c 2 -j 2 | tps)" tps
	row get_bound_rate select1 "$r" "$(pgb -M prepared -f "$work/one.sql" -T "$seconds" -c 2 -j 2 | tps)" tps
	row get_bound_rate primary_key "$r" "$(pgb -M prepared -f "$work/pk_bound.sql" -T "$seconds" -c 2 -j 2 | tps)" tps
	row get_rate kvstore "$r" "$(pgb -M prepared -f "$work/get.sql" -T "$seconds" -c 2 -j 2 | tps)" tps
	row get_rate key_expression "$r" "$(pgb -M prepared -f "$work/key.sql" -T "$seconds" -c 2 -j 2 | tps)" tps
	row get_rate select1 "$r" "$(pgb -M prepared -f "$work/one.sql" -T "$seconds" -c 2 -j 2 | tps)" tps
	row get_rate primary_key "$r" "$(pgb -M prepared -f "$work/pk.sql" -T "$seconds" -c 2 -j 2 | tps)" tps
	row scan_limit10 kvstore "$r" "$(pgb -M prepared -f "$work/scan.sql" -T "$seconds" -c 1 | tps)" tps
	row scan_limit10 primary_key_limit10 "$r" "$(pgb -M prepared -f "$work/pkscan.sql" -T "$seconds" -c 1 | tps)" tps
}

# 6. restore: a server restarts and replays a topic of N records
scenario_restore() {
	local r=$1 n topic first
	for n in $restore_sizes; do
		topic=restore-$n
		first=$(restore "$topic") || { kv_log "restore of $topic failed"; continue; }
		row "restore${n}_seconds" kvstore "$r" \
			"$(sql "SELECT extract(epoch FROM bootstrap_duration) FROM kv_topics WHERE topic = '$topic'")" s
		row "restore${n}_first_read" kvstore "$r" "$first" s
		row "restore${n}_bytes_per_key" kvstore "$r" \
			"$(sql "SELECT round(bytes::numeric / nullif(keys, 0), 1) FROM kv_topics WHERE topic = '$topic'")" bytes
		if [ "$n" -le 1000000 ]; then
			row "restore${n}_seconds" go "$r" "$(kv_as_user "$work/bin/gokv" restore "$brokers" "$topic" | cut -d' ' -f2)" s
		fi
	done
}

# 7. growth: a topic grows from 0 to $growth keys, in batches of 10,000
# that a client binds (bench/batch.c -g), while one client reads it with
# kv_get (bench/reader.c); the same reader first reads the 100,000 keys of
# reads, which do not change.  Its slowest reads show how long applying a
# batch, hash table doublings included, held readers up.
read_while() {
	local topic=$1 pid
	shift
	runuser -u "$KV_USER" -- "$work/bin/reader" "$conninfo" "$topic" 100000 > "$work/reader.out" &
	pid=$!
	"$@"
	# the reader itself, not runuser: it prints its reads when told to stop
	pkill -TERM -P "$pid"
	wait "$pid"
}
scenario_growth() {
	local r=$1 topic=growth-$1
	read_while reads sleep "$seconds"
	row growth_read_p99 kvstore_still "$r" "$(p99 < "$work/reader.out")" ms
	row growth_read_max kvstore_still "$r" "$(maximum < "$work/reader.out")" ms
	sql "SELECT kv_create_topic('$topic')" >/dev/null
	read_while "$topic" kv_as_user "$work/bin/batch" -g "$conninfo" "$topic" 10000 $((growth / 10000)) > "$work/growth.out"
	row growth_read_p99 kvstore_growing "$r" "$(p99 < "$work/reader.out")" ms
	row growth_read_max kvstore_growing "$r" "$(maximum < "$work/reader.out")" ms
	row growth_batch_median kvstore "$r" "$(median < "$work/growth.out")" ms
	row growth_batch_max kvstore "$r" "$(maximum < "$work/growth.out")" ms
	row growth_keys kvstore "$r" "$(sql "SELECT keys FROM kv_topics WHERE topic = '$topic'")" keys
	sql "SELECT kv_detach('$topic')" >/dev/null	# its memory back for what follows
}

# Foreign tables, each against an ordinary table of the same rows (key
# text COLLATE "C" PRIMARY KEY): a point look-up, a prefix of 100 keys, an
# ordered range with LIMIT 10, a join of 100 rows (pgbench, prepared, one
# client), and INSERT ... SELECT and COPY of 1,000,000 rows (psql \timing).
fdw_ready=""
fdw_setup() {
	local q
	sql "CREATE SERVER kafka FOREIGN DATA WRAPPER kvstore"
	sql "CREATE FOREIGN TABLE f_reads (key text COLLATE \"C\", value text) SERVER kafka OPTIONS (topic 'reads')"
	sql "CREATE FOREIGN TABLE f_insert (key text COLLATE \"C\", value text) SERVER kafka OPTIONS (topic 'fdw-insert')"
	sql "CREATE FOREIGN TABLE f_copy (key text COLLATE \"C\", value text) SERVER kafka OPTIONS (topic 'fdw-copy')"
	sql "CREATE TABLE c_reads (key text COLLATE \"C\" PRIMARY KEY, value text)"
	sql "INSERT INTO c_reads SELECT key, value FROM plain"
	sql "CREATE TABLE c_insert (key text COLLATE \"C\" PRIMARY KEY, value text)"
	sql "CREATE TABLE c_copy (key text COLLATE \"C\" PRIMARY KEY, value text)"
	sql "CREATE TABLE orders (id int PRIMARY KEY, user_key text COLLATE \"C\")"
	sql "INSERT INTO orders SELECT g, 'key-' || lpad((g * 997 % 100000 + 1)::text, 8, '0') FROM generate_series(1, 100) g"
	sql "VACUUM ANALYZE c_reads"
	sql "VACUUM ANALYZE orders"
	for q in f c; do
		printf '%s\n' '\set k random(1, 100000)' "SELECT value FROM ${q}_reads WHERE key = 'key-' || lpad(:k::text, 8, '0');" > "$work/${q}_point.sql"
		printf '%s\n' '\set k random(0, 999)' "SELECT count(*) FROM ${q}_reads WHERE key LIKE 'key-' || lpad(:k::text, 6, '0') || '%';" > "$work/${q}_prefix.sql"
		printf '%s\n' '\set k random(1, 99000)' "SELECT * FROM ${q}_reads WHERE key >= 'key-' || lpad(:k::text, 8, '0') ORDER BY key LIMIT 10;" > "$work/${q}_ordered.sql"
		printf '%s\n' "SELECT count(u.value) FROM orders o JOIN ${q}_reads u ON u.key = o.user_key;" > "$work/${q}_join.sql"
	done
	sql "COPY (SELECT 'key-' || lpad(g::text, 8, '0'), 'value-' || lpad(g::text, 8, '0') FROM generate_series(1, 1000000) g) TO '$work/copy.tsv'"
	chown "$KV_USER" "$work"/*.sql
	fdw_ready=1
}

# timed SQL: the milliseconds psql's \timing gives for one statement
timed() {
	kv_as_user psql -X -qAt -h "$work/pg" -p "$port" -U postgres postgres <<SQL | grep -oE '^Time: [0-9.]+' | tail -n 1 | cut -d' ' -f2
\\timing on
$1
SQL
}

scenario_fdw() {
	local r=$1 q name
	if [ "$(sql "SELECT count(*) FROM pg_foreign_data_wrapper WHERE fdwname = 'kvstore'")" = 0 ]; then
		[ "$r" != 1 ] || kv_log "no foreign-data wrapper: foreign-table scenarios skipped"
		return 0
	fi
	[ -n "$fdw_ready" ] || fdw_setup
	for name in point prefix ordered join; do
		row "fdw_$name" kvstore "$r" "$(pgb -M prepared -f "$work/f_$name.sql" -T "$seconds" -c 1 | tps)" tps
		row "fdw_$name" table "$r" "$(pgb -M prepared -f "$work/c_$name.sql" -T "$seconds" -c 1 | tps)" tps
	done
	sql "TRUNCATE c_insert, c_copy"
	row fdw_insert_select_1m kvstore "$r" "$(timed "INSERT INTO f_insert SELECT 'key-' || lpad(g::text, 8, '0'), 'value-' || lpad(g::text, 8, '0') FROM generate_series(1, 1000000) g;")" ms
	row fdw_insert_select_1m table "$r" "$(timed "INSERT INTO c_insert SELECT 'key-' || lpad(g::text, 8, '0'), 'value-' || lpad(g::text, 8, '0') FROM generate_series(1, 1000000) g;")" ms
	row fdw_copy_1m kvstore "$r" "$(timed "COPY f_copy FROM '$work/copy.tsv';")" ms
	row fdw_copy_1m table "$r" "$(timed "COPY c_copy FROM '$work/copy.tsv';")" ms
}

kv_log "warming up"
warm_up

# ---- data for reads and restores
kv_log "loading 100,000 keys for reads"
sql "SELECT kv_put_many('reads', array(SELECT 'key-' || lpad(g::text, 8, '0') FROM generate_series(s, s + 9999) g), array(SELECT 'value-' || lpad(g::text, 8, '0') FROM generate_series(s, s + 9999) g)) FROM generate_series(1, 100000, 10000) s" >/dev/null
sql "CREATE TABLE plain (key text PRIMARY KEY, value text)"
sql "INSERT INTO plain SELECT 'key-' || lpad(g::text, 8, '0'), 'value-' || lpad(g::text, 8, '0') FROM generate_series(1, 100000) g"
sql "VACUUM ANALYZE plain"
# The same rows with keys a client binds as they are ('1' to '100000'):
# pgbench binds :k, no key expression runs in SQL
sql "SELECT kv_put_many('reads-bound', array(SELECT g::text FROM generate_series(s, s + 9999) g), array(SELECT 'value-' || lpad(g::text, 8, '0') FROM generate_series(s, s + 9999) g)) FROM generate_series(1, 100000, 10000) s" >/dev/null
sql "CREATE TABLE plain_bound (key text PRIMARY KEY, value text)"
sql "INSERT INTO plain_bound SELECT g::text, 'value-' || lpad(g::text, 8, '0') FROM generate_series(1, 100000) g"
sql "VACUUM ANALYZE plain_bound"
printf '%s\n' '\set k random(1, 100000)' "SELECT kv_get('reads', 'key-' || lpad(:k::text, 8, '0'));" > "$work/get.sql"
printf '%s\n' '\set k random(1, 100000)' "SELECT value FROM plain WHERE key = 'key-' || lpad(:k::text, 8, '0');" > "$work/pk.sql"
printf '%s\n' 'SELECT 1;' > "$work/one.sql"
printf '%s\n' '\set k random(1, 100000)' "SELECT kv_get('reads-bound', :k);" > "$work/get_bound.sql"
printf '%s\n' '\set k random(1, 100000)' "SELECT value FROM plain_bound WHERE key = :k;" > "$work/pk_bound.sql"
printf '%s\n' '\set k random(1, 100000)' "SELECT 'key-' || lpad(:k::text, 8, '0');" > "$work/key.sql"
printf '%s\n' "SELECT * FROM kv_scan('reads', 'key-') LIMIT 10;" > "$work/scan.sql"
printf '%s\n' "SELECT * FROM plain WHERE key >= 'key-' ORDER BY key LIMIT 10;" > "$work/pkscan.sql"
chown "$KV_USER" "$work"/*.sql
for n in $restore_sizes; do
	kv_log "loading $n records into restore-$n"
	load_restore "$n"
done

# Attach every topic the scenarios use (a restart detaches them), so that
# no measurement waits for a topic to load
warm_topics() {
	local t
	for t in bench batch batch1000 many first reads reads-bound fdw-insert fdw-copy; do
		sql "SELECT kv_get('$t', 'warm')" >/dev/null 2>&1 || true	# not yet created
	done
}

# ---- runs: every scenario once per repetition, kvstore then its baselines
for r in $(seq 1 "$reps"); do
	warm_topics
	scenario_fdw "$r"
	scenario_first "$r"
	scenario_put "$r"
	scenario_batch "$r"
	scenario_sessions "$r"
	scenario_reads "$r"
	scenario_growth "$r"
	scenario_restore "$r"
done

# ---- the floor of a transaction: librdkafka's own timeline of three
# transactions of 100 records (debug=eos,protocol), in ms from each begin
kv_as_user "$work/bin/txn" -d eos,protocol "$brokers" raw-txn 100 3 2>&1 >/dev/null |
	awk -F'|' '
		/begin_transaction \(in txn/ { t0 = $2; n++; printf "transaction %d\n", n }
		t0 && /Sent (AddPartitionsToTxn|Produce|EndTxn)Request|Received (AddPartitionsToTxn|Produce|EndTxn)Response|Transaction successfully committed/ {
			line = $5; sub(/^ *\[thrd:[^]]*\]: */, "", line); sub(/^[^ ]*: /, "", line)
			printf "  %7.2f ms  %s\n", ($2 - t0) * 1000, substr(line, 1, 90)
		}' > "$out/transaction-timeline.txt"

# ---- report: the machine, versions and settings, then the tables and charts
{
	echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo "command: bench/report.sh $reps (KV_BENCH_SECONDS=$seconds, KV_BENCH_RESTORE=\"$restore_sizes\")"
	echo "commit: $(git -C "$KV_ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
	environment_lines
	echo "kafka: $KV_KAFKA_VERSION (KAFKA_VERSION), one KRaft node on loopback"
	echo "go: $(go version | cut -d' ' -f3), franz-go $(awk '$1 == "github.com/twmb/franz-go" {print $2}' "$KV_ROOT/bench/gokv/go.mod"), go-memdb $(awk '$1 == "github.com/hashicorp/go-memdb" {print $2}' "$KV_ROOT/bench/gokv/go.mod")"
	echo "settings: kvstore.shared_memory = 3GB, fsync = off, shared_buffers = 256MB; producers idempotent with acks=all; consumers read_committed"
	echo "data: keys key-%08d, values value-%08d; ${seconds}s per throughput run; $reps repetitions"
} > "$out/environment.txt"
"$KV_ROOT/bench/write-report.sh" "$out"
kv_log "report: $out/report.md"
