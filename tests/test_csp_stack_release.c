/* test_csp_stack_release.c - a coroutine started with release_stack and
 * parked long has its stack's pages given back (tern_run_options.
 * stack_release) and resumes intact, woken by
 * every kind of wait: sleep, channels (a value delivered into, or taken
 * from, a released stack), select, mutexes, cond, semaphore, waitgroup, fd
 * wait, context cancel; and releases racing with wakes. */
#include "check.h"

#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tern/chan.h"
#include "tern/context.h"
#include "tern/net.h"
#include "tern/sync.h"

enum { K_SLEEP, K_RECV, K_SEND, K_BRECV, K_SELECT, K_MUTEX, K_RWMUTEX, K_COND, K_SEM, K_WG, K_FD,
       K_CTX, K_NKINDS };
static const char *kind_name[] = {"sleep", "recv", "send", "brecv", "select", "mutex",
                                  "rwmutex", "cond", "sem", "wg", "fd", "ctx"};

typedef struct val {
    uint64_t w[40];             /* 320 bytes, more than a node's bounce */
} val;

static void val_fill(val *v, uint64_t seed)
{
    for (int i = 0; i < 40; i++)
        v->w[i] = seed * 1000003u + (uint64_t)i;
}

static bool val_ok(const val *v, uint64_t seed)
{
    for (int i = 0; i < 40; i++)
        if (v->w[i] != seed * 1000003u + (uint64_t)i)
            return false;
    return true;
}

typedef struct job {
    int kind;
    tern_chan *ch, *ch2, *bch;
    tern_mutex mu;
    tern_rwmutex rw;
    tern_cond cond;
    bool flag;
    tern_sem sem;
    tern_waitgroup wg;
    int pfd[2];
    tern_ctx *ctx;
    atomic_int parked, done;
    int result;
} job;

static uint64_t released(void)
{
    struct tern_runtime_stats st;
    CHECK(tern_runtime_stats(&st, NULL, 0) > 0);
    return st.stacks_released;
}

static int park_here(job *j)
{
    val v;
    atomic_store(&j->parked, 1);
    switch (j->kind) {
    case K_SLEEP:
        tern_sleep(30 * TERN_MS);
        return 0;
    case K_RECV:
        memset(&v, 0, sizeof v);
        CHECK_EQ(tern_chan_recv(j->ch, &v, NULL, NULL), 0);
        return val_ok(&v, 7) ? 0 : -1;
    case K_SEND:
        val_fill(&v, 8);
        return tern_chan_send(j->ch, &v, NULL);
    case K_BRECV:
        memset(&v, 0, sizeof v);
        CHECK_EQ(tern_chan_recv(j->bch, &v, NULL, NULL), 0);
        return val_ok(&v, 9) ? 0 : -1;
    case K_SELECT: {
        val v2;
        memset(&v, 0, sizeof v);
        memset(&v2, 0, sizeof v2);
        tern_chan_case c[2] = {{.ch = j->ch, .op = TERN_CHAN_RECV, .elem = &v},
                               {.ch = j->ch2, .op = TERN_CHAN_RECV, .elem = &v2}};
        int r = tern_chan_select(c, 2, NULL);
        CHECK_EQ(r, 1);
        return val_ok(&v2, 10) ? 0 : -1;
    }
    case K_MUTEX:
        tern_mutex_lock(&j->mu);
        tern_mutex_unlock(&j->mu);
        return 0;
    case K_RWMUTEX:
        tern_rwmutex_rlock(&j->rw);
        tern_rwmutex_runlock(&j->rw);
        return 0;
    case K_COND:
        tern_mutex_lock(&j->mu);
        while (!j->flag)
            CHECK_EQ(tern_cond_wait(&j->cond, &j->mu, NULL), 0);
        tern_mutex_unlock(&j->mu);
        return 0;
    case K_SEM:
        CHECK_EQ(tern_sem_acquire(&j->sem, 1, NULL), 0);
        tern_sem_release(&j->sem, 1);
        return 0;
    case K_WG:
        return tern_waitgroup_wait(&j->wg, NULL);
    case K_FD: {
        CHECK_EQ(tern_fd_wait(j->pfd[0], TERN_FD_READ, TERN_FOREVER), 0);
        char c;
        CHECK_EQ(read(j->pfd[0], &c, 1), 1);
        return c == 'x' ? 0 : -1;
    }
    case K_CTX:
        return tern_ctx_sleep(60 * TERN_SEC, j->ctx);
    }
    return -1;
}

