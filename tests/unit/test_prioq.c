/* The priority queue of pending work: FIFO within a level, strict order
 * across levels, the exact 1-in-SL_PRIOQ_SHARE share for lower levels,
 * no starvation of a middle level, and a long random run checked against
 * a reference model and against the documented waiting bound. Items are
 * small integers cast to pointers: the queue never dereferences them. */
#include <criterion/criterion.h>

#include "prioq.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define IT(n) ((void *)(uintptr_t)((n) + 1))
#define ID(p) ((long)(uintptr_t)(p) - 1)

Test(prioq, fifo_within_one_level)
{
    sl_prioq_t q;
    sl_prioq_init(&q);
    for (long i = 0; i < 500; i++)
        cr_assert_eq(sl_prioq_push(&q, IT(i), 4, 0), 0);
    cr_assert_eq(sl_prioq_len(&q), 500);
    cr_assert_eq(sl_prioq_len_level(&q, 4), 500);
    cr_assert_eq(sl_prioq_len_level(&q, 0), 0);
    for (long i = 0; i < 500; i++) {
        unsigned lv = 99;
        void *p = sl_prioq_pop_ex(&q, 0, &lv);
        cr_assert_eq(ID(p), i);
        cr_assert_eq(lv, 4);
    }
    cr_assert_null(sl_prioq_pop(&q, 0));
    cr_assert(sl_prioq_empty(&q));
    sl_prioq_fini(&q);
}

Test(prioq, strict_order_when_no_share_is_due)
{
    sl_prioq_t q;
    sl_prioq_init(&q);
    /* One item per level, lowest first: 7 strict pops then the last
     * level alone, so the share never comes due. */
    for (int l = SL_PRIO_LEVELS - 1; l >= 0; l--)
        cr_assert_eq(sl_prioq_push(&q, IT(l), (unsigned)l, 0), 0);
    for (long l = 0; l < SL_PRIO_LEVELS; l++)
        cr_assert_eq(ID(sl_prioq_pop(&q, 0)), l);
    /* Three at 2 then three at 1: level 1 first, each in push order. */
    for (long i = 0; i < 3; i++)
        sl_prioq_push(&q, IT(20 + i), 2, 0);
    for (long i = 0; i < 3; i++)
        sl_prioq_push(&q, IT(10 + i), 1, 0);
    long want[] = {10, 11, 12, 20, 21, 22};
    for (size_t i = 0; i < 6; i++)
        cr_assert_eq(ID(sl_prioq_pop(&q, 0)), want[i], "pop %zu", i);
    cr_assert(sl_prioq_empty(&q));
    sl_prioq_fini(&q);
}

Test(prioq, exact_share_for_a_lower_level)
{
    sl_prioq_t q;
    sl_prioq_init(&q);
    for (long i = 0; i < 1000; i++)
        cr_assert_eq(sl_prioq_push(&q, IT(i), 0, 0), 0);
    for (long i = 0; i < 100; i++)
        cr_assert_eq(sl_prioq_push(&q, IT(1000 + i), 5, 0), 0);
    static char seen[1100];
    memset(seen, 0, sizeof(seen));
    long next_hi = 0, next_lo = 1000;
    for (long k = 1; k <= 1100; k++) {
        long id = ID(sl_prioq_pop(&q, 0));
        cr_assert(id >= 0 && id < 1100, "pop %ld gave %ld", k, id);
        cr_assert_eq(seen[id], 0, "item %ld popped twice", id);
        seen[id] = 1;
        /* Both levels wait until the 800th pop, which takes the 100th low
         * item: every 8th pop is a low one, the others high, in order. */
        if (k <= 800 && k % 8 == 0)
            cr_assert_eq(id, next_lo++, "pop %ld", k);
        else
            cr_assert_eq(id, next_hi++, "pop %ld", k);
    }
    cr_assert_eq(next_hi, 1000);
    cr_assert_eq(next_lo, 1100);
    cr_assert_null(sl_prioq_pop(&q, 0));
    const sl_prioq_stats_t *st = sl_prioq_stats(&q);
    cr_assert_eq(st->popped[0], 1000);
    cr_assert_eq(st->popped[5], 100);
    cr_assert_eq(st->shared[5], 100);
    cr_assert_eq(st->shared[0], 0);
    sl_prioq_fini(&q);
}

