/* `sluice record`: options, signals and the summary (see cmd_record.h). */
#include "cmd_record.h"

#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

volatile sig_atomic_t sl__rec_stop;

static void s_on_signal(int sig)
{
    (void)sig;
    sl__rec_stop = 1;
}

static void s_usage(FILE *f)
{
    fprintf(f,
            "usage: sluice record --from ADDR --link FROM>TO -o TRACE\n"
            "                     [--duration D] [--count N] [--allow-drops]\n"
            "       sluice record TOPOLOGY.yaml --stage SOURCE -o TRACE\n"
            "                     [--count N] [--duration D]\n"
            "                     [--time-field F [--time-unit s|ms|us|ns]]\n"
            "  --from ADDR    a run started with `sluice run --metrics ADDR`\n"
            "  --link A>B     the link to record (quote it: > is a shell "
            "redirection)\n");
}

/* "10s", "500ms", "2m", "1h", "250us", or bare seconds; -1 if malformed. */
static int s_duration(const char *s, uint64_t *ns)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || !(v > 0) || !isfinite(v))
        return -1;
    double mult = !*end || !strcmp(end, "s") ? 1e9
                  : !strcmp(end, "ms")       ? 1e6
                  : !strcmp(end, "us")       ? 1e3
                  : !strcmp(end, "m")        ? 60e9
                  : !strcmp(end, "h")        ? 3600e9
                                             : -1;
    if (mult < 0 || v * mult > 1e18)
        return -1;
    *ns = (uint64_t)(v * mult);
    return 0;
}

static int s_parse(int argc, char **argv, sl_rec_opts_t *o)
{
    memset(o, 0, sizeof(*o));
    o->time_unit_ns = 1000000;
    const char *unit = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int takes = !strcmp(a, "--from") || !strcmp(a, "--link") ||
                    !strcmp(a, "-o") || !strcmp(a, "--out") ||
                    !strcmp(a, "--count") || !strcmp(a, "--duration") ||
                    !strcmp(a, "--stage") || !strcmp(a, "--time-field") ||
                    !strcmp(a, "--time-unit");
        if (takes && !v) {
            fprintf(stderr, "sluice record: %s needs a value\n", a);
            return -EINVAL;
        }
        if (!strcmp(a, "--from")) {
            o->from = v;
        } else if (!strcmp(a, "--link")) {
            o->link = v;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--out")) {
            o->out = v;
        } else if (!strcmp(a, "--stage")) {
            o->stage = v;
        } else if (!strcmp(a, "--time-field")) {
            o->time_field = v;
        } else if (!strcmp(a, "--time-unit")) {
            unit = v;
        } else if (!strcmp(a, "--count")) {
            char *end;
            errno = 0;
            unsigned long long n = strtoull(v, &end, 10);
            if (errno || *end || !*v || *v == '-' || n == 0) {
                fprintf(stderr, "sluice record: --count must be a whole "
                                "number of at least 1, got '%s'\n", v);
                return -EINVAL;
            }
            o->count = n;
        } else if (!strcmp(a, "--duration")) {
            if (s_duration(v, &o->duration_ns) < 0) {
                fprintf(stderr, "sluice record: --duration must be a "
                                "duration such as 30s, 500ms or 5m, got "
                                "'%s'\n", v);
                return -EINVAL;
            }
        } else if (!strcmp(a, "--allow-drops")) {
            o->allow_drops = 1;
        } else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            s_usage(stdout);
            return 1;
        } else if (a[0] != '-' && !o->topology) {
            o->topology = a;
        } else {
            fprintf(stderr, "sluice record: unexpected argument '%s'\n", a);
            s_usage(stderr);
            return -EINVAL;
        }
        if (takes)
            i++;
    }
    if (unit) {
        static const char *const units[] = {"ns", "us", "ms", "s"};
        static const int64_t mult[] = {1, 1000, 1000000, 1000000000};
        size_t k = 0;
        while (k < 4 && strcmp(units[k], unit))
            k++;
        if (k == 4) {
            fprintf(stderr, "sluice record: --time-unit must be s, ms, us or "
                            "ns, got '%s'\n", unit);
            return -EINVAL;
        }
        o->time_unit_ns = mult[k];
    }
    const char *why = NULL;
    if (!o->out)
        why = "give the trace to write with -o TRACE";
    else if (o->from && o->topology)
        why = "give --from ADDR (a running run) or TOPOLOGY.yaml --stage "
              "SOURCE, not both";
    else if (o->from && !o->link)
        why = "--from needs --link FROM>TO";
    else if (o->from && (o->stage || o->time_field))
        why = "--stage and --time-field go with TOPOLOGY.yaml, not --from";
    else if (o->topology && !o->stage)
        why = "TOPOLOGY.yaml needs --stage SOURCE";
    else if (o->topology && (o->link || o->allow_drops))
        why = "--link and --allow-drops go with --from";
    else if (!o->from && !o->topology)
        why = "give --from ADDR --link FROM>TO, or TOPOLOGY.yaml --stage "
              "SOURCE";
    else if (unit && !o->time_field)
        why = "--time-unit goes with --time-field";
    if (why) {
        fprintf(stderr, "sluice record: %s\n", why);
        s_usage(stderr);
        return -EINVAL;
    }
    return 0;
}

