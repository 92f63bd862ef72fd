/*
 * The shared-limit table behind `resources:` / `uses:` (resource.c), and
 * the probe test plugin that integration tests use to measure it.
 */
#include <criterion/criterion.h>

#include "harness.h"
#include "resource.h"
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PROBE_SO SL_TEST_BINARY_DIR "/tests/plugins/probe.so"

static sl_resources_t *s_new(const uint32_t *limits, size_t n)
{
    char err[256] = "";
    sl_resources_t *rs = sl__resources_new(limits, n, err, sizeof(err));
    cr_assert_not_null(rs, "sl__resources_new: %s", err);
    return rs;
}

/* Joins t within timeout_s seconds; 0 if it ended, else ETIMEDOUT. */
static int s_join(pthread_t t, double timeout_s)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    long ns = (long)(timeout_s * 1e9);
    ts.tv_sec += ns / 1000000000L;
    ts.tv_nsec += ns % 1000000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return pthread_timedjoin_np(t, NULL, &ts);
}

/* Polls cond-like counters for at most timeout_s seconds. */
static int s_wait_waits(sl_resources_t *rs, size_t res, uint64_t want,
                        double timeout_s)
{
    double end = sl_test_now() + timeout_s;
    while (sl__resources_waits(rs, res) < want) {
        if (sl_test_now() > end)
            return 0;
        usleep(1000);
    }
    return 1;
}

static void s_note_max(atomic_uint *cur_max, unsigned now)
{
    unsigned m = atomic_load(cur_max);
    while (now > m && !atomic_compare_exchange_weak(cur_max, &m, now)) {
    }
}

/* ---- the cap ------------------------------------------------------------ */

typedef struct hammer {
    sl_resources_t *rs;
    size_t res;
    unsigned rounds;
    unsigned hold_us;
    atomic_uint *holders, *max_holders;
    atomic_uint *failures;
    atomic_uint *done;
} hammer_t;

static void s_hammer(hammer_t *h)
{
    for (unsigned i = 0; i < h->rounds; i++) {
        int slot = -1;
        if (sl__resources_acquire(h->rs, h->res, NULL, &slot) != 0 ||
            slot < 0) {
            atomic_fetch_add(h->failures, 1);
            return;
        }
        unsigned now = atomic_fetch_add(h->holders, 1) + 1;
        s_note_max(h->max_holders, now);
        /* Hold long enough that holders overlap on two cores. */
        if (h->hold_us)
            usleep(h->hold_us);
        else
            sched_yield();
        atomic_fetch_sub(h->holders, 1);
        sl__resources_release(h->rs, h->res, slot);
        if (h->done)
            atomic_fetch_add(h->done, 1);
    }
}

static void *s_hammer_thread(void *arg)
{
    s_hammer(arg);
    return NULL;
}

Test(resource, cap_is_never_exceeded_across_16_threads)
{
    uint32_t limits[] = {3, 5};
    sl_resources_t *rs = s_new(limits, 2);
    atomic_uint holders = 0, max_holders = 0, failures = 0, done = 0;
    hammer_t h = {.rs = rs, .res = 1, .rounds = 2000, .hold_us = 20,
                  .holders = &holders, .max_holders = &max_holders,
                  .failures = &failures, .done = &done};
    pthread_t t[16];
    for (int i = 0; i < 16; i++)
        cr_assert_eq(pthread_create(&t[i], NULL, s_hammer_thread, &h), 0);
    for (int i = 0; i < 16; i++)
        cr_assert_eq(s_join(t[i], 60), 0, "thread %d did not end", i);
    cr_assert_eq(atomic_load(&failures), 0);
    cr_assert_eq(atomic_load(&done), 16u * 2000u);
    cr_assert_eq(atomic_load(&max_holders), 5, "max concurrent holders %u",
                 atomic_load(&max_holders));
    cr_assert_eq(sl__resources_max_in_use(rs, 1), 5);
    cr_assert_eq(sl__resources_in_use(rs, 1), 0);
    cr_assert_gt(sl__resources_waits(rs, 1), 0);
    /* The other resource was never touched. */
    cr_assert_eq(sl__resources_max_in_use(rs, 0), 0);
    cr_assert_eq(sl__resources_waits(rs, 0), 0);
    sl__resources_destroy(&rs);
    cr_assert_null(rs);
}

