/*
 * JSON decoding: JSON text to msgpack (see sluice/json.h). Runs yajl's
 * streaming parser and packs msgpack without building a tree per record;
 * the comment under "tokens" below says how.
 */
#include <sluice/json.h>

#include "json_utf8.h"

#include <errno.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_parse.h>

/* Containers msgpack-c's C unpacker can nest: its fixed stack size
 * (MSGPACK_EMBED_STACK_SIZE), compiled into libmsgpackc. */
#define S_MSGPACK_DEPTH 32
#define S_XSTR(x) #x
#define S_STR(x) S_XSTR(x)

/* ---- tokens -------------------------------------------------------------- */

/* yajl reports values as they are read, but a msgpack map or array header
 * must give its element count first. So the callbacks record a flat list of
 * tokens (containers know their child count and where their subtree ends,
 * scalars are already converted), and once the whole text has parsed, one
 * walk packs them. Nothing is packed before the text is known to be valid.
 *
 * All the memory is per thread and reused: the token list and a byte buffer
 * for strings that had escapes grow to the largest record seen; yajl's own
 * allocations (its handle, state stack, lexer) come from a bump arena that
 * is reset for every record, so the steady state does not call malloc. */

enum { S_T_NIL, S_T_TRUE, S_T_FALSE, S_T_I64, S_T_U64, S_T_F64, S_T_STR,
       S_T_KEY, S_T_MAP, S_T_ARRAY };

#define S_NONE UINT32_MAX
/* Up to this many keys a map looks for duplicates by a linear scan of its
 * keys (records have few keys); beyond, through a hash index. Measured with
 * keys of equal length (the scan's worst case): at 32 keys the index is
 * already ~1.5x faster, at 10k keys the scan alone took 250 ms a record. */
#define S_LINEAR_KEYS 16
/* Enough for yajl's allocations for a record without long escaped strings
 * (about 4.5 KiB); larger requests go to malloc. */
#define S_ARENA_SIZE 8192

typedef struct s_tok {
    uint8_t type;
    uint8_t dead;    /* key: a later duplicate, skipped with its value */
    uint8_t in_text; /* str/key: bytes are in the input, else in d->bytes */
    uint32_t n;      /* str/key: length; map: live pairs; array: items */
    uint32_t end;    /* map/array: index after the subtree; key: index of
                        the value to pack in place of the next token, or 0 */
    union {
        int64_t i;
        uint64_t u;
        double d;
        size_t off; /* str/key */
    } v;
} s_tok_t;

typedef struct s_open {
    uint32_t tok;    /* the container's token */
    int indexed;     /* map: its keys are in the hash index */
    size_t key_base; /* map: its live keys are d->keys[key_base..nkeys) */
} s_open_t;

/* A live key of an open map. The keys of all open maps form one stack (an
 * inner map's keys are dropped when it closes), so a duplicate scan reads a
 * short contiguous array and compares lengths before touching bytes. */
typedef struct s_kref {
    uint32_t n;
    uint32_t tok;
} s_kref_t;

typedef struct s_slot {
    uint32_t gen; /* the slot is used in this decode iff gen == d->gen */
    uint32_t map;
    uint32_t key;
    uint32_t hash;
} s_slot_t;

/* The yajl arena's block header, 16 bytes to keep blocks aligned. */
typedef struct s_blk {
    size_t size;
    size_t heap; /* 1: malloc'd, not in the arena */
} s_blk_t;

typedef struct s_dec {
    s_tok_t *tok;
    size_t ntok, tok_cap;
    char *bytes; /* strings with escapes, and long numbers for strtod */
    size_t nbytes, bytes_cap;
    s_open_t open[S_MSGPACK_DEPTH];
    int depth;
    s_kref_t *keys;
    size_t nkeys, keys_cap;
    s_slot_t *slot;
    size_t slot_cap, slot_used;
    uint32_t gen;
    /* this call */
    const char *text;
    size_t len;
    yajl_handle h;
    int finishing;  /* inside yajl_complete_parse */
    int rc;         /* why a callback stopped the parse */
    size_t err_off; /* where, as an offset into text */
    const char *why;
    size_t arena_used;
    _Alignas(16) unsigned char arena[S_ARENA_SIZE];
} s_dec_t;

