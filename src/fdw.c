/*-------------------------------------------------------------------------
 *
 * fdw.c
 *		  The foreign data wrapper: handler, option validator, IMPORT FOREIGN
 *		  SCHEMA
 *
 * A kvstore foreign table is a topic seen as a table: one row per live
 * key.  The handler hands the planner callbacks of fdw_plan.c and the
 * executor callbacks of fdw_exec.c to PostgreSQL.
 *
 * The validator runs at CREATE and ALTER of servers, foreign tables and
 * their columns, and checks the syntax of each option only: it asks
 * nothing of Kafka, and a topic named by a table is checked against the
 * names kvstore may attach (KvTopicCheckAllowed) but not looked up.  How
 * the options of one table fit together (one key column, the types of the
 * columns) is checked when the table is used (KvFdwGetTable), since a
 * column option is validated without its table.
 *
 * A server names its Kafka cluster with option brokers (else
 * kvstore.brokers) and takes any other librdkafka property as an option;
 * credentials go in user mappings (KvKafkaCheckOption says which go where).
 * KvFdwConnection turns the server's options and those of the current
 * user's mapping into the topic's connection (kafka.c).  The connection is
 * looked up when a topic is opened, never kept in a plan, so that a plan
 * cached for one role is run with the credentials of the role running
 * it.  A server without Kafka properties uses the default connection, the
 * one of the kv_* functions.  kv_sync, kv_checksum and kv_detach may name a
 * server (KvFdwServerConnection) to act on the topic of its connection.
 *
 * IMPORT FOREIGN SCHEMA makes one table (key text COLLATE "C", value text)
 * per topic of the server's cluster that this server may attach.
 *
 * IDENTIFICATION
 *		  src/fdw.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/reloptions.h"
#include "catalog/pg_attribute.h"
#include "catalog/pg_foreign_server.h"
#include "catalog/pg_foreign_table.h"
#include "catalog/pg_user_mapping.h"
#include "commands/defrem.h"
#include "foreign/fdwapi.h"
#include "foreign/foreign.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/syscache.h"

#include "kvstore.h"

PG_FUNCTION_INFO_V1(kvstore_fdw_handler);
PG_FUNCTION_INFO_V1(kvstore_fdw_validator);

/* One option and the catalog of the objects it belongs to */
typedef struct KvFdwOption
{
	const char *name;
	Oid			context;		/* ForeignTableRelationId, ... */
} KvFdwOption;

static const KvFdwOption kv_fdw_options[] = {
	{"batch_size", ForeignServerRelationId},
	{"brokers", ForeignServerRelationId},
	{"topic", ForeignTableRelationId},
	{"format", ForeignTableRelationId},
	{"batch_size", ForeignTableRelationId},
	{"key", AttributeRelationId},
	{"value", AttributeRelationId},
	{"field", AttributeRelationId},
	{"metadata", AttributeRelationId},
	{NULL, InvalidOid}
};

static int	kvIsForeignRelUpdatable(Relation rel);
static List *kvImportForeignSchema(ImportForeignSchemaStmt *stmt,
								   Oid serverOid);
static bool is_valid_option(const char *name, Oid context);
static char *valid_options_list(Oid context);
static void check_option_value(DefElem *def, Oid context);
static List *user_mapping_options(Oid userid, Oid serverid);
static void connection_cache_reset(Datum arg, int cacheid, uint32 hashvalue);
static bool is_kvstore_handler(Oid handler);

/*
 * The connection KvFdwConnection built last, kept until the catalog of
 * servers or user mappings changes: every statement on a table asks for it
 */
static bool conn_cache_valid = false;
static bool conn_cache_callbacks = false;
static Oid	conn_cache_server = InvalidOid;
static Oid	conn_cache_user = InvalidOid;
static char *conn_cache = NULL; /* in TopMemoryContext; NULL: the default */

/*
 * kvstore_fdw_handler
 *		The callbacks of the kvstore foreign data wrapper.
 */
