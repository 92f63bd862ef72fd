#include "rp_conf.h"
#include "regex_guard.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

const char *const rp_conf_keys[] = {"field",  "pattern",     "preset",
                                    "fields", "types",       "time_format",
                                    "keep_source", "on_mismatch", NULL};

/* A double-quoted field of an access log: anything but '"', with '\"'
 * (Apache's escape) kept inside. nginx writes '"' as "\x22", which needs
 * nothing special. Adds one capture group of its own, after the field's. */
#define RP_QUOTED "\"((\\\\.|[^\"\\\\])*)\""
#define RP_COMMON_RE                                                        \
    "^([^ ]+) ([^ ]+) ([^ ]+) \\[([^]]+)\\] " RP_QUOTED                     \
    " ([0-9]{3}) ([0-9]+|-)"

typedef struct rp_preset {
    const char *name;
    const char *pattern;
    const char *const *fields; /* one per group; "_" skips */
    size_t n_fields;
} rp_preset_t;

static const char *const s_common_fields[] = {
    "remote_addr", "ident", "remote_user", "time", "request", "_",
    "status", "bytes"};
static const char *const s_combined_fields[] = {
    "remote_addr", "ident", "remote_user", "time", "request", "_",
    "status", "bytes", "referer", "_", "user_agent", "_"};

#define RP_N(a) (sizeof(a) / sizeof(*(a)))
static const rp_preset_t s_presets[] = {
    {"combined", RP_COMMON_RE " " RP_QUOTED " " RP_QUOTED "$",
     s_combined_fields, RP_N(s_combined_fields)},
    {"common", RP_COMMON_RE "$", s_common_fields, RP_N(s_common_fields)},
};
/* What the presets convert unless `types` says otherwise. */
static const struct {
    const char *name;
    rp_type_t type;
} s_preset_types[] = {{"time", RP_TIME}, {"status", RP_INT},
                      {"bytes", RP_INT}};

static const char *const s_type_names[] = {"string", "int", "float", "bool",
                                           "time"};

static int s_skipped(const char *name)
{
    return !*name || !strcmp(name, "_");
}

/* The group that keeps field name, or NULL. */
static rp_group_t *s_find(const rp_conf_t *c, const char *name)
{
    for (size_t i = 0; i < c->n_groups; i++)
        if (c->groups[i].name && !strcmp(c->groups[i].name, name))
            return &c->groups[i];
    return NULL;
}

static const rp_preset_t *s_preset(const rp_conf_t *c)
{
    for (size_t i = 0; i < RP_N(s_presets); i++)
        if (c->preset == s_presets[i].name)
            return &s_presets[i];
    return NULL;
}

/* Picks the pattern; *at is the node to blame for a bad one. */
static int s_pattern(const sl_config_t *cfg, rp_conf_t *c,
                     const sl_config_t **at)
{
    const sl_config_t *pat = sl_config_get(cfg, "pattern");
    const sl_config_t *pre = sl_config_get(cfg, "preset");

    *at = pat ? pat : pre;
    if (pat && pre)
        return sl_config_error(pre, "give 'pattern' or 'preset', not both");
    if (!pat && !pre)
        return sl_config_error(cfg, "'pattern' (a POSIX extended regular "
                                    "expression) or 'preset' (combined or "
                                    "common) is required");
    if (pre) {
        const char *s = sl_config_str(pre);
        for (size_t i = 0; i < RP_N(s_presets); i++)
            if (sl_config_type(pre) == SL_CONFIG_STRING &&
                !strcmp(s, s_presets[i].name)) {
                c->preset = s_presets[i].name;
                c->pattern = s_presets[i].pattern;
                return 0;
            }
        return sl_config_error(pre, "'preset' must be combined or common, "
                                    "got '%s'", s ? s : "a list or map");
    }
    if (sl_config_type(pat) != SL_CONFIG_STRING || !*sl_config_str(pat))
        return sl_config_error(pat, "'pattern' must be a non-empty string");
    c->pattern = sl_config_str(pat);
    return 0;
}

/* Names the groups, from the preset or from `fields`. */
static int s_fields(const sl_config_t *cfg, rp_conf_t *c, size_t nsub)
{
    const sl_config_t *f = sl_config_get(cfg, "fields");
    const rp_preset_t *pre = s_preset(c);
    int rc = 0;

    if (pre && f)
        return sl_config_error(f, "'fields' cannot be combined with "
                                  "'preset' (the preset names its fields; "
                                  "rename them with the fields stage)");
    if (!pre && !f)
        return sl_config_error(cfg, "'fields' is required with 'pattern' "
                                    "(one name per capture group, \"_\" to "
                                    "skip one)");
    if (f && sl_config_type(f) != SL_CONFIG_SEQ)
        return sl_config_error(f, "'fields' must be a list of names");
    if (f && sl_config_len(f) != nsub)
        return sl_config_error(f, "'fields' names %zu group%s, the pattern "
                                  "has %zu capture group%s",
                               sl_config_len(f),
                               sl_config_len(f) == 1 ? "" : "s", nsub,
                               nsub == 1 ? "" : "s");
    c->groups = calloc(nsub ? nsub : 1, sizeof(*c->groups));
    if (!c->groups)
        return -ENOMEM;
    c->n_groups = nsub;
    for (size_t i = 0; i < nsub; i++) {
        const sl_config_t *item = f ? sl_config_at(f, i) : NULL;
        const char *name = pre ? pre->fields[i] : sl_config_str(item);
        if (item && (sl_config_type(item) != SL_CONFIG_STRING || !name)) {
            rc = sl_config_error(item, "'fields' entries must be names (\"\" "
                                       "or \"_\" to skip a group)");
            continue;
        }
        if (s_skipped(name))
            continue;
        if (s_find(c, name)) {
            rc = sl_config_error(item, "'fields' names '%s' twice", name);
            continue;
        }
        c->groups[i].name = name;
        c->groups[i].len = strlen(name);
        c->n_named++;
    }
    if (rc == 0 && c->n_named == 0)
        rc = sl_config_error(f, "'fields' skips every group: nothing to "
                                "extract");
    if (rc == 0 && pre)
        for (size_t i = 0; i < RP_N(s_preset_types); i++)
            s_find(c, s_preset_types[i].name)->type = s_preset_types[i].type;
    return rc;
}

