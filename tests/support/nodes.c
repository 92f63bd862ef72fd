#include "nodes.h"

#include <criterion/criterion.h>

#include "curve.h"
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

sl_netns_t sl_nodes_ns;

void sl_nodes_fini(void)
{
    sl_netns_destroy(&sl_nodes_ns);
    sl_test_tmpdir_teardown();
}

void sl_nodes_need_netns(void)
{
    char why[512];
    if (!sl_netns_available(why, sizeof(why)))
        cr_skip_test("%s", why);
}

void sl_nodes_create(unsigned count)
{
    char err[2048] = "";
    cr_assert_eq(sl_netns_create(&sl_nodes_ns, count, err, sizeof(err)), 0,
                 "%s", err);
}

char *sl_nodes_path(const char *name)
{
    static char buf[8][4200];
    static int next;
    char *p = buf[next++ % 8];
    snprintf(p, sizeof(buf[0]), "%s/%s", sl_test_dir(), name);
    return p;
}

char *sl_nodes_log(const char *log)
{
    char *text = sl_test_read_file(sl_nodes_path(log), NULL);
    return text ? text : strdup("(no log)");
}

void sl_nodes_keygen(const char *dir, const char *name)
{
    sl_curve_keys_t k;
    char err[512];
    cr_assert_eq(sl__curve_keypair(&k, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(sl__curve_write(sl_nodes_path(dir), name, &k, 0, err,
                                 sizeof(err)), 0, "%s", err);
}

pid_t sl_nodes_start(int host, const char *file, const char *node,
                     const char *log, const char *grace)
{
    const char *argv[] = {sl_test_cli(), "run", sl_nodes_path(file), "--node",
                          node, "--grace", grace, NULL};
    pid_t pid = host < 0
                    ? sl_test_spawn_cli(sl_nodes_path(log), argv + 1)
                    : sl_netns_spawn(&sl_nodes_ns, (unsigned)host, argv,
                                     sl_nodes_path(log));
    cr_assert_gt(pid, 0);
    return pid;
}

int sl_nodes_wait(int netns, pid_t pid, double timeout_s)
{
    return netns ? sl_netns_wait(&sl_nodes_ns, pid, timeout_s)
                 : sl_test_wait_exit(pid, timeout_s);
}

void sl_nodes_expect_exit(int netns, pid_t pid, const char *log, int want)
{
    int rc = sl_nodes_wait(netns, pid, 40);
    char *text = sl_nodes_log(log);
    cr_assert_eq(rc, want, "%s ended with %d (want %d):\n%s", log, rc, want,
                 text);
    free(text);
}

void sl_nodes_expect_in_log(const char *log, const char *want)
{
    char *text = sl_nodes_log(log);
    cr_assert(strstr(text, want), "%s lacks \"%s\":\n%s", log, want, text);
    free(text);
}
