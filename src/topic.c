/*-------------------------------------------------------------------------
 *
 * topic.c
 *		  A topic's life on this server: open, attach, create, wait
 *
 * Opening a topic finds the slot of a topic this server has attached, or
 * attaches one that exists in Kafka: claims a free slot and starts its
 * materializer.  Opening never creates a Kafka topic, except for a write
 * while kvstore.auto_create_topics is on; creating is otherwise the
 * separate act of kv_create_topic, which is revoked from PUBLIC.  Before
 * anything is asked of Kafka, a name is checked against Kafka's rules,
 * against the names of other systems' internal topics, and against the
 * allow-list kvstore.allowed_topics, and a server with no free slot
 * refuses.
 *
 * A topic's state (starting, bootstrap, ready, full, error) is set by its
 * worker; the waits here follow it.  A full topic, stopped at a record its
 * index has no memory for, still serves reads of what it holds once it has
 * been ready, and refuses writes before they are sent; so does a topic
 * whose writes would need more than its memory limit leaves.  A backend refers to a topic through
 * a KvTopicRef, which remembers the incarnation of the slot: every wait
 * re-checks it, so a slot freed and claimed by another topic meanwhile is
 * never read or written by mistake.  Readers take the topic lock through
 * KvTopicLockForRead, which checks the state under the lock: the worker
 * leaves READY and empties the index only while holding it exclusively.
 *
 * IDENTIFICATION
 *		  src/topic.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>
#include <signal.h>

#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/timestamp.h"
#include "utils/varlena.h"
#include "utils/wait_event.h"

#include "kvstore.h"

/* Longest single sleep of a wait, so that state changes are re-read */
#define KV_WAIT_STEP_MS 1000

/* Writes this far from a memory limit are not checked record by record */
#define KV_MEMORY_MARGIN (2 * 1024 * 1024)

/*
 * The topic this backend opened last.  Its slot's incarnation changes
 * whenever the slot is claimed or freed, so while it is unchanged the slot
 * still serves that topic: it is found again without the lock on every
 * slot (KvTopicFind).
 */
static KvTopic *last_topic = NULL;
static uint64 last_incarnation = 0;
static char last_name[KV_MAX_TOPIC_NAME + 1];

static bool is_internal(const char *name);
static void check_not_internal(const char *name);
static void refuse_full(const char *name);
static void wait_step(KvTopic *topic, TimestampTz deadline, KvWait wait);
static bool allowed_by_list(const char *name);
static char *trim(char *text);
static bool name_matches(const char *pattern, const char *name);
static void refuse_write_to_full(KvTopicRef *ref, int64 applied,
								 const char *error);
static KvTopic *attach(const char *name, KvOpenMode mode, const char *conn,
					   uint64 *incarnation, bool *created);
static int64 wait_deadline_ms(TimestampTz deadline);
static KvTopicState read_state(KvTopic *topic, int *error_code,
							   char *error, size_t errorsize);

/* Whether a name is an internal topic of Kafka or of the systems around it */
static bool
is_internal(const char *name)
{
	return name[0] == '_' ||
		strcmp(name, "connect-configs") == 0 ||
		strcmp(name, "connect-offsets") == 0 ||
		strcmp(name, "connect-status") == 0;
}

/* Refuse the internal topics */
static void
check_not_internal(const char *name)
{
	if (is_internal(name))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("topic \"%s\" is an internal topic", name),
				 errdetail("kvstore never reads or writes topics whose names start with \"_\", nor Kafka Connect's default internal topics.")));
}

/*
 * Whether kvstore.allowed_topics admits a name: each entry is a name, or a
 * prefix followed by '*'; "*" admits every name.
 */
