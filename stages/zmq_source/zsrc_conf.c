#include "zsrc_conf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define ZSRC_LIMIT_RCVHWM 10000000
#define ZSRC_LIMIT_IDLE_MS 86400000

const char *const zsrc_keys[] = {"endpoint",    "bind",   "socket",
                                 "subscribe",   "format", "rcvhwm",
                                 "max_message", "eof_on", "idle_timeout_ms",
                                 NULL};

static int s_subscribe(const sl_config_t *n)
{
    int rc = 0;

    if (sl_config_type(n) != SL_CONFIG_SEQ)
        return sl_config_error(n, "'subscribe' must be a list of prefixes "
                               "(\"\" for every message)");
    for (size_t i = 0; i < sl_config_len(n); i++) {
        const sl_config_t *item = sl_config_at(n, i);
        if (sl_config_type(item) == SL_CONFIG_SEQ ||
            sl_config_type(item) == SL_CONFIG_MAP ||
            sl_config_type(item) == SL_CONFIG_NULL)
            rc = sl_config_error(item, "'subscribe' entry %zu must be a "
                                 "string", i + 1);
    }
    return rc;
}

int zsrc_opts_parse(const sl_config_t *cfg, zsrc_opts_t *o)
{
    static const char *const sockets[] = {"pull", "sub", NULL};
    static const char *const formats[] = {"msgpack", "json", NULL};
    const sl_config_t *n;
    int64_t v;
    int choice, rc = 0;

    memset(o, 0, sizeof(*o));
    o->socket_node = sl_config_get(cfg, "socket");
    if (zmq_conf_conn(cfg, 1, &o->conn) < 0)
        rc = -EINVAL;

    if (zmq_conf_choice(cfg, "socket", sockets, "pull or sub", &choice) < 0)
        rc = -EINVAL;
    o->socket = (zsrc_socket_t)choice;
    if (zmq_conf_choice(cfg, "format", formats, "msgpack or json",
                        &choice) < 0)
        rc = -EINVAL;
    o->format = (zsrc_format_t)choice;

    n = sl_config_get(cfg, "subscribe");
    if (n && o->socket != ZSRC_SUB)
        rc = sl_config_error(n, "'subscribe' applies to socket: sub only");
    else if (n && s_subscribe(n) < 0)
        rc = -EINVAL;
    o->subscribe = n;

    if (zmq_conf_int(cfg, "rcvhwm", ZSRC_DEFAULT_RCVHWM, 1,
                     ZSRC_LIMIT_RCVHWM, "messages", &v) < 0)
        rc = -EINVAL;
    o->rcvhwm = (int)v;
    if (zmq_conf_int(cfg, "max_message", ZSRC_DEFAULT_MAX_MESSAGE, 1,
                     ZSRC_LIMIT_MAX_MESSAGE, "bytes", &v) < 0)
        rc = -EINVAL;
    o->max_message = (size_t)v;
    if (zmq_conf_int(cfg, "idle_timeout_ms", 0, 1, ZSRC_LIMIT_IDLE_MS, "ms",
                     &v) < 0)
        rc = -EINVAL;
    o->idle_ns = (uint64_t)v * 1000000u;

    n = sl_config_get(cfg, "eof_on");
    if (n && (sl_config_type(n) == SL_CONFIG_SEQ ||
              sl_config_type(n) == SL_CONFIG_MAP ||
              sl_config_type(n) == SL_CONFIG_NULL))
        rc = sl_config_error(n, "'eof_on' must be a string: the exact "
                                "message body that ends the input");
    else if (n) {
        o->eof_on = sl_config_str(n);
        o->eof_len = strlen(o->eof_on);
    }
    return rc;
}
