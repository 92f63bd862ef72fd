/*
 * Topology loading: the YAML stage graph, checked as a whole so that one
 * `sluice check` lists every problem with its FILE:LINE:COL, then resolved
 * into the arrays the runtime wires links from. docs/topology.md is the
 * user-facing description of every key checked here.
 */
#include "topology.h"

#include "cpu.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#define SL_TOPO_MAX_WORKERS 1024u
#define SL_TOPO_MAX_QUEUE (1u << 24)
#define SL_TOPO_MAX_BATCH 4096u
#define SL_TOPO_DEFAULT_QUEUE 1024u
#define SL_TOPO_DEFAULT_BATCH 256u
#define SL_TOPO_MAX_MS 86400000u /* 24 h: timeouts, idle time, backoff */
#define SL_TOPO_MAX_ATTEMPTS 1000u
#define SL_TOPO_DEFAULT_ATTEMPTS 3u
#define SL_TOPO_DEFAULT_BACKOFF_MS 100u
#define SL_TOPO_DEFAULT_MAX_BACKOFF_MS 10000u
#define SL_TOPO_DEFAULT_IDLE_MS 30000u

static const char *const s_top_keys[] = {"name", "defaults", "stages", NULL};
static const char *const s_default_keys[] = {
    "workers", "queue", "batch", "lane", "retry", "dead_letter", NULL};
static const char *const s_stage_keys[] = {
    "name",         "plugin", "config",  "workers", "queue",
    "batch",        "from",   "fanout",  "lane",    "timeout",
    "partition_by", "retry",  "dead_letter", NULL};
static const char *const s_fanouts[] = {"broadcast", "round_robin", NULL};
static const char *const s_lanes[] = {"thread", "process", NULL};
static const char *const s_pool_keys[] = {"min", "max", "idle", NULL};
static const char *const s_retry_keys[] = {"max_attempts", "backoff_ms",
                                           "max_backoff_ms", NULL};
static const char *const s_dl_keys[] = {"path", "format", NULL};
static const char *const s_dl_formats[] = {"jsonl", "msgpack", NULL};

/* What the checks remember about each stage beyond sl_topo_stage_t. */
typedef struct s_info {
    const sl_config_t *name_node;   /* NULL when the stage has no name */
    const sl_config_t *from_node;   /* NULL: chained to the previous one */
    const sl_config_t *queue_node;  /* NULL: from defaults */
    const sl_config_t *fanout_node;
    const sl_config_t *partition_node;
    const sl_config_t *dl_node;     /* the dead-letter path, if any */
    const sl_config_t **in_nodes;   /* per input: where it was named */
    sl_stage_kind_t kind;           /* 0 when the plugin did not load */
    char label[80];                 /* "stage 'x'" or "stage #3" */
} s_info_t;

/* `workers:` as read: a fixed count, `auto`, or {min, max, idle}. */
typedef struct s_workers {
    unsigned min, max; /* equal for a fixed pool; 0 for auto until resolved */
    uint32_t idle_ms;
    bool is_auto;
    const sl_config_t *max_node; /* where the upper bound was written */
} s_workers_t;

typedef struct s_retry {
    uint32_t max_attempts, backoff_ms, max_backoff_ms;
} s_retry_t;

/* `dead_letter:` as written, resolved per stage ({stage} differs). */
typedef struct s_dl {
    const sl_config_t *node; /* the path's node; NULL when not configured */
    int format;              /* an sl_dl_format_t, or -1: by extension */
} s_dl_t;

typedef struct s_parse {
    sl_topology_t *t;
    sl_diag_t *diag;
    s_info_t *info;
    s_workers_t d_workers; /* defaults: */
    uint32_t d_queue, d_batch;
    sl_lane_t d_lane;
    bool d_lane_bad;
    s_retry_t d_retry;
    s_dl_t d_dl;
    bool d_dl_checked; /* its folder has no {stage}: checked once */
    unsigned cpu_budget; /* 0 until first needed */
    bool oom;
} s_parse_t;

static void s_err(s_parse_t *p, const sl_config_t *at, const char *fmt, ...)
    SL_PRINTF(3, 4);

static void s_err(s_parse_t *p, const sl_config_t *at, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = NULL;
    if (vasprintf(&msg, fmt, ap) < 0)
        msg = NULL;
    va_end(ap);
    sl__diag_add(p->diag, "%s:%u:%u: %s", sl__config_file(at),
                 sl__config_line(at), sl__config_col(at), msg ? msg : fmt);
    free(msg);
}

static const char *s_kind_name(sl_stage_kind_t kind)
{
    switch (kind) {
    case SL_STAGE_SOURCE: return "source";
    case SL_STAGE_TRANSFORM: return "transform";
    case SL_STAGE_SINK: return "sink";
    }
    return "stage";
}

/* "a map", "string 'x'": what a wrong value was. */
static const char *s_what(const sl_config_t *n, char *buf, size_t len)
{
    sl_config_type_t type = sl_config_type(n);
    if (type == SL_CONFIG_SEQ || type == SL_CONFIG_MAP)
        snprintf(buf, len, "a %s", sl__config_type_name(type));
    else if (type == SL_CONFIG_NULL)
        snprintf(buf, len, "null");
    else
        snprintf(buf, len, "%s '%.60s'", sl__config_type_name(type),
                 sl_config_str(n));
    return buf;
}

static bool s_is_text(const sl_config_t *n)
{
    sl_config_type_t type = sl_config_type(n);
    return type == SL_CONFIG_STRING || type == SL_CONFIG_INT ||
           type == SL_CONFIG_FLOAT || type == SL_CONFIG_BOOL;
}

/* The text of a scalar used as a name. `plugin: null` names the null sink,
 * although YAML reads a plain null as a null: only an empty value or ~
 * means "nothing". NULL for anything else. */
static const char *s_name_text(const sl_config_t *n)
{
    if (s_is_text(n))
        return sl_config_str(n);
    if (sl_config_type(n) != SL_CONFIG_NULL)
        return NULL;
    const char *t = sl_config_str(n);
    return strcmp(t, "") != 0 && strcmp(t, "~") != 0 ? t : NULL;
}

/* ---- "did you mean" ----------------------------------------------------- */

