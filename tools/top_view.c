/* The state of a run from its /metrics, and the view `sluice top` draws
 * from two scrapes of it (top_view.h, docs/operations_top.md). */
#include "top_view.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* A stage's counters and gauges, in the order of s_value_names. */
enum {
    V_IN, V_OUT, V_READ, V_FILTERED, V_DLQ, V_RETRIES, V_SPILLED, V_SHED,
    V_RESTARTS, V_BUSY_S, V_BP_S, V_SLOW, V_DEPTH, V_QMAX, V_CAP, V_WORKERS,
    V_WBUSY, V_LAG, V_N
};

static const char *const s_value_names[V_N] = {
    "sluice_records_in_total", "sluice_records_out_total",
    "sluice_records_read_total", "sluice_records_filtered_total",
    "sluice_records_dead_lettered_total", "sluice_retries_total",
    "sluice_records_spilled_total", "sluice_records_shed_total",
    "sluice_worker_restarts_total", "sluice_busy_seconds_total",
    "sluice_backpressure_seconds_total", "sluice_slow_calls_total",
    "sluice_queue_depth", "sluice_queue_max", "sluice_queue_capacity",
    "sluice_workers", "sluice_workers_busy", "sluice_dispatcher_lag_seconds"};

/* The rule's thresholds (docs/operations_top.md). */
#define S_SATURATED_BUSY 0.9
#define S_FULL_QUEUE 0.8
#define S_FREE_CONSUMER 0.5
#define S_BACKPRESSURE 0.1 /* seconds waited per second */

#define S_NAME_COL 24
#define S_BAR 10

typedef struct s_hist {
    double *le, *cnt;
    size_t n, cap;
} s_hist_t;

typedef struct s_stage {
    const char *name, *plugin, *kind, *lane;
    double v[V_N];
    s_hist_t handler;
} s_stage_t;

typedef struct s_link {
    const char *from, *to;
} s_link_t;

struct sl_top_scrape {
    sl_prom_doc_t *doc; /* the strings below point into it */
    double wall_s;
    const char *topology;
    double elapsed;
    s_stage_t *stages;
    size_t n_stages, cap_stages;
    s_link_t *links;
    size_t n_links, cap_links;
};

/* ---- building a scrape --------------------------------------------------- */

static int s_tgrow(void **arr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap * 2 : 8;
    while (n < need)
        n *= 2;
    void *p = realloc(*arr, n * elem);
    if (!p)
        return -ENOMEM;
    *arr = p;
    *cap = n;
    return 0;
}

static long s_find_stage(const sl_top_scrape_t *s, const char *name)
{
    for (size_t i = 0; i < s->n_stages; i++)
        if (!strcmp(s->stages[i].name, name))
            return (long)i;
    return -1;
}

static long s_stage(sl_top_scrape_t *s, const char *name)
{
    long i = s_find_stage(s, name);
    if (i >= 0)
        return i;
    if (s_tgrow((void **)&s->stages, &s->cap_stages, s->n_stages + 1,
               sizeof(*s->stages)) < 0)
        return -ENOMEM;
    s_stage_t *st = &s->stages[s->n_stages];
    memset(st, 0, sizeof(*st));
    st->name = name;
    for (int v = 0; v < V_N; v++)
        st->v[v] = NAN;
    return (long)s->n_stages++;
}

static double s_parse_le(const char *le)
{
    if (!strcmp(le, "+Inf") || !strcmp(le, "Inf") || !strcmp(le, "+inf"))
        return INFINITY;
    char *end;
    double v = strtod(le, &end);
    return end == le || *end ? NAN : v;
}

