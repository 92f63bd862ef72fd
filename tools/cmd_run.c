#include "cli.h"
#include "cmd_run.h"
#include "log.h"
#include "metrics_http.h"
#include "progress.h"
#include "run.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct s_opts {
    const char *file;
    const char *report;
    int quiet;
    long grace_ms; /* --grace, or -1: the topology's */
    const char *workers[16]; /* --workers STAGE=N, applied after loading */
    const char *node;        /* --node NAME: only that host's stages */
    size_t n_workers;
    sl_cli_run_t metrics; /* only .metrics and .metrics_linger_ms */
} s_opts_t;

/* "500ms", "30s", "2m" or bare milliseconds; -1 if malformed. */
static long s_duration_ms(const char *s)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || v < 0)
        return -1;
    long mult = !*end || strcmp(end, "ms") == 0 ? 1
                : strcmp(end, "s") == 0         ? 1000
                : strcmp(end, "m") == 0         ? 60000
                                                : -1;
    if (mult < 0 || v > 86400000L / mult)
        return -1;
    return v * mult;
}

static int s_parse(int argc, char **argv, s_opts_t *o)
{
    memset(o, 0, sizeof(*o));
    o->grace_ms = -1;
    int rc;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *next = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--report") == 0 && next) {
            o->report = next;
            i++;
        } else if (strcmp(a, "--quiet") == 0 || strcmp(a, "-q") == 0) {
            o->quiet = 1;
        } else if (strcmp(a, "--grace") == 0 && next) {
            if ((o->grace_ms = s_duration_ms(next)) < 0) {
                fprintf(stderr, "sluice run: --grace must be a duration such "
                        "as 500ms, 30s or 2m, got '%s'\n", next);
                return -EINVAL;
            }
            i++;
        } else if (strcmp(a, "--node") == 0 && next) {
            o->node = next;
            i++;
        } else if (strcmp(a, "--workers") == 0 && next) {
            if (o->n_workers == sizeof(o->workers) / sizeof(o->workers[0])) {
                fprintf(stderr, "sluice run: too many --workers options\n");
                return -EINVAL;
            }
            o->workers[o->n_workers++] = next;
            i++;
        } else if ((rc = sl_cli_log_option("sluice run", a, next)) != 0) {
            if (rc < 0)
                return rc;
            i++;
        } else if ((rc = sl_cli_metrics_option("sluice run", a, next,
                                               &o->metrics)) != 0) {
            if (rc < 0)
                return rc;
            i++;
        } else if (a[0] != '-' && !o->file) {
            o->file = a;
        } else {
            fprintf(stderr, "sluice run: unexpected argument '%s'\n", a);
            return -EINVAL;
        }
    }
    if (!o->file) {
        fprintf(stderr, "usage: sluice run FILE [--node NAME] "
                        "[--report OUT.json] [--quiet] "
                        "[--grace DURATION] [--workers STAGE=N]... "
                        "[--log-level LEVEL] "
                        "[--log-format logfmt|json] [--metrics ADDR] "
                        "[--metrics-linger SECONDS]\n");
        return -EINVAL;
    }
    return 0;
}

int sl_cli_log_option(const char *cmd, const char *a, const char *next)
{
    if (!next)
        return 0;
    if (strcmp(a, "--log-level") == 0) {
        sl_log_level_t level;
        if (sl__log_parse_level(next, &level) != 0) {
            fprintf(stderr, "%s: unknown log level '%s' "
                            "(error, warn, info, debug)\n", cmd, next);
            return -EINVAL;
        }
        sl__log_set_level(level);
        return 1;
    }
    if (strcmp(a, "--log-format") == 0) {
        if (strcmp(next, "json") == 0)
            sl__log_set_format(SL_LOG_JSON);
        else if (strcmp(next, "logfmt") == 0)
            sl__log_set_format(SL_LOG_LOGFMT);
        else {
            fprintf(stderr, "%s: unknown log format '%s' "
                            "(logfmt, json)\n", cmd, next);
            return -EINVAL;
        }
        return 1;
    }
    return 0;
}

/* Seconds (a bare number, fractions allowed) or a duration with ms, s or
 * m; -1 if malformed. */
static long s_linger_ms(const char *s)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || !(v >= 0))
        return -1;
    double mult = !*end || strcmp(end, "s") == 0 ? 1000
                  : strcmp(end, "ms") == 0       ? 1
                  : strcmp(end, "m") == 0        ? 60000
                                                 : -1;
    if (mult < 0 || v * mult > 86400000.0)
        return -1;
    return (long)(v * mult + 0.5);
}

int sl_cli_metrics_option(const char *cmd, const char *a, const char *next,
                          sl_cli_run_t *o)
{
    if (!next)
        return 0;
    if (strcmp(a, "--metrics") == 0) {
        struct sockaddr_storage ss;
        socklen_t len;
        char err[512];
        if (sl__metrics_addr_parse(next, &ss, &len, err, sizeof(err)) != 0) {
            fprintf(stderr, "%s: --metrics: %s\n", cmd, err);
            return -EINVAL;
        }
        o->metrics = next;
        return 1;
    }
    if (strcmp(a, "--metrics-linger") == 0) {
        if ((o->metrics_linger_ms = s_linger_ms(next)) < 0) {
            fprintf(stderr, "%s: --metrics-linger must be seconds such as 5 "
                    "or 0.5 (or 500ms, 2m), got '%s'\n", cmd, next);
            return -EINVAL;
        }
        return 1;
    }
    return 0;
}

