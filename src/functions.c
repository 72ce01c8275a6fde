/*-------------------------------------------------------------------------
 *
 * functions.c
 *		  The kv_* SQL functions
 *
 * Each function checks all its arguments first, then opens the topic
 * (topic.c: reads never create a Kafka topic), and either writes through
 * producer.c or reads through the look-ups and cursors of scan.c.
 *
 * The text and bytea forms of a function share one C function wherever
 * the bytes are the same; text results are checked to be valid in the
 * database encoding, since other producers may write any bytes.
 *
 * Scans return their rows one at a time, reading the cursor a batch
 * ahead, so a caller that stops early does not pay for the rest.
 *
 * The functions use the default connection to Kafka (kvstore.brokers),
 * but for kv_sync, kv_checksum and kv_detach, whose optional server
 * argument names a kvstore foreign server: they then act on the topic of
 * that server's connection for the current user, the one its foreign
 * tables read, which an operator would otherwise have no way to sync,
 * compare or detach.
 *
 * IDENTIFICATION
 *		  src/functions.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "nodes/value.h"
#include "parser/parse_func.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "kvstore.h"

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
PG_FUNCTION_INFO_V1(kv_create_topic);
PG_FUNCTION_INFO_V1(kv_checksum);
PG_FUNCTION_INFO_V1(kv_topics);

static char *topic_arg(FunctionCallInfo fcinfo, int argno);
static const char *server_arg(FunctionCallInfo fcinfo, int argno);
static bytea *bytes_arg(FunctionCallInfo fcinfo, int argno, const char *what,
						const char *topic);
static int32 max_rows_arg(FunctionCallInfo fcinfo, int argno, const char *topic);
static Datum copy_bytes(const char *data, uint32 len);
static void check_text(const char *topic, const char *data, uint32 len,
					   const char *what);
static Datum get_value(FunctionCallInfo fcinfo, bool as_text);
static void check_may_scan(FunctionCallInfo fcinfo);
static Datum scan_rows(FunctionCallInfo fcinfo, bool range, bool as_text);

/* The topic name in argument argno, checked before anything is opened */
static char *
topic_arg(FunctionCallInfo fcinfo, int argno)
{
	char	   *name;

	KvCheckLoaded();
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("topic must not be NULL")));
	name = text_to_cstring(PG_GETARG_TEXT_PP(argno));
	KvTopicCheckAllowed(name);
	return name;
}

/* The connection of the server named in argument argno; NULL: the default */
static const char *
server_arg(FunctionCallInfo fcinfo, int argno)
{
	if (PG_NARGS() <= argno || PG_ARGISNULL(argno))
		return NULL;
	return KvFdwServerConnection(NameStr(*PG_GETARG_NAME(argno)));
}

/* A key or value argument, which must not be NULL; a key not empty */
static bytea *
bytes_arg(FunctionCallInfo fcinfo, int argno, const char *what, const char *topic)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s for topic \"%s\" must not be NULL", what, topic),
				 strcmp(what, "value") == 0 ?
				 errhint("Use kv_delete to delete a key.") : 0));
	if (strcmp(what, "key") == 0 && VARSIZE_ANY_EXHDR(PG_GETARG_BYTEA_PP(argno)) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("key for topic \"%s\" must not be empty", topic)));
	return PG_GETARG_BYTEA_PP(argno);
}

/* The max_rows argument: -1 when NULL */
static int32
max_rows_arg(FunctionCallInfo fcinfo, int argno, const char *topic)
{
	int32		max_rows;

	if (PG_ARGISNULL(argno))
		return -1;
	max_rows = PG_GETARG_INT32(argno);
	if (max_rows < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_rows for topic \"%s\" must not be negative", topic)));
	return max_rows;
}

/*
 * The topic of the last look-up (kv_get, kv_exists) of this backend, kept
 * across calls: a look-up of a topic known here skips checking the name
 * and finding its slot, as long as the slot still serves the topic and
 * kvstore.allowed_topics has not changed.
 */
static struct
{
	bool		valid;
	KvTopicRef	ref;			/* its conn is NULL: the default connection */
	uint32		namelen;
	char	   *allowed;		/* kvstore.allowed_topics when checked, in
								 * TopMemoryContext */
} last_lookup;

/*
 * The topic in argument 0 of a look-up, and its key in argument 1, checked
 * in that order
 */