Test(resource, limit_4_runs_4_at_a_time_not_serially)
{
    uint32_t limit = 4;
    sl_resources_t *rs = s_new(&limit, 1);
    atomic_uint holders = 0, max_holders = 0, failures = 0;
    hammer_t h = {.rs = rs, .res = 0, .rounds = 50, .hold_us = 2000,
                  .holders = &holders, .max_holders = &max_holders,
                  .failures = &failures};
    pthread_t t[8];
    double t0 = sl_test_now();
    for (int i = 0; i < 8; i++)
        cr_assert_eq(pthread_create(&t[i], NULL, s_hammer_thread, &h), 0);
    for (int i = 0; i < 8; i++)
        cr_assert_eq(s_join(t[i], 60), 0);
    double elapsed = sl_test_now() - t0;
    double serial = 8 * 50 * 0.002;   /* one at a time */
    double four = serial / 4;          /* the best 4 at a time can do */
    cr_assert_eq(atomic_load(&failures), 0);
    cr_assert_lt(elapsed, 0.6 * serial, "elapsed %.3f s: serialised?",
                 elapsed);
    cr_assert_geq(elapsed, four, "elapsed %.3f s: more than 4 at a time?",
                  elapsed);
    cr_assert_eq(atomic_load(&max_holders), 4);
    sl__resources_destroy(&rs);
}

/* ---- cancel ------------------------------------------------------------- */

typedef struct waiter {
    sl_resources_t *rs;
    size_t idx[2];
    size_t n;
    int slots[2];
    atomic_int cancel;
    int rc;
    double returned_at;
} waiter_t;

static void *s_waiter(void *arg)
{
    waiter_t *w = arg;
    w->rc = sl__resources_acquire_set(w->rs, w->idx, w->n, &w->cancel,
                                      w->slots);
    w->returned_at = sl_test_now();
    return NULL;
}

Test(resource, cancel_unblocks_a_waiter_promptly)
{
    uint32_t limit = 1;
    sl_resources_t *rs = s_new(&limit, 1);
    int held;
    cr_assert_eq(sl__resources_acquire(rs, 0, NULL, &held), 0);
    waiter_t w = {.rs = rs, .idx = {0}, .n = 1};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, s_waiter, &w), 0);
    cr_assert(s_wait_waits(rs, 0, 1, 5), "the waiter never waited");
    double t0 = sl_test_now();
    atomic_store(&w.cancel, 1);
    cr_assert_eq(s_join(t, 5), 0, "cancel did not unblock the waiter");
    cr_assert_eq(w.rc, -ECANCELED);
    cr_assert_eq(w.slots[0], -1);
    cr_assert_lt(w.returned_at - t0, 0.2, "took %.3f s",
                 w.returned_at - t0);
    cr_assert_eq(sl__resources_in_use(rs, 0), 1);
    sl__resources_release(rs, 0, held);
    cr_assert_eq(sl__resources_in_use(rs, 0), 0);
    sl__resources_destroy(&rs);
}

Test(resource, a_release_wakes_a_waiter_before_its_timeout)
{
    uint32_t limit = 1;
    sl_resources_t *rs = s_new(&limit, 1);
    int held;
    cr_assert_eq(sl__resources_acquire(rs, 0, NULL, &held), 0);
    waiter_t w = {.rs = rs, .idx = {0}, .n = 1};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, s_waiter, &w), 0);
    cr_assert(s_wait_waits(rs, 0, 1, 5), "the waiter never waited");
    sl__resources_release(rs, 0, held);
    cr_assert_eq(s_join(t, 5), 0);
    cr_assert_eq(w.rc, 0);
    cr_assert_eq(w.slots[0], 0);
    cr_assert_eq(sl__resources_in_use(rs, 0), 1);
    sl__resources_release(rs, 0, w.slots[0]);
    sl__resources_destroy(&rs);
}

