/*
 * The keys of a topology's `defaults` and of each stage: their values are
 * checked one by one, with the position and a hint for every problem, and
 * stored in sl_topo_stage_t. docs/topology.md describes every key read
 * here; topology.c resolves and checks the graph they make.
 */
#include "topology_parse.h"

#include "cpu.h"
#include "log.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

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
#define SL_TOPO_DEFAULT_SLOW_MS 50u

static const char *const s_default_keys[] = {
    "workers", "queue", "batch", "lane", "retry", "dead_letter", "slow_ms",
    NULL};
static const char *const s_stage_keys[] = {
    "name",         "plugin", "config",  "workers", "queue",
    "batch",        "from",   "fanout",  "lane",    "timeout",
    "partition_by", "retry",  "dead_letter", "uses", "when_full",
    "priority", "slow_ms", "host", "limits", NULL};
static const char *const s_fanouts[] = {"broadcast", "round_robin", NULL};
static const char *const s_lanes[] = {"thread", "process", NULL};
static const char *const s_pool_keys[] = {"min", "max", "idle", NULL};
static const char *const s_retry_keys[] = {"max_attempts", "backoff_ms",
                                           "max_backoff_ms", NULL};
static const char *const s_dl_keys[] = {"path", "format", "stage", NULL};
static const char *const s_dl_formats[] = {"jsonl", "msgpack", NULL};

/* ---- scalar fields ------------------------------------------------------ */

