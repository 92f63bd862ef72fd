/* Topologies across hosts: `hosts:`, `keys_dir:`, `insecure:` and a
 * stage's `host:`, resolved and refused with exact FILE:LINE:COL messages.
 * Needs the bundled generator and null plugins (skipped until built). */
#include <criterion/criterion.h>

#include "curve.h"
#include "topology.h"
#include "testutil.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static sl_diag_t g_diag;
static sl_topology_t *g_topo;
static char g_ka[SL_CURVE_KEY_LEN + 1], g_kb[SL_CURVE_KEY_LEN + 1];

static void setup(void)
{
    sl__diag_init(&g_diag);
    g_topo = NULL;
    sl_curve_keys_t k;
    char err[256];
    cr_assert_eq(sl__curve_keypair(&k, err, sizeof(err)), 0, "%s", err);
    memcpy(g_ka, k.public_key, sizeof(g_ka));
    cr_assert_eq(sl__curve_keypair(&k, err, sizeof(err)), 0, "%s", err);
    memcpy(g_kb, k.public_key, sizeof(g_kb));
    sl_test_tmpdir_setup();
}

static void teardown(void)
{
    sl__topology_destroy(&g_topo);
    sl__diag_fini(&g_diag);
    sl_test_tmpdir_teardown();
}

TestSuite(topology_hosts, .init = setup, .fini = teardown);

static void needs_plugins(void)
{
    static const char *const names[] = {"generator", "null"};
    for (size_t i = 0; i < 2; i++) {
        char path[1024];
        snprintf(path, sizeof(path), "%s/stages/%s.so", SL_TEST_BINARY_DIR,
                 names[i]);
        if (access(path, R_OK) != 0)
            cr_skip_test("bundled plugins are not built yet");
    }
}

/* The YAML with %A and %B replaced by the two test keys. */
static sl_topology_t *parse(const char *yaml)
{
    needs_plugins();
    char *text = malloc(strlen(yaml) * 2 + 200), *o = text;
    cr_assert(text);
    for (const char *q = yaml; *q; q++) {
        if (q[0] == '%' && (q[1] == 'A' || q[1] == 'B')) {
            o = stpcpy(o, q[1] == 'A' ? g_ka : g_kb);
            q++;
        } else {
            *o++ = *q;
        }
    }
    *o = '\0';
    g_topo = sl__topology_parse("topo.yaml", "/base", text, &g_diag);
    free(text);
    return g_topo;
}

#define TWO_HOSTS                                                         \
    "hosts:\n"                                                            \
    "  a: {address: 10.0.0.1, key: \"%A\"}\n"                             \
    "  b: {address: 10.0.0.2, port: 8000, key: \"%B\"}\n"

Test(topology_hosts, placed_with_defaults)
{
    sl_topology_t *t = parse(TWO_HOSTS
                             "stages:\n"
                             "  - {name: gen, plugin: generator, "
                             "config: {count: 5}}\n"
                             "  - {name: out, plugin: null, host: b}\n");
    cr_assert(t, "%s", sl_test_diag_text(&g_diag));
    cr_assert_eq(t->n_hosts, 2);
    cr_assert_str_eq(t->hosts[0].name, "a");
    cr_assert_str_eq(t->hosts[0].address, "10.0.0.1");
    cr_assert_eq(t->hosts[0].port, SL_TOPO_DEFAULT_PORT);
    cr_assert_eq(t->hosts[1].port, 8000);
    cr_assert_str_eq(t->hosts[1].key, g_kb);
    cr_assert_eq(t->stages[0].host, 0, "no host: the first one");
    cr_assert_eq(t->stages[1].host, 1);
    cr_assert_str_eq(t->keys_dir, "/base");
    cr_assert_eq(t->insecure, 0);
    cr_assert_eq(t->peer_timeout_ms, 10000);
    cr_assert_eq(t->run_node, -1);
    char err[256];
    cr_assert_eq(sl__topology_set_node(t, "b", err, sizeof(err)), 0);
    cr_assert_eq(t->run_node, 1);
    cr_assert_eq(sl__topology_set_node(t, "c", err, sizeof(err)), -ENOENT);
    cr_assert_str_eq(err, "--node c: no such host; the topology's hosts are "
                          "'a', 'b'");
}

