#include "checkpoint.h"
#include "endian.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* State file: "SLPOS\0\0\1", u32 length, u64 FNV-1a of the bytes, bytes. */
#define STATE_MAGIC "SLPOS\0\0\1"
#define STATE_HDR 20

typedef struct s_epoch {
    uint64_t epoch;
    uint32_t left; /* acknowledgements still due */
    size_t len;
    char *pos;
} s_epoch_t;

typedef struct s_src {
    size_t stage;
    unsigned worker;
    uint32_t copies;  /* paths from the source to sinks */
    uint64_t next_epoch;
    uint64_t committed; /* newest epoch written */
    s_epoch_t pending[SL_MARK_MAX_PENDING];
    size_t n_pending;
    char *resume;
    size_t resume_len;
    int resume_loaded;
    char *path;
} s_src_t;

struct sl_ckpt {
    pthread_mutex_t mu;
    s_src_t *srcs;
    size_t n_srcs;
    uint64_t commits;
};

static uint64_t s_fnv(const void *p, size_t n)
{
    const unsigned char *b = p;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

/* Copies of a marker that reach sinks: one per path, dead-letter links
 * included. The graph has no cycles (the loader checks). */
static uint32_t s_paths(const sl_topology_t *t, size_t i, uint32_t *memo)
{
    if (memo[i])
        return memo[i];
    const sl_topo_stage_t *s = &t->stages[i];
    uint64_t n = s->n_outputs || s->dl_stage >= 0 ? 0 : 1;
    for (size_t k = 0; k < s->n_outputs; k++)
        n += s_paths(t, s->outputs[k], memo);
    if (s->dl_stage >= 0)
        n += s_paths(t, (size_t)s->dl_stage, memo);
    memo[i] = n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
    return memo[i];
}

static s_src_t *s_find(sl_ckpt_t *ck, size_t stage, unsigned worker)
{
    for (size_t i = 0; i < ck->n_srcs; i++)
        if (ck->srcs[i].stage == stage && ck->srcs[i].worker == worker)
            return &ck->srcs[i];
    return NULL;
}

sl_ckpt_t *sl__ckpt_new(const sl_topology_t *topo, int *failed, char *err,
                        size_t errlen)
{
    *failed = 0;
    if (!topo->state_dir)
        return NULL;
    if (mkdir(topo->state_dir, 0755) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "state_dir '%s': cannot create it: %s",
                 topo->state_dir, strerror(errno));
        *failed = 1;
        return NULL;
    }
    sl_ckpt_t *ck = calloc(1, sizeof(*ck));
    uint32_t *memo = calloc(topo->n_stages, sizeof(*memo));
    size_t n = 0;
    for (size_t i = 0; i < topo->n_stages; i++)
        if (topo->stages[i].plugin->desc->kind == SL_STAGE_SOURCE)
            n += topo->stages[i].workers_max > topo->stages[i].workers
                     ? topo->stages[i].workers_max : topo->stages[i].workers;
    if (!ck || !memo || !(ck->srcs = calloc(n ? n : 1, sizeof(*ck->srcs))))
        goto nomem;
    pthread_mutex_init(&ck->mu, NULL);
    for (size_t i = 0; i < topo->n_stages; i++) {
        const sl_topo_stage_t *s = &topo->stages[i];
        if (s->plugin->desc->kind != SL_STAGE_SOURCE)
            continue;
        unsigned workers = s->workers_max > s->workers ? s->workers_max
                                                       : s->workers;
        for (unsigned w = 0; w < workers; w++) {
            s_src_t *src = &ck->srcs[ck->n_srcs++];
            src->stage = i;
            src->worker = w;
            src->copies = s_paths(topo, i, memo);
            src->next_epoch = 1;
            if (asprintf(&src->path, "%s/%s.%s.%u.pos", topo->state_dir,
                         topo->name, s->name, w) < 0) {
                src->path = NULL;
                goto nomem;
            }
        }
    }
    free(memo);
    return ck;
nomem:
    free(memo);
    sl__ckpt_destroy(&ck);
    snprintf(err, errlen, "out of memory");
    *failed = 1;
    return NULL;
}

void sl__ckpt_destroy(sl_ckpt_t **ckp)
{
    sl_ckpt_t *ck = ckp ? *ckp : NULL;
    if (!ck)
        return;
    for (size_t i = 0; i < ck->n_srcs; i++) {
        s_src_t *s = &ck->srcs[i];
        for (size_t k = 0; k < s->n_pending; k++)
            free(s->pending[k].pos);
        free(s->resume);
        free(s->path);
    }
    if (ck->srcs)
        pthread_mutex_destroy(&ck->mu);
    free(ck->srcs);
    free(ck);
    *ckp = NULL;
}

