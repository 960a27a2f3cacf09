/*
 * workers.c - tern_run and the worker threads: sets the scheduler up,
 * starts one thread per P (the caller's thread is P 0), runs each P's loop
 * (find work, run it until the P comes back to g0) until the main
 * coroutine returns, then joins the workers and tears everything down.
 * Also the thread-local pointer to the current P.
 */
#define _GNU_SOURCE
#include "sched.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sanitizer.h"

tern_sched *tern__sched;

#if defined(__x86_64__)
/* used, externally_visible: the only readers name it in asm, which gcc's
 * link-time optimization cannot see (clang knows neither need) */
#if defined(__clang__)
__thread tern_p *tern__tls_p __attribute__((tls_model("initial-exec"), used));
#else
__thread tern_p *tern__tls_p
    __attribute__((tls_model("initial-exec"), used, externally_visible));
#endif
#define tls_p tern__tls_p
#else
static __thread tern_p *tls_p;

/* Not inlined, so that a coroutine which migrated to another thread reads
 * that thread's TLS: compilers may cache a TLS address across a call
 * (internal.h has x86-64's inline read). */
__attribute__((noinline)) tern_p *tern__cur_p(void)
{
    __asm__ __volatile__("" ::: "memory");
    return tls_p;
}
#endif

static void sched_loop(tern_p *p)
{
    for (;;) {
        tern_co *co = tern__find_runnable(p);
        if (p->spinning) {
            TERN_ASSERT(atomic_load(&S->nspinning) > 0);    /* p is counted there */
            p->spinning = false;
            if (atomic_fetch_sub(&S->nspinning, 1) == 1)
                tern__wakep();
        }
        if (!co)
            return;     /* stopping */
        tern__g0_run(p, co);
    }
}

/* ---- workers and tern_run ---------------------------------------------- */

static void p_thread_init(tern_p *p)
{
    tls_p = p;
    atomic_store(&p->tid, (int)gettid());
    tern__spin_count_sleeps(&p->lock_sleeps);
    pthread_attr_t a;
    if (pthread_getattr_np(pthread_self(), &a) == 0) {
        void *lo;
        size_t sz;
        pthread_attr_getstack(&a, &lo, &sz);
        p->g0_stack_lo = lo;
        p->g0_stack_size = sz;
        pthread_attr_destroy(&a);
    }
#ifdef TERN_TSAN
    p->g0_tsan_fiber = __tsan_get_current_fiber();
#endif
    tern__stack_sig_install();
}

static void *worker_main(void *arg)
{
    tern_p *p = arg;
    p_thread_init(p);
    sched_loop(p);
    tern__stack_sig_remove();
    tern__spin_count_sleeps(NULL);
    tls_p = NULL;
    return NULL;
}

static int procs_from_env(void)
{
    const char *e = getenv("TERN_PROCS");
    if (!e || !*e)
        return 0;
    char *end;
    long n = strtol(e, &end, 10);
    if (*end || n < 1 || n > 1024) {
        tern__report("ignoring TERN_PROCS=\"%s\": want a whole number from 1 to 1024", e);
        return 0;
    }
    return (int)n;
}

/* Before tern__stacks_fini, which unmaps what these were carved from. */
static void ps_release(void)
{
    for (int i = 0; S->ps && i < S->nprocs; i++) {
        for (tern_waitq_node *n = S->ps[i].free_nodes, *nx; n; n = nx) {
            nx = n->next;
            free(n);
        }
        S->ps[i].free_nodes = NULL;
        if (S->ps[i].shared.lo)
            tern__stack_put(&S->ps[i].shared);
    }
}

static void sched_free(void)
{
    free(S->ps);
    free(S);
    S = NULL;
}

int tern_run(tern_fn *entry, void *arg)
{
    return tern_run_opts(entry, arg, NULL);
}

static tern_sched *_Atomic running_sched;

