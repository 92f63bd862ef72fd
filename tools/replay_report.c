/* What a replay measured, told four ways: the text report, the --json
 * file (stable keys, docs/replay.md; `sluice tune` reads it), the --hdr
 * percentile distribution (HdrHistogram's text format) and --compare's
 * table against an earlier --json file. */
#include "cmd_replay.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The verdict's rules: completions more than 1% below the requested rate,
 * or a median that grew this much over the run (and by a noticeable
 * amount, so that a few microseconds of noise on a fast target do not
 * count). */
#define S_RATE_SLACK 0.01
#define S_GROWTH_FACTOR 2.0
#define S_GROWTH_MIN_NS 1000000ull

void sl__rp_result_compute(const sl_replay_t *r, sl_rp_result_t *res)
{
    const sl_rp_sends_t *s = &r->sends;
    const sl_rp_acks_t *a = &r->acks;
    const sl_rp_opts_t *o = r->o;
    memset(res, 0, sizeof(*res));
    res->sent = s->sent;
    res->sent_warmup = s->sent_warmup;
    res->errors = s->errors;
    res->bad_records = s->bad_records;
    res->completed = a->completed;
    res->timeouts = a->timeouts + s->overflow;
    res->unmatched = a->unmatched;
    res->duplicates = a->duplicates;
    res->late = a->late;
    res->malformed = a->malformed;
    res->in_flight_at_stop = a->in_flight_at_stop;
    res->clamped = a->clamped;
    res->hist = &a->all;

    if (o->rate > 0)
        res->requested_rate = o->rate;
    else if (o->speed > 0 && s->sent > 1 &&
             s->last_intended_ns > s->first_intended_ns)
        res->requested_rate = (double)(s->sent - 1) * 1e9 /
                              (double)(s->last_intended_ns -
                                       s->first_intended_ns);
    if (s->sent > 1 && s->last_send_ns > s->first_send_ns)
        res->achieved_rate = (double)(s->sent - 1) * 1e9 /
                             (double)(s->last_send_ns - s->first_send_ns);
    if (res->requested_rate > 0 && res->achieved_rate > 0)
        res->pacing_error = fabs(res->achieved_rate - res->requested_rate) /
                            res->requested_rate;
    /* Completions between the 0.5% and 99.5% marks of their arrival
     * times: a straggler at either end does not move the rate. */
    if (a->completed >= 200) {
        double t1 = sl__rp_bins_time(&a->ack_times, 0.005);
        double t2 = sl__rp_bins_time(&a->ack_times, 0.995);
        if (t2 > t1)
            res->completion_rate = 0.99 * (double)a->completed * 1e9 /
                                   (t2 - t1);
    } else if (a->completed > 1 && a->last_ack_ns > a->first_ack_ns) {
        res->completion_rate = (double)(a->completed - 1) * 1e9 /
                               (double)(a->last_ack_ns - a->first_ack_ns);
    }

    const sl_hist_t *h = &a->all;
    res->p50 = sl__hist_quantile(h, 0.50);
    res->p90 = sl__hist_quantile(h, 0.90);
    res->p99 = sl__hist_quantile(h, 0.99);
    res->p999 = sl__hist_quantile(h, 0.999);
    res->p9999 = sl__hist_quantile(h, 0.9999);
    res->max = h->max;
    res->min = h->count ? h->min : 0;
    res->mean = h->count ? (double)h->sum / (double)h->count : 0;

    res->lag_p50 = sl__hist_quantile(&s->lag, 0.5);
    res->lag_p99 = sl__hist_quantile(&s->lag, 0.99);
    res->lag_max = s->lag.max;

    /* fifths of the measured window, by intended time */
    if (s->sent && s->last_intended_ns > s->first_intended_ns) {
        uint64_t from = s->first_intended_ns - o->warmup_ns;
        uint64_t span = s->last_intended_ns - s->first_intended_ns;
        res->p50_first = sl__rp_slices_p50(&a->slices, from, from + span / 5);
        res->p50_last = sl__rp_slices_p50(&a->slices, from + span - span / 5,
                                          from + span + 1);
    }

    char *w = res->behind_why;
    size_t wl = sizeof(res->behind_why);
    if (res->requested_rate > 0 && a->completed > 1 &&
        res->completion_rate < res->requested_rate * (1 - S_RATE_SLACK)) {
        res->fell_behind = 1;
        int n = snprintf(w, wl, "completions %.0f/s, %.1f%% below the "
                         "requested %.0f/s",
                         res->completion_rate,
                         100 * (1 - res->completion_rate /
                                        res->requested_rate),
                         res->requested_rate);
        if (n > 0 && (size_t)n < wl) {
            w += n;
            wl -= (size_t)n;
        }
    }
    if (res->p50_last > res->p50_first * S_GROWTH_FACTOR &&
        res->p50_last - res->p50_first > S_GROWTH_MIN_NS) {
        snprintf(w, wl, "%slatency grew over the run (p50 x%.1f from the "
                 "first fifth to the last)",
                 res->fell_behind ? "; " : "",
                 res->p50_first ? (double)res->p50_last /
                                      (double)res->p50_first
                                : INFINITY);
        res->fell_behind = 1;
    }
    if (s->last_send_ns) {
        uint64_t end = a->last_ack_ns > s->last_send_ns ? a->last_ack_ns
                                                        : s->last_send_ns;
        res->duration_s = (double)(end - s->first_send_ns) / 1e9;
    }
}