/* After the end: the final values stay up for a scrape, until the linger
 * time is over or a signal comes. */
static void s_linger(const sigset_t *set, long ms, const char *url)
{
    sl__log(SL_LOG_INFO, NULL, -1, "run ended; metrics stay on %s for %ld ms "
            "(SIGINT or SIGTERM to stop now)", url, ms);
    uint64_t deadline = sl_mono_ns() + (uint64_t)ms * 1000000ull;
    for (;;) {
        uint64_t now = sl_mono_ns();
        if (now >= deadline)
            return;
        uint64_t left = deadline - now;
        struct timespec ts = {(time_t)(left / 1000000000ull),
                              (long)(left % 1000000000ull)};
        int sig = sigtimedwait(set, NULL, &ts);
        if (sig == SIGINT || sig == SIGTERM)
            return;
    }
}

static int s_all_finished(sl_run_t *run)
{
    for (size_t i = 0; i < run->n_runners; i++)
        if (!atomic_load(&run->runners[i].finished))
            return 0;
    return 1;
}

/* Signals are taken synchronously by this thread only: the first SIGINT or
 * SIGTERM stops intake and drains for up to the grace period, after which
 * whatever is still in flight is spilled; a second signal aborts. SIGHUP,
 * which other daemons take as "reload", is answered in the log and
 * otherwise ignored: a topology is not reloaded in place (and dying of it,
 * with no summary, would lose what is in flight). */
static void s_supervise(sl_run_t *run, const sigset_t *set, long grace_ms,
                        int progress)
{
    sl_cli_progress_t pg;
    sl_cli_progress_init(&pg, run, progress);
    int stops = 0;
    uint64_t deadline = 0;
    struct timespec tick = {0, 20 * 1000 * 1000};
    while (!s_all_finished(run)) {
        int sig = sigtimedwait(set, NULL, &tick);
        sl_cli_progress_tick(&pg, run);
        if (deadline && !atomic_load(&run->spilling) &&
            sl_mono_ns() >= deadline) {
            sl_cli_progress_clear(&pg);
            sl__log(SL_LOG_WARN, NULL, -1, "grace period of %ld ms over: "
                    "spilling what is still in flight to %s", grace_ms,
                    run->topo->spill_path);
            sl__run_spill(run);
        }
        if (sig == SIGHUP) {
            sl_cli_progress_clear(&pg);
            sl__log(SL_LOG_WARN, NULL, -1, "SIGHUP ignored: sluice does not "
                    "reload a topology in place; restart the run to change "
                    "it (SIGTERM drains it first)");
        }
        if (sig != SIGINT && sig != SIGTERM)
            continue;
        sl_cli_progress_clear(&pg);
        if (++stops == 1) {
            sl__log(SL_LOG_WARN, NULL, -1,
                    "%s: stopping the sources and draining for up to %ld ms "
                    "(again to abort)",
                    sig == SIGINT ? "SIGINT" : "SIGTERM", grace_ms);
            sl__run_stop(run);
            deadline = sl_mono_ns() + (uint64_t)grace_ms * 1000000ull;
        } else {
            sl__log(SL_LOG_ERROR, NULL, -1, "second signal: aborting");
            sl__run_abort(run);
        }
    }
    sl_cli_progress_fini(&pg); /* before the summary */
}