static pthread_once_t s_once = PTHREAD_ONCE_INIT;
static pthread_key_t s_tls_key;
static int s_key_ok;
static locale_t s_c_locale;
static __thread s_dec_t *s_tls;

static void s_dec_free(void *p)
{
    s_dec_t *d = p;
    free(d->tok);
    free(d->keys);
    free(d->bytes);
    free(d->slot);
    free(d);
}

static void s_dec_once(void)
{
    /* The key only serves to free a thread's state when it exits. */
    s_key_ok = pthread_key_create(&s_tls_key, s_dec_free) == 0;
    /* Numbers in JSON always use '.', whatever LC_NUMERIC the embedding
     * program chose; if this fails, strtod with the process locale is used
     * (sluice itself never calls setlocale, so that is "C" too). */
    s_c_locale = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
}

static s_dec_t *s_dec_get(void)
{
    if (s_tls)
        return s_tls;
    pthread_once(&s_once, s_dec_once);
    s_dec_t *d = calloc(1, sizeof(*d));
    if (!d)
        return NULL;
    if (s_key_ok && pthread_setspecific(s_tls_key, d) != 0) {
        free(d);
        return NULL;
    }
    s_tls = d;
    return d;
}

/* ---- yajl's allocator: a bump arena reset per record ---------------------- */

#define S_ROUND16(n) (((n) + 15) & ~(size_t)15)

static void *s_amalloc(void *ctx, size_t size)
{
    s_dec_t *d = ctx;
    if (size <= S_ARENA_SIZE) {
        size_t need = sizeof(s_blk_t) + S_ROUND16(size);
        if (S_ARENA_SIZE - d->arena_used >= need) {
            s_blk_t *b = (s_blk_t *)(d->arena + d->arena_used);
            d->arena_used += need;
            b->size = size;
            b->heap = 0;
            return b + 1;
        }
    }
    if (size > SIZE_MAX - sizeof(s_blk_t))
        return NULL;
    s_blk_t *b = malloc(sizeof(*b) + size);
    if (!b)
        return NULL;
    b->size = size;
    b->heap = 1;
    return b + 1;
}

/* Arena blocks are reclaimed all at once when the next record starts; only
 * the newest one is handed back at once, so a grow-free-grow pattern does
 * not exhaust the arena. */
static void s_afree(void *ctx, void *p)
{
    s_dec_t *d = ctx;
    if (!p)
        return;
    s_blk_t *b = (s_blk_t *)p - 1;
    if (b->heap) {
        free(b);
        return;
    }
    unsigned char *end = (unsigned char *)p + S_ROUND16(b->size);
    if (end == d->arena + d->arena_used)
        d->arena_used = (size_t)((unsigned char *)b - d->arena);
}

static void *s_arealloc(void *ctx, void *p, size_t size)
{
    s_dec_t *d = ctx;
    if (!p)
        return s_amalloc(ctx, size);
    s_blk_t *b = (s_blk_t *)p - 1;
    if (b->heap) {
        if (size > SIZE_MAX - sizeof(*b))
            return NULL;
        s_blk_t *nb = realloc(b, sizeof(*nb) + size);
        if (!nb)
            return NULL;
        nb->size = size;
        return nb + 1;
    }
    size_t at = (size_t)((unsigned char *)p - d->arena);
    if (at + S_ROUND16(b->size) == d->arena_used && size <= S_ARENA_SIZE &&
        S_ROUND16(size) <= S_ARENA_SIZE - at) {
        d->arena_used = at + S_ROUND16(size); /* the newest block: in place */
        b->size = size;
        return p;
    }
    void *q = s_amalloc(ctx, size);
    if (!q)
        return NULL;
    memcpy(q, p, b->size < size ? b->size : size);
    s_afree(ctx, p);
    return q;
}

