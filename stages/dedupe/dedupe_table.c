/*
 * See dedupe_table.h. The table keeps at most half its slots full, so a
 * probe is short; it doubles (rehashing from the entries' stored hashes,
 * no key is re-read) when an insert would pass that.
 */
#include "dedupe_table.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define INITIAL_SLOTS 64u

static unsigned char *key_of(dd_entry_t *e)
{
    return e->cap ? e->k.heap : e->k.in;
}

static uint64_t mix(uint64_t x)
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
uint64_t dd_hash(const void *p, size_t n)
{
    const unsigned char *b = p;
    uint64_t h = 0x9e3779b97f4a7c15ull ^ (n * 0xff51afd7ed558ccdull);
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, b, 8);
        h = (h ^ mix(w)) * 0x9e3779b97f4a7c15ull;
        b += 8;
        n -= 8;
    }
    uint64_t w = 0;
    memcpy(&w, b, n);
    h ^= mix(w ^ ((uint64_t)n << 56));
    return mix(h);
}

int dd_table_init(dd_table_t *t)
{
    memset(t, 0, sizeof(*t));
    t->slots = calloc(INITIAL_SLOTS, sizeof(*t->slots));
    if (!t->slots)
        return -ENOMEM;
    t->mask = INITIAL_SLOTS - 1;
    t->free_head = t->head = t->tail = DD_NIL;
    return 0;
}

void dd_table_fini(dd_table_t *t)
{
    for (uint32_t i = 0; i < t->n_ents; i++)
        if (t->ents[i].cap)
            free(t->ents[i].k.heap);
    free(t->ents);
    free(t->slots);
    memset(t, 0, sizeof(*t));
}

uint32_t dd_table_find(const dd_table_t *t, uint64_t h, const void *key,
                       size_t len)
{
    for (size_t s = h & t->mask;; s = (s + 1) & t->mask) {
        uint32_t v = t->slots[s];
        if (!v)
            return DD_NIL;
        dd_entry_t *e = &t->ents[v - 1];
        if (e->hash == h && e->len == len && memcmp(key_of(e), key, len) == 0)
            return v - 1;
    }
}

static void place(uint32_t *slots, size_t mask, uint64_t h, uint32_t v)
{
    size_t s = h & mask;
    while (slots[s])
        s = (s + 1) & mask;
    slots[s] = v;
}

static int grow_slots(dd_table_t *t)
{
    size_t n = (t->mask + 1) * 2;
    uint32_t *slots = calloc(n, sizeof(*slots));
    if (!slots)
        return -ENOMEM;
    for (size_t s = 0; s <= t->mask; s++)
        if (t->slots[s])
            place(slots, n - 1, t->ents[t->slots[s] - 1].hash, t->slots[s]);
    free(t->slots);
    t->slots = slots;
    t->mask = n - 1;
    return 0;
}

/* A pool entry with room for len key bytes, or DD_NIL without memory. */
static uint32_t take_entry(dd_table_t *t, size_t len)
{
    uint32_t i = t->free_head;
    if (i == DD_NIL) {
        if (t->n_ents == t->ents_cap) {
            uint32_t cap = t->ents_cap ? t->ents_cap * 2 : 64;
            dd_entry_t *ents = realloc(t->ents, cap * sizeof(*ents));
            if (!ents)
                return DD_NIL;
            t->ents = ents;
            t->ents_cap = cap;
        }
        i = t->n_ents;
        memset(&t->ents[i], 0, sizeof(t->ents[i]));
    }
    dd_entry_t *e = &t->ents[i];
    if (len > (e->cap ? e->cap : DD_INLINE)) {
        size_t cap = (len + 15) & ~(size_t)15;
        unsigned char *b = e->cap ? realloc(e->k.heap, cap) : malloc(cap);
        if (!b)
            return DD_NIL;
        e->k.heap = b;
        e->cap = (uint32_t)cap;
    }
    /* Only now is the entry taken: a failure above changed nothing. */
    if (i == t->free_head)
        t->free_head = e->next;
    else
        t->n_ents++;
    return i;
}

static void unlink_entry(dd_table_t *t, uint32_t i)
{
    dd_entry_t *e = &t->ents[i];
    if (e->prev != DD_NIL)
        t->ents[e->prev].next = e->next;
    else
        t->head = e->next;
    if (e->next != DD_NIL)
        t->ents[e->next].prev = e->prev;
    else
        t->tail = e->prev;
}

static void push_head(dd_table_t *t, uint32_t i)
{
    dd_entry_t *e = &t->ents[i];
    e->prev = DD_NIL;
    e->next = t->head;
    if (t->head != DD_NIL)
        t->ents[t->head].prev = i;
    else
        t->tail = i;
    t->head = i;
}

int dd_table_insert(dd_table_t *t, uint64_t h, const void *key, size_t len,
                    uint64_t ts)
{
    if (len > UINT32_MAX || t->live >= (size_t)1 << 31)
        return -ENOMEM;
    if ((t->live + 1) * 2 > t->mask + 1 && grow_slots(t) < 0)
        return -ENOMEM;
    uint32_t i = take_entry(t, len);
    if (i == DD_NIL)
        return -ENOMEM;
    dd_entry_t *e = &t->ents[i];
    e->hash = h;
    e->ts = ts;
    e->len = (uint32_t)len;
    memcpy(key_of(e), key, len);
    push_head(t, i);
    place(t->slots, t->mask, h, i + 1);
    t->live++;
    return 0;
}

void dd_table_touch(dd_table_t *t, uint32_t i)
{
    if (t->head == i)
        return;
    unlink_entry(t, i);
    push_head(t, i);
}

void dd_table_remove(dd_table_t *t, uint32_t i)
{
    size_t s = t->ents[i].hash & t->mask;
    while (t->slots[s] != i + 1)
        s = (s + 1) & t->mask;
    /* Backward shift: pull later members of the probe run into the hole
     * unless that would move one before its home slot. */
    for (size_t j = s;;) {
        j = (j + 1) & t->mask;
        uint32_t v = t->slots[j];
        if (!v)
            break;
        size_t home = t->ents[v - 1].hash & t->mask;
        if (((j - home) & t->mask) >= ((j - s) & t->mask)) {
            t->slots[s] = v;
            s = j;
        }
    }
    t->slots[s] = 0;
    unlink_entry(t, i);
    t->ents[i].next = t->free_head;
    t->free_head = i;
    t->live--;
}
