# Many writers at once: every write is visible when it returns, to the
# session that made it and to every other, and a batch all at once.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KvstoreTest;

my $node = kv_node('concurrency');

# ===================================================================
# 1000 puts from 10 concurrent sessions, all visible
# ===================================================================
my $topic = kv_topic('puts');
$node->safe_psql('postgres', "CREATE SEQUENCE serial; SELECT kv_put('$topic', 'warm', 'up')");
$node->pgbench(
	'--no-vacuum --client=10 --jobs=2 --transactions=100',
	0,
	[qr{processed: 1000/1000}],
	[qr{^$}],
	'1000 puts from 10 sessions',
	{
		'puts' => qq{SELECT kv_put('$topic', 'c' || nextval('serial'), 'v');}
	});
is($node->safe_psql('postgres', "SELECT count(*) FROM kv_scan('$topic', 'c')"),
	'1000', 'all 1000 keys are visible');

# ===================================================================
# a batch of 10,000 through kv_put_many, all visible on return
# ===================================================================
my $batch = kv_topic('batch');
is( $node->safe_psql(
		'postgres', qq{
	SELECT kv_put_many('$batch',
		array(SELECT 'k' || g FROM generate_series(1, 10000) g),
		array(SELECT 'v' || g FROM generate_series(1, 10000) g)) IS NOT NULL;
	SELECT count(*) FROM kv_scan('$batch') WHERE value = 'v' || substr(key, 2);}),
	"t\n10000",
	'10,000 keys written in one batch are all visible when it returns');

# a mixed batch: deletes and puts of the same keys apply in order
is( $node->safe_psql(
		'postgres', qq{
	SELECT kv_put_many('$batch',
		array(SELECT 'k' || g FROM generate_series(1, 100) g) || array(SELECT 'k' || g FROM generate_series(1, 50) g),
		array(SELECT NULL::text FROM generate_series(1, 100) g) || array(SELECT 'again' FROM generate_series(1, 50) g)) IS NOT NULL;
	SELECT count(*) FROM kv_scan('$batch');
	SELECT count(*) FROM kv_scan('$batch') WHERE value = 'again';}),
	"t\n9950\n50",
	'a mixed batch deletes 100 keys and puts 50 of them back');

