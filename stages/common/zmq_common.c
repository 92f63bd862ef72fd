#include "zmq_common.h"
#include "zmq_endpoint.h"

#include <errno.h>
#include <string.h>
#include <zmq.h>

int zmq_conf_conn(const sl_config_t *cfg, int bind_dflt, zmq_conn_t *c)
{
    int rc = 0;

    memset(c, 0, sizeof(*c));
    c->endpoint_node = sl_config_get(cfg, "endpoint");
    c->bind_node = sl_config_get(cfg, "bind");
    if (sl_config_get_bool(cfg, "bind", bind_dflt, &c->bind) < 0)
        rc = -EINVAL;
    if (sl_config_get_str(cfg, "endpoint", NULL, &c->endpoint) < 0)
        rc = -EINVAL;
    else if (!c->endpoint)
        rc = sl_config_error(cfg, "'endpoint' is required (tcp://HOST:PORT "
                                  "or ipc://PATH)");
    else if (zmq_endpoint_check(c->endpoint_node, c->endpoint, c->bind) < 0)
        rc = -EINVAL;
    return rc;
}

int zmq_conf_int(const sl_config_t *cfg, const char *key, int64_t dflt,
                 int64_t lo, int64_t hi, const char *unit, int64_t *out)
{
    if (sl_config_get_int(cfg, key, dflt, out) < 0)
        return -EINVAL;
    if (!sl_config_get(cfg, key))
        return 0;
    if (*out < lo || *out > hi)
        return sl_config_error(sl_config_get(cfg, key), "'%s' must be %lld "
                               "to %lld %s, got %lld", key, (long long)lo,
                               (long long)hi, unit, (long long)*out);
    return 0;
}

int zmq_conf_choice(const sl_config_t *cfg, const char *key,
                    const char *const *names, const char *expect, int *out)
{
    const char *s;

    *out = 0;
    if (sl_config_get_str(cfg, key, NULL, &s) < 0)
        return -EINVAL;
    if (!s)
        return 0;
    for (int i = 0; names[i]; i++) {
        if (!strcmp(s, names[i])) {
            *out = i;
            return 0;
        }
    }
    return sl_config_error(sl_config_get(cfg, key), "'%s' must be %s, got "
                           "'%s'", key, expect, s);
}

int zmq_conn_workers(const zmq_conn_t *c, const sl_config_t *cfg,
                     unsigned workers, const char *peer)
{
    if (!c->bind || workers <= 1)
        return 0;
    return sl_config_error(c->bind_node ? c->bind_node : cfg,
                           "with bind: true only one of the stage's %u "
                           "workers can bind %s; use workers: 1, or bind: "
                           "false so that each worker connects to a %s "
                           "that binds", workers, c->endpoint, peer);
}

int zmq_conn_socket(int type, void **zctx, void **sock)
{
    *zctx = zmq_ctx_new();
    if (!*zctx)
        return -errno;
    *sock = zmq_socket(*zctx, type);
    if (!*sock)
        return -errno;
    return 0;
}

int zmq_conn_setopt(void *sock, int opt, const void *v, size_t len)
{
    return zmq_setsockopt(sock, opt, v, len) == 0 ? 0 : -errno;
}

int zmq_conn_attach(const zmq_conn_t *c, const sl_config_t *cfg, void *sock)
{
    int rc;

    if ((c->bind ? zmq_bind(sock, c->endpoint)
                 : zmq_connect(sock, c->endpoint)) == 0)
        return 0;
    rc = -errno;
    sl_config_error(c->endpoint_node ? c->endpoint_node : cfg,
                    "cannot %s %s: %s", c->bind ? "bind" : "connect to",
                    c->endpoint, zmq_strerror(-rc));
    return rc;
}
