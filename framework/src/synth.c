/* Synthetic traffic: the template's top level and the generation loop
 * (see synth.h; the parts are described in synth_int.h). */
#include "synth_int.h"

#include "diag.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_MAX_FIELDS 1000

struct sl_synth {
    uint64_t seed;
    uint64_t count;   /* 0: no limit */
    uint64_t end_ns;  /* UINT64_MAX: no limit */
    sl_synth_sched_t sched;
    sl_synth_field_t **fields;
    bool *present;
    size_t n_fields;
    uint64_t made;
    uint64_t prev;
    bool done;
    char *origin;
};

static const char *const s_top_keys[] = {"seed", "count", "duration",
                                         "arrivals", "rate", "fields", NULL};

static void s_check_top_keys(const sl_config_t *root)
{
    for (size_t i = 0; i < sl_config_len(root); i++) {
        const char *k = sl_config_key_at(root, i);
        const char *const *a = s_top_keys;
        while (*a && strcmp(*a, k))
            a++;
        if (!*a)
            sl_config_error(sl__config_key_node_at(root, i), "unknown key "
                            "'%s' (expected seed, count, duration, arrivals, "
                            "rate or fields)", k);
    }
}

/* Reads the template into s; problems go to the document's diag. */
static void s_read(sl_synth_t *s, const sl_config_t *root, const char *name,
                   sl_diag_t *diag)
{
    if (sl_config_type(root) != SL_CONFIG_MAP) {
        sl_config_error(root, "a template is a map (seed, count, duration, "
                        "arrivals, rate, fields)");
        return;
    }
    s_check_top_keys(root);
    const sl_config_t *n;
    int64_t v;
    s->seed = 1;
    if ((n = sl_config_get(root, "seed"))) {
        if (sl_config_int(n, &v) == 0)
            s->seed = (uint64_t)v;
        else
            sl_config_error(n, "seed: expected an integer");
    }
    if ((n = sl_config_get(root, "count"))) {
        if (sl_config_int(n, &v) == 0 && v >= 1)
            s->count = (uint64_t)v;
        else
            sl_config_error(n, "count: expected an integer of at least 1");
    }
    s->end_ns = UINT64_MAX;
    const sl_config_t *dn = sl_config_get(root, "duration");
    uint64_t d;
    if (dn && sl__synth_duration(dn, "duration", &d)) {
        if (d == 0)
            sl_config_error(dn, "duration: must be above 0");
        s->end_ns = d;
    }
    bool poisson = false;
    if ((n = sl_config_get(root, "arrivals"))) {
        const char *a = sl_config_str(n);
        if (a && !strcmp(a, "poisson"))
            poisson = true;
        else if (!a || strcmp(a, "even"))
            sl_config_error(n, "arrivals: expected even or poisson");
    }
    const sl_config_t *rate = sl_config_get(root, "rate");
    bool have_sched = false;
    if (!rate)
        sl_config_error(root, "missing 'rate' (a shape such as rate: "
                        "{constant: {rate: 100/s}})");
    else
        have_sched = sl__synth_sched_parse(&s->sched, rate);
    s->sched.poisson = poisson;
    if (have_sched && !dn && s->sched.own_end_ns)
        s->end_ns = s->sched.own_end_ns;
    if (have_sched && !s->count && s->end_ns == UINT64_MAX)
        sl_config_error(rate, "the traffic never ends: give 'count' or "
                        "'duration' (here or in the shape)");

    const sl_config_t *fields = sl_config_get(root, "fields");
    size_t nf = sl_config_len(fields);
    if (!fields || sl_config_type(fields) != SL_CONFIG_MAP || nf == 0 ||
        nf > S_MAX_FIELDS) {
        sl_config_error(fields ? fields : root, "fields: expected a map of "
                        "1 to %d fields, each with a generator",
                        S_MAX_FIELDS);
        return;
    }
    s->fields = calloc(nf, sizeof(*s->fields));
    s->present = calloc(nf, sizeof(*s->present));
    if (!s->fields || !s->present) {
        sl__diag_add(diag, "%s: out of memory", name);
        return;
    }
    uint64_t now = sl_now_ns();
    for (size_t i = 0; i < nf; i++) {
        sl_synth_field_t *f = sl__synth_field_parse(sl_config_key_at(fields,
                                                                     i),
                                                    sl_config_value_at(fields,
                                                                       i),
                                                    now);
        if (f)
            s->fields[s->n_fields++] = f;
    }
}