Datum
kvstore_fdw_handler(PG_FUNCTION_ARGS)
{
	FdwRoutine *routine = makeNode(FdwRoutine);

	/* reads: fdw_plan.c plans, fdw_exec.c runs */
	routine->GetForeignRelSize = kvGetForeignRelSize;
	routine->GetForeignPaths = kvGetForeignPaths;
	routine->GetForeignPlan = kvGetForeignPlan;
	routine->BeginForeignScan = kvBeginForeignScan;
	routine->IterateForeignScan = kvIterateForeignScan;
	routine->ReScanForeignScan = kvReScanForeignScan;
	routine->EndForeignScan = kvEndForeignScan;
	routine->ExplainForeignScan = kvExplainForeignScan;
	routine->AnalyzeForeignTable = kvAnalyzeForeignTable;

	/* writes */
	routine->IsForeignRelUpdatable = kvIsForeignRelUpdatable;
	routine->AddForeignUpdateTargets = kvAddForeignUpdateTargets;
	routine->PlanForeignModify = kvPlanForeignModify;
	routine->BeginForeignModify = kvBeginForeignModify;
	routine->ExecForeignInsert = kvExecForeignInsert;
	routine->ExecForeignBatchInsert = kvExecForeignBatchInsert;
	routine->GetForeignModifyBatchSize = kvGetForeignModifyBatchSize;
	routine->ExecForeignUpdate = kvExecForeignUpdate;
	routine->ExecForeignDelete = kvExecForeignDelete;
	routine->EndForeignModify = kvEndForeignModify;
	routine->BeginForeignInsert = kvBeginForeignInsert;
	routine->EndForeignInsert = kvEndForeignInsert;
	routine->ExplainForeignModify = kvExplainForeignModify;
	routine->PlanDirectModify = kvPlanDirectModify;
	routine->BeginDirectModify = kvBeginDirectModify;
	routine->IterateDirectModify = kvIterateDirectModify;
	routine->EndDirectModify = kvEndDirectModify;
	routine->ExplainDirectModify = kvExplainDirectModify;
	routine->ExecForeignTruncate = kvExecForeignTruncate;

	routine->ImportForeignSchema = kvImportForeignSchema;

	PG_RETURN_POINTER(routine);
}

/* Every kvstore foreign table takes INSERT, UPDATE and DELETE */
static int
kvIsForeignRelUpdatable(Relation rel)
{
	return (1 << CMD_INSERT) | (1 << CMD_UPDATE) | (1 << CMD_DELETE);
}

/* Whether name is an option of the objects of catalog context */
static bool
is_valid_option(const char *name, Oid context)
{
	for (const KvFdwOption *opt = kv_fdw_options; opt->name; opt++)
	{
		if (opt->context == context && strcmp(opt->name, name) == 0)
			return true;
	}
	return false;
}

/* The options of the objects of catalog context, for a hint */
static char *
valid_options_list(Oid context)
{
	StringInfoData buf;

	initStringInfo(&buf);
	for (const KvFdwOption *opt = kv_fdw_options; opt->name; opt++)
	{
		if (opt->context == context)
			appendStringInfo(&buf, "%s%s", buf.len > 0 ? ", " : "", opt->name);
	}
	return buf.data;
}

/* Refuse a malformed option value */
static void
check_option_value(DefElem *def, Oid context)
{
	const char *value = defGetString(def);

	if (strcmp(def->defname, "topic") == 0)
		KvTopicCheckAllowed(value);
	else if (strcmp(def->defname, "brokers") == 0)
	{
		if (value[0] == '\0' || strchr(value, '\n') != NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid value for option \"brokers\": \"%s\"", value),
					 errhint("brokers is a comma-separated list of host:port.")));
	}
	else if (strcmp(def->defname, "format") == 0)
	{
		if (strcmp(value, "raw") != 0 && strcmp(value, "json") != 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid value for option \"format\": \"%s\"", value),
					 errhint("Valid values are \"raw\" (a key column and a value column) and \"json\" (the value is a JSON object of the other columns).")));
	}
	else if (strcmp(def->defname, "batch_size") == 0)
	{
		int			batch_size;

		if (!parse_int(value, &batch_size, 0, NULL) || batch_size < 1)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid value for option \"batch_size\": \"%s\"", value),
					 errhint("batch_size is a whole number of rows, at least 1.")));
	}
	else if (strcmp(def->defname, "key") == 0 ||
			 strcmp(def->defname, "value") == 0)
		(void) defGetBoolean(def);
	else if (strcmp(def->defname, "field") == 0)
	{
		if (value[0] == '\0')
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"field\" must not be empty")));
	}
	else if (strcmp(def->defname, "metadata") == 0)
	{
		if (strcmp(value, "offset") != 0 && strcmp(value, "timestamp") != 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid value for option \"metadata\": \"%s\"", value),
					 errhint("Valid values are \"offset\", for a bigint column, and \"timestamp\", for a timestamptz column.")));
	}
}

