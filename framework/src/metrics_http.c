#include "metrics_http.h"
#include "log.h"
#include "metrics.h"
#include "run.h"
#include "tap.h"

#include <microhttpd.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sl_metrics_server {
    struct MHD_Daemon *daemon;
    atomic_int serving; /* MHD_start_daemon has returned it */
    sl_run_t *run;
    unsigned port;
    char url[NI_MAXHOST + 32];
    char mhd_err[256]; /* MHD's last complaint, for a failed start */
};

static void s_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void s_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

int sl__metrics_addr_parse(const char *addr, struct sockaddr_storage *ss,
                           socklen_t *len, char *err, size_t errlen)
{
    char buf[256];
    if (strlen(addr) >= sizeof(buf)) {
        s_err(err, errlen, "address '%.40s...' is too long", addr);
        return -EINVAL;
    }
    strcpy(buf, addr);
    char *host, *port;
    int v6 = 0;
    if (buf[0] == '[') {
        char *close = strchr(buf, ']');
        if (!close || close[1] != ':') {
            s_err(err, errlen, "address '%s': expected [IPV6]:PORT", addr);
            return -EINVAL;
        }
        *close = '\0';
        host = buf + 1;
        port = close + 2;
        v6 = 1;
    } else {
        char *colon = strrchr(buf, ':');
        if (colon && strchr(buf, ':') != colon) {
            s_err(err, errlen, "address '%s': an IPv6 address goes in "
                  "brackets, as in [::1]:9464", addr);
            return -EINVAL;
        }
        if (colon) {
            *colon = '\0';
            host = buf;
            port = colon + 1;
        } else {
            host = buf + strlen(buf); /* no host: loopback */
            port = buf;
        }
    }
    size_t plen = strlen(port);
    if (plen == 0 || plen > 5 || strspn(port, "0123456789") != plen ||
        atol(port) > 65535) {
        s_err(err, errlen, "address '%s': the port must be a number "
              "0..65535 (0 picks a free one)", addr);
        return -EINVAL;
    }
    if (!*host) {
        if (v6) {
            s_err(err, errlen, "address '%s': empty IPv6 address", addr);
            return -EINVAL;
        }
        host = "127.0.0.1"; /* never all interfaces unless asked */
    }
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = v6 ? AF_INET6 : AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | (v6 ? AI_NUMERICHOST : 0);
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0 || !res) {
        s_err(err, errlen, "address '%s': cannot resolve '%s': %s", addr,
              host, rc ? gai_strerror(rc) : "no address");
        if (res)
            freeaddrinfo(res);
        return -EINVAL;
    }
    memset(ss, 0, sizeof(*ss));
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

static void s_mhd_log(void *cls, const char *fmt, va_list ap)
{
    sl_metrics_server_t *srv = cls;
    char msg[256];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '.'))
        msg[--n] = '\0';
    /* Only the start reads it, before the server thread exists. */
    if (!atomic_load(&srv->serving))
        snprintf(srv->mhd_err, sizeof(srv->mhd_err), "%s", msg);
    else
        sl__log(SL_LOG_DEBUG, NULL, -1, "metrics server: %s", msg);
}

static enum MHD_Result s_reply(struct MHD_Connection *c, unsigned status,
                               const char *type, char *body, size_t len,
                               enum MHD_ResponseMemoryMode mode)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, body, mode);
    if (!resp) {
        if (mode == MHD_RESPMEM_MUST_FREE)
            free(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    enum MHD_Result rc = MHD_queue_response(c, status, resp);
    MHD_destroy_response(resp);
    return rc;
}

static enum MHD_Result s_text(struct MHD_Connection *c, unsigned status,
                              const char *text)
{
    return s_reply(c, status, "text/plain; charset=utf-8", (char *)text,
                   strlen(text), MHD_RESPMEM_PERSISTENT);
}

static enum MHD_Result s_metrics(sl_metrics_server_t *srv,
                                 struct MHD_Connection *c)
{
    char *body = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&body, &len);
    if (!f)
        return s_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
    int rc = sl__metrics_write(srv->run, f);
    if (fclose(f) != 0 && rc == 0)
        rc = -ENOMEM;
    if (rc) {
        free(body);
        sl__log(SL_LOG_WARN, NULL, -1, "metrics: cannot render: %s",
                strerror(-rc));
        return s_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR,
                      "cannot render the metrics\n");
    }
    return s_reply(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8",
                   body, len, MHD_RESPMEM_MUST_FREE);
}

