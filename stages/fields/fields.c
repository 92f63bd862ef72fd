/*
 * fields: reshapes records: cast, rename, drop, select, set, in that order
 * (docs/stages/fields.md says why).
 *
 * The record is edited copy-on-write: a map's kv array is copied into the
 * record zone the first time an operation changes it, and the edited tree
 * is packed straight into the output. Maps nobody touches are packed from
 * the decoded input as they are. A per-worker table remembers which arrays
 * are already copies (and their capacity, for `set` appends); it grows
 * only when a record touches more maps than any record before it, so the
 * steady state allocates nothing outside the zone.
 */
#include "fields_cast.h"
#include "fields_plan.h"
#include "record_map.h"

#include <sluice/stage.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef struct owned {
    const msgpack_object_kv *kv;
    uint32_t cap;
} owned_t;

/* Where phase one of a rename group found its entry. */
typedef struct hit {
    msgpack_object *parent; /* NULL: the field was missing */
    uint32_t idx;
} hit_t;

typedef struct fields {
    fields_plan_t plan;
    owned_t *owned; /* per record: reset, then filled */
    size_t nowned, capowned;
    hit_t *hits;        /* one per rename */
    msgpack_zone *zone; /* the current record's zone */
} fields_t;

static const char *const s_keys[] = {"select", "rename", "set", "drop",
                                     "cast",   "strict", NULL};

/* ---- tree editing ------------------------------------------------------ */

static int key_is(const msgpack_object *k, const fseg_t *seg)
{
    return k->type == MSGPACK_OBJECT_STR && k->via.str.size == seg->len &&
           !memcmp(k->via.str.ptr, seg->ptr, seg->len);
}

static long find(const msgpack_object *map, const fseg_t *seg)
{
    for (uint32_t i = 0; i < map->via.map.size; i++)
        if (key_is(&map->via.map.ptr[i].key, seg))
            return (long)i;
    return -1;
}

/* Read-only lookup of the first n segments: NULL if a step is missing or
 * not a map. Checked before any copying so that absent fields cost none. */
static const msgpack_object *lookup(const msgpack_object *root,
                                    const fpath_t *p, size_t n)
{
    const msgpack_object *cur = root;
    for (size_t k = 0; k < n; k++) {
        if (cur->type != MSGPACK_OBJECT_MAP)
            return NULL;
        long i = find(cur, &p->segs[k]);
        if (i < 0)
            return NULL;
        cur = &cur->via.map.ptr[i].val;
    }
    return cur;
}

static owned_t *owned_find(fields_t *f, const msgpack_object_kv *kv)
{
    for (size_t i = 0; i < f->nowned; i++)
        if (f->owned[i].kv == kv)
            return &f->owned[i];
    return NULL;
}

static int owned_add(fields_t *f, const msgpack_object_kv *kv, uint32_t cap)
{
    if (f->nowned == f->capowned) {
        size_t n = f->capowned ? 2 * f->capowned : 16;
        owned_t *o = realloc(f->owned, n * sizeof *o);
        if (!o)
            return -ENOMEM;
        f->owned = o;
        f->capowned = n;
    }
    f->owned[f->nowned++] = (owned_t){kv, cap};
    return 0;
}

/* Makes map's kv array a private copy with room for every `set` append;
 * returns the table entry. Copies at most once per record and map. */
static owned_t *mut_map(fields_t *f, msgpack_object *map)
{
    owned_t *o = owned_find(f, map->via.map.ptr);
    if (o)
        return o;
    uint32_t n = map->via.map.size;
    uint32_t cap = n + (uint32_t)f->plan.nsets;
    msgpack_object_kv *kv =
        msgpack_zone_malloc(f->zone, cap ? cap * sizeof *kv : 1);
    if (!kv)
        return NULL;
    if (n)
        memcpy(kv, map->via.map.ptr, n * sizeof *kv);
    map->via.map.ptr = kv;
    if (owned_add(f, kv, cap) < 0)
        return NULL;
    return &f->owned[f->nowned - 1];
}