Test(prioq, share_goes_to_the_oldest_lower_item)
{
    sl_prioq_t q;
    sl_prioq_init(&q);
    sl_prioq_push(&q, IT(500), 5, 0); /* a */
    sl_prioq_push(&q, IT(501), 5, 0); /* b */
    sl_prioq_push(&q, IT(300), 3, 0); /* c */
    sl_prioq_push(&q, IT(502), 5, 0); /* d */
    for (long i = 0; i < 40; i++)
        sl_prioq_push(&q, IT(i), 0, 0);
    long hi = 0;
    long shares[] = {500, 501, 300, 502};
    for (long k = 1; k <= 44; k++) {
        long id = ID(sl_prioq_pop(&q, 0));
        if (k % 8 == 0 && k <= 32)
            cr_assert_eq(id, shares[k / 8 - 1], "pop %ld", k);
        else
            cr_assert_eq(id, hi++, "pop %ld", k);
    }
    cr_assert(sl_prioq_empty(&q));
    sl_prioq_fini(&q);
}

/* Level 0 comes in bursts that end just before each share pop, so at the
 * share pop level 3 is the highest non-empty level. A share taken only
 * from the levels below the highest non-empty one would always pick level
 * 5 and starve level 3; the round's reference level (0) prevents that. */
Test(prioq, middle_level_is_not_starved_by_bursts_above)
{
    sl_prioq_t q;
    sl_prioq_init(&q);
    sl_prioq_push(&q, IT(1000), 3, 0); /* X */
    for (long i = 0; i < 50; i++)
        sl_prioq_push(&q, IT(2000 + i), 5, 0);
    long next0 = 0, next5 = 2000;
    for (int burst = 0; burst < 10; burst++) {
        for (int i = 0; i < 7; i++)
            sl_prioq_push(&q, IT(next0 + i), 0, 0);
        for (int i = 0; i < 7; i++)
            cr_assert_eq(ID(sl_prioq_pop(&q, 0)), next0++);
        long id = ID(sl_prioq_pop(&q, 0));
        if (burst == 0)
            cr_assert_eq(id, 1000, "X must take the first share pop");
        else
            cr_assert_eq(id, next5++, "burst %d", burst);
    }
    sl_prioq_fini(&q);
}

static void s_collect(void *item, void *arg)
{
    long *out = arg;
    out[out[0]++ + 1] = ID(item);
}

Test(prioq, drain_takes_everything_in_level_order)
{
    sl_prioq_t q;
    sl_prioq_init(&q);
    unsigned lv[] = {6, 2, 6, 0, 2, 7, 0, 3, 200, 1};
    for (long i = 0; i < 10; i++)
        cr_assert_eq(sl_prioq_push(&q, IT(i), lv[i], 0), 0);
    cr_assert_eq(sl_prioq_len_level(&q, 7), 2, "level 200 counts as 7");
    /* Some pops first, so that a round is under way when draining. */
    cr_assert_eq(ID(sl_prioq_pop(&q, 0)), 3);
    long out[16] = {0};
    cr_assert_eq(sl_prioq_drain(&q, s_collect, out), 9);
    long want[] = {6, 9, 1, 4, 7, 0, 2, 5, 8};
    cr_assert_eq(out[0], 9);
    for (int i = 0; i < 9; i++)
        cr_assert_eq(out[i + 1], want[i], "drained %d", i);
    cr_assert(sl_prioq_empty(&q));
    cr_assert_eq(sl_prioq_len_level(&q, 0), 0);
    cr_assert_null(sl_prioq_pop(&q, 0));
    /* Usable again, from a fresh round: two levels, 7 strict pops. */
    for (long i = 0; i < 8; i++)
        sl_prioq_push(&q, IT(i), 1, 0);
    sl_prioq_push(&q, IT(100), 4, 0);
    for (long i = 0; i < 7; i++)
        cr_assert_eq(ID(sl_prioq_pop(&q, 0)), i);
    cr_assert_eq(ID(sl_prioq_pop(&q, 0)), 100);
    cr_assert_eq(ID(sl_prioq_pop(&q, 0)), 7);
    cr_assert_eq(sl_prioq_drain(&q, NULL, NULL), 0);
    sl_prioq_fini(&q);
}

