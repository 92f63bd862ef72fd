#include "procpool.h"
#include "deadletter.h"
#include "endian.h"
#include "failure.h"
#include "log.h"
#include "ppwire.h"
#include "run.h"
#include "spill.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* Two items per child: one in hand, one waiting in its socket, so that a
 * child never idles while the parent wakes up. */
#define PP_ITEMS_PER_WORKER 2
/* The most records handed to a worker process at once. */
#define PP_ITEM_RECORDS 1024
/* A second item hides the parent's turnaround (tens to hundreds of us)
 * behind the first; behind an item worth more handler time than this the
 * turnaround hardly counts, and the second item would be work that
 * another child may be free for first. */
#define PP_PREFETCH_NS 2000000ull
#define PP_RESPAWN_MIN_MS 10
#define PP_RESPAWN_MAX_MS 2000
#define PP_QUIT_GRACE_MS 2000
/* A worker that keeps dying before it is set up (a plugin whose init
 * crashes, a missing executable) will not get better by itself. */
#define PP_MAX_UNREADY_DEATHS 5

#define RELAXED memory_order_relaxed

typedef struct pp_item {
    struct pp_item *next;
    uint64_t seq;
    sl_work_t *work;
} pp_item_t;

typedef struct pp_child {
    unsigned index;
    uint32_t gen;
    pid_t pid;     /* 0 when not running */
    int pidfd;     /* -1 when not running */
    int active;    /* a slot of the pool now (elastic pools have spares) */
    int retiring;  /* asked to flush and quit: no more items, no respawn */
    uint64_t last_busy_ns;
    int ready;     /* set up and accepting items */
    int flush_sent;
    int flushed;
    int hb_fd;
    sl_heartbeat_t *hb;
    pp_item_t *items; /* handed out, oldest first */
    unsigned n_items;
    uint64_t respawn_at; /* monotonic ns; 0: none due */
    unsigned deaths_in_row;
    unsigned unready_deaths; /* in a row, before ever saying READY */
    char kill_reason[96]; /* set when the parent killed it */
    sl_prioq_t pq;        /* its own queue when the stage is partitioned */
} pp_child_t;

struct sl_procpool {
    sl_runner_t *r;
    void *sock;
    char endpoint[128];
    pp_child_t *children;
    unsigned n;
    unsigned rr;
    sl_prioq_t pq;       /* work no child has taken yet, by priority */
    uint64_t queued;     /* records in pq */
    uint64_t next_seq;
    int flushing;
    int partitioned;
    sl_deadletter_t *dl; /* borrowed from the runner */
    char **argv;         /* prepared before fork: nothing allocates after */
};

/* ---- worker executable ---------------------------------------------------- */

static char s_worker_exe[4096];

void sl__procpool_set_worker_exe(const char *path)
{
    snprintf(s_worker_exe, sizeof(s_worker_exe), "%s", path ? path : "");
}

const char *sl__procpool_worker_exe(void)
{
    const char *env = getenv("SLUICE_WORKER_EXE");
    if (env && *env)
        return env;
    if (s_worker_exe[0])
        return s_worker_exe;
    if (access(SL_CLI_BUILD_PATH, X_OK) == 0)
        return SL_CLI_BUILD_PATH;
    return SL_CLI_INSTALL_PATH;
}

/* ---- queues ----------------------------------------------------------------- */

/* A queue push fails only when a node cannot be allocated: the run cannot
 * go on without losing the item, so it ends as failed. */
static void s_queue_failed(sl_procpool_t *pp, sl_work_t *w)
{
    sl__log(SL_LOG_ERROR, pp->r->spec->name, -1,
            "out of memory queueing work; aborting the run");
    atomic_store(&pp->r->failed, 1);
    atomic_store(&pp->r->run->failed, 1);
    atomic_store(&pp->r->run->aborting, 1);
    sl__work_free(w);
}

static void s_free_plain(void *data, void *hint)
{
    (void)hint;
    free(data);
}

void sl__procpool_enqueue(sl_procpool_t *pp, sl_work_t *item)
{
    /* Items travel as ZeroMQ messages so that a copy for a child shares
     * the bytes instead of duplicating them. */
    if (item->owned_buf) {
        if (zmq_msg_init_data(&item->msg, item->owned_buf, item->owned_len,
                              s_free_plain, NULL) == 0)
            item->owned_buf = NULL;
    }
    sl_prioq_t *q = &pp->pq;
    if (pp->partitioned && item->worker >= 0 && (unsigned)item->worker < pp->n)
        q = &pp->children[item->worker].pq;
    if (sl_prioq_push(q, item, item->level, sl_mono_ns()) != 0)
        s_queue_failed(pp, item);
    else if (q == &pp->pq)
        pp->queued += item->count;
}

/* ---- spawning ----------------------------------------------------------------- */

static uint64_t s_backoff_ns(unsigned deaths)
{
    uint64_t ms = PP_RESPAWN_MIN_MS;
    for (unsigned i = 1; i < deaths && ms < PP_RESPAWN_MAX_MS; i++)
        ms *= 2;
    if (ms > PP_RESPAWN_MAX_MS)
        ms = PP_RESPAWN_MAX_MS;
    return ms * 1000000ull;
}

