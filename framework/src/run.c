#include "run.h"
#include "curve.h"
#include "tap.h"
#include "deadletter.h"
#include "endian.h"
#include "log.h"
#include "spill.h"
#include "link_remote.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <unistd.h>

#define RELAXED memory_order_relaxed

static atomic_ulong s_run_ids;

static void s_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void s_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static void *s_socket(sl_run_t *run, int type)
{
    void *s = zmq_socket(run->zctx, type);
    if (!s)
        return NULL;
    /* The bound comes from credit; ZeroMQ must never drop or block. */
    int zero = 0, one = 1;
    zmq_setsockopt(s, ZMQ_SNDHWM, &zero, sizeof(zero));
    zmq_setsockopt(s, ZMQ_RCVHWM, &zero, sizeof(zero));
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof(zero));
    if (type == ZMQ_ROUTER)
        zmq_setsockopt(s, ZMQ_ROUTER_MANDATORY, &one, sizeof(one));
    return s;
}

/* The largest output batch that every consumer's per-link share can take,
 * so that a batch always fits once enough credit has come back. */
static uint32_t s_out_batch(const sl_topology_t *topo, const sl_topo_stage_t *s)
{
    uint32_t b = s->batch ? s->batch : 1;
    if (b > s->queue)
        b = s->queue;
    for (size_t o = 0; o < s->n_outputs; o++) {
        const sl_topo_stage_t *c = &topo->stages[s->outputs[o]];
        uint32_t share = c->queue / (uint32_t)c->n_inputs;
        if (share < b)
            b = share;
    }
    return b ? b : 1;
}

/* Whether stage i runs on another node than this run's. */
static int s_elsewhere(const sl_run_t *run, size_t i)
{
    return run->node >= 0 && run->topo->stages[i].host != run->node;
}

/* A tcp link to another node lingers on close, so that the end-of-stream
 * sent just before still leaves; inproc links need not. */
#define SL_REMOTE_LINGER_MS 5000

/* The stage's tcp endpoint on its node: the host's address, port = base
 * port + stage index. An IPv6 address goes in brackets. To bind, a host
 * name is resolved here: libzmq binds only to addresses and interfaces
 * (it resolves names when connecting). 0, or -ENOENT or -ENAMETOOLONG
 * with err filled. */
static int s_tcp_endpoint(const sl_topology_t *topo, size_t i, int bind,
                          char *buf, size_t len, char *err, size_t errlen)
{
    const sl_topo_host_t *h = &topo->hosts[topo->stages[i].host];
    char addr[NI_MAXHOST];
    snprintf(addr, sizeof(addr), "%s", h->address);
    struct in6_addr a6;
    struct in_addr a4;
    if (bind && inet_pton(AF_INET, addr, &a4) != 1 &&
        inet_pton(AF_INET6, addr, &a6) != 1) {
        struct addrinfo hints = {.ai_family = AF_UNSPEC,
                                 .ai_socktype = SOCK_STREAM};
        struct addrinfo *res = NULL;
        int rc = getaddrinfo(h->address, NULL, &hints, &res);
        if (rc != 0 || !res ||
            getnameinfo(res->ai_addr, res->ai_addrlen, addr, sizeof(addr),
                        NULL, 0, NI_NUMERICHOST) != 0) {
            s_err(err, errlen, "node '%s': cannot resolve its address '%s': "
                  "%s", h->name, h->address,
                  rc ? gai_strerror(rc) : "no address");
            if (res)
                freeaddrinfo(res);
            return -ENOENT;
        }
        freeaddrinfo(res);
    }
    int v6 = strchr(addr, ':') != NULL;
    int n = snprintf(buf, len, "tcp://%s%s%s:%" PRIu32, v6 ? "[" : "", addr,
                     v6 ? "]" : "", h->port + (uint32_t)i);
    if (n < 0 || (size_t)n >= len) {
        s_err(err, errlen, "node '%s': address '%s' is too long", h->name,
              h->address);
        return -ENAMETOOLONG;
    }
    return 0;
}

/* Options of a tcp link's socket. Heartbeats: a peer silent for
 * peer_timeout (a frozen or unplugged node, not only a closed socket)
 * loses its connection, which the producer then re-establishes and
 * re-syncs (link_remote.h). */
static void s_tcp_options(const sl_topology_t *topo, void *sock)
{
    /* IPv6 addresses too (IPv4 ones still work) */
    zmq_setsockopt(sock, ZMQ_IPV6, &(int){1}, sizeof(int));
    int timeout = (int)topo->peer_timeout_ms;
    int ivl = timeout / 4 > 0 ? timeout / 4 : 1;
    zmq_setsockopt(sock, ZMQ_HEARTBEAT_IVL, &ivl, sizeof(ivl));
    zmq_setsockopt(sock, ZMQ_HEARTBEAT_TIMEOUT, &timeout, sizeof(timeout));
    zmq_setsockopt(sock, ZMQ_HEARTBEAT_TTL, &timeout, sizeof(timeout));
}

