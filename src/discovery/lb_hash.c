/*
 * lb_hash.c - consistent hashing: the key hash, a ring of virtual nodes
 * (Karger et al.; each endpoint owns nodes_per_weight x weight points,
 * a key goes to the first point at or after its hash), and Maglev's
 * lookup table (Eisenbud et al., NSDI 2016: each endpoint fills the table
 * in the order of its own permutation, offset + j x skip mod M, taking
 * turns, so every endpoint owns about M / n entries and a change of the
 * set moves few of them).
 *
 * Ejected endpoints are skipped at pick time (the next point on the ring;
 * for Maglev a second probe sequence), so ejection does not rebuild.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/check.h"
#include "discovery/internal.h"

/* A 64-bit multiply-xorshift finalizer (the constants are the well-known
 * ones from splitmix64): good avalanche, a few cycles. */
static inline uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

uint64_t tern__lb_hash(const void *data, size_t len, uint64_t seed)
{
    const unsigned char *p = data;
    uint64_t h = mix64(seed ^ (len * 0x9e3779b97f4a7c15ull));
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = mix64(h ^ w) + 0x9e3779b97f4a7c15ull;
        p += 8;
        len -= 8;
    }
    uint64_t w = 0;
    memcpy(&w, p, len);
    return mix64(h ^ w ^ ((uint64_t)len << 56));
}

bool tern__lb_is_prime(uint32_t n)
{
    if (n < 2)
        return false;
    for (uint32_t d = 2; (uint64_t)d * d <= n; d++)
        if (n % d == 0)
            return false;
    return true;
}

/* ---- the ring ---- */

typedef struct point {
    uint64_t hash;
    uint32_t ep;
} point;

static int point_cmp(const void *a, const void *b)
{
    const point *x = a, *y = b;
    if (x->hash != y->hash)
        return x->hash < y->hash ? -1 : 1;
    return x->ep < y->ep ? -1 : x->ep > y->ep;     /* ties: by endpoint, deterministic */
}

#define MAX_POINTS (1u << 22)

int tern__lb_ring_build(lb_ring *ring, const char *const *addrs, const uint32_t *weights, size_t n,
                        int nodes_per_weight)
{
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += (uint64_t)weights[i] * (uint64_t)nodes_per_weight;
    if (total > MAX_POINTS)
        return -E2BIG;
    point *pts = malloc(total * sizeof *pts);
    uint64_t *hash = malloc(total * sizeof *hash);
    uint32_t *ep = malloc(total * sizeof *ep);
    if (!pts || !hash || !ep) {
        free(pts);
        free(hash);
        free(ep);
        return -ENOMEM;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t base = tern__lb_hash(addrs[i], strlen(addrs[i]), 0x7269e6);
        for (uint64_t v = 0; v < (uint64_t)weights[i] * (uint64_t)nodes_per_weight; v++)
            pts[k++] = (point){.hash = mix64(base + v * 0x9e3779b97f4a7c15ull), .ep = (uint32_t)i};
    }
    TERN_ASSERT(k == total);
    qsort(pts, total, sizeof *pts, point_cmp);
    for (size_t i = 0; i < total; i++) {
        hash[i] = pts[i].hash;
        ep[i] = pts[i].ep;
    }
    free(pts);
    ring->hash = hash;
    ring->ep = ep;
    ring->n = total;
    return 0;
}

void tern__lb_ring_free(lb_ring *ring)
{
    free(ring->hash);
    free(ring->ep);
    *ring = (lb_ring){0};
}

size_t tern__lb_ring_pick(const tern_balancer *b, uint64_t h)
{
    const lb_ring *r = &b->ring;
    TERN_ASSERT(r->n > 0);
    size_t lo = 0, hi = r->n;           /* the first point >= h, wrapping */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (r->hash[mid] < h)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (size_t k = 0; k < r->n; k++) {
        size_t i = r->ep[(lo + k) % r->n];
        if (!lb_out(b, b->eps[i]))
            return i;
    }
    return r->ep[lo % r->n];            /* unreachable: lb_out is false for all when all are out */
}

/* ---- Maglev ---- */

int tern__lb_maglev_build(uint32_t **table, uint32_t size, const char *const *addrs,
                          const uint32_t *weights, size_t n)
{
    if (n > size / 2)
        return -E2BIG;                  /* a table must be much larger than the set */
    uint32_t *t = malloc((size_t)size * sizeof *t);
    uint64_t *offset = malloc(n * sizeof *offset), *skip = malloc(n * sizeof *skip);
    uint64_t *next = calloc(n, sizeof *next);
    if (!t || !offset || !skip || !next) {
        free(t);
        free(offset);
        free(skip);
        free(next);
        return -ENOMEM;
    }
    uint32_t maxw = 1;
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(addrs[i]);
        offset[i] = tern__lb_hash(addrs[i], len, 0x6d61676c) % size;
        skip[i] = tern__lb_hash(addrs[i], len, 0x65762121) % (size - 1) + 1;
        if (weights[i] > maxw)
            maxw = weights[i];
    }
    memset(t, 0xff, (size_t)size * sizeof *t);
    /* Turns: in round r an endpoint of weight w takes a slot when its
     * share so far (w x rounds / maxw) runs ahead of what it took, so
     * weights give proportional shares of the table. */
    uint64_t filled = 0;
    uint64_t *taken = calloc(n, sizeof *taken);
    if (!taken) {
        free(t);
        free(offset);
        free(skip);
        free(next);
        return -ENOMEM;
    }
    for (uint64_t round = 1; filled < size; round++) {
        for (size_t i = 0; i < n && filled < size; i++) {
            if (taken[i] * maxw >= (uint64_t)weights[i] * round)
                continue;
            uint64_t c;
            do {
                c = (offset[i] + next[i] * skip[i]) % size;
                next[i]++;
            } while (t[c] != UINT32_MAX);
            t[c] = (uint32_t)i;
            taken[i]++;
            filled++;
        }
    }
    free(taken);
    free(offset);
    free(skip);
    free(next);
    *table = t;
    return 0;
}

size_t tern__lb_maglev_pick(const tern_balancer *b, uint64_t h)
{
    uint32_t size = b->o.maglev_table_size;
    size_t i = b->maglev[h % size];
    if (!lb_out(b, b->eps[i]))
        return i;
    /* its endpoint is out: probe a second sequence, the same for the
     * same key, so the key's calls still agree on one fallback */
    uint64_t step = mix64(h) % (size - 1) + 1;
    for (uint64_t k = 1; k <= 32; k++) {
        i = b->maglev[(h + k * step) % size];
        if (!lb_out(b, b->eps[i]))
            return i;
    }
    for (i = 0; i < b->n; i++)
        if (!lb_out(b, b->eps[i]))
            return i;
    return b->maglev[h % size];
}
