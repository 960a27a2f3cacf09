/*
 * ring.c - the log's bounded ring and the thread that drains it.
 *
 * Model: many producers (any thread, usually coroutines on the workers)
 * copy whole lines into a byte ring under a spinlock held only for the
 * memcpy; one writer thread hands everything between `tail` and `head` to
 * the fd with one writev(2) and then moves `tail`.  Producers never wait
 * for the writer: a line that does not fit is dropped and counted.
 *
 * Invariants: head and tail count bytes ever put / ever written, so
 * 0 <= head - tail <= cap; bytes in [tail, head) are complete lines (head
 * moves after the copy, under the lock); only the writer moves tail, and
 * only after write(2) returned, so producers never overwrite unwritten
 * bytes.  dropped_reported <= dropped.
 *
 * The writer paces itself: after a pass that wrote something it waits
 * PACE_NS before the next, so one writev carries every line of that
 * interval and the producers' cache line (head) is read once per pass
 * rather than once per line; a producer that fills the ring past half
 * cuts the wait short.  PACE_NS is 10 ms: each pass is a wake-up that
 * preempts a worker on a busy machine (at 1 ms, svc under load made
 * twice the context switches per request with its access log on), and a
 * line reaching the file 10 ms late matters to no reader.  Once caught up the writer lingers LINGER_NS more
 * before it declares itself asleep, and producers wake it only then:
 * under steady load producers make no syscall.  `sleeping` says what
 * wakes the writer: 0 nothing (it is running), SLEEP_PACING a ring past
 * half full (a missed wake costs at most PACE_NS), SLEEP_IDLE any line.
 * The idle handshake goes through the producers' lock: the writer stores
 * SLEEP_IDLE and re-reads head under it, a producer stores head and reads
 * sleeping under it, so one of them sees the other (no seq_cst store on
 * every line).  A futex timeout backs it up anyway.
 *
 * fork(2): the child has a copy of the ring but no writer, and the copy
 * may be in any state (its lock held by a producer that does not exist in
 * the child, a line half copied).  Its unwritten lines are the parent's,
 * which the parent's writer writes.  So the child never touches it again:
 * log.c's atfork child handler calls tern__log_ring_abandon, which only
 * moves `cur` to the `orphans` list (no lock, no malloc or free in the
 * handler), and the child's next start or stop frees the orphans: in the
 * child nothing else can reach them.  Taking the producers' lock in a
 * prepare handler is not needed for that, and would make every fork wait
 * for producers (or deadlock, forked from a signal handler that
 * interrupted one).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "base/wall.h"
#include "base/spin.h"
#include "base/thread.h"
#include "base/check.h"
#include "kit/log/internal.h"
#include "tern/context.h"
#include "tern/runtime.h"

#define PACE_NS (10 * 1000 * 1000)
#define LINGER_NS (1000 * 1000)
#define SLEEP_MAX_S 1
#define SLEEP_PACING 2
#define SLEEP_IDLE 1

typedef struct ring {
    alignas(64) tern__spin lock;         /* producers' line */
    _Atomic uint64_t head;
    _Atomic uint64_t lines;
    _Atomic uint64_t dropped;
    alignas(64) _Atomic uint64_t tail;  /* the writer's line */
    _Atomic uint64_t dropped_reported;
    _Atomic uint64_t write_errors;
    atomic_int sleeping;                /* futex word: 0, SLEEP_PACING or SLEEP_IDLE */
    atomic_bool stop;
    atomic_int refs;                    /* the writer's and the owner's */
    int fd;
    size_t cap;                         /* a power of two */
    char *buf;
    pthread_t thread;
    struct ring *orphan_next;
} ring;

/* producers and the writer each dirty their own cache line */
_Static_assert(offsetof(ring, tail) / 64 != offsetof(ring, dropped) / 64,
               "head and tail on separate lines");
/* the smallest ring holds the longest line */
_Static_assert(TERN_LOG_LINE_MAX <= 4096, "a line fits the smallest ring");
_Static_assert(SLEEP_IDLE != 0 && SLEEP_PACING != 0 && SLEEP_IDLE != SLEEP_PACING,
               "sleeping's states are distinct and nonzero");

static _Atomic(ring *) cur;
static ring *orphans;           /* inherited across fork: see above */

static void ring_unref(ring *r)
{
    int refs = atomic_fetch_sub(&r->refs, 1);
    TERN_ASSERT(refs >= 1 && refs <= 2);    /* the writer's and the owner's */
    if (refs == 1) {
        free(r->buf);
        free(r);
    }
}

