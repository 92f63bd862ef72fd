/*
 * checksum_sink: a test-only sink that summarises what reached it, so that
 * integration tests can check delivery (nothing lost, nothing duplicated)
 * and per-key ordering without storing the records.
 *
 * Config:
 *   path       string, required. The file the summary is appended to
 *              (relative to the topology's folder; created if missing,
 *              never truncated).
 *   order_by   list of field names (dotted paths allowed), optional. Their
 *              values together form a key; needs seq_field.
 *   seq_field  field name, optional. An integer that must strictly increase
 *              per key (per worker); without order_by all the worker's
 *              records form one key.
 *   track_ids  boolean, default false. Also remember every envelope id the
 *              worker saw, to tell records delivered twice from distinct
 *              ones (a table of 8-byte slots kept at most half full: 16
 *              to 32 bytes per distinct id).
 *
 * Each worker counts its records, the wrapping sum and the xor of their
 * envelope ids, and order violations: a record whose seq is not greater
 * than the last seq seen for its key (the last one is kept, so one record
 * out of place counts once), or whose seq field is missing or not an
 * integer. Keys are told apart by a 64-bit hash of the key fields' msgpack
 * values (a missing field packs as nil), in an open-addressing table that
 * grows as needed.
 *
 * At fini each worker appends exactly one line with a single write(2) on an
 * O_APPEND descriptor, so lines from parallel workers never interleave:
 *
 *   count=<n> sum=<u64> xor=<u64> violations=<n> keys=<n>
 *
 * keys is the number of distinct keys seen (0 without seq_field). A test
 * adds count and sum (mod 2^64) and xors xor over the lines.
 *
 * With track_ids the line goes on (so parsers of the first five fields
 * still work):
 *
 *   ... keys=<n> distinct=<n> dups=<n> dsum=<u64> dxor=<u64>
 *
 * distinct counts different ids, dups = count - distinct (deliveries of an
 * id already seen), and dsum/dxor are the sum and xor over the distinct
 * ids only, so that a test can check the exact set of ids that arrived at
 * least once even when some arrived twice. Ids are per worker: a duplicate
 * that reaches another worker is not seen as one.
 */
#include <sluice/stage.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct ck_opts {
    char *path;
    const char **order_by; /* strings owned by the config tree */
    size_t n_order;
    const char *seq_field;
    int track_ids;
} ck_opts_t;

/* A seq as a total order over msgpack integers: negatives (two's
 * complement, which sorts right among themselves) before non-negatives. */
typedef struct ck_seq {
    int nonneg;
    uint64_t v;
} ck_seq_t;

typedef struct ck_slot {
    uint64_t hash;
    ck_seq_t last;
    int used;
} ck_slot_t;

typedef struct ck_state {
    ck_opts_t o;
    int fd;
    uint64_t count, sum, xor, violations;
    ck_slot_t *slots;
    size_t cap, used; /* cap is a power of two */
    msgpack_sbuffer key;
    msgpack_packer pk;
    /* track_ids: an open-addressing set; 0 marks a free slot, so id 0 is
     * kept aside in has_zero */
    uint64_t *ids;
    size_t ids_cap, ids_used; /* ids_cap is a power of two */
    int has_zero;
    uint64_t distinct, dsum, dxor;
} ck_state_t;

static const char *const s_keys[] = {"path", "order_by", "seq_field",
                                     "track_ids", NULL};

static void ck_opts_free(ck_opts_t *o)
{
    free(o->path);
    free(o->order_by);
    memset(o, 0, sizeof(*o));
}

/* Shared by validate and init; reports every problem it finds. */
static int ck_parse(const sl_config_t *cfg, ck_opts_t *o)
{
    int bad = 0;
    memset(o, 0, sizeof(*o));
    if (sl_config_get_path(cfg, "path", NULL, &o->path) != 0)
        bad = 1;
    else if (!o->path)
        bad = sl_config_error(cfg, "'path' is required: the file to append "
                                   "the summary to");
    if (sl_config_get_str(cfg, "seq_field", NULL, &o->seq_field) != 0)
        bad = 1;
    else if (o->seq_field && !o->seq_field[0])
        bad = sl_config_error(sl_config_get(cfg, "seq_field"),
                              "'seq_field' must be a field name, not empty");
    const sl_config_t *ti = sl_config_get(cfg, "track_ids");
    if (ti && sl_config_bool(ti, &o->track_ids) != 0)
        bad = sl_config_error(ti, "'track_ids' must be true or false");

    const sl_config_t *ob = sl_config_get(cfg, "order_by");
    if (ob && sl_config_type(ob) != SL_CONFIG_SEQ) {
        bad = sl_config_error(ob, "'order_by' must be a list of field names");
    } else if (ob) {
        size_t n = sl_config_len(ob);
        o->order_by = calloc(n ? n : 1, sizeof(*o->order_by));
        if (!o->order_by) {
            ck_opts_free(o);
            return -ENOMEM;
        }
        for (size_t i = 0; i < n; i++) {
            const sl_config_t *f = sl_config_at(ob, i);
            const char *s = sl_config_str(f);
            if (sl_config_type(f) != SL_CONFIG_STRING || !s || !s[0])
                bad = sl_config_error(f, "order_by[%zu] must be a field name",
                                      i);
            else
                o->order_by[o->n_order++] = s;
        }
        if (!o->seq_field)
            bad = sl_config_error(ob, "'order_by' needs 'seq_field': the key "
                                      "only groups the sequence check");
    }
    if (bad) {
        ck_opts_free(o);
        return -EINVAL;
    }
    return 0;
}

