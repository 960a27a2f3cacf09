/* test_net_sockets.c - TCP and Unix sockets from coroutines (tern/net.h) and
 * signals as events (tern/signal.h). */
#include "check.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <tern/net.h>
#include <tern/signal.h>

#include "net/export.h"

#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TERN_TEST_CLANG_TSAN 1
#endif
#endif
#ifndef TERN_TEST_CLANG_TSAN
#define TERN_TEST_CLANG_TSAN 0
#endif

static void split_host_port_handles_brackets_and_refuses_malformed(void)
{
    char h[64], p[16];
    CHECK_EQ(tern_net_split_host_port("127.0.0.1:80", h, sizeof h, p, sizeof p), 0);
    CHECK(!strcmp(h, "127.0.0.1") && !strcmp(p, "80"));
    CHECK_EQ(tern_net_split_host_port("[::1]:8080", h, sizeof h, p, sizeof p), 0);
    CHECK(!strcmp(h, "::1") && !strcmp(p, "8080"));
    CHECK_EQ(tern_net_split_host_port(":0", h, sizeof h, p, sizeof p), 0);
    CHECK(!strcmp(h, "") && !strcmp(p, "0"));
    CHECK_EQ(tern_net_split_host_port("localhost:http", h, sizeof h, p, sizeof p), 0);
    CHECK(!strcmp(h, "localhost") && !strcmp(p, "http"));
    CHECK_EQ(tern_net_split_host_port("::1:80", h, sizeof h, p, sizeof p), -EINVAL);
    CHECK_EQ(tern_net_split_host_port("noport", h, sizeof h, p, sizeof p), -EINVAL);
    CHECK_EQ(tern_net_split_host_port("host:", h, sizeof h, p, sizeof p), -EINVAL);
    CHECK_EQ(tern_net_split_host_port("[::1]80", h, sizeof h, p, sizeof p), -EINVAL);
    CHECK_EQ(tern_net_split_host_port("averyveryverylonghostname.example:1", h, 8, p, sizeof p), -EINVAL);
}

/* ---- echo over TCP: accept, read, write, writev, half-close ------------- */

/* What a listening coroutine gets: the listener may be freed only once
 * it has said it is done with it. */
typedef struct served {
    tern_listener *l;
    tern_waitgroup done;
} served;

static void go_served(tern_fn *fn, served *sv, tern_listener *l)
{
    sv->l = l;
    sv->done = (tern_waitgroup)TERN_WAITGROUP_INIT;
    tern_waitgroup_add(&sv->done, 1);
    tern_go(fn, sv);
}

/* tern_listener_accept bounded by a timeout of ns */
static int accept_within(tern_listener *l, tern_conn **c, int64_t ns)
{
    tern_ctx *ctx;
    CHECK_EQ(tern_ctx_with_timeout(NULL, ns, &ctx), 0);
    int rc = tern_listener_accept(l, c, ctx);
    tern_ctx_free(ctx);
    return rc;
}

static int echo_conn(void *arg)
{
    tern_conn *c = arg;
    char buf[4096];
    ssize_t n;
    while ((n = tern_conn_read(c, buf, sizeof buf, NULL)) > 0)
        CHECK_EQ(tern_conn_write(c, buf, (size_t)n, NULL), n);
    CHECK_EQ(n, 0);                     /* the peer half-closed */
    CHECK_EQ(tern_conn_write(c, "bye", 3, NULL), 3);
    tern_conn_free(c);
    return 0;
}

static int echo_server(void *arg)
{
    served *sv = arg;
    tern_conn *c;
    int rc;
    while ((rc = tern_listener_accept(sv->l, &c, NULL)) == 0)
        tern_go(echo_conn, c);
    CHECK_EQ(rc, -ECANCELED);
    tern_waitgroup_done(&sv->done);
    return 0;
}

static ssize_t read_full(tern_conn *c, char *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t k = tern_conn_read(c, buf + got, n - got, NULL);
        if (k <= 0)
            return k < 0 ? k : (ssize_t)got;
        got += (size_t)k;
    }
    return (ssize_t)got;
}

typedef struct big_job {
    tern_conn *c;
    const char *p;
    size_t n;
    tern_waitgroup done;        /* the writer has returned from its write */
} big_job;

static int big_writer(void *arg)
{
    big_job *j = arg;
    CHECK_EQ(tern_conn_write(j->c, j->p, j->n, NULL), (ssize_t)j->n);
    tern_waitgroup_done(&j->done);
    return 0;
}

static int tcp_main(void *arg)
{
    (void)arg;
    tern_listener *l;
    CHECK_EQ(tern_listener_new(TERN_NET_TCP, "127.0.0.1:0", NULL, &l), 0);
    int port = tern_listener_port(l);
    CHECK(port > 0);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    CHECK(!strcmp(tern_listener_addr(l), addr));
    served sv;
    go_served(echo_server, &sv, l);

    tern_conn *c;
    CHECK_EQ(tern_conn_dial(TERN_NET_TCP, addr, &c, NULL), 0);
    CHECK(!strncmp(tern_conn_remote_addr(c), "127.0.0.1:", 10));
    CHECK_EQ(tern_conn_write(c, "hello", 5, NULL), 5);
    char buf[64];
    CHECK_EQ(read_full(c, buf, 5), 5);
    CHECK(!memcmp(buf, "hello", 5));

    /* writev: every byte, in order */
    struct iovec iov[3] = { { "ab", 2 }, { "", 0 }, { "cdef", 4 } };
    CHECK_EQ(tern_conn_writev(c, iov, 3, NULL), 6);
    CHECK_EQ(read_full(c, buf, 6), 6);
    CHECK(!memcmp(buf, "abcdef", 6));

    /* a megabyte each way: the writer parks on a full socket buffer */
    size_t big = 1 << 20;
    char *out = malloc(big), *in = malloc(big);
    for (size_t i = 0; i < big; i++)
        out[i] = (char)(i * 7);
    tern_conn *c2;
    CHECK_EQ(tern_conn_dial(TERN_NET_TCP, addr, &c2, NULL), 0);
    big_job job = { c2, out, big, TERN_WAITGROUP_INIT };
    tern_waitgroup_add(&job.done, 1);
    CHECK_EQ(tern_go(big_writer, &job), 0);     /* writes while this one reads */
    CHECK_EQ(read_full(c2, in, big), (ssize_t)big);
    CHECK(!memcmp(in, out, big));
    /* the last bytes can arrive before the writer's send returns: the
     * buffer and the job must outlive its write */
    tern_waitgroup_wait(&job.done, NULL);
    free(out);
    free(in);
    tern_conn_free(c2);

    /* a read deadline: -ETIMEDOUT, and the connection is still usable */
    tern_conn_set_read_deadline(c, tern_now() + 20 * TERN_MS);
    int64_t t0 = tern_now();
    CHECK_EQ(tern_conn_read(c, buf, sizeof buf, NULL), -ETIMEDOUT);
    CHECK(tern_now() - t0 >= 19 * TERN_MS);
    tern_conn_set_read_deadline(c, TERN_FOREVER);
    CHECK_EQ(tern_conn_write(c, "x", 1, NULL), 1);
    CHECK_EQ(read_full(c, buf, 1), 1);

    /* half-close: the server sees EOF and can still answer */
    CHECK_EQ(tern_conn_close_write(c), 0);
    CHECK_EQ(read_full(c, buf, 3), 3);
    CHECK(!memcmp(buf, "bye", 3));
    CHECK_EQ(tern_conn_read(c, buf, sizeof buf, NULL), 0);
    tern_conn_free(c);

    tern_listener_close(l);
    tern_waitgroup_wait(&sv.done, NULL);      /* echo_server saw -ECANCELED */
    tern_listener_free(l);
    return 0;
}

