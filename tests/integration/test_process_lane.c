/* Process lanes end to end: a stage whose workers are child processes
 * loses nothing and sends nothing on twice when they die (killed from
 * outside, crashing, hanging), dead-letters exactly the records that kill
 * their worker max_attempts times, keeps its bound across processes, backs
 * off respawning a worker that keeps dying, and leaves no worker behind
 * when sluice itself is killed.
 *
 * Worker processes are found through /proc: argv is `sluice __worker
 * ENDPOINT WORKER GEN HBFD PPID`, and a test run's workers are children of
 * the test process (the dispatcher thread forks them). */
#include <criterion/criterion.h>
#include <criterion/logging.h>

#include "deadletter.h"
#include "harness.h"
#include "run.h"
#include "testutil.h"

#include <sluice/json.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CHECKSUM_SO SL_TEST_BINARY_DIR "/tests/plugins/checksum_sink.so"
#define MISBEHAVE_SO SL_TEST_BINARY_DIR "/tests/plugins/misbehave.so"
#define MIB (1024.0 * 1024.0)
/* Ids of the first source (stage index 0, worker 0): its n-th record. */
#define SRC_ID(n) ((1ull << 48) | (uint64_t)(n))

#if defined(__SANITIZE_ADDRESS__)
/* Worker processes are sanitized too, and so is misbehave.so: UBSan
 * catches its NULL load before the CPU does and ends the worker with
 * exit code 1 (pinned in sl_test_sanitizer_worker_env). Everything is slower, too. */
#define CRASH_REASON "worker exited with status 1"
#define CHAOS_N 100000u
#define SLOW 3.0
#define SPAWN_SLACK_S 10.0
#else
#define CRASH_REASON "worker killed by signal 11"
#define CHAOS_N 200000u
#define SLOW 1.0
#define SPAWN_SLACK_S 6.0
#endif

/* ---- helpers ------------------------------------------------------------ */

static int rm_entry(const char *path, const struct stat *sb, int flag,
                    struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void rm_tree(char *dir)
{
    if (dir)
        nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    free(dir);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void pause_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Reads a small /proc file into buf without allocating: under ASan every
 * freed block sits in quarantine for a while, and a sampling loop that
 * allocates would make this process's RSS grow by itself. */
static ssize_t read_small(const char *path, char *buf, size_t size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, size - 1);
    close(fd);
    buf[n > 0 ? n : 0] = '\0';
    return n;
}

static long rss_of(const char *statm)
{
    char buf[256];
    long size = 0, resident = 0;
    if (read_small(statm, buf, sizeof(buf)) <= 0 ||
        sscanf(buf, "%ld %ld", &size, &resident) != 2)
        return -1;
    return resident * sysconf(_SC_PAGESIZE);
}

static sl_topology_t *load(const char *dir, const char *yaml)
{
    sl_diag_t diag;
    sl__diag_init(&diag);
    sl_topology_t *t = sl__topology_parse("pl.yaml", dir, yaml, &diag);
    char msg[2048] = "";
    for (size_t i = 0, off = 0; i < diag.count && off < sizeof(msg); i++)
        off += (size_t)snprintf(msg + off, sizeof(msg) - off, "%s\n",
                                diag.lines[i]);
    sl__diag_fini(&diag);
    cr_assert_not_null(t, "topology rejected:\n%s---\n%s", msg, yaml);
    return t;
}

static size_t index_of(const sl_topology_t *t, const char *name)
{
    long i = sl__topology_find(t, name);
    cr_assert_geq(i, 0, "no stage '%s'", name);
    return (size_t)i;
}

static void assert_ledger(sl_run_t *run)
{
    sl_diag_t diag;
    sl__diag_init(&diag);
    int rc = sl__run_check_ledger(run, &diag);
    cr_assert_eq(rc, 0, "ledger: %zu problem(s), first: %s", diag.count,
                 diag.count ? diag.lines[0] : "-");
    sl__diag_fini(&diag);
}

/* One checksum_sink line with track_ids. */
typedef struct sums {
    uint64_t count, sum, xor_, violations, keys;
    uint64_t distinct, dups, dsum, dxor;
} sums_t;

static void read_sums(const char *path, sums_t *s)
{
    memset(s, 0, sizeof(*s));
    char *text = sl_test_read_file(path, NULL);
    cr_assert_not_null(text, "checksum_sink wrote no file at %s", path);
    int n = sscanf(text,
                   "count=%" SCNu64 " sum=%" SCNu64 " xor=%" SCNu64
                   " violations=%" SCNu64 " keys=%" SCNu64
                   " distinct=%" SCNu64 " dups=%" SCNu64 " dsum=%" SCNu64
                   " dxor=%" SCNu64,
                   &s->count, &s->sum, &s->xor_, &s->violations, &s->keys,
                   &s->distinct, &s->dups, &s->dsum, &s->dxor);
    cr_assert_eq(n, 9, "unexpected checksum line: '%s'", text);
    const char *nl = strchr(text, '\n');
    cr_assert(nl && nl[1] == '\0', "one sink worker, one line: '%s'", text);
    free(text);
}

/* A JSONL input: record k is {"i":k} plus `"<flag>":true` where
 * flag_of(k) names one. */
typedef const char *(*flag_fn)(unsigned k);

static void write_jsonl(const char *path, unsigned n, flag_fn flag_of)
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

/* ---- worker processes through /proc ------------------------------------- */

typedef struct proc_info {
    pid_t pid, ppid;
    char state;
    unsigned long cpu_ticks; /* utime + stime */
    int is_worker;           /* argv[1] is "__worker" */
    char last_arg[64];
} proc_info_t;

static int proc_read(pid_t pid, proc_info_t *pi)
{
    memset(pi, 0, sizeof(*pi));
    pi->pid = pid;
    char path[64], buf[4096];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    if (read_small(path, buf, sizeof(buf)) <= 0)
        return -1;
    const char *p = strrchr(buf, ')'); /* the name may hold anything */
    unsigned long ut = 0, st = 0;
    int ppid = 0;
    if (!p || sscanf(p + 2, "%c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
                     &pi->state, &ppid, &ut, &st) != 4)
        return -1;
    pi->ppid = ppid;
    pi->cpu_ticks = ut + st;

    snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
    ssize_t len = read_small(path, buf, sizeof(buf));
    if (len < 0)
        return -1;
    if (len == 0)
        return 0; /* a zombie or a kernel thread: no argv */
    const char *args[16];
    int argc = 0;
    for (ssize_t i = 0; i < len && argc < 16; i += (ssize_t)strlen(buf + i) + 1)
        args[argc++] = buf + i;
    pi->is_worker = argc >= 2 && strcmp(args[1], "__worker") == 0;
    snprintf(pi->last_arg, sizeof(pi->last_arg), "%.63s", args[argc - 1]);
    return 0;
}

/* Live worker processes that are children of `parent` (0: any parent) and
 * whose last argument is `owner` (NULL: any). Returns how many; fills up
 * to max of them into out. */
static int find_workers(pid_t parent, const char *owner, proc_info_t *out,
                        int max)
{
    DIR *d = opendir("/proc");
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        if (*end || pid <= 0)
            continue;
        proc_info_t pi;
        if (proc_read((pid_t)pid, &pi) != 0 || !pi.is_worker ||
            pi.state == 'Z' || (parent && pi.ppid != parent) ||
            (owner && strcmp(pi.last_arg, owner) != 0))
            continue;
        if (n < max)
            out[n] = pi;
        n++;
    }
    closedir(d);
    return n;
}

