#include "testutil.h"

#include "harness.h"
#include "run.h"

#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

/* The running test's directory (Criterion runs each test in its own
 * process, so one variable serves every test). */
static char *s_dir;

char *sl_test_tmpdir(void)
{
    char tmpl[] = "/tmp/sluice-test-XXXXXX";
    if (!mkdtemp(tmpl))
        return NULL;
    return strdup(tmpl);
}

static int s_rm_entry(const char *path, const struct stat *sb, int flag,
                      struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0; /* keep going: remove what can be removed */
}

void sl_test_rmtree(char *dir)
{
    if (dir)
        nftw(dir, s_rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    free(dir);
}

void sl_test_tmpdir_setup(void)
{
    s_dir = sl_test_tmpdir();
    cr_assert_not_null(s_dir, "cannot make a temporary directory");
}

void sl_test_tmpdir_teardown(void)
{
    sl_test_rmtree(s_dir);
    s_dir = NULL;
}

const char *sl_test_dir(void)
{
    return s_dir;
}

int sl_test_write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -errno;
    size_t n = strlen(text);
    int rc = fwrite(text, 1, n, f) == n ? 0 : -EIO;
    if (fclose(f) != 0 && rc == 0)
        rc = -errno;
    return rc;
}

/* Reads f to its end into a malloc'd NUL-terminated buffer that starts at
 * cap bytes and doubles; NULL if memory runs out. */
static char *s_slurp(FILE *f, size_t cap, size_t *len)
{
    size_t n = 0;
    char *buf = malloc(cap + 1);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            char *bigger = realloc(buf, cap * 2 + 1);
            if (!bigger) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = bigger;
            cap *= 2;
        }
    }
    if (!buf)
        return NULL;
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

char *sl_test_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = s_slurp(f, 4096, len);
    fclose(f);
    return buf;
}

long sl_test_count_lines(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    long lines = 0;
    int c;
    while ((c = getc(f)) != EOF)
        if (c == '\n')
            lines++;
    fclose(f);
    return lines;
}

/* ---- the CLI under valgrind --------------------------------------------- */

/* What memcheck reports: leaks that are sluice's to free (definite and
 * indirect) count as errors and end the CLI with SL_TEST_VALGRIND_EXIT.
 * Worker processes of process lanes are `sluice __worker` children that
 * valgrind does not follow, so this checks the main process only. */
#define S_VG_OPTS                                                           \
    "--tool=memcheck --leak-check=full "                                    \
    "--show-leak-kinds=definite,indirect "                                  \
    "--errors-for-leak-kinds=definite,indirect --track-fds=no "             \
    "--trace-children=no --child-silent-after-fork=yes --num-callers=30"
#define S_VG_SUPP SL_TEST_SOURCE_DIR "/tests/valgrind.supp"
/* Bounded waits are this many times longer under valgrind. */
#define S_VG_SLACK 10.0

int sl_test_valgrind(void)
{
    const char *dir = getenv("SLUICE_TEST_VALGRIND");
    return dir && *dir;
}

static double s_slack(void)
{
    return sl_test_valgrind() ? S_VG_SLACK : 1.0;
}

/* The log folder, absolute (tests change directory), made if missing.
 * Tests paste the CLI's path into shell commands, quoted or not, so the
 * folder's path must need no quoting. */
static const char *s_vg_dir(void)
{
    static char dir[4096];
    if (dir[0])
        return dir;
    const char *want = getenv("SLUICE_TEST_VALGRIND");
    char path[4096];
    cr_assert_lt(strlen(want), sizeof(path) - 1, "SLUICE_TEST_VALGRIND is "
                 "too long");
    snprintf(path, sizeof(path), "%s", want);
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        mkdir(path, 0755);
        *p = '/';
    }
    mkdir(path, 0755);
    cr_assert_not_null(realpath(path, dir), "SLUICE_TEST_VALGRIND=%s: %s",
                       want, strerror(errno));
    cr_assert_eq(strspn(dir, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrs"
                             "tuvwxyz0123456789/._+-"), strlen(dir),
                 "SLUICE_TEST_VALGRIND=%s: the folder's path must be made "
                 "of letters, digits and / . _ + - only", dir);
    return dir;
}

/* The absolute path of program on $PATH, in buf; NULL if there is none. */
static const char *s_which(const char *program, char *buf, size_t len)
{
    const char *path = getenv("PATH");
    if (!path || !*path)
        path = "/usr/bin:/bin";
    while (*path) {
        size_t n = strcspn(path, ":");
        if (n > 0 && (size_t)snprintf(buf, len, "%.*s/%s", (int)n, path,
                                      program) < len &&
            access(buf, X_OK) == 0)
            return buf;
        path += n + (path[n] == ':');
    }
    return NULL;
}

