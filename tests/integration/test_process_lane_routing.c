/* Process lanes route failures and share limits as thread lanes do: a
 * record that fails with attempts left comes back from the worker process
 * to the dispatcher's delayed retry queue (and reaches the sink once it
 * succeeds), one that fails its last attempt goes to the dead-letter file
 * with its first and last failure times or, as records, to a dead-letter
 * stage; and a `resources:` limit holds across a thread-lane stage and a
 * process-lane stage, even when a worker process is killed while it holds
 * a slot. */
#include <criterion/criterion.h>
#include <criterion/logging.h>

#include "deadletter.h"
#include "resource.h"
#include "run.h"
#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CHECKSUM_SO SL_TEST_BINARY_DIR "/tests/plugins/checksum_sink.so"
#define MISBEHAVE_SO SL_TEST_BINARY_DIR "/tests/plugins/misbehave.so"
#define PROBE_SO SL_TEST_BINARY_DIR "/tests/plugins/probe.so"
/* The n-th record of the source at topology index 0 (one worker). */
#define SRC_ID(n) ((1ull << 48) | (uint64_t)(n))

#if defined(__SANITIZE_ADDRESS__)
/* UBSan ends a worker on misbehave's NULL load with exit code 1. */
#define CRASH_REASON "worker exited with status 1"
#else
#define CRASH_REASON "worker killed by signal 11"
#endif

TestSuite(process_lane_routing, .init = sl_test_tmpdir_setup,
          .fini = sl_test_tmpdir_teardown);

static char *s_path(const char *name)
{
    char *p = NULL;
    cr_assert_gt(asprintf(&p, "%s/%s", sl_test_dir(), name), 0);
    return p;
}

/* Record k is {"i":k}, plus "<flag>":true where flag_of(k) names one. */
static void write_jsonl(const char *path, unsigned n,
                        const char *(*flag_of)(unsigned))
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "%s: %s", path, strerror(errno));
    for (unsigned k = 0; k < n; k++) {
        const char *flag = flag_of ? flag_of(k) : NULL;
        if (flag)
            fprintf(f, "{\"i\":%u,\"%s\":true}\n", k, flag);
        else
            fprintf(f, "{\"i\":%u}\n", k);
    }
    cr_assert_eq(fclose(f), 0);
}

/* ---- retries ---------------------------------------------------------- */

/* Every 10th record fails (misbehave's fail_when: bad). */
static const char *bad_every_10(unsigned k)
{
    return k % 10 == 7 ? "bad" : NULL;
}

static int keep_all(uint64_t seq)
{
    (void)seq;
    return 1;
}

static int keep_good(uint64_t seq)
{
    return seq % 10 != 7;
}

/* The summary's column `col` (0 = stage name) on the line of `stage`. */
static void summary_cell(sl_run_t *run, const char *stage, int col, char *out,
                         size_t size)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    cr_assert_not_null(f);
    sl__run_print_summary(run, f);
    fclose(f);
    out[0] = '\0';
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        char *s2 = NULL;
        char *tok = strtok_r(line, " ", &s2);
        if (!tok || strcmp(tok, stage) != 0)
            continue;
        for (int c = 1; c <= col && tok; c++)
            tok = strtok_r(NULL, " ", &s2);
        if (tok)
            snprintf(out, size, "%s", tok);
        break;
    }
    free(text);
}

/* Records that fail their first two attempts get through on the third:
 * each comes back from its worker process for a delayed retry, to the
 * same partition's worker, and reaches the sink exactly once; nothing is
 * dead-lettered and the retries show in the stats, summary and report. */
