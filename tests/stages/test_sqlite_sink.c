/* sqlite_sink: rows read back through the sqlite3 C API after inserts,
 * upserts, every column type, failing records, batching and sync(); config
 * errors with their positions. */
#include <criterion/criterion.h>

#include "harness.h"
#include "testutil.h"

#include <errno.h>
#include <msgpack.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

TestSuite(sqlite_sink, .init = sl_test_tmpdir_setup,
          .fini = sl_test_tmpdir_teardown);

static const char *s_db(void)
{
    static char buf[4096];
    snprintf(buf, sizeof(buf), "%s/db.sqlite", sl_test_dir());
    return buf;
}

static sqlite3 *s_open(void)
{
    sqlite3 *db = NULL;
    cr_assert_eq(sqlite3_open_v2(s_db(), &db, SQLITE_OPEN_READWRITE, NULL),
                 SQLITE_OK, "cannot open %s", s_db());
    return db;
}

static void s_exec(const char *sql)
{
    sqlite3 *db = NULL;
    cr_assert_eq(sqlite3_open(s_db(), &db), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK, "%s: %s",
                 sql, sqlite3_errmsg(db));
    sqlite3_close(db);
}

/* Every row of sql on a separate connection, columns joined by '|' (NULL
 * as "NULL"), rows ending in '\n'. The caller frees the text. */
static char *s_query(const char *sql)
{
    sqlite3 *db = s_open();
    sqlite3_stmt *st = NULL;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    int rc;

    cr_assert_not_null(f);
    cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK,
                 "%s: %s", sql, sqlite3_errmsg(db));
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        for (int i = 0; i < sqlite3_column_count(st); i++) {
            const unsigned char *t = sqlite3_column_text(st, i);
            fprintf(f, "%s%s", i ? "|" : "", t ? (const char *)t : "NULL");
        }
        fputc('\n', f);
    }
    cr_assert_eq(rc, SQLITE_DONE, "%s: %s", sql, sqlite3_errmsg(db));
    sqlite3_finalize(st);
    sqlite3_close(db);
    fclose(f);
    return buf;
}

static void s_expect_rows(const char *sql, const char *want)
{
    char *got = s_query(sql);
    cr_expect_str_eq(got, want, "%s\ngot:  %s\nwant: %s", sql, got, want);
    free(got);
}

static sl_harness_t *s_sink(const char *yaml)
{
    return sl_test_harness("sqlite_sink", yaml, sl_test_dir());
}

static void s_push(sl_harness_t *h, const char *json)
{
    cr_assert_eq(sl_harness_push_json(h, json), 0, "%s: %s", json,
                 sl_harness_last_error(h));
}

static void s_push_fails(sl_harness_t *h, const char *json, const char *want)
{
    size_t errs = sl_harness_errors(h);
    cr_assert_eq(sl_harness_push_json(h, json), -EINVAL, "%s accepted",
                 json);
    cr_assert_eq(sl_harness_errors(h), errs + 1);
    cr_assert_str_eq(sl_harness_last_error(h), want);
}

static void s_done(sl_harness_t *h)
{
    cr_assert_eq(sl_harness_flush(h), 0);
    cr_assert_eq(sl_harness_count(h), 0, "a sink emits nothing");
    sl_harness_destroy(&h);
}

Test(sqlite_sink, inserts_n_records_exactly)
{
    sl_harness_t *h = s_sink("path: db.sqlite\ntable: t\n"
                             "columns: {id: integer, name: text, "
                             "score: real}");
    char rec[128];
    for (int i = 0; i < 250; i++) {
        snprintf(rec, sizeof(rec),
                 "{\"id\":%d,\"name\":\"n%d\",\"score\":%d.5,\"x\":1}", i, i,
                 i);
        s_push(h, rec);
    }
    s_done(h);
    s_expect_rows("SELECT count(*), sum(id), min(name), max(name) FROM t",
                  "250|31125|n0|n99\n");
    s_expect_rows("SELECT id, name, score FROM t WHERE id IN (0, 1, 249) "
                  "ORDER BY rowid",
                  "0|n0|0.5\n1|n1|1.5\n249|n249|249.5\n");
}