/* ---- checksum_sink track_ids -------------------------------------------- */

Test(process_lane, checksum_sink_track_ids_line)
{
    char *dir = sl_test_tmpdir();
    cr_assert_not_null(dir);
    char err[2048] = "";
    sl_harness_t *h = sl_harness_new(CHECKSUM_SO, "path: s.txt\ntrack_ids: true",
                                     dir, err, sizeof(err));
    cr_assert_not_null(h, "harness: %s", err);
    uint64_t x = 0;
    for (uint64_t id = 1; id <= 10; id++) { /* the harness numbers 1, 2, ... */
        cr_assert_eq(sl_harness_push_json(h, "{\"a\":1}"), 0);
        x ^= id;
    }
    sl_harness_destroy(&h);
    char want[256], path[1024];
    snprintf(want, sizeof(want),
             "count=10 sum=55 xor=%" PRIu64 " violations=0 keys=0 "
             "distinct=10 dups=0 dsum=55 dxor=%" PRIu64 "\n", x, x);
    snprintf(path, sizeof(path), "%s/s.txt", dir);
    char *text = sl_test_read_file(path, NULL);
    cr_assert_not_null(text);
    cr_assert_str_eq(text, want);
    free(text);

    /* Without track_ids the line is as it always was. */
    h = sl_harness_new(CHECKSUM_SO, "path: s.txt\ntrack_ids: false", dir, err,
                       sizeof(err));
    cr_assert_not_null(h, "harness: %s", err);
    sl_harness_destroy(&h);
    text = sl_test_read_file(path, NULL);
    cr_assert_not_null(text);
    cr_assert_str_eq(text + strlen(want),
                     "count=0 sum=0 xor=0 violations=0 keys=0\n");
    free(text);

    h = sl_harness_new(CHECKSUM_SO, "path: s.txt\ntrack_ids: maybe", dir, err,
                       sizeof(err));
    cr_assert_null(h, "track_ids: maybe accepted");
    cr_assert_not_null(strstr(err, "config:2:12: "), "%s", err);
    cr_assert_not_null(strstr(err, "'track_ids' must be true or false"), "%s",
                       err);
    rm_tree(dir);
}

/* Broadcast into two branches that meet again at one sink: every id
 * arrives exactly twice. */
Test(process_lane, checksum_sink_counts_duplicates, .timeout = 60)
{
    enum { N = 10001 };
    char *dir = sl_test_tmpdir();
    cr_assert_not_null(dir);
    char out[512], *yaml = NULL;
    snprintf(out, sizeof(out), "%s/sums.txt", dir);
    cr_assert_gt(asprintf(&yaml,
                          "stages:\n"
                          "  - {name: gen, plugin: generator, config: {count: %d}}\n"
                          "  - {name: a, plugin: fields, from: gen,"
                          " config: {set: {b: a}}}\n"
                          "  - {name: b, plugin: fields, from: gen,"
                          " config: {set: {b: b}}}\n"
                          "  - name: sink\n"
                          "    plugin: %s\n"
                          "    from: [a, b]\n"
                          "    config: {path: %s, track_ids: true}\n",
                          N, CHECKSUM_SO, out),
                 0);
    sl_topology_t *t = load(dir, yaml);
    char err[1024];
    sl_run_t *run = sl__run_new(t, err, sizeof(err));
    cr_assert_not_null(run, "sl__run_new: %s", err);
    cr_assert_eq(sl__run_start(run), 0);
    cr_assert_eq(sl__run_wait(run), 0);
    assert_ledger(run);
    sl__run_destroy(&run);

    uint64_t sum = 0, x = 0;
    for (unsigned k = 0; k < N; k++) {
        sum += SRC_ID(k);
        x ^= SRC_ID(k);
    }
    sums_t s;
    read_sums(out, &s);
    cr_assert_eq(s.count, 2 * N);
    cr_assert_eq(s.distinct, N);
    cr_assert_eq(s.dups, N);
    cr_assert_eq(s.dsum, sum);
    cr_assert_eq(s.dxor, x);
    cr_assert_eq(s.sum, 2 * sum);
    cr_assert_eq(s.xor_, 0);
    sl__topology_destroy(&t);
    free(yaml);
    rm_tree(dir);
}

