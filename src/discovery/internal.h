/*
 * internal.h - the balancer's model, shared by its files:
 *   balancer.c   the set of endpoints, updates, picks and their release
 *   lb_pick.c    the policies: p2c, round robin, smooth weighted round robin
 *   lb_hash.c    the key hash, the ring and Maglev's table
 *   outlier.c    ejection and return
 *
 * Everything in a balancer is guarded by its one spinlock: a pick or a
 * done is a few dozen instructions under it, and an update builds its
 * tables (the ring, Maglev's) outside it and swaps them in.
 */
#ifndef TERN_DISCOVERY_INTERNAL_H
#define TERN_DISCOVERY_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/spin.h"
#include "tern/discovery.h"

typedef struct lb_ep {
    char *addr;
    uint32_t weight;
    int refs;                   /* one while a member, one per pick */
    bool member;
    int64_t in_flight;
    uint64_t picks, failures;
    double ewma;                /* ns; 0: no sample yet */
    int64_t ewma_at;            /* when the last sample came */
    double success;             /* EWMA of successes, in [0, 1] */
    int64_t last_pick;
    int64_t wrr_current;        /* smooth weighted round robin's running weight */
    /* outlier ejection */
    int consecutive;            /* failures in a row */
    bool ejected;
    bool unhealthy;             /* failed active health checks (health_check.c) */
    int hc_streak;              /* > 0: checks passed in a row; < 0: failed */
    int64_t eject_until;
    int ejections;              /* the multiplier of the ejection time */
    uint64_t win_calls, win_ok; /* this interval's calls, for the success-rate sweep */
} lb_ep;

/* The consistent-hash tables, built from a set of endpoints. */
typedef struct lb_ring {
    uint64_t *hash;             /* sorted */
    uint32_t *ep;               /* the endpoint index of each point */
    size_t n;
} lb_ring;

struct tern_balancer {
    tern__spin lock;
    tern_balancer_options o;    /* defaults filled in */
    lb_ep **eps;
    size_t n;
    size_t n_ejected;
    size_t n_unhealthy;
    size_t n_out;               /* ejected or unhealthy: not picked (unless all are) */
    lb_ring ring;               /* TERN_LB_RING_HASH */
    uint32_t *maglev;           /* TERN_LB_MAGLEV: o.maglev_table_size entries */
    uint64_t rr_next;
    int64_t next_sweep;         /* when outlier.c looks at every endpoint again:
                                   the interval's end or an ejection's, sooner */
    int64_t interval_end;       /* the success-rate window's end */
    uint64_t picks, ejections;
    struct lb_health *health;   /* active checks, when started */
};

/* Whether picks pass e by.  When every endpoint is out, none is: a
 * balancer always picks something while it has endpoints (Envoy calls
 * this panic mode), and the calls themselves then tell. */
static inline bool lb_out(const tern_balancer *b, const lb_ep *e)
{
    return (e->ejected || e->unhealthy) && b->n_out < b->n;
}

/* Drop one reference; the last frees the endpoint.  Under the lock. */
void tern__lb_ep_unref(lb_ep *e);

/* Change e's flags keeping the counts; under the lock, e a member. */
void tern__lb_set_ejected(tern_balancer *b, lb_ep *e, bool on);
void tern__lb_set_unhealthy(tern_balancer *b, lb_ep *e, bool on);

/* lb_hash.c */
uint64_t tern__lb_hash(const void *data, size_t len, uint64_t seed);
int tern__lb_ring_build(lb_ring *ring, const char *const *addrs, const uint32_t *weights, size_t n,
                        int nodes_per_weight);
void tern__lb_ring_free(lb_ring *ring);
/* The endpoint index for hash h: the first point at or after h, skipping
 * ejected endpoints; n must be > 0. */
size_t tern__lb_ring_pick(const tern_balancer *b, uint64_t h);
int tern__lb_maglev_build(uint32_t **table, uint32_t size, const char *const *addrs,
                          const uint32_t *weights, size_t n);
size_t tern__lb_maglev_pick(const tern_balancer *b, uint64_t h);
bool tern__lb_is_prime(uint32_t n);

/* lb_pick.c, under the lock, b->n > 0 */
size_t tern__lb_pick_p2c(tern_balancer *b, int64_t now);
size_t tern__lb_pick_rr(tern_balancer *b);
size_t tern__lb_pick_wrr(tern_balancer *b);
/* A random endpoint that is not ejected. */
size_t tern__lb_pick_random(tern_balancer *b);

/* health_check.c: stop and free the checker (from a coroutine) */
void tern__lb_health_stop(tern_balancer *b);

/* outlier.c, under the lock */
void tern__lb_outlier_sweep(tern_balancer *b, int64_t now);
void tern__lb_outlier_record(tern_balancer *b, lb_ep *e, bool ok, int64_t now);

#endif
