/* Shared helpers for the Criterion suites. The helpers that check
 * something assert it (cr_assert), so a failure ends the calling test. */
#ifndef SL_TESTUTIL_H
#define SL_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The framework's types, declared here so that a suite includes only the
 * framework headers it uses itself. */
typedef struct sl_diag sl_diag_t;
typedef struct sl_harness sl_harness_t;
typedef struct sl_topology sl_topology_t;
typedef struct sl_run sl_run_t;
typedef struct sl_stage_stats sl_stage_stats_t;

/* ---- files and commands ------------------------------------------------ */

/* Creates a fresh temporary directory for one test; returns its path
 * (static storage per call site is not assumed: the caller frees it). */
char *sl_test_tmpdir(void);
/* Removes dir and everything below it (symbolic links are removed, not
 * followed), then frees dir. NULL is ignored, and so is what cannot be
 * removed: a leftover temporary file must not fail a test. */
void sl_test_rmtree(char *dir);
/* A suite's .init and .fini for tests that each work in a fresh temporary
 * directory: the init makes it (asserting that it could), the fini removes
 * it with everything in it. */
void sl_test_tmpdir_setup(void);
void sl_test_tmpdir_teardown(void);
/* The directory sl_test_tmpdir_setup made for the running test. */
const char *sl_test_dir(void);
/* Writes text to path (creating/truncating it); 0 or -errno. */
int sl_test_write_file(const char *path, const char *text);
/* Reads a whole file into a malloc'd NUL-terminated buffer, or NULL. */
char *sl_test_read_file(const char *path, size_t *len);
/* Counts '\n'-terminated lines in a file; -1 if it cannot be read. */
long sl_test_count_lines(const char *path);
/* Path of the built `sluice` CLI. With SLUICE_TEST_VALGRIND=DIR set (an
 * absolute or relative folder, made if missing, with no blanks or quotes
 * in its path) it is instead a script in DIR that runs the CLI under
 * valgrind memcheck, one log per process in DIR (docs/testing.md,
 * "Valgrind"), so that every way a test starts the CLI is covered. */
const char *sl_test_cli(void);
/* Runs a shell command, capturing stdout+stderr into a malloc'd buffer;
 * returns the exit status (or -1). Under SLUICE_TEST_VALGRIND, an exit
 * status of SL_TEST_VALGRIND_EXIT fails the test with the report. */
int sl_test_run(const char *cmd, char **output);

/* The exit status of a CLI in which memcheck found an error or a definite
 * or indirect leak. */
#define SL_TEST_VALGRIND_EXIT 99
/* 1 when the CLI runs under valgrind (SLUICE_TEST_VALGRIND is set): for a
 * test to skip a check of how fast something happens, which valgrind's
 * 20-50x slow-down would fail. */
int sl_test_valgrind(void);

/* In a sanitizer build: whatever UBSAN_OPTIONS the caller set, a report
 * in a worker process must end it with exit code 1, so that the reason a
 * test reads is known. Nothing otherwise. */
void sl_test_sanitizer_worker_env(void);

/* Seconds on the monotonic clock, for timing and bounded waits. */
double sl_test_now(void);
/* Waits at most timeout_s seconds for child pid to end. Returns its exit
 * code, or 128 + the signal that ended it; if it is still running then,
 * kills it and returns -1. Under SLUICE_TEST_VALGRIND an exit code of
 * SL_TEST_VALGRIND_EXIT fails the test with pid's memcheck report.
 * The bounded waits here (sl_test_wait_exit, sl_test_wait_log,
 * sl_test_wait_lines) wait 10 times longer under valgrind. */
int sl_test_wait_exit(pid_t pid, double timeout_s);

/* Starts the CLI with argv[1..] = args (NULL-terminated: the subcommand
 * first), in sl_test_dir(), stdout and stderr to log (relative to that
 * directory or absolute). The child dies with the test. */
pid_t sl_test_spawn_cli(const char *log, const char *const *args);
/* Waits at most timeout_s for the file log to contain what; returns its
 * text then (malloc'd), asserting that it came. */
char *sl_test_wait_log(const char *log, const char *what, double timeout_s);
/* The port of "metrics on http://HOST:PORT/metrics" in a run's log. */
unsigned sl_test_metrics_port(const char *log_text, const char *host);

/* Reads stage's row of the summary `sluice run` prints ("name plugin
 * workers in out filtered dead ..."), asserting that it is there. */
void sl_test_summary_row(const char *log, const char *stage,
                         unsigned *workers, uint64_t *in, uint64_t *out,
                         uint64_t *filtered, uint64_t *dead);