/* Keeps the buckets sorted by le; a repeated le keeps the first count. */
static int s_hist_add(s_hist_t *h, double le, double cnt)
{
    size_t at = 0;
    while (at < h->n && h->le[at] < le)
        at++;
    if (at < h->n && h->le[at] == le)
        return 0;
    size_t cap = h->cap;
    if (s_tgrow((void **)&h->le, &cap, h->n + 1, sizeof(double)) < 0)
        return -ENOMEM;
    cap = h->cap;
    if (s_tgrow((void **)&h->cnt, &cap, h->n + 1, sizeof(double)) < 0)
        return -ENOMEM;
    h->cap = cap;
    memmove(h->le + at + 1, h->le + at, (h->n - at) * sizeof(double));
    memmove(h->cnt + at + 1, h->cnt + at, (h->n - at) * sizeof(double));
    h->le[at] = le;
    h->cnt[at] = cnt;
    h->n++;
    return 0;
}

static int s_take(sl_top_scrape_t *s, const sl_prom_sample_t *m)
{
    const char *stage = sl_prom_label(m, "stage");
    if (!strcmp(m->name, "sluice_run_info")) {
        s->topology = sl_prom_label(m, "topology");
        return 0;
    }
    if (!strcmp(m->name, "sluice_run_elapsed_seconds")) {
        s->elapsed = m->value;
        return 0;
    }
    if (!strcmp(m->name, "sluice_link_credit")) {
        const char *from = sl_prom_label(m, "from");
        const char *to = sl_prom_label(m, "to");
        if (!from || !to)
            return 0;
        if (s_tgrow((void **)&s->links, &s->cap_links, s->n_links + 1,
                   sizeof(*s->links)) < 0)
            return -ENOMEM;
        s->links[s->n_links++] = (s_link_t){from, to};
        return 0;
    }
    if (!stage)
        return 0;
    int v = -1;
    for (int i = 0; i < V_N && v < 0; i++)
        if (!strcmp(m->name, s_value_names[i]))
            v = i;
    int bucket = !strcmp(m->name, "sluice_handler_seconds_bucket");
    if (v < 0 && !bucket)
        return 0;
    long i = s_stage(s, stage);
    if (i < 0)
        return (int)i;
    if (v >= 0) {
        s->stages[i].v[v] = m->value;
        return 0;
    }
    const char *le = sl_prom_label(m, "le");
    double b = le ? s_parse_le(le) : NAN;
    if (isnan(b) || isnan(m->value))
        return 0;
    return s_hist_add(&s->stages[i].handler, b, m->value);
}

int sl_top_scrape_new(sl_prom_doc_t **doc, double wall_s,
                      sl_top_scrape_t **out)
{
    *out = NULL;
    sl_top_scrape_t *s = calloc(1, sizeof(*s));
    if (!s) {
        sl_prom_doc_destroy(doc);
        return -ENOMEM;
    }
    s->doc = *doc;
    *doc = NULL;
    s->wall_s = wall_s;
    s->elapsed = NAN;
    size_t n;
    const sl_prom_sample_t *m = sl_prom_samples(s->doc, &n);
    /* The stage order is that of the info lines: the topology's. */
    for (size_t k = 0; k < n; k++) {
        const char *stage = sl_prom_label(&m[k], "stage");
        if (strcmp(m[k].name, "sluice_stage_info") || !stage)
            continue;
        long i = s_stage(s, stage);
        if (i < 0)
            goto fail;
        s->stages[i].plugin = sl_prom_label(&m[k], "plugin");
        s->stages[i].kind = sl_prom_label(&m[k], "kind");
        s->stages[i].lane = sl_prom_label(&m[k], "lane");
    }
    for (size_t k = 0; k < n; k++)
        if (s_take(s, &m[k]) < 0)
            goto fail;
    *out = s;
    return 0;
fail:
    sl_top_scrape_destroy(&s);
    return -ENOMEM;
}

void sl_top_scrape_destroy(sl_top_scrape_t **sp)
{
    if (!sp || !*sp)
        return;
    sl_top_scrape_t *s = *sp;
    for (size_t i = 0; i < s->n_stages; i++) {
        free(s->stages[i].handler.le);
        free(s->stages[i].handler.cnt);
    }
    free(s->stages);
    free(s->links);
    sl_prom_doc_destroy(&s->doc);
    free(s);
    *sp = NULL;
}

