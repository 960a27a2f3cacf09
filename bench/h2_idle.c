/* bench/h2_idle.c - hold N idle HTTP/2 (h2c) connections to a server.
 *
 *   h2_idle HOST PORT N [request|settings] [PATH]
 *
 * Opens N TCP connections to HOST:PORT (an IPv4 address) and speaks h2c
 * with prior knowledge on each: the client preface, an empty SETTINGS
 * frame and (mode "request", the default) one GET PATH (default
 * /plaintext) on stream 1.  A connection is ready when the server's
 * SETTINGS has arrived (and been acknowledged), the server has acknowledged
 * ours and, in "request" mode, the response on stream 1 has ended with a
 * 200.  Then every connection stays open and idle; the program prints
 * "ready" on stdout and waits until stdin reaches end of file or a signal
 * ends it.  Before it exits it says on stderr how many connections the
 * server closed (or wrote on) meanwhile.  Exits 1 after a message on
 * stderr if a connection fails, the server sends GOAWAY or RST_STREAM, or
 * the response is not a 200.
 *
 * bench/compare.sh h2 reads the server's VmRSS before starting this and a
 * few seconds after "ready": (after - before) / N is the memory the server
 * spends per idle HTTP/2 connection (h2_idle_conn_rss_bytes).
 *
 * Raw frames, no HTTP/2 library: the request's header block is four HPACK
 * representations from the static table (RFC 7541 appendix A), unhuffmaned.
 * The response's header block is not decoded: only its :status, which every
 * server here sends first as an indexed field (0x88 is ":status 200").
 * At most WINDOW connections are in progress at once, so that the server's
 * listen backlog never overflows.  Plain C, epoll; no tern.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { WINDOW = 128, BUF_MAX = 65536 + 9 };

enum { F_DATA = 0, F_HEADERS = 1, F_RST_STREAM = 3, F_SETTINGS = 4, F_PING = 6, F_GOAWAY = 7 };
enum { FL_ACK = 1, FL_END_STREAM = 1, FL_END_HEADERS = 4 };

enum state { ST_CONNECTING, ST_SENDING, ST_READING, ST_DONE };

struct conn {
    int fd;
    enum state st;
    size_t sent;
    size_t got;
    unsigned char *buf; /* unparsed received bytes, freed when done */
    int got_settings, got_ack, got_status, got_end;
};

static unsigned char req[512];
static size_t req_len;
static int want_request = 1;