/* Writes DIR/sluice-memcheck, the script that stands for the CLI: it
 * execs valgrind in its own process, so the pid a test holds, the signals
 * it sends and PR_SET_PDEATHSIG all reach the CLI. Each test process
 * writes it anew (same text) and renames it into place, so concurrent
 * tests never see half a script. Logs are named by pid and 32 random
 * bits, as a pid comes round again soon enough (pid_max may be 32768)
 * for a later log to overwrite an earlier one. */
static const char *s_vg_script(void)
{
    static char path[4200];
    if (path[0])
        return path;
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    cr_assert_fail("SLUICE_TEST_VALGRIND needs a build without sanitizers: "
                   "valgrind cannot run a sanitized CLI (make valgrind)");
#endif
    const char *dir = s_vg_dir();
    char vg[4096];
    cr_assert_not_null(s_which("valgrind", vg, sizeof(vg)),
                       "SLUICE_TEST_VALGRIND is set but valgrind is not "
                       "installed (apt-get install valgrind)");
    char tmp[4200], supp[sizeof(S_VG_SUPP) + 32] = "";
    if (access(S_VG_SUPP, R_OK) == 0)
        snprintf(supp, sizeof(supp), " --suppressions='%s'", S_VG_SUPP);
    snprintf(tmp, sizeof(tmp), "%s/.sluice-memcheck.%d", dir, (int)getpid());
    snprintf(path, sizeof(path), "%s/sluice-memcheck", dir);
    FILE *f = fopen(tmp, "w");
    cr_assert_not_null(f, "%s: %s", tmp, strerror(errno));
    fprintf(f,
            "#!/bin/sh\n"
            "# The sluice CLI under valgrind memcheck, written by the test "
            "suite\n# (tests/support/testutil.c, docs/testing.md).\n"
            "read SLUICE_VG_ID </proc/sys/kernel/random/uuid\n"
            "SLUICE_VG_ID=${SLUICE_VG_ID%%%%-*}\n"
            "export SLUICE_VG_ID\n"
            "exec '%s' " S_VG_OPTS " --error-exitcode=%d%s \\\n"
            "    --log-file='%s/%%p-%%q{SLUICE_VG_ID}.log' \\\n"
            "    '%s' \"$@\"\n",
            vg, SL_TEST_VALGRIND_EXIT, supp, dir,
            SL_TEST_BINARY_DIR "/tools/sluice");
    int ok = fchmod(fileno(f), 0755) == 0;
    ok = (fclose(f) == 0) && ok;
    cr_assert(ok && rename(tmp, path) == 0, "cannot write %s: %s", path,
              strerror(errno));
    return path;
}

/* Fails the test with the memcheck report of pid (0: the newest log of the
 * folder that reports errors), which ended with SL_TEST_VALGRIND_EXIT. */
static void s_vg_fail(pid_t pid, const char *what)
{
    const char *dir = s_vg_dir();
    char prefix[32], best[4400] = "";
    snprintf(prefix, sizeof(prefix), "%d-", (int)pid);
    double newest = -1;
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n < 5 || strcmp(e->d_name + n - 4, ".log") != 0 ||
            (pid > 0 && strncmp(e->d_name, prefix, strlen(prefix)) != 0))
            continue;
        char path[4400];
        struct stat st;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        if (stat(path, &st) != 0)
            continue;
        double mtime = (double)st.st_mtim.tv_sec +
                       (double)st.st_mtim.tv_nsec / 1e9;
        if (pid == 0) {
            char *text = sl_test_read_file(path, NULL);
            int bad = text && strstr(text, "ERROR SUMMARY: ") &&
                      !strstr(text, "ERROR SUMMARY: 0 errors");
            free(text);
            if (!bad)
                continue;
        }
        if (mtime > newest) {
            newest = mtime;
            snprintf(best, sizeof(best), "%s", path);
        }
    }
    if (d)
        closedir(d);
    char *text = best[0] ? sl_test_read_file(best, NULL) : NULL;
    cr_assert_fail("memcheck found errors or leaks in the CLI (%s, exit "
                   "%d); %s:\n%.12000s", what, SL_TEST_VALGRIND_EXIT,
                   best[0] ? best : dir, text ? text : "(no log)");
}

