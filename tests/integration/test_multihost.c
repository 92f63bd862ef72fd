/*
 * One topology across three hosts: `sluice run FILE --node X` in network
 * namespaces A, B and C (tests/support/netns.c). A generator on A, a
 * fields transform on B, checksum_sink on C; the nodes start in reverse
 * order (C, B, A), so each producer waits for its consumer's node. Every
 * record must reach C exactly once and each node's ledger must balance.
 * A rogue node B with a key pair of its own, in a fourth namespace, is
 * refused by C and gets nothing. The same topology with `insecure: true`
 * runs over plain tcp and says so loudly.
 *
 * The namespace tests need root (skipped with the reason otherwise); one
 * test runs the three nodes on loopback and needs nothing special.
 */
#include <criterion/criterion.h>

#include "nodes.h"
#include "testutil.h"

#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define N_RECORDS 20000
#define CHECKSUM_SO SL_TEST_BINARY_DIR "/tests/plugins/checksum_sink.so"

TestSuite(multihost, .init = sl_test_tmpdir_setup, .fini = sl_nodes_fini,
          .timeout = 60);

/* The topology: hosts at addresses a, b, c (ports from base), keys from
 * key_dir (NULL: insecure, no keys). */
static void s_topology(const char *file, const char *a, const char *b,
                       const char *c, unsigned base_b, unsigned base_c,
                       const char *keys)
{
    char *yaml = NULL;
    char ka[128] = "", kb[128] = "", kc[128] = "";
    if (keys) {
        snprintf(ka, sizeof(ka), ", key_file: %s/A.pub", keys);
        snprintf(kb, sizeof(kb), ", key_file: %s/B.pub", keys);
        snprintf(kc, sizeof(kc), ", key_file: %s/C.pub", keys);
    }
    cr_assert_gt(asprintf(&yaml,
        "name: spread\n"
        "%s\n"
        "hosts:\n"
        "  A: {address: %s%s}\n"
        "  B: {address: %s, port: %u%s}\n"
        "  C: {address: %s, port: %u%s}\n"
        "defaults: {queue: 512, batch: 64}\n"
        "stages:\n"
        "  - name: gen\n"
        "    plugin: generator\n"
        "    config: {count: %d}\n"
        "  - name: shape\n"
        "    plugin: fields\n"
        "    host: B\n"
        "    config: {set: {via: b}}\n"
        "  - name: sink\n"
        "    plugin: %s\n"
        "    host: C\n"
        "    config: {path: out.sums, track_ids: true}\n",
        keys ? "keys_dir: keys" : "insecure: true", a, ka, b, base_b, kb, c,
        base_c, kc, N_RECORDS, CHECKSUM_SO), 0);
    cr_assert_eq(sl_test_write_file(sl_nodes_path(file), yaml), 0);
    free(yaml);
}

/* Each node's own ledger, and both ends of each link that crosses. */
static void s_expect_ledgers(void)
{
    sl_nodes_expect_in_log("A.log", "ledger balanced");
    sl_nodes_expect_in_log("B.log", "ledger balanced");
    sl_nodes_expect_in_log("C.log", "ledger balanced");
    sl_nodes_expect_in_log("A.log", "link 'gen' -> 'shape' (node 'A' -> 'B'): "
                             "sent 20000\n");
    sl_nodes_expect_in_log("B.log", "link 'gen' -> 'shape' (node 'A' -> 'B'): "
                             "received 20000\n");
    sl_nodes_expect_in_log("B.log", "link 'shape' -> 'sink' (node 'B' -> 'C'): "
                             "sent 20000\n");
    sl_nodes_expect_in_log("C.log", "link 'shape' -> 'sink' (node 'B' -> 'C'): "
                             "received 20000\n");
}

/* Exactly the generator's ids at C, none twice. */
static void s_expect_all_once(void)
{
    sl_test_sums_t got, want;
    sl_test_read_sums(sl_nodes_path("out.sums"), &got);
    sl_test_expected_ids(0, N_RECORDS, NULL, &want);
    sl_test_expect_ids(&got, &want);
    sl_nodes_expect_in_log("out.sums", "distinct=20000 dups=0 ");
}

/* Every node runs with a grace period of 1 s. */
static pid_t s_node(int host, const char *file, const char *node,
                    const char *log)
{
    return sl_nodes_start(host, file, node, log, "1s");
}

