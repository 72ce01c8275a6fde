/*-------------------------------------------------------------------------
 *
 * producer.c
 *		  Writes: produce to Kafka, learn the offset, wait until applied
 *
 * Each backend keeps its own librdkafka producer for its lifetime, created
 * on the first write: an idempotent producer with acks=all for single
 * writes, and a transactional one for batches, so that a failed batch
 * leaves none of its records in the log.  A write produces its records,
 * serves delivery reports with rd_kafka_poll until every record is
 * acknowledged (the report carries the record's offset), then waits on
 * the topic's condition variable until the materializer has applied that
 * offset.  Only then is the write visible to every session here.
 *
 * librdkafka calls back on this backend's thread (delivery reports and,
 * with log.queue, log lines are served by rd_kafka_poll), but a callback
 * never raises an error or allocates: it records the outcome, which is
 * reported once rd_kafka_poll returns.
 *
 * The admin requests that create and check topics live here too: they use
 * the same client.
 *
 * IDENTIFICATION
 *		  src/producer.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <librdkafka/rdkafka.h>

#include "access/xlog.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "kvstore.h"

/* Longest a metadata or admin request may take */
#define KV_ADMIN_TIMEOUT_MS 10000

/* Longest librdkafka call between two checks for cancel */
#define KV_POLL_MS 250

/* Outcome of the records of the request in progress */
typedef struct KvDelivery
{
	uint64		request;		/* id carried by each record's opaque */
	int			pending;		/* records not yet reported */
	int			failed;			/* records Kafka refused */
	rd_kafka_resp_err_t err;	/* first refusal */
	bool		maybe_stored;	/* a refused record may still be stored */
	int64		max_offset;		/* highest offset acknowledged */
} KvDelivery;

/* What an error raised during a write should add about the write */
typedef struct KvWriteContext
{
	const char *topic;
	bool		acknowledged;	/* Kafka acknowledged: offset is known */
	int64		offset;
} KvWriteContext;

static rd_kafka_t *kv_producer = NULL;
static rd_kafka_t *kv_txn_producer = NULL;
static char *kv_producer_brokers = NULL;	/* kvstore.brokers at creation */
static bool kv_exit_registered = false;

static KvDelivery delivery;
static uint64 last_request = 0;

static char kv_last_log[512];

static void kv_log_cb(const rd_kafka_t *rk, int level, const char *fac,
					  const char *buf);
static void kv_dr_msg_cb(rd_kafka_t *rk, const rd_kafka_message_t *rkm,
						 void *opaque);
static rd_kafka_t *get_producer(bool transactional);
static void destroy_producers(int code, Datum arg);
static void begin_request(void);
static void produce_record(rd_kafka_t *rk, const char *topic,
						   const KvRecord *rec);
static void wait_delivered(rd_kafka_t *rk, const char *topic);
static void report_delivery_failure(const char *topic);
static void report_txn_error(rd_kafka_t *rk, const char *topic,
							 rd_kafka_error_t *error, const char *what);
static void kv_write_context(void *arg);
static rd_kafka_event_t *wait_admin_event(rd_kafka_queue_t *queue,
										  const char *topic);
static bool retry_after(rd_kafka_resp_err_t err, TimestampTz deadline);
static int	topic_partitions(rd_kafka_t *rk, const char *topic);
static bool create_topic(rd_kafka_t *rk, const char *topic);
static rd_kafka_resp_err_t describe_cleanup_policy(rd_kafka_t *rk, const char *topic,
												   char *policy, size_t size);
static void check_cleanup_policy(rd_kafka_t *rk, const char *topic);

/*
 * KvKafkaSqlstate
 *		The SQLSTATE that reports a Kafka error.
 */
int
KvKafkaSqlstate(int kafka_error)
{
	switch ((rd_kafka_resp_err_t) kafka_error)
	{
		case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
		case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
		case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
			return ERRCODE_UNDEFINED_OBJECT;
		case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
		case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
		case RD_KAFKA_RESP_ERR_POLICY_VIOLATION:
			return ERRCODE_PROGRAM_LIMIT_EXCEEDED;
		case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
		case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
		case RD_KAFKA_RESP_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED:
			return ERRCODE_INSUFFICIENT_PRIVILEGE;
		case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION:
			return ERRCODE_INVALID_NAME;
		case RD_KAFKA_RESP_ERR_INVALID_REPLICATION_FACTOR:
		case RD_KAFKA_RESP_ERR_INVALID_CONFIG:
			return ERRCODE_INVALID_PARAMETER_VALUE;
		default:
			return ERRCODE_CONNECTION_FAILURE;
	}
}

