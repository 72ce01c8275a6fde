/*
 * roundtrip.c: the raw librdkafka round trip kvstore's kv_put is compared
 * with.  A producer configured as kvstore's (idempotent, acks=all,
 * linger.ms=0) writes one record, waits for its delivery report, and a
 * consumer configured as kvstore's materializer (read_committed) receives
 * it; prints the latency of each round trip in microseconds.
 *
 *   roundtrip [-s] BROKERS TOPIC COUNT
 *
 *   -s        print, on stderr, the first write of a new producer, as the
 *             first kv_put of a backend makes it: from rd_kafka_new() (the
 *             topic opened at once, as kvstore does) until the record is
 *             consumed, in milliseconds
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <librdkafka/rdkafka.h>

static int64_t delivered_offset = -1;

static void
dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	delivered_offset = m->err ? -2 : m->offset;
}

static double
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
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
	int			count;
	int			first = 0;
	double		t0 = 0;

	if (argc == 5 && strcmp(argv[1], "-s") == 0)
	{
		first = 1;
		argv++;
		argc--;
	}
	if (argc != 4)
	{
		fprintf(stderr, "usage: roundtrip [-s] BROKERS TOPIC COUNT\n");
		return 2;
	}
	count = atoi(argv[3]);

	set(pconf, "bootstrap.servers", argv[1]);
	set(pconf, "enable.idempotence", "true");
	set(pconf, "acks", "all");
	set(pconf, "linger.ms", "0");
	rd_kafka_conf_set_dr_msg_cb(pconf, dr_cb);

	set(cconf, "bootstrap.servers", argv[1]);
	set(cconf, "group.id", "kvstore-bench-roundtrip");
	set(cconf, "enable.auto.commit", "false");
	set(cconf, "isolation.level", "read_committed");
	consumer = rd_kafka_new(RD_KAFKA_CONSUMER, cconf, err, sizeof(err));
	if (!consumer)
	{
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	rd_kafka_poll_set_consumer(consumer);

	if (rd_kafka_query_watermark_offsets(consumer, argv[2], 0, &low, &high, 10000))
	{
		fprintf(stderr, "no topic %s\n", argv[2]);
		return 1;
	}
	parts = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(parts, argv[2], 0)->offset = high;
	rd_kafka_assign(consumer, parts);
	rd_kafka_topic_partition_list_destroy(parts);

	/* The producer comes last, so that -s times its start-up alone */
	t0 = now_us();
	producer = rd_kafka_new(RD_KAFKA_PRODUCER, pconf, err, sizeof(err));
	if (!producer)
	{
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	rd_kafka_topic_destroy(rd_kafka_topic_new(producer, argv[2], NULL));

	for (int i = 0; i < count + 20; i++)
	{
		char		key[32];
		double		start = now_us();
		int64_t		offset;

		snprintf(key, sizeof(key), "rt:%d", i % 1000);
		delivered_offset = -1;
		rd_kafka_producev(producer, RD_KAFKA_V_TOPIC(argv[2]), RD_KAFKA_V_PARTITION(0),
						  RD_KAFKA_V_KEY(key, strlen(key)), RD_KAFKA_V_VALUE("value", 5),
						  RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
		while (delivered_offset == -1)
			rd_kafka_poll(producer, 100);
		offset = delivered_offset;
		for (;;)
		{
			rd_kafka_message_t *m = rd_kafka_consumer_poll(consumer, 100);

			if (m == NULL)
				continue;
			if (!m->err && m->offset >= offset)
			{
				rd_kafka_message_destroy(m);
				break;
			}
			rd_kafka_message_destroy(m);
		}
		if (i == 0 && first)
			fprintf(stderr, "first write %.1f ms\n", (now_us() - t0) / 1000);
		if (i >= 20)			/* the first round trips warm up */
			printf("%.0f\n", now_us() - start);
	}
	rd_kafka_consumer_close(consumer);
	rd_kafka_destroy(consumer);
	rd_kafka_flush(producer, 1000);
	rd_kafka_destroy(producer);
	return 0;
}
