/*
 * stats.c - tern_runtime_stats() and tern_runtime_dump(): racy but safe snapshots of
 * the scheduler, readable from any thread (counters are relaxed atomics,
 * coroutine lists are walked under their registry locks).
 */
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/check.h"
#include "runq.h"

#define S tern__sched

int tern_runtime_stats(struct tern_runtime_stats *st, tern_runtime_proc_stats *procs, int max_procs)
{
    TERN_CHECK_ARG(st);
    if (!S)
        return -ESRCH;
    memset(st, 0, sizeof *st);
    st->procs = S->nprocs;
    uint64_t spawned = 0, exited = 0;
    for (int i = 0; i < S->nprocs; i++) {
        tern_p *p = &S->ps[i];
        tern_runtime_proc_stats ps = {
            .switches = STAT_GET(p->st_switches),
            .spawned = STAT_GET(p->st_spawned),
            .steals = STAT_GET(p->st_steals),
            .stolen = STAT_GET(p->st_stolen),
            .wakeups = STAT_GET(p->st_wakeups),
            .runq = runq_len(p) + (uint32_t)atomic_load(&p->ninbox) +
                    atomic_load_explicit(&p->nyq, memory_order_relaxed),
            .timers = (uint32_t)atomic_load(&p->nheap),
        };
        if (procs && i < max_procs)
            procs[i] = ps;
        spawned += ps.spawned;
        exited += STAT_GET(p->st_exited);
        st->switches += ps.switches;
        st->steals += ps.steals;
        st->wakeups += ps.wakeups;
        st->runnable += ps.runq;
        st->timers += ps.timers;
        st->running += STAT_GET(p->st_running);
    }
    st->global_runq = (uint64_t)atomic_load(&S->ngq);
    st->runnable += st->global_runq;
    st->spawned_total = spawned;
    st->alive = spawned - exited;
    uint64_t busy = st->running + st->runnable;
    st->parked = st->alive > busy ? st->alive - busy : 0;
    st->fd_waiters = (uint64_t)atomic_load(&S->fd_waiters);
    tern__blocking_stats(st);
    st->stacks_mapped = tern__stacks_mapped();
    st->stack_guard = tern__stack_guarded() ? "guard-install" : "canary";
    tern__release_stats(&st->stacks_released, &st->stack_saved_bytes, &st->stack_release_faults);
    st->stack_release = tern__release_guard ? "any" : "promised";
    st->long_runs = STAT_GET(S->long_runs);
    st->blocked_syscalls = STAT_GET(S->blocked_runs);
    st->monitor_ticks = tern__monitor_ticks();
    return S->nprocs;
}

static const char *state_name(uint32_t s)
{
    switch (s) {
    case CO_RUNNABLE: return "runnable";
    case CO_RUNNING: return "running";
    case CO_WAITING: return "waiting";
    case CO_NOTIFIED: return "runnable";
    case CO_DEAD: return "dead";
    default: return "free";
    }
}

void tern_runtime_dump(FILE *out)
{
    TERN_CHECK_ARG(out);
    if (!S) {
        fprintf(out, "tern: no runtime running\n");
        return;
    }
    /* Formatted into memory under the lock, written after: `out` may
     * block (a full pipe) and workers freeing control blocks wait on the
     * lock. */
    char *buf = NULL;
    size_t len = 0;
    FILE *real = out;
    out = open_memstream(&buf, &len);
    if (!out) {
        fprintf(real, "tern: tern_runtime_dump: out of memory\n");
        return;
    }
    int64_t now = tern__coarse_now();
    struct tern_runtime_stats st;
    tern_runtime_stats(&st, NULL, 0);
    fprintf(out, "tern: %llu coroutines (%llu running, %llu runnable, %llu waiting) on %d Ps\n",
            (unsigned long long)st.alive, (unsigned long long)st.running,
            (unsigned long long)st.runnable, (unsigned long long)st.parked, st.procs);
    for (int i = 0; i < S->nprocs; i++) {
        tern_p *p = &S->ps[i];
        tern__spin_lock(&S->dump_lock);
        for (uint32_t k = 0, n = tern__reg_len(p); k < n; k++) {
            tern_co *co = tern__reg_get(p, k);
            uint32_t s = co ? atomic_load(&co->status) : CO_FREE;
            if (s == CO_FREE)
                continue;
            const char *why = atomic_load_explicit(&co->wait_reason, memory_order_relaxed);
            fprintf(out, "coroutine %llu [%s", (unsigned long long)__atomic_load_n(&co->id, __ATOMIC_RELAXED),
                    state_name(s));
            if (s == CO_WAITING && why) {
                int64_t since = atomic_load_explicit(&co->state_since, memory_order_relaxed);
                fprintf(out, ", %s, %lld ms", why, (long long)((now - since) / TERN_MS));
            }
            char name[TERN_NAME_MAX];
            tern__co_name_copy(co, name);
            if (name[0])
                fprintf(out, "] '%s'\n", name);
            else
                fprintf(out, "]\n");
        }
        tern__spin_unlock(&S->dump_lock);
    }
    fclose(out);
    fwrite(buf, 1, len, real);
    free(buf);
}
