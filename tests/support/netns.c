/* Network namespaces for tests (netns.h). Everything is done by running
 * iproute2's `ip`, so that what a test sets up can be repeated by hand. */
#include "netns.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define S_NETNS_DIR "/var/run/netns"
#define S_CAP_NET_ADMIN 12
#define S_CAP_SYS_ADMIN 21

static unsigned s_sets; /* sets made by this process, for unique names */

static int s_fail(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int s_fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

/* The `ip` binary: the usual places first (a test's PATH may lack sbin),
 * then PATH. NULL when there is none. */
static const char *s_ip_path(void)
{
    static char found[4096];
    static const char *const fixed[] = {"/usr/sbin/ip", "/sbin/ip",
                                        "/usr/bin/ip", "/bin/ip"};
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
        if (access(fixed[i], X_OK) == 0)
            return fixed[i];
    const char *path = getenv("PATH");
    while (path && *path) {
        const char *colon = strchr(path, ':');
        size_t n = colon ? (size_t)(colon - path) : strlen(path);
        if (n && n + 4 < sizeof(found)) {
            snprintf(found, sizeof(found), "%.*s/ip", (int)n, path);
            if (access(found, X_OK) == 0)
                return found;
        }
        path = colon ? colon + 1 : NULL;
    }
    return NULL;
}

/* Runs `ip ARGS` (ARGS split at spaces: names and addresses have none).
 * 0, or -EIO with the command and what it printed in err. */
static int s_ip(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int s_ip(char *err, size_t errlen, const char *fmt, ...)
{
    const char *ip = s_ip_path();
    if (!ip)
        return s_fail(err, errlen, -ENOENT, "no `ip` binary");
    char cmd[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    char words[512];
    snprintf(words, sizeof(words), "%s", cmd);
    char *argv[32] = {"ip"};
    int argc = 1;
    for (char *save = NULL, *w = strtok_r(words, " ", &save);
         w && argc < 31; w = strtok_r(NULL, " ", &save))
        argv[argc++] = w;
    argv[argc] = NULL;

    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0)
        return s_fail(err, errlen, -errno, "pipe: %s", strerror(errno));
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(fds[0]);
        close(fds[1]);
        return s_fail(err, errlen, -e, "fork: %s", strerror(e));
    }
    if (pid == 0) {
        dup2(fds[1], 1);
        dup2(fds[1], 2);
        execv(ip, argv);
        _exit(127);
    }
    close(fds[1]);
    char out[1024];
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fds[0], out + n, sizeof(out) - 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        n += (size_t)r;
        if (n == sizeof(out) - 1) {
            char sink[256]; /* keep draining so that ip never blocks */
            while (read(fds[0], sink, sizeof(sink)) > 0)
                ;
            break;
        }
    }
    out[n] = '\0';
    while (n && (out[n - 1] == '\n' || out[n - 1] == ' '))
        out[--n] = '\0';
    close(fds[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    return s_fail(err, errlen, -EIO, "`ip %s` failed (%s %d): %s", cmd,
                  WIFEXITED(status) ? "exit" : "signal",
                  WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status),
                  n ? out : "(no output)");
}

/* The effective capability set of this process, from /proc. */
static unsigned long long s_cap_eff(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return 0;
    char line[256];
    unsigned long long caps = 0;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "CapEff: %llx", &caps) == 1)
            break;
    fclose(f);
    return caps;
}

