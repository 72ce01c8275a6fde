/*
 * reader.c: one client reading a topic with kv_get, one key after another,
 * until it is told to stop (SIGTERM or SIGINT); it then prints the time of
 * each read in microseconds.  Run beside a writer, its slowest reads show
 * how long the writer held readers up.
 *
 *   reader CONNINFO TOPIC KEYS
 *
 * Keys are key-%08d, drawn at random from 1 to KEYS.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client.h"

static volatile sig_atomic_t stop = 0;

static void
on_signal(int sig)
{
	stop = 1;
}

int
main(int argc, char **argv)
{
	PGconn	   *conn;
	PGresult   *res;
	const Oid	types[2] = {25, 25};	/* text, text */
	double	   *times = NULL;
	size_t		n = 0,
				size = 0;
	long		keys;

	if (argc != 4 || (keys = atol(argv[3])) <= 0)
	{
		fprintf(stderr, "usage: reader CONNINFO TOPIC KEYS\n");
		return 1;
	}
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	conn = connect_prepared(argv[1], "SELECT kv_get($1, $2)", 2, types);
	srandom(time(NULL));

	while (!stop)
	{
		char		key[32];
		const char *params[2] = {argv[2], key};
		double		start = now_us();

		snprintf(key, sizeof(key), "key-%08ld", 1 + random() % keys);
		res = PQexecPrepared(conn, "stmt", 2, params, NULL, NULL, 0);
		if (PQresultStatus(res) != PGRES_TUPLES_OK)
		{
			fprintf(stderr, "%s", PQerrorMessage(conn));
			return 1;
		}
		PQclear(res);
		if (n == size)
		{
			size = size ? size * 2 : 65536;
			times = realloc(times, size * sizeof(double));
			if (times == NULL)
				return 1;
		}
		times[n++] = now_us() - start;
	}
	for (size_t i = 0; i < n; i++)
		printf("%.0f\n", times[i]);
	PQfinish(conn);
	return 0;
}
