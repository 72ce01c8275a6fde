# Errors that need a broker or a server set up for them: topics kvstore
# must refuse, an unreachable broker, waits cut short, memory running out.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use KvstoreTest;

my $node = kv_node('errors');

# Run SQL expecting an error; returns its stderr (with SQLSTATE)
sub fails
{
	my ($node, $sql) = @_;
	my ($ret, $stdout, $stderr) =
	  $node->psql('postgres', "\\set VERBOSITY verbose\n$sql");
	return $ret == 0 ? "no error: $stdout" : $stderr;
}

# ===================================================================
# topics kvstore cannot serve
# ===================================================================
my $dir = $ENV{KVSTORE_KAFKA_DIR};
my $wide = kv_topic('partitions');
my $retained = kv_topic('delete');
kv_kafka('topics', $dir, '--create', '--topic', $wide, '--partitions', '3');
kv_kafka('topics', $dir, '--create', '--topic', $retained, '--partitions', '1',
	'--config', 'cleanup.policy=delete');

like(fails($node, "SELECT kv_get('$wide', 'k')"),
	qr/ERROR:  42809: topic "$wide" has 3 partitions/,
	'a topic with three partitions is refused');
like(fails($node, "SELECT kv_put('$retained', 'k', 'v')"),
	qr/ERROR:  42809: topic "$retained" is not compacted/,
	'a topic that is not compacted is refused');
is($node->safe_psql('postgres', "SELECT count(*) FROM kv_topics WHERE topic IN ('$wide', '$retained')"),
	'0', 'refused topics are not attached');

# ===================================================================
# a batch the broker refuses leaves none of its records behind
# ===================================================================
my $strict = kv_topic('strict');
kv_kafka('topics', $dir, '--create', '--topic', $strict, '--partitions', '1',
	'--config', 'cleanup.policy=compact', '--config', 'max.message.bytes=2000');
like(
	fails($node, qq{SELECT kv_put_many('$strict', ARRAY['a', 'b', 'c'], ARRAY['1', repeat('x', 5000), '3'])}),
	qr/ERROR:  54000: could not write to topic "$strict"/,
	'a batch with a record the broker finds too large fails');
is( $node->safe_psql(
		'postgres', "SELECT kv_sync('$strict') >= 0; SELECT count(*) FROM kv_scan('$strict')"),
	"t\n0",
	'the transaction was aborted: none of the batch is visible');
is($node->safe_psql('postgres', "SELECT kv_put_many('$strict', ARRAY['a', 'c'], ARRAY['1', '3']) >= 0; SELECT string_agg(key, ',') FROM kv_scan('$strict')"),
	"t\na,c", 'the next batch commits');

# ===================================================================
# a wait cut short: the error gives the offset of the stored write
# ===================================================================
my $topic = kv_topic('stalled');
$node->safe_psql('postgres', "SELECT kv_put('$topic', 'k', 'v0')");
my $pid = $node->safe_psql('postgres', "SELECT worker_pid FROM kv_topics WHERE topic = '$topic'");
kill 'STOP', $pid;

my $start = time;
my $err = fails($node, "SET statement_timeout = '300ms'; SELECT kv_put('$topic', 'k', 'v1')");
my $elapsed = time - $start;
like($err, qr/ERROR:  57014: canceling statement due to statement timeout/,
	'statement_timeout interrupts a write waiting to be applied');
like($err, qr/write to topic "$topic" was acknowledged by Kafka at offset 1 and will become visible once applied/,
	'the error says the write is stored and gives its offset');
cmp_ok($elapsed, '<', 5, 'the wait ended long before the write timeout');

$err = fails($node, "SET kvstore.write_timeout = '200ms'; SELECT kv_put('$topic', 'k', 'v2')");
like($err, qr/ERROR:  57014: timed out waiting for topic "$topic" to apply offset 2/,
	'kvstore.write_timeout ends the wait with its own message');
like($err, qr/DETAIL:  Kafka acknowledged the write at offset 2/,
	'the detail says the write is in Kafka');

kill 'CONT', $pid;
ok($node->poll_query_until('postgres', "SELECT kv_get('$topic', 'k') = 'v2'"),
	'the writes whose wait was cut short become visible');

# ===================================================================
# an unreachable broker
# ===================================================================
my $port = PostgreSQL::Test::Cluster::get_free_port();
my $lonely = kv_node('lonely', brokers => "127.0.0.1:$port", no_extension => 1);
$lonely->safe_psql('postgres', 'CREATE EXTENSION kvstore');
$start = time;
$err = fails($lonely, "SET statement_timeout = '1s'; SELECT kv_put('anything', 'k', 'v')");
$elapsed = time - $start;
like($err, qr/ERROR:  (57014|08006):/,
	'a write to an unreachable broker fails as canceled or as a connection failure');
cmp_ok($elapsed, '<', 8, 'statement_timeout cuts the attempt short');
$lonely->stop;

# ===================================================================
# shared memory runs out: the topic stops with a clear error
# ===================================================================
my $small = kv_node('small', conf => "kvstore.shared_memory = '1MB'");
my $big = kv_topic('oom');
$err = fails($small, qq{
	SELECT kv_put_many('$big', array(SELECT 'k' || g FROM generate_series(1, 40) g),
	                           array(SELECT repeat('x', 100000) FROM generate_series(1, 40)))});
like($err, qr/ERROR:  53200: topic "$big" stopped before applying offset/,
	'a write that does not fit in memory fails');
like(fails($small, "SELECT kv_get('$big', 'k1')"),
	qr/ERROR:  53200: topic "$big" is in an error state\nDETAIL:  out of shared memory: .* does not fit in kvstore.shared_memory \(1024 kB\); raise it/,
	'reads of the topic fail naming the setting to raise');
is( $small->safe_psql(
		'postgres', "SELECT state, keys, last_error LIKE '%kvstore.shared_memory%' FROM kv_topics WHERE topic = '$big'"),
	'error|0|t',
	'kv_topics shows the error state and an empty index');
is($small->safe_psql('postgres', 'SELECT 1'), '1', 'the server is still up');
my $other = kv_topic('fits');
is($small->safe_psql('postgres', "SELECT kv_put('$other', 'k', 'v'); SELECT kv_get('$other', 'k')"),
	"0\nv", 'other topics still work');
$small->stop;

$node->stop;
done_testing();
