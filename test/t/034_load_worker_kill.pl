# The topic's worker terminated (SIGTERM) and killed (SIGKILL) under load.
# SIGTERM: the worker restarts and rebuilds, writers wait through it and
# none fails.  SIGKILL: the server goes through crash recovery, the
# sessions connect again.  No acknowledged write is lost.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KvstoreTest;
use KvstoreLoad;

my $topic = kv_topic('workerload');
my $node = kv_node('workerload', conf => "restart_after_crash = on");
# The first transaction of a new cluster creates its transaction log: poll
$node->poll_query_until('postgres',
	"SELECT kv_put_many('$topic', ARRAY['warm'], ARRAY['up']) IS NOT NULL")
  or die 'no transaction could be started';

sub worker_pid
{
	return $node->safe_psql('postgres',
		"SELECT worker_pid FROM kv_topics WHERE topic = '$topic' AND state = 'ready'");
}

my $load = KvstoreLoad->new(topic => $topic, nodes => [$node], sessions => 4);
$load->start;
$load->wait_acked(100);

for my $round (1 .. 3)
{
	my $pid = worker_pid();
	$load->mark("worker SIGTERM $round");
	kill 'TERM', $pid;
	$node->poll_query_until('postgres',
		"SELECT state = 'ready' AND worker_pid <> $pid FROM kv_topics WHERE topic = '$topic'")
	  or die "the worker did not come back";
	$load->wait_acked(50);
}
$load->mark('after SIGTERM');
my $after_term = $load->results;
is($after_term->{statements_failed}, 0, 'no write failed while the worker was terminated three times')
  or diag(join("\n", $load->failure_kinds($after_term)));

my $pid = worker_pid();
$load->mark('worker SIGKILL');
kill 'KILL', $pid;
ok($node->poll_query_until('postgres',
	"SELECT state = 'ready' AND worker_pid <> $pid FROM kv_topics WHERE topic = '$topic'"),
	'after SIGKILL the server recovers and the topic is served again');
my $back = $load->acked_statements;
$load->wait_acked(100);
cmp_ok($load->acked_statements - $back, '>=', 100, 'the sessions connect again and write');
$load->stop;

$load->verify('worker SIGTERM x3, SIGKILL x1');

$node->stop;
done_testing();
