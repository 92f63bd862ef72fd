/* topologies/csv_orders_pg.yaml through `sluice run` against a private
 * PostgreSQL server: the exact rows in the table (count, sums), the exact
 * dead letters and their reasons (`sluice dlq inspect --json`), a balanced
 * ledger in the --report JSON, and a second run (upsert on the key, three
 * sink workers) that changes nothing. Then generator -> pg_sink with the
 * server stopped and started again during the run: the sink's failed
 * records are retried by the host, and every row lands exactly once. */
#include <criterion/criterion.h>

#include "pgtest.h"
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

SL_PGTEST_SUITE_SERVER()

TestSuite(pg_etl, .init = sl_test_tmpdir_setup,
          .fini = sl_test_tmpdir_teardown, .timeout = 60);

static char *s_path(const char *name)
{
    char *p = NULL;
    cr_assert_gt(asprintf(&p, "%s/%s", sl_test_dir(), name), 0);
    return p;
}

static void s_copy(const char *from, const char *to)
{
    char *text = sl_test_read_file(from, NULL);
    cr_assert_not_null(text, "cannot read %s", from);
    char *dst = s_path(to);
    cr_assert_eq(sl_test_write_file(dst, text), 0, "%s", dst);
    free(dst);
    free(text);
}

/* The topology and its data, in the test's folder (paths in the file are
 * relative to it, and the dead letters go to its out/). */
static void s_stage_topology(void)
{
    char *data = s_path("data"), *out = s_path("out");
    cr_assert_eq(mkdir(data, 0755), 0);
    cr_assert_eq(mkdir(out, 0755), 0);
    free(data);
    free(out);
    s_copy(SL_TEST_SOURCE_DIR "/topologies/csv_orders_pg.yaml",
           "csv_orders_pg.yaml");
    s_copy(SL_TEST_SOURCE_DIR "/topologies/data/orders_mixed.csv",
           "data/orders_mixed.csv");
}

static int s_cli(char **out, const char *args)
{
    char *cmd = NULL;
    cr_assert_gt(asprintf(&cmd, "cd '%s' && '%s' %s 2>&1", sl_test_dir(),
                          sl_test_cli(), args),
                 0);
    int rc = sl_test_run(cmd, out);
    cr_assert_not_null(*out);
    free(cmd);
    return rc;
}

