/*
 * Messages between a process-lane dispatcher and its worker processes.
 * Frame 0 of each is a fixed little-endian header; batches travel in the
 * batch format of batch.h as separate frames.
 *
 *   child -> parent  HELLO   'h'                       (then SETUP comes)
 *                    READY   'r'
 *                    FAIL    'f'  + frame: the reason
 *                    DONE    'k' u32 flags, u64 seq, counters, u32 n_out,
 *                            u32 n_dl, u32 handled
 *                            + frames: n_out output batches (each within
 *                              the consumers' credit share; the last may be
 *                              empty), n_dl dead-letter batches (each at
 *                              most SETUP's dl_batch records), then, when
 *                              `retried` > 0, the retry batch (envelopes
 *                              carry the attempts made) and its records'
 *                              first failure times (u64 each)
 *                    FLUSHED 'l' the same layout (no dead letters, no
 *                            retries)
 *   parent -> child  SETUP   's' u32 stage, worker, workers, batch, timeout,
 *                            dl_batch, flags
 *                             + frames: doc name, base dir, YAML text
 *                    ITEM    'i' u32 flags, u64 seq   + frame: input batch
 *                             (+ frame: each record's first failure, u64,
 *                             with PPW_ITEM_RETRY)
 *                    FLUSH   'x'
 *                    QUIT    'q'
 *
 * A child's routing id is 'W', u32 worker index, u32 generation, so a
 * message from a worker that has since died and been replaced is known to
 * be stale.
 */
#ifndef SL_PPWIRE_H
#define SL_PPWIRE_H

#include "endian.h"

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define PPW_VERSION 3
#define PPW_IDENT_SIZE 9
#define PPW_SETUP_SIZE 32
#define PPW_ITEM_SIZE 16
#define PPW_COUNTS_SIZE 76
#define PPW_FLUSH_SIZE 4
#define PPW_QUIT_SIZE 4
#define PPW_SMALL_SIZE 4

typedef enum ppw_type {
    PPW_HELLO = 'h',
    PPW_READY = 'r',
    PPW_FAIL = 'f',
    PPW_DONE = 'k',
    PPW_FLUSHED = 'l',
    PPW_SETUP = 's',
    PPW_ITEM = 'i',
    PPW_FLUSH = 'x',
    PPW_QUIT = 'q',
} ppw_type_t;

/* SETUP flags */
#define PPW_SETUP_SYNC 1u   /* call the plugin's sync() after each item */
/* ITEM flags */
#define PPW_ITEM_RETRY 1u   /* records from the retry queue: times follow */
/* DONE flags */
#define PPW_DONE_SYNC_FAILED 1u /* sync() failed after this item */
#define PPW_DONE_CUT 2u         /* stopped at shutdown after `handled`
                                   records; the parent spills the rest */

typedef struct ppw_msg {
    ppw_type_t type;
    uint64_t seq;
    uint32_t flags;
    uint32_t stage, worker, workers, batch, timeout_ms, dl_batch;
    uint64_t ok, filtered, errors, emitted, busy_ns;
    uint64_t retried;     /* records sent back for another attempt */
    uint32_t n_out, n_dl; /* output and dead-letter frames that follow */
    uint32_t handled;     /* with PPW_DONE_CUT: records handled */
} ppw_msg_t;

static inline void ppw_ident(unsigned char out[PPW_IDENT_SIZE], uint32_t worker,
                             uint32_t gen)
{
    out[0] = 'W';
    sl__put_u32(out + 1, worker);
    sl__put_u32(out + 5, gen);
}

static inline int ppw_parse_ident(const void *buf, size_t len, unsigned *worker,
                                  uint32_t *gen)
{
    const unsigned char *p = buf;
    if (len != PPW_IDENT_SIZE || p[0] != 'W')
        return -EBADMSG;
    *worker = sl__get_u32(p + 1);
    *gen = sl__get_u32(p + 5);
    return 0;
}

static inline void ppw_head(unsigned char *out, ppw_type_t type)
{
    out[0] = (unsigned char)type;
    out[1] = PPW_VERSION;
    out[2] = 0;
    out[3] = 0;
}