static KvTopicRef *
lookup_args(FunctionCallInfo fcinfo, bytea **key)
{
	KvTopicRef *ref;
	char	   *name;
	char	   *allowed;

	if (last_lookup.valid && !PG_ARGISNULL(0))
	{
		text	   *arg = PG_GETARG_TEXT_PP(0);

		if (VARSIZE_ANY_EXHDR(arg) == last_lookup.namelen &&
			memcmp(VARDATA_ANY(arg), last_lookup.ref.name, last_lookup.namelen) == 0 &&
			strcmp(last_lookup.allowed, kvstore_allowed_topics) == 0 &&
			pg_atomic_read_u64(&last_lookup.ref.topic->incarnation) == last_lookup.ref.incarnation)
		{
			*key = bytes_arg(fcinfo, 1, "key", last_lookup.ref.name);
			return &last_lookup.ref;
		}
	}

	name = topic_arg(fcinfo, 0);
	*key = bytes_arg(fcinfo, 1, "key", name);
	ref = KvTopicOpen(name, KV_OPEN_READ, NULL);
	allowed = MemoryContextStrdup(TopMemoryContext, kvstore_allowed_topics);
	if (last_lookup.allowed != NULL)
		pfree(last_lookup.allowed);
	last_lookup.allowed = allowed;
	last_lookup.ref = *ref;
	last_lookup.ref.conn = NULL;
	last_lookup.namelen = strlen(ref->name);
	last_lookup.valid = true;
	return &last_lookup.ref;
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
check_text(const char *topic, const char *data, uint32 len, const char *what)
{
	if (!pg_verifymbstr(data, len, true))
		ereport(ERROR,
				(errcode(ERRCODE_CHARACTER_NOT_IN_REPERTOIRE),
				 errmsg("%s in topic \"%s\" is not valid text in encoding \"%s\"",
						what, topic, GetDatabaseEncodingName()),
				 errhint("Use the _bytea form of the function, such as kv_get_bytea or kv_scan_bytea.")));
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
	char	   *name = topic_arg(fcinfo, 0);
	bytea	   *key = bytes_arg(fcinfo, 1, "key", name);
	bytea	   *value = bytes_arg(fcinfo, 2, "value", name);
	KvRecord	rec;

	rec = KvRecordFromBytes(VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key),
							VARDATA_ANY(value), VARSIZE_ANY_EXHDR(value), false);
	KvRecordCheck(name, &rec);
	PG_RETURN_INT64(KvProducerWrite(KvTopicOpen(name, KV_OPEN_WRITE, NULL), &rec, 1, false));
}

/*
 * kv_delete
 *		Write a tombstone for a key; return its offset once applied here.
 */
Datum
kv_delete(PG_FUNCTION_ARGS)
{
	char	   *name = topic_arg(fcinfo, 0);
	bytea	   *key = bytes_arg(fcinfo, 1, "key", name);
	KvRecord	rec;

	rec = KvRecordFromBytes(VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key),
							NULL, 0, true);
	KvRecordCheck(name, &rec);
	PG_RETURN_INT64(KvProducerWrite(KvTopicOpen(name, KV_OPEN_WRITE, NULL), &rec, 1, false));
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
	char	   *name = topic_arg(fcinfo, 0);
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
				 errmsg("keys and values for topic \"%s\" must not be NULL", name)));
	keys = PG_GETARG_ARRAYTYPE_P(1);
	vals = PG_GETARG_ARRAYTYPE_P(2);
	if (ARR_NDIM(keys) > 1 || ARR_NDIM(vals) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("keys and values for topic \"%s\" must be one-dimensional arrays",
						name)));

	/* text and bytea elements are both varlena: read them the same way */
	deconstruct_array(keys, ARR_ELEMTYPE(keys), -1, false, TYPALIGN_INT,
					  &key_datums, &key_nulls, &nkeys);
	deconstruct_array(vals, ARR_ELEMTYPE(vals), -1, false, TYPALIGN_INT,
					  &val_datums, &val_nulls, &nvals);
	if (nkeys != nvals)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("keys and values for topic \"%s\" differ in length: %d keys, %d values",
						name, nkeys, nvals)));
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
					 errmsg("key %d for topic \"%s\" must not be NULL", i + 1, name)));
		key = DatumGetByteaPP(key_datums[i]);
		if (!val_nulls[i])
			value = DatumGetByteaPP(val_datums[i]);
		recs[i] = KvRecordFromBytes(VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key),
									value ? VARDATA_ANY(value) : NULL,
									value ? VARSIZE_ANY_EXHDR(value) : 0,
									value == NULL);
		KvRecordCheck(name, &recs[i]);
	}
	PG_RETURN_INT64(KvProducerWrite(KvTopicOpen(name, KV_OPEN_WRITE, NULL), recs, nkeys, true));
}

