# Foreign tables on two servers: the writes of one reach the other, as
# the functions' do; and GRANT on a foreign table is a per-topic
# permission: a role granted one table reaches no other topic through it.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KvstoreTest;

my $a = kv_node('fdw_a');
my $b = kv_node('fdw_b');
my $users = kv_topic('fdw_users');
my $secrets = kv_topic('fdw_secrets');

for my $node ($a, $b)
{
	$node->safe_psql(
		'postgres', qq{
CREATE SERVER kafka FOREIGN DATA WRAPPER kvstore;
CREATE FOREIGN TABLE users (key text COLLATE "C", value text)
    SERVER kafka OPTIONS (topic '$users');
CREATE FOREIGN TABLE people (key text COLLATE "C", name text, age int)
    SERVER kafka OPTIONS (topic '$users', format 'json');
CREATE FOREIGN TABLE secrets (key text COLLATE "C", value text)
    SERVER kafka OPTIONS (topic '$secrets');
CREATE FOREIGN TABLE stamped (key text COLLATE "C", value text,
    ts timestamptz OPTIONS (metadata 'timestamp'))
    SERVER kafka OPTIONS (topic '$users');
ALTER DATABASE postgres SET timezone = 'UTC';
});
}

# ===================================================================
# two servers: DML on one is visible on the other
# ===================================================================
$a->safe_psql('postgres',
	"INSERT INTO users SELECT 'u:' || g, '{\"name\": \"n' || g || '\", \"age\": ' || g || '}' FROM generate_series(1, 1000) g"
);
is($a->safe_psql('postgres', "SELECT count(*) FROM users"),
	'1000', 'A reads its INSERT at once: the statement waited until applied');
ok( $b->poll_query_until('postgres', "SELECT count(*) = 1000 FROM users"),
	'the rows A inserted reach B');
is($b->safe_psql('postgres', "SELECT name, age FROM people WHERE key = 'u:500'"),
	'n500|500', 'B reads them as typed rows too');

$b->safe_psql('postgres', "UPDATE people SET age = age + 1000 WHERE key LIKE 'u:1%'");
is($b->safe_psql('postgres', "SELECT count(*) FROM people WHERE age > 1000"),
	'112', 'B reads its UPDATE at once');
ok($a->poll_query_until('postgres', "SELECT count(*) = 112 FROM people WHERE age > 1000"),
	'the UPDATE on B reaches A');

$a->safe_psql('postgres', "DELETE FROM users WHERE key >= 'u:5' AND key < 'u:6'");
ok($b->poll_query_until('postgres', "SELECT NOT EXISTS (SELECT FROM users WHERE key ^@ 'u:5')"),
	'a DELETE on A reaches B');
$b->safe_psql('postgres', "UPDATE users SET key = 'moved:' || key WHERE key = 'u:42'");
ok( $a->poll_query_until(
		'postgres',
		"SELECT (SELECT count(*) FROM users WHERE key = 'moved:u:42') = 1 AND NOT EXISTS (SELECT FROM users WHERE key = 'u:42')"
	),
	'a key changed on B moves on A');
is($a->safe_psql('postgres', "SELECT kv_sync('$users') > 0; SELECT count(*) FROM users"),
	"t\n889", 'after kv_sync, A holds what B wrote');
$b->safe_psql('postgres', "SELECT kv_sync('$users')");
is( $a->safe_psql('postgres', "SELECT string_agg(key || '=' || value, ',') FROM users"),
	$b->safe_psql('postgres', "SELECT string_agg(key || '=' || value, ',') FROM users"),
	'both servers hold the same rows');

# ===================================================================
# the record timestamp: as its producer set it
# ===================================================================
$a->safe_psql('postgres', "INSERT INTO users VALUES ('now', 'a')");
ok( $b->poll_query_until(
		'postgres',
		"SELECT abs(extract(epoch FROM ts - now())) < 5 FROM stamped WHERE key = 'now'"),
	'B reads the timestamp of the record A inserted: when it was produced');
{
	local $ENV{TXN_TIMESTAMP_MS} = '1234567890123';
	my ($out, $err);
	IPC::Run::run([ kv_txn_producer(), kv_brokers(), $users, 'commit', 'old=b' ],
		'>', \$out, '2>', \$err)
	  or die "txn_producer failed: $err";
}
ok($a->poll_query_until('postgres', "SELECT EXISTS (SELECT FROM stamped WHERE key = 'old')"),
	'a record another producer wrote with its own timestamp reaches A');
