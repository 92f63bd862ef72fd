/*
 * Shared limits (resources: / uses:), see resource.h.
 *
 * The shared file is laid out as
 *
 *   rs_header_t | rs_entry_t x n | int32 slot x (sum of the limits)
 *
 * Each process keeps its own copy of every limit and slot range, checked
 * once at attach: what the shared file says afterwards never steers an
 * index, so a worker that scribbles over the header cannot make the parent
 * read out of bounds.
 *
 * The truth is the slot array (a slot is free iff it holds 0). `held` is a
 * counter kept beside it for the high-water mark and as a shortcut ("all
 * slots taken, do not scan"). It is updated after a slot is claimed and
 * before one is freed, so it never exceeds the true count, even when a
 * process dies between the two steps: the shortcut can only be too
 * hopeful (an extra scan), never shut out a free slot.
 */
#include "resource.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* "SLRESTAB" read as a little-endian u64; any other value is refused. */
#define RS_MAGIC 0x4241545345524c53ull
#define RS_VERSION 1u
/* Longest sleep of a waiter between two looks at the slots and its
 * cancel flag: bounds the cost of a missed wake-up. */
#define RS_WAIT_MS 50
/* Total slots in one table: 64 MiB of slots at most. */
#define RS_SLOTS_MAX (1u << 24)

typedef struct rs_header {
    uint64_t magic;
    uint32_t version;
    uint32_t header_size;
    uint32_t entry_size;
    uint32_t n_res;
    uint32_t total_slots;
    _Atomic uint32_t closing; /* set by sl__resources_close */
    uint64_t map_size;
    uint8_t pad[24];
} rs_header_t;

/* One cache line per resource, so that busy resources do not slow each
 * other down. The atomics are shared between processes: only lock-free
 * types may be used (checked below). */
typedef struct rs_entry {
    alignas(64) uint32_t limit; /* immutable after creation */
    uint32_t first;             /* index of its first slot */
    _Atomic uint32_t seq;       /* futex word, bumped on every release */
    _Atomic uint32_t waiters;   /* sleepers on seq (may overcount) */
    _Atomic uint32_t held;      /* <= slots held, see the top comment */
    _Atomic uint32_t max_held;
    _Atomic uint32_t hint;      /* where the next scan starts */
    uint32_t reserved;
    _Atomic uint64_t waits;
} rs_entry_t;

_Static_assert(sizeof(rs_header_t) == 64, "header is one cache line");
_Static_assert(sizeof(rs_entry_t) == 64, "entry is one cache line");
_Static_assert(ATOMIC_INT_LOCK_FREE == 2 && ATOMIC_LLONG_LOCK_FREE == 2,
               "process-shared counters need lock-free atomics");
_Static_assert(sizeof(pid_t) == sizeof(int32_t), "slots store a pid_t");

typedef struct rs_range {
    uint32_t limit, first;
} rs_range_t;

struct sl_resources {
    void *map;
    rs_header_t *hdr;
    size_t map_size;
    int fd; /* ours to close; -1 when attached */
    size_t n;
    rs_range_t *range; /* private copy of every limit/first */
    rs_entry_t *ent;
    _Atomic int32_t *slots;
};

/* ---- the caller's pid, cached ------------------------------------------- */

/* getpid() is a system call; acquire needs it on every call. The cache is
 * cleared in a forked child so that a child using an inherited table
 * claims slots under its own pid (and release_pid finds them). */
static atomic_int s_pid;
static pthread_once_t s_once = PTHREAD_ONCE_INIT;

static void s_forked(void)
{
    atomic_store_explicit(&s_pid, 0, memory_order_relaxed);
}

static void s_register_fork(void) { pthread_atfork(NULL, NULL, s_forked); }

static int32_t s_self(void)
{
    int p = atomic_load_explicit(&s_pid, memory_order_relaxed);
    if (p == 0) {
        p = (int)getpid();
        atomic_store_explicit(&s_pid, p, memory_order_relaxed);
    }
    return p;
}