Test(sqlite_sink, upsert_by_key_keeps_the_last_value)
{
    sl_harness_t *h = s_sink("path: db.sqlite\ntable: kv\nkey: [k]\n"
                             "columns: {k: text, v: integer}");
    s_push(h, "{\"k\":\"a\",\"v\":1}");
    s_push(h, "{\"k\":\"b\",\"v\":2}");
    s_push(h, "{\"k\":\"a\",\"v\":3}");
    s_push(h, "{\"v\":4,\"k\":\"b\"}");
    s_push(h, "{\"k\":\"c\",\"v\":5}");
    s_done(h);
    s_expect_rows("SELECT k, v FROM kv ORDER BY k", "a|3\nb|4\nc|5\n");
}

Test(sqlite_sink, upsert_by_compound_key_across_runs)
{
    const char *yaml = "path: db.sqlite\ntable: m\nkey: [a, b]\nbatch_rows: 1\n"
                       "columns: {a: integer, b: text, n: integer}";
    sl_harness_t *h = s_sink(yaml);
    s_push(h, "{\"a\":1,\"b\":\"x\",\"n\":1}");
    s_push(h, "{\"a\":1,\"b\":\"y\",\"n\":2}");
    s_done(h);
    h = s_sink(yaml);
    s_push(h, "{\"a\":1,\"b\":\"x\",\"n\":10}");
    s_done(h);
    s_expect_rows("SELECT a, b, n FROM m ORDER BY b", "1|x|10\n1|y|2\n");
}

Test(sqlite_sink, key_on_every_column_keeps_one_row_per_key)
{
    sl_harness_t *h = s_sink("path: db.sqlite\ntable: seen\nkey: [k]\n"
                             "columns: {k: text}");
    s_push(h, "{\"k\":\"a\"}");
    s_push(h, "{\"k\":\"a\"}");
    s_push(h, "{\"k\":\"b\"}");
    s_done(h);
    s_expect_rows("SELECT k FROM seen ORDER BY k", "a\nb\n");
}

/* A record with bin (only msgpack can carry it), nested maps, booleans. */
static void s_pack_typed(msgpack_sbuffer *sb)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 7);
    msgpack_pack_str_with_body(&pk, "i", 1);
    msgpack_pack_int64(&pk, -9007199254740993LL);
    msgpack_pack_str_with_body(&pk, "r", 1);
    msgpack_pack_int(&pk, 3); /* int -> real */
    msgpack_pack_str_with_body(&pk, "t", 1);
    msgpack_pack_str_with_body(&pk, "h\xc3\xa9", 3);
    msgpack_pack_str_with_body(&pk, "b", 1);
    msgpack_pack_bin_with_body(&pk, "\x00\x01\xff", 3);
    msgpack_pack_str_with_body(&pk, "meta", 4);
    msgpack_pack_map(&pk, 2);
    msgpack_pack_str_with_body(&pk, "k", 1);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_int(&pk, 1);
    msgpack_pack_str_with_body(&pk, "x", 1);
    msgpack_pack_str_with_body(&pk, "q", 1);
    msgpack_pack_nil(&pk);
    msgpack_pack_str_with_body(&pk, "ok", 2);
    msgpack_pack_true(&pk);
    msgpack_pack_str_with_body(&pk, "user", 4);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str_with_body(&pk, "city", 4);
    msgpack_pack_str_with_body(&pk, "Oslo", 4);
}

Test(sqlite_sink, every_type_with_field_paths)
{
    sl_harness_t *h = s_sink(
        "path: db.sqlite\ntable: ty\n"
        "columns:\n"
        "  i: integer\n"
        "  r: real\n"
        "  t: text\n"
        "  b: blob\n"
        "  j: {type: json, field: meta}\n"
        "  ok: integer\n"
        "  city: {type: text, field: user.city}\n"
        "  s: blob\n"
        "  n: json\n");
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    s_pack_typed(&sb);
    cr_assert_eq(sl_harness_push_msgpack(h, sb.data, sb.size), 0, "%s",
                 sl_harness_last_error(h));
    msgpack_sbuffer_destroy(&sb);
    s_push(h, "{\"s\":\"str\",\"n\":[1.5,true,\"z\"],\"j\":7}");
    s_done(h);
    s_expect_rows("SELECT typeof(i), i, typeof(r), r, t, typeof(b), hex(b), "
                  "j, ok, city, typeof(s), hex(s), n FROM ty ORDER BY rowid",
                  "integer|-9007199254740993|real|3.0|h\xc3\xa9|blob|0001FF|"
                  "{\"k\":[1,\"x\"],\"q\":null}|1|Oslo|null||NULL\n"
                  "null|NULL|null|NULL|NULL|null||NULL|NULL|NULL|blob|"
                  "737472|[1.5,true,\"z\"]\n");
}