static int s_spawn(sl_procpool_t *pp, pp_child_t *c)
{
    sl_runner_t *r = pp->r;
    c->gen++;
    c->ready = 0;
    c->flush_sent = 0;
    c->kill_reason[0] = '\0';
    atomic_store(&c->hb->item, 0);
    atomic_store(&c->hb->index, 0);
    atomic_store(&c->hb->since_ns, 0);
    atomic_store(&c->hb->done, 0);

    char worker[16], gen[16], hbfd[16], resfd[16], ppid[16];
    int res_fd = r->run->resources ? sl__resources_fd(r->run->resources) : -1;
    snprintf(worker, sizeof(worker), "%u", c->index);
    snprintf(gen, sizeof(gen), "%u", c->gen);
    snprintf(hbfd, sizeof(hbfd), "%d", c->hb_fd);
    snprintf(resfd, sizeof(resfd), "%d", res_fd);
    snprintf(ppid, sizeof(ppid), "%d", (int)getpid());
    const char *exe = sl__procpool_worker_exe();
    /* PPID stays last: tests find a run's workers by it */
    char *argv[] = {(char *)exe, "__worker", pp->endpoint, worker, gen,
                    hbfd, resfd, ppid, NULL};
    pid_t parent = getpid();

    pid_t pid = fork();
    if (pid < 0) {
        sl__log(SL_LOG_ERROR, r->spec->name, (int)c->index,
                "cannot start a worker process: %s", strerror(errno));
        return -errno;
    }
    if (pid == 0) {
        /* Only async-signal-safe calls between fork and exec. The death
         * signal follows this (dispatcher) thread, which outlives every
         * child it starts; the worker also checks its parent itself. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(1);
        fcntl(c->hb_fd, F_SETFD, 0);
        if (res_fd >= 0)
            fcntl(res_fd, F_SETFD, 0);
        execv(exe, argv);
        _exit(127);
    }
    c->pid = pid;
    c->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (c->pidfd < 0) {
        sl__log(SL_LOG_DEBUG, r->spec->name, (int)c->index,
                "pidfd_open: %s; polling for worker deaths every 50 ms",
                strerror(errno));
    }
    return 0;
}

sl_procpool_t *sl__procpool_new(sl_runner_t *r, char *err, size_t errlen)
{
    sl_procpool_t *pp = calloc(1, sizeof(*pp));
    if (!pp)
        goto nomem;
    pp->r = r;
    pp->n = r->n_workers;
    pp->partitioned = r->spec->partition_by != NULL && pp->n > 1;
    pp->dl = r->dl;
    pp->next_seq = 1;
    pp->children = calloc(pp->n, sizeof(*pp->children));
    if (!pp->children)
        goto nomem;
    sl_prioq_init(&pp->pq);
    for (unsigned i = 0; i < pp->n; i++) {
        pp->children[i].pidfd = -1;
        pp->children[i].hb_fd = -1;
        sl_prioq_init(&pp->children[i].pq);
    }
    for (unsigned i = 0; i < pp->n; i++) {
        pp_child_t *c = &pp->children[i];
        c->index = i;
        c->hb_fd = memfd_create("sluice-heartbeat", MFD_CLOEXEC);
        if (c->hb_fd < 0 || ftruncate(c->hb_fd, sizeof(sl_heartbeat_t)) != 0) {
            snprintf(err, errlen, "stage '%s': shared memory: %s",
                     r->spec->name, strerror(errno));
            goto fail;
        }
        c->hb = mmap(NULL, sizeof(sl_heartbeat_t), PROT_READ | PROT_WRITE,
                     MAP_SHARED, c->hb_fd, 0);
        if (c->hb == MAP_FAILED) {
            c->hb = NULL;
            snprintf(err, errlen, "stage '%s': mmap: %s", r->spec->name,
                     strerror(errno));
            goto fail;
        }
    }
    /* Abstract socket names: nothing to clean up on disk after a crash. */
    snprintf(pp->endpoint, sizeof(pp->endpoint), "ipc://@sluice-%d-%lu-%zu",
             (int)getpid(), r->run->id, r->index);
    pp->sock = zmq_socket(r->run->zctx, ZMQ_ROUTER);
    if (!pp->sock) {
        snprintf(err, errlen, "zmq_socket: %s", zmq_strerror(errno));
        goto fail;
    }
    int zero = 0, one = 1;
    zmq_setsockopt(pp->sock, ZMQ_SNDHWM, &zero, sizeof(zero));
    zmq_setsockopt(pp->sock, ZMQ_RCVHWM, &zero, sizeof(zero));
    zmq_setsockopt(pp->sock, ZMQ_LINGER, &zero, sizeof(zero));
    zmq_setsockopt(pp->sock, ZMQ_ROUTER_MANDATORY, &one, sizeof(one));
    if (zmq_bind(pp->sock, pp->endpoint) != 0) {
        snprintf(err, errlen, "stage '%s': cannot bind %s: %s", r->spec->name,
                 pp->endpoint, zmq_strerror(errno));
        goto fail;
    }
    return pp;
nomem:
    snprintf(err, errlen, "out of memory");
fail:
    sl__procpool_destroy(&pp);
    return NULL;
}

int sl__procpool_start(sl_procpool_t *pp)
{
    for (unsigned i = 0; i < pp->r->n_live && i < pp->n; i++) {
        pp_child_t *c = &pp->children[i];
        c->active = 1;
        c->last_busy_ns = sl_mono_ns();
        if (s_spawn(pp, c) != 0) {
            c->deaths_in_row++;
            c->respawn_at = sl_mono_ns() + s_backoff_ns(c->deaths_in_row);
        }
    }
    return 0;
}

/* ---- talking to children --------------------------------------------------- */

/* body and body2 (each may be NULL) are sent after the header; ZeroMQ
 * takes them only on success. */
static int s_send_to(sl_procpool_t *pp, pp_child_t *c, const void *hdr,
                     size_t hdr_len, zmq_msg_t *body, zmq_msg_t *body2)
{
    unsigned char ident[PPW_IDENT_SIZE];
    ppw_ident(ident, c->index, c->gen);
    if (zmq_send(pp->sock, ident, sizeof(ident), ZMQ_SNDMORE) < 0)
        return -errno;
    int flags = body ? ZMQ_SNDMORE : 0;
    if (zmq_send(pp->sock, hdr, hdr_len, flags) < 0)
        return -errno;
    if (body && zmq_msg_send(body, pp->sock, body2 ? ZMQ_SNDMORE : 0) < 0)
        return -errno;
    if (body2 && zmq_msg_send(body2, pp->sock, 0) < 0)
        return -errno;
    return 0;
}

static void s_send_setup(sl_procpool_t *pp, pp_child_t *c)
{
    sl_runner_t *r = pp->r;
    const sl_config_doc_t *doc = r->run->topo->doc;
    size_t src_len;
    const char *src = sl__config_doc_source(doc, &src_len);
    const char *name = sl__config_doc_name(doc);
    const char *dir = sl__config_doc_dir(doc);
    unsigned char hdr[PPW_SETUP_SIZE];
    /* The parent decides: a run that keeps no positions (a replay clears
     * state_dir) must not make the children sync. */
    uint32_t flags = r->run->positions_on || r->run->topo->state_dir
                         ? PPW_SETUP_SYNC : 0;
    ppw_setup(hdr, (uint32_t)r->index, c->index, pp->n, r->out_batch,
              r->spec->timeout_ms, r->dl_batch, flags);
    unsigned char ident[PPW_IDENT_SIZE];
    ppw_ident(ident, c->index, c->gen);
    if (zmq_send(pp->sock, ident, sizeof(ident), ZMQ_SNDMORE) < 0 ||
        zmq_send(pp->sock, hdr, sizeof(hdr), ZMQ_SNDMORE) < 0 ||
        zmq_send(pp->sock, name, strlen(name), ZMQ_SNDMORE) < 0 ||
        zmq_send(pp->sock, dir, strlen(dir), ZMQ_SNDMORE) < 0 ||
        zmq_send(pp->sock, src, src_len, 0) < 0)
        sl__log(SL_LOG_WARN, r->spec->name, (int)c->index,
                "cannot send setup to worker process: %s", zmq_strerror(errno));
}

static sl_work_t *s_next_work(sl_procpool_t *pp, pp_child_t *c)
{
    if (pp->partitioned)
        return sl_prioq_pop(&c->pq, sl_mono_ns());
    sl_work_t *w = sl_prioq_pop(&pp->pq, sl_mono_ns());
    if (w)
        pp->queued -= w->count;
    return w;
}

static void s_put_back(sl_procpool_t *pp, pp_child_t *c, sl_work_t *w)
{
    sl_prioq_t *q = pp->partitioned ? &c->pq : &pp->pq;
    if (sl_prioq_push_front(q, w, w->level, sl_mono_ns()) != 0)
        s_queue_failed(pp, w);
    else if (!pp->partitioned)
        pp->queued += w->count;
}

/* The bytes of w's records: after its batch header, or its view. */
static const char *s_records(sl_work_t *w, size_t *len)
{
    const char *data = zmq_msg_data(&w->msg);
    size_t off = w->view_end ? w->view_off : SL_BATCH_HDR;
    *len = (w->view_end ? w->view_end : zmq_msg_size(&w->msg)) - off;
    return data + off;
}

/* Sizes the hand-over that starts with w. A batch larger than a child's
 * share (sl__work_share) is split, its rest going back to the front of
 * the queue for the other children; smaller items queued behind w that
 * came over the same link are merged into it up to that share, and never
 * beyond PP_ITEM_RECORDS: each hand-over to a process costs a few system
 * calls and wake-ups on both sides, whatever its size. The records stay
 * in order; credit is released per link, so only same-link items merge.
 * Returns what to send (always a batch of its own, not a view), or NULL
 * when nothing can be sent now. */
static int s_mergeable(const sl_work_t *w, const sl_work_t *x, uint32_t total,
                       uint32_t cap)
{
    /* a retry item keeps its own first-failure times; markers need
     * generations kept apart */
    return x && x->link == w->link && x->gen == w->gen && !x->retry &&
           total + x->count <= cap;
}

static sl_work_t *s_coalesce(sl_procpool_t *pp, pp_child_t *c, sl_work_t *w)
{
    sl_runner_t *r = pp->r;
    sl_prioq_t *q = pp->partitioned ? &c->pq : &pp->pq;
    unsigned live = atomic_load(&r->n_live);
    uint32_t cap;
    if (live > 1 && !pp->partitioned)
        cap = sl__work_share(r, pp->queued + w->count, live);
    else /* one child takes everything in turn; a partition is its own */
        cap = r->spec->queue / (2 * (live ? live : 1));
    if (cap > PP_ITEM_RECORDS)
        cap = PP_ITEM_RECORDS;
    if (live > 1 && !pp->partitioned && sl__work_should_split(r, w->count, cap)) {
        sl_work_t *rest = sl__work_split(w, cap);
        if (rest) { /* else (out of memory) the child takes it all */
            pthread_mutex_lock(&r->mu);
            r->inflight++;
            pthread_mutex_unlock(&r->mu);
            s_put_back(pp, c, rest);
        }
    }
    sl_work_t *next = w->retry ? NULL : sl_prioq_peek_level(q, w->level);
    if (!s_mergeable(w, next, w->count, cap)) {
        if (sl__work_own(w) == 0)
            return w;
        s_put_back(pp, c, w); /* out of memory: try again later */
        return NULL;
    }
    /* Only items queued right behind w in its own level merge. */
    sl_batch_t b;
    sl__batch_init(&b);
    size_t wlen;
    const char *wrec = s_records(w, &wlen);
    int rc = sl__batch_grow(&b, SL_BATCH_HDR + wlen);
    if (rc == 0) {
        memcpy(b.data, zmq_msg_data(&w->msg), SL_BATCH_HDR);
        memcpy(b.data + SL_BATCH_HDR, wrec, wlen);
        b.len = SL_BATCH_HDR + wlen;
    }
    uint32_t total = w->count;
    unsigned n = 0;
    while (rc == 0 && s_mergeable(w, next, total, cap)) {
        size_t len;
        const char *rec = s_records(next, &len);
        rc = sl__batch_grow(&b, len);
        if (rc)
            break;
        sl_work_t *x = sl_prioq_pop_level(q, w->level, sl_mono_ns());
        if (!pp->partitioned)
            pp->queued -= x->count;
        memcpy(b.data + b.len, rec, len);
        b.len += len;
        total += x->count;
        n++;
        sl__work_free(x);
        next = sl_prioq_peek_level(q, w->level);
    }
    sl_work_t *m = calloc(1, sizeof(*m));
    if (rc || !m || !n) {
        /* out of memory after merging some is not recoverable without
         * losing them */
        free(m);
        sl__batch_fini(&b);
        if (n) {
            s_queue_failed(pp, w);
            return NULL;
        }
        if (sl__work_own(w) == 0)
            return w;
        s_put_back(pp, c, w);
        return NULL;
    }
    size_t bytes = b.len;
    char *buf = b.data;
    b.data = NULL;
    sl__batch_fini(&b);
    sl__put_u32((unsigned char *)buf + 4, total);
    zmq_msg_init_data(&m->msg, buf, bytes, s_free_plain, NULL);
    m->count = total;
    m->link = w->link;
    m->worker = w->worker;
    m->gen = w->gen;
    m->level = w->level;
    sl__work_free(w);
    pthread_mutex_lock(&r->mu);
    r->inflight -= n;
    pthread_mutex_unlock(&r->mu);
    return m;
}

/* The last frame of a retry item: each record's first failure (u64 LE). */
static int s_firsts_msg(const sl_work_t *w, zmq_msg_t *m)
{
    size_t len = (size_t)w->count * 8;
    unsigned char *buf = malloc(len ? len : 1);
    if (!buf)
        return -ENOMEM;
    for (uint32_t k = 0; k < w->count; k++)
        sl__put_u64(buf + 8 * k, w->first_ns[k]);
    if (zmq_msg_init_data(m, buf, len, s_free_plain, NULL) != 0) {
        free(buf);
        return -ENOMEM;
    }
    return 0;
}

/* Hands one item to child c. 1 handed, 0 nothing to hand it now, -1 stop
 * handing out (out of memory, or the queue cannot be read). */
static int s_hand_one(sl_procpool_t *pp, pp_child_t *c)
{
    sl_work_t *w = s_next_work(pp, c);
    if (!w)
        return 0;
    w = s_coalesce(pp, c, w);
    if (!w)
        return -1;
    pp_item_t *it = calloc(1, sizeof(*it));
    int retry = w->retry && w->first_ns;
    zmq_msg_t copy, firsts;
    if (!it || zmq_msg_init(&copy) != 0) {
        free(it);
        s_put_back(pp, c, w);
        return -1;
    }
    if (zmq_msg_copy(&copy, &w->msg) != 0 ||
        (retry && s_firsts_msg(w, &firsts) != 0)) {
        zmq_msg_close(&copy);
        free(it);
        s_put_back(pp, c, w);
        return -1;
    }
    it->seq = pp->next_seq++;
    it->work = w;
    unsigned char hdr[PPW_ITEM_SIZE];
    ppw_item(hdr, it->seq, retry ? PPW_ITEM_RETRY : 0);
    if (s_send_to(pp, c, hdr, sizeof(hdr), &copy, retry ? &firsts : NULL) != 0) {
        /* gone: its death is on the way through the pidfd */
        zmq_msg_close(&copy);
        if (retry)
            zmq_msg_close(&firsts);
        free(it);
        s_put_back(pp, c, w);
        c->ready = 0;
        return 0;
    }
    pp_item_t **tail = &c->items;
    while (*tail)
        tail = &(*tail)->next;
    *tail = it;
    c->n_items++;
    return 1;
}

/* Whether busy child c may be given a second item: always when nobody
 * else could take it, else only behind a short item (PP_PREFETCH_NS at
 * the measured cost per record; unmeasured counts as long). */
static int s_may_prefetch(sl_procpool_t *pp, const pp_child_t *c)
{
    if (pp->partitioned || atomic_load(&pp->r->n_live) <= 1)
        return 1;
    uint64_t ns = atomic_load_explicit(&pp->r->rec_ns, RELAXED);
    return ns && c->items &&
           (uint64_t)c->items->work->count * ns < PP_PREFETCH_NS;
}

/* Hands queued items to children with room, round robin. Every child
 * gets one item before any gets a second: a second item waits in its
 * child's socket while the first is handled, and must not be work that
 * an idle child could be doing. */
static void s_dispatch(sl_procpool_t *pp)
{
    for (unsigned want = 1; want <= PP_ITEMS_PER_WORKER; want++) {
        for (unsigned k = 0; k < pp->n; k++) {
            pp_child_t *c = &pp->children[(pp->rr + k) % pp->n];
            while (c->active && c->ready && !c->flush_sent &&
                   c->n_items < want && (want == 1 || s_may_prefetch(pp, c))) {
                int rc = s_hand_one(pp, c);
                if (rc < 0)
                    return;
                if (rc == 0)
                    break;
            }
        }
    }
    pp->rr = (pp->rr + 1) % (pp->n ? pp->n : 1);
}

/* ---- results ------------------------------------------------------------------ */

static sl_done_t *s_done_from(zmq_msg_t *batch, uint32_t count)
{
    sl_done_t *d = calloc(1, sizeof(*d));
    if (!d)
        return NULL;
    size_t len = zmq_msg_size(batch);
    if (count && len) {
        d->buf = malloc(len);
        if (!d->buf) {
            free(d);
            return NULL;
        }
        memcpy(d->buf, zmq_msg_data(batch), len);
        d->len = len;
        d->count = count;
    }
    return d;
}

static uint32_t s_batch_count(zmq_msg_t *batch)
{
    uint32_t n = 0;
    if (zmq_msg_size(batch) == 0)
        return 0;
    if (sl__batch_validate(zmq_msg_data(batch), zmq_msg_size(batch), &n) != 0)
        return UINT32_MAX;
    return n;
}

static void s_fail_stage(sl_procpool_t *pp, const char *what)
{
    sl__log(SL_LOG_ERROR, pp->r->spec->name, -1, "%s", what);
    atomic_store(&pp->r->failed, 1);
    atomic_store(&pp->r->run->failed, 1);
    atomic_store(&pp->r->run->aborting, 1);
}

static void s_sink_latency(sl_procpool_t *pp, pp_child_t *c, sl_work_t *w)
{
    if (pp->r->desc->kind != SL_STAGE_SINK)
        return;
    sl_batch_iter_t it;
    sl_envelope_t env;
    const char *p;
    size_t len;
    uint64_t now = sl_now_ns();
    sl_worker_t *wk = &pp->r->workers[c->index];
    if (sl__batch_iter_init(&it, zmq_msg_data(&w->msg), zmq_msg_size(&w->msg), NULL))
        return;
    while (sl__batch_next(&it, &env, &p, &len) == 1)
        sl__hist_record(&wk->latency, now > env.ts_ns ? now - env.ts_ns : 0);
}

/* A retiring child is done: its slot is free again (the process itself
 * is reaped when it exits). */
static void s_retired(sl_procpool_t *pp, pp_child_t *c)
{
    if (!c->active)
        return;
    c->active = 0;
    sl_done_t *d = calloc(1, sizeof(*d));
    if (d) {
        d->retired = 1;
        d->worker = (int)c->index;
        sl__runner_post_done(pp->r, d);
    }
}

/* Checks the frames of a DONE or FLUSHED against its header and counts
 * each batch. 0, or a message for the stage's failure. */
static const char *s_check_result(sl_procpool_t *pp, const ppw_msg_t *m,
                                  const sl_work_t *w, zmq_msg_t *f, size_t nb,
                                  uint32_t *counts)
{
    sl_runner_t *r = pp->r;
    size_t n_retry = m->retried ? 2 : 0;
    if (m->n_out < 1 || (uint64_t)m->n_out + m->n_dl + n_retry != nb)
        return "worker process sent a result without output";
    /* a flush may dead-letter what it emitted over the limits, but it has
     * no input records to retry */
    if (m->retried && !w)
        return "worker process sent retries with a flush";
    if (m->n_dl && r->spec->dl_stage < 0)
        return "worker process sent dead letters without a dead-letter stage";
    if (m->retried && (m->retried > w->count ||
                       zmq_msg_size(&f[nb - 1]) != m->retried * 8))
        return "worker process sent a corrupt retry list";
    for (size_t i = 0; i < nb - n_retry / 2; i++) {
        counts[i] = s_batch_count(&f[i]);
        int is_dl = i >= m->n_out && i < m->n_out + m->n_dl;
        int is_retry = i == m->n_out + m->n_dl;
        if (counts[i] == UINT32_MAX ||
            (!is_dl && !is_retry && counts[i] > r->out_batch && r->n_out) ||
            (is_dl && (!counts[i] || counts[i] > r->dl_batch)) ||
            (is_retry && counts[i] != m->retried))
            return "worker process sent a corrupt batch";
    }
    return NULL;
}

static int s_take_dead_letters(sl_done_t *d, zmq_msg_t *batch, uint32_t n)
{
    d->dl_len = zmq_msg_size(batch);
    if (!(d->dl_buf = malloc(d->dl_len)))
        return -ENOMEM;
    memcpy(d->dl_buf, zmq_msg_data(batch), d->dl_len);
    d->dl_count = n;
    return 0;
}

/* The records of an item that failed with attempts left, for the
 * dispatcher's retry queue; they keep the item's credit. */
/* Past the grace period a child stopped after `handled` records of w: the
 * rest, never started, goes to the spill file. */
static void s_spill_rest(sl_procpool_t *pp, sl_work_t *w,
                         uint32_t handled)
{
    sl_runner_t *r = pp->r;
    sl_batch_iter_t it;
    sl_envelope_t env;
    const char *p;
    size_t len;
    uint32_t k = 0, n = 0;
    if (sl__batch_iter_init(&it, zmq_msg_data(&w->msg), zmq_msg_size(&w->msg),
                            NULL) != 0)
        return;
    while (sl__batch_next(&it, &env, &p, &len) == 1) {
        if (k >= handled) {
            sl__spill_record(r->run, r->spec->name, &env, p, len,
                             w->first_ns ? w->first_ns[k] : 0);
            n++;
        }
        k++;
    }
    atomic_fetch_add(&r->spilled_in, n);
}

static int s_take_retries(sl_done_t *d, zmq_msg_t *batch, zmq_msg_t *firsts,
                          uint32_t n)
{
    d->retry_len = zmq_msg_size(batch);
    d->retry_buf = malloc(d->retry_len);
    d->retry_first = malloc(n * sizeof(uint64_t));
    if (!d->retry_buf || !d->retry_first)
        return -ENOMEM;
    memcpy(d->retry_buf, zmq_msg_data(batch), d->retry_len);
    const unsigned char *p = zmq_msg_data(firsts);
    for (uint32_t k = 0; k < n; k++)
        d->retry_first[k] = sl__get_u64(p + 8 * k);
    d->retry_count = n;
    return 0;
}

/* A DONE or FLUSHED: the output of a whole item (or of a flush) as one or
 * more batches, each no larger than a consumer's credit share, then the
 * item's dead letters and retries. Nothing leaves a worker before its item
 * is done, so a worker that dies has sent nothing of the item it was
 * handling: no output is ever sent twice. */
static void s_on_result(sl_procpool_t *pp, pp_child_t *c, const ppw_msg_t *m,
                        zmq_msg_t *f, size_t nb)
{
    sl_runner_t *r = pp->r;
    pp_item_t *it = NULL;
    if (m->type == PPW_DONE) {
        it = c->items;
        if (!it || it->seq != m->seq) {
            s_fail_stage(pp, "worker process answered an item it was not given");
            return;
        }
    }
    sl_work_t *w = it ? it->work : NULL;
    uint32_t counts[nb];
    const char *bad = s_check_result(pp, m, w, f, nb, counts);
    if (bad) {
        s_fail_stage(pp, bad);
        return;
    }
    uint64_t emitted = 0;
    for (size_t i = 0; i < m->n_out; i++)
        emitted += counts[i];
    sl_worker_t *wk = &r->workers[c->index];
    /* Emitted records are counted here, as they leave the stage, so the
     * stage's out always equals what it sent on. */
    atomic_fetch_add_explicit(&wk->stats.emitted, emitted, RELAXED);
    /* Every batch but the last of each kind goes on its own; the last
     * ones travel together in the post that ends the item. */
    for (size_t i = 0; i + 1 < m->n_out + m->n_dl; i++) {
        if (i + 1 == m->n_out)
            continue;
        sl_done_t *d = i < m->n_out ? s_done_from(&f[i], counts[i])
                                    : calloc(1, sizeof(*d));
        int rc = d ? 0 : -ENOMEM;
        if (rc == 0 && i >= m->n_out)
            rc = s_take_dead_letters(d, &f[i], counts[i]);
        if (rc) {
            sl__done_free(d);
            s_fail_stage(pp, "out of memory taking a worker's output");
            return;
        }
        sl__runner_post_done(r, d);
    }
    size_t last = m->n_out - 1, last_dl = m->n_out + m->n_dl - 1;
    sl_done_t *d = s_done_from(&f[last], counts[last]);
    int rc = d ? 0 : -ENOMEM;
    if (rc == 0 && m->n_dl)
        rc = s_take_dead_letters(d, &f[last_dl], counts[last_dl]);
    if (rc == 0 && m->retried)
        rc = s_take_retries(d, &f[nb - 2], &f[nb - 1], (uint32_t)m->retried);
    if (rc) {
        sl__done_free(d);
        s_fail_stage(pp, "out of memory taking a worker's output");
        return;
    }
    if (w && (m->flags & PPW_DONE_CUT))
        s_spill_rest(pp, w, m->handled);
    if (w) {
        d->link = w->link;
        d->release = w->count - (uint32_t)m->retried;
        d->ends_item = 1;
        d->gen = w->gen;
        d->retry_worker = pp->partitioned ? w->worker : -1;
    }
    if (m->type == PPW_FLUSHED && !c->retiring) {
        c->flushed = 1;
        d->last = 1;
    }
    sl__runner_post_done(r, d);
    if (m->flags & PPW_DONE_SYNC_FAILED) {
        /* the child logged why */
        atomic_store(&r->failed, 1);
        atomic_store(&r->run->no_commit, 1);
    }
    if (m->type == PPW_FLUSHED) {
        if (m->errors)
            atomic_store(&r->failed, 1);
        if (c->retiring) {
            /* an elastic pool let it go: its output went above; now its
             * slot */
            s_retired(pp, c);
            unsigned char hdr[PPW_QUIT_SIZE];
            ppw_quit(hdr);
            s_send_to(pp, c, hdr, sizeof(hdr), NULL, NULL);
        }
        return;
    }
    c->items = it->next;
    c->n_items--;
    c->deaths_in_row = 0;
    c->last_busy_ns = sl_mono_ns();
    /* a retry item's records were counted in when they first came */
    if (!w->retry)
        atomic_fetch_add_explicit(&wk->stats.in, w->count, RELAXED);
    atomic_fetch_add_explicit(&wk->stats.ok, m->ok, RELAXED);
    atomic_fetch_add_explicit(&wk->stats.filtered, m->filtered, RELAXED);
    atomic_fetch_add_explicit(&wk->stats.errors, m->errors, RELAXED);
    atomic_fetch_add_explicit(&wk->stats.retried, m->retried, RELAXED);
    atomic_fetch_add_explicit(&wk->stats.busy_ns, m->busy_ns, RELAXED);
    sl__work_note_cost(r, m->busy_ns, w->count);
    /* the child times items, not calls: their mean stands for the calls */
    if (w->count) {
        pthread_mutex_lock(&wk->hist_mu);
        sl__hist_record(&wk->handler, m->busy_ns / w->count);
        pthread_mutex_unlock(&wk->hist_mu);
    }
    s_sink_latency(pp, c, w);
    sl__work_free(w);
    free(it);
}

static void s_close_frames(zmq_msg_t *frames, size_t n)
{
    for (size_t i = 0; i < n; i++)
        zmq_msg_close(&frames[i]);
}

/* Reads one whole message (all its frames) if there is one. Returns the
 * frame count, 0 when nothing is waiting; *frames is malloc'd. */
static size_t s_recv_all(sl_procpool_t *pp, zmq_msg_t **frames)
{
    size_t n = 0, cap = 0;
    zmq_msg_t *f = NULL;
    int more = 1;
    while (more) {
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 4;
            zmq_msg_t *bigger = realloc(f, ncap * sizeof(*f));
            if (!bigger)
                break; /* the rest of the message is dropped below */
            f = bigger;
            cap = ncap;
        }
        zmq_msg_init(&f[n]);
        if (zmq_msg_recv(&f[n], pp->sock, n == 0 ? ZMQ_DONTWAIT : 0) < 0) {
            zmq_msg_close(&f[n]);
            more = 0; /* nothing waiting, or the socket failed mid-message */
            break;
        }
        more = zmq_msg_more(&f[n]);
        n++;
    }
    while (more) { /* out of memory mid-message: drain it */
        zmq_msg_t extra;
        zmq_msg_init(&extra);
        zmq_msg_recv(&extra, pp->sock, 0);
        more = zmq_msg_more(&extra);
        zmq_msg_close(&extra);
    }
    *frames = f;
    return n;
}

