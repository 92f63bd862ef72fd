/* pg_sink: asynchronous libpq calls with deadlines (see pg_conn.h). */
#include "pg_conn.h"

#include <sluice/stage.h>

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Keeps "what: text" as one line, white space squeezed (libpq's messages
 * span lines). */
static void s_set_msg(pgc_t *c, const char *what, const char *text)
{
    char raw[sizeof(c->msg)];
    size_t k = 0;
    int space = 1;

    snprintf(raw, sizeof(raw), "%s%s%s", what ? what : "",
             what && text && *text ? ": " : "", text ? text : "");
    for (const char *p = raw; *p; p++) {
        int ws = *p == ' ' || *p == '\n' || *p == '\t' || *p == '\r';
        if (ws && space)
            continue;
        c->msg[k++] = ws ? ' ' : *p;
        space = ws;
    }
    while (k && c->msg[k - 1] == ' ')
        k--;
    c->msg[k] = '\0';
}

void pgc_close(pgc_t *c)
{
    if (c->conn)
        PQfinish(c->conn);
    c->conn = NULL;
}

static int s_lost(pgc_t *c, const char *what)
{
    s_set_msg(c, what, c->conn ? PQerrorMessage(c->conn) : NULL);
    if (!c->msg[0])
        s_set_msg(c, "connection lost", NULL);
    pgc_close(c);
    return PGC_LOST;
}

/* Waits for events on the connection's socket: 1 ready, 0 deadline
 * passed, -1 no socket or poll failed. */
static int s_wait(PGconn *conn, short events, uint64_t deadline)
{
    for (;;) {
        int fd = PQsocket(conn);
        uint64_t now = sl_mono_ns();
        if (fd < 0)
            return -1;
        if (now >= deadline)
            return 0;
        uint64_t ms = (deadline - now + 999999) / 1000000;
        struct pollfd p = {.fd = fd, .events = events};
        int r = poll(&p, 1, ms > INT_MAX ? INT_MAX : (int)ms);
        if (r > 0)
            return 1;
        if (r < 0 && errno != EINTR)
            return -1;
    }
}

static void s_quiet(void *arg, const char *message)
{
    /* Notices ("relation already exists, skipping") are not news. */
    (void)arg;
    (void)message;
}

int pgc_connect(pgc_t *c, const char *const *keys, const char *const *vals,
                uint64_t deadline)
{
    PostgresPollingStatusType ps = PGRES_POLLING_WRITING;

    pgc_close(c);
    c->conn = PQconnectStartParams(keys, vals, 1);
    if (!c->conn) {
        s_set_msg(c, "cannot connect", "out of memory");
        return PGC_LOST;
    }
    if (PQstatus(c->conn) == CONNECTION_BAD)
        return s_lost(c, "cannot connect");
    while (ps != PGRES_POLLING_OK) {
        if (ps == PGRES_POLLING_FAILED)
            return s_lost(c, "cannot connect");
        int w = s_wait(c->conn, ps == PGRES_POLLING_READING ? POLLIN : POLLOUT,
                       deadline);
        if (w == 0) {
            pgc_close(c);
            s_set_msg(c, "cannot connect", "timed out");
            return PGC_LOST;
        }
        if (w < 0)
            return s_lost(c, "cannot connect");
        ps = PQconnectPoll(c->conn);
    }
    PQsetNoticeProcessor(c->conn, s_quiet, NULL);
    if (PQsetnonblocking(c->conn, 1) != 0)
        return s_lost(c, "cannot connect");
    return PGC_OK;
}

/* Sends what libpq has queued. */
static int s_flush(pgc_t *c, uint64_t deadline)
{
    for (;;) {
        int r = PQflush(c->conn);
        if (r == 0)
            return PGC_OK;
        if (r < 0)
            return s_lost(c, "connection lost");
        int w = s_wait(c->conn, POLLIN | POLLOUT, deadline);
        if (w == 0)
            return s_lost(c, "no answer before the timeout");
        /* Reading keeps the server from blocking on its own output. */
        if (w < 0 || !PQconsumeInput(c->conn))
            return s_lost(c, "connection lost");
    }
}

