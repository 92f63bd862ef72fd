/* Shutdown and resume guarantees of `sluice run`, end to end through the
 * CLI:
 *
 * - SIGTERM at random moments (thread and process lanes): exit 0, or 4
 *   exactly when records were spilled; the run ends within its grace
 *   period plus a second; the ledger balances; every record the source
 *   read is in exactly one of sink output, dead-letter file and spill
 *   file; no worker process survives.
 * - SIGKILL at random moments, then re-runs with `state_dir:`: the sink
 *   output ends up holding every record (at least once); a finished run
 *   leaves nothing for the next one to read.
 * - SIGTERM with spilling, then a re-run: the re-run reads on from the
 *   committed position, and output plus spill file cover every record.
 * - Retries (transient failures get through, exhausted ones are
 *   dead-lettered with their attempts) and a dead-letter replay that
 *   completes the data set.
 *
 * Records carry their number in the data, `{"id":N,...}`, since file_sink
 * writes only the record itself. Every input line is LINE_LEN bytes, and so
 * is every line file_sink writes back (same keys, same compact JSON), so the
 * sink's progress is its file size / LINE_LEN: the test waits on stat(2)
 * instead of re-reading a growing file.
 *
 * The random moments come from one seed, logged at the start of each test;
 * SL_TEST_SEED=N replays a run's choices (not the scheduler's). */
#include <criterion/criterion.h>
#include <criterion/logging.h>

#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MISBEHAVE_SO SL_TEST_BINARY_DIR "/tests/plugins/misbehave.so"

#define LINE_LEN 64 /* bytes per input and output line, '\n' included */
#define BAD_EVERY 997
#define BAD_AT 13

static int s_is_bad(long id) { return id % BAD_EVERY == BAD_AT; }

static long s_bad_below(long n)
{
    return n > BAD_AT ? (n - BAD_AT - 1) / BAD_EVERY + 1 : 0;
}

/* ---- files -------------------------------------------------------------- */

static char *s_path(const char *name)
{
    char *p = NULL;
    cr_assert_gt(asprintf(&p, "%s/%s", sl_test_dir(), name), 0);
    return p;
}

static void s_write(const char *name, const char *text)
{
    char *p = s_path(name);
    cr_assert_eq(sl_test_write_file(p, text), 0, "cannot write %s", p);
    free(p);
}

/* n records {"id":i,"bad":B,"pad":"xx..."}, padded to LINE_LEN bytes; with
 * bad, every BAD_EVERY-th one has "bad":true. */
static void s_write_input(const char *name, long n, int bad)
{
    char *p = s_path(name);
    FILE *f = fopen(p, "w");
    cr_assert_not_null(f, "%s: %s", p, strerror(errno));
    static const char pad[] = "ppppppppppppppppppppppppppppppppppppppppppppppp";
    for (long i = 0; i < n; i++) {
        int b = bad && s_is_bad(i);
        char head[64];
        int len = snprintf(head, sizeof(head), "{\"id\":%ld,\"bad\":%s,"
                           "\"pad\":\"", i, b ? "true" : "false");
        int fill = LINE_LEN - len - 3; /* "}\n */
        cr_assert(fill > 0 && fill < (int)sizeof(pad));
        fprintf(f, "%s%.*s\"}\n", head, fill, pad);
    }
    cr_assert_eq(fclose(f), 0);
    free(p);
}

static long s_size(const char *name)
{
    char *p = s_path(name);
    struct stat st;
    long size = stat(p, &st) == 0 ? (long)st.st_size : 0;
    free(p);
    return size;
}

static void s_unlink(const char *name)
{
    char *p = s_path(name);
    unlink(p);
    free(p);
}

/* How often each id 0..n-1 was seen, over several files. */
typedef struct ids {
    unsigned short *seen;
    long n;
    long lines;   /* entries read */
    long torn;    /* lines that did not hold an id where expected */
    long outside; /* ids outside 0..n-1 */
} ids_t;

static void s_ids_init(ids_t *s, long n)
{
    memset(s, 0, sizeof(*s));
    s->n = n;
    s->seen = calloc((size_t)n, sizeof(*s->seen));
    cr_assert_not_null(s->seen);
}

static void s_ids_fini(ids_t *s) { free(s->seen); }

/* Adds the ids of a file's lines from offset `from` on. A sink line is
 * the record itself: `{"id":N,...`; a dead-letter or spill entry holds it
 * as `"record":{"id":N,...`. Returns the lines read (0 for no file). */
static long s_ids_add(ids_t *s, const char *name, long from, int entries,
                      unsigned short *only)
{
    char *p = s_path(name);
    FILE *f = fopen(p, "r");
    free(p);
    if (!f)
        return 0;
    cr_assert_eq(fseek(f, from, SEEK_SET), 0);
    char *line = NULL;
    size_t cap = 0;
    long lines = 0;
    while (getline(&line, &cap, f) > 0) {
        lines++;
        const char *at = entries ? strstr(line, "\"record\":{\"id\":")
                                 : strncmp(line, "{\"id\":", 6) == 0 ? line
                                                                      : NULL;
        char *end;
        long id = at ? strtol(strchr(at, ':') + (entries ? 7 : 1), &end, 10)
                     : -1;
        if (!at || (*end != ',' && *end != '}')) {
            s->torn++;
            continue;
        }
        if (id < 0 || id >= s->n) {
            s->outside++;
            continue;
        }
        if (s->seen[id] < 60000)
            s->seen[id]++;
        if (only && only[id] < 60000)
            only[id]++;
    }
    free(line);
    fclose(f);
    s->lines += lines;
    return lines;
}

