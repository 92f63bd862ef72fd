/*
 * zmq_source's configuration, parsed once by validate and again by init.
 * Strings point into the config tree, which outlives the run: nothing here
 * is allocated, so there is nothing to free.
 */
#ifndef ZSRC_CONF_H
#define ZSRC_CONF_H

#include "zmq_common.h"

#include <sluice/stage.h>

#include <stddef.h>
#include <stdint.h>

#define ZSRC_DEFAULT_RCVHWM 1000
#define ZSRC_DEFAULT_MAX_MESSAGE (16 * 1024 * 1024)
#define ZSRC_LIMIT_MAX_MESSAGE (1024 * 1024 * 1024)

typedef enum zsrc_socket { ZSRC_PULL = 0, ZSRC_SUB } zsrc_socket_t;
typedef enum zsrc_format { ZSRC_MSGPACK = 0, ZSRC_JSON } zsrc_format_t;

typedef struct zsrc_opts {
    zmq_conn_t conn; /* endpoint and bind */
    zsrc_socket_t socket;
    zsrc_format_t format;
    const sl_config_t *subscribe; /* a sequence of prefixes, or NULL: all */
    int rcvhwm;
    size_t max_message;
    const char *eof_on; /* NULL: no end marker */
    size_t eof_len;
    uint64_t idle_ns; /* 0: never idle out */
    const sl_config_t *socket_node; /* for what init reports about it */
} zsrc_opts_t;

extern const char *const zsrc_keys[];

/* Reads and checks cfg, reporting every problem with sl_config_error.
 * Returns 0 or -EINVAL. No side effects. */
int zsrc_opts_parse(const sl_config_t *cfg, zsrc_opts_t *o);

#endif