static const char s_index[] =
    "<html><body>sluice: metrics at <a href=\"/metrics\">/metrics</a>"
    "</body></html>\n";

/* POST /tap?link=A>B&endpoint=E starts a tap (tap.h); DELETE /tap/ID ends
 * it. The metrics address is loopback unless the user wrote out another,
 * so this is as private as the numbers beside it. */
static enum MHD_Result s_tap(sl_metrics_server_t *srv,
                             struct MHD_Connection *c, const char *url,
                             const char *method)
{
    char err[512], body[600];
    if (strcmp(method, MHD_HTTP_METHOD_POST) == 0 && strcmp(url, "/tap") == 0) {
        const char *link =
            MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "link");
        const char *ep =
            MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "endpoint");
        if (!link || !ep)
            return s_text(c, MHD_HTTP_BAD_REQUEST,
                          "want POST /tap?link=A>B&endpoint=ZMQ_ENDPOINT\n");
        unsigned id;
        int rc = sl__taps_add(srv->run->taps, link, ep, &id, err,
                              sizeof(err));
        unsigned status = rc == 0             ? MHD_HTTP_CREATED
                          : rc == -ENOENT     ? MHD_HTTP_NOT_FOUND
                          : rc == -EBUSY      ? MHD_HTTP_TOO_MANY_REQUESTS
                          : rc == -ESHUTDOWN  ? MHD_HTTP_CONFLICT
                          : rc == -EINVAL     ? MHD_HTTP_BAD_REQUEST
                                              : MHD_HTTP_INTERNAL_SERVER_ERROR;
        if (rc == 0)
            snprintf(body, sizeof(body), "%u\n", id);
        else
            snprintf(body, sizeof(body), "%s\n", err);
        char *copy = strdup(body);
        if (!copy)
            return MHD_NO;
        return s_reply(c, status, "text/plain; charset=utf-8", copy,
                       strlen(copy), MHD_RESPMEM_MUST_FREE);
    }
    if (strcmp(method, MHD_HTTP_METHOD_DELETE) == 0 &&
        strncmp(url, "/tap/", 5) == 0) {
        char *end;
        unsigned long id = strtoul(url + 5, &end, 10);
        if (end == url + 5 || *end || id > UINT32_MAX)
            return s_text(c, MHD_HTTP_BAD_REQUEST, "want DELETE /tap/ID\n");
        if (sl__taps_remove(srv->run->taps, (unsigned)id) != 0)
            return s_text(c, MHD_HTTP_NOT_FOUND, "no such tap\n");
        return s_text(c, MHD_HTTP_OK, "tap ended\n");
    }
    static const char msg[] = "method not allowed: POST /tap, DELETE "
                              "/tap/ID\n";
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        sizeof(msg) - 1, (void *)msg, MHD_RESPMEM_PERSISTENT);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            "text/plain; charset=utf-8");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "POST, DELETE");
    enum MHD_Result rc =
        MHD_queue_response(c, MHD_HTTP_METHOD_NOT_ALLOWED, resp);
    MHD_destroy_response(resp);
    return rc;
}

