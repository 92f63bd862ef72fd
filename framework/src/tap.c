#include "tap.h"

#include "batch.h"
#include "endian.h"
#include "log.h"
#include "topology.h"

#include <sluice/stage.h>

#include <msgpack.h>
#include <zmq.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One converted batch waiting for the tap's thread. */
typedef struct s_msg {
    struct s_msg *next;
    size_t len;
    uint32_t count;
    char data[];
} s_msg_t;

typedef struct s_tap {
    unsigned id;
    long from, to; /* stage indices; -1 matches any */
    char *link;
    void *sock; /* created by the adder, then used by the thread only */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    s_msg_t *head, *tail;
    size_t bytes;
    uint64_t dropped; /* records */
    int closing;
} s_tap_t;

struct sl_taps {
    const sl_topology_t *topo;
    void *zctx;
    pthread_mutex_t mu; /* the table; taken before a tap's own mu */
    s_tap_t *tap[SL_TAP_MAX];
    atomic_uint *active; /* per stage: taps that match what it sends */
    unsigned next_id;
    int closed;
};

/* Sends, retrying through the send timeout until it goes or the tap ends;
 * a recorder that went away must not keep the tap's thread forever. */
static int s_send(s_tap_t *t, const void *data, size_t len)
{
    for (;;) {
        if (zmq_send(t->sock, data, len, 0) >= 0)
            return 0;
        if (errno != EAGAIN && errno != EINTR)
            return -errno;
        pthread_mutex_lock(&t->mu);
        int closing = t->closing;
        pthread_mutex_unlock(&t->mu);
        if (closing)
            return -EAGAIN;
    }
}

static void s_send_map(s_tap_t *t, int end, const char *topo_name)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    if (end) {
        msgpack_pack_map(&pk, 2);
        msgpack_pack_str_with_body(&pk, "end", 3);
        msgpack_pack_true(&pk);
        msgpack_pack_str_with_body(&pk, "dropped", 7);
        msgpack_pack_uint64(&pk, t->dropped);
    } else {
        msgpack_pack_map(&pk, 3);
        msgpack_pack_str_with_body(&pk, "tap", 3);
        msgpack_pack_uint32(&pk, t->id);
        msgpack_pack_str_with_body(&pk, "link", 4);
        msgpack_pack_str_with_body(&pk, t->link, strlen(t->link));
        msgpack_pack_str_with_body(&pk, "topology", 8);
        msgpack_pack_str_with_body(&pk, topo_name, strlen(topo_name));
    }
    /* The end message is tried for the linger time even when closing. */
    if (end)
        zmq_send(t->sock, sb.data, sb.size, 0);
    else
        s_send(t, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
}

typedef struct s_thread_arg {
    s_tap_t *tap;
    const char *topo_name;
} s_thread_arg_t;

static void *s_main(void *arg)
{
    s_thread_arg_t a = *(s_thread_arg_t *)arg;
    free(arg);
    s_tap_t *t = a.tap;
    s_send_map(t, 0, a.topo_name);
    pthread_mutex_lock(&t->mu);
    for (;;) {
        while (!t->head && !t->closing)
            pthread_cond_wait(&t->cv, &t->mu);
        s_msg_t *m = t->head;
        if (!m)
            break; /* closing, and everything queued went out */
        t->head = m->next;
        if (!t->head)
            t->tail = NULL;
        t->bytes -= m->len;
        pthread_mutex_unlock(&t->mu);
        int rc = s_send(t, m->data, m->len);
        pthread_mutex_lock(&t->mu);
        if (rc)
            t->dropped += m->count;
        free(m);
    }
    pthread_mutex_unlock(&t->mu);
    s_send_map(t, 1, NULL);
    zmq_close(t->sock);
    return NULL;
}

