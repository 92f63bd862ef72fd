/*
 * dedupe: drops records whose key was already seen within a window (the
 * last N distinct keys, or a duration of processing or event time). The
 * key is the msgpack encoding of the key fields' values, one after the
 * other (msgpack is self-delimiting, so the tuple is unambiguous), packed
 * into a buffer the worker reuses; kept records go on as their original
 * bytes. State is per worker: see docs/stages/dedupe.md on partition_by.
 */
#include "dedupe_conf.h"
#include "dedupe_table.h"
#include "record_map.h"

#include <sluice/stage.h>

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* Expired keys freed per record beyond the one looked up: enough to keep
 * up with the rate keys arrive, small enough to bound the call's cost. */
#define SWEEP_PER_CALL 4

typedef struct dedupe {
    dd_conf_t c;
    dd_table_t t;
    msgpack_sbuffer key; /* reused: size is reset for each record */
    msgpack_packer pk;
    uint64_t now;     /* event time: the newest seen so far (ns) */
    uint64_t evicted; /* keys pushed out by max_keys */
} dedupe_t;

static const char *const s_keys[] = {"key", "window", "on_missing",
                                     "max_keys", NULL};

static int dedupe_validate(const sl_config_t *cfg)
{
    dd_conf_t c;
    return dd_conf_parse(cfg, &c);
}

static int dedupe_init(sl_ctx_t *ctx, const sl_config_t *cfg, void **state)
{
    (void)ctx;
    dedupe_t *d = calloc(1, sizeof(*d));
    if (!d)
        return -ENOMEM;
    int rc = dd_conf_parse(cfg, &d->c);
    if (rc < 0)
        goto fail_conf;
    rc = dd_table_init(&d->t);
    if (rc < 0)
        goto fail_conf;
    msgpack_sbuffer_init(&d->key);
    msgpack_packer_init(&d->pk, &d->key, msgpack_sbuffer_write);
    *state = d;
    return 0;

fail_conf:
    free(d);
    return rc;
}

/* What a record missing its key or timestamp field becomes. */
static int missing(const dedupe_t *d, sl_ctx_t *ctx, const char *what,
                   const char *path, const void *data, size_t len)
{
    switch (d->c.on_missing) {
    case DD_PASS:
        return sl_emit_raw(ctx, data, len);
    case DD_DROP:
        return 0;
    default:
        return sl_ctx_fail(ctx, "%s field '%s' is missing", what, path);
    }
}

static int scale(double v, dd_unit_t unit, uint64_t *ns)
{
    static const double per[] = {0, 1e9, 1e6, 1e3, 1};
    if (unit == DD_UNIT_AUTO)
        unit = v < 1e11   ? DD_UNIT_S
               : v < 1e14 ? DD_UNIT_MS
               : v < 1e17 ? DD_UNIT_US
                          : DD_UNIT_NS;
    double r = v * per[unit];
    if (!(r >= 0) || r >= 1.8e19)
        return -ERANGE;
    *ns = (uint64_t)r;
    return 0;
}

/* The event time of o in ns; integers stay exact in the ns unit. */
static int event_time(const dedupe_t *d, const msgpack_object *o,
                      uint64_t *ns)
{
    switch (o->type) {
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        if (d->c.unit == DD_UNIT_NS ||
            (d->c.unit == DD_UNIT_AUTO && o->via.u64 >= (uint64_t)1e17)) {
            *ns = o->via.u64;
            return 0;
        }
        return scale((double)o->via.u64, d->c.unit, ns);
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        return scale(o->via.f64, d->c.unit, ns);
    default:
        return -EINVAL; /* negative integers land here too */
    }
}

static void evict_oldest(dedupe_t *d, sl_ctx_t *ctx, int counted)
{
    dd_table_remove(&d->t, d->t.tail);
    if (!counted)
        return;
    if (d->evicted++ == 0)
        sl_log(ctx, SL_LOG_WARN,
               "dedupe: max_keys (%" PRIu64 ") reached; evicting the least "
               "recently seen keys, whose duplicates will pass again",
               d->c.max_keys);
}