/* Levenshtein distance, or a large number for long strings (no hint). */
static size_t s_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63)
        return 99;
    size_t row[64];
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

/* The closest candidate within distance 2 (and not a total rewrite). */
static const char *s_suggest(const char *word, const char *const *cands,
                             size_t n)
{
    const char *best = NULL;
    size_t best_d = 3;
    for (size_t i = 0; i < n; i++) {
        if (!cands[i])
            continue;
        size_t d = s_distance(word, cands[i]);
        if (d < best_d && d < strlen(cands[i])) {
            best = cands[i];
            best_d = d;
        }
    }
    return best;
}

static size_t s_count(const char *const *list)
{
    size_t n = 0;
    while (list[n])
        n++;
    return n;
}

static bool s_in(const char *word, const char *const *list)
{
    for (; *list; list++)
        if (strcmp(word, *list) == 0)
            return true;
    return false;
}

/* Reports each key of map not in known, with a hint when one is close. */
static void s_check_keys(s_parse_t *p, const sl_config_t *map,
                         const char *const *known, const char *where)
{
    for (size_t i = 0; i < sl_config_len(map); i++) {
        const char *key = sl_config_key_at(map, i);
        if (!key || s_in(key, known))
            continue;
        const char *hint = s_suggest(key, known, s_count(known));
        if (hint)
            s_err(p, sl__config_key_node_at(map, i),
                  "unknown key '%s' %s; did you mean '%s'?", key, where,
                  hint);
        else
            s_err(p, sl__config_key_node_at(map, i), "unknown key '%s' %s",
                  key, where);
    }
}

/* ---- scalar fields ------------------------------------------------------ */

/* An integer in [lo, hi]; reports and returns false otherwise. */
static bool s_get_range(s_parse_t *p, const sl_config_t *n, const char *key,
                        const char *label, int64_t lo, int64_t hi,
                        uint32_t *out)
{
    int64_t v;
    char buf[96];
    if (sl_config_int(n, &v) != 0) {
        s_err(p, n, "%s: '%s' must be an integer from %lld to %lld, got %s",
              label, key, (long long)lo, (long long)hi,
              s_what(n, buf, sizeof(buf)));
        return false;
    }
    if (v < lo || v > hi) {
        s_err(p, n, "%s: '%s' must be from %lld to %lld, got %lld", label,
              key, (long long)lo, (long long)hi, (long long)v);
        return false;
    }
    *out = (uint32_t)v;
    return true;
}

/* "in 'defaults.retry'" or "in 'retry' of stage 'x'": where a nested
 * map's unknown key is. */
static void s_where(char *buf, size_t len, const char *key, const char *label)
{
    if (strcmp(label, "defaults") == 0)
        snprintf(buf, len, "in 'defaults.%s'", key);
    else
        snprintf(buf, len, "in '%s' of %s", key, label);
}

/* A word from a short list; reports with a hint and returns -1 otherwise. */
static int s_get_word(s_parse_t *p, const sl_config_t *n, const char *key,
                      const char *label, const char *const *words)
{
    char buf[96];
    const char *v =
        sl_config_type(n) == SL_CONFIG_STRING ? sl_config_str(n) : NULL;
    for (int i = 0; v && words[i]; i++)
        if (strcmp(v, words[i]) == 0)
            return i;
    const char *hint = v ? s_suggest(v, words, s_count(words)) : NULL;
    s_err(p, n, "%s: '%s' must be '%s' or '%s', got %s%s%s%s", label, key,
          words[0], words[1], s_what(n, buf, sizeof(buf)),
          hint ? "; did you mean '" : "", hint ? hint : "",
          hint ? "'?" : "");
    return -1;
}

/* "500ms", "2s", "1m", "1h" -> milliseconds; false if not of that form. */
static bool s_parse_duration(const char *s, uint64_t *ms)
{
    static const struct {
        const char *unit;
        uint64_t ms;
    } units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}};
    uint64_t v = 0;
    size_t digits = 0;
    for (; *s >= '0' && *s <= '9'; s++, digits++)
        if (digits < 12)
            v = v * 10 + (uint64_t)(*s - '0');
    if (!digits)
        return false;
    if (digits >= 12)
        v = UINT64_MAX / 3600000; /* out of range, without overflowing */
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
        if (strcmp(s, units[i].unit) == 0) {
            *ms = v * units[i].ms;
            return true;
        }
    return false;
}

/* A duration from 1 ms to 24 h: whole milliseconds, or a string with a
 * unit. */
static bool s_get_duration(s_parse_t *p, const sl_config_t *n,
                           const char *key, const char *label, uint32_t *out)
{
    char buf[96];
    int64_t v;
    uint64_t ms = 0;
    bool ok = false;
    if (sl_config_int(n, &v) == 0) {
        ok = true;
        ms = v < 0 ? 0 : (uint64_t)v;
    } else if (sl_config_type(n) == SL_CONFIG_STRING) {
        ok = s_parse_duration(sl_config_str(n), &ms);
    }
    if (!ok) {
        s_err(p, n,
              "%s: '%s' must be a duration such as 500ms, 2s or 1m (a bare "
              "number is milliseconds), got %s",
              label, key, s_what(n, buf, sizeof(buf)));
        return false;
    }
    if (ms < 1 || ms > SL_TOPO_MAX_MS) {
        s_err(p, n, "%s: '%s' must be from 1ms to 24h, got %s", label, key,
              s_what(n, buf, sizeof(buf)));
        return false;
    }
    *out = (uint32_t)ms;
    return true;
}

