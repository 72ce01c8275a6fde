# Readers cannot keep the worker out: while 16 sessions scan a topic back
# to back, each holding the topic lock shared batch after batch, writes go
# on being applied.  Each write waits for the worker to apply it, within
# kvstore.write_timeout; a worker starved of its exclusive lock would make
# them time out.  The latencies are printed, not judged: timings on a shared
# machine are noise.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use KvstoreTest;

my $node = kv_node('readers');
my $topic = kv_topic('scanned');
my $nkeys = 50000;

$node->safe_psql('postgres', qq{
SELECT kv_put_many('$topic', array(SELECT 'key-' || lpad(g::text, 8, '0') FROM generate_series(1, $nkeys) g),
	array(SELECT 'value-' || lpad(g::text, 8, '0') FROM generate_series(1, $nkeys) g));
});

my $script_dir = PostgreSQL::Test::Utils::tempdir;
open my $fh, '>', "$script_dir/scan.sql" or die;
print $fh "SELECT 1 / (count(*) >= $nkeys)::int FROM kv_scan('$topic');\n";
close $fh;

my ($out, $err) = ('', '');
my $scanners = IPC::Run::start(
	[
		'pgbench', '--no-vacuum', '--client=16', '--jobs=4', '--transactions=40',
		'-f', "$script_dir/scan.sql", '-h', $node->host, '-p', $node->port, 'postgres'
	],
	'>', \$out, '2>', \$err);
ok( $node->poll_query_until('postgres',
		"SELECT count(*) >= 16 FROM pg_stat_activity WHERE query LIKE '%kv_scan%' AND pid <> pg_backend_pid()"),
	'16 sessions scan the topic');

my $writer = kv_session($node);
kv_query($writer, "SET kvstore.write_timeout = '5s'");
my @latencies;
my $failed = 0;
for my $i (1 .. 40)
{
	my $start = time;
	my ($res, $error) = kv_query($writer, "SELECT kv_put('$topic', 'key-00000001', 'write $i') >= 0");
	push @latencies, time - $start;
	$failed++ if $error ne '' || $res ne 't';
}
is($failed, 0, '40 writes were each applied within kvstore.write_timeout while they scanned');
is(kv_query($writer, "SELECT kv_get('$topic', 'key-00000001')"), 'write 40',
	'the last write is visible');
$writer->quit;

$scanners->finish;
unlike($err, qr/division by zero/, 'no scan came back short');
like($out, qr/number of transactions actually processed: 640\/640/,
	'the scanners completed their 640 scans');

my @sorted = sort { $a <=> $b } @latencies;
diag(sprintf('write latency with 16 scanning sessions: median %.0f ms, max %.0f ms',
		$sorted[@sorted / 2] * 1000, $sorted[-1] * 1000));

$node->stop;
done_testing();
