/* tail_source in the harness: the test thread pulls and writes the file in
 * turns, so every case is deterministic: appends, partial lines, rename
 * rotation (with lines still written to the old file), copytruncate,
 * delete and recreate, max_line, idle_timeout, start_at: end, and resuming
 * from a committed position (exactly the lines after it; a rotated,
 * replaced, truncated or foreign file handled with a warning). */
#include <criterion/criterion.h>

#include "harness.h"
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

TestSuite(tail_source, .init = sl_test_tmpdir_setup,
          .fini = sl_test_tmpdir_teardown, .timeout = 30);

/* Polls every 10 ms so that the cases run quickly. */
#define CONF "path: app.log\npoll_ms: 10\n"

/* A few buffers in turn, so that two paths can be arguments of one call. */
static const char *s_path(const char *name)
{
    static char bufs[4][4096];
    static unsigned next;
    char *buf = bufs[next++ % 4];
    snprintf(buf, sizeof(bufs[0]), "%s/%s", sl_test_dir(), name);
    return buf;
}

static void s_write(const char *name, const char *text)
{
    cr_assert_eq(sl_test_write_file(s_path(name), text), 0);
}

static void s_append(const char *name, const char *text)
{
    int fd = open(s_path(name), O_WRONLY | O_APPEND);
    cr_assert_geq(fd, 0, "%s", name);
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    cr_assert_eq(close(fd), 0);
}

/* Writes on an fd opened before a rotation: the old file, wherever it is. */
static void s_fd_write(int fd, const char *text)
{
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
}

static void s_rename(const char *from, const char *to)
{
    cr_assert_eq(rename(s_path(from), s_path(to)), 0);
}

static sl_harness_t *s_new(const char *yaml, const void *pos, size_t len)
{
    char err[1024];
    sl_harness_t *h = sl_harness_new_resume("tail_source", yaml,
                                            sl_test_dir(), pos, len, err,
                                            sizeof(err));
    cr_assert_not_null(h, "%s", err);
    return h;
}

/* One pull; asserts it neither failed nor ended the stream. */
static void s_pull(sl_harness_t *h)
{
    int rc = sl_harness_pull_all(h, 256, 1);
    cr_assert_eq(rc, -ETIMEDOUT, "pull: %d (%s)", rc,
                 sl_harness_last_error(h));
}

/* Pulls until the harness holds n outputs (at most 10 s). */
static void s_pull_until(sl_harness_t *h, size_t n)
{
    double end = sl_test_now() + 10;
    while (sl_harness_count(h) < n && sl_test_now() < end)
        s_pull(h);
    cr_assert_eq(sl_harness_count(h), n, "outputs: %zu, want %zu",
                 sl_harness_count(h), n);
}

/* A few pulls that must bring nothing new. Each waits for data up to
 * poll_ms, so a line that was there would be seen. */
static void s_pull_nothing(sl_harness_t *h)
{
    size_t n = sl_harness_count(h);
    for (int i = 0; i < 5; i++)
        s_pull(h);
    cr_assert_eq(sl_harness_count(h), n, "unexpected output: %s",
                 sl_harness_output(h, sl_harness_count(h) - 1));
}

/* The "line" values of outputs [from, count), comma separated. */
static char *s_lines(const sl_harness_t *h, size_t from)
{
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    for (size_t i = from; i < sl_harness_count(h); i++) {
        const char *j = sl_harness_output(h, i);
        const char *pre = "{\"line\":\"";
        cr_assert(strncmp(j, pre, strlen(pre)) == 0, "output %zu: %s", i, j);
        size_t n = strlen(j) - strlen(pre) - 2;
        cr_assert_str_eq(j + strlen(pre) + n, "\"}", "output %zu: %s", i, j);
        fprintf(f, "%s%.*s", i > from ? "," : "", (int)n, j + strlen(pre));
    }
    fclose(f);
    return out;
}

static void s_expect_lines(const sl_harness_t *h, size_t from,
                           const char *want)
{
    char *got = s_lines(h, from);
    cr_expect_str_eq(got, want);
    free(got);
}