/* A key's value, copied out of the index, or NULL */
static Datum
get_value(FunctionCallInfo fcinfo, bool as_text)
{
	bytea	   *key;
	KvTopicRef *ref = lookup_args(fcinfo, &key);
	struct varlena *value;

	value = KvScanLookupValue(ref, VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key));
	if (value == NULL)
		PG_RETURN_NULL();
	if (as_text)
		check_text(ref->name, VARDATA(value), VARSIZE(value) - VARHDRSZ, "value");
	PG_RETURN_POINTER(value);
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
	bytea	   *key;
	KvTopicRef *ref = lookup_args(fcinfo, &key);
	KvRow		row;

	PG_RETURN_BOOL(KvScanLookup(ref, VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key), &row));
}

/* The cursor of a kv_scan or kv_range call, across its calls */
typedef struct KvScanCall
{
	KvScan	   *scan;
	char	   *topic;
	int32		max_rows;		/* -1: no limit */
	bool		as_text;
	TupleDesc	tupdesc;
} KvScanCall;

/*
 * The C functions behind kv_scan and kv_range (kv_scan_rows, ...) are
 * granted to PUBLIC: the privilege that counts is EXECUTE on the SQL
 * function of the same name without "_rows", which they serve.
 */
static void
check_may_scan(FunctionCallInfo fcinfo)
{
	Oid			self = fcinfo->flinfo ? fcinfo->flinfo->fn_oid : InvalidOid;
	Oid		   *argtypes;
	int			nargs;
	char	   *name;
	size_t		len;
	Oid			served;
	AclResult	aclresult;

	if (!OidIsValid(self) || (name = get_func_name(self)) == NULL ||
		(len = strlen(name)) <= 5 || strcmp(name + len - 5, "_rows") != 0)
		elog(ERROR, "kvstore scan called other than through its SQL function");
	name[len - 5] = '\0';
	(void) get_func_signature(self, &argtypes, &nargs);
	served = LookupFuncName(list_make2(makeString(get_namespace_name(get_func_namespace(self))),
									   makeString(name)),
							nargs, argtypes, false);
#if PG_VERSION_NUM >= 160000
	aclresult = object_aclcheck(ProcedureRelationId, served, GetUserId(), ACL_EXECUTE);
#else
	aclresult = pg_proc_aclcheck(served, GetUserId(), ACL_EXECUTE);
#endif
	if (aclresult != ACLCHECK_OK)
		aclcheck_error(aclresult, OBJECT_FUNCTION, name);
}

/*
 * Rows of kv_scan (prefix) or kv_range (from, to), in key order, one per
 * call: the cursor reads a batch ahead, so stopping early is cheap.
 */
static Datum
scan_rows(FunctionCallInfo fcinfo, bool range, bool as_text)
{
	FuncCallContext *funcctx;
	KvScanCall *call;
	KvRow		row;

	if (SRF_IS_FIRSTCALL())
	{
		MemoryContext oldcontext;
		KvScanBounds bounds = {0};
		char	   *name;
		int32		max_rows;

		check_may_scan(fcinfo);
		name = topic_arg(fcinfo, 0);
		max_rows = max_rows_arg(fcinfo, range ? 3 : 2, name);

		funcctx = SRF_FIRSTCALL_INIT();
		oldcontext = MemoryContextSwitchTo(funcctx->multi_call_memory_ctx);
		call = palloc0(sizeof(KvScanCall));
		call->topic = pstrdup(name);
		call->max_rows = max_rows;
		call->as_text = as_text;
		if (get_call_result_type(fcinfo, NULL, &call->tupdesc) != TYPEFUNC_COMPOSITE)
			elog(ERROR, "return type must be a row type");
		call->tupdesc = BlessTupleDesc(call->tupdesc);

		if (range)
		{
			if (!PG_ARGISNULL(1))
			{
				bytea	   *from = PG_GETARG_BYTEA_PP(1);

				bounds.lower = VARDATA_ANY(from);
				bounds.lowerlen = VARSIZE_ANY_EXHDR(from);
				bounds.lower_inclusive = true;
			}
			if (!PG_ARGISNULL(2))
			{
				bytea	   *to = PG_GETARG_BYTEA_PP(2);

				bounds.upper = VARDATA_ANY(to);
				bounds.upperlen = VARSIZE_ANY_EXHDR(to);
				bounds.upper_inclusive = false;
			}
		}
		else if (!PG_ARGISNULL(1))
		{
			bytea	   *prefix = PG_GETARG_BYTEA_PP(1);

			bounds.prefix = VARDATA_ANY(prefix);
			bounds.prefixlen = VARSIZE_ANY_EXHDR(prefix);
		}
		if (max_rows != 0)
			call->scan = KvScanBegin(KvTopicOpen(name, KV_OPEN_READ, NULL), &bounds);
		funcctx->user_fctx = call;
		MemoryContextSwitchTo(oldcontext);
	}

	funcctx = SRF_PERCALL_SETUP();
	call = (KvScanCall *) funcctx->user_fctx;
	if (call->scan != NULL &&
		(call->max_rows < 0 || funcctx->call_cntr < (uint64) call->max_rows) &&
		KvScanNext(call->scan, &row))
	{
		Datum		values[2];
		bool		nulls[2] = {false, false};

		if (call->as_text)
		{
			check_text(call->topic, row.key, row.keylen, "key");
			check_text(call->topic, row.value, row.vallen, "value");
		}
		values[0] = copy_bytes(row.key, row.keylen);
		values[1] = copy_bytes(row.value, row.vallen);
		SRF_RETURN_NEXT(funcctx,
						HeapTupleGetDatum(heap_form_tuple(call->tupdesc, values, nulls)));
	}
	if (call->scan != NULL)
		KvScanEnd(call->scan);
	SRF_RETURN_DONE(funcctx);
}

