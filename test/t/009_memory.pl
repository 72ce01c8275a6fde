# Memory limits: a topic at its own limit refuses new keys before anything
# is sent and keeps serving reads; records others write past the limit stop
# the topic (full), readable and behind, never another topic emptied; a
# reload raises kvstore.topic_memory_limit or kvstore.shared_memory without
# a restart and a stopped topic goes on by itself, also when memory frees
# up elsewhere; lowering a limit below what is held loses nothing.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KvstoreTest;

# Records "key:value" for kcat, values of a given length
sub records
{
	my ($prefix, $from, $to, $len) = @_;
	return join('', map { "$prefix$_:" . ('y' x $len) . "\n" } $from .. $to);
}

# ===================================================================
# a topic at its own limit
# ===================================================================
my $node = kv_node('memory', conf => <<'CONF');
kvstore.shared_memory = '16MB'
kvstore.topic_memory_limit = 'kvtap_capped*=1MB, kvtap_none*=0'
CONF
my $capped = kv_topic('capped');
my $other = kv_topic('none');

is( $node->safe_psql('postgres', "SELECT kv_put('$capped', 'first', 'v') >= 0; SELECT memory_limit, headroom > 0 FROM kv_topics WHERE topic = '$capped'"),
	"t\n1048576|t",
	'kv_topics shows the limit kvstore.topic_memory_limit sets, and the headroom');

# Batches of 500 new keys of ~230 bytes until one is refused
my ($batches, $err) = (0, '');
while ($batches < 20)
{
	my $from = $batches * 500;
	$err = kv_fails($node, qq{
		SELECT kv_put_many('$capped', array(SELECT 'k' || g FROM generate_series($from, $from + 499) g),
		                              array(SELECT repeat('x', 200) FROM generate_series(1, 500)))});
	last unless $err =~ /^no error/;
	$batches++;
}
like($err, qr/ERROR:  53200: topic "$capped" is at its memory limit/,
	'a batch of new keys past the limit is refused with 53200');
cmp_ok($batches, '>=', 3, 'the topic took the batches that fit first');
my ($end, $keys) = split /\|/, $node->safe_psql('postgres',
	"SELECT end_offset, keys FROM kv_topics WHERE topic = '$capped'");
is($keys, 1 + 500 * $batches, 'the refused batch left no key behind');

# Single keys until one is refused: the ones that fit go in
my $singles = 0;
while ($singles < 2000)
{
	$err = kv_fails($node, "SELECT kv_put('$capped', 'single$singles', repeat('x', 500))");
	last unless $err =~ /^no error/;
	$singles++;
}
like($err, qr/ERROR:  53200: topic "$capped" is at its memory limit/,
	'so is a single new key, once the ones that fit are in');
($end, $keys) = split /\|/, $node->safe_psql('postgres',
	"SELECT end_offset, keys FROM kv_topics WHERE topic = '$capped'");
like(kv_fails($node, "SELECT kv_put('$capped', 'one more key', repeat('x', 500))"),
	qr/ERROR:  53200: topic "$capped" is at its memory limit/, 'and the next');
is($node->safe_psql('postgres', "SELECT end_offset FROM kv_topics WHERE topic = '$capped'"),
	$end, 'nothing refused reached Kafka');
is( $node->safe_psql('postgres', "SELECT state, bytes <= memory_limit FROM kv_topics WHERE topic = '$capped'"),
	'ready|t', 'the topic is ready and holds no more than its limit');
is( $node->safe_psql('postgres', "SELECT kv_get('$capped', 'k7') = repeat('x', 200), count(*) FROM kv_scan('$capped')"),
	"t|$keys", 'reads still answer');
is( $node->safe_psql('postgres', "SELECT kv_put('$capped', 'k7', 'same size' || repeat('y', 191)) >= 0; SELECT kv_delete('$capped', 'k8') >= 0; SELECT kv_get('$capped', 'k7') LIKE 'same size%'"),
	"t\nt\nt", 'values that fit and deletes still apply');