/* workers: {min: N, max: M, idle: 30s}, an elastic pool. */
static bool s_get_pool(s_parse_t *p, const sl_config_t *n, const char *label,
                       s_workers_t *out)
{
    char where[128];
    size_t before = p->diag->count;
    s_where(where, sizeof(where), "workers", label);
    s_check_keys(p, n, s_pool_keys, where);
    s_workers_t w = {.min = 1, .idle_ms = SL_TOPO_DEFAULT_IDLE_MS};
    const sl_config_t *mn = sl_config_get(n, "min");
    const sl_config_t *mx = sl_config_get(n, "max");
    const sl_config_t *idle = sl_config_get(n, "idle");
    if (mn)
        s_get_range(p, mn, "workers.min", label, 1, SL_TOPO_MAX_WORKERS,
                    &w.min);
    if (!mx)
        s_err(p, n, "%s: 'workers' as a map needs 'max' (and may have "
              "'min' and 'idle')", label);
    else
        s_get_range(p, mx, "workers.max", label, 1, SL_TOPO_MAX_WORKERS,
                    &w.max);
    if (idle)
        s_get_duration(p, idle, "workers.idle", label, &w.idle_ms);
    if (p->diag->count != before)
        return false;
    if (w.max < w.min) {
        s_err(p, mx, "%s: 'workers.max' (%u) must be at least "
              "'workers.min' (%u)", label, w.max, w.min);
        return false;
    }
    w.max_node = mx;
    *out = w;
    return true;
}

/* workers: N, auto, or a map (see s_get_pool). */
static bool s_get_workers(s_parse_t *p, const sl_config_t *n,
                          const char *label, s_workers_t *out)
{
    if (sl_config_type(n) == SL_CONFIG_MAP)
        return s_get_pool(p, n, label, out);
    s_workers_t w = {.idle_ms = SL_TOPO_DEFAULT_IDLE_MS, .max_node = n};
    if (sl_config_type(n) == SL_CONFIG_STRING &&
        strcmp(sl_config_str(n), "auto") == 0) {
        w.is_auto = true;
        *out = w;
        return true;
    }
    int64_t v;
    char buf[96];
    if (sl_config_int(n, &v) != 0 || v < 1 || v > SL_TOPO_MAX_WORKERS) {
        s_err(p, n,
              "%s: 'workers' must be 'auto' or an integer from 1 to %u, "
              "got %s",
              label, SL_TOPO_MAX_WORKERS, s_what(n, buf, sizeof(buf)));
        return false;
    }
    w.min = w.max = (unsigned)v;
    *out = w;
    return true;
}

/* retry: {max_attempts, backoff_ms, max_backoff_ms}; keys left out keep
 * the values in *r (the defaults'). */
static void s_get_retry(s_parse_t *p, const sl_config_t *n, const char *label,
                        s_retry_t *r)
{
    char buf[96], where[128];
    if (sl_config_type(n) != SL_CONFIG_MAP) {
        s_err(p, n, "%s: 'retry' must be a map such as {max_attempts: 3, "
              "backoff_ms: 100}, got %s", label, s_what(n, buf, sizeof(buf)));
        return;
    }
    s_where(where, sizeof(where), "retry", label);
    s_check_keys(p, n, s_retry_keys, where);
    s_retry_t v = *r;
    const sl_config_t *a = sl_config_get(n, "max_attempts");
    const sl_config_t *b = sl_config_get(n, "backoff_ms");
    const sl_config_t *m = sl_config_get(n, "max_backoff_ms");
    bool ok = true;
    if (a)
        ok &= s_get_range(p, a, "retry.max_attempts", label, 1,
                          SL_TOPO_MAX_ATTEMPTS, &v.max_attempts);
    if (b)
        ok &= s_get_range(p, b, "retry.backoff_ms", label, 0, SL_TOPO_MAX_MS,
                          &v.backoff_ms);
    if (m)
        ok &= s_get_range(p, m, "retry.max_backoff_ms", label, 0,
                          SL_TOPO_MAX_MS, &v.max_backoff_ms);
    if (!ok)
        return;
    if ((b || m) && v.max_backoff_ms < v.backoff_ms) {
        s_err(p, m ? m : b, "%s: 'retry.max_backoff_ms' (%u) must be at "
              "least 'retry.backoff_ms' (%u)", label, v.max_backoff_ms,
              v.backoff_ms);
        return;
    }
    *r = v;
}

/* dead_letter: PATH or {path: PATH, format: jsonl|msgpack}. */
static void s_get_dl(s_parse_t *p, const sl_config_t *n, const char *label,
                     s_dl_t *out)
{
    char buf[96], where[128];
    s_dl_t d = {.node = n, .format = -1};
    const char *key = "dead_letter";
    if (sl_config_type(n) == SL_CONFIG_MAP) {
        s_where(where, sizeof(where), "dead_letter", label);
        s_check_keys(p, n, s_dl_keys, where);
        const sl_config_t *f = sl_config_get(n, "format");
        if (f && (d.format = s_get_word(p, f, "dead_letter.format", label,
                                        s_dl_formats)) < 0)
            return;
        key = "dead_letter.path";
        if (!(d.node = sl_config_get(n, "path"))) {
            s_err(p, n, "%s: 'dead_letter' needs 'path'", label);
            return;
        }
    }
    if (!s_is_text(d.node)) {
        s_err(p, d.node, "%s: '%s' must be a file path%s, got %s", label,
              key, d.node == n ? " or a map {path, format}" : "",
              s_what(d.node, buf, sizeof(buf)));
        return;
    }
    if (!sl_config_str(d.node)[0]) {
        s_err(p, d.node, "%s: '%s' must not be empty", label, key);
        return;
    }
    *out = d;
}

/* The path with each "{stage}" replaced, made absolute against the
 * topology's folder. NULL if out of memory. */
static char *s_dl_path(s_parse_t *p, const char *text, const char *stage)
{
    static const char token[] = "{stage}";
    const size_t tl = sizeof(token) - 1;
    const char *dir = text[0] == '/' ? "" : sl__config_doc_dir(p->t->doc);
    size_t n = strlen(dir) + 1 + strlen(text) + 1;
    for (const char *q = text; (q = strstr(q, token)); q += tl)
        n += strlen(stage);
    char *out = malloc(n), *o = out;
    if (!out)
        return NULL;
    if (*dir)
        o += sprintf(o, "%s%s", dir, dir[strlen(dir) - 1] == '/' ? "" : "/");
    for (const char *q = text; *q;) {
        if (strncmp(q, token, tl) == 0) {
            o = stpcpy(o, stage);
            q += tl;
        } else {
            *o++ = *q++;
        }
    }
    *o = '\0';
    return out;
}

/* The folder of a dead-letter file must exist; it is not created here
 * (validation has no side effects). */
