/*-------------------------------------------------------------------------
 *
 * producer.c
 *		  Writes: produce a statement's records, then wait once until applied
 *
 * A write is made in two steps.  First the statement produces all its
 * records (KvProducerBegin, KvProducerSend for each, KvProducerCommit):
 * librdkafka reports each record's offset once Kafka acknowledged it,
 * and an atomic write is one Kafka transaction, committed only once every
 * record is acknowledged.  Then the statement waits once, until this
 * server's materializer has applied the highest offset (topic.c): only
 * then is the write visible to every session here.
 *
 * Each backend keeps its own producers for its lifetime: an idempotent
 * one with acks=all for single writes, and a transactional one for atomic
 * writes.  The transactional id is stable per server and backend slot, so
 * the next backend in the slot fences a transaction a dead one left open;
 * the transaction is also aborted on every exit path: an error (abort of
 * the PostgreSQL transaction or subtransaction), and the exit of the
 * backend (FATAL, pg_terminate_backend).  A producer that librdkafka
 * declares fatally failed is replaced on the next write.
 *
 * librdkafka calls back on this backend's thread (delivery reports and,
 * with log.queue, log lines are served by rd_kafka_poll), but a callback
 * never raises an error or allocates: it records the outcome, which is
 * reported once rd_kafka_poll returns.
 *
 * IDENTIFICATION
 *		  src/producer.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <unistd.h>
#ifdef __linux__
#include <sys/resource.h>
#include <sys/syscall.h>
#endif
#include <librdkafka/rdkafka.h>

#include "access/xact.h"
#include "access/xlog.h"
#include "common/hashfn.h"
#include "miscadmin.h"
#include "postmaster/postmaster.h"
#if PG_VERSION_NUM < 170000
#include "storage/backendid.h"
#endif
#include "storage/ipc.h"
#include "storage/latch.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "kvstore.h"

/* Longest librdkafka call between two checks for cancel */
#define KV_POLL_MS 250

/* Longest the transactional producer may take to start */
#define KV_INIT_TIMEOUT_MS 10000

/*
 * Longest the broker may keep answering that the last transaction of a
 * transactional id is still being ended before the producer moves to a
 * new id (see init_transactions)
 */
#define KV_BUSY_ID_MS 1000

/*
 * kvstore.transaction_timeout: longest a Kafka transaction may stay open.
 * The broker aborts it after this, should a crashed backend leave one open
 * and no backend take its slot; a statement's records must be delivered
 * and committed within it.  The transactional producer keeps the value it
 * was made with, and is replaced when the setting changes.
 */
static int	kv_txn_producer_timeout = 0;

/* Longest an abort may take on an exit path */
#define KV_ABORT_TIMEOUT_MS 2000

/*
 * librdkafka before 2.4.0 polls its main loop without sleeping during the
 * last millisecond before each of its timers, and every transaction sets
 * one: the partition is registered with the transaction 1 ms after its
 * first record.  While batches follow one another, the main thread of the
 * transactional producer then takes more than half a core, which the
 * broker, the worker and the other sessions wait for.  That thread runs
 * KV_MAIN_THREAD_NICE steps lower (see lower_main_thread), and so do the
 * broker threads it starts later, which inherit its priority.
 */
#define KV_SPIN_FIXED_VERSION 0x020400ff
#define KV_MAIN_THREAD_NICE 10

/* The write in progress in this backend */
typedef struct KvWrite
{
	bool		active;			/* between KvProducerBegin and Commit/Abort */
	bool		atomic;			/* a Kafka transaction is open */
	rd_kafka_t *rk;				/* the producer it uses */
	rd_kafka_topic_t *rkt;		/* the producer's handle on the topic */
	KvTopicRef *ref;
	char		topic[KV_MAX_TOPIC_NAME + 1];
	uint64		request;		/* id carried by each record's opaque */
	int			sent;			/* records produced */
	int			pending;		/* records not yet reported */
	int			failed;			/* records Kafka refused */
	rd_kafka_resp_err_t err;	/* first refusal */
	bool		maybe_stored;	/* a refused record may still be stored */
	int64		max_offset;		/* highest offset acknowledged */
	KvIndexPlan plan;			/* memory its records take, see
								 * KvTopicCheckRecord */
	bool		checked;		/* every record was checked before the
								 * first was sent */
	int			members;		/* batches of a group's transaction (group.c):
								 * each record's opaque tells whose */
	bool		committing;		/* the commit was requested and has not
								 * succeeded: kept when the producer is
								 * dropped */
} KvWrite;

