/*-------------------------------------------------------------------------
 *
 * test_index.c
 *		  Unit test of src/index.c, built and run without a server
 *
 * index.c allocates from a dsa_area.  Here a stand-in serves
 * dsa_allocate_extended, dsa_free and dsa_get_address from malloc, with a
 * byte budget and a fault injector that fails the n-th allocation from now,
 * so that running out of memory can be tested at every allocation an
 * operation makes.  The stand-in also refuses what the real area would
 * refuse: an allocation without DSA_ALLOC_NO_OOM, one over 1GB without
 * DSA_ALLOC_HUGE, a double free.
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

#include "utils/memutils.h"

#include "kvstore.h"

/* ---- dsa_area stand-in over malloc ---- */

#define BLOCK_MAGIC		UINT64CONST(0x6b7673746f726521)

struct dsa_area
{
	size_t		used;			/* bytes handed out and not freed */
	size_t		limit;			/* budget: allocations beyond it fail */
	long		live;			/* allocations not freed */
	long		fail_in;		/* fail the allocation after this many more
								 * succeed; -1: never */
};

typedef struct Block
{
	uint64		magic;
	size_t		size;
	/* payload follows, 16-byte aligned */
} Block;

static void fatal(const char *what) pg_attribute_noreturn();

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

dsa_pointer
dsa_allocate_extended(dsa_area *area, size_t size, int flags)
{
	Block	   *b;

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
	if (area->used + size > area->limit)
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
	area->used += size;
	area->live++;
	return (dsa_pointer) (uintptr_t) (b + 1);
}

void
dsa_free(dsa_area *area, dsa_pointer dp)
{
	Block	   *b = block_of(dp);

	area->used -= b->size;
	area->live--;
	b->magic = 0;
	free(b);
}

void *
dsa_get_address(dsa_area *area, dsa_pointer dp)
{
	return block_of(dp) + 1;
}

