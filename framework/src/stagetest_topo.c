/*
 * Topology cases: the topology as loaded, cut and rewired the way
 * `sluice dlq replay` does it, then run to its end in this process.
 *
 * The case's input is written as a dead-letter file for the inject stage
 * and replayed into it by the replay source (replay.c), which also drops
 * the topology's own sources and whatever the input cannot reach. Each
 * stage named under `expect` then becomes a capture: a built-in sink that
 * appends what reaches it to a capture file, so the stage's plugin never
 * runs and nothing downstream of it runs either. Every other stage's dead
 * letters go to one file in the case's folder, read back afterwards.
 */
#include "stagetest_int.h"

#include "deadletter.h"
#include "log.h"
#include "plugin.h"
#include "replay.h"
#include "run.h"
#include "topology.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define S_CAPTURE "sluice_test_capture"
/* A stage's retries still happen, but a test need not wait for the
 * backoff a production topology asks for. */
#define S_MAX_BACKOFF_MS 10u

/* ---- the capture sink --------------------------------------------------- */

static const char *const s_cap_keys[] = {"path", NULL};

static int s_cap_init(sl_ctx_t *ctx, const sl_config_t *cfg, void **state)
{
    const char *path = NULL;
    char err[1024];
    if (sl_config_get_str(cfg, "path", NULL, &path) || !path)
        return -EINVAL;
    sl_deadletter_t *dl = sl__deadletter_open(path, SL_DL_MSGPACK, err,
                                              sizeof(err));
    if (!dl) {
        sl_log(ctx, SL_LOG_ERROR, "%s", err);
        return -EIO;
    }
    *state = dl;
    return 0;
}

static int s_cap_process(void *state, sl_ctx_t *ctx, sl_record_t *rec)
{
    size_t len;
    const void *data = sl_record_data(rec, &len);
    sl_envelope_t env = {.id = sl_record_id(rec), .ts_ns = sl_record_ts(rec),
                         .priority = sl_record_priority(rec)};
    int rc = sl__deadletter_write(state, sl_ctx_stage(ctx), &env, data, len,
                                  NULL, 0, 0, 0);
    return rc ? sl_ctx_fail(ctx, "capture: %s", strerror(-rc)) : 0;
}

static void s_cap_fini(void *state)
{
    sl_deadletter_t *dl = state;
    sl__deadletter_close(&dl);
}

static const sl_stage_desc_t s_cap_desc = {
    .abi = SL_STAGE_ABI,
    .size = sizeof(sl_stage_desc_t),
    .name = S_CAPTURE,
    .summary = "records what reaches a stage under test (built in)",
    .kind = SL_STAGE_SINK,
    .max_workers = 1,
    .config_keys = s_cap_keys,
    .init = s_cap_init,
    .process = s_cap_process,
    .fini = s_cap_fini,
};

static void s_free_doc(void *doc)
{
    sl_config_doc_t *d = doc;
    sl__config_doc_destroy(&d);
}

/* s as a YAML double-quoted scalar. */
static char *s_yaml_str(const char *s)
{
    size_t n = strlen(s);
    char *out = malloc(4 * n + 3), *o = out;
    if (!out)
        return NULL;
    *o++ = '"';
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            *o++ = '\\';
            *o++ = (char)*p;
        } else if (*p < 0x20 || *p == 0x7f) {
            o += sprintf(o, "\\x%02x", *p);
        } else {
            *o++ = (char)*p;
        }
    }
    *o++ = '"';
    *o = '\0';
    return out;
}

