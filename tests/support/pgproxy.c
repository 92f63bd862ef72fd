/* A proxy that loses a commit's answer (see pgproxy.h). */
#include "pgproxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define S_PAIRS 64

typedef struct s_pair {
    int c, s;    /* client and server sockets, -1 once closed */
    int cut;     /* the client side was cut after a COMMIT */
    char tail[8]; /* the last bytes each way, for patterns across reads */
    size_t tail_len;
    char stail[8];
    size_t stail_len;
} s_pair_t;

struct sl_pgproxy {
    int lfd, port, target;
    int wake[2];
    pthread_t th;
    pthread_mutex_t mu;
    int armed, skip, cuts;
    s_pair_t pairs[S_PAIRS];
};

/* Whether pat occurs in tail+data, and the new tail. */
static int s_seen(char *tail, size_t *tail_len, const char *data, size_t n,
                  const char *pat, size_t plen)
{
    char buf[8 + 65536];
    size_t len = *tail_len;
    int found = 0;

    memcpy(buf, tail, len);
    memcpy(buf + len, data, n);
    len += n;
    for (size_t i = 0; !found && i + plen <= len; i++)
        found = memcmp(buf + i, pat, plen) == 0;
    *tail_len = len < plen - 1 ? len : plen - 1;
    memcpy(tail, buf + len - *tail_len, *tail_len);
    return found;
}

static int s_write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static void s_close_pair(s_pair_t *pr)
{
    if (pr->c >= 0)
        close(pr->c);
    if (pr->s >= 0)
        close(pr->s);
    pr->c = pr->s = -1;
}

static int s_dial(int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

static void s_from_client(sl_pgproxy_t *px, s_pair_t *pr)
{
    static const char commit[] = "COMMIT"; /* with its NUL: a query's end */
    char buf[65536];
    ssize_t n = recv(pr->c, buf, sizeof(buf), 0);
    int cut = 0;

    if (n <= 0) {
        s_close_pair(pr);
        return;
    }
    if (s_seen(pr->tail, &pr->tail_len, buf, (size_t)n, commit,
               sizeof(commit))) {
        pthread_mutex_lock(&px->mu);
        if (px->armed && px->skip-- == 0) {
            px->armed = 0;
            px->cuts++;
            cut = 1;
        }
        pthread_mutex_unlock(&px->mu);
    }
    if (s_write_all(pr->s, buf, (size_t)n) < 0) {
        s_close_pair(pr);
        return;
    }
    if (cut) {
        /* The server goes on with the commit; the client hears nothing. */
        close(pr->c);
        pr->c = -1;
        pr->cut = 1;
    }
}

static void s_from_server(s_pair_t *pr)
{
    /* ReadyForQuery: the server has finished the whole query. */
    static const char ready[] = {'Z', 0, 0, 0, 5};
    char buf[65536];
    ssize_t n = recv(pr->s, buf, sizeof(buf), 0);

    if (n <= 0) {
        s_close_pair(pr);
        return;
    }
    if (pr->cut) {
        if (s_seen(pr->stail, &pr->stail_len, buf, (size_t)n, ready,
                   sizeof(ready)))
            s_close_pair(pr);
        return;
    }
    if (s_write_all(pr->c, buf, (size_t)n) < 0)
        s_close_pair(pr);
}

static void *s_proxy_main(void *arg)
{
    sl_pgproxy_t *px = arg;
    struct pollfd fds[2 + 2 * S_PAIRS];
    s_pair_t *who[2 + 2 * S_PAIRS];
    int side[2 + 2 * S_PAIRS];

    for (;;) {
        nfds_t n = 0;
        fds[n++] = (struct pollfd){.fd = px->wake[0], .events = POLLIN};
        fds[n++] = (struct pollfd){.fd = px->lfd, .events = POLLIN};
        for (size_t i = 0; i < S_PAIRS; i++) {
            s_pair_t *pr = &px->pairs[i];
            if (pr->c >= 0) {
                who[n] = pr;
                side[n] = 0;
                fds[n++] = (struct pollfd){.fd = pr->c, .events = POLLIN};
            }
            if (pr->s >= 0) {
                who[n] = pr;
                side[n] = 1;
                fds[n++] = (struct pollfd){.fd = pr->s, .events = POLLIN};
            }
        }
        if (poll(fds, n, -1) < 0) {
            if (errno == EINTR)
                continue;
            return NULL;
        }
        if (fds[0].revents)
            return NULL;
        for (nfds_t i = 2; i < n; i++) {
            if (!fds[i].revents)
                continue;
            s_pair_t *pr = who[i];
            int fd = side[i] ? pr->s : pr->c;
            if (fd != fds[i].fd)
                continue; /* closed by an earlier event of this round */
            if (side[i])
                s_from_server(pr);
            else
                s_from_client(px, pr);
        }
        if (fds[1].revents & POLLIN) {
            int c = accept4(px->lfd, NULL, NULL, SOCK_CLOEXEC);
            int s = c >= 0 ? s_dial(px->target) : -1;
            s_pair_t *slot = NULL;
            for (size_t i = 0; i < S_PAIRS && !slot; i++)
                if (px->pairs[i].c < 0 && px->pairs[i].s < 0)
                    slot = &px->pairs[i];
            if (c >= 0 && s >= 0 && slot) {
                memset(slot, 0, sizeof(*slot));
                slot->c = c;
                slot->s = s;
            } else {
                if (c >= 0)
                    close(c);
                if (s >= 0)
                    close(s);
            }
        }
    }
}

sl_pgproxy_t *sl_pgproxy_start(const sl_pgtest_t *pg)
{
    sl_pgproxy_t *px = calloc(1, sizeof(*px));
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);

    cr_assert_not_null(px);
    for (size_t i = 0; i < S_PAIRS; i++)
        px->pairs[i].c = px->pairs[i].s = -1;
    px->target = sl_pgtest_port(pg);
    px->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(px->lfd, 0);
    cr_assert_eq(bind(px->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    cr_assert_eq(listen(px->lfd, 16), 0);
    cr_assert_eq(getsockname(px->lfd, (struct sockaddr *)&a, &len), 0);
    px->port = ntohs(a.sin_port);
    cr_assert_eq(pipe2(px->wake, O_CLOEXEC), 0);
    pthread_mutex_init(&px->mu, NULL);
    cr_assert_eq(pthread_create(&px->th, NULL, s_proxy_main, px), 0);
    return px;
}

int sl_pgproxy_port(const sl_pgproxy_t *px)
{
    return px->port;
}

void sl_pgproxy_arm(sl_pgproxy_t *px, int skip)
{
    pthread_mutex_lock(&px->mu);
    px->armed = 1;
    px->skip = skip;
    pthread_mutex_unlock(&px->mu);
}

int sl_pgproxy_cuts(sl_pgproxy_t *px)
{
    pthread_mutex_lock(&px->mu);
    int n = px->cuts;
    pthread_mutex_unlock(&px->mu);
    return n;
}

void sl_pgproxy_stop(sl_pgproxy_t **pxp)
{
    sl_pgproxy_t *px = *pxp;

    if (!px)
        return;
    if (write(px->wake[1], "x", 1) != 1)
        pthread_cancel(px->th);
    pthread_join(px->th, NULL);
    for (size_t i = 0; i < S_PAIRS; i++)
        s_close_pair(&px->pairs[i]);
    close(px->lfd);
    close(px->wake[0]);
    close(px->wake[1]);
    pthread_mutex_destroy(&px->mu);
    free(px);
    *pxp = NULL;
}
