#include "tail_follow.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Opens path read-only; only a regular file will do (a FIFO would block,
 * a folder has no lines). fd or -errno; *sb is the file's stat. */
static int s_open(const char *path, struct stat *sb)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        return -errno;
    if (fstat(fd, sb) < 0) {
        int rc = -errno;
        close(fd);
        return rc;
    }
    if (!S_ISREG(sb->st_mode)) {
        close(fd);
        return -EINVAL;
    }
    return fd;
}

/* Reads fd from off on (taking it); every file switch goes through here. */
static int s_attach(tl_state_t *st, int fd, const struct stat *sb,
                    uint64_t off, uint64_t lineno, int skipping)
{
    st->dev = (uint64_t)sb->st_dev;
    st->ino = (uint64_t)sb->st_ino;
    st->fp.have = 0;
    st->pos_dirty = 1;
    return tl_reader_attach(&st->rd, fd, off, lineno, skipping);
}

/* The file at the path cannot be opened: said once, then waited for. */
static void s_cannot_open(tl_state_t *st, sl_ctx_t *ctx, int err)
{
    if (err == -EINVAL) {
        if (!st->said_other)
            sl_log(ctx, SL_LOG_WARN, "%s: not a regular file; waiting for "
                   "one to take its place", st->c.path);
        st->said_other = 1;
        return;
    }
    if (!st->said_waiting)
        sl_log(ctx, err == -ENOENT ? SL_LOG_INFO : SL_LOG_WARN,
               "%s: %s; waiting for it", st->c.path,
               err == -ENOENT ? "does not exist (yet)" : strerror(-err));
    st->said_waiting = 1;
}

/* ---- while running ------------------------------------------------------- */

static int s_rewind(tl_state_t *st, sl_ctx_t *ctx, const char *why)
{
    sl_log(ctx, SL_LOG_WARN, "%s: %s; reading it again from the beginning",
           st->c.path, why);
    st->emit_from = 0;
    st->fp.have = 0;
    st->pos_dirty = 1;
    return tl_reader_attach(&st->rd, st->rd.fd, 0, 0, 0);
}

/* No file yet: opens the one at the path, if there is one now. */
static int s_open_first(tl_state_t *st, sl_ctx_t *ctx)
{
    struct stat sb;
    int fd = s_open(st->c.path, &sb);

    if (fd < 0) {
        s_cannot_open(st, ctx, fd);
        return 0;
    }
    if (st->said_waiting || st->said_other)
        sl_log(ctx, SL_LOG_INFO, "%s: appeared; reading it from the "
               "beginning", st->c.path);
    st->said_waiting = st->said_other = 0;
    int rc = s_attach(st, fd, &sb, 0, 0, 0);
    return rc < 0 ? rc : 1;
}

int tl_follow_verify(tl_state_t *st, sl_ctx_t *ctx)
{
    tl_reader_t *rd = &st->rd;
    struct stat cur;
    char why[160];

    if (rd->fd < 0)
        return 0;
    if (fstat(rd->fd, &cur) < 0)
        return -errno;
    /* Truncated (copytruncate): the writer starts over at byte 0. */
    if ((uint64_t)cur.st_size < tl_reader_read_to(rd)) {
        snprintf(why, sizeof(why), "truncated to %llu bytes (read up to "
                 "byte %llu)", (unsigned long long)cur.st_size,
                 (unsigned long long)tl_reader_read_to(rd));
        int rc = s_rewind(st, ctx, why);
        return rc < 0 ? rc : 1;
    }
    /* Truncated and written past our offset since we last looked: only
     * the first bytes tell. */
    int same = file_fp_same(&st->fp, rd->fd);
    if (same < 0)
        return same;
    if (!same) {
        snprintf(why, sizeof(why), "its first %zu bytes changed (truncated "
                 "and written again)", st->fp.have);
        int rc = s_rewind(st, ctx, why);
        return rc < 0 ? rc : 1;
    }
    return 0;
}