Test(topology_hosts, without_hosts_unchanged)
{
    sl_topology_t *t = parse("stages:\n"
                             "  - {name: gen, plugin: generator, "
                             "config: {count: 5}}\n"
                             "  - {name: out, plugin: null}\n");
    cr_assert(t, "%s", sl_test_diag_text(&g_diag));
    cr_assert_eq(t->n_hosts, 0);
    cr_assert_eq(t->stages[0].host, -1);
    cr_assert_eq(t->stages[1].host, -1);
    char err[256];
    cr_assert_eq(sl__topology_set_node(t, "a", err, sizeof(err)), -ENOENT);
    cr_assert_str_eq(err, "--node a: the topology has no 'hosts:'; it runs "
                          "whole in one process");
}

Test(topology_hosts, unknown_host)
{
    cr_assert_null(parse(TWO_HOSTS
                         "stages:\n"
                         "  - {name: gen, plugin: generator, "
                         "config: {count: 5}, host: bb}\n"
                         "  - {name: out, plugin: null, host: 7}\n"));
    sl_test_expect_line(&g_diag, "topo.yaml:5:62: stage 'gen': unknown host "
                                 "'bb'");
    sl_test_expect_line(&g_diag, "topo.yaml:6:37: stage 'out': unknown host "
                                 "'7'");
    cr_assert_eq(g_diag.count, 2, "%s", sl_test_diag_text(&g_diag));
}

Test(topology_hosts, host_without_hosts_map)
{
    cr_assert_null(parse("stages:\n"
                         "  - {name: gen, plugin: generator, "
                         "config: {count: 5}}\n"
                         "  - {name: out, plugin: null, host: a}\n"));
    sl_test_expect_line(&g_diag, "topo.yaml:3:37: stage 'out': 'host' needs "
                                 "a 'hosts:' map at the top level");
}

Test(topology_hosts, duplicate_ports)
{
    cr_assert_null(parse("hosts:\n"
                         "  a: {address: 10.0.0.1, key: \"%A\"}\n"
                         "  b: {address: 10.0.0.1, port: 7701, "
                         "key: \"%B\"}\n"
                         "stages:\n"
                         "  - {name: gen, plugin: generator, "
                         "config: {count: 5}}\n"
                         "  - {name: out, plugin: null, host: b}\n"));
    sl_test_expect_line(&g_diag, "topo.yaml:3:32: host 'b': ports 7701..7702 "
                                 "overlap those of host 'a' (7700..7701) at "
                                 "the same address 10.0.0.1");
    cr_assert_eq(g_diag.count, 1, "%s", sl_test_diag_text(&g_diag));
}

Test(topology_hosts, port_out_of_range)
{
    cr_assert_null(parse("hosts:\n"
                         "  a: {address: h1, port: 65535, key: \"%A\"}\n"
                         "  b: {address: h2, port: 0, key: \"%B\"}\n"
                         "stages:\n"
                         "  - {name: gen, plugin: generator, "
                         "config: {count: 5}}\n"
                         "  - {name: out, plugin: null}\n"));
    sl_test_expect_line(&g_diag, "topo.yaml:2:26: host 'a': ports "
                                 "65535..65536 (port + stage index) go "
                                 "beyond 65535");
    sl_test_expect_line(&g_diag, "topo.yaml:3:26: host 'b': 'port' must be "
                                 "a TCP port from 1 to 65535, got integer '0'");
}

Test(topology_hosts, stage_on_host_without_key)
{
    cr_assert_null(parse("hosts:\n"
                         "  a: {address: 10.0.0.1, key: \"%A\"}\n"
                         "  b: {address: 10.0.0.2}\n"
                         "stages:\n"
                         "  - {name: gen, plugin: generator, "
                         "config: {count: 5}}\n"
                         "  - {name: out, plugin: null, host: b}\n"));
    sl_test_expect_line(&g_diag, "topo.yaml:6:37: stage 'out' runs on host "
                                 "'b', which has no 'key' or 'key_file' (run "
                                 "`sluice keygen b`, or set 'insecure: true' "
                                 "for plain tcp)");
    cr_assert_eq(g_diag.count, 1, "%s", sl_test_diag_text(&g_diag));
}