/*
 * A record's opaque: the write's request number, and the member of a
 * group's transaction whose record it is in the low bits
 */
#define KV_MEMBER_BITS 10
StaticAssertDecl(KV_GROUP_MAX_MEMBERS == 1 << KV_MEMBER_BITS,
				 "a member number takes KV_MEMBER_BITS bits");

/* What an error raised during a write should add about the write */
typedef struct KvWriteContext
{
	const char *topic;
	bool		acknowledged;	/* Kafka acknowledged: offset is known */
	int64		offset;
} KvWriteContext;

static rd_kafka_t *kv_producer = NULL;
static rd_kafka_t *kv_txn_producer = NULL;
static char *kv_producer_settings = NULL;	/* settings at creation */
static bool kv_callbacks_registered = false;

static KvWrite cur;			/* the write in progress */
static uint64 last_request = 0;
static int64 member_offsets[KV_GROUP_MAX_MEMBERS];	/* highest offset
													 * acknowledged per
													 * member */

static void kv_dr_msg_cb(rd_kafka_t *rk, const rd_kafka_message_t *rkm,
						 void *opaque);
static rd_kafka_resp_err_t lower_main_thread(rd_kafka_t *rk,
											 rd_kafka_thread_type_t type,
											 const char *name, void *opaque);
static rd_kafka_resp_err_t add_thread_start(rd_kafka_t *rk,
											const rd_kafka_conf_t *conf,
											void *opaque, char *errstr,
											size_t errstr_size);
static rd_kafka_t *get_producer(bool transactional, const char *conn);
static int	backend_slot(void);
static void transactional_id(char *buf, size_t size, uint32 generation);
static bool init_transactions(rd_kafka_t *rk, TimestampTz deadline,
							  const char *conn);
static rd_kafka_t *new_producer(bool transactional, uint32 generation,
								 const char *conn);
static void destroy_producer(rd_kafka_t **slot);
static void release_topic(void);
static void drop_if_fatal(void);
static void producer_exit(int code, Datum arg);
static void kv_xact_callback(XactEvent event, void *arg);
static void kv_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
								SubTransactionId parentSubid, void *arg);
static void wait_delivered(void);
static void serve_deliveries(int timeout_ms);
static void report_delivery_failure(void);
static void report_txn_error(rd_kafka_error_t *error, const char *what);
static void commit_transaction(void);
static void commit_context(void *arg);
static void kv_write_context(void *arg);
static void send_record(const KvRecord *rec, int member);

/* Record the outcome of one record of the current write */
static void
kv_dr_msg_cb(rd_kafka_t *rk, const rd_kafka_message_t *rkm, void *opaque)
{
	uint64		tag = (uint64) (uintptr_t) rkm->_private;
	int			member = tag & (KV_GROUP_MAX_MEMBERS - 1);

	if (tag >> KV_MEMBER_BITS != cur.request)
		return;					/* a record of an abandoned write */

	cur.pending--;
	if (!rkm->err && member < cur.members && rkm->offset > member_offsets[member])
		member_offsets[member] = rkm->offset;
	if (rkm->err)
	{
		if (cur.failed++ == 0)
			cur.err = rkm->err;
		if (rd_kafka_message_status(rkm) != RD_KAFKA_MSG_STATUS_NOT_PERSISTED)
			cur.maybe_stored = true;
	}
	else if (rkm->offset > cur.max_offset)
		cur.max_offset = rkm->offset;
}

/* This backend's slot number */
static int
backend_slot(void)
{
#if PG_VERSION_NUM >= 170000
	return MyProcNumber;
#else
	return MyBackendId;
#endif
}

/*
 * The transactional id of this backend: stable per server and backend
 * slot, so that the next producer of the slot fences the previous one.
 * Clones and physical standbys share the system identifier: the host,
 * port and data directory tell them apart.  A slot whose id had to move on
 * (see init_transactions) carries the generation it moved to.
 */
static void
transactional_id(char *buf, size_t size, uint32 generation)
{
	char		host[256] = "";
	char		where[MAXPGPATH + 300];
	uint64		server;
	int			len;

	(void) gethostname(host, sizeof(host) - 1);
	snprintf(where, sizeof(where), "%s:%d:%s", host, PostPortNumber, DataDir);
	server = hash_bytes_extended((const unsigned char *) where, strlen(where), 0);
	len = snprintf(buf, size, "kvstore-" UINT64_FORMAT "-%016llx-%d",
				   GetSystemIdentifier(), (unsigned long long) server,
				   backend_slot());
	if (generation > 0 && len > 0 && (size_t) len < size)
		snprintf(buf + len, size - len, "-%u", generation);
}