int tern_run_opts(tern_fn *entry, void *arg, const tern_run_options *opts)
{
    if (!entry)
        return -EINVAL;
    if (tls_p)
        tern__fatal("tern_run called from inside a coroutine; start coroutines with tern_go");
    tern_sched *none = NULL, *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    if (!atomic_compare_exchange_strong(&running_sched, &none, s)) {
        free(s);
        return -EBUSY;
    }
    S = s;
    if (opts)
        S->opts = *opts;
    tern__signal_route_begin();         /* before any runtime thread starts */
    int np = S->opts.procs > 0 ? S->opts.procs : procs_from_env();
    if (np <= 0)
        np = tern__default_procs();
    S->nprocs = np;
    size_t pg = S->page = (size_t)sysconf(_SC_PAGESIZE);
    size_t sd = S->opts.stack_size ? S->opts.stack_size : TERN_STACK_DEFAULT;
    if (sd < TERN_STACK_MIN)
        sd = TERN_STACK_MIN;
    S->stack_default = (sd + pg - 1) & ~(pg - 1);
    atomic_store(&S->id_gen, 1);
    atomic_store(&S->lock.v, 0);
    int err = -ENOMEM;
    /* line-aligned (see struct tern_p); sizeof is a multiple of the line */
    S->ps = aligned_alloc(_Alignof(tern_p), (size_t)np * sizeof *S->ps);
    if (!S->ps)
        goto fail_ps;
    memset(S->ps, 0, (size_t)np * sizeof *S->ps);
    if ((err = tern__stacks_init()) < 0)
        goto fail_ps;
    tern__release_init();
    for (int i = 0; i < np; i++) {
        tern_p *p = &S->ps[i];
        p->id = i;
        p->alone = np == 1;
        atomic_store(&p->sleep_until, INT64_MIN);      /* awake */
        p->rand = 0x9E3779B9u * (uint32_t)(i + 1);
        p->gq_countdown = 61;
        if ((err = tern__timers_init(p)) < 0 ||
            (err = tern__stack_get(&p->shared, S->stack_default)) < 0)
            goto fail_stacks;
    }
    if ((err = tern__netpoll_init()) < 0)
        goto fail_stacks;
    if ((err = tern__blocking_init(S->opts.blocking_threads > 0 ? S->opts.blocking_threads : 64)) < 0)
        goto fail_netpoll;
    tern__run_hooks(true);
    tern_p *p0 = &S->ps[0];
    tls_p = p0;
    err = tern__co_start(p0, entry, arg, &(tern_go_options){.name = "main"}, &S->main_co);
    tls_p = NULL;
    if (err < 0)
        goto fail_blocking;
    S->main_co->is_main = true;
    int started = 1;
    for (; started < np; started++) {
        if ((err = -pthread_create(&S->ps[started].thread, NULL, worker_main, &S->ps[started])))
            break;
    }
    if (started < np) {
        tern__report("could not start worker thread %d: %s; stopping", started, strerror(-err));
        tern__stop_all();
    } else if (S->opts.monitor_threshold >= 0) {
        S->ps[0].thread = pthread_self();
        for (int i = 0; i < np; i++)      /* before the monitor reads them */
            S->ps[i].cpu_clock_ok =
                pthread_getcpuclockid(S->ps[i].thread, &S->ps[i].cpu_clock) == 0;
        tern__monitor_start();
    }
    p_thread_init(p0);
    if (started == np)
        sched_loop(p0);
    tern__stack_sig_remove();
    tern__spin_count_sleeps(NULL);
    tls_p = NULL;
    for (int i = 1; i < started; i++)
        pthread_join(S->ps[i].thread, NULL);
    tern__monitor_stop();
    tern__blocking_fini();
    int result = started == np ? S->main_result : err;
    tern__run_hooks(false);
    tern__co_free_all();
    ps_release();
    tern__netpoll_fini();
    tern__stacks_fini();
    sched_free();
    tern__signal_route_end();
    atomic_store(&running_sched, NULL);
    return result;

fail_blocking:
    tern__blocking_fini();
fail_netpoll:
    tern__netpoll_fini();
fail_stacks:
    tern__co_free_all();
    ps_release();
    tern__stacks_fini();
fail_ps:
    sched_free();
    tern__signal_route_end();
    atomic_store(&running_sched, NULL);
    return err;
}
