/* Pending work by priority level: see prioq.h for the service rule. */
#include "prioq.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct sl_prioq_node {
    sl_prioq_node_t *next;
    void *item;
    int64_t seq;     /* push order: smaller waited longer */
    uint64_t t_ns;
};

/* Nodes come in slabs so that a busy queue costs one malloc per
 * SLAB_NODES pushes at most once, then none. */
#define SLAB_NODES 64
struct sl_prioq_slab {
    sl_prioq_slab_t *next;
    sl_prioq_node_t nodes[SLAB_NODES];
};

void sl_prioq_init(sl_prioq_t *q)
{
    memset(q, 0, sizeof(*q));
    q->served_hi = SL_PRIO_LEVELS;
    q->front_seq = -1;
}

void sl_prioq_fini(sl_prioq_t *q)
{
    for (sl_prioq_slab_t *s = q->slabs, *next; s; s = next) {
        next = s->next;
        free(s);
    }
    sl_prioq_init(q);
}

static int s_add_slab(sl_prioq_t *q)
{
    sl_prioq_slab_t *s = malloc(sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->next = q->slabs;
    q->slabs = s;
    for (size_t i = 0; i < SLAB_NODES; i++) {
        s->nodes[i].next = q->free;
        q->free = &s->nodes[i];
    }
    q->n_nodes += SLAB_NODES;
    return 0;
}

int sl_prioq_reserve(sl_prioq_t *q, size_t n)
{
    while (q->n_nodes < n) {
        int rc = s_add_slab(q);
        if (rc)
            return rc;
    }
    return 0;
}

static sl_prioq_node_t *s_node(sl_prioq_t *q, void *item, uint64_t now_ns)
{
    if (!q->free && s_add_slab(q) != 0)
        return NULL;
    sl_prioq_node_t *n = q->free;
    q->free = n->next;
    n->next = NULL;
    n->item = item;
    n->t_ns = now_ns;
    return n;
}

static unsigned s_clamp(unsigned level)
{
    return level < SL_PRIO_LEVELS ? level : SL_PRIO_LEVELS - 1;
}

int sl_prioq_push(sl_prioq_t *q, void *item, unsigned level, uint64_t now_ns)
{
    if (!item)
        return -EINVAL;
    sl_prioq_node_t *n = s_node(q, item, now_ns);
    if (!n)
        return -ENOMEM;
    level = s_clamp(level);
    n->seq = q->seq++;
    if (q->lv[level].tail)
        q->lv[level].tail->next = n;
    else
        q->lv[level].head = n;
    q->lv[level].tail = n;
    q->lv[level].len++;
    q->mask |= 1u << level;
    q->len++;
    return 0;
}

int sl_prioq_push_front(sl_prioq_t *q, void *item, unsigned level,
                        uint64_t now_ns)
{
    if (!item)
        return -EINVAL;
    sl_prioq_node_t *n = s_node(q, item, now_ns);
    if (!n)
        return -ENOMEM;
    level = s_clamp(level);
    /* Older than anything pushed, and than anything put back before:
     * the item was already due when it was popped. */
    n->seq = q->front_seq--;
    n->next = q->lv[level].head;
    q->lv[level].head = n;
    if (!q->lv[level].tail)
        q->lv[level].tail = n;
    q->lv[level].len++;
    q->mask |= 1u << level;
    q->len++;
    return 0;
}

/* Unlinks the head of a non-empty level, recycling its node. */
static void *s_unlink(sl_prioq_t *q, unsigned level, uint64_t *t_ns)
{
    sl_prioq_node_t *n = q->lv[level].head;
    q->lv[level].head = n->next;
    if (!n->next) {
        q->lv[level].tail = NULL;
        q->mask &= ~(1u << level);
    }
    q->lv[level].len--;
    q->len--;
    *t_ns = n->t_ns;
    void *item = n->item;
    n->item = NULL;
    n->next = q->free;
    q->free = n;
    return item;
}

static void *s_take(sl_prioq_t *q, unsigned level, uint64_t now_ns)
{
    uint64_t t;
    void *item = s_unlink(q, level, &t);
    uint64_t wait = now_ns > t ? now_ns - t : 0;
    q->stats.popped[level]++;
    q->stats.wait_ns_sum[level] += wait;
    if (wait > q->stats.wait_ns_max[level])
        q->stats.wait_ns_max[level] = wait;
    return item;
}

void *sl_prioq_pop_ex(sl_prioq_t *q, uint64_t now_ns, unsigned *level)
{
    if (!q->mask)
        return NULL;
    unsigned top = (unsigned)__builtin_ctz(q->mask);
    unsigned pick = top;
    if (!(q->mask & (q->mask - 1))) {
        q->round = 0;
        q->served_hi = SL_PRIO_LEVELS;
    } else if (++q->round < SL_PRIOQ_SHARE) {
        if (top < q->served_hi)
            q->served_hi = top;
    } else {
        unsigned ref = top < q->served_hi ? top : q->served_hi;
        /* Levels strictly below ref; there is one since two levels are
         * non-empty and ref <= top. */
        uint32_t below = q->mask & ~((2u << ref) - 1);
        int64_t best = INT64_MAX;
        while (below) {
            unsigned l = (unsigned)__builtin_ctz(below);
            below &= below - 1;
            if (q->lv[l].head->seq < best) {
                best = q->lv[l].head->seq;
                pick = l;
            }
        }
        q->stats.shared[pick]++;
        q->round = 0;
        q->served_hi = SL_PRIO_LEVELS;
    }
    if (level)
        *level = pick;
    return s_take(q, pick, now_ns);
}

void *sl_prioq_pop(sl_prioq_t *q, uint64_t now_ns)
{
    return sl_prioq_pop_ex(q, now_ns, NULL);
}

void *sl_prioq_peek_level(const sl_prioq_t *q, unsigned level)
{
    if (level >= SL_PRIO_LEVELS || !q->lv[level].head)
        return NULL;
    return q->lv[level].head->item;
}

void *sl_prioq_pop_level(sl_prioq_t *q, unsigned level, uint64_t now_ns)
{
    if (level >= SL_PRIO_LEVELS || !q->lv[level].head)
        return NULL;
    return s_take(q, level, now_ns);
}

size_t sl_prioq_len_level(const sl_prioq_t *q, unsigned level)
{
    return level < SL_PRIO_LEVELS ? q->lv[level].len : 0;
}

size_t sl_prioq_drain(sl_prioq_t *q, void (*fn)(void *item, void *arg),
                      void *arg)
{
    size_t n = 0;
    q->round = 0;
    q->served_hi = SL_PRIO_LEVELS;
    while (q->mask) {
        uint64_t t;
        /* Unlinked before fn runs: fn may free the item, or look at the
         * queue and must not find it there. */
        void *item = s_unlink(q, (unsigned)__builtin_ctz(q->mask), &t);
        n++;
        if (fn)
            fn(item, arg);
    }
    return n;
}