int sl_netns_available(char *why, size_t len)
{
    unsigned long long caps = s_cap_eff();
    if (!(caps & (1ull << S_CAP_NET_ADMIN)) ||
        !(caps & (1ull << S_CAP_SYS_ADMIN))) {
        s_fail(why, len, 0,
               "network namespaces need root: CAP_NET_ADMIN and "
               "CAP_SYS_ADMIN are not both in this process's effective set "
               "(uid %u)", (unsigned)geteuid());
        return 0;
    }
    if (!s_ip_path()) {
        s_fail(why, len, 0,
               "no `ip` binary (iproute2) in /usr/sbin, /sbin, /usr/bin, "
               "/bin or PATH");
        return 0;
    }
    /* The capabilities are no proof (a container may still refuse): try
     * a namespace with a veth pair, as sl_netns_create will. */
    char probe[64], err[1024];
    snprintf(probe, sizeof(probe), "slt%d-probe", (int)getpid());
    if (s_ip(err, sizeof(err), "netns add %s", probe) < 0) {
        s_fail(why, len, 0, "cannot make a network namespace: %s", err);
        return 0;
    }
    int rc = s_ip(err, sizeof(err),
                  "-n %s link add name v0 type veth peer name v1", probe);
    char ignored[256];
    s_ip(ignored, sizeof(ignored), "netns del %s", probe);
    if (rc < 0) {
        s_fail(why, len, 0, "cannot make a veth pair: %s", err);
        return 0;
    }
    return 1;
}

/* Deletes the sets of test processes that died without cleaning up: names
 * "slt<pid>-..." whose pid is gone. */
static void s_reap_stale(void)
{
    DIR *d = opendir(S_NETNS_DIR);
    if (!d)
        return;
    struct dirent *e;
    char names[64][64];
    unsigned n = 0;
    while ((e = readdir(d)) && n < 64) {
        int pid;
        char dash;
        if (sscanf(e->d_name, "slt%d%c", &pid, &dash) != 2 || dash != '-' ||
            pid <= 0 || pid == getpid())
            continue;
        if (kill(pid, 0) == 0 || errno != ESRCH ||
            strlen(e->d_name) >= sizeof(names[0]))
            continue;
        memcpy(names[n++], e->d_name, strlen(e->d_name) + 1);
    }
    closedir(d);
    char ignored[256];
    for (unsigned i = 0; i < n; i++)
        s_ip(ignored, sizeof(ignored), "netns del %s", names[i]);
}

int sl_netns_exists(const char *name)
{
    char path[256];
    snprintf(path, sizeof(path), S_NETNS_DIR "/%s", name);
    struct stat st;
    return stat(path, &st) == 0;
}

int sl_netns_create(sl_netns_t *ns, unsigned count, char *err,
                    size_t errlen)
{
    memset(ns, 0, sizeof(*ns));
    if (count == 0 || count > SL_NETNS_MAX)
        return s_fail(err, errlen, -EINVAL, "%u hosts: 1 to %d", count,
                      SL_NETNS_MAX);
    s_reap_stale();
    unsigned set = s_sets++;
    pid_t pid = getpid();
    snprintf(ns->prefix, sizeof(ns->prefix), "slt%d-%u", (int)pid, set);
    snprintf(ns->hub, sizeof(ns->hub), "%s-hub", ns->prefix);
    unsigned x = 64 + set % 64, y = (unsigned)pid % 256;

    int rc;
    if ((rc = s_ip(err, errlen, "netns add %s", ns->hub)) < 0) {
        ns->hub[0] = '\0'; /* not ours to delete */
        goto fail;
    }
    if ((rc = s_ip(err, errlen, "-n %s link add name br0 type bridge",
                   ns->hub)) < 0 ||
        (rc = s_ip(err, errlen, "-n %s link set br0 up", ns->hub)) < 0)
        goto fail;
    for (unsigned i = 0; i < count; i++) {
        char *name = ns->name[i];
        snprintf(name, sizeof(ns->name[i]), "%s-%u", ns->prefix, i);
        snprintf(ns->addr[i], sizeof(ns->addr[i]), "10.%u.%u.%u", x, y,
                 i + 1);
        if ((rc = s_ip(err, errlen, "netns add %s", name)) < 0) {
            name[0] = '\0';
            goto fail;
        }
        ns->count = i + 1;
        if ((rc = s_ip(err, errlen,
                       "-n %s link add name p%u type veth peer name eth0 netns "
                       "%s", ns->hub, i, name)) < 0 ||
            (rc = s_ip(err, errlen, "-n %s link set p%u master br0",
                       ns->hub, i)) < 0 ||
            (rc = s_ip(err, errlen, "-n %s link set p%u up", ns->hub, i)) <
                0 ||
            (rc = s_ip(err, errlen, "-n %s link set lo up", name)) < 0 ||
            (rc = s_ip(err, errlen, "-n %s addr add %s/24 dev eth0", name,
                       ns->addr[i])) < 0 ||
            (rc = s_ip(err, errlen, "-n %s link set eth0 up", name)) < 0)
            goto fail;
    }
    return 0;
fail:
    sl_netns_destroy(ns);
    return rc;
}

