/* The ZAP handler (curve.h): ZeroMQ's authentication protocol, RFC 27.
 * libzmq sends each handshake of a socket with a ZAP domain (and every
 * CURVE handshake) as a request to inproc://zeromq.zap.01 in the socket's
 * context and admits the peer only on a "200" reply. One thread per
 * context answers them: CURVE keys on the allow-list are admitted under
 * their node's name, everything else is refused, counted and logged. */
#include "curve.h"
#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#define S_ZAP_ENDPOINT "inproc://zeromq.zap.01"
/* RFC 27 requests have at most 8 frames (PLAIN); more is malformed. */
#define S_MAX_FRAMES 8

typedef struct s_peer {
    uint8_t key[32];
    char node[SL_CURVE_NAME_MAX + 1];
} s_peer_t;

struct sl_zap {
    unsigned flags;
    atomic_uint log_ms;
    s_peer_t *peers; /* a topology lists a handful: searched linearly */
    size_t npeers, cap;

    void *zctx;
    void *ctl; /* our end of the control pair; the thread holds the other */
    char ctl_endpoint[64];
    pthread_t thread;
    atomic_int running;

    /* Written by the thread only (the log limiter). */
    uint64_t last_log_ns;
    uint64_t suppressed;

    atomic_uint_fast64_t accepted, denied, denied_key, denied_mech,
        denied_other;
};

static int s_fail(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int s_fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

static uint64_t s_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

sl_zap_t *sl__zap_new(unsigned flags)
{
    sl_zap_t *z = calloc(1, sizeof(*z));
    if (!z)
        return NULL;
    z->flags = flags;
    z->log_ms = 1000;
    return z;
}

int sl__zap_allow(sl_zap_t *z, const char *node, const char *public_key,
                  char *err, size_t errlen)
{
    if (atomic_load(&z->running))
        return s_fail(err, errlen, -EBUSY,
                      "the ZAP allow-list cannot change once it runs");
    int rc = sl__curve_check_name(node, err, errlen);
    if (rc < 0)
        return rc;
    char what[SL_CURVE_NAME_MAX + 32];
    snprintf(what, sizeof(what), "public key of node %s", node);
    if ((rc = sl__curve_check_key(public_key, what, err, errlen)) < 0)
        return rc;
    uint8_t key[32];
    zmq_z85_decode(key, public_key); /* checked above */
    for (size_t i = 0; i < z->npeers; i++)
        if (memcmp(z->peers[i].key, key, sizeof(key)) == 0)
            return s_fail(err, errlen, -EEXIST,
                          "node %s has the same public key as node %s; "
                          "each node needs its own key pair (sluice keygen)",
                          node, z->peers[i].node);
    if (z->npeers == z->cap) {
        size_t cap = z->cap ? z->cap * 2 : 8;
        s_peer_t *p = realloc(z->peers, cap * sizeof(*p));
        if (!p)
            return s_fail(err, errlen, -ENOMEM, "out of memory");
        z->peers = p;
        z->cap = cap;
    }
    s_peer_t *p = &z->peers[z->npeers++];
    memcpy(p->key, key, sizeof(key));
    snprintf(p->node, sizeof(p->node), "%s", node);
    return 0;
}

int sl__zap_running(const sl_zap_t *z)
{
    return z && atomic_load(&((sl_zap_t *)z)->running);
}

int sl__zap_insecure(const sl_zap_t *z)
{
    return z && (z->flags & SL_ZAP_INSECURE);
}

void sl__zap_stats(const sl_zap_t *z, sl_zap_stats_t *st)
{
    sl_zap_t *m = (sl_zap_t *)z;
    st->accepted = atomic_load_explicit(&m->accepted, memory_order_relaxed);
    st->denied = atomic_load_explicit(&m->denied, memory_order_relaxed);
    st->denied_key =
        atomic_load_explicit(&m->denied_key, memory_order_relaxed);
    st->denied_mech =
        atomic_load_explicit(&m->denied_mech, memory_order_relaxed);
    st->denied_other =
        atomic_load_explicit(&m->denied_other, memory_order_relaxed);
}

void sl__zap_set_log_interval(sl_zap_t *z, unsigned ms)
{
    atomic_store_explicit(&z->log_ms, ms, memory_order_relaxed);
}

/* ---- the thread ---------------------------------------------------------- */

/* Copies frame f (not NUL-terminated on the wire) as a C string. */
static void s_frame_str(zmq_msg_t *f, char *out, size_t cap)
{
    size_t n = zmq_msg_size(f);
    if (n >= cap)
        n = cap - 1;
    memcpy(out, zmq_msg_data(f), n);
    out[n] = '\0';
    /* Only for logs: keep control bytes out of them. */
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)out[i] < 0x20 || (unsigned char)out[i] == 0x7f)
            out[i] = '?';
}