/* Frames with big arrays spanning several pages above the park. */
static int deep(job *j, int depth)
{
    volatile uint64_t big[700];         /* 5600 bytes */
    for (int i = 0; i < 700; i++)
        big[i] = (uint64_t)depth * 7919u + (uint64_t)i;
    int r = depth ? deep(j, depth - 1) : park_here(j);
    for (int i = 0; i < 700; i++)
        if (big[i] != (uint64_t)depth * 7919u + (uint64_t)i)
            return -100 - depth;
    return r;
}

static int parker(void *arg)
{
    job *j = arg;
    j->result = deep(j, 5);
    atomic_store(&j->done, 1);
    return 0;
}

static void wait_released(uint64_t n, const char *what)
{
    int64_t end = tern_now() + 20 * TERN_SEC;
    while (released() < n) {
        if (tern_now() > end) {
            fprintf(stderr, "%s: its stack was never released\n", what);
            abort();
        }
        tern_sleep(TERN_MS);
    }
}

static int each_kind_main(void *arg)
{
    (void)arg;
    for (int k = 0; k < K_NKINDS; k++) {
        job j = {.kind = k, .sem = TERN_SEM_INIT(1)};
        CHECK_EQ(tern_chan_new(sizeof(val), 0, &j.ch), 0);
        CHECK_EQ(tern_chan_new(sizeof(val), 0, &j.ch2), 0);
        CHECK_EQ(tern_chan_new(sizeof(val), 1, &j.bch), 0);
        CHECK_EQ(pipe(j.pfd), 0);
        CHECK_EQ(tern_ctx_with_cancel(tern_ctx_background(), &j.ctx), 0);
        tern_mutex_lock(&j.mu);
        if (k == K_COND)
            tern_mutex_unlock(&j.mu);
        tern_rwmutex_lock(&j.rw);
        CHECK_EQ(tern_sem_acquire(&j.sem, 1, NULL), 0);
        tern_waitgroup_add(&j.wg, 1);
        tern_go_options go = {.release_stack = true};
        CHECK_EQ(tern_go_opts(parker, &j, &go, NULL), 0);
        wait_released(1, kind_name[k]);
        CHECK(!atomic_load(&j.done));
        val v;
        switch (k) {
        case K_RECV:
            val_fill(&v, 7);
            CHECK_EQ(tern_chan_send(j.ch, &v, NULL), 0);
            break;
        case K_SEND:
            memset(&v, 0, sizeof v);
            CHECK_EQ(tern_chan_recv(j.ch, &v, NULL, NULL), 0);
            CHECK(val_ok(&v, 8));       /* read from the released stack */
            break;
        case K_BRECV:
            val_fill(&v, 9);
            CHECK_EQ(tern_chan_send(j.bch, &v, NULL), 0);
            break;
        case K_SELECT:
            val_fill(&v, 10);
            CHECK_EQ(tern_chan_send(j.ch2, &v, NULL), 0);
            break;
        case K_COND:
            tern_mutex_lock(&j.mu);
            j.flag = true;
            tern_cond_signal(&j.cond);
            tern_mutex_unlock(&j.mu);
            break;
        case K_FD:
            CHECK_EQ(write(j.pfd[1], "x", 1), 1);
            break;
        case K_CTX:
            tern_ctx_cancel(j.ctx);
            break;
        default:
            break;
        }
        if (k != K_COND)
            tern_mutex_unlock(&j.mu);
        tern_rwmutex_unlock(&j.rw);
        tern_sem_release(&j.sem, 1);
        tern_waitgroup_done(&j.wg);
        while (!atomic_load(&j.done))
            tern_sleep(TERN_MS);
        if (j.result != (k == K_CTX ? -ECANCELED : 0))
            fprintf(stderr, "%s: result %d\n", kind_name[k], j.result);
        CHECK_EQ(j.result, k == K_CTX ? -ECANCELED : 0);
        CHECK_EQ(released(), 0);
        tern_chan_free(j.ch);
        tern_chan_free(j.ch2);
        tern_chan_free(j.bch);
        close(j.pfd[0]);
        close(j.pfd[1]);
        tern_ctx_free(j.ctx);
    }
    return 0;
}

