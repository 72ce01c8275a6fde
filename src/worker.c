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
 * exclusive hold of the topic lock, after which the worker advances the
 * topic's applied offset and broadcasts its condition variable, waking the
 * writers that wait for their offsets.
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
 * their shared lock.  A topic that does not fit in kvstore.shared_memory
 * is emptied and put in the error state; its worker exits for good.
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

/* Records applied under one hold of the topic lock */
#define KV_APPLY_BATCH 1000

/* Seconds before the postmaster restarts a worker that died */
#define KV_RESTART_SECONDS 1

/* What applying a batch came to */
typedef enum KvApplyResult
{
	KV_APPLIED,					/* all applied, position published */
	KV_REBUILD,					/* the log changed under the index */
	KV_OUT_OF_MEMORY			/* the index does not fit */
} KvApplyResult;

static KvTopic *my_topic = NULL;
static rd_kafka_t *my_consumer = NULL;
static rd_kafka_queue_t *my_queue = NULL;	/* its consumer queue */

static void worker_exit(int code, Datum arg);
static void worker_fail(const char *fmt,...) pg_attribute_printf(1, 2);
static rd_kafka_t *consumer_create(void);
static void bootstrap_begin(int64 low, int64 high);
static KvApplyResult apply_batch(rd_kafka_message_t **msgs, int n);
static void publish(int64 position, bool at_eof);
static void out_of_memory(void);
static bool bootstrapping(void);
static int64 consumer_position(const char *name);

/*
 * KvWorkerStart
 *		Start the materializer of a topic whose slot was just claimed.
 *
 * Returns false when no background worker slot is free.
 */
bool
KvWorkerStart(const char *name)
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
				(void) KvTopicOpen(name, KV_OPEN_WRITE);
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
	LWLockAcquire(my_topic->lock, LW_EXCLUSIVE);
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
	rd_kafka_conf_t *conf = KvKafkaConfNew("worker");
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
	LWLockAcquire(my_topic->lock, LW_EXCLUSIVE);
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
	pg_atomic_write_u64(&my_topic->applied, 0);
	LWLockRelease(my_topic->lock);

	publish(low, high <= low);
}

/*
 * Publish the position reached: every record below it is applied.
 *
 * Ends the bootstrap once the position reaches its target, then wakes the
 * waiters.
 */
static void
publish(int64 position, bool at_eof)
{
	bool		changed = false;

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

/* The index no longer fits: empty it and stop for good */
static void
out_of_memory(void)
{
	LWLockAcquire(my_topic->lock, LW_EXCLUSIVE);
	KvTopicSetError(my_topic, ERRCODE_OUT_OF_MEMORY,
					"out of shared memory: the index of topic \"%s\" does not fit in kvstore.shared_memory (%d kB); raise it and restart the server",
					my_topic->name, kvstore_shared_memory);
	SpinLockAcquire(&my_topic->mutex);
	my_topic->generation++;
	SpinLockRelease(&my_topic->mutex);
	KvIndexClear(KvShmemArea(), &my_topic->index);
	LWLockRelease(my_topic->lock);
	ereport(LOG,
			(errcode(ERRCODE_OUT_OF_MEMORY),
			 errmsg("kvstore stopped topic \"%s\": out of shared memory", my_topic->name),
			 errhint("Raise kvstore.shared_memory (now %d kB) and restart the server.",
					 kvstore_shared_memory)));
	proc_exit(0);
}

/*
 * Apply a batch of messages under one hold of the topic lock.
 *
 * The caller destroys the messages, then acts on the result: the consumer
 * cannot be closed while a message is alive.
 */
static KvApplyResult
apply_batch(rd_kafka_message_t **msgs, int n)
{
	dsa_area   *area = KvShmemArea();
	int64		position = (int64) pg_atomic_read_u64(&my_topic->applied);
	bool		at_eof = false;
	bool		rebuild = false;
	bool		oom = false;
	uint64		applied = 0;
	uint64		skipped = 0;
	char		error[KV_MAX_ERROR_TEXT] = "";

	LWLockAcquire(my_topic->lock, LW_EXCLUSIVE);
	for (int i = 0; i < n && !rebuild && !oom; i++)
	{
		rd_kafka_message_t *m = msgs[i];
		KvRecord	rec;

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
		if (!KvIndexApply(area, &my_topic->index, &rec, m->offset))
			oom = true;
		else
			applied++;
	}
	if (rebuild)
	{
		/* What follows in the index is not to be read until rebuilt */
		SpinLockAcquire(&my_topic->mutex);
		my_topic->state = KV_TOPIC_STARTING;
		my_topic->generation++;
		SpinLockRelease(&my_topic->mutex);
	}
	LWLockRelease(my_topic->lock);

	if (oom)
		return KV_OUT_OF_MEMORY;

	SpinLockAcquire(&my_topic->mutex);
	my_topic->records += applied;
	my_topic->skipped += skipped;
	if (error[0])
		strlcpy(my_topic->last_error, error, sizeof(my_topic->last_error));
	SpinLockRelease(&my_topic->mutex);

	if (rebuild)
		return KV_REBUILD;
	publish(position, at_eof);
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

	my_topic = KvTopicClaim(name, &claimed);
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
		}

		n = rd_kafka_consume_batch_queue(my_queue, 0, msgs, KV_APPLY_BATCH);
		if (n > 0)
		{
			KvApplyResult result = apply_batch(msgs, (int) n);

			for (ssize_t i = 0; i < n; i++)
				rd_kafka_message_destroy(msgs[i]);
			if (result == KV_OUT_OF_MEMORY)
				out_of_memory();
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
		 * the bootstrap is done.
		 */
		publish(consumer_position(name), false);

		(void) WaitEventSetWait(waitset, bootstrapping() ? 10L : 1000L,
								&event, 1, KvWaitEvent(KV_WAIT_WORKER_MAIN));
		ResetLatch(MyLatch);
		while (read(pipefd[0], drain, sizeof(drain)) > 0)
			;
	}

	/* Restarted unless the server is shutting down */
	proc_exit(1);
}
