/*-------------------------------------------------------------------------
 *
 * test_index.c
 *		  Unit test of src/index.c, without a server
 *
 * index.c allocates from a dsa_area; here a stand-in serves dsa_allocate_
 * extended, dsa_free and dsa_get_address from malloc, with a byte budget
 * to make memory run out on purpose.  Every check compares the index with
 * a plain reference model: a sorted array of keys and values.
 *
 * Prints TAP ("ok N - ...", "1..N") and exits non-zero on failure.
 *
 * IDENTIFICATION
 *		  test/unit/test_index.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <stdio.h>
#include <stdlib.h>

#include "kvstore.h"

/* ---- dsa_area stand-in over malloc, with a budget ---- */

struct dsa_area
{
	size_t		used;
	size_t		limit;
};

typedef struct Block
{
	size_t		size;
	max_align_t align[FLEXIBLE_ARRAY_MEMBER];
} Block;

dsa_pointer
dsa_allocate_extended(dsa_area *area, size_t size, int flags)
{
	Block	   *b;

	if (area->used + size > area->limit)
		return InvalidDsaPointer;
	b = (flags & DSA_ALLOC_ZERO) ? calloc(1, sizeof(Block) + size) : malloc(sizeof(Block) + size);
	if (b == NULL)
		abort();
	b->size = size;
	area->used += size;
	return (dsa_pointer) (uintptr_t) b->align;
}

void
dsa_free(dsa_area *area, dsa_pointer dp)
{
	Block	   *b = (Block *) ((char *) (uintptr_t) dp - offsetof(Block, align));

	area->used -= b->size;
	free(b);
}

void *
dsa_get_address(dsa_area *area, dsa_pointer dp)
{
	return (void *) (uintptr_t) dp;
}

/* ---- reference model: sorted array ---- */

typedef struct Pair
{
	char		key[16];
	int			keylen;
	char		value[64];
	int			vallen;
} Pair;

static Pair model[4096];
static int	nmodel = 0;

static int	tests = 0;
static int	failures = 0;

static void
check(bool ok, const char *what)
{
	tests++;
	if (!ok)
		failures++;
	printf("%s %d - %s\n", ok ? "ok" : "not ok", tests, what);
}

static int
keycmp(const char *a, int alen, const char *b, int blen)
{
	int			c = memcmp(a, b, Min(alen, blen));

	return c != 0 ? c : (alen > blen) - (alen < blen);
}

static int
model_find(const char *key, int keylen, bool *found)
{
	int			lo = 0,
				hi = nmodel;

	while (lo < hi)
	{
		int			mid = (lo + hi) / 2;

		if (keycmp(model[mid].key, model[mid].keylen, key, keylen) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = lo < nmodel && keycmp(model[lo].key, model[lo].keylen, key, keylen) == 0;
	return lo;
}

static void
model_apply(const KvRecord *rec)
{
	bool		found;
	int			i = model_find(rec->key, rec->keylen, &found);

	if (rec->tombstone)
	{
		if (found)
			memmove(&model[i], &model[i + 1], sizeof(Pair) * (nmodel-- - i - 1));
		return;
	}
	if (!found)
	{
		memmove(&model[i + 1], &model[i], sizeof(Pair) * (nmodel++ - i));
		memcpy(model[i].key, rec->key, rec->keylen);
		model[i].keylen = rec->keylen;
	}
	memcpy(model[i].value, rec->value, rec->vallen);
	model[i].vallen = rec->vallen;
}

/* The whole index, walked in order, equals the model */
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
		if (i >= nmodel || keycmp(v.key, v.keylen, model[i].key, model[i].keylen) != 0 ||
			v.vallen != (uint32) model[i].vallen || memcmp(v.value, model[i].value, v.vallen) != 0)
			return false;
		if (!KvIndexLookup(area, index, v.key, v.keylen, &l) || l.value != v.value)
			return false;
	}
	return i == nmodel && index->nkeys == (uint64) nmodel;
}

