/* `sluice trace info`'s numbers: see trace_stats.h. */
#include "trace_stats.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void sl__ts_init(sl_trace_stats_t *s)
{
    memset(s, 0, sizeof(*s));
    s->bucket_s = 1;
}

void sl__ts_fini(sl_trace_stats_t *s)
{
    for (size_t i = 0; i < s->n_fields; i++)
        free(s->fields[i].name);
    free(s->fields);
    free(s->index);
    free(s->buckets);
    memset(s, 0, sizeof(*s));
}

static int s_bucket(sl_trace_stats_t *s, uint64_t offset_ns)
{
    uint64_t b = offset_ns / 1000000000u / s->bucket_s;
    /* A long trace: pairs of buckets merge until it fits. */
    while (b >= SL_TS_MAX_BUCKETS) {
        for (size_t i = 0; i < s->n_buckets; i++)
            s->buckets[i / 2] = (i % 2 ? s->buckets[i / 2] : 0) +
                                s->buckets[i];
        s->n_buckets = (s->n_buckets + 1) / 2;
        s->bucket_s *= 2;
        b = offset_ns / 1000000000u / s->bucket_s;
    }
    if (b >= s->n_buckets) {
        size_t n = (size_t)b + 1, cap = 64;
        while (cap < n)
            cap *= 2;
        uint64_t *nb = realloc(s->buckets, cap * sizeof(*nb));
        if (!nb)
            return -ENOMEM;
        memset(nb + s->n_buckets, 0, (n - s->n_buckets) * sizeof(*nb));
        s->buckets = nb;
        s->n_buckets = n;
    }
    s->buckets[b]++;
    return 0;
}

static uint64_t s_hash(const void *p, size_t n, int str)
{
    uint64_t h = 0xcbf29ce484222325ull ^ (uint64_t)str;
    for (size_t i = 0; i < n; i++)
        h = (h ^ ((const unsigned char *)p)[i]) * 0x100000001b3ull;
    return h;
}

static int s_grow_index(sl_trace_stats_t *s)
{
    size_t cap = s->index_cap ? s->index_cap * 2 : 64;
    size_t *ix = malloc(cap * sizeof(*ix));
    if (!ix)
        return -ENOMEM;
    for (size_t i = 0; i < cap; i++)
        ix[i] = SIZE_MAX;
    for (size_t f = 0; f < s->n_fields; f++) {
        const sl_ts_field_t *fl = &s->fields[f];
        size_t at = s_hash(fl->name, fl->name_len, fl->str_key) & (cap - 1);
        while (ix[at] != SIZE_MAX)
            at = (at + 1) & (cap - 1);
        ix[at] = f;
    }
    free(s->index);
    s->index = ix;
    s->index_cap = cap;
    return 0;
}

/* The field for this key, made on first sight; NULL past the limit. */
static sl_ts_field_t *s_field(sl_trace_stats_t *s, const void *name,
                              size_t len, int str, int *oom)
{
    if (s->n_fields * 2 >= s->index_cap && s->n_fields < SL_TS_MAX_FIELDS &&
        s_grow_index(s) < 0) {
        *oom = 1;
        return NULL;
    }
    size_t at = s_hash(name, len, str) & (s->index_cap - 1);
    while (s->index[at] != SIZE_MAX) {
        sl_ts_field_t *f = &s->fields[s->index[at]];
        if (f->str_key == str && f->name_len == len &&
            !memcmp(f->name, name, len))
            return f;
        at = (at + 1) & (s->index_cap - 1);
    }
    if (s->n_fields >= SL_TS_MAX_FIELDS)
        return NULL;
    if (s->n_fields == s->cap_fields) {
        size_t cap = s->cap_fields ? s->cap_fields * 2 : 16;
        sl_ts_field_t *nf = realloc(s->fields, cap * sizeof(*nf));
        if (!nf) {
            *oom = 1;
            return NULL;
        }
        s->fields = nf;
        s->cap_fields = cap;
    }
    sl_ts_field_t *f = &s->fields[s->n_fields];
    memset(f, 0, sizeof(*f));
    if (!(f->name = malloc(len ? len : 1))) {
        *oom = 1;
        return NULL;
    }
    memcpy(f->name, name, len);
    f->name_len = len;
    f->str_key = str;
    s->index[at] = s->n_fields++;
    return f;
}

int sl__ts_add(sl_trace_stats_t *s, uint64_t offset_ns, const void *rec,
               size_t len)
{
    if (s_bucket(s, offset_ns) < 0)
        return -ENOMEM;
    if (!s->records || len < s->size_min)
        s->size_min = len;
    if (len > s->size_max)
        s->size_max = len;
    s->size_sum += len;
    s->records++;
    s->last_ns = offset_ns;
    /* The reader checked the record: every length below is in bounds. */
    const unsigned char *p = rec;
    sl_mp_head_t m;
    sl__mpscan_head(p, len, &m);
    size_t pos = m.hdr;
    for (uint64_t i = 0; i < m.n; i++) {
        sl_mp_head_t k, v;
        size_t ku, vu;
        sl__mpscan_head(p + pos, len - pos, &k);
        sl__mpscan_object(p + pos, len - pos, SL_MP_MAX_DEPTH, &ku);
        int str = k.kind == SL_MP_STR;
        const char *kname = str ? (const char *)p + pos + k.hdr
                                : sl__mpscan_kind_name(k.kind);
        size_t klen = str ? (size_t)k.n : strlen(kname);
        pos += ku;
        sl__mpscan_head(p + pos, len - pos, &v);
        sl__mpscan_object(p + pos, len - pos, SL_MP_MAX_DEPTH, &vu);
        pos += vu;
        int oom = 0;
        sl_ts_field_t *f = s_field(s, kname, klen, str, &oom);
        if (oom)
            return -ENOMEM;
        if (!f) {
            s->unnamed++;
            continue;
        }
        f->records++;
        f->types[v.kind]++;
    }
    return 0;
}

static int s_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

void sl__ts_rates(const sl_trace_stats_t *s, double *min, double *p50,
                  double *max)
{
    *min = *p50 = *max = 0;
    if (!s->n_buckets)
        return;
    uint64_t *sorted = malloc(s->n_buckets * sizeof(*sorted));
    if (!sorted)
        return;
    memcpy(sorted, s->buckets, s->n_buckets * sizeof(*sorted));
    qsort(sorted, s->n_buckets, sizeof(*sorted), s_cmp);
    double w = (double)s->bucket_s;
    *min = (double)sorted[0] / w;
    *p50 = (double)sorted[(s->n_buckets - 1) / 2] / w;
    *max = (double)sorted[s->n_buckets - 1] / w;
    free(sorted);
}
