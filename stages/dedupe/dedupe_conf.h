/* The dedupe stage's config, parsed once by validate and again by init. */
#ifndef DEDUPE_CONF_H
#define DEDUPE_CONF_H

#include <sluice/stage.h>

#include <stddef.h>
#include <stdint.h>

#define DD_MAX_FIELDS 16

typedef enum dd_missing { DD_FAIL = 0, DD_PASS, DD_DROP } dd_missing_t;
typedef enum dd_window { DD_WIN_NONE = 0, DD_WIN_COUNT, DD_WIN_TIME } dd_window_t;
/* How an event-time field's numbers are read; AUTO goes by magnitude. */
typedef enum dd_unit { DD_UNIT_AUTO = 0, DD_UNIT_S, DD_UNIT_MS, DD_UNIT_US,
                       DD_UNIT_NS } dd_unit_t;

typedef struct dd_conf {
    const char *fields[DD_MAX_FIELDS]; /* owned by the config tree */
    size_t n_fields;
    dd_missing_t on_missing;
    dd_window_t window;
    uint64_t count;     /* DD_WIN_COUNT */
    uint64_t window_ns; /* DD_WIN_TIME */
    const char *ts_field; /* DD_WIN_TIME: NULL for processing time */
    dd_unit_t unit;
    uint64_t max_keys;
} dd_conf_t;

/* Fills c from cfg, reporting every problem with sl_config_error();
 * -EINVAL if there was any. No side effects. */
int dd_conf_parse(const sl_config_t *cfg, dd_conf_t *c);

/* Parses a duration ("500ms", "30s", "10m", "2h", "1d", "1.5s"; a bare
 * number is seconds) into ns; -EINVAL if it is not one or not positive. */
int dd_parse_duration(const char *text, uint64_t *ns);

#endif