static void s_check_dl_dir(s_parse_t *p, const sl_config_t *at,
                           const char *label, const char *path)
{
    struct stat sb;
    size_t len = strlen(path);
    if (path[len - 1] == '/' || (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))) {
        s_err(p, at, "%s: dead_letter '%s' is a directory; name a file in it",
              label, path);
        return;
    }
    char *dir = strdup(path);
    if (!dir) {
        p->oom = true;
        return;
    }
    char *slash = strrchr(dir, '/');
    slash[slash == dir] = '\0'; /* "/x" keeps its "/" */
    if (stat(dir, &sb) < 0)
        s_err(p, at, "%s: dead_letter '%s': directory '%s' does not exist",
              label, path, dir);
    else if (!S_ISDIR(sb.st_mode))
        s_err(p, at, "%s: dead_letter '%s': '%s' is not a directory", label,
              path, dir);
    free(dir);
}

static sl_dl_format_t s_dl_format_of(const char *path)
{
    const char *dot = strrchr(strrchr(path, '/'), '.');
    if (dot && (strcasecmp(dot, ".msgpack") == 0 ||
                strcasecmp(dot, ".mpk") == 0))
        return SL_DL_MSGPACK;
    return SL_DL_JSONL;
}

static unsigned s_cpu_budget(s_parse_t *p)
{
    if (!p->cpu_budget)
        p->cpu_budget = sl__cpu_budget();
    return p->cpu_budget;
}

static void s_parse_defaults(s_parse_t *p, const sl_config_t *defaults)
{
    char buf[96];
    if (!defaults)
        return;
    if (sl_config_type(defaults) != SL_CONFIG_MAP) {
        s_err(p, defaults, "'defaults' must be a map, got %s",
              s_what(defaults, buf, sizeof(buf)));
        return;
    }
    s_check_keys(p, defaults, s_default_keys, "in 'defaults'");
    const sl_config_t *n;
    if ((n = sl_config_get(defaults, "workers")))
        s_get_workers(p, n, "defaults", &p->d_workers);
    if ((n = sl_config_get(defaults, "queue")))
        s_get_range(p, n, "queue", "defaults", 1, SL_TOPO_MAX_QUEUE,
                    &p->d_queue);
    if ((n = sl_config_get(defaults, "batch")))
        s_get_range(p, n, "batch", "defaults", 1, SL_TOPO_MAX_BATCH,
                    &p->d_batch);
    if ((n = sl_config_get(defaults, "lane"))) {
        int lane = s_get_word(p, n, "lane", "defaults", s_lanes);
        p->d_lane = lane < 0 ? SL_LANE_THREAD : (sl_lane_t)lane;
        p->d_lane_bad = lane < 0;
    }
    if ((n = sl_config_get(defaults, "retry")))
        s_get_retry(p, n, "defaults", &p->d_retry);
    if ((n = sl_config_get(defaults, "dead_letter")))
        s_get_dl(p, n, "defaults", &p->d_dl);
    /* A folder without {stage} is the same for every stage: check it once
     * here rather than once per stage. */
    const char *text = p->d_dl.node ? sl_config_str(p->d_dl.node) : NULL;
    const char *slash = text ? strrchr(text, '/') : NULL;
    const char *tok = text ? strstr(text, "{stage}") : NULL;
    if (text && (!tok || !slash || tok > slash)) {
        char *path = s_dl_path(p, text, "{stage}");
        if (!path) {
            p->oom = true;
            return;
        }
        s_check_dl_dir(p, p->d_dl.node, "defaults", path);
        p->d_dl_checked = true;
        free(path);
    }
}

static bool s_valid_name(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++) {
        char c = *s;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return false;
    }
    return true;
}

/* "user.id": non-empty segments separated by single dots. */
static bool s_valid_field_path(const char *s)
{
    if (!*s || *s == '.' || s[strlen(s) - 1] == '.' || strstr(s, ".."))
        return false;
    return true;
}

/* ---- one stage ---------------------------------------------------------- */

static void s_stage_name(s_parse_t *p, size_t i, const sl_config_t *st)
{
    sl_topo_stage_t *s = &p->t->stages[i];
    s_info_t *in = &p->info[i];
    char buf[96];
    const sl_config_t *n = sl_config_get(st, "name");
    if (!n) {
        s_err(p, st, "%s: missing required key 'name'", in->label);
        return;
    }
    const char *name = s_name_text(n);
    if (!name) {
        s_err(p, n, "%s: 'name' must be a string, got %s", in->label,
              s_what(n, buf, sizeof(buf)));
        return;
    }
    if (!s_valid_name(name)) {
        s_err(p, n,
              "stage name '%s' may only contain letters, digits, '_' "
              "and '-'",
              name);
        return;
    }
    for (size_t j = 0; j < i; j++) {
        if (p->t->stages[j].name && strcmp(p->t->stages[j].name, name) == 0) {
            const sl_config_t *first = p->info[j].name_node;
            s_err(p, n, "duplicate stage name '%s' (first at %u:%u)", name,
                  sl__config_line(first), sl__config_col(first));
            return;
        }
    }
    if (!(s->name = strdup(name))) {
        p->oom = true;
        return;
    }
    in->name_node = n;
    snprintf(in->label, sizeof(in->label), "stage '%s'", name);
}