static int ck_validate(const sl_config_t *cfg)
{
    ck_opts_t o;
    int rc = ck_parse(cfg, &o);
    if (rc == 0)
        ck_opts_free(&o);
    return rc;
}

static int ck_init(sl_ctx_t *ctx, const sl_config_t *cfg, void **state)
{
    (void)ctx;
    ck_state_t *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->fd = -1;
    msgpack_sbuffer_init(&s->key);
    msgpack_packer_init(&s->pk, &s->key, msgpack_sbuffer_write);
    int rc = ck_parse(cfg, &s->o);
    if (rc != 0)
        goto fail;
    if (s->o.seq_field) {
        s->cap = 64;
        s->slots = calloc(s->cap, sizeof(*s->slots));
        if (!s->slots) {
            rc = -ENOMEM;
            goto fail;
        }
    }
    if (s->o.track_ids) {
        s->ids_cap = 1024;
        s->ids = calloc(s->ids_cap, sizeof(*s->ids));
        if (!s->ids) {
            rc = -ENOMEM;
            goto fail;
        }
    }
    s->fd = open(s->o.path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (s->fd < 0) {
        rc = sl_config_error(sl_config_get(cfg, "path"), "cannot open '%s': %s",
                             s->o.path, strerror(errno));
        goto fail;
    }
    *state = s;
    return 0;
fail:
    free(s->ids);
    free(s->slots);
    msgpack_sbuffer_destroy(&s->key);
    ck_opts_free(&s->o);
    free(s);
    return rc;
}

/* The 64-bit finaliser of MurmurHash3, so that the low bits used for a
 * table index depend on every bit (ids differ mostly in their low bits). */
static uint64_t ck_mix(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

/* 64-bit FNV-1a, then the final avalanche. */
static uint64_t ck_hash(const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return ck_mix(h);
}

static int ck_grow(ck_state_t *s)
{
    size_t cap = s->cap * 2;
    ck_slot_t *slots = calloc(cap, sizeof(*slots));
    if (!slots)
        return -ENOMEM;
    for (size_t i = 0; i < s->cap; i++) {
        if (!s->slots[i].used)
            continue;
        size_t j = (size_t)s->slots[i].hash & (cap - 1);
        while (slots[j].used)
            j = (j + 1) & (cap - 1);
        slots[j] = s->slots[i];
    }
    free(s->slots);
    s->slots = slots;
    s->cap = cap;
    return 0;
}

/* The slot for hash, claimed if new (*fresh = 1); NULL on -ENOMEM. */
static ck_slot_t *ck_lookup(ck_state_t *s, uint64_t hash, int *fresh)
{
    /* Grow at half full: linear probing stays short. */
    if ((s->used + 1) * 2 > s->cap && ck_grow(s) != 0)
        return NULL;
    size_t j = (size_t)hash & (s->cap - 1);
    while (s->slots[j].used) {
        if (s->slots[j].hash == hash) {
            *fresh = 0;
            return &s->slots[j];
        }
        j = (j + 1) & (s->cap - 1);
    }
    s->slots[j].used = 1;
    s->slots[j].hash = hash;
    s->used++;
    *fresh = 1;
    return &s->slots[j];
}

static int ck_ids_grow(ck_state_t *s)
{
    size_t cap = s->ids_cap * 2;
    uint64_t *ids = calloc(cap, sizeof(*ids));
    if (!ids)
        return -ENOMEM;
    for (size_t i = 0; i < s->ids_cap; i++) {
        if (!s->ids[i])
            continue;
        size_t j = (size_t)ck_mix(s->ids[i]) & (cap - 1);
        while (ids[j])
            j = (j + 1) & (cap - 1);
        ids[j] = s->ids[i];
    }
    free(s->ids);
    s->ids = ids;
    s->ids_cap = cap;
    return 0;
}

/* Adds id to the set: 1 if it is new, 0 if seen before, -ENOMEM. */
static int ck_ids_add(ck_state_t *s, uint64_t id)
{
    if (id == 0) {
        int fresh = !s->has_zero;
        s->has_zero = 1;
        return fresh;
    }
    if ((s->ids_used + 1) * 2 > s->ids_cap && ck_ids_grow(s) != 0)
        return -ENOMEM;
    size_t j = (size_t)ck_mix(id) & (s->ids_cap - 1);
    while (s->ids[j]) {
        if (s->ids[j] == id)
            return 0;
        j = (j + 1) & (s->ids_cap - 1);
    }
    s->ids[j] = id;
    s->ids_used++;
    return 1;
}

static int ck_seq_of(const msgpack_object *o, ck_seq_t *out)
{
    if (!o)
        return -ENOENT;
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        out->nonneg = 1;
        out->v = o->via.u64;
        return 0;
    }
    if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        out->nonneg = 0;
        out->v = (uint64_t)o->via.i64;
        return 0;
    }
    return -EINVAL;
}

