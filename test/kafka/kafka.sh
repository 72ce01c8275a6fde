#!/usr/bin/env bash
#
# kafka.sh: fetch Apache Kafka from Maven Central and run throwaway KRaft
# brokers on 127.0.0.1, each node a combined broker and controller.
#
#   kafka.sh fetch                 jars into .kafka/VERSION/libs (skipped when there)
#   kafka.sh version               the Kafka version in use (of the jars in
#                                  KAFKA_LIBS, when set)
#   kafka.sh start DIR [NODES]     start NODES (1 or 3) nodes, data in DIR;
#                                  prints the bootstrap servers
#   kafka.sh stop DIR              stop every node of DIR
#   kafka.sh stop-node DIR N       stop node N (1-based) cleanly
#   kafka.sh kill-node DIR N       kill node N (SIGKILL)
#   kafka.sh start-node DIR N      start node N again and wait for it
#   kafka.sh bootstrap DIR         print the bootstrap servers
#   kafka.sh sasl-bootstrap DIR    print the bootstrap servers of the
#                                  SASL_PLAINTEXT listeners
#   kafka.sh topics DIR ARGS...    run kafka-topics (TopicCommand) on DIR
#
# KAFKA_VERSION picks the version (default 4.4.0; 3.x and 4.x, each line
# with its own pom-3.xml or pom-4.xml, as they log differently); versions
# are cached side by side.  KAFKA_LIBS overrides the jar folder: the
# version is then that of the jars in it.  Ports are chosen free at start.
# KAFKA_SASL_USERS ("user=password,user=password") at start gives every
# node a second listener, SASL_PLAINTEXT with mechanism PLAIN for those
# users (no authorizer: any user may do anything).
#
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
version=${KAFKA_VERSION:-4.4.0}
libs=${KAFKA_LIBS:-$root/.kafka/$version/libs}
start_timeout=${KAFKA_START_TIMEOUT:-120}

die() { echo "kafka.sh: $*" >&2; exit 1; }

# A TCP port nobody listens on now
free_port() {
	perl -MIO::Socket::INET -e \
		'print IO::Socket::INET->new(Listen => 1, LocalAddr => "127.0.0.1", LocalPort => 0, ReuseAddr => 1)->sockport'
}

fetch() {
	local line=${version%%.*}
	if [ -n "$(ls "$libs"/kafka_2.13-*.jar 2>/dev/null)" ]; then
		return 0
	fi
	[ -f "$here/pom-$line.xml" ] || die "no pom for Kafka $version (pom-$line.xml)"
	mkdir -p "$root/.kafka"
	mvn -B -q -Dstyle.color=never -f "$here/pom-$line.xml" -Dmaven.repo.local="$root/.kafka/m2" \
		-Dkafka.version="$version" \
		dependency:copy-dependencies -DincludeScope=runtime \
		-DoutputDirectory="$libs.partial" > "$root/.kafka/fetch-$version.log" 2>&1 ||
		{ cat "$root/.kafka/fetch-$version.log" >&2; die "could not fetch Kafka $version from Maven Central"; }
	rm -rf "$libs"
	mv "$libs.partial" "$libs"
}

