/*
 * garbage: a test-only transform that breaks every rule of the stage ABI
 * that the host cannot enforce at compile time, to check that the host
 * answers each misuse instead of crashing or passing garbage on silently.
 *
 * A record without the field `do` (a string) passes through unchanged.
 * Otherwise `do` names the misbehaviour; like a careless plugin, it ignores
 * what the emit calls return unless said otherwise:
 *
 *   nonmap_raw       sl_emit_raw of [1,2] (not a map)
 *   empty_raw        sl_emit_raw of zero bytes
 *   bad_byte         sl_emit_raw of {"k": <byte 0xc1>}: a map header, then
 *                    a byte msgpack never uses
 *   truncated        sl_emit_raw of a map of 2 pairs holding 1
 *   two_maps         sl_emit_raw of {"a":1}{"b":2} as one record
 *   huge_header      sl_emit_raw of a map32 header claiming 2^32-1 pairs,
 *                    and nothing after it (5 bytes)
 *   deep             sl_emit_raw of 40 nested maps (past limits.max_depth)
 *   begin_nonmap     sl_emit_begin, pack an array, sl_emit_commit
 *   begin_no_commit  sl_emit_begin, pack half a map, return 0 (no
 *                    report record)
 *   begin_twice      sl_emit_begin, pack {"a":1}, sl_emit_begin again,
 *                    then sl_emit_commit: one record
 *   begin_two_maps   sl_emit_begin, pack two maps, sl_emit_commit
 *   commit_alone     sl_emit_commit with nothing begun, then the record
 *   object_nonmap    sl_emit_object of an array object
 *   fail_then_emit   sl_ctx_fail, emit the record, return the failure
 *   fail_return_ok   sl_ctx_fail, emit the record, return 0
 *   status_positive  emit the record, return 7
 *   status_eof       emit nothing, return SL_EOF (1)
 *   status_unknown   return -99999 with no message (not an errno)
 *   status_min       return INT_MIN with no message
 *   long_error       sl_ctx_fail with a 5000-byte message
 *   binary_error     sl_ctx_fail with bytes that are not UTF-8
 *   priority_255     sl_emit_priority(255), then emit the record
 *
 * Each misbehaviour that tries to emit records the emit call's return
 * code in the field `rc` of a second, well-formed record it emits after
 * it ({"do": ..., "rc": N}), so that tests can see what the host said.
 * Except: begin_no_commit, and those handled by gb_status (they emit only
 * as described).
 *
 * Config (all optional):
 *   validate_rc: N   validate() returns N without reporting anything
 *   init_rc: N       init() returns N without reporting anything
 *   flush_rc: N      flush() returns N without a message
 *   report: false    do not emit the {"do", "rc"} records
 */
#include <sluice/stage.h>

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

typedef struct gb_state {
    int64_t flush_rc;
    int report;
} gb_state_t;

static const char *const gb_keys[] = {"validate_rc", "init_rc", "flush_rc",
                                      "report", NULL};

static int gb_validate(const sl_config_t *cfg)
{
    int64_t rc;
    if (sl_config_get_int(cfg, "validate_rc", 0, &rc) != 0)
        return -EINVAL;
    return (int)rc;
}

static int gb_init(sl_ctx_t *ctx, const sl_config_t *cfg, void **state)
{
    (void)ctx;
    int64_t init_rc;
    if (sl_config_get_int(cfg, "init_rc", 0, &init_rc) != 0)
        return -EINVAL;
    if (init_rc)
        return (int)init_rc;
    gb_state_t *st = calloc(1, sizeof(*st));
    if (!st)
        return -ENOMEM;
    if (sl_config_get_int(cfg, "flush_rc", 0, &st->flush_rc) != 0 ||
        sl_config_get_bool(cfg, "report", 1, &st->report) != 0) {
        free(st);
        return -EINVAL;
    }
    *state = st;
    return 0;
}