/* The map at the first n segments of p, made writable along the way; NULL
 * with *rc = 0 if missing, or *rc < 0 on allocation failure. */
static msgpack_object *walk_mut(fields_t *f, msgpack_object *root,
                                const fpath_t *p, size_t n, int *rc)
{
    msgpack_object *cur = root;
    *rc = 0;
    for (size_t k = 0;; k++) {
        if (cur->type != MSGPACK_OBJECT_MAP)
            return NULL;
        if (!mut_map(f, cur)) {
            *rc = -ENOMEM;
            return NULL;
        }
        if (k == n)
            return cur;
        long i = find(cur, &p->segs[k]);
        if (i < 0)
            return NULL;
        cur = &cur->via.map.ptr[i].val;
    }
}

/* Removes every entry with this key from a writable map. */
static void remove_key(msgpack_object *map, const fseg_t *seg)
{
    msgpack_object_kv *kv = map->via.map.ptr;
    uint32_t o = 0;
    for (uint32_t i = 0; i < map->via.map.size; i++)
        if (!key_is(&kv[i].key, seg))
            kv[o++] = kv[i];
    map->via.map.size = o;
}

/* ---- operations ---------------------------------------------------------- */

static int missing(fields_t *f, sl_ctx_t *ctx, const char *op, const fpath_t *p)
{
    if (!f->plan.strict)
        return 0;
    return sl_ctx_fail(ctx, "%s %s: field is missing (strict)", op, p->text);
}

static int do_casts(fields_t *f, sl_ctx_t *ctx, msgpack_object *root)
{
    for (size_t i = 0; i < f->plan.ncasts; i++) {
        const fcast_t *c = &f->plan.casts[i];
        const fpath_t *p = &c->path;
        const msgpack_object *v = lookup(root, p, p->nseg);
        if (!v) {
            int rc = missing(f, ctx, "cast", p);
            if (rc < 0)
                return rc;
            continue;
        }
        msgpack_object out;
        char why[160];
        int rc = fields_cast(f->zone, v, c->type, &out, why, sizeof why);
        if (rc == -EINVAL)
            return sl_ctx_fail(ctx, "cast %s to %s: %s", p->text,
                               fields_type_name(c->type), why);
        if (rc < 0)
            return sl_ctx_error(ctx, "cast %s: out of memory", p->text);
        msgpack_object *parent = walk_mut(f, root, p, p->nseg - 1, &rc);
        if (!parent)
            return sl_ctx_error(ctx, "cast %s: out of memory", p->text);
        parent->via.map.ptr[find(parent, &p->segs[p->nseg - 1])].val = out;
    }
    return 0;
}

/* Renames at one depth are simultaneous (so {a: b, b: a} swaps): all are
 * located first, then all keys change, then any older field that a new
 * name shadows is removed. A renamed key points at the plan's own copy of
 * the new name, which no input key can, and that tells the two apart. */
static int rename_group(fields_t *f, sl_ctx_t *ctx, msgpack_object *root,
                        size_t from, size_t to)
{
    const frename_t *r = f->plan.renames;
    for (size_t i = from; i < to; i++) {
        const fpath_t *p = &r[i].from;
        f->hits[i].parent = NULL;
        if (!lookup(root, p, p->nseg)) {
            int rc = missing(f, ctx, "rename", p);
            if (rc < 0)
                return rc;
            continue;
        }
        int rc;
        msgpack_object *parent = walk_mut(f, root, p, p->nseg - 1, &rc);
        if (!parent)
            return sl_ctx_error(ctx, "rename %s: out of memory", p->text);
        f->hits[i].parent = parent;
        f->hits[i].idx = (uint32_t)find(parent, &p->segs[p->nseg - 1]);
    }
    for (size_t i = from; i < to; i++) {
        if (!f->hits[i].parent)
            continue;
        msgpack_object *key =
            &f->hits[i].parent->via.map.ptr[f->hits[i].idx].key;
        key->via.str.ptr = r[i].to.ptr;
        key->via.str.size = (uint32_t)r[i].to.len;
    }
    for (size_t i = from; i < to; i++) {
        msgpack_object *parent = f->hits[i].parent;
        if (!parent)
            continue;
        msgpack_object_kv *kv = parent->via.map.ptr;
        uint32_t o = 0;
        for (uint32_t j = 0; j < parent->via.map.size; j++)
            if (!key_is(&kv[j].key, &r[i].to) ||
                kv[j].key.via.str.ptr == r[i].to.ptr)
                kv[o++] = kv[j];
        parent->via.map.size = o;
    }
    return 0;
}

