/*-------------------------------------------------------------------------
 *
 * kafka.c
 *		  The Kafka client: configuration, admin requests, errors
 *
 * Every librdkafka client of kvstore (the producers of producer.c, the
 * consumer of worker.c, and the admin client here) starts from
 * KvKafkaConfNew, so that they share the brokers, the client id and the
 * logging set-up.  Log lines are queued and served on the calling thread
 * by the poll calls; the last warning is kept for error details.
 *
 * The admin client is a plain producer handle that each backend creates
 * on its first metadata or admin request: it looks topics up, checks that
 * kvstore can serve them (one partition, compaction without retention),
 * creates them, and reads end offsets.  Requests are made in short tries,
 * so that cancel and statement_timeout are served, and retried while the
 * broker asked is down or does not know yet of a topic just created.
 *
 * A connection is what a client adds to kvstore.brokers and
 * kvstore.kafka_settings: the librdkafka properties of a foreign server
 * and of the user mapping in use, as "name=value" lines (fdw.c builds
 * it), bootstrap.servers among them when the server names its brokers.
 * NULL is the default connection, the one of the kv_* functions.  A
 * connection may hold secrets: nothing here puts a value of it in a
 * message.  The validator of the foreign data wrapper checks each option
 * with KvKafkaCheckOption: properties kvstore sets itself are refused,
 * secrets belong in user mappings only, and properties that make the
 * server read a file, run a command or load code are for superusers.
 *
 * KvKafkaSqlstate is the one mapping from Kafka errors to SQLSTATEs.
 * Kafka being unreachable is HV00N and other Kafka failures HV000: class
 * 08 would tell connection pools that the PostgreSQL session is lost.
 *
 * IDENTIFICATION
 *		  src/kafka.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <librdkafka/rdkafka.h>

#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "kvstore.h"

/* Longest a metadata or admin request may take */
#define KV_ADMIN_TIMEOUT_MS 10000

/* Longest librdkafka call between two checks for cancel */
#define KV_POLL_MS 250

/* The admin client of this backend, the settings it was made with, and
 * its connection */
static rd_kafka_t *kv_admin = NULL;
static char *kv_admin_settings = NULL;
static char *kv_admin_conn = NULL;

static char kv_last_log[512];

static void kv_log_cb(const rd_kafka_t *rk, int level, const char *fac,
					  const char *buf);
static const char *apply_settings(rd_kafka_conf_t *conf, const char *settings);
static bool is_listed(const char *name, const char *const *list);
static bool is_superuser_property(const char *name);
static rd_kafka_t *get_admin(const char *conn);
static void destroy_admin(int code, Datum arg);
static rd_kafka_event_t *wait_admin_event(rd_kafka_queue_t *queue,
										  const char *topic);
static bool retry_after(rd_kafka_resp_err_t err, TimestampTz deadline);
static int	topic_partitions(rd_kafka_t *rk, const char *topic);
static rd_kafka_resp_err_t describe_topic(rd_kafka_t *rk, const char *topic,
										  char *policy, size_t size,
										  int64 *retention_ms,
										  int64 *retention_bytes);
static void check_topic_config(rd_kafka_t *rk, const char *topic);
static void check_partitions(const char *topic, int partitions);
static int	compare_names(const ListCell *a, const ListCell *b);

/*
 * KvKafkaSqlstate
 *		The SQLSTATE that reports a Kafka error.
 */
int
KvKafkaSqlstate(int kafka_error)
{
	switch ((rd_kafka_resp_err_t) kafka_error)
	{
		case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
		case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
		case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
			return ERRCODE_UNDEFINED_OBJECT;
		case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
		case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
		case RD_KAFKA_RESP_ERR_POLICY_VIOLATION:
			return ERRCODE_PROGRAM_LIMIT_EXCEEDED;
		case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
		case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
		case RD_KAFKA_RESP_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED:
			return ERRCODE_INSUFFICIENT_PRIVILEGE;
		case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION:
			return ERRCODE_INVALID_NAME;
		case RD_KAFKA_RESP_ERR_INVALID_REPLICATION_FACTOR:
		case RD_KAFKA_RESP_ERR_INVALID_CONFIG:
			return ERRCODE_INVALID_PARAMETER_VALUE;
		case RD_KAFKA_RESP_ERR__TRANSPORT:
		case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
		case RD_KAFKA_RESP_ERR__RESOLVE:
		case RD_KAFKA_RESP_ERR__TIMED_OUT:
		case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT:
		case RD_KAFKA_RESP_ERR__AUTHENTICATION:
		case RD_KAFKA_RESP_ERR__SSL:
		case RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE:
		case RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION:
		case RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS:
		case RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND:
		case RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE:
			return ERRCODE_FDW_UNABLE_TO_ESTABLISH_CONNECTION;
		default:
			return ERRCODE_FDW_ERROR;
	}
}

