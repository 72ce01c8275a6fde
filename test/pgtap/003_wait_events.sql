-- kvstore's waits in pg_stat_activity: from PostgreSQL 17 on each has its
-- own name, before that all are the generic Extension
BEGIN;
SELECT plan(2);

SELECT 'kvtap_wait_' || md5(random()::text || clock_timestamp()::text) AS t \gset
SELECT kv_put(:'t', 'k', 'v') >= 0 AS written;

-- The wait event of a topic's worker, sampled until it is an extension's
-- wait (a worker spends its idle time waiting for records); NULL if it
-- never is within 10 s
CREATE FUNCTION pg_temp.worker_wait(topic text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
	ev text;
BEGIN
	FOR i IN 1..200 LOOP
		PERFORM pg_stat_clear_snapshot();
		SELECT a.wait_event INTO ev
		FROM pg_stat_activity a JOIN kv_topics k ON a.pid = k.worker_pid
		WHERE k.topic = worker_wait.topic AND a.wait_event_type = 'Extension';
		IF ev IS NOT NULL THEN
			RETURN ev;
		END IF;
		PERFORM pg_sleep(0.05);
	END LOOP;
	RETURN NULL;
END
$$;

SELECT is(pg_temp.worker_wait(:'t'),
		  CASE WHEN current_setting('server_version_num')::int >= 170000
			   THEN 'KvstoreWorkerMain' ELSE 'Extension' END,
		  'a worker waiting for records shows its wait event');

SELECT is((SELECT backend_type FROM pg_stat_activity a JOIN kv_topics k ON a.pid = k.worker_pid
		   WHERE k.topic = :'t'),
		  'kvstore worker', 'the worker shows as a kvstore worker');

SELECT * FROM finish();
ROLLBACK;
