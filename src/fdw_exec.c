/*-------------------------------------------------------------------------
 *
 * fdw_exec.c
 *		  Foreign tables at run time: a table's options, scans, writes,
 *		  TRUNCATE and ANALYZE
 *
 * A kvstore foreign table has one row per live key of its topic.  Its
 * columns are the key (text or bytea), and either the value (text, bytea,
 * json or jsonb) or, with format 'json', the top-level fields of the JSON
 * object the value holds; a metadata column shows the offset or the
 * timestamp of the record that wrote the key.  KvFdwGetTable reads and checks the options once per
 * plan; the plan carries them to the executor in fdw_private.
 *
 * A scan reads the keys the planner chose (fdw_plan.c) through the
 * look-ups and the cursor of scan.c, and turns each entry into a row.
 * Text is checked to be valid in the database encoding, since other
 * producers may write any bytes; a value that does not convert is an
 * error naming the key and the column.
 *
 * A statement that writes (INSERT, UPDATE, DELETE, COPY FROM, a direct
 * DELETE, TRUNCATE) produces its records as one Kafka transaction, opened
 * at its first record and committed at its end, and then waits once, until
 * this server has applied them: when it returns, every session here sees
 * its writes.  An error anywhere before the commit aborts the transaction
 * (producer.c), so nothing of a failed statement reaches the log.  The
 * scan of an UPDATE or DELETE never meets the statement's own writes: the
 * materializer reads committed records only.  An UPDATE that changes a key
 * writes a tombstone for the old key first, unless the statement itself
 * wrote that key already (rows whose keys trade places).
 *
 * IDENTIFICATION
 *		  src/fdw_exec.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/sysattr.h"
#include "access/table.h"
#include "catalog/pg_type.h"
#include "commands/defrem.h"
#include "common/hashfn.h"
#include "executor/executor.h"
#include "foreign/foreign.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/fmgrprotos.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/sampling.h"

#include "kvstore.h"

/* Bytes of a key shown in a message */
#define KV_MESSAGE_KEY_BYTES 64

/* How one column is read from an entry and written into a record */
typedef struct KvColumnIO
{
	KvColumnKind kind;
	Oid			type;
	const char *name;			/* the column's name, for messages */
	const char *field;			/* JSON field of a KV_COLUMN_FIELD column */
	bool		read;			/* the plan reads it */
	FmgrInfo	in;				/* input function of a field column */
	Oid			ioparam;
	int32		typmod;
	FmgrInfo	out;			/* output function of a field column */
} KvColumnIO;

/* How the rows of one table are read and written */
typedef struct KvRowIO
{
	KvFdwTable *table;
	int			natts;
	KvColumnIO *cols;			/* by attribute number - 1 */
	bool		fields_read;	/* some field column is read */
	bool		has_metadata;	/* some column is a metadata column */
	bool		text_key;		/* the key column is text */
} KvRowIO;

/* Where a conversion error happened, for its context line */
typedef struct KvRowPlace
{
	KvRowIO    *io;
	const char *key;
	uint32		keylen;
	int			attno;			/* column being converted, or 0 */
} KvRowPlace;

/* A key to look up */
typedef struct KvKey
{
	char	   *data;
	uint32		len;
} KvKey;

/* State of a foreign scan, and of a direct DELETE */
typedef struct KvScanState
{
	KvFdwTable *table;
	KvRowIO    *io;
	KvTopicRef *ref;
	KvAccess	access;
	bool		backward;
	int			nconds;
	KvCondKind *kinds;			/* kind of each condition */
	ExprState **args;			/* its argument that is not the key */
	MemoryContext pass_cxt;		/* bounds, keys and cursor of one pass */
	MemoryContext row_cxt;		/* the current row */
	bool		started;		/* the current pass has begun */
	bool		empty;			/* the conditions admit no key */
	KvScan	   *scan;			/* the cursor, for FULL and RANGE */
	KvKey	   *keys;			/* LOOKUP and LOOKUPS: sorted, distinct */
	int			nkeys;
	int			next;			/* next key to look up */
	bool		set_processed;	/* direct DELETE: count the rows */
	bool		done;			/* direct DELETE: done */
} KvScanState;

/* State of a foreign INSERT, UPDATE or DELETE */
typedef struct KvModifyState
{
	KvFdwTable *table;
	KvRowIO    *io;
	Relation	rel;
	KvTopicRef *ref;			/* NULL under EXPLAIN without ANALYZE */
	CmdType		operation;
	AttrNumber	key_junk;		/* UPDATE, DELETE: the old key in the plan's
								 * output */
	AttrNumber	wholerow_junk;	/* DELETE ... RETURNING: the old row */
	bool		writing;		/* the statement's Kafka transaction is open */
	HTAB	   *written;		/* UPDATE of keys: the keys written so far */
	MemoryContext cxt;			/* the statement's: the keys written */
	MemoryContext row_cxt;		/* one row's conversions */
	StringInfoData buf;			/* a JSON value being built */
} KvModifyState;

/* What an error while waiting for the statement's writes adds */
typedef struct KvWaitPlace
{
	const char *topic;
	int64		offset;
} KvWaitPlace;

static KvRowIO *row_io(KvFdwTable *table, Relation rel, List *attrs);
static char *key_for_message(KvRowIO *io, const char *key, uint32 keylen);
static void row_place_callback(void *arg);
static void check_text(KvRowIO *io, const char *data, uint32 len);
static Datum bytes_datum(KvRowIO *io, Oid type, const char *data, uint32 len);
static TimestampTz kafka_timestamp(int64 ms);
static Jsonb *parse_object(KvRowIO *io, const char *value, uint32 vallen);
static Datum field_datum(KvColumnIO *col, JsonbValue *v);
static void entry_to_values(KvRowIO *io, KvRow *row, Datum *values,
							bool *nulls);
static void datum_bytes(Oid type, Datum d, const char **data, uint32 *len);
static void append_json(StringInfo buf, KvColumnIO *col, Datum d);
static KvRecord slot_to_record(KvRowIO *io, TupleTableSlot *slot,
							   StringInfo buf, bool insert);
static void keep_other_fields(KvModifyState *st, const char *oldkey,
							  uint32 oldkeylen, KvRecord *rec);
static Expr *clause_arg(Expr *clause, int argno);
static void scan_init(ForeignScanState *node, int eflags);
static void scan_start(ForeignScanState *node, KvScanState *st);
static void add_prefix(KvScanState *st, KvScanBounds *b, char *p, uint32 len);
static bool scan_next(KvScanState *st, KvRow *row);
static int	compare_keys(const void *a, const void *b);
static KvModifyState *modify_init(Relation rel, KvFdwTable *table,
								  CmdType operation, bool open);
static void write_record(KvModifyState *st, const KvRecord *rec);
static void write_tombstone(KvTopicRef *ref, bool *writing, const char *key,
							uint32 keylen);
static void finish_write(KvTopicRef *ref);
static void wait_place_callback(void *arg);
static uint32 written_hash(const void *key, Size keysize);
static int	written_match(const void *a, const void *b, Size keysize);
static void remember_written(KvModifyState *st, const char *key, uint32 len);
static bool was_written(KvModifyState *st, const char *key, uint32 len);
static int	acquire_sample_rows(Relation relation, int elevel, HeapTuple *rows,
								int targrows, double *totalrows,
								double *totaldeadrows);

/* ----------------------------------------------------------------
 *		The table's options
 * ----------------------------------------------------------------
 */

/*
 * KvFdwGetTable
 *		Read a foreign table's options and check that its columns fit them.
 *
 * The key column is the one marked with the column option key, or else
 * the one named "key".  With format 'raw' (the default) the value column
 * is the one marked with value, or named "value", and may be absent;
 * with format 'json' every other column is a field of the value's JSON
 * object, named after the column or by the column option field.  A
 * column with metadata 'offset' shows the offset of the record, one with
 * metadata 'timestamp' its timestamp (NULL when it has none).
 */