static bool
allowed_by_list(const char *name)
{
	char	   *raw;
	List	   *entries;
	ListCell   *lc;
	bool		allowed = false;

	if (strcmp(kvstore_allowed_topics, "*") == 0)
		return true;
	raw = pstrdup(kvstore_allowed_topics);
	if (!SplitIdentifierString(raw, ',', &entries))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid list syntax in kvstore.allowed_topics")));
	foreach(lc, entries)
	{
		const char *entry = (const char *) lfirst(lc);
		size_t		len = strlen(entry);

		if ((len > 0 && entry[len - 1] == '*' && strncmp(name, entry, len - 1) == 0) ||
			strcmp(name, entry) == 0)
		{
			allowed = true;
			break;
		}
	}
	list_free(entries);
	pfree(raw);
	return allowed;
}

/*
 * KvTopicCheckAllowed
 *		Refuse a name that kvstore may not attach, before anything is sent.
 */
void
KvTopicCheckAllowed(const char *name)
{
	KvRecordCheckTopicName(name);
	check_not_internal(name);
	if (!allowed_by_list(name))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("topic \"%s\" is not in kvstore.allowed_topics", name),
				 errhint("A superuser can add it to kvstore.allowed_topics and reload the configuration.")));
}

/* The text without its leading and trailing white space, in place */
static char *
trim(char *text)
{
	char	   *end;

	while (isspace((unsigned char) *text))
		text++;
	end = text + strlen(text);
	while (end > text && isspace((unsigned char) end[-1]))
		*--end = '\0';
	return text;
}

/* Whether a name is pattern, or starts with it when it ends in '*' */
static bool
name_matches(const char *pattern, const char *name)
{
	size_t		len = strlen(pattern);

	if (len > 0 && pattern[len - 1] == '*')
		return strncmp(name, pattern, len - 1) == 0;
	return strcmp(name, pattern) == 0;
}

/*
 * KvTopicMemoryLimit
 *		Read kvstore.topic_memory_limit: when name is not NULL, set *limit
 *		to the limit in bytes of that topic's index, 0 for none.
 *
 * The setting lists entries separated by commas: "size" applies to every
 * topic, "name=size" to one, "prefix*=size" to the topics whose names
 * start with prefix; the first entry that matches applies.  A size is a
 * memory size as for other settings (a bare number is in kB); 0 is no
 * limit.  Returns false with *error set when the setting does not parse.
 */
bool
KvTopicMemoryLimit(const char *setting, const char *name, uint64 *limit,
				   const char **error)
{
	char	   *copy = pstrdup(setting != NULL ? setting : "");
	char	   *next;
	bool		found = false;
	bool		ok = true;

	*limit = 0;
	for (char *entry = copy; ok && entry != NULL; entry = next)
	{
		char	   *eq;
		char	   *pattern = NULL;
		char	   *size;
		int			kb;
		const char *hint;

		next = strchr(entry, ',');
		if (next != NULL)
			*next++ = '\0';
		eq = strchr(entry, '=');
		if (eq != NULL)
		{
			*eq = '\0';
			pattern = trim(entry);
			size = trim(eq + 1);
		}
		else
			size = trim(entry);

		if (pattern != NULL && pattern[0] == '\0')
		{
			*error = "An entry has a size but no topic name before \"=\".";
			ok = false;
		}
		else if (size[0] == '\0')
		{
			if (pattern != NULL)
			{
				*error = "An entry has a topic name but no size after \"=\".";
				ok = false;
			}
		}
		else if (!parse_int(size, &kb, GUC_UNIT_KB, &hint) || kb < 0)
		{
			*error = "Each entry is a memory size (such as 256MB), or a topic name or prefix* followed by = and a memory size.";
			ok = false;
		}
		else if (!found && name != NULL &&
				 (pattern == NULL || name_matches(pattern, name)))
		{
			*limit = (uint64) kb * 1024;
			found = true;
		}
	}
	pfree(copy);
	return ok;
}

/* Refuse to attach a topic because every slot is taken */
static void
refuse_full(const char *name)
{
	ereport(ERROR,
			(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
			 errmsg("cannot attach topic \"%s\": all %d topic slots are in use",
					name, kvstore_max_topics),
			 errhint("Raise kvstore.max_topics and restart the server.")));
}

