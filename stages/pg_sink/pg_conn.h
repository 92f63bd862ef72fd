/*
 * pg_sink: one libpq connection driven asynchronously, so that every wait
 * for the server has a deadline (a server that stops answering must not
 * hold a worker for ever).
 */
#ifndef PG_CONN_H
#define PG_CONN_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

/* What a call to the server came to. */
enum {
    PGC_OK = 0,
    PGC_COPY = 1,  /* pgc_run reached a COPY ... FROM STDIN */
    PGC_ERROR = 2, /* the server answered with an error: it did not happen */
    PGC_LOST = 3,  /* no answer (connection gone, or the deadline passed):
                    * whatever was in flight may or may not have happened */
};

typedef struct pgc {
    PGconn *conn; /* NULL when not connected */
    char state[6]; /* SQLSTATE of the last PGC_ERROR */
    char status[24]; /* command tag of the last result (e.g. "COMMIT") */
    char msg[512];   /* the last error, as one line */
} pgc_t;

/* Connects (keys/vals as for PQconnectStartParams, expand_dbname on) by
 * deadline, on CLOCK_MONOTONIC in ns. PGC_OK, or PGC_LOST with c->msg. */
int pgc_connect(pgc_t *c, const char *const *keys, const char *const *vals,
                uint64_t deadline);
void pgc_close(pgc_t *c);

/* Sends sql (one or more statements) and reads the results until the end,
 * or until a COPY FROM STDIN starts (PGC_COPY). tuples[i] (i < ntuples)
 * gets the row count of the i-th statement. A connection found broken is
 * closed (PGC_LOST). */
int pgc_run(pgc_t *c, const char *sql, uint64_t deadline, long *tuples,
            size_t ntuples);
/* In a COPY: sends data[0..len), ends the COPY and reads its result
 * (*tuples: rows copied). With fail set, abandons the COPY instead, with
 * that reason (the server then answers with an error, which is expected:
 * PGC_OK once it has). */
int pgc_copy(pgc_t *c, const char *data, size_t len, const char *fail,
             uint64_t deadline, long *tuples);

#endif
