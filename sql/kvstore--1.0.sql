/* kvstore--1.0.sql */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION kvstore" to load this file. \quit

-- Refuse to install where the library was not preloaded, saying how to fix it
CREATE FUNCTION kvstore_check_loaded() RETURNS void
AS 'MODULE_PATHNAME' LANGUAGE C;
SELECT kvstore_check_loaded();
DROP FUNCTION kvstore_check_loaded();

-- Writes: produce to Kafka, return the offset once visible on this server.
--
-- The bytea forms have their own names (kv_put_bytea, ...) rather than
-- overloading the text ones: drivers send their parameters untyped, and
-- with two forms of one name PostgreSQL cannot choose between text[] and
-- bytea[] arrays, and picks text for a scalar, so a driver's byte buffer
-- would be refused as invalid text.

CREATE FUNCTION kv_put(topic text, key text, value text) RETURNS bigint
AS 'MODULE_PATHNAME', 'kv_put' LANGUAGE C VOLATILE;

CREATE FUNCTION kv_put_bytea(topic text, key bytea, value bytea) RETURNS bigint
AS 'MODULE_PATHNAME', 'kv_put' LANGUAGE C VOLATILE;

CREATE FUNCTION kv_delete(topic text, key text) RETURNS bigint
AS 'MODULE_PATHNAME', 'kv_delete' LANGUAGE C VOLATILE;

CREATE FUNCTION kv_delete_bytea(topic text, key bytea) RETURNS bigint
AS 'MODULE_PATHNAME', 'kv_delete' LANGUAGE C VOLATILE;

CREATE FUNCTION kv_put_many(topic text, keys text[], vals text[]) RETURNS bigint
AS 'MODULE_PATHNAME', 'kv_put_many' LANGUAGE C VOLATILE;

CREATE FUNCTION kv_put_many_bytea(topic text, keys bytea[], vals bytea[]) RETURNS bigint
AS 'MODULE_PATHNAME', 'kv_put_many' LANGUAGE C VOLATILE;

-- kv_sync, kv_checksum and kv_detach act on the topic of the default
-- connection (kvstore.brokers), or on that of a kvstore foreign server's
-- connection for the current user when server names one.

CREATE FUNCTION kv_sync(topic text, server name DEFAULT NULL) RETURNS bigint
AS 'MODULE_PATHNAME', 'kv_sync' LANGUAGE C VOLATILE;

-- Reads: from this server's shared-memory index

CREATE FUNCTION kv_get(topic text, key text) RETURNS text
AS 'MODULE_PATHNAME', 'kv_get_text' LANGUAGE C VOLATILE;

CREATE FUNCTION kv_get_bytea(topic text, key bytea) RETURNS bytea
AS 'MODULE_PATHNAME', 'kv_get_bytea' LANGUAGE C VOLATILE;

CREATE FUNCTION kv_exists(topic text, key text) RETURNS boolean
AS 'MODULE_PATHNAME', 'kv_exists' LANGUAGE C VOLATILE;

CREATE FUNCTION kv_exists_bytea(topic text, key bytea) RETURNS boolean
AS 'MODULE_PATHNAME', 'kv_exists' LANGUAGE C VOLATILE;

-- Scans: each kv_scan/kv_range is an SQL function that PostgreSQL inlines
-- into the query, over a C function called in the select list, which
-- returns one row at a time: a LIMIT stops the scan instead of the whole
-- result being gathered first.  The C functions check that the caller may
-- execute the SQL function of the same name without "_rows", so they can
-- be granted to PUBLIC.