static KvRecord
rec(const char *key, int keylen, const char *value, int vallen)
{
	return KvRecordFromBytes(key, keylen, value, vallen, value == NULL);
}

/* Record stand-in: index.c only needs the struct; functions.c builds it */
KvRecord
KvRecordFromBytes(const char *key, uint32 keylen, const char *value,
				  uint32 vallen, bool tombstone)
{
	KvRecord	r = {key, keylen, tombstone ? NULL : value, tombstone ? 0 : vallen, tombstone};

	return r;
}

int
main(void)
{
	dsa_area	area = {0, (size_t) 1 << 30};
	KvIndex		index;
	KvEntryView v;
	KvRecord	r;
	const char *order[] = {"user:1", "user:10", "user:2"};
	dsa_pointer p;
	bool		ok;
	uint32		seed = 12345;

	KvIndexInit(&index);

	/* put, replace, empty value, delete */
	r = rec("k", 1, "v1", 2);
	check(KvIndexApply(&area, &index, &r, 0), "put into an empty index");
	check(KvIndexLookup(&area, &index, "k", 1, &v) && v.vallen == 2 && memcmp(v.value, "v1", 2) == 0 && v.offset == 0,
		  "look-up finds the value and its offset");
	r = rec("k", 1, "a longer value", 14);
	KvIndexApply(&area, &index, &r, 1);
	check(KvIndexLookup(&area, &index, "k", 1, &v) && v.vallen == 14 && v.offset == 1,
		  "a longer value replaces the entry");
	r = rec("k", 1, "", 0);
	KvIndexApply(&area, &index, &r, 2);
	check(KvIndexLookup(&area, &index, "k", 1, &v) && v.vallen == 0 && index.nkeys == 1,
		  "an empty value is a value");
	r = rec("k", 1, NULL, 0);
	KvIndexApply(&area, &index, &r, 3);
	check(!KvIndexLookup(&area, &index, "k", 1, &v) && index.nkeys == 0, "a tombstone deletes");
	check(KvIndexApply(&area, &index, &r, 4), "deleting an absent key is fine");

	/* byte order */
	for (int i = 0; i < 3; i++)
	{
		r = rec(order[2 - i], strlen(order[2 - i]), "x", 1);
		KvIndexApply(&area, &index, &r, 10 + i);
	}
	p = KvIndexSeek(&area, &index, NULL, 0, true);
	ok = true;
	for (int i = 0; i < 3; i++, p = KvIndexNext(&area, p))
	{
		KvIndexView(&area, p, &v);
		ok = ok && v.keylen == strlen(order[i]) && memcmp(v.key, order[i], v.keylen) == 0;
	}
	check(ok && !DsaPointerIsValid(p), "keys come in byte order, a shorter key first");

	/* binary keys, NUL bytes, 0xff */
	{
		const char *keys[] = {"\x61", "\x61\xff", "\x61\xff\x00", "\x61\xff\xff", "\x62"};
		int			lens[] = {1, 2, 3, 3, 1};

		KvIndexClear(&area, &index);
		for (int i = 4; i >= 0; i--)
		{
			r = rec(keys[i], lens[i], "\0v", 2);
			KvIndexApply(&area, &index, &r, i);
		}
		p = KvIndexSeek(&area, &index, "\x61\xff", 2, true);
		KvIndexView(&area, p, &v);
		check(v.keylen == 2 && memcmp(v.key, "\x61\xff", 2) == 0, "inclusive seek lands on the key");
		p = KvIndexSeek(&area, &index, "\x61\xff", 2, false);
		KvIndexView(&area, p, &v);
		check(v.keylen == 3 && memcmp(v.key, "\x61\xff\x00", 3) == 0, "exclusive seek lands after it");
		p = KvIndexSeek(&area, &index, "\x61\xff\xff\x00", 4, true);
		KvIndexView(&area, p, &v);
		check(v.keylen == 1 && v.key[0] == 0x62, "seek between keys lands on the next");
		check(!DsaPointerIsValid(KvIndexSeek(&area, &index, "\xff", 1, true)), "seek past the end finds nothing");
		check(KvIndexLookup(&area, &index, "\x61\xff\x00", 3, &v) && v.vallen == 2 && v.value[0] == 0,
			  "keys and values with NUL bytes");
	}

	/* growth: many keys, several rehashes, then delete them all */
	KvIndexClear(&area, &index);
	check(index.bytes == 0 && area.used == 0, "clear frees everything");
	ok = true;
	for (int i = 0; i < 100000; i++)
	{
		char		key[16];
		int			len = snprintf(key, sizeof(key), "g%d", i);

		r = rec(key, len, key, len);
		ok = ok && KvIndexApply(&area, &index, &r, i);
	}
	check(ok && index.nkeys == 100000 && index.nbuckets >= 65536, "100,000 keys, the table grew");
	ok = true;
	for (int i = 0; i < 100000; i += 7)
	{
		char		key[16];
		int			len = snprintf(key, sizeof(key), "g%d", i);

		ok = ok && KvIndexLookup(&area, &index, key, len, &v) && v.vallen == (uint32) len &&
			memcmp(v.value, key, len) == 0 && v.offset == i;
	}
	check(ok, "every key is found after growing");
	check(index.bytes == area.used, "bytes counts every allocation");
	for (int i = 0; i < 100000; i++)
	{
		char		key[16];
		int			len = snprintf(key, sizeof(key), "g%d", i);

		r = rec(key, len, NULL, 0);
		KvIndexApply(&area, &index, &r, i);
	}
	check(index.nkeys == 0 && !DsaPointerIsValid(KvIndexSeek(&area, &index, NULL, 0, true)),
		  "deleting every key empties the index");
	KvIndexClear(&area, &index);

	/* random operations against the model */
	ok = true;
	for (int i = 0; i < 200000 && ok; i++)
	{
		char		key[16];
		char		value[64];
		int			keylen,
					vallen;

		seed = seed * 1103515245 + 12345;
		keylen = 1 + (seed >> 8) % 3;
		for (int j = 0; j < keylen; j++)
			key[j] = "ab\xff\x00"[(seed >> (12 + 2 * j)) & 3];
		vallen = (seed >> 20) % 40;
		memset(value, 'a' + i % 26, vallen);
		r = rec(key, keylen, (seed >> 28) % 4 == 0 ? NULL : value, vallen);
		ok = KvIndexApply(&area, &index, &r, i);
		model_apply(&r);
		if (i % 997 == 0)
			ok = ok && same_as_model(&area, &index);
	}
	check(ok && same_as_model(&area, &index), "200,000 random puts and deletes match the model");
	check(index.bytes == area.used, "bytes matches what is allocated");

	/* out of memory: the index stays as it was */
	area.limit = area.used;
	{
		uint64		nkeys = index.nkeys;
		uint64		bytes = index.bytes;
		char		big[64];

		memset(big, 'z', sizeof(big));
		r = rec("new key", 7, big, 64);
		check(!KvIndexApply(&area, &index, &r, 1), "a new key that does not fit is refused");
		r = rec(model[0].key, model[0].keylen, big, 64);
		check(!KvIndexApply(&area, &index, &r, 1), "a larger value that does not fit is refused");
		check(index.nkeys == nkeys && index.bytes == bytes && same_as_model(&area, &index),
			  "the index is unchanged after running out of memory");
		r = rec(model[0].key, model[0].keylen, NULL, 0);
		check(KvIndexApply(&area, &index, &r, 2), "a delete needs no memory");
		model_apply(&r);
		check(same_as_model(&area, &index), "and applies");
	}
	area.limit = (size_t) 1 << 30;

	KvIndexClear(&area, &index);
	check(index.bytes == 0 && area.used == 0, "clear frees everything again");

	printf("1..%d\n", tests);
	return failures > 0;
}
