#include "csv_row.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static int s_is_term(unsigned char c) { return c == '\n'; }

static int s_is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

static int s_grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap : 16;
    while (n < need)
        n *= 2;
    if (n > SIZE_MAX / elem)
        return -ENOMEM;
    void *q = realloc(*p, n * elem);
    if (!q)
        return -ENOMEM;
    *p = q;
    *cap = n;
    return 0;
}

static void s_on_field(void *s, size_t n, void *data)
{
    csv_row_t *r = data;
    size_t i = r->nfields++;

    /* Fields of a second row in the same feed only count for r->rows. */
    if (r->rows || i >= r->keep || r->oom)
        return;
    if (s_grow((void **)&r->off, &r->off_cap, i + 2, sizeof(*r->off)) < 0 ||
        s_grow((void **)&r->buf, &r->cap, r->len + n, 1) < 0) {
        r->oom = 1;
        return;
    }
    if (n)
        memcpy(r->buf + r->len, s, n);
    r->off[i] = r->len;
    r->len += n;
    r->off[i + 1] = r->len;
}

static void s_on_row(int c, void *data)
{
    (void)c;
    csv_row_t *r = data;
    if (r->rows++ == 0)
        r->first = r->nfields;
}

static void s_setup(csv_row_t *r)
{
    csv_set_term_func(&r->p, s_is_term);
    csv_set_space_func(&r->p, s_is_space);
    csv_set_delim(&r->p, r->delim);
    csv_set_quote(&r->p, r->quote);
}

int csv_row_init(csv_row_t *r, unsigned char delim, unsigned char quote,
                 size_t keep)
{
    memset(r, 0, sizeof(*r));
    r->delim = delim;
    r->quote = quote;
    r->keep = keep;
    if (csv_init(&r->p, CSV_STRICT | CSV_STRICT_FINI) != 0)
        return -ENOMEM;
    s_setup(r);
    if (s_grow((void **)&r->off, &r->off_cap, 2, sizeof(*r->off)) < 0) {
        csv_free(&r->p);
        return -ENOMEM;
    }
    r->off[0] = 0;
    return 0;
}

void csv_row_fini(csv_row_t *r)
{
    csv_free(&r->p);
    free(r->buf);
    free(r->off);
    memset(r, 0, sizeof(*r));
}

void csv_row_clear(csv_row_t *r)
{
    r->len = 0;
    r->nfields = 0;
    r->rows = 0;
    r->first = 0;
    r->oom = 0;
}

void csv_row_reset(csv_row_t *r)
{
    /* csv_fini without callbacks discards the pending field and returns
     * the parser to its initial state, keeping its buffer; STRICT_FINI is
     * lifted for the call, or an open quote would make it refuse. */
    csv_set_opts(&r->p, CSV_STRICT);
    csv_fini(&r->p, NULL, NULL, NULL);
    csv_set_opts(&r->p, CSV_STRICT | CSV_STRICT_FINI);
    csv_row_clear(r);
}

int csv_row_feed(csv_row_t *r, const void *text, size_t len)
{
    size_t done = csv_parse(&r->p, text, len, s_on_field, s_on_row, r);
    if (r->oom)
        return -ENOMEM;
    if (done < len) {
        int bad = csv_error(&r->p) == CSV_EPARSE;
        csv_row_reset(r);
        return bad ? -EBADMSG : -ENOMEM;
    }
    return 0;
}

int csv_row_end(csv_row_t *r)
{
    if (csv_fini(&r->p, s_on_field, s_on_row, r) != 0) {
        csv_row_reset(r);
        return -EBADMSG;
    }
    return r->oom ? -ENOMEM : 0;
}
