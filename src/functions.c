/*-------------------------------------------------------------------------
 *
 * functions.c
 *		  The kv_* SQL functions
 *
 * Each function checks its arguments, attaches the topic if this server
 * has not yet (KvWorkerAttach), waits for the topic to be ready, and then
 * either writes through producer.c or reads the index through index.c.
 *
 * The text and bytea forms of a function share one C function wherever
 * the bytes are the same; text results are checked to be valid in the
 * database encoding, since other producers may write any bytes.
 *
 * Scans copy entries out in batches, each under one shared hold of the
 * topic lock, and resume after the last key returned: every live key is
 * returned at most once, in order, with a value it really had, while the
 * worker goes on applying records between batches.
 *
 * IDENTIFICATION
 *		  src/functions.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "kvstore.h"

/* Entries copied out under one hold of the topic lock */
#define KV_SCAN_BATCH 256

PG_FUNCTION_INFO_V1(kvstore_check_loaded);
PG_FUNCTION_INFO_V1(kv_put);
PG_FUNCTION_INFO_V1(kv_put_many);
PG_FUNCTION_INFO_V1(kv_delete);
PG_FUNCTION_INFO_V1(kv_get_text);
PG_FUNCTION_INFO_V1(kv_get_bytea);
PG_FUNCTION_INFO_V1(kv_exists);
PG_FUNCTION_INFO_V1(kv_scan_text);
PG_FUNCTION_INFO_V1(kv_scan_bytea);
PG_FUNCTION_INFO_V1(kv_range_text);
PG_FUNCTION_INFO_V1(kv_range_bytea);
PG_FUNCTION_INFO_V1(kv_sync);
PG_FUNCTION_INFO_V1(kv_topics);

/* Bounds of a scan */
typedef struct KvScanBounds
{
	const char *from;			/* first key, inclusive; NULL: the first */
	uint32		fromlen;
	const char *prefix;			/* keys must start with it; NULL: any */
	uint32		prefixlen;
	const char *to;				/* last key, exclusive; NULL: no end */
	uint32		tolen;
	int64		max_rows;		/* -1: no limit */
} KvScanBounds;

static KvTopic *topic_arg(FunctionCallInfo fcinfo, int argno);
static bytea *bytes_arg(FunctionCallInfo fcinfo, int argno, const char *what,
						KvTopic *topic);
static int64 max_rows_arg(FunctionCallInfo fcinfo, int argno, KvTopic *topic);
static Datum copy_bytes(const char *data, uint32 len);
static void check_text(KvTopic *topic, Datum value, const char *what);
static int	key_compare(const char *a, uint32 alen, const char *b, uint32 blen);
static void scan_topic(FunctionCallInfo fcinfo, KvTopic *topic,
					   const KvScanBounds *bounds, bool as_text);
static Datum get_value(FunctionCallInfo fcinfo, bool as_text);
static Datum scan_prefix(FunctionCallInfo fcinfo, bool as_text);
static Datum scan_range(FunctionCallInfo fcinfo, bool as_text);

/* The topic named by argument argno, attached and ready */
static KvTopic *
topic_arg(FunctionCallInfo fcinfo, int argno)
{
	KvTopic    *topic;

	KvCheckLoaded();
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("topic must not be NULL")));
	topic = KvWorkerAttach(text_to_cstring(PG_GETARG_TEXT_PP(argno)));
	KvTopicWaitReady(topic);
	return topic;
}

/* A key or value argument, which must not be NULL */
static bytea *
bytes_arg(FunctionCallInfo fcinfo, int argno, const char *what, KvTopic *topic)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s for topic \"%s\" must not be NULL", what, topic->name),
				 strcmp(what, "value") == 0 ?
				 errhint("Use kv_delete to delete a key.") : 0));
	if (strcmp(what, "key") == 0 && VARSIZE_ANY_EXHDR(PG_GETARG_BYTEA_PP(argno)) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("key for topic \"%s\" must not be empty", topic->name)));
	return PG_GETARG_BYTEA_PP(argno);
}

