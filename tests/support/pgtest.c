/* Private PostgreSQL servers for the suites (see pgtest.h). */
#include "pgtest.h"
#include "testutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define S_ENV_SERVER "SL_PGTEST_SERVER"
#define S_ENV_FAIL "SL_PGTEST_FAIL"
#define S_ENV_TEMPLATE "SL_PGTEST_TEMPLATE"
#define S_MISSING "not installed"

struct sl_pgtest {
    char *dir;    /* the server's folder: data/, the socket, logs */
    char *bindir; /* PostgreSQL's programs */
    int port;
    int owner;    /* started by this process: destroy stops it */
    int guard_fd; /* write end of the guard's pipe, or -1 */
    pid_t guard;
};

static char *s_fmt(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
static char *s_fmt(const char *fmt, ...)
{
    va_list ap;
    char *s = NULL;

    va_start(ap, fmt);
    if (vasprintf(&s, fmt, ap) < 0)
        s = NULL;
    va_end(ap);
    return s;
}

int sl_pgtest_missing(const char *why)
{
    return why && strstr(why, S_MISSING) != NULL;
}

/* The folder holding initdb and pg_ctl: $SL_PG_BINDIR, else the newest
 * of Debian's /usr/lib/postgresql/N/bin. */
static char *s_bindir(void)
{
    const char *env = getenv("SL_PG_BINDIR");

    if (env && *env) {
        char *p = s_fmt("%s/initdb", env);
        int ok = p && access(p, X_OK) == 0;
        free(p);
        return ok ? strdup(env) : NULL;
    }
    for (int v = 17; v >= 13; v--) {
        char *d = s_fmt("/usr/lib/postgresql/%d/bin", v), *p;
        if (!d)
            return NULL;
        p = s_fmt("%s/initdb", d);
        if (p && access(p, X_OK) == 0) {
            free(p);
            return d;
        }
        free(p);
        free(d);
    }
    return NULL;
}

static double s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void s_nap_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Runs argv (as postgres when root), output appended to DIR/commands.log;
 * its exit code, or -1 (killed after timeout_s). */
static int s_cmd(const sl_pgtest_t *pg, char *const argv[], double timeout_s)
{
    char *log = s_fmt("%s/commands.log", pg->dir);
    int fd = log ? open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644)
                 : -1;
    char *args[32];
    size_t n = 0;
    pid_t pid;
    int status;

    free(log);
    if (fd < 0)
        return -1;
    if (geteuid() == 0) {
        args[n++] = "runuser";
        args[n++] = "-u";
        args[n++] = "postgres";
        args[n++] = "--";
    }
    for (size_t i = 0; argv[i] && n < 31; i++)
        args[n++] = argv[i];
    args[n] = NULL;
    pid = fork();
    if (pid < 0) {
        close(fd);
        return -1;
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(fd, 1);
        dup2(fd, 2);
        execvp(args[0], args);
        _exit(127);
    }
    close(fd);
    double end = s_now() + timeout_s;
    for (;;) {
        pid_t got = waitpid(pid, &status, WNOHANG);
        if (got == pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        if (got < 0 && errno != EINTR)
            return -1;
        if (s_now() > end) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            return -1;
        }
        s_nap_ms(5);
    }
}

static int s_free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port = -1;

    if (fd < 0)
        return -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

/* Settings appended to postgresql.conf (a later line wins). */
static int s_conf(const sl_pgtest_t *pg)
{
    char *path = s_fmt("%s/data/postgresql.conf", pg->dir);
    FILE *f = path ? fopen(path, "a") : NULL;
    int rc;

    free(path);
    if (!f)
        return -1;
    /* Loopback and the folder's socket only; fsync off: a test server
     * need not survive a power cut, and it starts and writes faster;
     * shared memory segments in the folder (mmap), so that an immediate
     * stop leaves none in /dev/shm. */
    fprintf(f, "\nlisten_addresses = '127.0.0.1'\nport = %d\n"
               "unix_socket_directories = '%s'\nfsync = off\n"
               "dynamic_shared_memory_type = mmap\n"
               "max_connections = 60\nlog_min_messages = warning\n",
            pg->port, pg->dir);
    rc = fclose(f) == 0 ? 0 : -1;
    return rc;
}

int sl_pgtest_server_start(sl_pgtest_t *pg)
{
    char *pgctl = s_fmt("%s/pg_ctl", pg->bindir);
    char *data = s_fmt("%s/data", pg->dir);
    char *log = s_fmt("%s/server.log", pg->dir);
    int rc = -1;

    if (pgctl && data && log) {
        char *argv[] = {pgctl, "-D", data, "-l", log, "-w", "-t", "60",
                        "start", NULL};
        rc = s_cmd(pg, argv, 90) == 0 ? 0 : -1;
    }
    free(pgctl);
    free(data);
    free(log);
    return rc;
}