static void s_load(s_src_t *s)
{
    s->resume_loaded = 1;
    int fd = open(s->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno != ENOENT)
            sl__log(SL_LOG_WARN, NULL, -1, "state file %s: %s; starting from "
                    "the beginning", s->path, strerror(errno));
        return;
    }
    struct stat sb;
    char *buf = NULL;
    const char *why = NULL;
    if (fstat(fd, &sb) != 0 || sb.st_size < STATE_HDR ||
        sb.st_size > STATE_HDR + SL_POSITION_MAX)
        why = "wrong size";
    else if (!(buf = malloc((size_t)sb.st_size)))
        why = "out of memory";
    else if (read(fd, buf, (size_t)sb.st_size) != sb.st_size)
        why = "short read";
    else if (memcmp(buf, STATE_MAGIC, 8) != 0)
        why = "not a sluice state file";
    else if (sl__get_u32((unsigned char *)buf + 8) !=
             (uint64_t)sb.st_size - STATE_HDR)
        why = "length does not match";
    else if (sl__get_u64((unsigned char *)buf + 12) !=
             s_fnv(buf + STATE_HDR, (size_t)sb.st_size - STATE_HDR))
        why = "checksum does not match";
    close(fd);
    if (why) {
        sl__log(SL_LOG_WARN, NULL, -1, "state file %s: %s; starting from the "
                "beginning", s->path, why);
        free(buf);
        return;
    }
    s->resume_len = (size_t)sb.st_size - STATE_HDR;
    s->resume = malloc(s->resume_len ? s->resume_len : 1);
    if (s->resume)
        memcpy(s->resume, buf + STATE_HDR, s->resume_len);
    free(buf);
}

const void *sl__ckpt_resume(sl_ckpt_t *ck, size_t stage, unsigned worker,
                            size_t *len)
{
    *len = 0;
    if (!ck)
        return NULL;
    s_src_t *s = s_find(ck, stage, worker);
    if (!s)
        return NULL;
    pthread_mutex_lock(&ck->mu);
    if (!s->resume_loaded)
        s_load(s);
    pthread_mutex_unlock(&ck->mu);
    *len = s->resume_len;
    return s->resume;
}

/* Called with the lock held: one small file, written whole and renamed
 * over the old one so that a crash leaves either. */
static int s_write(sl_ckpt_t *ck, s_src_t *s, const void *pos, size_t len)
{
    char tmp[4200];
    unsigned char hdr[STATE_HDR];
    memcpy(hdr, STATE_MAGIC, 8);
    sl__put_u32(hdr + 8, (uint32_t)len);
    sl__put_u64(hdr + 12, s_fnv(pos, len));
    snprintf(tmp, sizeof(tmp), "%s.tmp", s->path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int rc = fd < 0 ? -errno : 0;
    if (rc == 0 && (write(fd, hdr, sizeof(hdr)) != (ssize_t)sizeof(hdr) ||
                    (len && write(fd, pos, len) != (ssize_t)len)))
        rc = -EIO;
    if (rc == 0 && fsync(fd) != 0)
        rc = -errno;
    if (fd >= 0)
        close(fd);
    if (rc == 0 && rename(tmp, s->path) != 0)
        rc = -errno;
    if (rc) {
        sl__log(SL_LOG_ERROR, NULL, -1, "cannot write state file %s: %s",
                s->path, strerror(-rc));
        unlink(tmp);
        return rc;
    }
    ck->commits++;
    return 0;
}

uint64_t sl__ckpt_begin(sl_ckpt_t *ck, size_t stage, unsigned worker,
                        const void *pos, size_t len)
{
    s_src_t *s = ck ? s_find(ck, stage, worker) : NULL;
    if (!s || !s->copies || len > SL_POSITION_MAX)
        return 0;
    char *copy = malloc(len ? len : 1);
    if (!copy)
        return 0;
    memcpy(copy, pos, len);
    pthread_mutex_lock(&ck->mu);
    uint64_t epoch = 0;
    if (s->n_pending < SL_MARK_MAX_PENDING) {
        epoch = s->next_epoch++;
        s->pending[s->n_pending++] = (s_epoch_t){.epoch = epoch,
                                                 .left = s->copies,
                                                 .len = len, .pos = copy};
        copy = NULL;
    }
    pthread_mutex_unlock(&ck->mu);
    free(copy);
    return epoch;
}

void sl__ckpt_ack(sl_ckpt_t *ck, size_t stage, unsigned worker,
                  uint64_t epoch)
{
    s_src_t *s = ck ? s_find(ck, stage, worker) : NULL;
    if (!s)
        return;
    pthread_mutex_lock(&ck->mu);
    size_t k = 0;
    while (k < s->n_pending && s->pending[k].epoch != epoch)
        k++;
    if (k < s->n_pending && --s->pending[k].left == 0) {
        /* it implies every earlier epoch: those are dropped with it */
        if (epoch > s->committed &&
            s_write(ck, s, s->pending[k].pos, s->pending[k].len) == 0)
            s->committed = epoch;
        for (size_t j = 0; j <= k; j++)
            free(s->pending[j].pos);
        memmove(s->pending, s->pending + k + 1,
                (s->n_pending - k - 1) * sizeof(*s->pending));
        s->n_pending -= k + 1;
    }
    pthread_mutex_unlock(&ck->mu);
}

int sl__ckpt_commit(sl_ckpt_t *ck, size_t stage, unsigned worker,
                    const void *pos, size_t len)
{
    s_src_t *s = ck ? s_find(ck, stage, worker) : NULL;
    if (!s)
        return -ENOENT;
    pthread_mutex_lock(&ck->mu);
    int rc = s_write(ck, s, pos, len);
    if (rc == 0)
        s->committed = s->next_epoch;
    pthread_mutex_unlock(&ck->mu);
    return rc;
}

uint64_t sl__ckpt_commits(const sl_ckpt_t *ck)
{
    return ck ? ck->commits : 0;
}
