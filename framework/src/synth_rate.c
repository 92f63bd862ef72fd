/* Synthetic traffic: randomness, durations and rates, and the rate shape
 * that places each record in time (see synth_int.h). */
#include "synth_int.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_MAX_RATE 1e9       /* records per second */
#define S_MAX_STEPS 10000
#define S_NS_PER_S 1e9

/* ---- randomness ------------------------------------------------------------ */

static uint64_t s_splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void sl__synth_rng_seed(sl_synth_rng_t *r, uint64_t seed, const char *name)
{
    /* FNV-1a of the stream name, so each stream differs for one seed. */
    uint64_t h = 0xcbf29ce484222325ull;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        h = (h ^ *p) * 0x100000001b3ull;
    uint64_t x = seed ^ h;
    for (int i = 0; i < 4; i++)
        r->s[i] = s_splitmix(&x);
}

static uint64_t s_rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t sl__synth_rng_next(sl_synth_rng_t *r)
{
    uint64_t *s = r->s;
    uint64_t out = s_rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = s_rotl(s[3], 45);
    return out;
}

double sl__synth_rng_unit(sl_synth_rng_t *r)
{
    return (double)(sl__synth_rng_next(r) >> 11) * 0x1.0p-53;
}

uint64_t sl__synth_rng_upto(sl_synth_rng_t *r, uint64_t n)
{
    if (n == UINT64_MAX)
        return sl__synth_rng_next(r);
    uint64_t span = n + 1;
    /* Rejection keeps every value equally likely. */
    uint64_t limit = UINT64_MAX - UINT64_MAX % span;
    uint64_t x;
    do
        x = sl__synth_rng_next(r);
    while (x >= limit);
    return x % span;
}

/* ---- durations and rates --------------------------------------------------- */

static const char *s_shown(const sl_config_t *n, char *buf, size_t len)
{
    const char *t = sl_config_str(n);
    if (!t)
        snprintf(buf, len, "a %s", sl__config_type_name(sl_config_type(n)));
    else
        snprintf(buf, len, "'%.60s'", t);
    return buf;
}

/* A decimal number with a unit from the table: v * unit. */
static bool s_number_unit(const char *text, const char *const *units,
                          const double *mult, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (end == text || errno || !isfinite(v) || v < 0 ||
        !(*text >= '0' && *text <= '9') )
        return false;
    for (size_t i = 0; units[i]; i++)
        if (strcmp(end, units[i]) == 0) {
            *out = v * mult[i];
            return true;
        }
    return false;
}

bool sl__synth_duration(const sl_config_t *n, const char *what, uint64_t *ns)
{
    static const char *const units[] = {"ns", "us", "ms", "s", "m", "h",
                                        NULL};
    static const double mult[] = {1, 1e3, 1e6, 1e9, 60e9, 3600e9};
    char buf[96];
    double v = -1;
    sl_config_type_t t = sl_config_type(n);
    if (t == SL_CONFIG_INT || t == SL_CONFIG_FLOAT) {
        if (sl_config_double(n, &v) == 0 && v >= 0)
            v *= 1e6;
        else
            v = -1;
    } else if (t == SL_CONFIG_STRING &&
               !s_number_unit(sl_config_str(n), units, mult, &v)) {
        v = -1;
    }
    if (v < 0) {
        sl_config_error(n, "%s: expected a duration such as 500ms, 10s or "
                        "2m (a bare number is milliseconds), got %s", what,
                        s_shown(n, buf, sizeof(buf)));
        return false;
    }
    if (v > 366 * 24 * 3600e9) {
        sl_config_error(n, "%s: %s is longer than a year", what,
                        s_shown(n, buf, sizeof(buf)));
        return false;
    }
    *ns = (uint64_t)llround(v);
    return true;
}

bool sl__synth_rate(const sl_config_t *n, const char *what, double *per_s)
{
    static const char *const units[] = {"/s", "/m", "/h", "/ms", NULL};
    static const double mult[] = {1, 1.0 / 60, 1.0 / 3600, 1000};
    char buf[96];
    double v = -1;
    sl_config_type_t t = sl_config_type(n);
    if (t == SL_CONFIG_INT || t == SL_CONFIG_FLOAT) {
        if (sl_config_double(n, &v) != 0 || !(v >= 0))
            v = -1;
    } else if (t == SL_CONFIG_STRING &&
               !s_number_unit(sl_config_str(n), units, mult, &v)) {
        v = -1;
    }
    if (v < 0) {
        sl_config_error(n, "%s: expected a rate such as 100/s, 6000/m or "
                        "2.5/s (a bare number is per second), got %s", what,
                        s_shown(n, buf, sizeof(buf)));
        return false;
    }
    if (v > S_MAX_RATE) {
        sl_config_error(n, "%s: %s is above the limit of 1e9/s", what,
                        s_shown(n, buf, sizeof(buf)));
        return false;
    }
    *per_s = v;
    return true;
}

/* ---- shapes ------------------------------------------------------------------ */

typedef struct s_shape {
    const char *name;
    const char *const *keys;      /* accepted */
    const char *const *required;
} s_shape_t;