/* ---- chaos: kill -9 random workers while records flow ------------------- */

typedef struct killer {
    sl_run_t *run;
    size_t stage;
    uint64_t stop_at; /* stop once the stage has handled this many */
    uint64_t total;   /* records the stage gets in all */
    double deadline;  /* or at this time, whatever happens */
    atomic_int stop;
    unsigned seed;
    unsigned kills;   /* kill(2) calls that found the process */
    unsigned late;    /* of them, kills after the last record came in */
    unsigned misses;
    unsigned rounds;
    double first_kill, last_kill;
    /* When each pid was first seen: a worker is killed only once it has
     * had time to start, since one that dies again and again before it is
     * set up makes the stage give up (by design: a broken plugin init),
     * and a loaded machine (ASan, ctest -j) starts workers slowly. */
    struct { pid_t pid; double seen; } ages[64];
    unsigned n_ages;
} killer_t;

static double killer_age(killer_t *k, pid_t pid, double now)
{
    for (unsigned i = 0; i < k->n_ages; i++)
        if (k->ages[i].pid == pid)
            return now - k->ages[i].seen;
    unsigned slot = k->n_ages < 64 ? k->n_ages++ : k->rounds % 64;
    k->ages[slot].pid = pid;
    k->ages[slot].seen = now;
    return 0.0;
}

static void *killer_main(void *arg)
{
    killer_t *k = arg;
    pid_t self = getpid();
    while (!atomic_load(&k->stop) && now_s() < k->deadline) {
        /* Killing a worker during the final flush fails the run by
         * design (what it buffered would be lost), so the kills end
         * before the stage has handled everything. */
        sl_stage_stats_t st;
        sl__run_stats(k->run, k->stage, &st);
        if (st.in >= k->stop_at || st.finished)
            break;
        proc_info_t w[16];
        int n = find_workers(self, NULL, w, 16);
        if (n > 16)
            n = 16;
        /* keep only the workers old enough to be up */
        int up = 0;
        for (int i = 0; i < n; i++)
            if (killer_age(k, w[i].pid, now_s()) >= 0.1 * SLOW)
                w[up++] = w[i];
        n = up;
        if (n > 0) {
            pid_t victim = w[rand_r(&k->seed) % (unsigned)n].pid;
            if (kill(victim, SIGKILL) == 0) {
                k->kills++;
                /* On a loaded machine the stage may have taken its last
                 * record since the check above: the end of its stream
                 * may then retire the victim instead of replacing it. */
                sl__run_stats(k->run, k->stage, &st);
                if (st.in >= k->total || st.finished)
                    k->late++;
                if (!k->first_kill)
                    k->first_kill = now_s();
                k->last_kill = now_s();
            } else {
                k->misses++;
            }
        }
        k->rounds++;
        pause_ms(50);
    }
    return NULL;
}

