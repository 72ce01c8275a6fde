# Waits on a topic that is not ready: during a bootstrap, reads and writes
# wait and kv_topics shows the replay going on; a write waiting for its
# offset waits through a rebuild of the index.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use KvstoreTest;

my $node = kv_node('waits');
my $topic = kv_topic('waits');
my $deadline;

# ===================================================================
# a bootstrap held half-way
# ===================================================================
# A log long enough that its replay takes a while
my $nkeys = 100000;
is( $node->safe_psql(
		'postgres', qq{
	SELECT kv_put_many('$topic', array(SELECT 'k' || g FROM generate_series(1, $nkeys) g),
		array(SELECT repeat('v', 200) FROM generate_series(1, $nkeys) g));
	SELECT kv_sync('$topic')}),
	"@{[$nkeys - 1]}\n@{[$nkeys + 1]}", 'a topic of 100,000 records');

my $watcher = kv_session($node);
my $writer = kv_session($node);
my $writer_pid = kv_query($writer, 'SELECT pg_backend_pid()');
my $monitor = "SELECT state, worker_pid FROM kv_topics WHERE topic = '$topic'";

# Restart the worker and hold the next one (SIGSTOP) as soon as it shows
# the bootstrap state; if it was done before it could be held, again
my ($held, $old) = (0, 0);
for my $try (1 .. 10)
{
	$old = $node->safe_psql('postgres', "SELECT worker_pid FROM kv_topics WHERE topic = '$topic'");
	kill 'TERM', $old;
	$deadline = time + $PostgreSQL::Test::Utils::timeout_default;
	my ($state, $pid) = ('', '');
	while (time < $deadline)
	{
		($state, $pid) = split /\|/, kv_query($watcher, $monitor);
		last if $state eq 'bootstrap' && $pid ne '' && $pid != $old;
		last if $state eq 'ready' && $pid ne '' && $pid != $old;
	}
	next unless $state eq 'bootstrap';
	kill 'STOP', $pid;
	if (kv_query($watcher, "SELECT state FROM kv_topics WHERE topic = '$topic'") eq 'bootstrap')
	{
		$held = $pid;
		last;
	}
	kill 'CONT', $pid;
}
ok($held, 'a new worker is held during its bootstrap');

my ($before, $progress) = split /\|/, kv_query(
	$watcher, qq{
	SELECT bootstrap_duration,
	       bootstrap_progress >= 0 AND bootstrap_progress < 1
	       AND applied_offset < end_offset AND lag = end_offset - applied_offset
	       AND end_offset = @{[$nkeys + 1]}
	FROM kv_topics WHERE topic = '$topic'});
is($progress, 't',
	'kv_topics shows the replay under way: progress below 1, the end of the log, the lag');
my $after;
$deadline = time + $PostgreSQL::Test::Utils::timeout_default;
while (time < $deadline)
{
	$after = kv_query($watcher, "SELECT bootstrap_duration FROM kv_topics WHERE topic = '$topic'");
	last if $after ne $before;
	usleep(10_000);
}
isnt($after, $before, 'bootstrap_duration grows while the replay goes on');

like( (kv_query($watcher, "SET kvstore.write_timeout = '300ms'; SELECT kv_get('$topic', 'k1')"))[1],
	qr/ERROR:  57014: topic "$topic" is not ready after 300 ms\nDETAIL:  The topic is loading: offset \d+ of @{[$nkeys + 1]}\./,
	'a read that waits longer than kvstore.write_timeout fails, saying how far the replay is');

kv_send($writer, "SELECT kv_put('$topic', 'during', 'bootstrap')");
$deadline = time + $PostgreSQL::Test::Utils::timeout_default;
my $waiting = '';
while (time < $deadline)
{
	$waiting = kv_query($watcher, "SELECT wait_event_type FROM pg_stat_activity WHERE pid = $writer_pid");
	last if $waiting eq 'Extension';
	usleep(10_000);
}
is($waiting, 'Extension', 'a write waits for the bootstrap');

kill 'CONT', $held;
is(kv_query($writer, ''), $nkeys + 1, 'once the replay is over the write returns the next offset');
is( $node->safe_psql(
		'postgres',
		"SELECT kv_get('$topic', 'during'), length(kv_get('$topic', 'k$nkeys')); SELECT state, keys, bootstrap_progress FROM kv_topics WHERE topic = '$topic'"
	),
	"bootstrap|200\nready|@{[$nkeys + 1]}|1",
	'the write and every replayed key are read back');

# ===================================================================
# a write waiting for its offset waits through a rebuild
# ===================================================================
my $pid = $node->safe_psql('postgres', "SELECT worker_pid FROM kv_topics WHERE topic = '$topic'");
kill 'STOP', $pid;
kv_send($writer, "SELECT kv_put('$topic', 'through', 'rebuild')");
$deadline = time + $PostgreSQL::Test::Utils::timeout_default;
$waiting = '';
while (time < $deadline)
{
	$waiting = kv_query($watcher, "SELECT wait_event_type FROM pg_stat_activity WHERE pid = $writer_pid");
	last if $waiting eq 'Extension';
	usleep(10_000);
}
is($waiting, 'Extension', 'a write waits for the held worker to apply it');
# The worker exits as soon as it runs again; the next one rebuilds
kill 'TERM', $pid;
kill 'CONT', $pid;
is(kv_query($writer, ''), $nkeys + 2, 'the write returns its offset once the next worker has rebuilt the index');
my $new = $node->safe_psql('postgres', "SELECT worker_pid FROM kv_topics WHERE topic = '$topic'");
isnt($new, $pid, 'a new worker serves the topic');
is( $node->safe_psql(
		'postgres', "SELECT kv_get('$topic', 'through'), count(*) FROM kv_scan('$topic')"),
	"rebuild|@{[$nkeys + 2]}", 'the write and every other key are there');

$watcher->quit;
$writer->quit;
$node->stop;
done_testing();
