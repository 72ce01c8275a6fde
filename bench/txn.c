/*
 * txn.c: the raw librdkafka transaction kvstore's kv_put_many is compared
 * with.  A transactional producer configured as kvstore's (idempotent,
 * acks=all) writes N records in one Kafka transaction and commits it; a
 * consumer configured as kvstore's materializer (read_committed) receives
 * the last of them.  Prints the time of each transaction, from
 * begin_transaction to the last record consumed, in microseconds.
 *
 *   txn [options] BROKERS TOPIC RECORDS COUNT
 *
 *   -l MS     linger.ms of the producer (default 0)
 *   -f        let rd_kafka_commit_transaction() wait for the delivery
 *             reports (it flushes, checking every 10 ms) instead of
 *             serving them with rd_kafka_poll() before committing
 *   -w MS     commit in tries of MS milliseconds (as a caller that serves
 *             cancel between tries does); default: one call
 *   -s        print, on stderr, the phases of the first transaction
 *             (rd_kafka_new to init_transactions, produce, delivery
 *             reports, commit, consumed) in milliseconds
 *   -d LIST   librdkafka debug contexts, logged to stderr
 *   -p        no transaction: an idempotent producer, the same records,
 *             delivery reports served with rd_kafka_poll()
 *   -n        name the topic in rd_kafka_producev() only: the producer
 *             then learns the topic's partitions from its periodic
 *             scan of its topics, once a second, which
 *             holds the first transaction's records up to a second.  By
 *             default the topic is opened with rd_kafka_topic_new() right
 *             after rd_kafka_new(), which asks for its metadata at once.
 *   -X K=V    any other producer setting
 *
 * Keys are key-%08d, values value-%08d, counted on from 0 through every
 * transaction, as in the other benchmarks.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <librdkafka/rdkafka.h>

static int	pending;
static int	failed;
static int64_t max_offset;

static void
dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	pending--;
	if (m->err)
		failed++;
	else if (m->offset > max_offset)
		max_offset = m->offset;
}

static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void
set(rd_kafka_conf_t *conf, const char *k, const char *v)
{
	char		err[256];

	if (rd_kafka_conf_set(conf, k, v, err, sizeof(err)) != RD_KAFKA_CONF_OK)
	{
		fprintf(stderr, "%s: %s\n", k, err);
		exit(1);
	}
}

static void
check(rd_kafka_error_t *error, const char *what)
{
	if (error)
	{
		fprintf(stderr, "%s: %s\n", what, rd_kafka_error_string(error));
		exit(1);
	}
}

int
main(int argc, char **argv)
{
	rd_kafka_conf_t *pconf = rd_kafka_conf_new();
	rd_kafka_conf_t *cconf = rd_kafka_conf_new();
	rd_kafka_t *producer;
	rd_kafka_t *consumer;
	rd_kafka_topic_partition_list_t *parts;
	int64_t		low,
				high;
	char		err[256];
	char		txnid[64];
	const char *linger = "0";
	const char *debug = NULL;
	int			commit_flushes = 0;
	int			commit_try_ms = -1;
	int			steps = 0;
	int			plain = 0;
	int			late_topic = 0;
	int			records,
				count,
				opt;
	double		t0;
	const char *topic;

	while ((opt = getopt(argc, argv, "l:fw:sd:pnX:")) != -1)
	{
		switch (opt)
		{
			case 'l':
				linger = optarg;
				break;
			case 'f':
				commit_flushes = 1;
				break;
			case 'w':
				commit_try_ms = atoi(optarg);
				break;
			case 's':
				steps = 1;
				break;
			case 'd':
				debug = optarg;
				break;
			case 'p':
				plain = 1;
				break;
			case 'n':
				late_topic = 1;
				break;
			case 'X':
				{
					char	   *eq = strchr(optarg, '=');

					if (!eq)
					{
						fprintf(stderr, "-X needs KEY=VALUE\n");
						return 2;
					}
					*eq = '\0';
					set(pconf, optarg, eq + 1);
					break;
				}
			default:
				fprintf(stderr, "usage: txn [-l MS] [-f] [-w MS] [-s] [-d LIST] [-p] [-n] [-X K=V] BROKERS TOPIC RECORDS COUNT\n");
				return 2;
		}
	}
	if (argc - optind != 4)
	{
		fprintf(stderr, "usage: txn [-l MS] [-f] [-w MS] [-s] [-d LIST] [-p] [-n] [-X K=V] BROKERS TOPIC RECORDS COUNT\n");
		return 2;
	}
	topic = argv[optind + 1];
	records = atoi(argv[optind + 2]);
	count = atoi(argv[optind + 3]);

	set(cconf, "bootstrap.servers", argv[optind]);
	set(cconf, "group.id", "kvstore-bench-txn");
	set(cconf, "enable.auto.commit", "false");
	set(cconf, "isolation.level", "read_committed");
	set(cconf, "max.partition.fetch.bytes", "16777216");
	consumer = rd_kafka_new(RD_KAFKA_CONSUMER, cconf, err, sizeof(err));
	if (!consumer)
	{
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	rd_kafka_poll_set_consumer(consumer);
	if (rd_kafka_query_watermark_offsets(consumer, topic, 0, &low, &high, 10000))
	{
		fprintf(stderr, "no topic %s\n", topic);
		return 1;
	}
	parts = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(parts, topic, 0)->offset = high;
	rd_kafka_assign(consumer, parts);
	rd_kafka_topic_partition_list_destroy(parts);

	/* The producer comes last, so that -s times its start-up alone */
	t0 = now_ms();
	set(pconf, "bootstrap.servers", argv[optind]);
	set(pconf, "enable.idempotence", "true");
	set(pconf, "acks", "all");
	set(pconf, "linger.ms", linger);
	if (debug)
		set(pconf, "debug", debug);
	if (!plain)
	{
		snprintf(txnid, sizeof(txnid), "kvstore-bench-txn-%d", (int) getpid());
		set(pconf, "transactional.id", txnid);
	}
	rd_kafka_conf_set_dr_msg_cb(pconf, dr_cb);
	producer = rd_kafka_new(RD_KAFKA_PRODUCER, pconf, err, sizeof(err));
	if (!producer)
	{
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	if (!late_topic)
		rd_kafka_topic_destroy(rd_kafka_topic_new(producer, topic, NULL));
	if (!plain)
		check(rd_kafka_init_transactions(producer, 30000), "init_transactions");
	if (steps)
		fprintf(stderr, "start-up %.1f ms\n", now_ms() - t0);

	for (int t = 0; t < count; t++)
	{
		double		start = now_ms(),
					produced,
					delivered,
					committed;

		pending = failed = 0;
		max_offset = -1;
		if (!plain)
			check(rd_kafka_begin_transaction(producer), "begin_transaction");
		for (int i = 0; i < records; i++)
		{
			char		key[32],
						value[32];
			int			n = t * records + i;
			rd_kafka_resp_err_t e;

			snprintf(key, sizeof(key), "key-%08d", n);
			snprintf(value, sizeof(value), "value-%08d", n);
			while ((e = rd_kafka_producev(producer, RD_KAFKA_V_TOPIC(topic),
										  RD_KAFKA_V_PARTITION(0),
										  RD_KAFKA_V_KEY(key, strlen(key)),
										  RD_KAFKA_V_VALUE(value, strlen(value)),
										  RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
										  RD_KAFKA_V_END)) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
				rd_kafka_poll(producer, 10);
			if (e)
			{
				fprintf(stderr, "produce: %s\n", rd_kafka_err2str(e));
				return 1;
			}
			pending++;
		}
		produced = now_ms();
		if (!commit_flushes || plain)
			while (pending > 0)
				rd_kafka_poll(producer, 1000);
		delivered = now_ms();
		if (!plain)
		{
			rd_kafka_error_t *error;

			if (commit_try_ms < 0)
				check(rd_kafka_commit_transaction(producer, 30000), "commit_transaction");
			else
				while ((error = rd_kafka_commit_transaction(producer, commit_try_ms)) != NULL)
				{
					if (!rd_kafka_error_is_retriable(error))
						check(error, "commit_transaction");
					rd_kafka_error_destroy(error);
				}
		}
		committed = now_ms();
		if (failed)
		{
			fprintf(stderr, "%d records failed\n", failed);
			return 1;
		}
		for (;;)
		{
			rd_kafka_message_t *m = rd_kafka_consumer_poll(consumer, 1000);
			int			done;

			if (m == NULL)
				continue;
			done = !m->err && m->offset >= max_offset;
			rd_kafka_message_destroy(m);
			if (done)
				break;
		}
		if (steps && t == 0)
			fprintf(stderr, "first transaction: produce %.1f ms, delivery reports %.1f ms, commit %.1f ms, consumed %.1f ms\n",
					produced - start, delivered - produced, committed - delivered,
					now_ms() - committed);
		printf("%.0f\n", (now_ms() - start) * 1000);
	}
	rd_kafka_consumer_close(consumer);
	rd_kafka_destroy(consumer);
	rd_kafka_flush(producer, 1000);
	rd_kafka_destroy(producer);
	return 0;
}