/* Keep the last log line of librdkafka for error details */
static void
kv_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	if (level <= 4)				/* LOG_WARNING or worse */
		snprintf(kv_last_log, sizeof(kv_last_log), "%s: %s", fac, buf);
}

/*
 * KvKafkaLastLog
 *		The last warning librdkafka logged in this process, or "".
 */
const char *
KvKafkaLastLog(void)
{
	return kv_last_log;
}

/*
 * KvKafkaWarmUp
 *		Pay librdkafka's once-per-process start-up in the postmaster, so
 *		that every backend and worker forked from it starts without it.
 *
 * The first client a process creates initializes OpenSSL and loads the
 * SASL plugins, about 2 ms that a backend's first write would otherwise
 * wait for.  The client connects nowhere and its threads are joined
 * before this returns: the postmaster forks no thread.  Skipped where
 * PostgreSQL checks that the postmaster never had a thread (macOS).
 */
void
KvKafkaWarmUp(void)
{
#ifndef HAVE_PTHREAD_IS_THREADED_NP
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_t *rk;
	char		errstr[256];

	/* Nothing to connect to, and nothing to say about it */
	if (rd_kafka_conf_set(conf, "log_level", "0", errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK)
	{
		rd_kafka_conf_destroy(conf);
		return;
	}
	rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	if (rk == NULL)
	{
		rd_kafka_conf_destroy(conf);
		return;
	}
	rd_kafka_destroy(rk);
#endif
}

/*
 * KvKafkaConfSet
 *		Set one librdkafka property, raising an error if it is refused.
 */
void
KvKafkaConfSet(rd_kafka_conf_t *conf, const char *name, const char *value)
{
	char		errstr[256];

	if (rd_kafka_conf_set(conf, name, value, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid Kafka setting %s = \"%s\"", name, value),
				 errdetail_internal("%s", errstr)));
}

/*
 * Properties that kvstore sets itself for its guarantees; kvstore.kafka_settings
 * may not change them.
 */
static const char *const kv_reserved_properties[] = {
	"bootstrap.servers", "metadata.broker.list", "client.id", "log.queue",
	"enable.idempotence", "acks", "request.required.acks", "transactional.id",
	"transaction.timeout.ms", "message.timeout.ms", "isolation.level",
	"group.id", "enable.auto.commit", "enable.auto.offset.store",
	"enable.partition.eof", "auto.offset.reset", "allow.auto.create.topics",
	"message.max.bytes", NULL
};

/*
 * Apply "name=value;name=value" settings to conf.  Returns NULL, or what is
 * wrong, naming the property but never its value (values may be secrets).
 */