/* Loads the plugin and checks its config: keys, then its validate(). */
static void s_stage_plugin(s_parse_t *p, size_t i, const sl_config_t *st)
{
    sl_topo_stage_t *s = &p->t->stages[i];
    s_info_t *in = &p->info[i];
    char buf[96];
    const sl_config_t *n = sl_config_get(st, "plugin");
    if (!n) {
        s_err(p, st, "%s: missing required key 'plugin'", in->label);
        return;
    }
    const char *plugin = s_name_text(n);
    if (!plugin) {
        s_err(p, n, "%s: 'plugin' must be a string, got %s", in->label,
              s_what(n, buf, sizeof(buf)));
        return;
    }
    if (!(s->plugin_name = strdup(plugin))) {
        p->oom = true;
        return;
    }
    char err[1024];
    s->plugin = sl__plugin_load(s->plugin_name, err, sizeof(err));
    if (!s->plugin) {
        s_err(p, n, "%s", err);
        return;
    }
    const sl_stage_desc_t *d = s->plugin->desc;
    in->kind = d->kind;
    if (sl_config_type(s->config) != SL_CONFIG_MAP)
        return; /* already reported */
    if (d->config_keys) {
        for (size_t k = 0; k < sl_config_len(s->config); k++) {
            const char *key = sl_config_key_at(s->config, k);
            if (!key || s_in(key, d->config_keys))
                continue;
            const sl_config_t *kn = sl__config_key_node_at(s->config, k);
            const char *hint =
                s_suggest(key, d->config_keys, s_count(d->config_keys));
            if (hint)
                s_err(p, kn, "unknown key '%s' for plugin '%s'; did you "
                      "mean '%s'?", key, d->name, hint);
            else if (!d->config_keys[0])
                s_err(p, kn, "unknown key '%s' for plugin '%s' (it takes "
                      "no config)", key, d->name);
            else
                s_err(p, kn, "unknown key '%s' for plugin '%s'", key,
                      d->name);
        }
    }
    if (!d->validate)
        return;
    sl_config_doc_t *doc = p->t->doc;
    size_t before = p->diag->count;
    sl__config_doc_set_diag(doc, p->diag, in->label);
    int rc = d->validate(s->config);
    sl__config_doc_set_diag(doc, NULL, NULL);
    if (rc != 0 && p->diag->count == before)
        s_err(p, s->config, "%s: plugin '%s' rejected its config (%s)",
              in->label, d->name, strerror(rc < 0 ? -rc : rc));
}

static void s_stage_numbers(s_parse_t *p, size_t i, const sl_config_t *st)
{
    sl_topo_stage_t *s = &p->t->stages[i];
    s_info_t *in = &p->info[i];
    s_workers_t w = p->d_workers;
    bool explicit_count = false;
    s->queue = p->d_queue;
    s->batch = p->d_batch;
    const sl_config_t *n;
    const sl_config_t *wnode = sl_config_get(st, "workers");
    if (wnode && s_get_workers(p, wnode, in->label, &w))
        explicit_count = !w.is_auto;
    if ((n = sl_config_get(st, "queue"))) {
        in->queue_node = n;
        s_get_range(p, n, "queue", in->label, 1, SL_TOPO_MAX_QUEUE,
                    &s->queue);
    }
    if ((n = sl_config_get(st, "batch")))
        s_get_range(p, n, "batch", in->label, 1, SL_TOPO_MAX_BATCH,
                    &s->batch);

    unsigned max = s->plugin ? s->plugin->desc->max_workers : 0;
    if (w.is_auto)
        w.min = w.max = s_cpu_budget(p);
    if (max && w.max > max) {
        /* Only an explicit count is a mistake: `auto` and the defaults
         * mean "as many as fit". */
        if (explicit_count)
            s_err(p, w.max_node,
                  "%s: plugin '%s' allows at most %u worker%s, got %u",
                  in->label, s->plugin_name, max, max == 1 ? "" : "s",
                  w.max);
        w.max = max;
        if (w.min > max)
            w.min = max;
    }
    s->workers = w.min;
    s->workers_auto = w.is_auto;
    s->workers_min = w.min;
    s->workers_max = w.max;
    s->idle_shrink_ms = w.idle_ms;
}

/* lane, timeout, retry and dead_letter: how failures are handled. */
static void s_stage_failures(s_parse_t *p, size_t i, const sl_config_t *st)
{
    sl_topo_stage_t *s = &p->t->stages[i];
    s_info_t *in = &p->info[i];
    const sl_config_t *n;
    int lane = p->d_lane_bad ? -1 : (int)p->d_lane;
    if ((n = sl_config_get(st, "lane")))
        lane = s_get_word(p, n, "lane", in->label, s_lanes);
    s->lane = lane < 0 ? p->d_lane : (sl_lane_t)lane;
    /* After a bad lane, the lane is unknown: no guess about timeouts. */
    if ((n = sl_config_get(st, "timeout")) &&
        s_get_duration(p, n, "timeout", in->label, &s->timeout_ms) &&
        lane == SL_LANE_THREAD) {
        s_err(p, n, "%s: timeout needs lane: process (a thread cannot be "
              "stopped safely)", in->label);
        s->timeout_ms = 0;
    }
    s_retry_t r = p->d_retry;
    if ((n = sl_config_get(st, "retry")))
        s_get_retry(p, n, in->label, &r);
    s->max_attempts = r.max_attempts;
    s->backoff_ms = r.backoff_ms;
    s->max_backoff_ms = r.max_backoff_ms;

    s_dl_t dl = p->d_dl;
    bool own = (n = sl_config_get(st, "dead_letter")) != NULL;
    if (own) {
        dl = (s_dl_t){.format = -1};
        s_get_dl(p, n, in->label, &dl);
    }
    if (!dl.node || !s->name) /* none, or reported already */
        return;
    if (!(s->dl_path = s_dl_path(p, sl_config_str(dl.node), s->name))) {
        p->oom = true;
        return;
    }
    s->dl_format = dl.format >= 0 ? (sl_dl_format_t)dl.format
                                  : s_dl_format_of(s->dl_path);
    in->dl_node = dl.node;
    if (own || !p->d_dl_checked)
        s_check_dl_dir(p, dl.node, in->label, s->dl_path);
}

