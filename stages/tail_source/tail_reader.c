#include "tail_reader.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

int tl_reader_init(tl_reader_t *r, size_t max_line)
{
    memset(r, 0, sizeof(*r));
    r->fd = -1;
    return line_buf_init(&r->b, max_line);
}

void tl_reader_fini(tl_reader_t *r)
{
    tl_reader_detach(r);
    line_buf_fini(&r->b);
}

void tl_reader_detach(tl_reader_t *r)
{
    if (r->fd >= 0)
        close(r->fd);
    r->fd = -1;
    r->b.start = r->b.end = 0;
    r->b.base = 0;
    r->lineno = 0;
    r->skipping = 0;
}

int tl_reader_attach(tl_reader_t *r, int fd, uint64_t off, uint64_t lineno,
                     int skipping)
{
    if (r->fd >= 0 && r->fd != fd)
        close(r->fd);
    r->fd = fd;
    r->b.start = r->b.end = 0;
    r->b.base = off;
    r->lineno = lineno;
    r->skipping = skipping;
    if (lseek(fd, (off_t)off, SEEK_SET) < 0)
        return -errno;
    return 0;
}

long tl_reader_more(tl_reader_t *r)
{
    /* Callers find over-long lines before the buffer is full at its
     * limit, so this never meets -ENOSPC. */
    long n = line_buf_read(&r->b, r->fd);

    if (n > 0)
        r->got_data = 1;
    return n;
}

/* Drops bytes through the next '\n'. 1 once it is found, 0 if the file
 * has no more bytes now, or -errno. */
static int s_skip(tl_reader_t *r)
{
    while (!line_buf_drop_line(&r->b)) {
        long n = tl_reader_more(r);
        if (n <= 0)
            return (int)n;
    }
    r->skipping = 0;
    return 1;
}

int tl_reader_line(tl_reader_t *r, const char **line, size_t *len)
{
    line_buf_t *b = &r->b;
    size_t scanned = 0; /* bytes after start already searched for '\n' */

    if (r->fd < 0)
        return 0;
    if (r->skipping) {
        int rc = s_skip(r);
        if (rc <= 0)
            return rc;
    }
    for (;;) {
        char *p = b->buf + b->start;
        size_t avail = b->end - b->start;
        char *nl = memchr(p + scanned, '\n', avail - scanned);
        if (nl) {
            size_t n = (size_t)(nl - p), body = n;
            if (body > 0 && p[body - 1] == '\r')
                body--;
            r->line_off = b->base + b->start;
            b->start += n + 1;
            r->lineno++;
            if (body > b->max_line)
                return -E2BIG;
            *line = p;
            *len = body;
            return 1;
        }
        /* max_line bytes, a '\r' and still no '\n': too long whatever
         * follows. Said now, so that a line that never ends is still
         * reported. */
        if (avail >= b->max_line + 2) {
            r->line_off = b->base + b->start;
            r->lineno++;
            r->skipping = 1;
            b->base += b->end;
            b->start = b->end = 0;
            return -E2BIG;
        }
        scanned = avail;
        long got = tl_reader_more(r);
        if (got <= 0)
            return (int)got;
    }
}
