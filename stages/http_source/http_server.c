/* http_source: the HTTP side (libmicrohttpd callbacks and responses). */
#include "http_source.h"

#include <sluice/json.h>

#include <microhttpd.h>

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

/* A body read in pieces starts with this much room unless Content-Length
 * says how much is coming. */
#define HS_BODY_START 16384

typedef struct hs_req {
    hs_format_t format;
    int too_big;      /* over max_body: the rest is dropped, then 413 */
    uint64_t dropped; /* bytes dropped so far */
    char *body;
    size_t len, cap;
    /* A request refused on its headers: its body is read and dropped
     * before the answer, since closing on a client that is still sending
     * makes the kernel reset the connection, and the client would see
     * that instead of the answer. */
    unsigned refuse; /* HTTP status, or 0 */
    hs_outcome_t outcome;
    char why[300];
} hs_req_t;

/* ---- responses ----------------------------------------------------------- */

static enum MHD_Result s_send(hs_state_t *st, struct MHD_Connection *c,
                              unsigned status, hs_outcome_t outcome,
                              const char *body, size_t len)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        len, (void *)body, MHD_RESPMEM_MUST_COPY);
    char num[24];

    atomic_fetch_add_explicit(&st->outcomes[outcome], 1,
                              memory_order_relaxed);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            "application/json");
    if (status == MHD_HTTP_SERVICE_UNAVAILABLE) {
        snprintf(num, sizeof(num), "%u", st->o.retry_after_s);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, num);
    } else if (status == MHD_HTTP_METHOD_NOT_ALLOWED) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "POST");
    } else if (status == MHD_HTTP_UNAUTHORIZED) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                                "Bearer realm=\"sluice\"");
    }
    enum MHD_Result rc = MHD_queue_response(c, status, resp);
    MHD_destroy_response(resp);
    return rc;
}

/* {"error": reason} through the host's JSON encoder, so that whatever a
 * reason quotes from the body comes out as valid JSON. */