/* ---- recording ----------------------------------------------------------- */

/* Stops the parse: a callback returning 0 makes yajl give up. */
static int s_fail(s_dec_t *d, int rc, size_t off, const char *why)
{
    d->rc = rc;
    d->err_off = off;
    d->why = why;
    return 0;
}

/* Offset in text just past the token yajl is reporting. Tokens completed by
 * yajl_complete_parse (a number at the very end) end at the end of text. */
static size_t s_here(const s_dec_t *d)
{
    return d->finishing ? d->len : yajl_get_bytes_consumed(d->h);
}

static int s_grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap : 64;
    while (n < need) {
        if (n > SIZE_MAX / 2 / elem)
            return -ENOMEM;
        n *= 2;
    }
    void *q = realloc(*p, n * elem);
    if (!q)
        return -ENOMEM;
    *p = q;
    *cap = n;
    return 0;
}

/* Appends a token; NULL (with the parse stopped) when memory runs out.
 * Indexes are 32-bit like msgpack's counts. */
static s_tok_t *s_push(s_dec_t *d, uint8_t type)
{
    if (d->ntok >= S_NONE - 1 ||
        s_grow((void **)&d->tok, &d->tok_cap, d->ntok + 1, sizeof(s_tok_t))) {
        s_fail(d, -ENOMEM, 0, NULL);
        return NULL;
    }
    s_tok_t *t = &d->tok[d->ntok++];
    memset(t, 0, sizeof(*t));
    t->type = type;
    return t;
}

/* A value token: counts as an item of the enclosing array (a map counts
 * its pairs when the key arrives). */
static s_tok_t *s_value(s_dec_t *d, uint8_t type)
{
    s_tok_t *t = s_push(d, type);
    if (t && d->depth > 0) {
        s_tok_t *parent = &d->tok[d->open[d->depth - 1].tok];
        if (parent->type == S_T_ARRAY && ++parent->n == S_NONE) {
            s_fail(d, -EBADMSG, s_here(d), "too many items");
            return NULL;
        }
    }
    return t;
}

static const char *s_tok_bytes(const s_dec_t *d, const s_tok_t *t)
{
    return (t->in_text ? d->text : d->bytes) + t->v.off;
}

static int s_null(void *ctx)
{
    return s_value(ctx, S_T_NIL) != NULL;
}

static int s_bool(void *ctx, int b)
{
    return s_value(ctx, b ? S_T_TRUE : S_T_FALSE) != NULL;
}

static int s_number(void *ctx, const char *s, size_t n)
{
    s_dec_t *d = ctx;
    const char *p = s, *end = s + n;
    int neg = p < end && *p == '-';
    p += neg;
    uint64_t v = 0;
    int fits = 1;
    for (; p < end && *p >= '0' && *p <= '9'; p++) {
        unsigned dig = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - dig) / 10)
            fits = 0;
        else
            v = v * 10 + dig;
    }
    s_tok_t *t;
    if (p == end && fits) { /* integer syntax (yajl checked the grammar) */
        if (!neg && v > INT64_MAX) {
            if (!(t = s_value(d, S_T_U64)))
                return 0;
            t->v.u = v; /* so UINT64_MAX stays exact */
            return 1;
        }
        if (!neg || v <= (uint64_t)INT64_MAX + 1) {
            if (!(t = s_value(d, S_T_I64)))
                return 0;
            /* Negating in unsigned arithmetic also yields INT64_MIN. */
            t->v.i = neg ? (int64_t)(0 - v) : (int64_t)v;
            return 1;
        }
    }
    /* strtod needs a terminated copy; long ones go through the scratch. */
    char buf[64];
    char *z = buf;
    if (n >= sizeof(buf)) {
        if (s_grow((void **)&d->bytes, &d->bytes_cap, d->nbytes + n + 1, 1))
            return s_fail(d, -ENOMEM, 0, NULL);
        z = d->bytes + d->nbytes;
    }
    memcpy(z, s, n);
    z[n] = '\0';
    double x = s_c_locale ? strtod_l(z, NULL, s_c_locale) : strtod(z, NULL);
    if (isinf(x))
        return s_fail(d, -EBADMSG, s_here(d), "number out of range");
    if (!(t = s_value(d, S_T_F64)))
        return 0;
    t->v.d = x;
    return 1;
}

