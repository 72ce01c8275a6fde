/*-------------------------------------------------------------------------
 *
 * kvstore.h
 *		  Declarations shared by the files of the kvstore extension
 *
 * kvstore materializes compacted Kafka topics into shared memory.  One
 * write passes through the files in this order: functions.c checks the
 * arguments, record.c turns them into a record, topic.c opens the topic,
 * producer.c sends the record to Kafka (through the client settings of
 * kafka.c) and waits, worker.c consumes it back and index.c applies it to
 * the topic's index in the memory shmem.c set up.  A read goes from
 * functions.c through topic.c and the cursor of scan.c to index.c.
 *
 * This is the only header of the extension.  It does not include
 * librdkafka: only kafka.c, producer.c and worker.c talk to Kafka.
 *
 * IDENTIFICATION
 *		  src/kvstore.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KVSTORE_H
#define KVSTORE_H

#include "foreign/fdwapi.h"
#include "port/atomics.h"
#include "storage/condition_variable.h"
#include "storage/lwlock.h"
#include "storage/spin.h"
#include "utils/dsa.h"
#include "utils/timestamp.h"

/*
 * Topic names longer than this are refused: the name travels to the
 * materializer in bgw_extra.  Kafka itself accepts up to 249 characters.
 */
#define KV_MAX_TOPIC_NAME	127

/* Key plus value may not exceed this, the default message.max.bytes */
#define KV_MAX_RECORD_BYTES	1000000

/*
 * Longest key and value an index holds (index.c).  A record kvstore writes
 * is far smaller; a topic whose maximum message size was raised may carry
 * larger ones from other producers, and its materializer stops at them.
 */
#define KV_INDEX_MAX_KEY	((1 << 20) - 1)
#define KV_INDEX_MAX_VALUE	((1 << 27) - 1)

/*
 * Longest connection kept per topic: the librdkafka properties of a
 * foreign server and user mapping (kafka.c), with their line breaks
 */
#define KV_MAX_CONNECTION	2048

/* Longest last-error text kept per topic */
#define KV_MAX_ERROR_TEXT	256

/*
 * One key/value pair on its way to or from Kafka.  A tombstone (the value
 * is NULL in Kafka) deletes the key; an empty value is a real value.
 */
typedef struct KvRecord
{
	const char *key;			/* key bytes, never NULL for a valid record */
	uint32		keylen;
	const char *value;			/* value bytes; NULL for a tombstone */
	uint32		vallen;
	bool		tombstone;		/* true: delete the key */
	int64		timestamp;		/* of a record read from Kafka: ms since
								 * 1970, -1 for none */
} KvRecord;

/*
 * The index of one topic: a hash table for point look-ups and a skip list
 * in unsigned byte order of the keys for scans.  Its entries live in
 * chunks the index takes from the shared dsa_area and carves itself, and
 * refer to each other by KvRef, a 32-bit chunk number and offset (see
 * index.c).  Only index.c looks inside.
 */
#define KV_SKIPLIST_MAXLEVEL 24

/* Size classes of the entries kept in shared chunks (index.c) */
#define KV_INDEX_CLASSES 72

typedef uint32 KvRef;			/* an entry of an index; 0 is none */

typedef struct KvIndex
{
	uint64		hash_key[2];	/* secret key of the keyed hash, drawn from
								 * pg_strong_random by KvIndexInit */
	dsa_pointer buckets;		/* array of nbuckets KvRefs */
	uint32		nbuckets;		/* a power of two, or 0 before first use */
	uint32		old_nbuckets;	/* while the table doubles, the buckets of
								 * the old one, else 0 */
	dsa_pointer old_buckets;	/* the old table, emptied into buckets a few
								 * chains at a time */
	uint32		moved;			/* old buckets emptied so far */
	uint32		nchunks;		/* slots of the chunk directory */
	dsa_pointer chunks;			/* chunk directory: dsa_pointer of each chunk
								 * by number */
	uint32		chunks_used;	/* numbers handed out so far, 0 never */
	uint32		chunks_live;	/* chunks allocated */
	uint32		free_chunk;		/* a number free for reuse, or 0 */
	int			level;			/* levels in use in the skip list */
	KvRef		head[KV_SKIPLIST_MAXLEVEL];	/* skip list heads */
	KvRef		finger[KV_SKIPLIST_MAXLEVEL];	/* per level in use, the last
												 * entry at or before the key
												 * inserted last (0: the
												 * head); finger[0] is that
												 * key, or 0: none */
	uint32		partial[KV_INDEX_CLASSES];	/* per size class, the number of
											 * a chunk with a free slot, or 0 */
	uint64		nkeys;			/* live keys */
	uint64		bytes;			/* bytes the area holds for this index:
								 * chunks, directory and hash table */
	uint64		limit;			/* most bytes the index may hold; 0: no
								 * limit of its own */
	pg_atomic_uint64 *held;		/* bytes all indexes of the area hold
								 * together, or NULL */
	uint64		held_limit;		/* most bytes they may hold; 0: no limit */
} KvIndex;

