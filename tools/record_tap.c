/* `sluice record --from ADDR --link A>B`: a tap on a running run's link.
 *
 * The recorder binds a ZeroMQ PULL socket and asks the run's metrics
 * server for a tap (POST /tap?link=A>B&endpoint=EP, answered 201 with the
 * tap's id). The run then PUSHes, without ever blocking (it counts what it
 * drops): first {"tap": id, "link": "A>B", "topology": NAME}, then per
 * batch crossing the link a message of concatenated [wall_ns, record]
 * arrays, and last {"end": true, "dropped": N} when the tap is removed
 * (DELETE /tap/ID) or the run ends. Messages are checked like any input
 * from outside: every length against the bytes at hand. */
#include "cmd_record.h"

#include "cli.h"
#include "mpscan.h"
#include "trace.h"

#include <sluice/stage.h>

#include <curl/curl.h>
#include <zmq.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_POLL_MS 100
/* The run's first message must come within this, or the tap is dead. */
#define S_HELLO_NS 5000000000ull
/* After DELETE, how long the end message (with the drop count) may take. */
#define S_END_NS 3000000000ull
#define S_BODY_MAX 4096

typedef struct s_tap {
    const sl_rec_opts_t *o;
    sl_rec_result_t *res;
    CURL *curl;
    char base[512];    /* http://host:port */
    char local_ip[64]; /* this end of the HTTP connection */
    char body[S_BODY_MAX];
    size_t body_len;
    char cerr[CURL_ERROR_SIZE];
    void *zctx, *pull;
    char endpoint[256];
    char id[64];
    int hello;
    int ended;         /* the run's end message came */
    int have_first;
    uint64_t first_wall;
    uint64_t prev;
    sl_trace_writer_t *w;
    int wfailed;
} s_tap_t;

/* ---- HTTP ------------------------------------------------------------------ */

static size_t s_on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    s_tap_t *t = arg;
    size_t n = size * nmemb, room = S_BODY_MAX - 1 - t->body_len;
    memcpy(t->body + t->body_len, data, n < room ? n : room);
    t->body_len += n < room ? n : room;
    t->body[t->body_len] = '\0';
    return n;
}

/* host:port, :port, port, or an http:// URL (its path is ignored). */
static int s_base(s_tap_t *t, const char *addr)
{
    int n;
    if (!strncmp(addr, "http://", 7)) {
        const char *slash = strchr(addr + 7, '/');
        n = snprintf(t->base, sizeof(t->base), "%.*s",
                     (int)(slash ? slash - addr : (long)strlen(addr)), addr);
    } else if (addr[0] == ':') {
        n = snprintf(t->base, sizeof(t->base), "http://127.0.0.1%s", addr);
    } else if (*addr && strspn(addr, "0123456789") == strlen(addr)) {
        n = snprintf(t->base, sizeof(t->base), "http://127.0.0.1:%s", addr);
    } else if (*addr && !strstr(addr, "://") && !strpbrk(addr, " /\t")) {
        n = snprintf(t->base, sizeof(t->base), "http://%s", addr);
    } else {
        fprintf(stderr, "sluice record: bad --from '%s': expected host:port "
                        "or an http:// URL\n", addr);
        return -EINVAL;
    }
    if (n < 0 || (size_t)n >= sizeof(t->base)) {
        fprintf(stderr, "sluice record: --from is too long\n");
        return -EINVAL;
    }
    return 0;
}

/* One request; returns the HTTP status, or -1 (reason printed) if there
 * was no answer. */
