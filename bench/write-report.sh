#!/usr/bin/env bash
#
# write-report.sh: report.md and PNG charts from a run of bench/report.sh.
#
#   bench/write-report.sh DIR
#
# Reads DIR/results.csv (scenario,system,repetition,value,unit) and
# DIR/environment.txt; writes DIR/report.md, DIR/targets.png (each target:
# what was reached over what is required, 1 or more is met),
# DIR/throughput.png and DIR/latency.png.  Figures are medians over the
# repetitions.
#
set -euo pipefail

dir=$1
csv=$dir/results.csv
[ -f "$csv" ] || { echo "write-report.sh: no $csv" >&2; exit 1; }

# medians: scenario system median min max unit count
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
kv_bench_medians "$csv" > "$dir/medians.txt"

med() { awk -v s="$1" -v y="$2" '$1 == s && $2 == y {print $3}' "$dir/medians.txt"; }

# Targets of the benchmark: name|text|scenario|system|base scenario|base system|kind|required
targets='batch100|kv_put_many of 100, one session: records/s ≥ 0.9× the raw librdkafka transaction of 100|batch100_rate|kvstore|batch100_rate|librdkafka_txn|ratio_ge|0.9
batch1000|kv_put_many of 1,000, one session: records/s ≥ the Go client'"'"'s plain batches of 1,000|batch1000_rate|kvstore|batch1000_rate|go_plain|ratio_ge|1
sessions16_batch100|16 sessions of kv_put_many(100): records/s together ≥ the Go client'"'"'s plain batches of 100|sessions16_batch100_rate|kvstore|sessions16_batch100_rate|go_plain_1client|ratio_ge|1
first_put_many|first kv_put_many of a backend ≤ 50 ms|first_put_many|kvstore|||abs_le|50
first_put|first kv_put of a backend ≤ 5 ms|first_put|kvstore|||abs_le|5
put_median|kv_put median ≤ 1.0× the raw librdkafka round trip|put_latency_median|kvstore|put_latency_median|librdkafka|ratio_le|1
sessions16_put|16 sessions of kv_put: records/s ≥ 0.8× 16 raw librdkafka clients|sessions16_put_rate|kvstore|sessions16_put_rate|librdkafka|ratio_ge|0.8
restore1m|restore of 1,000,000 records ≤ 1 s (≥ 1,000,000 records/s)|restore1000000_seconds|kvstore|||abs_le|1
restore1m_go|restore of 1,000,000 records in ≤ 0.5× the Go client'"'"'s time|restore1000000_seconds|kvstore|restore1000000_seconds|go|ratio_le|0.5
restore10m|restore of 10,000,000 records ≤ 10 s|restore10000000_seconds|kvstore|||abs_le|10
memory|bytes per key ≤ 40 beyond its 26 bytes of key and value|restore1000000_bytes_per_key|kvstore|||abs_le|66
get|kv_get ≥ 0.95× SELECT 1 (pgbench prepared, 2 clients, the key bound by the client)|get_bound_rate|kvstore|get_bound_rate|select1|ratio_ge|0.95
get_expr|kv_get with its key computed in SQL ≥ 0.95× that key expression alone|get_rate|kvstore|get_rate|key_expression|ratio_ge|0.95'

# target rows: name|text|reached|required|score|verdict
: > "$dir/targets.txt"
while IFS='|' read -r name text s y bs by kind req; do
	kv=$(med "$s" "$y")
	[ -n "$kv" ] || continue
	if [ -n "$bs" ]; then
		base=$(med "$bs" "$by")
		[ -n "$base" ] || continue
		reached=$(awk -v a="$kv" -v b="$base" 'BEGIN {printf "%.3f", a / b}')
	else
		reached=$kv
	fi
	awk -v n="$name" -v t="$text" -v r="$reached" -v q="$req" -v k="$kind" 'BEGIN {
		score = (k ~ /_ge$/) ? r / q : (r > 0 ? q / r : 0)
		verdict = score >= 1 ? sprintf("met (by %.0f%%)", (score - 1) * 100) : sprintf("missed (by %.0f%%)", (1 - score) * 100)
		shown = (k ~ /^ratio/) ? sprintf("%.2f×", r) : sprintf("%.2f", r)
		printf "%s|%s|%s|%s|%.3f|%s\n", n, t, shown, q, score, verdict
	}' >> "$dir/targets.txt"
done <<< "$targets"

# ---- charts
if command -v gnuplot >/dev/null; then
	awk -F'|' '{print NR - 1, $1, $5}' "$dir/targets.txt" > "$dir/targets.dat"
	gnuplot <<GP
set terminal pngcairo noenhanced size 900,520 font "sans,10"
set output "$dir/targets.png"
set title "kvstore against its targets (1 or more: met)"
set style fill solid 0.8
set boxwidth 0.6
set yrange [0:*]
set xtics rotate by -35 left
set grid ytics
unset key
plot "$dir/targets.dat" using 1:3:xtic(2) with boxes lc rgb "#3a6ea5", 1 with lines lc rgb "#c0392b" lw 2
GP
	for s in batch100_rate batch1000_rate sessions16_put_rate sessions16_batch100_rate; do
		awk -v s="$s" '$1 == s {print s, $2, $3}' "$dir/medians.txt"
	done | awk '{print NR - 1, $1 "\\n" $2, $3}' > "$dir/throughput.dat"
	gnuplot <<GP
