/*
 * What zmq_source and zmq_sink share: the endpoint and bind keys, the
 * number and choice keys' checks, and opening the socket on the endpoint.
 * Strings point into the config tree, which outlives the run.
 */
#ifndef SL_ZMQ_COMMON_H
#define SL_ZMQ_COMMON_H

#include <sluice/stage.h>

#include <stddef.h>
#include <stdint.h>

typedef struct zmq_conn {
    const char *endpoint;
    int bind;
    /* Where init reports what only the socket can tell. */
    const sl_config_t *endpoint_node;
    const sl_config_t *bind_node;
} zmq_conn_t;

/* Reads `endpoint` (required, checked by zmq_endpoint_check) and `bind`
 * (default bind_dflt) into c, reporting problems with sl_config_error.
 * 0 or -EINVAL. No side effects. */
int zmq_conf_conn(const sl_config_t *cfg, int bind_dflt, zmq_conn_t *c);
/* An optional integer key in [lo, hi] (unit names what it counts); an
 * absent key gives dflt unchecked, which may mean "off". 0 or -EINVAL. */
int zmq_conf_int(const sl_config_t *cfg, const char *key, int64_t dflt,
                 int64_t lo, int64_t hi, const char *unit, int64_t *out);
/* Picks one of names (NULL-terminated) for key, *out being its index (0
 * when the key is absent); expect lists them for the error. 0 or
 * -EINVAL. */
int zmq_conf_choice(const sl_config_t *cfg, const char *key,
                    const char *const *names, const char *expect, int *out);

/* One socket only can bind an endpoint: with bind and several workers,
 * reports it (peer names the other side: "sender", "receiver") and
 * returns -EINVAL; else 0. */
int zmq_conn_workers(const zmq_conn_t *c, const sl_config_t *cfg,
                     unsigned workers, const char *peer);
/* A new context and a socket of type in it: 0 or -errno (what was made is
 * left in *zctx and *sock for the caller to close). */
int zmq_conn_socket(int type, void **zctx, void **sock);
/* zmq_setsockopt as 0 or -errno. */
int zmq_conn_setopt(void *sock, int opt, const void *v, size_t len);
/* Binds or connects sock as c says; on failure reports it at the endpoint
 * (or cfg) and returns -errno. */
int zmq_conn_attach(const zmq_conn_t *c, const sl_config_t *cfg, void *sock);

#endif
