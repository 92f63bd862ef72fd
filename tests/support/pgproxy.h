/*
 * A TCP proxy in front of a test server (pgtest.h) that can lose the
 * answer to a COMMIT: for the tests of what a client does when it cannot
 * know whether its transaction committed.
 */
#ifndef SL_PGPROXY_H
#define SL_PGPROXY_H

#include "pgtest.h"

/* Forwards connections from a free port on 127.0.0.1 to the server, in a
 * thread of its own. Once armed, the next query a client sends that ends
 * in COMMIT is passed on, and the client's side is closed at once, while
 * the proxy keeps the server's side open until the server answers: the
 * transaction commits and the client never hears of it. */
typedef struct sl_pgproxy sl_pgproxy_t;
sl_pgproxy_t *sl_pgproxy_start(const sl_pgtest_t *pg);
int sl_pgproxy_port(const sl_pgproxy_t *px);
/* Cuts the skip+1-th COMMIT seen from now on. */
void sl_pgproxy_arm(sl_pgproxy_t *px, int skip);
/* How many commits were cut so far. */
int sl_pgproxy_cuts(sl_pgproxy_t *px);
void sl_pgproxy_stop(sl_pgproxy_t **px);

#endif