static const char *const s_constant_keys[] = {"rate", "duration", NULL};
static const char *const s_ramp_keys[] = {"from", "to", "duration", NULL};
static const char *const s_step_keys[] = {"rates", "every", "duration",
                                          NULL};
static const char *const s_spike_keys[] = {"base", "peak", "at", "length",
                                           "duration", NULL};
static const char *const s_constant_req[] = {"rate", NULL};
static const char *const s_step_req[] = {"rates", "every", NULL};
static const char *const s_spike_req[] = {"base", "peak", "at", "length",
                                          NULL};

static const s_shape_t s_shapes[] = {
    {"constant", s_constant_keys, s_constant_req},
    {"ramp", s_ramp_keys, s_ramp_keys},
    {"step", s_step_keys, s_step_req},
    {"spike", s_spike_keys, s_spike_req},
};

/* Checks keys of a shape's map against its table; false if any problem. */
static bool s_check_keys(const sl_config_t *m, const s_shape_t *sh)
{
    bool ok = true;
    for (size_t i = 0; i < sl_config_len(m); i++) {
        const char *k = sl_config_key_at(m, i);
        bool known = false;
        for (const char *const *a = sh->keys; *a && !known; a++)
            known = strcmp(*a, k) == 0;
        if (!known) {
            char list[128] = "";
            for (const char *const *a = sh->keys; *a; a++)
                snprintf(list + strlen(list), sizeof(list) - strlen(list),
                         "%s%s", a == sh->keys ? "" : ", ", *a);
            sl_config_error(sl__config_key_node_at(m, i), "rate.%s: unknown "
                            "key '%s' (expected %s)", sh->name, k, list);
            ok = false;
        }
    }
    for (const char *const *r = sh->required; *r; r++)
        if (!sl_config_get(m, *r)) {
            sl_config_error(m, "rate.%s: missing '%s'", sh->name, *r);
            ok = false;
        }
    return ok;
}

static bool s_add(sl_synth_sched_t *s, double t0, double len, double r0,
                  double r1)
{
    sl_synth_seg_t *g = realloc(s->segs, (s->n_segs + 1) * sizeof(*g));
    if (!g)
        return false;
    s->segs = g;
    double lam0 = 0;
    if (s->n_segs) {
        const sl_synth_seg_t *p = &g[s->n_segs - 1];
        lam0 = p->lam0 + (p->r0 + p->r1) / 2 * (p->len / S_NS_PER_S);
    }
    g[s->n_segs++] = (sl_synth_seg_t){t0, len, r0, r1, lam0};
    return true;
}

static bool s_oom(const sl_config_t *n)
{
    sl_config_error(n, "out of memory");
    return false;
}

/* Reads the shape's parameters into segments. */
static bool s_build(sl_synth_sched_t *s, const s_shape_t *sh,
                    const sl_config_t *m)
{
    char what[64];
#define W(key) (snprintf(what, sizeof(what), "rate.%s.%s", sh->name, key), \
                what)
    const sl_config_t *dn = sl_config_get(m, "duration");
    uint64_t dur = 0;
    if (dn && (!sl__synth_duration(dn, W("duration"), &dur)))
        return false;
    if (dn && dur == 0) {
        sl_config_error(dn, "%s: must be above 0", W("duration"));
        return false;
    }
    s->own_end_ns = dur;
    if (!strcmp(sh->name, "constant")) {
        double r;
        const sl_config_t *rn = sl_config_get(m, "rate");
        if (!sl__synth_rate(rn, W("rate"), &r))
            return false;
        if (r <= 0) {
            sl_config_error(rn, "%s: must be above 0", W("rate"));
            return false;
        }
        return s_add(s, 0, INFINITY, r, r) || s_oom(m);
    }
    if (!strcmp(sh->name, "ramp")) {
        double from, to;
        if (!sl__synth_rate(sl_config_get(m, "from"), W("from"), &from) ||
            !sl__synth_rate(sl_config_get(m, "to"), W("to"), &to))
            return false;
        if (from == 0 && to == 0) {
            sl_config_error(m, "rate.ramp: 'from' and 'to' are both 0: no "
                            "records");
            return false;
        }
        return (s_add(s, 0, (double)dur, from, to) &&
                s_add(s, (double)dur, INFINITY, to, to)) ||
               s_oom(m);
    }
    if (!strcmp(sh->name, "step")) {
        const sl_config_t *rates = sl_config_get(m, "rates");
        const sl_config_t *en = sl_config_get(m, "every");
        uint64_t every;
        size_t nr = sl_config_len(rates);
        if (sl_config_type(rates) != SL_CONFIG_SEQ || nr == 0 ||
            nr > S_MAX_STEPS) {
            sl_config_error(rates, "rate.step.rates: expected a list of 1 "
                            "to %d rates", S_MAX_STEPS);
            return false;
        }
        if (!sl__synth_duration(en, W("every"), &every))
            return false;
        if (every == 0) {
            sl_config_error(en, "rate.step.every: must be above 0");
            return false;
        }
        double sum = 0;
        for (size_t i = 0; i < nr; i++) {
            double r;
            char w2[64];
            snprintf(w2, sizeof(w2), "rate.step.rates[%zu]", i);
            if (!sl__synth_rate(sl_config_at(rates, i), w2, &r))
                return false;
            sum += r;
            bool last = i + 1 == nr;
            if (!s_add(s, (double)every * (double)i,
                       last ? INFINITY : (double)every, r, r))
                return s_oom(m);
        }
        if (sum == 0) {
            sl_config_error(rates, "rate.step.rates: every rate is 0: no "
                            "records");
            return false;
        }
        if (!dn)
            s->own_end_ns = every * nr;
        return true;
    }
    /* spike */
    double base, peak;
    uint64_t at, length;
    const sl_config_t *pn = sl_config_get(m, "peak");
    const sl_config_t *ln = sl_config_get(m, "length");
    if (!sl__synth_rate(sl_config_get(m, "base"), W("base"), &base) ||
        !sl__synth_rate(pn, W("peak"), &peak) ||
        !sl__synth_duration(sl_config_get(m, "at"), W("at"), &at) ||
        !sl__synth_duration(ln, W("length"), &length))
        return false;
    if (peak <= 0) {
        sl_config_error(pn, "rate.spike.peak: must be above 0");
        return false;
    }
    if (length == 0) {
        sl_config_error(ln, "rate.spike.length: must be above 0");
        return false;
    }
    bool ok = true;
    if (at)
        ok = s_add(s, 0, (double)at, base, base);
    ok = ok && s_add(s, (double)at, (double)length, peak, peak) &&
         s_add(s, (double)(at + length), INFINITY, base, base);
    return ok || s_oom(m);
