-- Foreign tables give the answer an ordinary table holding the same rows
-- gives, for every query shape the index serves and every write
BEGIN;
SELECT plan(94);

SELECT 'kvtap_fdw_' || md5(random()::text || clock_timestamp()::text) AS t \gset
SELECT :'t' || '_bin' AS tbin, :'t' || '_json' AS tjson, :'t' || '_big' AS tbig \gset
SET client_min_messages = warning;

CREATE SERVER tap_kv FOREIGN DATA WRAPPER kvstore;

-- ===================================================================
-- the same rows in a foreign table and in an ordinary table
-- ===================================================================
-- keys: numbers in text (byte order differs from numeric order), case,
-- multibyte characters, prefixes of each other; one empty value
CREATE TABLE l (key text COLLATE "C" PRIMARY KEY, value text);
INSERT INTO l SELECT 'k' || g, 'v' || (g * 7 % 1000) FROM generate_series(1, 3000) g;
INSERT INTO l VALUES ('K', 'upper'), ('k', 'bare'), ('k_', 'underscore'), ('k%', 'percent'),
    ('ké', 'accent'), ('kë2', 'accent 2'), ('日本', 'kanji'), ('z', ''), ('~', 'tilde');
CREATE FOREIGN TABLE f (key text COLLATE "C", value text) SERVER tap_kv OPTIONS (topic :'t');
INSERT INTO f SELECT * FROM l;
-- the same rows under a collation whose order is not byte order
CREATE TABLE li (key text COLLATE "C.utf8" PRIMARY KEY, value text);
INSERT INTO li SELECT * FROM l;
CREATE FOREIGN TABLE fi (key text COLLATE "C.utf8", value text) SERVER tap_kv OPTIONS (topic :'t');

SELECT results_eq('SELECT * FROM f', 'SELECT * FROM l ORDER BY key', 'a full scan returns every row, in key order');
SELECT results_eq('SELECT count(*) FROM f', 'SELECT count(*) FROM l', 'count(*)');

-- ===================================================================
-- point look-ups
-- ===================================================================
SELECT results_eq($$SELECT * FROM f WHERE key = 'k42'$$, $$SELECT * FROM l WHERE key = 'k42'$$, 'key = constant');
SELECT is_empty($$SELECT * FROM f WHERE key = 'k0'$$, 'key = an absent key');
SELECT results_eq($$SELECT * FROM f WHERE key = '日本'$$, $$SELECT * FROM l WHERE key = '日本'$$, 'key = multibyte text');
SELECT results_eq($$SELECT value FROM f WHERE key = 'z'$$, $$SELECT value FROM l WHERE key = 'z'$$, 'an empty value is a value');
PREPARE fp(text) AS SELECT * FROM f WHERE key = $1;
PREPARE lp(text) AS SELECT * FROM l WHERE key = $1;
SET LOCAL plan_cache_mode = force_generic_plan;
SELECT results_eq('EXECUTE fp(''k7'')', 'EXECUTE lp(''k7'')', 'key = $1, generic plan');
SELECT is_empty('EXECUTE fp(NULL)', 'key = NULL');
RESET plan_cache_mode;
SELECT results_eq($$SELECT * FROM fi WHERE key = 'k42'$$, $$SELECT * FROM li WHERE key = 'k42'$$, 'key = constant, a collation other than "C"');
SELECT results_eq($$SELECT * FROM f WHERE key = 'K'$$, $$SELECT * FROM l WHERE key = 'K'$$, 'equality is case-sensitive');
SELECT results_eq($$SELECT * FROM fi WHERE key = 'K42' COLLATE "C.utf8"$$, $$SELECT * FROM li WHERE key = 'K42'$$, 'equality under a deterministic collation other than "C"');

-- ===================================================================
-- IN and = ANY
-- ===================================================================
SELECT results_eq($$SELECT * FROM f WHERE key IN ('k9', 'k10', 'k9', 'nope', 'k') ORDER BY key$$,
                  $$SELECT * FROM l WHERE key IN ('k9', 'k10', 'k9', 'nope', 'k') ORDER BY key$$, 'key IN (...), duplicates and absent keys');