static void tcp_conn_echoes_every_byte_with_deadlines_and_half_close(void)
{
    run_ok(tcp_main, NULL, 2);
}

/* ---- a short read followed by end of stream ------------------------------ */

static int say_and_close(void *arg)
{
    served *sv = arg;
    tern_conn *c;
    CHECK_EQ(accept_within(sv->l, &c, TERN_SEC), 0);
    /* wait for the client to park in its read, then data and FIN together */
    tern_sleep(20 * TERN_MS);
    CHECK_EQ(tern_conn_write(c, "last words", 10, NULL), 10);
    tern_conn_free(c);
    tern_waitgroup_done(&sv->done);
    return 0;
}

static int eof_main(void *arg)
{
    (void)arg;
    for (int round = 0; round < 20; round++) {
        tern_listener *l;
        CHECK_EQ(tern_listener_new(TERN_NET_TCP, "127.0.0.1:0", NULL, &l), 0);
        served sv;
        go_served(say_and_close, &sv, l);
        tern_conn *c;
        CHECK_EQ(tern_conn_dial(TERN_NET_TCP, tern_listener_addr(l), &c, NULL), 0);
        tern_conn_set_read_deadline(c, tern_now() + 2 * TERN_SEC);
        char buf[64];
        CHECK_EQ(tern_conn_read(c, buf, sizeof buf, NULL), 10);   /* short: the socket is empty */
        /* the FIN came with the data, in the same edge: the next read
         * must see it at once, not wait for an edge that never comes */
        CHECK_EQ(tern_conn_read(c, buf, sizeof buf, NULL), 0);
        CHECK_EQ(tern_conn_read(c, buf, sizeof buf, NULL), 0);
        tern_conn_free(c);
        tern_waitgroup_wait(&sv.done, NULL);
        tern_listener_free(l);
    }
    return 0;
}

static void read_is_short_then_eof_when_the_fin_comes_with_data(void)
{
    run_ok(eof_main, NULL, 2);
}

/* ---- dialing: refused, deadline, cancel --------------------------------- */

typedef struct canceller {
    tern_ctx *ctx;
    tern_waitgroup done;        /* the ctx may be freed only after this */
} canceller;

static int cancel_after(void *arg)
{
    canceller *c = arg;
    tern_sleep(20 * TERN_MS);
    tern_ctx_cancel(c->ctx);
    tern_waitgroup_done(&c->done);
    return 0;
}

static int dial_main(void *arg)
{
    (void)arg;
    tern_conn *c;
    /* a port nobody listens on: find one by listening and closing */
    tern_listener *l;
    CHECK_EQ(tern_listener_new(TERN_NET_TCP, "127.0.0.1:0", NULL, &l), 0);
    char addr[64];
    snprintf(addr, sizeof addr, "%s", tern_listener_addr(l));
    tern_listener_free(l);
    CHECK_EQ(tern_conn_dial(TERN_NET_TCP, addr, &c, NULL), -ECONNREFUSED);
    CHECK_EQ(tern_conn_dial(TERN_NET_TCP, "bad address", &c, NULL), -EINVAL);
    /* -ENOENT, or -EAGAIN where the resolver cannot be reached (CI) */
    int rr = tern_conn_dial(TERN_NET_TCP, "no-such-host.invalid:80", &c, NULL);
    CHECK(rr == -ENOENT || rr == -EAGAIN);

    /* a listener that never accepts, with its backlog full: further SYNs
     * are dropped, so a connect hangs until the context ends */
    tern_listener_options lo = { .backlog = 1 };
    CHECK_EQ(tern_listener_new(TERN_NET_TCP, "127.0.0.1:0", &lo, &l), 0);
    snprintf(addr, sizeof addr, "%s", tern_listener_addr(l));
    tern_conn *held[8];
    int nheld = 0;
    int rc = 0;
    while (nheld < 8) {
        tern_ctx *t;
        CHECK_EQ(tern_ctx_with_timeout(NULL, 100 * TERN_MS, &t), 0);
        rc = tern_conn_dial(TERN_NET_TCP, addr, &held[nheld], t);
        tern_ctx_free(t);
        if (rc < 0)
            break;
        nheld++;
    }
    CHECK_EQ(rc, -ETIMEDOUT);           /* the backlog filled up */
    int64_t t0 = tern_now();
    tern_ctx *t;
    CHECK_EQ(tern_ctx_with_timeout(NULL, 30 * TERN_MS, &t), 0);
    CHECK_EQ(tern_conn_dial(TERN_NET_TCP, addr, &c, t), -ETIMEDOUT);
    int64_t took = tern_now() - t0;
    if (took < 30 * TERN_MS || took > 2 * TERN_SEC)
        fprintf(stderr, "dial with a 30 ms deadline took %lld us\n", (long long)(took / 1000));
    CHECK(took >= 30 * TERN_MS && took < 2 * TERN_SEC);
    tern_ctx_free(t);
    canceller can = { .done = TERN_WAITGROUP_INIT };
    CHECK_EQ(tern_ctx_with_cancel(NULL, &can.ctx), 0);
    tern_waitgroup_add(&can.done, 1);
    tern_go(cancel_after, &can);
    t0 = tern_now();
    CHECK_EQ(tern_conn_dial(TERN_NET_TCP, addr, &c, can.ctx), -ECANCELED);
    took = tern_now() - t0;
    if (took < 19 * TERN_MS || took > 2 * TERN_SEC)
        fprintf(stderr, "dial cancelled after 20 ms took %lld us\n", (long long)(took / 1000));
    CHECK(took >= 19 * TERN_MS && took < 2 * TERN_SEC);
    tern_waitgroup_wait(&can.done, NULL);
    tern_ctx_free(can.ctx);
    tern_ctx *cc;
    /* an already-cancelled context does not even start */
    CHECK_EQ(tern_ctx_with_cancel(NULL, &cc), 0);
    tern_ctx_cancel(cc);
    CHECK_EQ(tern_conn_dial(TERN_NET_TCP, "127.0.0.1:1", &c, cc), -ECANCELED);
    tern_ctx_free(cc);
    for (int i = 0; i < nheld; i++)
        tern_conn_free(held[i]);
    tern_listener_free(l);
    return 0;
}

