#!/usr/bin/env bash
#
# check.sh: run the kvstore test suite on this machine, from nothing.
#
#   test/check.sh [--pg 15|16|17|18] [--kafka VERSION] [--layers L,L...]
#   test/check.sh --ci
#
# Installs what is missing, builds and installs the extension into the
# chosen PostgreSQL (default 15), fetches the chosen Apache Kafka (default
# KAFKA_VERSION, else the newest 4.x the bed knows, see test/kafka/kafka.sh),
# starts a throwaway single-node Kafka and a throwaway PostgreSQL with
# kvstore, then runs the layers (default all, in this order):
#
#   unit       the index structures (test/unit/), under valgrind
#   regress    pg_regress (sql/ against expected/), through PGXS installcheck
#   pgtap      pgTAP files (test/pgtap/) with pg_prove
#   isolation  isolationtester specs (specs/ against expected/), through
#              PGXS installcheck
#   tap        Perl TAP tests (test/t/) with PostgreSQL::Test::Cluster, which
#              start their own servers and, for fault tests, a 3-node Kafka
#   clients    client programs (test/clients/) driving the functions through
#              node-postgres, pgx, psycopg 3, asyncpg and pgJDBC
#
# --ci runs, in one go: every layer on PostgreSQL 15 with the default
# Kafka; regress, pgtap and isolation on PostgreSQL 16, 17 and 18; regress,
# pgtap, isolation and tap on PostgreSQL 15 with Kafka 3.9.1.
#
# KV_TAP_TESTS, globs of test names (default *), picks TAP tests:
# KV_TAP_TESTS='03[1-6]*' runs the fault scenarios of the load checker.
#
# Everything is stopped and removed at the end, also on failure or ^C.
# The layers run in the background while the script waits, so that a
# signal stops the run at once.
# Ends with one line "N passed, N failed"; exits non-zero on any failure.
# Run as root: sudo test/check.sh
#
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

all_layers=unit,regress,pgtap,isolation,tap,clients

usage() {
	sed -n '3,35p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

pg=15
kafka=$KV_KAFKA_VERSION
layers=$all_layers
ci=""
while [ $# -gt 0 ]; do
	case $1 in
		--pg) pg=${2:?}; shift 2 ;;
		--kafka) kafka=${2:?}; shift 2 ;;
		--layers) layers=${2:?}; shift 2 ;;
		--ci) ci=1; shift ;;
		*) usage ;;
	esac
