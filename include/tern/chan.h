/*
 * tern/chan.h - Go channels and select for coroutines.
 *
 * Semantics are Go's: an unbuffered channel hands each value from sender to
 * receiver directly; a buffered one holds up to `cap` values; receivers
 * drain the buffer after close() and then get ok = false; a NULL channel
 * (Go's nil channel) blocks until the call's context ends, forever without
 * one (so a select case on NULL never fires).  Where Go panics, tern
 * returns an error: send on a closed channel gives -EPIPE, closing a
 * closed channel -EALREADY; closing a NULL channel aborts.
 *
 * Elements are copied by value (elem_size bytes); pass pointers to share.
 *
 * Blocking calls take a tern_ctx last (NULL: unbounded) and return
 * -ECANCELED or -ETIMEDOUT when it ends first.
 *
 * Ownership: tern_chan_new() gives the caller the channel; tern_chan_free()
 * is explicit.  Call it only when no coroutine
 * is blocked on the channel or will use it again, typically after the
 * last sender closed it and the receivers saw ok = false.  Values still
 * buffered are dropped (if they are pointers, drain them first).
 *
 * All functions are safe from any coroutine on any P.  Blocking functions
 * must be called from a coroutine; the try_ forms from anywhere.
 */
#ifndef TERN_CHAN_H
#define TERN_CHAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tern_chan tern_chan;
typedef struct tern_ctx tern_ctx;

/* A channel of elem_size-byte values (1..65536) buffering cap of them
 * (0: unbuffered).  0 with *out set, or -EINVAL / -ENOMEM with *out NULL.
 * The caller owns the channel and frees it with tern_chan_free().  (A
 * failed make is never a nil channel by accident: check the result.) */
int tern_chan_new(size_t elem_size, size_t cap, tern_chan **out);

/* See the header comment for when this is allowed.  NULL is a no-op. */
void tern_chan_free(tern_chan *ch);

/* Send a copy of *elem, blocking until a receiver or buffer space takes it
 * or ctx (NULL: unbounded) is done.  0; -EPIPE if the channel is (or
 * becomes, while we wait) closed; -ECANCELED or -ETIMEDOUT when ctx is
 * done first (nothing is sent then); -ENOMEM only in a TERN_STACK_SHARED
 * coroutine whose element is too large for the waiter's own buffer.  ch
 * NULL: blocks until ctx is done (forever without one), as Go's nil
 * channel. */
int tern_chan_send(tern_chan *ch, const void *elem, tern_ctx *ctx);

/* Receive into *elem (may be NULL to discard).  0 with *ok = true for a
 * value; 0 with *ok = false (and *elem zeroed) once the channel is closed
 * and drained; -ECANCELED or -ETIMEDOUT when ctx (NULL: unbounded) is done
 * first (nothing is received then); -ENOMEM as for tern_chan_send.  ok
 * may be NULL.  ch NULL: as for tern_chan_send. */
int tern_chan_recv(tern_chan *ch, void *elem, bool *ok, tern_ctx *ctx);

/* Non-blocking forms: -EAGAIN instead of waiting (a NULL channel: always
 * -EAGAIN). */
int tern_chan_try_send(tern_chan *ch, const void *elem);
int tern_chan_try_recv(tern_chan *ch, void *elem, bool *ok);

/* Close: pending and future receivers drain the buffer, then get
 * ok = false; blocked senders get -EPIPE.  0, -EALREADY if already closed.
 * ch NULL aborts (Go panics closing a nil channel). */
int tern_chan_close(tern_chan *ch);

size_t tern_chan_len(tern_chan *ch);   /* values buffered now (NULL: 0) */
size_t tern_chan_cap(tern_chan *ch);   /* NULL: 0 */

/* ---- select ------------------------------------------------------------ */

typedef enum tern_chan_op {
    TERN_CHAN_RECV = 0,
    TERN_CHAN_SEND = 1,
} tern_chan_op;

#define TERN_CHAN_SELECT_MAX 256

typedef struct tern_chan_case {
    tern_chan *ch;              /* NULL: this case never fires */
    tern_chan_op op;
    void *elem;                 /* SEND: value to send; RECV: where to
                                   receive (NULL: discard) */
    bool ok;                    /* out: RECV: false if closed and drained;
                                   SEND: false if the channel was closed
                                   (where Go would panic), true if sent */
} tern_chan_case;

/* Wait until one case can proceed, perform it and return its index.
 * Among several ready cases one is chosen uniformly at random (Go's
 * fairness).  ctx (NULL: unbounded) bounds the wait: -ECANCELED or
 * -ETIMEDOUT when it is done first.  A SEND case on a closed channel is
 * ready: it fires with its `ok` false.  n may be 0 (then it waits for ctx
 * only).  -EINVAL for n < 0 or n > TERN_CHAN_SELECT_MAX; -ENOMEM when
 * its wait records cannot be had (nothing was done).
 *
 *     tern_chan_case cs[] = {
 *         {.ch = jobs, .op = TERN_CHAN_RECV, .elem = &job},
 *         {.ch = tern_ctx_done(ctx), .op = TERN_CHAN_RECV},
 *     };
 *     int i = tern_chan_select(cs, 2, NULL);
 */