static void s_on_message(sl_procpool_t *pp)
{
    for (;;) {
        zmq_msg_t *f = NULL;
        size_t n = s_recv_all(pp, &f);
        if (n == 0) {
            free(f);
            return;
        }
        unsigned worker;
        uint32_t gen;
        ppw_msg_t m;
        pp_child_t *c = NULL;
        /* Messages from an earlier generation of a respawned worker are
         * stale: that work was already handed out again. */
        if (n >= 2 &&
            ppw_parse_ident(zmq_msg_data(&f[0]), zmq_msg_size(&f[0]), &worker,
                            &gen) == 0 &&
            worker < pp->n && pp->children[worker].gen == gen &&
            pp->children[worker].pid > 0 &&
            ppw_parse(zmq_msg_data(&f[1]), zmq_msg_size(&f[1]), &m) == 0)
            c = &pp->children[worker];
        if (c) {
            switch (m.type) {
            case PPW_HELLO:
                s_send_setup(pp, c);
                break;
            case PPW_READY:
                c->ready = 1;
                break;
            case PPW_FAIL:
                sl__log(SL_LOG_ERROR, pp->r->spec->name, (int)c->index,
                        "worker process could not start: %.*s",
                        n > 2 ? (int)zmq_msg_size(&f[2]) : 0,
                        n > 2 ? (const char *)zmq_msg_data(&f[2]) : "");
                s_fail_stage(pp, "a worker process failed to initialise its plugin");
                break;
            case PPW_DONE:
            case PPW_FLUSHED:
                if (n >= 3)
                    s_on_result(pp, c, &m, f + 2, n - 2);
                else
                    s_fail_stage(pp, "worker process sent a result without output");
                break;
            default:
                break;
            }
        }
        s_close_frames(f, n);
        free(f);
    }
}

