/*-------------------------------------------------------------------------
 *
 * index.c
 *		  The index of one topic: a hash table and a skip list over entries
 *		  kept in chunks of the shared dsa_area
 *
 * Every live key has one entry, laid out as
 *
 *		KvEntry header (24 bytes: offset and timestamp of the record that
 *						wrote it, key and value lengths, hash chain link,
 *						level)
 *		next[level]		skip list forward pointers, 4 bytes each
 *		key bytes
 *		value bytes
 *		unused bytes up to the end of its slot
 *
 * Entries refer to each other by KvRef, 4 bytes: the number of a chunk and
 * the entry's offset in it.  A chunk is one allocation from the area, found
 * by number in the index's chunk directory.  Entries up to 8 kB share
 * chunks of 16 kB (while the index holds less than 1 MB, or where the area
 * has no room for more) or 64 kB, cut in
 * slots of one size class each: multiples of 8 bytes up to 256, then eight
 * classes per doubling.  Each class keeps a list of its chunks that have a
 * free slot; a chunk whose last slot is freed goes back to the area.  A
 * larger entry gets a chunk of its own, rounded up to whole pages.
 *
 * Accounting: the area serves a request above 8 kB with whole 4 kB pages,
 * and a smaller one from a size class, which holds exactly a power of two.
 * This file only asks for chunks of whole pages above 8 kB and for
 * directories and hash tables whose size is a power of two, so that
 * index->bytes, the sum of its requests, is exactly what the area holds
 * for the index: free slots and the unused end of slots included.
 *
 * Point look-ups go through a chained hash table: a power-of-two array of
 * KvRefs, allocated with the first key (or, before a replay, at the size
 * of the records it replays: KvIndexReserve), doubled when there are more
 * keys than buckets and freed with the last key.  Doubling does not stop the
 * worker for long: the old table stays beside the new one and every
 * record applied moves KV_MOVE_STEP of its chains over, in bucket order, so
 * it is empty long before the next doubling.  A key is in the old table
 * while its bucket there is not moved yet, else in the new one; look-ups,
 * inserts and deletes all follow that rule.  The hash is SipHash-1-3 keyed
 * with 128 random bits drawn by KvIndexInit, so that no one who does not
 * know the key can choose keys that share a bucket.  Its high 32 bits give
 * an entry's level in the skip list (p = 1/4, at most KV_SKIPLIST_MAXLEVEL
 * levels), so levels are just as unpredictable, and a key keeps its level
 * whatever the order of the writes.  Scans walk the skip list, which keeps
 * the keys in unsigned byte order, a key before the longer keys it is a
 * prefix of.  A key past the last one inserted is placed from a finger,
 * the last entry at or before that key at each level, so keys in
 * ascending order go in without a walk from the top.
 *
 * A new value is written over the old one when it fits in the slot and
 * leaves at most half of the slot unused; otherwise the key moves to a new
 * slot, linked where the old one was at each of its levels, and the old one
 * is freed.  A shrinking value moves only when that takes no more from the
 * area than it gives back (a free slot, or a new chunk no larger than the
 * chunk the move empties), and stays in place when it finds no memory, so
 * only a new key or a growing value can run out of memory, and a shrinking
 * value never takes room a writer counted on (KvIndexPlanRecord).
 *
 * The area is shared by every topic.  An index may have a limit of its own,
 * index->limit, and a limit on what all indexes hold together,
 * index->held_limit, checked against a counter they share, *index->held;
 * no allocation takes them past either.  KvIndexApply allocates all it needs before it
 * links anything in, so that running out of memory, or reaching the limit,
 * leaves the index exactly as it was; only a failed doubling of the hash
 * table is not an error: the old table is kept, with longer chains.
 * A writer can count beforehand what its records will take
 * (KvIndexPlanRecord).
 *
 * Locking protocol: index.c takes no locks and uses no atomics; the caller
 * holds the topic's LWLock (KvTopic->lock, see shmem.c):
 *
 * - KvIndexApply, KvIndexApplyHashed, KvIndexClear and KvIndexReserve are
 *	 called only by the topic's single materializer, holding the lock
 *	 exclusively.
 * - KvIndexHash reads only the hash key, which only KvIndexClear changes:
 *	 the materializer may call it without the lock.
 * - KvIndexLookup, KvIndexSeek, KvIndexNext, KvIndexView and KvIndexPrefetch
 *	 need the lock held at least shared.  The dsa_pointer of an entry and the
 *	 pointers in a KvEntryView are valid only while it is held: callers copy
 *	 the bytes out before releasing it, and a scan that releases the lock
 *	 between batches seeks again past the last key it returned.
 *
 * The dsa_area does its own locking for allocation.
 *
 * IDENTIFICATION
 *		  src/index.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "port/pg_bitutils.h"
#include "port/pg_bswap.h"
#include "utils/memutils.h"

#include "kvstore.h"

/* The area serves requests above this size with whole pages */
#define KV_AREA_PAGE		4096
#define KV_AREA_LARGEST_CLASS	8192

/* A KvRef: chunk number in the high bits, offset / 8 in the low ones */
#define KV_REF_OFFSET_BITS	13
#define KV_MAX_CHUNKS		((uint32) 1 << (32 - KV_REF_OFFSET_BITS))
#define KV_REF(id, off)		(((KvRef) (id) << KV_REF_OFFSET_BITS) | (KvRef) ((off) / 8))
#define KV_REF_CHUNK(ref)	((uint32) ((ref) >> KV_REF_OFFSET_BITS))
#define KV_REF_OFFSET(ref)	((uint32) ((ref) & ((1 << KV_REF_OFFSET_BITS) - 1)) * 8)

/* Chunks of slots: small ones while the index is small */
#define KV_CHUNK_SMALL		(16 * 1024)
#define KV_CHUNK_LARGE		(64 * 1024)
#define KV_SMALL_INDEX		(1024 * 1024)

/* Entries larger than the largest size class get a chunk of their own */
#define KV_SLOT_MAX			8192

/* Buckets of the first hash table, and the most it may grow to */
#define KV_INITIAL_BUCKETS	1024
#define KV_MAX_BUCKETS		((uint32) 1 << 30)

/* Old buckets moved to the new table per record applied, while doubling */
#define KV_MOVE_STEP		8

/* Slots of the first chunk directory */
#define KV_INITIAL_CHUNKS	32

/*
 * A free slot of the chunk directory holds the next free number, shifted
 * left, with bit 0 set: a chunk's dsa_pointer is page aligned.
 */
#define KV_FREE_NUMBER(next)	(((dsa_pointer) (next) << 1) | 1)
#define KV_IS_FREE_NUMBER(dp)	(((dp) & 1) != 0)
#define KV_NEXT_FREE_NUMBER(dp) ((uint32) ((dp) >> 1))

/* Head of every chunk */
typedef struct KvChunk
{
	uint32		size;			/* bytes of the chunk, this header included */
	uint32		id;				/* its number in the directory */
	int			sclass;			/* size class of its slots, or -1 for a
								 * chunk holding one large entry */
	uint32		nused;			/* slots in use */
	uint32		free;			/* offset of the first freed slot, or 0 */
	uint32		fresh;			/* offset of the first slot never used */
	uint32		prev;			/* neighbours in the list of chunks of the */
	uint32		next;			/* same class with a free slot; 0 ends */
} KvChunk;

