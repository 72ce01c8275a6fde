/*-------------------------------------------------------------------------
 *
 * worker.c
 *		  Materializers: consume a topic, apply it to the index, publish
 *		  the applied offset
 *
 * Attaching a topic (topic.c) claims a slot in shared memory and starts
 * one dynamic background worker for it.  The worker empties the topic's
 * index, reads the end of the log (the last stable offset: it consumes
 * read_committed), and replays the topic from its beginning; once it has
 * applied everything
 * up to that point the topic is READY and reads and writes proceed.  Then
 * it keeps consuming: each batch of records is applied under one
 * exclusive hold of the topic lock, during which the worker also advances
 * the topic's applied offset; after it, the worker broadcasts the topic's
 * condition variable, waking the writers that wait for their offsets.
 *
 * The worker sleeps on a WaitEventSet holding its latch, postmaster death
 * and a pipe that librdkafka writes to when the consumer queue turns
 * non-empty, so it wakes the moment records arrive.
 *
 * If the worker dies, the postmaster restarts it and it rebuilds the index
 * from Kafka; so does a worker that sees offsets go backwards or its offset
 * vanish (the topic was recreated).  Every change that makes the index
 * unfit to read (leaving READY, emptying it) is made under the exclusive
 * topic lock and bumps the topic's generation, which readers check under
 * their shared lock.
 *
 * A record the index has no memory for (its own limit, from
 * kvstore.topic_memory_limit, or kvstore.shared_memory for all topics) is
 * not applied: the topic stops before it, in state FULL, and keeps what it
 * holds for readers, its lag growing as the log goes on.  Nothing is
 * emptied, neither this topic nor another.  The worker pauses the
 * partition and seeks back to that record, then tries again when the
 * configuration is reloaded, and every KV_FULL_RETRY_SECONDS, since other
 * topics may have freed memory; once the record fits, the topic goes on by
 * itself.  Past 90% of its limit, or of kvstore.shared_memory, the worker
 * warns in the server log.
 *
 * The launcher, a static worker, attaches the topics of kvstore.topics at
 * server start.
 *
 * IDENTIFICATION
 *		  src/worker.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <fcntl.h>
#include <unistd.h>
#include <librdkafka/rdkafka.h>

#include "access/xlog.h"
#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/varlena.h"
#include "utils/wait_event.h"

#include "kvstore.h"

/* Records taken from the consumer's queue at a time */
#define KV_APPLY_BATCH 1000

/*
 * Most records applied under one hold of the topic lock once readers read
 * the topic (see apply_batch): more than a record batch of 1 MB can hold,
 * few enough that a stream of writes cannot hold readers off for long
 */
#define KV_HOLD_RECORDS 200000

/* How far ahead in a batch the index is asked to prefetch */
#define KV_PREFETCH_AHEAD 8

/* Seconds before the postmaster restarts a worker that died */
#define KV_RESTART_SECONDS 1

/* Seconds between tries of a topic stopped for memory */
#define KV_FULL_RETRY_SECONDS 10

/* What applying a batch came to */
typedef enum KvApplyResult
{
	KV_APPLIED,					/* all applied, position published */
	KV_REBUILD,					/* the log changed under the index */
	KV_FULL						/* a record does not fit: stopped before it */
} KvApplyResult;

static KvTopic *my_topic = NULL;
static rd_kafka_t *my_consumer = NULL;
static rd_kafka_queue_t *my_queue = NULL;	/* its consumer queue */

/* While the topic is FULL: the record it stopped at, and the next try */
static int64 full_at = -1;
static TimestampTz full_retry_at = 0;
static bool full_paused = false;	/* fetching paused until that try */
static bool full_warned = false;	/* the stop was reported */
static bool full_oversize = false;	/* stopped at a record larger than an
									 * index holds, not for memory */

/* The topic past 90% of its own limit was reported */
static bool memory_warned = false;

static void worker_exit(int code, Datum arg);
static void worker_fail(const char *fmt,...) pg_attribute_printf(1, 2);
static rd_kafka_t *consumer_create(void);
static void bootstrap_begin(int64 low, int64 high);
static KvApplyResult apply_batch(rd_kafka_message_t **msgs, int *nmsgs);
static inline void hash_keys(rd_kafka_message_t **msgs, int n,
							 uint64 *hashes);
static inline void prefetch(dsa_area *area, const uint64 *hashes, int n,
							int i);
static void publish(int64 position, bool at_eof, bool advanced);
static bool detach_requested(void);
static void detach_and_exit(void);
static int64 wait_deadline(TimestampTz until);
static void read_log_end(void);
static void lock_index(void);
static void apply_memory_limit(void);
static void set_partition_paused(bool paused);
static void stop_for_memory(void);
static void check_memory_use(void);
static bool bootstrapping(void);
static int64 consumer_position(const char *name);

