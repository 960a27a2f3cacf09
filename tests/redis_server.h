/*
 * redis_server.h - a real redis-server for the Redis tests and bench:
 * started on a Unix socket in a temporary directory (no TCP port, no
 * persistence), stopped with SIGKILL, restartable on the same socket.
 */
#ifndef TERN_TEST_REDIS_SERVER_H
#define TERN_TEST_REDIS_SERVER_H

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

#include "fixture_wait.h"

typedef struct redis_server {
    char dir[64];
    char sock[100];             /* fits sun_path */
    pid_t pid;
} redis_server;

/* A failed CHECK aborts: take the server down with us.  (PR_SET_PDEATHSIG
 * would not do: it follows the thread that forked, and a restarted server
 * is forked by a worker thread that ends with its tern_run.) */
static volatile pid_t redis_server_pid_;

static void redis_server_on_abort_(int sig)
{
    if (redis_server_pid_ > 0)
        kill(redis_server_pid_, SIGKILL);
    signal(sig, SIG_DFL);
    raise(sig);
}

static inline void redis_server_start(redis_server *s)
{
    if (!s->dir[0]) {
        snprintf(s->dir, sizeof s->dir, "/tmp/tern-redis-XXXXXX");
        if (!mkdtemp(s->dir)) {
            perror("mkdtemp");
            abort();
        }
        snprintf(s->sock, sizeof s->sock, "%s/r.sock", s->dir);
    }
    char *argv[] = {"redis-server", "--port", "0", "--unixsocket", s->sock, "--save", "",
                    "--appendonly", "no", "--daemonize", "no", "--dir", s->dir,
                    "--enable-debug-command", "yes", "--loglevel", "warning", NULL};
    s->pid = fork();
    if (s->pid < 0) {
        perror("fork");
        abort();
    }
    if (s->pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        dup2(null, 2);
        execvp("redis-server", argv);
        _exit(127);
    }
    redis_server_pid_ = s->pid;
    signal(SIGABRT, redis_server_on_abort_);
    /* Ready when the socket accepts a connection (bounded: 10 s). */
    for (int i = 0; i < 1000; i++) {
        int fd = socket(AF_UNIX, SOCK_STREAM, 0);
        struct sockaddr_un a = {.sun_family = AF_UNIX};
        snprintf(a.sun_path, sizeof a.sun_path, "%s", s->sock);
        int ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
        close(fd);
        if (ok)
            return;
        fixture_pause_ms(10);
    }
    fprintf(stderr, "redis-server did not start on %s\n", s->sock);
    abort();
}

/* Start the server unless it runs. */
static inline void redis_server_up(redis_server *s)
{
    if (s->pid > 0 && waitpid(s->pid, NULL, WNOHANG) == 0)
        return;
    s->pid = 0;
    redis_server_start(s);
}

static inline void redis_server_kill(redis_server *s)
{
    if (s->pid > 0) {
        kill(s->pid, SIGKILL);
        fixture_reap(s->pid);
        s->pid = 0;
        redis_server_pid_ = 0;
    }
}

static inline void redis_server_stop(redis_server *s)
{
    redis_server_kill(s);
    unlink(s->sock);
    rmdir(s->dir);
}

#endif
