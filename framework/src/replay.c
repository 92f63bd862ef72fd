/*
 * `sluice dlq replay`: the built-in source that emits dead letters again,
 * and the surgery that puts it in front of the stage they are replayed into.
 */
#include "replay.h"

#include "config.h"
#include "ctx.h"
#include "deadletter.h"
#include "log.h"
#include "plugin.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Entries a pull may pass over without emitting, so that a long run of
 * entries for other stages does not hold up shutdown. */
#define S_SKIP_PER_PULL 4096

static void s_err(char *err, size_t errlen, const char *fmt, ...)
    SL_PRINTF(3, 4);
static void s_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Whether e is replayed into stage: a record that is one map, for it. */
static bool s_for(const sl_deadletter_entry_t *e, const char *stage)
{
    return e->record && strcmp(e->stage, stage) == 0 &&
           sl__deadletter_record_is_map(e->record, e->record_len);
}

/* ---- the built-in source ------------------------------------------------ */

typedef struct s_src {
    sl_deadletter_reader_t *rd;
    char *stage;
} s_src_t;

static const char *const s_src_keys[] = {"path", "stage", "bytes", NULL};

static void s_src_fini(void *state)
{
    s_src_t *s = state;
    if (!s)
        return;
    sl__deadletter_reader_close(&s->rd);
    free(s->stage);
    free(s);
}

static int s_src_init(sl_ctx_t *ctx, const sl_config_t *cfg, void **state)
{
    const char *path = NULL, *stage = NULL;
    int64_t bytes = -1;
    if (sl_config_get_str(cfg, "path", NULL, &path) || !path ||
        sl_config_get_str(cfg, "stage", NULL, &stage) || !stage ||
        sl_config_get_int(cfg, "bytes", -1, &bytes) || bytes < 0) {
        sl_log(ctx, SL_LOG_ERROR, "replay source: incomplete config");
        return -EINVAL;
    }
    s_src_t *s = calloc(1, sizeof(*s));
    if (!s || !(s->stage = strdup(stage))) {
        free(s);
        return -ENOMEM;
    }
    char err[1024];
    int rc = sl__deadletter_reader_open(path, (uint64_t)bytes, &s->rd, err,
                                        sizeof(err));
    if (rc) {
        sl_log(ctx, SL_LOG_ERROR, "%s", err);
        s_src_fini(s);
        return rc;
    }
    *state = s;
    return 0;
}

/* The emit calls give a source's records fresh ids and the time of the
 * pull; a replay must keep the ids and times they had, so it appends to
 * the output batch itself, with the checks those calls make. */
static int s_emit_as(sl_ctx_t *ctx, const sl_envelope_t *env,
                     const void *data, size_t len)
{
    if (ctx->packing)
        return -EBUSY;
    if (ctx->emitted >= ctx->budget)
        return -ENOBUFS;
    if (ctx->out.count >= ctx->max_batch && ctx->on_full) {
        int rc = ctx->on_full(ctx, ctx->on_full_arg);
        if (rc)
            return rc;
    }
    int rc = sl__batch_append(&ctx->out, env, data, len);
    if (rc == 0)
        ctx->emitted++;
    return rc;
}

static int s_src_pull(void *state, sl_ctx_t *ctx)
{
    s_src_t *s = state;
    unsigned skipped = 0;
    while (sl_ctx_budget(ctx) > 0 && skipped < S_SKIP_PER_PULL) {
        const sl_deadletter_entry_t *e;
        char err[1024];
        int rc = sl__deadletter_reader_next(s->rd, &e, err, sizeof(err));
        if (rc == 0)
            return SL_EOF;
        if (rc < 0) {
            sl_ctx_error(ctx, "%s", err);
            return rc;
        }
        if (!s_for(e, s->stage)) {
            skipped++;
            continue;
        }
        sl_envelope_t env = {.id = e->id, .ts_ns = e->ts_ns,
                             .priority = e->priority};
        if ((rc = s_emit_as(ctx, &env, e->record, e->record_len)) != 0) {
            sl_ctx_error(ctx, "cannot emit record %llu: %s",
                         (unsigned long long)e->id, strerror(-rc));
            return rc;
        }
    }
    return 0;
}

