/*
 * CURVE for tcp links (curve.c, curve_zap.c): key files written by
 * `sluice keygen` and read back, the ZAP handler's allow-list, and what a
 * peer without a listed key can do over loopback tcp: nothing, in either
 * direction.
 */
#include <criterion/criterion.h>

#include "curve.h"
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

TestSuite(curve, .init = sl_test_tmpdir_setup,
          .fini = sl_test_tmpdir_teardown, .timeout = 60);

/* ---- helpers ------------------------------------------------------------- */

static sl_curve_keys_t s_keys(void)
{
    sl_curve_keys_t k;
    char err[256];
    cr_assert_eq(sl__curve_keypair(&k, err, sizeof(err)), 0, "%s", err);
    return k;
}

/* DIR/name in the test's directory. The result lives until the 16th call
 * after: copy what must last longer. */
static char *s_path(const char *name)
{
    static char buf[16][4096];
    static int next;
    char *p = buf[next++ % 16];
    snprintf(p, sizeof(buf[0]), "%s/%s", sl_test_dir(), name);
    return p;
}

/* Writes text as a private key file and expects loading it as a secret
 * key to fail with exactly "PATH<want>". */
static void s_expect_bad(const char *text, const char *want)
{
    const char *path = s_path("bad.key");
    cr_assert_eq(sl_test_write_file(path, text), 0);
    cr_assert_eq(chmod(path, 0600), 0);
    sl_curve_keys_t k;
    char err[512] = "", expect[4096];
    int rc = sl__curve_load_secret(path, &k, NULL, err, sizeof(err));
    snprintf(expect, sizeof(expect), "%s%s", path, want);
    cr_assert_lt(rc, 0, "accepted:\n%s", text);
    cr_assert_str_eq(err, expect);
}

static sl_zap_t *s_zap(void *zctx, unsigned flags, const char *node,
                       const char *public_key)
{
    char err[256] = "";
    sl_zap_t *z = sl__zap_new(flags);
    cr_assert_not_null(z);
    if (node)
        cr_assert_eq(sl__zap_allow(z, node, public_key, err, sizeof(err)),
                     0, "%s", err);
    cr_assert_eq(sl__zap_start(z, zctx, err, sizeof(err)), 0, "%s", err);
    return z;
}

static void *s_socket(void *zctx, int type)
{
    void *s = zmq_socket(zctx, type);
    cr_assert_not_null(s);
    int zero = 0, timeout = 5000;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof(zero));
    zmq_setsockopt(s, ZMQ_RCVTIMEO, &timeout, sizeof(timeout));
    zmq_setsockopt(s, ZMQ_SNDTIMEO, &timeout, sizeof(timeout));
    return s;
}

/* A CURVE server socket bound to a free loopback port; its endpoint goes
 * to ep. */
static void *s_server(void *zctx, int type, const sl_curve_keys_t *k,
                      const sl_zap_t *zap, char *ep, size_t len)
{
    void *s = s_socket(zctx, type);
    char err[256] = "";
    cr_assert_eq(sl__curve_server(s, k, zap, err, sizeof(err)), 0, "%s",
                 err);
    cr_assert_eq(zmq_bind(s, "tcp://127.0.0.1:*"), 0);
    cr_assert_eq(zmq_getsockopt(s, ZMQ_LAST_ENDPOINT, ep, &len), 0);
    return s;
}

static void *s_client(void *zctx, int type, const sl_curve_keys_t *k,
                      const char *server_public, const char *ep)
{
    void *s = s_socket(zctx, type);
    char err[256] = "";
    cr_assert_eq(sl__curve_client(s, k, server_public, err, sizeof(err)), 0,
                 "%s", err);
    cr_assert_eq(zmq_connect(s, ep), 0);
    return s;
}

/* A PAIR socket receiving sock's monitor events. */
static void *s_monitor(void *zctx, void *sock)
{
    char ep[64];
    snprintf(ep, sizeof(ep), "inproc://monitor-%p", sock);
    cr_assert_eq(zmq_socket_monitor(sock, ep, ZMQ_EVENT_ALL), 0);
    void *m = s_socket(zctx, ZMQ_PAIR);
    cr_assert_eq(zmq_connect(m, ep), 0);
    return m;
}

/* Waits at most timeout_ms for event on monitor m; 1 and its value, or 0. */
static int s_wait_event(void *m, int event, int timeout_ms, uint32_t *value)
{
    double end = sl_test_now() + timeout_ms / 1000.0;
    while (sl_test_now() < end) {
        zmq_pollitem_t it = {m, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 50) <= 0)
            continue;
        uint8_t head[6];
        char addr[256];
        int n = zmq_recv(m, head, sizeof(head), 0);
        zmq_recv(m, addr, sizeof(addr), 0);
        if (n != 6)
            continue;
        uint16_t ev;
        memcpy(&ev, head, 2);
        if (ev == event) {
            memcpy(value, head + 2, 4);
            return 1;
        }
    }
    return 0;
}

