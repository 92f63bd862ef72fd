/* pg_sink against a private PostgreSQL server: rows read back with SQL
 * after inserts, upserts, every column type, failing records, batching and
 * sync(); config errors with their positions; and connections lost
 * between batches, in the middle of one, while its COPY runs, while its
 * COMMIT runs and after its COMMIT (the answer lost), and a server stopped
 * while records keep coming: every row exactly once. */
#include <criterion/criterion.h>

#include "harness.h"
#include "pgproxy.h"
#include "pgtest.h"
#include "testutil.h"

#include <errno.h>
#include <msgpack.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

SL_PGTEST_SUITE_SERVER()

TestSuite(pg_sink, .init = sl_test_tmpdir_setup,
          .fini = sl_test_tmpdir_teardown, .timeout = 60);

/* The harness runs the stage as 'pg_sink', worker 0. */
#define S_APP "sluice pg_sink/"

static sl_pgtest_t *s_pg;
static char s_dbname[64];

/* The shared server and a fresh database for this test. */
static void s_use_db(const char *db)
{
    s_pg = sl_pgtest_shared();
    snprintf(s_dbname, sizeof(s_dbname), "%s", db);
    sl_pgtest_createdb(s_pg, db);
}

static void s_sql(const char *sql)
{
    sl_pgtest_exec(s_pg, s_dbname, sql);
}

static void s_expect(const char *sql, const char *want)
{
    sl_pgtest_expect(s_pg, s_dbname, sql, want);
}

/* A harness for yaml (after a conninfo line for the test's database, or
 * through port when it is not 0). */
static sl_harness_t *s_sink_port(int port, const char *yaml)
{
    char *ci = port ? sl_pgtest_conninfo_port(s_pg, port, s_dbname)
                    : sl_pgtest_conninfo(s_pg, s_dbname);
    char *text = NULL;
    cr_assert_gt(asprintf(&text, "conninfo: '%s'\n%s", ci, yaml), 0);
    sl_harness_t *h = sl_test_harness("pg_sink", text, sl_test_dir());
    free(text);
    free(ci);
    return h;
}

static sl_harness_t *s_sink(const char *yaml)
{
    return s_sink_port(0, yaml);
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

static void s_push_ids(sl_harness_t *h, int from, int to)
{
    char rec[96];
    for (int i = from; i < to; i++) {
        snprintf(rec, sizeof(rec), "{\"id\":%d,\"v\":\"r%d\"}", i, i);
        s_push(h, rec);
    }
}

static void s_done(sl_harness_t *h)
{
    cr_assert_eq(sl_harness_flush(h), 0, "flush: %s",
                 sl_harness_last_error(h));
    cr_assert_eq(sl_harness_count(h), 0, "a sink emits nothing");
    sl_harness_destroy(&h);
}

/* Every id of 0..n-1 exactly once in table t. */
static void s_expect_once(int n)
{
    char want[96];
    snprintf(want, sizeof(want), "%d|%d|0|%d\n", n, n, n - 1);
    s_expect("SELECT count(*), count(DISTINCT id), min(id), max(id) FROM t",
             want);
}

Test(pg_sink, inserts_rows)
{
    s_use_db("pgs_insert");
    sl_harness_t *h = s_sink("table: t\n"
                             "columns: {id: bigint, name: text, "
                             "score: double precision}");
    char rec[128];
    for (int i = 0; i < 250; i++) {
        snprintf(rec, sizeof(rec),
                 "{\"id\":%d,\"name\":\"n%d\",\"score\":%d.5,\"x\":1}", i, i,
                 i);
        s_push(h, rec);
    }
    s_done(h);
    s_expect("SELECT count(*), sum(id), min(name), max(name), sum(score) "
             "FROM t",
             "250|31125|n0|n99|31250\n");
    s_expect("SELECT id, name, score FROM t WHERE id IN (0, 1, 249) "
             "ORDER BY id",
             "0|n0|0.5\n1|n1|1.5\n249|n249|249.5\n");
    /* The table as created: the types asked for. */
    s_expect("SELECT column_name, data_type FROM information_schema.columns "
             "WHERE table_name = 't' ORDER BY ordinal_position",
             "id|bigint\nname|text\nscore|double precision\n");
}

/* A record with bin and invalid UTF-8 (only msgpack can carry them). */
static void s_pack_bin(msgpack_sbuffer *sb, int id, const char *text,
                       size_t tlen)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 3);
    msgpack_pack_str_with_body(&pk, "id", 2);
    msgpack_pack_int(&pk, id);
    msgpack_pack_str_with_body(&pk, "by", 2);
    msgpack_pack_bin_with_body(&pk, "\x00\x01\\\xff", 4);
    msgpack_pack_str_with_body(&pk, "tx", 2);
    msgpack_pack_str_with_body(&pk, text, tlen);
}