/*
 * What a writer's records will take from an index, counted before they are
 * sent (KvIndexPlanRecord).
 */
typedef struct KvIndexPlan
{
	int32		spare[KV_INDEX_CLASSES];	/* free slots left per size class;
											 * -1: not looked at yet */
	int64		numbers;		/* chunk numbers left; -1: not looked at */
	uint32		directory;		/* slots of the directory, as planned */
	uint64		keys;			/* new keys counted */
	uint64		buckets;		/* buckets of the table, as planned; 0: not
								 * looked at */
	uint64		written[16];	/* Bloom filter of the keys counted: a key
								 * written again may need a new slot */
	uint64		bytes;			/* what the records take beyond what the
								 * index holds */
} KvIndexPlan;

/* What a reader sees of one entry; pointers are valid under the topic lock */
typedef struct KvEntryView
{
	const char *key;
	uint32		keylen;
	const char *value;
	uint32		vallen;
	int64		offset;			/* offset of the record that wrote it */
	int64		timestamp;		/* its timestamp, ms since 1970; -1: none */
} KvEntryView;

/* Life cycle of a topic on this server */
typedef enum KvTopicState
{
	KV_TOPIC_FREE = 0,			/* slot unused */
	KV_TOPIC_STARTING,			/* worker registered, not yet consuming */
	KV_TOPIC_BOOTSTRAP,			/* replaying the log up to the target */
	KV_TOPIC_READY,				/* serving reads and writes */
	KV_TOPIC_ERROR,				/* stopped; last_error says why */
	KV_TOPIC_FULL				/* stopped at a record its index has no
								 * memory for: serves reads of what it holds
								 * once it has been ready, refuses writes */
} KvTopicState;

/*
 * One attached topic.  The fields under "mutex" are small and change
 * often; the index is protected by "lock" (see shmem.c for the protocol).
 */
typedef struct KvTopic
{
	char		name[KV_MAX_TOPIC_NAME + 1];	/* "" when the slot is free */
	LWLock	   *lock;			/* protects index; worker holds it exclusively
								 * while applying a batch */
	LWLock	   *gate;			/* held exclusively by the worker while it
								 * waits for lock, passed shared by readers
								 * on their way to it: readers cannot keep
								 * the worker out */
	pg_atomic_uint32 worker_waiting;	/* 1 while the worker passes the
										 * gate: readers pass it too */
	ConditionVariable cv;		/* broadcast when applied or state changes */
	pg_atomic_uint64 applied;	/* next offset to apply: every record below
								 * it is in the index */
	pg_atomic_uint64 incarnation;	/* bumped whenever the slot is claimed or
									 * freed: a reference to an older
									 * incarnation is stale */

	slock_t		mutex;			/* protects the fields below */
	KvTopicState state;			/* changes away from READY only under the
								 * exclusive lock, too */
	uint64		generation;		/* bumped, under the exclusive lock, each
								 * time the index is emptied */
	pid_t		worker_pid;		/* 0 when no worker runs */
	bool		detach;			/* kv_detach asks the worker to empty the
								 * index, free the slot and exit */
	int64		end_offset;		/* end of the log last seen by the worker */
	int64		bootstrap_target;	/* end of the log when bootstrap began */
	int64		bootstrap_from;	/* log start when bootstrap began */
	TimestampTz bootstrap_start;
	TimestampTz bootstrap_end;	/* 0 while bootstrapping */
	uint64		records;		/* records applied since the worker started */
	uint64		writes;			/* writes made through this server */
	uint64		skipped;		/* records without a key, skipped */
	int			error_code;		/* SQLSTATE of last_error in state ERROR */
	char		last_error[KV_MAX_ERROR_TEXT];

	KvIndex		index;			/* protected by lock */

	/*
	 * Group commit of atomic writes (group.c): batches queued for the next
	 * Kafka transaction of this topic, and the backend writing one now
	 */
	int			number;			/* position of the slot, fixed at start */
	LWLock	   *group_lock;		/* guards the fields below and the batches
								 * in the queue */
	ConditionVariable group_cv; /* broadcast when a group is done or its
								 * writer lets go */
	int			group_writer;	/* backend slot writing a group, -1: none */
	int			group_head;		/* first batch queued (backend slot), -1 */
	int			group_tail;		/* last batch queued, -1 */

	/* set when the slot is claimed, under the lock of the slot table */
	uint64		conn_hash;		/* KvConnectionHash of conn */
	char		conn[KV_MAX_CONNECTION];	/* the topic's connection, "" for
											 * the default one */
} KvTopic;

