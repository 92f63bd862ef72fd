/*
 * generator: a source of synthetic records, for tests and benchmarks.
 *
 * The record layout is compiled at init into a short program: runs of
 * pre-packed msgpack bytes (keys, constant values) and a few dynamic
 * values (sequence number, timestamp, derived fields). Rendering a record
 * is a memcpy per run plus a handful of integer encodes into a per-worker
 * scratch buffer, handed to the host in one copy: no allocation and no
 * printf per record.
 *
 * With `rate`, record i is due at t0 + i/rate on the monotonic clock, so
 * the long-run rate is exact however late individual calls run; a call
 * sleeps at most GEN_MAX_SLEEP_NS so that shutdown stays prompt.
 */
#include <sluice/stage.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define GEN_MAX_SLEEP_NS 50000000u /* 50 ms */
#define GEN_MAX_FIELDS 1000
#define GEN_MAX_SIZE (16 * 1024 * 1024)
#define GEN_MAX_DEPTH 32
#define GEN_MSG "the quick brown fox jumps over" /* 30 bytes */

typedef enum gen_op_kind {
    OP_LIT,     /* copy pre-packed bytes */
    OP_SEQ,     /* uint: the sequence number */
    OP_TS,      /* uint: wall clock, ns since the epoch */
    OP_USER,    /* str: "user-<seq % 1000>" */
    OP_AMOUNT,  /* float64: ((seq * 7919) % 100000) / 100 */
    OP_COUNTRY, /* str: s_countries[seq % 8] */
    OP_FIELD,   /* uint: seq + arg */
    OP_KEY,     /* str: "k<seq % keys>" */
} gen_op_kind_t;

typedef struct gen_op {
    gen_op_kind_t kind;
    size_t off, len; /* OP_LIT: a slice of the literal blob */
    uint64_t arg;    /* OP_FIELD: the offset added to seq */
} gen_op_t;

typedef struct gen_opts {
    uint64_t count;
    uint64_t start;
    double rate; /* records/s; 0 = unpaced */
    uint64_t keys;
    uint64_t fields;
    uint64_t size;
    const sl_config_t *tmpl; /* NULL: the built-in record */
} gen_opts_t;

typedef struct gen_prog {
    gen_op_t *ops;
    size_t nops, capops;
    msgpack_sbuffer lit;
    msgpack_packer pk; /* packs into lit */
    size_t lit_mark;   /* start of the literal run not yet closed */
    size_t max_len;    /* upper bound of one rendered record */
    int has_ts;
} gen_prog_t;

typedef struct gen_state {
    gen_opts_t o;
    gen_prog_t prog;
    uint8_t *scratch; /* prog.max_len bytes */
    uint64_t done;    /* records emitted */
    uint64_t t0;      /* monotonic ns of the first pull when paced */
} gen_state_t;

static const char *const s_keys[] = {"count",  "rate", "start", "template",
                                     "fields", "size", "keys",  NULL};

static const char s_countries[8][3] = {"US", "DE", "FR", "GB",
                                       "JP", "BR", "IN", "CA"};

static const char *s_text(const sl_config_t *n)
{
    const char *s = sl_config_str(n);
    return s ? s : "a sequence or map";
}

/* ---- msgpack encoding of the dynamic values ----------------------------- */

static inline uint8_t *s_be(uint8_t *p, uint64_t v, unsigned bytes)
{
    for (unsigned i = bytes; i-- > 0; v >>= 8)
        p[i] = (uint8_t)v;
    return p + bytes;
}

static inline uint8_t *s_mp_uint(uint8_t *p, uint64_t v)
{
    if (v < 128) {
        *p++ = (uint8_t)v;
        return p;
    }
    if (v <= 0xff) {
        *p++ = 0xcc;
        return s_be(p, v, 1);
    }
    if (v <= 0xffff) {
        *p++ = 0xcd;
        return s_be(p, v, 2);
    }
    if (v <= 0xffffffffu) {
        *p++ = 0xce;
        return s_be(p, v, 4);
    }
    *p++ = 0xcf;
    return s_be(p, v, 8);
}

