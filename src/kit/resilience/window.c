/*
 * window.c - a rolling window of time buckets (see internal.h).
 *
 * Time is cut into slots of `width` ns; slot k lives in bucket k % n and
 * carries k as its epoch, so a bucket whose epoch is older than
 * now_slot - n + 1 holds stale counts and is ignored (and reset when next
 * written).  No background ticking is needed.  The caller locks.
 */
#include "kit/resilience/internal.h"

#include <string.h>

#include "base/check.h"

void tern__window_init(tern__window *w, int64_t span, int n)
{
    TERN_ASSERT(n > 0 && n <= TERN_WINDOW_MAX && span >= n);
    w->n = n;
    w->width = span / n;
    TERN_ASSERT(w->width > 0);
    tern__window_clear(w);
}

void tern__window_clear(tern__window *w)
{
    for (int i = 0; i < TERN_WINDOW_MAX; i++) {
        w->bucket[i].epoch = INT64_MIN;
        w->bucket[i].a = w->bucket[i].b = 0;
    }
}

static int64_t slot_of(const tern__window *w, int64_t now)
{
    /* floor division: a fake clock may start below zero */
    TERN_ASSERT(w->width > 0);
    int64_t q = now / w->width;
    return (now % w->width < 0) ? q - 1 : q;
}

void tern__window_add(tern__window *w, int64_t now, uint64_t a, uint64_t b)
{
    int64_t slot = slot_of(w, now);
    int i = (int)(((slot % w->n) + w->n) % w->n);
    TERN_ASSERT(i >= 0 && i < w->n && w->n <= TERN_WINDOW_MAX);
    /* a bucket only ever counts its own slots: k in bucket k % n */
    TERN_ASSERT(w->bucket[i].epoch == INT64_MIN ||
                ((w->bucket[i].epoch % w->n) + w->n) % w->n == i);
    if (w->bucket[i].epoch != slot) {
        w->bucket[i].epoch = slot;
        w->bucket[i].a = w->bucket[i].b = 0;
    }
    w->bucket[i].a += a;
    w->bucket[i].b += b;
}

void tern__window_sum(const tern__window *w, int64_t now, uint64_t *a, uint64_t *b)
{
    int64_t slot = slot_of(w, now);
    uint64_t sa = 0, sb = 0;
    TERN_ASSERT(w->n > 0 && w->n <= TERN_WINDOW_MAX);
    for (int i = 0; i < w->n; i++) {
        int64_t e = w->bucket[i].epoch;
        if (e != INT64_MIN && e <= slot && e > slot - w->n) {
            sa += w->bucket[i].a;
            sb += w->bucket[i].b;
        }
    }
    *a = sa;
    *b = sb;
}
