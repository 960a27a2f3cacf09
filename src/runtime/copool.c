/*
 * copool.c - where coroutine control blocks (with their stacks) come from
 * and go back to: a per-P cache, global batches, and the scavenger that
 * gives idle stacks' pages back to the kernel.  Blocks are never freed
 * while the runtime runs, except ones with a non-default stack or a shared
 * stack; all are freed by tern__co_free_all when tern_run returns.
 */
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <stdlib.h>

#include "sanitizer.h"

#define S tern__sched

/* Spare coroutines with default stacks, beyond the per-P caches, kept as
 * a stack of batches (lists of TERN_CO_CACHE_MAX / 2 linked through
 * `next`, chained through the head's `batch_next`), so a P's cache
 * spills or refills in O(1) instead of walking cold blocks (the walk was
 * 80% of co_start under a spawn storm).  "Hot" batches keep their stack
 * pages; the monitor moves batches idle for a second to "cold", giving
 * their pages back. */
static tern__spin free_lock = TERN_SPIN_INIT;
static tern_co *free_hot, *free_cold;   /* batch stacks */
static long nfree_hot;                  /* blocks in hot batches */
#define FREE_HOT_MAX 1024
/* Spare blocks without a stack ("bare"), beyond the per-P lists, in
 * batches as above: a default-stack coroutine is spawned into one and
 * takes a stack only when it first runs (tern__co_stack_take). */
static tern_co *free_bare;
#define BARE_MAX 256            /* bare blocks kept per P */
/* the monitor's scavenging state */
static long lowmark = -1, budget;
static int64_t window_end;
static tern_co *batch, *cursor;         /* batch being released */

/* Only for blocks no one else can see: unlisted (tern__co_discard), or with
 * every worker stopped. */
static void co_free_mem(tern_co *co)
{
#ifdef TERN_TSAN
    if (co->tsan_fiber)         /* abandoned at tern_run's return */
        __tsan_destroy_fiber(co->tsan_fiber);
#endif
    if (atomic_load(&co->stk_out) != STK_IN && co->stack.reg)
        /* abandoned at tern_run's return while released: its slot is not
         * reused (tern__stacks_fini unmaps it), so nothing is copied back */
        tern__stack_abandon(&co->stack);
    if (co->stack.lo)
        tern__stack_put(&co->stack);
    free(co->save_buf);
    free(co);
}

/* Called by the monitor each tick.  Spares that stayed unused for a whole
 * second (the low-water mark of the spare count over that second, above
 * FREE_HOT_MAX) get their stack pages back to the kernel, at most 16 per
 * tick while workers run: each madvise shoots down TLB entries on every
 * worker, and releasing 20,000 at once was measured to delay timers by
 * 12 ms at p99.
 * Spares reused within the second (waves of spawns) keep their pages and
 * are not faulted in again. */
void tern__scavenge_stacks(int64_t now, bool all_idle)
{
    /* with every worker asleep, TLB shootdowns disturb no one */
    int per_tick = all_idle ? 256 : 16;
    tern__spin_lock(&free_lock);
    long n = nfree_hot;
    tern__spin_unlock(&free_lock);
    if (lowmark < 0 || n < lowmark)
        lowmark = n;
    if (now >= window_end) {
        budget = lowmark > FREE_HOT_MAX ? lowmark - FREE_HOT_MAX : 0;
        lowmark = n;
        window_end = now + TERN_SEC;
    }
    for (int i = 0; i < per_tick && (cursor || budget > 0); i++) {
        if (!cursor) {
            tern__spin_lock(&free_lock);
            batch = nfree_hot > FREE_HOT_MAX ? free_hot : NULL;
            if (batch) {
                free_hot = batch->batch_next;
                nfree_hot -= batch->batch_n;
            }
            tern__spin_unlock(&free_lock);
            if (!batch)
                return;
            budget -= batch->batch_n;
            cursor = batch;
        }
        tern__stack_release(&cursor->stack);
        cursor = cursor->next;
        if (!cursor) {
            tern__spin_lock(&free_lock);
            batch->batch_next = free_cold;
            free_cold = batch;
            tern__spin_unlock(&free_lock);
        }
    }
}

/* tern_run is over: the batch lists point into freed blocks. */
static void free_lists_reset(void)
{
    free_hot = free_cold = free_bare = NULL;
    nfree_hot = 0;
    lowmark = -1;
    budget = 0;
    window_end = 0;
    batch = cursor = NULL;
}

/* Start fetching the block the next spawn takes: with thousands alive it
 * is a cache and TLB miss, and in a spawn storm this overlaps the spawn
 * before it.  (Its stack is not fetched: a default-stack coroutine's
 * first frame is built when it first runs, on the stack of this P's
 * newest spare then, see first_frame in sched.c.) */
static inline void co_prefetch(tern_co *next)
{
    if (!next)
        return;
    tern_co *after = next->next;
    if (after) {
        __builtin_prefetch(after, 1);
        __builtin_prefetch((char *)after + 64, 1);
    }
}

/* A spare block with a default stack: this P's newest, else a batch from
 * the global lists; NULL when there is none. */
static tern_co *spare_take(tern_p *p)
{
    tern_co *co = p->free_co;
    if (co) {
        p->free_co = co->next;
        p->nfree--;
        co_prefetch(co->next);
        return co;
    }
    tern__spin_lock(&free_lock);
    tern_co *b = free_hot ? free_hot : free_cold;
    if (b == free_hot && b) {
        free_hot = b->batch_next;
        nfree_hot -= b->batch_n;
    } else if (b) {
        free_cold = b->batch_next;
    }
    tern__spin_unlock(&free_lock);
    if (b) {
        p->free_co = b->next;
        p->nfree = b->batch_n - 1;
    }
    return b;
}

