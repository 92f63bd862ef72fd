/* The progress line of `sluice run`: drawn on a terminal (a pseudo-
 * terminal here), cleared before the summary, cut to the terminal's width,
 * and never written to a pipe or with --quiet. */
#include "testutil.h"

#include <criterion/criterion.h>

#include <errno.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

TestSuite(progress, .init = sl_test_tmpdir_setup,
          .fini = sl_test_tmpdir_teardown, .timeout = 120);

/* About 0.6 s of records, so that the line (every 250 ms) shows. */
static const char s_topo[] =
    "stages:\n"
    "  - {name: gen, plugin: generator, config: {count: 3000, rate: 5000}}\n"
    "  - {name: pass, plugin: delay, config: {ms: 0}}\n"
    "  - {name: sink, plugin: \"null\"}\n";

static char *s_topo_path(void)
{
    char *path;
    cr_assert_gt(asprintf(&path, "%s/p.yaml", sl_test_dir()), 0);
    cr_assert_eq(sl_test_write_file(path, s_topo), 0);
    return path;
}

/* Runs `sluice run topo [extra]` on a pseudo-terminal of `cols` columns
 * (its stdout and stderr both) and returns all it wrote. */
static char *s_run_on_pty(const char *topo, const char *extra,
                          unsigned short cols)
{
    struct winsize ws = {.ws_row = 24, .ws_col = cols};
    int master;
    pid_t pid = forkpty(&master, NULL, NULL, &ws);
    cr_assert_geq(pid, 0, "forkpty: %s", strerror(errno));
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        execl(sl_test_cli(), "sluice", "run", topo, extra, (char *)NULL);
        _exit(127);
    }
    size_t len = 0, cap = 65536;
    char *buf = malloc(cap);
    cr_assert_not_null(buf);
    double end = sl_test_now() + 60;
    for (;;) {
        struct pollfd pfd = {.fd = master, .events = POLLIN};
        int n = poll(&pfd, 1, 200);
        if (n < 0 && errno == EINTR)
            continue;
        cr_assert_geq(n, 0);
        if (n == 0) {
            cr_assert_lt(sl_test_now(), end, "no end after 60 s:\n%.*s",
                         (int)len, buf);
            continue;
        }
        if (len + 4096 > cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            cr_assert_not_null(buf);
        }
        ssize_t r = read(master, buf + len, cap - len - 1);
        if (r <= 0) /* EIO: the last writer of the terminal closed it */
            break;
        len += (size_t)r;
    }
    buf[len] = '\0';
    close(master);
    cr_assert_eq(sl_test_wait_exit(pid, 30), 0, "%s", buf);
    return buf;
}

static const char *s_last(const char *hay, const char *needle)
{
    const char *last = NULL;
    for (const char *p = hay; (p = strstr(p, needle)); p++)
        last = p;
    return last;
}

Test(progress, drawn_on_a_terminal_and_cleared_before_the_summary)
{
    char *topo = s_topo_path();
    char *out = s_run_on_pty(topo, NULL, 200);
    /* one draw: "\r  <n> read  <n> delivered  <rate>/s  MM:SS.d ..." */
    const char *draw = strstr(out, "\r  ");
    cr_assert_not_null(draw, "no progress line:\n%s", out);
    cr_expect(strstr(draw, " read  "), "%s", out);
    cr_expect(strstr(draw, " delivered  "), "%s", out);
    cr_expect(strstr(draw, "/s  00:0"), "%s", out);
    cr_expect(strstr(draw, "[slowest: '"), "%s", out);
    /* the summary is still there, and comes after the line is erased */
    const char *summary = strstr(out, "records: 3000 read, 3000 delivered");
    cr_assert_not_null(summary, "%s", out);
    const char *last_draw = s_last(out, "\033[K\r");
    const char *clear = s_last(out, "\r\033[K");
    cr_assert_not_null(last_draw);
    cr_assert_not_null(clear);
    cr_expect_lt(last_draw, clear, "%s", out);
    cr_expect_lt(clear, summary, "%s", out);
    cr_expect_null(strstr(summary, "\033[K"), "drawn after the summary");
    free(out);
    free(topo);
}

Test(progress, cut_to_the_terminal_width)
{
    char *topo = s_topo_path();
    char *out = s_run_on_pty(topo, NULL, 30);
    size_t draws = 0;
    for (const char *p = out; (p = strstr(p, "\r  ")); p++) {
        const char *e = strstr(p, "\033[K");
        cr_assert_not_null(e, "%s", out);
        /* "\r" and at most 29 columns, so the line never wraps */
        cr_expect_leq(e - p, 30, "%.*s", (int)(e - p), p);
        draws++;
    }
    cr_expect_gt(draws, 0, "%s", out);
    free(out);
    free(topo);
}

Test(progress, not_with_quiet)
{
    char *topo = s_topo_path();
    char *out = s_run_on_pty(topo, "--quiet", 200);
    cr_expect_null(strstr(out, "\033["), "%s", out);
    cr_expect_null(strstr(out, " read  "), "%s", out);
    free(out);
    free(topo);
}

Test(progress, never_on_a_pipe)
{
    char *topo = s_topo_path();
    char *cmd, *err = NULL;
    /* stderr into the pipe, stdout away */
    cr_assert_gt(asprintf(&cmd, "%s run '%s' 2>&1 >/dev/null", sl_test_cli(),
                          topo), 0);
    cr_assert_eq(sl_test_run(cmd, &err), 0, "%s", err);
    cr_expect(strstr(err, "records: 3000 read, 3000 delivered"), "%s", err);
    cr_expect_null(strchr(err, '\r'), "%s", err);
    cr_expect_null(strchr(err, '\033'), "%s", err);
    free(err);
    free(cmd);
    free(topo);
}