/* Frees keys that have expired from the old end of the list. In event
 * time the list is in arrival order, not strictly in time order, so this
 * may stop early; the lookup checks expiry itself. */
static void sweep(dedupe_t *d, uint64_t now)
{
    for (int i = 0; i < SWEEP_PER_CALL && d->t.tail != DD_NIL; i++) {
        const dd_entry_t *e = &d->t.ents[d->t.tail];
        if (now - e->ts < d->c.window_ns)
            break;
        dd_table_remove(&d->t, d->t.tail);
    }
}

static int dedupe_process(void *state, sl_ctx_t *ctx, sl_record_t *rec)
{
    dedupe_t *d = state;
    size_t len;
    const void *data = sl_record_data(rec, &len);
    const msgpack_object *map;
    int map_rc = stage_record_map(ctx, rec, &map);
    if (map_rc < 0)
        return map_rc;

    d->key.size = 0;
    for (size_t i = 0; i < d->c.n_fields; i++) {
        const msgpack_object *v = sl_map_get(map, d->c.fields[i]);
        if (!v)
            return missing(d, ctx, "key", d->c.fields[i], data, len);
        if (msgpack_pack_object(&d->pk, *v) < 0)
            return sl_ctx_error(ctx, "key field '%s': out of memory",
                                d->c.fields[i]);
    }

    uint64_t now = 0;
    if (d->c.window == DD_WIN_TIME) {
        if (d->c.ts_field) {
            const msgpack_object *v = sl_map_get(map, d->c.ts_field);
            if (!v)
                return missing(d, ctx, "timestamp", d->c.ts_field, data,
                               len);
            uint64_t ts;
            if (event_time(d, v, &ts) < 0)
                return sl_ctx_fail(ctx, "timestamp field '%s' must be a "
                                        "non-negative number",
                                   d->c.ts_field);
            if (ts > d->now)
                d->now = ts;
            now = d->now;
        } else {
            now = sl_mono_ns();
        }
        sweep(d, now);
    }

    uint64_t h = dd_hash(d->key.data, d->key.size);
    uint32_t i = dd_table_find(&d->t, h, d->key.data, d->key.size);
    if (i != DD_NIL) {
        dd_entry_t *e = &d->t.ents[i];
        if (d->c.window != DD_WIN_TIME) {
            dd_table_touch(&d->t, i);
            return 0;
        }
        if (now - e->ts < d->c.window_ns)
            return 0;
        /* Expired: kept again, and its time starts over. The list stays in
         * the order keys were kept, so the sweep finds the oldest first. */
        e->ts = now;
        dd_table_touch(&d->t, i);
        return sl_emit_raw(ctx, data, len);
    }

    if (d->c.window == DD_WIN_COUNT && d->t.live >= d->c.count)
        evict_oldest(d, ctx, 0);
    else if (d->t.live >= d->c.max_keys)
        evict_oldest(d, ctx, 1);
    if (dd_table_insert(&d->t, h, d->key.data, d->key.size, now) < 0)
        return sl_ctx_error(ctx, "out of memory for %zu keys", d->t.live);
    return sl_emit_raw(ctx, data, len);
}

static int dedupe_flush(void *state, sl_ctx_t *ctx)
{
    const dedupe_t *d = state;
    if (d->evicted)
        sl_log(ctx, SL_LOG_INFO,
               "dedupe: %" PRIu64 " keys evicted by max_keys (%" PRIu64 ")",
               d->evicted, d->c.max_keys);
    return 0;
}

static void dedupe_fini(void *state)
{
    dedupe_t *d = state;
    if (!d)
        return;
    msgpack_sbuffer_destroy(&d->key);
    dd_table_fini(&d->t);
    free(d);
}

SL_STAGE_DEFINE(.name = "dedupe",
                .summary = "drop records whose key was seen within a window",
                .kind = SL_STAGE_TRANSFORM, .config_keys = s_keys,
                .validate = dedupe_validate, .init = dedupe_init,
                .process = dedupe_process, .flush = dedupe_flush,
                .fini = dedupe_fini);
