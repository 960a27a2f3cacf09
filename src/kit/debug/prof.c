/*
 * prof.c - the CPU sampler: SIGPROF from setitimer(ITIMER_PROF)
 * records the interrupted thread's stack into a buffer allocated before
 * sampling starts.
 *
 * The handler may only do async-signal-safe things, so it neither
 * allocates nor locks nor calls backtrace() (which may allocate on first
 * use): it walks the frame-pointer chain from the interrupted registers.
 * Frame pointers of code built without them (parts of libc) are ordinary
 * registers, so every read of a frame goes through process_vm_readv on
 * our own pid, which fails with EFAULT on a bad address where a plain
 * load would crash; the chain must also climb strictly and in small steps.
 *
 * Hand-over without locks: a handler first counts itself in `in_handler`,
 * then loads `cur`.  Stopping clears `cur`, then waits for `in_handler` to
 * drain; with sequentially consistent atomics, any handler not yet
 * counted when stop looked will load NULL, so none writes the buffer
 * after stop returns.  The SIGPROF handler stays installed after the
 * first profile (and ignores signals while none runs): restoring the
 * default action would let a late SIGPROF kill the process.
 */
#define _GNU_SOURCE
#include "kit/debug/internal.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <ucontext.h>
#include <unistd.h>

#include "tern/debug.h"

/* A step between frames larger than this ends the walk: no frame is that
 * big, and a coroutine's stack is not contiguous with its scheduler's. */
#define MAX_FRAME_STEP ((uintptr_t)1 << 20)

static atomic_bool running;
static tern__prof_buf *_Atomic cur;
static atomic_int in_handler;
static pid_t self_pid;
static pthread_mutex_t install_lock = PTHREAD_MUTEX_INITIALIZER;
static bool installed;

/* Read two words at addr without faulting: false if it is not mapped. */
static bool read_frame(uintptr_t addr, uintptr_t out[2])
{
    struct iovec local = {.iov_base = out, .iov_len = 2 * sizeof(uintptr_t)};
    struct iovec remote = {.iov_base = (void *)addr, .iov_len = 2 * sizeof(uintptr_t)};
    return syscall(SYS_process_vm_readv, self_pid, &local, 1, &remote, 1, 0) ==
           (long)(2 * sizeof(uintptr_t));
}

static void record(tern__prof_sample *s, const ucontext_t *uc)
{
#if defined(__x86_64__)
    uintptr_t pc = (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
    uintptr_t fp = (uintptr_t)uc->uc_mcontext.gregs[REG_RBP];
#elif defined(__aarch64__)
    uintptr_t pc = (uintptr_t)uc->uc_mcontext.pc;
    uintptr_t fp = (uintptr_t)uc->uc_mcontext.regs[29];
#else
#error "tern's profiler walks x86-64 and aarch64 frames only"
#endif
    uint32_t d = 0;
    s->pc[d++] = pc;
    /* Both ABIs keep the frame record as {caller's fp, return address}. */
    while (d < TERN__PROF_DEPTH && fp && !(fp & (sizeof(uintptr_t) - 1))) {
        uintptr_t rec[2];
        if (!read_frame(fp, rec) || rec[1] < 4096)
            break;
        s->pc[d++] = rec[1] - 1;    /* the call, not the instruction after it */
        if (rec[0] <= fp || rec[0] - fp > MAX_FRAME_STEP)
            break;
        fp = rec[0];
    }
    s->depth = d;
    atomic_store_explicit(&s->ready, 1, memory_order_release);
}

static void on_sigprof(int sig, siginfo_t *si, void *ucv)
{
    (void)sig, (void)si;
    int saved = errno;
    atomic_fetch_add(&in_handler, 1);
    tern__prof_buf *b = atomic_load(&cur);
    if (b) {
        size_t i = atomic_fetch_add(&b->next, 1);
        if (i < b->cap)
            record(&b->s[i], ucv);
    }
    atomic_fetch_sub(&in_handler, 1);
    errno = saved;
}

static int install(void)
{
    int rc = 0;
    pthread_mutex_lock(&install_lock);
    if (!installed) {
        struct sigaction sa = {.sa_sigaction = on_sigprof, .sa_flags = SA_SIGINFO | SA_RESTART};
        sigemptyset(&sa.sa_mask);
        if (sigaction(SIGPROF, &sa, NULL) < 0)
            rc = -errno;
        else
            installed = true;
    }
    pthread_mutex_unlock(&install_lock);
    return rc;
}

int tern__prof_start(size_t cap)
{
    bool no = false;
    if (!atomic_compare_exchange_strong(&running, &no, true))
        return -EBUSY;
    int rc = install();
    tern__prof_buf *b = rc < 0 ? NULL : calloc(1, sizeof *b + cap * sizeof b->s[0]);
    if (!b) {
        atomic_store(&running, false);
        return rc < 0 ? rc : -ENOMEM;
    }
    b->cap = cap;
    self_pid = getpid();
    atomic_store(&cur, b);
    struct itimerval it = {
        .it_interval = {.tv_usec = 1000000 / TERN_DEBUG_PROFILE_HZ},
        .it_value = {.tv_usec = 1000000 / TERN_DEBUG_PROFILE_HZ},
    };
    if (setitimer(ITIMER_PROF, &it, NULL) < 0) {
        rc = -errno;
        free(tern__prof_stop());
        return rc;
    }
    return 0;
}

tern__prof_buf *tern__prof_stop(void)
{
    struct itimerval off = {0};
    setitimer(ITIMER_PROF, &off, NULL);
    tern__prof_buf *b = atomic_exchange(&cur, NULL);
    while (atomic_load(&in_handler) > 0)
        sched_yield();      /* a handler runs for microseconds */
    atomic_store(&running, false);
    return b;
}