Test(resource, a_cancelled_set_gives_back_what_it_took)
{
    uint32_t limits[] = {1, 1};
    sl_resources_t *rs = s_new(limits, 2);
    int held;
    cr_assert_eq(sl__resources_acquire(rs, 1, NULL, &held), 0);
    /* Asks for {1, 0}: takes 0 first (index order), then waits on 1. */
    waiter_t w = {.rs = rs, .idx = {1, 0}, .n = 2};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, s_waiter, &w), 0);
    cr_assert(s_wait_waits(rs, 1, 1, 5), "the waiter never waited");
    cr_assert_eq(sl__resources_in_use(rs, 0), 1);
    cr_assert_eq(sl__resources_waits(rs, 0), 0);
    atomic_store(&w.cancel, 1);
    sl__resources_wake_all(rs);
    cr_assert_eq(s_join(t, 5), 0);
    cr_assert_eq(w.rc, -ECANCELED);
    cr_assert_eq(w.slots[0], -1);
    cr_assert_eq(w.slots[1], -1);
    cr_assert_eq(sl__resources_in_use(rs, 0), 0);
    cr_assert_eq(sl__resources_in_use(rs, 1), 1);
    sl__resources_release(rs, 1, held);
    sl__resources_destroy(&rs);
}

Test(resource, acquire_set_checks_its_indices)
{
    uint32_t limits[] = {2, 2};
    sl_resources_t *rs = s_new(limits, 2);
    int slots[3] = {7, 7, 7};
    size_t dup[] = {1, 0, 1};
    cr_assert_eq(sl__resources_acquire_set(rs, dup, 3, NULL, slots), -EINVAL);
    size_t out[] = {0, 2};
    cr_assert_eq(sl__resources_acquire_set(rs, out, 2, NULL, slots), -EINVAL);
    cr_assert_eq(slots[0], -1);
    cr_assert_eq(slots[1], -1);
    cr_assert_eq(sl__resources_acquire(rs, 2, NULL, slots), -EINVAL);
    cr_assert_eq(sl__resources_in_use(rs, 0), 0);
    cr_assert_eq(sl__resources_in_use(rs, 1), 0);
    size_t both[] = {1, 0};
    cr_assert_eq(sl__resources_acquire_set(rs, both, 2, NULL, slots), 0);
    cr_assert_eq(sl__resources_in_use(rs, 0), 1);
    cr_assert_eq(sl__resources_in_use(rs, 1), 1);
    sl__resources_release_set(rs, both, 2, slots);
    cr_assert_eq(slots[0], -1);
    cr_assert_eq(slots[1], -1);
    cr_assert_eq(sl__resources_in_use(rs, 0), 0);
    cr_assert_eq(sl__resources_in_use(rs, 1), 0);
    cr_assert_eq(sl__resources_acquire_set(rs, both, 0, NULL, slots), 0);
    sl__resources_destroy(&rs);
}

/* ---- no deadlock with sets in opposite orders --------------------------- */

#define SET_ROUNDS 10000

typedef struct setter {
    sl_resources_t *rs;
    size_t idx[2];
    atomic_int *cancel;
    atomic_uint *inside; /* holders of both at once: must stay <= 1 */
    atomic_uint *overlap;
    atomic_uint ok;
    atomic_int finished;
    int rc;
} setter_t;

static void *s_setter(void *arg)
{
    setter_t *s = arg;
    for (unsigned i = 0; i < SET_ROUNDS; i++) {
        int slots[2];
        s->rc = sl__resources_acquire_set(s->rs, s->idx, 2, s->cancel, slots);
        if (s->rc != 0)
            break;
        if (atomic_fetch_add(s->inside, 1) != 0)
            atomic_fetch_add(s->overlap, 1);
        sched_yield();
        atomic_fetch_sub(s->inside, 1);
        sl__resources_release_set(s->rs, s->idx, 2, slots);
        atomic_fetch_add(&s->ok, 1);
    }
    atomic_store(&s->finished, 1);
    return NULL;
}