/* Ids in 0..upto-1 never seen; the first few go into text. */
static long s_ids_missing(const ids_t *s, long upto, char *text, size_t len)
{
    long missing = 0;
    size_t used = 0;
    text[0] = '\0';
    for (long i = 0; i < upto && i < s->n; i++)
        if (!s->seen[i] && missing++ < 8 && used < len)
            used += (size_t)snprintf(text + used, len - used, " %ld", i);
    return missing;
}

/* Deliveries beyond the first, summed over ids. */
static long s_ids_dups(const ids_t *s)
{
    long d = 0;
    for (long i = 0; i < s->n; i++)
        d += s->seen[i] > 1 ? s->seen[i] - 1 : 0;
    return d;
}

/* ---- running the CLI ---------------------------------------------------- */

/* Starts `sluice ARGS...` (NULL-terminated) in the test's folder with
 * stdout and stderr into log. */
static pid_t s_spawn(const char *log, const char *const *args)
{
    char *logp = s_path(log);
    const char *argv[16] = {"sluice"};
    int argc = 1;
    while (args[argc - 1] && argc < 15) {
        argv[argc] = args[argc - 1];
        argc++;
    }
    argv[argc] = NULL;
    pid_t pid = fork();
    cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        /* a failed test must not leave a run going */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open(logp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0 || chdir(sl_test_dir()) != 0)
            _exit(126);
        dup2(fd, 1);
        dup2(fd, 2);
        execv(sl_test_cli(), (char *const *)argv);
        _exit(127);
    }
    free(logp);
    return pid;
}

static char *s_log(const char *log)
{
    char *p = s_path(log);
    char *text = sl_test_read_file(p, NULL);
    free(p);
    return text ? text : strdup("(no log)");
}

/* 1 once `pid` has ended (not reaped), 0 while it runs. */
static int s_ended(pid_t pid)
{
    siginfo_t si;
    memset(&si, 0, sizeof(si));
    if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) != 0)
        return 1;
    return si.si_pid == pid;
}

/* Waits at most timeout_s until `name` holds `lines` lines: 1 once it
 * does, 0 if the run ended first, -1 on timeout. */
static int s_wait_sink(pid_t pid, const char *name, long lines,
                       double timeout_s)
{
    const struct timespec tick = {0, 2 * 1000 * 1000};
    double end = sl_test_now() + timeout_s;
    while (s_size(name) < lines * LINE_LEN) {
        if (s_ended(pid))
            return 0;
        if (sl_test_now() > end)
            return -1;
        nanosleep(&tick, NULL);
    }
    return 1;
}

/* Worker processes (`sluice __worker ... PPID`) that belong to run `pid`:
 * their last argument is the run's pid. */
static int s_workers_of(pid_t pid)
{
    char owner[16];
    snprintf(owner, sizeof(owner), "%d", (int)pid);
    DIR *d = opendir("/proc");
    cr_assert_not_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        char *end, path[64], buf[4096];
        long p = strtol(e->d_name, &end, 10);
        if (*end || p <= 0)
            continue;
        snprintf(path, sizeof(path), "/proc/%ld/cmdline", p);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        ssize_t len = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (len <= 0)
            continue; /* a zombie: no argv */
        buf[len] = '\0';
        const char *args[16];
        int argc = 0;
        for (ssize_t i = 0; i < len && argc < 16;
             i += (ssize_t)strlen(buf + i) + 1)
            args[argc++] = buf + i;
        if (argc >= 2 && strcmp(args[1], "__worker") == 0 &&
            strcmp(args[argc - 1], owner) == 0)
            n++;
    }
    closedir(d);
    return n;
}

/* Asserts that no worker of run `pid` is left, allowing `grace_s` for
 * children that learn of their parent's death asynchronously. */
static void s_expect_no_workers(pid_t pid, double grace_s)
{
    const struct timespec tick = {0, 10 * 1000 * 1000};
    double end = sl_test_now() + grace_s;
    int n;
    while ((n = s_workers_of(pid)) > 0 && sl_test_now() < end)
        nanosleep(&tick, NULL);
    cr_assert_eq(n, 0, "%d worker process(es) of run %d left behind", n,
                 (int)pid);
}

static json_t *s_report(const char *name, const char *log)
{
    char *p = s_path(name);
    json_error_t err;
    json_t *r = json_load_file(p, 0, &err);
    free(p);
    if (!r) {
        char *text = s_log(log);
        cr_assert_fail("report %s: %s; log:\n%s", name, err.text, text);
    }
    return r;
}

static long s_total(json_t *r, const char *key)
{
    json_t *v = json_object_get(json_object_get(r, "totals"), key);
    cr_assert(json_is_integer(v), "report has no totals.%s", key);
    return (long)json_integer_value(v);
}

static long s_stage_val(json_t *r, const char *stage, const char *key)
{
    size_t i;
    json_t *st;
    json_array_foreach(json_object_get(r, "stages"), i, st) {
        if (strcmp(json_string_value(json_object_get(st, "name")), stage))
            continue;
        json_t *v = json_object_get(st, key);
        cr_assert(json_is_integer(v), "stage %s has no '%s'", stage, key);
        return (long)json_integer_value(v);
    }
    cr_assert_fail("report has no stage %s", stage);
    return -1;
}

/* Runs `sluice ARGS...` to its end (at most timeout_s) and returns its
 * exit code. */
static int s_run(const char *log, double timeout_s, const char *const *args)
{
    pid_t pid = s_spawn(log, args);
    int code = sl_test_wait_exit(pid, timeout_s);
    s_expect_no_workers(pid, 2);
    return code;
}

