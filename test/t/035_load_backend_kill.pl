# Backends terminated in the middle of kv_put_many batches while other
# sessions write: each batch is aborted on the way out, the other
# writers never wait for the transaction timeout (no write times out
# under a kvstore.write_timeout well below it), and no acknowledged
# write is lost.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KvstoreTest;
use KvstoreLoad;

my $topic = kv_topic('backendload');
my $node = kv_node('backendload');
# The first transaction of a new cluster creates its transaction log: poll
$node->poll_query_until('postgres',
	"SELECT kv_put_many('$topic', ARRAY['warm'], ARRAY['up']) IS NOT NULL")
  or die 'no transaction could be started';

# Large batches, so that a backend spends most of its time inside one
my $load = KvstoreLoad->new(
	topic => $topic,
	nodes => [$node],
	sessions => 4,
	keys => 1000,
	group => 250,
	pad => 100,
	methods => [ 'put_many', 'put_many', 'put' ],
	# Well below the 20 s transaction timeout: a transaction left open
	# would make the other writers time out
	settings => { 'kvstore.write_timeout' => '8s' });
$load->start;
$load->wait_acked(10);

my $kills = 0;
for my $round (1 .. 4)
{
	my $pid;
	$load->poll(
		sub {
			$pid = $node->safe_psql('postgres',
				"SELECT pid FROM pg_stat_activity WHERE application_name LIKE 'kvload%' "
				  . "AND state = 'active' AND query LIKE '%kv_put_many%' LIMIT 1");
			return $pid ne '';
		},
		undef,
		'a backend inside kv_put_many');
	$load->mark("kill $round");
	$kills++ if $node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)") eq 't';
	$load->wait_acked(4);
}
$load->stop;

my $r = $load->verify('backends terminated mid-batch');
# The client sees its backend go: a lost connection (08000 in DBD::Pg)
my @terminated = grep { $_->[4] =~ /terminating connection due to administrator command|server closed the connection/ }
  @{ $r->{failures} };
cmp_ok(scalar(@terminated), '>=', 1, "terminated writes failed as lost connections ($kills backends terminated)");
is(scalar(@{ $r->{failures} }) - scalar(@terminated), 0,
	'no other write failed: none waited for an open transaction')
  or diag(join("\n", $load->failure_kinds($r)));

$node->stop;
done_testing();