static void every_wait_resumes_intact(void)
{
    tern_run_options o = {.procs = 2, .stack_release = TERN_MS};
    CHECK_EQ(tern_run_opts(each_kind_main, NULL, &o), 0);
}

static const char *release_mode(void)
{
    struct tern_runtime_stats st;
    CHECK(tern_runtime_stats(&st, NULL, 0) > 0);
    return st.stack_release;
}

static bool any_released(void)
{
    return strcmp(release_mode(), "any") == 0;
}

static uint64_t release_faults(void)
{
    struct tern_runtime_stats st;
    CHECK(tern_runtime_stats(&st, NULL, 0) > 0);
    return st.stack_release_faults;
}

/* Not released: a plain tern_wait (its park site promises nothing about
 * its stack), a coroutine with keep_stack, and, where guard markers do not
 * work ("promised" mode), one that did not opt in. */
static atomic_int s_plain_done;

static int default_sleeper(void *arg)
{
    (void)arg;
    tern_sleep(30 * TERN_MS);
    atomic_fetch_add(&s_plain_done, 1);
    return 0;
}

static int plain_waiter(void *arg)
{
    (void)arg;
    tern_ticket t = tern_wait_prepare();
    CHECK_EQ(tern_wait(t, "plain", tern_now() + 30 * TERN_MS), -ETIMEDOUT);
    atomic_fetch_add(&s_plain_done, 1);
    return 0;
}

static int plain_main(void *arg)
{
    (void)arg;
    if (!any_released())
        CHECK_EQ(tern_go(default_sleeper, NULL), 0);
    else
        atomic_fetch_add(&s_plain_done, 1);
    CHECK_EQ(tern_go_opts(default_sleeper, NULL,
                          &(tern_go_options){.keep_stack = true, .release_stack = true}, NULL),
             0);
    CHECK_EQ(tern_go_opts(plain_waiter, NULL, &(tern_go_options){.release_stack = true}, NULL), 0);
    while (atomic_load(&s_plain_done) < 3) {
        CHECK_EQ(released(), 0);
        tern_sleep(TERN_MS);
    }
    return 0;
}

static void plain_wait_is_not_released(void)
{
    tern_run_options o = {.procs = 1, .stack_release = 1};
    CHECK_EQ(tern_run_opts(plain_main, NULL, &o), 0);
}

/* ---- stress: releases racing with timeouts, cancels and deliveries ---- */

static tern_chan *s_ch, *s_ch2;
static atomic_long s_bad, s_got, s_iters;
static atomic_ulong s_max_released;
static atomic_int s_left;

static int stress_op(uint64_t seed, int op)
{
    val v;
    tern_ctx *ctx;
    int64_t ns = (int64_t)(seed % 3000) * TERN_US;
    CHECK_EQ(tern_ctx_with_timeout(tern_ctx_background(), ns, &ctx), 0);
    int r = 0;
    switch (op) {
    case 0:
        tern_sleep(ns);
        break;
    case 1:
        memset(&v, 0, sizeof v);
        r = tern_chan_recv(s_ch, &v, NULL, ctx);
        if (r == 0 && !val_ok(&v, v.w[0] / 1000003u))
            r = -1;
        atomic_fetch_add(&s_got, r == 0);
        break;
    case 2: {
        val v2;
        memset(&v, 0, sizeof v);
        memset(&v2, 0, sizeof v2);
        tern_chan_case c[2] = {{.ch = s_ch, .op = TERN_CHAN_RECV, .elem = &v},
                               {.ch = s_ch2, .op = TERN_CHAN_RECV, .elem = &v2}};
        r = tern_chan_select(c, 2, ctx);
        if (r == 0 || r == 1) {
            val *g = r == 0 ? &v : &v2;
            r = val_ok(g, g->w[0] / 1000003u) ? 0 : -1;
            atomic_fetch_add(&s_got, 1);
        }
        break;
    }
    case 3:
        val_fill(&v, seed);
        r = tern_chan_send(seed & 1 ? s_ch : s_ch2, &v, ctx);
        break;
    default:
        r = tern_ctx_sleep(ns, ctx);
        break;
    }
    tern_ctx_free(ctx);
    return r == -1 ? -1 : 0;
}