static void s_stage_flow(s_parse_t *p, size_t i, const sl_config_t *st)
{
    sl_topo_stage_t *s = &p->t->stages[i];
    s_info_t *in = &p->info[i];
    char buf[96];
    const sl_config_t *n;
    s->fanout = SL_FANOUT_BROADCAST;
    if ((n = sl_config_get(st, "fanout"))) {
        in->fanout_node = n;
        const char *v = sl_config_type(n) == SL_CONFIG_STRING
                            ? sl_config_str(n) : NULL;
        if (v && strcmp(v, "round_robin") == 0) {
            s->fanout = SL_FANOUT_ROUND_ROBIN;
        } else if (!v || strcmp(v, "broadcast") != 0) {
            const char *hint = v ? s_suggest(v, s_fanouts, 2) : NULL;
            s_err(p, n,
                  "%s: 'fanout' must be 'broadcast' or 'round_robin', "
                  "got %s%s%s%s",
                  in->label, s_what(n, buf, sizeof(buf)),
                  hint ? "; did you mean '" : "", hint ? hint : "",
                  hint ? "'?" : "");
        }
    }
    if ((n = sl_config_get(st, "partition_by"))) {
        in->partition_node = n;
        if (sl_config_type(n) != SL_CONFIG_STRING ||
            !s_valid_field_path(sl_config_str(n)))
            s_err(p, n,
                  "%s: 'partition_by' must be a dotted field path such as "
                  "'user.id', got %s",
                  in->label, s_what(n, buf, sizeof(buf)));
        else if (!(s->partition_by = strdup(sl_config_str(n))))
            p->oom = true;
    }
    if ((n = sl_config_get(st, "from"))) {
        in->from_node = n;
        bool is_seq = sl_config_type(n) == SL_CONFIG_SEQ;
        bool ok = s_name_text(n) != NULL;
        if (is_seq) {
            ok = sl_config_len(n) > 0;
            for (size_t k = 0; k < sl_config_len(n); k++)
                if (!s_name_text(sl_config_at(n, k))) {
                    s_err(p, sl_config_at(n, k),
                          "%s: 'from' entries must be stage names, got %s",
                          in->label,
                          s_what(sl_config_at(n, k), buf, sizeof(buf)));
                    in->from_node = NULL;
                    return;
                }
        }
        if (!ok) {
            s_err(p, n,
                  "%s: 'from' must be a stage name or a non-empty list of "
                  "them, got %s",
                  in->label, s_what(n, buf, sizeof(buf)));
            in->from_node = NULL;
        }
    }
}

static void s_parse_stage(s_parse_t *p, size_t i, const sl_config_t *st)
{
    sl_topo_stage_t *s = &p->t->stages[i];
    s_info_t *in = &p->info[i];
    char buf[96];
    snprintf(in->label, sizeof(in->label), "stage #%zu", i + 1);
    if (sl_config_type(st) != SL_CONFIG_MAP) {
        s_err(p, st, "%s: each entry of 'stages' must be a map, got %s",
              in->label, s_what(st, buf, sizeof(buf)));
        return;
    }
    s->node = st;
    s_stage_name(p, i, st);
    char where[96];
    snprintf(where, sizeof(where), "in %s", in->label);
    s_check_keys(p, st, s_stage_keys, where);

    const sl_config_t *cfg = sl_config_get(st, "config");
    if (!cfg || sl_config_type(cfg) == SL_CONFIG_NULL) {
        /* Point errors about a missing config at the stage itself. */
        s->config = sl__config_empty_map(p->t->doc, cfg ? cfg : st);
        if (!s->config)
            p->oom = true;
    } else if (sl_config_type(cfg) != SL_CONFIG_MAP) {
        s_err(p, cfg, "%s: 'config' must be a map, got %s", in->label,
              s_what(cfg, buf, sizeof(buf)));
    } else {
        s->config = cfg;
    }
    s_stage_plugin(p, i, st);
    s_stage_numbers(p, i, st);
    s_stage_flow(p, i, st);
    s_stage_failures(p, i, st);
}

/* ---- the graph ---------------------------------------------------------- */

/* A stage's name for messages; an unnamed one by its position. */
static const char *s_name(const s_parse_t *p, size_t i)
{
    return p->t->stages[i].name ? p->t->stages[i].name : p->info[i].label;
}

static int s_add_input(sl_topo_stage_t *s, s_info_t *in, size_t from,
                       const sl_config_t *where)
{
    size_t n = s->n_inputs + 1;
    size_t *inputs = realloc(s->inputs, n * sizeof(*inputs));
    if (!inputs)
        return -ENOMEM;
    s->inputs = inputs;
    const sl_config_t **nodes = realloc(in->in_nodes, n * sizeof(*nodes));
    if (!nodes)
        return -ENOMEM;
    in->in_nodes = nodes;
    s->inputs[s->n_inputs] = from;
    in->in_nodes[s->n_inputs++] = where;
    return 0;
}

/* Finds a named stage among those that got a valid name. */
static long s_find_named(const s_parse_t *p, const char *name)
{
    for (size_t j = 0; j < p->t->n_stages; j++)
        if (p->t->stages[j].name && strcmp(p->t->stages[j].name, name) == 0)
            return (long)j;
    return -1;
}

static void s_resolve_from_entry(s_parse_t *p, size_t i,
                                 const sl_config_t *entry)
{
    sl_topology_t *t = p->t;
    const char *name = s_name_text(entry);
    long j = s_find_named(p, name);
    if (j < 0) {
        const char **names = calloc(t->n_stages, sizeof(*names));
        for (size_t k = 0; names && k < t->n_stages; k++)
            names[k] = t->stages[k].name;
        const char *hint = names ? s_suggest(name, names, t->n_stages) : NULL;
        if (hint)
            s_err(p, entry, "%s: 'from' names unknown stage '%s'; did you "
                  "mean '%s'?", p->info[i].label, name, hint);
        else
            s_err(p, entry, "%s: 'from' names unknown stage '%s'",
                  p->info[i].label, name);
        free(names);
        return;
    }
    for (size_t k = 0; k < t->stages[i].n_inputs; k++)
        if (t->stages[i].inputs[k] == (size_t)j) {
            s_err(p, entry, "%s: '%s' is listed twice in 'from'",
                  p->info[i].label, name);
            return;
        }
    if (s_add_input(&t->stages[i], &p->info[i], (size_t)j, entry) != 0)
        p->oom = true;
}

static void s_resolve_inputs(s_parse_t *p, size_t i)
{
    sl_topology_t *t = p->t;
    sl_topo_stage_t *s = &t->stages[i];
    s_info_t *in = &p->info[i];
    const sl_config_t *from = in->from_node;
    if (in->kind == SL_STAGE_SOURCE) {
        if (from)
            s_err(p, from, "%s is a source (plugin '%s') and takes no "
                  "input; remove 'from'", in->label, s->plugin_name);
        return;
    }
    if (!from) {
        if (i > 0) {
            if (s_add_input(s, in, i - 1, s->node) != 0)
                p->oom = true;
        } else if (in->kind) {
            s_err(p, s->node,
                  "%s has no input: it is the first stage and plugin '%s' "
                  "is a %s, not a source; add 'from:' or start with a "
                  "source",
                  in->label, s->plugin_name, s_kind_name(in->kind));
        }
        return;
    }
    if (sl_config_type(from) != SL_CONFIG_SEQ) {
        s_resolve_from_entry(p, i, from);
        return;
    }
    for (size_t k = 0; k < sl_config_len(from); k++)
        s_resolve_from_entry(p, i, sl_config_at(from, k));
}

