/*
 * CURVE links between real separate hosts: three network namespaces A, B
 * and C (tests/support/netns.c), a program in each. A sends 10,000
 * records over CURVE tcp to B, B forwards them to C, C checks that every
 * one came, in order, from B. A rogue in A with a key that B's topology
 * does not list gets nothing from B and delivers nothing to it.
 *
 * The programs are this test binary run again with "--netns-role ROLE
 * ARGS..." (handled in a constructor, before Criterion's main). Needs
 * root; skipped with the reason otherwise.
 */
#include <criterion/criterion.h>

#include "curve.h"
#include "netns.h"
#include "testutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#define N_RECORDS 10000
#define PORT_B_IN 7001   /* B's PULL: A's records */
#define PORT_C_IN 7002   /* C's PULL: B's forwarded records */
#define PORT_B_FEED 7003 /* B's PUSH: only a listed client could read it */
#define RECORD_SIZE 64

static sl_netns_t s_ns;

static void s_fini(void)
{
    sl_netns_destroy(&s_ns);
    sl_test_tmpdir_teardown();
}

TestSuite(netns_curve, .init = sl_test_tmpdir_setup, .fini = s_fini,
          .timeout = 60);

/* ---- the programs in the namespaces -------------------------------------- */

static double s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void s_say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void s_say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fflush(stdout);
}

static int s_load(const char *key, const char *pub, sl_curve_keys_t *k,
                  char *pub_out)
{
    char err[512];
    if ((key && sl__curve_load_secret(key, k, NULL, err, sizeof(err)) < 0) ||
        (pub && sl__curve_load_public(pub, pub_out, NULL, err,
                                      sizeof(err)) < 0)) {
        s_say("%s\n", err);
        return -1;
    }
    return 0;
}

static void s_opts(void *s, int linger_ms, int timeout_ms)
{
    zmq_setsockopt(s, ZMQ_LINGER, &linger_ms, sizeof(linger_ms));
    zmq_setsockopt(s, ZMQ_RCVTIMEO, &timeout_ms, sizeof(timeout_ms));
    zmq_setsockopt(s, ZMQ_SNDTIMEO, &timeout_ms, sizeof(timeout_ms));
}

static void s_endpoint(char *ep, size_t len, const char *addr, int port)
{
    snprintf(ep, len, "tcp://%s:%d", addr, port);
}

/* sender KEY B.pub B_ADDR: N records, then "END". */
static int s_sender(char **a)
{
    sl_curve_keys_t k;
    char pub[SL_CURVE_KEY_LEN + 1], err[512], ep[64];
    if (s_load(a[0], a[1], &k, pub) < 0)
        return 2;
    void *zctx = zmq_ctx_new();
    void *push = zmq_socket(zctx, ZMQ_PUSH);
    s_opts(push, 30000, 30000);
    s_endpoint(ep, sizeof(ep), a[2], PORT_B_IN);
    if (sl__curve_client(push, &k, pub, err, sizeof(err)) < 0 ||
        zmq_connect(push, ep) != 0) {
        s_say("sender: %s\n", err);
        return 2;
    }
    int rc = 0;
    uint8_t rec[RECORD_SIZE];
    memset(rec, 'r', sizeof(rec));
    for (uint64_t i = 0; i < N_RECORDS && rc == 0; i++) {
        memcpy(rec, &i, sizeof(i));
        if (zmq_send(push, rec, sizeof(rec), 0) != (int)sizeof(rec)) {
            s_say("sender: record %llu: %s\n", (unsigned long long)i,
                  zmq_strerror(errno));
            rc = 1;
        }
    }
    if (rc == 0 && zmq_send(push, "END", 3, 0) != 3)
        rc = 1;
    zmq_close(push);
    zmq_ctx_term(zctx); /* waits (linger) until everything went out */
    if (rc == 0)
        s_say("sender: sent %d records\n", N_RECORDS);
    return rc;
}

/* relay KEY A.pub SELF_ADDR C.pub C_ADDR: admits node a only; forwards
 * what it receives to C until "END"; meanwhile offers records on its
 * feed socket, which no listed client reads. */
