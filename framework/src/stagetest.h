/*
 * `sluice test`: unit tests for stages and topologies written in YAML
 * (FILE_test.yaml, described in docs/testing.md). A file holds cases; a
 * case runs one stage in-process through the harness, or a whole topology
 * with its input injected into one stage and captures in place of the
 * stages it checks, then compares what came out with what it expects.
 */
#ifndef SL_STAGETEST_H
#define SL_STAGETEST_H

#include "diag.h"

#include <stddef.h>
#include <stdio.h>

typedef struct sl_stest_file sl_stest_file_t;

/* Loads a test file and checks it whole: YAML syntax, keys, types,
 * values, and (for topology cases whose topology loads) the stage names it
 * uses. Every problem goes to diag as "FILE:LINE:COL: message"; NULL is
 * returned if there was any. */
sl_stest_file_t *sl__stest_load(const char *path, sl_diag_t *diag);
/* The same from text; `name` stands in for the file name and `basedir`
 * (NULL: the current directory) anchors relative paths. */
sl_stest_file_t *sl__stest_parse(const char *name, const char *basedir,
                                 const char *text, sl_diag_t *diag);
void sl__stest_destroy(sl_stest_file_t **f);

size_t sl__stest_count(const sl_stest_file_t *f);
const char *sl__stest_name(const sl_stest_file_t *f, size_t i);

/* What one case did. `reasons` holds one line per failed expectation (the
 * first is the headline); `outputs` is what the case produced, one line
 * each, as JSON (for --verbose), or NULL. */
typedef struct sl_stest_result {
    int passed;
    sl_diag_t reasons;
    char *outputs;
} sl_stest_result_t;

/* Runs case i in a fresh temporary folder (removed afterwards). res is
 * initialised by the call and must be finished with
 * sl__stest_result_fini. Returns 0 when the case ran (passed or not), or a
 * negative code when it could not be set up (res->reasons says why; the
 * case counts as failed). */
int sl__stest_run_case(const sl_stest_file_t *f, size_t i,
                       sl_stest_result_t *res);
void sl__stest_result_fini(sl_stest_result_t *res);

typedef struct sl_stest_opts {
    const char *filter; /* run only cases whose name contains it; NULL all */
    int verbose;        /* print what failing cases produced */
    FILE *out;          /* case lines */
    FILE *err;          /* problems of bad files */
} sl_stest_opts_t;

typedef struct sl_stest_totals {
    unsigned passed, failed, skipped, bad_files;
} sl_stest_totals_t;

/* Loads path and runs its cases, printing "ok   NAME" or "FAIL NAME:
 * reason" (further reasons indented below) for each, and adds them up in
 * t. A bad file prints its problems to o->err and counts in bad_files. */
void sl__stest_run_file(const char *path, const sl_stest_opts_t *o,
                        sl_stest_totals_t *t);

#endif
