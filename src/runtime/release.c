/*
 * release.c - giving back the stack pages of coroutines parked long.
 *
 * A coroutine with a stack of its own keeps the pages it touched while it
 * is parked: at least one 4 KiB page, more than a goroutine's whole 2 KiB
 * stack.  The monitor looks through the coroutines (the registry, a slice
 * per tick) for ones parked longer than tern_run_options.stack_release in
 * a wait that allows it (tern__wait_r), copies each one's used part (from
 * its saved stack pointer to the top, a few hundred bytes) to a heap
 * buffer, and gives the stack's pages back: one call per run of
 * neighbouring slots, so a million parks cost about a thousand calls and
 * TLB shootdowns rather than a million.  Two modes:
 *
 * Guard mode, the default where the kernel has working guard markers
 * (MADV_GUARD_INSTALL, Linux 6.13+), membarrier and /proc/self/mem: every
 * coroutine with a class stack qualifies, whatever its frames share.  The
 * run is made read-only (mprotect) and copied, made inaccessible (the
 * markers zap the pages first: a read in that gap would map the zero
 * page), given guard markers (which free the pages without splitting the
 * mapping), and made writable again, so the mapping merges back whole.
 * Any later touch of a released stack by another coroutine or thread (a
 * WaitGroup or a result array in its frame, a channel's value) faults; the
 * SIGSEGV handler (stack.c) finds the stack's owner and copies the stack
 * back (tern__stack_fault), and the touch is retried: nothing is lost.  A
 * touch during a release faults on the protection and waits for it.  The
 * copy back keeps others out the same way: inaccessible, markers removed,
 * the bytes put with a forced write through /proc/self/mem, accessible
 * again (restore_pages).  What a fault cannot catch is the kernel touching
 * a released page for another thread (read(2) into a buffer on a parked
 * coroutine's stack): it fails with EFAULT; tern's own I/O copies the
 * stack back and retries (tern__stack_fault_in), other code may keep the
 * stack (tern_go_options.keep_stack).  A woken coroutine is copied back
 * before it runs: its waker claims the ticket with a plain store and never
 * looks at the stack, so the switch that resumes it checks stk_out, and
 * the monitor, after marking its candidates RELEASING, passes an expedited
 * membarrier(2) before it looks at their status and claim bit: either it
 * sees the claim, or the resuming switch sees RELEASING and waits.
 *
 * Promise mode, elsewhere (older kernels, qemu-user): only coroutines that
 * promise that nothing else touches their stack while they wait
 * (tern_go_options.release_stack, tern__stack_release_allow) qualify,
 * their pages go with MADV_DONTNEED, and the waits that allow release keep
 * what other threads reach before they claim the ticket (wait nodes, the
 * timer, netpoll's record) in the control block or on the heap; only the
 * ticket's claimer moves data into or out of the stack, and
 * tern__wake_claim copies the stack back before returning to it.  The race
 * with a wake is settled by stk_out and the claim bit, Dekker style: the
 * monitor CASes IN -> RELEASING, then requires WAITING and an unclaimed
 * ticket (else back to IN); a claimer claims, then looks at stk_out and,
 * seeing RELEASING, waits for OUT, then copies back (OUT -> RESTORING ->
 * IN).  A coroutine cannot run, exit or be freed while RELEASING or OUT:
 * it must be claimed, readied and copied back first.
 */
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/membarrier.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sanitizer.h"

#define S tern__sched

/* Parked this long before a release, unless tern_run_options.stack_release
 * says: a coroutine that promised (its copy back is a copy) soon; any
 * other (its copy back, which must keep others out meanwhile, costs two
 * mprotects, a marker removal and a forced write: ~15 us, and 20,000
 * sleepers waking at once were measured 0.55 s late with 20 ms) only when
 * it has waited long enough for that to be nothing. */