static int do_renames(fields_t *f, sl_ctx_t *ctx, msgpack_object *root)
{
    const frename_t *r = f->plan.renames;
    for (size_t i = 0; i < f->plan.nrenames;) {
        size_t j = i + 1;
        while (j < f->plan.nrenames && r[j].from.nseg == r[i].from.nseg)
            j++;
        int rc = rename_group(f, ctx, root, i, j);
        if (rc < 0)
            return rc;
        i = j;
    }
    return 0;
}

static int do_drops(fields_t *f, sl_ctx_t *ctx, msgpack_object *root)
{
    for (size_t i = 0; i < f->plan.ndrops; i++) {
        const fpath_t *p = &f->plan.drops[i];
        if (!lookup(root, p, p->nseg)) {
            int rc = missing(f, ctx, "drop", p);
            if (rc < 0)
                return rc;
            continue;
        }
        int rc;
        msgpack_object *parent = walk_mut(f, root, p, p->nseg - 1, &rc);
        if (!parent)
            return sl_ctx_error(ctx, "drop %s: out of memory", p->text);
        remove_key(parent, &p->segs[p->nseg - 1]);
    }
    return 0;
}

static const fsel_t *sel_find(const fsel_t *node, const msgpack_object *key)
{
    if (key->type != MSGPACK_OBJECT_STR)
        return NULL;
    for (size_t i = 0; i < node->nkids; i++) {
        const fseg_t *s = &node->kids[i].key;
        if (key_is(key, s))
            return &node->kids[i];
    }
    return NULL;
}

/* Keeps the entries the trie names; a partly selected map is kept only if
 * something under it survives, so a missing path leaves no empty shell. */
static int select_map(fields_t *f, msgpack_object *map, const fsel_t *node)
{
    if (!mut_map(f, map))
        return -ENOMEM;
    msgpack_object_kv *kv = map->via.map.ptr;
    uint32_t o = 0;
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const fsel_t *k = sel_find(node, &kv[i].key);
        if (!k)
            continue;
        if (!k->whole) {
            if (kv[i].val.type != MSGPACK_OBJECT_MAP)
                continue;
            int rc = select_map(f, &kv[i].val, k);
            if (rc < 0)
                return rc;
            if (kv[i].val.via.map.size == 0)
                continue;
        }
        kv[o++] = kv[i];
    }
    map->via.map.size = o;
    return 0;
}

static int append(fields_t *f, msgpack_object *map, const fseg_t *key,
                  const msgpack_object *val)
{
    owned_t *o = owned_find(f, map->via.map.ptr);
    if (!o || map->via.map.size >= o->cap)
        return -ENOSPC; /* cannot happen: capacity covers every set */
    msgpack_object_kv *kv = &map->via.map.ptr[map->via.map.size++];
    kv->key.type = MSGPACK_OBJECT_STR;
    kv->key.via.str.ptr = key->ptr;
    kv->key.via.str.size = (uint32_t)key->len;
    kv->val = *val;
    return 0;
}

/* Sets one path, creating missing maps on the way. A non-map in the way
 * fails the record rather than being silently replaced. */
