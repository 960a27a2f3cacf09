/*
 * runtime.c - the runtime's and the process's own metrics, read at
 * scrape time.
 *
 * One scrape hook takes a single tern_runtime_stats snapshot and reads /proc
 * once; the function-valued metrics then show fields of that snapshot, so
 * the figures of one scrape belong together.  The /proc reads are short
 * reads of kernel-generated files that never wait on a device, so they
 * run on the worker rather than through tern_blocking.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "kit/metrics/internal.h"
#include "tern/runtime.h"

#define RT_MAX_PROCS 256

typedef struct rt_state {
    struct tern_runtime_stats st;       /* zero while no runtime runs */
    /* Here, not on the stack: 12 KiB would be a fifth of a connection
     * coroutine's stack.  Scrapes of a registry run one at a time. */
    tern_runtime_proc_stats ps[RT_MAX_PROCS];
    double rss, vms, fds, max_fds, cpu, start;
    tern_metrics_family *runq;
} rt_state;

static void read_statm(rt_state *s)
{
    FILE *f = fopen("/proc/self/statm", "re");
    unsigned long vm = 0, res = 0;
    if (f) {
        if (fscanf(f, "%lu %lu", &vm, &res) != 2)
            vm = res = 0;
        fclose(f);
    }
    double page = (double)sysconf(_SC_PAGESIZE);
    s->vms = (double)vm * page;
    s->rss = (double)res * page;
}

static double count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return 0;
    long n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.' && atoi(e->d_name) != dirfd(d))
            n++;                        /* not ".", "..", nor this listing's own fd */
    closedir(d);
    return (double)n;
}

/* Seconds since the epoch when the process started: its start in clock
 * ticks after boot (field 22 of /proc/self/stat) plus the boot time
 * (btime in /proc/stat). */
static double start_time(void)
{
    char buf[1024];
    FILE *f = fopen("/proc/self/stat", "re");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');        /* the command name may hold spaces */
    unsigned long long ticks = 0;
    for (int field = 2; p && field < 22; field++)
        p = strchr(p + 1, ' ');
    if (!p || sscanf(p + 1, "%llu", &ticks) != 1)
        return 0;
    f = fopen("/proc/stat", "re");
    if (!f)
        return 0;
    unsigned long long btime = 0;
    char line[256];
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "btime %llu", &btime) == 1)
            break;
    fclose(f);
    return (double)btime + (double)ticks / (double)sysconf(_SC_CLK_TCK);
}

static void rt_scrape(void *arg)
{
    rt_state *s = arg;
    tern_runtime_proc_stats *ps = s->ps;
    int n = tern_runtime_stats(&s->st, ps, RT_MAX_PROCS);
    if (n < 0) {
        memset(&s->st, 0, sizeof s->st);
        n = 0;
    }
    for (int i = 0; i < n && i < RT_MAX_PROCS; i++) {
        char p[16];
        snprintf(p, sizeof p, "%d", i);
        tern_metrics_gauge *g;
        if (tern_metrics_gauge_with(s->runq, &g, p) == 0)
            tern_metrics_gauge_set(g, ps[i].runq);
    }
    read_statm(s);
    s->fds = count_fds();
    struct rlimit rl;
    s->max_fds = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY
                     ? (double)rl.rlim_cur
                     : 0;
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        s->cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
                 ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6;
}

#define FIELD_FN(fname, expr)                                                                  \
    static double fname(void *arg)                                                             \
    {                                                                                          \
        const rt_state *s = arg;                                                               \
        return (double)(expr);                                                                 \
    }

FIELD_FN(v_alive, s->st.alive)
FIELD_FN(v_runnable, s->st.runnable)
FIELD_FN(v_procs, s->st.procs)
FIELD_FN(v_global_runq, s->st.global_runq)
FIELD_FN(v_steals, s->st.steals)
FIELD_FN(v_switches, s->st.switches)
FIELD_FN(v_bthreads, s->st.blocking_threads)
FIELD_FN(v_bqueued, s->st.blocking_queued)
FIELD_FN(v_brunning, s->st.blocking_running)
FIELD_FN(v_rss, s->rss)
FIELD_FN(v_vms, s->vms)
FIELD_FN(v_fds, s->fds)
FIELD_FN(v_max_fds, s->max_fds)
FIELD_FN(v_cpu, s->cpu)
FIELD_FN(v_start, s->start)

typedef struct rt_metric {
    const char *name, *help;
    bool counter;
    tern_metrics_value_fn *fn;
} rt_metric;

static const rt_metric rt_metrics[] = {
    {"tern_coroutines", "Coroutines alive.", false, v_alive},
    {"tern_coroutines_runnable", "Coroutines in a run queue.", false, v_runnable},
    {"tern_sched_procs", "Ps (worker threads) of the runtime.", false, v_procs},
    {"tern_sched_global_runqueue_length", "Coroutines in the global run queue.", false,
     v_global_runq},
    {"tern_sched_steals_total", "Successful steals between Ps.", true, v_steals},
    {"tern_sched_switches_total", "Coroutine switches.", true, v_switches},
    {"tern_blocking_threads", "Threads of the tern_blocking pool.", false, v_bthreads},
    {"tern_blocking_queued", "Offloaded calls waiting for a thread.", false, v_bqueued},
    {"tern_blocking_running", "Offloaded calls running.", false, v_brunning},
    {"process_resident_memory_bytes", "Resident memory size in bytes.", false, v_rss},
    {"process_virtual_memory_bytes", "Virtual memory size in bytes.", false, v_vms},
    {"process_open_fds", "Number of open file descriptors.", false, v_fds},
    {"process_max_fds", "Maximum number of open file descriptors.", false, v_max_fds},
    {"process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", true,
     v_cpu},
    {"process_start_time_seconds", "Start time of the process since unix epoch in seconds.",
     false, v_start},
};

int tern_metrics_runtime_register(tern_metrics_registry *r)
{
    r = tern__metrics_reg(r);
    rt_state *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->start = start_time();
    static const char *const p_label[] = {"p", NULL};
    int rc = tern_metrics_family_new(
        r,
        &(tern_metrics_family_options){.type = TERN_METRICS_GAUGE,
                                       .name = "tern_sched_runqueue_length",
                                       .help = "Coroutines in each P's local run queue.",
                                       .labels = p_label},
        &s->runq);
    if (rc) {
        free(s);
        return rc;
    }
    /* From here families point at s: it lives as long as the registry,
     * freed by the hook's release (families, once registered, are never
     * dropped, so one that came before a failure stays and reads s). */
    int hrc = tern_metrics_on_scrape(r, rt_scrape, free, s);
    for (size_t i = 0; rc == 0 && i < sizeof rt_metrics / sizeof rt_metrics[0]; i++) {
        const rt_metric *m = &rt_metrics[i];
        rc = m->counter ? tern_metrics_counter_func(r, m->name, m->help, m->fn, s)
                        : tern_metrics_gauge_func(r, m->name, m->help, m->fn, s);
    }
    return rc ? rc : hrc;
}
