# The test bed works: kvstore loads, a record written through Kafka from
# inside PostgreSQL comes back through the broker, the postmaster paid
# librdkafka's start-up and kept no thread of it, and a server that did not
# preload kvstore says how to fix it.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KvstoreTest;

my $node = kv_node('smoke');
my $topic = kv_topic('smoke');

is($node->safe_psql('postgres', "SELECT kv_put('$topic', 'hello', 'world')"),
	'0', 'the first record of a new topic is at offset 0');
is($node->safe_psql('postgres', "SELECT kv_get('$topic', 'hello')"),
	'world', 'the record comes back through the broker');

# librdkafka's once-per-process start-up (OpenSSL, the SASL plugins) is
# paid in the postmaster, whose children inherit it; the client it made
# for that is gone, threads included
my $postmaster = (split /\n/, slurp_file($node->data_dir . '/postmaster.pid'))[0];
my @threads = glob("/proc/$postmaster/task/*");
is(scalar(@threads), 1, 'the postmaster runs a single thread');
like(slurp_file("/proc/$postmaster/maps"), qr{/sasl2/},
	'the postmaster loaded the SASL plugins, so its children need not');

# librdkafka before 2.4.0 spins in its main thread before each timer: the
# transactional producer's main thread runs at a lower priority there
my ($rdkafka) = `pkg-config --modversion rdkafka` =~ /^(\d+\.\d+)/;
is( $node->safe_psql(
		'postgres', qq{
	SELECT kv_put_many('$topic', array['batch'], array['one']) IS NOT NULL;
	SELECT count(*) FROM pg_ls_dir('/proc/self/task') AS t(tid)
	WHERE pg_read_file('/proc/self/task/' || tid || '/comm') = E'rdk:main\n'
	  AND split_part(split_part(pg_read_file('/proc/self/task/' || tid || '/stat'), ') ', 2), ' ', 17)::int >= 10}),
	"t\n" . ($rdkafka < 2.4 ? 1 : 0),
	'the transactional producer\'s main thread runs at a lower priority before librdkafka 2.4');

my $plain = kv_node('plain', preload => '', no_extension => 1);
my ($ret, $stdout, $stderr) = $plain->psql('postgres',
	'\set VERBOSITY verbose' . "\nCREATE EXTENSION kvstore");
isnt($ret, 0, 'CREATE EXTENSION fails without shared_preload_libraries');
like($stderr, qr/55000: kvstore must be loaded via shared_preload_libraries/,
	'the error says what is missing, with SQLSTATE 55000');
like($stderr, qr/HINT:  Add kvstore to shared_preload_libraries/,
	'the hint says how to fix it');

$node->stop;
$plain->stop;
done_testing();