/* ---- deaths ------------------------------------------------------------------- */

/* Copies records [from, to) of a batch into a new work item, with what
 * travels with them (generation, level, first failures of a retry). */
static sl_work_t *s_slice(const sl_work_t *w, uint32_t from, uint32_t to,
                          int bump_attempts)
{
    sl_batch_t b;
    sl__batch_init(&b);
    sl_batch_iter_t it;
    sl_envelope_t env;
    const char *p;
    size_t len;
    uint32_t i = 0;
    sl__batch_iter_init(&it, zmq_msg_data((zmq_msg_t *)&w->msg),
                        zmq_msg_size((zmq_msg_t *)&w->msg), NULL);
    while (sl__batch_next(&it, &env, &p, &len) == 1 && i < to) {
        if (i >= from) {
            if (bump_attempts)
                env.attempts++;
            if (sl__batch_append(&b, &env, p, len) != 0) {
                sl__batch_fini(&b);
                return NULL;
            }
        }
        i++;
    }
    sl_work_t *n = calloc(1, sizeof(*n));
    if (!n)
        goto fail;
    n->count = b.count;
    n->link = w->link;
    n->worker = w->worker;
    n->gen = w->gen;
    n->level = w->level;
    n->retry = w->retry;
    if (w->first_ns && b.count) {
        if (!(n->first_ns = malloc(b.count * sizeof(uint64_t))))
            goto fail;
        memcpy(n->first_ns, w->first_ns + from, b.count * sizeof(uint64_t));
    }
    size_t blen;
    char *buf = sl__batch_release(&b, &blen);
    if (!buf || zmq_msg_init_data(&n->msg, buf, blen, s_free_plain, NULL) != 0) {
        free(buf);
        goto fail;
    }
    return n;
fail:
    if (n)
        free(n->first_ns);
    free(n);
    sl__batch_fini(&b);
    return NULL;
}