static const char *
apply_settings(rd_kafka_conf_t *conf, const char *settings)
{
	static char problem[512];
	char	   *copy = strdup(settings);
	char	   *save = NULL;
	const char *result = NULL;

	if (copy == NULL)
		return "out of memory";
	for (char *item = strtok_r(copy, ";", &save); item != NULL && result == NULL;
		 item = strtok_r(NULL, ";", &save))
	{
		char	   *eq;
		char	   *name = item;
		char	   *value;
		char		errstr[256];

		while (*name == ' ')
			name++;
		if (*name == '\0')
			continue;
		eq = strchr(name, '=');
		if (eq == NULL)
		{
			snprintf(problem, sizeof(problem), "\"%s\" is not of the form name=value.", name);
			result = problem;
			break;
		}
		*eq = '\0';
		value = eq + 1;
		for (char *end = eq - 1; end >= name && *end == ' '; end--)
			*end = '\0';
		for (int i = 0; kv_reserved_properties[i] != NULL; i++)
			if (strcmp(name, kv_reserved_properties[i]) == 0)
			{
				snprintf(problem, sizeof(problem),
						 "kvstore sets %s itself; it cannot be changed.", name);
				result = problem;
			}
		if (result == NULL &&
			rd_kafka_conf_set(conf, name, value, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK)
		{
			snprintf(problem, sizeof(problem),
					 "librdkafka refused the value of property %s.", name);
			result = problem;
		}
	}
	free(copy);
	return result;
}

/*
 * KvKafkaSettingsNow
 *		The settings new clients of a connection are made with
 *		(kvstore.brokers, kvstore.kafka_settings and the connection), in
 *		TopMemoryContext, to keep beside a client.
 */
char *
KvKafkaSettingsNow(const char *conn)
{
	return MemoryContextStrdup(TopMemoryContext,
							   psprintf("%s\n%s\n%s", kvstore_brokers,
										kvstore_kafka_settings ? kvstore_kafka_settings : "",
										conn ? conn : ""));
}

/*
 * KvKafkaSettingsAre
 *		Whether settings kept by KvKafkaSettingsNow are still the ones new
 *		clients of the connection would be made with; a client made with
 *		others is replaced.
 */
bool
KvKafkaSettingsAre(const char *settings, const char *conn)
{
	const char *parts[3];

	parts[0] = kvstore_brokers;
	parts[1] = kvstore_kafka_settings ? kvstore_kafka_settings : "";
	parts[2] = conn ? conn : "";

	/* Every write passes here: compare without building the string */
	if (settings == NULL)
		return false;
	for (int i = 0; i < 3; i++)
	{
		size_t		len = strlen(parts[i]);

		if (strncmp(settings, parts[i], len) != 0)
			return false;
		settings += len;
		if (*settings != (i < 2 ? '\n' : '\0'))
			return false;
		settings++;
	}
	return true;
}

/*
 * KvKafkaBrokers
 *		The bootstrap servers of a connection, for messages and kv_topics.
 */
const char *
KvKafkaBrokers(const char *conn)
{
	static const char prefix[] = "bootstrap.servers=";
	const char *line = conn;

	while (line != NULL && *line != '\0')
	{
		const char *end = strchr(line, '\n');

		if (strncmp(line, prefix, sizeof(prefix) - 1) == 0)
		{
			line += sizeof(prefix) - 1;
			return end ? pnstrdup(line, end - line) : line;
		}
		line = end ? end + 1 : NULL;
	}
	return kvstore_brokers;
}

/*
 * Properties that only a user mapping may set: secrets, and the identity
 * they go with.  PostgreSQL shows the options of a user mapping only to
 * superusers, and to the user it maps when that user may use the server.
 */
static const char *const kv_secret_properties[] = {
	"sasl.username", "sasl.password", "ssl.key.password", "ssl.key.pem",
	"ssl.keystore.password", "sasl.oauthbearer.client.secret",
	"sasl.oauthbearer.config",
	"sasl.oauthbearer.assertion.private.key.passphrase",
	"sasl.oauthbearer.assertion.private.key.pem", NULL
};

/*
 * Properties that make the server process read a file, run a command or
 * load code, besides those whose names end as in kv_file_suffixes: only a
 * superuser may set them.
 */
static const char *const kv_superuser_properties[] = {
	"plugin.library.paths", "ssl.providers", "ssl.engine.id", NULL
};
static const char *const kv_file_suffixes[] = {
	".location", ".file", ".cmd", ".path", ".paths", ".keytab", ".dir", NULL
};

/* Whether name is in a NULL-terminated list */
static bool
is_listed(const char *name, const char *const *list)
{
	for (int i = 0; list[i] != NULL; i++)
		if (strcmp(name, list[i]) == 0)
			return true;
	return false;
}

/* Whether a property reads a file, runs a command or loads code */
static bool
is_superuser_property(const char *name)
{
	size_t		len = strlen(name);

	if (is_listed(name, kv_superuser_properties))
		return true;
	for (int i = 0; kv_file_suffixes[i] != NULL; i++)
	{
		size_t		slen = strlen(kv_file_suffixes[i]);

		if (len > slen && strcmp(name + len - slen, kv_file_suffixes[i]) == 0)
			return true;
	}
	return false;
}

/*
 * KvKafkaCheckOption
 *		Refuse a librdkafka property as an option of a foreign server, or
 *		of a user mapping when user_mapping.
 *
 * Messages name the property, never its value: a value may be a secret.
 */
void
KvKafkaCheckOption(const char *name, const char *value, bool user_mapping)
{
	rd_kafka_conf_t *conf;
	rd_kafka_conf_res_t res;
	char		errstr[256];
	bool		secret = is_listed(name, kv_secret_properties);

	if (strcmp(name, "bootstrap.servers") == 0 ||
		strcmp(name, "metadata.broker.list") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
				 errmsg("invalid option \"%s\"", name),
				 errhint("Name the brokers with option \"brokers\" of the server.")));
	if (is_listed(name, kv_reserved_properties))
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
				 errmsg("invalid option \"%s\"", name),
				 errdetail("kvstore sets librdkafka property %s itself, for its guarantees.", name)));
	if (user_mapping && !secret)
	{
		StringInfoData valid;

		initStringInfo(&valid);
		for (int i = 0; kv_secret_properties[i] != NULL; i++)
			appendStringInfo(&valid, "%s%s", i > 0 ? ", " : "",
							 kv_secret_properties[i]);
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
				 errmsg("invalid option \"%s\"", name),
				 errhint("A user mapping of a kvstore server takes only credentials: %s; other properties are options of the server.",
						 valid.data)));
	}
	if (!user_mapping && secret)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
				 errmsg("option \"%s\" belongs in a user mapping", name),
				 errdetail("The options of a server are readable by every role; those of a user mapping only by superusers and the user it maps."),
				 errhint("Set it with CREATE USER MAPPING ... SERVER ... OPTIONS (%s '...').", name)));
	if (is_superuser_property(name) && !superuser())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to set option \"%s\"", name),
				 errdetail("It makes the database server read a file, run a command or load code."),
				 errhint("Only superusers may set it.")));
	if (strchr(value, '\n') != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid value for option \"%s\"", name),
				 errdetail("The value contains a line break.")));

	/* librdkafka loads plugins as soon as this is set: leave it to the client */
	if (strcmp(name, "plugin.library.paths") == 0)
		return;
	conf = rd_kafka_conf_new();
	res = rd_kafka_conf_set(conf, name, value, errstr, sizeof(errstr));
	rd_kafka_conf_destroy(conf);
	if (res == RD_KAFKA_CONF_UNKNOWN)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
				 errmsg("invalid option \"%s\"", name),
				 errhint("Valid options of a kvstore server are batch_size, brokers and the properties of librdkafka.")));
	if (res != RD_KAFKA_CONF_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid value for option \"%s\"", name),
				 secret ? errdetail("librdkafka refused it.") :
				 errdetail_internal("%s", errstr)));
}

