#include "retry.h"

#include <errno.h>
#include <stdlib.h>

void sl__retryq_init(sl_retryq_t *q, uint64_t seed)
{
    q->heap = NULL;
    q->n = q->cap = 0;
    q->rng = seed ? seed : 0x9e3779b97f4a7c15ull;
}

void sl__retryq_fini(sl_retryq_t *q)
{
    for (size_t i = 0; i < q->n; i++)
        free(q->heap[i].payload);
    free(q->heap);
    q->heap = NULL;
    q->n = q->cap = 0;
}

/* xorshift64*: jitter needs spread, not secrecy. */
static uint64_t s_rand(sl_retryq_t *q)
{
    q->rng ^= q->rng >> 12;
    q->rng ^= q->rng << 25;
    q->rng ^= q->rng >> 27;
    return q->rng * 0x2545f4914f6cdd1dull;
}

uint64_t sl__retryq_delay_ns(sl_retryq_t *q, uint32_t attempts,
                             uint32_t backoff_ms, uint32_t max_backoff_ms)
{
    uint64_t d = backoff_ms;
    for (uint32_t i = 1; i < attempts && d < max_backoff_ms; i++)
        d *= 2;
    if (d > max_backoff_ms)
        d = max_backoff_ms;
    d *= 1000000ull;
    if (d < 2)
        return d;
    return d / 2 + s_rand(q) % (d / 2 + 1);
}

static void s_swap(sl_retry_entry_t *a, sl_retry_entry_t *b)
{
    sl_retry_entry_t t = *a;
    *a = *b;
    *b = t;
}

int sl__retryq_push(sl_retryq_t *q, const sl_retry_entry_t *e)
{
    if (q->n == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 64;
        sl_retry_entry_t *h = realloc(q->heap, cap * sizeof(*h));
        if (!h)
            return -ENOMEM;
        q->heap = h;
        q->cap = cap;
    }
    size_t i = q->n++;
    q->heap[i] = *e;
    while (i > 0) {
        size_t up = (i - 1) / 2;
        if (q->heap[up].due_ns <= q->heap[i].due_ns)
            break;
        s_swap(&q->heap[up], &q->heap[i]);
        i = up;
    }
    return 0;
}

uint64_t sl__retryq_next_due(const sl_retryq_t *q)
{
    return q->n ? q->heap[0].due_ns : UINT64_MAX;
}

int sl__retryq_pop(sl_retryq_t *q, sl_retry_entry_t *out)
{
    if (!q->n)
        return -ENOENT;
    *out = q->heap[0];
    q->heap[0] = q->heap[--q->n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < q->n && q->heap[l].due_ns < q->heap[m].due_ns)
            m = l;
        if (r < q->n && q->heap[r].due_ns < q->heap[m].due_ns)
            m = r;
        if (m == i)
            break;
        s_swap(&q->heap[m], &q->heap[i]);
        i = m;
    }
    return 0;
}