static uint64_t s_seed(void)
{
    const char *env = getenv("SL_TEST_SEED");
    uint64_t seed = env ? strtoull(env, NULL, 10) : 0;
    if (!seed) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        seed = ((uint64_t)ts.tv_sec * 1000003u) ^ (uint64_t)ts.tv_nsec ^
               ((uint64_t)getpid() << 32);
        seed = seed ? seed : 1;
    }
    return seed;
}

static long s_between(uint64_t *rng, long lo, long hi)
{
    return lo + (long)(sl_test_rand(rng) % (uint64_t)(hi - lo + 1));
}

/* ---- 1. SIGTERM at random moments --------------------------------------- */

/* Counts spill.jsonl's entries per stage (names[i]); asserts that every
 * entry says "shutdown" and names one of them. */
static void s_spill_stages(const char *const *names, int n, long *count)
{
    char *p = s_path("spill.jsonl");
    FILE *f = fopen(p, "r");
    free(p);
    if (!f)
        return;
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        int i = 0;
        char want[96];
        for (; i < n; i++) {
            snprintf(want, sizeof(want), "{\"stage\":\"%s\",", names[i]);
            if (strncmp(line, want, strlen(want)) == 0)
                break;
        }
        cr_assert_lt(i, n, "spill entry for an unknown stage: %s", line);
        cr_assert(strstr(line, ",\"error\":\"shutdown\","), "%s", line);
        count[i]++;
    }
    free(line);
    fclose(f);
}

#define TERM_N 200000L

/* One run, SIGTERM after a random number of sink lines. Even rounds are
 * "tight" (a deep queue in front of a slow stage, a short grace: the grace
 * usually runs out and records are spilled), odd ones "loose" (little in
 * flight, a long grace: the run drains). Either ending must keep every
 * guarantee. Returns 1 if records were spilled. */