/* Turns stage s into a capture writing to path. 0 or negative, err set. */
static int s_make_capture(sl_topo_stage_t *s, const char *path, char *err,
                          size_t errlen)
{
    char *q = s_yaml_str(path), *text = NULL;
    if (!q || asprintf(&text, "path: %s\n", q) < 0) {
        free(q);
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    free(q);
    sl_diag_t diag;
    sl__diag_init(&diag);
    sl_config_doc_t *doc = sl__config_doc_parse("(sluice test capture)", NULL,
                                                text, strlen(text), &diag);
    free(text);
    sl__diag_fini(&diag);
    if (!doc) {
        snprintf(err, errlen, "cannot capture stage '%s': the path %s is not "
                 "valid UTF-8", s->name, path);
        return -EINVAL;
    }
    sl_plugin_t *p = sl__plugin_builtin(&s_cap_desc, doc, s_free_doc, err,
                                        errlen);
    if (!p)
        return -EINVAL;
    sl__plugin_release(&s->plugin);
    s->plugin = p;
    s->node = sl__config_doc_root(p->owned);
    s->config = s->node;
    /* one worker keeps arrival order; nothing may slow it or retry it */
    s->workers = s->workers_min = s->workers_max = 1;
    s->workers_auto = 0;
    s->lane = SL_LANE_THREAD;
    s->max_attempts = 1;
    s->timeout_ms = 0;
    free(s->partition_by);
    s->partition_by = NULL;
    free(s->uses);
    s->uses = NULL;
    s->n_uses = 0;
    free(s->dl_path);
    s->dl_path = NULL;
    s->dl_stage = -1;
    s->when_full = SL_WHEN_FULL_BLOCK;
    s->n_outputs = 0; /* downstream of a capture nothing runs */
    return 0;
}

/* ---- cutting the graph -------------------------------------------------- */

static void s_mark(const sl_topology_t *t, size_t i, const bool *capture,
                   bool *keep)
{
    if (keep[i])
        return;
    keep[i] = true;
    const sl_topo_stage_t *s = &t->stages[i];
    if (capture && capture[i])
        return;
    for (size_t k = 0; k < s->n_outputs; k++)
        s_mark(t, s->outputs[k], capture, keep);
    if (s->dl_stage >= 0)
        s_mark(t, (size_t)s->dl_stage, capture, keep);
}

/* Keeps stage 0 (the replay source) and what it reaches through stages
 * that are not captures; indices are remapped and links to removed
 * stages dropped. */
static int s_prune(sl_topology_t *t, const bool *capture)
{
    size_t n = t->n_stages, nk = 0;
    bool *keep = calloc(n, sizeof(*keep));
    size_t *map = calloc(n, sizeof(*map));
    sl_topology_t *dead = calloc(1, sizeof(*dead));
    sl_topo_stage_t *ns = calloc(n, sizeof(*ns));
    if (!keep || !map || !dead || !ns ||
        !(dead->stages = calloc(n, sizeof(*dead->stages)))) {
        free(keep);
        free(map);
        if (dead)
            free(dead->stages);
        free(dead);
        free(ns);
        return -ENOMEM;
    }
    s_mark(t, 0, capture, keep);
    for (size_t i = 0; i < n; i++)
        map[i] = keep[i] ? nk++ : SIZE_MAX;
    for (size_t i = 0; i < n; i++) {
        sl_topo_stage_t *s = &t->stages[i];
        if (!keep[i]) {
            dead->stages[dead->n_stages++] = *s;
            continue;
        }
        size_t m = 0;
        for (size_t k = 0; k < s->n_inputs; k++) {
            size_t from = s->inputs[k];
            if (keep[from] && !capture[from])
                s->inputs[m++] = map[from];
        }
        s->n_inputs = m;
        m = 0;
        for (size_t k = 0; k < s->n_outputs; k++)
            if (keep[s->outputs[k]])
                s->outputs[m++] = map[s->outputs[k]];
        s->n_outputs = m;
        s->dl_stage = s->dl_stage >= 0 && keep[s->dl_stage]
                          ? (long)map[s->dl_stage]
                          : -1;
        ns[map[i]] = *s;
    }
    free(t->stages);
    t->stages = ns;
    t->n_stages = nk;
    sl__topology_destroy(&dead); /* frees what the removed stages held */
    free(map);
    free(keep);
    return 0;
}

/* ---- load-time checks --------------------------------------------------- */

static void s_names(const sl_topology_t *t, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < t->n_stages && used < len; i++)
        used += (size_t)snprintf(buf + used, len - used, "%s%s", i ? ", " : "",
                                 t->stages[i].name);
}