#define DEFAULT_AGE (20 * TERN_MS)
#define DEFAULT_AGE_ANY TERN_SEC
#define SCAN_BUSY 4096      /* registry slots looked at per tick while Ps run */
#define SCAN_IDLE 262144    /* ... and while all sleep */
#define SCAN_LOCKED 256     /* slots per hold of dump_lock */
#define RUN_MAX 128         /* candidates per flush (each waits RELEASING) */

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif
#ifndef MADV_GUARD_REMOVE
#define MADV_GUARD_REMOVE 103
#endif

bool tern__release_guard;
static _Atomic uint64_t n_out, bytes_out, n_faults;

/* the monitor's own state */
static bool scanning;
static int scan_p;
static uint32_t scan_k;
static uint64_t pass_parks;     /* releasable parks counted when the pass began: */
static uint64_t pass_any;       /* promised ones, the others */
static int64_t pass_start;
static bool pass_young;         /* it saw candidates not yet old enough: promised */
static bool pass_young_any;     /* ... the others */
static tern_co *cand[RUN_MAX];
static int ncand;

static int mem_fd = -1;      /* /proc/self/mem: writes that ignore protections */
static pid_t mem_pid;        /* ... of this process: a fork's child must not
                                write through its parent's */

/* mem_fd, opened anew in a fork's child (the parent's is closed); false if
 * it cannot be opened.  System calls only (the SIGSEGV handler). */
static bool mem_fd_open(void)
{
    pid_t me = getpid();
    if (mem_fd >= 0 && me == mem_pid)
        return true;
    int fd = open("/proc/self/mem", O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return false;
    if (mem_fd >= 0)
        close(mem_fd);
    mem_fd = fd;
    mem_pid = me;
    return true;
}

/* Write n bytes at dst, whatever its protection (FOLL_FORCE).  May run in
 * the SIGSEGV handler: system calls only. */
static bool force_write(void *dst, const void *src, size_t n)
{
    const char *p = src;
    off_t at = (off_t)(uintptr_t)dst;
    if (!mem_fd_open())
        return false;
    while (n) {
        ssize_t w = pwrite(mem_fd, p, n, at);
        if (w <= 0) {
            if (w < 0 && errno == EINTR)
                continue;
            return false;
        }
        p += w;
        at += w;
        n -= (size_t)w;
    }
    return true;
}

/* Guard mode's restore, rehearsed on a page of our own: markers, then no
 * access, then markers gone, a forced write, access again. */
static bool restore_works(void)
{
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    char *m = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return false;
    static const char probe[] = "tern";
    bool ok = madvise(m, pg, MADV_GUARD_INSTALL) == 0 && mprotect(m, pg, PROT_NONE) == 0 &&
              madvise(m, pg, MADV_GUARD_REMOVE) == 0 && force_write(m + 64, probe, sizeof probe) &&
              mprotect(m, pg, PROT_READ | PROT_WRITE) == 0 && memcmp(m + 64, probe, sizeof probe) == 0;
    munmap(m, 2 * pg);
    return ok;
}

void tern__release_init(void)
{
    const char *e = getenv("TERN_STACK_RELEASE");
    tern__release_guard = false;
    if ((e && strcmp(e, "promised") == 0) || !tern__stack_guard_verified ||
        syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) != 0)
        return;
    tern__release_guard = mem_fd_open() && restore_works();
}

void tern__release_reset(void)
{
    scanning = false;
    scan_p = 0;
    scan_k = 0;
    pass_parks = pass_any = 0;
    pass_start = 0;
    pass_young = pass_young_any = false;
    ncand = 0;
    atomic_store(&n_out, 0);
    atomic_store(&bytes_out, 0);
    atomic_store(&n_faults, 0);
}