Test(process_lane, chaos_kill_workers_loses_nothing, .timeout = 240)
{
    sl_test_sanitizer_worker_env();
    char *dir = sl_test_tmpdir();
    cr_assert_not_null(dir);
    char out[512], *yaml = NULL;
    snprintf(out, sizeof(out), "%s/sums.txt", dir);
    /* burn passes records through unchanged after 10 us of work, so that
     * the workers are busy and most kills land on a record in hand.
     * batch: 64 below the generator's 256-record batches makes each item's
     * output leave as several batches. max_attempts is high: here the
     * records are innocent, and one in hand at several kills must not be
     * dead-lettered. */
    cr_assert_gt(asprintf(&yaml,
                          "stages:\n"
                          "  - name: gen\n"
                          "    plugin: generator\n"
                          "    config: {count: %u}\n"
                          "  - name: work\n"
                          "    plugin: burn\n"
                          "    lane: process\n"
                          "    workers: 4\n"
                          "    batch: 64\n"
                          "    retry: {max_attempts: 1000}\n"
                          "    config: {us: 10}\n"
                          "  - name: sink\n"
                          "    plugin: %s\n"
                          "    config: {path: %s, track_ids: true}\n",
                          CHAOS_N, CHECKSUM_SO, out),
                 0);
    sl_topology_t *t = load(dir, yaml);
    size_t mb = index_of(t, "work"), sink = index_of(t, "sink");
    char err[1024];
    sl_run_t *run = sl__run_new(t, err, sizeof(err));
    cr_assert_not_null(run, "sl__run_new: %s", err);

    killer_t k = {.run = run, .stage = mb, .stop_at = CHAOS_N / 10 * 9,
                  .total = CHAOS_N,
                  .seed = (unsigned)time(NULL) ^ (unsigned)getpid()};
    unsigned seed = k.seed;
    double t0 = now_s();
    k.deadline = t0 + 60 * SLOW;
    cr_assert_eq(sl__run_start(run), 0);
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, killer_main, &k), 0);
    int rc = sl__run_wait(run);
    double took = now_s() - t0;
    atomic_store(&k.stop, 1);
    pthread_join(th, NULL);

    sl_stage_stats_t st, sk;
    sl__run_stats(run, mb, &st);
    sl__run_stats(run, sink, &sk);
    cr_log_info("chaos (seed %u): %u records in %.2f s (%.0f/s); %u kills "
                "(%u late) in %u rounds over %.2f s (%u missed), %" PRIu64
                " restarts, %" PRIu64 " records handled twice",
                seed, CHAOS_N, took, CHAOS_N / took, k.kills, k.late, k.rounds,
                k.kills ? k.last_kill - k.first_kill : 0.0, k.misses,
                st.restarts, st.redelivered);
    cr_assert_eq(rc, 0, "the run did not end cleanly");
    assert_ledger(run);
    cr_assert_gt(k.kills, k.late, "the killer found no worker to kill "
                 "while records came in");
    cr_assert_geq(st.restarts, k.kills - k.late,
                  "%u workers killed (%u after the last record came in), %"
                  PRIu64 " restarts", k.kills, k.late, st.restarts);
    cr_assert_eq(st.errors, 0, "%" PRIu64 " records given up", st.errors);
    cr_assert_eq(st.in, CHAOS_N);
    cr_assert_eq(st.out, sk.in, "the transform counted %" PRIu64
                 " out, the sink %" PRIu64 " in", st.out, sk.in);
    sl__run_destroy(&run);

    uint64_t sum = 0, x = 0;
    for (unsigned i = 0; i < CHAOS_N; i++) {
        sum += SRC_ID(i);
        x ^= SRC_ID(i);
    }
    sums_t s;
    read_sums(out, &s);
    cr_log_info("chaos: sink count=%" PRIu64 " distinct=%" PRIu64
                " dups=%" PRIu64, s.count, s.distinct, s.dups);
    cr_assert_eq(s.count, sk.in);
    cr_assert_eq(s.distinct, CHAOS_N, "ids lost: %" PRIu64 " of %u arrived",
                 s.distinct, CHAOS_N);
    cr_assert_eq(s.dsum, sum, "the set of ids that arrived is not 0..N-1");
    cr_assert_eq(s.dxor, x, "the set of ids that arrived is not 0..N-1");
    /* A worker's output leaves it only with its finished item, so records
     * handled twice by the plugin are never sent on twice. */
    cr_assert_eq(s.dups, 0, "the sink saw %" PRIu64 " duplicates (%" PRIu64
                 " records handled twice)", s.dups, st.redelivered);
    cr_assert_gt(st.redelivered, 0, "no kill hit a worker in the middle of "
                 "an item in %u kills", k.kills);
    sl__topology_destroy(&t);
    free(yaml);
    rm_tree(dir);
}

/* ---- dead letters --------------------------------------------------------- */

typedef struct dl_entry {
    char stage[32];
    uint64_t id;
    uint32_t attempts;
    char error[256];
    char record[256]; /* as JSON */
} dl_entry_t;

typedef struct dl_list {
    dl_entry_t e[64];
    size_t n;
} dl_list_t;

static int dl_visit(const sl_deadletter_entry_t *e, void *arg)
{
    dl_list_t *l = arg;
    if (l->n == sizeof(l->e) / sizeof(l->e[0]))
        return 1;
    dl_entry_t *d = &l->e[l->n++];
    memset(d, 0, sizeof(*d));
    snprintf(d->stage, sizeof(d->stage), "%s", e->stage);
    d->id = e->id;
    d->attempts = e->attempts;
    snprintf(d->error, sizeof(d->error), "%s", e->error ? e->error : "(none)");
    if (!e->record) {
        snprintf(d->record, sizeof(d->record), "(none)");
        return 0;
    }
    msgpack_zone zone;
    msgpack_zone_init(&zone, 1024);
    msgpack_object obj;
    size_t off = 0;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    if (msgpack_unpack(e->record, e->record_len, &off, &zone, &obj) ==
            MSGPACK_UNPACK_SUCCESS &&
        sl_json_encode(&obj, &sb) == 0)
        snprintf(d->record, sizeof(d->record), "%.*s", (int)sb.size, sb.data);
    else
        snprintf(d->record, sizeof(d->record), "(undecodable)");
    msgpack_sbuffer_destroy(&sb);
    msgpack_zone_destroy(&zone);
    return 0;
}

static void read_dead_letters(const char *path, dl_list_t *l)
{
    memset(l, 0, sizeof(*l));
    char err[512] = "";
    int rc = sl__deadletter_read(path, dl_visit, l, err, sizeof(err));
    cr_assert_eq(rc, 0, "reading %s: %d %s", path, rc, err);
}

static const dl_entry_t *dl_find(const dl_list_t *l, const char *record)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->e[i].record, record) == 0)
            return &l->e[i];
    return NULL;
}

/* Checks one dead letter: the record exactly as written, its id, the
 * attempts and the error text. */