static void dial_reports_refused_bad_address_timeout_and_cancel(void)
{
    run_ok(dial_main, NULL, 2);
}

/* ---- Unix sockets -------------------------------------------------------- */

static int unix_server(void *arg)
{
    served *sv = arg;
    tern_conn *c;
    CHECK_EQ(accept_within(sv->l, &c, TERN_SEC), 0);
    CHECK_EQ(tern_conn_write(c, "unix", 4, NULL), 4);
    tern_conn_free(c);
    tern_waitgroup_done(&sv->done);
    return 0;
}

static int unix_main(void *arg)
{
    (void)arg;
    char path[64];
    snprintf(path, sizeof path, "/tmp/tern-test-%d.sock", (int)getpid());
    const char *names[] = { path, "@tern-test-abstract" };
    for (int i = 0; i < 2; i++) {
        tern_listener *l;
        tern_listener_options lo = { .unlink_existing = true };
        CHECK_EQ(tern_listener_new(TERN_NET_UNIX, names[i], &lo, &l), 0);
        CHECK(!strcmp(tern_listener_addr(l), names[i]));
        CHECK_EQ(tern_listener_port(l), 0);
        served sv;
        go_served(unix_server, &sv, l);
        tern_conn *c;
        CHECK_EQ(tern_conn_dial(TERN_NET_UNIX, names[i], &c, NULL), 0);
        char buf[8];
        CHECK_EQ(read_full(c, buf, 4), 4);
        CHECK(!memcmp(buf, "unix", 4));
        CHECK_EQ(tern_conn_read(c, buf, sizeof buf, NULL), 0);
        tern_conn_free(c);
        tern_waitgroup_wait(&sv.done, NULL);
        tern_listener_free(l);
    }
    CHECK_EQ(access(path, F_OK), -1);   /* the socket file is removed */
    tern_listener *l;
    CHECK_EQ(tern_listener_new(TERN_NET_UNIX, "", NULL, &l), -EINVAL);
    return 0;
}

static void unix_listener_serves_path_and_abstract_names_and_removes_its_file(void)
{
    run_ok(unix_main, NULL, 2);
}

/* ---- accept: deadline, close, descriptor shortage ------------------------ */

static int closer(void *arg)
{
    served *sv = arg;
    tern_sleep(10 * TERN_MS);
    tern_listener_close(sv->l);
    tern_waitgroup_done(&sv->done);
    return 0;
}

static int accept_main(void *arg)
{
    (void)arg;
    tern_listener *l;
    CHECK_EQ(tern_listener_new(TERN_NET_TCP, "127.0.0.1:0", NULL, &l), 0);
    tern_conn *c;
    CHECK_EQ(accept_within(l, &c, 10 * TERN_MS), -ETIMEDOUT);
    served sv;
    go_served(closer, &sv, l);
    CHECK_EQ(tern_listener_accept(l, &c, NULL), -ECANCELED);
    CHECK_EQ(tern_listener_accept(l, &c, NULL), -ECANCELED);
    tern_waitgroup_wait(&sv.done, NULL);
    tern_listener_free(l);
    /* the same port twice without reuseport */
    CHECK_EQ(tern_listener_new(TERN_NET_TCP, "127.0.0.1:0", NULL, &l), 0);
    tern_listener *l2;
    CHECK_EQ(tern_listener_new(TERN_NET_TCP, tern_listener_addr(l), NULL, &l2), -EADDRINUSE);
    tern_listener_free(l);
    /* with reuseport, both */
    tern_listener_options ro = { .reuseport = true };
    CHECK_EQ(tern_listener_new(TERN_NET_TCP, "127.0.0.1:0", &ro, &l), 0);
    CHECK_EQ(tern_listener_new(TERN_NET_TCP, tern_listener_addr(l), &ro, &l2), 0);
    tern_listener_free(l2);
    tern_listener_free(l);
    return 0;
}

static void accept_ends_at_its_deadline_and_on_close_and_reuseport_shares_a_port(void)
{
    run_ok(accept_main, NULL, 2);
}

static const char *shortage_report;

static void on_report(const char *msg, void *ctx)
{
    (void)ctx;
    if (strstr(msg, "accept"))
        shortage_report = strdup(msg);
}

static int emfile_main(void *arg)
{
    (void)arg;
    tern_runtime_set_report_hook(on_report, NULL);
    tern_listener *l;
    CHECK_EQ(tern_listener_new(TERN_NET_TCP, "127.0.0.1:0", NULL, &l), 0);
    tern_conn *c;
    CHECK_EQ(tern_conn_dial(TERN_NET_TCP, tern_listener_addr(l), &c, NULL), 0);
    /* use up every descriptor, then free one a little later */
    int fds[4096], n = 0;
    while (n < 4096 && (fds[n] = dup(0)) >= 0)
        n++;
    CHECK(n < 4096);
    tern_conn *a;
    CHECK_EQ(accept_within(l, &a, 30 * TERN_MS), -ETIMEDOUT);
    CHECK(shortage_report != NULL);     /* reported, not fatal */
    close(fds[--n]);
    CHECK_EQ(accept_within(l, &a, 2 * TERN_SEC), 0);
    tern_conn_free(a);
    while (n > 0)
        close(fds[--n]);
    tern_conn_free(c);
    tern_listener_free(l);
    return 0;
}

static void emfile_child(void)
{
    struct rlimit rl = { 64, 64 };
    CHECK(setrlimit(RLIMIT_NOFILE, &rl) == 0);
    run_ok(emfile_main, NULL, 1);
}

static void accept_survives_emfile(void)
{
    child_result r = run_child(emfile_child);
    CHECK(r.exited && r.code == 0);
}


/* ---- the conn's own calls: fds, nodelay, deadlines, sendfile ------------- */

/* Wrap both ends of a blocking Unix socketpair; the sending end's buffer
 * is small, so a writer parks soon when the other end does not read. */
