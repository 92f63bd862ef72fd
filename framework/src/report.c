/* The end of a run: the ledger check, the summary table, the JSON report. */
#include "log.h"
#include "run.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Where every record maps to one record downstream (no stage emitted
 * more than one record per input, no fan-out, no dead-letter stage), the
 * run as a whole must account for each record read exactly once. */
static void s_check_run_totals(sl_run_t *run, sl_diag_t *diag)
{
    if (run->node >= 0) /* one node sees only part of the run */
        return;
    for (size_t i = 0; i < run->n_runners; i++) {
        sl_runner_t *r = &run->runners[i];
        sl_stage_stats_t st;
        sl__run_stats(run, i, &st);
        if (r->n_out > 1 || r->spec->dl_stage >= 0 ||
            (r->desc->kind == SL_STAGE_TRANSFORM && st.out != st.ok))
            return;
    }
    sl_run_totals_t t;
    sl__run_totals(run, &t);
    if (t.read != t.delivered + t.filtered + t.dead_lettered + t.spilled +
                      t.shed)
        sl__diag_add(diag, "run: read %" PRIu64 " != delivered %" PRIu64
                     " + filtered %" PRIu64 " + dead-lettered %" PRIu64
                     " + spilled %" PRIu64 " + shed %" PRIu64,
                     t.read, t.delivered, t.filtered, t.dead_lettered,
                     t.spilled, t.shed);
}

int sl__run_check_ledger(sl_run_t *run, sl_diag_t *diag)
{
    size_t before = diag->count;
    const sl_topology_t *topo = run->topo;
    for (size_t i = 0; i < run->n_runners; i++) {
        sl_runner_t *r = &run->runners[i];
        const char *name = r->spec->name;
        if (r->remote) /* its own node checks it */
            continue;
        sl_stage_stats_t st;
        sl__run_stats(run, i, &st);
        switch (r->desc->kind) {
        case SL_STAGE_SOURCE:
            if (st.read != st.ok + st.errors)
                sl__diag_add(diag, "stage '%s': read %" PRIu64 " != emitted %"
                             PRIu64 " + input errors %" PRIu64,
                             name, st.read, st.ok, st.errors);
            break;
        case SL_STAGE_TRANSFORM:
            if (st.in != st.ok + st.filtered + st.errors + st.spilled_in)
                sl__diag_add(diag, "stage '%s': in %" PRIu64 " != passed %"
                             PRIu64 " + filtered %" PRIu64 " + dead-lettered %"
                             PRIu64 " + spilled %" PRIu64,
                             name, st.in, st.ok, st.filtered, st.errors,
                             st.spilled_in);
            break;
        case SL_STAGE_SINK:
            if (st.in != st.ok + st.errors + st.spilled_in)
                sl__diag_add(diag, "stage '%s': in %" PRIu64 " != written %"
                             PRIu64 " + dead-lettered %" PRIu64 " + spilled %"
                             PRIu64, name, st.in, st.ok, st.errors,
                             st.spilled_in);
            break;
        }
        /* Everything emitted must have left on the links, or been spilled
         * or shed instead. */
        if (r->n_out) {
            uint64_t total = 0;
            for (size_t o = 0; o < r->n_out; o++) {
                uint64_t gone = r->link_sent[o] + r->link_spilled[o] +
                                r->link_shed[o];
                total += gone;
                if (r->spec->fanout == SL_FANOUT_BROADCAST && gone != st.out)
                    sl__diag_add(diag, "stage '%s': emitted %" PRIu64
                                 " but sent %" PRIu64 ", spilled %" PRIu64
                                 " and shed %" PRIu64 " for '%s'",
                                 name, st.out, r->link_sent[o],
                                 r->link_spilled[o], r->link_shed[o],
                                 topo->stages[r->spec->outputs[o]].name);
            }
            if (r->spec->fanout == SL_FANOUT_ROUND_ROBIN && total != st.out)
                sl__diag_add(diag, "stage '%s': emitted %" PRIu64
                             " but sent %" PRIu64 " in all",
                             name, st.out, total);
        }
        /* Every link delivers what its sender counted. */
        uint64_t received = 0;
        for (size_t l = 0; l < r->spec->n_inputs; l++) {
            const sl_runner_t *up = &run->runners[r->spec->inputs[l]];
            uint64_t sent = 0;
            for (size_t o = 0; o < up->n_out; o++)
                if (up->spec->outputs[o] == i)
                    sent = up->link_sent[o];
            if (up->spec->dl_stage == (long)i)
                sent = up->dl_sent;
            received += r->in_received[l];
            if (!r->in_eos[l])
                sl__diag_add(diag, "link '%s' -> '%s': no end-of-stream",
                             up->spec->name, name);
            else if (r->in_expected[l] != r->in_received[l])
                sl__diag_add(diag, "link '%s' -> '%s': end-of-stream announced %"
                             PRIu64 ", received %" PRIu64,
                             up->spec->name, name, r->in_expected[l],
                             r->in_received[l]);
            /* across nodes the sender's count is on its node (see
             * sl__run_print_links); the end-of-stream carries it here */
            if (!up->remote && r->in_received[l] != sent)
                sl__diag_add(diag, "link '%s' -> '%s': sent %" PRIu64
                             ", received %" PRIu64,
                             up->spec->name, name, sent, r->in_received[l]);
        }
        if (r->spec->n_inputs && received != st.in)
            sl__diag_add(diag, "stage '%s': received %" PRIu64
                         " but handled %" PRIu64,
                         name, received, st.in);
    }
    s_check_run_totals(run, diag);
    uint64_t lost = atomic_load(&run->spill_lost);
    if (lost)
        sl__diag_add(diag, "%" PRIu64 " record%s could not be written to the "
                     "spill file %s", lost, lost == 1 ? "" : "s",
                     topo->spill_path);
    return diag->count == before ? 0 : -EBADMSG;
}

