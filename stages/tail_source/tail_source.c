/*
 * tail_source: follows a growing text file line by line, like `tail -F`:
 * one record per complete line, through renames (rotation), truncation
 * (copytruncate) and delete-and-recreate of the file at the path.
 *
 * Reading is tail_reader.c (a line is handed out only once its '\n' is
 * there); which file to read is tail_follow.c. This file is the plugin:
 * the pull loop, waiting for data (inotify on the path's folder, or
 * polling every poll_ms), and positions. A pull that finds nothing waits
 * at most 100 ms, so that a stop is seen promptly.
 */
#include "tail_conf.h"
#include "tail_follow.h"
#include "tail_pos.h"
#include "tail_reader.h"

#include <sluice/stage.h>

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Lines looked at per pull even if none becomes a record (skipping what
 * start_at: end leaves out, say), so that pull() returns promptly. */
#define TL_UNITS_PER_PULL 65536
#define TL_MAX_WAIT_MS 100

static int tl_validate(const sl_config_t *cfg)
{
    tl_conf_t c;
    int rc = tl_conf_parse(cfg, &c);

    if (rc == 0)
        tl_conf_fini(&c);
    return rc;
}

static void tl_fini(void *state)
{
    tl_state_t *st = state;

    if (!st)
        return;
    if (st->ifd >= 0)
        close(st->ifd);
    tl_reader_fini(&st->rd);
    tl_conf_fini(&st->c);
    free(st->abs);
    free(st->pos);
    free(st);
}

/* The path made absolute without resolving its last part (which may not
 * exist yet, and whose target changes at each rotation); malloc'd. */
static char *s_absolute(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, (size_t)(slash - path)) : strdup(".");
    char *out = NULL;

    if (!dir)
        return NULL;
    char *real = realpath(*dir ? dir : "/", NULL);
    const char *base = slash ? slash + 1 : path;
    if (real && asprintf(&out, "%s%s%s", real,
                         strcmp(real, "/") ? "/" : "", base) < 0)
        out = NULL;
    else if (!real)
        out = strdup(path); /* a missing folder: as configured */
    free(real);
    free(dir);
    return out;
}

/* Watches the path's folder, where a rotation renames and creates. Any
 * failure (no folder yet, out of watches) leaves plain polling. */
static void s_watch(tl_state_t *st, sl_ctx_t *ctx)
{
    char *dir = strdup(st->abs);
    char *slash = dir ? strrchr(dir, '/') : NULL;

    if (!slash) {
        free(dir);
        return;
    }
    slash[slash == dir] = '\0';
    st->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (st->ifd >= 0 &&
        inotify_add_watch(st->ifd, dir, IN_MODIFY | IN_CREATE | IN_DELETE |
                                            IN_MOVED_FROM | IN_MOVED_TO |
                                            IN_CLOSE_WRITE | IN_ATTRIB) < 0) {
        sl_log(ctx, SL_LOG_DEBUG, "%s: no inotify watch (%s); polling every "
               "%u ms", dir, strerror(errno), st->c.poll_ms);
        close(st->ifd);
        st->ifd = -1;
    }
    free(dir);
}

static int tl_init(sl_ctx_t *ctx, const sl_config_t *cfg, void **state)
{
    tl_state_t *st = calloc(1, sizeof(*st));
    struct stat sb;
    int rc;

    if (!st)
        return -ENOMEM;
    st->ifd = -1;
    rc = tl_conf_parse(cfg, &st->c);
    if (rc < 0) {
        free(st);
        return rc;
    }
    rc = tl_reader_init(&st->rd, st->c.max_line);
    if (rc < 0)
        goto fail;
    if (stat(st->c.path, &sb) == 0 && !S_ISREG(sb.st_mode)) {
        rc = sl_config_error(sl_config_get(cfg, "path"), "'%s' is not a "
                             "regular file", st->c.path);
        goto fail;
    }
    rc = -ENOMEM;
    if (!(st->abs = s_absolute(st->c.path)))
        goto fail;
    size_t plen = strlen(st->abs);
    if (plen > UINT16_MAX ||
        file_pos_size(&tl_pos_kind, plen) > SL_POSITION_MAX) {
        sl_log(ctx, SL_LOG_WARN, "%.64s...: path too long to keep a resume "
               "position; a later run starts over", st->c.path);
    } else {
        st->pos_len = file_pos_size(&tl_pos_kind, plen);
        if (!(st->pos = malloc(st->pos_len)))
            goto fail;
    }
    if (st->c.inotify)
        s_watch(st, ctx);
    *state = st;
    return 0;

fail:
    tl_fini(st);
    return rc;
}

