/* `sluice top`: the exact view of canned /metrics text served by a small
 * HTTP server in this test, its errors and exit codes, and the bottleneck
 * it finds in real runs of `sluice run --metrics`. */
#include <criterion/criterion.h>

#include "testutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- a canned /metrics server ------------------------------------------ */

typedef struct fake {
    int lfd;
    int stop[2];           /* a byte on stop[1] ends the thread */
    unsigned short port;
    const char *const *docs; /* served in turn, the last one again */
    size_t n_docs;
    unsigned max_requests; /* then the listener closes; 0: no limit */
    unsigned served;
    pthread_t thread;
} fake_t;

static void fake_reply(fake_t *f, int c)
{
    /* The request's end, bounded: curl sends a small GET. */
    char req[4096];
    size_t got = 0;
    while (got < sizeof(req) - 1) {
        struct pollfd p = {.fd = c, .events = POLLIN};
        if (poll(&p, 1, 5000) <= 0)
            return;
        ssize_t n = read(c, req + got, sizeof(req) - 1 - got);
        if (n <= 0)
            return;
        got += (size_t)n;
        req[got] = '\0';
        if (strstr(req, "\r\n\r\n"))
            break;
    }
    size_t i = f->served < f->n_docs ? f->served : f->n_docs - 1;
    const char *body = f->docs[i];
    char head[256];
    int hl = snprintf(head, sizeof(head),
                      "HTTP/1.1 200 OK\r\n"
                      "Content-Type: text/plain; version=0.0.4\r\n"
                      "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                      strlen(body));
    if (write(c, head, (size_t)hl) != hl ||
        write(c, body, strlen(body)) != (ssize_t)strlen(body))
        return;
    f->served++;
}

static void *fake_main(void *arg)
{
    fake_t *f = arg;
    for (;;) {
        struct pollfd p[2] = {{.fd = f->lfd, .events = POLLIN},
                              {.fd = f->stop[0], .events = POLLIN}};
        if (poll(p, 2, -1) < 0 && errno != EINTR)
            break;
        if (p[1].revents)
            break;
        if (!(p[0].revents & POLLIN))
            continue;
        int c = accept(f->lfd, NULL, NULL);
        if (c < 0)
            continue;
        fake_reply(f, c);
        close(c);
        if (f->max_requests && f->served >= f->max_requests) {
            /* The endpoint goes away, as when a run ends. */
            close(f->lfd);
            f->lfd = -1;
            break;
        }
    }
    return NULL;
}

static int listen_any(unsigned short *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    cr_assert_eq(listen(fd, 8), 0);
    socklen_t len = sizeof(a);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

static void fake_start(fake_t *f, const char *const *docs, size_t n,
                       unsigned max_requests)
{
    memset(f, 0, sizeof(*f));
    f->docs = docs;
    f->n_docs = n;
    f->max_requests = max_requests;
    f->lfd = listen_any(&f->port);
    cr_assert_eq(pipe2(f->stop, O_CLOEXEC), 0);
    cr_assert_eq(pthread_create(&f->thread, NULL, fake_main, f), 0);
}

static void fake_stop(fake_t *f)
{
    cr_assert_eq(write(f->stop[1], "x", 1), 1);
    pthread_join(f->thread, NULL);
    if (f->lfd >= 0)
        close(f->lfd);
    close(f->stop[0]);
    close(f->stop[1]);
}

/* Runs `sluice top args` with stdout into *out and stderr into *err
 * (either may be NULL); returns the exit code. */
static int run_top(const char *args, char **out, char **err)
{
    char *dir = sl_test_tmpdir();
    char cmd[1024], errpath[512];
    snprintf(errpath, sizeof(errpath), "%s/stderr", dir);
    snprintf(cmd, sizeof(cmd), "%s top %s 2>%s </dev/null", sl_test_cli(),
             args, errpath);
    char *o = NULL;
    int code = sl_test_run(cmd, &o);
    cr_assert(code >= 0, "'%s' did not exit", cmd);
    if (out)
        *out = o;
    else
        free(o);
    if (err) {
        *err = sl_test_read_file(errpath, NULL);
        cr_assert_not_null(*err);
    }
    sl_test_rmtree(dir);
    return code;
}

/* ---- the canned view ----------------------------------------------------- */

/* Two scrapes 2 s apart by the run's clock (wall time does not matter). */
#define DOC(elapsed, rd, bp_src, bp_parse, busy_slow, slow_in, hist5)        \
    "# HELP sluice_run_info Always 1.\n"                                     \
    "# TYPE sluice_run_info gauge\n"                                         \
    "sluice_run_info{topology=\"demo \\\"canned\\\"\"} 1\n"                  \
    "# TYPE sluice_run_elapsed_seconds gauge\n"                              \
    "sluice_run_elapsed_seconds " elapsed "\n"                               \
    "# TYPE sluice_stage_info gauge\n"                                       \
    "sluice_stage_info{stage=\"src\",plugin=\"generator\",kind=\"source\","  \
    "lane=\"thread\"} 1\n"                                                   \
    "sluice_stage_info{stage=\"parse\",plugin=\"fields\",kind=\"transform\"," \
    "lane=\"thread\"} 1\n"                                                   \
    "sluice_stage_info{stage=\"slow\",plugin=\"delay\",kind=\"transform\","  \
    "lane=\"thread\"} 1\n"                                                   \
    "sluice_stage_info{stage=\"sink\",plugin=\"null\",kind=\"sink\","        \
    "lane=\"thread\"} 1\n"                                                   \
    "# TYPE sluice_records_read_total counter\n"                             \
    "sluice_records_read_total{stage=\"src\"} " rd "\n"                      \
    "# TYPE sluice_records_in_total counter\n"                               \
    "sluice_records_in_total{stage=\"sink\"} " slow_in "\n"                  \
    "sluice_records_in_total{stage=\"parse\"} " rd "\n"                      \
    "sluice_records_in_total{stage=\"slow\"} " slow_in "\n"                  \
    "# TYPE sluice_records_out_total counter\n"                              \
    "sluice_records_out_total{stage=\"src\"} " rd "\n"                       \
    "sluice_records_out_total{stage=\"parse\"} " rd "\n"                     \
    "sluice_records_out_total{stage=\"slow\"} " slow_in "\n"                 \
    "sluice_records_out_total{stage=\"sink\"} 0\n"                           \
    "# TYPE sluice_records_dead_lettered_total counter\n"                    \
    "sluice_records_dead_lettered_total{stage=\"slow\"} 3\n"                 \
    "sluice_records_dead_lettered_total{stage=\"sink\"} 0\n"                 \
    "# TYPE sluice_retries_total counter\n"                                  \
    "sluice_retries_total{stage=\"slow\"} 7\n"                               \
    "# TYPE sluice_worker_restarts_total counter\n"                          \
    "sluice_worker_restarts_total{stage=\"slow\"} 1\n"                       \
    "# TYPE sluice_busy_seconds_total counter\n"                             \
    "sluice_busy_seconds_total{stage=\"src\"} " bp_src "\n"                  \
    "sluice_busy_seconds_total{stage=\"parse\"} 2.0\n"                       \
    "sluice_busy_seconds_total{stage=\"slow\"} " busy_slow "\n"              \
    "sluice_busy_seconds_total{stage=\"sink\"} 0.1\n"                        \
    "# TYPE sluice_backpressure_seconds_total counter\n"                     \
    "sluice_backpressure_seconds_total{stage=\"src\"} " bp_src "\n"          \
    "sluice_backpressure_seconds_total{stage=\"parse\"} " bp_parse "\n"      \
    "sluice_backpressure_seconds_total{stage=\"slow\"} 0\n"                  \
    "# TYPE sluice_queue_depth gauge\n"                                      \
    "sluice_queue_depth{stage=\"src\"} 900\n"                                \
    "sluice_queue_depth{stage=\"parse\"} 100\n"                              \
    "sluice_queue_depth{stage=\"slow\"} 1000\n"                              \
    "sluice_queue_depth{stage=\"sink\"} 30\n"                                \
    "# TYPE sluice_queue_capacity gauge\n"                                   \
    "sluice_queue_capacity{stage=\"src\"} 1024\n"                            \
    "sluice_queue_capacity{stage=\"parse\"} 1024\n"                          \
    "sluice_queue_capacity{stage=\"slow\"} 1024\n"                           \
    "sluice_queue_capacity{stage=\"sink\"} 1024\n"                           \
    "# TYPE sluice_workers gauge\n"                                          \
    "sluice_workers{stage=\"src\"} 1\n"                                      \
    "sluice_workers{stage=\"parse\"} 1\n"                                    \
    "sluice_workers{stage=\"slow\"} 2\n"                                     \
    "sluice_workers{stage=\"sink\"} 1\n"                                     \
    "# TYPE sluice_workers_busy gauge\n"                                     \
    "sluice_workers_busy{stage=\"src\"} 0\n"                                 \
    "sluice_workers_busy{stage=\"parse\"} 1\n"                               \
    "sluice_workers_busy{stage=\"slow\"} 2\n"                                \
    "sluice_workers_busy{stage=\"sink\"} 0\n"                                \
    "# TYPE sluice_link_credit gauge\n"                                      \
    "sluice_link_credit{from=\"src\",to=\"parse\"} 0\n"                      \
    "sluice_link_credit{from=\"parse\",to=\"slow\"} 0\n"                     \
    "sluice_link_credit{from=\"slow\",to=\"sink\"} 900\n"                    \
    "# TYPE sluice_handler_seconds histogram\n"                              \
    "sluice_handler_seconds_bucket{stage=\"slow\",le=\"0.001\"} 0\n"         \
    "sluice_handler_seconds_bucket{stage=\"slow\",le=\"0.0025\"} 100\n"      \
    "sluice_handler_seconds_bucket{stage=\"slow\",le=\"0.005\"} " hist5 "\n" \
    "sluice_handler_seconds_bucket{stage=\"slow\",le=\"+Inf\"} " hist5 "\n"  \
    "sluice_handler_seconds_sum{stage=\"slow\"} 0.5\n"                       \
    "sluice_handler_seconds_count{stage=\"slow\"} " hist5 "\n"

static const char *const s_canned[] = {
    DOC("10.0", "10000", "5.0", "3.0", "10.0", "9000", "100"),
    DOC("12.0", "12000", "6.8", "4.8", "13.9", "11000", "200")
    "sluice_bogus{stage=\"x\" 1\n"};

Test(top, canned_once_view_is_exact)
{
    fake_t f;
    fake_start(&f, s_canned, 2, 0);
    char args[128], *out, *err;
    snprintf(args, sizeof(args), "127.0.0.1:%u --once --interval 100ms",
             f.port);
    int code = run_top(args, &out, &err);
    fake_stop(&f);
    cr_assert_eq(code, 0, "stderr: %s", err);
    char want[4096];
    snprintf(
        want, sizeof(want),
        "sluice top  http://127.0.0.1:%u/metrics\n"
        "topology 'demo \"canned\"'  elapsed 12.0 s  read 1000/s  "
        "delivered 1000/s\n"
        "\n"
        "STAGE     IN/s    OUT/s  QUEUE                    BUSY WORKERS"
        "      P95  ERRORS RETRIES RESTARTS\n"
        "src       1000     1000  [#########.]    900/1024   90%%     0/1"
        "        -       -       -        -\n"
        "parse     1000     1000  [#.........]    100/1024    0%%     1/1"
        "        -       -       -        -\n"
        "slow      1000     1000  [##########]   1000/1024   98%%     2/2"
        "    4.9ms       3       7        1  << bottleneck\n"
        "sink      1000        0  [..........]     30/1024    0%%     0/1"
        "        -       0       -        -\n"
        "\n"
        "bottleneck: 'slow' \u2014 2/2 workers busy (avg 98%%), queue "
        "1000/1024 (98%%), downstream 'sink' queue 3%%; upstream 'parse' "
        "waited 4.8 s on backpressure\n",
        f.port);
    cr_assert_str_eq(out, want);
    /* The malformed line is reported, not fatal. */
    cr_assert(strstr(err, "/metrics line 69: expected ',' or '}' after "
                          "label 'stage'"),
              "stderr: %s", err);
    cr_assert_eq(f.served, 2);
    free(out);
    free(err);
}

/* Without a terminal and without --once: a snapshot per interval, plain
 * text, until the endpoint goes away. */
Test(top, plain_snapshots_until_the_run_ends)
{
    fake_t f;
    fake_start(&f, s_canned, 2, 3);
    char args[128], *out, *err;
    snprintf(args, sizeof(args), "127.0.0.1:%u --interval 100ms", f.port);
    int code = run_top(args, &out, &err);
    fake_stop(&f);
    cr_assert_eq(code, 0, "stderr: %s", err);
    cr_assert_null(strchr(out, '\033'), "escape codes in: %s", out);
    /* Three scrapes, two views; then the endpoint is gone. */
    size_t views = 0;
    for (const char *p = out; (p = strstr(p, "sluice top  http://")); p++)
        views++;
    cr_assert_eq(views, 2, "output: %s", out);
    char want[128];
    snprintf(want, sizeof(want), "\nrun ended: http://127.0.0.1:%u/metrics "
                                 "is gone (", f.port);
    cr_assert(strstr(out, want), "output: %s", out);
    free(out);
    free(err);
}

Test(top, unreachable_address)
{
    /* A port that was just free: nothing listens there. */
    unsigned short port;
    close(listen_any(&port));
    char args[64], *err;
    snprintf(args, sizeof(args), "127.0.0.1:%u --once", port);
    cr_assert_eq(run_top(args, NULL, &err), 1);
    char want[128];
    snprintf(want, sizeof(want),
             "sluice top: cannot reach http://127.0.0.1:%u/metrics: ", port);
    cr_assert(!strncmp(err, want, strlen(want)), "stderr: %s", err);
    free(err);
}

Test(top, bad_usage)
{
    char *err;
    cr_assert_eq(run_top("", NULL, &err), 2);
    cr_assert(strstr(err, "usage: sluice top ADDR"), "stderr: %s", err);
    free(err);
    cr_assert_eq(run_top("127.0.0.1:1 --interval soon", NULL, &err), 2);
    cr_assert(strstr(err, "--interval must be a duration"), "%s", err);
    free(err);
    cr_assert_eq(run_top("127.0.0.1:1 --frobnicate", NULL, &err), 2);
    cr_assert(strstr(err, "unexpected argument '--frobnicate'"), "%s", err);
    free(err);
    cr_assert_eq(run_top("ftp://127.0.0.1:1", NULL, &err), 2);
    cr_assert(strstr(err, "only http:// and https://"), "%s", err);
    free(err);
}

/* ---- real runs ---------------------------------------------------------- */

typedef struct live {
    pid_t pid;
    unsigned port;
} live_t;

/* Starts `sluice run` on yaml with a metrics endpoint on a free port and
 * waits (bounded) for the log line that names the port. */
static void live_start(live_t *l, const char *yaml)
{
    const char *dir = sl_test_dir();
    char topo[512], log[512];
    snprintf(topo, sizeof(topo), "%s/t.yaml", dir);
    snprintf(log, sizeof(log), "%s/run.log", dir);
    cr_assert_eq(sl_test_write_file(topo, yaml), 0);
    const char *argv[] = {"run", topo, "--metrics", "127.0.0.1:0", NULL};
    l->pid = sl_test_spawn_cli(log, argv);
    char *text = sl_test_wait_log(log, "metrics on http://", 20);
    l->port = sl_test_metrics_port(text, "127.0.0.1");
    free(text);
}

static void live_stop(live_t *l)
{
    kill(l->pid, SIGKILL);
    cr_assert_eq(sl_test_wait_exit(l->pid, 10), 128 + SIGKILL);
}

static const char *row_of(const char *out, const char *stage)
{
    char key[64];
    snprintf(key, sizeof(key), "\n%s ", stage);
    const char *p = strstr(out, key);
    cr_assert_not_null(p, "no row for %s in: %s", stage, out);
    return p + 1;
}

static int row_marked(const char *out, const char *stage)
{
    const char *row = row_of(out, stage);
    const char *end = strchr(row, '\n');
    const char *mark = strstr(row, "<< bottleneck");
    return mark && mark < end;
}

Test(top, names_the_slow_stage, .init = sl_test_tmpdir_setup,
     .fini = sl_test_tmpdir_teardown)
{
    live_t l;
    live_start(&l, "name: slowmid\n"
                   "stages:\n"
                   "  - name: gen\n"
                   "    plugin: generator\n"
                   "    config: {count: 100000000}\n"
                   "  - name: slow\n"
                   "    plugin: delay\n"
                   "    workers: 2\n"
                   "    queue: 256\n"
                   "    config: {ms: 2}\n"
                   "  - name: out\n"
                   "    plugin: null\n");
    char args[64], *out, *err;
    snprintf(args, sizeof(args), "127.0.0.1:%u --once", l.port);
    int code = run_top(args, &out, &err);
    live_stop(&l);
    cr_assert_eq(code, 0, "stderr: %s", err);
    cr_assert_str_eq(err, "");
    cr_assert(row_marked(out, "slow"), "output: %s", out);
    cr_assert_not(row_marked(out, "gen"), "output: %s", out);
    cr_assert_not(row_marked(out, "out"), "output: %s", out);
    cr_assert(strstr(out, "\nbottleneck: 'slow' \u2014 "), "output: %s", out);
    cr_assert(strstr(out, "upstream 'gen' waited "), "output: %s", out);
    cr_assert(strstr(out, "topology 'slowmid'"), "output: %s", out);
    free(out);
    free(err);
}

Test(top, paced_run_has_no_bottleneck, .init = sl_test_tmpdir_setup,
     .fini = sl_test_tmpdir_teardown)
{
    live_t l;
    live_start(&l, "name: paced\n"
                   "stages:\n"
                   "  - name: gen\n"
                   "    plugin: generator\n"
                   "    config: {count: 100000000, rate: 100}\n"
                   "  - name: slow\n"
                   "    plugin: delay\n"
                   "    workers: 2\n"
                   "    queue: 256\n"
                   "    config: {ms: 2}\n"
                   "  - name: out\n"
                   "    plugin: null\n");
    char args[64], *out, *err;
    snprintf(args, sizeof(args), "127.0.0.1:%u --once", l.port);
    int code = run_top(args, &out, &err);
    live_stop(&l);
    cr_assert_eq(code, 0, "stderr: %s", err);
    cr_assert(strstr(out, "\nno bottleneck: "), "output: %s", out);
    cr_assert_null(strstr(out, "<< bottleneck"), "output: %s", out);
    free(out);
    free(err);
}
