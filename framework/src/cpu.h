/*
 * The CPU budget this process may really use: the affinity mask, capped by
 * the cgroup CPU quota (v2 cpu.max, v1 cpu.cfs_quota_us/cfs_period_us),
 * rounded up, at least 1. `workers: auto` uses it.
 */
#ifndef SL_CPU_H
#define SL_CPU_H

/* cgroup_root: where the cgroup filesystem is mounted ("/sys/fs/cgroup"
 * normally; tests pass a folder of fake files). proc_self_cgroup: the
 * process's cgroup membership file ("/proc/self/cgroup"). NULL for either
 * means the real one. */
unsigned sl__cpu_budget_at(const char *cgroup_root,
                           const char *proc_self_cgroup);
unsigned sl__cpu_budget(void);

/* The cgroup part alone: the CPUs the quota allows (the smallest along the
 * cgroup's ancestors, rounded up), or 0 when no quota applies or none can
 * be read. Garbage in the files counts as no quota. Same arguments as
 * above; split out so tests do not depend on the machine's CPU count. */
unsigned sl__cpu_quota_at(const char *cgroup_root,
                          const char *proc_self_cgroup);

#endif