pid_t sl_netns_spawn(sl_netns_t *ns, unsigned i, const char *const *argv,
                     const char *log)
{
    if (i >= ns->count || ns->nprocs == SL_NETNS_MAX_PROCS)
        return -1;
    char path[256];
    snprintf(path, sizeof(path), S_NETNS_DIR "/%s", ns->name[i]);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a failed test */
        if (getppid() != parent)
            _exit(126);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || setns(fd, CLONE_NEWNET) != 0) {
            fprintf(stderr, "cannot enter %s: %s\n", path, strerror(errno));
            _exit(126);
        }
        close(fd);
        if (log) {
            int out = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
            if (out < 0)
                _exit(126);
            dup2(out, 1);
            dup2(out, 2);
            close(out);
        }
        int null = open("/dev/null", O_RDONLY);
        if (null >= 0) {
            dup2(null, 0);
            close(null);
        }
        execv(argv[0], (char *const *)argv);
        fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    ns->procs[ns->nprocs++] = pid;
    return pid;
}

static void s_forget(sl_netns_t *ns, pid_t pid)
{
    for (unsigned k = 0; k < ns->nprocs; k++)
        if (ns->procs[k] == pid) {
            ns->procs[k] = ns->procs[--ns->nprocs];
            return;
        }
}

int sl_netns_wait(sl_netns_t *ns, pid_t pid, double timeout_s)
{
    struct timespec t0, now;
    const struct timespec tick = {0, 5 * 1000 * 1000};
    clock_gettime(CLOCK_MONOTONIC, &t0);
    s_forget(ns, pid);
    int status;
    for (;;) {
        pid_t got = waitpid(pid, &status, WNOHANG);
        if (got == pid)
            return WIFEXITED(status) ? WEXITSTATUS(status)
                                     : 128 + WTERMSIG(status);
        if (got < 0 && errno != EINTR)
            return -1;
        clock_gettime(CLOCK_MONOTONIC, &now);
        double waited = (double)(now.tv_sec - t0.tv_sec) +
                        (double)(now.tv_nsec - t0.tv_nsec) / 1e9;
        if (waited > timeout_s) {
            kill(pid, SIGKILL);
            while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
            return -1;
        }
        nanosleep(&tick, NULL);
    }
}

void sl_netns_destroy(sl_netns_t *ns)
{
    for (unsigned k = 0; k < ns->nprocs; k++) {
        int status;
        kill(ns->procs[k], SIGKILL);
        while (waitpid(ns->procs[k], &status, 0) < 0 && errno == EINTR)
            ;
    }
    ns->nprocs = 0;
    char ignored[256];
    /* A host namespace takes its end of the veth pair with it, and the
     * hub takes the bridge and the other ends. */
    for (unsigned i = 0; i < ns->count; i++)
        if (ns->name[i][0])
            s_ip(ignored, sizeof(ignored), "netns del %s", ns->name[i]);
    if (ns->hub[0])
        s_ip(ignored, sizeof(ignored), "netns del %s", ns->hub);
    ns->count = 0;
    ns->hub[0] = '\0';
}