/*
 * KvTopicList
 *		The topics of the cluster of a connection (NULL: the default one)
 *		this server may attach, sorted by name.
 *
 * Kafka's topics of one partition, without the internal ones and those
 * outside kvstore.allowed_topics; whether a topic is compacted is checked
 * when it is attached.
 */
List *
KvTopicList(const char *conn)
{
	List	   *topics = NIL;
	ListCell   *lc;

	KvCheckLoaded();
	foreach(lc, KvKafkaListTopics(conn))
	{
		char	   *name = (char *) lfirst(lc);

		if (strlen(name) <= KV_MAX_TOPIC_NAME && !is_internal(name) &&
			allowed_by_list(name))
			topics = lappend(topics, name);
	}
	return topics;
}

/*
 * Attach a topic this server does not serve yet: check it in Kafka (and
 * create it if the mode allows), claim a slot, start its worker.  *created
 * tells whether this call created the topic in Kafka.
 */
static KvTopic *
attach(const char *name, KvOpenMode mode, const char *conn,
	   uint64 *incarnation, bool *created)
{
	KvTopic    *topic;
	bool		claimed;

	/* A full server refuses before it asks anything of Kafka */
	if (KvTopicFreeSlots() == 0)
		refuse_full(name);

	*created = false;
	if (mode == KV_OPEN_CREATE)
		*created = KvKafkaCreateTopic(name, conn);
	else if (!KvKafkaTopicExists(name, conn))
	{
		if (mode == KV_OPEN_READ || !kvstore_auto_create_topics)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("topic \"%s\" does not exist", name),
					 errhint("Create it with kv_create_topic('%s').", name)));
		*created = KvKafkaCreateTopic(name, conn);
	}

	topic = KvTopicClaim(name, conn, &claimed);
	if (topic == NULL)
		refuse_full(name);
	*incarnation = pg_atomic_read_u64(&topic->incarnation);
	if (claimed && !KvWorkerStart(name, KvConnectionHash(conn)))
	{
		KvTopicRelease(topic);
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("could not start the worker of topic \"%s\"", name),
				 errdetail("No background worker slot is free."),
				 errhint("Raise max_worker_processes and restart the server.")));
	}
	return topic;
}

/*
 * KvTopicOpen
 *		A reference to a topic, attaching it on this server if needed.
 *
 * Reads open with KV_OPEN_READ and never create anything in Kafka; a
 * missing topic is an error.  The caller waits for the topic to be ready
 * when it needs to (KvTopicLockForRead and the writes do).  conn is the
 * connection of a foreign table's server (kafka.c), NULL for the default.
 */
KvTopicRef *
KvTopicOpen(const char *name, KvOpenMode mode, const char *conn)
{
	KvTopicRef *ref;
	KvTopic    *topic;
	uint64		incarnation;
	bool		created;

	KvCheckLoaded();
	KvTopicCheckAllowed(name);

	if (conn != NULL && conn[0] == '\0')
		conn = NULL;
	if (conn != NULL && strlen(conn) >= KV_MAX_CONNECTION)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("connection settings for topic \"%s\" are too long", name),
				 errdetail("The options of the server and the user mapping take %zu bytes; kvstore keeps up to %d.",
						   strlen(conn), KV_MAX_CONNECTION - 1)));

	if (last_topic != NULL && strcmp(last_name, name) == 0 &&
		pg_atomic_read_u64(&last_topic->incarnation) == last_incarnation &&
		last_topic->conn_hash == KvConnectionHash(conn) &&
		strcmp(last_topic->conn, conn ? conn : "") == 0)
	{
		topic = last_topic;
		incarnation = last_incarnation;
	}
	else
	{
		topic = KvTopicFind(name, conn, &incarnation);
		if (topic == NULL)
			topic = attach(name, mode, conn, &incarnation, &created);
		last_topic = topic;
		last_incarnation = incarnation;
		strlcpy(last_name, name, sizeof(last_name));
	}

	ref = palloc(sizeof(KvTopicRef));
	ref->topic = topic;
	ref->incarnation = incarnation;
	strlcpy(ref->name, name, sizeof(ref->name));
	ref->conn = conn ? pstrdup(conn) : NULL;
	return ref;
}