static const sl_stage_desc_t s_src_desc = {
    .abi = SL_STAGE_ABI,
    .size = sizeof(sl_stage_desc_t),
    .name = SL_REPLAY_SOURCE,
    .summary = "emits the records of a dead-letter file again (built in)",
    .kind = SL_STAGE_SOURCE,
    .max_workers = 1,
    .config_keys = s_src_keys,
    .init = s_src_init,
    .pull = s_src_pull,
    .fini = s_src_fini,
};

/* ---- reading the file first --------------------------------------------- */

void sl__replay_info_fini(sl_replay_info_t *info)
{
    if (!info)
        return;
    for (size_t i = 0; i < info->n_by_stage; i++)
        free(info->by_stage[i].stage);
    free(info->by_stage);
    free(info->stage);
    memset(info, 0, sizeof(*info));
}

static int s_count(sl_replay_info_t *info, const char *stage)
{
    for (size_t i = 0; i < info->n_by_stage; i++)
        if (strcmp(info->by_stage[i].stage, stage) == 0) {
            info->by_stage[i].n++;
            return 0;
        }
    sl_replay_count_t *grown = realloc(
        info->by_stage, (info->n_by_stage + 1) * sizeof(*grown));
    if (!grown)
        return -ENOMEM;
    info->by_stage = grown;
    if (!(grown[info->n_by_stage].stage = strdup(stage)))
        return -ENOMEM;
    grown[info->n_by_stage++].n = 1;
    return 0;
}

/* Counts every entry up to the file's size now, which becomes the bound
 * of the source's own reading. */
static int s_scan(const char *path, sl_replay_info_t *info, char *err,
                  size_t errlen)
{
    sl_deadletter_reader_t *rd;
    int rc = sl__deadletter_reader_open(path, UINT64_MAX, &rd, err, errlen);
    if (rc)
        return rc;
    info->bytes = sl__deadletter_reader_bound(rd);
    const sl_deadletter_entry_t *e;
    while ((rc = sl__deadletter_reader_next(rd, &e, err, errlen)) == 1) {
        info->entries++;
        if (!e->record)
            info->no_record++;
        else if (!sl__deadletter_record_is_map(e->record, e->record_len))
            info->not_map++;
        else if ((rc = s_count(info, e->stage)) != 0)
            break;
    }
    sl__deadletter_reader_close(&rd);
    if (rc == -ENOMEM)
        s_err(err, errlen, "%s: out of memory", path);
    return rc;
}

/* "a (3), b (1)" */
static void s_list_found(const sl_replay_info_t *info, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < info->n_by_stage && used < len; i++)
        used += (size_t)snprintf(buf + used, len - used, "%s'%s' (%llu)",
                                 i ? ", " : "", info->by_stage[i].stage,
                                 (unsigned long long)info->by_stage[i].n);
}

/* "a, b, c" */
static void s_list_stages(const sl_topology_t *t, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < t->n_stages && used < len; i++)
        used += (size_t)snprintf(buf + used, len - used, "%s%s", i ? ", " : "",
                                 t->stages[i].name);
}

/* The stage to replay into, checked against the topology: its index, or
 * -1 with err filled. */
static long s_target(const sl_topology_t *t, const char *stage, char *err,
                     size_t errlen)
{
    char names[1024];
    long si = sl__topology_find(t, stage);
    if (si < 0) {
        s_list_stages(t, names, sizeof(names));
        s_err(err, errlen, "unknown stage '%s': topology '%s' has %s", stage,
              t->name, names);
        return -1;
    }
    if (t->stages[si].plugin->desc->kind == SL_STAGE_SOURCE) {
        s_err(err, errlen, "stage '%s' is a source: records can only be "
              "replayed into a stage that takes input", stage);
        return -1;
    }
    return si;
}

/* Chooses the stage (given, or the only one named) and fills the counts
 * that depend on it. */
static int s_choose(const sl_topology_t *t, const char *stage,
                    const char *path, sl_replay_info_t *info, char *err,
                    size_t errlen)
{
    char found[1024];
    s_list_found(info, found, sizeof(found));
    if (!stage && info->n_by_stage > 1) {
        s_err(err, errlen, "%s holds records for several stages: %s; choose "
              "one with --stage", path, found);
        return -EINVAL;
    }
    if (!stage && info->n_by_stage == 0) {
        s_err(err, errlen, "%s: nothing to replay", path);
        return -ENODATA;
    }
    const char *name = stage ? stage : info->by_stage[0].stage;
    for (size_t i = 0; i < info->n_by_stage; i++)
        if (strcmp(info->by_stage[i].stage, name) == 0)
            info->replayed = info->by_stage[i].n;
        else
            info->other_stage += info->by_stage[i].n;
    if (!(info->stage = strdup(name))) {
        s_err(err, errlen, "out of memory");
        return -ENOMEM;
    }
    if (info->replayed == 0 && info->n_by_stage == 0) {
        s_err(err, errlen, "%s: nothing to replay", path);
        return -ENODATA;
    }
    if (info->replayed == 0) {
        s_err(err, errlen, "%s has no records for stage '%s'; it has "
              "records for %s", path, name, found);
        return -EINVAL;
    }
    return s_target(t, name, err, errlen) < 0 ? -EINVAL : 0;
}