static unsigned s_hex4(const char *p)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v = v << 4 | (unsigned)(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
    }
    return v;
}

/* yajl lets through what is well formed on the surface only: UTF-8 that is
 * overlong, encodes a surrogate or lies above U+10FFFF, and \u escapes of
 * unpaired surrogates (it turns a lone high one into '?' and pairs a high
 * one with whatever escape follows). Checks the string's raw text, which
 * ends just before off (the closing quote); 0 if valid, else stops the
 * parse. Only strings with a byte >= 0x80 or an escape get here. */
static int s_check_raw(s_dec_t *d, size_t off)
{
    const char *text = d->text;
    /* yajl reports a string as soon as it reads the closing quote, so off
     * is just past it; refuse rather than scan from anywhere else. */
    if (d->finishing || off < 2 || off > d->len || text[off - 1] != '"')
        return s_fail(d, -EBADMSG, s_here(d), "invalid string");
    size_t close = off - 1, open = close;
    /* The opening quote is the first one back that is not escaped: an odd
     * run of backslashes before a quote means the quote is content. */
    while (open > 0) {
        open--;
        if (text[open] != '"')
            continue;
        size_t bs = 0;
        while (bs < open && text[open - 1 - bs] == '\\')
            bs++;
        if (bs % 2 == 0)
            break;
    }
    const unsigned char *u = (const unsigned char *)text;
    for (size_t i = open + 1; i < close;) {
        if (u[i] >= 0x80) {
            size_t bad = 0, n = sl__utf8_len(u + i, close - i, &bad);
            if (!n)
                return s_fail(d, -EBADMSG, i + 1, "invalid UTF-8 in string");
            i += n;
        } else if (u[i] != '\\') {
            i++;
        } else if (u[i + 1] != 'u') {
            i += 2;
        } else {
            unsigned cp = s_hex4(text + i + 2);
            i += 6;
            if (cp >= 0xdc00 && cp <= 0xdfff)
                return s_fail(d, -EBADMSG, i,
                              "unpaired UTF-16 surrogate in \\u escape");
            if (cp >= 0xd800 && cp <= 0xdbff) {
                unsigned lo = i + 6 <= close && u[i] == '\\' && u[i + 1] == 'u'
                                  ? s_hex4(text + i + 2)
                                  : 0;
                if (lo < 0xdc00 || lo > 0xdfff)
                    return s_fail(d, -EBADMSG, i,
                                  "unpaired UTF-16 surrogate in \\u escape");
                i += 6;
            }
        }
    }
    return 1;
}

/* 1 if p[0..n) is all ASCII; eight bytes at a time, as most strings are. */
static int s_ascii(const unsigned char *p, size_t n)
{
    uint64_t acc = 0, w;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        memcpy(&w, p + i, 8);
        acc |= w;
    }
    for (; i < n; i++)
        acc |= p[i];
    return (acc & 0x8080808080808080ull) == 0;
}

/* Records a string or key. Strings that point into the input (no escapes)
 * are kept as offsets into it, since the input outlives the decode; yajl's
 * unescaped copies only live during the callback, so they are copied. */