Test(pg_sink, every_column_type)
{
    s_use_db("pgs_types");
    sl_harness_t *h = s_sink(
        "table: ty\n"
        "columns:\n"
        "  - id: bigint\n"
        "  - tx: text\n"
        "  - i: integer\n"
        "  - d: double precision\n"
        "  - ok: boolean\n"
        "  - at: timestamptz\n"
        "  - ns: {type: timestamptz, unit: ns}\n"
        "  - j: {type: jsonb, field: meta}\n"
        "  - by: bytea\n"
        "  - city: {type: text, field: user.city}\n");
    s_push(h, "{\"id\":1,\"tx\":\"tab\\there\\nline\\\\back\\r\\u00e9 "
              "\\\\N\",\"i\":-2147483648,\"d\":0.1,\"ok\":true,"
              "\"at\":\"2024-02-29T23:59:59.5+02:00\","
              "\"ns\":1700000000123456789,"
              "\"meta\":{\"k\":[1,\"a\\tb\\\\c\"],\"q\":null,\"u\":\"\\u00e9\"},"
              "\"by\":\"A\\\\B\",\"user\":{\"city\":\"Oslo\"}}");
    s_push(h, "{\"id\":2,\"i\":true,\"d\":-1e300,\"ok\":false,\"at\":0,"
              "\"ns\":-1,\"meta\":7}");
    s_push(h, "{\"id\":3,\"d\":9007199254740993,\"at\":1.25,"
              "\"meta\":\"s\"}");
    s_push(h, "{\"id\":4,\"at\":\"2024-01-02\",\"meta\":[]}");
    s_push(h, "{\"id\":5,\"at\":\"2024-01-02 03:04\"}");
    s_push(h, "{\"id\":6,\"at\":\"2024-01-02t03:04:05Z\",\"d\":1}");
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    s_pack_bin(&sb, 7, "\xe2\x82\xac", 3);
    cr_assert_eq(sl_harness_push_msgpack(h, sb.data, sb.size), 0, "%s",
                 sl_harness_last_error(h));
    msgpack_sbuffer_destroy(&sb);
    s_done(h);
    s_expect("SELECT id, tx, i, d, ok, at, ns, j::text, "
             "encode(by, 'hex'), city FROM ty ORDER BY id",
             "1|tab\there\nline\\back\r\xc3\xa9 \\N|-2147483648|0.1|t|"
             "2024-02-29 21:59:59.5+00|2023-11-14 22:13:20.123456+00|"
             "{\"k\": [1, \"a\\tb\\\\c\"], \"q\": null, \"u\": \"\xc3\xa9\"}|"
             "415c42|Oslo\n"
             "2|NULL|1|-1e+300|f|1970-01-01 00:00:00+00|"
             "1969-12-31 23:59:59.999999+00|7|NULL|NULL\n"
             "3|NULL|NULL|9.007199254740992e+15|NULL|1970-01-01 00:00:01.25+00|"
             "NULL|\"s\"|NULL|NULL\n"
             "4|NULL|NULL|NULL|NULL|2024-01-02 00:00:00+00|NULL|[]|NULL|"
             "NULL\n"
             "5|NULL|NULL|NULL|NULL|2024-01-02 03:04:00+00|NULL|NULL|NULL|"
             "NULL\n"
             "6|NULL|NULL|1|NULL|2024-01-02 03:04:05+00|NULL|NULL|NULL|"
             "NULL\n"
             "7|\xe2\x82\xac|NULL|NULL|NULL|NULL|NULL|NULL|00015cff|NULL\n");
    s_expect("SELECT column_name, data_type FROM information_schema.columns "
             "WHERE table_name = 'ty' ORDER BY ordinal_position",
             "id|bigint\ntx|text\ni|integer\nd|double precision\n"
             "ok|boolean\nat|timestamp with time zone\n"
             "ns|timestamp with time zone\nj|jsonb\nby|bytea\ncity|text\n");
}

Test(pg_sink, special_doubles)
{
    s_use_db("pgs_doubles");
    sl_harness_t *h = s_sink("table: t\ncolumns: {id: bigint, "
                             "d: double precision}");
    /* JSON has no NaN or infinity: pack them. */
    const double vals[] = {0.0 / 0.0, 1.0 / 0.0, -1.0 / 0.0};
    for (int i = 0; i < 3; i++) {
        msgpack_sbuffer sb;
        msgpack_packer pk;
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 2);
        msgpack_pack_str_with_body(&pk, "id", 2);
        msgpack_pack_int(&pk, i);
        msgpack_pack_str_with_body(&pk, "d", 1);
        msgpack_pack_double(&pk, vals[i]);
        cr_assert_eq(sl_harness_push_msgpack(h, sb.data, sb.size), 0);
        msgpack_sbuffer_destroy(&sb);
    }
    s_done(h);
    s_expect("SELECT id, d FROM t ORDER BY id",
             "0|NaN\n1|Infinity\n2|-Infinity\n");
}