/*
 * kv_scan_text, kv_scan_bytea
 *		Keys starting with a prefix, in unsigned byte order.
 */
Datum
kv_scan_text(PG_FUNCTION_ARGS)
{
	return scan_rows(fcinfo, false, true);
}

Datum
kv_scan_bytea(PG_FUNCTION_ARGS)
{
	return scan_rows(fcinfo, false, false);
}

/*
 * kv_range_text, kv_range_bytea
 *		Keys in [from_key, to_key), in unsigned byte order; NULL is open.
 */
Datum
kv_range_text(PG_FUNCTION_ARGS)
{
	return scan_rows(fcinfo, true, true);
}

Datum
kv_range_bytea(PG_FUNCTION_ARGS)
{
	return scan_rows(fcinfo, true, false);
}

/*
 * kv_sync
 *		Wait until this server has applied everything in the topic now.
 *
 * Returns the end offset waited for, in the cluster of the connection: the
 * default one, or that of the server named by the second argument.
 */
Datum
kv_sync(PG_FUNCTION_ARGS)
{
	char	   *name = topic_arg(fcinfo, 0);
	KvTopicRef *ref = KvTopicOpen(name, KV_OPEN_READ, server_arg(fcinfo, 1));
	int64		end;

	KvTopicWaitReady(ref);
	end = KvKafkaEndOffset(ref->name, ref->conn);
	if (end > 0)
		KvTopicWaitApplied(ref, end - 1);
	PG_RETURN_INT64(end);
}

/*
 * kv_create_topic
 *		Create a topic in Kafka (one partition, compacted) if it does not
 *		exist, and attach it here.  Returns whether it was created.
 *
 * Creating is a separate act from reading and writing: EXECUTE on this
 * function is revoked from PUBLIC.
 */
Datum
kv_create_topic(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(KvTopicCreate(topic_arg(fcinfo, 0)));
}

/*
 * kv_checksum
 *		The applied offset, the key count and an order-independent checksum
 *		of a topic's keys and values on this server.
 *
 * Two servers that return the same applied offset hold the same data if
 * and only if (but for hash collisions) their checksums are equal.  The
 * second argument names a server whose connection's topic to read.
 */
