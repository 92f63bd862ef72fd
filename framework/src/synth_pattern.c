/* Synthetic traffic: string patterns such as "user-%04d" or
 * "[a-z]{8}" (see synth_int.h and docs/replay.md). Not a regex: literal
 * characters, classes, repeat counts and number placeholders only. */
#include "synth_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_MAX_REPEAT 1024
#define S_MAX_LEN 65536
#define S_MAX_TOKENS 4096

typedef struct s_tok {
    int number;           /* a %d placeholder */
    unsigned width;       /* %Nd / %0Nd */
    int zero;
    unsigned char *set;   /* class members (one for a literal) */
    unsigned n_set;
    unsigned min, max;    /* repeats */
} s_tok_t;

struct sl_synth_pattern {
    s_tok_t *toks;
    size_t n;
    size_t max_len;
    bool has_number;
};

static void s_why(char *why, size_t len, size_t at, const char *msg)
{
    snprintf(why, len, "at character %zu: %s", at + 1, msg);
}

static s_tok_t *s_push(sl_synth_pattern_t *p)
{
    if (p->n >= S_MAX_TOKENS)
        return NULL;
    s_tok_t *t = realloc(p->toks, (p->n + 1) * sizeof(*t));
    if (!t)
        return NULL;
    p->toks = t;
    t = &p->toks[p->n++];
    memset(t, 0, sizeof(*t));
    t->min = t->max = 1;
    return t;
}

static bool s_set_add(s_tok_t *t, unsigned lo, unsigned hi, bool *seen)
{
    for (unsigned c = lo; c <= hi; c++)
        if (!seen[c]) {
            seen[c] = true;
            t->set[t->n_set++] = (unsigned char)c;
        }
    return true;
}

/* \d, \w, or an escaped literal; -1 if unknown. For \d and \w lo..hi are
 * not used: the caller adds the set. */
static int s_escape(char c)
{
    return strchr("\\[]{}%-^", c) ? c : -1;
}

static bool s_class_escape(s_tok_t *t, char c, bool *seen)
{
    if (c == 'd')
        return s_set_add(t, '0', '9', seen);
    if (c == 'w') {
        s_set_add(t, '0', '9', seen);
        s_set_add(t, 'A', 'Z', seen);
        s_set_add(t, '_', '_', seen);
        return s_set_add(t, 'a', 'z', seen);
    }
    return false;
}

/* Parses "[...]" starting at s[*i] == '['. */
static bool s_class(const char *s, size_t *i, s_tok_t *t, char *why,
                    size_t wl)
{
    size_t start = *i;
    bool seen[256] = {false};
    size_t k = start + 1;
    if (s[k] == '^') {
        s_why(why, wl, k, "negated classes ([^...]) are not supported");
        return false;
    }
    while (s[k] && s[k] != ']') {
        unsigned lo;
        if (s[k] == '\\') {
            if (s_class_escape(t, s[k + 1], seen)) {
                k += 2;
                continue;
            }
            if (!s[k + 1] || s_escape(s[k + 1]) < 0) {
                s_why(why, wl, k, "unknown escape");
                return false;
            }
            lo = (unsigned char)s[k + 1];
            k += 2;
        } else {
            lo = (unsigned char)s[k++];
        }
        unsigned hi = lo;
        if (s[k] == '-' && s[k + 1] && s[k + 1] != ']') {
            hi = (unsigned char)s[k + 1];
            if (hi == '\\') {
                s_why(why, wl, k + 1, "an escape cannot end a range");
                return false;
            }
            if (hi < lo) {
                s_why(why, wl, k - 1, "range out of order");
                return false;
            }
            k += 2;
        }
        s_set_add(t, lo, hi, seen);
    }
    if (s[k] != ']') {
        s_why(why, wl, start, "'[' without ']'");
        return false;
    }
    if (!t->n_set) {
        s_why(why, wl, start, "empty class");
        return false;
    }
    *i = k + 1;
    return true;
}

/* "{n}" or "{n,m}" at s[*i] == '{'. */
static bool s_repeat(const char *s, size_t *i, s_tok_t *t, char *why,
                     size_t wl)
{
    size_t start = *i;
    char *end;
    unsigned long a = strtoul(s + start + 1, &end, 10), b = a;
    if (end == s + start + 1 || !(s[start + 1] >= '0' && s[start + 1] <= '9'))
        goto bad;
    if (*end == ',') {
        const char *q = end + 1;
        if (!(*q >= '0' && *q <= '9'))
            goto bad;
        b = strtoul(q, &end, 10);
    }
    if (*end != '}')
        goto bad;
    if (a > b || b > S_MAX_REPEAT) {
        s_why(why, wl, start, "repeat counts must be n <= m <= 1024");
        return false;
    }
    t->min = (unsigned)a;
    t->max = (unsigned)b;
    *i = (size_t)(end - s) + 1;
    return true;
bad:
    s_why(why, wl, start, "expected a repeat count such as {8} or {2,5}");
    return false;
}