/*
 * KvWorkerStart
 *		Start the materializer of a topic whose slot was just claimed.
 *
 * The topic's name travels in bgw_extra, the hash of its connection in
 * the main argument: the worker finds the connection in the slot.  Returns
 * false when no background worker slot is free.
 */
bool
KvWorkerStart(const char *name, uint64 conn_hash)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_ConsistentState;
	worker.bgw_restart_time = KV_RESTART_SECONDS;
	strlcpy(worker.bgw_library_name, "kvstore", BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, "kvstore_worker_main", BGW_MAXLEN);
	snprintf(worker.bgw_name, BGW_MAXLEN, "kvstore worker for topic %s", name);
	strlcpy(worker.bgw_type, "kvstore worker", BGW_MAXLEN);
	strlcpy(worker.bgw_extra, name, BGW_EXTRALEN);
	worker.bgw_main_arg = UInt64GetDatum(conn_hash);
	return RegisterDynamicBackgroundWorker(&worker, NULL);
}

/*
 * KvLauncherRegister
 *		Register the launcher when kvstore.topics names topics.
 */
void
KvLauncherRegister(void)
{
	BackgroundWorker worker;

	if (kvstore_topics == NULL || kvstore_topics[0] == '\0')
		return;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS;
	worker.bgw_start_time = BgWorkerStart_ConsistentState;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	strlcpy(worker.bgw_library_name, "kvstore", BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, "kvstore_launcher_main", BGW_MAXLEN);
	strlcpy(worker.bgw_name, "kvstore launcher", BGW_MAXLEN);
	strlcpy(worker.bgw_type, "kvstore launcher", BGW_MAXLEN);
	RegisterBackgroundWorker(&worker);
}

/*
 * kvstore_launcher_main
 *		Attach the topics of kvstore.topics, retrying while Kafka is
 *		unreachable, then exit.
 */
void
kvstore_launcher_main(Datum main_arg)
{
	char	   *rawnames;
	List	   *pending;
	MemoryContext context = CurrentMemoryContext;

	pqsignal(SIGTERM, SignalHandlerForShutdownRequest);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	BackgroundWorkerUnblockSignals();

	rawnames = pstrdup(kvstore_topics);
	if (!SplitGUCList(rawnames, ',', &pending))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid list syntax in kvstore.topics")));

	while (!ShutdownRequestPending && pending != NIL)
	{
		List	   *retry = NIL;
		ListCell   *lc;

		foreach(lc, pending)
		{
			char	   *name = (char *) lfirst(lc);

			PG_TRY();
			{
				(void) KvTopicOpen(name, KV_OPEN_WRITE, NULL);
			}
			PG_CATCH();
			{
				ErrorData  *edata;

				MemoryContextSwitchTo(context);
				edata = CopyErrorData();
				FlushErrorState();
				LWLockReleaseAll();
				ereport(LOG,
						(errmsg("kvstore could not attach topic \"%s\" listed in kvstore.topics: %s",
								name, edata->message)));
				if (edata->sqlerrcode == ERRCODE_FDW_UNABLE_TO_ESTABLISH_CONNECTION)
					retry = lappend(retry, name);
				FreeErrorData(edata);
			}
			PG_END_TRY();
		}
		pending = retry;
		if (pending != NIL)
		{
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 5000L, KvWaitEvent(KV_WAIT_KAFKA_RETRY));
			ResetLatch(MyLatch);
		}
	}
	proc_exit(0);
}

/* Leave the slot for the next worker; close the consumer */
static void
worker_exit(int code, Datum arg)
{
	/* The consumer does not close while its queue is referenced */
	if (my_queue != NULL)
	{
		rd_kafka_queue_destroy(my_queue);
		my_queue = NULL;
	}
	if (my_consumer != NULL)
	{
		rd_kafka_consumer_close(my_consumer);
		rd_kafka_destroy(my_consumer);
		my_consumer = NULL;
	}
	if (my_topic == NULL)
		return;

	/* Readers wait for the next worker: the index is no longer followed */
	LWLockReleaseAll();
	lock_index();
	SpinLockAcquire(&my_topic->mutex);
	my_topic->worker_pid = 0;
	if (my_topic->state != KV_TOPIC_ERROR)
		my_topic->state = KV_TOPIC_STARTING;
	SpinLockRelease(&my_topic->mutex);
	LWLockRelease(my_topic->lock);
	ConditionVariableBroadcast(&my_topic->cv);
}