int tl_follow_check(tl_state_t *st, sl_ctx_t *ctx)
{
    tl_reader_t *rd = &st->rd;
    struct stat now;

    if (rd->fd < 0)
        return s_open_first(st, ctx);
    int rc = tl_follow_verify(st, ctx);
    if (rc != 0)
        return rc;
    if (stat(st->c.path, &now) < 0)
        return 0; /* renamed or deleted, nothing new there yet */
    if ((uint64_t)now.st_dev == st->dev && (uint64_t)now.st_ino == st->ino)
        return 0;
    /* Another file took the path. The old one may still have been written
     * to since our last read: one more look before leaving it. */
    long more = tl_reader_more(rd);
    if (more != 0)
        return more < 0 ? (int)more : 1;
    int fd = s_open(st->c.path, &now);
    if (fd < 0) {
        s_cannot_open(st, ctx, fd);
        return 0;
    }
    sl_log(ctx, SL_LOG_INFO, "%s: replaced (rotated or recreated): the old "
           "file (inode %" PRIu64 ") ended at line %" PRIu64 "; reading the "
           "new one (inode %llu) from the beginning", st->c.path, st->ino,
           rd->lineno, (unsigned long long)now.st_ino);
    if (tl_reader_pending(rd))
        sl_log(ctx, SL_LOG_WARN, "%s:%" PRIu64 ": the old file ended with "
               "%zu bytes after its last newline; not a complete line, "
               "dropped", st->c.path, rd->lineno + 1, tl_reader_pending(rd));
    st->emit_from = 0;
    st->said_waiting = st->said_other = 0;
    rc = s_attach(st, fd, &now, 0, 0, 0);
    return rc < 0 ? rc : 1;
}

/* ---- the first pull ------------------------------------------------------ */

static int s_fresh(tl_state_t *st, sl_ctx_t *ctx)
{
    struct stat sb;
    int fd = s_open(st->c.path, &sb);

    if (fd < 0) {
        s_cannot_open(st, ctx, fd);
        return 0;
    }
    if (st->c.start_at_end && sb.st_size > 0) {
        /* Read, to count lines for FILE:LINE, but not emitted. */
        st->emit_from = (uint64_t)sb.st_size;
        sl_log(ctx, SL_LOG_INFO, "%s: start_at end: skipping the %llu bytes "
               "already there", st->c.path,
               (unsigned long long)sb.st_size);
    }
    return s_attach(st, fd, &sb, 0, 0, 0);
}

/* Why the file behind fd does not fit p, or NULL if it does. Uses st->fp
 * (which must describe fd's file). */
static const char *s_misfit(tl_state_t *st, int fd, const struct stat *sb,
                            const file_pos_t *p, char *buf, size_t len)
{
    if ((uint64_t)sb->st_size < p->offset) {
        snprintf(buf, len, "it has %llu bytes, the position is at byte %"
                 PRIu64, (unsigned long long)sb->st_size, p->offset);
        return buf;
    }
    long n = file_fp_fill(&st->fp, fd, p->offset);
    if (n < 0 || (uint32_t)n != p->fp_len ||
        file_pos_fnv1a(st->fp.buf, (size_t)n) != p->fp_hash) {
        snprintf(buf, len, "its first %u bytes differ: another file with "
                 "the same inode number", (unsigned)p->fp_len);
        return buf;
    }
    return NULL;
}

/* Looks in the path's folder for the file p names, renamed by a rotation
 * (access.log -> access.log.1). Its fd, with *name and *sb, or -1. */