Datum
kv_checksum(PG_FUNCTION_ARGS)
{
	char	   *name = topic_arg(fcinfo, 0);
	KvTopicRef *ref = KvTopicOpen(name, KV_OPEN_READ, server_arg(fcinfo, 1));
	TupleDesc	tupdesc;
	Datum		values[3];
	bool		nulls[3] = {false, false, false};
	int64		keys;
	int64		checksum;
	int64		applied;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	KvScanChecksum(ref, &keys, &checksum, &applied);
	values[0] = Int64GetDatum(applied);
	values[1] = Int64GetDatum(keys);
	values[2] = Int64GetDatum(checksum);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc),
													  values, nulls)));
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
		"free", "starting", "bootstrap", "ready", "error", "full"
	};
	uint64		area_limit = (uint64) kvstore_shared_memory * 1024;
	uint64		held = KvShmemHeld();
	KvTopic    *topic;

	KvCheckLoaded();
	InitMaterializedSRF(fcinfo, 0);

	for (int i = 0; (topic = KvTopicByIndex(i)) != NULL; i++)
	{
		KvTopic		copy;
		Datum		values[17];
		bool		nulls[17] = {0};
		int64		applied;
		int64		target;
		uint64		nkeys;
		uint64		bytes;
		uint64		limit;
		int64		headroom;

		SpinLockAcquire(&topic->mutex);
		memcpy(&copy, topic, offsetof(KvTopic, index));
		SpinLockRelease(&topic->mutex);
		if (copy.state == KV_TOPIC_FREE || copy.name[0] == '\0')
			continue;

		LWLockAcquire(topic->lock, LW_SHARED);
		nkeys = topic->index.nkeys;
		bytes = topic->index.bytes;
		limit = topic->index.limit;
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
		/* what the topic may still take: its own limit, and the area's */
		if (limit != 0)
			values[7] = Int64GetDatum((int64) limit);
		else
			nulls[7] = true;
		headroom = (int64) area_limit - (int64) held;
		if (limit != 0)
			headroom = Min(headroom, (int64) limit - (int64) bytes);
		values[8] = Int64GetDatum(Max(headroom, 0));
		/* bootstrap progress, 0 to 1 */
		if (copy.bootstrap_end == 0 && target > copy.bootstrap_from &&
			(copy.state == KV_TOPIC_BOOTSTRAP || copy.state == KV_TOPIC_FULL))
			values[9] = Float8GetDatum(Min(1.0, (double) (applied - copy.bootstrap_from) /
										   (double) (target - copy.bootstrap_from)));
		else if (copy.state == KV_TOPIC_READY || copy.bootstrap_end != 0)
			values[9] = Float8GetDatum(1.0);
		else
			values[9] = Float8GetDatum(0.0);
		if (copy.bootstrap_start != 0)
			values[10] = DirectFunctionCall2(timestamp_mi,
											 TimestampTzGetDatum(copy.bootstrap_end ?
																 copy.bootstrap_end :
																 GetCurrentTimestamp()),
											 TimestampTzGetDatum(copy.bootstrap_start));
		else
			nulls[10] = true;
		values[11] = Int64GetDatum((int64) copy.records);
		values[12] = Int64GetDatum((int64) copy.writes);
		values[13] = Int64GetDatum((int64) copy.skipped);
		if (copy.worker_pid != 0)
			values[14] = Int32GetDatum(copy.worker_pid);
		else
			nulls[14] = true;
		if (copy.last_error[0] != '\0')
			values[15] = CStringGetTextDatum(copy.last_error);
		else
			nulls[15] = true;
		/* the cluster, never the rest of the connection: it may hold secrets */
		values[16] = CStringGetTextDatum(KvKafkaBrokers(topic->conn[0] ? topic->conn : NULL));

		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/*
 * kv_memory
 *		The shared memory of all indexes together: what the allocator holds
 *		for them, kvstore.shared_memory, what is left, and the topic slots
 *		in use.
 */
PG_FUNCTION_INFO_V1(kv_memory);
Datum
kv_memory(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[5];
	bool		nulls[5] = {0};
	uint64		limit = (uint64) kvstore_shared_memory * 1024;
	uint64		held;
	int			slots = 0;
	int			used = 0;
	KvTopic    *topic;

	KvCheckLoaded();
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	for (; (topic = KvTopicByIndex(slots)) != NULL; slots++)
	{
		bool		attached;

		SpinLockAcquire(&topic->mutex);
		attached = topic->state != KV_TOPIC_FREE && topic->name[0] != '\0';
		SpinLockRelease(&topic->mutex);
		if (attached)
			used++;
	}
	held = KvShmemHeld();
	values[0] = Int64GetDatum((int64) held);
	values[1] = Int64GetDatum((int64) limit);
	values[2] = Int64GetDatum(held < limit ? (int64) (limit - held) : 0);
	values[3] = Int32GetDatum(used);
	values[4] = Int32GetDatum(slots);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/*
 * kv_detach
 *		Stop materializing a topic on this server and free its memory and
 *		slot; the next statement that uses it attaches it again.  Returns
 *		false if it was not attached.
 *
 * The slot of one connection: the default one, or that of the server
 * named by the second argument; the topic's slots of other connections
 * stay.
 */
PG_FUNCTION_INFO_V1(kv_detach);
Datum
kv_detach(PG_FUNCTION_ARGS)
{
	char	   *name;

	/*
	 * Not checked against kvstore.allowed_topics: a topic it no longer
	 * allows can still be detached
	 */
	KvCheckLoaded();
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("topic must not be NULL")));
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	PG_RETURN_BOOL(KvTopicDetach(name, server_arg(fcinfo, 1)));
}
