/* The access log example (topologies/access_logs.yaml) through `sluice
 * run`: the rows of table per_minute must be the per-minute, per-status-
 * class request counts and byte sums computed here from
 * topologies/data/access.log itself (with POSIX regexec and a calendar of
 * our own, not the stage's scanner or strptime), every malformed line must
 * be in the dead-letter file, and the report's ledger must balance. A
 * second run upserts the same rows again. */
#include <criterion/criterion.h>

#include "testutil.h"

#include <jansson.h>
#include <regex.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

TestSuite(access_logs, .init = sl_test_tmpdir_setup,
          .fini = sl_test_tmpdir_teardown, .timeout = 60);

#define TOPO_DIR SL_TEST_SOURCE_DIR "/topologies"
#define MAX_ROWS 4096

typedef struct row {
    long long start;
    char cls[4];
    long long requests, bytes;
} row_t;

typedef struct expect {
    row_t rows[MAX_ROWS];
    size_t n_rows;
    size_t lines, malformed;
} expect_t;

static char *s_path(const char *name)
{
    char *p = NULL;
    cr_assert_gt(asprintf(&p, "%s/%s", sl_test_dir(), name), 0);
    return p;
}

/* Replaces the first `from` in *text with `to`, asserting it is there. */
static void s_replace(char **text, const char *from, const char *to)
{
    char *at = strstr(*text, from);
    cr_assert_not_null(at, "no '%s' in the topology", from);
    char *out = NULL;
    cr_assert_gt(asprintf(&out, "%.*s%s%s", (int)(at - *text), *text, to,
                          at + strlen(from)), 0);
    free(*text);
    *text = out;
}

/* The example topology as it is, with its inputs read from the source
 * tree and its outputs written below the test's directory. */
static char *s_topology(void)
{
    char *text = sl_test_read_file(TOPO_DIR "/access_logs.yaml", NULL);
    cr_assert_not_null(text);
    s_replace(&text, "path: data/access.log",
              "path: " TOPO_DIR "/data/access.log");
    s_replace(&text, "script: scripts/enrich_access.lua",
              "script: " TOPO_DIR "/scripts/enrich_access.lua");
    char *out = s_path("out");
    cr_assert_eq(mkdir(out, 0755), 0);
    free(out);
    char *topo = s_path("access_logs.yaml");
    cr_assert_eq(sl_test_write_file(topo, text), 0);
    free(text);
    return topo;
}

/* ---- the expected figures ------------------------------------------------ */

static long long s_days_from_civil(long long y, unsigned m, unsigned d)
{
    y -= m <= 2;
    long long era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (long long)doe - 719468;
}

/* "15/Nov/2023:00:13:20 +0200" -> epoch seconds. */
static long long s_epoch(const char *t, size_t n)
{
    static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    char mon[4], sign;
    unsigned d, y, hh, mm, ss, off;
    char buf[64];
    cr_assert_lt(n, sizeof(buf));
    memcpy(buf, t, n);
    buf[n] = '\0';
    cr_assert_eq(sscanf(buf, "%2u/%3s/%4u:%2u:%2u:%2u %c%4u", &d, mon, &y,
                        &hh, &mm, &ss, &sign, &off), 8, "time '%s'", buf);
    const char *m = strstr(months, mon);
    cr_assert_not_null(m, "month '%s'", mon);
    long long secs = s_days_from_civil(y, (unsigned)(m - months) / 3 + 1, d) *
                         86400 + hh * 3600 + mm * 60 + ss;
    long long o = (off / 100) * 3600 + (off % 100) * 60;
    return sign == '-' ? secs + o : secs - o;
}

static void s_add(expect_t *e, long long start, int status, long long bytes)
{
    char cls[4] = {(char)('0' + status / 100 % 10), 'x', 'x', '\0'};
    for (size_t i = 0; i < e->n_rows; i++) {
        row_t *r = &e->rows[i];
        if (r->start == start && !strcmp(r->cls, cls)) {
            r->requests++;
            r->bytes += bytes;
            return;
        }
    }
    cr_assert_lt(e->n_rows, MAX_ROWS);
    row_t *r = &e->rows[e->n_rows++];
    r->start = start;
    memcpy(r->cls, cls, sizeof(cls));
    r->requests = 1;
    r->bytes = bytes;
}

