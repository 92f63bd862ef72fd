/* The window stage's config, parsed once by validate and again by init. */
#ifndef WINDOW_CONF_H
#define WINDOW_CONF_H

#include <sluice/stage.h>

#include <stddef.h>
#include <stdint.h>

#define WN_MAX_KEYS 16
#define WN_MAX_AGGS 64
#define WN_AS_MAX 64 /* bytes of a default output name, NUL included */
/* size / slide: the groups one record updates. */
#define WN_MAX_WINDOWS_PER_RECORD 10000
/* The longest size, slide or lateness: 100000h (about 11 years), far
 * enough from the int64 ns range that window arithmetic cannot overflow
 * for event times it accepts. */
#define WN_MAX_SPAN_NS (100000ll * 3600 * 1000000000)
#define WN_MAX_GROUPS 2147483647ll /* entry indices are 32-bit */

typedef enum wn_op { WN_COUNT = 0, WN_SUM, WN_AVG, WN_MIN, WN_MAX } wn_op_t;
typedef enum wn_late { WN_LATE_DEAD_LETTER = 0, WN_LATE_DROP } wn_late_t;

typedef struct wn_agg {
    wn_op_t op;
    int field;      /* index into wn_conf_t.fields; -1: count records */
    const char *as; /* the output field; points at the config or as_buf */
    char as_buf[WN_AS_MAX];
} wn_agg_t;

typedef struct wn_conf {
    const char *time_field;
    const char *time_format; /* NULL: numeric times only */
    const char *unit_name;   /* s, ms, us or ns */
    int64_t unit_ns;
    int64_t size_ns, slide_ns, lateness_ns;
    const char *keys[WN_MAX_KEYS]; /* paths, owned by the config tree */
    size_t n_keys;
    /* The distinct fields the aggregates read, each looked up once per
     * record. */
    const char *fields[WN_MAX_AGGS];
    size_t n_fields;
    wn_agg_t aggs[WN_MAX_AGGS];
    size_t n_aggs;
    wn_late_t late;
    uint32_t max_groups;
    int emit_empty;
} wn_conf_t;

/* Fills c from cfg, reporting every problem with sl_config_error();
 * -EINVAL if there was any. No side effects. */
int wn_conf_parse(const sl_config_t *cfg, wn_conf_t *c);

/* Parses a duration: a decimal number and a unit (ns, us, ms, s, m, h),
 * "60s", "1.5m", "250ms"; a bare 0 is also accepted. The result must be a
 * whole number of ns. -EINVAL if text is not one, -ERANGE past
 * WN_MAX_SPAN_NS. */
int wn_parse_duration(const char *text, int64_t *ns);

#endif