static int s_stop(sl_pgtest_t *pg, const char *mode)
{
    char *pgctl = s_fmt("%s/pg_ctl", pg->bindir);
    char *data = s_fmt("%s/data", pg->dir);
    int rc = -1;

    if (pgctl && data) {
        char *argv[] = {pgctl, "-D", data, "-m", (char *)mode, "-w", "-t",
                        "60", "stop", NULL};
        rc = s_cmd(pg, argv, 90) == 0 ? 0 : -1;
        if (rc < 0) {
            char *now[] = {pgctl, "-D", data, "-m", "immediate", "-w",
                           "stop", NULL};
            rc = s_cmd(pg, now, 30) == 0 ? 0 : -1;
        }
    }
    free(pgctl);
    free(data);
    return rc;
}

int sl_pgtest_server_stop(sl_pgtest_t *pg)
{
    return s_stop(pg, "fast");
}

/* A shell that waits for its stdin (our pipe) to close, then stops the
 * server and removes the folder if they are still there: when this
 * process ends in any way. exec at once: the forked copy of a threaded
 * process must not run more of it. */
static int s_guard(sl_pgtest_t *pg)
{
    int p[2];
    char *script = s_fmt(
        "cat >/dev/null; if [ -f '%s/data/postmaster.pid' ]; then "
        "%s'%s/pg_ctl' -D '%s/data' -m immediate -w stop >/dev/null 2>&1; "
        "fi; rm -rf '%s'",
        pg->dir, geteuid() == 0 ? "runuser -u postgres -- " : "", pg->bindir,
        pg->dir, pg->dir);

    if (!script || pipe2(p, O_CLOEXEC) < 0) {
        free(script);
        return -1;
    }
    pg->guard = fork();
    if (pg->guard < 0) {
        free(script);
        close(p[0]);
        close(p[1]);
        return -1;
    }
    if (pg->guard == 0) {
        setsid(); /* a Ctrl-C for the tests must not stop the cleanup */
        dup2(p[0], 0);
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0) {
            dup2(null, 1);
            dup2(null, 2);
        }
        execl("/bin/sh", "sh", "-c", script, (char *)NULL);
        _exit(127);
    }
    free(script);
    close(p[0]);
    pg->guard_fd = p[1];
    return 0;
}

/* A fresh data folder: a copy of the suite's pristine one when there is
 * one (initdb takes seconds on a busy machine), else initdb. */
static int s_initdb(sl_pgtest_t *pg)
{
    const char *tmpl = getenv(S_ENV_TEMPLATE);
    char *initdb = s_fmt("%s/initdb", pg->bindir);
    char *data = s_fmt("%s/data", pg->dir);
    int rc = -1;

    if (initdb && data && tmpl && access(tmpl, R_OK | X_OK) == 0) {
        char *argv[] = {"cp", "-a", (char *)tmpl, data, NULL};
        rc = s_cmd(pg, argv, 60);
    }
    if (rc != 0 && initdb && data) {
        char *argv[] = {initdb, "-D", data, "-A", "trust", "-U", "postgres",
                        "-N", "-E", "UTF8", "--locale=C", NULL};
        rc = s_cmd(pg, argv, 120);
    }
    free(initdb);
    free(data);
    return rc;
}

/* The end of DIR/name, for a reason that outlives the folder. */
static char *s_log_tail(const sl_pgtest_t *pg, const char *name)
{
    char *path = s_fmt("%s/%s", pg->dir, name);
    size_t len = 0;
    char *text = path ? sl_test_read_file(path, &len) : NULL;
    char *out;

    free(path);
    if (!text)
        return strdup("(no log)");
    out = strdup(len > 800 ? text + len - 800 : text);
    free(text);
    return out;
}

static void s_reason(char **why, char *text)
{
    if (why)
        *why = text;
    else
        free(text);
}

/* keep_template: also keep a pristine copy of the data folder, for the
 * private servers of the tests (S_ENV_TEMPLATE). */
