/*
 * Nodes that fail while a run across hosts goes on (network namespaces A,
 * B and C: a generator on A, a fields transform on B, a file sink on C):
 *
 * - node B (two stages) killed with SIGKILL mid-run and started again:
 *   every record reaches C, those B held in either stage included; those
 *   it had passed on but not had acknowledged come again (at-least-once),
 *   and the nodes count what they sent again;
 * - node B frozen (SIGSTOP): its peers notice within peer_timeout, by
 *   heartbeats alone, and once it runs again nothing is lost and nothing
 *   arrives twice (the same process keeps its place in each link);
 * - a slow sink on C: the source on A is held back across two links, and
 *   no node's memory grows with the data.
 *
 * Needs root for the namespaces (skipped with the reason otherwise).
 */
#include <criterion/criterion.h>

#include "nodes.h"
#include "testutil.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

TestSuite(restart, .init = sl_test_tmpdir_setup, .fini = sl_nodes_fini,
          .timeout = 90);

/* The topology over the namespaces' addresses. sink_stages: what runs on
 * C, after `shape`, ending in a stage named `sink`. */
static void s_topology(unsigned count, unsigned rate, unsigned size,
                       const char *peer_timeout, const char *sink_stages)
{
    char *yaml = NULL;
    cr_assert_gt(asprintf(&yaml,
        "name: spread\n"
        "keys_dir: keys\n"
        "peer_timeout: %s\n"
        "hosts:\n"
        "  A: {address: %s, key_file: keys/A.pub}\n"
        "  B: {address: %s, key_file: keys/B.pub}\n"
        "  C: {address: %s, key_file: keys/C.pub}\n"
        "defaults: {queue: 512, batch: 64}\n"
        "stages:\n"
        "  - name: gen\n"
        "    plugin: generator\n"
        "    config: {count: %u, rate: %u, size: %u}\n"
        "  - name: shape\n"
        "    plugin: fields\n"
        "    host: B\n"
        "    config: {set: {via: b}}\n"
        "%s",
        peer_timeout, sl_nodes_ns.addr[0], sl_nodes_ns.addr[1],
        sl_nodes_ns.addr[2], count, rate, size, sink_stages), 0);
    cr_assert_eq(sl_test_write_file(sl_nodes_path("spread.yaml"), yaml), 0);
    free(yaml);
}

/* A JSON-lines sink on C that writes as it goes, so that progress shows. */
static const char s_file_sink[] =
    "  - name: sink\n"
    "    plugin: file_sink\n"
    "    host: C\n"
    "    from: shape\n"
    "    config: {path: out.jsonl, flush_every: 100}\n";

/* Two stages on B, the second slower than the rate, so that its queue is
 * full when B dies: what `shape` had passed to `tag` must come again from
 * A too. */
static const char s_tag_then_sink[] =
    "  - name: tag\n"
    "    plugin: delay\n"
    "    host: B\n"
    "    from: shape\n"
    "    config: {ms: 0.1}\n"
    "  - name: sink\n"
    "    plugin: file_sink\n"
    "    host: C\n"
    "    from: tag\n"
    "    config: {path: out.jsonl, flush_every: 100}\n";

static void s_setup(void)
{
    sl_nodes_need_netns();
    sl_nodes_create(3);
    sl_nodes_keygen("keys", "A");
    sl_nodes_keygen("keys", "B");
    sl_nodes_keygen("keys", "C");
}

static size_t s_lines(const char *file)
{
    size_t len = 0, n = 0;
    char *text = sl_test_read_file(sl_nodes_path(file), &len);
    for (char *p = text, *end = text + len;
         p && (p = memchr(p, '\n', (size_t)(end - p))); p++)
        n++;
    free(text);
    return n;
}

static void s_wait_lines(const char *file, size_t want, double timeout_s)
{
    double end = sl_test_now() + timeout_s;
    size_t got;
    while ((got = s_lines(file)) < want && sl_test_now() < end)
        nanosleep(&(struct timespec){0, 20000000}, NULL);
    cr_assert_geq(got, want, "%s has %zu lines after %.0f s, want %zu", file,
                  got, timeout_s, want);
}

/* How often each seq 0..count-1 is in out.jsonl; every one must be there.
 * Returns the records that came twice or more (beyond the first). */
