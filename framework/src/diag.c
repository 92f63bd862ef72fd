#include "diag.h"

#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* Used when formatting or growing fails: a diagnostic must never be lost
 * silently, so the list records that something was dropped. */
static char s_oom_line[] = "(out of memory while recording a diagnostic)";

void sl__diag_init(sl_diag_t *d)
{
    memset(d, 0, sizeof(*d));
}

void sl__diag_fini(sl_diag_t *d)
{
    for (size_t i = 0; i < d->count; i++)
        if (d->lines[i] != s_oom_line)
            free(d->lines[i]);
    free(d->lines);
    memset(d, 0, sizeof(*d));
}

static int s_reserve(sl_diag_t *d)
{
    if (d->count < d->cap)
        return 0;
    size_t cap = d->cap ? d->cap * 2 : 8;
    char **lines = realloc(d->lines, cap * sizeof(*lines));
    if (!lines)
        return -1;
    d->lines = lines;
    d->cap = cap;
    return 0;
}

void sl__diag_add(sl_diag_t *d, const char *fmt, ...)
{
    if (s_reserve(d) != 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    char *line = NULL;
    if (vasprintf(&line, fmt, ap) < 0)
        line = s_oom_line;
    va_end(ap);
    d->lines[d->count++] = line;
}

void sl__diag_print(const sl_diag_t *d, FILE *f)
{
    for (size_t i = 0; i < d->count; i++)
        fprintf(f, "%s\n", d->lines[i]);
}

typedef struct s_pos_line {
    unsigned long line, col;
    size_t index;
    char *text;
} s_pos_line_t;

static int s_cmp_pos(const void *a, const void *b)
{
    const s_pos_line_t *x = a, *y = b;
    if (x->line != y->line)
        return x->line < y->line ? -1 : 1;
    if (x->col != y->col)
        return x->col < y->col ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

void sl__diag_sort(sl_diag_t *d, size_t from, const char *file)
{
    size_t n = d->count - from, flen = strlen(file);
    s_pos_line_t *v = n > 1 ? calloc(n, sizeof(*v)) : NULL;
    if (!v)
        return;
    for (size_t i = 0; i < n; i++) {
        char *text = d->lines[from + i], *end;
        v[i] = (s_pos_line_t){ULONG_MAX, ULONG_MAX, i, text};
        if (strncmp(text, file, flen) != 0 || text[flen] != ':')
            continue;
        unsigned long line = strtoul(text + flen + 1, &end, 10);
        if (*end != ':')
            continue;
        unsigned long col = strtoul(end + 1, &end, 10);
        if (*end == ':') {
            v[i].line = line;
            v[i].col = col;
        }
    }
    qsort(v, n, sizeof(*v), s_cmp_pos);
    for (size_t i = 0; i < n; i++)
        d->lines[from + i] = v[i].text;
    free(v);
}