/* An integer in [lo, hi]; reports and returns false otherwise. */
static bool s_get_range(sl_topo_parse_t *p, const sl_config_t *n,
                        const char *key, const char *label, int64_t lo,
                        int64_t hi, uint32_t *out)
{
    int64_t v;
    char buf[96];
    if (sl_config_int(n, &v) != 0) {
        sl__topo_err(p, n,
                     "%s: '%s' must be an integer from %lld to %lld, got %s",
                     label, key, (long long)lo, (long long)hi,
                     sl__topo_what(n, buf, sizeof(buf)));
        return false;
    }
    if (v < lo || v > hi) {
        sl__topo_err(p, n, "%s: '%s' must be from %lld to %lld, got %lld",
                     label, key, (long long)lo, (long long)hi, (long long)v);
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
static int s_get_word(sl_topo_parse_t *p, const sl_config_t *n,
                      const char *key, const char *label,
                      const char *const *words)
{
    char buf[96];
    const char *v =
        sl_config_type(n) == SL_CONFIG_STRING ? sl_config_str(n) : NULL;
    for (int i = 0; v && words[i]; i++)
        if (strcmp(v, words[i]) == 0)
            return i;
    const char *hint = v ? sl__topo_suggest(v, words,
                                            sl__topo_count(words)) : NULL;
    sl__topo_err(p, n, "%s: '%s' must be '%s' or '%s', got %s%s%s%s", label,
                 key, words[0], words[1], sl__topo_what(n, buf, sizeof(buf)),
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
bool sl__topo_get_duration(sl_topo_parse_t *p, const sl_config_t *n,
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
        sl__topo_err(p, n, "%s: '%s' must be a duration such as 500ms, 2s or "
                     "1m (a bare number is milliseconds), got %s", label, key,
                     sl__topo_what(n, buf, sizeof(buf)));
        return false;
    }
    if (ms < 1 || ms > SL_TOPO_MAX_MS) {
        sl__topo_err(p, n, "%s: '%s' must be from 1ms to 24h, got %s", label,
                     key, sl__topo_what(n, buf, sizeof(buf)));
        return false;
    }
    *out = (uint32_t)ms;
    return true;
}

/* workers: {min: N, max: M, idle: 30s}, an elastic pool. */
static bool s_get_pool(sl_topo_parse_t *p, const sl_config_t *n,
                       const char *label, sl_topo_workers_t *out)
{
    char where[128];
    size_t before = p->diag->count;
    s_where(where, sizeof(where), "workers", label);
    sl__topo_check_keys(p, n, s_pool_keys, where);
    sl_topo_workers_t w = {.min = 1, .idle_ms = SL_TOPO_DEFAULT_IDLE_MS};
    const sl_config_t *mn = sl_config_get(n, "min");
    const sl_config_t *mx = sl_config_get(n, "max");
    const sl_config_t *idle = sl_config_get(n, "idle");
    if (mn)
        s_get_range(p, mn, "workers.min", label, 1, SL_TOPO_MAX_WORKERS,
                    &w.min);
    if (!mx)
        sl__topo_err(p, n, "%s: 'workers' as a map needs 'max' (and may have "
                     "'min' and 'idle')", label);
    else
        s_get_range(p, mx, "workers.max", label, 1, SL_TOPO_MAX_WORKERS,
                    &w.max);
    if (idle)
        sl__topo_get_duration(p, idle, "workers.idle", label, &w.idle_ms);
    if (p->diag->count != before)
        return false;
    if (w.max < w.min) {
        sl__topo_err(p, mx, "%s: 'workers.max' (%u) must be at least "
                     "'workers.min' (%u)", label, w.max, w.min);
        return false;
    }
    w.max_node = mx;
    *out = w;
    return true;
}

/* workers: N, auto, or a map (see s_get_pool). */
static bool s_get_workers(sl_topo_parse_t *p, const sl_config_t *n,
                          const char *label, sl_topo_workers_t *out)
{
    if (sl_config_type(n) == SL_CONFIG_MAP)
        return s_get_pool(p, n, label, out);
    sl_topo_workers_t w = {.idle_ms = SL_TOPO_DEFAULT_IDLE_MS, .max_node = n};
    if (sl_config_type(n) == SL_CONFIG_STRING &&
        strcmp(sl_config_str(n), "auto") == 0) {
        w.is_auto = true;
        *out = w;
        return true;
    }
    int64_t v;
    char buf[96];
    if (sl_config_int(n, &v) != 0 || v < 1 || v > SL_TOPO_MAX_WORKERS) {
        sl__topo_err(p, n, "%s: 'workers' must be 'auto' or an integer from 1 "
                     "to %u, got %s", label, SL_TOPO_MAX_WORKERS,
                     sl__topo_what(n, buf, sizeof(buf)));
        return false;
    }
    w.min = w.max = (unsigned)v;
    *out = w;
    return true;
}

/* retry: {max_attempts, backoff_ms, max_backoff_ms}; keys left out keep
 * the values in *r (the defaults'). */
static void s_get_retry(sl_topo_parse_t *p, const sl_config_t *n,
                        const char *label, sl_topo_retry_t *r)
{
    char buf[96], where[128];
    if (sl_config_type(n) != SL_CONFIG_MAP) {
        sl__topo_err(p, n, "%s: 'retry' must be a map such as {max_attempts: "
                     "3, backoff_ms: 100}, got %s", label,
                     sl__topo_what(n, buf, sizeof(buf)));
        return;
    }
    s_where(where, sizeof(where), "retry", label);
    sl__topo_check_keys(p, n, s_retry_keys, where);
    sl_topo_retry_t v = *r;
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
        sl__topo_err(p, m ? m : b, "%s: 'retry.max_backoff_ms' (%u) must be "
                     "at least 'retry.backoff_ms' (%u)", label,
                     v.max_backoff_ms, v.backoff_ms);
        return;
    }
    *r = v;
}

/* dead_letter: PATH or {path: PATH, format: jsonl|msgpack}. */
static void s_get_dl(sl_topo_parse_t *p, const sl_config_t *n,
                     const char *label, sl_topo_dl_t *out)
{
    char buf[96], where[128];
    sl_topo_dl_t d = {.node = n, .format = -1};
    const char *key = "dead_letter";
    if (sl_config_type(n) == SL_CONFIG_MAP) {
        s_where(where, sizeof(where), "dead_letter", label);
        sl__topo_check_keys(p, n, s_dl_keys, where);
        const sl_config_t *f = sl_config_get(n, "format");
        if (f && (d.format = s_get_word(p, f, "dead_letter.format", label,
                                        s_dl_formats)) < 0)
            return;
        const sl_config_t *to = sl_config_get(n, "stage");
        key = "dead_letter.path";
        d.node = sl_config_get(n, "path");
        if (to) {
            if (d.node || f) {
                sl__topo_err(p, d.node ? d.node : f, "%s: 'dead_letter' takes "
                             "either 'stage' or 'path' (with 'format'), not "
                             "both", label);
                return;
            }
            if (!sl__topo_name_text(to)) {
                sl__topo_err(p, to, "%s: 'dead_letter.stage' must be a stage "
                             "name, got %s", label,
                             sl__topo_what(to, buf, sizeof(buf)));
                return;
            }
            *out = (sl_topo_dl_t){.stage_node = to, .format = -1};
            return;
        }
        if (!d.node) {
            sl__topo_err(p, n, "%s: 'dead_letter' needs 'path' (a file) or "
                         "'stage' (a stage to route dead letters to)", label);
            return;
        }
    }
    if (!sl__topo_is_text(d.node)) {
        sl__topo_err(p, d.node, "%s: '%s' must be a file path%s, got %s",
                     label, key, d.node == n ? " or a map {path, format}" : "",
                     sl__topo_what(d.node, buf, sizeof(buf)));
        return;
    }
    if (!sl_config_str(d.node)[0]) {
        sl__topo_err(p, d.node, "%s: '%s' must not be empty", label, key);
        return;
    }
    *out = d;
}

/* The path with each "{stage}" replaced, made absolute against the
 * topology's folder. NULL if out of memory. */
char *sl__topo_path(sl_topo_parse_t *p, const char *text, const char *stage)
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
void sl__topo_check_file_dir(sl_topo_parse_t *p, const sl_config_t *at,
                             const char *label, const char *what,
                             const char *path)
{
    struct stat sb;
    size_t len = strlen(path);
    if (path[len - 1] == '/' || (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))) {
        sl__topo_err(p, at,
                     "%s: %s '%s' is a directory; name a file in it",
                     label, what, path);
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
        sl__topo_err(p, at,
                     "%s: %s '%s': directory '%s' does not exist",
                     label, what, path, dir);
    else if (!S_ISDIR(sb.st_mode))
        sl__topo_err(p, at, "%s: %s '%s': '%s' is not a directory",
                     label, what, path, dir);
    free(dir);
}

sl_dl_format_t sl__topo_dl_format_of(const char *path)
{
    const char *dot = strrchr(strrchr(path, '/'), '.');
    if (dot && (strcasecmp(dot, ".msgpack") == 0 ||
                strcasecmp(dot, ".mpk") == 0))
        return SL_DL_MSGPACK;
    return SL_DL_JSONL;
}

static unsigned s_cpu_budget(sl_topo_parse_t *p)
{
    if (!p->cpu_budget)
        p->cpu_budget = sl__cpu_budget();
    return p->cpu_budget;
}

void sl__topo_parse_init(sl_topo_parse_t *p, sl_diag_t *diag)
{
    *p = (sl_topo_parse_t){.diag = diag,
                           .d_workers = {.min = 1, .max = 1,
                                         .idle_ms = SL_TOPO_DEFAULT_IDLE_MS},
                           .d_queue = SL_TOPO_DEFAULT_QUEUE,
                           .d_batch = SL_TOPO_DEFAULT_BATCH,
                           .d_slow_ms = SL_TOPO_DEFAULT_SLOW_MS,
                           .d_lane = SL_LANE_THREAD,
                           .d_retry = {SL_TOPO_DEFAULT_ATTEMPTS,
                                       SL_TOPO_DEFAULT_BACKOFF_MS,
                                       SL_TOPO_DEFAULT_MAX_BACKOFF_MS},
                           .d_dl = {.format = -1}};
}

void sl__topo_parse_defaults(sl_topo_parse_t *p, const sl_config_t *defaults)
{
    char buf[96];
    if (!defaults)
        return;
    if (sl_config_type(defaults) != SL_CONFIG_MAP) {
        sl__topo_err(p, defaults, "'defaults' must be a map, got %s",
                     sl__topo_what(defaults, buf, sizeof(buf)));
        return;
    }
    sl__topo_check_keys(p, defaults, s_default_keys, "in 'defaults'");
    const sl_config_t *n;
    if ((n = sl_config_get(defaults, "workers")))
        s_get_workers(p, n, "defaults", &p->d_workers);
    if ((n = sl_config_get(defaults, "queue")))
        s_get_range(p, n, "queue", "defaults", 1, SL_TOPO_MAX_QUEUE,
                    &p->d_queue);
    if ((n = sl_config_get(defaults, "batch")))
        s_get_range(p, n, "batch", "defaults", 1, SL_TOPO_MAX_BATCH,
                    &p->d_batch);
    if ((n = sl_config_get(defaults, "slow_ms")))
        s_get_range(p, n, "slow_ms", "defaults", 0, SL_TOPO_MAX_MS,
                    &p->d_slow_ms);
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
        char *path = sl__topo_path(p, text, "{stage}");
        if (!path) {
            p->oom = true;
            return;
        }
        sl__topo_check_file_dir(p, p->d_dl.node, "defaults", "dead_letter", path);
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
bool sl__topo_valid_field_path(const char *s)
{
    if (!*s || *s == '.' || s[strlen(s) - 1] == '.' || strstr(s, ".."))
        return false;
    return true;
}

/* ---- one stage ---------------------------------------------------------- */

static void s_stage_name(sl_topo_parse_t *p, size_t i, const sl_config_t *st)
{
    sl_topo_stage_t *s = &p->t->stages[i];
    sl_topo_info_t *in = &p->info[i];
    char buf[96];
    const sl_config_t *n = sl_config_get(st, "name");
    if (!n) {
        sl__topo_err(p, st, "%s: missing required key 'name'", in->label);
        return;
    }
    const char *name = sl__topo_name_text(n);
    if (!name) {
        sl__topo_err(p, n, "%s: 'name' must be a string, got %s", in->label,
                     sl__topo_what(n, buf, sizeof(buf)));
        return;
    }
    if (!s_valid_name(name)) {
        sl__topo_err(p, n, "stage name '%s' may only contain letters, digits, "
                     "'_' and '-'", name);
        return;
    }
    for (size_t j = 0; j < i; j++) {
        if (p->t->stages[j].name && strcmp(p->t->stages[j].name, name) == 0) {
            const sl_config_t *first = p->info[j].name_node;
            sl__topo_err(p, n, "duplicate stage name '%s' (first at %u:%u)",
                         name, sl__config_line(first), sl__config_col(first));
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
static void s_stage_plugin(sl_topo_parse_t *p, size_t i, const sl_config_t *st)
{
    sl_topo_stage_t *s = &p->t->stages[i];
    sl_topo_info_t *in = &p->info[i];
    char buf[96];
    const sl_config_t *n = sl_config_get(st, "plugin");
    if (!n) {
        sl__topo_err(p, st, "%s: missing required key 'plugin'", in->label);
        return;
    }
    const char *plugin = sl__topo_name_text(n);
    if (!plugin) {
        sl__topo_err(p, n, "%s: 'plugin' must be a string, got %s", in->label,
                     sl__topo_what(n, buf, sizeof(buf)));
        return;
    }
    if (!(s->plugin_name = strdup(plugin))) {
        p->oom = true;
        return;
    }
    char err[1024];
    s->plugin = sl__plugin_load(s->plugin_name, err, sizeof(err));
    if (!s->plugin) {
        sl__topo_err(p, n, "%s", err);
        return;
    }
    const sl_stage_desc_t *d = s->plugin->desc;
    in->kind = d->kind;
    if (sl_config_type(s->config) != SL_CONFIG_MAP)
        return; /* already reported */
    if (d->config_keys) {
        for (size_t k = 0; k < sl_config_len(s->config); k++) {
            const char *key = sl_config_key_at(s->config, k);
            if (!key || sl__topo_in(key, d->config_keys))
                continue;
            const sl_config_t *kn = sl__config_key_node_at(s->config, k);
            const char *hint =
                sl__topo_suggest(key, d->config_keys,
                                 sl__topo_count(d->config_keys));
            if (hint)
                sl__topo_err(p, kn, "unknown key '%s' for plugin '%s'; did "
                             "you mean '%s'?", key, d->name, hint);
            else if (!d->config_keys[0])
                sl__topo_err(p, kn, "unknown key '%s' for plugin '%s' (it "
                             "takes no config)", key, d->name);
            else
                sl__topo_err(p, kn, "unknown key '%s' for plugin '%s'", key,
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
    char code[SL_RC_TEXT_MAX];
    if (rc != 0 && p->diag->count == before)
        sl__topo_err(p, s->config, "%s: plugin '%s' rejected its config (%s)",
                     in->label, d->name,
                     sl__rc_text(rc, "validate", code, sizeof(code)));
}

static void s_stage_numbers(sl_topo_parse_t *p, size_t i,
                            const sl_config_t *st)
{
    sl_topo_stage_t *s = &p->t->stages[i];
    sl_topo_info_t *in = &p->info[i];
    sl_topo_workers_t w = p->d_workers;
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
    s->slow_ms = p->d_slow_ms;
    if ((n = sl_config_get(st, "slow_ms")))
        s_get_range(p, n, "slow_ms", in->label, 0, SL_TOPO_MAX_MS,
                    &s->slow_ms);

    unsigned max = s->plugin ? s->plugin->desc->max_workers : 0;
    if (w.is_auto)
        w.min = w.max = s_cpu_budget(p);
    if (max && w.max > max) {
        /* Only an explicit count is a mistake: `auto` and the defaults
         * mean "as many as fit". */
        if (explicit_count)
            sl__topo_err(p, w.max_node, "%s: plugin '%s' allows at most %u "
                         "worker%s, got %u", in->label, s->plugin_name, max,
                         max == 1 ? "" : "s", w.max);
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
static void s_stage_failures(sl_topo_parse_t *p, size_t i,
                             const sl_config_t *st)
{
    sl_topo_stage_t *s = &p->t->stages[i];
    sl_topo_info_t *in = &p->info[i];
    const sl_config_t *n;
    int lane = p->d_lane_bad ? -1 : (int)p->d_lane;
    if ((n = sl_config_get(st, "lane")))
        lane = s_get_word(p, n, "lane", in->label, s_lanes);
    s->lane = lane < 0 ? p->d_lane : (sl_lane_t)lane;
    /* After a bad lane, the lane is unknown: no guess about timeouts. */
    if ((n = sl_config_get(st, "timeout")) &&
        sl__topo_get_duration(p, n, "timeout", in->label, &s->timeout_ms) &&
        lane == SL_LANE_THREAD) {
        sl__topo_err(p, n, "%s: timeout needs lane: process (a thread cannot "
                     "be stopped safely)", in->label);
        s->timeout_ms = 0;
    }
    sl_topo_retry_t r = p->d_retry;
    if ((n = sl_config_get(st, "retry")))
        s_get_retry(p, n, in->label, &r);
    s->max_attempts = r.max_attempts;
    s->backoff_ms = r.backoff_ms;
    s->max_backoff_ms = r.max_backoff_ms;

    sl_topo_dl_t dl = p->d_dl;
    bool own = (n = sl_config_get(st, "dead_letter")) != NULL;
    if (own) {
        dl = (sl_topo_dl_t){.format = -1};
        s_get_dl(p, n, in->label, &dl);
    }
    in->dl_stage_node = dl.stage_node;
    in->dl_stage_own = own;
    if (!dl.node || !s->name) /* none, or reported already */
        return;
    if (!(s->dl_path = sl__topo_path(p, sl_config_str(dl.node), s->name))) {
        p->oom = true;
        return;
    }
    s->dl_format = dl.format >= 0 ? (sl_dl_format_t)dl.format
                                  : sl__topo_dl_format_of(s->dl_path);
    in->dl_node = dl.node;
    if (own || !p->d_dl_checked)
        sl__topo_check_file_dir(p, dl.node, in->label, "dead_letter", s->dl_path);
}

static void s_stage_flow(sl_topo_parse_t *p, size_t i, const sl_config_t *st)
{
    sl_topo_stage_t *s = &p->t->stages[i];
    sl_topo_info_t *in = &p->info[i];
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
            const char *hint = v ? sl__topo_suggest(v, s_fanouts, 2) : NULL;
            sl__topo_err(p, n, "%s: 'fanout' must be 'broadcast' or "
                         "'round_robin', got %s%s%s%s", in->label,
                         sl__topo_what(n, buf, sizeof(buf)),
                         hint ? "; did you mean '" : "", hint ? hint : "",
                         hint ? "'?" : "");
        }
    }
    if ((n = sl_config_get(st, "partition_by"))) {
        in->partition_node = n;
        if (sl_config_type(n) != SL_CONFIG_STRING ||
            !sl__topo_valid_field_path(sl_config_str(n)))
            sl__topo_err(p, n, "%s: 'partition_by' must be a dotted field "
                         "path such as 'user.id', got %s", in->label,
                         sl__topo_what(n, buf, sizeof(buf)));
        else if (!(s->partition_by = strdup(sl_config_str(n))))
            p->oom = true;
    }
    if ((n = sl_config_get(st, "from"))) {
        in->from_node = n;
        bool is_seq = sl_config_type(n) == SL_CONFIG_SEQ;
        bool ok = sl__topo_name_text(n) != NULL;
        if (is_seq) {
            ok = sl_config_len(n) > 0;
            for (size_t k = 0; k < sl_config_len(n); k++)
                if (!sl__topo_name_text(sl_config_at(n, k))) {
                    sl__topo_err(p, sl_config_at(n, k),
                                 "%s: 'from' entries must be stage names, "
                                 "got %s", in->label,
                                 sl__topo_what(sl_config_at(n, k), buf,
                                               sizeof(buf)));
                    in->from_node = NULL;
                    return;
                }
        }
        if (!ok) {
            sl__topo_err(p, n, "%s: 'from' must be a stage name or a "
                         "non-empty list of them, got %s", in->label,
                         sl__topo_what(n, buf, sizeof(buf)));
            in->from_node = NULL;
        }
    }
}

void sl__topo_parse_stage(sl_topo_parse_t *p, size_t i, const sl_config_t *st)
{
    sl_topo_stage_t *s = &p->t->stages[i];
    sl_topo_info_t *in = &p->info[i];
    char buf[96];
    snprintf(in->label, sizeof(in->label), "stage #%zu", i + 1);
    if (sl_config_type(st) != SL_CONFIG_MAP) {
        sl__topo_err(p, st, "%s: each entry of 'stages' must be a map, got %s",
                     in->label, sl__topo_what(st, buf, sizeof(buf)));
        return;
    }
    s->node = st;
    s_stage_name(p, i, st);
    char where[96];
    snprintf(where, sizeof(where), "in %s", in->label);
    sl__topo_check_keys(p, st, s_stage_keys, where);

    const sl_config_t *cfg = sl_config_get(st, "config");
    if (!cfg || sl_config_type(cfg) == SL_CONFIG_NULL) {
        /* Point errors about a missing config at the stage itself. */
        s->config = sl__config_empty_map(p->t->doc, cfg ? cfg : st);
        if (!s->config)
            p->oom = true;
    } else if (sl_config_type(cfg) != SL_CONFIG_MAP) {
        sl__topo_err(p, cfg, "%s: 'config' must be a map, got %s", in->label,
                     sl__topo_what(cfg, buf, sizeof(buf)));
    } else {
        s->config = cfg;
    }
    s_stage_plugin(p, i, st);
    s_stage_numbers(p, i, st);
    s_stage_flow(p, i, st);
    s_stage_failures(p, i, st);
    sl__topo_parse_stage_routing(p, i, st);
    s->limits = p->t->limits;
    sl__topo_parse_limits(p, sl_config_get(st, "limits"), in->label,
                          &s->limits);
}

/* ---- across stages ------------------------------------------------------ */

/* One file holds one format: two stages may share a dead-letter file
 * (entries name their stage) only if they write it the same way. */
void sl__topo_check_dl_files(sl_topo_parse_t *p)
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
            sl__topo_err(p, p->info[j].dl_node, "%s: dead_letter '%s' is also "
                         "written by %s as %s; one file holds one format",
                         p->info[j].label, t->stages[j].dl_path,
                         p->info[i].label,
                         s_dl_formats[t->stages[i].dl_format]);
            break;
        }
    }
}