static void die(const char *what) {
    fprintf(stderr, "h2_idle: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void fail(const char *msg, long i) {
    fprintf(stderr, "h2_idle: connection %ld: %s\n", i, msg);
    exit(1);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static size_t frame_hdr(unsigned char *p, size_t len, int type, int flags, uint32_t sid) {
    p[0] = (unsigned char)(len >> 16);
    p[1] = (unsigned char)(len >> 8);
    p[2] = (unsigned char)len;
    p[3] = (unsigned char)type;
    p[4] = (unsigned char)flags;
    p[5] = (unsigned char)(sid >> 24);
    p[6] = (unsigned char)(sid >> 16);
    p[7] = (unsigned char)(sid >> 8);
    p[8] = (unsigned char)sid;
    return 9;
}

/* The preface, our SETTINGS (empty) and, in request mode, HEADERS on stream 1. */
static void build_request(const char *host, const char *port, const char *path) {
    static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    size_t n = 0;
    memcpy(req, preface, 24);
    n += 24;
    n += frame_hdr(req + n, 0, F_SETTINGS, 0, 0);
    if (!want_request) {
        req_len = n;
        return;
    }
    char authority[300];
    int alen = snprintf(authority, sizeof authority, "%s:%s", host, port);
    size_t plen = strlen(path);
    if (alen <= 0 || alen > 126 || plen > 126) {
        fprintf(stderr, "h2_idle: host:port or path too long\n");
        exit(2);
    }
    unsigned char blk[300];
    size_t b = 0;
    blk[b++] = 0x82; /* :method GET */
    blk[b++] = 0x86; /* :scheme http */
    blk[b++] = 0x44; /* :path, literal with incremental indexing, name index 4 */
    blk[b++] = (unsigned char)plen;
    memcpy(blk + b, path, plen);
    b += plen;
    blk[b++] = 0x41; /* :authority, name index 1 */
    blk[b++] = (unsigned char)alen;
    memcpy(blk + b, authority, (size_t)alen);
    b += (size_t)alen;
    n += frame_hdr(req + n, b, F_HEADERS, FL_END_STREAM | FL_END_HEADERS, 1);
    memcpy(req + n, blk, b);
    n += b;
    req_len = n;
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

/* A small write on a connection with an empty send buffer: all or die. */
static void send_all(int fd, const void *p, size_t n, long i) {
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w != (ssize_t)n)
        fail("short write of a control frame", i);
}

/* Parse the complete frames in c->buf; keep the incomplete tail. */
static void parse_frames(struct conn *c, long i) {
    size_t off = 0;
    while (c->got - off >= 9) {
        const unsigned char *h = c->buf + off;
        size_t len = ((size_t)h[0] << 16) | ((size_t)h[1] << 8) | h[2];
        int type = h[3], flags = h[4];
        uint32_t sid = ((uint32_t)(h[5] & 0x7f) << 24) | ((uint32_t)h[6] << 16) |
                       ((uint32_t)h[7] << 8) | h[8];
        if (len > BUF_MAX - 9)
            fail("frame larger than 64 KiB", i);
        if (c->got - off < 9 + len)
            break;
        const unsigned char *pl = h + 9;
        switch (type) {
        case F_SETTINGS:
            if (flags & FL_ACK) {
                c->got_ack = 1;
            } else {
                unsigned char ack[9];
                frame_hdr(ack, 0, F_SETTINGS, FL_ACK, 0);
                send_all(c->fd, ack, 9, i);
                c->got_settings = 1;
            }
            break;
        case F_PING:
            if (!(flags & FL_ACK) && len == 8) {
                unsigned char pong[17];
                frame_hdr(pong, 8, F_PING, FL_ACK, 0);
                memcpy(pong + 9, pl, 8);
                send_all(c->fd, pong, 17, i);
            }
            break;
        case F_GOAWAY:
            fail("the server sent GOAWAY", i);
            break;
        case F_RST_STREAM:
            fail("the server reset stream 1", i);
            break;
        case F_HEADERS:
            if (sid == 1 && !c->got_status) {
                size_t skip = 0;
                if (flags & 0x8) /* PADDED */
                    skip = 1;
                if (flags & 0x20) /* PRIORITY */
                    skip += 5;
                if (len <= skip || pl[skip] != 0x88)
                    fail("the response's first field is not :status 200 (indexed)", i);
                c->got_status = 1;
            }
            if (sid == 1 && (flags & FL_END_STREAM))
                c->got_end = 1;
            break;
        case F_DATA:
            if (sid == 1 && (flags & FL_END_STREAM))
                c->got_end = 1;
            break;
        default: /* WINDOW_UPDATE, PRIORITY, CONTINUATION ...: ignored */
            break;
        }
        off += 9 + len;
    }
    memmove(c->buf, c->buf + off, c->got - off);
    c->got -= off;
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
        c->buf = malloc(BUF_MAX);
        if (!c->buf)
            die("malloc");
    }
    if (c->st == ST_READING) {
        for (;;) {
            ssize_t r = recv(c->fd, c->buf + c->got, BUF_MAX - c->got, 0);
            if (r < 0) {
                if (errno == EAGAIN)
                    return 0;
                die("recv");
            }
            if (r == 0)
                fail("server closed the connection before it was ready", i);
            c->got += (size_t)r;
            parse_frames(c, i);
            if (c->got_settings && c->got_ack && (!want_request || (c->got_status && c->got_end))) {
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
    if (argc < 4 || argc > 6) {
        fprintf(stderr, "usage: h2_idle HOST PORT N [request|settings] [PATH]\n");
        return 2;
    }
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[2]))};
    if (inet_pton(AF_INET, argv[1], &sa.sin_addr) != 1) {
        fprintf(stderr, "h2_idle: %s is not an IPv4 address\n", argv[1]);
        return 2;
    }
    long n = strtol(argv[3], NULL, 10);
    if (n <= 0) {
        fprintf(stderr, "h2_idle: N must be positive\n");
        return 2;
    }
    if (argc >= 5) {
        if (!strcmp(argv[4], "settings"))
            want_request = 0;
        else if (strcmp(argv[4], "request") != 0) {
            fprintf(stderr, "h2_idle: mode must be request or settings\n");
            return 2;
        }
    }
    build_request(argv[1], argv[2], argc == 6 ? argv[5] : "/plaintext");

    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)n + 16) {
        fprintf(stderr, "h2_idle: open-file limit %llu is below N+16 (%ld): raise ulimit -n\n",
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
            fprintf(stderr, "h2_idle: no progress for 10 s (%ld of %ld done)\n", done, n);
            return 1;
        }
        for (int j = 0; j < k; j++) {
            long i = (long)evs[j].data.u64;
            struct conn *c = &cs[i];
            if (c->st == ST_DONE)
                continue;
            if (step(c, i)) {
                if (epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL) != 0)
                    die("epoll_ctl del");
                done++;
                active--;
            }
        }
    }
    fprintf(stderr, "h2_idle: %ld h2c connections open (%s), in %.2f s\n", n,
            want_request ? "SETTINGS exchanged, one request each" : "SETTINGS exchanged",
            now_s() - t0);
    printf("ready\n");
    fflush(stdout);

    char sink[256];
    while (read(0, sink, sizeof sink) > 0) {
    }

    long closed = 0;
    for (long i = 0; i < n; i++) {
        struct pollfd pfd = {.fd = cs[i].fd, .events = POLLIN | POLLRDHUP};
        if (poll(&pfd, 1, 0) == 1 && (pfd.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLIN)))
            closed++;
    }
    if (closed)
        fprintf(stderr, "h2_idle: the server closed (or wrote on) %ld of %ld idle connections\n",
                closed, n);
    return 0;
}
