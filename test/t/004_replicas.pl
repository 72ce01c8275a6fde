# Two servers on one topic are replicas: each applies the same log.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KvstoreTest;

my $a = kv_node('replica_a');
my $b = kv_node('replica_b');
my $topic = kv_topic('replicas');

$a->safe_psql('postgres', "SELECT kv_put('$topic', 'from-a', '1')");
$b->safe_psql('postgres', "SELECT kv_put('$topic', 'from-b', '2')");

ok($a->poll_query_until('postgres', "SELECT kv_get('$topic', 'from-b') = '2'"),
	'a write on B becomes visible on A');
ok($b->poll_query_until('postgres', "SELECT kv_get('$topic', 'from-a') = '1'"),
	'a write on A becomes visible on B');

$a->safe_psql('postgres', "SELECT kv_delete('$topic', 'from-b')");
ok($b->poll_query_until('postgres', "SELECT NOT kv_exists('$topic', 'from-b')"),
	'a delete on A disappears from B');

# kv_sync waits until everything in the topic now is applied here
$a->safe_psql('postgres',
	"SELECT kv_put_many('$topic', array(SELECT 'n' || g FROM generate_series(1, 500) g), array(SELECT 'x' FROM generate_series(1, 500)))");
is( $b->safe_psql(
		'postgres', "SELECT kv_sync('$topic') > 0; SELECT count(*) FROM kv_scan('$topic', 'n')"),
	"t\n500",
	'after kv_sync, B sees the batch A wrote');

is($a->safe_psql('postgres', "SELECT string_agg(key || '=' || value, ',') FROM kv_scan('$topic')"),
	$b->safe_psql('postgres', "SELECT string_agg(key || '=' || value, ',') FROM kv_scan('$topic')"),
	'both servers hold the same keys and values');

$a->stop;
$b->stop;
done_testing();
