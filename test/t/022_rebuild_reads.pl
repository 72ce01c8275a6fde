# Readers never get a false answer while the index is rebuilt: a look-up
# of a key that exists never returns NULL, and a scan returns every key or
# fails with 40001 (to be retried), never a truncated result.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KvstoreTest;

my $node = kv_node('rebuild');
my $topic = kv_topic('rebuild');
my $nkeys = 20000;

$node->safe_psql('postgres', qq{
SELECT kv_put_many('$topic', array(SELECT 'k' || g FROM generate_series(1, $nkeys) g),
	array(SELECT 'v' || g FROM generate_series(1, $nkeys) g));
});

# Readers that fail loudly (division by zero) on a wrong answer
my $script_dir = PostgreSQL::Test::Utils::tempdir;
open my $fh, '>', "$script_dir/get.sql" or die;
print $fh "SELECT 1 / (kv_get('$topic', 'k' || (1 + floor(random() * $nkeys))::int) IS NOT NULL)::int;\n";
close $fh;
open $fh, '>', "$script_dir/scan.sql" or die;
print $fh "SELECT 1 / (count(*) = $nkeys)::int FROM kv_scan('$topic', 'k');\n";
close $fh;

my ($out, $err) = ('', '');
my $readers = IPC::Run::start(
	[
		'pgbench', '--no-vacuum', '--client=4', '--jobs=2', '--time=12',
		'--max-tries=1000', '--failures-detailed',
		'-f', "$script_dir/get.sql\@9", '-f', "$script_dir/scan.sql\@1",
		'-h', $node->host, '-p', $node->port, 'postgres'
	],
	'>', \$out, '2>', \$err);

# Restart the worker three times while they read: each restart empties the
# index and loads it again
for my $round (1 .. 3)
{
	my $pid = $node->safe_psql('postgres', "SELECT worker_pid FROM kv_topics WHERE topic = '$topic'");
	kill 'TERM', $pid;
	$node->poll_query_until('postgres',
		"SELECT state = 'ready' AND worker_pid <> $pid FROM kv_topics WHERE topic = '$topic'")
	  or die "the worker did not come back in round $round";
}
$readers->finish;
my $status = $? >> 8;

is($status, 0, 'the readers ran to the end') or diag("$out\n$err");
unlike($err, qr/division by zero/, 'no look-up returned NULL and no scan was short');
like($out, qr/number of failed transactions: 0 /, 'no reader failed');
cmp_ok($node->safe_psql('postgres', "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'kvstore worker'"),
	'>=', 1, 'a worker serves the topic');

$node->stop;
done_testing();