Test(pg_sink, upsert_on_key)
{
    s_use_db("pgs_upsert");
    const char *yaml = "table: kv\nkey: [k]\n"
                       "columns: {k: text, v: bigint, note: text}";
    sl_harness_t *h = s_sink(yaml);
    s_push(h, "{\"k\":\"a\",\"v\":1,\"note\":\"x\"}");
    s_push(h, "{\"k\":\"b\",\"v\":2}");
    s_push(h, "{\"k\":\"a\",\"v\":3}"); /* same batch: the newest wins */
    s_push(h, "{\"v\":4,\"k\":\"b\",\"note\":\"y\"}");
    s_push(h, "{\"k\":\"c\",\"v\":5}");
    s_done(h);
    s_expect("SELECT k, v, note FROM kv ORDER BY k",
             "a|3|NULL\nb|4|y\nc|5|NULL\n");
    /* A second run updates in place. */
    h = s_sink(yaml);
    s_push(h, "{\"k\":\"c\",\"v\":50}");
    s_push(h, "{\"k\":\"d\",\"v\":6}");
    s_done(h);
    s_expect("SELECT k, v FROM kv ORDER BY k", "a|3\nb|4\nc|50\nd|6\n");
    s_expect("SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE "
             "conrelid = 'kv'::regclass",
             "PRIMARY KEY (k)\n");
}

Test(pg_sink, upsert_compound_key_and_key_only_columns)
{
    s_use_db("pgs_upsert2");
    sl_harness_t *h = s_sink("table: m\nkey: [a, b]\nbatch_rows: 1\n"
                             "columns: {a: integer, b: text, n: integer}");
    s_push(h, "{\"a\":1,\"b\":\"x\",\"n\":1}");
    s_push(h, "{\"a\":1,\"b\":\"y\",\"n\":2}");
    s_push(h, "{\"a\":1,\"b\":\"x\",\"n\":10}");
    s_done(h);
    s_expect("SELECT a, b, n FROM m ORDER BY b", "1|x|10\n1|y|2\n");
    h = s_sink("table: seen\nkey: [k]\ncolumns: {k: text}");
    s_push(h, "{\"k\":\"a\"}");
    s_push(h, "{\"k\":\"a\"}");
    s_push(h, "{\"k\":\"b\"}");
    s_done(h);
    s_expect("SELECT k FROM seen ORDER BY k", "a\nb\n");
}

