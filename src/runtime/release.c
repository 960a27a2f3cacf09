/*
 * release.c - giving back the stack pages of coroutines parked long.
 *
 * A coroutine with a stack of its own keeps the pages it touched while it
 * is parked: at least one 4 KiB page, more than a goroutine's whole 2 KiB
 * stack.  The monitor looks through the coroutines (the registry, a slice
 * per tick) for ones parked longer than tern_run_options.stack_release in
 * a wait that allows it (tern__wait_r), copies each one's used part (from
 * its saved stack pointer to the top, a few hundred bytes) to a heap
 * buffer, and gives the whole stack back with MADV_DONTNEED: one call per
 * run of neighbouring slots (guard markers survive it, the canary is set
 * again on the way back), so a million parks cost about a thousand calls
 * and TLB shootdowns rather than a million.
 *
 * Who may touch a parked stack.  The waits that allow release keep what
 * other threads reach before they claim the ticket (wait nodes, the
 * timer, netpoll's record) in the control block or on the heap; only the
 * ticket's claimer moves data into or out of the stack (a channel's
 * value), and tern__wake_claim copies the stack back before returning to
 * it.  So the copy back happens on whichever thread claims, before the
 * coroutine is readied, and the switch path needs no check.
 *
 * The race with a wake is settled by stk_out and the claim bit, Dekker
 * style: the monitor CASes IN -> RELEASING, then requires WAITING and an
 * unclaimed ticket (else back to IN); a claimer claims, then looks at
 * stk_out and, seeing RELEASING, waits for OUT (the copy and madvise take
 * microseconds), then copies back (OUT -> RESTORING -> IN).  A coroutine
 * cannot run, exit or be freed while RELEASING or OUT: it must be claimed
 * and readied first.
 */
#define _GNU_SOURCE
#include "internal.h"

#include <stdlib.h>
#include <sys/mman.h>

#include "sanitizer.h"

#define S tern__sched

#define DEFAULT_AGE (20 * TERN_MS)
#define SCAN_BUSY 4096      /* registry slots looked at per tick while Ps run */
#define SCAN_IDLE 262144    /* ... and while all sleep */
#define SCAN_LOCKED 256     /* slots per hold of dump_lock */
#define RUN_MAX 128         /* coroutines per madvise (each waits RELEASING) */

static _Atomic uint64_t n_out, bytes_out;

/* the monitor's own state */
static bool scanning;
static int scan_p;
static uint32_t scan_k;
static uint64_t pass_parks;     /* releasable parks counted when the pass began */
static int64_t pass_start;
static bool pass_young;         /* it saw candidates not yet old enough */
static tern_co *run[RUN_MAX];
static int nrun;
static char *run_lo, *run_hi;

void tern__release_reset(void)
{
    scanning = false;
    scan_p = 0;
    scan_k = 0;
    pass_parks = 0;
    pass_start = 0;
    pass_young = false;
    nrun = 0;
    atomic_store(&n_out, 0);
    atomic_store(&bytes_out, 0);
}

void tern__release_stats(uint64_t *n, uint64_t *bytes)
{
    *n = atomic_load_explicit(&n_out, memory_order_relaxed);
    *bytes = atomic_load_explicit(&bytes_out, memory_order_relaxed);
}

/* Another context's frames, sanitizer redzones included: neither the
 * sanitizers nor a memcpy interceptor may look (volatile keeps the
 * compiler from making the loop a memcpy call).  Both ends 16-aligned. */
__attribute__((no_sanitize("address", "thread"))) static void copy_words(void *dst, const void *src,
                                                                       size_t n)
{
    volatile uint64_t *d = dst;
    const volatile uint64_t *s = src;
    for (size_t i = 0; i < n / 8; i++)
        d[i] = s[i];
}

static void flush_run(void)
{
    if (!nrun)
        return;
    madvise(run_lo, (size_t)(run_hi - run_lo), MADV_DONTNEED);
    size_t bytes = 0;
    for (int i = 0; i < nrun; i++) {
        bytes += run[i]->save_len;
        atomic_store_explicit(&run[i]->stk_out, STK_OUT, memory_order_release);
    }
    atomic_fetch_add_explicit(&n_out, (uint64_t)nrun, memory_order_relaxed);
    atomic_fetch_add_explicit(&bytes_out, bytes, memory_order_relaxed);
    nrun = 0;
}

/* Copy co's used stack out if it is parked old enough in a releasable
 * wait; its pages go with the next flush_run. */
