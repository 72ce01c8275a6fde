/*
 * batch.c: kv_put_many called as an application calls it, its two arrays
 * built by the client and bound as parameters of a prepared statement
 * (pgbench can only build them in SQL, which the server then runs too).
 * Writes batches of N records for a number of seconds and prints the
 * time of each call, in microseconds; the first call, which starts the
 * backend's Kafka producer, is left out.
 *
 *   batch CONNINFO TOPIC RECORDS SECONDS
 *   batch -g CONNINFO TOPIC RECORDS CALLS
 *
 * Keys are key-%08d and values value-%08d, as in the other benchmarks,
 * from a random batch number as the pgbench scripts do; with -g (grow),
 * CALLS batches numbered from 0 in order, so that the topic grows by
 * RECORDS new keys a call.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client.h"

/* The array literal {PREFIX%08d,...} of n numbers from first */
static void
array_of(char *buf, const char *prefix, long first, int n)
{
	char	   *p = buf;

	*p++ = '{';
	for (int i = 0; i < n; i++)
		p += sprintf(p, "%s%s%08ld", i ? "," : "", prefix, first + i);
	*p++ = '}';
	*p = '\0';
}

int
main(int argc, char **argv)
{
	PGconn	   *conn;
	PGresult   *res;
	const Oid	types[3] = {25, 1009, 1009};	/* text, text[], text[] */
	char	   *keys;
	char	   *values;
	int			n;
	int			grow = 0;
	long		calls = 0;
	double		end;

	if (argc > 1 && strcmp(argv[1], "-g") == 0)
	{
		grow = 1;
		argv++;
		argc--;
	}
	if (argc != 5 || (n = atoi(argv[3])) <= 0)
	{
		fprintf(stderr, "usage: batch [-g] CONNINFO TOPIC RECORDS SECONDS|CALLS\n");
		return 1;
	}
	if (grow)
		calls = atol(argv[4]);
	conn = connect_prepared(argv[1], "SELECT kv_put_many($1, $2, $3)", 3, types);
	keys = malloc((size_t) n * 16 + 3);
	values = malloc((size_t) n * 16 + 3);
	srandom(time(NULL));

	end = 0;
	for (long call = 0; grow ? call < calls : (end == 0 || now_us() < end); call++)
	{
		long		first = (grow ? call : random() % 1000) * n;
		const char *params[3] = {argv[2], keys, values};
		double		start;

		start = now_us();
		array_of(keys, "key-", first, n);
		array_of(values, "value-", first, n);
		res = PQexecPrepared(conn, "stmt", 3, params, NULL, NULL, 0);
		if (PQresultStatus(res) != PGRES_TUPLES_OK)
		{
			fprintf(stderr, "%s", PQerrorMessage(conn));
			return 1;
		}
		PQclear(res);
		if (call > 0)
			printf("%.0f\n", now_us() - start);
		else if (!grow)
			end = now_us() + atof(argv[4]) * 1e6;
	}
	PQfinish(conn);
	return 0;
}
