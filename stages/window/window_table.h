/*
 * The state of one window worker: the distinct keys, the open (window,
 * key) groups with their aggregates, and the open windows in time order.
 *
 * - Keys are interned: a group refers to its key by number, so a key
 *   held by many sliding windows is stored once, and a group is found by
 *   hashing two integers. A key lives while groups hold it (a reference
 *   count); with emit_empty it is kept to the end of the stream. Keys
 *   also form a list in the order they were first seen.
 * - Groups sit in a pool with their aggregates in a parallel array (n_aggs
 *   per group) and are found through an index on (window start, key).
 *   Each window lists its groups in creation order, which is the order
 *   they are emitted in.
 * - Windows are an array sorted by start (all windows have one size, so
 *   also by end): closing takes from the front, and new windows are
 *   nearly always added at the back.
 *
 * Pools recycle entries through free lists and keep key buffers, so once
 * the working set is reached nothing is allocated per record. Adding is
 * split into reserving (may fail with -ENOMEM, changes nothing visible)
 * and adding (cannot fail), so a record's updates are all or nothing.
 */
#ifndef WINDOW_TABLE_H
#define WINDOW_TABLE_H

#include "window_agg.h"
#include "window_index.h"

#include <stddef.h>
#include <stdint.h>

#define WN_NIL UINT32_MAX
#define WN_KEY_INLINE 40 /* keys up to this many bytes live in the entry */
#define WN_UNSET INT64_MAX

typedef struct wn_key {
    uint64_t hash;
    uint32_t len, cap; /* key bytes; bytes of k.heap (0: inline) */
    uint32_t refs;     /* groups (and the record being handled) using it */
    uint32_t prev, next; /* first-seen list; next also links the free list */
    int64_t first_start; /* emit_empty: its first window, or WN_UNSET */
    int64_t last_emitted; /* emit_empty: the newest window emitted for it */
    union {
        unsigned char in[WN_KEY_INLINE];
        unsigned char *heap;
    } k;
} wn_key_t;

typedef struct wn_group {
    int64_t start;
    uint64_t hash;
    uint32_t key;
    uint32_t next; /* the window's next group; also links the free list */
} wn_group_t;

typedef struct wn_window {
    int64_t start;
    uint32_t head, tail; /* groups in creation order */
    uint32_t n;
} wn_window_t;

typedef struct wn_table {
    size_t n_aggs;

    wn_key_t *keys;
    uint32_t keys_used, keys_cap, key_free;
    uint32_t key_head, key_tail; /* first-seen order */
    size_t keys_live;
    wn_index_t key_ix;

    wn_group_t *groups;
    wn_acc_t *accs; /* n_aggs per group */
    uint32_t groups_used, groups_cap, group_free, groups_free_n;
    size_t groups_live;
    wn_index_t group_ix;

    wn_window_t *wins; /* open windows are wins[lo..hi) */
    size_t lo, hi, wins_cap;
} wn_table_t;

int wn_table_init(wn_table_t *t, size_t n_aggs);
void wn_table_fini(wn_table_t *t);

/* The key with these bytes (hash h), or WN_NIL. */
uint32_t wn_key_find(const wn_table_t *t, uint64_t h, const void *key,
                     size_t len);
/* Adds a key known to be absent, with no references, at the end of the
 * first-seen list. 0 or -ENOMEM (nothing changed). */
int wn_key_add(wn_table_t *t, uint64_t h, const void *key, size_t len,
               uint32_t *out);
static inline const unsigned char *wn_key_bytes(const wn_table_t *t,
                                                uint32_t k)
{
    const wn_key_t *e = &t->keys[k];
    return e->cap ? e->k.heap : e->k.in;
}
/* Drops a reference; at none the key goes unless keep is set. */
void wn_key_unref(wn_table_t *t, uint32_t k, int keep);

/* The group of (start, key), or WN_NIL. */
uint32_t wn_group_find(const wn_table_t *t, int64_t start, uint32_t key);
/* Makes room for `groups` more groups in as many new windows. 0 or
 * -ENOMEM (nothing visible changed). */
int wn_table_reserve(wn_table_t *t, size_t groups);
/* Adds the group (start, key), absent so far, with zeroed aggregates, to
 * its window (created if needed); takes a reference on the key. Needs
 * room reserved. */
uint32_t wn_group_add(wn_table_t *t, int64_t start, uint32_t key);
static inline wn_acc_t *wn_group_accs(const wn_table_t *t, uint32_t g)
{
    return &t->accs[(size_t)g * t->n_aggs];
}

/* Removes the front (oldest) window and its groups. */
void wn_window_pop(wn_table_t *t, int keep_keys);

#endif