/*
 * A backend's reference to an attached topic: the slot, and the incarnation
 * of the slot it was found in.  Every wait re-checks the incarnation, so a
 * slot freed and claimed by another topic meanwhile is never used by
 * mistake.  The name is a copy, for messages.
 */
/*
 * The state of a backend's atomic write handed to another backend, which
 * writes it in its Kafka transaction together with its own (group.c)
 */
typedef enum KvBatchState
{
	KV_BATCH_IDLE = 0,			/* not in use */
	KV_BATCH_QUEUED,			/* in a topic's queue; its backend may take it
								 * back */
	KV_BATCH_TAKEN,				/* being written by the group's writer */
	KV_BATCH_DONE				/* written or failed: the outcome is set */
} KvBatchState;

/*
 * One per backend slot, in main shared memory.  Guarded by the group lock
 * of the topic it is queued in, or was taken from (topic).
 */
typedef struct KvBatch
{
	KvBatchState state;
	int			topic;			/* number of the topic slot */
	uint64		incarnation;	/* of that slot when queued */
	uint64		settings;		/* hash of the client settings it must be
								 * written with */
	int			next;			/* next batch of the queue, -1: none */
	dsa_pointer records;		/* the records, serialized (group.c) */
	uint32		nrecs;
	uint32		bytes;			/* of the records, as counted by group.c */
	/* the outcome, once DONE */
	pid_t		writer;			/* the backend that wrote it */
	int			members;		/* batches written in that transaction */
	int64		offset;			/* highest offset of its records */
	int			sqlerrcode;		/* 0: stored; else the writer's error */
	char		message[KV_MAX_ERROR_TEXT];
	char		detail[KV_MAX_ERROR_TEXT];
} KvBatch;

typedef struct KvTopicRef
{
	KvTopic    *topic;
	uint64		incarnation;
	char		name[KV_MAX_TOPIC_NAME + 1];
	const char *conn;			/* its connection, NULL for the default */
} KvTopicRef;

/* What opening a topic may do when this server has not attached it */
typedef enum KvOpenMode
{
	KV_OPEN_READ,				/* attach a topic that exists in Kafka */
	KV_OPEN_WRITE,				/* also create it, if kvstore.auto_create_topics */
	KV_OPEN_CREATE				/* create it if missing (kv_create_topic) */
} KvOpenMode;

/* One entry copied out of the index, in memory of the caller */
typedef struct KvRow
{
	char	   *key;
	uint32		keylen;
	char	   *value;
	uint32		vallen;
	int64		offset;			/* offset of the record that wrote it */
	int64		timestamp;		/* its timestamp, ms since 1970; -1: none */
} KvRow;

/* Bounds of a scan in unsigned byte order of the keys */
typedef struct KvScanBounds
{
	const char *lower;			/* first key; NULL: from the first */
	uint32		lowerlen;
	bool		lower_inclusive;
	const char *upper;			/* last key; NULL: to the end */
	uint32		upperlen;
	bool		upper_inclusive;
	const char *prefix;			/* keys must start with it; NULL: any */
	uint32		prefixlen;
	bool		backward;		/* true: in descending order */
} KvScanBounds;