#define KV_CHUNK_HEADER		MAXALIGN(sizeof(KvChunk))

/*
 * An entry.  The record timestamp is kept in 44 bits, in milliseconds since
 * 1970 plus one (0: the record had none), split over stamp and stamp_high:
 * up to the year 2527, and later timestamps are kept as the last one that
 * fits.  Lengths are limited to KV_INDEX_MAX_KEY and KV_INDEX_MAX_VALUE.
 */
typedef struct KvEntry
{
	int64		offset;			/* offset of the record that wrote it */
	uint32		stamp;			/* low 32 bits of the timestamp */
	unsigned	keylen:20,		/* bytes of the key */
				stamp_high:12;	/* high 12 bits of the timestamp */
	unsigned	vallen:27,		/* bytes of the value; 0 is a real value */
				level:5;		/* forward pointers, 1..KV_SKIPLIST_MAXLEVEL */
	KvRef		hash_next;		/* next entry in the same bucket */
	KvRef		next[FLEXIBLE_ARRAY_MEMBER];	/* skip list forward pointers */
	/* key bytes and value bytes follow next[level - 1] */
} KvEntry;

#define KV_STAMP_BITS	44

StaticAssertDecl(KV_INDEX_MAX_KEY < (1 << 20) && KV_INDEX_MAX_VALUE < (1 << 27),
				 "the lengths of an entry must fit its bit fields");
StaticAssertDecl(KV_MAX_RECORD_BYTES <= KV_INDEX_MAX_KEY,
				 "every record kvstore writes must fit an entry");
StaticAssertDecl(KV_SKIPLIST_MAXLEVEL < (1 << 5),
				 "the level of an entry must fit its bit field");

#define entry_key(e)	((char *) &(e)->next[(e)->level])
#define entry_value(e)	(entry_key(e) + (e)->keylen)

static inline uint64 siphash(const uint64 key[2], const char *data, Size len,
							 int crounds, int drounds);
static inline uint64 key_hash(const KvIndex *index, const char *key,
							  uint32 keylen);
static inline int hash_level(uint64 hash);
static inline Size class_size(int sclass);
static inline int size_class(Size size);
static inline int alloc_flags(Size size);
static inline bool within_limit(const KvIndex *index, Size size);
static inline void account(KvIndex *index, int64 size);
static inline dsa_pointer *directory(dsa_area *area, KvIndex *index);
static inline KvChunk *chunk_at(dsa_area *area, KvIndex *index, uint32 id);
static inline dsa_pointer ref_pointer(dsa_area *area, KvIndex *index,
									  KvRef ref);
static inline KvEntry *entry_at(dsa_area *area, KvIndex *index, KvRef ref);
static inline KvEntry *entry_in(dsa_area *area, const dsa_pointer *dir,
								KvRef ref);
static inline Size entry_size(int level, uint32 keylen, uint32 vallen);
static inline void entry_set_timestamp(KvEntry *e, int64 timestamp);
static inline int64 entry_timestamp(const KvEntry *e);
static inline int key_compare(const char *a, uint32 alen,
							  const char *b, uint32 blen);
static bool grow_directory(dsa_area *area, KvIndex *index);
static void free_directory(dsa_area *area, KvIndex *index);
static int32 plan_spare(dsa_area *area, KvIndex *index, KvIndexPlan *plan,
						int sclass);
static void plan_chunk(KvIndex *index, KvIndexPlan *plan, Size size);
static KvChunk *chunk_new(dsa_area *area, KvIndex *index, Size size,
						  int sclass);
static void chunk_free(dsa_area *area, KvIndex *index, KvChunk *chunk);
static inline bool chunk_has_room(const KvChunk *chunk);
static void partial_push(dsa_area *area, KvIndex *index, KvChunk *chunk);
static void partial_remove(dsa_area *area, KvIndex *index, KvChunk *chunk);
static KvEntry *slot_alloc(dsa_area *area, KvIndex *index, Size size,
						   KvRef *ref);
static void slot_free(dsa_area *area, KvIndex *index, KvRef ref);
static Size slot_capacity(dsa_area *area, KvIndex *index, KvRef ref);
static Size slot_cost(KvIndex *index, Size size);
static Size slot_refund(dsa_area *area, KvIndex *index, KvRef ref);
static KvEntry *hash_find(dsa_area *area, KvIndex *index, const char *key,
						  uint32 keylen, uint64 hash, KvRef **slot);
static KvRef skiplist_descend(dsa_area *area, KvIndex *index,
							  const char *key, uint32 keylen,
							  bool inclusive, KvRef **preds);
static inline KvRef *entry_links(dsa_area *area, KvIndex *index,
								 const dsa_pointer *dir, KvRef ref);
static void skiplist_place(dsa_area *area, KvIndex *index, const char *key,
						   uint32 keylen, KvRef **preds, KvRef *owners);
static void finger_replace(KvIndex *index, KvRef ref, KvRef by);
static inline KvRef *bucket_of(dsa_area *area, KvIndex *index, uint64 hash);
static bool grow_buckets(dsa_area *area, KvIndex *index);
static void move_buckets(dsa_area *area, KvIndex *index, uint32 count);
static void free_buckets(dsa_area *area, KvIndex *index);
static KvEntry *entry_alloc(dsa_area *area, KvIndex *index, int level,
							const KvRecord *rec, int64 offset, KvRef *ref);
static inline bool stays_in_place(Size capacity, Size used);
static void write_in_place(KvEntry *e, const KvRecord *rec, int64 offset);
static bool insert_key(dsa_area *area, KvIndex *index, const KvRecord *rec,
					   uint64 hash, int64 offset);
static bool replace_value(dsa_area *area, KvIndex *index, KvEntry *old,
						  KvRef *slot, const KvRecord *rec, int64 offset);
static void delete_key(dsa_area *area, KvIndex *index, const KvRecord *rec,
					   uint64 hash);
static inline void fill_view(KvEntry *e, KvEntryView *view);

/* One SipRound over the state v0..v3 */
#define ROTL64(x, b)	(((x) << (b)) | ((x) >> (64 - (b))))
#define SIP_ROUND(v0, v1, v2, v3) \
	do { \
		(v0) += (v1); (v1) = ROTL64(v1, 13); (v1) ^= (v0); (v0) = ROTL64(v0, 32); \
		(v2) += (v3); (v3) = ROTL64(v3, 16); (v3) ^= (v2); \
		(v0) += (v3); (v3) = ROTL64(v3, 21); (v3) ^= (v0); \
		(v2) += (v1); (v1) = ROTL64(v1, 17); (v1) ^= (v2); (v2) = ROTL64(v2, 32); \
	} while (0)

/*
 * SipHash-c-d of data under a 128-bit key (Aumasson and Bernstein, 2012):
 * the message is absorbed in little-endian 64-bit words, c rounds each, the
 * last word carrying the length in its top byte; d rounds finish.
 */