set terminal pngcairo noenhanced size 1000,520 font "sans,9"
set output "$dir/throughput.png"
set title "Writes: records/s (median), kvstore and its baselines"
set style fill solid 0.8
set boxwidth 0.6
set logscale y
set xtics rotate by -45 left
set grid ytics
unset key
plot "$dir/throughput.dat" using 1:3:xtic(2) with boxes lc rgb "#3a6ea5"
GP
	for s in put_latency_median put_latency_p99 batch100_txn_median first_put first_put_many; do
		awk -v s="$s" '$1 == s {print s, $2, $3}' "$dir/medians.txt"
	done | awk '{print NR - 1, $1 "\\n" $2, $3}' > "$dir/latency.dat"
	gnuplot <<GP
set terminal pngcairo noenhanced size 1000,520 font "sans,9"
set output "$dir/latency.png"
set title "Latency: ms (median over repetitions)"
set style fill solid 0.8
set boxwidth 0.6
set logscale y
set xtics rotate by -45 left
set grid ytics
unset key
plot "$dir/latency.dat" using 1:3:xtic(2) with boxes lc rgb "#3a6ea5"
GP
	rm -f "$dir"/*.dat
fi

# ---- report.md
{
	echo "# kvstore benchmark, $(sed -n 's/^date: //p' "$dir/environment.txt")"
	echo
	echo "Reproduce with \`$(sed -n 's/^command: //p' "$dir/environment.txt")\` as root from a checkout."
	echo
	echo "## Targets"
	echo
	echo "| target | reached | required | verdict |"
	echo "|---|---|---|---|"
	awk -F'|' '{printf "| %s | %s | %s | %s |\n", $2, $3, $4, $6}' "$dir/targets.txt"
	echo
	echo "![targets](targets.png)"
	echo
	echo "## Every figure"
	echo
	echo "Medians over the repetitions, with the lowest and highest."
	echo
	echo "| scenario | system | median | min | max | unit | runs |"
	echo "|---|---|---|---|---|---|---|"
	awk '{printf "| %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7}' "$dir/medians.txt"
	echo
	echo "![throughput](throughput.png)"
	echo
	echo "![latency](latency.png)"
	echo
	if [ -s "$dir/transaction-timeline.txt" ]; then
		echo "## The floor of a transaction"
		echo
		echo "librdkafka's own timeline (debug=eos,protocol) of three raw transactions of 100 records,"
		echo "in ms from each begin_transaction (the log has millisecond resolution): registering the"
		echo "partition (AddPartitionsToTxn), producing, and ending the transaction (EndTxn) are three"
		echo "round trips one after the other; the consumer then sees the records once the commit"
		echo "marker is written."
		echo
		echo '```'
		cat "$dir/transaction-timeline.txt"
		echo '```'
		echo
	fi
	echo "## Systems"
	echo
	echo "- kvstore: the SQL functions through pgbench (prepared statements) or psql; for batches, bench/batch.c, a libpq client that binds the two arrays of kv_put_many as parameters of a prepared statement, as an application does."
	echo "- kvstore_sql_arrays: batches through pgbench, whose statement builds the two arrays in SQL (\`array(SELECT 'key-' || lpad(...) FROM generate_series(...))\`): that work is the server's too."
	echo "- librdkafka: bench/roundtrip.c, one record produced (idempotent, acks=all) and consumed (read_committed); for first_put, the first such write of a new producer, its start-up included."
	echo "- librdkafka_txn: bench/txn.c, one transaction of N records committed and its last record consumed (read_committed); in sessions16_batch100_rate, 16 such clients at once on one partition, as the 16 sessions are."
	echo "- librdkafka_txn_flush: the same, but rd_kafka_commit_transaction() waits for the delivery reports itself (rd_kafka_flush) instead of the client serving them with rd_kafka_poll() first."
	echo "- librdkafka_plain: bench/txn.c -p, the same N records without a transaction."
	echo "- go_plain, go, go_txn: bench/gokv, a franz-go and go-memdb client of the design kvstore replaces (batches produced, then one wait on the highest offset; not atomic); go_txn is franz-go's own transaction of 100."
	echo "- select1, primary_key: \`SELECT 1\` and a primary-key look-up in an ordinary table of 100,000 rows."
	echo "- growth: bench/batch.c -g grows a topic from 0 to 5,000,000 keys in batches of 10,000 (growth_batch: each call), while bench/reader.c, one client, reads it with kv_get (kvstore_growing); kvstore_still is the same reader on 100,000 keys that do not change. The slowest read is the longest a reader was held up."
	echo "- get_bound_rate: the key is bound by the client (keys '1' to '100000'); get_rate: the key is computed in SQL, \`'key-' || lpad(:k::text, 8, '0')\`, and key_expression is that \`SELECT\` alone."
	echo
	echo "## Machine, versions, settings"
	echo
	sed 's/^/- /' "$dir/environment.txt"
} > "$dir/report.md"