typedef struct KvScan KvScan;	/* a cursor over one topic, scan.c */

/* What a column of a kvstore foreign table holds */
typedef enum KvColumnKind
{
	KV_COLUMN_UNUSED = 0,		/* a dropped column */
	KV_COLUMN_KEY,				/* the key */
	KV_COLUMN_VALUE,			/* the whole value */
	KV_COLUMN_FIELD,			/* a top-level field of a JSON object value */
	KV_COLUMN_OFFSET,			/* the offset of the record that wrote the key:
								 * read-only */
	KV_COLUMN_TIMESTAMP			/* the timestamp of that record: read-only */
} KvColumnKind;

/* Metadata columns are read-only: writes ignore them */
#define KV_COLUMN_IS_METADATA(kind) \
	((kind) == KV_COLUMN_OFFSET || (kind) == KV_COLUMN_TIMESTAMP)

/*
 * A kvstore foreign table, from its options and columns: read by
 * fdw_exec.c, carried from the planner to the executor in fdw_private.
 */
typedef struct KvFdwTable
{
	char	   *name;			/* of the foreign table, for messages */
	char	   *topic;
	Oid			serverid;		/* its server: the connection to Kafka */
	bool		json;			/* format 'json': the value is a JSON object
								 * of the non-key columns */
	int			batch_size;		/* rows per batch of an INSERT */
	AttrNumber	key_attno;
	int			natts;
	KvColumnKind *kinds;		/* by attribute number - 1 */
	char	  **fields;			/* JSON field of each KV_COLUMN_FIELD column */
	Oid		   *types;			/* type of each column */
} KvFdwTable;

/* How a foreign scan finds its keys */
typedef enum KvAccess
{
	KV_ACCESS_FULL,				/* every key, in order */
	KV_ACCESS_LOOKUP,			/* key = value: the hash table */
	KV_ACCESS_LOOKUPS,			/* key = ANY (array): sorted look-ups */
	KV_ACCESS_RANGE				/* bounds and prefixes: the ordered index */
} KvAccess;

/* A condition on the key that a foreign scan serves from the index */
typedef enum KvCondKind
{
	KV_COND_EQ,					/* key = arg */
	KV_COND_ANY,				/* key = ANY (arg) */
	KV_COND_GE,					/* key >= arg */
	KV_COND_GT,					/* key > arg */
	KV_COND_LE,					/* key <= arg */
	KV_COND_LT,					/* key < arg */
	KV_COND_PREFIX,				/* starts_with(key, arg), key ^@ arg */
	KV_COND_LIKE				/* key LIKE arg: the fixed start of the
								 * pattern */
} KvCondKind;

/*
 * Items of the fdw_private list of a kvstore ForeignScan, from fdw_plan.c
 * to fdw_exec.c.  fdw_exprs holds the clauses the index serves; the
 * executor evaluates the argument of each that is not the key.
 */
enum KvScanPrivateIndex
{
	KvScanPrivateTable,			/* the table, as KvFdwTableToList made it */
	KvScanPrivateAccess,		/* KvAccess, as an Integer */
	KvScanPrivateBackward,		/* descending order, as an Integer */
	KvScanPrivateKinds,			/* KvCondKind of each clause (IntList) */
	KvScanPrivateArgs,			/* the argument of each clause that is not
								 * the key (IntList) */
	KvScanPrivateAttrs,			/* attribute numbers the plan reads (IntList) */
	KvScanPrivateSetProcessed	/* direct modification only: whether it
								 * counts its rows, as an Integer */
};

/* Items of the fdw_private list of a kvstore ModifyTable */
enum KvModifyPrivateIndex
{
	KvModifyPrivateTable		/* the table, as KvFdwTableToList made it */
};

/* Name of the junk column that carries the key to UPDATE and DELETE */
#define KV_KEY_JUNK "kvstore_key"

/*
 * kvstore's waits.  From PostgreSQL 17 on each shows in pg_stat_activity
 * under its own name (KvWaitEvent); before, all are "Extension".
 */
