#include "metrics.h"

#include <errno.h>
#include <stddef.h>
#include <inttypes.h>
#include <stdlib.h>

#define S_STR_(x) #x
#define S_STR(x) S_STR_(x)

const uint64_t sl__metrics_bounds_ns[SL_METRICS_N_BOUNDS] = {
    10000,     25000,     50000,      100000,     250000,
    500000,    1000000,   2500000,    5000000,    10000000,
    25000000,  50000000,  100000000,  250000000,  500000000,
    1000000000, 2500000000, 5000000000, 10000000000};

/* Written out rather than printed from the bounds so that `le` reads the
 * same in every scrape and every tool. */
static const char *const s_bound_text[SL_METRICS_N_BOUNDS] = {
    "0.00001", "0.000025", "0.00005", "0.0001", "0.00025", "0.0005",
    "0.001",   "0.0025",   "0.005",   "0.01",   "0.025",   "0.05",
    "0.1",     "0.25",     "0.5",     "1",      "2.5",     "5",
    "10"};

typedef enum s_value {
    V_IN, V_OUT, V_READ, V_FILTERED, V_DEAD, V_RETRIES, V_SPILLED, V_SHED,
    V_RESTARTS, V_BUSY_S, V_BACKPRESSURE_S, V_SLOW, V_DEPTH, V_QUEUE_MAX,
    V_CAPACITY, V_WORKERS, V_BUSY, V_LAG_S
} s_value_t;

/* Which stages a family has a sample for. */
enum { ALL = 0, SOURCES = 1, NOT_SOURCES = 2 };

typedef struct s_family {
    const char *name;
    const char *type;
    int which;
    s_value_t value;
    const char *help;
} s_family_t;

static const s_family_t s_stage_families[] = {
    {"sluice_records_read_total", "counter", SOURCES, V_READ,
     "Input units a source read, including those that could not become "
     "records."},
    {"sluice_records_in_total", "counter", NOT_SOURCES, V_IN,
     "Records handed to the stage's plugin."},
    {"sluice_records_out_total", "counter", ALL, V_OUT,
     "Records the stage emitted."},
    {"sluice_records_filtered_total", "counter", ALL, V_FILTERED,
     "Inputs the stage dropped on purpose (emitted nothing, no error)."},
    {"sluice_records_dead_lettered_total", "counter", ALL, V_DEAD,
     "Inputs that failed for good (dead-lettered, or logged without a "
     "target); for a source, input units that could not become records."},
    {"sluice_retries_total", "counter", ALL, V_RETRIES,
     "Failed attempts that were tried again."},
    {"sluice_records_spilled_total", "counter", ALL, V_SPILLED,
     "Records the stage held at shutdown past the grace period, written to "
     "the spill file (received or emitted; emitted ones are counted when "
     "the stage has finished)."},
    {"sluice_records_shed_total", "counter", ALL, V_SHED,
     "Records the stage emitted that a full consumer's when_full took "
     "(counted when the stage has finished)."},
    {"sluice_worker_restarts_total", "counter", ALL, V_RESTARTS,
     "Worker processes that died and were replaced (process lanes)."},
    {"sluice_busy_seconds_total", "counter", ALL, V_BUSY_S,
     "Time the stage's workers spent in the plugin, summed over workers."},
    {"sluice_backpressure_seconds_total", "counter", ALL, V_BACKPRESSURE_S,
     "Time the stage's output waited for credit from downstream."},
    {"sluice_slow_calls_total", "counter", ALL, V_SLOW,
     "Handler calls that took longer than the stage's slow_ms."},
    {"sluice_queue_depth", "gauge", ALL, V_DEPTH,
     "Records the stage holds now: credit granted upstream, queued, being "
     "handled and waiting to be sent."},
    {"sluice_queue_max", "gauge", ALL, V_QUEUE_MAX,
     "The most records the stage has held at once."},
    {"sluice_queue_capacity", "gauge", ALL, V_CAPACITY,
     "The stage's queue: the bound on the records it holds."},
    {"sluice_workers", "gauge", ALL, V_WORKERS,
     "Workers in the stage's pool now."},
    {"sluice_workers_busy", "gauge", ALL, V_BUSY,
     "Workers inside the plugin now."},
    {"sluice_dispatcher_lag_seconds", "gauge", ALL, V_LAG_S,
     "The longest turn of the stage's dispatcher loop in the last second."},
};

/* A histogram reduced to what is exposed: cumulative counts at the
 * bounds, the total (the sum of the buckets, so that +Inf and _count
 * always agree with the buckets) and the sum of the values. */
typedef struct s_hsnap {
    uint64_t le[SL_METRICS_N_BOUNDS];
    uint64_t count;
    uint64_t sum_ns;
} s_hsnap_t;

typedef struct s_stage_snap {
    sl_stage_stats_t st;
    s_hsnap_t handler;
    s_hsnap_t latency;
} s_stage_snap_t;