static enum MHD_Result s_error(hs_state_t *st, struct MHD_Connection *c,
                               unsigned status, hs_outcome_t outcome,
                               const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static enum MHD_Result s_error(hs_state_t *st, struct MHD_Connection *c,
                               unsigned status, hs_outcome_t outcome,
                               const char *fmt, ...)
{
    char why[512];
    msgpack_sbuffer mp, js;
    msgpack_packer pk;
    msgpack_zone zone;
    msgpack_object obj;
    va_list ap;
    size_t off = 0;
    enum MHD_Result rc;

    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    sl_log(st->ctx, SL_LOG_DEBUG, "request refused: %u %s", status, why);
    msgpack_sbuffer_init(&mp);
    msgpack_sbuffer_init(&js);
    msgpack_zone_init(&zone, 256);
    msgpack_packer_init(&pk, &mp, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str_with_body(&pk, "error", 5);
    msgpack_pack_str_with_body(&pk, why, strlen(why));
    if (msgpack_unpack(mp.data, mp.size, &off, &zone, &obj) ==
            MSGPACK_UNPACK_SUCCESS &&
        sl_json_encode(&obj, &js) == 0 &&
        msgpack_sbuffer_write(&js, "\n", 1) == 0)
        rc = s_send(st, c, status, outcome, js.data, js.size);
    else
        rc = s_send(st, c, status, outcome, "{}\n", 3);
    msgpack_zone_destroy(&zone);
    msgpack_sbuffer_destroy(&js);
    msgpack_sbuffer_destroy(&mp);
    return rc;
}

/* ---- request checks (on the headers) ------------------------------------- */

static const char *s_header(struct MHD_Connection *c, const char *name)
{
    return MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
}

/* "Bearer TOKEN", compared in time independent of where they differ. */
static int s_authorized(const hs_state_t *st, struct MHD_Connection *c)
{
    const char *h = s_header(c, MHD_HTTP_HEADER_AUTHORIZATION);
    unsigned char diff = 0;

    if (!st->token)
        return 1;
    if (!h || strncasecmp(h, "Bearer ", 7) != 0)
        return 0;
    h += 7;
    while (*h == ' ')
        h++;
    if (strlen(h) != st->token_len)
        return 0;
    for (size_t i = 0; i < st->token_len; i++)
        diff |= (unsigned char)(h[i] ^ st->token[i]);
    return diff == 0;
}

static const struct {
    const char *type;
    hs_format_t format;
} s_types[] = {
    {"application/json", HS_JSON},
    {"application/x-ndjson", HS_NDJSON},
    {"application/ndjson", HS_NDJSON},
    {"application/msgpack", HS_MSGPACK},
    {"application/x-msgpack", HS_MSGPACK},
    {"application/vnd.msgpack", HS_MSGPACK},
};

/* The format of a Content-Type (parameters such as charset ignored), or
 * HS_AUTO when it is none of ours. */
static hs_format_t s_format_of(const char *ct)
{
    size_t n;

    if (!ct)
        return HS_AUTO;
    while (*ct == ' ')
        ct++;
    n = strcspn(ct, "; \t");
    for (size_t i = 0; i < sizeof(s_types) / sizeof(s_types[0]); i++)
        if (strlen(s_types[i].type) == n &&
            strncasecmp(ct, s_types[i].type, n) == 0)
            return s_types[i].format;
    return HS_AUTO;
}

static void s_refuse(hs_req_t *r, unsigned status, hs_outcome_t outcome,
                     const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void s_refuse(hs_req_t *r, unsigned status, hs_outcome_t outcome,
                     const char *fmt, ...)
{
    va_list ap;
    r->refuse = status;
    r->outcome = outcome;
    va_start(ap, fmt);
    vsnprintf(r->why, sizeof(r->why), fmt, ap);
    va_end(ap);
}

/* The first call of a request, with its headers: decides what can be
 * decided before the body is read. */
static enum MHD_Result s_begin(hs_state_t *st, struct MHD_Connection *c,
                               const char *url, const char *method,
                               void **req_cls)
{
    hs_format_t f = st->o.format;
    const char *cl = s_header(c, MHD_HTTP_HEADER_CONTENT_LENGTH);
    uint64_t want = cl ? strtoull(cl, NULL, 10) : 0;
    hs_req_t *r;

    /* Too large to even read: answered now (MHD then closes). */
    if (want > st->o.max_body)
        return s_error(st, c, MHD_HTTP_CONTENT_TOO_LARGE, HS_413,
                       "body of %llu bytes is over max_body (%llu)",
                       (unsigned long long)want,
                       (unsigned long long)st->o.max_body);
    if (!(r = calloc(1, sizeof(*r))))
        return s_error(st, c, MHD_HTTP_INTERNAL_SERVER_ERROR, HS_500,
                       "out of memory");
    *req_cls = r;
    r->cap = cl ? (size_t)want : HS_BODY_START;
    if (strcmp(url, st->o.path) != 0) {
        s_refuse(r, MHD_HTTP_NOT_FOUND, HS_404,
                 "no such path: %.200s (records go to %s)", url, st->o.path);
    } else if (strcmp(method, MHD_HTTP_METHOD_POST) != 0) {
        s_refuse(r, MHD_HTTP_METHOD_NOT_ALLOWED, HS_405,
                 "method %.20s not allowed: POST records to %s", method,
                 st->o.path);
    } else if (!s_authorized(st, c)) {
        s_refuse(r, MHD_HTTP_UNAUTHORIZED, HS_401,
                 "missing or wrong bearer token");
    } else if (f == HS_AUTO &&
               (f = s_format_of(s_header(
                    c, MHD_HTTP_HEADER_CONTENT_TYPE))) == HS_AUTO) {
        const char *ct = s_header(c, MHD_HTTP_HEADER_CONTENT_TYPE);
        s_refuse(r, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, HS_415,
                 "Content-Type %s%.100s%s is not one of application/json, "
                 "application/x-ndjson, application/msgpack",
                 ct ? "'" : "", ct ? ct : "(none)", ct ? "'" : "");
    } else if (hs_stopping(st)) {
        s_refuse(r, MHD_HTTP_SERVICE_UNAVAILABLE, HS_503,
                 "stopping: not accepting records");
    } else if (hs_queue_full(st)) {
        /* Not a single record would fit: spare decoding the body. */
        s_refuse(r, MHD_HTTP_SERVICE_UNAVAILABLE, HS_503,
                 "queue full: no record fits now; retry later");
    }
    r->format = f;
    return MHD_YES;
}

/* A piece of the body. Over max_body the rest is read and dropped (up to
 * max_body more, then the connection is closed), so that a body sent
 * without Content-Length still gets its 413. */
static enum MHD_Result s_data(hs_state_t *st, hs_req_t *r, const char *data,
                              size_t n)
{
    if (r->refuse) {
        r->dropped += n;
        return r->dropped > st->o.max_body ? MHD_NO : MHD_YES;
    }
    if (!r->too_big && n > st->o.max_body - r->len) {
        r->too_big = 1;
        r->dropped = r->len;
        free(r->body);
        r->body = NULL;
        r->len = r->cap = 0;
    }
    if (r->too_big) {
        r->dropped += n;
        return r->dropped > 2 * st->o.max_body ? MHD_NO : MHD_YES;
    }
    if (r->len + n > r->cap || !r->body) {
        size_t cap = r->cap ? r->cap : HS_BODY_START;
        while (cap < r->len + n)
            cap *= 2;
        if (cap > st->o.max_body)
            cap = (size_t)st->o.max_body;
        char *grown = realloc(r->body, cap);
        if (!grown)
            return MHD_NO;
        r->body = grown;
        r->cap = cap;
    }
    memcpy(r->body + r->len, data, n);
    r->len += n;
    return MHD_YES;
}

/* The whole body is in: decode, queue, answer. */
static enum MHD_Result s_end(hs_state_t *st, struct MHD_Connection *c,
                             hs_req_t *r)
{
    char err[256], ok[64];
    hs_batch_t *b = NULL;
    int rc;

    if (r->refuse)
        return s_error(st, c, r->refuse, r->outcome, "%s", r->why);
    if (r->too_big)
        return s_error(st, c, MHD_HTTP_CONTENT_TOO_LARGE, HS_413,
                       "body of more than %llu bytes is over max_body",
                       (unsigned long long)st->o.max_body);
    rc = hs_body_decode(r->format, &r->body, r->len, &b, err, sizeof(err));
    if (rc == -EBADMSG)
        return s_error(st, c, MHD_HTTP_BAD_REQUEST, HS_400, "%s", err);
    if (rc < 0)
        return s_error(st, c, MHD_HTTP_INTERNAL_SERVER_ERROR, HS_500,
                       "cannot decode the body: %s", strerror(-rc));
    /* Never tell a client to retry what can never fit. */
    if (b->n > st->o.queue || b->len > st->o.queue_bytes) {
        size_t n = b->n, len = b->len;
        hs_batch_free(b);
        return s_error(st, c, MHD_HTTP_CONTENT_TOO_LARGE, HS_413,
                       "%zu records (%zu bytes packed) are more than the "
                       "queue holds (queue: %llu, queue_bytes: %llu)", n,
                       len, (unsigned long long)st->o.queue,
                       (unsigned long long)st->o.queue_bytes);
    }
    size_t n = b->n;
    rc = hs_queue_put(st, b);
    if (rc == -ESHUTDOWN) {
        hs_batch_free(b);
        return s_error(st, c, MHD_HTTP_SERVICE_UNAVAILABLE, HS_503,
                       "stopping: not accepting records");
    }
    if (rc == -EAGAIN) {
        hs_batch_free(b);
        return s_error(st, c, MHD_HTTP_SERVICE_UNAVAILABLE, HS_503,
                       "queue full: %zu records do not fit now; retry "
                       "later", n);
    }
    atomic_fetch_add_explicit(&st->accepted, n, memory_order_relaxed);
    int len = snprintf(ok, sizeof(ok), "{\"accepted\":%zu}\n", n);
    return s_send(st, c, MHD_HTTP_ACCEPTED, HS_202, ok, (size_t)len);
}

static enum MHD_Result s_handle(void *cls, struct MHD_Connection *c,
                                const char *url, const char *method,
                                const char *version, const char *upload,
                                size_t *upload_len, void **req_cls)
{
    hs_state_t *st = cls;
    hs_req_t *r = *req_cls;

    (void)version;
    if (!r)
        return s_begin(st, c, url, method, req_cls);
    if (*upload_len) {
        enum MHD_Result rc = s_data(st, r, upload, *upload_len);
        *upload_len = 0;
        return rc;
    }
    return s_end(st, c, r);
}

static void s_completed(void *cls, struct MHD_Connection *c, void **req_cls,
                        enum MHD_RequestTerminationCode code)
{
    hs_req_t *r = *req_cls;

    (void)cls;
    (void)c;
    (void)code;
    if (!r)
        return;
    free(r->body);
    free(r);
    *req_cls = NULL;
}

/* ---- the daemon ------------------------------------------------------------ */

/* MHD's messages: the first one while starting explains a failed start;
 * later ones go to the debug log. */
static void s_mhd_log(void *cls, const char *fmt, va_list ap)
{
    hs_state_t *st = cls;
    char msg[256];
    size_t n;

    vsnprintf(msg, sizeof(msg), fmt, ap);
    n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '.'))
        msg[--n] = '\0';
    if (!atomic_load(&st->mhd_started)) {
        if (!st->mhd_first[0])
            snprintf(st->mhd_first, sizeof(st->mhd_first), "%s", msg);
    } else {
        sl_log(st->ctx, SL_LOG_DEBUG, "http: %s", msg);
    }
}

int hs_server_start(hs_state_t *st, const sl_config_t *cfg)
{
    const sl_config_t *at = st->o.listen_node ? st->o.listen_node : cfg;
    struct addrinfo hints, *res = NULL;
    char port[8];
    int gai;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = st->o.host_v6 ? AF_INET6 : AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | (st->o.host_v6 ? AI_NUMERICHOST : 0);
    snprintf(port, sizeof(port), "%u", st->o.port);
    gai = getaddrinfo(st->o.host, port, &hints, &res);
    if (gai != 0 || !res) {
        if (res)
            freeaddrinfo(res);
        return sl_config_error(at, "'listen' '%s': cannot resolve '%s': %s",
                               st->o.listen, st->o.host,
                               gai ? gai_strerror(gai) : "no address");
    }
    unsigned flags = MHD_USE_AUTO | MHD_USE_INTERNAL_POLLING_THREAD |
                     MHD_USE_ERROR_LOG;
    if (res->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    /* A pool only when asked for: MHD warns about a pool of 0 or 1. */
    struct MHD_OptionItem pool[] = {
        {MHD_OPTION_THREAD_POOL_SIZE, (intptr_t)st->o.threads, NULL},
        {MHD_OPTION_END, 0, NULL}};
    if (st->o.threads < 2)
        pool[0].option = MHD_OPTION_END;
    errno = 0;
    st->daemon = MHD_start_daemon(
        flags, (uint16_t)st->o.port, NULL, NULL, s_handle, st,
        MHD_OPTION_SOCK_ADDR, res->ai_addr,
        MHD_OPTION_ARRAY, pool,
        MHD_OPTION_CONNECTION_LIMIT, st->o.max_connections,
        MHD_OPTION_CONNECTION_TIMEOUT, 30u,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)65536,
        MHD_OPTION_NOTIFY_COMPLETED, s_completed, st,
        MHD_OPTION_EXTERNAL_LOGGER, s_mhd_log, st, MHD_OPTION_END);
    int e = errno;
    freeaddrinfo(res);
    if (!st->daemon) {
        int rc = sl_config_error(at, "cannot listen on %s: %s", st->o.listen,
                                 st->mhd_first[0] ? st->mhd_first
                                 : e              ? strerror(e)
                                                  : "the HTTP server did "
                                                    "not start");
        return rc;
    }
    atomic_store(&st->mhd_started, 1);
    const union MHD_DaemonInfo *info =
        MHD_get_daemon_info(st->daemon, MHD_DAEMON_INFO_BIND_PORT);
    st->port = info ? info->port : st->o.port;
    return 0;
}

void hs_server_stop(hs_state_t *st)
{
    MHD_stop_daemon(st->daemon);
    st->daemon = NULL;
}