static void gb_report(const gb_state_t *st, sl_ctx_t *ctx, const char *what,
                      int rc)
{
    if (!st->report)
        return;
    msgpack_packer *pk = sl_emit_begin(ctx);
    if (!pk)
        return;
    msgpack_pack_map(pk, 2);
    msgpack_pack_str_with_body(pk, "do", 2);
    msgpack_pack_str_with_body(pk, what, strlen(what));
    msgpack_pack_str_with_body(pk, "rc", 2);
    msgpack_pack_int(pk, rc);
    sl_emit_commit(ctx);
}

static void gb_pack_kv(msgpack_packer *pk, const char *k, int v)
{
    msgpack_pack_str_with_body(pk, k, strlen(k));
    msgpack_pack_int(pk, v);
}

/* Byte strings handed to sl_emit_raw. */
static const unsigned char gb_nonmap[] = {0x92, 0x01, 0x02};
static const unsigned char gb_bad_byte[] = {0x81, 0xa1, 'k', 0xc1};
static const unsigned char gb_truncated[] = {0x82, 0xa1, 'a', 0x01};
static const unsigned char gb_two_maps[] = {0x81, 0xa1, 'a', 0x01,
                                            0x81, 0xa1, 'b', 0x02};
static const unsigned char gb_huge[] = {0xdf, 0xff, 0xff, 0xff, 0xff};

static int gb_emit_deep(sl_ctx_t *ctx)
{
    unsigned char buf[4 * 40 + 1];
    size_t n = 0;
    for (int i = 0; i < 40; i++) { /* {"d": {"d": ... 1}} */
        buf[n++] = 0x81;
        buf[n++] = 0xa1;
        buf[n++] = 'd';
    }
    buf[n++] = 0x01;
    return sl_emit_raw(ctx, buf, n);
}

static int gb_status(const char *what, sl_ctx_t *ctx, sl_record_t *rec,
                     int *handled)
{
    size_t len;
    const void *data = sl_record_data(rec, &len);
    *handled = 1;
    if (strcmp(what, "fail_then_emit") == 0) {
        int rc = sl_ctx_fail(ctx, "failed on purpose, then emitted");
        sl_emit_raw(ctx, data, len);
        return rc;
    }
    if (strcmp(what, "fail_return_ok") == 0) {
        sl_ctx_fail(ctx, "failed on purpose, then returned 0");
        sl_emit_raw(ctx, data, len);
        return 0;
    }
    if (strcmp(what, "status_positive") == 0) {
        sl_emit_raw(ctx, data, len);
        return 7;
    }
    if (strcmp(what, "status_eof") == 0)
        return SL_EOF;
    if (strcmp(what, "status_unknown") == 0)
        return -99999;
    if (strcmp(what, "status_min") == 0)
        return INT_MIN;
    if (strcmp(what, "long_error") == 0) {
        char msg[5001];
        memset(msg, 'e', sizeof(msg) - 1);
        msg[sizeof(msg) - 1] = '\0';
        return sl_ctx_fail(ctx, "%s", msg);
    }
    if (strcmp(what, "binary_error") == 0)
        return sl_ctx_fail(ctx, "bad bytes \xff\xfe\xc0 end");
    if (strcmp(what, "priority_255") == 0) {
        sl_emit_priority(ctx, 255);
        return sl_emit_raw(ctx, data, len);
    }
    *handled = 0;
    return 0;
}