static int stress_deep(uint64_t seed, int op, int depth)
{
    volatile uint64_t big[300];
    for (int i = 0; i < 300; i++)
        big[i] = seed ^ (uint64_t)i;
    int r = depth ? stress_deep(seed, op, depth - 1) : stress_op(seed, op);
    for (int i = 0; i < 300; i++)
        if (big[i] != (seed ^ (uint64_t)i))
            return -1;
    return r;
}

static int stress_worker(void *arg)
{
    uint64_t x = (uint64_t)(uintptr_t)arg * 0x9e3779b97f4a7c15u + 1;
    long iters = scaled(150);
    /* at small scales (TSan), go on until a release was seen racing */
    for (long i = 0; i < iters || (!atomic_load(&s_max_released) && i < 100 * iters + 1000);
         i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if (stress_deep(x % 100000, (int)(x >> 40) % 5, (int)(x >> 50) % 4) != 0)
            atomic_fetch_add(&s_bad, 1);
        atomic_fetch_add(&s_iters, 1);
    }
    atomic_fetch_sub(&s_left, 1);
    return 0;
}

static int stress_main(void *arg)
{
    (void)arg;
    CHECK_EQ(tern_chan_new(sizeof(val), 0, &s_ch), 0);
    CHECK_EQ(tern_chan_new(sizeof(val), 0, &s_ch2), 0);
    int n = (int)scaled(200) < 8 ? 8 : (int)scaled(200);
    atomic_store(&s_left, n);
    for (int i = 0; i < n; i++)
        CHECK_EQ(tern_go_opts(stress_worker, (void *)(uintptr_t)(i + 1),
                              &(tern_go_options){.release_stack = true}, NULL),
                 0);
    while (atomic_load(&s_left) > 0) {
        uint64_t r = released();
        if (r > atomic_load(&s_max_released))
            atomic_store(&s_max_released, r);
        tern_sleep(TERN_MS);
    }
    CHECK_EQ(released(), 0);
    tern_chan_free(s_ch);
    tern_chan_free(s_ch2);
    return 0;
}

static void release_races_wakes(void)
{
    /* 1 ns: every releasable park the monitor sees is released, so
     * releases race with timers, cancels and channel deliveries */
    tern_run_options o = {.procs = 2, .stack_release = 1};
    CHECK_EQ(tern_run_opts(stress_main, NULL, &o), 0);
    fprintf(stderr, "   %ld iterations, %ld values received, up to %lu stacks released at once\n",
            atomic_load(&s_iters), atomic_load(&s_got), atomic_load(&s_max_released));
    CHECK_EQ(atomic_load(&s_bad), 0);
    CHECK(atomic_load(&s_max_released) > 0);
}


/* ---- guard mode: any coroutine qualifies, whatever its frames share ---- */

static bool skip_unless_any(void)
{
    if (any_released())
        return false;
    fprintf(stderr, "   skipped: guard markers do not work here (\"%s\" mode)\n", release_mode());
    return true;
}

/* A parent whose frame holds what its children write while it waits: a
 * result array across three pages, and the WaitGroup itself.  Its stack is
 * released before they write; the writes fault it back, none is lost. */
enum { SH_KIDS = 24, SH_WORDS = 1200 };

typedef struct kid_arg {
    const uint64_t *seed;       /* read from the parent's frame */
    uint64_t *res;
    tern_waitgroup *wg;
    tern_chan *go;
    int i;
} kid_arg;