/* Keep the last log line of librdkafka for error details */
static void
kv_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	if (level <= 4)				/* LOG_WARNING or worse */
		snprintf(kv_last_log, sizeof(kv_last_log), "%s: %s", fac, buf);
}

/*
 * KvKafkaConfSet
 *		Set one librdkafka property, raising an error if it is refused.
 */
void
KvKafkaConfSet(rd_kafka_conf_t *conf, const char *name, const char *value)
{
	char		errstr[256];

	if (rd_kafka_conf_set(conf, name, value, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid Kafka setting %s = \"%s\"", name, value),
				 errdetail_internal("%s", errstr)));
}

/*
 * KvKafkaConfNew
 *		A librdkafka configuration with the settings every client shares.
 *
 * role names the client to the broker (client.id).  Log lines are queued
 * so that they are served on this thread by the poll calls.
 */
rd_kafka_conf_t *
KvKafkaConfNew(const char *role)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	char		client_id[64];

	snprintf(client_id, sizeof(client_id), "kvstore-%s", role);
	KvKafkaConfSet(conf, "bootstrap.servers", kvstore_brokers);
	KvKafkaConfSet(conf, "client.id", client_id);
	KvKafkaConfSet(conf, "log.queue", "true");
	KvKafkaConfSet(conf, "reconnect.backoff.max.ms", "1000");
	KvKafkaConfSet(conf, "allow.auto.create.topics", "false");
	rd_kafka_conf_set_log_cb(conf, kv_log_cb);
	return conf;
}

/* Record the outcome of one record of the current request */
static void
kv_dr_msg_cb(rd_kafka_t *rk, const rd_kafka_message_t *rkm, void *opaque)
{
	if ((uint64) (uintptr_t) rkm->_private != delivery.request)
		return;					/* a record of an abandoned request */

	delivery.pending--;
	if (rkm->err)
	{
		if (delivery.failed++ == 0)
			delivery.err = rkm->err;
		if (rd_kafka_message_status(rkm) != RD_KAFKA_MSG_STATUS_NOT_PERSISTED)
			delivery.maybe_stored = true;
	}
	else if (rkm->offset > delivery.max_offset)
		delivery.max_offset = rkm->offset;
}

/*
 * The producer of this backend, created on first use.
 *
 * A change of kvstore.brokers replaces the producers.
 */
