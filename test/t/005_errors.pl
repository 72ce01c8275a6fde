# Errors that need a broker or a server set up for them: topics kvstore
# must refuse, transactions of other producers, waits cut short, an
# unreachable broker, memory running out.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
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
# a write the broker refuses for another reason than its size: HV000
# with Kafka's reason
# ===================================================================
# The broker refuses records stamped earlier than its clock: all but
# those it receives within the millisecond they were made
my $stamped = kv_topic('stamped');
kv_kafka('topics', $dir, '--create', '--topic', $stamped, '--partitions', '1',
	'--config', 'cleanup.policy=compact', '--config', 'message.timestamp.before.max.ms=0');
my (@refusals, @others);
for my $try (1 .. 5)
{
	for my $sql ("SELECT kv_put('$stamped', 'k$try', 'v')",
		"SELECT kv_put_many('$stamped', ARRAY['m$try'], ARRAY['v'])")
	{
		my $err = kv_fails($node, $sql);
		next if $err =~ /^no error/;
		if ($err =~ /ERROR:  HV000: could not write to topic "$stamped"\nDETAIL:  Kafka did not store the write: Broker: Invalid timestamp\./)
		{
			push @refusals, $sql;
		}
		else
		{
			push @others, $err;
		}
	}
}
cmp_ok(scalar @refusals, '>', 0, scalar(@refusals) . ' of 10 writes were refused by the broker');
is(join('', @others), '', 'each with HV000 and the broker\'s reason, and no other error');

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

