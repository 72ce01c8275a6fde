/*-------------------------------------------------------------------------
 *
 * shmem.c
 *		  Shared memory: sizing and start-up, topic slots
 *
 * One block of main shared memory holds a header, kvstore.max_topics topic
 * slots and, after them, a dsa_area of kvstore.shared_memory bytes created
 * in place with that size as its limit.  The indexes of all topics
 * allocate from that area, so the setting bounds them all together, and
 * an allocation that does not fit fails instead of growing the area.
 *
 * Locking protocol:
 *
 * - KvShared->lock (the first lock of the "kvstore" tranche) guards the
 *   slot table: the name of every slot.  Take it shared to find a topic,
 *   exclusively to claim or free a slot.
 * - KvTopic->lock guards the topic's index.  The topic's materializer is
 *   the only writer; it holds the lock exclusively while it applies one
 *   batch of records.  Readers hold it shared while they copy entries out.
 * - KvTopic->mutex, a spinlock, guards the small status fields: state,
 *   generation, offsets, counters, last error.  Never hold it across
 *   anything that can fail or sleep.  The state leaves READY, and the
 *   generation changes, only while the topic lock is held exclusively as
 *   well: a reader holding the lock shared that finds the topic READY in
 *   the generation it started in reads a consistent index.
 * - KvTopic->incarnation is atomic: it changes, under KvShared->lock held
 *   exclusively, whenever the slot is claimed or freed.  A backend keeps
 *   the incarnation it found a topic in and checks it after every wait.
 * - KvTopic->applied is atomic: the worker advances it after the records
 *   below it are in the index and the topic lock is released; then it
 *   broadcasts KvTopic->cv.  Waiters read it without any lock.
 *
 * IDENTIFICATION
 *		  src/shmem.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/shmem.h"
#include "utils/memutils.h"

#include "kvstore.h"

#define KV_TRANCHE_NAME "kvstore"

typedef struct KvShared
{
	LWLock	   *lock;			/* guards the names of the slots */
	int			ntopics;		/* slots, kvstore.max_topics at start */
	Size		area_size;		/* bytes of the dsa_area after the slots */
	KvTopic		topics[FLEXIBLE_ARRAY_MEMBER];
} KvShared;

static KvShared *kv_shared = NULL;
static dsa_area *kv_area = NULL;

/* Where the last topic found by name sits, to skip the slot search */
static int	last_found = -1;

static Size kv_slots_size(void);
static void *kv_area_place(void);

/* Bytes of the header and the topic slots */
static Size
kv_slots_size(void)
{
	return MAXALIGN(add_size(offsetof(KvShared, topics),
							 mul_size(kvstore_max_topics, sizeof(KvTopic))));
}

/* Start of the dsa_area */
static void *
kv_area_place(void)
{
	return (char *) kv_shared + kv_slots_size();
}

/*
 * KvShmemSize
 *		Bytes of shared memory kvstore needs: slots plus the index area.
 */
Size
KvShmemSize(void)
{
	return add_size(kv_slots_size(),
					mul_size((Size) kvstore_shared_memory, 1024));
}

/*
 * KvShmemRequest
 *		Ask for the memory and the locks, from shmem_request_hook.
 *
 * One lock guards the slot table, one per slot guards a topic's index.
 */
void
KvShmemRequest(void)
{
	RequestAddinShmemSpace(KvShmemSize());
	RequestNamedLWLockTranche(KV_TRANCHE_NAME, kvstore_max_topics + 1);
}

/*
 * KvShmemStartup
 *		Create the shared state, or attach to it, from shmem_startup_hook.
 *
 * The postmaster creates the dsa_area in place; backends inherit its
 * handle when they are forked.
 */
void
KvShmemStartup(void)
{
	bool		found;
	LWLockPadded *locks;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);

	kv_shared = ShmemInitStruct("kvstore", KvShmemSize(), &found);
	locks = GetNamedLWLockTranche(KV_TRANCHE_NAME);

	if (!found)
	{
		MemoryContext oldcontext;

		kv_shared->lock = &locks[0].lock;
		kv_shared->ntopics = kvstore_max_topics;
		kv_shared->area_size = mul_size((Size) kvstore_shared_memory, 1024);
		for (int i = 0; i < kv_shared->ntopics; i++)
		{
			KvTopic    *topic = &kv_shared->topics[i];

			memset(topic, 0, sizeof(KvTopic));
			topic->lock = &locks[i + 1].lock;
			ConditionVariableInit(&topic->cv);
			pg_atomic_init_u64(&topic->applied, 0);
			pg_atomic_init_u64(&topic->incarnation, 1);
			SpinLockInit(&topic->mutex);
			topic->state = KV_TOPIC_FREE;
			KvIndexInit(&topic->index);
		}

		oldcontext = MemoryContextSwitchTo(TopMemoryContext);
		kv_area = dsa_create_in_place(kv_area_place(), kv_shared->area_size,
									  locks[0].lock.tranche, NULL);
		dsa_set_size_limit(kv_area, kv_shared->area_size);
		MemoryContextSwitchTo(oldcontext);
	}

	LWLockRelease(AddinShmemInitLock);
}

/*
 * KvShmemArea
 *		The dsa_area of the indexes, attached in this process.
 */
dsa_area *
KvShmemArea(void)
{
	if (kv_area == NULL)
	{
		MemoryContext oldcontext;

		/* Only without fork(): the postmaster's handle was not inherited */
		oldcontext = MemoryContextSwitchTo(TopMemoryContext);
		kv_area = dsa_attach_in_place(kv_area_place(), NULL);
		MemoryContextSwitchTo(oldcontext);
	}
	return kv_area;
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
KvTopicFind(const char *name, uint64 *incarnation)
{
	KvTopic    *found = NULL;

	KvCheckLoaded();

	LWLockAcquire(kv_shared->lock, LW_SHARED);
	if (last_found >= 0 &&
		strcmp(kv_shared->topics[last_found].name, name) == 0)
		found = &kv_shared->topics[last_found];
	for (int i = 0; found == NULL && i < kv_shared->ntopics; i++)
	{
		if (strcmp(kv_shared->topics[i].name, name) == 0)
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
KvTopicClaim(const char *name, bool *claimed)
{
	KvTopic    *found = NULL;
	KvTopic    *free_slot = NULL;

	LWLockAcquire(kv_shared->lock, LW_EXCLUSIVE);
	for (int i = 0; i < kv_shared->ntopics; i++)
	{
		KvTopic    *topic = &kv_shared->topics[i];

		if (strcmp(topic->name, name) == 0)
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
		SpinLockAcquire(&found->mutex);
		found->state = KV_TOPIC_STARTING;
		found->worker_pid = 0;
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
 *		Free the slot of a topic whose worker could not be started.
 */
void
KvTopicRelease(KvTopic *topic)
{
	LWLockAcquire(kv_shared->lock, LW_EXCLUSIVE);
	SpinLockAcquire(&topic->mutex);
	topic->state = KV_TOPIC_FREE;
	SpinLockRelease(&topic->mutex);
	topic->name[0] = '\0';
	pg_atomic_fetch_add_u64(&topic->incarnation, 1);
	LWLockRelease(kv_shared->lock);
	ConditionVariableBroadcast(&topic->cv);
}