/* Record an error as the topic's last error and exit to be restarted */
static void
worker_fail(const char *fmt,...)
{
	va_list		args;
	char		message[KV_MAX_ERROR_TEXT];

	va_start(args, fmt);
	vsnprintf(message, sizeof(message), fmt, args);
	va_end(args);

	SpinLockAcquire(&my_topic->mutex);
	strlcpy(my_topic->last_error, message, sizeof(my_topic->last_error));
	SpinLockRelease(&my_topic->mutex);
	ereport(ERROR,
			(errcode(ERRCODE_FDW_ERROR),
			 errmsg("kvstore worker of topic \"%s\" restarts: %s",
					my_topic->name, message)));
}

/* The consumer of this worker's topic, reading committed records */
static rd_kafka_t *
consumer_create(void)
{
	rd_kafka_conf_t *conf = KvKafkaConfNew("worker",
										   my_topic->conn[0] ? my_topic->conn : NULL);
	rd_kafka_t *rk;
	char		errstr[512];
	char		group[64];

	/* assign() needs a group id; nothing is ever committed to the group */
	snprintf(group, sizeof(group), "kvstore-" UINT64_FORMAT, GetSystemIdentifier());
	KvKafkaConfSet(conf, "group.id", group);
	KvKafkaConfSet(conf, "enable.auto.commit", "false");
	KvKafkaConfSet(conf, "enable.auto.offset.store", "false");
	KvKafkaConfSet(conf, "isolation.level", "read_committed");
	KvKafkaConfSet(conf, "enable.partition.eof", "true");
	KvKafkaConfSet(conf, "auto.offset.reset", "error");
	KvKafkaConfSet(conf, "fetch.error.backoff.ms", "100");
	/* Large fetches: a replay is bound by fetch round trips otherwise */
	KvKafkaConfSet(conf, "max.partition.fetch.bytes", "16777216");
	/*
	 * A fetch queue that reaches a threshold stops fetching for a second
	 * (fixed in librdkafka 2.0; fetch.queue.backoff.ms later).  A replay
	 * fills it faster than it is applied, and applies 100,000 small
	 * records, the default count, in a fraction of that second, then
	 * idles: bound the queue by its bytes alone, 256 MB, which take a few
	 * seconds to apply.
	 */
	KvKafkaConfSet(conf, "queued.min.messages", "10000000");
	KvKafkaConfSet(conf, "queued.max.messages.kbytes", "262144");

	rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
	if (rk == NULL)
	{
		rd_kafka_conf_destroy(conf);
		worker_fail("could not create a Kafka consumer: %s", errstr);
	}
	conf = NULL;				/* now owned by rk */
	rd_kafka_set_log_queue(rk, NULL);
	rd_kafka_poll_set_consumer(rk);
	return rk;
}

/* Empty the index and start a replay up to high */
static void
bootstrap_begin(int64 low, int64 high)
{
	lock_index();
	SpinLockAcquire(&my_topic->mutex);
	my_topic->state = KV_TOPIC_BOOTSTRAP;
	my_topic->generation++;
	my_topic->worker_pid = MyProcPid;
	my_topic->bootstrap_from = low;
	my_topic->bootstrap_target = high;
	my_topic->end_offset = high;
	my_topic->bootstrap_start = GetCurrentTimestamp();
	my_topic->bootstrap_end = 0;
	my_topic->records = 0;
	my_topic->skipped = 0;
	SpinLockRelease(&my_topic->mutex);

	KvIndexClear(KvShmemArea(), &my_topic->index);
	KvIndexReserve(KvShmemArea(), &my_topic->index, (uint64) (high - low));
	pg_atomic_write_u64(&my_topic->applied, 0);
	LWLockRelease(my_topic->lock);

	publish(low, high <= low, false);
}

/*
 * Publish the position reached: every record below it is applied.
 *
 * Ends the bootstrap once the position reaches its target, then wakes the
 * waiters; `advanced` says the caller already advanced the applied offset
 * to the position, under the topic lock.
 */
static void
publish(int64 position, bool at_eof, bool advanced)
{
	bool		changed = advanced;

	if (position > (int64) pg_atomic_read_u64(&my_topic->applied))
	{
		pg_atomic_write_u64(&my_topic->applied, position);
		changed = true;
	}

	SpinLockAcquire(&my_topic->mutex);
	if (at_eof || position > my_topic->end_offset)
		my_topic->end_offset = position;
	if (my_topic->state == KV_TOPIC_BOOTSTRAP &&
		position >= my_topic->bootstrap_target)
	{
		my_topic->state = KV_TOPIC_READY;
		my_topic->bootstrap_end = GetCurrentTimestamp();
		my_topic->last_error[0] = '\0';
		changed = true;
	}
	SpinLockRelease(&my_topic->mutex);

	if (changed)
		ConditionVariableBroadcast(&my_topic->cv);
}