Test(topology_hosts, insecure_needs_no_keys)
{
    sl_topology_t *t = parse("insecure: true\n"
                             "hosts:\n"
                             "  a: {address: 10.0.0.1}\n"
                             "  b: {address: 10.0.0.2}\n"
                             "stages:\n"
                             "  - {name: gen, plugin: generator, "
                             "config: {count: 5}}\n"
                             "  - {name: out, plugin: null, host: b}\n");
    cr_assert(t, "%s", sl_test_diag_text(&g_diag));
    cr_assert_eq(t->insecure, 1);
    cr_assert_str_eq(t->hosts[1].key, "");
}

Test(topology_hosts, bad_values)
{
    cr_assert_null(parse("insecure: maybe\n"
                         "keys_dir: 3\n"
                         "hosts:\n"
                         "  a: {address: 10.0.0.1, key: \"short\"}\n"
                         "  b: {port: 8000, key: \"%B\", key_file: b.pub}\n"
                         "  c: {address: 10.0.0.3, colour: red, "
                         "key: \"%A\"}\n"
                         "  .d: {address: 10.0.0.4}\n"
                         "stages:\n"
                         "  - {name: gen, plugin: generator, "
                         "config: {count: 5}}\n"
                         "  - {name: out, plugin: null}\n"));
    sl_test_expect_line(&g_diag, "topo.yaml:1:11: 'insecure' must be true or "
                                 "false, got string 'maybe'");
    sl_test_expect_prefix(&g_diag, "topo.yaml:2:11: 'keys_dir' must be a "
                                   "directory path, got ");
    sl_test_expect_prefix(&g_diag, "topo.yaml:4:31: key of host 'a' is 5 characters long");
    sl_test_expect_line(&g_diag, "topo.yaml:5:6: host 'b': missing required "
                                 "key 'address'");
    sl_test_expect_prefix(&g_diag, "topo.yaml:6:26: unknown key 'colour' in "
                                   "host 'c'");
    sl_test_expect_prefix(&g_diag, "topo.yaml:7:7: host '.d': node name '.d' "
                                   "starts with '.'");
    cr_assert_eq(g_diag.count, 6, "%s", sl_test_diag_text(&g_diag));
}

Test(topology_hosts, key_and_key_file)
{
    cr_assert_null(parse("hosts:\n"
                         "  a: {address: h, key: \"%A\", key_file: a.pub}\n"
                         "stages:\n"
                         "  - {name: gen, plugin: generator, "
                         "config: {count: 5}}\n"
                         "  - {name: out, plugin: null}\n"));
    sl_test_expect_line(&g_diag, "topo.yaml:2:78: host 'a': give 'key' or "
                                 "'key_file', not both");
    cr_assert_eq(g_diag.count, 1, "%s", sl_test_diag_text(&g_diag));
}

Test(topology_hosts, key_file_read)
{
    needs_plugins();
    sl_curve_keys_t k;
    char err[256];
    cr_assert_eq(sl__curve_keypair(&k, err, sizeof(err)), 0);
    char dir[1024];
    snprintf(dir, sizeof(dir), "%s/keys", sl_test_dir());
    cr_assert_eq(sl__curve_write(dir, "a", &k, 0, err, sizeof(err)), 0, "%s",
                 err);
    const char *yaml = "keys_dir: keys\n"
                       "hosts:\n"
                       "  a: {address: h, key_file: keys/a.pub}\n"
                       "  b: {address: h2, key_file: keys/missing.pub}\n"
                       "stages:\n"
                       "  - {name: gen, plugin: generator, "
                       "config: {count: 5}}\n"
                       "  - {name: out, plugin: null}\n";
    g_topo = sl__topology_parse("topo.yaml", sl_test_dir(), yaml, &g_diag);
    cr_assert_null(g_topo);
    sl_test_expect_prefix(&g_diag, "topo.yaml:4:30: host 'b': key_file: ");
    cr_assert_eq(g_diag.count, 1, "%s", sl_test_diag_text(&g_diag));
    sl__diag_fini(&g_diag);
    sl__diag_init(&g_diag);
    const char *good = "keys_dir: keys\n"
                       "hosts:\n"
                       "  a: {address: h, key_file: keys/a.pub}\n"
                       "stages:\n"
                       "  - {name: gen, plugin: generator, "
                       "config: {count: 5}}\n"
                       "  - {name: out, plugin: null}\n";
    g_topo = sl__topology_parse("topo.yaml", sl_test_dir(), good, &g_diag);
    cr_assert(g_topo, "%s", sl_test_diag_text(&g_diag));
    cr_assert_str_eq(g_topo->hosts[0].key, k.public_key);
    cr_assert_str_eq(g_topo->keys_dir, dir);
}