/* Assert() in index.c, compiled with USE_ASSERT_CHECKING */
void
ExceptionalCondition(const char *conditionName, const char *errorType,
					 const char *fileName, int lineNumber)
{
	printf("Bail out! %s(\"%s\") failed at %s:%d\n",
		   errorType, conditionName, fileName, lineNumber);
	fflush(stdout);
	abort();
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
 * The index holds exactly the model: walked in order, every entry matches,
 * every key is found by look-up at the same entry, and the accounting is
 * exact.
 */
static bool
same_as_model(dsa_area *area, KvIndex *index)
{
	dsa_pointer p = KvIndexSeek(area, index, NULL, 0, true);
	int			i = 0;

	for (; DsaPointerIsValid(p); p = KvIndexNext(area, p), i++)
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
	if (i != nmodel || index->nkeys != (uint64) nmodel)
	{
		printf("# %d entries walked, %llu counted, %d in the model\n",
			   i, (unsigned long long) index->nkeys, nmodel);
		return false;
	}
	if (index->bytes != area->used)
	{
		printf("# index->bytes %llu, allocated %zu\n",
			   (unsigned long long) index->bytes, area->used);
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

typedef struct Snapshot
{
	uint64		nkeys;
	uint64		bytes;
	uint32		nbuckets;
	uint32		seed;
	int			level;
	size_t		used;
	long		live;
} Snapshot;

static Snapshot
snapshot(dsa_area *area, KvIndex *index)
{
	Snapshot	s;

	s.nkeys = index->nkeys;
	s.bytes = index->bytes;
	s.nbuckets = index->nbuckets;
	s.seed = index->seed;
	s.level = index->level;
	s.used = area->used;
	s.live = area->live;
	return s;
}

static bool
unchanged(dsa_area *area, KvIndex *index, Snapshot s)
{
	Snapshot	t = snapshot(area, index);

	if (s.nkeys != t.nkeys || s.bytes != t.bytes || s.nbuckets != t.nbuckets ||
		s.seed != t.seed || s.level != t.level || s.used != t.used ||
		s.live != t.live)
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
		  !DsaPointerIsValid(KvIndexNext(area, p)),
		  "view of the only entry matches the look-up");
	check(!KvIndexLookup(area, index, "K", 1, &v) &&
		  !KvIndexLookup(area, index, "k\0", 2, &v) &&
		  !KvIndexLookup(area, index, "kk", 2, &v),
		  "other keys are absent");

	bytes = index->bytes;
	check(apply(area, index, put("k", 1, "a much longer value", 19), 8) &&
		  KvIndexLookup(area, index, "k", 1, &v) && v.vallen == 19 &&
		  memcmp(v.value, "a much longer value", 19) == 0 && v.offset == 8 &&
		  index->nkeys == 1 && index->bytes > bytes,
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
		p = KvIndexNext(area, p);
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
		for (; DsaPointerIsValid(p); p = KvIndexNext(area, p), count++)
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
	check(apply(area, index, put("big", 3, big, len / 2 + 100), 4) &&
		  index->bytes == bytes && same_as_model(area, index),
		  "a value shrinking to half its size stays in place");
	check(apply(area, index, put("big", 3, "small", 5), 5) &&
		  index->bytes < bytes - len + 100 && same_as_model(area, index),
		  "a value shrinking further moves to a smaller entry");
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
 * Run one operation with the n-th allocation failing, for every n until it
 * succeeds; after each failure the index must be exactly as before.
 * Returns the number of failures seen, or -1 on a mismatch.
 */
static int
apply_with_faults(dsa_area *area, KvIndex *index, KvRecord r, int64 offset)
{
	for (int n = 0; n < 10; n++)
	{
		Snapshot	s = snapshot(area, index);

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
	char		value[5000];
	KvEntryView v;
	Snapshot	s;
	bool		ok;
	int			faults;
	int			count;

	/* The first key needs the entry and the bucket array */
	check(apply_with_faults(area, index, put("first", 5, "v", 1), 1) == 2,
		  "first key: either allocation failing leaves the index empty");

	/* Fill to the growth threshold, then fail the doubling */
	for (int i = 1; i < 1024; i++)
	{
		uint32		len = snprintf(key, sizeof(key), "key:%d", i);

		apply(area, index, put(key, len, key, len), i);
	}
	check(index->nkeys == 1024 && index->nbuckets == 1024 &&
		  same_as_model(area, index), "1024 keys fill 1024 buckets");
	area->fail_in = 1;
	ok = apply(area, index, put("one more", 8, "v", 1), 2000);
	area->fail_in = -1;
	check(ok && index->nbuckets == 1024 && index->nkeys == 1025 &&
		  same_as_model(area, index),
		  "a failed doubling still inserts, keeping the old table");
	check(apply(area, index, put("and another", 11, "v", 1), 2001) &&
		  index->nbuckets == 2048 && same_as_model(area, index),
		  "the next insert doubles the table");

	/* A new key that does not fit, whatever the failure */
	count = 0;
	ok = true;
	for (int i = 0; i < 200; i++)
	{
		uint32		len = random_key(key, 6);

		faults = apply_with_faults(area, index,
								   put(key, len, value, random_value(value)), 3000 + i);
		ok = ok && faults >= 0;
		count += faults;
	}
	check(ok && count >= 150,
		  "new keys and new values: every failure leaves the index unchanged");

	/* A growing value that does not fit keeps the old value */
	apply(area, index, put("grow", 4, "small", 5), 4000);
	s = snapshot(area, index);
	area->fail_in = 0;
	ok = !apply(area, index, put("grow", 4, value, 4000), 4001);
	area->fail_in = -1;
	check(ok && unchanged(area, index, s) &&
		  KvIndexLookup(area, index, "grow", 4, &v) && v.vallen == 5 &&
		  v.offset == 4000, "a growing value that does not fit is refused");

	/* A shrinking value that finds no room for a smaller entry stays put */
	apply(area, index, put("shrink", 6, value, 4000), 4002);
	area->fail_in = 0;
	ok = apply(area, index, put("shrink", 6, "tiny", 4), 4003);
	area->fail_in = -1;
	check(ok && KvIndexLookup(area, index, "shrink", 6, &v) && v.vallen == 4 &&
		  memcmp(v.value, "tiny", 4) == 0 && v.offset == 4003 &&
		  same_as_model(area, index),
		  "a shrinking value needs no memory");

	/* A full area: writes that need memory fail, deletes and shrinks work */
	area->limit = area->used;
	s = snapshot(area, index);
	ok = !apply(area, index, put("brand new", 9, "v", 1), 5000) &&
		!apply(area, index, put("grow", 4, value, 100), 5001);
	check(ok && unchanged(area, index, s),
		  "with the area full, new keys and growing values are refused");
	check(apply(area, index, put("grow", 4, "", 0), 5002) &&
		  apply(area, index, del("key:1", 5), 5003) &&
		  apply(area, index, del("absent", 6), 5004) &&
		  same_as_model(area, index),
		  "with the area full, deletes and shrinking values apply");
	check(apply(area, index, put("key:1", 5, "key:1", 5), 5005) &&
		  same_as_model(area, index),
		  "the room a delete freed can be used again");
	area->limit = (size_t) 1 << 34;

	/* Random operations with random faults */
	ok = true;
	for (int i = 0; i < 50000 && ok; i++)
	{
		uint32		keylen = random_key(key, 4);
		KvRecord	r;
		Snapshot	before = snapshot(area, index);

		if (rng() % 4 == 0)
			r = del(key, keylen);
		else
			r = put(key, keylen, value, random_value(value));
		area->fail_in = rng() % 8 == 0 ? (long) (rng() % 2) : -1;
		if (!apply(area, index, r, 10000 + i))
			ok = unchanged(area, index, before);
		area->fail_in = -1;
		ok = ok && index->bytes == area->used && index->nkeys == (uint64) nmodel;
		if (i % 1000 == 0)
			ok = ok && same_as_model(area, index);
	}
	check(ok && same_as_model(area, index),
		  "50,000 random operations with random faults match the model");

	KvIndexClear(area, index);
	model_clear();
	check(index->bytes == 0 && area->used == 0 && area->live == 0,
		  "clear frees everything again");
}

int
main(void)
{
	dsa_area	area = {0, (size_t) 1 << 34, 0, -1};
	KvIndex		index;

	test_basics(&area, &index);
	test_order(&area, &index);
	test_growth(&area, &index);
	test_large(&area, &index);
	test_random(&area, &index);
	test_out_of_memory(&area, &index);

	free(model);
	printf("1..%d\n", tests);
	return failures > 0 ? 1 : 0;
}
