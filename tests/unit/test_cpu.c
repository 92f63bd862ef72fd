/* CPU budget: affinity capped by cgroup quotas, read from fake cgroup trees
 * in a temporary folder. */
#include <criterion/criterion.h>

#include "cpu.h"
#include "testutil.h"

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char g_root[512], g_proc[512];

static void setup(void)
{
    sl_test_tmpdir_setup();
    snprintf(g_root, sizeof(g_root), "%s/cgroup", sl_test_dir());
    snprintf(g_proc, sizeof(g_proc), "%s/proc_self_cgroup", sl_test_dir());
}

TestSuite(cpu, .init = setup, .fini = sl_test_tmpdir_teardown);

/* Writes text to root/rel, creating the folders on the way. */
static void put(const char *rel, const char *text)
{
    char path[1024], cmd[1200];
    snprintf(path, sizeof(path), "%s/%s", g_root, rel);
    snprintf(cmd, sizeof(cmd), "mkdir -p \"$(dirname '%s')\"", path);
    cr_assert_eq(system(cmd), 0);
    cr_assert_eq(sl_test_write_file(path, text), 0, "%s", path);
}

static void membership(const char *text)
{
    cr_assert_eq(sl_test_write_file(g_proc, text), 0);
}

static unsigned affinity(void)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    cr_assert_eq(sched_getaffinity(0, sizeof(set), &set), 0);
    return (unsigned)CPU_COUNT(&set);
}

static unsigned min_u(unsigned a, unsigned b)
{
    return a < b ? a : b;
}

Test(cpu, v2_quota)
{
    membership("0::/user.slice/app.service\n");
    put("user.slice/app.service/cpu.max", "100000 100000\n");
    cr_assert_eq(sl__cpu_quota_at(g_root, g_proc), 1);
    cr_assert_eq(sl__cpu_budget_at(g_root, g_proc), 1);
}

Test(cpu, v2_fraction_rounds_up)
{
    membership("0::/app\n");
    put("app/cpu.max", "150000 100000\n");
    cr_assert_eq(sl__cpu_quota_at(g_root, g_proc), 2);
    cr_assert_eq(sl__cpu_budget_at(g_root, g_proc), min_u(affinity(), 2));
    put("app/cpu.max", "320000 100000\n");
    cr_assert_eq(sl__cpu_quota_at(g_root, g_proc), 4);
    put("app/cpu.max", "1000 100000\n"); /* 0.01 CPU is still one */
    cr_assert_eq(sl__cpu_quota_at(g_root, g_proc), 1);
}

Test(cpu, v2_max_means_no_limit)
{
    membership("0::/app\n");
    put("app/cpu.max", "max 100000\n");
    cr_assert_eq(sl__cpu_quota_at(g_root, g_proc), 0);
    cr_assert_eq(sl__cpu_budget_at(g_root, g_proc), affinity());
}

Test(cpu, v2_parent_quota_binds_the_child)
{
    membership("0::/outer/inner\n");
    put("outer/inner/cpu.max", "max 100000\n");
    put("outer/cpu.max", "250000 100000\n");
    put("cpu.max", "900000 100000\n");
    cr_assert_eq(sl__cpu_quota_at(g_root, g_proc), 3);
    put("outer/inner/cpu.max", "800000 100000\n");
    put("outer/cpu.max", "50000 100000\n");
    cr_assert_eq(sl__cpu_quota_at(g_root, g_proc), 1);
    cr_assert_eq(sl__cpu_budget_at(g_root, g_proc), 1);
}

Test(cpu, v2_walks_past_missing_levels)
{
    /* A container without a cgroup namespace: its own path is not under
     * the mount, but the mount's root holds its limit. */
    membership("0::/docker/abc123\n");
    put("cpu.max", "200000 50000\n");
    cr_assert_eq(sl__cpu_quota_at(g_root, g_proc), 4);
}

Test(cpu, v1_cpu_cpuacct)
{
    membership("12:memory:/grp\n4:cpu,cpuacct:/grp\n1:name=systemd:/grp\n");
    put("cpu,cpuacct/grp/cpu.cfs_quota_us", "300000\n");
    put("cpu,cpuacct/grp/cpu.cfs_period_us", "100000\n");
    cr_assert_eq(sl__cpu_quota_at(g_root, g_proc), 3);
}

Test(cpu, v1_cpu_mount_and_no_quota)
{
    membership("3:cpuacct,cpu:/grp/sub\n");
    put("cpu/grp/sub/cpu.cfs_quota_us", "-1\n");
    put("cpu/grp/sub/cpu.cfs_period_us", "100000\n");
    cr_assert_eq(sl__cpu_quota_at(g_root, g_proc), 0);
    put("cpu/grp/cpu.cfs_quota_us", "100000\n");
    put("cpu/grp/cpu.cfs_period_us", "100000\n");
    cr_assert_eq(sl__cpu_quota_at(g_root, g_proc), 1);
    cr_assert_eq(sl__cpu_budget_at(g_root, g_proc), 1);
}

Test(cpu, v1_controller_lists_match_whole_names)
{
    /* "cpuset" is not "cpu". */
    membership("5:cpuset:/grp\n");
    put("cpuset/grp/cpu.cfs_quota_us", "100000\n");
    put("cpuset/grp/cpu.cfs_period_us", "100000\n");
    put("cpu/grp/cpu.cfs_quota_us", "100000\n");
    put("cpu/grp/cpu.cfs_period_us", "100000\n");
    cr_assert_eq(sl__cpu_quota_at(g_root, g_proc), 0);
}

Test(cpu, missing_files_leave_affinity)
{
    membership("0::/nowhere\n");
    cr_assert_eq(sl__cpu_quota_at(g_root, g_proc), 0);
    cr_assert_eq(sl__cpu_budget_at(g_root, g_proc), affinity());
    char missing[600];
    snprintf(missing, sizeof(missing), "%s/no_such_file", sl_test_dir());
    cr_assert_eq(sl__cpu_quota_at(g_root, missing), 0);
    cr_assert_eq(sl__cpu_budget_at(g_root, missing), affinity());
}

Test(cpu, garbage_is_ignored)
{
    static const char *const bad[] = {
        "abc def\n", "150000\n", "-5 100000\n", "100000 0\n",
        "100000 100000 7\n", "1x0000 100000\n", "", "99999999999999999999 1\n",
    };
    membership("garbage line without colons\n0::/app\n");
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        put("app/cpu.max", bad[i]);
        cr_assert_eq(sl__cpu_quota_at(g_root, g_proc), 0, "'%s'", bad[i]);
        cr_assert_eq(sl__cpu_budget_at(g_root, g_proc), affinity(), "'%s'",
                     bad[i]);
    }
    membership("4:cpu:/grp\n");
    put("cpu/grp/cpu.cfs_quota_us", "lots\n");
    put("cpu/grp/cpu.cfs_period_us", "100000\n");
    cr_assert_eq(sl__cpu_quota_at(g_root, g_proc), 0);
}

Test(cpu, real_system_gives_at_least_one)
{
    unsigned b = sl__cpu_budget();
    cr_assert_geq(b, 1);
    cr_assert_leq(b, affinity());
}
