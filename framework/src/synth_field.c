/* Synthetic traffic: one field's generator (see synth_int.h and the
 * template reference in docs/replay.md). */
#include "synth_int.h"
#include "timefmt.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_MAX_CHOICES 100000
/* The record map is one level; a constant may nest this deep below it. */
#define S_MAX_CONST_DEPTH 31

typedef enum {
    G_SEQ,
    G_INT,
    G_FLOAT,
    G_CHOICE,
    G_TIMESTAMP,
    G_STRING,
    G_CONST
} s_gen_t;

static const char *const s_gen_names[] = {"seq",       "int",    "float",
                                          "choice",    "timestamp",
                                          "string",    "const"};
#define S_N_GENS (sizeof(s_gen_names) / sizeof(s_gen_names[0]))

struct sl_synth_field {
    char *name;
    s_gen_t gen;
    double missing;
    sl_synth_rng_t rng;
    int64_t a, b;          /* seq: start, step; int: min, max; string's
                              number: min, max */
    double fmin, fmax;     /* float */
    double scale;          /* float: 10^decimals, 0 for none */
    msgpack_sbuffer packed; /* choice values / the constant, packed */
    size_t *offs;          /* choice: where each value starts in packed */
    double *cum;           /* choice: running weight totals */
    size_t n;
    int64_t start_ns;      /* timestamp */
    int64_t unit_ns;
    int rfc3339;           /* timestamp as a string */
    int ranged;            /* string: the number is random in [a, b] */
    sl_synth_pattern_t *pat;
    char *buf;             /* string: room for the longest one */
};

/* ---- reading ---------------------------------------------------------------- */

static bool s_keys(const char *field, const char *gen, const sl_config_t *m,
                   const char *const *keys)
{
    bool ok = true;
    for (size_t i = 0; i < sl_config_len(m); i++) {
        const char *k = sl_config_key_at(m, i);
        const char *const *a = keys;
        while (*a && strcmp(*a, k))
            a++;
        if (!*a) {
            char list[96] = "";
            for (a = keys; *a; a++)
                snprintf(list + strlen(list), sizeof(list) - strlen(list),
                         "%s%s", a == keys ? "" : ", ", *a);
            sl_config_error(sl__config_key_node_at(m, i), "fields.%s.%s: "
                            "unknown key '%s' (expected %s)", field, gen, k,
                            list);
            ok = false;
        }
    }
    return ok;
}

static bool s_int(const char *field, const char *key, const sl_config_t *n,
                  int64_t *out)
{
    if (sl_config_int(n, out) == 0)
        return true;
    sl_config_error(n, "fields.%s: '%s' must be an integer, got %s%s%s",
                    field, key, sl_config_str(n) ? "'" : "a ",
                    sl_config_str(n) ? sl_config_str(n)
                                     : sl__config_type_name(sl_config_type(n)),
                    sl_config_str(n) ? "'" : "");
    return false;
}

static bool s_num(const char *field, const char *key, const sl_config_t *n,
                  double *out)
{
    if (sl_config_double(n, out) == 0 && isfinite(*out))
        return true;
    sl_config_error(n, "fields.%s: '%s' must be a finite number", field, key);
    return false;
}

/* Reads min and max (both required) of map m. */
static bool s_range_int(sl_synth_field_t *f, const sl_config_t *m,
                        const char *gen)
{
    const sl_config_t *mn = sl_config_get(m, "min"), *mx = sl_config_get(m,
                                                                       "max");
    if (!mn || !mx) {
        sl_config_error(m, "fields.%s.%s: needs 'min' and 'max'", f->name,
                        gen);
        return false;
    }
    if (!s_int(f->name, "min", mn, &f->a) || !s_int(f->name, "max", mx, &f->b))
        return false;
    if (f->a > f->b) {
        sl_config_error(mx, "fields.%s.%s: 'max' (%lld) is below 'min' "
                        "(%lld)", f->name, gen, (long long)f->b,
                        (long long)f->a);
        return false;
    }
    return true;
}

static int s_depth_from(const sl_config_t *n, int above)
{
    sl_config_type_t t = sl_config_type(n);
    if (t != SL_CONFIG_MAP && t != SL_CONFIG_SEQ)
        return 0;
    int d = 0;
    if (above > S_MAX_CONST_DEPTH)
        return 1;
    for (size_t i = 0; i < sl_config_len(n); i++) {
        const sl_config_t *c = t == SL_CONFIG_MAP ? sl_config_value_at(n, i)
                                                  : sl_config_at(n, i);
        int cd = s_depth_from(c, above + 1);
        if (cd > d)
            d = cd;
    }
    return d + 1;
}