static inline uint8_t *s_mp_f64(uint8_t *p, double d)
{
    uint64_t bits;

    memcpy(&bits, &d, sizeof(bits));
    *p++ = 0xcb;
    return s_be(p, bits, 8);
}

/* Writes the decimal digits of v ending at end; returns the first. */
static inline char *s_u64(char *end, uint64_t v)
{
    do {
        *--end = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return end;
}

/* A short string (< 32 bytes) made of a prefix and a number. */
static inline uint8_t *s_mp_tagged(uint8_t *p, const char *prefix,
                                   size_t plen, uint64_t v)
{
    char tmp[20];
    char *end = tmp + sizeof(tmp);
    char *d = s_u64(end, v);
    size_t dlen = (size_t)(end - d);

    *p++ = (uint8_t)(0xa0 | (plen + dlen));
    memcpy(p, prefix, plen);
    memcpy(p + plen, d, dlen);
    return p + plen + dlen;
}

/* ---- the record program --------------------------------------------------- */

static void s_prog_free(gen_prog_t *g)
{
    free(g->ops);
    msgpack_sbuffer_destroy(&g->lit);
    memset(g, 0, sizeof(*g));
}

static void s_prog_init(gen_prog_t *g)
{
    memset(g, 0, sizeof(*g));
    msgpack_sbuffer_init(&g->lit);
    msgpack_packer_init(&g->pk, &g->lit, msgpack_sbuffer_write);
}

static int s_op_push(gen_prog_t *g, gen_op_t op)
{
    if (g->nops == g->capops) {
        size_t cap = g->capops ? 2 * g->capops : 16;
        gen_op_t *ops = realloc(g->ops, cap * sizeof(*ops));
        if (!ops)
            return -ENOMEM;
        g->ops = ops;
        g->capops = cap;
    }
    g->ops[g->nops++] = op;
    return 0;
}

/* Closes the literal run packed since the last dynamic value, if any. */
static int s_lit_close(gen_prog_t *g)
{
    gen_op_t op = {.kind = OP_LIT, .off = g->lit_mark};
    int rc;

    if (g->lit.size == g->lit_mark)
        return 0;
    op.len = g->lit.size - g->lit_mark;
    rc = s_op_push(g, op);
    if (rc == 0)
        g->lit_mark = g->lit.size;
    return rc;
}

/* Appends a dynamic value after the literal bytes packed so far. */
static int s_op_dyn(gen_prog_t *g, gen_op_kind_t kind, uint64_t arg)
{
    static const size_t max_len[] = {
        [OP_SEQ] = 9, [OP_TS] = 9,     [OP_USER] = 9, [OP_AMOUNT] = 9,
        [OP_COUNTRY] = 3, [OP_FIELD] = 9, [OP_KEY] = 22,
    };
    int rc = s_lit_close(g);

    if (rc < 0)
        return rc;
    g->max_len += max_len[kind];
    if (kind == OP_TS)
        g->has_ts = 1;
    return s_op_push(g, (gen_op_t){.kind = kind, .arg = arg});
}

static int s_op_end(gen_prog_t *g)
{
    g->max_len += g->lit.size; /* every literal byte is copied once */
    return s_lit_close(g);
}

static int s_lit_str(gen_prog_t *g, const char *s, size_t n)
{
    return msgpack_pack_str_with_body(&g->pk, s, n) == 0 ? 0 : -ENOMEM;
}

/* Packs a config value as a literal. Errors are reported at the node. */
static int s_lit_node(gen_prog_t *g, const sl_config_t *n, unsigned depth)
{
    int64_t i;
    double d;
    int b;
    int rc = 0;

    if (depth > GEN_MAX_DEPTH)
        return sl_config_error(n, "template nested deeper than %d levels",
                               GEN_MAX_DEPTH);
    switch (sl_config_type(n)) {
    case SL_CONFIG_NULL:
        return msgpack_pack_nil(&g->pk) == 0 ? 0 : -ENOMEM;
    case SL_CONFIG_BOOL:
        if (sl_config_bool(n, &b) < 0)
            return sl_config_error(n, "cannot read '%s' as a boolean",
                                   s_text(n));
        rc = b ? msgpack_pack_true(&g->pk) : msgpack_pack_false(&g->pk);
        return rc == 0 ? 0 : -ENOMEM;
    case SL_CONFIG_INT:
        if (sl_config_int(n, &i) < 0)
            return sl_config_error(n, "integer '%s' does not fit in 64 bits",
                                   s_text(n));
        return msgpack_pack_int64(&g->pk, i) == 0 ? 0 : -ENOMEM;
    case SL_CONFIG_FLOAT:
        if (sl_config_double(n, &d) < 0)
            return sl_config_error(n, "cannot read '%s' as a number",
                                   s_text(n));
        return msgpack_pack_double(&g->pk, d) == 0 ? 0 : -ENOMEM;
    case SL_CONFIG_STRING:
        return s_lit_str(g, sl_config_str(n), strlen(sl_config_str(n)));
    case SL_CONFIG_SEQ:
        if (msgpack_pack_array(&g->pk, sl_config_len(n)) != 0)
            return -ENOMEM;
        for (size_t k = 0; k < sl_config_len(n); k++) {
            int e = s_lit_node(g, sl_config_at(n, k), depth + 1);
            if (e < 0)
                rc = e;
        }
        return rc;
    case SL_CONFIG_MAP:
        if (msgpack_pack_map(&g->pk, sl_config_len(n)) != 0)
            return -ENOMEM;
        for (size_t k = 0; k < sl_config_len(n); k++) {
            const char *key = sl_config_key_at(n, k);
            int e = s_lit_str(g, key, strlen(key));
            if (e == 0)
                e = s_lit_node(g, sl_config_value_at(n, k), depth + 1);
            if (e < 0)
                rc = e;
        }
        return rc;
    }
    return sl_config_error(n, "unsupported value in template");
}

static int s_field_name(char *buf, size_t cap, uint64_t i)
{
    char *end = buf + cap;
    char *d = s_u64(end - 1, i);

    end[-1] = '\0';
    *--d = 'f';
    memmove(buf, d, (size_t)(end - d));
    return (int)(end - d - 1);
}

/* Fails if a template field would repeat a name the options add. */
static int s_check_clash(const gen_opts_t *o, const sl_config_t *tmpl)
{
    int rc = 0;

    for (size_t k = 0; k < sl_config_len(tmpl); k++) {
        const char *key = sl_config_key_at(tmpl, k);
        const sl_config_t *at = sl_config_value_at(tmpl, k);
        char *end;
        unsigned long long fi;

        if (o->keys && !strcmp(key, "key"))
            rc = sl_config_error(at, "template field 'key' clashes with "
                                     "the one that 'keys' adds");
        if (o->size && !strcmp(key, "pad"))
            rc = sl_config_error(at, "template field 'pad' clashes with "
                                     "the one that 'size' adds");
        if (key[0] == 'f' && key[1] >= '1' && key[1] <= '9') {
            fi = strtoull(key + 1, &end, 10);
            if (!*end && fi <= o->fields)
                rc = sl_config_error(at, "template field '%s' clashes with "
                                         "the ones that 'fields' adds", key);
        }
    }
    return rc;
}

/* Compiles the record layout; pad_len < 0 means no padding field. */
static int s_compile(const gen_opts_t *o, long pad_len, gen_prog_t *g)
{
    size_t ntmpl = o->tmpl ? sl_config_len(o->tmpl) : 6;
    size_t entries = ntmpl + (o->keys ? 1 : 0) + o->fields + (pad_len >= 0);
    int rc = 0;

    s_prog_init(g);
    if (msgpack_pack_map(&g->pk, entries) != 0)
        return -ENOMEM;
    if (!o->tmpl) {
        rc = rc ? rc : s_lit_str(g, "seq", 3);
        rc = rc ? rc : s_op_dyn(g, OP_SEQ, 0);
        rc = rc ? rc : s_lit_str(g, "ts", 2);
        rc = rc ? rc : s_op_dyn(g, OP_TS, 0);
        rc = rc ? rc : s_lit_str(g, "user", 4);
        rc = rc ? rc : s_op_dyn(g, OP_USER, 0);
        rc = rc ? rc : s_lit_str(g, "amount", 6);
        rc = rc ? rc : s_op_dyn(g, OP_AMOUNT, 0);
        rc = rc ? rc : s_lit_str(g, "country", 7);
        rc = rc ? rc : s_op_dyn(g, OP_COUNTRY, 0);
        rc = rc ? rc : s_lit_str(g, "msg", 3);
        rc = rc ? rc : s_lit_str(g, GEN_MSG, sizeof(GEN_MSG) - 1);
    } else {
        for (size_t k = 0; k < ntmpl; k++) {
            const char *key = sl_config_key_at(o->tmpl, k);
            const sl_config_t *v = sl_config_value_at(o->tmpl, k);
            const char *s = sl_config_type(v) == SL_CONFIG_STRING
                                ? sl_config_str(v)
                                : NULL;
            int e = s_lit_str(g, key, strlen(key));
            if (e == 0 && s && !strcmp(s, "$seq"))
                e = s_op_dyn(g, OP_SEQ, 0);
            else if (e == 0 && s && !strcmp(s, "$ts"))
                e = s_op_dyn(g, OP_TS, 0);
            else if (e == 0)
                e = s_lit_node(g, v, 1);
            if (e < 0)
                rc = e;
        }
    }
    if (rc == 0 && o->keys) {
        rc = s_lit_str(g, "key", 3);
        rc = rc ? rc : s_op_dyn(g, OP_KEY, 0);
    }
    for (uint64_t i = 1; rc == 0 && i <= o->fields; i++) {
        char name[24];
        rc = s_lit_str(g, name, (size_t)s_field_name(name, sizeof(name), i));
        rc = rc ? rc : s_op_dyn(g, OP_FIELD, i);
    }
    if (rc == 0 && pad_len >= 0) {
        char *pad = malloc((size_t)pad_len + 1);
        if (!pad)
            rc = -ENOMEM;
        for (long i = 0; rc == 0 && i < pad_len; i++)
            pad[i] = (char)('a' + i % 26);
        rc = rc ? rc : s_lit_str(g, "pad", 3);
        rc = rc ? rc : s_lit_str(g, pad, (size_t)pad_len);
        free(pad);
    }
    if (rc == 0)
        rc = s_op_end(g);
    if (rc < 0)
        s_prog_free(g);
    return rc;
}

/* Renders record `seq` into out (at least g->max_len bytes). */
static size_t s_render(const gen_prog_t *g, const gen_opts_t *o,
                       uint64_t seq, uint64_t ts, uint8_t *out)
{
    uint8_t *p = out;

    for (size_t i = 0; i < g->nops; i++) {
        const gen_op_t *op = &g->ops[i];
        switch (op->kind) {
        case OP_LIT:
            memcpy(p, g->lit.data + op->off, op->len);
            p += op->len;
            break;
        case OP_SEQ:
            p = s_mp_uint(p, seq);
            break;
        case OP_TS:
            p = s_mp_uint(p, ts);
            break;
        case OP_USER:
            p = s_mp_tagged(p, "user-", 5, seq % 1000);
            break;
        case OP_AMOUNT:
            p = s_mp_f64(p, (double)((seq * 7919u) % 100000u) / 100.0);
            break;
        case OP_COUNTRY:
            *p++ = 0xa2;
            memcpy(p, s_countries[seq % 8], 2);
            p += 2;
            break;
        case OP_FIELD:
            p = s_mp_uint(p, seq + op->arg);
            break;
        case OP_KEY:
            p = s_mp_tagged(p, "k", 1, seq % o->keys);
            break;
        }
    }
    return (size_t)(p - out);
}

/* ---- config ----------------------------------------------------------------- */

static int s_get_count(const sl_config_t *cfg, const char *key, int64_t dflt,
                       int64_t max, uint64_t *out)
{
    const sl_config_t *n = sl_config_get(cfg, key);
    int64_t v;

    if (sl_config_get_int(cfg, key, dflt, &v) < 0)
        return -EINVAL;
    if (v < 0 || v > max)
        return sl_config_error(n, "'%s' must be between 0 and %lld, got %s",
                               key, (long long)max, s_text(n));
    *out = (uint64_t)v;
    return 0;
}

/* Shared by validate and init; reports every problem it finds. The
 * program is compiled here too, so template errors surface in validate. */
static int gen_parse(const sl_config_t *cfg, gen_opts_t *o, gen_prog_t *g)
{
    const sl_config_t *n;
    uint8_t *tmp;
    size_t base;
    long pad;
    int rc = 0;

    memset(o, 0, sizeof(*o));
    if (!sl_config_get(cfg, "count"))
        rc = sl_config_error(cfg, "'count' is required (records to "
                                  "generate)");
    else if (s_get_count(cfg, "count", 0, INT64_MAX, &o->count) < 0)
        rc = -EINVAL;
    if (s_get_count(cfg, "start", 0, INT64_MAX, &o->start) < 0)
        rc = -EINVAL;
    if (s_get_count(cfg, "keys", 0, INT64_MAX, &o->keys) < 0)
        rc = -EINVAL;
    if (s_get_count(cfg, "fields", 0, GEN_MAX_FIELDS, &o->fields) < 0)
        rc = -EINVAL;
    if (s_get_count(cfg, "size", 0, GEN_MAX_SIZE, &o->size) < 0)
        rc = -EINVAL;

    n = sl_config_get(cfg, "rate");
    if (n && sl_config_double(n, &o->rate) < 0) {
        int64_t i;
        if (sl_config_int(n, &i) < 0)
            rc = sl_config_error(n, "'rate' must be a number of records "
                                    "per second, got '%s'", s_text(n));
        else
            o->rate = (double)i;
    }
    if (n && !(o->rate >= 0 && o->rate <= 1e12))
        rc = sl_config_error(n, "'rate' must be between 0 (unpaced) and "
                                "1e12 records/s, got %s", s_text(n));

    o->tmpl = sl_config_get(cfg, "template");
    if (o->tmpl && sl_config_type(o->tmpl) != SL_CONFIG_MAP)
        rc = sl_config_error(o->tmpl, "'template' must be a map of field "
                                      "names to values");
    else if (o->tmpl && rc == 0 && s_check_clash(o, o->tmpl) < 0)
        rc = -EINVAL;
    if (rc < 0)
        return rc;

    rc = s_compile(o, -1, g);
    if (rc < 0 || !o->size)
        return rc;
    /* `size` pads the record to about that many msgpack bytes, measured
     * at the middle of the run; the pad's own header is found by fixing
     * up once after a first try. */
    tmp = malloc(g->max_len);
    if (!tmp) {
        s_prog_free(g);
        return -ENOMEM;
    }
    base = s_render(g, o, o->start + o->count / 2, sl_now_ns(), tmp);
    s_prog_free(g);
    pad = (long)o->size - (long)base - 5;
    if (pad < 0) {
        free(tmp);
        return s_compile(o, -1, g);
    }
    rc = s_compile(o, pad, g);
    for (int tries = 0; rc == 0 && tries < 2; tries++) {
        size_t got;
        uint8_t *t2 = realloc(tmp, g->max_len);
        if (!t2) {
            rc = -ENOMEM;
            s_prog_free(g);
            break;
        }
        tmp = t2;
        got = s_render(g, o, o->start + o->count / 2, sl_now_ns(), tmp);
        if (got == o->size)
            break;
        pad += (long)o->size - (long)got;
        if (pad < 0)
            pad = 0;
        s_prog_free(g);
        rc = s_compile(o, pad, g);
    }
    free(tmp);
    return rc;
}

static int gen_validate(const sl_config_t *cfg)
{
    gen_opts_t o;
    gen_prog_t g;
    int rc = gen_parse(cfg, &o, &g);

    if (rc == 0)
        s_prog_free(&g);
    return rc;
}

static int gen_init(sl_ctx_t *ctx, const sl_config_t *cfg, void **state)
{
    gen_state_t *st;
    int rc;

    (void)ctx;
    st = calloc(1, sizeof(*st));
    if (!st)
        return -ENOMEM;
    rc = gen_parse(cfg, &st->o, &st->prog);
    if (rc < 0) {
        free(st);
        return rc;
    }
    st->scratch = malloc(st->prog.max_len);
    if (!st->scratch) {
        s_prog_free(&st->prog);
        free(st);
        return -ENOMEM;
    }
    *state = st;
    return 0;
}

/* ---- pulling ---------------------------------------------------------------- */

static uint64_t s_due(const gen_state_t *st, uint64_t now)
{
    /* Record 0 is due at t0, record i at t0 + i/rate. */
    return (uint64_t)((double)(now - st->t0) * st->o.rate / 1e9) + 1;
}

/* How many of the n wanted records are due; sleeps (at most
 * GEN_MAX_SLEEP_NS) when none is. */
static uint64_t s_paced(gen_state_t *st, uint64_t n)
{
    uint64_t now = sl_mono_ns();
    uint64_t due;

    if (!st->done && !st->t0)
        st->t0 = now;
    due = s_due(st, now);
    if (due <= st->done) {
        uint64_t at = st->t0 + 1 +
                      (uint64_t)((double)st->done * 1e9 / st->o.rate);
        uint64_t wait = at > now ? at - now : 0;
        struct timespec ts;

        if (wait > GEN_MAX_SLEEP_NS)
            wait = GEN_MAX_SLEEP_NS;
        ts.tv_sec = (time_t)(wait / 1000000000u);
        ts.tv_nsec = (long)(wait % 1000000000u);
        nanosleep(&ts, NULL); /* an early wake-up just recomputes */
        now = sl_mono_ns();
        due = s_due(st, now);
    }
    if (due <= st->done)
        return 0;
    return due - st->done < n ? due - st->done : n;
}

static int gen_pull(void *state, sl_ctx_t *ctx)
{
    gen_state_t *st = state;
    uint64_t left = st->o.count - st->done;
    uint64_t n = sl_ctx_budget(ctx);
    uint64_t ts = 0;

    if (!left || sl_ctx_stopping(ctx))
        return SL_EOF;
    if (n > left)
        n = left;
    if (st->o.rate > 0) {
        n = s_paced(st, n);
        if (sl_ctx_stopping(ctx))
            return SL_EOF;
    }
    for (uint64_t i = 0; i < n; i++) {
        uint64_t seq = st->o.start + st->done;
        size_t len;
        int rc;

        if (st->prog.has_ts)
            ts = sl_now_ns();
        /* Rendered whole, then handed over in one copy: the same cost as
         * packing through sl_emit_begin() piece by piece, fewer calls,
         * and nothing half-packed is left behind if the host refuses. */
        len = s_render(&st->prog, &st->o, seq, ts, st->scratch);
        rc = sl_emit_raw(ctx, st->scratch, len);
        if (rc < 0)
            return rc;
        st->done++;
    }
    return 0;
}

static void gen_fini(void *state)
{
    gen_state_t *st = state;

    free(st->scratch);
    s_prog_free(&st->prog);
    free(st);
}

SL_STAGE_DEFINE(.name = "generator",
                .summary = "generates 'count' synthetic records, optionally "
                           "at a fixed 'rate'",
                .kind = SL_STAGE_SOURCE,
                .max_workers = 1,
                .config_keys = s_keys,
                .validate = gen_validate,
                .init = gen_init,
                .pull = gen_pull,
                .fini = gen_fini);