static void assert_dead_letter(const dl_list_t *l, unsigned i, const char *flag,
                               const char *error, uint32_t attempts)
{
    char record[128];
    snprintf(record, sizeof(record), "{\"i\":%u,\"%s\":true}", i, flag);
    const dl_entry_t *e = dl_find(l, record);
    cr_assert_not_null(e, "record %s was not dead-lettered (%zu entries, "
                       "first: %s)", record, l->n, l->n ? l->e[0].record : "-");
    cr_assert_str_eq(e->stage, "mb");
    cr_assert_str_eq(e->error, error, "%s", record);
    cr_assert_eq(e->attempts, attempts, "%s", record);
    cr_assert_eq(e->id, SRC_ID(i), "%s: id %" PRIx64, record, e->id);
}

/* A pipeline file -> misbehave (process lane) -> checksum_sink; the caller
 * writes in.jsonl into t->dir first. */
typedef struct lane_test {
    char *dir;
    char in[512], out[512], dl[512];
    char *yaml;
    sl_topology_t *topo;
    sl_run_t *run;
    double took;
    int rc;
    sl_stage_stats_t mb, sink;
} lane_test_t;

static void lane_setup(lane_test_t *lt)
{
    memset(lt, 0, sizeof(*lt));
    lt->dir = sl_test_tmpdir();
    cr_assert_not_null(lt->dir);
    snprintf(lt->in, sizeof(lt->in), "%s/in.jsonl", lt->dir);
    snprintf(lt->out, sizeof(lt->out), "%s/sums.txt", lt->dir);
    snprintf(lt->dl, sizeof(lt->dl), "%s/dl-mb.jsonl", lt->dir);
}

/* `stage_extra` goes into the misbehave stage's map (indented 4). */
static void lane_run(lane_test_t *lt, const char *stage_extra)
{
    cr_assert_gt(asprintf(&lt->yaml,
                          "stages:\n"
                          "  - name: src\n"
                          "    plugin: file_source\n"
                          "    config: {path: %s, format: jsonl}\n"
                          "  - name: mb\n"
                          "    plugin: %s\n"
                          "    lane: process\n"
                          "    dead_letter: %s/dl-{stage}.jsonl\n"
                          "%s"
                          "    config: {crash_when: crash, abort_when: abort,"
                          " exit_when: exit, hang_when: hang}\n"
                          "  - name: sink\n"
                          "    plugin: %s\n"
                          "    config: {path: %s, track_ids: true}\n",
                          lt->in, MISBEHAVE_SO, lt->dir, stage_extra,
                          CHECKSUM_SO, lt->out),
                 0);
    lt->topo = load(lt->dir, lt->yaml);
    char err[1024];
    lt->run = sl__run_new(lt->topo, err, sizeof(err));
    cr_assert_not_null(lt->run, "sl__run_new: %s", err);
    double t0 = now_s();
    cr_assert_eq(sl__run_start(lt->run), 0);
    lt->rc = sl__run_wait(lt->run);
    lt->took = now_s() - t0;
    sl__run_stats(lt->run, index_of(lt->topo, "mb"), &lt->mb);
    sl__run_stats(lt->run, index_of(lt->topo, "sink"), &lt->sink);
    cr_log_info("%.3f s; mb: in %" PRIu64 " out %" PRIu64 " errors %" PRIu64
                ", %" PRIu64 " restarts, %" PRIu64 " records handled twice",
                lt->took, lt->mb.in, lt->mb.out, lt->mb.errors,
                lt->mb.restarts, lt->mb.redelivered);
    cr_assert_eq(lt->rc, 0, "the run did not end cleanly");
    assert_ledger(lt->run);
    sl__run_destroy(&lt->run); /* the sink writes its line */
}

static void lane_teardown(lane_test_t *lt)
{
    sl__topology_destroy(&lt->topo);
    free(lt->yaml);
    rm_tree(lt->dir);
}

/* The sink got every record except `skip` (sorted), each exactly once. */
static void assert_sink_all_but(const lane_test_t *lt, unsigned n,
                                const unsigned *skip, size_t n_skip)
{
    uint64_t sum = 0, x = 0;
    for (unsigned k = 0, j = 0; k < n; k++) {
        if (j < n_skip && skip[j] == k) {
            j++;
            continue;
        }
        sum += SRC_ID(k);
        x ^= SRC_ID(k);
    }
    sums_t s;
    read_sums(lt->out, &s);
    cr_assert_eq(s.count, n - n_skip);
    cr_assert_eq(s.distinct, n - n_skip);
    cr_assert_eq(s.dups, 0);
    cr_assert_eq(s.dsum, sum, "not the expected set of ids");
    cr_assert_eq(s.dxor, x, "not the expected set of ids");
}

static const char *poison_flag(unsigned k)
{
    switch (k) {
    case 0:
        return "abort"; /* first record of the first batch */
    case 500:
    case 1500:
        return "crash";
    case 1999:
        return "exit"; /* last record of the last batch */
    default:
        return NULL;
    }
}

