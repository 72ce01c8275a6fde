/*-------------------------------------------------------------------------
 *
 * test_index.c
 *		  Unit test of src/index.c, built and run without a server
 *
 * index.c is included here, so that the test can look at its internals:
 * the keyed hash, the size classes, bucket chains and skip list levels.
 *
 * index.c allocates from a dsa_area.  Here a stand-in serves
 * dsa_allocate_extended, dsa_free and dsa_get_address from malloc.  It
 * rounds every request the way the real area does: up to 8 kB to a size
 * class (multiples of 8 up to 64, then four classes per doubling), above
 * that to whole 4 kB pages, and counts what it holds, so that the test can
 * compare index->bytes with the allocator's holding.  It has a byte budget
 * and fault injectors that fail the n-th allocation from now or every
 * allocation of one size, so that running out of memory can be tested at
 * every allocation an operation makes.  It also refuses what the real area
 * would refuse: an allocation without DSA_ALLOC_NO_OOM, one over 1GB
 * without DSA_ALLOC_HUGE, a double free.  pg_strong_random is a fixed
 * sequence the test can restart.
 *
 * Every check compares the index with a plain reference model, a sorted
 * array of keys, values and offsets, walked in order and probed with
 * look-ups and seeks.
 *
 * Prints TAP ("ok N - ...", then "1..N") and exits non-zero on failure.
 * Run it under valgrind with "make -C test/unit valgrind".
 *
 * IDENTIFICATION
 *		  test/unit/test_index.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <stdio.h>
#include <stdlib.h>

#include "common/hashfn.h"
#include "utils/memutils.h"

#include "index.c"

/* ---- dsa_area stand-in over malloc ---- */

#define BLOCK_MAGIC		UINT64CONST(0x6b7673746f726521)

struct dsa_area
{
	size_t		used;			/* bytes held for allocations not freed */
	size_t		requested;		/* bytes asked for by those allocations */
	size_t		limit;			/* budget: allocations beyond it fail */
	long		live;			/* allocations not freed */
	long		fail_in;		/* fail the allocation after this many more
								 * succeed; -1: never */
	size_t		fail_size;		/* fail every allocation of this size; 0:
								 * none */
};

typedef struct Block
{
	uint64		magic;
	size_t		size;			/* bytes asked for */
	size_t		held;			/* bytes the area would hold */
	size_t		pad;
	/* payload follows, 16-byte aligned */
} Block;

#if PG_VERSION_NUM >= 180000
pg_noreturn static void fatal(const char *what);
#else
static void fatal(const char *what) pg_attribute_noreturn();
#endif

static void
fatal(const char *what)
{
	printf("Bail out! %s\n", what);
	fflush(stdout);
	abort();
}

static Block *
block_of(dsa_pointer dp)
{
	Block	   *b;

	if (!DsaPointerIsValid(dp))
		fatal("use of InvalidDsaPointer");
	b = (Block *) ((char *) (uintptr_t) dp - sizeof(Block));
	if (b->magic != BLOCK_MAGIC)
		fatal("dsa_pointer to something not allocated");
	return b;
}

/* What the area holds for a request: a size class, or whole pages */
static size_t
area_rounding(size_t size)
{
	size_t		step;

	if (size > 8192)
		return TYPEALIGN(4096, size);
	if (size <= 64)
		return TYPEALIGN(8, size);
	/* four classes per doubling: 80, 96, 112, 128, 160, ... 8192 */
	step = pg_nextpower2_64(size) / 8;
	return TYPEALIGN(step, size);
}

dsa_pointer
dsa_allocate_extended(dsa_area *area, size_t size, int flags)
{
	Block	   *b;
	size_t		held = area_rounding(size);

	if ((flags & DSA_ALLOC_NO_OOM) == 0)
		fatal("allocation without DSA_ALLOC_NO_OOM");
	if (size == 0 || (size > MaxAllocSize && (flags & DSA_ALLOC_HUGE) == 0))
		fatal("invalid allocation size");
	if (area->fail_in == 0)
	{
		area->fail_in = -1;
		return InvalidDsaPointer;
	}
	if (area->fail_in > 0)
		area->fail_in--;
	if (size == area->fail_size)
		return InvalidDsaPointer;
	if (area->used + held > area->limit)
		return InvalidDsaPointer;

	b = malloc(sizeof(Block) + size);
	if (b == NULL)
		fatal("malloc failed");
	if (flags & DSA_ALLOC_ZERO)
		memset(b + 1, 0, size);
	else
		memset(b + 1, 0x7f, size);	/* catch reliance on zeroed memory */
	b->magic = BLOCK_MAGIC;
	b->size = size;
	b->held = held;
	area->used += held;
	area->requested += size;
	area->live++;
	return (dsa_pointer) (uintptr_t) (b + 1);
}

void
dsa_free(dsa_area *area, dsa_pointer dp)
{
	Block	   *b = block_of(dp);

	area->used -= b->held;
	area->requested -= b->size;
	area->live--;
	b->magic = 0;
	free(b);
}

/* A dsa_pointer may point inside an allocation, as with the real area */
void *
dsa_get_address(dsa_area *area, dsa_pointer dp)
{
	if (!DsaPointerIsValid(dp))
		fatal("use of InvalidDsaPointer");
	return (void *) (uintptr_t) dp;
}

/* Assert() in index.c, compiled with USE_ASSERT_CHECKING */
#if PG_VERSION_NUM >= 160000
void
ExceptionalCondition(const char *conditionName,
					 const char *fileName, int lineNumber)
{
	printf("Bail out! Assert(\"%s\") failed at %s:%d\n",
		   conditionName, fileName, lineNumber);
	fflush(stdout);
	abort();
}
#else
void
ExceptionalCondition(const char *conditionName, const char *errorType,
					 const char *fileName, int lineNumber)
{
	printf("Bail out! %s(\"%s\") failed at %s:%d\n",
		   errorType, conditionName, fileName, lineNumber);
	fflush(stdout);
	abort();
}
#endif

/* elog(ERROR) in index.c: never expected here */
bool
errstart_cold(int elevel, const char *domain)
{
	fatal("elog called");
}

bool
errstart(int elevel, const char *domain)
{
	fatal("elog called");
}

void
errfinish(const char *filename, int lineno, const char *funcname)
{
}

int
errmsg_internal(const char *fmt,...)
{
	return 0;
}

/* The random source of hash keys: a fixed sequence, restartable */
static uint64 random_state = 1;
static long random_calls = 0;

bool
pg_strong_random(void *buf, size_t len)
{
	unsigned char *p = buf;

	random_calls++;
	for (size_t i = 0; i < len; i++)
	{
		/* splitmix64, one byte of each output */
		uint64		z = (random_state += UINT64CONST(0x9E3779B97F4A7C15));

		z = (z ^ (z >> 30)) * UINT64CONST(0xBF58476D1CE4E5B9);
		z = (z ^ (z >> 27)) * UINT64CONST(0x94D049BB133111EB);
		p[i] = (unsigned char) (z ^ (z >> 31));
	}
	return true;
}

/* ---- TAP ---- */

static int	tests = 0;
static int	failures = 0;

static bool
check(bool ok, const char *what)
{
	tests++;
	if (!ok)
		failures++;
	printf("%s %d - %s\n", ok ? "ok" : "not ok", tests, what);
	fflush(stdout);
	return ok;
}

/* ---- reference model: a sorted array ---- */

typedef struct Pair
{
	char	   *key;
	uint32		keylen;
	char	   *value;
	uint32		vallen;
	int64		offset;
} Pair;

static Pair *model = NULL;
static int	nmodel = 0;
static int	model_size = 0;

static int
keycmp(const char *a, uint32 alen, const char *b, uint32 blen)
{
	int			c = memcmp(a, b, Min(alen, blen));

	return c != 0 ? c : (alen > blen) - (alen < blen);
}

static char *
copy(const char *bytes, uint32 len)
{
	char	   *p = malloc(len + 1);

	if (p == NULL)
		fatal("malloc failed");
	if (len > 0)
		memcpy(p, bytes, len);
	return p;
}