/* The record at `index` of w was in hand when its worker died: one more
 * attempt (it stays in its item: the respawn backoff spaces the tries),
 * or a dead letter. A given-up record ends as an item of its own (*ended
 * is set): its credit and generation come back through that post, so
 * that a dead letter for a dead-letter stage holds them until sent. */
static sl_work_t *s_blame(sl_procpool_t *pp, pp_child_t *c, sl_work_t *w,
                          uint32_t index, const char *reason, int *ended)
{
    sl_runner_t *r = pp->r;
    sl_batch_iter_t it;
    sl_envelope_t env;
    const char *p = NULL;
    size_t len = 0;
    uint32_t i = 0;
    sl__batch_iter_init(&it, zmq_msg_data(&w->msg), zmq_msg_size(&w->msg), NULL);
    while (sl__batch_next(&it, &env, &p, &len) == 1 && i < index)
        i++;
    uint32_t attempts = env.attempts + 1;
    if (attempts < r->spec->max_attempts) {
        /* A death is a failed attempt like a handler's error, and counts
         * in `retried` like one. */
        atomic_fetch_add_explicit(&r->workers[c->index].stats.retried, 1,
                                  RELAXED);
        return s_slice(w, index, index + 1, 1);
    }

    char why[256];
    snprintf(why, sizeof(why), "%s while processing (attempt %u of %u)",
             reason, attempts, r->spec->max_attempts);
    uint64_t now = sl_now_ns();
    uint64_t first = w->first_ns && w->first_ns[index] ? w->first_ns[index]
                                                       : now;
    sl_worker_t *wk = &r->workers[c->index];
    sl_done_t *d = calloc(1, sizeof(*d));
    int routed = 0;
    if (d && r->spec->dl_stage >= 0) {
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        sl_batch_t b;
        sl__batch_init(&b);
        sl_envelope_t out = {.id = env.id, .ts_ns = env.ts_ns,
                             .priority = env.priority};
        if (sl__deadletter_encode(&sb, r->spec->name, &env, p, len, why,
                                  attempts, first, now) == 0 &&
            sl__batch_append(&b, &out, sb.data, sb.size) == 0 &&
            (d->dl_buf = sl__batch_release(&b, &d->dl_len))) {
            d->dl_count = 1;
            routed = 1;
        }
        sl__batch_fini(&b);
        msgpack_sbuffer_destroy(&sb);
    }
    if (!routed)
        sl__record_give_up_at(r->spec->name, (int)c->index,
                              &wk->errors_logged, pp->dl, &env, p, len, why,
                              attempts, first, now);
    if (!w->retry) /* a retry's records were counted in when they came */
        atomic_fetch_add_explicit(&wk->stats.in, 1, RELAXED);
    atomic_fetch_add_explicit(&wk->stats.errors, 1, RELAXED);
    if (!d) {
        s_fail_stage(pp, "out of memory giving up a record");
        return NULL;
    }
    d->link = w->link;
    d->release = 1;
    d->ends_item = 1;
    d->gen = w->gen;
    d->retry_worker = -1;
    *ended = 1;
    sl__runner_post_done(r, d);
    return NULL;
}

