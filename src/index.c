/*-------------------------------------------------------------------------
 *
 * index.c
 *		  The index of one topic: a hash table and a skip list over entries
 *		  in the shared dsa_area
 *
 * Every live key has one entry, a single dsa allocation laid out as
 *
 *		KvEntry header (32 bytes: hash chain link, hash, lengths, level,
 *						offset of the record that wrote it)
 *		next[level]		skip list forward pointers, 8 bytes each
 *		key bytes
 *		value bytes
 *		slack			unused bytes, so that a value may change in place
 *
 * Point look-ups go through a chained hash table: a power-of-two array of
 * dsa_pointers, allocated with the first key, doubled when there are more
 * keys than buckets and freed with the last key.  The hash of a key is kept
 * in its entry and compared before the key bytes.  Scans walk the skip list
 * (p = 1/4, at most KV_SKIPLIST_MAXLEVEL levels), which keeps the keys in
 * unsigned byte order, a key before the longer keys it is a prefix of.
 *
 * A new value is written over the old one when it fits in the entry and
 * leaves at most half of the entry unused; otherwise the key moves to a new
 * entry of the same level, linked where the old one was, and the old one is
 * freed.  A shrinking value that finds no memory for a smaller entry stays
 * in place, so only a new key or a growing value can run out of memory.
 *
 * The area is bounded by kvstore.shared_memory and shared by every topic.
 * KvIndexApply allocates all it needs before it links anything in, so that
 * running out of memory leaves the index exactly as it was; only a failed
 * doubling of the hash table is not an error: the old table is kept, with
 * longer chains.  index->bytes counts the bytes requested from the area by
 * this index (entries and bucket array), not the area's own rounding.
 *
 * Locking protocol: index.c takes no locks and uses no atomics; the caller
 * holds the topic's LWLock (KvTopic->lock, see shmem.c):
 *
 * - KvIndexApply and KvIndexClear are called only by the topic's single
 *	 materializer, holding the lock exclusively.
 * - KvIndexLookup, KvIndexSeek, KvIndexNext and KvIndexView need the lock
 *	 held at least shared.  The dsa_pointer of an entry and the pointers in
 *	 a KvEntryView are valid only while it is held: callers copy the bytes
 *	 out before releasing it, and a scan that releases the lock between
 *	 batches seeks again past the last key it returned.
 *
 * The dsa_area does its own locking for allocation.
 *
 * IDENTIFICATION
 *		  src/index.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/hashfn.h"
#include "utils/memutils.h"

#include "kvstore.h"

/* Buckets of the first hash table, and the most it may grow to */
#define KV_INITIAL_BUCKETS	1024
#define KV_MAX_BUCKETS		((uint32) 1 << 30)

/* Most unused bytes an entry can record (the width of KvEntry.slack) */
#define KV_MAX_SLACK		0xFFFFFF

/* Initial state of the skip list level generator; any nonzero value */
#define KV_INITIAL_SEED		0x9E3779B9

typedef struct KvEntry
{
	dsa_pointer hash_next;		/* next entry in the same bucket */
	uint32		hash;			/* hash_bytes() of the key */
	uint32		keylen;			/* bytes of the key */
	uint32		vallen;			/* bytes of the value; 0 is a real value */
	unsigned	slack:24,		/* unused bytes after the value */
				level:8;		/* forward pointers, 1..KV_SKIPLIST_MAXLEVEL */
	int64		offset;			/* offset of the record that wrote it */
	dsa_pointer next[FLEXIBLE_ARRAY_MEMBER];	/* skip list forward pointers */
	/* key bytes, value bytes and slack follow next[level - 1] */
} KvEntry;

#define entry_key(e)	((char *) &(e)->next[(e)->level])
#define entry_value(e)	(entry_key(e) + (e)->keylen)

static inline KvEntry *entry_at(dsa_area *area, dsa_pointer p);
static inline Size entry_size(const KvEntry *e);
static inline int alloc_flags(Size size);
static inline int key_compare(const char *a, uint32 alen,
							  const char *b, uint32 blen);
static int	random_level(uint32 *seed);
static KvEntry *hash_find(dsa_area *area, KvIndex *index, const char *key,
						  uint32 keylen, uint32 hash, dsa_pointer **slot);
static dsa_pointer skiplist_descend(dsa_area *area, KvIndex *index,
									const char *key, uint32 keylen,
									bool inclusive, dsa_pointer **preds);