/* How deep n nests, counted no further than past the limit. */
static int s_depth(const sl_config_t *n)
{
    return s_depth_from(n, 0);
}

static bool s_oom(const sl_config_t *n)
{
    sl_config_error(n, "out of memory");
    return false;
}

static bool s_parse_choice(sl_synth_field_t *f, const sl_config_t *v,
                           const sl_config_t *weights)
{
    size_t n = sl_config_len(v);
    if (sl_config_type(v) != SL_CONFIG_SEQ || n == 0 || n > S_MAX_CHOICES) {
        sl_config_error(v, "fields.%s.choice: expected a list of 1 to %d "
                        "values", f->name, S_MAX_CHOICES);
        return false;
    }
    if (weights && (sl_config_type(weights) != SL_CONFIG_SEQ ||
                    sl_config_len(weights) != n)) {
        sl_config_error(weights, "fields.%s.weights: expected a list of %zu "
                        "numbers, one per choice", f->name, n);
        return false;
    }
    f->n = n;
    f->offs = calloc(n + 1, sizeof(*f->offs));
    f->cum = calloc(n, sizeof(*f->cum));
    if (!f->offs || !f->cum)
        return s_oom(v);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &f->packed, msgpack_sbuffer_write);
    double total = 0;
    for (size_t i = 0; i < n; i++) {
        const sl_config_t *c = sl_config_at(v, i);
        if (s_depth(c) > S_MAX_CONST_DEPTH) {
            sl_config_error(c, "fields.%s.choice: nested too deep", f->name);
            return false;
        }
        f->offs[i] = f->packed.size;
        if (sl__synth_pack_node(&pk, c))
            return s_oom(v);
        double w = 1;
        if (weights) {
            const sl_config_t *wn = sl_config_at(weights, i);
            if (sl_config_double(wn, &w) != 0 || !isfinite(w) || w < 0) {
                sl_config_error(wn, "fields.%s.weights: each weight must be "
                                "a number >= 0", f->name);
                return false;
            }
        }
        total += w;
        f->cum[i] = total;
    }
    f->offs[n] = f->packed.size;
    if (!(total > 0)) {
        sl_config_error(weights, "fields.%s.weights: the weights add up to "
                        "0", f->name);
        return false;
    }
    return true;
}

static bool s_parse_timestamp(sl_synth_field_t *f, const sl_config_t *v,
                              uint64_t now_ns)
{
    static const char *const keys[] = {"start", "unit", "format", NULL};
    static const char *const units[] = {"ns", "us", "ms", "s"};
    static const int64_t mult[] = {1, 1000, 1000000, 1000000000};
    f->unit_ns = 1000000;
    f->start_ns = (int64_t)now_ns;
    if (sl_config_type(v) == SL_CONFIG_NULL)
        return true;
    if (sl_config_type(v) != SL_CONFIG_MAP) {
        sl_config_error(v, "fields.%s.timestamp: expected a map (start, "
                        "unit, format) or nothing", f->name);
        return false;
    }
    if (!s_keys(f->name, "timestamp", v, keys))
        return false;
    const sl_config_t *un = sl_config_get(v, "unit");
    if (un) {
        const char *u = sl_config_str(un);
        size_t i = 0;
        while (i < 4 && (!u || strcmp(u, units[i])))
            i++;
        if (i == 4) {
            sl_config_error(un, "fields.%s.timestamp: 'unit' must be s, ms, "
                            "us or ns", f->name);
            return false;
        }
        f->unit_ns = mult[i];
    }
    const sl_config_t *fm = sl_config_get(v, "format");
    if (fm) {
        const char *s = sl_config_str(fm);
        if (!s || (strcmp(s, "int") && strcmp(s, "rfc3339"))) {
            sl_config_error(fm, "fields.%s.timestamp: 'format' must be int "
                            "or rfc3339", f->name);
            return false;
        }
        f->rfc3339 = !strcmp(s, "rfc3339");
    }
    const sl_config_t *sn = sl_config_get(v, "start");
    int64_t iv;
    if (!sn || (sl_config_str(sn) && !strcmp(sl_config_str(sn), "now")))
        return true;
    if (sl_config_int(sn, &iv) == 0) {
        if (iv < 0 || iv > INT64_MAX / 2 / f->unit_ns) {
            sl_config_error(sn, "fields.%s.timestamp: 'start' is out of "
                            "range", f->name);
            return false;
        }
        f->start_ns = iv * f->unit_ns;
        return true;
    }
    const char *t = sl_config_str(sn);
    if (sl_config_type(sn) == SL_CONFIG_STRING &&
        sl__time_parse_rfc3339(t, strlen(t), &iv) == 0 && iv >= 0) {
        f->start_ns = iv;
        return true;
    }
    sl_config_error(sn, "fields.%s.timestamp: 'start' must be now, an "
                    "integer in the unit since 1970, or an RFC 3339 time "
                    "such as 2024-05-01T12:00:00Z", f->name);
    return false;
}

