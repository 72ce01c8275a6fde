#!/usr/bin/env bash
#
# soak.sh: a long mixed load against a broker restarted every two minutes
# (test/soak/soak.pl), not part of the default suite.
#
#   test/soak.sh [MINUTES]      default 10
#
# Sets up like check.sh (packages, build, Kafka's jars, a throwaway
# folder), then runs the soak, which starts its own broker and server.
# Reports the writes acknowledged, failed (by SQLSTATE) and lost, the
# reads, and shared and backend memory before and after; ends with
# "N passed, N failed".  Run as root; set KV_PREFIX as for check.sh.
#
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[ "$(id -u)" = 0 ] || { kv_log "run as root (it installs packages)"; exit 1; }
minutes=${1:-10}

work=""
trap '[ -z "$work" ] || kv_remove_workdir "$work"' EXIT
trap 'exit 130' INT TERM

kv_timed packages kv_install_packages
kv_ensure_user
kv_timed build kv_build
kv_timed "kafka fetch" kv_fetch_kafka

work=$(kv_make_workdir soak)
mkdir -p "$work/tap"
kv_user_kafka "$work"
chown "$KV_USER" "$work/tap"

set +e
(cd "$work/tap" && kv_as_user env \
	PATH="$KV_PGBIN:$PATH" \
	TESTDIR="$work/tap" \
	PG_REGRESS="$KV_PGXS/src/test/regress/pg_regress" \
	KVSTORE_BROKERS=unused \
	KVSTORE_KAFKA_SH="$work/src/test/kafka/kafka.sh" \
	KAFKA_LIBS="$KV_USER_KAFKA_LIBS" \
	SOAK_MINUTES="$minutes" \
	prove -v -I "$KV_PERL" -I "$work/src/test/perl" \
	"$work/src/test/soak/soak.pl") > "$work/soak.out" 2>&1 &
wait $!
rc=$?
set -e
cat "$work/soak.out"
total=$(grep -oE 'Tests=[0-9]+' "$work/soak.out" | tail -n 1 | cut -d= -f2 || true)
bad=$(grep -cE '^not ok' "$work/soak.out" || true)
total=${total:-0}
if [ "$rc" -ne 0 ] && [ "$bad" -eq 0 ]; then bad=1; fi
echo "$((total - bad)) passed, $bad failed"
[ "$rc" -eq 0 ]