/* The consumer's position: the next offset it will fetch */
static int64
consumer_position(const char *name)
{
	rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(1);
	int64		position = -1;

	rd_kafka_topic_partition_list_add(parts, name, 0);
	if (rd_kafka_position(my_consumer, parts) == RD_KAFKA_RESP_ERR_NO_ERROR &&
		parts->elems[0].err == RD_KAFKA_RESP_ERR_NO_ERROR)
		position = parts->elems[0].offset;
	rd_kafka_topic_partition_list_destroy(parts);
	return position;
}

/* Whether the bootstrap is still under way */
static bool
bootstrapping(void)
{
	bool		result;

	SpinLockAcquire(&my_topic->mutex);
	result = my_topic->state == KV_TOPIC_BOOTSTRAP;
	SpinLockRelease(&my_topic->mutex);
	return result;
}

/* Take the topic lock exclusively, through the gate that holds readers back */
static void
lock_index(void)
{
	pg_atomic_write_u32(&my_topic->worker_waiting, 1);
	pg_memory_barrier();
	LWLockAcquire(my_topic->gate, LW_EXCLUSIVE);
	LWLockAcquire(my_topic->lock, LW_EXCLUSIVE);
	LWLockRelease(my_topic->gate);
	pg_atomic_write_u32(&my_topic->worker_waiting, 0);
}

/* Ask Kafka where the topic's log ends, for the lag kv_topics shows */
static void
read_log_end(void)
{
	int64_t		log_start;
	int64_t		log_end;

	if (rd_kafka_query_watermark_offsets(my_consumer, my_topic->name, 0,
										 &log_start, &log_end,
										 1000) == RD_KAFKA_RESP_ERR_NO_ERROR)
	{
		SpinLockAcquire(&my_topic->mutex);
		my_topic->end_offset = Max(my_topic->end_offset, log_end);
		SpinLockRelease(&my_topic->mutex);
	}
}

/* Milliseconds until a time, at least 1 */
static int64
wait_deadline(TimestampTz until)
{
	long		secs;
	int			usecs;

	TimestampDifference(GetCurrentTimestamp(), until, &secs, &usecs);
	return Max((int64) secs * 1000 + usecs / 1000, 1);
}

/*
 * Give the index the limit kvstore.topic_memory_limit sets for the topic,
 * and kvstore.shared_memory as the limit of all indexes together
 */
static void
apply_memory_limit(void)
{
	uint64		limit;
	uint64		held_limit = (uint64) kvstore_shared_memory * 1024;
	const char *error;

	/* The setting was checked when it was set */
	if (!KvTopicMemoryLimit(kvstore_topic_memory_limit, my_topic->name,
							&limit, &error))
		limit = 0;
	if (limit == my_topic->index.limit &&
		held_limit == my_topic->index.held_limit)
		return;
	lock_index();
	if (limit != my_topic->index.limit)
		memory_warned = false;
	my_topic->index.limit = limit;
	my_topic->index.held_limit = held_limit;
	LWLockRelease(my_topic->lock);
}

/* Pause or resume fetching the topic's partition */
static void
set_partition_paused(bool paused)
{
	rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(1);

	rd_kafka_topic_partition_list_add(parts, my_topic->name, 0);
	if (paused)
		(void) rd_kafka_pause_partitions(my_consumer, parts);
	else
		(void) rd_kafka_resume_partitions(my_consumer, parts);
	rd_kafka_topic_partition_list_destroy(parts);
	full_paused = paused;
}

/*
 * The topic stopped at full_at, a record its index has no memory for:
 * publish what it applied, say why, and have the consumer fetch that
 * record again at the next try.
 */
static void
stop_for_memory(void)
{
	rd_kafka_topic_partition_list_t *parts;
	rd_kafka_error_t *error;

	publish(full_at, false, false);
	set_partition_paused(true);
	parts = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(parts, my_topic->name, 0)->offset = full_at;
	error = rd_kafka_seek_partitions(my_consumer, parts, 5000);
	rd_kafka_topic_partition_list_destroy(parts);
	if (error != NULL)
	{
		char		message[KV_MAX_ERROR_TEXT];

		snprintf(message, sizeof(message), "%s", rd_kafka_error_string(error));
		rd_kafka_error_destroy(error);
		worker_fail("could not seek back to offset " INT64_FORMAT ": %s",
					full_at, message);
	}
	full_retry_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
												KV_FULL_RETRY_SECONDS * 1000);
	read_log_end();
	if (!full_warned)
	{
		char		error_text[KV_MAX_ERROR_TEXT];

		SpinLockAcquire(&my_topic->mutex);
		strlcpy(error_text, my_topic->last_error, sizeof(error_text));
		SpinLockRelease(&my_topic->mutex);
		if (full_oversize)
			ereport(WARNING,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("kvstore topic \"%s\" stopped at offset " INT64_FORMAT ": the record is larger than an index holds",
							my_topic->name, full_at),
					 errdetail("%s", error_text),
					 errhint("The topic serves reads of what it holds until the record is deleted or compacted away.")));
		else
			ereport(WARNING,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("kvstore topic \"%s\" stopped for memory at offset " INT64_FORMAT,
							my_topic->name, full_at),
					 errdetail("%s", error_text),
					 errhint("Raise kvstore.topic_memory_limit or kvstore.shared_memory and reload the configuration; the topic serves reads meanwhile and goes on by itself.")));
		full_warned = true;
	}
}