int sl__stest_check_topology(const sl_stest_case_t *c)
{
    sl_diag_t diag;
    sl__diag_init(&diag);
    sl_topology_t *t = sl__topology_load(c->topology, &diag);
    sl__diag_fini(&diag);
    if (!t) /* the case fails when it runs, saying why */
        return 0;
    int rc = 0;
    char names[1024];
    s_names(t, names, sizeof(names));
    long in = sl__topology_find(t, c->inject);
    if (in < 0) {
        rc = sl_config_error(c->inject_node, "test '%s': inject: no stage "
                             "'%s' in topology '%s' (it has %s)", c->name,
                             c->inject, t->name, names);
    } else if (t->stages[in].plugin->desc->kind == SL_STAGE_SOURCE &&
               t->stages[in].n_outputs != 1) {
        rc = sl_config_error(c->inject_node, "test '%s': inject: source '%s' "
                             "feeds %zu stages; inject into one of them",
                             c->name, c->inject, t->stages[in].n_outputs);
    }
    bool *reach = in >= 0 ? calloc(t->n_stages, sizeof(*reach)) : NULL;
    if (reach)
        s_mark(t, (size_t)in, NULL, reach);
    for (size_t k = 0; k < c->n_targets; k++) {
        const sl_stest_target_t *tg = &c->targets[k];
        long si = sl__topology_find(t, tg->stage);
        if (si < 0)
            rc = sl_config_error(tg->node, "test '%s': expect: no stage '%s' "
                                 "in topology '%s' (it has %s)", c->name,
                                 tg->stage, t->name, names);
        else if (reach && !reach[si])
            rc = sl_config_error(tg->node, "test '%s': expect: stage '%s' is "
                                 "not downstream of '%s': nothing injected "
                                 "reaches it", c->name, tg->stage, c->inject);
    }
    free(reach);
    sl__topology_destroy(&t);
    return rc;
}

/* ---- running ------------------------------------------------------------ */

static int s_write_input(const sl_stest_case_t *c, const char *path,
                         const char *stage, char *err, size_t errlen)
{
    sl_deadletter_t *dl = sl__deadletter_open(path, SL_DL_MSGPACK, err,
                                              errlen);
    if (!dl)
        return -EIO;
    uint64_t now = sl_now_ns();
    int rc = 0;
    for (size_t i = 0; i < c->n_input && rc == 0; i++) {
        sl_envelope_t env = {.id = i + 1, .ts_ns = now};
        rc = sl__deadletter_write(dl, stage, &env, c->input[i].data,
                                  c->input[i].len, NULL, 0, 0, 0);
    }
    sl__deadletter_close(&dl);
    if (rc)
        snprintf(err, errlen, "%s: %s", path, strerror(-rc));
    return rc;
}

typedef struct s_read {
    const sl_stest_case_t *c;
    sl_stest_got_t *got;
} s_read_t;

static int s_on_captured(const sl_deadletter_entry_t *e, void *arg)
{
    s_read_t *rd = arg;
    for (size_t i = 0; i < rd->got->n_streams; i++)
        if (strcmp(rd->got->streams[i].stage, e->stage) == 0)
            return sl__stest_stream_add(&rd->got->streams[i], e->record,
                                        e->record ? e->record_len : 0);
    return 0;
}

static int s_on_dead(const sl_deadletter_entry_t *e, void *arg)
{
    s_read_t *rd = arg;
    return sl__stest_got_dl(rd->got, e->stage, e->error ? e->error : "",
                            e->attempts <= 1, e->attempts, e->record,
                            e->record ? e->record_len : 0);
}

static bool s_all_finished(sl_run_t *run)
{
    for (size_t i = 0; i < run->n_runners; i++)
        if (!atomic_load(&run->runners[i].finished))
            return false;
    return true;
}

