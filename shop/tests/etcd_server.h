/*
 * etcd_server.h - a real etcd (Debian's etcd-server) for the shop's
 * production-mode tests: one member on free loopback ports, its data in
 * a temporary folder; killed at stop and when a CHECK aborts.
 */
#ifndef SHOP_ETCD_SERVER_H
#define SHOP_ETCD_SERVER_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <tern/discovery.h>

#define ETCD_SERVER_BIN "/usr/bin/etcd"

typedef struct etcd_server {
    char dir[64];
    char url[64];                       /* the client URL: "http://127.0.0.1:port" */
    pid_t pid;
} etcd_server;

static volatile pid_t etcd_server_pid_;

static void etcd_server_ignore_(const tern_endpoint *eps, size_t n, int err, void *arg)
{
    (void)eps, (void)n, (void)err, (void)arg;
}

static void etcd_server_on_abort_(int sig)
{
    if (etcd_server_pid_ > 0)
        kill(etcd_server_pid_, SIGKILL);
    signal(sig, SIG_DFL);
    raise(sig);
}

static inline int etcd_server_port_(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || getsockname(fd, (struct sockaddr *)&sa, &len) < 0)
        abort();
    close(fd);
    return ntohs(sa.sin_port);
}

/* Start it and wait (up to 15 s) until it answers a range read.  From a
 * coroutine. */
static inline void etcd_server_start(etcd_server *s)
{
    snprintf(s->dir, sizeof s->dir, "/tmp/shop-etcd-XXXXXX");
    if (!mkdtemp(s->dir))
        abort();
    int cport = etcd_server_port_(), pport = etcd_server_port_();
    char data[128], lc[128], ac[128], lp[128], ap[128], cluster[160], log[128];
    snprintf(s->url, sizeof s->url, "http://127.0.0.1:%d", cport);
    snprintf(data, sizeof data, "--data-dir=%s/data", s->dir);
    snprintf(lc, sizeof lc, "--listen-client-urls=%s", s->url);
    snprintf(ac, sizeof ac, "--advertise-client-urls=%s", s->url);
    snprintf(lp, sizeof lp, "--listen-peer-urls=http://127.0.0.1:%d", pport);
    snprintf(ap, sizeof ap, "--initial-advertise-peer-urls=http://127.0.0.1:%d", pport);
    snprintf(cluster, sizeof cluster, "--initial-cluster=default=http://127.0.0.1:%d", pport);
    snprintf(log, sizeof log, "%s/etcd.log", s->dir);
    s->pid = fork();
    if (s->pid < 0)
        abort();
    if (s->pid == 0) {
        if (!freopen(log, "a", stderr) || !freopen("/dev/null", "w", stdout))
            _exit(126);
        char *argv[] = {ETCD_SERVER_BIN, "--name=default", data, lc, ac, lp, ap, cluster, NULL};
        execv(ETCD_SERVER_BIN, argv);
        _exit(127);
    }
    etcd_server_pid_ = s->pid;
    signal(SIGABRT, etcd_server_on_abort_);
    for (int k = 0; k < 150; k++) {
        tern_resolver *r;
        if (tern_resolver_etcd_new(&(tern_resolver_etcd_options){.endpoint = s->url, .prefix = "/up/"}, &r) < 0)
            abort();
        tern_ctx *ctx;
        tern_ctx_with_timeout(NULL, 100 * TERN_MS, &ctx);
        int rc = tern_resolver_watch(r, etcd_server_ignore_, NULL);
        if (rc == 0)
            rc = tern_resolver_wait(r, ctx);
        tern_ctx_free(ctx);
        tern_resolver_free(r);
        if (rc == 0)
            return;
        tern_sleep(100 * TERN_MS);
    }
    fprintf(stderr, "etcd did not come up: see %s\n", log);
    abort();
}

static inline void etcd_server_stop(etcd_server *s)
{
    kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
    etcd_server_pid_ = 0;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", s->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "etcd_server: could not remove %s\n", s->dir);
}

#endif