static void conn_pair(tern_conn **a, tern_conn **b)
{
    int sv[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    CHECK_EQ(fcntl(sv[0], F_GETFL) & O_NONBLOCK, 0);
    int small = 4096;
    CHECK_EQ(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);
    CHECK_EQ(tern_conn_from_fd(sv[0], a), 0);
    CHECK_EQ(tern_conn_from_fd(sv[1], b), 0);
    CHECK_EQ(tern_conn_fd(*a), sv[0]);
    CHECK_EQ(tern_conn_fd(*b), sv[1]);
    /* made non-blocking: a read of an empty socket parks, never blocks */
    CHECK(fcntl(sv[0], F_GETFL) & O_NONBLOCK);
    CHECK(fcntl(sv[1], F_GETFL) & O_NONBLOCK);
}

static int tcp_nodelay_of(tern_conn *c)
{
    int v = -1;
    socklen_t len = sizeof v;
    CHECK_EQ(getsockopt(tern_conn_fd(c), IPPROTO_TCP, TCP_NODELAY, &v, &len), 0);
    return v != 0;
}

static int accept_one(void *arg)
{
    served *sv = arg;
    tern_conn *c;
    CHECK_EQ(accept_within(sv->l, &c, 2 * TERN_SEC), 0);
    CHECK_EQ(tcp_nodelay_of(c), 1);     /* accepted conns too */
    char b;
    CHECK_EQ(tern_conn_read(c, &b, 1, NULL), 0);
    tern_conn_free(c);
    tern_waitgroup_done(&sv->done);
    return 0;
}

static int fds_and_nodelay_main(void *arg)
{
    (void)arg;
    tern_listener *l;
    CHECK_EQ(tern_listener_new(TERN_NET_TCP, "127.0.0.1:0", NULL, &l), 0);
    /* the listener's fd is the listening socket on its port */
    int lfd = tern_listener_fd(l);
    CHECK(lfd >= 0);
    int on = 0;
    socklen_t ol = sizeof on;
    CHECK_EQ(getsockopt(lfd, SOL_SOCKET, SO_ACCEPTCONN, &on, &ol), 0);
    CHECK_EQ(on, 1);
    struct sockaddr_in sin;
    socklen_t sl = sizeof sin;
    CHECK_EQ(getsockname(lfd, (struct sockaddr *)&sin, &sl), 0);
    CHECK_EQ(ntohs(sin.sin_port), tern_listener_port(l));
    served sv;
    go_served(accept_one, &sv, l);

    tern_conn *c;
    CHECK_EQ(tern_conn_dial(TERN_NET_TCP, tern_listener_addr(l), &c, NULL), 0);
    /* the conn's fd is the connected socket: its peer is the listener */
    int fd = tern_conn_fd(c);
    CHECK(fd >= 0 && fd != lfd);
    sl = sizeof sin;
    CHECK_EQ(getpeername(fd, (struct sockaddr *)&sin, &sl), 0);
    CHECK_EQ(ntohs(sin.sin_port), tern_listener_port(l));
    /* TCP_NODELAY: on by default, and set both ways */
    CHECK_EQ(tcp_nodelay_of(c), 1);
    CHECK_EQ(tern_conn_set_nodelay(c, false), 0);
    CHECK_EQ(tcp_nodelay_of(c), 0);
    CHECK_EQ(tern_conn_set_nodelay(c, true), 0);
    CHECK_EQ(tcp_nodelay_of(c), 1);
    tern_conn_free(c);
    tern_waitgroup_wait(&sv.done, NULL);
    tern_listener_free(l);

    /* a Unix socket has no TCP_NODELAY: an error, not a crash or a 0 */
    tern_conn *a, *b;
    conn_pair(&a, &b);
    CHECK_EQ(tern_conn_set_nodelay(a, true), -EOPNOTSUPP);
    /* an fd that was non-blocking already stays so, and works */
    CHECK_EQ(tern_conn_write(a, "ok", 2, NULL), 2);
    char buf[4];
    CHECK_EQ(read_full(b, buf, 2), 2);
    CHECK(!memcmp(buf, "ok", 2));
    /* closing one wrapped end closes its fd: the peer sees end of stream */
    tern_conn_free(a);
    CHECK_EQ(tern_conn_read(b, buf, sizeof buf, NULL), 0);
    tern_conn_free(b);
    return 0;
}

static void conn_fds_are_the_sockets_and_nodelay_is_on_by_default(void)
{
    run_ok(fds_and_nodelay_main, NULL, 2);
}

typedef struct later {
    tern_conn *c;
    int rc;
    int64_t delay;
    tern_waitgroup done;
} later;

static int write_later(void *arg)
{
    later *w = arg;
    tern_sleep(w->delay);
    CHECK_EQ(tern_conn_write(w->c, "y", 1, NULL), 1);
    tern_waitgroup_done(&w->done);
    return 0;
}

/* Poll until the netpoller has taken what the kernel holds for fd's peer
 * (an idle P polls at once; a short sleep lets it). */
static void let_poller_run(void)
{
    tern_sleep(20 * TERN_MS);
}

/* tern__conn_read_quiet is true only while the last poll is fresh (under
 * a millisecond old): a slow machine (qemu, TSan) may need a few looks. */
static bool quiet_soon(tern_conn *c)
{
    for (int i = 0; i < 2000; i++) {
        if (tern__conn_read_quiet(c))
            return true;
        tern_sleep(TERN_MS);
    }
    return false;
}

/* ... and an event reaches the records once the poller has taken it. */
static bool stirred_soon(tern_conn *c)
{
    for (int i = 0; i < 2000; i++) {
        if (!tern__conn_read_quiet(c))
            return true;
        tern_sleep(TERN_MS);
    }
    return false;
}

/* Register c's socket with epoll as a first wait would (here one that
 * times out). */
static void enroll(tern_conn *c)
{
    CHECK_EQ(tern_fd_wait(tern_conn_fd(c), TERN_FD_READ, tern_now() + TERN_MS), -ETIMEDOUT);
}

/* Read what the peer sent, once the poller has taken its edge, with a
 * read that comes up short. */
static void read_short(tern_conn *c, const char *want)
{
    char buf[256];
    let_poller_run();
    ssize_t n = tern_conn_read(c, buf, sizeof buf, NULL);
    CHECK_EQ(n, (ssize_t)strlen(want));
    CHECK(!memcmp(buf, want, (size_t)n));
}

/* A coroutine parked on a socket keeps a poller in epoll_wait: the
 * netpoller's records follow the kernel only while one does. */
static int park_reading(void *arg)
{
    later *w = arg;
    char b;
    CHECK_EQ(tern_conn_read(w->c, &b, 1, NULL), 1);
    tern_waitgroup_done(&w->done);
    return 0;
}

static int read_quiet_main(void *arg)
{
    (void)arg;
    tern_conn *a, *b, *k1, *k2;
    /* nobody waits on any fd, so nobody polls: never quiet */
    conn_pair(&a, &b);
    enroll(a);
    CHECK_EQ(tern_conn_write(b, "ping", 4, NULL), 4);
    CHECK_EQ(tern_conn_wait_readable(a, NULL), 0);
    read_short(a, "ping");
    let_poller_run();
    CHECK(!tern__conn_read_quiet(a));
    tern_conn_free(a);
    tern_conn_free(b);

    conn_pair(&k1, &k2);
    later keeper = {.c = k1, .done = TERN_WAITGROUP_INIT};
    tern_waitgroup_add(&keeper.done, 1);
    tern_go(park_reading, &keeper);
    conn_pair(&a, &b);
    /* nothing came since the read that emptied it: quiet, without a syscall */
    CHECK(!tern__conn_read_quiet(a));           /* no read yet */
    enroll(a);
    CHECK(!tern__conn_read_quiet(a));
    CHECK_EQ(tern_conn_write(b, "ping", 4, NULL), 4);
    read_short(a, "ping");
    let_poller_run();
    CHECK(quiet_soon(a));
    CHECK(quiet_soon(a));                       /* asking changes nothing */
    /* bytes nobody asked for: not quiet, and the read still gets them */
    CHECK_EQ(tern_conn_write(b, "stray", 5, NULL), 5);
    CHECK(stirred_soon(a));
    char buf[256];
    CHECK_EQ(tern_conn_read(a, buf, sizeof buf, NULL), 5);
    let_poller_run();
    CHECK(quiet_soon(a));                       /* emptied again */
    /* a read that fills its buffer leaves the socket's state unknown */
    CHECK_EQ(tern_conn_write(b, "abcdef", 6, NULL), 6);
    let_poller_run();
    CHECK_EQ(tern_conn_read(a, buf, 3, NULL), 3);
    CHECK(!tern__conn_read_quiet(a));
    CHECK_EQ(tern_conn_read(a, buf, sizeof buf, NULL), 3);
    let_poller_run();
    CHECK(quiet_soon(a));
    /* the peer's FIN */
    CHECK_EQ(tern_conn_close_write(b), 0);
    CHECK(stirred_soon(a));
    CHECK_EQ(tern_conn_read(a, buf, sizeof buf, NULL), 0);
    CHECK(!tern__conn_read_quiet(a));           /* hung up: never quiet again */
    tern_conn_free(a);
    tern_conn_free(b);
    /* the peer closing the whole socket (no half-close first) */
    conn_pair(&a, &b);
    enroll(a);
    CHECK_EQ(tern_conn_write(b, "x", 1, NULL), 1);
    read_short(a, "x");
    let_poller_run();
    CHECK(quiet_soon(a));
    tern_conn_free(b);
    CHECK(stirred_soon(a));
    tern_conn_free(a);
    CHECK_EQ(tern_conn_write(k2, "z", 1, NULL), 1);
    tern_waitgroup_wait(&keeper.done, NULL);
    tern_conn_free(k1);
    tern_conn_free(k2);
    return 0;
}

static void conn_read_quiet_knows_an_emptied_socket_until_anything_comes(void)
{
    run_ok(read_quiet_main, NULL, 2);
}

static int wait_then_note(void *arg)
{
    later *w = arg;
    w->rc = tern_conn_wait_readable(w->c, NULL);
    tern_waitgroup_done(&w->done);
    return 0;
}

/* Until some coroutine is parked on the netpoller (bounded). */
static void until_fd_waiter(void)
{
    struct tern_runtime_stats st;
    int64_t end = tern_now() + 2 * TERN_SEC;
    while (tern_runtime_stats(&st, NULL, 0) >= 0 && st.fd_waiters == 0 && tern_now() < end)
        tern_sleep(TERN_MS);
    CHECK(st.fd_waiters > 0);
}

static int wait_readable_main(void *arg)
{
    (void)arg;
    tern_conn *a, *b;
    conn_pair(&a, &b);
    char buf[8];

    /* nothing to read: parks until the read deadline */
    tern_conn_set_read_deadline(b, tern_now() + 20 * TERN_MS);
    int64_t t0 = tern_now();
    CHECK_EQ(tern_conn_wait_readable(b, NULL), -ETIMEDOUT);
    CHECK(tern_now() - t0 >= 19 * TERN_MS);
    /* a deadline already past: at once */
    tern_conn_set_read_deadline(b, tern_now() - TERN_MS);
    CHECK_EQ(tern_conn_wait_readable(b, NULL), -ETIMEDOUT);
    tern_conn_set_read_deadline(b, TERN_FOREVER);

    /* bytes present: 0 at once, and they are still there to read */
    CHECK_EQ(tern_conn_write(a, "x", 1, NULL), 1);
    CHECK_EQ(tern_conn_wait_readable(b, NULL), 0);
    CHECK_EQ(tern_conn_wait_readable(b, NULL), 0);
    CHECK_EQ(tern_conn_read(b, buf, sizeof buf, NULL), 1);
    CHECK_EQ(buf[0], 'x');

    /* parks until bytes come (the write deadline has no say over it),
     * and the read after it gets them at once: the last read came up
     * short, but the edge that woke the wait must not be waited for again */
    tern_conn_set_write_deadline(b, tern_now() - TERN_MS);
    later w = {.c = a, .delay = 10 * TERN_MS, .done = TERN_WAITGROUP_INIT};
    tern_waitgroup_add(&w.done, 1);
    CHECK_EQ(tern_go(write_later, &w), 0);
    tern_conn_set_read_deadline(b, tern_now() + 2 * TERN_SEC);
    CHECK_EQ(tern_conn_wait_readable(b, NULL), 0);
    CHECK_EQ(tern_conn_read(b, buf, sizeof buf, NULL), 1);
    CHECK_EQ(buf[0], 'y');
    tern_conn_set_read_deadline(b, TERN_FOREVER);
    tern_waitgroup_wait(&w.done, NULL);

    /* end of stream is readable too: the read then says 0 */
    tern_conn_free(a);
    CHECK_EQ(tern_conn_wait_readable(b, NULL), 0);
    CHECK_EQ(tern_conn_read(b, buf, sizeof buf, NULL), 0);
    tern_conn_free(b);

    /* a waiter parked on a conn that is closed gets -EBADF */
    conn_pair(&a, &b);
    later p = {.c = b, .rc = 1, .done = TERN_WAITGROUP_INIT};
    tern_waitgroup_add(&p.done, 1);
    CHECK_EQ(tern_go(wait_then_note, &p), 0);
    until_fd_waiter();
    tern_conn_free(b);
    tern_waitgroup_wait(&p.done, NULL);
    CHECK_EQ(p.rc, -EBADF);
    tern_conn_free(a);
    return 0;
}

static void conn_wait_readable_parks_until_bytes_eof_or_close(void)
{
    run_ok(wait_readable_main, NULL, 2);
}

typedef struct drain {
    tern_conn *c;
    size_t got;
    char last;
    tern_waitgroup done;
} drain;

/* Read to end of stream, counting. */
static int drain_co(void *arg)
{
    drain *d = arg;
    char buf[8192];
    ssize_t k;
    while ((k = tern_conn_read(d->c, buf, sizeof buf, NULL)) > 0) {
        d->got += (size_t)k;
        d->last = buf[k - 1];
    }
    CHECK_EQ(k, 0);
    tern_waitgroup_done(&d->done);
    return 0;
}

static int write_deadline_main(void *arg)
{
    (void)arg;
    tern_conn *a, *b;
    conn_pair(&a, &b);
    size_t big = 1 << 20;               /* far more than both socket buffers */
    char *out = calloc(1, big);
    CHECK(out);

    /* nobody reads: the write parks until its deadline, then -ETIMEDOUT */
    tern_conn_set_write_deadline(a, tern_now() + 20 * TERN_MS);
    int64_t t0 = tern_now();
    CHECK_EQ(tern_conn_write(a, out, big, NULL), -ETIMEDOUT);
    CHECK(tern_now() - t0 >= 19 * TERN_MS);
    /* the read deadline is separate: reads are not cut short by it */
    CHECK_EQ(tern_conn_write(b, "r", 1, NULL), 1);
    char c;
    CHECK_EQ(tern_conn_read(a, &c, 1, NULL), 1);
    /* writev, with a deadline already past: at once */
    tern_conn_set_write_deadline(a, tern_now() - TERN_MS);
    struct iovec iov = {out, big};
    t0 = tern_now();
    CHECK_EQ(tern_conn_writev(a, &iov, 1, NULL), -ETIMEDOUT);
    CHECK(tern_now() - t0 < TERN_SEC);

    /* cleared, the conn is usable again: a whole write completes once
     * the peer reads (what the timed-out writes left, then this) */
    tern_conn_set_write_deadline(a, TERN_FOREVER);
    drain d = {.c = b, .done = TERN_WAITGROUP_INIT};
    tern_waitgroup_add(&d.done, 1);
    CHECK_EQ(tern_go(drain_co, &d), 0);
    memset(out, 'z', big);
    CHECK_EQ(tern_conn_write(a, out, big, NULL), (ssize_t)big);
    CHECK_EQ(tern_conn_close_write(a), 0);
    tern_waitgroup_wait(&d.done, NULL);
    CHECK(d.got > big);                 /* the timed-out writes had sent a little */
    CHECK_EQ(d.last, 'z');
    free(out);
    tern_conn_free(a);
    tern_conn_free(b);
    return 0;
}

static void conn_write_parks_until_its_deadline_then_etimedout(void)
{
    run_ok(write_deadline_main, NULL, 2);
}

/* A file of n patterned bytes, unlinked already; its fd. */
static int temp_file(size_t n)
{
    char path[] = "/tmp/tern-sendfile-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    unlink(path);
    char *p = malloc(n);
    CHECK(p);
    for (size_t i = 0; i < n; i++)
        p[i] = (char)(i * 13 + i / 251);
    CHECK_EQ(write(fd, p, n), (ssize_t)n);
    free(p);
    return fd;
}

typedef struct collect {
    tern_conn *c;
    char *buf;
    size_t want;
    tern_waitgroup done;
} collect;

static int collect_co(void *arg)
{
    collect *k = arg;
    CHECK_EQ(read_full(k->c, k->buf, k->want), (ssize_t)k->want);
    tern_waitgroup_done(&k->done);
    return 0;
}

static int sendfile_main(void *arg)
{
    (void)arg;
    size_t n = 300 * 1000;              /* more than the socket buffers: it parks */
    int fd = temp_file(n);
    char *file = malloc(n), *got = malloc(n);
    CHECK(file && got);
    CHECK_EQ(pread(fd, file, n, 0), (ssize_t)n);
    tern_conn *a, *b;
    conn_pair(&a, &b);

    /* the whole file; *offset ends at its end, the file position is untouched */
    collect k = {.c = b, .buf = got, .want = n, .done = TERN_WAITGROUP_INIT};
    tern_waitgroup_add(&k.done, 1);
    CHECK_EQ(tern_go(collect_co, &k), 0);
    off_t off = 0;
    CHECK_EQ(tern_conn_sendfile(a, fd, &off, n, NULL), (ssize_t)n);
    CHECK_EQ(off, (off_t)n);
    tern_waitgroup_wait(&k.done, NULL);
    CHECK(!memcmp(got, file, n));
    CHECK_EQ(lseek(fd, 0, SEEK_CUR), (off_t)n);     /* from write(): sendfile left it */

    /* a range from the middle */
    off = 1000;
    CHECK_EQ(tern_conn_sendfile(a, fd, &off, 5000, NULL), 5000);
    CHECK_EQ(off, 6000);
    CHECK_EQ(read_full(b, got, 5000), 5000);
    CHECK(!memcmp(got, file + 1000, 5000));
    /* nothing to send */
    CHECK_EQ(tern_conn_sendfile(a, fd, &off, 0, NULL), 0);
    CHECK_EQ(off, 6000);

    /* a file shorter than promised: the bytes it has, then an error */
    off = (off_t)n - 10;
    CHECK_EQ(tern_conn_sendfile(a, fd, &off, 100, NULL), -EIO);
    CHECK_EQ(off, (off_t)n);
    CHECK_EQ(read_full(b, got, 10), 10);
    CHECK(!memcmp(got, file + n - 10, 10));
    /* not a file */
    off = 0;
    CHECK_EQ(tern_conn_sendfile(a, -1, &off, 10, NULL), -EBADF);

    /* the write deadline bounds it: nobody reads */
    tern_conn_set_write_deadline(a, tern_now() + 20 * TERN_MS);
    off = 0;
    int64_t t0 = tern_now();
    CHECK_EQ(tern_conn_sendfile(a, fd, &off, n, NULL), -ETIMEDOUT);
    CHECK(tern_now() - t0 >= 19 * TERN_MS);
    CHECK(off > 0 && off < (off_t)n);   /* some went, and *offset says how much */
    tern_conn_set_write_deadline(a, TERN_FOREVER);

    /* the peer gone: -EPIPE (or -ECONNRESET), and no SIGPIPE kills us */
    tern_conn_free(b);
    off = 0;
    ssize_t rc = tern_conn_sendfile(a, fd, &off, n, NULL);
    CHECK(rc == -EPIPE || rc == -ECONNRESET);
    tern_conn_free(a);
    close(fd);
    free(file);
    free(got);
    return 0;
}

static void conn_sendfile_sends_ranges_and_reports_a_short_file(void)
{
    run_ok(sendfile_main, NULL, 2);
}

/* ---- a ctx bounds a parked call: cancellation and deadline ---------------- */

typedef struct cancel_job {
    tern_ctx *ctx;
    int64_t after;
} cancel_job;

static int cancel_later(void *arg)
{
    cancel_job *k = arg;
    tern_sleep(k->after);
    tern_ctx_cancel(k->ctx);
    return 0;
}

/* A cancellation is looked at every 10 ms while parked: well within this. */
#define PROMPT (500 * TERN_MS)

static int ctx_read_main(void *arg)
{
    (void)arg;
    tern_conn *a, *b;
    conn_pair(&a, &b);
    char buf[16];

    /* nothing arrives: a cancel from another coroutine ends the read */
    tern_ctx *ctx;
    CHECK_EQ(tern_ctx_with_cancel(NULL, &ctx), 0);
    cancel_job k = {ctx, 20 * TERN_MS};
    CHECK_EQ(tern_go(cancel_later, &k), 0);
    int64_t t0 = tern_now();
    CHECK_EQ(tern_conn_read(a, buf, sizeof buf, ctx), -ECANCELED);
    int64_t took = tern_now() - t0;
    CHECK(took >= 19 * TERN_MS && took < 20 * TERN_MS + PROMPT);
    /* a done ctx fails the call even with bytes waiting; they stay */
    CHECK_EQ(tern_conn_write(b, "x", 1, NULL), 1);
    CHECK_EQ(tern_conn_read(a, buf, 1, ctx), -ECANCELED);
    CHECK_EQ(tern_conn_wait_readable(a, ctx), -ECANCELED);
    tern_ctx_free(ctx);
    CHECK_EQ(tern_conn_read(a, buf, 1, NULL), 1);
    CHECK_EQ(buf[0], 'x');

    /* the ctx's deadline: -ETIMEDOUT, and the conn is still usable */
    CHECK_EQ(tern_ctx_with_timeout(NULL, 20 * TERN_MS, &ctx), 0);
    CHECK(ctx);
    t0 = tern_now();
    CHECK_EQ(tern_conn_read(a, buf, sizeof buf, ctx), -ETIMEDOUT);
    took = tern_now() - t0;
    CHECK(took >= 19 * TERN_MS && took < 20 * TERN_MS + PROMPT);
    tern_ctx_free(ctx);

    /* the earlier of the stored deadline and the ctx's wins, either way */
    CHECK_EQ(tern_ctx_with_timeout(NULL, 10 * TERN_SEC, &ctx), 0);
    tern_conn_set_read_deadline(a, tern_now() + 20 * TERN_MS);
    t0 = tern_now();
    CHECK_EQ(tern_conn_read(a, buf, sizeof buf, ctx), -ETIMEDOUT);
    CHECK(tern_now() - t0 < 20 * TERN_MS + PROMPT);
    tern_ctx_free(ctx);
    CHECK_EQ(tern_ctx_with_timeout(NULL, 20 * TERN_MS, &ctx), 0);
    tern_conn_set_read_deadline(a, tern_now() + 10 * TERN_SEC);
    t0 = tern_now();
    CHECK_EQ(tern_conn_wait_readable(a, ctx), -ETIMEDOUT);
    CHECK(tern_now() - t0 < 20 * TERN_MS + PROMPT);
    tern_ctx_free(ctx);
    tern_conn_set_read_deadline(a, TERN_FOREVER);

    /* a live ctx lets data through */
    CHECK_EQ(tern_ctx_with_timeout(NULL, 10 * TERN_SEC, &ctx), 0);
    CHECK_EQ(tern_conn_write(b, "yz", 2, ctx), 2);
    CHECK_EQ(tern_conn_wait_readable(a, ctx), 0);
    CHECK_EQ(read_full(a, buf, 2), 2);
    CHECK(!memcmp(buf, "yz", 2));
    tern_ctx_free(ctx);
    tern_conn_free(a);
    tern_conn_free(b);
    return 0;
}

static void conn_read_ends_with_its_ctx(void)
{
    run_ok(ctx_read_main, NULL, 2);
}

static int ctx_write_main(void *arg)
{
    (void)arg;
    tern_conn *a, *b;
    conn_pair(&a, &b);
    size_t big = 1 << 20;               /* far more than both socket buffers */
    char *out = calloc(1, big);
    CHECK(out);

    /* nobody reads: a cancel ends the parked write */
    tern_ctx *ctx;
    CHECK_EQ(tern_ctx_with_cancel(NULL, &ctx), 0);
    cancel_job k = {ctx, 20 * TERN_MS};
    CHECK_EQ(tern_go(cancel_later, &k), 0);
    int64_t t0 = tern_now();
    CHECK_EQ(tern_conn_write(a, out, big, ctx), -ECANCELED);
    int64_t took = tern_now() - t0;
    CHECK(took >= 19 * TERN_MS && took < 20 * TERN_MS + PROMPT);
    tern_ctx_free(ctx);

    /* the ctx's deadline, for write, writev and sendfile */
    CHECK_EQ(tern_ctx_with_timeout(NULL, 20 * TERN_MS, &ctx), 0);
    CHECK(ctx);
    t0 = tern_now();
    CHECK_EQ(tern_conn_write(a, out, big, ctx), -ETIMEDOUT);
    took = tern_now() - t0;
    CHECK(took >= 19 * TERN_MS && took < 20 * TERN_MS + PROMPT);
    struct iovec iov = {out, big};
    CHECK_EQ(tern_conn_writev(a, &iov, 1, ctx), -ETIMEDOUT);
    tern_ctx_free(ctx);
    int fd = temp_file(big);
    CHECK_EQ(tern_ctx_with_timeout(NULL, 20 * TERN_MS, &ctx), 0);
    off_t off = 0;
    t0 = tern_now();
    CHECK_EQ(tern_conn_sendfile(a, fd, &off, big, ctx), -ETIMEDOUT);
    CHECK(tern_now() - t0 < 20 * TERN_MS + PROMPT);
    tern_ctx_free(ctx);
    close(fd);

    /* a cancel during a writev ends it too */
    CHECK_EQ(tern_ctx_with_cancel(NULL, &ctx), 0);
    k.ctx = ctx;
    CHECK_EQ(tern_go(cancel_later, &k), 0);
    iov = (struct iovec){out, big};
    t0 = tern_now();
    CHECK_EQ(tern_conn_writev(a, &iov, 1, ctx), -ECANCELED);
    CHECK(tern_now() - t0 < 20 * TERN_MS + PROMPT);
    tern_ctx_free(ctx);
    free(out);
    tern_conn_free(a);
    tern_conn_free(b);
    return 0;
}

static void conn_write_ends_with_its_ctx(void)
{
    run_ok(ctx_write_main, NULL, 2);
}

static int ctx_accept_main(void *arg)
{
    (void)arg;
    tern_listener *l;
    CHECK_EQ(tern_listener_new(TERN_NET_TCP, "127.0.0.1:0", NULL, &l), 0);
    tern_ctx *ctx; CHECK_EQ(tern_ctx_with_cancel(NULL, &ctx), 0);
    cancel_job k = {ctx, 20 * TERN_MS};
    CHECK_EQ(tern_go(cancel_later, &k), 0);
    tern_conn *c = (tern_conn *)1;
    int64_t t0 = tern_now();
    CHECK_EQ(tern_listener_accept(l, &c, ctx), -ECANCELED);
    CHECK(tern_now() - t0 < 20 * TERN_MS + PROMPT);
    CHECK(c == NULL);
    tern_ctx_free(ctx);
    /* and a dial bounded by a done ctx does not start */
    CHECK_EQ(tern_ctx_with_cancel(NULL, &ctx), 0);
    tern_ctx_cancel(ctx);
    CHECK_EQ(tern_conn_dial(TERN_NET_TCP, tern_listener_addr(l), &c, ctx), -ECANCELED);
    CHECK(c == NULL);
    tern_ctx_free(ctx);
    tern_listener_free(l);
    return 0;
}

static void accept_ends_with_its_ctx(void)
{
    run_ok(ctx_accept_main, NULL, 2);
}

/* ---- NULL objects: a message naming the function, not a SIGSEGV ---------- */

static int null_case;

static void null_child(void)
{
    char b[4] = "";
    tern_conn *c = NULL;
    switch (null_case) {
    case 0: (void)tern_conn_read(NULL, b, 1, NULL); break;
    case 1: (void)tern_conn_write(NULL, b, 1, NULL); break;
    case 2: (void)tern_listener_accept(NULL, &c, NULL); break;
    case 3: (void)tern_conn_remote_addr(NULL); break;
    case 4: (void)tern_listener_port(NULL); break;
    }
}

static void null_objects_abort_naming_the_function(void)
{
    static const char *const want[] = {
        "tern: tern_conn_read: c is NULL", "tern: tern_conn_write: c is NULL",
        "tern: tern_listener_accept: l is NULL", "tern: tern_conn_remote_addr: c is NULL",
        "tern: tern_listener_port: l is NULL",
    };
    for (null_case = 0; null_case < 5; null_case++) {
        child_result r = run_child(null_child);
        CHECK(!r.exited && r.sig == SIGABRT);
        CHECK(strstr(r.err, want[null_case]) != NULL);
    }
    /* freeing NULL is no error */
    tern_conn_free(NULL);
    tern_listener_free(NULL);
}

/* ---- signals ------------------------------------------------------------- */

typedef struct sig_waiter {
    int sig;                    /* the one it waits for */
    int got;
    int64_t wait;               /* ns before it returns (0: 2 s) */
    int64_t at;                 /* when it returned */
    tern_waitgroup done;
} sig_waiter;

static int wait_one(void *arg)
{
    sig_waiter *w = arg;
    w->got = tern_signal_wait(&w->sig, 1, tern_now() + (w->wait ? w->wait : 2 * TERN_SEC));
    w->at = tern_now();
    tern_waitgroup_done(&w->done);
    return 0;
}

static uint64_t runtime_wakeups(void)
{
    struct tern_runtime_stats st;
    CHECK(tern_runtime_stats(&st, NULL, 0) > 0);
    return st.wakeups;
}

static int signal_main(void *arg)
{
    (void)arg;
    int usr1 = SIGUSR1;
    CHECK_EQ(tern_signal_wait(&usr1, 1, tern_now()), -ENOENT);   /* not notified */
    int bad[] = { SIGKILL };
    CHECK_EQ(tern_signal_notify(bad, 1), -EINVAL);
    CHECK_EQ(tern_signal_wait(bad, 1, tern_now()), -EINVAL);
    int sigs[] = { SIGUSR1, SIGUSR2 };
    CHECK_EQ(tern_signal_notify(sigs, 2), 0);
    CHECK_EQ(tern_signal_wait(sigs, 2, tern_now() + 10 * TERN_MS), -ETIMEDOUT);
    raise(SIGUSR2);                     /* before the wait: not lost */
    CHECK_EQ(tern_signal_wait(sigs, 2, TERN_FOREVER), SIGUSR2);
#if defined(__SANITIZE_THREAD__) || TERN_TEST_CLANG_TSAN
    /* TSan runs a handler only when the thread it was sent to makes an
     * intercepted call; a process-directed signal may go to an idle
     * worker parked in a raw futex and wait there */
    raise(SIGUSR1);
#else
    kill(getpid(), SIGUSR1);            /* to the process: any thread takes it */
#endif
    CHECK_EQ(tern_signal_wait(sigs, 2, tern_now() + TERN_SEC), SIGUSR1);
    /* two waiters for different signals: each gets its own, none is lost
     * to the other (a service's SIGTERM and its config's SIGHUP) */
    sig_waiter a = { .sig = SIGUSR1, .done = TERN_WAITGROUP_INIT };
    sig_waiter b = { .sig = SIGUSR2, .done = TERN_WAITGROUP_INIT };
    tern_waitgroup_add(&a.done, 1);
    tern_waitgroup_add(&b.done, 1);
    tern_go(wait_one, &a);
    tern_go(wait_one, &b);
    tern_sleep(20 * TERN_MS);           /* both waiting */
    /* the one not on the eventfd sleeps too: it used to poll every 10 ms,
     * 100 wake-ups a second in every idle service (SIGTERM and SIGHUP) */
    uint64_t w0 = runtime_wakeups();
    tern_sleep(300 * TERN_MS);
    uint64_t woken = runtime_wakeups() - w0, most = idle_wakeups_allowed(10, 300 * TERN_MS, 2);
    if (woken > most)
        fprintf(stderr, "   %llu wake-ups in 300 ms of two idle waiters (at most %llu)\n",
                (unsigned long long)woken, (unsigned long long)most);
    CHECK(woken <= most);
    raise(SIGUSR2);
    tern_sleep(30 * TERN_MS);
    raise(SIGUSR1);
    tern_waitgroup_wait(&a.done, NULL);
    tern_waitgroup_wait(&b.done, NULL);
    CHECK_EQ(a.got, SIGUSR1);
    CHECK_EQ(b.got, SIGUSR2);
    /* the eventfd's waiter gives up (its deadline): the other takes the
     * fd over and still gets its signal at once, not at its deadline */
    sig_waiter c = { .sig = SIGUSR1, .wait = 50 * TERN_MS, .done = TERN_WAITGROUP_INIT };
    sig_waiter d = { .sig = SIGUSR2, .done = TERN_WAITGROUP_INIT };
    tern_waitgroup_add(&c.done, 1);
    tern_waitgroup_add(&d.done, 1);
    tern_go(wait_one, &c);
    tern_sleep(10 * TERN_MS);           /* c first: c holds the eventfd */
    tern_go(wait_one, &d);
    tern_waitgroup_wait(&c.done, NULL);
    CHECK_EQ(c.got, -ETIMEDOUT);
    tern_sleep(50 * TERN_MS);
    int64_t sent = tern_now();
    raise(SIGUSR2);
    tern_waitgroup_wait(&d.done, NULL);
    CHECK_EQ(d.got, SIGUSR2);
    CHECK(d.at - sent < 500 * TERN_MS);
    return 0;
}

static void signal_child(void)
{
    run_ok(signal_main, NULL, 2);
}

static void signal_wait_returns_each_notified_signal_once(void)
{
    child_result r = run_child(signal_child);
    CHECK(r.exited && r.code == 0);
}

TESTS(T(split_host_port_handles_brackets_and_refuses_malformed),
      T(tcp_conn_echoes_every_byte_with_deadlines_and_half_close),
      T(read_is_short_then_eof_when_the_fin_comes_with_data),
      T(dial_reports_refused_bad_address_timeout_and_cancel),
      T(unix_listener_serves_path_and_abstract_names_and_removes_its_file),
      T(accept_ends_at_its_deadline_and_on_close_and_reuseport_shares_a_port),
      T(accept_survives_emfile), T(conn_fds_are_the_sockets_and_nodelay_is_on_by_default),
      T(conn_wait_readable_parks_until_bytes_eof_or_close),
      T(conn_read_quiet_knows_an_emptied_socket_until_anything_comes),
      T(conn_write_parks_until_its_deadline_then_etimedout),
      T(conn_sendfile_sends_ranges_and_reports_a_short_file), T(conn_read_ends_with_its_ctx),
      T(conn_write_ends_with_its_ctx), T(accept_ends_with_its_ctx),
      T(null_objects_abort_naming_the_function), T(signal_wait_returns_each_notified_signal_once))