static bool grow_buckets(dsa_area *area, KvIndex *index);
static void free_buckets(dsa_area *area, KvIndex *index);
static dsa_pointer entry_alloc(dsa_area *area, int level, uint32 hash,
							   const KvRecord *rec, int64 offset);
static bool fits_in_place(const KvEntry *e, uint32 vallen);
static void write_in_place(KvEntry *e, const KvRecord *rec, int64 offset);
static bool insert_key(dsa_area *area, KvIndex *index, const KvRecord *rec,
					   uint32 hash, int64 offset);
static bool replace_value(dsa_area *area, KvIndex *index, KvEntry *old,
						  dsa_pointer *slot, const KvRecord *rec,
						  int64 offset);
static void delete_key(dsa_area *area, KvIndex *index, const KvRecord *rec);
static inline void fill_view(KvEntry *e, KvEntryView *view);

/* The entry a dsa_pointer designates */
static inline KvEntry *
entry_at(dsa_area *area, dsa_pointer p)
{
	return (KvEntry *) dsa_get_address(area, p);
}

/* Bytes of an entry's allocation, as counted in index->bytes */
static inline Size
entry_size(const KvEntry *e)
{
	return offsetof(KvEntry, next) + sizeof(dsa_pointer) * e->level +
		(Size) e->keylen + e->vallen + e->slack;
}

/* Allocation flags: never fail hard, allow more than 1GB if asked */
static inline int
alloc_flags(Size size)
{
	return DSA_ALLOC_NO_OOM | (AllocSizeIsValid(size) ? 0 : DSA_ALLOC_HUGE);
}

/* Unsigned byte order, a shorter key before the keys it prefixes */
static inline int
key_compare(const char *a, uint32 alen, const char *b, uint32 blen)
{
	int			cmp = memcmp(a, b, Min(alen, blen));

	if (cmp != 0)
		return cmp;
	return (alen > blen) - (alen < blen);
}

/* Level of a new entry: 1, plus one more with probability 1/4 each time */
static int
random_level(uint32 *seed)
{
	uint32		x = *seed;
	int			level = 1;

	/* xorshift32: never yields 0 from a nonzero state, so the loop ends */
	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	*seed = x;
	while ((x & 3) == 0 && level < KV_SKIPLIST_MAXLEVEL)
	{
		level++;
		x >>= 2;
	}
	return level;
}

/*
 * Find a key in the hash table.  Returns its entry, or NULL; when found and
 * slot is not NULL, *slot is set to the link that points to the entry.
 */
static KvEntry *
hash_find(dsa_area *area, KvIndex *index, const char *key, uint32 keylen,
		  uint32 hash, dsa_pointer **slot)
{
	dsa_pointer *link;

	if (index->nbuckets == 0)
		return NULL;
	link = (dsa_pointer *) dsa_get_address(area, index->buckets);
	link += hash & (index->nbuckets - 1);
	while (DsaPointerIsValid(*link))
	{
		KvEntry    *e = entry_at(area, *link);

		if (e->hash == hash && e->keylen == keylen &&
			memcmp(entry_key(e), key, keylen) == 0)
		{
			if (slot != NULL)
				*slot = link;
			return e;
		}
		link = &e->hash_next;
	}
	return NULL;
}

/*
 * Walk down the skip list to the first entry whose key is >= key
 * (inclusive) or > key (exclusive), and return it, or InvalidDsaPointer at
 * the end.  If preds is not NULL, preds[i] is set for every level i in use
 * to the forward pointer at level i that leads to that entry: the place to
 * link a new entry in, or to unlink the returned one from.
 *
 * An entry that stopped the walk at one level is not compared again when
 * it is met at the levels below.
 */
static dsa_pointer
skiplist_descend(dsa_area *area, KvIndex *index, const char *key,
				 uint32 keylen, bool inclusive, dsa_pointer **preds)
{
	dsa_pointer *forward = index->head;
	dsa_pointer stop = InvalidDsaPointer;
	int			threshold = inclusive ? 0 : 1;

	for (int i = index->level - 1; i >= 0; i--)
	{
		dsa_pointer p;

		while (DsaPointerIsValid(p = forward[i]) && p != stop)
		{
			KvEntry    *e = entry_at(area, p);

			if (key_compare(entry_key(e), e->keylen, key, keylen) >= threshold)
			{
				stop = p;
				break;
			}
			forward = e->next;
		}
		if (preds != NULL)
			preds[i] = &forward[i];
	}
	return forward[0];
}

/*
 * Double the hash table, or make the first one.  On failure the old table
 * stays and false is returned.
 */
