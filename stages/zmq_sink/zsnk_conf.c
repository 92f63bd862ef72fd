#include "zsnk_conf.h"

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

int zsnk_opts_parse(const sl_config_t *cfg, zsnk_opts_t *o)
{
    static const char *const sockets[] = {"push", "pub", NULL};
    static const char *const formats[] = {"msgpack", "json", NULL};
    int64_t v;
    int choice, rc = 0;

    memset(o, 0, sizeof(*o));
    if (zmq_conf_conn(cfg, 0, &o->conn) < 0)
        rc = -EINVAL;

    if (zmq_conf_choice(cfg, "socket", sockets, "push or pub", &choice) < 0)
        rc = -EINVAL;
    o->socket = (zsnk_socket_t)choice;
    if (zmq_conf_choice(cfg, "format", formats, "msgpack or json",
                        &choice) < 0)
        rc = -EINVAL;
    o->format = (zsnk_format_t)choice;

    if (zmq_conf_int(cfg, "sndhwm", ZSNK_DEFAULT_HWM, 1, ZSNK_LIMIT_HWM,
                     "messages", &v) < 0)
        rc = -EINVAL;
    o->sndhwm = (int)v;
    if (zmq_conf_int(cfg, "batch", 1, 1, ZSNK_LIMIT_BATCH, "records",
                     &v) < 0)
        rc = -EINVAL;
    o->batch = (size_t)v;
    if (zmq_conf_int(cfg, "send_timeout_ms", ZSNK_DEFAULT_TIMEOUT_MS, 0,
                     ZSNK_LIMIT_TIMEOUT_MS, "ms", &v) < 0)
        rc = -EINVAL;
    o->send_timeout_ms = (int)v;
    return rc;
}