static size_t s_count(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

/* The number after "key": in the report's totals. */
static long s_total(const char *report, const char *key)
{
    const char *t = strstr(report, "\"totals\":");
    char pat[64];
    cr_assert_not_null(t, "no totals in %s", report);
    snprintf(pat, sizeof(pat), "\"%s\":", key);
    const char *p = strstr(t, pat);
    cr_assert_not_null(p, "no %s in the totals of %s", key, report);
    return strtol(p + strlen(pat), NULL, 10);
}

static char *s_report(void)
{
    char *path = s_path("report.json");
    char *text = sl_test_read_file(path, NULL);
    cr_assert_not_null(text, "no report at %s", path);
    free(path);
    return text;
}

static void s_expect_ledger(long read, long delivered, long dead)
{
    char *r = s_report();
    cr_expect_not_null(strstr(r, "\"ledger_ok\":true,\"failed\":false"),
                       "%s", r);
    cr_expect_eq(s_total(r, "read"), read, "%s", r);
    cr_expect_eq(s_total(r, "delivered"), delivered, "%s", r);
    cr_expect_eq(s_total(r, "dead_lettered"), dead, "%s", r);
    cr_expect_eq(s_total(r, "lost"), 0, "%s", r);
    free(r);
}

/* The good rows of orders_mixed.csv: 52 orders, their amounts and
 * quantities. */
static const char s_sums[] = "52|14579.61|161|200001|200060\n";
static const char s_sums_sql[] =
    "SELECT count(*), round(sum(amount)::numeric, 2), sum(quantity), "
    "min(order_id), max(order_id) FROM orders";

/* Each dead letter's stage and reason, as `dlq inspect --json` writes
 * them. */
static const char *const s_dead[] = {
    "\"stage\":\"read\"",
    "/data/orders_mixed.csv:6: expected 6 fields, got 3\"",
    "\"stage\":\"types\"",
    "\"error\":\"cast amount to float: \\\"abc\\\" is not a number\"",
    "\"stage\":\"types\"",
    "\"error\":\"cast amount to float: \\\"12,50\\\" is not a number\"",
    "\"stage\":\"types\"",
    "\"error\":\"cast amount to float: \\\"\\\" is not a number\"",
    "\"stage\":\"check\"",
    "\"error\":\"lua: quantity must be positive, got -2\"",
    "\"stage\":\"check\"",
    "\"error\":\"lua: quantity must be positive, got 0\"",
    "\"stage\":\"types\"",
    "\"error\":\"cast quantity to int: \\\"two\\\" is not an integer\"",
    "\"stage\":\"store\"",
    "\"error\":\"field 'ordered_at' for column 'ordered_at' (timestamptz): "
    "\\\"2026-02-30T10:00:00Z\\\" is not an ISO 8601 date and time\"",
};
#define S_NDEAD (sizeof(s_dead) / sizeof(s_dead[0]) / 2)

/* Every dead letter once per run, with its reason on its own entry. */
static void s_expect_dead_letters(size_t runs)
{
    char *out = NULL;
    int rc = s_cli(&out, "dlq inspect --json out/csv_orders_pg.dlq.jsonl");
    cr_assert_eq(rc, 0, "%s", out);
    cr_expect_eq(s_count(out, "\n"), S_NDEAD * runs, "%s", out);
    for (size_t i = 0; i < S_NDEAD; i++) {
        size_t hits = 0;
        for (const char *line = out; *line;) {
            const char *end = strchr(line, '\n');
            size_t len = end ? (size_t)(end - line) : strlen(line);
            char *one = strndup(line, len);
            cr_assert_not_null(one);
            if (strstr(one, s_dead[2 * i]) && strstr(one, s_dead[2 * i + 1]))
                hits++;
            free(one);
            line += len + (end ? 1 : 0);
        }
        cr_expect_eq(hits, runs, "%s / %s: %zu times in\n%s", s_dead[2 * i],
                     s_dead[2 * i + 1], hits, out);
    }
    free(out);
}

Test(pg_etl, csv_orders_into_postgres_and_a_rerun_upserts)
{
    sl_pgtest_t *pg = sl_pgtest_shared();
    sl_pgtest_createdb(pg, "etl_orders");
    char *ci = sl_pgtest_conninfo(pg, "etl_orders");
    cr_assert_eq(setenv("SLUICE_PG_CONNINFO", ci, 1), 0);
    free(ci);
    s_stage_topology();

    char *out = NULL;
    int rc = s_cli(&out, "run csv_orders_pg.yaml --report report.json");
    cr_assert_eq(rc, 0, "exit %d:\n%s", rc, out);
    cr_expect_not_null(strstr(out, "ledger balanced"), "%s", out);
    free(out);
    sl_pgtest_expect(pg, "etl_orders", s_sums_sql, s_sums);
    sl_pgtest_expect(pg, "etl_orders",
                     "SELECT order_id, customer, product, quantity, amount, "
                     "ordered_at FROM orders WHERE order_id IN (200001, "
                     "200060) ORDER BY order_id",
                     "200001|C0166|headset|4|427.59|2026-03-01 00:00:00+00\n"
                     "200060|C0396|desk|5|355.92|2026-03-15 "
                     "05:47:31+00\n");
    /* The bad rows are not in the table. */
    sl_pgtest_expect(pg, "etl_orders",
                     "SELECT count(*) FROM orders WHERE order_id IN (200005, "
                     "200012, 200018, 200024, 200030, 200036, 200042, "
                     "200048)",
                     "0\n");
    s_expect_ledger(60, 52, 8);
    s_expect_dead_letters(1);
    /* A clean end leaves no bookkeeping behind. */
    sl_pgtest_expect(pg, "etl_orders", "SELECT count(*) FROM "
                     "sluice_pg_batches", "0\n");

    /* Again, with three sink workers: the key makes it an update. */
    rc = s_cli(&out, "run csv_orders_pg.yaml --report report.json "
                     "--workers store=3");
    cr_assert_eq(rc, 0, "exit %d:\n%s", rc, out);
    free(out);
    sl_pgtest_expect(pg, "etl_orders", s_sums_sql, s_sums);
    s_expect_ledger(60, 52, 8);
    s_expect_dead_letters(2);
    unsetenv("SLUICE_PG_CONNINFO");
}

Test(pg_etl, the_connection_string_is_needed_only_to_run)
{
    s_stage_topology();
    unsetenv("SLUICE_PG_CONNINFO");
    char *out = NULL;
    int rc = s_cli(&out, "check csv_orders_pg.yaml");
    cr_assert_eq(rc, 0, "%s", out);
    cr_expect_str_eq(out, "csv_orders_pg.yaml: ok (4 stages)\n");
    free(out);
    rc = s_cli(&out, "run csv_orders_pg.yaml");
    cr_assert_eq(rc, 1, "exit %d:\n%s", rc, out);
    cr_expect_not_null(strstr(out, "csv_orders_pg.yaml:58:21: stage 'store': "
                                   "environment variable "
                                   "'SLUICE_PG_CONNINFO' is not set"),
                       "%s", out);
    free(out);
}

/* `sluice run FILE --report report.json` in the background, its output in
 * run.log. */
static pid_t s_spawn_run(const char *topology)
{
    char *log = s_path("run.log");
    int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    cr_assert_geq(fd, 0, "%s", log);
    free(log);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (chdir(sl_test_dir()) < 0)
            _exit(126);
        dup2(fd, 1);
        dup2(fd, 2);
        execl(sl_test_cli(), "sluice", "run", topology, "--report",
              "report.json", (char *)NULL);
        _exit(127);
    }
    close(fd);
    return pid;
}