void tern__release_stats(uint64_t *n, uint64_t *bytes, uint64_t *faults)
{
    *n = atomic_load_explicit(&n_out, memory_order_relaxed);
    *bytes = atomic_load_explicit(&bytes_out, memory_order_relaxed);
    *faults = atomic_load_explicit(&n_faults, memory_order_relaxed);
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

/* Still parked in a releasable wait, its ticket unclaimed (after the
 * RELEASING mark: see the Dekker pairs above)? */
static bool still_parked(tern_co *co)
{
    return atomic_load(&co->status) == CO_WAITING && !(atomic_load(&co->wait_word) & 1) &&
           atomic_load_explicit(&co->park_rel, memory_order_relaxed);
}

/* Its fields, settled now that it is known parked (read only then: a
 * recycled block is rewritten by tern__co_start): it may release.  Guard
 * mode needs the stack's owner on record for its faults. */
static bool settled_ok(const tern_co *co)
{
    TERN_ASSERT(co->stack.lo || co->pinned || co->is_main);
    return !co->pinned && !co->is_main && (!tern__release_guard || co->stack.reg);
}

static void back_in(tern_co *co)
{
    atomic_store_explicit(&co->stk_out, STK_IN, memory_order_release);
}

/* Undoing a protection change cannot be skipped: the stacks' own
 * coroutines would fault on them for good. */
static void writable_again(char *lo, size_t len)
{
    if (mprotect(lo, len, PROT_READ | PROT_WRITE) != 0)
        tern__fatal("mprotect could not make %zu bytes of coroutine stacks writable again: %s",
                    len, strerror(errno));
}

/* Give back the pages of g[0..n), neighbouring stacks, all RELEASING with
 * their save buffers big enough. */
static void release_run(tern_co **g, int n)
{
    char *lo = g[0]->stack.lo, *hi = g[n - 1]->stack.lo + g[n - 1]->stack.size;
    size_t len = (size_t)(hi - lo);
    if (tern__release_guard && mprotect(lo, len, PROT_READ) != 0) {
        /* out of mappings (vm.max_map_count): keep them, writable (a
         * failed mprotect may have changed part of the range) */
        writable_again(lo, len);
        for (int i = 0; i < n; i++)
            back_in(g[i]);
        return;
    }
    size_t bytes = 0;
    for (int i = 0; i < n; i++) {
        tern_co *co = g[i];
        char *top = co->stack.lo + co->stack.size, *sp = co->sp;
        co->save_len = (size_t)(top - sp);
        copy_words(co->save_buf, sp, co->save_len);
        bytes += co->save_len;
    }
    if (tern__release_guard) {
        /* No access while the markers go in: installing them zaps the
         * pages first, and a read in between would map the zero page and
         * see zeros where the stack's bytes were. */
        if (mprotect(lo, len, PROT_NONE) != 0) {
            writable_again(lo, len);
            for (int i = 0; i < n; i++)
                back_in(g[i]);
            return;
        }
        int r = madvise(lo, len, MADV_GUARD_INSTALL);
        writable_again(lo, len);
        if (r != 0) {
            for (int i = 0; i < n; i++)     /* pages and bytes untouched */
                back_in(g[i]);
            return;
        }
    } else {
        madvise(lo, len, MADV_DONTNEED);
    }
    for (int i = 0; i < n; i++)
        atomic_store_explicit(&g[i]->stk_out, STK_OUT, memory_order_release);
    atomic_fetch_add_explicit(&n_out, (uint64_t)n, memory_order_relaxed);
    atomic_fetch_add_explicit(&bytes_out, bytes, memory_order_relaxed);
}

/* Release the candidates that are still parked, a run of neighbours at a
 * time. */
static void flush_cands(void)
{
    if (!ncand)
        return;
    /* guard mode: the other half of the switch path's stk_out check (see
     * the top comment) */
    if (tern__release_guard)
        syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0);
    int n = 0;
    for (int i = 0; i < ncand; i++) {
        tern_co *co = cand[i];
        if (tern__release_guard && (!still_parked(co) || !settled_ok(co))) {
            back_in(co);
            continue;
        }
        char *top = co->stack.lo + co->stack.size, *sp = co->sp;
        TERN_ASSERT(sp >= co->stack.lo && sp < top && ((uintptr_t)sp & 15) == 0);
        size_t len = (size_t)(top - sp);
        if (len > co->save_cap) {
            size_t cap = (len + 63) & ~(size_t)63;
            char *buf = realloc(co->save_buf, cap);
            if (!buf) {
                back_in(co);
                continue;
            }
            co->save_buf = buf;
            co->save_cap = cap;
        }
        /* by address, for the runs (the registry is nearly in order) */
        int j = n++;
        for (; j > 0 && cand[j - 1]->stack.lo > co->stack.lo; j--)
            cand[j] = cand[j - 1];
        cand[j] = co;
    }
    ncand = 0;
    for (int i = 0; i < n;) {
        int j = i + 1;
        while (j < n && cand[j]->stack.lo ==
                            cand[j - 1]->stack.lo + cand[j - 1]->stack.size + tern__stack_gap())
            j++;
        release_run(&cand[i], j - i);
        i = j;
    }
}