Test(process_lane_routing, retry_then_success, .timeout = 120)
{
    enum { N = 1000, BAD = N / 10 };
    sl_test_sanitizer_worker_env();
    char *in = s_path("in.jsonl"), *out = s_path("sums.txt"),
         *dl = s_path("dl-mb.jsonl"), *report = s_path("report.json");
    write_jsonl(in, N, bad_every_10);
    char *yaml = NULL;
    cr_assert_gt(asprintf(&yaml,
                          "stages:\n"
                          "  - name: src\n"
                          "    plugin: file_source\n"
                          "    batch: 50\n"
                          "    config: {path: %s, format: jsonl}\n"
                          "  - name: mb\n"
                          "    plugin: %s\n"
                          "    lane: process\n"
                          "    workers: 2\n"
                          "    partition_by: i\n"
                          "    retry: {max_attempts: 3, backoff_ms: 5,"
                          " max_backoff_ms: 20}\n"
                          "    dead_letter: %s\n"
                          "    config: {fail_when: bad, fail_attempts: 2}\n"
                          "  - name: sink\n"
                          "    plugin: %s\n"
                          "    config: {path: %s}\n",
                          in, MISBEHAVE_SO, dl, CHECKSUM_SO, out),
                 0);
    sl_topology_t *t = sl_test_topology("retry.yaml", sl_test_dir(), yaml);
    sl_run_t *run = sl_test_run_to_end(t);
    sl_stage_stats_t mb, sink;
    sl_test_stage_stats(run, t, "mb", &mb);
    sl_test_stage_stats(run, t, "sink", &sink);
    cr_assert_eq(mb.in, N, "retries counted in again: in %" PRIu64, mb.in);
    cr_assert_eq(mb.retried, 2 * BAD);
    cr_assert_eq(mb.errors, 0);
    cr_assert_eq(mb.out, N);
    cr_assert_eq(mb.restarts, 0);
    cr_assert_eq(sink.in, N);

    char cell[32];
    summary_cell(run, "mb", 7, cell, sizeof(cell)); /* the retried column */
    cr_assert_str_eq(cell, "200", "summary's retried cell for mb");
    cr_assert_eq(sl__run_write_report(run, report, 1), 0);
    char *rep = sl_test_read_file(report, NULL);
    cr_assert_not_null(rep);
    cr_assert_not_null(strstr(rep, "\"retried\":200"), "report: %s", rep);
    free(rep);
    sl__run_destroy(&run); /* the sink writes its line */

    sl_test_sums_t got, want;
    sl_test_read_sums(out, &got);
    sl_test_expected_ids(0, N, keep_all, &want);
    sl_test_expect_ids(&got, &want);
    cr_assert_eq(access(dl, F_OK) == 0 ? sl_test_count_lines(dl) : 0, 0,
                 "something was dead-lettered");
    sl__topology_destroy(&t);
    free(yaml);
    free(in);
    free(out);
    free(dl);
    free(report);
}

typedef struct dl_seen {
    unsigned n;
    unsigned bad_attempts, bad_times, bad_error, bad_id;
    char first_error[256];
} dl_seen_t;

static int dl_check(const sl_deadletter_entry_t *e, void *arg)
{
    dl_seen_t *s = arg;
    s->n++;
    if (e->attempts != 3)
        s->bad_attempts++;
    if (!(e->first_failure_ns > 0 && e->first_failure_ns < e->last_failure_ns))
        s->bad_times++;
    if (!e->error || strcmp(e->error, "bad is true (attempt 3)") != 0) {
        if (!s->bad_error)
            snprintf(s->first_error, sizeof(s->first_error), "%s",
                     e->error ? e->error : "(none)");
        s->bad_error++;
    }
    if ((e->id & 0xffffffffffffull) % 10 != 7 || e->id >> 48 != 1)
        s->bad_id++;
    return 0;
}

/* With every attempt failing, each bad record is tried three times (two
 * delayed retries) and then written to the dead-letter file by the worker
 * process: attempts 3, first failure before the last one. */
