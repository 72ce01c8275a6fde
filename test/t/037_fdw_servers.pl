# Foreign servers with their own connection to Kafka: two servers that
# name two clusters read and write each its own, and the same topic name
# on both is two topics; kv_topics shows the cluster of each.  A user
# mapping's credentials make a connection of their own and never show;
# on a SASL listener, each user connects with the password of its own
# mapping.  kv_sync, kv_checksum and kv_detach given a server act on the
# topic of its connection, and on no other slot of the same name.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KvstoreTest;

my $first = kv_brokers();
my $dir = PostgreSQL::Test::Utils::tempdir('kafka-second');
my $second;
{
	local $ENV{KAFKA_SASL_USERS} = 'alice=alice-secret,bob=bob-secret';
	$second = kv_kafka('start', $dir, 1);
}
my $sasl = kv_kafka('sasl-bootstrap', $dir);
isnt($second, $first, 'a second Kafka cluster runs beside the first');

# The end offset of partition 0 of a topic, as the brokers report it
sub end_offset
{
	my ($brokers, $topic) = @_;
	my ($stdout, $stderr);
	IPC::Run::run([ 'kcat', '-Q', '-b', $brokers, '-t', "$topic:0:-1" ],
		'>', \$stdout, '2>', \$stderr)
	  or die "kcat could not query topic $topic: $stderr";
	$stdout =~ /\[0\] offset (\d+)/ or die "kcat did not give an offset: $stdout";
	return $1;
}

my $node = kv_node('servers', conf => "restart_after_crash = on");
my $t = kv_topic('both');
my $only = kv_topic('second_only');

$node->safe_psql(
	'postgres', qq{
CREATE SERVER one FOREIGN DATA WRAPPER kvstore OPTIONS (brokers '$first');
CREATE SERVER two FOREIGN DATA WRAPPER kvstore
    OPTIONS (brokers '$second', "socket.keepalive.enable" 'true');
CREATE FOREIGN TABLE t_one (key text COLLATE "C", value text) SERVER one OPTIONS (topic '$t');
CREATE FOREIGN TABLE t_two (key text COLLATE "C", value text) SERVER two OPTIONS (topic '$t');
CREATE FOREIGN TABLE only_two (key text COLLATE "C", value text) SERVER two OPTIONS (topic '$only');
});

# ===================================================================
# each server reads and writes its own cluster
# ===================================================================
$node->safe_psql('postgres', "INSERT INTO t_one VALUES ('k', 'one'), ('a', '1')");
$node->safe_psql('postgres', "INSERT INTO t_two VALUES ('k', 'two')");
$node->safe_psql('postgres', "INSERT INTO only_two VALUES ('x', 'y')");
is($node->safe_psql('postgres', "SELECT string_agg(key || '=' || value, ',' ORDER BY key) FROM t_one"),
	'a=1,k=one', 'the table of the first server reads what was written through it');
is($node->safe_psql('postgres', "SELECT string_agg(key || '=' || value, ',' ORDER BY key) FROM t_two"),
	'k=two', 'the table of the second server reads its own cluster: the same topic name is another topic');
is(kv_kcat_consume($t, 'read_committed', $first), "0 k=one\n1 a=1\n",
	'the first cluster holds the first server\'s records');
is(kv_kcat_consume($t, 'read_committed', $second), "0 k=two\n",
	'the second cluster holds the second server\'s');
is(kv_kcat_consume($only, 'read_committed', $second), "0 x=y\n",
	'a topic written through the second server is created on its cluster');
like(kv_fails($node, "SELECT kv_get('$only', 'x')"),
	qr/ERROR:  42704: topic "$only" does not exist/,
	'and the functions, which use kvstore.brokers, do not find it');
is($node->safe_psql('postgres', "SELECT kv_get('$t', 'k')"),
	'one', 'the functions read the first cluster');