/*
 * Apply a connection's "name=value" lines to conf.  Returns NULL, or what
 * is wrong, naming the property but never its value.
 */
static const char *
apply_connection(rd_kafka_conf_t *conf, const char *conn)
{
	static char problem[256];
	const char *line = conn;

	while (line != NULL && *line != '\0')
	{
		const char *end = strchr(line, '\n');
		const char *eq = strchr(line, '=');
		char	   *name;
		char	   *value;
		char		errstr[256];

		if (eq == NULL || (end != NULL && eq > end))
			return "a line of the connection is not of the form name=value";
		name = pnstrdup(line, eq - line);
		value = end ? pnstrdup(eq + 1, end - eq - 1) : pstrdup(eq + 1);
		if (rd_kafka_conf_set(conf, name, value, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK)
		{
			snprintf(problem, sizeof(problem),
					 "librdkafka refused the value of property %s.", name);
			return problem;
		}
		pfree(name);
		pfree(value);
		line = end ? end + 1 : NULL;
	}
	return NULL;
}

/*
 * KvKafkaSettingsProblem
 *		What is wrong with a value of kvstore.kafka_settings, or NULL.
 */
const char *
KvKafkaSettingsProblem(const char *settings)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	const char *problem = apply_settings(conf, settings ? settings : "");

	rd_kafka_conf_destroy(conf);
	return problem;
}

/*
 * KvKafkaConfNew
 *		A librdkafka configuration with the settings every client of a
 *		connection shares.
 *
 * role names the client to the broker (client.id).  The properties of
 * the connection, if not NULL, come last.  Log lines are queued
 * so that they are served on this thread by the poll calls.  Records of
 * up to KV_MAX_RECORD_BYTES of key and value fit with their overhead:
 * the limit is the broker's default, not librdkafka's smaller one.
 */