static void s_summary(const sl_rec_opts_t *o, const sl_rec_result_t *r)
{
    printf("recorded %llu record%s into %s (%.3f s of traffic); stopped by "
           "%s\n", (unsigned long long)r->written, r->written == 1 ? "" : "s",
           o->out, (double)r->span_ns / 1e9, r->stopped_by);
    if (r->clamped)
        printf("  offsets raised to keep them in order: %llu\n",
               (unsigned long long)r->clamped);
    if (r->untimed)
        printf("  records without a usable '%s': %llu (kept at the previous "
               "offset)\n", o->time_field, (unsigned long long)r->untimed);
    if (r->input_errors)
        printf("  input errors in the source: %llu\n",
               (unsigned long long)r->input_errors);
    if (r->malformed)
        printf("  entries skipped as malformed: %llu\n",
               (unsigned long long)r->malformed);
    if (o->from && r->drops_known && !r->dropped)
        printf("  the run dropped no records on the tap\n");
}

/* Loud, and a failure unless allowed: a trace with holes replays a lie. */
static int s_drops(const sl_rec_opts_t *o, const sl_rec_result_t *r)
{
    if (!o->from || (r->drops_known && !r->dropped))
        return SL_EXIT_OK;
    fflush(stdout);
    if (r->drops_known)
        fprintf(stderr, "sluice record: WARNING: the run DROPPED %llu "
                "record%s on the tap (the recorder did not keep up): the "
                "trace is missing them\n", (unsigned long long)r->dropped,
                r->dropped == 1 ? "" : "s");
    else
        fprintf(stderr, "sluice record: WARNING: the run never reported its "
                "drop count (it ended without closing the tap): records may "
                "be missing\n");
    if (o->allow_drops)
        return SL_EXIT_OK;
    fprintf(stderr, "sluice record: failing for it (--allow-drops keeps the "
                    "trace and exits 0)\n");
    return SL_EXIT_FAILED;
}

int sl_cmd_record(int argc, char **argv)
{
    sl_rec_opts_t o;
    int rc = s_parse(argc, argv, &o);
    if (rc)
        return rc > 0 ? SL_EXIT_OK : SL_EXIT_USAGE;
    struct sigaction sa = {.sa_handler = s_on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sl_rec_result_t res = {.stopped_by = "the end of the input"};
    rc = o.from ? sl__record_tap(&o, &res) : sl__record_source(&o, &res);
    if (rc)
        return rc;
    s_summary(&o, &res);
    return s_drops(&o, &res);
}