static int s_term_round(uint64_t *rng, int round, const char *lane)
{
    int tight = round % 2 == 0;
    long grace = tight ? s_between(rng, 200, 300) : s_between(rng, 700, 1000);
    double ms = tight ? 0.15 + 0.01 * (double)s_between(rng, 0, 5)
                      : 0.05 + 0.01 * (double)s_between(rng, 0, 5);
    long workers = tight ? 2 : s_between(rng, 3, 4);
    /* Round 0 always outlasts its grace; the other tight ones usually do.
     * (Deeper queues would spill more, and spilling is paid for after the
     * grace period: see grace_bounds_a_slow_stage.) */
    long queue = round == 0 ? 4096
               : tight      ? s_between(rng, 1536, 3072)
                            : s_between(rng, 32, 128);
    long batch = s_between(rng, 8, 32);
    long src_queue = tight ? 1024 : 128;
    long at = s_between(rng, 50, 6000);

    char topo[2048];
    snprintf(topo, sizeof(topo),
             "name: shut\n"
             "spill: spill.jsonl\n"
             "stages:\n"
             "  - name: read\n"
             "    plugin: file_source\n"
             "    config: {path: in.jsonl}\n"
             "    queue: %ld\n"
             "  - name: slow\n"
             "    plugin: delay\n"
             "    config: {ms: %.2f}\n"
             "    workers: %ld\n"
             "    lane: %s\n"
             "    queue: %ld\n"
             "    batch: %ld\n"
             "  - name: check\n"
             "    plugin: %s\n"
             "    config: {fail_when: bad}\n"
             "    retry: {max_attempts: 2, backoff_ms: 1}\n"
             "    dead_letter: dl.jsonl\n"
             "    queue: 256\n"
             "  - name: out\n"
             "    plugin: file_sink\n"
             "    config: {path: out.jsonl, flush_every: 32}\n",
             src_queue, ms, workers, lane, queue, batch, MISBEHAVE_SO);
    s_write("shut.yaml", topo);
    s_unlink("out.jsonl");
    s_unlink("dl.jsonl");
    s_unlink("spill.jsonl");
    s_unlink("report.json");

    char grace_arg[32];
    snprintf(grace_arg, sizeof(grace_arg), "%ldms", grace);
    const char *args[] = {"run", "shut.yaml", "--report", "report.json",
                          "--grace", grace_arg, NULL};
    pid_t pid = s_spawn("log.txt", args);
    int w = s_wait_sink(pid, "out.jsonl", at, 60);
    if (w != 1) {
        kill(pid, SIGKILL);
        sl_test_wait_exit(pid, 10);
        char *text = s_log("log.txt");
        cr_assert_fail("round %d: the sink never reached %ld lines (%s); "
                       "log:\n%s", round, at, w ? "timeout" : "run ended",
                       text);
    }
    if (round % 3 == 1) { /* a random short delay on top, now and then */
        struct timespec d = {0, s_between(rng, 0, 30) * 1000 * 1000};
        nanosleep(&d, NULL);
    }
    /* The workers are found the way the check for leftovers looks for
     * them, so that finding none afterwards means something. */
    if (strcmp(lane, "process") == 0)
        cr_assert_eq(s_workers_of(pid), workers, "round %d: %d workers "
                     "found, want %ld", round, s_workers_of(pid), workers);
    double t0 = sl_test_now();
    kill(pid, SIGTERM);
    int code = sl_test_wait_exit(pid, (double)grace / 1000 + 30);
    double took = sl_test_now() - t0;
    char *text = s_log("log.txt");
    char what[512];
    snprintf(what, sizeof(what), "round %d (%s lane, %s: ms %.2f, workers "
             "%ld, queue %ld, batch %ld, grace %ld ms, signal after %ld "
             "lines)", round, lane, tight ? "tight" : "loose", ms, workers,
             queue, batch, grace, at);
    cr_assert(code == 0 || code == 4, "%s: exit %d; log:\n%s", what, code,
              text);
    s_expect_no_workers(pid, 2);

    json_t *r = s_report("report.json", "log.txt");
    cr_assert(json_is_true(json_object_get(r, "ledger_ok")),
              "%s: ledger does not balance; log:\n%s", what, text);
    long read = s_total(r, "read"), delivered = s_total(r, "delivered"),
         dead = s_total(r, "dead_lettered"), spilled = s_total(r, "spilled"),
         filtered = s_total(r, "filtered"), lost = s_total(r, "lost");
    cr_assert_eq(lost, 0, "%s: %ld lost", what, lost);
    cr_assert_eq(filtered, 0, "%s", what);
    cr_assert(read > 0 && read < TERM_N, "%s: read %ld: the source did not "
              "stop", what, read);

    ids_t ids;
    s_ids_init(&ids, TERM_N);
    long out_lines = s_ids_add(&ids, "out.jsonl", 0, 0, NULL);
    long dl_lines = s_ids_add(&ids, "dl.jsonl", 0, 1, NULL);
    long spill_lines = s_ids_add(&ids, "spill.jsonl", 0, 1, NULL);
    cr_assert_eq(ids.torn, 0, "%s: %ld lines without an id", what, ids.torn);
    cr_assert_eq(ids.outside, 0, "%s", what);
    /* 4 exactly when the spill file has entries, and it has them all. */
    cr_assert_eq(code == 4, spill_lines > 0, "%s: exit %d with %ld spill "
                 "entries; log:\n%s", what, code, spill_lines, text);
    cr_assert_eq(spill_lines, spilled, "%s: %ld spill entries, report "
                 "%ld", what, spill_lines, spilled);
    cr_assert_eq(out_lines, delivered, "%s: %ld lines written, report %ld",
                 what, out_lines, delivered);
    cr_assert_eq(dl_lines, dead, "%s: %ld dead letters, report %ld", what,
                 dl_lines, dead);
    /* What the sink took in was written, or spilled before it was. */
    long sink_in = s_stage_val(r, "out", "in");
    long sink_spilled = s_stage_val(r, "out", "spilled_in");
    cr_assert_eq(sink_in, delivered + sink_spilled, "%s: sink in %ld, "
                 "delivered %ld, spilled there %ld", what, sink_in, delivered,
                 sink_spilled);

    /* Every id read is somewhere, exactly once (the counts add up to what
     * was read, so once everything is seen nothing can be twice). */
    char miss[256];
    long missing = s_ids_missing(&ids, read, miss, sizeof(miss));
    cr_assert_eq(missing, 0, "%s: %ld of %ld ids read are in none of sink, "
                 "dead letters, spill:%s", what, missing, read, miss);
    for (long i = read; i < TERM_N; i++)
        cr_assert_eq(ids.seen[i], 0, "%s: id %ld was never read (read %ld) "
                     "but appears", what, i, read);
    long dups = s_ids_dups(&ids);
    cr_assert_eq(delivered + dead + spilled, read, "%s: %ld delivered + %ld "
                 "dead-lettered + %ld spilled != %ld read (%ld duplicates)",
                 what, delivered, dead, spilled, read, dups);
    cr_assert_eq(dups, 0, "%s", what);

    /* Each spill entry names the stage that has not handled its record
     * yet: what that stage held, or what its producer could not send. */
    static const char *const chain[] = {"read", "slow", "check", "out"};
    long by_stage[4] = {0};
    s_spill_stages(chain, 4, by_stage);
    for (int i = 1; i < 4; i++) {
        long want = s_stage_val(r, chain[i], "spilled_in") +
                    s_stage_val(r, chain[i - 1], "spilled_out");
        cr_assert_eq(by_stage[i], want, "%s: %ld spill entries for '%s', "
                     "report says %ld", what, by_stage[i], chain[i], want);
    }
    cr_assert_eq(by_stage[0], 0, "%s", what);

    /* The dead letters are the bad records that were not spilled first. */
    ids_t dl;
    s_ids_init(&dl, TERM_N);
    s_ids_add(&dl, "dl.jsonl", 0, 1, NULL);
    ids_t sp;
    s_ids_init(&sp, TERM_N);
    s_ids_add(&sp, "spill.jsonl", 0, 1, NULL);
    for (long i = 0; i < read; i++) {
        cr_assert(!dl.seen[i] || s_is_bad(i), "%s: good id %ld dead-lettered",
                  what, i);
        cr_assert(!s_is_bad(i) || dl.seen[i] || sp.seen[i],
                  "%s: bad id %ld delivered", what, i);
    }
    s_ids_fini(&sp);
    s_ids_fini(&dl);
    s_ids_fini(&ids);

    /* Ended within the grace period plus a second. */
    cr_assert_lt(took, (double)grace / 1000 + 1.0, "%s: took %.3f s after "
                 "the signal; log:\n%s", what, took, text);
    cr_log_info("%s: exit %d after %.3f s, read %ld, delivered %ld, dead %ld, "
                "spilled %ld (%ld at the sink)", what, code, took, read, delivered,
                dead, spilled, sink_spilled);
    json_decref(r);
    free(text);
    return spilled > 0;
}

/* Rounds per lane: two tight and two loose, so that both endings come up
 * on every run (round 0 always spills, the loose ones drain), and one
 * loose round adds a random delay to the moment. More rounds would only
 * repeat these; the seed varies the moments from run to run. */
#define TERM_ROUNDS 4