static int s_cmp_row(const void *a, const void *b)
{
    const row_t *x = a, *y = b;
    if (x->start != y->start)
        return x->start < y->start ? -1 : 1;
    return strcmp(x->cls, y->cls);
}

/* The combined log format as docs/stages/regex_parse.md defines it. */
#define Q "\"((\\\\.|[^\"\\\\])*)\""
static const char s_combined[] =
    "^([^ ]+) ([^ ]+) ([^ ]+) \\[([^]]+)\\] " Q " ([0-9]{3}) ([0-9]+|-) " Q
    " " Q "$";

static void s_expected(expect_t *e)
{
    regex_t re;
    regmatch_t m[13];
    cr_assert_eq(regcomp(&re, s_combined, REG_EXTENDED), 0);
    FILE *f = fopen(TOPO_DIR "/data/access.log", "r");
    cr_assert_not_null(f);
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    memset(e, 0, sizeof(*e));
    while ((len = getline(&line, &cap, f)) >= 0) {
        if (len > 0 && line[len - 1] == '\n')
            line[--len] = '\0';
        e->lines++;
        if (regexec(&re, line, 13, m, 0) != 0) {
            e->malformed++;
            continue;
        }
        long long t = s_epoch(line + m[4].rm_so,
                              (size_t)(m[4].rm_eo - m[4].rm_so));
        int status = atoi(line + m[7].rm_so);
        long long bytes = line[m[8].rm_so] == '-'
                              ? 0 : atoll(line + m[8].rm_so);
        long long start = t >= 0 ? t / 60 * 60 : (t - 59) / 60 * 60;
        s_add(e, start, status, bytes);
    }
    free(line);
    fclose(f);
    regfree(&re);
    qsort(e->rows, e->n_rows, sizeof(row_t), s_cmp_row);
    /* The sample is what the example says it is. */
    cr_assert_eq(e->lines, 2000);
    cr_assert_eq(e->malformed, 8);
}

/* ---- what the run left --------------------------------------------------- */

static size_t s_db_rows(row_t *rows)
{
    char *db_path = s_path("out/access_logs.db");
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    size_t n = 0;
    cr_assert_eq(sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL),
                 SQLITE_OK, "%s", db_path);
    cr_assert_eq(sqlite3_prepare_v2(db, "SELECT window_start, window_end, "
                                        "status_class, requests, bytes FROM "
                                        "per_minute ORDER BY window_start, "
                                        "status_class", -1, &st, NULL),
                 SQLITE_OK, "%s", sqlite3_errmsg(db));
    while (sqlite3_step(st) == SQLITE_ROW) {
        cr_assert_lt(n, MAX_ROWS);
        row_t *r = &rows[n++];
        r->start = sqlite3_column_int64(st, 0);
        cr_assert_eq(sqlite3_column_int64(st, 1), r->start + 60,
                     "window_end of the window at %lld", r->start);
        const unsigned char *cls = sqlite3_column_text(st, 2);
        cr_assert_not_null(cls);
        cr_assert_lt(strlen((const char *)cls), sizeof(r->cls));
        strcpy(r->cls, (const char *)cls);
        r->requests = sqlite3_column_int64(st, 3);
        r->bytes = sqlite3_column_int64(st, 4);
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    free(db_path);
    return n;
}

static void s_expect_rows(const expect_t *e)
{
    static row_t got[MAX_ROWS];
    size_t n = s_db_rows(got);
    cr_assert_eq(n, e->n_rows, "rows in per_minute: %zu, want %zu", n,
                 e->n_rows);
    for (size_t i = 0; i < n; i++) {
        const row_t *w = &e->rows[i], *g = &got[i];
        cr_expect(g->start == w->start && !strcmp(g->cls, w->cls) &&
                      g->requests == w->requests && g->bytes == w->bytes,
                  "row %zu: got (%lld, %s, %lld, %lld), want (%lld, %s, "
                  "%lld, %lld)", i, g->start, g->cls, g->requests, g->bytes,
                  w->start, w->cls, w->requests, w->bytes);
    }
}