ok($node->log_contains(qr/WARNING:  kvstore topic "$capped" holds (9\d|100)% of its memory limit/),
	'the server log warned past 90% of the limit');
is( $node->safe_psql('postgres', "SELECT kv_put('$other', 'k', 'v') >= 0; SELECT kv_get('$other', 'k'); SELECT memory_limit IS NULL FROM kv_topics WHERE topic = '$other'"),
	"t\nv\nt", 'another topic, with no limit of its own, is unaffected');

# ===================================================================
# records written by others past the limit: the topic stops, readable
# ===================================================================
is(kv_kcat_produce($capped, records('other', 1, 2000, 300), '-K:'), '',
	'another producer writes 2000 new keys of 300 bytes');
ok($node->poll_query_until('postgres', "SELECT state = 'full' FROM kv_topics WHERE topic = '$capped'"),
	'the topic stops: full');
ok( $node->poll_query_until('postgres',
		"SELECT lag > 0 AND last_error LIKE 'out of memory at offset %' FROM kv_topics WHERE topic = '$capped'"),
	'kv_topics shows its lag and why it stopped');
is($node->safe_psql('postgres', "SELECT kv_get('$capped', 'k7') LIKE 'same size%'"),
	't', 'the full topic still answers reads from what it holds');
($end) = $node->safe_psql('postgres', "SELECT end_offset FROM kv_topics WHERE topic = '$capped'");
like(kv_fails($node, "SELECT kv_put('$capped', 'k7', 'x')"),
	qr/ERROR:  53200: topic "$capped" is full: writes are refused/,
	'writes to the full topic are refused with 53200');
is($node->safe_psql('postgres', "SELECT end_offset FROM kv_topics WHERE topic = '$capped'"),
	$end, 'before anything is sent');
ok($node->log_contains(qr/WARNING:  kvstore topic "$capped" stopped for memory at offset \d+/),
	'the server log says the topic stopped');
is( $node->safe_psql('postgres', "SELECT kv_put('$other', 'k2', 'v2') >= 0; SELECT kv_get('$other', 'k2'); SELECT state FROM kv_topics WHERE topic = '$other'"),
	"t\nv2\nready", 'the other topic still reads and writes');

# ===================================================================
# a reload raises the limit: the topic goes on without a restart
# ===================================================================
$node->safe_psql('postgres', "ALTER SYSTEM SET kvstore.topic_memory_limit = 'kvtap_capped*=8MB'; SELECT pg_reload_conf()");
ok($node->poll_query_until('postgres', "SELECT state = 'ready' AND lag = 0 FROM kv_topics WHERE topic = '$capped'"),
	'raised by a reload, the topic goes on and catches up');
is( $node->safe_psql('postgres', "SELECT memory_limit, kv_get('$capped', 'other2000') = repeat('y', 300) FROM kv_topics WHERE topic = '$capped'"),
	'8388608|t', 'with the new limit and the records it had stopped at');
is($node->safe_psql('postgres', "SELECT kv_put('$capped', 'after', 'v') >= 0; SELECT kv_get('$capped', 'after')"),
	"t\nv", 'and takes writes again');
like(kv_fails($node, "SET kvstore.topic_memory_limit = 'x=1MB'"), qr/ERROR:  55P02:/,
	'the limit is not a session setting');
like(kv_fails($node, "ALTER SYSTEM SET kvstore.topic_memory_limit = 'kvtap_capped*=lots'"),
	qr/ERROR:  22023: invalid value for parameter "kvstore.topic_memory_limit"/,
	'a limit that does not parse is refused');