/*
 * Start the transactional producer in short tries, so cancel is served,
 * until the deadline.
 *
 * Returns false when the broker kept answering that the id's last
 * transaction is still being ended for KV_BUSY_ID_MS: the transaction is
 * decided (the broker ends it by itself, fencing its producer), but
 * ending it can take long, for instance while a partition it wrote to has
 * no leader, and must not hold every later write of this slot.  The
 * caller then moves to a new id.
 */
static bool
init_transactions(rd_kafka_t *rk, TimestampTz deadline, const char *conn)
{
	TimestampTz busy_since = 0;
	rd_kafka_error_t *error;

	while ((error = rd_kafka_init_transactions(rk, KV_POLL_MS)) != NULL)
	{
		char		detail[512];
		rd_kafka_resp_err_t code = rd_kafka_error_code(error);
		TimestampTz now = GetCurrentTimestamp();

		/*
		 * A coordinator that is loading or moving answers at once, and so
		 * does one still ending the last transaction of the backend that
		 * had this slot before: retry after a moment.  A broker just
		 * started, or a transactional id new to it, meets this.
		 */
		bool		coordinator_busy = code == RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS ||
			code == RD_KAFKA_RESP_ERR_NOT_COORDINATOR ||
			code == RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE ||
			code == RD_KAFKA_RESP_ERR_CONCURRENT_TRANSACTIONS;

		if (code == RD_KAFKA_RESP_ERR_CONCURRENT_TRANSACTIONS)
		{
			if (busy_since == 0)
				busy_since = now;
			else if (TimestampDifferenceExceeds(busy_since, now, KV_BUSY_ID_MS) &&
					 now < deadline && !InterruptPending)
			{
				rd_kafka_error_destroy(error);
				return false;
			}
		}
		else
			busy_since = 0;

		if ((code == RD_KAFKA_RESP_ERR__TIMED_OUT || coordinator_busy) &&
			(rd_kafka_error_is_retriable(error) || coordinator_busy) &&
			!rd_kafka_error_is_fatal(error) &&
			now < deadline &&
			!InterruptPending)
		{
			rd_kafka_error_destroy(error);
			if (coordinator_busy)
			{
				(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
								 100L, PG_WAIT_EXTENSION);
				ResetLatch(MyLatch);
			}
			continue;
		}
		strlcpy(detail, rd_kafka_error_string(error), sizeof(detail));
		rd_kafka_error_destroy(error);
		destroy_producer(&kv_txn_producer);
		CHECK_FOR_INTERRUPTS();
		ereport(ERROR,
				(errcode(KvKafkaSqlstate(code)),
				 errmsg("could not start a Kafka transaction producer at \"%s\"",
						KvKafkaBrokers(conn)),
				 errdetail_internal("%s", detail)));
	}
	return true;
}

/*
 * Run librdkafka's main thread of a transactional producer at a lower
 * priority (Linux: a thread has a nice value of its own).  It spins while
 * it waits for its next timer; lowered, it yields to the work that others
 * do meanwhile.  On two cores, a kv_put_many of 100 took 2.9 ms at nice 0
 * and 2.3 ms lowered (bench/batch.c, median of three runs); one of 1,000,
 * about 4.2 ms either way.
 */
static rd_kafka_resp_err_t
lower_main_thread(rd_kafka_t *rk, rd_kafka_thread_type_t type,
				  const char *name, void *opaque)
{
#ifdef __linux__
	if (type == RD_KAFKA_THREAD_MAIN)
	{
		id_t		tid = (id_t) syscall(SYS_gettid);
		int			nice;

		errno = 0;
		nice = getpriority(PRIO_PROCESS, tid);
		if (errno == 0)
			(void) setpriority(PRIO_PROCESS, tid,
							   Min(nice + KV_MAIN_THREAD_NICE, 19));
	}
#endif
	return RD_KAFKA_RESP_ERR_NO_ERROR;
}

/* Have each new client call lower_main_thread in the threads it starts */
static rd_kafka_resp_err_t
add_thread_start(rd_kafka_t *rk, const rd_kafka_conf_t *conf, void *opaque,
				 char *errstr, size_t errstr_size)
{
	return rd_kafka_interceptor_add_on_thread_start(rk, "kvstore",
													lower_main_thread, NULL);
}