static s_tok_t *s_string(s_dec_t *d, uint8_t type, const unsigned char *s,
                         size_t n)
{
    const char *p = (const char *)s;
    uintptr_t at = (uintptr_t)p, base = (uintptr_t)d->text;
    int in_text = at >= base && at - base < d->len;
    if (n >= S_NONE) {
        s_fail(d, -EBADMSG, s_here(d), "string too long");
        return NULL;
    }
    int check = !in_text || !s_ascii(s, n);
    if (check && !s_check_raw(d, s_here(d)))
        return NULL;
    if (!in_text && type == S_T_KEY && memchr(s, '\0', n)) {
        /* Keys are looked up as C strings throughout sluice. */
        s_fail(d, -EBADMSG, s_here(d), "NUL byte in object key");
        return NULL;
    }
    size_t off;
    if (in_text) {
        off = (size_t)(p - d->text);
    } else {
        if (s_grow((void **)&d->bytes, &d->bytes_cap, d->nbytes + n, 1)) {
            s_fail(d, -ENOMEM, 0, NULL);
            return NULL;
        }
        off = d->nbytes;
        if (n)
            memcpy(d->bytes + off, s, n);
        d->nbytes += n;
    }
    s_tok_t *t = type == S_T_KEY ? s_push(d, type) : s_value(d, type);
    if (!t)
        return NULL;
    t->in_text = (uint8_t)in_text;
    t->n = (uint32_t)n;
    t->v.off = off;
    return t;
}

static int s_str(void *ctx, const unsigned char *s, size_t n)
{
    return s_string(ctx, S_T_STR, s, n) != NULL;
}

/* ---- duplicate keys ------------------------------------------------------ */

static uint32_t s_hash(uint32_t map, const char *p, size_t n)
{
    uint32_t h = 2166136261u ^ map; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 16777619u;
    return h;
}

static int s_same_key(const s_dec_t *d, uint32_t a, const char *p, size_t n)
{
    const s_tok_t *t = &d->tok[a];
    return t->n == n && memcmp(s_tok_bytes(d, t), p, n) == 0;
}

static int s_index_put(s_dec_t *d, uint32_t map, uint32_t key, uint32_t h)
{
    if ((d->slot_used + 1) * 2 > d->slot_cap) {
        size_t cap = d->slot_cap ? d->slot_cap * 2 : 256;
        s_slot_t *ns = calloc(cap, sizeof(*ns));
        if (!ns)
            return -ENOMEM;
        for (size_t i = 0; i < d->slot_cap; i++) {
            s_slot_t *o = &d->slot[i];
            if (o->gen != d->gen)
                continue;
            size_t j = o->hash & (cap - 1);
            while (ns[j].gen == d->gen)
                j = (j + 1) & (cap - 1);
            ns[j] = *o;
        }
        free(d->slot);
        d->slot = ns;
        d->slot_cap = cap;
    }
    size_t j = h & (d->slot_cap - 1);
    while (d->slot[j].gen == d->gen)
        j = (j + 1) & (d->slot_cap - 1);
    d->slot[j] = (s_slot_t){.gen = d->gen, .map = map, .key = key, .hash = h};
    d->slot_used++;
    return 0;
}

/* The live key of map equal to p[0..n), or S_NONE. */
static uint32_t s_index_get(const s_dec_t *d, uint32_t map, const char *p,
                            size_t n, uint32_t h)
{
    for (size_t j = h & (d->slot_cap - 1); d->slot[j].gen == d->gen;
         j = (j + 1) & (d->slot_cap - 1)) {
        const s_slot_t *s = &d->slot[j];
        if (s->hash == h && s->map == map && s_same_key(d, s->key, p, n))
            return s->key;
    }
    return S_NONE;
}

/* Builds the index of a map that has just outgrown the linear scan. */
static int s_index_map(s_dec_t *d, s_open_t *m)
{
    for (size_t i = m->key_base; i < d->nkeys; i++) {
        const s_tok_t *t = &d->tok[d->keys[i].tok];
        uint32_t h = s_hash(m->tok, s_tok_bytes(d, t), t->n);
        if (s_index_put(d, m->tok, d->keys[i].tok, h) < 0)
            return -ENOMEM;
    }
    m->indexed = 1;
    return 0;
}

/* A duplicate key keeps the first key's position and takes the last value:
 * the later key is marked dead (skipped with its value when packing) and
 * the first one points at the value to pack instead of its own. */
