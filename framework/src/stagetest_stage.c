/*
 * One-stage cases: the plugin runs in the harness, in this thread, with
 * one worker. A transform or sink gets the case's input records in order
 * and then its flush; a source is pulled to its end. A record whose
 * handler fails is dead-lettered at once (the harness tries nothing
 * again) and what it emitted is dropped, as a run drops it.
 */
#include "stagetest_int.h"
#include "log.h"

#include "harness.h"
#include "plugin.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Records a source may emit per pull. */
#define S_BUDGET 64

int sl__stest_plugin_kind(const char *plugin)
{
    char err[512];
    sl_plugin_t *p = sl__plugin_load(plugin, err, sizeof(err));
    if (!p)
        return 0;
    int kind = (int)p->desc->kind;
    sl__plugin_release(&p);
    return kind;
}

typedef struct s_run {
    sl_stest_got_t *got;
    int oom;
} s_run_t;

static void s_on_fail(void *arg, const char *msg, int final,
                      const void *record, size_t len)
{
    s_run_t *run = arg;
    if (sl__stest_got_dl(run->got, NULL, msg, final != 0, 1, record,
                         record ? len : 0) != 0)
        run->oom = 1;
}

/* Each line of a multi-line message as its own reason. */
static void s_fail_lines(sl_diag_t *r, const char *head, const char *text)
{
    const char *s = text;
    bool first = true;
    while (*s) {
        size_t n = strcspn(s, "\n");
        if (first)
            sl__stest_fail(r, "%s%.*s", head, (int)n, s);
        else
            sl__stest_fail(r, "%.*s", (int)n, s);
        first = false;
        s += n;
        if (*s == '\n')
            s++;
    }
    if (first)
        sl__stest_fail(r, "%s(no message)", head);
}

/* 1 when the harness could not be made and the case expected that. */
static int s_refused(const sl_stest_case_t *c, const char *err, sl_diag_t *r)
{
    if (!c->start_error) {
        s_fail_lines(r, "the stage did not start: ", err);
        return 0;
    }
    if (!strstr(err, c->start_error)) {
        sl__stest_fail(r, "expected the stage to refuse to start with an "
                       "error containing \"%s\", got:", c->start_error);
        s_fail_lines(r, "  ", err);
    }
    return 1;
}

static int s_pull(const sl_stest_case_t *c, sl_harness_t *h, sl_diag_t *r)
{
    uint64_t deadline = sl_mono_ns() + c->timeout_ms * 1000000ull;
    bool stopped = false;
    for (;;) {
        int rc = sl_harness_pull_all(h, S_BUDGET, 1);
        if (rc == 0)
            return 0;
        if (rc != -ETIMEDOUT) {
            char why[SL_RC_TEXT_MAX];
            sl__stest_fail(r, "the source failed: %s",
                           sl_harness_last_error(h)[0]
                               ? sl_harness_last_error(h)
                               : sl__rc_text(rc, "pull", why, sizeof(why)));
            return rc;
        }
        size_t n = sl_harness_count(h);
        if (c->stop_after && !stopped && n >= c->stop_after) {
            sl_harness_stop(h);
            stopped = true;
        }
        if (!c->stop_after && n > SL_STEST_MAX_RECORDS) {
            sl__stest_fail(r, "the source emitted more than %u records "
                           "without ending; stop it with stop_after",
                           SL_STEST_MAX_RECORDS);
            return -EFBIG;
        }
        if (sl_mono_ns() > deadline) {
            sl__stest_fail(r, "the source did not end within %llu ms (%zu "
                           "records so far)%s",
                           (unsigned long long)c->timeout_ms, n,
                           stopped ? " after it was asked to stop" : "");
            return -ETIMEDOUT;
        }
    }
}

/* Pushes the input; *dropped[i] marks outputs of records that failed. */
static int s_push(const sl_stest_case_t *c, sl_harness_t *h, bool **dropped,
                  size_t *cap, sl_diag_t *r)
{
    uint64_t deadline = sl_mono_ns() + c->timeout_ms * 1000000ull;
    for (size_t i = 0; i < c->n_input; i++) {
        size_t before = sl_harness_count(h);
        int rc = sl_harness_push_msgpack(h, c->input[i].data, c->input[i].len);
        size_t after = sl_harness_count(h);
        if (after > *cap) {
            size_t ncap = after * 2 + 16;
            bool *grown = realloc(*dropped, ncap * sizeof(*grown));
            if (!grown)
                return -ENOMEM;
            memset(grown + *cap, 0, (ncap - *cap) * sizeof(*grown));
            *dropped = grown;
            *cap = ncap;
        }
        if (rc < 0)
            for (size_t k = before; k < after; k++)
                (*dropped)[k] = true;
        if (rc == -ENOTSUP) {
            sl__stest_fail(r, "the stage takes no records (no process())");
            return rc;
        }
        if (sl_mono_ns() > deadline) {
            sl__stest_fail(r, "the stage did not handle its input within "
                           "%llu ms (%zu of %zu records)",
                           (unsigned long long)c->timeout_ms, i + 1,
                           c->n_input);
            return -ETIMEDOUT;
        }
    }
    return 0;
}

void sl__stest_run_stage(const sl_stest_case_t *c, sl_config_doc_t *doc,
                         sl_stest_got_t *got, sl_diag_t *r)
{
    char err[4096];
    bool *dropped = NULL;
    size_t cap = 0;
    s_run_t run = {.got = got};
    if (!(got->streams = calloc(1, sizeof(*got->streams)))) {
        sl__stest_fail(r, "out of memory");
        return;
    }
    got->n_streams = 1;
    const sl_config_t *cfg = c->config;
    if (!cfg && !(cfg = sl__config_empty_map(doc, c->stage_node))) {
        sl__stest_fail(r, "out of memory");
        return;
    }
    err[0] = '\0';
    sl_harness_t *h = sl_harness_new_node(c->plugin, doc, cfg, err,
                                          sizeof(err));
    if (!h) {
        s_refused(c, err, r);
        return;
    }
    if (c->start_error) {
        sl__stest_fail(r, "expected the stage to refuse to start with an "
                       "error containing \"%s\", but it started",
                       c->start_error);
        sl_harness_destroy(&h);
        return;
    }
    sl_harness_on_fail(h, s_on_fail, &run);
    int kind = sl__stest_plugin_kind(c->plugin);
    int rc = kind == SL_STAGE_SOURCE ? s_pull(c, h, r)
                                     : s_push(c, h, &dropped, &cap, r);
    if (rc == 0 && (rc = sl_harness_flush(h)) < 0) {
        char why[SL_RC_TEXT_MAX];
        sl__stest_fail(r, "flush failed: %s",
                       sl__rc_text(rc, "flush", why, sizeof(why)));
    }
    for (size_t i = 0; i < sl_harness_count(h); i++) {
        if (i < cap && dropped[i])
            continue;
        size_t len;
        const void *data = sl_harness_output_msgpack(h, i, &len);
        if (sl__stest_stream_add(&got->streams[0], data, len) != 0)
            run.oom = 1;
    }
    /* fini closes what the stage wrote, before its files are read */
    sl_harness_destroy(&h);
    if (run.oom)
        sl__stest_fail(r, "out of memory collecting outputs");
    free(dropped);
}