# ===================================================================
# kvstore.shared_memory: grown by a reload, lowered without loss
# ===================================================================
my $area = kv_node('area', conf => "kvstore.shared_memory = '2MB'");
my $small = kv_topic('small');
$area->safe_psql('postgres', "SELECT kv_put('$small', 'k', 'v')");
my $big = kv_topic('big');
kv_kafka('topics', $ENV{KVSTORE_KAFKA_DIR}, '--create', '--topic', $big,
	'--partitions', '1', '--config', 'cleanup.policy=compact');
is(kv_kcat_produce($big, records('b', 1, 20000, 200), '-K:'), '',
	'another producer writes 20000 keys of 200 bytes, some 5 MB of index');
like(kv_fails($area, "SELECT kv_get('$big', 'b1')"),
	qr/ERROR:  53200: topic "$big" does not fit in its memory limit\nDETAIL:  It stopped loading at offset \d+ of 20000/,
	'a topic that does not fit stops loading; its reads fail with 53200');
is( $area->safe_psql('postgres', "SELECT state, bootstrap_progress < 1, bytes <= 2097152 FROM kv_topics WHERE topic = '$big'"),
	'full|t|t', 'kv_topics shows it full, part loaded, within kvstore.shared_memory');
is($area->safe_psql('postgres', "SELECT kv_get('$small', 'k'), state FROM kv_topics WHERE topic = '$small'"),
	"v|ready", 'no other topic is emptied for it');

$area->safe_psql('postgres', "ALTER SYSTEM SET kvstore.shared_memory = '64MB'; SELECT pg_reload_conf()");
ok($area->poll_query_until('postgres', "SELECT state = 'ready' FROM kv_topics WHERE topic = '$big'"),
	'raised by a reload, the area grows and the topic finishes loading');
is($area->safe_psql('postgres', "SELECT count(*), sum(length(value)) FROM kv_scan('$big')"),
	'20000|4000000', 'with every key');

$area->safe_psql('postgres', "ALTER SYSTEM SET kvstore.shared_memory = '1MB'; SELECT pg_reload_conf()");
$area->poll_query_until('postgres', "SELECT current_setting('kvstore.shared_memory') = '1MB'");
is($area->safe_psql('postgres', "SELECT count(*), sum(length(value)) FROM kv_scan('$big')"),
	'20000|4000000', 'lowered below what the indexes hold, nothing is lost');
like(kv_fails($area, "SELECT kv_put('$big', 'new key', 'v')"),
	qr/ERROR:  53200: topic "$big" finds no shared memory for this write/,
	'new keys are refused before they are sent');
is($area->safe_psql('postgres', "SELECT kv_put('$big', 'b1', 'shorter') >= 0; SELECT kv_delete('$big', 'b2') >= 0; SELECT kv_get('$big', 'b1')"),
	"t\nt\nshorter", 'values that fit and deletes apply');

# Memory freed elsewhere: a stopped topic goes on by itself
$area->safe_psql('postgres', "ALTER SYSTEM SET kvstore.shared_memory = '8MB'; SELECT pg_reload_conf()");
my $filler = kv_topic('filler');
$area->safe_psql('postgres', "SELECT kv_put('$filler', 'k', 'v')");
is(kv_kcat_produce($filler, records('f', 1, 16000, 200), '-K:'), '',
	'another topic fills what is left');
ok($area->poll_query_until('postgres', "SELECT state = 'full' FROM kv_topics WHERE topic = '$filler'"),
	'and stops at kvstore.shared_memory');
$area->safe_psql('postgres', "SELECT kv_put_many('$big', array(SELECT 'b' || g FROM generate_series(3, 12000) g), array_fill(NULL::text, ARRAY[11998]))");
ok($area->poll_query_until('postgres', "SELECT state = 'ready' AND lag = 0 FROM kv_topics WHERE topic = '$filler'"),
	'deletes in another topic free memory, and the stopped topic goes on by itself');
is($area->safe_psql('postgres', "SELECT count(*) FROM kv_scan('$filler')"), '16001',
	'with every key');

$area->stop;
$node->stop;
done_testing();