/* A new producer, transactional with the id of the given generation */
static rd_kafka_t *
new_producer(bool transactional, uint32 generation, const char *conn)
{
	rd_kafka_conf_t *conf;
	rd_kafka_t *rk;
	char		errstr[512];
	char		value[128];

	conf = KvKafkaConfNew(transactional ? "txn" : "producer", conn);
	KvKafkaConfSet(conf, "enable.idempotence", "true");
	KvKafkaConfSet(conf, "acks", "all");
	/*
	 * No lingering: a write hands all its records over before it waits, so
	 * they leave in one request anyway, and a transaction's records wait
	 * for the partition's registration with the transaction meanwhile.
	 */
	KvKafkaConfSet(conf, "linger.ms", "0");
	if (transactional)
	{
		/*
		 * A transaction in one record batch, so that every server receives
		 * it in one piece and shows it all at once (see apply_batch in
		 * worker.c): its records wait in librdkafka until the write has
		 * handed over the last one and flushes (wait_delivered), up to the
		 * batch's limit in bytes (batch.size, 1,000,000).  The linger is a
		 * backstop that a flush cuts short.
		 */
		snprintf(value, sizeof(value), "%d", kvstore_transaction_timeout / 2);
		KvKafkaConfSet(conf, "linger.ms", value);
		KvKafkaConfSet(conf, "batch.num.messages", "1000000");
		if (rd_kafka_version() < KV_SPIN_FIXED_VERSION)
			(void) rd_kafka_conf_interceptor_add_on_new(conf, "kvstore",
														add_thread_start, NULL);

		transactional_id(value, sizeof(value), generation);
		KvKafkaConfSet(conf, "transactional.id", value);
		kv_txn_producer_timeout = kvstore_transaction_timeout;
		snprintf(value, sizeof(value), "%d", kvstore_transaction_timeout);
		KvKafkaConfSet(conf, "transaction.timeout.ms", value);
		KvKafkaConfSet(conf, "message.timeout.ms", value);
	}
	else
	{
		/* Writes give up at kvstore.write_timeout; this is a backstop */
		KvKafkaConfSet(conf, "message.timeout.ms", "300000");
	}
	rd_kafka_conf_set_dr_msg_cb(conf, kv_dr_msg_cb);

	rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	if (rk == NULL)
	{
		rd_kafka_conf_destroy(conf);
		ereport(ERROR,
				(errcode(ERRCODE_FDW_ERROR),
				 errmsg("could not create a Kafka producer"),
				 errdetail_internal("%s", errstr)));
	}
	rd_kafka_set_log_queue(rk, NULL);
	return rk;
}

/*
 * The producer of this backend, created on first use.
 *
 * A change of kvstore.brokers or kvstore.kafka_settings, or a write
 * through another connection (a foreign server's), replaces the
 * producers.  The transactional producer starts within KV_INIT_TIMEOUT_MS,
 * or kvstore.write_timeout if shorter.
 */
static rd_kafka_t *
get_producer(bool transactional, const char *conn)
{
	rd_kafka_t **slot = transactional ? &kv_txn_producer : &kv_producer;
	int			timeout = KV_INIT_TIMEOUT_MS;
	TimestampTz deadline;

	if (kv_producer_settings != NULL &&
		!KvKafkaSettingsAre(kv_producer_settings, conn))
	{
		destroy_producer(&kv_producer);
		destroy_producer(&kv_txn_producer);
		pfree(kv_producer_settings);
		kv_producer_settings = NULL;
	}
	if (transactional && kv_txn_producer != NULL &&
		kv_txn_producer_timeout != kvstore_transaction_timeout && !cur.active)
		destroy_producer(&kv_txn_producer);
	/*
	 * A producer librdkafka declared fatally failed refuses every record
	 * at once (an idempotent producer after a sequence error, say): the
	 * next write starts a new one, whichever way the last one failed
	 */
	drop_if_fatal();
	if (*slot != NULL)
		return *slot;

	KvProducerRegister();
	if (kv_producer_settings == NULL)
		kv_producer_settings = KvKafkaSettingsNow(conn);

	if (kvstore_write_timeout > 0 && kvstore_write_timeout < timeout)
		timeout = kvstore_write_timeout;
	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), timeout);
	for (;;)
	{
		uint32		generation = KvShmemTxnIdGeneration(backend_slot());

		*slot = new_producer(transactional, generation, conn);
		if (!transactional || init_transactions(*slot, deadline, conn))
			return *slot;

		/* The id's last transaction is still being ended: move on */
		destroy_producer(slot);
		KvShmemTxnIdAdvance(backend_slot(), generation);
		ereport(LOG,
				(errmsg("kvstore moves backend slot %d to a new Kafka transactional id: the last transaction of its id is still being ended",
						backend_slot())));
	}
}

