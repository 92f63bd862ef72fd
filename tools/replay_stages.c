/* Where the time goes inside a sluice target: its /metrics scraped before
 * the replay, a few times a second during it (queue depths are gauges)
 * and after it. Per stage: the mean handler call (sluice_handler_seconds,
 * sampled by the stage), the mean time a record spends in the stage by
 * Little's law (mean records held / records per second), and the
 * difference: time spent queued or waiting to be sent on. */
#include "cmd_replay.h"
#include "promtext.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define S_MAX_BODY (16u << 20)

typedef struct s_snap {
    double in, out, hsum, hcount, busy_s, workers, depth;
    int seen;
} s_snap_t;

struct sl_rp_stages {
    CURL *curl;
    char url[512];
    char err[CURL_ERROR_SIZE];
    char *body;
    size_t len, cap;
    size_t n;
    sl_rp_stage_row_t *rows;
    s_snap_t *before, *now, *first; /* first: the first sample's */
    double *depth_sum;
    unsigned samples;
    uint64_t t_before, t_first, t_last;
};

static size_t s_on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    sl_rp_stages_t *s = arg;
    size_t n = size * nmemb;
    if (n > S_MAX_BODY - s->len)
        return 0;
    if (s->len + n > s->cap) {
        size_t cap = s->cap ? s->cap : 65536;
        while (cap < s->len + n)
            cap *= 2;
        char *p = realloc(s->body, cap);
        if (!p)
            return 0;
        s->body = p;
        s->cap = cap;
    }
    memcpy(s->body + s->len, data, n);
    s->len += n;
    return n;
}

static long s_stage(const sl_rp_stages_t *s, const char *name)
{
    for (size_t i = 0; name && i < s->n; i++)
        if (!strcmp(s->rows[i].name, name))
            return (long)i;
    return -1;
}

/* Scrapes once into snap (NULL: learn the stages from sluice_stage_info
 * first). 0, or -EIO with the reason on stderr when quiet is 0. */
static int s_scrape(sl_rp_stages_t *s, s_snap_t *snap, int learn, int quiet)
{
    s->len = 0;
    CURLcode cc = curl_easy_perform(s->curl);
    if (cc != CURLE_OK) {
        if (!quiet)
            fprintf(stderr, "sluice replay: cannot read %s: %s\n", s->url,
                    s->err[0] ? s->err : curl_easy_strerror(cc));
        return -EIO;
    }
    sl_prom_doc_t *doc;
    if (sl_prom_parse(s->body, s->len, &doc) != 0)
        return -ENOMEM;
    size_t ns;
    const sl_prom_sample_t *smp = sl_prom_samples(doc, &ns);
    if (learn) {
        for (size_t i = 0; i < ns; i++) {
            if (strcmp(smp[i].name, "sluice_stage_info"))
                continue;
            const char *name = sl_prom_label(&smp[i], "stage");
            const char *kind = sl_prom_label(&smp[i], "kind");
            if (!name || s_stage(s, name) >= 0)
                continue;
            sl_rp_stage_row_t *rows =
                realloc(s->rows, (s->n + 1) * sizeof(*rows));
            if (!rows)
                break;
            s->rows = rows;
            memset(&rows[s->n], 0, sizeof(rows[0]));
            snprintf(rows[s->n].name, sizeof(rows[0].name), "%s", name);
            snprintf(rows[s->n].kind, sizeof(rows[0].kind), "%s",
                     kind ? kind : "?");
            s->n++;
        }
        s->before = calloc(s->n ? s->n : 1, sizeof(s_snap_t));
        s->now = calloc(s->n ? s->n : 1, sizeof(s_snap_t));
        s->first = calloc(s->n ? s->n : 1, sizeof(s_snap_t));
        s->depth_sum = calloc(s->n ? s->n : 1, sizeof(double));
        if (!s->before || !s->now || !s->first || !s->depth_sum) {
            sl_prom_doc_destroy(&doc);
            return -ENOMEM;
        }
        snap = s->before;
    }
    memset(snap, 0, s->n * sizeof(*snap));
    for (size_t i = 0; i < ns; i++) {
        const sl_prom_sample_t *x = &smp[i];
        long k = s_stage(s, sl_prom_label(x, "stage"));
        if (k < 0 || strncmp(x->name, "sluice_", 7))
            continue;
        const char *m = x->name + 7;
        s_snap_t *p = &snap[k];
        p->seen = 1;
        if (!strcmp(m, "records_in_total"))
            p->in = x->value;
        else if (!strcmp(m, "records_out_total"))
            p->out = x->value;
        else if (!strcmp(m, "handler_seconds_sum"))
            p->hsum = x->value;
        else if (!strcmp(m, "handler_seconds_count"))
            p->hcount = x->value;
        else if (!strcmp(m, "busy_seconds_total"))
            p->busy_s = x->value;
        else if (!strcmp(m, "workers"))
            p->workers = x->value;
        else if (!strcmp(m, "queue_depth"))
            p->depth = x->value;
    }
    sl_prom_doc_destroy(&doc);
    return 0;
}

