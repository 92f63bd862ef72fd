/*
 * The buffer under file_source's and tail_source's line readers: bytes of
 * one file read in large chunks, consumed from the front, grown up to a
 * limit that fits the longest line accepted.
 */
#ifndef SL_LINE_BUF_H
#define SL_LINE_BUF_H

#include <stddef.h>
#include <stdint.h>

#define LINE_BUF_CHUNK (256 * 1024)

typedef struct line_buf {
    char *buf;
    size_t cap;
    size_t start;    /* first unconsumed byte */
    size_t end;      /* one past the last byte read */
    size_t max_cap;  /* the buffer never grows past this */
    size_t max_line; /* longest line accepted, terminator excluded */
    uint64_t base;   /* file offset of buf[0] */
} line_buf_t;

/* An empty buffer of one chunk for lines of up to max_line bytes. 0 or
 * -ENOMEM. */
int line_buf_init(line_buf_t *b, size_t max_line);
/* Frees the buffer; b is then empty (buf NULL). */
void line_buf_fini(line_buf_t *b);

/* Moves the unconsumed bytes to the front, grows the buffer if it is full
 * and allowed to, and reads fd once. Returns bytes read (0 at the end of
 * the file), -ENOSPC if the buffer is full at its limit, or -errno. */
long line_buf_read(line_buf_t *b, int fd);

/* Drops bytes through the next '\n' among those buffered: 1 if there was
 * one, else 0 and every buffered byte is dropped. */
int line_buf_drop_line(line_buf_t *b);

#endif
