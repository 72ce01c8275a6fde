# Foreign servers with their own connection to Kafka: two servers that
# name two clusters read and write each its own, and the same topic name
# on both is two topics; kv_topics shows the cluster of each.  A user
# mapping's credentials make a connection of their own and never show;
# on a SASL listener, each user connects with the password of its own
# mapping.
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