/*
 * kvstore_fdw_validator
 *		Refuse unknown and malformed options of kvstore servers, foreign
 *		tables and their columns.
 *
 * Only the syntax of each option is checked here: nothing is asked of
 * Kafka, so that a table can be created before its topic.
 */
Datum
kvstore_fdw_validator(PG_FUNCTION_ARGS)
{
	List	   *options = untransformRelOptions(PG_GETARG_DATUM(0));
	Oid			catalog = PG_GETARG_OID(1);
	ListCell   *lc;
	bool		key = false;
	bool		value = false;
	int			column_roles = 0;

	foreach(lc, options)
	{
		DefElem    *def = (DefElem *) lfirst(lc);

		/* Other options of servers and user mappings are for librdkafka */
		if ((catalog == ForeignServerRelationId &&
			 !is_valid_option(def->defname, catalog)) ||
			catalog == UserMappingRelationId)
		{
			KvKafkaCheckOption(def->defname, defGetString(def),
							   catalog == UserMappingRelationId);
			continue;
		}
		if (!is_valid_option(def->defname, catalog))
		{
			char	   *valid = valid_options_list(catalog);

			ereport(ERROR,
					(errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
					 errmsg("invalid option \"%s\"", def->defname),
					 valid[0] != '\0' ?
					 errhint("Valid options in this context are: %s.", valid) :
					 errhint("There are no valid options in this context.")));
		}
		check_option_value(def, catalog);

		if (strcmp(def->defname, "key") == 0)
			key = defGetBoolean(def);
		else if (strcmp(def->defname, "value") == 0)
			value = defGetBoolean(def);
		else if (strcmp(def->defname, "field") == 0 ||
				 strcmp(def->defname, "metadata") == 0)
			column_roles++;
	}

	/* A column holds one thing */
	if (catalog == AttributeRelationId && key + value + column_roles > 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("conflicting options for a column of a kvstore foreign table"),
				 errdetail("A column is the key, the value, a JSON field or a metadata column, not several of them.")));

	PG_RETURN_VOID();
}

/* The options of a user's mapping for a server, or of PUBLIC's; NIL if none */
static List *
user_mapping_options(Oid userid, Oid serverid)
{
	HeapTuple	tp;
	Datum		datum;
	bool		isnull;
	List	   *options = NIL;

	tp = SearchSysCache2(USERMAPPINGUSERSERVER, ObjectIdGetDatum(userid),
						 ObjectIdGetDatum(serverid));
	if (!HeapTupleIsValid(tp))
		tp = SearchSysCache2(USERMAPPINGUSERSERVER, ObjectIdGetDatum(InvalidOid),
							 ObjectIdGetDatum(serverid));
	if (!HeapTupleIsValid(tp))
		return NIL;
	datum = SysCacheGetAttr(USERMAPPINGUSERSERVER, tp,
							Anum_pg_user_mapping_umoptions, &isnull);
	if (!isnull)
		options = untransformRelOptions(datum);
	ReleaseSysCache(tp);
	return options;
}

/*
 * KvFdwConnection
 *		The connection of a server for the current user: the server's
 *		librdkafka properties, then those of the user's mapping (or of
 *		PUBLIC's), as kafka.c takes them; NULL for the default connection.
 *
 * Option brokers becomes bootstrap.servers.  Two users with different
 * mappings have different connections, so each materializes the topics
 * it reads in a slot of its own, consumed with its own credentials.  The
 * result is the backend's until the next call: callers copy it.
 */
const char *
KvFdwConnection(Oid serverid)
{
	Oid			userid = GetUserId();
	ForeignServer *server;
	StringInfoData buf;
	ListCell   *lc;

	if (conn_cache_valid && conn_cache_server == serverid &&
		conn_cache_user == userid)
		return conn_cache;
	if (!conn_cache_callbacks)
	{
		CacheRegisterSyscacheCallback(FOREIGNSERVEROID,
									  connection_cache_reset, (Datum) 0);
		CacheRegisterSyscacheCallback(USERMAPPINGOID,
									  connection_cache_reset, (Datum) 0);
		conn_cache_callbacks = true;
	}

	server = GetForeignServer(serverid);
	initStringInfo(&buf);
	foreach(lc, list_concat(list_copy(server->options),
							user_mapping_options(userid, serverid)))
	{
		DefElem    *def = (DefElem *) lfirst(lc);

		if (strcmp(def->defname, "batch_size") == 0)
			continue;
		appendStringInfo(&buf, "%s%s=%s", buf.len > 0 ? "\n" : "",
						 strcmp(def->defname, "brokers") == 0 ?
						 "bootstrap.servers" : def->defname,
						 defGetString(def));
	}

	if (conn_cache != NULL)
		pfree(conn_cache);
	conn_cache = buf.len > 0 ? MemoryContextStrdup(TopMemoryContext, buf.data) : NULL;
	pfree(buf.data);
	conn_cache_server = serverid;
	conn_cache_user = userid;
	conn_cache_valid = true;
	return conn_cache;
}