Test(sqlite_sink, wrong_type_fails_the_record_and_keeps_the_others)
{
    sl_harness_t *h = s_sink("path: db.sqlite\ntable: t\n"
                             "columns: {id: integer, v: {type: real, "
                             "field: m.v}, t: text}");
    s_push(h, "{\"id\":1,\"m\":{\"v\":1}}");
    s_push_fails(h, "{\"id\":\"2\"}",
                 "field 'id' for column 'id' (integer): got a string");
    s_push_fails(h, "{\"id\":2,\"m\":{\"v\":\"1.5\"}}",
                 "field 'm.v' for column 'v' (real): got a string");
    s_push_fails(h, "{\"id\":2,\"t\":5}",
                 "field 't' for column 't' (text): got an integer");
    s_push_fails(h, "{\"id\":1.5}",
                 "field 'id' for column 'id' (integer): got a number");
    s_push_fails(h, "{\"id\":18446744073709551615}",
                 "field 'id' for column 'id' (integer): "
                 "18446744073709551615 is out of range");
    s_push(h, "{\"id\":3,\"m\":{\"v\":2.25},\"t\":\"x\"}");
    s_done(h);
    s_expect_rows("SELECT id, v, t FROM t ORDER BY rowid",
                  "1|1.0|NULL\n3|2.25|x\n");
}

Test(sqlite_sink, missing_required_field_fails)
{
    sl_harness_t *h = s_sink("path: db.sqlite\ntable: t\n"
                             "columns: {id: integer, name: {type: text, "
                             "required: true}, note: text}");
    s_push_fails(h, "{\"id\":1}",
                 "field 'name' for column 'name' is required but missing");
    s_push_fails(h, "{\"id\":1,\"name\":null}",
                 "field 'name' for column 'name' is required but null");
    s_push(h, "{\"name\":\"a\"}");
    s_done(h);
    s_expect_rows("SELECT id, name, note FROM t", "NULL|a|NULL\n");
}

Test(sqlite_sink, key_columns_are_required)
{
    sl_harness_t *h = s_sink("path: db.sqlite\ntable: t\nkey: [id]\n"
                             "columns: {id: integer, v: text}");
    s_push_fails(h, "{\"v\":\"a\"}",
                 "field 'id' for column 'id' is required but missing");
    s_done(h);
    s_expect_rows("SELECT count(*) FROM t", "0\n");
}

Test(sqlite_sink, creates_the_table_with_its_key)
{
    sl_harness_t *h = s_sink("path: db.sqlite\ntable: 'my \"t\"'\n"
                             "key: [id]\ncolumns: {id: integer, "
                             "doc: json, raw: blob, x: real}");
    s_done(h);
    s_expect_rows("SELECT sql FROM sqlite_master WHERE type = 'table'",
                  "CREATE TABLE \"my \"\"t\"\"\" (\"id\" INTEGER, \"doc\" "
                  "TEXT, \"raw\" BLOB, \"x\" REAL, PRIMARY KEY (\"id\"))\n");
    s_expect_rows("PRAGMA journal_mode", "wal\n");
}

Test(sqlite_sink, reuses_an_existing_table)
{
    s_exec("CREATE TABLE t (id INTEGER UNIQUE, v TEXT, "
           "extra TEXT DEFAULT 'd');"
           "INSERT INTO t (id, v) VALUES (1, 'old');");
    sl_harness_t *h = s_sink("path: db.sqlite\ntable: t\n"
                             "columns: {id: integer, v: text}");
    s_push(h, "{\"id\":2,\"v\":\"new\"}");
    /* A constraint violation fails only its record: the rows before and
     * after it in the same transaction are kept. */
    s_push_fails(h, "{\"id\":1,\"v\":\"dup\"}",
                 "table 't': row not written: UNIQUE constraint failed: "
                 "t.id");
    s_push(h, "{\"id\":3,\"v\":\"after\"}");
    s_done(h);
    s_expect_rows("SELECT id, v, extra FROM t ORDER BY id",
                  "1|old|d\n2|new|d\n3|after|d\n");
}

Test(sqlite_sink, existing_table_without_the_column_is_refused)
{
    s_exec("CREATE TABLE t (id INTEGER)");
    sl_test_refused("sqlite_sink",
                    "path: db.sqlite\ntable: t\ncolumns: {id: integer, "
                    "v: text}",
                    sl_test_dir(), "table 't': table t has no column named v");
}

