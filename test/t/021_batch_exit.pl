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

$node->safe_psql(
	'postgres', qq{
SELECT kv_put('$topic', 'warm', 'up');
CREATE FUNCTION batches(t text) RETURNS void LANGUAGE plpgsql AS \$\$
BEGIN
	FOR i IN 1..100000 LOOP
		PERFORM kv_put_many(t, array(SELECT 'b' || g FROM generate_series(1, 2000) g),
			array(SELECT i || repeat('x', 100) FROM generate_series(1, 2000) g));
	END LOOP;
END \$\$;
});

# The writes the topic has counted so far
sub writes
{
	return $node->safe_psql('postgres', "SELECT writes FROM kv_topics WHERE topic = '$topic'");
}

for my $round (1 .. 3)
{
	my $before = writes();
	my $bg = $node->background_psql('postgres', on_error_stop => 0);
	my $pid = $bg->query_safe('SELECT pg_backend_pid()');
	$bg->query_until(qr/started/, "\\echo started\nSELECT batches('$topic');\n");

	# Terminate it once it has committed a few batches: most of its time
	# is spent inside a transaction
	$node->poll_query_until('postgres',
		"SELECT writes >= $before + 6000 FROM kv_topics WHERE topic = '$topic'")
	  or die 'the batches did not start';
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
	"SELECT writes >= $before + 6000 FROM kv_topics WHERE topic = '$topic'")
  or die 'the batches did not start';
$node->stop('fast');
$node->start;
my ($ret, $stdout, $stderr) = $node->psql('postgres',
	"SET kvstore.write_timeout = '8s'; SELECT kv_put('$topic', 'after-restart', 'v'); SELECT kv_get('$topic', 'after-restart')");
is($ret, 0, 'after a fast shutdown in the middle of a batch, a write succeeds') or diag($stderr);
$bg->{run}->kill_kill;

$node->stop;
done_testing();