static void futex_wake(atomic_int *w)
{
    syscall(SYS_futex, (int *)w, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

/* Wake the writer whatever it waits for (flush, a full ring, stop). */
static void kick(ring *r)
{
    if (atomic_load(&r->sleeping) && atomic_exchange(&r->sleeping, 0))
        futex_wake(&r->sleeping);
}

/* After a put that left `used` bytes in the ring, with `s` the value of
 * sleeping read under the lock: wake the writer if it sleeps for want of
 * lines, or paces while the ring fills up. */
static void wake(ring *r, int s, size_t used)
{
    if ((s == SLEEP_IDLE || (s == SLEEP_PACING && used > r->cap / 2)) &&
        atomic_exchange(&r->sleeping, 0))
        futex_wake(&r->sleeping);
}

/* Sleep on `sleeping` (set to `why` by the caller) for at most ns. */
static void futex_sleep(ring *r, int why, long ns)
{
    struct timespec ts = {ns / 1000000000, ns % 1000000000};
    syscall(SYS_futex, (int *)&r->sleeping, FUTEX_WAIT_PRIVATE, why, &ts, NULL, 0);
    atomic_store(&r->sleeping, 0);
}

static void sleep_ns(long ns)
{
    struct timespec ts = {0, ns};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* Write all of iov or give up on an error other than EINTR. */
static void write_all(ring *r, struct iovec *iov, int n)
{
    while (n > 0) {
        ssize_t w = writev(r->fd, iov, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            atomic_fetch_add(&r->write_errors, 1);
            return;
        }
        while (n > 0 && (size_t)w >= iov->iov_len) {
            w -= (ssize_t)iov->iov_len;
            iov++;
            n--;
        }
        TERN_ASSERT(n > 0 ? (size_t)w < iov->iov_len : w == 0);
        if (n > 0) {
            iov->iov_base = (char *)iov->iov_base + w;
            iov->iov_len -= (size_t)w;
        }
    }
}

static void write_span(ring *r, uint64_t t, uint64_t h)
{
    TERN_ASSERT(h - t <= r->cap);
    size_t off = (size_t)(t & (r->cap - 1)), len = (size_t)(h - t);
    size_t first = len < r->cap - off ? len : r->cap - off;
    TERN_ASSERT(first <= len && len - first <= off);  /* the wrapped part ends before off */
    struct iovec iov[2] = {{r->buf + off, first}, {r->buf, len - first}};
    write_all(r, iov, len > first ? 2 : 1);
}

static void write_drop_report(ring *r, uint64_t n)
{
    char line[TERN_LOG_LINE_MAX];
    tern_log_field f = TERN_LOG_INT("dropped", (int64_t)n);
    static const char msg[] = "log lines dropped";
    size_t len = tern__log_format(line, tern__wall_ns(), TERN_LOG_WARN, msg, sizeof msg - 1, NULL,
                                 &f, 1);
    struct iovec iov = {line, len};
    write_all(r, &iov, 1);
}

/* Write what is there; false if there was nothing. */
static bool drain(ring *r)
{
    uint64_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
    uint64_t h = atomic_load_explicit(&r->head, memory_order_acquire);
    TERN_ASSERT(h - t <= r->cap);       /* 0 <= head - tail <= cap */
    if (h != t) {
        write_span(r, t, h);
        atomic_store_explicit(&r->tail, h, memory_order_release);
        return true;
    }
    /* Caught up: now say what was lost meanwhile. */
    uint64_t rep = atomic_load_explicit(&r->dropped_reported, memory_order_relaxed);
    uint64_t d = atomic_load(&r->dropped);
    TERN_ASSERT(rep <= d);              /* dropped_reported <= dropped */
    if (d != rep) {
        write_drop_report(r, d - rep);
        atomic_store_explicit(&r->dropped_reported, d, memory_order_release);
        return true;
    }
    return false;
}

static bool idle(ring *r)
{
    return atomic_load(&r->head) == atomic_load_explicit(&r->tail, memory_order_relaxed) &&
           atomic_load(&r->dropped) == atomic_load(&r->dropped_reported);
}

static void *writer_main(void *arg)
{
    ring *r = arg;
    for (;;) {
        if (drain(r)) {
            if (atomic_load(&r->stop))
                continue;       /* stopping: write the rest now */
            atomic_store(&r->sleeping, SLEEP_PACING);
            futex_sleep(r, SLEEP_PACING, PACE_NS);
            continue;
        }
        if (atomic_load(&r->stop))
            break;
        sleep_ns(LINGER_NS);
        if (!idle(r))
            continue;
        tern__spin_lock(&r->lock);
        atomic_store_explicit(&r->sleeping, SLEEP_IDLE, memory_order_relaxed);
        bool still = idle(r);
        tern__spin_unlock(&r->lock);
        if (!still || atomic_load(&r->stop)) {
            atomic_store(&r->sleeping, 0);
            continue;
        }
        futex_sleep(r, SLEEP_IDLE, (long)SLEEP_MAX_S * 1000000000);
    }
    ring_unref(r);
    return NULL;
}

/* Free the rings fork(2) left behind: their writers live in another
 * process, so no one else can reach them here. */
static void reap_orphans(void)
{
    while (orphans) {
        ring *r = orphans;
        orphans = r->orphan_next;
        free(r->buf);
        free(r);
    }
}

int tern__log_ring_start(int fd, size_t bytes)
{
    if (atomic_load(&cur))
        return -EALREADY;
    reap_orphans();
    size_t cap = 4096;
    while (cap < bytes)
        cap <<= 1;
    ring *r = calloc(1, sizeof *r);
    if (!r)
        return -ENOMEM;
    r->buf = malloc(cap);
    if (!r->buf) {
        free(r);
        return -ENOMEM;
    }
    TERN_ASSERT(cap >= bytes && (cap & (cap - 1)) == 0);  /* a power of two */
    r->cap = cap;
    r->fd = fd;
    atomic_init(&r->refs, 2);
    /* The writer must not take the process's signals (SIGHUP, SIGTERM are
     * waited for elsewhere), and EPIPE beats SIGPIPE for a closed reader. */
    int e = tern__thread_start_quiet(&r->thread, writer_main, r);
    if (e) {
        free(r->buf);
        free(r);
        return e;
    }
    atomic_store(&cur, r);
    return 0;
}

bool tern__log_ring_running(void)
{
    return atomic_load_explicit(&cur, memory_order_acquire) != NULL;
}

bool tern__log_ring_abandon(void)
{
    ring *r = atomic_load_explicit(&cur, memory_order_relaxed);
    if (!r)
        return false;
    r->orphan_next = orphans;
    orphans = r;
    atomic_store_explicit(&cur, NULL, memory_order_relaxed);
    return true;
}

void tern__log_ring_stop(void)
{
    reap_orphans();
    ring *r = atomic_exchange(&cur, NULL);
    if (!r)
        return;
    atomic_store(&r->stop, true);
    atomic_store(&r->sleeping, 0);
    futex_wake(&r->sleeping);
    /* A writer stuck in write(2) (a reader that never reads) keeps the
     * ring alive and frees it when it gets out. */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 1;
    if (pthread_timedjoin_np(r->thread, NULL, &ts) != 0)
        pthread_detach(r->thread);
    ring_unref(r);
}

int tern__log_ring_put(const char *line, size_t len)
{
    ring *r = atomic_load_explicit(&cur, memory_order_acquire);
    if (!r)
        return -ESRCH;
    /* only whole lines go in: [tail, head) is complete lines */
    TERN_ASSERT(len > 0 && len <= TERN_LOG_LINE_MAX && line[len - 1] == '\n');
    tern__spin_lock(&r->lock);
    uint64_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
    uint64_t t = atomic_load_explicit(&r->tail, memory_order_acquire);
    TERN_ASSERT(h - t <= r->cap);
    if (len > r->cap - (size_t)(h - t)) {
        /* counted under the lock, so that the writer's idle check sees it */
        atomic_store_explicit(&r->dropped,
                              atomic_load_explicit(&r->dropped, memory_order_relaxed) + 1,
                              memory_order_relaxed);
        tern__spin_unlock(&r->lock);
        kick(r);
        return -EAGAIN;
    }
    size_t off = (size_t)(h & (r->cap - 1));
    size_t first = len < r->cap - off ? len : r->cap - off;
    memcpy(r->buf + off, line, first);
    memcpy(r->buf, line + first, len - first);
    TERN_ASSERT(h + len - t <= r->cap);   /* never over unwritten bytes */
    atomic_store_explicit(&r->lines, atomic_load_explicit(&r->lines, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    atomic_store_explicit(&r->head, h + len, memory_order_release);
    int sl = atomic_load_explicit(&r->sleeping, memory_order_relaxed);   /* the handshake */
    tern__spin_unlock(&r->lock);
    wake(r, sl, (size_t)(h + len - t));
    return 0;
}

int tern__log_ring_flush(int64_t deadline, tern_ctx *ctx)
{
    ring *r = atomic_load_explicit(&cur, memory_order_acquire);
    if (!r)
        return -ESRCH;
    uint64_t target = atomic_load(&r->head), drops = atomic_load(&r->dropped);
    for (;;) {
        if (atomic_load(&r->tail) >= target && atomic_load(&r->dropped_reported) >= drops)
            return 0;
        if (deadline != TERN_FOREVER && tern_now() >= deadline)
            return -ETIMEDOUT;
        int e = ctx ? tern_ctx_err(ctx) : 0;
        if (e < 0)
            return e;
        kick(r);
        if (tern_id())
            tern_sleep(100 * TERN_US);
        else
            sleep_ns(100 * 1000);
    }
}

void tern__log_ring_stats(struct tern_log_stats *st)
{
    ring *r = atomic_load_explicit(&cur, memory_order_acquire);
    *st = (struct tern_log_stats){0};
    if (!r)
        return;
    st->lines = atomic_load_explicit(&r->lines, memory_order_relaxed);
    st->dropped = atomic_load_explicit(&r->dropped, memory_order_relaxed);
    st->write_errors = atomic_load_explicit(&r->write_errors, memory_order_relaxed);
}
