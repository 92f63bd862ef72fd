/*
 * How many CPUs this process may really use. Containers commonly give a
 * process the host's full affinity mask but a cgroup quota of a few CPUs;
 * sizing a worker pool by the mask alone then oversubscribes and throttles.
 */
#include "cpu.h"

#include <errno.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Bounds the growth of the affinity set; far above any real machine. */
#define SL_CPU_MAX_SET (1u << 20)

static unsigned s_affinity_count(void)
{
    /* glibc's fixed cpu_set_t holds 1024 CPUs and the kernel refuses a set
     * smaller than its own mask, so grow until the call fits. */
    for (unsigned n = 1024; n <= SL_CPU_MAX_SET; n *= 2) {
        cpu_set_t *set = CPU_ALLOC(n);
        if (!set)
            break;
        size_t size = CPU_ALLOC_SIZE(n);
        CPU_ZERO_S(size, set);
        int rc = sched_getaffinity(0, size, set);
        int count = rc == 0 ? CPU_COUNT_S(size, set) : 0;
        int err = errno;
        CPU_FREE(set);
        if (rc == 0)
            return count > 0 ? (unsigned)count : 1;
        if (err != EINVAL)
            break;
    }
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    return online > 0 ? (unsigned)online : 1;
}

/* Reads a small file into buf (NUL-terminated); false if it cannot. */
static bool s_read_small(const char *path, char *buf, size_t len)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    size_t n = fread(buf, 1, len - 1, f);
    bool ok = !ferror(f);
    fclose(f);
    buf[n] = '\0';
    return ok && n > 0;
}

/* A strictly positive decimal integer filling the whole token. */
static bool s_parse_pos(const char *s, const char *end, long long *out)
{
    if (s == end || end - s > 18)
        return false;
    long long v = 0;
    for (; s < end; s++) {
        if (*s < '0' || *s > '9')
            return false;
        v = v * 10 + (*s - '0');
    }
    *out = v;
    return v > 0;
}

/* Whole CPUs a quota allows, rounded up: 150000/100000 is 2. */
static unsigned s_quota_cpus(long long quota, long long period)
{
    long long cpus = (quota + period - 1) / period;
    return cpus > (long long)SL_CPU_MAX_SET ? SL_CPU_MAX_SET : (unsigned)cpus;
}

/* v2 cpu.max: "max PERIOD" (no limit) or "QUOTA PERIOD"; 0 = no limit or
 * unreadable, which is the same to us. */
static unsigned s_v2_limit(const char *file)
{
    char buf[128];
    if (!s_read_small(file, buf, sizeof(buf)))
        return 0;
    char *sp = strchr(buf, ' ');
    char *end = buf + strcspn(buf, "\n");
    long long quota, period;
    if (!sp || sp > end || !s_parse_pos(sp + 1, end, &period))
        return 0;
    if (!s_parse_pos(buf, sp, &quota))
        return 0; /* "max", or garbage */
    return s_quota_cpus(quota, period);
}

static bool s_read_ll(const char *file, long long *out)
{
    char buf[64];
    if (!s_read_small(file, buf, sizeof(buf)))
        return false;
    char *end = buf + strcspn(buf, "\n");
    if (buf[0] == '-')
        return false; /* -1: no quota */
    return s_parse_pos(buf, end, out);
}

/* v1: cpu.cfs_quota_us (-1 = none) over cpu.cfs_period_us in dir. */
static unsigned s_v1_limit(const char *dir)
{
    char path[4096];
    long long quota, period;
    snprintf(path, sizeof(path), "%s/cpu.cfs_quota_us", dir);
    if (!s_read_ll(path, &quota))
        return 0;
    snprintf(path, sizeof(path), "%s/cpu.cfs_period_us", dir);
    if (!s_read_ll(path, &period))
        return 0;
    return s_quota_cpus(quota, period);
}

static unsigned s_min_limit(unsigned a, unsigned b)
{
    if (!a)
        return b;
    return b && b < a ? b : a;
}

/* Checks base+cgpath and each ancestor up to base: a parent's quota binds
 * its children too, so the smallest along the way wins. */
static unsigned s_walk(const char *base, const char *cgpath, bool v2)
{
    char dir[4096];
    int n = snprintf(dir, sizeof(dir), "%s%s%s", base,
                     cgpath[0] == '/' ? "" : "/", cgpath);
    if (n < 0 || (size_t)n >= sizeof(dir))
        return 0;
    size_t floor = strlen(base);
    unsigned limit = 0;
    for (;;) {
        size_t len = strlen(dir);
        while (len > floor && dir[len - 1] == '/')
            dir[--len] = '\0';
        if (v2) {
            char file[4096 + 16];
            snprintf(file, sizeof(file), "%s/cpu.max", dir);
            limit = s_min_limit(limit, s_v2_limit(file));
        } else {
            limit = s_min_limit(limit, s_v1_limit(dir));
        }
        char *slash = strrchr(dir, '/');
        if (len <= floor || !slash || (size_t)(slash - dir) < floor)
            break;
        *slash = '\0';
    }
    return limit;
}

/* True if the comma-separated controller list names "cpu". */
static bool s_has_cpu(const char *list, size_t len)
{
    const char *p = list, *end = list + len;
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *stop = comma ? comma : end;
        if (stop - p == 3 && memcmp(p, "cpu", 3) == 0)
            return true;
        p = stop + 1;
    }
    return false;
}

unsigned sl__cpu_quota_at(const char *cgroup_root,
                          const char *proc_self_cgroup)
{
    const char *root = cgroup_root ? cgroup_root : "/sys/fs/cgroup";
    FILE *f = fopen(proc_self_cgroup ? proc_self_cgroup : "/proc/self/cgroup",
                    "r");
    if (!f)
        return 0;
    unsigned limit = 0;
    char line[4096];
    while (fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\n")] = '\0';
        /* "ID:controllers:path"; the path may itself contain ':'. */
        char *c1 = strchr(line, ':');
        char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2)
            continue;
        const char *path = c2 + 1;
        if (c2 == c1 + 1 && c1 - line == 1 && line[0] == '0') {
            limit = s_min_limit(limit, s_walk(root, path, true));
        } else if (s_has_cpu(c1 + 1, (size_t)(c2 - c1 - 1))) {
            /* v1 mounts the cpu controller under one of these names. */
            static const char *const mounts[] = {"cpu", "cpu,cpuacct",
                                                 "cpuacct,cpu"};
            for (size_t i = 0; i < sizeof(mounts) / sizeof(mounts[0]); i++) {
                char base[4096];
                snprintf(base, sizeof(base), "%s/%s", root, mounts[i]);
                limit = s_min_limit(limit, s_walk(base, path, false));
            }
        }
    }
    fclose(f);
    return limit;
}

unsigned sl__cpu_budget_at(const char *cgroup_root,
                           const char *proc_self_cgroup)
{
    unsigned budget = s_affinity_count();
    unsigned quota = sl__cpu_quota_at(cgroup_root, proc_self_cgroup);
    if (quota && quota < budget)
        budget = quota;
    return budget ? budget : 1;
}

unsigned sl__cpu_budget(void)
{
    return sl__cpu_budget_at(NULL, NULL);
}
