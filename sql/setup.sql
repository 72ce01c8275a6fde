--
-- kvstore set-up: the extension installs, a record written through Kafka
-- from inside PostgreSQL comes back through the broker, and nothing of
-- kvstore is granted to PUBLIC.
--
CREATE EXTENSION kvstore;
SELECT extname, extversion FROM pg_extension WHERE extname = 'kvstore';
SELECT 'kvsetup_' || md5(random()::text || clock_timestamp()::text) AS t \gset
SELECT kv_put(:'t', 'hello', 'world') AS offset;
SELECT kv_get(:'t', 'hello');

-- ===================================================================
-- nothing of kvstore is granted to PUBLIC: a role granted nothing may
-- run none of its functions and read none of its views; the functions
-- behind kv_scan and kv_range (*_rows) may be run, and check EXECUTE on
-- the function they serve
-- ===================================================================
CREATE ROLE regress_kv_nobody;
SELECT p.oid::regprocedure AS function,
       has_function_privilege('public', p.oid, 'EXECUTE') AS public,
       has_function_privilege('regress_kv_nobody', p.oid, 'EXECUTE') AS nobody
FROM pg_depend d JOIN pg_proc p ON p.oid = d.objid
WHERE d.classid = 'pg_proc'::regclass AND d.deptype = 'e'
  AND d.refclassid = 'pg_extension'::regclass
  AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'kvstore')
ORDER BY p.oid::regprocedure::text COLLATE "C";
SELECT c.oid::regclass AS relation, c.relkind,
       has_table_privilege('public', c.oid, 'SELECT') AS public,
       has_table_privilege('regress_kv_nobody', c.oid, 'SELECT') AS nobody
FROM pg_depend d JOIN pg_class c ON c.oid = d.objid
WHERE d.classid = 'pg_class'::regclass AND d.deptype = 'e'
  AND d.refclassid = 'pg_extension'::regclass
  AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'kvstore')
ORDER BY c.oid::regclass::text COLLATE "C";
-- Run a query; show its SQLSTATE and message
CREATE FUNCTION pg_temp.try(query text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE query;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;
SET ROLE regress_kv_nobody;
SELECT pg_temp.try(format($$SELECT kv_get(%L, 'hello')$$, :'t'));
SELECT pg_temp.try(format($$SELECT kv_put(%L, 'hello', 'again')$$, :'t'));
SELECT pg_temp.try(format($$SELECT * FROM kv_scan_rows(%L, '', NULL)$$, :'t'));
SELECT pg_temp.try(format($$SELECT * FROM kv_range_bytea_rows(%L, NULL, NULL, NULL)$$, :'t'));
SELECT pg_temp.try($$SELECT * FROM kv_topics$$);
RESET ROLE;
SELECT kv_get(:'t', 'hello') AS unchanged;
DROP ROLE regress_kv_nobody;