SELECT results_eq($$SELECT * FROM f WHERE key = ANY (ARRAY['k3', NULL, 'k2']) ORDER BY key DESC$$,
                  $$SELECT * FROM l WHERE key = ANY (ARRAY['k3', NULL, 'k2']) ORDER BY key DESC$$, 'key = ANY (array with NULL), descending');
SELECT is_empty($$SELECT * FROM f WHERE key = ANY ('{}'::text[])$$, 'key = ANY (empty array)');
SELECT results_eq($$SELECT * FROM fi WHERE key IN ('k9', 'k10') ORDER BY key$$,
                  $$SELECT * FROM li WHERE key IN ('k9', 'k10') ORDER BY key$$, 'key IN (...), a collation other than "C"');
SELECT results_eq($$SELECT * FROM f WHERE key NOT IN ('k1', 'k2') ORDER BY key$$,
                  $$SELECT * FROM l WHERE key NOT IN ('k1', 'k2') ORDER BY key$$, 'key NOT IN (...) is a filter');

-- ===================================================================
-- ranges, with the "C" collation (pushed down) and without (filtered)
-- ===================================================================
SELECT results_eq($$SELECT * FROM f WHERE key < 'k2'$$, $$SELECT * FROM l WHERE key < 'k2' ORDER BY key$$, 'key < constant');
SELECT results_eq($$SELECT * FROM f WHERE key <= 'k2'$$, $$SELECT * FROM l WHERE key <= 'k2' ORDER BY key$$, 'key <= constant');
SELECT results_eq($$SELECT * FROM f WHERE key > 'k998'$$, $$SELECT * FROM l WHERE key > 'k998' ORDER BY key$$, 'key > constant');
SELECT results_eq($$SELECT * FROM f WHERE key >= 'k998'$$, $$SELECT * FROM l WHERE key >= 'k998' ORDER BY key$$, 'key >= constant');
SELECT results_eq($$SELECT * FROM f WHERE key BETWEEN 'k10' AND 'k11'$$, $$SELECT * FROM l WHERE key BETWEEN 'k10' AND 'k11' ORDER BY key$$, 'BETWEEN');
SELECT results_eq($$SELECT * FROM f WHERE 'k2999' < key AND key < 'k3'$$, $$SELECT * FROM l WHERE 'k2999' < key AND key < 'k3' ORDER BY key$$, 'the key on the right');
SELECT results_eq($$SELECT * FROM f WHERE key > 'k5' AND key > 'k50' AND key < 'k6' AND key <= 'k51'$$,
                  $$SELECT * FROM l WHERE key > 'k5' AND key > 'k50' AND key < 'k6' AND key <= 'k51' ORDER BY key$$, 'several bounds: the tightest ones');
SELECT is_empty($$SELECT * FROM f WHERE key > 'k5' AND key < 'k4'$$, 'crossed bounds');
SELECT results_eq($$SELECT * FROM f WHERE key >= 'k' AND key < 'l'$$, $$SELECT * FROM l WHERE key >= 'k' AND key < 'l' ORDER BY key$$, 'a wide range');
SELECT results_eq($$SELECT * FROM fi WHERE key < 'k2' ORDER BY key$$, $$SELECT * FROM li WHERE key < 'k2' ORDER BY key$$, 'key < constant, a collation other than "C"');
SELECT results_eq($$SELECT * FROM fi WHERE key BETWEEN 'K10' AND 'k11' ORDER BY key$$, $$SELECT * FROM li WHERE key BETWEEN 'K10' AND 'k11' ORDER BY key$$, 'BETWEEN, a collation other than "C"');
SELECT results_eq($$SELECT * FROM fi WHERE key > 'k2' COLLATE "C" ORDER BY key COLLATE "C"$$, $$SELECT * FROM li WHERE key > 'k2' COLLATE "C" ORDER BY key COLLATE "C"$$, 'an explicit "C" comparison on a column of another collation');
SELECT results_eq($$SELECT * FROM fi WHERE key ~>=~ 'k29' AND key ~<~ 'k3' ORDER BY key$$, $$SELECT * FROM li WHERE key ~>=~ 'k29' AND key ~<~ 'k3' ORDER BY key$$, 'text_pattern_ops comparisons');

