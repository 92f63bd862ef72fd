/* Runs `sluice test` on every NAME_test.yaml under stages/ (one folder
 * down) and topologies/ in the source tree, found when the test runs, and
 * checks that every bundled stage has at least one such file. */
#include <criterion/criterion.h>

#include "testutil.h"

#include <dirent.h>
#include <glob.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* A bundled stage: a folder of stages/ whose CMakeLists.txt adds one. */
static bool s_is_stage(const char *dir)
{
    char *path = NULL;
    cr_assert(asprintf(&path, "%s/CMakeLists.txt", dir) > 0);
    size_t len = 0;
    char *text = sl_test_read_file(path, &len);
    free(path);
    bool yes = text && strstr(text, "sl_add_stage(");
    free(text);
    return yes;
}

Test(stage_yaml, every_test_file_passes)
{
    glob_t g;
    memset(&g, 0, sizeof(g));
    int rc = glob(SL_TEST_SOURCE_DIR "/stages/*/*_test.yaml", 0, NULL, &g);
    cr_assert(rc == 0 || rc == GLOB_NOMATCH);
    rc = glob(SL_TEST_SOURCE_DIR "/topologies/*_test.yaml", GLOB_APPEND, NULL,
              &g);
    cr_assert(rc == 0 || rc == GLOB_NOMATCH);
    cr_assert_gt(g.gl_pathc, 0, "no *_test.yaml found");

    size_t failed = 0;
    char failures[8192] = "";
    for (size_t i = 0; i < g.gl_pathc; i++) {
        const char *file = g.gl_pathv[i];
        char *cmd = NULL, *out = NULL;
        cr_assert(asprintf(&cmd, "%s test '%s' 2>&1", sl_test_cli(), file) > 0);
        int code = sl_test_run(cmd, &out);
        fprintf(stderr, "== %s (exit %d)\n%s", file, code, out ? out : "");
        if (code != 0) {
            failed++;
            size_t used = strlen(failures);
            snprintf(failures + used, sizeof(failures) - used,
                     "  %s: exit %d\n", file, code);
        }
        free(out);
        free(cmd);
    }
    size_t files = g.gl_pathc;
    globfree(&g);
    cr_expect_eq(failed, 0, "%zu of %zu test files failed:\n%s", failed,
                 files, failures);
}

Test(stage_yaml, every_stage_has_a_test_file)
{
    DIR *d = opendir(SL_TEST_SOURCE_DIR "/stages");
    cr_assert_not_null(d);
    struct dirent *e;
    size_t stages = 0, missing = 0;
    char list[4096] = "";
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char *dir = NULL, *pattern = NULL;
        cr_assert(asprintf(&dir, SL_TEST_SOURCE_DIR "/stages/%s",
                           e->d_name) > 0);
        struct stat st;
        if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode) || !s_is_stage(dir)) {
            free(dir);
            continue;
        }
        stages++;
        cr_assert(asprintf(&pattern, "%s/*_test.yaml", dir) > 0);
        glob_t g;
        memset(&g, 0, sizeof(g));
        int rc = glob(pattern, 0, NULL, &g);
        if (rc != 0) {
            missing++;
            size_t used = strlen(list);
            snprintf(list + used, sizeof(list) - used, " %s", e->d_name);
        }
        globfree(&g);
        free(pattern);
        free(dir);
    }
    closedir(d);
    /* the fourteen stages this suite was written with, at least */
    cr_expect_geq(stages, 14, "found only %zu stages", stages);
    cr_expect_eq(missing, 0, "stages without a *_test.yaml:%s", list);
}
