# PostgreSQL stopped in immediate mode under load, its topic listed in
# kvstore.topics: the server comes back, attaches and rebuilds the topic
# by itself, the sessions connect again and go on writing, and no
# acknowledged write is lost.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KvstoreTest;
use KvstoreLoad;

my $topic = kv_topic('immediate');
my $node = kv_node('immediate', conf => "kvstore.topics = '$topic'");
# The first transaction of a new cluster creates its transaction log: poll
$node->poll_query_until('postgres',
	"SELECT kv_put_many('$topic', ARRAY['warm'], ARRAY['up']) IS NOT NULL")
  or die 'no transaction could be started';

my $load = KvstoreLoad->new(topic => $topic, nodes => [$node], sessions => 4);
$load->start;
$load->wait_acked(100);

for my $round (1 .. 2)
{
	$load->mark("immediate stop $round");
	$node->stop('immediate');
	$node->start;
	ok( $node->poll_query_until(
			'postgres', "SELECT state = 'ready' FROM kv_topics WHERE topic = '$topic'"),
		"round $round: the topic in kvstore.topics is attached again at start-up");
	my $back = $load->acked_statements;
	$load->wait_acked(100);
	cmp_ok($load->acked_statements - $back, '>=', 100,
		"round $round: the sessions connect again and write");
}
$load->stop;

my $r = $load->verify('PostgreSQL immediate stop');
cmp_ok($r->{statements_failed} + $r->{outages}, '>', 0,
	'the sessions met the stops (failed writes or connections)');

$node->stop;
done_testing();