-- ===================================================================
-- prefixes
-- ===================================================================
SELECT results_eq($$SELECT * FROM f WHERE key LIKE 'k12%'$$, $$SELECT * FROM l WHERE key LIKE 'k12%' ORDER BY key$$, 'LIKE prefix%');
SELECT results_eq($$SELECT * FROM f WHERE key LIKE 'k12_'$$, $$SELECT * FROM l WHERE key LIKE 'k12_' ORDER BY key$$, 'LIKE prefix_');
SELECT results_eq($$SELECT * FROM f WHERE key LIKE 'k1%3'$$, $$SELECT * FROM l WHERE key LIKE 'k1%3' ORDER BY key$$, 'LIKE prefix%suffix');
SELECT results_eq($$SELECT * FROM f WHERE key LIKE 'k\_%'$$, $$SELECT * FROM l WHERE key LIKE 'k\_%' ORDER BY key$$, 'LIKE with an escaped _');
SELECT results_eq($$SELECT * FROM f WHERE key LIKE 'k#%%' ESCAPE '#'$$, $$SELECT * FROM l WHERE key LIKE 'k#%%' ESCAPE '#' ORDER BY key$$, 'LIKE ... ESCAPE');
SELECT results_eq($$SELECT * FROM f WHERE key LIKE '%99'$$, $$SELECT * FROM l WHERE key LIKE '%99' ORDER BY key$$, 'LIKE %suffix is a filter');
SELECT results_eq($$SELECT * FROM f WHERE key LIKE 'k'$$, $$SELECT * FROM l WHERE key LIKE 'k' ORDER BY key$$, 'LIKE without a wildcard');
SELECT results_eq($$SELECT * FROM f WHERE key ^@ 'k29'$$, $$SELECT * FROM l WHERE key ^@ 'k29' ORDER BY key$$, 'key ^@ prefix');
SELECT results_eq($$SELECT * FROM f WHERE starts_with(key, 'kë')$$, $$SELECT * FROM l WHERE starts_with(key, 'kë') ORDER BY key$$, 'starts_with, multibyte');
SELECT results_eq($$SELECT * FROM f WHERE key ^@ 'k2' AND key ^@ 'k29' AND key LIKE 'k%'$$, $$SELECT * FROM l WHERE key ^@ 'k2' AND key ^@ 'k29' AND key LIKE 'k%' ORDER BY key$$, 'nested prefixes');
SELECT is_empty($$SELECT * FROM f WHERE key ^@ 'k2' AND key ^@ 'k3'$$, 'disjoint prefixes');
SELECT results_eq($$SELECT * FROM f WHERE key ^@ 'k1' AND key > 'k18'$$, $$SELECT * FROM l WHERE key ^@ 'k1' AND key > 'k18' ORDER BY key$$, 'a prefix and a bound');
PREPARE flike(text) AS SELECT * FROM f WHERE key LIKE $1;
PREPARE llike(text) AS SELECT * FROM l WHERE key LIKE $1 ORDER BY key;
SET LOCAL plan_cache_mode = force_generic_plan;
SELECT results_eq('EXECUTE flike(''k28_'')', 'EXECUTE llike(''k28_'')', 'LIKE $1, generic plan');
SELECT results_eq('EXECUTE flike(''%7'')', 'EXECUTE llike(''%7'')', 'LIKE $1 without a fixed start, generic plan');
RESET plan_cache_mode;
SELECT results_eq($$SELECT * FROM fi WHERE key LIKE 'k12%' ORDER BY key$$, $$SELECT * FROM li WHERE key LIKE 'k12%' ORDER BY key$$, 'LIKE prefix%, a collation other than "C"');

