/*-------------------------------------------------------------------------
 *
 * scan.c
 *		  Reading a topic's index: point look-ups and a cursor in key order
 *
 * A cursor copies entries out of the index in batches, each under one
 * shared hold of the topic lock, and seeks again past the last key it
 * returned before the next batch.  So the worker goes on applying records
 * between batches, and a scan sees every key at most once, in order, with
 * a value it really had.  The first batches are small and the next ones
 * double, up to KV_SCAN_BATCH, so that a caller that stops after a few
 * rows (a LIMIT) copies few.  A cursor in descending order seeks back from
 * the top of the skip list for every entry, which links only forward.  The index generation is checked under the lock
 * at every batch: a scan that meets a rebuild of the index (the worker
 * restarted, or the log changed) fails rather than return a partial
 * result.  A cursor knows nothing of SQL: the kv_* functions and the
 * foreign scan both read through it.
 *
 * IDENTIFICATION
 *		  src/scan.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/hashfn.h"
#include "miscadmin.h"
#include "utils/memutils.h"

#include "kvstore.h"

/* Entries copied out under one hold of the topic lock: first, and at most */
#define KV_SCAN_FIRST_BATCH 8
#define KV_SCAN_BATCH 256

struct KvScan
{
	KvTopicRef *ref;
	KvScanBounds bounds;		/* bytes copied into the scan's memory */
	MemoryContext context;		/* the scan's own memory */
	MemoryContext batch_context;	/* rows of the current batch */
	uint64		generation;		/* of the index when the scan began; 0
								 * before the first batch */
	KvRow		rows[KV_SCAN_BATCH];
	int			nrows;			/* rows in the current batch */
	int			next;			/* next row of the batch to return */
	int			batch;			/* rows to copy in the next batch */
	char	   *last;			/* last key copied out, NULL before any */
	uint32		lastlen;
	bool		done;			/* no batch after the current one */
};

static char *copy_key(const char *key, uint32 len);
static bool past_end(const KvScanBounds *bounds, const char *key, uint32 keylen);
static bool prefix_successor(const char *prefix, uint32 len, char **succ,
							 uint32 *succlen);
static void fill_batch(KvScan *scan);
static void copy_row(KvEntryView *view, KvRow *row);

/*
 * KvKeyCompare
 *		Unsigned byte order, a shorter key before the keys it prefixes.
 */
int
KvKeyCompare(const char *a, uint32 alen, const char *b, uint32 blen)
{
	int			cmp = memcmp(a, b, Min(alen, blen));

	if (cmp != 0)
		return cmp;
	return (alen > blen) - (alen < blen);
}

/* A palloc'd copy of a key, or NULL for NULL */
static char *
copy_key(const char *key, uint32 len)
{
	char	   *copy;

	if (key == NULL)
		return NULL;
	copy = palloc(Max(len, 1));
	memcpy(copy, key, len);
	return copy;
}

/* Copy an entry out of the index into the current memory context */
static void
copy_row(KvEntryView *view, KvRow *row)
{
	row->key = palloc(Max(view->keylen, 1));
	memcpy(row->key, view->key, view->keylen);
	row->keylen = view->keylen;
	row->value = palloc(Max(view->vallen, 1));
	memcpy(row->value, view->value, view->vallen);
	row->vallen = view->vallen;
	row->offset = view->offset;
	row->timestamp = view->timestamp;
}

/*
 * KvScanBegin
 *		A cursor over the keys within bounds, in unsigned byte order, or
 *		descending when bounds->backward.
 *
 * Nothing is read until the first KvScanNext.  The cursor lives in the
 * current memory context.
 */
KvScan *
KvScanBegin(KvTopicRef *ref, const KvScanBounds *bounds)
{
	KvScan	   *scan = palloc0(sizeof(KvScan));
	KvScanBounds *b = &scan->bounds;

	scan->ref = ref;
	scan->context = CurrentMemoryContext;
	*b = *bounds;
	b->lower = copy_key(bounds->lower, bounds->lowerlen);
	b->upper = copy_key(bounds->upper, bounds->upperlen);
	b->prefix = copy_key(bounds->prefix, bounds->prefixlen);

	/* Keys with a prefix start at the prefix */
	if (b->prefix != NULL &&
		(b->lower == NULL ||
		 KvKeyCompare(b->lower, b->lowerlen, b->prefix, b->prefixlen) < 0))
	{
		b->lower = b->prefix;
		b->lowerlen = b->prefixlen;
		b->lower_inclusive = true;
	}

	/* and, read backwards, before the first key past the prefix */
	if (b->prefix != NULL && b->backward)
	{
		char	   *succ;
		uint32		succlen;

		if (prefix_successor(b->prefix, b->prefixlen, &succ, &succlen) &&
			(b->upper == NULL ||
			 KvKeyCompare(succ, succlen, b->upper, b->upperlen) <= 0))
		{
			b->upper = succ;
			b->upperlen = succlen;
			b->upper_inclusive = false;
		}
	}
	scan->batch = KV_SCAN_FIRST_BATCH;
	scan->batch_context = AllocSetContextCreate(CurrentMemoryContext,
												"kvstore scan",
												ALLOCSET_DEFAULT_SIZES);
	return scan;
}

