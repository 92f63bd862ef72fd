/* Parsing and checking the dedupe config; see docs/stages/dedupe.md. */
#include "dedupe_conf.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_MAX_KEYS 1000000
#define MAX_MAX_KEYS 2147483647 /* entry indices are 32-bit */

int dd_parse_duration(const char *text, uint64_t *ns)
{
    static const struct {
        const char *suffix;
        double ns;
    } units[] = {{"ns", 1}, {"us", 1e3}, {"ms", 1e6}, {"s", 1e9},
                 {"m", 60e9}, {"h", 3600e9}, {"d", 86400e9}, {"", 1e9}};
    if (!text || !*text || strchr(" \t+-", text[0]))
        return -EINVAL;
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (end == text || errno || !isfinite(v) || strchr(text, 'x') ||
        strchr(text, 'X'))
        return -EINVAL;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcmp(end, units[i].suffix) != 0)
            continue;
        double r = v * units[i].ns;
        if (!(r >= 1) || r > 9.2e18)
            return -EINVAL;
        *ns = (uint64_t)r;
        return 0;
    }
    return -EINVAL;
}

static int parse_fields(const sl_config_t *cfg, dd_conf_t *c)
{
    const sl_config_t *key = cfg ? sl_config_get(cfg, "key") : NULL;
    if (!key)
        return sl_config_error(cfg, "missing required key 'key' (a field "
                                    "path or a list of field paths)");
    if (sl_config_type(key) == SL_CONFIG_STRING) {
        const char *s = sl_config_str(key);
        if (!*s)
            return sl_config_error(key, "'key' must not be empty");
        c->fields[0] = s;
        c->n_fields = 1;
        return 0;
    }
    if (sl_config_type(key) != SL_CONFIG_SEQ)
        return sl_config_error(key, "'key' must be a field path or a list "
                                    "of field paths");
    size_t n = sl_config_len(key);
    if (n == 0)
        return sl_config_error(key, "'key' must name at least one field");
    if (n > DD_MAX_FIELDS)
        return sl_config_error(key, "'key' names %zu fields; at most %d",
                               n, DD_MAX_FIELDS);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        const sl_config_t *f = sl_config_at(key, i);
        if (sl_config_type(f) != SL_CONFIG_STRING || !*sl_config_str(f)) {
            rc = sl_config_error(f, "'key' entries must be non-empty "
                                    "field paths");
            continue;
        }
        c->fields[i] = sl_config_str(f);
    }
    c->n_fields = n;
    return rc;
}

static int parse_on_missing(const sl_config_t *cfg, dd_conf_t *c)
{
    const sl_config_t *node = sl_config_get(cfg, "on_missing");
    if (!node)
        return 0;
    const char *s = sl_config_str(node);
    if (sl_config_type(node) == SL_CONFIG_STRING && strcmp(s, "pass") == 0)
        c->on_missing = DD_PASS;
    else if (sl_config_type(node) == SL_CONFIG_STRING &&
             strcmp(s, "drop") == 0)
        c->on_missing = DD_DROP;
    else if (sl_config_type(node) == SL_CONFIG_STRING &&
             strcmp(s, "fail") == 0)
        c->on_missing = DD_FAIL;
    else
        return sl_config_error(node, "'on_missing' must be pass, drop or "
                                     "fail");
    return 0;
}

static int parse_unit(const sl_config_t *node, dd_conf_t *c)
{
    static const char *const names[] = {"auto", "s", "ms", "us", "ns"};
    const char *s = sl_config_str(node);
    if (sl_config_type(node) == SL_CONFIG_STRING)
        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
            if (strcmp(s, names[i]) == 0) {
                c->unit = (dd_unit_t)i;
                return 0;
            }
    return sl_config_error(node, "'window.unit' must be auto, s, ms, us or "
                                 "ns");
}