KvFdwTable *
KvFdwGetTable(Relation rel)
{
	Oid			relid = RelationGetRelid(rel);
	ForeignTable *ft = GetForeignTable(relid);
	ForeignServer *server = GetForeignServer(ft->serverid);
	TupleDesc	tupdesc = RelationGetDescr(rel);
	KvFdwTable *t = palloc0(sizeof(KvFdwTable));
	bool	   *decided = palloc0(sizeof(bool) * tupdesc->natts);
	AttrNumber	named_key = InvalidAttrNumber;
	AttrNumber	value_attno = InvalidAttrNumber;
	bool		value_marked = false;
	ListCell   *lc;

	t->name = pstrdup(RelationGetRelationName(rel));
	t->topic = t->name;
	t->serverid = ft->serverid;
	t->batch_size = 1;
	foreach(lc, server->options)
	{
		DefElem    *def = (DefElem *) lfirst(lc);

		if (strcmp(def->defname, "batch_size") == 0)
			(void) parse_int(defGetString(def), &t->batch_size, 0, NULL);
	}
	foreach(lc, ft->options)
	{
		DefElem    *def = (DefElem *) lfirst(lc);

		if (strcmp(def->defname, "topic") == 0)
			t->topic = pstrdup(defGetString(def));
		else if (strcmp(def->defname, "format") == 0)
			t->json = strcmp(defGetString(def), "json") == 0;
		else if (strcmp(def->defname, "batch_size") == 0)
			(void) parse_int(defGetString(def), &t->batch_size, 0, NULL);
	}

	t->natts = tupdesc->natts;
	t->kinds = palloc0(sizeof(KvColumnKind) * t->natts);
	t->fields = palloc0(sizeof(char *) * t->natts);
	t->types = palloc0(sizeof(Oid) * t->natts);

	for (int i = 0; i < t->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(tupdesc, i);
		const char *attname = NameStr(att->attname);

		if (att->attisdropped)
		{
			decided[i] = true;
			continue;
		}
		t->types[i] = att->atttypid;
		foreach(lc, GetForeignColumnOptions(relid, i + 1))
		{
			DefElem    *def = (DefElem *) lfirst(lc);

			if (strcmp(def->defname, "key") == 0 && defGetBoolean(def))
			{
				if (t->key_attno != InvalidAttrNumber)
					ereport(ERROR,
							(errcode(ERRCODE_FDW_INVALID_COLUMN_NAME),
							 errmsg("foreign table \"%s\" has more than one key column",
									t->name)));
				t->key_attno = i + 1;
				t->kinds[i] = KV_COLUMN_KEY;
				decided[i] = true;
			}
			else if (strcmp(def->defname, "value") == 0 && defGetBoolean(def))
			{
				if (t->json)
					ereport(ERROR,
							(errcode(ERRCODE_FDW_INVALID_COLUMN_NAME),
							 errmsg("column \"%s\" of foreign table \"%s\" cannot be the value: the table has format \"json\"",
									attname, t->name),
							 errhint("With format \"json\", every column but the key is a field of the value.")));
				if (value_marked)
					ereport(ERROR,
							(errcode(ERRCODE_FDW_INVALID_COLUMN_NAME),
							 errmsg("foreign table \"%s\" has more than one value column",
									t->name)));
				value_marked = true;
				value_attno = i + 1;
				t->kinds[i] = KV_COLUMN_VALUE;
				decided[i] = true;
			}
			else if (strcmp(def->defname, "field") == 0)
			{
				if (!t->json)
					ereport(ERROR,
							(errcode(ERRCODE_FDW_INVALID_COLUMN_NAME),
							 errmsg("column \"%s\" of foreign table \"%s\" names a JSON field, but the table does not have format \"json\"",
									attname, t->name)));
				t->kinds[i] = KV_COLUMN_FIELD;
				t->fields[i] = pstrdup(defGetString(def));
				decided[i] = true;
			}
			else if (strcmp(def->defname, "metadata") == 0)
			{
				t->kinds[i] = strcmp(defGetString(def), "timestamp") == 0 ?
					KV_COLUMN_TIMESTAMP : KV_COLUMN_OFFSET;
				decided[i] = true;
			}
		}
		if (!decided[i] && strcmp(attname, "key") == 0)
			named_key = i + 1;
		if (!decided[i] && !t->json && strcmp(attname, "value") == 0 &&
			!value_marked)
			value_attno = i + 1;
	}

	if (t->key_attno == InvalidAttrNumber)
	{
		if (named_key == InvalidAttrNumber)
			ereport(ERROR,
					(errcode(ERRCODE_FDW_COLUMN_NAME_NOT_FOUND),
					 errmsg("foreign table \"%s\" has no key column", t->name),
					 errhint("Name a column \"key\", or mark one with OPTIONS (key 'true').")));
		t->key_attno = named_key;
		t->kinds[named_key - 1] = KV_COLUMN_KEY;
		decided[named_key - 1] = true;
		if (value_attno == named_key)
			value_attno = InvalidAttrNumber;
	}
	if (value_attno != InvalidAttrNumber && !decided[value_attno - 1])
	{
		t->kinds[value_attno - 1] = KV_COLUMN_VALUE;
		decided[value_attno - 1] = true;
	}

	for (int i = 0; i < t->natts; i++)
	{
		const char *attname = NameStr(TupleDescAttr(tupdesc, i)->attname);
		Oid			type = t->types[i];

		if (!decided[i])
		{
			if (!t->json)
				ereport(ERROR,
						(errcode(ERRCODE_FDW_INVALID_COLUMN_NAME),
						 errmsg("column \"%s\" of foreign table \"%s\" is neither the key nor the value",
								attname, t->name),
						 errhint("A table of format \"raw\" has a key column, a value column and metadata columns; with OPTIONS (format 'json') the other columns are fields of a JSON value.")));
			t->kinds[i] = KV_COLUMN_FIELD;
			t->fields[i] = pstrdup(attname);
		}
		if (t->kinds[i] == KV_COLUMN_KEY && type != TEXTOID && type != BYTEAOID)
			ereport(ERROR,
					(errcode(ERRCODE_FDW_INVALID_DATA_TYPE),
					 errmsg("key column \"%s\" of foreign table \"%s\" has type %s",
							attname, t->name, format_type_be(type)),
					 errhint("A key column has type text or bytea.")));
		if (t->kinds[i] == KV_COLUMN_VALUE && type != TEXTOID && type != BYTEAOID &&
			type != JSONOID && type != JSONBOID)
			ereport(ERROR,
					(errcode(ERRCODE_FDW_INVALID_DATA_TYPE),
					 errmsg("value column \"%s\" of foreign table \"%s\" has type %s",
							attname, t->name, format_type_be(type)),
					 errhint("A value column has type text, bytea, json or jsonb.")));
		if ((t->kinds[i] == KV_COLUMN_OFFSET && type != INT8OID) ||
			(t->kinds[i] == KV_COLUMN_TIMESTAMP && type != TIMESTAMPTZOID))
			ereport(ERROR,
					(errcode(ERRCODE_FDW_INVALID_DATA_TYPE),
					 errmsg("metadata column \"%s\" of foreign table \"%s\" has type %s",
							attname, t->name, format_type_be(type)),
					 t->kinds[i] == KV_COLUMN_OFFSET ?
					 errhint("An offset column has type bigint.") :
					 errhint("A timestamp column has type timestamp with time zone.")));
	}
	pfree(decided);
	return t;
}

/*
 * KvFdwTableToList
 *		A table as a list of nodes, to travel in fdw_private.
 */
List *
KvFdwTableToList(const KvFdwTable *t)
{
	List	   *kinds = NIL;
	List	   *fields = NIL;
	List	   *list;

	for (int i = 0; i < t->natts; i++)
	{
		kinds = lappend_int(kinds, t->kinds[i]);
		fields = lappend(fields, makeString(pstrdup(t->fields[i] ? t->fields[i] : "")));
	}
	list = list_make5(makeString(pstrdup(t->name)), makeString(pstrdup(t->topic)),
					  makeInteger(t->json), makeInteger(t->batch_size),
					  makeInteger(t->key_attno));
	list = lappend(list, kinds);
	list = lappend(list, fields);
	list = lappend(list, makeInteger((int) t->serverid));
	return list;
}