/* ---- futex -------------------------------------------------------------- */

/* Not FUTEX_PRIVATE_FLAG: the word is shared with other processes. */
static void s_futex_wait(_Atomic uint32_t *w, uint32_t val, long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    syscall(SYS_futex, (uint32_t *)w, FUTEX_WAIT, val, &ts, NULL, 0);
}

static void s_futex_wake(_Atomic uint32_t *w, int n)
{
    syscall(SYS_futex, (uint32_t *)w, FUTEX_WAKE, n, NULL, NULL, 0);
}

/* ---- construction ------------------------------------------------------- */

static size_t s_map_size(size_t n, uint64_t total)
{
    return sizeof(rs_header_t) + n * sizeof(rs_entry_t) +
           (size_t)total * sizeof(int32_t);
}

/* Points rs->ent/slots into the mapping and copies the ranges. */
static int s_bind(sl_resources_t *rs, size_t n)
{
    rs->n = n;
    rs->hdr = rs->map;
    rs->ent = (rs_entry_t *)((char *)rs->map + sizeof(rs_header_t));
    rs->slots = (_Atomic int32_t *)(void *)(rs->ent + n);
    rs->range = calloc(n ? n : 1, sizeof(*rs->range));
    if (!rs->range)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        rs->range[i].limit = rs->ent[i].limit;
        rs->range[i].first = rs->ent[i].first;
    }
    return 0;
}