/*
 * KvProducerRegister
 *		Have every exit path of this backend end its writes: an error, and
 *		the exit of the backend.
 */
void
KvProducerRegister(void)
{
	if (kv_callbacks_registered)
		return;
	before_shmem_exit(producer_exit, 0);
	RegisterXactCallback(kv_xact_callback, NULL);
	RegisterSubXactCallback(kv_subxact_callback, NULL);
	kv_callbacks_registered = true;
}

/*
 * KvProducerBackendSlot
 *		This backend's slot number: its transactional id's, and its batch's
 *		in group.c.
 */
int
KvProducerBackendSlot(void)
{
	return backend_slot();
}

/*
 * KvProducerSettingsHash
 *		The client settings this backend's atomic writes are made with, as
 *		a hash: a group's writer takes only batches made with its own.  The
 *		connection is the topic slot's, the same for every batch of a
 *		topic's queue.
 */
uint64
KvProducerSettingsHash(void)
{
	uint64		hash = (uint64) kvstore_transaction_timeout;

	hash = hash_combine64(hash, hash_bytes_extended((const unsigned char *) kvstore_brokers,
													strlen(kvstore_brokers), 0));
	if (kvstore_kafka_settings != NULL)
		hash = hash_combine64(hash, hash_bytes_extended((const unsigned char *) kvstore_kafka_settings,
														strlen(kvstore_kafka_settings), 1));
	return hash;
}

/* Destroy a producer, dropping its undelivered records */
static void
destroy_producer(rd_kafka_t **slot)
{
	if (*slot == NULL)
		return;
	if (cur.rk == *slot)
	{
		release_topic();
		cur.active = false;
		cur.atomic = false;
		cur.rk = NULL;
	}
	rd_kafka_purge(*slot, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_NON_BLOCKING);
	rd_kafka_destroy(*slot);
	*slot = NULL;
}

/* Let go of the write's topic handle */
static void
release_topic(void)
{
	if (cur.rkt != NULL)
	{
		rd_kafka_topic_destroy(cur.rkt);
		cur.rkt = NULL;
	}
}

/* Replace the producers librdkafka declared fatally failed */
static void
drop_if_fatal(void)
{
	if (kv_producer != NULL &&
		rd_kafka_fatal_error(kv_producer, NULL, 0) != RD_KAFKA_RESP_ERR_NO_ERROR)
		destroy_producer(&kv_producer);
	if (kv_txn_producer != NULL &&
		rd_kafka_fatal_error(kv_txn_producer, NULL, 0) != RD_KAFKA_RESP_ERR_NO_ERROR)
		destroy_producer(&kv_txn_producer);
}

/* At backend exit: abort an open transaction, deliver, destroy */
static void
producer_exit(int code, Datum arg)
{
	KvProducerAbort();
	if (kv_producer != NULL)
		rd_kafka_flush(kv_producer, KV_ABORT_TIMEOUT_MS);
	destroy_producer(&kv_producer);
	destroy_producer(&kv_txn_producer);
}

/* An aborted PostgreSQL transaction aborts the write in progress */
static void
kv_xact_callback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
		KvProducerAbort();
}

/* So does an aborted subtransaction: the statement that wrote failed */
static void
kv_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
					SubTransactionId parentSubid, void *arg)
{
	if (event == SUBXACT_EVENT_ABORT_SUB)
		KvProducerAbort();
}

/*
 * KvProducerBegin
 *		Start a write to a topic: atomic writes open a Kafka transaction.
 *
 * Waits for the topic to be ready, and refuses a full topic, so that a
 * write is not sent to a topic this server cannot serve; the producer
 * starts meanwhile.
 */
