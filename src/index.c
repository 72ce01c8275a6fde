/*-------------------------------------------------------------------------
 *
 * index.c
 *		  The index of one topic: a hash table and a skip list in shared
 *		  memory
 *
 * Every live key of a topic has one entry, a single allocation in the
 * shared dsa_area holding the hash chain link, the skip list forward
 * pointers of the entry's level, the offset of the record that wrote it,
 * the key bytes and the value bytes.  Point look-ups go through the hash
 * table (chained, a power-of-two number of buckets, doubled when there are
 * more keys than buckets); scans walk the skip list, which keeps the keys
 * in unsigned byte order, a shorter key before the longer keys it
 * prefixes.  A value that fits in its entry is replaced in place; a larger
 * one moves the key to a new entry linked where the old one was.
 *
 * Every allocation may fail (the area is bounded by kvstore.shared_memory):
 * a function that allocates does so before it links anything, so that an
 * out-of-memory failure leaves the index as it was.
 *
 * Locking protocol: index.c takes no locks.  KvIndexApply and KvIndexClear
 * are called by the topic's materializer only, holding the topic's LWLock
 * exclusively.  KvIndexLookup, KvIndexSeek, KvIndexNext and KvIndexView
 * need the lock at least shared, and what a KvEntryView points to is valid
 * only while it is held: callers copy it out.
 *
 * IDENTIFICATION
 *		  src/index.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/hashfn.h"

#include "kvstore.h"

#define KV_INITIAL_BUCKETS 1024

typedef struct KvEntry
{
	dsa_pointer hash_next;		/* next entry in the same bucket */
	int64		offset;			/* offset of the record that wrote it */
	uint32		hash;			/* hash of the key */
	uint32		keylen;
	uint32		vallen;
	uint32		capacity;		/* bytes after next[] for key and value */
	uint8		level;			/* skip list levels, 1 to KV_SKIPLIST_MAXLEVEL */
	dsa_pointer next[FLEXIBLE_ARRAY_MEMBER];	/* forward pointers */
	/* key bytes, then value bytes, follow next[level - 1] */
} KvEntry;

#define entry_header_size(level) \
	(offsetof(KvEntry, next) + sizeof(dsa_pointer) * (level))
#define entry_key(e) ((char *) (e) + entry_header_size((e)->level))
#define entry_value(e) (entry_key(e) + (e)->keylen)

static inline KvEntry *
entry_at(dsa_area *area, dsa_pointer p)
{
	return (KvEntry *) dsa_get_address(area, p);
}

static int	key_compare(const char *a, uint32 alen, const char *b, uint32 blen);
static int	random_level(KvIndex *index);
static dsa_pointer find_preds(dsa_area *area, KvIndex *index,
							  const char *key, uint32 keylen,
							  dsa_pointer **preds);
static dsa_pointer *hash_slot(dsa_area *area, KvIndex *index,
							  dsa_pointer target, uint32 hash);
static void grow_buckets(dsa_area *area, KvIndex *index);
static bool remove_key(dsa_area *area, KvIndex *index, const KvRecord *rec);

/* Unsigned byte order, a shorter key first */
static int
key_compare(const char *a, uint32 alen, const char *b, uint32 blen)
{
	int			cmp = memcmp(a, b, Min(alen, blen));

	if (cmp != 0)
		return cmp;
	return (alen > blen) - (alen < blen);
}

/* Level of a new entry: 1, then one more with probability 1/4 each */
static int
random_level(KvIndex *index)
{
	uint32		x = index->seed;
	int			level = 1;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	index->seed = x;
	while ((x & 3) == 0 && level < KV_SKIPLIST_MAXLEVEL)
	{
		level++;
		x >>= 2;
	}
	return level;
}

/*
 * Find the first entry with a key >= key, filling preds[i] with the
 * forward pointer at level i that leads to it.  Returns the entry if its
 * key equals key, else InvalidDsaPointer.
 */
static dsa_pointer
find_preds(dsa_area *area, KvIndex *index, const char *key, uint32 keylen,
		   dsa_pointer **preds)
{
	dsa_pointer *forward = index->head;
	dsa_pointer candidate = InvalidDsaPointer;

	for (int i = KV_SKIPLIST_MAXLEVEL - 1; i >= 0; i--)
	{
		while (i < index->level && DsaPointerIsValid(forward[i]))
		{
			KvEntry    *e = entry_at(area, forward[i]);

			if (key_compare(entry_key(e), e->keylen, key, keylen) >= 0)
				break;
			forward = e->next;
		}
		preds[i] = &forward[i];
	}
	candidate = forward[0];
	if (DsaPointerIsValid(candidate))
	{
		KvEntry    *e = entry_at(area, candidate);

		if (key_compare(entry_key(e), e->keylen, key, keylen) == 0)
			return candidate;
	}
	return InvalidDsaPointer;
}

