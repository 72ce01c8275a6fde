/*-------------------------------------------------------------------------
 *
 * shmem.c
 *		  Shared memory: sizing and start-up, topic slots
 *
 * One block of main shared memory holds a header and kvstore.max_topics
 * topic slots.  The indexes of all topics allocate from one dsa_area in
 * dynamic shared memory, created by the first process that needs it and
 * pinned for the life of the server.  The area grows by DSM segments as
 * the indexes grow, up to kvstore.shared_memory, a reload setting: every
 * process applies the value it last read to the area (dsa_set_size_limit)
 * when it next reaches for the area, and the workers give it to their
 * indexes, which count what they hold together in KvShared->held and take
 * nothing past it.  Lowering the limit below what the indexes hold only
 * stops them from taking more.  The area keeps its segments once it has
 * them: what an index frees goes back to the area, not to the operating
 * system.
 *
 * Locking protocol:
 *
 * - KvShared->lock (the first lock of the "kvstore" tranche) guards the
 *   slot table, the name and connection of every slot, and the handle of
 *   the area.  A slot is a topic of one connection (kafka.c): the same
 *   topic name on two clusters, or with two users' credentials, is two
 *   slots.  The connection of a claimed slot does not change until the
 *   slot is freed.  Take
 *   it shared to find a topic, exclusively to claim or free a slot or to
 *   create the area.
 * - KvTopic->lock guards the topic's index.  The topic's materializer is
 *   the only writer; it holds the lock exclusively while it applies one
 *   batch of records.  Readers hold it shared while they copy entries out.
 * - KvTopic->gate keeps a stream of readers from holding the worker off:
 *   the worker sets worker_waiting, takes the gate exclusively, then the
 *   lock, then lets the gate go and clears worker_waiting; readers that
 *   find worker_waiting set take the gate shared, then the lock, then let
 *   the gate go.  A worker waiting for the lock so holds back new readers
 *   until the ones inside are done.  Readers that find it clear take the
 *   lock alone, which spares every look-up two atomic operations on a
 *   shared cache line; at most the readers that read the flag just
 *   before the worker set it pass before it.
 * - KvTopic->mutex, a spinlock, guards the small status fields: state,
 *   generation, offsets, counters, last error.  Never hold it across
 *   anything that can fail or sleep.  The state leaves READY, and the
 *   generation changes, only while the topic lock is held exclusively as
 *   well: a reader holding the lock shared that finds the topic READY in
 *   the generation it started in reads a consistent index.
 * - KvTopic->incarnation is atomic: it changes, under KvShared->lock held
 *   exclusively, whenever the slot is claimed or freed.  A backend keeps
 *   the incarnation it found a topic in and checks it after every wait.
 * - KvTopic->applied is atomic: the worker advances it while it still
 *   holds the topic lock, once the records below it are in the index, and
 *   broadcasts KvTopic->cv after releasing the lock.  Waiters read it
 *   without any lock; a reader holding the lock shared reads an offset
 *   that matches the index.
 * - KvTopic->group_lock guards the topic's queue of atomic writes, the
 *   backend writing a group, and every KvBatch queued in it or taken
 *   from it (group.c).  Never held across anything that can fail.
 * - The generations of the transactional ids, one per backend slot, are
 *   atomics in their own block (see KvShmemTxnIdGeneration).
 *
 * IDENTIFICATION
 *		  src/shmem.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/hashfn.h"
#include "miscadmin.h"
#include "storage/dsm.h"
#include "storage/ipc.h"
#include "storage/shmem.h"
#include "utils/memutils.h"

#include "kvstore.h"

#define KV_TRANCHE_NAME "kvstore"

/* PostgreSQL 15 names no invalid dsa_handle; an area's is a DSM handle */
#ifndef DSA_HANDLE_INVALID
#define DSA_HANDLE_INVALID ((dsa_handle) DSM_HANDLE_INVALID)
#endif

