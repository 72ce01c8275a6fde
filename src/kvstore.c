/*-------------------------------------------------------------------------
 *
 * kvstore.c
 *		  Module entry point: settings, shared memory hooks and the launcher
 *
 * kvstore must be loaded through shared_preload_libraries: its topic slots
 * live in shared memory sized at server start, and its materializer workers
 * are background workers.  _PG_init defines the settings, asks for the shared
 * memory, and registers the launcher that attaches the topics listed in
 * kvstore.topics.  Loaded any other way, the module defines its settings
 * (so that SET and SHOW work) and every function reports that it was not
 * preloaded.
 *
 * IDENTIFICATION
 *		  src/kvstore.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "storage/ipc.h"
#include "utils/guc.h"
#include "utils/wait_event.h"

#include "kvstore.h"

PG_MODULE_MAGIC;

/* Settings */
char	   *kvstore_brokers = NULL;
int			kvstore_shared_memory = 65536;	/* kB */
int			kvstore_max_topics = 16;
char	   *kvstore_topics = NULL;
int			kvstore_replication_factor = -1;
int			kvstore_write_timeout = 30000;	/* ms */
int			kvstore_transaction_timeout = 20000;	/* ms */
bool		kvstore_auto_create_topics = false;
char	   *kvstore_allowed_topics = NULL;
char	   *kvstore_kafka_settings = NULL;
char	   *kvstore_topic_memory_limit = NULL;

/* Saved hook values */
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static bool loaded_at_startup = false;

void		_PG_init(void);

static bool check_kafka_settings(char **newval, void **extra, GucSource source);
static void kv_shmem_request(void);
static void kv_shmem_startup(void);
static bool check_topic_memory_limit(char **newval, void **extra,
									 GucSource source);

/*
 * _PG_init
 *		Define the settings; when preloading, set up shared memory and the
 *		launcher.
 */
void
_PG_init(void)
{
	DefineCustomStringVariable("kvstore.brokers",
							   "Sets the Kafka bootstrap servers (host:port, comma-separated).",
							   NULL,
							   &kvstore_brokers,
							   "localhost:9092",
							   PGC_SIGHUP,
							   0,
							   NULL, NULL, NULL);

	DefineCustomIntVariable("kvstore.replication_factor",
							"Sets the replication factor of the topics kvstore creates.",
							"-1 uses the broker's default.replication.factor.",
							&kvstore_replication_factor,
							-1,
							-1,
							32767,
							PGC_SUSET,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("kvstore.write_timeout",
							"Sets the longest a write or a read waits for Kafka and for the local index.",
							"0 waits without limit; statement_timeout still applies.",
							&kvstore_write_timeout,
							30000,
							0,
							INT_MAX,
							PGC_USERSET,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("kvstore.transaction_timeout",
							"Sets the longest a statement's Kafka transaction may stay open.",
							"The broker aborts a transaction open longer; a crashed backend's open transaction holds back every reader of its topic until then.",
							&kvstore_transaction_timeout,
							20000,
							1000,
							900000,
							PGC_SUSET,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomBoolVariable("kvstore.auto_create_topics",
							 "Lets writes create the topics they name when they do not exist.",
							 "Reads never create topics; kv_create_topic always can.",
							 &kvstore_auto_create_topics,
							 false,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);

	DefineCustomStringVariable("kvstore.allowed_topics",
							   "Sets the topics kvstore may attach: names, or prefixes followed by *.",
							   "\"*\" allows every topic but the internal ones.",
							   &kvstore_allowed_topics,
							   "*",
							   PGC_SIGHUP,
							   GUC_LIST_INPUT,
							   NULL, NULL, NULL);

	DefineCustomStringVariable("kvstore.kafka_settings",
							   "Sets librdkafka properties for every Kafka client of kvstore.",
							   "name=value pairs separated by semicolons, such as security.protocol=SASL_SSL;sasl.mechanism=PLAIN. Shown to superusers only.",
							   &kvstore_kafka_settings,
							   "",
							   PGC_SIGHUP,
							   GUC_SUPERUSER_ONLY,
							   check_kafka_settings, NULL, NULL);

	/*
	 * Settings that size shared memory or start workers exist only when
	 * preloading: they cannot be defined once the server runs.
	 */
	if (!process_shared_preload_libraries_in_progress)
	{
		MarkGUCPrefixReserved("kvstore");
		return;
	}

	DefineCustomIntVariable("kvstore.shared_memory",
							"Sets the most shared memory the indexes of all topics may hold together.",
							"The indexes grow into it by dynamic shared memory segments; a topic that finds no more stops applying and keeps serving reads.",
							&kvstore_shared_memory,
							65536,
							1024,
							INT_MAX / 2,
							PGC_SIGHUP,
							GUC_UNIT_KB,
							NULL, NULL, NULL);

	DefineCustomStringVariable("kvstore.topic_memory_limit",
							   "Sets the most shared memory one topic's index may hold.",
							   "A size for every topic, or comma-separated topic=size entries where a name may end in *; the first entry that matches applies, 0 is no limit.",
							   &kvstore_topic_memory_limit,
							   "",
							   PGC_SIGHUP,
							   0,
							   check_topic_memory_limit, NULL, NULL);

	DefineCustomIntVariable("kvstore.max_topics",
							"Sets the maximum number of topics attached at once.",
							"Each attached topic runs one background worker.",
							&kvstore_max_topics,
							16,
							1,
							1024,
							PGC_POSTMASTER,
							0,
							NULL, NULL, NULL);

	DefineCustomStringVariable("kvstore.topics",
							   "Sets the topics attached when the server starts (comma-separated).",
							   NULL,
							   &kvstore_topics,
							   "",
							   PGC_POSTMASTER,
							   GUC_LIST_INPUT,
							   NULL, NULL, NULL);

	MarkGUCPrefixReserved("kvstore");

	loaded_at_startup = true;

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = kv_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = kv_shmem_startup;

	KvLauncherRegister();
	if (!IsUnderPostmaster)
		KvKafkaWarmUp();
}

/*
 * KvCheckLoaded
 *		Raise an error unless kvstore was loaded at server start.
 */
void
KvCheckLoaded(void)
{
	if (!loaded_at_startup)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("kvstore must be loaded via shared_preload_libraries"),
				 errhint("Add kvstore to shared_preload_libraries in postgresql.conf and restart the server.")));
}

/* Refuse kvstore.kafka_settings that librdkafka or kvstore would refuse */
static bool
check_kafka_settings(char **newval, void **extra, GucSource source)
{
	const char *problem = KvKafkaSettingsProblem(*newval);

	if (problem == NULL)
		return true;
	GUC_check_errdetail("%s", problem);
	return false;
}

/* Ask for the shared memory and locks */
static void
kv_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	KvShmemRequest();
}