/* First position whose key is >= key (inclusive) or > key */
static int
model_bound(const char *key, uint32 keylen, bool inclusive)
{
	int			lo = 0,
				hi = nmodel;

	while (lo < hi)
	{
		int			mid = (lo + hi) / 2;
		int			c = keycmp(model[mid].key, model[mid].keylen, key, keylen);

		if (c < 0 || (c == 0 && !inclusive))
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static void
model_apply(const KvRecord *rec, int64 offset)
{
	int			i = model_bound(rec->key, rec->keylen, true);
	bool		found = i < nmodel &&
		keycmp(model[i].key, model[i].keylen, rec->key, rec->keylen) == 0;

	if (rec->tombstone)
	{
		if (found)
		{
			free(model[i].key);
			free(model[i].value);
			memmove(&model[i], &model[i + 1], sizeof(Pair) * (nmodel - i - 1));
			nmodel--;
		}
		return;
	}
	if (!found)
	{
		if (nmodel == model_size)
		{
			model_size = model_size ? model_size * 2 : 64;
			model = realloc(model, sizeof(Pair) * model_size);
			if (model == NULL)
				fatal("malloc failed");
		}
		memmove(&model[i + 1], &model[i], sizeof(Pair) * (nmodel - i));
		nmodel++;
		model[i].key = copy(rec->key, rec->keylen);
		model[i].keylen = rec->keylen;
	}
	else
		free(model[i].value);
	model[i].value = copy(rec->value, rec->vallen);
	model[i].vallen = rec->vallen;
	model[i].offset = offset;
}

static void
model_clear(void)
{
	for (int i = 0; i < nmodel; i++)
	{
		free(model[i].key);
		free(model[i].value);
	}
	nmodel = 0;
}

static bool
view_is(const KvEntryView *v, const Pair *p)
{
	return v->keylen == p->keylen && memcmp(v->key, p->key, p->keylen) == 0 &&
		v->vallen == p->vallen && v->value != NULL &&
		memcmp(v->value, p->value, p->vallen) == 0 && v->offset == p->offset;
}

/*
 * The skip list is the one its keys and their levels make, whatever the
 * order of the writes: each level in use lists, in ascending order,
 * exactly the entries taller than it, the top one is not empty, each
 * entry has the level of its hash; and the finger, if any, holds at each
 * level the last entry at or before the key inserted last
 */
static bool
skiplist_is_sound(dsa_area *area, KvIndex *index)
{
	KvEntry    *last = index->finger[0] == 0 ? NULL :
		entry_at(area, index, index->finger[0]);
	uint64		taller[KV_SKIPLIST_MAXLEVEL] = {0};

	if (index->level > 0 && index->head[index->level - 1] == 0)
	{
		printf("# level %d in use is empty\n", index->level);
		return false;
	}
	for (KvRef r = index->head[0]; r != 0; r = entry_at(area, index, r)->next[0])
	{
		KvEntry    *e = entry_at(area, index, r);

		if (e->level > index->level ||
			e->level != hash_level(key_hash(index, entry_key(e), e->keylen)))
		{
			printf("# an entry has level %d, the index %d\n", e->level, index->level);
			return false;
		}
		for (int i = 0; i < e->level; i++)
			taller[i]++;
	}
	for (int i = 0; i < index->level; i++)
	{
		uint64		listed = 0;
		KvEntry    *prev = NULL;
		bool		met = index->finger[i] == 0;

		for (KvRef r = index->head[i]; r != 0; r = entry_at(area, index, r)->next[i])
		{
			KvEntry    *e = entry_at(area, index, r);

			if (e->level <= i || (prev != NULL &&
								  key_compare(entry_key(prev), prev->keylen,
											  entry_key(e), e->keylen) >= 0))
			{
				printf("# level %d out of order\n", i);
				return false;
			}
			prev = e;
			listed++;
			met = met || r == index->finger[i];
		}
		if (last != NULL && !met)
		{
			printf("# the finger holds an entry not in level %d\n", i);
			return false;
		}
		if (listed != taller[i])
		{
			printf("# level %d lists %llu entries of %llu\n", i,
				   (unsigned long long) listed, (unsigned long long) taller[i]);
			return false;
		}
		if (last != NULL)
		{
			KvRef		f = index->finger[i];
			KvEntry    *fe = f == 0 ? NULL : entry_at(area, index, f);
			KvRef		n = f == 0 ? index->head[i] : fe->next[i];
			KvEntry    *ne = n == 0 ? NULL : entry_at(area, index, n);

			if ((fe != NULL && (fe->level <= i ||
								key_compare(entry_key(fe), fe->keylen,
											entry_key(last), last->keylen) > 0)) ||
				(ne != NULL && key_compare(entry_key(ne), ne->keylen,
										   entry_key(last), last->keylen) <= 0))
			{
				printf("# the finger is wrong at level %d\n", i);
				return false;
			}
		}
	}
	return true;
}

/*
 * The index holds exactly the model: walked in order, every entry matches,
 * every key is found by look-up at the same entry, and the accounting is
 * exact.
 */
static bool
same_as_model(dsa_area *area, KvIndex *index)
{
	dsa_pointer p = KvIndexSeek(area, index, NULL, 0, true);
	int			i = 0;

	for (; DsaPointerIsValid(p); p = KvIndexNext(area, index, p), i++)
	{
		KvEntryView v;
		KvEntryView l;

		KvIndexView(area, p, &v);
		if (i >= nmodel || !view_is(&v, &model[i]))
		{
			printf("# entry %d differs from the model\n", i);
			return false;
		}
		if (!KvIndexLookup(area, index, v.key, v.keylen, &l) ||
			l.key != v.key || l.value != v.value || !view_is(&l, &model[i]))
		{
			printf("# look-up of entry %d differs\n", i);
			return false;
		}
	}
	if (!skiplist_is_sound(area, index))
		return false;
	if (i != nmodel || index->nkeys != (uint64) nmodel)
	{
		printf("# %d entries walked, %llu counted, %d in the model\n",
			   i, (unsigned long long) index->nkeys, nmodel);
		return false;
	}
	if (index->bytes != area->used || area->requested != area->used)
	{
		printf("# index->bytes %llu, held by the area %zu, requested %zu\n",
			   (unsigned long long) index->bytes, area->used, area->requested);
		return false;
	}
	if ((nmodel == 0) != (index->nbuckets == 0) ||
		(nmodel > 0 && (uint64) nmodel > index->nbuckets * (uint64) 2))
	{
		printf("# %u buckets for %d keys\n", index->nbuckets, nmodel);
		return false;
	}
	return true;
}

/* A seek lands where the model says it should */
static bool
seek_matches(dsa_area *area, KvIndex *index, const char *key, uint32 keylen,
			 bool inclusive)
{
	dsa_pointer p = KvIndexSeek(area, index, key, keylen, inclusive);
	int			i = model_bound(key, keylen, inclusive);
	KvEntryView v;

	if (i == nmodel)
		return !DsaPointerIsValid(p);
	if (!DsaPointerIsValid(p))
		return false;
	KvIndexView(area, p, &v);
	return view_is(&v, &model[i]);
}

/* A backward seek lands where the model says it should */
static bool
seek_before_matches(dsa_area *area, KvIndex *index, const char *key,
					uint32 keylen, bool inclusive)
{
	dsa_pointer p = KvIndexSeekBefore(area, index, key, keylen, inclusive);
	int			i = (key == NULL ? nmodel : model_bound(key, keylen, !inclusive)) - 1;
	KvEntryView v;

	if (i < 0)
		return !DsaPointerIsValid(p);
	if (!DsaPointerIsValid(p))
		return false;
	KvIndexView(area, p, &v);
	return view_is(&v, &model[i]);
}

/* ---- helpers ---- */

static KvRecord
put(const char *key, uint32 keylen, const char *value, uint32 vallen)
{
	KvRecord	r;

	r.key = key;
	r.keylen = keylen;
	r.value = value;
	r.vallen = vallen;
	r.tombstone = false;
	r.timestamp = -1;
	return r;
}

static KvRecord
del(const char *key, uint32 keylen)
{
	KvRecord	r;

	r.key = key;
	r.keylen = keylen;
	r.value = NULL;
	r.vallen = 0;
	r.tombstone = true;
	r.timestamp = -1;
	return r;
}

/* Apply to the index and, if it succeeds, to the model */
static bool
apply(dsa_area *area, KvIndex *index, KvRecord r, int64 offset)
{
	bool		ok = KvIndexApply(area, index, &r, offset);

	if (ok)
		model_apply(&r, offset);
	return ok;
}

static uint64 rng_state = 88172645463325252ULL;

static uint32
rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (uint32) (rng_state >> 32);
}

/* A random key over a few bytes that stress unsigned order and NULs */
static uint32
random_key(char *key, uint32 maxlen)
{
	static const char alphabet[] = {'\x00', '\x01', 'a', '\x7f', '\x80', '\xff'};
	uint32		len = 1 + rng() % maxlen;

	for (uint32 j = 0; j < len; j++)
		key[j] = alphabet[rng() % sizeof(alphabet)];
	return len;
}

/* A random value: usually short, sometimes empty, now and then large */
static uint32
random_value(char *value)
{
	uint32		r = rng() % 100;
	uint32		len = r < 10 ? 0 : r < 95 ? rng() % 48 : rng() % 5000;

	for (uint32 j = 0; j < len; j++)
		value[j] = (char) rng();
	return len;
}

typedef struct IndexSnapshot
{
	uint64		nkeys;
	uint64		bytes;
	uint32		nbuckets;
	uint32		nchunks;
	uint32		chunks_live;
	uint32		old_nbuckets;
	uint32		moved;
	int			level;
	size_t		used;
	long		live;
} IndexSnapshot;

static IndexSnapshot
snapshot(dsa_area *area, KvIndex *index)
{
	IndexSnapshot	s;

	s.nkeys = index->nkeys;
	s.bytes = index->bytes;
	s.nbuckets = index->nbuckets;
	s.nchunks = index->nchunks;
	s.chunks_live = index->chunks_live;
	s.old_nbuckets = index->old_nbuckets;
	s.moved = index->moved;
	s.level = index->level;
	s.used = area->used;
	s.live = area->live;
	return s;
}

static bool
unchanged(dsa_area *area, KvIndex *index, IndexSnapshot s)
{
	IndexSnapshot	t = snapshot(area, index);

	if (s.nkeys != t.nkeys || s.bytes != t.bytes || s.nbuckets != t.nbuckets ||
		s.nchunks != t.nchunks || s.chunks_live != t.chunks_live ||
		s.old_nbuckets != t.old_nbuckets || s.moved != t.moved ||
		s.level != t.level || s.used != t.used || s.live != t.live)
	{
		printf("# the index changed\n");
		return false;
	}
	return same_as_model(area, index);
}

/* ---- the tests ---- */

static void
test_basics(dsa_area *area, KvIndex *index)
{
	KvEntryView v;
	KvEntryView w;
	dsa_pointer p;
	uint64		bytes;

	KvIndexInit(index);
	check(area->used == 0 && index->bytes == 0 && index->nkeys == 0 &&
		  !KvIndexLookup(area, index, "k", 1, &v) &&
		  !DsaPointerIsValid(KvIndexSeek(area, index, NULL, 0, true)) &&
		  !DsaPointerIsValid(KvIndexSeek(area, index, "k", 1, true)),
		  "a new index is empty and allocates nothing");
	check(apply(area, index, del("k", 1), 0) && area->used == 0,
		  "deleting from an empty index is a no-op");

	check(apply(area, index, put("k", 1, "v1", 2), 7), "put into an empty index");
	check(KvIndexLookup(area, index, "k", 1, &v) && v.vallen == 2 &&
		  memcmp(v.value, "v1", 2) == 0 && v.offset == 7 && v.keylen == 1 &&
		  v.key[0] == 'k', "look-up finds the value and its offset");
	p = KvIndexSeek(area, index, NULL, 0, true);
	KvIndexView(area, p, &w);
	check(w.key == v.key && w.value == v.value && w.offset == 7 &&
		  !DsaPointerIsValid(KvIndexNext(area, index, p)),
		  "view of the only entry matches the look-up");
	check(!KvIndexLookup(area, index, "K", 1, &v) &&
		  !KvIndexLookup(area, index, "k\0", 2, &v) &&
		  !KvIndexLookup(area, index, "kk", 2, &v),
		  "other keys are absent");

	bytes = index->bytes;
	check(apply(area, index, put("k", 1, "a much longer value", 19), 8) &&
		  KvIndexLookup(area, index, "k", 1, &v) && v.vallen == 19 &&
		  memcmp(v.value, "a much longer value", 19) == 0 && v.offset == 8 &&
		  index->nkeys == 1 && index->bytes == area->used,
		  "a longer value replaces the old one");
	bytes = index->bytes;
	check(apply(area, index, put("k", 1, "short", 5), 9) &&
		  KvIndexLookup(area, index, "k", 1, &w) && w.vallen == 5 &&
		  memcmp(w.value, "short", 5) == 0 && w.offset == 9 &&
		  index->bytes == bytes && w.value == v.value,
		  "a shorter value is written in place");
	check(apply(area, index, put("k", 1, "", 0), 10) &&
		  KvIndexLookup(area, index, "k", 1, &v) && v.vallen == 0 &&
		  v.value != NULL && v.offset == 10 && index->nkeys == 1,
		  "an empty value is a value, not an absent key");
	check(apply(area, index, del("k", 1), 11) &&
		  !KvIndexLookup(area, index, "k", 1, &v) && index->nkeys == 0,
		  "a tombstone deletes the key");
	check(index->bytes == 0 && area->used == 0 && area->live == 0 &&
		  index->nbuckets == 0 && index->level == 0,
		  "deleting the last key frees everything");
	check(apply(area, index, del("k", 1), 12) && index->nkeys == 0,
		  "deleting an absent key is a no-op");

	/* NUL bytes */
	check(apply(area, index, put("a\0b", 3, "\0x\0", 3), 1) &&
		  apply(area, index, put("a\0c", 3, "2", 1), 2) &&
		  apply(area, index, put("a", 1, "", 0), 3) &&
		  apply(area, index, put("a\0", 2, "4", 1), 4) &&
		  KvIndexLookup(area, index, "a\0b", 3, &v) && v.vallen == 3 &&
		  memcmp(v.value, "\0x\0", 3) == 0 &&
		  KvIndexLookup(area, index, "a\0", 2, &v) && v.offset == 4 &&
		  !KvIndexLookup(area, index, "a\0\0", 3, &v) &&
		  same_as_model(area, index),
		  "keys and values with NUL bytes are distinct and exact");
	check(apply(area, index, del("a\0", 2), 5) &&
		  KvIndexLookup(area, index, "a", 1, &v) &&
		  KvIndexLookup(area, index, "a\0b", 3, &v) &&
		  same_as_model(area, index),
		  "deleting a key leaves the keys it prefixes");
	KvIndexClear(area, index);
	model_clear();
	check(index->bytes == 0 && area->used == 0 && area->live == 0 &&
		  index->nkeys == 0 && !KvIndexLookup(area, index, "a", 1, &v) &&
		  !DsaPointerIsValid(KvIndexSeek(area, index, NULL, 0, true)),
		  "clear frees everything");
	check(apply(area, index, put("again", 5, "x", 1), 1) &&
		  same_as_model(area, index),
		  "the index works after clear");
	KvIndexClear(area, index);
	model_clear();
}

/* Keys inserted in the given order come back sorted as expected */
static bool
order_is(dsa_area *area, KvIndex *index, const char **keys,
		 const uint32 *lens, int n)
{
	dsa_pointer p;
	bool		ok = true;

	for (int i = n - 1; i >= 0; i--)
		ok = ok && apply(area, index, put(keys[i], lens[i], "v", 1), i);
	p = KvIndexSeek(area, index, NULL, 0, true);
	for (int i = 0; i < n; i++)
	{
		KvEntryView v;

		if (!DsaPointerIsValid(p))
			return false;
		KvIndexView(area, p, &v);
		ok = ok && v.keylen == lens[i] && memcmp(v.key, keys[i], lens[i]) == 0;
		p = KvIndexNext(area, index, p);
	}
	return ok && !DsaPointerIsValid(p) && same_as_model(area, index);
}

static void
test_order(dsa_area *area, KvIndex *index)
{
	const char *users[] = {"user:1", "user:10", "user:2"};
	uint32		user_lens[] = {6, 7, 6};
	const char *bytes[] = {"\x61", "\x61\xff", "\x61\xff\x00", "\x61\xff\xff", "\x62"};
	uint32		byte_lens[] = {1, 2, 3, 3, 1};
	KvEntryView v;
	dsa_pointer p;

	check(order_is(area, index, users, user_lens, 3),
		  "'user:1' < 'user:10' < 'user:2'");
	KvIndexClear(area, index);
	model_clear();

	check(order_is(area, index, bytes, byte_lens, 5),
		  "'\\x61' < '\\x61ff' < '\\x61ff00' < '\\x61ffff' < '\\x62', unsigned");

	p = KvIndexSeek(area, index, "\x61\xff", 2, true);
	KvIndexView(area, p, &v);
	check(v.keylen == 2 && memcmp(v.key, "\x61\xff", 2) == 0,
		  "inclusive seek to a present key lands on it");
	p = KvIndexSeek(area, index, "\x61\xff", 2, false);
	KvIndexView(area, p, &v);
	check(v.keylen == 3 && memcmp(v.key, "\x61\xff\x00", 3) == 0,
		  "exclusive seek to a present key lands after it");
	p = KvIndexSeek(area, index, "\x61\xff\x00\x00", 4, true);
	KvIndexView(area, p, &v);
	check(v.keylen == 3 && memcmp(v.key, "\x61\xff\xff", 3) == 0,
		  "inclusive seek to an absent key lands on the next one");
	p = KvIndexSeek(area, index, "\x61\xff\x00\x00", 4, false);
	KvIndexView(area, p, &v);
	check(v.keylen == 3 && memcmp(v.key, "\x61\xff\xff", 3) == 0,
		  "exclusive seek to an absent key lands on the next one");
	p = KvIndexSeek(area, index, "", 0, true);
	KvIndexView(area, p, &v);
	check(v.keylen == 1 && v.key[0] == 0x61,
		  "seek to the empty key lands on the first");
	p = KvIndexSeek(area, index, "\x62", 1, false);
	check(!DsaPointerIsValid(p) &&
		  !DsaPointerIsValid(KvIndexSeek(area, index, "\xff", 1, true)),
		  "seek past the last key finds nothing");
	check(seek_before_matches(area, index, NULL, 0, true) &&
		  seek_before_matches(area, index, "\x61\xff", 2, true) &&
		  seek_before_matches(area, index, "\x61\xff", 2, false) &&
		  seek_before_matches(area, index, "\x61\xff\x00\x00", 4, false) &&
		  seek_before_matches(area, index, "\x61", 1, false) &&
		  seek_before_matches(area, index, "", 0, true) &&
		  seek_before_matches(area, index, "\xff", 1, false),
		  "backward seeks land on the last key before, or find nothing");
	KvIndexClear(area, index);
	model_clear();
}

static void
test_growth(dsa_area *area, KvIndex *index)
{
	const int	n = 100000;
	char		key[32];
	char		value[64];
	bool		ok = true;
	uint32		nbuckets_seen = 0;
	int			rehashes = 0;

	for (int i = 0; i < n; i++)
	{
		uint32		len = snprintf(key, sizeof(key), "key:%d", (i * 7919) % n);
		uint32		vlen = snprintf(value, sizeof(value), "value %d", i);
		KvRecord	r = put(key, len, value, vlen);

		ok = ok && KvIndexApply(area, index, &r, i);
		if (index->nbuckets != nbuckets_seen)
		{
			rehashes++;
			nbuckets_seen = index->nbuckets;
		}
		ok = ok && index->nkeys <= index->nbuckets;
	}
	check(ok && index->nkeys == (uint64) n && index->nbuckets == 131072 &&
		  rehashes == 8,
		  "100,000 keys: the table doubled 7 times, never more keys than buckets");
	check(index->bytes == area->used, "bytes counts every allocation");
	check(index->level >= 6 && index->level <= 14,
		  "the skip list has about log4(n) levels");

	ok = true;
	for (int i = 0; i < n; i++)
	{
		KvEntryView v;
		int			j = (i * 7919) % n;
		uint32		len = snprintf(key, sizeof(key), "key:%d", j);
		uint32		vlen = snprintf(value, sizeof(value), "value %d", i);

		ok = ok && KvIndexLookup(area, index, key, len, &v) &&
			v.vallen == vlen && memcmp(v.value, value, vlen) == 0 &&
			v.offset == i;
		len = snprintf(key, sizeof(key), "key:%d", n + i);
		ok = ok && !KvIndexLookup(area, index, key, len, &v);
	}
	check(ok, "every key is found after growing, no other");

	{
		dsa_pointer p = KvIndexSeek(area, index, NULL, 0, true);
		KvEntryView prev = {0};
		int			count = 0;

		ok = true;
		for (; DsaPointerIsValid(p); p = KvIndexNext(area, index, p), count++)
		{
			KvEntryView v;

			KvIndexView(area, p, &v);
			ok = ok && (count == 0 ||
						keycmp(prev.key, prev.keylen, v.key, v.keylen) < 0);
			prev = v;
		}
		check(ok && count == n, "a full walk returns every key once, in order");
	}

	ok = true;
	for (int i = 0; i < n; i++)
	{
		uint32		len = snprintf(key, sizeof(key), "key:%d", i);

		KvRecord	r = del(key, len);

		ok = ok && KvIndexApply(area, index, &r, n + i);
	}
	check(ok && index->nkeys == 0 && index->bytes == 0 && area->used == 0 &&
		  area->live == 0 &&
		  !DsaPointerIsValid(KvIndexSeek(area, index, NULL, 0, true)),
		  "deleting every key brings bytes back to 0");
}

/*
 * A doubling table moves over a few chains per record: while it does, keys
 * in either table are found, inserted and deleted, and both tables count
 */
static void
test_doubling(dsa_area *area, KvIndex *index)
{
	char		key[32];
	bool		ok = true;
	int			applies = 0;

	for (int i = 0; i < 1025; i++)
	{
		uint32		len = snprintf(key, sizeof(key), "key:%d", i);

		apply(area, index, put(key, len, key, len), i);
	}
	check(index->nbuckets == 2048 && index->old_nbuckets == 1024 &&
		  index->moved <= KV_MOVE_STEP &&
		  index->bytes == area->used && same_as_model(area, index),
		  "the 1025th key starts doubling the table: both tables, every key found");

	while (index->old_nbuckets != 0 && ok)
	{
		uint32		len = snprintf(key, sizeof(key), "key:%d", (applies * 37) % 1025);
		uint32		moved = index->moved;

		if (applies % 3 == 0)
			ok = apply(area, index, del(key, len), 2000 + applies);
		else
		{
			len = snprintf(key, sizeof(key), "new:%d", applies);
			ok = apply(area, index, put(key, len, "v", 1), 2000 + applies);
		}
		ok = ok && (index->old_nbuckets == 0 || index->moved == moved + KV_MOVE_STEP) &&
			same_as_model(area, index);
		applies++;
	}
	check(ok && applies <= 1024 / KV_MOVE_STEP && index->bytes == area->used,
		  "puts and deletes meanwhile find their keys, each moving a few chains, until the old table is freed");
	KvIndexClear(area, index);
	model_clear();
}

/*
 * A replay's table made at once: never doubled while its records apply,
 * bounded by the limits, and only for an empty index.  Prefetching on
 * the way changes nothing.
 */
static void
test_reserve(dsa_area *area, KvIndex *index)
{
	char		key[32];
	bool		ok = true;

	KvIndexReserve(area, index, 5000);
	check(index->nbuckets == 8192 && index->old_nbuckets == 0 &&
		  index->bytes == 8192 * sizeof(KvRef) && index->bytes == area->used,
		  "a reserve makes the table for its records at once, counted");
	for (int i = 0; i < 5000 && ok; i++)
	{
		uint32		len = snprintf(key, sizeof(key), "key:%d", i);
		uint32		ahead = snprintf(key + 16, 16, "key:%d", i + 8);
		uint64		hash = KvIndexHash(index, key, len);
		KvRecord	r = put(key, len, key, len);

		KvIndexPrefetch(area, index, KvIndexHash(index, key + 16, ahead), false);
		KvIndexPrefetch(area, index, hash, true);
		ok = KvIndexApplyHashed(area, index, &r, i, hash) &&
			index->nbuckets == 8192 && index->old_nbuckets == 0;
		if (ok)
			model_apply(&r, i);
	}
	check(ok && same_as_model(area, index) && index->bytes == area->used,
		  "5000 keys apply without a doubling, every key found");
	KvIndexReserve(area, index, 100000);
	check(index->nbuckets == 8192 && index->bytes == area->used,
		  "a reserve leaves the table of an index that has keys");
	KvIndexClear(area, index);
	model_clear();

	index->limit = 1024 * 1024;
	KvIndexReserve(area, index, 10000000);
	check(index->nbuckets * sizeof(KvRef) <= index->limit / 16 &&
		  index->nbuckets > 1024 && index->bytes == area->used,
		  "a reserve takes at most a sixteenth of the index's limit");
	KvIndexClear(area, index);
	index->limit = 64 * 1024;
	KvIndexReserve(area, index, 10000000);
	check(index->nbuckets == 0 && index->bytes == 0,
		  "a limit too small for more than the first table gets no reserve");
	index->limit = 0;
	KvIndexReserve(area, index, 1000);
	check(index->nbuckets == 0 && area->used == 0,
		  "a small replay makes its table with its first key, as usual");
}

static void
test_large(dsa_area *area, KvIndex *index)
{
	uint32		len = 1000000;
	char	   *big = malloc(len);
	KvEntryView v;
	uint64		bytes;

	for (uint32 i = 0; i < len; i++)
		big[i] = (char) (i * 31);
	check(apply(area, index, put(big, len, big, len), 1) &&
		  apply(area, index, put(big, len - 1, "x", 1), 2) &&
		  KvIndexLookup(area, index, big, len, &v) && v.vallen == len &&
		  memcmp(v.value, big, len) == 0 && same_as_model(area, index),
		  "a 1MB key with a 1MB value");
	check(seek_matches(area, index, big, len - 1, true) &&
		  seek_matches(area, index, big, len - 1, false) &&
		  seek_matches(area, index, big, len, false) &&
		  seek_matches(area, index, big, len - 2, false),
		  "seeks among long keys sharing a prefix");

	check(apply(area, index, put("big", 3, big, len), 3), "a 1MB value");
	bytes = index->bytes;
	check(apply(area, index, put("big", 3, big, len / 2 + 5000), 4) &&
		  index->bytes == bytes && same_as_model(area, index),
		  "a value shrinking to about half its size stays in place");
	check(apply(area, index, put("big", 3, "small", 5), 5) &&
		  index->bytes < bytes - len / 2 && same_as_model(area, index),
		  "a value shrinking further moves to a smaller slot");
	check(apply(area, index, put("big", 3, big, len), 6) &&
		  index->bytes == bytes && same_as_model(area, index),
		  "and grows back to a large one");
	KvIndexClear(area, index);
	model_clear();
	check(area->used == 0 && area->live == 0, "clear frees large entries");
	free(big);
}

static void
test_random(dsa_area *area, KvIndex *index)
{
	char		key[8];
	char		value[5000];
	bool		ok = true;
	int			seeks = 0;

	for (int i = 0; i < 200000 && ok; i++)
	{
		uint32		keylen = random_key(key, 4);
		KvRecord	r;

		if (rng() % 4 == 0)
			r = del(key, keylen);
		else
			r = put(key, keylen, value, random_value(value));
		ok = apply(area, index, r, i) && index->bytes == area->used &&
			index->nkeys == (uint64) nmodel;
		if (i % 1000 == 0)
			ok = ok && same_as_model(area, index);
		if (i % 10 == 0)
		{
			keylen = random_key(key, 5);
			ok = ok && seek_matches(area, index, key, keylen, true) &&
				seek_matches(area, index, key, keylen, false) &&
				seek_before_matches(area, index, key, keylen, true) &&
				seek_before_matches(area, index, key, keylen, false);
			seeks += 2;
		}
	}
	check(ok && same_as_model(area, index),
		  "200,000 random puts and deletes match the model");
	check(ok && seeks == 40000, "40,000 random seeks match the model");
	KvIndexClear(area, index);
	model_clear();
}

/*
 * Keys in ascending order, as a replay of a log written in key order
 * brings them, go in from the finger; keys just past the last, far past
 * it, before it, deleted or moved while the finger holds them, all leave
 * the skip list the one a walk from the top builds
 */
static void
test_finger(dsa_area *area, KvIndex *index)
{
	char		key[32];
	char		value[5000];
	bool		ok = true;
	KvEntry    *last;
	int			i;

	for (i = 0; i < 100000 && ok; i++)
	{
		snprintf(key, sizeof(key), "key-%08d", i * 10);
		ok = apply(area, index, put(key, 12, "v", 1), i);
	}
	last = entry_at(area, index, index->finger[0]);
	check(ok && same_as_model(area, index) && last->keylen == 12 &&
		  memcmp(entry_key(last), "key-00999990", 12) == 0,
		  "100,000 keys in ascending order: the finger holds the last one");
	KvIndexClear(area, index);
	model_clear();

	/* Runs upwards from random places, between and past the keys there */
	for (i = 0; i < 2000 && ok; i++)
	{
		snprintf(key, sizeof(key), "key-%08d", i * 10);
		ok = apply(area, index, put(key, 12, "v", 1), i);
	}
	for (i = 0; i < 40000 && ok; i++)
	{
		uint32		r = rng() % 100;
		int			at = r < 5 || index->finger[0] == 0 ?
			(int) (rng() % 40000) : -1;

		if (at >= 0)
			snprintf(key, sizeof(key), "key-%08d", at);
		else if (r < 90)
		{
			/* Past the key inserted last: near it, or farther */
			last = entry_at(area, index, index->finger[0]);
			memcpy(key, entry_key(last), last->keylen);
			key[last->keylen] = '\0';
			snprintf(key, sizeof(key), "key-%08d",
					 atoi(key + 4) + 1 + (int) (r < 80 ? rng() % 3 : rng() % 2000));
		}
		else if (r < 95)
		{
			/* The key inserted last: a new value that moves, or none */
			last = entry_at(area, index, index->finger[0]);
			memcpy(key, entry_key(last), last->keylen);
			key[last->keylen] = '\0';
			if (r < 93)
			{
				ok = apply(area, index, put(key, 12, value, random_value(value)), i);
				continue;
			}
			ok = apply(area, index, del(key, 12), i);
			if (index->finger[0] != 0)
			{
				printf("# a deleted key is still the finger\n");
				ok = false;
			}
			snprintf(key, sizeof(key), "key-%08d", (int) (rng() % 40000));
		}
		else
		{
			snprintf(key, sizeof(key), "key-%08d", (int) (rng() % 40000));
			ok = apply(area, index, del(key, 12), i);
			continue;
		}
		ok = apply(area, index, put(key, 12, value, random_value(value)), i);
		if (i % 1000 == 0)
			ok = ok && same_as_model(area, index);
	}
	check(ok && same_as_model(area, index),
		  "40,000 puts upwards from random places, moves and deletes match the model");
	KvIndexClear(area, index);
	model_clear();
}

/*
 * Run one operation with the n-th allocation failing, for every n until it
 * succeeds; after each failure the index must be exactly as before.
 * Returns the number of failures seen, or -1 on a mismatch.
 */
static int
apply_with_faults(dsa_area *area, KvIndex *index, KvRecord r, int64 offset)
{
	for (int n = 0; n < 10; n++)
	{
		IndexSnapshot	s = snapshot(area, index);

		area->fail_in = n;
		if (apply(area, index, r, offset))
		{
			area->fail_in = -1;
			return same_as_model(area, index) ? n : -1;
		}
		area->fail_in = -1;
		if (!unchanged(area, index, s))
			return -1;
	}
	return -1;
}

static void
test_out_of_memory(dsa_area *area, KvIndex *index)
{
	char		key[32];
	char		value[20000];
	KvEntryView v;
	IndexSnapshot	s;
	bool		ok;
	int			faults;
	int			count;

	memset(value, 'v', sizeof(value));

	/* The first key needs the bucket array, a chunk and the directory */
	check(apply_with_faults(area, index, put("first", 5, "v", 1), 1) == 3,
		  "first key: any of its three allocations failing leaves the index empty");

	/* Fill to the growth threshold, then fail the doubling */
	for (int i = 1; i < 1024; i++)
	{
		uint32		len = snprintf(key, sizeof(key), "key:%d", i);

		apply(area, index, put(key, len, key, len), i);
	}
	check(index->nkeys == 1024 && index->nbuckets == 1024 &&
		  same_as_model(area, index), "1024 keys fill 1024 buckets");
	area->fail_size = 2048 * sizeof(KvRef);
	ok = apply(area, index, put("one more", 8, "v", 1), 2000);
	area->fail_size = 0;
	check(ok && index->nbuckets == 1024 && index->nkeys == 1025 &&
		  same_as_model(area, index),
		  "a failed doubling still inserts, keeping the old table");
	check(apply(area, index, put("and another", 11, "v", 1), 2001) &&
		  index->nbuckets == 2048 && same_as_model(area, index),
		  "the next insert doubles the table");

	/*
	 * New keys and new values that do not fit, whatever the failure: values
	 * over 8 kB take a chunk of their own, so each of them allocates
	 */
	count = 0;
	ok = true;
	for (int i = 0; i < 200; i++)
	{
		uint32		len = random_key(key, 6);
		uint32		vlen = i % 2 ? random_value(value) : 8200 + rng() % 10000;

		faults = apply_with_faults(area, index, put(key, len, value, vlen), 3000 + i);
		ok = ok && faults >= 0;
		count += faults;
	}
	printf("# %d allocations failed\n", count);
	check(ok && count >= 50,
		  "new keys and new values: every failure leaves the index unchanged");
	KvIndexClear(area, index);
	model_clear();

	/* A shrinking value that finds no room for a smaller slot stays put */
	apply(area, index, put("shrink", 6, value, 10000), 4002);
	KvIndexLookup(area, index, "shrink", 6, &v);
	s = snapshot(area, index);
	area->fail_in = 0;
	ok = apply(area, index, put("shrink", 6, "a tiny value", 12), 4003);
	area->fail_in = -1;
	{
		KvEntryView w;

		check(ok && KvIndexLookup(area, index, "shrink", 6, &w) &&
			  w.vallen == 12 && memcmp(w.value, "a tiny value", 12) == 0 &&
			  w.offset == 4003 && w.value == v.value &&
			  index->bytes == s.bytes && same_as_model(area, index),
			  "a shrinking value that finds no memory stays in its slot");
	}

	/* A growing value that does not fit keeps the old value */
	apply(area, index, put("grow", 4, value, 200), 4004);
	s = snapshot(area, index);
	area->fail_in = 0;
	ok = !apply(area, index, put("grow", 4, value, 10000), 4005);
	area->fail_in = -1;
	check(ok && unchanged(area, index, s) &&
		  KvIndexLookup(area, index, "grow", 4, &v) && v.vallen == 200 &&
		  v.offset == 4004, "a growing value that does not fit is refused");

	/*
	 * A full area: writes that need a new chunk fail, deletes and shrinks
	 * work, and the free slots of the index's own chunks are still used
	 */
	area->limit = area->used;
	s = snapshot(area, index);
	ok = !apply(area, index, put("brand new", 9, value, 3000), 5000) &&
		!apply(area, index, put("grow", 4, value, 2000), 5001);
	check(ok && unchanged(area, index, s),
		  "with the area full, keys needing a new chunk are refused");
	{
		/* A new key whose entry fills a slot of the class "grow" is in */
		int			grow_class = size_class(entry_size(hash_level(key_hash(index, "grow", 4)), 4, 200));
		int			level = hash_level(key_hash(index, "same class", 10));
		uint32		vlen = class_size(grow_class) - entry_size(level, 10, 0);

		check(apply(area, index, put("same class", 10, value, vlen), 5002) &&
			  index->bytes == s.bytes && same_as_model(area, index),
			  "with the area full, a new key still takes a free slot of the index");
	}
	check(apply(area, index, put("grow", 4, "", 0), 5003) &&
		  apply(area, index, del("shrink", 6), 5004) &&
		  apply(area, index, del("absent", 6), 5005) &&
		  index->bytes < s.bytes && same_as_model(area, index),
		  "with the area full, deletes and shrinking values apply");
	check(apply(area, index, put("shrink", 6, value, 10000), 5006) &&
		  same_as_model(area, index),
		  "the room a delete freed can be used again");
	area->limit = (size_t) 1 << 34;
	KvIndexClear(area, index);
	model_clear();

	/* Random operations with random faults */
	ok = true;
	count = 0;
	for (int i = 0; i < 50000 && ok; i++)
	{
		uint32		keylen = random_key(key, 4);
		KvRecord	r;
		IndexSnapshot	before = snapshot(area, index);

		if (rng() % 4 == 0)
			r = del(key, keylen);
		else
			r = put(key, keylen, value,
					rng() % 50 == 0 ? 8200 + rng() % 10000 : random_value(value));
		area->fail_in = rng() % 8 == 0 ? (long) (rng() % 2) : -1;
		if (!apply(area, index, r, 10000 + i))
		{
			ok = unchanged(area, index, before);
			count++;
		}
		area->fail_in = -1;
		ok = ok && index->bytes == area->used && index->nkeys == (uint64) nmodel;
		if (i % 1000 == 0)
			ok = ok && same_as_model(area, index);
	}
	printf("# %d allocations failed\n", count);
	check(ok && count >= 50 && same_as_model(area, index),
		  "50,000 random operations with random faults match the model");

	KvIndexClear(area, index);
	model_clear();
	check(index->bytes == 0 && area->used == 0 && area->live == 0,
		  "clear frees everything again");
}

static void
test_hash(dsa_area *area)
{
	/* SipHash-2-4 vectors of the paper: key 00..0f, messages 00, 00 01, .. */
	uint64		paper_key[2] = {UINT64CONST(0x0706050403020100),
	UINT64CONST(0x0f0e0d0c0b0a0908)};
	char		msg[64];
	KvIndex		a;
	KvIndex		b;
	uint64		key_a[2];
	long		calls = random_calls;

	for (int i = 0; i < 64; i++)
		msg[i] = (char) i;
	check(siphash(paper_key, msg, 0, 2, 4) == UINT64CONST(0x726fdb47dd0e0e31) &&
		  siphash(paper_key, msg, 15, 2, 4) == UINT64CONST(0xa129ca6149be45e5),
		  "SipHash-2-4 gives the paper's test vectors");
	check(siphash(paper_key, msg, 15, 1, 3) != siphash(paper_key, msg, 15, 2, 4) &&
		  siphash(paper_key, msg, 15, 1, 3) != siphash(paper_key, msg, 14, 1, 3) &&
		  siphash(paper_key, msg, 8, 1, 3) != siphash(paper_key, msg, 9, 1, 3),
		  "SipHash-1-3 differs with rounds and length");

	KvIndexInit(&a);
	memcpy(key_a, a.hash_key, sizeof(key_a));
	KvIndexInit(&b);
	check(random_calls == calls + 2 &&
		  memcmp(a.hash_key, b.hash_key, sizeof(key_a)) != 0 &&
		  key_hash(&a, "k", 1) != key_hash(&b, "k", 1),
		  "each index draws its own hash key from pg_strong_random");
	KvIndexClear(area, &a);
	check(memcmp(a.hash_key, key_a, sizeof(key_a)) != 0,
		  "clearing an index draws a new hash key");
}

static void
test_size_classes(void)
{
	bool		ok = true;

	for (Size size = 1; size <= KV_SLOT_MAX; size++)
	{
		int			c = size_class(size);

		ok = ok && c >= 0 && c < KV_INDEX_CLASSES && class_size(c) >= size &&
			class_size(c) % 8 == 0 &&
			(c == 0 || class_size(c - 1) < size) &&
			(size <= 256 ? class_size(c) - size < 8 :
			 (double) (class_size(c) - size) < size / 8.0);
	}
	check(ok && class_size(KV_INDEX_CLASSES - 1) == KV_SLOT_MAX,
		  "size classes: the smallest that fits, multiples of 8, under 1/8 lost");
	ok = true;
	for (int c = 0; c < KV_INDEX_CLASSES; c++)
		ok = ok && (KV_CHUNK_SMALL - KV_CHUNK_HEADER) / class_size(c) >= 1;
	check(ok, "a small chunk holds a slot of every class");
}

/*
 * The allocator holds exactly index->bytes for a mix of entry sizes: slots
 * of every class, entries with chunks of their own, the directory and the
 * table as they grow and shrink.
 */
static void
test_accounting(dsa_area *area, KvIndex *index)
{
	static char value[70000];
	char		key[16];
	bool		ok = true;
	Size		most = 0;

	for (int i = 0; i < 20000 && ok; i++)
	{
		uint32		keylen = snprintf(key, sizeof(key), "k%d", rng() % 3000);
		uint32		r = rng() % 100;
		uint32		vlen = r < 60 ? rng() % 200 : r < 90 ? rng() % 8200 :
			8200 + rng() % 60000;

		if (rng() % 5 == 0)
			ok = apply(area, index, del(key, keylen), i);
		else
			ok = apply(area, index, put(key, keylen, value, vlen), i);
		ok = ok && index->bytes == area->used && area->requested == area->used;
		most = Max(most, index->bytes);
	}
	printf("# at most %zu bytes held for %d keys\n", most, nmodel);
	check(ok && same_as_model(area, index),
		  "accounting: index->bytes is what the allocator holds, for a mix of sizes");
	check(area->requested == area->used,
		  "the allocator rounds none of the index's requests");
	KvIndexClear(area, index);
	model_clear();
}

/* Entries visited by a successful look-up of each key, worst and mean */
static void
chain_lengths(dsa_area *area, KvIndex *index, int *longest, double *mean)
{
	KvRef	   *buckets = dsa_get_address(area, index->buckets);
	uint64		visits = 0;

	*longest = 0;
	for (uint32 b = 0; b < index->nbuckets; b++)
	{
		int			n = 0;

		for (KvRef p = buckets[b]; p != 0; p = entry_at(area, index, p)->hash_next)
			visits += ++n;
		*longest = Max(*longest, n);
	}
	*mean = (double) visits / index->nkeys;
}

/*
 * Keys that all share the low bits of PostgreSQL's unkeyed hash_bytes,
 * and would all fall into one bucket under it, spread under the keyed hash
 */
static void
test_colliding_keys(dsa_area *area, KvIndex *index)
{
	const int	n = 2000;
	char	  (*keys)[16] = malloc(sizeof(*keys) * n);
	uint32	   *lens = malloc(sizeof(uint32) * n);
	bool		same_bucket = true;
	bool		flat = true;

	for (int found = 0, i = 0; found < n; i++)
	{
		uint32		len = snprintf(keys[found], 16, "c%d", i);

		if ((hash_bytes((const unsigned char *) keys[found], len) & 2047) == 0)
			lens[found++] = len;
	}
	for (int i = 0; i < n; i++)
		same_bucket = same_bucket &&
			(hash_bytes((const unsigned char *) keys[i], lens[i]) & 2047) == 0;
	check(same_bucket, "2,000 keys share the low 11 bits of hash_bytes");

	for (int round = 0; round < 3; round++)
	{
		int			longest;
		double		mean;

		KvIndexInit(index);
		for (int i = 0; i < n; i++)
			apply(area, index, put(keys[i], lens[i], "v", 1), i);
		chain_lengths(area, index, &longest, &mean);
		printf("# hash key %d: %u buckets, longest chain %d, %.4f entries per look-up\n",
			   round, index->nbuckets, longest, mean);
		flat = flat && index->nbuckets == 2048 && longest <= 12 && mean <= 2.0 &&
			same_as_model(area, index);
		KvIndexClear(area, index);
		model_clear();
	}
	check(flat, "under three hash keys they spread: no chain over 12, under 2 visits a look-up");
	free(keys);
	free(lens);
}

/*
 * Comparisons a seek to each key makes, walking down the skip list as
 * skiplist_descend does; the worst and the mean
 */
static void
search_costs(dsa_area *area, KvIndex *index, int *worst, double *mean)
{
	uint64		total = 0;

	*worst = 0;
	for (KvRef target = index->head[0]; target != 0;
		 target = entry_at(area, index, target)->next[0])
	{
		KvEntry    *t = entry_at(area, index, target);
		KvRef	   *forward = index->head;
		int			cost = 0;

		for (int i = index->level - 1; i >= 0; i--)
		{
			KvRef		p;

			while ((p = forward[i]) != 0)
			{
				KvEntry    *e = entry_at(area, index, p);

				cost++;
				if (key_compare(entry_key(e), e->keylen,
								entry_key(t), t->keylen) >= 0)
					break;
				forward = e->next;
			}
		}
		total += cost;
		*worst = Max(*worst, cost);
	}
	*mean = (double) total / index->nkeys;
}

/*
 * Keys chosen against the fixed level sequence the index once used: the
 * writes that sequence gave a tall tower get the smallest keys, the others
 * the largest, so under it every key after the towers sits on the bottom
 * level alone and a seek walks them one by one.  With levels from the
 * keyed hash, seeks stay logarithmic.
 */
static void
test_level_attack(dsa_area *area, KvIndex *index)
{
	const int	n = 50000;
	uint32		x = 0x9E3779B9;
	int			tall = 0;
	char		key[16];
	int			worst;
	double		mean;
	uint64		saved[2];
	bool		same = true;

	KvIndexInit(index);
	for (int i = 0; i < n; i++)
	{
		uint32		len;

		/* the old generator: xorshift32, a level more per two zero bits */
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		if ((x & 3) == 0)
		{
			len = snprintf(key, sizeof(key), "a%06d", i);
			tall++;
		}
		else
			len = snprintf(key, sizeof(key), "z%06d", i);
		apply(area, index, put(key, len, "v", 1), i);
	}
	check(n - tall > 30000,
		  "under the old sequence, over 30,000 keys would have sat on the bottom level in one run");
	search_costs(area, index, &worst, &mean);
	printf("# %d levels, seek cost: worst %d comparisons, mean %.1f\n",
		   index->level, worst, mean);
	check(worst <= 150 && mean <= 60 && same_as_model(area, index),
		  "with keyed levels, seeks among them stay logarithmic");

	/* The same keys written in another order get the same levels */
	memcpy(saved, index->hash_key, sizeof(saved));
	{
		KvIndex		other;

		KvIndexInit(&other);
		memcpy(other.hash_key, saved, sizeof(saved));
		for (int i = n - 1; i >= 0; i--)
		{
			KvRecord	r;
			uint32		len = snprintf(key, sizeof(key), "a%06d", i);

			r = put(key, len, "v", 1);
			KvIndexApply(area, &other, &r, i);
			len = snprintf(key, sizeof(key), "z%06d", i);
			r = put(key, len, "v", 1);
			KvIndexApply(area, &other, &r, i);
		}
		for (KvRef p = index->head[0]; p != 0 && same;
			 p = entry_at(area, index, p)->next[0])
		{
			KvEntry    *e = entry_at(area, index, p);
			KvRef	   *slot;
			KvEntry    *o = hash_find(area, &other, entry_key(e), e->keylen,
									  key_hash(&other, entry_key(e), e->keylen),
									  &slot);

			same = o != NULL && o->level == e->level;
		}
		KvIndexClear(area, &other);
	}
	check(same, "a key's level does not depend on the order of writes");
	KvIndexClear(area, index);
	model_clear();
}

/*
 * An index with a limit of its own never holds more; what does not fit is
 * refused with the index unchanged, and KvIndexNeed tells beforehand what
 * a record needs
 */
static void
test_limit(dsa_area *area, KvIndex *index)
{
	char		key[32];
	char		value[20000];
	bool		ok = true;
	int			n = 0;
	IndexSnapshot	s;

	memset(value, 'v', sizeof(value));
	KvIndexInit(index);
	index->limit = 200 * 1024;
	for (;; n++)
	{
		uint32		len = snprintf(key, sizeof(key), "key:%d", n);

		s = snapshot(area, index);
		if (!apply(area, index, put(key, len, value, 100 + n % 40), n))
			break;
		ok = ok && index->bytes <= index->limit;
	}
	check(ok && n > 500 && index->bytes <= index->limit &&
		  unchanged(area, index, s),
		  "an index stops at its limit: the record that does not fit is refused, nothing else changes");
	ok = true;
	for (int i = 0; i < 200; i++)
	{
		uint32		len = snprintf(key, sizeof(key), "key:%d", i);

		ok = ok && apply(area, index, put(key, len, value, 8), n + i) &&
			index->bytes <= index->limit;
	}
	check(ok && same_as_model(area, index),
		  "at the limit, smaller values still apply");

	/* Lowered below what it holds: nothing lost, nothing more taken */
	index->limit = index->bytes / 2;
	s = snapshot(area, index);
	ok = !apply(area, index, put("one more", 8, value, 20000), 1000000) &&
		unchanged(area, index, s);
	check(ok && apply(area, index, del("key:1", 5), 1000001) &&
		  apply(area, index, put("key:2", 5, "", 0), 1000002) &&
		  same_as_model(area, index),
		  "a limit lowered below what the index holds keeps every entry; deletes and shrinks apply");

	/* Raised again: what was refused applies */
	index->limit = 0;
	check(apply(area, index, put("one more", 8, value, 20000), 1000003) &&
		  same_as_model(area, index),
		  "with the limit raised, the refused key applies");
	KvIndexClear(area, index);
	model_clear();
}

/* Bytes of the index's chunks: all it holds but the table and directory */
static uint64
chunk_bytes(KvIndex *index)
{
	return index->bytes - sizeof(KvRef) * (uint64) index->nbuckets -
		sizeof(dsa_pointer) * (uint64) index->nchunks;
}

/*
 * KvIndexPlanRecord counts beforehand what records take: nothing for a
 * tombstone or a value that fits, a free slot where the index has one, a
 * new chunk where it has none; with a limit that leaves the index just
 * what was counted, every record of the batch applies
 */
static void
test_plan(dsa_area *area, KvIndex *index)
{
	char		key[32];
	char		value[20000];
	KvIndexPlan plan;
	KvRecord	r;
	bool		ok = true;
	int			rounds_growing = 0;

	memset(value, 'v', sizeof(value));
	KvIndexInit(index);
	apply(area, index, put("a", 1, value, 100), 1);

	KvIndexPlanInit(&plan);
	r = put("a", 1, value, 90);
	KvIndexPlanRecord(area, index, &r, &plan);
	r = del("a", 1);
	KvIndexPlanRecord(area, index, &r, &plan);
	{
		/* a new key whose entry fills a slot of the class of "a" */
		int			a_class = size_class(entry_size(hash_level(key_hash(index, "a", 1)), 1, 100));
		uint32		vlen = class_size(a_class) -
			entry_size(hash_level(key_hash(index, "z", 1)), 1, 0);

		r = put("z", 1, value, vlen);
		KvIndexPlanRecord(area, index, &r, &plan);
	}
	check(plan.bytes == 0,
		  "a value that fits, a tombstone and a key with a free slot take nothing");
	r = put("a", 1, value, 90);
	KvIndexPlanRecord(area, index, &r, &plan);
	check(plan.bytes == KV_CHUNK_SMALL,
		  "a key the write wrote before counts as a new key");
	KvIndexPlanInit(&plan);
	r = put("b", 1, value, 3000);
	KvIndexPlanRecord(area, index, &r, &plan);
	check(plan.bytes == KV_CHUNK_SMALL, "a key of a class with no chunk takes a chunk");
	r = put("c", 1, value, 3000);
	KvIndexPlanRecord(area, index, &r, &plan);
	check(plan.bytes == KV_CHUNK_SMALL,
		  "the next key of that class takes a slot of the chunk counted");
	r = put("d", 1, value, 20000);
	KvIndexPlanRecord(area, index, &r, &plan);
	check(plan.bytes == KV_CHUNK_SMALL + TYPEALIGN(4096, KV_CHUNK_HEADER + entry_size(hash_level(key_hash(index, "d", 1)), 1, 20000)),
		  "a large key takes a chunk of its own, in whole pages");
	KvIndexClear(area, index);
	model_clear();

	/* Random batches, each under a limit of what was counted */
	for (int round = 0; round < 300 && ok; round++)
	{
		KvRecord	batch[50];
		char		keys[50][8];
		uint64		before;

		index->limit = 0;
		KvIndexPlanInit(&plan);
		for (int i = 0; i < 50; i++)
		{
			uint32		keylen = random_key(keys[i], 4);

			if (rng() % 5 == 0)
				batch[i] = del(keys[i], keylen);
			else
				batch[i] = put(keys[i], keylen, value,
							   rng() % 40 == 0 ? 8200 + rng() % 9000 : random_value(value));
			KvIndexPlanRecord(area, index, &batch[i], &plan);
		}
		before = chunk_bytes(index);
		index->limit = index->bytes + plan.bytes;
		for (int i = 0; i < 50; i++)
		{
			if (!apply(area, index, batch[i], round * 50 + i))
			{
				printf("# round %d, record %d refused: %llu bytes, planned %llu more\n",
					   round, i, (unsigned long long) index->bytes,
					   (unsigned long long) plan.bytes);
				ok = false;
				break;
			}
		}
		if (chunk_bytes(index) > before)
			rounds_growing++;
		(void) key;
	}
	index->limit = 0;
	check(ok && rounds_growing > 20 && same_as_model(area, index),
		  "300 random batches, each under a limit that leaves what was counted: every record applies");
	KvIndexClear(area, index);
	model_clear();
}

/*
 * Two indexes that share a counter of what they hold and a limit on it
 * never hold more together, and give it all back
 */
static void
test_shared_limit(dsa_area *area)
{
	pg_atomic_uint64 held;
	KvIndex		a;
	KvIndex		b;
	char		key[32];
	char		value[300];
	int			na = 0;
	int			nb = 0;
	bool		ok = true;
	bool		a_full = false;
	bool		b_full = false;

	memset(value, 'v', sizeof(value));
	pg_atomic_init_u64(&held, 0);
	KvIndexInit(&a);
	KvIndexInit(&b);
	a.held = b.held = &held;
	a.held_limit = b.held_limit = 1024 * 1024;
	while (ok && !(a_full && b_full))
	{
		KvRecord	r;
		uint32		len;

		len = snprintf(key, sizeof(key), "a%d", na);
		r = put(key, len, value, 200);
		if (!a_full && !(a_full = !KvIndexApply(area, &a, &r, na)))
			na++;
		len = snprintf(key, sizeof(key), "b%d", nb);
		r = put(key, len, value, 250);
		if (!b_full && !(b_full = !KvIndexApply(area, &b, &r, nb)))
			nb++;
		ok = pg_atomic_read_u64(&held) == a.bytes + b.bytes &&
			a.bytes + b.bytes <= 1024 * 1024;
	}
	check(ok && na > 1000 && nb > 1000 && area->used == a.bytes + b.bytes,
		  "indexes that share a limit stop together at it, their counter exact");
	KvIndexClear(area, &a);
	check(pg_atomic_read_u64(&held) == b.bytes && a.held == &held &&
		  a.held_limit == 1024 * 1024,
		  "clearing one gives back what it held, and keeps its limits");
	{
		KvRecord	r = put("a again", 7, value, 200);

		check(KvIndexApply(area, &a, &r, 0) &&
			  pg_atomic_read_u64(&held) == a.bytes + b.bytes,
			  "the room it gave back serves again");
	}
	KvIndexClear(area, &a);
	KvIndexClear(area, &b);
	check(pg_atomic_read_u64(&held) == 0 && area->used == 0,
		  "both cleared, the counter is back to 0");
}

/* Bytes per key held, for keys "key-%08d" and values "value-%08d" */
static double
bytes_per_key(dsa_area *area, KvIndex *index, int n)
{
	char		key[32];
	char		value[32];
	double		result;

	KvIndexInit(index);
	for (int i = 0; i < n; i++)
	{
		KvRecord	r;

		r.key = key;
		r.keylen = snprintf(key, sizeof(key), "key-%08d", i);
		r.value = value;
		r.vallen = snprintf(value, sizeof(value), "value-%08d", i);
		r.tombstone = false;
		r.timestamp = 1700000000000 + i;
		if (!KvIndexApply(area, index, &r, i))
			fatal("out of memory");
	}
	result = (double) index->bytes / n;
	if (index->bytes != area->used || area->requested != area->used)
		result = -1;
	KvIndexClear(area, index);
	return result;
}

/* Put key with a record timestamp */
static bool
put_at(dsa_area *area, KvIndex *index, const char *key, const char *value,
	   int64 offset, int64 timestamp)
{
	KvRecord	r = put(key, strlen(key), value, strlen(value));

	r.timestamp = timestamp;
	return apply(area, index, r, offset);
}

static void
test_timestamps(dsa_area *area, KvIndex *index)
{
	KvEntryView v;
	KvEntryView w;
	int64		now = INT64CONST(1764547200123);	/* 2025-12-01, in ms */
	int64		last = (INT64CONST(1) << 44) - 2;
	char		big[300];

	KvIndexInit(index);
	check(put_at(area, index, "a", "1", 0, now) &&
		  KvIndexLookup(area, index, "a", 1, &v) && v.timestamp == now &&
		  v.offset == 0,
		  "an entry keeps the timestamp of its record");
	check(put_at(area, index, "a", "2", 1, now + 5) &&
		  KvIndexLookup(area, index, "a", 1, &v) && v.timestamp == now + 5 &&
		  v.offset == 1,
		  "a value written in place takes the new timestamp");
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	check(put_at(area, index, "a", big, 2, now + 6) &&
		  KvIndexLookup(area, index, "a", 1, &v) && v.timestamp == now + 6 &&
		  v.vallen == sizeof(big) - 1,
		  "a value that moves takes the new timestamp");
	check(put_at(area, index, "b", "1", 3, -1) &&
		  KvIndexLookup(area, index, "b", 1, &v) && v.timestamp == -1,
		  "a record without a timestamp leaves none");
	check(put_at(area, index, "c", "1", 4, 0) &&
		  KvIndexLookup(area, index, "c", 1, &v) && v.timestamp == 0,
		  "timestamp 0, the epoch, is a timestamp");
	check(put_at(area, index, "d", "1", 5, last) &&
		  KvIndexLookup(area, index, "d", 1, &v) && v.timestamp == last &&
		  put_at(area, index, "e", "1", 6, PG_INT64_MAX) &&
		  KvIndexLookup(area, index, "e", 1, &w) && w.timestamp == last,
		  "the latest timestamp kept is in 2527; later ones are kept as it");
	KvIndexView(area, KvIndexSeek(area, index, "d", 1, true), &w);
	check(w.timestamp == last, "a scan sees the timestamp too");
	KvIndexClear(area, index);
	model_clear();
}

/* Records longer than an entry holds are refused, the index unchanged */
static void
test_entry_limits(dsa_area *area, KvIndex *index)
{
	static char buf[KV_INDEX_MAX_VALUE + 1];
	KvEntryView v;
	uint64		bytes;

	KvIndexInit(index);
	check(KvIndexApply(area, index, &(KvRecord) {"k", 1, "v", 1, false, -1}, 0),
		  "a small record fits");
	bytes = index->bytes;
	check(!KvIndexApply(area, index, &(KvRecord) {buf, KV_INDEX_MAX_KEY + 1, "v", 1, false, -1}, 1) &&
		  !KvIndexApply(area, index, &(KvRecord) {"k", 1, buf, KV_INDEX_MAX_VALUE + 1, false, -1}, 1) &&
		  index->bytes == bytes && index->nkeys == 1 &&
		  KvIndexLookup(area, index, "k", 1, &v) && v.vallen == 1 && v.offset == 0,
		  "a key or value longer than an entry holds is refused, nothing changed");
	memset(buf, 'k', KV_INDEX_MAX_KEY);
	check(KvIndexApply(area, index, &(KvRecord) {buf, KV_INDEX_MAX_KEY, "v", 1, false, -1}, 2) &&
		  KvIndexLookup(area, index, buf, KV_INDEX_MAX_KEY, &v) &&
		  v.keylen == KV_INDEX_MAX_KEY && v.offset == 2,
		  "the longest key fits");
	KvIndexClear(area, index);
}

static void
test_memory(dsa_area *area, KvIndex *index)
{
	double		per_key = bytes_per_key(area, index, 200000);

	printf("# 200,000 keys of 12 bytes with values of 14: %.1f bytes held per key\n",
		   per_key);
	check(per_key > 26 && per_key - 26 <= 40,
		  "at most 40 bytes per key beyond the key and value, as the allocator holds them");
}

int
main(int argc, char **argv)
{
	dsa_area	area = {0, 0, (size_t) 1 << 34, 0, -1, 0};
	KvIndex		index;

	/* "test_index memory N": only print the bytes per key for N keys */
	if (argc == 3 && strcmp(argv[1], "memory") == 0)
	{
		int			n = atoi(argv[2]);
		double		per_key = bytes_per_key(&area, &index, n);

		printf("%d keys \"key-%%08d\" with values \"value-%%08d\": %.1f bytes per key held, %.1f beyond the 26 of key and value\n",
			   n, per_key, per_key - 26);
		return per_key < 0;
	}

	test_hash(&area);
	test_size_classes();
	test_basics(&area, &index);
	test_order(&area, &index);
	test_growth(&area, &index);
	test_doubling(&area, &index);
	test_reserve(&area, &index);
	test_large(&area, &index);
	test_random(&area, &index);
	test_finger(&area, &index);
	test_accounting(&area, &index);
	test_out_of_memory(&area, &index);
	test_colliding_keys(&area, &index);
	test_level_attack(&area, &index);
	test_limit(&area, &index);
	test_plan(&area, &index);
	test_shared_limit(&area);
	test_timestamps(&area, &index);
	test_entry_limits(&area, &index);
	test_memory(&area, &index);

	free(model);
	printf("1..%d\n", tests);
	return failures > 0 ? 1 : 0;
}
