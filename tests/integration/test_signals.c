/* SIGTERM drains: the sources stop, everything read reaches the sink, the
 * ledger balances and the exit code is 0. A second signal aborts. */
#include "testutil.h"

#include <criterion/criterion.h>
#include <dirent.h>
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

static pid_t s_spawn(const char *topo, const char *report, const char *log)
{
    pid_t pid = fork();
    if (pid == 0) {
        /* a failed test must not leave a run going */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 2);
        dup2(fd, 1);
        execl(sl_test_cli(), "sluice", "run", topo, "--report", report,
              (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* Whether any thread of pid blocks sig. The main thread alone would not
 * do: while it waits in sigtimedwait() its status shows the signal
 * unblocked; the threads it started keep it blocked throughout. */
static int s_blocked(pid_t pid, int sig)
{
    char path[96];
    snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    if (!d)
        return 0;
    int found = 0;
    struct dirent *de;
    while (!found && (de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "/proc/%d/task/%.20s/status", (int)pid,
                 de->d_name);
        char *status = sl_test_read_file(path, NULL);
        const char *line = status ? strstr(status, "SigBlk:") : NULL;
        unsigned long long mask = line ? strtoull(line + 7, NULL, 16) : 0;
        free(status);
        found = (mask & (1ull << (sig - 1))) != 0;
    }
    closedir(d);
    return found;
}

/* Bounded wait until `pid` blocks `sig` (it takes it synchronously). */
static int s_wait_blocked(pid_t pid, int sig, int timeout_ms)
{
    for (int waited = 0; waited < timeout_ms; waited += 5) {
        if (s_blocked(pid, sig))
            return 1;
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return 0;
}

/* Bounded wait until the file contains text. */
static int s_wait_in_file(const char *path, const char *text, int timeout_ms)
{
    for (int waited = 0; waited < timeout_ms; waited += 5) {
        char *got = sl_test_read_file(path, NULL);
        int found = got && strstr(got, text);
        free(got);
        if (found)
            return 1;
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return 0;
}

static char *s_topology(const char *dir, const char *out)
{
    char *path = NULL, *text = NULL;
    cr_assert(asprintf(&path, "%s/drain.yaml", dir) > 0);
    /* A steady source that would run for hours, a small queue, and a sink
     * that flushes its buffer often enough for the test to watch it. */
    cr_assert(asprintf(&text,
                       "stages:\n"
                       "  - name: gen\n"
                       "    plugin: generator\n"
                       "    config: {count: 100000000, rate: 5000}\n"
                       "  - name: slow\n"
                       "    plugin: delay\n"
                       "    config: {ms: 0.2}\n"
                       "    queue: 64\n"
                       "  - name: out\n"
                       "    plugin: file_sink\n"
                       "    config: {path: %s, flush_every: 10}\n",
                       out) > 0);
    cr_assert_eq(sl_test_write_file(path, text), 0);
    free(text);
    return path;
}

static json_t *s_stage(json_t *report, const char *name)
{
    size_t i;
    json_t *st;
    json_array_foreach(json_object_get(report, "stages"), i, st)
        if (strcmp(json_string_value(json_object_get(st, "name")), name) == 0)
            return st;
    return NULL;
}

Test(signals, sigterm_drains_and_balances, .timeout = 60)
{
    char *dir = sl_test_tmpdir();
    char out[512], report[512], log[512];
    snprintf(out, sizeof(out), "%s/out.jsonl", dir);
    snprintf(report, sizeof(report), "%s/report.json", dir);
    snprintf(log, sizeof(log), "%s/log.txt", dir);
    char *topo = s_topology(dir, out);

    pid_t pid = s_spawn(topo, report, log);
    cr_assert(sl_test_wait_lines(out, 200, 20),
              "the sink never wrote 200 lines");
    kill(pid, SIGTERM);
    int code = sl_test_wait_exit(pid, 20);
    char *text = sl_test_read_file(log, NULL);
    cr_assert_eq(code, 0, "exit %d, log:\n%s", code, text);
    cr_assert(strstr(text, "SIGTERM: stopping the sources"), "%s", text);
    cr_assert(strstr(text, "ledger balanced"), "%s", text);

    json_error_t err;
    json_t *r = json_load_file(report, 0, &err);
    cr_assert_not_null(r, "%s", err.text);
    cr_assert(json_is_true(json_object_get(r, "ledger_ok")));
    json_int_t read = json_integer_value(json_object_get(s_stage(r, "gen"), "read"));
    json_int_t sunk = json_integer_value(json_object_get(s_stage(r, "out"), "in"));
    /* Everything the source read was written, and the source did stop. */
    cr_assert_eq(read, sunk);
    cr_assert_eq(sl_test_count_lines(out), sunk);
    cr_assert_lt(read, 1000000);
    json_decref(r);
    free(text);
    free(topo);
    sl_test_rmtree(dir);
}

Test(signals, second_signal_aborts, .timeout = 60)
{
    char *dir = sl_test_tmpdir();
    char out[512], report[512], log[512];
    snprintf(out, sizeof(out), "%s/out.jsonl", dir);
    snprintf(report, sizeof(report), "%s/report.json", dir);
    snprintf(log, sizeof(log), "%s/log.txt", dir);
    char *topo = s_topology(dir, out);
    /* A sink slow enough that draining takes long: 64 records x 1 s. */
    char *slow = sl_test_read_file(topo, NULL);
    char *p = strstr(slow, "ms: 0.2");
    cr_assert_not_null(p);
    memcpy(p, "ms: 999", 7);
    cr_assert_eq(sl_test_write_file(topo, slow), 0);

    pid_t pid = s_spawn(topo, report, log);
    /* Signal only once the run handles signals itself (it blocks them in
     * every thread and takes them synchronously), and the second only once
     * the first has been acted on. */
    cr_assert(s_wait_blocked(pid, SIGTERM, 20000), "SIGTERM never blocked");
    kill(pid, SIGTERM);
    cr_assert(s_wait_in_file(log, "SIGTERM: stopping", 20000),
              "the first signal was not acted on");
    kill(pid, SIGINT);
    int code = sl_test_wait_exit(pid, 20);
    char *text = sl_test_read_file(log, NULL);
    cr_assert_eq(code, 1, "exit %d, log:\n%s", code, text);
    cr_assert(strstr(text, "second signal: aborting"), "%s", text);
    free(text);
    free(slow);
    free(topo);
    sl_test_rmtree(dir);
}
