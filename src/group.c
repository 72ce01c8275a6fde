/*-------------------------------------------------------------------------
 *
 * group.c
 *		  Group commit: concurrent atomic writes to a topic share one Kafka
 *		  transaction
 *
 * Every atomic write (kv_put_many) is a Kafka transaction, and Kafka ends
 * the transactions of a partition one after another: registering the
 * partition, the commit, the markers.  Sessions that each commit their own
 * transaction reach together about what one partition's transactions
 * allow, far less than the records would.  So a backend about to commit
 * an atomic write writes, in the same transaction, the batches that other
 * sessions' atomic writes to the same topic queued meanwhile: one
 * transaction, one commit, one record batch, many statements.  Each batch
 * stays atomic (a transaction is visible all at once or not at all), and
 * each statement still returns only once its own records are applied.
 *
 * A backend that finds no group being written becomes the topic's writer
 * and writes its own batch at once, with whatever is queued; its records
 * never leave its memory.  One that finds a writer copies its records to
 * a dsa_area of their own (KvShmemBatchArea) and queues them in its
 * KvBatch, then sleeps until a writer has written them (DONE, with the
 * offset or the writer's error), or until no writer is left and it becomes
 * the writer itself.  A writer takes only batches of the same slot
 * incarnation and client settings, up to KV_GROUP_BYTES in all, so that
 * the transaction stays one record batch; larger writes, and writes that
 * find no room in that area, are written alone, as before.
 *
 * Exit paths:
 * - A queued batch belongs to its backend, which takes it back on error
 *   (cancel, timeout, slot freed) or exit: nothing of it was sent.
 * - A taken batch belongs to the writer.  A writer that fails before it
 *   asked Kafka to commit puts the batches back in the queue (its
 *   transaction is aborted: none of them is stored), so that another
 *   backend writes them; a statement never fails for another session's
 *   cancel.  A writer that fails once the commit was requested marks them
 *   DONE with its error: their outcome is open, and their statements say
 *   so.  The commit of a shared transaction holds interrupts, so only
 *   Kafka, not a cancel, can end it that way.
 * - A backend whose batch was taken and that fails meanwhile leaves it to
 *   the writer; the batch is reused only once the writer is done with it.
 *
 * IDENTIFICATION
 *		  src/group.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "storage/condition_variable.h"
#include "storage/lwlock.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "kvstore.h"

/*
 * Most bytes of records (key, value and a per-record allowance) a group
 * takes in: its transaction then leaves as one record batch, under the
 * producer's batch.size of 1,000,000 bytes.  A larger write is written
 * alone.
 */
#define KV_GROUP_BYTES 900000
#define KV_RECORD_ALLOWANCE 32

/* Longest a queued batch sleeps before it looks at its topic again */
#define KV_GROUP_STEP_MS 1000

/* A serialized record: this header, the key, then the value */
typedef struct KvBatchRecord
{
	uint32		keylen;
	uint32		vallen;
	bool		tombstone;
} KvBatchRecord;

/* The group this backend writes, while it writes one */
static struct
{
	KvTopic    *topic;			/* NULL: none */
	int			ntaken;
	int			taken[KV_GROUP_MAX_MEMBERS - 1];	/* backend slots of the
													 * batches taken */
} group;

/* This backend's batch while it waits in a queue or for a writer */
static KvBatch *waiting = NULL;

static uint32 records_bytes(const KvRecord *recs, int nrecs);
static dsa_pointer copy_records(const KvRecord *recs, int nrecs, uint32 bytes);
static void unlink_batch(KvTopic *topic, int slot);
static void reclaim(KvBatch *batch);
static int64 write_group(KvTopicRef *ref, const KvRecord *recs, int nrecs,
						 uint64 settings, bool writer);
static void send_batch(KvBatch *batch, int member);
static void end_group(int sqlerrcode, const char *message, const char *detail);
static int64 wait_for_writer(KvTopicRef *ref, const KvRecord *recs, int nrecs,
							 uint64 settings);