-- ===================================================================
-- order and limits
-- ===================================================================
SELECT results_eq($$SELECT * FROM f ORDER BY key LIMIT 10$$, $$SELECT * FROM l ORDER BY key LIMIT 10$$, 'ORDER BY key LIMIT');
SELECT results_eq($$SELECT * FROM f ORDER BY key DESC LIMIT 10$$, $$SELECT * FROM l ORDER BY key DESC LIMIT 10$$, 'ORDER BY key DESC LIMIT');
SELECT results_eq($$SELECT * FROM f ORDER BY key DESC$$, $$SELECT * FROM l ORDER BY key DESC$$, 'ORDER BY key DESC, every row');
SELECT results_eq($$SELECT * FROM f WHERE key LIKE 'k1%' ORDER BY key DESC LIMIT 20 OFFSET 5$$, $$SELECT * FROM l WHERE key LIKE 'k1%' ORDER BY key DESC LIMIT 20 OFFSET 5$$, 'a prefix, descending, OFFSET');
SELECT results_eq($$SELECT * FROM f WHERE key < 'k5' ORDER BY key DESC LIMIT 300$$, $$SELECT * FROM l WHERE key < 'k5' ORDER BY key DESC LIMIT 300$$, 'a range, descending, past a batch');
SELECT results_eq($$SELECT * FROM fi ORDER BY key LIMIT 10$$, $$SELECT * FROM li ORDER BY key LIMIT 10$$, 'ORDER BY key LIMIT, a collation other than "C"');
SELECT results_eq($$SELECT * FROM fi ORDER BY key DESC LIMIT 10$$, $$SELECT * FROM li ORDER BY key DESC LIMIT 10$$, 'ORDER BY key DESC LIMIT, a collation other than "C"');
SELECT results_eq($$SELECT * FROM f ORDER BY value, key LIMIT 10$$, $$SELECT * FROM l ORDER BY value, key LIMIT 10$$, 'ORDER BY another column');

-- ===================================================================
-- aggregates
-- ===================================================================
SELECT results_eq($$SELECT min(key), max(key), count(*), count(DISTINCT value) FROM f$$, $$SELECT min(key), max(key), count(*), count(DISTINCT value) FROM l$$, 'min, max, count');
SELECT results_eq($$SELECT left(key, 2) AS p, count(*), max(value) FROM f GROUP BY 1 ORDER BY 1$$, $$SELECT left(key, 2) AS p, count(*), max(value) FROM l GROUP BY 1 ORDER BY 1$$, 'GROUP BY');
SELECT results_eq($$SELECT count(*) FROM f WHERE key LIKE 'k2%' AND value > 'v5'$$, $$SELECT count(*) FROM l WHERE key LIKE 'k2%' AND value > 'v5'$$, 'a prefix and a filter on the value');

-- ===================================================================
-- joins, both ways
-- ===================================================================
CREATE TABLE orders (id int PRIMARY KEY, user_key text);
INSERT INTO orders SELECT g, CASE WHEN g % 10 = 0 THEN 'missing' || g ELSE 'k' || (g * 13 % 3000 + 1) END
FROM generate_series(1, 500) g;
ANALYZE orders;
SELECT results_eq($$SELECT o.id, f.key, f.value FROM orders o JOIN f ON f.key = o.user_key ORDER BY o.id$$,
                  $$SELECT o.id, l.key, l.value FROM orders o JOIN l ON l.key = o.user_key ORDER BY o.id$$, 'orders JOIN foreign table');
SELECT results_eq($$SELECT o.id, f.value FROM orders o LEFT JOIN f ON f.key = o.user_key ORDER BY o.id$$,
                  $$SELECT o.id, l.value FROM orders o LEFT JOIN l ON l.key = o.user_key ORDER BY o.id$$, 'orders LEFT JOIN foreign table');
SELECT results_eq($$SELECT f.key, count(o.id) FROM f LEFT JOIN orders o ON o.user_key = f.key GROUP BY f.key ORDER BY f.key$$,
                  $$SELECT l.key, count(o.id) FROM l LEFT JOIN orders o ON o.user_key = l.key GROUP BY l.key ORDER BY l.key$$, 'foreign table LEFT JOIN orders');