const char *sl_test_cli(void)
{
    if (sl_test_valgrind())
        return s_vg_script();
    return SL_TEST_BINARY_DIR "/tools/sluice";
}

int sl_test_run(const char *cmd, char **output)
{
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    char *buf = s_slurp(p, 8192, NULL);
    int status = pclose(p);
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    if (code == SL_TEST_VALGRIND_EXIT && sl_test_valgrind())
        s_vg_fail(0, cmd);
    if (output)
        *output = buf;
    else
        free(buf);
    return code;
}

double sl_test_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int sl_test_wait_exit(pid_t pid, double timeout_s)
{
    const struct timespec tick = {0, 5 * 1000 * 1000};
    double end = sl_test_now() + timeout_s * s_slack();
    int status;
    for (;;) {
        pid_t got = waitpid(pid, &status, WNOHANG);
        if (got == pid) {
            int code = WIFEXITED(status) ? WEXITSTATUS(status)
                                         : 128 + WTERMSIG(status);
            if (code == SL_TEST_VALGRIND_EXIT && sl_test_valgrind())
                s_vg_fail(pid, "a spawned CLI");
            return code;
        }
        cr_assert(got == 0 || errno == EINTR, "waitpid: %s", strerror(errno));
        if (sl_test_now() > end) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            return -1;
        }
        nanosleep(&tick, NULL);
    }
}

int sl_test_wait_lines(const char *path, long lines, double timeout_s)
{
    const struct timespec tick = {0, 5 * 1000 * 1000};
    double end = sl_test_now() + timeout_s * s_slack();
    while (sl_test_count_lines(path) < lines) {
        if (sl_test_now() > end)
            return 0;
        nanosleep(&tick, NULL);
    }
    return 1;
}

uint64_t sl_test_rand(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545f4914f6cdd1dull;
}

/* ---- diagnostics -------------------------------------------------------- */

const char *sl_test_diag_text(const sl_diag_t *diag)
{
    static char buf[16384];
    size_t len = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < diag->count && len + 1 < sizeof(buf); i++) {
        int n = snprintf(buf + len, sizeof(buf) - len, "%s\n",
                         diag->lines[i]);
        if (n < 0)
            break;
        len += (size_t)n;
        if (len >= sizeof(buf))
            len = sizeof(buf) - 1;
    }
    return buf;
}

void sl_test_expect_line(const sl_diag_t *diag, const char *want)
{
    for (size_t i = 0; i < diag->count; i++)
        if (strcmp(diag->lines[i], want) == 0)
            return;
    cr_assert_fail("missing diagnostic:\n  %s\ngot:\n%s", want,
                   sl_test_diag_text(diag));
}

void sl_test_expect_prefix(const sl_diag_t *diag, const char *want)
{
    for (size_t i = 0; i < diag->count; i++)
        if (strncmp(diag->lines[i], want, strlen(want)) == 0)
            return;
    cr_assert_fail("no diagnostic starting with:\n  %s\ngot:\n%s", want,
                   sl_test_diag_text(diag));
}

/* ---- one stage in the harness ------------------------------------------- */

sl_harness_t *sl_test_harness(const char *plugin, const char *yaml,
                              const char *dir)
{
    char err[2048] = "";
    sl_harness_t *h = sl_harness_new(plugin, yaml, dir, err, sizeof(err));
    cr_assert_not_null(h, "harness %s: %s", plugin, err);
    return h;
}

void sl_test_refused(const char *plugin, const char *yaml, const char *dir,
                     const char *want)
{
    char err[2048] = "";
    sl_harness_t *h = sl_harness_new(plugin, yaml, dir, err, sizeof(err));
    cr_assert_null(h, "%s accepted: %s", plugin, yaml);
    cr_assert_not_null(strstr(err, want), "error '%s' lacks '%s'", err,
                       want);
}

void sl_test_push_ok(sl_harness_t *h, const char *json, const char *want)
{
    size_t before = sl_harness_count(h);
    cr_assert_eq(sl_harness_push_json(h, json), 0, "%s: %s", json,
                 sl_harness_last_error(h));
    cr_assert_eq(sl_harness_count(h), before + 1);
    cr_expect_str_eq(sl_harness_output(h, before), want, "in %s", json);
}

void sl_test_push_fails(sl_harness_t *h, const char *json, const char *want)
{
    size_t before = sl_harness_count(h), errs = sl_harness_errors(h);
    cr_assert_lt(sl_harness_push_json(h, json), 0, "%s was accepted", json);
    cr_expect_eq(sl_harness_count(h), before, "a failed record emitted");
    cr_expect_eq(sl_harness_errors(h), errs + 1);
    const char *e = sl_harness_last_error(h);
    cr_expect_not_null(strstr(e, want), "error '%s' lacks '%s'", e, want);
}

