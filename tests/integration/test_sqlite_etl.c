/* file_source (JSON lines) -> sqlite_sink through `sluice run`: the rows in
 * the database, the record that fails the sink named in the log and
 * counted, and a balanced ledger; with `state_dir:` a second run resumes
 * after the committed rows and writes nothing twice. A record the sink
 * refuses is retried (the host's default policy) and then dead-lettered. */
#include <criterion/criterion.h>

#include "testutil.h"

#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

TestSuite(sqlite_etl, .init = sl_test_tmpdir_setup,
          .fini = sl_test_tmpdir_teardown);

static const char s_input[] =
    "{\"id\":1,\"user\":{\"name\":\"ann\"},\"amount\":10,\"tags\":[\"a\"]}\n"
    "{\"id\":2,\"user\":{\"name\":\"bob\"},\"amount\":2.5}\n"
    "{\"id\":3,\"user\":{\"name\":\"cy\"},\"amount\":\"lots\"}\n"
    "not json\n"
    "{\"id\":1,\"user\":{\"name\":\"ann2\"},\"amount\":11}\n"
    "{\"id\":4,\"amount\":-1,\"tags\":{\"k\":null}}\n";

static const char s_topology[] =
    "stages:\n"
    "  - name: src\n"
    "    plugin: file_source\n"
    "    config: {path: in.jsonl, format: jsonl}\n"
    "  - name: db\n"
    "    plugin: sqlite_sink\n"
    "    config:\n"
    "      path: out.db\n"
    "      table: orders\n"
    "      key: [id]\n"
    "      batch_rows: 2\n"
    "      columns:\n"
    "        id: integer\n"
    "        name: {type: text, field: user.name}\n"
    "        amount: real\n"
    "        tags: json\n";

static char *s_path(const char *name)
{
    char *p = NULL;
    cr_assert_gt(asprintf(&p, "%s/%s", sl_test_dir(), name), 0);
    return p;
}

/* Runs the topology (text plus extra) and returns the exit code; *log gets
 * the output. */
static int s_run(const char *extra, char **log)
{
    char *topo = s_path("etl.yaml"), *in = s_path("in.jsonl");
    char *yaml = NULL, *cmd = NULL;
    cr_assert_eq(sl_test_write_file(in, s_input), 0);
    cr_assert_gt(asprintf(&yaml, "%s%s", extra, s_topology), 0);
    cr_assert_eq(sl_test_write_file(topo, yaml), 0);
    cr_assert_gt(asprintf(&cmd, "'%s' run '%s' 2>&1", sl_test_cli(), topo),
                 0);
    int code = sl_test_run(cmd, log);
    cr_assert_not_null(*log);
    free(cmd);
    free(yaml);
    free(in);
    free(topo);
    return code;
}

/* The summary row of stage: in (a number, or "<n>r" for a source), out,
 * filtered, dead (failed after its retries, or unreadable input). */
static void s_row(const char *log, const char *stage, uint64_t v[4])
{
    char head[64], in[32];
    snprintf(head, sizeof(head), "\n%s ", stage);
    const char *p = strstr(log, head);
    cr_assert_not_null(p, "no summary row for '%s' in:\n%s", stage, log);
    int n = sscanf(p + 1, "%*s %*s %*u %31s %" SCNu64 " %" SCNu64
                          " %" SCNu64, in, &v[1], &v[2], &v[3]);
    cr_assert_eq(n, 4, "cannot read the row of '%s' in:\n%s", stage, log);
    v[0] = strtoull(in, NULL, 10);
}

static char *s_rows(void)
{
    char *db_path = s_path("out.db");
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    cr_assert_eq(sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL),
                 SQLITE_OK, "%s", db_path);
    cr_assert_eq(sqlite3_prepare_v2(db, "SELECT id, name, amount, tags FROM "
                                        "orders ORDER BY id",
                                    -1, &st, NULL),
                 SQLITE_OK, "%s", sqlite3_errmsg(db));
    while (sqlite3_step(st) == SQLITE_ROW) {
        for (int i = 0; i < 4; i++) {
            const unsigned char *t = sqlite3_column_text(st, i);
            fprintf(f, "%s%s", i ? "|" : "", t ? (const char *)t : "NULL");
        }
        fputc('\n', f);
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    fclose(f);
    free(db_path);
    return buf;
}

static const char s_want[] = "1|ann2|11.0|NULL\n"
                             "2|bob|2.5|NULL\n"
                             "4|NULL|-1.0|{\"k\":null}\n";

static void s_check_first_run(const char *log)
{
    uint64_t src[4], db[4];
    s_row(log, "src", src);
    s_row(log, "db", db);
    cr_expect_eq(src[0], 6, "lines read:\n%s", log);
    cr_expect_eq(src[1], 5);
    cr_expect_eq(src[3], 1, "the line that is not JSON");
    cr_expect_eq(db[0], 5);
    cr_expect_eq(db[3], 1, "the record with a string amount");
    cr_expect_not_null(strstr(log, "field 'amount' for column 'amount' "
                                   "(real): got a string"),
                       "%s", log);
    cr_expect_not_null(strstr(log, "ledger balanced"), "%s", log);
    char *rows = s_rows();
    cr_expect_str_eq(rows, s_want);
    free(rows);
}

Test(sqlite_etl, jsonl_into_a_table, .timeout = 60)
{
    char *log = NULL;
    int code = s_run("", &log);
    cr_assert_eq(code, 0, "exit %d:\n%s", code, log);
    s_check_first_run(log);
    free(log);
}

Test(sqlite_etl, resumes_after_committed_rows, .timeout = 60)
{
    char *log = NULL;
    int code = s_run("state_dir: state\n", &log);
    cr_assert_eq(code, 0, "exit %d:\n%s", code, log);
    s_check_first_run(log);
    free(log);

    /* The positions committed after the sink's sync: nothing is read
     * again, and the table is as it was. */
    code = s_run("state_dir: state\n", &log);
    cr_assert_eq(code, 0, "exit %d:\n%s", code, log);
    uint64_t db[4];
    s_row(log, "db", db);
    cr_expect_eq(db[0], 0, "records written twice:\n%s", log);
    cr_expect_not_null(strstr(log, "ledger balanced"), "%s", log);
    char *rows = s_rows();
    cr_expect_str_eq(rows, s_want);
    free(rows);
    free(log);
}