static int s_find_rotated(tl_state_t *st, const file_pos_t *p, char *name,
                          size_t namelen, struct stat *sb)
{
    char *dir = strdup(st->abs);
    int found = -1;

    if (!dir)
        return -1;
    char *slash = strrchr(dir, '/');
    if (slash == dir)
        slash[1] = '\0';
    else if (slash)
        *slash = '\0';
    DIR *d = opendir(dir);
    free(dir);
    if (!d)
        return -1;
    struct dirent *de;
    while (found < 0 && (de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        /* d_ino is only a hint (overlay file systems may differ), so
         * every entry is looked at: once per start, not per line. */
        if (fstatat(dirfd(d), de->d_name, sb, 0) < 0 ||
            !S_ISREG(sb->st_mode) || (uint64_t)sb->st_dev != p->dev ||
            (uint64_t)sb->st_ino != p->ino)
            continue;
        int fd = openat(dirfd(d), de->d_name, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        char why[160];
        st->fp.have = 0;
        if (s_misfit(st, fd, sb, p, why, sizeof(why))) {
            close(fd);
            continue;
        }
        snprintf(name, namelen, "%s", de->d_name);
        found = fd;
    }
    closedir(d);
    return found;
}

/* 1 if the position decided where to start, 0 if it cannot be used at all
 * (then start as if there were none), or a negative code. */
static int s_resume(tl_state_t *st, sl_ctx_t *ctx, const void *blob,
                    size_t len)
{
    const char *why;
    char buf[200], name[256];
    struct stat sb, osb;
    file_pos_t p;
    int rc;

    if (file_pos_decode(&tl_pos_kind, blob, len, &p, &why) < 0) {
        sl_log(ctx, SL_LOG_WARN, "%s: saved position ignored (%s)",
               st->c.path, why);
        return 0;
    }
    if (p.path_len != strlen(st->abs) || memcmp(p.path, st->abs, p.path_len)) {
        sl_log(ctx, SL_LOG_WARN, "%s: saved position ignored (it is for "
               "'%.*s')", st->c.path, (int)p.path_len, p.path);
        return 0;
    }
    int skipping = (p.own & TL_POS_SKIPPING) != 0;
    int fd = s_open(st->c.path, &sb);
    if (fd >= 0 && (uint64_t)sb.st_dev == p.dev &&
        (uint64_t)sb.st_ino == p.ino) {
        st->fp.have = 0;
        why = s_misfit(st, fd, &sb, &p, buf, sizeof(buf));
        if (why) {
            sl_log(ctx, SL_LOG_WARN, "%s: saved position (line %" PRIu64
                   ", byte %" PRIu64 ") does not fit the file: %s; reading "
                   "it from the beginning", st->c.path, p.lineno, p.offset,
                   why);
            return (rc = s_attach(st, fd, &sb, 0, 0, 0)) < 0 ? rc : 1;
        }
        st->emit_from = p.emit_from;
        sl_log(ctx, SL_LOG_INFO, "%s: resuming after line %" PRIu64
               " (byte %" PRIu64 ")", st->c.path, p.lineno, p.offset);
        rc = s_attach(st, fd, &sb, p.offset, p.lineno, skipping);
        return rc < 0 ? rc : 1;
    }
    int old = s_find_rotated(st, &p, name, sizeof(name), &osb);
    if (old >= 0) {
        if (fd >= 0)
            close(fd); /* opened again when the old one is done */
        sl_log(ctx, SL_LOG_INFO, "%s: the file of the saved position was "
               "rotated to '%s'; reading it on after line %" PRIu64 ", then "
               "the new file", st->c.path, name, p.lineno);
        st->emit_from = p.emit_from;
        rc = s_attach(st, old, &osb, p.offset, p.lineno, skipping);
        return rc < 0 ? rc : 1;
    }
    sl_log(ctx, SL_LOG_WARN, "%s: the file of the saved position (inode %"
           PRIu64 ", after line %" PRIu64 ") is gone, and with it whatever "
           "was written to it after that; reading %s from the beginning",
           st->c.path, p.ino, p.lineno,
           fd >= 0 ? "the file now at the path" : "the next file at the path");
    if (fd < 0) {
        s_cannot_open(st, ctx, fd);
        return 1;
    }
    return (rc = s_attach(st, fd, &sb, 0, 0, 0)) < 0 ? rc : 1;
}

int tl_follow_start(tl_state_t *st, sl_ctx_t *ctx)
{
    size_t len;
    const void *blob = sl_ctx_resume_position(ctx, &len);

    if (blob) {
        int rc = s_resume(st, ctx, blob, len);
        if (rc != 0)
            return rc < 0 ? rc : 0;
    }
    return s_fresh(st, ctx);
}
