/* `sluice replay --topology FILE`: the target runs as a child
 * `sluice run FILE --metrics 127.0.0.1:0 --quiet --report R`, its
 * zmq_source and zmq_sink endpoints are read from the topology, and it
 * is stopped with SIGTERM once the replay is over. The child's output
 * goes to a log in a temporary folder, shown when something goes wrong. */
#include "cmd_replay.h"

#include "diag.h"
#include "topology.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* The run's drain when it is stopped: what is still in it then is no
 * longer measured, and goes to its spill file after this. */
#define S_GRACE "2s"

/* The plugin a stage uses, as a bare name: "zmq_source" also for
 * "/path/zmq_source.so". */
static int s_is(const sl_topo_stage_t *st, const char *plugin)
{
    const char *p = st->plugin && st->plugin->desc ? st->plugin->desc->name
                                                   : st->plugin_name;
    return p && !strcmp(p, plugin);
}

/* The endpoint the replayer uses for a stage's: a bound wildcard host is
 * reached on the loopback; a connecting stage's host is bound as it is
 * ("localhost" as 127.0.0.1, which zmq_bind needs). */
static int s_peer(const char *stage, const char *ep, int stage_binds,
                  char *out, size_t cap)
{
    if (!strncmp(ep, "tcp://", 6)) {
        const char *host = ep + 6, *colon = strrchr(host, ':');
        if (!colon) {
            fprintf(stderr, "sluice replay: stage '%s': cannot use endpoint "
                            "'%s'\n", stage, ep);
            return -EINVAL;
        }
        if (!strcmp(colon + 1, "*")) {
            fprintf(stderr, "sluice replay: stage '%s' binds %s, a port "
                            "picked at run time: give it a fixed port\n",
                    stage, ep);
            return -EINVAL;
        }
        size_t hl = (size_t)(colon - host);
        int wild = (hl == 1 && host[0] == '*') ||
                   (hl == 7 && !strncmp(host, "0.0.0.0", 7));
        int local = hl == 9 && !strncmp(host, "localhost", 9);
        if ((stage_binds && wild) || (!stage_binds && local))
            snprintf(out, cap, "tcp://127.0.0.1%s", colon);
        else if (stage_binds && hl == 4 && !strncmp(host, "[::]", 4))
            snprintf(out, cap, "tcp://[::1]%s", colon);
        else
            snprintf(out, cap, "%s", ep);
        return 0;
    }
    snprintf(out, cap, "%s", ep);
    return 0;
}

/* The one stage using plugin, its endpoint and whether it binds. */
static int s_find(const sl_topology_t *topo, const char *path,
                  const char *plugin, const char *want_socket, int dflt_bind,
                  char *out, size_t cap)
{
    const sl_topo_stage_t *found = NULL;
    for (size_t i = 0; i < topo->n_stages; i++) {
        if (!s_is(&topo->stages[i], plugin))
            continue;
        if (found) {
            fprintf(stderr, "sluice replay: %s has more than one %s stage "
                            "('%s', '%s'): give --to and --ack\n",
                    path, plugin, found->name, topo->stages[i].name);
            return -ENOENT;
        }
        found = &topo->stages[i];
    }
    if (!found) {
        fprintf(stderr, "sluice replay: %s has no %s stage: the replayer "
                        "sends to a zmq_source and reads a zmq_sink\n",
                path, plugin);
        return -ENOENT;
    }
    const char *ep = NULL, *sock = want_socket, *format = "msgpack";
    int bind = dflt_bind;
    /* The plugin has validated its config: the types are right. */
    sl_config_get_str(found->config, "endpoint", NULL, &ep);
    sl_config_get_str(found->config, "socket", want_socket, &sock);
    sl_config_get_str(found->config, "format", "msgpack", &format);
    sl_config_get_bool(found->config, "bind", dflt_bind, &bind);
    if (!ep)
        return -ENOENT;
    if (strcmp(sock, want_socket) || strcmp(format, "msgpack")) {
        fprintf(stderr, "sluice replay: %s stage '%s' must use socket: %s "
                        "and format: msgpack (it has %s, %s)\n",
                plugin, found->name, want_socket, sock, format);
        return -EINVAL;
    }
    int rc = s_peer(found->name, ep, bind, out, cap);
    if (rc == 0 && !bind == !dflt_bind)
        return 0;
    if (rc == 0) {
        fprintf(stderr, "sluice replay: %s stage '%s' has bind: %s; the "
                        "replayer needs bind: %s there\n",
                plugin, found->name, bind ? "true" : "false",
                dflt_bind ? "true" : "false");
        rc = -EINVAL;
    }
    return rc;
}

int sl__rp_target_endpoints(sl_rp_target_t *t, const char *topology)
{
    sl_diag_t diag;
    sl__diag_init(&diag);
    sl_topology_t *topo = sl__topology_load(topology, &diag);
    if (!topo) {
        sl__diag_print(&diag, stderr);
        sl__diag_fini(&diag);
        return -EINVAL;
    }
    sl__diag_fini(&diag);
    int rc = s_find(topo, topology, "zmq_source", "pull", 1, t->to,
                    sizeof(t->to));
    if (rc == 0)
        rc = s_find(topo, topology, "zmq_sink", "push", 0, t->ack,
                    sizeof(t->ack));
    sl__topology_destroy(&topo);
    return rc;
}

