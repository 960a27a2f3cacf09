/*
 * ratelimit.c - token buckets, one global and any number per key.
 *
 * Each bucket is GCRA's single number, the theoretical arrival time
 * `tat`: the instant at which the bucket would be full again.  Taking n
 * tokens moves tat n * T later (T = 1/rate, the emission interval); that
 * is allowed while tat - now stays within burst * T.  A bucket with
 * tat <= now is full, which is also what a new bucket is, so an idle full
 * bucket can be dropped without changing any answer.
 *
 * Keyed buckets live in a fixed-size chained hash table and on an LRU
 * list (most recent at the head); at max_keys the tail is evicted.  One
 * spinlock guards both: a take is a hash, a compare and a few pointer
 * moves.
 */
#include "kit/resilience/internal.h"

#include "base/check.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct entry {
    struct entry *chain;        /* next in the hash bucket */
    struct entry *prev, *next;  /* LRU list */
    uint64_t hash;
    int64_t tat;
    char key[];
} entry;

struct tern_ratelimit {
    tern__spin lock;
    int64_t interval;           /* T, ns per token */
    int64_t burst_ns;           /* burst * T */
    int64_t burst;
    size_t max_keys, nkeys;
    size_t mask;                /* table size - 1 */
    entry **table;
    entry *head, *tail;
    int64_t global_tat;
    bool global_used;
    tern_clock_fn *now;
    void *clock_arg;
    _Atomic uint64_t allowed, limited, evicted;
};

int tern_ratelimit_new(const tern_ratelimit_options *o, tern_ratelimit **out)
{
    TERN_CHECK_ARG(out);
    *out = NULL;
    if (!o || !(o->rate > 0) || o->rate > 1e9 || o->burst < 0 || (o->burst > 0 && o->burst < 1))
        return -EINVAL;
    tern_ratelimit *rl = calloc(1, sizeof *rl);
    if (!rl)
        return -ENOMEM;
    double burst = o->burst > 0 ? o->burst : (o->rate > 1 ? o->rate : 1);
    rl->interval = llround(1e9 / o->rate);
    rl->burst = (int64_t)burst;
    rl->burst_ns = llround(burst * 1e9 / o->rate);
    /* rate <= 1e9 and burst >= 1: at least a ns per token, a token per burst */
    TERN_ASSERT(rl->interval >= 1 && rl->burst >= 1 && rl->burst_ns >= rl->interval / 2);
    rl->max_keys = o->max_keys ? o->max_keys : 10000;
    size_t size = 16;
    while (size < rl->max_keys && size < ((size_t)1 << 24))
        size <<= 1;
    TERN_ASSERT((size & (size - 1)) == 0);
    rl->mask = size - 1;
    rl->table = calloc(size, sizeof *rl->table);
    if (!rl->table) {
        free(rl);
        return -ENOMEM;
    }
    rl->now = o->now;
    rl->clock_arg = o->clock_arg;
    *out = rl;
    return 0;
}

void tern_ratelimit_free(tern_ratelimit *rl)
{
    if (!rl)
        return;
    for (entry *e = rl->head, *n; e; e = n) {
        n = e->next;
        free(e);
    }
    free(rl->table);
    free(rl);
}

static uint64_t hash_key(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;     /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return h;
}

static void lru_unlink(tern_ratelimit *rl, entry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        rl->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        rl->tail = e->prev;
}

static void lru_push(tern_ratelimit *rl, entry *e)
{
    e->prev = NULL;
    e->next = rl->head;
    if (rl->head)
        rl->head->prev = e;
    else
        rl->tail = e;
    rl->head = e;
}

static void table_remove(tern_ratelimit *rl, entry *e)
{
    entry **p = &rl->table[e->hash & rl->mask];
    while (*p != e) {
        TERN_ASSERT(*p != NULL);        /* every listed entry is in its chain */
        p = &(*p)->chain;
    }
    *p = e->chain;
}

/* Under the lock: key's entry, made (evicting the LRU one at the bound)
 * when absent; NULL on ENOMEM. */