static bool s_parse_string(sl_synth_field_t *f, const sl_config_t *v)
{
    static const char *const keys[] = {"pattern", "min", "max", NULL};
    const sl_config_t *pn = v;
    if (sl_config_type(v) == SL_CONFIG_MAP) {
        if (!s_keys(f->name, "string", v, keys))
            return false;
        pn = sl_config_get(v, "pattern");
        if (!pn) {
            sl_config_error(v, "fields.%s.string: missing 'pattern'",
                            f->name);
            return false;
        }
        if (sl_config_get(v, "min") || sl_config_get(v, "max")) {
            if (!s_range_int(f, v, "string"))
                return false;
            f->ranged = 1;
        }
    }
    const char *text = sl_config_str(pn);
    if (!text || sl_config_type(pn) == SL_CONFIG_NULL) {
        sl_config_error(pn, "fields.%s.string: the pattern must be a "
                        "string", f->name);
        return false;
    }
    char why[160];
    f->pat = sl__synth_pattern_new(text, why, sizeof(why));
    if (!f->pat) {
        sl_config_error(pn, "fields.%s.string: bad pattern \"%.60s\": %s",
                        f->name, text, why);
        return false;
    }
    if (f->ranged && !sl__synth_pattern_has_number(f->pat)) {
        sl_config_error(pn, "fields.%s.string: 'min' and 'max' fill a %%d, "
                        "and the pattern has none", f->name);
        return false;
    }
    f->buf = malloc(sl__synth_pattern_max(f->pat) + 1);
    return f->buf || s_oom(pn);
}

static bool s_parse_gen(sl_synth_field_t *f, const sl_config_t *v,
                        uint64_t now_ns)
{
    static const char *const seq_keys[] = {"start", "step", NULL};
    static const char *const range_keys[] = {"min", "max", NULL};
    static const char *const float_keys[] = {"min", "max", "decimals", NULL};
    sl_config_type_t t = sl_config_type(v);
    const char *gen = s_gen_names[f->gen];
    if ((f->gen == G_SEQ || f->gen == G_INT || f->gen == G_FLOAT) &&
        t != SL_CONFIG_MAP && !(f->gen == G_SEQ && t == SL_CONFIG_NULL)) {
        sl_config_error(v, "fields.%s.%s: expected a map of its settings",
                        f->name, gen);
        return false;
    }
    switch (f->gen) {
    case G_SEQ:
        f->a = 0;
        f->b = 1;
        return t == SL_CONFIG_NULL ||
               (s_keys(f->name, gen, v, seq_keys) &&
                (!sl_config_get(v, "start") ||
                 s_int(f->name, "start", sl_config_get(v, "start"), &f->a)) &&
                (!sl_config_get(v, "step") ||
                 s_int(f->name, "step", sl_config_get(v, "step"), &f->b)));
    case G_INT:
        return s_keys(f->name, gen, v, range_keys) && s_range_int(f, v, gen);
    case G_FLOAT: {
        const sl_config_t *mn = sl_config_get(v, "min");
        const sl_config_t *mx = sl_config_get(v, "max");
        const sl_config_t *dn = sl_config_get(v, "decimals");
        if (!s_keys(f->name, gen, v, float_keys))
            return false;
        if (!mn || !mx) {
            sl_config_error(v, "fields.%s.float: needs 'min' and 'max'",
                            f->name);
            return false;
        }
        if (!s_num(f->name, "min", mn, &f->fmin) ||
            !s_num(f->name, "max", mx, &f->fmax))
            return false;
        if (f->fmin > f->fmax) {
            sl_config_error(mx, "fields.%s.float: 'max' (%g) is below 'min' "
                            "(%g)", f->name, f->fmax, f->fmin);
            return false;
        }
        int64_t d;
        if (dn && (sl_config_int(dn, &d) != 0 || d < 0 || d > 15)) {
            sl_config_error(dn, "fields.%s.float: 'decimals' must be an "
                            "integer from 0 to 15", f->name);
            return false;
        }
        f->scale = dn ? pow(10, (double)d) : 0;
        return true;
    }
    case G_CHOICE:
        return true; /* read with its weights by the caller */
    case G_TIMESTAMP:
        return s_parse_timestamp(f, v, now_ns);
    case G_STRING:
        return s_parse_string(f, v);
    case G_CONST: {
        if (s_depth(v) > S_MAX_CONST_DEPTH) {
            sl_config_error(v, "fields.%s.const: nested too deep", f->name);
            return false;
        }
        msgpack_packer pk;
        msgpack_packer_init(&pk, &f->packed, msgpack_sbuffer_write);
        return sl__synth_pack_node(&pk, v) == 0 || s_oom(v);
    }
    }
    return false;
}