static inline uint64
siphash(const uint64 key[2], const char *data, Size len, int crounds,
		int drounds)
{
	uint64		v0 = key[0] ^ UINT64CONST(0x736f6d6570736575);
	uint64		v1 = key[1] ^ UINT64CONST(0x646f72616e646f6d);
	uint64		v2 = key[0] ^ UINT64CONST(0x6c7967656e657261);
	uint64		v3 = key[1] ^ UINT64CONST(0x7465646279746573);
	const char *end = data + (len & ~(Size) 7);
	uint64		m;

	for (; data < end; data += 8)
	{
		memcpy(&m, data, 8);
#ifdef WORDS_BIGENDIAN
		m = pg_bswap64(m);
#endif
		v3 ^= m;
		for (int i = 0; i < crounds; i++)
			SIP_ROUND(v0, v1, v2, v3);
		v0 ^= m;
	}

	m = 0;
	memcpy(&m, data, len & 7);
#ifdef WORDS_BIGENDIAN
	m = pg_bswap64(m);
#endif
	m |= (uint64) (len & 0xff) << 56;
	v3 ^= m;
	for (int i = 0; i < crounds; i++)
		SIP_ROUND(v0, v1, v2, v3);
	v0 ^= m;

	v2 ^= 0xff;
	for (int i = 0; i < drounds; i++)
		SIP_ROUND(v0, v1, v2, v3);
	return v0 ^ v1 ^ v2 ^ v3;
}

/* The keyed hash of a key in this index */
static inline uint64
key_hash(const KvIndex *index, const char *key, uint32 keylen)
{
	return siphash(index->hash_key, key, keylen, 1, 3);
}

/* Level of a key: 1, plus one more with probability 1/4 each time */
static inline int
hash_level(uint64 hash)
{
	uint32		x = (uint32) (hash >> 32);
	int			level = 1;

	while ((x & 3) == 0 && level < KV_SKIPLIST_MAXLEVEL)
	{
		level++;
		x >>= 2;
	}
	return level;
}

/* Bytes of the slots of a size class */
static inline Size
class_size(int sclass)
{
	int			k;

	if (sclass < 32)
		return (Size) (sclass + 1) * 8;
	k = (sclass - 32) / 8;
	return ((Size) 256 << k) + (Size) ((sclass - 32) % 8 + 1) * ((Size) 32 << k);
}

/* The smallest size class whose slots hold size bytes, up to KV_SLOT_MAX */
static inline int
size_class(Size size)
{
	int			k;

	Assert(size > 0 && size <= KV_SLOT_MAX);
	if (size <= 256)
		return (int) ((size + 7) / 8) - 1;
	/* size - 1 is in [256 << k, 512 << k) */
	k = pg_leftmost_one_pos32((uint32) (size - 1)) - 8;
	return 32 + 8 * k + (int) ((size - 1 - ((Size) 256 << k)) / ((Size) 32 << k));
}

/* Allocation flags: never fail hard, allow more than 1GB if asked */
static inline int
alloc_flags(Size size)
{
	/* Only sizes the area holds without rounding, see the banner */
	Assert(size > KV_AREA_LARGEST_CLASS ? size % KV_AREA_PAGE == 0 :
		   (size & (size - 1)) == 0);
	return DSA_ALLOC_NO_OOM | (AllocSizeIsValid(size) ? 0 : DSA_ALLOC_HUGE);
}

/* Whether the index may take size more bytes from the area */
static inline bool
within_limit(const KvIndex *index, Size size)
{
	if (index->limit != 0 && index->bytes + size > index->limit)
		return false;
	return index->held == NULL || index->held_limit == 0 ||
		pg_atomic_read_u64(index->held) + size <= index->held_limit;
}

/* Count bytes taken from the area (size > 0) or given back (size < 0) */
static inline void
account(KvIndex *index, int64 size)
{
	index->bytes += size;
	if (index->held != NULL)
		pg_atomic_fetch_add_u64(index->held, size);
}

/* The chunk directory */
static inline dsa_pointer *
directory(dsa_area *area, KvIndex *index)
{
	return (dsa_pointer *) dsa_get_address(area, index->chunks);
}

/* The chunk of a number */
static inline KvChunk *
chunk_at(dsa_area *area, KvIndex *index, uint32 id)
{
	return (KvChunk *) dsa_get_address(area, directory(area, index)[id]);
}

/* The dsa_pointer of an entry */
static inline dsa_pointer
ref_pointer(dsa_area *area, KvIndex *index, KvRef ref)
{
	return directory(area, index)[KV_REF_CHUNK(ref)] + KV_REF_OFFSET(ref);
}

/* The entry a KvRef designates */
static inline KvEntry *
entry_at(dsa_area *area, KvIndex *index, KvRef ref)
{
	return entry_in(area, directory(area, index), ref);
}

/* The same, with the directory at hand: for walks that allocate nothing */
static inline KvEntry *
entry_in(dsa_area *area, const dsa_pointer *dir, KvRef ref)
{
	return (KvEntry *) dsa_get_address(area, dir[KV_REF_CHUNK(ref)] +
									   KV_REF_OFFSET(ref));
}

/* Bytes an entry uses */
static inline Size
entry_size(int level, uint32 keylen, uint32 vallen)
{
	return offsetof(KvEntry, next) + sizeof(KvRef) * level +
		(Size) keylen + vallen;
}

/* Keep a record timestamp (ms since 1970, -1: none) in an entry */
static inline void
entry_set_timestamp(KvEntry *e, int64 timestamp)
{
	uint64		stamp;

	if (timestamp < 0)
		stamp = 0;
	else
		stamp = Min((uint64) timestamp + 1, (UINT64CONST(1) << KV_STAMP_BITS) - 1);
	e->stamp = (uint32) stamp;
	e->stamp_high = (unsigned) (stamp >> 32);
}