Test(sqlite_sink, key_needs_a_unique_constraint_on_an_existing_table)
{
    s_exec("CREATE TABLE t (id INTEGER, v TEXT)");
    sl_test_refused("sqlite_sink",
                    "path: db.sqlite\ntable: t\nkey: [id]\n"
                    "columns: {id: integer, v: text}",
                    sl_test_dir(),
                    "table 't': ON CONFLICT clause does not match any "
                    "PRIMARY KEY or UNIQUE constraint");
}

Test(sqlite_sink, create_false_needs_the_table)
{
    sl_test_refused("sqlite_sink",
                    "path: db.sqlite\ntable: nope\ncreate: false\n"
                    "columns: {id: integer}",
                    sl_test_dir(), "table 'nope': no such table: nope");
}

Test(sqlite_sink, sync_commits_the_open_batch)
{
    sl_harness_t *h = s_sink("path: db.sqlite\ntable: t\n"
                             "columns: {id: integer}");
    s_push(h, "{\"id\":1}");
    s_push(h, "{\"id\":2}");
    s_expect_rows("SELECT count(*) FROM t", "0\n");
    cr_assert_eq(sl_harness_sync(h), 0);
    s_expect_rows("SELECT count(*) FROM t", "2\n");
    s_push(h, "{\"id\":3}");
    cr_assert_eq(sl_harness_sync(h), 0);
    cr_assert_eq(sl_harness_sync(h), 0, "nothing open: still fine");
    s_expect_rows("SELECT group_concat(id) FROM t", "1,2,3\n");
    s_done(h);
}

Test(sqlite_sink, a_full_batch_commits)
{
    sl_harness_t *h = s_sink("path: db.sqlite\ntable: t\nbatch_rows: 2\n"
                             "columns: {id: integer}");
    for (int i = 1; i <= 5; i++) {
        char rec[32];
        snprintf(rec, sizeof(rec), "{\"id\":%d}", i);
        s_push(h, rec);
    }
    s_expect_rows("SELECT count(*) FROM t", "4\n");
    s_done(h);
    s_expect_rows("SELECT count(*) FROM t", "5\n");
}

/* Config errors: each names its position and leaves no database behind. */
static void s_refused(const char *yaml, const char *want)
{
    sl_test_refused("sqlite_sink", yaml, sl_test_dir(), want);
    cr_expect_neq(access(s_db(), F_OK), 0, "validate created the database");
}

Test(sqlite_sink, config_errors)
{
    s_refused("path: db.sqlite\ntable: t\ncolumns:\n  a: integer\n"
              "  b: varchar\n",
              ":5:6: sqlite_sink: column 'b': unknown type "
              "'varchar' (want integer, real, text, blob or json)");
    s_refused("path: db.sqlite\ntable: t\ncolumns: {a: {type: texty}}",
              ":3:21: sqlite_sink: column 'a': unknown type 'texty'");
    s_refused("path: db.sqlite\ntable: t\ncolumns: {a: {field: x}}",
              ":3:14: sqlite_sink: column 'a': 'type' is required");
    s_refused("path: db.sqlite\ntable: t\ncolumns: {a: {type: text, "
              "nope: 1}}",
              ":3:33: sqlite_sink: column 'a': unknown key 'nope'");
    s_refused("path: db.sqlite\ntable: t\ncolumns: {a: integer}\n"
              "key: [a, zz]",
              ":4:10: sqlite_sink: 'key' names 'zz', which is not "
              "in 'columns'");
    s_refused("path: db.sqlite\ntable: t\ncolumns: {a: integer}\n"
              "key: [a, a]",
              ":4:10: sqlite_sink: 'key' names 'a' twice");
    s_refused("path: db.sqlite\ncolumns: {a: integer}",
              "'table' is required (the table to write)");
    s_refused("table: t\ncolumns: {a: integer}",
              "'path' is required (the database file)");
    s_refused("path: db.sqlite\ntable: t",
              "'columns' is required (a map of column: type)");
    s_refused("path: db.sqlite\ntable: t\ncolumns: [a]",
              ":3:10: sqlite_sink: 'columns' must be a non-empty "
              "map");
    s_refused("path: db.sqlite\ntable: t\ncolumns: {a: text}\n"
              "batch_rows: 0",
              ":4:13: sqlite_sink: 'batch_rows' must be >= 1, got 0");
    s_refused("path: db.sqlite\ntable: t\ncolumns: {a: text}\nmode: x",
              "mode");
}
