--
-- A nondeterministic collation: not even equality compares bytes, so
-- nothing is pushed down.  It needs ICU; builds without ICU refuse the
-- collation (expected/fdw_icu_1.out).
--
\set VERBOSITY terse
SET client_min_messages = warning;
SELECT kv_create_topic('fdw_regress_icu') IS NOT NULL AS topic;
CREATE SERVER kv_icu FOREIGN DATA WRAPPER kvstore;
CREATE FOREIGN TABLE ft_icu (key text COLLATE "C", value text)
    SERVER kv_icu OPTIONS (topic 'fdw_regress_icu');
TRUNCATE ft_icu;
INSERT INTO ft_icu VALUES ('user:1', 'one'), ('user:2', 'two');
CREATE COLLATION fdw_nocase (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
EXPLAIN (VERBOSE, COSTS OFF) SELECT * FROM ft_icu WHERE key = 'USER:1' COLLATE fdw_nocase;
SELECT * FROM ft_icu WHERE key = 'USER:1' COLLATE fdw_nocase;
DROP SERVER kv_icu CASCADE;
DROP COLLATION IF EXISTS fdw_nocase;
RESET client_min_messages;
