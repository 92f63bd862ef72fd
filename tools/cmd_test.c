/* `sluice test FILE_test.yaml... [--verbose] [--filter SUBSTRING]`. */
#include "cmd_test.h"

#include "cli.h"
#include "cmd_run.h"
#include "log.h"
#include "stagetest.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static int s_usage(void)
{
    fprintf(stderr, "usage: sluice test FILE_test.yaml... [--verbose] "
                    "[--filter SUBSTRING] [--log-level LEVEL]\n");
    return SL_EXIT_USAGE;
}

int sl_cmd_test(int argc, char **argv)
{
    sl_stest_opts_t o = {.out = stdout, .err = stderr};
    /* a stage under test that fails records on purpose would otherwise
     * log each one between the case lines */
    sl__log_set_level(SL_LOG_ERROR);
    int n_files = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *next = i + 1 < argc ? argv[i + 1] : NULL;
        int rc;
        if (strcmp(a, "--verbose") == 0 || strcmp(a, "-v") == 0) {
            o.verbose = 1;
        } else if (strcmp(a, "--filter") == 0) {
            if (!next)
                return s_usage();
            o.filter = argv[++i];
        } else if ((rc = sl_cli_log_option("sluice test", a, next)) != 0) {
            if (rc < 0)
                return SL_EXIT_USAGE;
            i++;
        } else if (a[0] == '-' && a[1] != '\0') {
            fprintf(stderr, "sluice test: unknown option '%s'\n", a);
            return s_usage();
        } else {
            n_files++;
        }
    }
    if (n_files == 0)
        return s_usage();
    sl_stest_totals_t t = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--filter") == 0 || strcmp(a, "--log-level") == 0 ||
            strcmp(a, "--log-format") == 0) {
            i++;
            continue;
        }
        if (a[0] == '-' && a[1] != '\0')
            continue;
        if (n_files > 1)
            fprintf(stdout, "%s\n", a);
        sl__stest_run_file(a, &o, &t);
    }
    if (t.bad_files)
        fprintf(stdout, "%u bad test file%s (see the errors above)\n",
                t.bad_files, t.bad_files == 1 ? "" : "s");
    if (t.skipped)
        fprintf(stdout, "%u passed, %u failed, %u skipped\n", t.passed,
                t.failed, t.skipped);
    else
        fprintf(stdout, "%u passed, %u failed\n", t.passed, t.failed);
    if (t.bad_files)
        return SL_EXIT_USAGE;
    return t.failed ? SL_EXIT_FAILED : SL_EXIT_OK;
}