static rd_kafka_t *
get_producer(bool transactional)
{
	rd_kafka_t **slot = transactional ? &kv_txn_producer : &kv_producer;
	rd_kafka_conf_t *conf;
	char		errstr[512];
	char		value[64];
	int			message_timeout;

	if (kv_producer_brokers != NULL &&
		strcmp(kv_producer_brokers, kvstore_brokers) != 0)
		destroy_producers(0, 0);

	if (*slot != NULL)
		return *slot;

	if (!kv_exit_registered)
	{
		on_proc_exit(destroy_producers, 0);
		kv_exit_registered = true;
	}

	conf = KvKafkaConfNew(transactional ? "txn" : "producer");
	KvKafkaConfSet(conf, "enable.idempotence", "true");
	KvKafkaConfSet(conf, "acks", "all");
	KvKafkaConfSet(conf, "linger.ms", transactional ? "5" : "0");

	/*
	 * librdkafka gives up on a record after message.timeout.ms, with a
	 * report that says whether it may have been stored: make that the
	 * write timeout.  A transaction must outlive its records, and brokers
	 * refuse transactions longer than 15 minutes by default.
	 */
	message_timeout = kvstore_write_timeout > 0 ? Max(kvstore_write_timeout, 1000) : 300000;
	if (transactional)
		message_timeout = Min(message_timeout, 900000);
	snprintf(value, sizeof(value), "%d", message_timeout);
	KvKafkaConfSet(conf, "message.timeout.ms", value);
	if (transactional)
	{
		snprintf(value, sizeof(value), "kvstore-" UINT64_FORMAT "-%d",
				 GetSystemIdentifier(), MyProcPid);
		KvKafkaConfSet(conf, "transactional.id", value);
		snprintf(value, sizeof(value), "%d", Max(message_timeout, 60000));
		KvKafkaConfSet(conf, "transaction.timeout.ms", value);
	}
	rd_kafka_conf_set_dr_msg_cb(conf, kv_dr_msg_cb);

	*slot = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	if (*slot == NULL)
	{
		rd_kafka_conf_destroy(conf);
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("could not create a Kafka producer"),
				 errdetail_internal("%s", errstr)));
	}
	conf = NULL;				/* now owned by the producer */
	rd_kafka_set_log_queue(*slot, NULL);

	if (kv_producer_brokers == NULL)
		kv_producer_brokers = MemoryContextStrdup(TopMemoryContext, kvstore_brokers);

	if (transactional)
	{
		rd_kafka_error_t *error;

		error = rd_kafka_init_transactions(*slot, KV_ADMIN_TIMEOUT_MS);
		if (error)
		{
			char		detail[512];
			rd_kafka_resp_err_t code = rd_kafka_error_code(error);

			strlcpy(detail, rd_kafka_error_string(error), sizeof(detail));
			rd_kafka_error_destroy(error);
			rd_kafka_destroy(*slot);
			*slot = NULL;
			ereport(ERROR,
					(errcode(KvKafkaSqlstate(code)),
					 errmsg("could not start a Kafka transaction producer at \"%s\"",
							kvstore_brokers),
					 errdetail_internal("%s", detail)));
		}
	}
	return *slot;
}

/* Flush and destroy the producers, at backend exit or on a broker change */
static void
destroy_producers(int code, Datum arg)
{
	if (kv_producer != NULL)
	{
		rd_kafka_flush(kv_producer, 1000);
		rd_kafka_destroy(kv_producer);
		kv_producer = NULL;
	}
	if (kv_txn_producer != NULL)
	{
		rd_kafka_destroy(kv_txn_producer);
		kv_txn_producer = NULL;
	}
	if (kv_producer_brokers != NULL)
	{
		pfree(kv_producer_brokers);
		kv_producer_brokers = NULL;
	}
}

/* Start tracking a new request; reports of older ones are ignored */
static void
begin_request(void)
{
	delivery.request = ++last_request;
	delivery.pending = 0;
	delivery.failed = 0;
	delivery.err = RD_KAFKA_RESP_ERR_NO_ERROR;
	delivery.maybe_stored = false;
	delivery.max_offset = -1;
}

/* Hand one record to librdkafka, waiting for room in its queue */
static void
produce_record(rd_kafka_t *rk, const char *topic, const KvRecord *rec)
{
	rd_kafka_resp_err_t err;

	for (;;)
	{
		/* A non-NULL pointer with length 0 is an empty value, not a tombstone */
		err = rd_kafka_producev(rk,
								RD_KAFKA_V_TOPIC(topic),
								RD_KAFKA_V_PARTITION(0),
								RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
								RD_KAFKA_V_KEY(rec->key, rec->keylen),
								RD_KAFKA_V_VALUE(rec->tombstone ? NULL : (void *) (rec->value ? rec->value : ""),
												 rec->tombstone ? 0 : rec->vallen),
								RD_KAFKA_V_OPAQUE((void *) (uintptr_t) delivery.request),
								RD_KAFKA_V_END);
		if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
			break;
		CHECK_FOR_INTERRUPTS();
		rd_kafka_poll(rk, 10);
	}
	if (err)
		ereport(ERROR,
				(errcode(KvKafkaSqlstate(err)),
				 errmsg("could not write to topic \"%s\"", topic),
				 errdetail_internal("%s", rd_kafka_err2str(err))));
	delivery.pending++;
}

