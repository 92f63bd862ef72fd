/* `sluice tune`: see cmd_tune.h. The points are measured one after the
 * other, each with a fresh run, so that one size's backlog never leaks
 * into the next; all children die with this process. */
#include "cmd_tune.h"

#include "cli.h"
#include "cpu.h"
#include "diag.h"
#include "topology.h"

#include <curl/curl.h>
#include <jansson.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define S_GAIN 0.05
#define S_READY_MS 15000
#define S_STOP_MS 15000

typedef struct s_opts {
    const char *topology, *stage, *trace, *rate;
    unsigned max_workers;
} s_opts_t;

static volatile sig_atomic_t s_stop;

static void s_on_signal(int sig)
{
    (void)sig;
    s_stop = 1;
}

static void s_usage(FILE *f)
{
    fprintf(f, "usage: sluice tune TOPOLOGY.yaml --stage S --trace TRACE "
               "[--max-workers N] [--rate R]\n"
               "  the topology takes records in through a zmq_source and "
               "gives them back\n"
               "  through a zmq_sink (as `sluice replay --topology` "
               "needs)\n");
}

/* ---- the decision -------------------------------------------------------- */

int sl__tune_plateau(const sl_tune_point_t *p, size_t n)
{
    if (n < 3)
        return 0;
    for (size_t i = n - 2; i < n; i++)
        if (!(p[i].throughput < p[i - 1].throughput * (1 + S_GAIN)))
            return 0;
    return 1;
}

size_t sl__tune_pick(const sl_tune_point_t *p, size_t n, size_t *best)
{
    size_t b = 0;
    for (size_t i = 1; i < n; i++)
        if (p[i].throughput > p[b].throughput)
            b = i;
    *best = b;
    for (size_t i = 0; i < n; i++)
        if (p[i].throughput >= p[b].throughput * (1 - S_GAIN))
            return i;
    return b;
}

/* ---- options and the topology ------------------------------------------- */

static int s_parse(int argc, char **argv, s_opts_t *o)
{
    memset(o, 0, sizeof(*o));
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if ((!strcmp(a, "--stage") || !strcmp(a, "--trace") ||
             !strcmp(a, "--max-workers") || !strcmp(a, "--rate")) && !v) {
            fprintf(stderr, "sluice tune: %s needs a value\n", a);
            return -EINVAL;
        }
        if (!strcmp(a, "--stage")) {
            o->stage = argv[++i];
        } else if (!strcmp(a, "--trace")) {
            o->trace = argv[++i];
        } else if (!strcmp(a, "--rate")) {
            o->rate = argv[++i];
        } else if (!strcmp(a, "--max-workers")) {
            char *end;
            long n = strtol(v, &end, 10);
            if (*end || n < 1 || n > (long)SL_TOPO_MAX_WORKERS) {
                fprintf(stderr, "sluice tune: --max-workers must be 1 to %u, "
                                "got '%s'\n", SL_TOPO_MAX_WORKERS, v);
                return -EINVAL;
            }
            o->max_workers = (unsigned)n;
            i++;
        } else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            s_usage(stdout);
            return 1;
        } else if (a[0] != '-' && !o->topology) {
            o->topology = a;
        } else {
            fprintf(stderr, "sluice tune: unexpected argument '%s'\n", a);
            s_usage(stderr);
            return -EINVAL;
        }
    }
    if (!o->topology || !o->stage || !o->trace) {
        fprintf(stderr, "sluice tune: give TOPOLOGY.yaml, --stage S and "
                        "--trace TRACE\n");
        s_usage(stderr);
        return -EINVAL;
    }
    return 0;
}

/* The endpoint a replayer uses to reach a stage that binds ep (a wildcard
 * host becomes the loopback) or to bind for one that connects to ep. */
static void s_peer(const char *ep, char *out, size_t cap)
{
    const char *colon = strncmp(ep, "tcp://", 6) ? NULL : strrchr(ep, ':');
    size_t hl = colon ? (size_t)(colon - ep - 6) : 0;
    if (colon && ((hl == 1 && ep[6] == '*') ||
                  (hl == 7 && !strncmp(ep + 6, "0.0.0.0", 7)) ||
                  (hl == 9 && !strncmp(ep + 6, "localhost", 9))))
        snprintf(out, cap, "tcp://127.0.0.1%s", colon);
    else
        snprintf(out, cap, "%s", ep);
}