typedef struct KvShared
{
	LWLock	   *lock;			/* guards the names of the slots and area */
	int			ntopics;		/* slots, kvstore.max_topics at start */
	int			area_tranche;	/* LWLock tranche of the area's own locks */
	dsa_handle	area;			/* the area of the indexes, or
								 * DSA_HANDLE_INVALID before its first use */
	dsa_handle	batch_area;		/* the area of queued atomic writes
								 * (group.c), or DSA_HANDLE_INVALID */
	pg_atomic_uint64 held;		/* bytes the indexes of all topics hold */
	pg_atomic_uint32 area_warned;	/* 1 once a worker warned that the
									 * area is 90% used, until it is below
									 * 80% */
	KvTopic		topics[FLEXIBLE_ARRAY_MEMBER];
} KvShared;

static KvShared *kv_shared = NULL;

/*
 * The generation of each backend slot's transactional id, indexed by the
 * slot number: the id moves on when its last transaction cannot be ended
 * (see producer.c)
 */
static pg_atomic_uint32 *kv_txn_generations = NULL;

/* The atomic write of each backend slot, when another writes it (group.c) */
static KvBatch *kv_batches = NULL;
static dsa_area *kv_area = NULL;
static dsa_area *kv_batch_area = NULL;

/*
 * The most the area of queued atomic writes may take: beyond it, atomic
 * writes are written alone instead of queued
 */
#define KV_BATCH_AREA_LIMIT (64 * 1024 * 1024)

/* The kvstore.shared_memory (kB) this process last applied to the area */
static int	kv_area_limit = 0;

/* Where the last topic found by name sits, to skip the slot search */
static int	last_found = -1;

static bool slot_is(KvTopic *topic, const char *name, uint64 conn_hash,
					const char *conn);

/* Whether a slot holds a topic of a connection (NULL: the default one) */
static bool
slot_is(KvTopic *topic, const char *name, uint64 conn_hash, const char *conn)
{
	return topic->conn_hash == conn_hash &&
		strcmp(topic->name, name) == 0 &&
		strcmp(topic->conn, conn ? conn : "") == 0;
}

/*
 * KvConnectionHash
 *		The hash that tells the slots of a connection apart; 0 for the
 *		default connection, NULL or "".
 */
uint64
KvConnectionHash(const char *conn)
{
	if (conn == NULL || conn[0] == '\0')
		return 0;
	return hash_bytes_extended((const unsigned char *) conn, strlen(conn), 0) | 1;
}

/*
 * KvShmemSize
 *		Bytes of main shared memory kvstore needs: the topic slots.
 */
Size
KvShmemSize(void)
{
	return MAXALIGN(add_size(offsetof(KvShared, topics),
							 mul_size(kvstore_max_topics, sizeof(KvTopic))));
}

/* Backend slots numbered below this have a transactional id generation */
static int
txn_slots(void)
{
	return MaxBackends + 1;
}

/*
 * KvShmemRequest
 *		Ask for the memory and the locks, from shmem_request_hook.
 *
 * One lock guards the slot table; per slot, two guard a topic's index and
 * one its queue of atomic writes (group.c).
 */
void
KvShmemRequest(void)
{
	RequestAddinShmemSpace(KvShmemSize());
	RequestAddinShmemSpace(MAXALIGN(mul_size(txn_slots(), sizeof(pg_atomic_uint32))));
	RequestAddinShmemSpace(MAXALIGN(mul_size(txn_slots(), sizeof(KvBatch))));
	RequestNamedLWLockTranche(KV_TRANCHE_NAME, 3 * kvstore_max_topics + 1);
}

/*
 * KvShmemStartup
 *		Create the shared state, or attach to it, from shmem_startup_hook.
 *
 * The area of the indexes comes later, with its first use: the postmaster
 * cannot create DSM segments.
 */
