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
SELECT kv_get_bytea(:'t', 'empty') = '\x'::bytea AS is_empty_bytea;

-- binary keys and values with NUL bytes
SELECT kv_put_bytea(:'t', '\x00ff00', '\x0000deadbeef00') >= 0 AS put;
SELECT kv_get_bytea(:'t', '\x00ff00');
SELECT kv_get_bytea(:'t', '\x00ff') IS NULL AS prefix_is_not_a_match;

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
SELECT kv_put_many_bytea(:'b',
    ARRAY['\x61'::bytea, '\x61ff', '\x61ff00', '\x61ffff', '\x62', '\xffff', '\xffff00', '\xffffff01'],
    ARRAY['\x01'::bytea, '\x02', '\x03', '\x04', '\x05', '\x06', '\x07', '\x08']) >= 0 AS put_many;
SELECT * FROM kv_scan_bytea(:'b', '\x61ff');
SELECT * FROM kv_scan_bytea(:'b', '\xffff');
SELECT * FROM kv_range_bytea(:'b', '\x61ff00', '\x62');

-- ===================================================================
-- kv_put_many: deletes and puts of the same keys, in order
-- ===================================================================
SELECT kv_put_many(:'t', ARRAY['m1', 'm2', 'm1', 'm3', 'm2'],
                         ARRAY['a', 'b', NULL, 'c', 'b2']) >= 0 AS put_many;
SELECT * FROM kv_scan(:'t', 'm');
SELECT kv_put_many(:'t', '{}'::text[], '{}'::text[]) IS NULL AS empty_batch;

-- ===================================================================
-- untyped arguments, as drivers send them: every name has one form, so
-- PostgreSQL never has to choose between text and bytea
-- ===================================================================
SELECT kv_put_many(:'t', '{d1,d2}', '{1,2}') >= 0 AS put_many;
SELECT * FROM kv_scan(:'t', 'd');
PREPARE put AS SELECT kv_put($1, $2, $3) >= 0;
PREPARE put_bytea AS SELECT kv_put_bytea($1, $2, $3) >= 0;
PREPARE del AS SELECT kv_delete($1, $2) >= 0;
PREPARE del_bytea AS SELECT kv_delete_bytea($1, $2) >= 0;
PREPARE put_many AS SELECT kv_put_many($1, $2, $3) >= 0;
PREPARE put_many_bytea AS SELECT kv_put_many_bytea($1, $2, $3) >= 0;
PREPARE get AS SELECT kv_get($1, $2);
PREPARE get_bytea AS SELECT kv_get_bytea($1, $2);
PREPARE exists AS SELECT kv_exists($1, $2);
PREPARE exists_bytea AS SELECT kv_exists_bytea($1, $2);
PREPARE scan AS SELECT * FROM kv_scan($1, $2, $3);
PREPARE scan_bytea AS SELECT * FROM kv_scan_bytea($1, $2, $3);
PREPARE range AS SELECT * FROM kv_range($1, $2, $3, $4);
PREPARE range_bytea AS SELECT * FROM kv_range_bytea($1, $2, $3, $4);
PREPARE sync AS SELECT kv_sync($1) > 0;
SELECT name, parameter_types FROM pg_prepared_statements ORDER BY name;
EXECUTE put_bytea(:'t', '\x0000', '\x00ff');
EXECUTE get_bytea(:'t', '\x0000');
EXECUTE put_many(:'t', '{d3,d4}', '{3,NULL}');
EXECUTE put_many_bytea(:'t', '{"\\x0001","\\x0002"}', '{"\\x01",NULL}');
EXECUTE scan(:'t', 'd', NULL);
EXECUTE scan_bytea(:'t', '\x00', 10);
EXECUTE range(:'t', 'd2', 'd4', NULL);
EXECUTE range_bytea(:'t', '\x0001', NULL, 1);
EXECUTE del_bytea(:'t', '\x0000');
EXECUTE exists_bytea(:'t', '\x0000');
DEALLOCATE ALL;

-- ===================================================================
-- offsets: a write returns its record's offset, kv_put_many the highest
-- of its batch (its commit marker takes the next offset), kv_sync the
-- end of the log
-- ===================================================================
SELECT 'kvoff_' || md5(random()::text || clock_timestamp()::text) AS o \gset
SELECT kv_put(:'o', 'a', '1') AS put;
SELECT kv_put(:'o', 'a', '2') AS put_again;
SELECT kv_delete(:'o', 'a') AS delete;
SELECT kv_sync(:'o') AS sync;
SELECT kv_put_many(:'o', ARRAY['b', 'c', 'd'], ARRAY['1', '2', NULL]) AS put_many;
SELECT kv_sync(:'o') AS sync_after_batch;
SELECT kv_put(:'o', 'e', '1') AS put_after_batch;
SELECT kv_put_bytea(:'o', '\x01', '\x02') AS put_bytea;
SELECT kv_put_many_bytea(:'o', ARRAY['\x02'::bytea], ARRAY['\x03'::bytea]) AS put_many_bytea;
SELECT kv_delete_bytea(:'o', '\x01') AS delete_bytea;
SELECT kv_sync(:'o') AS sync, kv_sync(:'o') AS sync_again;
SELECT applied_offset, end_offset, lag, keys, records, writes
FROM kv_topics WHERE topic = :'o';

