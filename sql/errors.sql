--
-- kvstore errors: each bad input gets its SQLSTATE and a message naming
-- the topic; nothing is sent.
--
SELECT 'kverr_' || md5(random()::text || clock_timestamp()::text) AS t \gset

-- Run a query; show its SQLSTATE and message, the topic name masked
CREATE FUNCTION pg_temp.try(query text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE query;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' ||
        replace(SQLERRM, current_setting('kvtest.topic'), '<topic>');
END $$;
SELECT set_config('kvtest.topic', :'t', false) IS NOT NULL AS masked;
SELECT kv_put(:'t', 'k', 'v') >= 0 AS attached;

-- ===================================================================
-- NULLs and empty keys
-- ===================================================================
SELECT pg_temp.try($$SELECT kv_put(NULL, 'k', 'v')$$);
SELECT pg_temp.try(format($$SELECT kv_put(%L, NULL::text, 'v')$$, :'t'));
SELECT pg_temp.try(format($$SELECT kv_put(%L, 'k', NULL::text)$$, :'t'));
SELECT pg_temp.try(format($$SELECT kv_put(%L, '', 'v')$$, :'t'));
SELECT pg_temp.try(format($$SELECT kv_exists(%L, '')$$, :'t'));
SELECT pg_temp.try(format($$SELECT kv_put_bytea(%L, '', '\x00')$$, :'t'));
SELECT pg_temp.try(format($$SELECT kv_get(%L, '')$$, :'t'));
SELECT pg_temp.try(format($$SELECT kv_delete(%L, NULL::text)$$, :'t'));
SELECT pg_temp.try(format($$SELECT kv_get(%L, NULL::text)$$, :'t'));
SELECT pg_temp.try($$SELECT kv_get(NULL, 'k')$$);

-- ===================================================================
-- sizes, arrays, limits
-- ===================================================================
SELECT pg_temp.try(format($$SELECT kv_put(%L, 'big', repeat('x', 999998))$$, :'t'));
-- key plus value at exactly the limit is stored; one byte more is refused
SELECT kv_put(:'t', 'kk', repeat('x', 999998)) >= 0 AS at_limit,
       length(kv_get(:'t', 'kk')) AS stored;
SELECT pg_temp.try(format($$SELECT kv_put_many(%L, ARRAY['a', 'b'], ARRAY['1'])$$, :'t'));
SELECT pg_temp.try(format($$SELECT kv_put_many(%L, ARRAY['a', NULL], ARRAY['1', '2'])$$, :'t'));
SELECT pg_temp.try(format($$SELECT kv_put_many(%L, NULL::text[], ARRAY['1'])$$, :'t'));
SELECT pg_temp.try(format($$SELECT kv_put_many(%L, ARRAY['a', ''], ARRAY['1', '2'])$$, :'t'));
SELECT pg_temp.try(format($$SELECT * FROM kv_scan(%L, 'p', -1)$$, :'t'));
-- arrays must be one-dimensional
SELECT pg_temp.try(format($$SELECT kv_put_many(%L, ARRAY[['a', 'b'], ['c', 'd']], ARRAY[['1', '2'], ['3', '4']])$$, :'t'));
SELECT pg_temp.try(format($$SELECT kv_put_many(%L, ARRAY['a', 'b'], ARRAY[['1'], ['2']])$$, :'t'));
SELECT pg_temp.try(format($$SELECT kv_put_many_bytea(%L, ARRAY[['\x01'::bytea]], ARRAY['\x02'::bytea])$$, :'t'));
-- none of the refused batches reached the topic
SELECT kv_exists(:'t', 'a') AS a_written, kv_exists(:'t', 'big') AS big_written;

-- ===================================================================
-- topic names Kafka would reject
-- ===================================================================
SELECT pg_temp.try($$SELECT kv_get('', 'k')$$);
SELECT pg_temp.try($$SELECT kv_get('no spaces', 'k')$$);
SELECT pg_temp.try($$SELECT kv_get('..', 'k')$$);
SELECT pg_temp.try($$SELECT kv_get('caf' || chr(233), 'k')$$);
SELECT pg_temp.try(format($$SELECT kv_get(%L, 'k')$$, repeat('t', 128)));

-- ===================================================================
-- keys and values that are not text
-- ===================================================================
SELECT kv_put_bytea(:'t', 'binary', '\xff00fe') >= 0 AS put;
SELECT pg_temp.try(format($$SELECT kv_get(%L, 'binary')$$, :'t'));
SELECT kv_get_bytea(:'t', 'binary');
-- a key that is not text: the text scans refuse it when they meet it
SELECT kv_put_many_bytea(:'t', ARRAY['\x6f6b'::bytea, '\x70ff', '\x71'],
                               ARRAY['\x31'::bytea, '\x32', '\xfe']) >= 0 AS put_many;
SELECT pg_temp.try(format($$SELECT * FROM kv_scan(%L, 'p')$$, :'t'));
SELECT pg_temp.try(format($$SELECT * FROM kv_range(%L, 'p', NULL)$$, :'t'));
SELECT pg_temp.try(format($$SELECT * FROM kv_range(%L, 'q', NULL)$$, :'t'));
SELECT * FROM kv_scan(:'t', 'o');
SELECT * FROM kv_range(:'t', 'o', 'p');
SELECT * FROM kv_range_bytea(:'t', 'o', NULL);

-- ===================================================================
-- arguments are checked before a topic is opened: nothing is attached
-- ===================================================================
SELECT 'kvnew_' || md5(random()::text || clock_timestamp()::text) AS n \gset
SELECT set_config('kvtest.topic', :'n', false) IS NOT NULL AS masked;
SELECT pg_temp.try(format($$SELECT kv_get(%L, NULL::text)$$, :'n'));
SELECT pg_temp.try(format($$SELECT kv_put(%L, '', 'v')$$, :'n'));
SELECT pg_temp.try(format($$SELECT kv_put_many(%L, ARRAY['a'], ARRAY['1', '2'])$$, :'n'));
SELECT pg_temp.try(format($$SELECT * FROM kv_scan(%L, 'p', -1)$$, :'n'));
SELECT count(*) AS attached FROM kv_topics WHERE topic = :'n';
-- a read of a missing topic is an error, not an empty answer, and creates nothing
SELECT pg_temp.try(format($$SELECT kv_get(%L, 'k')$$, :'n'));
SELECT pg_temp.try(format($$SELECT kv_sync(%L)$$, :'n'));
SELECT count(*) AS attached FROM kv_topics WHERE topic = :'n';
-- internal topics are refused before anything is asked of Kafka
SELECT pg_temp.try($$SELECT kv_get('__consumer_offsets', 'k')$$);
SELECT pg_temp.try($$SELECT kv_put('_schemas', 'k', 'v')$$);
-- a created topic is empty, and kv_sync returns its end
SELECT kv_create_topic(:'n') AS created, kv_create_topic(:'n') AS created_again;
SELECT kv_sync(:'n') AS end_offset, kv_get(:'n', 'k') IS NULL AS empty;