void
KvShmemStartup(void)
{
	bool		found;
	LWLockPadded *locks;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);

	kv_txn_generations = ShmemInitStruct("kvstore transactional ids",
										 mul_size(txn_slots(), sizeof(pg_atomic_uint32)),
										 &found);
	if (!found)
		for (int i = 0; i < txn_slots(); i++)
			pg_atomic_init_u32(&kv_txn_generations[i], 0);

	kv_batches = ShmemInitStruct("kvstore batches",
								 mul_size(txn_slots(), sizeof(KvBatch)),
								 &found);
	if (!found)
		memset(kv_batches, 0, mul_size(txn_slots(), sizeof(KvBatch)));

	kv_shared = ShmemInitStruct("kvstore", KvShmemSize(), &found);
	locks = GetNamedLWLockTranche(KV_TRANCHE_NAME);

	if (!found)
	{
		kv_shared->lock = &locks[0].lock;
		kv_shared->ntopics = kvstore_max_topics;
		kv_shared->area_tranche = locks[0].lock.tranche;
		kv_shared->area = DSA_HANDLE_INVALID;
		kv_shared->batch_area = DSA_HANDLE_INVALID;
		pg_atomic_init_u64(&kv_shared->held, 0);
		pg_atomic_init_u32(&kv_shared->area_warned, 0);
		for (int i = 0; i < kv_shared->ntopics; i++)
		{
			KvTopic    *topic = &kv_shared->topics[i];

			memset(topic, 0, sizeof(KvTopic));
			topic->lock = &locks[3 * i + 1].lock;
			topic->gate = &locks[3 * i + 2].lock;
			topic->group_lock = &locks[3 * i + 3].lock;
			ConditionVariableInit(&topic->cv);
			ConditionVariableInit(&topic->group_cv);
			pg_atomic_init_u32(&topic->worker_waiting, 0);
			topic->number = i;
			topic->group_writer = -1;
			topic->group_head = -1;
			topic->group_tail = -1;
			pg_atomic_init_u64(&topic->applied, 0);
			pg_atomic_init_u64(&topic->incarnation, 1);
			SpinLockInit(&topic->mutex);
			topic->state = KV_TOPIC_FREE;
			KvIndexInit(&topic->index);
			topic->index.held = &kv_shared->held;
		}
	}

	LWLockRelease(AddinShmemInitLock);
}

/*
 * KvShmemArea
 *		The dsa_area of the indexes, attached in this process, with the
 *		current kvstore.shared_memory as its limit.
 *
 * The first process to ask creates the area and pins it, so that it lives
 * as long as the server; the others attach to it.  Either way the mapping
 * is pinned: it lasts as long as the process, not the transaction.
 */
dsa_area *
KvShmemArea(void)
{
	if (kv_area == NULL)
	{
		MemoryContext oldcontext = MemoryContextSwitchTo(TopMemoryContext);

		LWLockAcquire(kv_shared->lock, LW_EXCLUSIVE);
		if (kv_shared->area == DSA_HANDLE_INVALID)
		{
			kv_area = dsa_create(kv_shared->area_tranche);
			dsa_pin(kv_area);
			kv_shared->area = dsa_get_handle(kv_area);
		}
		else
			kv_area = dsa_attach(kv_shared->area);
		dsa_pin_mapping(kv_area);
		LWLockRelease(kv_shared->lock);
		MemoryContextSwitchTo(oldcontext);
		kv_area_limit = 0;
	}
	if (kv_area_limit != kvstore_shared_memory)
	{
		dsa_set_size_limit(kv_area, (size_t) kvstore_shared_memory * 1024);
		kv_area_limit = kvstore_shared_memory;
	}
	return kv_area;
}

/*
 * KvShmemBatchArea
 *		The dsa_area where atomic writes queue their records for another
 *		backend's Kafka transaction (group.c), attached in this process.
 *
 * An area of its own, up to KV_BATCH_AREA_LIMIT, so that the indexes never
 * find their area taken by records on their way to Kafka.  Created by the
 * first process to ask, and pinned, as the area of the indexes is.
 */