/* One HTTP/1.0 request to 127.0.0.1:port with an empty body. */
typedef struct sl_test_http {
    int status;
    char *head; /* status line and headers */
    char *body;
} sl_test_http_t;
sl_test_http_t sl_test_http(unsigned port, const char *method,
                            const char *path);
void sl_test_http_free(sl_test_http_t *r);

/* Waits at most timeout_s seconds for path to hold at least lines lines;
 * 1 once it does, 0 if it never did. */
int sl_test_wait_lines(const char *path, long lines, double timeout_s);

/* The next number of a xorshift64* sequence whose state (seeded with any
 * non-zero value) is *state: a fixed seed replays a failure exactly. */
uint64_t sl_test_rand(uint64_t *state);

/* ---- diagnostics -------------------------------------------------------- */

/* Every line of diag, each ending in '\n', for assertion messages. The
 * text is in a static buffer (cut at 16 KiB) that the next call reuses. */
const char *sl_test_diag_text(const sl_diag_t *diag);
/* Asserts that diag has a line equal to want, or one starting with want;
 * the failure message lists every line. */
void sl_test_expect_line(const sl_diag_t *diag, const char *want);
void sl_test_expect_prefix(const sl_diag_t *diag, const char *want);

/* ---- one stage in the harness (harness.h) ------------------------------- */

/* A harness for plugin (a name or a .so path) with config yaml, relative
 * paths resolving against dir (NULL: the current directory); asserts that
 * the config is accepted. The caller destroys it. */
sl_harness_t *sl_test_harness(const char *plugin, const char *yaml,
                              const char *dir);
/* Asserts that plugin refuses config yaml with an error containing want. */
void sl_test_refused(const char *plugin, const char *yaml, const char *dir,
                     const char *want);
/* Pushes one JSON record and asserts that exactly one record, want, comes
 * out. */
void sl_test_push_ok(sl_harness_t *h, const char *json, const char *want);
/* Pushes one JSON record and asserts that it fails with an error
 * containing want, counted once, and that nothing comes out. */
void sl_test_push_fails(sl_harness_t *h, const char *json, const char *want);

/* ---- whole topologies in process (topology.h, run.h) -------------------- */

/* Parses yaml as the topology file `name` in dir (NULL: the current
 * directory); asserts that it is accepted, listing every problem if not.
 * The caller destroys it. */
sl_topology_t *sl_test_topology(const char *name, const char *dir,
                                const char *yaml);
/* Index of stage name in t; asserts that there is one. */
size_t sl_test_stage_index(const sl_topology_t *t, const char *name);
/* A new run of t, started; asserts that it could be. The caller destroys
 * it. */
sl_run_t *sl_test_run_start(const sl_topology_t *t);
/* Starts a run of t and waits for its end; asserts a clean end and a
 * balanced ledger. The caller destroys the run. */
sl_run_t *sl_test_run_to_end(const sl_topology_t *t);
/* Asserts that the ledger of a run that has ended balances. */
void sl_test_expect_ledger(sl_run_t *run);
/* The counters of stage name; asserts that it exists and has finished. */
void sl_test_stage_stats(sl_run_t *run, const sl_topology_t *t,
                         const char *name, sl_stage_stats_t *st);

/* ---- checksum_sink (tests/plugins) -------------------------------------- */

/* What checksum_sink's workers wrote, added up: record count, sum and xor
 * of the record ids, records out of order, and distinct keys. */
typedef struct sl_test_sums {
    uint64_t count, sum, xor_, violations, keys;
    unsigned lines; /* one per worker */
} sl_test_sums_t;

/* The count, sum and xor of the ids that the generator at topology index
 * stage (one worker) gives the records whose seq satisfies keep (NULL:
 * all of 0..n-1). */
void sl_test_expected_ids(unsigned stage, uint64_t n, int (*keep)(uint64_t),
                          sl_test_sums_t *out);
/* Adds up the lines checksum_sink appended to path; asserts that there is
 * at least one and that each is well formed. */
void sl_test_read_sums(const char *path, sl_test_sums_t *out);
/* Expects got to hold exactly the ids of want: count, sum and xor. */
void sl_test_expect_ids(const sl_test_sums_t *got,
                        const sl_test_sums_t *want);

/* Failures a single-stage harness reports (pass sl_test_on_fail and a
 * zeroed log to sl_harness_on_fail): how many, and the newest one's
 * message, whether it was final (dead-lettered without a retry) and its
 * record's first bytes. */
typedef struct sl_test_fail_log {
    int n;
    int final;
    char msg[512];
    char rec[64];
    size_t rec_len;
} sl_test_fail_log_t;
void sl_test_on_fail(void *arg, const char *msg, int final, const void *rec,
                     size_t len);

#endif
