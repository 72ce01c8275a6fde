#!/usr/bin/env bash
#
# check.sh: run the whole kvstore test suite on this machine, from nothing.
#
# Installs what is missing, builds and installs the extension, fetches
# Kafka, starts a throwaway single-node Kafka and a throwaway PostgreSQL
# with kvstore, then runs the three layers:
#
#   1. pg_regress (sql/ against expected/), through PGXS installcheck
#   2. pgTAP files (test/pgtap/) with pg_prove
#   3. Perl TAP tests (test/t/) with PostgreSQL::Test::Cluster, which
#      start their own servers and, for fault tests, a 3-node Kafka
#   4. client programs (test/clients/) driving the functions through
#      node-postgres, pgx, psycopg 3, asyncpg and pgJDBC, against the
#      server of 2
#
# and, first, the unit test of the index structures (test/unit/), under
# valgrind.
#
# Everything is stopped and removed at the end, also on failure or ^C.
# The layers run in the background while the script waits, so that a
# signal stops the run at once.
# Ends with one line "N passed, N failed"; exits non-zero on any failure.
# Run as root: sudo test/check.sh
#
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[ "$(id -u)" = 0 ] || { kv_log "run as root (it installs packages)"; exit 1; }

work=""
counted=""
cleanup() {
	local rc=$?
	[ -z "$work" ] || kv_remove_workdir "$work"
	# A run that stops before its summary still ends with the count line
	if [ -z "$counted" ] && [ "$rc" -ne 0 ]; then
		echo "the run stopped before its tests finished (exit $rc)"
		echo "${passed:-0} passed, $((${failed:-0} + 1)) failed"
	fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

kv_timed packages kv_install_packages
kv_ensure_user
kv_timed build kv_build
kv_timed "kafka fetch" kv_fetch_kafka
kv_timed "clients fetch" kv_fetch_clients

work=$(kv_make_workdir check)
mkdir -p "$work/pg" "$work/regress" "$work/tap"
kv_user_kafka "$work"
chown "$KV_USER" "$work/pg" "$work/regress" "$work/tap"

brokers=$(kv_timed "kafka start" kv_kafka_start "$work/kafka" 1)
# Room for the topics of pg_regress and pgTAP together, and for the
# million-row foreign table of the pgTAP layer
port=$(kv_timed "postgres start" kv_pg_start "$work/pg" "$brokers" "kvstore.max_topics = 24
kvstore.shared_memory = '256MB'")
kv_log "Kafka at $brokers, PostgreSQL on port $port"

passed=0
failed=0
summary=""

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
	summary+="$name: $(grep -oE 'Files=[0-9]+, Tests=[0-9]+' "$out" || echo 'no summary'), result $([ "$rc" -eq 0 ] && echo PASS || echo FAIL)"$'\n'
}

# 0. unit test of the index, under valgrind
start=$SECONDS
set +e
(make -s -C "$work/src/test/unit" test_index >/dev/null &&
	cd "$work/src/test/unit" &&
	prove --exec 'valgrind -q --error-exitcode=1 --leak-check=full' ./test_index) \
	> "$work/unit.out" 2>&1 &
wait $!
rc=$?
set -e
tap_layer "unit (valgrind)" "$work/unit.out" $rc
printf 'timing: %-16s %3ds\n' "unit" $((SECONDS - start)) >&2

# 1. pg_regress
start=$SECONDS
set +e
kv_as_user make -C "$work/src" -s installcheck PG_CONFIG="$KV_PGBIN/pg_config" \
	EXTRA_REGRESS_OPTS="--host=$work/pg --port=$port --user=postgres --outputdir=$work/regress" \
	> "$work/regress.out" 2>&1 &
wait $!
rc=$?
set -e
cat "$work/regress.out"
[ $rc -eq 0 ] || cat "$work/regress/regression.diffs" 2>/dev/null || true
ok=$(grep -cE '^(ok|test) .*\.\.\. ok' "$work/regress.out" || true)
bad=$(grep -cE '\.\.\. FAILED' "$work/regress.out" || true)
if [ $rc -ne 0 ] && [ "$bad" -eq 0 ]; then bad=1; fi
passed=$((passed + ok))
failed=$((failed + bad))
summary+="pg_regress: $ok passed, $bad failed"$'\n'
printf 'timing: %-16s %3ds\n' "pg_regress" $((SECONDS - start)) >&2

# 2. pgTAP
start=$SECONDS
psql_cmd=(psql -X -q -h "$work/pg" -p "$port" -U postgres)
kv_as_user "${psql_cmd[@]}" -c "CREATE DATABASE pgtap" postgres
kv_as_user "${psql_cmd[@]}" -c "CREATE EXTENSION pgtap; CREATE EXTENSION kvstore" pgtap
set +e
kv_as_user pg_prove -h "$work/pg" -p "$port" -U postgres -d pgtap \
	"$work"/src/test/pgtap/*.sql > "$work/pgtap.out" 2>&1 &
wait $!
rc=$?
set -e
tap_layer pgTAP "$work/pgtap.out" $rc
printf 'timing: %-16s %3ds\n' "pgTAP" $((SECONDS - start)) >&2

# 3. Perl TAP with PostgreSQL::Test::Cluster
start=$SECONDS
set +e
(cd "$work/tap" && kv_as_user env \
	PATH="$KV_PGBIN:$PATH" \
	TESTDIR="$work/tap" \
	PG_REGRESS="$KV_PGXS/src/test/regress/pg_regress" \
	KVSTORE_BROKERS="$brokers" \
	KVSTORE_KAFKA_DIR="$work/kafka" \
	KVSTORE_KAFKA_SH="$work/src/test/kafka/kafka.sh" \
	KAFKA_LIBS="$KV_USER_KAFKA_LIBS" \
	prove -I "$KV_PGXS/src/test/perl" -I "$work/src/test/perl" \
	"$work"/src/test/t/*.pl) > "$work/tap.out" 2>&1 &
wait $!
rc=$?
set -e
tap_layer TAP "$work/tap.out" $rc
if [ $rc -ne 0 ]; then
	for log in "$work"/tap/tmp_check/log/*; do
		[ -f "$log" ] && { echo "---- $log"; tail -n 30 "$log"; }
	done
fi
printf 'timing: %-16s %3ds\n' "TAP" $((SECONDS - start)) >&2

# 4. client drivers
start=$SECONDS
kv_as_user "${psql_cmd[@]}" -c "CREATE DATABASE clients" postgres
kv_as_user "${psql_cmd[@]}" -c "CREATE EXTENSION kvstore" clients
set +e
"$KV_ROOT/test/clients/clients.sh" run "$port" clients > "$work/clients.out" 2>&1 &
wait $!
rc=$?
set -e
tap_layer clients "$work/clients.out" $rc
printf 'timing: %-16s %3ds\n' "clients" $((SECONDS - start)) >&2

echo
printf '%s' "$summary"
echo "$passed passed, $failed failed"
counted=1
[ "$failed" -eq 0 ]
