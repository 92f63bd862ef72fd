/*
 * Config parsing for the fields stage. One function serves validate (check
 * only) and init (keep the plan), so the two can never disagree. Every
 * problem is reported, not just the first, each on its own node.
 */
#include "fields_plan.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct pctx {
    fields_plan_t *plan;
    int bad;   /* a problem was reported */
    int nomem; /* an allocation failed */
} pctx_t;

static void *zalloc(pctx_t *c, size_t n)
{
    void *m = msgpack_zone_malloc(c->plan->zone, n ? n : 1);
    if (!m) {
        c->nomem = 1;
        return NULL;
    }
    memset(m, 0, n);
    return m;
}

static void report(pctx_t *c)
{
    c->bad = 1;
}

/* Splits "a.b.c" into segments copied into the plan's zone (the copy gives
 * each path its own key pointers; see frename_t). Keys that contain a dot
 * cannot be addressed: documented. */
static int split_path(pctx_t *c, const sl_config_t *node, const char *op,
                      const char *text, fpath_t *out)
{
    size_t n = strlen(text);
    if (n == 0) {
        report(c);
        return sl_config_error(node, "%s: empty field path", op);
    }
    if (text[0] == '.' || text[n - 1] == '.' || strstr(text, "..")) {
        report(c);
        return sl_config_error(node,
                               "%s: invalid field path '%s' (empty name "
                               "around a dot)",
                               op, text);
    }
    size_t nseg = 1;
    for (size_t i = 0; i < n; i++)
        nseg += text[i] == '.';
    char *copy = zalloc(c, n + 1);
    fseg_t *segs = zalloc(c, nseg * sizeof *segs);
    if (!copy || !segs)
        return -ENOMEM;
    memcpy(copy, text, n + 1);
    const char *p = copy;
    for (size_t k = 0; k < nseg; k++) {
        const char *dot = strchr(p, '.');
        size_t len = dot ? (size_t)(dot - p) : strlen(p);
        segs[k].ptr = p;
        segs[k].len = len;
        p += len + 1;
    }
    out->text = copy;
    out->segs = segs;
    out->nseg = nseg;
    return 0;
}

static int seg_eq(const fseg_t *a, const fseg_t *b)
{
    return a->len == b->len && !memcmp(a->ptr, b->ptr, a->len);
}

/* A list of paths (select, drop). */
static fpath_t *parse_list(pctx_t *c, const sl_config_t *cfg, const char *key,
                           size_t *count)
{
    const sl_config_t *node = sl_config_get(cfg, key);
    *count = 0;
    if (!node)
        return NULL;
    if (sl_config_type(node) != SL_CONFIG_SEQ) {
        report(c);
        sl_config_error(node, "%s: expected a list of field paths", key);
        return NULL;
    }
    size_t n = sl_config_len(node);
    if (n == 0 && !strcmp(key, "select")) {
        report(c);
        sl_config_error(node, "select: an empty list would drop every field");
        return NULL;
    }
    fpath_t *paths = zalloc(c, n * sizeof *paths);
    if (!paths)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        const sl_config_t *item = sl_config_at(node, i);
        if (sl_config_type(item) != SL_CONFIG_STRING) {
            report(c);
            sl_config_error(item, "%s: expected a field path (a string)", key);
            continue;
        }
        if (split_path(c, item, key, sl_config_str(item), &paths[*count]) == 0)
            (*count)++;
    }
    return paths;
}

/* A map from path to a value (rename, set, cast); returns the map node, or
 * NULL when absent or not a map (then reported). */
static const sl_config_t *get_map(pctx_t *c, const sl_config_t *cfg,
                                  const char *key, const char *what)
{
    const sl_config_t *node = sl_config_get(cfg, key);
    if (node && sl_config_type(node) != SL_CONFIG_MAP) {
        report(c);
        sl_config_error(node, "%s: expected a map of %s", key, what);
        return NULL;
    }
    return node;
}

static void parse_casts(pctx_t *c, const sl_config_t *cfg)
{
    const sl_config_t *m = get_map(c, cfg, "cast", "field: type");
    fields_plan_t *plan = c->plan;
    size_t n = m ? sl_config_len(m) : 0;
    if (!n || !(plan->casts = zalloc(c, n * sizeof *plan->casts)))
        return;
    for (size_t i = 0; i < n; i++) {
        const char *field = sl_config_key_at(m, i);
        const sl_config_t *v = sl_config_value_at(m, i);
        fcast_t *fc = &plan->casts[plan->ncasts];
        const char *tname = sl_config_str(v);
        if (sl_config_type(v) != SL_CONFIG_STRING || !tname ||
            fields_type_parse(tname, &fc->type) < 0) {
            report(c);
            sl_config_error(v,
                            "cast: unknown type '%s' for '%s' (expected int, "
                            "float, string or bool)",
                            tname ? tname : "?", field);
            continue;
        }
        if (split_path(c, v, "cast", field, &fc->path) == 0)
            plan->ncasts++;
    }
}

