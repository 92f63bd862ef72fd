/*
 * window: tumbling and sliding (hopping) windows on event time, with
 * allowed lateness. Each record adds to the (window, key) groups of the
 * windows that contain its time; a window is emitted, one record per
 * group, once the worker's watermark (the newest event time it has seen,
 * minus the lateness) reaches its end, and the rest at the end of the
 * stream. State is per worker: see docs/stages/window.md on partition_by.
 *
 * A record's work is all or nothing: everything that can fail it (its
 * fields, lateness, max_groups, memory) is checked before anything
 * changes, because a failed record's output is dropped by the host, and
 * with it the windows the record would have closed.
 */
#include "window.h"
#include "window_time.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* Event times this far from the ends of the int64 ns range are refused,
 * so that window starts, ends and watermarks never overflow. */
#define TIME_MARGIN (2 * WN_MAX_SPAN_NS)

static const char *const s_keys[] = {
    "time_field", "time_unit", "time_format", "size",      "slide",
    "lateness",   "key",       "aggregates",  "late",      "max_groups",
    "emit_empty", NULL};

static int window_validate(const sl_config_t *cfg)
{
    wn_conf_t c;
    return wn_conf_parse(cfg, &c);
}

static void window_fini(void *state)
{
    wn_t *w = state;
    if (!w)
        return;
    if (w->loc)
        freelocale(w->loc);
    free(w->rec_groups);
    msgpack_sbuffer_destroy(&w->key);
    wn_table_fini(&w->t);
    free(w);
}

static int window_init(sl_ctx_t *ctx, const sl_config_t *cfg, void **state)
{
    wn_t *w = calloc(1, sizeof(*w));
    if (!w)
        return -ENOMEM;
    int rc = wn_conf_parse(cfg, &w->c);
    if (rc < 0) {
        free(w);
        return rc;
    }
    rc = wn_table_init(&w->t, w->c.n_aggs);
    if (rc < 0) {
        free(w);
        return rc;
    }
    msgpack_sbuffer_init(&w->key);
    msgpack_packer_init(&w->kpk, &w->key, msgpack_sbuffer_write);
    w->fill_next = WN_UNSET;
    size_t per_record = (size_t)(w->c.size_ns / w->c.slide_ns);
    w->rec_groups = malloc(per_record * sizeof(*w->rec_groups));
    if (!w->rec_groups)
        goto fail;
    if (w->c.time_format) {
        w->loc = newlocale(LC_ALL_MASK, "C", (locale_t)0);
        if (!w->loc) {
            sl_log(ctx, SL_LOG_ERROR, "window: cannot create the C locale "
                                      "for time_format");
            goto fail;
        }
    }
    *state = w;
    return 0;

fail:
    window_fini(w);
    return -ENOMEM;
}

static const char *type_name(const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL: return "null";
    case MSGPACK_OBJECT_BOOLEAN: return "a bool";
    case MSGPACK_OBJECT_STR: return "a string";
    case MSGPACK_OBJECT_BIN: return "a binary";
    case MSGPACK_OBJECT_ARRAY: return "an array";
    case MSGPACK_OBJECT_MAP: return "a map";
    case MSGPACK_OBJECT_EXT: return "an ext";
    default: return "a number";
    }
}

static int read_time(wn_t *w, sl_ctx_t *ctx, const msgpack_object *map,
                     unsigned long long id, int64_t *t)
{
    const char *f = w->c.time_field;
    const msgpack_object *v = sl_map_get(map, f);
    if (!v)
        return sl_ctx_fail(ctx, "record %llu: time field '%s' is missing",
                           id, f);
    switch (-wn_time_read(&w->c, w->loc, v, t)) {
    case 0:
        break;
    case WN_TIME_NOFORMAT:
        return sl_ctx_fail(ctx, "record %llu: time field '%s' is a string, "
                                "but no time_format is set", id, f);
    case WN_TIME_NOMATCH:
        return sl_ctx_fail(ctx, "record %llu: time field '%s': '%.*s' does "
                                "not match time_format '%s'",
                           id, f, (int)(v->via.str.size > 64 ? 64
                                                             : v->via.str.size),
                           v->via.str.ptr, w->c.time_format);
    case WN_TIME_RANGE:
        return sl_ctx_fail(ctx, "record %llu: time field '%s' is out of "
                                "range", id, f);
    default:
        return sl_ctx_fail(ctx, "record %llu: time field '%s' must be a "
                                "number or a string, got %s",
                           id, f, type_name(v));
    }
    if (*t < INT64_MIN + TIME_MARGIN || *t > INT64_MAX - TIME_MARGIN)
        return sl_ctx_fail(ctx, "record %llu: time field '%s' is out of "
                                "range", id, f);
    return 0;
}