static int s_key(void *ctx, const unsigned char *s, size_t n)
{
    s_dec_t *d = ctx;
    s_open_t *m = &d->open[d->depth - 1];
    s_tok_t *t = s_string(d, S_T_KEY, s, n);
    if (!t)
        return 0;
    uint32_t self = (uint32_t)(d->ntok - 1);
    const char *p = s_tok_bytes(d, t);
    uint32_t h = 0, dup = S_NONE;
    if (!m->indexed && d->nkeys - m->key_base >= S_LINEAR_KEYS &&
        s_index_map(d, m) < 0)
        return s_fail(d, -ENOMEM, 0, NULL);
    if (m->indexed) {
        h = s_hash(m->tok, p, n);
        dup = s_index_get(d, m->tok, p, n, h);
    } else {
        for (size_t i = m->key_base; i < d->nkeys; i++)
            if (d->keys[i].n == n && s_same_key(d, d->keys[i].tok, p, n)) {
                dup = d->keys[i].tok;
                break;
            }
    }
    if (dup != S_NONE) {
        t->dead = 1;
        d->tok[dup].end = self + 1;
        return 1;
    }
    if ((m->indexed && s_index_put(d, m->tok, self, h) < 0) ||
        s_grow((void **)&d->keys, &d->keys_cap, d->nkeys + 1,
               sizeof(s_kref_t)))
        return s_fail(d, -ENOMEM, 0, NULL);
    d->keys[d->nkeys++] = (s_kref_t){.n = (uint32_t)n, .tok = self};
    d->tok[m->tok].n++;
    return 1;
}

/* ---- containers ---------------------------------------------------------- */

static int s_start(s_dec_t *d, uint8_t type)
{
    /* msgpack-c's C unpacker has a fixed stack of MSGPACK_EMBED_STACK_SIZE
     * containers: a deeper record could be packed but never unpacked, so it
     * is refused here, where the error can still name a position. */
    if (d->depth == S_MSGPACK_DEPTH)
        return s_fail(d, -EBADMSG, s_here(d), "nested deeper than "
                      S_STR(S_MSGPACK_DEPTH) " levels");
    if (!s_value(d, type))
        return 0;
    d->open[d->depth++] = (s_open_t){.tok = (uint32_t)(d->ntok - 1),
                                     .key_base = d->nkeys};
    return 1;
}

static int s_start_map(void *ctx)
{
    return s_start(ctx, S_T_MAP);
}

static int s_start_array(void *ctx)
{
    return s_start(ctx, S_T_ARRAY);
}

static int s_end(void *ctx)
{
    s_dec_t *d = ctx;
    s_open_t *c = &d->open[--d->depth];
    d->tok[c->tok].end = (uint32_t)d->ntok;
    d->nkeys = c->key_base; /* no-op for an array */
    return 1;
}

static const yajl_callbacks s_callbacks = {
    .yajl_null = s_null,
    .yajl_boolean = s_bool,
    .yajl_number = s_number, /* raw text: ints beyond int64 stay exact */
    .yajl_string = s_str,
    .yajl_start_map = s_start_map,
    .yajl_map_key = s_key,
    .yajl_end_map = s_end,
    .yajl_start_array = s_start_array,
    .yajl_end_array = s_end,
};

/* ---- packing ------------------------------------------------------------- */

static uint32_t s_skip(const s_dec_t *d, uint32_t i)
{
    const s_tok_t *t = &d->tok[i];
    return t->type == S_T_MAP || t->type == S_T_ARRAY ? t->end : i + 1;
}

/* Packs the value at token i; returns the index after it, or S_NONE if the
 * packer failed. Recursion is bounded by S_MSGPACK_DEPTH. */
