--
-- kvstore functions: writes, reads, scans and their edge cases
--
-- Each run uses fresh topic names, so that what earlier runs wrote to the
-- broker does not show up here.
SELECT 'kvtest_' || md5(random()::text || clock_timestamp()::text) AS t \gset

-- ===================================================================
-- put, get, delete, exists
-- ===================================================================
SELECT kv_put(:'t', 'user:1', 'alice') >= 0 AS put;
SELECT kv_get(:'t', 'user:1');
SELECT kv_exists(:'t', 'user:1'), kv_exists(:'t', 'user:404');
SELECT kv_get(:'t', 'user:404') IS NULL AS absent;
SELECT kv_put(:'t', 'user:1', 'alicia') AS first_offset \gset
SELECT kv_put(:'t', 'user:2', 'bob') > :first_offset AS later_offset_is_higher;
SELECT kv_get(:'t', 'user:1');
SELECT kv_delete(:'t', 'user:1') >= 0 AS deleted;
SELECT kv_get(:'t', 'user:1') IS NULL AS gone, kv_exists(:'t', 'user:1');
-- deleting an absent key writes a tombstone all the same
SELECT kv_delete(:'t', 'never-there') >= 0 AS deleted;

-- an empty value is a real value
SELECT kv_put(:'t', 'empty', '') >= 0 AS put;
SELECT kv_get(:'t', 'empty') = '' AS is_empty, kv_exists(:'t', 'empty');
SELECT kv_get(:'t', 'empty'::bytea) = '\x'::bytea AS is_empty_bytea;

-- binary keys and values with NUL bytes
SELECT kv_put(:'t', '\x00ff00'::bytea, '\x0000deadbeef00'::bytea) >= 0 AS put;
SELECT kv_get(:'t', '\x00ff00'::bytea);
SELECT kv_get(:'t', '\x00ff'::bytea) IS NULL AS prefix_is_not_a_match;

-- ===================================================================
-- scans: unsigned byte order, prefixes, limits
-- ===================================================================
SELECT 'kvscan_' || md5(random()::text || clock_timestamp()::text) AS s \gset
SELECT kv_put_many(:'s',
    ARRAY['user:1', 'user:10', 'user:2', 'user', 'usex', 'a', 'z'],
    ARRAY['one', 'ten', 'two', 'bare', 'x', 'first', 'last']) >= 0 AS put_many;
SELECT * FROM kv_scan(:'s');
SELECT * FROM kv_scan(:'s', 'user:');
SELECT * FROM kv_scan(:'s', 'user');
SELECT * FROM kv_scan(:'s', 'user:', 2);
SELECT * FROM kv_scan(:'s', 'nothing');
SELECT count(*) FROM kv_scan(:'s', '', 0);
SELECT * FROM kv_range(:'s', 'user', 'user:2');
SELECT * FROM kv_range(:'s', 'user:2', NULL);
SELECT * FROM kv_range(:'s', NULL, 'user');
SELECT * FROM kv_range(:'s', NULL, NULL, 3);
SELECT * FROM kv_range(:'s', 'z', 'a');

-- bytea prefixes: '\x61ff' matches '\x61ff00' and '\x61ffff', not '\x62'
SELECT 'kvbin_' || md5(random()::text || clock_timestamp()::text) AS b \gset
SELECT kv_put_many(:'b',
    ARRAY['\x61'::bytea, '\x61ff', '\x61ff00', '\x61ffff', '\x62', '\xffff', '\xffff00', '\xffffff01'],
    ARRAY['\x01'::bytea, '\x02', '\x03', '\x04', '\x05', '\x06', '\x07', '\x08']) >= 0 AS put_many;
SELECT * FROM kv_scan(:'b', '\x61ff'::bytea);
SELECT * FROM kv_scan(:'b', '\xffff'::bytea);
SELECT * FROM kv_range(:'b', '\x61ff00'::bytea, '\x62'::bytea);

-- ===================================================================
-- kv_put_many: deletes and puts of the same keys, in order
-- ===================================================================
SELECT kv_put_many(:'t', ARRAY['m1', 'm2', 'm1', 'm3', 'm2'],
                         ARRAY['a', 'b', NULL, 'c', 'b2']) >= 0 AS put_many;
SELECT * FROM kv_scan(:'t', 'm');
SELECT kv_put_many(:'t', '{}'::text[], '{}'::text[]) IS NULL AS empty_batch;

-- ===================================================================
-- kv_sync and kv_topics
-- ===================================================================
SELECT kv_sync(:'t') > 0 AS synced;
SELECT state, keys, lag, bootstrap_progress, last_error
FROM kv_topics WHERE topic = :'t';
