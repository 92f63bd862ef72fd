/* See window_table.h. */
#include "window_table.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define MIN_POOL 64u

static uint64_t group_hash(int64_t start, uint32_t key)
{
    return wn_mix((uint64_t)start ^ wn_mix((uint64_t)key + 1));
}

int wn_table_init(wn_table_t *t, size_t n_aggs)
{
    memset(t, 0, sizeof(*t));
    t->n_aggs = n_aggs;
    t->key_free = t->group_free = WN_NIL;
    t->key_head = t->key_tail = WN_NIL;
    if (wn_index_init(&t->key_ix) < 0)
        return -ENOMEM;
    if (wn_index_init(&t->group_ix) < 0) {
        wn_index_fini(&t->key_ix);
        return -ENOMEM;
    }
    return 0;
}

void wn_table_fini(wn_table_t *t)
{
    for (uint32_t i = 0; i < t->keys_used; i++)
        if (t->keys[i].cap)
            free(t->keys[i].k.heap);
    free(t->keys);
    free(t->groups);
    free(t->accs);
    free(t->wins);
    wn_index_fini(&t->key_ix);
    wn_index_fini(&t->group_ix);
    memset(t, 0, sizeof(*t));
}

/* ---- keys ---------------------------------------------------------------- */

uint32_t wn_key_find(const wn_table_t *t, uint64_t h, const void *key,
                     size_t len)
{
    const wn_index_t *x = &t->key_ix;
    for (size_t s = (uint32_t)h & x->mask; x->slots[s].v;
         s = (s + 1) & x->mask) {
        if (x->slots[s].h != (uint32_t)h)
            continue;
        uint32_t k = x->slots[s].v - 1;
        const wn_key_t *e = &t->keys[k];
        /* len 0 (no key fields): key may be NULL, which memcmp must
         * not be given even for no bytes */
        if (e->hash == h && e->len == len &&
            (len == 0 || memcmp(wn_key_bytes(t, k), key, len) == 0))
            return k;
    }
    return WN_NIL;
}

/* A pool entry with room for len key bytes, or WN_NIL without memory. */
static uint32_t take_key(wn_table_t *t, size_t len)
{
    uint32_t i = t->key_free;
    if (i == WN_NIL) {
        if (t->keys_used == t->keys_cap) {
            uint32_t cap = t->keys_cap ? t->keys_cap * 2 : MIN_POOL;
            wn_key_t *keys = realloc(t->keys, cap * sizeof(*keys));
            if (!keys)
                return WN_NIL;
            t->keys = keys;
            t->keys_cap = cap;
        }
        i = t->keys_used;
        memset(&t->keys[i], 0, sizeof(t->keys[i]));
    }
    wn_key_t *e = &t->keys[i];
    if (len > (e->cap ? e->cap : WN_KEY_INLINE)) {
        size_t cap = (len + 15) & ~(size_t)15;
        unsigned char *b = e->cap ? realloc(e->k.heap, cap) : malloc(cap);
        if (!b)
            return WN_NIL;
        e->k.heap = b;
        e->cap = (uint32_t)cap;
    }
    /* Only now is the entry taken: a failure above changed nothing. */
    if (i == t->key_free)
        t->key_free = e->next;
    else
        t->keys_used++;
    return i;
}

int wn_key_add(wn_table_t *t, uint64_t h, const void *key, size_t len,
               uint32_t *out)
{
    if (len > UINT32_MAX || t->keys_live >= (size_t)INT32_MAX)
        return -ENOMEM;
    if (wn_index_reserve(&t->key_ix, 1) < 0)
        return -ENOMEM;
    uint32_t k = take_key(t, len);
    if (k == WN_NIL)
        return -ENOMEM;
    wn_key_t *e = &t->keys[k];
    e->hash = h;
    e->len = (uint32_t)len;
    e->refs = 0;
    e->first_start = WN_UNSET;
    e->last_emitted = WN_UNSET;
    if (len)
        memcpy(e->cap ? e->k.heap : e->k.in, key, len);
    e->next = WN_NIL;
    e->prev = t->key_tail;
    if (t->key_tail != WN_NIL)
        t->keys[t->key_tail].next = k;
    else
        t->key_head = k;
    t->key_tail = k;
    wn_index_put(&t->key_ix, h, k);
    t->keys_live++;
    *out = k;
    return 0;
}

void wn_key_unref(wn_table_t *t, uint32_t k, int keep)
{
    wn_key_t *e = &t->keys[k];
    if (--e->refs || keep)
        return;
    wn_index_del(&t->key_ix, e->hash, k);
    if (e->prev != WN_NIL)
        t->keys[e->prev].next = e->next;
    else
        t->key_head = e->next;
    if (e->next != WN_NIL)
        t->keys[e->next].prev = e->prev;
    else
        t->key_tail = e->prev;
    e->next = t->key_free; /* the key buffer stays for reuse */
    t->key_free = k;
    t->keys_live--;
}

