# Group commit: atomic writes of several sessions to one topic, queued
# while another session's Kafka transaction is under way, leave together
# in the next transaction.  Each stays atomic and returns its own offset;
# a queued write that is canceled or times out sends nothing; a writer
# that is canceled or terminated before its commit hands the queued
# writes on, so that another session writes them.
#
# The broker of this test is stopped (SIGSTOP) to hold a transaction
# under way while other sessions queue behind it.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes ();
use KvstoreTest;

my $dir = PostgreSQL::Test::Utils::tempdir('kafka-group');
my $brokers = kv_kafka('start', $dir, 1);
my $broker_pid = PostgreSQL::Test::Utils::slurp_file("$dir/node1/pid");
chomp $broker_pid;
my $node = kv_node('group', brokers => $brokers);
my $topic = kv_topic('group');
# The first transaction of a new cluster creates its transaction log: poll
$node->poll_query_until('postgres',
	"SELECT kv_put_many('$topic', ARRAY['warm'], ARRAY['up']) IS NOT NULL")
  or die 'no transaction could be started';

# Sessions whose transactional producers have started, so that with the
# broker stopped they wait in their transaction, not in its start
my @sessions;
for my $i (0 .. 4)
{
	my $s = kv_session($node);
	my $pid = kv_query($s, 'SELECT pg_backend_pid()');
	kv_query($s, "SELECT kv_put_many('$topic', ARRAY['warm$i'], ARRAY['up'])");
	push @sessions, { session => $s, pid => $pid };
}

# A batch of 10 keys "$tag-1" .. "$tag-10", each with the value $tag
sub batch
{
	my ($tag) = @_;
	return "SELECT kv_put_many('$topic', array(SELECT '$tag-' || i FROM generate_series(1, 10) i), "
	  . "array(SELECT '$tag' FROM generate_series(1, 10)))";
}

# Wait until the sessions of the given pids wait in kvstore (queued
# behind the writer: with the broker stopped nothing is applied)
sub wait_queued
{
	my (@pids) = @_;
	my $list = join(',', @pids);
	my $n = @pids;
	return $node->poll_query_until('postgres',
		"SELECT count(*) = $n FROM pg_stat_activity WHERE pid IN ($list) AND wait_event_type = 'Extension'");
}

# Start the batch of session $i as the writer: the broker is stopped, so
# it waits in its transaction; give it time to take the writer's place
sub start_writer
{
	my ($i, $tag) = @_;
	kv_send($sessions[$i]{session}, batch($tag));
	ok( $node->poll_query_until('postgres',
			"SELECT state = 'active' AND query LIKE '%$tag-%' FROM pg_stat_activity WHERE pid = $sessions[$i]{pid}"),
		"$tag: the writer's statement runs");
	Time::HiRes::usleep(300_000);
	return;
}

# The keys of a batch found, and their values, as "count:values"
sub found
{
	my ($tag) = @_;
	return $node->safe_psql('postgres',
		"SELECT count(*) || ':' || coalesce(string_agg(DISTINCT value, ','), '') FROM kv_scan('$topic', '$tag-')");
}

# ===================================================================
# writes queued behind a transaction leave together in the next one
# ===================================================================
kill 'STOP', $broker_pid;
start_writer(0, 'w');
for my $i (1 .. 3)
{
	kv_send($sessions[$i]{session}, batch("q$i"));
}
ok(wait_queued(map { $sessions[$_]{pid} } 1 .. 3), 'three writes queue behind the writer');
kill 'CONT', $broker_pid;

my %offset;
for my $i (0 .. 3)
{
	my $tag = $i ? "q$i" : 'w';
	my ($out, $err) = kv_query($sessions[$i]{session}, '');
	is($err, '', "$tag: the write succeeds");
	$offset{$tag} = $out;
	is(found($tag), "10:$tag", "$tag: its 10 keys are visible with its value");
}
# One transaction holds consecutive offsets, its commit marker the next:
# the three queued batches of 10 records each lie 10 offsets apart
my @queued = sort { $a <=> $b } @offset{qw(q1 q2 q3)};
is($queued[1] - $queued[0], 10, 'the second queued write follows the first in one transaction');
is($queued[2] - $queued[1], 10, 'and so does the third');
cmp_ok($queued[0], '>', $offset{w} + 10, "the writer's own transaction came first, apart");