/* Warn once past 90% of the topic's limit, or of kvstore.shared_memory */
static void
check_memory_use(void)
{
	uint64		bytes = my_topic->index.bytes;
	uint64		limit = my_topic->index.limit;
	uint64		area_limit = (uint64) kvstore_shared_memory * 1024;
	uint64		held = KvShmemHeld();

	if (limit != 0 && bytes >= limit / 10 * 9)
	{
		if (!memory_warned)
			ereport(WARNING,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("kvstore topic \"%s\" holds %d%% of its memory limit",
							my_topic->name, (int) (bytes * 100 / limit)),
					 errdetail("Its index holds " UINT64_FORMAT " bytes of the " UINT64_FORMAT " that kvstore.topic_memory_limit allows it.",
							   bytes, limit),
					 errhint("At the limit the topic refuses new keys; raise kvstore.topic_memory_limit and reload the configuration.")));
		memory_warned = true;
	}
	else if (limit == 0 || bytes < limit / 10 * 8)
		memory_warned = false;

	if (KvShmemWarnArea(held >= area_limit / 10 * 9, held < area_limit / 10 * 8))
		ereport(WARNING,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("kvstore topics hold %d%% of kvstore.shared_memory",
						(int) (held * 100 / area_limit)),
				 errdetail("The indexes of all topics hold " UINT64_FORMAT " bytes of " UINT64_FORMAT "; topic \"%s\" holds " UINT64_FORMAT ".",
						   held, area_limit, my_topic->name, bytes),
				 errhint("A topic that finds no more memory stops; raise kvstore.shared_memory and reload the configuration.")));
}

/*
 * The KvIndexHash of each message's key, 0 for a message without one: each
 * key is hashed once, for the prefetches ahead of it and for applying it.
 * Only this process changes the hash key (KvIndexClear), so the topic lock
 * need not be held.
 */
static inline void
hash_keys(rd_kafka_message_t **msgs, int n, uint64 *hashes)
{
	for (int i = 0; i < n; i++)
	{
		rd_kafka_message_t *m = msgs[i];

		hashes[i] = m->err == RD_KAFKA_RESP_ERR_NO_ERROR && m->key != NULL &&
			m->key_len > 0 ?
			KvIndexHash(&my_topic->index, m->key, m->key_len) : 0;
	}
}

/*
 * Before applying message i, have the index fetch what the messages ahead
 * will read: the buckets of those 2 * KV_PREFETCH_AHEAD places on, the
 * chains of those KV_PREFETCH_AHEAD on, by the hashes of hash_keys
 */
static inline void
prefetch(dsa_area *area, const uint64 *hashes, int n, int i)
{
	if (i + 2 * KV_PREFETCH_AHEAD < n && hashes[i + 2 * KV_PREFETCH_AHEAD] != 0)
		KvIndexPrefetch(area, &my_topic->index,
						hashes[i + 2 * KV_PREFETCH_AHEAD], false);
	if (i + KV_PREFETCH_AHEAD < n && hashes[i + KV_PREFETCH_AHEAD] != 0)
		KvIndexPrefetch(area, &my_topic->index,
						hashes[i + KV_PREFETCH_AHEAD], true);
}

/*
 * Apply a batch of messages under one hold of the topic lock.
 *
 * Once readers read the topic, the hold goes on until the consumer's queue
 * is empty, up to KV_HOLD_RECORDS: librdkafka queues each fetch response
 * whole, and a response holds whole record batches, so a transaction of
 * kvstore's (one record batch, see new_producer in producer.c) becomes
 * visible all at once, never in parts.  During the bootstrap nobody reads,
 * and the lock is let go every KV_APPLY_BATCH records.
 *
 * *nmsgs is the count of msgs on entry, and of the last ones taken on
 * return.  The caller destroys those, then acts on the result: the
 * consumer cannot be closed while a message is alive.
 */
