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

# Stop a broker that is not the only one a client knows
kv_kafka('stop-node', $dir, 3);
is($node->safe_psql('postgres', "SELECT kv_put('$topic', 'during', '2') > 0"),
	't', 'a write succeeds with one broker of three down');
is($node->safe_psql('postgres', "SELECT kv_get('$topic', 'during')"),
	'2', 'and is read back');

# With two of three brokers down, writes fail clearly; reads go on
kv_kafka('stop-node', $dir, 2);
like( (	$node->psql('postgres',
			"\\set VERBOSITY verbose\nSET kvstore.write_timeout = '3s'; SELECT kv_put('$topic', 'lost', 'x')"))[2],
	qr/ERROR:  (08006: could not write to topic "$topic"|08006: write to topic "$topic" failed with an uncertain outcome|57014: timed out waiting for Kafka)/,
	'a write Kafka cannot store in time fails, saying whether it may be stored');
is($node->safe_psql('postgres', "SELECT kv_get('$topic', 'during')"),
	'2', 'reads are served from this server meanwhile');
kv_kafka('start-node', $dir, 2);

$node->restart;
is( $node->safe_psql(
		'postgres', "SELECT kv_get('$topic', 'before') || kv_get('$topic', 'during')"),
	'12', 'a restarted server rebuilds the topic from the remaining brokers');

kv_kafka('start-node', $dir, 3);
is($node->safe_psql('postgres', "SELECT kv_put('$topic', 'after', '3') > 0"),
	't', 'writes go on once the broker is back');

$node->stop;
kv_kafka('stop', $dir);
done_testing();
