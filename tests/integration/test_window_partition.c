/* window end to end: `sluice run` with four window workers behind
 * partition_by on the key, over a JSON lines file whose event times are
 * shuffled, but by less than the lateness. Each key reaches one worker, in
 * order, and no record is late on any worker, so every (window, key)
 * aggregate must equal the one computed here from the whole input; the
 * ledger balances. */
#include <criterion/criterion.h>

#include "testutil.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_RECORDS 30000
#define N_KEYS 40
#define STEP_MS 4      /* the event clock advances this much per record */
#define JITTER_MS 2500 /* times are shuffled by less than this... */
#define LATE_MS 3000   /* ...which is under the lateness */
#define SIZE_MS 10000
#define SLIDE_MS 5000
#define T0 1700000000000L
#define N_WINDOWS ((N_RECORDS * STEP_MS + JITTER_MS) / SLIDE_MS + 8)

typedef struct cell {
    long n, sum, min, max;
    int seen;
} cell_t;

static cell_t s_model[N_WINDOWS][N_KEYS];

/* Window index of a start time (ms), which must be in the model's range. */
static long window_of(long start)
{
    long w = (start - (T0 - SIZE_MS)) / SLIDE_MS;
    cr_assert(w >= 0 && w < N_WINDOWS, "window start %ld out of range",
              start);
    return w;
}

Test(window_partition, four_workers_match_the_reference, .timeout = 120)
{
    char *dir = sl_test_tmpdir();
    cr_assert_not_null(dir);
    char *in = NULL, *out = NULL, *topo = NULL, *report = NULL, *cmd = NULL;
    cr_assert_gt(asprintf(&in, "%s/in.jsonl", dir), 0);
    cr_assert_gt(asprintf(&out, "%s/out.jsonl", dir), 0);
    cr_assert_gt(asprintf(&topo, "%s/window.yaml", dir), 0);
    cr_assert_gt(asprintf(&report, "%s/report.json", dir), 0);

    /* Keys are strings ("host-7"), so partition_by hashes bytes, and the
     * output must give them back as strings. */
    memset(s_model, 0, sizeof(s_model));
    FILE *f = fopen(in, "w");
    cr_assert_not_null(f);
    uint64_t rs = 0x3141;
    long groups = 0;
    for (long i = 0; i < N_RECORDS; i++) {
        long t = T0 + i * STEP_MS + (long)(sl_test_rand(&rs) % JITTER_MS);
        long k = (long)(sl_test_rand(&rs) % N_KEYS);
        long bytes = (long)(sl_test_rand(&rs) % 100000);
        long last = t - (t % SLIDE_MS); /* t > 0 */
        for (long s = last - SIZE_MS + SLIDE_MS; s <= last; s += SLIDE_MS) {
            cell_t *c = &s_model[window_of(s)][k];
            if (!c->seen || bytes < c->min)
                c->min = bytes;
            if (!c->seen || bytes > c->max)
                c->max = bytes;
            groups += !c->seen;
            c->seen = 1;
            c->n++;
            c->sum += bytes;
        }
        fprintf(f, "{\"ts\":%ld,\"host\":\"host-%ld\",\"bytes\":%ld}\n", t, k,
                bytes);
    }
    cr_assert_eq(fclose(f), 0);

    char *yaml = NULL;
    cr_assert_gt(asprintf(&yaml,
                          "stages:\n"
                          "  - name: src\n"
                          "    plugin: file_source\n"
                          "    config: {path: in.jsonl}\n"
                          "  - name: win\n"
                          "    plugin: window\n"
                          "    from: src\n"
                          "    workers: 4\n"
                          "    partition_by: host\n"
                          "    config:\n"
                          "      time_field: ts\n"
                          "      time_unit: ms\n"
                          "      size: 10s\n"
                          "      slide: 5s\n"
                          "      lateness: %dms\n"
                          "      key: host\n"
                          "      aggregates:\n"
                          "        - {op: count, as: hits}\n"
                          "        - {op: sum, field: bytes, as: bytes}\n"
                          "        - {op: min, field: bytes, as: lo}\n"
                          "        - {op: max, field: bytes, as: hi}\n"
                          "  - name: sink\n"
                          "    plugin: file_sink\n"
                          "    from: win\n"
                          "    config: {path: out.jsonl}\n",
                          LATE_MS),
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
    sl_test_summary_row(log, "win", &workers, &rin, &rout, &rfilt, &rerr);
    cr_expect_eq(workers, 4);
    cr_expect_eq(rin, N_RECORDS);
    cr_expect_eq(rout, (uint64_t)groups, "one record per group:\n%s", log);
    cr_expect_eq(rerr, 0, "no record may be late:\n%s", log);
    /* A record that closed windows "passed"; the others were absorbed. */
    cr_expect_lt(rfilt, (uint64_t)N_RECORDS);

    char *rep = sl_test_read_file(report, NULL);
    cr_assert_not_null(rep, "no report at %s", report);
    cr_expect_not_null(strstr(rep, "\"ledger_ok\":true"), "%s", rep);

    /* Exactly the model's groups, each once, with its aggregates. */
    char *text = sl_test_read_file(out, NULL);
    cr_assert_not_null(text);
    long lines = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        long ws, we, k, n, sum, lo, hi;
        cr_assert_eq(sscanf(line,
                            "{\"window_start\":%ld,\"window_end\":%ld,"
                            "\"host\":\"host-%ld\",\"hits\":%ld,"
                            "\"bytes\":%ld,\"lo\":%ld,\"hi\":%ld}",
                            &ws, &we, &k, &n, &sum, &lo, &hi),
                     7, "bad output line %s", line);
        cr_assert_eq(we - ws, SIZE_MS, "%s", line);
        cr_assert_eq(ws % SLIDE_MS, 0, "%s", line);
        cr_assert(k >= 0 && k < N_KEYS, "bad key in %s", line);
        cell_t *c = &s_model[window_of(ws)][k];
        cr_assert_eq(c->seen, 1, "not in the model, or twice: %s", line);
        c->seen = 2;
        cr_assert_eq(n, c->n, "%s: want hits %ld", line, c->n);
        cr_assert_eq(sum, c->sum, "%s: want bytes %ld", line, c->sum);
        cr_assert_eq(lo, c->min, "%s: want lo %ld", line, c->min);
        cr_assert_eq(hi, c->max, "%s: want hi %ld", line, c->max);
        lines++;
    }
    cr_expect_eq(lines, groups);
    cr_log_info("window partition: %ld groups from %d records", groups,
                N_RECORDS);

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