/* Serve delivery reports until every record of the request has one */
static void
wait_delivered(rd_kafka_t *rk, const char *topic)
{
	TimestampTz deadline = 0;

	/* A second past message.timeout.ms: librdkafka's own report is clearer */
	if (kvstore_write_timeout > 0)
		deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
											   Max(kvstore_write_timeout, 1000) + 1000);
	while (delivery.pending > 0)
	{
		CHECK_FOR_INTERRUPTS();
		if (deadline != 0 && GetCurrentTimestamp() >= deadline)
			ereport(ERROR,
					(errcode(ERRCODE_QUERY_CANCELED),
					 errmsg("timed out waiting for Kafka to acknowledge a write to topic \"%s\"",
							topic),
					 errdetail("The write may still be stored in Kafka."),
					 kv_last_log[0] ? errcontext("last Kafka log: %s", kv_last_log) : 0,
					 errhint("Check that the brokers in kvstore.brokers (\"%s\") are reachable.",
							 kvstore_brokers)));
		rd_kafka_poll(rk, KV_POLL_MS);
	}
}

/* Raise the error of a request some of whose records Kafka refused */
static void
report_delivery_failure(const char *topic)
{
	if (delivery.maybe_stored)
		ereport(ERROR,
				(errcode(KvKafkaSqlstate(delivery.err)),
				 errmsg("write to topic \"%s\" failed with an uncertain outcome", topic),
				 errdetail("Kafka did not confirm the write, but it may have been stored: %s.",
						   rd_kafka_err2str(delivery.err))));
	ereport(ERROR,
			(errcode(KvKafkaSqlstate(delivery.err)),
			 errmsg("could not write to topic \"%s\"", topic),
			 errdetail("Kafka did not store the write: %s.",
					   rd_kafka_err2str(delivery.err))));
}

/* Add what is known of the write to errors raised while waiting */
static void
kv_write_context(void *arg)
{
	KvWriteContext *ctx = (KvWriteContext *) arg;

	if (ctx->acknowledged)
		errcontext("write to topic \"%s\" was acknowledged by Kafka at offset " INT64_FORMAT " and will become visible once applied",
				   ctx->topic, ctx->offset);
	else
		errcontext("write to topic \"%s\" was sent to Kafka but not yet acknowledged; it may or may not be stored",
				   ctx->topic);
}

/*
 * KvProducerPut
 *		Write one record and wait until this server has applied it.
 *
 * Returns the record's offset.  The caller has checked the record and
 * waited for the topic to be ready.
 */
int64
KvProducerPut(KvTopic *topic, const KvRecord *rec)
{
	rd_kafka_t *rk = get_producer(false);
	KvWriteContext ctx = {topic->name, false, -1};
	ErrorContextCallback errcallback;

	begin_request();
	produce_record(rk, topic->name, rec);

	errcallback.callback = kv_write_context;
	errcallback.arg = &ctx;
	errcallback.previous = error_context_stack;
	error_context_stack = &errcallback;

	wait_delivered(rk, topic->name);
	if (delivery.failed > 0)
	{
		error_context_stack = errcallback.previous;
		report_delivery_failure(topic->name);
	}

	ctx.acknowledged = true;
	ctx.offset = delivery.max_offset;
	SpinLockAcquire(&topic->mutex);
	topic->writes++;
	SpinLockRelease(&topic->mutex);

	KvTopicWaitApplied(topic, ctx.offset);

	error_context_stack = errcallback.previous;
	return ctx.offset;
}

/* Raise a transaction error, dropping the producer when it is unusable */
static void
report_txn_error(rd_kafka_t *rk, const char *topic, rd_kafka_error_t *error,
				 const char *what)
{
	char		detail[512];
	rd_kafka_resp_err_t code = rd_kafka_error_code(error);

	strlcpy(detail, rd_kafka_error_string(error), sizeof(detail));
	if (rd_kafka_error_is_fatal(error))
	{
		rd_kafka_destroy(kv_txn_producer);
		kv_txn_producer = NULL;
	}
	rd_kafka_error_destroy(error);
	ereport(ERROR,
			(errcode(KvKafkaSqlstate(code)),
			 errmsg("could not %s a transaction on topic \"%s\"", what, topic),
			 errdetail_internal("%s", detail)));
}

/*
 * KvProducerPutMany
 *		Write records as one Kafka transaction, wait until all are applied.
 *
 * Returns the highest offset.  If anything fails before the commit, the
 * transaction is aborted: none of the records reaches readers.
 */