static void try_release(tern_co *co, int64_t now, int64_t age)
{
    /* stk_out first: it shares the first cache line with status, so the
     * released majority is passed over with one miss each */
    if (atomic_load_explicit(&co->stk_out, memory_order_relaxed) != STK_IN ||
        !atomic_load_explicit(&co->park_rel, memory_order_relaxed))
        return;
    /* Not yet parked (it counted its wait in before parking) or parked
     * too recently: another pass must come. */
    if (atomic_load_explicit(&co->status, memory_order_relaxed) != CO_WAITING ||
        now - atomic_load_explicit(&co->state_since, memory_order_relaxed) < age) {
        pass_young = true;
        return;
    }
    uint8_t s = STK_IN;
    if (!atomic_compare_exchange_strong(&co->stk_out, &s, STK_RELEASING))
        return;
    /* our half of the Dekker pair with tern__wake_claim */
    if (atomic_load(&co->status) != CO_WAITING || (atomic_load(&co->wait_word) & 1) ||
        !atomic_load_explicit(&co->park_rel, memory_order_relaxed)) {
        atomic_store_explicit(&co->stk_out, STK_IN, memory_order_release);
        return;
    }
    /* parked in this wait, so its fields are settled (read only now:
     * a recycled block is rewritten by tern__co_start) */
    if (co->pinned || co->is_main) {
        atomic_store_explicit(&co->stk_out, STK_IN, memory_order_release);
        return;
    }
    char *lo = co->stack.lo, *top = lo + co->stack.size, *sp = co->sp;
    TERN_ASSERT(lo && sp >= lo && sp < top && ((uintptr_t)sp & 15) == 0);
    size_t len = (size_t)(top - sp);
    if (len > co->save_cap) {
        size_t cap = (len + 63) & ~(size_t)63;
        char *buf = realloc(co->save_buf, cap);
        if (!buf) {
            atomic_store_explicit(&co->stk_out, STK_IN, memory_order_release);
            return;
        }
        co->save_buf = buf;
        co->save_cap = cap;
    }
    copy_words(co->save_buf, sp, len);
    co->save_len = len;
    if (nrun == RUN_MAX || (nrun && lo != run_hi + tern__stack_gap()))
        flush_run();
    if (!nrun)
        run_lo = lo;
    run_hi = top;
    run[nrun++] = co;
}

void tern__stack_restore(tern_co *co)
{
    for (;;) {
        uint8_t s = atomic_load(&co->stk_out);
        if (s == STK_IN)
            return;
        if (s == STK_OUT && atomic_compare_exchange_weak(&co->stk_out, &s, STK_RESTORING))
            break;
        tern_cpu_relax();      /* the monitor is copying or madvising it */
    }
    char *top = co->stack.lo + co->stack.size;
    size_t len = co->save_len;
    copy_words(top - len, co->save_buf, len);
    if (!tern__stack_guard_on)
        tern__stack_canary_set(&co->stack);     /* its page was given back too */
    /* A woken coroutine keeps no buffer: most wake to run briefly and park
     * again, or for good. */
    free(co->save_buf);
    co->save_buf = NULL;
    co->save_cap = co->save_len = 0;
    atomic_fetch_sub_explicit(&n_out, 1, memory_order_relaxed);
    atomic_fetch_sub_explicit(&bytes_out, len, memory_order_relaxed);
    atomic_store_explicit(&co->stk_out, STK_IN, memory_order_release);
}

void tern__release_parked(int64_t now, bool all_idle)
{
    int64_t age = S->opts.stack_release ? S->opts.stack_release : DEFAULT_AGE;
    if (age < 0)
        return;
    if (!scanning) {
        uint64_t parks = 0;
        for (int i = 0; i < S->nprocs; i++)
            parks += STAT_GET(S->ps[i].st_relparks);
        /* a new pass when waits began since the last one, or it saw some
         * too young; at most every age / 2, so busy short waits do not
         * keep the monitor walking every coroutine */
        if ((parks == pass_parks && !pass_young) || now - pass_start < age / 2)
            return;
        scanning = true;
        scan_p = 0;
        scan_k = 0;
        pass_parks = parks;
        pass_start = now;
        pass_young = false;
    }
    int budget = all_idle ? SCAN_IDLE : SCAN_BUSY;
    while (budget > 0 && scanning) {
        tern_p *p = &S->ps[scan_p];
        uint32_t n = tern__reg_len(p);
        if (scan_k >= n) {
            scan_k = 0;
            if (++scan_p == S->nprocs)
                scanning = false;
            continue;
        }
        uint32_t end = n - scan_k > SCAN_LOCKED ? scan_k + SCAN_LOCKED : n;
        /* blocks are freed only after a pass of dump_lock (tern__co_discard) */
        tern__spin_lock(&S->dump_lock);
        for (; scan_k < end; scan_k++) {
            tern_co *co = tern__reg_get(p, scan_k);
            if (co)
                try_release(co, now, age);
        }
        tern__spin_unlock(&S->dump_lock);
        budget -= SCAN_LOCKED;
        flush_run();
    }
    flush_run();
}