/*
 * KvFdwTableFromList
 *		The table KvFdwTableToList made a list of; the column types come
 *		from the relation.
 */
KvFdwTable *
KvFdwTableFromList(List *list, Relation rel)
{
	KvFdwTable *t = palloc0(sizeof(KvFdwTable));
	TupleDesc	tupdesc = RelationGetDescr(rel);
	List	   *kinds = (List *) list_nth(list, 5);
	List	   *fields = (List *) list_nth(list, 6);

	t->name = strVal(list_nth(list, 0));
	t->topic = strVal(list_nth(list, 1));
	t->json = intVal(list_nth(list, 2)) != 0;
	t->batch_size = intVal(list_nth(list, 3));
	t->key_attno = intVal(list_nth(list, 4));
	t->serverid = (Oid) intVal(list_nth(list, 7));
	t->natts = list_length(kinds);
	t->kinds = palloc0(sizeof(KvColumnKind) * t->natts);
	t->fields = palloc0(sizeof(char *) * t->natts);
	t->types = palloc0(sizeof(Oid) * t->natts);
	for (int i = 0; i < t->natts; i++)
	{
		char	   *field = strVal(list_nth(fields, i));

		t->kinds[i] = (KvColumnKind) list_nth_int(kinds, i);
		t->fields[i] = field[0] ? field : NULL;
		t->types[i] = TupleDescAttr(tupdesc, i)->atttypid;
	}
	return t;
}

/*
 * KvFdwLikePrefix
 *		The fixed start of a LIKE pattern, escapes resolved, in *prefix;
 *		returns whether the pattern is that start and one final '%'.
 */
bool
KvFdwLikePrefix(const char *pattern, int len, char **prefix, int *prefixlen)
{
	char	   *out = palloc(len + 1);
	int			n = 0;
	int			i = 0;

	while (i < len && pattern[i] != '%' && pattern[i] != '_')
	{
		if (pattern[i] == '\\')
		{
			if (i + 1 >= len)
				break;
			i++;
		}
		out[n++] = pattern[i++];
	}
	*prefix = out;
	*prefixlen = n;
	return i == len - 1 && pattern[i] == '%';
}

/* ----------------------------------------------------------------
 *		Rows: entries to rows, rows to records
 * ----------------------------------------------------------------
 */

/* How to read and write the rows of a table; attrs are the columns read */
static KvRowIO *
row_io(KvFdwTable *table, Relation rel, List *attrs)
{
	TupleDesc	tupdesc = RelationGetDescr(rel);
	KvRowIO    *io = palloc0(sizeof(KvRowIO));

	io->table = table;
	io->natts = table->natts;
	io->cols = palloc0(sizeof(KvColumnIO) * io->natts);
	io->text_key = table->types[table->key_attno - 1] == TEXTOID;
	for (int i = 0; i < io->natts; i++)
	{
		KvColumnIO *col = &io->cols[i];
		Form_pg_attribute att = TupleDescAttr(tupdesc, i);

		col->kind = table->kinds[i];
		col->type = table->types[i];
		col->name = NameStr(att->attname);
		col->field = table->fields[i];
		col->read = col->kind != KV_COLUMN_UNUSED && list_member_int(attrs, i + 1);
		if (KV_COLUMN_IS_METADATA(col->kind))
			io->has_metadata = true;
		if (col->kind == KV_COLUMN_FIELD)
		{
			Oid			func;
			bool		varlena;

			getTypeInputInfo(col->type, &func, &col->ioparam);
			fmgr_info(func, &col->in);
			getTypeOutputInfo(col->type, &func, &varlena);
			fmgr_info(func, &col->out);
			col->typmod = att->atttypmod;
			if (col->read)
				io->fields_read = true;
		}
	}
	return io;
}

/* A key as a message shows it: quoted text, or hex bytes */
static char *
key_for_message(KvRowIO *io, const char *key, uint32 keylen)
{
	StringInfoData buf;
	uint32		len = Min(keylen, KV_MESSAGE_KEY_BYTES);

	initStringInfo(&buf);
	if (io->text_key && pg_verifymbstr(key, keylen, true))
	{
		len = pg_mbcliplen(key, keylen, len);
		appendStringInfoChar(&buf, '"');
		appendBinaryStringInfo(&buf, key, len);
		appendStringInfoChar(&buf, '"');
	}
	else
	{
		appendStringInfoString(&buf, "\\x");
		for (uint32 i = 0; i < len; i++)
			appendStringInfo(&buf, "%02x", (unsigned char) key[i]);
	}
	if (len < keylen)
		appendStringInfoString(&buf, "...");
	return buf.data;
}

/* Name the key and the column a conversion error is about */
static void
row_place_callback(void *arg)
{
	KvRowPlace *place = (KvRowPlace *) arg;
	char	   *key = key_for_message(place->io, place->key, place->keylen);

	if (place->attno > 0)
		errcontext("column \"%s\" of foreign table \"%s\", key %s of topic \"%s\"",
				   place->io->cols[place->attno - 1].name, place->io->table->name,
				   key, place->io->table->topic);
	else
		errcontext("key %s of topic \"%s\"", key, place->io->table->topic);
}

/* Refuse bytes that are not valid text in the database encoding */
static void
check_text(KvRowIO *io, const char *data, uint32 len)
{
	if (!pg_verifymbstr(data, len, true))
		ereport(ERROR,
				(errcode(ERRCODE_CHARACTER_NOT_IN_REPERTOIRE),
				 errmsg("data in topic \"%s\" is not valid text in encoding \"%s\"",
						io->table->topic, GetDatabaseEncodingName()),
				 errhint("Give the column type bytea.")));
}

/* A key or a value as a datum of type text, bytea, json or jsonb */
static Datum
bytes_datum(KvRowIO *io, Oid type, const char *data, uint32 len)
{
	char	   *cstr;

	switch (type)
	{
		case BYTEAOID:
			{
				bytea	   *result = (bytea *) palloc(VARHDRSZ + len);

				SET_VARSIZE(result, VARHDRSZ + len);
				memcpy(VARDATA(result), data, len);
				return PointerGetDatum(result);
			}
		case TEXTOID:
			check_text(io, data, len);
			return PointerGetDatum(cstring_to_text_with_len(data, len));
		default:
			check_text(io, data, len);
			cstr = pnstrdup(data, len);
			if (type == JSONBOID)
				return DirectFunctionCall1(jsonb_in, CStringGetDatum(cstr));
			return DirectFunctionCall1(json_in, CStringGetDatum(cstr));
	}
}

/* The value of a format 'json' table: a JSON object */
static Jsonb *
parse_object(KvRowIO *io, const char *value, uint32 vallen)
{
	Jsonb	   *jb;

	check_text(io, value, vallen);
	jb = DatumGetJsonbP(DirectFunctionCall1(jsonb_in,
											CStringGetDatum(pnstrdup(value, vallen))));
	if (!JB_ROOT_IS_OBJECT(jb) || JB_ROOT_IS_SCALAR(jb))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("value in topic \"%s\" is not a JSON object",
						io->table->topic),
				 errdetail("Foreign table \"%s\" has format \"json\": each value is an object whose fields are the columns.",
						   io->table->name)));
	return jb;
}