sl_synth_pattern_t *sl__synth_pattern_new(const char *s, char *why,
                                          size_t wl)
{
    sl_synth_pattern_t *p = calloc(1, sizeof(*p));
    if (!p)
        goto oom;
    size_t i = 0;
    while (s[i]) {
        char c = s[i];
        s_tok_t *t = s_push(p);
        if (!t) {
            if (p->n >= S_MAX_TOKENS) {
                s_why(why, wl, i, "the pattern is too long");
                goto fail;
            }
            goto oom;
        }
        if (c == '%') {
            if (s[i + 1] == '%') {
                t->set = malloc(1);
                if (!t->set)
                    goto oom;
                t->set[t->n_set++] = '%';
                i += 2;
            } else {
                size_t k = i + 1;
                t->zero = s[k] == '0';
                unsigned w = 0;
                while (s[k] >= '0' && s[k] <= '9' && w < 100)
                    w = w * 10 + (unsigned)(s[k++] - '0');
                if (s[k] != 'd') {
                    s_why(why, wl, i, "only %d, %Nd and %0Nd placeholders "
                          "(and %% for a percent sign)");
                    goto fail;
                }
                if (w > 30) {
                    s_why(why, wl, i, "a placeholder is at most 30 wide");
                    goto fail;
                }
                t->number = 1;
                t->width = w;
                p->has_number = true;
                i = k + 1;
                continue; /* no repeat count after a number */
            }
        } else if (c == '{') {
            s_why(why, wl, i, "a repeat count must follow a character or a "
                  "class (write \\{ for a brace)");
            goto fail;
        } else {
            t->set = malloc(256);
            if (!t->set)
                goto oom;
            if (c == '[') {
                if (!s_class(s, &i, t, why, wl))
                    goto fail;
            } else if (c == '\\') {
                bool seen[256] = {false};
                if (!s_class_escape(t, s[i + 1], seen)) {
                    if (!s[i + 1] || s_escape(s[i + 1]) < 0) {
                        s_why(why, wl, i, "unknown escape");
                        goto fail;
                    }
                    t->set[t->n_set++] = (unsigned char)s[i + 1];
                }
                i += 2;
            } else {
                t->set[t->n_set++] = (unsigned char)c;
                i++;
            }
        }
        if (s[i] == '{' && !s_repeat(s, &i, t, why, wl))
            goto fail;
    }
    for (size_t k = 0; k < p->n; k++)
        p->max_len += p->toks[k].number ? 32 : p->toks[k].max;
    if (p->max_len > S_MAX_LEN) {
        snprintf(why, wl, "the strings could be %zu bytes long (at most "
                 "%d)", p->max_len, S_MAX_LEN);
        goto fail;
    }
    return p;
oom:
    snprintf(why, wl, "out of memory");
fail:
    sl__synth_pattern_free(p);
    return NULL;
}

void sl__synth_pattern_free(sl_synth_pattern_t *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n; i++)
        free(p->toks[i].set);
    free(p->toks);
    free(p);
}

bool sl__synth_pattern_has_number(const sl_synth_pattern_t *p)
{
    return p->has_number;
}

size_t sl__synth_pattern_max(const sl_synth_pattern_t *p)
{
    return p->max_len;
}

size_t sl__synth_pattern_make(const sl_synth_pattern_t *p, sl_synth_rng_t *r,
                              int64_t num, char *buf, size_t len)
{
    size_t n = 0;
    if (!len)
        return 0;
    for (size_t i = 0; i < p->n; i++) {
        const s_tok_t *t = &p->toks[i];
        if (t->number) {
            char tmp[48];
            int w = snprintf(tmp, sizeof(tmp), t->zero ? "%0*" PRId64
                                                       : "%*" PRId64,
                             (int)t->width, num);
            for (int k = 0; k < w && n + 1 < len; k++)
                buf[n++] = tmp[k];
            continue;
        }
        /* Fixed parts draw nothing, so literal text costs no randomness. */
        unsigned reps = t->min;
        if (t->max > t->min)
            reps += (unsigned)sl__synth_rng_upto(r, t->max - t->min);
        for (unsigned k = 0; k < reps && n + 1 < len; k++)
            buf[n++] = (char)(t->n_set == 1
                                  ? t->set[0]
                                  : t->set[sl__synth_rng_upto(r,
                                                              t->n_set - 1)]);
    }
    buf[n] = '\0';
    return n;
}
