#include "harness.h"
#include "config.h"
#include "ctx.h"
#include "log.h"
#include "mpscan.h"
#include "plugin.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sluice/json.h>

typedef struct s_output {
    char *json;
    char *msgpack;
    size_t len;
} s_output_t;

struct sl_harness {
    sl_plugin_t *plugin;
    sl_config_doc_t *doc;
    sl_diag_t diag;
    sl_ctx_t ctx;
    int ctx_ready;
    void *state;
    int state_ready;
    atomic_int stopping;
    s_output_t *outputs;
    size_t n_outputs;
    size_t cap_outputs;
    size_t errors;
    uint64_t read;
    uint64_t next_id;
    void *resume; /* the position handed to the worker, owned */
    int doc_borrowed; /* doc is the caller's (sl_harness_new_node) */
    sl_harness_fail_fn on_fail;
    void *on_fail_arg;
    char last_error[1024];
};

static void s_diag_to(const sl_diag_t *d, char *err, size_t errlen)
{
    size_t n = 0;
    if (!errlen)
        return;
    err[0] = '\0';
    for (size_t i = 0; i < d->count && n + 1 < errlen; i++)
        n += (size_t)snprintf(err + n, errlen - n, "%s%s", i ? "\n" : "",
                              d->lines[i]);
}

static void s_input_error(sl_ctx_t *ctx, const char *msg, void *arg)
{
    (void)ctx;
    sl_harness_t *h = arg;
    h->errors++;
    h->read++;
    snprintf(h->last_error, sizeof(h->last_error), "%s", msg);
    if (h->on_fail)
        h->on_fail(h->on_fail_arg, msg, 1, NULL, 0);
}

/* A record over the limits from a source (an input error, with its bytes)
 * or from flush(). */
static void s_reject(sl_ctx_t *ctx, const void *rec, size_t len,
                     const char *msg, void *arg)
{
    sl_harness_t *h = arg;
    h->errors++;
    h->read += ctx->is_source;
    snprintf(h->last_error, sizeof(h->last_error), "%s", msg);
    if (h->on_fail)
        h->on_fail(h->on_fail_arg, msg, 1, rec, len);
}

/* Moves what the worker emitted into the output list. */
static int s_collect(sl_harness_t *h)
{
    size_t len;
    char *data = sl__batch_release(&h->ctx.out, &len);
    if (!data)
        return -ENOMEM;
    sl_batch_iter_t it;
    int rc = sl__batch_iter_init(&it, data, len, NULL);
    sl_envelope_t env;
    const char *payload;
    size_t plen;
    msgpack_zone zone;
    msgpack_zone_init(&zone, 1024);
    while (rc == 0 && (rc = sl__batch_next(&it, &env, &payload, &plen)) == 1) {
        rc = 0;
        if (h->n_outputs == h->cap_outputs) {
            size_t cap = h->cap_outputs ? h->cap_outputs * 2 : 64;
            s_output_t *grown = realloc(h->outputs, cap * sizeof(*grown));
            if (!grown) {
                rc = -ENOMEM;
                break;
            }
            h->outputs = grown;
            h->cap_outputs = cap;
        }
        s_output_t *o = &h->outputs[h->n_outputs];
        memset(o, 0, sizeof(*o));
        o->msgpack = malloc(plen ? plen : 1);
        if (!o->msgpack) {
            rc = -ENOMEM;
            break;
        }
        memcpy(o->msgpack, payload, plen);
        o->len = plen;
        msgpack_object obj;
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        /* The plugin's bytes: sl_emit_raw trusts them, so bounded. */
        if (sl__mpscan_decode(payload, plen, SL_MP_MAX_DEPTH, &zone, &obj) ==
            0)
            sl_json_encode(&obj, &sb);
        else
            msgpack_sbuffer_write(&sb, "<invalid msgpack>", 17);
        msgpack_sbuffer_write(&sb, "", 1);
        o->json = sb.data; /* ownership moves to the output */
        h->n_outputs++;
        msgpack_zone_clear(&zone);
    }
    msgpack_zone_destroy(&zone);
    free(data);
    return rc < 0 ? rc : 0;
}

static int s_on_full(sl_ctx_t *ctx, void *arg)
{
    (void)ctx;
    return s_collect(arg);
}

/* positions: keep source positions as a run with `state_dir:` does,
 * resuming from pos (len bytes) when it is not NULL. The config is
 * config_yaml, or node cfg of the caller's doc when doc is not NULL. */