sl_resources_t *sl__resources_new(const uint32_t *limits, size_t n, char *err,
                                  size_t errlen)
{
    pthread_once(&s_once, s_register_fork);
    if (n > SL_RESOURCES_MAX) {
        snprintf(err, errlen, "too many resources: %zu (at most %u)", n,
                 SL_RESOURCES_MAX);
        return NULL;
    }
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (limits[i] < 1 || limits[i] > SL_RESOURCE_LIMIT_MAX) {
            snprintf(err, errlen,
                     "resource %zu: limit %u is out of range (1..%u)", i,
                     limits[i], SL_RESOURCE_LIMIT_MAX);
            return NULL;
        }
        total += limits[i];
    }
    if (total > RS_SLOTS_MAX) {
        snprintf(err, errlen, "resources: the limits add up to %llu, more "
                              "than the %u slots a run may have",
                 (unsigned long long)total, RS_SLOTS_MAX);
        return NULL;
    }

    sl_resources_t *rs = calloc(1, sizeof(*rs));
    if (!rs) {
        snprintf(err, errlen, "resources: out of memory");
        return NULL;
    }
    rs->map = MAP_FAILED;
    rs->map_size = s_map_size(n, total);
    rs->fd = memfd_create("sluice-resources", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (rs->fd < 0 || ftruncate(rs->fd, (off_t)rs->map_size) != 0 ||
        fcntl(rs->fd, F_ADD_SEALS,
              F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
        snprintf(err, errlen, "resources: shared memory: %s", strerror(errno));
        goto fail;
    }
    rs->map = mmap(NULL, rs->map_size, PROT_READ | PROT_WRITE, MAP_SHARED,
                   rs->fd, 0);
    if (rs->map == MAP_FAILED) {
        snprintf(err, errlen, "resources: mmap: %s", strerror(errno));
        goto fail;
    }
    /* A fresh memfd reads as zeros: every slot is free, every counter 0. */
    rs_header_t *h = rs->map;
    h->magic = RS_MAGIC;
    h->version = RS_VERSION;
    h->header_size = sizeof(rs_header_t);
    h->entry_size = sizeof(rs_entry_t);
    h->n_res = (uint32_t)n;
    h->total_slots = (uint32_t)total;
    h->map_size = rs->map_size;
    rs_entry_t *ent = (rs_entry_t *)(h + 1);
    uint32_t first = 0;
    for (size_t i = 0; i < n; i++) {
        ent[i].limit = limits[i];
        ent[i].first = first;
        first += limits[i];
    }
    if (s_bind(rs, n) != 0) {
        snprintf(err, errlen, "resources: out of memory");
        goto fail;
    }
    return rs;
fail:
    sl__resources_destroy(&rs);
    return NULL;
}

int sl__resources_fd(const sl_resources_t *rs) { return rs ? rs->fd : -1; }

/* Checks a mapped header and its entries against the file size. Returns
 * NULL when all is well, else what is wrong. */
static const char *s_check(const void *map, size_t size)
{
    const rs_header_t *h = map;
    if (h->magic != RS_MAGIC)
        return "bad magic";
    if (h->version != RS_VERSION)
        return "unsupported version";
    if (h->header_size != sizeof(rs_header_t) ||
        h->entry_size != sizeof(rs_entry_t))
        return "header or entry size differs from this build";
    if (h->n_res > SL_RESOURCES_MAX)
        return "resource count out of range";
    if (h->total_slots > RS_SLOTS_MAX)
        return "slot count out of range";
    if (h->map_size != size || s_map_size(h->n_res, h->total_slots) != size)
        return "size does not match its counts";
    const rs_entry_t *ent = (const rs_entry_t *)(h + 1);
    uint64_t first = 0;
    for (uint32_t i = 0; i < h->n_res; i++) {
        if (ent[i].limit < 1 || ent[i].limit > SL_RESOURCE_LIMIT_MAX)
            return "a limit is out of range";
        if (ent[i].first != first)
            return "slot ranges are not contiguous";
        first += ent[i].limit;
    }
    if (first != h->total_slots)
        return "slot ranges do not add up to the slot count";
    return NULL;
}

sl_resources_t *sl__resources_attach(int fd, char *err, size_t errlen)
{
    pthread_once(&s_once, s_register_fork);
    struct stat st;
    if (fstat(fd, &st) != 0) {
        snprintf(err, errlen, "resource table fd %d: %s", fd, strerror(errno));
        return NULL;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "fd %d is not a resource table: not a "
                              "shared memory file", fd);
        return NULL;
    }
    size_t max = s_map_size(SL_RESOURCES_MAX, RS_SLOTS_MAX);
    if (st.st_size < (off_t)sizeof(rs_header_t) || (uint64_t)st.st_size > max) {
        snprintf(err, errlen, "fd %d is not a resource table: size %lld "
                              "out of range",
                 fd, (long long)st.st_size);
        return NULL;
    }
    sl_resources_t *rs = calloc(1, sizeof(*rs));
    if (!rs) {
        snprintf(err, errlen, "resources: out of memory");
        return NULL;
    }
    rs->fd = -1;
    rs->map_size = (size_t)st.st_size;
    rs->map = mmap(NULL, rs->map_size, PROT_READ | PROT_WRITE, MAP_SHARED,
                   fd, 0);
    if (rs->map == MAP_FAILED) {
        snprintf(err, errlen, "resource table fd %d: mmap: %s", fd,
                 strerror(errno));
        goto fail;
    }
    const char *why = s_check(rs->map, rs->map_size);
    if (why) {
        snprintf(err, errlen, "fd %d is not a resource table: %s", fd, why);
        goto fail;
    }
    if (s_bind(rs, ((rs_header_t *)rs->map)->n_res) != 0) {
        snprintf(err, errlen, "resources: out of memory");
        goto fail;
    }
    return rs;
fail:
    sl__resources_destroy(&rs);
    return NULL;
}

void sl__resources_destroy(sl_resources_t **rsp)
{
    if (!rsp || !*rsp)
        return;
    sl_resources_t *rs = *rsp;
    free(rs->range);
    if (rs->map && rs->map != MAP_FAILED)
        munmap(rs->map, rs->map_size);
    if (rs->fd >= 0)
        close(rs->fd);
    free(rs);
    *rsp = NULL;
}

size_t sl__resources_count(const sl_resources_t *rs) { return rs ? rs->n : 0; }

uint32_t sl__resources_limit(const sl_resources_t *rs, size_t res)
{
    return rs && res < rs->n ? rs->range[res].limit : 0;
}