/* A watcher of a socket's connection events on an inproc PAIR. */
static void *s_monitor(sl_run_t *run, void *sock, const char *what, size_t a,
                       size_t b, int events)
{
    char mon[160];
    snprintf(mon, sizeof(mon), "inproc://sluice-mon-%lu-%s-%zu-%zu", run->id,
             what, a, b);
    void *pair = NULL;
    if (zmq_socket_monitor(sock, mon, events) != 0 ||
        !(pair = zmq_socket(run->zctx, ZMQ_PAIR)) ||
        zmq_connect(pair, mon) != 0) {
        if (pair)
            zmq_close(pair);
        return NULL;
    }
    zmq_setsockopt(pair, ZMQ_LINGER, &(int){0}, sizeof(int));
    return pair;
}

/* The input ROUTER of a stage with producers on other nodes also listens
 * on tcp, as a CURVE server (or, insecure, through the handler anyway so
 * each connection is logged). The inproc endpoint is bound before, so
 * local producers need no handshake. */
static int s_bind_remote(sl_run_t *run, sl_runner_t *r, char *err,
                         size_t errlen)
{
    char ep[160], why[256];
    int erc = s_tcp_endpoint(run->topo, r->index, 1, ep, sizeof(ep), err,
                             errlen);
    if (erc)
        return erc;
    int rc = run->topo->insecure
                 ? sl__curve_insecure_server(r->in_sock, run->zap, why,
                                             sizeof(why))
                 : sl__curve_server(r->in_sock, run->keys, run->zap, why,
                                    sizeof(why));
    if (rc != 0) {
        s_err(err, errlen, "stage '%s': %s", r->spec->name, why);
        return rc;
    }
    /* a producer that reconnects (a new connection with its routing id,
     * while the old one may not look dead yet here) takes its link over */
    zmq_setsockopt(r->in_sock, ZMQ_ROUTER_HANDOVER, &(int){1}, sizeof(int));
    /* a peer that sends a message larger than any batch the stage takes
     * is cut off before the message is buffered whole */
    int64_t max_msg = (int64_t)sl__limits_max_message(&r->spec->limits);
    zmq_setsockopt(r->in_sock, ZMQ_MAXMSGSIZE, &max_msg, sizeof(max_msg));
    s_tcp_options(run->topo, r->in_sock);
    r->in_mon = s_monitor(run, r->in_sock, "in", r->index, 0,
                          ZMQ_EVENT_DISCONNECTED);
    if (!r->in_mon) {
        s_err(err, errlen, "stage '%s': cannot monitor its tcp input: %s",
              r->spec->name, zmq_strerror(errno));
        return -EIO;
    }
    if (zmq_bind(r->in_sock, ep) != 0) {
        s_err(err, errlen, "stage '%s': cannot bind %s (node '%s'): %s",
              r->spec->name, ep, run->topo->hosts[run->node].name,
              zmq_strerror(errno));
        return -EIO;
    }
    return 0;
}