tern_co *tern__co_alloc(tern_p *p, size_t stack_size, bool shared)
{
    tern_co *co;
    if (!shared && stack_size == S->stack_default && (co = spare_take(p)))
        return co;
    co = calloc(1, sizeof *co);
    if (!co)
        return NULL;
    if (!shared && tern__stack_get(&co->stack, stack_size) < 0) {
        free(co);
        return NULL;
    }
    if (!shared)
        tern__stack_own(&co->stack, co);
    /* The registry lists control blocks, not lives: a block is listed
     * once, here, and stays listed through every reuse, so spawning and
     * exiting never touch it (tern_runtime_dump skips free blocks). */
    if (tern__reg_add(p, co) < 0) {
        co_free_mem(co);
        return NULL;
    }
    return co;
}

/* Cut the newest n blocks off a per-P list as one batch (its head, with
 * batch_n set), for a global batch list. */
static tern_co *batch_cut(tern_co **list, int *len, int n)
{
    tern_co *head = *list, *tail = head;
    for (int i = 1; i < n; i++)
        tail = tail->next;
    *list = tail->next;
    tail->next = NULL;
    *len -= n;
    head->batch_n = n;
    return head;
}

tern_co *tern__co_alloc_bare(tern_p *p)
{
    tern_co *co = p->bare_co;
    if (co) {
        p->bare_co = co->next;
        p->nbare--;
        return co;
    }
    tern__spin_lock(&free_lock);
    tern_co *b = free_bare;
    if (b)
        free_bare = b->batch_next;
    tern__spin_unlock(&free_lock);
    if (b) {
        p->bare_co = b->next;
        p->nbare = b->batch_n - 1;
        return b;
    }
    co = calloc(1, sizeof *co);
    if (!co)
        return NULL;
    if (tern__reg_add(p, co) < 0) {
        free(co);
        return NULL;
    }
    return co;
}

static void bare_put(tern_p *p, tern_co *co)
{
    TERN_ASSERT(!co->stack.lo);
    co->next = p->bare_co;
    p->bare_co = co;
    if (++p->nbare <= BARE_MAX)
        return;
    tern_co *head = batch_cut(&p->bare_co, &p->nbare, BARE_MAX / 2);
    tern__spin_lock(&free_lock);
    head->batch_next = free_bare;
    free_bare = head;
    tern__spin_unlock(&free_lock);
}

int tern__co_stack_take(tern_p *p, tern_co *co)
{
    TERN_ASSERT(!co->stack.lo && !co->pinned);
    /* the newest spare on this P: the stack the last coroutine to exit
     * here ran on, resident and cached */
    tern_co *donor = spare_take(p);
    if (!donor) {
        /* none (every block is in use): a new stack, not a new block to
         * take it from, or the registry would double */
        int rc = tern__stack_get(&co->stack, S->stack_default);
        if (rc == 0)
            tern__stack_own(&co->stack, co);
        return rc;
    }
    TERN_ASSERT(donor->stack.lo && atomic_load_explicit(&donor->stk_out, memory_order_relaxed) == STK_IN);
    co->stack = donor->stack;
    donor->stack = (tern_stack){0};
    tern__stack_own(&co->stack, co);
    bare_put(p, donor);
    return 0;
}

/* Unlist and free a block that is not cached for reuse. */
void tern__co_discard(tern_p *p, tern_co *co)
{
    tern__reg_del(p, co);
    /* tern_runtime_dump or the monitor may hold a pointer read a moment ago */
    tern__spin_lock(&S->dump_lock);
    tern__spin_unlock(&S->dump_lock);
    co_free_mem(co);
}

void tern__co_cache_put(tern_p *p, tern_co *co)
{
    co->next = p->free_co;
    p->free_co = co;
    if (++p->nfree <= TERN_CO_CACHE_MAX)
        return;
    /* Hand the newest half over as one batch (these blocks are hot). */
    tern_co *head = batch_cut(&p->free_co, &p->nfree, TERN_CO_CACHE_MAX / 2);
    tern__spin_lock(&free_lock);
    head->batch_next = free_hot;
    free_hot = head;
    nfree_hot += head->batch_n;
    tern__spin_unlock(&free_lock);
}


void tern__co_free_all(void)
{
    /* Timer heaps first: they point into coroutines about to be freed. */
    for (int i = 0; S->ps && i < S->nprocs; i++)
        tern__timers_free(&S->ps[i]);
    for (int i = 0; S->ps && i < S->nprocs; i++) {
        tern_p *p = &S->ps[i];
        tern_co *co;
        for (uint32_t k = 0, n = tern__reg_len(p); k < n; k++)
            if ((co = tern__reg_get(p, k))) {
                if (co->join)           /* abandoned: it will never return */
                    tern__join_unref(co->join);
                co_free_mem(co);        /* every block, cached ones too */
            }
        tern__reg_free(p);
        p->free_co = p->bare_co = NULL;
        p->nfree = p->nbare = 0;
    }
    free_lists_reset();
    tern__release_reset();
}


tern_waitq_node *tern__co_wait_node(tern_co *self)
{
    tern_waitq_node *n = &self->node;
    TERN_ASSERT(!n->queue);        /* every wait ends with its node unlinked */
    n->co = self;
    n->ticket = tern__prepare(self);
    n->queue = NULL;
    n->case_idx = 0;
    n->sole = false;
    return n;
}

tern_waitq_node *tern__co_ctx_node(tern_co *self) { return &self->ctx_node; }