static bool
grow_buckets(dsa_area *area, KvIndex *index)
{
	uint32		nbuckets;
	Size		size;
	dsa_pointer newp;
	dsa_pointer *buckets;

	if (index->nbuckets == 0)
		nbuckets = KV_INITIAL_BUCKETS;
	else if (index->nbuckets < KV_MAX_BUCKETS)
		nbuckets = index->nbuckets * 2;
	else
		return false;

	size = sizeof(dsa_pointer) * (Size) nbuckets;
	newp = dsa_allocate_extended(area, size, alloc_flags(size) | DSA_ALLOC_ZERO);
	if (!DsaPointerIsValid(newp))
		return false;
	buckets = (dsa_pointer *) dsa_get_address(area, newp);

	/* Every entry is on the bottom level of the skip list */
	for (dsa_pointer p = index->head[0]; DsaPointerIsValid(p);)
	{
		KvEntry    *e = entry_at(area, p);
		uint32		b = e->hash & (nbuckets - 1);

		e->hash_next = buckets[b];
		buckets[b] = p;
		p = e->next[0];
	}

	free_buckets(area, index);
	index->buckets = newp;
	index->nbuckets = nbuckets;
	index->bytes += size;
	return true;
}

/* Free the hash table, if any */
static void
free_buckets(dsa_area *area, KvIndex *index)
{
	if (index->nbuckets == 0)
		return;
	dsa_free(area, index->buckets);
	index->bytes -= sizeof(dsa_pointer) * (Size) index->nbuckets;
	index->buckets = InvalidDsaPointer;
	index->nbuckets = 0;
}

/*
 * Allocate and fill an unlinked entry for a record; InvalidDsaPointer when
 * out of memory.  The size is rounded up to MAXALIGN, which the area does
 * anyway; the rounding becomes slack.
 */
static dsa_pointer
entry_alloc(dsa_area *area, int level, uint32 hash, const KvRecord *rec,
			int64 offset)
{
	Size		used = offsetof(KvEntry, next) + sizeof(dsa_pointer) * level +
		(Size) rec->keylen + rec->vallen;
	Size		size = MAXALIGN(used);
	dsa_pointer p;
	KvEntry    *e;

	p = dsa_allocate_extended(area, size, alloc_flags(size));
	if (!DsaPointerIsValid(p))
		return InvalidDsaPointer;

	e = entry_at(area, p);
	e->hash_next = InvalidDsaPointer;
	e->hash = hash;
	e->keylen = rec->keylen;
	e->vallen = rec->vallen;
	e->slack = size - used;
	e->level = level;
	e->offset = offset;
	memcpy(entry_key(e), rec->key, rec->keylen);
	if (rec->vallen > 0)
		memcpy(entry_value(e), rec->value, rec->vallen);
	return p;
}

/* Whether a value of vallen bytes may overwrite e's value */
static bool
fits_in_place(const KvEntry *e, uint32 vallen)
{
	Size		room = (Size) e->vallen + e->slack;

	return vallen <= room &&
		room - vallen <= Min(entry_size(e) / 2, KV_MAX_SLACK);
}

/* Overwrite an entry's value; caller checked that it fits */
static void
write_in_place(KvEntry *e, const KvRecord *rec, int64 offset)
{
	uint32		room = e->vallen + e->slack;

	if (rec->vallen > 0)
		memcpy(entry_value(e), rec->value, rec->vallen);
	e->vallen = rec->vallen;
	e->slack = room - rec->vallen;
	e->offset = offset;
}

/* Link a new key into both structures; false when out of memory */
static bool
insert_key(dsa_area *area, KvIndex *index, const KvRecord *rec, uint32 hash,
		   int64 offset)
{
	dsa_pointer *preds[KV_SKIPLIST_MAXLEVEL];
	uint32		seed = index->seed;
	int			level = random_level(&seed);
	dsa_pointer newp;
	KvEntry    *e;
	dsa_pointer *buckets;
	uint32		b;

	newp = entry_alloc(area, level, hash, rec, offset);
	if (!DsaPointerIsValid(newp))
		return false;
	e = entry_at(area, newp);

	if (index->nbuckets == 0)
	{
		if (!grow_buckets(area, index))
		{
			dsa_free(area, newp);
			return false;
		}
	}
	else if (index->nkeys >= index->nbuckets)
		(void) grow_buckets(area, index);	/* failure only lengthens chains */

	/* Nothing can fail from here on */
	(void) skiplist_descend(area, index, rec->key, rec->keylen, true, preds);
	for (int i = index->level; i < level; i++)
		preds[i] = &index->head[i];
	for (int i = 0; i < level; i++)
	{
		e->next[i] = *preds[i];
		*preds[i] = newp;
	}
	if (level > index->level)
		index->level = level;

	buckets = (dsa_pointer *) dsa_get_address(area, index->buckets);
	b = hash & (index->nbuckets - 1);
	e->hash_next = buckets[b];
	buckets[b] = newp;

	index->seed = seed;
	index->nkeys++;
	index->bytes += entry_size(e);
	return true;
}

