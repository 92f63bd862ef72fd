/* See window_index.h. */
#include "window_index.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define INITIAL_SLOTS 64u

uint64_t wn_mix(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

/* Eight bytes at a time, each word mixed in with a multiply; the final
 * avalanche spreads every input bit over the low bits the mask keeps. */
uint64_t wn_hash(const void *p, size_t n)
{
    const unsigned char *b = p;
    uint64_t h = 0x9e3779b97f4a7c15ull ^ (n * 0xff51afd7ed558ccdull);
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, b, 8);
        h = (h ^ wn_mix(w)) * 0x9e3779b97f4a7c15ull;
        b += 8;
        n -= 8;
    }
    uint64_t w = 0;
    if (n)
        memcpy(&w, b, n);
    h ^= wn_mix(w ^ ((uint64_t)n << 56));
    return wn_mix(h);
}

int wn_index_init(wn_index_t *x)
{
    x->slots = calloc(INITIAL_SLOTS, sizeof(*x->slots));
    if (!x->slots)
        return -ENOMEM;
    x->mask = INITIAL_SLOTS - 1;
    x->live = 0;
    return 0;
}

void wn_index_fini(wn_index_t *x)
{
    free(x->slots);
    memset(x, 0, sizeof(*x));
}

static void place(wn_slot_t *slots, size_t mask, wn_slot_t s)
{
    size_t i = s.h & mask;
    while (slots[i].v)
        i = (i + 1) & mask;
    slots[i] = s;
}

int wn_index_reserve(wn_index_t *x, size_t more)
{
    size_t n = x->mask + 1;
    while ((x->live + more) * 2 > n)
        n *= 2;
    if (n == x->mask + 1)
        return 0;
    wn_slot_t *slots = calloc(n, sizeof(*slots));
    if (!slots)
        return -ENOMEM;
    for (size_t i = 0; i <= x->mask; i++)
        if (x->slots[i].v)
            place(slots, n - 1, x->slots[i]);
    free(x->slots);
    x->slots = slots;
    x->mask = n - 1;
    return 0;
}

void wn_index_put(wn_index_t *x, uint64_t h, uint32_t e)
{
    place(x->slots, x->mask, (wn_slot_t){.v = e + 1, .h = (uint32_t)h});
    x->live++;
}

void wn_index_del(wn_index_t *x, uint64_t h, uint32_t e)
{
    size_t mask = x->mask, s = (uint32_t)h & mask;
    while (x->slots[s].v != e + 1)
        s = (s + 1) & mask;
    /* Backward shift: pull later members of the probe run into the hole
     * unless that would move one before its home slot. */
    for (size_t j = s;;) {
        j = (j + 1) & mask;
        wn_slot_t v = x->slots[j];
        if (!v.v)
            break;
        size_t home = v.h & mask;
        if (((j - home) & mask) >= ((j - s) & mask)) {
            x->slots[s] = v;
            s = j;
        }
    }
    x->slots[s].v = 0;
    x->live--;
}
