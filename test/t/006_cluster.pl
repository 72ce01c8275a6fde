# Against a three-broker Kafka cluster: topics are created with the
# replication factor asked for, writes survive the loss of the partition
# leader (stopped, then killed) with acks=all and min.insync.replicas=2,
# a server rebuilds from the brokers that remain, and reads go on with
# every broker down.
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

my $node = kv_node('cluster', brokers => $brokers);

# ===================================================================
# kvstore.replication_factor: -1 is the broker's default (3 here)
# ===================================================================
my $topic = kv_topic('cluster');
my $pair = kv_topic('pair');
is($node->safe_psql('postgres', "SELECT kv_put('$topic', 'before', '1')"),
	'0', 'a write creates a topic');
is(join(',', @{ kv_partition($brokers, $topic)->{replicas} }), '1,2,3',
	'with kvstore.replication_factor = -1 it has the broker default of three replicas');
is( $node->safe_psql(
		'postgres', "SET kvstore.replication_factor = 2; SELECT kv_put('$pair', 'k', 'v')"),
	'0', 'a write creates another topic');
is(scalar @{ kv_partition($brokers, $pair)->{replicas} }, 2,
	'with kvstore.replication_factor = 2 it has two replicas');

# kv_create_topic on a cluster: the brokers learn of a new topic one by one
my $created = kv_topic('created');
my ($ret, $out, $err) = $node->psql('postgres',
	"SET kvstore.replication_factor = 2; SELECT kv_create_topic('$created')");
