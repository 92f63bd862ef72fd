/* The nodes of one multi-host topology in a test: each a `sluice run FILE
 * --node X`, in a network namespace of its own (netns.h) or, host < 0, on
 * this machine's loopback. Paths are relative to the test's tmpdir
 * (testutil.h). Failures are Criterion assertions. */
#ifndef SL_TEST_NODES_H
#define SL_TEST_NODES_H

#include "netns.h"

#include <sys/types.h>

/* The namespaces of the running test (empty until sl_nodes_create). */
extern sl_netns_t sl_nodes_ns;

/* A suite's .fini: removes the namespaces, then the tmpdir. */
void sl_nodes_fini(void);
/* Skips the test, with the reason, where namespaces cannot be made. */
void sl_nodes_need_netns(void);
void sl_nodes_create(unsigned count);

/* tmpdir/name, in one of 8 rotating static buffers. */
char *sl_nodes_path(const char *name);
/* The text of tmpdir/log, malloc'd ("(no log)" if there is none). */
char *sl_nodes_log(const char *log);
/* A CURVE key pair NAME.key / NAME.pub in tmpdir/dir. */
void sl_nodes_keygen(const char *dir, const char *name);

/* `sluice run FILE --node NODE --grace GRACE` in host i (i < 0: here). */
pid_t sl_nodes_start(int host, const char *file, const char *node,
                     const char *log, const char *grace);
/* Like sl_test_wait_exit; netns says how the node was started. */
int sl_nodes_wait(int netns, pid_t pid, double timeout_s);
void sl_nodes_expect_exit(int netns, pid_t pid, const char *log, int want);
void sl_nodes_expect_in_log(const char *log, const char *want);

#endif
