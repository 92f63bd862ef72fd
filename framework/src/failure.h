/*
 * Giving up on a record: the one place that decides what happens to a
 * record whose last attempt failed, for thread lanes, worker processes and
 * dead workers alike. With a dead-letter file configured the record goes
 * there with the reason; without one it is logged (the first few per
 * worker in full, then sparsely) and counted. Either way the caller counts
 * it in the stage's errors, so the ledger still balances.
 */
#ifndef SL_FAILURE_H
#define SL_FAILURE_H

#include "batch.h"
#include <stddef.h>
#include <stdint.h>

typedef struct sl_deadletter sl_deadletter_t;

/* `logged` is the worker's own counter of failures so far (for the log
 * rate limit). Returns 0, or the dead-letter write's negative code (then
 * the failure has been logged instead). */
int sl__record_give_up(const char *stage, int worker, uint64_t *logged,
                       sl_deadletter_t *dl, const sl_envelope_t *env,
                       const void *payload, size_t len, const char *reason,
                       uint32_t attempts);

/* Same with the times of the first and last failure (ns since the epoch). */
int sl__record_give_up_at(const char *stage, int worker, uint64_t *logged,
                          sl_deadletter_t *dl, const sl_envelope_t *env,
                          const void *payload, size_t len, const char *reason,
                          uint32_t attempts, uint64_t first_ns,
                          uint64_t last_ns);

#endif
