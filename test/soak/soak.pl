# Soak: mixed load for SOAK_MINUTES (default 10) against a broker that is
# stopped and started again every two minutes.  Run by test/soak.sh, not
# part of the default suite.
#
# Writers: KvstoreLoad sessions (kv_put, kv_put_many, and the foreign
# table where there is one) overwriting a fixed set of keys, so that the
# data stays the same size and memory should too.  Readers: pgbench
# running kv_get and kv_scan the whole time; reads are served from this
# server, so none may fail while the broker is down.
#
# Reports the errors seen by SQLSTATE, the shared memory (kv_topics.bytes,
# the kvstore segment in pg_shmem_allocations) and the memory of a
# long-lived writer backend (its memory contexts, logged by
# pg_log_backend_memory_contexts, and its resident size) and of the
# worker, before and after.  Asserts that nothing acknowledged is lost,
# no read failed, and writes succeed after every restart.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use KvstoreTest;
use KvstoreLoad;

my $minutes = $ENV{SOAK_MINUTES} || 10;
my $restart_every = 120;

my $dir = PostgreSQL::Test::Utils::tempdir('kafka-soak');
my $brokers = kv_kafka('start', $dir, 1);
my $node = kv_node('soak', brokers => $brokers, conf => "log_statement = none\n");
my $topic = kv_topic('soak');
$node->poll_query_until('postgres',
	"SELECT kv_put_many('$topic', ARRAY['warm'], ARRAY['up']) IS NOT NULL")
  or die 'no transaction could be started';

my $load = KvstoreLoad->new(
	topic => $topic,
	nodes => [$node],
	sessions => 4,
	keys => 500,
	group => 50,
	pad => 100,
	settings => { 'kvstore.write_timeout' => '5s' });

# Readers for the whole soak, plus a margin
my $script_dir = PostgreSQL::Test::Utils::tempdir('soak-scripts');
open my $fh, '>', "$script_dir/get.sql" or die;
print $fh "SELECT kv_get('$topic', '$load->{label}.s' || (random() * 3)::int || '.k' || lpad((1 + (random() * 499)::int)::text, 4, '0'));\n";
close $fh;
open $fh, '>', "$script_dir/scan.sql" or die;
print $fh "SELECT count(*) FROM kv_scan('$topic', '$load->{label}.s1.', 100);\n";
close $fh;
my ($rout, $rerr) = ('', '');
my $readers = IPC::Run::start(
	[
		'pgbench', '--no-vacuum', '--client=2', '--jobs=1',
		'--time=' . ($minutes * 60 + 60),
		'-f', "$script_dir/get.sql\@9", '-f', "$script_dir/scan.sql\@1",
		'-h', $node->host, '-p', $node->port, 'postgres'
	],
	'>', \$rout, '2>', \$rerr);

$load->start;
# Measure once every key exists, and every kind of write has been made
my $all_keys = 4 * 500 + 1;
$load->poll(
	sub {
		$node->safe_psql('postgres', "SELECT keys FROM kv_topics WHERE topic = '$topic'") ==
		  $all_keys;
	},
	undef,
	'every key to be written');
$load->wait_acked(1000);

# Memory of one writer backend: its contexts (logged by the server) and
# resident size; of the worker: resident size
sub memory
{
	my ($when) = @_;
	my $pid = $node->safe_psql('postgres',
		"SELECT pid FROM pg_stat_activity WHERE application_name = 'kvload0'");
	my $worker = $node->safe_psql('postgres',
		"SELECT worker_pid FROM kv_topics WHERE topic = '$topic'");
	my $offset = -s $node->logfile;
	$node->safe_psql('postgres', "SELECT pg_log_backend_memory_contexts($pid)");
	my $contexts;
	$load->poll(
		sub {
			my $log = slurp_file($node->logfile, $offset);
			($contexts) = $log =~ /\[$pid\].*?Grand total: (\d+) bytes/s;
			return defined $contexts;
		},
		60,
		'the memory contexts of the writer in the log');
	my %m = (
		when => $when,
		writer_contexts => $contexts,
		writer_rss_kb => rss($pid),
		worker_rss_kb => rss($worker),
		topic_bytes => $node->safe_psql('postgres', "SELECT bytes FROM kv_topics WHERE topic = '$topic'"),
		topic_keys => $node->safe_psql('postgres', "SELECT keys FROM kv_topics WHERE topic = '$topic'"),
		segment => $node->safe_psql('postgres',
			"SELECT allocated_size FROM pg_shmem_allocations WHERE name = 'kvstore'"),
		writer_pid => $pid);
	diag(sprintf('%s: writer %d: contexts %d bytes, RSS %d kB; worker RSS %d kB; '
			. 'kv_topics: %d keys, %d bytes; kvstore segment %d bytes',
			@m{qw(when writer_pid writer_contexts writer_rss_kb worker_rss_kb topic_keys topic_bytes segment)}));
	return \%m;
}

sub rss
{
	my ($pid) = @_;
	open my $st, '<', "/proc/$pid/status" or return -1;
	my ($kb) = join('', <$st>) =~ /VmRSS:\s+(\d+) kB/;
	return $kb // -1;
}

my $before = memory('before');
my $begin = time;
my $end = $begin + $minutes * 60;
my $cycle = 0;
my @after_restart;
while (time < $end)
{
	# Let the load run until the next restart is due: every two minutes
	# from the start
	my $due = $begin + ($cycle + 1) * $restart_every;
	$due = $end if $due > $end;
	$load->poll(sub { time >= $due }, $restart_every + 10, 'the next restart');
	last if time >= $end;
	$cycle++;
	$load->mark("restart $cycle");
	kv_kafka('stop-node', $dir, 1);
	$load->wait_failed(1, 60);
	kv_kafka('start-node', $dir, 1);
	$load->mark("after restart $cycle");
	my $acked = $load->acked_statements;
	$load->wait_acked(50, 120);
	push @after_restart, $load->acked_statements - $acked;
}
my $after = memory('after');
$load->stop;
$readers->finish;

my $r = $load->verify("soak, $minutes min, $cycle broker restarts");
is(scalar(grep { $_ >= 50 } @after_restart), $cycle, "writes succeeded after each of the $cycle restarts");
my ($reads) = $rout =~ /number of transactions actually processed: (\d+)/;
my ($read_failures) = $rout =~ /number of failed transactions: (\d+)/;
diag(sprintf('reads: %s transactions, %s failed; pgbench exit %d', $reads // '?', $read_failures // '?', $? >> 8));
ok(defined $reads && $reads > 0 && ($read_failures // 0) == 0 && $rerr !~ /ERROR|aborted/,
	'the readers ran, and no read failed')
  or diag($rerr);
diag(sprintf('memory after - before: writer contexts %+d bytes, writer RSS %+d kB, worker RSS %+d kB, '
		. 'kv_topics.bytes %+d, kvstore segment %+d',
		$after->{writer_contexts} - $before->{writer_contexts},
		$after->{writer_rss_kb} - $before->{writer_rss_kb},
		$after->{worker_rss_kb} - $before->{worker_rss_kb},
		$after->{topic_bytes} - $before->{topic_bytes},
		$after->{segment} - $before->{segment}));
is($after->{writer_pid}, $before->{writer_pid}, 'the writer measured is the same backend before and after');

$node->stop;
kv_kafka('kill-node', $dir, 1);
done_testing();