done
for layer in ${layers//,/ }; do
	[[ ",$all_layers," == *",$layer,"* ]] || { kv_log "unknown layer $layer"; usage; }
done
[ "$pg" = 15 ] || [ -n "$(kv_pg_release "$pg")" ] || { kv_log "--pg takes 15, 16, 17 or 18"; exit 2; }

[ "$(id -u)" = 0 ] || { kv_log "run as root (it installs packages)"; exit 1; }

work=""
counted=""
passed=0
failed=0
summary=""
cleanup() {
	local rc=$?
	[ -z "$work" ] || kv_remove_workdir "$work"
	# A run that stops before its summary still ends with the count line
	if [ -z "$counted" ] && [ "$rc" -ne 0 ]; then
		echo "the run stopped before its tests finished (exit $rc)"
		echo "$passed passed, $((failed + 1)) failed"
	fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Count the results of a prove run: its total tests, minus the failed
# ones; a file that died without failing a test counts as one failure
count_tap() {
	local out=$1 rc=$2 total bad
	total=$(grep -oE 'Tests=[0-9]+' "$out" | tail -n 1 | cut -d= -f2 || true)
	bad=$( (grep -E '\(Wstat: [0-9]+.*Tests: [0-9]+ Failed: [0-9]+\)' "$out" || true) |
		sed -E 's/.*Failed: ([0-9]+)\).*/\1/' |
		awk '{s += ($1 > 0 ? $1 : 1)} END {print s + 0}')
	total=${total:-0}
	if [ "$rc" -ne 0 ] && [ "$bad" -eq 0 ]; then bad=1; fi
	passed=$((passed + total - bad))
	failed=$((failed + bad))
}

# tap_layer NAME OUTPUT RC: show a prove run, count it, add its summary
tap_layer() {
	local name=$1 out=$2 rc=$3
	cat "$out"
	count_tap "$out" "$rc"
	summary+="$run $name: $(grep -oE 'Files=[0-9]+, Tests=[0-9]+' "$out" || echo 'no summary'), result $([ "$rc" -eq 0 ] && echo PASS || echo FAIL)"$'\n'
}

# regress_layer NAME OUTPUT RC DIFFS: show a pg_regress run, count it, add
# its summary
regress_layer() {
	local name=$1 out=$2 rc=$3 diffs=$4 ok bad
	cat "$out"
	[ "$rc" -eq 0 ] || cat "$diffs" 2>/dev/null || true
	ok=$(grep -cE '^(ok|test) .*\.\.\. ok|^ok [0-9]+ ' "$out" || true)
	bad=$(grep -cE '\.\.\. FAILED|^not ok [0-9]+ ' "$out" || true)
	if [ "$rc" -ne 0 ] && [ "$bad" -eq 0 ]; then bad=1; fi
	passed=$((passed + ok))
	failed=$((failed + bad))
	summary+="$run $name: $ok passed, $bad failed"$'\n'
}

# in_background COMMAND...: run it in the background and wait, so that a
# signal stops the run at once; returns its status
in_background() {
	local rc=0
	"$@" &
	wait $! || rc=$?
	return $rc
}

# The layers.  Each runs in $work against the servers of the run ($port,
# $brokers) and adds to the counts and the summary.

# The unit test runs under valgrind with the options of test/unit/Makefile
layer_unit() {
	local rc=0
	(make -s -C "$work/src/test/unit" PG_CONFIG="$KV_PGBIN/pg_config" test_index >/dev/null &&
		cd "$work/src/test/unit" &&
		prove --exec "valgrind $(make -s --no-print-directory valgrind-flags)" ./test_index) \
		> "$work/unit.out" 2>&1 &
	wait $! || rc=$?
	tap_layer "unit (valgrind)" "$work/unit.out" $rc
}

# installcheck KIND OUTPUT VARIABLE=VALUE...: PGXS installcheck against the
# run's server, one kind of test at a time
installcheck() {
	local kind=$1 out=$2
	shift 2
	mkdir -p "$work/$kind"
	chown "$KV_USER" "$work/$kind"
	kv_as_user make -C "$work/src" -s installcheck PG_CONFIG="$KV_PGBIN/pg_config" "$@" \
		EXTRA_REGRESS_OPTS="--host=$work/pg --port=$port --user=postgres --outputdir=$work/$kind" \
		> "$out" 2>&1
}

layer_regress() {
	local rc=0
	in_background installcheck regress "$work/regress.out" ISOLATION= || rc=$?
	regress_layer pg_regress "$work/regress.out" $rc "$work/regress/regression.diffs"
}

layer_isolation() {
	local rc=0
	in_background installcheck isolation "$work/isolation.out" REGRESS= || rc=$?
	regress_layer isolation "$work/isolation.out" $rc "$work/isolation/regression.diffs"
}

layer_pgtap() {
	local rc=0 psql_cmd=("$KV_PGBIN/psql" -X -q -h "$work/pg" -p "$port" -U postgres)
	kv_as_user "${psql_cmd[@]}" -c "CREATE DATABASE pgtap" postgres
	kv_as_user "${psql_cmd[@]}" -c "CREATE EXTENSION pgtap; CREATE EXTENSION kvstore" pgtap
	kv_as_user env PATH="$KV_PGBIN:$PATH" pg_prove -h "$work/pg" -p "$port" -U postgres -d pgtap \
		"$work"/src/test/pgtap/*.sql > "$work/pgtap.out" 2>&1 &
	wait $! || rc=$?
	tap_layer pgTAP "$work/pgtap.out" $rc
}

layer_tap() {
	local rc=0 log pattern patterns tests=()
	# Split the patterns without expanding them here (the working
	# directory is /); each expands among the TAP tests
	read -ra patterns <<< "${KV_TAP_TESTS:-*}"
	for pattern in "${patterns[@]}"; do
		tests+=("$work"/src/test/t/$pattern.pl)
	done
	mkdir -p "$work/tap"
	chown "$KV_USER" "$work/tap"
	(cd "$work/tap" && kv_as_user env \
		PATH="$KV_PGBIN:$PATH" \
		TESTDIR="$work/tap" \
		PG_REGRESS="$KV_PGXS/src/test/regress/pg_regress" \
		KVSTORE_BROKERS="$brokers" \
		KVSTORE_KAFKA_DIR="$work/kafka" \
		KVSTORE_KAFKA_SH="$work/src/test/kafka/kafka.sh" \
		KAFKA_LIBS="$KV_USER_KAFKA_LIBS" \
		prove -I "$KV_PERL" -I "$work/src/test/perl" \
		"${tests[@]}") > "$work/tap.out" 2>&1 &
	wait $! || rc=$?
	tap_layer TAP "$work/tap.out" $rc
	if [ $rc -ne 0 ]; then
		for log in "$work"/tap/tmp_check/log/*; do
			[ -f "$log" ] && { echo "---- $log"; tail -n 30 "$log"; }
		done
	fi
}

layer_clients() {
	local rc=0 psql_cmd=("$KV_PGBIN/psql" -X -q -h "$work/pg" -p "$port" -U postgres)
	# The layers before hold topic slots of the server until it restarts:
	# free them for the topics of the client programs
	kv_as_user "$KV_PGBIN/pg_ctl" -D "$work/pg/data" -l "$work/pg/postgresql.log" -m fast -w \
		restart >/dev/null
	kv_as_user "${psql_cmd[@]}" -c "CREATE DATABASE clients" postgres
	kv_as_user "${psql_cmd[@]}" -c "CREATE EXTENSION kvstore" clients
	"$KV_ROOT/test/clients/clients.sh" run "$port" clients > "$work/clients.out" 2>&1 &
	wait $! || rc=$?
	tap_layer clients "$work/clients.out" $rc
}

# run_suite PG KAFKA LAYERS: build for PostgreSQL PG, start Kafka KAFKA
# and a server as the layers need them, run the layers, stop everything
run_suite() {
	local layers=$3 layer start
	kv_pg_select "$1"
	kv_kafka_select "$2"
	run="[pg $KV_PG, kafka $KV_KAFKA_VERSION]"
	kv_log "$run layers $layers"
	kv_timed "build pg $KV_PG" kv_build
	kv_timed "kafka fetch" kv_fetch_kafka
	if [[ ",$layers," == *,clients,* ]]; then
		kv_timed "clients fetch" kv_fetch_clients
	fi

	work=$(kv_make_workdir check)
	mkdir -p "$work/pg"
	kv_user_kafka "$work"
	kv_user_pg "$work"
	chown "$KV_USER" "$work/pg"
	brokers="" port=""
	if [ "$layers" != unit ]; then
		brokers=$(kv_timed "kafka start" kv_kafka_start "$work/kafka" 1)
		kv_log "Kafka $KV_KAFKA_VERSION at $brokers"
	fi
	if [[ ",$layers," =~ ,(regress|pgtap|isolation|clients), ]]; then
		# Room for the topics of every layer on this server (each takes a
		# slot and a worker), and for the million-row foreign table of the
		# pgTAP layer
		port=$(kv_timed "postgres start" kv_pg_start "$work/pg" "$brokers" "kvstore.max_topics = 64
kvstore.shared_memory = '256MB'")
		kv_log "PostgreSQL $KV_PG on port $port"
	fi

	for layer in ${layers//,/ }; do
		start=$SECONDS
		"layer_$layer"
		printf 'timing: %-16s %3ds\n' "$layer" $((SECONDS - start)) >&2
	done
	kv_remove_workdir "$work"
	work=""
}

kv_timed packages kv_install_packages
kv_ensure_user

if [ -n "$ci" ]; then
	run_suite 15 "$kafka" "$all_layers"
	for pg in 16 17 18; do
		run_suite $pg "$kafka" regress,pgtap,isolation
	done
	run_suite 15 3.9.1 regress,pgtap,isolation,tap
else
	run_suite "$pg" "$kafka" "$layers"
fi

echo
printf '%s' "$summary"
echo "$passed passed, $failed failed"
counted=1
[ "$failed" -eq 0 ]