static int s_setup_runner(sl_run_t *run, size_t i, char *err, size_t errlen)
{
    const sl_topology_t *topo = run->topo;
    sl_runner_t *r = &run->runners[i];
    const sl_topo_stage_t *s = &topo->stages[i];
    r->run = run;
    r->spec = s;
    r->desc = s->plugin->desc;
    r->index = i;
    if (s_elsewhere(run, i)) {
        r->remote = 1;
        r->efd = -1;
        pthread_mutex_init(&r->mu, NULL);
        pthread_cond_init(&r->cv, NULL);
        sl_prioq_init(&r->pq);
        atomic_store(&r->finished, 1);
        atomic_fetch_add(&run->n_finished, 1);
        return 0;
    }
    r->n_live = s->workers ? s->workers : 1;
    r->n_workers = s->workers_max > r->n_live ? s->workers_max : r->n_live;
    r->out_batch = s_out_batch(topo, s);
    r->efd = -1;
    pthread_mutex_init(&r->mu, NULL);
    sl_prioq_init(&r->pq);
    pthread_cond_init(&r->cv, NULL);
    snprintf(r->endpoint, sizeof(r->endpoint), "inproc://sluice-%lu-%zu",
             run->id, i);

    r->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (r->efd < 0) {
        s_err(err, errlen, "stage '%s': eventfd: %s", s->name, strerror(errno));
        return -errno;
    }
    if (s->n_inputs) {
        if (sl__credit_rx_init(&r->rx, s->queue, s->n_inputs) != 0) {
            s_err(err, errlen, "stage '%s': queue %u is smaller than its %zu inputs",
                  s->name, s->queue, s->n_inputs);
            return -EINVAL;
        }
        r->in_ident = calloc(s->n_inputs, sizeof(*r->in_ident));
        r->in_eos = calloc(s->n_inputs, sizeof(*r->in_eos));
        r->in_received = calloc(s->n_inputs, sizeof(*r->in_received));
        r->in_expected = calloc(s->n_inputs, sizeof(*r->in_expected));
        r->link_credit = calloc(s->n_inputs, sizeof(*r->link_credit));
        if (!r->in_ident || !r->in_eos || !r->in_received || !r->in_expected ||
            !r->link_credit)
            goto nomem;
        for (size_t l = 0; l < s->n_inputs; l++) {
            r->in_ident[l][0] = 'L';
            sl__put_u32((unsigned char *)r->in_ident[l] + 1, (uint32_t)l);
        }
        r->in_sock = s_socket(run, ZMQ_ROUTER);
        if (!r->in_sock || zmq_bind(r->in_sock, r->endpoint) != 0) {
            s_err(err, errlen, "stage '%s': cannot bind %s: %s", s->name,
                  r->endpoint, zmq_strerror(errno));
            return -EIO;
        }
        for (size_t l = 0; l < s->n_inputs; l++)
            if (s_elsewhere(run, s->inputs[l]))
                r->remote_in = 1;
        if (r->remote_in) {
            r->in_remote = calloc(s->n_inputs, sizeof(*r->in_remote));
            r->rrx = calloc(s->n_inputs, sizeof(*r->rrx));
            if (!r->in_remote || !r->rrx)
                goto nomem;
            for (size_t l = 0; l < s->n_inputs; l++)
                r->in_remote[l] = (uint8_t)s_elsewhere(run, s->inputs[l]);
            int rc = s_bind_remote(run, r, err, errlen);
            if (rc)
                return rc;
        }
    }
    if (s->n_outputs) {
        r->n_out = s->n_outputs;
        r->out_socks = calloc(r->n_out, sizeof(*r->out_socks));
        r->out_link = calloc(r->n_out, sizeof(*r->out_link));
        r->tx = calloc(r->n_out, sizeof(*r->tx));
        r->link_sent = calloc(r->n_out, sizeof(*r->link_sent));
        r->link_spilled = calloc(r->n_out, sizeof(*r->link_spilled));
        r->link_shed = calloc(r->n_out, sizeof(*r->link_shed));
        if (!r->out_socks || !r->out_link || !r->tx || !r->link_sent ||
            !r->link_spilled || !r->link_shed)
            goto nomem;
        for (size_t o = 0; o < r->n_out; o++) {
            const sl_topo_stage_t *c = &topo->stages[s->outputs[o]];
            for (size_t l = 0; l < c->n_inputs; l++)
                if (c->inputs[l] == i)
                    r->out_link[o] = (uint32_t)l;
        }
    }
    if (s->dl_path) {
        r->dl = sl__deadletter_open(s->dl_path, s->dl_format, err, errlen);
        if (!r->dl)
            return -EIO;
    }
    sl__retryq_init(&r->retries, sl_mono_ns() ^ ((uint64_t)i << 32));
    if (s->dl_stage >= 0) {
        const sl_topo_stage_t *c = &topo->stages[s->dl_stage];
        for (size_t l = 0; l < c->n_inputs; l++)
            if (c->inputs[l] == i)
                r->dl_link = (uint32_t)l;
        uint32_t share = c->queue / (uint32_t)c->n_inputs;
        r->dl_batch = s->batch < share ? s->batch : share;
        if (!r->dl_batch)
            r->dl_batch = 1;
    }
    int rc = sl__worker_init_all(r, err, errlen);
    if (rc == 0 && s->lane == SL_LANE_PROCESS) {
        if (r->desc->kind == SL_STAGE_SOURCE) {
            s_err(err, errlen, "stage '%s': lane: process is for transforms "
                  "and sinks; a source runs in the sluice process", s->name);
            return -EINVAL;
        }
        r->pp = sl__procpool_new(r, err, errlen);
        if (!r->pp)
            return -EIO;
    }
    return rc;
nomem:
    s_err(err, errlen, "out of memory");
    return -ENOMEM;
}

/* An output link to a consumer on another node: a CURVE client (unless
 * insecure) that sends nothing before the connection is up (so HELLO waits
 * for it), watched by a monitor for a refused handshake. */
static int s_connect_remote(sl_run_t *run, sl_runner_t *r, size_t o,
                            char *err, size_t errlen)
{
    const sl_topology_t *topo = run->topo;
    size_t c = r->spec->outputs[o];
    void *s = r->out_socks[o];
    char ep[160], why[256];
    const sl_topo_host_t *h = &topo->hosts[topo->stages[c].host];
    if (!topo->insecure &&
        sl__curve_client(s, run->keys, h->key, why, sizeof(why)) != 0) {
        s_err(err, errlen, "stage '%s': link to '%s' on node '%s': %s",
              r->spec->name, topo->stages[c].name, h->name, why);
        return -EINVAL;
    }
    int one = 1, linger = SL_REMOTE_LINGER_MS;
    zmq_setsockopt(s, ZMQ_IMMEDIATE, &one, sizeof(one));
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof(linger));
    s_tcp_options(topo, s);
    r->out_mon[o] = s_monitor(run, s, "out", r->index, o,
                              ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |
                                  ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                                  ZMQ_EVENT_DISCONNECTED);
    if (!r->out_mon[o]) {
        s_err(err, errlen, "stage '%s': cannot monitor the link to '%s': %s",
              r->spec->name, topo->stages[c].name, zmq_strerror(errno));
        return -EIO;
    }
    /* Unacknowledged batches are kept for a re-send: up to four times
     * what the consumer can hold (it acknowledges once its own output is
     * safe, so a window of one queue would halve the throughput). */
    uint32_t q = topo->stages[c].queue;
    uint32_t window = q > UINT32_MAX / 4 ? UINT32_MAX : 4 * q;
    if (window < 2 * r->out_batch)
        window = 2 * r->out_batch;
    sl__rtx_init(&r->rtx[o], window);
    int erc = s_tcp_endpoint(topo, c, 0, ep, sizeof(ep), err, errlen);
    if (erc)
        return erc;
    if (zmq_connect(s, ep) != 0) {
        s_err(err, errlen, "stage '%s': cannot connect to %s ('%s' on node "
              "'%s'): %s", r->spec->name, ep, topo->stages[c].name, h->name,
              zmq_strerror(errno));
        return -EIO;
    }
    r->out_remote[o] = 1;
    return 0;
}