CREATE FUNCTION kv_scan_rows(topic text, prefix text, max_rows int,
                             OUT key text, OUT value text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'kv_scan_text' LANGUAGE C VOLATILE ROWS 100;

CREATE FUNCTION kv_scan(topic text, prefix text DEFAULT '', max_rows int DEFAULT NULL)
RETURNS TABLE (key text, value text)
LANGUAGE sql STABLE ROWS 100
AS $$ SELECT (s.r).key, (s.r).value FROM (SELECT kv_scan_rows(topic, prefix, max_rows) AS r) s $$;

CREATE FUNCTION kv_scan_bytea_rows(topic text, prefix bytea, max_rows int,
                                   OUT key bytea, OUT value bytea)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'kv_scan_bytea' LANGUAGE C VOLATILE ROWS 100;

CREATE FUNCTION kv_scan_bytea(topic text, prefix bytea DEFAULT '', max_rows int DEFAULT NULL)
RETURNS TABLE (key bytea, value bytea)
LANGUAGE sql STABLE ROWS 100
AS $$ SELECT (s.r).key, (s.r).value FROM (SELECT kv_scan_bytea_rows(topic, prefix, max_rows) AS r) s $$;

CREATE FUNCTION kv_range_rows(topic text, from_key text, to_key text, max_rows int,
                              OUT key text, OUT value text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'kv_range_text' LANGUAGE C VOLATILE ROWS 100;

CREATE FUNCTION kv_range(topic text, from_key text, to_key text, max_rows int DEFAULT NULL)
RETURNS TABLE (key text, value text)
LANGUAGE sql STABLE ROWS 100
AS $$ SELECT (s.r).key, (s.r).value FROM (SELECT kv_range_rows(topic, from_key, to_key, max_rows) AS r) s $$;

CREATE FUNCTION kv_range_bytea_rows(topic text, from_key bytea, to_key bytea, max_rows int,
                                    OUT key bytea, OUT value bytea)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'kv_range_bytea' LANGUAGE C VOLATILE ROWS 100;

CREATE FUNCTION kv_range_bytea(topic text, from_key bytea, to_key bytea, max_rows int DEFAULT NULL)
RETURNS TABLE (key bytea, value bytea)
LANGUAGE sql STABLE ROWS 100
AS $$ SELECT (s.r).key, (s.r).value FROM (SELECT kv_range_bytea_rows(topic, from_key, to_key, max_rows) AS r) s $$;

-- Topics: creating one is a separate act, granted on its own

CREATE FUNCTION kv_create_topic(topic text) RETURNS boolean
AS 'MODULE_PATHNAME', 'kv_create_topic' LANGUAGE C VOLATILE;

-- Foreign tables: CREATE SERVER ... FOREIGN DATA WRAPPER kvstore, then
-- CREATE FOREIGN TABLE t (key text COLLATE "C", value jsonb) SERVER ...

CREATE FUNCTION kvstore_fdw_handler() RETURNS fdw_handler
AS 'MODULE_PATHNAME' LANGUAGE C STRICT;

CREATE FUNCTION kvstore_fdw_validator(text[], oid) RETURNS void
AS 'MODULE_PATHNAME' LANGUAGE C STRICT;

CREATE FOREIGN DATA WRAPPER kvstore
    HANDLER kvstore_fdw_handler
    VALIDATOR kvstore_fdw_validator;

-- Monitoring

CREATE FUNCTION kv_checksum(topic text, server name DEFAULT NULL,
                            OUT applied_offset bigint, OUT keys bigint,
                            OUT checksum bigint)
RETURNS record
AS 'MODULE_PATHNAME', 'kv_checksum' LANGUAGE C VOLATILE;

CREATE FUNCTION kv_topics(
    OUT topic text,
    OUT state text,
    OUT applied_offset bigint,
    OUT end_offset bigint,
    OUT lag bigint,
    OUT keys bigint,
    OUT bytes bigint,
    OUT memory_limit bigint,
    OUT headroom bigint,
    OUT bootstrap_progress float8,
    OUT bootstrap_duration interval,
    OUT records bigint,
    OUT writes bigint,
    OUT skipped bigint,
    OUT worker_pid int,
    OUT last_error text,
    OUT brokers text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'kv_topics' LANGUAGE C VOLATILE;

CREATE VIEW kv_topics AS SELECT * FROM kv_topics();

CREATE FUNCTION kv_memory(
    OUT bytes bigint,
    OUT memory_limit bigint,
    OUT headroom bigint,
    OUT topics int,
    OUT max_topics int)
RETURNS record
AS 'MODULE_PATHNAME', 'kv_memory' LANGUAGE C VOLATILE;

CREATE VIEW kv_memory AS SELECT * FROM kv_memory();

CREATE FUNCTION kv_detach(topic text, server name DEFAULT NULL) RETURNS boolean
AS 'MODULE_PATHNAME', 'kv_detach' LANGUAGE C VOLATILE;

-- Nobody but the owner may use kvstore until granted: see the README
REVOKE ALL ON FUNCTION
    kv_put(text, text, text), kv_put_bytea(text, bytea, bytea),
    kv_delete(text, text), kv_delete_bytea(text, bytea),
    kv_put_many(text, text[], text[]), kv_put_many_bytea(text, bytea[], bytea[]),
    kv_sync(text, name),
    kv_get(text, text), kv_get_bytea(text, bytea),
    kv_exists(text, text), kv_exists_bytea(text, bytea),
    kv_scan(text, text, int), kv_scan_bytea(text, bytea, int),
    kv_range(text, text, text, int), kv_range_bytea(text, bytea, bytea, int),
    kv_create_topic(text), kv_checksum(text, name),
    kv_topics(), kv_memory(), kv_detach(text, name),
    kvstore_fdw_handler(), kvstore_fdw_validator(text[], oid)
FROM PUBLIC;
REVOKE ALL ON kv_topics, kv_memory FROM PUBLIC;
