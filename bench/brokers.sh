#!/usr/bin/env bash
#
# brokers.sh: kvstore and the raw librdkafka clients on Apache Kafka 3.9.1
# and on the bed's default 4.x, side by side in one run.
#
#   sudo bench/brokers.sh [REPETITIONS]
#
# Starts a throwaway single-node Kafka of each version (test/kafka/kafka.sh
# fetches both) and a PostgreSQL server with kvstore for each
# (kvstore.brokers names one Kafka a server; set KV_PREFIX to install
# kvstore into a private copy of the server), all of them running
# throughout.  Then, REPETITIONS times (default 3), each scenario on one
# version and at once on the other, the first of the two alternating from
# one repetition to the next:
#
#   a raw librdkafka transaction of 100 and of 1,000 records (bench/txn.c)
#   kv_put_many of 100 and of 1,000 records, one session (records/s)
#   kv_put one at a time against the raw round trip (bench/roundtrip.c)
#   a restart of the server that replays 1,000,000 records
#
# Writes bench/results/DATE-brokers/report.md (one table of medians with
# the lowest and highest of each, and the ratio of the newer version's
# median to the older's), results.csv and environment.txt (versions, load
# average, command).  Timings on a shared machine are noisy: compare the
# versions within one run.
#
# Environment:
#   KV_BENCH_SECONDS    length of each kv_put_many run (default 10)
#   KV_BENCH_RESTORE    records replayed by the restore (default 1000000)
#   KV_BENCH_KAFKA      the two Kafka versions, older first (default
#                       "3.9.1" and kafka.sh's default)
#   KV_BENCH_OUT        output folder (default bench/results/DATE-brokers)
#
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../test/lib.sh"
source "$KV_ROOT/bench/lib.sh"