/* The endpoint of the one stage using plugin; -ENOENT (said) if none or
 * several. */
static int s_endpoint(const sl_topology_t *t, const char *plugin, char *out,
                      size_t cap)
{
    const sl_topo_stage_t *found = NULL;
    for (size_t i = 0; i < t->n_stages; i++) {
        const sl_topo_stage_t *st = &t->stages[i];
        if (strcmp(st->plugin->desc->name, plugin))
            continue;
        if (found) {
            fprintf(stderr, "sluice tune: %s has two %s stages ('%s', '%s'): "
                            "tune needs one\n", t->path, plugin, found->name,
                    st->name);
            return -ENOENT;
        }
        found = st;
    }
    const char *ep = NULL;
    if (found)
        sl_config_get_str(found->config, "endpoint", NULL, &ep);
    if (!ep) {
        fprintf(stderr, "sluice tune: %s has no %s stage with an endpoint: "
                        "the replayer sends into a zmq_source and reads "
                        "back from a zmq_sink\n", t->path, plugin);
        return -ENOENT;
    }
    s_peer(ep, out, cap);
    return 0;
}

/* ---- children -------------------------------------------------------------- */

static pid_t s_spawn(char *const argv[], const char *log)
{
    int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        int nul = open("/dev/null", O_RDONLY);
        if (nul >= 0)
            dup2(nul, STDIN_FILENO);
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        execv(argv[0], argv);
        dprintf(STDERR_FILENO, "cannot run %s: %s\n", argv[0],
                strerror(errno));
        _exit(127);
    }
    int e = errno;
    close(fd);
    return pid < 0 ? -e : pid;
}

static void s_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Waits up to ms for pid; its exit code, 128 + signal, or -1 if it still
 * runs (then it is left running). */
static int s_wait(pid_t pid, long ms)
{
    for (long waited = 0;; waited += 20) {
        int status;
        pid_t p = waitpid(pid, &status, WNOHANG);
        if (p == pid)
            return WIFEXITED(status) ? WEXITSTATUS(status)
                                     : 128 + WTERMSIG(status);
        if (p < 0 || waited >= ms)
            return -1;
        s_sleep_ms(20);
    }
}

static void s_kill(pid_t pid)
{
    if (pid <= 0)
        return;
    kill(pid, SIGTERM);
    if (s_wait(pid, S_STOP_MS) < 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
}

static void s_tail(const char *what, const char *log)
{
    FILE *f = fopen(log, "r");
    if (!f)
        return;
    char *lines[12] = {0}, *line = NULL;
    size_t n = 0, cap = 0;
    while (getline(&line, &cap, f) > 0) {
        free(lines[n % 12]);
        lines[n % 12] = strdup(line);
        n++;
    }
    free(line);
    fclose(f);
    fprintf(stderr, "sluice tune: the last output of %s:\n", what);
    for (size_t i = n > 12 ? n - 12 : 0; i < n; i++)
        if (lines[i % 12])
            fprintf(stderr, "  | %s", lines[i % 12]);
    for (size_t i = 0; i < 12; i++)
        free(lines[i]);
}

static int s_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

static size_t s_discard(char *d, size_t s, size_t n, void *u)
{
    (void)d;
    (void)u;
    return s * n;
}

/* Whether the run answers on its metrics endpoint before ms pass. */
static int s_ready(pid_t run, const char *url, long ms)
{
    CURL *c = curl_easy_init();
    if (!c)
        return 0;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, s_discard);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 1000L);
    curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);
    int ok = 0;
    for (long waited = 0; waited < ms && !s_stop; waited += 50) {
        if (curl_easy_perform(c) == CURLE_OK) {
            ok = 1;
            break;
        }
        if (waitpid(run, NULL, WNOHANG) == run)
            break;
        s_sleep_ms(50);
    }
    curl_easy_cleanup(c);
    return ok;
}

/* ---- one point ---------------------------------------------------------------- */

typedef struct s_ctx {
    const s_opts_t *o;
    char self[PATH_MAX];
    char dir[PATH_MAX];
    char to[512], ack[512];
} s_ctx_t;