static sl_synth_t *s_build(sl_config_doc_t *doc, const char *name,
                           sl_diag_t *diag, char *err, size_t errlen)
{
    sl_synth_t *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(err, errlen, "%s: out of memory", name);
        return NULL;
    }
    sl__config_doc_set_diag(doc, diag, NULL);
    s_read(s, sl__config_doc_root(doc), name, diag);
    sl__config_doc_set_diag(doc, NULL, NULL);
    char origin[4200];
    snprintf(origin, sizeof(origin), "synth %s seed %llu", name,
             (unsigned long long)s->seed);
    if (!diag->count && !(s->origin = strdup(origin)))
        sl__diag_add(diag, "%s: out of memory", name);
    if (diag->count) {
        sl__diag_sort(diag, 0, name);
        size_t n = 0;
        if (errlen)
            err[0] = '\0';
        for (size_t i = 0; i < diag->count && n + 1 < errlen; i++)
            n += (size_t)snprintf(err + n, errlen - n, "%s%s", i ? "\n" : "",
                                  diag->lines[i]);
        sl_synth_destroy(&s);
        return NULL;
    }
    sl_synth_rewind(s);
    return s;
}

sl_synth_t *sl_synth_load(const char *path, char *err, size_t errlen)
{
    sl_diag_t diag;
    sl__diag_init(&diag);
    sl_synth_t *s = NULL;
    sl_config_doc_t *doc = sl__config_doc_load(path, &diag);
    if (doc)
        s = s_build(doc, path, &diag, err, errlen);
    else {
        size_t n = 0;
        for (size_t i = 0; i < diag.count && n + 1 < errlen; i++)
            n += (size_t)snprintf(err + n, errlen - n, "%s%s", i ? "\n" : "",
                                  diag.lines[i]);
    }
    sl__config_doc_destroy(&doc);
    sl__diag_fini(&diag);
    return s;
}

sl_synth_t *sl_synth_parse(const char *name, const char *text, size_t len,
                           char *err, size_t errlen)
{
    sl_diag_t diag;
    sl__diag_init(&diag);
    sl_synth_t *s = NULL;
    sl_config_doc_t *doc = sl__config_doc_parse(name, NULL, text, len, &diag);
    if (doc)
        s = s_build(doc, name, &diag, err, errlen);
    else {
        size_t n = 0;
        for (size_t i = 0; i < diag.count && n + 1 < errlen; i++)
            n += (size_t)snprintf(err + n, errlen - n, "%s%s", i ? "\n" : "",
                                  diag.lines[i]);
    }
    sl__config_doc_destroy(&doc);
    sl__diag_fini(&diag);
    return s;
}

void sl_synth_destroy(sl_synth_t **sp)
{
    sl_synth_t *s = sp ? *sp : NULL;
    if (!s)
        return;
    for (size_t i = 0; i < s->n_fields; i++)
        sl__synth_field_free(s->fields[i]);
    free(s->fields);
    free(s->present);
    sl__synth_sched_fini(&s->sched);
    free(s->origin);
    free(s);
    *sp = NULL;
}

void sl_synth_rewind(sl_synth_t *s)
{
    s->made = 0;
    s->prev = 0;
    s->done = false;
    sl__synth_sched_reset(&s->sched, s->seed);
    for (size_t i = 0; i < s->n_fields; i++)
        sl__synth_field_reset(s->fields[i], s->seed);
}

uint64_t sl_synth_made(const sl_synth_t *s)
{
    return s->made;
}

const char *sl_synth_origin(const sl_synth_t *s)
{
    return s->origin;
}

int sl_synth_next(sl_synth_t *s, uint64_t *offset_ns, msgpack_sbuffer *rec)
{
    double t;
    if (s->done || (s->count && s->made >= s->count) ||
        !sl__synth_sched_next(&s->sched, &t)) {
        s->done = true;
        return 1;
    }
    if (t >= 9e18) { /* some 285 years: past any end */
        s->done = true;
        return 1;
    }
    uint64_t off = t <= 0 ? 0 : (uint64_t)llround(t);
    if (off < s->prev) /* rounding at a piece's edge */
        off = s->prev;
    if (off >= s->end_ns) {
        s->done = true;
        return 1;
    }
    size_t n = 0;
    for (size_t i = 0; i < s->n_fields; i++)
        n += (s->present[i] = sl__synth_field_present(s->fields[i]));
    rec->size = 0;
    msgpack_packer pk;
    msgpack_packer_init(&pk, rec, msgpack_sbuffer_write);
    if (msgpack_pack_map(&pk, n))
        return -ENOMEM;
    for (size_t i = 0; i < s->n_fields; i++)
        if (s->present[i] &&
            sl__synth_field_pack(s->fields[i], &pk, s->made, off) < 0)
            return -ENOMEM;
    s->prev = off;
    s->made++;
    *offset_ns = off;
    return 0;
}