static int s_add_output(sl_topo_stage_t *s, size_t to)
{
    size_t *outputs =
        realloc(s->outputs, (s->n_outputs + 1) * sizeof(*outputs));
    if (!outputs)
        return -ENOMEM;
    s->outputs = outputs;
    s->outputs[s->n_outputs++] = to;
    return 0;
}

/* Links outputs (in file order of the consumers) and checks each link. */
static void s_link(s_parse_t *p)
{
    sl_topology_t *t = p->t;
    for (size_t i = 0; i < t->n_stages; i++) {
        sl_topo_stage_t *s = &t->stages[i];
        for (size_t k = 0; k < s->n_inputs; k++) {
            size_t j = s->inputs[k];
            if (s_add_output(&t->stages[j], i) != 0)
                p->oom = true;
            if (p->info[j].kind != SL_STAGE_SINK)
                continue;
            if (p->info[i].from_node)
                s_err(p, p->info[i].in_nodes[k],
                      "%s takes input from '%s', but '%s' is a sink "
                      "(plugin '%s') and has no output",
                      p->info[i].label, s_name(p, j), s_name(p, j),
                      t->stages[j].plugin_name);
            else
                s_err(p, s->node,
                      "%s takes input from the previous stage '%s', but "
                      "'%s' is a sink (plugin '%s') and has no output; "
                      "give %s a 'from:'",
                      p->info[i].label, s_name(p, j), s_name(p, j),
                      t->stages[j].plugin_name, p->info[i].label);
        }
    }
}

/* Stage-level checks that need the whole graph. */
static void s_check_ends(s_parse_t *p)
{
    sl_topology_t *t = p->t;
    for (size_t i = 0; i < t->n_stages; i++) {
        sl_topo_stage_t *s = &t->stages[i];
        s_info_t *in = &p->info[i];
        if (!s->node)
            continue;
        if ((in->kind == SL_STAGE_SOURCE || in->kind == SL_STAGE_TRANSFORM) &&
            s->n_outputs == 0)
            s_err(p, in->name_node ? in->name_node : s->node,
                  "%s output goes nowhere; add a sink", in->label);
        if (in->kind == SL_STAGE_SINK && in->fanout_node)
            s_err(p, in->fanout_node,
                  "%s is a sink: it has no outputs, so 'fanout' does not "
                  "apply", in->label);
        if (in->kind == SL_STAGE_SOURCE && in->partition_node)
            s_err(p, in->partition_node,
                  "%s is a source: it has no inputs, so 'partition_by' does "
                  "not apply", in->label);
        if (s->n_inputs > s->queue)
            s_err(p, in->queue_node ? in->queue_node : s->node,
                  "%s has %zu inputs but 'queue' is %u; each input link "
                  "needs at least one record of credit",
                  in->label, s->n_inputs, s->queue);
    }
}

/* One file holds one format: two stages may share a dead-letter file
 * (entries name their stage) only if they write it the same way. */
static void s_check_dl_files(s_parse_t *p)
{
    sl_topology_t *t = p->t;
    for (size_t j = 0; j < t->n_stages; j++) {
        if (!t->stages[j].dl_path)
            continue;
        for (size_t i = 0; i < j; i++) {
            if (!t->stages[i].dl_path ||
                strcmp(t->stages[i].dl_path, t->stages[j].dl_path) != 0 ||
                t->stages[i].dl_format == t->stages[j].dl_format)
                continue;
            s_err(p, p->info[j].dl_node,
                  "%s: dead_letter '%s' is also written by %s as %s; one "
                  "file holds one format",
                  p->info[j].label, t->stages[j].dl_path, p->info[i].label,
                  s_dl_formats[t->stages[i].dl_format]);
            break;
        }
    }
}

/* Reports the cycle closed by the edge from stack[d-1] into v. */
static void s_report_cycle(s_parse_t *p, const size_t *stack, size_t d,
                           size_t v)
{
    sl_topology_t *t = p->t;
    size_t start = 0;
    while (start < d && stack[start] != v)
        start++;
    size_t len = 0;
    for (size_t k = start; k < d; k++)
        len += strlen(s_name(p, stack[k])) + 4;
    len += strlen(s_name(p, v)) + 1;
    char *path = malloc(len);
    if (!path) {
        p->oom = true;
        return;
    }
    size_t off = 0;
    for (size_t k = start; k < d; k++)
        off += (size_t)sprintf(path + off, "%s -> ", s_name(p, stack[k]));
    strcpy(path + off, s_name(p, v));
    /* Point at where v names its predecessor in the cycle. */
    const sl_config_t *at = t->stages[v].node;
    size_t u = stack[d - 1];
    for (size_t k = 0; k < t->stages[v].n_inputs; k++)
        if (t->stages[v].inputs[k] == u)
            at = p->info[v].in_nodes[k];
    s_err(p, at, "cycle: %s", path);
    free(path);
}

/* Depth-first over outputs with an explicit stack, so a long generated
 * chain cannot overflow the C stack. Each back edge is one cycle. */
static void s_check_cycles(s_parse_t *p)
{
    sl_topology_t *t = p->t;
    size_t n = t->n_stages;
    unsigned char *color = calloc(n, 1); /* 0 new, 1 on stack, 2 done */
    size_t *stack = calloc(n, sizeof(*stack));
    size_t *next = calloc(n, sizeof(*next));
    if (!color || !stack || !next) {
        p->oom = true;
        goto out;
    }
    for (size_t root = 0; root < n; root++) {
        if (color[root])
            continue;
        size_t d = 0;
        stack[d] = root;
        next[d++] = 0;
        color[root] = 1;
        while (d > 0) {
            size_t u = stack[d - 1];
            if (next[d - 1] == t->stages[u].n_outputs) {
                color[u] = 2;
                d--;
                continue;
            }
            size_t v = t->stages[u].outputs[next[d - 1]++];
            if (color[v] == 1) {
                s_report_cycle(p, stack, d, v);
            } else if (color[v] == 0) {
                color[v] = 1;
                stack[d] = v;
                next[d++] = 0;
            }
        }
    }
out:
    free(next);
    free(stack);
    free(color);
}