static int s_relay(char **a)
{
    sl_curve_keys_t k;
    char pub_a[SL_CURVE_KEY_LEN + 1], pub_c[SL_CURVE_KEY_LEN + 1];
    char err[512] = "", ep[64];
    if (s_load(a[0], a[1], &k, pub_a) < 0 || s_load(NULL, a[3], NULL, pub_c))
        return 2;
    void *zctx = zmq_ctx_new();
    sl_zap_t *zap = sl__zap_new(0);
    void *in = zmq_socket(zctx, ZMQ_PULL);
    void *feed = zmq_socket(zctx, ZMQ_PUSH);
    void *out = zmq_socket(zctx, ZMQ_PUSH);
    s_opts(in, 0, 30000);
    s_opts(feed, 0, 30000);
    s_opts(out, 30000, 30000);
    int rc = 2;
    if (sl__zap_allow(zap, "a", pub_a, err, sizeof(err)) < 0 ||
        sl__zap_start(zap, zctx, err, sizeof(err)) < 0 ||
        sl__curve_server(in, &k, zap, err, sizeof(err)) < 0 ||
        sl__curve_server(feed, &k, zap, err, sizeof(err)) < 0 ||
        sl__curve_client(out, &k, pub_c, err, sizeof(err)) < 0) {
        s_say("relay: %s\n", err);
        goto out;
    }
    s_endpoint(ep, sizeof(ep), a[2], PORT_B_IN);
    if (zmq_bind(in, ep) != 0)
        goto fail_zmq;
    s_endpoint(ep, sizeof(ep), a[2], PORT_B_FEED);
    if (zmq_bind(feed, ep) != 0)
        goto fail_zmq;
    s_endpoint(ep, sizeof(ep), a[4], PORT_C_IN);
    if (zmq_connect(out, ep) != 0)
        goto fail_zmq;
    s_say("ready\n");

    uint64_t forwarded = 0, foreign = 0, fed = 0;
    double end = s_now() + 50;
    rc = 1;
    while (s_now() < end) {
        if (zmq_send(feed, "secret", 6, ZMQ_DONTWAIT) == 6)
            fed++;
        zmq_pollitem_t it = {in, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 10) <= 0)
            continue;
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, in, 0) < 0) {
            zmq_msg_close(&m);
            continue;
        }
        const char *user = zmq_msg_gets(&m, "User-Id");
        if (!user || strcmp(user, "a") != 0)
            foreign++;
        int last = zmq_msg_size(&m) == 3 && memcmp(zmq_msg_data(&m), "END",
                                                   3) == 0;
        if (zmq_msg_send(&m, out, 0) < 0) {
            zmq_msg_close(&m);
            s_say("relay: cannot forward: %s\n", zmq_strerror(errno));
            break;
        }
        if (last) {
            rc = 0;
            break;
        }
        forwarded++;
    }
    sl_zap_stats_t st;
    sl__zap_stats(zap, &st);
    s_say("relay: forwarded %llu, foreign %llu, fed %llu; zap accepted "
          "%llu, denied %llu%s\n", (unsigned long long)forwarded,
          (unsigned long long)foreign, (unsigned long long)fed,
          (unsigned long long)st.accepted, (unsigned long long)st.denied,
          rc ? " (no END)" : "");
    goto out;
fail_zmq:
    s_say("relay: %s: %s\n", ep, zmq_strerror(errno));
out:
    zmq_close(in);
    zmq_close(feed);
    zmq_close(out);
    sl__zap_destroy(&zap); /* after the server sockets: see curve.h */
    zmq_ctx_term(zctx);
    return rc;
}