size_t sl_top_scrape_n_stages(const sl_top_scrape_t *s)
{
    return s->n_stages;
}

const sl_prom_doc_t *sl_top_scrape_doc(const sl_top_scrape_t *s)
{
    return s->doc;
}

/* ---- arithmetic ---------------------------------------------------------- */

double sl_top_quantile(double q, const double *le, const double *cnt,
                       size_t n)
{
    if (n < 2 || !isinf(le[n - 1]) || isnan(q))
        return NAN;
    double total = cnt[n - 1];
    if (!(total > 0))
        return NAN;
    if (q < 0)
        q = 0;
    if (q > 1)
        q = 1;
    double rank = q * total, prev = 0, seen = 0;
    for (size_t i = 0; i < n; i++) {
        /* Counts that go down (a scrape taken mid-update) count as flat. */
        double c = cnt[i] > seen ? cnt[i] : seen;
        if (c >= rank && c > 0) {
            if (i == n - 1)
                return le[n - 2];
            double lo = i ? le[i - 1] : 0;
            if (i == 0 && le[0] <= 0)
                return le[0];
            return lo + (le[i] - lo) * (rank - prev) / (c - prev);
        }
        prev = seen = c;
    }
    return le[n - 2];
}

/* The interval's histogram: cur minus prev bucket by bucket. */
static double s_p95(const s_stage_t *cur, const s_stage_t *prev)
{
    const s_hist_t *h = &cur->handler;
    if (h->n < 2 || h->n > 256)
        return NAN;
    double d[256];
    for (size_t i = 0; i < h->n; i++) {
        double before = 0;
        for (size_t j = 0; prev && j < prev->handler.n; j++)
            if (prev->handler.le[j] == h->le[i])
                before = prev->handler.cnt[j];
        d[i] = h->cnt[i] > before ? h->cnt[i] - before : 0;
    }
    return sl_top_quantile(0.95, h->le, d, h->n);
}

typedef struct s_row {
    const s_stage_t *st, *prev;
    double in, out, busy, fill, bp, p95;
    int source;
} s_row_t;

static double s_rate(const s_stage_t *cur, const s_stage_t *prev, int v,
                     double dt)
{
    if (!prev || !(dt > 0) || isnan(cur->v[v]) || isnan(prev->v[v]))
        return NAN;
    double d = cur->v[v] - prev->v[v];
    return d > 0 ? d / dt : 0;
}

static void s_row(s_row_t *r, const s_stage_t *st, const s_stage_t *prev,
                  double dt)
{
    r->st = st;
    r->prev = prev;
    r->source = (st->kind && !strcmp(st->kind, "source")) ||
                (isnan(st->v[V_IN]) && !isnan(st->v[V_READ]));
    r->in = s_rate(st, prev, r->source ? V_READ : V_IN, dt);
    r->out = s_rate(st, prev, V_OUT, dt);
    r->bp = s_rate(st, prev, V_BP_S, dt);
    double w = st->v[V_WORKERS], busy = s_rate(st, prev, V_BUSY_S, dt);
    r->busy = NAN;
    if (w > 0) {
        r->busy = !isnan(busy) ? busy / w : st->v[V_WBUSY] / w;
        if (r->busy > 1)
            r->busy = 1;
    }
    r->fill = st->v[V_CAP] > 0 ? st->v[V_DEPTH] / st->v[V_CAP] : NAN;
    r->p95 = s_p95(st, prev);
}

/* ---- formatting ---------------------------------------------------------- */

/* A name from the network, safe to print: control bytes become '?', and
 * longer than width it ends in '~'. */
static const char *s_clean(char *buf, size_t width, const char *s)
{
    size_t n = 0;
    for (; s && s[n] && n < width; n++)
        buf[n] = (unsigned char)s[n] < 0x20 || s[n] == 0x7f ? '?' : s[n];
    if (s && s[n] && n > 0)
        buf[n - 1] = '~';
    buf[n] = '\0';
    return buf;
}