typedef enum KvWait
{
	KV_WAIT_TOPIC_LOAD,			/* a session waits for a topic to load */
	KV_WAIT_WRITE_APPLIED,		/* a write waits until it is applied here */
	KV_WAIT_KAFKA_RETRY,		/* a process waits to ask Kafka again */
	KV_WAIT_WORKER_MAIN,		/* a worker waits for records */
	KV_WAIT_TOPIC_FULL,			/* a worker stopped for memory waits to try
								 * again */
	KV_WAIT_WRITE_GROUP,		/* an atomic write waits for another
								 * session's transaction to carry it */
	KV_WAIT_COUNT
} KvWait;

/* in kvstore.c */
extern char *kvstore_brokers;
extern int	kvstore_shared_memory;
extern int	kvstore_max_topics;
extern char *kvstore_topics;
extern int	kvstore_replication_factor;
extern int	kvstore_write_timeout;
extern int	kvstore_transaction_timeout;
extern bool kvstore_auto_create_topics;
extern char *kvstore_allowed_topics;
extern char *kvstore_kafka_settings;
extern char *kvstore_topic_memory_limit;
extern void KvCheckLoaded(void);
extern uint32 KvWaitEvent(KvWait wait);

/* in functions.c: SQL-callable, declared by PG_FUNCTION_INFO_V1 */

/* in fdw.c: kvstore_fdw_handler, kvstore_fdw_validator (SQL-callable) */
extern const char *KvFdwConnection(Oid serverid);
extern const char *KvFdwServerConnection(const char *servername);

/* in fdw_plan.c: paths, plans and EXPLAIN of foreign scans and writes */
extern void kvGetForeignRelSize(PlannerInfo *root, RelOptInfo *baserel,
								Oid foreigntableid);
extern void kvGetForeignPaths(PlannerInfo *root, RelOptInfo *baserel,
							  Oid foreigntableid);
extern ForeignScan *kvGetForeignPlan(PlannerInfo *root, RelOptInfo *baserel,
									 Oid foreigntableid, ForeignPath *best_path,
									 List *tlist, List *scan_clauses,
									 Plan *outer_plan);
extern void kvExplainForeignScan(ForeignScanState *node, struct ExplainState *es);
extern void kvAddForeignUpdateTargets(PlannerInfo *root, Index rtindex,
									  RangeTblEntry *target_rte,
									  Relation target_relation);
extern List *kvPlanForeignModify(PlannerInfo *root, ModifyTable *plan,
								 Index resultRelation, int subplan_index);
extern bool kvPlanDirectModify(PlannerInfo *root, ModifyTable *plan,
							   Index resultRelation, int subplan_index);
extern void kvExplainForeignModify(ModifyTableState *mtstate,
								   ResultRelInfo *rinfo, List *fdw_private,
								   int subplan_index, struct ExplainState *es);
extern void kvExplainDirectModify(ForeignScanState *node, struct ExplainState *es);

/* in fdw_exec.c: a table's options, reads and writes of rows, ANALYZE */
extern KvFdwTable *KvFdwGetTable(Relation rel);
extern List *KvFdwTableToList(const KvFdwTable *table);
extern KvFdwTable *KvFdwTableFromList(List *list, Relation rel);
extern bool KvFdwLikePrefix(const char *pattern, int len, char **prefix,
							int *prefixlen);
extern void kvBeginForeignScan(ForeignScanState *node, int eflags);
extern TupleTableSlot *kvIterateForeignScan(ForeignScanState *node);
extern void kvReScanForeignScan(ForeignScanState *node);
extern void kvEndForeignScan(ForeignScanState *node);
extern void kvBeginForeignModify(ModifyTableState *mtstate,
								 ResultRelInfo *rinfo, List *fdw_private,
								 int subplan_index, int eflags);
extern TupleTableSlot *kvExecForeignInsert(EState *estate, ResultRelInfo *rinfo,
										   TupleTableSlot *slot,
										   TupleTableSlot *planSlot);
extern TupleTableSlot **kvExecForeignBatchInsert(EState *estate,
												 ResultRelInfo *rinfo,
												 TupleTableSlot **slots,
												 TupleTableSlot **planSlots,
												 int *numSlots);
