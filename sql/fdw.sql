--
-- kvstore foreign tables: options, the access each query uses, writes
--
-- The topics have fixed names, which EXPLAIN VERBOSE shows: each is
-- created if missing and emptied first, so that what earlier runs wrote
-- does not show here.
--
SELECT count(kv_create_topic(t)) AS topics
FROM unnest(ARRAY['fdw_regress_kv', 'fdw_regress_bin', 'fdw_regress_people']) t;

-- Run a statement; show its SQLSTATE and message
CREATE FUNCTION pg_temp.try(query text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE query;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;

-- ===================================================================
-- the wrapper, and options checked at CREATE and ALTER
-- ===================================================================
SELECT fdwname, fdwhandler::regproc, fdwvalidator::regproc,
       has_foreign_data_wrapper_privilege('public', oid, 'USAGE') AS public_usage
FROM pg_foreign_data_wrapper WHERE fdwname = 'kvstore';
CREATE SERVER kv FOREIGN DATA WRAPPER kvstore;

-- servers: brokers, and librdkafka's properties, checked by librdkafka
CREATE SERVER kv_bad FOREIGN DATA WRAPPER kvstore OPTIONS (brokers_list 'b:9092');
CREATE SERVER kv_bad FOREIGN DATA WRAPPER kvstore OPTIONS (brokers '');
CREATE SERVER kv_other FOREIGN DATA WRAPPER kvstore
    OPTIONS (brokers 'b1:9092,b2:9092', "security.protocol" 'sasl_plaintext',
             "sasl.mechanism" 'PLAIN', "socket.timeout.ms" '5000');
ALTER SERVER kv_other OPTIONS (SET "socket.timeout.ms" 'soon');
ALTER SERVER kv_other OPTIONS (ADD "bootstrap.servers" 'b:1');
-- what kvstore sets for its guarantees is refused
SELECT pg_temp.try(format($$ALTER SERVER kv_other OPTIONS (ADD %I 'x')$$, p))
FROM unnest(ARRAY['transactional.id', 'enable.idempotence', 'isolation.level',
                  'group.id', 'acks', 'message.timeout.ms']) p;
ALTER SERVER kv_other OPTIONS (ADD "enable.idempotence" 'false');
-- credentials go in a user mapping, which takes nothing else; messages
-- never show their values
ALTER SERVER kv_other OPTIONS (ADD "sasl.password" 'hunter2');
SELECT pg_temp.try($$ALTER SERVER kv_other OPTIONS (ADD "sasl.username" 'kv')$$);
CREATE USER MAPPING FOR CURRENT_USER SERVER kv_other OPTIONS ("socket.timeout.ms" '1');
CREATE USER MAPPING FOR CURRENT_USER SERVER kv_other
    OPTIONS ("sasl.username" 'kv', "sasl.password" 'hunter2');
SELECT pg_temp.try($$ALTER USER MAPPING FOR CURRENT_USER SERVER kv_other OPTIONS (ADD "nonesuch" 'x')$$);

-- properties that read files or load code are for superusers; the owner
-- of a server may set the others
CREATE ROLE kv_regress_owner;
CREATE ROLE kv_regress_other;
GRANT USAGE ON FOREIGN DATA WRAPPER kvstore TO kv_regress_owner;
SET ROLE kv_regress_owner;
CREATE SERVER kv_owned FOREIGN DATA WRAPPER kvstore
    OPTIONS (brokers 'b:9092', "client.rack" 'r1');
ALTER SERVER kv_owned OPTIONS (ADD "ssl.ca.location" '/etc/ssl/certs');
ALTER SERVER kv_owned OPTIONS (ADD "plugin.library.paths" 'libplugin');
ALTER SERVER kv_owned OPTIONS (ADD "sasl.kerberos.kinit.cmd" 'kinit');
ALTER SERVER kv_owned OPTIONS (ADD "ssl.keystore.location" '/tmp/keystore.p12');
CREATE USER MAPPING FOR kv_regress_owner SERVER kv_owned
    OPTIONS ("sasl.username" 'owner', "sasl.password" 'hunter3');
GRANT USAGE ON FOREIGN SERVER kv_owned TO kv_regress_other;
RESET ROLE;
ALTER SERVER kv_owned OPTIONS (ADD "ssl.ca.location" '/etc/ssl/certs');
-- a user mapping's options: shown to its user, hidden from other roles
SET ROLE kv_regress_owner;
SELECT srvname, usename, umoptions FROM pg_user_mappings WHERE srvname = 'kv_owned';
SET ROLE kv_regress_other;
SELECT srvname, usename, umoptions FROM pg_user_mappings WHERE srvname = 'kv_owned';
RESET ROLE;
DROP USER MAPPING FOR kv_regress_owner SERVER kv_owned;
DROP USER MAPPING FOR CURRENT_USER SERVER kv_other;
DROP SERVER kv_owned, kv_other;
REVOKE USAGE ON FOREIGN DATA WRAPPER kvstore FROM kv_regress_owner;
DROP ROLE kv_regress_owner, kv_regress_other;

CREATE FOREIGN TABLE ft (key text COLLATE "C", value text)
    SERVER kv OPTIONS (topc 'fdw_regress_kv');
SELECT pg_temp.try($$CREATE FOREIGN TABLE ft (key text, value text) SERVER kv OPTIONS (format 'xml')$$);
SELECT pg_temp.try($$CREATE FOREIGN TABLE ft (key text, value text) SERVER kv OPTIONS (batch_size '0')$$);
SELECT pg_temp.try($$CREATE FOREIGN TABLE ft (key text, value text) SERVER kv OPTIONS (topic 'no spaces')$$);
SELECT pg_temp.try($$CREATE FOREIGN TABLE ft (key text, value text) SERVER kv OPTIONS (topic '__consumer_offsets')$$);
SELECT pg_temp.try($$CREATE FOREIGN TABLE ft (key text OPTIONS (key 'maybe'), value text) SERVER kv$$);
SELECT pg_temp.try($$CREATE FOREIGN TABLE ft (key text, value text, ts timestamptz OPTIONS (metadata 'time')) SERVER kv$$);
SELECT pg_temp.try($$CREATE FOREIGN TABLE ft (key text, value text, o bigint OPTIONS (metadata 'offset', key 'true')) SERVER kv$$);
CREATE FOREIGN TABLE ft (key text OPTIONS (colour 'red'), value text) SERVER kv;

-- a table may name a topic that does not exist yet: nothing is asked of Kafka
CREATE FOREIGN TABLE ft_later (key text, value text) SERVER kv OPTIONS (topic 'fdw_regress_later');
SELECT count(*) AS attached FROM kv_topics WHERE topic = 'fdw_regress_later';
SELECT pg_temp.try($$SELECT * FROM ft_later$$);
SELECT count(*) AS attached FROM kv_topics WHERE topic = 'fdw_regress_later';
DROP FOREIGN TABLE ft_later;

-- the columns are checked when the table is used
CREATE FOREIGN TABLE ft_nokey (k text, value text) SERVER kv OPTIONS (topic 'fdw_regress_kv');
SELECT * FROM ft_nokey;
CREATE FOREIGN TABLE ft_intkey (key int, value text) SERVER kv OPTIONS (topic 'fdw_regress_kv');
SELECT * FROM ft_intkey;
CREATE FOREIGN TABLE ft_extra (key text, value text, other text) SERVER kv OPTIONS (topic 'fdw_regress_kv');
SELECT * FROM ft_extra;
CREATE FOREIGN TABLE ft_twokeys (a text OPTIONS (key 'true'), b text OPTIONS (key 'true')) SERVER kv OPTIONS (topic 'fdw_regress_kv');
SELECT * FROM ft_twokeys;
DROP FOREIGN TABLE ft_nokey, ft_intkey, ft_extra, ft_twokeys;

-- ===================================================================
-- the tables of these tests
-- ===================================================================
CREATE FOREIGN TABLE ft (key text COLLATE "C", value text)
    SERVER kv OPTIONS (topic 'fdw_regress_kv');
-- the same topic under a collation other than "C" (the planner cannot
-- rely on its order being byte order)
CREATE FOREIGN TABLE ft_coll (key text COLLATE "C.utf8", value text)
    SERVER kv OPTIONS (topic 'fdw_regress_kv');
-- renamed key and value columns, and the offset of each record
CREATE FOREIGN TABLE ft_named (
    id text OPTIONS (key 'true') COLLATE "C",
    payload text OPTIONS (value 'true'),
    "offset" bigint OPTIONS (metadata 'offset'))
    SERVER kv OPTIONS (topic 'fdw_regress_kv');
CREATE FOREIGN TABLE ft_bin (key bytea, value bytea)
    SERVER kv OPTIONS (topic 'fdw_regress_bin');
CREATE FOREIGN TABLE ft_people (
    key text COLLATE "C",
    email text,
    full_name text OPTIONS (field 'name'),
    age int,
    tags jsonb,
    "offset" bigint OPTIONS (metadata 'offset'))
    SERVER kv OPTIONS (topic 'fdw_regress_people', format 'json');
TRUNCATE ft, ft_bin, ft_people;

INSERT INTO ft VALUES ('a', 'first'), ('user:1', 'one'), ('user:10', 'ten'),
    ('user:2', 'two'), ('user', 'bare'), ('usex', 'x'), ('B', 'upper'), ('z', 'last');
INSERT INTO ft_bin VALUES ('\x61', '\x01'), ('\x61ff', '\x02'), ('\x61ff00', '\x03'),
    ('\x61ffff', '\x04'), ('\x62', '\x05');
INSERT INTO ft_people (key, email, full_name, age, tags) VALUES
    ('p1', 'ann@example.com', 'Ann', 31, '["admin"]'),
    ('p2', 'bob@example.com', 'Bob', NULL, NULL);
CREATE TABLE orders (id int PRIMARY KEY, user_key text COLLATE "C");
INSERT INTO orders VALUES (1, 'user:1'), (2, 'user:2'), (3, 'user:2'), (4, 'nobody');
ANALYZE orders;

-- ===================================================================
-- reads: each access, and the clauses left to check on each row
-- ===================================================================
SELECT * FROM ft;
SELECT key FROM ft_coll ORDER BY key;

-- look-up: a constant, a parameter
EXPLAIN (VERBOSE, COSTS OFF) SELECT * FROM ft WHERE key = 'user:2';
SELECT * FROM ft WHERE key = 'user:2';
SELECT * FROM ft WHERE key = 'nothing';
PREPARE get(text) AS SELECT value FROM ft WHERE key = $1;
SET plan_cache_mode = force_generic_plan;
EXPLAIN (VERBOSE, COSTS OFF) EXECUTE get('user:1');
EXECUTE get('user:1');
EXECUTE get(NULL);
RESET plan_cache_mode;
DEALLOCATE get;

-- look-ups: IN and = ANY, each key once, in order
EXPLAIN (VERBOSE, COSTS OFF) SELECT * FROM ft WHERE key IN ('z', 'a', 'nothing', 'a');
SELECT * FROM ft WHERE key IN ('z', 'a', 'nothing', 'a');
EXPLAIN (VERBOSE, COSTS OFF) SELECT * FROM ft WHERE key = ANY (ARRAY['user:2', 'user:1', NULL]) ORDER BY key DESC;
SELECT * FROM ft WHERE key = ANY (ARRAY['user:2', 'user:1', NULL]) ORDER BY key DESC;

-- ranges, the key on either side; BETWEEN
EXPLAIN (VERBOSE, COSTS OFF) SELECT * FROM ft WHERE key >= 'user' AND key < 'user:2';
SELECT * FROM ft WHERE key >= 'user' AND key < 'user:2';
EXPLAIN (VERBOSE, COSTS OFF) SELECT * FROM ft WHERE 'user:1' < key;
SELECT * FROM ft WHERE 'user:1' < key;
EXPLAIN (VERBOSE, COSTS OFF) SELECT * FROM ft WHERE key BETWEEN 'B' AND 'user';
SELECT * FROM ft WHERE key BETWEEN 'B' AND 'user';
SELECT * FROM ft WHERE key > 'z' OR key < 'B';

-- prefixes: LIKE, ^@, starts_with; a pattern past its fixed start is
-- checked again on each row
EXPLAIN (VERBOSE, COSTS OFF) SELECT * FROM ft WHERE key LIKE 'user:%';
SELECT * FROM ft WHERE key LIKE 'user:%';
EXPLAIN (VERBOSE, COSTS OFF) SELECT * FROM ft WHERE key LIKE 'user:1_';
SELECT * FROM ft WHERE key LIKE 'user:1_';
EXPLAIN (VERBOSE, COSTS OFF) SELECT * FROM ft WHERE key ^@ 'use';
SELECT * FROM ft WHERE key ^@ 'use';
EXPLAIN (VERBOSE, COSTS OFF) SELECT * FROM ft WHERE starts_with(key, 'user:') AND key LIKE 'user%';
SELECT * FROM ft WHERE starts_with(key, 'user:') AND key LIKE 'user%';
SELECT * FROM ft WHERE key LIKE 'user\_%';
SELECT * FROM ft WHERE key LIKE '%1';

-- order: ORDER BY key needs no sort, and a LIMIT reads few rows
EXPLAIN (VERBOSE, COSTS OFF) SELECT * FROM ft ORDER BY key LIMIT 3;
SELECT * FROM ft ORDER BY key LIMIT 3;
EXPLAIN (VERBOSE, COSTS OFF) SELECT * FROM ft WHERE key > 'B' ORDER BY key DESC LIMIT 3;
SELECT * FROM ft WHERE key > 'B' ORDER BY key DESC LIMIT 3;
EXPLAIN (VERBOSE, COSTS OFF) SELECT * FROM ft WHERE key LIKE 'user%' ORDER BY key DESC;
SELECT * FROM ft WHERE key LIKE 'user%' ORDER BY key DESC;

-- a collation that is not "C": equality and prefixes are pushed down,
-- comparisons and order are not
EXPLAIN (VERBOSE, COSTS OFF) SELECT * FROM ft_coll WHERE key = 'user:1';
EXPLAIN (VERBOSE, COSTS OFF) SELECT * FROM ft_coll WHERE key LIKE 'user:%';
EXPLAIN (VERBOSE, COSTS OFF) SELECT * FROM ft_coll WHERE key < 'b' ORDER BY key;
SELECT * FROM ft_coll WHERE key < 'b' ORDER BY key;
-- text_pattern_ops comparisons compare bytes under any collation
EXPLAIN (VERBOSE, COSTS OFF) SELECT * FROM ft_coll WHERE key ~>=~ 'user:2';
SELECT * FROM ft_coll WHERE key ~>=~ 'user:2';
-- an explicit "C" collation makes a comparison pushable
EXPLAIN (VERBOSE, COSTS OFF) SELECT * FROM ft_coll WHERE key < 'b' COLLATE "C";
-- (a nondeterministic collation, which needs ICU: fdw_icu.sql)

-- bytea keys: byte order, prefixes of bytes
EXPLAIN (VERBOSE, COSTS OFF) SELECT * FROM ft_bin WHERE key LIKE 'a\377%'::bytea ORDER BY key;
SELECT * FROM ft_bin WHERE key LIKE 'a\377%'::bytea ORDER BY key;
SELECT * FROM ft_bin WHERE key > '\x61ff00' ORDER BY key DESC;

-- renamed columns and the offset column
SELECT id, payload, "offset" >= 0 AS has_offset FROM ft_named WHERE id = 'a';
EXPLAIN (VERBOSE, COSTS OFF) SELECT * FROM ft_named WHERE id LIKE 'user:%' ORDER BY id;

-- the timestamp of each key's record: for a write of this server, when
-- it was produced
CREATE FOREIGN TABLE ft_stamped (key text COLLATE "C", value text,
    ts timestamptz OPTIONS (metadata 'timestamp'))
    SERVER kv OPTIONS (topic 'fdw_regress_kv');
SELECT date_trunc('milliseconds', clock_timestamp()) AS before_insert \gset
INSERT INTO ft_stamped VALUES ('stamped', 'v');
SELECT key, value, ts BETWEEN :'before_insert' AND clock_timestamp() AS produced_now
FROM ft_stamped WHERE key = 'stamped';
SELECT count(*) FILTER (WHERE ts IS NULL) AS without, count(*) > 1 AS several FROM ft_stamped;
SELECT pg_temp.try($$INSERT INTO ft_stamped VALUES ('x', 'y', now())$$);
SELECT pg_temp.try($$UPDATE ft_stamped SET ts = now() WHERE key = 'stamped'$$);
-- it may be returned by INSERT, as NULL: the record is not read back yet
SELECT date_trunc('milliseconds', clock_timestamp()) AS before_insert \gset
INSERT INTO ft_stamped (key, value) VALUES ('stamped', 'w') RETURNING key, value, ts;
SELECT ts >= :'before_insert' AS updated FROM ft_stamped WHERE key = 'stamped';
DELETE FROM ft_stamped WHERE key = 'stamped';
CREATE FOREIGN TABLE ft_stamp_int (key text, value text, ts bigint OPTIONS (metadata 'timestamp'))
    SERVER kv OPTIONS (topic 'fdw_regress_kv');
SELECT * FROM ft_stamp_int;
DROP FOREIGN TABLE ft_stamped, ft_stamp_int;

-- ===================================================================
-- joins
-- ===================================================================
EXPLAIN (VERBOSE, COSTS OFF)
SELECT o.id, f.value FROM orders o JOIN ft f ON f.key = o.user_key ORDER BY o.id;
SELECT o.id, f.value FROM orders o JOIN ft f ON f.key = o.user_key ORDER BY o.id;
SELECT o.id, f.value FROM orders o LEFT JOIN ft f ON f.key = o.user_key ORDER BY o.id;
SELECT f.key, count(o.id) FROM ft f LEFT JOIN orders o ON o.user_key = f.key
WHERE f.key LIKE 'user%' GROUP BY f.key ORDER BY f.key;
-- a subquery's keys: one look-up each
EXPLAIN (VERBOSE, COSTS OFF)
SELECT * FROM ft WHERE key IN (SELECT user_key FROM orders WHERE id < 3);
SELECT * FROM ft WHERE key IN (SELECT user_key FROM orders WHERE id < 3);

-- ===================================================================
-- typed JSON rows
-- ===================================================================
SELECT key, email, full_name, age, tags FROM ft_people ORDER BY key;
SELECT kv_get('fdw_regress_people', 'p1');
SELECT key, age FROM ft_people WHERE age > 30;
-- a missing field is NULL; fields no column shows are kept by UPDATE
SELECT kv_put('fdw_regress_people', 'p3', '{"email": "cy@example.com", "age": "7", "extra": true}') >= 0 AS put;
SELECT key, email, full_name, age FROM ft_people WHERE key = 'p3';
UPDATE ft_people SET full_name = 'Cy', age = age + 1 WHERE key = 'p3';
SELECT kv_get('fdw_regress_people', 'p3')::jsonb;
-- values that do not convert name the key and the column
SELECT kv_put('fdw_regress_people', 'p4', '{"age": "old"}') >= 0 AS put;
SELECT pg_temp.try($$SELECT * FROM ft_people WHERE key = 'p4'$$);
SELECT kv_put('fdw_regress_people', 'p4', '[1, 2]') >= 0 AS put;
SELECT pg_temp.try($$SELECT * FROM ft_people WHERE key = 'p4'$$);
-- the key alone needs no value
SELECT key FROM ft_people ORDER BY key;
SELECT kv_delete('fdw_regress_people', 'p4') >= 0 AS deleted;

-- ===================================================================
-- writes
-- ===================================================================
-- INSERT writes a key whether or not it exists
INSERT INTO ft VALUES ('a', 'first again'), ('new', 'n') RETURNING *;
SELECT * FROM ft WHERE key IN ('a', 'new');
UPDATE ft SET value = value || '!' WHERE key LIKE 'user:%' RETURNING *;
-- a changed key deletes the old one; rows never meet the statement's own writes
UPDATE ft SET key = key || 'x' WHERE key LIKE 'user%' RETURNING key, value;
SELECT * FROM ft ORDER BY key;
-- two rows trading keys
UPDATE ft SET key = CASE key WHEN 'user:1x' THEN 'user:2x' ELSE 'user:1x' END
WHERE key IN ('user:1x', 'user:2x');
SELECT * FROM ft WHERE key LIKE 'user:_x' ORDER BY key;
-- an offset returned by UPDATE is NULL: the new record's offset is not known yet
UPDATE ft_named SET payload = 'renamed' WHERE id = 'new' RETURNING id, payload, "offset";
DELETE FROM ft WHERE key = 'new' RETURNING *;
-- DELETE that the index decides alone: no row goes through the executor
EXPLAIN (VERBOSE, COSTS OFF) DELETE FROM ft WHERE key LIKE 'user%';
EXPLAIN (VERBOSE, COSTS OFF) DELETE FROM ft WHERE key LIKE 'user%' AND value LIKE 'one%';
DELETE FROM ft WHERE key LIKE 'user%' AND value LIKE 'one%';
DELETE FROM ft WHERE key LIKE 'user%';
SELECT * FROM ft ORDER BY key;
-- INSERT ... SELECT from the table itself
INSERT INTO ft SELECT key || '-copy', value FROM ft;
SELECT count(*) FROM ft;
-- batches
ALTER FOREIGN TABLE ft OPTIONS (ADD batch_size '100');
EXPLAIN (VERBOSE, COSTS OFF) INSERT INTO ft SELECT 'batch:' || g, g::text FROM generate_series(1, 250) g;
INSERT INTO ft SELECT 'batch:' || g, g::text FROM generate_series(1, 250) g;
SELECT count(*) FROM ft WHERE key LIKE 'batch:%';
ALTER FOREIGN TABLE ft OPTIONS (DROP batch_size);
-- COPY FROM
COPY ft FROM stdin;
copy:1	c1
copy:2	c2
\.
SELECT * FROM ft WHERE key ^@ 'copy:';
-- TRUNCATE deletes every key
TRUNCATE ft;
SELECT count(*) FROM ft;

-- ===================================================================
-- bad input: an error with its SQLSTATE, and nothing of the statement
-- reaches the topic
-- ===================================================================
SELECT pg_temp.try($$INSERT INTO ft VALUES ('ok', '1'), (NULL, '2')$$);
SELECT pg_temp.try($$INSERT INTO ft VALUES ('ok', '1'), ('', '2')$$);
SELECT pg_temp.try($$INSERT INTO ft VALUES ('ok', '1'), ('k', NULL)$$);
SELECT pg_temp.try($$INSERT INTO ft VALUES ('ok', '1'), ('big', repeat('x', 1000000))$$);
SELECT pg_temp.try($$INSERT INTO ft_named VALUES ('ok', '1', 5)$$);
SELECT pg_temp.try($$UPDATE ft_named SET "offset" = 5$$);
SELECT pg_temp.try($$INSERT INTO ft VALUES ('ok', '1') ON CONFLICT DO NOTHING$$);
SELECT pg_temp.try($$INSERT INTO ft_bin VALUES ('\x00', '\x00'), ('\x01', NULL)$$);
SELECT count(*) AS written FROM ft;
SELECT count(*) AS written FROM ft_bin WHERE key < '\x10';
-- values that are not text
SELECT kv_put_bytea('fdw_regress_kv', '\xff', '\x00') >= 0 AS put;
SELECT pg_temp.try($$SELECT * FROM ft$$);
SELECT key FROM ft_bin WHERE key = '\xff';

-- ===================================================================
-- ROLLBACK does not undo writes already made: they are in Kafka
-- ===================================================================
BEGIN;
INSERT INTO ft VALUES ('kept', 'despite rollback');
ROLLBACK;
SELECT * FROM ft WHERE key = 'kept';

-- ===================================================================
-- IMPORT FOREIGN SCHEMA
-- ===================================================================
CREATE SCHEMA imported;
IMPORT FOREIGN SCHEMA kafka LIMIT TO (fdw_regress_kv, fdw_regress_missing)
    FROM SERVER kv INTO imported;
\d imported.fdw_regress_kv
SELECT * FROM imported.fdw_regress_kv WHERE key = 'kept';
IMPORT FOREIGN SCHEMA kafka EXCEPT (fdw_regress_kv) FROM SERVER kv INTO imported;
SELECT count(*) > 0 AS more_tables,
       bool_and(foreign_table_name <> 'fdw_regress_kv') AS without_the_first
FROM information_schema.foreign_tables
WHERE foreign_table_schema = 'imported' AND foreign_table_name <> 'fdw_regress_kv';
SELECT count(*) AS internal_topics FROM information_schema.foreign_tables
WHERE foreign_table_schema = 'imported' AND foreign_table_name LIKE '\_%';
IMPORT FOREIGN SCHEMA kafka FROM SERVER kv INTO imported OPTIONS (format 'json');

-- ===================================================================
-- kv_sync, kv_checksum and kv_detach on the topic of a server
-- ===================================================================
-- a server without Kafka options has the default connection: one slot
SELECT kv_sync('fdw_regress_kv', 'kv') = kv_sync('fdw_regress_kv') AS same_end,
       kv_sync('fdw_regress_kv', NULL) = kv_sync('fdw_regress_kv') AS null_is_default;
SELECT (a.applied_offset, a.keys, a.checksum) = (b.applied_offset, b.keys, b.checksum)
       AS same_checksum
FROM kv_checksum('fdw_regress_kv', 'kv') a, kv_checksum('fdw_regress_kv') b;
-- a server that does not exist; a server of another wrapper
SELECT pg_temp.try($$SELECT kv_sync('fdw_regress_kv', 'kv_nonesuch')$$);
SELECT pg_temp.try($$SELECT kv_detach('fdw_regress_kv', 'kv_nonesuch')$$);
CREATE FOREIGN DATA WRAPPER kv_regress_wrapper;
CREATE SERVER kv_elsewhere FOREIGN DATA WRAPPER kv_regress_wrapper;
SELECT pg_temp.try($$SELECT kv_checksum('fdw_regress_kv', 'kv_elsewhere')$$);
SELECT pg_temp.try($$SELECT kv_detach('fdw_regress_kv', 'kv_elsewhere')$$);
-- a wrapper of another name with kvstore's handler is kvstore's
CREATE FOREIGN DATA WRAPPER kv_regress_again
    HANDLER kvstore_fdw_handler VALIDATOR kvstore_fdw_validator;
CREATE SERVER kv_again FOREIGN DATA WRAPPER kv_regress_again;
SELECT kv_sync('fdw_regress_kv', 'kv_again') = kv_sync('fdw_regress_kv') AS same_end;
-- the topic is checked first
SELECT pg_temp.try($$SELECT kv_sync(NULL, 'kv')$$);
SELECT pg_temp.try($$SELECT kv_checksum(NULL, 'kv_nonesuch')$$);
SELECT pg_temp.try($$SELECT kv_detach(NULL, 'kv')$$);
-- naming a server takes USAGE on it, as creating a table of it does
CREATE ROLE kv_regress_operator;
GRANT EXECUTE ON FUNCTION kv_sync(text, name), kv_checksum(text, name),
      kv_detach(text, name) TO kv_regress_operator;
SET ROLE kv_regress_operator;
SELECT pg_temp.try($$SELECT kv_sync('fdw_regress_kv', 'kv')$$);
SELECT pg_temp.try($$SELECT kv_checksum('fdw_regress_kv', 'kv')$$);
SELECT pg_temp.try($$SELECT kv_detach('fdw_regress_kv', 'kv')$$);
SELECT kv_sync('fdw_regress_kv') > 0 AS default_needs_no_server;
RESET ROLE;
GRANT USAGE ON FOREIGN SERVER kv TO kv_regress_operator;
SET ROLE kv_regress_operator;
SELECT kv_sync('fdw_regress_kv', 'kv') > 0 AS synced;
SELECT keys > 0 AS counted FROM kv_checksum('fdw_regress_kv', 'kv');
RESET ROLE;
DROP OWNED BY kv_regress_operator;
DROP ROLE kv_regress_operator;
DROP SERVER kv_elsewhere, kv_again;
DROP FOREIGN DATA WRAPPER kv_regress_wrapper, kv_regress_again;

SET client_min_messages = warning;
DROP SCHEMA imported CASCADE;
DROP TABLE orders;
DROP SERVER kv CASCADE;
RESET client_min_messages;