static const char *s_fmt_rate(char *b, size_t len, double v)
{
    if (isnan(v))
        snprintf(b, len, "-");
    else if (v < 10 && v != floor(v))
        snprintf(b, len, "%.1f", v);
    else if (v < 1e4)
        snprintf(b, len, "%.0f", v);
    else if (v < 1e6)
        snprintf(b, len, "%.1fk", v / 1e3);
    else if (v < 1e9)
        snprintf(b, len, "%.2fM", v / 1e6);
    else
        snprintf(b, len, "%.2fG", v / 1e9);
    return b;
}

static const char *s_fmt_count(char *b, size_t len, double v)
{
    if (isnan(v))
        snprintf(b, len, "-");
    else if (v < 1e7)
        snprintf(b, len, "%.0f", v);
    else
        snprintf(b, len, "%.1fM", v / 1e6);
    return b;
}

static const char *s_fmt_secs(char *b, size_t len, double v)
{
    if (isnan(v))
        snprintf(b, len, "-");
    else if (isinf(v))
        snprintf(b, len, "inf");
    else if (v < 1e-6)
        snprintf(b, len, "%.0fns", v * 1e9);
    else if (v < 1e-3)
        snprintf(b, len, "%.1fus", v * 1e6);
    else if (v < 1)
        snprintf(b, len, "%.1fms", v * 1e3);
    else
        snprintf(b, len, "%.2fs", v);
    return b;
}

static const char *s_fmt_elapsed(char *b, size_t len, double v)
{
    if (isnan(v) || v < 0)
        snprintf(b, len, "-");
    else if (v < 60)
        snprintf(b, len, "%.1f s", v);
    else if (v < 3600)
        snprintf(b, len, "%dm%02ds", (int)(v / 60), (int)fmod(v, 60));
    else
        snprintf(b, len, "%dh%02dm%02ds", (int)(v / 3600),
                 (int)fmod(v / 60, 60), (int)fmod(v, 60));
    return b;
}

static const char *s_fmt_pct(char *b, size_t len, double v)
{
    if (isnan(v))
        snprintf(b, len, "-");
    else
        snprintf(b, len, "%.0f%%", v * 100);
    return b;
}

/* "[#######...] 812/1024", or "-" for a stage without a queue. */
static void s_queue(char *b, size_t len, const s_stage_t *st, double fill)
{
    if (isnan(fill)) {
        snprintf(b, len, "-");
        return;
    }
    char bar[S_BAR + 1];
    int full = (int)(fill * S_BAR + 0.5);
    full = full < 0 ? 0 : full > S_BAR ? S_BAR : full;
    for (int i = 0; i < S_BAR; i++)
        bar[i] = i < full ? '#' : '.';
    bar[S_BAR] = '\0';
    char nums[48];
    snprintf(nums, sizeof(nums), "%.0f/%.0f", st->v[V_DEPTH], st->v[V_CAP]);
    snprintf(b, len, "[%s] %11s", bar, nums);
}

static void s_workers(char *b, size_t len, const s_stage_t *st)
{
    double w = st->v[V_WORKERS], busy = st->v[V_WBUSY];
    if (isnan(w))
        snprintf(b, len, "-");
    else if (isnan(busy))
        snprintf(b, len, "?/%.0f", w);
    else
        snprintf(b, len, "%.0f/%.0f", busy, w);
}

/* ---- the topology's links ------------------------------------------------ */

/* Whether stage b takes records from stage a. Without link metrics the
 * stages are taken to be a chain in file order. */
static int s_feeds(const sl_top_scrape_t *s, size_t a, size_t b)
{
    if (!s->n_links)
        return b == a + 1;
    for (size_t i = 0; i < s->n_links; i++)
        if (!strcmp(s->links[i].from, s->stages[a].name) &&
            !strcmp(s->links[i].to, s->stages[b].name))
            return 1;
    return 0;
}