/*
 * Give an existing key a new value and offset; false when out of memory.
 * slot is the hash link that points to old.
 */
static bool
replace_value(dsa_area *area, KvIndex *index, KvEntry *old, dsa_pointer *slot,
			  const KvRecord *rec, int64 offset)
{
	dsa_pointer *preds[KV_SKIPLIST_MAXLEVEL];
	dsa_pointer oldp = *slot;
	dsa_pointer newp;
	KvEntry    *e;

	if (fits_in_place(old, rec->vallen))
	{
		write_in_place(old, rec, offset);
		return true;
	}

	newp = entry_alloc(area, old->level, old->hash, rec, offset);
	if (!DsaPointerIsValid(newp))
	{
		/* A shrinking value can always stay where it is */
		if (rec->vallen <= old->vallen &&
			(Size) old->vallen + old->slack - rec->vallen <= KV_MAX_SLACK)
		{
			write_in_place(old, rec, offset);
			return true;
		}
		return false;
	}
	e = entry_at(area, newp);

	/* Take the old entry's place at each of its levels, and in its chain */
	(void) skiplist_descend(area, index, rec->key, rec->keylen, true, preds);
	for (int i = 0; i < old->level; i++)
	{
		Assert(*preds[i] == oldp);
		e->next[i] = old->next[i];
		*preds[i] = newp;
	}
	e->hash_next = old->hash_next;
	*slot = newp;

	index->bytes += entry_size(e);
	index->bytes -= entry_size(old);
	dsa_free(area, oldp);
	return true;
}

/* Unlink and free the entry of a key, if there is one */
static void
delete_key(dsa_area *area, KvIndex *index, const KvRecord *rec)
{
	dsa_pointer *preds[KV_SKIPLIST_MAXLEVEL];
	dsa_pointer *slot;
	dsa_pointer p;
	KvEntry    *e;
	uint32		hash;

	if (index->nkeys == 0)
		return;
	hash = hash_bytes((const unsigned char *) rec->key, rec->keylen);
	e = hash_find(area, index, rec->key, rec->keylen, hash, &slot);
	if (e == NULL)
		return;
	p = *slot;

	(void) skiplist_descend(area, index, rec->key, rec->keylen, true, preds);
	for (int i = 0; i < e->level; i++)
	{
		Assert(*preds[i] == p);
		*preds[i] = e->next[i];
	}
	while (index->level > 0 && !DsaPointerIsValid(index->head[index->level - 1]))
		index->level--;
	*slot = e->hash_next;

	index->nkeys--;
	index->bytes -= entry_size(e);
	dsa_free(area, p);

	/* An empty index holds no memory */
	if (index->nkeys == 0)
		free_buckets(area, index);
}

/* What a reader may see of an entry */
static inline void
fill_view(KvEntry *e, KvEntryView *view)
{
	view->key = entry_key(e);
	view->keylen = e->keylen;
	view->value = entry_value(e);
	view->vallen = e->vallen;
	view->offset = e->offset;
}

/*
 * KvIndexInit
 *		Make an empty index.
 *
 * Nothing is allocated: the hash table comes with the first key.  Called
 * once per topic slot when shared memory is set up.
 */
void
KvIndexInit(KvIndex *index)
{
	index->buckets = InvalidDsaPointer;
	index->nbuckets = 0;
	index->level = 0;
	for (int i = 0; i < KV_SKIPLIST_MAXLEVEL; i++)
		index->head[i] = InvalidDsaPointer;
	index->nkeys = 0;
	index->bytes = 0;
	index->seed = KV_INITIAL_SEED;
}

/*
 * KvIndexApply
 *		Apply one record: a tombstone deletes its key, any other record
 *		sets the key's value and remembers offset.
 *
 * Returns false when shared memory ran out; the index is then exactly as
 * before the call, and the caller decides what to do (the materializer
 * stops the topic).  Deleting needs no memory and always succeeds, even for
 * an absent key.
 *
 * Caller must hold the topic lock exclusively.
 */