#undef W
}

bool sl__synth_sched_parse(sl_synth_sched_t *s, const sl_config_t *n)
{
    memset(s, 0, sizeof(*s));
    if (sl_config_type(n) != SL_CONFIG_MAP) {
        /* `rate: 100/s`: a constant rate. */
        double r;
        if (!sl__synth_rate(n, "rate", &r))
            return false;
        if (r <= 0) {
            sl_config_error(n, "rate: must be above 0");
            return false;
        }
        return s_add(s, 0, INFINITY, r, r) || s_oom(n);
    }
    if (sl_config_len(n) != 1) {
        sl_config_error(n, "rate: expected one shape (constant, ramp, step "
                        "or spike), found %zu keys", sl_config_len(n));
        return false;
    }
    const char *name = sl_config_key_at(n, 0);
    const sl_config_t *m = sl_config_value_at(n, 0);
    for (size_t i = 0; i < sizeof(s_shapes) / sizeof(s_shapes[0]); i++) {
        const s_shape_t *sh = &s_shapes[i];
        if (strcmp(sh->name, name))
            continue;
        if (sl_config_type(m) != SL_CONFIG_MAP) {
            sl_config_error(m, "rate.%s: expected a map of its settings",
                            name);
            return false;
        }
        if (!s_check_keys(m, sh) || !s_build(s, sh, m)) {
            sl__synth_sched_fini(s);
            return false;
        }
        return true;
    }
    sl_config_error(sl__config_key_node_at(n, 0), "rate: unknown shape '%s' "
                    "(expected constant, ramp, step or spike)", name);
    return false;
}

void sl__synth_sched_reset(sl_synth_sched_t *s, uint64_t seed)
{
    s->seg = 0;
    s->target = 0;
    sl__synth_rng_seed(&s->rng, seed, "\x01arrivals");
}

bool sl__synth_sched_next(sl_synth_sched_t *s, double *t_ns)
{
    /* The k-th record sits where the curve's running count reaches the
     * target: k for even arrivals, a sum of k exponential gaps for
     * Poisson ones. */
    double target = s->target;
    while (s->seg + 1 < s->n_segs) {
        const sl_synth_seg_t *g = &s->segs[s->seg];
        double lam_end = g->lam0 + (g->r0 + g->r1) / 2 * (g->len / S_NS_PER_S);
        if (target < lam_end)
            break;
        s->seg++;
    }
    const sl_synth_seg_t *g = &s->segs[s->seg];
    double d = target - g->lam0;
    double u; /* ns into the segment */
    if (g->r0 == g->r1) {
        if (g->r0 <= 0)
            return false; /* the last piece has rate 0: nothing more */
        u = d * S_NS_PER_S / g->r0;
    } else {
        double a = (g->r1 - g->r0) / (2 * (g->len / S_NS_PER_S));
        double disc = g->r0 * g->r0 + 4 * a * d;
        double den = g->r0 + sqrt(disc > 0 ? disc : 0);
        u = den > 0 ? 2 * d * S_NS_PER_S / den : 0;
        if (u > g->len)
            u = g->len;
    }
    *t_ns = g->t0 + u;
    if (s->poisson)
        s->target += -log1p(-sl__synth_rng_unit(&s->rng));
    else
        s->target += 1;
    return true;
}

void sl__synth_sched_fini(sl_synth_sched_t *s)
{
    free(s->segs);
    s->segs = NULL;
    s->n_segs = 0;
}
