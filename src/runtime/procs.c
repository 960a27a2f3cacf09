/*
 * procs.c - how many Ps by default: the CPUs this process may run on (its
 * affinity mask) capped by its cgroup's CPU quota (v2 cpu.max along the
 * cgroup path, or v1 cfs_quota_us), rounded up.  A container limited to 2
 * CPUs on a 64-core node thus runs 2 Ps, not 64.
 */
#define _GNU_SOURCE
#include "internal.h"

#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* ceil(quota/period) from a cpu.max file; 0 if unlimited or unreadable. */
static int cpu_max_file(const char *path)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return 0;
    char q[32];
    long long period = 0, quota = 0;
    int n = fscanf(f, "%31s %lld", q, &period);
    fclose(f);
    if (n != 2 || strcmp(q, "max") == 0 || period <= 0 || sscanf(q, "%lld", &quota) != 1 ||
        quota <= 0)
        return 0;
    return (int)((quota + period - 1) / period);
}

static long long read_ll(const char *path)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    long long v = -1;
    if (fscanf(f, "%lld", &v) != 1)
        v = -1;
    fclose(f);
    return v;
}

static int cgroup_quota(void)
{
    FILE *f = fopen("/proc/self/cgroup", "re");
    if (!f)
        return 0;
    char line[4096], v2[4096] = "";
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        if (strncmp(line, "0::", 3) == 0)
            snprintf(v2, sizeof v2, "%s", line + 3);
    }
    fclose(f);
    int best = 0;
    if (v2[0]) {
        /* The tightest cpu.max from our cgroup up to the root. */
        char path[4200];
        for (;;) {
            snprintf(path, sizeof path, "/sys/fs/cgroup%s/cpu.max", strcmp(v2, "/") ? v2 : "");
            int n = cpu_max_file(path);
            if (n > 0 && (best == 0 || n < best))
                best = n;
            char *slash = strrchr(v2, '/');
            if (!slash || slash == v2)
                break;
            *slash = 0;
        }
        return best;
    }
    long long quota = read_ll("/sys/fs/cgroup/cpu/cpu.cfs_quota_us");
    long long period = read_ll("/sys/fs/cgroup/cpu/cpu.cfs_period_us");
    if (quota > 0 && period > 0)
        best = (int)((quota + period - 1) / period);
    return best;
}

int tern__default_procs(void)
{
    int n = 0;
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        n = CPU_COUNT(&set);
    if (n <= 0)
        n = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (n <= 0)
        n = 1;
    int q = cgroup_quota();
    if (q > 0 && q < n)
        n = q;
    return n;
}