void sl__run_totals(sl_run_t *run, sl_run_totals_t *t)
{
    memset(t, 0, sizeof(*t));
    for (size_t i = 0; i < run->n_runners; i++) {
        sl_stage_stats_t st;
        sl__run_stats(run, i, &st);
        if (run->runners[i].desc->kind == SL_STAGE_SOURCE)
            t->read += st.read;
        if (run->runners[i].desc->kind == SL_STAGE_SINK)
            t->delivered += st.ok;
        t->filtered += st.filtered;
        t->dead_lettered += st.errors;
        t->retried += st.retried;
        t->shed += st.shed;
    }
    t->spilled = atomic_load(&run->spilled);
    t->lost = atomic_load(&run->spill_lost);
}

static const char *s_kind(sl_stage_kind_t k)
{
    return k == SL_STAGE_SOURCE ? "source" : k == SL_STAGE_SINK ? "sink" : "transform";
}

void sl__run_print_summary(sl_run_t *run, FILE *f)
{
    fprintf(f, "%-16s %-12s %7s %10s %10s %9s %8s %8s %8s %15s %8s\n",
            "stage", "plugin", "workers", "in", "out", "filtered", "dead",
            "retried", "spilled", "max queue/cap", "busy s");
    for (size_t i = 0; i < run->n_runners; i++) {
        sl_runner_t *r = &run->runners[i];
        if (r->remote) /* another node's */
            continue;
        sl_stage_stats_t st;
        sl__run_stats(run, i, &st);
        char in[24], queue[32];
        if (r->desc->kind == SL_STAGE_SOURCE)
            snprintf(in, sizeof(in), "%" PRIu64 "r", st.read);
        else
            snprintf(in, sizeof(in), "%" PRIu64, st.in);
        snprintf(queue, sizeof(queue), "%u/%u", st.held_max, st.capacity);
        /* a plugin given by path shows as its file name */
        const char *plugin = strrchr(r->spec->plugin_name, '/');
        plugin = plugin ? plugin + 1 : r->spec->plugin_name;
        fprintf(f, "%-16s %-12s %7u %10s %10" PRIu64 " %9" PRIu64 " %8" PRIu64
                " %8" PRIu64 " %8" PRIu64 " %15s %8.2f\n",
                r->spec->name, plugin, st.workers, in, st.out,
                st.filtered, st.errors, st.retried,
                st.spilled_in + st.spilled_out, queue, st.busy_s);
        if (st.shed)
            fprintf(f, "%-16s %" PRIu64 " record%s shed by when_full of a "
                    "consumer\n", "", st.shed, st.shed == 1 ? "" : "s");
        if (st.grows || st.shrinks)
            fprintf(f, "%-16s pool %u..%u: grew %" PRIu64 " time%s, shrank %"
                    PRIu64 " time%s\n", "", r->spec->workers, r->n_workers,
                    st.grows, st.grows == 1 ? "" : "s", st.shrinks,
                    st.shrinks == 1 ? "" : "s");
        if (st.restarts)
            fprintf(f, "%-16s %" PRIu64 " worker restart%s; duplicates: %" PRIu64
                    " record%s handled twice by the plugin, none sent on twice\n",
                    "", st.restarts, st.restarts == 1 ? "" : "s",
                    st.redelivered, st.redelivered == 1 ? "" : "s");
    }
}