/*
 * The first key in byte order after every key that starts with prefix,
 * palloc'd; false when there is none (the prefix is all 0xff bytes).
 */
static bool
prefix_successor(const char *prefix, uint32 len, char **succ, uint32 *succlen)
{
	while (len > 0 && (unsigned char) prefix[len - 1] == 0xff)
		len--;
	if (len == 0)
		return false;
	*succ = copy_key(prefix, len);
	(*succ)[len - 1] = (char) ((unsigned char) prefix[len - 1] + 1);
	*succlen = len;
	return true;
}

/*
 * Whether a key lies past the end of the bounds, in the direction of the
 * scan, or outside the prefix
 */
static bool
past_end(const KvScanBounds *bounds, const char *key, uint32 keylen)
{
	const char *end = bounds->backward ? bounds->lower : bounds->upper;
	uint32		endlen = bounds->backward ? bounds->lowerlen : bounds->upperlen;
	bool		inclusive = bounds->backward ? bounds->lower_inclusive : bounds->upper_inclusive;

	if (bounds->prefix != NULL &&
		(keylen < bounds->prefixlen ||
		 memcmp(key, bounds->prefix, bounds->prefixlen) != 0))
		return true;
	if (end != NULL)
	{
		int			cmp = KvKeyCompare(key, keylen, end, endlen);

		if (bounds->backward)
			cmp = -cmp;
		if (cmp > 0 || (cmp == 0 && !inclusive))
			return true;
	}
	return false;
}

/* Copy the next batch of entries out of the index */
static void
fill_batch(KvScan *scan)
{
	KvTopic    *topic = scan->ref->topic;
	KvScanBounds *b = &scan->bounds;
	dsa_area   *area = KvShmemArea();
	MemoryContext oldcontext;
	dsa_pointer pos;
	uint64		generation;
	int			n = 0;

	CHECK_FOR_INTERRUPTS();
	MemoryContextReset(scan->batch_context);
	oldcontext = MemoryContextSwitchTo(scan->batch_context);

	generation = KvTopicLockForRead(scan->ref);
	if (scan->generation != 0 && generation != scan->generation)
	{
		LWLockRelease(topic->lock);
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("topic \"%s\" was rebuilt during the scan", scan->ref->name),
				 errdetail("The index was emptied and loaded again from Kafka while the scan read it."),
				 errhint("Run the statement again.")));
	}
	scan->generation = generation;

	if (b->backward)
	{
		if (scan->last != NULL)
			pos = KvIndexSeekBefore(area, &topic->index, scan->last, scan->lastlen, false);
		else
			pos = KvIndexSeekBefore(area, &topic->index, b->upper, b->upperlen,
									b->upper == NULL || b->upper_inclusive);
	}
	else if (scan->last != NULL)
		pos = KvIndexSeek(area, &topic->index, scan->last, scan->lastlen, false);
	else
		pos = KvIndexSeek(area, &topic->index, b->lower, b->lowerlen,
						  b->lower == NULL || b->lower_inclusive);
	while (n < scan->batch)
	{
		KvEntryView view;

		if (!DsaPointerIsValid(pos))
			break;
		KvIndexView(area, pos, &view);
		if (past_end(b, view.key, view.keylen))
			break;
		copy_row(&view, &scan->rows[n]);
		n++;
		if (b->backward)
			pos = KvIndexSeekBefore(area, &topic->index, view.key, view.keylen, false);
		else
			pos = KvIndexNext(area, &topic->index, pos);
	}
	LWLockRelease(topic->lock);
	MemoryContextSwitchTo(oldcontext);

	scan->nrows = n;
	scan->next = 0;
	scan->done = n < scan->batch;
	scan->batch = Min(scan->batch * 2, KV_SCAN_BATCH);
	if (n > 0)
	{
		/* The resume point outlives the batch's memory */
		if (scan->last != NULL)
			pfree(scan->last);
		oldcontext = MemoryContextSwitchTo(scan->context);
		scan->last = copy_key(scan->rows[n - 1].key, scan->rows[n - 1].keylen);
		MemoryContextSwitchTo(oldcontext);
		scan->lastlen = scan->rows[n - 1].keylen;
	}
}