Test(resource, sets_in_opposite_orders_do_not_deadlock)
{
    uint32_t limits[] = {1, 1};
    sl_resources_t *rs = s_new(limits, 2);
    atomic_int cancel = 0;
    atomic_uint inside = 0, overlap = 0;
    setter_t a = {.rs = rs, .idx = {0, 1}, .cancel = &cancel,
                  .inside = &inside, .overlap = &overlap};
    setter_t b = {.rs = rs, .idx = {1, 0}, .cancel = &cancel,
                  .inside = &inside, .overlap = &overlap};
    pthread_t ta, tb;
    cr_assert_eq(pthread_create(&ta, NULL, s_setter, &a), 0);
    cr_assert_eq(pthread_create(&tb, NULL, s_setter, &b), 0);
    /* Watchdog: two seconds without a single round done by either thread
     * is a deadlock; the cancel then gets them out so that the failure is
     * reported rather than hanging the suite. */
    unsigned last = 0, stuck_a = 0, stuck_b = 0;
    double progress = sl_test_now();
    int deadlock = 0;
    while (!atomic_load(&a.finished) || !atomic_load(&b.finished)) {
        unsigned now = atomic_load(&a.ok) + atomic_load(&b.ok);
        if (now != last) {
            last = now;
            progress = sl_test_now();
        } else if (sl_test_now() - progress > 2.0) {
            stuck_a = atomic_load(&a.ok);
            stuck_b = atomic_load(&b.ok);
            deadlock = 1;
            atomic_store(&cancel, 1);
            sl__resources_wake_all(rs);
            break;
        }
        usleep(10000);
    }
    cr_assert_eq(s_join(ta, 5), 0);
    cr_assert_eq(s_join(tb, 5), 0);
    cr_assert_not(deadlock, "deadlock after %u rounds of a and %u of b",
                  stuck_a, stuck_b);
    cr_assert_eq(a.rc, 0);
    cr_assert_eq(b.rc, 0);
    cr_assert_eq(atomic_load(&a.ok), SET_ROUNDS);
    cr_assert_eq(atomic_load(&b.ok), SET_ROUNDS);
    cr_assert_eq(atomic_load(&overlap), 0);
    sl__resources_destroy(&rs);
}

/* ---- processes ---------------------------------------------------------- */

Test(resource, release_pid_frees_what_a_killed_child_held)
{
    uint32_t limits[] = {2, 3};
    sl_resources_t *rs = s_new(limits, 2);
    /* A slot held by the parent itself must survive release_pid(child);
     * taking it before the fork also has the parent's pid cached, which
     * the child must not inherit. */
    int mine;
    cr_assert_eq(sl__resources_acquire(rs, 0, NULL, &mine), 0);
    int p[2];
    cr_assert_eq(pipe(p), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        /* The inherited table, used without attach: slots must still be
         * claimed under the child's own pid. */
        close(p[0]);
        int s;
        for (int i = 0; i < 3; i++)
            if (sl__resources_acquire(rs, 1, NULL, &s) != 0)
                _exit(2);
        if (sl__resources_acquire(rs, 0, NULL, &s) != 0)
            _exit(2);
        char c = 'x';
        if (write(p[1], &c, 1) != 1)
            _exit(3);
        for (;;)
            pause();
    }
    close(p[1]);
    char c;
    cr_assert_eq(read(p[0], &c, 1), 1, "the child did not get its slots");
    close(p[0]);
    cr_assert_eq(sl__resources_in_use(rs, 1), 3);
    cr_assert_eq(sl__resources_in_use(rs, 0), 2);
    cr_assert_eq(kill(pid, SIGKILL), 0);
    cr_assert_eq(sl_test_wait_exit(pid, 10), 128 + SIGKILL);
    cr_assert_eq(sl__resources_in_use(rs, 1), 3, "death alone frees nothing");
    cr_assert_eq(sl__resources_release_pid(rs, pid), 4);
    cr_assert_eq(sl__resources_release_pid(rs, pid), 0);
    cr_assert_eq(sl__resources_in_use(rs, 1), 0);
    cr_assert_eq(sl__resources_in_use(rs, 0), 1);
    /* The parent now gets all 3; a cancel flag that is already set makes
     * acquire fail instead of block if one were still missing. */
    atomic_int cancel = 1;
    int s[4];
    for (int i = 0; i < 3; i++)
        cr_assert_eq(sl__resources_acquire(rs, 1, &cancel, &s[i]), 0,
                     "slot %d not given back", i);
    cr_assert_eq(sl__resources_acquire(rs, 1, &cancel, &s[3]), -ECANCELED);
    for (int i = 0; i < 3; i++)
        sl__resources_release(rs, 1, s[i]);
    sl__resources_release(rs, 0, mine);
    cr_assert_eq(sl__resources_in_use(rs, 0), 0);
    cr_assert_eq(sl__resources_in_use(rs, 1), 0);
    sl__resources_destroy(&rs);
}