bool
KvIndexApply(dsa_area *area, KvIndex *index, const KvRecord *rec, int64 offset)
{
	dsa_pointer *slot;
	KvEntry    *e;
	uint32		hash;

	if (rec->tombstone)
	{
		delete_key(area, index, rec);
		return true;
	}

	hash = hash_bytes((const unsigned char *) rec->key, rec->keylen);
	e = hash_find(area, index, rec->key, rec->keylen, hash, &slot);
	if (e != NULL)
		return replace_value(area, index, e, slot, rec, offset);
	return insert_key(area, index, rec, hash, offset);
}

/*
 * KvIndexClear
 *		Free every entry and the hash table; the index is empty again.
 *
 * Used before a topic's log is replayed from the start, and when its index
 * no longer fits.  Caller must hold the topic lock exclusively.
 */
void
KvIndexClear(dsa_area *area, KvIndex *index)
{
	dsa_pointer p = index->head[0];

	while (DsaPointerIsValid(p))
	{
		dsa_pointer next = entry_at(area, p)->next[0];

		dsa_free(area, p);
		p = next;
	}
	free_buckets(area, index);
	KvIndexInit(index);
}

/*
 * KvIndexLookup
 *		Find a key through the hash table; fill *view and return true if
 *		it is present.
 *
 * This is the path of every point read, so it does no more than hash the
 * key and walk one chain.  Caller must hold the topic lock, at least shared,
 * until it has copied out what view points to.
 */
bool
KvIndexLookup(dsa_area *area, KvIndex *index, const char *key, uint32 keylen,
			  KvEntryView *view)
{
	KvEntry    *e;

	if (index->nkeys == 0)
		return false;
	e = hash_find(area, index, key, keylen,
				  hash_bytes((const unsigned char *) key, keylen), NULL);
	if (e == NULL)
		return false;
	fill_view(e, view);
	return true;
}

/*
 * KvIndexSeek
 *		The first entry whose key is >= key (inclusive) or > key
 *		(exclusive) in unsigned byte order, or InvalidDsaPointer.
 *
 * key NULL (with keylen 0) starts at the very first entry.  A scan that
 * drops the lock between batches resumes with an exclusive seek past the
 * last key it returned.  Caller must hold the topic lock, at least shared.
 */
dsa_pointer
KvIndexSeek(dsa_area *area, KvIndex *index, const char *key, uint32 keylen,
			bool inclusive)
{
	if (key == NULL)
		return index->head[0];
	return skiplist_descend(area, index, key, keylen, inclusive, NULL);
}

/*
 * KvIndexNext
 *		The entry after entry in key order, or InvalidDsaPointer.
 *
 * Caller must have held the topic lock, at least shared, since it got
 * entry from KvIndexSeek or KvIndexNext.
 */
dsa_pointer
KvIndexNext(dsa_area *area, dsa_pointer entry)
{
	return entry_at(area, entry)->next[0];
}

/*
 * KvIndexView
 *		Fill *view with what a reader may see of an entry.
 *
 * Caller must hold the topic lock, at least shared, until it has copied out
 * what view points to.
 */
void
KvIndexView(dsa_area *area, dsa_pointer entry, KvEntryView *view)
{
	fill_view(entry_at(area, entry), view);
}

/*
 * KvIndexSeekBefore
 *		The last entry whose key is <= key (inclusive) or < key (exclusive)
 *		in unsigned byte order, or InvalidDsaPointer.
 *
 * key NULL (with keylen 0) finds the very last entry.  The skip list links
 * only forward: a scan in descending order seeks again from the top for
 * each entry, in O(log n).  Caller must hold the topic lock, at least
 * shared.
 */
dsa_pointer
KvIndexSeekBefore(dsa_area *area, KvIndex *index, const char *key,
				  uint32 keylen, bool inclusive)
{
	dsa_pointer *forward = index->head;
	dsa_pointer last = InvalidDsaPointer;
	int			threshold = inclusive ? 1 : 0;

	for (int i = index->level - 1; i >= 0; i--)
	{
		dsa_pointer p;

		while (DsaPointerIsValid(p = forward[i]))
		{
			KvEntry    *e = entry_at(area, p);

			if (key != NULL &&
				key_compare(entry_key(e), e->keylen, key, keylen) >= threshold)
				break;
			last = p;
			forward = e->next;
		}
	}
	return last;
}