static int shared_kid(void *arg)
{
    kid_arg a = *(kid_arg *)arg;
    free(arg);
    int token;
    CHECK_EQ(tern_chan_recv(a.go, &token, NULL, NULL), 0);  /* the parent is out by now */
    /* in bursts, so that the monitor releases it again between them and
     * reads and writes race with the release and the copy back */
    for (int burst = 0; burst < 4; burst++) {
        for (int w = a.i + burst * SH_KIDS; w < SH_WORDS; w += 4 * SH_KIDS)
            a.res[w] = (uint64_t)w * 2654435761u + *a.seed;
        tern_sleep((a.i % 3) * TERN_MS);
    }
    tern_waitgroup_done(a.wg);
    return 0;
}

typedef struct parent_job {
    tern_chan *go;
    atomic_int ok;
} parent_job;

static int shared_parent(void *arg)
{
    parent_job *pj = arg;
    volatile uint64_t seed = 0x5eed;
    uint64_t res[SH_WORDS];
    tern_waitgroup wg = TERN_WAITGROUP_INIT;
    memset(res, 0, sizeof res);
    for (int i = 0; i < SH_KIDS; i++) {
        kid_arg *a = malloc(sizeof *a);
        CHECK(a);
        *a = (kid_arg){(const uint64_t *)&seed, res, &wg, pj->go, i};
        tern_waitgroup_add(&wg, 1);
        CHECK_EQ(tern_go_opts(shared_kid, a, &(tern_go_options){.keep_stack = true}, NULL), 0);
    }
    CHECK_EQ(tern_waitgroup_wait(&wg, NULL), 0);
    int good = 1;
    for (int w = 0; w < SH_WORDS; w++)
        if (res[w] != (uint64_t)w * 2654435761u + 0x5eed) {
            if (good)
                fprintf(stderr, "   res[%d] (%p, frame top %p) is %llx\n", w, (void *)&res[w],
                        __builtin_frame_address(0), (unsigned long long)res[w]);
            good = 0;
        }
    atomic_store(&pj->ok, good ? 1 : -1);
    return 0;
}

static int shared_main(void *arg)
{
    (void)arg;
    if (skip_unless_any())
        return 0;
    for (int round = 0; round < 20; round++) {
        parent_job pj = {.ok = 0};
        CHECK_EQ(tern_chan_new(sizeof(int), SH_KIDS, &pj.go), 0);
        uint64_t f0 = release_faults();
        CHECK_EQ(tern_go(shared_parent, &pj), 0);
        wait_released(1, "a parent in its WaitGroup wait");
        for (int i = 0; i < SH_KIDS; i++)
            CHECK_EQ(tern_chan_send(pj.go, &i, NULL), 0);
        while (!atomic_load(&pj.ok))
            tern_sleep(TERN_MS / 4);
        CHECK_EQ(atomic_load(&pj.ok), 1);
        CHECK(release_faults() > f0);      /* the kids' writes faulted it back */
        tern_chan_free(pj.go);
        while (released())
            tern_sleep(TERN_MS / 4);
    }
    return 0;
}

static void shared_frames_survive_release(void)
{
    tern_run_options o = {.procs = 2, .stack_release = 1};
    CHECK_EQ(tern_run_opts(shared_main, NULL, &o), 0);
}

/* The kernel cannot fault a released page back for another thread: a
 * read(2) into, or a send(2) from, a buffer in a released frame says
 * EFAULT.  tern's conn I/O copies the stack back and tries again. */
enum { IO_LEN = 6000 };

typedef struct io_job {
    tern_conn *a, *b;
    char *_Atomic buf;          /* IO_LEN bytes in the parent's frame; io_main polls it */
    tern_chan *done;
    atomic_int ok;
} io_job;

static void io_fill(char *p, int salt)
{
    for (int i = 0; i < IO_LEN; i++)
        p[i] = (char)(i * 31 + salt);
}

static bool io_check(const char *p, int salt)
{
    for (int i = 0; i < IO_LEN; i++)
        if (p[i] != (char)(i * 31 + salt))
            return false;
    return true;
}

static void read_all(tern_conn *c, char *p)
{
    for (size_t got = 0; got < IO_LEN;) {
        ssize_t r = tern_conn_read(c, p + got, IO_LEN - got, NULL);
        CHECK(r > 0);
        got += (size_t)r;
    }
}

