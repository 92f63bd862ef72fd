/* dedupe end to end: `sluice run` with four dedupe workers behind
 * partition_by on the key, over a file with duplicates. Each key reaches
 * one worker, in order, so exactly its first record comes out; the others
 * are counted as filtered and the ledger balances. */
#include <criterion/criterion.h>

#include "testutil.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_RECORDS 20000
#define N_KEYS 3000

Test(dedupe_partition, four_workers_keep_each_first_record, .timeout = 120)
{
    char *dir = sl_test_tmpdir();
    cr_assert_not_null(dir);
    char *in = NULL, *out = NULL, *topo = NULL, *report = NULL, *cmd = NULL;
    cr_assert_gt(asprintf(&in, "%s/in.jsonl", dir), 0);
    cr_assert_gt(asprintf(&out, "%s/out.jsonl", dir), 0);
    cr_assert_gt(asprintf(&topo, "%s/dedupe.yaml", dir), 0);
    cr_assert_gt(asprintf(&report, "%s/report.json", dir), 0);

    /* first[k]: the line number of key k's first record, -1 if none */
    static long first[N_KEYS];
    memset(first, 0xff, sizeof(first));
    FILE *f = fopen(in, "w");
    cr_assert_not_null(f);
    uint64_t rs = 0xd0d0;
    uint64_t distinct = 0;
    for (long i = 0; i < N_RECORDS; i++) {
        long k = (long)(sl_test_rand(&rs) % N_KEYS);
        if (first[k] < 0) {
            first[k] = i;
            distinct++;
        }
        fprintf(f, "{\"id\":%ld,\"n\":%ld}\n", k, i);
    }
    cr_assert_eq(fclose(f), 0);

    char *yaml = NULL;
    cr_assert_gt(asprintf(&yaml,
                          "stages:\n"
                          "  - name: src\n"
                          "    plugin: file_source\n"
                          "    config: {path: in.jsonl}\n"
                          "  - name: dd\n"
                          "    plugin: dedupe\n"
                          "    from: src\n"
                          "    workers: 4\n"
                          "    partition_by: id\n"
                          "    config: {key: id}\n"
                          "  - name: sink\n"
                          "    plugin: file_sink\n"
                          "    from: dd\n"
                          "    config: {path: out.jsonl}\n"),
                 0);
    cr_assert_eq(sl_test_write_file(topo, yaml), 0);
    cr_assert_gt(asprintf(&cmd, "'%s' run --report '%s' '%s' 2>&1",
                          sl_test_cli(), report, topo),
                 0);
    char *log = NULL;
    int code = sl_test_run(cmd, &log);
    cr_assert_not_null(log);
    cr_assert_eq(code, 0, "sluice run failed (%d):\n%s", code, log);

    unsigned workers;
    uint64_t rin, rout, rfilt, rerr;
    sl_test_summary_row(log, "dd", &workers, &rin, &rout, &rfilt, &rerr);
    cr_expect_eq(workers, 4);
    cr_expect_eq(rin, N_RECORDS);
    cr_expect_eq(rout, distinct);
    cr_expect_eq(rfilt, N_RECORDS - distinct, "filtered must equal the "
                 "duplicates:\n%s", log);
    cr_expect_eq(rerr, 0);

    char *rep = sl_test_read_file(report, NULL);
    cr_assert_not_null(rep, "no report at %s", report);
    cr_expect_not_null(strstr(rep, "\"ledger_ok\":true"), "%s", rep);

    /* Exactly the first record of each key, each once. */
    char *text = sl_test_read_file(out, NULL);
    cr_assert_not_null(text);
    uint64_t lines = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        long k, n;
        cr_assert_eq(sscanf(line, "{\"id\":%ld,\"n\":%ld}", &k, &n), 2,
                     "bad output line %s", line);
        cr_assert(k >= 0 && k < N_KEYS, "bad key in %s", line);
        cr_assert_eq(n, first[k], "key %ld: kept record %ld, not its first "
                     "(%ld)", k, n, first[k]);
        first[k] = -2; /* a second line for k fails the check above */
        lines++;
    }
    cr_expect_eq(lines, distinct);
    cr_log_info("dedupe partition: %" PRIu64 " of %d records distinct",
                distinct, N_RECORDS);

    free(text);
    free(rep);
    free(log);
    free(cmd);
    free(yaml);
    free(report);
    free(topo);
    free(out);
    free(in);
    sl_test_rmtree(dir);
}