int64
KvProducerPutMany(KvTopic *topic, const KvRecord *recs, int nrecs)
{
	rd_kafka_t *rk = get_producer(true);
	KvWriteContext ctx = {topic->name, false, -1};
	ErrorContextCallback errcallback;
	rd_kafka_error_t *error;
	TimestampTz deadline = 0;

	errcallback.callback = kv_write_context;
	errcallback.arg = &ctx;
	errcallback.previous = error_context_stack;

	begin_request();
	error = rd_kafka_begin_transaction(rk);
	if (error)
		report_txn_error(rk, topic->name, error, "begin");

	PG_TRY();
	{
		for (int i = 0; i < nrecs; i++)
			produce_record(rk, topic->name, &recs[i]);
		wait_delivered(rk, topic->name);
		if (delivery.failed > 0)
			report_delivery_failure(topic->name);

		/*
		 * Commit in short tries: the commit goes on in the background
		 * between them, and cancel is served.  A cancel now leaves the
		 * outcome open, which the error context says.
		 */
		if (kvstore_write_timeout > 0)
			deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
												   kvstore_write_timeout);
		while ((error = rd_kafka_commit_transaction(rk, KV_POLL_MS)) != NULL)
		{
			if (!rd_kafka_error_is_retriable(error) ||
				rd_kafka_error_code(error) != RD_KAFKA_RESP_ERR__TIMED_OUT ||
				(deadline != 0 && GetCurrentTimestamp() >= deadline))
				report_txn_error(rk, topic->name, error, "commit");
			rd_kafka_error_destroy(error);
			error_context_stack = &errcallback;
			CHECK_FOR_INTERRUPTS();
			error_context_stack = errcallback.previous;
		}
	}
	PG_CATCH();
	{
		if (kv_txn_producer != NULL)
		{
			error = rd_kafka_abort_transaction(kv_txn_producer, KV_ADMIN_TIMEOUT_MS);
			if (error)
			{
				/* Unusable: a new producer fences this one's transaction */
				rd_kafka_error_destroy(error);
				rd_kafka_destroy(kv_txn_producer);
				kv_txn_producer = NULL;
			}
		}
		PG_RE_THROW();
	}
	PG_END_TRY();

	ctx.acknowledged = true;
	ctx.offset = delivery.max_offset;
	SpinLockAcquire(&topic->mutex);
	topic->writes += nrecs;
	SpinLockRelease(&topic->mutex);

	error_context_stack = &errcallback;

	KvTopicWaitApplied(topic, ctx.offset);

	error_context_stack = errcallback.previous;
	return ctx.offset;
}

/*
 * KvProducerEndOffset
 *		The end of the topic's log now: the offset the next record will get.
 *
 * Asked with isolation level read_committed, so this is the last stable
 * offset: records of open transactions are not counted.
 */
int64
KvProducerEndOffset(const char *topic)
{
	rd_kafka_t *rk = get_producer(false);
	int64_t		low;
	int64_t		high;
	rd_kafka_resp_err_t err;
	TimestampTz deadline;

	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), KV_ADMIN_TIMEOUT_MS);
	while ((err = rd_kafka_query_watermark_offsets(rk, topic, 0, &low, &high,
												   KV_POLL_MS)) != RD_KAFKA_RESP_ERR_NO_ERROR &&
		   retry_after(err, deadline))
		;
	if (err)
		ereport(ERROR,
				(errcode(KvKafkaSqlstate(err)),
				 errmsg("could not read the end offset of topic \"%s\"", topic),
				 errdetail_internal("%s", rd_kafka_err2str(err))));
	return high;
}

/* Wait for the result of an admin request, interruptibly */
static rd_kafka_event_t *
wait_admin_event(rd_kafka_queue_t *queue, const char *topic)
{
	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
													   KV_ADMIN_TIMEOUT_MS + 1000);
	rd_kafka_event_t *event = NULL;

	PG_TRY();
	{
		while (event == NULL)
		{
			CHECK_FOR_INTERRUPTS();
			if (GetCurrentTimestamp() >= deadline)
				ereport(ERROR,
						(errcode(ERRCODE_CONNECTION_FAILURE),
						 errmsg("timed out waiting for Kafka at \"%s\" to describe topic \"%s\"",
								kvstore_brokers, topic),
						 kv_last_log[0] ? errdetail_internal("%s", kv_last_log) : 0));
			event = rd_kafka_queue_poll(queue, KV_POLL_MS);
		}
	}
	PG_CATCH();
	{
		rd_kafka_queue_destroy(queue);
		PG_RE_THROW();
	}
	PG_END_TRY();
	rd_kafka_queue_destroy(queue);
	return event;
}

