/* Parsing and checking the window config; see docs/stages/window.md. */
#include "window_conf.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define DEFAULT_MAX_GROUPS 100000

#define DURATION_HINT                                                          \
    "a duration such as 60s, 500ms or 1.5m (a number and a unit: ns, us, "    \
    "ms, s, m or h)"

int wn_parse_duration(const char *text, int64_t *ns)
{
    static const struct {
        const char *name;
        int64_t ns;
    } units[] = {{"ns", 1},          {"us", 1000},
                 {"ms", 1000000},    {"s", 1000000000},
                 {"m", 60000000000}, {"h", 3600000000000}};
    if (!text)
        return -EINVAL;
    if (strcmp(text, "0") == 0) {
        *ns = 0;
        return 0;
    }
    const char *p = text;
    if (*p < '0' || *p > '9')
        return -EINVAL;
    uint64_t whole = 0;
    int big = 0;
    for (; *p >= '0' && *p <= '9'; p++) {
        whole = whole * 10 + (uint64_t)(*p - '0');
        if (whole > (uint64_t)WN_MAX_SPAN_NS)
            big = 1, whole = (uint64_t)WN_MAX_SPAN_NS; /* keep scanning */
    }
    const char *frac = NULL, *frac_end = NULL;
    if (*p == '.') {
        frac = ++p;
        while (*p >= '0' && *p <= '9')
            p++;
        frac_end = p;
        if (frac == frac_end)
            return -EINVAL;
    }
    int64_t unit = 0;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
        if (strcmp(p, units[i].name) == 0)
            unit = units[i].ns;
    if (!unit)
        return -EINVAL;
    if (big || whole > (uint64_t)(WN_MAX_SPAN_NS / unit))
        return -ERANGE;
    int64_t v = (int64_t)whole * unit;
    /* Digit by digit, so that 0.1s is exactly 100000000 ns: a digit
     * finer than 1 ns must be 0. */
    int64_t scale = unit;
    for (const char *q = frac; q && q < frac_end; q++) {
        int d = *q - '0';
        if (scale % 10) {
            if (d)
                return -EINVAL;
            continue;
        }
        scale /= 10;
        v += d * scale;
    }
    if (v > WN_MAX_SPAN_NS)
        return -ERANGE;
    *ns = v;
    return 0;
}

/* A duration key: *out keeps dflt when absent (and *node is NULL). */
static int get_duration(const sl_config_t *cfg, const char *key,
                        int64_t dflt, int allow_zero, int64_t *out,
                        const sl_config_t **node)
{
    *out = dflt;
    *node = sl_config_get(cfg, key);
    if (!*node)
        return 0;
    int rc = wn_parse_duration(sl_config_str(*node), out);
    if (rc == -ERANGE)
        return sl_config_error(*node, "'%s' must be at most 100000h", key);
    if (rc < 0)
        return sl_config_error(*node, "'%s' must be " DURATION_HINT, key);
    if (*out == 0 && !allow_zero)
        return sl_config_error(*node, "'%s' must be more than 0", key);
    return 0;
}

static int parse_time(const sl_config_t *cfg, wn_conf_t *c)
{
    int rc = 0;
    const sl_config_t *f = sl_config_get(cfg, "time_field");
    if (!f)
        rc = sl_config_error(cfg, "missing required key 'time_field' (the "
                                  "field holding the event time)");
    else if (sl_config_type(f) != SL_CONFIG_STRING || !*sl_config_str(f))
        rc = sl_config_error(f, "'time_field' must be a field path");
    else
        c->time_field = sl_config_str(f);

    static const struct {
        const char *name;
        int64_t ns;
    } units[] = {{"s", 1000000000}, {"ms", 1000000}, {"us", 1000},
                 {"ns", 1}};
    c->unit_name = "s";
    c->unit_ns = 1000000000;
    const sl_config_t *u = sl_config_get(cfg, "time_unit");
    if (u) {
        int found = 0;
        for (size_t i = 0; i < 4 && sl_config_type(u) == SL_CONFIG_STRING;
             i++)
            if (strcmp(sl_config_str(u), units[i].name) == 0) {
                c->unit_name = units[i].name;
                c->unit_ns = units[i].ns;
                found = 1;
            }
        if (!found)
            rc = sl_config_error(u, "'time_unit' must be s, ms, us or ns");
    }

    const sl_config_t *fmt = sl_config_get(cfg, "time_format");
    if (!fmt)
        return rc;
    const char *s = sl_config_str(fmt);
    if (sl_config_type(fmt) != SL_CONFIG_STRING || !*s)
        return sl_config_error(fmt, "'time_format' must be a strptime "
                                    "format such as \"%%d/%%b/%%Y:%%H:%%M:"
                                    "%%S %%z\"");
    /* glibc reads %s in the local time zone: the result would depend on
     * TZ, which this stage promises not to. */
    for (const char *p = s; *p; p++) {
        if (*p != '%')
            continue;
        p++;
        while (*p == 'E' || *p == 'O')
            p++;
        if (*p == 's')
            return sl_config_error(fmt, "'time_format' must not use %%s: "
                                        "give epoch times as numbers (see "
                                        "'time_unit')");
        if (!*p)
            return sl_config_error(fmt, "'time_format' ends in a lone %%");
    }
    c->time_format = s;
    return rc;
}

