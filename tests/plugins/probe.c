/*
 * probe: a test-only transform that measures how many of its calls run at
 * the same time, across threads and worker processes, so that integration
 * tests can check a `uses:` limit. Records pass through unchanged.
 *
 * Config:
 *   counter   string, required. A file (relative to the topology's folder;
 *             created if missing) holding two native-endian u64:
 *             {current, max}. Every worker maps it shared, so thread and
 *             process lanes count together.
 *   sleep_us  integer 0..10000000, default 1000. How long each call stays
 *             "inside" (between the increment and the decrement).
 *
 * Per record: current += 1, max = max(max, current), sleep, current -= 1,
 * emit the record. A test starts from a missing (or zeroed) file and reads
 * max afterwards; current is back to 0 once every call has returned.
 */
#include <sluice/stage.h>

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PROBE_SIZE (2 * sizeof(uint64_t))
#define PROBE_SLEEP_MAX 10000000

typedef struct probe_opts {
    char *counter;
    int64_t sleep_us;
} probe_opts_t;

typedef struct probe_state {
    probe_opts_t o;
    _Atomic uint64_t *c; /* [0] current, [1] max */
    struct timespec pause;
} probe_state_t;

static const char *const probe_keys[] = {"counter", "sleep_us", NULL};

/* Shared by validate and init. */
static int probe_parse(const sl_config_t *cfg, probe_opts_t *o)
{
    int bad = 0;
    memset(o, 0, sizeof(*o));
    if (sl_config_get_path(cfg, "counter", NULL, &o->counter) != 0)
        bad = 1;
    else if (!o->counter)
        bad = sl_config_error(cfg, "'counter' is required: the file that "
                                   "counts concurrent calls");
    if (sl_config_get_int(cfg, "sleep_us", 1000, &o->sleep_us) != 0)
        bad = 1;
    else if (o->sleep_us < 0 || o->sleep_us > PROBE_SLEEP_MAX)
        bad = sl_config_error(sl_config_get(cfg, "sleep_us"),
                              "'sleep_us' must be between 0 and %d",
                              PROBE_SLEEP_MAX);
    if (bad) {
        free(o->counter);
        o->counter = NULL;
        return -EINVAL;
    }
    return 0;
}

static int probe_validate(const sl_config_t *cfg)
{
    probe_opts_t o;
    int rc = probe_parse(cfg, &o);
    free(o.counter);
    return rc;
}

static void probe_fini(void *state)
{
    probe_state_t *st = state;
    if (!st)
        return;
    if (st->c)
        munmap((void *)st->c, PROBE_SIZE);
    free(st->o.counter);
    free(st);
}

static int probe_init(sl_ctx_t *ctx, const sl_config_t *cfg, void **state)
{
    probe_state_t *st = calloc(1, sizeof(*st));
    if (!st)
        return -ENOMEM;
    int rc = probe_parse(cfg, &st->o);
    if (rc != 0) {
        free(st);
        return rc;
    }
    int fd = open(st->o.counter, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    struct stat sb;
    /* Growing to the size is safe when several workers race: ftruncate to
     * the same length never loses what another one counted. */
    if (fd < 0 || fstat(fd, &sb) != 0 ||
        (sb.st_size < (off_t)PROBE_SIZE && ftruncate(fd, PROBE_SIZE) != 0)) {
        rc = -errno;
        sl_log(ctx, SL_LOG_ERROR, "probe: %s: %s", st->o.counter,
               strerror(errno));
        goto fail;
    }
    void *m = mmap(NULL, PROBE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED) {
        rc = -errno;
        sl_log(ctx, SL_LOG_ERROR, "probe: mmap %s: %s", st->o.counter,
               strerror(errno));
        goto fail;
    }
    close(fd);
    st->c = m;
    st->pause.tv_sec = (time_t)(st->o.sleep_us / 1000000);
    st->pause.tv_nsec = (long)(st->o.sleep_us % 1000000) * 1000;
    *state = st;
    return 0;
fail:
    if (fd >= 0)
        close(fd);
    probe_fini(st);
    return rc;
}

static int probe_process(void *state, sl_ctx_t *ctx, sl_record_t *rec)
{
    probe_state_t *st = state;
    uint64_t now = atomic_fetch_add(&st->c[0], 1) + 1;
    uint64_t max = atomic_load(&st->c[1]);
    while (now > max && !atomic_compare_exchange_weak(&st->c[1], &max, now)) {
    }
    if (st->o.sleep_us > 0) {
        struct timespec left = st->pause;
        while (nanosleep(&left, &left) != 0 && errno == EINTR) {
        }
    }
    atomic_fetch_sub(&st->c[0], 1);
    size_t len;
    const void *data = sl_record_data(rec, &len);
    return sl_emit_raw(ctx, data, len);
}

SL_STAGE_DEFINE(.name = "probe",
                .summary = "test: counts concurrent calls in a shared file",
                .kind = SL_STAGE_TRANSFORM,
                .config_keys = probe_keys,
                .validate = probe_validate,
                .init = probe_init,
                .process = probe_process,
                .fini = probe_fini);
