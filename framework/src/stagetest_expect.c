/*
 * The `expect:` part of a test case: what the output must be (records,
 * count, where), which dead letters there must be, and for one stage the
 * files and standard output it leaves. Records are packed to msgpack and
 * regular expressions compiled here, once.
 */
#include "stagetest_int.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- where: conditions ------------------------------------------------- */

static const char *const s_types[] = {"int", "float", "string", "bool", "null",
                                      "map", "array", "binary", NULL};
static const char *const s_bound_keys[] = {"gt", "ge", "lt", "le"};

static int s_number(sl_stest_parse_t *p, const sl_config_t *n, const char *key,
                    sl_stest_num_t *out)
{
    sl_config_type_t t = sl_config_type(n);
    int64_t v;
    int rc = t == SL_CONFIG_INT ? sl_config_int(n, &v) : -EINVAL;
    if (rc == 0) {
        out->is_int = true;
        out->neg = v < 0;
        out->mag = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
        out->d = (double)v;
    } else if (t == SL_CONFIG_INT && rc == -ERANGE) {
        char *end;
        const char *text = sl_config_str(n);
        errno = 0;
        unsigned long long u = strtoull(text, &end, 10);
        if (errno || *end || text[0] == '-') {
            sl__stest_perr(p, n, "'%s': integer %s is out of range", key,
                           sl_config_str(n));
            return -EINVAL;
        }
        out->is_int = true;
        out->mag = u;
        out->d = (double)u;
    } else if (t == SL_CONFIG_FLOAT && sl_config_double(n, &out->d) == 0 &&
               !isnan(out->d)) {
        out->is_int = false;
    } else {
        sl__stest_perr(p, n, "'%s' must be a number, got %s", key,
                       sl__stest_a(t));
        return -EINVAL;
    }
    out->text = strdup(sl_config_str(n));
    return out->text ? 0 : -ENOMEM;
}

static int s_cond(sl_stest_parse_t *p, const sl_config_t *n, sl_stest_cond_t *c)
{
    static const char *const keys[] = {"field",  "equals", "type", "matches",
                                       "exists", "gt",     "ge",   "lt",
                                       "le",     NULL};
    if (sl_config_type(n) != SL_CONFIG_MAP) {
        sl__stest_perr(p, n,
                       "a 'where' condition must be a map such as "
                       "{field: f, equals: 1}, got %s",
                       sl__stest_a(sl_config_type(n)));
        return -EINVAL;
    }
    sl__stest_keys(p, n, keys, "a 'where' condition");
    const sl_config_t *v;
    int rc = 0;
    if (!(v = sl_config_get(n, "field"))) {
        sl__stest_perr(p, n, "a 'where' condition needs 'field'");
        rc = -EINVAL;
    } else if (sl__stest_str(p, v, "field", &c->field) != 0) {
        rc = -EINVAL;
    }
    if ((v = sl_config_get(n, "equals"))) {
        c->ops |= SL_STEST_EQUALS;
        if (sl__stest_value(p, v, &c->equals))
            rc = -EINVAL;
    }
    if ((v = sl_config_get(n, "type"))) {
        c->ops |= SL_STEST_TYPE;
        if (sl__stest_str(p, v, "type", &c->type) != 0) {
            rc = -EINVAL;
        } else {
            bool ok = false;
            for (const char *const *t = s_types; *t && !ok; t++)
                ok = strcmp(*t, c->type) == 0;
            if (!ok) {
                sl__stest_perr(
                    p, v,
                    "'type' must be one of int, float, string, bool, "
                    "null, map, array, binary; got '%s'",
                    c->type);
                rc = -EINVAL;
            }
        }
    }
    if ((v = sl_config_get(n, "matches"))) {
        c->ops |= SL_STEST_MATCHES;
        if (sl__stest_str(p, v, "matches", &c->pattern) != 0) {
            rc = -EINVAL;
        } else {
            int r = regcomp(&c->re, c->pattern, REG_EXTENDED | REG_NOSUB);
            if (r != 0) {
                char why[256];
                regerror(r, &c->re, why, sizeof(why));
                sl__stest_perr(p, v,
                               "'matches': invalid regular expression '%s': %s",
                               c->pattern, why);
                rc = -EINVAL;
            } else {
                c->re_ok = true;
            }
        }
    }
    if ((v = sl_config_get(n, "exists"))) {
        c->ops |= SL_STEST_EXISTS;
        if (sl__stest_bool(p, v, "exists", &c->exists))
            rc = -EINVAL;
    }
    for (int k = 0; k < 4; k++) {
        if (!(v = sl_config_get(n, s_bound_keys[k])))
            continue;
        c->ops |= SL_STEST_GT << k;
        if (s_number(p, v, s_bound_keys[k], &c->bound[k]))
            rc = -EINVAL;
    }
    if (!c->ops && sl_config_get(n, "field")) {
        sl__stest_perr(
            p, n,
            "a 'where' condition needs one of equals, type, matches, "
            "exists, gt, ge, lt, le");
        rc = -EINVAL;
    }
    if ((c->ops & SL_STEST_EXISTS) && !c->exists &&
        (c->ops & ~(unsigned)SL_STEST_EXISTS)) {
        sl__stest_perr(p, n,
                       "'exists: false' cannot be combined with conditions on "
                       "the field's value");
        rc = -EINVAL;
    }
    return rc;
}

