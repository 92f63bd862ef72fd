/*
 * Which file tail_source reads: the one at the configured path when it
 * starts (or where the committed position says), then whatever replaces
 * it there. tail_follow.c decides when to leave a file (renamed or
 * deleted, and read to its end), when to read one again from the start
 * (truncated or rewritten in place), and where a resumed run starts.
 */
#ifndef TL_FOLLOW_H
#define TL_FOLLOW_H

#include "tail_conf.h"
#include "tail_pos.h"
#include "tail_reader.h"

#include <sluice/stage.h>

#include <stdint.h>

typedef struct tl_state {
    tl_conf_t c;
    tl_reader_t rd;
    file_fp_t fp;          /* first bytes of the open file */
    char *abs;             /* c.path made absolute, as positions name it */
    uint64_t dev, ino;     /* of the open file */
    uint64_t emit_from;    /* lines starting before this are not emitted */
    int started;           /* the first pull has looked at the resume */
    int at_end;
    int said_waiting;      /* "waiting for PATH" logged */
    int said_other;        /* "PATH is not a regular file" logged */
    uint64_t idle_since;   /* monotonic ns of the last byte read */
    uint64_t next_look;    /* monotonic ns when to look for data again */
    int look_now;          /* the last look found something: look again */
    int at_eof;            /* the last look read to the end of the file */
    int ifd;               /* inotify on the path's folder, or -1 */
    unsigned char *pos;    /* encoded position, pos_len bytes, or NULL */
    size_t pos_len;
    int pos_dirty;         /* consumed or switched since the last one */
} tl_state_t;

/* Picks the file and offset of the first pull: the committed position if
 * it still fits, else the start (or end, with start_at: end) of the file
 * at the path. Logs what it decides whenever it is not the plain case.
 * 0 or a negative code for a fatal error. */
int tl_follow_start(tl_state_t *st, sl_ctx_t *ctx);

/* Before reading on from where the last look found the end of the file:
 * whether the file was truncated (shorter than what was read) or written
 * anew from its start (its first bytes changed); then reads it again from
 * the start, with a warning. 1 if it did, 0 if not, or a negative code. */
int tl_follow_verify(tl_state_t *st, sl_ctx_t *ctx);

/* Called when the open file has no complete line left: verifies it, then
 * looks for another file at the path (rotation, delete and recreate), or
 * for the first one. Returns 1 if it opened, switched or rewound a file
 * (read again), 0 if nothing changed, or a negative code. */
int tl_follow_check(tl_state_t *st, sl_ctx_t *ctx);

#endif