SELECT results_eq($$SELECT * FROM f WHERE key IN (SELECT user_key FROM orders WHERE id < 50) ORDER BY key$$,
                  $$SELECT * FROM l WHERE key IN (SELECT user_key FROM orders WHERE id < 50) ORDER BY key$$, 'semi-join');
SELECT results_eq($$SELECT count(*) FROM f WHERE NOT EXISTS (SELECT FROM orders o WHERE o.user_key = f.key)$$,
                  $$SELECT count(*) FROM l WHERE NOT EXISTS (SELECT FROM orders o WHERE o.user_key = l.key)$$, 'anti-join');
SET LOCAL enable_hashjoin = off;
SET LOCAL enable_nestloop = off;
SELECT results_eq($$SELECT o.id, f.value FROM orders o JOIN f ON f.key = o.user_key ORDER BY o.id$$,
                  $$SELECT o.id, l.value FROM orders o JOIN l ON l.key = o.user_key ORDER BY o.id$$, 'merge join');
RESET enable_hashjoin;
RESET enable_nestloop;
SELECT results_eq($$SELECT a.key, b.value FROM f a JOIN f b ON b.key = a.value WHERE a.key LIKE 'k1%' ORDER BY a.key$$,
                  $$SELECT a.key, b.value FROM l a JOIN l b ON b.key = a.value WHERE a.key LIKE 'k1%' ORDER BY a.key$$, 'a foreign table joined to itself');
SELECT results_eq($$SELECT o.id, s.value FROM orders o, LATERAL (SELECT value FROM f WHERE key = o.user_key) s ORDER BY o.id$$,
                  $$SELECT o.id, s.value FROM orders o, LATERAL (SELECT value FROM l WHERE key = o.user_key) s ORDER BY o.id$$, 'LATERAL look-ups');

-- ===================================================================
-- bytea keys
-- ===================================================================
CREATE TABLE lb (key bytea PRIMARY KEY, value bytea);
INSERT INTO lb SELECT decode(lpad(to_hex(g), 4, '0'), 'hex'), decode(lpad(to_hex(g * 31 % 256), 2, '0'), 'hex') FROM generate_series(0, 65535, 97) g;
INSERT INTO lb VALUES ('\x00', '\x'), ('\xff', '\x01'), ('\xffff', '\x02'), ('\xffffff', '\x03');
CREATE FOREIGN TABLE fb (key bytea, value bytea) SERVER tap_kv OPTIONS (topic :'tbin');
INSERT INTO fb SELECT * FROM lb;
SELECT results_eq($$SELECT * FROM fb$$, $$SELECT * FROM lb ORDER BY key$$, 'bytea: every row, in byte order');
SELECT results_eq($$SELECT * FROM fb WHERE key > '\x7f00' AND key <= '\xff' ORDER BY key DESC$$, $$SELECT * FROM lb WHERE key > '\x7f00' AND key <= '\xff' ORDER BY key DESC$$, 'bytea: a range, descending');
SELECT results_eq($$SELECT * FROM fb WHERE key LIKE '\377%'::bytea$$, $$SELECT * FROM lb WHERE key LIKE '\377%'::bytea ORDER BY key$$, 'bytea: a prefix of 0xff bytes');
SELECT results_eq($$SELECT * FROM fb WHERE key IN ('\x00', '\x0061', '\x1234')$$, $$SELECT * FROM lb WHERE key IN ('\x00', '\x0061', '\x1234') ORDER BY key$$, 'bytea: IN');

-- ===================================================================
-- typed JSON rows
-- ===================================================================
CREATE TABLE lj (key text COLLATE "C" PRIMARY KEY, email text, name text, age int, score numeric, active boolean, tags jsonb, born date);
INSERT INTO lj SELECT 'p' || g, 'u' || g || '@example.com', CASE WHEN g % 5 <> 0 THEN 'name "' || g || '"' END,
    18 + g % 60, g / 7.0, g % 2 = 0, CASE WHEN g % 3 = 0 THEN jsonb_build_array(g, 'x') END, DATE '2000-01-01' + g
