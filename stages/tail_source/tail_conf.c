#include "tail_conf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define TL_DEFAULT_MAX_LINE (1024 * 1024)
#define TL_LIMIT_MAX_LINE (1024 * 1024 * 1024)
#define TL_LIMIT_POLL_MS 60000
#define TL_LIMIT_IDLE_MS 2147483647

const char *const tl_conf_keys[] = {"path",     "start_at",        "poll_ms",
                                    "max_line", "idle_timeout_ms", "field",
                                    "include_path", "inotify",     NULL};

/* An integer key within [lo, hi]; dflt when absent. */
static int s_int(const sl_config_t *cfg, const char *key, int64_t dflt,
                 int64_t lo, int64_t hi, const char *unit, int64_t *out)
{
    if (sl_config_get_int(cfg, key, dflt, out) < 0)
        return -EINVAL;
    if (*out < lo || *out > hi)
        return sl_config_error(sl_config_get(cfg, key),
                               "'%s' must be between %lld and %lld%s, got "
                               "%lld", key, (long long)lo, (long long)hi,
                               unit, (long long)*out);
    return 0;
}

int tl_conf_parse(const sl_config_t *cfg, tl_conf_t *c)
{
    const sl_config_t *n;
    const char *s;
    int64_t v;
    int rc = 0;

    memset(c, 0, sizeof(*c));
    if (sl_config_get_path(cfg, "path", NULL, &c->path) < 0)
        rc = -EINVAL;
    else if (!c->path)
        rc = sl_config_error(cfg, "'path' is required (the file to follow)");

    if (sl_config_get_str(cfg, "start_at", "beginning", &s) < 0)
        rc = -EINVAL;
    else if (!strcmp(s, "end"))
        c->start_at_end = 1;
    else if (strcmp(s, "beginning"))
        rc = sl_config_error(sl_config_get(cfg, "start_at"),
                             "'start_at' must be beginning or end, got '%s'",
                             s);

    if (s_int(cfg, "poll_ms", 100, 1, TL_LIMIT_POLL_MS, " ms", &v) < 0)
        rc = -EINVAL;
    else
        c->poll_ms = (uint32_t)v;
    if (s_int(cfg, "max_line", TL_DEFAULT_MAX_LINE, 1, TL_LIMIT_MAX_LINE,
              " bytes", &v) < 0)
        rc = -EINVAL;
    else
        c->max_line = (size_t)v;
    n = sl_config_get(cfg, "idle_timeout_ms");
    if (n && sl_config_type(n) != SL_CONFIG_NULL) {
        if (s_int(cfg, "idle_timeout_ms", 0, 1, TL_LIMIT_IDLE_MS, " ms",
                  &v) < 0)
            rc = -EINVAL;
        else
            c->idle_timeout_ms = (uint64_t)v;
    }

    if (sl_config_get_str(cfg, "field", "line", &c->field) < 0)
        rc = -EINVAL;
    else if (!*c->field)
        rc = sl_config_error(sl_config_get(cfg, "field"),
                             "'field' must not be empty");
    else
        c->field_len = strlen(c->field);
    if (sl_config_get_bool(cfg, "include_path", 0, &c->include_path) < 0)
        rc = -EINVAL;
    else if (c->include_path && c->field_len == 4 &&
             !memcmp(c->field, "path", 4))
        rc = sl_config_error(sl_config_get(cfg, "field"),
                             "'field' must not be \"path\" with "
                             "include_path: true (both would be 'path')");
    if (sl_config_get_bool(cfg, "inotify", 1, &c->inotify) < 0)
        rc = -EINVAL;

    if (rc < 0)
        tl_conf_fini(c);
    return rc;
}

void tl_conf_fini(tl_conf_t *c)
{
    free(c->path);
    memset(c, 0, sizeof(*c));
}