/*
 * KvFdwServerConnection
 *		The connection of the kvstore server named by a kv_* function's
 *		argument, for the current user: the one its foreign tables use.
 *
 * A foreign table needs USAGE on its server only to be created; reading
 * it takes privileges on the table alone.  A function that names a server
 * has no table between the caller and the server, so it asks for USAGE on
 * the server, as CREATE FOREIGN TABLE and IMPORT FOREIGN SCHEMA do.  As for
 * a table, no user mapping is needed.  The result is the caller's.
 */
const char *
KvFdwServerConnection(const char *servername)
{
	ForeignServer *server = GetForeignServerByName(servername, false);
	ForeignDataWrapper *fdw = GetForeignDataWrapper(server->fdwid);
	AclResult	aclresult;
	const char *conn;

	/*
	 * A server is kvstore's when its wrapper's handler is this library's,
	 * whatever the wrapper is called.  22023: the server exists, so this is
	 * neither 42704 nor one of the HV codes, which are about talking to the
	 * foreign side; the argument names a server this function cannot use.
	 */
	if (!OidIsValid(fdw->fdwhandler) || !is_kvstore_handler(fdw->fdwhandler))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("server \"%s\" of foreign data wrapper \"%s\" is not a kvstore server",
						server->servername, fdw->fdwname),
				 errhint("Name a server of foreign data wrapper kvstore.")));

#if PG_VERSION_NUM >= 160000
	aclresult = object_aclcheck(ForeignServerRelationId, server->serverid,
								GetUserId(), ACL_USAGE);
#else
	aclresult = pg_foreign_server_aclcheck(server->serverid, GetUserId(), ACL_USAGE);
#endif
	if (aclresult != ACLCHECK_OK)
		aclcheck_error(aclresult, OBJECT_FOREIGN_SERVER, server->servername);

	conn = KvFdwConnection(server->serverid);
	return conn ? pstrdup(conn) : NULL;
}

/* Whether a wrapper's handler is kvstore_fdw_handler of this library */
static bool
is_kvstore_handler(Oid handler)
{
	FmgrInfo	flinfo;

	fmgr_info(handler, &flinfo);
	return flinfo.fn_addr == kvstore_fdw_handler;
}

/* A server or user mapping changed: build the connection again */
static void
connection_cache_reset(Datum arg, int cacheid, uint32 hashvalue)
{
	conn_cache_valid = false;
}

/*
 * kvImportForeignSchema
 *		One foreign table (key text COLLATE "C", value text) per topic of
 *		the cluster that this server may attach.
 *
 * The remote schema name is not used: a Kafka cluster has one set of
 * topics.  Each table is named after its topic.
 */
static List *
kvImportForeignSchema(ImportForeignSchemaStmt *stmt, Oid serverOid)
{
	ForeignServer *server = GetForeignServer(serverOid);
	List	   *commands = NIL;
	ListCell   *lc;

	foreach(lc, stmt->options)
	{
		DefElem    *def = (DefElem *) lfirst(lc);

		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
				 errmsg("invalid option \"%s\"", def->defname),
				 errhint("IMPORT FOREIGN SCHEMA of a kvstore server takes no options.")));
	}

	foreach(lc, KvTopicList(KvFdwConnection(serverOid)))
	{
		char	   *topic = (char *) lfirst(lc);
		bool		listed = false;
		ListCell   *tc;

		foreach(tc, stmt->table_list)
		{
			RangeVar   *rv = (RangeVar *) lfirst(tc);

			if (strcmp(rv->relname, topic) == 0)
				listed = true;
		}
		if ((stmt->list_type == FDW_IMPORT_SCHEMA_LIMIT_TO && !listed) ||
			(stmt->list_type == FDW_IMPORT_SCHEMA_EXCEPT && listed))
			continue;

		commands = lappend(commands,
						   psprintf("CREATE FOREIGN TABLE %s (key text COLLATE \"C\", value text) SERVER %s OPTIONS (topic %s)",
									quote_identifier(topic),
									quote_identifier(server->servername),
									quote_literal_cstr(topic)));
	}
	return commands;
}