/* Waits at most timeout_s for the handler to have denied at least n. */
static sl_zap_stats_t s_wait_denied(const sl_zap_t *z, uint64_t n,
                                    double timeout_s)
{
    const struct timespec tick = {0, 2 * 1000 * 1000};
    double end = sl_test_now() + timeout_s;
    sl_zap_stats_t st;
    for (;;) {
        sl__zap_stats(z, &st);
        if (st.denied >= n || sl_test_now() > end)
            return st;
        nanosleep(&tick, NULL);
    }
}

/* How many messages s receives within ms (each one counted). */
static int s_received_within(void *s, int ms)
{
    int got = 0;
    double end = sl_test_now() + ms / 1000.0;
    for (;;) {
        int left = (int)((end - sl_test_now()) * 1000);
        if (left <= 0)
            return got;
        zmq_pollitem_t it = {s, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, left) > 0) {
            char buf[64];
            if (zmq_recv(s, buf, sizeof(buf), ZMQ_DONTWAIT) >= 0)
                got++;
        }
    }
}

/* ---- key files ----------------------------------------------------------- */

Test(curve, keygen_files_round_trip)
{
    sl_curve_keys_t k = s_keys();
    char err[512] = "", node[SL_CURVE_NAME_MAX + 1], dir[4096];
    snprintf(dir, sizeof(dir), "%s", s_path("keys"));
    cr_assert_eq(sl__curve_write(dir, "alpha", &k, 0, err, sizeof(err)), 0,
                 "%s", err);

    struct stat st;
    cr_assert_eq(stat(dir, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0700, "dir mode %o", st.st_mode & 0777);
    cr_assert_eq(stat(s_path("keys/alpha.key"), &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0600, "key mode %o", st.st_mode & 0777);
    cr_assert_eq(stat(s_path("keys/alpha.pub"), &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0644, "pub mode %o", st.st_mode & 0777);

    char *key_text = sl_test_read_file(s_path("keys/alpha.key"), NULL);
    char *pub_text = sl_test_read_file(s_path("keys/alpha.pub"), NULL);
    char line[128];
    snprintf(line, sizeof(line), "\nsecret = \"%s\"\n", k.secret_key);
    cr_assert(strstr(key_text, line), "%s", key_text);
    snprintf(line, sizeof(line), "\npublic = \"%s\"\n", k.public_key);
    cr_assert(strstr(key_text, line), "%s", key_text);
    cr_assert(strstr(pub_text, line), "%s", pub_text);
    cr_assert(strstr(pub_text, "\nnode = \"alpha\"\n"), "%s", pub_text);
    cr_assert_null(strstr(pub_text, "secret ="), "%s", pub_text);
    cr_assert_null(strstr(pub_text, k.secret_key));
    cr_assert_eq(key_text[0], '#');
    free(key_text);
    free(pub_text);

    sl_curve_keys_t back;
    cr_assert_eq(sl__curve_load_secret(s_path("keys/alpha.key"), &back, node,
                                       err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(back.public_key, k.public_key);
    cr_assert_str_eq(back.secret_key, k.secret_key);
    cr_assert_str_eq(node, "alpha");
    char pub[SL_CURVE_KEY_LEN + 1];
    cr_assert_eq(sl__curve_load_public(s_path("keys/alpha.pub"), pub, node,
                                       err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(pub, k.public_key);
    cr_assert_eq(sl__curve_load_public(s_path("keys/alpha.key"), pub, NULL,
                                       err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(pub, k.public_key);
    /* Nothing left behind by the temporary-file dance. */
    char *out = NULL;
    char cmd[4200];
    snprintf(cmd, sizeof(cmd), "ls %s", dir);
    cr_assert_eq(sl_test_run(cmd, &out), 0);
    cr_assert_str_eq(out, "alpha.key\nalpha.pub\n");
    free(out);
}

Test(curve, hand_written_files_with_comments_and_crlf_load)
{
    sl_curve_keys_t k = s_keys();
    char text[512];
    snprintf(text, sizeof(text),
             "# a comment\r\n\r\n  secret   =   \"%s\"  # trailing\r\n"
             "\tpublic=\"%s\"\r\n",
             k.secret_key, k.public_key);
    const char *path = s_path("hand.key");
    cr_assert_eq(sl_test_write_file(path, text), 0);
    cr_assert_eq(chmod(path, 0400), 0);
    sl_curve_keys_t back;
    char err[512] = "", node[SL_CURVE_NAME_MAX + 1] = "x";
    cr_assert_eq(sl__curve_load_secret(path, &back, node, err, sizeof(err)),
                 0, "%s", err);
    cr_assert_str_eq(back.secret_key, k.secret_key);
    cr_assert_str_eq(node, "");
}

Test(curve, keygen_refuses_to_overwrite_without_force)
{
    sl_curve_keys_t k1 = s_keys(), k2 = s_keys();
    char err[512] = "", want[4200];
    const char *dir = sl_test_dir();
    cr_assert_eq(sl__curve_write(dir, "n1", &k1, 0, err, sizeof(err)), 0);
    cr_assert_eq(sl__curve_write(dir, "n1", &k2, 0, err, sizeof(err)),
                 -EEXIST);
    snprintf(want, sizeof(want),
             "%s/n1.key already exists; use --force to replace it", dir);
    cr_assert_str_eq(err, want);
    char pub[SL_CURVE_KEY_LEN + 1];
    cr_assert_eq(sl__curve_load_public(s_path("n1.pub"), pub, NULL, err,
                                       sizeof(err)), 0);
    cr_assert_str_eq(pub, k1.public_key, "the refused write changed a file");

    /* A lone .pub is in the way too, and no .key appears. */
    cr_assert_eq(sl_test_write_file(s_path("n2.pub"), "x\n"), 0);
    cr_assert_eq(sl__curve_write(dir, "n2", &k2, 0, err, sizeof(err)),
                 -EEXIST);
    snprintf(want, sizeof(want),
             "%s/n2.pub already exists; use --force to replace it", dir);
    cr_assert_str_eq(err, want);
    cr_assert_eq(access(s_path("n2.key"), F_OK), -1);

    cr_assert_eq(sl__curve_write(dir, "n1", &k2, 1, err, sizeof(err)), 0,
                 "%s", err);
    sl_curve_keys_t back;
    cr_assert_eq(sl__curve_load_secret(s_path("n1.key"), &back, NULL, err,
                                       sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(back.secret_key, k2.secret_key);
    struct stat st;
    cr_assert_eq(stat(s_path("n1.key"), &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0600);

    cr_assert_eq(sl__curve_write(dir, "-x", &k2, 0, err, sizeof(err)),
                 -EINVAL);
    cr_assert_str_eq(err, "node name '-x' starts with '-'; it must start "
                          "with a letter, a digit or '_'");
    cr_assert_eq(sl__curve_write(dir, "a/b", &k2, 0, err, sizeof(err)),
                 -EINVAL);
    cr_assert_str_eq(err, "node name 'a/b' has '/' at column 2; use "
                          "letters, digits, '_', '-' and '.'");
}

Test(curve, secret_key_readable_by_others_is_refused)
{
    sl_curve_keys_t k = s_keys();
    char err[512] = "", want[8400];
    cr_assert_eq(sl__curve_write(sl_test_dir(), "p", &k, 0, err,
                                 sizeof(err)), 0);
    const char *key = s_path("p.key");
    sl_curve_keys_t back;
    char pub[SL_CURVE_KEY_LEN + 1];
    unsigned modes[] = {0644, 0640, 0604, 0620};
    for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
        cr_assert_eq(chmod(key, modes[i]), 0);
        cr_assert_eq(sl__curve_load_secret(key, &back, NULL, err,
                                           sizeof(err)), -EACCES);
        snprintf(want, sizeof(want),
                 "%s: secret key file is accessible by others (mode %04o); "
                 "refusing to use it. Run: chmod 600 %s", key, modes[i],
                 key);
        cr_assert_str_eq(err, want);
        /* The public key of a .key file is behind the same check. */
        cr_assert_eq(sl__curve_load_public(key, pub, NULL, err,
                                           sizeof(err)), -EACCES);
        cr_assert_str_eq(err, want);
    }
    cr_assert_eq(chmod(key, 0600), 0);
    cr_assert_eq(chown(key, 65534, 65534), 0);
    cr_assert_eq(sl__curve_load_secret(key, &back, NULL, err, sizeof(err)),
                 -EACCES);
    snprintf(want, sizeof(want),
             "%s: secret key file is owned by uid 65534, not by this user "
             "(uid %u); refusing to use it", key, (unsigned)geteuid());
    cr_assert_str_eq(err, want);
    /* A .pub file is public. */
    cr_assert_eq(chmod(s_path("p.pub"), 0666), 0);
    cr_assert_eq(sl__curve_load_public(s_path("p.pub"), pub, NULL, err,
                                       sizeof(err)), 0, "%s", err);
}

Test(curve, bad_key_files_name_the_line_and_problem)
{
    sl_curve_keys_t k = s_keys(), other = s_keys();
    char text[1024], bad[SL_CURVE_KEY_LEN + 1];

    snprintf(text, sizeof(text), "# c\n\n\npublic = \"abc\"\n");
    s_expect_bad(text, ":4: public key is 3 characters long; a CURVE key is "
                       "40 Z85 characters");

    snprintf(bad, sizeof(bad), "%s", k.secret_key);
    bad[4] = '~';
    snprintf(text, sizeof(text), "public = \"%s\"\n# x\n\n\nsecret = \"%s\"\n",
             k.public_key, bad);
    s_expect_bad(text, ":5: secret key has '~' at column 5, which is not a "
                       "Z85 character");

    snprintf(text, sizeof(text), "public = \"%s\"\nsecret = \"%s\"\n",
             k.public_key, "########################################");
    s_expect_bad(text, ":2: secret key is not a valid Z85 encoding (a group "
                       "of five characters is larger than 32 bits)");

    s_expect_bad("public = abc\n",
                 ":1: the value of 'public' must be in double quotes");
    s_expect_bad("# header\ngarbage\n", ":2: expected FIELD = \"VALUE\"");
    s_expect_bad("colour = \"red\"\n", ":1: unknown field 'colour' (a key "
                                       "file has node, public and secret)");
    s_expect_bad("node = \"a b\"\n", ":1: node name 'a b' has ' ' at column "
                                     "2; use letters, digits, '_', '-' and "
                                     "'.'");

    snprintf(text, sizeof(text), "public = \"%s\" extra\n", k.public_key);
    s_expect_bad(text, ":1: unexpected text after the closing quote of "
                       "'public'");

    snprintf(text, sizeof(text), "node = \"a\"\npublic = \"%s\"\n"
             "public = \"%s\"\n", k.public_key, k.public_key);
    s_expect_bad(text, ":3: 'public' given twice (first on line 2)");

    snprintf(text, sizeof(text), "public = \"%s\"\n", k.public_key);
    s_expect_bad(text, ": no secret key (a line secret = \"...\"); is this "
                       "the .pub file?");

    snprintf(text, sizeof(text), "secret = \"%s\"\n", k.secret_key);
    s_expect_bad(text, ": no public key (a line public = \"...\")");

    snprintf(text, sizeof(text), "public = \"%s\"\nsecret = \"%s\"\n",
             other.public_key, k.secret_key);
    s_expect_bad(text, ":1: the public key does not belong to the secret key "
                       "on line 2");

    /* The public loader is as strict about what it reads. */
    cr_assert_eq(sl_test_write_file(s_path("x.pub"), "public = \"short\"\n"),
                 0);
    char pub[SL_CURVE_KEY_LEN + 1], err[512] = "", want[4200];
    cr_assert_eq(sl__curve_load_public(s_path("x.pub"), pub, NULL, err,
                                       sizeof(err)), -EINVAL);
    snprintf(want, sizeof(want), "%s:1: public key is 5 characters long; a "
             "CURVE key is 40 Z85 characters", s_path("x.pub"));
    cr_assert_str_eq(err, want);

    sl_curve_keys_t back;
    cr_assert_eq(sl__curve_load_secret(s_path("none.key"), &back, NULL, err,
                                       sizeof(err)), -ENOENT);
    snprintf(want, sizeof(want), "%s: cannot open: No such file or "
             "directory", s_path("none.key"));
    cr_assert_str_eq(err, want);
}

Test(curve, cli_keygen_writes_files_and_prints_the_hosts_entry)
{
    char cmd[8192], *out = NULL, dir[4096];
    snprintf(dir, sizeof(dir), "%s", s_path("k"));
    snprintf(cmd, sizeof(cmd), "%s keygen beta -d %s 2>&1", sl_test_cli(),
             dir);
    cr_assert_eq(sl_test_run(cmd, &out), 0, "%s", out);

    char pub[SL_CURVE_KEY_LEN + 1], err[512] = "", node[64];
    cr_assert_eq(sl__curve_load_public(s_path("k/beta.pub"), pub, node, err,
                                       sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(node, "beta");
    sl_curve_keys_t k;
    cr_assert_eq(sl__curve_load_secret(s_path("k/beta.key"), &k, NULL, err,
                                       sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(k.public_key, pub);
    char want[8192];
    snprintf(want, sizeof(want), "public key of beta: %s\n", pub);
    cr_assert(strstr(out, want), "%s", out);
    snprintf(want, sizeof(want), "hosts:\n  beta:\n    address: HOST_OR_IP\n"
             "    key: \"%s\"\n", pub);
    cr_assert(strstr(out, want), "%s", out);
    cr_assert_null(strstr(out, k.secret_key), "the secret was printed");
    free(out);

    cr_assert_eq(sl_test_run(cmd, &out), 1, "%s", out);
    snprintf(want, sizeof(want), "sluice keygen: %s/beta.key already "
             "exists; use --force to replace it\n", dir);
    cr_assert_str_eq(out, want);
    free(out);

    snprintf(cmd, sizeof(cmd), "%s keygen beta -d %s --force 2>&1",
             sl_test_cli(), dir);
    cr_assert_eq(sl_test_run(cmd, &out), 0, "%s", out);
    free(out);
    char pub2[SL_CURVE_KEY_LEN + 1];
    cr_assert_eq(sl__curve_load_public(s_path("k/beta.pub"), pub2, NULL, err,
                                       sizeof(err)), 0, "%s", err);
    cr_assert_str_neq(pub2, pub);

    snprintf(cmd, sizeof(cmd), "%s keygen 'b c' -d %s 2>&1", sl_test_cli(),
             dir);
    cr_assert_eq(sl_test_run(cmd, &out), 2, "%s", out);
    cr_assert_str_eq(out, "sluice keygen: node name 'b c' has ' ' at column "
                          "2; use letters, digits, '_', '-' and '.'\n");
    free(out);
    snprintf(cmd, sizeof(cmd), "%s keygen 2>&1", sl_test_cli());
    cr_assert_eq(sl_test_run(cmd, &out), 2, "%s", out);
    cr_assert_str_eq(out, "usage: sluice keygen NAME [-d DIR] [--force]\n");
    free(out);
}

/* ---- the ZAP handler ----------------------------------------------------- */

Test(curve, allow_list_and_start_errors)
{
    void *zctx = zmq_ctx_new();
    sl_curve_keys_t a = s_keys();
    char err[512] = "";
    sl_zap_t *z = sl__zap_new(0);
    cr_assert_eq(sl__zap_allow(z, "b", "short", err, sizeof(err)), -EINVAL);
    cr_assert_str_eq(err, "public key of node b is 5 characters long; a "
                          "CURVE key is 40 Z85 characters");
    cr_assert_eq(sl__zap_allow(z, "a", a.public_key, err, sizeof(err)), 0);
    cr_assert_eq(sl__zap_allow(z, "c", a.public_key, err, sizeof(err)),
                 -EEXIST);
    cr_assert_str_eq(err, "node c has the same public key as node a; each "
                          "node needs its own key pair (sluice keygen)");

    /* Not running yet: a server socket would admit anyone. */
    void *s = s_socket(zctx, ZMQ_PULL);
    cr_assert_eq(sl__curve_server(s, &a, z, err, sizeof(err)), -EINVAL);
    cr_assert_str_eq(err, "a CURVE server socket needs the ZAP handler of "
                          "its context running first (without one, libzmq "
                          "admits any client)");
    cr_assert_eq(sl__curve_server(s, &a, NULL, err, sizeof(err)), -EINVAL);

    cr_assert_eq(sl__zap_start(z, zctx, err, sizeof(err)), 0, "%s", err);
    cr_assert(sl__zap_running(z));
    cr_assert_eq(sl__zap_start(z, zctx, err, sizeof(err)), -EALREADY);
    cr_assert_eq(sl__zap_allow(z, "d", s_keys().public_key, err,
                               sizeof(err)), -EBUSY);

    sl_zap_t *z2 = sl__zap_new(0);
    cr_assert_eq(sl__zap_start(z2, zctx, err, sizeof(err)), -EADDRINUSE);
    cr_assert_str_eq(err, "ZAP handler: this ZeroMQ context has one already "
                          "(inproc://zeromq.zap.01 is bound)");
    /* One handler per context: another context takes its own. */
    void *zctx2 = zmq_ctx_new();
    cr_assert_eq(sl__zap_start(z2, zctx2, err, sizeof(err)), 0, "%s", err);

    /* A strict handler is no base for an insecure server. */
    cr_assert_eq(sl__curve_insecure_server(s, z, err, sizeof(err)), -EINVAL);
    cr_assert_str_eq(err, "an insecure server socket needs the context's ZAP "
                          "handler running in insecure mode");
    cr_assert_eq(sl__curve_server(s, &a, z, err, sizeof(err)), 0, "%s", err);

    zmq_close(s);
    sl__zap_destroy(&z);
    sl__zap_destroy(&z2);
    cr_assert_null(z);
    zmq_ctx_term(zctx);
    zmq_ctx_term(zctx2);
}

Test(curve, listed_client_exchanges_messages_both_ways)
{
    void *zctx = zmq_ctx_new();
    sl_curve_keys_t srv = s_keys(), cli = s_keys();
    sl_zap_t *z = s_zap(zctx, 0, "node-a", cli.public_key);
    char ep[256], ep2[256];

    /* client PUSH -> server PULL */
    void *pull = s_server(zctx, ZMQ_PULL, &srv, z, ep, sizeof(ep));
    void *push = s_client(zctx, ZMQ_PUSH, &cli, srv.public_key, ep);
    for (int i = 0; i < 1000; i++)
        cr_assert_eq(zmq_send(push, &i, sizeof(i), 0), (int)sizeof(i));
    for (int i = 0; i < 1000; i++) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        cr_assert_eq(zmq_msg_recv(&m, pull, 0), (int)sizeof(int),
                     "message %d: %s", i, zmq_strerror(errno));
        int v;
        memcpy(&v, zmq_msg_data(&m), sizeof(v));
        cr_assert_eq(v, i);
        /* The handler's user id: who sent it, for the runtime's logs. */
        const char *user = zmq_msg_gets(&m, "User-Id");
        cr_assert_not_null(user);
        cr_assert_str_eq(user, "node-a");
        zmq_msg_close(&m);
    }

    /* server PUSH -> client PULL */
    void *spush = s_server(zctx, ZMQ_PUSH, &srv, z, ep2, sizeof(ep2));
    void *cpull = s_client(zctx, ZMQ_PULL, &cli, srv.public_key, ep2);
    for (int i = 0; i < 100; i++)
        cr_assert_eq(zmq_send(spush, &i, sizeof(i), 0), (int)sizeof(i));
    for (int i = 0; i < 100; i++) {
        int v = -1;
        cr_assert_eq(zmq_recv(cpull, &v, sizeof(v), 0), (int)sizeof(v));
        cr_assert_eq(v, i);
    }
    sl_zap_stats_t st;
    sl__zap_stats(z, &st);
    cr_assert_eq(st.accepted, 2);
    cr_assert_eq(st.denied, 0);

    zmq_close(push);
    zmq_close(pull);
    zmq_close(spush);
    zmq_close(cpull);
    sl__zap_destroy(&z);
    zmq_ctx_term(zctx);
}

Test(curve, unlisted_key_can_neither_send_nor_receive)
{
    void *zctx = zmq_ctx_new();
    sl_curve_keys_t srv = s_keys(), good = s_keys(), rogue = s_keys();
    sl_zap_t *z = s_zap(zctx, 0, "good", good.public_key);
    char ep_in[256], ep_out[256];
    void *pull = s_server(zctx, ZMQ_PULL, &srv, z, ep_in, sizeof(ep_in));
    void *push = s_server(zctx, ZMQ_PUSH, &srv, z, ep_out, sizeof(ep_out));

    /* The rogue knows the server's public key, as anyone may. */
    void *rpush = s_socket(zctx, ZMQ_PUSH);
    void *rpull = s_socket(zctx, ZMQ_PULL);
    char err[256];
    cr_assert_eq(sl__curve_client(rpush, &rogue, srv.public_key, err,
                                  sizeof(err)), 0);
    cr_assert_eq(sl__curve_client(rpull, &rogue, srv.public_key, err,
                                  sizeof(err)), 0);
    void *mon_push = s_monitor(zctx, rpush);
    void *mon_pull = s_monitor(zctx, rpull);
    cr_assert_eq(zmq_connect(rpush, ep_in), 0);
    cr_assert_eq(zmq_connect(rpull, ep_out), 0);
    /* Queued before the handshake: they must never arrive. */
    for (int i = 0; i < 10; i++)
        zmq_send(rpush, "rogue", 5, ZMQ_DONTWAIT);

    uint32_t status = 0;
    cr_assert(s_wait_event(mon_push, ZMQ_EVENT_HANDSHAKE_FAILED_AUTH, 10000,
                           &status), "the rogue sender was not refused");
    cr_assert_eq(status, 400);
    cr_assert(s_wait_event(mon_pull, ZMQ_EVENT_HANDSHAKE_FAILED_AUTH, 10000,
                           &status), "the rogue receiver was not refused");
    cr_assert_eq(status, 400);
    sl_zap_stats_t st = s_wait_denied(z, 2, 10);
    cr_assert_geq(st.denied_key, 2);
    cr_assert_eq(st.accepted, 0);

    /* No admitted peer: the server cannot send, and the rogue gets
     * nothing. */
    cr_assert_eq(zmq_send(push, "secret", 6, ZMQ_DONTWAIT), -1);
    cr_assert_eq(errno, EAGAIN);
    cr_assert_eq(s_received_within(pull, 300), 0);
    cr_assert_eq(s_received_within(rpull, 1), 0);

    /* The listed client next to it works both ways, and the rogue still
     * gets nothing of what the server sends. */
    void *gpush = s_client(zctx, ZMQ_PUSH, &good, srv.public_key, ep_in);
    void *gpull = s_client(zctx, ZMQ_PULL, &good, srv.public_key, ep_out);
    cr_assert_eq(zmq_send(gpush, "good", 4, 0), 4);
    char buf[16] = "";
    cr_assert_eq(zmq_recv(pull, buf, sizeof(buf), 0), 4);
    cr_assert_eq(memcmp(buf, "good", 4), 0);
    for (int i = 0; i < 50; i++)
        cr_assert_eq(zmq_send(push, "secret", 6, 0), 6);
    for (int i = 0; i < 50; i++)
        cr_assert_eq(zmq_recv(gpull, buf, sizeof(buf), 0), 6);
    cr_assert_eq(s_received_within(rpull, 200), 0);
    cr_assert_eq(s_received_within(pull, 100), 0, "a rogue message came");
    sl__zap_stats(z, &st);
    cr_assert_eq(st.accepted, 2);

    void *socks[] = {rpush, rpull, mon_push, mon_pull, gpush, gpull, pull,
                     push};
    for (size_t i = 0; i < sizeof(socks) / sizeof(socks[0]); i++)
        zmq_close(socks[i]);
    sl__zap_destroy(&z);
    zmq_ctx_term(zctx);
}

Test(curve, wrong_server_key_and_plain_clients_are_refused)
{
    void *zctx = zmq_ctx_new();
    sl_curve_keys_t srv = s_keys(), cli = s_keys(), impostor = s_keys();
    sl_zap_t *z = s_zap(zctx, 0, "cli", cli.public_key);
    char ep[256];
    void *pull = s_server(zctx, ZMQ_PULL, &srv, z, ep, sizeof(ep));

    /* A listed client that expects another server's key does not talk. */
    void *wrong = s_socket(zctx, ZMQ_PUSH);
    char err[256];
    cr_assert_eq(sl__curve_client(wrong, &cli, impostor.public_key, err,
                                  sizeof(err)), 0);
    void *mon_wrong = s_monitor(zctx, wrong);
    cr_assert_eq(zmq_connect(wrong, ep), 0);
    zmq_send(wrong, "x", 1, ZMQ_DONTWAIT);

    /* Plain ZeroMQ (NULL mechanism) against a CURVE server. */
    void *plain = s_socket(zctx, ZMQ_PUSH);
    void *mon_plain = s_monitor(zctx, plain);
    cr_assert_eq(zmq_connect(plain, ep), 0);
    zmq_send(plain, "y", 1, ZMQ_DONTWAIT);

    uint32_t value = 0;
    cr_assert(s_wait_event(mon_plain, ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL,
                           10000, &value), "the plain client was not refused");
    cr_assert_eq(value, ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH);
    cr_assert(s_wait_event(mon_wrong, ZMQ_EVENT_DISCONNECTED, 10000, &value),
              "the client with the wrong server key stayed connected");
    cr_assert_eq(s_received_within(pull, 300), 0);
    sl_zap_stats_t st;
    sl__zap_stats(z, &st);
    cr_assert_eq(st.accepted, 0, "a handshake reached the handler");

    void *socks[] = {wrong, mon_wrong, plain, mon_plain, pull};
    for (size_t i = 0; i < sizeof(socks) / sizeof(socks[0]); i++)
        zmq_close(socks[i]);
    sl__zap_destroy(&z);
    zmq_ctx_term(zctx);
}

Test(curve, null_is_denied_unless_insecure)
{
    for (int insecure = 0; insecure < 2; insecure++) {
        void *zctx = zmq_ctx_new();
        sl_zap_t *z = s_zap(zctx, insecure ? SL_ZAP_INSECURE : 0, NULL, NULL);
        void *pull = s_socket(zctx, ZMQ_PULL);
        char err[256] = "";
        if (insecure)
            cr_assert_eq(sl__curve_insecure_server(pull, z, err,
                                                   sizeof(err)), 0, "%s",
                         err);
        else /* a NULL server that asks the handler anyway */
            cr_assert_eq(zmq_setsockopt(pull, ZMQ_ZAP_DOMAIN, SL_ZAP_DOMAIN,
                                        strlen(SL_ZAP_DOMAIN)), 0);
        cr_assert_eq(zmq_bind(pull, "tcp://127.0.0.1:*"), 0);
        char ep[256];
        size_t len = sizeof(ep);
        zmq_getsockopt(pull, ZMQ_LAST_ENDPOINT, ep, &len);
        void *push = s_socket(zctx, ZMQ_PUSH);
        void *mon = s_monitor(zctx, push);
        cr_assert_eq(zmq_connect(push, ep), 0);
        zmq_send(push, "plain", 5, ZMQ_DONTWAIT);
        sl_zap_stats_t st;
        if (insecure) {
            char buf[16];
            cr_assert_eq(zmq_recv(pull, buf, sizeof(buf), 0), 5);
            sl__zap_stats(z, &st);
            cr_assert_eq(st.accepted, 1);
            cr_assert_eq(st.denied, 0);
        } else {
            uint32_t status = 0;
            cr_assert(s_wait_event(mon, ZMQ_EVENT_HANDSHAKE_FAILED_AUTH,
                                   10000, &status));
            cr_assert_eq(status, 400);
            st = s_wait_denied(z, 1, 10);
            cr_assert_geq(st.denied_mech, 1);
            cr_assert_eq(st.accepted, 0);
            cr_assert_eq(s_received_within(pull, 300), 0);
        }
        zmq_close(mon);
        zmq_close(push);
        zmq_close(pull);
        sl__zap_destroy(&z);
        zmq_ctx_term(zctx);
    }
}

Test(curve, insecure_mode_still_checks_curve_keys)
{
    void *zctx = zmq_ctx_new();
    sl_curve_keys_t srv = s_keys(), rogue = s_keys();
    sl_zap_t *z = s_zap(zctx, SL_ZAP_INSECURE, "x", s_keys().public_key);
    char ep[256];
    void *pull = s_server(zctx, ZMQ_PULL, &srv, z, ep, sizeof(ep));
    void *push = s_client(zctx, ZMQ_PUSH, &rogue, srv.public_key, ep);
    zmq_send(push, "r", 1, ZMQ_DONTWAIT);
    sl_zap_stats_t st = s_wait_denied(z, 1, 10);
    cr_assert_eq(st.denied_key, 1);
    cr_assert_eq(s_received_within(pull, 200), 0);
    zmq_close(push);
    zmq_close(pull);
    sl__zap_destroy(&z);
    zmq_ctx_term(zctx);
}

/* The runtime's inproc and ipc links carry no ZAP domain: a strict handler
 * in their context must not get in their way. */
Test(curve, sockets_without_a_zap_domain_bypass_the_handler)
{
    void *zctx = zmq_ctx_new();
    sl_zap_t *z = s_zap(zctx, 0, "a", s_keys().public_key);
    char ep[4200];
    snprintf(ep, sizeof(ep), "ipc://%s/link.sock", sl_test_dir());
    const char *eps[] = {ep, "inproc://link"};
    for (int i = 0; i < 2; i++) {
        void *pull = s_socket(zctx, ZMQ_PULL);
        void *push = s_socket(zctx, ZMQ_PUSH);
        cr_assert_eq(zmq_bind(pull, eps[i]), 0, "%s", eps[i]);
        cr_assert_eq(zmq_connect(push, eps[i]), 0);
        cr_assert_eq(zmq_send(push, "ok", 2, 0), 2);
        char buf[8];
        cr_assert_eq(zmq_recv(pull, buf, sizeof(buf), 0), 2, "%s", eps[i]);
        zmq_close(push);
        zmq_close(pull);
    }
    sl_zap_stats_t st;
    sl__zap_stats(z, &st);
    cr_assert_eq(st.accepted + st.denied, 0);
    sl__zap_destroy(&z);
    zmq_ctx_term(zctx);
}

/* Opens n CURVE clients with key k on ep and waits until the handler has
 * denied total clients in all (a refused client does not reconnect, so
 * each is denied exactly once). */
static void s_rogues(void *zctx, const sl_curve_keys_t *k, const char *srv,
                     const char *ep, const sl_zap_t *z, int n, uint64_t total)
{
    void *socks[32];
    cr_assert_leq(n, 32);
    for (int i = 0; i < n; i++)
        socks[i] = s_client(zctx, ZMQ_PUSH, k, srv, ep);
    sl_zap_stats_t st = s_wait_denied(z, total, 10);
    cr_assert_eq(st.denied, total);
    for (int i = 0; i < n; i++)
        zmq_close(socks[i]);
}

Test(curve, denials_are_counted_and_logged_rate_limited)
{
    const char *log = s_path("stderr.log");
    fflush(stderr);
    int saved = dup(2);
    int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    cr_assert_geq(fd, 0);
    dup2(fd, 2);
    close(fd);

    void *zctx = zmq_ctx_new();
    sl_curve_keys_t srv = s_keys(), rogue = s_keys();
    sl_zap_t *z = sl__zap_new(0);
    char err[256];
    cr_assert_eq(sl__zap_allow(z, "a", s_keys().public_key, err,
                               sizeof(err)), 0);
    sl__zap_set_log_interval(z, 60000);
    cr_assert_eq(sl__zap_start(z, zctx, err, sizeof(err)), 0);
    char ep[256];
    void *pull = s_server(zctx, ZMQ_PULL, &srv, z, ep, sizeof(ep));

    /* 20 denials within the interval: one line. */
    s_rogues(zctx, &rogue, srv.public_key, ep, z, 20, 20);
    /* The interval over (made 0): the next line counts the 19 left out. */
    sl__zap_set_log_interval(z, 0);
    s_rogues(zctx, &rogue, srv.public_key, ep, z, 1, 21);
    sl__zap_set_log_interval(z, 60000);
    s_rogues(zctx, &rogue, srv.public_key, ep, z, 5, 26);
    sl_zap_stats_t st;
    sl__zap_stats(z, &st);
    cr_assert_eq(st.denied_key, 26);
    cr_assert_eq(st.accepted, 0);
    zmq_close(pull);
    sl__zap_destroy(&z);
    zmq_ctx_term(zctx);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);

    char *text = sl_test_read_file(log, NULL);
    cr_assert_not_null(text);
    char line[512], want[4096];
    snprintf(line, sizeof(line), "level=warn msg=\"denied a CURVE client "
             "from 127.0.0.1: key not in the topology (its public key: %s)",
             rogue.public_key);
    /* Every log line starts with "ts=...Z ", cut here. */
    snprintf(want, sizeof(want),
             "%s\"\n"
             "%s (and 19 more denials since the last message)\"\n"
             "level=warn msg=\"ZAP: 5 more denials since the last message "
             "(26 in all)\"\n", line, line);
    char got[4096] = "";
    for (char *p = text; p && *p;) {
        char *nl = strchr(p, '\n');
        char *sp = strchr(p, ' ');
        if (sp && (!nl || sp < nl))
            strncat(got, sp + 1,
                    (size_t)((nl ? nl + 1 : p + strlen(p)) - sp - 1));
        p = nl ? nl + 1 : NULL;
    }
    cr_assert_str_eq(got, want);
    free(text);
}
