/*
 * Buffered line reading from a file that may still grow. A line is handed
 * out only once its '\n' has been read: the bytes after the last newline
 * stay in the buffer (and the offset stays before them) until the writer
 * completes the line. Lines are pointers into the buffer, valid until the
 * next call.
 */
#ifndef TL_READER_H
#define TL_READER_H

#include "line_buf.h"

#include <stddef.h>
#include <stdint.h>

typedef struct tl_reader {
    int fd;          /* -1: no file */
    line_buf_t b;
    uint64_t lineno; /* lines consumed (the last one returned is lineno) */
    uint64_t line_off; /* file offset where the line last returned began */
    int skipping;    /* inside an over-long line: dropping through its '\n' */
    int got_data;    /* a read returned bytes since this was last cleared */
} tl_reader_t;

/* 0 or -ENOMEM. No file is attached yet. */
int tl_reader_init(tl_reader_t *r, size_t max_line);
void tl_reader_fini(tl_reader_t *r);

/* Reads fd (which the reader takes, closing the one it had) from byte off
 * on, lineno lines being before it; skipping says that off is inside an
 * over-long line. Buffered bytes are dropped. 0 or -errno from lseek (fd is
 * taken either way). */
int tl_reader_attach(tl_reader_t *r, int fd, uint64_t off, uint64_t lineno,
                     int skipping);
/* Closes the file and forgets the buffer. */
void tl_reader_detach(tl_reader_t *r);

/* The next complete line, without its "\n" or "\r\n". Returns 1 for a
 * line, 0 when the file holds no complete line now, -E2BIG when a line
 * longer than max_line begins (counted in lineno; reported once, its bytes
 * dropped through its '\n' as they arrive), or -errno from read. */
int tl_reader_line(tl_reader_t *r, const char **line, size_t *len);

/* Reads once more into the buffer; bytes read (0 at the end of the file)
 * or -errno. For a last look at a file before leaving it. */
long tl_reader_more(tl_reader_t *r);

/* File offset of the next unconsumed byte: the start of the incomplete
 * line held back, if any. */
static inline uint64_t tl_reader_offset(const tl_reader_t *r)
{
    return r->b.base + r->b.start;
}
/* File offset up to which the file has been read. */
static inline uint64_t tl_reader_read_to(const tl_reader_t *r)
{
    return r->b.base + r->b.end;
}
/* Bytes of an incomplete line held back. */
static inline size_t tl_reader_pending(const tl_reader_t *r)
{
    return r->b.end - r->b.start;
}

#endif