static int s_read_result(const char *path, sl_tune_point_t *pt)
{
    json_error_t e;
    json_t *j = json_load_file(path, 0, &e);
    if (!j)
        return -EBADMSG;
    json_t *rate = json_object_get(j, "completion_rate");
    json_t *p99 = json_object_get(json_object_get(j, "latency_ns"), "p99");
    int ok = json_is_number(rate) && json_is_number(p99);
    if (ok) {
        pt->throughput = json_number_value(rate);
        pt->p99_ns = json_number_value(p99);
        pt->fell_behind = json_is_true(json_object_get(j, "fell_behind"));
    }
    json_decref(j);
    return ok ? 0 : -EBADMSG;
}

static int s_measure(const s_ctx_t *c, unsigned n, sl_tune_point_t *pt)
{
    char workers[300], maddr[64], url[96], runlog[PATH_MAX + 32],
        rplog[PATH_MAX + 32], out[PATH_MAX + 32];
    int port = s_free_port();
    if (port < 0) {
        fprintf(stderr, "sluice tune: no free loopback port\n");
        return -EIO;
    }
    snprintf(workers, sizeof(workers), "%s=%u", c->o->stage, n);
    snprintf(maddr, sizeof(maddr), "127.0.0.1:%d", port);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics", port);
    snprintf(runlog, sizeof(runlog), "%s/run-%u.log", c->dir, n);
    snprintf(rplog, sizeof(rplog), "%s/replay-%u.log", c->dir, n);
    snprintf(out, sizeof(out), "%s/replay-%u.json", c->dir, n);
    char *run_argv[] = {(char *)c->self, "run", (char *)c->o->topology,
                        "--workers", workers, "--metrics", maddr, "--quiet",
                        "--grace", "2s", NULL};
    pid_t run = s_spawn(run_argv, runlog);
    if (run < 0) {
        fprintf(stderr, "sluice tune: cannot start the run: %s\n",
                strerror((int)-run));
        return -EIO;
    }
    int rc = -EIO;
    if (!s_ready(run, url, S_READY_MS)) {
        if (!s_stop) {
            fprintf(stderr, "sluice tune: the run with %s did not come up\n",
                    workers);
            s_tail("the run", runlog);
        }
        goto out;
    }
    char *rp_argv[16] = {(char *)c->self, "replay", (char *)c->o->trace,
                         "--to", (char *)c->to, "--ack", (char *)c->ack,
                         "--metrics", url, "--json", out, "--quiet", NULL};
    if (c->o->rate) {
        rp_argv[12] = "--rate";
        rp_argv[13] = (char *)c->o->rate;
        rp_argv[14] = NULL;
    }
    pid_t rp = s_spawn(rp_argv, rplog);
    if (rp < 0) {
        fprintf(stderr, "sluice tune: cannot start the replay: %s\n",
                strerror((int)-rp));
        goto out;
    }
    int code;
    while ((code = s_wait(rp, 200)) < 0 && !s_stop)
        ;
    if (code < 0) {
        s_kill(rp);
        goto out;
    }
    if (s_read_result(out, pt) < 0) {
        fprintf(stderr, "sluice tune: the replay with %s gave no result "
                        "(exit %d)\n", workers, code);
        s_tail("the replay", rplog);
        s_tail("the run", runlog);
        goto out;
    }
    pt->workers = n;
    rc = 0;
out:
    s_kill(run);
    unlink(runlog);
    unlink(rplog);
    unlink(out);
    return rc;
}

static const char *s_ms(double ns, char *buf, size_t len)
{
    snprintf(buf, len, ns >= 1e9 ? "%.2fs" : "%.2fms",
             ns >= 1e9 ? ns / 1e9 : ns / 1e6);
    return buf;
}

static void s_report(const s_opts_t *o, const sl_tune_point_t *p, size_t n)
{
    size_t best;
    size_t pick = sl__tune_pick(p, n, &best);
    printf("\nrecommended: %u worker%s for stage '%s' (the smallest within "
           "5%% of the best, %.1f/s at %u)\n", p[pick].workers,
           p[pick].workers == 1 ? "" : "s", o->stage, p[best].throughput,
           p[best].workers);
    unsigned budget = sl__cpu_budget(), quota = sl__cpu_quota_at(NULL, NULL);
    if (quota)
        printf("CPU budget: %u (cgroup quota %u CPU%s)\n", budget, quota,
               quota == 1 ? "" : "s");
    else
        printf("CPU budget: %u (no cgroup quota: the CPUs this process may "
               "run on)\n", budget);
    if (p[pick].workers > budget)
        printf("note: %u workers is more than the CPU budget: the stage "
               "waits on something other than CPU, or shares it\n",
               p[pick].workers);
}