sl_rp_stages_t *sl__rp_stages_begin(const char *url, long wait_ms)
{
    sl_rp_stages_t *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    snprintf(s->url, sizeof(s->url), "%s", url);
    s->curl = curl_easy_init();
    if (!s->curl)
        goto fail;
    curl_easy_setopt(s->curl, CURLOPT_URL, s->url);
    curl_easy_setopt(s->curl, CURLOPT_WRITEFUNCTION, s_on_body);
    curl_easy_setopt(s->curl, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(s->curl, CURLOPT_ERRORBUFFER, s->err);
    curl_easy_setopt(s->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(s->curl, CURLOPT_CONNECTTIMEOUT_MS, 2000L);
    curl_easy_setopt(s->curl, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(s->curl, CURLOPT_FAILONERROR, 1L);
    curl_easy_setopt(s->curl, CURLOPT_USERAGENT, "sluice-replay");
    /* a target that has just started may not serve yet */
    uint64_t deadline = sl__rp_now() + (uint64_t)wait_ms * 1000000ull;
    while (s_scrape(s, NULL, 1, sl__rp_now() < deadline) != 0) {
        if (sl__rp_now() >= deadline)
            goto fail;
        struct timespec ts = {0, 50000000};
        nanosleep(&ts, NULL);
    }
    if (!s->n) {
        fprintf(stderr, "sluice replay: %s lists no sluice stages: no "
                        "per-stage breakdown\n", s->url);
        goto fail;
    }
    s->t_before = sl__rp_now();
    return s;
fail:
    sl__rp_stages_destroy(&s);
    return NULL;
}

void sl__rp_stages_sample(sl_rp_stages_t *s)
{
    if (s_scrape(s, s->now, 0, 1) != 0)
        return;
    uint64_t now = sl__rp_now();
    if (!s->samples++) {
        memcpy(s->first, s->now, s->n * sizeof(*s->first));
        s->t_first = now;
    }
    s->t_last = now;
    for (size_t i = 0; i < s->n; i++)
        s->depth_sum[i] += s->now[i].depth;
}

int sl__rp_stages_end(sl_rp_stages_t *s, const sl_rp_stage_row_t **rows,
                      size_t *n)
{
    /* Little's law needs the throughput of the time the depths were
     * sampled in (the replay's sending), not of the wait for the last
     * acknowledgements after it: the samples' counters give it. */
    unsigned samples = s->samples;
    double window = (double)(s->t_last - s->t_first) / 1e9;
    s_snap_t *last = NULL;
    if (samples >= 2 && window > 0) {
        last = malloc(s->n * sizeof(*last));
        if (last)
            memcpy(last, s->now, s->n * sizeof(*last));
    }
    if (s_scrape(s, s->now, 0, 0) != 0) {
        free(last);
        return -EIO;
    }
    double elapsed = (double)(sl__rp_now() - s->t_before) / 1e9;
    for (size_t i = 0; i < s->n; i++) {
        sl_rp_stage_row_t *row = &s->rows[i];
        const s_snap_t *a = &s->before[i], *b = &s->now[i];
        int source = !strcmp(row->kind, "source");
        row->records = source ? b->out - a->out : b->in - a->in;
        row->rate = elapsed > 0 ? row->records / elapsed : 0;
        if (last) {
            const s_snap_t *f = &s->first[i], *l = &last[i];
            row->rate = (source ? l->out - f->out : l->in - f->in) / window;
        }
        row->workers = (unsigned)b->workers;
        double hc = b->hcount - a->hcount;
        row->handler_ns = !source && hc > 0 ? (b->hsum - a->hsum) / hc * 1e9
                                            : -1;
        row->busy = -1;
        if (last && b->workers > 0)
            row->busy = (last[i].busy_s - s->first[i].busy_s) / window /
                        b->workers;
        else if (b->workers > 0 && elapsed > 0)
            row->busy = (b->busy_s - a->busy_s) / elapsed / b->workers;
        row->depth = samples ? s->depth_sum[i] / samples : -1;
        if (source) {
            /* a source's depth includes the budget it reserves while its
             * pull() waits for input, and that wait counts as busy: the
             * two say nothing about the records in it */
            row->busy = -1;
            row->residence_ns = -1;
            row->queue_ns = -1;
        } else if (samples && row->rate > 0) {
            row->residence_ns = row->depth / row->rate * 1e9;
            double h = row->handler_ns > 0 ? row->handler_ns : 0;
            row->queue_ns = row->residence_ns > h ? row->residence_ns - h : 0;
        } else {
            row->residence_ns = -1;
            row->queue_ns = -1;
        }
    }
    free(last);
    *rows = s->rows;
    *n = s->n;
    return 0;
}

void sl__rp_stages_destroy(sl_rp_stages_t **sp)
{
    sl_rp_stages_t *s = *sp;
    if (!s)
        return;
    if (s->curl)
        curl_easy_cleanup(s->curl);
    free(s->body);
    free(s->rows);
    free(s->before);
    free(s->now);
    free(s->first);
    free(s->depth_sum);
    free(s);
    *sp = NULL;
}
