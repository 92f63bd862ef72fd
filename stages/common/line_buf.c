#include "line_buf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int line_buf_init(line_buf_t *b, size_t max_line)
{
    memset(b, 0, sizeof(*b));
    b->max_line = max_line;
    /* Room for the longest line plus "\r\n", and never less than a chunk,
     * so that short lines come from one large read. */
    b->max_cap = max_line + 2 > LINE_BUF_CHUNK ? max_line + 2
                                               : LINE_BUF_CHUNK;
    b->cap = LINE_BUF_CHUNK;
    b->buf = malloc(b->cap);
    if (!b->buf) {
        b->cap = 0;
        return -ENOMEM;
    }
    return 0;
}

void line_buf_fini(line_buf_t *b)
{
    free(b->buf);
    b->buf = NULL;
    b->cap = 0;
}

long line_buf_read(line_buf_t *b, int fd)
{
    if (b->start > 0) {
        memmove(b->buf, b->buf + b->start, b->end - b->start);
        b->base += b->start;
        b->end -= b->start;
        b->start = 0;
    }
    if (b->end == b->cap) {
        if (b->cap >= b->max_cap)
            return -ENOSPC;
        size_t ncap = b->cap * 2 < b->max_cap ? b->cap * 2 : b->max_cap;
        char *nbuf = realloc(b->buf, ncap);
        if (!nbuf)
            return -ENOMEM;
        b->buf = nbuf;
        b->cap = ncap;
    }
    for (;;) {
        ssize_t n = read(fd, b->buf + b->end, b->cap - b->end);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        b->end += (size_t)n;
        return n;
    }
}

int line_buf_drop_line(line_buf_t *b)
{
    char *nl = memchr(b->buf + b->start, '\n', b->end - b->start);

    if (nl) {
        b->start = (size_t)(nl + 1 - b->buf);
        return 1;
    }
    b->base += b->end;
    b->start = b->end = 0;
    return 0;
}
