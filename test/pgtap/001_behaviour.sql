-- Behaviour of the kv_* functions, and the SQLSTATE of each refusal
BEGIN;
SELECT plan(27);

SELECT 'kvtap_' || md5(random()::text || clock_timestamp()::text) AS t \gset

-- writes and reads
SELECT is(kv_put(:'t', 'a', '1'), 0::bigint, 'kv_put returns the offset: the first record of a topic is at 0');
SELECT is(kv_get(:'t', 'a'), '1', 'kv_get reads the value just written');
SELECT ok(kv_exists(:'t', 'a'), 'kv_exists sees it');
SELECT is(kv_put(:'t', 'a', '2'), 1::bigint, 'the second record of the topic is at offset 1');
SELECT is(kv_get(:'t', 'a'), '2', 'an overwrite is read back');
SELECT is(kv_delete(:'t', 'a'), 2::bigint, 'kv_delete returns the offset of its tombstone');
SELECT is(kv_get(:'t', 'a'), NULL, 'a deleted key reads as NULL');
SELECT is(kv_get_bytea(:'t', 'b'), NULL::bytea, 'an absent key reads as NULL');
SELECT lives_ok(format($$SELECT kv_put(%L, 'e', '')$$, :'t'), 'an empty value is written');
SELECT is(kv_get(:'t', 'e'), '', 'an empty value reads back empty, not NULL');

-- untyped literals resolve to the text forms
SELECT is(pg_typeof(kv_get(:'t', 'e'))::text, 'text', 'kv_get(unknown) is the text form');
SELECT results_eq(format($$SELECT key FROM kv_scan(%L)$$, :'t'), ARRAY['e'], 'kv_scan(topic) with defaults');
SELECT results_eq(format($$SELECT key FROM kv_scan(%L, 'e')$$, :'t'), ARRAY['e'], 'kv_scan(topic, prefix)');

-- offsets of a batch and of the end of the log ('e' is at 3)
SELECT is(kv_put_many(:'t', ARRAY['m1', 'm2'], ARRAY['x', NULL]), 5::bigint,
          'kv_put_many returns the offset of the last record of its batch');
SELECT is(kv_sync(:'t'), 7::bigint, 'kv_sync returns the end of the log, past the commit marker of the batch');
SELECT results_eq(format($$SELECT applied_offset, end_offset, lag FROM kv_topics WHERE topic = %L$$, :'t'),
                  $$VALUES (7::bigint, 7::bigint, 0::bigint)$$, 'kv_topics shows the same end, all of it applied');

-- refusals
SELECT throws_ok($$SELECT kv_put(NULL, 'k', 'v')$$, '22004', 'topic must not be NULL', 'NULL topic');
SELECT throws_ok(format($$SELECT kv_put(%L, 'k', NULL::text)$$, :'t'), '22004', NULL, 'NULL value');
SELECT throws_ok(format($$SELECT kv_put(%L, '', 'v')$$, :'t'), '22023', NULL, 'empty key');
SELECT throws_ok(format($$SELECT kv_get(%L, NULL::text)$$, :'t'), '22004', NULL, 'NULL key');
SELECT throws_ok(format($$SELECT kv_put(%L, 'k', repeat('x', 1000001))$$, :'t'), '54000', NULL, 'record too large');
SELECT throws_ok(format($$SELECT kv_put_many(%L, ARRAY['a'], ARRAY['1', '2'])$$, :'t'), '2202E', NULL, 'arrays of different lengths');
SELECT throws_ok($$SELECT kv_get('bad name', 'k')$$, '42602', NULL, 'invalid topic name');
SELECT throws_ok(format($$SELECT kv_get(%L, 'k')$$, repeat('x', 128)), '42622', NULL, 'topic name too long');
SELECT throws_ok(format($$SELECT * FROM kv_range(%L, 'a', 'b', -1)$$, :'t'), '22023', NULL, 'negative max_rows');
SELECT lives_ok(format($$SELECT kv_put_bytea(%L, 'bin', '\xff')$$, :'t'), 'a binary value is written');
SELECT throws_ok(format($$SELECT kv_get(%L, 'bin')$$, :'t'), '22021', NULL, 'a binary value is not text');

SELECT * FROM finish();
ROLLBACK;