static void s_json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

int sl__run_write_report(sl_run_t *run, const char *path, int ledger_ok)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -errno;
    double elapsed = sl__run_elapsed_s(run);
    sl_run_totals_t t;
    sl__run_totals(run, &t);
    fprintf(f, "{\"topology\":");
    s_json_str(f, run->topo->name);
    fprintf(f, ",\"elapsed_s\":%.6f,\"ledger_ok\":%s,\"failed\":%s,"
            "\"totals\":{\"read\":%" PRIu64 ",\"delivered\":%" PRIu64
            ",\"filtered\":%" PRIu64 ",\"dead_lettered\":%" PRIu64
            ",\"retried\":%" PRIu64 ",\"spilled\":%" PRIu64
            ",\"shed\":%" PRIu64 ",\"lost\":%" PRIu64 "},\"stages\":[",
            elapsed, ledger_ok ? "true" : "false",
            atomic_load(&run->failed) ? "true" : "false", t.read, t.delivered,
            t.filtered, t.dead_lettered, t.retried, t.spilled, t.shed, t.lost);
    for (size_t i = 0; i < run->n_runners; i++) {
        sl_runner_t *r = &run->runners[i];
        sl_stage_stats_t st;
        sl__run_stats(run, i, &st);
        fprintf(f, "%s{\"name\":", i ? "," : "");
        s_json_str(f, r->spec->name);
        fprintf(f, ",\"plugin\":");
        s_json_str(f, r->spec->plugin_name);
        fprintf(f,
                ",\"kind\":\"%s\",\"workers\":%u,\"queue\":%u,\"read\":%" PRIu64
                ",\"in\":%" PRIu64 ",\"out\":%" PRIu64 ",\"filtered\":%" PRIu64
                ",\"errors\":%" PRIu64 ",\"dead_lettered\":%" PRIu64
                ",\"retried\":%" PRIu64 ",\"spilled_in\":%" PRIu64
                ",\"spilled_out\":%" PRIu64 ",\"shed\":%" PRIu64
                ",\"delivered\":%" PRIu64 ",\"sent\":%" PRIu64
                ",\"max_queue\":%u,\"busy_s\":%.6f",
                s_kind(r->desc->kind), st.workers, st.capacity, st.read, st.in,
                st.out, st.filtered, st.errors, st.errors, st.retried,
                st.spilled_in, st.spilled_out, st.shed, st.ok, st.sent,
                st.held_max, st.busy_s);
        fprintf(f, ",\"lane\":\"%s\",\"restarts\":%" PRIu64
                ",\"redelivered\":%" PRIu64
                ",\"pool\":{\"min\":%u,\"max\":%u,\"grows\":%" PRIu64
                ",\"shrinks\":%" PRIu64 "}",
                r->spec->lane == SL_LANE_PROCESS ? "process" : "thread",
                st.restarts, st.redelivered, r->spec->workers,
                r->n_workers, st.grows, st.shrinks);
        if (r->desc->kind == SL_STAGE_SINK)
            fprintf(f,
                    ",\"latency_ns\":{\"count\":%" PRIu64 ",\"p50\":%" PRIu64
                    ",\"p90\":%" PRIu64 ",\"p99\":%" PRIu64 ",\"max\":%" PRIu64 "}",
                    st.lat_count, st.lat_p50, st.lat_p90, st.lat_p99, st.lat_max);
        fprintf(f, ",\"backpressure_s\":%.6f,\"dispatcher_lag_max_s\":%.6f"
                ",\"slow_calls\":%" PRIu64,
                (double)st.backpressure_ns / 1e9, (double)st.lag_ns_max / 1e9,
                st.slow_calls);
        sl_stage_hists_t *h = malloc(sizeof(*h));
        if (h && r->desc->kind != SL_STAGE_SOURCE) {
            sl__run_stage_hists(run, i, h);
            fprintf(f, ",\"handler_ns\":{\"sampled\":%" PRIu64
                    ",\"p50\":%" PRIu64 ",\"p95\":%" PRIu64 ",\"p99\":%"
                    PRIu64 ",\"p999\":%" PRIu64 ",\"max\":%" PRIu64 "}",
                    h->handler.count, sl__hist_quantile(&h->handler, 0.50),
                    sl__hist_quantile(&h->handler, 0.95),
                    sl__hist_quantile(&h->handler, 0.99),
                    sl__hist_quantile(&h->handler, 0.999), h->handler.max);
        }
        free(h);
        fputc('}', f);
    }
    fprintf(f, "]}\n");
    return fclose(f) == 0 ? 0 : -errno;
}