dsa_area *
KvShmemBatchArea(void)
{
	if (kv_batch_area == NULL)
	{
		MemoryContext oldcontext = MemoryContextSwitchTo(TopMemoryContext);

		LWLockAcquire(kv_shared->lock, LW_EXCLUSIVE);
		if (kv_shared->batch_area == DSA_HANDLE_INVALID)
		{
			kv_batch_area = dsa_create(kv_shared->area_tranche);
			dsa_pin(kv_batch_area);
			dsa_set_size_limit(kv_batch_area, KV_BATCH_AREA_LIMIT);
			kv_shared->batch_area = dsa_get_handle(kv_batch_area);
		}
		else
			kv_batch_area = dsa_attach(kv_shared->batch_area);
		dsa_pin_mapping(kv_batch_area);
		LWLockRelease(kv_shared->lock);
		MemoryContextSwitchTo(oldcontext);
	}
	return kv_batch_area;
}

/*
 * KvShmemHeld
 *		Bytes the area holds for the indexes of all topics: the counter
 *		every index adds to and checks kvstore.shared_memory against.
 */
uint64
KvShmemHeld(void)
{
	return pg_atomic_read_u64(&kv_shared->held);
}

/*
 * KvShmemWarnArea
 *		Whether the caller, which found the area over 90% used, is the one
 *		to warn about it; below 80%, the next to find it over warns again.
 */
bool
KvShmemWarnArea(bool over, bool under)
{
	if (under)
		pg_atomic_write_u32(&kv_shared->area_warned, 0);
	return over && pg_atomic_exchange_u32(&kv_shared->area_warned, 1) == 0;
}

/*
 * KvShmemTxnIdGeneration
 *		The generation of the transactional id of backend slot `slot`;
 *		slots out of range keep generation 0.
 */
uint32
KvShmemTxnIdGeneration(int slot)
{
	KvCheckLoaded();
	if (slot < 0 || slot >= txn_slots())
		return 0;
	return pg_atomic_read_u32(&kv_txn_generations[slot]);
}

/*
 * KvShmemTxnIdAdvance
 *		Move the generation of backend slot `slot` on from `from`, unless
 *		another backend of the slot already did.
 */
void
KvShmemTxnIdAdvance(int slot, uint32 from)
{
	KvCheckLoaded();
	if (slot >= 0 && slot < txn_slots())
		(void) pg_atomic_compare_exchange_u32(&kv_txn_generations[slot],
											  &from, from + 1);
}

/*
 * KvShmemBatch
 *		The batch of backend slot `slot`, or NULL for a slot out of range.
 */
KvBatch *
KvShmemBatch(int slot)
{
	KvCheckLoaded();
	if (slot < 0 || slot >= txn_slots())
		return NULL;
	return &kv_batches[slot];
}

/*
 * KvTopicByIndex
 *		The slot at position i, or NULL past the last one.
 */
KvTopic *
KvTopicByIndex(int i)
{
	KvCheckLoaded();
	if (i < 0 || i >= kv_shared->ntopics)
		return NULL;
	return &kv_shared->topics[i];
}

/*
 * KvTopicFind
 *		The slot of an attached topic, or NULL; *incarnation is set to the
 *		slot's incarnation when found.
 */
KvTopic *
KvTopicFind(const char *name, const char *conn, uint64 *incarnation)
{
	KvTopic    *found = NULL;
	uint64		conn_hash = KvConnectionHash(conn);

	KvCheckLoaded();

	LWLockAcquire(kv_shared->lock, LW_SHARED);
	if (last_found >= 0 &&
		slot_is(&kv_shared->topics[last_found], name, conn_hash, conn))
		found = &kv_shared->topics[last_found];
	for (int i = 0; found == NULL && i < kv_shared->ntopics; i++)
	{
		if (slot_is(&kv_shared->topics[i], name, conn_hash, conn))
		{
			found = &kv_shared->topics[i];
			last_found = i;
		}
	}
	if (found != NULL)
		*incarnation = pg_atomic_read_u64(&found->incarnation);
	LWLockRelease(kv_shared->lock);

	return found;
}

