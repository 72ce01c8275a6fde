# The log changes under the index: a topic deleted and created again is
# rebuilt from the new log, and no read sees the old keys afterwards; a
# new log longer than the old one needs the worker restarted, as the
# README says.
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

# Delete a topic and create it again; the broker deletes asynchronously,
# so create again once the name is free
sub recreate
{
	my ($name) = @_;
	kv_kafka('topics', $dir, '--delete', '--topic', $name);
	for (1 .. 60)
	{
		my $created = eval {
			kv_kafka('topics', $dir, '--create', '--topic', $name, '--partitions', '1',
				'--config', 'cleanup.policy=compact');
			1;
		};
		return 1 if $created;
		sleep 1;
	}
	return 0;
}

ok(recreate($topic), 'the topic is deleted and created again');
is(kv_kcat_produce($topic, "new:1\n", '-K:'), '', 'one record in the new log');

ok( $node->poll_query_until(
		'postgres',
		"SELECT kv_get('$topic', 'new') = '1' AND NOT kv_exists('$topic', 'old1')"),
	'the index is rebuilt from the new log');
is( $node->safe_psql(
		'postgres', "SELECT count(*), state FROM kv_scan('$topic'), kv_topics WHERE topic = '$topic' GROUP BY state"),
	'1|ready',
	'only the new key remains and the topic is ready');

# ===================================================================
# a new log at least as long as the old position goes unnoticed: the
# README's remedy, terminating the worker, rebuilds from the new log
# ===================================================================
my $longer = kv_topic('longer');
$node->safe_psql('postgres',
	"SELECT kv_put('$longer', 'old' || g, 'x') FROM generate_series(1, 5) g");
my $pid = $node->safe_psql('postgres', "SELECT worker_pid FROM kv_topics WHERE topic = '$longer'");
kill 'STOP', $pid;
ok(recreate($longer), 'while its worker is held, a topic is deleted and created again');
is(kv_kcat_produce($longer, join('', map { "new$_:y\n" } 1 .. 10), '-K:'), '',
	'ten records in the new log, past the old position');
kill 'CONT', $pid;
$node->safe_psql('postgres',
	"SELECT pg_terminate_backend(worker_pid) FROM kv_topics WHERE topic = '$longer'");
ok( $node->poll_query_until(
		'postgres',
		"SELECT state = 'ready' AND worker_pid <> $pid FROM kv_topics WHERE topic = '$longer'"),
	'after pg_terminate_backend(worker_pid) a new worker serves the topic');
is( $node->safe_psql(
		'postgres', "SELECT string_agg(key, ',' ORDER BY key COLLATE \"C\") FROM kv_scan('$longer')"),
	join(',', sort map { "new$_" } 1 .. 10),
	'it holds exactly the keys of the new log');

$node->stop;
done_testing();