/*
 * KvTopicCreate
 *		Create a topic in Kafka if it does not exist, and attach it.
 *
 * Returns whether this call created it.
 */
bool
KvTopicCreate(const char *name)
{
	uint64		incarnation;
	bool		created;

	KvCheckLoaded();
	KvTopicCheckAllowed(name);

	if (KvTopicFind(name, NULL, &incarnation) != NULL)
		return false;
	(void) attach(name, KV_OPEN_CREATE, NULL, &incarnation, &created);
	return created;
}

/*
 * KvTopicRecheck
 *		Raise an error if the slot of a reference now serves another topic.
 */
void
KvTopicRecheck(KvTopicRef *ref)
{
	if (pg_atomic_read_u64(&ref->topic->incarnation) != ref->incarnation)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("topic \"%s\" is no longer attached", ref->name),
				 errdetail("Its slot was freed meanwhile: kv_detach detached it, or its worker could not start."),
				 errhint("Run the statement again: it attaches the topic again.")));
}

/*
 * KvTopicDetach
 *		Stop materializing a topic of a connection here: its worker empties
 *		the index, frees the slot and exits.  Returns false if the topic was
 *		not attached through that connection.
 *
 * conn is as for KvTopicOpen (NULL: the default connection).  Only that
 * connection's slot is freed: the same topic name attached through
 * another connection keeps its own.  Waits until the slot is freed.  A
 * worker between two starts does it when it starts.  Readers and writers
 * of the topic meanwhile fail with 55000 once the slot is freed; the next
 * statement attaches the topic again.
 */
bool
KvTopicDetach(const char *name, const char *conn)
{
	uint64		incarnation;
	KvTopic    *topic = KvTopicFind(name, conn, &incarnation);
	pid_t		pid;

	if (topic == NULL)
		return false;

	SpinLockAcquire(&topic->mutex);
	if (pg_atomic_read_u64(&topic->incarnation) == incarnation)
		topic->detach = true;
	SpinLockRelease(&topic->mutex);

	ConditionVariablePrepareToSleep(&topic->cv);
	while (pg_atomic_read_u64(&topic->incarnation) == incarnation)
	{
		/*
		 * Signal the worker of each round (it may have restarted), read
		 * just before: a process that left the slot is not signaled
		 */
		SpinLockAcquire(&topic->mutex);
		pid = pg_atomic_read_u64(&topic->incarnation) == incarnation ?
			topic->worker_pid : 0;
		SpinLockRelease(&topic->mutex);
		if (pid != 0)
			(void) kill(pid, SIGTERM);
		(void) ConditionVariableTimedSleep(&topic->cv, 1000,
										   KvWaitEvent(KV_WAIT_TOPIC_LOAD));
	}
	ConditionVariableCancelSleep();
	return true;
}

/* The state of a topic, with its error code and text */
static KvTopicState
read_state(KvTopic *topic, int *error_code, char *error, size_t errorsize)
{
	KvTopicState state;

	SpinLockAcquire(&topic->mutex);
	state = topic->state;
	*error_code = topic->error_code;
	strlcpy(error, topic->last_error, errorsize);
	SpinLockRelease(&topic->mutex);
	return state;
}

/*
 * KvTopicLockForRead
 *		Take the topic lock shared once the topic is ready; returns the
 *		generation of the index.
 *
 * The state is checked under the lock, so the index cannot be emptied or
 * rebuilt while the caller reads.  A full topic that has been ready is
 * read as it stands: behind the log, its lag visible in kv_topics.  A
 * reader that reads in several holds (a scan) compares the generations: a
 * different one means the index was rebuilt in between.
 */