/* The record timestamp of an entry, ms since 1970, or -1 for none */
static inline int64
entry_timestamp(const KvEntry *e)
{
	return (int64) (((uint64) e->stamp_high << 32) | e->stamp) - 1;
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

/* Double the chunk directory, or make the first one; false if no memory */
static bool
grow_directory(dsa_area *area, KvIndex *index)
{
	uint32		n = index->nchunks == 0 ? KV_INITIAL_CHUNKS : index->nchunks * 2;
	Size		size = sizeof(dsa_pointer) * (Size) n;
	dsa_pointer newp;

	if (n > KV_MAX_CHUNKS || !within_limit(index, size))
		return false;
	newp = dsa_allocate_extended(area, size, alloc_flags(size));
	if (!DsaPointerIsValid(newp))
		return false;

	if (index->nchunks == 0)
		index->chunks_used = 1;	/* number 0 is never handed out */
	else
	{
		memcpy(dsa_get_address(area, newp), directory(area, index),
			   sizeof(dsa_pointer) * (Size) index->chunks_used);
		dsa_free(area, index->chunks);
		account(index, -(int64) (sizeof(dsa_pointer) * (Size) index->nchunks));
	}
	index->chunks = newp;
	index->nchunks = n;
	account(index, size);
	return true;
}

/* Free the chunk directory, which lists no chunk any more */
static void
free_directory(dsa_area *area, KvIndex *index)
{
	Assert(index->chunks_live == 0);
	dsa_free(area, index->chunks);
	account(index, -(int64) (sizeof(dsa_pointer) * (Size) index->nchunks));
	index->chunks = InvalidDsaPointer;
	index->nchunks = 0;
	index->chunks_used = 0;
	index->free_chunk = 0;
}

/*
 * A new chunk of size bytes with a number in the directory, or NULL when
 * out of memory; nothing is changed then.
 */
static KvChunk *
chunk_new(dsa_area *area, KvIndex *index, Size size, int sclass)
{
	dsa_pointer p;
	uint32		id;
	KvChunk    *chunk;

	if (!within_limit(index, size))
		return NULL;
	p = dsa_allocate_extended(area, size, alloc_flags(size));
	if (!DsaPointerIsValid(p))
		return NULL;

	if (index->free_chunk != 0)
	{
		id = index->free_chunk;
		index->free_chunk = KV_NEXT_FREE_NUMBER(directory(area, index)[id]);
	}
	else
	{
		if (index->chunks_used == index->nchunks &&
			!grow_directory(area, index))
		{
			dsa_free(area, p);
			return NULL;
		}
		id = index->chunks_used++;
	}
	directory(area, index)[id] = p;
	index->chunks_live++;
	account(index, size);

	chunk = (KvChunk *) dsa_get_address(area, p);
	chunk->size = (uint32) size;
	chunk->id = id;
	chunk->sclass = sclass;
	chunk->nused = 0;
	chunk->free = 0;
	chunk->fresh = KV_CHUNK_HEADER;
	chunk->prev = 0;
	chunk->next = 0;
	return chunk;
}

/* Give a chunk back to the area; the last one takes the directory along */
static void
chunk_free(dsa_area *area, KvIndex *index, KvChunk *chunk)
{
	dsa_pointer *dir = directory(area, index);
	uint32		id = chunk->id;

	account(index, -(int64) chunk->size);
	dsa_free(area, dir[id]);
	dir[id] = KV_FREE_NUMBER(index->free_chunk);
	index->free_chunk = id;
	if (--index->chunks_live == 0)
		free_directory(area, index);
}

/* Whether a chunk of slots has one free */
static inline bool
chunk_has_room(const KvChunk *chunk)
{
	return chunk->free != 0 ||
		chunk->fresh + class_size(chunk->sclass) <= chunk->size;
}

/* Put a chunk at the head of its class's list of chunks with room */
static void
partial_push(dsa_area *area, KvIndex *index, KvChunk *chunk)
{
	uint32		head = index->partial[chunk->sclass];

	chunk->prev = 0;
	chunk->next = head;
	if (head != 0)
		chunk_at(area, index, head)->prev = chunk->id;
	index->partial[chunk->sclass] = chunk->id;
}

/* Take a chunk off its class's list of chunks with room */
static void
partial_remove(dsa_area *area, KvIndex *index, KvChunk *chunk)
{
	if (chunk->prev != 0)
		chunk_at(area, index, chunk->prev)->next = chunk->next;
	else
		index->partial[chunk->sclass] = chunk->next;
	if (chunk->next != 0)
		chunk_at(area, index, chunk->next)->prev = chunk->prev;
	chunk->prev = 0;
	chunk->next = 0;
}

/*
 * A slot of at least size bytes for a new entry; NULL when out of memory,
 * with nothing changed.  *ref is set to the slot's KvRef.
 */
static KvEntry *
slot_alloc(dsa_area *area, KvIndex *index, Size size, KvRef *ref)
{
	KvChunk    *chunk;
	uint32		off;

	if (size > KV_SLOT_MAX)
	{
		Size		chunk_size = TYPEALIGN(KV_AREA_PAGE, KV_CHUNK_HEADER + size);

		if (chunk_size > PG_UINT32_MAX)
			return NULL;
		chunk = chunk_new(area, index, chunk_size, -1);
		if (chunk == NULL)
			return NULL;
		off = chunk->fresh;
		chunk->fresh = chunk->size;
		chunk->nused = 1;
	}
	else
	{
		int			sclass = size_class(size);

		if (index->partial[sclass] != 0)
			chunk = chunk_at(area, index, index->partial[sclass]);
		else
		{
			chunk = NULL;
			if (index->bytes >= KV_SMALL_INDEX)
				chunk = chunk_new(area, index, KV_CHUNK_LARGE, sclass);
			/* A small chunk fits where a large one finds no room */
			if (chunk == NULL)
				chunk = chunk_new(area, index, KV_CHUNK_SMALL, sclass);
			if (chunk == NULL)
				return NULL;
			partial_push(area, index, chunk);
		}
		if (chunk->free != 0)
		{
			off = chunk->free;
			chunk->free = *(uint32 *) ((char *) chunk + off);
		}
		else
		{
			off = chunk->fresh;
			chunk->fresh += class_size(sclass);
		}
		chunk->nused++;
		if (!chunk_has_room(chunk))
			partial_remove(area, index, chunk);
	}

	*ref = KV_REF(chunk->id, off);
	return (KvEntry *) ((char *) chunk + off);
}

/* Free the slot of an unlinked entry, and its chunk if it was the last */
static void
slot_free(dsa_area *area, KvIndex *index, KvRef ref)
{
	KvChunk    *chunk = chunk_at(area, index, KV_REF_CHUNK(ref));
	uint32		off = KV_REF_OFFSET(ref);
	bool		had_room;

	if (chunk->sclass < 0)
	{
		chunk_free(area, index, chunk);
		return;
	}
	had_room = chunk_has_room(chunk);
	if (--chunk->nused == 0)
	{
		if (had_room)
			partial_remove(area, index, chunk);
		chunk_free(area, index, chunk);
		return;
	}
	*(uint32 *) ((char *) chunk + off) = chunk->free;
	chunk->free = off;
	if (!had_room)
		partial_push(area, index, chunk);
}

/*
 * Bytes a new slot of size would take from the area: 0 when a chunk of the
 * index has one free, else a new chunk and any growth of the directory
 */
static Size
slot_cost(KvIndex *index, Size size)
{
	Size		cost;

	if (size > KV_SLOT_MAX)
		cost = TYPEALIGN(KV_AREA_PAGE, KV_CHUNK_HEADER + size);
	else if (index->partial[size_class(size)] != 0)
		return 0;
	else
		cost = index->bytes < KV_SMALL_INDEX ? KV_CHUNK_SMALL : KV_CHUNK_LARGE;
	if (index->free_chunk == 0 && index->chunks_used == index->nchunks)
		cost += sizeof(dsa_pointer) * (Size) Max(index->nchunks * 2, KV_INITIAL_CHUNKS);
	return cost;
}

/* Bytes freeing a slot gives back to the area: its chunk, if it empties */
static Size
slot_refund(dsa_area *area, KvIndex *index, KvRef ref)
{
	KvChunk    *chunk = chunk_at(area, index, KV_REF_CHUNK(ref));

	return chunk->sclass < 0 || chunk->nused == 1 ? chunk->size : 0;
}

/* Bytes of the slot an entry occupies */
static Size
slot_capacity(dsa_area *area, KvIndex *index, KvRef ref)
{
	KvChunk    *chunk = chunk_at(area, index, KV_REF_CHUNK(ref));

	if (chunk->sclass < 0)
		return chunk->size - KV_CHUNK_HEADER;
	return class_size(chunk->sclass);
}

/*
 * Find a key in the hash table.  Returns its entry, or NULL; when found and
 * slot is not NULL, *slot is set to the link that points to the entry.
 */
static KvEntry *
hash_find(dsa_area *area, KvIndex *index, const char *key, uint32 keylen,
		  uint64 hash, KvRef **slot)
{
	KvRef	   *link;
	dsa_pointer *dir;

	/* A table made ahead of its keys has no directory yet */
	if (index->nbuckets == 0 || index->nkeys == 0)
		return NULL;
	dir = directory(area, index);
	link = bucket_of(area, index, hash);
	while (*link != 0)
	{
		KvEntry    *e = entry_in(area, dir, *link);

		if (e->keylen == keylen && memcmp(entry_key(e), key, keylen) == 0)
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
 * (inclusive) or > key (exclusive), and return it, or 0 at the end.  If
 * preds is not NULL, preds[i] is set for every level i in use to the
 * forward pointer at level i that leads to that entry: the place to link a
 * new entry in, or to unlink the returned one from.
 *
 * An entry that stopped the walk at one level is not compared again when
 * it is met at the levels below.
 */
static KvRef
skiplist_descend(dsa_area *area, KvIndex *index, const char *key,
				 uint32 keylen, bool inclusive, KvRef **preds)
{
	KvRef	   *forward = index->head;
	KvRef		stop = 0;
	int			threshold = inclusive ? 0 : 1;
	dsa_pointer *dir;

	if (index->level == 0)
		return 0;
	dir = directory(area, index);
	for (int i = index->level - 1; i >= 0; i--)
	{
		KvRef		p;

		while ((p = forward[i]) != 0 && p != stop)
		{
			KvEntry    *e = entry_in(area, dir, p);

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

/* The forward links of an entry, or the heads for ref 0 */
static inline KvRef *
entry_links(dsa_area *area, KvIndex *index, const dsa_pointer *dir, KvRef ref)
{
	return ref == 0 ? index->head : entry_in(area, dir, ref)->next;
}

/*
 * Find where a key absent from the index goes in the skip list: preds[i]
 * is set as skiplist_descend sets it, and owners[i] to the entry that
 * link belongs to (0: the head), for every level i in use.
 *
 * A key past the last key inserted starts from the finger rather than the
 * head, and climbs only as many levels as the keys between the two need:
 * at the lowest level h where the finger's next entry is not before the
 * key, the finger is the place at h and at every level above (the next
 * entry at a higher level is at or after the next one at h), and the walk
 * goes down from there.  Keys that arrive in ascending order, as a replay
 * of a log written in key order brings them, so cost one comparison each
 * instead of a walk from the top, whose reads miss the cache once the
 * index outgrows it.
 */
static void
skiplist_place(dsa_area *area, KvIndex *index, const char *key,
			   uint32 keylen, KvRef **preds, KvRef *owners)
{
	dsa_pointer *dir;
	KvRef		owner = 0;
	KvRef	   *forward = index->head;
	KvRef		stop = 0;
	int			top = index->level;

	if (index->level == 0)
		return;
	dir = directory(area, index);
	if (index->finger[0] != 0)
	{
		KvEntry    *last = entry_in(area, dir, index->finger[0]);
		int			h;

		if (key_compare(entry_key(last), last->keylen, key, keylen) < 0)
		{
			for (h = 0; h < index->level; h++)
			{
				KvRef		p = entry_links(area, index, dir, index->finger[h])[h];
				KvEntry    *e;

				if (p == 0)
					break;
				e = entry_in(area, dir, p);
				if (key_compare(entry_key(e), e->keylen, key, keylen) >= 0)
				{
					stop = p;
					break;
				}
			}
			if (h < index->level)
			{
				for (int i = h; i < index->level; i++)
				{
					owners[i] = index->finger[i];
					preds[i] = &entry_links(area, index, dir, owners[i])[i];
				}
				top = h;
				owner = index->finger[h];
				forward = entry_links(area, index, dir, owner);
			}
		}
	}
	for (int i = top - 1; i >= 0; i--)
	{
		KvRef		p;

		while ((p = forward[i]) != 0 && p != stop)
		{
			KvEntry    *e = entry_in(area, dir, p);

			if (key_compare(entry_key(e), e->keylen, key, keylen) >= 0)
			{
				stop = p;
				break;
			}
			owner = p;
			forward = e->next;
		}
		preds[i] = &forward[i];
		owners[i] = owner;
	}
}

/*
 * An entry of the skip list is replaced by another at its place (by), or
 * unlinked (by 0): the finger follows the one, and is dropped with the
 * other if it held it
 */
static void
finger_replace(KvIndex *index, KvRef ref, KvRef by)
{
	if (index->finger[0] == 0)
		return;
	for (int i = 0; i < index->level; i++)
	{
		if (index->finger[i] != ref)
			continue;
		if (by == 0)
		{
			index->finger[0] = 0;
			return;
		}
		index->finger[i] = by;
	}
}

/*
 * The head of the chain a hash belongs to: in the old table while its
 * bucket there is not moved yet, else in the new one.  The index has a
 * table.
 */
static inline KvRef *
bucket_of(dsa_area *area, KvIndex *index, uint64 hash)
{
	if (index->old_nbuckets != 0)
	{
		uint32		b = (uint32) hash & (index->old_nbuckets - 1);

		if (b >= index->moved)
			return (KvRef *) dsa_get_address(area, index->old_buckets) + b;
	}
	return (KvRef *) dsa_get_address(area, index->buckets) +
		((uint32) hash & (index->nbuckets - 1));
}

/*
 * Start doubling the hash table, or make the first one.  On failure the
 * table stays as it is and false is returned.
 */
static bool
grow_buckets(dsa_area *area, KvIndex *index)
{
	uint32		nbuckets;
	Size		size;
	dsa_pointer newp;

	if (index->nbuckets == 0)
		nbuckets = KV_INITIAL_BUCKETS;
	else if (index->nbuckets < KV_MAX_BUCKETS)
		nbuckets = index->nbuckets * 2;
	else
		return false;

	size = sizeof(KvRef) * (Size) nbuckets;
	if (!within_limit(index, size))
		return false;
	newp = dsa_allocate_extended(area, size, alloc_flags(size) | DSA_ALLOC_ZERO);
	if (!DsaPointerIsValid(newp))
		return false;

	/* A doubling before the last was done: finish that one first */
	move_buckets(area, index, PG_UINT32_MAX);

	if (index->nbuckets != 0)
	{
		index->old_buckets = index->buckets;
		index->old_nbuckets = index->nbuckets;
		index->moved = 0;
	}
	index->buckets = newp;
	index->nbuckets = nbuckets;
	account(index, size);
	return true;
}

/*
 * Move up to count chains of the old table, while the table doubles, into
 * the new one; free the old table once it is empty.
 */
static void
move_buckets(dsa_area *area, KvIndex *index, uint32 count)
{
	KvRef	   *old;
	KvRef	   *buckets;
	dsa_pointer *dir;

	if (index->old_nbuckets == 0)
		return;
	old = (KvRef *) dsa_get_address(area, index->old_buckets);
	buckets = (KvRef *) dsa_get_address(area, index->buckets);
	dir = index->nchunks > 0 ? directory(area, index) : NULL;
	for (; count > 0 && index->moved < index->old_nbuckets; count--)
	{
		KvRef		p = old[index->moved];

		while (p != 0)
		{
			KvEntry    *e = entry_in(area, dir, p);
			KvRef		next = e->hash_next;
			uint32		b = (uint32) key_hash(index, entry_key(e), e->keylen) &
				(index->nbuckets - 1);

			e->hash_next = buckets[b];
			buckets[b] = p;
			p = next;
		}
		old[index->moved++] = 0;
	}
	if (index->moved == index->old_nbuckets)
	{
		dsa_free(area, index->old_buckets);
		account(index, -(int64) (sizeof(KvRef) * (Size) index->old_nbuckets));
		index->old_buckets = InvalidDsaPointer;
		index->old_nbuckets = 0;
		index->moved = 0;
	}
}

/* Free the hash table, both tables while it doubles */
static void
free_buckets(dsa_area *area, KvIndex *index)
{
	if (index->old_nbuckets != 0)
	{
		dsa_free(area, index->old_buckets);
		account(index, -(int64) (sizeof(KvRef) * (Size) index->old_nbuckets));
		index->old_buckets = InvalidDsaPointer;
		index->old_nbuckets = 0;
		index->moved = 0;
	}
	if (index->nbuckets == 0)
		return;
	dsa_free(area, index->buckets);
	account(index, -(int64) (sizeof(KvRef) * (Size) index->nbuckets));
	index->buckets = InvalidDsaPointer;
	index->nbuckets = 0;
}

/*
 * Allocate and fill an unlinked entry for a record; NULL when out of
 * memory, with nothing changed.  *ref is set to the entry's KvRef.
 */
static KvEntry *
entry_alloc(dsa_area *area, KvIndex *index, int level, const KvRecord *rec,
			int64 offset, KvRef *ref)
{
	KvEntry    *e;

	e = slot_alloc(area, index, entry_size(level, rec->keylen, rec->vallen), ref);
	if (e == NULL)
		return NULL;
	e->offset = offset;
	entry_set_timestamp(e, rec->timestamp);
	e->keylen = rec->keylen;
	e->vallen = rec->vallen;
	e->hash_next = 0;
	e->level = level;
	memcpy(entry_key(e), rec->key, rec->keylen);
	if (rec->vallen > 0)
		memcpy(entry_value(e), rec->value, rec->vallen);
	return e;
}

/* A new value stays in its slot when it fits and leaves at most half unused */
static inline bool
stays_in_place(Size capacity, Size used)
{
	return used <= capacity && capacity - used <= capacity / 2;
}

/* Overwrite an entry's value; caller checked that it fits */
static void
write_in_place(KvEntry *e, const KvRecord *rec, int64 offset)
{
	if (rec->vallen > 0)
		memcpy(entry_value(e), rec->value, rec->vallen);
	e->vallen = rec->vallen;
	e->offset = offset;
	entry_set_timestamp(e, rec->timestamp);
}

/* Link a new key into both structures; false when out of memory */
static bool
insert_key(dsa_area *area, KvIndex *index, const KvRecord *rec, uint64 hash,
		   int64 offset)
{
	KvRef	   *preds[KV_SKIPLIST_MAXLEVEL];
	KvRef		owners[KV_SKIPLIST_MAXLEVEL];
	int			level = hash_level(hash);
	bool		first = index->nbuckets == 0;
	KvRef		newref;
	KvEntry    *e;
	KvRef	   *bucket;

	/* The first key needs a table; a failure after it frees it again */
	if (first && !grow_buckets(area, index))
		return false;
	e = entry_alloc(area, index, level, rec, offset, &newref);
	if (e == NULL)
	{
		if (first)
			free_buckets(area, index);
		return false;
	}
	if (!first && index->nkeys >= index->nbuckets)
		(void) grow_buckets(area, index);	/* failure only lengthens chains */

	/* Nothing can fail from here on */
	skiplist_place(area, index, rec->key, rec->keylen, preds, owners);
	for (int i = index->level; i < level; i++)
		preds[i] = &index->head[i];
	for (int i = 0; i < level; i++)
	{
		e->next[i] = *preds[i];
		*preds[i] = newref;
		index->finger[i] = newref;
	}
	for (int i = level; i < index->level; i++)
		index->finger[i] = owners[i];
	if (level > index->level)
		index->level = level;

	bucket = bucket_of(area, index, hash);
	e->hash_next = *bucket;
	*bucket = newref;

	index->nkeys++;
	return true;
}

/*
 * Give an existing key a new value and offset; false when out of memory.
 * slot is the hash link that points to old.
 */
static bool
replace_value(dsa_area *area, KvIndex *index, KvEntry *old, KvRef *slot,
			  const KvRecord *rec, int64 offset)
{
	KvRef	   *preds[KV_SKIPLIST_MAXLEVEL];
	KvRef		oldref = *slot;
	Size		capacity = slot_capacity(area, index, oldref);
	Size		used = entry_size(old->level, old->keylen, rec->vallen);
	KvRef		newref;
	KvEntry    *e;

	/* A shrinking value moves only if that takes no more than it gives back */
	if (stays_in_place(capacity, used) ||
		(used <= capacity &&
		 slot_cost(index, used) > slot_refund(area, index, oldref)))
	{
		write_in_place(old, rec, offset);
		return true;
	}

	e = entry_alloc(area, index, old->level, rec, offset, &newref);
	if (e == NULL)
	{
		/* A shrinking value can always stay where it is */
		if (used <= capacity)
		{
			write_in_place(old, rec, offset);
			return true;
		}
		return false;
	}

	/* Take the old entry's place at each of its levels, and in its chain */
	(void) skiplist_descend(area, index, rec->key, rec->keylen, true, preds);
	for (int i = 0; i < old->level; i++)
	{
		Assert(*preds[i] == oldref);
		e->next[i] = old->next[i];
		*preds[i] = newref;
	}
	e->hash_next = old->hash_next;
	*slot = newref;
	finger_replace(index, oldref, newref);

	slot_free(area, index, oldref);
	return true;
}

/* Unlink and free the entry of a key, if there is one */
static void
delete_key(dsa_area *area, KvIndex *index, const KvRecord *rec, uint64 hash)
{
	KvRef	   *preds[KV_SKIPLIST_MAXLEVEL];
	KvRef	   *slot;
	KvRef		ref;
	KvEntry    *e;

	if (index->nkeys == 0)
		return;
	e = hash_find(area, index, rec->key, rec->keylen, hash, &slot);
	if (e == NULL)
		return;
	ref = *slot;

	(void) skiplist_descend(area, index, rec->key, rec->keylen, true, preds);
	for (int i = 0; i < e->level; i++)
	{
		Assert(*preds[i] == ref);
		*preds[i] = e->next[i];
	}
	finger_replace(index, ref, 0);
	while (index->level > 0 && index->head[index->level - 1] == 0)
		index->level--;
	*slot = e->hash_next;

	index->nkeys--;
	slot_free(area, index, ref);

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
	view->timestamp = entry_timestamp(e);
}

/*
 * KvIndexInit
 *		Make an empty index with a new secret hash key.
 *
 * Nothing is allocated: the hash table and the chunks come with the first
 * key.  Called once per topic slot when shared memory is set up, and again
 * whenever the index is emptied, so every index of every server hashes
 * with a key of its own.
 */
void
KvIndexInit(KvIndex *index)
{
	if (!pg_strong_random(index->hash_key, sizeof(index->hash_key)))
		elog(ERROR, "could not generate a random hash key");
	index->buckets = InvalidDsaPointer;
	index->nbuckets = 0;
	index->old_buckets = InvalidDsaPointer;
	index->old_nbuckets = 0;
	index->moved = 0;
	index->chunks = InvalidDsaPointer;
	index->nchunks = 0;
	index->chunks_used = 0;
	index->chunks_live = 0;
	index->free_chunk = 0;
	index->level = 0;
	for (int i = 0; i < KV_SKIPLIST_MAXLEVEL; i++)
	{
		index->head[i] = 0;
		index->finger[i] = 0;
	}
	for (int i = 0; i < KV_INDEX_CLASSES; i++)
		index->partial[i] = 0;
	index->nkeys = 0;
	index->bytes = 0;
	index->limit = 0;
	index->held = NULL;
	index->held_limit = 0;
}

/*
 * KvIndexHash
 *		The keyed hash of a key in this index, for KvIndexPrefetch and
 *		KvIndexApplyHashed.
 *
 * Valid until the index is cleared, which draws a new hash key.
 */
uint64
KvIndexHash(const KvIndex *index, const char *key, uint32 keylen)
{
	return key_hash(index, key, keylen);
}

/*
 * KvIndexApply
 *		Apply one record: a tombstone deletes its key, any other record
 *		sets the key's value and remembers offset.
 *
 * Returns false when shared memory ran out, or for a key or value longer
 * than an entry holds; the index is then exactly as before the call, and
 * the caller decides what to do (the materializer stops the topic).
 * Deleting needs no memory and always succeeds, even for an absent key.
 *
 * Caller must hold the topic lock exclusively.
 */
bool
KvIndexApply(dsa_area *area, KvIndex *index, const KvRecord *rec, int64 offset)
{
	return KvIndexApplyHashed(area, index, rec, offset,
							  key_hash(index, rec->key, rec->keylen));
}

/*
 * KvIndexApplyHashed
 *		KvIndexApply for a record whose key's KvIndexHash the caller has.
 *
 * The materializer hashes each key of a batch once, for the prefetches
 * ahead of it and for applying it.  Caller must hold the topic lock
 * exclusively.
 */
bool
KvIndexApplyHashed(dsa_area *area, KvIndex *index, const KvRecord *rec,
				   int64 offset, uint64 hash)
{
	KvRef	   *slot;
	KvEntry    *e;
	bool		applied;

	Assert(hash == key_hash(index, rec->key, rec->keylen));
	if (!rec->tombstone &&
		(rec->keylen > KV_INDEX_MAX_KEY || rec->vallen > KV_INDEX_MAX_VALUE))
		return false;
	if (rec->tombstone)
	{
		delete_key(area, index, rec, hash);
		applied = true;
	}
	else
	{
		e = hash_find(area, index, rec->key, rec->keylen, hash, &slot);
		if (e != NULL)
			applied = replace_value(area, index, e, slot, rec, offset);
		else
			applied = insert_key(area, index, rec, hash, offset);
	}

	/* A doubling table moves on with every record applied */
	if (applied)
		move_buckets(area, index, KV_MOVE_STEP);
	return applied;
}

/*
 * KvIndexClear
 *		Free every chunk, the directory and the hash table; the index is
 *		empty again, with a new hash key and the same limits.
 *
 * Used before a topic's log is replayed from the start.  Caller must hold
 * the topic lock exclusively.
 */
void
KvIndexClear(dsa_area *area, KvIndex *index)
{
	uint64		limit = index->limit;
	pg_atomic_uint64 *held = index->held;
	uint64		held_limit = index->held_limit;

	account(index, -(int64) index->bytes);
	if (index->nchunks > 0)
	{
		dsa_pointer *dir = directory(area, index);

		for (uint32 id = 1; id < index->chunks_used; id++)
		{
			if (!KV_IS_FREE_NUMBER(dir[id]))
				dsa_free(area, dir[id]);
		}
		dsa_free(area, index->chunks);
	}
	if (index->nbuckets > 0)
		dsa_free(area, index->buckets);
	if (index->old_nbuckets > 0)
		dsa_free(area, index->old_buckets);
	KvIndexInit(index);
	index->limit = limit;
	index->held = held;
	index->held_limit = held_limit;
}

/*
 * KvIndexReserve
 *		Make the hash table of an empty index for nkeys keys at once.
 *
 * A replay knows how many records it is about to apply: a table sized for
 * them from the start is never doubled while they are applied, so no chain
 * is moved, and its chains stay shorter meanwhile.  The table takes at
 * most a sixteenth of the index's limit and of what the area has left,
 * no more than the table of a full index would hold, so a log with
 * many records per key cannot crowd out the keys; a smaller table than
 * asked for, or none, only means doubling as usual.
 *
 * Caller must hold the topic lock exclusively.
 */
void
KvIndexReserve(dsa_area *area, KvIndex *index, uint64 nkeys)
{
	uint64		nbuckets;
	Size		size;
	dsa_pointer newp;

	if (index->nbuckets != 0 || nkeys <= KV_INITIAL_BUCKETS)
		return;
	nbuckets = Min(pg_nextpower2_64(nkeys), (uint64) KV_MAX_BUCKETS);
	size = sizeof(KvRef) * (Size) nbuckets;
	while (nbuckets > KV_INITIAL_BUCKETS &&
		   ((index->limit != 0 && size > index->limit / 16) ||
			(index->held != NULL && index->held_limit != 0 &&
			 size > (index->held_limit -
					 Min(index->held_limit, pg_atomic_read_u64(index->held))) / 16)))
	{
		nbuckets /= 2;
		size /= 2;
	}
	if (nbuckets <= KV_INITIAL_BUCKETS || !within_limit(index, size))
		return;
	newp = dsa_allocate_extended(area, size, alloc_flags(size) | DSA_ALLOC_ZERO);
	if (!DsaPointerIsValid(newp))
		return;
	index->buckets = newp;
	index->nbuckets = (uint32) nbuckets;
	account(index, size);
}

/*
 * KvIndexPrefetch
 *		Ask the CPU to fetch what applying a key of this KvIndexHash will
 *		read: its bucket, or with chain, the first entry of its chain.
 *
 * Applying a new key is bound by cache misses: the bucket, then each
 * entry of its chain.  The materializer calls this for the records a few
 * places ahead in its batch, first for the bucket, then, once the bucket
 * is in cache, for the entry, so that the misses of several records
 * overlap.  Reads nothing else and changes nothing.
 *
 * Caller must hold the topic lock, at least shared.
 */
void
KvIndexPrefetch(dsa_area *area, KvIndex *index, uint64 hash, bool chain)
{
#if defined(__GNUC__)
	KvRef	   *link;

	if (index->nbuckets == 0)
		return;
	link = bucket_of(area, index, hash);
	if (!chain)
		__builtin_prefetch(link);
	else if (*link != 0)
	{
		char	   *e = (char *) entry_at(area, index, *link);

		__builtin_prefetch(e);
		__builtin_prefetch(e + 63);
	}
#endif
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
	e = hash_find(area, index, key, keylen, key_hash(index, key, keylen), NULL);
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
	KvRef		ref;

	if (key == NULL)
		ref = index->head[0];
	else
		ref = skiplist_descend(area, index, key, keylen, inclusive, NULL);
	return ref == 0 ? InvalidDsaPointer : ref_pointer(area, index, ref);
}

/*
 * KvIndexNext
 *		The entry after entry in key order, or InvalidDsaPointer.
 *
 * The index's directory resolves the link: entries do not point back to
 * their chunk, so the caller passes the index it got entry from.  Caller
 * must have held the topic lock, at least shared, since it got entry from
 * KvIndexSeek or KvIndexNext.
 */
dsa_pointer
KvIndexNext(dsa_area *area, KvIndex *index, dsa_pointer entry)
{
	KvEntry    *e = (KvEntry *) dsa_get_address(area, entry);

	if (e->next[0] == 0)
		return InvalidDsaPointer;
	return ref_pointer(area, index, e->next[0]);
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
	fill_view((KvEntry *) dsa_get_address(area, entry), view);
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
	KvRef	   *forward = index->head;
	KvRef		last = 0;
	int			threshold = inclusive ? 1 : 0;
	dsa_pointer *dir;

	if (index->level == 0)
		return InvalidDsaPointer;
	dir = directory(area, index);
	for (int i = index->level - 1; i >= 0; i--)
	{
		KvRef		p;

		while ((p = forward[i]) != 0)
		{
			KvEntry    *e = entry_in(area, dir, p);

			if (key != NULL &&
				key_compare(entry_key(e), e->keylen, key, keylen) >= threshold)
				break;
			last = p;
			forward = e->next;
		}
	}
	return last == 0 ? InvalidDsaPointer : ref_pointer(area, index, last);
}

/*
 * KvIndexPlanInit
 *		Start counting what the records of one write take.
 */
void
KvIndexPlanInit(KvIndexPlan *plan)
{
	for (int i = 0; i < KV_INDEX_CLASSES; i++)
		plan->spare[i] = -1;
	plan->numbers = -1;
	plan->directory = 0;
	plan->keys = 0;
	plan->buckets = 0;
	plan->bytes = 0;
	memset(plan->written, 0, sizeof(plan->written));
}

/* Free slots of a size class left to the plan: at first, its chunks' */
static int32
plan_spare(dsa_area *area, KvIndex *index, KvIndexPlan *plan, int sclass)
{
	if (plan->spare[sclass] < 0)
	{
		plan->spare[sclass] = 0;
		for (uint32 id = index->partial[sclass]; id != 0;)
		{
			KvChunk    *chunk = chunk_at(area, index, id);

			plan->spare[sclass] += (chunk->size - KV_CHUNK_HEADER) /
				class_size(sclass) - chunk->nused;
			id = chunk->next;
		}
	}
	return plan->spare[sclass];
}

/* Count a new chunk of size bytes, and the directory growing for it */
static void
plan_chunk(KvIndex *index, KvIndexPlan *plan, Size size)
{
	if (plan->numbers < 0)
	{
		/* Numbers never handed out, and those handed back */
		plan->directory = index->nchunks;
		plan->numbers = index->nchunks == 0 ? 0 :
			(int64) index->nchunks - 1 - index->chunks_live;
	}
	if (plan->numbers == 0)
	{
		uint32		n = plan->directory == 0 ? KV_INITIAL_CHUNKS : plan->directory * 2;

		/* The new directory, while the old one is still held */
		plan->bytes += sizeof(dsa_pointer) * (Size) n;
		plan->numbers += n - Max(plan->directory, 1);
		plan->directory = n;
	}
	plan->numbers--;
	plan->bytes += size;
}

/*
 * KvIndexPlanRecord
 *		Count what applying rec, after the records counted before it,
 *		takes beyond what the index holds: plan->bytes grows by the chunks
 *		it needs.
 *
 * A tombstone takes nothing, nor does a value that stays in its slot; a
 * shrinking value that moves takes a free slot; a new entry, or a key the
 * write wrote before (its slot is no longer known), takes a free slot of
 * its class if the index or the plan has one left,
 * else a new chunk of that class, or a chunk of its own when large, and
 * the directory may have to grow for the chunk; new keys take the first
 * hash table, or its doubling when they outnumber its buckets (the index
 * does without the doubling when short, but takes it when it fits).  A
 * writer compares index->bytes plus plan->bytes with the limits before it
 * sends anything: with that much room every record applies.  Caller must
 * hold the topic lock, at least shared.
 */
void
KvIndexPlanRecord(dsa_area *area, KvIndex *index, const KvRecord *rec,
			KvIndexPlan *plan)
{
	uint64		hash;
	KvEntry    *e;
	KvRef	   *slot;
	Size		size;
	int			sclass;
	uint64		bit1;
	uint64		bit2;
	bool		seen;

	/* Two bits of the filter per key */
	hash = key_hash(index, rec->key, rec->keylen);
	bit1 = (uint64) 1 << (hash & 63);
	bit2 = (uint64) 1 << ((hash >> 10) & 63);
	seen = (plan->written[(hash >> 6) & 15] & bit1) != 0 &&
		(plan->written[(hash >> 16) & 15] & bit2) != 0;
	plan->written[(hash >> 6) & 15] |= bit1;
	plan->written[(hash >> 16) & 15] |= bit2;
	if (rec->tombstone)
		return;

	e = hash_find(area, index, rec->key, rec->keylen, hash, &slot);
	if (seen)
		e = NULL;				/* written before by the write: count it new */
	if (e != NULL)
	{
		Size		capacity = slot_capacity(area, index, *slot);

		size = entry_size(e->level, e->keylen, rec->vallen);
		if (size <= capacity)
		{
			/* A shrinking value moves into a free slot, if there is one */
			if (!stays_in_place(capacity, size) && size <= KV_SLOT_MAX &&
				plan_spare(area, index, plan, size_class(size)) > 0)
				plan->spare[size_class(size)]--;
			return;
		}
	}
	else
	{
		size = entry_size(hash_level(hash), rec->keylen, rec->vallen);
		if (plan->buckets == 0)
			plan->buckets = index->nbuckets;
		plan->keys++;
		if (plan->buckets == 0 ||
			(index->nkeys + plan->keys > plan->buckets &&
			 plan->buckets < KV_MAX_BUCKETS))
		{
			/* The new table, while the old one is still held */
			plan->buckets = plan->buckets == 0 ? KV_INITIAL_BUCKETS : plan->buckets * 2;
			plan->bytes += sizeof(KvRef) * plan->buckets;
		}
	}

	if (size > KV_SLOT_MAX)
	{
		plan_chunk(index, plan, TYPEALIGN(KV_AREA_PAGE, KV_CHUNK_HEADER + size));
		return;
	}
	sclass = size_class(size);
	if (plan_spare(area, index, plan, sclass) > 0)
		plan->spare[sclass]--;
	else
	{
		Size		chunk_size = index->bytes + plan->bytes < KV_SMALL_INDEX ?
			KV_CHUNK_SMALL : KV_CHUNK_LARGE;

		plan_chunk(index, plan, chunk_size);
		plan->spare[sclass] = (chunk_size - KV_CHUNK_HEADER) / class_size(sclass) - 1;
	}
}

/*
 * KvIndexSlotSize
 *		The slot a new entry for a key and value of these lengths takes,
 *		at level 4 or below (all but one key in 256): what a writer far
 *		from its limits counts without reading the index.
 */
Size
KvIndexSlotSize(uint32 keylen, uint32 vallen)
{
	Size		size = entry_size(4, keylen, vallen);

	if (size > KV_SLOT_MAX)
		return TYPEALIGN(KV_AREA_PAGE, KV_CHUNK_HEADER + size);
	return class_size(size_class(size));
}
