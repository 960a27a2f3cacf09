/*
 * stack_depth - how much stack common C library calls use.
 *
 *   stack_depth
 *
 * Informational (not part of compare.sh): it is the basis for the default
 * coroutine stack size (TERN_STACK_DEFAULT in tern/runtime.h).
 *
 * Each call runs in a fresh thread whose 1 MiB stack we allocated and
 * painted with a byte pattern; after the thread is joined, the lowest
 * byte that no longer holds the pattern shows how deep the call went.
 * The figure is measured from the frame of the thread function that makes
 * the call, minus what an empty call costs.  "cold" is the first call in
 * the process (it pays one-time set-up such as locale data or, for
 * getaddrinfo, loading NSS modules); "warm" is a second call.  Writes to
 * the x86-64 red zone are counted (they are real stack use).
 *
 * Most of the cold/warm difference is lazy PLT binding, not the call: the
 * first call through a not-yet-resolved PLT slot runs the dynamic linker's
 * resolver, which saves the vector registers on the stack (~3 KiB with
 * AVX-512 state).  Run with LD_BIND_NOW=1, or link with -Wl,-z,now, to see
 * cold figures without it.  "localhost" resolves from /etc/hosts (files);
 * a DNS lookup goes deeper.
 *
 * Output (stdout): a tab-separated table: call, cold bytes, warm bytes.
 */
#define _GNU_SOURCE
#include <netdb.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>

#define STACK_BYTES ((size_t)1 << 20)
#define PAINT 0xA5

static FILE *g_devnull;
static volatile double g_double = 31415.926535897932;
static volatile int g_sink;
static int g_ints[1000];

static void call_empty(void) { }

static void call_snprintf_f(void)
{
    char buf[64];
    snprintf(buf, sizeof buf, "%f", g_double);
    g_sink = buf[0];
}

static void call_snprintf_g17(void)
{
    char buf[64];
    snprintf(buf, sizeof buf, "%.17g", g_double);
    g_sink = buf[0];
}

static void call_fprintf(void)
{
    fprintf(g_devnull, "%d %s %f %ld %x %p %c %.3e\n", 42, "hello", g_double,
            123456789L, 0xbeefu, (void *)&g_sink, 'x', g_double);
    fflush(g_devnull);
}

static void call_getaddrinfo(void)
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int r = getaddrinfo("localhost", "80", &hints, &res);
    g_sink = r;
    if (r == 0)
        freeaddrinfo(res);
}

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

static void call_qsort(void)
{
    unsigned s = 12345;
    for (int i = 0; i < 1000; i++) {
        s = s * 1103515245u + 12345u;
        g_ints[i] = (int)(s >> 8);
    }
    qsort(g_ints, 1000, sizeof g_ints[0], cmp_int);
    g_sink = g_ints[0];
}

static void call_strtod(void)
{
    g_double = strtod("1.2345678901234567890123e-300", NULL);
    g_sink = (int)g_double;
}

struct job {
    void (*fn)(void);
    uintptr_t top;
};

static __attribute__((noinline)) void *thread_main(void *arg)
{
    struct job *j = arg;
    j->top = (uintptr_t)__builtin_frame_address(0);
    void (*volatile fn)(void) = j->fn;
    fn();
    return NULL;
}

/* Bytes of stack below thread_main's frame touched while running fn. */
static long depth(void (*fn)(void))
{
    unsigned char *stk = mmap(NULL, STACK_BYTES, PROT_READ | PROT_WRITE,
                              MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (stk == MAP_FAILED) {
        perror("mmap");
        exit(1);
    }
    memset(stk, PAINT, STACK_BYTES);
    pthread_attr_t a;
    pthread_attr_init(&a);
    if (pthread_attr_setstack(&a, stk, STACK_BYTES) != 0) {
        fprintf(stderr, "pthread_attr_setstack failed\n");
        exit(1);
    }
    struct job j = { fn, 0 };
    pthread_t th;
    if (pthread_create(&th, &a, thread_main, &j) != 0) {
        fprintf(stderr, "pthread_create failed\n");
        exit(1);
    }
    pthread_join(th, NULL);
    pthread_attr_destroy(&a);
    size_t low = 0;
    while (low < STACK_BYTES && stk[low] == PAINT)
        low++;
    long used = (long)(j.top - (uintptr_t)(stk + low));
    munmap(stk, STACK_BYTES);
    return used;
}

int main(void)
{
    static const struct {
        const char *name;
        void (*fn)(void);
    } calls[] = {
        { "snprintf(\"%f\", double)", call_snprintf_f },
        { "snprintf(\"%.17g\", double)", call_snprintf_g17 },
        { "fprintf(/dev/null, 8 args)", call_fprintf },
        { "getaddrinfo(\"localhost\")", call_getaddrinfo },
        { "qsort(1000 ints)", call_qsort },
        { "strtod", call_strtod },
    };
    g_devnull = fopen("/dev/null", "w");
    if (!g_devnull) {
        perror("/dev/null");
        return 1;
    }
    long base = depth(call_empty);
    depth(call_empty);
    fprintf(stderr, "stack_depth: empty call touches %ld bytes below the caller's frame "
            "(subtracted below)\n", base);
    fprintf(stderr, "stack_depth: cold = first call in the process (%s); warm = second call\n",
            getenv("LD_BIND_NOW") ? "LD_BIND_NOW set: no lazy-binding cost"
                                  : "includes lazy PLT binding, ~3 KiB; LD_BIND_NOW=1 removes it");
    printf("call\tcold_bytes\twarm_bytes\n");
    for (size_t i = 0; i < sizeof calls / sizeof calls[0]; i++) {
        long cold = depth(calls[i].fn) - base;
        long warm = depth(calls[i].fn) - base;
        printf("%s\t%ld\t%ld\n", calls[i].name, cold, warm);
    }
    fclose(g_devnull);
    return 0;
}
