# The broker stopped and started again under load: while it is down,
# writes fail clearly (57014 when kvstore.write_timeout runs out, HV00x
# from Kafka, each saying whether the write may be stored), within the
# write timeout rather than statement_timeout; once the broker is back,
# writes succeed again with no manual step; no acknowledged write is lost.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KvstoreTest;
use KvstoreLoad;

# Brokers start slowly on a busy machine, and this test starts some twice
$ENV{KAFKA_START_TIMEOUT} //= 180;

# A broker of this test's own, since it is stopped
my $dir = PostgreSQL::Test::Utils::tempdir('kafka-restart');
my $brokers = kv_kafka('start', $dir, 1);
my $node = kv_node('brokerload', brokers => $brokers);
my $topic = kv_topic('brokerload');
# The first transaction of a new cluster creates its transaction log: poll
$node->poll_query_until('postgres',
	"SELECT kv_put_many('$topic', ARRAY['warm'], ARRAY['up']) IS NOT NULL")
  or die 'no transaction could be started';

my $load = KvstoreLoad->new(
	topic => $topic,
	nodes => [$node],
	sessions => 4,
	# statement_timeout is a backstop: a write it cuts short was not
	# bounded by kvstore.write_timeout
	settings => { 'kvstore.write_timeout' => '2s', statement_timeout => '10s' });
$load->start;
$load->wait_acked(100);

$load->mark('broker stopping');
kv_kafka('stop-node', $dir, 1);
$load->mark('broker down');
# Every session meets the outage
$load->wait_failed(8);
my $down = $load->results;
kv_kafka('start-node', $dir, 1);
$load->mark('broker back');
my $back = $load->acked_statements;
$load->wait_acked(100);
$load->stop;

my $r = $load->verify('broker stopped and restarted');
cmp_ok($down->{statements_failed}, '>=', 8, 'writes failed while the broker was down');
cmp_ok($load->acked_statements - $back, '>=', 100,
	'writes succeed again once the broker is back, with no manual step');
my @unclear = grep {
	!($_->[3] eq '57014' && $_->[4] =~ /timed out waiting for Kafka to acknowledge/
		|| $_->[3] eq '57014' && $_->[4] =~ /timed out waiting for topic .* to apply offset \d+/
		&& $_->[4] =~ /Kafka acknowledged the write at offset \d+/
		|| $_->[3] eq 'HV00N'
		|| $_->[3] eq 'HV000' && $_->[4] =~ /Kafka did not store the write/)
} @{ $r->{failures} };
is(scalar(@unclear), 0,
	'each failure is kvstore.write_timeout running out (57014) or a Kafka error (HV00x) saying whether the write may be stored'
) or diag(join("\n", map { "$_->[3] $_->[4]" } @unclear));
my @backstop = grep { $_->[4] =~ /canceling statement due to statement timeout/ } @{ $r->{failures} };
is(scalar(@backstop), 0, 'no write waited until statement_timeout');

$node->stop;
# Killed rather than stopped: a clean shutdown of a cluster is slow
kv_kafka('kill-node', $dir, $_) for 1 .. 1;
done_testing();