-- kv_memory: the indexes of all topics together
SELECT m.bytes = (SELECT sum(bytes) FROM kv_topics) AS bytes_add_up,
       m.memory_limit = pg_size_bytes(current_setting('kvstore.shared_memory')) AS limit_is_setting,
       m.headroom = m.memory_limit - m.bytes AS headroom_is_rest,
       m.topics = (SELECT count(*) FROM kv_topics) AS topics_attached,
       m.max_topics = current_setting('kvstore.max_topics')::int AS slots
FROM kv_memory m;

-- ===================================================================
-- writes are not part of the transaction: ROLLBACK does not undo them
-- ===================================================================
BEGIN;
SELECT kv_put(:'o', 'rolled', 'back') AS put;
SELECT kv_get(:'o', 'rolled') AS inside;
ROLLBACK;
SELECT kv_get(:'o', 'rolled') AS after_rollback;

-- ===================================================================
-- scans past the 256 entries copied out under one lock hold: max_rows
-- and the end of the range are kept across batches
-- ===================================================================
SELECT kv_put_many(:'o',
    array(SELECT 'p' || lpad(i::text, 3, '0') FROM generate_series(0, 599) i) || ARRAY['q', 'o'],
    array(SELECT 'v' || i FROM generate_series(0, 599) i) || ARRAY['after', 'before']) AS put_many;
SELECT m AS max_rows, count(key), min(key), max(key),
       array_agg(key ORDER BY n) = array(SELECT 'p' || lpad(i::text, 3, '0')
                                         FROM generate_series(0, least(m, 600) - 1) i) AS in_order
FROM unnest(ARRAY[255, 256, 257, 511, 512, 513, 599, 600, 601]) m
LEFT JOIN LATERAL kv_scan(:'o', 'p', m) WITH ORDINALITY AS s(key, value, n) ON true
GROUP BY m ORDER BY m;
SELECT count(*), min(key), max(key) FROM kv_scan(:'o', 'p');
SELECT count(*), min(key), max(key) FROM kv_range(:'o', 'p', 'q', 257);
SELECT count(*), min(key), max(key) FROM kv_range(:'o', 'p', 'p512');
SELECT count(*), min(key), max(key) FROM kv_range(:'o', 'p000', NULL);
SELECT count(*), min(key), max(key) FROM kv_scan(:'o', 'p', NULL) WHERE key < 'p256';

-- ===================================================================
-- kv_sync and kv_topics
-- ===================================================================
SELECT kv_sync(:'t') > 0 AS synced;
SELECT state, keys, lag, bootstrap_progress, last_error
FROM kv_topics WHERE topic = :'t';

-- ===================================================================
-- kv_checksum: the same data gives the same checksum, whatever the order
-- ===================================================================
SELECT 'kvsum_' || md5(random()::text || clock_timestamp()::text) AS c \gset
SELECT kv_put_many(:'c', ARRAY['a', 'b', 'c'], ARRAY['1', '2', '3']) >= 0 AS put_many;
SELECT kv_sync(:'c') AS end_offset \gset
SELECT keys, applied_offset = :end_offset AS at_end FROM kv_checksum(:'c');
SELECT checksum AS c0 FROM kv_checksum(:'c') \gset
SELECT kv_put(:'c', 'b', 'changed') >= 0 AS put;
SELECT keys, checksum <> :c0 AS changed FROM kv_checksum(:'c');
-- written back in another order, the checksum is the first one again
SELECT kv_put_many(:'c', ARRAY['c', 'b', 'a'], ARRAY['3', '2', '1']) >= 0 AS put_many;
SELECT keys, checksum = :c0 AS same_as_first FROM kv_checksum(:'c');

-- ===================================================================
-- scans stream: a LIMIT stops the scan (no Function Scan gathering rows)
-- ===================================================================
EXPLAIN (COSTS OFF) SELECT * FROM kv_scan(:'s', 'user') LIMIT 2;
SELECT * FROM kv_scan(:'s', 'user') LIMIT 2;
SELECT * FROM kv_range(:'s', 'user:', NULL) LIMIT 1;
-- the functions behind kv_scan and kv_range check EXECUTE on them
CREATE ROLE kvtest_scanner;
SET ROLE kvtest_scanner;
SELECT * FROM kv_scan_rows(:'s', 'user', NULL);
RESET ROLE;
GRANT EXECUTE ON FUNCTION kv_scan(text, text, int) TO kvtest_scanner;
SET ROLE kvtest_scanner;
SELECT count(*) AS granted FROM kv_scan(:'s', 'user');
SELECT * FROM kv_range_rows(:'s', NULL, NULL, NULL);
RESET ROLE;
REVOKE ALL ON FUNCTION kv_scan(text, text, int) FROM kvtest_scanner;
DROP ROLE kvtest_scanner;
