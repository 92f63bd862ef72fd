/* The Prometheus text format parser (promtext.h). The document keeps one
 * copy of the text; names and values point into it, NUL-terminated in
 * place (decoding an escape only ever shortens a string). */
#include "promtext.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct s_famx {
    int typed;        /* a TYPE line was seen */
    int helped;       /* a HELP line was seen */
    size_t n_samples;
} s_famx_t;

struct sl_prom_doc {
    char *buf;
    sl_prom_sample_t *samples;
    size_t n_samples, cap_samples;
    sl_prom_label_t *labels; /* every sample's labels, in order */
    size_t n_labels, cap_labels;
    sl_prom_family_t *families;
    s_famx_t *famx;
    size_t n_families, cap_families;
    size_t last_family; /* lookups mostly hit the family just used */
    sl_prom_error_t errors[SL_PROM_MAX_ERRORS];
    size_t n_errors;
};

/* ---- growing arrays ------------------------------------------------------ */

static int s_grow(void **arr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap * 2 : 16;
    while (n < need)
        n *= 2;
    void *p = realloc(*arr, n * elem);
    if (!p)
        return -ENOMEM;
    *arr = p;
    *cap = n;
    return 0;
}

/* Returns 1 so that a line parser can `return s_err(...)` to skip it. */
static int s_err(sl_prom_doc_t *d, size_t line, const char *fmt, ...)
{
    if (d->n_errors < SL_PROM_MAX_ERRORS) {
        sl_prom_error_t *e = &d->errors[d->n_errors];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
        va_end(ap);
        e->line = line;
    }
    d->n_errors++;
    return 1;
}

/* ---- lexing -------------------------------------------------------------- */

static int s_blank(char c)
{
    return c == ' ' || c == '\t';
}

static char *s_skip(char *p)
{
    while (s_blank(*p))
        p++;
    return p;
}

static int s_name_start(char c, int colon)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
           (colon && c == ':');
}

static int s_name_char(char c, int colon)
{
    return s_name_start(c, colon) || (c >= '0' && c <= '9');
}

/* The end of a metric name (colon 1) or label name (colon 0) at p; p
 * itself when there is none. */
static char *s_name_end(char *p, int colon)
{
    if (!s_name_start(*p, colon))
        return p;
    while (s_name_char(*p, colon))
        p++;
    return p;
}

/* A sample value: a float, +Inf/-Inf/NaN in any case. The token must be
 * all of tok. */
static int s_parse_value(const char *tok, double *out)
{
    const char *t = tok;
    int neg = 0;
    if (*t == '+' || *t == '-')
        neg = *t++ == '-';
    if (!strcasecmp(t, "inf") || !strcasecmp(t, "infinity")) {
        *out = neg ? -INFINITY : INFINITY;
        return 0;
    }
    if (!strcasecmp(t, "nan")) {
        *out = NAN;
        return 0;
    }
    /* strtod would also take hex floats and "nan(...)": not this format. */
    for (const char *c = t; *c; c++)
        if (!((*c >= '0' && *c <= '9') || *c == '.' || *c == 'e' ||
              *c == 'E' || *c == '+' || *c == '-'))
            return -EINVAL;
    char *end;
    errno = 0;
    double v = strtod(tok, &end);
    if (end == tok || *end || (errno == ERANGE && isinf(v)))
        return -EINVAL;
    *out = v;
    return 0;
}

static int s_parse_ts(const char *tok, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(tok, &end, 10);
    if (end == tok || *end || errno)
        return -EINVAL;
    *out = v;
    return 0;
}

/* ---- families ------------------------------------------------------------ */

static long s_find_family(sl_prom_doc_t *d, const char *name, size_t len)
{
    if (d->n_families) {
        const char *n = d->families[d->last_family].name;
        if (strlen(n) == len && !memcmp(n, name, len))
            return (long)d->last_family;
    }
    for (size_t i = 0; i < d->n_families; i++) {
        const char *n = d->families[i].name;
        if (strlen(n) == len && !memcmp(n, name, len)) {
            d->last_family = i;
            return (long)i;
        }
    }
    return -1;
}