static void waiting_context(void *arg);

/* Bytes a group counts for records: what they take in a record batch */
static uint32
records_bytes(const KvRecord *recs, int nrecs)
{
	uint64		bytes = 0;

	for (int i = 0; i < nrecs && bytes <= KV_GROUP_BYTES; i++)
		bytes += (uint64) recs[i].keylen + recs[i].vallen + KV_RECORD_ALLOWANCE;
	return (uint32) Min(bytes, (uint64) KV_GROUP_BYTES + 1);
}

/* Copy records to the area; InvalidDsaPointer if it has no room */
static dsa_pointer
copy_records(const KvRecord *recs, int nrecs, uint32 bytes)
{
	dsa_area   *area = KvShmemBatchArea();
	dsa_pointer dp;
	char	   *p;

	dp = dsa_allocate_extended(area, bytes, DSA_ALLOC_NO_OOM);
	if (!DsaPointerIsValid(dp))
		return InvalidDsaPointer;
	p = dsa_get_address(area, dp);
	for (int i = 0; i < nrecs; i++)
	{
		KvBatchRecord hdr = {recs[i].keylen,
			recs[i].tombstone ? 0 : recs[i].vallen,
		recs[i].tombstone};

		memcpy(p, &hdr, sizeof(hdr));
		p += sizeof(hdr);
		memcpy(p, recs[i].key, hdr.keylen);
		p += hdr.keylen;
		if (hdr.vallen > 0)
			memcpy(p, recs[i].value, hdr.vallen);
		p += hdr.vallen;
	}
	return dp;
}

/* Take a batch out of its topic's queue; group_lock is held */
static void
unlink_batch(KvTopic *topic, int slot)
{
	int			prev = -1;

	for (int s = topic->group_head; s >= 0; s = KvShmemBatch(s)->next)
	{
		if (s == slot)
		{
			KvBatch    *batch = KvShmemBatch(s);

			if (prev < 0)
				topic->group_head = batch->next;
			else
				KvShmemBatch(prev)->next = batch->next;
			if (topic->group_tail == s)
				topic->group_tail = prev;
			batch->next = -1;
			return;
		}
		prev = s;
	}
}

/*
 * Make this backend slot's batch ready for a new write: a batch a writer
 * still holds (its backend failed, or exited, while it was taken) is
 * waited for; the outcome nobody read is dropped.
 */
static void
reclaim(KvBatch *batch)
{
	KvTopic    *topic;
	dsa_area   *area;

	if (batch->state == KV_BATCH_IDLE)
		return;
	topic = KvTopicByIndex(batch->topic);
	area = KvShmemBatchArea();	/* attached before the lock is taken */
	ConditionVariablePrepareToSleep(&topic->group_cv);
	for (;;)
	{
		KvBatchState state;

		LWLockAcquire(topic->group_lock, LW_EXCLUSIVE);
		state = batch->state;
		if (state == KV_BATCH_QUEUED)
		{
			/* left by a backend of this slot that exited */
			unlink_batch(topic, KvProducerBackendSlot());
			dsa_free(area, batch->records);
		}
		if (state != KV_BATCH_TAKEN)
			batch->state = KV_BATCH_IDLE;
		LWLockRelease(topic->group_lock);
		if (state != KV_BATCH_TAKEN)
			break;
		(void) ConditionVariableTimedSleep(&topic->group_cv, KV_GROUP_STEP_MS,
										   KvWaitEvent(KV_WAIT_WRITE_GROUP));
	}
	ConditionVariableCancelSleep();
}

/*
 * KvGroupWrite
 *		Write records atomically, in a Kafka transaction this backend or
 *		another writes; returns the highest offset once committed.
 *
 * The caller then waits until it is applied.  Errors before the commit
 * was requested store nothing.
 */