/* ---- the source's config ------------------------------------------------ */

/* s as a YAML double-quoted scalar, appended at *at. */
static void s_yaml_str(char *out, size_t *at, const char *s)
{
    out[(*at)++] = '"';
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            out[(*at)++] = '\\';
            out[(*at)++] = (char)*p;
        } else if (*p < 0x20 || *p == 0x7f) {
            *at += (size_t)sprintf(out + *at, "\\x%02x", *p);
        } else {
            out[(*at)++] = (char)*p;
        }
    }
    out[(*at)++] = '"';
    out[*at] = '\0';
}

static void s_free_doc(void *doc)
{
    sl_config_doc_t *d = doc;
    sl__config_doc_destroy(&d);
}

/* The built-in source with {path, stage, bytes} as its config; the plugin
 * owns the document. */
static sl_plugin_t *s_source_plugin(const char *path, const char *stage,
                                    uint64_t bytes, char *err, size_t errlen)
{
    size_t cap = 4 * (strlen(path) + strlen(stage)) + 96;
    char *text = malloc(cap);
    if (!text) {
        s_err(err, errlen, "out of memory");
        return NULL;
    }
    size_t at = (size_t)sprintf(text, "path: ");
    s_yaml_str(text, &at, path);
    at += (size_t)sprintf(text + at, "\nstage: ");
    s_yaml_str(text, &at, stage);
    at += (size_t)sprintf(text + at, "\nbytes: %llu\n",
                          (unsigned long long)bytes);
    sl_diag_t diag;
    sl__diag_init(&diag);
    sl_config_doc_t *doc =
        sl__config_doc_parse("(dlq replay)", NULL, text, at, &diag);
    free(text);
    sl__diag_fini(&diag);
    if (!doc) { /* a path that is not UTF-8, which YAML cannot carry */
        s_err(err, errlen, "cannot replay '%s': the path is not valid UTF-8",
              path);
        return NULL;
    }
    return sl__plugin_builtin(&s_src_desc, doc, s_free_doc, err, errlen);
}

/* ---- the surgery -------------------------------------------------------- */

/* Marks from and every stage reachable from it through outputs and
 * dead-letter routes. */
static void s_mark(const sl_topology_t *t, size_t from, bool *keep)
{
    if (keep[from])
        return;
    keep[from] = true;
    const sl_topo_stage_t *s = &t->stages[from];
    for (size_t k = 0; k < s->n_outputs; k++)
        s_mark(t, s->outputs[k], keep);
    if (s->dl_stage >= 0)
        s_mark(t, (size_t)s->dl_stage, keep);
}

/* A stage name not in t: SL_REPLAY_SOURCE, or with a number after it. */
static char *s_source_name(const sl_topology_t *t)
{
    char name[64];
    snprintf(name, sizeof(name), "%s", SL_REPLAY_SOURCE);
    for (unsigned k = 2; sl__topology_find(t, name) >= 0; k++)
        snprintf(name, sizeof(name), "%s_%u", SL_REPLAY_SOURCE, k);
    return strdup(name);
}

/* The part that cannot fail: moves the stages into place. map[i] is stage
 * i's new index, or SIZE_MAX if it goes; ins[i] its new inputs. */