void
KvProducerBegin(KvTopicRef *ref, bool atomic)
{
	rd_kafka_t *rk;

	if (cur.active)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot write to topic \"%s\" while a write to topic \"%s\" is in progress",
						ref->name, cur.topic),
				 errdetail("A statement may write to one topic at a time.")));
	rk = get_producer(atomic, ref->conn);
	cur.rk = rk;

	/*
	 * A topic handle: a producer that meets a topic for the first time
	 * asks for its metadata at once, while the topic is made ready here.
	 * A topic named only in rd_kafka_producev() is looked up by the
	 * producer's scan of its topics, once a second, which holds the first
	 * records up to a second.
	 */
	release_topic();
	cur.rkt = rd_kafka_topic_new(rk, ref->name, NULL);
	if (cur.rkt == NULL)
		ereport(ERROR,
				(errcode(KvKafkaSqlstate(rd_kafka_last_error())),
				 errmsg("could not write to topic \"%s\"", ref->name),
				 errdetail_internal("%s", rd_kafka_err2str(rd_kafka_last_error()))));
	KvTopicWaitReady(ref);
	KvTopicCheckWritable(ref);

	cur.request = ++last_request;
	cur.ref = ref;
	strlcpy(cur.topic, ref->name, sizeof(cur.topic));
	cur.sent = 0;
	cur.pending = 0;
	cur.failed = 0;
	cur.err = RD_KAFKA_RESP_ERR_NO_ERROR;
	cur.maybe_stored = false;
	cur.max_offset = -1;
	KvIndexPlanInit(&cur.plan);
	cur.checked = false;
	cur.members = 1;
	cur.committing = false;
	member_offsets[0] = -1;

	if (atomic)
	{
		rd_kafka_error_t *error = rd_kafka_begin_transaction(rk);

		if (error)
			report_txn_error(error, "begin");
	}
	cur.atomic = atomic;
	cur.active = true;
}

/*
 * KvProducerSend
 *		Hand one record of the write in progress to librdkafka.
 *
 * A record the topic's memory cannot take is refused first.  Waits for
 * room in librdkafka's queue; delivery reports are served as they come.
 * The record's bytes are copied.
 */
void
KvProducerSend(const KvRecord *rec)
{
	send_record(rec, 0);
}

/*
 * KvProducerBeginGroup
 *		Start a Kafka transaction that carries the batches of `members`
 *		atomic writes, this backend's and others' (group.c), each already
 *		checked by its own backend.
 */
void
KvProducerBeginGroup(KvTopicRef *ref, int members)
{
	Assert(members >= 1 && members <= KV_GROUP_MAX_MEMBERS);
	KvProducerBegin(ref, true);
	cur.checked = true;
	cur.members = members;
	for (int i = 0; i < members; i++)
		member_offsets[i] = -1;
}

/* KvProducerSendMember: KvProducerSend for the batch of a group's member */
void
KvProducerSendMember(const KvRecord *rec, int member)
{
	Assert(member >= 0 && member < cur.members);
	send_record(rec, member);
}

/*
 * KvProducerMemberOffset
 *		The highest offset of a member's records, once committed; -1 if it
 *		sent none.
 */
int64
KvProducerMemberOffset(int member)
{
	Assert(member >= 0 && member < KV_GROUP_MAX_MEMBERS);
	return member_offsets[member];
}

/*
 * KvProducerCommitRequested
 *		Whether the write in progress asked Kafka to commit: an error from
 *		then on leaves the outcome of its transaction open.
 */
bool
KvProducerCommitRequested(void)
{
	return cur.committing;
}

/* Hand one record to librdkafka, for member `member` of the write */
static void
send_record(const KvRecord *rec, int member)
{
	rd_kafka_resp_err_t err;

	Assert(cur.active);
	if (!cur.checked)
		KvTopicCheckRecord(cur.ref, rec, &cur.plan);
	for (;;)
	{
		/* A non-NULL pointer with length 0 is an empty value, not a tombstone */
		err = rd_kafka_producev(cur.rk,
								RD_KAFKA_V_RKT(cur.rkt),
								RD_KAFKA_V_PARTITION(0),
								RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
								RD_KAFKA_V_KEY(rec->key, rec->keylen),
								RD_KAFKA_V_VALUE(rec->tombstone ? NULL : (void *) (rec->value ? rec->value : ""),
												 rec->tombstone ? 0 : rec->vallen),
								RD_KAFKA_V_OPAQUE((void *) (uintptr_t) ((cur.request << KV_MEMBER_BITS) | (uint64) member)),
								RD_KAFKA_V_END);
		if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
			break;
		CHECK_FOR_INTERRUPTS();
		serve_deliveries(10);
	}
	if (err)
		ereport(ERROR,
				(errcode(KvKafkaSqlstate(err)),
				 errmsg("could not write to topic \"%s\"", cur.topic),
				 errdetail_internal("%s", rd_kafka_err2str(err))));
	cur.pending++;
	if (++cur.sent % 1024 == 0)
		rd_kafka_poll(cur.rk, 0);
}

