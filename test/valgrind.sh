#!/usr/bin/env bash
#
# valgrind.sh: run test/check.sh with every server process under valgrind
# (memcheck), to find memory errors in kvstore and in its use of
# librdkafka.  Slow: pick layers and TAP tests, for example
#
#   KV_TAP_TESTS='001* 005* 021* 031*' test/valgrind.sh --layers regress,tap
#
# The servers come from a private copy of PostgreSQL (KV_PREFIX, default a
# folder under TMPDIR) whose postgres is replaced by a wrapper that runs
# the real binary under valgrind; backends and workers are forked, so
# valgrind follows them, each logging to a file of its own.  PostgreSQL
# is not built for valgrind here, so errors inside palloc'd memory go
# unseen and PostgreSQL's own code reports some false positives: the
# summary counts the error reports whose stack passes through kvstore or
# librdkafka apart from the others, and any of the former fails the run.
# Run as root, like check.sh; the options are check.sh's.
#
set -euo pipefail
export KV_PREFIX=${KV_PREFIX:-${TMPDIR:-/tmp}/kvstore-valgrind}
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[ "$(id -u)" = 0 ] || { kv_log "run as root (it installs packages)"; exit 1; }

kv_install_packages
kv_ensure_user
kv_private_install

reports=$(mktemp -d "${TMPDIR:-/tmp}/kvstore-valgrind-reports.XXXXXX")
chown "$KV_USER" "$reports"

if [ ! -e "$KV_PGBIN/postgres.real" ]; then
	mv "$KV_PGBIN/postgres" "$KV_PGBIN/postgres.real"
fi
cat > "$KV_PGBIN/postgres" <<WRAPPER
#!/bin/sh
exec valgrind --quiet --leak-check=no --track-origins=no --num-callers=30 \\
	--error-limit=no --log-file="$reports/vg.%p" "$KV_PGBIN/postgres.real" "\$@"
WRAPPER
chmod 755 "$KV_PGBIN/postgres"

set +e
"$KV_ROOT/test/check.sh" "$@"
rc=$?
set -e

# Each error report is a block starting "==PID== <kind>" and ending at a
# blank "==PID== " line; split them and tell kvstore's from the others
ours=0
others=0
for f in "$reports"/vg.*; do
	[ -s "$f" ] || continue
	counts=$(awk '
		/^==[0-9]+== [A-Z].*/ && !inblock { inblock = 1; block = "" }
		inblock { block = block $0 "\n" }
		/^==[0-9]+== *$/ && inblock {
			inblock = 0
			if (block ~ /kvstore\.so|librdkafka/) { ours++; printf "%s", block > "/dev/stderr" }
			else others++
		}
		END { print ours + 0, others + 0 }' "$f" 2> "$f.kvstore")
	ours=$((ours + ${counts% *}))
	others=$((others + ${counts#* }))
done
kv_log "valgrind: $ours error reports through kvstore or librdkafka, $others elsewhere in the server; logs in $reports"
for f in "$reports"/*.kvstore; do
	[ -s "$f" ] && { echo "---- $f"; cat "$f"; }
done
[ "$ours" -eq 0 ] || rc=1
exit $rc