int tern_chan_select(tern_chan_case *cases, int n, tern_ctx *ctx);

/* Go's select with `default`: perform a ready case and return its index,
 * or return -EAGAIN at once if none is ready. */
int tern_chan_try_select(tern_chan_case *cases, int n);

/* ---- timers on channels (Go's time.After, time.NewTimer, time.NewTicker) ---
 *
 * Each delivers int64_t values (tern_now() when it fired) on a channel of
 * its own, a select case like any other, so "a job, or 50 ms, or the
 * context's end" is one select:
 *
 *     tern_time_timer *t;
 *     if ((err = tern_time_timer_new(50 * TERN_MS, &t)) != 0)
 *         return err;
 *     tern_chan_case cs[] = {
 *         {.ch = jobs, .op = TERN_CHAN_RECV, .elem = &job},
 *         {.ch = tern_time_timer_chan(t), .op = TERN_CHAN_RECV},
 *         {.ch = tern_ctx_done(ctx), .op = TERN_CHAN_RECV},
 *     };
 *     int i = tern_chan_select(cs, 3, NULL);
 *     tern_time_timer_free(t);
 *
 * Stop and Reset follow Go 1.23: once they return, no value from before
 * them can be received (an unreceived one is dropped), and Stop returns
 * true if the timer's value had not been received yet (it was pending or
 * sitting in the channel).  Unlike Go 1.23, the channel reports cap 1
 * and len 1 while a value sits in it.
 *
 * Ownership: the creator owns the timer and frees it (stopping it) with
 * _free, which also frees its channel: no coroutine may be blocked on the
 * channel then.  The channel of tern_time_after is freed with
 * tern_chan_free (which stops its timer); freeing any other timer's channel
 * that way aborts.  Do not close a timer's channel.  All need a running
 * runtime (-ESRCH otherwise) and may be called from any coroutine; the
 * timer fires on a worker even if nobody waits.  A NULL timer aborts,
 * naming the function. */
typedef struct tern_time_timer tern_time_timer;
typedef struct tern_time_ticker tern_time_ticker;

/* A channel that receives one value ns from now (<= 0: at once).  0 with
 * *out set; -ENOMEM, -ESRCH with *out NULL.  Free it with tern_chan_free
 * (before or after it fired). */
int tern_time_after(int64_t ns, tern_chan **out);

/* A one-shot timer firing ns from now (<= 0: at once).  0, -ENOMEM or
 * -ESRCH; *out NULL on failure. */
int tern_time_timer_new(int64_t ns, tern_time_timer **out);
/* Its channel, owned by the timer. */
tern_chan *tern_time_timer_chan(tern_time_timer *t);
/* Stop it: true if its value had not been received (it was pending, or
 * waiting in the channel, from which it is removed), false if it had
 * been received or the timer was stopped already. */
bool tern_time_timer_stop(tern_time_timer *t);
/* Stop, then fire ns from now.  Returns what tern_time_timer_stop would. */
bool tern_time_timer_reset(tern_time_timer *t, int64_t ns);
void tern_time_timer_free(tern_time_timer *t);         /* NULL: no-op */

/* A ticker: a value every period ns (> 0, else -EINVAL), the first one
 * period from now.  A receiver that falls behind misses ticks (the
 * channel holds one), as in Go; the next tick stays on the period's grid. */
int tern_time_ticker_new(int64_t period, tern_time_ticker **out);
tern_chan *tern_time_ticker_chan(tern_time_ticker *t);
/* No more ticks; an unreceived one is dropped. */
void tern_time_ticker_stop(tern_time_ticker *t);
/* Stop, drop an unreceived tick, and tick every period from now.  0 or
 * -EINVAL (period <= 0: nothing changes). */
int tern_time_ticker_reset(tern_time_ticker *t, int64_t period);
void tern_time_ticker_free(tern_time_ticker *t);       /* NULL: no-op */

/* ---- live objects ---------------------------------------------------------
 * How many of each csp object exist now in the process (made and not yet
 * freed): a count that only grows under a steady load is a leak (a
 * request context never freed costs a few hundred bytes a request).
 * kit's /debug/vars shows them; debug builds (TERN_ASSERTIONS) also report,
 * as tern_run returns, those made during the run and never freed. */
struct tern_csp_stats {
    uint64_t chans;             /* tern_chan_new, timers' channels included */
    uint64_t contexts;          /* tern_ctx_with_* (the background excluded) */
    uint64_t timers;            /* tern_time_after, _timer_new, _ticker_new */
    uint64_t pools;             /* tern_pool_new */
};
/* 0.  Any thread; a racy snapshot. */
int tern_csp_stats(struct tern_csp_stats *out);

#ifdef __cplusplus
}
#endif
#endif
