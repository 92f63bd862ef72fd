/* Shared helpers for the Criterion suites. */
#ifndef SL_TESTUTIL_H
#define SL_TESTUTIL_H

#include <stddef.h>

/* Creates a fresh temporary directory for one test; returns its path
 * (static storage per call site is not assumed: the caller frees it). */
char *sl_test_tmpdir(void);
/* Writes text to path (creating/truncating it); 0 or -errno. */
int sl_test_write_file(const char *path, const char *text);
/* Reads a whole file into a malloc'd NUL-terminated buffer, or NULL. */
char *sl_test_read_file(const char *path, size_t *len);
/* Counts '\n'-terminated lines in a file; -1 if it cannot be read. */
long sl_test_count_lines(const char *path);
/* Path of the built `sluice` CLI. */
const char *sl_test_cli(void);
/* Runs a shell command, capturing stdout+stderr into a malloc'd buffer;
 * returns the exit status (or -1). */
int sl_test_run(const char *cmd, char **output);

#endif