static entry *lookup(tern_ratelimit *rl, const char *key, int64_t now, bool create)
{
    uint64_t h = hash_key(key);
    for (entry *e = rl->table[h & rl->mask]; e; e = e->chain) {
        if (e->hash == h && strcmp(e->key, key) == 0) {
            lru_unlink(rl, e);
            lru_push(rl, e);
            return e;
        }
    }
    if (!create)
        return NULL;
    size_t len = strlen(key);
    entry *e = malloc(sizeof *e + len + 1);
    if (!e)
        return NULL;
    memcpy(e->key, key, len + 1);
    e->hash = h;
    e->tat = now;
    TERN_ASSERT(rl->nkeys <= rl->max_keys);
    if (rl->nkeys >= rl->max_keys) {
        entry *old = rl->tail;
        TERN_ASSERT(old != NULL && old->next == NULL);
        lru_unlink(rl, old);
        table_remove(rl, old);
        free(old);
        rl->nkeys--;
        tern__count(&rl->evicted);
    }
    e->chain = rl->table[h & rl->mask];
    rl->table[h & rl->mask] = e;
    lru_push(rl, e);
    rl->nkeys++;
    TERN_ASSERT(rl->nkeys <= rl->max_keys && rl->head == e);
    return e;
}

int tern_ratelimit_take(tern_ratelimit *rl, const char *key, int n, int64_t *retry_after)
{
    TERN_CHECK_ARG(rl);
    if (retry_after)
        *retry_after = 0;
    if (n < 1 || n > rl->burst)
        return -EINVAL;
    int64_t now = tern__resil_now(rl->now, rl->clock_arg);
    int64_t wait = 0;
    tern__spin_lock(&rl->lock);
    int64_t *tat = &rl->global_tat;
    if (key) {
        entry *e = lookup(rl, key, now, true);
        if (!e) {
            tern__spin_unlock(&rl->lock);
            return -ENOMEM;
        }
        tat = &e->tat;
    } else if (!rl->global_used) {
        rl->global_used = true;
        rl->global_tat = now;
    }
    int64_t t = (*tat > now ? *tat : now) + (int64_t)n * rl->interval;
    if (t - now > rl->burst_ns)
        wait = t - rl->burst_ns - now;
    else
        *tat = t;
    /* a take never leaves more than a burst of debt; a refusal says how
     * long until it would not */
    TERN_ASSERT(wait > 0 || *tat - now <= rl->burst_ns);
    TERN_ASSERT(wait >= 0 && wait <= (int64_t)n * rl->interval);
    tern__spin_unlock(&rl->lock);
    tern__count(wait ? &rl->limited : &rl->allowed);
    if (!wait)
        return 0;
    if (retry_after)
        *retry_after = wait;
    return -EAGAIN;
}

int64_t tern_ratelimit_tokens(tern_ratelimit *rl, const char *key)
{
    TERN_CHECK_ARG(rl);
    int64_t now = tern__resil_now(rl->now, rl->clock_arg);
    tern__spin_lock(&rl->lock);
    int64_t tat = now;
    if (key) {
        entry *e = lookup(rl, key, now, false);
        if (e)
            tat = e->tat;
    } else if (rl->global_used) {
        tat = rl->global_tat;
    }
    tern__spin_unlock(&rl->lock);
    if (tat < now)
        tat = now;
    return (now + rl->burst_ns - tat) / rl->interval;
}

int tern_ratelimit_stats(const tern_ratelimit *rl, struct tern_ratelimit_stats *out)
{
    TERN_CHECK_ARG(rl);
    TERN_CHECK_ARG(out);
    /* The lock guards the fields read, not a value the reader changes. */
    tern_ratelimit *lock_owner = (tern_ratelimit *)rl;
    out->allowed = tern__load(&rl->allowed);
    out->limited = tern__load(&rl->limited);
    out->evicted = tern__load(&rl->evicted);
    tern__spin_lock(&lock_owner->lock);
    out->keys = rl->nkeys;
    tern__spin_unlock(&lock_owner->lock);
    return 0;
}