is( $node->safe_psql(
		'postgres',
		"SELECT string_agg(brokers, ',' ORDER BY brokers) FROM kv_topics WHERE topic = '$t'"),
	join(',', sort ($first, $first, $second)),
	'kv_topics shows the topic once per connection, with the brokers of each');

# UPDATE and DELETE stay on their cluster
$node->safe_psql('postgres', "UPDATE t_two SET value = 'changed' WHERE key = 'k'");
$node->safe_psql('postgres', "DELETE FROM t_one WHERE key = 'a'");
is( $node->safe_psql(
		'postgres',
		"SELECT (SELECT string_agg(key || '=' || value, ',') FROM t_one), (SELECT string_agg(key || '=' || value, ',') FROM t_two)"),
	'k=one|k=changed', 'UPDATE and DELETE reach only their own cluster');

# IMPORT FOREIGN SCHEMA lists the server's cluster
$node->safe_psql('postgres',
	"CREATE SCHEMA imported; IMPORT FOREIGN SCHEMA kafka LIMIT TO (\"$t\", \"$only\") FROM SERVER two INTO imported");
is( $node->safe_psql(
		'postgres', "SELECT (SELECT value FROM imported.\"$only\" WHERE key = 'x'), (SELECT count(*) FROM imported.\"$t\")"),
	'y|1', 'IMPORT FOREIGN SCHEMA makes tables of the server\'s cluster');

# ===================================================================
# kv_sync, kv_checksum and kv_detach on the topic of a server
# ===================================================================
# The second cluster's copy of the topic gets ten more keys, so that the
# two ends differ
$node->safe_psql('postgres',
	"INSERT INTO t_two SELECT 'n' || g, 'v' FROM generate_series(1, 10) g");
my $end_first = end_offset($first, $t);
my $end_second = end_offset($second, $t);
isnt($end_second, $end_first, 'the topic ends at different offsets on the two clusters');
is($node->safe_psql('postgres', "SELECT kv_sync('$t', 'two')"),
	$end_second, 'kv_sync with a server returns the end offset of that server\'s cluster');
is( $node->safe_psql(
		'postgres', "SELECT kv_sync('$t'), kv_sync('$t', NULL), kv_sync('$t', 'one')"),
	"$end_first|$end_first|$end_first",
	'without a server (or NULL), and with a server of the first cluster, the first cluster\'s');
is( $node->safe_psql(
		'postgres', "SELECT keys, applied_offset FROM kv_checksum('$t', 'two')"),
	"11|$end_second",
	'kv_checksum with a server counts the keys of that connection\'s slot');
is($node->safe_psql('postgres', "SELECT keys FROM kv_checksum('$t')"),
	'1', 'and without one, those of the default connection\'s slot');

# kv_detach with a server frees that connection's slot only
my $slots = "SELECT string_agg(brokers, ',' ORDER BY brokers) FROM kv_topics WHERE topic = '$t'";
my $pids_first = "SELECT string_agg(worker_pid::text, ',' ORDER BY worker_pid) FROM kv_topics WHERE topic = '$t' AND brokers = '$first'";
my $pid_second = "SELECT worker_pid FROM kv_topics WHERE topic = '$t' AND brokers = '$second'";
my $before = $node->safe_psql('postgres', $pids_first);
is($node->safe_psql('postgres', "SELECT kv_detach('$t', 'two')"),
	't', 'kv_detach with a server detaches the topic of its connection');
is($node->safe_psql('postgres', $slots),
	"$first,$first", 'exactly that slot is freed');
is($node->safe_psql('postgres', $pids_first),
	$before, 'the slots of the default connection and of server one keep their workers');
is($node->safe_psql('postgres', "SELECT kv_detach('$t', 'two')"),
	'f', 'a second kv_detach with the server finds nothing to detach');
is($node->safe_psql('postgres', "SELECT value FROM t_two WHERE key = 'n5'"),
	'v', 'the next statement on the server\'s table attaches it again');