static void s_run(const sl_stest_case_t *c, const sl_topology_t *t,
                  sl_diag_t *r)
{
    char err[1024];
    sl_run_t *run = sl__run_new(t, err, sizeof(err));
    if (!run) {
        sl__stest_fail(r, "the run could not start: %s", err);
        return;
    }
    uint64_t deadline = sl_mono_ns() + c->timeout_ms * 1000000ull;
    bool late = false;
    if (sl__run_start(run) == 0) {
        struct timespec tick = {0, 2 * 1000 * 1000};
        while (!s_all_finished(run)) {
            if (sl_mono_ns() > deadline) {
                late = true;
                sl__run_abort(run);
                break;
            }
            nanosleep(&tick, NULL);
        }
    }
    int rc = sl__run_wait(run);
    if (late)
        sl__stest_fail(r, "the run did not end within %llu ms",
                       (unsigned long long)c->timeout_ms);
    else if (rc)
        sl__stest_fail(r, "the run failed (its log says why)");
    sl_diag_t ledger;
    sl__diag_init(&ledger);
    if (rc == 0 && sl__run_check_ledger(run, &ledger) != 0)
        for (size_t i = 0; i < ledger.count; i++)
            sl__stest_fail(r, "ledger: %s", ledger.lines[i]);
    sl__diag_fini(&ledger);
    sl__run_destroy(&run);
}

/* Every stage's dead letters to the case's file, except a route to a
 * stage that is captured (the capture then shows them). */
static int s_route_dead_letters(sl_topology_t *t, const bool *capture,
                                const char *path)
{
    for (size_t i = 1; i < t->n_stages; i++) {
        sl_topo_stage_t *s = &t->stages[i];
        if (capture[i])
            continue;
        if (s->dl_stage >= 0 && capture[s->dl_stage])
            continue;
        s->dl_stage = -1;
        free(s->dl_path);
        if (!(s->dl_path = strdup(path)))
            return -ENOMEM;
        s->dl_format = SL_DL_MSGPACK;
        if (s->backoff_ms > S_MAX_BACKOFF_MS)
            s->backoff_ms = S_MAX_BACKOFF_MS;
        if (s->max_backoff_ms > S_MAX_BACKOFF_MS)
            s->max_backoff_ms = S_MAX_BACKOFF_MS;
    }
    return 0;
}

/* Rewrites t for the case; stage names of the captures are in got. */
static int s_rewrite(const sl_stest_case_t *c, sl_topology_t *t,
                     const char *tmp, char *err, size_t errlen)
{
    char *in_path = NULL, *cap_path = NULL, *dead_path = NULL;
    bool *capture = NULL;
    sl_replay_info_t info = {0};
    int rc = -ENOMEM;
    if (asprintf(&in_path, "%s/.sluice-test-input.mpk", tmp) < 0)
        in_path = NULL;
    if (asprintf(&cap_path, "%s/.sluice-test-captured.mpk", tmp) < 0)
        cap_path = NULL;
    if (asprintf(&dead_path, "%s/.sluice-test-dead.mpk", tmp) < 0)
        dead_path = NULL;
    if (!in_path || !cap_path || !dead_path)
        goto out_oom;
    /* a process-lane worker rebuilds the topology as written: no good
     * once it is rewritten */
    for (size_t i = 0; i < t->n_stages; i++)
        t->stages[i].lane = SL_LANE_THREAD;
    long in = sl__topology_find(t, c->inject);
    if (in < 0) {
        snprintf(err, errlen, "inject: no stage '%s' in the topology",
                 c->inject);
        rc = -EINVAL;
        goto out;
    }
    const char *target = c->inject;
    if (t->stages[in].plugin->desc->kind == SL_STAGE_SOURCE) {
        if (t->stages[in].n_outputs != 1) {
            snprintf(err, errlen, "inject: source '%s' feeds %zu stages",
                     c->inject, t->stages[in].n_outputs);
            rc = -EINVAL;
            goto out;
        }
        target = t->stages[t->stages[in].outputs[0]].name;
    }
    if ((rc = s_write_input(c, in_path, target, err, errlen)) != 0)
        goto out;
    if ((rc = sl__topology_replay_into(t, target, in_path, &info, err,
                                       errlen)) != 0)
        goto out;
    if (!(capture = calloc(t->n_stages, sizeof(*capture))))
        goto out_oom;
    for (size_t k = 0; k < c->n_targets; k++) {
        long si = sl__topology_find(t, c->targets[k].stage);
        if (si < 0) {
            snprintf(err, errlen, "expect: stage '%s' is not downstream of "
                     "'%s'", c->targets[k].stage, c->inject);
            rc = -EINVAL;
            goto out;
        }
        capture[si] = true;
    }
    for (size_t i = 0; i < t->n_stages; i++)
        if (capture[i] &&
            (rc = s_make_capture(&t->stages[i], cap_path, err, errlen)) != 0)
            goto out;
    if ((rc = s_route_dead_letters(t, capture, dead_path)) != 0 ||
        (rc = s_prune(t, capture)) != 0)
        goto out_oom;
    free(t->spill_path);
    if (asprintf(&t->spill_path, "%s/.sluice-test-spill.jsonl", tmp) < 0) {
        t->spill_path = NULL;
        goto out_oom;
    }
    t->spill_format = SL_DL_JSONL;
    rc = 0;
    goto out;
out_oom:
    rc = -ENOMEM;
    snprintf(err, errlen, "out of memory");
out:
    sl__replay_info_fini(&info);
    free(capture);
    free(in_path);
    free(cap_path);
    free(dead_path);
    return rc;
}

