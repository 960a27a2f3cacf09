/* test_runtime_stack.c - stacks: a million parked, sizes, shared mode, overflow. */
#include "check.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/mman.h>

static atomic_long parked;

static int park_long(void *arg)
{
    (void)arg;
    atomic_fetch_add(&parked, 1);
    tern_sleep(3600 * TERN_SEC);
    return 0;
}

static long count_maps(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    long n = 0;
    int c;
    while ((c = fgetc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

static long vm_rss_kb(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, key, strlen(key)) == 0)
            v = atol(line + strlen(key) + 1);
    fclose(f);
    return v;
}

static int million_main(void *arg)
{
    tern_stack_mode mode = (tern_stack_mode)(long)arg;
    long n = scaled(1000000);
    atomic_store(&parked, 0);
    long rss0 = vm_rss_kb("VmRSS:");
    tern_go_options o = {.stack_mode = mode};
    for (long i = 0; i < n; i++) {
        int r = tern_go_opts(park_long, NULL, &o, NULL);
        if (r < 0) {
            fprintf(stderr, "spawn %ld failed: %s\n", i, tern_strerror(r));
            abort();
        }
        if (i % 4096 == 0)
            tern_yield();
    }
    while (atomic_load(&parked) < n)
        tern_sleep(TERN_MS);
    tern_sleep(10 * TERN_MS);
    struct tern_runtime_stats st;
    tern_runtime_stats(&st, NULL, 0);
    CHECK_EQ(st.alive, n + 1);
    CHECK(st.parked >= (uint64_t)n);
    CHECK_EQ(st.timers, n);
    long maps = count_maps();
    long rss = vm_rss_kb("VmRSS:") - rss0;
    fprintf(stderr, "   %ld parked (%s stacks, guard %s): %ld mappings, %.0f bytes RSS each\n", n,
            mode == TERN_STACK_SHARED ? "shared" : "own", st.stack_guard, maps,
            rss * 1024.0 / (double)n);
    CHECK(maps < 30000);            /* far under vm.max_map_count's 65530 */
    return 0;
}

static void million_parked_coroutines_fit_with_own_stacks(void)
{
    run_ok(million_main, (void *)(long)TERN_STACK_OWN, 0);
}

static void million_parked_coroutines_fit_with_shared_stacks(void)
{
    run_ok(million_main, (void *)(long)TERN_STACK_SHARED, 0);
}

/* Shared-stack coroutines keep their frames intact across copy-out. */
static atomic_int shared_ok;

static int shared_worker(void *arg)
{
    long id = (long)arg;
    volatile long frame[64];
    for (int i = 0; i < 64; i++)
        frame[i] = id * 1000 + i;
    for (int round = 0; round < 50; round++) {
        if (round % 3 == 0)
            tern_sleep(TERN_US * (id % 7));
        else
            tern_yield();
        for (int i = 0; i < 64; i++)
            CHECK_EQ(frame[i], id * 1000 + i);
    }
    atomic_fetch_add(&shared_ok, 1);
    return 0;
}

static int shared_main(void *arg)
{
    (void)arg;
    atomic_store(&shared_ok, 0);
    for (long i = 0; i < 300; i++) {
        tern_go_options o = {.stack_mode = i % 2 ? TERN_STACK_SHARED : TERN_STACK_OWN};
        CHECK_EQ(tern_go_opts(shared_worker, (void *)i, &o, NULL), 0);
    }
    while (atomic_load(&shared_ok) < 300)
        tern_sleep(TERN_MS);
    return 0;
}

static void shared_stacks_preserve_frames(void)
{
    run_ok(shared_main, NULL, 2);
}

static int depth_reached;

static __attribute__((noinline)) int recurse(int n)
{
    volatile char pad[1024];
    for (size_t i = 0; i < sizeof pad; i++)     /* touch the whole frame */
        pad[i] = (char)n;
    if (n == 0)
        return pad[0];
    int r = recurse(n - 1) + pad[0];
    depth_reached = n;
    return r;
}

static int deep(void *arg)
{
    recurse((int)(long)arg);
    return 0;
}

static int sizes_main(void *arg)
{
    (void)arg;
    /* ~700 KiB of frames in a 1 MiB stack, ~3 MiB in a 4 MiB private one */
    CHECK_EQ(tern_go_opts(deep, (void *)600L, &(tern_go_options){.stack_size = 1 << 20}, NULL), 0);
    CHECK_EQ(tern_go_opts(deep, (void *)2800L, &(tern_go_options){.stack_size = 4 << 20}, NULL), 0);
    tern_sleep(20 * TERN_MS);
    CHECK(depth_reached > 0);
    return 0;
}

static void custom_stack_sizes_hold_deep_frames(void)
{
    run_ok(sizes_main, NULL, 1);
}

static atomic_int churned;

static int churn_one(void *arg)
{
    (void)arg;
    atomic_fetch_add(&churned, 1);
    return 0;
}

static int reuse_main(void *arg)
{
    (void)arg;
    atomic_store(&churned, 0);
    for (int wave = 0; wave < 50; wave++) {
        for (int i = 0; i < 1000; i++)
            tern_go(churn_one, NULL);
        while (atomic_load(&churned) < (wave + 1) * 1000)
            tern_sleep(TERN_MS);
    }
    struct tern_runtime_stats st;
    int64_t give_up = tern_now() + TERN_SEC;    /* the last ones finish exiting */
    do {
        tern_sleep(TERN_MS);
        tern_runtime_stats(&st, NULL, 0);
    } while (st.alive != 1 && tern_now() < give_up);
    CHECK_EQ(st.alive, 1);
    /* 50,000 coroutines ran; their stacks came from caches, not new slots */
    CHECK(st.stacks_mapped < 5000);
    return 0;
}

static void stacks_are_reused(void)
{
    run_ok(reuse_main, NULL, 2);
}

/* A coroutine takes its stack when it first runs, not when spawned: two
 * hundred queued on one P hold none, and run one after another they share
 * a few (each takes the one the last to exit left).  Past 256 spawns in
 * one run slice (a storm) a coroutine gets its stack at once. */
static int queued_main(void *arg)
{
    (void)arg;
    atomic_store(&churned, 0);
    struct tern_runtime_stats st;
    tern_runtime_stats(&st, NULL, 0);
    uint64_t mapped0 = st.stacks_mapped;
    for (int i = 0; i < 200; i++)
        CHECK_EQ(tern_go(churn_one, NULL), 0);
    tern_runtime_stats(&st, NULL, 0);
    CHECK_EQ(st.stacks_mapped, mapped0);        /* none has run: no stack */
    while (atomic_load(&churned) < 200)
        tern_yield();
    tern_runtime_stats(&st, NULL, 0);
    fprintf(stderr, "   200 queued, then run: %llu new stack slots\n",
            (unsigned long long)(st.stacks_mapped - mapped0));
    CHECK(st.stacks_mapped - mapped0 < 16);
    /* a storm: 1000 in one slice, the last 744 with stacks at spawn */
    uint64_t mapped1 = st.stacks_mapped;
    for (int i = 0; i < 1000; i++)
        CHECK_EQ(tern_go(churn_one, NULL), 0);
    tern_runtime_stats(&st, NULL, 0);
    CHECK(st.stacks_mapped - mapped1 >= 1000 - 256 - 16);
    while (atomic_load(&churned) < 1200)
        tern_yield();
    /* a coroutine with a stack size of its own gets it at once */
    tern_co *co;
    CHECK_EQ(tern_go_opts(churn_one, NULL, &(tern_go_options){.stack_size = 256 * 1024}, &co), 0);
    tern_runtime_stats(&st, NULL, 0);
    CHECK(st.stacks_mapped > mapped1);
    while (atomic_load(&churned) < 1201)
        tern_yield();
    return 0;
}

static void queued_coroutines_hold_no_stack(void)
{
    run_ok(queued_main, NULL, 1);
}

/* Spare stacks idle for a second give their pages back. */
static atomic_int toucher_done;
static tern_chan *release;

static int toucher(void *arg)
{
    (void)arg;
    volatile char buf[32 * 1024];
    for (size_t i = 0; i < sizeof buf; i += 512)
        buf[i] = 1;
    atomic_fetch_add(&toucher_done, 1);
    tern_chan_recv(release, NULL, NULL, NULL);    /* stay alive until measured */
    return buf[0] - 1;
}

static int scavenge_main(void *arg)
{
    (void)arg;
    /* Not scaled: the pool keeps 1024 spares (plus the per-P caches) and
     * releases the rest; 6000 stays under TSan's 8128-fiber limit. */
    int n = 6000;
    atomic_store(&toucher_done, 0);
    CHECK_EQ(tern_chan_new(1, 0, &release), 0);
    long rss0 = vm_rss_kb("VmRSS:");
    /* keep_stack: parked, they would give their pages back themselves */
    for (int i = 0; i < n; i++)
        CHECK_EQ(tern_go_opts(toucher, NULL, &(tern_go_options){.keep_stack = true}, NULL), 0);
    while (atomic_load(&toucher_done) < n)
        tern_sleep(TERN_MS);
    long peak = vm_rss_kb("VmRSS:") - rss0;    /* all alive, all touched */
    tern_chan_close(release);
    /* the scavenger looks back over a second, then releases 16 a tick */
    int64_t give_up = tern_now() + 20 * TERN_SEC;
    long now;
    do {
        tern_sleep(100 * TERN_MS);
        now = vm_rss_kb("VmRSS:") - rss0;
    } while (now > peak / 2 && tern_now() < give_up);
    fprintf(stderr, "   %d stacks of 32 KiB used: RSS +%ld KiB at peak, +%ld KiB after\n", n, peak,
            now);
    CHECK(peak > (long)n * 32 * 3 / 4);     /* the pages were really used */
    CHECK(now <= peak / 2);                 /* and most came back */
    tern_chan_free(release);
    return 0;
}

static void idle_spare_stacks_return_memory(void)
{
    if (getenv("TERN_TEST_NO_RSS")) {
        /* TSan's shadow memory makes RSS say nothing about our stacks */
        fprintf(stderr, "   skipped: RSS is not meaningful in this build\n");
        return;
    }
    run_ok(scavenge_main, NULL, 2);
}

static int overflow_main(void *arg)
{
    (void)arg;
    tern_go_opts(deep, (void *)100000L, &(tern_go_options){.name = "deep-diver"}, NULL);
    tern_sleep(TERN_SEC);
    return 0;
}

static void overflow_child(void)
{
    tern_run(overflow_main, NULL);
}

static char guard_mode[32];

static int read_guard_mode(void *arg)
{
    (void)arg;
    struct tern_runtime_stats st;
    tern_runtime_stats(&st, NULL, 0);
    snprintf(guard_mode, sizeof guard_mode, "%s", st.stack_guard);
    return 0;
}

static void overflow_is_reported_with_name_and_id(void)
{
    run_ok(read_guard_mode, NULL, 1);
    if (strcmp(guard_mode, "guard-install") != 0) {
        /* Before Linux 6.13 there is no guard page: a deep overflow runs
         * over other stacks; overflow_detected_in_canary_mode covers it. */
        fprintf(stderr, "   skipped: this kernel gives %s, not guard pages\n", guard_mode);
        return;
    }
    if (getenv("TERN_TEST_UNDER_QEMU")) {
        /* qemu-user passes MADV_GUARD_INSTALL to the host but does not
         * know the page is a guard, so it dies on the host fault instead
         * of raising the guest's SIGSEGV: nothing to test there. */
        fprintf(stderr, "   skipped under qemu-user\n");
        return;
    }
    child_result r = run_child(overflow_child);
    CHECK(!r.exited);
    CHECK(strstr(r.err, "stack overflow in coroutine") != NULL);
    CHECK(strstr(r.err, "'deep-diver'") != NULL);
}

static int small_overflow_main(void *arg)
{
    (void)arg;
    /* 80 levels of 1 KiB frames in a 64 KiB stack: runs ~16 KiB past its
     * bottom, over the canary, and returns before touching anything fatal */
    tern_go_opts(deep, (void *)80L, &(tern_go_options){.name = "deep-diver"}, NULL);
    tern_sleep(TERN_SEC);
    return 0;
}

static void canary_direct_child(void)
{
    setenv("TERN_STACK_GUARD", "canary", 1);
    tern_run(small_overflow_main, NULL);
}

static void overflow_detected_in_canary_mode(void)
{
    child_result r = run_child(canary_direct_child);
    CHECK(!r.exited);
    /* without a guard page the canary catches it at the next switch, or
     * the recursion runs into the next stack's guard-free memory and the
     * canary check reports it; either way the coroutine is named */
    CHECK(strstr(r.err, "stack overflow in coroutine") != NULL);
    CHECK(strstr(r.err, "'deep-diver'") != NULL);
}

/* ---- tern_stack_trim ----------------------------------------------------- */

static __attribute__((noinline)) void touch_deep(size_t n)
{
    volatile char big[40 * 1024];
    for (size_t i = 0; i < n; i += 512)
        big[i] = (char)i;
    (void)big[0];
}

/* Resident pages among those from lo (page aligned) for len bytes. */
static int resident_pages(uintptr_t lo, size_t len)
{
    unsigned char vec[64];
    CHECK(len / 4096 <= sizeof vec);
    CHECK(mincore((void *)lo, len, vec) == 0);
    int n = 0;
    for (size_t i = 0; i < len / 4096; i++)
        n += vec[i] & 1;
    return n;
}

static int trim_child(void *arg)
{
    touch_deep(sizeof(char[40 * 1024]));
    uintptr_t here = (uintptr_t)__builtin_frame_address(0) & ~(uintptr_t)4095;
    /* the pages 12 to 36 KiB below this frame were touched by touch_deep */
    uintptr_t lo = here - 36 * 1024;
    int before = resident_pages(lo, 24 * 1024);
    CHECK(before >= 5);
    tern_stack_trim();
    CHECK_EQ(resident_pages(lo, 24 * 1024), 0);
    /* the stack still works below, and the frame above is intact */
    touch_deep(sizeof(char[40 * 1024]));
    tern_waitgroup_done(arg);
    return 0;
}

static int trim_main(void *arg)
{
    (void)arg;
    tern_waitgroup wg = TERN_WAITGROUP_INIT;
    tern_waitgroup_add(&wg, 1);
    tern_go(trim_child, &wg);
    tern_waitgroup_wait(&wg, NULL);
    return 0;
}

static void trim_returns_stack_pages(void)
{
    tern_stack_trim();                  /* outside a coroutine: nothing */
    run_ok(trim_main, NULL, 1);
}

TESTS(T(trim_returns_stack_pages), T(million_parked_coroutines_fit_with_own_stacks),
      T(million_parked_coroutines_fit_with_shared_stacks), T(shared_stacks_preserve_frames),
      T(custom_stack_sizes_hold_deep_frames), T(stacks_are_reused), T(queued_coroutines_hold_no_stack),
      T(idle_spare_stacks_return_memory), T(overflow_is_reported_with_name_and_id),
      T(overflow_detected_in_canary_mode))