static inline void ppw_small(unsigned char out[PPW_SMALL_SIZE], ppw_type_t type)
{
    ppw_head(out, type);
}

static inline void ppw_flush(unsigned char out[PPW_FLUSH_SIZE])
{
    ppw_head(out, PPW_FLUSH);
}

static inline void ppw_quit(unsigned char out[PPW_QUIT_SIZE])
{
    ppw_head(out, PPW_QUIT);
}

static inline void ppw_setup(unsigned char out[PPW_SETUP_SIZE], uint32_t stage,
                             uint32_t worker, uint32_t workers, uint32_t batch,
                             uint32_t timeout_ms, uint32_t dl_batch,
                             uint32_t flags)
{
    ppw_head(out, PPW_SETUP);
    sl__put_u32(out + 4, stage);
    sl__put_u32(out + 8, worker);
    sl__put_u32(out + 12, workers);
    sl__put_u32(out + 16, batch);
    sl__put_u32(out + 20, timeout_ms);
    sl__put_u32(out + 24, dl_batch);
    sl__put_u32(out + 28, flags);
}

static inline void ppw_item(unsigned char out[PPW_ITEM_SIZE], uint64_t seq,
                            uint32_t flags)
{
    ppw_head(out, PPW_ITEM);
    sl__put_u32(out + 4, flags);
    sl__put_u64(out + 8, seq);
}

/* DONE and FLUSHED share one layout. */
static inline void ppw_counts(unsigned char out[PPW_COUNTS_SIZE], ppw_type_t type,
                              const ppw_msg_t *m)
{
    ppw_head(out, type);
    sl__put_u32(out + 4, m->flags);
    sl__put_u64(out + 8, m->seq);
    sl__put_u64(out + 16, m->ok);
    sl__put_u64(out + 24, m->filtered);
    sl__put_u64(out + 32, m->errors);
    sl__put_u64(out + 40, m->emitted);
    sl__put_u64(out + 48, m->busy_ns);
    sl__put_u64(out + 56, m->retried);
    sl__put_u32(out + 64, m->n_out);
    sl__put_u32(out + 68, m->n_dl);
    sl__put_u32(out + 72, m->handled);
}

static inline int ppw_parse(const void *buf, size_t len, ppw_msg_t *m)
{
    const unsigned char *p = buf;
    memset(m, 0, sizeof(*m));
    if (len < 4 || p[1] != PPW_VERSION)
        return -EBADMSG;
    m->type = (ppw_type_t)p[0];
    switch (m->type) {
    case PPW_HELLO:
    case PPW_READY:
    case PPW_FAIL:
    case PPW_FLUSH:
    case PPW_QUIT:
        return len == PPW_SMALL_SIZE ? 0 : -EBADMSG;
    case PPW_SETUP:
        if (len != PPW_SETUP_SIZE)
            return -EBADMSG;
        m->stage = sl__get_u32(p + 4);
        m->worker = sl__get_u32(p + 8);
        m->workers = sl__get_u32(p + 12);
        m->batch = sl__get_u32(p + 16);
        m->timeout_ms = sl__get_u32(p + 20);
        m->dl_batch = sl__get_u32(p + 24);
        m->flags = sl__get_u32(p + 28);
        return 0;
    case PPW_ITEM:
        if (len != PPW_ITEM_SIZE)
            return -EBADMSG;
        m->flags = sl__get_u32(p + 4);
        m->seq = sl__get_u64(p + 8);
        return 0;
    case PPW_DONE:
    case PPW_FLUSHED:
        if (len != PPW_COUNTS_SIZE)
            return -EBADMSG;
        m->flags = sl__get_u32(p + 4);
        m->seq = sl__get_u64(p + 8);
        m->ok = sl__get_u64(p + 16);
        m->filtered = sl__get_u64(p + 24);
        m->errors = sl__get_u64(p + 32);
        m->emitted = sl__get_u64(p + 40);
        m->busy_ns = sl__get_u64(p + 48);
        m->retried = sl__get_u64(p + 56);
        m->n_out = sl__get_u32(p + 64);
        m->n_dl = sl__get_u32(p + 68);
        m->handled = sl__get_u32(p + 72);
        return 0;
    default:
        return -EBADMSG;
    }
}

#endif