static int s_types(const sl_config_t *cfg, rp_conf_t *c)
{
    const sl_config_t *t = sl_config_get(cfg, "types");
    int rc = 0;

    if (!t)
        return 0;
    if (sl_config_type(t) != SL_CONFIG_MAP)
        return sl_config_error(t, "'types' must be a map of field: type "
                                  "(int, float, bool, string or time)");
    for (size_t i = 0; i < sl_config_len(t); i++) {
        const char *name = sl_config_key_at(t, i);
        const sl_config_t *v = sl_config_value_at(t, i);
        const char *s = sl_config_str(v);
        rp_group_t *g = s_find(c, name);
        size_t k = 0;
        while (s && k < RP_N(s_type_names) && strcmp(s, s_type_names[k]))
            k++;
        if (!g)
            rc = sl_config_error(v, "'types' names '%s', which is not a "
                                    "field of the %s", name,
                                 c->preset ? "preset" : "'fields' list");
        else if (sl_config_type(v) != SL_CONFIG_STRING ||
                 k == RP_N(s_type_names))
            rc = sl_config_error(v, "'types.%s' must be int, float, bool, "
                                    "string or time, got '%s'", name,
                                 s ? s : "a list or map");
        else
            g->type = (rp_type_t)k;
    }
    return rc;
}

static int s_time_format(const sl_config_t *cfg, rp_conf_t *c)
{
    const sl_config_t *n = sl_config_get(cfg, "time_format");
    const char *first = NULL;

    for (size_t i = 0; i < c->n_groups && !first; i++)
        if (c->groups[i].name && c->groups[i].type == RP_TIME)
            first = c->groups[i].name;
    if (sl_config_get_str(cfg, "time_format", NULL, &c->time_format) < 0)
        return -EINVAL;
    if (c->time_format && !strchr(c->time_format, '%'))
        return sl_config_error(n, "'time_format' must be a strptime format "
                                  "such as \"%%d/%%b/%%Y:%%H:%%M:%%S "
                                  "%%z\", got '%s'", c->time_format);
    if (c->time_format && !first)
        return sl_config_error(n, "'time_format' is given but no field has "
                                  "type time");
    if (!c->time_format && first) {
        if (!c->preset)
            return sl_config_error(sl_config_get(cfg, "types"),
                                   "'time_format' is required for the time "
                                   "field '%s'", first);
        c->time_format = RP_CLF_TIME_FORMAT;
    }
    return 0;
}

static int s_enum(const sl_config_t *cfg, rp_conf_t *c)
{
    const char *s;
    int rc = 0;

    if (sl_config_get_str(cfg, "field", "line", &c->field) < 0)
        rc = -EINVAL;
    else if (!*c->field)
        rc = sl_config_error(sl_config_get(cfg, "field"),
                             "'field' must not be empty");
    else
        c->field_len = strlen(c->field);
    if (sl_config_get_bool(cfg, "keep_source", 0, &c->keep_source) < 0)
        rc = -EINVAL;
    if (sl_config_get_str(cfg, "on_mismatch", "dead_letter", &s) < 0)
        rc = -EINVAL;
    else if (!strcmp(s, "drop"))
        c->drop_mismatch = 1;
    else if (strcmp(s, "dead_letter"))
        rc = sl_config_error(sl_config_get(cfg, "on_mismatch"),
                             "'on_mismatch' must be dead_letter or drop, got "
                             "'%s'", s);
    return rc;
}

int rp_conf_parse(const sl_config_t *cfg, rp_conf_t *c, regex_t *re_out)
{
    const sl_config_t *at;
    regex_t re;
    int rc;

    memset(c, 0, sizeof(*c));
    rc = s_enum(cfg, c);
    if (s_pattern(cfg, c, &at) < 0)
        return -EINVAL;
    char why[160];
    if (regex_guard(c->pattern, why, sizeof(why)) != 0)
        return sl_config_error(at, "'pattern' refused: %s", why);
    int err = regcomp(&re, c->pattern, REG_EXTENDED);
    if (err) {
        char msg[256];
        regerror(err, &re, msg, sizeof(msg));
        /* A preset always compiles; only a pattern of one's own gets here. */
        return sl_config_error(at, "'pattern' is not a valid POSIX extended "
                                   "regular expression: %s", msg);
    }
    if (re.re_nsub == 0) {
        regfree(&re);
        return sl_config_error(at, "'pattern' has no capture group: nothing "
                                   "to extract");
    }
    if (s_fields(cfg, c, re.re_nsub) < 0 || s_types(cfg, c) < 0 ||
        s_time_format(cfg, c) < 0)
        rc = -EINVAL;
    if (rc < 0 || !re_out) {
        regfree(&re);
        if (rc < 0)
            rp_conf_fini(c);
        return rc;
    }
    *re_out = re;
    return 0;
}

void rp_conf_fini(rp_conf_t *c)
{
    free(c->groups);
    memset(c, 0, sizeof(*c));
}