extern int	kvGetForeignModifyBatchSize(ResultRelInfo *rinfo);
extern TupleTableSlot *kvExecForeignUpdate(EState *estate, ResultRelInfo *rinfo,
										   TupleTableSlot *slot,
										   TupleTableSlot *planSlot);
extern TupleTableSlot *kvExecForeignDelete(EState *estate, ResultRelInfo *rinfo,
										   TupleTableSlot *slot,
										   TupleTableSlot *planSlot);
extern void kvEndForeignModify(EState *estate, ResultRelInfo *rinfo);
extern void kvBeginForeignInsert(ModifyTableState *mtstate,
								 ResultRelInfo *rinfo);
extern void kvEndForeignInsert(EState *estate, ResultRelInfo *rinfo);
extern void kvBeginDirectModify(ForeignScanState *node, int eflags);
extern TupleTableSlot *kvIterateDirectModify(ForeignScanState *node);
extern void kvEndDirectModify(ForeignScanState *node);
extern void kvExecForeignTruncate(List *rels, DropBehavior behavior,
								  bool restart_seqs);
extern bool kvAnalyzeForeignTable(Relation relation,
								  AcquireSampleRowsFunc *func,
								  BlockNumber *totalpages);

/* in record.c */
extern void KvRecordCheckTopicName(const char *topic);
extern void KvRecordCheck(const char *topic, const KvRecord *rec);
extern KvRecord KvRecordFromBytes(const char *key, uint32 keylen,
								  const char *value, uint32 vallen, bool tombstone);

/* in scan.c */
extern KvScan *KvScanBegin(KvTopicRef *ref, const KvScanBounds *bounds);
extern bool KvScanNext(KvScan *scan, KvRow *row);
extern void KvScanRestart(KvScan *scan);
extern void KvScanEnd(KvScan *scan);
extern bool KvScanLookup(KvTopicRef *ref, const char *key, uint32 keylen,
						 KvRow *row);
extern struct varlena *KvScanLookupValue(KvTopicRef *ref, const char *key,
										 uint32 keylen);
extern int	KvKeyCompare(const char *a, uint32 alen, const char *b, uint32 blen);
extern void KvScanChecksum(KvTopicRef *ref, int64 *keys, int64 *checksum,
						   int64 *applied);

/* in producer.c */
extern void KvProducerBegin(KvTopicRef *ref, bool atomic);
extern void KvProducerSend(const KvRecord *rec);
extern int64 KvProducerCommit(void);
extern void KvProducerAbort(void);
extern int64 KvProducerWrite(KvTopicRef *ref, const KvRecord *recs, int nrecs,
							 bool atomic);
extern void KvProducerCheck(KvTopicRef *ref, const KvRecord *recs, int nrecs);
extern void KvProducerRegister(void);
extern int	KvProducerBackendSlot(void);
extern void KvProducerBeginGroup(KvTopicRef *ref, int members);
extern void KvProducerSendMember(const KvRecord *rec, int member);
extern int64 KvProducerMemberOffset(int member);
extern bool KvProducerCommitRequested(void);
extern uint64 KvProducerSettingsHash(void);

#define KV_GROUP_MAX_MEMBERS 1024

extern int64 KvGroupWrite(KvTopicRef *ref, const KvRecord *recs, int nrecs);
extern void KvGroupAbort(void);

/* in worker.c */
extern void KvLauncherRegister(void);
extern bool KvWorkerStart(const char *topic, uint64 conn_hash);
extern PGDLLEXPORT void kvstore_worker_main(Datum main_arg);
extern PGDLLEXPORT void kvstore_launcher_main(Datum main_arg);

/* in topic.c */
extern void KvTopicCheckAllowed(const char *name);
extern List *KvTopicList(const char *conn);
extern bool KvTopicMemoryLimit(const char *setting, const char *name,
							   uint64 *limit, const char **error);
extern KvTopicRef *KvTopicOpen(const char *name, KvOpenMode mode,
							   const char *conn);
extern bool KvTopicCreate(const char *name);
extern void KvTopicRecheck(KvTopicRef *ref);
extern bool KvTopicDetach(const char *name, const char *conn);
extern uint64 KvTopicLockForRead(KvTopicRef *ref);
extern void KvTopicWaitReady(KvTopicRef *ref);
extern void KvTopicCheckWritable(KvTopicRef *ref);
extern void KvTopicCheckRecord(KvTopicRef *ref, const KvRecord *rec,
							   KvIndexPlan *plan);
