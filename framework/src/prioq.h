/*
 * A queue of opaque items by priority level (0 = highest, up to
 * SL_PRIO_LEVELS - 1), for a stage's pending work.
 *
 * Service rule (what sl_prioq_pop does):
 *
 *   Items of one level leave in the order they were pushed. Pops made
 *   while two or more levels are non-empty are counted in rounds of
 *   SL_PRIOQ_SHARE; a pop made while fewer are non-empty serves the only
 *   level there is and restarts the count. The first SL_PRIOQ_SHARE - 1
 *   counted pops of a round serve the highest non-empty level ("strict"
 *   pops). The last one, the share pop, serves the item that has waited
 *   longest (pushed first; put-back items count as oldest) among the
 *   levels below a reference level: the highest (smallest number) of the
 *   highest non-empty level now and the levels the round's strict pops
 *   served.
 *
 * So while several levels wait, the highest gets at least
 * (SL_PRIOQ_SHARE - 1) / SL_PRIOQ_SHARE of the pops, and nothing starves:
 * in any 2 * SL_PRIOQ_SHARE - 1 consecutive pops made while an item
 * waits, one serves that item or an item ahead of it (queued when it was
 * pushed, or put back since). So an item waits at most
 * (2 * SL_PRIOQ_SHARE - 1) * (1 + items ahead of it) pops. The reference
 * level is what keeps a middle level from starving: if level 0 comes in
 * bursts that end just before each share pop, level 3 is the highest
 * non-empty level at every share pop, and a share taken only below the
 * highest non-empty level would go to level 5 every time. While the
 * highest level stays non-empty, the reference is simply that level.
 * With one level in use the queue is a plain FIFO. Pops by
 * sl_prioq_pop_level and sl_prioq_drain are outside the rule.
 *
 * Costs: push O(1) (a node from a free list; the list grows in slabs that
 * are kept until fini), pop O(SL_PRIO_LEVELS). Not thread-safe: callers
 * hold their own lock.
 */
#ifndef SL_PRIOQ_H
#define SL_PRIOQ_H

#include "topology.h" /* SL_PRIO_LEVELS */

#include <stddef.h>
#include <stdint.h>

#define SL_PRIOQ_SHARE 8

typedef struct sl_prioq_node sl_prioq_node_t;
typedef struct sl_prioq_slab sl_prioq_slab_t;

/* Per-level counters, for reports. Waits are now_ns at pop minus now_ns
 * at push, as the caller's clock gives them. */
typedef struct sl_prioq_stats {
    uint64_t popped[SL_PRIO_LEVELS];
    uint64_t shared[SL_PRIO_LEVELS];  /* of which by share pops */
    uint64_t wait_ns_sum[SL_PRIO_LEVELS];
    uint64_t wait_ns_max[SL_PRIO_LEVELS];
} sl_prioq_stats_t;

typedef struct sl_prioq {
    struct {
        sl_prioq_node_t *head;
        sl_prioq_node_t *tail;
        size_t len;
    } lv[SL_PRIO_LEVELS];
    uint32_t mask;          /* bit l set: level l non-empty */
    size_t len;
    int64_t seq;            /* next push order; grows */
    int64_t front_seq;      /* next put-back order; shrinks below 0 */
    unsigned round;         /* counted pops in this round */
    unsigned served_hi;     /* highest level this round's strict pops served */
    sl_prioq_node_t *free;  /* spare nodes */
    size_t n_nodes;         /* nodes allocated, queued or spare */
    sl_prioq_slab_t *slabs;
    sl_prioq_stats_t stats;
} sl_prioq_t;

void sl_prioq_init(sl_prioq_t *q);
/* Frees the queue's nodes; items still queued are not touched (drain them
 * first if they own anything). The queue can be initialised again. */
void sl_prioq_fini(sl_prioq_t *q);

/* Makes sure n items can be queued at once without allocating, so that
 * pushes within that bound cannot fail (e.g. n = the credit window).
 * 0 or -ENOMEM. */
int sl_prioq_reserve(sl_prioq_t *q, size_t n);

/* Queues item (not NULL) at level; levels above SL_PRIO_LEVELS - 1 count
 * as SL_PRIO_LEVELS - 1. 0, -EINVAL for a NULL item, or -ENOMEM (nothing
 * queued) when no spare node is left and none can be allocated. */
int sl_prioq_push(sl_prioq_t *q, void *item, unsigned level, uint64_t now_ns);
/* Puts an item back at the front of its level, older than every queued
 * item (for an item popped but not handed over). Same returns as push.
 * It does not undo the popping pop's effect on the share count. */
int sl_prioq_push_front(sl_prioq_t *q, void *item, unsigned level,
                        uint64_t now_ns);

/* Takes the next item by the rule above; NULL if empty. */
void *sl_prioq_pop(sl_prioq_t *q, uint64_t now_ns);
/* Same, and *level gets the item's level when one is returned. */
void *sl_prioq_pop_ex(sl_prioq_t *q, uint64_t now_ns, unsigned *level);

/* The next item of one level, without taking it; NULL if none. */
void *sl_prioq_peek_level(const sl_prioq_t *q, unsigned level);
/* Takes the next item of one level outside the rule (not counted as a
 * pop for the share): for merging items queued behind one just popped. */
void *sl_prioq_pop_level(sl_prioq_t *q, unsigned level, uint64_t now_ns);

static inline size_t sl_prioq_len(const sl_prioq_t *q)
{
    return q->len;
}

static inline int sl_prioq_empty(const sl_prioq_t *q)
{
    return q->len == 0;
}

/* Items at one level (0 for a level out of range). */
size_t sl_prioq_len_level(const sl_prioq_t *q, unsigned level);

/* Takes everything, level 0 first and in order within a level, calling
 * fn(item, arg) for each (fn may free the item, but must not push).
 * Resets the share state. Returns the number of items. */
size_t sl_prioq_drain(sl_prioq_t *q, void (*fn)(void *item, void *arg),
                      void *arg);

static inline const sl_prioq_stats_t *sl_prioq_stats(const sl_prioq_t *q)
{
    return &q->stats;
}

#endif