Test(process_lane_routing, retries_exhausted_go_to_the_file, .timeout = 120)
{
    enum { N = 500, BAD = N / 10 };
    sl_test_sanitizer_worker_env();
    char *in = s_path("in.jsonl"), *out = s_path("sums.txt"),
         *dl = s_path("dl-mb.jsonl");
    write_jsonl(in, N, bad_every_10);
    char *yaml = NULL;
    cr_assert_gt(asprintf(&yaml,
                          "stages:\n"
                          "  - name: src\n"
                          "    plugin: file_source\n"
                          "    config: {path: %s, format: jsonl}\n"
                          "  - name: mb\n"
                          "    plugin: %s\n"
                          "    lane: process\n"
                          "    retry: {max_attempts: 3, backoff_ms: 2,"
                          " max_backoff_ms: 10}\n"
                          "    dead_letter: %s\n"
                          "    config: {fail_when: bad}\n"
                          "  - name: sink\n"
                          "    plugin: %s\n"
                          "    config: {path: %s}\n",
                          in, MISBEHAVE_SO, dl, CHECKSUM_SO, out),
                 0);
    sl_topology_t *t = sl_test_topology("exhaust.yaml", sl_test_dir(), yaml);
    sl_run_t *run = sl_test_run_to_end(t);
    sl_stage_stats_t mb;
    sl_test_stage_stats(run, t, "mb", &mb);
    cr_assert_eq(mb.in, N);
    cr_assert_eq(mb.retried, 2 * BAD);
    cr_assert_eq(mb.errors, BAD);
    cr_assert_eq(mb.out, N - BAD);
    sl__run_destroy(&run);

    dl_seen_t seen = {0};
    char err[512] = "";
    cr_assert_eq(sl__deadletter_read(dl, dl_check, &seen, err, sizeof(err)),
                 0, "%s", err);
    cr_assert_eq(seen.n, BAD);
    cr_assert_eq(seen.bad_attempts, 0);
    cr_assert_eq(seen.bad_times, 0, "first_failure not before last_failure");
    cr_assert_eq(seen.bad_error, 0, "error text: '%s'", seen.first_error);
    cr_assert_eq(seen.bad_id, 0, "a dead letter for a record that was fine");

    sl_test_sums_t got, want;
    sl_test_read_sums(out, &got);
    sl_test_expected_ids(0, N, keep_good, &want);
    sl_test_expect_ids(&got, &want);
    sl__topology_destroy(&t);
    free(yaml);
    free(in);
    free(out);
    free(dl);
}

/* ---- dead letters to a stage -------------------------------------------- */

/* Every 7th record fails every attempt; record 100 kills its worker. */
static const char *bad_every_7(unsigned k)
{
    if (k == 100)
        return "crash";
    return k % 7 == 3 ? "bad" : NULL;
}

/* A process lane's last failures reach the dead-letter stage as records:
 * its sink file holds exactly the failing ids, each with the error text
 * (the plugin's, or the worker's death for the record that killed it).
 * The dead-letter stage's small queue makes the worker split its dead
 * letters into several batches per item. */
Test(process_lane_routing, dead_letters_to_a_stage, .timeout = 120)
{
    enum { N = 700 };
    sl_test_sanitizer_worker_env();
    char *in = s_path("in.jsonl"), *out = s_path("sums.txt"),
         *dlq = s_path("dlq.jsonl");
    write_jsonl(in, N, bad_every_7);
    char *yaml = NULL;
    cr_assert_gt(asprintf(&yaml,
                          "stages:\n"
                          "  - name: src\n"
                          "    plugin: file_source\n"
                          "    config: {path: %s, format: jsonl}\n"
                          "  - name: mb\n"
                          "    plugin: %s\n"
                          "    lane: process\n"
                          "    retry: {max_attempts: 2, backoff_ms: 1,"
                          " max_backoff_ms: 5}\n"
                          "    dead_letter: {stage: dlq}\n"
                          "    config: {fail_when: bad, crash_when: crash}\n"
                          "  - name: sink\n"
                          "    from: mb\n"
                          "    plugin: %s\n"
                          "    config: {path: %s}\n"
                          "  - name: dlq\n"
                          "    plugin: file_sink\n"
                          "    queue: 8\n"
                          "    config: {path: %s}\n",
                          in, MISBEHAVE_SO, CHECKSUM_SO, out, dlq),
                 0);
    sl_topology_t *t = sl_test_topology("dlq.yaml", sl_test_dir(), yaml);
    sl_run_t *run = sl_test_run_to_end(t);
    unsigned n_bad = 0;
    for (unsigned k = 0; k < N; k++)
        n_bad += bad_every_7(k) != NULL;
    sl_stage_stats_t mb, q;
    sl_test_stage_stats(run, t, "mb", &mb);
    sl_test_stage_stats(run, t, "dlq", &q);
    cr_assert_eq(mb.in, N);
    cr_assert_eq(mb.errors, n_bad);
    cr_assert_eq(mb.restarts, 2, "the crash record had two attempts");
    cr_assert_eq(mb.retried, n_bad, "each failing record was tried again "
                 "once, the one that killed its worker too");
    cr_assert_eq(q.in, n_bad);
    sl__run_destroy(&run);

    char *text = sl_test_read_file(dlq, NULL);
    cr_assert_not_null(text, "the dead-letter stage wrote nothing");
    unsigned char seen[N];
    memset(seen, 0, sizeof(seen));
    unsigned lines = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        lines++;
        const char *p = strstr(line, "\"id\":");
        cr_assert_not_null(p, "no id: %s", line);
        uint64_t id = strtoull(p + 5, NULL, 10);
        uint64_t k = id - SRC_ID(0);
        cr_assert(id >= SRC_ID(0) && k < N && bad_every_7((unsigned)k),
                  "dead letter for a good record: %s", line);
        cr_assert_eq(seen[k], 0, "record %" PRIu64 " dead-lettered twice", k);
        seen[k] = 1;
        char want[160];
        if (k == 100)
            snprintf(want, sizeof(want), "\"error\":\"" CRASH_REASON
                     " while processing (attempt 2 of 2)\"");
        else
            snprintf(want, sizeof(want), "\"error\":\"bad is true "
                     "(attempt 2)\"");
        cr_assert_not_null(strstr(line, want), "want %s in %s", want, line);
        cr_assert_not_null(strstr(line, "\"stage\":\"mb\""), "%s", line);
        cr_assert_not_null(strstr(line, "\"attempts\":2"), "%s", line);
    }
    cr_assert_eq(lines, n_bad);
    free(text);
    sl__topology_destroy(&t);
    free(yaml);
    free(in);
    free(out);
    free(dlq);
}