/* Consumers bind in s_setup_runner; producers connect once all are bound. */
static int s_connect_outputs(sl_run_t *run, size_t i, char *err, size_t errlen)
{
    sl_runner_t *r = &run->runners[i];
    if (r->remote)
        return 0;
    int any_remote = 0;
    for (size_t o = 0; o < r->n_out; o++)
        any_remote |= s_elsewhere(run, r->spec->outputs[o]);
    if (any_remote) {
        r->out_remote = calloc(r->n_out, sizeof(*r->out_remote));
        r->out_mon = calloc(r->n_out, sizeof(*r->out_mon));
        r->hello_due = calloc(r->n_out, sizeof(*r->hello_due));
        r->rtx = calloc(r->n_out, sizeof(*r->rtx));
        if (!r->out_remote || !r->out_mon || !r->hello_due || !r->rtx) {
            s_err(err, errlen, "out of memory");
            return -ENOMEM;
        }
    }
    if (r->spec->dl_stage >= 0) {
        sl_runner_t *c = &run->runners[r->spec->dl_stage];
        void *s = s_socket(run, ZMQ_DEALER);
        if (!s) {
            s_err(err, errlen, "zmq_socket: %s", zmq_strerror(errno));
            return -EIO;
        }
        r->dl_sock = s;
        char ident[5];
        ident[0] = 'L';
        sl__put_u32((unsigned char *)ident + 1, r->dl_link);
        zmq_setsockopt(s, ZMQ_ROUTING_ID, ident, sizeof(ident));
        if (zmq_connect(s, c->endpoint) != 0) {
            s_err(err, errlen, "stage '%s': cannot connect to %s: %s",
                  r->spec->name, c->endpoint, zmq_strerror(errno));
            return -EIO;
        }
    }
    for (size_t o = 0; o < r->n_out; o++) {
        sl_runner_t *c = &run->runners[r->spec->outputs[o]];
        void *s = s_socket(run, ZMQ_DEALER);
        if (!s) {
            s_err(err, errlen, "zmq_socket: %s", zmq_strerror(errno));
            return -EIO;
        }
        r->out_socks[o] = s;
        char ident[5];
        ident[0] = 'L';
        sl__put_u32((unsigned char *)ident + 1, r->out_link[o]);
        zmq_setsockopt(s, ZMQ_ROUTING_ID, ident, sizeof(ident));
        if (c->remote) {
            int rc = s_connect_remote(run, r, o, err, errlen);
            if (rc)
                return rc;
            continue;
        }
        if (zmq_connect(s, c->endpoint) != 0) {
            s_err(err, errlen, "stage '%s': cannot connect to %s: %s",
                  r->spec->name, c->endpoint, zmq_strerror(errno));
            return -EIO;
        }
    }
    return 0;
}

/* A stage acknowledges a batch from another node once what it became is
 * safe. Inside the node that means: at a sink, or acknowledged by the
 * next stage, which in turn waits for its own outputs. So acknowledgements
 * run down every local link from a stage with input from another node
 * (its "zone"), and a node killed while a later stage of it held records
 * gets them again from the node before. */
static int s_ack_chain(sl_run_t *run, char *err, size_t errlen)
{
    size_t n = run->n_runners;
    if (run->node < 0 || !n)
        return 0;
    uint8_t *zone = calloc(n, 1);
    if (!zone)
        goto nomem;
    for (int changed = 1; changed;) {
        changed = 0;
        for (size_t i = 0; i < n; i++) {
            const sl_topo_stage_t *s = run->runners[i].spec;
            if (run->runners[i].remote || zone[i])
                continue;
            for (size_t l = 0; l < s->n_inputs && !zone[i]; l++)
                if (s_elsewhere(run, s->inputs[l]) || zone[s->inputs[l]])
                    zone[i] = changed = 1;
        }
    }
    for (size_t i = 0; i < n; i++) {
        sl_runner_t *r = &run->runners[i];
        if (!zone[i])
            continue;
        size_t n_in = r->spec->n_inputs;
        r->in_acked = calloc(n_in, 1);
        if (!r->rrx)
            r->rrx = calloc(n_in, sizeof(*r->rrx));
        r->out_acked = calloc(r->n_out ? r->n_out : 1, 1);
        if (!r->rtx)
            r->rtx = calloc(r->n_out ? r->n_out : 1, sizeof(*r->rtx));
        if (!r->in_acked || !r->rrx || !r->out_acked || !r->rtx)
            goto nomem;
        for (size_t l = 0; l < n_in; l++) {
            size_t up = r->spec->inputs[l];
            r->in_acked[l] = s_elsewhere(run, up) || zone[up];
            if (r->in_acked[l] && !s_elsewhere(run, up)) {
                /* inside the process: always "connected", same session */
                r->rrx[l].synced = 1;
                r->rrx[l].session = run->session;
            }
        }
        for (size_t o = 0; o < r->n_out; o++) {
            r->out_acked[o] = 1; /* a local consumer is in the zone too */
            if (!r->out_remote || !r->out_remote[o])
                sl__rtx_init(&r->rtx[o], 1); /* only counts batches */
        }
    }
    free(zone);
    return 0;
nomem:
    free(zone);
    s_err(err, errlen, "out of memory");
    return -ENOMEM;
}