/*
 * KvScanNext
 *		The next row of the scan, or false at its end.
 *
 * The row's bytes stay valid until the cursor reads its next batch: copy
 * them before the next call.
 */
bool
KvScanNext(KvScan *scan, KvRow *row)
{
	if (scan->next >= scan->nrows)
	{
		if (scan->done && scan->generation != 0)
			return false;
		fill_batch(scan);
		if (scan->nrows == 0)
			return false;
	}
	*row = scan->rows[scan->next++];
	return true;
}

/*
 * KvScanRestart
 *		Start the scan again from its first key.
 */
void
KvScanRestart(KvScan *scan)
{
	MemoryContextReset(scan->batch_context);
	if (scan->last != NULL)
		pfree(scan->last);
	scan->last = NULL;
	scan->lastlen = 0;
	scan->nrows = 0;
	scan->next = 0;
	scan->batch = KV_SCAN_FIRST_BATCH;
	scan->done = false;
	scan->generation = 0;
}

/*
 * KvScanEnd
 *		Free a cursor.
 */
void
KvScanEnd(KvScan *scan)
{
	MemoryContextDelete(scan->batch_context);
	if (scan->last != NULL)
		pfree(scan->last);
	pfree(scan);
}

/*
 * KvScanLookup
 *		Copy one key's entry into row, in the current memory context.
 *
 * Returns false when the key has no value.
 */
bool
KvScanLookup(KvTopicRef *ref, const char *key, uint32 keylen, KvRow *row)
{
	KvEntryView view;
	bool		found;

	(void) KvTopicLockForRead(ref);
	found = KvIndexLookup(KvShmemArea(), &ref->topic->index, key, keylen, &view);
	if (found)
		copy_row(&view, row);
	LWLockRelease(ref->topic->lock);
	return found;
}

/*
 * KvScanLookupValue
 *		A copy of one key's value as a varlena, in the current memory
 *		context, or NULL when the key has no value.
 *
 * kv_get's path: one copy, made under the lock, straight into the result.
 */
struct varlena *
KvScanLookupValue(KvTopicRef *ref, const char *key, uint32 keylen)
{
	KvEntryView view;
	struct varlena *result = NULL;

	(void) KvTopicLockForRead(ref);
	if (KvIndexLookup(KvShmemArea(), &ref->topic->index, key, keylen, &view))
	{
		result = (struct varlena *) palloc(VARHDRSZ + view.vallen);
		SET_VARSIZE(result, VARHDRSZ + view.vallen);
		memcpy(VARDATA(result), view.value, view.vallen);
	}
	LWLockRelease(ref->topic->lock);
	return result;
}

/*
 * KvScanChecksum
 *		Count the keys of the index and sum a hash of each key and value,
 *		under one hold of the topic lock; *applied is the offset the index
 *		had reached.
 *
 * The sum does not depend on the order of the keys, so two servers that
 * applied a topic up to the same offset have the same checksum.
 */
void
KvScanChecksum(KvTopicRef *ref, int64 *keys, int64 *checksum, int64 *applied)
{
	dsa_area   *area = KvShmemArea();
	dsa_pointer pos;
	uint64		sum = 0;
	int64		n = 0;

	(void) KvTopicLockForRead(ref);
	*applied = (int64) pg_atomic_read_u64(&ref->topic->applied);
	for (pos = KvIndexSeek(area, &ref->topic->index, NULL, 0, true);
		 DsaPointerIsValid(pos);
		 pos = KvIndexNext(area, &ref->topic->index, pos))
	{
		KvEntryView view;
		uint64		h;

		KvIndexView(area, pos, &view);
		h = hash_bytes_extended((const unsigned char *) view.key, view.keylen, 0);
		h = hash_combine64(h, hash_bytes_extended((const unsigned char *) view.value,
												  view.vallen, 1));
		sum += h;
		n++;
	}
	LWLockRelease(ref->topic->lock);
	*keys = n;
	*checksum = (int64) sum;
}