/* Create or attach to the shared state */
static void
kv_shmem_startup(void)
{
	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	KvShmemStartup();
}

/*
 * KvWaitEvent
 *		The wait event a process reports during one of kvstore's waits.
 *
 * From PostgreSQL 17 on, an extension may name its wait events: each of
 * kvstore's waits then shows in pg_stat_activity under its own name, with
 * wait_event_type Extension.  A name is registered in shared memory on its
 * first use in each process.  Before 17, every wait is "Extension".
 */
uint32
KvWaitEvent(KvWait wait)
{
#if PG_VERSION_NUM >= 170000
	static const char *const names[KV_WAIT_COUNT] = {
		[KV_WAIT_TOPIC_LOAD] = "KvstoreTopicLoad",
		[KV_WAIT_WRITE_APPLIED] = "KvstoreWriteApplied",
		[KV_WAIT_KAFKA_RETRY] = "KvstoreKafkaRetry",
		[KV_WAIT_WORKER_MAIN] = "KvstoreWorkerMain",
		[KV_WAIT_TOPIC_FULL] = "KvstoreTopicFull",
		[KV_WAIT_WRITE_GROUP] = "KvstoreWriteGroup",
	};
	static uint32 events[KV_WAIT_COUNT];

	Assert(wait < KV_WAIT_COUNT);
	if (events[wait] == 0)
		events[wait] = WaitEventExtensionNew(names[wait]);
	return events[wait];
#else
	return PG_WAIT_EXTENSION;
#endif
}

/* Refuse a kvstore.topic_memory_limit that does not parse */
static bool
check_topic_memory_limit(char **newval, void **extra, GucSource source)
{
	const char *error;
	uint64		limit;

	if (!KvTopicMemoryLimit(*newval, NULL, &limit, &error))
	{
		GUC_check_errdetail("%s", error);
		return false;
	}
	return true;
}