Test(pg_sink, bad_fields_fail_alone_with_exact_messages)
{
    s_use_db("pgs_bad");
    sl_harness_t *h = s_sink("table: t\nbatch_rows: 4\n"
                             "columns: {id: bigint, n: integer, "
                             "name: {type: text, required: true}, "
                             "at: timestamptz, j: jsonb, "
                             "v: {type: double precision, field: m.v}}");
    s_push(h, "{\"id\":1,\"name\":\"a\"}");
    s_push_fails(h, "{\"id\":\"2\",\"name\":\"a\"}",
                 "field 'id' for column 'id' (bigint): got a string");
    s_push_fails(h, "{\"id\":2,\"name\":5}",
                 "field 'name' for column 'name' (text): got an integer");
    s_push_fails(h, "{\"id\":2,\"name\":\"a\",\"n\":2147483648}",
                 "field 'n' for column 'n' (integer): 2147483648 is out of "
                 "range");
    s_push_fails(h, "{\"id\":18446744073709551615,\"name\":\"a\"}",
                 "field 'id' for column 'id' (bigint): 18446744073709551615 "
                 "is out of range");
    s_push_fails(h, "{\"id\":1.5,\"name\":\"a\"}",
                 "field 'id' for column 'id' (bigint): got a number");
    s_push_fails(h, "{\"id\":2,\"name\":\"a\",\"m\":{\"v\":\"1.5\"}}",
                 "field 'm.v' for column 'v' (double precision): got a "
                 "string");
    s_push_fails(h, "{\"id\":2,\"name\":\"a\",\"at\":\"2023-02-29\"}",
                 "field 'at' for column 'at' (timestamptz): \"2023-02-29\" "
                 "is not an ISO 8601 date and time");
    s_push_fails(h, "{\"id\":2,\"name\":\"a\",\"at\":\"yesterday at "
                    "noon, or so they say\"}",
                 "field 'at' for column 'at' (timestamptz): \"yesterday at "
                 "noon, or so they sa...\" is not an ISO 8601 date and "
                 "time");
    s_push_fails(h, "{\"id\":2,\"name\":\"a\",\"at\":true}",
                 "field 'at' for column 'at' (timestamptz): got a boolean");
    s_push_fails(h, "{\"id\":2,\"name\":\"a\",\"at\":253402300800}",
                 "field 'at' for column 'at' (timestamptz): 253402300800 is "
                 "out of range (years 1 to 9999)");
    s_push_fails(h, "{\"id\":2,\"name\":\"a\\u0000b\"}",
                 "field 'name' for column 'name' (text): the string holds a "
                 "NUL byte, which PostgreSQL text cannot store");
    s_push_fails(h, "{\"id\":2,\"name\":\"a\",\"j\":{\"k\":\"\\u0000\"}}",
                 "field 'j' for column 'j' (jsonb): a string holds a NUL "
                 "character, which jsonb cannot store");
    s_push_fails(h, "{\"id\":2}",
                 "field 'name' for column 'name' is required but missing");
    s_push_fails(h, "{\"id\":2,\"name\":null}",
                 "field 'name' for column 'name' is required but null");
    s_push(h, "{\"id\":3,\"name\":\"c\",\"m\":{\"v\":2.25},\"n\":-7}");
    s_done(h);
    s_expect("SELECT id, name, n, v FROM t ORDER BY id",
             "1|a|NULL|NULL\n3|c|-7|2.25\n");

    /* Bad UTF-8 needs msgpack, and a table whose columns fit the record. */
    h = s_sink("table: t2\ncolumns: {id: bigint, tx: text, by: bytea}");
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    s_pack_bin(&sb, 2, "ok\xc3(", 4);
    cr_assert_eq(sl_harness_push_msgpack(h, sb.data, sb.size), -EINVAL);
    cr_assert_str_eq(sl_harness_last_error(h),
                     "field 'tx' for column 'tx' (text): not valid UTF-8 "
                     "(byte 2)");
    msgpack_sbuffer_destroy(&sb);
    s_done(h);
    s_expect("SELECT count(*) FROM t2", "0\n");
}

Test(pg_sink, a_batch_is_visible_only_once_committed)
{
    s_use_db("pgs_batch");
    sl_harness_t *h = s_sink("table: t\nbatch_rows: 3\n"
                             "columns: {id: bigint, v: text}");
    s_push_ids(h, 0, 2);
    s_expect("SELECT count(*) FROM t", "0\n");
    s_push_ids(h, 2, 3);
    s_expect("SELECT count(*) FROM t", "3\n");
    s_push_ids(h, 3, 7);
    s_expect("SELECT count(*) FROM t", "6\n");
    /* The last committed batch's key, and only that, is kept. */
    s_expect("SELECT sink, rows FROM sluice_pg_batches", "pg_sink|3\n");
    cr_assert_eq(sl_harness_sync(h), 0, "%s", sl_harness_last_error(h));
    s_expect("SELECT count(*) FROM t", "7\n");
    s_expect("SELECT sink, rows FROM sluice_pg_batches", "pg_sink|1\n");
    cr_assert_eq(sl_harness_sync(h), 0, "nothing buffered: still fine");
    s_push_ids(h, 7, 8);
    s_done(h);
    s_expect_once(8);
    s_expect("SELECT count(*) FROM sluice_pg_batches", "0\n");
}

Test(pg_sink, schema_and_quoted_names)
{
    s_use_db("pgs_schema");
    s_sql("CREATE SCHEMA \"Odd \"\"s\"\"\"");
    sl_harness_t *h = s_sink("schema: 'Odd \"s\"'\ntable: 'my \"t\"'\n"
                             "columns: {'i d': bigint}");
    s_push(h, "{\"i d\":5}");
    s_done(h);
    s_expect("SELECT \"i d\" FROM \"Odd \"\"s\"\"\".\"my \"\"t\"\"\"",
             "5\n");
    s_expect("SELECT count(*) FROM \"Odd \"\"s\"\"\".sluice_pg_batches",
             "0\n");
}

Test(pg_sink, conninfo_from_the_environment)
{
    s_use_db("pgs_env");
    char *ci = sl_pgtest_conninfo(s_pg, s_dbname);
    setenv("SL_TEST_PG_URL", ci, 1);
    free(ci);
    sl_harness_t *h = sl_test_harness("pg_sink",
                                      "conninfo_env: SL_TEST_PG_URL\n"
                                      "table: t\ncolumns: {id: bigint}",
                                      sl_test_dir());
    s_push(h, "{\"id\":1}");
    s_done(h);
    s_expect("SELECT id FROM t", "1\n");
    unsetenv("SL_TEST_PG_URL");
    sl_test_refused("pg_sink",
                    "conninfo_env: SL_TEST_PG_URL\ntable: t\n"
                    "columns: {id: bigint}",
                    sl_test_dir(),
                    ":1:15: pg_sink: environment variable 'SL_TEST_PG_URL' "
                    "is not set (it should hold the libpq connection "
                    "string)");
}