static sl_pgtest_t *s_start(char **why, int keep_template)
{
    sl_pgtest_t *pg = calloc(1, sizeof(*pg));
    struct passwd *pw = NULL;
    /* tmpfs when there is one: a server writes a lot, and a busy disk
     * makes initdb take seconds more. */
    char tmpl[64];

    if (why)
        *why = NULL;
    if (!pg) {
        s_reason(why, strdup("out of memory"));
        return NULL;
    }
    pg->guard_fd = -1;
    pg->owner = 1;
    pg->bindir = s_bindir();
    if (!pg->bindir) {
        s_reason(why, strdup("PostgreSQL server programs " S_MISSING
                             " (no initdb in $SL_PG_BINDIR or under "
                             "/usr/lib/postgresql/*/bin): install Debian's "
                             "postgresql package (scripts/deps.sh)"));
        goto fail;
    }
    if (geteuid() == 0 && !(pw = getpwnam("postgres"))) {
        s_reason(why, strdup("running as root, and the 'postgres' user is "
                             S_MISSING ": install Debian's postgresql "
                             "package (it creates the user)"));
        goto fail;
    }
    snprintf(tmpl, sizeof(tmpl), "%s/sl-pg.XXXXXX",
             access("/dev/shm", W_OK | X_OK) == 0 ? "/dev/shm" : "/tmp");
    if (!mkdtemp(tmpl) || !(pg->dir = strdup(tmpl))) {
        s_reason(why, s_fmt("cannot make a folder: %s", strerror(errno)));
        goto fail;
    }
    if (pw && chown(pg->dir, pw->pw_uid, pw->pw_gid) < 0) {
        s_reason(why, s_fmt("chown %s: %s", pg->dir, strerror(errno)));
        goto fail;
    }
    if (s_guard(pg) < 0) {
        s_reason(why, s_fmt("cannot start the guard: %s", strerror(errno)));
        goto fail;
    }
    if (s_initdb(pg) != 0) {
        char *log = s_log_tail(pg, "commands.log");
        s_reason(why, s_fmt("initdb failed: %s", log ? log : "?"));
        free(log);
        goto fail;
    }
    if (keep_template) {
        char *data = s_fmt("%s/data", pg->dir);
        char *copy = s_fmt("%s/template", pg->dir);
        char *argv[] = {"cp", "-a", data, copy, NULL};
        if (data && copy && s_cmd(pg, argv, 60) == 0)
            setenv(S_ENV_TEMPLATE, copy, 1);
        free(data);
        free(copy);
    }
    /* A port found free may be taken before the server binds it. */
    for (int attempt = 0; attempt < 3; attempt++) {
        pg->port = s_free_port();
        if (pg->port > 0 && s_conf(pg) == 0 &&
            sl_pgtest_server_start(pg) == 0)
            return pg;
    }
    char *log = s_log_tail(pg, "server.log");
    s_reason(why, s_fmt("the server did not start: %s", log ? log : "?"));
    free(log);
fail:
    sl_pgtest_destroy(&pg);
    return NULL;
}

sl_pgtest_t *sl_pgtest_start(char **why)
{
    return s_start(why, 0);
}

void sl_pgtest_destroy(sl_pgtest_t **pgp)
{
    sl_pgtest_t *pg = pgp ? *pgp : NULL;

    if (!pg)
        return;
    if (pg->owner && pg->dir) {
        char *pid = s_fmt("%s/data/postmaster.pid", pg->dir);
        /* immediate: no shutdown checkpoint for data about to go */
        if (pid && access(pid, F_OK) == 0)
            s_stop(pg, "immediate");
        free(pid);
        sl_test_rmtree(pg->dir);
        pg->dir = NULL;
    }
    if (pg->guard_fd >= 0) {
        int status;
        close(pg->guard_fd); /* the guard finds nothing left to do */
        waitpid(pg->guard, &status, 0);
    }
    free(pg->dir);
    free(pg->bindir);
    free(pg);
    *pgp = NULL;
}

/* ---- one server per suite -------------------------------------------------- */

static sl_pgtest_t *s_suite;

static void s_suite_stop(void)
{
    sl_pgtest_destroy(&s_suite);
}

void sl__pgtest_suite_start(void)
{
    char *why = NULL;

    s_suite = s_start(&why, 1);
    if (s_suite) {

        char *v = s_fmt("%d|%s|%s", s_suite->port, s_suite->bindir,
                        s_suite->dir);
        if (v)
            setenv(S_ENV_SERVER, v, 1);
        free(v);
        atexit(s_suite_stop);
    } else {
        setenv(S_ENV_FAIL, why ? why : "out of memory", 1);
        fprintf(stderr, "pgtest: no PostgreSQL server: %s\n",
                why ? why : "out of memory");
    }
    free(why);
}

static void s_skip_or_fail(const char *why)
{
    if (sl_pgtest_missing(why))
        cr_skip_test("%s", why);
    cr_assert_fail("no PostgreSQL server: %s", why);
}

sl_pgtest_t *sl_pgtest_shared(void)
{
    static sl_pgtest_t attached;
    const char *v = getenv(S_ENV_SERVER);
    const char *fail = getenv(S_ENV_FAIL);
    char bindir[4096], dir[4096];

    if (fail)
        s_skip_or_fail(fail);
    cr_assert_not_null(v, "no shared server: put SL_PGTEST_SUITE_SERVER() "
                          "in the test file");
    cr_assert_eq(sscanf(v, "%d|%4095[^|]|%4095s", &attached.port, bindir,
                        dir),
                 3, "%s=%s", S_ENV_SERVER, v);
    free(attached.bindir);
    free(attached.dir);
    attached.bindir = strdup(bindir);
    attached.dir = strdup(dir);
    attached.guard_fd = -1;
    attached.owner = 0;
    cr_assert(attached.bindir && attached.dir);
    return &attached;
}