static long s_add_family(sl_prom_doc_t *d, const char *name)
{
    size_t cap = d->cap_families;
    if (s_grow((void **)&d->families, &cap, d->n_families + 1,
               sizeof(*d->families)) < 0)
        return -ENOMEM;
    cap = d->cap_families;
    if (s_grow((void **)&d->famx, &cap, d->n_families + 1,
               sizeof(*d->famx)) < 0)
        return -ENOMEM;
    d->cap_families = cap;
    size_t i = d->n_families++;
    d->families[i] = (sl_prom_family_t){.name = name};
    d->famx[i] = (s_famx_t){0};
    d->last_family = i;
    return (long)i;
}

/* The family of a sample called name: its own, or for histograms and
 * summaries the one its suffix belongs to; a new untyped one if none. */
static long s_family_of(sl_prom_doc_t *d, const char *name)
{
    static const char *const suffixes[] = {"_bucket", "_sum", "_count",
                                           "_created"};
    size_t len = strlen(name);
    long f = s_find_family(d, name, len);
    if (f >= 0)
        return f;
    for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
        size_t sl = strlen(suffixes[i]);
        if (len <= sl || strcmp(name + len - sl, suffixes[i]))
            continue;
        f = s_find_family(d, name, len - sl);
        if (f < 0)
            continue;
        sl_prom_type_t t = d->families[f].type;
        if (t == SL_PROM_HISTOGRAM || (t == SL_PROM_SUMMARY && i > 0))
            return f;
    }
    return s_add_family(d, name);
}

/* ---- lines ----------------------------------------------------------------- */

/* "# HELP name text" / "# TYPE name type" / any other comment. p is just
 * past the '#'. Returns 0, 1 (reported), -ENOMEM. */
static int s_comment(sl_prom_doc_t *d, char *p, size_t line)
{
    p = s_skip(p);
    int help = !strncmp(p, "HELP", 4) && (s_blank(p[4]) || !p[4]);
    int type = !strncmp(p, "TYPE", 4) && (s_blank(p[4]) || !p[4]);
    if (!help && !type)
        return 0;
    p = s_skip(p + 4);
    char *name = p, *end = s_name_end(p, 1);
    if (end == name)
        return s_err(d, line, "%s without a metric name",
                     help ? "HELP" : "TYPE");
    if (*end && !s_blank(*end))
        return s_err(d, line, "bad character '%c' in metric name", *end);
    char *rest = *end ? end + 1 : end;
    *end = '\0';
    long f = s_find_family(d, name, strlen(name));
    if (help) {
        if (f >= 0 && d->famx[f].helped)
            return s_err(d, line, "second HELP for '%s'", name);
        /* Only \\ and \n are escapes in HELP; a stray backslash stays. */
        char *w = rest;
        for (char *r = rest; *r; r++) {
            if (*r == '\\' && (r[1] == '\\' || r[1] == 'n')) {
                *w++ = r[1] == 'n' ? '\n' : '\\';
                r++;
            } else {
                *w++ = *r;
            }
        }
        *w = '\0';
        if (f < 0 && (f = s_add_family(d, name)) < 0)
            return (int)f;
        d->families[f].help = rest;
        d->famx[f].helped = 1;
        return 0;
    }
    rest = s_skip(rest);
    char *tend = rest;
    while (*tend && !s_blank(*tend))
        tend++;
    if (*s_skip(tend))
        return s_err(d, line, "unexpected text after the type of '%s'", name);
    *tend = '\0';
    static const char *const names[] = {"untyped", "counter", "gauge",
                                        "histogram", "summary"};
    int t = -1;
    for (int i = 0; i < 5; i++)
        if (!strcmp(rest, names[i]))
            t = i;
    if (t < 0)
        return s_err(d, line, "unknown type '%.40s' for '%s'", rest, name);
    if (f >= 0 && d->famx[f].typed)
        return s_err(d, line, "second TYPE for '%s'", name);
    if (f >= 0 && d->famx[f].n_samples)
        return s_err(d, line, "TYPE for '%s' after its samples", name);
    if (f < 0 && (f = s_add_family(d, name)) < 0)
        return (int)f;
    d->families[f].type = (sl_prom_type_t)t;
    d->famx[f].typed = 1;
    return 0;
}