/* sink KEY B.pub SELF_ADDR: admits node b only; counts until "END". */
static int s_sink(char **a)
{
    sl_curve_keys_t k;
    char pub_b[SL_CURVE_KEY_LEN + 1], err[512] = "", ep[64];
    if (s_load(a[0], a[1], &k, pub_b) < 0)
        return 2;
    void *zctx = zmq_ctx_new();
    sl_zap_t *zap = sl__zap_new(0);
    void *in = zmq_socket(zctx, ZMQ_PULL);
    s_opts(in, 0, 30000);
    int rc = 2;
    s_endpoint(ep, sizeof(ep), a[2], PORT_C_IN);
    if (sl__zap_allow(zap, "b", pub_b, err, sizeof(err)) < 0 ||
        sl__zap_start(zap, zctx, err, sizeof(err)) < 0 ||
        sl__curve_server(in, &k, zap, err, sizeof(err)) < 0) {
        s_say("sink: %s\n", err);
        goto out;
    }
    if (zmq_bind(in, ep) != 0) {
        s_say("sink: %s: %s\n", ep, zmq_strerror(errno));
        goto out;
    }
    s_say("ready\n");
    uint64_t got = 0, disorder = 0, foreign = 0;
    rc = 1;
    for (;;) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, in, 0) < 0) {
            zmq_msg_close(&m);
            s_say("sink: %s after %llu records\n", zmq_strerror(errno),
                  (unsigned long long)got);
            break;
        }
        const char *user = zmq_msg_gets(&m, "User-Id");
        if (!user || strcmp(user, "b") != 0)
            foreign++;
        size_t n = zmq_msg_size(&m);
        if (n == 3 && memcmp(zmq_msg_data(&m), "END", 3) == 0) {
            zmq_msg_close(&m);
            rc = got == N_RECORDS && !disorder && !foreign ? 0 : 1;
            break;
        }
        uint64_t seq = UINT64_MAX;
        if (n == RECORD_SIZE)
            memcpy(&seq, zmq_msg_data(&m), sizeof(seq));
        if (seq != got)
            disorder++;
        got++;
        zmq_msg_close(&m);
    }
    s_say("sink: received %llu records, %llu out of order, %llu not from "
          "b\n", (unsigned long long)got, (unsigned long long)disorder,
          (unsigned long long)foreign);
out:
    zmq_close(in);
    sl__zap_destroy(&zap);
    zmq_ctx_term(zctx);
    return rc;
}

/* Waits at most timeout_s for the end of a handshake on monitor m: the
 * status code of a refusal (400 when the ZAP handler said no), -1 when
 * the handshake succeeded, 0 when neither happened. */
static int s_refused(void *m, double timeout_s)
{
    double end = s_now() + timeout_s;
    while (s_now() < end) {
        zmq_pollitem_t it = {m, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 50) <= 0)
            continue;
        uint8_t head[6];
        char addr[256];
        int n = zmq_recv(m, head, sizeof(head), 0);
        zmq_recv(m, addr, sizeof(addr), 0);
        uint16_t ev;
        uint32_t value;
        memcpy(&ev, head, 2);
        memcpy(&value, head + 2, 4);
        if (n == 6 && ev == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
            return (int)value;
        if (n == 6 && ev == ZMQ_EVENT_HANDSHAKE_SUCCEEDED)
            return -1;
    }
    return 0;
}

/* rogue KEY B.pub B_ADDR: a client with a key B does not list tries to
 * send to B and to read B's feed. */
static int s_rogue(char **a)
{
    sl_curve_keys_t k;
    char pub_b[SL_CURVE_KEY_LEN + 1], err[512] = "", ep[64];
    if (s_load(a[0], a[1], &k, pub_b) < 0)
        return 2;
    void *zctx = zmq_ctx_new();
    void *push = zmq_socket(zctx, ZMQ_PUSH);
    void *pull = zmq_socket(zctx, ZMQ_PULL);
    void *mpush = zmq_socket(zctx, ZMQ_PAIR);
    void *mpull = zmq_socket(zctx, ZMQ_PAIR);
    s_opts(push, 0, 1000);
    s_opts(pull, 0, 1000);
    s_opts(mpush, 0, 1000);
    s_opts(mpull, 0, 1000);
    int rc = 2;
    if (sl__curve_client(push, &k, pub_b, err, sizeof(err)) < 0 ||
        sl__curve_client(pull, &k, pub_b, err, sizeof(err)) < 0) {
        s_say("rogue: %s\n", err);
        goto out;
    }
    zmq_socket_monitor(push, "inproc://mon-push", ZMQ_EVENT_ALL);
    zmq_socket_monitor(pull, "inproc://mon-pull", ZMQ_EVENT_ALL);
    zmq_connect(mpush, "inproc://mon-push");
    zmq_connect(mpull, "inproc://mon-pull");
    s_endpoint(ep, sizeof(ep), a[2], PORT_B_IN);
    zmq_connect(push, ep);
    s_endpoint(ep, sizeof(ep), a[2], PORT_B_FEED);
    zmq_connect(pull, ep);
    int queued = 0;
    for (int i = 0; i < 100; i++)
        if (zmq_send(push, "ROGUE", 5, ZMQ_DONTWAIT) == 5)
            queued++;
    int st_push = s_refused(mpush, 10);
    int st_pull = s_refused(mpull, 10);
    /* Refused: now make sure nothing arrives for a while anyway. */
    int got = 0;
    double end = s_now() + 0.5;
    while (s_now() < end) {
        zmq_pollitem_t it = {pull, 0, ZMQ_POLLIN, 0};
        char buf[16];
        if (zmq_poll(&it, 1, 50) > 0 &&
            zmq_recv(pull, buf, sizeof(buf), ZMQ_DONTWAIT) >= 0)
            got++;
    }
    s_say("rogue: queued %d, sender refused with %d, receiver refused with "
          "%d, received %d\n", queued, st_push, st_pull, got);
    rc = st_push == 400 && st_pull == 400 && got == 0 ? 0 : 1;
out:
    zmq_close(mpush);
    zmq_close(mpull);
    zmq_close(push);
    zmq_close(pull);
    zmq_ctx_term(zctx);
    return rc;
}