/*
 * Whether a request that failed with err is worth another try before
 * deadline: the broker asked may be down while others are up, or may not
 * know yet of a topic just created.  Serves cancel, and waits a moment
 * when the failure came at once.
 */
static bool
retry_after(rd_kafka_resp_err_t err, TimestampTz deadline)
{
	if (err != RD_KAFKA_RESP_ERR__TIMED_OUT &&
		err != RD_KAFKA_RESP_ERR__TRANSPORT &&
		err != RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART &&
		err != RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN &&
		err != RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE &&
		err != RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION)
		return false;
	CHECK_FOR_INTERRUPTS();
	if (GetCurrentTimestamp() >= deadline)
		return false;
	if (err != RD_KAFKA_RESP_ERR__TIMED_OUT)
	{
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 100L, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
	return true;
}

/* Partitions of a topic, or -1 if it does not exist */
static int
topic_partitions(rd_kafka_t *rk, const char *topic)
{
	rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
	const struct rd_kafka_metadata *md;
	rd_kafka_resp_err_t err;
	int			partitions;
	TimestampTz deadline;

	/* Short tries, so that cancel and statement_timeout are served */
	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), KV_ADMIN_TIMEOUT_MS);
	PG_TRY();
	{
		while ((err = rd_kafka_metadata(rk, 0, rkt, &md, KV_POLL_MS)) != RD_KAFKA_RESP_ERR_NO_ERROR &&
			   retry_after(err, deadline))
			;
	}
	PG_FINALLY();
	{
		rd_kafka_topic_destroy(rkt);
	}
	PG_END_TRY();
	if (err)
		ereport(ERROR,
				(errcode(KvKafkaSqlstate(err)),
				 errmsg("could not reach Kafka at \"%s\" to look up topic \"%s\"",
						kvstore_brokers, topic),
				 errdetail_internal("%s", kv_last_log[0] ? kv_last_log : rd_kafka_err2str(err))));

	err = md->topic_cnt == 1 ? md->topics[0].err : RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART;
	partitions = md->topic_cnt == 1 ? md->topics[0].partition_cnt : 0;
	rd_kafka_metadata_destroy(md);

	if (err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
		return -1;
	if (err && err != RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE)
		ereport(ERROR,
				(errcode(KvKafkaSqlstate(err)),
				 errmsg("could not look up topic \"%s\"", topic),
				 errdetail_internal("%s", rd_kafka_err2str(err))));
	return partitions;
}

/*
 * Create a compacted topic with one partition.  Returns false if it exists
 * already: someone else created it meanwhile.
 */
static bool
create_topic(rd_kafka_t *rk, const char *topic)
{
	rd_kafka_NewTopic_t *newt;
	rd_kafka_queue_t *queue;
	rd_kafka_event_t *event;
	const rd_kafka_CreateTopics_result_t *result;
	const rd_kafka_topic_result_t **topics;
	size_t		ntopics;
	rd_kafka_resp_err_t err;
	char		errstr[256];
	char		detail[512];

	newt = rd_kafka_NewTopic_new(topic, 1, kvstore_replication_factor,
								 errstr, sizeof(errstr));
	if (newt == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("could not create topic \"%s\"", topic),
				 errdetail_internal("%s", errstr)));
	rd_kafka_NewTopic_set_config(newt, "cleanup.policy", "compact");

	queue = rd_kafka_queue_new(rk);
	rd_kafka_CreateTopics(rk, &newt, 1, NULL, queue);
	rd_kafka_NewTopic_destroy(newt);
	event = wait_admin_event(queue, topic);

	result = rd_kafka_event_CreateTopics_result(event);
	err = rd_kafka_event_error(event);
	strlcpy(detail, err ? rd_kafka_event_error_string(event) : "", sizeof(detail));
	if (!err && result)
	{
		topics = rd_kafka_CreateTopics_result_topics(result, &ntopics);
		if (ntopics == 1)
		{
			err = rd_kafka_topic_result_error(topics[0]);
			if (err && rd_kafka_topic_result_error_string(topics[0]))
				strlcpy(detail, rd_kafka_topic_result_error_string(topics[0]),
						sizeof(detail));
		}
	}
	rd_kafka_event_destroy(event);

	if (err == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
		return false;
	if (err)
		ereport(ERROR,
				(errcode(KvKafkaSqlstate(err)),
				 errmsg("could not create topic \"%s\"", topic),
				 errdetail_internal("%s", detail[0] ? detail : rd_kafka_err2str(err))));
	return true;
}