static void s_term_rounds(const char *lane)
{
    uint64_t rng = s_seed();
    cr_log_info("%s lane: seed %" PRIu64, lane, rng);
    s_write_input("in.jsonl", TERM_N, 1);
    int spilled = 0, drained = 0;
    for (int round = 0; round < TERM_ROUNDS; round++) {
        if (s_term_round(&rng, round, lane))
            spilled++;
        else
            drained++;
    }
    /* Both endings happened: the grace ran out, and it did not. */
    cr_assert_gt(spilled, 0, "the grace never ran out");
    cr_assert_gt(drained, 0, "the grace always ran out");
}

TestSuite(shutdown, .init = sl_test_tmpdir_setup,
          .fini = sl_test_tmpdir_teardown);

Test(shutdown, sigterm_at_random_moments_thread_lane, .timeout = 150)
{
    s_term_rounds("thread");
}

Test(shutdown, sigterm_at_random_moments_process_lane, .timeout = 150)
{
    s_term_rounds("process");
}

/* ---- 2. SIGKILL at random moments, then resume -------------------------- */

/* Kills land after 500 to KILL_N / 3 sink lines, with the rest of the
 * input still to go: what is checked (every id at least once, only a cut
 * line damaged) does not depend on the input's size, and a kill costs a
 * re-run of what was not committed whatever the size. */
#define KILL_N 100000L

static void s_resume_topology(const char *lane)
{
    char topo[1024];
    snprintf(topo, sizeof(topo),
             "name: resume\n"
             "state_dir: state\n"
             "stages:\n"
             "  - name: read\n"
             "    plugin: file_source\n"
             "    config: {path: in.jsonl}\n"
             "  - name: mid\n"
             "    plugin: delay\n"
             "    config: {ms: 0}\n"
             "    workers: 2\n"
             "    lane: %s\n"
             "  - name: out\n"
             "    plugin: file_sink\n"
             "    config: {path: out.jsonl, mode: append}\n",
             lane);
    s_write("resume.yaml", topo);
}

/* Runs resume.yaml to its end; returns its report (the caller frees it). */
static json_t *s_resume_to_end(const char *what)
{
    s_unlink("report.json");
    const char *args[] = {"run", "resume.yaml", "--report", "report.json",
                          "--quiet", NULL};
    int code = s_run("log.txt", 120, args);
    char *text = s_log("log.txt");
    cr_assert_eq(code, 0, "%s: re-run exit %d; log:\n%s", what, code, text);
    free(text);
    json_t *r = s_report("report.json", "log.txt");
    cr_assert(json_is_true(json_object_get(r, "ledger_ok")), "%s", what);
    return r;
}

Test(shutdown, sigkill_at_random_moments_then_resume, .timeout = 170)
{
    uint64_t rng = s_seed();
    cr_log_info("seed %" PRIu64, rng);
    s_write_input("in.jsonl", KILL_N, 0);
    int kills_by_lane[2] = {0, 0};
    for (int cycle = 0; cycle < 4; cycle++) {
        const char *lane = cycle % 2 ? "process" : "thread";
        char what[128];
        s_unlink("out.jsonl");
        char *state = s_path("state");
        sl_test_rmtree(state);
        s_resume_topology(lane);

        /* One or two kills in a row, each run resuming the last one. */
        int kills = 1 + (int)s_between(&rng, 0, 1), killed = 0;
        for (int k = 0; k < kills; k++) {
            long before = s_size("out.jsonl") / LINE_LEN;
            long at = before + s_between(&rng, 500, KILL_N / 3);
            snprintf(what, sizeof(what), "cycle %d (%s lane), kill %d at %ld "
                     "lines", cycle, lane, k + 1, at);
            const char *args[] = {"run", "resume.yaml", "--quiet", NULL};
            pid_t pid = s_spawn("log.txt", args);
            int w = s_wait_sink(pid, "out.jsonl", at, 60);
            cr_assert_neq(w, -1, "%s: the sink never got there", what);
            if (w == 0) { /* it finished first: fine, but no kill */
                int code = sl_test_wait_exit(pid, 10);
                cr_assert_eq(code, 0, "%s: ended first with exit %d", what,
                             code);
                cr_log_info("%s: the run ended before the kill", what);
                continue;
            }
            if (cycle % 2)
                cr_assert_eq(s_workers_of(pid), 2, "%s: %d workers", what,
                             s_workers_of(pid));
            kill(pid, SIGKILL);
            int code = sl_test_wait_exit(pid, 10);
            cr_assert_eq(code, 128 + SIGKILL, "%s: exit %d", what, code);
            s_expect_no_workers(pid, 5);
            killed++;
        }
        kills_by_lane[cycle % 2] += killed;
        snprintf(what, sizeof(what), "cycle %d (%s lane, %d kills)", cycle,
                 lane, killed);
        json_t *r = s_resume_to_end(what);
        long reread = s_total(r, "read");
        cr_assert_eq(s_total(r, "delivered"), reread, "%s", what);
        json_decref(r);

        ids_t ids;
        s_ids_init(&ids, KILL_N);
        s_ids_add(&ids, "out.jsonl", 0, 0, NULL);
        char miss[256];
        long missing = s_ids_missing(&ids, KILL_N, miss, sizeof(miss));
        long dups = s_ids_dups(&ids);
        cr_log_info("%s: %ld lines, %ld duplicates, %ld torn, last run read "
                    "%ld", what, ids.lines, dups, ids.torn, reread);
        cr_assert_eq(missing, 0, "%s: %ld ids never written:%s", what,
                     missing, miss);
        cr_assert_eq(ids.outside, 0, "%s", what);
        /* A line cut short by the kill is the only damage allowed. */
        cr_assert_leq(ids.torn, killed, "%s: %ld damaged lines", what,
                      ids.torn);
        cr_assert_lt(dups, KILL_N, "%s", what);
        cr_assert_eq(ids.lines - ids.torn - dups, KILL_N, "%s", what);
        s_ids_fini(&ids);

        /* Finished: the next run has nothing to read and writes nothing. */
        long size = s_size("out.jsonl");
        r = s_resume_to_end(what);
        cr_assert_eq(s_total(r, "read"), 0, "%s: a run after the end read "
                     "%ld records", what, s_total(r, "read"));
        cr_assert_eq(s_total(r, "delivered"), 0, "%s", what);
        cr_assert_eq(s_size("out.jsonl"), size, "%s", what);
        json_decref(r);
    }
    /* Each lane was killed at least once (a run that ends before its kill
     * would otherwise pass without testing anything). */
    cr_assert_gt(kills_by_lane[0], 0, "no run of the thread lane was killed");
    cr_assert_gt(kills_by_lane[1], 0, "no run of the process lane was "
                 "killed");
}

