# lib.sh: shared steps of bench/report.sh and bench/brokers.sh (sourced,
# bash, after test/lib.sh; bench/write-report.sh uses kv_bench_medians
# alone).
#
# The functions that reach a server read four variables the caller sets:
# pgdir (the PostgreSQL server's folder: its socket and data), port,
# brokers (its Kafka's bootstrap servers) and kafkadir (that Kafka's
# folder).  work is the run's folder, seconds the length of a throughput
# run, csv the file rows go to.

# kv_bench_prepare NAME: as root, note the load average (into load_start),
# install what is missing, build and install kvstore, make the run's folder
# (into work) and build the raw librdkafka baselines into $work/bin
kv_bench_prepare() {
	[ "$(id -u)" = 0 ] || { kv_log "run as root (it installs packages)"; return 1; }
	load_start=$(cut -d' ' -f1-3 /proc/loadavg)
	kv_install_packages
	kv_ensure_user
	kv_build
	work=$(kv_make_workdir "$1")
	mkdir -p "$work/bin"
	gcc -O2 -Wall -o "$work/bin/roundtrip" "$KV_ROOT/bench/roundtrip.c" -lrdkafka
	gcc -O2 -Wall -o "$work/bin/txn" "$KV_ROOT/bench/txn.c" -lrdkafka
	gcc -O2 -Wall -o "$work/bin/batch" "$KV_ROOT/bench/batch.c" \
		-I"$(pg_config --includedir)" -lpq
	gcc -O2 -Wall -o "$work/bin/reader" "$KV_ROOT/bench/reader.c" \
		-I"$(pg_config --includedir)" -lpq
	chmod -R a+rX "$work/bin"
}

sql() { kv_as_user psql -X -qAt -h "$pgdir" -p "$port" -U postgres -c "$1" postgres; }
pgb() { kv_as_user pgbench -h "$pgdir" -p "$port" -U postgres -n "$@" postgres 2>&1; }
tps() { grep -oE 'tps = [0-9.]+' | head -n 1 | cut -d' ' -f3; }
# pgb_rate SIZE CLIENTS SCRIPT: records/s of SIZE records a call, from
# pgbench's log of each call, each client's first call left out (it
# creates the backend's Kafka producer: the first-call scenario measures
# that); the clients' rates add up
pgb_rate() {
	local size=$1 clients=$2 script=$3
	rm -f "$work"/ratelog*
	(cd "$work" && kv_as_user pgbench -h "$pgdir" -p "$port" -U postgres -n -M prepared \
		-f "$script" -T "$seconds" -c "$clients" -j $((clients < 2 ? 1 : 2)) -l \
		--log-prefix="$work/ratelog" postgres >/dev/null 2>&1)
	cat "$work"/ratelog.* | awk -v n="$size" '
		{ if (seen[$1]++) { s[$1] += $3; c[$1]++ } }
		END { for (k in s) r += c[k] * n / (s[k] / 1e6); printf "%.0f", r }'
}
# put_latencies: the µs of 2000 sequential kv_put calls, one a line
put_latencies() {
	rm -f "$work"/putlog*
	(cd "$work" && kv_as_user pgbench -h "$pgdir" -p "$port" -U postgres -n -M prepared \
		-f "$work/put.sql" -t 2000 -c 1 -l --log-prefix="$work/putlog" postgres >/dev/null 2>&1)
	cat "$work"/putlog.* | awk '{print $3}'
}
# txn_latencies SIZE TOPIC [OPTION...]: the µs of each raw transaction of
# SIZE records (400 of 100, 100 of 1,000), bench/txn.c given OPTIONs
txn_latencies() {
	kv_as_user "$work/bin/txn" "${@:3}" "$brokers" "$2" "$1" $(($1 == 100 ? 400 : 100))
}
# kafka_topic NAME: a compacted topic of one partition, as kvstore creates
kafka_topic() {
	kv_as_user env KAFKA_LIBS="$KV_USER_KAFKA_LIBS" "$KV_USER_KAFKA" topics "$kafkadir" \
		--create --topic "$1" --partitions 1 --config cleanup.policy=compact >/dev/null
}
# median and p99 of numbers (µs) on stdin, in ms
median() { sort -n | awk '{a[NR] = $1} END {printf "%.3f", a[int((NR + 1) / 2)] / 1000}'; }
p99() { sort -n | awk '{a[NR] = $1} END {i = int(NR * 0.99); if (i < 1) i = 1; printf "%.3f", a[i] / 1000}'; }
maximum() { sort -n | awk 'END {printf "%.3f", $1 / 1000}'; }
# records/s of a run of transactions of SIZE records from their µs on stdin
rate_of() { awk -v n="$1" '{s += $1; c++} END {printf "%.0f", c * n / (s / 1e6)}'; }