static int read_values(wn_t *w, sl_ctx_t *ctx, const msgpack_object *map,
                       unsigned long long id)
{
    for (size_t i = 0; i < w->c.n_fields; i++) {
        const char *f = w->c.fields[i];
        const msgpack_object *v = sl_map_get(map, f);
        int kind = v ? wn_value_kind(v) : 0;
        if (kind == -1)
            return sl_ctx_fail(ctx, "record %llu: field '%s' must be a "
                                    "number (or null), got %s",
                               id, f, type_name(v));
        if (kind == -2)
            return sl_ctx_fail(ctx, "record %llu: field '%s' is NaN", id, f);
        w->vals[i] = kind ? v : NULL;
    }
    return 0;
}

/* The key: each key field's path and value, packed one after the other,
 * so it is also the key's part of the output record as it stands. A
 * missing field is a null, as SQL's GROUP BY has it. */
static int pack_key(wn_t *w, const msgpack_object *map)
{
    w->key.size = 0;
    int rc = 0;
    for (size_t i = 0; i < w->c.n_keys; i++) {
        const char *path = w->c.keys[i];
        size_t n = strlen(path);
        const msgpack_object *v = sl_map_get(map, path);
        rc |= msgpack_pack_str(&w->kpk, n);
        rc |= msgpack_pack_str_body(&w->kpk, path, n);
        rc |= v ? msgpack_pack_object(&w->kpk, *v) : msgpack_pack_nil(&w->kpk);
    }
    return rc ? -ENOMEM : 0;
}

static int late(wn_t *w, sl_ctx_t *ctx, int64_t t, int64_t wm)
{
    if (w->c.late == WN_LATE_DROP) {
        w->late_dropped++;
        return 0;
    }
    char a[32], b[32];
    wn_time_format(a, sizeof(a), t, w->c.unit_ns);
    wn_time_format(b, sizeof(b), wm, w->c.unit_ns);
    return sl_ctx_fail(ctx, "late record: event time %s is before the "
                            "watermark %s (window closed)", a, b);
}

static void accumulate(wn_t *w, uint32_t g)
{
    wn_acc_t *acc = wn_group_accs(&w->t, g);
    for (size_t a = 0; a < w->c.n_aggs; a++) {
        const wn_agg_t *agg = &w->c.aggs[a];
        if (agg->field < 0) {
            wn_acc_add(&acc[a], agg->op, NULL);
            continue;
        }
        const msgpack_object *v = w->vals[agg->field];
        if (v) /* null or missing: skipped, as in SQL */
            wn_acc_add(&acc[a], agg->op, v);
    }
}