/* ---- whole topologies in process ---------------------------------------- */

sl_topology_t *sl_test_topology(const char *name, const char *dir,
                                const char *yaml)
{
    sl_diag_t diag;
    sl__diag_init(&diag);
    sl_topology_t *t = sl__topology_parse(name, dir, yaml, &diag);
    const char *msg = sl_test_diag_text(&diag);
    sl__diag_fini(&diag);
    cr_assert_not_null(t, "topology rejected:\n%s---\n%s", msg, yaml);
    return t;
}

size_t sl_test_stage_index(const sl_topology_t *t, const char *name)
{
    long i = sl__topology_find(t, name);
    cr_assert_geq(i, 0, "no stage '%s'", name);
    return (size_t)i;
}

void sl_test_expect_ledger(sl_run_t *run)
{
    sl_diag_t diag;
    sl__diag_init(&diag);
    int rc = sl__run_check_ledger(run, &diag);
    cr_assert_eq(rc, 0, "ledger: %zu problem(s), first: %s", diag.count,
                 diag.count ? diag.lines[0] : "-");
    sl__diag_fini(&diag);
}

sl_run_t *sl_test_run_start(const sl_topology_t *t)
{
    char err[1024];
    sl_run_t *run = sl__run_new(t, err, sizeof(err));
    cr_assert_not_null(run, "sl__run_new: %s", err);
    cr_assert_eq(sl__run_start(run), 0);
    return run;
}

sl_run_t *sl_test_run_to_end(const sl_topology_t *t)
{
    sl_run_t *run = sl_test_run_start(t);
    cr_assert_eq(sl__run_wait(run), 0, "the run did not end cleanly");
    sl_test_expect_ledger(run);
    return run;
}

void sl_test_stage_stats(sl_run_t *run, const sl_topology_t *t,
                         const char *name, sl_stage_stats_t *st)
{
    sl__run_stats(run, sl_test_stage_index(t, name), st);
    cr_assert(st->finished, "stage '%s' has not finished", name);
}

/* ---- checksum_sink ------------------------------------------------------ */

void sl_test_expected_ids(unsigned stage, uint64_t n, int (*keep)(uint64_t),
                          sl_test_sums_t *out)
{
    memset(out, 0, sizeof(*out));
    for (uint64_t seq = 0; seq < n; seq++) {
        if (keep && !keep(seq))
            continue;
        uint64_t id = ((uint64_t)(stage + 1) << 48) | seq;
        out->count++;
        out->sum += id;
        out->xor_ ^= id;
    }
}

void sl_test_read_sums(const char *path, sl_test_sums_t *out)
{
    memset(out, 0, sizeof(*out));
    char *text = sl_test_read_file(path, NULL);
    cr_assert_not_null(text, "checksum_sink wrote no file at %s", path);
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        uint64_t c, s, x, v, k;
        int n = sscanf(line,
                       "count=%" SCNu64 " sum=%" SCNu64 " xor=%" SCNu64
                       " violations=%" SCNu64 " keys=%" SCNu64,
                       &c, &s, &x, &v, &k);
        cr_assert_eq(n, 5, "unexpected checksum line '%s'", line);
        out->count += c;
        out->sum += s;
        out->xor_ ^= x;
        out->violations += v;
        out->keys += k;
        out->lines++;
    }
    free(text);
    cr_assert_gt(out->lines, 0, "checksum file %s is empty", path);
}

void sl_test_expect_ids(const sl_test_sums_t *got,
                        const sl_test_sums_t *want)
{
    cr_expect_eq(got->count, want->count, "count %" PRIu64 ", want %" PRIu64,
                 got->count, want->count);
    cr_expect_eq(got->sum, want->sum, "sum of ids %" PRIu64 ", want %" PRIu64,
                 got->sum, want->sum);
    cr_expect_eq(got->xor_, want->xor_,
                 "xor of ids %" PRIx64 ", want %" PRIx64, got->xor_,
                 want->xor_);
}

void sl_test_sanitizer_worker_env(void)
{
#if defined(__SANITIZE_ADDRESS__)
    const char *old = getenv("UBSAN_OPTIONS");
    char buf[1024];
    snprintf(buf, sizeof(buf), "%s%sabort_on_error=0:exitcode=1",
             old ? old : "", old && *old ? ":" : "");
    setenv("UBSAN_OPTIONS", buf, 1);
#endif
}