int sl__rp_target_start(sl_rp_target_t *t, const char *topology)
{
    const char *tmp = getenv("TMPDIR");
    char buf[PATH_MAX];
    snprintf(buf, sizeof(buf), "%s/sluice-replay-XXXXXX",
             tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(buf)) {
        fprintf(stderr, "sluice replay: cannot make a temporary folder: "
                        "%s\n", strerror(errno));
        return -errno;
    }
    t->dir = strdup(buf);
    if (asprintf(&t->report_path, "%s/report.json", buf) < 0)
        t->report_path = NULL;
    if (asprintf(&t->log_path, "%s/run.log", buf) < 0)
        t->log_path = NULL;
    if (!t->dir || !t->report_path || !t->log_path)
        return -ENOMEM;
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0)
        return -errno;
    self[n] = '\0';
    int logfd = open(t->log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
                     0644);
    if (logfd < 0)
        return -errno;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(logfd);
        return -e;
    }
    if (pid == 0) {
        /* the target must not outlive the replayer, however it ends */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent)
            _exit(127);
        /* Ctrl-C at the terminal is the replayer's to handle: the target
         * must not stop taking records while those in flight drain */
        setpgid(0, 0);
        dup2(logfd, STDOUT_FILENO);
        dup2(logfd, STDERR_FILENO);
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0)
            dup2(devnull, STDIN_FILENO);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        /* a port of the kernel's choosing, which the run logs: a port
         * picked here could be taken by then */
        char *argv[] = {self,      "run",     (char *)topology,
                        "--metrics", "127.0.0.1:0", "--quiet",
                        "--log-format", "logfmt", "--grace", S_GRACE,
                        "--report", t->report_path, NULL};
        execv(self, argv);
        dprintf(STDERR_FILENO, "cannot run %s: %s\n", self, strerror(errno));
        _exit(127);
    }
    close(logfd);
    t->pid = pid;
    t->exit_code = -1;
    return 0;
}

int sl__rp_target_metrics_url(sl_rp_target_t *t, long wait_ms)
{
    static const char mark[] = "metrics on http://";
    uint64_t deadline = sl__rp_now() + (uint64_t)wait_ms * 1000000ull;
    for (;;) {
        FILE *f = fopen(t->log_path, "r");
        char line[1024];
        while (f && fgets(line, sizeof(line), f)) {
            char *at = strstr(line, mark);
            if (!at)
                continue;
            at += sizeof(mark) - 1 - strlen("http://");
            size_t n = strcspn(at, "\" \n");
            if (n < sizeof(t->metrics)) {
                memcpy(t->metrics, at, n);
                t->metrics[n] = '\0';
                fclose(f);
                return 0;
            }
        }
        if (f)
            fclose(f);
        if (!sl__rp_target_alive(t) || sl__rp_now() >= deadline)
            return -ETIMEDOUT;
        struct timespec ts = {0, 20000000};
        nanosleep(&ts, NULL);
    }
}

static int s_code(int status)
{
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int sl__rp_target_alive(sl_rp_target_t *t)
{
    if (t->pid <= 0)
        return 0;
    int status;
    pid_t p = waitpid(t->pid, &status, WNOHANG);
    if (p == t->pid) {
        t->exit_code = s_code(status);
        t->pid = 0;
        return 0;
    }
    return 1;
}

int sl__rp_target_stop(sl_rp_target_t *t, long wait_ms)
{
    if (!sl__rp_target_alive(t))
        return 0;
    kill(t->pid, SIGTERM);
    for (long waited = 0; waited < wait_ms; waited += 10) {
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
        if (!sl__rp_target_alive(t))
            return 0;
    }
    kill(t->pid, SIGKILL);
    int status;
    if (waitpid(t->pid, &status, 0) == t->pid)
        t->exit_code = s_code(status);
    t->pid = 0;
    return -ETIMEDOUT;
}

void sl__rp_target_dump_log(const sl_rp_target_t *t, FILE *f)
{
    FILE *in = t->log_path ? fopen(t->log_path, "r") : NULL;
    if (!in)
        return;
    /* the last 20 lines: the reason is at the end */
    char *lines[20] = {0};
    size_t n = 0;
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, in) > 0) {
        free(lines[n % 20]);
        lines[n % 20] = strdup(line);
        n++;
    }
    free(line);
    fclose(in);
    size_t from = n > 20 ? n - 20 : 0;
    if (n)
        fprintf(f, "sluice replay: the target's last output:\n");
    for (size_t i = from; i < n; i++) {
        if (lines[i % 20])
            fprintf(f, "  | %s", lines[i % 20]);
    }
    for (size_t i = 0; i < 20; i++)
        free(lines[i]);
}

void sl__rp_target_fini(sl_rp_target_t *t)
{
    if (t->pid > 0)
        sl__rp_target_stop(t, 5000);
    if (t->report_path)
        unlink(t->report_path);
    if (t->log_path)
        unlink(t->log_path);
    if (t->dir)
        rmdir(t->dir);
    free(t->report_path);
    free(t->log_path);
    free(t->dir);
    t->report_path = t->log_path = t->dir = NULL;
}