/* ---- config errors ---------------------------------------------------------- */

static void s_refused(const char *yaml, const char *want)
{
    sl_test_refused("pg_sink", yaml, sl_test_dir(), want);
}

Test(pg_sink, config_errors_with_positions)
{
    /* Found by validate: no server is asked. */
    s_refused("conninfo: x\ntable: t\ncolumns:\n  a: bigint\n  b: varchar\n",
              ":5:6: pg_sink: column 'b': unknown type 'varchar' (want "
              "text, bigint, integer, double precision, boolean, "
              "timestamptz, jsonb or bytea)");
    s_refused("conninfo: x\ntable: t\ncolumns: {a: {type: texty}}",
              ":3:21: pg_sink: column 'a': unknown type 'texty'");
    s_refused("conninfo: x\ntable: t\ncolumns: {a: {field: x}}",
              ":3:14: pg_sink: column 'a': 'type' is required");
    s_refused("conninfo: x\ntable: t\ncolumns: {a: {type: text, nope: 1}}",
              ":3:33: pg_sink: column 'a': unknown key 'nope' (want type, "
              "field, required, unit)");
    s_refused("conninfo: x\ntable: t\ncolumns: {a: {type: text, unit: ms}}",
              ":3:33: pg_sink: column 'a': 'unit' applies to timestamptz "
              "columns only");
    s_refused("conninfo: x\ntable: t\n"
              "columns: {a: {type: timestamptz, unit: h}}",
              ":3:40: pg_sink: column 'a': unknown unit 'h' (want s, ms, us "
              "or ns)");
    s_refused("conninfo: x\ntable: t\ncolumns: {a: bigint}\nkey: [a, zz]",
              ":4:10: pg_sink: 'key' names 'zz', which is not in "
              "'columns'");
    s_refused("conninfo: x\ntable: t\ncolumns: {a: bigint}\nkey: [a, a]",
              ":4:10: pg_sink: 'key' names 'a' twice");
    s_refused("conninfo: x\ntable: t\ncolumns: {a: bigint}\nkey: a",
              ":4:6: pg_sink: 'key' must be a non-empty list of column "
              "names");
    s_refused("conninfo: x\ntable: t\ncolumns:\n  - a: bigint\n  - b\n",
              ":5:5: pg_sink: each item of 'columns' must be one 'column: "
              "type' pair");
    s_refused("conninfo: x\ntable: t\ncolumns:\n  - a: bigint\n"
              "  - a: text\n",
              ":5:8: pg_sink: column 'a' is listed twice");
    s_refused("conninfo: x\ntable: t\ncolumns: {sluice_row: bigint}",
              ":3:23: pg_sink: column name 'sluice_row' is reserved");
    s_refused("conninfo: x\ncolumns: {a: bigint}",
              "'table' is required (the table to write)");
    s_refused("table: t\ncolumns: {a: bigint}",
              "'conninfo' is required (a libpq connection string), or "
              "'conninfo_env' naming an environment variable that holds "
              "one");
    s_refused("conninfo: x\nconninfo_env: Y\ntable: t\ncolumns: {a: bigint}",
              ":2:15: pg_sink: give either 'conninfo' or 'conninfo_env', "
              "not both");
    s_refused("conninfo_env: 'my var'\ntable: t\ncolumns: {a: bigint}",
              ":1:15: pg_sink: 'conninfo_env' must be an environment "
              "variable name, got 'my var'");
    s_refused("conninfo: ''\ntable: t\ncolumns: {a: bigint}",
              ":1:11: pg_sink: 'conninfo' must be a non-empty libpq "
              "connection string");
    s_refused("conninfo: x\ntable: t",
              "'columns' is required (a map of column: type)");
    s_refused("conninfo: x\ntable: t\ncolumns: []",
              ":3:10: pg_sink: 'columns' must be a non-empty map (or list) "
              "of column: type");
    s_refused("conninfo: x\ntable: t\ncolumns: {a: text}\nbatch_rows: 0",
              ":4:13: pg_sink: 'batch_rows' must be 1..1000000, got 0");
    s_refused("conninfo: x\ntable: t\ncolumns: {a: text}\nretry_ms: -1",
              ":4:11: pg_sink: 'retry_ms' must be 0..86400000, got -1");
    s_refused("conninfo: x\ntable: t\ncolumns: {a: text}\n"
              "connect_timeout_ms: x",
              ":4:21: pg_sink: ");
    s_refused("conninfo: x\ntable: t\ncolumns: {a: text}\nschema: ''",
              ":4:9: pg_sink: 'schema' must be a non-empty name");
    s_refused("conninfo: x\ntable: t\ncolumns: {a: text}\nmode: x",
              "unknown key 'mode' for plugin 'pg_sink'");
}

