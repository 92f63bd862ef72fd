/*
 * http_source's configuration, parsed once and shared by validate and init.
 */
#ifndef HS_OPTS_H
#define HS_OPTS_H

#include <sluice/stage.h>

#include <stddef.h>
#include <stdint.h>

typedef enum hs_format {
    HS_AUTO = 0, /* from each request's Content-Type */
    HS_JSON,     /* one object, or an array of objects */
    HS_NDJSON,   /* one object per line */
    HS_MSGPACK,  /* one or more maps back to back */
} hs_format_t;

typedef struct hs_opts {
    char host[256]; /* numeric or a name, resolved at init */
    unsigned port;  /* 0: a free one */
    int host_v6;    /* written in brackets */
    const char *listen; /* as written, for messages */
    const sl_config_t *listen_node;
    const char *path;
    uint64_t max_body;    /* bytes of one request body */
    uint64_t queue;       /* records accepted but not yet pulled */
    uint64_t queue_bytes; /* their packed size */
    unsigned retry_after_s;
    hs_format_t format;
    unsigned max_connections;
    unsigned threads;
    const char *auth_env; /* environment variable with the token, or NULL */
    const sl_config_t *auth_node;
} hs_opts_t;

extern const char *const hs_config_keys[];

/* Reports every problem with sl_config_error and returns -EINVAL. Nothing
 * is resolved, bound or read from the environment. */
int hs_opts_parse(const sl_config_t *cfg, hs_opts_t *o);
const char *hs_format_name(hs_format_t f);

#endif