int64
KvGroupWrite(KvTopicRef *ref, const KvRecord *recs, int nrecs)
{
	KvTopic    *topic = ref->topic;
	KvBatch    *batch = KvShmemBatch(KvProducerBackendSlot());
	uint64		settings;
	uint32		bytes;
	dsa_pointer dp;

	/* Everything that can refuse the write, before it is queued */
	KvProducerCheck(ref, recs, nrecs);
	KvProducerRegister();
	settings = KvProducerSettingsHash();
	bytes = records_bytes(recs, nrecs);
	if (batch == NULL || bytes > KV_GROUP_BYTES)
		return write_group(ref, recs, nrecs, settings, false);
	reclaim(batch);

	LWLockAcquire(topic->group_lock, LW_EXCLUSIVE);
	if (topic->group_writer < 0)
	{
		topic->group_writer = KvProducerBackendSlot();
		LWLockRelease(topic->group_lock);
		return write_group(ref, recs, nrecs, settings, true);
	}
	LWLockRelease(topic->group_lock);

	/* Another backend writes a group: queue a copy for the next one */
	dp = copy_records(recs, nrecs, bytes);
	if (!DsaPointerIsValid(dp))
		return write_group(ref, recs, nrecs, settings, false);

	LWLockAcquire(topic->group_lock, LW_EXCLUSIVE);
	if (topic->group_writer < 0)
	{
		topic->group_writer = KvProducerBackendSlot();
		LWLockRelease(topic->group_lock);
		dsa_free(KvShmemBatchArea(), dp);
		return write_group(ref, recs, nrecs, settings, true);
	}
	batch->state = KV_BATCH_QUEUED;
	batch->topic = topic->number;
	batch->incarnation = ref->incarnation;
	batch->settings = settings;
	batch->records = dp;
	batch->nrecs = nrecs;
	batch->bytes = bytes;
	batch->next = -1;
	if (topic->group_tail >= 0)
		KvShmemBatch(topic->group_tail)->next = KvProducerBackendSlot();
	else
		topic->group_head = KvProducerBackendSlot();
	topic->group_tail = KvProducerBackendSlot();
	waiting = batch;
	LWLockRelease(topic->group_lock);

	return wait_for_writer(ref, recs, nrecs, settings);
}

/*
 * Write this backend's records in one transaction: as the topic's writer
 * (group_writer), with the batches queued for it, or alone.
 */
static int64
write_group(KvTopicRef *ref, const KvRecord *recs, int nrecs, uint64 settings,
			bool writer)
{
	KvTopic    *topic = ref->topic;
	MemoryContext oldcontext = CurrentMemoryContext;

	group.ntaken = 0;
	if (writer)
	{
		uint32		bytes = records_bytes(recs, nrecs);

		group.topic = topic;
		LWLockAcquire(topic->group_lock, LW_EXCLUSIVE);
		for (int s = topic->group_head, next; s >= 0; s = next)
		{
			KvBatch    *batch = KvShmemBatch(s);

			next = batch->next;
			if (group.ntaken == KV_GROUP_MAX_MEMBERS - 1)
				break;
			if (batch->incarnation != ref->incarnation ||
				batch->settings != settings ||
				bytes + batch->bytes > KV_GROUP_BYTES)
				continue;
			unlink_batch(topic, s);
			batch->state = KV_BATCH_TAKEN;
			bytes += batch->bytes;
			group.taken[group.ntaken++] = s;
		}
		LWLockRelease(topic->group_lock);
	}

	PG_TRY();
	{
		KvProducerBeginGroup(ref, group.ntaken + 1);
		for (int i = 0; i < nrecs; i++)
			KvProducerSendMember(&recs[i], 0);
		for (int m = 0; m < group.ntaken; m++)
			send_batch(KvShmemBatch(group.taken[m]), m + 1);
		(void) KvProducerCommit();
	}
	PG_CATCH();
	{
		/*
		 * The taken batches go back to the queue, or share the outcome of
		 * a commit that was requested; the error path then aborts the
		 * transaction
		 */
		if (group.topic != NULL)
		{
			ErrorData  *edata;

			MemoryContextSwitchTo(oldcontext);
			edata = CopyErrorData();
			if (KvProducerCommitRequested())
				end_group(edata->sqlerrcode, edata->message, edata->detail);
			else
				end_group(-1, NULL, NULL);
			FreeErrorData(edata);
		}
		PG_RE_THROW();
	}
	PG_END_TRY();

	end_group(0, NULL, NULL);
	return KvProducerMemberOffset(0);
}