Test(pg_sink, what_only_the_server_knows_stops_the_start)
{
    s_use_db("pgs_start");
    char *ci = sl_pgtest_conninfo(s_pg, s_dbname);
    char yaml[1024];
    /* Nothing listens on port 1. */
    sl_test_refused("pg_sink",
                    "conninfo: 'host=127.0.0.1 port=1 dbname=x "
                    "sslmode=disable'\ntable: t\ncolumns: {id: bigint}",
                    sl_test_dir(),
                    ":1:11: pg_sink: cannot connect to PostgreSQL: cannot "
                    "connect: connection to server at \"127.0.0.1\", port 1 "
                    "failed: Connection refused");
    snprintf(yaml, sizeof(yaml), "conninfo: '%s'\ntable: nope\n"
                                 "create: false\ncolumns: {id: bigint}", ci);
    sl_test_refused("pg_sink", yaml, sl_test_dir(),
                    ":2:8: pg_sink: table 'nope': relation \"nope\" does not "
                    "exist");
    s_sql("CREATE TABLE t (id bigint)");
    snprintf(yaml, sizeof(yaml), "conninfo: '%s'\ntable: t\n"
                                 "columns: {id: bigint, v: text}", ci);
    sl_test_refused("pg_sink", yaml, sl_test_dir(),
                    ":2:8: pg_sink: table 't': column \"v\" of relation \"t\" "
                    "does not exist");
    snprintf(yaml, sizeof(yaml), "conninfo: '%s'\ntable: t\nkey: [id]\n"
                                 "columns: {id: bigint}", ci);
    sl_test_refused("pg_sink", yaml, sl_test_dir(),
                    ":2:8: pg_sink: table 't': there is no unique or exclusion "
                    "constraint matching the ON CONFLICT specification");
    s_sql("CREATE TABLE bl (b bytea)");
    snprintf(yaml, sizeof(yaml), "conninfo: '%s'\ntable: bl\n"
                                 "columns: {b: boolean}", ci);
    sl_test_refused("pg_sink", yaml, sl_test_dir(),
                    ":2:8: pg_sink: table 'bl': column \"b\" is of type bytea "
                    "but expression is of type boolean");
    free(ci);
}

/* ---- rows the server refuses ------------------------------------------------ */

Test(pg_sink, a_row_a_constraint_refuses_is_isolated)
{
    s_use_db("pgs_refuse");
    s_sql("CREATE TABLE t (id bigint, n bigint CHECK (n > 0))");
    sl_harness_t *h = s_sink("table: t\nbatch_rows: 5\n"
                             "columns: {id: bigint, n: bigint}");
    /* Record 2 of the batch is refused when the batch is written, after it
     * was accepted: logged, the four others written once. */
    s_push(h, "{\"id\":1,\"n\":1}");
    s_push(h, "{\"id\":2,\"n\":-1}");
    s_push(h, "{\"id\":3,\"n\":1}");
    s_push(h, "{\"id\":4,\"n\":1}");
    s_push(h, "{\"id\":5,\"n\":1}");
    s_expect("SELECT string_agg(id::text, ',' ORDER BY id) FROM t",
             "1,3,4,5\n");
    /* The record being written when its own row is refused fails. */
    s_push(h, "{\"id\":6,\"n\":1}");
    s_push(h, "{\"id\":7,\"n\":1}");
    s_push(h, "{\"id\":8,\"n\":1}");
    s_push(h, "{\"id\":9,\"n\":1}");
    cr_assert_eq(sl_harness_push_json(h, "{\"id\":10,\"n\":0}"), -EINVAL);
    cr_assert_str_eq(sl_harness_last_error(h),
                     "table 't': row refused by the server: new row for "
                     "relation \"t\" violates check constraint \"t_n_check\" "
                     "(Failing row contains (10, 0).)");
    s_expect("SELECT string_agg(id::text, ',' ORDER BY id) FROM t",
             "1,3,4,5,6,7,8,9\n");
    /* The accepted record that was not written fails the run's end (and
     * every sync), so the run is not reported clean. */
    cr_assert_lt(sl_harness_sync(h), 0);
    cr_assert_lt(sl_harness_flush(h), 0);
    sl_harness_destroy(&h);
}

