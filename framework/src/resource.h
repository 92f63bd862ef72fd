/*
 * Shared limits for `resources:` / `uses:`.
 *
 * A topology declares named resources with a limit each (`db: 20`); at
 * most that many handler calls may hold one at once, across every stage,
 * thread worker and worker process of the run. The table lives in a
 * shared memory file (memfd) so that the same code counts threads of the
 * sluice process and `sluice __worker` children alike.
 *
 * Each resource owns `limit` slots. Acquiring claims a free slot by
 * writing the caller's pid into it; releasing writes 0 back. Because a
 * held slot names its process, the parent can give back everything a
 * worker process held when it dies (sl__resources_release_pid), even when
 * it was killed with SIGKILL halfway through a call. Waiters sleep on a
 * process-shared futex with a bounded timeout, so a wake-up that is missed
 * (a waiter killed, a release racing a cancel) costs at most one timeout.
 *
 * Resources are named by index (0..n-1) here; names belong to the
 * topology. All functions are thread-safe and async-signal-unsafe.
 *
 * Wiring (see the comments on each function):
 *   parent:  rs = sl__resources_new(limits, n, ...) once per run;
 *            thread workers call sl__resources_acquire_set() before and
 *            sl__resources_release_set() after each process() call;
 *            after a worker process dies (waitpid / pidfd), call
 *            sl__resources_release_pid(rs, pid) before respawning it;
 *            sl__resources_destroy() after every worker has ended.
 *   child:   gets sl__resources_fd(rs) across exec (clear FD_CLOEXEC
 *            between fork and exec, pass the number in argv), then
 *            sl__resources_attach(fd, ...) and the same acquire/release
 *            calls around process().
 */
#ifndef SL_RESOURCE_H
#define SL_RESOURCE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct sl_resources sl_resources_t;

/* Upper bounds checked by sl__resources_new and _attach: they keep the
 * shared file small (4 bytes per slot) and the arithmetic in range. */
#define SL_RESOURCES_MAX 1024u          /* resources per run */
#define SL_RESOURCE_LIMIT_MAX 1000000u  /* limit of one resource */

/* Creates the table for n resources with the given limits (each >= 1 and
 * <= SL_RESOURCE_LIMIT_MAX). n may be 0: the table is then valid and
 * empty (children may still attach it). On failure returns NULL with the
 * reason in err. The caller owns the result (sl__resources_destroy). */
sl_resources_t *sl__resources_new(const uint32_t *limits, size_t n, char *err,
                                  size_t errlen);

/* The shared memory file behind a table made by sl__resources_new, for
 * handing to worker processes; -1 for an attached table. It is opened
 * with FD_CLOEXEC: the spawner must clear it in the child between fork and
 * exec (fcntl(fd, F_SETFD, 0)), as procpool does for the heartbeat fd.
 * The table keeps ownership: do not close it. Its size is sealed, so a
 * child cannot shrink it under the parent. */
int sl__resources_fd(const sl_resources_t *rs);

/* In a worker process: maps the table behind fd (which the caller still
 * owns and may close afterwards). The header is checked first (type of
 * file, size, magic, version, counts, slot ranges), so a wrong fd gives
 * NULL with a reason in err ("fd 7 is not a resource table: ...") rather
 * than a crash. */
sl_resources_t *sl__resources_attach(int fd, char *err, size_t errlen);

/* Unmaps the table (closes the memfd if this process made it) and sets
 * *rs to NULL. Slots still held stay held in the shared file: end every
 * user first. NULL and *rs == NULL are ignored. */
void sl__resources_destroy(sl_resources_t **rs);

/* Number of resources in the table, and the limit of one (0 if out of
 * range). */
size_t sl__resources_count(const sl_resources_t *rs);
uint32_t sl__resources_limit(const sl_resources_t *rs, size_t res);

/* Blocks until a slot of resource res is free and claims it for the
 * calling process; *slot receives the slot to pass to release. Returns 0,
 * -ECANCELED once *cancel is nonzero or the table is closed (checked at
 * least every 50 ms while waiting; a free slot is taken even if *cancel is
 * already set), or -EINVAL for res out of range. cancel may be NULL (wait
 * until a slot frees or the table is closed). O(1) on average: the scan
 * starts where the last release happened. */
int sl__resources_acquire(sl_resources_t *rs, size_t res,
                          const atomic_int *cancel, int *slot);
/* Gives back a slot from acquire (in any thread of the same process).
 * An out-of-range slot is ignored. Wakes one waiter. */
void sl__resources_release(sl_resources_t *rs, size_t res, int slot);

/* Acquires n resources (idx[0..n-1], any order, no duplicates) for one
 * handler call. They are taken in increasing index order whatever the
 * order in idx, so two calls that need overlapping sets cannot deadlock.
 * slots[k] receives the slot for idx[k]. On -ECANCELED (or -EINVAL for an
 * index out of range or repeated) nothing stays held and every slots[k]
 * is -1. n == 0 returns 0 at once. */
int sl__resources_acquire_set(sl_resources_t *rs, const size_t *idx, size_t n,
                              const atomic_int *cancel, int *slots);
/* Releases what acquire_set took (entries with slots[k] < 0 are skipped)
 * and sets every slots[k] to -1. */
void sl__resources_release_set(sl_resources_t *rs, const size_t *idx,
                               size_t n, int *slots);

/* Frees every slot of every resource held by process pid, and returns how
 * many. For the parent, after a worker process has died: call it once the
 * death is known (the child can no longer release) and before the pid may
 * be reused, i.e. right after reaping. Never call it with the pid of a
 * live user of the table (nor with the parent's own pid while its threads
 * run). O(total slots). */
unsigned sl__resources_release_pid(sl_resources_t *rs, pid_t pid);

/* For the end of a run: from now on every acquire that would have to
 * wait, in every process attached to the table, returns -ECANCELED (free
 * slots are still handed out), and current waiters are woken. Lets worker
 * processes that have no cancel flag of their own leave promptly. Cannot
 * be undone. */
void sl__resources_close(sl_resources_t *rs);

/* Wakes every waiter of every resource so that they check their cancel
 * flag now rather than at their next timeout. For shutdown. */
void sl__resources_wake_all(sl_resources_t *rs);

/* Slots of res held right now (exact: counts the slots, O(limit)). */
uint32_t sl__resources_in_use(const sl_resources_t *rs, size_t res);
/* The most slots of res ever held at once (high-water mark). A process
 * killed in the few instructions between claiming a slot and counting it
 * can make it read one lower than the truth; it never reads higher. */
uint32_t sl__resources_max_in_use(const sl_resources_t *rs, size_t res);
/* Acquisitions of res that found no free slot and had to wait. */
uint64_t sl__resources_waits(const sl_resources_t *rs, size_t res);

#endif
