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

# ===================================================================
# topics kvstore cannot serve
# ===================================================================
my $dir = $ENV{KVSTORE_KAFKA_DIR};
my $wide = kv_topic('partitions');
my $retained = kv_topic('delete');
kv_kafka('topics', $dir, '--create', '--topic', $wide, '--partitions', '3');
kv_kafka('topics', $dir, '--create', '--topic', $retained, '--partitions', '1',
	'--config', 'cleanup.policy=delete');

like(kv_fails($node, "SELECT kv_get('$wide', 'k')"),
	qr/ERROR:  42809: topic "$wide" has 3 partitions/,
	'a topic with three partitions is refused');
like(kv_fails($node, "SELECT kv_put('$retained', 'k', 'v')"),
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
	kv_fails($node, qq{SELECT kv_put_many('$strict', ARRAY['a', 'b', 'c'], ARRAY['1', repeat('x', 5000), '3'])}),
	qr/ERROR:  54000: could not write to topic "$strict"/,
	'a batch with a record the broker finds too large fails');
is( $node->safe_psql(
		'postgres', "SELECT kv_sync('$strict') >= 0; SELECT count(*) FROM kv_scan('$strict')"),
	"t\n0",
	'none of the refused batch is visible');
is($node->safe_psql('postgres', "SELECT kv_put_many('$strict', ARRAY['a', 'c'], ARRAY['1', '3']) >= 0; SELECT string_agg(key, ',') FROM kv_scan('$strict')"),
	"t\na,c", 'the next batch commits');

# ===================================================================
# transactions of another producer: aborted records are never applied,
# and one left open holds this server at the last stable offset
# ===================================================================
my $txn = kv_txn_producer();
my $tt = kv_topic('txn');
my $brokers = kv_brokers();
my $scan = "SELECT string_agg(key || '=' || value, ',') FROM kv_scan('$tt')";

# Run txn_producer to its end; returns its output
sub txn_producer
{
	my (@args) = @_;
	my ($out, $err);
	IPC::Run::run([ $txn, $brokers, $tt, @args ], '>', \$out, '2>', \$err)
	  or die "txn_producer @args failed: $err";
	return $out;
}

is($node->safe_psql('postgres', "SELECT kv_put('$tt', 'k0', 'before')"),
	'0', 'a topic with one record');
is(txn_producer('abort', 'a=aborted', 'b=aborted'),
	"offset 1\noffset 2\naborted\n",
	'another producer writes two records at offsets 1 and 2 and aborts');
is(txn_producer('commit', 'c=committed'),
	"offset 4\ncommitted\n",
	'then commits one at offset 4 (the abort marker took 3)');
like(kv_kcat_consume($tt, 'read_uncommitted'),
	qr/^0 k0=before\n1 a=aborted\n2 b=aborted\n4 c=committed\n$/,
	'the aborted records are in the log');
is($node->safe_psql('postgres', "SELECT kv_sync('$tt'); $scan"),
	"6\nc=committed,k0=before",
	'kv_sync returns the end of the log, and the aborted records were never applied');

# A transaction left open: offset 6, and the log stable below it
my ($txn_in, $txn_out, $txn_err) = ('', '', '');
my $open = IPC::Run::start([ $txn, $brokers, $tt, 'open', 'd=open' ],
	'<', \$txn_in, '>', \$txn_out, '2>', \$txn_err,
	IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
$open->pump until $txn_out =~ /^open$/m;
is($txn_out, "offset 6\nopen\n", 'another producer leaves a transaction open at offset 6');
is($node->safe_psql('postgres', "SELECT kv_sync('$tt')"),
	'6', 'kv_sync returns the last stable offset: the start of the open transaction');

# The session's producer starts with a write elsewhere: the short timeout
# then bounds only the wait to apply
like( kv_fails(
		$node, "SELECT kv_put('$strict', 'warm', 'up');
		SET kvstore.write_timeout = '1s'; SELECT kv_put('$tt', 'e', 'after')"),
	qr/ERROR:  57014: timed out waiting for topic "$tt" to apply offset 7/,
	'a write behind the open transaction is stored at offset 7 but cannot be applied');
is( $node->safe_psql(
		'postgres', "SELECT applied_offset FROM kv_topics WHERE topic = '$tt'; $scan"),
	"6\nc=committed,k0=before",
	'the server stops at the last stable offset: neither the open record nor the later write is visible');

$node->restart;
is( $node->safe_psql(
		'postgres', "$scan; SELECT state, applied_offset FROM kv_topics WHERE topic = '$tt'"),
	"c=committed,k0=before\nready|6",
	'after a restart the replay stops at the last stable offset, and the topic is ready');

$txn_in .= "abort\n";
$open->finish;
is($txn_out, "offset 6\nopen\naborted\n", 'the open transaction is aborted');
is($node->safe_psql('postgres', "SELECT kv_sync('$tt'); $scan"),
	"9\nc=committed,e=after,k0=before",
	'the write behind it is applied, the aborted record never');
like(kv_kcat_consume($tt, 'read_uncommitted'), qr/^6 d=open\n7 e=after\n$/m,
	'the aborted record is in the log');

$node->restart;
is($node->safe_psql('postgres', $scan),
	'c=committed,e=after,k0=before',
	'a replay after a restart skips both aborted transactions');

# ===================================================================
# a wait cut short: the error gives the offset of the stored write
# ===================================================================
my $topic = kv_topic('stalled');
$node->safe_psql('postgres', "SELECT kv_put('$topic', 'k', 'v0')");
my $pid = $node->safe_psql('postgres', "SELECT worker_pid FROM kv_topics WHERE topic = '$topic'");
kill 'STOP', $pid;

my $start = time;
my $err = kv_fails($node, "SET statement_timeout = '300ms'; SELECT kv_put('$topic', 'k', 'v1')");
my $elapsed = time - $start;
like($err, qr/ERROR:  57014: canceling statement due to statement timeout/,
	'statement_timeout interrupts a write waiting to be applied');
like($err, qr/write to topic "$topic" was acknowledged by Kafka at offset 1 and will become visible once applied/,
	'the error says the write is stored and gives its offset');
cmp_ok($elapsed, '<', 5, 'the wait ended long before the write timeout');

$err = kv_fails($node, "SET kvstore.write_timeout = '200ms'; SELECT kv_put('$topic', 'k', 'v2')");
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
$err = kv_fails($lonely, "SET statement_timeout = '1s'; SELECT kv_put('anything', 'k', 'v')");
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
$err = kv_fails($small, qq{
	SELECT kv_put_many('$big', array(SELECT 'k' || g FROM generate_series(1, 40) g),
	                           array(SELECT repeat('x', 100000) FROM generate_series(1, 40)))});
like($err, qr/ERROR:  53200: topic "$big" stopped before applying offset/,
	'a write that does not fit in memory fails');
like(kv_fails($small, "SELECT kv_get('$big', 'k1')"),
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