/* This node's key pair and the ZAP handler, before any socket: the
 * handler must run before a CURVE server socket exists. */
static int s_node_security(sl_run_t *run, char *err, size_t errlen)
{
    const sl_topology_t *topo = run->topo;
    const sl_topo_host_t *me = &topo->hosts[run->node];
    char why[512];
    int serves = 0;
    for (size_t i = 0; i < topo->n_stages; i++) {
        const sl_topo_stage_t *s = &topo->stages[i];
        if (s->host != run->node)
            continue;
        for (size_t l = 0; l < s->n_inputs; l++)
            serves |= topo->stages[s->inputs[l]].host != run->node;
    }
    if (!topo->insecure) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s.key", topo->keys_dir, me->name);
        if (!(run->keys = calloc(1, sizeof(*run->keys)))) {
            s_err(err, errlen, "out of memory");
            return -ENOMEM;
        }
        int rc = sl__curve_load_secret(path, run->keys, NULL, why, sizeof(why));
        if (rc) {
            s_err(err, errlen, "node '%s': %s", me->name, why);
            return rc;
        }
        if (me->key[0] && strcmp(me->key, run->keys->public_key) != 0) {
            s_err(err, errlen, "node '%s': %s holds public key %s, but the "
                  "topology gives this node %s", me->name, path,
                  run->keys->public_key, me->key);
            return -EINVAL;
        }
    }
    if (!serves)
        return 0;
    run->zap = sl__zap_new(topo->insecure ? SL_ZAP_INSECURE : 0);
    if (!run->zap) {
        s_err(err, errlen, "out of memory");
        return -ENOMEM;
    }
    for (size_t k = 0; k < topo->n_hosts; k++) {
        if (!topo->hosts[k].key[0])
            continue;
        int rc = sl__zap_allow(run->zap, topo->hosts[k].name,
                               topo->hosts[k].key, why, sizeof(why));
        if (rc) {
            s_err(err, errlen, "node '%s': %s", me->name, why);
            return rc;
        }
    }
    int rc = sl__zap_start(run->zap, run->zctx, why, sizeof(why));
    if (rc)
        s_err(err, errlen, "node '%s': %s", me->name, why);
    return rc;
}

sl_run_t *sl__run_new(const sl_topology_t *topo, char *err, size_t errlen)
{
    return sl__run_new_node(topo, topo->run_node, err, errlen);
}

sl_run_t *sl__run_new_node(const sl_topology_t *topo, long node, char *err,
                           size_t errlen)
{
    if (node >= 0 && (size_t)node >= topo->n_hosts) {
        s_err(err, errlen, "no such node");
        return NULL;
    }
    sl_run_t *run = calloc(1, sizeof(*run));
    if (!run) {
        s_err(err, errlen, "out of memory");
        return NULL;
    }
    run->topo = topo;
    run->node = node;
    pthread_mutex_init(&run->spill_mu, NULL);
    run->id = atomic_fetch_add(&s_run_ids, 1) + 1;
    run->id = run->id * 100000ul + (unsigned long)getpid() % 100000ul;
    if (getrandom(&run->session, sizeof(run->session), 0) !=
        (ssize_t)sizeof(run->session))
        run->session = sl_now_ns() ^ ((uint64_t)getpid() << 32);
    run->session |= 1; /* 0 means none */
    run->zctx = zmq_ctx_new();
    run->runners = calloc(topo->n_stages, sizeof(*run->runners));
    if (run->zctx)
        run->taps = sl__taps_new(topo, run->zctx);
    if (!run->zctx || !run->runners || !run->taps) {
        s_err(err, errlen, "out of memory");
        goto fail;
    }
    run->n_runners = topo->n_stages;
    if (node >= 0 && topo->insecure)
        sl__log(SL_LOG_WARN, NULL, -1, "INSECURE: node '%s' links to other "
                "nodes over plain tcp (insecure: true): anyone who can reach "
                "its ports can read and inject records", topo->hosts[node].name);
    if (node >= 0 && s_node_security(run, err, errlen) != 0)
        goto fail;
    int ck_failed;
    run->ckpt = sl__ckpt_new(topo, &ck_failed, err, errlen);
    if (ck_failed)
        goto fail;
    run->positions_on = run->ckpt != NULL;
    if (topo->n_resources) {
        uint32_t limits[topo->n_resources];
        for (size_t k = 0; k < topo->n_resources; k++)
            limits[k] = topo->resources[k].limit;
        run->resources = sl__resources_new(limits, topo->n_resources, err,
                                           errlen);
        if (!run->resources)
            goto fail;
    }
    for (size_t i = 0; i < topo->n_stages; i++)
        if (s_setup_runner(run, i, err, errlen) != 0)
            goto fail;
    for (size_t i = 0; i < topo->n_stages; i++)
        if (s_connect_outputs(run, i, err, errlen) != 0)
            goto fail;
    if (s_ack_chain(run, err, errlen) != 0)
        goto fail;
    return run;
fail:
    sl__run_destroy(&run);
    return NULL;
}

