/* Separate network hosts for tests: Linux network namespaces joined by a
 * bridge, built and removed with iproute2's `ip`.
 *
 * sl_netns_create(ns, N) makes N host namespaces "slt<pid>-<set>-<i>"
 * and a hub namespace "slt<pid>-<set>-hub" holding a bridge. Each host has
 * loopback up and one interface, eth0, whose other end is a port of the
 * bridge, with address 10.<x>.<y>.<i+1>/24 (every host reaches every
 * other one directly). The namespaces have no link to the machine's own
 * network, so the addresses cannot clash with it or with another test's
 * set; x and y still follow the pid and set number so that the logs of
 * concurrent runs do not look alike.
 *
 * Needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN) and the `ip` binary:
 * check with sl_netns_available() and skip the test with its reason.
 * Sets whose creator process died (a crashed test) are removed by the
 * next sl_netns_create(). */
#ifndef SL_TEST_NETNS_H
#define SL_TEST_NETNS_H

#include <stddef.h>
#include <sys/types.h>

#define SL_NETNS_MAX 8
#define SL_NETNS_MAX_PROCS 32

typedef struct sl_netns {
    unsigned count;
    char prefix[32];                  /* "slt<pid>-<set>" */
    char hub[48];
    char name[SL_NETNS_MAX][48];
    char addr[SL_NETNS_MAX][16];      /* dotted quad, no prefix length */
    pid_t procs[SL_NETNS_MAX_PROCS];  /* spawned, not yet reaped */
    unsigned nprocs;
} sl_netns_t;

/* 1 when this process can make network namespaces; 0 otherwise, with the
 * reason in why (for cr_skip_test): not root / no CAP_NET_ADMIN or
 * CAP_SYS_ADMIN, no `ip` binary, or the kernel refused a trial namespace
 * (with `ip`'s message). */
int sl_netns_available(char *why, size_t len);

/* Makes count (1..SL_NETNS_MAX) connected hosts in ns (which it
 * initialises). 0, or -errno with the failing command and its output in
 * err; on failure whatever was made is removed again. */
int sl_netns_create(sl_netns_t *ns, unsigned count, char *err,
                    size_t errlen);

/* Starts argv (argv[0] a path) inside host i, stdout and stderr to the
 * file log (NULL: inherited). The child gets SIGKILL when the calling
 * thread ends (PR_SET_PDEATHSIG) and is killed and reaped by
 * sl_netns_destroy unless sl_netns_wait reaped it first. -1 on error. */
pid_t sl_netns_spawn(sl_netns_t *ns, unsigned i, const char *const *argv,
                     const char *log);

/* Waits at most timeout_s for a child started by sl_netns_spawn to end;
 * its exit code, 128 + signal, or -1 (then it was killed) like
 * sl_test_wait_exit. The child is forgotten by ns either way. */
int sl_netns_wait(sl_netns_t *ns, pid_t pid, double timeout_s);

/* Kills and reaps the children still known, deletes every namespace of
 * the set. Safe to call twice and on a set that was never created
 * (zeroed), so a suite's .fini can call it after a failed assertion. */
void sl_netns_destroy(sl_netns_t *ns);

/* 1 when a namespace called name exists (in /var/run/netns). */
int sl_netns_exists(const char *name);

#endif
