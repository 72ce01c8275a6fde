--
-- kvstore set-up: the extension installs, and a record written through
-- Kafka from inside PostgreSQL comes back through the broker.
--
CREATE EXTENSION kvstore;
SELECT extname, extversion FROM pg_extension WHERE extname = 'kvstore';
SELECT 'kvsetup_' || md5(random()::text || clock_timestamp()::text) AS t \gset
SELECT kv_put(:'t', 'hello', 'world') AS offset;
SELECT kv_get(:'t', 'hello');
-- the functions are not granted to PUBLIC
SELECT has_function_privilege('public', 'kv_get(text, text)', 'execute') AS public_can_read;
