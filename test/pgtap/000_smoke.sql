-- The extension is installed and a record makes the round trip
BEGIN;
SELECT plan(4);

SELECT has_extension('kvstore');
SELECT has_function('kv_put', ARRAY['text', 'text', 'text']);
SELECT has_function('kv_get', ARRAY['text', 'text']);

SELECT 'kvtap_smoke_' || md5(random()::text || clock_timestamp()::text) AS t \gset
SELECT kv_put(:'t', 'hello', 'world');
SELECT is(kv_get(:'t', 'hello'), 'world', 'a record comes back through the broker');

SELECT * FROM finish();
ROLLBACK;