Test(process_lane, poison_records_are_dead_lettered, .timeout = 120)
{
    enum { N = 2000 };
    sl_test_sanitizer_worker_env();
    lane_test_t lt;
    lane_setup(&lt);
    write_jsonl(lt.in, N, poison_flag);
    lane_run(&lt, "    workers: 2\n"
                  "    retry: {max_attempts: 3}\n");

    cr_assert_eq(lt.mb.in, N);
    cr_assert_eq(lt.mb.errors, 4);
    cr_assert_eq(lt.mb.out, N - 4);
    cr_assert_eq(lt.sink.in, N - 4);
    /* each poison record killed a worker on each of its 3 attempts */
    cr_assert_eq(lt.mb.restarts, 12);
    /* The records before a poison record in its item were handled, then
     * handed out again; the sink still sees them once (checked below). */
    cr_assert_gt(lt.mb.redelivered, 0);

    dl_list_t dl;
    read_dead_letters(lt.dl, &dl);
    cr_assert_eq(dl.n, 4, "%zu dead letters", dl.n);
    assert_dead_letter(&dl, 500, "crash",
                       CRASH_REASON " while processing (attempt 3 of 3)", 3);
    assert_dead_letter(&dl, 1500, "crash",
                       CRASH_REASON " while processing (attempt 3 of 3)", 3);
    assert_dead_letter(&dl, 0, "abort",
                       "worker killed by signal 6 while processing "
                       "(attempt 3 of 3)", 3);
    assert_dead_letter(&dl, 1999, "exit",
                       "worker exited with status 3 while processing "
                       "(attempt 3 of 3)", 3);

    static const unsigned skip[] = {0, 500, 1500, 1999};
    assert_sink_all_but(&lt, N, skip, 4);
    lane_teardown(&lt);
}

static const char *hang_flag(unsigned k)
{
    return k == 1234 ? "hang" : NULL;
}

Test(process_lane, hanging_record_times_out, .timeout = 120)
{
    enum { N = 3000 };
    sl_test_sanitizer_worker_env();
    lane_test_t lt;
    lane_setup(&lt);
    write_jsonl(lt.in, N, hang_flag);
    lane_run(&lt, "    workers: 2\n"
                  "    timeout: 200ms\n"
                  "    retry: {max_attempts: 2}\n");

    /* Two attempts each waited out the timeout; then the run went on at
     * full speed (3000 records take milliseconds). */
    cr_assert_geq(lt.took, 0.4, "two 200 ms timeouts took only %.3f s",
                  lt.took);
    cr_assert_lt(lt.took, 10.0, "the run took %.3f s", lt.took);
    cr_assert_eq(lt.mb.restarts, 2);
    cr_assert_eq(lt.mb.errors, 1);
    cr_assert_eq(lt.mb.in, N);
    cr_assert_eq(lt.sink.in, N - 1);

    dl_list_t dl;
    read_dead_letters(lt.dl, &dl);
    cr_assert_eq(dl.n, 1, "%zu dead letters", dl.n);
    assert_dead_letter(&dl, 1234, "hang",
                       "timeout after 200 ms while processing (attempt 2 of 2)",
                       2);
    static const unsigned skip[] = {1234};
    assert_sink_all_but(&lt, N, skip, 1);
    lane_teardown(&lt);
}

static const char *all_crash(unsigned k)
{
    (void)k;
    return "crash";
}

/* A worker that dies again and again is respawned after 10 ms, doubling
 * per death in a row up to 2 s: with one worker and 6 records that each
 * kill it twice, the 11 waits before the run can end add up to exactly
 * 10+20+40+...+1280 + 3 * 2000 = 8550 ms (without the cap 20470 ms). The
 * stage stays usable: every record is dead-lettered and the run ends. */
Test(process_lane, respawn_backs_off_and_the_pool_stays_usable, .timeout = 120)
{
    enum { N = 6 };
    sl_test_sanitizer_worker_env();
    lane_test_t lt;
    lane_setup(&lt);
    write_jsonl(lt.in, N, all_crash);
    lane_run(&lt, "    workers: 1\n"
                  "    retry: {max_attempts: 2}\n");

    cr_assert_geq(lt.took, 8.55, "11 respawns in a row took only %.3f s",
                  lt.took);
    /* 12 worker starts on top; well below the uncapped 20.47 s */
    cr_assert_lt(lt.took, 8.55 + SPAWN_SLACK_S,
                 "backoff not capped at 2 s? the run took %.3f s", lt.took);
    cr_assert_eq(lt.mb.restarts, 2 * N);
    cr_assert_eq(lt.mb.errors, N);
    cr_assert_eq(lt.mb.in, N);
    cr_assert_eq(lt.sink.in, 0);

    dl_list_t dl;
    read_dead_letters(lt.dl, &dl);
    cr_assert_eq(dl.n, N, "%zu dead letters", dl.n);
    for (unsigned k = 0; k < N; k++)
        assert_dead_letter(&dl, k, "crash",
                           CRASH_REASON " while processing (attempt 2 of 2)",
                           2);
    sums_t s;
    read_sums(lt.out, &s);
    cr_assert_eq(s.count, 0);
    lane_teardown(&lt);
}

/* ---- the bound across processes ------------------------------------------- */

/* The total RSS of this process's `want` workers, found once (they do not
 * change here: the test asserts no restarts); -1 until all are there. */
static long workers_rss(int want)
{
    static proc_info_t w[16];
    static int n = -1;
    if (n < want)
        n = find_workers(getpid(), NULL, w, 16);
    if (n < want)
        return -1;
    long total = 0;
    for (int i = 0; i < n && i < 16; i++) {
        char path[64];
        snprintf(path, sizeof(path), "/proc/%d/statm", (int)w[i].pid);
        long r = rss_of(path);
        if (r > 0)
            total += r;
    }
    return total;
}

