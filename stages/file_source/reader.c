#include "reader.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int fs_reader_open(fs_reader_t *r, const char *path, size_t max_line)
{
    struct stat st;

    memset(r, 0, sizeof(*r));
    r->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (r->fd < 0)
        return -errno;
    if (fstat(r->fd, &st) == 0 && S_ISDIR(st.st_mode)) {
        close(r->fd);
        r->fd = -1;
        return -EISDIR;
    }
    r->max_line = max_line;
    /* Room for the longest line plus "\r\n", and never less than a chunk,
     * so short lines are always served from one large read. */
    r->max_cap = max_line + 2 > FS_READ_CHUNK ? max_line + 2 : FS_READ_CHUNK;
    r->cap = FS_READ_CHUNK;
    r->buf = malloc(r->cap);
    if (!r->buf) {
        close(r->fd);
        r->fd = -1;
        return -ENOMEM;
    }
    return 0;
}

void fs_reader_close(fs_reader_t *r)
{
    if (r->fd >= 0)
        close(r->fd);
    free(r->buf);
    memset(r, 0, sizeof(*r));
    r->fd = -1;
}

/* Moves the unconsumed bytes to the front, grows the buffer if it is full
 * and allowed to, and reads once. Returns bytes read (0 at EOF), -ENOSPC if
 * the buffer is full at its limit, or -errno. */
static long s_read_more(fs_reader_t *r)
{
    if (r->start > 0) {
        memmove(r->buf, r->buf + r->start, r->end - r->start);
        r->base += r->start;
        r->end -= r->start;
        r->start = 0;
    }
    if (r->end == r->cap) {
        if (r->cap >= r->max_cap)
            return -ENOSPC;
        size_t ncap = r->cap * 2 < r->max_cap ? r->cap * 2 : r->max_cap;
        char *nbuf = realloc(r->buf, ncap);
        if (!nbuf)
            return -ENOMEM;
        r->buf = nbuf;
        r->cap = ncap;
    }
    for (;;) {
        ssize_t n = read(r->fd, r->buf + r->end, r->cap - r->end);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            r->eof = 1;
        r->end += (size_t)n;
        return n;
    }
}

/* Drops the rest of an over-long line, through its '\n'. */
static int s_skip_line(fs_reader_t *r)
{
    for (;;) {
        char *nl = memchr(r->buf + r->start, '\n', r->end - r->start);
        if (nl) {
            r->start = (size_t)(nl + 1 - r->buf);
            return 0;
        }
        r->base += r->end;
        r->start = r->end = 0;
        if (r->eof)
            return 0;
        long n = s_read_more(r);
        if (n < 0)
            return (int)n;
    }
}

int fs_reader_line(fs_reader_t *r, int keep_eol, const char **line,
                   size_t *len)
{
    size_t scanned = 0; /* bytes already searched for '\n' */

    for (;;) {
        char *p = r->buf + r->start;
        size_t avail = r->end - r->start;
        char *nl = memchr(p + scanned, '\n', avail - scanned);
        if (nl || (r->eof && avail > 0)) {
            size_t n = nl ? (size_t)(nl - p) : avail;
            size_t body = n;
            if (body > 0 && p[body - 1] == '\r')
                body--;
            r->start += nl ? n + 1 : n;
            r->lineno++;
            if (body > r->max_line)
                return -E2BIG;
            *line = p;
            *len = keep_eol ? (nl ? n + 1 : n) : body;
            return 1;
        }
        if (r->eof)
            return 0;
        scanned = avail;
        long got = s_read_more(r);
        if (got == -ENOSPC) {
            /* Full buffer and no newline: longer than max_line. */
            r->lineno++;
            int rc = s_skip_line(r);
            return rc < 0 ? rc : -E2BIG;
        }
        if (got < 0)
            return (int)got;
    }
}

long fs_reader_fill(fs_reader_t *r, size_t want)
{
    if (want > r->max_cap)
        return -E2BIG;
    if (want > r->cap) {
        size_t ncap = r->cap;
        while (ncap < want)
            ncap *= 2;
        if (ncap > r->max_cap)
            ncap = r->max_cap;
        char *nbuf = realloc(r->buf, ncap);
        if (!nbuf)
            return -ENOMEM;
        r->buf = nbuf;
        r->cap = ncap;
    }
    while (r->end - r->start < want && !r->eof) {
        long n = s_read_more(r); /* compacts first, so want fits */
        if (n < 0)
            return n;
    }
    return (long)(r->end - r->start);
}

int fs_reader_seek(fs_reader_t *r, uint64_t off, uint64_t lineno)
{
    if (lseek(r->fd, (off_t)off, SEEK_SET) < 0)
        return -errno;
    r->start = r->end = 0;
    r->base = off;
    r->lineno = lineno;
    r->eof = 0;
    return 0;
}