/* ---- reading ------------------------------------------------------------- */

static int s_emit(tl_state_t *st, sl_ctx_t *ctx, const char *line, size_t len)
{
    msgpack_packer *pk = sl_emit_begin(ctx);

    if (!pk)
        return -ENOBUFS;
    msgpack_pack_map(pk, st->c.include_path ? 2 : 1);
    msgpack_pack_str_with_body(pk, st->c.field, st->c.field_len);
    msgpack_pack_str_with_body(pk, line, len);
    if (st->c.include_path) {
        msgpack_pack_str_with_body(pk, "path", 4);
        msgpack_pack_str_with_body(pk, st->c.path, strlen(st->c.path));
    }
    return sl_emit_commit(ctx);
}

/* Emits complete lines while the budget lasts. 1 when the file has no
 * complete line left, 0 when the budget (or the per-pull cap) ran out,
 * or a negative code. */
static int s_read(tl_state_t *st, sl_ctx_t *ctx, size_t budget,
                  size_t *emitted)
{
    tl_reader_t *rd = &st->rd;
    const char *line;
    size_t len;

    for (size_t units = 0; *emitted < budget; units++) {
        if (units == TL_UNITS_PER_PULL)
            return 0;
        int rc = tl_reader_line(rd, &line, &len);
        if (rc == 0)
            return 1;
        if (rc < 0 && rc != -E2BIG)
            return rc;
        st->pos_dirty = 1;
        if (rd->line_off < st->emit_from)
            continue; /* start_at: end */
        st->emit_from = 0;
        if (rc == -E2BIG) {
            sl_ctx_input_error(ctx, "%s:%" PRIu64 ": line longer than "
                               "max_line (%zu bytes)", st->c.path,
                               rd->lineno, st->c.max_line);
            continue;
        }
        rc = s_emit(st, ctx, line, len);
        if (rc < 0)
            return rc;
        (*emitted)++;
    }
    return 0;
}

/* Reads what there is, and at the end of the file sees whether it was
 * rotated or truncated. 1 if anything happened (the next pull should look
 * again at once), 0 if there was nothing new, or a negative code. */
static int s_look(tl_state_t *st, sl_ctx_t *ctx, size_t budget,
                  size_t *emitted)
{
    int progress = 0;

    for (int turn = 0; turn < 4; turn++) {
        /* New bytes after an end of file may belong to a file written
         * anew from byte 0: look at its start before reading them. */
        if (st->at_eof) {
            st->at_eof = 0;
            int rc = tl_follow_verify(st, ctx);
            if (rc < 0)
                return rc;
            progress |= rc;
        }
        int rc = s_read(st, ctx, budget, emitted);
        st->at_eof = rc == 1;
        if (st->rd.got_data) {
            st->rd.got_data = 0;
            st->idle_since = sl_mono_ns();
            progress = 1;
        }
        if (rc <= 0)
            return rc < 0 ? rc : 1;
        if (*emitted)
            return 1;
        rc = tl_follow_check(st, ctx);
        if (rc <= 0)
            return rc < 0 ? rc : progress;
        progress = 1;
    }
    return progress;
}

/* ---- waiting ------------------------------------------------------------- */

/* Sleeps up to ms, or until inotify reports a change in the folder.
 * Returns 1 if it did. */
static int s_wait(tl_state_t *st, unsigned ms)
{
    if (st->ifd < 0) {
        struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        return 0;
    }
    struct pollfd pfd = {.fd = st->ifd, .events = POLLIN};
    if (poll(&pfd, 1, (int)ms) <= 0)
        return 0;
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    int gone = 0;
    ssize_t n;
    while ((n = read(st->ifd, buf, sizeof(buf))) > 0) {
        for (char *p = buf; p < buf + n;) {
            const struct inotify_event *ev = (const struct inotify_event *)p;
            gone |= (ev->mask & IN_IGNORED) != 0;
            p += sizeof(*ev) + ev->len;
        }
    }
    if (gone) { /* the folder went away: polling from now on */
        close(st->ifd);
        st->ifd = -1;
    }
    return 1;
}