int sl_cmd_tune(int argc, char **argv)
{
    s_opts_t o;
    int rc = s_parse(argc, argv, &o);
    if (rc)
        return rc > 0 ? SL_EXIT_OK : SL_EXIT_USAGE;
    s_ctx_t c = {.o = &o};
    sl_diag_t diag;
    sl__diag_init(&diag);
    sl_topology_t *t = sl__topology_load(o.topology, &diag);
    if (!t) {
        sl__diag_print(&diag, stderr);
        sl__diag_fini(&diag);
        return SL_EXIT_USAGE;
    }
    sl__diag_fini(&diag);
    long idx = sl__topology_find(t, o.stage);
    unsigned cap = SL_TOPO_MAX_WORKERS;
    if (idx >= 0 && t->stages[idx].plugin->desc->max_workers)
        cap = t->stages[idx].plugin->desc->max_workers;
    int bad = idx < 0 || s_endpoint(t, "zmq_source", c.to, sizeof(c.to)) ||
              s_endpoint(t, "zmq_sink", c.ack, sizeof(c.ack));
    if (idx < 0)
        fprintf(stderr, "sluice tune: %s has no stage '%s'\n", o.topology,
                o.stage);
    sl__topology_destroy(&t);
    if (bad)
        return SL_EXIT_USAGE;
    unsigned budget = sl__cpu_budget();
    if (!o.max_workers)
        o.max_workers = budget * 2 > 4 ? budget * 2 : 4;
    if (o.max_workers > cap) {
        printf("stage '%s' takes at most %u workers\n", o.stage, cap);
        o.max_workers = cap;
    }
    ssize_t len = readlink("/proc/self/exe", c.self, sizeof(c.self) - 1);
    const char *tmp = getenv("TMPDIR");
    snprintf(c.dir, sizeof(c.dir), "%s/sluice-tune-XXXXXX",
             tmp && *tmp ? tmp : "/tmp");
    if (len <= 0 || !mkdtemp(c.dir)) {
        fprintf(stderr, "sluice tune: cannot set up: %s\n", strerror(errno));
        return SL_EXIT_FAILED;
    }
    c.self[len] = '\0';
    struct sigaction sa = {.sa_handler = s_on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    sl_tune_point_t *p = calloc(o.max_workers, sizeof(*p));
    size_t n = 0;
    int code = p ? SL_EXIT_OK : SL_EXIT_FAILED;
    printf("tuning stage '%s' of %s with %s, 1 to %u workers\n\n", o.stage,
           o.topology, o.trace, o.max_workers);
    printf("%7s %14s %10s %8s\n", "WORKERS", "THROUGHPUT/s", "P99", "GAIN");
    fflush(stdout);
    for (unsigned w = 1; p && w <= o.max_workers && !s_stop; w++) {
        if (s_measure(&c, w, &p[n]) < 0) {
            code = s_stop ? SL_EXIT_OK : SL_EXIT_FAILED;
            break;
        }
        char lat[32], gain[32] = "-";
        if (n)
            snprintf(gain, sizeof(gain), "%+.1f%%",
                     100 * (p[n].throughput / p[n - 1].throughput - 1));
        printf("%7u %14.1f %10s %8s%s\n", w, p[n].throughput,
               s_ms(p[n].p99_ns, lat, sizeof(lat)), gain,
               p[n].fell_behind ? "  (fell behind)" : "");
        fflush(stdout);
        n++;
        if (sl__tune_plateau(p, n)) {
            printf("plateau: two sizes in a row gained less than 5%%\n");
            break;
        }
    }
    if (s_stop)
        printf("interrupted\n");
    if (n)
        s_report(&o, p, n);
    free(p);
    rmdir(c.dir);
    curl_global_cleanup();
    return n ? code : SL_EXIT_FAILED;
}
