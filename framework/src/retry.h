/*
 * The delayed retry queue of a stage: records whose handler failed with
 * attempts left wait here, off the workers, until their backoff has passed.
 * Owned by the stage's dispatcher thread. It needs no bound of its own: a
 * waiting record still holds its input credit, so the stage's `queue`
 * bounds it like every other record the stage holds.
 *
 * Backoff before attempt n+1 (n attempts made): d = backoff_ms * 2^(n-1),
 * capped at max_backoff_ms, then "equal jitter": a uniform draw from
 * [d/2, d], so that records that failed together do not retry together.
 */
#ifndef SL_RETRY_H
#define SL_RETRY_H

#include "batch.h"

#include <stddef.h>
#include <stdint.h>

typedef struct sl_retry_entry {
    uint64_t due_ns;   /* monotonic */
    uint64_t first_ns; /* wall clock of the first failure */
    uint32_t link;     /* input link whose credit it holds */
    uint32_t gen;      /* the stage's generation when it arrived */
    int worker;        /* partitioned stages: its worker, else -1 */
    sl_envelope_t env; /* attempts = attempts made so far */
    char *payload;     /* malloc'd, owned by the entry */
    size_t len;
} sl_retry_entry_t;

typedef struct sl_retryq {
    sl_retry_entry_t *heap; /* min-heap on due_ns */
    size_t n, cap;
    uint64_t rng;
} sl_retryq_t;

void sl__retryq_init(sl_retryq_t *q, uint64_t seed);
/* Frees every entry still queued. */
void sl__retryq_fini(sl_retryq_t *q);
/* The delay before the next attempt, in ns, after `attempts` failures. */
uint64_t sl__retryq_delay_ns(sl_retryq_t *q, uint32_t attempts,
                             uint32_t backoff_ms, uint32_t max_backoff_ms);
/* Takes the entry (and its payload). 0 or -ENOMEM (then the caller still
 * owns the payload). */
int sl__retryq_push(sl_retryq_t *q, const sl_retry_entry_t *e);
/* The earliest due time, or UINT64_MAX when empty. */
uint64_t sl__retryq_next_due(const sl_retryq_t *q);
/* Removes the earliest entry into *out (the caller owns its payload).
 * 0, or -ENOENT when empty. */
int sl__retryq_pop(sl_retryq_t *q, sl_retry_entry_t *out);
static inline size_t sl__retryq_len(const sl_retryq_t *q) { return q->n; }

#endif