static void *s_take_position(const sl_harness_t *h, size_t *len)
{
    const void *pos = sl_harness_position(h, len);
    cr_assert_not_null(pos, "no position set");
    void *copy = malloc(*len);
    cr_assert_not_null(copy);
    memcpy(copy, pos, *len);
    return copy;
}

/* ---- stderr, where warnings go ------------------------------------------- */

static int s_saved_fd = -1;

static void s_capture(void)
{
    fflush(stderr);
    s_saved_fd = dup(STDERR_FILENO);
    cr_assert_geq(s_saved_fd, 0);
    int fd = open(s_path("stderr.txt"), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    cr_assert_geq(fd, 0);
    cr_assert_geq(dup2(fd, STDERR_FILENO), 0);
    close(fd);
}

/* What was logged since s_capture(); the caller frees. */
static char *s_captured(void)
{
    fflush(stderr);
    cr_assert_geq(dup2(s_saved_fd, STDERR_FILENO), 0);
    close(s_saved_fd);
    s_saved_fd = -1;
    char *text = sl_test_read_file(s_path("stderr.txt"), NULL);
    cr_assert_not_null(text);
    return text;
}

static void s_expect_logged(const char *log, const char *level,
                            const char *text)
{
    cr_expect_not_null(strstr(log, text), "'%s' not in:\n%s", text, log);
    cr_expect_not_null(strstr(log, level), "no '%s' in:\n%s", level, log);
}

/* ---- following ----------------------------------------------------------- */

static void s_appends(const char *conf)
{
    s_write("app.log", "a\nb\n");
    sl_harness_t *h = s_new(conf, NULL, 0);
    s_pull_until(h, 2);
    s_expect_lines(h, 0, "a,b");
    s_append("app.log", "c\r\nd\n");
    s_pull_until(h, 4);
    s_expect_lines(h, 2, "c,d");
    s_pull_nothing(h);
    s_append("app.log", "e\n");
    s_pull_until(h, 5);
    s_expect_lines(h, 4, "e");
    cr_expect_eq(sl_harness_errors(h), 0);
    sl_harness_destroy(&h);
}

Test(tail_source, appends_are_picked_up) { s_appends(CONF); }

Test(tail_source, appends_are_picked_up_by_polling)
{
    s_appends(CONF "inotify: false\n");
}

Test(tail_source, partial_line_is_held_until_its_newline)
{
    s_write("app.log", "one\ntw");
    sl_harness_t *h = s_new(CONF, NULL, 0);
    s_pull_until(h, 1);
    s_pull_nothing(h);
    s_append("app.log", "o and");
    s_pull_nothing(h);
    s_append("app.log", " more\nthr");
    s_pull_until(h, 2);
    s_expect_lines(h, 0, "one,two and more");
    s_append("app.log", "ee\n");
    s_pull_until(h, 3);
    s_expect_lines(h, 2, "three");
    sl_harness_destroy(&h);
}

static void s_rename_rotation(const char *conf)
{
    s_write("app.log", "1\n2\n");
    sl_harness_t *h = s_new(conf, NULL, 0);
    s_pull_until(h, 2);
    /* The writer keeps its descriptor across the rename, as a server does
     * until it is told to reopen its log. */
    int fd = open(s_path("app.log"), O_WRONLY | O_APPEND);
    cr_assert_geq(fd, 0);
    s_fd_write(fd, "3\n");
    s_rename("app.log", "app.log.1");
    s_fd_write(fd, "4\n");
    s_write("app.log", "new1\n");
    s_fd_write(fd, "5\n");
    s_pull_until(h, 6);
    s_expect_lines(h, 2, "3,4,5,new1");
    s_append("app.log", "new2\n");
    s_pull_until(h, 7);
    s_expect_lines(h, 6, "new2");
    cr_assert_eq(close(fd), 0);

    /* Renamed away and the new file only later: the old one is finished,
     * then the new one read from its start. */
    s_rename("app.log", "app.log.2");
    s_append("app.log.2", "new3\n");
    s_pull_until(h, 8);
    s_pull_nothing(h);
    s_write("app.log", "newer1\n");
    s_pull_until(h, 9);
    s_expect_lines(h, 7, "new3,newer1");
    cr_expect_eq(sl_harness_errors(h), 0);
    sl_harness_destroy(&h);
}

Test(tail_source, rename_rotation_reads_the_old_file_to_its_end)
{
    s_rename_rotation(CONF);
}

Test(tail_source, rename_rotation_by_polling)
{
    s_rename_rotation(CONF "inotify: false\n");
}

Test(tail_source, copytruncate_starts_over_with_a_warning)
{
    s_write("app.log", "first line\nsecond line\n");
    sl_harness_t *h = s_new(CONF, NULL, 0);
    s_pull_until(h, 2);
    /* Shorter than what was read: seen from the size. */
    s_capture();
    cr_assert_eq(truncate(s_path("app.log"), 0), 0);
    s_append("app.log", "x1\n");
    s_pull_until(h, 3);
    char *log = s_captured();
    s_expect_lines(h, 2, "x1");
    s_expect_logged(log, "level=warn", "app.log: truncated to 3 bytes (read "
                                       "up to byte 23); reading it again "
                                       "from the beginning");
    free(log);

    /* Truncated and written past the old offset before the next look:
     * seen from the first bytes. */
    s_capture();
    cr_assert_eq(truncate(s_path("app.log"), 0), 0);
    s_append("app.log", "y1 is a longer line\ny2\n");
    s_pull_until(h, 5);
    log = s_captured();
    s_expect_lines(h, 3, "y1 is a longer line,y2");
    s_expect_logged(log, "level=warn", "app.log: its first 3 bytes changed "
                                       "(truncated and written again)");
    free(log);
    sl_harness_destroy(&h);
}

Test(tail_source, delete_and_recreate)
{
    s_write("app.log", "a\n");
    sl_harness_t *h = s_new(CONF, NULL, 0);
    s_pull_until(h, 1);
    cr_assert_eq(unlink(s_path("app.log")), 0);
    s_pull_nothing(h);
    s_write("app.log", "b\nc\n");
    s_pull_until(h, 3);
    s_expect_lines(h, 1, "b,c");
    /* Deleted and recreated between two looks. */
    cr_assert_eq(unlink(s_path("app.log")), 0);
    s_write("app.log", "d\n");
    s_pull_until(h, 4);
    s_expect_lines(h, 3, "d");
    sl_harness_destroy(&h);
}

Test(tail_source, file_that_appears_later)
{
    s_capture();
    sl_harness_t *h = s_new(CONF, NULL, 0);
    s_pull_nothing(h);
    s_write("app.log", "late\n");
    s_pull_until(h, 1);
    char *log = s_captured();
    s_expect_lines(h, 0, "late");
    s_expect_logged(log, "level=info", "app.log: does not exist (yet); "
                                       "waiting for it");
    free(log);
    sl_harness_destroy(&h);
}

Test(tail_source, max_line_skips_with_file_and_line)
{
    s_write("app.log", "short\n0123456789A\nok\n");
    sl_harness_t *h = s_new(CONF "max_line: 10\n", NULL, 0);
    s_pull_until(h, 2);
    s_expect_lines(h, 0, "short,ok");
    cr_expect_eq(sl_harness_errors(h), 1);
    char want[4200];
    snprintf(want, sizeof(want), "%s:2: line longer than max_line (10 bytes)",
             s_path("app.log"));
    cr_expect_str_eq(sl_harness_last_error(h), want);

    /* A line still being written is reported as soon as it is too long,
     * and the rest of it dropped when it ends. */
    s_append("app.log", "0123456789ABCDEF");
    s_pull_nothing(h);
    cr_expect_eq(sl_harness_errors(h), 2);
    snprintf(want, sizeof(want), "%s:4: line longer than max_line (10 bytes)",
             s_path("app.log"));
    cr_expect_str_eq(sl_harness_last_error(h), want);
    s_append("app.log", "still more\nfine\n");
    s_pull_until(h, 3);
    s_expect_lines(h, 2, "fine");
    cr_expect_eq(sl_harness_errors(h), 2);
    /* Exactly max_line bytes (a "\r" aside) is fine. */
    s_append("app.log", "0123456789\r\n");
    s_pull_until(h, 4);
    s_expect_lines(h, 3, "0123456789");
    cr_expect_eq(sl_harness_read(h), 6);
    sl_harness_destroy(&h);
}

Test(tail_source, idle_timeout_ends_the_stream)
{
    s_write("app.log", "a\nb\npartial");
    s_capture();
    sl_harness_t *h = s_new(CONF "idle_timeout_ms: 300\n", NULL, 0);
    double t0 = sl_test_now();
    int rc = sl_harness_pull_all(h, 256, 1000);
    double took = sl_test_now() - t0;
    char *log = s_captured();
    cr_assert_eq(rc, 0, "pull: %d", rc);
    cr_expect_geq(took, 0.3);
    cr_expect_lt(took, 5.0);
    s_expect_lines(h, 0, "a,b");
    s_expect_logged(log, "level=warn", "app.log:3: 7 bytes after the last "
                                       "newline are not emitted");
    s_expect_logged(log, "level=info", "app.log: no new data for 300 ms; "
                                       "end of stream after line 2");
    free(log);

    /* The position is before the incomplete line: a resumed run gives it
     * once it is complete. */
    size_t len;
    void *pos = s_take_position(h, &len);
    sl_harness_destroy(&h);
    s_append("app.log", " line\n");
    h = s_new(CONF "idle_timeout_ms: 100\n", pos, len);
    cr_assert_eq(sl_harness_pull_all(h, 256, 1000), 0);
    s_expect_lines(h, 0, "partial line");
    free(pos);
    sl_harness_destroy(&h);
}

Test(tail_source, start_at_end_emits_only_new_lines)
{
    s_write("app.log", "old1\nold2\nold, too long for max_line\nold3 part");
    sl_harness_t *h = s_new(CONF "start_at: end\nmax_line: 20\n", NULL, 0);
    s_pull_nothing(h);
    cr_expect_eq(sl_harness_errors(h), 0, "a skipped line was reported");
    s_append("app.log", "ial\nnew1\nnew line that is too long\n");
    s_pull_until(h, 1);
    s_expect_lines(h, 0, "new1");
    /* Lines were counted while skipped. */
    char want[4200];
    snprintf(want, sizeof(want), "%s:6: line longer than max_line (20 bytes)",
             s_path("app.log"));
    cr_expect_str_eq(sl_harness_last_error(h), want);
    sl_harness_destroy(&h);
}

Test(tail_source, field_and_include_path)
{
    s_write("app.log", "hello\n");
    sl_harness_t *h = s_new(CONF "field: msg\ninclude_path: true\n", NULL, 0);
    s_pull_until(h, 1);
    char want[4200];
    snprintf(want, sizeof(want), "{\"msg\":\"hello\",\"path\":\"%s\"}",
             s_path("app.log"));
    cr_expect_str_eq(sl_harness_output(h, 0), want);
    sl_harness_destroy(&h);
}

/* ---- resuming ------------------------------------------------------------ */

/* Runs from pos until n outputs; returns the new position (*len). */
static void *s_run_to(const char *conf, const void *pos, size_t *len,
                      size_t n, const char *want)
{
    sl_harness_t *h = s_new(conf, pos, pos ? *len : 0);
    s_pull_until(h, n);
    if (want)
        s_expect_lines(h, 0, want);
    void *next = s_take_position(h, len);
    sl_harness_destroy(&h);
    return next;
}

Test(tail_source, resume_emits_exactly_the_lines_after_the_position)
{
    s_write("app.log", "1\n2\n3\n");
    size_t len;
    void *pos = s_run_to(CONF, NULL, &len, 3, "1,2,3");
    s_append("app.log", "4\n5\n6 too long\n7");
    s_capture();
    sl_harness_t *h = s_new(CONF "max_line: 5\n", pos, len);
    s_pull_until(h, 2);
    s_pull_nothing(h);
    char *log = s_captured();
    s_expect_lines(h, 0, "4,5");
    s_expect_logged(log, "level=info", "app.log: resuming after line 3 "
                                       "(byte 6)");
    free(log);
    /* Line numbers go on from the position. */
    char want[4200];
    snprintf(want, sizeof(want), "%s:6: line longer than max_line (5 bytes)",
             s_path("app.log"));
    cr_expect_str_eq(sl_harness_last_error(h), want);
    free(pos);
    pos = s_take_position(h, &len);
    sl_harness_destroy(&h);

    /* The incomplete "7" was not consumed. */
    s_append("app.log", "\n8\n");
    free(s_run_to(CONF, pos, &len, 2, "7,8"));
    free(pos);
}

Test(tail_source, resume_after_every_line_loses_and_repeats_nothing)
{
    s_write("app.log", "l1\nl2\n");
    size_t len = 0;
    void *pos = NULL;
    char *all = strdup("");
    for (int i = 0; i < 6; i++) {
        sl_harness_t *h = s_new(CONF, pos, len);
        s_pull_until(h, 2);
        char *got = s_lines(h, 0);
        char *acc = NULL;
        cr_assert_gt(asprintf(&acc, "%s%s%s", all, *all ? "," : "", got), 0);
        free(all);
        free(got);
        all = acc;
        free(pos);
        pos = s_take_position(h, &len);
        sl_harness_destroy(&h);
        char more[64];
        snprintf(more, sizeof(more), "l%d\nl%d\n", 2 * i + 3, 2 * i + 4);
        s_append("app.log", more);
    }
    cr_expect_str_eq(all, "l1,l2,l3,l4,l5,l6,l7,l8,l9,l10,l11,l12");
    free(all);
    free(pos);
}

Test(tail_source, resume_finishes_a_file_rotated_while_stopped)
{
    s_write("app.log", "1\n2\n");
    size_t len;
    void *pos = s_run_to(CONF, NULL, &len, 2, "1,2");
    s_append("app.log", "3\n4\n");
    s_rename("app.log", "app.log.1");
    s_write("app.log", "new1\n");
    s_capture();
    void *next = s_run_to(CONF, pos, &len, 3, "3,4,new1");
    char *log = s_captured();
    s_expect_logged(log, "level=info", "app.log: the file of the saved "
                                       "position was rotated to 'app.log.1'; "
                                       "reading it on after line 2, then the "
                                       "new file");
    free(log);
    free(pos);
    /* The position is in the new file now. */
    s_append("app.log", "new2\n");
    free(s_run_to(CONF, next, &len, 1, "new2"));
    free(next);
}

Test(tail_source, resume_when_the_file_is_gone_reads_the_new_one)
{
    s_write("app.log", "1\n2\n");
    size_t len;
    void *pos = s_run_to(CONF, NULL, &len, 2, "1,2");
    /* Rotated out of the folder (and so not found). */
    cr_assert_eq(mkdir(s_path("old"), 0700), 0);
    s_rename("app.log", "old/app.log");
    s_write("app.log", "n1\nn2\n");
    s_capture();
    free(s_run_to(CONF, pos, &len, 2, "n1,n2"));
    char *log = s_captured();
    s_expect_logged(log, "level=warn", "app.log: the file of the saved "
                                       "position (inode ");
    s_expect_logged(log, "level=warn", ", after line 2) is gone, and with it "
                                       "whatever was written to it after "
                                       "that; reading the file now at the "
                                       "path from the beginning");
    free(log);
    free(pos);
}

Test(tail_source, inode_reuse_is_caught_by_the_fingerprint)
{
    s_write("app.log", "alpha\nbeta\n");
    size_t len;
    void *pos = s_run_to(CONF, NULL, &len, 2, "alpha,beta");
    /* Same inode, other bytes, longer than the position: what a new file
     * that reuses the inode number looks like. */
    int fd = open(s_path("app.log"), O_WRONLY | O_TRUNC);
    cr_assert_geq(fd, 0);
    s_fd_write(fd, "gamma\ndelta\nepsilon\n");
    cr_assert_eq(close(fd), 0);
    s_capture();
    free(s_run_to(CONF, pos, &len, 3, "gamma,delta,epsilon"));
    char *log = s_captured();
    s_expect_logged(log, "level=warn", "app.log: saved position (line 2, "
                                       "byte 11) does not fit the file: its "
                                       "first 11 bytes differ: another file "
                                       "with the same inode number; reading "
                                       "it from the beginning");
    free(log);
    free(pos);
}

Test(tail_source, resume_on_a_truncated_file_starts_over)
{
    s_write("app.log", "alpha\nbeta\n");
    size_t len;
    void *pos = s_run_to(CONF, NULL, &len, 2, "alpha,beta");
    cr_assert_eq(truncate(s_path("app.log"), 0), 0);
    s_append("app.log", "z\n");
    s_capture();
    free(s_run_to(CONF, pos, &len, 1, "z"));
    char *log = s_captured();
    s_expect_logged(log, "level=warn", "does not fit the file: it has 2 "
                                       "bytes, the position is at byte 11");
    free(log);
    free(pos);
}

Test(tail_source, foreign_or_corrupt_positions_are_ignored)
{
    s_write("app.log", "a\nb\n");
    size_t len;
    void *pos = s_run_to(CONF, NULL, &len, 2, "a,b");
    /* For another path: start_at applies, as on a first run. */
    s_write("other.log", "o1\n");
    s_capture();
    sl_harness_t *h = s_new("path: other.log\npoll_ms: 10\n", pos, len);
    s_pull_until(h, 1);
    sl_harness_destroy(&h);
    char *log = s_captured();
    s_expect_logged(log, "level=warn", "other.log: saved position ignored "
                                       "(it is for '");
    free(log);

    ((unsigned char *)pos)[30] ^= 1;
    s_capture();
    h = s_new(CONF, pos, len);
    s_pull_until(h, 2);
    s_expect_lines(h, 0, "a,b");
    sl_harness_destroy(&h);
    log = s_captured();
    s_expect_logged(log, "level=warn", "app.log: saved position ignored "
                                       "(corrupt position: checksum "
                                       "mismatch)");
    free(log);
    free(pos);
}

/* ---- config -------------------------------------------------------------- */

Test(tail_source, config_errors)
{
    const char *d = sl_test_dir();
    sl_test_refused("tail_source", "poll_ms: 10", d,
                    "config:1:1: tail_source: 'path' is required (the file "
                    "to follow)");
    sl_test_refused("tail_source", "path: a.log\nstart_at: middle", d,
                    "config:2:11: tail_source: 'start_at' must be beginning "
                    "or end, got 'middle'");
    sl_test_refused("tail_source", "path: a.log\npoll_ms: 0", d,
                    "config:2:10: tail_source: 'poll_ms' must be between 1 "
                    "and 60000 ms, got 0");
    sl_test_refused("tail_source", "path: a.log\nmax_line: 0", d,
                    "'max_line' must be between 1 and 1073741824 bytes, "
                    "got 0");
    sl_test_refused("tail_source", "path: a.log\nidle_timeout_ms: -5", d,
                    "'idle_timeout_ms' must be between 1 and 2147483647 ms, "
                    "got -5");
    sl_test_refused("tail_source", "path: a.log\nfield: ''", d,
                    "'field' must not be empty");
    sl_test_refused("tail_source", "path: a.log\nfield: path\n"
                    "include_path: true", d,
                    "'field' must not be \"path\" with include_path: true");
    sl_test_refused("tail_source", "path: a.log\nfollow: yes", d,
                    "unknown key 'follow' for plugin 'tail_source'");
    char want[4200];
    snprintf(want, sizeof(want), "'%s/.' is not a regular file", d);
    sl_test_refused("tail_source", "path: .", d, want);
}