/* Serve delivery reports until every record of the write has one */
static void
wait_delivered(void)
{
	TimestampTz deadline = 0;

	if (kvstore_write_timeout > 0)
		deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
											   kvstore_write_timeout);
	while (cur.pending > 0)
	{
		CHECK_FOR_INTERRUPTS();
		if (deadline != 0 && GetCurrentTimestamp() >= deadline)
		{
			const char *last_log = KvKafkaLastLog();

			/*
			 * Records not yet sent never will be.  The purge blocks until
			 * librdkafka's threads have dropped them: a purge left to them
			 * could catch the records of the next write.
			 */
			rd_kafka_purge(cur.rk, RD_KAFKA_PURGE_F_QUEUE);
			ereport(ERROR,
					(errcode(ERRCODE_QUERY_CANCELED),
					 errmsg("timed out waiting for Kafka to acknowledge a write to topic \"%s\"",
							cur.topic),
					 cur.atomic ?
					 errdetail("The transaction is aborted: none of its records is stored.") :
					 errdetail("The write may still be stored in Kafka."),
					 last_log[0] ? errcontext("last Kafka log: %s", last_log) : 0,
					 errhint("Check that the brokers \"%s\" are reachable.",
							 KvKafkaBrokers(cur.ref->conn))));
		}
		serve_deliveries(KV_POLL_MS);
	}
}

/*
 * Serve delivery reports for up to timeout_ms.  A transaction's records
 * linger until flushed: a flush sends them at once, in as few record
 * batches as they fit.
 */
static void
serve_deliveries(int timeout_ms)
{
	if (cur.atomic)
		(void) rd_kafka_flush(cur.rk, timeout_ms);
	else
		rd_kafka_poll(cur.rk, timeout_ms);
}

/* Raise the error of a write some of whose records Kafka refused */
static void
report_delivery_failure(void)
{
	drop_if_fatal();
	if (cur.maybe_stored && !cur.atomic)
		ereport(ERROR,
				(errcode(KvKafkaSqlstate(cur.err)),
				 errmsg("write to topic \"%s\" failed with an uncertain outcome", cur.topic),
				 errdetail("Kafka did not confirm the write, but it may have been stored: %s.",
						   rd_kafka_err2str(cur.err))));
	ereport(ERROR,
			(errcode(KvKafkaSqlstate(cur.err)),
			 errmsg("could not write to topic \"%s\"", cur.topic),
			 errdetail("Kafka did not store the write: %s.",
					   rd_kafka_err2str(cur.err))));
}

/* Raise a transaction error; the abort follows on the error path */
static void
report_txn_error(rd_kafka_error_t *error, const char *what)
{
	char		detail[512];
	rd_kafka_resp_err_t code = rd_kafka_error_code(error);
	bool		fatal = rd_kafka_error_is_fatal(error);

	strlcpy(detail, rd_kafka_error_string(error), sizeof(detail));
	rd_kafka_error_destroy(error);
	if (fatal)
		destroy_producer(&kv_txn_producer);
	ereport(ERROR,
			(errcode(KvKafkaSqlstate(code)),
			 errmsg("could not %s a transaction on topic \"%s\"", what, cur.topic),
			 errdetail_internal("%s", detail)));
}

/*
 * Commit the open transaction in short tries: the commit goes on in the
 * background between them, and cancel is served.  A cancel now leaves the
 * outcome open, which the error context says.
 */
static void
commit_transaction(void)
{
	TimestampTz deadline = 0;
	rd_kafka_error_t *error;
	ErrorContextCallback errcallback;
	bool		shared = cur.members > 1;
	int			timeout = kvstore_write_timeout;

	/*
	 * The commit of a transaction that carries other sessions' batches is
	 * not given up on cancel, which would leave their outcome open: it
	 * ends within the write timeout, or the transaction timeout if that is
	 * longer or none.
	 */
	if (shared && (timeout <= 0 || timeout > kvstore_transaction_timeout))
		timeout = kvstore_transaction_timeout;
	if (timeout > 0)
		deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), timeout);
	errcallback.callback = commit_context;
	errcallback.arg = NULL;
	errcallback.previous = error_context_stack;
	error_context_stack = &errcallback;
	cur.committing = true;
	if (shared)
		HOLD_INTERRUPTS();
	PG_TRY();
	{
		while ((error = rd_kafka_commit_transaction(cur.rk, KV_POLL_MS)) != NULL)
		{
			if (!rd_kafka_error_is_retriable(error) ||
				rd_kafka_error_code(error) != RD_KAFKA_RESP_ERR__TIMED_OUT ||
				(deadline != 0 && GetCurrentTimestamp() >= deadline))
				report_txn_error(error, "commit");
			rd_kafka_error_destroy(error);
			CHECK_FOR_INTERRUPTS();
		}
	}
	PG_FINALLY();
	{
		if (shared)
			RESUME_INTERRUPTS();
	}
	PG_END_TRY();
	error_context_stack = errcallback.previous;
}

