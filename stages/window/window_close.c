/* Closing windows: see wn_close in window.h. */
#include "window.h"
#include "window_time.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

/* With emit_empty, the most consecutive windows without any record that
 * are filled in with empty records; a longer gap is nearly always a bad
 * timestamp, and filling it would emit keys x windows records. */
#define MAX_GAP_WINDOWS 10000

static int pack_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    return msgpack_pack_str(pk, n) | msgpack_pack_str_body(pk, s, n);
}

/* One output record; accs NULL for a key that had no records. */
static int emit_group(wn_t *w, sl_ctx_t *ctx, int64_t start, uint32_t key,
                      const wn_acc_t *accs)
{
    const wn_conf_t *c = &w->c;
    msgpack_packer *pk = sl_emit_begin(ctx);
    if (!pk)
        return -ENOMEM;
    int rc = msgpack_pack_map(pk, (uint32_t)(2 + c->n_keys + c->n_aggs));
    rc |= pack_str(pk, "window_start");
    rc |= msgpack_pack_int64(pk, start / c->unit_ns);
    rc |= pack_str(pk, "window_end");
    rc |= msgpack_pack_int64(pk, (start + c->size_ns) / c->unit_ns);
    /* The key holds "path", value pairs already packed. */
    const wn_key_t *k = &w->t.keys[key];
    if (k->len)
        rc |= pk->callback(pk->data, (const char *)wn_key_bytes(&w->t, key),
                           k->len);
    for (size_t a = 0; a < c->n_aggs; a++) {
        rc |= pack_str(pk, c->aggs[a].as);
        if (accs)
            rc |= wn_acc_pack(pk, &accs[a], c->aggs[a].op);
        else if (c->aggs[a].op == WN_COUNT)
            rc |= msgpack_pack_uint64(pk, 0);
        else
            rc |= msgpack_pack_nil(pk);
    }
    if (rc) {
        sl_emit_abort(ctx);
        return -ENOMEM;
    }
    return sl_emit_commit(ctx);
}

static int emit_window(wn_t *w, sl_ctx_t *ctx, const wn_window_t *win,
                       int64_t start)
{
    wn_table_t *t = &w->t;
    for (uint32_t g = win ? win->head : WN_NIL; g != WN_NIL;
         g = t->groups[g].next) {
        int rc = emit_group(w, ctx, start, t->groups[g].key,
                            wn_group_accs(t, g));
        if (rc < 0)
            return rc;
        t->keys[t->groups[g].key].last_emitted = start;
    }
    if (!w->c.emit_empty)
        return 0;
    for (uint32_t k = t->key_head; k != WN_NIL; k = t->keys[k].next) {
        const wn_key_t *e = &t->keys[k];
        if (e->first_start == WN_UNSET || e->first_start > start ||
            e->last_emitted == start)
            continue;
        int rc = emit_group(w, ctx, start, k, NULL);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* The next window to close: the oldest open one (wins[i]) or, with
 * emit_empty, the next one in line even if it has no records. */
static int next_start(const wn_t *w, size_t i, int64_t fill, int64_t *s)
{
    int have = i < w->t.hi;
    if (have)
        *s = w->t.wins[i].start;
    if (w->c.emit_empty && fill != WN_UNSET && (!have || fill < *s)) {
        *s = fill;
        have = 1;
    }
    return have;
}

/* From a window without records at s: where filling should go on, past a
 * gap too long to fill; s itself when it is not. */
static int64_t skip_gap(wn_t *w, sl_ctx_t *ctx, size_t i, int64_t s,
                        int64_t wm, int flush)
{
    const wn_conf_t *c = &w->c;
    /* The gap ends at the next window with records, or (unless at the
     * end of the stream) at the first window still open. */
    int64_t end = i < w->t.hi ? w->t.wins[i].start : INT64_MAX;
    if (!flush) {
        int64_t open =
            (wn_floor_div(wm - c->size_ns, c->slide_ns) + 1) * c->slide_ns;
        if (open < end)
            end = open;
    }
    int64_t n = (end - s) / c->slide_ns;
    if (n <= MAX_GAP_WINDOWS)
        return s;
    if (w->gap_windows_skipped == 0) {
        char a[32], b[32];
        wn_time_format(a, sizeof(a), s, c->unit_ns);
        wn_time_format(b, sizeof(b), end, c->unit_ns);
        sl_log(ctx, SL_LOG_WARN,
               "window: no records from %s to %s (%" PRId64 " windows); "
               "emit_empty fills at most %d windows in a row, so these "
               "are skipped",
               a, b, n, MAX_GAP_WINDOWS);
    }
    w->gap_windows_skipped += (uint64_t)n;
    return end;
}

size_t wn_closing_groups(const wn_t *w, int64_t wm)
{
    size_t n = 0;
    for (size_t i = w->t.lo;
         i < w->t.hi && w->t.wins[i].start <= wm - w->c.size_ns; i++)
        n += w->t.wins[i].n;
    return n;
}

int wn_close(wn_t *w, sl_ctx_t *ctx, int64_t wm, int flush)
{
    wn_table_t *t = &w->t;
    const wn_conf_t *c = &w->c;
    size_t i = t->lo;
    int64_t fill = w->fill_next, s;
    /* The output first, changing nothing the next try depends on. */
    while (next_start(w, i, fill, &s)) {
        if (flush ? i == t->hi : s > wm - c->size_ns)
            break;
        int own = i < t->hi && t->wins[i].start == s;
        if (!own && c->emit_empty) {
            int64_t to = skip_gap(w, ctx, i, s, wm, flush);
            if (to != s) {
                fill = to;
                continue;
            }
        }
        int rc = emit_window(w, ctx, own ? &t->wins[i] : NULL, s);
        if (rc < 0)
            return rc;
        if (own)
            i++;
        fill = s + c->slide_ns;
    }
    for (size_t n = i - t->lo; n > 0; n--)
        wn_window_pop(t, c->emit_empty);
    w->fill_next = c->emit_empty ? fill : WN_UNSET;
    return 0;
}
