/*
 * Shutdown spilling: when a graceful stop has not drained the run within
 * its grace period, every record still in flight is written to the run's
 * spill file (dead-letter format, reason "shutdown") instead of being
 * dropped, and the stages end as if their input had ended.
 *
 * A spill entry's `stage` names the stage that has NOT yet handled the
 * record, so `sluice dlq replay SPILL --stage S` re-injects each record
 * where it stopped. The file is opened on the first spill only.
 */
#ifndef SL_SPILL_H
#define SL_SPILL_H

#include "batch.h"

#include <stddef.h>
#include <stdint.h>

typedef struct sl_run sl_run_t;
typedef struct sl_runner sl_runner_t;

/* Writes every record of a batch (wire format) as spilled at `stage`.
 * Returns how many could not be written (each is logged as lost). */
uint64_t sl__spill_batch(sl_run_t *run, const char *stage, const void *batch,
                         size_t len, const uint64_t *first_ns);
/* One record. 0 or a negative code (logged). */
int sl__spill_record(sl_run_t *run, const char *stage,
                     const sl_envelope_t *env, const void *payload,
                     size_t len, uint64_t first_ns);
/* Same with another reason (when_full: spill sheds to the same file), not
 * counted as spilled at shutdown (the caller counts it). */
int sl__spill_record_why(sl_run_t *run, const char *stage,
                         const sl_envelope_t *env, const void *payload,
                         size_t len, uint64_t first_ns, const char *why);
/* Closes the spill file, if it was opened (after the run). */
void sl__spill_close(sl_run_t *run);

#endif