static void s_free_tap(s_tap_t *t)
{
    for (s_msg_t *m = t->head, *n; m; m = n) {
        n = m->next;
        free(m);
    }
    pthread_mutex_destroy(&t->mu);
    pthread_cond_destroy(&t->cv);
    free(t->link);
    free(t);
}

sl_taps_t *sl__taps_new(const sl_topology_t *topo, void *zctx)
{
    sl_taps_t *taps = calloc(1, sizeof(*taps));
    if (!taps)
        return NULL;
    taps->active = calloc(topo->n_stages ? topo->n_stages : 1,
                          sizeof(*taps->active));
    if (!taps->active) {
        free(taps);
        return NULL;
    }
    taps->topo = topo;
    taps->zctx = zctx;
    taps->next_id = 1;
    pthread_mutex_init(&taps->mu, NULL);
    return taps;
}

/* Adds or removes t's weight on the stages whose sends it matches. */
static void s_account(sl_taps_t *taps, const s_tap_t *t, int delta)
{
    const sl_topology_t *topo = taps->topo;
    if (t->from >= 0) {
        atomic_fetch_add_explicit(&taps->active[t->from], (unsigned)delta,
                                  memory_order_relaxed);
        return;
    }
    const sl_topo_stage_t *to = &topo->stages[t->to];
    for (size_t i = 0; i < to->n_inputs; i++)
        atomic_fetch_add_explicit(&taps->active[to->inputs[i]],
                                  (unsigned)delta, memory_order_relaxed);
}

static int s_is_output(const sl_topology_t *topo, size_t from, size_t to)
{
    const sl_topo_stage_t *s = &topo->stages[from];
    for (size_t i = 0; i < s->n_outputs; i++)
        if (s->outputs[i] == to)
            return 1;
    return 0;
}

static int s_parse_link(const sl_topology_t *topo, const char *link,
                        long *from, long *to, char *err, size_t errlen)
{
    const char *gt = strchr(link, '>');
    if (!gt || gt != strrchr(link, '>') || (gt == link && !gt[1])) {
        snprintf(err, errlen, "link '%s': want A>B, A> or >B", link);
        return -EINVAL;
    }
    char a[256];
    snprintf(a, sizeof(a), "%.*s", (int)(gt - link), link);
    *from = *to = -1;
    if (*a && (*from = sl__topology_find(topo, a)) < 0) {
        snprintf(err, errlen, "link '%s': no stage '%s'", link, a);
        return -ENOENT;
    }
    if (gt[1] && (*to = sl__topology_find(topo, gt + 1)) < 0) {
        snprintf(err, errlen, "link '%s': no stage '%s'", link, gt + 1);
        return -ENOENT;
    }
    if (*from >= 0 && *to >= 0 && !s_is_output(topo, (size_t)*from,
                                                (size_t)*to)) {
        snprintf(err, errlen, "link '%s': '%s' does not send to '%s'", link,
                 a, gt + 1);
        return -ENOENT;
    }
    const sl_topo_stage_t *s = *from >= 0 ? &topo->stages[*from] : NULL;
    if (s && !s->n_outputs) {
        snprintf(err, errlen, "link '%s': '%s' sends to no stage", link, a);
        return -ENOENT;
    }
    if (*to >= 0 && !topo->stages[*to].n_inputs) {
        snprintf(err, errlen, "link '%s': '%s' receives from no stage", link,
                 gt + 1);
        return -ENOENT;
    }
    return 0;
}