static int window_process(void *state, sl_ctx_t *ctx, sl_record_t *rec)
{
    wn_t *w = state;
    const wn_conf_t *c = &w->c;
    wn_table_t *t = &w->t;
    unsigned long long id = (unsigned long long)sl_record_id(rec);
    const msgpack_object *map;
    int map_rc = sl_record_map(rec, &map);
    if (map_rc == -ENOMEM)
        return sl_ctx_error(ctx, "record %llu: out of memory decoding it", id);
    if (map_rc < 0)
        return sl_ctx_fail(ctx, "record %llu is not a msgpack map", id);
    int64_t ts;
    int rc = read_time(w, ctx, map, id, &ts);
    if (rc < 0)
        return rc;
    if ((rc = read_values(w, ctx, map, id)) < 0)
        return rc;

    /* The windows holding ts start at multiples of slide in
     * (ts - size, ts]; those that end at or before the watermark are
     * closed. */
    int64_t last = wn_floor_div(ts, c->slide_ns) * c->slide_ns;
    int64_t first = last - c->size_ns + c->slide_ns;
    int64_t wm = w->max_seen - c->lateness_ns;
    if (w->have_max && last + c->size_ns <= wm)
        return late(w, ctx, ts, wm);
    if (w->have_max && first + c->size_ns <= wm)
        first += (wn_floor_div(wm - c->size_ns - first, c->slide_ns) + 1) *
                 c->slide_ns;
    size_t n = (size_t)((last - first) / c->slide_ns) + 1;

    if (pack_key(w, map) < 0)
        return sl_ctx_error(ctx, "record %llu: out of memory for its key",
                            id);
    uint64_t h = wn_hash(w->key.data, w->key.size);
    uint32_t k = wn_key_find(t, h, w->key.data, w->key.size);
    size_t fresh = 0;
    for (size_t j = 0; j < n; j++) {
        int64_t s = first + (int64_t)j * c->slide_ns;
        w->rec_groups[j] = k == WN_NIL ? WN_NIL : wn_group_find(t, s, k);
        fresh += w->rec_groups[j] == WN_NIL;
    }
    int64_t max = !w->have_max || ts > w->max_seen ? ts : w->max_seen;
    int64_t new_wm = max - c->lateness_ns;
    size_t after = t->groups_live - wn_closing_groups(w, new_wm) + fresh;
    if (after > c->max_groups)
        return sl_ctx_fail(ctx, "record %llu: max_groups (%u) reached: it "
                                "needs %zu new (window, key) groups and %zu "
                                "are open",
                           id, c->max_groups, fresh, after - fresh);
    if (k == WN_NIL && c->emit_empty && t->keys_live >= c->max_groups)
        return sl_ctx_fail(ctx, "record %llu: max_groups (%u) reached: "
                                "emit_empty keeps every key, and %zu are "
                                "known",
                           id, c->max_groups, t->keys_live);
    if (wn_table_reserve(t, fresh) < 0 ||
        (k == WN_NIL && wn_key_add(t, h, w->key.data, w->key.size, &k) < 0))
        return sl_ctx_error(ctx, "record %llu: out of memory for %zu "
                                 "groups", id, t->groups_live + fresh);

    /* Held, so that closing its last group does not free it. */
    t->keys[k].refs++;
    rc = wn_close(w, ctx, new_wm, 0);
    if (rc < 0) {
        wn_key_unref(t, k, c->emit_empty);
        return sl_ctx_error(ctx, "cannot emit the windows closed by record "
                                 "%llu: %s", id, strerror(-rc));
    }
    w->max_seen = max;
    w->have_max = 1;
    for (size_t j = 0; j < n; j++) {
        uint32_t g = w->rec_groups[j];
        if (g == WN_NIL)
            g = wn_group_add(t, first + (int64_t)j * c->slide_ns, k);
        accumulate(w, g);
    }
    if (first < t->keys[k].first_start)
        t->keys[k].first_start = first;
    wn_key_unref(t, k, c->emit_empty);
    return 0;
}

static int window_flush(void *state, sl_ctx_t *ctx)
{
    wn_t *w = state;
    int rc = wn_close(w, ctx, 0, 1);
    if (w->late_dropped)
        sl_log(ctx, SL_LOG_INFO, "window: %" PRIu64 " late records dropped",
               w->late_dropped);
    if (w->gap_windows_skipped)
        sl_log(ctx, SL_LOG_INFO,
               "window: %" PRIu64 " empty windows in long gaps not emitted",
               w->gap_windows_skipped);
    if (rc < 0)
        return sl_ctx_error(ctx, "cannot emit the open windows: %s",
                            strerror(-rc));
    return 0;
}

SL_STAGE_DEFINE(.name = "window",
                .summary = "tumbling and sliding event-time windows with "
                           "count, sum, avg, min and max per key",
                .kind = SL_STAGE_TRANSFORM, .config_keys = s_keys,
                .validate = window_validate, .init = window_init,
                .process = window_process, .flush = window_flush,
                .fini = window_fini);