int sl__run_start(sl_run_t *run)
{
    run->t_start = sl_mono_ns();
    for (size_t i = 0; i < run->n_runners; i++) {
        sl_runner_t *r = &run->runners[i];
        if (r->remote)
            continue;
        int rc = sl__worker_start_all(r);
        if (rc == 0) {
            rc = -pthread_create(&r->dispatcher, NULL, sl__dispatcher_main, r);
            if (rc == 0) {
                r->dispatcher_started = 1;
                char name[16];
                snprintf(name, sizeof(name), "d:%.13s", r->spec->name);
                pthread_setname_np(r->dispatcher, name);
            }
        }
        if (rc) {
            sl__log(SL_LOG_ERROR, r->spec->name, -1, "cannot start threads: %s",
                    strerror(-rc));
            sl__run_abort(run);
            return rc;
        }
    }
    return 0;
}

int sl__run_wait(sl_run_t *run)
{
    for (size_t i = 0; i < run->n_runners; i++) {
        sl_runner_t *r = &run->runners[i];
        if (r->dispatcher_started) {
            pthread_join(r->dispatcher, NULL);
            r->dispatcher_started = 0;
        }
    }
    for (size_t i = 0; i < run->n_runners; i++)
        sl__worker_join_all(&run->runners[i]);
    sl__taps_close(run->taps); /* nothing more crosses a link */
    if (!atomic_load(&run->t_end))
        atomic_store(&run->t_end, sl_mono_ns());
    int failed = atomic_load(&run->failed) || atomic_load(&run->aborting);
    for (size_t i = 0; i < run->n_runners; i++)
        failed |= atomic_load(&run->runners[i].failed);
    return failed ? -ECANCELED : 0;
}

void sl__run_stop(sl_run_t *run)
{
    atomic_store(&run->stopping, 1);
}

static void s_wake_all(sl_run_t *run)
{
    for (size_t i = 0; i < run->n_runners; i++) {
        sl_runner_t *r = &run->runners[i];
        pthread_mutex_lock(&r->mu);
        pthread_cond_broadcast(&r->cv);
        pthread_mutex_unlock(&r->mu);
        if (r->efd >= 0) {
            uint64_t one = 1;
            ssize_t w = write(r->efd, &one, sizeof(one));
            (void)w;
        }
    }
}

void sl__run_spill(sl_run_t *run)
{
    atomic_store(&run->stopping, 1);
    atomic_store(&run->spilling, 1);
    s_wake_all(run);
}

void sl__run_abort(sl_run_t *run)
{
    atomic_store(&run->stopping, 1);
    atomic_store(&run->aborting, 1);
    if (run->resources) /* waiters for a shared limit give up now */
        sl__resources_close(run->resources);
    for (size_t i = 0; i < run->n_runners; i++) {
        sl_runner_t *r = &run->runners[i];
        pthread_mutex_lock(&r->mu);
        r->stop = 1;
        pthread_cond_broadcast(&r->cv);
        pthread_mutex_unlock(&r->mu);
        if (r->efd >= 0) { /* a sleeping dispatcher sees the abort now */
            uint64_t one = 1;
            ssize_t w = write(r->efd, &one, sizeof(one));
            (void)w;
        }
    }
}

static void s_runner_fini(sl_runner_t *r)
{
    if (!r->run)
        return;
    sl__procpool_destroy(&r->pp);
    sl__worker_fini_all(r);
    sl__deadletter_close(&r->dl);
    sl_prioq_drain(&r->pq, sl__work_free_cb, NULL);
    sl_prioq_fini(&r->pq);
    for (sl_done_t *lists[2] = {r->done_head, r->pend_head}, **l = lists;
         l < lists + 2; l++)
        while (*l) {
            sl_done_t *d = *l;
            *l = d->next;
            sl__done_free(d);
        }
    sl__retryq_fini(&r->retries);
    free(r->marks);
    if (r->dl_sock)
        zmq_close(r->dl_sock);
    if (r->in_sock)
        zmq_close(r->in_sock);
    for (size_t o = 0; o < r->n_out; o++) {
        if (r->out_socks && r->out_socks[o])
            zmq_close(r->out_socks[o]);
        if (r->out_mon && r->out_mon[o])
            zmq_close(r->out_mon[o]);
    }
    for (size_t o = 0; r->rtx && o < r->n_out; o++)
        sl__rtx_fini(&r->rtx[o]);
    free(r->rtx);
    free(r->rrx);
    free(r->in_remote);
    free(r->in_acked);
    free(r->out_acked);
    free(r->ackw);
    if (r->in_mon)
        zmq_close(r->in_mon);
    free(r->out_remote);
    free(r->out_mon);
    free(r->hello_due);
    if (r->efd >= 0)
        close(r->efd);
    sl__credit_rx_fini(&r->rx);
    free(r->in_ident);
    free(r->in_eos);
    free(r->in_received);
    free(r->in_expected);
    free((void *)r->link_credit);
    free(r->out_socks);
    free(r->out_link);
    free(r->tx);
    free(r->link_sent);
    free(r->link_spilled);
    free(r->link_shed);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
}