/* The next result, or NULL at the end of the query (*out). */
static int s_result(pgc_t *c, uint64_t deadline, PGresult **out)
{
    while (PQisBusy(c->conn)) {
        int w = s_wait(c->conn, POLLIN, deadline);
        if (w == 0) {
            pgc_close(c);
            s_set_msg(c, "no answer before the timeout", NULL);
            return PGC_LOST;
        }
        if (w < 0 || !PQconsumeInput(c->conn))
            return s_lost(c, "connection lost");
    }
    *out = PQgetResult(c->conn);
    return PGC_OK;
}

static void s_keep_error(pgc_t *c, const PGresult *r)
{
    const char *st = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    const char *detail = PQresultErrorField(r, PG_DIAG_MESSAGE_DETAIL);
    char text[480];

    snprintf(c->state, sizeof(c->state), "%s", st ? st : "");
    if (!msg)
        msg = PQresultErrorMessage(r);
    snprintf(text, sizeof(text), "%s%s%s", msg, detail ? " (" : "",
             detail ? detail : "");
    if (detail && strlen(text) < sizeof(text) - 1)
        strcat(text, ")");
    s_set_msg(c, NULL, text);
}

/* Reads results to the end of the query (or a COPY IN). */
static int s_drain(pgc_t *c, uint64_t deadline, long *tuples, size_t ntuples)
{
    int rc = PGC_OK;
    size_t i = 0;

    for (;;) {
        PGresult *r = NULL;
        if (s_result(c, deadline, &r) != PGC_OK)
            return PGC_LOST;
        if (!r)
            break;
        ExecStatusType st = PQresultStatus(r);
        if (st == PGRES_COPY_IN) {
            PQclear(r);
            return rc == PGC_OK ? PGC_COPY : rc;
        }
        if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
            if (i < ntuples)
                tuples[i] = atol(PQcmdTuples(r));
            snprintf(c->status, sizeof(c->status), "%s", PQcmdStatus(r));
        } else if (rc == PGC_OK) {
            s_keep_error(c, r);
            rc = PGC_ERROR;
        }
        i++;
        PQclear(r);
        /* A fatal error (the backend terminated, say) breaks the
         * connection: what was in flight is unknown. */
        if (PQstatus(c->conn) == CONNECTION_BAD) {
            char keep[sizeof(c->msg)];
            memcpy(keep, c->msg, sizeof(keep));
            pgc_close(c);
            if (rc == PGC_ERROR)
                memcpy(c->msg, keep, sizeof(keep));
            else
                s_set_msg(c, "connection lost", NULL);
            return PGC_LOST;
        }
    }
    return rc;
}

int pgc_run(pgc_t *c, const char *sql, uint64_t deadline, long *tuples,
            size_t ntuples)
{
    int rc;

    c->state[0] = '\0';
    c->status[0] = '\0';
    if (!c->conn) {
        s_set_msg(c, "not connected", NULL);
        return PGC_LOST;
    }
    if (!PQsendQuery(c->conn, sql))
        return s_lost(c, "connection lost");
    if ((rc = s_flush(c, deadline)) != PGC_OK)
        return rc;
    return s_drain(c, deadline, tuples, ntuples);
}

int pgc_copy(pgc_t *c, const char *data, size_t len, const char *fail,
             uint64_t deadline, long *tuples)
{
    const size_t chunk = 256 * 1024;
    int r, rc;

    while (!fail && len) {
        size_t n = len < chunk ? len : chunk;
        r = PQputCopyData(c->conn, data, (int)n);
        if (r < 0)
            return s_lost(c, "sending rows");
        if (r == 1) {
            data += n;
            len -= n;
            continue;
        }
        if ((rc = s_flush(c, deadline)) != PGC_OK)
            return rc;
    }
    while ((r = PQputCopyEnd(c->conn, fail)) == 0)
        if ((rc = s_flush(c, deadline)) != PGC_OK)
            return rc;
    if (r < 0)
        return s_lost(c, "ending the rows");
    if ((rc = s_flush(c, deadline)) != PGC_OK)
        return rc;
    rc = s_drain(c, deadline, tuples, tuples ? 1 : 0);
    return fail && rc == PGC_ERROR ? PGC_OK : rc;
}
