/* The `sluice` command line: check, run --report, plugins, and the exit
 * codes (0 ok, 2 usage or invalid topology). Topologies are in
 * tests/data/integ_cli. */
#include <criterion/criterion.h>

#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define DATA SL_TEST_DATA_DIR "/integ_cli"
#define VALID DATA "/valid.yaml"
#define BROKEN DATA "/broken.yaml"

/* Runs `sluice ARGS REDIRECT`; returns the exit code, output in *out. */
static int cli(char **out, const char *args, const char *redirect)
{
    char *cmd = NULL;
    cr_assert_gt(asprintf(&cmd, "'%s' %s %s", sl_test_cli(), args, redirect),
                 0);
    int code = sl_test_run(cmd, out);
    cr_assert_not_null(*out, "no output from: %s", cmd);
    free(cmd);
    return code;
}

/* Lines that start with prefix followed by a digit ("FILE:" + "LINE:COL"). */
static size_t count_lines_with(const char *text, const char *prefix)
{
    size_t n = 0, len = strlen(prefix);
    for (const char *p = text; p && *p;) {
        if (strncmp(p, prefix, len) == 0 && p[len] >= '0' && p[len] <= '9')
            n++;
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return n;
}

Test(cli, check_valid_prints_ok, .timeout = 60)
{
    char *out;
    int code = cli(&out, "check '" VALID "'", "2>/dev/null");
    cr_expect_eq(code, 0, "exit %d: %s", code, out);
    cr_expect_str_eq(out, VALID ": ok (3 stages)\n");
    free(out);
    code = cli(&out, "check '" VALID "'", "2>&1 >/dev/null");
    cr_expect_str_eq(out, "", "stderr of a clean check: %s", out);
    free(out);
}

/* broken.yaml has six independent problems; each is one line. */
static const char *const s_problems[] = {
    BROKEN ":3:19: defaults: 'queue' must be from 1 to 16777216, got 0\n",
    BROKEN ":7:25: unknown key 'colour' for plugin 'generator'\n",
    BROKEN ":10:5: unknown key 'workerz' in stage 'keep'; did you mean "
           "'workers'?\n",
    BROKEN ":11:20: stage 'keep': expr: column 4: expected a value",
    BROKEN ":13:13: unknown plugin 'no_such_plugin'",
    BROKEN ":16:18: stage 'sink': 'from' names unknown stage 'nowhere'\n",
};

static void expect_problems(const char *err)
{
    for (size_t i = 0; i < sizeof(s_problems) / sizeof(*s_problems); i++)
        cr_expect_not_null(strstr(err, s_problems[i]),
                           "missing '%s' in:\n%s", s_problems[i], err);
    cr_expect_eq(count_lines_with(err, BROKEN ":"), 6,
                 "want 6 FILE:LINE:COL lines in:\n%s", err);
}

Test(cli, check_lists_every_problem, .timeout = 60)
{
    char *out;
    int code = cli(&out, "check '" BROKEN "'", "2>&1 >/dev/null");
    cr_expect_eq(code, 2, "exit %d", code);
    expect_problems(out);
    cr_expect_not_null(strstr(out, BROKEN ": 6 problems\n"), "%s", out);
    free(out);
    code = cli(&out, "check '" BROKEN "'", "2>/dev/null");
    cr_expect_str_eq(out, "", "stdout of a failed check: %s", out);
    free(out);
}

Test(cli, run_refuses_an_invalid_topology, .timeout = 60)
{
    char *out;
    int code = cli(&out, "run '" BROKEN "'", "2>&1");
    cr_expect_eq(code, 2, "exit %d", code);
    expect_problems(out);
    cr_expect_null(strstr(out, "records into sinks"), "it ran:\n%s", out);
    free(out);
}

static json_t *stage_at(json_t *stages, size_t i, const char *name,
                        const char *kind)
{
    json_t *s = json_array_get(stages, i);
    cr_assert(json_is_object(s), "stages[%zu] is not an object", i);
    cr_expect_str_eq(json_string_value(json_object_get(s, "name")), name);
    cr_expect_str_eq(json_string_value(json_object_get(s, "kind")), kind);
    return s;
}

static json_int_t num(json_t *stage, const char *key)
{
    json_t *v = json_object_get(stage, key);
    cr_assert(json_is_integer(v), "'%s' is not an integer", key);
    return json_integer_value(v);
}

Test(cli, run_writes_the_report, .timeout = 60)
{
    char *dir = sl_test_tmpdir();
    cr_assert_not_null(dir);
    char report[512], args[1024];
    snprintf(report, sizeof(report), "%s/report.json", dir);
    snprintf(args, sizeof(args), "run '%s' --report '%s'", VALID, report);
    char *out;
    int code = cli(&out, args, "2>&1");
    cr_assert_eq(code, 0, "exit %d:\n%s", code, out);
    cr_expect_not_null(strstr(out, "s, 1250 records into sinks"), "%s", out);
    cr_expect_not_null(strstr(out, "ledger balanced"), "%s", out);
    free(out);

    json_error_t jerr;
    json_t *root = json_load_file(report, 0, &jerr);
    cr_assert_not_null(root, "report is not JSON: %s at %d:%d", jerr.text,
                       jerr.line, jerr.column);
    cr_expect_str_eq(json_string_value(json_object_get(root, "topology")),
                     "cli_valid");
    cr_expect(json_is_true(json_object_get(root, "ledger_ok")));
    cr_expect(json_is_false(json_object_get(root, "failed")));
    cr_expect(json_is_number(json_object_get(root, "elapsed_s")));
    json_t *stages = json_object_get(root, "stages");
    cr_assert(json_is_array(stages));
    cr_assert_eq(json_array_size(stages), 3);

    json_t *gen = stage_at(stages, 0, "gen", "source");
    cr_expect_str_eq(json_string_value(json_object_get(gen, "plugin")),
                     "generator");
    cr_expect_eq(num(gen, "read"), 5000);
    cr_expect_eq(num(gen, "out"), 5000);
    cr_expect_eq(num(gen, "sent"), 5000);
    cr_expect_eq(num(gen, "errors"), 0);
    cr_expect_eq(num(gen, "queue"), 256);

    json_t *keep = stage_at(stages, 1, "keep", "transform");
    cr_expect_eq(num(keep, "workers"), 2);
    cr_expect_eq(num(keep, "in"), 5000);
    cr_expect_eq(num(keep, "out"), 1250);
    cr_expect_eq(num(keep, "filtered"), 3750);
    cr_expect_eq(num(keep, "errors"), 0);
    cr_expect_eq(num(keep, "sent"), 1250);
    cr_expect_leq(num(keep, "max_queue"), 256);

    json_t *sink = stage_at(stages, 2, "sink", "sink");
    cr_expect_str_eq(json_string_value(json_object_get(sink, "plugin")),
                     "null");
    cr_expect_eq(num(sink, "in"), 1250);
    cr_expect_eq(num(sink, "errors"), 0);
    json_t *lat = json_object_get(sink, "latency_ns");
    cr_assert(json_is_object(lat), "the sink has no latency_ns");
    cr_expect_eq(num(lat, "count"), 1250);
    cr_expect_leq(num(lat, "p50"), num(lat, "p99"));
    cr_expect_leq(num(lat, "p99"), num(lat, "max"));

    json_decref(root);
    sl_test_rmtree(dir);
}

/* --workers STAGE=N fixes a pool whatever the file says; a bad stage, a
 * bad number or one over the limit is a usage error naming it. */
Test(cli, workers_override, .timeout = 60)
{
    char *dir = sl_test_tmpdir();
    cr_assert_not_null(dir);
    char report[512], args[1024];
    snprintf(report, sizeof(report), "%s/report.json", dir);
    snprintf(args, sizeof(args), "run '%s' -q --workers keep=5 --report '%s'",
             VALID, report);
    char *out;
    int code = cli(&out, args, "2>&1");
    cr_assert_eq(code, 0, "exit %d:\n%s", code, out);
    free(out);
    json_error_t jerr;
    json_t *root = json_load_file(report, 0, &jerr);
    cr_assert_not_null(root, "%s", jerr.text);
    json_t *keep = stage_at(json_object_get(root, "stages"), 1, "keep",
                            "transform");
    cr_expect_eq(num(keep, "workers"), 5);
    cr_expect_eq(num(keep, "out"), 1250);
    json_decref(root);

    static const struct {
        const char *arg, *want;
    } bad[] = {
        {"nope=2", "sluice run: --workers: no stage 'nope' in "},
        {"keep=x", "sluice run: --workers wants STAGE=N, got 'keep=x'"},
        {"keep", "sluice run: --workers wants STAGE=N, got 'keep'"},
        {"keep=0", "stage 'keep': 0 workers is outside 1..1024 (plugin "
                   "'filter')"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(args, sizeof(args), "run '%s' -q --workers %s", VALID,
                 bad[i].arg);
        code = cli(&out, args, "2>&1");
        cr_expect_eq(code, 2, "%s: exit %d", bad[i].arg, code);
        cr_expect_not_null(strstr(out, bad[i].want), "%s: %s", bad[i].arg,
                           out);
        free(out);
    }
    sl_test_rmtree(dir);
}

Test(cli, unknown_command_is_a_usage_error, .timeout = 60)
{
    char *out;
    int code = cli(&out, "frobnicate", "2>&1");
    cr_expect_eq(code, 2, "exit %d", code);
    cr_expect_not_null(strstr(out, "unknown command 'frobnicate'"), "%s",
                       out);
    cr_expect_not_null(strstr(out, "usage: sluice"), "%s", out);
    free(out);
    code = cli(&out, "", "2>&1");
    cr_expect_eq(code, 2, "no command: exit %d", code);
    free(out);
    code = cli(&out, "check", "2>&1");
    cr_expect_eq(code, 2, "check without a file: exit %d", code);
    free(out);
    code = cli(&out, "run '" VALID "' --no-such-flag", "2>&1");
    cr_expect_eq(code, 2, "unknown run flag: exit %d", code);
    cr_expect_not_null(strstr(out, "'--no-such-flag'"), "%s", out);
    free(out);
}

Test(cli, missing_file_is_named, .timeout = 60)
{
    char *out;
    int code = cli(&out, "check " DATA "/no-such.yaml", "2>&1");
    cr_expect_eq(code, 2, "exit %d", code);
    cr_expect_not_null(strstr(out, DATA "/no-such.yaml: cannot read: No such "
                                    "file or directory"),
                       "%s", out);
    free(out);
}

Test(cli, plugins_lists_the_bundled_stages, .timeout = 60)
{
    static const char *const want[][2] = {
        {"generator", "source"},     {"file_source", "source"},
        {"fields", "transform"},     {"filter", "transform"},
        {"delay", "transform"},      {"json_parse", "transform"},
        {"csv_parse", "transform"},  {"null", "sink"},
        {"file_sink", "sink"},       {"stdout", "sink"},
    };
    char *out;
    int code = cli(&out, "plugins", "2>&1");
    cr_assert_eq(code, 0, "exit %d: %s", code, out);
    for (size_t i = 0; i < sizeof(want) / sizeof(*want); i++) {
        int found = 0;
        for (const char *p = out; p && *p && !found;) {
            char name[64], kind[64];
            if (sscanf(p, "%63s %63s", name, kind) == 2 &&
                strcmp(name, want[i][0]) == 0)
                found = strcmp(kind, want[i][1]) == 0 ? 1 : -1;
            p = strchr(p, '\n');
            if (p)
                p++;
        }
        cr_expect_eq(found, 1, "'%s' (%s) %s in:\n%s", want[i][0],
                     want[i][1], found ? "has the wrong kind" : "not listed",
                     out);
    }
    /* each entry is followed by the .so it was loaded from */
    char so[1024];
    snprintf(so, sizeof(so), "%s/stages/generator.so\n", SL_TEST_BINARY_DIR);
    cr_expect_not_null(strstr(out, so), "no '%s' in:\n%s", so, out);
    free(out);
}

Test(cli, run_names_a_stage_that_cannot_start, .timeout = 60)
{
    char *dir = sl_test_tmpdir();
    cr_assert_not_null(dir);
    char topo[512], text[1024], args[600];
    snprintf(topo, sizeof(topo), "%s/nostart.yaml", dir);
    snprintf(text, sizeof(text),
             "stages:\n"
             "  - name: gen\n"
             "    plugin: generator\n"
             "    config: {count: 10}\n"
             "  - name: out\n"
             "    plugin: file_sink\n"
             "    config: {path: %s/missing/out.jsonl}\n",
             dir);
    cr_assert_eq(sl_test_write_file(topo, text), 0);
    /* The config is valid: only opening the file fails. */
    snprintf(args, sizeof(args), "check '%s'", topo);
    char *out;
    cr_expect_eq(cli(&out, args, "2>&1"), 0, "%s", out);
    free(out);
    snprintf(args, sizeof(args), "run '%s'", topo);
    int code = cli(&out, args, "2>&1");
    cr_expect_eq(code, 1, "exit %d:\n%s", code, out);
    char want[1024];
    snprintf(want, sizeof(want),
             "%s:7:20: stage 'out': cannot open '%s/missing/out.jsonl': "
             "directory '%s/missing' does not exist",
             topo, dir, dir);
    cr_expect_not_null(strstr(out, want), "no '%s' in:\n%s", want, out);
    free(out);
    sl_test_rmtree(dir);
}

/* SIGINT drains: the source stops, what is in flight reaches the sink, the
 * ledger balances and the run exits 0. The signal is sent once the sink
 * has written records (its file is the handshake), never after a sleep. */
Test(cli, sigint_drains_and_exits_cleanly, .timeout = 60)
{
    char *dir = sl_test_tmpdir();
    cr_assert_not_null(dir);
    char topo[512], text[1024], out[512], log[512];
    snprintf(topo, sizeof(topo), "%s/forever.yaml", dir);
    snprintf(out, sizeof(out), "%s/out.jsonl", dir);
    snprintf(log, sizeof(log), "%s/stderr.txt", dir);
    snprintf(text, sizeof(text),
             "stages:\n"
             "  - name: gen\n"
             "    plugin: generator\n"
             "    config: {count: 100000000, rate: 2000}\n"
             "  - name: out\n"
             "    plugin: file_sink\n"
             "    config: {path: %s, flush_every: 1}\n",
             out);
    cr_assert_eq(sl_test_write_file(topo, text), 0);

    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        /* a failed test must not leave a run going */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0 || dup2(fd, STDERR_FILENO) < 0 ||
            dup2(fd, STDOUT_FILENO) < 0)
            _exit(120);
        execl(sl_test_cli(), "sluice", "run", topo, (char *)NULL);
        _exit(121);
    }
    int wrote = sl_test_wait_lines(out, 20, 20);
    if (!wrote)
        kill(pid, SIGKILL);
    cr_assert(wrote, "the run wrote no records within 20 s");
    cr_assert_eq(kill(pid, SIGINT), 0);
    int code = sl_test_wait_exit(pid, 20);

    char *text_log = sl_test_read_file(log, NULL);
    cr_assert_not_null(text_log);
    cr_expect_eq(code, 0, "exit %d:\n%s", code, text_log);
    cr_expect_not_null(strstr(text_log, "SIGINT: stopping the sources and "
                                        "draining"),
                       "%s", text_log);
    cr_expect_not_null(strstr(text_log, "ledger balanced"), "%s", text_log);
    /* Everything read was written: the summary's count is the file's. */
    long written = sl_test_count_lines(out);
    char want[64];
    snprintf(want, sizeof(want), "s, %ld records into sinks", written);
    cr_expect_not_null(strstr(text_log, want), "no '%s' in:\n%s", want,
                       text_log);
    cr_expect_lt(written, 100000000);
    free(text_log);
    sl_test_rmtree(dir);
}