/* ---- expectations ------------------------------------------------------ */

/* records, count, where, ordered: the keys a stream expectation has. */
static int s_stream_key(sl_stest_parse_t *p, const char *key,
                        const sl_config_t *v, sl_stest_expect_t *e,
                        bool *handled)
{
    *handled = true;
    if (strcmp(key, "records") == 0) {
        e->has_records = true;
        return sl__stest_records(p, v, "records", "expected record", false,
                                 &e->records, &e->n_records);
    }
    if (strcmp(key, "count") == 0) {
        e->has_count = true;
        return sl__stest_uint(p, v, "count", 0, &e->count);
    }
    if (strcmp(key, "ordered") == 0)
        return sl__stest_bool(p, v, "ordered", &e->ordered);
    if (strcmp(key, "where") == 0) {
        if (sl__stest_seq(p, v, "where"))
            return -EINVAL;
        size_t cnt = sl_config_len(v);
        if (!(e->where = calloc(cnt ? cnt : 1, sizeof(*e->where))))
            return -ENOMEM;
        e->n_where = cnt;
        int rc = 0;
        for (size_t i = 0; i < cnt; i++) {
            int r = s_cond(p, sl_config_at(v, i), &e->where[i]);
            rc = rc ? rc : r;
        }
        return rc;
    }
    *handled = false;
    return 0;
}

static int s_dl(sl_stest_parse_t *p, const sl_config_t *n, bool topology,
                sl_stest_dl_t *d)
{
    static const char *const keys[] = {"error", "retry", "record", "stage",
                                       NULL};
    d->retry = -1;
    if (sl__stest_is_scalar(n)) /* shorthand: just the message's substring */
        return sl__stest_str(p, n, "error", &d->error);
    if (sl_config_type(n) != SL_CONFIG_MAP) {
        sl__stest_perr(p, n,
                       "a dead letter must be a map such as {error: \"...\"}, "
                       "got %s",
                       sl__stest_a(sl_config_type(n)));
        return -EINVAL;
    }
    sl__stest_keys(p, n, keys, "a dead letter");
    int rc = 0;
    const sl_config_t *v;
    if ((v = sl_config_get(n, "error")) &&
        sl__stest_str(p, v, "error", &d->error))
        rc = -EINVAL;
    if ((v = sl_config_get(n, "retry"))) {
        bool b = false;
        if (sl__stest_bool(p, v, "retry", &b))
            rc = -EINVAL;
        d->retry = b;
    }
    if ((v = sl_config_get(n, "record"))) {
        d->has_record = true;
        if (sl__stest_record(p, v, "dead letter record", 0, false, &d->record))
            rc = -EINVAL;
    }
    if ((v = sl_config_get(n, "stage"))) {
        if (!topology) {
            sl__stest_perr(p, v,
                           "'stage' in a dead letter is for topology cases; a "
                           "one-stage case has only its own");
            rc = -EINVAL;
        } else if (sl__stest_str(p, v, "stage", &d->stage)) {
            rc = -EINVAL;
        }
    }
    return rc;
}