uint64
KvTopicLockForRead(KvTopicRef *ref)
{
	KvTopic    *topic = ref->topic;

	for (;;)
	{
		KvTopicState state;
		uint64		generation;
		bool		was_ready;

		/* Behind a worker that waits for the lock, not before it */
		if (pg_atomic_read_u32(&topic->worker_waiting) != 0)
		{
			LWLockAcquire(topic->gate, LW_SHARED);
			LWLockAcquire(topic->lock, LW_SHARED);
			LWLockRelease(topic->gate);
		}
		else
			LWLockAcquire(topic->lock, LW_SHARED);

		/*
		 * The state leaves READY, and the generation changes, only under
		 * the exclusive lock: READY read under the shared lock stays true
		 * while it is held, without the mutex
		 */
		if (topic->state == KV_TOPIC_READY &&
			pg_atomic_read_u64(&topic->incarnation) == ref->incarnation)
			return topic->generation;

		SpinLockAcquire(&topic->mutex);
		state = topic->state;
		generation = topic->generation;
		was_ready = topic->bootstrap_end != 0;
		SpinLockRelease(&topic->mutex);
		if ((state == KV_TOPIC_READY || (state == KV_TOPIC_FULL && was_ready)) &&
			pg_atomic_read_u64(&topic->incarnation) == ref->incarnation)
			return generation;
		LWLockRelease(topic->lock);
		KvTopicWaitReady(ref);
	}
}

/* Milliseconds left until deadline (at least 1), or -1 for no deadline */
static int64
wait_deadline_ms(TimestampTz deadline)
{
	long		secs;
	int			usecs;

	if (deadline == 0)
		return -1;
	TimestampDifference(GetCurrentTimestamp(), deadline, &secs, &usecs);
	return Max((int64) secs * 1000 + usecs / 1000, 1);
}

/* Sleep on the topic's condition variable until woken, or a step passed */
static void
wait_step(KvTopic *topic, TimestampTz deadline, KvWait wait)
{
	int64		timeout = wait_deadline_ms(deadline);

	(void) ConditionVariableTimedSleep(&topic->cv,
									   timeout < 0 ? KV_WAIT_STEP_MS : Min(timeout, KV_WAIT_STEP_MS),
									   KvWaitEvent(wait));
}

/*
 * KvTopicWaitReady
 *		Wait until the topic has finished its bootstrap.
 *
 * Reads and writes pass here so that nobody sees a half-loaded index.  A
 * full topic that has been ready passes: its reads are served, and writes
 * check KvTopicCheckWritable next.  The wait is bounded by
 * kvstore.write_timeout and interrupted by statement_timeout and query
 * cancel.
 */
void
KvTopicWaitReady(KvTopicRef *ref)
{
	KvTopic    *topic = ref->topic;
	TimestampTz deadline = 0;

	if (kvstore_write_timeout > 0)
		deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
											   kvstore_write_timeout);
	for (;;)
	{
		KvTopicState state;
		char		error[KV_MAX_ERROR_TEXT];
		int			error_code;
		int64		applied;
		int64		target;
		bool		was_ready;

		KvTopicRecheck(ref);
		state = read_state(topic, &error_code, error, sizeof(error));
		SpinLockAcquire(&topic->mutex);
		target = topic->bootstrap_target;
		was_ready = topic->bootstrap_end != 0;
		SpinLockRelease(&topic->mutex);
		applied = (int64) pg_atomic_read_u64(&topic->applied);

		if (state == KV_TOPIC_READY || (state == KV_TOPIC_FULL && was_ready))
			break;
		if (state == KV_TOPIC_FULL)
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("topic \"%s\" does not fit in its memory limit", ref->name),
					 errdetail("It stopped loading at offset " INT64_FORMAT " of " INT64_FORMAT ": %s",
							   applied, target, error),
					 errhint("Raise kvstore.topic_memory_limit or kvstore.shared_memory and reload the configuration; the topic then goes on loading.")));
		if (state == KV_TOPIC_ERROR)
			ereport(ERROR,
					(errcode(error_code ? error_code : ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("topic \"%s\" is in an error state", ref->name),
					 errdetail_internal("%s", error)));

		if (deadline != 0 && GetCurrentTimestamp() >= deadline)
			ereport(ERROR,
					(errcode(ERRCODE_QUERY_CANCELED),
					 errmsg("topic \"%s\" is not ready after %d ms",
							ref->name, kvstore_write_timeout),
					 state == KV_TOPIC_BOOTSTRAP ?
					 errdetail("The topic is loading: offset " INT64_FORMAT " of " INT64_FORMAT ".",
							   applied, target) :
					 errdetail("The topic's worker is starting."),
					 error[0] ? errcontext("last error of topic \"%s\": %s",
										   ref->name, error) : 0,
					 errhint("Check kvstore.brokers and the kv_topics view.")));

		wait_step(topic, deadline, KV_WAIT_TOPIC_LOAD);
	}
	ConditionVariableCancelSleep();
}