/* The max_rows argument: -1 when NULL */
static int64
max_rows_arg(FunctionCallInfo fcinfo, int argno, KvTopic *topic)
{
	int32		max_rows;

	if (PG_ARGISNULL(argno))
		return -1;
	max_rows = PG_GETARG_INT32(argno);
	if (max_rows < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_rows for topic \"%s\" must not be negative", topic->name)));
	return max_rows;
}

/* A varlena holding a copy of the bytes */
static Datum
copy_bytes(const char *data, uint32 len)
{
	bytea	   *result = (bytea *) palloc(VARHDRSZ + len);

	SET_VARSIZE(result, VARHDRSZ + len);
	memcpy(VARDATA(result), data, len);
	return PointerGetDatum(result);
}

/* Refuse bytes that are not valid text in the database encoding */
static void
check_text(KvTopic *topic, Datum value, const char *what)
{
	bytea	   *bytes = DatumGetByteaPP(value);

	if (!pg_verifymbstr(VARDATA_ANY(bytes), VARSIZE_ANY_EXHDR(bytes), true))
		ereport(ERROR,
				(errcode(ERRCODE_CHARACTER_NOT_IN_REPERTOIRE),
				 errmsg("%s in topic \"%s\" is not valid text in encoding \"%s\"",
						what, topic->name, GetDatabaseEncodingName()),
				 errhint("Use the bytea form of the function.")));
}

/* Unsigned byte order, a shorter key first */
static int
key_compare(const char *a, uint32 alen, const char *b, uint32 blen)
{
	int			cmp = memcmp(a, b, Min(alen, blen));

	if (cmp != 0)
		return cmp;
	return (alen > blen) - (alen < blen);
}

/*
 * kvstore_check_loaded
 *		Raise an error unless kvstore was preloaded; run by the install
 *		script so that CREATE EXTENSION says how to fix a missing setting.
 */
Datum
kvstore_check_loaded(PG_FUNCTION_ARGS)
{
	KvCheckLoaded();
	PG_RETURN_VOID();
}

/*
 * kv_put
 *		Write a key's value; return its offset once it is visible here.
 *
 * Serves the text and the bytea forms.
 */
Datum
kv_put(PG_FUNCTION_ARGS)
{
	KvTopic    *topic = topic_arg(fcinfo, 0);
	bytea	   *key = bytes_arg(fcinfo, 1, "key", topic);
	bytea	   *value = bytes_arg(fcinfo, 2, "value", topic);
	KvRecord	rec;

	rec = KvRecordFromBytes(VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key),
							VARDATA_ANY(value), VARSIZE_ANY_EXHDR(value), false);
	KvRecordCheck(topic->name, &rec);
	PG_RETURN_INT64(KvProducerPut(topic, &rec));
}

/*
 * kv_delete
 *		Write a tombstone for a key; return its offset once applied here.
 */
Datum
kv_delete(PG_FUNCTION_ARGS)
{
	KvTopic    *topic = topic_arg(fcinfo, 0);
	bytea	   *key = bytes_arg(fcinfo, 1, "key", topic);
	KvRecord	rec;

	rec = KvRecordFromBytes(VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key),
							NULL, 0, true);
	KvRecordCheck(topic->name, &rec);
	PG_RETURN_INT64(KvProducerPut(topic, &rec));
}

/*
 * kv_put_many
 *		Write many keys as one transaction; a NULL value deletes its key.
 *
 * Returns the highest offset once every record is visible here, or NULL
 * when the arrays are empty.
 */
