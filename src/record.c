/*-------------------------------------------------------------------------
 *
 * record.c
 *		  Records: what a key/value pair must be to travel through Kafka
 *
 * A record is the key bytes and the value bytes of one Kafka message.  A
 * tombstone (a message whose value is null) deletes its key; an empty
 * value is a real value.  Messages written by other producers without a
 * key, or with an empty one, cannot be addressed: the worker skips and
 * counts them.  This file checks topic names and records before anything
 * is sent, so that a bad argument never reaches the broker.
 *
 * IDENTIFICATION
 *		  src/record.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "kvstore.h"

/*
 * KvRecordCheckTopicName
 *		Refuse a topic name Kafka (or kvstore) would reject.
 *
 * Kafka accepts ASCII letters, digits, '.', '_' and '-', up to 249
 * characters, except "." and "..".  kvstore allows up to
 * KV_MAX_TOPIC_NAME characters.
 */
void
KvRecordCheckTopicName(const char *topic)
{
	size_t		len = strlen(topic);

	if (len == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_NAME),
				 errmsg("topic name must not be empty")));
	if (len > KV_MAX_TOPIC_NAME)
		ereport(ERROR,
				(errcode(ERRCODE_NAME_TOO_LONG),
				 errmsg("topic name \"%s\" is too long", topic),
				 errdetail("kvstore accepts topic names of up to %d characters.",
						   KV_MAX_TOPIC_NAME)));
	if (strcmp(topic, ".") == 0 || strcmp(topic, "..") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_NAME),
				 errmsg("\"%s\" is not a valid topic name", topic)));
	for (const char *c = topic; *c; c++)
	{
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
			  (*c >= '0' && *c <= '9') || *c == '.' || *c == '_' || *c == '-'))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_NAME),
					 errmsg("\"%s\" is not a valid topic name", topic),
					 errdetail("Topic names may contain only ASCII letters, digits, '.', '_' and '-'.")));
	}
}

/*
 * KvRecordFromBytes
 *		A record over the given bytes; nothing is copied.
 */
KvRecord
KvRecordFromBytes(const char *key, uint32 keylen,
				  const char *value, uint32 vallen, bool tombstone)
{
	KvRecord	rec;

	rec.key = key;
	rec.keylen = keylen;
	rec.tombstone = tombstone;
	rec.value = tombstone ? NULL : value;
	rec.vallen = tombstone ? 0 : vallen;
	rec.timestamp = -1;
	return rec;
}

/*
 * KvRecordCheck
 *		Refuse a record that must not be sent: empty key, too large.
 */
void
KvRecordCheck(const char *topic, const KvRecord *rec)
{
	if (rec->key == NULL || rec->keylen == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("key for topic \"%s\" must not be empty", topic)));
	if ((uint64) rec->keylen + rec->vallen > KV_MAX_RECORD_BYTES)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("record for topic \"%s\" is too large: %llu bytes",
						topic, (unsigned long long) rec->keylen + rec->vallen),
				 errdetail("Key and value together may not exceed %d bytes.",
						   KV_MAX_RECORD_BYTES)));
}