/*
 * KvTopicWaitApplied
 *		Wait until the topic has applied the record at offset.
 *
 * The condition is applied > offset: transaction markers take offsets that
 * are never delivered, so the position may jump past a record's offset.
 * The caller sets up an error context saying that the record is already
 * in Kafka, for errors raised by cancel and statement_timeout.
 */
void
KvTopicWaitApplied(KvTopicRef *ref, int64 offset)
{
	KvTopic    *topic = ref->topic;
	TimestampTz deadline = 0;

	if (kvstore_write_timeout > 0)
		deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
											   kvstore_write_timeout);
	for (;;)
	{
		KvTopicState state;
		char		error[KV_MAX_ERROR_TEXT];
		int			error_code;

		KvTopicRecheck(ref);
		state = read_state(topic, &error_code, error, sizeof(error));

		if (state == KV_TOPIC_READY &&
			(int64) pg_atomic_read_u64(&topic->applied) > offset)
			break;
		if (state == KV_TOPIC_FULL &&
			(int64) pg_atomic_read_u64(&topic->applied) <= offset)
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("topic \"%s\" stopped for memory before applying offset " INT64_FORMAT,
							ref->name, offset),
					 errdetail("The record is stored in Kafka at offset " INT64_FORMAT "; it becomes visible once the topic's memory limit lets the topic go on.",
							   offset),
					 errcontext("last error of topic \"%s\": %s", ref->name, error)));
		if (state == KV_TOPIC_ERROR)
			ereport(ERROR,
					(errcode(error_code ? error_code : ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("topic \"%s\" stopped before applying offset " INT64_FORMAT,
							ref->name, offset),
					 errdetail("The record is stored in Kafka at offset " INT64_FORMAT ".",
							   offset),
					 error[0] ? errcontext("last error of topic \"%s\": %s",
										   ref->name, error) : 0));

		if (deadline != 0 && GetCurrentTimestamp() >= deadline)
			ereport(ERROR,
					(errcode(ERRCODE_QUERY_CANCELED),
					 errmsg("timed out waiting for topic \"%s\" to apply offset " INT64_FORMAT,
							ref->name, offset),
					 errdetail("Kafka acknowledged the write at offset " INT64_FORMAT "; it will become visible once this server applies it.",
							   offset),
					 errhint("Raise kvstore.write_timeout, or check the kv_topics view for lag.")));

		wait_step(topic, deadline, KV_WAIT_WRITE_APPLIED);
	}
	ConditionVariableCancelSleep();
}

/* Refuse a write to a full topic: it could not become visible */
static void
refuse_write_to_full(KvTopicRef *ref, int64 applied, const char *error)
{
	ereport(ERROR,
			(errcode(ERRCODE_OUT_OF_MEMORY),
			 errmsg("topic \"%s\" is full: writes are refused", ref->name),
			 errdetail("The topic stopped at offset " INT64_FORMAT ", a record its index has no memory for, and serves reads of what it holds: %s",
					   applied, error),
			 errhint("Raise kvstore.topic_memory_limit or kvstore.shared_memory and reload the configuration; the topic then goes on by itself.")));
}