static int s_frame_is(zmq_msg_t *f, const char *s)
{
    size_t n = strlen(s);
    return zmq_msg_size(f) == n && memcmp(zmq_msg_data(f), s, n) == 0;
}

/* A denial: counted always, logged at most once per log interval with the
 * number left out since the last line. */
static void s_deny(sl_zap_t *z, atomic_uint_fast64_t *reason,
                   const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void s_deny(sl_zap_t *z, atomic_uint_fast64_t *reason,
                   const char *fmt, ...)
{
    atomic_fetch_add_explicit(&z->denied, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(reason, 1, memory_order_relaxed);
    uint64_t now = s_now_ns();
    uint64_t ms = atomic_load_explicit(&z->log_ms, memory_order_relaxed);
    if (z->last_log_ns && now - z->last_log_ns < ms * 1000000u) {
        z->suppressed++;
        return;
    }
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (z->suppressed)
        sl__log(SL_LOG_WARN, NULL, -1,
                "%s (and %llu more denials since the last message)", msg,
                (unsigned long long)z->suppressed);
    else
        sl__log(SL_LOG_WARN, NULL, -1, "%s", msg);
    z->suppressed = 0;
    z->last_log_ns = now;
}

static const s_peer_t *s_find(const sl_zap_t *z, const void *key)
{
    for (size_t i = 0; i < z->npeers; i++)
        if (memcmp(z->peers[i].key, key, 32) == 0)
            return &z->peers[i];
    return NULL;
}

/* Decides one request; fills the reply's status and user id. */
static void s_decide(sl_zap_t *z, zmq_msg_t *f, int n, const char **status,
                     const char **text, const char **user)
{
    *status = "400";
    *user = "";
    char addr[64] = "?", mech[16] = "?";
    if (n >= 4)
        s_frame_str(&f[3], addr, sizeof(addr));
    /* a socket that takes IPv6 sees IPv4 peers as ::ffff:a.b.c.d */
    static const char mapped[] = "::ffff:";
    if (strlen(addr) > sizeof(mapped) - 1 &&
        memcmp(addr, mapped, sizeof(mapped) - 1) == 0 &&
        strchr(addr + sizeof(mapped) - 1, '.'))
        memmove(addr, addr + sizeof(mapped) - 1,
                strlen(addr + sizeof(mapped) - 1) + 1);
    if (n >= 6)
        s_frame_str(&f[5], mech, sizeof(mech));
    if (n < 6 || !s_frame_is(&f[0], "1.0")) {
        *status = "500";
        *text = "malformed ZAP request";
        s_deny(z, &z->denied_other,
               "denied a client from %s: malformed ZAP request", addr);
        return;
    }
    if (!s_frame_is(&f[2], SL_ZAP_DOMAIN)) {
        char domain[64];
        s_frame_str(&f[2], domain, sizeof(domain));
        *text = "unknown ZAP domain";
        s_deny(z, &z->denied_other,
               "denied a %s client from %s: its server socket has ZAP "
               "domain '%s', not '" SL_ZAP_DOMAIN "'", mech, addr, domain);
        return;
    }
    if (strcmp(mech, "CURVE") == 0) {
        if (n != 7 || zmq_msg_size(&f[6]) != 32) {
            *status = "500";
            *text = "malformed CURVE credentials";
            s_deny(z, &z->denied_other,
                   "denied a CURVE client from %s: malformed credentials",
                   addr);
            return;
        }
        const s_peer_t *p = s_find(z, zmq_msg_data(&f[6]));
        if (!p) {
            char key[SL_CURVE_KEY_LEN + 1];
            zmq_z85_encode(key, zmq_msg_data(&f[6]), 32);
            *text = "key not in the topology";
            s_deny(z, &z->denied_key,
                   "denied a CURVE client from %s: key not in the topology "
                   "(its public key: %s)", addr, key);
            return;
        }
        *status = "200";
        *text = "OK";
        *user = p->node;
        atomic_fetch_add_explicit(&z->accepted, 1, memory_order_relaxed);
        sl__log(SL_LOG_INFO, NULL, -1,
                "accepted node %s (CURVE) from %s", p->node, addr);
        return;
    }
    if (strcmp(mech, "NULL") == 0 || strcmp(mech, "PLAIN") == 0) {
        if (z->flags & SL_ZAP_INSECURE) {
            *status = "200";
            *text = "OK";
            atomic_fetch_add_explicit(&z->accepted, 1, memory_order_relaxed);
            sl__log(SL_LOG_DEBUG, NULL, -1,
                    "accepted an unauthenticated %s client from %s "
                    "(insecure: true)", mech, addr);
            return;
        }
        *text = "unauthenticated connections are not allowed";
        s_deny(z, &z->denied_mech,
               "denied a %s client from %s: only CURVE is allowed (plain "
               "connections need insecure: true)", mech, addr);
        return;
    }
    *text = "unknown mechanism";
    s_deny(z, &z->denied_other,
           "denied a client from %s: unknown mechanism %s", addr, mech);
}

/* Reads one request (every frame, so the REP socket stays in step) and
 * answers it. */
static void s_serve(sl_zap_t *z, void *rep)
{
    zmq_msg_t f[S_MAX_FRAMES];
    int n = 0, more = 1, extra = 0;
    while (more) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, rep, 0) < 0) {
            zmq_msg_close(&m);
            break;
        }
        more = zmq_msg_more(&m);
        if (n < S_MAX_FRAMES)
            f[n++] = m;
        else {
            extra = 1;
            zmq_msg_close(&m);
        }
    }
    const char *status, *text, *user;
    if (extra) {
        status = "500";
        text = "malformed ZAP request";
        user = "";
        s_deny(z, &z->denied_other,
               "denied a client: ZAP request with more than %d frames",
               S_MAX_FRAMES);
    } else {
        s_decide(z, f, n, &status, &text, &user);
    }
    zmq_send(rep, "1.0", 3, ZMQ_SNDMORE);
    if (n >= 2)
        zmq_send(rep, zmq_msg_data(&f[1]), zmq_msg_size(&f[1]), ZMQ_SNDMORE);
    else
        zmq_send(rep, "", 0, ZMQ_SNDMORE);
    zmq_send(rep, status, strlen(status), ZMQ_SNDMORE);
    zmq_send(rep, text, strlen(text), ZMQ_SNDMORE);
    zmq_send(rep, user, strlen(user), ZMQ_SNDMORE);
    zmq_send(rep, "", 0, 0);
    for (int i = 0; i < n; i++)
        zmq_msg_close(&f[i]);
}