/* listen ADDR PORT COUNT: accepts COUNT plain tcp connections and says
 * where each came from. */
static int s_listen(char **a)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)atoi(a[1]))};
    inet_pton(AF_INET, a[0], &sa.sin_addr);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        listen(fd, 8) != 0) {
        s_say("listen: %s: %s\n", a[0], strerror(errno));
        return 2;
    }
    s_say("ready\n");
    int want = atoi(a[2]);
    for (int i = 0; i < want; i++) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 20000) <= 0) {
            s_say("listen: only %d connections\n", i);
            return 1;
        }
        struct sockaddr_in peer;
        socklen_t len = sizeof(peer);
        int c = accept(fd, (struct sockaddr *)&peer, &len);
        if (c < 0)
            return 1;
        char ip[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &peer.sin_addr, ip, sizeof(ip));
        s_say("listen: connection from %s\n", ip);
        close(c);
    }
    close(fd);
    return 0;
}

/* connect ADDR PORT: one plain tcp connection, retried for a while (the
 * listener may still be starting). */
static int s_connect(char **a)
{
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)atoi(a[1]))};
    inet_pton(AF_INET, a[0], &sa.sin_addr);
    double end = s_now() + 10;
    const struct timespec tick = {0, 20 * 1000 * 1000};
    for (;;) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
            close(fd);
            return 0;
        }
        int e = errno;
        close(fd);
        if (s_now() > end) {
            s_say("connect %s: %s\n", a[0], strerror(e));
            return 1;
        }
        nanosleep(&tick, NULL);
    }
}

__attribute__((constructor)) static void s_role(int argc, char **argv)
{
    if (argc < 3 || strcmp(argv[1], "--netns-role") != 0)
        return;
    const char *role = argv[2];
    char **a = argv + 3;
    int n = argc - 3, rc = 2;
    if (strcmp(role, "sender") == 0 && n == 3)
        rc = s_sender(a);
    else if (strcmp(role, "relay") == 0 && n == 5)
        rc = s_relay(a);
    else if (strcmp(role, "sink") == 0 && n == 3)
        rc = s_sink(a);
    else if (strcmp(role, "rogue") == 0 && n == 3)
        rc = s_rogue(a);
    else if (strcmp(role, "listen") == 0 && n == 3)
        rc = s_listen(a);
    else if (strcmp(role, "connect") == 0 && n == 2)
        rc = s_connect(a);
    else
        s_say("unknown role or arguments: %s\n", role);
    exit(rc);
}

/* ---- the tests ----------------------------------------------------------- */

static void s_need_netns(void)
{
    char why[512];
    if (!sl_netns_available(why, sizeof(why)))
        cr_skip_test("%s", why);
}

static void s_create(unsigned n)
{
    char err[2048] = "";
    cr_assert_eq(sl_netns_create(&s_ns, n, err, sizeof(err)), 0, "%s", err);
}

static const char *s_self(void)
{
    static char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    cr_assert_gt(n, 0);
    self[n] = '\0';
    return self;
}