static int io_parent(void *arg)
{
    io_job *j = arg;
    char buf[IO_LEN];
    memset(buf, 0, sizeof buf);
    j->buf = buf;
    int token;
    CHECK_EQ(tern_chan_recv(j->done, &token, NULL, NULL), 0);
    /* the kid's last act was a read into buf */
    atomic_store(&j->ok, io_check(buf, 3) ? 1 : -1);
    return 0;
}

static int io_kid(void *arg)
{
    io_job *j = arg;
    char mine[IO_LEN];
    /* 1: read(2) into the released frame */
    wait_released(1, "the I/O parent");
    uint64_t f0 = release_faults();
    read_all(j->a, j->buf);
    CHECK(release_faults() > f0);
    CHECK(io_check(j->buf, 1));
    /* 2: send(2) from it */
    wait_released(1, "the I/O parent, again");
    f0 = release_faults();
    CHECK_EQ(tern_conn_write(j->a, j->buf, IO_LEN, NULL), IO_LEN);
    CHECK(release_faults() > f0);
    read_all(j->b, mine);
    CHECK(io_check(mine, 1));
    /* 3: sendmsg(2) from it, in two pieces */
    wait_released(1, "the I/O parent, a third time");
    f0 = release_faults();
    struct iovec iov[2] = {{j->buf, 100}, {j->buf + 100, IO_LEN - 100}};
    CHECK_EQ(tern_conn_writev(j->a, iov, 2, NULL), IO_LEN);
    CHECK(release_faults() > f0);
    memset(mine, 0, sizeof mine);
    read_all(j->b, mine);
    CHECK(io_check(mine, 1));
    /* and the last read, for the parent to check */
    io_fill(mine, 3);
    CHECK_EQ(tern_conn_write(j->b, mine, IO_LEN, NULL), IO_LEN);
    wait_released(1, "the I/O parent, a fourth time");
    read_all(j->a, j->buf);
    int token = 0;
    CHECK_EQ(tern_chan_send(j->done, &token, NULL), 0);
    return 0;
}