static size_t s_expect_every_seq(unsigned count)
{
    size_t len = 0, extra = 0;
    char *text = sl_test_read_file(sl_nodes_path("out.jsonl"), &len);
    cr_assert(text, "no out.jsonl");
    unsigned *seen = calloc(count, sizeof(*seen));
    cr_assert(seen);
    /* line by line: a strstr over megabytes is quadratic under ASan */
    static const char key[] = "{\"seq\":";
    for (char *p = text, *end = text + len; p < end;) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        cr_assert(nl, "a line without its end");
        cr_assert_eq(strncmp(p, key, sizeof(key) - 1), 0, "%.*s",
                     (int)(nl - p), p);
        unsigned long v = strtoul(p + sizeof(key) - 1, NULL, 10);
        cr_assert_lt(v, count, "seq %lu out of range", v);
        if (seen[v]++)
            extra++;
        p = nl + 1;
    }
    for (unsigned i = 0; i < count; i++)
        cr_assert_gt(seen[i], 0, "seq %u never reached the sink", i);
    free(seen);
    free(text);
    return extra;
}

/* The number in the summary line "  N records sent again", or 0. */
static unsigned long s_resent(const char *log)
{
    char *text = sl_nodes_log(log);
    unsigned long n = 0;
    for (char *line = text; line && *line; line = strchr(line, '\n')) {
        line += *line == '\n';
        char *end = strchr(line, '\n');
        char *hit = strstr(line, " sent again");
        if (line[0] == ' ' && line[1] == ' ' && hit && (!end || hit < end))
            n = strtoul(line + 2, NULL, 10);
    }
    free(text);
    return n;
}

static void s_expect_balanced(const char *log)
{
    sl_nodes_expect_in_log(log, "ledger balanced");
}

Test(restart, kill9_of_the_middle_node_loses_nothing)
{
    s_setup();
    const unsigned n = 60000;
    s_topology(n, 15000, 0, "2s", s_tag_then_sink);
    pid_t pc = sl_nodes_start(2, "spread.yaml", "C", "C.log", "5s");
    pid_t pb = sl_nodes_start(1, "spread.yaml", "B", "B.log", "5s");
    pid_t pa = sl_nodes_start(0, "spread.yaml", "A", "A.log", "5s");
    s_wait_lines("out.jsonl", 10000, 30);
    cr_assert_eq(kill(pb, SIGKILL), 0);
    cr_assert_eq(sl_nodes_wait(1, pb, 10), 128 + SIGKILL);
    pid_t pb2 = sl_nodes_start(1, "spread.yaml", "B", "B2.log", "5s");
    sl_nodes_expect_exit(1, pa, "A.log", 0);
    sl_nodes_expect_exit(1, pb2, "B2.log", 0);
    sl_nodes_expect_exit(1, pc, "C.log", 0);

    size_t twice = s_expect_every_seq(n);
    unsigned long again = s_resent("A.log");
    sl_nodes_expect_in_log("A.log", "lost the link to 'shape' on node 'B'");
    sl_nodes_expect_in_log("A.log", "is back after ");
    sl_nodes_expect_in_log("A.log", "(the node restarted): sending ");
    sl_nodes_expect_in_log("A.log", "  connection lost 1 time\n"
                                    "  node 'B' restarted 1 time\n");
    sl_nodes_expect_in_log("C.log", "'tag' on node 'B' restarted: taking "
                                    "what it sends again");
    sl_nodes_expect_in_log("C.log", "  node 'B' restarted 1 time\n");
    /* the duplicates are records B had passed on before it died: all of
     * them were among those A sent again */
    cr_assert_gt(again, 0, "A sent nothing again");
    cr_assert_leq(twice, again, "%zu records twice at C, only %lu sent again",
                  twice, again);
    s_expect_balanced("A.log");
    s_expect_balanced("B2.log");
    s_expect_balanced("C.log");
    sl_nodes_expect_in_log("A.log", "link 'gen' -> 'shape' (node 'A' -> "
                                    "'B'): sent 60000\n");
}

