#include "tail_reader.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int tl_reader_init(tl_reader_t *r, size_t max_line)
{
    memset(r, 0, sizeof(*r));
    r->fd = -1;
    r->max_line = max_line;
    /* Room for the longest line plus "\r\n", and never less than a chunk,
     * so that short lines come from one large read. */
    r->max_cap = max_line + 2 > TL_READ_CHUNK ? max_line + 2 : TL_READ_CHUNK;
    r->cap = TL_READ_CHUNK;
    r->buf = malloc(r->cap);
    return r->buf ? 0 : -ENOMEM;
}

void tl_reader_fini(tl_reader_t *r)
{
    tl_reader_detach(r);
    free(r->buf);
    r->buf = NULL;
}

void tl_reader_detach(tl_reader_t *r)
{
    if (r->fd >= 0)
        close(r->fd);
    r->fd = -1;
    r->start = r->end = 0;
    r->base = 0;
    r->lineno = 0;
    r->skipping = 0;
}

int tl_reader_attach(tl_reader_t *r, int fd, uint64_t off, uint64_t lineno,
                     int skipping)
{
    if (r->fd >= 0 && r->fd != fd)
        close(r->fd);
    r->fd = fd;
    r->start = r->end = 0;
    r->base = off;
    r->lineno = lineno;
    r->skipping = skipping;
    if (lseek(fd, (off_t)off, SEEK_SET) < 0)
        return -errno;
    return 0;
}

long tl_reader_more(tl_reader_t *r)
{
    if (r->start > 0) {
        memmove(r->buf, r->buf + r->start, r->end - r->start);
        r->base += r->start;
        r->end -= r->start;
        r->start = 0;
    }
    if (r->end == r->cap) {
        /* Callers find over-long lines before the buffer is full at its
         * limit, so this only grows it. */
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
        r->end += (size_t)n;
        if (n > 0)
            r->got_data = 1;
        return n;
    }
}

/* Drops bytes through the next '\n'. 1 once it is found, 0 if the file
 * has no more bytes now, or -errno. */
static int s_skip(tl_reader_t *r)
{
    for (;;) {
        char *nl = memchr(r->buf + r->start, '\n', r->end - r->start);
        if (nl) {
            r->start = (size_t)(nl + 1 - r->buf);
            r->skipping = 0;
            return 1;
        }
        r->base += r->end;
        r->start = r->end = 0;
        long n = tl_reader_more(r);
        if (n <= 0)
            return (int)n;
    }
}

int tl_reader_line(tl_reader_t *r, const char **line, size_t *len)
{
    size_t scanned = 0; /* bytes after start already searched for '\n' */

    if (r->fd < 0)
        return 0;
    if (r->skipping) {
        int rc = s_skip(r);
        if (rc <= 0)
            return rc;
    }
    for (;;) {
        char *p = r->buf + r->start;
        size_t avail = r->end - r->start;
        char *nl = memchr(p + scanned, '\n', avail - scanned);
        if (nl) {
            size_t n = (size_t)(nl - p), body = n;
            if (body > 0 && p[body - 1] == '\r')
                body--;
            r->line_off = r->base + r->start;
            r->start += n + 1;
            r->lineno++;
            if (body > r->max_line)
                return -E2BIG;
            *line = p;
            *len = body;
            return 1;
        }
        /* max_line bytes, a '\r' and still no '\n': too long whatever
         * follows. Said now, so that a line that never ends is still
         * reported. */
        if (avail >= r->max_line + 2) {
            r->line_off = r->base + r->start;
            r->lineno++;
            r->skipping = 1;
            r->base += r->end;
            r->start = r->end = 0;
            return -E2BIG;
        }
        scanned = avail;
        long got = tl_reader_more(r);
        if (got <= 0)
            return (int)got;
    }
}