/* 850 ns, 12.3 us, 2.10 ms, 1.23 s */
static const char *s_dur(char *buf, size_t cap, double ns)
{
    if (ns < 1e3)
        snprintf(buf, cap, "%.0f ns", ns);
    else if (ns < 1e6)
        snprintf(buf, cap, "%.1f us", ns / 1e3);
    else if (ns < 1e9)
        snprintf(buf, cap, "%.2f ms", ns / 1e6);
    else
        snprintf(buf, cap, "%.2f s", ns / 1e9);
    return buf;
}

static void s_stage_table(const sl_rp_result_t *res, FILE *f)
{
    fprintf(f, "\nper stage (from the target's metrics; IN STAGE = mean "
               "queue depth / rate):\n");
    fprintf(f, "%-16s %-9s %10s %10s %10s %10s %5s %6s\n", "STAGE", "KIND",
            "IN/s", "HANDLER", "IN STAGE", "QUEUED", "BUSY", "SHARE");
    for (size_t i = 0; i < res->n_stages; i++) {
        const sl_rp_stage_row_t *st = &res->stages[i];
        char h[24] = "-", in[24] = "-", q[24] = "-", busy[8] = "-",
             share[8] = "-";
        if (st->handler_ns >= 0)
            s_dur(h, sizeof(h), st->handler_ns);
        if (st->residence_ns >= 0) {
            s_dur(in, sizeof(in), st->residence_ns);
            s_dur(q, sizeof(q), st->queue_ns);
            if (res->mean > 0)
                snprintf(share, sizeof(share), "%.0f%%",
                         100 * st->residence_ns / res->mean);
        }
        if (st->busy >= 0)
            snprintf(busy, sizeof(busy), "%.0f%%", 100 * st->busy);
        fprintf(f, "%-16s %-9s %10.0f %10s %10s %10s %5s %6s\n", st->name,
                st->kind, st->rate, h, in, q, busy, share);
    }
}

