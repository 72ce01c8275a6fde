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
is( $node->safe_psql(
		'postgres', qq{
	SELECT state, applied_offset, keys, bootstrap_progress
	FROM kv_topics WHERE topic = '$topic'}),
	'ready|101|99|1',
	'kv_topics shows the rebuilt topic');

# kvstore.topics attaches its topics at start-up, before anyone asks
ok( $node->poll_query_until(
		'postgres', "SELECT state = 'ready' FROM kv_topics WHERE topic = '$listed'"),
	'a topic listed in kvstore.topics is attached at start-up');

# ===================================================================
# a worker that dies is restarted and rebuilds the index
# ===================================================================
my $pid = $node->safe_psql('postgres',
	"SELECT worker_pid FROM kv_topics WHERE topic = '$topic'");
ok($pid > 0, 'the topic has a worker');
kill 'TERM', $pid;
is($node->safe_psql('postgres', "SELECT kv_get('$topic', 'k42')"),
	'v42', 'a read right after the worker died waits for the rebuild');
isnt($node->safe_psql('postgres',
	"SELECT worker_pid FROM kv_topics WHERE topic = '$topic'"),
	$pid, 'a new worker serves the topic');
is($node->safe_psql('postgres', "SELECT kv_put('$topic', 'after', 'kill') >= 101"),
	't', 'writes go on after the restart');

# ===================================================================
# a worker that crashes takes the server through crash recovery; the
# topics come back from Kafka
# ===================================================================
$pid = $node->safe_psql('postgres',
	"SELECT worker_pid FROM kv_topics WHERE topic = '$topic'");
kill 'KILL', $pid;
ok( $node->poll_query_until(
		'postgres',
		"SELECT worker_pid <> $pid AND state = 'ready' FROM kv_topics WHERE topic = '$topic'"),
	'after a crash restart a new worker serves the topic');
is($node->safe_psql('postgres', "SELECT kv_get('$topic', 'k42')"),
	'v42', 'after a crash restart the topic is rebuilt');
is($node->safe_psql('postgres', "SELECT kv_get('$topic', 'after')"),
	'kill', 'with the writes made before the crash');

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