rd_kafka_conf_t *
KvKafkaConfNew(const char *role, const char *conn)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	char		client_id[64];

	snprintf(client_id, sizeof(client_id), "kvstore-%s", role);
	KvKafkaConfSet(conf, "bootstrap.servers", kvstore_brokers);
	KvKafkaConfSet(conf, "client.id", client_id);
	KvKafkaConfSet(conf, "log.queue", "true");
	KvKafkaConfSet(conf, "reconnect.backoff.max.ms", "1000");
	KvKafkaConfSet(conf, "allow.auto.create.topics", "false");
	KvKafkaConfSet(conf, "message.max.bytes", "1048588");
	if (kvstore_kafka_settings != NULL && kvstore_kafka_settings[0] != '\0')
	{
		const char *problem = apply_settings(conf, kvstore_kafka_settings);

		if (problem != NULL)
		{
			rd_kafka_conf_destroy(conf);
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid kvstore.kafka_settings"),
					 errdetail("%s", problem)));
		}
	}
	if (conn != NULL)
	{
		const char *problem = apply_connection(conf, conn);

		if (problem != NULL)
		{
			rd_kafka_conf_destroy(conf);
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid Kafka connection settings for brokers \"%s\"",
							KvKafkaBrokers(conn)),
					 errdetail("%s", problem)));
		}
	}
	rd_kafka_conf_set_log_cb(conf, kv_log_cb);
	return conf;
}

/*
 * The admin client of this backend for a connection; another connection,
 * or a change of kvstore.brokers, replaces it
 */
static rd_kafka_t *
get_admin(const char *conn)
{
	rd_kafka_conf_t *conf;
	char		errstr[512];
	static bool exit_registered = false;

	if (kv_admin != NULL && !KvKafkaSettingsAre(kv_admin_settings, conn))
		destroy_admin(0, 0);
	if (kv_admin != NULL)
		return kv_admin;

	if (!exit_registered)
	{
		on_proc_exit(destroy_admin, 0);
		exit_registered = true;
	}
	conf = KvKafkaConfNew("admin", conn);
	kv_admin = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	if (kv_admin == NULL)
	{
		rd_kafka_conf_destroy(conf);
		ereport(ERROR,
				(errcode(ERRCODE_FDW_ERROR),
				 errmsg("could not create a Kafka client for brokers \"%s\"",
						KvKafkaBrokers(conn)),
				 errdetail_internal("%s", errstr),
				 conn ? errhint("Check the options of the foreign server, and the user mapping of the current user.") : 0));
	}
	conf = NULL;				/* now owned by the client */
	rd_kafka_set_log_queue(kv_admin, NULL);
	kv_admin_settings = KvKafkaSettingsNow(conn);
	kv_admin_conn = conn ? MemoryContextStrdup(TopMemoryContext, conn) : NULL;
	return kv_admin;
}

/* Destroy the admin client, at backend exit or on a broker change */
static void
destroy_admin(int code, Datum arg)
{
	if (kv_admin != NULL)
	{
		rd_kafka_destroy(kv_admin);
		kv_admin = NULL;
	}
	if (kv_admin_settings != NULL)
	{
		pfree(kv_admin_settings);
		kv_admin_settings = NULL;
	}
	if (kv_admin_conn != NULL)
	{
		pfree(kv_admin_conn);
		kv_admin_conn = NULL;
	}
}

/* Wait for the result of an admin request, interruptibly */
static rd_kafka_event_t *
wait_admin_event(rd_kafka_queue_t *queue, const char *topic)
{
	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
													   KV_ADMIN_TIMEOUT_MS + 1000);
	rd_kafka_event_t *event = NULL;

	PG_TRY();
	{
		while (event == NULL)
		{
			CHECK_FOR_INTERRUPTS();
			if (GetCurrentTimestamp() >= deadline)
				ereport(ERROR,
						(errcode(ERRCODE_FDW_UNABLE_TO_ESTABLISH_CONNECTION),
						 errmsg("timed out waiting for Kafka at \"%s\" to describe topic \"%s\"",
								KvKafkaBrokers(kv_admin_conn), topic),
						 kv_last_log[0] ? errdetail_internal("%s", kv_last_log) : 0));
			event = rd_kafka_queue_poll(queue, KV_POLL_MS);
		}
	}
	PG_FINALLY();
	{
		rd_kafka_queue_destroy(queue);
	}
	PG_END_TRY();
	return event;
}