/* ---- groups and windows ------------------------------------------------- */

uint32_t wn_group_find(const wn_table_t *t, int64_t start, uint32_t key)
{
    uint64_t h = group_hash(start, key);
    const wn_index_t *x = &t->group_ix;
    for (size_t s = (uint32_t)h & x->mask; x->slots[s].v;
         s = (s + 1) & x->mask) {
        if (x->slots[s].h != (uint32_t)h)
            continue;
        const wn_group_t *g = &t->groups[x->slots[s].v - 1];
        if (g->start == start && g->key == key)
            return x->slots[s].v - 1;
    }
    return WN_NIL;
}

static int reserve_groups(wn_table_t *t, size_t more)
{
    if (more <= t->groups_free_n)
        return 0;
    size_t need = (size_t)t->groups_used + (more - t->groups_free_n);
    if (need <= t->groups_cap)
        return 0;
    if (need > (size_t)INT32_MAX)
        return -ENOMEM;
    size_t cap = t->groups_cap ? (size_t)t->groups_cap * 2 : MIN_POOL;
    while (cap < need)
        cap *= 2;
    wn_group_t *groups = realloc(t->groups, cap * sizeof(*groups));
    if (!groups)
        return -ENOMEM;
    t->groups = groups;
    wn_acc_t *accs = realloc(t->accs, cap * t->n_aggs * sizeof(*accs));
    if (!accs)
        return -ENOMEM; /* the larger groups array is harmless */
    t->accs = accs;
    t->groups_cap = (uint32_t)cap;
    return 0;
}

static int reserve_windows(wn_table_t *t, size_t more)
{
    size_t n = t->hi - t->lo;
    if (t->hi + more <= t->wins_cap)
        return 0;
    if (n + more <= t->wins_cap) {
        memmove(t->wins, t->wins + t->lo, n * sizeof(*t->wins));
        t->lo = 0;
        t->hi = n;
        return 0;
    }
    size_t cap = t->wins_cap ? t->wins_cap * 2 : MIN_POOL;
    while (cap < n + more)
        cap *= 2;
    wn_window_t *wins = malloc(cap * sizeof(*wins));
    if (!wins)
        return -ENOMEM;
    if (n)
        memcpy(wins, t->wins + t->lo, n * sizeof(*wins));
    free(t->wins);
    t->wins = wins;
    t->wins_cap = cap;
    t->lo = 0;
    t->hi = n;
    return 0;
}

int wn_table_reserve(wn_table_t *t, size_t groups)
{
    if (reserve_groups(t, groups) < 0 ||
        wn_index_reserve(&t->group_ix, groups) < 0 ||
        reserve_windows(t, groups) < 0)
        return -ENOMEM;
    return 0;
}

/* The position of the window starting at start, or where it would go. */
static size_t window_pos(const wn_table_t *t, int64_t start)
{
    size_t lo = t->lo, hi = t->hi;
    /* New windows are nearly always the newest. */
    if (hi > lo && t->wins[hi - 1].start < start)
        return hi;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (t->wins[mid].start < start)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

uint32_t wn_group_add(wn_table_t *t, int64_t start, uint32_t key)
{
    size_t p = window_pos(t, start);
    if (p == t->hi || t->wins[p].start != start) {
        memmove(&t->wins[p + 1], &t->wins[p],
                (t->hi - p) * sizeof(*t->wins));
        t->wins[p] = (wn_window_t){.start = start, .head = WN_NIL,
                                   .tail = WN_NIL, .n = 0};
        t->hi++;
    }
    wn_window_t *w = &t->wins[p];

    uint32_t g = t->group_free;
    if (g != WN_NIL) {
        t->group_free = t->groups[g].next;
        t->groups_free_n--;
    } else {
        g = t->groups_used++;
    }
    wn_group_t *e = &t->groups[g];
    e->start = start;
    e->key = key;
    e->hash = group_hash(start, key);
    e->next = WN_NIL;
    memset(wn_group_accs(t, g), 0, t->n_aggs * sizeof(wn_acc_t));
    if (w->tail != WN_NIL)
        t->groups[w->tail].next = g;
    else
        w->head = g;
    w->tail = g;
    w->n++;
    wn_index_put(&t->group_ix, e->hash, g);
    t->keys[key].refs++;
    t->groups_live++;
    return g;
}

void wn_window_pop(wn_table_t *t, int keep_keys)
{
    wn_window_t *w = &t->wins[t->lo];
    for (uint32_t g = w->head; g != WN_NIL;) {
        wn_group_t *e = &t->groups[g];
        uint32_t next = e->next;
        wn_index_del(&t->group_ix, e->hash, g);
        wn_key_unref(t, e->key, keep_keys);
        e->next = t->group_free;
        t->group_free = g;
        t->groups_free_n++;
        t->groups_live--;
        g = next;
    }
    t->lo++;
    if (t->lo == t->hi)
        t->lo = t->hi = 0;
}