sl_pgtest_t *sl_pgtest_private(void)
{
    char *why = NULL;
    sl_pgtest_t *pg = sl_pgtest_start(&why);

    if (!pg) {
        char keep[1024];
        snprintf(keep, sizeof(keep), "%s", why ? why : "out of memory");
        free(why);
        s_skip_or_fail(keep);
    }
    return pg;
}

/* ---- queries --------------------------------------------------------------- */

int sl_pgtest_port(const sl_pgtest_t *pg)
{
    return pg->port;
}

char *sl_pgtest_conninfo_port(const sl_pgtest_t *pg, int port,
                              const char *db)
{
    (void)pg;
    return s_fmt("host=127.0.0.1 port=%d user=postgres dbname=%s "
                 "sslmode=disable gssencmode=disable connect_timeout=10",
                 port, db);
}

char *sl_pgtest_conninfo(const sl_pgtest_t *pg, const char *db)
{
    return sl_pgtest_conninfo_port(pg, pg->port, db);
}

static void s_quiet(void *arg, const char *msg)
{
    (void)arg;
    (void)msg;
}

int sl_pgtest_try_query(const sl_pgtest_t *pg, const char *db,
                        const char *sql, char **out)
{
    char *ci = sl_pgtest_conninfo(pg, db);
    PGconn *conn = ci ? PQconnectdb(ci) : NULL;
    PGresult *r = NULL;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = NULL;
    int rc = -1;

    free(ci);
    if (out)
        *out = NULL;
    if (!conn || PQstatus(conn) != CONNECTION_OK) {
        if (out)
            *out = s_fmt("connect: %s", conn ? PQerrorMessage(conn) : "oom");
        goto done;
    }
    PQsetNoticeProcessor(conn, s_quiet, NULL);
    r = PQexec(conn, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK &&
        PQresultStatus(r) != PGRES_COMMAND_OK) {
        if (out)
            *out = s_fmt("%s", PQerrorMessage(conn));
        goto done;
    }
    f = open_memstream(&buf, &len);
    if (!f)
        goto done;
    for (int i = 0; i < PQntuples(r); i++) {
        for (int j = 0; j < PQnfields(r); j++)
            fprintf(f, "%s%s", j ? "|" : "",
                    PQgetisnull(r, i, j) ? "NULL" : PQgetvalue(r, i, j));
        fputc('\n', f);
    }
    if (fclose(f) == 0) {
        rc = 0;
        if (out)
            *out = buf;
        else
            free(buf);
    }
done:
    PQclear(r);
    if (conn)
        PQfinish(conn);
    return rc;
}

char *sl_pgtest_query(const sl_pgtest_t *pg, const char *db, const char *sql)
{
    char *out = NULL;
    int rc;

    rc = sl_pgtest_try_query(pg, db, sql, &out);
    cr_assert_eq(rc, 0, "%s: %s", sql, out ? out : "?");
    cr_assert_not_null(out);
    return out;
}

void sl_pgtest_exec(const sl_pgtest_t *pg, const char *db, const char *sql)
{
    free(sl_pgtest_query(pg, db, sql));
}

void sl_pgtest_expect(const sl_pgtest_t *pg, const char *db, const char *sql,
                      const char *want)
{
    char *got = sl_pgtest_query(pg, db, sql);
    cr_expect_str_eq(got, want, "%s\ngot:\n%swant:\n%s", sql, got, want);
    free(got);
}

void sl_pgtest_createdb(const sl_pgtest_t *pg, const char *db)
{
    char *sql = s_fmt("DROP DATABASE IF EXISTS \"%s\" WITH (FORCE)", db);
    cr_assert_not_null(sql);
    sl_pgtest_exec(pg, "postgres", sql);
    free(sql);
    sql = s_fmt("CREATE DATABASE \"%s\"", db);
    cr_assert_not_null(sql);
    sl_pgtest_exec(pg, "postgres", sql);
    free(sql);
}

int sl_pgtest_terminate(const sl_pgtest_t *pg, const char *db,
                        const char *app)
{
    char *sql = s_fmt("SELECT count(*) FILTER (WHERE "
                      "pg_terminate_backend(pid)) FROM pg_stat_activity "
                      "WHERE datname = '%s' AND application_name LIKE '%s%%' "
                      "AND pid <> pg_backend_pid()",
                      db, app);
    char *out = NULL;
    int n = -1;

    if (sql && sl_pgtest_try_query(pg, "postgres", sql, &out) == 0)
        n = atoi(out);
    free(out);
    free(sql);
    return n;
}
