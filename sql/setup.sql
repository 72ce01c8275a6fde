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

-- ===================================================================
-- the README's GRANT recipes, for roles named regress_kv_*: each role may
-- do what it was granted and gets 42501 for the rest
-- ===================================================================
CREATE ROLE regress_kv_reader;
CREATE ROLE regress_kv_writer;
CREATE ROLE regress_kv_admin;
CREATE ROLE regress_kv_monitoring;
GRANT EXECUTE ON FUNCTION kv_get(text, text), kv_exists(text, text),
      kv_scan(text, text, int), kv_range(text, text, text, int) TO regress_kv_reader;
GRANT EXECUTE ON FUNCTION kv_get_bytea(text, bytea), kv_exists_bytea(text, bytea),
      kv_scan_bytea(text, bytea, int), kv_range_bytea(text, bytea, bytea, int) TO regress_kv_reader;
GRANT EXECUTE ON FUNCTION kv_put(text, text, text), kv_delete(text, text),
      kv_put_many(text, text[], text[]) TO regress_kv_writer;
GRANT EXECUTE ON FUNCTION kv_create_topic(text) TO regress_kv_admin;
GRANT SELECT ON kv_topics TO regress_kv_monitoring;
GRANT EXECUTE ON FUNCTION kv_topics() TO regress_kv_monitoring;
-- Run a query as a role: 'ok', 42501, or any other error in full
CREATE FUNCTION pg_temp.as_role(r text, query text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('role', r, true);
    EXECUTE query;
    PERFORM set_config('role', 'none', true);
    RETURN 'ok';
EXCEPTION WHEN insufficient_privilege THEN
    RETURN SQLSTATE;
WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;
SELECT f AS call,
       pg_temp.as_role('regress_kv_reader', q) AS reader,
       pg_temp.as_role('regress_kv_writer', q) AS writer,
       pg_temp.as_role('regress_kv_admin', q) AS admin,
       pg_temp.as_role('regress_kv_monitoring', q) AS monitoring
FROM (VALUES
    ('kv_get', format($$SELECT kv_get(%L, 'hello')$$, :'t')),
    ('kv_exists', format($$SELECT kv_exists(%L, 'hello')$$, :'t')),
    ('kv_scan', format($$SELECT * FROM kv_scan(%L)$$, :'t')),
    ('kv_range', format($$SELECT * FROM kv_range(%L, NULL, NULL)$$, :'t')),
    ('kv_get_bytea', format($$SELECT kv_get_bytea(%L, 'hello')$$, :'t')),
    ('kv_exists_bytea', format($$SELECT kv_exists_bytea(%L, 'hello')$$, :'t')),
    ('kv_scan_bytea', format($$SELECT * FROM kv_scan_bytea(%L)$$, :'t')),
    ('kv_range_bytea', format($$SELECT * FROM kv_range_bytea(%L, NULL, NULL)$$, :'t')),
    ('kv_put', format($$SELECT kv_put(%L, 'hello', 'world')$$, :'t')),
    ('kv_delete', format($$SELECT kv_delete(%L, 'gone')$$, :'t')),
    ('kv_put_many', format($$SELECT kv_put_many(%L, '{}'::text[], '{}'::text[])$$, :'t')),
    ('kv_put_bytea', format($$SELECT kv_put_bytea(%L, 'hello', 'world')$$, :'t')),
    ('kv_sync', format($$SELECT kv_sync(%L)$$, :'t')),
    ('kv_checksum', format($$SELECT kv_checksum(%L)$$, :'t')),
    ('kv_create_topic', format($$SELECT kv_create_topic(%L)$$, :'t')),
    ('kv_topics view', $$SELECT * FROM kv_topics$$),
    ('kv_topics()', $$SELECT * FROM kv_topics()$$)) AS calls(f, q);
DROP OWNED BY regress_kv_reader, regress_kv_writer, regress_kv_admin, regress_kv_monitoring;
DROP ROLE regress_kv_reader, regress_kv_writer, regress_kv_admin, regress_kv_monitoring;