/* Hand the records of a taken batch to the transaction */
static void
send_batch(KvBatch *batch, int member)
{
	const char *p = dsa_get_address(KvShmemBatchArea(), batch->records);

	for (uint32 i = 0; i < batch->nrecs; i++)
	{
		KvBatchRecord hdr;
		KvRecord	rec;

		memcpy(&hdr, p, sizeof(hdr));
		p += sizeof(hdr);
		rec = KvRecordFromBytes(p, hdr.keylen, hdr.tombstone ? NULL : p + hdr.keylen,
								hdr.vallen, hdr.tombstone);
		p += hdr.keylen + hdr.vallen;
		KvProducerSendMember(&rec, member);
	}
}

/*
 * Let go of the group this backend writes, and wake the backends waiting:
 * sqlerrcode 0 gives each taken batch its offset, -1 puts them back at the
 * head of the queue, any other code gives them that error.  Never raises
 * an error: it runs on error and exit paths.
 */
static void
end_group(int sqlerrcode, const char *message, const char *detail)
{
	KvTopic    *topic = group.topic;

	if (topic == NULL)
		return;
	LWLockAcquire(topic->group_lock, LW_EXCLUSIVE);
	for (int m = group.ntaken - 1; m >= 0; m--)
	{
		int			s = group.taken[m];
		KvBatch    *batch = KvShmemBatch(s);

		if (sqlerrcode < 0)
		{
			/* back where it was: nothing of it is stored */
			batch->state = KV_BATCH_QUEUED;
			batch->next = topic->group_head;
			topic->group_head = s;
			if (topic->group_tail < 0)
				topic->group_tail = s;
			continue;
		}
		/* the records were sent: the area is attached */
		dsa_free(KvShmemBatchArea(), batch->records);
		batch->records = InvalidDsaPointer;
		batch->state = KV_BATCH_DONE;
		batch->writer = MyProcPid;
		batch->members = group.ntaken + 1;
		batch->offset = KvProducerMemberOffset(m + 1);
		batch->sqlerrcode = sqlerrcode;
		strlcpy(batch->message, message ? message : "", sizeof(batch->message));
		strlcpy(batch->detail, detail ? detail : "", sizeof(batch->detail));
	}
	if (topic->group_writer == KvProducerBackendSlot())
		topic->group_writer = -1;
	LWLockRelease(topic->group_lock);
	group.topic = NULL;
	group.ntaken = 0;
	ConditionVariableBroadcast(&topic->group_cv);
}

/* What a statement whose batch is queued or taken adds to its errors */
static void
waiting_context(void *arg)
{
	KvBatch    *batch = (KvBatch *) arg;

	/* read without the lock: the state only words the message */
	if (batch->state == KV_BATCH_TAKEN)
		errcontext("the write was handed to another session's Kafka transaction on this topic; it may or may not be stored");
	else if (batch->state == KV_BATCH_QUEUED)
		errcontext("the write waited for another session's Kafka transaction on this topic; nothing of it was sent");
}

/*
 * Sleep until a writer has written this backend's queued batch, or no
 * writer is left and this backend becomes it.
 */