/*
 * KvTopicFindHash
 *		The slot of a topic of the connection with the given hash, or NULL.
 *
 * For a worker, which knows its connection by hash only: a backend claimed
 * the slot and stored the connection in it.
 */
KvTopic *
KvTopicFindHash(const char *name, uint64 conn_hash)
{
	KvTopic    *found = NULL;

	LWLockAcquire(kv_shared->lock, LW_SHARED);
	for (int i = 0; found == NULL && i < kv_shared->ntopics; i++)
	{
		KvTopic    *topic = &kv_shared->topics[i];

		if (topic->conn_hash == conn_hash && strcmp(topic->name, name) == 0)
			found = topic;
	}
	LWLockRelease(kv_shared->lock);
	return found;
}

/*
 * KvTopicFreeSlots
 *		How many topic slots are free now.
 */
int
KvTopicFreeSlots(void)
{
	int			free_slots = 0;

	KvCheckLoaded();
	LWLockAcquire(kv_shared->lock, LW_SHARED);
	for (int i = 0; i < kv_shared->ntopics; i++)
		if (kv_shared->topics[i].name[0] == '\0')
			free_slots++;
	LWLockRelease(kv_shared->lock);
	return free_slots;
}

/*
 * KvTopicClaim
 *		The slot of a topic, claimed in state STARTING if it had none.
 *
 * *claimed tells whether this call claimed it.  Returns NULL when every
 * slot is taken.
 */
KvTopic *
KvTopicClaim(const char *name, const char *conn, bool *claimed)
{
	KvTopic    *found = NULL;
	KvTopic    *free_slot = NULL;
	uint64		conn_hash = KvConnectionHash(conn);

	Assert(conn == NULL || strlen(conn) < KV_MAX_CONNECTION);
	LWLockAcquire(kv_shared->lock, LW_EXCLUSIVE);
	for (int i = 0; i < kv_shared->ntopics; i++)
	{
		KvTopic    *topic = &kv_shared->topics[i];

		if (slot_is(topic, name, conn_hash, conn))
		{
			found = topic;
			break;
		}
		if (free_slot == NULL && topic->name[0] == '\0')
			free_slot = topic;
	}
	*claimed = false;
	if (found == NULL && free_slot != NULL)
	{
		*claimed = true;
		found = free_slot;
		strlcpy(found->name, name, sizeof(found->name));
		found->conn_hash = conn_hash;
		strlcpy(found->conn, conn ? conn : "", sizeof(found->conn));
		SpinLockAcquire(&found->mutex);
		found->state = KV_TOPIC_STARTING;
		found->worker_pid = 0;
		found->detach = false;
		found->end_offset = 0;
		found->bootstrap_target = 0;
		found->bootstrap_from = 0;
		found->bootstrap_start = 0;
		found->bootstrap_end = 0;
		found->records = 0;
		found->skipped = 0;
		found->writes = 0;
		found->error_code = 0;
		found->last_error[0] = '\0';
		SpinLockRelease(&found->mutex);
		pg_atomic_write_u64(&found->applied, 0);
		pg_atomic_fetch_add_u64(&found->incarnation, 1);
	}
	LWLockRelease(kv_shared->lock);

	return found;
}

/*
 * KvTopicRelease
 *		Free the slot of a topic whose worker could not be started, or
 *		whose index its worker emptied for kv_detach.
 */
void
KvTopicRelease(KvTopic *topic)
{
	LWLockAcquire(kv_shared->lock, LW_EXCLUSIVE);
	SpinLockAcquire(&topic->mutex);
	topic->state = KV_TOPIC_FREE;
	SpinLockRelease(&topic->mutex);
	topic->name[0] = '\0';
	topic->conn_hash = 0;
	topic->conn[0] = '\0';
	pg_atomic_fetch_add_u64(&topic->incarnation, 1);
	LWLockRelease(kv_shared->lock);
	ConditionVariableBroadcast(&topic->cv);
}