void sl__metrics_label(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\')
            fputs("\\\\", f);
        else if (*s == '"')
            fputs("\\\"", f);
        else if (*s == '\n')
            fputs("\\n", f);
        else
            fputc(*s, f);
    }
}

static void s_reduce(const sl_hist_t *h, s_hsnap_t *out)
{
    sl__hist_count_le_many(h, sl__metrics_bounds_ns, SL_METRICS_N_BOUNDS,
                           out->le);
    out->count = sl__hist_count_le(h, UINT64_MAX); /* = the +Inf bucket */
    out->sum_ns = h->sum;
}

static int s_is_source(sl_run_t *run, size_t i)
{
    return run->runners[i].desc->kind == SL_STAGE_SOURCE;
}

static const char *s_kind(sl_run_t *run, size_t i)
{
    sl_stage_kind_t k = run->runners[i].desc->kind;
    return k == SL_STAGE_SOURCE ? "source"
           : k == SL_STAGE_SINK ? "sink"
                                : "transform";
}

static void s_head(FILE *f, const char *name, const char *type,
                   const char *help)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void s_stage_label(FILE *f, sl_run_t *run, size_t i)
{
    fputs("stage=\"", f);
    sl__metrics_label(f, run->topo->stages[i].name);
    fputc('"', f);
}

static void s_seconds(FILE *f, double s)
{
    fprintf(f, "%.9f\n", s);
}

static void s_value(FILE *f, const sl_stage_stats_t *st, s_value_t v)
{
    uint64_t u = 0;
    switch (v) {
    case V_IN: u = st->in; break;
    case V_OUT: u = st->out; break;
    case V_READ: u = st->read; break;
    case V_FILTERED: u = st->filtered; break;
    case V_DEAD: u = st->errors; break;
    case V_RETRIES: u = st->retried; break;
    case V_SPILLED: u = st->spilled_in + st->spilled_out; break;
    case V_SHED: u = st->shed; break;
    case V_RESTARTS: u = st->restarts; break;
    case V_SLOW: u = st->slow_calls; break;
    case V_DEPTH: u = st->held; break;
    case V_QUEUE_MAX: u = st->held_max; break;
    case V_CAPACITY: u = st->capacity; break;
    case V_WORKERS: u = st->workers; break;
    case V_BUSY: u = st->busy; break;
    case V_BUSY_S: s_seconds(f, st->busy_s); return;
    case V_BACKPRESSURE_S:
        s_seconds(f, (double)st->backpressure_ns / 1e9);
        return;
    case V_LAG_S: s_seconds(f, (double)st->lag_ns_max / 1e9); return;
    }
    fprintf(f, "%" PRIu64 "\n", u);
}

static void s_histogram(FILE *f, sl_run_t *run, size_t i, const char *name,
                        const s_hsnap_t *h)
{
    for (size_t b = 0; b < SL_METRICS_N_BOUNDS; b++) {
        fprintf(f, "%s_bucket{", name);
        s_stage_label(f, run, i);
        fprintf(f, ",le=\"%s\"} %" PRIu64 "\n", s_bound_text[b], h->le[b]);
    }
    fprintf(f, "%s_bucket{", name);
    s_stage_label(f, run, i);
    fprintf(f, ",le=\"+Inf\"} %" PRIu64 "\n%s_sum{", h->count, name);
    s_stage_label(f, run, i);
    fputs("} ", f);
    s_seconds(f, (double)h->sum_ns / 1e9);
    fprintf(f, "%s_count{", name);
    s_stage_label(f, run, i);
    fprintf(f, "} %" PRIu64 "\n", h->count);
}

static void s_write_info(FILE *f, sl_run_t *run)
{
    const sl_topology_t *topo = run->topo;
    s_head(f, "sluice_run_info", "gauge",
           "Always 1; the topology's name is the label.");
    fputs("sluice_run_info{topology=\"", f);
    sl__metrics_label(f, topo->name);
    fputs("\"} 1\n", f);
    s_head(f, "sluice_run_elapsed_seconds", "gauge",
           "Time since the run started (until its end, once it has ended).");
    fputs("sluice_run_elapsed_seconds ", f);
    s_seconds(f, sl__run_elapsed_s(run));
    s_head(f, "sluice_stage_info", "gauge",
           "Always 1; the stage's plugin, kind and lane are the labels.");
    for (size_t i = 0; i < run->n_runners; i++) {
        fputs("sluice_stage_info{", f);
        s_stage_label(f, run, i);
        fputs(",plugin=\"", f);
        sl__metrics_label(f, topo->stages[i].plugin_name);
        fprintf(f, "\",kind=\"%s\",lane=\"%s\"} 1\n", s_kind(run, i),
                topo->stages[i].lane == SL_LANE_PROCESS ? "process"
                                                        : "thread");
    }
}