static int parse_spans(const sl_config_t *cfg, wn_conf_t *c)
{
    const sl_config_t *size, *slide, *late;
    int rc = 0;
    if (!sl_config_get(cfg, "size"))
        rc = sl_config_error(cfg, "missing required key 'size' (the window "
                                  "length, such as 60s)");
    else if (get_duration(cfg, "size", 0, 0, &c->size_ns, &size) < 0)
        rc = -EINVAL;
    if (get_duration(cfg, "slide", 0, 0, &c->slide_ns, &slide) < 0)
        rc = -EINVAL;
    if (get_duration(cfg, "lateness", 0, 1, &c->lateness_ns, &late) < 0)
        rc = -EINVAL;
    if (rc < 0)
        return rc;
    if (!slide)
        c->slide_ns = c->size_ns;
    if (c->size_ns % c->slide_ns)
        return sl_config_error(slide, "'size' (%s) must be a multiple of "
                                      "'slide' (%s)",
                               sl_config_str(size), sl_config_str(slide));
    if (c->size_ns / c->slide_ns > WN_MAX_WINDOWS_PER_RECORD)
        return sl_config_error(slide, "'size' / 'slide' is %lld windows per "
                                      "record; at most %d",
                               (long long)(c->size_ns / c->slide_ns),
                               WN_MAX_WINDOWS_PER_RECORD);
    /* Window bounds are emitted as integers in time_unit. */
    if (c->size_ns % c->unit_ns)
        rc = sl_config_error(size, "'size' (%s) must be a whole number of "
                                   "time_unit (%s)",
                             sl_config_str(size), c->unit_name);
    if (slide && c->slide_ns % c->unit_ns)
        rc = sl_config_error(slide, "'slide' (%s) must be a whole number of "
                                    "time_unit (%s)",
                             sl_config_str(slide), c->unit_name);
    return rc;
}

/* Output names must be distinct: a map with a key twice is ambiguous. */
static int check_name(const wn_conf_t *c, const char *name, size_t n_aggs,
                      const sl_config_t *node)
{
    int dup = strcmp(name, "window_start") == 0 ||
              strcmp(name, "window_end") == 0;
    for (size_t i = 0; i < c->n_keys && !dup; i++)
        dup = strcmp(name, c->keys[i]) == 0;
    for (size_t i = 0; i < n_aggs && !dup; i++)
        dup = strcmp(name, c->aggs[i].as) == 0;
    if (dup)
        return sl_config_error(node, "output field '%s' is used twice (give "
                                     "each aggregate its own 'as')",
                               name);
    return 0;
}

static int parse_keys(const sl_config_t *cfg, wn_conf_t *c)
{
    const sl_config_t *key = sl_config_get(cfg, "key");
    if (!key)
        return 0;
    int single = sl_config_type(key) == SL_CONFIG_STRING;
    if (!single &&
        (sl_config_type(key) != SL_CONFIG_SEQ || sl_config_len(key) == 0))
        return sl_config_error(key, "'key' must be a field path or a "
                                    "non-empty list of field paths");
    size_t n = single ? 1 : sl_config_len(key);
    if (n > WN_MAX_KEYS)
        return sl_config_error(key, "'key' names %zu fields; at most %d", n,
                               WN_MAX_KEYS);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        const sl_config_t *f = single ? key : sl_config_at(key, i);
        const char *s = sl_config_str(f);
        if (sl_config_type(f) != SL_CONFIG_STRING || !*s) {
            rc = sl_config_error(f, "'key' entries must be field paths");
            continue;
        }
        for (size_t j = 0; j < c->n_keys; j++)
            if (strcmp(c->keys[j], s) == 0)
                rc = sl_config_error(f, "'key' names '%s' twice", s);
        if (strcmp(s, "window_start") == 0 || strcmp(s, "window_end") == 0)
            rc = sl_config_error(f, "key field '%s' would clash with the "
                                    "window bounds in the output", s);
        c->keys[c->n_keys++] = s;
    }
    return rc;
}

static int field_index(wn_conf_t *c, const char *path)
{
    for (size_t i = 0; i < c->n_fields; i++)
        if (strcmp(c->fields[i], path) == 0)
            return (int)i;
    c->fields[c->n_fields] = path;
    return (int)c->n_fields++;
}

