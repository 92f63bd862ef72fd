/* The tail_source config; see docs/stages/tail_source.md. */
#ifndef TL_CONF_H
#define TL_CONF_H

#include <sluice/stage.h>

#include <stddef.h>
#include <stdint.h>

typedef struct tl_conf {
    char *path; /* owned */
    int start_at_end;
    uint32_t poll_ms;
    size_t max_line;
    uint64_t idle_timeout_ms; /* 0: never */
    const char *field;        /* in the config tree */
    size_t field_len;
    int include_path;
    int inotify;
} tl_conf_t;

extern const char *const tl_conf_keys[];

/* Reads and checks cfg, reporting every problem with sl_config_error; no
 * side effects. On success the caller owns c (tl_conf_fini); on failure
 * nothing is left allocated. */
int tl_conf_parse(const sl_config_t *cfg, tl_conf_t *c);
void tl_conf_fini(tl_conf_t *c);

#endif