/* {a="x",b="y"}: p is just past the '{'. On success *pp is past the '}'. */
static int s_labels(sl_prom_doc_t *d, char **pp, size_t line, size_t first)
{
    char *p = *pp;
    for (;;) {
        p = s_skip(p);
        if (*p == '}')
            break;
        char *name = p, *end = s_name_end(p, 0);
        if (end == name)
            return *p ? s_err(d, line, "bad character '%c' in label name", *p)
                      : s_err(d, line, "unterminated label set");
        p = s_skip(end);
        if (*p != '=')
            return s_err(d, line, "expected '=' after label '%.*s'",
                         (int)(end - name > 40 ? 40 : end - name), name);
        p = s_skip(p + 1);
        *end = '\0';
        if (*p != '"')
            return s_err(d, line, "value of label '%s' is not quoted", name);
        char *w = ++p, *val = p;
        for (;;) {
            if (!*p)
                return s_err(d, line, "unterminated value of label '%s'",
                             name);
            if (*p == '"')
                break;
            if (*p == '\\') {
                char c = p[1];
                if (c != '\\' && c != '"' && c != 'n')
                    return s_err(d, line, "bad escape '\\%c' in label '%s'",
                                 c ? c : '0', name);
                *w++ = c == 'n' ? '\n' : c;
                p += 2;
            } else {
                *w++ = *p++;
            }
        }
        p++;
        *w = '\0';
        for (size_t i = first; i < d->n_labels; i++)
            if (!strcmp(d->labels[i].name, name))
                return s_err(d, line, "label '%s' given twice", name);
        if (s_grow((void **)&d->labels, &d->cap_labels, d->n_labels + 1,
                   sizeof(*d->labels)) < 0)
            return -ENOMEM;
        d->labels[d->n_labels++] = (sl_prom_label_t){name, val};
        p = s_skip(p);
        if (*p == ',')
            p++;
        else if (*p != '}')
            return *p ? s_err(d, line, "expected ',' or '}' after label '%s'",
                              name)
                      : s_err(d, line, "unterminated label set");
    }
    *pp = p + 1;
    return 0;
}

static int s_sample(sl_prom_doc_t *d, char *p, size_t line)
{
    char *name = p, *end = s_name_end(p, 1);
    if (end == name)
        return s_err(d, line, "bad character '%c' at the start of a line", *p);
    size_t first = d->n_labels;
    int rc;
    char after = *end;
    if (after == '{') {
        *end = '\0';
        p = end + 1;
        if ((rc = s_labels(d, &p, line, first)) != 0)
            goto undo;
    } else if (s_blank(after)) {
        *end = '\0';
        p = end + 1;
    } else if (after) {
        return s_err(d, line, "bad character '%c' in metric name", after);
    } else {
        return s_err(d, line, "metric '%s' has no value", name);
    }
    p = s_skip(p);
    char *tok = p;
    while (*p && !s_blank(*p))
        p++;
    char *tend = p;
    p = s_skip(p);
    *tend = '\0';
    sl_prom_sample_t s = {.name = name, .line = line};
    if (!*tok) {
        rc = s_err(d, line, "metric '%s' has no value", name);
        goto undo;
    }
    if (s_parse_value(tok, &s.value) < 0) {
        rc = s_err(d, line, "bad value '%.32s' for '%s'", tok, name);
        goto undo;
    }
    if (*p) {
        tok = p;
        while (*p && !s_blank(*p))
            p++;
        tend = p;
        p = s_skip(p);
        *tend = '\0';
        if (s_parse_ts(tok, &s.ts_ms) < 0) {
            rc = s_err(d, line, "bad timestamp '%.32s' for '%s'", tok, name);
            goto undo;
        }
        s.has_ts = 1;
        if (*p) {
            rc = s_err(d, line, "unexpected text after the sample of '%s'",
                       name);
            goto undo;
        }
    }
    long f = s_family_of(d, name);
    if (f < 0) {
        rc = (int)f;
        goto undo;
    }
    if (s_grow((void **)&d->samples, &d->cap_samples, d->n_samples + 1,
               sizeof(*d->samples)) < 0) {
        rc = -ENOMEM;
        goto undo;
    }
    s.family = (size_t)f;
    /* Fixed up to a pointer once the label array stops moving. */
    s.labels = (const sl_prom_label_t *)(uintptr_t)first;
    s.n_labels = d->n_labels - first;
    d->samples[d->n_samples++] = s;
    d->famx[f].n_samples++;
    return 0;
undo:
    d->n_labels = first;
    return rc;
}

