/*-------------------------------------------------------------------------
 *
 * txn_producer.c
 *		  Write records to a topic inside a Kafka transaction, as another
 *		  producer would, and commit it, abort it, or leave it open
 *
 *	txn_producer BROKERS TOPIC commit|abort|open KEY=VALUE...
 *
 * Every record goes to partition 0; KEY=VALUE writes a value (empty after
 * "=": an empty value), a bare KEY writes a tombstone.  Once Kafka has
 * acknowledged every record, it prints "offset N" for each, in order, then:
 *
 *	commit	commits the transaction and prints "committed"
 *	abort	aborts it and prints "aborted"
 *	open	prints "open" and reads one line from stdin: "commit" or
 *			"abort" ends the transaction so; end of input leaves it
 *			open, for the broker to abort after transaction.timeout.ms
 *			(the environment variable TXN_TIMEOUT_MS, default 60000)
 *
 * The environment variable TXN_TIMESTAMP_MS, when set, is the timestamp of
 * every record, in milliseconds since 1970; else librdkafka stamps each
 * with the time it is produced.
 *
 * Exits with status 0 on success; says what failed on stderr otherwise.
 * The test bed compiles it (test/perl/KvstoreTest.pm); nothing here is
 * part of the extension.
 *
 * IDENTIFICATION
 *		  test/tools/txn_producer.c
 *
 *-------------------------------------------------------------------------
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <librdkafka/rdkafka.h>

#define MAX_RECORDS 1000

static int64_t offsets[MAX_RECORDS];
static int	failed = 0;

static void
fail(const char *what, const char *detail)
{
	fprintf(stderr, "txn_producer: %s: %s\n", what, detail);
	exit(1);
}

/* Keep each record's offset; the opaque is its position in the argument list */
static void
delivered(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	intptr_t	i = (intptr_t) m->_private;

	(void) rk;
	(void) opaque;
	if (m->err)
	{
		fprintf(stderr, "txn_producer: record %ld not delivered: %s\n",
				(long) i + 1, rd_kafka_err2str(m->err));
		failed++;
		return;
	}
	offsets[i] = m->offset;
}

/* Raise an error of the transaction API */
static void
check(rd_kafka_error_t *error, const char *what)
{
	if (error == NULL)
		return;
	fail(what, rd_kafka_error_string(error));
}

static void
set(rd_kafka_conf_t *conf, const char *name, const char *value)
{
	char		errstr[256];

	if (rd_kafka_conf_set(conf, name, value, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK)
		fail(name, errstr);
}

int
main(int argc, char **argv)
{
	rd_kafka_conf_t *conf;
	rd_kafka_t *rk;
	char		errstr[512];
	char		id[64];
	const char *timeout = getenv("TXN_TIMEOUT_MS");
	const char *stamp = getenv("TXN_TIMESTAMP_MS");
	int64_t		timestamp = stamp ? strtoll(stamp, NULL, 10) : 0;
	const char *action;
	int			nrecords;

	if (argc < 5 || argc - 4 > MAX_RECORDS ||
		(strcmp(argv[3], "commit") != 0 && strcmp(argv[3], "abort") != 0 &&
		 strcmp(argv[3], "open") != 0))
	{
		fprintf(stderr, "usage: txn_producer BROKERS TOPIC commit|abort|open KEY=VALUE...\n");
		return 2;
	}
	action = argv[3];
	nrecords = argc - 4;

	conf = rd_kafka_conf_new();
	snprintf(id, sizeof(id), "kvstore-test-txn-%ld", (long) getpid());
	set(conf, "bootstrap.servers", argv[1]);
	set(conf, "transactional.id", id);
	set(conf, "transaction.timeout.ms", timeout ? timeout : "60000");
	set(conf, "linger.ms", "0");
	rd_kafka_conf_set_dr_msg_cb(conf, delivered);
	rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	if (rk == NULL)
		fail("could not create a producer", errstr);

	check(rd_kafka_init_transactions(rk, 30000), "init_transactions");
	check(rd_kafka_begin_transaction(rk), "begin_transaction");
	for (int i = 0; i < nrecords; i++)
	{
		char	   *key = argv[4 + i];
		char	   *eq = strchr(key, '=');
		size_t		keylen = eq ? (size_t) (eq - key) : strlen(key);
		rd_kafka_resp_err_t err;

		err = rd_kafka_producev(rk,
								RD_KAFKA_V_TOPIC(argv[2]),
								RD_KAFKA_V_PARTITION(0),
								RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
								RD_KAFKA_V_KEY(key, keylen),
								RD_KAFKA_V_VALUE(eq ? eq + 1 : NULL, eq ? strlen(eq + 1) : 0),
								RD_KAFKA_V_TIMESTAMP(timestamp),
								RD_KAFKA_V_OPAQUE((void *) (intptr_t) i),
								RD_KAFKA_V_END);
		if (err)
			fail("produce", rd_kafka_err2str(err));
	}
	if (rd_kafka_flush(rk, 30000) != RD_KAFKA_RESP_ERR_NO_ERROR || failed)
		fail("flush", "not every record was acknowledged");
	for (int i = 0; i < nrecords; i++)
		printf("offset %lld\n", (long long) offsets[i]);

	if (strcmp(action, "open") == 0)
	{
		char		line[64];

		printf("open\n");
		fflush(stdout);
		if (fgets(line, sizeof(line), stdin) == NULL)
			_exit(0);			/* leave the transaction open */
		action = strncmp(line, "commit", 6) == 0 ? "commit" : "abort";
	}
	if (strcmp(action, "commit") == 0)
	{
		check(rd_kafka_commit_transaction(rk, 30000), "commit_transaction");
		printf("committed\n");
	}
	else
	{
		check(rd_kafka_abort_transaction(rk, 30000), "abort_transaction");
		printf("aborted\n");
	}
	fflush(stdout);
	rd_kafka_destroy(rk);
	return 0;
}