static int by_depth_desc(const void *a, const void *b)
{
    const frename_t *x = a, *y = b;
    return x->from.nseg < y->from.nseg   ? 1
           : x->from.nseg > y->from.nseg ? -1
                                         : 0;
}

static int same_parent(const fpath_t *a, const fpath_t *b)
{
    if (a->nseg != b->nseg)
        return 0;
    for (size_t k = 0; k + 1 < a->nseg; k++)
        if (!seg_eq(&a->segs[k], &b->segs[k]))
            return 0;
    return 1;
}

static void parse_renames(pctx_t *c, const sl_config_t *cfg)
{
    const sl_config_t *m = get_map(c, cfg, "rename", "old: new");
    fields_plan_t *plan = c->plan;
    size_t n = m ? sl_config_len(m) : 0;
    if (!n || !(plan->renames = zalloc(c, n * sizeof *plan->renames)))
        return;
    for (size_t i = 0; i < n; i++) {
        const char *from = sl_config_key_at(m, i);
        const sl_config_t *v = sl_config_value_at(m, i);
        frename_t *r = &plan->renames[plan->nrenames];
        fpath_t to;
        if (sl_config_type(v) != SL_CONFIG_STRING) {
            report(c);
            sl_config_error(v, "rename: the new name for '%s' must be a string",
                            from);
            continue;
        }
        if (split_path(c, v, "rename", from, &r->from) < 0 ||
            split_path(c, v, "rename", sl_config_str(v), &to) < 0)
            continue;
        if (!same_parent(&r->from, &to)) {
            report(c);
            sl_config_error(v,
                            "rename: '%s' -> '%s' would move the field to "
                            "another map; a rename may only change the last "
                            "key of the path",
                            from, to.text);
            continue;
        }
        r->to = to.segs[to.nseg - 1];
        for (size_t k = 0; k < plan->nrenames; k++) {
            const frename_t *o = &plan->renames[k];
            if (same_parent(&o->from, &r->from) && seg_eq(&o->to, &r->to)) {
                report(c);
                sl_config_error(v, "rename: '%s' and '%s' both rename to '%s'",
                                o->from.text, from, to.text);
                break;
            }
        }
        plan->nrenames++;
    }
    /* Deepest first, so that a rename of a map runs after the renames
     * inside it, which name their paths by the old map name. */
    qsort(plan->renames, plan->nrenames, sizeof *plan->renames, by_depth_desc);
}

static int is_prefix(const fpath_t *a, const fpath_t *b)
{
    if (a->nseg > b->nseg)
        return 0;
    for (size_t k = 0; k < a->nseg; k++)
        if (!seg_eq(&a->segs[k], &b->segs[k]))
            return 0;
    return 1;
}

/* Keeps the YAML type: 5 is an int, "5" a string, 5.0 a float. */
static int set_value(pctx_t *c, const sl_config_t *v, const char *field,
                     msgpack_object *out)
{
    memset(out, 0, sizeof *out);
    switch (sl_config_type(v)) {
    case SL_CONFIG_NULL: out->type = MSGPACK_OBJECT_NIL; return 0;
    case SL_CONFIG_BOOL: {
        int b = 0;
        sl_config_bool(v, &b);
        out->type = MSGPACK_OBJECT_BOOLEAN;
        out->via.boolean = b != 0;
        return 0;
    }
    case SL_CONFIG_INT: {
        int64_t i;
        if (sl_config_int(v, &i) == 0) {
            out->type = i < 0 ? MSGPACK_OBJECT_NEGATIVE_INTEGER
                              : MSGPACK_OBJECT_POSITIVE_INTEGER;
            if (i < 0)
                out->via.i64 = i;
            else
                out->via.u64 = (uint64_t)i;
            return 0;
        }
        /* beyond int64: may still fit uint64 */
        const char *s = sl_config_str(v);
        char *end;
        errno = 0;
        unsigned long long u = s && *s != '-' ? strtoull(s, &end, 10) : 0;
        if (!s || *s == '-' || errno || *end) {
            report(c);
            return sl_config_error(v, "set: integer for '%s' is out of range",
                                   field);
        }
        out->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
        out->via.u64 = u;
        return 0;
    }
    case SL_CONFIG_FLOAT:
        out->type = MSGPACK_OBJECT_FLOAT64;
        sl_config_double(v, &out->via.f64);
        return 0;
    case SL_CONFIG_STRING: {
        const char *s = sl_config_str(v);
        size_t n = strlen(s);
        char *copy = zalloc(c, n + 1);
        if (!copy)
            return -ENOMEM;
        memcpy(copy, s, n + 1);
        out->type = MSGPACK_OBJECT_STR;
        out->via.str.ptr = copy;
        out->via.str.size = (uint32_t)n;
        return 0;
    }
    default:
        report(c);
        return sl_config_error(v,
                               "set: the value for '%s' must be a scalar "
                               "(string, number, bool or null)",
                               field);
    }
}