static enum MHD_Result s_handle(void *cls, struct MHD_Connection *c,
                                const char *url, const char *method,
                                const char *version, const char *upload,
                                size_t *upload_len, void **req_cls)
{
    (void)version;
    (void)upload;
    sl_metrics_server_t *srv = cls;
    static int s_seen;
    if (strcmp(url, "/tap") == 0 || strncmp(url, "/tap/", 5) == 0) {
        /* Answer once the (ignored) body is in, as HTTP/1.1 wants. */
        if (!*req_cls) {
            *req_cls = &s_seen;
            return MHD_YES;
        }
        if (*upload_len) {
            *upload_len = 0;
            return MHD_YES;
        }
        return s_tap(srv, c, url, method);
    }
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 &&
        strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        return s_text(c, MHD_HTTP_METHOD_NOT_ALLOWED,
                      "method not allowed: use GET\n");
    if (strcmp(url, "/metrics") == 0)
        return s_metrics(srv, c);
    if (strcmp(url, "/") == 0)
        return s_reply(c, MHD_HTTP_OK, "text/html; charset=utf-8",
                       (char *)s_index, sizeof(s_index) - 1,
                       MHD_RESPMEM_PERSISTENT);
    return s_text(c, MHD_HTTP_NOT_FOUND, "not found: try /metrics\n");
}

sl_metrics_server_t *sl__metrics_server_start(sl_run_t *run, const char *addr,
                                              char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t sslen;
    if (sl__metrics_addr_parse(addr, &ss, &sslen, err, errlen) != 0)
        return NULL;
    char host[NI_MAXHOST];
    if (getnameinfo((struct sockaddr *)&ss, sslen, host, sizeof(host), NULL,
                    0, NI_NUMERICHOST) != 0)
        snprintf(host, sizeof(host), "?");
    sl_metrics_server_t *srv = calloc(1, sizeof(*srv));
    if (!srv) {
        s_err(err, errlen, "out of memory");
        return NULL;
    }
    srv->run = run;
    unsigned flags = MHD_USE_AUTO | MHD_USE_INTERNAL_POLLING_THREAD |
                     MHD_USE_ERROR_LOG;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    /* MHD binds SOCK_ADDR; the port argument only goes in its messages. */
    uint16_t port = ntohs(ss.ss_family == AF_INET6
                              ? ((struct sockaddr_in6 *)&ss)->sin6_port
                              : ((struct sockaddr_in *)&ss)->sin_port);
    errno = 0;
    struct MHD_Daemon *d = MHD_start_daemon(
        flags, port, NULL, NULL, s_handle, srv,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
        MHD_OPTION_CONNECTION_LIMIT, 32u,
        MHD_OPTION_CONNECTION_TIMEOUT, 10u,
        MHD_OPTION_EXTERNAL_LOGGER, s_mhd_log, srv,
        MHD_OPTION_END);
    if (!d) {
        int e = errno;
        s_err(err, errlen, "cannot serve metrics on %s: %s", addr,
              srv->mhd_err[0] ? srv->mhd_err
              : e             ? strerror(e)
                              : "the HTTP server did not start");
        free(srv);
        return NULL;
    }
    srv->daemon = d;
    atomic_store(&srv->serving, 1);
    const union MHD_DaemonInfo *info =
        MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    srv->port = info ? info->port : 0;
    snprintf(srv->url, sizeof(srv->url), "http://%s%s%s:%u/metrics",
             ss.ss_family == AF_INET6 ? "[" : "", host,
             ss.ss_family == AF_INET6 ? "]" : "", srv->port);
    return srv;
}

unsigned sl__metrics_server_port(const sl_metrics_server_t *srv)
{
    return srv->port;
}

const char *sl__metrics_server_url(const sl_metrics_server_t *srv)
{
    return srv->url;
}

void sl__metrics_server_stop(sl_metrics_server_t **srvp)
{
    sl_metrics_server_t *srv = *srvp;
    if (!srv)
        return;
    MHD_stop_daemon(srv->daemon);
    free(srv);
    *srvp = NULL;
}