static json_t *s_stage(json_t *report, const char *name)
{
    size_t i;
    json_t *st;
    json_array_foreach(json_object_get(report, "stages"), i, st)
        if (!strcmp(json_string_value(json_object_get(st, "name")), name))
            return st;
    cr_assert_fail("no stage '%s' in the report", name);
    return NULL;
}

static long long s_num(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    cr_assert(json_is_integer(v), "'%s' is not an integer", key);
    return json_integer_value(v);
}

static void s_run(const char *topo, const expect_t *e)
{
    char *report = s_path("report.json"), *cmd = NULL, *log = NULL;
    cr_assert_gt(asprintf(&cmd, "'%s' run '%s' --report '%s' 2>&1",
                          sl_test_cli(), topo, report), 0);
    int code = sl_test_run(cmd, &log);
    cr_assert_eq(code, 0, "exit %d:\n%s", code, log);

    json_error_t jerr;
    json_t *r = json_load_file(report, 0, &jerr);
    cr_assert_not_null(r, "%s", jerr.text);
    cr_expect(json_is_true(json_object_get(r, "ledger_ok")), "%s", log);
    json_t *tot = json_object_get(r, "totals");
    cr_expect_eq(s_num(tot, "read"), (long long)e->lines);
    cr_expect_eq(s_num(tot, "dead_lettered"), (long long)e->malformed);
    cr_expect_eq(s_num(tot, "retried"), 0);
    cr_expect_eq(s_num(tot, "spilled"), 0);
    cr_expect_eq(s_num(s_stage(r, "read"), "read"), (long long)e->lines);
    json_t *parse = s_stage(r, "parse");
    cr_expect_eq(s_num(parse, "in"), (long long)e->lines);
    cr_expect_eq(s_num(parse, "out"), (long long)(e->lines - e->malformed));
    cr_expect_eq(s_num(parse, "dead_lettered"), (long long)e->malformed);
    cr_expect_eq(s_num(s_stage(r, "enrich"), "out"),
                 (long long)(e->lines - e->malformed));
    cr_expect_eq(s_num(s_stage(r, "per_minute"), "dead_lettered"), 0,
                 "late records");
    cr_expect_eq(s_num(s_stage(r, "per_minute"), "out"),
                 (long long)e->n_rows);
    cr_expect_eq(s_num(s_stage(r, "store"), "in"), (long long)e->n_rows);
    cr_expect_eq(s_num(s_stage(r, "store"), "dead_lettered"), 0);
    json_decref(r);
    free(log);
    free(cmd);
    free(report);
}

/* Every dead letter is a line the format refuses, quoted in its error. */
static void s_expect_dead_letters(const expect_t *e, size_t runs)
{
    char *path = s_path("out/access_logs.dead.jsonl");
    char *text = sl_test_read_file(path, NULL);
    cr_assert_not_null(text, "no dead-letter file");
    size_t n = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        json_error_t jerr;
        json_t *d = json_loads(line, 0, &jerr);
        cr_assert_not_null(d, "%s: %s", jerr.text, line);
        cr_expect_str_eq(json_string_value(json_object_get(d, "stage")),
                         "parse");
        const char *err = json_string_value(json_object_get(d, "error"));
        cr_assert_not_null(err);
        static const char want[] = "field 'line' does not match the "
                                   "pattern (preset combined): '";
        cr_expect(!strncmp(err, want, strlen(want)), "%s", err);
        cr_expect_eq(s_num(d, "attempts"), 1, "dead-lettered without retry");
        cr_expect(json_is_string(json_object_get(json_object_get(d, "record"),
                                                 "line")), "%s", line);
        json_decref(d);
        n++;
    }
    cr_expect_eq(n, e->malformed * runs, "dead letters: %zu", n);
    free(text);
    free(path);
}

Test(access_logs, per_minute_rows_match_the_log)
{
    static expect_t e;
    s_expected(&e);
    char *topo = s_topology();
    s_run(topo, &e);
    s_expect_rows(&e);
    s_expect_dead_letters(&e, 1);

    /* Again over the same database: upserted, not added. The dead-letter
     * file is only ever appended to. */
    s_run(topo, &e);
    s_expect_rows(&e);
    s_expect_dead_letters(&e, 2);
    free(topo);
}