Test(prioq, put_back_peek_and_pop_level)
{
    sl_prioq_t q;
    sl_prioq_init(&q);
    cr_assert_eq(sl_prioq_push(&q, NULL, 0, 0), -EINVAL);
    for (long i = 0; i < 3; i++)
        sl_prioq_push(&q, IT(i), 2, 0);
    sl_prioq_push(&q, IT(10), 6, 0);
    unsigned lv;
    void *p = sl_prioq_pop_ex(&q, 0, &lv);
    cr_assert_eq(ID(p), 0);
    cr_assert_eq(lv, 2);
    cr_assert_eq(sl_prioq_push_front(&q, p, lv, 0), 0);
    cr_assert_eq(ID(sl_prioq_peek_level(&q, 2)), 0);
    cr_assert_eq(ID(sl_prioq_peek_level(&q, 6)), 10);
    cr_assert_null(sl_prioq_peek_level(&q, 5));
    cr_assert_null(sl_prioq_peek_level(&q, 99));
    cr_assert_eq(sl_prioq_len(&q), 4);
    /* Taking a level's items outside the rule leaves the order intact. */
    cr_assert_eq(ID(sl_prioq_pop_level(&q, 2, 0)), 0);
    cr_assert_eq(ID(sl_prioq_pop_level(&q, 2, 0)), 1);
    cr_assert_null(sl_prioq_pop_level(&q, 4, 0));
    cr_assert_eq(ID(sl_prioq_pop(&q, 0)), 2);
    cr_assert_eq(ID(sl_prioq_pop(&q, 0)), 10);
    cr_assert(sl_prioq_empty(&q));
    /* A put-back item is older than anything pushed: it takes the next
     * share pop ahead of a lower level's items. */
    for (long i = 0; i < 20; i++)
        sl_prioq_push(&q, IT(i), 0, 0);
    sl_prioq_push(&q, IT(50), 7, 0);
    sl_prioq_push_front(&q, IT(60), 4, 0);
    for (long k = 1; k <= 16; k++) {
        long id = ID(sl_prioq_pop(&q, 0));
        if (k == 8)
            cr_assert_eq(id, 60);
        else if (k == 16)
            cr_assert_eq(id, 50);
        else
            cr_assert_lt(id, 20, "pop %ld", k);
    }
    sl_prioq_fini(&q);
}

Test(prioq, reserve_and_wait_stats)
{
    sl_prioq_t q;
    sl_prioq_init(&q);
    cr_assert_eq(sl_prioq_reserve(&q, 1000), 0);
    size_t nodes = q.n_nodes;
    cr_assert_geq(nodes, 1000);
    for (long i = 0; i < 1000; i++)
        sl_prioq_push(&q, IT(i), (unsigned)(i % 3), 100);
    cr_assert_eq(q.n_nodes, nodes, "no allocation within the reserve");
    while (!sl_prioq_empty(&q))
        sl_prioq_pop(&q, 350);
    const sl_prioq_stats_t *st = sl_prioq_stats(&q);
    cr_assert_eq(st->wait_ns_max[1], 250);
    cr_assert_eq(st->wait_ns_sum[0], 334 * 250);
    cr_assert_eq(st->popped[0] + st->popped[1] + st->popped[2], 1000);
    /* A clock going backwards counts as no wait, not a huge one. */
    sl_prioq_push(&q, IT(0), 3, 1000);
    sl_prioq_pop(&q, 10);
    cr_assert_eq(st->wait_ns_max[3], 0);
    sl_prioq_fini(&q);
}

/* ---- the random run ---- */

#define CAP 8192 /* per level ring; the run keeps the queue shorter */
typedef struct {
    long id[CAP];
    int64_t seq[CAP];
    size_t head, len;
} ring_t;

typedef struct {
    ring_t lv[SL_PRIO_LEVELS];
    size_t len;
    int64_t seq, front_seq;
    unsigned round, served;
} model_t;

static void m_push(model_t *m, long id, unsigned l, int front)
{
    ring_t *r = &m->lv[l];
    cr_assert_lt(r->len, CAP);
    if (front) {
        r->head = (r->head + CAP - 1) % CAP;
        r->id[r->head] = id;
        r->seq[r->head] = m->front_seq--;
    } else {
        size_t at = (r->head + r->len) % CAP;
        r->id[at] = id;
        r->seq[at] = m->seq++;
    }
    r->len++;
    m->len++;
}

static long m_take(model_t *m, unsigned l)
{
    ring_t *r = &m->lv[l];
    long id = r->id[r->head];
    r->head = (r->head + 1) % CAP;
    r->len--;
    m->len--;
    return id;
}

/* The rule as prioq.h words it, on plain arrays. */
static long m_pop(model_t *m)
{
    unsigned nonempty = 0, top = SL_PRIO_LEVELS;
    for (unsigned l = 0; l < SL_PRIO_LEVELS; l++)
        if (m->lv[l].len) {
            nonempty++;
            if (top == SL_PRIO_LEVELS)
                top = l;
        }
    if (!nonempty)
        return -1;
    if (nonempty < 2) {
        m->round = 0;
        m->served = SL_PRIO_LEVELS;
        return m_take(m, top);
    }
    if (++m->round < SL_PRIOQ_SHARE) {
        if (top < m->served)
            m->served = top;
        return m_take(m, top);
    }
    unsigned ref = top < m->served ? top : m->served;
    unsigned pick = SL_PRIO_LEVELS;
    for (unsigned l = ref + 1; l < SL_PRIO_LEVELS; l++) {
        ring_t *r = &m->lv[l];
        if (r->len &&
            (pick == SL_PRIO_LEVELS ||
             r->seq[r->head] < m->lv[pick].seq[m->lv[pick].head]))
            pick = l;
    }
    m->round = 0;
    m->served = SL_PRIO_LEVELS;
    return m_take(m, pick);
}

