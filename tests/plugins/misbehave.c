/*
 * misbehave: a test-only transform that fails the way untrusted plugins do,
 * for the process-lane tests. Records pass through unchanged unless a
 * configured boolean field is true:
 *
 *   crash_when: FIELD   dereference NULL (SIGSEGV)
 *   abort_when: FIELD   abort() (SIGABRT)
 *   exit_when:  FIELD   _exit(3), as a plugin calling exit() would
 *   hang_when:  FIELD   spin forever (only a timeout gets it back)
 *   fail_when:  FIELD   return an error for the record (no crash)
 *   fail_attempts: N    with fail_when: fail only the first N attempts
 *                       (a transient error that a retry gets past)
 *   emit_before_fail: true  emit the record, then fail it (its output
 *                       must not go on)
 *   fail_final: true    fail with sl_ctx_fail (no retry) instead
 */
#include <sluice/stage.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct mb_state {
    const char *crash, *abort_, *exit_, *hang, *fail;
    int64_t fail_attempts; /* 0: always */
    int emit_before_fail;
    int fail_final;
} mb_state_t;

static const char *const mb_keys[] = {"crash_when", "abort_when", "exit_when",
                                      "hang_when", "fail_when", "fail_attempts",
                                      "emit_before_fail", "fail_final",
                                      NULL};

static int mb_init(sl_ctx_t *ctx, const sl_config_t *cfg, void **state)
{
    (void)ctx;
    mb_state_t *st = calloc(1, sizeof(*st));
    if (!st)
        return -ENOMEM;
    int rc = sl_config_get_str(cfg, "crash_when", NULL, &st->crash) |
             sl_config_get_str(cfg, "abort_when", NULL, &st->abort_) |
             sl_config_get_str(cfg, "exit_when", NULL, &st->exit_) |
             sl_config_get_str(cfg, "hang_when", NULL, &st->hang) |
             sl_config_get_str(cfg, "fail_when", NULL, &st->fail) |
             sl_config_get_int(cfg, "fail_attempts", 0, &st->fail_attempts) |
             sl_config_get_bool(cfg, "emit_before_fail", 0,
                                &st->emit_before_fail) |
             sl_config_get_bool(cfg, "fail_final", 0, &st->fail_final);
    if (rc) {
        free(st);
        return -EINVAL;
    }
    *state = st;
    return 0;
}

static int s_true(const msgpack_object *map, const char *field)
{
    if (!field)
        return 0;
    const msgpack_object *v = sl_map_get(map, field);
    return v && v->type == MSGPACK_OBJECT_BOOLEAN && v->via.boolean;
}

static volatile int *volatile mb_null;
static volatile unsigned long mb_spin;

static int mb_process(void *state, sl_ctx_t *ctx, sl_record_t *rec)
{
    mb_state_t *st = state;
    const msgpack_object *map;
    if (sl_record_map(rec, &map) != 0)
        return sl_ctx_error(ctx, "not a map");
    if (s_true(map, st->crash))
        return *mb_null;
    if (s_true(map, st->abort_))
        abort();
    if (s_true(map, st->exit_))
        _exit(3);
    if (s_true(map, st->hang))
        for (;;)
            mb_spin++;
    if (s_true(map, st->fail) &&
        (!st->fail_attempts ||
         sl_record_attempts(rec) < (uint64_t)st->fail_attempts)) {
        if (st->emit_before_fail) {
            size_t n;
            const void *d = sl_record_data(rec, &n);
            sl_emit_raw(ctx, d, n);
        }
        if (st->fail_final)
            return sl_ctx_fail(ctx, "%s is true, for good", st->fail);
        return sl_ctx_error(ctx, "%s is true (attempt %u)", st->fail,
                            sl_record_attempts(rec) + 1);
    }
    size_t len;
    const void *data = sl_record_data(rec, &len);
    return sl_emit_raw(ctx, data, len);
}

static void mb_fini(void *state) { free(state); }

SL_STAGE_DEFINE(.name = "misbehave",
                .summary = "test stage: crashes, hangs or fails on request",
                .kind = SL_STAGE_TRANSFORM, .config_keys = mb_keys,
                .init = mb_init, .process = mb_process, .fini = mb_fini);
