# Two servers on one topic are replicas: each applies the same log.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KvstoreTest;

my $a = kv_node('replica_a');
my $b = kv_node('replica_b');
my $topic = kv_topic('replicas');

$a->safe_psql('postgres', "SELECT kv_put('$topic', 'from-a', '1')");
$b->safe_psql('postgres', "SELECT kv_put('$topic', 'from-b', '2')");

ok($a->poll_query_until('postgres', "SELECT kv_get('$topic', 'from-b') = '2'"),
	'a write on B becomes visible on A');
ok($b->poll_query_until('postgres', "SELECT kv_get('$topic', 'from-a') = '1'"),
	'a write on A becomes visible on B');

$a->safe_psql('postgres', "SELECT kv_delete('$topic', 'from-b')");
ok($b->poll_query_until('postgres', "SELECT NOT kv_exists('$topic', 'from-b')"),
	'a delete on A disappears from B');

# ===================================================================
# kv_sync waits until everything in the topic now is applied here: B's
# worker is held while A writes
# ===================================================================
my $b_worker = $b->safe_psql('postgres', "SELECT worker_pid FROM kv_topics WHERE topic = '$topic'");
kill 'STOP', $b_worker;
my $high = $a->safe_psql('postgres',
	"SELECT kv_put_many('$topic', array(SELECT 'n' || g FROM generate_series(1, 500) g), array(SELECT 'x' FROM generate_series(1, 500)))");
my $end = $a->safe_psql('postgres', "SELECT kv_sync('$topic')");
is($end, $high + 2,
	'on A, kv_sync returns the end of the log: after the batch and its commit marker');

like( kv_fails(
		$b, "SET kvstore.write_timeout = '500ms'; SELECT kv_sync('$topic')"),
	qr/ERROR:  57014: timed out waiting for topic "$topic" to apply offset @{[$end - 1]}/,
	'on B, kv_sync times out under a short kvstore.write_timeout while its worker is held');

my $session = kv_session($b);
my $session_pid = kv_query($session, 'SELECT pg_backend_pid()');
kv_send($session, "SELECT kv_sync('$topic')");
ok( $b->poll_query_until(
		'postgres',
		"SELECT wait_event_type = 'Extension' FROM pg_stat_activity WHERE pid = $session_pid"),
	'on B, kv_sync waits');
is($b->safe_psql('postgres', "SELECT count(*) FROM kv_scan('$topic', 'n')"),
	'0', 'B has not applied the batch meanwhile');
kill 'CONT', $b_worker;
is(kv_query($session, "SELECT count(*) FROM kv_scan('$topic', 'n')"),
	"$end\n500",
	'once the worker goes on, kv_sync returns the same end offset and B sees the batch');
$session->quit;

is($a->safe_psql('postgres', "SELECT string_agg(key || '=' || value, ',') FROM kv_scan('$topic')"),
	$b->safe_psql('postgres', "SELECT string_agg(key || '=' || value, ',') FROM kv_scan('$topic')"),
	'both servers hold the same keys and values');

# ===================================================================
# conflicting writes to the same keys from both servers: both converge
# to the last record of each key in the log
# ===================================================================
my $conflict = kv_topic('conflict');
$a->safe_psql('postgres', "CREATE SEQUENCE version; SELECT kv_put('$conflict', 'warm', 'up')");
$b->safe_psql('postgres', "CREATE SEQUENCE version; SELECT kv_sync('$conflict')");
my %writers;
for my $node ($a, $b)
{
	my $name = $node->name;
	my $script = "$PostgreSQL::Test::Utils::tmp_check/conflict_$name.sql";
	PostgreSQL::Test::Utils::append_to_file($script, qq{\\set k random(1, 20)
\\set r random(1, 10)
SELECT CASE WHEN :r = 1 THEN kv_delete('$conflict', 'key' || :k)
	WHEN :r = 2 THEN kv_put_many('$conflict', ARRAY['key' || :k, 'key' || (:k % 20 + 1)],
		ARRAY['$name:' || nextval('version'), '$name:' || nextval('version')])
	ELSE kv_put('$conflict', 'key' || :k, '$name:' || nextval('version')) END;
});
	my ($out, $err) = ('', '');
	$writers{$name} = {
		out => \$out,
		err => \$err,
		run => IPC::Run::start(
			[ 'pgbench', '--no-vacuum', '--client=3', '--jobs=1', '--time=4',
			  '--file', $script, '--host', $node->host, '--port', $node->port, 'postgres' ],
			'>', \$out, '2>', \$err)
	};
}
for my $name (sort keys %writers)
{
	my $w = $writers{$name};
	ok($w->{run}->finish, "the writers on $name exit with status 0");
	is(${ $w->{err} }, '', "the writers on $name report no error");
	like(${ $w->{out} }, qr/number of failed transactions: 0 /, "no transaction of the writers on $name failed");
	like(${ $w->{out} }, qr/processed: [1-9]\d*/, "the writers on $name wrote");
}

# The last record of each key, as a consumer of the topic reads it
my (%last, %from);
for my $line (split /\n/, kv_kcat_consume($conflict, 'read_committed'))
{
	my ($offset, $key, $value) = $line =~ /^(\d+) ([^=]*)=(.*)$/ or next;
	$last{$key} = $value;
	$from{$1}++ if $value =~ /^(replica_\w+):/;
}
my $expected = join(',', map { "$_=$last{$_}" } grep { $last{$_} ne '' } sort keys %last);
my $state = "SELECT kv_sync('$conflict') > 0; SELECT string_agg(key || '=' || value, ',' ORDER BY key COLLATE \"C\") FROM kv_scan('$conflict')";
is(join(',', sort keys %from), 'replica_a,replica_b', 'the log holds records written by both servers');
is($a->safe_psql('postgres', $state), "t\n$expected", 'A holds the last record of each key');
is($b->safe_psql('postgres', $state), "t\n$expected", 'so does B');

$a->stop;
$b->stop;
done_testing();