/* ---- the document -------------------------------------------------------- */

int sl_prom_parse(const char *text, size_t len, sl_prom_doc_t **out)
{
    *out = NULL;
    sl_prom_doc_t *d = calloc(1, sizeof(*d));
    if (!d)
        return -ENOMEM;
    d->buf = malloc(len + 1);
    if (!d->buf)
        goto fail;
    memcpy(d->buf, text, len);
    d->buf[len] = '\0';
    size_t line = 0;
    for (size_t off = 0; off < len;) {
        line++;
        char *p = d->buf + off;
        char *nl = memchr(p, '\n', len - off);
        if (!nl) {
            s_err(d, line, "truncated: the last line has no line feed");
            break;
        }
        off = (size_t)(nl - d->buf) + 1;
        *nl = '\0';
        if (strlen(p) != (size_t)(nl - p)) {
            s_err(d, line, "NUL byte in the line");
            continue;
        }
        if (nl > p && nl[-1] == '\r')
            nl[-1] = '\0';
        p = s_skip(p);
        int rc = !*p ? 0 : *p == '#' ? s_comment(d, p + 1, line)
                                     : s_sample(d, p, line);
        if (rc < 0)
            goto fail;
    }
    for (size_t i = 0; i < d->n_samples; i++)
        d->samples[i].labels =
            d->labels + (uintptr_t)d->samples[i].labels;
    *out = d;
    return 0;
fail:
    sl_prom_doc_destroy(&d);
    return -ENOMEM;
}

void sl_prom_doc_destroy(sl_prom_doc_t **doc)
{
    if (!doc || !*doc)
        return;
    sl_prom_doc_t *d = *doc;
    free(d->famx);
    free(d->families);
    free(d->labels);
    free(d->samples);
    free(d->buf);
    free(d);
    *doc = NULL;
}

const sl_prom_sample_t *sl_prom_samples(const sl_prom_doc_t *doc, size_t *n)
{
    *n = doc->n_samples;
    return doc->samples;
}

const sl_prom_family_t *sl_prom_families(const sl_prom_doc_t *doc, size_t *n)
{
    *n = doc->n_families;
    return doc->families;
}

const sl_prom_error_t *sl_prom_errors(const sl_prom_doc_t *doc, size_t *n,
                                      size_t *total)
{
    *n = doc->n_errors < SL_PROM_MAX_ERRORS ? doc->n_errors
                                            : SL_PROM_MAX_ERRORS;
    if (total)
        *total = doc->n_errors;
    return doc->errors;
}

const char *sl_prom_label(const sl_prom_sample_t *s, const char *name)
{
    for (size_t i = 0; i < s->n_labels; i++)
        if (!strcmp(s->labels[i].name, name))
            return s->labels[i].value;
    return NULL;
}

const char *sl_prom_type_name(sl_prom_type_t t)
{
    switch (t) {
    case SL_PROM_COUNTER: return "counter";
    case SL_PROM_GAUGE: return "gauge";
    case SL_PROM_HISTOGRAM: return "histogram";
    case SL_PROM_SUMMARY: return "summary";
    default: return "untyped";
    }
}