/* The link in the hash chain that points to target */
static dsa_pointer *
hash_slot(dsa_area *area, KvIndex *index, dsa_pointer target, uint32 hash)
{
	dsa_pointer *buckets = dsa_get_address(area, index->buckets);
	dsa_pointer *slot = &buckets[hash & (index->nbuckets - 1)];

	while (*slot != target)
		slot = &entry_at(area, *slot)->hash_next;
	return slot;
}

/* Double the buckets; on failure keep the old ones, chains grow longer */
static void
grow_buckets(dsa_area *area, KvIndex *index)
{
	uint32		nbuckets = index->nbuckets ? index->nbuckets * 2 : KV_INITIAL_BUCKETS;
	Size		size = sizeof(dsa_pointer) * (Size) nbuckets;
	dsa_pointer newp;
	dsa_pointer *buckets;

	newp = dsa_allocate_extended(area, size,
								 DSA_ALLOC_NO_OOM | DSA_ALLOC_HUGE | DSA_ALLOC_ZERO);
	if (!DsaPointerIsValid(newp))
		return;
	buckets = dsa_get_address(area, newp);

	/* Every entry is on the bottom level of the skip list */
	for (dsa_pointer p = index->head[0]; DsaPointerIsValid(p);)
	{
		KvEntry    *e = entry_at(area, p);
		uint32		b = e->hash & (nbuckets - 1);

		e->hash_next = buckets[b];
		buckets[b] = p;
		p = e->next[0];
	}
	if (DsaPointerIsValid(index->buckets))
	{
		dsa_free(area, index->buckets);
		index->bytes -= sizeof(dsa_pointer) * (Size) index->nbuckets;
	}
	index->buckets = newp;
	index->nbuckets = nbuckets;
	index->bytes += size;
}

/*
 * KvIndexInit
 *		Make an empty index; nothing is allocated until the first key.
 */
void
KvIndexInit(KvIndex *index)
{
	memset(index, 0, sizeof(KvIndex));
	index->buckets = InvalidDsaPointer;
	for (int i = 0; i < KV_SKIPLIST_MAXLEVEL; i++)
		index->head[i] = InvalidDsaPointer;
	index->seed = 0x9e3779b9;
}

/* Unlink and free the entry of a key, if there is one */
static bool
remove_key(dsa_area *area, KvIndex *index, const KvRecord *rec)
{
	dsa_pointer *preds[KV_SKIPLIST_MAXLEVEL];
	dsa_pointer found;
	KvEntry    *e;

	found = find_preds(area, index, rec->key, rec->keylen, preds);
	if (!DsaPointerIsValid(found))
		return true;
	e = entry_at(area, found);
	for (int i = 0; i < e->level; i++)
		*preds[i] = e->next[i];
	*hash_slot(area, index, found, e->hash) = e->hash_next;
	while (index->level > 1 && !DsaPointerIsValid(index->head[index->level - 1]))
		index->level--;
	index->nkeys--;
	index->bytes -= entry_header_size(e->level) + e->capacity;
	dsa_free(area, found);
	return true;
}

/*
 * KvIndexApply
 *		Apply one record: a tombstone deletes its key, anything else sets
 *		the key's value and offset.
 *
 * Returns false, leaving the index unchanged, when shared memory ran out.
 * Caller must hold the topic lock exclusively.
 */