/*
 * Whether a request that failed with err is worth another try before
 * deadline: the broker asked may be down while others are up, or may not
 * know yet of a topic just created, or this client may not have its
 * metadata yet.  Serves cancel, and waits a moment when the failure came
 * at once.
 */
static bool
retry_after(rd_kafka_resp_err_t err, TimestampTz deadline)
{
	if (err != RD_KAFKA_RESP_ERR__TIMED_OUT &&
		err != RD_KAFKA_RESP_ERR__TRANSPORT &&
		err != RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART &&
		err != RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION &&
		err != RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC &&
		err != RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN &&
		err != RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE &&
		err != RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION)
		return false;
	CHECK_FOR_INTERRUPTS();
	if (GetCurrentTimestamp() >= deadline)
		return false;
	if (err != RD_KAFKA_RESP_ERR__TIMED_OUT)
	{
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 100L, KvWaitEvent(KV_WAIT_KAFKA_RETRY));
		ResetLatch(MyLatch);
	}
	return true;
}

/* Partitions of a topic, or -1 if it does not exist */
static int
topic_partitions(rd_kafka_t *rk, const char *topic)
{
	rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
	const struct rd_kafka_metadata *md;
	rd_kafka_resp_err_t err;
	int			partitions;
	TimestampTz deadline;

	/* Short tries, so that cancel and statement_timeout are served */
	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), KV_ADMIN_TIMEOUT_MS);
	PG_TRY();
	{
		while ((err = rd_kafka_metadata(rk, 0, rkt, &md, KV_POLL_MS)) != RD_KAFKA_RESP_ERR_NO_ERROR &&
			   retry_after(err, deadline))
			;
	}
	PG_FINALLY();
	{
		rd_kafka_topic_destroy(rkt);
	}
	PG_END_TRY();
	if (err)
		ereport(ERROR,
				(errcode(KvKafkaSqlstate(err)),
				 errmsg("could not reach Kafka at \"%s\" to look up topic \"%s\"",
						KvKafkaBrokers(kv_admin_conn), topic),
				 errdetail_internal("%s", kv_last_log[0] ? kv_last_log : rd_kafka_err2str(err))));

	err = md->topic_cnt == 1 ? md->topics[0].err : RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART;
	partitions = md->topic_cnt == 1 ? md->topics[0].partition_cnt : 0;
	rd_kafka_metadata_destroy(md);

	if (err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
		return -1;
	if (err && err != RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE)
		ereport(ERROR,
				(errcode(KvKafkaSqlstate(err)),
				 errmsg("could not look up topic \"%s\"", topic),
				 errdetail_internal("%s", rd_kafka_err2str(err))));
	return partitions;
}

/* Refuse a topic kvstore cannot order: it needs exactly one partition */
static void
check_partitions(const char *topic, int partitions)
{
	if (partitions > 1)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("topic \"%s\" has %d partitions", topic, partitions),
				 errdetail("kvstore needs a topic with exactly one partition, so that every server applies its records in the same order.")));
}

/*
 * Read a topic's cleanup.policy (empty if the broker gave none) and its
 * retention limits (-1: none); returns the error of the request.
 */