static void s_write_links(FILE *f, sl_run_t *run)
{
    const sl_topology_t *topo = run->topo;
    s_head(f, "sluice_link_credit", "gauge",
           "Credit the consumer has granted on the link and the producer "
           "has not used: what it may still send now.");
    for (size_t i = 0; i < run->n_runners; i++) {
        const sl_topo_stage_t *s = &topo->stages[i];
        for (size_t l = 0; l < s->n_inputs; l++) {
            fputs("sluice_link_credit{from=\"", f);
            sl__metrics_label(f, topo->stages[s->inputs[l]].name);
            fputs("\",to=\"", f);
            sl__metrics_label(f, s->name);
            fprintf(f, "\"} %" PRIu32 "\n", sl__run_link_credit(run, i, l));
        }
    }
    static const struct {
        const char *name, *help;
        size_t off;
    } remote[] = {
        {"sluice_link_connections_lost_total",
         "Links between nodes, at the producer: connections lost (closed, "
         "or silent for peer_timeout).",
         offsetof(sl_link_remote_stats_t, losses)},
        {"sluice_link_resent_total",
         "Links between nodes, at the producer: records sent again after a "
         "reconnect (at-least-once: they may reach the sinks twice).",
         offsetof(sl_link_remote_stats_t, resent)},
        {"sluice_link_peer_restarts_total",
         "Links between nodes: times the node at the other end came back as "
         "a new process.",
         offsetof(sl_link_remote_stats_t, peer_restarts)},
        {"sluice_link_duplicates_dropped_total",
         "Links between nodes, at the consumer: records received twice after "
         "a reconnect and dropped.",
         offsetof(sl_link_remote_stats_t, dups)},
    };
    if (run->node < 0)
        return;
    for (size_t k = 0; k < sizeof(remote) / sizeof(remote[0]); k++) {
        s_head(f, remote[k].name, "counter", remote[k].help);
        for (size_t i = 0; i < run->n_runners; i++) {
            const sl_topo_stage_t *s = &topo->stages[i];
            for (size_t l = 0; l < s->n_inputs; l++) {
                sl_link_remote_stats_t st;
                if (!sl__run_link_remote(run, i, l, &st))
                    continue;
                fprintf(f, "%s{from=\"", remote[k].name);
                sl__metrics_label(f, topo->stages[s->inputs[l]].name);
                fputs("\",to=\"", f);
                sl__metrics_label(f, s->name);
                fprintf(f, "\"} %" PRIu64 "\n",
                        *(const uint64_t *)((const char *)&st + remote[k].off));
            }
        }
    }
}

int sl__metrics_write(sl_run_t *run, FILE *f)
{
    size_t n = run->n_runners;
    s_stage_snap_t *snap = calloc(n ? n : 1, sizeof(*snap));
    /* Two sl_hist_t: too big for the stack of a server thread. */
    sl_stage_hists_t *hists = malloc(sizeof(*hists));
    if (!snap || !hists) {
        free(snap);
        free(hists);
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        sl__run_stats(run, i, &snap[i].st);
        sl__run_stage_hists(run, i, hists);
        s_reduce(&hists->handler, &snap[i].handler);
        s_reduce(&hists->latency, &snap[i].latency);
    }
    free(hists);

    s_write_info(f, run);
    for (size_t k = 0; k < sizeof(s_stage_families) / sizeof(*s_stage_families);
         k++) {
        const s_family_t *fam = &s_stage_families[k];
        s_head(f, fam->name, fam->type, fam->help);
        for (size_t i = 0; i < n; i++) {
            if ((fam->which == SOURCES && !s_is_source(run, i)) ||
                (fam->which == NOT_SOURCES && s_is_source(run, i)))
                continue;
            fprintf(f, "%s{", fam->name);
            s_stage_label(f, run, i);
            fputs("} ", f);
            s_value(f, &snap[i].st, fam->value);
        }
    }
    s_write_links(f, run);

    s_head(f, "sluice_handler_seconds", "histogram",
           "Transforms and sinks: time of one call of the plugin's process. "
           "Sampled: one call in " S_STR(SL_HANDLER_SAMPLE) " is measured, so "
           "_count is about 1/" S_STR(SL_HANDLER_SAMPLE) " of the calls and "
           "_sum covers only the measured ones (process lanes: one value, the "
           "mean, per batch).");
    for (size_t i = 0; i < n; i++)
        if (!s_is_source(run, i)) /* a source's pull is not timed */
            s_histogram(f, run, i, "sluice_handler_seconds",
                        &snap[i].handler);
    s_head(f, "sluice_latency_seconds", "histogram",
           "Sinks: end-to-end latency of each record written, from its "
           "source timestamp to the end of the sink batch that handled it.");
    for (size_t i = 0; i < n; i++)
        if (run->runners[i].desc->kind == SL_STAGE_SINK)
            s_histogram(f, run, i, "sluice_latency_seconds",
                        &snap[i].latency);
    free(snap);
    return ferror(f) ? -EIO : 0;
}