/* ---- 3. SIGTERM with spilling, then resume ------------------------------ */

#define SPILL_N 100000L

static void s_spill_topology(double ms)
{
    char topo[1024];
    snprintf(topo, sizeof(topo),
             "name: spillres\n"
             "state_dir: state\n"
             "spill: spill.jsonl\n"
             "stages:\n"
             "  - name: read\n"
             "    plugin: file_source\n"
             "    config: {path: in.jsonl}\n"
             "  - name: slow\n"
             "    plugin: delay\n"
             "    config: {ms: %.2f}\n"
             "    workers: 2\n"
             "    queue: 4096\n"
             "  - name: out\n"
             "    plugin: file_sink\n"
             "    config: {path: out.jsonl, mode: append}\n",
             ms);
    s_write("spillres.yaml", topo);
}

Test(shutdown, sigterm_spill_then_resume, .timeout = 90)
{
    uint64_t rng = s_seed();
    cr_log_info("seed %" PRIu64, rng);
    s_write_input("in.jsonl", SPILL_N, 0);
    s_spill_topology(0.2);

    /* 4096 records queued at 0.2 ms with two workers: more than the
     * 100 ms of grace can drain. */
    long at = s_between(&rng, 500, 4000);
    const char *args1[] = {"run", "spillres.yaml", "--report", "report1.json",
                           "--grace", "100ms", NULL};
    pid_t pid = s_spawn("log1.txt", args1);
    cr_assert_eq(s_wait_sink(pid, "out.jsonl", at, 60), 1,
                 "the sink never reached %ld lines", at);
    kill(pid, SIGTERM);
    int code = sl_test_wait_exit(pid, 30);
    char *text = s_log("log1.txt");
    cr_assert_eq(code, 4, "run 1 exit %d; log:\n%s", code, text);
    free(text);
    json_t *r1 = s_report("report1.json", "log1.txt");
    cr_assert(json_is_true(json_object_get(r1, "ledger_ok")));
    long read1 = s_total(r1, "read"), spilled = s_total(r1, "spilled");
    long size1 = s_size("out.jsonl");
    cr_assert_gt(spilled, 0);
    cr_assert_eq(s_total(r1, "delivered") + spilled, read1);

    /* The same topology with a fast middle stage, to its end. */
    s_spill_topology(0);
    const char *args2[] = {"run", "spillres.yaml", "--report", "report2.json",
                           NULL};
    code = s_run("log2.txt", 60, args2);
    text = s_log("log2.txt");
    cr_assert_eq(code, 0, "run 2 exit %d; log:\n%s", code, text);
    free(text);
    json_t *r2 = s_report("report2.json", "log2.txt");
    long read2 = s_total(r2, "read");
    cr_log_info("run 1 read %ld (%ld spilled), run 2 read %ld", read1,
                spilled, read2);
    cr_assert_geq(read1 + read2, SPILL_N, "run 2 skipped records");
    cr_assert_lt(read2, SPILL_N, "run 2 read everything again");
    /* Run 1 ended cleanly (ledger balanced, the rest spilled), so it
     * committed the position after everything its source read. */
    cr_assert_eq(read1 + read2, SPILL_N, "run 1 read %ld, run 2 %ld",
                 read1, read2);
    cr_assert_eq(s_total(r2, "delivered"), read2);

    /* Run 2 read ids from `from` on, in order; everything before that was
     * finished by run 1: written or spilled. */
    long from = SPILL_N - read2;
    ids_t run1, run2, all;
    s_ids_init(&run1, SPILL_N);
    s_ids_init(&run2, SPILL_N);
    s_ids_init(&all, SPILL_N);
    s_ids_add(&run1, "out.jsonl", 0, 0, all.seen);
    s_ids_add(&run1, "spill.jsonl", 0, 1, all.seen);
    s_ids_add(&run2, "out.jsonl", size1, 0, all.seen);
    cr_assert_eq(run1.torn + run2.torn + run1.outside + run2.outside, 0);
    cr_assert_eq(run2.lines, read2);
    char miss[256];
    cr_assert_eq(s_ids_missing(&run1, from, miss, sizeof(miss)), 0,
                 "committed ids not finished by run 1:%s", miss);
    for (long i = 0; i < SPILL_N; i++) {
        cr_assert_eq(run2.seen[i], i >= from, "id %ld written %u times by "
                     "run 2 (it read from %ld)", i, run2.seen[i], from);
        cr_assert_geq(all.seen[i], 1, "id %ld nowhere", i);
    }
    s_ids_fini(&all);
    s_ids_fini(&run2);
    s_ids_fini(&run1);
    json_decref(r2);
    json_decref(r1);
}

/* ---- 4. retries: transient failures pass, exhausted ones dead-letter ---- */

#define SMALL_N 20000L