Test(topology_hosts, dead_letter_stage_across_nodes)
{
    cr_assert_null(parse(TWO_HOSTS
                         "stages:\n"
                         "  - {name: gen, plugin: generator, "
                         "config: {count: 5}, dead_letter: {stage: bad}}\n"
                         "  - {name: out, plugin: null}\n"
                         "  - {name: bad, plugin: null, host: b}\n"));
    sl_test_expect_line(&g_diag, "topo.yaml:5:77: stage 'gen' (host 'a') has "
                                 "its dead-letter stage 'bad' on host 'b'; "
                                 "dead-letter links cannot cross nodes yet");
    cr_assert_eq(g_diag.count, 1, "%s", sl_test_diag_text(&g_diag));
}

Test(topology_hosts, keys_dir_needs_hosts)
{
    cr_assert_null(parse("keys_dir: k\n"
                         "stages:\n"
                         "  - {name: gen, plugin: generator, "
                         "config: {count: 5}}\n"
                         "  - {name: out, plugin: null}\n"));
    sl_test_expect_line(&g_diag, "topo.yaml:1:11: 'keys_dir' is for "
                                 "topologies with 'hosts:'");
}

Test(topology_hosts, peer_timeout)
{
    sl_topology_t *t = parse("peer_timeout: 3s\n" TWO_HOSTS
                             "stages:\n"
                             "  - {name: gen, plugin: generator, "
                             "config: {count: 5}}\n"
                             "  - {name: out, plugin: null, host: b}\n");
    cr_assert(t, "%s", sl_test_diag_text(&g_diag));
    cr_assert_eq(t->peer_timeout_ms, 3000);
    sl__topology_destroy(&g_topo);
    cr_assert_null(parse("peer_timeout: 100ms\n" TWO_HOSTS
                         "stages:\n"
                         "  - {name: gen, plugin: generator, "
                         "config: {count: 5}}\n"
                         "  - {name: out, plugin: null, host: b}\n"));
    sl_test_expect_line(&g_diag, "topo.yaml:1:15: 'peer_timeout' must be at "
                                 "least 200ms (heartbeats go 4 times in that "
                                 "time), got string '100ms'");
    sl__topology_destroy(&g_topo);
    sl__diag_fini(&g_diag);
    sl__diag_init(&g_diag);
    cr_assert_null(parse("peer_timeout: soon\n" TWO_HOSTS
                         "stages:\n"
                         "  - {name: gen, plugin: generator, "
                         "config: {count: 5}}\n"
                         "  - {name: out, plugin: null, host: b}\n"));
    sl_test_expect_line(&g_diag, "topo.yaml:1:15: topology: 'peer_timeout' "
                                 "must be a duration such as 500ms, 2s or 1m "
                                 "(a bare number is milliseconds), got "
                                 "string 'soon'");
    sl__topology_destroy(&g_topo);
    sl__diag_fini(&g_diag);
    sl__diag_init(&g_diag);
    cr_assert_null(parse("peer_timeout: 5s\n"
                         "stages:\n"
                         "  - {name: gen, plugin: generator, "
                         "config: {count: 5}}\n"
                         "  - {name: out, plugin: null}\n"));
    sl_test_expect_line(&g_diag, "topo.yaml:1:15: 'peer_timeout' is for "
                                 "topologies with 'hosts:'");
}

Test(topology_hosts, no_state_dir_across_nodes)
{
    cr_assert_null(parse("state_dir: /tmp\n"
                         TWO_HOSTS
                         "stages:\n"
                         "  - {name: gen, plugin: generator, "
                         "config: {count: 5}}\n"
                         "  - {name: out, plugin: null}\n"));
    sl_test_expect_line(&g_diag, "topo.yaml:1:12: 'state_dir' cannot be used "
                                 "with 'hosts:' yet: source positions are "
                                 "only committed within one node");
    cr_assert_eq(g_diag.count, 1, "%s", sl_test_diag_text(&g_diag));
}