sl_synth_field_t *sl__synth_field_parse(const char *name,
                                        const sl_config_t *n,
                                        uint64_t now_ns)
{
    if (sl_config_type(n) != SL_CONFIG_MAP) {
        sl_config_error(n, "fields.%s: expected a map with one generator "
                        "(seq, int, float, choice, timestamp, string or "
                        "const)", name);
        return NULL;
    }
    sl_synth_field_t *f = calloc(1, sizeof(*f));
    if (!f || !(f->name = strdup(name))) {
        free(f);
        sl_config_error(n, "out of memory");
        return NULL;
    }
    msgpack_sbuffer_init(&f->packed);
    const sl_config_t *gen_node = NULL, *weights = NULL, *missing = NULL;
    bool ok = true;
    for (size_t i = 0; i < sl_config_len(n); i++) {
        const char *k = sl_config_key_at(n, i);
        const sl_config_t *kn = sl__config_key_node_at(n, i);
        size_t g = 0;
        while (g < S_N_GENS && strcmp(s_gen_names[g], k))
            g++;
        if (g < S_N_GENS) {
            if (gen_node) {
                sl_config_error(kn, "fields.%s: one generator per field, "
                                "found '%s' and '%s'", name,
                                s_gen_names[f->gen], k);
                ok = false;
            }
            f->gen = (s_gen_t)g;
            gen_node = sl_config_value_at(n, i);
        } else if (!strcmp(k, "weights")) {
            weights = sl_config_value_at(n, i);
        } else if (!strcmp(k, "missing")) {
            missing = sl_config_value_at(n, i);
        } else {
            sl_config_error(kn, "fields.%s: unknown key '%s' (a generator: "
                            "seq, int, float, choice, timestamp, string, "
                            "const; or missing, weights)", name, k);
            ok = false;
        }
    }
    if (ok && !gen_node) {
        sl_config_error(n, "fields.%s: no generator (seq, int, float, "
                        "choice, timestamp, string or const)", name);
        ok = false;
    }
    if (ok && weights && f->gen != G_CHOICE) {
        sl_config_error(weights, "fields.%s: 'weights' goes with 'choice' "
                        "only", name);
        ok = false;
    }
    if (ok && missing &&
        (sl_config_double(missing, &f->missing) != 0 ||
         !(f->missing >= 0 && f->missing <= 1))) {
        sl_config_error(missing, "fields.%s: 'missing' must be a "
                        "probability from 0 to 1", name);
        ok = false;
    }
    if (ok)
        ok = s_parse_gen(f, gen_node, now_ns);
    if (ok && f->gen == G_CHOICE)
        ok = s_parse_choice(f, gen_node, weights);
    if (!ok) {
        sl__synth_field_free(f);
        return NULL;
    }
    return f;
}

void sl__synth_field_free(sl_synth_field_t *f)
{
    if (!f)
        return;
    free(f->name);
    msgpack_sbuffer_destroy(&f->packed);
    free(f->offs);
    free(f->cum);
    sl__synth_pattern_free(f->pat);
    free(f->buf);
    free(f);
}

/* ---- making values ------------------------------------------------------------ */

void sl__synth_field_reset(sl_synth_field_t *f, uint64_t seed)
{
    sl__synth_rng_seed(&f->rng, seed, f->name);
}

bool sl__synth_field_present(sl_synth_field_t *f)
{
    return f->missing <= 0 || sl__synth_rng_unit(&f->rng) >= f->missing;
}