static void s_rewire(sl_topology_t *t, sl_topo_stage_t *ns, size_t si,
                     const size_t *map, size_t **ins, sl_topology_t *dead)
{
    for (size_t i = 0; i < t->n_stages; i++) {
        sl_topo_stage_t *s = &t->stages[i];
        if (map[i] == SIZE_MAX) {
            dead->stages[dead->n_stages++] = *s;
            continue;
        }
        size_t n_in = 0;
        for (size_t k = 0; k < s->n_inputs; k++)
            if (map[s->inputs[k]] != SIZE_MAX)
                ins[i][n_in++] = map[s->inputs[k]];
        if (i == si) /* its upstream is gone: the source feeds it */
            ins[i][n_in++] = 0;
        free(s->inputs);
        s->inputs = ins[i];
        s->n_inputs = n_in;
        for (size_t k = 0; k < s->n_outputs; k++)
            s->outputs[k] = map[s->outputs[k]];
        s->dl_stage = s->dl_stage >= 0 && map[s->dl_stage] != SIZE_MAX
                          ? (long)map[s->dl_stage]
                          : -1;
        if (s->lane == SL_LANE_PROCESS) {
            sl__log(SL_LOG_WARN, s->name, -1,
                    "replay runs this process-lane stage in a thread lane");
            s->lane = SL_LANE_THREAD;
        }
        ns[map[i]] = *s;
    }
}

static int s_replace(sl_topology_t *t, size_t si, const char *path,
                     const sl_replay_info_t *info, char *err, size_t errlen)
{
    size_t n = t->n_stages, nk = 0;
    int rc = -ENOMEM;
    bool *keep = calloc(n, sizeof(*keep));
    size_t *map = calloc(n, sizeof(*map));
    size_t **ins = calloc(n, sizeof(*ins));
    sl_topo_stage_t *ns = NULL;
    sl_topology_t *dead = calloc(1, sizeof(*dead));
    sl_plugin_t *plugin = NULL;
    char *name = s_source_name(t), *plugin_name = strdup(SL_REPLAY_SOURCE);
    size_t *out0 = malloc(sizeof(*out0));
    if (!keep || !map || !ins || !dead || !name || !plugin_name || !out0)
        goto fail;
    s_mark(t, si, keep);
    for (size_t i = 0; i < n; i++) {
        map[i] = keep[i] ? ++nk : SIZE_MAX;
        /* one more than it has, for the source */
        if (keep[i] && !(ins[i] = malloc((t->stages[i].n_inputs + 1) *
                                         sizeof(**ins))))
            goto fail;
    }
    if (!(ns = calloc(nk + 1, sizeof(*ns))) ||
        !(dead->stages = calloc(n - nk + 1, sizeof(*dead->stages))))
        goto fail;
    if (!(plugin = s_source_plugin(path, info->stage, info->bytes, err,
                                   errlen))) {
        rc = -EINVAL;
        goto fail_msg;
    }

    const sl_topo_stage_t *target = &t->stages[si];
    sl_topo_stage_t *src = &ns[0];
    src->name = name;
    src->plugin_name = plugin_name;
    src->plugin = plugin;
    src->node = sl__config_doc_root(plugin->owned);
    src->config = src->node;
    src->workers = src->workers_min = src->workers_max = 1;
    src->idle_shrink_ms = target->idle_shrink_ms;
    src->queue = target->queue;
    src->batch = target->batch;
    src->max_attempts = 1;
    src->dl_stage = -1;
    src->outputs = out0;
    src->outputs[0] = map[si];
    src->n_outputs = 1;

    s_rewire(t, ns, si, map, ins, dead);
    free(t->stages);
    t->stages = ns;
    t->n_stages = nk + 1;
    /* Positions belong to the topology's own sources, which are gone. */
    free(t->state_dir);
    t->state_dir = NULL;
    sl__topology_destroy(&dead);
    free(ins);
    free(map);
    free(keep);
    return 0;

fail:
    s_err(err, errlen, "out of memory");
fail_msg:
    sl__plugin_release(&plugin);
    free(out0);
    free(plugin_name);
    free(name);
    if (dead)
        free(dead->stages);
    free(dead);
    free(ns);
    for (size_t i = 0; ins && i < n; i++)
        free(ins[i]);
    free(ins);
    free(map);
    free(keep);
    return rc;
}

int sl__topology_replay_into(sl_topology_t *t, const char *stage,
                             const char *dl_file, sl_replay_info_t *info,
                             char *err, size_t errlen)
{
    memset(info, 0, sizeof(*info));
    /* A bad --stage is the user's first mistake to hear about, before any
     * trouble with the file. */
    if (stage && s_target(t, stage, err, errlen) < 0)
        return -EINVAL;
    int rc = s_scan(dl_file, info, err, errlen);
    if (rc == 0)
        rc = s_choose(t, stage, dl_file, info, err, errlen);
    if (rc == 0)
        rc = s_replace(t, (size_t)sl__topology_find(t, info->stage), dl_file,
                       info, err, errlen);
    return rc;
}
