/*
 * stdout: writes each record as one line of JSON to standard output.
 * Output is gathered in a buffer and written with write(2) when it fills
 * and at flush(), so a fast pipeline does not make one syscall per record.
 * One worker at most: lines from two workers would interleave.
 */
#include "record_map.h"

#include <sluice/json.h>
#include <sluice/stage.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define STDOUT_BUF_BYTES (64 * 1024)

typedef struct stdout_opts {
    int pretty;
} stdout_opts_t;

typedef struct stdout_state {
    stdout_opts_t o;
    msgpack_sbuffer out; /* bytes not yet written */
    msgpack_sbuffer tmp; /* compact JSON before re-indenting */
} stdout_state_t;

static const char *const s_keys[] = {"pretty", NULL};

static int stdout_parse(const sl_config_t *cfg, stdout_opts_t *o)
{
    return sl_config_get_bool(cfg, "pretty", 0, &o->pretty);
}

static int stdout_validate(const sl_config_t *cfg)
{
    stdout_opts_t o;
    return stdout_parse(cfg, &o);
}

static int stdout_init(sl_ctx_t *ctx, const sl_config_t *cfg, void **state)
{
    stdout_state_t *st;
    int rc;

    (void)ctx;
    st = calloc(1, sizeof(*st));
    if (!st)
        return -ENOMEM;
    rc = stdout_parse(cfg, &st->o);
    if (rc < 0) {
        free(st);
        return rc;
    }
    msgpack_sbuffer_init(&st->out);
    msgpack_sbuffer_init(&st->tmp);
    *state = st;
    return 0;
}

/* Writes out the buffer. On error the buffered lines are dropped (a broken
 * stdout will not heal) and -errno is returned. */
static int s_drain(stdout_state_t *st)
{
    size_t off = 0;
    int rc = 0;

    while (off < st->out.size) {
        ssize_t n = write(STDOUT_FILENO, st->out.data + off,
                          st->out.size - off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = -errno;
            break;
        }
        off += (size_t)n;
    }
    st->out.size = 0;
    return rc;
}

static int s_put(msgpack_sbuffer *b, const char *s, size_t n)
{
    return msgpack_sbuffer_write(b, s, n) == 0 ? 0 : -ENOMEM;
}

static int s_indent(msgpack_sbuffer *b, unsigned depth)
{
    static const char spaces[] = "                                ";
    size_t want = 2 * (size_t)depth;
    int rc = s_put(b, "\n", 1);

    while (rc == 0 && want > 0) {
        size_t n = want < sizeof(spaces) - 1 ? want : sizeof(spaces) - 1;
        rc = s_put(b, spaces, n);
        want -= n;
    }
    return rc;
}

/* Re-indents compact JSON (as sl_json_encode writes it: no whitespace
 * outside strings) with two spaces per level; empty {} and [] stay on one
 * line. Working on the text keeps one encoder for both layouts. */
static int s_pretty(const char *j, size_t len, msgpack_sbuffer *b)
{
    unsigned depth = 0;
    int rc = 0;

    for (size_t i = 0; i < len && rc == 0; i++) {
        char c = j[i];
        switch (c) {
        case '"': {
            size_t start = i++;
            while (i < len && j[i] != '"')
                i += j[i] == '\\' ? 2 : 1;
            if (i >= len)
                i = len - 1;
            rc = s_put(b, j + start, i - start + 1);
            break;
        }
        case '{':
        case '[':
            if (i + 1 < len && (j[i + 1] == '}' || j[i + 1] == ']')) {
                rc = s_put(b, j + i, 2);
                i++;
                break;
            }
            rc = s_put(b, &c, 1);
            if (rc == 0)
                rc = s_indent(b, ++depth);
            break;
        case '}':
        case ']':
            rc = s_indent(b, depth ? --depth : 0);
            if (rc == 0)
                rc = s_put(b, &c, 1);
            break;
        case ',':
            rc = s_put(b, ",", 1);
            if (rc == 0)
                rc = s_indent(b, depth);
            break;
        case ':':
            rc = s_put(b, ": ", 2);
            break;
        default:
            rc = s_put(b, &c, 1);
        }
    }
    return rc;
}

static int stdout_process(void *state, sl_ctx_t *ctx, sl_record_t *rec)
{
    stdout_state_t *st = state;
    const msgpack_object *map;
    size_t mark = st->out.size;
    int rc;

    rc = stage_record_map(ctx, rec, &map);
    if (rc < 0)
        return rc;
    if (st->o.pretty) {
        st->tmp.size = 0;
        rc = sl_json_encode(map, &st->tmp);
        if (rc == 0)
            rc = s_pretty(st->tmp.data, st->tmp.size, &st->out);
    } else {
        rc = sl_json_encode(map, &st->out);
    }
    if (rc == 0)
        rc = s_put(&st->out, "\n", 1);
    if (rc < 0) {
        /* Only -ENOMEM gets here (the record decoded), which may pass. */
        st->out.size = mark; /* never leave half a line behind */
        return sl_ctx_error(ctx, "cannot encode the record as JSON: %s",
                            strerror(-rc));
    }
    if (st->out.size >= STDOUT_BUF_BYTES) {
        rc = s_drain(st);
        if (rc < 0)
            return sl_ctx_error(ctx, "cannot write to stdout: %s",
                                strerror(-rc));
    }
    return 0;
}

static int stdout_flush(void *state, sl_ctx_t *ctx)
{
    int rc = s_drain(state);

    if (rc < 0)
        sl_log(ctx, SL_LOG_ERROR, "cannot write to stdout: %s",
               strerror(-rc));
    return rc;
}

static void stdout_fini(void *state)
{
    stdout_state_t *st = state;
    int rc = s_drain(st);

    if (rc < 0)
        sl_log(NULL, SL_LOG_ERROR, "stdout: cannot write to stdout: %s",
               strerror(-rc));
    msgpack_sbuffer_destroy(&st->out);
    msgpack_sbuffer_destroy(&st->tmp);
    free(st);
}

SL_STAGE_DEFINE(.name = "stdout",
                .summary = "writes each record as a line of JSON to "
                           "standard output",
                .kind = SL_STAGE_SINK,
                .max_workers = 1,
                .config_keys = s_keys,
                .validate = stdout_validate,
                .init = stdout_init,
                .process = stdout_process,
                .flush = stdout_flush,
                .fini = stdout_fini);