is($out, 't', 'kv_create_topic creates a topic and attaches it') or diag($err);
is(scalar @{ (kv_in_sync($brokers, $created) // { replicas => [] })->{replicas} }, 2,
	'with two replicas');

# A topic whose writes need all three replicas in sync
my $strict = kv_topic('strict');
kv_kafka('topics', $dir, '--create', '--topic', $strict, '--partitions', '1',
	'--replication-factor', '3', '--config', 'cleanup.policy=compact',
	'--config', 'min.insync.replicas=3');
is($node->safe_psql('postgres', "SELECT kv_put('$strict', 'first', '1')"),
	'0', 'a write that needs all three replicas, all up');

# ===================================================================
# a transactional id held by a transaction that cannot be ended yet
# ===================================================================
# A statement's transaction wrote to a topic whose one replica is on a
# broker that then stops, and the statement is canceled: Kafka takes the
# abort, but cannot write it to the topic until that broker returns, and
# meanwhile holds every later transaction of the id.  The backend's next
# batch moves on to a new transactional id instead of waiting for it.
my $other = kv_topic('other');
is($node->safe_psql('postgres', "SELECT kv_put_many('$other', ARRAY['batch'], ARRAY['0'])"),
	'0', 'a batch creates a topic of three replicas and starts the transaction coordinator');
my $coordinator = kv_partition($brokers, '__transaction_state')->{leader};
my $other_leader = kv_partition($brokers, $other)->{leader};
my ($lone_broker) = grep { $_ != $coordinator && $_ != $other_leader } 1 .. 3;
my $lone = kv_topic('lone');
kv_kafka('topics', $dir, '--create', '--topic', $lone, '--replica-assignment', $lone_broker,
	'--config', 'cleanup.policy=compact');
$node->safe_psql(
	'postgres', qq{
CREATE SERVER cluster FOREIGN DATA WRAPPER kvstore;
CREATE FOREIGN TABLE lone (key text, value text) SERVER cluster OPTIONS (topic '$lone');});
# The brokers learn of the new topic one by one
$node->poll_query_until('postgres', "SELECT kv_sync('$lone') = 0")
  or die "topic $lone was not attached";

my $held = kv_session($node);
my $held_pid = kv_query($held, 'SELECT pg_backend_pid()');
kv_send($held,
	"INSERT INTO lone SELECT 'k' || g, 'v' FROM generate_series(1, 2) g WHERE g = 1 OR pg_sleep(600) IS NULL"
);
# The first row is sent, with the topic added to the transaction
my ($stable, $last, $tries) = ('', '', 0);
until ($last =~ /^0$/m || $tries++ > 300)
{
	IPC::Run::run(
		[
			'kcat', '-C', '-b', $brokers, '-t', $lone, '-p', '0', '-o', 'beginning', '-c', '1',
			'-e', '-q', '-X', 'isolation.level=read_uncommitted', '-f', '%o\n'
		],
		'>', \$last, '2>', \$stable);
	Time::HiRes::usleep(100_000) unless $last =~ /^0$/m;
}
like($last, qr/^0$/m, "the statement's first row is in the topic (uncommitted)");
kv_kafka('stop-node', $dir, $lone_broker);
$node->safe_psql('postgres', "SELECT pg_cancel_backend($held_pid)");
like((kv_query($held, ''))[1], qr/ERROR:  57014: canceling statement due to user request/,
	'the statement is canceled');

my $log_offset = -s $node->logfile;
my ($next, $next_err) = kv_query($held,
	"SET kvstore.write_timeout = '8s'; SELECT kv_put_many('$other', ARRAY['next'], ARRAY['1']) > 0; SELECT kv_get('$other', 'next')"
);
is($next_err, '', 'the next batch of the backend succeeds while the broker is away');
is($next, "t\n1", 'and is read back');
# Whether Kafka held the id this time (it does not always: it may end
# the abort at once)
diag(slurp_file($node->logfile, $log_offset) =~ /LOG:  kvstore moves backend slot \d+ to a new Kafka transactional id/
	? 'the backend moved to a new transactional id'
	: 'Kafka did not hold the transactional id');

kv_kafka('start-node', $dir, $lone_broker);
ok(kv_in_sync($brokers, $lone), "broker $lone_broker is back");

# ===================================================================
# the leader stops
# ===================================================================
my $leader = kv_partition($brokers, $topic)->{leader};
like($leader, qr/^[123]$/, "broker $leader leads the topic");
kv_kafka('stop-node', $dir, $leader);
is($node->safe_psql('postgres', "SELECT kv_put('$topic', 'during', '2')"),
	'1', 'a write succeeds with the leader stopped');
is($node->safe_psql('postgres', "SELECT kv_get('$topic', 'during')"),
	'2', 'and is read back');
my $partition = kv_partition($brokers, $topic);
ok($partition->{leader} > 0 && $partition->{leader} != $leader,
	"another broker leads the topic now ($partition->{leader})");

# A topic that needs all three replicas cannot take writes now: the
# errors say whether the write may be stored, and reads go on
like( kv_fails($node, "SET statement_timeout = '2s'; SELECT kv_put('$strict', 'lost', 'x')"),
	qr/ERROR:  57014: canceling statement due to statement timeout\nCONTEXT:  write to topic "$strict" was sent to Kafka but not yet acknowledged; it may or may not be stored/,
	'a write canceled before Kafka acknowledged it says it may or may not be stored');
like( kv_fails($node, "SET kvstore.write_timeout = '2s'; SELECT kv_put('$strict', 'lost', 'x')"),
	qr/ERROR:  57014: timed out waiting for Kafka to acknowledge a write to topic "$strict"\nDETAIL:  The write may still be stored in Kafka/,
	'a write Kafka does not acknowledge within kvstore.write_timeout says it may still be stored');
is($node->safe_psql('postgres', "SELECT kv_get('$strict', 'first')"),
	'1', 'reads are served from this server meanwhile');

# A write that timed out drops what it had not sent before it returns:
# the next write of the backend goes out
is( $node->safe_psql(
		'postgres', qq{
DO \$\$
BEGIN
	FOR i IN 1..20 LOOP
		BEGIN
			PERFORM set_config('kvstore.write_timeout', '200ms', true);
			PERFORM kv_put('$strict', 'lost', 'x');
		EXCEPTION WHEN query_canceled THEN NULL;
		END;
		PERFORM kv_put('$other', 'next', i::text);
	END LOOP;
END \$\$;
SELECT kv_get('$other', 'next')}),
	'20',
	'each write right after a timed-out one succeeds');

$node->restart;
is( $node->safe_psql(
		'postgres', "SELECT kv_get('$topic', 'before') || kv_get('$topic', 'during')"),
	'12', 'a restarted server rebuilds the topic from the remaining brokers');

kv_kafka('start-node', $dir, $leader);
ok(kv_in_sync($brokers, $topic), "broker $leader is back in sync on the topic");
ok(kv_in_sync($brokers, $strict), 'and on the topic that needs all three replicas');
like($node->safe_psql('postgres', "SELECT kv_put('$topic', 'after', '3')"),
	qr/^\d+$/, 'writes go on once the broker is back');
like($node->safe_psql('postgres', "SELECT kv_put('$strict', 'second', '2')"),
	qr/^\d+$/, 'even to the topic that needs all three replicas');

# ===================================================================
# the leader is killed
# ===================================================================
$leader = kv_partition($brokers, $topic)->{leader};
kv_kafka('kill-node', $dir, $leader);
my $offset = $node->safe_psql('postgres', "SELECT kv_put('$topic', 'killed', '4')");
like($offset, qr/^\d+$/, "a write succeeds with the leader (broker $leader) killed");
is($node->safe_psql('postgres', "SELECT kv_sync('$topic') - 1 = $offset; SELECT kv_get('$topic', 'killed')"),
	"t\n4", 'it is the last record of the topic, and is read back');
$partition = kv_partition($brokers, $topic);
ok($partition->{leader} > 0 && $partition->{leader} != $leader,
	"another broker leads the topic now ($partition->{leader})");

# ===================================================================
# every broker down: reads are answered from this server
# ===================================================================
for my $n (1 .. 3)
{
	kv_kafka('stop-node', $dir, $n) unless $n == $leader;
}
is( $node->safe_psql(
		'postgres', qq{
	SELECT kv_get('$topic', 'before'), kv_exists('$topic', 'killed'),
	       (SELECT string_agg(key || '=' || value, ',') FROM kv_scan('$topic')),
	       (SELECT count(*) FROM kv_range('$topic', 'a', 'd'))}),
	'1|t|after=3,before=1,during=2,killed=4|2',
	'with every broker down, reads are answered');
is($node->safe_psql('postgres', "SELECT state FROM kv_topics WHERE topic = '$topic'"),
	'ready', 'and the topic stays ready');
like( kv_fails($node, "SET kvstore.write_timeout = '1s'; SELECT kv_put('$topic', 'nowhere', 'x')"),
	qr/ERROR:  57014: timed out waiting for Kafka to acknowledge a write to topic "$topic"/,
	'a write fails within kvstore.write_timeout');

$node->stop;
kv_kafka('stop', $dir);
done_testing();