Datum
kv_put_many(PG_FUNCTION_ARGS)
{
	KvTopic    *topic = topic_arg(fcinfo, 0);
	ArrayType  *keys;
	ArrayType  *vals;
	Datum	   *key_datums;
	Datum	   *val_datums;
	bool	   *key_nulls;
	bool	   *val_nulls;
	int			nkeys;
	int			nvals;
	KvRecord   *recs;

	if (PG_ARGISNULL(1) || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("keys and values for topic \"%s\" must not be NULL", topic->name)));
	keys = PG_GETARG_ARRAYTYPE_P(1);
	vals = PG_GETARG_ARRAYTYPE_P(2);
	if (ARR_NDIM(keys) > 1 || ARR_NDIM(vals) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("keys and values for topic \"%s\" must be one-dimensional arrays",
						topic->name)));

	/* text and bytea elements are both varlena: read them the same way */
	deconstruct_array(keys, ARR_ELEMTYPE(keys), -1, false, TYPALIGN_INT,
					  &key_datums, &key_nulls, &nkeys);
	deconstruct_array(vals, ARR_ELEMTYPE(vals), -1, false, TYPALIGN_INT,
					  &val_datums, &val_nulls, &nvals);
	if (nkeys != nvals)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("keys and values for topic \"%s\" differ in length: %d keys, %d values",
						topic->name, nkeys, nvals)));
	if (nkeys == 0)
		PG_RETURN_NULL();

	recs = palloc(sizeof(KvRecord) * nkeys);
	for (int i = 0; i < nkeys; i++)
	{
		bytea	   *key;
		bytea	   *value = NULL;

		if (key_nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("key %d for topic \"%s\" must not be NULL", i + 1, topic->name)));
		key = DatumGetByteaPP(key_datums[i]);
		if (!val_nulls[i])
			value = DatumGetByteaPP(val_datums[i]);
		recs[i] = KvRecordFromBytes(VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key),
									value ? VARDATA_ANY(value) : NULL,
									value ? VARSIZE_ANY_EXHDR(value) : 0,
									value == NULL);
		KvRecordCheck(topic->name, &recs[i]);
	}
	PG_RETURN_INT64(KvProducerPutMany(topic, recs, nkeys));
}

/* A key's value, copied out of the index, or NULL */
static Datum
get_value(FunctionCallInfo fcinfo, bool as_text)
{
	KvTopic    *topic = topic_arg(fcinfo, 0);
	bytea	   *key = bytes_arg(fcinfo, 1, "key", topic);
	KvEntryView view;
	Datum		result = (Datum) 0;
	bool		found;

	LWLockAcquire(topic->lock, LW_SHARED);
	found = KvIndexLookup(KvShmemArea(), &topic->index,
						  VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key), &view);
	if (found)
		result = copy_bytes(view.value, view.vallen);
	LWLockRelease(topic->lock);

	if (!found)
		PG_RETURN_NULL();
	if (as_text)
		check_text(topic, result, "value");
	return result;
}

/*
 * kv_get_text, kv_get_bytea
 *		A key's value, or NULL when the key is absent.
 */
Datum
kv_get_text(PG_FUNCTION_ARGS)
{
	return get_value(fcinfo, true);
}

Datum
kv_get_bytea(PG_FUNCTION_ARGS)
{
	return get_value(fcinfo, false);
}

/*
 * kv_exists
 *		Whether a key has a value.
 */
Datum
kv_exists(PG_FUNCTION_ARGS)
{
	KvTopic    *topic = topic_arg(fcinfo, 0);
	bytea	   *key = bytes_arg(fcinfo, 1, "key", topic);
	KvEntryView view;
	bool		found;

	LWLockAcquire(topic->lock, LW_SHARED);
	found = KvIndexLookup(KvShmemArea(), &topic->index,
						  VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key), &view);
	LWLockRelease(topic->lock);
	PG_RETURN_BOOL(found);
}