Test(resource, close_unblocks_a_waiting_child_process)
{
    uint32_t limit = 1;
    sl_resources_t *rs = s_new(&limit, 1);
    int held;
    cr_assert_eq(sl__resources_acquire(rs, 0, NULL, &held), 0);
    int fd = sl__resources_fd(rs);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        char err[256];
        sl_resources_t *mine = sl__resources_attach(fd, err, sizeof(err));
        if (!mine)
            _exit(4);
        int s = -1;
        int rc = sl__resources_acquire(mine, 0, NULL, &s);
        sl__resources_destroy(&mine);
        _exit(rc == -ECANCELED && s == -1 ? 0 : 5);
    }
    cr_assert(s_wait_waits(rs, 0, 1, 5), "the child never waited");
    double t0 = sl_test_now();
    sl__resources_close(rs);
    cr_assert_eq(sl_test_wait_exit(pid, 5), 0);
    cr_assert_lt(sl_test_now() - t0, 0.5);
    /* Closed, a free slot is still handed out; waiting is not. */
    sl__resources_release(rs, 0, held);
    cr_assert_eq(sl__resources_acquire(rs, 0, NULL, &held), 0);
    int more;
    cr_assert_eq(sl__resources_acquire(rs, 0, NULL, &more), -ECANCELED);
    sl__resources_release(rs, 0, held);
    sl__resources_destroy(&rs);
}

typedef struct shared_counts {
    atomic_uint holders, max_holders, failures, done;
} shared_counts_t;

Test(resource, attached_children_and_parent_threads_share_one_cap)
{
    uint32_t limits[] = {7, 2};
    sl_resources_t *rs = s_new(limits, 2);
    int fd = sl__resources_fd(rs);
    cr_assert_geq(fd, 0);
    cr_assert_neq(fcntl(fd, F_GETFD) & FD_CLOEXEC, 0,
                  "the table fd must not leak into unrelated execs");
    shared_counts_t *sc = mmap(NULL, sizeof(*sc), PROT_READ | PROT_WRITE,
                               MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(sc, MAP_FAILED);
    memset(sc, 0, sizeof(*sc));
    pid_t kids[3];
    for (int k = 0; k < 3; k++) {
        kids[k] = fork();
        cr_assert_geq(kids[k], 0);
        if (kids[k] == 0) {
            char err[256];
            sl_resources_t *mine = sl__resources_attach(fd, err, sizeof(err));
            if (!mine)
                _exit(4);
            if (sl__resources_count(mine) != 2 ||
                sl__resources_limit(mine, 1) != 2 ||
                sl__resources_fd(mine) != -1)
                _exit(5);
            hammer_t h = {.rs = mine, .res = 1, .rounds = 1000, .hold_us = 50,
                          .holders = &sc->holders,
                          .max_holders = &sc->max_holders,
                          .failures = &sc->failures, .done = &sc->done};
            s_hammer(&h);
            sl__resources_destroy(&mine);
            _exit(0);
        }
    }
    hammer_t h = {.rs = rs, .res = 1, .rounds = 1000, .hold_us = 50,
                  .holders = &sc->holders, .max_holders = &sc->max_holders,
                  .failures = &sc->failures, .done = &sc->done};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, s_hammer_thread, &h), 0);
    for (int k = 0; k < 3; k++)
        cr_assert_eq(sl_test_wait_exit(kids[k], 60), 0, "child %d", k);
    cr_assert_eq(s_join(t, 60), 0);
    cr_assert_eq(atomic_load(&sc->failures), 0);
    cr_assert_eq(atomic_load(&sc->done), 4000);
    cr_assert_eq(atomic_load(&sc->max_holders), 2, "max holders %u",
                 atomic_load(&sc->max_holders));
    cr_assert_eq(sl__resources_max_in_use(rs, 1), 2);
    cr_assert_eq(sl__resources_in_use(rs, 1), 0);
    cr_assert_eq(sl__resources_in_use(rs, 0), 0);
    munmap(sc, sizeof(*sc));
    sl__resources_destroy(&rs);
}

