/*
 * registry.c - every coroutine control block, per P, for tern_runtime_dump and for
 * freeing them all when tern_run returns.
 *
 * Blocks are listed when first allocated and stay listed while they are
 * reused, so starting and ending a coroutine never touch the registry
 * (listing each life cost a third of spawn+join time on two Ps, measured).
 * A block is unlisted only when freed, perhaps by another P, so removal
 * takes no lock.  Slots live in fixed chunks that never move.  A slot
 * holds a coroutine pointer, or (next_free + 1) << 1 | 1 while free.  The
 * owner reuses slots from a private free list; other Ps return slots by
 * pushing them on an atomic stack that the owner takes whole.
 */
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <stdlib.h>

#define FREE_LINK(next1) ((uintptr_t)(next1) << 1 | 1)

static _Atomic uintptr_t *slot(tern_p *p, uint32_t idx)
{
    return &p->reg_chunks[idx / TERN_REG_CHUNK][idx % TERN_REG_CHUNK];
}

int tern__reg_add(tern_p *p, tern_co *co)
{
    uint32_t idx;
    if (!p->reg_free_head)
        p->reg_free_head = atomic_exchange(&p->reg_remote, 0);
    if (p->reg_free_head) {
        idx = p->reg_free_head - 1;
        uintptr_t v = atomic_load_explicit(slot(p, idx), memory_order_relaxed);
        p->reg_free_head = (uint32_t)(v >> 1);
    } else {
        idx = atomic_load_explicit(&p->reg_len, memory_order_relaxed);
        if (idx / TERN_REG_CHUNK >= TERN_REG_CHUNKS)
            return -ENOMEM;
        _Atomic uintptr_t **c = &p->reg_chunks[idx / TERN_REG_CHUNK];
        if (!*c && !(*c = calloc(TERN_REG_CHUNK, sizeof **c)))
            return -ENOMEM;
        atomic_store_explicit(&p->reg_len, idx + 1, memory_order_release);
    }
    co->home = p;
    co->reg_idx = idx;
    atomic_store_explicit(slot(p, idx), (uintptr_t)co, memory_order_release);
    return 0;
}

void tern__reg_del(tern_p *cur, tern_co *co)
{
    tern_p *h = co->home;
    uint32_t idx = co->reg_idx;
    if (h == cur) {
        atomic_store_explicit(slot(h, idx), FREE_LINK(h->reg_free_head), memory_order_release);
        h->reg_free_head = idx + 1;
        return;
    }
    uint32_t head = atomic_load_explicit(&h->reg_remote, memory_order_relaxed);
    do {
        atomic_store_explicit(slot(h, idx), FREE_LINK(head), memory_order_release);
    } while (!atomic_compare_exchange_weak_explicit(&h->reg_remote, &head, idx + 1,
                                                    memory_order_release, memory_order_relaxed));
}

uint32_t tern__reg_len(tern_p *p)
{
    return atomic_load_explicit(&p->reg_len, memory_order_acquire);
}

tern_co *tern__reg_get(tern_p *p, uint32_t idx)
{
    uintptr_t v = atomic_load_explicit(slot(p, idx), memory_order_acquire);
    return (v & 1) ? NULL : (tern_co *)v;
}

void tern__reg_free(tern_p *p)
{
    for (int i = 0; i < TERN_REG_CHUNKS; i++) {
        free((void *)p->reg_chunks[i]);
        p->reg_chunks[i] = NULL;
    }
    atomic_store(&p->reg_len, 0);
    p->reg_free_head = 0;
    atomic_store(&p->reg_remote, 0);
}
