# KvstoreTest: helpers for kvstore's TAP tests.
#
# Servers are PostgreSQL::Test::Cluster nodes with kvstore preloaded and
# pointed at the Kafka of the run (KVSTORE_BROKERS, set by test/check.sh).
# Fault tests start their own three-node Kafka through test/kafka/kafka.sh.

package KvstoreTest;

use strict;
use warnings;

use Exporter 'import';
use File::Temp ();
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

our @EXPORT = qw(kv_node kv_topic kv_brokers kv_kafka kv_kcat_produce);

my $topic_serial = 0;
my @kafka_dirs;					# clusters this test started

# Stop the clusters a test started, also when it dies
END
{
	my $exit = $?;
	for my $dir (@kafka_dirs)
	{
		IPC::Run::run([ $ENV{KVSTORE_KAFKA_SH}, 'stop', $dir ], '>', \my $out, '2>', \my $err);
	}
	$? = $exit;
}

# The bootstrap servers of the run's Kafka
sub kv_brokers
{
	my $brokers = $ENV{KVSTORE_BROKERS}
	  or BAIL_OUT('KVSTORE_BROKERS is not set: run the tests with test/check.sh');
	return $brokers;
}

# A started node with kvstore; extra lines go to postgresql.conf
sub kv_node
{
	my ($name, %opts) = @_;
	my $brokers = $opts{brokers} // kv_brokers();
	my $preload = exists $opts{preload} ? $opts{preload} : 'kvstore';
	my $node = PostgreSQL::Test::Cluster->new($name);

	$node->init;
	$node->append_conf('postgresql.conf', <<"CONF");
shared_preload_libraries = '$preload'
kvstore.brokers = '$brokers'
kvstore.auto_create_topics = on
max_worker_processes = 32
max_connections = 120
CONF
	$node->append_conf('postgresql.conf', $opts{conf}) if $opts{conf};
	$node->start;
	$node->safe_psql('postgres', 'CREATE EXTENSION kvstore') unless $opts{no_extension};
	return $node;
}

# A topic name no earlier run used
sub kv_topic
{
	my ($label) = @_;
	$topic_serial++;
	return sprintf('kvtap_%s_%d_%d_%d', $label, $$, time, $topic_serial);
}

# Run test/kafka/kafka.sh with arguments; returns its output
sub kv_kafka
{
	my (@args) = @_;
	my $script = $ENV{KVSTORE_KAFKA_SH} or BAIL_OUT('KVSTORE_KAFKA_SH is not set');
	my ($stdout, $stderr);
	my $ok = IPC::Run::run([ $script, @args ], '>', \$stdout, '2>', \$stderr);
	push @kafka_dirs, $args[1] if $args[0] eq 'start';
	die "kafka.sh @args failed: $stderr" unless $ok;
	chomp $stdout;
	return $stdout;
}

# Produce lines to a topic with kcat, as another producer would
sub kv_kcat_produce
{
	my ($topic, $input, @opts) = @_;
	my ($stdout, $stderr);
	IPC::Run::run([ 'kcat', '-P', '-b', kv_brokers(), '-t', $topic, '-p', '0', @opts ],
		'<', \$input, '>', \$stdout, '2>', \$stderr);
	return $stderr;
}

1;