is($node->safe_psql('postgres', $slots),
	join(',', sort ($first, $first, $second)), 'in a slot of its own');

# and without a server, the default connection's slot only
$before = $node->safe_psql('postgres', $pid_second);
is($node->safe_psql('postgres', "SELECT kv_detach('$t')"),
	't', 'kv_detach without a server detaches the default connection\'s topic');
is($node->safe_psql('postgres', $slots),
	join(',', sort ($first, $second)), 'leaving the slots of the servers\' connections');
is($node->safe_psql('postgres', $pid_second),
	$before, 'whose workers keep running');
is($node->safe_psql('postgres', "SELECT kv_detach('$only')"),
	'f', 'a topic attached through a server only is not the default connection\'s to detach');
is($node->safe_psql('postgres', "SELECT kv_get('$t', 'k')"),
	'one', 'the next function call attaches the default connection\'s again');

# ===================================================================
# user mappings: credentials of each user, never shown
# ===================================================================
$node->safe_psql(
	'postgres', qq{
SET log_statement = 'none';
CREATE ROLE alice LOGIN;
CREATE ROLE bob LOGIN;
GRANT SELECT, INSERT ON t_two TO alice, bob;
CREATE USER MAPPING FOR alice SERVER two OPTIONS ("sasl.username" 'alice', "sasl.password" 'alice-secret');
CREATE USER MAPPING FOR bob SERVER two OPTIONS ("sasl.username" 'bob', "sasl.password" 'bob-secret');
GRANT pg_read_all_stats TO alice;
GRANT SELECT ON kv_topics TO alice;
GRANT EXECUTE ON FUNCTION kv_topics() TO alice;
});
is($node->safe_psql('postgres', "SET ROLE alice; SELECT value FROM t_two WHERE key = 'k'"),
	'changed', 'a user with a mapping reads the table');
$node->safe_psql('postgres', "SET ROLE bob; INSERT INTO t_two VALUES ('bob', 'b')");
is($node->safe_psql('postgres', "SET ROLE alice; SELECT value FROM t_two WHERE key = 'bob'"),
	'b', 'what another user wrote with other credentials');
is( $node->safe_psql(
		'postgres', "SELECT count(*) FROM kv_topics WHERE topic = '$t' AND brokers = '$second'"),
	'3', 'each user mapping is a connection of its own: a slot per user');

# A function naming a server uses the current user's mapping, as the
# server's tables do; it needs USAGE on the server
$node->safe_psql('postgres',
	"GRANT EXECUTE ON FUNCTION kv_detach(text, name) TO alice, bob; GRANT USAGE ON FOREIGN SERVER two TO alice");
like(
	kv_fails($node, "SET ROLE bob; SELECT kv_detach('$t', 'two')"),
	qr/ERROR:  42501: permission denied for foreign server two/,
	'a user without USAGE on a server cannot name it');
is($node->safe_psql('postgres', "SET ROLE alice; SELECT kv_detach('$t', 'two')"),
	't', 'a user with USAGE detaches the topic of its own mapping');
is( $node->safe_psql(
		'postgres', "SELECT count(*) FROM kv_topics WHERE topic = '$t' AND brokers = '$second'"),
	'2', 'and not the slots of the other users\' mappings');
is($node->safe_psql('postgres', "SET ROLE alice; SELECT value FROM t_two WHERE key = 'bob'"),
	'b', 'the user\'s next read attaches it again');
is( $node->safe_psql(
		'postgres', "SELECT count(*) FROM kv_topics WHERE topic = '$t' AND brokers = '$second'"),
	'3', 'in a slot of its own');

is( $node->safe_psql(
		'postgres', "SET ROLE alice; SELECT count(*) FROM kv_topics WHERE kv_topics::text LIKE '%secret%'"),
	'0', 'kv_topics never shows the credentials');
is( $node->safe_psql(
		'postgres', "SET ROLE bob; SELECT count(*) FROM pg_user_mappings WHERE umoptions::text LIKE '%alice%'"),
	'0', 'nor does pg_user_mappings show one user\'s to another');

