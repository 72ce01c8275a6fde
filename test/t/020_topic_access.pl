# Who may touch which topic: reads never create topics, creating is a
# granted act, internal topics and topics outside kvstore.allowed_topics
# are refused, and a full server refuses before it asks Kafka anything.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KvstoreTest;

my $node = kv_node('access', conf => "kvstore.max_topics = 4\n");

# Run SQL as a role expecting an error; returns its stderr (with SQLSTATE)
sub fails
{
	my ($sql, $role) = @_;
	my $set = $role ? "SET ROLE $role;\n" : '';
	my ($ret, $stdout, $stderr) =
	  $node->psql('postgres', "\\set VERBOSITY verbose\n$set$sql");
	return $ret == 0 ? "no error: $stdout" : $stderr;
}

# The topics the broker knows
sub kafka_topics
{
	my ($stdout, $stderr);
	IPC::Run::run([ 'kcat', '-L', '-b', kv_brokers() ], '>', \$stdout, '2>', \$stderr)
	  or die "kcat -L failed: $stderr";
	return { map { /topic "([^"]+)"/ ? ($1 => 1) : () } split /\n/, $stdout };
}

sub workers
{
	return $node->safe_psql('postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'kvstore worker'");
}

$node->safe_psql(
	'postgres', q{
CREATE ROLE reader;
CREATE ROLE writer;
GRANT EXECUTE ON FUNCTION kv_get(text, text), kv_scan(text, text, int), kv_sync(text, name) TO reader;
GRANT EXECUTE ON FUNCTION kv_put(text, text, text), kv_get(text, text) TO writer;
});

# ===================================================================
# reads never create: a missing topic is 42704, and nothing is left
# ===================================================================
my @missing = map { kv_topic("missing$_") } 1 .. 12;
my $workers_before = workers();
my $refused = 0;
for my $name (@missing)
{
	$refused++ if fails("SELECT kv_get('$name', 'k')", 'reader') =~
	  /ERROR:  42704: topic "$name" does not exist/;
	$refused++ if fails("SELECT * FROM kv_scan('$name', 'p')", 'reader') =~ /ERROR:  42704/;
	$refused++ if fails("SELECT kv_sync('$name')", 'reader') =~ /ERROR:  42704/;
}
is($refused, 36, 'kv_get, kv_scan and kv_sync of 12 missing topics are each 42704');
my $known = kafka_topics();
is(scalar(grep { $known->{$_} } @missing), 0, 'reads of 12 missing topics created none in Kafka');
is($node->safe_psql('postgres', 'SELECT count(*) FROM kv_topics'), '0',
	'and attached none here');
is(workers(), $workers_before, 'and started no worker');

# ===================================================================
# creating is a separate, granted act
# ===================================================================
my $made = kv_topic('made');
like(fails("SELECT kv_create_topic('$made')", 'writer'),
	qr/ERROR:  42501: permission denied for function kv_create_topic/,
	'kv_create_topic is not granted to PUBLIC');
$node->safe_psql('postgres', 'GRANT EXECUTE ON FUNCTION kv_create_topic(text) TO writer');
is($node->safe_psql('postgres', "SET ROLE writer; SELECT kv_create_topic('$made'); SELECT kv_create_topic('$made')"),
	"t\nf", 'a granted role creates a topic once; the second call finds it');
ok(kafka_topics()->{$made}, 'the topic exists in Kafka');
is($node->safe_psql('postgres', "SET ROLE reader; SELECT kv_get('$made', 'k') IS NULL"),
	't', 'a created topic reads as empty');

# writes create only while the superuser setting allows it
my $auto = kv_topic('auto');
like(fails("SET kvstore.auto_create_topics = off; SELECT kv_put('$auto', 'k', 'v')"),
	qr/ERROR:  42704: topic "$auto" does not exist/,
	'with kvstore.auto_create_topics off a write to a missing topic is 42704');
ok(!kafka_topics()->{$auto}, 'and creates nothing');
like(fails("SET kvstore.auto_create_topics = on", 'writer'),
	qr/ERROR:  42501: permission denied to set parameter "kvstore.auto_create_topics"/,
	'only a superuser sets kvstore.auto_create_topics');
is($node->safe_psql('postgres', "SET ROLE writer; SELECT kv_put('$auto', 'k', 'v'); SELECT kv_get('$auto', 'k')"),
	"0\nv", 'with the setting on (server-wide here), a granted writer creates by writing');

# ===================================================================
# internal topics and the allow-list
# ===================================================================
for my $internal ('_schemas', '__consumer_offsets', '__transaction_state', 'connect-configs')
{
	like(fails("SELECT kv_get('$internal', 'k')"),
		qr/ERROR:  42501: topic "$internal" is an internal topic/,
		"internal topic $internal is refused, even to a superuser");
}

my $allowed = kv_topic('allowed');
my $outside = 'other_' . kv_topic('x');
$node->safe_psql('postgres', "ALTER SYSTEM SET kvstore.allowed_topics = 'kvtap_allowed*, $made'; SELECT pg_reload_conf()");
$node->poll_query_until('postgres', "SELECT current_setting('kvstore.allowed_topics') <> '*'")
  or die 'the allow-list was not loaded';
like(fails("SELECT kv_put('$outside', 'k', 'v')"),
	qr/ERROR:  42501: topic "$outside" is not in kvstore.allowed_topics/,
	'a topic outside the allow-list is refused');
ok(!kafka_topics()->{$outside}, 'and nothing is created for it');
like(fails("SELECT kv_get('$auto', 'k')", 'writer'),
	qr/ERROR:  42501: topic "$auto" is not in kvstore.allowed_topics/,
	'an attached topic taken off the list is refused too');
is($node->safe_psql('postgres', "SELECT kv_put('$allowed', 'k', 'v'); SELECT kv_get('$made', 'k') IS NULL"),
	"0\nt", 'names and prefixes on the list are served');
like(fails("SET kvstore.allowed_topics = '*'", 'writer'),
	qr/ERROR:  55P02: parameter "kvstore.allowed_topics" cannot be changed now/,
	'the allow-list is set in the server configuration only');
$node->safe_psql('postgres', "ALTER SYSTEM RESET kvstore.allowed_topics; SELECT pg_reload_conf()");
$node->poll_query_until('postgres', "SELECT current_setting('kvstore.allowed_topics') = '*'")
  or die 'the allow-list was not reset';

# ===================================================================
# librdkafka properties for every client, readable by superusers only
# ===================================================================
like(fails("ALTER SYSTEM SET kvstore.kafka_settings = 'acks=1'"),
	qr/ERROR:  22023: invalid value for parameter "kvstore.kafka_settings".*\n.*DETAIL:  kvstore sets acks itself/,
	'kvstore.kafka_settings may not change what kvstore sets for its guarantees');
like(fails("ALTER SYSTEM SET kvstore.kafka_settings = 'no.such.property=1'"),
	qr/DETAIL:  librdkafka refused the value of property no.such.property/,
	'a property librdkafka does not know is refused');
$node->safe_psql('postgres',
	"ALTER SYSTEM SET kvstore.kafka_settings = 'socket.keepalive.enable=true; reconnect.backoff.ms=50'; SELECT pg_reload_conf()");
$node->poll_query_until('postgres', "SELECT current_setting('kvstore.kafka_settings') <> ''")
  or die 'kvstore.kafka_settings was not loaded';
is($node->safe_psql('postgres', "SELECT kv_put('$allowed', 'k2', 'v2'); SELECT kv_get('$allowed', 'k2')"),
	"1\nv2", 'clients made with the new properties write and read');
like(fails("SHOW kvstore.kafka_settings", 'writer'),
	qr/ERROR:  42501: must be superuser or have privileges of pg_read_all_settings to examine "kvstore.kafka_settings"/,
	'a role that is not a superuser cannot read kvstore.kafka_settings');
$node->safe_psql('postgres', "ALTER SYSTEM RESET kvstore.kafka_settings; SELECT pg_reload_conf()");

# ===================================================================
# a full server refuses before it asks Kafka anything
# ===================================================================
# attached now: made, auto, allowed; one slot is left
my $last = kv_topic('last');
$node->safe_psql('postgres', "SELECT kv_put('$last', 'k', 'v')");
my $full = kv_topic('full');
like(fails("SELECT kv_put('$full', 'k', 'v')"),
	qr/ERROR:  53400: cannot attach topic "$full": all 4 topic slots are in use/,
	'with every slot in use a write to a new topic is 53400');
ok(!kafka_topics()->{$full}, 'and the topic was not created');
like(fails("SELECT kv_create_topic('$full')"),
	qr/ERROR:  53400: cannot attach topic "$full"/,
	'kv_create_topic refuses too');
ok(!kafka_topics()->{$full}, 'still not created');

$node->stop;
done_testing();
