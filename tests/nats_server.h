/*
 * nats_server.h - a real nats-server (-js) for the NATS tests: started on
 * a free loopback port with a temporary JetStream store, stopped with
 * SIGKILL, restartable on the same port and store (tests/redis_server.h's
 * pattern).
 */
#ifndef TERN_TEST_NATS_SERVER_H
#define TERN_TEST_NATS_SERVER_H

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <time.h>

#include "fixture_wait.h"

#ifndef TERN_NATS_SERVER
#define TERN_NATS_SERVER "nats-server"
#endif

typedef struct nats_server {
    char dir[64];
    char addr[32];              /* "127.0.0.1:port" */
    int port;
    pid_t pid;
    const char *extra[5];       /* more arguments ("--user", "u", ...), NULL-ended */
} nats_server;

static volatile pid_t nats_server_pid_;

static void nats_server_on_abort_(int sig)
{
    if (nats_server_pid_ > 0)
        kill(nats_server_pid_, SIGKILL);
    signal(sig, SIG_DFL);
    raise(sig);
}

static inline int nats_server_free_port_(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof a;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) || getsockname(fd, (struct sockaddr *)&a, &l)) {
        perror("bind");
        abort();
    }
    close(fd);
    return ntohs(a.sin_port);
}

static inline void nats_server_start(nats_server *s)
{
    if (!s->dir[0]) {
        snprintf(s->dir, sizeof s->dir, "/tmp/tern-nats-XXXXXX");
        if (!mkdtemp(s->dir)) {
            perror("mkdtemp");
            abort();
        }
        s->port = nats_server_free_port_();
        snprintf(s->addr, sizeof s->addr, "127.0.0.1:%d", s->port);
    }
    char port[16];
    snprintf(port, sizeof port, "%d", s->port);
    char *argv[16] = {TERN_NATS_SERVER, "-js", "-a", "127.0.0.1", "-p", port, "-sd", s->dir};
    for (int i = 0; i < 5 && s->extra[i]; i++)
        argv[8 + i] = (char *)s->extra[i];
    s->pid = fork();
    if (s->pid < 0) {
        perror("fork");
        abort();
    }
    if (s->pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        dup2(null, 2);
        execvp(argv[0], argv);
        _exit(127);
    }
    nats_server_pid_ = s->pid;
    signal(SIGABRT, nats_server_on_abort_);
    /* Ready when it accepts and says INFO (bounded: 10 s). */
    for (int i = 0; i < 1000; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)s->port),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        char b[8] = {0};
        int ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0 && read(fd, b, 4) == 4 &&
                 memcmp(b, "INFO", 4) == 0;
        close(fd);
        if (ok)
            return;
        fixture_pause_ms(10);
    }
    fprintf(stderr, "nats-server did not start on %s\n", s->addr);
    abort();
}

static inline void nats_server_kill(nats_server *s)
{
    if (s->pid > 0) {
        kill(s->pid, SIGKILL);
        fixture_reap(s->pid);
        s->pid = 0;
        nats_server_pid_ = 0;
    }
}

static inline void nats_server_stop(nats_server *s)
{
    nats_server_kill(s);
    if (s->dir[0]) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", s->dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", s->dir);
    }
}

#endif
