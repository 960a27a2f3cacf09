/* bench/tls_hs.c - TLS connections per second against an HTTPS server.
 *
 *   tls_hs HOST PORT CONNS SECONDS full|resumed [PATH]
 *
 * Keeps CONNS connections in progress to HOST:PORT (an IPv4 address) for
 * SECONDS seconds.  Each connection: TCP connect, a TLS handshake (SNI
 * "localhost", ALPN http/1.1, certificate not verified: the point is the
 * server's cost, and the server still proves its key with a CertificateVerify
 * signature), one "GET PATH HTTP/1.1" (PATH defaults to /plaintext) with
 * "Connection: close", the response read to the end of the connection (it
 * must start with "HTTP/1.1 200"); then the next connection starts in its
 * place.
 *   full     every handshake is a full one (no session offered)
 *   resumed  each slot offers the session (TLS 1.3: the latest ticket) its
 *            previous connection got; a slot's first connection is full.
 *            Exits 1 if fewer than 90% of the connections counted resumed.
 * Prints on stdout the connections completed in the SECONDS window per
 * second; on stderr the counts, the TLS version, cipher and group of the
 * first handshake, and how many were resumed.  Exits 1 (after a message on
 * stderr) if more than 1% of the connections fail.
 *
 * The client's key exchange groups, ciphers and versions are OpenSSL's
 * defaults.  Plain C, OpenSSL 3, epoll, non-blocking; no tern.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

enum st { ST_CONNECTING, ST_HANDSHAKE, ST_WRITING, ST_READING };

struct slot {
    int fd;
    SSL *ssl;
    enum st st;
    size_t sent;
    size_t got;
    char head[16];        /* the response's first bytes */
    SSL_SESSION *session; /* resumed mode: offered by the next connection */
};

static struct sockaddr_in sa;
static SSL_CTX *ctx;
static int ep;
static int resumed_mode;
static char req[512];
static size_t req_len;
static long completed, failed, reused, started;
static int described;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what) {
    fprintf(stderr, "tls_hs: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void start(struct slot *s, long idx) {
    s->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s->fd < 0)
        die("socket");
    int one = 1;
    setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(s->fd, (const struct sockaddr *)&sa, sizeof sa) != 0 && errno != EINPROGRESS)
        die("connect");
    s->ssl = SSL_new(ctx);
    if (!s->ssl) {
        fprintf(stderr, "tls_hs: SSL_new failed\n");
        exit(1);
    }
    SSL_set_fd(s->ssl, s->fd);
    SSL_set_tlsext_host_name(s->ssl, "localhost");
    if (resumed_mode && s->session)
        SSL_set_session(s->ssl, s->session);
    s->st = ST_CONNECTING;
    s->sent = s->got = 0;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET, .data.u64 = (uint64_t)idx};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, s->fd, &ev) != 0)
        die("epoll_ctl");
    started++;
}

static void finish(struct slot *s, int ok, int counting) {
    /* The connection ended cleanly (the server closed it after the
     * response): say so, or SSL_free marks the session not resumable. */
    if (ok)
        SSL_set_shutdown(s->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    if (ok && resumed_mode) {
        SSL_SESSION *sess = SSL_get1_session(s->ssl);
        if (sess) {
            if (s->session)
                SSL_SESSION_free(s->session);
            s->session = sess;
        }
    }
    if (counting) {
        if (ok) {
            completed++;
            if (SSL_session_reused(s->ssl))
                reused++;
        } else {
            failed++;
        }
    }
    SSL_free(s->ssl);
    s->ssl = NULL;
    close(s->fd); /* also removes it from the epoll set */
    s->fd = -1;
}

static void describe(SSL *ssl) {
    if (described)
        return;
    described = 1;
    char group[64] = "?";
    int nid = SSL_get_negotiated_group(ssl);
    if (nid > 0)
        snprintf(group, sizeof group, "%s", OBJ_nid2sn(nid));
    fprintf(stderr, "tls_hs: %s, %s, group %s\n", SSL_get_version(ssl),
            SSL_CIPHER_get_name(SSL_get_current_cipher(ssl)), group);
}

/* Drive s; returns 1 when the connection is over (ok or not) and sets *ok. */
static int step(struct slot *s, int *ok) {
    *ok = 0;
    if (s->st == ST_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err == EINPROGRESS)
            return 0;
        if (err != 0)
            return 1;
        s->st = ST_HANDSHAKE;
    }
    if (s->st == ST_HANDSHAKE) {
        int r = SSL_connect(s->ssl);
        if (r != 1) {
            int e = SSL_get_error(s->ssl, r);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
                return 0;
            if (failed < 3) {
                fprintf(stderr, "tls_hs: handshake failed (SSL error %d):\n", e);
                ERR_print_errors_fp(stderr);
            }
            ERR_clear_error();
            return 1;
        }
        describe(s->ssl);
        s->st = ST_WRITING;
    }
    if (s->st == ST_WRITING) {
        while (s->sent < req_len) {
            size_t w = 0;
            int r = SSL_write_ex(s->ssl, req + s->sent, req_len - s->sent, &w);
            if (r != 1) {
                int e = SSL_get_error(s->ssl, r);
                if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
                    return 0;
                ERR_clear_error();
                return 1;
            }
            s->sent += w;
        }
        s->st = ST_READING;
    }
    for (;;) {
        char buf[4096];
        size_t n = 0;
        int r = SSL_read_ex(s->ssl, buf, sizeof buf, &n);
        if (r == 1) {
            if (s->got < sizeof s->head) {
                size_t k = sizeof s->head - s->got < n ? sizeof s->head - s->got : n;
                memcpy(s->head + s->got, buf, k);
            }
            s->got += n;
            continue;
        }
        int e = SSL_get_error(s->ssl, r);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
            return 0;
        ERR_clear_error();
        /* close_notify, or an EOF without one (SSL_OP_IGNORE_UNEXPECTED_EOF) */
        *ok = (e == SSL_ERROR_ZERO_RETURN || e == SSL_ERROR_SYSCALL) && s->got >= 12 &&
              memcmp(s->head, "HTTP/1.1 200", 12) == 0;
        if (!*ok && failed < 3)
            fprintf(stderr, "tls_hs: bad or missing response (SSL error %d, %zu bytes: %.12s)\n", e,
                    s->got, s->got ? s->head : "");
        return 1;
    }
}

