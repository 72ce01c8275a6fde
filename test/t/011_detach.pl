# kv_detach: a topic's worker empties the index, frees its memory and its
# slot, and exits; the next statement attaches the topic again.  A write
# waiting on the slot when it is freed fails, and never lands in the topic
# that takes the slot next.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KvstoreTest;

my $node = kv_node('detach');
my $topic = kv_topic('detach');
my $other = kv_topic('other');

is( $node->safe_psql(
		'postgres', qq{
SELECT kv_put_many('$topic', array(SELECT 'k' || g FROM generate_series(1, 1000) g),
                   array(SELECT repeat('v', 100) FROM generate_series(1, 1000) g)) >= 0;
SELECT keys FROM kv_topics WHERE topic = '$topic'}),
	"t\n1000", 'a topic of 1000 keys');
my $held = $node->safe_psql('postgres', 'SELECT bytes FROM kv_memory');
cmp_ok($held, '>', 100_000, 'kv_memory counts what its index holds');
my $pid = $node->safe_psql('postgres', "SELECT worker_pid FROM kv_topics WHERE topic = '$topic'");

# ===================================================================
# detach and attach again
# ===================================================================
my $log_offset = -s $node->logfile;
is($node->safe_psql('postgres', "SELECT kv_detach('$topic')"), 't', 'kv_detach detaches the topic');
is( $node->safe_psql(
		'postgres', "SELECT count(*) FROM kv_topics WHERE topic = '$topic'; SELECT bytes < $held - 100000 FROM kv_memory"),
	"0\nt", 'its slot and the memory of its index are free');
ok($node->poll_query_until('postgres', "SELECT NOT EXISTS (SELECT FROM pg_stat_activity WHERE pid = $pid)"),
	'its worker exited');
like(slurp_file($node->logfile, $log_offset), qr/LOG:  kvstore worker of topic "$topic" detached the topic/,
	'and said so');
is($node->safe_psql('postgres', "SELECT kv_detach('$topic')"), 'f', 'a topic not attached: false');
is( $node->safe_psql(
		'postgres', "SELECT kv_get('$topic', 'k500') = repeat('v', 100); SELECT keys FROM kv_topics WHERE topic = '$topic'"),
	"t\n1000", 'the next read attaches it again, replayed from Kafka');

# ===================================================================
# who may detach
# ===================================================================
$node->safe_psql('postgres', 'CREATE ROLE reader; GRANT EXECUTE ON FUNCTION kv_get(text, text) TO reader');
like( kv_fails($node, "SET ROLE reader; SELECT kv_detach('$topic')"),
	qr/ERROR:  42501: permission denied for function kv_detach/,
	'kv_detach is revoked from PUBLIC');
like(kv_fails($node, 'SELECT kv_detach(NULL)'), qr/ERROR:  22004: topic must not be NULL/,
	'a NULL topic is an error');

# ===================================================================
# a write waiting on the slot when it is freed
# ===================================================================
# The worker is stopped, so the write waits to be applied; the slot is
# freed under it
$pid = $node->safe_psql('postgres', "SELECT worker_pid FROM kv_topics WHERE topic = '$topic'");
kill 'STOP', $pid;
my $writer = kv_session($node);
my $writer_pid = kv_query($writer, 'SELECT pg_backend_pid()');
kv_send($writer, "SELECT kv_put('$topic', 'late', 'x')");
ok( $node->poll_query_until(
		'postgres', "SELECT wait_event_type = 'Extension' FROM pg_stat_activity WHERE pid = $writer_pid"),
	'a write waits to be applied');
my $detacher = kv_session($node);
my $detacher_pid = kv_query($detacher, 'SELECT pg_backend_pid()');
kv_send($detacher, "SELECT kv_detach('$topic')");
# It has asked the worker to detach, and waits for it
ok( $node->poll_query_until(
		'postgres', "SELECT wait_event_type = 'Extension' FROM pg_stat_activity WHERE pid = $detacher_pid"),
	'kv_detach waits for the stopped worker');
kill 'CONT', $pid;
is((kv_query($detacher, ''))[0], 't', 'the topic is detached under the waiting write');
my ($out, $err) = kv_query($writer, '');
like($err, qr/ERROR:  55000: topic "$topic" is no longer attached/, 'the waiting write fails');
like($err, qr/was acknowledged by Kafka at offset \d+/, 'saying Kafka stored it');
is( $node->safe_psql(
		'postgres', "SELECT kv_put('$other', 'k', 'v') >= 0; SELECT string_agg(key, ',') FROM kv_scan('$other')"),
	"t\nk", 'another topic takes a slot, and holds only its own key');
is($node->safe_psql('postgres', "SELECT kv_get('$topic', 'late')"),
	'x', 'the write is in its own topic, attached again');

$node->stop;
done_testing();