/* ---- shared limits -------------------------------------------------------- */

/* {current, max} of probe's counter file. */
static void probe_read(const char *path, uint64_t v[2])
{
    v[0] = v[1] = UINT64_MAX;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    if (pread(fd, v, 2 * sizeof(uint64_t), 0) != 2 * sizeof(uint64_t))
        v[0] = v[1] = UINT64_MAX;
    close(fd);
}

static double s_now(void)
{
    return sl_test_now();
}

static void pause_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* A thread-lane stage and a process-lane stage that both use `db` (limit
 * 3), each with 3 workers: at most 3 calls run at once across the
 * sluice process and its worker processes, exactly 3 do, and the run is
 * not serialised. */
Test(process_lane_routing, limit_shared_with_a_thread_lane, .timeout = 120)
{
    enum { N = 300, SLEEP_US = 5000 };
    sl_test_sanitizer_worker_env();
    char *in = s_path("in.jsonl"), *out = s_path("sums.txt"),
         *counter = s_path("probe.bin");
    write_jsonl(in, N, NULL);
    char *yaml = NULL;
    cr_assert_gt(asprintf(&yaml,
                          "resources: {db: 3}\n"
                          "stages:\n"
                          "  - name: src\n"
                          "    plugin: file_source\n"
                          "    batch: 5\n"
                          "    config: {path: %s, format: jsonl}\n"
                          "  - name: pa\n"
                          "    plugin: %s\n"
                          "    workers: 3\n"
                          "    batch: 5\n"
                          "    uses: db\n"
                          "    config: {counter: %s, sleep_us: %d}\n"
                          "  - name: pb\n"
                          "    plugin: %s\n"
                          "    lane: process\n"
                          "    workers: 3\n"
                          "    queue: 30\n"
                          "    uses: db\n"
                          "    config: {counter: %s, sleep_us: %d}\n"
                          "  - name: sink\n"
                          "    plugin: %s\n"
                          "    config: {path: %s}\n",
                          in, PROBE_SO, counter, SLEEP_US, PROBE_SO, counter,
                          SLEEP_US, CHECKSUM_SO, out),
                 0);
    sl_topology_t *t = sl_test_topology("limit.yaml", sl_test_dir(), yaml);
    double t0 = s_now();
    sl_run_t *run = sl_test_run_to_end(t);
    double took = s_now() - t0;
    double serial = 2.0 * N * SLEEP_US / 1e6;
    cr_log_info("%d calls of %d us under db: 3 took %.3f s (serial %.3f s)",
                2 * N, SLEEP_US, took, serial);
    uint64_t v[2];
    probe_read(counter, v);
    cr_assert_eq(v[0], 0, "calls still counted inside: %" PRIu64, v[0]);
    cr_assert_eq(v[1], 3, "max concurrent calls %" PRIu64 ", limit 3", v[1]);
    sl_resources_t *rs = run->resources;
    cr_assert_not_null(rs);
    cr_assert_eq(sl__resources_max_in_use(rs, 0), 3);
    cr_assert_eq(sl__resources_in_use(rs, 0), 0);
    cr_assert_gt(sl__resources_waits(rs, 0), 0, "6 workers never waited");
    /* three at a time: a third of the serial time, plus start-up */
    cr_assert_lt(took, 0.6 * serial, "%.3f s: serialised? (serial %.3f s)",
                 took, serial);
    sl_stage_stats_t pb;
    sl_test_stage_stats(run, t, "pb", &pb);
    cr_assert_eq(pb.in, N);
    cr_assert_eq(pb.errors, 0);
    sl__run_destroy(&run);

    sl_test_sums_t got, want;
    sl_test_read_sums(out, &got);
    sl_test_expected_ids(0, N, keep_all, &want);
    sl_test_expect_ids(&got, &want);
    sl__topology_destroy(&t);
    free(yaml);
    free(in);
    free(out);
    free(counter);
}