static int s_consumers_free(const sl_top_scrape_t *s, const s_row_t *rows,
                            size_t i)
{
    for (size_t j = 0; j < s->n_stages; j++)
        if (j != i && s_feeds(s, i, j) && rows[j].fill >= S_FREE_CONSUMER)
            return 0;
    return 1;
}

static int s_upstream_blocked(const sl_top_scrape_t *s, const s_row_t *rows,
                              size_t i)
{
    for (size_t j = 0; j < s->n_stages; j++)
        if (j != i && s_feeds(s, j, i) && rows[j].bp >= S_BACKPRESSURE)
            return 1;
    return 0;
}

/* The bottleneck's index, or -1 (docs/operations_top.md, "the rule"). */
static long s_bottleneck(const sl_top_scrape_t *s, const s_row_t *rows)
{
    long best = -1;
    for (size_t i = 0; i < s->n_stages; i++)
        if (rows[i].busy >= S_SATURATED_BUSY && rows[i].fill >= S_FULL_QUEUE &&
            s_consumers_free(s, rows, i))
            best = (long)i;
    if (best >= 0)
        return best;
    for (size_t i = 0; i < s->n_stages; i++)
        if (rows[i].busy > 0 && s_upstream_blocked(s, rows, i) &&
            (best < 0 || rows[i].busy > rows[best].busy))
            best = (long)i;
    return best;
}

static void s_why(FILE *f, const sl_top_scrape_t *s, const s_row_t *rows,
                  size_t b)
{
    char name[72], num[32], pct[16];
    const s_row_t *r = &rows[b];
    const s_stage_t *st = r->st;
    fprintf(f, "bottleneck: '%s' \u2014 ", s_clean(name, 64, st->name));
    if (!isnan(st->v[V_WORKERS]) && !isnan(st->v[V_WBUSY]))
        fprintf(f, "%.0f/%.0f workers busy (avg %s)", st->v[V_WBUSY],
                st->v[V_WORKERS], s_fmt_pct(pct, sizeof(pct), r->busy));
    else
        fprintf(f, "workers %s busy", s_fmt_pct(pct, sizeof(pct), r->busy));
    if (!isnan(r->fill))
        fprintf(f, ", queue %.0f/%.0f (%s)", st->v[V_DEPTH], st->v[V_CAP],
                s_fmt_pct(pct, sizeof(pct), r->fill));
    for (size_t j = 0; j < s->n_stages; j++)
        if (j != b && s_feeds(s, b, j))
            fprintf(f, ", downstream '%s' queue %s",
                    s_clean(name, 64, rows[j].st->name),
                    s_fmt_pct(pct, sizeof(pct), rows[j].fill));
    const char *sep = "; ";
    for (size_t j = 0; j < s->n_stages; j++) {
        double w = rows[j].st->v[V_BP_S];
        if (j == b || !s_feeds(s, j, b) || !(w > 0))
            continue;
        snprintf(num, sizeof(num), "%.1f s", w);
        fprintf(f, "%supstream '%s' waited %s on backpressure", sep,
                s_clean(name, 64, rows[j].st->name), num);
        sep = ", ";
    }
    fputc('\n', f);
}

static void s_no_bottleneck(FILE *f, const sl_top_scrape_t *s,
                            const s_row_t *rows)
{
    char name[72], pct[16];
    long busiest = -1;
    for (size_t i = 0; i < s->n_stages; i++)
        if (!isnan(rows[i].busy) &&
            (busiest < 0 || rows[i].busy > rows[busiest].busy))
            busiest = (long)i;
    if (!s->n_stages) {
        fprintf(f, "no bottleneck: the endpoint reports no stages\n");
        return;
    }
    fprintf(f, "no bottleneck: no stage has all workers busy and a full "
               "queue");
    if (busiest >= 0)
        fprintf(f, " (busiest: '%s', %s busy%s)",
                s_clean(name, 64, rows[busiest].st->name),
                s_fmt_pct(pct, sizeof(pct), rows[busiest].busy),
                rows[busiest].source && rows[busiest].busy >= S_SATURATED_BUSY
                    ? ": the source sets the pace"
                    : "");
    fputc('\n', f);
}