/* What a death costs in duplicates: records the plugin had already
 * handled and will see again (exact; the run summary reports it). Outputs
 * are never sent twice: a worker sends nothing of an item before it is
 * done. */
static void s_count_duplicates(sl_procpool_t *pp, uint64_t redelivered)
{
    atomic_fetch_add_explicit(&pp->r->redelivered, redelivered, RELAXED);
}

/* Hands a dead child's items out again; only the record it was handling
 * when it died is blamed. */
static void s_recover(sl_procpool_t *pp, pp_child_t *c, const char *reason)
{
    sl_runner_t *r = pp->r;
    uint64_t blamed_seq = atomic_load(&c->hb->item);
    uint32_t blamed_index = atomic_load(&c->hb->index);
    uint64_t done_seq = atomic_load(&c->hb->done);
    sl_work_t *again[3 * PP_ITEMS_PER_WORKER];
    int n_again = 0;
    long delta_items = 0;

    for (pp_item_t *it = c->items, *next; it; it = next) {
        next = it->next;
        sl_work_t *w = it->work;
        if (it->seq == blamed_seq && blamed_index < w->count) {
            sl_work_t *before = blamed_index ? s_slice(w, 0, blamed_index, 0) : NULL;
            int ended = 0;
            sl_work_t *one = s_blame(pp, c, w, blamed_index, reason, &ended);
            sl_work_t *after = blamed_index + 1 < w->count
                                   ? s_slice(w, blamed_index + 1, w->count, 0)
                                   : NULL;
            if ((blamed_index && !before) ||
                (blamed_index + 1 < w->count && !after)) {
                s_fail_stage(pp, "out of memory re-queueing a dead worker's records");
            }
            /* w is gone; what replaces it is in flight: its slices, and
             * a given-up record until its post is taken */
            delta_items += ended - 1;
            if (before)
                again[n_again++] = before, delta_items++;
            if (one)
                again[n_again++] = one, delta_items++;
            if (after)
                again[n_again++] = after, delta_items++;
            s_count_duplicates(pp, blamed_index);
            sl__work_free(w);
        } else {
            /* Handled to the end but its DONE was lost with the worker
             * (handled again: a plugin with side effects sees it twice),
             * or not started at all. */
            s_count_duplicates(pp, it->seq <= done_seq ? w->count : 0);
            again[n_again++] = w;
        }
        free(it);
    }
    c->items = NULL;
    c->n_items = 0;
    /* Back to the front of the queue, in their original order. */
    for (int i = n_again - 1; i >= 0; i--)
        s_put_back(pp, c, again[i]);
    if (delta_items) {
        pthread_mutex_lock(&r->mu);
        r->inflight = (uint32_t)((long)r->inflight + delta_items);
        pthread_mutex_unlock(&r->mu);
    }
}