static void s_target(const sl_rp_result_t *res, FILE *f)
{
    json_error_t e;
    json_t *j = json_loads(res->target_report, 0, &e);
    json_t *t = j ? json_object_get(j, "totals") : NULL;
    if (!t)
        return;
    fprintf(f, "  target       read %" JSON_INTEGER_FORMAT
               "  delivered %" JSON_INTEGER_FORMAT
               "  dead-lettered %" JSON_INTEGER_FORMAT
               "  spilled %" JSON_INTEGER_FORMAT "  ledger %s\n",
            json_integer_value(json_object_get(t, "read")),
            json_integer_value(json_object_get(t, "delivered")),
            json_integer_value(json_object_get(t, "dead_lettered")),
            json_integer_value(json_object_get(t, "spilled")),
            json_is_true(json_object_get(j, "ledger_ok")) ? "balanced"
                                                          : "NOT balanced");
    json_decref(j);
}

void sl__rp_report_text(const sl_rp_result_t *res, FILE *f)
{
    char a[24], b[24], c[24], d[24], e[24], g[24], m[24];
    fprintf(f, "  schedule     %s\n", res->mode);
    if (res->requested_rate > 0)
        fprintf(f, "  send rate    requested %.1f/s  achieved %.1f/s  "
                   "(pacing error %.2f%%)\n",
                res->requested_rate, res->achieved_rate,
                100 * res->pacing_error);
    else
        fprintf(f, "  send rate    achieved %.1f/s (as fast as possible)\n",
                res->achieved_rate);
    if (res->sent)
        fprintf(f, "  send lag     p50 %s  p99 %s  max %s (how late the "
                   "replayer sent; part of the latency)\n",
                s_dur(a, sizeof(a), (double)res->lag_p50),
                s_dur(b, sizeof(b), (double)res->lag_p99),
                s_dur(c, sizeof(c), (double)res->lag_max));
    fprintf(f, "  completions  %.1f/s over %.2f s\n", res->completion_rate,
            res->duration_s);
    fprintf(f, "  records      sent %" PRIu64 "  completed %" PRIu64
               "  errors %" PRIu64 "  timeouts %" PRIu64
               "  unmatched %" PRIu64 "  duplicates %" PRIu64 "\n",
            res->sent, res->completed, res->errors, res->timeouts,
            res->unmatched, res->duplicates);
    if (res->sent_warmup || res->late || res->malformed ||
        res->in_flight_at_stop || res->bad_records)
        fprintf(f, "               warmup %" PRIu64 "  late %" PRIu64
                   "  malformed %" PRIu64 "  in flight at stop %" PRIu64
                   "  not maps %" PRIu64 "\n",
                res->sent_warmup, res->late, res->malformed,
                res->in_flight_at_stop, res->bad_records);
    if (res->clamped)
        fprintf(f, "               clamped %" PRIu64 " (came back before "
                   "they were due: left out of the latency; is another "
                   "replay's traffic still in the target?)\n",
                res->clamped);
    if (res->hist->count) {
        fprintf(f, "  latency      p50 %s  p90 %s  p99 %s  p99.9 %s  "
                   "p99.99 %s  max %s  mean %s\n",
                s_dur(a, sizeof(a), (double)res->p50),
                s_dur(b, sizeof(b), (double)res->p90),
                s_dur(c, sizeof(c), (double)res->p99),
                s_dur(d, sizeof(d), (double)res->p999),
                s_dur(e, sizeof(e), (double)res->p9999),
                s_dur(g, sizeof(g), (double)res->max),
                s_dur(m, sizeof(m), res->mean));
        fprintf(f, "  over time    p50 first fifth %s, last fifth %s\n",
                s_dur(a, sizeof(a), (double)res->p50_first),
                s_dur(b, sizeof(b), (double)res->p50_last));
    } else {
        fprintf(f, "  latency      none: no record came back\n");
    }
    if (res->fell_behind)
        fprintf(f, "  verdict      TARGET FELL BEHIND: %s\n", res->behind_why);
    else if (res->completed)
        fprintf(f, "  verdict      target kept up\n");
    else
        fprintf(f, "  verdict      no completions to judge by\n");
    if (res->target_report)
        s_target(res, f);
    if (res->n_stages)
        s_stage_table(res, f);
}

