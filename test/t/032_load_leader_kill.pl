# The partition leader killed (SIGKILL) under load, in a three-broker
# cluster with replication factor 3 and min.insync.replicas 2: writes go
# on through the new leader with no manual step, the killed broker comes
# back, and no acknowledged write is lost.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KvstoreTest;
use KvstoreLoad;

# Brokers start slowly on a busy machine, and this test starts some twice
$ENV{KAFKA_START_TIMEOUT} //= 180;

my $dir = PostgreSQL::Test::Utils::tempdir('kafka-leader');
my $brokers = kv_kafka('start', $dir, 3);
my $node = kv_node('leaderload', brokers => $brokers,
	conf => 'kvstore.replication_factor = 3');
my $topic = kv_topic('leaderload');
# The first transaction of a new cluster creates its transaction log: poll
$node->poll_query_until('postgres',
	"SELECT kv_put_many('$topic', ARRAY['warm'], ARRAY['up']) IS NOT NULL")
  or die 'no transaction could be started';

my $partition = kv_partition($brokers, $topic);
is(scalar(@{ $partition->{replicas} }), 3, 'the topic has three replicas');
my $leader = $partition->{leader};

my $load = KvstoreLoad->new(
	topic => $topic,
	nodes => [$node],
	sessions => 4,
	settings => { 'kvstore.write_timeout' => '5s', statement_timeout => '30s' });
$load->start;
$load->wait_acked(100);

$load->mark('leader killed');
kv_kafka('kill-node', $dir, $leader);
my $killed = $load->acked_statements;
$load->wait_acked(100);
cmp_ok($load->acked_statements - $killed, '>=', 100,
	"writes go on after the leader (broker $leader) was killed");
$load->poll(
	sub { my $p = kv_partition($brokers, $topic); $p && $p->{leader} > 0 && $p->{leader} != $leader },
	undef, 'a new leader');
my $new_leader = kv_partition($brokers, $topic)->{leader};
isnt($new_leader, $leader, "broker $new_leader leads the partition now");

$load->mark('broker back');
kv_kafka('start-node', $dir, $leader);
$load->poll(sub { my $p = kv_partition($brokers, $topic); $p && @{ $p->{isrs} } == 3 },
	undef, 'the restarted broker to be in sync again');
$load->wait_acked(50);
$load->stop;

my $r = $load->verify('partition leader killed');
my @unclear = grep {
	!($_->[3] eq '57014' && $_->[4] =~ /timed out waiting for Kafka/
		|| $_->[3] eq '57014' && $_->[4] =~ /timed out waiting for topic .* to apply offset \d+/
		&& $_->[4] =~ /Kafka acknowledged the write at offset \d+/
		|| $_->[3] =~ /^HV00[0N]$/ && $_->[4] =~ /(did not store|may (still )?be stored|may or may not)/
		|| $_->[3] eq 'HV00N')
} @{ $r->{failures} };
is(scalar(@unclear), 0, 'each failure is a timeout or a Kafka error that says whether the write may be stored')
  or diag(join("\n", map { "$_->[3] $_->[4]" } @unclear));

$node->stop;
# Killed rather than stopped: a clean shutdown of a cluster is slow
kv_kafka('kill-node', $dir, $_) for 1 .. 3;
done_testing();