void sl__run_destroy(sl_run_t **runp)
{
    sl_run_t *run = runp ? *runp : NULL;
    if (!run)
        return;
    int started = 0;
    for (size_t i = 0; i < run->n_runners; i++)
        started |= run->runners[i].dispatcher_started;
    if (started) {
        sl__run_abort(run);
        sl__run_wait(run);
    }
    for (size_t i = 0; i < run->n_runners; i++) {
        sl__worker_join_all(&run->runners[i]);
        s_runner_fini(&run->runners[i]);
    }
    free(run->runners);
    sl__zap_destroy(&run->zap); /* after the server sockets, before term */
    if (run->keys)
        explicit_bzero(run->keys, sizeof(*run->keys));
    free(run->keys);
    sl__resources_destroy(&run->resources);
    sl__spill_close(run);
    sl__ckpt_destroy(&run->ckpt);
    sl__taps_destroy(&run->taps); /* its sockets, before the context */
    pthread_mutex_destroy(&run->spill_mu);
    if (run->zctx)
        zmq_ctx_term(run->zctx);
    free(run);
    *runp = NULL;
}

int sl__run_commit_positions(sl_run_t *run)
{
    int rc = 0;
    if (!run->ckpt || atomic_load(&run->no_commit))
        return 0;
    for (size_t i = 0; i < run->n_runners; i++) {
        sl_runner_t *r = &run->runners[i];
        if (r->desc->kind != SL_STAGE_SOURCE || !r->workers)
            continue;
        for (unsigned w = 0; w < r->n_workers; w++) {
            sl_ctx_t *ctx = &r->workers[w].ctx;
            if (!r->workers[w].ctx_ready || !ctx->pos)
                continue;
            int wrc = sl__ckpt_commit(run->ckpt, i, w, ctx->pos, ctx->pos_len);
            if (wrc)
                rc = wrc;
        }
    }
    return rc;
}

void sl__run_stage_hists(sl_run_t *run, size_t stage, sl_stage_hists_t *out)
{
    sl_runner_t *r = &run->runners[stage];
    sl__hist_init(&out->handler);
    sl__hist_init(&out->latency);
    for (unsigned i = 0; r->workers && i < r->n_workers; i++) {
        sl_worker_t *w = &r->workers[i];
        pthread_mutex_lock(&w->hist_mu);
        sl__hist_merge(&out->handler, &w->handler);
        sl__hist_merge(&out->latency, &w->latency);
        pthread_mutex_unlock(&w->hist_mu);
    }
}

uint32_t sl__run_link_credit(sl_run_t *run, size_t stage, size_t link)
{
    sl_runner_t *r = &run->runners[stage];
    if (!r->link_credit || link >= r->spec->n_inputs)
        return 0;
    return atomic_load_explicit(&r->link_credit[link], RELAXED);
}

int sl__run_link_remote(sl_run_t *run, size_t stage, size_t link,
                        sl_link_remote_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    sl_runner_t *c = &run->runners[stage];
    if (run->node < 0 || link >= c->spec->n_inputs)
        return 0;
    size_t up = c->spec->inputs[link];
    sl_runner_t *p = &run->runners[up];
    if (c->in_remote && c->in_remote[link]) { /* this node consumes */
        out->dups = atomic_load(&c->rrx[link].dups);
        uint64_t sessions = atomic_load(&c->rrx[link].sessions);
        out->peer_restarts = sessions ? sessions - 1 : 0;
        return 1;
    }
    for (size_t o = 0; p->rtx && o < p->n_out; o++)
        if (p->out_remote[o] && p->spec->outputs[o] == stage) {
            out->losses = atomic_load(&p->rtx[o].losses);
            out->resent = atomic_load(&p->rtx[o].resent);
            out->peer_restarts = atomic_load(&p->rtx[o].restarts);
            return 1;
        }
    return 0;
}

/* What a link to another node went through, if anything. */
static void s_print_remote(FILE *f, const sl_rtx_t *t, const char *node)
{
    uint64_t lost = atomic_load(&t->losses);
    uint64_t restarts = atomic_load(&t->restarts);
    uint64_t again = atomic_load(&t->resent);
    if (lost)
        fprintf(f, "  connection lost %" PRIu64 " time%s\n", lost,
                lost == 1 ? "" : "s");
    if (restarts)
        fprintf(f, "  node '%s' restarted %" PRIu64 " time%s\n", node,
                restarts, restarts == 1 ? "" : "s");
    if (again)
        fprintf(f, "  %" PRIu64 " record%s sent again%s\n", again,
                again == 1 ? "" : "s", restarts ? " (at-least-once: those "
                "the node had passed on before it stopped reach the sinks "
                "twice)" : "");
}