/* Return the entries within bounds, in key order, as (key, value) rows */
static void
scan_topic(FunctionCallInfo fcinfo, KvTopic *topic,
		   const KvScanBounds *bounds, bool as_text)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	dsa_area   *area = KvShmemArea();
	MemoryContext batch_context;
	MemoryContext oldcontext;
	char	   *last = NULL;	/* last key returned */
	uint32		lastlen = 0;
	int64		returned = 0;
	bool		done = false;

	InitMaterializedSRF(fcinfo, 0);
	if (bounds->max_rows == 0)
		return;

	batch_context = AllocSetContextCreate(CurrentMemoryContext, "kvstore scan",
										  ALLOCSET_DEFAULT_SIZES);
	while (!done)
	{
		Datum		keys[KV_SCAN_BATCH];
		Datum		values[KV_SCAN_BATCH];
		int			n = 0;
		dsa_pointer pos;

		CHECK_FOR_INTERRUPTS();
		MemoryContextReset(batch_context);
		oldcontext = MemoryContextSwitchTo(batch_context);

		LWLockAcquire(topic->lock, LW_SHARED);
		if (last == NULL)
			pos = KvIndexSeek(area, &topic->index, bounds->from, bounds->fromlen, true);
		else
			pos = KvIndexSeek(area, &topic->index, last, lastlen, false);
		while (n < KV_SCAN_BATCH &&
			   (bounds->max_rows < 0 || returned + n < bounds->max_rows))
		{
			KvEntryView view;

			if (!DsaPointerIsValid(pos))
			{
				done = true;
				break;
			}
			KvIndexView(area, pos, &view);
			if ((bounds->prefix != NULL &&
				 (view.keylen < bounds->prefixlen ||
				  memcmp(view.key, bounds->prefix, bounds->prefixlen) != 0)) ||
				(bounds->to != NULL &&
				 key_compare(view.key, view.keylen, bounds->to, bounds->tolen) >= 0))
			{
				done = true;
				break;
			}
			keys[n] = copy_bytes(view.key, view.keylen);
			values[n] = copy_bytes(view.value, view.vallen);
			n++;
			pos = KvIndexNext(area, pos);
		}
		LWLockRelease(topic->lock);
		MemoryContextSwitchTo(oldcontext);

		for (int i = 0; i < n; i++)
		{
			Datum		row[2] = {keys[i], values[i]};
			bool		nulls[2] = {false, false};

			if (as_text)
			{
				check_text(topic, keys[i], "key");
				check_text(topic, values[i], "value");
			}
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, row, nulls);
		}
		returned += n;
		if (bounds->max_rows >= 0 && returned >= bounds->max_rows)
			done = true;
		if (n > 0 && !done)
		{
			bytea	   *lastkey = DatumGetByteaPP(keys[n - 1]);

			if (last != NULL)
				pfree(last);
			lastlen = VARSIZE_ANY_EXHDR(lastkey);
			last = palloc(lastlen);
			memcpy(last, VARDATA_ANY(lastkey), lastlen);
		}
	}
	MemoryContextDelete(batch_context);
}

/* kv_scan: the keys that start with a prefix */
static Datum
scan_prefix(FunctionCallInfo fcinfo, bool as_text)
{
	KvTopic    *topic = topic_arg(fcinfo, 0);
	KvScanBounds bounds = {0};

	if (!PG_ARGISNULL(1))
	{
		bytea	   *prefix = PG_GETARG_BYTEA_PP(1);

		bounds.prefix = VARDATA_ANY(prefix);
		bounds.prefixlen = VARSIZE_ANY_EXHDR(prefix);
		bounds.from = bounds.prefix;
		bounds.fromlen = bounds.prefixlen;
	}
	bounds.max_rows = max_rows_arg(fcinfo, 2, topic);
	scan_topic(fcinfo, topic, &bounds, as_text);
	return (Datum) 0;
}

/* kv_range: the keys from from_key (inclusive) to to_key (exclusive) */
static Datum
scan_range(FunctionCallInfo fcinfo, bool as_text)
{
	KvTopic    *topic = topic_arg(fcinfo, 0);
	KvScanBounds bounds = {0};

	if (!PG_ARGISNULL(1))
	{
		bytea	   *from = PG_GETARG_BYTEA_PP(1);

		bounds.from = VARDATA_ANY(from);
		bounds.fromlen = VARSIZE_ANY_EXHDR(from);
	}
	if (!PG_ARGISNULL(2))
	{
		bytea	   *to = PG_GETARG_BYTEA_PP(2);

		bounds.to = VARDATA_ANY(to);
		bounds.tolen = VARSIZE_ANY_EXHDR(to);
	}
	bounds.max_rows = max_rows_arg(fcinfo, 3, topic);
	scan_topic(fcinfo, topic, &bounds, as_text);
	return (Datum) 0;
}

