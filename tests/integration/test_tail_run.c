/* tail_source through `sluice run` with `state_dir:`: a writer thread
 * appends numbered lines to logs/app.log and rotates it as logrotate does
 * (rename, a few more lines to the old file, then a new file), while runs
 * are stopped and started again: rotations happen during a run and while
 * no run is going. The last run ends by idle_timeout_ms. After SIGTERM
 * stops, the sink must hold every line exactly once; after a SIGKILL,
 * every line at least once. */
#include <criterion/criterion.h>

#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

TestSuite(tail_run, .init = sl_test_tmpdir_setup,
          .fini = sl_test_tmpdir_teardown, .timeout = 90);

#define LINES_PER_BURST 10
#define OLD_FILE_LINES 20 /* written to the old file after each rename */

/* ---- the writer ---------------------------------------------------------- */

typedef struct writer {
    pthread_t th;
    atomic_int stop;
    atomic_int rotate_req; /* rotations asked for */
    atomic_int rotations;  /* rotations done */
    atomic_long written;   /* lines written, all files */
    atomic_int failed;     /* errno of a failed write, rename or open */
} writer_t;

static char *s_path(const char *name)
{
    char *p = NULL;
    cr_assert_gt(asprintf(&p, "%s/%s", sl_test_dir(), name), 0);
    return p;
}

static int s_open_log(void)
{
    char *p = s_path("logs/app.log");
    int fd = open(p, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    free(p);
    return fd;
}

/* One line per write(2), so that a reader sees each whole or in part,
 * never interleaved. Lengths vary. */
static int s_write_line(writer_t *w, int fd)
{
    static const char filler[] = "abcdefghijklmnopqrstuvwxyz0123456789"
                                 "ABCDEFGHIJKLMNOPQRSTUVWXYZ-_+=";
    long seq = atomic_load(&w->written);
    char line[128];
    int n = snprintf(line, sizeof(line), "seq=%07ld %.*s\n", seq,
                     (int)(seq * 7 % 60), filler);
    if (write(fd, line, (size_t)n) != n)
        return -errno;
    atomic_store(&w->written, seq + 1);
    return 0;
}

/* logrotate without copytruncate: the file is renamed to app.log.K, the
 * server writes a few more lines to it until it reopens, and a new file
 * takes the path. Rotated files are kept, as with dateext. */
static int s_rotate(writer_t *w, int *fd)
{
    char name[64];
    snprintf(name, sizeof(name), "logs/app.log.%d",
             atomic_load(&w->rotations) + 1);
    char *from = s_path("logs/app.log"), *to = s_path(name);
    int rc = rename(from, to) < 0 ? -errno : 0;
    free(from);
    free(to);
    for (int i = 0; rc == 0 && i < OLD_FILE_LINES; i++)
        rc = s_write_line(w, *fd);
    if (rc < 0)
        return rc;
    close(*fd);
    if ((*fd = s_open_log()) < 0)
        return -errno;
    atomic_fetch_add(&w->rotations, 1);
    return 0;
}

static void *s_writer_main(void *arg)
{
    writer_t *w = arg;
    const struct timespec pace = {0, 2 * 1000 * 1000};
    int fd = s_open_log(), rc = fd < 0 ? -errno : 0;

    while (rc == 0 && !atomic_load(&w->stop)) {
        for (int i = 0; rc == 0 && i < LINES_PER_BURST; i++)
            rc = s_write_line(w, fd);
        if (rc == 0 && atomic_load(&w->rotations) <
                           atomic_load(&w->rotate_req))
            rc = s_rotate(w, &fd);
        nanosleep(&pace, NULL); /* about 5000 lines/s */
    }
    if (fd >= 0)
        close(fd);
    atomic_store(&w->failed, -rc);
    return NULL;
}

/* Asks for one more rotation and waits until it is done. */
static void s_rotate_now(writer_t *w)
{
    int want = atomic_fetch_add(&w->rotate_req, 1) + 1;
    double end = sl_test_now() + 10;
    const struct timespec tick = {0, 1000 * 1000};
    while (atomic_load(&w->rotations) < want && sl_test_now() < end)
        nanosleep(&tick, NULL);
    cr_assert_eq(atomic_load(&w->rotations), want, "rotation %d not done",
                 want);
}

/* ---- runs ---------------------------------------------------------------- */

static void s_topology(const char *name, const char *extra)
{
    char *path = s_path(name), *text = NULL;
    cr_assert_gt(asprintf(&text,
                          "name: tailrun\n"
                          "state_dir: state\n"
                          "grace: 20s\n"
                          "stages:\n"
                          "  - name: tail\n"
                          "    plugin: tail_source\n"
                          "    config: {path: logs/app.log, poll_ms: 20%s}\n"
                          "  - name: out\n"
                          "    plugin: file_sink\n"
                          "    config: {path: out.jsonl, mode: append, "
                          "flush_every: 100}\n",
                          extra), 0);
    cr_assert_eq(sl_test_write_file(path, text), 0);
    free(text);
    free(path);
}

static pid_t s_start(const char *topo, const char *log)
{
    const char *args[] = {"run", topo, NULL};
    return sl_test_spawn_cli(log, args);
}

/* Waits until the sink holds at least n lines. */
static void s_wait_out(long n)
{
    char *p = s_path("out.jsonl");
    cr_assert(sl_test_wait_lines(p, n, 30), "the sink has %ld lines, "
              "waited for %ld", sl_test_count_lines(p), n);
    free(p);
}

static void s_stop(pid_t pid, int sig, const char *log, int want_code)
{
    cr_assert_eq(kill(pid, sig), 0);
    int code = sl_test_wait_exit(pid, 30);
    char *p = s_path(log), *text = sl_test_read_file(p, NULL);
    cr_assert_eq(code, want_code, "exit %d, log:\n%s", code, text);
    if (sig == SIGTERM)
        cr_expect_not_null(strstr(text, "ledger balanced"), "%s", text);
    free(text);
    free(p);
}

/* Times each sequence number appears in the sink (counts[0..n)); asserts
 * every line is well formed and numbered below n. */
static unsigned char *s_counts(long n, long *lines)
{
    unsigned char *counts = calloc((size_t)n, 1);
    char *p = s_path("out.jsonl"), *text = sl_test_read_file(p, NULL);
    cr_assert_not_null(text);
    *lines = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        long seq;
        cr_assert_eq(sscanf(line, "{\"line\":\"seq=%ld ", &seq), 1, "%s",
                     line);
        cr_assert(seq >= 0 && seq < n, "seq %ld of %ld: %s", seq, n, line);
        /* The line came through whole. */
        char want[128];
        snprintf(want, sizeof(want), "%.*s\"}", (int)(seq * 7 % 60),
                 "abcdefghijklmnopqrstuvwxyz0123456789"
                 "ABCDEFGHIJKLMNOPQRSTUVWXYZ-_+=");
        cr_assert_str_eq(line + strlen("{\"line\":\"seq=0000000 "), want);
        if (counts[seq] < 255)
            counts[seq]++;
        (*lines)++;
    }
    free(text);
    free(p);
    return counts;
}