void sl__run_print_links(sl_run_t *run, FILE *f)
{
    const sl_topology_t *topo = run->topo;
    if (run->node < 0)
        return;
    for (size_t i = 0; i < run->n_runners; i++) {
        sl_runner_t *r = &run->runners[i];
        if (r->remote)
            continue;
        /* both only written by the dispatcher, which has ended */
        for (size_t o = 0; r->out_remote && o < r->n_out; o++) {
            if (!r->out_remote[o])
                continue;
            const sl_topo_stage_t *c = &topo->stages[r->spec->outputs[o]];
            fprintf(f, "link '%s' -> '%s' (node '%s' -> '%s'): sent %" PRIu64
                    "\n", r->spec->name, c->name, topo->hosts[run->node].name,
                    topo->hosts[c->host].name, r->link_sent[o]);
            s_print_remote(f, &r->rtx[o], topo->hosts[c->host].name);
        }
        for (size_t l = 0; r->remote_in && l < r->spec->n_inputs; l++) {
            const sl_topo_stage_t *u = &topo->stages[r->spec->inputs[l]];
            if (u->host == run->node)
                continue;
            fprintf(f, "link '%s' -> '%s' (node '%s' -> '%s'): received %"
                    PRIu64 "%s\n", u->name, r->spec->name,
                    topo->hosts[u->host].name, topo->hosts[run->node].name,
                    r->in_received[l], r->in_eos[l] ? "" : ", no end-of-stream");
            const sl_rrx_t *x = &r->rrx[l];
            uint64_t dups = atomic_load(&x->dups);
            uint64_t restarts = atomic_load(&x->sessions);
            restarts = restarts ? restarts - 1 : 0;
            if (restarts)
                fprintf(f, "  node '%s' restarted %" PRIu64 " time%s\n",
                        topo->hosts[u->host].name, restarts,
                        restarts == 1 ? "" : "s");
            if (dups)
                fprintf(f, "  %" PRIu64 " record%s received twice after a "
                        "reconnect, dropped\n", dups, dups == 1 ? "" : "s");
        }
    }
}

double sl__run_elapsed_s(sl_run_t *run)
{
    uint64_t end = atomic_load(&run->t_end);
    if (!end)
        end = sl_mono_ns();
    return run->t_start ? (double)(end - run->t_start) / 1e9 : 0.0;
}

void sl__run_stats(sl_run_t *run, size_t stage, sl_stage_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    sl_runner_t *r = &run->runners[stage];
    out->capacity = r->spec->queue;
    out->workers = r->n_live;
    out->grows = atomic_load_explicit(&r->grows, RELAXED);
    out->shrinks = atomic_load_explicit(&r->shrinks, RELAXED);
    uint64_t busy_ns = 0;
    for (unsigned i = 0; i < r->n_workers; i++) {
        sl_worker_stats_t *w = &r->workers[i].stats;
        out->read += atomic_load_explicit(&w->read, RELAXED);
        out->in += atomic_load_explicit(&w->in, RELAXED);
        out->out += atomic_load_explicit(&w->emitted, RELAXED);
        out->ok += atomic_load_explicit(&w->ok, RELAXED);
        out->filtered += atomic_load_explicit(&w->filtered, RELAXED);
        out->errors += atomic_load_explicit(&w->errors, RELAXED);
        out->retried += atomic_load_explicit(&w->retried, RELAXED);
        out->slow_calls += atomic_load_explicit(&w->slow, RELAXED);
        busy_ns += atomic_load_explicit(&w->busy_ns, RELAXED);
        out->busy += (unsigned)atomic_load_explicit(&w->busy, RELAXED);
    }
    out->busy_s = (double)busy_ns / 1e9;
    out->in += atomic_load_explicit(&r->in_direct, RELAXED);
    out->backpressure_ns = atomic_load_explicit(&r->bp_ns, RELAXED);
    uint64_t since = atomic_load_explicit(&r->bp_since, RELAXED);
    uint64_t now = sl_mono_ns();
    if (since && now > since)
        out->backpressure_ns += now - since;
    out->lag_ns_max = atomic_load_explicit(&r->lag_max, RELAXED);
    out->spilled_in = atomic_load_explicit(&r->spilled_in, RELAXED);
    out->restarts = atomic_load_explicit(&r->restarts, RELAXED);
    out->redelivered = atomic_load_explicit(&r->redelivered, RELAXED);
    out->held = atomic_load_explicit(&r->held_now, RELAXED);
    out->held_max = atomic_load_explicit(&r->held_max, RELAXED);
    out->finished = atomic_load(&r->finished);
    if (out->finished) {
        /* only the dispatcher writes these, and it has ended */
        for (size_t o = 0; o < r->n_out; o++) {
            out->sent += r->link_sent[o];
            out->spilled_out += r->link_spilled[o];
            out->shed += r->link_shed[o];
        }
        out->spilled_out += r->dl_spilled;
        if (r->desc->kind == SL_STAGE_SINK) {
            sl_hist_t *h = malloc(sizeof(*h));
            if (h) {
                sl__hist_init(h);
                for (unsigned i = 0; i < r->n_workers; i++) {
                    pthread_mutex_lock(&r->workers[i].hist_mu);
                    sl__hist_merge(h, &r->workers[i].latency);
                    pthread_mutex_unlock(&r->workers[i].hist_mu);
                }
                out->lat_count = h->count;
                out->lat_p50 = sl__hist_quantile(h, 0.50);
                out->lat_p90 = sl__hist_quantile(h, 0.90);
                out->lat_p99 = sl__hist_quantile(h, 0.99);
                out->lat_max = h->max;
                free(h);
            }
        }
    }
}
