/* The regex_parse config; see docs/stages/regex_parse.md. */
#ifndef RP_CONF_H
#define RP_CONF_H

#include <sluice/stage.h>

#include <regex.h>
#include <stddef.h>

typedef enum rp_type {
    RP_STRING = 0,
    RP_INT,
    RP_FLOAT,
    RP_BOOL,
    RP_TIME,
} rp_type_t;

typedef struct rp_group {
    const char *name; /* NULL: the group is not kept */
    size_t len;
    rp_type_t type;
} rp_group_t;

typedef struct rp_conf {
    const char *field; /* strings point into the config tree or presets */
    size_t field_len;
    const char *pattern;
    const char *preset; /* NULL with a pattern of one's own */
    rp_group_t *groups; /* one per capture group, owned */
    size_t n_groups;
    size_t n_named;
    const char *time_format;
    int keep_source;
    int drop_mismatch;
} rp_conf_t;

/* The time format of the access log presets. */
#define RP_CLF_TIME_FORMAT "%d/%b/%Y:%H:%M:%S %z"

extern const char *const rp_conf_keys[];

/* Reads and checks cfg, reporting every problem with sl_config_error. If
 * re is not NULL the compiled pattern is left there (regfree it);
 * otherwise it is only compiled to be checked. On success the caller owns
 * c (rp_conf_fini); on failure nothing is left allocated. */
int rp_conf_parse(const sl_config_t *cfg, rp_conf_t *c, regex_t *re);
void rp_conf_fini(rp_conf_t *c);

#endif