# ===================================================================
# a SASL listener: each user authenticates with its own mapping
# ===================================================================
$node->safe_psql(
	'postgres', qq{
SET log_statement = 'none';
CREATE SERVER secure FOREIGN DATA WRAPPER kvstore
    OPTIONS (brokers '$sasl', "security.protocol" 'SASL_PLAINTEXT', "sasl.mechanism" 'PLAIN');
CREATE FOREIGN TABLE t_secure (key text COLLATE "C", value text)
    SERVER secure OPTIONS (topic '$only');
GRANT SELECT ON t_secure TO alice, bob;
CREATE USER MAPPING FOR alice SERVER secure
    OPTIONS ("sasl.username" 'alice', "sasl.password" 'alice-secret');
CREATE USER MAPPING FOR bob SERVER secure
    OPTIONS ("sasl.username" 'bob', "sasl.password" 'wrong-password');
});
is($node->safe_psql('postgres', "SET ROLE alice; SELECT value FROM t_secure WHERE key = 'x'"),
	'y', 'a user authenticates with the password of its mapping');
my $refused = kv_fails($node, "SET ROLE bob; SELECT value FROM t_secure WHERE key = 'x'");
like($refused, qr/ERROR:  HV00N: .*"$only"/, 'a user whose mapping has a wrong password cannot reach Kafka');
unlike($refused, qr/wrong-password/, 'and the error does not show the password');
like(
	kv_fails($node, "SELECT value FROM t_secure WHERE key = 'x'"),
	qr/ERROR:  HV000: could not create a Kafka client for brokers "\Q$sasl\E"\nDETAIL:  sasl.username and sasl.password must be set\nHINT:  Check the options of the foreign server, and the user mapping of the current user./,
	'nor can a user without a mapping, who is told where to look');
is( $node->safe_psql(
		'postgres', "SELECT count(*) FROM kv_topics WHERE topic = '$only' AND brokers = '$sasl'"),
	'1', 'kv_topics shows the topic on the SASL listener once: only the user who connected attached it');

# A session sees a changed mapping at its next statement
my $bob = kv_session($node);
kv_query($bob, 'SET ROLE bob');
my (undef, $bob_err) = kv_query($bob, "SELECT value FROM t_secure WHERE key = 'x'");
like($bob_err, qr/ERROR:  HV00N/, 'a session of the user with the wrong password fails');
$node->safe_psql('postgres',
	"SET log_statement = 'none'; ALTER USER MAPPING FOR bob SERVER secure OPTIONS (SET \"sasl.password\" 'bob-secret')"
);
is(kv_query($bob, "SELECT value FROM t_secure WHERE key = 'x'"),
	'y', 'once the mapping has the right password, the next statement of that session connects');
$bob->quit;
is( $node->safe_psql(
		'postgres', "SELECT count(*) FROM kv_topics WHERE topic = '$only' AND brokers = '$sasl'"),
	'2', 'with a slot of its own');
ok(!$node->log_contains(qr/alice-secret|bob-secret|wrong-password/), 'no password reaches the server log');

# ===================================================================
# a crash restart forgets the connections; the next read attaches again
# ===================================================================
my $pid = $node->safe_psql('postgres',
	"SELECT worker_pid FROM kv_topics WHERE topic = '$only' AND brokers = '$second'");
ok($pid > 0, 'the topic of the second server has a worker');
kill 'KILL', $pid;
ok( $node->poll_query_until(
		'postgres', "SELECT value = 'y' FROM only_two WHERE key = 'x'"),
	'after a crash restart the table of the second server reads its cluster again');
ok( $node->wait_for_log(
		qr/kvstore worker of topic "$only" exits: the connection of its server is not known after a restart/),
	'the worker the postmaster restarted left, not knowing the connection');

$node->stop;
done_testing();