static void *s_thread(void *arg)
{
    sl_zap_t *z = arg;
    int zero = 0, rc = 0;
    void *ctl = zmq_socket(z->zctx, ZMQ_PAIR);
    if (!ctl)
        return NULL; /* the starter sees no answer and gives up */
    zmq_setsockopt(ctl, ZMQ_LINGER, &zero, sizeof(zero));
    void *rep = NULL;
    if (zmq_connect(ctl, z->ctl_endpoint) != 0) {
        zmq_close(ctl);
        return NULL;
    }
    rep = zmq_socket(z->zctx, ZMQ_REP);
    if (!rep) {
        rc = -errno;
    } else {
        zmq_setsockopt(rep, ZMQ_LINGER, &zero, sizeof(zero));
        if (zmq_bind(rep, S_ZAP_ENDPOINT) != 0)
            rc = -errno;
    }
    zmq_send(ctl, &rc, sizeof(rc), 0);
    if (rc < 0)
        goto out;

    zmq_pollitem_t items[2] = {{rep, 0, ZMQ_POLLIN, 0},
                               {ctl, 0, ZMQ_POLLIN, 0}};
    for (;;) {
        if (zmq_poll(items, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (items[1].revents & ZMQ_POLLIN)
            break; /* stop */
        if (items[0].revents & ZMQ_POLLIN)
            s_serve(z, rep);
    }
out:
    if (rep)
        zmq_close(rep);
    zmq_close(ctl);
    return NULL;
}

int sl__zap_start(sl_zap_t *z, void *zctx, char *err, size_t errlen)
{
    if (atomic_load(&z->running))
        return s_fail(err, errlen, -EALREADY, "the ZAP handler runs already");
    int rc = sl__curve_check(err, errlen);
    if (rc < 0)
        return rc;
    int zero = 0, timeout = 10000;
    z->zctx = zctx;
    snprintf(z->ctl_endpoint, sizeof(z->ctl_endpoint), "inproc://sl-zap-%p",
             (void *)z);
    z->ctl = zmq_socket(zctx, ZMQ_PAIR);
    if (!z->ctl)
        return s_fail(err, errlen, -errno, "ZAP handler: %s",
                      zmq_strerror(errno));
    zmq_setsockopt(z->ctl, ZMQ_LINGER, &zero, sizeof(zero));
    zmq_setsockopt(z->ctl, ZMQ_RCVTIMEO, &timeout, sizeof(timeout));
    if (zmq_bind(z->ctl, z->ctl_endpoint) != 0) {
        rc = s_fail(err, errlen, -errno, "ZAP handler: cannot bind %s: %s",
                    z->ctl_endpoint, zmq_strerror(errno));
        goto fail_ctl;
    }
    int prc = pthread_create(&z->thread, NULL, s_thread, z);
    if (prc != 0) {
        rc = s_fail(err, errlen, -prc, "ZAP handler: cannot start a thread: "
                    "%s", strerror(prc));
        goto fail_ctl;
    }
    /* The handshake: the thread has bound the ZAP endpoint (or failed to)
     * before any server socket can depend on it. */
    int trc;
    if (zmq_recv(z->ctl, &trc, sizeof(trc), 0) != (int)sizeof(trc)) {
        rc = s_fail(err, errlen, -ETIMEDOUT,
                    "ZAP handler: the thread did not start");
        goto fail_thread;
    }
    if (trc < 0) {
        rc = trc;
        if (trc == -EADDRINUSE)
            s_fail(err, errlen, rc, "ZAP handler: this ZeroMQ context has "
                   "one already (" S_ZAP_ENDPOINT " is bound)");
        else
            s_fail(err, errlen, rc, "ZAP handler: cannot bind "
                   S_ZAP_ENDPOINT ": %s", zmq_strerror(-trc));
        goto fail_thread;
    }
    atomic_store(&z->running, 1);
    if (z->flags & SL_ZAP_INSECURE)
        sl__log(SL_LOG_WARN, NULL, -1,
                "insecure: true: plain tcp connections are admitted without "
                "authentication or encryption; anyone who can reach this "
                "host can send and receive records");
    return 0;

fail_thread:
    /* A thread that never answered may still be starting: the stop message
     * waits in the pair's queue for it. */
    zmq_send(z->ctl, "", 0, ZMQ_DONTWAIT);
    pthread_join(z->thread, NULL);
fail_ctl:
    zmq_close(z->ctl);
    z->ctl = NULL;
    return rc;
}

void sl__zap_destroy(sl_zap_t **zp)
{
    sl_zap_t *z = zp ? *zp : NULL;
    if (!z)
        return;
    if (atomic_load(&z->running)) {
        zmq_send(z->ctl, "", 0, 0);
        pthread_join(z->thread, NULL);
        zmq_close(z->ctl);
        atomic_store(&z->running, 0);
    }
    if (z->suppressed)
        sl__log(SL_LOG_WARN, NULL, -1,
                "ZAP: %llu more denials since the last message (%llu in all)",
                (unsigned long long)z->suppressed,
                (unsigned long long)atomic_load(&z->denied));
    free(z->peers);
    free(z);
    *zp = NULL;
}
