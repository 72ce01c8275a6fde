# A backend that dies inside kv_put_many leaves no Kafka transaction open:
# other writers of the topic go on at once instead of waiting for the
# broker to time the transaction out.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KvstoreTest;

my $node = kv_node('batchexit');
my $topic = kv_topic('killed');
my $batch = 20000;

$node->safe_psql(
	'postgres', qq{
SELECT kv_put('$topic', 'warm', 'up');
CREATE FUNCTION batches(t text) RETURNS void LANGUAGE plpgsql AS \$\$
BEGIN
	FOR i IN 1..100000 LOOP
		PERFORM kv_put_many(t, array(SELECT 'b' || g FROM generate_series(1, $batch) g),
			array(SELECT i || repeat('x', 100) FROM generate_series(1, $batch) g));
	END LOOP;
END \$\$;
});

# The writes the topic has counted so far
sub writes
{
	return $node->safe_psql('postgres', "SELECT writes FROM kv_topics WHERE topic = '$topic'");
}

# Whether a transaction is open on the topic: its last record, read
# uncommitted, lies at or past the last stable offset
sub transaction_open
{
	my ($last, $stable, $err) = ('', '', '');
	IPC::Run::run(
		[
			'kcat', '-C', '-b', kv_brokers(), '-t', $topic, '-p', '0', '-o', '-1', '-c', '1',
			'-e', '-q', '-X', 'isolation.level=read_uncommitted', '-f', '%o\n'
		],
		'>', \$last, '2>', \$err);
	IPC::Run::run([ 'kcat', '-Q', '-b', kv_brokers(), '-t', "$topic:0:-1" ],
		'>', \$stable, '2>', \$err);
	return 0 unless $last =~ /^(\d+)/;
	$last = $1;
	return 0 unless $stable =~ /offset (\d+)/;
	return $last >= $1;
}

for my $round (1 .. 3)
{
	my $before = writes();
	my $bg = $node->background_psql('postgres', on_error_stop => 0);
	my $pid = $bg->query_safe('SELECT pg_backend_pid()');
	$bg->query_until(qr/started/, "\\echo started\nSELECT batches('$topic');\n");

	# Terminate it while one of its transactions is open in Kafka
	$node->poll_query_until('postgres',
		"SELECT writes >= $before + 2 * $batch FROM kv_topics WHERE topic = '$topic'")
	  or die 'the batches did not start';
	my $tries = 0;
	$tries++ until transaction_open() || $tries > 200;
	ok($tries <= 200, "round $round: a transaction of the batches is open");
	$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
	$node->poll_query_until('postgres',
		"SELECT NOT EXISTS (SELECT FROM pg_stat_activity WHERE pid = $pid)")
	  or die 'the backend did not exit';
	$bg->{run}->finish;

	# Well below the transaction timeout: an open transaction would hold
	# the last stable offset, and this write would time out
	my ($ret, $stdout, $stderr) = $node->psql('postgres',
		"SET kvstore.write_timeout = '8s'; SELECT kv_put('$topic', 'after$round', 'v$round'); SELECT kv_get('$topic', 'after$round')"
	);
	is($ret, 0, "round $round: a write right after the kill succeeds") or diag($stderr);
	like($stdout, qr/\nv$round$/, "round $round: and is visible");
}

# A batch whose session exits in the middle of it, at the client's end
my $bg = $node->background_psql('postgres', on_error_stop => 0);
my $before = writes();
$bg->query_until(qr/started/, "\\echo started\nSELECT batches('$topic');\n");
$node->poll_query_until('postgres',
	"SELECT writes >= $before + 2 * $batch FROM kv_topics WHERE topic = '$topic'")
  or die 'the batches did not start';
my $tries = 0;
$tries++ until transaction_open() || $tries > 200;
ok($tries <= 200, 'a transaction of the batches is open at shutdown');
$node->stop('fast');
$node->start;
# The restarted server first replays the topic (well over a million records)
is($node->safe_psql('postgres', "SET kvstore.write_timeout = 0; SELECT kv_get('$topic', 'warm')"),
	'up', 'after the restart the topic is loaded again');
my ($ret, $stdout, $stderr) = $node->psql('postgres',
	"SET kvstore.write_timeout = '8s'; SELECT kv_put('$topic', 'after-restart', 'v'); SELECT kv_get('$topic', 'after-restart')");
is($ret, 0, 'after a fast shutdown in the middle of a batch, a write succeeds') or diag($stderr);
$bg->{run}->kill_kill;

$node->stop;
done_testing();