static int io_main(void *arg)
{
    (void)arg;
    if (skip_unless_any())
        return 0;
    int sv[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    io_job j = {.ok = 0};
    CHECK_EQ(tern_conn_from_fd(sv[0], &j.a), 0);
    CHECK_EQ(tern_conn_from_fd(sv[1], &j.b), 0);
    CHECK_EQ(tern_chan_new(sizeof(int), 0, &j.done), 0);
    char data[IO_LEN];
    io_fill(data, 1);
    CHECK_EQ(tern_conn_write(j.b, data, IO_LEN, NULL), IO_LEN);    /* for the first read */
    CHECK_EQ(tern_go(io_parent, &j), 0);
    while (!j.buf)
        tern_sleep(TERN_MS / 4);
    CHECK_EQ(tern_go_opts(io_kid, &j, &(tern_go_options){.keep_stack = true}, NULL), 0);
    while (!atomic_load(&j.ok))
        tern_sleep(TERN_MS);
    CHECK_EQ(atomic_load(&j.ok), 1);
    tern_conn_free(j.a);
    tern_conn_free(j.b);
    tern_chan_free(j.done);
    return 0;
}

static void conn_io_on_a_released_stack(void)
{
    tern_run_options o = {.procs = 2, .stack_release = 1};
    CHECK_EQ(tern_run_opts(io_main, NULL, &o), 0);
}

/* Guard mode's mprotect splits the stacks' mapping for a moment only: a
 * thousand released stacks leave the map count where it was. */
static int maps_lines(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    CHECK(f);
    int n = 0, c;
    while ((c = getc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

static atomic_int s_sleepers;
static tern_chan *s_wake;

static int long_sleeper(void *arg)
{
    (void)arg;
    volatile char touch[5000];      /* two pages */
    touch[0] = touch[4999] = 1;
    tern_chan_recv(s_wake, NULL, NULL, NULL);  /* until closed */
    CHECK_EQ(touch[0] + touch[4999], 2);
    atomic_fetch_sub(&s_sleepers, 1);
    return 0;
}

static void sleepers_run(int n)
{
    CHECK_EQ(tern_chan_new(1, 0, &s_wake), 0);
    atomic_store(&s_sleepers, n);
    for (int i = 0; i < n; i++)
        CHECK_EQ(tern_go(long_sleeper, NULL), 0);
}

static void sleepers_end(void)
{
    tern_chan_close(s_wake);
    while (atomic_load(&s_sleepers) > 0)
        tern_sleep(TERN_MS);
    tern_chan_free(s_wake);
}

static int maps_main(void *arg)
{
    (void)arg;
    if (skip_unless_any())
        return 0;
    enum { N = 1000 };
    /* warm: the regions the sleepers' stacks come from */
    sleepers_run(N);
    sleepers_end();
    int before = maps_lines();
    sleepers_run(N);
    wait_released(N * 9 / 10, "a thousand sleepers");
    int during = maps_lines();
    fprintf(stderr, "   /proc/self/maps: %d lines before, %d with %llu stacks released\n", before,
            during, (unsigned long long)released());
    CHECK(during < before + 16);
    sleepers_end();
    return 0;
}

static void released_stacks_keep_the_map_count(void)
{
    tern_run_options o = {.procs = 2, .stack_release = TERN_MS};
    CHECK_EQ(tern_run_opts(maps_main, NULL, &o), 0);
}


/* A fork's child that touches a released stack copies it back in its own
 * memory (through its own /proc/self/mem, not its parent's), and the
 * parent's coroutine is untouched. */
enum { FK_WORDS = 600 };

typedef struct fork_job {
    tern_chan *wake;
    uint64_t *data;             /* in the parker's frame */
    atomic_int ok;
} fork_job;

static int fork_parker(void *arg)
{
    fork_job *j = arg;
    uint64_t data[FK_WORDS];
    for (int i = 0; i < FK_WORDS; i++)
        data[i] = (uint64_t)i * 0x9e3779b97f4a7c15u;
    j->data = data;
    CHECK_EQ(tern_chan_recv(j->wake, NULL, NULL, NULL), 0);
    int good = 1;
    for (int i = 0; i < FK_WORDS; i++)
        good &= data[i] == (uint64_t)i * 0x9e3779b97f4a7c15u;
    atomic_store(&j->ok, good ? 1 : -1);
    return 0;
}

static int wait_child(void *arg)
{
    int st;
    return waitpid(*(pid_t *)arg, &st, 0) < 0 ? -1 : st;
}

static int fork_main(void *arg)
{
    (void)arg;
    if (skip_unless_any())
        return 0;
    fork_job j = {.ok = 0};
    CHECK_EQ(tern_chan_new(1, 0, &j.wake), 0);
    CHECK_EQ(tern_go(fork_parker, &j), 0);
    while (!j.data)
        tern_sleep(TERN_MS / 4);
    wait_released(1, "the fork test's parker");
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        /* the child: one thread, no runtime; the touch faults */
        int good = 1;
        for (int i = 0; i < FK_WORDS; i++)
            good &= j.data[i] == (uint64_t)i * 0x9e3779b97f4a7c15u;
        _exit(good ? 0 : 3);
    }
    int st = (int)tern_blocking(wait_child, &pid);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    CHECK_EQ(released(), 1);            /* the parent's stack is still out */
    tern_chan_close(j.wake);
    while (!atomic_load(&j.ok))
        tern_sleep(TERN_MS / 4);
    CHECK_EQ(atomic_load(&j.ok), 1);
    tern_chan_free(j.wake);
    return 0;
}

static void a_forked_child_copies_back_in_its_own_memory(void)
{
    tern_run_options o = {.procs = 2, .stack_release = 1};
    CHECK_EQ(tern_run_opts(fork_main, NULL, &o), 0);
}

TESTS(T(every_wait_resumes_intact), T(plain_wait_is_not_released), T(release_races_wakes),
      T(shared_frames_survive_release), T(conn_io_on_a_released_stack),
      T(released_stacks_keep_the_map_count), T(a_forked_child_copies_back_in_its_own_memory))