static KvApplyResult
apply_batch(rd_kafka_message_t **msgs, int *nmsgs)
{
	dsa_area   *area = KvShmemArea();
	int			n = *nmsgs;
	int64		more = 0;
	int64		position = (int64) pg_atomic_read_u64(&my_topic->applied);
	bool		at_eof = false;
	bool		rebuild = false;
	bool		full = false;
	bool		advanced = false;
	uint64		applied = 0;
	uint64		skipped = 0;
	char		error[KV_MAX_ERROR_TEXT] = "";
	uint64		hashes[KV_APPLY_BATCH];

	hash_keys(msgs, n, hashes);
	if (!bootstrapping())
		more = KV_HOLD_RECORDS - n;

	lock_index();
next_messages:
	for (int i = 0; i < n && !rebuild && !full; i++)
	{
		rd_kafka_message_t *m = msgs[i];
		KvRecord	rec;

		prefetch(area, hashes, n, i);

		if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
		{
			position = Max(position, m->offset);
			at_eof = true;
			continue;
		}
		if (m->err)
		{
			snprintf(error, sizeof(error), "%s", rd_kafka_message_errstr(m));
			if (m->err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET ||
				m->err == RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE ||
				m->err == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION)
				rebuild = true;
			continue;			/* other errors are informational */
		}
		if (m->offset < position)
		{
			snprintf(error, sizeof(error),
					 "offsets went backwards from " INT64_FORMAT " to " INT64_FORMAT,
					 position, (int64) m->offset);
			rebuild = true;
			continue;
		}
		position = m->offset + 1;
		at_eof = false;

		if (m->key == NULL || m->key_len == 0)
		{
			skipped++;
			continue;
		}
		rec = KvRecordFromBytes(m->key, m->key_len, m->payload, m->len,
								m->payload == NULL);
		rec.timestamp = rd_kafka_message_timestamp(m, NULL);
		full_oversize = rec.keylen > KV_INDEX_MAX_KEY ||
			rec.vallen > KV_INDEX_MAX_VALUE;
		if (full_oversize ||
			!KvIndexApplyHashed(area, &my_topic->index, &rec, m->offset,
								hashes[i]))
		{
			/* Not applied: stop before it */
			full = true;
			position = m->offset;
		}
		else
			applied++;
	}
	if (more > 0 && !rebuild && !full)
	{
		ssize_t		taken;

		for (int i = 0; i < n; i++)
			rd_kafka_message_destroy(msgs[i]);
		n = 0;
		taken = rd_kafka_consume_batch_queue(my_queue, 0, msgs,
											 (size_t) Min(more, KV_APPLY_BATCH));
		if (taken > 0)
		{
			n = (int) taken;
			more -= n;
			hash_keys(msgs, n, hashes);
			goto next_messages;
		}
	}
	*nmsgs = n;
	if (full)
	{
		SpinLockAcquire(&my_topic->mutex);
		my_topic->state = KV_TOPIC_FULL;
		if (full_oversize)
			snprintf(my_topic->last_error, sizeof(my_topic->last_error),
					 "record at offset " INT64_FORMAT " too large: an index holds keys of up to %d bytes and values of up to %d bytes",
					 position, KV_INDEX_MAX_KEY, KV_INDEX_MAX_VALUE);
		else
			snprintf(my_topic->last_error, sizeof(my_topic->last_error),
					 "out of memory at offset " INT64_FORMAT ": the index holds " UINT64_FORMAT " bytes, its limit is " UINT64_FORMAT " (0: none); all topics hold " UINT64_FORMAT " of kvstore.shared_memory (%d kB)",
					 position, my_topic->index.bytes, my_topic->index.limit,
					 KvShmemHeld(), kvstore_shared_memory);
		SpinLockRelease(&my_topic->mutex);
		full_at = position;
	}
	else if (full_at >= 0 && position > full_at)
	{
		/* The record it stopped at fitted: go on */
		SpinLockAcquire(&my_topic->mutex);
		my_topic->state = my_topic->bootstrap_end != 0 ?
			KV_TOPIC_READY : KV_TOPIC_BOOTSTRAP;
		my_topic->last_error[0] = '\0';
		SpinLockRelease(&my_topic->mutex);
	}
	if (rebuild)
	{
		/* What follows in the index is not to be read until rebuilt */
		SpinLockAcquire(&my_topic->mutex);
		my_topic->state = KV_TOPIC_STARTING;
		my_topic->generation++;
		SpinLockRelease(&my_topic->mutex);
	}
	else if (!full && position > (int64) pg_atomic_read_u64(&my_topic->applied))
	{
		/*
		 * Before the lock is let go: a reader holding it finds the offset
		 * that matches the index (kv_checksum pairs them)
		 */
		pg_atomic_write_u64(&my_topic->applied, position);
		advanced = true;
	}
	LWLockRelease(my_topic->lock);

	if (!full && full_at >= 0 && position > full_at)
	{
		ereport(LOG,
				(errmsg("kvstore topic \"%s\" goes on: offset " INT64_FORMAT " fits now",
						my_topic->name, full_at)));
		full_at = -1;
		full_warned = false;
		ConditionVariableBroadcast(&my_topic->cv);
	}

	SpinLockAcquire(&my_topic->mutex);
	my_topic->records += applied;
	my_topic->skipped += skipped;
	if (error[0])
		strlcpy(my_topic->last_error, error, sizeof(my_topic->last_error));
	SpinLockRelease(&my_topic->mutex);

	if (rebuild)
		return KV_REBUILD;
	check_memory_use();
	if (full)
		return KV_FULL;
	publish(position, at_eof, advanced);
	return KV_APPLIED;
}

