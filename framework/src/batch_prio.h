/*
 * Splitting a received batch by record priority, so that a stage can queue
 * each level's records as their own work item.
 */
#ifndef SL_BATCH_PRIO_H
#define SL_BATCH_PRIO_H

#include "batch.h"
#include "topology.h" /* SL_PRIO_LEVELS */

#include <stddef.h>
#include <stdint.h>

/* Reads only the envelopes of the batch msg/len (no msgpack decoding);
 * a priority above SL_PRIO_LEVELS - 1 counts as SL_PRIO_LEVELS - 1.
 * counts[l] gets the number of records at level l.
 *
 * When every record is at one level (or the batch is empty: level 0),
 * *single_level gets it and nothing is copied: the caller keeps the
 * message as it is. Otherwise *single_level is -1 and each record is
 * appended, envelope unchanged and in batch order, to out[level]; the
 * caller must have initialised all SL_PRIO_LEVELS batches (sl__batch_init)
 * and takes them with sl__batch_release.
 *
 * Returns 0; -EBADMSG for a malformed batch (checked whole before anything
 * is appended, so out is untouched); -ENOMEM with the split half done
 * (the caller resets or finalises out). */
int sl__batch_split_prio(const void *msg, size_t len,
                         sl_batch_t out[SL_PRIO_LEVELS],
                         uint32_t counts[SL_PRIO_LEVELS], int *single_level);

#endif
