/*
 * The key set of one dedupe worker: an open-addressing hash table (linear
 * probing, backward-shift deletion, so no tombstones) over a pool of
 * entries that also form a doubly linked recency list. Entries are
 * recycled through a free list and keep their key buffers, so once the
 * table has reached its working size, inserting and evicting allocate
 * nothing. Entry indices are uint32_t: at most 2^31 keys.
 */
#ifndef DEDUPE_TABLE_H
#define DEDUPE_TABLE_H

#include <stddef.h>
#include <stdint.h>

#define DD_NIL UINT32_MAX
#define DD_INLINE 24 /* keys up to this many bytes live in the entry */

typedef struct dd_entry {
    uint64_t hash;
    uint64_t ts; /* ns; when the key was last kept (time windows) */
    uint32_t prev, next; /* recency list; next also links the free list */
    uint32_t len;        /* key bytes */
    uint32_t cap;        /* bytes of k.heap, 0 while the key is inline */
    union {
        unsigned char in[DD_INLINE];
        unsigned char *heap;
    } k;
} dd_entry_t;

typedef struct dd_table {
    uint32_t *slots; /* entry index + 1; 0 is an empty slot */
    size_t mask;     /* slots - 1; the slot count is a power of two */
    dd_entry_t *ents;
    uint32_t n_ents, ents_cap; /* pool entries in use or free, allocated */
    uint32_t free_head;
    uint32_t head, tail; /* most and least recently touched */
    size_t live;
} dd_table_t;

int dd_table_init(dd_table_t *t);
void dd_table_fini(dd_table_t *t);

uint64_t dd_hash(const void *p, size_t n);

/* The entry holding key (len bytes, hash h), or DD_NIL. */
uint32_t dd_table_find(const dd_table_t *t, uint64_t h, const void *key,
                       size_t len);
/* Adds a key known to be absent, at the head of the recency list, with
 * timestamp ts. Returns 0 or -ENOMEM (the table is then unchanged). */
int dd_table_insert(dd_table_t *t, uint64_t h, const void *key, size_t len,
                    uint64_t ts);
/* Moves entry i to the head of the recency list. */
void dd_table_touch(dd_table_t *t, uint32_t i);
/* Removes entry i; its key buffer stays with the pool for reuse. */
void dd_table_remove(dd_table_t *t, uint32_t i);

#endif