/* ---- acquire / release -------------------------------------------------- */

static void s_held_dec(rs_entry_t *e)
{
    uint32_t v = atomic_load_explicit(&e->held, memory_order_relaxed);
    while (v > 0 && !atomic_compare_exchange_weak(&e->held, &v, v - 1)) {
    }
}

/* One pass over the slots of res from the hint. 1 with *slot set if one
 * was claimed, 0 if none was free. */
static int s_claim(sl_resources_t *rs, size_t res, int32_t self, int *slot)
{
    rs_entry_t *e = &rs->ent[res];
    uint32_t lim = rs->range[res].limit;
    if (atomic_load_explicit(&e->held, memory_order_relaxed) >= lim)
        return 0;
    _Atomic int32_t *s = rs->slots + rs->range[res].first;
    uint32_t h = atomic_load_explicit(&e->hint, memory_order_relaxed);
    if (h >= lim)
        h = 0;
    for (uint32_t j = 0; j < lim; j++) {
        uint32_t i = h + j < lim ? h + j : h + j - lim;
        int32_t free_ = 0;
        if (atomic_load_explicit(&s[i], memory_order_relaxed) != 0 ||
            !atomic_compare_exchange_strong_explicit(&s[i], &free_, self,
                                                     memory_order_acquire,
                                                     memory_order_relaxed))
            continue;
        atomic_store_explicit(&e->hint, i + 1 < lim ? i + 1 : 0,
                              memory_order_relaxed);
        uint32_t now = atomic_fetch_add(&e->held, 1) + 1;
        uint32_t m = atomic_load_explicit(&e->max_held, memory_order_relaxed);
        while (now > m &&
               !atomic_compare_exchange_weak(&e->max_held, &m, now)) {
        }
        *slot = (int)i;
        return 1;
    }
    return 0;
}

int sl__resources_acquire(sl_resources_t *rs, size_t res,
                          const atomic_int *cancel, int *slot)
{
    if (!rs || res >= rs->n)
        return -EINVAL;
    rs_entry_t *e = &rs->ent[res];
    int32_t self = s_self();
    int waited = 0;
    for (;;) {
        /* Read seq before looking: a release after this point changes it,
         * so the futex wait below returns at once instead of sleeping
         * through that release. */
        uint32_t seq = atomic_load(&e->seq);
        if (s_claim(rs, res, self, slot))
            return 0;
        if ((cancel && atomic_load(cancel)) ||
            atomic_load_explicit(&rs->hdr->closing, memory_order_relaxed)) {
            /* We may have swallowed a wake-up meant for someone else. */
            if (waited && atomic_load(&e->waiters) > 0)
                s_futex_wake(&e->seq, 1);
            return -ECANCELED;
        }
        if (!waited) {
            waited = 1;
            atomic_fetch_add_explicit(&e->waits, 1, memory_order_relaxed);
        }
        atomic_fetch_add(&e->waiters, 1);
        s_futex_wait(&e->seq, seq, RS_WAIT_MS);
        atomic_fetch_sub(&e->waiters, 1);
    }
}

/* After slots of e were freed: moves seq so that anyone about to sleep
 * looks again, and wakes up to n sleepers. */
static void s_notify(rs_entry_t *e, int n)
{
    atomic_fetch_add(&e->seq, 1);
    if (atomic_load(&e->waiters) > 0)
        s_futex_wake(&e->seq, n);
}

void sl__resources_release(sl_resources_t *rs, size_t res, int slot)
{
    if (!rs || res >= rs->n || slot < 0 ||
        (uint32_t)slot >= rs->range[res].limit)
        return;
    rs_entry_t *e = &rs->ent[res];
    s_held_dec(e); /* before the slot goes: held must never run ahead */
    atomic_store_explicit(&rs->slots[rs->range[res].first + (uint32_t)slot], 0,
                          memory_order_release);
    atomic_store_explicit(&e->hint, (uint32_t)slot, memory_order_relaxed);
    s_notify(e, 1);
}

