# Two, then three servers writing one topic concurrently: the third
# attaches while the others write, and joins in; every server holds every
# acknowledged write, and all three hold the same data (kv_checksum).
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KvstoreTest;
use KvstoreLoad;

my $topic = kv_topic('replicaload');
my $a = kv_node('replica_load_a');
my $b = kv_node('replica_load_b');
# The first transaction of a new cluster creates its transaction log: poll
$a->poll_query_until('postgres',
	"SELECT kv_put_many('$topic', ARRAY['warm'], ARRAY['up']) IS NOT NULL")
  or die 'no transaction could be started';

my $two = KvstoreLoad->new(topic => $topic, nodes => [ $a, $b ], sessions => 4);
$two->start;
$two->wait_acked(200);

# A third server attaches the topic while the two write, then writes too
my $c = kv_node('replica_load_c');
my $three = KvstoreLoad->new(topic => $topic, nodes => [ $a, $b, $c ], sessions => 3);
$three->start;
$three->wait_acked(500);
$two->stop;
$three->stop;

$two->verify('two servers writing, checked on three', servers => [ $a, $b, $c ]);
$three->verify('three servers writing');

$_->stop for ($a, $b, $c);
done_testing();