static int s_dls(sl_stest_parse_t *p, const sl_config_t *n, bool topology,
                 sl_stest_case_t *c)
{
    if (sl__stest_seq(p, n, "dead_letters"))
        return -EINVAL;
    size_t cnt = sl_config_len(n);
    if (!(c->dls = calloc(cnt ? cnt : 1, sizeof(*c->dls))))
        return -ENOMEM;
    c->n_dls = cnt;
    int rc = 0;
    for (size_t i = 0; i < cnt; i++) {
        int r = s_dl(p, sl_config_at(n, i), topology, &c->dls[i]);
        rc = rc ? rc : r;
    }
    return rc;
}

static int s_expect_stage(sl_stest_parse_t *p, const sl_config_t *n,
                          sl_stest_case_t *c)
{
    static const char *const keys[] = {"records", "count",        "where",
                                       "ordered", "dead_letters", "files",
                                       "stdout",  "start_error",  NULL};
    sl__stest_keys(p, n, keys, "'expect' of a one-stage case");
    c->out.ordered = true;
    int rc = 0;
    for (size_t i = 0; i < sl_config_len(n); i++) {
        const char *key = sl_config_key_at(n, i);
        const sl_config_t *v = sl_config_value_at(n, i);
        bool handled;
        int r = s_stream_key(p, key, v, &c->out, &handled);
        if (handled) {
        } else if (strcmp(key, "dead_letters") == 0) {
            r = s_dls(p, v, false, c);
        } else if (strcmp(key, "files") == 0) {
            r = sl__stest_files(p, v, &c->want_files, &c->n_want_files);
        } else if (strcmp(key, "stdout") == 0) {
            c->has_stdout = true;
            r = sl__stest_content(p, v, "stdout", &c->want_stdout);
        } else if (strcmp(key, "start_error") == 0) {
            r = sl__stest_str(p, v, "start_error", &c->start_error);
        }
        rc = rc ? rc : r;
    }
    return rc;
}

/* Keyed by stage name, plus dead_letters. */
static int s_expect_topology(sl_stest_parse_t *p, const sl_config_t *n,
                             sl_stest_case_t *c)
{
    static const char *const keys[] = {"records", "count", "where", "ordered",
                                       NULL};
    size_t cnt = sl_config_len(n);
    if (!(c->targets = calloc(cnt ? cnt : 1, sizeof(*c->targets))))
        return -ENOMEM;
    int rc = 0;
    for (size_t i = 0; i < cnt; i++) {
        const char *key = sl_config_key_at(n, i);
        const sl_config_t *v = sl_config_value_at(n, i);
        int r = 0;
        if (strcmp(key, "dead_letters") == 0) {
            r = s_dls(p, v, true, c);
            rc = rc ? rc : r;
            continue;
        }
        sl_stest_target_t *t = &c->targets[c->n_targets++];
        t->node = sl__config_key_node_at(n, i);
        if (!(t->stage = strdup(key)))
            return -ENOMEM;
        if (sl_config_type(v) != SL_CONFIG_MAP) {
            sl__stest_perr(p, v,
                           "expect: '%s' must be a map of what reaches that "
                           "stage (records, count, where, ordered), got %s",
                           key, sl__stest_a(sl_config_type(v)));
            rc = -EINVAL;
            continue;
        }
        char where[96];
        snprintf(where, sizeof(where), "expect for stage '%.40s'", key);
        sl__stest_keys(p, v, keys, where);
        for (size_t k = 0; k < sl_config_len(v); k++) {
            bool handled;
            r = s_stream_key(p, sl_config_key_at(v, k),
                             sl_config_value_at(v, k), &t->want, &handled);
            rc = rc ? rc : r;
        }
    }
    return rc;
}

int sl__stest_parse_expect(sl_stest_parse_t *p, const sl_config_t *n,
                           sl_stest_case_t *c)
{
    return c->kind == SL_STEST_TOPOLOGY ? s_expect_topology(p, n, c)
                                        : s_expect_stage(p, n, c);
}

void sl__stest_expect_fini(sl_stest_expect_t *e)
{
    for (size_t i = 0; i < e->n_records; i++)
        free(e->records[i].data);
    free(e->records);
    for (size_t i = 0; i < e->n_where; i++) {
        sl_stest_cond_t *c = &e->where[i];
        free(c->field);
        free(c->equals.data);
        free(c->type);
        free(c->pattern);
        if (c->re_ok)
            regfree(&c->re);
        for (int k = 0; k < 4; k++)
            free(c->bound[k].text);
    }
    free(e->where);
}
