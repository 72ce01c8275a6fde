# The log changes under the index: a topic deleted and created again is
# rebuilt from the new log, and no read sees the old keys afterwards.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KvstoreTest;

my $node = kv_node('recreate');
my $dir = $ENV{KVSTORE_KAFKA_DIR};
my $topic = kv_topic('recreate');

$node->safe_psql('postgres',
	"SELECT kv_put('$topic', 'old' || g, 'x') FROM generate_series(1, 20) g");
is($node->safe_psql('postgres', "SELECT count(*) FROM kv_scan('$topic', 'old')"),
	'20', 'twenty keys before the topic is recreated');

kv_kafka('topics', $dir, '--delete', '--topic', $topic);
# The broker deletes asynchronously; create again once the name is free
my $created = 0;
for (1 .. 60)
{
	eval {
		kv_kafka('topics', $dir, '--create', '--topic', $topic, '--partitions', '1',
			'--config', 'cleanup.policy=compact');
		$created = 1;
	};
	last if $created;
	sleep 1;
}
ok($created, 'the topic is deleted and created again');
is(kv_kcat_produce($topic, "new:1\n", '-K:'), '', 'one record in the new log');

ok( $node->poll_query_until(
		'postgres',
		"SELECT kv_get('$topic', 'new') = '1' AND NOT kv_exists('$topic', 'old1')"),
	'the index is rebuilt from the new log');
is( $node->safe_psql(
		'postgres', "SELECT count(*), state FROM kv_scan('$topic'), kv_topics WHERE topic = '$topic' GROUP BY state"),
	'1|ready',
	'only the new key remains and the topic is ready');

$node->stop;
done_testing();