/*
 * Read a topic's cleanup.policy into policy (empty if the broker gave
 * none); returns the error of the request.
 */
static rd_kafka_resp_err_t
describe_cleanup_policy(rd_kafka_t *rk, const char *topic, char *policy,
						size_t size)
{
	rd_kafka_ConfigResource_t *res;
	rd_kafka_queue_t *queue;
	rd_kafka_event_t *event;
	const rd_kafka_DescribeConfigs_result_t *result;
	const rd_kafka_ConfigResource_t **resources;
	size_t		nresources;
	rd_kafka_resp_err_t err;

	policy[0] = '\0';
	res = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, topic);
	queue = rd_kafka_queue_new(rk);
	rd_kafka_DescribeConfigs(rk, &res, 1, NULL, queue);
	rd_kafka_ConfigResource_destroy(res);
	event = wait_admin_event(queue, topic);

	err = rd_kafka_event_error(event);
	result = rd_kafka_event_DescribeConfigs_result(event);
	if (!err && result)
	{
		resources = rd_kafka_DescribeConfigs_result_resources(result, &nresources);
		if (nresources == 1)
		{
			const rd_kafka_ConfigEntry_t **entries;
			size_t		nentries;

			err = rd_kafka_ConfigResource_error(resources[0]);
			entries = rd_kafka_ConfigResource_configs(resources[0], &nentries);
			for (size_t i = 0; i < nentries; i++)
			{
				const char *value = rd_kafka_ConfigEntry_value(entries[i]);

				if (strcmp(rd_kafka_ConfigEntry_name(entries[i]), "cleanup.policy") == 0)
					strlcpy(policy, value ? value : "", size);
			}
		}
	}
	rd_kafka_event_destroy(event);
	return err;
}

/*
 * Refuse a topic whose cleanup.policy does not compact.
 *
 * A topic just created elsewhere may not be known yet to the broker asked:
 * that is retried until the deadline.
 */
static void
check_cleanup_policy(rd_kafka_t *rk, const char *topic)
{
	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
													   KV_ADMIN_TIMEOUT_MS);
	rd_kafka_resp_err_t err;
	char		policy[128];

	while ((err = describe_cleanup_policy(rk, topic, policy, sizeof(policy))) != RD_KAFKA_RESP_ERR_NO_ERROR &&
		   retry_after(err, deadline))
		;
	if (err)
		ereport(ERROR,
				(errcode(KvKafkaSqlstate(err)),
				 errmsg("could not read the configuration of topic \"%s\"", topic),
				 errdetail_internal("%s", rd_kafka_err2str(err))));
	if (policy[0] != '\0' && strstr(policy, "compact") == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("topic \"%s\" is not compacted", topic),
				 errdetail("Its cleanup.policy is \"%s\"; kvstore needs a policy that includes \"compact\", or old values would be deleted by retention.",
						   policy),
				 errhint("Set cleanup.policy=compact on the topic, or use another topic.")));
}

/*
 * KvProducerEnsureTopic
 *		Create the topic if it does not exist; refuse it if kvstore cannot
 *		serve it.
 *
 * kvstore needs one partition (one order of records for every server)
 * and compaction (the latest value of every key kept forever).
 */
void
KvProducerEnsureTopic(const char *topic)
{
	rd_kafka_t *rk = get_producer(false);
	int			partitions = topic_partitions(rk, topic);

	if (partitions < 0)
	{
		if (create_topic(rk, topic))
			return;
		/* Created elsewhere, and the broker asked did not know it yet */
		partitions = topic_partitions(rk, topic);
	}
	if (partitions > 1)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("topic \"%s\" has %d partitions", topic, partitions),
				 errdetail("kvstore needs a topic with exactly one partition, so that every server applies its records in the same order.")));
	check_cleanup_policy(rk, topic);
}