bool
KvIndexApply(dsa_area *area, KvIndex *index, const KvRecord *rec, int64 offset)
{
	dsa_pointer *preds[KV_SKIPLIST_MAXLEVEL];
	dsa_pointer found;
	dsa_pointer newp;
	KvEntry    *e;
	KvEntry    *old = NULL;
	int			level;
	uint32		hash;
	uint32		capacity = rec->keylen + rec->vallen;

	if (rec->tombstone)
		return remove_key(area, index, rec);

	found = find_preds(area, index, rec->key, rec->keylen, preds);
	if (DsaPointerIsValid(found))
	{
		old = entry_at(area, found);
		if (old->capacity >= capacity)
		{
			/* Replace the value in place */
			memcpy(entry_value(old), rec->value, rec->vallen);
			old->vallen = rec->vallen;
			old->offset = offset;
			return true;
		}
		level = old->level;
		hash = old->hash;
	}
	else
	{
		level = random_level(index);
		hash = hash_bytes((const unsigned char *) rec->key, rec->keylen);
	}

	newp = dsa_allocate_extended(area, entry_header_size(level) + capacity,
								 DSA_ALLOC_NO_OOM | DSA_ALLOC_HUGE);
	if (!DsaPointerIsValid(newp))
		return false;
	if (old != NULL)
		old = entry_at(area, found);	/* addresses are stable; be explicit */

	e = entry_at(area, newp);
	e->offset = offset;
	e->hash = hash;
	e->keylen = rec->keylen;
	e->vallen = rec->vallen;
	e->capacity = capacity;
	e->level = (uint8) level;
	memcpy(entry_key(e), rec->key, rec->keylen);
	if (rec->vallen > 0)
		memcpy(entry_value(e), rec->value, rec->vallen);
	index->bytes += entry_header_size(level) + capacity;

	if (old != NULL)
	{
		/* Take the old entry's place in both structures */
		dsa_pointer *slot = hash_slot(area, index, found, hash);

		e->hash_next = old->hash_next;
		*slot = newp;
		for (int i = 0; i < level; i++)
		{
			e->next[i] = old->next[i];
			*preds[i] = newp;
		}
		index->bytes -= entry_header_size(old->level) + old->capacity;
		dsa_free(area, found);
		return true;
	}

	if (index->nkeys >= index->nbuckets)
		grow_buckets(area, index);
	if (index->nbuckets == 0)
	{
		/* Not even the first buckets fit */
		index->bytes -= entry_header_size(level) + capacity;
		dsa_free(area, newp);
		return false;
	}

	if (level > index->level)
	{
		for (int i = index->level; i < level; i++)
			preds[i] = &index->head[i];
		index->level = level;
	}
	for (int i = 0; i < level; i++)
	{
		e->next[i] = *preds[i];
		*preds[i] = newp;
	}
	{
		dsa_pointer *buckets = dsa_get_address(area, index->buckets);
		uint32		b = hash & (index->nbuckets - 1);

		e->hash_next = buckets[b];
		buckets[b] = newp;
	}
	index->nkeys++;
	return true;
}

/*
 * KvIndexClear
 *		Free every entry and the buckets; the index is empty again.
 *
 * Caller must hold the topic lock exclusively.
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
	if (DsaPointerIsValid(index->buckets))
		dsa_free(area, index->buckets);
	KvIndexInit(index);
}

/*
 * KvIndexLookup
 *		Find a key through the hash table.
 *
 * Caller must hold the topic lock, at least shared.
 */
bool
KvIndexLookup(dsa_area *area, KvIndex *index, const char *key, uint32 keylen,
			  KvEntryView *view)
{
	uint32		hash;
	dsa_pointer p;

	if (index->nbuckets == 0)
		return false;
	hash = hash_bytes((const unsigned char *) key, keylen);
	p = ((dsa_pointer *) dsa_get_address(area, index->buckets))[hash & (index->nbuckets - 1)];
	while (DsaPointerIsValid(p))
	{
		KvEntry    *e = entry_at(area, p);

		if (e->hash == hash && e->keylen == keylen &&
			memcmp(entry_key(e), key, keylen) == 0)
		{
			KvIndexView(area, p, view);
			return true;
		}
		p = e->hash_next;
	}
	return false;
}

/*
 * KvIndexSeek
 *		The first entry with a key >= key (inclusive) or > key, in byte
 *		order; key NULL starts at the first entry.
 *
 * Caller must hold the topic lock, at least shared.
 */
dsa_pointer
KvIndexSeek(dsa_area *area, KvIndex *index, const char *key, uint32 keylen,
			bool inclusive)
{
	dsa_pointer *forward = index->head;

	if (key == NULL)
		return index->head[0];
	for (int i = index->level - 1; i >= 0; i--)
	{
		while (DsaPointerIsValid(forward[i]))
		{
			KvEntry    *e = entry_at(area, forward[i]);
			int			cmp = key_compare(entry_key(e), e->keylen, key, keylen);

			if (cmp > 0 || (cmp == 0 && inclusive))
				break;
			forward = e->next;
		}
	}
	return forward[0];
}

/*
 * KvIndexNext
 *		The entry after entry in byte order, or InvalidDsaPointer.
 */
dsa_pointer
KvIndexNext(dsa_area *area, dsa_pointer entry)
{
	return entry_at(area, entry)->next[0];
}

/*
 * KvIndexView
 *		What a reader may see of an entry.
 */
void
KvIndexView(dsa_area *area, dsa_pointer entry, KvEntryView *view)
{
	KvEntry    *e = entry_at(area, entry);

	view->key = entry_key(e);
	view->keylen = e->keylen;
	view->value = entry_value(e);
	view->vallen = e->vallen;
	view->offset = e->offset;
}