/* ---- the view ------------------------------------------------------------ */

static double s_interval(const sl_top_scrape_t *prev,
                         const sl_top_scrape_t *cur)
{
    if (!prev)
        return NAN;
    /* The run's own clock: exact however late each scrape was answered. */
    double d = cur->elapsed - prev->elapsed;
    if (d > 0)
        return d;
    d = cur->wall_s - prev->wall_s;
    return d > 0 ? d : NAN;
}

void sl_top_render(FILE *f, const char *url, const sl_top_scrape_t *prev,
                   const sl_top_scrape_t *cur)
{
    double dt = s_interval(prev, cur);
    size_t n = cur->n_stages;
    s_row_t *rows = calloc(n ? n : 1, sizeof(*rows));
    if (!rows) {
        fprintf(f, "sluice top: out of memory\n");
        return;
    }
    double read = NAN, delivered = NAN;
    size_t width = 5;
    for (size_t i = 0; i < n; i++) {
        const s_stage_t *st = &cur->stages[i];
        long p = prev ? s_find_stage(prev, st->name) : -1;
        s_row(&rows[i], st, p >= 0 ? &prev->stages[p] : NULL, dt);
        double in = rows[i].in;
        if (rows[i].source && !isnan(in))
            read = isnan(read) ? in : read + in;
        if (st->kind && !strcmp(st->kind, "sink") && !isnan(in))
            delivered = isnan(delivered) ? in : delivered + in;
        size_t len = strlen(st->name);
        if (len > width)
            width = len > S_NAME_COL ? S_NAME_COL : len;
    }
    long b = s_bottleneck(cur, rows);

    char t1[40], t2[40], t3[40], t4[40], t5[40], t6[40], t7[40], t8[40];
    char name[S_NAME_COL + 8], q[64], top[72];
    fprintf(f, "sluice top  %s\n", url);
    fprintf(f, "topology '%s'  elapsed %s  read %s/s  delivered %s/s\n",
            cur->topology ? s_clean(top, 64, cur->topology) : "?",
            s_fmt_elapsed(t1, sizeof(t1), cur->elapsed),
            s_fmt_rate(t2, sizeof(t2), read),
            s_fmt_rate(t3, sizeof(t3), delivered));
    fprintf(f, "\n%-*s %8s %8s  %-23s %5s %7s %8s %7s %7s %8s\n", (int)width,
            "STAGE", "IN/s", "OUT/s", "QUEUE", "BUSY", "WORKERS", "P95",
            "ERRORS", "RETRIES", "RESTARTS");
    for (size_t i = 0; i < n; i++) {
        const s_row_t *r = &rows[i];
        s_queue(q, sizeof(q), r->st, r->fill);
        s_workers(t4, sizeof(t4), r->st);
        fprintf(f, "%-*s %8s %8s  %-23s %5s %7s %8s %7s %7s %8s%s\n",
                (int)width, s_clean(name, width, r->st->name),
                s_fmt_rate(t1, sizeof(t1), r->in),
                s_fmt_rate(t2, sizeof(t2), r->out), q,
                s_fmt_pct(t3, sizeof(t3), r->busy), t4,
                s_fmt_secs(t5, sizeof(t5), r->p95),
                s_fmt_count(t6, sizeof(t6), r->st->v[V_DLQ]),
                s_fmt_count(t7, sizeof(t7), r->st->v[V_RETRIES]),
                s_fmt_count(t8, sizeof(t8), r->st->v[V_RESTARTS]),
                (long)i == b ? "  << bottleneck" : "");
    }
    fputc('\n', f);
    if (b >= 0)
        s_why(f, cur, rows, (size_t)b);
    else
        s_no_bottleneck(f, cur, rows);
    free(rows);
}
