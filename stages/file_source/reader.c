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
    int rc;

    memset(r, 0, sizeof(*r));
    r->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (r->fd < 0)
        return -errno;
    if (fstat(r->fd, &st) == 0 && S_ISDIR(st.st_mode)) {
        close(r->fd);
        r->fd = -1;
        return -EISDIR;
    }
    if ((rc = line_buf_init(&r->b, max_line)) < 0) {
        close(r->fd);
        r->fd = -1;
        return rc;
    }
    return 0;
}

void fs_reader_close(fs_reader_t *r)
{
    if (r->fd >= 0)
        close(r->fd);
    line_buf_fini(&r->b);
    memset(r, 0, sizeof(*r));
    r->fd = -1;
}

/* Reads once more: bytes read (0 at EOF), -ENOSPC if the buffer is full at
 * its limit, or -errno. */
static long s_read_more(fs_reader_t *r)
{
    long n = line_buf_read(&r->b, r->fd);

    if (n == 0)
        r->eof = 1;
    return n;
}

/* Drops the rest of an over-long line, through its '\n'. */
static int s_skip_line(fs_reader_t *r)
{
    while (!line_buf_drop_line(&r->b) && !r->eof) {
        long n = s_read_more(r);
        if (n < 0)
            return (int)n;
    }
    return 0;
}

int fs_reader_line(fs_reader_t *r, int keep_eol, const char **line,
                   size_t *len)
{
    line_buf_t *b = &r->b;
    size_t scanned = 0; /* bytes already searched for '\n' */

    for (;;) {
        char *p = b->buf + b->start;
        size_t avail = b->end - b->start;
        char *nl = memchr(p + scanned, '\n', avail - scanned);
        if (nl || (r->eof && avail > 0)) {
            size_t n = nl ? (size_t)(nl - p) : avail;
            size_t body = n;
            if (body > 0 && p[body - 1] == '\r')
                body--;
            b->start += nl ? n + 1 : n;
            r->lineno++;
            if (body > b->max_line)
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
    line_buf_t *b = &r->b;

    if (want > b->max_cap)
        return -E2BIG;
    if (want > b->cap) {
        size_t ncap = b->cap;
        while (ncap < want)
            ncap *= 2;
        if (ncap > b->max_cap)
            ncap = b->max_cap;
        char *nbuf = realloc(b->buf, ncap);
        if (!nbuf)
            return -ENOMEM;
        b->buf = nbuf;
        b->cap = ncap;
    }
    while (b->end - b->start < want && !r->eof) {
        long n = s_read_more(r); /* compacts first, so want fits */
        if (n < 0)
            return n;
    }
    return (long)(b->end - b->start);
}

int fs_reader_seek(fs_reader_t *r, uint64_t off, uint64_t lineno)
{
    if (lseek(r->fd, (off_t)off, SEEK_SET) < 0)
        return -errno;
    r->b.start = r->b.end = 0;
    r->b.base = off;
    r->lineno = lineno;
    r->eof = 0;
    return 0;
}