static int ck_after(ck_seq_t a, ck_seq_t b)
{
    return a.nonneg != b.nonneg ? a.nonneg > b.nonneg : a.v > b.v;
}

static int ck_process(void *arg, sl_ctx_t *ctx, sl_record_t *rec)
{
    ck_state_t *s = arg;
    uint64_t id = sl_record_id(rec);
    if (s->o.track_ids) {
        int fresh = ck_ids_add(s, id);
        if (fresh < 0)
            return sl_ctx_error(ctx, "checksum_sink: out of memory for ids");
        if (fresh) {
            s->distinct++;
            s->dsum += id;
            s->dxor ^= id;
        }
    }
    s->count++;
    s->sum += id;
    s->xor ^= id;
    if (!s->o.seq_field)
        return 0;

    const msgpack_object *map;
    ck_seq_t seq;
    if (sl_record_map(rec, &map) != 0 ||
        ck_seq_of(sl_map_get(map, s->o.seq_field), &seq) != 0) {
        s->violations++;
        return 0;
    }
    s->key.size = 0;
    for (size_t i = 0; i < s->o.n_order; i++) {
        const msgpack_object *v = sl_map_get(map, s->o.order_by[i]);
        if (v)
            msgpack_pack_object(&s->pk, *v);
        else
            msgpack_pack_nil(&s->pk);
    }
    int fresh;
    ck_slot_t *slot = ck_lookup(s, ck_hash(s->key.data, s->key.size), &fresh);
    if (!slot)
        return sl_ctx_error(ctx, "checksum_sink: out of memory for keys");
    if (!fresh && !ck_after(seq, slot->last))
        s->violations++;
    slot->last = seq;
    return 0;
}

static void ck_fini(void *arg)
{
    ck_state_t *s = arg;
    if (!s)
        return;
    char line[320];
    int n = snprintf(line, sizeof(line),
                     "count=%" PRIu64 " sum=%" PRIu64 " xor=%" PRIu64
                     " violations=%" PRIu64 " keys=%zu",
                     s->count, s->sum, s->xor, s->violations, s->used);
    if (s->o.track_ids)
        n += snprintf(line + n, sizeof(line) - (size_t)n,
                      " distinct=%" PRIu64 " dups=%" PRIu64 " dsum=%" PRIu64
                      " dxor=%" PRIu64,
                      s->distinct, s->count - s->distinct, s->dsum, s->dxor);
    n += snprintf(line + n, sizeof(line) - (size_t)n, "\n");
    ssize_t w;
    do
        w = write(s->fd, line, (size_t)n);
    while (w < 0 && errno == EINTR);
    if (w != n)
        sl_log(NULL, SL_LOG_ERROR, "checksum_sink: writing '%s' failed: %s",
               s->o.path, w < 0 ? strerror(errno) : "short write");
    close(s->fd);
    free(s->ids);
    free(s->slots);
    msgpack_sbuffer_destroy(&s->key);
    ck_opts_free(&s->o);
    free(s);
}

SL_STAGE_DEFINE(.name = "checksum_sink",
                .summary = "test: appends count/sum/xor of ids, order "
                           "violations and (track_ids) duplicates per worker",
                .kind = SL_STAGE_SINK, .config_keys = s_keys,
                .validate = ck_validate, .init = ck_init,
                .process = ck_process, .fini = ck_fini);