int sl__resources_acquire_set(sl_resources_t *rs, const size_t *idx, size_t n,
                              const atomic_int *cancel, int *slots)
{
    for (size_t k = 0; k < n; k++)
        slots[k] = -1;
    if (n == 1)
        return sl__resources_acquire(rs, idx[0], cancel, &slots[0]);
    for (size_t k = 0; k < n; k++) {
        if (!rs || idx[k] >= rs->n)
            return -EINVAL;
        for (size_t j = 0; j < k; j++)
            if (idx[j] == idx[k])
                return -EINVAL;
    }
    /* Lowest index first: a global order, so no cycle of waiters can form.
     * Sets are a handful of resources; a selection pass each is enough. */
    for (size_t step = 0; step < n; step++) {
        size_t best = n;
        for (size_t k = 0; k < n; k++)
            if (slots[k] < 0 && (best == n || idx[k] < idx[best]))
                best = k;
        int rc = sl__resources_acquire(rs, idx[best], cancel, &slots[best]);
        if (rc != 0) {
            sl__resources_release_set(rs, idx, n, slots);
            return rc;
        }
    }
    return 0;
}

void sl__resources_release_set(sl_resources_t *rs, const size_t *idx,
                               size_t n, int *slots)
{
    for (size_t k = n; k-- > 0;) {
        if (slots[k] >= 0)
            sl__resources_release(rs, idx[k], slots[k]);
        slots[k] = -1;
    }
}

unsigned sl__resources_release_pid(sl_resources_t *rs, pid_t pid)
{
    if (!rs || pid <= 0)
        return 0;
    unsigned total = 0;
    for (size_t r = 0; r < rs->n; r++) {
        rs_entry_t *e = &rs->ent[r];
        _Atomic int32_t *s = rs->slots + rs->range[r].first;
        unsigned freed = 0;
        for (uint32_t i = 0; i < rs->range[r].limit; i++) {
            int32_t want = pid;
            if (atomic_load_explicit(&s[i], memory_order_relaxed) != pid)
                continue;
            /* Held or not, the count goes down first, as in release. If
             * the child died between claiming and counting, this makes held
             * one lower than the truth, which is the safe side. */
            s_held_dec(e);
            if (atomic_compare_exchange_strong(&s[i], &want, 0)) {
                atomic_store_explicit(&e->hint, i, memory_order_relaxed);
                freed++;
            }
        }
        if (freed)
            s_notify(e, freed > INT_MAX ? INT_MAX : (int)freed);
        total += freed;
    }
    return total;
}

void sl__resources_close(sl_resources_t *rs)
{
    if (!rs)
        return;
    atomic_store(&rs->hdr->closing, 1);
    sl__resources_wake_all(rs);
}

void sl__resources_wake_all(sl_resources_t *rs)
{
    if (!rs)
        return;
    for (size_t r = 0; r < rs->n; r++) {
        atomic_fetch_add(&rs->ent[r].seq, 1);
        s_futex_wake(&rs->ent[r].seq, INT_MAX);
    }
}

/* ---- statistics --------------------------------------------------------- */

uint32_t sl__resources_in_use(const sl_resources_t *rs, size_t res)
{
    if (!rs || res >= rs->n)
        return 0;
    const _Atomic int32_t *s = rs->slots + rs->range[res].first;
    uint32_t n = 0;
    for (uint32_t i = 0; i < rs->range[res].limit; i++)
        n += atomic_load_explicit(&s[i], memory_order_relaxed) != 0;
    return n;
}

uint32_t sl__resources_max_in_use(const sl_resources_t *rs, size_t res)
{
    if (!rs || res >= rs->n)
        return 0;
    return atomic_load(&rs->ent[res].max_held);
}

uint64_t sl__resources_waits(const sl_resources_t *rs, size_t res)
{
    if (!rs || res >= rs->n)
        return 0;
    return atomic_load(&rs->ent[res].waits);
}
