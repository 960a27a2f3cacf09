/*
 * stack.c - coroutine stacks: size classes carved from a few large
 * mappings, guard pages that do not split them, caches, overflow reports.
 *
 * Why regions: a guard page made with mprotect splits a mapping in two, and
 * vm.max_map_count (65530 by default) then stops a process near 32,700
 * stacks.  Stacks here are slots of 64 MiB regions (mmap'd with
 * MAP_NORESERVE: only touched pages cost memory), so a million stacks take
 * about a thousand mappings.  Each slot's lowest page is the guard:
 *   - "guard-install": MADV_GUARD_INSTALL (Linux 6.13+) marks it so that any
 *     access faults, without splitting the mapping;
 *   - "canary": on older kernels, a canary word at the bottom of the stack
 *     is checked each time the coroutine switches out.
 * In canary mode the page below each stack grows into a 64 KiB dead zone
 * that nothing uses, so a moderate overflow lands there (address space
 * only) instead of in the neighbouring stack, and the canary reports it.
 * A fault in a guard page or dead zone is reported with the coroutine's id
 * and name.
 * Stacks over 1 MiB get a mapping of their own with an mprotect guard.
 */
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "sanitizer.h"

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif

#define NCLASS 7                        /* 16 KiB << 0..6: up to 1 MiB */
#define REGION_BYTES ((size_t)64 << 20)
#define CANARY 0x7465726e5f636e79ull    /* "tern_cny" */

/* A region's slots all have one size; owner[i] is the coroutine whose
 * stack is slot i (NULL while the slot is free): the fault handler's way
 * from an address to a released stack (release.c). */
typedef struct region {
    struct region *next;                /* immutable once published */
    char *base;
    size_t len;
    size_t slot;                        /* bytes per slot, guard included */
    tern_co *_Atomic *owner;
} region;

typedef struct free_slot {
    char *slot;                         /* its guard page */
    region *reg;
} free_slot;

typedef struct stack_class {
    tern__spin lock;
    size_t size;                        /* usable bytes */
    free_slot *free;
    size_t nfree, capfree;
    char *carve, *carve_end;            /* unused part of the newest region */
    region *carve_reg;
} stack_class;

static stack_class classes[NCLASS];
static region *_Atomic regions;
static tern__spin regions_lock = TERN_SPIN_INIT;
static size_t page;
static size_t guard;                    /* bytes below each stack */
bool tern__stack_guard_on;
#define guarded tern__stack_guard_on
bool tern__stack_guard_verified;
static atomic_ulong mapped;
static struct sigaction old_segv;

bool tern__stack_guarded(void)
{
    return guarded;
}

size_t tern__stack_gap(void)
{
    return guard;
}

uint64_t tern__stacks_mapped(void)
{
    return atomic_load(&mapped);
}

static bool probe_guard_install(void)
{
    const char *e = getenv("TERN_STACK_GUARD");
    if (e && strcmp(e, "canary") == 0)
        return false;
    char *m = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return false;
    bool ok = madvise(m, page, MADV_GUARD_INSTALL) == 0;
    /* Release by guard markers (release.c) needs them to work, not just
     * to be accepted: qemu-user, for one, answers 0 to any madvise.  The
     * kernel writing into the marked page must fail. */
    tern__stack_guard_verified =
        ok && syscall(SYS_clock_gettime, CLOCK_MONOTONIC, (struct timespec *)(void *)m) == -1 &&
        errno == EFAULT;
    munmap(m, 2 * page);
    return ok;
}

int tern__stacks_init(void)
{
    page = (size_t)sysconf(_SC_PAGESIZE);
    guarded = probe_guard_install();
    guard = guarded ? page : (size_t)64 << 10;
    for (int i = 0; i < NCLASS; i++) {
        classes[i] = (stack_class){.size = (size_t)(16 << 10) << i};
    }
    return 0;
}

void tern__stacks_fini(void)
{
    for (int i = 0; i < NCLASS; i++)
        free(classes[i].free);
    memset(classes, 0, sizeof classes);
    region *r = atomic_load(&regions);
    while (r) {
        region *n = r->next;
        munmap(r->base, r->len);
        free(r->owner);
        free(r);
        r = n;
    }
    atomic_store(&regions, NULL);
    atomic_store(&mapped, 0);
}

static int class_of(size_t size)
{
    for (int i = 0; i < NCLASS; i++)
        if (size <= ((size_t)(16 << 10) << i))
            return i;
    return -1;
}