/* Mark co RELEASING if it is parked old enough in a releasable wait; its
 * pages go with the next flush_cands. */
static void try_release(tern_co *co, int64_t now, int64_t age, int64_t age_any)
{
    /* stk_out first: it shares the first cache line with status, so the
     * released majority is passed over with one miss each */
    if (atomic_load_explicit(&co->stk_out, memory_order_relaxed) != STK_IN ||
        !atomic_load_explicit(&co->park_rel, memory_order_relaxed))
        return;
    /* Not yet parked (it counted its wait in before parking) or parked
     * too recently: another pass must come. */
    if (atomic_load_explicit(&co->status, memory_order_relaxed) != CO_WAITING ||
        now - atomic_load_explicit(&co->state_since, memory_order_relaxed) <
            (rel_promised(co) ? age : age_any)) {
        if (rel_promised(co))
            pass_young = true;
        else
            pass_young_any = true;
        return;
    }
    uint8_t s = STK_IN;
    if (!atomic_compare_exchange_strong(&co->stk_out, &s, STK_RELEASING))
        return;
    /* promise mode: our half of the Dekker pair with tern__wake_claim
     * (guard mode looks after its membarrier, in flush_cands) */
    if (!tern__release_guard && (!still_parked(co) || !settled_ok(co))) {
        back_in(co);
        return;
    }
    cand[ncand++] = co;
    if (ncand == RUN_MAX)
        flush_cands();
}

static void restore_failed(tern_co *co, const char *what)
{
    tern__fatal("%s failed while copying back the released stack of coroutine %llu '%s': %s",
                what, (unsigned long long)co->id, tern__co_name(co), strerror(errno));
}

/* Copy co's stack back; the caller holds it RESTORING.  Guard mode: others
 * may touch the stack meanwhile (it did not promise otherwise), and a page
 * without its marker but without its bytes yet would show them zeros, or
 * take a write the copy then overwrites.  So the stack is made
 * inaccessible first (touches fault and wait for IN), the bytes go in with
 * a forced write, and only then is it accessible again. */
static void restore_pages(tern_co *co)
{
    char *lo = co->stack.lo, *top = lo + co->stack.size;
    size_t len = co->save_len;
    if (tern__release_guard && !rel_promised(co)) {
        if (mprotect(lo, co->stack.size, PROT_NONE) != 0)
            restore_failed(co, "mprotect(PROT_NONE)");
        if (madvise(lo, co->stack.size, MADV_GUARD_REMOVE) != 0)
            restore_failed(co, "madvise(MADV_GUARD_REMOVE)");
        if (!force_write(top - len, co->save_buf, len))
            restore_failed(co, "writing /proc/self/mem");
        if (mprotect(lo, co->stack.size, PROT_READ | PROT_WRITE) != 0)
            restore_failed(co, "mprotect(PROT_READ | PROT_WRITE)");
    } else {
        /* it promised: only the claimer, now, touches it */
        if (tern__release_guard && madvise(lo, co->stack.size, MADV_GUARD_REMOVE) != 0)
            restore_failed(co, "madvise(MADV_GUARD_REMOVE)");
        copy_words(top - len, co->save_buf, len);
    }
    if (!tern__stack_guard_on)
        tern__stack_canary_set(&co->stack);     /* its page was given back too */
    atomic_fetch_sub_explicit(&n_out, 1, memory_order_relaxed);
    atomic_fetch_sub_explicit(&bytes_out, len, memory_order_relaxed);
}

