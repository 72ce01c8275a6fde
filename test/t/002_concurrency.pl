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
	prev bytea := kv_get(t, convert_to(k, 'UTF8'));
	n bigint := coalesce(('x' || encode(prev, 'hex'))::bit(64)::bigint, 0) + 1;
	got bytea;
BEGIN
	PERFORM kv_put(t, convert_to(k, 'UTF8'), int8send(n));
	got := kv_get(t, convert_to(k, 'UTF8'));
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
	SELECT count(*) FROM kv_scan('$ryow', 'client:'::bytea)
	WHERE value = int8send(2000)}),
	'50',
	'every session\'s key holds its 2000th value');

$node->stop;
done_testing();