Test(process_lane, bound_holds_across_processes, .timeout = 120)
{
    char *dir = sl_test_tmpdir();
    cr_assert_not_null(dir);
    sl_topology_t *t = load(dir,
                            "defaults: {queue: 100}\n"
                            "stages:\n"
                            "  - name: gen\n"
                            "    plugin: generator\n"
                            "    config: {count: 10000000}\n"
                            "  - name: reshape\n"
                            "    plugin: fields\n"
                            "    lane: process\n"
                            "    workers: 2\n"
                            "    config: {set: {slow: true}}\n"
                            "  - name: slow\n"
                            "    plugin: delay\n"
                            "    lane: process\n"
                            "    config: {ms: 1}\n"
                            "  - name: sink\n"
                            "    plugin: \"null\"\n");
    size_t src = index_of(t, "gen"), sink = index_of(t, "sink");
    uint64_t queues = 0, bound = 0;
    for (size_t i = 0; i < t->n_stages; i++) {
        cr_assert_eq(t->stages[i].queue, 100);
        queues += t->stages[i].queue;
        bound += t->stages[i].queue + t->stages[i].workers;
    }
    cr_assert_eq(bound, 4 * 100 + 5);
    char err[1024];
    sl_run_t *run = sl__run_new(t, err, sizeof(err));
    cr_assert_not_null(run, "sl__run_new: %s", err);
    cr_assert_eq(sl__run_start(run), 0);

    /* As in test_backpressure: the sink is read first and again after the
     * source, and a sample where it moved meanwhile proves nothing. */
    const double seconds = 3.0;
    uint64_t max_gap = 0, last_read = 0, last_in = 0;
    unsigned samples = 0, skewed = 0;
    long rss_1s = -1, rss_late = 0, wrss_1s = -1, wrss_late = 0;
    double t0 = now_s();
    for (double el; (el = now_s() - t0) < seconds;) {
        sl_stage_stats_t in_st, src_st, again;
        sl__run_stats(run, sink, &in_st);
        sl__run_stats(run, src, &src_st);
        sl__run_stats(run, sink, &again);
        cr_assert_geq(src_st.read, in_st.in);
        uint64_t gap = src_st.read - in_st.in;
        if (again.in - in_st.in > bound - queues) {
            skewed++;
            pause_ms(10);
            continue;
        }
        cr_assert_leq(gap, bound,
                      "at %.2f s: source read %" PRIu64 ", sink in %" PRIu64
                      ": %" PRIu64 " in flight > bound %" PRIu64,
                      el, src_st.read, in_st.in, gap, bound);
        if (gap > max_gap)
            max_gap = gap;
        cr_assert(!src_st.finished, "the source ended: read %" PRIu64,
                  src_st.read);
        for (size_t i = 0; i < t->n_stages; i++) {
            sl_stage_stats_t st;
            sl__run_stats(run, i, &st);
            cr_assert_leq(st.held, st.capacity,
                          "stage '%s' holds %u records, queue %u",
                          t->stages[i].name, st.held, st.capacity);
            cr_assert_eq(st.restarts, 0, "stage '%s' lost a worker",
                         t->stages[i].name);
        }
        long rss = rss_of("/proc/self/statm"), wrss = workers_rss(3);
        cr_assert_gt(rss, 0);
        if (el >= 1.0)
            cr_assert_gt(wrss, 0, "not all 3 worker processes are there");
        if (el >= 1.0 && rss_1s < 0) {
            rss_1s = rss;
            wrss_1s = wrss;
        }
        if (el >= seconds / 2) {
            if (rss > rss_late)
                rss_late = rss;
            if (wrss > wrss_late)
                wrss_late = wrss;
        }
        last_read = src_st.read;
        last_in = in_st.in;
        samples++;
        pause_ms(10);
    }
    cr_log_info("process lanes: %u samples (%u skewed), max in flight %" PRIu64
                " (bound %" PRIu64 "), read %" PRIu64 ", sunk %" PRIu64
                "; RSS %.1f -> %.1f MiB, workers %.1f -> %.1f MiB",
                samples, skewed, max_gap, bound, last_read, last_in,
                rss_1s / MIB, rss_late / MIB, wrss_1s / MIB, wrss_late / MIB);
    cr_assert_gt(samples, 4 * skewed, "%u samples, %u skewed", samples,
                 skewed);
    cr_assert_geq(rss_1s, 0, "sampling stopped before 1 s");
    cr_expect_gt(last_in, 100, "the sink hardly moved: %" PRIu64, last_in);
    cr_expect_lt(last_read, 10000, "the generator ran ahead: %" PRIu64,
                 last_read);
    cr_expect_lt(rss_late - rss_1s, 16 * 1024 * 1024,
                 "RSS grew from %.1f MiB to %.1f MiB", rss_1s / MIB,
                 rss_late / MIB);
    cr_expect_lt(wrss_late - wrss_1s, 16 * 1024 * 1024,
                 "worker RSS grew from %.1f MiB to %.1f MiB", wrss_1s / MIB,
                 wrss_late / MIB);

    double d0 = now_s();
    sl__run_stop(run);
    cr_assert_eq(sl__run_wait(run), 0, "the run did not end cleanly");
    cr_log_info("drained in %.2f s", now_s() - d0);
    assert_ledger(run);
    sl_stage_stats_t src_st, in_st, slow_st;
    sl__run_stats(run, src, &src_st);
    sl__run_stats(run, sink, &in_st);
    sl__run_stats(run, index_of(t, "slow"), &slow_st);
    cr_assert_eq(in_st.in, src_st.read, "after the drain the sink has %" PRIu64
                 " of %" PRIu64, in_st.in, src_st.read);
    cr_assert_eq(slow_st.out, src_st.read);
    cr_assert_leq(slow_st.held_max, 100);
    sl__run_destroy(&run);
    cr_assert_eq(find_workers(getpid(), NULL, NULL, 0), 0,
                 "worker processes outlived the run");
    sl__topology_destroy(&t);
    rm_tree(dir);
}