/* ---- positions ----------------------------------------------------------- */

/* Records the offset after the last line handled (before an incomplete
 * one). No I/O once the file's first FILE_FP_MAX bytes are known. */
static void s_set_position(tl_state_t *st, sl_ctx_t *ctx)
{
    file_pos_t p = {.dev = st->dev, .ino = st->ino,
                    .offset = tl_reader_offset(&st->rd),
                    .lineno = st->rd.lineno, .emit_from = st->emit_from,
                    .own = st->rd.skipping ? TL_POS_SKIPPING : 0,
                    .path = st->abs};

    if (!st->pos || st->rd.fd < 0 || !st->pos_dirty)
        return;
    long n = file_fp_fill(&st->fp, st->rd.fd, p.offset);
    if (n < 0)
        return; /* reading reports a failing file */
    p.fp_len = (uint32_t)n;
    p.fp_hash = file_pos_fnv1a(st->fp.buf, (size_t)n);
    p.path_len = st->pos_len - file_pos_size(&tl_pos_kind, 0);
    file_pos_encode(&tl_pos_kind, &p, st->pos);
    sl_ctx_set_position(ctx, st->pos, st->pos_len);
    st->pos_dirty = 0;
}

/* ---- pull ---------------------------------------------------------------- */

static int s_end(tl_state_t *st, sl_ctx_t *ctx, const char *why)
{
    size_t held = tl_reader_pending(&st->rd);

    if (held)
        sl_log(ctx, SL_LOG_WARN, "%s:%" PRIu64 ": %zu bytes after the last "
               "newline are not emitted (a line is a record once it ends "
               "with a newline); a resumed run reads the line when it is "
               "complete", st->c.path, st->rd.lineno + 1, held);
    sl_log(ctx, SL_LOG_INFO, "%s: %s; end of stream after line %" PRIu64,
           st->c.path, why, st->rd.lineno);
    st->at_end = 1;
    s_set_position(st, ctx);
    return SL_EOF;
}

static int s_after_look(tl_state_t *st, int rc)
{
    uint64_t now = sl_mono_ns();

    st->look_now = rc > 0;
    if (rc == 0)
        st->next_look = now + (uint64_t)st->c.poll_ms * 1000000ull;
    return rc;
}

static int tl_pull(void *state, sl_ctx_t *ctx)
{
    tl_state_t *st = state;
    size_t budget = sl_ctx_budget(ctx), emitted = 0;
    int rc = 0;

    if (st->at_end || sl_ctx_stopping(ctx))
        return SL_EOF;
    if (!st->started) {
        st->started = 1;
        st->idle_since = sl_mono_ns();
        st->look_now = 1;
        rc = tl_follow_start(st, ctx);
    }
    if (rc >= 0 && (st->look_now || sl_mono_ns() >= st->next_look))
        rc = s_after_look(st, s_look(st, ctx, budget, &emitted));
    if (rc == 0) {
        uint64_t now = sl_mono_ns();
        if (st->c.idle_timeout_ms &&
            now - st->idle_since >= st->c.idle_timeout_ms * 1000000ull) {
            char why[64];
            snprintf(why, sizeof(why), "no new data for %" PRIu64 " ms",
                     st->c.idle_timeout_ms);
            return s_end(st, ctx, why);
        }
        uint64_t left = st->next_look > now ? st->next_look - now : 0;
        unsigned ms = (unsigned)((left + 999999) / 1000000);
        if (ms > TL_MAX_WAIT_MS)
            ms = TL_MAX_WAIT_MS;
        if (s_wait(st, ms) || sl_mono_ns() >= st->next_look)
            rc = s_after_look(st, s_look(st, ctx, budget, &emitted));
    }
    s_set_position(st, ctx);
    if (rc < 0) {
        sl_log(ctx, SL_LOG_ERROR, "%s: stopped reading: %s", st->c.path,
               strerror(-rc));
        return rc;
    }
    return 0;
}

SL_STAGE_DEFINE(.name = "tail_source",
                .summary = "follows a growing text file like tail -F",
                .kind = SL_STAGE_SOURCE, .max_workers = 1,
                .config_keys = tl_conf_keys, .validate = tl_validate,
                .init = tl_init, .pull = tl_pull, .fini = tl_fini);
