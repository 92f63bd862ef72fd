#include "rp_fast.h"

#include <string.h>

typedef struct scan {
    const char *s;
    size_t n, i;
} scan_t;

static int s_byte(scan_t *c, char b)
{
    if (c->i >= c->n || c->s[c->i] != b)
        return 0;
    c->i++;
    return 1;
}

static void s_group(regmatch_t *g, size_t from, size_t to)
{
    g->rm_so = (regoff_t)from;
    g->rm_eo = (regoff_t)to;
}

/* ([^ ]+) followed by ' ' */
static int s_word(scan_t *c, regmatch_t *g)
{
    const char *sp = memchr(c->s + c->i, ' ', c->n - c->i);

    if (!sp || sp == c->s + c->i)
        return 0;
    s_group(g, c->i, (size_t)(sp - c->s));
    c->i = (size_t)(sp - c->s) + 1;
    return 1;
}

/* \[([^]]+)\] */
static int s_bracketed(scan_t *c, regmatch_t *g)
{
    if (!s_byte(c, '['))
        return 0;
    const char *end = memchr(c->s + c->i, ']', c->n - c->i);
    if (!end || end == c->s + c->i)
        return 0;
    s_group(g, c->i, (size_t)(end - c->s));
    c->i = (size_t)(end - c->s) + 1;
    return 1;
}

/* "((\\.|[^"\\])*)" : a backslash takes the next byte, whatever it is. */
static int s_quoted(scan_t *c, regmatch_t *g)
{
    if (!s_byte(c, '"'))
        return 0;
    size_t from = c->i;
    while (c->i < c->n && c->s[c->i] != '"') {
        if (c->s[c->i] == '\\' && ++c->i == c->n)
            return 0;
        c->i++;
    }
    if (c->i == c->n)
        return 0;
    s_group(g, from, c->i);
    c->i++;
    return 1;
}

static int s_digits(scan_t *c, size_t min, size_t max, regmatch_t *g)
{
    size_t from = c->i;

    while (c->i < c->n && c->i - from < max && c->s[c->i] >= '0' &&
           c->s[c->i] <= '9')
        c->i++;
    if (c->i - from < min)
        return 0;
    s_group(g, from, c->i);
    return 1;
}

int rp_fast_access_log(int combined, const char *s, size_t n, regmatch_t *m)
{
    scan_t c = {s, n, 0};
    size_t groups = combined ? 12 : 8;

    for (size_t i = 1; i <= groups; i++)
        m[i].rm_so = m[i].rm_eo = -1;
    if (!s_word(&c, &m[1]) || !s_word(&c, &m[2]) || !s_word(&c, &m[3]) ||
        !s_bracketed(&c, &m[4]) || !s_byte(&c, ' ') ||
        !s_quoted(&c, &m[5]) || !s_byte(&c, ' ') ||
        !s_digits(&c, 3, 3, &m[7]) || !s_byte(&c, ' '))
        return 0;
    if (c.i < n && s[c.i] == '-') {
        s_group(&m[8], c.i, c.i + 1);
        c.i++;
    } else if (!s_digits(&c, 1, (size_t)-1, &m[8])) {
        return 0;
    }
    if (combined &&
        (!s_byte(&c, ' ') || !s_quoted(&c, &m[9]) || !s_byte(&c, ' ') ||
         !s_quoted(&c, &m[11])))
        return 0;
    return c.i == n;
}