/* ---- no orphans ------------------------------------------------------------ */

/* Starts `sluice run` on yaml in a child, waits until it has `want`
 * workers (and, with spinning, until each has burnt CPU: they are inside
 * the plugin), kills it with SIGKILL and checks that none of its workers
 * is left 2 s later. */
static void kill_cli_leaves_no_workers(const char *dir, const char *yaml,
                                       int want, int spinning)
{
    char topo[512], log[512];
    snprintf(topo, sizeof(topo), "%s/t.yaml", dir);
    snprintf(log, sizeof(log), "%s/cli.log", dir);
    cr_assert_eq(sl_test_write_file(topo, yaml), 0);
    pid_t parent = getpid();
    pid_t cli = fork();
    cr_assert_geq(cli, 0, "fork: %s", strerror(errno));
    if (cli == 0) {
        /* never outlive the test, whatever it asserts */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(126);
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        execl(sl_test_cli(), "sluice", "run", topo, (char *)NULL);
        _exit(127);
    }
    char owner[32];
    snprintf(owner, sizeof(owner), "%d", (int)cli);

    proc_info_t w[8];
    int n = 0, busy = 0;
    double end = now_s() + 20 * SLOW;
    for (;;) {
        n = find_workers(cli, owner, w, 8);
        busy = 0;
        for (int i = 0; i < n && i < 8; i++)
            busy += w[i].cpu_ticks >= 10; /* 100 ms at the usual 100 Hz */
        if ((n >= want && (!spinning || busy >= want)) || now_s() > end)
            break;
        int status;
        if (waitpid(cli, &status, WNOHANG) == cli) {
            char *text = sl_test_read_file(log, NULL);
            cr_assert_fail("sluice run ended early (status %d):\n%s", status,
                           text ? text : "");
        }
        pause_ms(10);
    }
    if (n < want || (spinning && busy < want)) {
        kill(cli, SIGKILL);
        waitpid(cli, NULL, 0);
        cr_assert_fail("saw %d worker(s) of sluice %d (%d busy), want %d", n,
                       (int)cli, busy, want);
    }
    cr_assert_eq(kill(cli, SIGKILL), 0);
    int status;
    cr_assert_eq(waitpid(cli, &status, 0), cli);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

    double t0 = now_s();
    int left;
    while ((left = find_workers(0, owner, w, 8)) > 0 && now_s() - t0 < 2.0)
        pause_ms(5);
    double took = now_s() - t0;
    cr_log_info("%d %s worker(s) of sluice %d gone %.3f s after it was "
                "killed", want, spinning ? "spinning" : "idle", (int)cli, took);
    cr_assert_eq(left, 0, "%d worker(s) of the killed sluice %d still run "
                 "after 2 s (pid %d, state %c)", left, (int)cli,
                 (int)w[0].pid, w[0].state);
}

static const char *all_hang(unsigned k)
{
    (void)k;
    return "hang";
}

/* Workers busy inside a plugin that never returns: only the kernel's
 * parent-death signal can end them. */
Test(process_lane, killed_cli_leaves_no_spinning_workers, .timeout = 120)
{
    char *dir = sl_test_tmpdir();
    cr_assert_not_null(dir);
    char in[512];
    snprintf(in, sizeof(in), "%s/in.jsonl", dir);
    /* Every record hangs: both workers are stuck for good. The queue lets
     * in enough records that the second worker gets some too, even if the
     * first was ready alone and took two items (of up to 1024 records). */
    write_jsonl(in, 10000, all_hang);
    char *yaml = NULL;
    cr_assert_gt(asprintf(&yaml,
                          "stages:\n"
                          "  - name: src\n"
                          "    plugin: file_source\n"
                          "    config: {path: in.jsonl, format: jsonl}\n"
                          "  - name: mb\n"
                          "    plugin: %s\n"
                          "    lane: process\n"
                          "    workers: 2\n"
                          "    queue: 8192\n"
                          "    config: {hang_when: hang}\n"
                          "  - name: sink\n"
                          "    plugin: \"null\"\n",
                          MISBEHAVE_SO),
                 0);
    kill_cli_leaves_no_workers(dir, yaml, 2, 1);
    free(yaml);
    rm_tree(dir);
}

/* Workers idle in their poll: the same, and their own parent check is
 * the second line of defence. */
Test(process_lane, killed_cli_leaves_no_idle_workers, .timeout = 120)
{
    char *dir = sl_test_tmpdir();
    cr_assert_not_null(dir);
    char *yaml = NULL;
    cr_assert_gt(asprintf(&yaml,
                          "stages:\n"
                          "  - name: gen\n"
                          "    plugin: generator\n"
                          "    config: {count: 100000, rate: 10}\n"
                          "  - name: mb\n"
                          "    plugin: %s\n"
                          "    lane: process\n"
                          "    workers: 3\n"
                          "    config: {crash_when: crash}\n"
                          "  - name: sink\n"
                          "    plugin: \"null\"\n",
                          MISBEHAVE_SO),
                 0);
    kill_cli_leaves_no_workers(dir, yaml, 3, 0);
    free(yaml);
    rm_tree(dir);
}