/* Slot (guard page first) from class c, or NULL; *reg its region. */
static char *slot_get(stack_class *c, region **reg)
{
    size_t slot = c->size + guard;
    tern__spin_lock(&c->lock);
    char *s = NULL;
    if (c->nfree) {
        free_slot f = c->free[--c->nfree];
        tern__spin_unlock(&c->lock);
        *reg = f.reg;
        return f.slot;
    }
    if (c->carve == c->carve_end) {
        size_t n = REGION_BYTES / slot;
        if (n < 8)
            n = 8;
        size_t len = n * slot;
        region *r = malloc(sizeof *r);
        tern_co *_Atomic *own = calloc(n, sizeof *own);
        char *m = r && own ? mmap(NULL, len, PROT_READ | PROT_WRITE,
                                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
                           : MAP_FAILED;
        if (m == MAP_FAILED) {
            free(r);
            free(own);
            tern__spin_unlock(&c->lock);
            return NULL;
        }
        r->base = m;
        r->len = len;
        r->slot = slot;
        r->owner = own;
#ifdef TERN_ASAN
        /* ASan keeps shadow across munmap: a region mapped where earlier
         * stacks were would inherit their frames' redzones. */
        __asan_unpoison_memory_region(m, len);
#endif
        tern__spin_lock(&regions_lock);
        r->next = atomic_load_explicit(&regions, memory_order_relaxed);
        atomic_store_explicit(&regions, r, memory_order_release);  /* the fault handler reads */
        tern__spin_unlock(&regions_lock);
        c->carve = m;
        c->carve_end = m + len;
        c->carve_reg = r;
    }
    s = c->carve;
    c->carve += slot;
    *reg = c->carve_reg;
    tern__spin_unlock(&c->lock);
    if (guarded && madvise(s, page, MADV_GUARD_INSTALL) != 0)
        tern__fatal("MADV_GUARD_INSTALL failed on a stack slot: %s", strerror(errno));
    atomic_fetch_add(&mapped, 1);
    return s;
}

bool tern__stack_sized_in_region(size_t size)
{
    return class_of(size) >= 0;
}

static tern_co *_Atomic *owner_cell(const tern_stack *st)
{
    region *r = st->reg;
    return &r->owner[(size_t)(st->lo - guard - r->base) / r->slot];
}

int tern__stack_get(tern_stack *st, size_t size)
{
    int ci = class_of(size);
    char *slot;
    st->reg = NULL;
    if (ci >= 0) {
        region *reg = NULL;
        slot = slot_get(&classes[ci], &reg);
        st->reg = reg;
        if (!slot)
            return -ENOMEM;
        st->size = classes[ci].size;
    } else {
        size = (size + page - 1) & ~(page - 1);
        slot = mmap(NULL, size + guard, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (slot == MAP_FAILED)
            return -ENOMEM;
        if (mprotect(slot, guard, PROT_NONE) != 0) {
            munmap(slot, size + guard);
            return -ENOMEM;
        }
        st->size = size;
    }
    st->lo = slot + guard;
    st->cls = ci;
    /* whole pages: the guard below and madvise over the whole stack need it */
    TERN_ASSERT(st->size >= size && (st->size & (page - 1)) == 0 &&
                ((uintptr_t)st->lo & (page - 1)) == 0);
    st->vg_id = tern_vg_stack_register(st->lo, st->lo + st->size);
    return 0;
}

void tern__stack_own(tern_stack *st, tern_co *co)
{
    if (st->reg)
        atomic_store_explicit(owner_cell(st), co, memory_order_release);
}

tern_co *tern__stack_owner_of(const void *addr)
{
    const char *a = addr;
    for (region *r = atomic_load_explicit(&regions, memory_order_acquire); r; r = r->next) {
        if (a < r->base || a >= r->base + r->len)
            continue;
        size_t off = (size_t)(a - r->base);
        if (off % r->slot < guard)
            return NULL;        /* a guard page: an overflow, not a release */
        return atomic_load_explicit(&r->owner[off / r->slot], memory_order_acquire);
    }
    return NULL;
}

void tern__stack_abandon(tern_stack *st)
{
    tern_vg_stack_deregister(st->vg_id);
    if (st->reg)
        atomic_store_explicit(owner_cell(st), NULL, memory_order_relaxed);
    st->lo = NULL;
}

void tern__stack_put(tern_stack *st)
{
    tern_vg_stack_deregister(st->vg_id);
    char *slot = st->lo - guard;
    if (st->reg)
        atomic_store_explicit(owner_cell(st), NULL, memory_order_relaxed);
    if (st->cls < 0) {
        munmap(slot, st->size + guard);
    } else {
        stack_class *c = &classes[st->cls];
        tern__spin_lock(&c->lock);
        if (c->nfree == c->capfree) {
            size_t cap = c->capfree ? c->capfree * 2 : 256;
            free_slot *f = realloc(c->free, cap * sizeof *f);
            if (!f) {
                /* Keep the slot out of use rather than fail: it stays mapped. */
                tern__spin_unlock(&c->lock);
                madvise(st->lo, st->size, MADV_DONTNEED);
                st->lo = NULL;
                return;
            }
            c->free = f;
            c->capfree = cap;
        }
        c->free[c->nfree++] = (free_slot){slot, st->reg};
        tern__spin_unlock(&c->lock);
    }
    st->lo = NULL;
}

void tern_stack_trim(void)
{
    tern_co *co = tern_self();
    if (!co || co->is_main || co->stack_mode == TERN_STACK_SHARED || !co->stack.lo)
        return;
    /* everything below this frame is dead except what this call and the
     * madvise wrapper push (well under 512 bytes); in canary mode the
     * lowest page holds the canary */
    uintptr_t here = (uintptr_t)__builtin_frame_address(0);
    uintptr_t top = (here - 512) & ~(uintptr_t)4095;
    uintptr_t lo = (uintptr_t)co->stack.lo + (guarded ? 0 : 4096);
    if (top > lo)
        madvise((void *)lo, top - lo, MADV_DONTNEED);
}

void tern__stack_release(tern_stack *st)
{
    madvise(st->lo, st->size, MADV_DONTNEED);
}

/* 128 bytes, not one word: an overflowing frame may write only part of
 * what it spans (padding, sanitizer redzones), but not 128 bytes of it. */
#define CANARY_WORDS 16

void tern__stack_canary_set(const tern_stack *st)
{
    TERN_ASSERT(st->size > CANARY_WORDS * sizeof(uint64_t) && ((uintptr_t)st->lo & 7) == 0);
    if (guarded)
        return;
    uint64_t *w = (uint64_t *)(void *)st->lo;
    for (int i = 0; i < CANARY_WORDS; i++)
        w[i] = CANARY;
}

bool tern__stack_canary_ok(const tern_stack *st)
{
    const uint64_t *w = (const uint64_t *)(const void *)st->lo;
    uint64_t bad = 0;
    for (int i = 0; i < CANARY_WORDS; i++)
        bad |= w[i] ^ CANARY;
    return bad == 0;
}

/* ---- overflow reports -------------------------------------------------- */

static void segv_handler(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    /* a parked coroutine's released stack, touched by someone else */
    tern_co *owner = tern__stack_owner_of(si->si_addr);
    if (owner) {
        int e = errno;
        bool retry = tern__stack_fault(owner, si->si_addr);
        errno = e;
        if (retry)
            return;
    }
    tern_p *p = tern__cur_p();
    tern_co *co = p ? p->cur : NULL;
    if (co) {
        const char *lo = co->pinned ? co->pinned->shared.lo : co->stack.lo;
        size_t size = co->pinned ? co->pinned->shared.size : co->stack.size;
        const char *a = si->si_addr;
        if (a >= lo - guard && a < lo) {
            char msg[256];
            int n = snprintf(msg, sizeof msg,
                             "tern: stack overflow in coroutine %llu '%s' (stack %zu bytes): it "
                             "ran into the guard below its stack; raise tern_go_options.stack_size\n",
                             (unsigned long long)co->id, tern__co_name(co), size);
            if (n > 0 && write(2, msg, (size_t)n) < 0)
                n = 0;
            signal(SIGABRT, SIG_DFL);
            abort();
        }
    }
    /* Not ours: let the previous handler (or the default) see it again. */
    sigaction(sig, &old_segv, NULL);
}

static __thread void *altstack_mem;

int tern__stack_sig_install(void)
{
    static tern__spin once = TERN_SPIN_INIT;
    static bool installed;
    stack_t ss = {.ss_size = 64 << 10};
    ss.ss_sp = malloc(ss.ss_size);
    if (!ss.ss_sp || sigaltstack(&ss, NULL) != 0) {
        free(ss.ss_sp);
        return -ENOMEM;
    }
    altstack_mem = ss.ss_sp;
    tern__spin_lock(&once);
    if (!installed) {
        struct sigaction sa = {.sa_sigaction = segv_handler, .sa_flags = SA_SIGINFO | SA_ONSTACK};
        sigemptyset(&sa.sa_mask);
        sigaction(SIGSEGV, &sa, &old_segv);
        installed = true;
    }
    tern__spin_unlock(&once);
    return 0;
}

void tern__stack_sig_remove(void)
{
    if (!altstack_mem)
        return;
    stack_t off = {.ss_flags = SS_DISABLE};
    sigaltstack(&off, NULL);
    free(altstack_mem);
    altstack_mem = NULL;
}