/* Errors while a commit is under way leave its outcome open */
static void
commit_context(void *arg)
{
	errcontext("the commit of the transaction on topic \"%s\" was requested; it may or may not be stored",
			   cur.topic);
}

/*
 * KvProducerCommit
 *		Finish producing the write in progress: wait until Kafka has
 *		acknowledged every record, and commit its transaction.
 *
 * Returns the highest offset, or -1 when nothing was sent.  The caller
 * then waits until it is applied (KvTopicWaitApplied).  On error the
 * write is aborted by the error path.
 */
int64
KvProducerCommit(void)
{
	int64		offset;

	Assert(cur.active);
	wait_delivered();
	if (cur.failed > 0)
		report_delivery_failure();
	if (cur.atomic)
		commit_transaction();

	offset = cur.max_offset;
	cur.committing = false;
	release_topic();
	SpinLockAcquire(&cur.ref->topic->mutex);
	cur.ref->topic->writes += cur.sent;
	SpinLockRelease(&cur.ref->topic->mutex);

	cur.active = false;
	cur.atomic = false;
	return offset;
}

/*
 * KvProducerAbort
 *		Abort the write in progress, if any: its open transaction, so that
 *		none of its records reaches readers.
 *
 * Called on every exit path, so it never raises an error.  The producer
 * is destroyed: the next one of this backend slot fences its transaction
 * if the abort failed.
 */
void
KvProducerAbort(void)
{
	bool		atomic = cur.atomic;

	KvGroupAbort();
	cur.committing = false;
	release_topic();
	if (!cur.active)
		return;
	cur.active = false;
	cur.atomic = false;
	cur.members = 1;
	cur.committing = false;
	cur.request = ++last_request;		/* late reports are ignored */
	if (atomic && kv_txn_producer != NULL)
	{
		rd_kafka_error_t *error;

		error = rd_kafka_abort_transaction(kv_txn_producer, KV_ABORT_TIMEOUT_MS);
		if (error)
			rd_kafka_error_destroy(error);

		/*
		 * Kafka answers the abort before it has written it to the topics
		 * of the transaction, and holds the id's next transaction until it
		 * has: for as long as a partition of them has no leader.  The next
		 * write starts a new producer instead, which moves to a new id if
		 * Kafka keeps holding this one (see init_transactions).
		 */
		destroy_producer(&kv_txn_producer);
	}
}

/*
 * KvProducerCheck
 *		Refuse, before anything is sent, an atomic write the topic cannot
 *		take: a topic that is not ready or is full, or records its memory
 *		has no room for.
 */
void
KvProducerCheck(KvTopicRef *ref, const KvRecord *recs, int nrecs)
{
	KvIndexPlan plan;

	KvTopicWaitReady(ref);
	KvTopicCheckWritable(ref);
	KvIndexPlanInit(&plan);
	for (int i = 0; i < nrecs; i++)
		KvTopicCheckRecord(ref, &recs[i], &plan);
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
 * KvProducerWrite
 *		Write records and wait until this server has applied them.
 *
 * An atomic write is one Kafka transaction.  Returns the highest offset;
 * the records were checked by the caller.
 */
int64
KvProducerWrite(KvTopicRef *ref, const KvRecord *recs, int nrecs, bool atomic)
{
	KvWriteContext ctx = {ref->name, false, -1};
	ErrorContextCallback errcallback;

	errcallback.callback = kv_write_context;
	errcallback.arg = &ctx;
	errcallback.previous = error_context_stack;

	if (atomic)
	{
		/*
		 * One Kafka transaction, possibly shared with other sessions'
		 * atomic writes to the topic (group.c).  One that fails before its
		 * commit stores nothing.
		 */
		ctx.offset = KvGroupWrite(ref, recs, nrecs);
	}
	else
	{
		KvProducerBegin(ref, false);
		/* Memory first, for all of them: a refused write sends nothing */
		for (int i = 0; i < nrecs; i++)
			KvTopicCheckRecord(ref, &recs[i], &cur.plan);
		cur.checked = true;
		for (int i = 0; i < nrecs; i++)
			KvProducerSend(&recs[i]);
		error_context_stack = &errcallback;
		ctx.offset = KvProducerCommit();
	}
	ctx.acknowledged = true;
	error_context_stack = &errcallback;

	KvTopicWaitApplied(ref, ctx.offset);

	error_context_stack = errcallback.previous;
	return ctx.offset;
}