row() { echo "$1,$2,$3,$4,$5" >> "$csv"; kv_log "$1 / $2 / $3: $4 $5"; }

# write_scripts: the pgbench scripts of single writes (put.sql, topic
# bench) and of batches of 100 and 1,000 (batch100.sql, batch1000.sql,
# topics batch and batch1000)
write_scripts() {
	local n
	cat > "$work/put.sql" <<'SQL'
\set k random(1, 100000)
SELECT kv_put('bench', 'key-' || lpad(:k::text, 8, '0'), 'value-' || lpad(:k::text, 8, '0'));
SQL
	for n in 100 1000; do
		cat > "$work/batch$n.sql" <<SQL
\\set k random(0, 999)
SELECT kv_put_many('$([ $n = 100 ] && echo batch || echo batch1000)', array(SELECT 'key-' || lpad((:k * $n + g)::text, 8, '0') FROM generate_series(0, $n - 1) g), array(SELECT 'value-' || lpad((:k * $n + g)::text, 8, '0') FROM generate_series(0, $n - 1) g));
SQL
	done
	chown "$KV_USER" "$work"/*.sql
}

# warm_up: a broker just started runs its first requests before its JIT
# compiler has caught up; every path is exercised for a while first (the
# first transaction also waits for the transaction coordinator to load).
# Needs the topics raw-txn and raw-rt.
warm_up() {
	kv_as_user "$work/bin/txn" "$brokers" raw-txn 100 500 >/dev/null
	kv_as_user "$work/bin/roundtrip" "$brokers" raw-rt 2000 >/dev/null
	pgb -M prepared -f "$work/batch100.sql" -T 10 -c 1 >/dev/null
	pgb -M prepared -f "$work/put.sql" -T 10 -c 4 >/dev/null
}

# load_restore N: a topic restore-N of N records, produced raw in batches of
# 10,000
load_restore() {
	kafka_topic "restore-$1"
	kv_as_user "$work/bin/txn" -p "$brokers" "restore-$1" 10000 $(($1 / 10000)) >/dev/null
}

# restore TOPIC: restart the server and read TOPIC, which replays it; prints
# the seconds until that first read returned
restore() {
	local start end
	kv_as_user "$KV_PGBIN/pg_ctl" -D "$pgdir/data" -w -m fast restart >/dev/null
	start=$(date +%s.%N)
	# the replay may outlast kvstore.write_timeout
	sql "SET kvstore.write_timeout = 0; SELECT kv_get('$1', 'key-00000000')" >/dev/null || return 1
	end=$(date +%s.%N)
	awk -v s="$start" -v e="$end" 'BEGIN {printf "%.3f", e - s}'
}

# environment_lines: the machine, its load average at the start and at the
# end, and the versions but Kafka's, as "name: value" lines
environment_lines() {
	echo "machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'))," \
		"$(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)," \
		"load average at start $load_start, at end $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "os: $(. /etc/os-release && echo "$PRETTY_NAME"), kernel $(uname -r)"
	echo "postgresql: $("$KV_PGBIN/postgres" --version | cut -d' ' -f3)"
	echo "librdkafka: $(dpkg-query -W -f='${Version}' librdkafka1)"
	echo "java: $(java -version 2>&1 | head -n 1)"
}

# kv_bench_medians CSV: of the rows scenario,system,repetition,value,unit,
# one line a scenario and system: scenario system median min max unit count
kv_bench_medians() {
	awk -F, 'NR > 1 && $4 != "" {
		k = $1 SUBSEP $2; n[k]++; v[k, n[k]] = $4; u[k] = $5
	} END {
		for (k in n) {
			m = n[k]
			for (i = 1; i <= m; i++) a[i] = v[k, i]
			for (i = 2; i <= m; i++) { x = a[i]; j = i - 1; while (j > 0 && a[j] + 0 > x + 0) { a[j + 1] = a[j]; j-- } a[j + 1] = x }
			med = (m % 2) ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
			split(k, p, SUBSEP)
			print p[1], p[2], med, a[1], a[m], u[k], m
		}
	}' "$1" | sort
}
