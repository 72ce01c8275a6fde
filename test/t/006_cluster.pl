# Against a three-broker Kafka cluster: a write survives the loss of one
# broker (acks=all, min.insync.replicas=2), and a server rebuilds from the
# replicas that remain.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KvstoreTest;

my $dir = PostgreSQL::Test::Utils::tempdir('kafka-cluster');
my $brokers = kv_kafka('start', $dir, 3);
like($brokers, qr/^127\.0\.0\.1:\d+,127\.0\.0\.1:\d+,127\.0\.0\.1:\d+$/,
	'a three-broker cluster runs on loopback');

my $node = kv_node('cluster', brokers => $brokers,
	conf => 'kvstore.replication_factor = 3');
my $topic = kv_topic('cluster');

is($node->safe_psql('postgres', "SELECT kv_put('$topic', 'before', '1')"),
	'0', 'a write to a topic replicated three times');

# A topic whose writes need all three replicas in sync
my $strict = kv_topic('strict');
kv_kafka('topics', $dir, '--create', '--topic', $strict, '--partitions', '1',
	'--replication-factor', '3', '--config', 'cleanup.policy=compact',
	'--config', 'min.insync.replicas=3');
is($node->safe_psql('postgres', "SELECT kv_put('$strict', 'first', '1')"),
	'0', 'a write that needs all three replicas, all up');

# Stop a broker that is not the only one a client knows
kv_kafka('stop-node', $dir, 3);
is($node->safe_psql('postgres', "SELECT kv_put('$topic', 'during', '2') > 0"),
	't', 'a write succeeds with one broker of three down');
is($node->safe_psql('postgres', "SELECT kv_get('$topic', 'during')"),
	'2', 'and is read back');

# A topic that needs all three replicas cannot take writes now: the
# error is clear, and reads go on
like( (	$node->psql('postgres',
			"\\set VERBOSITY verbose\nSET kvstore.write_timeout = '3s'; SELECT kv_put('$strict', 'lost', 'x')"))[2],
	qr/ERROR:  (08006: could not write to topic "$strict"|08006: write to topic "$strict" failed with an uncertain outcome|57014: timed out waiting for Kafka)/,
	'a write Kafka cannot store in time fails, saying whether it may be stored');
is($node->safe_psql('postgres', "SELECT kv_get('$strict', 'first')"),
	'1', 'reads are served from this server meanwhile');

$node->restart;
is( $node->safe_psql(
		'postgres', "SELECT kv_get('$topic', 'before') || kv_get('$topic', 'during')"),
	'12', 'a restarted server rebuilds the topic from the remaining brokers');

kv_kafka('start-node', $dir, 3);
is($node->safe_psql('postgres', "SELECT kv_put('$topic', 'after', '3') > 0"),
	't', 'writes go on once the broker is back');
is($node->safe_psql('postgres', "SELECT kv_put('$strict', 'second', '2') > 0"),
	't', 'even to the topic that needs all three replicas');

$node->stop;
kv_kafka('stop', $dir);
done_testing();
