/*
 * client.h: what bench/batch.c and bench/reader.c share, two libpq clients
 * of kvstore that time each call.
 */
#ifndef KV_BENCH_CLIENT_H
#define KV_BENCH_CLIENT_H

#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <libpq-fe.h>

/* A monotonic clock, in microseconds */
static double
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

/*
 * A connection with the statement sql prepared as "stmt"; exits with a
 * message if either fails
 */
static PGconn *
connect_prepared(const char *conninfo, const char *sql, int nparams,
				 const Oid *types)
{
	PGconn	   *conn = PQconnectdb(conninfo);
	PGresult   *res;

	if (PQstatus(conn) != CONNECTION_OK)
	{
		fprintf(stderr, "%s", PQerrorMessage(conn));
		exit(1);
	}
	res = PQprepare(conn, "stmt", sql, nparams, types);
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
	{
		fprintf(stderr, "%s", PQerrorMessage(conn));
		exit(1);
	}
	PQclear(res);
	return conn;
}

#endif
