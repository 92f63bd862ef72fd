/*
 * zmq_sink's configuration, parsed once by validate and again by init.
 * Strings point into the config tree, which outlives the run: nothing here
 * is allocated.
 */
#ifndef ZSNK_CONF_H
#define ZSNK_CONF_H

#include "zmq_common.h"

#include <sluice/stage.h>

#include <stddef.h>

typedef enum zsnk_socket { ZSNK_PUSH = 0, ZSNK_PUB } zsnk_socket_t;
typedef enum zsnk_format { ZSNK_MSGPACK = 0, ZSNK_JSON } zsnk_format_t;

typedef struct zsnk_opts {
    zmq_conn_t conn; /* endpoint and bind */
    zsnk_socket_t socket;
    zsnk_format_t format;
    int sndhwm;
    size_t batch;        /* records per message */
    int send_timeout_ms; /* also the linger at close */
} zsnk_opts_t;

extern const char *const zsnk_keys[];

/* Reads and checks cfg, reporting every problem with sl_config_error.
 * Returns 0 or -EINVAL. No side effects. */
int zsnk_opts_parse(const sl_config_t *cfg, zsnk_opts_t *o);

#endif
