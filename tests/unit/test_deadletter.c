/* Dead-letter files: the exact JSONL text, round trips in both formats
 * (every msgpack type, raw and missing payloads, huge and non-ASCII error
 * text), appending across reopen, concurrent threads and processes, and
 * truncated or corrupt files reported by entry number. */
#include <criterion/criterion.h>

#include "deadletter.h"
#include "testutil.h"

#include <sluice/json.h>

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

TestSuite(deadletter, .init = sl_test_tmpdir_setup,
          .fini = sl_test_tmpdir_teardown);

static char *tmp_path(const char *name)
{
    char *p = NULL;
    cr_assert_gt(asprintf(&p, "%s/%s", sl_test_dir(), name), 0);
    return p;
}

/* ---- collecting entries read back --------------------------------------- */

typedef struct got {
    char *stage;
    uint64_t id, ts, ff, lf;
    uint32_t attempts;
    uint8_t priority;
    char *error;
    void *rec;
    size_t rec_len;
    bool has_rec;
} got_t;

typedef struct gots {
    got_t *v;
    size_t n, cap;
} gots_t;

static int collect(const sl_deadletter_entry_t *e, void *arg)
{
    gots_t *g = arg;
    if (g->n == g->cap) {
        g->cap = g->cap ? g->cap * 2 : 16;
        g->v = realloc(g->v, g->cap * sizeof(*g->v));
        if (!g->v)
            return -ENOMEM;
    }
    got_t *x = &g->v[g->n++];
    memset(x, 0, sizeof(*x));
    x->stage = strdup(e->stage);
    x->id = e->id;
    x->ts = e->ts_ns;
    x->ff = e->first_failure_ns;
    x->lf = e->last_failure_ns;
    x->attempts = e->attempts;
    x->priority = e->priority;
    x->error = e->error ? strdup(e->error) : NULL;
    x->has_rec = e->record != NULL;
    if (e->record) {
        x->rec = malloc(e->record_len + 1);
        memcpy(x->rec, e->record, e->record_len);
        x->rec_len = e->record_len;
    }
    return 0;
}

static void gots_free(gots_t *g)
{
    for (size_t i = 0; i < g->n; i++) {
        free(g->v[i].stage);
        free(g->v[i].error);
        free(g->v[i].rec);
    }
    free(g->v);
    memset(g, 0, sizeof(*g));
}

static int read_all(const char *path, gots_t *g, char *err, size_t errlen)
{
    memset(g, 0, sizeof(*g));
    err[0] = '\0';
    return sl__deadletter_read(path, collect, g, err, errlen);
}

/* ---- building records --------------------------------------------------- */

static void pk_str(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str_with_body(pk, s, strlen(s));
}

static const char k_utf8[] = "h\xc3\xa9llo \xe2\x9c\x93 \xf0\x9d\x84\x9e";

/* One map holding every msgpack type, plus a short string in the str8 form
 * that a packer would never choose, to prove msgpack keeps bytes as is. */
static void pack_all_types(msgpack_sbuffer *sb)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 14);
    pk_str(&pk, "nil");
    msgpack_pack_nil(&pk);
    pk_str(&pk, "t");
    msgpack_pack_true(&pk);
    pk_str(&pk, "f");
    msgpack_pack_false(&pk);
    pk_str(&pk, "u64");
    msgpack_pack_uint64(&pk, UINT64_MAX);
    pk_str(&pk, "i64");
    msgpack_pack_int64(&pk, INT64_MIN);
    pk_str(&pk, "small");
    msgpack_pack_int(&pk, 7);
    pk_str(&pk, "f32");
    msgpack_pack_float(&pk, 1.5f);
    pk_str(&pk, "f64");
    msgpack_pack_double(&pk, 0.1);
    pk_str(&pk, "str");
    pk_str(&pk, k_utf8);
    pk_str(&pk, "bin");
    msgpack_pack_bin_with_body(&pk, "\x00\x01\x02\xff", 4);
    pk_str(&pk, "arr");
    msgpack_pack_array(&pk, 3);
    msgpack_pack_int(&pk, 1);
    pk_str(&pk, "two");
    msgpack_pack_array(&pk, 1);
    msgpack_pack_int(&pk, 3);
    pk_str(&pk, "map");
    msgpack_pack_map(&pk, 1);
    pk_str(&pk, "k");
    msgpack_pack_map(&pk, 1);
    pk_str(&pk, "deep");
    msgpack_pack_int(&pk, -1);
    pk_str(&pk, "ext");
    msgpack_pack_ext_with_body(&pk, "xy", 2, 5);
    pk_str(&pk, "str8");
    msgpack_sbuffer_write(sb, "\xd9\x02hi", 4);
}