pid_t sl_test_spawn_cli(const char *log, const char *const *args)
{
    const char *argv[40] = {"sluice"};
    size_t n = 1;
    for (; args[n - 1]; n++) {
        cr_assert_lt(n, 39, "too many arguments");
        argv[n] = args[n - 1];
    }
    argv[n] = NULL;
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a failed test */
        if (chdir(sl_test_dir()) != 0)
            _exit(126);
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0)
            _exit(126);
        dup2(fd, 1);
        dup2(fd, 2);
        execv(sl_test_cli(), (char *const *)argv);
        _exit(127);
    }
    return pid;
}

char *sl_test_wait_log(const char *log, const char *what, double timeout_s)
{
    const struct timespec tick = {0, 5 * 1000 * 1000};
    double end = sl_test_now() + timeout_s * s_slack();
    char path[4096];
    if (log[0] == '/')
        snprintf(path, sizeof(path), "%s", log);
    else
        snprintf(path, sizeof(path), "%s/%s", sl_test_dir(), log);
    for (;;) {
        char *text = sl_test_read_file(path, NULL);
        if (text && strstr(text, what))
            return text;
        if (sl_test_now() > end)
            cr_assert_fail("no '%s' in the log after %.0f s:\n%s", what,
                           timeout_s * s_slack(), text ? text : "(no log)");
        free(text);
        nanosleep(&tick, NULL);
    }
}

unsigned sl_test_metrics_port(const char *log_text, const char *host)
{
    char want[96];
    snprintf(want, sizeof(want), "metrics on http://%s:", host);
    const char *p = strstr(log_text, want);
    cr_assert_not_null(p, "no '%s' in:\n%s", want, log_text);
    unsigned port = 0;
    char rest[16] = "";
    cr_assert_eq(sscanf(p + strlen(want), "%u%15[^\"\n]", &port, rest), 2);
    cr_assert_str_eq(rest, "/metrics");
    cr_assert(port > 0 && port < 65536, "port %u", port);
    return port;
}

void sl_test_http_free(sl_test_http_t *r)
{
    free(r->head);
    free(r->body);
    r->head = r->body = NULL;
}

sl_test_http_t sl_test_http(unsigned port, const char *method,
                            const char *path)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0,
                 "connect to port %u: %s", port, strerror(errno));
    char req[2048];
    int n = snprintf(req, sizeof(req), "%s %s HTTP/1.0\r\nHost: test\r\n"
                     "Content-Length: 0\r\n\r\n", method, path);
    cr_assert(n > 0 && (size_t)n < sizeof(req));
    cr_assert_eq(write(fd, req, (size_t)n), n);
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap);
    cr_assert_not_null(buf);
    for (;;) {
        if (len + 4096 > cap)
            cr_assert_not_null(buf = realloc(buf, cap *= 2));
        ssize_t got = read(fd, buf + len, cap - len - 1);
        cr_assert_geq(got, 0, "read: %s", strerror(errno));
        if (got == 0)
            break;
        len += (size_t)got;
    }
    close(fd);
    buf[len] = '\0';
    char *sep = strstr(buf, "\r\n\r\n");
    cr_assert_not_null(sep, "no end of headers in:\n%s", buf);
    *sep = '\0';
    sl_test_http_t r = {0, strdup(buf), strdup(sep + 4)};
    cr_assert_eq(sscanf(buf, "HTTP/1.%*d %d", &r.status), 1, "%s", buf);
    free(buf);
    return r;
}

void sl_test_summary_row(const char *log, const char *stage,
                         unsigned *workers, uint64_t *in, uint64_t *out,
                         uint64_t *filtered, uint64_t *dead)
{
    char head[80];
    snprintf(head, sizeof(head), "\n%s ", stage);
    const char *p = strstr(log, head);
    cr_assert_not_null(p, "no summary row for '%s' in:\n%s", stage, log);
    int n = sscanf(p + 1,
                   "%*s %*s %u %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64,
                   workers, in, out, filtered, dead);
    cr_assert_eq(n, 5, "cannot read the summary row of '%s':\n%s", stage,
                 log);
}

void sl_test_on_fail(void *arg, const char *msg, int final, const void *rec,
                     size_t len)
{
    sl_test_fail_log_t *f = arg;
    f->n++;
    f->final = final;
    snprintf(f->msg, sizeof(f->msg), "%s", msg);
    f->rec_len = len;
    if (len)
        memcpy(f->rec, rec, len < sizeof(f->rec) ? len : sizeof(f->rec));
}
