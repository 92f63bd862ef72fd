#include "progress.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define PERIOD_NS (250ull * 1000 * 1000)

void sl_cli_progress_init(sl_cli_progress_t *p, sl_run_t *run, int want)
{
    memset(p, 0, sizeof(*p));
    if (!want || !isatty(STDERR_FILENO))
        return;
    /* Without the per-stage baseline there is no "slowest": no line. */
    p->busy_s = calloc(run->n_runners ? run->n_runners : 1, sizeof(double));
    if (!p->busy_s)
        return;
    p->n_stages = run->n_runners;
    p->last_ns = sl_mono_ns();
    p->on = 1;
}

/* 999, 12.3k, 312k, 1.2M, 3.4G: short enough to keep the line narrow. */
static void s_count(char *buf, size_t cap, double v)
{
    static const char units[] = {'k', 'M', 'G', 'T'};
    if (v < 1000) {
        snprintf(buf, cap, "%.0f", v);
        return;
    }
    size_t u = 0;
    v /= 1000;
    while (v >= 999.5 && u + 1 < sizeof(units)) {
        v /= 1000;
        u++;
    }
    snprintf(buf, cap, v < 99.95 ? "%.1f%c" : "%.0f%c", v, units[u]);
}

static void s_write(const char *s, size_t n)
{
    while (n) {
        ssize_t w = write(STDERR_FILENO, s, n);
        if (w <= 0)
            return; /* a progress line is not worth retrying for */
        s += w;
        n -= (size_t)w;
    }
}

void sl_cli_progress_tick(sl_cli_progress_t *p, sl_run_t *run)
{
    if (!p->on)
        return;
    uint64_t now = sl_mono_ns();
    if (now - p->last_ns < PERIOD_NS)
        return;
    double dt = (double)(now - p->last_ns) / 1e9;

    sl_run_totals_t t;
    sl__run_totals(run, &t);
    double rate = (double)(t.read - p->last_read) / dt;
    p->rate = p->ticks++ ? (p->rate + rate) / 2 : rate;

    /* The busiest stage over the last period: busy time over the time its
     * workers had. */
    double worst = 0;
    size_t worst_i = SIZE_MAX;
    for (size_t i = 0; i < p->n_stages; i++) {
        sl_stage_stats_t st;
        sl__run_stats(run, i, &st);
        double busy = st.busy_s - p->busy_s[i];
        p->busy_s[i] = st.busy_s;
        if (!st.workers || busy <= 0)
            continue;
        double frac = busy / (dt * st.workers);
        if (frac > worst) {
            worst = frac;
            worst_i = i;
        }
    }
    p->last_ns = now;
    p->last_read = t.read;

    char rd[16], dl[16], rt[16], when[32], slow[128] = "";
    s_count(rd, sizeof(rd), (double)t.read);
    s_count(dl, sizeof(dl), (double)t.delivered);
    s_count(rt, sizeof(rt), p->rate);
    unsigned long tenths = (unsigned long)(sl__run_elapsed_s(run) * 10);
    unsigned long secs = tenths / 10;
    if (secs >= 3600)
        snprintf(when, sizeof(when), "%lu:%02lu:%02lu", secs / 3600,
                 secs / 60 % 60, secs % 60);
    else
        snprintf(when, sizeof(when), "%02lu:%02lu.%lu", secs / 60, secs % 60,
                 tenths % 10);
    if (worst_i != SIZE_MAX)
        snprintf(slow, sizeof(slow), "  [slowest: '%s' %.0f%% busy]",
                 run->runners[worst_i].spec->name,
                 worst > 1 ? 100.0 : worst * 100);

    char line[512];
    int n = snprintf(line, sizeof(line), "\r  %s read  %s delivered  %s/s  "
                     "%s%s", rd, dl, rt, when, slow);
    if (n < 0)
        return;
    size_t len = (size_t)n < sizeof(line) - 4 ? (size_t)n : sizeof(line) - 5;
    /* A line that wraps cannot be redrawn in place: cut it to the width. */
    struct winsize ws;
    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 1 &&
        len > ws.ws_col)
        len = ws.ws_col; /* "\r" plus ws_col - 1 visible columns */
    /* Erase what a longer previous line left, then put the cursor back at
     * the start so that a log line written meanwhile overwrites the line
     * instead of being appended to it. */
    memcpy(line + len, "\033[K\r", 4);
    s_write(line, len + 4);
    p->drawn = 1;
}

void sl_cli_progress_clear(sl_cli_progress_t *p)
{
    if (!p->drawn)
        return;
    s_write("\r\033[K", 4);
    p->drawn = 0;
}

void sl_cli_progress_fini(sl_cli_progress_t *p)
{
    sl_cli_progress_clear(p);
    free(p->busy_s);
    memset(p, 0, sizeof(*p));
}