/*
 * kvstore_worker_main
 *		Materialize one topic: bootstrap, then follow the log.
 */
void
kvstore_worker_main(Datum main_arg)
{
	char		name[KV_MAX_TOPIC_NAME + 1];
	bool		claimed;
	pid_t		owner;
	int			pipefd[2];
	WaitEventSet *waitset;
	rd_kafka_topic_partition_list_t *parts;
	rd_kafka_message_t *msgs[KV_APPLY_BATCH];
	rd_kafka_resp_err_t err;
	int64_t		low = 0;
	int64_t		high = 0;
	MemoryContext batch_context;

	strlcpy(name, MyBgworkerEntry->bgw_extra, sizeof(name));

	pqsignal(SIGTERM, SignalHandlerForShutdownRequest);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	BackgroundWorkerUnblockSignals();

	/* No database: only so that pg_stat_activity shows the worker and its waits */
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);

	/*
	 * A topic of a foreign server's connection: the backend that attached
	 * it claimed the slot and stored the connection there.  After a crash
	 * restart the slot is gone, and with it the connection: the next use
	 * of the topic attaches it again.
	 */
	if (DatumGetUInt64(main_arg) != 0)
	{
		my_topic = KvTopicFindHash(name, DatumGetUInt64(main_arg));
		if (my_topic == NULL)
		{
			ereport(LOG,
					(errmsg("kvstore worker of topic \"%s\" exits: the connection of its server is not known after a restart",
							name)));
			proc_exit(0);
		}
	}
	else
		my_topic = KvTopicClaim(name, NULL, &claimed);
	if (my_topic == NULL)
	{
		ereport(LOG,
				(errmsg("kvstore worker of topic \"%s\" found no free slot", name)));
		proc_exit(0);
	}

	/*
	 * One worker per topic.  After a crash restart the postmaster restarts
	 * the workers it knew, while a backend may already have attached the
	 * topic again and started one: the second to get here leaves for good.
	 */
	SpinLockAcquire(&my_topic->mutex);
	owner = my_topic->worker_pid;
	if (owner == 0)
	{
		my_topic->worker_pid = MyProcPid;
		if (my_topic->state != KV_TOPIC_BOOTSTRAP)
			my_topic->state = KV_TOPIC_STARTING;
	}
	SpinLockRelease(&my_topic->mutex);
	if (owner != 0)
	{
		ereport(LOG,
				(errmsg("kvstore worker of topic \"%s\" exits: process %d materializes it",
						name, (int) owner)));
		proc_exit(0);
	}
	if (detach_requested())
		detach_and_exit();
	before_shmem_exit(worker_exit, 0);

	my_consumer = consumer_create();

	/* Where the log ends now: the bootstrap target */
	for (;;)
	{
		err = rd_kafka_query_watermark_offsets(my_consumer, name, 0,
											   &low, &high, 5000);
		if (!err)
			break;
		SpinLockAcquire(&my_topic->mutex);
		snprintf(my_topic->last_error, sizeof(my_topic->last_error),
				 "could not read the end of the log: %s", rd_kafka_err2str(err));
		SpinLockRelease(&my_topic->mutex);
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 1000L, KvWaitEvent(KV_WAIT_KAFKA_RETRY));
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (ShutdownRequestPending)
			proc_exit(1);
	}
	apply_memory_limit();
	bootstrap_begin(low, high);

	/*
	 * librdkafka writes to the pipe when the queue turns non-empty; enable
	 * that before the assignment, so that no record arrives unannounced.
	 */
	if (pipe(pipefd) != 0 ||
		fcntl(pipefd[0], F_SETFL, O_NONBLOCK) != 0 ||
		fcntl(pipefd[1], F_SETFL, O_NONBLOCK) != 0)
		elog(ERROR, "could not create pipe: %m");
	my_queue = rd_kafka_queue_get_consumer(my_consumer);
	rd_kafka_queue_io_event_enable(my_queue, pipefd[1], "1", 1);

	parts = rd_kafka_topic_partition_list_new(1);
	/* From the log start just read: no offset look-up before the first fetch */
	rd_kafka_topic_partition_list_add(parts, name, 0)->offset = low;
	err = rd_kafka_assign(my_consumer, parts);
	rd_kafka_topic_partition_list_destroy(parts);
	if (err)
		worker_fail("could not assign the partition: %s", rd_kafka_err2str(err));

