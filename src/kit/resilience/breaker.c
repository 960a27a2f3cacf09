/*
 * breaker.c - the circuit breaker: CLOSED -> OPEN when the rolling
 * window's failure ratio reaches the threshold (given enough calls), OPEN
 * -> HALF_OPEN after open_duration, HALF_OPEN -> CLOSED after
 * half_open_max successful trials or -> OPEN on the first failed one.
 *
 * Invariants (under the lock): `gen` changes with every transition and
 * tickets carry the gen that admitted them, so an outcome only counts in
 * the state it was admitted in.  In HALF_OPEN, trials_ok <= trials_out <=
 * half_open_max.  OPEN becomes HALF_OPEN lazily, on the first look after
 * open_until: no timer is needed.
 */
#include "kit/resilience/internal.h"

#include "base/check.h"

#include <errno.h>
#include <stdlib.h>

struct tern_breaker {
    tern__spin lock;
    tern_breaker_options o;
    tern_breaker_state state;
    uint64_t gen;
    int64_t open_until;
    uint32_t trials_out, trials_ok;
    tern__window win;           /* a: failures, b: successes */
    _Atomic uint64_t allowed, rejected, successes, failures, opened, half_opened, closed;
};

int tern_breaker_new(const tern_breaker_options *o, tern_breaker **out)
{
    TERN_CHECK_ARG(out);
    *out = NULL;
    static const tern_breaker_options defaults = {0};
    if (!o)
        o = &defaults;
    if (o->window < 0 || o->buckets < 0 || o->buckets > TERN_WINDOW_MAX ||
        o->failure_ratio < 0 || o->failure_ratio > 1 || o->open_duration < 0)
        return -EINVAL;
    tern_breaker *b = calloc(1, sizeof *b);
    if (!b)
        return -ENOMEM;
    b->o = *o;
    if (!b->o.window)
        b->o.window = 10 * TERN_SEC;
    if (!b->o.buckets)
        b->o.buckets = 10;
    if (!b->o.min_requests)
        b->o.min_requests = 20;
    if (b->o.failure_ratio == 0)
        b->o.failure_ratio = 0.5;
    if (!b->o.open_duration)
        b->o.open_duration = 5 * TERN_SEC;
    if (!b->o.half_open_max)
        b->o.half_open_max = 1;
    if (b->o.window < b->o.buckets) {
        free(b);
        return -EINVAL;
    }
    tern__window_init(&b->win, b->o.window, b->o.buckets);
    b->gen = 1;
    *out = b;
    return 0;
}

void tern_breaker_free(tern_breaker *b)
{
    free(b);
}

/* Under the lock: switch state, returning the old one for the callback. */
/* The only moves: CLOSED -> OPEN, OPEN -> HALF_OPEN, HALF_OPEN -> CLOSED
 * or OPEN. */
static bool legal_move(tern_breaker_state from, tern_breaker_state to)
{
    return (from == TERN_BREAKER_CLOSED && to == TERN_BREAKER_OPEN) ||
           (from == TERN_BREAKER_OPEN && to == TERN_BREAKER_HALF_OPEN) ||
           (from == TERN_BREAKER_HALF_OPEN &&
            (to == TERN_BREAKER_CLOSED || to == TERN_BREAKER_OPEN));
}

/* Under the lock: what holds in each state. */
static bool state_ok(const tern_breaker *b)
{
    switch (b->state) {
    case TERN_BREAKER_CLOSED:
    case TERN_BREAKER_OPEN:
        return b->trials_out == 0 && b->trials_ok == 0;
    case TERN_BREAKER_HALF_OPEN:
        return b->trials_ok <= b->trials_out && b->trials_out <= b->o.half_open_max;
    }
    return false;
}

static tern_breaker_state move(tern_breaker *b, tern_breaker_state to, int64_t now)
{
    tern_breaker_state from = b->state;
    TERN_ASSERT(legal_move(from, to));
    TERN_ASSERT(state_ok(b));
    b->state = to;
    b->gen++;
    b->trials_out = b->trials_ok = 0;
    switch (to) {
    case TERN_BREAKER_OPEN:
        b->open_until = now + b->o.open_duration;
        tern__count(&b->opened);
        break;
    case TERN_BREAKER_HALF_OPEN:
        tern__count(&b->half_opened);
        break;
    case TERN_BREAKER_CLOSED:
        tern__window_clear(&b->win);
        tern__count(&b->closed);
        break;
    }
    return from;
}