static int64
wait_for_writer(KvTopicRef *ref, const KvRecord *recs, int nrecs,
				uint64 settings)
{
	KvTopic    *topic = ref->topic;
	KvBatch    *batch = waiting;
	TimestampTz deadline = 0;
	ErrorContextCallback errcallback;
	KvBatch		outcome;

	if (kvstore_write_timeout > 0)
		deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
											   kvstore_write_timeout);
	errcallback.callback = waiting_context;
	errcallback.arg = batch;
	errcallback.previous = error_context_stack;
	error_context_stack = &errcallback;

	ConditionVariablePrepareToSleep(&topic->group_cv);
	for (;;)
	{
		bool		timed_out;
		long		step;

		LWLockAcquire(topic->group_lock, LW_EXCLUSIVE);
		if (batch->state == KV_BATCH_DONE)
		{
			memcpy(&outcome, batch, sizeof(KvBatch));
			batch->state = KV_BATCH_IDLE;
			waiting = NULL;
			LWLockRelease(topic->group_lock);
			break;
		}
		if (batch->state == KV_BATCH_QUEUED && topic->group_writer < 0)
		{
			/* no writer left: this backend writes the next group */
			unlink_batch(topic, KvProducerBackendSlot());
			dsa_free(KvShmemBatchArea(), batch->records);
			batch->state = KV_BATCH_IDLE;
			waiting = NULL;
			topic->group_writer = KvProducerBackendSlot();
			LWLockRelease(topic->group_lock);
			ConditionVariableCancelSleep();
			error_context_stack = errcallback.previous;
			return write_group(ref, recs, nrecs, settings, true);
		}
		timed_out = batch->state == KV_BATCH_QUEUED && deadline != 0 &&
			GetCurrentTimestamp() >= deadline;
		LWLockRelease(topic->group_lock);

		if (timed_out)
			ereport(ERROR,
					(errcode(ERRCODE_QUERY_CANCELED),
					 errmsg("timed out waiting to write to topic \"%s\"", ref->name),
					 errdetail("Other sessions' Kafka transactions on the topic took longer than kvstore.write_timeout."),
					 errhint("Check that the brokers \"%s\" are reachable.",
							 KvKafkaBrokers(ref->conn))));
		step = KV_GROUP_STEP_MS;
		if (deadline != 0)
		{
			long		left = TimestampDifferenceMilliseconds(GetCurrentTimestamp(),
															   deadline);

			step = Max(Min(step, left), 1);
		}
		(void) ConditionVariableTimedSleep(&topic->group_cv, step,
										   KvWaitEvent(KV_WAIT_WRITE_GROUP));
		KvTopicRecheck(ref);
	}
	ConditionVariableCancelSleep();
	error_context_stack = errcallback.previous;

	if (outcome.sqlerrcode != 0)
		ereport(ERROR,
				(errcode(outcome.sqlerrcode),
				 errmsg_internal("%s", outcome.message),
				 outcome.detail[0] ? errdetail_internal("%s", outcome.detail) : 0,
				 errcontext("the write was carried by the Kafka transaction of the session with PID %d, with %d other writes to topic \"%s\"; it may or may not be stored",
							(int) outcome.writer, outcome.members - 1, ref->name)));
	return outcome.offset;
}

/*
 * KvGroupAbort
 *		On an error or exit path: let go of the group this backend writes,
 *		and take back its own queued batch.  Never raises an error.
 */
void
KvGroupAbort(void)
{
	if (group.topic != NULL)
	{
		/*
		 * An exit (FATAL) while writing: before the commit, the batches go
		 * back to the queue; once it was requested, their outcome is open
		 */
		if (KvProducerCommitRequested())
			end_group(ERRCODE_CONNECTION_FAILURE,
					  "the session writing the Kafka transaction exited during its commit",
					  NULL);
		else
			end_group(-1, NULL, NULL);
	}
	if (waiting != NULL)
	{
		KvBatch    *batch = waiting;
		KvTopic    *topic = KvTopicByIndex(batch->topic);

		waiting = NULL;
		LWLockAcquire(topic->group_lock, LW_EXCLUSIVE);
		if (batch->state == KV_BATCH_QUEUED)
		{
			unlink_batch(topic, KvProducerBackendSlot());
			dsa_free(KvShmemBatchArea(), batch->records);
			batch->state = KV_BATCH_IDLE;
		}
		else if (batch->state == KV_BATCH_DONE)
			batch->state = KV_BATCH_IDLE;
		/* a batch still taken is the writer's until it is done */
		LWLockRelease(topic->group_lock);
	}
}