/* ---- the whole file ----------------------------------------------------- */

static char *s_stem(const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *dot = strrchr(base, '.');
    size_t len = dot && dot != base ? (size_t)(dot - base) : strlen(base);
    return strndup(base, len);
}

static void s_parse_top(s_parse_t *p, const sl_config_t *root)
{
    sl_topology_t *t = p->t;
    char buf[96];
    if (sl_config_type(root) != SL_CONFIG_MAP) {
        s_err(p, root, "a topology must be a map with a 'stages' list, got %s",
              s_what(root, buf, sizeof(buf)));
        return;
    }
    s_check_keys(p, root, s_top_keys, "at the top level");
    const sl_config_t *name = sl_config_get(root, "name");
    if (name && !s_is_text(name))
        s_err(p, name, "'name' must be a string, got %s",
              s_what(name, buf, sizeof(buf)));
    t->name = name && s_is_text(name) ? strdup(sl_config_str(name))
                                      : s_stem(t->path);
    if (!t->name)
        p->oom = true;
    s_parse_defaults(p, sl_config_get(root, "defaults"));

    const sl_config_t *stages = sl_config_get(root, "stages");
    if (!stages) {
        s_err(p, root, "missing required key 'stages'");
        return;
    }
    if (sl_config_type(stages) != SL_CONFIG_SEQ) {
        s_err(p, stages, "'stages' must be a list of stages, got %s",
              s_what(stages, buf, sizeof(buf)));
        return;
    }
    size_t n = sl_config_len(stages);
    if (n == 0) {
        s_err(p, stages, "'stages' is empty; a topology needs at least a "
              "source and a sink");
        return;
    }
    t->stages = calloc(n, sizeof(*t->stages));
    p->info = calloc(n, sizeof(*p->info));
    if (!t->stages || !p->info) {
        p->oom = true;
        return;
    }
    t->n_stages = n;
    for (size_t i = 0; i < n; i++)
        s_parse_stage(p, i, sl_config_at(stages, i));
    for (size_t i = 0; i < n; i++)
        if (t->stages[i].node)
            s_resolve_inputs(p, i);
    s_link(p);
    s_check_ends(p);
    s_check_dl_files(p);
    s_check_cycles(p);

    size_t sources = 0, sinks = 0, unknown = 0;
    for (size_t i = 0; i < n; i++) {
        sources += p->info[i].kind == SL_STAGE_SOURCE;
        sinks += p->info[i].kind == SL_STAGE_SINK;
        unknown += p->info[i].kind == 0;
    }
    /* Only meaningful when every plugin's kind is known. */
    if (!unknown && !sources)
        s_err(p, stages, "the topology has no source stage");
    if (!unknown && !sinks)
        s_err(p, stages, "the topology has no sink stage");
}

static sl_topology_t *s_build(const char *path, sl_config_doc_t *doc,
                              sl_diag_t *diag)
{
    sl_diag_t local;
    sl__diag_init(&local);
    s_parse_t p = {.diag = diag ? diag : &local,
                   .d_workers = {.min = 1, .max = 1,
                                 .idle_ms = SL_TOPO_DEFAULT_IDLE_MS},
                   .d_queue = SL_TOPO_DEFAULT_QUEUE,
                   .d_batch = SL_TOPO_DEFAULT_BATCH,
                   .d_lane = SL_LANE_THREAD,
                   .d_retry = {SL_TOPO_DEFAULT_ATTEMPTS,
                               SL_TOPO_DEFAULT_BACKOFF_MS,
                               SL_TOPO_DEFAULT_MAX_BACKOFF_MS},
                   .d_dl = {.format = -1}};
    size_t before = p.diag->count;
    sl_topology_t *t = calloc(1, sizeof(*t));
    if (!t || !(t->path = strdup(path))) {
        free(t);
        sl__config_doc_destroy(&doc);
        sl__diag_add(p.diag, "%s: out of memory", path);
        t = NULL;
        goto out;
    }
    t->doc = doc;
    p.t = t;
    s_parse_top(&p, sl__config_doc_root(doc));
    if (p.oom)
        sl__diag_add(p.diag, "%s: out of memory", path);
    if (p.info)
        for (size_t i = 0; i < t->n_stages; i++)
            free(p.info[i].in_nodes);
    free(p.info);
    if (p.diag->count > before) {
        sl__diag_sort(p.diag, before, path);
        sl__topology_destroy(&t);
    }
out:
    if (!diag)
        sl__diag_print(&local, stderr);
    sl__diag_fini(&local);
    return t;
}

sl_topology_t *sl__topology_load(const char *path, sl_diag_t *diag)
{
    sl_config_doc_t *doc = sl__config_doc_load(path, diag);
    return doc ? s_build(path, doc, diag) : NULL;
}

sl_topology_t *sl__topology_parse(const char *name, const char *basedir,
                                  const char *text, sl_diag_t *diag)
{
    sl_config_doc_t *doc =
        sl__config_doc_parse(name, basedir, text, strlen(text), diag);
    return doc ? s_build(name, doc, diag) : NULL;
}

void sl__topology_destroy(sl_topology_t **tp)
{
    sl_topology_t *t = tp ? *tp : NULL;
    if (!t)
        return;
    for (size_t i = 0; i < t->n_stages; i++) {
        sl_topo_stage_t *s = &t->stages[i];
        sl__plugin_release(&s->plugin);
        free(s->name);
        free(s->plugin_name);
        free(s->partition_by);
        free(s->dl_path);
        free(s->inputs);
        free(s->outputs);
    }
    free(t->stages);
    sl__config_doc_destroy(&t->doc);
    free(t->name);
    free(t->path);
    free(t);
    *tp = NULL;
}

long sl__topology_find(const sl_topology_t *topo, const char *name)
{
    for (size_t i = 0; i < topo->n_stages; i++)
        if (topo->stages[i].name && strcmp(topo->stages[i].name, name) == 0)
            return (long)i;
    return -1;
}