static void notify(tern_breaker *b, tern_breaker_state from, tern_breaker_state to)
{
    if (b->o.on_change && from != to)
        b->o.on_change(from, to, b->o.change_arg);
}

int tern_breaker_allow(tern_breaker *b, tern_breaker_ticket *ticket)
{
    TERN_CHECK_ARG(b);
    int64_t now = tern__resil_now(b->o.now, b->o.clock_arg);
    tern_breaker_state from = TERN_BREAKER_CLOSED, to = TERN_BREAKER_CLOSED;
    int rc = 0;
    tern__spin_lock(&b->lock);
    TERN_ASSERT(state_ok(b) && b->gen != 0);
    if (b->state == TERN_BREAKER_OPEN && now >= b->open_until) {
        from = move(b, TERN_BREAKER_HALF_OPEN, now);
        to = TERN_BREAKER_HALF_OPEN;
    }
    switch (b->state) {
    case TERN_BREAKER_CLOSED:
        break;
    case TERN_BREAKER_OPEN:
        rc = -EAGAIN;
        break;
    case TERN_BREAKER_HALF_OPEN:
        if (b->trials_out < b->o.half_open_max)
            b->trials_out++;
        else
            rc = -EAGAIN;
        break;
    }
    TERN_ASSERT(state_ok(b));
    *ticket = b->gen;
    tern__spin_unlock(&b->lock);
    tern__count(rc == 0 ? &b->allowed : &b->rejected);
    notify(b, from, to);
    return rc;
}

void tern_breaker_record(tern_breaker *b, tern_breaker_ticket ticket, bool success)
{
    TERN_CHECK_ARG(b);
    int64_t now = tern__resil_now(b->o.now, b->o.clock_arg);
    tern_breaker_state from = TERN_BREAKER_CLOSED, to = TERN_BREAKER_CLOSED;
    tern__count(success ? &b->successes : &b->failures);
    tern__spin_lock(&b->lock);
    if (ticket != b->gen) {
        /* admitted in an earlier state: stale evidence */
    } else if (b->state == TERN_BREAKER_CLOSED) {
        tern__window_add(&b->win, now, !success, success);
        uint64_t fail, ok;
        tern__window_sum(&b->win, now, &fail, &ok);
        uint64_t total = fail + ok;
        if (total >= b->o.min_requests &&
            (double)fail >= b->o.failure_ratio * (double)total) {
            from = move(b, TERN_BREAKER_OPEN, now);
            to = TERN_BREAKER_OPEN;
        }
    } else if (b->state == TERN_BREAKER_HALF_OPEN) {
        TERN_ASSERT(b->trials_ok < b->trials_out);     /* this outcome's trial is out */
        if (!success) {
            from = move(b, TERN_BREAKER_OPEN, now);
            to = TERN_BREAKER_OPEN;
        } else if (++b->trials_ok == b->o.half_open_max) {
            from = move(b, TERN_BREAKER_CLOSED, now);
            to = TERN_BREAKER_CLOSED;
        }
    }
    TERN_ASSERT(state_ok(b));
    tern__spin_unlock(&b->lock);
    notify(b, from, to);
}

tern_breaker_state tern_breaker_get_state(tern_breaker *b)
{
    TERN_CHECK_ARG(b);
    int64_t now = tern__resil_now(b->o.now, b->o.clock_arg);
    tern__spin_lock(&b->lock);
    tern_breaker_state s = b->state;
    if (s == TERN_BREAKER_OPEN && now >= b->open_until)
        s = TERN_BREAKER_HALF_OPEN;     /* what the next allow will see */
    tern__spin_unlock(&b->lock);
    return s;
}

int tern_breaker_stats(const tern_breaker *b, struct tern_breaker_stats *out)
{
    TERN_CHECK_ARG(b);
    TERN_CHECK_ARG(out);
    out->allowed = tern__load(&b->allowed);
    out->rejected = tern__load(&b->rejected);
    out->successes = tern__load(&b->successes);
    out->failures = tern__load(&b->failures);
    out->opened = tern__load(&b->opened);
    out->half_opened = tern__load(&b->half_opened);
    out->closed = tern__load(&b->closed);
    return 0;
}