static int64_t s_int_in(sl_synth_rng_t *r, int64_t lo, int64_t hi)
{
    uint64_t span = (uint64_t)hi - (uint64_t)lo;
    return (int64_t)((uint64_t)lo + sl__synth_rng_upto(r, span));
}

int sl__synth_field_pack(sl_synth_field_t *f, msgpack_packer *pk, uint64_t k,
                         uint64_t offset_ns)
{
    int rc = msgpack_pack_str_with_body(pk, f->name, strlen(f->name));
    switch (f->gen) {
    case G_SEQ:
        /* Wraps around rather than overflow. */
        rc |= msgpack_pack_int64(pk, (int64_t)((uint64_t)f->a +
                                               k * (uint64_t)f->b));
        break;
    case G_INT:
        rc |= msgpack_pack_int64(pk, s_int_in(&f->rng, f->a, f->b));
        break;
    case G_FLOAT: {
        double v = f->fmin + (f->fmax - f->fmin) * sl__synth_rng_unit(&f->rng);
        if (f->scale)
            v = round(v * f->scale) / f->scale;
        rc |= msgpack_pack_double(pk, v);
        break;
    }
    case G_CHOICE: {
        double x = sl__synth_rng_unit(&f->rng) * f->cum[f->n - 1];
        size_t lo = 0, hi = f->n - 1;
        while (lo < hi) { /* the first running total above x */
            size_t mid = (lo + hi) / 2;
            if (f->cum[mid] > x)
                hi = mid;
            else
                lo = mid + 1;
        }
        rc |= msgpack_sbuffer_write(pk->data, f->packed.data + f->offs[lo],
                                    f->offs[lo + 1] - f->offs[lo]);
        break;
    }
    case G_TIMESTAMP: {
        int64_t ns = f->start_ns + (int64_t)offset_ns;
        if (f->rfc3339) {
            char buf[64];
            unsigned digits = f->unit_ns == 1000000000 ? 0
                              : f->unit_ns == 1000000  ? 3
                              : f->unit_ns == 1000     ? 6
                                                       : 9;
            size_t n = sl__time_format_rfc3339(ns - ns % f->unit_ns, digits,
                                               buf, sizeof(buf));
            rc |= msgpack_pack_str_with_body(pk, buf, n);
        } else {
            rc |= msgpack_pack_int64(pk, ns / f->unit_ns);
        }
        break;
    }
    case G_STRING: {
        int64_t num = f->ranged ? s_int_in(&f->rng, f->a, f->b) : (int64_t)k;
        size_t n = sl__synth_pattern_make(f->pat, &f->rng, num, f->buf,
                                          sl__synth_pattern_max(f->pat) + 1);
        rc |= msgpack_pack_str_with_body(pk, f->buf, n);
        break;
    }
    case G_CONST:
        rc |= msgpack_sbuffer_write(pk->data, f->packed.data, f->packed.size);
        break;
    }
    return rc ? -ENOMEM : 0;
}

int sl__synth_pack_node(msgpack_packer *pk, const sl_config_t *n)
{
    const char *t = sl_config_str(n);
    int64_t i;
    double d;
    int b;
    switch (sl_config_type(n)) {
    case SL_CONFIG_NULL:
        return msgpack_pack_nil(pk);
    case SL_CONFIG_BOOL:
        sl_config_bool(n, &b);
        return b ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
    case SL_CONFIG_INT:
        if (sl_config_int(n, &i) == 0)
            return msgpack_pack_int64(pk, i);
        /* Beyond int64: keep the text rather than lose digits. */
        return msgpack_pack_str_with_body(pk, t, strlen(t));
    case SL_CONFIG_FLOAT:
        sl_config_double(n, &d);
        return msgpack_pack_double(pk, d);
    case SL_CONFIG_STRING:
        return msgpack_pack_str_with_body(pk, t, strlen(t));
    case SL_CONFIG_SEQ:
        if (msgpack_pack_array(pk, sl_config_len(n)))
            return -1;
        for (size_t k = 0; k < sl_config_len(n); k++)
            if (sl__synth_pack_node(pk, sl_config_at(n, k)))
                return -1;
        return 0;
    case SL_CONFIG_MAP:
        if (msgpack_pack_map(pk, sl_config_len(n)))
            return -1;
        for (size_t k = 0; k < sl_config_len(n); k++) {
            const char *key = sl_config_key_at(n, k);
            if (msgpack_pack_str_with_body(pk, key, strlen(key)) ||
                sl__synth_pack_node(pk, sl_config_value_at(n, k)))
                return -1;
        }
        return 0;
    }
    return -1;
}