# A session whose producer has met the topic: a short write timeout then
# bounds only the wait to apply
my $writer = kv_session($node);
is(kv_query($writer, "SELECT kv_put('$tt', 'k0', 'before')"),
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

like( (kv_query($writer, "SET kvstore.write_timeout = '1s'; SELECT kv_put('$tt', 'e', 'after')"))[1],
	qr/ERROR:  57014: timed out waiting for topic "$tt" to apply offset 7/,
	'a write behind the open transaction is stored at offset 7 but cannot be applied');
is( $node->safe_psql(
		'postgres', "SELECT applied_offset FROM kv_topics WHERE topic = '$tt'; $scan"),
	"6\nc=committed,k0=before",
	'the server stops at the last stable offset: neither the open record nor the later write is visible');

$writer->quit;
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
# One session throughout: its producer has met the topic before the
# worker is held, so the short timeouts below bound only the wait to apply
my $session = kv_session($node);
is(kv_query($session, "SELECT kv_put('$topic', 'k', 'v0')"), '0', 'a session writes');
my $pid = $node->safe_psql('postgres', "SELECT worker_pid FROM kv_topics WHERE topic = '$topic'");
kill 'STOP', $pid;

my $start = time;
my (undef, $err) = kv_query($session, "SET statement_timeout = '300ms'; SELECT kv_put('$topic', 'k', 'v1')");
my $elapsed = time - $start;
like($err, qr/ERROR:  57014: canceling statement due to statement timeout/,
	'statement_timeout interrupts a write waiting to be applied');
like($err, qr/write to topic "$topic" was acknowledged by Kafka at offset 1 and will become visible once applied/,
	'the error says the write is stored and gives its offset');
cmp_ok($elapsed, '<', 5, 'the wait ended long before the write timeout');

(undef, $err) = kv_query($session, "RESET statement_timeout; SET kvstore.write_timeout = '200ms'; SELECT kv_put('$topic', 'k', 'v2')");
like($err, qr/ERROR:  57014: timed out waiting for topic "$topic" to apply offset 2/,
	'kvstore.write_timeout ends the wait with its own message');
like($err, qr/DETAIL:  Kafka acknowledged the write at offset 2/,
	'the detail says the write is in Kafka');

# kvstore.write_timeout = 0 waits without limit, and statement_timeout
# still interrupts
(undef, $err) = kv_query($session, "SET kvstore.write_timeout = 0; SET statement_timeout = '300ms'; SELECT kv_put('$topic', 'k', 'v3')");
like($err, qr/ERROR:  57014: canceling statement due to statement timeout.*acknowledged by Kafka at offset 3/s,
	'with kvstore.write_timeout = 0, statement_timeout still interrupts');
my $session_pid = kv_query($session, 'RESET statement_timeout; SELECT pg_backend_pid()');
kv_send($session, "SELECT kv_put('$topic', 'k', 'v4')");
ok( $node->poll_query_until(
		'postgres', "SELECT wait_event_type = 'Extension' FROM pg_stat_activity WHERE pid = $session_pid"),
	'with kvstore.write_timeout = 0 a write waits for the held worker');

kill 'CONT', $pid;
is(kv_query($session, ''), '4', 'and returns its offset once the worker goes on');
is($node->safe_psql('postgres', "SELECT kv_get('$topic', 'k')"), 'v4',
	'the last write is visible');
$session->quit;

# ===================================================================
# an unreachable broker
# ===================================================================
my $port = PostgreSQL::Test::Cluster::get_free_port();
my $lonely = kv_node('lonely', brokers => "127.0.0.1:$port", no_extension => 1);
$lonely->safe_psql('postgres', 'CREATE EXTENSION kvstore');
like(kv_fails($lonely, "SELECT kv_put('anything', 'k', 'v')"),
	qr/ERROR:  HV00N: could not reach Kafka at "127.0.0.1:$port" to look up topic "anything"/,
	'a write with no broker to reach fails with HV00N, naming the brokers and the topic');
like(kv_fails($lonely, "SELECT kv_get('anything', 'k')"),
	qr/ERROR:  HV00N: could not reach Kafka at "127.0.0.1:$port" to look up topic "anything"/,
	'so does a read of a topic not attached yet');
$start = time;
$err = kv_fails($lonely, "SET statement_timeout = '1s'; SELECT kv_put('anything', 'k', 'v')");
$elapsed = time - $start;
like($err, qr/ERROR:  57014: canceling statement due to statement timeout/,
	'statement_timeout cuts the attempt short');
cmp_ok($elapsed, '<', 8, 'well before the look-up gives up');

# ===================================================================
# kvstore.brokers is reloaded: a session that met the unreachable
# broker writes through the new one, and new workers use it
# ===================================================================
my $moved = kv_topic('moved');
my $stuck = kv_session($lonely);
like( (kv_query($stuck, "SET statement_timeout = '1s'; SELECT kv_put('$moved', 'k', 'v')"))[1],
	qr/ERROR:  57014: canceling statement due to statement timeout/,
	'a session writes to the unreachable broker in vain');
$lonely->safe_psql('postgres',
	"ALTER SYSTEM SET kvstore.brokers = '$brokers'; SELECT pg_reload_conf()");
my $reloaded = '';
my $deadline = time + $PostgreSQL::Test::Utils::timeout_default;
while (time < $deadline)
{
	$reloaded = kv_query($stuck, "SELECT current_setting('kvstore.brokers')");
	last if $reloaded eq $brokers;
	usleep(100_000);
}
is($reloaded, $brokers, 'the session has loaded the new kvstore.brokers');
is(kv_query($stuck, "RESET statement_timeout; SELECT kv_put('$moved', 'k', 'v'); SELECT kv_get('$moved', 'k')"),
	"0\nv", 'the same session now writes through the new broker and reads its write');
is( $lonely->safe_psql(
		'postgres', "SELECT state, worker_pid IS NOT NULL FROM kv_topics WHERE topic = '$moved'"),
	'ready|t', 'the worker of the topic reads from the new broker');
$stuck->quit;
$lonely->stop;

# ===================================================================
# no background worker slot is free: 53400, and the topic slot taken
# for the attempt is given back
# ===================================================================
# Two worker slots: PostgreSQL's logical replication launcher takes one
my $few = kv_node('few', conf => "max_worker_processes = 2\nkvstore.max_topics = 2");
my $first = kv_topic('first');
is($few->safe_psql('postgres', "SELECT kv_put('$first', 'k', 'v')"), '0',
	'a topic takes the last worker slot');
my $refused = 0;
for my $try (1 .. 3)
{
	my $extra = kv_topic('noworker');
	$refused++
	  if kv_fails($few, "SELECT kv_put('$extra', 'k', 'v')") =~
	  /ERROR:  53400: could not start the worker of topic "$extra"\nDETAIL:  No background worker slot is free\.\nHINT:  Raise max_worker_processes/;
}
is($refused, 3,
	'three more topics are each refused with 53400 for want of a worker, not of a topic slot');
is($few->safe_psql('postgres', 'SELECT string_agg(topic, \',\') FROM kv_topics'), $first,
	'none of them stays attached');
is($few->safe_psql('postgres', "SELECT kv_get('$first', 'k')"), 'v', 'the first topic is served');
$few->stop;

# ===================================================================
# shared memory runs out: the write is refused before it is sent
# (test/t/009_memory.pl has the rest: limits, full topics, reloads)
# ===================================================================
my $small = kv_node('small', conf => "kvstore.shared_memory = '1MB'");
my $big = kv_topic('oom');
$small->safe_psql('postgres', "SELECT kv_put('$big', 'k0', 'v')");
$err = kv_fails($small, qq{
	SELECT kv_put_many('$big', array(SELECT 'k' || g FROM generate_series(1, 40) g),
	                           array(SELECT repeat('x', 100000) FROM generate_series(1, 40)))});
like($err, qr/ERROR:  53200: topic "$big" finds no shared memory for this write\nDETAIL:  The indexes of all topics hold \d+ bytes, and kvstore.shared_memory is 1048576; this write needs \d+ more/,
	'a write that does not fit in memory fails with 53200, naming the setting');
is( $small->safe_psql(
		'postgres', "SELECT state, keys, end_offset FROM kv_topics WHERE topic = '$big'"),
	'ready|1|1',
	'nothing was sent, and the topic keeps what it had');
is($small->safe_psql('postgres', "SELECT kv_get('$big', 'k0')"), 'v', 'its reads still answer');
is($small->safe_psql('postgres', 'SELECT 1'), '1', 'the server is still up');
my $other = kv_topic('fits');
is($small->safe_psql('postgres', "SELECT kv_put('$other', 'k', 'v'); SELECT kv_get('$other', 'k')"),
	"0\nv", 'other topics still work');
$small->stop;

$node->stop;
done_testing();