static int gb_process(void *state, sl_ctx_t *ctx, sl_record_t *rec)
{
    gb_state_t *st = state;
    const msgpack_object *map;
    size_t len;
    const void *data = sl_record_data(rec, &len);
    if (sl_record_map(rec, &map) != 0)
        return sl_ctx_fail(ctx, "garbage: input is not a map");
    const msgpack_object *d = sl_map_get(map, "do");
    if (!d || d->type != MSGPACK_OBJECT_STR)
        return sl_emit_raw(ctx, data, len);
    char what[32];
    size_t wl = d->via.str.size < sizeof(what) - 1 ? d->via.str.size
                                                   : sizeof(what) - 1;
    memcpy(what, d->via.str.ptr, wl);
    what[wl] = '\0';

    int handled;
    int ret = gb_status(what, ctx, rec, &handled);
    if (handled)
        return ret;

    int rc;
    msgpack_packer *pk;
    if (strcmp(what, "nonmap_raw") == 0) {
        rc = sl_emit_raw(ctx, gb_nonmap, sizeof(gb_nonmap));
    } else if (strcmp(what, "empty_raw") == 0) {
        rc = sl_emit_raw(ctx, "", 0);
    } else if (strcmp(what, "bad_byte") == 0) {
        rc = sl_emit_raw(ctx, gb_bad_byte, sizeof(gb_bad_byte));
    } else if (strcmp(what, "truncated") == 0) {
        rc = sl_emit_raw(ctx, gb_truncated, sizeof(gb_truncated));
    } else if (strcmp(what, "two_maps") == 0) {
        rc = sl_emit_raw(ctx, gb_two_maps, sizeof(gb_two_maps));
    } else if (strcmp(what, "huge_header") == 0) {
        rc = sl_emit_raw(ctx, gb_huge, sizeof(gb_huge));
    } else if (strcmp(what, "deep") == 0) {
        rc = gb_emit_deep(ctx);
    } else if (strcmp(what, "begin_nonmap") == 0) {
        rc = -ENOBUFS;
        if ((pk = sl_emit_begin(ctx))) {
            msgpack_pack_array(pk, 2);
            msgpack_pack_int(pk, 1);
            msgpack_pack_int(pk, 2);
            rc = sl_emit_commit(ctx);
        }
    } else if (strcmp(what, "begin_no_commit") == 0) {
        /* Returns with the record open: nothing of it may come out, and
         * no report either. */
        if ((pk = sl_emit_begin(ctx))) {
            msgpack_pack_map(pk, 2);
            gb_pack_kv(pk, "half", 1);
        }
        return 0;
    } else if (strcmp(what, "begin_twice") == 0) {
        rc = -ENOBUFS;
        if ((pk = sl_emit_begin(ctx))) {
            msgpack_pack_map(pk, 1);
            gb_pack_kv(pk, "a", 1);
            msgpack_packer *again = sl_emit_begin(ctx);
            rc = sl_emit_commit(ctx);
            if (again)
                rc = -1000; /* the host allowed two open records */
        }
    } else if (strcmp(what, "begin_two_maps") == 0) {
        rc = -ENOBUFS;
        if ((pk = sl_emit_begin(ctx))) {
            msgpack_pack_map(pk, 1);
            gb_pack_kv(pk, "a", 1);
            msgpack_pack_map(pk, 1);
            gb_pack_kv(pk, "b", 2);
            rc = sl_emit_commit(ctx);
        }
    } else if (strcmp(what, "commit_alone") == 0) {
        rc = sl_emit_commit(ctx);
        sl_emit_raw(ctx, data, len);
    } else if (strcmp(what, "object_nonmap") == 0) {
        msgpack_object arr = {.type = MSGPACK_OBJECT_ARRAY};
        rc = sl_emit_object(ctx, &arr);
    } else {
        return sl_ctx_fail(ctx, "garbage: unknown 'do' value '%s'", what);
    }
    gb_report(st, ctx, what, rc);
    return 0;
}

static int gb_flush(void *state, sl_ctx_t *ctx)
{
    (void)ctx;
    const gb_state_t *st = state;
    return (int)st->flush_rc;
}

static void gb_fini(void *state) { free(state); }

SL_STAGE_DEFINE(.name = "garbage",
                .summary = "test stage: misuses the stage ABI on request",
                .kind = SL_STAGE_TRANSFORM, .config_keys = gb_keys,
                .validate = gb_validate, .init = gb_init,
                .process = gb_process, .flush = gb_flush, .fini = gb_fini);