static int parse_agg(const sl_config_t *node, wn_conf_t *c, wn_agg_t *a)
{
    static const char *const ops[] = {"count", "sum", "avg", "min", "max"};
    if (sl_config_type(node) != SL_CONFIG_MAP)
        return sl_config_error(node, "each aggregate must be a map {op, "
                                     "field, as}");
    int rc = 0;
    for (size_t i = 0; i < sl_config_len(node); i++) {
        const char *k = sl_config_key_at(node, i);
        if (strcmp(k, "op") && strcmp(k, "field") && strcmp(k, "as"))
            rc = sl_config_error(sl_config_value_at(node, i),
                                 "unknown key '%s' in an aggregate "
                                 "(accepted: op, field, as)", k);
    }
    const sl_config_t *op = sl_config_get(node, "op");
    const sl_config_t *field = sl_config_get(node, "field");
    const sl_config_t *as = sl_config_get(node, "as");
    if (!op)
        return sl_config_error(node, "an aggregate needs 'op' (count, sum, "
                                     "avg, min or max)");
    const char *name = sl_config_str(op);
    size_t o = 0;
    while (o < 5 && !(sl_config_type(op) == SL_CONFIG_STRING &&
                      strcmp(name, ops[o]) == 0))
        o++;
    if (o == 5)
        return sl_config_error(op, "unknown op '%s' (want count, sum, avg, "
                                   "min or max)", name ? name : "");
    a->op = (wn_op_t)o;
    a->field = -1;
    if (field) {
        if (sl_config_type(field) != SL_CONFIG_STRING ||
            !*sl_config_str(field))
            return sl_config_error(field, "'field' must be a field path");
        a->field = field_index(c, sl_config_str(field));
    } else if (a->op != WN_COUNT) {
        return sl_config_error(node, "op '%s' needs 'field' (the numeric "
                                     "field to read)", ops[o]);
    }
    if (as) {
        if (sl_config_type(as) != SL_CONFIG_STRING || !*sl_config_str(as))
            return sl_config_error(as, "'as' must be a non-empty field "
                                       "name");
        a->as = sl_config_str(as);
        return rc;
    }
    int n = field ? snprintf(a->as_buf, sizeof(a->as_buf), "%s_%s", ops[o],
                             sl_config_str(field))
                  : snprintf(a->as_buf, sizeof(a->as_buf), "%s", ops[o]);
    if (n < 0 || (size_t)n >= sizeof(a->as_buf))
        return sl_config_error(node, "the default name of this aggregate "
                                     "is too long: give 'as'");
    a->as = a->as_buf;
    return rc;
}

static int parse_aggs(const sl_config_t *cfg, wn_conf_t *c)
{
    const sl_config_t *list = sl_config_get(cfg, "aggregates");
    if (!list)
        return sl_config_error(cfg, "missing required key 'aggregates' (a "
                                    "list such as [{op: count, as: hits}])");
    if (sl_config_type(list) != SL_CONFIG_SEQ || sl_config_len(list) == 0)
        return sl_config_error(list, "'aggregates' must be a non-empty list "
                                     "of {op, field, as}");
    size_t n = sl_config_len(list);
    if (n > WN_MAX_AGGS)
        return sl_config_error(list, "'aggregates' has %zu entries; at most "
                                     "%d", n, WN_MAX_AGGS);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        const sl_config_t *node = sl_config_at(list, i);
        wn_agg_t *a = &c->aggs[c->n_aggs];
        if (parse_agg(node, c, a) < 0) {
            rc = -EINVAL;
            continue;
        }
        const sl_config_t *as = sl_config_get(node, "as");
        if (check_name(c, a->as, c->n_aggs, as ? as : node) < 0) {
            rc = -EINVAL;
            continue;
        }
        c->n_aggs++;
    }
    return rc;
}

static int parse_rest(const sl_config_t *cfg, wn_conf_t *c)
{
    int rc = 0;
    const sl_config_t *late = sl_config_get(cfg, "late");
    if (late) {
        const char *s = sl_config_str(late);
        if (sl_config_type(late) == SL_CONFIG_STRING &&
            strcmp(s, "dead_letter") == 0)
            c->late = WN_LATE_DEAD_LETTER;
        else if (sl_config_type(late) == SL_CONFIG_STRING &&
                 strcmp(s, "drop") == 0)
            c->late = WN_LATE_DROP;
        else
            rc = sl_config_error(late, "'late' must be dead_letter or drop");
    }
    const sl_config_t *mg = sl_config_get(cfg, "max_groups");
    int64_t n = DEFAULT_MAX_GROUPS;
    if (mg && (sl_config_int(mg, &n) < 0 || n < 1 || n > WN_MAX_GROUPS))
        rc = sl_config_error(mg, "'max_groups' must be an integer from 1 to "
                                 "%lld", WN_MAX_GROUPS);
    c->max_groups = (uint32_t)n;
    if (sl_config_get_bool(cfg, "emit_empty", 0, &c->emit_empty) < 0)
        rc = -EINVAL;
    return rc;
}

int wn_conf_parse(const sl_config_t *cfg, wn_conf_t *c)
{
    memset(c, 0, sizeof(*c));
    if (!cfg || sl_config_type(cfg) != SL_CONFIG_MAP)
        return sl_config_error(cfg, "the window stage needs a config map "
                                    "with time_field, size and aggregates");
    int rc = 0;
    if (parse_time(cfg, c) < 0)
        rc = -EINVAL;
    if (parse_spans(cfg, c) < 0)
        rc = -EINVAL;
    if (parse_keys(cfg, c) < 0)
        rc = -EINVAL;
    if (parse_aggs(cfg, c) < 0)
        rc = -EINVAL;
    if (parse_rest(cfg, c) < 0)
        rc = -EINVAL;
    return rc;
}
