/*
 * An open-addressing index from hashes to entry numbers (linear probing,
 * backward-shift deletion, so no tombstones), kept at most half full. A
 * slot holds the entry number + 1 and the low 32 bits of the entry's
 * hash, which also give its home slot: a probe compares hashes without
 * touching the entries, and growing or deleting never re-reads a key. The
 * owner compares keys itself (see the find loops in window_table.c).
 */
#ifndef WINDOW_INDEX_H
#define WINDOW_INDEX_H

#include <stddef.h>
#include <stdint.h>

typedef struct wn_slot {
    uint32_t v; /* entry + 1; 0 is an empty slot */
    uint32_t h; /* low half of the entry's hash */
} wn_slot_t;

typedef struct wn_index {
    wn_slot_t *slots;
    size_t mask; /* slot count - 1; the count is a power of two */
    size_t live;
} wn_index_t;

int wn_index_init(wn_index_t *x);
void wn_index_fini(wn_index_t *x);
/* Grows the index so that `more` entries can be added without growing
 * again. 0 or -ENOMEM (the index is then unchanged). */
int wn_index_reserve(wn_index_t *x, size_t more);
/* Adds entry e with hash h; the caller has reserved room. */
void wn_index_put(wn_index_t *x, uint64_t h, uint32_t e);
/* Removes entry e, which has hash h and is in the index. */
void wn_index_del(wn_index_t *x, uint64_t h, uint32_t e);

uint64_t wn_hash(const void *p, size_t n);
uint64_t wn_mix(uint64_t x);

#endif
