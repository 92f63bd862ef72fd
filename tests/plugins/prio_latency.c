/*
 * prio_latency: a test-only sink that measures end-to-end latency per
 * priority level, so that integration tests can check priority serving.
 *
 * Config:
 *   path   string, required. The file the summary is appended to
 *          (relative to the topology's folder; created if missing, never
 *          truncated).
 *
 * Per record it keeps now - sl_record_ts(rec) (both wall clock, ns) under
 * sl_record_priority(rec). At fini each worker appends, with a single
 * write(2) on an O_APPEND descriptor, one line per level that saw records:
 *
 *   level=<l> count=<n> p50=<ns> p99=<ns> max=<ns>
 *
 * Percentiles are nearest-rank over that worker's records. A latency below
 * 0 (a clock step) counts as 0.
 */
#include <sluice/stage.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PL_LEVELS 8
#define PL_LINE 128

typedef struct pl_level {
    uint64_t *lat;
    size_t n, cap;
} pl_level_t;

typedef struct pl_state {
    char *path;
    int fd;
    pl_level_t lv[PL_LEVELS];
} pl_state_t;

static const char *const pl_keys[] = {"path", NULL};

/* Shared by validate and init. */
static int pl_parse(const sl_config_t *cfg, char **path)
{
    *path = NULL;
    if (sl_config_get_path(cfg, "path", NULL, path) != 0)
        return -EINVAL;
    if (!*path)
        return sl_config_error(cfg, "'path' is required: the file to append "
                                    "the latencies to");
    return 0;
}

static int pl_validate(const sl_config_t *cfg)
{
    char *path;
    int rc = pl_parse(cfg, &path);
    free(path);
    return rc;
}

static void pl_free(pl_state_t *s)
{
    for (size_t l = 0; l < PL_LEVELS; l++)
        free(s->lv[l].lat);
    if (s->fd >= 0)
        close(s->fd);
    free(s->path);
    free(s);
}

static int pl_init(sl_ctx_t *ctx, const sl_config_t *cfg, void **state)
{
    pl_state_t *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->fd = -1;
    int rc = pl_parse(cfg, &s->path);
    if (rc != 0) {
        pl_free(s);
        return rc;
    }
    s->fd = open(s->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (s->fd < 0) {
        rc = -errno;
        sl_log(ctx, SL_LOG_ERROR, "prio_latency: cannot open '%s': %s",
               s->path, strerror(errno));
        pl_free(s);
        return rc;
    }
    *state = s;
    return 0;
}

static int pl_process(void *arg, sl_ctx_t *ctx, sl_record_t *rec)
{
    pl_state_t *s = arg;
    uint64_t now = sl_now_ns(), ts = sl_record_ts(rec);
    unsigned l = sl_record_priority(rec);
    pl_level_t *lv = &s->lv[l < PL_LEVELS ? l : PL_LEVELS - 1];
    if (lv->n == lv->cap) {
        size_t cap = lv->cap ? lv->cap * 2 : 4096;
        uint64_t *lat = realloc(lv->lat, cap * sizeof(*lat));
        if (!lat)
            return sl_ctx_error(ctx, "prio_latency: out of memory");
        lv->lat = lat;
        lv->cap = cap;
    }
    lv->lat[lv->n++] = now > ts ? now - ts : 0;
    return 0;
}

static int pl_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Nearest rank: the smallest value with at least pct% at or below it. */
static uint64_t pl_rank(const pl_level_t *lv, unsigned pct)
{
    size_t k = (lv->n * pct + 99) / 100;
    return lv->lat[k ? k - 1 : 0];
}

static void pl_fini(void *arg)
{
    pl_state_t *s = arg;
    if (!s)
        return;
    char text[PL_LEVELS * PL_LINE];
    size_t len = 0;
    for (unsigned l = 0; l < PL_LEVELS; l++) {
        pl_level_t *lv = &s->lv[l];
        if (!lv->n)
            continue;
        qsort(lv->lat, lv->n, sizeof(*lv->lat), pl_cmp);
        len += (size_t)snprintf(text + len, sizeof(text) - len,
                                "level=%u count=%zu p50=%" PRIu64
                                " p99=%" PRIu64 " max=%" PRIu64 "\n",
                                l, lv->n, pl_rank(lv, 50), pl_rank(lv, 99),
                                lv->lat[lv->n - 1]);
    }
    if (len) {
        ssize_t w;
        do
            w = write(s->fd, text, len);
        while (w < 0 && errno == EINTR);
        if (w != (ssize_t)len)
            sl_log(NULL, SL_LOG_ERROR, "prio_latency: writing '%s' failed: %s",
                   s->path, w < 0 ? strerror(errno) : "short write");
    }
    pl_free(s);
}

SL_STAGE_DEFINE(.name = "prio_latency",
                .summary = "test: appends end-to-end latency percentiles per "
                           "priority level",
                .kind = SL_STAGE_SINK, .max_workers = 1,
                .config_keys = pl_keys, .validate = pl_validate,
                .init = pl_init, .process = pl_process, .fini = pl_fini);