int sl__taps_add(sl_taps_t *taps, const char *link, const char *endpoint,
                 unsigned *id, char *err, size_t errlen)
{
    long from, to;
    int rc = s_parse_link(taps->topo, link, &from, &to, err, errlen);
    if (rc)
        return rc;
    s_tap_t *t = calloc(1, sizeof(*t));
    if (!t || !(t->link = strdup(link))) {
        free(t);
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->cv, NULL);
    t->from = from;
    t->to = to;

    pthread_mutex_lock(&taps->mu);
    size_t slot = SL_TAP_MAX;
    for (size_t i = 0; i < SL_TAP_MAX && slot == SL_TAP_MAX; i++)
        if (!taps->tap[i])
            slot = i;
    if (taps->closed) {
        snprintf(err, errlen, "the run has ended");
        rc = -ESHUTDOWN;
        goto fail;
    }
    if (slot == SL_TAP_MAX) {
        snprintf(err, errlen, "already %d taps on this run", SL_TAP_MAX);
        rc = -EBUSY;
        goto fail;
    }
    t->sock = zmq_socket(taps->zctx, ZMQ_PUSH);
    int timeout = 200, linger = 1000;
    if (!t->sock ||
        zmq_setsockopt(t->sock, ZMQ_SNDTIMEO, &timeout, sizeof(timeout)) ||
        zmq_setsockopt(t->sock, ZMQ_LINGER, &linger, sizeof(linger)) ||
        zmq_connect(t->sock, endpoint) != 0) {
        snprintf(err, errlen, "endpoint '%s': %s", endpoint,
                 zmq_strerror(errno));
        rc = -EINVAL;
        goto fail;
    }
    s_thread_arg_t *arg = malloc(sizeof(*arg));
    if (arg) {
        arg->tap = t;
        arg->topo_name = taps->topo->name;
    }
    t->id = taps->next_id;
    if (!arg || pthread_create(&t->thread, NULL, s_main, arg) != 0) {
        free(arg);
        snprintf(err, errlen, "cannot start the tap's thread");
        rc = -ENOMEM;
        goto fail;
    }
    taps->next_id++;
    taps->tap[slot] = t;
    s_account(taps, t, 1);
    /* Once in the table, t belongs to it: a remove or the end of the run
     * may free it as soon as the lock is released. */
    *id = t->id;
    pthread_mutex_unlock(&taps->mu);
    sl__log(SL_LOG_INFO, NULL, -1, "tap %u on %s to %s", *id, link,
            endpoint);
    return 0;
fail:
    pthread_mutex_unlock(&taps->mu);
    if (t->sock) {
        int zero = 0;
        zmq_setsockopt(t->sock, ZMQ_LINGER, &zero, sizeof(zero));
        zmq_close(t->sock);
    }
    s_free_tap(t);
    return rc;
}

/* The tap is out of the table: nothing new reaches it. */
static void s_end(s_tap_t *t)
{
    pthread_mutex_lock(&t->mu);
    t->closing = 1;
    pthread_cond_signal(&t->cv);
    pthread_mutex_unlock(&t->mu);
    pthread_join(t->thread, NULL);
    if (t->dropped)
        sl__log(SL_LOG_WARN, NULL, -1, "tap %u on %s: %llu records dropped "
                "(the recorder was slower than the link)", t->id, t->link,
                (unsigned long long)t->dropped);
    s_free_tap(t);
}

int sl__taps_remove(sl_taps_t *taps, unsigned id)
{
    s_tap_t *t = NULL;
    pthread_mutex_lock(&taps->mu);
    for (size_t i = 0; i < SL_TAP_MAX; i++)
        if (taps->tap[i] && taps->tap[i]->id == id) {
            t = taps->tap[i];
            taps->tap[i] = NULL;
            s_account(taps, t, -1);
        }
    pthread_mutex_unlock(&taps->mu);
    if (!t)
        return -ENOENT;
    s_end(t);
    return 0;
}

void sl__taps_close(sl_taps_t *taps)
{
    if (!taps)
        return;
    s_tap_t *ended[SL_TAP_MAX];
    size_t n = 0;
    pthread_mutex_lock(&taps->mu);
    taps->closed = 1;
    for (size_t i = 0; i < SL_TAP_MAX; i++)
        if (taps->tap[i]) {
            s_account(taps, taps->tap[i], -1);
            ended[n++] = taps->tap[i];
            taps->tap[i] = NULL;
        }
    pthread_mutex_unlock(&taps->mu);
    for (size_t i = 0; i < n; i++)
        s_end(ended[i]);
}

