# KvstoreTest: helpers for kvstore's TAP tests.
#
# Servers are PostgreSQL::Test::Cluster nodes with kvstore preloaded and
# pointed at the Kafka of the run (KVSTORE_BROKERS, set by test/check.sh).
# Fault tests start their own three-node Kafka through test/kafka/kafka.sh.

package KvstoreTest;

use strict;
use warnings;

use Exporter 'import';
use File::Basename qw(dirname);
use File::Temp ();
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes ();

our @EXPORT = qw(kv_node kv_topic kv_brokers kv_kafka kv_kcat_produce
  kv_kcat_consume kv_partition kv_in_sync kv_txn_producer kv_session kv_query
  kv_send kv_fails);

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

# The records of a topic as a consumer at an isolation level reads them,
# one "offset key=value" line each ("key=" and no value: a tombstone)
sub kv_kcat_consume
{
	my ($topic, $isolation, $brokers) = @_;
	my ($stdout, $stderr);
	IPC::Run::run(
		[
			'kcat', '-C', '-q', '-b', $brokers // kv_brokers(), '-t', $topic, '-p', '0',
			'-o', 'beginning', '-e', '-X', "isolation.level=$isolation",
			'-f', '%o %k=%s\n'
		],
		'>', \$stdout, '2>', \$stderr) or die "kcat could not read topic $topic: $stderr";
	return $stdout;
}

# Partition 0 of a topic as the brokers describe it: a hash with the
# leader's node id and the ids of the replicas and of the in-sync replicas
sub kv_partition
{
	my ($brokers, $topic) = @_;
	my ($stdout, $stderr);
	IPC::Run::run([ 'kcat', '-L', '-b', $brokers, '-t', $topic, '-m', '5' ],
		'>', \$stdout, '2>', \$stderr);
	return undef
	  unless $stdout =~ /partition 0, leader (-?\d+), replicas: ([\d,]*), isrs: ([\d,]*)/;
	return {
		leader => $1,
		replicas => [ sort split /,/, $2 ],
		isrs => [ sort split /,/, $3 ]
	};
}

# Wait until partition 0 of a topic has a leader and every replica is in
# sync; returns the partition as kv_partition describes it, or undef if
# that does not happen in time
sub kv_in_sync
{
	my ($brokers, $topic) = @_;
	my $deadline = time + $PostgreSQL::Test::Utils::timeout_default;
	while (time < $deadline)
	{
		my $p = kv_partition($brokers, $topic);
		return $p
		  if $p
		  && $p->{leader} > 0
		  && @{ $p->{replicas} }
		  && "@{$p->{isrs}}" eq "@{$p->{replicas}}";
		Time::HiRes::usleep(200_000);
	}
	return undef;
}

# The program test/tools/txn_producer.c, compiled once per test file
my $txn_producer;

sub kv_txn_producer
{
	return $txn_producer if $txn_producer;
	my $source = dirname(__FILE__) . '/../tools/txn_producer.c';
	my $binary = "$PostgreSQL::Test::Utils::tmp_check/txn_producer";
	my ($stdout, $stderr);
	my $cflags = `pkg-config --cflags --libs rdkafka`;
	chomp $cflags;
	IPC::Run::run([ 'cc', '-Wall', '-o', $binary, $source, split(' ', $cflags) ],
		'>', \$stdout, '2>', \$stderr)
	  or BAIL_OUT("could not compile $source: $stderr");
	$txn_producer = $binary;
	return $binary;
}

# A psql session kept open across steps (PostgreSQL::Test::BackgroundPsql),
# with errors reported verbosely (SQLSTATE included) and not stopping it
sub kv_session
{
	my ($node) = @_;
	my $session = $node->background_psql('postgres', on_error_stop => 0);
	kv_query($session, '\set VERBOSITY verbose');
	return $session;
}

# Run SQL in a session and wait for it; returns its output and, in list
# context, its errors too
sub kv_query
{
	my ($session, $sql) = @_;
	$session->{stderr} = '';
	my $out = $session->query($sql);
	my $err = $session->{stderr};
	$session->{stderr} = '';
	return wantarray ? ($out, $err) : $out;
}

# Send SQL to a session without waiting for it: kv_query($session, '')
# collects what it returned
sub kv_send
{
	my ($session, $sql) = @_;
	$session->{stdin} .= "$sql;\n";
	$session->{run}->pump_nb;
	return;
}

# Run SQL expecting an error; returns the error (with its SQLSTATE), or
# "no error: " and the output
sub kv_fails
{
	my ($node, $sql) = @_;
	my ($ret, $stdout, $stderr) =
	  $node->psql('postgres', "\\set VERBOSITY verbose\n$sql");
	return $ret == 0 ? "no error: $stdout" : $stderr;
}

1;