Test(restart, a_frozen_node_is_found_by_heartbeats)
{
    s_setup();
    const unsigned n = 40000;
    s_topology(n, 10000, 0, "1s", s_file_sink);
    pid_t pc = sl_nodes_start(2, "spread.yaml", "C", "C.log", "5s");
    pid_t pb = sl_nodes_start(1, "spread.yaml", "B", "B.log", "5s");
    pid_t pa = sl_nodes_start(0, "spread.yaml", "A", "A.log", "5s");
    s_wait_lines("out.jsonl", 5000, 30);
    cr_assert_eq(kill(pb, SIGSTOP), 0);
    double t0 = sl_test_now();
    /* the socket stays open: only missing heartbeats tell */
    free(sl_test_wait_log(sl_nodes_path("A.log"), "lost the link to 'shape' "
                          "on node 'B' (the connection closed or the node "
                          "went silent; peer_timeout 1000 ms)", 15));
    double took = sl_test_now() - t0;
    cr_assert_eq(kill(pb, SIGCONT), 0);
    cr_assert_geq(took, 0.9, "found after %.2f s, before peer_timeout", took);
    cr_assert_leq(took, 4.0, "found after %.2f s (peer_timeout 1 s)", took);
    sl_nodes_expect_exit(1, pa, "A.log", 0);
    sl_nodes_expect_exit(1, pb, "B.log", 0);
    sl_nodes_expect_exit(1, pc, "C.log", 0);
    sl_nodes_expect_in_log("A.log", "(the same process)");
    sl_nodes_expect_in_log("B.log", "'gen' on node 'A' reconnected");
    /* the same process: every batch once, whatever went again */
    cr_assert_eq(s_expect_every_seq(n), 0, "records arrived twice");
    sl_nodes_expect_in_log("C.log", "link 'shape' -> 'sink' (node 'B' -> "
                                    "'C'): received 40000\n");
    s_expect_balanced("A.log");
    s_expect_balanced("B.log");
    s_expect_balanced("C.log");
}

static long s_rss_kib(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long kib = -1;
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
            break;
    if (f)
        fclose(f);
    return kib;
}

/* 40,000 records of 2 KB (80 MB) as fast as A can make them, into a sink
 * on C that takes 0.1 ms a record. */
Test(restart, a_slow_sink_throttles_the_source_across_nodes)
{
    s_setup();
    const unsigned n = 40000;
    s_topology(n, 0, 2000, "5s",
               "  - name: slow\n"
               "    plugin: delay\n"
               "    host: C\n"
               "    from: shape\n"
               "    config: {ms: 0.1}\n"
               "  - name: sink\n"
               "    plugin: file_sink\n"
               "    host: C\n"
               "    from: slow\n"
               "    config: {path: out.jsonl, flush_every: 100}\n");
    pid_t pid[3];
    pid[2] = sl_nodes_start(2, "spread.yaml", "C", "C.log", "5s");
    pid[1] = sl_nodes_start(1, "spread.yaml", "B", "B.log", "5s");
    pid[0] = sl_nodes_start(0, "spread.yaml", "A", "A.log", "5s");
    s_wait_lines("out.jsonl", 2000, 30);
    /* from here on the links are full: memory must stay where it is */
    long first[3], peak[3] = {0, 0, 0};
    for (int i = 0; i < 3; i++)
        first[i] = s_rss_kib(pid[i]);
    size_t lines = 0;
    while ((lines = s_lines("out.jsonl")) < n - 4000) {
        for (int i = 0; i < 3; i++) {
            long kib = s_rss_kib(pid[i]);
            if (kib > peak[i])
                peak[i] = kib;
        }
        nanosleep(&(struct timespec){0, 50000000}, NULL);
    }
    const char *logs[3] = {"A.log", "B.log", "C.log"};
    for (int i = 0; i < 3; i++)
        sl_nodes_expect_exit(1, pid[i], logs[i], 0);
    cr_assert_eq(s_expect_every_seq(n), 0);
    for (int i = 0; i < 3; i++) {
        cr_log_info("node %c: RSS %ld KiB, at most %ld KiB", 'A' + i,
                    first[i], peak[i]);
#if !defined(__SANITIZE_ADDRESS__) /* its quarantine keeps freed memory */
        cr_assert_lt(peak[i] - first[i], 16 * 1024, "node %c grew from %ld "
                     "to %ld KiB while 80 MB went through", 'A' + i,
                     first[i], peak[i]);
#endif
    }
    /* each stage's queue filled, to its bound and not beyond */
    sl_nodes_expect_in_log("B.log", "512/512");
    sl_nodes_expect_in_log("C.log", "512/512");
    s_expect_balanced("A.log");
    s_expect_balanced("B.log");
    s_expect_balanced("C.log");
}