extern void KvTopicWaitApplied(KvTopicRef *ref, int64 offset);
extern void KvTopicSetError(KvTopic *topic, int sqlstate,
							const char *fmt,...) pg_attribute_printf(3, 4);

/* in kafka.c */
struct rd_kafka_conf_s;
extern struct rd_kafka_conf_s *KvKafkaConfNew(const char *role,
											  const char *conn);
extern void KvKafkaConfSet(struct rd_kafka_conf_s *conf, const char *name,
						   const char *value);
extern void KvKafkaWarmUp(void);
extern int	KvKafkaSqlstate(int kafka_error);
extern const char *KvKafkaLastLog(void);
extern const char *KvKafkaSettingsProblem(const char *settings);
extern char *KvKafkaSettingsNow(const char *conn);
extern bool KvKafkaSettingsAre(const char *settings, const char *conn);
extern const char *KvKafkaBrokers(const char *conn);
extern void KvKafkaCheckOption(const char *name, const char *value,
							   bool user_mapping);
extern bool KvKafkaTopicExists(const char *topic, const char *conn);
extern bool KvKafkaCreateTopic(const char *topic, const char *conn);
extern int64 KvKafkaEndOffset(const char *topic, const char *conn);
extern List *KvKafkaListTopics(const char *conn);

/* in shmem.c */
extern Size KvShmemSize(void);
extern void KvShmemRequest(void);
extern void KvShmemStartup(void);
extern dsa_area *KvShmemArea(void);
extern uint64 KvShmemHeld(void);
extern bool KvShmemWarnArea(bool over, bool under);
extern uint32 KvShmemTxnIdGeneration(int slot);
extern void KvShmemTxnIdAdvance(int slot, uint32 from);
extern uint64 KvConnectionHash(const char *conn);
extern KvTopic *KvTopicFind(const char *name, const char *conn,
							uint64 *incarnation);
extern KvTopic *KvTopicFindHash(const char *name, uint64 conn_hash);
extern KvTopic *KvTopicClaim(const char *name, const char *conn,
							 bool *claimed);
extern void KvTopicRelease(KvTopic *topic);
extern KvTopic *KvTopicByIndex(int i);
extern KvBatch *KvShmemBatch(int slot);
extern dsa_area *KvShmemBatchArea(void);
extern int	KvTopicFreeSlots(void);

/* in index.c: caller holds topic->lock as stated at each function */
extern void KvIndexInit(KvIndex *index);
extern uint64 KvIndexHash(const KvIndex *index, const char *key,
						  uint32 keylen);
extern bool KvIndexApplyHashed(dsa_area *area, KvIndex *index,
							   const KvRecord *rec, int64 offset,
							   uint64 hash);
extern bool KvIndexApply(dsa_area *area, KvIndex *index,
						 const KvRecord *rec, int64 offset);
extern void KvIndexClear(dsa_area *area, KvIndex *index);
extern void KvIndexReserve(dsa_area *area, KvIndex *index, uint64 nkeys);
extern void KvIndexPrefetch(dsa_area *area, KvIndex *index, uint64 hash,
							bool chain);
extern bool KvIndexLookup(dsa_area *area, KvIndex *index,
						  const char *key, uint32 keylen, KvEntryView *view);
extern dsa_pointer KvIndexSeek(dsa_area *area, KvIndex *index,
							   const char *key, uint32 keylen, bool inclusive);
extern dsa_pointer KvIndexNext(dsa_area *area, KvIndex *index,
							   dsa_pointer entry);
extern dsa_pointer KvIndexSeekBefore(dsa_area *area, KvIndex *index,
									 const char *key, uint32 keylen,
									 bool inclusive);
extern void KvIndexView(dsa_area *area, dsa_pointer entry, KvEntryView *view);
extern void KvIndexPlanInit(KvIndexPlan *plan);
extern void KvIndexPlanRecord(dsa_area *area, KvIndex *index,
							  const KvRecord *rec, KvIndexPlan *plan);
extern Size KvIndexSlotSize(uint32 keylen, uint32 vallen);

#endif							/* KVSTORE_H */