/* ---- creation and attach errors ----------------------------------------- */

static void s_attach_refused(int fd, const char *want)
{
    char err[256] = "";
    sl_resources_t *rs = sl__resources_attach(fd, err, sizeof(err));
    cr_assert_null(rs, "fd %d attached", fd);
    cr_assert_not_null(strstr(err, want), "error '%s' lacks '%s'", err, want);
}

static int s_memfd_with(const void *data, size_t len)
{
    int fd = memfd_create("test", MFD_CLOEXEC);
    cr_assert_geq(fd, 0);
    if (len)
        cr_assert_eq(ftruncate(fd, (off_t)len), 0);
    if (data)
        cr_assert_eq(pwrite(fd, data, len, 0), (ssize_t)len);
    return fd;
}

Test(resource, attach_refuses_what_is_not_a_table)
{
    int zeros = s_memfd_with(NULL, 4096);
    char want[64];
    snprintf(want, sizeof(want), "fd %d is not a resource table: bad magic",
             zeros);
    s_attach_refused(zeros, want);
    close(zeros);

    int empty = s_memfd_with(NULL, 0);
    snprintf(want, sizeof(want), "fd %d is not a resource table: size 0",
             empty);
    s_attach_refused(empty, want);
    close(empty);

    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    cr_assert_geq(null, 0);
    s_attach_refused(null, "is not a resource table: not a shared memory file");
    close(null);

    s_attach_refused(-1, "resource table fd -1: Bad file descriptor");

    /* A real table's bytes with one count changed. */
    uint32_t limits[] = {2, 3};
    sl_resources_t *rs = s_new(limits, 2);
    struct stat st;
    cr_assert_eq(fstat(sl__resources_fd(rs), &st), 0);
    size_t len = (size_t)st.st_size;
    unsigned char *copy = malloc(len);
    cr_assert_eq(pread(sl__resources_fd(rs), copy, len, 0), (ssize_t)len);
    int good = s_memfd_with(copy, len);
    char err[256];
    sl_resources_t *ok = sl__resources_attach(good, err, sizeof(err));
    cr_assert_not_null(ok, "%s", err);
    cr_assert_eq(sl__resources_limit(ok, 1), 3);
    sl__resources_destroy(&ok);
    close(good);

    copy[24]++; /* total_slots */
    int bad = s_memfd_with(copy, len);
    s_attach_refused(bad, "size does not match its counts");
    close(bad);
    copy[24]--;
    copy[64]++; /* the first resource's limit */
    bad = s_memfd_with(copy, len);
    s_attach_refused(bad, "slot ranges are not contiguous");
    close(bad);
    free(copy);
    sl__resources_destroy(&rs);
}

Test(resource, new_checks_limits_and_allows_none)
{
    char err[256] = "";
    uint32_t zero[] = {4, 0};
    cr_assert_null(sl__resources_new(zero, 2, err, sizeof(err)));
    cr_assert_str_eq(err, "resource 1: limit 0 is out of range (1..1000000)");
    uint32_t huge = SL_RESOURCE_LIMIT_MAX + 1;
    cr_assert_null(sl__resources_new(&huge, 1, err, sizeof(err)));
    cr_assert_str_eq(err, "resource 0: limit 1000001 is out of range "
                          "(1..1000000)");

    sl_resources_t *rs = s_new(NULL, 0);
    cr_assert_eq(sl__resources_count(rs), 0);
    int slot;
    cr_assert_eq(sl__resources_acquire(rs, 0, NULL, &slot), -EINVAL);
    cr_assert_eq(sl__resources_release_pid(rs, 12345), 0);
    sl_resources_t *att = sl__resources_attach(sl__resources_fd(rs), err,
                                               sizeof(err));
    cr_assert_not_null(att, "%s", err);
    cr_assert_eq(sl__resources_count(att), 0);
    sl__resources_destroy(&att);
    sl__resources_destroy(&rs);
    sl__resources_destroy(&rs); /* NULL again: ignored */
}