static rd_kafka_resp_err_t
describe_topic(rd_kafka_t *rk, const char *topic, char *policy, size_t size,
			   int64 *retention_ms, int64 *retention_bytes)
{
	rd_kafka_ConfigResource_t *res;
	rd_kafka_queue_t *queue;
	rd_kafka_event_t *event;
	const rd_kafka_DescribeConfigs_result_t *result;
	const rd_kafka_ConfigResource_t **resources;
	size_t		nresources;
	rd_kafka_resp_err_t err;

	policy[0] = '\0';
	*retention_ms = -1;
	*retention_bytes = -1;
	res = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, topic);
	queue = rd_kafka_queue_new(rk);
	rd_kafka_DescribeConfigs(rk, &res, 1, NULL, queue);
	rd_kafka_ConfigResource_destroy(res);
	event = wait_admin_event(queue, topic);

	err = rd_kafka_event_error(event);
	result = rd_kafka_event_DescribeConfigs_result(event);
	if (!err && result)
	{
		resources = rd_kafka_DescribeConfigs_result_resources(result, &nresources);
		if (nresources == 1)
		{
			const rd_kafka_ConfigEntry_t **entries;
			size_t		nentries;

			err = rd_kafka_ConfigResource_error(resources[0]);
			entries = rd_kafka_ConfigResource_configs(resources[0], &nentries);
			for (size_t i = 0; i < nentries; i++)
			{
				const char *name = rd_kafka_ConfigEntry_name(entries[i]);
				const char *value = rd_kafka_ConfigEntry_value(entries[i]);

				if (value == NULL)
					continue;
				if (strcmp(name, "cleanup.policy") == 0)
					strlcpy(policy, value, size);
				else if (strcmp(name, "retention.ms") == 0)
					*retention_ms = strtoll(value, NULL, 10);
				else if (strcmp(name, "retention.bytes") == 0)
					*retention_bytes = strtoll(value, NULL, 10);
			}
		}
	}
	rd_kafka_event_destroy(event);
	return err;
}

/*
 * Refuse a topic whose configuration deletes live keys: a cleanup.policy
 * without compaction, or compaction together with a finite retention.
 *
 * A topic just created elsewhere may not be known yet to the broker asked:
 * that is retried until the deadline.
 */
static void
check_topic_config(rd_kafka_t *rk, const char *topic)
{
	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
													   KV_ADMIN_TIMEOUT_MS);
	rd_kafka_resp_err_t err;
	char		policy[128];
	int64		retention_ms;
	int64		retention_bytes;

	while ((err = describe_topic(rk, topic, policy, sizeof(policy),
								 &retention_ms, &retention_bytes)) != RD_KAFKA_RESP_ERR_NO_ERROR &&
		   retry_after(err, deadline))
		;
	if (err)
		ereport(ERROR,
				(errcode(KvKafkaSqlstate(err)),
				 errmsg("could not read the configuration of topic \"%s\"", topic),
				 errdetail_internal("%s", rd_kafka_err2str(err))));
	if (policy[0] != '\0' && strstr(policy, "compact") == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("topic \"%s\" is not compacted", topic),
				 errdetail("Its cleanup.policy is \"%s\"; kvstore needs a policy that includes \"compact\", or old values would be deleted by retention.",
						   policy),
				 errhint("Set cleanup.policy=compact on the topic, or use another topic.")));
	if (strstr(policy, "delete") != NULL && (retention_ms >= 0 || retention_bytes >= 0))
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("topic \"%s\" deletes old records by retention", topic),
				 errdetail("Its cleanup.policy is \"%s\" with retention.ms %lld and retention.bytes %lld: retention would delete live keys.",
						   policy, (long long) retention_ms, (long long) retention_bytes),
				 errhint("Set cleanup.policy=compact, or set retention.ms and retention.bytes to -1.")));
}

/*
 * KvKafkaTopicExists
 *		Whether the topic exists; an existing topic that kvstore cannot
 *		serve is an error.
 *
 * kvstore needs one partition (one order of records for every server)
 * and compaction without retention (the latest value of every key kept).
 */
bool
KvKafkaTopicExists(const char *topic, const char *conn)
{
	rd_kafka_t *rk = get_admin(conn);
	int			partitions = topic_partitions(rk, topic);

	if (partitions < 0)
		return false;
	check_partitions(topic, partitions);
	check_topic_config(rk, topic);
	return true;
}

/*
 * KvKafkaCreateTopic
 *		Create a compacted topic with one partition.
 *
 * Returns false, after checking it as KvKafkaTopicExists does, when the
 * topic exists already.
 */