static void s_fail_topology(const char *name, const char *check_cfg,
                            long max_attempts, const char *out)
{
    char topo[1024], file[64];
    snprintf(topo, sizeof(topo),
             "name: fail\n"
             "stages:\n"
             "  - name: read\n"
             "    plugin: file_source\n"
             "    config: {path: in.jsonl}\n"
             "  - name: check\n"
             "    plugin: %s\n"
             "    config: %s\n"
             "    workers: 2\n"
             "    retry: {max_attempts: %ld, backoff_ms: 5}\n"
             "    dead_letter: dl.jsonl\n"
             "  - name: out\n"
             "    plugin: file_sink\n"
             "    config: {path: %s}\n",
             MISBEHAVE_SO, check_cfg, max_attempts, out);
    snprintf(file, sizeof(file), "%s", name);
    s_write(file, topo);
}

/* Nanoseconds since the epoch of an RFC 3339 time with nanoseconds. */
static long double s_time_ns(const char *s)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    const char *rest = s ? strptime(s, "%Y-%m-%dT%H:%M:%S", &tm) : NULL;
    cr_assert(rest && *rest == '.', "bad time '%s'", s ? s : "(null)");
    char *end;
    long frac = strtol(rest + 1, &end, 10);
    cr_assert(end - rest == 10 && *end == 'Z', "bad time '%s'", s);
    return (long double)timegm(&tm) * 1e9L + (long double)frac;
}

static json_t *s_fail_run(const char *what)
{
    s_unlink("report.json");
    const char *args[] = {"run", "fail.yaml", "--report", "report.json",
                          NULL};
    int code = s_run("log.txt", 60, args);
    char *text = s_log("log.txt");
    cr_assert_eq(code, 0, "%s: exit %d; log:\n%s", what, code, text);
    free(text);
    json_t *r = s_report("report.json", "log.txt");
    cr_assert(json_is_true(json_object_get(r, "ledger_ok")), "%s", what);
    cr_assert_eq(s_total(r, "read"), SMALL_N, "%s", what);
    return r;
}

Test(shutdown, retry_then_success, .timeout = 60)
{
    long bad = s_bad_below(SMALL_N);
    s_write_input("in.jsonl", SMALL_N, 1);
    s_fail_topology("fail.yaml", "{fail_when: bad, fail_attempts: 2}", 3,
                    "out.jsonl");
    json_t *r = s_fail_run("fail_attempts 2");
    cr_assert_eq(s_total(r, "delivered"), SMALL_N);
    cr_assert_eq(s_total(r, "retried"), 2 * bad);
    cr_assert_eq(s_total(r, "dead_lettered"), 0);
    cr_assert_eq(s_size("dl.jsonl"), 0);
    ids_t ids;
    s_ids_init(&ids, SMALL_N);
    s_ids_add(&ids, "out.jsonl", 0, 0, NULL);
    cr_assert_eq(ids.lines, SMALL_N);
    char miss[256];
    cr_assert_eq(s_ids_missing(&ids, SMALL_N, miss, sizeof(miss)), 0, "%s",
                 miss);
    s_ids_fini(&ids);
    json_decref(r);
}

Test(shutdown, retries_exhausted_dead_letter, .timeout = 60)
{
    long bad = s_bad_below(SMALL_N);
    s_write_input("in.jsonl", SMALL_N, 1);
    s_fail_topology("fail.yaml", "{fail_when: bad, fail_attempts: 5}", 3,
                    "out.jsonl");
    json_t *r = s_fail_run("fail_attempts 5");
    cr_assert_eq(s_total(r, "delivered"), SMALL_N - bad);
    cr_assert_eq(s_total(r, "retried"), 2 * bad);
    cr_assert_eq(s_total(r, "dead_lettered"), bad);
    json_decref(r);

    /* Exactly the bad ids, each after three attempts spread over the
     * backoff (at least 5/2 + 10/2 ms with jitter). */
    char *p = s_path("dl.jsonl");
    FILE *f = fopen(p, "r");
    cr_assert_not_null(f, "no dead-letter file");
    free(p);
    unsigned char *seen = calloc(SMALL_N, 1);
    char *line = NULL;
    size_t cap = 0;
    long n = 0;
    while (getline(&line, &cap, f) > 0) {
        json_error_t err;
        json_t *e = json_loads(line, 0, &err);
        cr_assert_not_null(e, "entry %ld: %s", n + 1, err.text);
        json_t *rec = json_object_get(e, "record");
        long id = (long)json_integer_value(json_object_get(rec, "id"));
        cr_assert(id >= 0 && id < SMALL_N && s_is_bad(id) && !seen[id],
                  "entry %ld: id %ld", n + 1, id);
        seen[id] = 1;
        cr_assert_str_eq(json_string_value(json_object_get(e, "stage")),
                         "check");
        cr_assert_eq(json_integer_value(json_object_get(e, "attempts")), 3,
                     "%s", line);
        cr_assert_str_eq(json_string_value(json_object_get(e, "error")),
                         "bad is true (attempt 3)");
        long double first = s_time_ns(json_string_value(
            json_object_get(e, "first_failure")));
        long double last = s_time_ns(json_string_value(
            json_object_get(e, "last_failure")));
        cr_assert(last - first >= 7.5e6L, "first_failure %s, last_failure "
                  "%s: less than the backoff apart", json_string_value(
                  json_object_get(e, "first_failure")), json_string_value(
                  json_object_get(e, "last_failure")));
        json_decref(e);
        n++;
    }
    free(line);
    fclose(f);
    free(seen);
    cr_assert_eq(n, bad);
}

/* ---- 5. a dead-letter replay completes the data set --------------------- */