is($a->safe_psql('postgres', "SELECT ts FROM stamped WHERE key = 'old'"),
	'2009-02-13 23:31:30.123+00', 'A reads the timestamp the producer set, to the millisecond');
is($a->safe_psql('postgres', "SELECT count(*) FROM stamped WHERE ts IS NULL"),
	'0', 'every record has a timestamp');

$b->safe_psql('postgres', "TRUNCATE users");
ok($a->poll_query_until('postgres', "SELECT count(*) = 0 FROM users"),
	'a TRUNCATE on B empties the table on A');

# A statement that fails part-way leaves nothing, on either server
my ($ret, $stdout, $stderr) = $a->psql('postgres',
	"INSERT INTO users SELECT 'f:' || g, CASE WHEN g = 500 THEN NULL ELSE 'v' END FROM generate_series(1, 1000) g"
);
like($stderr, qr/must not be NULL/, 'an INSERT with a NULL value in its 500th row fails');
$a->safe_psql('postgres', "INSERT INTO users VALUES ('after', 'x')");
ok($b->poll_query_until('postgres', "SELECT EXISTS (SELECT FROM users WHERE key = 'after')"),
	'a later write reaches B');
is($b->safe_psql('postgres', "SELECT count(*) FROM users WHERE key ^@ 'f:'"),
	'0', 'none of the failed statement reached B');

# ===================================================================
# GRANT on a foreign table is the per-topic permission
# ===================================================================
$a->safe_psql(
	'postgres', q{
INSERT INTO secrets VALUES ('s1', 'hidden');
CREATE ROLE reader LOGIN;
GRANT SELECT ON users TO reader;
-- so that only the server's USAGE stands between the reader and a table of its own
GRANT CREATE ON SCHEMA public TO reader;
CREATE ROLE writer LOGIN;
GRANT SELECT, INSERT, UPDATE, DELETE ON users TO writer;
});

# Run SQL as a role expecting an error; returns its stderr (with SQLSTATE)
sub fails
{
	my ($sql, $role) = @_;
	my ($ret, $stdout, $stderr) =
	  $a->psql('postgres', "\\set VERBOSITY verbose\nSET ROLE $role;\n$sql");
	return $ret == 0 ? "no error: $stdout" : $stderr;
}

is($a->safe_psql('postgres', "SET ROLE reader; SELECT value FROM users WHERE key = 'after'"),
	'x', 'the reader reads the table granted');
like(fails("SELECT * FROM secrets", 'reader'),
	qr/ERROR:  42501: permission denied for foreign table secrets/, 'but not another table');
like(fails("INSERT INTO users VALUES ('r', 'x')", 'reader'),
	qr/ERROR:  42501: permission denied for foreign table users/, 'nor writes the table granted');
like(fails("ALTER FOREIGN TABLE users OPTIONS (SET topic '$secrets')", 'reader'),
	qr/ERROR:  42501: must be owner of (foreign )?table users/, 'nor points it at another topic');
like(
	fails("CREATE FOREIGN TABLE mine (key text, value text) SERVER kafka OPTIONS (topic '$secrets')", 'reader'),
	qr/ERROR:  42501: permission denied for foreign server kafka/,
	'nor makes a table of its own on the server');
like(fails("CREATE SERVER own FOREIGN DATA WRAPPER kvstore", 'reader'),
	qr/ERROR:  42501: permission denied for foreign-data wrapper kvstore/,
	'nor a server of its own');
like(fails("SELECT kv_get('$secrets', 's1')", 'reader'),
	qr/ERROR:  42501: permission denied for function kv_get/, 'nor reads the topic through the functions');
like(fails("IMPORT FOREIGN SCHEMA k FROM SERVER kafka INTO public", 'reader'),
	qr/ERROR:  42501: permission denied for foreign server kafka/, 'nor imports the topics');

$a->safe_psql('postgres',
	"SET ROLE writer; INSERT INTO users VALUES ('w', '1'); UPDATE users SET value = '2' WHERE key = 'w'");
is($a->safe_psql('postgres', "SELECT kv_get('$users', 'w')"), '2', 'the writer writes the table granted');
like(fails("DELETE FROM secrets", 'writer'),
	qr/ERROR:  42501: permission denied for foreign table secrets/, 'and no other');
like(fails("TRUNCATE users", 'writer'),
	qr/ERROR:  42501: permission denied for foreign table users/, 'TRUNCATE is its own privilege');
is($a->safe_psql('postgres', "SELECT value FROM secrets"), 'hidden', 'the other topic is untouched');

$a->stop;
$b->stop;
done_testing();
