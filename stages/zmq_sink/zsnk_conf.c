#include "zsnk_conf.h"
#include "zmq_endpoint.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

#define ZSNK_DEFAULT_HWM 1000
#define ZSNK_LIMIT_HWM 10000000
#define ZSNK_LIMIT_BATCH 65536
#define ZSNK_DEFAULT_TIMEOUT_MS 1000
#define ZSNK_LIMIT_TIMEOUT_MS 3600000

const char *const zsnk_keys[] = {"endpoint", "bind",  "socket",
                                 "format",   "sndhwm", "batch",
                                 "send_timeout_ms",    NULL};

static int s_int(const sl_config_t *cfg, const char *key, int64_t dflt,
                 int64_t lo, int64_t hi, const char *unit, int64_t *out)
{
    if (sl_config_get_int(cfg, key, dflt, out) < 0)
        return -EINVAL;
    if (*out < lo || *out > hi)
        return sl_config_error(sl_config_get(cfg, key), "'%s' must be %lld "
                               "to %lld %s, got %lld", key, (long long)lo,
                               (long long)hi, unit, (long long)*out);
    return 0;
}

static int s_choice(const sl_config_t *cfg, const char *key,
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

int zsnk_opts_parse(const sl_config_t *cfg, zsnk_opts_t *o)
{
    static const char *const sockets[] = {"push", "pub", NULL};
    static const char *const formats[] = {"msgpack", "json", NULL};
    int64_t v;
    int choice, rc = 0;

    memset(o, 0, sizeof(*o));
    o->endpoint_node = sl_config_get(cfg, "endpoint");
    o->bind_node = sl_config_get(cfg, "bind");
    if (sl_config_get_bool(cfg, "bind", 0, &o->bind) < 0)
        rc = -EINVAL;
    if (sl_config_get_str(cfg, "endpoint", NULL, &o->endpoint) < 0)
        rc = -EINVAL;
    else if (!o->endpoint)
        rc = sl_config_error(cfg, "'endpoint' is required (tcp://HOST:PORT "
                                  "or ipc://PATH)");
    else if (zmq_endpoint_check(o->endpoint_node, o->endpoint, o->bind) < 0)
        rc = -EINVAL;

    if (s_choice(cfg, "socket", sockets, "push or pub", &choice) < 0)
        rc = -EINVAL;
    o->socket = (zsnk_socket_t)choice;
    if (s_choice(cfg, "format", formats, "msgpack or json", &choice) < 0)
        rc = -EINVAL;
    o->format = (zsnk_format_t)choice;

    if (s_int(cfg, "sndhwm", ZSNK_DEFAULT_HWM, 1, ZSNK_LIMIT_HWM, "messages",
              &v) < 0)
        rc = -EINVAL;
    o->sndhwm = (int)v;
    if (s_int(cfg, "batch", 1, 1, ZSNK_LIMIT_BATCH, "records", &v) < 0)
        rc = -EINVAL;
    o->batch = (size_t)v;
    if (s_int(cfg, "send_timeout_ms", ZSNK_DEFAULT_TIMEOUT_MS, 0,
              ZSNK_LIMIT_TIMEOUT_MS, "ms", &v) < 0)
        rc = -EINVAL;
    o->send_timeout_ms = (int)v;
    return rc;
}
