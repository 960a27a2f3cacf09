/*
 * check.h - the test harness: CHECK macros that say what was expected,
 * a TEST() registry, and helpers to run a function in a child process and
 * capture its exit status and stderr (for aborts, deadlock and overflow
 * reports).  Each test file is one executable; `./t name` runs one test.
 */
#ifndef TERN_TEST_CHECK_H
#define TERN_TEST_CHECK_H

#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <tern/tern.h>

#define CHECK(cond)                                                                      \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);     \
            abort();                                                                     \
        }                                                                                \
    } while (0)

#define CHECK_EQ(a, b)                                                                   \
    do {                                                                                 \
        long long a_ = (long long)(a), b_ = (long long)(b);                              \
        if (a_ != b_) {                                                                  \
            fprintf(stderr, "%s:%d: CHECK_EQ failed: %s == %lld, expected %s == %lld\n", \
                    __FILE__, __LINE__, #a, a_, #b, b_);                                 \
            abort();                                                                     \
        }                                                                                \
    } while (0)

typedef struct test_case {
    const char *name;
    void (*fn)(void);
} test_case;

#define TESTS(...)                                                                       \
    static const test_case tests_[] = {__VA_ARGS__};                                     \
    int main(int argc, char **argv)                                                      \
    {                                                                                    \
        int ran = 0;                                                                     \
        for (size_t i = 0; i < sizeof tests_ / sizeof tests_[0]; i++) {                  \
            if (argc > 1 && strcmp(argv[1], tests_[i].name) != 0)                        \
                continue;                                                                \
            fprintf(stderr, "-- %s\n", tests_[i].name);                                  \
            tests_[i].fn();                                                              \
            ran++;                                                                       \
        }                                                                                \
        if (!ran) {                                                                      \
            fprintf(stderr, "no test named %s\n", argc > 1 ? argv[1] : "?");             \
            return 1;                                                                    \
        }                                                                                \
        fprintf(stderr, "ok: %d tests\n", ran);                                          \
        return 0;                                                                        \
    }
#define T(f) {#f, f}

/* Run a tern entry on a fresh runtime and expect it to return 0. */
/* How many worker wake-ups an idle runtime of `procs` Ps may make in ns
 * beyond `base`: under TSan each idle P's futex wait is bounded to 50 ms
 * (src/runtime/idle.c, for signal delivery), a wake-up per 50 ms each. */
#if defined(__SANITIZE_THREAD__)
#define CHECK_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define CHECK_TSAN 1
#endif
#endif
static inline uint64_t idle_wakeups_allowed(uint64_t base, int64_t ns, int procs)
{
#ifdef CHECK_TSAN
    return base + (uint64_t)procs * (uint64_t)(ns / (50 * TERN_MS) + 1);
#else
    (void)ns;
    (void)procs;
    return base;
#endif
}

static inline void run_ok(tern_fn *entry, void *arg, int procs)
{
    tern_run_options o = {.procs = procs};
    int r = tern_run_opts(entry, arg, &o);
    if (r != 0) {
        fprintf(stderr, "tern_run returned %d (%s)\n", r, tern_strerror(r));
        abort();
    }
}

typedef struct child_result {
    int exited;         /* 1: exited with `code`; 0: killed by `sig` */
    int code, sig;
    char err[8192];     /* its stderr */
} child_result;

/* Run fn in a child process with stderr captured. */
static inline child_result run_child(void (*fn)(void))
{
    child_result r = {0};
    int pfd[2];
    CHECK(pipe(pfd) == 0);
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        dup2(pfd[1], 2);
        close(pfd[0]);
        close(pfd[1]);
        fn();
        fflush(NULL);
        _exit(0);
    }
    close(pfd[1]);
    size_t len = 0;
    ssize_t n;
    while ((n = read(pfd[0], r.err + len, sizeof r.err - 1 - len)) > 0)
        len += (size_t)n;
    r.err[len] = 0;
    close(pfd[0]);
    int st;
    CHECK(waitpid(pid, &st, 0) == pid);
    r.exited = WIFEXITED(st);
    r.code = WIFEXITED(st) ? WEXITSTATUS(st) : 0;
    r.sig = WIFSIGNALED(st) ? WTERMSIG(st) : 0;
    fprintf(stderr, "   child %s %d; its stderr:\n%s", r.exited ? "exited" : "killed by signal",
            r.exited ? r.code : r.sig, r.err);
    return r;
}

/* Scale for the heaviest tests: TERN_TEST_SCALE=0.1 in slow builds. */
static inline long scaled(long n)
{
    const char *e = getenv("TERN_TEST_SCALE");
    double s = e ? atof(e) : 1.0;
    long v = (long)(n * s);
    return v < 1 ? 1 : v;
}

#endif