static void s_read_back(const sl_stest_case_t *c, const char *tmp,
                        sl_stest_got_t *got, sl_diag_t *r)
{
    char path[4096], err[1024];
    s_read_t rd = {.c = c, .got = got};
    snprintf(path, sizeof(path), "%s/.sluice-test-captured.mpk", tmp);
    int rc = sl__deadletter_read(path, s_on_captured, &rd, err, sizeof(err));
    if (rc && rc != -ENOENT)
        sl__stest_fail(r, "cannot read what was captured: %s",
                       rc == -EBADMSG ? err : strerror(-rc));
    snprintf(path, sizeof(path), "%s/.sluice-test-dead.mpk", tmp);
    rc = sl__deadletter_read(path, s_on_dead, &rd, err, sizeof(err));
    if (rc && rc != -ENOENT)
        sl__stest_fail(r, "cannot read the dead letters: %s",
                       rc == -EBADMSG ? err : strerror(-rc));
}

void sl__stest_run_topology(const sl_stest_case_t *c, const char *tmp,
                            sl_stest_got_t *got, sl_diag_t *r)
{
    got->streams = calloc(c->n_targets + 1, sizeof(*got->streams));
    if (!got->streams) {
        sl__stest_fail(r, "out of memory");
        return;
    }
    for (size_t k = 0; k < c->n_targets; k++)
        if (!(got->streams[got->n_streams++].stage =
                  strdup(c->targets[k].stage))) {
            sl__stest_fail(r, "out of memory");
            return;
        }
    sl_diag_t diag;
    sl__diag_init(&diag);
    sl_topology_t *t = sl__topology_load(c->topology, &diag);
    if (!t) {
        sl__stest_fail(r, "the topology did not load:");
        for (size_t i = 0; i < diag.count; i++)
            sl__stest_fail(r, "  %s", diag.lines[i]);
        sl__diag_fini(&diag);
        return;
    }
    sl__diag_fini(&diag);
    char err[2048];
    /* nothing to inject: nothing can reach the captures or fail */
    if (c->n_input > 0) {
        if (s_rewrite(c, t, tmp, err, sizeof(err)) != 0)
            sl__stest_fail(r, "cannot set the topology up: %s", err);
        else
            s_run(c, t, r);
    }
    sl__topology_destroy(&t);
    s_read_back(c, tmp, got, r);
}