Test(resource, large_limit_acquires_every_slot_once)
{
    uint32_t limit = 10000;
    sl_resources_t *rs = s_new(&limit, 1);
    int *slots = malloc(limit * sizeof(*slots));
    unsigned char *seen = calloc(limit, 1);
    atomic_int cancel = 1; /* never block: every slot must be free */
    for (uint32_t i = 0; i < limit; i++) {
        cr_assert_eq(sl__resources_acquire(rs, 0, &cancel, &slots[i]), 0);
        cr_assert_lt((uint32_t)slots[i], limit);
        cr_assert_eq(seen[slots[i]], 0, "slot %d given twice", slots[i]);
        seen[slots[i]] = 1;
    }
    int extra;
    cr_assert_eq(sl__resources_acquire(rs, 0, &cancel, &extra), -ECANCELED);
    cr_assert_eq(sl__resources_in_use(rs, 0), limit);
    cr_assert_eq(sl__resources_max_in_use(rs, 0), limit);
    /* Free one in the middle: the next acquire finds it. */
    sl__resources_release(rs, 0, slots[5000]);
    cr_assert_eq(sl__resources_acquire(rs, 0, &cancel, &extra), 0);
    cr_assert_eq(extra, slots[5000]);
    slots[5000] = extra;
    for (uint32_t i = 0; i < limit; i++)
        sl__resources_release(rs, 0, slots[i]);
    cr_assert_eq(sl__resources_in_use(rs, 0), 0);
    free(seen);
    free(slots);
    sl__resources_destroy(&rs);
}

/* ---- the probe plugin --------------------------------------------------- */

TestSuite(probe, .init = sl_test_tmpdir_setup,
          .fini = sl_test_tmpdir_teardown);

static void s_read_counter(const char *path, uint64_t *cur, uint64_t *max)
{
    size_t len = 0;
    char *b = sl_test_read_file(path, &len);
    cr_assert_not_null(b, "%s missing", path);
    cr_assert_eq(len, 16);
    memcpy(cur, b, 8);
    memcpy(max, b + 8, 8);
    free(b);
}

Test(probe, passes_records_and_counts_in_a_shared_file)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/count.bin", sl_test_dir());
    sl_harness_t *h = sl_test_harness(PROBE_SO,
                                      "counter: count.bin\nsleep_us: 0\n",
                                      sl_test_dir());
    sl_test_push_ok(h, "{\"a\":1,\"b\":\"x\"}", "{\"a\":1,\"b\":\"x\"}");
    uint64_t cur, max;
    s_read_counter(path, &cur, &max);
    cr_assert_eq(cur, 0);
    cr_assert_eq(max, 1);
    /* Three calls "inside" elsewhere (other workers mapping the file): the
     * next call makes four. */
    uint64_t three[2] = {3, 3};
    int fd = open(path, O_WRONLY);
    cr_assert_eq(pwrite(fd, three, sizeof(three), 0), 16);
    close(fd);
    sl_test_push_ok(h, "{\"n\":2}", "{\"n\":2}");
    s_read_counter(path, &cur, &max);
    cr_assert_eq(cur, 3);
    cr_assert_eq(max, 4);
    sl_harness_destroy(&h);
}

Test(probe, sleeps_as_configured)
{
    sl_harness_t *h = sl_test_harness(PROBE_SO,
                                      "counter: c.bin\nsleep_us: 30000\n",
                                      sl_test_dir());
    double t0 = sl_test_now();
    sl_test_push_ok(h, "{\"a\":1}", "{\"a\":1}");
    cr_assert_geq(sl_test_now() - t0, 0.03);
    sl_harness_destroy(&h);
}

Test(probe, refuses_bad_config)
{
    sl_test_refused(PROBE_SO, "sleep_us: 5\n", sl_test_dir(),
                    "'counter' is required");
    sl_test_refused(PROBE_SO, "counter: c.bin\nsleep_us: -1\n", sl_test_dir(),
                    "'sleep_us' must be between 0 and 10000000");
    sl_test_refused(PROBE_SO, "counter: c.bin\nsleep: 1\n", sl_test_dir(),
                    "sleep");
}