/* ---- lost connections ---------------------------------------------------------- */

Test(pg_sink, backend_killed_between_batches_and_within_one)
{
    s_use_db("pgs_kill");
    sl_harness_t *h = s_sink("table: t\nbatch_rows: 5\nretry_ms: 5000\n"
                             "columns: {id: bigint, v: text}");
    s_push_ids(h, 0, 5);
    s_expect("SELECT count(*) FROM t", "5\n");
    cr_assert_eq(sl_pgtest_terminate(s_pg, s_dbname, S_APP), 1);
    s_push_ids(h, 5, 10); /* the next batch finds the connection dead */
    s_expect("SELECT count(*) FROM t", "10\n");
    s_push_ids(h, 10, 13);
    cr_assert_eq(sl_pgtest_terminate(s_pg, s_dbname, S_APP), 1);
    s_push_ids(h, 13, 15); /* killed with three rows buffered */
    s_expect("SELECT count(*) FROM t", "15\n");
    s_push_ids(h, 15, 17);
    cr_assert_eq(sl_pgtest_terminate(s_pg, s_dbname, S_APP), 1);
    cr_assert_eq(sl_harness_sync(h), 0, "%s", sl_harness_last_error(h));
    s_done(h);
    s_expect_once(17);
}

/* Terminates the sink's backend once it sleeps in pg_sleep (a trigger). */
typedef struct s_killer {
    pthread_t th;
    atomic_int killed;
    char db[64];
} s_killer_t;

static void *s_killer_main(void *arg)
{
    s_killer_t *k = arg;
    char sql[512];
    double end = sl_test_now() + 20;
    const struct timespec tick = {0, 2 * 1000 * 1000};

    snprintf(sql, sizeof(sql),
             "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM "
             "pg_stat_activity WHERE datname = '%s' AND application_name "
             "LIKE '" S_APP "%%' AND wait_event = 'PgSleep'",
             k->db);
    while (sl_test_now() < end) {
        char *out = NULL;
        if (sl_pgtest_try_query(s_pg, "postgres", sql, &out) == 0 &&
            atoi(out) > 0) {
            atomic_store(&k->killed, atoi(out));
            free(out);
            return NULL;
        }
        free(out);
        nanosleep(&tick, NULL);
    }
    return NULL;
}

static void s_killer_start(s_killer_t *k)
{
    atomic_init(&k->killed, 0);
    snprintf(k->db, sizeof(k->db), "%s", s_dbname);
    cr_assert_eq(pthread_create(&k->th, NULL, s_killer_main, k), 0);
}

static int s_killer_join(s_killer_t *k)
{
    pthread_join(k->th, NULL);
    return atomic_load(&k->killed);
}

Test(pg_sink, backend_killed_while_the_copy_runs)
{
    s_use_db("pgs_kill_copy");
    s_sql("CREATE TABLE t (id bigint, v text);"
          "CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS $$ "
          "BEGIN IF NEW.id = 13 THEN PERFORM pg_sleep(0.3); END IF; "
          "RETURN NEW; END $$;"
          "CREATE TRIGGER slow BEFORE INSERT ON t FOR EACH ROW "
          "EXECUTE FUNCTION slow();");
    sl_harness_t *h = s_sink("table: t\nbatch_rows: 10\nretry_ms: 5000\n"
                             "columns: {id: bigint, v: text}");
    s_push_ids(h, 0, 10);
    s_killer_t k;
    s_killer_start(&k);
    s_push_ids(h, 10, 20); /* row 13 sleeps in the COPY: killed there */
    cr_assert_eq(s_killer_join(&k), 1, "the COPY was not caught sleeping");
    s_done(h);
    s_expect_once(20);
}

Test(pg_sink, backend_killed_while_the_commit_runs)
{
    s_use_db("pgs_kill_commit");
    /* A deferred constraint trigger runs inside COMMIT. */
    s_sql("CREATE TABLE t (id bigint, v text);"
          "CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS $$ "
          "BEGIN IF NEW.id = 13 THEN PERFORM pg_sleep(0.3); END IF; "
          "RETURN NULL; END $$;"
          "CREATE CONSTRAINT TRIGGER slow AFTER INSERT ON t DEFERRABLE "
          "INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION slow();");
    sl_harness_t *h = s_sink("table: t\nbatch_rows: 10\nretry_ms: 5000\n"
                             "columns: {id: bigint, v: text}");
    s_push_ids(h, 0, 10);
    s_killer_t k;
    s_killer_start(&k);
    s_push_ids(h, 10, 20);
    cr_assert_eq(s_killer_join(&k), 1, "the COMMIT was not caught sleeping");
    s_push_ids(h, 20, 25);
    s_done(h);
    s_expect_once(25);
}

