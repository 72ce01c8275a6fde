#!/usr/bin/env bash
#
# demo.sh: a working local Kafka and PostgreSQL with kvstore, from nothing.
#
#   sudo test/demo.sh          install, build, start both, show kvstore at work
#   sudo test/demo.sh stop     stop both and remove their data
#
# Both servers keep running after the demonstration; the last lines say how
# to connect.  Data lives in $KVSTORE_DEMO_DIR (default /tmp/kvstore-demo).
#
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

demo=${KVSTORE_DEMO_DIR:-/tmp/kvstore-demo}

[ "$(id -u)" = 0 ] || { kv_log "run as root (it installs packages)"; exit 1; }

if [ "${1:-}" = stop ]; then
	kv_pg_stop "$demo/pg"
	kv_kafka_stop "$demo/kafka"
	rm -rf "$demo"
	kv_log "stopped; $demo removed"
	exit 0
fi

if [ -f "$demo/pg/data/postmaster.pid" ]; then
	kv_log "a demo already runs in $demo: stop it first with $0 stop"
	exit 1
fi

kv_timed packages kv_install_packages
kv_ensure_user
kv_timed build kv_build
kv_timed "kafka fetch" kv_fetch_kafka

rm -rf "$demo"
mkdir -p "$demo/pg"
kv_user_kafka "$demo"
chown -R "$KV_USER" "$demo"
brokers=$(kv_timed "kafka start" kv_kafka_start "$demo/kafka" 1)
port=$(kv_timed "postgres start" kv_pg_start "$demo/pg" "$brokers")

psql_line="psql -h 127.0.0.1 -p $port -U postgres"
kv_as_user psql -X -h "$demo/pg" -p "$port" -U postgres -e postgres <<'SQL'
CREATE EXTENSION kvstore;
SELECT kv_create_topic('demo');
SELECT kv_put('demo', 'user:1', 'alice');
SELECT kv_put('demo', 'user:2', 'bob');
SELECT kv_put_many('demo', ARRAY['user:10', 'cart:1'], ARRAY['carol', '3 apples']);
SELECT kv_get('demo', 'user:1');
SELECT * FROM kv_scan('demo', 'user:');
SELECT kv_delete('demo', 'user:2');
SELECT kv_exists('demo', 'user:2');
CREATE SERVER kafka FOREIGN DATA WRAPPER kvstore;
CREATE FOREIGN TABLE demo (key text COLLATE "C", value text) SERVER kafka;
INSERT INTO demo VALUES ('user:3', 'dave');
SELECT * FROM demo WHERE key LIKE 'user:%' ORDER BY key;
EXPLAIN (COSTS OFF) SELECT * FROM demo WHERE key = 'user:3';
SELECT topic, state, applied_offset, keys, bytes FROM kv_topics;
SQL

cat <<MSG

Kafka (KRaft, one node) runs at $brokers; PostgreSQL 15 with kvstore at 127.0.0.1:$port.
Connect:  $psql_line
Stop:     sudo ${KVSTORE_DEMO_DIR:+KVSTORE_DEMO_DIR=$demo }$0 stop
MSG