Test(shutdown, dead_letter_replay_completes_the_output, .timeout = 60)
{
    long bad = s_bad_below(SMALL_N);
    s_write_input("in.jsonl", SMALL_N, 1);
    s_fail_topology("fail.yaml", "{fail_when: bad}", 1, "out1.jsonl");
    json_t *r = s_fail_run("failing run");
    cr_assert_eq(s_total(r, "dead_lettered"), bad);
    cr_assert_eq(s_total(r, "delivered"), SMALL_N - bad);
    json_decref(r);

    s_fail_topology("fixed.yaml", "{}", 1, "out2.jsonl");
    const char *args[] = {"dlq", "replay", "dl.jsonl", "--topology",
                          "fixed.yaml", "--stage", "check", "--report",
                          "report2.json", NULL};
    int code = s_run("log2.txt", 60, args);
    char *text = s_log("log2.txt");
    cr_assert_eq(code, 0, "replay exit %d; log:\n%s", code, text);
    char want[128];
    snprintf(want, sizeof(want), "sluice dlq replay: %ld of %ld records "
             "replayed into stage 'check'", bad, bad);
    cr_assert(strstr(text, want), "want '%s' in:\n%s", want, text);
    free(text);
    r = s_report("report2.json", "log2.txt");
    cr_assert_eq(s_total(r, "delivered"), bad);
    json_decref(r);

    ids_t ids;
    s_ids_init(&ids, SMALL_N);
    unsigned short *second = calloc(SMALL_N, sizeof(*second));
    s_ids_add(&ids, "out1.jsonl", 0, 0, NULL);
    s_ids_add(&ids, "out2.jsonl", 0, 0, second);
    cr_assert_eq(ids.lines, SMALL_N);
    cr_assert_eq(ids.torn + ids.outside, 0);
    for (long i = 0; i < SMALL_N; i++) {
        cr_assert_eq(ids.seen[i], 1, "id %ld written %u times", i,
                     ids.seen[i]);
        cr_assert_eq(second[i], s_is_bad(i), "id %ld in the replay: %u", i,
                     second[i]);
    }
    free(second);
    s_ids_fini(&ids);
}

/* ---- 6. the grace period bounds a slow stage ---------------------------- */

/* Records that take 20 ms each, handed to workers in batches of up to 256
 * (the source's batch): a worker that has just started a batch would
 * need seconds for all of it. Past the grace period, only the record in
 * hand may be finished; the rest of the batch is in flight and spills.
 *
 * With slow_ms: 10 every 20 ms record is logged as slow when it is done,
 * so the first such line means a worker has finished the first record of
 * its first batch and holds the rest (seconds of work): the signal goes
 * then, instead of after a whole batch has gone through (5 s). */
static void s_slow_stage_round(const char *lane)
{
    char topo[1024];
    snprintf(topo, sizeof(topo),
             "name: slowstop\n"
             "spill: spill.jsonl\n"
             "stages:\n"
             "  - name: read\n"
             "    plugin: file_source\n"
             "    config: {path: in.jsonl}\n"
             "  - name: slow\n"
             "    plugin: delay\n"
             "    config: {ms: 20}\n"
             "    workers: 2\n"
             "    lane: %s\n"
             "    queue: 1024\n"
             "    slow_ms: 10\n"
             "  - name: out\n"
             "    plugin: file_sink\n"
             "    config: {path: out.jsonl, flush_every: 1}\n",
             lane);
    s_write("slowstop.yaml", topo);
    s_write_input("in.jsonl", 20000, 0);
    const char *args[] = {"run", "slowstop.yaml", "--report", "report.json",
                          "--grace", "300ms", NULL};
    pid_t pid = s_spawn("log.txt", args);
    free(sl_test_wait_log("log.txt", "msg=\"slow handler: record ", 60));
    long at_signal = s_size("out.jsonl") / LINE_LEN;
    double t0 = sl_test_now();
    kill(pid, SIGTERM);
    int code = sl_test_wait_exit(pid, 60);
    double took = sl_test_now() - t0;
    s_expect_no_workers(pid, 2);
    char *text = s_log("log.txt");
    cr_assert_eq(code, 4, "%s lane: exit %d; log:\n%s", lane, code, text);
    json_t *r = s_report("report.json", "log.txt");
    cr_assert(json_is_true(json_object_get(r, "ledger_ok")));
    long read = s_total(r, "read");
    ids_t ids;
    s_ids_init(&ids, 20000);
    s_ids_add(&ids, "out.jsonl", 0, 0, NULL);
    s_ids_add(&ids, "spill.jsonl", 0, 1, NULL);
    char miss[256];
    cr_assert_eq(s_ids_missing(&ids, read, miss, sizeof(miss)), 0, "%s", miss);
    cr_assert_eq(ids.lines, read);
    s_ids_fini(&ids);
    cr_log_info("%s lane, 20 ms records: signal with %ld lines out, exit %d "
                "after %.3f s (grace 0.3 s), read %ld, delivered %ld, spilled "
                "%ld", lane, at_signal, code, took, read,
                s_total(r, "delivered"), s_total(r, "spilled"));
    cr_assert_lt(took, 1.3, "%s lane: the run ended %.3f s after SIGTERM "
                 "with a grace of 0.3 s: the workers finished whole batches "
                 "of 20 ms records instead of spilling what they had not "
                 "started; log:\n%s", lane, took, text);
    json_decref(r);
    free(text);
}

Test(shutdown, grace_bounds_a_slow_stage_thread_lane, .timeout = 90)
{
    s_slow_stage_round("thread");
}

Test(shutdown, grace_bounds_a_slow_stage_process_lane, .timeout = 90)
{
    s_slow_stage_round("process");
}