/* Live worker processes started by this process, up to max. */
static int find_workers(pid_t *out, int max)
{
    DIR *d = opendir("/proc");
    cr_assert_not_null(d);
    int n = 0;
    struct dirent *e;
    pid_t self = getpid();
    while ((e = readdir(d)) && n < max) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        if (*end || pid <= 0)
            continue;
        char path[64], buf[512];
        snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        ssize_t len = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        buf[len > 0 ? len : 0] = '\0';
        const char *p = strrchr(buf, ')');
        char state;
        int ppid;
        if (!p || sscanf(p + 2, "%c %d", &state, &ppid) != 2 ||
            ppid != self || state == 'Z')
            continue;
        snprintf(path, sizeof(path), "/proc/%ld/cmdline", pid);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        len = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (len <= 0)
            continue;
        buf[len] = '\0';
        const char *arg1 = buf + strlen(buf) + 1;
        if (arg1 < buf + len && strcmp(arg1, "__worker") == 0)
            out[n++] = (pid_t)pid;
    }
    closedir(d);
    return n;
}

/* kill -9 of a worker process in the middle of a call that holds a `db`
 * slot: the dispatcher gives the dead pid's slot back, so the replacement
 * and the other worker again run two calls at once (the cap), the record
 * in hand is handled again, and nothing stays held at the end. */
