/*
 * The metrics endpoint: a small HTTP server (libmicrohttpd, one internal
 * thread) answering GET /metrics with sl__metrics_write's text. Rendering
 * happens on that thread from the run's live snapshots.
 */
#ifndef SL_METRICS_HTTP_H
#define SL_METRICS_HTTP_H

#include "run.h"

#include <stddef.h>
#include <sys/socket.h>

typedef struct sl_metrics_server sl_metrics_server_t;

/* Parses a listen address: "HOST:PORT", "[V6]:PORT", ":PORT" or "PORT"
 * (no host means loopback, 127.0.0.1). HOST is a numeric address or a
 * name that resolves locally; PORT is 0..65535, 0 for any free port.
 * Returns 0, or -EINVAL with err naming the address and the problem. */
int sl__metrics_addr_parse(const char *addr, struct sockaddr_storage *ss,
                           socklen_t *len, char *err, size_t errlen);

/* Listens on addr (see above) and serves run until stopped: GET /metrics
 * (text/plain; version=0.0.4), GET / (a pointer to it), 404 for other
 * paths, 405 for methods other than GET and HEAD. run must outlive the
 * server. On failure returns NULL with err naming the address. */
sl_metrics_server_t *sl__metrics_server_start(sl_run_t *run, const char *addr,
                                              char *err, size_t errlen);
/* The port it listens on (the one picked when asked for port 0). */
unsigned sl__metrics_server_port(const sl_metrics_server_t *srv);
/* "http://HOST:PORT/metrics" for logs (static to the server). */
const char *sl__metrics_server_url(const sl_metrics_server_t *srv);
/* Stops serving (waits for a request in progress) and frees *srv; sets it
 * to NULL. NULL is ignored. */
void sl__metrics_server_stop(sl_metrics_server_t **srv);

#endif
