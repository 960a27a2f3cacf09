/* bench/http_idle.c - hold N idle keep-alive connections to an HTTP server.
 *
 *   http_idle HOST PORT N [PATH]
 *
 * Opens N TCP connections to HOST:PORT (an IPv4 address), sends one
 * "GET PATH HTTP/1.1" (PATH defaults to /plaintext) on each and reads each
 * response in full (it must be a 200 with Content-Length or chunked), then
 * keeps every connection open and idle, prints "ready" on stdout and waits
 * until stdin reaches end of file or a signal ends the process.  Before it
 * exits it says on stderr how many connections the server closed meanwhile.
 * Exits 1 (after a message on stderr) if a connection fails or a response
 * is not a 200.
 *
 * bench/compare.sh http reads the server's VmRSS before starting this and
 * about a second after "ready": (after - before) / N is the memory the
 * server spends per idle keep-alive connection (idle_conn_rss_bytes).
 *
 * At most WINDOW connections are in progress (connecting or waiting for
 * their response) at once, so that the server's listen backlog never
 * overflows (a dropped SYN costs a 1 s retransmit).  Plain C, epoll; no tern.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { WINDOW = 128, RESP_MAX = 8192 };

enum state { ST_CONNECTING, ST_SENDING, ST_READING, ST_DONE };

struct conn {
    int fd;
    enum state st;
    size_t sent;
    size_t got;
    char *buf; /* response bytes, freed when done */
};

static const char *req;
static size_t req_len;

static void die(const char *what) {
    fprintf(stderr, "http_idle: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void fail(const char *msg, long i) {
    fprintf(stderr, "http_idle: connection %ld: %s\n", i, msg);
    exit(1);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Is buf[0..n) a complete response?  1 yes, 0 not yet; exits on a bad one. */
static int response_complete(const char *buf, size_t n, long i) {
    const char *end = memmem(buf, n, "\r\n\r\n", 4);
    if (!end)
        return 0;
    if (n < 12 || memcmp(buf, "HTTP/1.", 7) != 0 || memcmp(buf + 8, " 200", 4) != 0)
        fail("response is not a 200", i);
    size_t head = (size_t)(end - buf) + 4;
    /* Look for Content-Length / Transfer-Encoding, case-insensitively. */
    long clen = -1;
    int chunked = 0;
    const char *p = memchr(buf, '\n', head);
    while (p && p + 1 < buf + head) {
        const char *line = p + 1;
        if (strncasecmp(line, "content-length:", 15) == 0)
            clen = strtol(line + 15, NULL, 10);
        else if (strncasecmp(line, "transfer-encoding:", 18) == 0) {
            const char *eol = memchr(line, '\r', (size_t)(buf + head - line));
            if (eol && memmem(line, (size_t)(eol - line), "chunked", 7))
                chunked = 1;
        }
        p = memchr(line, '\n', (size_t)(buf + head - line));
    }
    if (chunked)
        return n >= head + 5 && memcmp(buf + n - 5, "0\r\n\r\n", 5) == 0;
    if (clen < 0)
        fail("response has neither Content-Length nor chunked encoding", i);
    if (n > head + (size_t)clen)
        fail("more bytes than the response announced", i);
    return n == head + (size_t)clen;
}

static int open_conn(const struct sockaddr_in *sa, int ep, long i) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die("socket (raise ulimit -n)");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (const struct sockaddr *)sa, sizeof *sa) != 0 && errno != EINPROGRESS)
        die("connect");
    struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN, .data.u64 = (uint64_t)i};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0)
        die("epoll_ctl");
    return fd;
}