static void parse_sets(pctx_t *c, const sl_config_t *cfg)
{
    const sl_config_t *m = get_map(c, cfg, "set", "field: value");
    fields_plan_t *plan = c->plan;
    size_t n = m ? sl_config_len(m) : 0;
    if (!n || !(plan->sets = zalloc(c, n * sizeof *plan->sets)))
        return;
    for (size_t i = 0; i < n; i++) {
        const char *field = sl_config_key_at(m, i);
        const sl_config_t *v = sl_config_value_at(m, i);
        fset_t *s = &plan->sets[plan->nsets];
        if (split_path(c, v, "set", field, &s->path) < 0 ||
            set_value(c, v, field, &s->value) < 0)
            continue;
        /* One set inside another ("a" and "a.b") would depend on order. */
        for (size_t k = 0; k < plan->nsets; k++) {
            const fpath_t *o = &plan->sets[k].path;
            if (is_prefix(o, &s->path) || is_prefix(&s->path, o)) {
                report(c);
                sl_config_error(v, "set: '%s' overlaps '%s'", field, o->text);
                break;
            }
        }
        plan->nsets++;
    }
}

static fsel_t *sel_child(pctx_t *c, fsel_t *node, const fseg_t *key, size_t cap)
{
    for (size_t i = 0; i < node->nkids; i++)
        if (seg_eq(&node->kids[i].key, key))
            return &node->kids[i];
    if (!node->kids && !(node->kids = zalloc(c, cap * sizeof *node->kids)))
        return NULL;
    fsel_t *k = &node->kids[node->nkids++];
    k->key = *key;
    return k;
}

/* Builds the select trie. Each node's children array is sized for the
 * number of paths, which bounds its fan-out; wasteful only at config time. */
static void build_select(pctx_t *c, const fpath_t *paths, size_t n)
{
    fsel_t *root = zalloc(c, sizeof *root);
    if (!root)
        return;
    for (size_t i = 0; i < n; i++) {
        fsel_t *node = root;
        for (size_t k = 0; node && k < paths[i].nseg; k++) {
            if (node->whole)
                break; /* an ancestor is kept whole already */
            node = sel_child(c, node, &paths[i].segs[k], n);
            if (node && k + 1 == paths[i].nseg) {
                node->whole = 1;
                node->nkids = 0; /* drop narrower paths listed earlier */
            }
        }
    }
    c->plan->select = root;
}

void fields_plan_fini(fields_plan_t *plan)
{
    if (plan && plan->zone)
        msgpack_zone_free(plan->zone);
    if (plan)
        memset(plan, 0, sizeof *plan);
}

int fields_plan_parse(const sl_config_t *cfg, fields_plan_t *out)
{
    fields_plan_t plan = {0};
    pctx_t c = {.plan = &plan};
    if (!(plan.zone = msgpack_zone_new(4096)))
        return -ENOMEM;

    int strict = 0;
    if (sl_config_get_bool(cfg, "strict", 0, &strict) < 0)
        report(&c);
    plan.strict = strict;
    parse_casts(&c, cfg);
    parse_renames(&c, cfg);
    plan.drops = parse_list(&c, cfg, "drop", &plan.ndrops);
    size_t nsel = 0;
    fpath_t *sel = parse_list(&c, cfg, "select", &nsel);
    if (nsel)
        build_select(&c, sel, nsel);
    parse_sets(&c, cfg);

    if (!c.bad && !c.nomem && !plan.ncasts && !plan.nrenames && !plan.ndrops &&
        !plan.select && !plan.nsets) {
        report(&c);
        sl_config_error(cfg, "fields: nothing to do (give at least one of "
                             "cast, rename, drop, select, set)");
    }
    int rc = c.nomem ? -ENOMEM : c.bad ? -EINVAL : 0;
    if (rc < 0 || !out)
        fields_plan_fini(&plan);
    else
        *out = plan;
    return rc;
}