static int set_one(fields_t *f, sl_ctx_t *ctx, msgpack_object *root,
                   const fset_t *s)
{
    const fpath_t *p = &s->path;
    msgpack_object *cur = root;
    for (size_t k = 0; k < p->nseg; k++) {
        if (!mut_map(f, cur))
            return sl_ctx_error(ctx, "set %s: out of memory", p->text);
        long i = find(cur, &p->segs[k]);
        if (k + 1 == p->nseg) {
            if (i >= 0)
                cur->via.map.ptr[i].val = s->value;
            else if (append(f, cur, &p->segs[k], &s->value) < 0)
                return sl_ctx_fail(ctx, "set %s: no room", p->text);
            return 0;
        }
        if (i < 0) {
            msgpack_object empty = {.type = MSGPACK_OBJECT_MAP};
            empty.via.map.ptr = msgpack_zone_malloc(
                f->zone, sizeof(msgpack_object_kv) * f->plan.nsets);
            if (!empty.via.map.ptr ||
                owned_add(f, empty.via.map.ptr, (uint32_t)f->plan.nsets) < 0)
                return sl_ctx_error(ctx, "set %s: out of memory", p->text);
            if (append(f, cur, &p->segs[k], &empty) < 0)
                return sl_ctx_fail(ctx, "set %s: no room", p->text);
            i = (long)cur->via.map.size - 1;
        }
        cur = &cur->via.map.ptr[i].val;
        if (cur->type != MSGPACK_OBJECT_MAP) {
            char v[64];
            fields_describe(cur, v, sizeof v);
            return sl_ctx_fail(ctx, "set %s: '%.*s' is %s, not a map", p->text,
                               (int)p->segs[k].len, p->segs[k].ptr, v);
        }
    }
    return 0;
}

static int do_sets(fields_t *f, sl_ctx_t *ctx, msgpack_object *root)
{
    for (size_t i = 0; i < f->plan.nsets; i++) {
        int rc = set_one(f, ctx, root, &f->plan.sets[i]);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* ---- stage --------------------------------------------------------------- */

static int fields_validate(const sl_config_t *cfg)
{
    return fields_plan_parse(cfg, NULL);
}

static int fields_init(sl_ctx_t *ctx, const sl_config_t *cfg, void **state)
{
    (void)ctx;
    fields_t *f = calloc(1, sizeof *f);
    if (!f)
        return -ENOMEM;
    int rc = fields_plan_parse(cfg, &f->plan);
    if (rc < 0)
        goto fail;
    rc = -ENOMEM;
    f->hits = calloc(f->plan.nrenames ? f->plan.nrenames : 1, sizeof *f->hits);
    if (!f->hits)
        goto fail_plan;
    *state = f;
    return 0;
fail_plan:
    fields_plan_fini(&f->plan);
fail:
    free(f);
    return rc;
}

static int fields_process(void *state, sl_ctx_t *ctx, sl_record_t *rec)
{
    fields_t *f = state;
    const msgpack_object *in;
    int rc = stage_record_map(ctx, rec, &in);
    if (rc < 0)
        return rc;
    f->zone = sl_record_zone(rec);
    f->nowned = 0;
    msgpack_object root = *in;
    if (!mut_map(f, &root))
        return sl_ctx_error(ctx, "out of memory");
    rc = do_casts(f, ctx, &root);
    if (rc == 0)
        rc = do_renames(f, ctx, &root);
    if (rc == 0)
        rc = do_drops(f, ctx, &root);
    if (rc == 0 && f->plan.select)
        rc = select_map(f, &root, f->plan.select) < 0
                 ? sl_ctx_error(ctx, "select: out of memory")
                 : 0;
    if (rc == 0)
        rc = do_sets(f, ctx, &root);
    if (rc < 0)
        return rc;
    msgpack_packer *pk = sl_emit_begin(ctx);
    if (!pk)
        return sl_ctx_error(ctx, "cannot emit");
    if (msgpack_pack_object(pk, root) < 0)
        return sl_ctx_error(ctx, "out of memory packing the record");
    return sl_emit_commit(ctx);
}

static void fields_fini(void *state)
{
    fields_t *f = state;
    if (!f)
        return;
    fields_plan_fini(&f->plan);
    free(f->owned);
    free(f->hits);
    free(f);
}

SL_STAGE_DEFINE(.name = "fields",
                .summary = "cast, rename, drop, select and set record fields",
                .kind = SL_STAGE_TRANSFORM, .config_keys = s_keys,
                .validate = fields_validate, .init = fields_init,
                .process = fields_process, .fini = fields_fini);