static sl_harness_t *s_new(const char *name, const char *config_yaml,
                           sl_config_doc_t *doc, const sl_config_t *cfg,
                           const char *basedir, int positions,
                           const void *pos, size_t len, char *err,
                           size_t errlen)
{
    sl_harness_t *h = calloc(1, sizeof(*h));
    if (!h) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (pos && !(h->resume = malloc(len ? len : 1))) {
        free(h);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (pos)
        memcpy(h->resume, pos, len);
    sl__diag_init(&h->diag);
    h->plugin = sl__plugin_load(name, err, errlen);
    if (!h->plugin)
        goto fail;
    const sl_stage_desc_t *d = h->plugin->desc;
    if (doc) {
        h->doc = doc;
        h->doc_borrowed = 1;
    } else {
        const char *text = config_yaml ? config_yaml : "";
        h->doc = sl__config_doc_parse("config", basedir, text, strlen(text),
                                      &h->diag);
        if (!h->doc)
            goto fail_diag;
        cfg = sl__config_doc_root(h->doc);
    }
    sl__config_doc_set_diag(h->doc, &h->diag, name);
    if (d->config_keys) {
        for (size_t i = 0; i < sl_config_len(cfg); i++) {
            const char *key = sl_config_key_at(cfg, i);
            int known = 0;
            for (const char *const *k = d->config_keys; *k && !known; k++)
                known = strcmp(*k, key) == 0;
            if (!known)
                sl_config_error(sl__config_key_node_at(cfg, i),
                                "unknown key '%s' for plugin '%s'", key,
                                d->name);
        }
    }
    if (h->diag.count == 0 && d->validate) {
        int vrc = d->validate(cfg);
        /* as `sluice check` says it: a refusal without a diagnostic */
        if (vrc != 0 && h->diag.count == 0) {
            char code[SL_RC_TEXT_MAX];
            snprintf(err, errlen, "plugin '%s' rejected its config (%s)",
                     d->name,
                     sl__rc_text(vrc, "validate", code, sizeof(code)));
            goto fail;
        }
    }
    if (h->diag.count)
        goto fail_diag;
    if (sl__ctx_init(&h->ctx, name, 0, 0, 1, d->kind == SL_STAGE_SOURCE,
                     UINT32_MAX, &h->stopping) != 0) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    h->ctx_ready = 1;
    h->ctx.on_full = s_on_full;
    h->ctx.on_full_arg = h;
    h->ctx.on_input_error = s_input_error;
    h->ctx.on_input_error_arg = h;
    h->ctx.on_reject = s_reject;
    h->ctx.on_reject_arg = h;
    h->ctx.positions_on = positions;
    h->ctx.resume = h->resume;
    h->ctx.resume_len = h->resume ? len : 0;
    int rc = d->init(&h->ctx, cfg, &h->state);
    if (rc != 0) {
        if (h->diag.count)
            goto fail_diag;
        char code[SL_RC_TEXT_MAX];
        snprintf(err, errlen, "%s: init failed: %s", name,
                 sl__rc_text(rc, "init", code, sizeof(code)));
        goto fail;
    }
    h->state_ready = 1;
    return h;
fail_diag:
    s_diag_to(&h->diag, err, errlen);
fail:
    sl_harness_destroy(&h);
    return NULL;
}

sl_harness_t *sl_harness_new(const char *name, const char *config_yaml,
                             const char *basedir, char *err, size_t errlen)
{
    return s_new(name, config_yaml, NULL, NULL, basedir, 0, NULL, 0, err,
                 errlen);
}

sl_harness_t *sl_harness_new_node(const char *name, sl_config_doc_t *doc,
                                  const sl_config_t *cfg, char *err,
                                  size_t errlen)
{
    return s_new(name, NULL, doc, cfg, NULL, 0, NULL, 0, err, errlen);
}

sl_harness_t *sl_harness_new_resume(const char *name, const char *config_yaml,
                                    const char *basedir, const void *pos,
                                    size_t len, char *err, size_t errlen)
{
    return s_new(name, config_yaml, NULL, NULL, basedir, 1, pos, len, err,
                 errlen);
}

void sl_harness_destroy(sl_harness_t **hp)
{
    sl_harness_t *h = hp ? *hp : NULL;
    if (!h)
        return;
    if (h->state_ready && h->plugin->desc->fini)
        h->plugin->desc->fini(h->state);
    if (h->ctx_ready)
        sl__ctx_fini(&h->ctx);
    for (size_t i = 0; i < h->n_outputs; i++) {
        free(h->outputs[i].json);
        free(h->outputs[i].msgpack);
    }
    free(h->outputs);
    if (h->doc_borrowed)
        sl__config_doc_set_diag(h->doc, NULL, NULL);
    else
        sl__config_doc_destroy(&h->doc);
    sl__diag_fini(&h->diag);
    sl__plugin_release(&h->plugin);
    free(h->resume);
    free(h);
    *hp = NULL;
}

int sl_harness_push_msgpack(sl_harness_t *h, const void *data, size_t len)
{
    const sl_stage_desc_t *d = h->plugin->desc;
    if (!d->process)
        return -ENOTSUP;
    sl_envelope_t env = {.id = ++h->next_id, .ts_ns = sl_now_ns()};
    sl_record_t rec;
    sl__ctx_begin_record(&h->ctx, &rec, &env, data, len);
    int rc = sl__ctx_limit_rc(&h->ctx, d->process(h->state, &h->ctx, &rec));
    if (rc < 0) {
        char code[SL_RC_TEXT_MAX];
        h->errors++;
        snprintf(h->last_error, sizeof(h->last_error), "%s",
                 h->ctx.has_err ? h->ctx.err
                                : sl__rc_text(rc, NULL, code, sizeof(code)));
        if (h->on_fail)
            h->on_fail(h->on_fail_arg, h->last_error, h->ctx.err_final,
                       data, len);
    }
    sl__ctx_end_record(&h->ctx);
    int crc = s_collect(h);
    return rc < 0 ? rc : crc;
}

int sl_harness_push_json(sl_harness_t *h, const char *json)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    char err[256];
    int rc = sl_json_decode(json, strlen(json), &pk, err, sizeof(err));
    if (rc == 0 && (sb.size == 0 || !(((unsigned char)sb.data[0] & 0xf0) == 0x80 ||
                                      (unsigned char)sb.data[0] == 0xde ||
                                      (unsigned char)sb.data[0] == 0xdf)))
        rc = -EBADMSG;
    if (rc == 0)
        rc = sl_harness_push_msgpack(h, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

int sl_harness_pull_all(sl_harness_t *h, size_t budget, size_t max_calls)
{
    const sl_stage_desc_t *d = h->plugin->desc;
    if (!d->pull)
        return -ENOTSUP;
    if (budget == 0)
        budget = 1;
    for (size_t i = 0; i < max_calls; i++) {
        sl__ctx_begin_pull(&h->ctx, budget);
        int rc = d->pull(h->state, &h->ctx);
        sl__ctx_end_call(&h->ctx);
        h->read += h->ctx.emitted;
        int crc = s_collect(h);
        if (crc)
            return crc;
        if (rc == SL_EOF)
            return 0;
        /* as in a run: an undefined positive code fails the source */
        if (rc != 0) {
            char code[SL_RC_TEXT_MAX];
            snprintf(h->last_error, sizeof(h->last_error), "%s",
                     rc < 0 && h->ctx.has_err
                         ? h->ctx.err
                         : sl__rc_text(rc, "pull", code, sizeof(code)));
            return rc < 0 ? rc : -EPROTO;
        }
    }
    return -ETIMEDOUT;
}

int sl_harness_flush(sl_harness_t *h)
{
    const sl_stage_desc_t *d = h->plugin->desc;
    if (!d->flush)
        return 0;
    sl__ctx_begin_flush(&h->ctx);
    int rc = d->flush(h->state, &h->ctx);
    sl__ctx_end_call(&h->ctx);
    int crc = s_collect(h);
    return rc < 0 ? rc : crc;
}

int sl_harness_sync(sl_harness_t *h)
{
    const sl_stage_desc_t *d = h->plugin->desc;
    if (!d->sync)
        return -ENOTSUP;
    sl__ctx_begin_flush(&h->ctx);
    int rc = d->sync(h->state, &h->ctx);
    sl__ctx_end_call(&h->ctx);
    return rc;
}

const void *sl_harness_position(const sl_harness_t *h, size_t *len)
{
    *len = h->ctx.pos ? h->ctx.pos_len : 0;
    return h->ctx.pos;
}

void sl_harness_on_fail(sl_harness_t *h, sl_harness_fail_fn fn, void *arg)
{
    h->on_fail = fn;
    h->on_fail_arg = arg;
}

void sl_harness_stop(sl_harness_t *h) { atomic_store(&h->stopping, 1); }

void sl_harness_set_limits(sl_harness_t *h, uint32_t max_record_bytes,
                           uint32_t max_depth)
{
    if (max_record_bytes)
        h->ctx.limits.max_record_bytes = max_record_bytes;
    if (max_depth)
        h->ctx.limits.max_depth = max_depth;
}

size_t sl_harness_count(const sl_harness_t *h) { return h->n_outputs; }

const char *sl_harness_output(const sl_harness_t *h, size_t i)
{
    return i < h->n_outputs ? h->outputs[i].json : NULL;
}

const void *sl_harness_output_msgpack(const sl_harness_t *h, size_t i,
                                      size_t *len)
{
    if (i >= h->n_outputs)
        return NULL;
    *len = h->outputs[i].len;
    return h->outputs[i].msgpack;
}

size_t sl_harness_errors(const sl_harness_t *h) { return h->errors; }
const char *sl_harness_last_error(const sl_harness_t *h)
{
    return h->last_error;
}
uint64_t sl_harness_read(const sl_harness_t *h) { return h->read; }
