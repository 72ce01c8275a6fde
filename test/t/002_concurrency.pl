# Many writers at once: every write is visible when it returns, to the
# session that made it and to every other.
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
# with a value it really had
# ===================================================================
my $churn = kv_topic('churn');
$node->safe_psql('postgres', qq{
	SELECT kv_put_many('$churn',
		array(SELECT 'k' || lpad(g::text, 5, '0') FROM generate_series(1, 5000) g),
		array(SELECT 'v' || lpad(g::text, 5, '0') FROM generate_series(1, 5000) g))});
my $script = "$PostgreSQL::Test::Utils::tmp_check/churn.sql";
PostgreSQL::Test::Utils::append_to_file($script, qq{\\set k random(1, 5000)
SELECT CASE WHEN random() < 0.3
	THEN kv_delete('$churn', 'k' || lpad(:k::text, 5, '0'))
	ELSE kv_put('$churn', 'k' || lpad(:k::text, 5, '0'), 'v' || lpad(:k::text, 5, '0')) END;
});
my $writers = IPC::Run::start(
	[ 'pgbench', '--no-vacuum', '--client=4', '--jobs=1', '--time=8',
	  '--file', $script, '--host', $node->host, '--port', $node->port, 'postgres' ],
	'>', \my $writers_out, '2>', \my $writers_err);
my $bad = 0;
my $scans = 0;
while ($writers->pumpable)
{
	# ordinality keeps the order the scan returned rows in
	my $result = $node->safe_psql(
		'postgres', qq{
		SELECT count(*) FILTER (WHERE prev IS NOT NULL AND key <= prev)
		     + count(*) FILTER (WHERE value <> 'v' || substr(key, 2))
		FROM (SELECT key, value, lag(key) OVER (ORDER BY n) AS prev
		      FROM kv_scan('$churn') WITH ORDINALITY AS s(key, value, n)) s});
	$bad += $result;
	$scans++;
	$writers->pump_nb;
}
$writers->finish;
like($writers_out, qr/processed: [1-9]\d*/, 'the writers wrote meanwhile');
cmp_ok($scans, '>', 5, "$scans scans ran while the writers wrote");
is($bad, 0, 'no scan returned a key twice, out of order, or with a value it never had');

$node->stop;
done_testing();