Test(process_lane_routing, killed_worker_does_not_leak_its_slot,
     .timeout = 120)
{
    enum { N = 200, SLEEP_US = 20000 };
    sl_test_sanitizer_worker_env();
    char *in = s_path("in.jsonl"), *out = s_path("sums.txt"),
         *counter = s_path("probe.bin");
    write_jsonl(in, N, NULL);
    char *yaml = NULL;
    cr_assert_gt(asprintf(&yaml,
                          "resources: {db: 2}\n"
                          "stages:\n"
                          "  - name: src\n"
                          "    plugin: file_source\n"
                          "    batch: 5\n"
                          "    config: {path: %s, format: jsonl}\n"
                          "  - name: pb\n"
                          "    plugin: %s\n"
                          "    lane: process\n"
                          "    workers: 2\n"
                          "    queue: 20\n"
                          "    uses: db\n"
                          "    config: {counter: %s, sleep_us: %d}\n"
                          "  - name: sink\n"
                          "    plugin: %s\n"
                          "    config: {path: %s}\n",
                          in, PROBE_SO, counter, SLEEP_US, CHECKSUM_SO, out),
                 0);
    sl_topology_t *t = sl_test_topology("kill.yaml", sl_test_dir(), yaml);
    size_t pb_index = sl_test_stage_index(t, "pb");
    sl_run_t *run = sl_test_run_start(t);
    sl_resources_t *rs = run->resources;
    cr_assert_not_null(rs);

    /* Both workers inside a call (each holds one of the two slots). */
    pid_t pids[4];
    double deadline = s_now() + 30.0;
    while (!(sl__resources_in_use(rs, 0) == 2 && find_workers(pids, 4) == 2)) {
        cr_assert_lt(s_now(), deadline, "two workers never held db at once");
        pause_ms(1);
    }
    pid_t victim = pids[0];
    cr_assert_eq(kill(victim, SIGKILL), 0);

    /* Once its death is handled: the dead call stays counted inside the
     * probe (current 1), and two live calls at once make it 3. */
    sl_stage_stats_t st;
    deadline = s_now() + 30.0;
    do {
        sl__run_stats(run, pb_index, &st);
        cr_assert_lt(s_now(), deadline, "the kill was never noticed");
        pause_ms(1);
    } while (st.restarts < 1);
    uint64_t v[2];
    deadline = s_now() + 30.0;
    for (;;) {
        probe_read(counter, v);
        if (v[0] == 3)
            break;
        cr_assert_lt(s_now(), deadline, "after the kill, never two calls at "
                     "once again (inside now: %" PRIu64 "): slot leaked?",
                     v[0]);
        sl__run_stats(run, pb_index, &st);
        cr_assert_eq(st.finished, 0, "the run ended before two calls ran "
                     "at once after the kill");
        pause_ms(1);
    }

    cr_assert_eq(sl__run_wait(run), 0, "the run did not end cleanly");
    sl_test_expect_ledger(run);
    sl_test_stage_stats(run, t, "pb", &st);
    cr_assert_eq(st.restarts, 1);
    cr_assert_eq(st.errors, 0);
    probe_read(counter, v);
    /* the killed call never left: it was inside, holding its slot */
    cr_assert_eq(v[0], 1, "the kill did not hit a call (inside: %" PRIu64
                 ")", v[0]);
    cr_assert_eq(sl__resources_in_use(rs, 0), 0, "a slot stayed held");
    cr_assert_leq(sl__resources_max_in_use(rs, 0), 2);
    cr_assert_eq(sl__resources_release_pid(rs, victim), 0,
                 "the dead worker's slot was still held");
    sl__run_destroy(&run);

    sl_test_sums_t got, want;
    sl_test_read_sums(out, &got);
    sl_test_expected_ids(0, N, keep_all, &want);
    sl_test_expect_ids(&got, &want);
    sl__topology_destroy(&t);
    free(yaml);
    free(in);
    free(out);
    free(counter);
}

/* ---- sync ------------------------------------------------------------------ */

/* file_sink in a process lane writing to /dev/full: with `state_dir:` the
 * worker process calls sync() after each batch, which fails, and the run
 * stops committing positions and ends failed; without it nothing syncs
 * (only the final flush fails). */
static void run_full_sink(int with_state, int *no_commit, int *rc)
{
    char *in = s_path("in.jsonl");
    write_jsonl(in, 20, NULL);
    char *yaml = NULL;
    cr_assert_gt(asprintf(&yaml,
                          "%s"
                          "stages:\n"
                          "  - name: src\n"
                          "    plugin: file_source\n"
                          "    config: {path: %s, format: jsonl}\n"
                          "  - name: out\n"
                          "    plugin: file_sink\n"
                          "    lane: process\n"
                          "    config: {path: /dev/full}\n",
                          with_state ? "state_dir: st\n" : "", in),
                 0);
    sl_topology_t *t = sl_test_topology("sync.yaml", sl_test_dir(), yaml);
    sl_run_t *run = sl_test_run_start(t);
    *rc = sl__run_wait(run);
    *no_commit = atomic_load(&run->no_commit);
    sl_stage_stats_t st;
    sl_test_stage_stats(run, t, "out", &st);
    cr_assert_eq(st.in, 20);
    sl__run_destroy(&run);
    sl__topology_destroy(&t);
    free(yaml);
    free(in);
}

Test(process_lane_routing, sync_failure_in_a_worker_stops_commits,
     .timeout = 60)
{
    int no_commit, rc;
    run_full_sink(1, &no_commit, &rc);
    cr_assert_neq(rc, 0, "a failed sync must fail the run");
    cr_assert_eq(no_commit, 1, "positions still committed after a failed "
                 "sync");
    run_full_sink(0, &no_commit, &rc);
    cr_assert_neq(rc, 0, "the flush to /dev/full must fail the run");
    cr_assert_eq(no_commit, 0, "synced without state_dir");
}