Test(multihost, three_hosts_in_reverse_order_and_a_rogue)
{
    sl_nodes_need_netns();
    sl_nodes_create(4);
    const char *a = sl_nodes_ns.addr[0], *b = sl_nodes_ns.addr[1], *c = sl_nodes_ns.addr[2],
               *d = sl_nodes_ns.addr[3];
    sl_nodes_keygen("keys", "A");
    sl_nodes_keygen("keys", "B");
    sl_nodes_keygen("keys", "C");
    s_topology("spread.yaml", a, b, c, 7700, 7700, "keys");

    /* The rogue: node B by its own topology and key pair (its keys_dir
     * holds A's and C's public keys and a B.key of its own), in D. */
    cr_assert_eq(mkdir(sl_nodes_path("rogue"), 0700), 0);
    sl_nodes_keygen("rogue/keys", "B");
    for (const char *n = "AC"; *n; n++) {
        char from[16], to[32];
        snprintf(from, sizeof(from), "keys/%c.pub", *n);
        snprintf(to, sizeof(to), "rogue/keys/%c.pub", *n);
        char *text = sl_test_read_file(sl_nodes_path(from), NULL);
        cr_assert(text);
        cr_assert_eq(sl_test_write_file(sl_nodes_path(to), text), 0);
        free(text);
    }
    s_topology("rogue/spread.yaml", a, d, c, 7700, 7700, "keys");

    pid_t pc = s_node(2, "spread.yaml", "C", "C.log");
    pid_t pr = s_node(3, "rogue/spread.yaml", "B", "rogue.log");
    /* C refuses it; the rogue ends at once, naming C. */
    sl_nodes_expect_exit(1, pr, "rogue.log", 1);
    sl_nodes_expect_in_log("rogue.log", "link to 'sink' on node 'C' (tcp://");
    sl_nodes_expect_in_log("rogue.log", "the node refused this node's key (ZAP "
                                 "status 400)");
    char want[128];
    snprintf(want, sizeof(want), "denied a CURVE client from %s: key not in "
             "the topology", d);
    free(sl_test_wait_log(sl_nodes_path("C.log"), want, 20));

    pid_t pb = s_node(1, "spread.yaml", "B", "B.log");
    pid_t pa = s_node(0, "spread.yaml", "A", "A.log");
    sl_nodes_expect_exit(1, pa, "A.log", 0);
    sl_nodes_expect_exit(1, pb, "B.log", 0);
    sl_nodes_expect_exit(1, pc, "C.log", 0);
    s_expect_ledgers();
    s_expect_all_once();
    snprintf(want, sizeof(want), "accepted node B (CURVE) from %s", b);
    sl_nodes_expect_in_log("C.log", want);
    snprintf(want, sizeof(want), "accepted node A (CURVE) from %s", a);
    sl_nodes_expect_in_log("B.log", want);
}

Test(multihost, insecure_runs_over_plain_tcp_and_warns)
{
    sl_nodes_need_netns();
    sl_nodes_create(3);
    s_topology("plain.yaml", sl_nodes_ns.addr[0], sl_nodes_ns.addr[1], sl_nodes_ns.addr[2], 7700,
               7700, NULL);
    pid_t pc = s_node(2, "plain.yaml", "C", "C.log");
    pid_t pb = s_node(1, "plain.yaml", "B", "B.log");
    pid_t pa = s_node(0, "plain.yaml", "A", "A.log");
    sl_nodes_expect_exit(1, pa, "A.log", 0);
    sl_nodes_expect_exit(1, pb, "B.log", 0);
    sl_nodes_expect_exit(1, pc, "C.log", 0);
    for (const char *n = "ABC"; *n; n++) {
        char log[8], want[96];
        snprintf(log, sizeof(log), "%c.log", *n);
        snprintf(want, sizeof(want), "INSECURE: node '%c' links to other "
                 "nodes over plain tcp", *n);
        sl_nodes_expect_in_log(log, want);
    }
    s_expect_ledgers();
    s_expect_all_once();
}

/* Without namespaces: the three nodes on loopback, each with its own
 * ports, started producer first (each waits for its consumer's node). */
Test(multihost, loopback_nodes)
{
    sl_nodes_keygen("keys", "A");
    sl_nodes_keygen("keys", "B");
    sl_nodes_keygen("keys", "C");
    unsigned base = 20000 + (unsigned)(getpid() % 20000);
    s_topology("lo.yaml", "127.0.0.1", "127.0.0.1", "127.0.0.1", base + 10,
               base + 20, "keys");
    char *check = NULL;
    char cmd[8500];
    snprintf(cmd, sizeof(cmd), "%s check %s --node B 2>&1", sl_test_cli(),
             sl_nodes_path("lo.yaml"));
    cr_assert_eq(sl_test_run(cmd, &check), 0, "%s", check);
    cr_assert(strstr(check, "lo.yaml: ok (3 stages, 1 on node 'B')\n"), "%s",
              check);
    free(check);
    pid_t pa = s_node(-1, "lo.yaml", "A", "A.log");
    pid_t pb = s_node(-1, "lo.yaml", "B", "B.log");
    pid_t pc = s_node(-1, "lo.yaml", "C", "C.log");
    sl_nodes_expect_exit(0, pa, "A.log", 0);
    sl_nodes_expect_exit(0, pb, "B.log", 0);
    sl_nodes_expect_exit(0, pc, "C.log", 0);
    s_expect_ledgers();
    s_expect_all_once();
}