# ===================================================================
# a queued write that is canceled sends nothing; the others go on
# ===================================================================
kill 'STOP', $broker_pid;
start_writer(0, 'w2');
kv_send($sessions[1]{session}, batch('canceled'));
kv_send($sessions[2]{session}, batch('kept'));
ok(wait_queued($sessions[1]{pid}, $sessions[2]{pid}), 'two writes queue behind the writer');
$node->safe_psql('postgres', "SELECT pg_cancel_backend($sessions[1]{pid})");
my ($out, $err) = kv_query($sessions[1]{session}, '');
like($err, qr/ERROR:  57014: canceling statement due to user request/, 'the queued write is canceled');
like($err, qr/nothing of it was sent/, 'saying that nothing of it was sent');
kill 'CONT', $broker_pid;
for my $i (0, 2)
{
	($out, $err) = kv_query($sessions[$i]{session}, '');
	is($err, '', "session $i: the write succeeds");
}
is(found('w2'),       '10:w2',   "the writer's batch is visible");
is(found('kept'),     '10:kept', 'the other queued batch is visible');
is(found('canceled'), '0:',      'nothing of the canceled batch is');

# ===================================================================
# a queued write that runs out of kvstore.write_timeout sends nothing
# ===================================================================
kill 'STOP', $broker_pid;
start_writer(0, 'w3');
kv_query($sessions[1]{session}, "SET kvstore.write_timeout = '1s'");
($out, $err) = kv_query($sessions[1]{session}, batch('late'));
like($err, qr/ERROR:  57014: timed out waiting to write to topic "$topic"/,
	'a queued write times out at kvstore.write_timeout');
like($err, qr/nothing of it was sent/, 'saying that nothing of it was sent');
kv_query($sessions[1]{session}, 'RESET kvstore.write_timeout');
kill 'CONT', $broker_pid;
($out, $err) = kv_query($sessions[0]{session}, '');
is($err, '', 'the writer succeeds');
is(found('late'), '0:', 'nothing of the timed-out batch is visible');

# ===================================================================
# a writer canceled before its commit hands the queued writes on
# ===================================================================
kill 'STOP', $broker_pid;
start_writer(0, 'gone');
kv_send($sessions[1]{session}, batch('handed1'));
kv_send($sessions[2]{session}, batch('handed2'));
ok(wait_queued($sessions[1]{pid}, $sessions[2]{pid}), 'two writes queue behind the writer');
$node->safe_psql('postgres', "SELECT pg_cancel_backend($sessions[0]{pid})");
($out, $err) = kv_query($sessions[0]{session}, '');
like($err, qr/ERROR:  57014: canceling statement due to user request/, 'the writer is canceled');
kill 'CONT', $broker_pid;
for my $i (1, 2)
{
	($out, $err) = kv_query($sessions[$i]{session}, '');
	is($err, '', "handed$i: the queued write succeeds, written by another session");
	is(found("handed$i"), "10:handed$i", "handed$i: its keys are visible");
}
is(found('gone'), '0:', "nothing of the canceled writer's batch is visible");

# ===================================================================
# a writer terminated before its commit hands the queued writes on
# ===================================================================
kill 'STOP', $broker_pid;
start_writer(3, 'killed');
kv_send($sessions[1]{session}, batch('after1'));
kv_send($sessions[2]{session}, batch('after2'));
ok(wait_queued($sessions[1]{pid}, $sessions[2]{pid}), 'two writes queue behind the writer');
$node->safe_psql('postgres', "SELECT pg_terminate_backend($sessions[3]{pid})");
ok( $node->poll_query_until('postgres',
		"SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $sessions[3]{pid}"),
	'the writer exits');
kill 'CONT', $broker_pid;
for my $i (1, 2)
{
	($out, $err) = kv_query($sessions[$i]{session}, '');
	is($err, '', "after$i: the queued write succeeds, written by another session");
	is(found("after$i"), "10:after$i", "after$i: its keys are visible");
}
is(found('killed'), '0:', "nothing of the terminated writer's batch is visible");

# ===================================================================
# many sessions at once: every batch whole, no key lost
# ===================================================================
my $writers = 8;
my $rounds = 50;
$node->safe_psql(
	'postgres', qq{
CREATE FUNCTION many(t text, w int, n int) RETURNS void LANGUAGE plpgsql AS \$\$
BEGIN
	FOR r IN 1..n LOOP
		PERFORM kv_put_many(t, array(SELECT 'm' || w || '-' || i FROM generate_series(1, 20) i),
			array(SELECT r::text FROM generate_series(1, 20)));
	END LOOP;
END \$\$;
});
my @bg;
for my $w (1 .. $writers)
{
	my $s = kv_session($node);
	kv_send($s, "SELECT many('$topic', $w, $rounds)");
	push @bg, $s;
}
for my $s (@bg)
{
	($out, $err) = kv_query($s, '');
	is($err, '', 'a session of many writes its batches');
	$s->quit;
}
is( $node->safe_psql('postgres',
		"SELECT count(*) || ':' || count(DISTINCT value) || ':' || min(value) FROM kv_scan('$topic', 'm')"),
	($writers * 20) . ":1:$rounds",
	'every key holds the value of its writer\'s last batch');

$_->{session}->quit for @sessions[0 .. 2, 4];
$node->stop;
done_testing();