/* Waits up to timeout_s for run.log to contain text. */
static int s_wait_log(const char *text, double timeout_s)
{
    char *log = s_path("run.log");
    const struct timespec tick = {0, 10 * 1000 * 1000};
    double end = sl_test_now() + timeout_s;
    int found = 0;
    while (!found && sl_test_now() < end) {
        char *t = sl_test_read_file(log, NULL);
        found = t && strstr(t, text);
        free(t);
        if (!found)
            nanosleep(&tick, NULL);
    }
    free(log);
    return found;
}

static int s_rows_at_least(sl_pgtest_t *pg, long n, double timeout_s)
{
    const struct timespec tick = {0, 10 * 1000 * 1000};
    double end = sl_test_now() + timeout_s;
    while (sl_test_now() < end) {
        char *out = NULL;
        if (sl_pgtest_try_query(pg, "postgres",
                                "SELECT count(*) FROM t", &out) == 0 &&
            atol(out) >= n) {
            free(out);
            return 1;
        }
        free(out);
        nanosleep(&tick, NULL);
    }
    return 0;
}

Test(pg_etl, server_restarted_during_a_run)
{
    sl_pgtest_t *pg = sl_pgtest_private();
    char *ci = sl_pgtest_conninfo(pg, "postgres");
    char *yaml = NULL;
    cr_assert_gt(asprintf(&yaml,
                          "stages:\n"
                          "  - name: gen\n"
                          "    plugin: generator\n"
                          "    config:\n"
                          "      count: 3000\n"
                          "      rate: 1500\n"
                          "      template: {id: $seq, v: row}\n"
                          "  - name: db\n"
                          "    plugin: pg_sink\n"
                          "    workers: 2\n"
                          "    retry: {max_attempts: 50, backoff_ms: 50, "
                          "max_backoff_ms: 200}\n"
                          "    config:\n"
                          "      conninfo: '%s'\n"
                          "      table: t\n"
                          "      batch_rows: 100\n"
                          "      retry_ms: 200\n"
                          "      connect_timeout_ms: 500\n"
                          "      columns: {id: bigint, v: text}\n",
                          ci),
                 0);
    char *topo = s_path("gen_pg.yaml");
    cr_assert_eq(sl_test_write_file(topo, yaml), 0);
    pid_t pid = s_spawn_run("gen_pg.yaml");
    cr_assert(s_rows_at_least(pg, 300, 20), "no rows came");
    cr_assert_eq(sl_pgtest_server_stop(pg), 0);
    /* Records keep coming: the sink fails them while the server is away,
     * and the host retries them. */
    int seen = s_wait_log("records fail until it can", 20);
    cr_assert_eq(sl_pgtest_server_start(pg), 0);
    int code = sl_test_wait_exit(pid, 40);
    char *log_path = s_path("run.log");
    char *log = sl_test_read_file(log_path, NULL);
    free(log_path);
    cr_assert(seen, "no record failed while the server was away:\n%s", log);
    cr_assert_eq(code, 0, "exit %d:\n%s", code, log);
    sl_pgtest_expect(pg, "postgres",
                     "SELECT count(*), count(DISTINCT id), min(id), max(id) "
                     "FROM t",
                     "3000|3000|0|2999\n");
    char *r = s_report();
    cr_expect_not_null(strstr(r, "\"ledger_ok\":true,\"failed\":false"),
                       "%s", r);
    cr_expect_eq(s_total(r, "delivered"), 3000, "%s", r);
    cr_expect_eq(s_total(r, "dead_lettered"), 0, "%s", r);
    cr_expect_gt(s_total(r, "retried"), 0, "%s", r);
    free(r);
    free(log);
    free(topo);
    free(yaml);
    free(ci);
    sl_pgtest_destroy(&pg);
}
