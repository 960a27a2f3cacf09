/* test_runtime_netpoll.c - tern_fd_wait / tern_fd_close on sockets and pipes. */
#include "check.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <sys/socket.h>

static void nonblock(int fd)
{
    CHECK(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == 0);
}

static int sv[2];

static int writer(void *arg)
{
    (void)arg;
    tern_sleep(5 * TERN_MS);
    CHECK_EQ(write(sv[1], "hi", 2), 2);
    return 0;
}

static int read_main(void *arg)
{
    (void)arg;
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    nonblock(sv[0]);
    nonblock(sv[1]);
    char buf[8];
    CHECK_EQ(read(sv[0], buf, sizeof buf), -1);
    CHECK_EQ(errno, EAGAIN);
    tern_go(writer, NULL);
    int64_t t0 = tern_now();
    CHECK_EQ(tern_fd_wait(sv[0], TERN_FD_READ, TERN_FOREVER), 0);
    CHECK(tern_now() - t0 >= 4 * TERN_MS);
    CHECK_EQ(read(sv[0], buf, sizeof buf), 2);
    CHECK(memcmp(buf, "hi", 2) == 0);
    /* writable at once: the edge from registration is remembered */
    CHECK_EQ(tern_fd_wait(sv[1], TERN_FD_WRITE, tern_now() + TERN_SEC), 0);
    CHECK_EQ(tern_fd_close(sv[0]), 0);
    CHECK_EQ(tern_fd_close(sv[1]), 0);
    return 0;
}

static void wait_wakes_when_readable(void)
{
    run_ok(read_main, NULL, 2);
}

static int timeout_main(void *arg)
{
    (void)arg;
    int p[2];
    CHECK(pipe2(p, O_NONBLOCK) == 0);
    int64_t t0 = tern_now();
    CHECK_EQ(tern_fd_wait(p[0], TERN_FD_READ, tern_now() + 10 * TERN_MS), -ETIMEDOUT);
    CHECK(tern_now() - t0 >= 10 * TERN_MS);
    /* the registration survives a timeout: data arriving later still wakes */
    CHECK_EQ(write(p[1], "x", 1), 1);
    CHECK_EQ(tern_fd_wait(p[0], TERN_FD_READ, tern_now() + TERN_SEC), 0);
    tern_fd_close(p[0]);
    tern_fd_close(p[1]);
    return 0;
}

static void wait_times_out(void)
{
    run_ok(timeout_main, NULL, 1);
}

static int closer_fd;
static int closer(void *arg)
{
    (void)arg;
    tern_sleep(5 * TERN_MS);
    CHECK_EQ(tern_fd_close(closer_fd), 0);
    return 0;
}

static atomic_int busy_result;
static int second_reader(void *arg)
{
    (void)arg;
    atomic_store(&busy_result, tern_fd_wait(closer_fd, TERN_FD_READ, TERN_FOREVER));
    return 0;
}

static int close_main(void *arg)
{
    (void)arg;
    int p[2];
    CHECK(pipe2(p, O_NONBLOCK) == 0);
    closer_fd = p[0];
    atomic_store(&busy_result, 1);
    tern_go(closer, NULL);
    tern_go(second_reader, NULL);
    tern_yield();
    /* second_reader waits for reading now: a second reader is refused */
    CHECK_EQ(tern_fd_wait(p[0], TERN_FD_READ, TERN_FOREVER), -EBUSY);
    tern_sleep(20 * TERN_MS);
    /* closer's tern_fd_close woke the waiter with an error */
    CHECK_EQ(atomic_load(&busy_result), -EBADF);
    CHECK_EQ(tern_fd_close(p[1]), 0);
    CHECK_EQ(tern_fd_close(p[1]), -EBADF);
    return 0;
}

static void close_wakes_waiters_with_ebadf(void)
{
    run_ok(close_main, NULL, 1);
}

static int bad_main(void *arg)
{
    (void)arg;
    CHECK_EQ(tern_fd_wait(-1, TERN_FD_READ, TERN_FOREVER), -EBADF);
    CHECK_EQ(tern_fd_wait(0, 0, TERN_FOREVER), -EINVAL);
    CHECK_EQ(tern_fd_wait(0, 0x10, TERN_FOREVER), -EINVAL);
    int fd = open("/proc/self/status", O_RDONLY);
    CHECK(fd >= 0);
    CHECK_EQ(tern_fd_wait(fd, TERN_FD_READ, TERN_FOREVER), 0);     /* files: always ready */
    close(fd);
    CHECK_EQ(tern_fd_wait(fd, TERN_FD_READ, TERN_FOREVER), -EBADF);
    return 0;
}

static void fd_wait_refuses_bad_arguments_and_files_are_always_ready(void)
{
    run_ok(bad_main, NULL, 1);
}

/* Many socket pairs bounce a counter across Ps through the netpoller. */
#define PAIRS 200
static int pairs[PAIRS][2];
static atomic_int bounced;

static int bouncer(void *arg)
{
    long i = (long)arg;
    int fd = pairs[i][1];
    char c;
    for (int n = 0; n < 50; n++) {
        for (;;) {
            ssize_t r = read(fd, &c, 1);
            if (r == 1)
                break;
            CHECK(r < 0 && errno == EAGAIN);
            CHECK_EQ(tern_fd_wait(fd, TERN_FD_READ, TERN_FOREVER), 0);
        }
        atomic_fetch_add(&bounced, 1);     /* before the echo main waits for */
        CHECK_EQ(write(fd, &c, 1), 1);
    }
    return 0;
}

static int echo_main(void *arg)
{
    (void)arg;
    int pairs_n = (int)scaled(PAIRS);
    for (long i = 0; i < pairs_n; i++) {
        CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, pairs[i]) == 0);
        tern_go(bouncer, (void *)i);
    }
    for (int n = 0; n < 50; n++) {
        for (int i = 0; i < pairs_n; i++)
            CHECK_EQ(write(pairs[i][0], "x", 1), 1);
        for (int i = 0; i < pairs_n; i++) {
            char c;
            while (read(pairs[i][0], &c, 1) != 1)
                CHECK_EQ(tern_fd_wait(pairs[i][0], TERN_FD_READ, tern_now() + 10 * TERN_SEC), 0);
        }
    }
    CHECK_EQ(atomic_load(&bounced), 50 * pairs_n);
    for (int i = 0; i < pairs_n; i++) {
        tern_fd_close(pairs[i][0]);
        tern_fd_close(pairs[i][1]);
    }
    return 0;
}

static void many_sockets_bounce_across_ps_without_a_lost_wake(void)
{
    run_ok(echo_main, NULL, 0);
}

TESTS(T(wait_wakes_when_readable), T(wait_times_out), T(close_wakes_waiters_with_ebadf),
      T(fd_wait_refuses_bad_arguments_and_files_are_always_ready),
      T(many_sockets_bounce_across_ps_without_a_lost_wake))
