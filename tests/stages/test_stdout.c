/* stdout: records it cannot print fail on their first attempt (dead-
 * lettered, never retried) and print nothing; a write error is retried.
 * Its other behaviour is tested in test_test_stages.c. */
#include <criterion/criterion.h>

#include "harness.h"
#include "testutil.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Each test runs in its own process (Criterion forks), so fd 1 can be
 * pointed at a file for the rest of the test. */
TestSuite(stdout_bad, .init = sl_test_tmpdir_setup,
          .fini = sl_test_tmpdir_teardown);

static const char *s_capture_stdout(void)
{
    static char path[4096];
    int fd;

    snprintf(path, sizeof(path), "%s/stdout.txt", sl_test_dir());
    fflush(stdout);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    cr_assert_geq(fd, 0);
    cr_assert_eq(dup2(fd, STDOUT_FILENO), STDOUT_FILENO);
    close(fd);
    return path;
}

Test(stdout_bad, malformed_records_are_dead_lettered_at_once)
{
    static const struct {
        const char *what;
        const char *bytes;
        size_t len;
    } bad[] = {
        {"array [1]", "\x91\x01", 2},
        {"map then the unused byte 0xc1", "\x81\xa1k\xc1", 4},
        {"map of 2 pairs holding 1", "\x82\xa1" "a\x01", 4},
        {"two maps", "\x81\xa1" "a\x01\x81\xa1" "b\x02", 8},
        {"map32 header claiming 2^32-1 pairs", "\xdf\xff\xff\xff\xff", 5},
        {"no bytes", "", 0},
    };
    const size_t nbad = sizeof(bad) / sizeof(bad[0]);
    const char *path = s_capture_stdout();

    for (int pretty = 0; pretty < 2; pretty++) {
        sl_harness_t *h = sl_test_harness(
            "stdout", pretty ? "pretty: true" : "", NULL);
        sl_test_fail_log_t f = {0};
        sl_harness_on_fail(h, sl_test_on_fail, &f);
        for (size_t i = 0; i < nbad; i++) {
            cr_assert_lt(sl_harness_push_msgpack(h, bad[i].bytes,
                                                 bad[i].len),
                         0, "%s: accepted", bad[i].what);
            cr_assert_eq(f.n, (int)i + 1, "%s", bad[i].what);
            cr_assert_str_eq(f.msg, "record is not a msgpack map", "%s",
                             bad[i].what);
            cr_assert_eq(f.final, 1, "%s: would be retried", bad[i].what);
        }
        cr_assert_eq(sl_harness_push_json(h, "{\"ok\":true}"), 0, "goes on");
        cr_assert_eq(sl_harness_errors(h), nbad);
        sl_harness_destroy(&h);
    }
    char *text = sl_test_read_file(path, NULL);
    cr_assert_not_null(text);
    cr_assert_str_eq(text, "{\"ok\":true}\n{\n  \"ok\": true\n}\n");
    free(text);
}

Test(stdout_bad, write_error_is_retried)
{
    /* /dev/full takes the open but refuses every write with ENOSPC. */
    int fd = open("/dev/full", O_WRONLY);
    cr_assert_geq(fd, 0);
    fflush(stdout);
    cr_assert_eq(dup2(fd, STDOUT_FILENO), STDOUT_FILENO);
    close(fd);

    sl_harness_t *h = sl_test_harness("stdout", "", NULL);
    sl_test_fail_log_t f = {0};
    char rec[128];
    int rc = 0;

    sl_harness_on_fail(h, sl_test_on_fail, &f);
    /* Lines are buffered (64 KiB): push until the buffer is written. */
    for (int i = 0; i < 10000 && rc == 0; i++) {
        snprintf(rec, sizeof(rec),
                 "{\"i\":%d,\"pad\":\"0123456789012345678901234567890123"
                 "456789\"}", i);
        rc = sl_harness_push_json(h, rec);
    }
    cr_assert_lt(rc, 0, "the buffer was never written");
    cr_assert_eq(f.n, 1);
    cr_assert_str_eq(f.msg, "cannot write to stdout: No space left on "
                            "device");
    cr_assert_eq(f.final, 0, "a write error may pass: it is retried");
    sl_harness_destroy(&h);
}