/*
 * kv_scan_text, kv_scan_bytea
 *		Keys starting with a prefix, in unsigned byte order.
 */
Datum
kv_scan_text(PG_FUNCTION_ARGS)
{
	return scan_prefix(fcinfo, true);
}

Datum
kv_scan_bytea(PG_FUNCTION_ARGS)
{
	return scan_prefix(fcinfo, false);
}

/*
 * kv_range_text, kv_range_bytea
 *		Keys in [from_key, to_key), in unsigned byte order; NULL is open.
 */
Datum
kv_range_text(PG_FUNCTION_ARGS)
{
	return scan_range(fcinfo, true);
}

Datum
kv_range_bytea(PG_FUNCTION_ARGS)
{
	return scan_range(fcinfo, false);
}

/*
 * kv_sync
 *		Wait until this server has applied everything in the topic now.
 *
 * Returns the end offset waited for.
 */
Datum
kv_sync(PG_FUNCTION_ARGS)
{
	KvTopic    *topic = topic_arg(fcinfo, 0);
	int64		end = KvProducerEndOffset(topic->name);

	if (end > 0)
		KvTopicWaitApplied(topic, end - 1);
	PG_RETURN_INT64(end);
}

/*
 * kv_topics
 *		One row per attached topic: state, offsets, size, bootstrap, errors.
 */
Datum
kv_topics(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	static const char *const state_names[] = {
		"free", "starting", "bootstrap", "ready", "error"
	};
	KvTopic    *topic;

	KvCheckLoaded();
	InitMaterializedSRF(fcinfo, 0);

	for (int i = 0; (topic = KvTopicByIndex(i)) != NULL; i++)
	{
		KvTopic		copy;
		Datum		values[14];
		bool		nulls[14] = {0};
		int64		applied;
		int64		target;
		uint64		nkeys;
		uint64		bytes;

		SpinLockAcquire(&topic->mutex);
		memcpy(&copy, topic, offsetof(KvTopic, index));
		SpinLockRelease(&topic->mutex);
		if (copy.state == KV_TOPIC_FREE || copy.name[0] == '\0')
			continue;

		LWLockAcquire(topic->lock, LW_SHARED);
		nkeys = topic->index.nkeys;
		bytes = topic->index.bytes;
		LWLockRelease(topic->lock);
		applied = (int64) pg_atomic_read_u64(&topic->applied);
		target = copy.bootstrap_target;

		values[0] = CStringGetTextDatum(copy.name);
		values[1] = CStringGetTextDatum(state_names[copy.state]);
		values[2] = Int64GetDatum(applied);
		values[3] = Int64GetDatum(copy.end_offset);
		values[4] = Int64GetDatum(Max(copy.end_offset - applied, 0));
		values[5] = Int64GetDatum((int64) nkeys);
		values[6] = Int64GetDatum((int64) bytes);
		/* bootstrap progress, 0 to 1 */
		if (copy.state == KV_TOPIC_BOOTSTRAP && target > copy.bootstrap_from)
			values[7] = Float8GetDatum(Min(1.0, (double) (applied - copy.bootstrap_from) /
										   (double) (target - copy.bootstrap_from)));
		else if (copy.state == KV_TOPIC_READY)
			values[7] = Float8GetDatum(1.0);
		else
			values[7] = Float8GetDatum(0.0);
		if (copy.bootstrap_start != 0)
			values[8] = DirectFunctionCall2(timestamp_mi,
											TimestampTzGetDatum(copy.bootstrap_end ?
																copy.bootstrap_end :
																GetCurrentTimestamp()),
											TimestampTzGetDatum(copy.bootstrap_start));
		else
			nulls[8] = true;
		values[9] = Int64GetDatum((int64) copy.records);
		values[10] = Int64GetDatum((int64) copy.writes);
		values[11] = Int64GetDatum((int64) copy.skipped);
		if (copy.worker_pid != 0)
			values[12] = Int32GetDatum(copy.worker_pid);
		else
			nulls[12] = true;
		if (copy.last_error[0] != '\0')
			values[13] = CStringGetTextDatum(copy.last_error);
		else
			nulls[13] = true;

		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