Test(pg_sink, commit_answer_lost_while_the_commit_completes)
{
    s_use_db("pgs_lost_ack");
    /* The commit takes 0.5 s, so the sink's new connection asks about the
     * batch while the first one is still committing. */
    s_sql("CREATE TABLE t (id bigint, v text);"
          "CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS $$ "
          "BEGIN IF NEW.id = 13 THEN PERFORM pg_sleep(0.5); END IF; "
          "RETURN NULL; END $$;"
          "CREATE CONSTRAINT TRIGGER slow AFTER INSERT ON t DEFERRABLE "
          "INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION slow();");
    sl_pgproxy_t *px = sl_pgproxy_start(s_pg);
    sl_harness_t *h = s_sink_port(sl_pgproxy_port(px),
                                  "table: t\nbatch_rows: 10\nretry_ms: 5000\n"
                                  "columns: {id: bigint, v: text}");
    s_push_ids(h, 0, 10);
    sl_pgproxy_arm(px, 0);
    s_push_ids(h, 10, 20);
    cr_assert_eq(sl_pgproxy_cuts(px), 1);
    s_expect_once(20);
    /* A lost answer without the slow commit, then more batches. */
    sl_pgproxy_arm(px, 1);
    s_push_ids(h, 20, 40);
    cr_assert_eq(sl_pgproxy_cuts(px), 2);
    s_push_ids(h, 40, 45);
    s_done(h);
    s_expect_once(45);
    sl_pgproxy_stop(&px);
}

Test(pg_sink, a_commit_slower_than_the_lock_timeout_is_waited_for)
{
    s_use_db("pgs_lost_slow");
    /* The lost commit takes 1.5 s; the sink's new attempts give up waiting
     * for its key after lock_timeout (0.5 s) each: they must keep the key
     * (a fresh one would write the rows twice) until the commit ends. */
    s_sql("CREATE TABLE t (id bigint, v text);"
          "CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS $$ "
          "BEGIN IF NEW.id = 13 THEN PERFORM pg_sleep(1.5); END IF; "
          "RETURN NULL; END $$;"
          "CREATE CONSTRAINT TRIGGER slow AFTER INSERT ON t DEFERRABLE "
          "INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION slow();");
    sl_pgproxy_t *px = sl_pgproxy_start(s_pg);
    sl_harness_t *h = s_sink_port(sl_pgproxy_port(px),
                                  "table: t\nbatch_rows: 10\n"
                                  "retry_ms: 10000\ntimeout_ms: 1000\n"
                                  "columns: {id: bigint, v: text}");
    s_push_ids(h, 0, 10);
    sl_pgproxy_arm(px, 0);
    double t0 = sl_test_now();
    s_push_ids(h, 10, 20);
    cr_assert_eq(sl_pgproxy_cuts(px), 1);
    cr_assert_geq(sl_test_now() - t0, 1.4, "the sink did not wait");
    s_done(h);
    s_expect_once(20);
    sl_pgproxy_stop(&px);
}

Test(pg_sink, server_stopped_while_records_keep_coming, .timeout = 60)
{
    sl_pgtest_t *pg = sl_pgtest_private();
    s_pg = pg;
    snprintf(s_dbname, sizeof(s_dbname), "postgres");
    sl_harness_t *h = s_sink("table: t\nbatch_rows: 10\nretry_ms: 300\n"
                             "connect_timeout_ms: 500\n"
                             "columns: {id: bigint, v: text}");
    s_push_ids(h, 0, 25);
    cr_assert_eq(sl_pgtest_server_stop(pg), 0);
    /* Ten more fill the batch (the last one's write fails: the rows wait);
     * from then on each record fails, to be tried again by the host. */
    int next = 25, failed = 0;
    char rec[96];
    for (; next < 40; next++) {
        snprintf(rec, sizeof(rec), "{\"id\":%d,\"v\":\"r%d\"}", next, next);
        if (sl_harness_push_json(h, rec) == 0)
            continue;
        failed++;
        cr_assert_not_null(strstr(sl_harness_last_error(h),
                                  "table 't': cannot write (10 rows wait): "),
                           "%s", sl_harness_last_error(h));
        break;
    }
    cr_assert_eq(next, 30, "the record after the full batch fails");
    cr_assert_eq(failed, 1);
    cr_assert_lt(sl_harness_sync(h), 0, "sync with rows unwritten");
    cr_assert_eq(sl_pgtest_server_start(pg), 0);
    /* The failed record comes again, as the host's retry would bring it. */
    s_push_ids(h, next, 60);
    s_done(h);
    s_expect_once(60);
    sl_pgtest_destroy(&pg);
}