/*
 * KvTopicCheckWritable
 *		Refuse, before anything is sent, a write to a topic that is full.
 */
void
KvTopicCheckWritable(KvTopicRef *ref)
{
	char		error[KV_MAX_ERROR_TEXT];
	int			error_code;

	if (read_state(ref->topic, &error_code, error, sizeof(error)) == KV_TOPIC_FULL)
		refuse_write_to_full(ref, (int64) pg_atomic_read_u64(&ref->topic->applied),
							 error);
}

/*
 * KvTopicCheckRecord
 *		Refuse, before it is sent, a record that would take the topic's
 *		index past its limit, or the indexes of all topics past
 *		kvstore.shared_memory.
 *
 * plan counts, over the records of one write, the chunks their new keys
 * and larger values take beyond what the index holds (KvIndexPlanRecord).  Far
 * from both limits, more than KV_MEMORY_MARGIN away, the slot a new key of
 * the record's size takes is counted instead, without reading the index.
 * Memory the worker finds short later, as when other producers write to
 * the topic meanwhile, stops the topic (full) instead.
 */
void
KvTopicCheckRecord(KvTopicRef *ref, const KvRecord *rec, KvIndexPlan *plan)
{
	KvTopic    *topic = ref->topic;
	uint64		limit = topic->index.limit;
	uint64		area_limit = (uint64) kvstore_shared_memory * 1024;
	uint64		bytes = topic->index.bytes;
	uint64		held = KvShmemHeld();
	uint64		bound;
	uint64		before;

	if (rec->tombstone)
		return;

	bound = KvIndexSlotSize(rec->keylen, rec->vallen);
	if ((limit == 0 || bytes + plan->bytes + bound + KV_MEMORY_MARGIN <= limit) &&
		held + plan->bytes + bound + KV_MEMORY_MARGIN <= area_limit)
	{
		plan->bytes += bound;
		return;
	}

	/* Near a limit: what this record really takes */
	before = plan->bytes;
	(void) KvTopicLockForRead(ref);
	KvIndexPlanRecord(KvShmemArea(), &topic->index, rec, plan);
	bytes = topic->index.bytes;
	LWLockRelease(topic->lock);
	if (plan->bytes == before)
		return;					/* it takes nothing: a limit is no reason */

	if (limit != 0 && bytes + plan->bytes > limit)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("topic \"%s\" is at its memory limit", ref->name),
				 errdetail("Its index holds " UINT64_FORMAT " bytes of its limit of " UINT64_FORMAT "; this write needs " UINT64_FORMAT " more for new keys and larger values.",
						   bytes, limit, plan->bytes),
				 errhint("Delete keys, or raise kvstore.topic_memory_limit and reload the configuration.")));
	if (held + plan->bytes > area_limit)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("topic \"%s\" finds no shared memory for this write", ref->name),
				 errdetail("The indexes of all topics hold " UINT64_FORMAT " bytes, and kvstore.shared_memory is " UINT64_FORMAT "; this write needs " UINT64_FORMAT " more.",
						   held, area_limit, plan->bytes),
				 errhint("Raise kvstore.shared_memory and reload the configuration.")));
}

/*
 * KvTopicSetError
 *		Put a topic into the error state with a message, and wake waiters.
 *
 * The caller holds the topic lock exclusively.  Readers and writers of the
 * topic then fail with sqlstate and the message.
 */
void
KvTopicSetError(KvTopic *topic, int sqlstate, const char *fmt,...)
{
	va_list		args;

	SpinLockAcquire(&topic->mutex);
	topic->state = KV_TOPIC_ERROR;
	topic->error_code = sqlstate;
	va_start(args, fmt);
	vsnprintf(topic->last_error, sizeof(topic->last_error), fmt, args);
	va_end(args);
	SpinLockRelease(&topic->mutex);
	ConditionVariableBroadcast(&topic->cv);
}