reps=${1:-3}
seconds=${KV_BENCH_SECONDS:-10}
restore_n=${KV_BENCH_RESTORE:-1000000}
read -r -a versions <<< "${KV_BENCH_KAFKA:-3.9.1 $(env -u KAFKA_LIBS -u KAFKA_VERSION "$KV_KAFKA" version)}"
[ ${#versions[@]} = 2 ] || { kv_log "KV_BENCH_KAFKA names two versions"; exit 1; }
stamp=$(date -u +%Y-%m-%d-%H%M)
out=${KV_BENCH_OUT:-$KV_ROOT/bench/results/$stamp-brokers}

work=""
cleanup() {
	local rc=$? v
	if [ -n "$work" ]; then
		for v in "${versions[@]}"; do kv_pg_stop "$work/$v/pg"; done
		kv_remove_workdir "$work"
	fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

kv_bench_prepare brokers
mkdir -p "$out"
csv=$out/results.csv
echo "scenario,system,repetition,value,unit" > "$csv"
write_scripts

# ---- one Kafka and one PostgreSQL server a version
declare -A tools_of libs_of brokers_of port_of
for v in "${versions[@]}"; do
	kv_kafka_select "$v"
	kv_fetch_kafka
	mkdir -p "$work/$v/pg"
	chown -R "$KV_USER" "$work/$v"
	kv_user_kafka "$work/$v"
	tools_of[$v]=$KV_USER_KAFKA
	libs_of[$v]=$KV_USER_KAFKA_LIBS
	brokers_of[$v]=$(kv_kafka_start "$work/$v/kafka" 1)
	port_of[$v]=$(kv_pg_start "$work/$v/pg" "${brokers_of[$v]}" "kvstore.shared_memory = '1GB'
kvstore.max_topics = 16
shared_buffers = '128MB'")
done

# use VERSION: the servers of VERSION are those the functions reach
use() {
	kv_kafka_select "$1"
	KV_USER_KAFKA=${tools_of[$1]}
	KV_USER_KAFKA_LIBS=${libs_of[$1]}
	kafkadir=$work/$1/kafka
	pgdir=$work/$1/pg
	brokers=${brokers_of[$1]}
	port=${port_of[$1]}
}

for v in "${versions[@]}"; do
	use "$v"
	kv_log "Kafka $v at $brokers: warming up, loading $restore_n records"
	sql "CREATE EXTENSION kvstore"
	for t in bench batch batch1000; do
		sql "SELECT kv_put('$t', 'warm', 'up')" >/dev/null
	done
	for t in raw-rt raw-txn raw-txn1000; do
		kafka_topic "$t"
	done
	warm_up
	load_restore "$restore_n"
done

# ---- scenarios: each adds its rows for the version in use ($1) and
# repetition ($2)

scenario_txn() {
	local n lat
	for n in 100 1000; do
		lat=$(txn_latencies $n "raw-txn$([ $n = 100 ] || echo 1000)")
		row "txn${n}_ms" "$1" "$2" "$(median <<<"$lat")" ms
		row "txn${n}_rate" "$1" "$2" "$(rate_of $n <<<"$lat")" records/s
	done
}

scenario_batch() {
	local n
	for n in 100 1000; do
		row "batch${n}_rate" "$1" "$2" "$(pgb_rate $n 1 "$work/batch$n.sql")" records/s
	done
}

scenario_put() {
	local put rt
	put=$(put_latencies | median)
	rt=$(kv_as_user "$work/bin/roundtrip" "$brokers" raw-rt 2000 | median)
	row put_ms "$1" "$2" "$put" ms
	row roundtrip_ms "$1" "$2" "$rt" ms
	row put_per_roundtrip "$1" "$2" "$(awk -v a="$put" -v b="$rt" 'BEGIN {printf "%.3f", a / b}')" ratio
}

scenario_restore() {
	local topic=restore-$restore_n
	restore "$topic" >/dev/null || { kv_log "restore of $topic failed"; return 0; }
	row restore_s "$1" "$2" \
		"$(sql "SELECT extract(epoch FROM bootstrap_duration) FROM kv_topics WHERE topic = '$topic'")" s
	# a restart detaches every topic: attach those the other scenarios use
	for t in bench batch batch1000; do
		sql "SELECT kv_get('$t', 'warm')" >/dev/null
	done
}

loads=""
for r in $(seq 1 "$reps"); do
	order=("${versions[@]}")
	[ $((r % 2)) = 1 ] || order=("${versions[1]}" "${versions[0]}")
	for s in scenario_txn scenario_batch scenario_put scenario_restore; do
		for v in "${order[@]}"; do
			use "$v"
			"$s" "$v" "$r"
		done
	done
	loads="${loads:+$loads; }$(cut -d' ' -f1 /proc/loadavg)"
done

# ---- the report
{
	echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo "command: KV_BENCH_SECONDS=$seconds KV_BENCH_RESTORE=$restore_n KV_BENCH_KAFKA=\"${versions[*]}\" bench/brokers.sh $reps"
	echo "commit: $(git -C "$KV_ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
	environment_lines
	echo "load average (1 minute) after each repetition: $loads"
	echo "kafka: ${versions[0]} and ${versions[1]}, one KRaft node each on loopback, both running throughout"
	echo "settings: kvstore.shared_memory = 1GB, fsync = off, shared_buffers = 128MB; producers idempotent with acks=all; consumers read_committed"
	echo "data: keys key-%08d, values value-%08d; ${seconds}s per kv_put_many run; $reps repetitions, the order of the versions alternating"
} > "$out/environment.txt"

kv_bench_medians "$csv" > "$out/medians.txt"
# cell VALUE DECIMALS: VALUE with DECIMALS decimals and thousands separated
cell() { awk -v x="$1" -v d="$2" 'BEGIN {
	s = sprintf("%." d "f", x); i = index(s, "."); w = i ? substr(s, 1, i - 1) : s; f = i ? substr(s, i) : ""
	while (w ~ /[0-9][0-9][0-9][0-9]$/) { f = "," substr(w, length(w) - 2) f; w = substr(w, 1, length(w) - 3) }
	print w f }'; }
# key|what is measured|decimals
scenarios="txn100_ms|raw librdkafka transaction of 100 records, committed and consumed (ms, median)|2
txn1000_ms|raw librdkafka transaction of 1,000 records (ms, median)|2
txn100_rate|the same transactions of 100 (records/s)|0
txn1000_rate|the same transactions of 1,000 (records/s)|0
batch100_rate|\`kv_put_many\` of 100, one session (records/s)|0
batch1000_rate|\`kv_put_many\` of 1,000, one session (records/s)|0
put_ms|\`kv_put\`, one at a time (ms, median of 2,000)|2
roundtrip_ms|raw librdkafka produce-then-consume round trip (ms, median of 2,000)|2
put_per_roundtrip|\`kv_put\` median ÷ raw round trip median|2
restore_s|restart and replay of $(cell "$restore_n" 0) records (s)|2"
old=${versions[0]}
new=${versions[1]}
# ranges apart: the lowest of one version above the highest of the other
apart=()
together=()
{
	echo "# kvstore on Kafka $old and Kafka $new, $(sed -n 's/^date: //p' "$out/environment.txt")"
	echo
	echo "Reproduce with \`$(sed -n 's/^command: //p' "$out/environment.txt")\` as root from a checkout."
	echo
	echo "Medians over $reps repetitions, the lowest and highest in brackets; ratio: Kafka $new's"
	echo "median over Kafka $old's (below 1: fewer ms, or fewer records/s, on $new)."
	echo
	echo "| scenario | Kafka $old | Kafka $new | ratio |"
	echo "|---|---|---|---|"
	while IFS='|' read -r key text dec; do
		read -r _ _ om olo ohi _ <<< "$(awk -v s="$key" -v y="$old" '$1 == s && $2 == y' "$out/medians.txt")"
		read -r _ _ nm nlo nhi _ <<< "$(awk -v s="$key" -v y="$new" '$1 == s && $2 == y' "$out/medians.txt")"
		[ -n "${om:-}" ] && [ -n "${nm:-}" ] || continue
		echo "| $text | $(cell "$om" "$dec") ($(cell "$olo" "$dec")–$(cell "$ohi" "$dec")) |" \
			"$(cell "$nm" "$dec") ($(cell "$nlo" "$dec")–$(cell "$nhi" "$dec")) |" \
			"$(awk -v a="$nm" -v b="$om" 'BEGIN {printf "%.2f", a / b}') |"
		if awk -v a="$olo" -v b="$ohi" -v c="$nlo" -v d="$nhi" 'BEGIN {exit !(c > b || a > d)}'; then
			apart+=("$key")
		else
			together+=("$key")
		fi
	done <<< "$scenarios"
	if [ "$reps" -ge 3 ]; then
		echo
		echo "The ranges of the two versions do not overlap (they differ by more than the noise of"
		echo "this run): ${apart[*]:-none}. They overlap: ${together[*]:-none}."
	fi
	echo
	echo "## Machine, versions, settings"
	echo
	sed 's/^/- /' "$out/environment.txt"
} > "$out/report.md"
kv_log "report: $out/report.md"
cat "$out/report.md"
