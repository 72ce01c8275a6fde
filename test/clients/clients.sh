#!/usr/bin/env bash
#
# clients.sh: kvstore's functions driven through the drivers applications
# use, with plain parameters and no casts: node-postgres (node/), pgx
# (go/), psycopg 3 and asyncpg (python/) and pgJDBC (java/).  Each program
# prints TAP; so does readme.pl, which checks that the README's examples
# are excerpts of these programs.
#
#   clients.sh fetch          install each driver at its pinned version
#                             (package-lock.json, go.sum, requirements.txt,
#                             pom.xml) into the git-ignored .clients/ and
#                             build what needs building; skipped when done
#   clients.sh run PORT DB    run every program with prove against the
#                             server on 127.0.0.1:PORT, database DB (user
#                             postgres, kvstore installed)
#   clients.sh exec PROGRAM   run one program (prove calls this)
#
# Needs Node.js with npm, Go 1.25 or newer, Python 3 with venv, and a
# Java 17 JDK with Maven on PATH.
#
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
cache=${KV_CLIENTS_CACHE:-$root/.clients}

die() { echo "clients.sh: $*" >&2; exit 1; }

# same FILE COPY: whether COPY exists and has the same contents as FILE
same() { [ -f "$2" ] && cmp -s "$1" "$2"; }

fetch_node() {
	local dir=$cache/node
	same "$here/node/package-lock.json" "$dir/installed.json" && return 0
	rm -rf "$dir"
	mkdir -p "$dir"
	cp "$here/node/package.json" "$here/node/package-lock.json" "$dir/"
	(cd "$dir" && npm ci --no-audit --no-fund --silent)
	cp "$here/node/package-lock.json" "$dir/installed.json"
}

fetch_go() {
	mkdir -p "$cache/go"
	(cd "$here/go" && go mod download && go build -o "$cache/go/client" .)
}

fetch_python() {
	local dir=$cache/python
	same "$here/python/requirements.txt" "$dir/requirements.txt" && return 0
	rm -rf "$dir"
	python3 -m venv "$dir"
	"$dir/bin/pip" install --quiet --disable-pip-version-check -r "$here/python/requirements.txt"
	cp "$here/python/requirements.txt" "$dir/"
}

fetch_java() {
	local dir=$cache/java
	same "$here/java/pom.xml" "$dir/pom.xml" && return 0
	rm -rf "$dir/libs"
	mkdir -p "$dir"
	mvn -B -q -Dstyle.color=never -f "$here/java/pom.xml" -Dmaven.repo.local="$dir/m2" \
		dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$dir/libs" \
		> "$dir/fetch.log" 2>&1 || { cat "$dir/fetch.log" >&2; die "could not fetch pgJDBC"; }
	cp "$here/java/pom.xml" "$dir/"
}

fetch() {
	command -v go >/dev/null || die "Go 1.25 or newer is needed on PATH"
	fetch_node
	fetch_go
	fetch_python
	fetch_java
	chmod -R a+rX "$cache"
}

# exec PROGRAM: run one client program with its driver
run_one() {
	local program=$1
	case "$program" in
	*.js) NODE_PATH="$cache/node/node_modules" exec node "$program" ;;
	*.go) exec "$cache/go/client" ;;
	*.py) exec "$cache/python/bin/python" "$program" ;;
	*.java) exec java -cp "$cache/java/libs/*" "$program" ;;
	*.pl) exec perl "$program" ;;
	*) die "no driver for $program" ;;
	esac
}

run() {
	local port=$1 db=$2
	export DATABASE_URL="postgresql://postgres@127.0.0.1:$port/$db"
	export JDBC_DATABASE_URL="jdbc:postgresql://127.0.0.1:$port/$db?user=postgres"
	prove --failures --comments --exec "$here/clients.sh exec" \
		"$here/node/client.js" "$here/go/main.go" "$here/python/client.py" \
		"$here/python/client_asyncpg.py" "$here/java/Client.java" \
		"$here/readme.pl"
}

case "${1:-}" in
fetch) fetch ;;
run) shift; run "$@" ;;
exec) shift; run_one "$@" ;;
*) die "usage: clients.sh fetch | run PORT DB | exec PROGRAM" ;;
esac