/* ---- --json ------------------------------------------------------------- */

static json_t *s_stages_json(const sl_rp_result_t *res)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < res->n_stages; i++) {
        const sl_rp_stage_row_t *st = &res->stages[i];
        json_t *o = json_pack(
            "{s:s, s:s, s:I, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:I}",
            "stage", st->name, "kind", st->kind, "records",
            (json_int_t)st->records, "rate", st->rate, "handler_mean_ns",
            st->handler_ns, "queue_depth_mean", st->depth, "in_stage_ns",
            st->residence_ns, "queue_ns", st->queue_ns, "busy", st->busy,
            "share",
            res->mean > 0 && st->residence_ns >= 0
                ? st->residence_ns / res->mean
                : 0.0,
            "workers", (json_int_t)st->workers);
        json_array_append_new(arr, o);
    }
    return arr;
}

int sl__rp_report_json(const sl_rp_result_t *res, const char *path)
{
    json_t *lat = json_pack(
        "{s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:I, s:I, s:I}", "p50",
        (json_int_t)res->p50, "p90", (json_int_t)res->p90, "p99",
        (json_int_t)res->p99, "p999", (json_int_t)res->p999, "p9999",
        (json_int_t)res->p9999, "max", (json_int_t)res->max, "mean",
        res->mean, "min", (json_int_t)res->min, "p50_first_fifth",
        (json_int_t)res->p50_first, "p50_last_fifth",
        (json_int_t)res->p50_last);
    json_t *lag = json_pack("{s:I, s:I, s:I}", "p50", (json_int_t)res->lag_p50,
                            "p99", (json_int_t)res->lag_p99, "max",
                            (json_int_t)res->lag_max);
    json_t *root = json_pack(
        "{s:i, s:s, s:f, s:f, s:f, s:f, s:I, s:I, s:I, s:I, s:I, s:I, s:I, "
        "s:I, s:I, s:I, s:I, s:o, s:o, s:b, s:s, s:f, s:o}",
        "sluice_replay", 1, "mode", res->mode, "requested_rate",
        res->requested_rate, "achieved_rate", res->achieved_rate,
        "pacing_error", res->pacing_error, "completion_rate",
        res->completion_rate, "sent", (json_int_t)res->sent, "completed",
        (json_int_t)res->completed, "errors", (json_int_t)res->errors,
        "timeouts", (json_int_t)res->timeouts, "unmatched",
        (json_int_t)res->unmatched, "duplicates",
        (json_int_t)res->duplicates, "late", (json_int_t)res->late,
        "malformed", (json_int_t)res->malformed, "warmup_sent",
        (json_int_t)res->sent_warmup, "in_flight_at_stop",
        (json_int_t)res->in_flight_at_stop, "clamped",
        (json_int_t)res->clamped, "latency_ns", lat,
        "send_lag_ns", lag,
        "fell_behind", res->fell_behind, "fell_behind_reason",
        res->behind_why, "duration_s", res->duration_s, "per_stage",
        s_stages_json(res));
    if (!root)
        return -ENOMEM;
    if (res->target_report) {
        json_error_t e;
        json_t *t = json_loads(res->target_report, 0, &e);
        if (t)
            json_object_set_new(root, "target", t);
    }
    int rc = json_dump_file(root, path, JSON_INDENT(2) | JSON_PRESERVE_ORDER |
                                            JSON_REAL_PRECISION(10));
    json_decref(root);
    return rc == 0 ? 0 : -EIO;
}

/* ---- --hdr -------------------------------------------------------------- */

/* The level after level: 5 ticks per halving of the distance to 100%. */
static double s_next_level(double level)
{
    double ticks = 5 * pow(2, floor(log(100 / (100 - level)) / log(2)) + 1);
    return level + 100 / ticks;
}