/* Starts a role in host i, its output to DIR/log. */
static pid_t s_spawn(unsigned i, const char *log, const char *role, ...)
{
    const char *argv[16] = {s_self(), "--netns-role", role};
    size_t n = 3;
    va_list ap;
    va_start(ap, role);
    for (const char *s; (s = va_arg(ap, const char *)) && n < 15;)
        argv[n++] = s;
    va_end(ap);
    argv[n] = NULL;
    char path[4200];
    snprintf(path, sizeof(path), "%s/%s", sl_test_dir(), log);
    pid_t pid = sl_netns_spawn(&s_ns, i, argv, path);
    cr_assert_gt(pid, 0);
    return pid;
}

static char *s_log(const char *log)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s/%s", sl_test_dir(), log);
    char *text = sl_test_read_file(path, NULL);
    return text ? text : strdup("(no log)");
}

static void s_expect_exit(pid_t pid, const char *log, double timeout_s)
{
    int rc = sl_netns_wait(&s_ns, pid, timeout_s);
    char *text = s_log(log);
    cr_assert_eq(rc, 0, "%s ended with %d:\n%s", log, rc, text);
    free(text);
}

static void s_keygen(const char *name)
{
    sl_curve_keys_t k;
    char err[512];
    cr_assert_eq(sl__curve_keypair(&k, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(sl__curve_write(sl_test_dir(), name, &k, 0, err,
                                 sizeof(err)), 0, "%s", err);
}

static char *s_file(const char *name)
{
    static char buf[8][4200];
    static int next;
    char *p = buf[next++ % 8];
    snprintf(p, sizeof(buf[0]), "%s/%s", sl_test_dir(), name);
    return p;
}

/* `ip netns list`, names only, sorted, without the sets of other test
 * processes (which may come and go meanwhile). */
static char *s_netns_list(void)
{
    char *out = NULL, mine[32];
    cr_assert_eq(sl_test_run("ip netns list 2>&1 | cut -d' ' -f1 | sort",
                             &out), 0, "%s", out);
    snprintf(mine, sizeof(mine), "slt%d-", (int)getpid());
    char *w = out;
    for (char *line = out; *line;) {
        char *nl = strchr(line, '\n');
        size_t n = nl ? (size_t)(nl - line + 1) : strlen(line);
        if (strncmp(line, "slt", 3) != 0 ||
            strncmp(line, mine, strlen(mine)) == 0) {
            memmove(w, line, n);
            w += n;
        }
        line += n;
    }
    *w = '\0';
    return out;
}

Test(netns_curve, three_hosts_reach_each_other)
{
    s_need_netns();
    s_create(3);
    pid_t listeners[3];
    char log[32];
    for (unsigned i = 0; i < 3; i++) {
        snprintf(log, sizeof(log), "listen%u.log", i);
        listeners[i] = s_spawn(i, log, "listen", s_ns.addr[i], "7000", "2",
                               NULL);
    }
    for (unsigned i = 0; i < 3; i++) {
        snprintf(log, sizeof(log), "listen%u.log", i);
        free(sl_test_wait_log(log, "ready", 10));
    }
    for (unsigned i = 0; i < 3; i++)
        for (unsigned j = 0; j < 3; j++) {
            if (i == j)
                continue;
            snprintf(log, sizeof(log), "connect%u%u.log", i, j);
            pid_t p = s_spawn(i, log, "connect", s_ns.addr[j], "7000", NULL);
            s_expect_exit(p, log, 20);
        }
    for (unsigned i = 0; i < 3; i++) {
        snprintf(log, sizeof(log), "listen%u.log", i);
        s_expect_exit(listeners[i], log, 20);
        char *text = s_log(log);
        /* Each connection came from the other host's own address. */
        for (unsigned j = 0; j < 3; j++) {
            char want[64];
            snprintf(want, sizeof(want), "connection from %s\n",
                     s_ns.addr[j]);
            if (i == j)
                cr_assert_null(strstr(text, want), "%s", text);
            else
                cr_assert(strstr(text, want), "%s", text);
        }
        free(text);
    }
    /* Loopback is up in each host too. */
    pid_t l = s_spawn(0, "lo.log", "listen", "127.0.0.1", "7000", "1", NULL);
    free(sl_test_wait_log("lo.log", "ready", 10));
    s_expect_exit(s_spawn(0, "lo-connect.log", "connect", "127.0.0.1",
                          "7000", NULL), "lo-connect.log", 20);
    s_expect_exit(l, "lo.log", 20);
}

Test(netns_curve, curve_chain_delivers_everything_and_shuts_out_a_rogue)
{
    s_need_netns();
    char *before = s_netns_list();
    s_create(3);
    const char *a = s_ns.addr[0], *b = s_ns.addr[1], *c = s_ns.addr[2];
    for (unsigned i = 0; i < 3; i++)
        cr_assert(sl_netns_exists(s_ns.name[i]));
    s_keygen("a");
    s_keygen("b");
    s_keygen("c");
    s_keygen("rogue");

    pid_t sink = s_spawn(2, "c.log", "sink", s_file("c.key"),
                         s_file("b.pub"), c, NULL);
    pid_t relay = s_spawn(1, "b.log", "relay", s_file("b.key"),
                          s_file("a.pub"), b, s_file("c.pub"), c, NULL);
    free(sl_test_wait_log("c.log", "ready", 20));
    free(sl_test_wait_log("b.log", "ready", 20));

    /* The rogue knows B's address and public key, but B does not list its
     * key: both of its handshakes are refused, and B's feed, which B
     * offers all the time, never reaches it. */
    pid_t rogue = s_spawn(0, "rogue.log", "rogue", s_file("rogue.key"),
                          s_file("b.pub"), b, NULL);
    s_expect_exit(rogue, "rogue.log", 40);
    char *text = s_log("rogue.log");
    cr_assert(strstr(text, "rogue: queued 100, sender refused with 400, "
                           "receiver refused with 400, received 0\n"),
              "%s", text);
    free(text);

    pid_t sender = s_spawn(0, "a.log", "sender", s_file("a.key"),
                           s_file("b.pub"), b, NULL);
    s_expect_exit(sender, "a.log", 40);
    s_expect_exit(relay, "b.log", 40);
    s_expect_exit(sink, "c.log", 40);

    text = s_log("c.log");
    cr_assert(strstr(text, "sink: received 10000 records, 0 out of order, "
                           "0 not from b\n"), "%s", text);
    cr_assert(strstr(text, "accepted node b (CURVE) from"), "%s", text);
    free(text);
    text = s_log("b.log");
    /* Two refusals (the rogue's two sockets), none of its records. */
    cr_assert(strstr(text, "relay: forwarded 10000, foreign 0, fed 0; zap "
                           "accepted 1, denied 2\n"), "%s", text);
    char want[256];
    snprintf(want, sizeof(want), "denied a CURVE client from %s: key not in "
             "the topology", a);
    cr_assert(strstr(text, want), "%s", text);
    snprintf(want, sizeof(want), "accepted node a (CURVE) from %s\"", a);
    cr_assert(strstr(text, want), "%s", text);
    free(text);

    /* Teardown leaves nothing behind. */
    sl_netns_t copy = s_ns;
    sl_netns_destroy(&s_ns);
    for (unsigned i = 0; i < copy.count; i++)
        cr_assert_not(sl_netns_exists(copy.name[i]), "%s", copy.name[i]);
    cr_assert_not(sl_netns_exists(copy.hub));
    char *after = s_netns_list();
    cr_assert_str_eq(after, before);
    cr_assert_null(strstr(after, copy.prefix), "%s", after);
    free(before);
    free(after);
}

Test(netns_curve, unavailable_without_root_says_why)
{
    if (geteuid() != 0) {
        char why[512];
        cr_assert_eq(sl_netns_available(why, sizeof(why)), 0);
        cr_assert(strstr(why, "network namespaces need root"), "%s", why);
        return;
    }
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        close(fds[0]);
        char why[512] = "";
        int ok = setgroups(0, NULL) == 0 && setgid(65534) == 0 &&
                 setuid(65534) == 0;
        int avail = ok ? sl_netns_available(why, sizeof(why)) : -1;
        dprintf(fds[1], "%d %s", avail, why);
        _exit(0);
    }
    close(fds[1]);
    char buf[600] = "";
    size_t n = 0;
    ssize_t r;
    while ((r = read(fds[0], buf + n, sizeof(buf) - 1 - n)) > 0)
        n += (size_t)r;
    close(fds[0]);
    cr_assert_eq(sl_test_wait_exit(pid, 10), 0);
    cr_assert_str_eq(buf, "0 network namespaces need root: CAP_NET_ADMIN and "
                          "CAP_SYS_ADMIN are not both in this process's "
                          "effective set (uid 65534)");
}
