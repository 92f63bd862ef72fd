/*
 * Process lanes: a stage whose workers are child processes.
 *
 * The stage's dispatcher stays in the sluice process and keeps the credit
 * accounts exactly as for thread lanes; only the hand-off to workers
 * changes. Each child runs `sluice __worker`, connects back over an ipc://
 * DEALER, rebuilds the topology from the text the parent sends, and then
 * handles batches ("items") one at a time, at most PP_ITEMS_PER_WORKER
 * outstanding per child. Nothing leaves the child until an item is done,
 * so a child that dies loses only work that the parent still holds and
 * can hand to another worker.
 *
 * Each child also writes, in a page of shared memory, which record of which
 * item it is handling and since when. When it dies (noticed at once through
 * a pidfd in the dispatcher's poll set) that record alone is blamed: its
 * attempt count goes up and, at max_attempts, it is dead-lettered with the
 * cause ("worker killed by signal 11 while processing"); the records before
 * and after it are handed out again unchanged. The same page lets the
 * dispatcher kill a child stuck on one record past the stage's timeout.
 * Dead children are respawned with bounded exponential backoff, so the pool
 * never becomes unusable.
 */
#ifndef SL_PROCPOOL_H
#define SL_PROCPOOL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct sl_runner sl_runner_t;
typedef struct sl_work sl_work_t;
typedef struct sl_procpool sl_procpool_t;

/* The shared page, one per child. */
typedef struct sl_heartbeat {
    _Atomic uint64_t item;     /* seq of the item in hand, 0 when idle */
    _Atomic uint32_t index;    /* record within that item */
    _Atomic uint64_t since_ns; /* monotonic start of that record */
    _Atomic uint64_t done;     /* seq of the last item fully handled */
    _Atomic uint32_t cut;      /* set by the parent past the grace period:
                                  stop between records, return the rest */
} sl_heartbeat_t;

/* Created and used by the stage's dispatcher thread only. */
sl_procpool_t *sl__procpool_new(sl_runner_t *r, char *err, size_t errlen);
/* Stops every child (asks, then kills after a grace period) and frees. */
void sl__procpool_destroy(sl_procpool_t **pp);

/* Starts the children; failures to start are retried like deaths. */
int sl__procpool_start(sl_procpool_t *pp);
/* Takes a work item (ownership passes). */
void sl__procpool_enqueue(sl_procpool_t *pp, sl_work_t *item);
/* Poll items of the pool: its socket and one pidfd per live child.
 * Returns how many were written (at most max). */
int sl__procpool_pollitems(sl_procpool_t *pp, void *items, int max);
/* Handles what the poll found ready (items as filled in above). */
void sl__procpool_on_ready(sl_procpool_t *pp, const void *items, int n);
/* Timers: respawns due, timeouts to enforce. Returns the poll timeout in
 * ms until the next timer (or `dflt`). */
int sl__procpool_tick(sl_procpool_t *pp, int dflt);
/* Elastic pools. busy: worker i has an item in hand; last_busy: when it
 * last finished one (monotonic ns). grow starts a child in free slot i;
 * retire asks idle child i to flush and quit (its output arrives as a done
 * item, then one with `retired` set), and it is not respawned. */
int sl__procpool_busy(const sl_procpool_t *pp, unsigned i);
/* Items waiting that no child could take. */
int sl__procpool_backlog(const sl_procpool_t *pp);
uint64_t sl__procpool_last_busy(const sl_procpool_t *pp, unsigned i);
int sl__procpool_grow(sl_procpool_t *pp, unsigned i);
int sl__procpool_retire(sl_procpool_t *pp, unsigned i);
/* Shutdown past the grace period: hands every queued item that no child
 * has taken to fn (which takes ownership) and returns how many; items in
 * children's hands finish and come back as usual. */
size_t sl__procpool_spill(sl_procpool_t *pp, void (*fn)(void *item, void *arg),
                          void *arg);
/* End of stream: asks every child to flush. Each reply arrives as a done
 * item with `last` set; a child that dies instead counts as flushed. */
void sl__procpool_flush(sl_procpool_t *pp);

/* The child side: `sluice __worker ENDPOINT WORKER GENERATION HB_FD RES_FD
 * PPID` (RES_FD: the shared resource table, or -1).
 * Returns the process exit code. */
int sl__procworker_main(int argc, char **argv);

/* Which executable to run as a worker: $SLUICE_WORKER_EXE, else the one
 * registered by the CLI (its own /proc/self/exe), else the build's or the
 * installed `sluice`. */
void sl__procpool_set_worker_exe(const char *path);
const char *sl__procpool_worker_exe(void);

#endif
