# Restarts: the index is rebuilt from Kafka and nobody sees it half-built.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use KvstoreTest;

my $topic = kv_topic('restart');
my $listed = kv_topic('listed');
my $node = kv_node('restart',
	conf => "kvstore.topics = '$listed'\nrestart_after_crash = on");

# ===================================================================
# bootstrap: after a restart, every key is there for the first query
# ===================================================================
$node->safe_psql('postgres', qq{
	SELECT kv_put('$topic', 'k' || g, 'v' || g) FROM generate_series(1, 100) g;
	SELECT kv_put('$listed', 'x', 'y');
	SELECT kv_delete('$topic', 'k100');});
$node->restart;
is( $node->safe_psql(
		'postgres', qq{
	SELECT count(*) FILTER (WHERE kv_get('$topic', 'k' || g) = 'v' || g),
	       count(*) FILTER (WHERE kv_get('$topic', 'k' || g) IS NULL)
	FROM generate_series(1, 100) g}),
	'99|1',
	'the first query after a restart reads all 99 live keys and no deleted one');
my $monitor = qq{
	SELECT state, applied_offset, end_offset, lag, keys, records, writes, skipped,
	       bootstrap_progress, bootstrap_duration > '0', last_error IS NULL
	FROM kv_topics WHERE topic = '$topic'};
is($node->safe_psql('postgres', $monitor),
	'ready|101|101|0|99|101|0|0|1|t|t',
	'kv_topics shows the rebuilt topic: 101 records replayed, none written here since the restart');
my $duration = "SELECT bootstrap_duration FROM kv_topics WHERE topic = '$topic'";
is($node->safe_psql('postgres', $duration), $node->safe_psql('postgres', $duration),
	'bootstrap_duration stays what the replay took once it is over');
is( $node->safe_psql(
		'postgres', "SELECT kv_put('$topic', 'k100', 'back'), kv_delete('$topic', 'k99'); $monitor"),
	"101|102\nready|103|103|0|99|103|2|0|1|t|t",
	'two writes through this server count in records and writes');

# kvstore.topics attaches its topics at start-up, before anyone asks
ok( $node->poll_query_until(
		'postgres', "SELECT state = 'ready' FROM kv_topics WHERE topic = '$listed'"),
	'a topic listed in kvstore.topics is attached at start-up');

# ===================================================================
# a worker that dies: a read waits for its successor's rebuild and never
# answers from the index the dead worker left
# ===================================================================
my $postmaster = (split /\n/, PostgreSQL::Test::Utils::slurp_file($node->data_dir . '/postmaster.pid'))[0];
my $reader = kv_session($node);
my $watcher = kv_session($node);
my $reader_pid = kv_query($reader, 'SELECT pg_backend_pid()');
my $pid = $node->safe_psql('postgres',
	"SELECT worker_pid FROM kv_topics WHERE topic = '$topic'");
ok($pid > 0, 'the topic has a worker');

# The log changes while the worker is held, so its index is stale; then
# it exits while the postmaster, held too, cannot start the next one
kill 'STOP', $pid;
is(kv_kcat_produce($topic, "k42:changed\n", '-K:'), '', 'another producer changes k42 meanwhile');
kill 'TERM', $pid;
kill 'STOP', $postmaster;
kill 'CONT', $pid;
my $exited = 0;
my $deadline = time + $PostgreSQL::Test::Utils::timeout_default;
while (time < $deadline)
{
	# a child of a held postmaster stays a zombie
	my $stat = eval { PostgreSQL::Test::Utils::slurp_file("/proc/$pid/stat") } // '';
	$exited = 1, last if $stat eq '' || $stat =~ /^\d+ \(.*\) Z/;
	usleep(10_000);
}
ok($exited, 'the worker exited');
is( kv_query($watcher, "SELECT state, worker_pid IS NULL FROM kv_topics WHERE topic = '$topic'"),
	'starting|t', 'kv_topics shows the topic as starting, with no worker');

like( (kv_query($watcher, "SET kvstore.write_timeout = '200ms'; SELECT kv_get('$topic', 'k42')"))[1],
	qr/ERROR:  57014: topic "$topic" is not ready after 200 ms\nDETAIL:  The topic's worker is starting\./,
	'a read that waits longer than kvstore.write_timeout fails, saying the worker is starting');

kv_send($reader, "SELECT kv_get('$topic', 'k42')");
my $waiting = '';
$deadline = time + $PostgreSQL::Test::Utils::timeout_default;
while (time < $deadline)
{
	$waiting = kv_query($watcher, "SELECT wait_event_type FROM pg_stat_activity WHERE pid = $reader_pid");
	last if $waiting eq 'Extension';
	usleep(10_000);
}
is($waiting, 'Extension', 'a read waits instead of answering from the index the dead worker left');

kill 'CONT', $postmaster;
is(kv_query($reader, ''), 'changed', 'it returns the value of the rebuilt index');
my $new_pid = $node->safe_psql('postgres',
	"SELECT worker_pid FROM kv_topics WHERE topic = '$topic'");
isnt($new_pid, $pid, 'a new worker serves the topic');
is( $node->safe_psql(
		'postgres', "SELECT backend_type FROM pg_stat_activity WHERE pid = $new_pid"),
	'kvstore worker', 'the new worker runs');
$reader->quit;
$watcher->quit;
is($node->safe_psql('postgres', "SELECT kv_put('$topic', 'after', 'kill')"),
	'104', 'writes go on after the restart, at the next offset');

# ===================================================================
# a worker that crashes takes the server through crash recovery: the
# index is gone, and the first read returns what Kafka holds
# ===================================================================
$pid = $node->safe_psql('postgres',
	"SELECT worker_pid FROM kv_topics WHERE topic = '$topic'");
my $checkpointer = $node->safe_psql('postgres',
	"SELECT pid FROM pg_stat_activity WHERE backend_type = 'checkpointer'");
kill 'STOP', $pid;
is(kv_kcat_produce($topic, "k43:crashed\n", '-K:'), '', 'another producer changes k43 meanwhile');
kill 'KILL', $pid;
# The server is back once a new checkpointer runs; nothing reads the topic
ok( $node->poll_query_until(
		'postgres',
		"SELECT pid <> $checkpointer FROM pg_stat_activity WHERE backend_type = 'checkpointer'"),
	'the server went through a crash restart');
is($node->safe_psql('postgres', "SELECT kv_get('$topic', 'k43')"),
	'crashed', 'the first read after the crash returns the record written while the worker was held');
is($node->safe_psql('postgres', "SELECT kv_get('$topic', 'after')"),
	'kill', 'with the writes made before the crash');
$new_pid = $node->safe_psql('postgres',
	"SELECT worker_pid FROM kv_topics WHERE topic = '$topic'");
isnt($new_pid, $pid, 'a new worker serves the topic');
is( $node->safe_psql(
		'postgres', "SELECT backend_type FROM pg_stat_activity WHERE pid = $new_pid"),
	'kvstore worker', 'the new worker runs');

# ===================================================================
# records without a key, written by other producers, are skipped
# ===================================================================
my $err = kv_kcat_produce($topic, ":no key here\nk1:from kcat\n", '-K:');
is($err, '', 'kcat wrote an empty-key record and a keyed one');
$node->safe_psql('postgres', "SELECT kv_sync('$topic')");
is( $node->safe_psql(
		'postgres', qq{
	SELECT kv_get('$topic', 'k1'), skipped, state
	FROM kv_topics WHERE topic = '$topic'}),
	'from kcat|1|ready',
	'the empty-key record is skipped and counted; the worker goes on');

$node->stop;
done_testing();