# ===================================================================
# read-your-own-writes under stress: 50 sessions, 2000 writes each
# ===================================================================
my $ryow = kv_topic('ryow');
$node->safe_psql(
	'postgres', q{
CREATE FUNCTION ryow_step(t text, k text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
	prev bytea := kv_get_bytea(t, convert_to(k, 'UTF8'));
	n bigint := coalesce(('x' || encode(prev, 'hex'))::bit(64)::bigint, 0) + 1;
	got bytea;
BEGIN
	PERFORM kv_put_bytea(t, convert_to(k, 'UTF8'), int8send(n));
	got := kv_get_bytea(t, convert_to(k, 'UTF8'));
	IF got IS DISTINCT FROM int8send(n) THEN
		RAISE EXCEPTION 'read-your-own-writes violated on %: wrote %, read %', k, n, got;
	END IF;
END $$;
});
$node->safe_psql('postgres', "SELECT kv_put('$ryow', 'warm', 'up')");
$node->pgbench(
	'--no-vacuum --client=50 --jobs=2 --transactions=2000',
	0,
	[qr{processed: 100000/100000}],
	[qr{^$}],
	'50 sessions each write their own key 2000 times and read it back',
	{ 'ryow' => qq{SELECT ryow_step('$ryow', 'client:' || :client_id);} });
is( $node->safe_psql(
		'postgres', qq{
	SELECT count(*) FROM kv_scan_bytea('$ryow', 'client:')
	WHERE value = int8send(2000)}),
	'50',
	'every session\'s key holds its 2000th value');

# ===================================================================
# scans while writers change the keys: each key at most once, in order,
# with a value it really had, and never older than a write that had
# returned when the scan began
# ===================================================================
# Every value carries a version (key:version, from a sequence), and every
# write logs its version and the offset kv_put or kv_delete returned.
# The log table is read in the scan's statement, so its snapshot holds
# exactly the writes that had returned before the scan began.
my $churn = kv_topic('churn');
$node->safe_psql(
	'postgres', qq{
CREATE SEQUENCE churn_version;
CREATE TABLE churn_log (key text, version bigint, off bigint, deleted bool);
CREATE INDEX ON churn_log (key, off);
CREATE INDEX ON churn_log (key, version);
CREATE TABLE churn_scans (scan int, n bigint, key text, value text);
CREATE TABLE churn_floor (scan int, key text, off bigint);
CREATE FUNCTION churn_write(k int, r int) RETURNS void LANGUAGE plpgsql AS \$\$
DECLARE
	key text := 'k' || lpad(k::text, 5, '0');
	v bigint := nextval('churn_version');
BEGIN
	IF r <= 3 THEN
		INSERT INTO churn_log VALUES (key, v, kv_delete('$churn', key), true);
	ELSE
		INSERT INTO churn_log VALUES (key, v, kv_put('$churn', key, key || ':' || v), false);
	END IF;
END \$\$;
SELECT kv_put_many('$churn',
	array(SELECT 'k' || lpad(g::text, 5, '0') FROM generate_series(1, 5000) g),
	array(SELECT 'k' || lpad(g::text, 5, '0') || ':0' FROM generate_series(1, 5000) g));
});
my $script = "$PostgreSQL::Test::Utils::tmp_check/churn.sql";
PostgreSQL::Test::Utils::append_to_file($script, q{\set k random(1, 5000)
\set r random(1, 10)
SELECT churn_write(:k, :r);
});
my $writers = IPC::Run::start(
	[ 'pgbench', '--no-vacuum', '--client=4', '--jobs=1', '--time=8',
	  '--file', $script, '--host', $node->host, '--port', $node->port, 'postgres' ],
	'>', \my $writers_out, '2>', \my $writers_err);
my $scans = 0;
while ($writers->pumpable)
{
	$scans++;
	$node->safe_psql(
		'postgres', qq{
		WITH floor AS (
			INSERT INTO churn_floor
			SELECT $scans, k.key, coalesce(max(l.off), -1)
			FROM (SELECT 'k' || lpad(g::text, 5, '0') AS key FROM generate_series(1, 5000) g) k
			LEFT JOIN churn_log l USING (key) GROUP BY k.key
			RETURNING 1),
		scan AS (
			INSERT INTO churn_scans
			SELECT $scans, n, key, value FROM kv_scan('$churn') WITH ORDINALITY AS s(key, value, n)
			RETURNING 1)
		SELECT (SELECT count(*) FROM floor), (SELECT count(*) FROM scan)});
	$writers->pump_nb;
}
ok($writers->finish, 'the writers exit with status 0');
is($writers_err, '', 'the writers report no error');
like($writers_out, qr/number of failed transactions: 0 /, 'no write failed');
my $written = $node->safe_psql('postgres', 'SELECT count(*) FROM churn_log');
cmp_ok($written, '>', 100, "the writers wrote $written times meanwhile");
cmp_ok($scans, '>', 5, "$scans scans ran while the writers wrote");

is( $node->safe_psql(
		'postgres', q{
	SELECT count(*) FROM (
		SELECT scan, key, lag(key) OVER (PARTITION BY scan ORDER BY n) AS prev
		FROM churn_scans) s
	WHERE prev IS NOT NULL AND key COLLATE "C" <= prev COLLATE "C"}),
	'0', 'every scan returned its keys once each, in order');
is( $node->safe_psql(
		'postgres', q{
	SELECT count(*) FROM churn_scans s
	WHERE split_part(value, ':', 1) <> key
	   OR (split_part(value, ':', 2) <> '0' AND NOT EXISTS (
			SELECT FROM churn_log l
			WHERE l.key = s.key AND l.version = split_part(s.value, ':', 2)::bigint
			  AND NOT l.deleted))}),
	'0', 'every value a scan returned was written for its key');
is( $node->safe_psql(
		'postgres', q{
	SELECT count(*) FROM churn_floor f
	LEFT JOIN churn_scans s ON s.scan = f.scan AND s.key = f.key
	LEFT JOIN churn_log l ON l.key = s.key AND l.version = split_part(s.value, ':', 2)::bigint
	WHERE CASE WHEN s.key IS NULL
		THEN NOT EXISTS (SELECT FROM churn_log d WHERE d.key = f.key AND d.deleted AND d.off >= f.off)
		ELSE coalesce(l.off, -1) < f.off END}),
	'0', 'no scan returned a value older than a write that had returned, nor missed a key it should hold');

# Once the writers are done, the topic holds the last write of every key
is( $node->safe_psql(
		'postgres', qq{
	SELECT (SELECT string_agg(key || '=' || value, ',' ORDER BY key COLLATE "C") FROM kv_scan('$churn'))
	     = (SELECT string_agg(k.key || '=' || k.key || ':' || coalesce(last.version, 0), ',' ORDER BY k.key COLLATE "C")
	        FROM (SELECT 'k' || lpad(g::text, 5, '0') AS key FROM generate_series(1, 5000) g) k
	        LEFT JOIN LATERAL (SELECT version, deleted FROM churn_log l
	                           WHERE l.key = k.key ORDER BY off DESC LIMIT 1) last ON true
	        WHERE NOT coalesce(last.deleted, false))}),
	't', 'afterwards the topic holds exactly the last write of every key');

# ===================================================================
# a batch becomes visible all at once: a session that sees one of its
# records sees all of them from then on
# ===================================================================
# Two sessions write batches of 3,000 keys, each key with the batch's
# number, the first key first, and log the offset kv_put_many returns; the
# reader reads the first key, then the last.  A batch applied in parts
# would show a first key from a later batch (by offset) than the last.
my $atomic = kv_topic('atomic');
$node->safe_psql(
	'postgres', qq{
CREATE SEQUENCE atomic_version;
CREATE TABLE atomic_batches (version bigint, off bigint);
CREATE TABLE atomic_reads (first bigint, last bigint);
CREATE FUNCTION atomic_read(n int) RETURNS void LANGUAGE plpgsql AS \$\$
DECLARE
	f text;
	l text;
BEGIN
	FOR i IN 1 .. n LOOP
		f := kv_get('$atomic', 'a0001');
		l := kv_get('$atomic', 'a3000');
		INSERT INTO atomic_reads VALUES (f::bigint, l::bigint);
	END LOOP;
END \$\$;
INSERT INTO atomic_batches SELECT 0, kv_put_many('$atomic',
	array(SELECT 'a' || lpad(g::text, 4, '0') FROM generate_series(1, 3000) g),
	array_fill('0'::text, ARRAY[3000]));
});
my $batches = "$PostgreSQL::Test::Utils::tmp_check/atomic.sql";
PostgreSQL::Test::Utils::append_to_file($batches, qq{INSERT INTO atomic_batches
	SELECT v, kv_put_many('$atomic',
		array(SELECT 'a' || lpad(g::text, 4, '0') FROM generate_series(1, 3000) g),
		array_fill(v::text, ARRAY[3000]))
	FROM nextval('atomic_version') v;
});
my $writer = IPC::Run::start(
	[ 'pgbench', '--no-vacuum', '--client=2', '--jobs=1', '--time=6',
	  '--file', $batches, '--host', $node->host, '--port', $node->port, 'postgres' ],
	'>', \my $writer_out, '2>', \my $writer_err);
while ($writer->pumpable)
{
	$node->safe_psql('postgres', 'SELECT atomic_read(2000)');
	$writer->pump_nb;
}
ok($writer->finish, 'the batch writers exit with status 0');
like($writer_out, qr/number of failed transactions: 0 /, 'no batch failed');
cmp_ok($node->safe_psql('postgres', 'SELECT count(DISTINCT first) FROM atomic_reads'),
	'>', 10, 'the reader saw the batches change under it');
is( $node->safe_psql(
		'postgres', q{
	SELECT count(*) FROM atomic_reads r
	LEFT JOIN atomic_batches f ON f.version = r.first
	LEFT JOIN atomic_batches l ON l.version = r.last
	WHERE f.off IS NULL OR l.off IS NULL OR f.off > l.off}),
	'0', 'no read saw a batch\'s first key without its last');

$node->stop;
done_testing();