static long s_http(s_tap_t *t, const char *method, const char *path,
                   int quiet)
{
    char url[2048];
    snprintf(url, sizeof(url), "%s%s", t->base, path);
    curl_easy_reset(t->curl);
    t->body_len = 0;
    t->body[0] = '\0';
    t->cerr[0] = '\0';
    curl_easy_setopt(t->curl, CURLOPT_URL, url);
    curl_easy_setopt(t->curl, CURLOPT_WRITEFUNCTION, s_on_body);
    curl_easy_setopt(t->curl, CURLOPT_WRITEDATA, t);
    curl_easy_setopt(t->curl, CURLOPT_ERRORBUFFER, t->cerr);
    curl_easy_setopt(t->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(t->curl, CURLOPT_CONNECTTIMEOUT_MS, 3000L);
    curl_easy_setopt(t->curl, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(t->curl, CURLOPT_USERAGENT, "sluice-record");
    if (!strcmp(method, "POST")) {
        curl_easy_setopt(t->curl, CURLOPT_POST, 1L);
        curl_easy_setopt(t->curl, CURLOPT_POSTFIELDS, "");
        curl_easy_setopt(t->curl, CURLOPT_POSTFIELDSIZE, 0L);
    } else if (strcmp(method, "GET")) {
        curl_easy_setopt(t->curl, CURLOPT_CUSTOMREQUEST, method);
    }
    CURLcode c = curl_easy_perform(t->curl);
    if (c != CURLE_OK) {
        if (!quiet)
            fprintf(stderr, "sluice record: cannot reach %s: %s\n", url,
                    t->cerr[0] ? t->cerr : curl_easy_strerror(c));
        return -1;
    }
    long code = 0;
    curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &code);
    char *ip = NULL;
    if (curl_easy_getinfo(t->curl, CURLINFO_LOCAL_IP, &ip) == CURLE_OK && ip)
        snprintf(t->local_ip, sizeof(t->local_ip), "%s", ip);
    return code;
}

/* The body, trimmed, for messages. */
static const char *s_said(s_tap_t *t)
{
    while (t->body_len && (t->body[t->body_len - 1] == '\n' ||
                           t->body[t->body_len - 1] == '\r'))
        t->body[--t->body_len] = '\0';
    return t->body_len ? t->body : "(no reason given)";
}

static int s_attach(s_tap_t *t)
{
    /* A first request finds the run, and the address the run reaches us
     * on: the one our end of this connection has. */
    if (s_http(t, "GET", "/", 0) < 0)
        return -EIO;
    char bind_ep[128];
    int v6 = strchr(t->local_ip, ':') != NULL;
    snprintf(bind_ep, sizeof(bind_ep), v6 ? "tcp://[%s]:*" : "tcp://%s:*",
             t->local_ip[0] ? t->local_ip : "127.0.0.1");
    if (v6) {
        int one = 1;
        zmq_setsockopt(t->pull, ZMQ_IPV6, &one, sizeof(one));
    }
    size_t len = sizeof(t->endpoint);
    if (zmq_bind(t->pull, bind_ep) != 0 ||
        zmq_getsockopt(t->pull, ZMQ_LAST_ENDPOINT, t->endpoint, &len) != 0) {
        fprintf(stderr, "sluice record: cannot listen on %s: %s\n", bind_ep,
                zmq_strerror(zmq_errno()));
        return -EIO;
    }
    char *link = curl_easy_escape(t->curl, t->o->link, 0);
    char *ep = curl_easy_escape(t->curl, t->endpoint, 0);
    char path[1024];
    if (link && ep)
        snprintf(path, sizeof(path), "/tap?link=%s&endpoint=%s", link, ep);
    curl_free(link);
    curl_free(ep);
    if (!link || !ep)
        return -ENOMEM;
    long code = s_http(t, "POST", path, 0);
    if (code < 0)
        return -EIO;
    if (code != 201) {
        fprintf(stderr, "sluice record: %s refused the tap on '%s' (HTTP "
                        "%ld): %s\n", t->base, t->o->link, code, s_said(t));
        if (code == 404 || code == 405)
            fprintf(stderr, "sluice record: (is it a `sluice run --metrics` "
                            "of a sluice that has taps, and is the link "
                            "FROM>TO between two stages of it?)\n");
        return -EIO;
    }
    size_t n = strspn(t->body, "0123456789abcdefABCDEF-_");
    if (n == 0 || n >= sizeof(t->id)) {
        fprintf(stderr, "sluice record: %s answered the tap with no id: "
                        "'%s'\n", t->base, s_said(t));
        return -EIO;
    }
    memcpy(t->id, t->body, n);
    t->id[n] = '\0';
    return 0;
}

static void s_detach(s_tap_t *t)
{
    if (!t->id[0] || t->ended)
        return;
    char path[128];
    snprintf(path, sizeof(path), "/tap/%s", t->id);
    long code = s_http(t, "DELETE", path, 1);
    /* A run that has ended has taken its taps (and maybe its server)
     * with it: only a live refusal is worth a word. */
    if (code >= 300 && code != 404)
        fprintf(stderr, "sluice record: removing tap %s: HTTP %ld: %s\n",
                t->id, code, s_said(t));
}

/* ---- messages ---------------------------------------------------------------- */

/* The value under key in the msgpack map at p (whole, len bytes); NULL if
 * absent or the map is malformed. */
static const unsigned char *s_map_get(const unsigned char *p, size_t len,
                                      const char *key, sl_mp_head_t *vh)
{
    sl_mp_head_t m;
    size_t used;
    if (sl__mpscan_object(p, len, SL_MP_MAX_DEPTH, &used) ||
        sl__mpscan_head(p, len, &m) || m.kind != SL_MP_MAP)
        return NULL;
    size_t pos = m.hdr, kl = strlen(key);
    for (uint64_t i = 0; i < m.n; i++) {
        sl_mp_head_t k;
        size_t ku, vu;
        sl__mpscan_head(p + pos, len - pos, &k);
        sl__mpscan_object(p + pos, len - pos, SL_MP_MAX_DEPTH, &ku);
        int match = k.kind == SL_MP_STR && k.n == kl &&
                    !memcmp(p + pos + k.hdr, key, kl);
        pos += ku;
        if (match) {
            sl__mpscan_head(p + pos, len - pos, vh);
            return p + pos;
        }
        sl__mpscan_object(p + pos, len - pos, SL_MP_MAX_DEPTH, &vu);
        pos += vu;
    }
    return NULL;
}

static int s_open_trace(s_tap_t *t, const char *topology, size_t tlen)
{
    char origin[1024], err[1024];
    snprintf(origin, sizeof(origin), "link %s of %.*s at %s", t->o->link,
             (int)tlen, topology, t->base);
    t->w = sl_trace_writer_new(t->o->out, origin, err, sizeof(err));
    if (!t->w) {
        fprintf(stderr, "sluice record: %s\n", err);
        return -EIO;
    }
    return 0;
}

static int s_on_map(s_tap_t *t, const unsigned char *p, size_t len)
{
    sl_mp_head_t h;
    const unsigned char *v = s_map_get(p, len, "end", &h);
    if (v) {
        const unsigned char *d = s_map_get(p, len, "dropped", &h);
        if (d && h.kind == SL_MP_INT && !h.neg) {
            t->res->dropped = h.u;
            t->res->drops_known = 1;
        }
        t->ended = 1;
        return 0;
    }
    if (!s_map_get(p, len, "tap", &h)) {
        t->res->malformed++;
        return 0;
    }
    if (t->hello)
        return 0;
    t->hello = 1;
    const unsigned char *name = s_map_get(p, len, "topology", &h);
    if (!name || h.kind != SL_MP_STR)
        return s_open_trace(t, "?", 1);
    return s_open_trace(t, (const char *)name + h.hdr, (size_t)h.n);
}

/* One data message: [wall_ns, record] entries back to back. */
static int s_on_data(s_tap_t *t, const unsigned char *p, size_t len)
{
    if (!t->w && s_open_trace(t, "?", 1) < 0) /* no hello seen: keep going */
        return -EIO;
    size_t pos = 0;
    while (pos < len) {
        if (t->o->count && t->res->written >= t->o->count)
            return 0;
        sl_mp_head_t a, o, m;
        size_t used;
        if (sl__mpscan_head(p + pos, len - pos, &a) || a.kind != SL_MP_ARRAY ||
            a.n != 2 ||
            sl__mpscan_head(p + pos + a.hdr, len - pos - a.hdr, &o) ||
            o.kind != SL_MP_INT || o.neg) {
            t->res->malformed++;
            return 0; /* the rest of the message cannot be trusted */
        }
        size_t at = pos + a.hdr + o.hdr;
        if (sl__mpscan_head(p + at, len - at, &m) || m.kind != SL_MP_MAP ||
            sl__mpscan_object(p + at, len - at, SL_MP_MAX_DEPTH, &used)) {
            t->res->malformed++;
            return 0;
        }
        pos = at + used;
        if (!t->have_first) {
            t->have_first = 1;
            t->first_wall = o.u;
        }
        uint64_t off = t->prev;
        /* Batches from several workers may interleave a little. */
        if (o.u < t->first_wall || o.u - t->first_wall < t->prev)
            t->res->clamped++;
        else
            off = o.u - t->first_wall;
        int rc = sl_trace_write(t->w, off, p + at, used);
        if (rc == -EBADMSG) {
            t->res->malformed++;
            continue;
        }
        if (rc) {
            fprintf(stderr, "sluice record: cannot write %s: %s\n", t->o->out,
                    strerror(-rc));
            t->wfailed = 1;
            return rc;
        }
        t->prev = off;
        t->res->written++;
        t->res->span_ns = off;
    }
    return 0;
}

/* Takes every message waiting; data is written unless discard. */
static int s_receive(s_tap_t *t, int discard)
{
    for (;;) {
        zmq_msg_t msg;
        zmq_msg_init(&msg);
        if (zmq_msg_recv(&msg, t->pull, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&msg);
            return zmq_errno() == EAGAIN || zmq_errno() == EINTR ? 0 : -EIO;
        }
        const unsigned char *p = zmq_msg_data(&msg);
        size_t len = zmq_msg_size(&msg);
        sl_mp_head_t h;
        int rc = 0;
        if (len && sl__mpscan_head(p, len, &h) == 0 && h.kind == SL_MP_MAP)
            rc = s_on_map(t, p, len);
        else if (len && !discard)
            rc = s_on_data(t, p, len);
        zmq_msg_close(&msg);
        if (rc)
            return rc;
        if (t->ended)
            return 0;
    }
}

static int s_wait(s_tap_t *t, long ms)
{
    zmq_pollitem_t it = {.socket = t->pull, .events = ZMQ_POLLIN};
    int n = zmq_poll(&it, 1, ms);
    return n < 0 && zmq_errno() != EINTR ? -EIO : 0;
}

static int s_loop(s_tap_t *t)
{
    uint64_t start = sl_mono_ns();
    uint64_t until = t->o->duration_ns ? start + t->o->duration_ns : 0;
    for (;;) {
        if (s_wait(t, S_POLL_MS) < 0)
            return -EIO;
        int rc = s_receive(t, 0);
        if (rc)
            return rc;
        uint64_t now = sl_mono_ns();
        if (t->ended) {
            t->res->stopped_by = "the end of the run";
            return 0;
        }
        if (t->o->count && t->res->written >= t->o->count) {
            t->res->stopped_by = "count";
            return 0;
        }
        if (until && now >= until) {
            t->res->stopped_by = "duration";
            return 0;
        }
        if (sl__rec_stop) {
            t->res->stopped_by = "interrupted";
            return 0;
        }
        if (!t->hello && !t->w && now - start > S_HELLO_NS) {
            fprintf(stderr, "sluice record: the run accepted tap %s but "
                            "sent nothing to %s within 5 s (can it reach "
                            "this address?)\n", t->id, t->endpoint);
            return -ETIMEDOUT;
        }
    }
}

int sl__record_tap(const sl_rec_opts_t *o, sl_rec_result_t *res)
{
    s_tap_t t = {.o = o, .res = res};
    int code = SL_EXIT_FAILED;
    if (s_base(&t, o->from) < 0)
        return SL_EXIT_USAGE;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK ||
        !(t.curl = curl_easy_init())) {
        fprintf(stderr, "sluice record: cannot start libcurl\n");
        return SL_EXIT_FAILED;
    }
    t.zctx = zmq_ctx_new();
    t.pull = t.zctx ? zmq_socket(t.zctx, ZMQ_PULL) : NULL;
    if (!t.pull) {
        fprintf(stderr, "sluice record: cannot make a ZeroMQ socket\n");
        goto out;
    }
    /* Take all the run sends: it drops, never us. */
    int zero = 0;
    zmq_setsockopt(t.pull, ZMQ_RCVHWM, &zero, sizeof(zero));
    zmq_setsockopt(t.pull, ZMQ_LINGER, &zero, sizeof(zero));
    if (s_attach(&t) < 0)
        goto out;
    int rc = s_loop(&t);
    s_detach(&t);
    /* The end message carries the drop count: wait a little for it,
     * passing over data that came after the stop. */
    uint64_t until = sl_mono_ns() + S_END_NS;
    while (!t.ended && sl_mono_ns() < until && s_wait(&t, S_POLL_MS) == 0 &&
           s_receive(&t, 1) == 0)
        ;
    if (!t.w && !rc && s_open_trace(&t, "?", 1) < 0)
        rc = -EIO; /* nothing came: still leave an empty trace */
    int crc = sl_trace_writer_close(&t.w);
    if (crc && !t.wfailed)
        fprintf(stderr, "sluice record: cannot write %s: %s\n", o->out,
                strerror(-crc));
    if (!rc && !crc)
        code = SL_EXIT_OK;
out:
    sl_trace_writer_close(&t.w);
    if (t.pull)
        zmq_close(t.pull);
    if (t.zctx)
        zmq_ctx_term(t.zctx);
    curl_easy_cleanup(t.curl);
    curl_global_cleanup();
    return code;
}