#if PG_VERSION_NUM >= 170000
	waitset = CreateWaitEventSet(NULL, 3);	/* NULL: for the process's life */
#else
	waitset = CreateWaitEventSet(TopMemoryContext, 3);
#endif
	AddWaitEventToSet(waitset, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
	AddWaitEventToSet(waitset, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, NULL, NULL);
	AddWaitEventToSet(waitset, WL_SOCKET_READABLE, pipefd[0], NULL, NULL);

	batch_context = AllocSetContextCreate(TopMemoryContext, "kvstore batch",
										  ALLOCSET_DEFAULT_SIZES);

	while (!ShutdownRequestPending)
	{
		ssize_t		n;
		WaitEvent	event;
		char		drain[64];

		MemoryContextReset(batch_context);
		MemoryContextSwitchTo(batch_context);
		CHECK_FOR_INTERRUPTS();

		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			apply_memory_limit();
			(void) KvShmemArea();	/* takes the new kvstore.shared_memory */
			full_retry_at = 0;	/* a stopped topic tries again now */
		}

		/* Stopped for memory: the record it stopped at is fetched again */
		if (full_paused)
		{
			long		wait_ms;

			if (GetCurrentTimestamp() >= full_retry_at)
				set_partition_paused(false);
			else
			{
				/* Nothing is fetched: ask where the log ends, for the lag */
				read_log_end();
				wait_ms = (long) wait_deadline(full_retry_at);
				(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
								 Min(wait_ms, 1000L),
								 KvWaitEvent(KV_WAIT_TOPIC_FULL));
				ResetLatch(MyLatch);
				continue;
			}
		}

		n = rd_kafka_consume_batch_queue(my_queue, 0, msgs, KV_APPLY_BATCH);
		if (n > 0)
		{
			int			left = (int) n;
			KvApplyResult result = apply_batch(msgs, &left);

			for (int i = 0; i < left; i++)
				rd_kafka_message_destroy(msgs[i]);
			if (result == KV_FULL)
				stop_for_memory();
			if (result == KV_REBUILD)
			{
				char		error[KV_MAX_ERROR_TEXT];

				SpinLockAcquire(&my_topic->mutex);
				strlcpy(error, my_topic->last_error, sizeof(error));
				SpinLockRelease(&my_topic->mutex);
				worker_fail("the log changed under the index (%s); rebuilding", error);
			}
			continue;
		}

		/*
		 * The position may have moved past transaction markers, which are
		 * never delivered and so never announced on the pipe.  A log that
		 * ends in one ends the bootstrap only this way: poll briskly until
		 * the bootstrap is done.  A topic stopped for memory has applied
		 * nothing past the record it stopped at.
		 */
		if (full_at < 0)
			publish(consumer_position(name), false, false);

		(void) WaitEventSetWait(waitset, bootstrapping() ? 10L : 1000L,
								&event, 1, KvWaitEvent(KV_WAIT_WORKER_MAIN));
		ResetLatch(MyLatch);
		while (read(pipefd[0], drain, sizeof(drain)) > 0)
			;
	}

	if (detach_requested())
		detach_and_exit();

	/* Restarted unless the server is shutting down */
	proc_exit(1);
}

/* Whether kv_detach asked this worker to detach its topic */
static bool
detach_requested(void)
{
	bool		result;

	SpinLockAcquire(&my_topic->mutex);
	result = my_topic->detach;
	SpinLockRelease(&my_topic->mutex);
	return result;
}

/*
 * Empty the index under the exclusive lock, so that readers holding it see
 * a new generation, free the slot, and exit for good
 */
static void
detach_and_exit(void)
{
	char		name[KV_MAX_TOPIC_NAME + 1];

	strlcpy(name, my_topic->name, sizeof(name));
	lock_index();
	SpinLockAcquire(&my_topic->mutex);
	my_topic->state = KV_TOPIC_STARTING;
	my_topic->generation++;
	my_topic->worker_pid = 0;
	SpinLockRelease(&my_topic->mutex);
	KvIndexClear(KvShmemArea(), &my_topic->index);
	pg_atomic_write_u64(&my_topic->applied, 0);
	LWLockRelease(my_topic->lock);
	KvTopicRelease(my_topic);
	my_topic = NULL;			/* worker_exit leaves the slot alone */
	ereport(LOG,
			(errmsg("kvstore worker of topic \"%s\" detached the topic", name)));
	proc_exit(0);
}