static void s_release_slots(sl_procpool_t *pp, pp_child_t *c)
{
    sl_resources_t *rs = pp->r->run->resources;
    unsigned n = rs ? sl__resources_release_pid(rs, c->pid) : 0;
    if (n)
        sl__log(SL_LOG_DEBUG, pp->r->spec->name, (int)c->index,
                "gave back %u shared resource slot(s) of a dead worker", n);
}

static void s_on_death(sl_procpool_t *pp, pp_child_t *c)
{
    sl_runner_t *r = pp->r;
    int status = 0;
    pid_t got = waitpid(c->pid, &status, WNOHANG);
    if (got == 0)
        return; /* not yet: a spurious wake-up */
    char reason[128];
    if (c->kill_reason[0])
        snprintf(reason, sizeof(reason), "%s", c->kill_reason);
    else if (got > 0 && WIFSIGNALED(status))
        snprintf(reason, sizeof(reason), "worker killed by signal %d",
                 WTERMSIG(status));
    else if (got > 0 && WIFEXITED(status))
        snprintf(reason, sizeof(reason), "worker exited with status %d",
                 WEXITSTATUS(status));
    else
        snprintf(reason, sizeof(reason), "worker lost");
    /* It can no longer give back the shared slots it held (a SIGKILL in
     * the middle of a call); the pid is not reused before this. */
    s_release_slots(pp, c);
    close(c->pidfd);
    c->pidfd = -1;
    c->pid = 0;
    int was_ready = c->ready;
    c->ready = 0;
    if (c->retiring && !c->n_items)
        sl__log(SL_LOG_DEBUG, r->spec->name, (int)c->index,
                "retired worker process ended (%s)", reason);
    else
        sl__log(SL_LOG_WARN, r->spec->name, (int)c->index,
                "%s; %u item(s) handed out again%s", reason, c->n_items,
                c->retiring ? "" : ", respawning");
    s_recover(pp, c, reason);
    if (c->retiring) {
        c->retiring = 0;
        s_retired(pp, c);
        return;
    }
    atomic_fetch_add(&r->restarts, 1);
    if (pp->flushing) {
        /* its flush state is gone with it; the rest still drains */
        if (!c->flushed) {
            c->flushed = 1;
            /* only a plugin with a flush() can have had anything buffered */
            if (r->desc->flush) {
                sl__log(SL_LOG_ERROR, r->spec->name, (int)c->index,
                        "worker died before flushing; what it buffered is "
                        "lost");
                atomic_store(&r->failed, 1);
            }
            sl_done_t *d = calloc(1, sizeof(*d));
            if (d) {
                d->last = 1;
                sl__runner_post_done(r, d);
            }
        }
        return;
    }
    c->deaths_in_row++;
    if (!was_ready)
        c->unready_deaths++;
    else
        c->unready_deaths = 0;
    if (c->unready_deaths >= PP_MAX_UNREADY_DEATHS) {
        sl__log(SL_LOG_ERROR, r->spec->name, (int)c->index,
                "worker process died %u times before it was ready (%s); "
                "giving up", c->unready_deaths, reason);
        s_fail_stage(pp, "worker processes cannot start");
        return;
    }
    c->respawn_at = sl_mono_ns() + s_backoff_ns(c->deaths_in_row);
}

/* ---- poll plumbing ------------------------------------------------------------- */

int sl__procpool_pollitems(sl_procpool_t *pp, void *items, int max)
{
    zmq_pollitem_t *it = items;
    int n = 0;
    if (n < max)
        it[n++] = (zmq_pollitem_t){.socket = pp->sock, .events = ZMQ_POLLIN};
    for (unsigned i = 0; i < pp->n && n < max; i++)
        if (pp->children[i].pidfd >= 0)
            it[n++] = (zmq_pollitem_t){.fd = pp->children[i].pidfd,
                                       .events = ZMQ_POLLIN};
    return n;
}

void sl__procpool_on_ready(sl_procpool_t *pp, const void *items, int n)
{
    const zmq_pollitem_t *it = items;
    if (n > 0 && (it[0].revents & ZMQ_POLLIN))
        s_on_message(pp);
    for (int k = 1; k < n; k++) {
        if (!(it[k].revents & (ZMQ_POLLIN | ZMQ_POLLERR)))
            continue;
        for (unsigned i = 0; i < pp->n; i++)
            if (pp->children[i].pidfd == it[k].fd && pp->children[i].pid > 0)
                s_on_death(pp, &pp->children[i]);
    }
    s_dispatch(pp);
}