void sl__taps_destroy(sl_taps_t **tapsp)
{
    sl_taps_t *taps = tapsp ? *tapsp : NULL;
    if (!taps)
        return;
    sl__taps_close(taps);
    pthread_mutex_destroy(&taps->mu);
    free(taps->active);
    free(taps);
    *tapsp = NULL;
}

int sl__taps_on(const sl_taps_t *taps, size_t from)
{
    return taps && atomic_load_explicit(&taps->active[from],
                                        memory_order_relaxed) != 0;
}

/* The batch as [wall_ns, record] arrays, or NULL if it is malformed or
 * memory is short (the caller counts it as dropped). */
static s_msg_t *s_convert(const void *buf, size_t len, uint64_t now)
{
    sl_batch_iter_t it;
    sl_envelope_t env;
    const char *payload;
    size_t plen, need = 0;
    uint32_t count = 0;
    if (sl__batch_iter_init(&it, buf, len, NULL) != 0)
        return NULL;
    while (sl__batch_next(&it, &env, &payload, &plen) == 1) {
        need += 10 + plen; /* fixarray(2) + uint64 + the map */
        count++;
    }
    s_msg_t *m = malloc(sizeof(*m) + need);
    if (!m)
        return NULL;
    m->next = NULL;
    m->len = need;
    m->count = count;
    char *p = m->data;
    sl__batch_iter_init(&it, buf, len, NULL);
    while (sl__batch_next(&it, &env, &payload, &plen) == 1) {
        *p++ = (char)0x92;
        *p++ = (char)0xcf;
        for (int s = 56; s >= 0; s -= 8)
            *p++ = (char)(now >> s);
        memcpy(p, payload, plen);
        p += plen;
    }
    return m;
}

static uint32_t s_count(const void *buf, size_t len)
{
    uint32_t count = 0;
    sl_batch_iter_t it;
    if (sl__batch_iter_init(&it, buf, len, &count) != 0)
        return 0;
    return count;
}

/* Queues m (ownership passes) or, with no room, drops its records. */
static void s_enqueue(s_tap_t *t, s_msg_t *m, uint32_t count)
{
    pthread_mutex_lock(&t->mu);
    if (!m || t->bytes + m->len > SL_TAP_QUEUE_BYTES) {
        t->dropped += count;
        pthread_mutex_unlock(&t->mu);
        free(m);
        return;
    }
    if (t->tail)
        t->tail->next = m;
    else
        t->head = m;
    t->tail = m;
    t->bytes += m->len;
    pthread_cond_signal(&t->cv);
    pthread_mutex_unlock(&t->mu);
}

void sl__taps_batch(sl_taps_t *taps, size_t from, size_t to, const void *buf,
                    size_t len)
{
    s_tap_t *match[SL_TAP_MAX];
    size_t n = 0;
    pthread_mutex_lock(&taps->mu);
    for (size_t i = 0; i < SL_TAP_MAX; i++) {
        s_tap_t *t = taps->tap[i];
        if (t && (t->from < 0 || (size_t)t->from == from) &&
            (t->to < 0 || (size_t)t->to == to))
            match[n++] = t;
    }
    if (n) {
        s_msg_t *conv = s_convert(buf, len, sl_now_ns());
        uint32_t count = conv ? conv->count : s_count(buf, len);
        /* Copies for all but the last, which takes the original. */
        for (size_t i = 0; i < n; i++) {
            s_msg_t *m = conv;
            if (conv && i + 1 < n && (m = malloc(sizeof(*m) + conv->len)))
                memcpy(m, conv, sizeof(*m) + conv->len);
            s_enqueue(match[i], m, count);
        }
    }
    /* Held across the enqueues so that a removed tap gets nothing more. */
    pthread_mutex_unlock(&taps->mu);
}