static void pack_small(msgpack_sbuffer *sb, int64_t t, int64_t i)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    pk_str(&pk, "t");
    msgpack_pack_int64(&pk, t);
    pk_str(&pk, "i");
    msgpack_pack_int64(&pk, i);
}

/* JSON text of a msgpack map, to compare records whatever their packing. */
static char *json_of(const void *data, size_t len)
{
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    cr_assert_eq(msgpack_unpack_next(&u, data, len, &off),
                 MSGPACK_UNPACK_SUCCESS);
    cr_assert_eq(off, len);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    cr_assert_eq(sl_json_encode(&u.data, &sb), 0);
    char *s = strndup(sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    msgpack_unpacked_destroy(&u);
    return s;
}

/* Type and value of one top-level field of a record. */
static msgpack_object field_of(msgpack_unpacked *u, const void *data,
                               size_t len, const char *key)
{
    size_t off = 0;
    cr_assert_eq(msgpack_unpack_next(u, data, len, &off),
                 MSGPACK_UNPACK_SUCCESS);
    const msgpack_object *v = sl_map_get(&u->data, key);
    cr_assert_not_null(v, "no field '%s'", key);
    return *v;
}

/* ---- the exact JSONL text ---------------------------------------------- */

#define TS 1714564800123456789ull /* 2024-05-01T12:00:00.123456789Z */

Test(deadletter, jsonl_entry_text_is_exact)
{
    char *path = tmp_path("dl.jsonl"), err[512] = "";
    sl_deadletter_t *dl = sl__deadletter_open(path, SL_DL_JSONL, err,
                                              sizeof(err));
    cr_assert_not_null(dl, "%s", err);
    msgpack_sbuffer rec;
    msgpack_sbuffer_init(&rec);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &rec, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    pk_str(&pk, "a");
    msgpack_pack_int(&pk, 1);
    pk_str(&pk, "b");
    pk_str(&pk, "x");
    sl_envelope_t env = {.id = 281474976710656ull, .ts_ns = TS,
                         .attempts = 9, .priority = 2};
    cr_assert_eq(sl__deadletter_write(dl, "parse", &env, rec.data, rec.size,
                                      "worker killed by signal 11 while "
                                      "processing",
                                      3, 1714564800000000001ull,
                                      1714564801000000000ull),
                 0);
    cr_assert_eq(sl__deadletter_write(dl, "read", NULL, NULL, 0,
                                      "in.jsonl:7: unexpected '}'", 1, TS,
                                      TS),
                 0);
    cr_assert_eq(sl__deadletter_write(dl, "parse", &env, "\xc1\x01\x02", 3,
                                      NULL, 1, 0, 0),
                 0);
    cr_assert_eq(sl__deadletter_count(dl), 3);
    sl__deadletter_close(&dl);
    cr_assert_null(dl);

    char *text = sl_test_read_file(path, NULL);
    cr_assert_str_eq(
        text,
        "{\"stage\":\"parse\",\"id\":281474976710656,"
        "\"ts\":\"2024-05-01T12:00:00.123456789Z\",\"attempts\":3,"
        "\"priority\":2,\"first_failure\":\"2024-05-01T12:00:00.000000001Z\","
        "\"last_failure\":\"2024-05-01T12:00:01.000000000Z\","
        "\"error\":\"worker killed by signal 11 while processing\","
        "\"record\":{\"a\":1,\"b\":\"x\"}}\n"
        "{\"stage\":\"read\",\"id\":0,\"ts\":null,\"attempts\":1,"
        "\"priority\":0,\"first_failure\":\"2024-05-01T12:00:00.123456789Z\","
        "\"last_failure\":\"2024-05-01T12:00:00.123456789Z\","
        "\"error\":\"in.jsonl:7: unexpected '}'\",\"record\":null}\n"
        "{\"stage\":\"parse\",\"id\":281474976710656,"
        "\"ts\":\"2024-05-01T12:00:00.123456789Z\",\"attempts\":1,"
        "\"priority\":2,\"first_failure\":null,\"last_failure\":null,"
        "\"error\":null,\"record_msgpack_b64\":\"wQEC\"}\n");
    struct stat sb;
    cr_assert_eq(stat(path, &sb), 0);
    cr_assert_eq(sb.st_mode & 0777 & ~(mode_t)022, 0644 & ~(mode_t)022);
    free(text);
    msgpack_sbuffer_destroy(&rec);
    free(path);
}

/* ---- round trips ------------------------------------------------------- */

/* Writes the same five entries in either format. */
static void write_mix(const char *path, sl_dl_format_t fmt,
                      msgpack_sbuffer *all, char **huge)
{
    char err[512] = "";
    sl_deadletter_t *dl = sl__deadletter_open(path, fmt, err, sizeof(err));
    cr_assert_not_null(dl, "%s", err);
    msgpack_sbuffer_init(all);
    pack_all_types(all);
    /* > 64 KiB, multi-byte, with characters JSON must escape. */
    size_t n = 200 * 1024;
    *huge = malloc(n + 1);
    static const char piece[] = "\"q\"\t\\ \xc3\xa9\xe2\x9c\x93\n";
    size_t pl = strlen(piece), off = 0;
    while (off + pl <= n) {
        memcpy(*huge + off, piece, pl);
        off += pl;
    }
    (*huge)[off] = '\0';

    sl_envelope_t env = {.id = UINT64_MAX, .ts_ns = TS, .priority = 255};
    cr_assert_eq(sl__deadletter_write(dl, "parse", &env, all->data,
                                      all->size, k_utf8, 3, TS + 1, TS + 2),
                 0);
    env.id = 2;
    cr_assert_eq(sl__deadletter_write(dl, "parse", &env, "\xc1\x01\x02", 3,
                                      "not msgpack", 1, TS, TS),
                 0);
    cr_assert_eq(sl__deadletter_write(dl, "read", NULL, NULL, 0,
                                      "in.jsonl:7: bad", 1, TS, TS),
                 0);
    env.id = 4;
    cr_assert_eq(sl__deadletter_write(dl, "parse", &env, all->data,
                                      all->size, *huge, 1000, TS, TS + 5),
                 0);
    /* Valid msgpack but not a map: kept raw too. */
    env.id = 5;
    cr_assert_eq(sl__deadletter_write(dl, "parse", &env, "\x92\x01\x02", 3,
                                      NULL, 2, 0, 0),
                 0);
    cr_assert_eq(sl__deadletter_count(dl), 5);
    sl__deadletter_close(&dl);
}

static void check_common(const gots_t *g, const char *huge)
{
    cr_assert_eq(g->n, 5);
    const got_t *a = &g->v[0];
    cr_assert_str_eq(a->stage, "parse");
    cr_assert_eq(a->id, UINT64_MAX);
    cr_assert_eq(a->ts, TS);
    cr_assert_eq(a->priority, 255);
    cr_assert_eq(a->attempts, 3);
    cr_assert_eq(a->ff, TS + 1);
    cr_assert_eq(a->lf, TS + 2);
    cr_assert_str_eq(a->error, k_utf8);
    cr_assert(a->has_rec);

    const got_t *b = &g->v[1];
    cr_assert_eq(b->id, 2);
    cr_assert_str_eq(b->error, "not msgpack");
    cr_assert(b->has_rec);
    cr_assert_eq(b->rec_len, 3);
    cr_assert_eq(memcmp(b->rec, "\xc1\x01\x02", 3), 0);

    const got_t *c = &g->v[2];
    cr_assert_str_eq(c->stage, "read");
    cr_assert_eq(c->id, 0);
    cr_assert_eq(c->ts, 0);
    cr_assert_eq(c->priority, 0);
    cr_assert_str_eq(c->error, "in.jsonl:7: bad");
    cr_assert_not(c->has_rec);

    const got_t *d = &g->v[3];
    cr_assert_eq(d->attempts, 1000);
    cr_assert_str_eq(d->error, huge);

    const got_t *e = &g->v[4];
    cr_assert_null(e->error);
    cr_assert_eq(e->ff, 0);
    cr_assert_eq(e->rec_len, 3);
    cr_assert_eq(memcmp(e->rec, "\x92\x01\x02", 3), 0);
}

Test(deadletter, msgpack_round_trip_is_byte_exact)
{
    char *path = tmp_path("dl.msgpack"), err[512];
    msgpack_sbuffer all;
    char *huge;
    write_mix(path, SL_DL_MSGPACK, &all, &huge);
    gots_t g;
    cr_assert_eq(read_all(path, &g, err, sizeof(err)), 0, "%s", err);
    check_common(&g, huge);
    for (size_t i = 0; i < 4; i += 3) {
        cr_assert_eq(g.v[i].rec_len, all.size);
        cr_assert_eq(memcmp(g.v[i].rec, all.data, all.size), 0,
                     "entry %zu's record differs", i + 1);
    }
    gots_free(&g);
    msgpack_sbuffer_destroy(&all);
    free(huge);
    free(path);
}

Test(deadletter, jsonl_round_trip_keeps_ints_exact)
{
    char *path = tmp_path("dl.jsonl"), err[512];
    msgpack_sbuffer all;
    char *huge;
    write_mix(path, SL_DL_JSONL, &all, &huge);
    gots_t g;
    cr_assert_eq(read_all(path, &g, err, sizeof(err)), 0, "%s", err);
    check_common(&g, huge);
    char *want = json_of(all.data, all.size);
    for (size_t i = 0; i < 4; i += 3) {
        char *have = json_of(g.v[i].rec, g.v[i].rec_len);
        cr_assert_str_eq(have, want);
        free(have);
    }
    /* Exact where JSON can be, documented losses where it cannot. */
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    msgpack_object v = field_of(&u, g.v[0].rec, g.v[0].rec_len, "u64");
    cr_assert_eq(v.type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    cr_assert_eq(v.via.u64, UINT64_MAX);
    v = field_of(&u, g.v[0].rec, g.v[0].rec_len, "i64");
    cr_assert_eq(v.type, MSGPACK_OBJECT_NEGATIVE_INTEGER);
    cr_assert_eq(v.via.i64, INT64_MIN);
    v = field_of(&u, g.v[0].rec, g.v[0].rec_len, "str");
    cr_assert_eq(v.type, MSGPACK_OBJECT_STR);
    cr_assert_eq(v.via.str.size, strlen(k_utf8));
    cr_assert_eq(memcmp(v.via.str.ptr, k_utf8, v.via.str.size), 0);
    v = field_of(&u, g.v[0].rec, g.v[0].rec_len, "f32");
    cr_assert_eq(v.type, MSGPACK_OBJECT_FLOAT64);
    cr_assert_eq(v.via.f64, 1.5);
    v = field_of(&u, g.v[0].rec, g.v[0].rec_len, "bin");
    cr_assert_eq(v.type, MSGPACK_OBJECT_STR);
    cr_assert_eq(v.via.str.size, 8);
    cr_assert_eq(memcmp(v.via.str.ptr, "AAEC/w==", 8), 0);
    msgpack_unpacked_destroy(&u);
    free(want);
    gots_free(&g);
    msgpack_sbuffer_destroy(&all);
    free(huge);
    free(path);
}

Test(deadletter, invalid_utf8_in_error_text)
{
    char *pj = tmp_path("a.jsonl"), *pm = tmp_path("a.mpk"), err[512];
    sl_deadletter_t *j = sl__deadletter_open(pj, SL_DL_JSONL, err, 512);
    sl_deadletter_t *m = sl__deadletter_open(pm, SL_DL_MSGPACK, err, 512);
    cr_assert(j && m);
    cr_assert_eq(sl__deadletter_write(j, "s", NULL, NULL, 0, "a\xff" "b", 1,
                                      0, 0), 0);
    cr_assert_eq(sl__deadletter_write(m, "s", NULL, NULL, 0, "a\xff" "b", 1,
                                      0, 0), 0);
    sl__deadletter_close(&j);
    sl__deadletter_close(&m);
    gots_t g;
    /* JSON text must be UTF-8: the byte becomes U+FFFD there only. */
    cr_assert_eq(read_all(pj, &g, err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(g.v[0].error, "a\xef\xbf\xbd" "b");
    gots_free(&g);
    cr_assert_eq(read_all(pm, &g, err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(g.v[0].error, "a\xff" "b");
    gots_free(&g);
    free(pj);
    free(pm);
}

Test(deadletter, reader_takes_reordered_keys_offsets_and_unknown_keys)
{
    char *path = tmp_path("hand.jsonl"), err[512];
    cr_assert_eq(sl_test_write_file(
                     path,
                     "{ \"record\" : {\"n\": 18446744073709551615},"
                     " \"later\": [1, {\"x\": \"}\"}], \"stage\": \"s\\u00e9\","
                     " \"ts\": \"2024-05-01T14:00:00.5+02:00\", \"id\": 7,"
                     " \"attempts\": 2, \"priority\": 1 }\n"
                     "\n"
                     "{\"stage\":\"t\",\"first_failure\":"
                     "\"2024-05-01T12:00:00Z\"}\n"),
                 0);
    gots_t g;
    cr_assert_eq(read_all(path, &g, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(g.n, 2);
    cr_assert_str_eq(g.v[0].stage, "s\xc3\xa9");
    cr_assert_eq(g.v[0].ts, 1714564800500000000ull);
    cr_assert_eq(g.v[0].id, 7);
    cr_assert_eq(g.v[0].attempts, 2);
    cr_assert_eq(g.v[0].priority, 1);
    char *rec = json_of(g.v[0].rec, g.v[0].rec_len);
    cr_assert_str_eq(rec, "{\"n\":18446744073709551615}");
    free(rec);
    cr_assert_str_eq(g.v[1].stage, "t");
    cr_assert_eq(g.v[1].ff, 1714564800000000000ull);
    cr_assert_null(g.v[1].error);
    cr_assert_not(g.v[1].has_rec);
    gots_free(&g);
    free(path);
}

/* ---- append, never truncate --------------------------------------------- */

static void append_ids(const char *path, sl_dl_format_t fmt, uint64_t from,
                       uint64_t to)
{
    char err[512] = "";
    sl_deadletter_t *dl = sl__deadletter_open(path, fmt, err, sizeof(err));
    cr_assert_not_null(dl, "%s", err);
    for (uint64_t id = from; id <= to; id++) {
        sl_envelope_t env = {.id = id};
        cr_assert_eq(sl__deadletter_write(dl, "s", &env, NULL, 0, "e", 1, 1,
                                          1),
                     0);
    }
    cr_assert_eq(sl__deadletter_count(dl), to - from + 1);
    sl__deadletter_close(&dl);
}

Test(deadletter, reopen_appends_and_refuses_the_other_format)
{
    static const sl_dl_format_t fmts[] = {SL_DL_JSONL, SL_DL_MSGPACK};
    static const char *const names[] = {"x.jsonl", "x.msgpack"};
    for (size_t f = 0; f < 2; f++) {
        char *path = tmp_path(names[f]), err[512];
        append_ids(path, fmts[f], 1, 2);
        struct stat before;
        cr_assert_eq(stat(path, &before), 0);
        append_ids(path, fmts[f], 3, 5);
        struct stat after;
        cr_assert_eq(stat(path, &after), 0);
        cr_assert_gt(after.st_size, before.st_size);
        gots_t g;
        cr_assert_eq(read_all(path, &g, err, sizeof(err)), 0, "%s", err);
        cr_assert_eq(g.n, 5);
        for (size_t i = 0; i < 5; i++)
            cr_assert_eq(g.v[i].id, i + 1);
        gots_free(&g);

        sl_dl_format_t other = fmts[1 - f];
        cr_assert_null(sl__deadletter_open(path, other, err, sizeof(err)));
        char want[1024];
        snprintf(want, sizeof(want),
                 "dead-letter file '%s' already holds %s entries; it cannot "
                 "take %s ones (one file, one format)",
                 path, f ? "msgpack" : "jsonl", f ? "jsonl" : "msgpack");
        cr_assert_str_eq(err, want);
        struct stat still;
        cr_assert_eq(stat(path, &still), 0);
        cr_assert_eq(still.st_size, after.st_size);
        free(path);
    }
}

Test(deadletter, open_in_missing_directory_names_it)
{
    char *path = tmp_path("no/such/dir/dl.jsonl"), err[1024] = "";
    cr_assert_null(sl__deadletter_open(path, SL_DL_JSONL, err, sizeof(err)));
    char want[1200];
    snprintf(want, sizeof(want),
             "cannot open dead-letter file '%s': directory '%s/no/such/dir' "
             "does not exist",
             path, sl_test_dir());
    cr_assert_str_eq(err, want);
    free(path);
}

Test(deadletter, bad_arguments)
{
    char *path = tmp_path("dl.jsonl"), err[512] = "";
    cr_assert_null(sl__deadletter_open("", SL_DL_JSONL, err, sizeof(err)));
    cr_assert_str_eq(err, "dead-letter file: no path given");
    sl_deadletter_t *dl = sl__deadletter_open(path, SL_DL_JSONL, err, 512);
    cr_assert_not_null(dl);
    cr_assert_eq(sl__deadletter_write(dl, NULL, NULL, NULL, 0, "e", 1, 0, 0),
                 -EINVAL);
    cr_assert_eq(sl__deadletter_write(NULL, "s", NULL, NULL, 0, "e", 1, 0, 0),
                 -EINVAL);
    cr_assert_eq(sl__deadletter_count(dl), 0);
    sl__deadletter_close(&dl);
    sl__deadletter_close(&dl); /* NULL is fine */
    gots_t g;
    cr_assert_eq(read_all(path, &g, err, sizeof(err)), 0);
    cr_assert_eq(g.n, 0);
    gots_free(&g);
    char *missing = tmp_path("missing.jsonl");
    cr_assert_eq(read_all(missing, &g, err, sizeof(err)), -ENOENT);
    char want[1024];
    snprintf(want, sizeof(want), "cannot open dead-letter file '%s': No "
             "such file or directory", missing);
    cr_assert_str_eq(err, want);
    free(missing);
    free(path);
}

/* ---- concurrency --------------------------------------------------------- */

/* Enough entries per writer that the writers overlap for many writes
 * (the log line counts where the file changes from one writer to the
 * next), not so many that reading them back dominates under ASan. */
#define THREADS 4
#define PER_THREAD 5000

typedef struct writer {
    sl_deadletter_t *dl;
    unsigned t;
    int failures;
} writer_t;

static void *writer_main(void *arg)
{
    writer_t *w = arg;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    for (int64_t i = 0; i < PER_THREAD; i++) {
        sb.size = 0;
        pack_small(&sb, w->t, i);
        sl_envelope_t env = {.id = (uint64_t)w->t << 32 | (uint64_t)i};
        if (sl__deadletter_write(w->dl, "stage", &env, sb.data, sb.size,
                                 "boom", 1, 1, 2) != 0)
            w->failures++;
    }
    msgpack_sbuffer_destroy(&sb);
    return NULL;
}

/* Every writer's entries complete, each exactly once, in its own order,
 * with a record that matches its id. */
static void check_writers(const char *path, unsigned writers, int64_t per)
{
    gots_t g;
    char err[512];
    cr_assert_eq(read_all(path, &g, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(g.n, (size_t)writers * (size_t)per);
    int64_t next[THREADS] = {0};
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t switches = 0; /* neighbouring entries of different writers */
    for (size_t k = 0; k < g.n; k++) {
        unsigned t = (unsigned)(g.v[k].id >> 32);
        switches += k > 0 && t != (unsigned)(g.v[k - 1].id >> 32);
        int64_t i = (int64_t)(g.v[k].id & 0xffffffffu);
        cr_assert_lt(t, writers);
        cr_assert_eq(i, next[t], "writer %u: entry %lld after %lld", t,
                     (long long)i, (long long)next[t] - 1);
        next[t]++;
        msgpack_object v = field_of(&u, g.v[k].rec, g.v[k].rec_len, "i");
        cr_assert_eq(v.via.i64, i);
        v = field_of(&u, g.v[k].rec, g.v[k].rec_len, "t");
        cr_assert_eq(v.via.i64, (int64_t)t);
        cr_assert_str_eq(g.v[k].error, "boom");
    }
    for (unsigned t = 0; t < writers; t++)
        cr_assert_eq(next[t], per);
    cr_log_info("%s: %u writers of %lld entries, %zu changes of writer "
                "from one entry to the next", path, writers, (long long)per,
                switches);
    msgpack_unpacked_destroy(&u);
    gots_free(&g);
}

Test(deadletter, concurrent_threads_write_whole_entries, .timeout = 120)
{
    static const sl_dl_format_t fmts[] = {SL_DL_JSONL, SL_DL_MSGPACK};
    static const char *const names[] = {"c.jsonl", "c.msgpack"};
    for (size_t f = 0; f < 2; f++) {
        char *path = tmp_path(names[f]), err[512] = "";
        sl_deadletter_t *dl = sl__deadletter_open(path, fmts[f], err, 512);
        cr_assert_not_null(dl, "%s", err);
        writer_t w[THREADS];
        pthread_t th[THREADS];
        for (unsigned t = 0; t < THREADS; t++) {
            w[t] = (writer_t){.dl = dl, .t = t};
            cr_assert_eq(pthread_create(&th[t], NULL, writer_main, &w[t]), 0);
        }
        for (unsigned t = 0; t < THREADS; t++) {
            pthread_join(th[t], NULL);
            cr_assert_eq(w[t].failures, 0);
        }
        cr_assert_eq(sl__deadletter_count(dl), THREADS * PER_THREAD);
        sl__deadletter_close(&dl);
        check_writers(path, THREADS, PER_THREAD);
        free(path);
    }
}

Test(deadletter, concurrent_processes_do_not_interleave, .timeout = 120)
{
    char *path = tmp_path("p.jsonl");
    pid_t pid[2];
    for (unsigned t = 0; t < 2; t++) {
        pid[t] = fork();
        cr_assert_geq(pid[t], 0);
        if (pid[t] == 0) {
            char err[512];
            writer_t w = {.t = t};
            w.dl = sl__deadletter_open(path, SL_DL_JSONL, err, sizeof(err));
            if (!w.dl)
                _exit(2);
            writer_main(&w);
            sl__deadletter_close(&w.dl);
            _exit(w.failures ? 1 : 0);
        }
    }
    for (unsigned t = 0; t < 2; t++) {
        int st = -1;
        cr_assert_eq(waitpid(pid[t], &st, 0), pid[t]);
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "writer %u: %d", t,
                  st);
    }
    check_writers(path, 2, PER_THREAD);
    free(path);
}

/* ---- damaged files ------------------------------------------------------ */

static int count_only(const sl_deadletter_entry_t *e, void *arg)
{
    (void)e;
    ++*(size_t *)arg;
    return 0;
}

/* Cuts the file at every length: entries before the cut are visited, the
 * cut one is reported by number, and nothing crashes. */
/* Cuts a small file at every length: the entries before the cut are
 * visited, the cut one is reported by number, and nothing crashes. */
static void check_every_cut(const char *path, sl_dl_format_t fmt)
{
    char err[1024] = "";
    sl_deadletter_t *dl = sl__deadletter_open(path, fmt, err, sizeof(err));
    cr_assert_not_null(dl, "%s", err);
    msgpack_sbuffer all;
    msgpack_sbuffer_init(&all);
    pack_all_types(&all);
    sl_envelope_t env = {.id = 1, .ts_ns = TS};
    cr_assert_eq(sl__deadletter_write(dl, "a", &env, all.data, all.size,
                                      k_utf8, 1, TS, TS), 0);
    cr_assert_eq(sl__deadletter_write(dl, "b", NULL, NULL, 0, "x:1: bad", 1,
                                      TS, TS), 0);
    cr_assert_eq(sl__deadletter_write(dl, "c", &env, "\xc1", 1, NULL, 1, 0,
                                      0), 0);
    sl__deadletter_close(&dl);
    msgpack_sbuffer_destroy(&all);

    size_t len = 0, k = 0;
    char *full = sl_test_read_file(path, &len);
    cr_assert_not_null(full);
    char *cut = tmp_path("cut");
    for (size_t n = 1; n <= len; n++) {
        FILE *f = fopen(cut, "wb");
        cr_assert_not_null(f);
        cr_assert_eq(fwrite(full, 1, n, f), n);
        fclose(f);
        size_t seen = 0;
        int rc = sl__deadletter_read(cut, count_only, &seen, err,
                                     sizeof(err));
        if (rc == 0) { /* n is the end of an entry */
            cr_assert_eq(seen, ++k, "cut at %zu", n);
            continue;
        }
        cr_assert_eq(rc, -EBADMSG, "cut at %zu: %s", n, err);
        cr_assert_eq(seen, k, "cut at %zu", n);
        char want[64];
        snprintf(want, sizeof(want), "entry %zu ", k + 1);
        cr_assert(strstr(err, want), "cut at %zu: %s", n, err);
        cr_assert(strstr(err, "truncated"), "cut at %zu: %s", n, err);
    }
    cr_assert_eq(k, 3);
    unlink(cut);
    free(cut);
    free(full);
}

Test(deadletter, truncated_jsonl_names_the_entry, .timeout = 120)
{
    char *path = tmp_path("t.jsonl");
    check_every_cut(path, SL_DL_JSONL);
    /* The message in full for one cut. */
    char err[1024];
    cr_assert_eq(truncate(path, 40), 0);
    gots_t g;
    cr_assert_eq(read_all(path, &g, err, sizeof(err)), -EBADMSG);
    char want[1200];
    snprintf(want, sizeof(want), "%s: entry 1 (line 1) is truncated: the "
             "file ends in the middle of it", path);
    cr_assert_str_eq(err, want);
    gots_free(&g);
    free(path);
}

Test(deadletter, truncated_msgpack_names_the_entry, .timeout = 120)
{
    char *path = tmp_path("t.msgpack");
    check_every_cut(path, SL_DL_MSGPACK);
    free(path);
}

Test(deadletter, corrupt_entries_name_their_number)
{
    char *path = tmp_path("bad.jsonl"), err[1024], want[1200];
    gots_t g;
    cr_assert_eq(sl_test_write_file(path,
                                    "{\"stage\":\"a\",\"id\":1}\n"
                                    "{\"stage\":\"a\",\"id\":-1}\n"),
                 0);
    cr_assert_eq(read_all(path, &g, err, sizeof(err)), -EBADMSG);
    cr_assert_eq(g.n, 1);
    snprintf(want, sizeof(want), "%s: entry 2 (line 2): 'id' must be an "
             "unsigned integer in range", path);
    cr_assert_str_eq(err, want);
    gots_free(&g);

    cr_assert_eq(sl_test_write_file(path,
                                    "{\"stage\":\"a\"}\n"
                                    "\n"
                                    "{\"stage\":\"b\",\"record\":{\"x\":}}\n"),
                 0);
    cr_assert_eq(read_all(path, &g, err, sizeof(err)), -EBADMSG);
    cr_assert_eq(g.n, 1);
    snprintf(want, sizeof(want), "%s: entry 2 (line 3): 'record' is not "
             "valid JSON (", path);
    cr_assert_eq(strncmp(err, want, strlen(want)), 0, "%s", err);
    gots_free(&g);

    cr_assert_eq(sl_test_write_file(path, "{\"stage\":\"a\",\"ts\":"
                                          "\"2024-02-30T00:00:00Z\"}\n"),
                 0);
    cr_assert_eq(read_all(path, &g, err, sizeof(err)), -EBADMSG);
    snprintf(want, sizeof(want), "%s: entry 1 (line 1): 'ts' must be an RFC "
             "3339 time or null", path);
    cr_assert_str_eq(err, want);
    gots_free(&g);

    /* A msgpack file whose second entry is not a map. */
    char *mp = tmp_path("bad.msgpack");
    append_ids(mp, SL_DL_MSGPACK, 1, 1);
    FILE *f = fopen(mp, "ab");
    fwrite("\x93\x01\x02\x03", 1, 4, f);
    fclose(f);
    cr_assert_eq(read_all(mp, &g, err, sizeof(err)), -EBADMSG);
    cr_assert_eq(g.n, 1);
    struct stat sb;
    cr_assert_eq(stat(mp, &sb), 0);
    snprintf(want, sizeof(want), "%s: entry 2: not a msgpack map (byte 0x93 "
             "at offset %lld)", mp, (long long)sb.st_size - 4);
    cr_assert_str_eq(err, want);
    gots_free(&g);
    free(mp);
    free(path);
}

static int stop_at_two(const sl_deadletter_entry_t *e, void *arg)
{
    (void)e;
    return ++*(int *)arg == 2 ? 42 : 0;
}

Test(deadletter, visitor_can_stop_the_walk)
{
    char *path = tmp_path("s.jsonl"), err[512];
    append_ids(path, SL_DL_JSONL, 1, 5);
    int n = 0;
    cr_assert_eq(sl__deadletter_read(path, stop_at_two, &n, err,
                                     sizeof(err)),
                 42);
    cr_assert_eq(n, 2);
    free(path);
}

/* ---- hostile payloads and files ---------------------------------------- */

Test(deadletter, every_jsonl_entry_reads_back)
{
    /* {"a\0b": 1}: valid JSON once escaped, but sluice's JSON reader
     * refuses NUL in keys, so the record is kept as bytes instead. */
    static const char nul_key[] = "\x81\xa3" "a\0b" "\x01";
    /* An array that claims 2^31 elements: no allocation may follow. */
    static const char huge_count[] = "\x81\xa1k\xdd\x7f\xff\xff\xff\x01";
    char *path = tmp_path("r.jsonl"), err[512] = "";
    sl_deadletter_t *dl = sl__deadletter_open(path, SL_DL_JSONL, err, 512);
    cr_assert_not_null(dl, "%s", err);
    cr_assert_eq(sl__deadletter_write(dl, "s", NULL, nul_key, 6, "", 1, 0, 0),
                 0);
    cr_assert_eq(sl__deadletter_write(dl, "s", NULL, huge_count, 9, NULL, 1,
                                      0, 0),
                 0);
    sl__deadletter_close(&dl);
    char *text = sl_test_read_file(path, NULL);
    cr_assert_not_null(strstr(text, "\"error\":\"\",\"record_msgpack_b64\":"
                                    "\"gaNhAGIB\"}\n"),
                       "%s", text);
    free(text);
    gots_t g;
    cr_assert_eq(read_all(path, &g, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(g.n, 2);
    cr_assert_str_eq(g.v[0].error, "");
    cr_assert_eq(g.v[0].rec_len, 6);
    cr_assert_eq(memcmp(g.v[0].rec, nul_key, 6), 0);
    cr_assert_null(g.v[1].error);
    cr_assert_eq(g.v[1].rec_len, 9);
    cr_assert_eq(memcmp(g.v[1].rec, huge_count, 9), 0);
    gots_free(&g);
    free(path);
}

Test(deadletter, msgpack_reader_refuses_impossible_counts)
{
    char *path = tmp_path("h.msgpack"), err[1024], want[1200];
    append_ids(path, SL_DL_MSGPACK, 1, 1);
    /* A second entry whose record claims 2^31 entries. */
    static const char bad[] =
        "\x82\xa5stage\xa1s\xa6record\xdf\x7f\xff\xff\xff\xa1k";
    FILE *f = fopen(path, "ab");
    cr_assert_eq(fwrite(bad, 1, sizeof(bad) - 1, f), sizeof(bad) - 1);
    fclose(f);
    gots_t g;
    cr_assert_eq(read_all(path, &g, err, sizeof(err)), -EBADMSG);
    cr_assert_eq(g.n, 1);
    snprintf(want, sizeof(want), "%s: entry 2 is truncated: the file ends "
             "in the middle of it", path);
    cr_assert_str_eq(err, want);
    gots_free(&g);
    free(path);
}
