/*
 * partition_by with one worker, and retries in a partitioned stage: both
 * used to stall (the worker waited on the wrong queue; a retry for one
 * worker's own queue woke another worker).
 */
#include "testutil.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

TestSuite(partition_retry, .init = sl_test_tmpdir_setup,
          .fini = sl_test_tmpdir_teardown, .timeout = 60);

static void s_run(unsigned workers, const char *expect)
{
    const char *dir = sl_test_dir();
    char path[512], text[2048], cmd[2048];
    snprintf(path, sizeof(path), "%s/in.jsonl", dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    for (int i = 0; i < 2000; i++)
        fprintf(f, "{\"id\":%d,\"bad\":%s}\n", i % 50,
                i % 97 == 0 ? "true" : "false");
    fclose(f);
    snprintf(text, sizeof(text),
             "stages:\n"
             "  - {name: src, plugin: file_source, config: {path: in.jsonl, "
             "format: jsonl}}\n"
             "  - name: mb\n"
             "    plugin: \"%s/tests/plugins/misbehave.so\"\n"
             "    workers: %u\n"
             "    partition_by: id\n"
             "    retry: {max_attempts: 2, backoff_ms: 5}\n"
             "    config: {fail_when: bad}\n"
             "  - {name: out, plugin: file_sink, config: {path: out.jsonl}}\n",
             SL_TEST_BINARY_DIR, workers);
    snprintf(path, sizeof(path), "%s/t.yaml", dir);
    cr_assert_eq(sl_test_write_file(path, text), 0);
    /* a stall shows as the timeout's exit status 124 */
    snprintf(cmd, sizeof(cmd), "cd '%s' && timeout 30 '%s' run t.yaml 2>&1",
             dir, sl_test_cli());
    char *log = NULL;
    int rc = sl_test_run(cmd, &log);
    cr_assert_eq(rc, 0, "exit %d:\n%s", rc, log);
    cr_assert_not_null(strstr(log, expect), "%s", log);
    snprintf(path, sizeof(path), "%s/out.jsonl", dir);
    cr_assert_eq(sl_test_count_lines(path), 1979);
    free(log);
}

Test(partition_retry, one_worker_partitioned_stage_runs)
{
    s_run(1, "records: 2000 read, 1979 delivered, 0 filtered, "
             "21 dead-lettered, 0 spilled, 0 shed (21 retries)");
}

Test(partition_retry, retries_reach_their_partition_worker)
{
    s_run(4, "records: 2000 read, 1979 delivered, 0 filtered, "
             "21 dead-lettered, 0 spilled, 0 shed (21 retries)");
}