/* The middle of bucket b, kept within [min, max]: the value that stands
 * for its counts in the standard deviation (a bucket's upper edge would
 * add up to 1/128 of every value: a spread where there is none). */
static double s_bucket_mid(const sl_hist_t *h, uint32_t b)
{
    uint64_t lo = b ? sl__hist_upper(b - 1) + 1 : 0, hi = sl__hist_upper(b);
    uint64_t mid = lo + (hi - lo + 1) / 2;
    if (mid < h->min)
        mid = h->min;
    if (mid > h->max)
        mid = h->max;
    return (double)mid;
}

/* HdrHistogram's percentile distribution ("outputPercentileDistribution"
 * text): the same levels (5 ticks per half distance to 100%), columns and
 * footer, values in milliseconds, so its plotters read it. */
int sl__rp_report_hdr(const sl_rp_result_t *res, const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -errno;
    const sl_hist_t *h = res->hist;
    fprintf(f, "%12s %12s %12s %12s\n\n", "Value", "Percentile",
            "TotalCount", "1/(1-Percentile)");
    /* HdrHistogram's percentile iteration: a bucket gives a row for each
     * level that its cumulative count reaches (level <= 100 * count /
     * total, the same comparison, so the same rows); the bucket that
     * holds the last value gives one row, at the level reached, and then
     * the row at 100%. A row's value is its bucket's upper edge (capped
     * at the max seen); its count, the values up to that edge. */
    double level = 0;
    uint64_t cum = 0;
    for (uint32_t i = 0; i < SL_HIST_BUCKETS && cum < h->count; i++) {
        if (!h->buckets[i])
            continue;
        cum += h->buckets[i];
        uint64_t v = sl__hist_upper(i) < h->max ? sl__hist_upper(i) : h->max;
        while (level <= 100.0 * (double)cum / (double)h->count) {
            double p = level / 100;
            fprintf(f, "%12.3f %12f %12" PRIu64 " %12.2f\n", (double)v / 1e6,
                    p, cum, 1 / (1 - p));
            level = s_next_level(level);
            if (cum == h->count)
                break;
        }
    }
    if (h->count)
        fprintf(f, "%12.3f %12f %12" PRIu64 " %12s\n", (double)h->max / 1e6,
                1.0, h->count, "inf");
    double mean = h->count ? (double)h->sum / (double)h->count : 0;
    double var = 0;
    for (uint32_t b = 0; b < SL_HIST_BUCKETS && h->count; b++) {
        if (h->buckets[b]) {
            double d = s_bucket_mid(h, b) - mean;
            var += d * d * h->buckets[b];
        }
    }
    double sd = h->count ? sqrt(var / (double)h->count) : 0;
    fprintf(f, "#[Mean    = %12.3f, StdDeviation   = %12.3f]\n", mean / 1e6,
            sd / 1e6);
    fprintf(f, "#[Max     = %12.3f, Total count    = %12" PRIu64 "]\n",
            (double)h->max / 1e6, h->count);
    fprintf(f, "#[Buckets = %12d, SubBuckets     = %12d]\n",
            64 - SL_HIST_SUB_BITS + 1, (int)SL_HIST_SUB);
    return fclose(f) == 0 ? 0 : -errno;
}

/* ---- --compare ---------------------------------------------------------- */

typedef struct s_metric {
    const char *label;
    const char *key;    /* in the report, or under latency_ns */
    int latency;
    int higher_better;
    int gates;          /* a regression past the threshold fails */
} s_metric_t;

static const s_metric_t s_metrics[] = {
    {"achieved rate", "achieved_rate", 0, 1, 1},
    {"completion rate", "completion_rate", 0, 1, 0},
    {"p50", "p50", 1, 0, 0},
    {"p90", "p90", 1, 0, 0},
    {"p99", "p99", 1, 0, 1},
    {"p99.9", "p999", 1, 0, 0},
    {"max", "max", 1, 0, 0},
    {"mean", "mean", 1, 0, 0},
    {"timeouts", "timeouts", 0, 0, 0},
    {"errors", "errors", 0, 0, 0},
};