int main(int argc, char **argv) {
    if (argc < 6 || argc > 7) {
        fprintf(stderr, "usage: tls_hs HOST PORT CONNS SECONDS full|resumed [PATH]\n");
        return 2;
    }
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)atoi(argv[2]));
    if (inet_pton(AF_INET, argv[1], &sa.sin_addr) != 1) {
        fprintf(stderr, "tls_hs: %s is not an IPv4 address\n", argv[1]);
        return 2;
    }
    long nconn = strtol(argv[3], NULL, 10);
    double secs = strtod(argv[4], NULL);
    if (nconn <= 0 || nconn > 10000 || secs <= 0) {
        fprintf(stderr, "tls_hs: CONNS must be 1..10000 and SECONDS positive\n");
        return 2;
    }
    if (!strcmp(argv[5], "resumed"))
        resumed_mode = 1;
    else if (strcmp(argv[5], "full") != 0) {
        fprintf(stderr, "tls_hs: mode must be full or resumed\n");
        return 2;
    }
    int rl = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: %s:%s\r\nConnection: close\r\n\r\n",
                      argc == 7 ? argv[6] : "/plaintext", argv[1], argv[2]);
    if (rl <= 0 || (size_t)rl >= sizeof req) {
        fprintf(stderr, "tls_hs: request too long\n");
        return 2;
    }
    req_len = (size_t)rl;

    ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        fprintf(stderr, "tls_hs: SSL_CTX_new failed\n");
        return 1;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
    static const unsigned char alpn[] = "\x08http/1.1";
    SSL_CTX_set_alpn_protos(ctx, alpn, sizeof alpn - 1);
    /* Sessions are offered by hand (SSL_set_session): no client cache. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);

    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        die("epoll_create1");
    struct slot *slots = calloc((size_t)nconn, sizeof *slots);
    if (!slots)
        die("calloc");
    double t0 = now_s(), end = t0 + secs;
    for (long i = 0; i < nconn; i++)
        start(&slots[i], i);
    struct epoll_event evs[256];
    double t;
    while ((t = now_s()) < end) {
        int ms = (int)((end - t) * 1000) + 1;
        int k = epoll_wait(ep, evs, 256, ms < 1000 ? ms : 1000);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            die("epoll_wait");
        }
        for (int j = 0; j < k; j++) {
            long i = (long)evs[j].data.u64;
            struct slot *s = &slots[i];
            if (!s->ssl)
                continue;
            int ok;
            if (step(s, &ok)) {
                int in_window = now_s() < end;
                finish(s, ok, in_window);
                if (in_window)
                    start(s, i);
            }
        }
    }
    double el = now_s() - t0;
    long inflight = 0;
    for (long i = 0; i < nconn; i++) {
        if (slots[i].ssl) {
            inflight++;
            finish(&slots[i], 0, 0);
        }
        if (slots[i].session)
            SSL_SESSION_free(slots[i].session);
    }
    fprintf(stderr,
            "tls_hs: %s: %ld connections completed in %.2f s (%ld resumed), %ld failed, %ld cut off at "
            "the end, %ld concurrent\n",
            argv[5], completed, el, reused, failed, inflight, nconn);
    if (completed == 0 || failed * 100 > completed + failed) {
        fprintf(stderr, "tls_hs: too many failed connections\n");
        return 1;
    }
    if (resumed_mode && reused * 10 < completed * 9) {
        fprintf(stderr, "tls_hs: only %ld of %ld connections resumed a session\n", reused,
                completed);
        return 1;
    }
    if (!resumed_mode && reused) {
        fprintf(stderr, "tls_hs: %ld full-mode connections counted as resumed\n", reused);
        return 1;
    }
    printf("%.1f\n", completed / el);
    return 0;
}
