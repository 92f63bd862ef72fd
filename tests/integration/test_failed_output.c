/*
 * A record that emits and then fails must not be delivered twice: its
 * output is dropped, and its retry (or its dead letter) stands for it.
 */
#include "testutil.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

TestSuite(failed_output, .init = sl_test_tmpdir_setup,
          .fini = sl_test_tmpdir_teardown, .timeout = 60);

static void s_check_opts(const char *lane, int attempts_to_fail,
                         const char *more, char **log_out);

static void s_check(const char *lane, int attempts_to_fail)
{
    s_check_opts(lane, attempts_to_fail, "emit_before_fail: true", NULL);
}

static void s_check_opts(const char *lane, int attempts_to_fail,
                         const char *more, char **log_out)
{
    const char *dir = sl_test_dir();
    char path[512], text[2048], cmd[2048];
    snprintf(path, sizeof(path), "%s/in.jsonl", dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    for (int i = 0; i < 1000; i++)
        fprintf(f, "{\"id\":%d,\"bad\":%s}\n", i, i % 10 == 0 ? "true" : "false");
    fclose(f);
    snprintf(text, sizeof(text),
             "stages:\n"
             "  - {name: src, plugin: file_source, config: {path: in.jsonl, "
             "format: jsonl}}\n"
             "  - name: mb\n"
             "    plugin: \"%s/tests/plugins/misbehave.so\"\n"
             "    lane: %s\n"
             "    retry: {max_attempts: 2, backoff_ms: 1}\n"
             "    dead_letter: dl.jsonl\n"
             "    config: {fail_when: bad, fail_attempts: %d, %s}\n"
             "  - {name: out, plugin: file_sink, config: {path: out.jsonl}}\n",
             SL_TEST_BINARY_DIR, lane, attempts_to_fail, more);
    snprintf(path, sizeof(path), "%s/t.yaml", dir);
    cr_assert_eq(sl_test_write_file(path, text), 0);
    snprintf(cmd, sizeof(cmd), "cd '%s' && '%s' run t.yaml 2>&1", dir,
             sl_test_cli());
    char *log = NULL;
    int rc = sl_test_run(cmd, &log);
    cr_assert_eq(rc, 0, "exit %d:\n%s", rc, log);
    snprintf(path, sizeof(path), "%s/out.jsonl", dir);
    long lines = sl_test_count_lines(path);
    snprintf(cmd, sizeof(cmd), "%s/dl.jsonl", dir);
    long dead = sl_test_count_lines(cmd);
    if (strstr(more, "fail_final")) { /* no retry at all */
        cr_assert_eq(lines, 900, "%ld lines:\n%s", lines, log);
        cr_assert_eq(dead, 100);
    } else if (attempts_to_fail == 1) { /* the retry succeeds: each once */
        cr_assert_eq(lines, 1000, "%ld lines:\n%s", lines, log);
        cr_assert_eq(dead, 0);
    } else { /* both attempts fail: dead-lettered, never delivered */
        cr_assert_eq(lines, 900, "%ld lines:\n%s", lines, log);
        cr_assert_eq(dead, 100);
    }
    cr_assert_not_null(strstr(log, "ledger balanced"), "%s", log);
    if (log_out)
        *log_out = log;
    else
        free(log);
}

Test(failed_output, retried_record_is_delivered_once_thread_lane)
{
    s_check("thread", 1);
}

Test(failed_output, dead_lettered_record_is_not_delivered_thread_lane)
{
    s_check("thread", 5);
}

Test(failed_output, retried_record_is_delivered_once_process_lane)
{
    s_check("process", 1);
}

Test(failed_output, dead_lettered_record_is_not_delivered_process_lane)
{
    s_check("process", 5);
}

static void s_final(const char *lane)
{
    char *log = NULL;
    /* with attempts to spare, a final failure still is not retried */
    s_check_opts(lane, 1, "fail_final: true", &log);
    cr_assert_not_null(strstr(log, "dead-lettered, 0 spilled, 0 shed "
                                   "(0 retries)"), "%s", log);
    char path[512];
    snprintf(path, sizeof(path), "%s/dl.jsonl", sl_test_dir());
    char *dl = sl_test_read_file(path, NULL);
    cr_assert_not_null(dl);
    cr_assert_not_null(strstr(dl, "\"attempts\":1,"), "%s", dl);
    cr_assert_null(strstr(dl, "\"attempts\":2,"), "%s", dl);
    cr_assert_not_null(strstr(dl, "bad is true, for good"), "%s", dl);
    free(dl);
    free(log);
}

Test(failed_output, final_failure_is_not_retried_thread_lane)
{
    s_final("thread");
}

Test(failed_output, final_failure_is_not_retried_process_lane)
{
    s_final("process");
}