static double s_new_value(const sl_rp_result_t *res, const char *key)
{
    if (!strcmp(key, "achieved_rate")) return res->achieved_rate;
    if (!strcmp(key, "completion_rate")) return res->completion_rate;
    if (!strcmp(key, "p50")) return (double)res->p50;
    if (!strcmp(key, "p90")) return (double)res->p90;
    if (!strcmp(key, "p99")) return (double)res->p99;
    if (!strcmp(key, "p999")) return (double)res->p999;
    if (!strcmp(key, "max")) return (double)res->max;
    if (!strcmp(key, "mean")) return res->mean;
    if (!strcmp(key, "timeouts")) return (double)res->timeouts;
    if (!strcmp(key, "errors")) return (double)res->errors;
    return 0;
}

static void s_value(char *buf, size_t cap, const s_metric_t *m, double v)
{
    if (m->latency)
        s_dur(buf, cap, v);
    else if (strstr(m->key, "rate"))
        snprintf(buf, cap, "%.1f/s", v);
    else
        snprintf(buf, cap, "%.0f", v);
}

int sl__rp_compare(const sl_rp_result_t *res, const char *old_path,
                   double threshold, FILE *f)
{
    json_error_t e;
    json_t *old = json_load_file(old_path, 0, &e);
    if (!old) {
        fprintf(stderr, "sluice replay: --compare: %s:%d: %s\n", old_path,
                e.line, e.text);
        return 2;
    }
    json_t *lat = json_object_get(old, "latency_ns");
    int worse = 0;
    char why[256] = "";
    size_t wl = 0;
    fprintf(f, "\ncompared with %s (threshold %.1f%%):\n", old_path,
            100 * threshold);
    fprintf(f, "%-16s %14s %14s %9s\n", "METRIC", "OLD", "NEW", "CHANGE");
    for (size_t i = 0; i < sizeof(s_metrics) / sizeof(s_metrics[0]); i++) {
        const s_metric_t *m = &s_metrics[i];
        json_t *jv = json_object_get(m->latency ? lat : old, m->key);
        if (!json_is_number(jv)) {
            fprintf(stderr, "sluice replay: --compare: %s has no number "
                            "'%s%s' (not a `sluice replay --json` "
                            "report?)\n",
                    old_path, m->latency ? "latency_ns." : "", m->key);
            json_decref(old);
            return 2;
        }
        double ov = json_number_value(jv), nv = s_new_value(res, m->key);
        char os[24], ns[24], ch[16] = "n/a";
        s_value(os, sizeof(os), m, ov);
        s_value(ns, sizeof(ns), m, nv);
        if (ov > 0)
            snprintf(ch, sizeof(ch), "%+.1f%%", 100 * (nv - ov) / ov);
        else if (nv == 0)
            snprintf(ch, sizeof(ch), "0");
        int bad = 0;
        if (m->gates && ov > 0)
            bad = m->higher_better ? nv < ov * (1 - threshold)
                                   : nv > ov * (1 + threshold);
        fprintf(f, "%-16s %14s %14s %9s%s\n", m->label, os, ns, ch,
                bad ? "  << worse" : "");
        if (bad) {
            int n = snprintf(why + wl, sizeof(why) - wl, "%s%s %s", wl ? ", " : "",
                             m->label, ch);
            if (n > 0 && (size_t)n < sizeof(why) - wl)
                wl += (size_t)n;
            worse = 1;
        }
    }
    if (worse)
        fprintf(f, "result: WORSE than %s: %s (threshold %.1f%%)\n", old_path,
                why, 100 * threshold);
    else
        fprintf(f, "result: within %.1f%% of %s (p99 and achieved rate)\n",
                100 * threshold, old_path);
    json_decref(old);
    return worse;
}