int sl__procpool_tick(sl_procpool_t *pp, int dflt)
{
    uint64_t now = sl_mono_ns();
    uint64_t next = UINT64_MAX;
    uint32_t timeout_ms = pp->r->spec->timeout_ms;
    for (unsigned i = 0; i < pp->n; i++) {
        pp_child_t *c = &pp->children[i];
        if (c->pid == 0 && c->respawn_at && c->active && !pp->flushing) {
            if (now >= c->respawn_at) {
                c->respawn_at = 0;
                if (s_spawn(pp, c) != 0) {
                    c->deaths_in_row++;
                    c->respawn_at = now + s_backoff_ns(c->deaths_in_row);
                }
            }
            if (c->respawn_at && c->respawn_at < next)
                next = c->respawn_at;
        }
        if (c->pid > 0 && c->pidfd < 0) {
            /* no pidfd (a kernel before 5.3): look for its death by polling */
            s_on_death(pp, c);
            if (now + 50000000ull < next)
                next = now + 50000000ull;
        }
        if (timeout_ms && c->pid > 0 && !c->kill_reason[0] &&
            atomic_load_explicit(&c->hb->item, RELAXED)) {
            uint64_t since = atomic_load_explicit(&c->hb->since_ns, RELAXED);
            uint64_t deadline = since + (uint64_t)timeout_ms * 1000000ull;
            if (since && now >= deadline) {
                snprintf(c->kill_reason, sizeof(c->kill_reason),
                         "timeout after %u ms", timeout_ms);
                kill(c->pid, SIGKILL);
            } else if (since && deadline < next) {
                next = deadline;
            } else if (!since && now + 5000000ull < next) {
                next = now + 5000000ull;
            }
        }
    }
    s_dispatch(pp);
    if (next == UINT64_MAX)
        return dflt;
    uint64_t ms = next > now ? (next - now + 999999) / 1000000 : 0;
    return ms < (uint64_t)dflt || dflt < 0 ? (int)ms : dflt;
}

int sl__procpool_busy(const sl_procpool_t *pp, unsigned i)
{
    return i < pp->n && pp->children[i].n_items > 0;
}

int sl__procpool_backlog(const sl_procpool_t *pp)
{
    if (!sl_prioq_empty(&pp->pq))
        return 1;
    for (unsigned i = 0; i < pp->n; i++)
        if (!sl_prioq_empty(&pp->children[i].pq))
            return 1;
    return 0;
}

uint64_t sl__procpool_last_busy(const sl_procpool_t *pp, unsigned i)
{
    return i < pp->n ? pp->children[i].last_busy_ns : 0;
}

int sl__procpool_grow(sl_procpool_t *pp, unsigned i)
{
    if (i >= pp->n || pp->children[i].active || pp->children[i].pid > 0)
        return -EBUSY;
    pp_child_t *c = &pp->children[i];
    c->active = 1;
    c->retiring = 0;
    c->flushed = 0;
    c->deaths_in_row = 0;
    c->last_busy_ns = sl_mono_ns();
    if (s_spawn(pp, c) != 0) {
        c->deaths_in_row++;
        c->respawn_at = sl_mono_ns() + s_backoff_ns(c->deaths_in_row);
    }
    return 0;
}

int sl__procpool_retire(sl_procpool_t *pp, unsigned i)
{
    if (i >= pp->n)
        return -EINVAL;
    pp_child_t *c = &pp->children[i];
    if (!c->active || c->retiring || c->n_items)
        return -EBUSY;
    c->retiring = 1;
    if (c->pid > 0 && c->ready) {
        unsigned char hdr[PPW_FLUSH_SIZE];
        ppw_flush(hdr);
        if (s_send_to(pp, c, hdr, sizeof(hdr), NULL, NULL) == 0) {
            c->flush_sent = 1;
            return 0;
        }
    }
    /* not running or not set up: nothing to flush; stop it, free the slot */
    if (c->pid > 0)
        kill(c->pid, SIGKILL);
    c->respawn_at = 0;
    c->retiring = c->pid > 0; /* its death completes the retirement */
    if (!c->retiring)
        s_retired(pp, c);
    return 0;
}

void sl__procpool_flush(sl_procpool_t *pp)
{
    pp->flushing = 1;
    for (unsigned i = 0; i < pp->n; i++) {
        pp_child_t *c = &pp->children[i];
        if (!c->active || c->retiring || c->flushed || c->flush_sent)
            continue;
        unsigned char hdr[PPW_FLUSH_SIZE];
        ppw_flush(hdr);
        if (c->pid > 0 && c->ready && s_send_to(pp, c, hdr, sizeof(hdr), NULL, NULL) == 0) {
            c->flush_sent = 1;
            continue;
        }
        /* not running (between death and respawn): nothing to flush */
        c->flushed = 1;
        sl_done_t *d = calloc(1, sizeof(*d));
        if (d) {
            d->last = 1;
            sl__runner_post_done(pp->r, d);
        }
    }
}


/* ---- teardown ------------------------------------------------------------------ */

void sl__procpool_destroy(sl_procpool_t **ppp)
{
    sl_procpool_t *pp = ppp ? *ppp : NULL;
    if (!pp)
        return;
    if (pp->children) {
        for (unsigned i = 0; i < pp->n; i++) {
            pp_child_t *c = &pp->children[i];
            if (c->pid > 0 && c->ready && pp->sock) {
                unsigned char hdr[PPW_QUIT_SIZE];
                ppw_quit(hdr);
                s_send_to(pp, c, hdr, sizeof(hdr), NULL, NULL);
            } else if (c->pid > 0) {
                kill(c->pid, SIGKILL); /* still starting: nothing to lose */
            }
        }
        uint64_t deadline = sl_mono_ns() + PP_QUIT_GRACE_MS * 1000000ull;
        for (unsigned i = 0; i < pp->n; i++) {
            pp_child_t *c = &pp->children[i];
            while (c->pid > 0) {
                int status;
                pid_t got = waitpid(c->pid, &status, WNOHANG);
                if (got == c->pid || got < 0)
                    break;
                if (sl_mono_ns() >= deadline) {
                    kill(c->pid, SIGKILL);
                    waitpid(c->pid, &status, 0);
                    break;
                }
                struct timespec ts = {0, 2 * 1000 * 1000};
                nanosleep(&ts, NULL);
            }
            if (c->pid > 0)
                s_release_slots(pp, c);
            if (c->pidfd >= 0)
                close(c->pidfd);
            if (c->hb)
                munmap(c->hb, sizeof(sl_heartbeat_t));
            if (c->hb_fd >= 0)
                close(c->hb_fd);
            for (pp_item_t *it = c->items, *next; it; it = next) {
                next = it->next;
                sl__work_free(it->work);
                free(it);
            }
            sl_prioq_drain(&c->pq, sl__work_free_cb, NULL);
            sl_prioq_fini(&c->pq);
        }
        free(pp->children);
    }
    sl_prioq_drain(&pp->pq, sl__work_free_cb, NULL);
    sl_prioq_fini(&pp->pq);
    if (pp->sock)
        zmq_close(pp->sock);
    free(pp);
    *ppp = NULL;
}

size_t sl__procpool_spill(sl_procpool_t *pp, void (*fn)(void *item, void *arg),
                          void *arg)
{
    /* children stop between records and return the rest (s_spill_rest) */
    for (unsigned i = 0; i < pp->n; i++)
        if (pp->children[i].hb)
            atomic_store(&pp->children[i].hb->cut, 1);
    size_t n = sl_prioq_drain(&pp->pq, fn, arg);
    pp->queued = 0;
    for (unsigned i = 0; i < pp->n; i++)
        n += sl_prioq_drain(&pp->children[i].pq, fn, arg);
    pthread_mutex_lock(&pp->r->mu);
    pp->r->inflight -= (uint32_t)n;
    pthread_mutex_unlock(&pp->r->mu);
    return n;
}