FROM generate_series(1, 400) g;
CREATE FOREIGN TABLE fj (key text COLLATE "C", email text, name text, age int, score numeric, active boolean, tags jsonb, born date)
    SERVER tap_kv OPTIONS (topic :'tjson', format 'json');
INSERT INTO fj SELECT * FROM lj;
SELECT results_eq($$SELECT * FROM fj$$, $$SELECT * FROM lj ORDER BY key$$, 'json: every row and column round-trips');
SELECT results_eq($$SELECT key, age FROM fj WHERE age > 70 AND active$$, $$SELECT key, age FROM lj WHERE age > 70 AND active ORDER BY key$$, 'json: filters on fields');
SELECT results_eq($$SELECT avg(score), sum(age), count(tags), count(name) FROM fj$$, $$SELECT avg(score), sum(age), count(tags), count(name) FROM lj$$, 'json: aggregates');
UPDATE fj SET age = age + 1, name = NULL WHERE key LIKE 'p1%';
UPDATE lj SET age = age + 1, name = NULL WHERE key LIKE 'p1%';
SELECT results_eq($$SELECT * FROM fj$$, $$SELECT * FROM lj ORDER BY key$$, 'json: UPDATE');

-- ===================================================================
-- writes: after each, the same rows as the ordinary table
-- ===================================================================
CREATE TEMP TABLE ret_f (key text COLLATE "C", value text);
CREATE TEMP TABLE ret_l (key text COLLATE "C", value text);
INSERT INTO f VALUES ('new1', 'a'), ('new2', 'b'), ('k1', 'overwritten');
INSERT INTO l VALUES ('new1', 'a'), ('new2', 'b');
UPDATE l SET value = 'overwritten' WHERE key = 'k1';
SELECT results_eq('SELECT * FROM f', 'SELECT * FROM l ORDER BY key', 'INSERT, and INSERT of an existing key');
UPDATE f SET value = value || '+' WHERE key LIKE 'k20%';
UPDATE l SET value = value || '+' WHERE key LIKE 'k20%';
SELECT results_eq('SELECT * FROM f', 'SELECT * FROM l ORDER BY key', 'UPDATE of values');
UPDATE f SET key = 'moved:' || key WHERE key BETWEEN 'k21' AND 'k22';
UPDATE l SET key = 'moved:' || key WHERE key BETWEEN 'k21' AND 'k22';
SELECT results_eq('SELECT * FROM f', 'SELECT * FROM l ORDER BY key', 'UPDATE of keys');
UPDATE f SET key = CASE key WHEN 'k5' THEN 'k6' WHEN 'k6' THEN 'k7' ELSE 'k5' END WHERE key IN ('k5', 'k6', 'k7');
UPDATE l SET key = '#' || key WHERE key IN ('k5', 'k6', 'k7');
UPDATE l SET key = CASE key WHEN '#k5' THEN 'k6' WHEN '#k6' THEN 'k7' ELSE 'k5' END WHERE key IN ('#k5', '#k6', '#k7');
SELECT results_eq('SELECT * FROM f', 'SELECT * FROM l ORDER BY key', 'UPDATE of keys in a cycle');
UPDATE f SET key = key || 'x' WHERE key LIKE 'k9%';
UPDATE l SET key = key || 'x' WHERE key LIKE 'k9%';
SELECT results_eq('SELECT * FROM f', 'SELECT * FROM l ORDER BY key', 'an UPDATE does not meet the rows it wrote');
WITH d AS (DELETE FROM f WHERE key LIKE 'k4%' AND value < 'v5' RETURNING *) INSERT INTO ret_f SELECT * FROM d;
WITH d AS (DELETE FROM l WHERE key LIKE 'k4%' AND value < 'v5' RETURNING *) INSERT INTO ret_l SELECT * FROM d;
SELECT results_eq('SELECT * FROM f', 'SELECT * FROM l ORDER BY key', 'DELETE with a filter');
SELECT results_eq('SELECT * FROM ret_f ORDER BY key', 'SELECT * FROM ret_l ORDER BY key', 'DELETE ... RETURNING');
DELETE FROM f WHERE key >= 'k3' AND key < 'k35';
DELETE FROM l WHERE key >= 'k3' AND key < 'k35';
SELECT results_eq('SELECT * FROM f', 'SELECT * FROM l ORDER BY key', 'DELETE of a range (direct)');
DELETE FROM f WHERE key IN ('k1', 'k2', 'nope');
DELETE FROM l WHERE key IN ('k1', 'k2', 'nope');
SELECT results_eq('SELECT * FROM f', 'SELECT * FROM l ORDER BY key', 'DELETE of listed keys (direct)');
SELECT results_eq($$WITH u AS (UPDATE f SET value = 'r' WHERE key LIKE 'new%' RETURNING key, value) SELECT * FROM u ORDER BY key$$,
                  $$WITH u AS (UPDATE l SET value = 'r' WHERE key LIKE 'new%' RETURNING key, value) SELECT * FROM u ORDER BY key$$, 'UPDATE ... RETURNING');