static uint64_t s_rng = 0x9e3779b97f4a7c15ull;
static uint64_t s_rand(void)
{
    s_rng ^= s_rng << 13;
    s_rng ^= s_rng >> 7;
    s_rng ^= s_rng << 17;
    return s_rng;
}

/* Bursty levels: mostly 0 and 1, some middle, a trickle at the bottom. */
static unsigned s_level(void)
{
    unsigned r = (unsigned)(s_rand() % 100);
    if (r < 40)
        return 0;
    if (r < 60)
        return 1;
    if (r < 90)
        return 2 + (unsigned)(s_rand() % 4);
    return 6 + (unsigned)(s_rand() % 4); /* 9 is clamped to 7 */
}

static void s_random_run(int with_put_back)
{
    const long ops = 1000000;
    model_t *m = calloc(1, sizeof(*m));
    /* Per item: pops made when it was pushed, items ahead of it then. */
    uint64_t *born = calloc((size_t)ops, sizeof(*born));
    size_t *ahead = calloc((size_t)ops, sizeof(*ahead));
    char *seen = calloc((size_t)ops, 1);
    cr_assert(m && born && ahead && seen);
    m->front_seq = -1;
    m->served = SL_PRIO_LEVELS;
    sl_prioq_t q;
    sl_prioq_init(&q);
    long next_id = 0, popped = 0;
    uint64_t pops = 0;
    size_t max_len = 0;
    int push_bias = 50;
    for (long op = 0; op < ops; op++) {
        if (op % 5000 == 0) /* swing between filling and emptying */
            push_bias = 30 + (int)(s_rand() % 41);
        int r = (int)(s_rand() % 100);
        if (r < push_bias && m->len < 4000) {
            unsigned l = s_level();
            unsigned ml = l < SL_PRIO_LEVELS ? l : SL_PRIO_LEVELS - 1;
            born[next_id] = pops;
            ahead[next_id] = m->len;
            cr_assert_eq(sl_prioq_push(&q, IT(next_id), l, 0), 0);
            m_push(m, next_id, ml, 0);
            next_id++;
        } else if (r < 97 || !with_put_back) {
            long want = m_pop(m);
            void *p = sl_prioq_pop(&q, 0);
            if (want < 0) {
                cr_assert_null(p);
                continue;
            }
            pops++;
            long id = ID(p);
            cr_assert_eq(id, want, "op %ld", op);
            cr_assert_eq(seen[id], 0);
            seen[id] = 1;
            popped++;
            if (!with_put_back) {
                uint64_t waited = pops - born[id];
                uint64_t bound = (2 * SL_PRIOQ_SHARE - 1) * (ahead[id] + 1);
                cr_assert_leq(waited, bound, "item %ld waited %lu pops",
                              id, (unsigned long)waited);
            }
        } else if (r < 99) {
            /* Pop one and put it back, as a failed hand-over does. */
            long want = m_pop(m);
            unsigned lv = 0;
            void *p = sl_prioq_pop_ex(&q, 0, &lv);
            if (want < 0) {
                cr_assert_null(p);
                continue;
            }
            cr_assert_eq(ID(p), want);
            m_push(m, want, lv, 1);
            cr_assert_eq(sl_prioq_push_front(&q, p, lv, 0), 0);
        } else {
            unsigned l = (unsigned)(s_rand() % SL_PRIO_LEVELS);
            void *p = sl_prioq_pop_level(&q, l, 0);
            if (!m->lv[l].len) {
                cr_assert_null(p);
                continue;
            }
            long id = m_take(m, l);
            cr_assert_eq(ID(p), id);
            cr_assert_eq(seen[id], 0);
            seen[id] = 1;
            popped++;
        }
        cr_assert_eq(sl_prioq_len(&q), m->len);
        if (m->len > max_len)
            max_len = m->len;
    }
    for (unsigned l = 0; l < SL_PRIO_LEVELS; l++)
        cr_assert_eq(sl_prioq_len_level(&q, l), m->lv[l].len);
    while (m->len) {
        long want = m_pop(m);
        cr_assert_eq(ID(sl_prioq_pop(&q, 0)), want);
        seen[want] = 1;
        popped++;
    }
    cr_assert_null(sl_prioq_pop(&q, 0));
    cr_assert_eq(popped, next_id);
    for (long i = 0; i < next_id; i++)
        cr_assert_eq(seen[i], 1, "item %ld", i);
    /* The run must have exercised deep queues, or it proves little. */
    cr_assert_gt(max_len, 500);
    sl_prioq_fini(&q);
    free(seen);
    free(ahead);
    free(born);
    free(m);
}

Test(prioq, random_run_matches_model_and_bound)
{
    s_random_run(0);
}

Test(prioq, random_run_with_put_back_and_level_pops)
{
    s_random_run(1);
}