bool
KvKafkaCreateTopic(const char *topic, const char *conn)
{
	rd_kafka_t *rk = get_admin(conn);
	rd_kafka_NewTopic_t *newt;
	rd_kafka_queue_t *queue;
	rd_kafka_event_t *event;
	const rd_kafka_CreateTopics_result_t *result;
	const rd_kafka_topic_result_t **topics;
	size_t		ntopics;
	rd_kafka_resp_err_t err;
	char		errstr[256];
	char		detail[512];

	if (KvKafkaTopicExists(topic, conn))
		return false;

	newt = rd_kafka_NewTopic_new(topic, 1, kvstore_replication_factor,
								 errstr, sizeof(errstr));
	if (newt == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("could not create topic \"%s\"", topic),
				 errdetail_internal("%s", errstr)));
	rd_kafka_NewTopic_set_config(newt, "cleanup.policy", "compact");

	queue = rd_kafka_queue_new(rk);
	rd_kafka_CreateTopics(rk, &newt, 1, NULL, queue);
	rd_kafka_NewTopic_destroy(newt);
	event = wait_admin_event(queue, topic);

	result = rd_kafka_event_CreateTopics_result(event);
	err = rd_kafka_event_error(event);
	strlcpy(detail, err ? rd_kafka_event_error_string(event) : "", sizeof(detail));
	if (!err && result)
	{
		topics = rd_kafka_CreateTopics_result_topics(result, &ntopics);
		if (ntopics == 1)
		{
			err = rd_kafka_topic_result_error(topics[0]);
			if (err && rd_kafka_topic_result_error_string(topics[0]))
				strlcpy(detail, rd_kafka_topic_result_error_string(topics[0]),
						sizeof(detail));
		}
	}
	rd_kafka_event_destroy(event);

	if (err == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
	{
		/* Created elsewhere meanwhile: check it like any existing topic */
		check_partitions(topic, topic_partitions(rk, topic));
		check_topic_config(rk, topic);
		return false;
	}
	if (err)
		ereport(ERROR,
				(errcode(KvKafkaSqlstate(err)),
				 errmsg("could not create topic \"%s\"", topic),
				 errdetail_internal("%s", detail[0] ? detail : rd_kafka_err2str(err))));
	return true;
}

/*
 * KvKafkaEndOffset
 *		The end of the topic's log now: the offset the next record will get.
 *
 * Asked with isolation level read_committed, so this is the last stable
 * offset: records of open transactions are not counted.
 */
int64
KvKafkaEndOffset(const char *topic, const char *conn)
{
	rd_kafka_t *rk = get_admin(conn);
	int64_t		low;
	int64_t		high;
	rd_kafka_resp_err_t err;
	TimestampTz deadline;

	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), KV_ADMIN_TIMEOUT_MS);
	while ((err = rd_kafka_query_watermark_offsets(rk, topic, 0, &low, &high,
												   KV_POLL_MS)) != RD_KAFKA_RESP_ERR_NO_ERROR &&
		   retry_after(err, deadline))
		;
	if (err)
		ereport(ERROR,
				(errcode(KvKafkaSqlstate(err)),
				 errmsg("could not read the end offset of topic \"%s\"", topic),
				 errdetail_internal("%s", rd_kafka_err2str(err))));
	return high;
}

/* Order of topic names */
static int
compare_names(const ListCell *a, const ListCell *b)
{
	return strcmp((const char *) lfirst(a), (const char *) lfirst(b));
}

/*
 * KvKafkaListTopics
 *		The names of the cluster's topics that have exactly one partition,
 *		sorted.
 */
List *
KvKafkaListTopics(const char *conn)
{
	rd_kafka_t *rk = get_admin(conn);
	const struct rd_kafka_metadata *md;
	rd_kafka_resp_err_t err;
	TimestampTz deadline;
	List	   *names = NIL;

	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), KV_ADMIN_TIMEOUT_MS);
	while ((err = rd_kafka_metadata(rk, 1, NULL, &md, KV_POLL_MS)) != RD_KAFKA_RESP_ERR_NO_ERROR &&
		   retry_after(err, deadline))
		;
	if (err)
		ereport(ERROR,
				(errcode(KvKafkaSqlstate(err)),
				 errmsg("could not reach Kafka at \"%s\" to list its topics",
						KvKafkaBrokers(conn)),
				 errdetail_internal("%s", kv_last_log[0] ? kv_last_log : rd_kafka_err2str(err))));
	for (int i = 0; i < md->topic_cnt; i++)
	{
		if (md->topics[i].err == RD_KAFKA_RESP_ERR_NO_ERROR &&
			md->topics[i].partition_cnt == 1)
			names = lappend(names, pstrdup(md->topics[i].topic));
	}
	rd_kafka_metadata_destroy(md);
	list_sort(names, compare_names);
	return names;
}