static int parse_window(const sl_config_t *cfg, dd_conf_t *c)
{
    const sl_config_t *w = sl_config_get(cfg, "window");
    if (!w)
        return 0;
    if (sl_config_type(w) != SL_CONFIG_MAP)
        return sl_config_error(w, "'window' must be a map: {count: N} or "
                                  "{time: DURATION, field: PATH}");
    int rc = 0;
    for (size_t i = 0; i < sl_config_len(w); i++) {
        const char *k = sl_config_key_at(w, i);
        if (strcmp(k, "count") && strcmp(k, "time") && strcmp(k, "field") &&
            strcmp(k, "unit"))
            rc = sl_config_error(sl_config_value_at(w, i),
                                 "unknown key '%s' in 'window' (accepted: "
                                 "count, time, field, unit)", k);
    }
    const sl_config_t *count = sl_config_get(w, "count");
    const sl_config_t *time = sl_config_get(w, "time");
    const sl_config_t *field = sl_config_get(w, "field");
    const sl_config_t *unit = sl_config_get(w, "unit");
    if (count && time)
        return sl_config_error(w, "'window' takes 'count' or 'time', not "
                                  "both");
    if (!count && !time)
        return sl_config_error(w, "'window' needs 'count' or 'time'");
    if (count) {
        int64_t n;
        if (sl_config_int(count, &n) < 0 || n < 1)
            return sl_config_error(count, "'window.count' must be an "
                                          "integer of at least 1");
        c->window = DD_WIN_COUNT;
        c->count = (uint64_t)n;
        if (field)
            rc = sl_config_error(field, "'window.field' needs "
                                        "'window.time'");
        if (unit)
            rc = sl_config_error(unit, "'window.unit' needs 'window.time' "
                                       "and 'window.field'");
        return rc;
    }
    c->window = DD_WIN_TIME;
    if (sl_config_type(time) == SL_CONFIG_SEQ ||
        sl_config_type(time) == SL_CONFIG_MAP ||
        dd_parse_duration(sl_config_str(time), &c->window_ns) < 0)
        rc = sl_config_error(time, "'window.time' must be a positive "
                                   "duration such as 500ms, 30s, 10m, 2h or "
                                   "1d");
    if (field) {
        if (sl_config_type(field) != SL_CONFIG_STRING ||
            !*sl_config_str(field))
            rc = sl_config_error(field, "'window.field' must be a field "
                                        "path");
        else
            c->ts_field = sl_config_str(field);
    }
    if (unit) {
        if (!field)
            rc = sl_config_error(unit, "'window.unit' needs 'window.field'");
        else if (parse_unit(unit, c) < 0)
            rc = -EINVAL;
    }
    return rc;
}

int dd_conf_parse(const sl_config_t *cfg, dd_conf_t *c)
{
    memset(c, 0, sizeof(*c));
    int rc = 0;
    if (parse_fields(cfg, c) < 0)
        rc = -EINVAL;
    if (!cfg)
        return rc;
    if (parse_on_missing(cfg, c) < 0)
        rc = -EINVAL;
    if (parse_window(cfg, c) < 0)
        rc = -EINVAL;
    const sl_config_t *mk = sl_config_get(cfg, "max_keys");
    int64_t n = DEFAULT_MAX_KEYS;
    if (mk && (sl_config_int(mk, &n) < 0 || n < 1 || n > MAX_MAX_KEYS))
        return sl_config_error(mk, "'max_keys' must be an integer from 1 "
                                   "to %d", MAX_MAX_KEYS);
    c->max_keys = (uint64_t)n;
    if (rc == 0 && c->window == DD_WIN_COUNT && c->count > c->max_keys)
        return sl_config_error(sl_config_get(sl_config_get(cfg, "window"),
                                             "count"),
                               "'window.count' (%llu) is more than "
                               "'max_keys' (%llu): raise max_keys",
                               (unsigned long long)c->count,
                               (unsigned long long)c->max_keys);
    return rc;
}