int sl_cli_run_topology(const sl_topology_t *topo, const sl_cli_run_t *o)
{
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, &old); /* inherited by every thread */

    int code = SL_EXIT_FAILED;
    char err[1024];
    sl_diag_t diag;
    sl_metrics_server_t *metrics = NULL;
    sl_run_t *run = sl__run_new(topo, err, sizeof(err));
    if (!run) {
        fprintf(stderr, "%s: %s\n", o->cmd, err);
        goto out;
    }
    if (o->metrics) {
        metrics = sl__metrics_server_start(run, o->metrics, err, sizeof(err));
        if (!metrics) {
            fprintf(stderr, "%s: --metrics: %s\n", o->cmd, err);
            goto out;
        }
        sl__log(SL_LOG_INFO, NULL, -1, "metrics on %s",
                sl__metrics_server_url(metrics));
    }
    if (sl__run_start(run) == 0)
        s_supervise(run, &set,
                    o->grace_ms >= 0 ? o->grace_ms : (long)topo->grace_ms,
                    !o->quiet);
    int rc = sl__run_wait(run);

    sl__diag_init(&diag);
    int ledger = rc == 0 ? sl__run_check_ledger(run, &diag) : -ECANCELED;
    double elapsed = sl__run_elapsed_s(run);
    if (!o->quiet) {
        sl__run_print_summary(run, stderr);
        sl__run_print_links(run, stderr);
        uint64_t sunk = 0;
        for (size_t i = 0; i < run->n_runners; i++)
            if (run->runners[i].desc->kind == SL_STAGE_SINK) {
                sl_stage_stats_t st;
                sl__run_stats(run, i, &st);
                sunk += st.in;
            }
        fprintf(stderr, "run '%s': %.3f s, %llu records into sinks (%.0f/s)",
                topo->name, elapsed, (unsigned long long)sunk,
                elapsed > 0 ? (double)sunk / elapsed : 0.0);
        fprintf(stderr, "; %s\n",
                rc ? "FAILED (see errors above)"
                   : ledger ? "LEDGER DOES NOT BALANCE" : "ledger balanced");
        sl_run_totals_t t;
        sl__run_totals(run, &t);
        fprintf(stderr, "records: %llu read, %llu delivered, %llu filtered, "
                "%llu dead-lettered, %llu spilled, %llu shed (%llu retries)\n",
                (unsigned long long)t.read, (unsigned long long)t.delivered,
                (unsigned long long)t.filtered,
                (unsigned long long)t.dead_lettered,
                (unsigned long long)t.spilled, (unsigned long long)t.shed,
                (unsigned long long)t.retried);
    }
    uint64_t spilled = atomic_load(&run->spilled);
    if (spilled)
        fprintf(stderr, "%s: %llu record%s spilled to %s at shutdown; replay "
                "with `sluice dlq replay`\n", o->cmd,
                (unsigned long long)spilled, spilled == 1 ? "" : "s",
                topo->spill_path);
    /* Everything the sources emitted is finished: their positions hold. */
    if (rc == 0 && ledger == 0 && sl__run_commit_positions(run) != 0)
        fprintf(stderr, "%s: could not commit source positions\n", o->cmd);
    if (ledger && rc == 0) {
        fprintf(stderr, "%s: ledger does not balance:\n", o->cmd);
        sl__diag_print(&diag, stderr);
    }
    sl__diag_fini(&diag);
    if (o->report) {
        int wrc = sl__run_write_report(run, o->report, ledger == 0);
        if (wrc)
            fprintf(stderr, "%s: cannot write report %s: %s\n", o->cmd,
                    o->report, strerror(-wrc));
    }
    if (o->after)
        o->after(run, o->quiet, o->arg);
    code = rc ? SL_EXIT_FAILED : ledger ? SL_EXIT_LEDGER
         : spilled ? SL_EXIT_SPILLED : SL_EXIT_OK;
    if (metrics && o->metrics_linger_ms > 0)
        s_linger(&set, o->metrics_linger_ms, sl__metrics_server_url(metrics));
out:
    sl__metrics_server_stop(&metrics); /* before the run it reads */
    sl__run_destroy(&run);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return code;
}

/* "STAGE=N": a fixed pool of N for STAGE, whatever the file says. */
static int s_apply_workers(sl_topology_t *topo, const char *arg)
{
    const char *eq = strrchr(arg, '=');
    char *end = NULL;
    unsigned long n = 0;
    if (eq && eq != arg) {
        errno = 0;
        n = strtoul(eq + 1, &end, 10);
    }
    if (!eq || eq == arg || end == eq + 1 || *end || errno || n > UINT_MAX) {
        fprintf(stderr, "sluice run: --workers wants STAGE=N, got '%s'\n",
                arg);
        return -EINVAL;
    }
    char stage[256];
    snprintf(stage, sizeof(stage), "%.*s", (int)(eq - arg), arg);
    char err[512];
    int rc = sl__topology_set_workers(topo, stage, (unsigned)n, err,
                                      sizeof(err));
    if (rc)
        fprintf(stderr, "sluice run: --workers: %s\n", err);
    return rc;
}

int sl_cmd_run(int argc, char **argv)
{
    s_opts_t o;
    if (s_parse(argc, argv, &o) != 0)
        return SL_EXIT_USAGE;

    sl_diag_t diag;
    sl__diag_init(&diag);
    sl_topology_t *topo = sl__topology_load(o.file, &diag);
    if (!topo) {
        sl__diag_print(&diag, stderr);
        sl__diag_fini(&diag);
        return SL_EXIT_USAGE;
    }
    sl__diag_print(&diag, stderr); /* warnings */
    sl__diag_fini(&diag);

    char err[512];
    if (o.node && sl__topology_set_node(topo, o.node, err, sizeof(err))) {
        fprintf(stderr, "sluice run: %s\n", err);
        sl__topology_destroy(&topo);
        return SL_EXIT_USAGE;
    }
    for (size_t i = 0; i < o.n_workers; i++) {
        if (s_apply_workers(topo, o.workers[i]) != 0) {
            sl__topology_destroy(&topo);
            return SL_EXIT_USAGE;
        }
    }

    sl_cli_run_t ro = {.cmd = "sluice run", .report = o.report,
                       .quiet = o.quiet, .grace_ms = o.grace_ms,
                       .metrics = o.metrics.metrics,
                       .metrics_linger_ms = o.metrics.metrics_linger_ms};
    int code = sl_cli_run_topology(topo, &ro);
    sl__topology_destroy(&topo);
    return code;
}