static void s_scenario(int sig)
{
    char *logs = s_path("logs");
    cr_assert_eq(mkdir(logs, 0755), 0);
    free(logs);
    s_topology("run.yaml", "");
    s_topology("last.yaml", ", idle_timeout_ms: 1500");

    static writer_t w;
    memset(&w, 0, sizeof(w));
    cr_assert_eq(pthread_create(&w.th, NULL, s_writer_main, &w), 0);

    /* Run 1: a rotation while it runs, then a stop. */
    pid_t pid = s_start("run.yaml", "run1.log");
    s_wait_out(1000);
    s_rotate_now(&w);
    /* Well into the new file, so that a position there is committed
     * (markers go every 100 ms or so) even if the run is killed. */
    s_wait_out(atomic_load(&w.written) + 2000);
    s_stop(pid, sig, "run1.log", sig == SIGTERM ? 0 : 128 + SIGKILL);

    /* A rotation while no run is going: run 2 must finish the renamed
     * file from its position, then read the new one. */
    s_rotate_now(&w);
    pid = s_start("run.yaml", "run2.log");
    char *text = sl_test_wait_log("run2.log", "the file of the saved "
                                  "position was rotated to 'app.log.2'; "
                                  "reading it on after line", 20);
    free(text);
    s_wait_out(atomic_load(&w.written));
    s_rotate_now(&w);
    s_wait_out(atomic_load(&w.written) + 200);
    s_stop(pid, SIGTERM, "run2.log", 0);

    /* The writer stops; run 3 reads what is left and ends by itself. */
    long before = atomic_load(&w.written);
    const struct timespec tick = {0, 1000 * 1000};
    while (atomic_load(&w.written) < before + 300)
        nanosleep(&tick, NULL);
    atomic_store(&w.stop, 1);
    cr_assert_eq(pthread_join(w.th, NULL), 0);
    cr_assert_eq(atomic_load(&w.failed), 0, "writer: %s",
                 strerror(atomic_load(&w.failed)));
    long n = atomic_load(&w.written);
    const char *args[] = {"run", "last.yaml", NULL};
    pid = sl_test_spawn_cli("run3.log", args);
    int code = sl_test_wait_exit(pid, 40);
    char *log3 = s_path("run3.log");
    text = sl_test_read_file(log3, NULL);
    free(log3);
    cr_assert_eq(code, 0, "exit %d:\n%s", code, text);
    cr_expect_not_null(strstr(text, "no new data for 1500 ms; end of "
                                    "stream"), "%s", text);
    free(text);

    long lines;
    unsigned char *counts = s_counts(n, &lines);
    long missing = 0, dups = 0;
    for (long i = 0; i < n; i++) {
        missing += counts[i] == 0;
        dups += counts[i] > 1 ? counts[i] - 1 : 0;
    }
    cr_expect_eq(missing, 0, "%ld of %ld lines missing", missing, n);
    if (sig == SIGTERM) {
        cr_expect_eq(dups, 0, "%ld duplicates", dups);
        cr_expect_eq(lines, n);
    } else {
        /* At least once: what the killed run had written past its last
         * committed position comes again, and nothing more. */
        cr_expect_lt(dups, n / 2, "%ld duplicates of %ld lines", dups, n);
        cr_log_info("SIGKILL: %ld lines, %ld duplicates", n, dups);
    }
    free(counts);
}

Test(tail_run, sigterm_rotation_and_resume_give_every_line_once)
{
    s_scenario(SIGTERM);
}

Test(tail_run, sigkill_then_resume_gives_every_line_at_least_once)
{
    s_scenario(SIGKILL);
}