/* Hold co RESTORING; false if it is resident. */
static bool take_out(tern_co *co)
{
    for (;;) {
        uint8_t s = atomic_load(&co->stk_out);
        if (s == STK_IN)
            return false;
        if (s == STK_OUT && atomic_compare_exchange_weak(&co->stk_out, &s, STK_RESTORING))
            return true;
        tern_cpu_relax();      /* the monitor is copying or madvising it */
    }
}

void tern__stack_restore(tern_co *co)
{
    if (!take_out(co))
        return;
    restore_pages(co);
    /* A woken coroutine keeps no buffer: most wake to run briefly and park
     * again, or for good. */
    free(co->save_buf);
    co->save_buf = NULL;
    co->save_cap = co->save_len = 0;
    atomic_store_explicit(&co->stk_out, STK_IN, memory_order_release);
}

/* The faults this thread took in a row at one address while the stack
 * there was resident (see tern__stack_fault). */
static __thread __attribute__((tls_model("initial-exec"))) const void *idle_fault_at;
static __thread __attribute__((tls_model("initial-exec"))) unsigned idle_faults;

bool tern__stack_fault(tern_co *co, const void *addr)
{
    if (!tern__release_guard)
        return false;
    if (atomic_load(&co->stk_out) == STK_IN) {
        /* Copied back between the fault and now: retry.  Unless it keeps
         * faulting there: then the fault was never a released page's. */
        if (addr != idle_fault_at)
            idle_faults = 0;
        idle_fault_at = addr;
        return ++idle_faults <= 8;
    }
    idle_fault_at = NULL;
    if (!take_out(co))
        return true;        /* someone else copied it back while we waited */
    restore_pages(co);      /* the buffer stays: no free() in a handler */
    atomic_fetch_add_explicit(&n_faults, 1, memory_order_relaxed);
    atomic_store_explicit(&co->stk_out, STK_IN, memory_order_release);
    return true;
}

bool tern__stack_fault_in(const void *p, size_t n)
{
    if (!tern__release_guard || !n)
        return false;
    bool any = false;
    const char *a = p, *end = a + n;
    for (; a < end; a += 4096) {
        tern_co *co = tern__stack_owner_of(a);
        if (co && atomic_load(&co->stk_out) != STK_IN) {
            tern__stack_restore(co);
            any = true;
        }
    }
    tern_co *co = tern__stack_owner_of(end - 1);
    if (co && atomic_load(&co->stk_out) != STK_IN) {
        tern__stack_restore(co);
        any = true;
    }
    if (any)
        atomic_fetch_add_explicit(&n_faults, 1, memory_order_relaxed);
    return any;
}

void tern__release_parked(int64_t now, bool all_idle)
{
    int64_t age = S->opts.stack_release ? S->opts.stack_release : DEFAULT_AGE;
    int64_t age_any = S->opts.stack_release ? S->opts.stack_release : DEFAULT_AGE_ANY;
    if (age < 0)
        return;
    if (!scanning) {
        uint64_t parks = 0, any = 0;
        for (int i = 0; i < S->nprocs; i++) {
            parks += STAT_GET(S->ps[i].st_relparks);
            any += STAT_GET(S->ps[i].st_anyparks);
        }
        /* a new pass when waits began since the last one, or it saw some
         * too young; at most every age / 2 (the kind's age), so busy short
         * waits do not keep the monitor walking every coroutine */
        bool due = ((parks != pass_parks || pass_young) && now - pass_start >= age / 2) ||
                   ((any != pass_any || pass_young_any) && now - pass_start >= age_any / 2);
        if (!due)
            return;
        scanning = true;
        scan_p = 0;
        scan_k = 0;
        pass_parks = parks;
        pass_any = any;
        pass_start = now;
        pass_young = pass_young_any = false;
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
                try_release(co, now, age, age_any);
        }
        tern__spin_unlock(&S->dump_lock);
        budget -= SCAN_LOCKED;
        flush_cands();
    }
    flush_cands();
}