static uint32_t s_pack(const s_dec_t *d, uint32_t i, msgpack_packer *pk)
{
    const s_tok_t *t = &d->tok[i];
    int rc = 0;
    switch (t->type) {
    case S_T_NIL: rc = msgpack_pack_nil(pk); break;
    case S_T_TRUE: rc = msgpack_pack_true(pk); break;
    case S_T_FALSE: rc = msgpack_pack_false(pk); break;
    case S_T_I64: rc = msgpack_pack_int64(pk, t->v.i); break;
    case S_T_U64: rc = msgpack_pack_uint64(pk, t->v.u); break;
    case S_T_F64: rc = msgpack_pack_double(pk, t->v.d); break;
    case S_T_STR:
    case S_T_KEY:
        rc = msgpack_pack_str_with_body(pk, s_tok_bytes(d, t), t->n);
        break;
    case S_T_ARRAY: {
        if (msgpack_pack_array(pk, t->n) < 0)
            return S_NONE;
        uint32_t j = i + 1;
        while (j < t->end)
            if ((j = s_pack(d, j, pk)) == S_NONE)
                return S_NONE;
        return t->end;
    }
    case S_T_MAP: {
        if (msgpack_pack_map(pk, t->n) < 0)
            return S_NONE;
        for (uint32_t j = i + 1; j < t->end;) {
            const s_tok_t *k = &d->tok[j];
            uint32_t after = s_skip(d, j + 1);
            if (!k->dead && (s_pack(d, j, pk) == S_NONE ||
                             s_pack(d, k->end ? k->end : j + 1, pk) == S_NONE))
                return S_NONE;
            j = after;
        }
        return t->end;
    }
    }
    return rc < 0 ? S_NONE : i + 1;
}

/* ---- entry point --------------------------------------------------------- */

/* "line L column C" of the character just before off: lines counted from
 * 1 by '\n', columns in characters (UTF-8 lead bytes), as editors do. */
static void s_set_err(char *err, size_t errlen, const char *text, size_t off,
                      const char *why)
{
    if (!err || !errlen)
        return;
    unsigned long line = 1, col = 0;
    for (size_t i = 0; i < off; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c == '\n') {
            line++;
            col = 0;
        } else if ((c & 0xc0) != 0x80) {
            col++;
        }
    }
    snprintf(err, errlen, "line %lu column %lu: %s", line, col, why);
}

SL_API int sl_json_decode(const char *text, size_t len, msgpack_packer *pk,
                          char *err, size_t errlen)
{
    s_dec_t *d = s_dec_get();
    if (!d)
        return -ENOMEM;
    if (!text)
        text = "";
    d->text = text;
    d->len = len;
    d->ntok = d->nbytes = d->nkeys = 0;
    d->depth = 0;
    d->finishing = 0;
    d->rc = 0;
    d->arena_used = 0;
    d->slot_used = 0;
    if (++d->gen == 0) { /* wrapped: stale slots could look current */
        if (d->slot)
            memset(d->slot, 0, d->slot_cap * sizeof(*d->slot));
        d->gen = 1;
    }

    yajl_alloc_funcs afs = {s_amalloc, s_arealloc, s_afree, d};
    d->h = yajl_alloc(&s_callbacks, &afs, d);
    if (!d->h)
        return -ENOMEM;
    yajl_status st = yajl_parse(d->h, (const unsigned char *)text, len);
    if (st == yajl_status_ok) {
        d->finishing = 1;
        st = yajl_complete_parse(d->h);
    }
    int rc = 0;
    if (st == yajl_status_client_canceled) {
        rc = d->rc;
        if (rc == -EBADMSG)
            s_set_err(err, errlen, text, d->err_off, d->why);
    } else if (st != yajl_status_ok) {
        rc = -EBADMSG;
        size_t off = s_here(d);
        unsigned char *msg = yajl_get_error(d->h, 0, NULL, 0);
        if (msg) {
            /* "parse error: premature EOF\n": one line, no final dot. */
            size_t n = strcspn((char *)msg, "\n");
            while (n && msg[n - 1] == '.')
                n--;
            msg[n] = '\0';
        }
        s_set_err(err, errlen, text, off, msg ? (char *)msg : "syntax error");
        if (msg)
            yajl_free_error(d->h, msg);
    }
    yajl_free(d->h);
    d->h = NULL;
    if (rc < 0)
        return rc;
    return s_pack(d, 0, pk) == S_NONE ? -ENOMEM : 0;
}