# The version of the jars in $libs, from the broker jar's name
jars_version() {
	local jar
	jar=$(ls "$libs"/kafka_2.13-*.jar 2>/dev/null | head -n 1)
	[ -n "$jar" ] || die "no Kafka jars in $libs: run kafka.sh fetch"
	jar=${jar##*/kafka_2.13-}
	echo "${jar%.jar}"
}

# 3.x reads log4j.properties (reload4j), 4.x log4j2.properties (log4j 2)
jars_line() { local v; v=$(jars_version); echo "${v%%.*}"; }

# Run a Kafka class; replaces the calling shell, so call it in a subshell
java_cmd() {
	local dir=$1 logging
	shift
	if [ "$(jars_line)" -ge 4 ]; then
		logging=-Dlog4j2.configurationFile="$dir/log4j2.properties"
	else
		logging=-Dlog4j.configuration="file:$dir/log4j.properties"
	fi
	exec java -Xms256m -Xmx512m -XX:+UseG1GC -Djava.awt.headless=true "$logging" \
		-Dkafka.logs.dir="$dir" -cp "$libs/*" "$@"
}

# Write the configuration of node $2 of a cluster of $3 in $1
write_config() {
	local dir=$1 id=$2 nodes=$3 voters=$4 port=$5 cport=$6 sport=${7:-}
	local rf=1 isr=1 listeners advertised map users="" pair
	if [ "$nodes" -ge 3 ]; then rf=3; isr=2; fi
	listeners=PLAINTEXT://127.0.0.1:$port
	advertised=PLAINTEXT://127.0.0.1:$port
	map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
	if [ -n "$sport" ]; then
		listeners=$listeners,SASL_PLAINTEXT://127.0.0.1:$sport
		advertised=$advertised,SASL_PLAINTEXT://127.0.0.1:$sport
		map=$map,SASL_PLAINTEXT:SASL_PLAINTEXT
		for pair in ${KAFKA_SASL_USERS//,/ }; do
			users="$users user_${pair%%=*}=\"${pair#*=}\""
		done
	fi
	mkdir -p "$dir/data"
	cat > "$dir/server.properties" <<CONF
process.roles=broker,controller
node.id=$id
controller.quorum.voters=$voters
listeners=$listeners,CONTROLLER://127.0.0.1:$cport
advertised.listeners=$advertised
controller.listener.names=CONTROLLER
listener.security.protocol.map=$map
inter.broker.listener.name=PLAINTEXT
log.dirs=$dir/data
num.partitions=1
auto.create.topics.enable=false
offsets.topic.replication.factor=$rf
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$isr
transaction.state.log.num.partitions=1
default.replication.factor=$rf
min.insync.replicas=$isr
group.initial.rebalance.delay.ms=0
log.cleaner.backoff.ms=1000
CONF
	if [ -n "$sport" ]; then
		cat >> "$dir/server.properties" <<CONF
sasl.enabled.mechanisms=PLAIN
listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required$users;
CONF
	fi
	write_logging "$dir" INFO file
	echo "$port" > "$dir/port"
}

# write_logging DIR LEVEL file|stderr: the logging configuration of the
# jars' line in DIR, at LEVEL, to DIR/server.log or to stderr
write_logging() {
	local dir=$1 level=$2 to=$3
	if [ "$(jars_line)" -ge 4 ]; then
		{
			echo "rootLogger.level = $level"
			if [ "$to" = file ]; then
				echo 'appender.out.type = File'
				echo 'appender.out.fileName = ${sys:kafka.logs.dir}/server.log'
				echo 'appender.out.layout.pattern = [%d] %p %m (%c)%n'
			else
				echo 'appender.out.type = Console'
				echo 'appender.out.target = SYSTEM_ERR'
				echo 'appender.out.layout.pattern = %p %m%n'
			fi
			echo 'appender.out.name = out'
			echo 'appender.out.layout.type = PatternLayout'
			echo 'rootLogger.appenderRef.out.ref = out'
		} > "$dir/log4j2.properties"
	else
		{
			echo "log4j.rootLogger=$level, out"
			if [ "$to" = file ]; then
				echo 'log4j.appender.out=org.apache.log4j.FileAppender'
				echo 'log4j.appender.out.File=${kafka.logs.dir}/server.log'
				echo 'log4j.appender.out.layout.ConversionPattern=[%d] %p %m (%c)%n'
			else
				echo 'log4j.appender.out=org.apache.log4j.ConsoleAppender'
				echo 'log4j.appender.out.Target=System.err'
				echo 'log4j.appender.out.layout.ConversionPattern=%p %m%n'
			fi
			echo 'log4j.appender.out.layout=org.apache.log4j.PatternLayout'
		} > "$dir/log4j.properties"
	fi
}

start_node_process() {
	local node=$1
	[ -f "$node/pid" ] && kill -0 "$(cat "$node/pid")" 2>/dev/null && return 0
	(java_cmd "$node" kafka.Kafka "$node/server.properties") > "$node/stdout.log" 2>&1 &
	echo $! > "$node/pid"
}

# Wait until metadata from $1 has a line matching the pattern $2
wait_ready() {
	local bootstrap=$1 pattern=$2 logs=$3 deadline=$((SECONDS + start_timeout))
	while [ $SECONDS -lt $deadline ]; do
		if kcat -b "$bootstrap" -L -m 2 2>/dev/null | grep -qE "$pattern"; then
			return 0
		fi
		sleep 0.3
	done
	for log in $logs; do
		echo "---- $log" >&2
		tail -n 40 "$log" >&2 || true
	done
	die "brokers at $bootstrap did not come up within ${start_timeout}s"
}

bootstrap_of() { cat "$1/bootstrap"; }

node_logs() { ls "$1"/node*/server.log "$1"/node*/stdout.log 2>/dev/null | tr '\n' ' '; }

start() {
	local dir=$1 nodes=${2:-1} voters="" i
	[ "$nodes" = 1 ] || [ "$nodes" = 3 ] || die "NODES must be 1 or 3"
	[ -d "$libs" ] || die "no Kafka jars in $libs: run kafka.sh fetch"
	mkdir -p "$dir"
	# Command-line tools run in $dir log warnings only, to stderr
	write_logging "$dir" WARN stderr
	jars_version > "$dir/version"
	local ports=() cports=() sports=()
	for i in $(seq 1 "$nodes"); do
		ports+=("$(free_port)")
		cports+=("$(free_port)")
		sports+=("${KAFKA_SASL_USERS:+$(free_port)}")
		voters="${voters:+$voters,}$i@127.0.0.1:${cports[$((i - 1))]}"
	done
	local cluster_id
	cluster_id=$( (java_cmd "$dir" kafka.tools.StorageTool random-uuid) 2>/dev/null | tail -n 1)
	local bootstrap="" sasl_bootstrap=""
	for i in $(seq 1 "$nodes"); do
		local node="$dir/node$i"
		write_config "$node" "$i" "$nodes" "$voters" "${ports[$((i - 1))]}" "${cports[$((i - 1))]}" \
			"${sports[$((i - 1))]}"
		(java_cmd "$node" kafka.tools.StorageTool format -t "$cluster_id" \
			-c "$node/server.properties") > "$node/format.log" 2>&1 ||
			{ cat "$node/format.log" >&2; die "could not format node $i"; }
		bootstrap="${bootstrap:+$bootstrap,}127.0.0.1:${ports[$((i - 1))]}"
		if [ -n "${sports[$((i - 1))]}" ]; then
			sasl_bootstrap="${sasl_bootstrap:+$sasl_bootstrap,}127.0.0.1:${sports[$((i - 1))]}"
		fi
	done
	echo "$bootstrap" > "$dir/bootstrap"
	echo "$sasl_bootstrap" > "$dir/sasl_bootstrap"
	echo "$nodes" > "$dir/nodes"
	for i in $(seq 1 "$nodes"); do
		start_node_process "$dir/node$i"
	done
	wait_ready "$bootstrap" "^ *$nodes brokers:" "$(node_logs "$dir")"
	echo "$bootstrap"
}

stop_node() {
	local node=$1 signal=${2:-TERM} pid
	[ -f "$node/pid" ] || return 0
	pid=$(cat "$node/pid")
	if kill -0 "$pid" 2>/dev/null; then
		kill -"$signal" "$pid" 2>/dev/null || true
		for _ in $(seq 1 150); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.2
		done
		kill -KILL "$pid" 2>/dev/null || true
	fi
	rm -f "$node/pid"
}

stop() {
	local dir=$1 node
	for node in "$dir"/node*; do
		[ -d "$node" ] && stop_node "$node" TERM
	done
	return 0
}

start_node() {
	local dir=$1 n=$2
	start_node_process "$dir/node$n"
	# Up once it lists itself: other nodes may be down
	wait_ready "127.0.0.1:$(cat "$dir/node$n/port")" "^ *broker $n at " "$dir/node$n/server.log"
}

topics() {
	local dir=$1
	shift
	(java_cmd "$dir" org.apache.kafka.tools.TopicCommand --bootstrap-server "$(bootstrap_of "$dir")" "$@")
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
	fetch) fetch ;;
	version) if [ -n "${KAFKA_LIBS:-}" ]; then jars_version; else echo "$version"; fi ;;
	start) start "$@" ;;
	stop) stop "$@" ;;
	stop-node) stop_node "$1/node$2" TERM ;;
	kill-node) stop_node "$1/node$2" KILL ;;
	start-node) start_node "$@" ;;
	bootstrap) bootstrap_of "$@" ;;
	sasl-bootstrap) cat "$1/sasl_bootstrap" ;;
	topics) topics "$@" ;;
	*) sed -n '3,27p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