/* Drive connection i as far as it goes without blocking; 1 when done. */
static int step(struct conn *c, long i) {
    if (c->st == ST_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof err;
        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
            die("getsockopt");
        if (err == EINPROGRESS)
            return 0;
        if (err != 0) {
            errno = err;
            die("connect");
        }
        c->st = ST_SENDING;
    }
    if (c->st == ST_SENDING) {
        while (c->sent < req_len) {
            ssize_t w = send(c->fd, req + c->sent, req_len - c->sent, MSG_NOSIGNAL);
            if (w < 0) {
                if (errno == EAGAIN || errno == ENOTCONN)
                    return 0;
                die("send");
            }
            c->sent += (size_t)w;
        }
        c->st = ST_READING;
        c->buf = malloc(RESP_MAX);
        if (!c->buf)
            die("malloc");
    }
    if (c->st == ST_READING) {
        for (;;) {
            if (c->got == RESP_MAX)
                fail("response larger than 8 KiB", i);
            ssize_t r = recv(c->fd, c->buf + c->got, RESP_MAX - c->got, 0);
            if (r < 0) {
                if (errno == EAGAIN)
                    return 0;
                die("recv");
            }
            if (r == 0)
                fail("server closed the connection before the response was complete", i);
            c->got += (size_t)r;
            if (response_complete(c->buf, c->got, i)) {
                free(c->buf);
                c->buf = NULL;
                c->st = ST_DONE;
                return 1;
            }
        }
    }
    return c->st == ST_DONE;
}

int main(int argc, char **argv) {
    if (argc < 4 || argc > 5) {
        fprintf(stderr, "usage: http_idle HOST PORT N [PATH]\n");
        return 2;
    }
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[2]))};
    if (inet_pton(AF_INET, argv[1], &sa.sin_addr) != 1) {
        fprintf(stderr, "http_idle: %s is not an IPv4 address\n", argv[1]);
        return 2;
    }
    long n = strtol(argv[3], NULL, 10);
    if (n <= 0) {
        fprintf(stderr, "http_idle: N must be positive\n");
        return 2;
    }
    const char *path = argc == 5 ? argv[4] : "/plaintext";
    char *r = NULL;
    if (asprintf(&r, "GET %s HTTP/1.1\r\nHost: %s:%s\r\n\r\n", path, argv[1], argv[2]) < 0)
        die("asprintf");
    req = r;
    req_len = strlen(r);

    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)n + 16) {
        fprintf(stderr, "http_idle: open-file limit %llu is below N+16 (%ld): raise ulimit -n\n",
                (unsigned long long)rl.rlim_cur, n + 16);
        return 1;
    }

    struct conn *cs = calloc((size_t)n, sizeof *cs);
    if (!cs)
        die("calloc");
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        die("epoll_create1");

    double t0 = now_s();
    long opened = 0, done = 0, active = 0;
    struct epoll_event evs[256];
    while (done < n) {
        while (active < WINDOW && opened < n) {
            cs[opened].fd = open_conn(&sa, ep, opened);
            cs[opened].st = ST_CONNECTING;
            opened++;
            active++;
        }
        int k = epoll_wait(ep, evs, 256, 10000);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            die("epoll_wait");
        }
        if (k == 0) {
            fprintf(stderr, "http_idle: no progress for 10 s (%ld of %ld done)\n", done, n);
            return 1;
        }
        for (int j = 0; j < k; j++) {
            long i = (long)evs[j].data.u64;
            struct conn *c = &cs[i];
            if (c->st == ST_DONE)
                continue;
            if (step(c, i)) {
                /* Idle from now on: no more events wanted. */
                if (epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL) != 0)
                    die("epoll_ctl del");
                done++;
                active--;
            }
        }
    }
    fprintf(stderr, "http_idle: %ld connections open, one response each, in %.2f s\n", n,
            now_s() - t0);
    printf("ready\n");
    fflush(stdout);

    /* Idle until stdin closes. */
    char sink[256];
    while (read(0, sink, sizeof sink) > 0) {
    }

    /* How many did the server close meanwhile? */
    long closed = 0;
    for (long i = 0; i < n; i++) {
        struct pollfd pfd = {.fd = cs[i].fd, .events = POLLIN | POLLRDHUP};
        if (poll(&pfd, 1, 0) == 1 && (pfd.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLIN)))
            closed++;
    }
    if (closed)
        fprintf(stderr, "http_idle: the server closed (or wrote on) %ld of %ld idle connections\n",
                closed, n);
    return 0;
}