COPY f FROM stdin;
copy:1	one
copy:2	two
k8	copied over
\.
COPY l FROM stdin;
copy:1	one
copy:2	two
\.
UPDATE l SET value = 'copied over' WHERE key = 'k8';
SELECT results_eq('SELECT * FROM f', 'SELECT * FROM l ORDER BY key', 'COPY FROM');
SAVEPOINT before_rollback;
INSERT INTO f VALUES ('rolled back', 'still there');
ROLLBACK TO SAVEPOINT before_rollback;
SELECT results_eq($$SELECT value FROM f WHERE key = 'rolled back'$$, $$VALUES ('still there')$$, 'ROLLBACK does not undo a write already in Kafka');
DELETE FROM f WHERE key = 'rolled back';

-- a failing statement leaves nothing
SELECT throws_ok($$INSERT INTO f VALUES ('fail1', 'x'), ('fail2', 'y'), (NULL, 'z')$$, '23502', NULL, 'a NULL key fails the statement');
SELECT throws_ok($$INSERT INTO f SELECT 'fail:' || g, CASE WHEN g = 900 THEN repeat('x', 1000000) ELSE 'v' END FROM generate_series(1, 1000) g$$,
                 '54000', NULL, 'an oversized row fails the statement');
SELECT throws_ok($$UPDATE f SET value = NULL WHERE key LIKE 'k1%'$$, '23502', NULL, 'a NULL value fails the UPDATE');
SELECT results_eq('SELECT * FROM f', 'SELECT * FROM l ORDER BY key', 'failed statements wrote nothing');

TRUNCATE f;
SELECT is_empty('SELECT * FROM f', 'TRUNCATE deletes every key');
SELECT is_empty('SELECT * FROM fi', 'another table of the topic sees it empty');

-- ===================================================================
-- a million rows
-- ===================================================================
CREATE FOREIGN TABLE fbig (key text COLLATE "C", value text) SERVER tap_kv OPTIONS (topic :'tbig');
SELECT lives_ok($$INSERT INTO fbig SELECT 'row:' || g, g::text FROM generate_series(1, 1000000) g$$, 'INSERT ... SELECT of 1,000,000 rows');
SELECT results_eq($$SELECT count(*), min(key) COLLATE "default", max(key) COLLATE "default" FROM fbig$$,
                  $$VALUES (1000000::bigint, 'row:1', 'row:999999')$$, 'all of them are there');
SELECT results_eq($$SELECT value FROM fbig WHERE key = 'row:777777'$$, $$VALUES ('777777')$$, 'and each is found');
SELECT results_eq($$SELECT count(*) FROM fbig WHERE key LIKE 'row:99999%'$$, $$VALUES (11::bigint)$$, 'a prefix among a million keys');
SELECT results_eq($$SELECT key FROM fbig ORDER BY key DESC LIMIT 3$$, $$VALUES ('row:999999' COLLATE "C"), ('row:999998'), ('row:999997')$$, 'the last keys of a million');

SELECT * FROM finish();
ROLLBACK;