/* One field of a JSON object as a datum of its column's type */
static Datum
field_datum(KvColumnIO *col, JsonbValue *v)
{
	char	   *str;

	if (col->type == JSONBOID)
		return JsonbPGetDatum(JsonbValueToJsonb(v));
	if (col->type == BOOLOID && v->type == jbvBool)
		return BoolGetDatum(v->val.boolean);
	if (col->type == NUMERICOID && v->type == jbvNumeric)
		return datumCopy(NumericGetDatum(v->val.numeric), false, -1);

	/* Other types read the text of a scalar, or the JSON of the rest */
	if (col->type != JSONOID && v->type == jbvString)
		str = pnstrdup(v->val.string.val, v->val.string.len);
	else if (col->type != JSONOID && v->type == jbvNumeric)
		str = DatumGetCString(DirectFunctionCall1(numeric_out,
												   NumericGetDatum(v->val.numeric)));
	else if (col->type != JSONOID && v->type == jbvBool)
		str = v->val.boolean ? "true" : "false";
	else
	{
		Jsonb	   *jb = JsonbValueToJsonb(v);

		str = JsonbToCString(NULL, &jb->root, VARSIZE(jb));
	}
	return InputFunctionCall(&col->in, str, col->ioparam, col->typmod);
}

/* A Kafka record timestamp, in ms since 1970, as a timestamptz */
static TimestampTz
kafka_timestamp(int64 ms)
{
	return (TimestampTz) (ms * 1000) -
		(TimestampTz) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY;
}

/* The values of the columns read, for one entry */
static void
entry_to_values(KvRowIO *io, KvRow *row, Datum *values, bool *nulls)
{
	KvRowPlace	place = {io, row->key, row->keylen, 0};
	ErrorContextCallback errcallback;
	Jsonb	   *object = NULL;

	errcallback.callback = row_place_callback;
	errcallback.arg = &place;
	errcallback.previous = error_context_stack;
	error_context_stack = &errcallback;

	if (io->fields_read)
		object = parse_object(io, row->value, row->vallen);
	for (int i = 0; i < io->natts; i++)
	{
		KvColumnIO *col = &io->cols[i];

		nulls[i] = true;
		values[i] = (Datum) 0;
		if (!col->read)
			continue;
		place.attno = i + 1;
		nulls[i] = false;
		switch (col->kind)
		{
			case KV_COLUMN_KEY:
				values[i] = bytes_datum(io, col->type, row->key, row->keylen);
				break;
			case KV_COLUMN_VALUE:
				values[i] = bytes_datum(io, col->type, row->value, row->vallen);
				break;
			case KV_COLUMN_OFFSET:
				values[i] = Int64GetDatum(row->offset);
				break;
			case KV_COLUMN_TIMESTAMP:
				if (row->timestamp < 0)
					nulls[i] = true;
				else
					values[i] = TimestampTzGetDatum(kafka_timestamp(row->timestamp));
				break;
			case KV_COLUMN_FIELD:
				{
					JsonbValue	buf;
					JsonbValue *v;

					v = getKeyJsonValueFromContainer(&object->root, col->field,
													 strlen(col->field), &buf);
					if (v == NULL || v->type == jbvNull)
						nulls[i] = true;
					else
						values[i] = field_datum(col, v);
				}
				break;
			case KV_COLUMN_UNUSED:
				nulls[i] = true;
				break;
		}
	}
	error_context_stack = errcallback.previous;
}

/* The bytes a key or value column holds */
static void
datum_bytes(Oid type, Datum d, const char **data, uint32 *len)
{
	if (type == JSONBOID)
	{
		Jsonb	   *jb = DatumGetJsonbP(d);
		char	   *str = JsonbToCString(NULL, &jb->root, VARSIZE(jb));

		*data = str;
		*len = strlen(str);
	}
	else
	{
		bytea	   *b = DatumGetByteaPP(d);

		*data = VARDATA_ANY(b);
		*len = VARSIZE_ANY_EXHDR(b);
	}
}