/* Addresses may be host names (resolved to bind) and IPv6 addresses. */
Test(multihost, host_names_and_ipv6)
{
    int v6 = socket(AF_INET6, SOCK_STREAM, 0);
    struct sockaddr_in6 lo6 = {.sin6_family = AF_INET6,
                               .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    int have_v6 = v6 >= 0 && bind(v6, (struct sockaddr *)&lo6,
                                  sizeof(lo6)) == 0;
    if (v6 >= 0)
        close(v6);
    if (!have_v6)
        cr_skip_test("no IPv6 loopback here");
    sl_nodes_keygen("keys", "A");
    sl_nodes_keygen("keys", "B");
    sl_nodes_keygen("keys", "C");
    unsigned base = 20000 + (unsigned)((getpid() + 13) % 20000);
    s_topology("names.yaml", "localhost", "localhost", "\"::1\"", base + 10,
               base + 20, "keys");
    pid_t pc = s_node(-1, "names.yaml", "C", "C.log");
    pid_t pb = s_node(-1, "names.yaml", "B", "B.log");
    pid_t pa = s_node(-1, "names.yaml", "A", "A.log");
    sl_nodes_expect_exit(0, pa, "A.log", 0);
    sl_nodes_expect_exit(0, pb, "B.log", 0);
    sl_nodes_expect_exit(0, pc, "C.log", 0);
    s_expect_ledgers();
    s_expect_all_once();
    sl_nodes_expect_in_log("C.log", "accepted node B (CURVE) from ::1");
}

Test(multihost, unknown_node_and_missing_key)
{
    sl_nodes_keygen("keys", "A");
    sl_nodes_keygen("keys", "B");
    sl_nodes_keygen("keys", "C");
    s_topology("t.yaml", "127.0.0.1", "127.0.0.2", "127.0.0.3", 7700, 7700,
               "keys");
    char *out = NULL, cmd[8500];
    snprintf(cmd, sizeof(cmd), "%s run %s --node D 2>&1", sl_test_cli(),
             sl_nodes_path("t.yaml"));
    cr_assert_eq(sl_test_run(cmd, &out), 2, "%s", out);
    cr_assert_str_eq(out, "sluice run: --node D: no such host; the "
                          "topology's hosts are 'A', 'B', 'C'\n");
    free(out);
    cr_assert_eq(unlink(sl_nodes_path("keys/B.key")), 0);
    snprintf(cmd, sizeof(cmd), "%s check %s --node B 2>&1", sl_test_cli(),
             sl_nodes_path("t.yaml"));
    cr_assert_eq(sl_test_run(cmd, &out), 2, "%s", out);
    cr_assert(strstr(out, "t.yaml: node 'B': "), "%s", out);
    cr_assert(strstr(out, "keys/B.key"), "%s", out);
    free(out);
}

/* A node whose topology has the wrong key for its consumer's node keeps
 * retrying and says why; a stop ends both nodes after the grace period
 * even though their other peers never came, and the consumer's ledger
 * names the link that had no end-of-stream. */
Test(multihost, wrong_server_key_warns_and_a_stop_ends_waiting_nodes)
{
    sl_nodes_keygen("keys", "A");
    sl_nodes_keygen("keys", "B");
    sl_nodes_keygen("keys", "C");
    sl_nodes_keygen("other", "C");
    unsigned base = 20000 + (unsigned)((getpid() + 7) % 20000);
    s_topology("lo.yaml", "127.0.0.1", "127.0.0.1", "127.0.0.1", base + 10,
               base + 20, "keys");
    char *yaml = sl_test_read_file(sl_nodes_path("lo.yaml"), NULL);
    cr_assert(yaml);
    char *k = strstr(yaml, "keys/C.pub");
    cr_assert(k);
    char *wrong = NULL;
    cr_assert_gt(asprintf(&wrong, "%.*sother/C.pub%s", (int)(k - yaml), yaml,
                          k + strlen("keys/C.pub")), 0);
    cr_assert_eq(sl_test_write_file(sl_nodes_path("wrong.yaml"), wrong), 0);
    free(wrong);
    free(yaml);

    pid_t pc = s_node(-1, "lo.yaml", "C", "C.log");
    pid_t pb = s_node(-1, "wrong.yaml", "B", "B.log");
    free(sl_test_wait_log(sl_nodes_path("B.log"), "the connection closed before the link "
                          "was up; retrying. Does hosts: C: key match the "
                          "key that node runs with?", 20));
    cr_assert_eq(kill(pb, SIGTERM), 0);
    cr_assert_eq(kill(pc, SIGTERM), 0);
    sl_nodes_expect_exit(0, pb, "B.log", 1);
    sl_nodes_expect_exit(0, pc, "C.log", 3);
    sl_nodes_expect_in_log("B.log", "no end-of-stream from 'gen' on node 'A' by the "
                             "end of the grace period: its link counts as "
                             "ended");
    sl_nodes_expect_in_log("C.log", "no end-of-stream from 'shape' on node 'B' by "
                             "the end of the grace period");
    sl_nodes_expect_in_log("C.log", "link 'shape' -> 'sink' (node 'B' -> 'C'): "
                             "received 0, no end-of-stream\n");
    sl_nodes_expect_in_log("C.log", "link 'shape' -> 'sink': no end-of-stream\n");
}
