/*
 * Buffered reading of one file for file_source: whole lines without a copy
 * (pointers into the buffer, valid until the next call) and raw byte
 * windows for the msgpack scanner.
 */
#ifndef FS_READER_H
#define FS_READER_H

#include "line_buf.h"

#include <stddef.h>
#include <stdint.h>

typedef struct fs_reader {
    int fd;
    line_buf_t b;
    uint64_t lineno; /* number of the line last returned (1-based) */
    int eof;
} fs_reader_t;

/* Opens path for reading. Returns 0 or -errno (-EISDIR for a directory). */
int fs_reader_open(fs_reader_t *r, const char *path, size_t max_line);
void fs_reader_close(fs_reader_t *r);

/* The next line. *len excludes the "\n" or "\r\n" unless keep_eol, in which
 * case the line is returned as read, "\n" included when there is one.
 * Returns 1 for a line, 0 at the end of the file, -E2BIG for a line longer
 * than max_line (skipped whole; lineno counts it), or -errno from read. */
int fs_reader_line(fs_reader_t *r, int keep_eol, const char **line,
                   size_t *len);

/* Makes at least `want` bytes available from the current position unless
 * the file ends first. Returns the bytes available (possibly fewer than
 * want only at the end of the file), or -E2BIG if want exceeds the buffer
 * limit, or -errno. */
long fs_reader_fill(fs_reader_t *r, size_t want);
static inline const char *fs_reader_data(const fs_reader_t *r)
{
    return r->b.buf + r->b.start;
}
static inline void fs_reader_consume(fs_reader_t *r, size_t n)
{
    r->b.start += n;
}
/* Reads on from byte off of the file, lineno lines being before it: the
 * buffered bytes are dropped. 0 or -errno. */
int fs_reader_seek(fs_reader_t *r, uint64_t off, uint64_t lineno);
/* File offset of the current position. */
static inline uint64_t fs_reader_offset(const fs_reader_t *r)
{
    return r->b.base + r->b.start;
}

#endif