/* Append one field of a JSON object */
static void
append_json(StringInfo buf, KvColumnIO *col, Datum d)
{
	char	   *str;

	switch (col->type)
	{
		case BOOLOID:
			appendStringInfoString(buf, DatumGetBool(d) ? "true" : "false");
			return;
		case JSONOID:
			{
				text	   *t = DatumGetTextPP(d);

				appendBinaryStringInfo(buf, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
			}
			return;
		case JSONBOID:
			{
				Jsonb	   *jb = DatumGetJsonbP(d);

				(void) JsonbToCString(buf, &jb->root, VARSIZE(jb));
			}
			return;
		case INT2OID:
		case INT4OID:
		case INT8OID:
		case FLOAT4OID:
		case FLOAT8OID:
		case NUMERICOID:
			str = OutputFunctionCall(&col->out, d);
			/* NaN and the infinities are no JSON numbers: strings, then */
			if (strspn(str, "0123456789+-.eE") == strlen(str))
				appendStringInfoString(buf, str);
			else
				escape_json(buf, str);
			return;
		default:
			escape_json(buf, OutputFunctionCall(&col->out, d));
			return;
	}
}

/*
 * The record that writes a row: its key, and its value, built in buf for
 * format 'json'.  Bytes are in the current memory context or the slot.
 * An inserted row may not give offset columns a value; an updated row has
 * the old offsets, which are not written (kvBeginForeignModify refuses an
 * UPDATE that sets them).
 */
static KvRecord
slot_to_record(KvRowIO *io, TupleTableSlot *slot, StringInfo buf, bool insert)
{
	KvFdwTable *t = io->table;
	const char *key;
	uint32		keylen;
	const char *value = "";
	uint32		vallen = 0;
	KvRecord	rec;
	bool		first = true;

	slot_getallattrs(slot);
	if (slot->tts_isnull[t->key_attno - 1])
		ereport(ERROR,
				(errcode(ERRCODE_NOT_NULL_VIOLATION),
				 errmsg("key for topic \"%s\" must not be NULL", t->topic),
				 errdetail("Column \"%s\" of foreign table \"%s\" is the key.",
						   io->cols[t->key_attno - 1].name, t->name)));
	datum_bytes(t->types[t->key_attno - 1], slot->tts_values[t->key_attno - 1],
				&key, &keylen);

	if (t->json)
	{
		resetStringInfo(buf);
		appendStringInfoChar(buf, '{');
	}
	for (int i = 0; i < io->natts; i++)
	{
		KvColumnIO *col = &io->cols[i];
		bool		isnull = slot->tts_isnull[i];

		switch (col->kind)
		{
			case KV_COLUMN_OFFSET:
			case KV_COLUMN_TIMESTAMP:
				if (insert && !isnull)
					ereport(ERROR,
							(errcode(ERRCODE_GENERATED_ALWAYS),
							 errmsg("column \"%s\" of foreign table \"%s\" is read-only",
									col->name, t->name),
							 errdetail(col->kind == KV_COLUMN_OFFSET ?
									   "It shows the offset of the record that wrote the key in topic \"%s\"." :
									   "It shows the timestamp of the record that wrote the key in topic \"%s\".",
									   t->topic)));
				break;
			case KV_COLUMN_VALUE:
				if (isnull)
					ereport(ERROR,
							(errcode(ERRCODE_NOT_NULL_VIOLATION),
							 errmsg("value for topic \"%s\" must not be NULL", t->topic),
							 errdetail("Column \"%s\" of foreign table \"%s\" is the value.",
									   col->name, t->name),
							 errhint("Use DELETE to delete a key.")));
				datum_bytes(col->type, slot->tts_values[i], &value, &vallen);
				break;
			case KV_COLUMN_FIELD:
				if (!first)
					appendStringInfoChar(buf, ',');
				first = false;
				escape_json(buf, col->field);
				appendStringInfoChar(buf, ':');
				if (isnull)
					appendStringInfoString(buf, "null");
				else
					append_json(buf, col, slot->tts_values[i]);
				break;
			case KV_COLUMN_KEY:
			case KV_COLUMN_UNUSED:
				break;
		}
	}
	if (t->json)
	{
		appendStringInfoChar(buf, '}');
		value = buf->data;
		vallen = buf->len;
	}

	rec = KvRecordFromBytes(key, keylen, value, vallen, false);
	KvRecordCheck(t->topic, &rec);
	return rec;
}

/*
 * An UPDATE of a format 'json' table writes the fields of its columns:
 * the fields of the old value that no column shows are kept.
 */
static void
keep_other_fields(KvModifyState *st, const char *oldkey, uint32 oldkeylen,
				  KvRecord *rec)
{
	KvRowIO    *io = st->io;
	KvRow		old;
	KvRowPlace	place = {io, oldkey, oldkeylen, 0};
	ErrorContextCallback errcallback;
	Jsonb	   *oldobj;
	Datum		merged;
	char	   *str;

	if (!KvScanLookup(st->ref, oldkey, oldkeylen, &old))
		return;
	errcallback.callback = row_place_callback;
	errcallback.arg = &place;
	errcallback.previous = error_context_stack;
	error_context_stack = &errcallback;
	oldobj = parse_object(io, old.value, old.vallen);
	error_context_stack = errcallback.previous;

	merged = DirectFunctionCall2(jsonb_concat, JsonbPGetDatum(oldobj),
								 DirectFunctionCall1(jsonb_in,
													 CStringGetDatum(pnstrdup(rec->value, rec->vallen))));
	str = JsonbToCString(NULL, &DatumGetJsonbP(merged)->root, VARSIZE(DatumGetPointer(merged)));
	*rec = KvRecordFromBytes(rec->key, rec->keylen, str, strlen(str), false);
	KvRecordCheck(io->table->topic, rec);
}

/* ----------------------------------------------------------------
 *		Scans
 * ----------------------------------------------------------------
 */

/* The argument of a key condition that is not the key */
static Expr *
clause_arg(Expr *clause, int argno)
{
	if (IsA(clause, OpExpr))
		return (Expr *) list_nth(((OpExpr *) clause)->args, argno);
	if (IsA(clause, ScalarArrayOpExpr))
		return (Expr *) list_nth(((ScalarArrayOpExpr *) clause)->args, argno);
	if (IsA(clause, FuncExpr))
		return (Expr *) list_nth(((FuncExpr *) clause)->args, argno);
	elog(ERROR, "unexpected key condition node %d", (int) nodeTag(clause));
	return NULL;
}

/* Set up the state of a scan or a direct DELETE from its plan */
static void
scan_init(ForeignScanState *node, int eflags)
{
	ForeignScan *fsplan = (ForeignScan *) node->ss.ps.plan;
	Relation	rel = node->ss.ss_currentRelation;
	EState	   *estate = node->ss.ps.state;
	KvScanState *st = palloc0(sizeof(KvScanState));
	List	   *kinds = (List *) list_nth(fsplan->fdw_private, KvScanPrivateKinds);
	List	   *argnos = (List *) list_nth(fsplan->fdw_private, KvScanPrivateArgs);
	int			i = 0;
	ListCell   *lc;

	node->fdw_state = st;
	st->table = KvFdwTableFromList((List *) list_nth(fsplan->fdw_private,
													 KvScanPrivateTable), rel);
	st->access = (KvAccess) intVal(list_nth(fsplan->fdw_private, KvScanPrivateAccess));
	st->backward = intVal(list_nth(fsplan->fdw_private, KvScanPrivateBackward)) != 0;
	st->io = row_io(st->table, rel,
					(List *) list_nth(fsplan->fdw_private, KvScanPrivateAttrs));
	if (eflags & EXEC_FLAG_EXPLAIN_ONLY)
		return;

	st->ref = KvTopicOpen(st->table->topic, KV_OPEN_READ,
						  KvFdwConnection(st->table->serverid));
	st->nconds = list_length(fsplan->fdw_exprs);
	st->kinds = palloc(sizeof(KvCondKind) * Max(st->nconds, 1));
	st->args = palloc(sizeof(ExprState *) * Max(st->nconds, 1));
	foreach(lc, fsplan->fdw_exprs)
	{
		st->kinds[i] = (KvCondKind) list_nth_int(kinds, i);
		st->args[i] = ExecInitExpr(clause_arg((Expr *) lfirst(lc),
											  list_nth_int(argnos, i)),
								   (PlanState *) node);
		i++;
	}
	st->pass_cxt = AllocSetContextCreate(estate->es_query_cxt,
										 "kvstore scan pass",
										 ALLOCSET_DEFAULT_SIZES);
	st->row_cxt = AllocSetContextCreate(estate->es_query_cxt,
										"kvstore scan row",
										ALLOCSET_DEFAULT_SIZES);
}

/* Order of keys to look up */
static int
compare_keys(const void *a, const void *b)
{
	const KvKey *ka = (const KvKey *) a;
	const KvKey *kb = (const KvKey *) b;

	return KvKeyCompare(ka->data, ka->len, kb->data, kb->len);
}

/* Narrow the prefix of a scan; two prefixes neither of which starts the other admit nothing */
static void
add_prefix(KvScanState *st, KvScanBounds *b, char *p, uint32 len)
{
	if (len == 0)
		return;
	if (b->prefix == NULL ||
		(len > b->prefixlen && memcmp(p, b->prefix, b->prefixlen) == 0))
	{
		b->prefix = p;
		b->prefixlen = len;
	}
	else if (!(len <= b->prefixlen && memcmp(p, b->prefix, len) == 0))
		st->empty = true;
}

/*
 * Begin a pass of the scan: evaluate the arguments of the key conditions
 * (parameters may have changed since the last pass), and set up the keys
 * to look up or the cursor.
 */
static void
scan_start(ForeignScanState *node, KvScanState *st)
{
	ExprContext *econtext = node->ss.ps.ps_ExprContext;
	MemoryContext oldcontext;
	KvScanBounds b = {0};

	MemoryContextReset(st->pass_cxt);
	oldcontext = MemoryContextSwitchTo(st->pass_cxt);
	st->empty = false;
	st->scan = NULL;
	st->keys = NULL;
	st->nkeys = 0;
	st->next = 0;
	b.backward = st->backward;

	for (int i = 0; i < st->nconds && !st->empty; i++)
	{
		bool		isnull;
		Datum		d = ExecEvalExpr(st->args[i], econtext, &isnull);
		bytea	   *arg;
		char	   *data;
		uint32		len;
		int			cmp;

		if (isnull)
		{
			st->empty = true;
			break;
		}
		if (st->kinds[i] == KV_COND_ANY)
		{
			ArrayType  *array = DatumGetArrayTypeP(d);
			Datum	   *elems;
			bool	   *nulls;
			int			n;

			deconstruct_array(array, ARR_ELEMTYPE(array), -1, false, TYPALIGN_INT,
							  &elems, &nulls, &n);
			st->keys = palloc(sizeof(KvKey) * Max(n, 1));
			for (int j = 0; j < n; j++)
			{
				bytea	   *e;

				if (nulls[j])
					continue;
				e = DatumGetByteaPP(elems[j]);
				st->keys[st->nkeys].data = VARDATA_ANY(e);
				st->keys[st->nkeys].len = VARSIZE_ANY_EXHDR(e);
				st->nkeys++;
			}
			continue;
		}

		arg = DatumGetByteaPP(d);
		data = VARDATA_ANY(arg);
		len = VARSIZE_ANY_EXHDR(arg);
		switch (st->kinds[i])
		{
			case KV_COND_EQ:
				st->keys = palloc(sizeof(KvKey));
				st->keys[0].data = data;
				st->keys[0].len = len;
				st->nkeys = 1;
				break;
			case KV_COND_GE:
			case KV_COND_GT:
				cmp = b.lower ? KvKeyCompare(data, len, b.lower, b.lowerlen) : 1;
				if (cmp > 0 || (cmp == 0 && st->kinds[i] == KV_COND_GT))
				{
					b.lower = data;
					b.lowerlen = len;
					b.lower_inclusive = st->kinds[i] == KV_COND_GE;
				}
				break;
			case KV_COND_LE:
			case KV_COND_LT:
				cmp = b.upper ? KvKeyCompare(data, len, b.upper, b.upperlen) : -1;
				if (cmp < 0 || (cmp == 0 && st->kinds[i] == KV_COND_LT))
				{
					b.upper = data;
					b.upperlen = len;
					b.upper_inclusive = st->kinds[i] == KV_COND_LE;
				}
				break;
			case KV_COND_PREFIX:
				add_prefix(st, &b, data, len);
				break;
			case KV_COND_LIKE:
				{
					char	   *prefix;
					int			prefixlen;

					(void) KvFdwLikePrefix(data, len, &prefix, &prefixlen);
					add_prefix(st, &b, prefix, prefixlen);
				}
				break;
			case KV_COND_ANY:
				break;
		}
	}

	if (st->nkeys > 1)
	{
		int			n = 1;

		/* Sorted and distinct: each key once, in order */
		qsort(st->keys, st->nkeys, sizeof(KvKey), compare_keys);
		for (int j = 1; j < st->nkeys; j++)
		{
			if (compare_keys(&st->keys[j], &st->keys[n - 1]) != 0)
				st->keys[n++] = st->keys[j];
		}
		st->nkeys = n;
	}
	if (!st->empty &&
		(st->access == KV_ACCESS_FULL || st->access == KV_ACCESS_RANGE))
		st->scan = KvScanBegin(st->ref, &b);
	MemoryContextSwitchTo(oldcontext);
	st->started = true;
}

/* The next entry of the scan, copied into the row context */
static bool
scan_next(KvScanState *st, KvRow *row)
{
	if (st->empty)
		return false;
	if (st->access == KV_ACCESS_FULL || st->access == KV_ACCESS_RANGE)
		return KvScanNext(st->scan, row);
	while (st->next < st->nkeys)
	{
		KvKey	   *k = &st->keys[st->backward ? st->nkeys - 1 - st->next : st->next];

		st->next++;
		if (KvScanLookup(st->ref, k->data, k->len, row))
			return true;
	}
	return false;
}

/*
 * kvBeginForeignScan
 *		Set up a scan of a foreign table.
 *
 * The topic is opened for reading (which never creates it); nothing is
 * read until the first row is asked for.
 */
void
kvBeginForeignScan(ForeignScanState *node, int eflags)
{
	scan_init(node, eflags);
}

/*
 * kvIterateForeignScan
 *		The next row of the scan, or an empty slot at its end.
 */
TupleTableSlot *
kvIterateForeignScan(ForeignScanState *node)
{
	KvScanState *st = (KvScanState *) node->fdw_state;
	TupleTableSlot *slot = node->ss.ss_ScanTupleSlot;
	MemoryContext oldcontext;
	KvRow		row;

	if (!st->started)
		scan_start(node, st);
	ExecClearTuple(slot);
	MemoryContextReset(st->row_cxt);
	oldcontext = MemoryContextSwitchTo(st->row_cxt);
	if (scan_next(st, &row))
	{
		entry_to_values(st->io, &row, slot->tts_values, slot->tts_isnull);
		ExecStoreVirtualTuple(slot);
	}
	MemoryContextSwitchTo(oldcontext);
	return slot;
}

/*
 * kvReScanForeignScan
 *		Start the scan again, with the parameters of now.
 */
void
kvReScanForeignScan(ForeignScanState *node)
{
	KvScanState *st = (KvScanState *) node->fdw_state;

	st->started = false;
}

/*
 * kvEndForeignScan
 *		End a scan: its memory goes with the query's.
 */
void
kvEndForeignScan(ForeignScanState *node)
{
}

/* ----------------------------------------------------------------
 *		Writes
 * ----------------------------------------------------------------
 */

/* Hash of a key the statement wrote */
static uint32
written_hash(const void *key, Size keysize)
{
	const KvKey *k = (const KvKey *) key;

	return hash_bytes((const unsigned char *) k->data, k->len);
}

/* Whether two written keys are the same */
static int
written_match(const void *a, const void *b, Size keysize)
{
	return compare_keys(a, b);
}

/* Remember that the statement wrote a key */
static void
remember_written(KvModifyState *st, const char *key, uint32 len)
{
	KvKey		k;
	bool		found;
	KvKey	   *entry;

	k.data = (char *) key;
	k.len = len;
	entry = (KvKey *) hash_search(st->written, &k, HASH_ENTER, &found);
	if (!found)
	{
		entry->data = MemoryContextAlloc(st->cxt, Max(len, 1));
		memcpy(entry->data, key, len);
		entry->len = len;
	}
}

/* Whether the statement wrote a key */
static bool
was_written(KvModifyState *st, const char *key, uint32 len)
{
	KvKey		k;

	k.data = (char *) key;
	k.len = len;
	return hash_search(st->written, &k, HASH_FIND, NULL) != NULL;
}

/* Set up a write to a table; open its topic unless only explained */
static KvModifyState *
modify_init(Relation rel, KvFdwTable *table, CmdType operation, bool open)
{
	KvModifyState *st = palloc0(sizeof(KvModifyState));
	List	   *attrs = NIL;

	for (int i = 1; i <= table->natts; i++)
		attrs = lappend_int(attrs, i);
	st->table = table;
	st->io = row_io(table, rel, attrs);
	st->rel = rel;
	st->operation = operation;
	st->cxt = CurrentMemoryContext;
	if (open)
		st->ref = KvTopicOpen(table->topic, KV_OPEN_WRITE,
							  KvFdwConnection(table->serverid));
	st->row_cxt = AllocSetContextCreate(CurrentMemoryContext,
										"kvstore write row",
										ALLOCSET_DEFAULT_SIZES);
	initStringInfo(&st->buf);
	return st;
}

/* Send one record of the statement, opening its transaction first */
static void
write_record(KvModifyState *st, const KvRecord *rec)
{
	if (!st->writing)
	{
		KvProducerBegin(st->ref, true);
		st->writing = true;
	}
	KvProducerSend(rec);
	if (st->written)
		remember_written(st, rec->key, rec->keylen);
}

/* Send a tombstone, opening the transaction first */
static void
write_tombstone(KvTopicRef *ref, bool *writing, const char *key, uint32 keylen)
{
	KvRecord	rec = KvRecordFromBytes(key, keylen, NULL, 0, true);

	KvRecordCheck(ref->name, &rec);
	if (!*writing)
	{
		KvProducerBegin(ref, true);
		*writing = true;
	}
	KvProducerSend(&rec);
}

/* Errors while waiting say that the statement's writes are stored */
static void
wait_place_callback(void *arg)
{
	KvWaitPlace *place = (KvWaitPlace *) arg;

	errcontext("the statement's writes to topic \"%s\" were committed in Kafka up to offset " INT64_FORMAT " and will become visible once applied",
			   place->topic, place->offset);
}

/*
 * Commit the statement's Kafka transaction, then wait once until this
 * server has applied it.
 */
static void
finish_write(KvTopicRef *ref)
{
	KvWaitPlace place;
	ErrorContextCallback errcallback;

	place.topic = ref->name;
	place.offset = KvProducerCommit();
	if (place.offset < 0)
		return;
	errcallback.callback = wait_place_callback;
	errcallback.arg = &place;
	errcallback.previous = error_context_stack;
	error_context_stack = &errcallback;
	KvTopicWaitApplied(ref, place.offset);
	error_context_stack = errcallback.previous;
}

/*
 * kvBeginForeignModify
 *		Set up an INSERT, UPDATE or DELETE of a foreign table.
 *
 * Writes open the topic with KV_OPEN_WRITE, which creates a missing one
 * only while kvstore.auto_create_topics is on.  The Kafka transaction is
 * opened by the first record, so a statement that writes nothing sends
 * nothing.
 */
void
kvBeginForeignModify(ModifyTableState *mtstate, ResultRelInfo *rinfo,
					 List *fdw_private, int subplan_index, int eflags)
{
	Relation	rel = rinfo->ri_RelationDesc;
	KvFdwTable *table = KvFdwTableFromList((List *) list_nth(fdw_private,
															 KvModifyPrivateTable),
										   rel);
	CmdType		operation = mtstate->operation;
	KvModifyState *st;

	st = modify_init(rel, table, operation, !(eflags & EXEC_FLAG_EXPLAIN_ONLY));
	rinfo->ri_FdwState = st;
	if (eflags & EXEC_FLAG_EXPLAIN_ONLY)
		return;

	if (operation == CMD_UPDATE || operation == CMD_DELETE)
	{
		Plan	   *subplan = outerPlanState(mtstate)->plan;

		st->key_junk = ExecFindJunkAttributeInTlist(subplan->targetlist, KV_KEY_JUNK);
		if (!AttributeNumberIsValid(st->key_junk))
			elog(ERROR, "could not find junk column %s", KV_KEY_JUNK);
		st->wholerow_junk = ExecFindJunkAttributeInTlist(subplan->targetlist, "wholerow");
	}
	if (operation == CMD_UPDATE)
	{
		Bitmapset  *updated = ExecGetUpdatedCols(rinfo, mtstate->ps.state);

		for (int i = 0; i < table->natts; i++)
		{
			if (KV_COLUMN_IS_METADATA(table->kinds[i]) &&
				bms_is_member(i + 1 - FirstLowInvalidHeapAttributeNumber, updated))
				ereport(ERROR,
						(errcode(ERRCODE_GENERATED_ALWAYS),
						 errmsg("column \"%s\" of foreign table \"%s\" is read-only",
								st->io->cols[i].name, table->name),
						 errdetail(table->kinds[i] == KV_COLUMN_OFFSET ?
								   "It shows the offset of the record that wrote the key in topic \"%s\"." :
								   "It shows the timestamp of the record that wrote the key in topic \"%s\".",
								   table->topic)));
		}
		if (bms_is_member(table->key_attno - FirstLowInvalidHeapAttributeNumber, updated))
		{
			HASHCTL		ctl;

			ctl.keysize = sizeof(KvKey);
			ctl.entrysize = sizeof(KvKey);
			ctl.hash = written_hash;
			ctl.match = written_match;
			ctl.hcxt = CurrentMemoryContext;
			st->written = hash_create("kvstore keys written", 1024, &ctl,
									  HASH_ELEM | HASH_FUNCTION | HASH_COMPARE |
									  HASH_CONTEXT);
		}
	}
}

/*
 * kvExecForeignInsert
 *		Write one row: INSERT writes the key whether or not it exists.
 */
TupleTableSlot *
kvExecForeignInsert(EState *estate, ResultRelInfo *rinfo,
					TupleTableSlot *slot, TupleTableSlot *planSlot)
{
	KvModifyState *st = (KvModifyState *) rinfo->ri_FdwState;
	MemoryContext oldcontext;
	KvRecord	rec;

	MemoryContextReset(st->row_cxt);
	oldcontext = MemoryContextSwitchTo(st->row_cxt);
	rec = slot_to_record(st->io, slot, &st->buf, true);
	write_record(st, &rec);
	MemoryContextSwitchTo(oldcontext);
	return slot;
}

/*
 * kvExecForeignBatchInsert
 *		Write a batch of rows.
 *
 * Records are produced without waiting in any case: a batch saves the
 * calls between the executor and the wrapper.
 */
TupleTableSlot **
kvExecForeignBatchInsert(EState *estate, ResultRelInfo *rinfo,
						 TupleTableSlot **slots, TupleTableSlot **planSlots,
						 int *numSlots)
{
	for (int i = 0; i < *numSlots; i++)
		(void) kvExecForeignInsert(estate, rinfo, slots[i], planSlots ? planSlots[i] : NULL);
	return slots;
}

/*
 * kvGetForeignModifyBatchSize
 *		Rows per batch of an INSERT: the option batch_size, or 1 when rows
 *		are returned or row triggers fire.
 */
int
kvGetForeignModifyBatchSize(ResultRelInfo *rinfo)
{
	KvModifyState *st = (KvModifyState *) rinfo->ri_FdwState;

	if (st == NULL || rinfo->ri_projectReturning != NULL ||
		(rinfo->ri_TrigDesc &&
		 (rinfo->ri_TrigDesc->trig_insert_before_row ||
		  rinfo->ri_TrigDesc->trig_insert_after_row)))
		return 1;
	return st->table->batch_size;
}

/*
 * kvExecForeignUpdate
 *		Write the new row; a changed key deletes the old one first.
 *
 * The old key comes from the junk column kvAddForeignUpdateTargets asked
 * for.  A tombstone for the old key is not sent when this statement wrote
 * that key already: two rows may trade keys.  Offset columns of the row
 * returned are NULL: the new record's offset is not known yet.
 */
TupleTableSlot *
kvExecForeignUpdate(EState *estate, ResultRelInfo *rinfo,
					TupleTableSlot *slot, TupleTableSlot *planSlot)
{
	KvModifyState *st = (KvModifyState *) rinfo->ri_FdwState;
	MemoryContext oldcontext;
	KvRecord	rec;
	bool		isnull;
	Datum		oldkey;
	const char *old;
	uint32		oldlen;

	MemoryContextReset(st->row_cxt);
	oldcontext = MemoryContextSwitchTo(st->row_cxt);
	oldkey = ExecGetJunkAttribute(planSlot, st->key_junk, &isnull);
	if (isnull)
		elog(ERROR, "the key of a row to update is NULL");
	datum_bytes(st->table->types[st->table->key_attno - 1], oldkey, &old, &oldlen);

	rec = slot_to_record(st->io, slot, &st->buf, false);
	if (st->table->json)
		keep_other_fields(st, old, oldlen, &rec);
	if (KvKeyCompare(old, oldlen, rec.key, rec.keylen) != 0 &&
		!(st->written && was_written(st, old, oldlen)))
		write_tombstone(st->ref, &st->writing, old, oldlen);
	write_record(st, &rec);

	if (st->io->has_metadata)
	{
		Datum	   *values = palloc(sizeof(Datum) * st->io->natts);
		bool	   *nulls = palloc(sizeof(bool) * st->io->natts);
		TupleDesc	tupdesc = slot->tts_tupleDescriptor;

		for (int i = 0; i < st->io->natts; i++)
		{
			Form_pg_attribute att = TupleDescAttr(tupdesc, i);

			nulls[i] = slot->tts_isnull[i] ||
				KV_COLUMN_IS_METADATA(st->io->cols[i].kind);
			values[i] = nulls[i] ? (Datum) 0 :
				datumCopy(slot->tts_values[i], att->attbyval, att->attlen);
		}
		ExecClearTuple(slot);
		memcpy(slot->tts_values, values, sizeof(Datum) * st->io->natts);
		memcpy(slot->tts_isnull, nulls, sizeof(bool) * st->io->natts);
		ExecStoreVirtualTuple(slot);
	}
	MemoryContextSwitchTo(oldcontext);
	return slot;
}

/*
 * kvExecForeignDelete
 *		Write a tombstone for the row's key.
 *
 * For RETURNING, the row deleted comes from the whole-row junk column.
 */
TupleTableSlot *
kvExecForeignDelete(EState *estate, ResultRelInfo *rinfo,
					TupleTableSlot *slot, TupleTableSlot *planSlot)
{
	KvModifyState *st = (KvModifyState *) rinfo->ri_FdwState;
	MemoryContext oldcontext;
	bool		isnull;
	Datum		key;
	const char *data;
	uint32		len;

	MemoryContextReset(st->row_cxt);
	oldcontext = MemoryContextSwitchTo(st->row_cxt);
	key = ExecGetJunkAttribute(planSlot, st->key_junk, &isnull);
	if (isnull)
		elog(ERROR, "the key of a row to delete is NULL");
	datum_bytes(st->table->types[st->table->key_attno - 1], key, &data, &len);
	write_tombstone(st->ref, &st->writing, data, len);
	MemoryContextSwitchTo(oldcontext);

	if (AttributeNumberIsValid(st->wholerow_junk))
	{
		Datum		row = ExecGetJunkAttribute(planSlot, st->wholerow_junk, &isnull);

		if (!isnull)
		{
			HeapTupleHeader td = DatumGetHeapTupleHeader(row);
			HeapTupleData tuple;

			tuple.t_len = HeapTupleHeaderGetDatumLength(td);
			ItemPointerSetInvalid(&tuple.t_self);
			tuple.t_tableOid = RelationGetRelid(st->rel);
			tuple.t_data = td;
			ExecForceStoreHeapTuple(heap_copytuple(&tuple), slot, true);
		}
	}
	return slot;
}

/*
 * kvEndForeignModify
 *		Commit the statement's writes and wait once until they are applied.
 */
void
kvEndForeignModify(EState *estate, ResultRelInfo *rinfo)
{
	KvModifyState *st = (KvModifyState *) rinfo->ri_FdwState;

	if (st != NULL && st->writing)
	{
		st->writing = false;
		finish_write(st->ref);
	}
}

/*
 * kvBeginForeignInsert
 *		Set up the rows of COPY FROM, or of an INSERT routed to a foreign
 *		partition: there is no plan of ours, so the options are read now.
 */
void
kvBeginForeignInsert(ModifyTableState *mtstate, ResultRelInfo *rinfo)
{
	Relation	rel = rinfo->ri_RelationDesc;

	rinfo->ri_FdwState = modify_init(rel, KvFdwGetTable(rel), CMD_INSERT, true);
}

/*
 * kvEndForeignInsert
 *		Commit and wait, as at the end of an INSERT.
 */
void
kvEndForeignInsert(EState *estate, ResultRelInfo *rinfo)
{
	kvEndForeignModify(estate, rinfo);
}

/*
 * kvBeginDirectModify
 *		Set up a DELETE that the index decides alone: no row goes through
 *		the executor.
 */
void
kvBeginDirectModify(ForeignScanState *node, int eflags)
{
	ForeignScan *fsplan = (ForeignScan *) node->ss.ps.plan;
	KvScanState *st;

	scan_init(node, eflags);
	st = (KvScanState *) node->fdw_state;
	st->set_processed = intVal(list_nth(fsplan->fdw_private, KvScanPrivateSetProcessed)) != 0;
}

/*
 * kvIterateDirectModify
 *		Write a tombstone for every key the scan finds, commit and wait;
 *		the count of rows goes to the command tag.
 */
TupleTableSlot *
kvIterateDirectModify(ForeignScanState *node)
{
	KvScanState *st = (KvScanState *) node->fdw_state;
	EState	   *estate = node->ss.ps.state;
	bool		writing = false;
	uint64		n = 0;
	KvRow		row;

	if (!st->done)
	{
		st->done = true;
		scan_start(node, st);
		for (;;)
		{
			MemoryContext oldcontext;
			bool		found;

			MemoryContextReset(st->row_cxt);
			oldcontext = MemoryContextSwitchTo(st->row_cxt);
			found = scan_next(st, &row);
			if (found)
				write_tombstone(st->ref, &writing, row.key, row.keylen);
			MemoryContextSwitchTo(oldcontext);
			if (!found)
				break;
			n++;
		}
		if (writing)
			finish_write(st->ref);
		if (st->set_processed)
			estate->es_processed += n;
	}
	return ExecClearTuple(node->ss.ss_ScanTupleSlot);
}

/*
 * kvEndDirectModify
 *		End a direct DELETE.
 */
void
kvEndDirectModify(ForeignScanState *node)
{
}

/*
 * kvExecForeignTruncate
 *		Delete every key of each table's topic: one Kafka transaction and
 *		one wait per table.
 */
void
kvExecForeignTruncate(List *rels, DropBehavior behavior, bool restart_seqs)
{
	ListCell   *lc;

	foreach(lc, rels)
	{
		Relation	rel = (Relation) lfirst(lc);
		KvFdwTable *table = KvFdwGetTable(rel);
		KvTopicRef *ref = KvTopicOpen(table->topic, KV_OPEN_READ,
									  KvFdwConnection(table->serverid));
		KvScanBounds bounds = {0};
		KvScan	   *scan = KvScanBegin(ref, &bounds);
		bool		writing = false;
		KvRow		row;

		while (KvScanNext(scan, &row))
			write_tombstone(ref, &writing, row.key, row.keylen);
		KvScanEnd(scan);
		if (writing)
			finish_write(ref);
	}
}

/* ----------------------------------------------------------------
 *		ANALYZE
 * ----------------------------------------------------------------
 */

/*
 * kvAnalyzeForeignTable
 *		ANALYZE samples the rows from the index.
 */
bool
kvAnalyzeForeignTable(Relation relation, AcquireSampleRowsFunc *func,
					  BlockNumber *totalpages)
{
	KvFdwTable *table = KvFdwGetTable(relation);
	KvTopicRef *ref = KvTopicOpen(table->topic, KV_OPEN_READ,
								  KvFdwConnection(table->serverid));
	uint64		bytes = ref->topic->index.bytes;	/* an estimate: unlocked */

	*func = acquire_sample_rows;
	*totalpages = Max((BlockNumber) 1, (BlockNumber) (bytes / BLCKSZ));
	return true;
}

/*
 * A random sample of targrows rows, read from the index in one pass
 * (reservoir sampling); *totalrows is the count of keys.
 */
static int
acquire_sample_rows(Relation relation, int elevel, HeapTuple *rows,
					int targrows, double *totalrows, double *totaldeadrows)
{
	KvFdwTable *table = KvFdwGetTable(relation);
	TupleDesc	tupdesc = RelationGetDescr(relation);
	List	   *attrs = NIL;
	KvRowIO    *io;
	KvTopicRef *ref = KvTopicOpen(table->topic, KV_OPEN_READ,
								  KvFdwConnection(table->serverid));
	KvScanBounds bounds = {0};
	KvScan	   *scan;
	Datum	   *values = palloc(sizeof(Datum) * tupdesc->natts);
	bool	   *nulls = palloc(sizeof(bool) * tupdesc->natts);
	MemoryContext row_cxt;
	MemoryContext oldcontext;
	ReservoirStateData rstate;
	double		rowstoskip = -1;
	double		samplerows = 0;
	int			numrows = 0;
	KvRow		row;

	for (int i = 1; i <= table->natts; i++)
		attrs = lappend_int(attrs, i);
	io = row_io(table, relation, attrs);
	row_cxt = AllocSetContextCreate(CurrentMemoryContext, "kvstore analyze row",
									ALLOCSET_DEFAULT_SIZES);
	reservoir_init_selection_state(&rstate, targrows);
	scan = KvScanBegin(ref, &bounds);
	while (KvScanNext(scan, &row))
	{
		int			slot = -1;

		if (numrows < targrows)
			slot = numrows++;
		else
		{
			if (rowstoskip < 0)
				rowstoskip = reservoir_get_next_S(&rstate, samplerows, targrows);
			if (rowstoskip <= 0)
			{
				slot = (int) (targrows * sampler_random_fract(&rstate.randstate));
				heap_freetuple(rows[slot]);
			}
			rowstoskip -= 1;
		}
		samplerows += 1;
		if (slot < 0)
			continue;

		MemoryContextReset(row_cxt);
		oldcontext = MemoryContextSwitchTo(row_cxt);
		entry_to_values(io, &row, values, nulls);
		MemoryContextSwitchTo(oldcontext);
		rows[slot] = heap_form_tuple(tupdesc, values, nulls);
	}
	KvScanEnd(scan);
	MemoryContextDelete(row_cxt);

	ereport(elevel,
			(errmsg("\"%s\": topic \"%s\" holds %.0f keys, %d rows in the sample",
					RelationGetRelationName(relation), table->topic,
					samplerows, numrows)));
	*totalrows = samplerows;
	*totaldeadrows = 0;
	return numrows;
}
