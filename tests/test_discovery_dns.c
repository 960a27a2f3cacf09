/*
 * test_discovery_dns.c - the DNS resolver against a real DNS server
 * (dnsmasq, started here on a free loopback port with records of the
 * test's own): A records refreshed by TTL after the server's data changes,
 * SRV records (lowest priority only, weights kept), a name that does not
 * exist, a server that stops answering (the last set stays), bad targets.
 * Skipped (77) where dnsmasq is not installed.
 */
#include "check.h"
#include "lb_set.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <tern/context.h>
#include <tern/discovery.h>
#include <tern/runtime.h>

#define DNSMASQ "/usr/sbin/dnsmasq"

static char dir[64], hosts[128], servers[64];
static pid_t dns_pid;

static void write_hosts(const char *text)
{
    char tmp[160];
    snprintf(tmp, sizeof tmp, "%s.tmp", hosts);
    FILE *f = fopen(tmp, "w");
    CHECK(f);
    fputs(text, f);
    CHECK_EQ(fclose(f), 0);
    CHECK_EQ(chmod(tmp, 0644), 0);
    CHECK_EQ(rename(tmp, hosts), 0);
}

/* A port free on 127.0.0.1 a moment ago for UDP and for TCP: dnsmasq
 * listens on both.  The UDP port the kernel hands out may be a TCP
 * connection's local port (an earlier test's, in TIME_WAIT), and dnsmasq
 * then fails with "Address already in use" (seen in CI). */
static int free_dns_port(void)
{
    for (int tries = 0; tries < 100; tries++) {
        int u = socket(AF_INET, SOCK_DGRAM, 0);
        CHECK(u >= 0);
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        CHECK_EQ(bind(u, (struct sockaddr *)&sa, sizeof sa), 0);
        socklen_t len = sizeof sa;
        CHECK_EQ(getsockname(u, (struct sockaddr *)&sa, &len), 0);
        int t = socket(AF_INET, SOCK_STREAM, 0);
        CHECK(t >= 0);
        bool tcp_free = bind(t, (struct sockaddr *)&sa, sizeof sa) == 0;
        close(t);
        close(u);
        if (tcp_free)
            return ntohs(sa.sin_port);
    }
    CHECK(!"no port free for both UDP and TCP on 127.0.0.1 in 100 tries");
    return -1;
}

static void dns_start(void)
{
    int port = free_dns_port();
    snprintf(servers, sizeof servers, "127.0.0.1:%d", port);
    char port_arg[32], hosts_arg[160], log_arg[160];
    snprintf(port_arg, sizeof port_arg, "--port=%d", port);
    snprintf(hosts_arg, sizeof hosts_arg, "--addn-hosts=%s", hosts);
    snprintf(log_arg, sizeof log_arg, "--log-facility=%s/dnsmasq.log", dir);
    dns_pid = fork();
    CHECK(dns_pid >= 0);
    if (dns_pid == 0) {
        char *argv[] = {
            DNSMASQ, "--keep-in-foreground", "--conf-file=/dev/null", port_arg,
            "--listen-address=127.0.0.1", "--bind-interfaces", "--no-resolv", "--no-hosts",
            "--local=/test/",   /* names under .test it does not know: NXDOMAIN, not REFUSED */
            hosts_arg, "--local-ttl=1", "--pid-file=", log_arg,
            geteuid() == 0 ? "--user=root" : "--local-service",
            "--srv-host=_grpc._tcp.orders.test,a.orders.test,50051,0,10",
            "--srv-host=_grpc._tcp.orders.test,b.orders.test,50052,0,20",
            "--srv-host=_grpc._tcp.orders.test,c.orders.test,50053,1,10",
            NULL,
        };
        execv(DNSMASQ, argv);
        _exit(127);
    }
    /* ready when it answers a query (a loaded machine may take a while to
     * start it: a fixed sleep was not always enough) */
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    CHECK(fd >= 0);
    struct timeval tv = {.tv_usec = 100 * 1000};
    CHECK_EQ(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv), 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    /* id 0x7465, RD, one question: a.orders.test A IN */
    static const unsigned char q[] = {0x74, 0x65, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                                      1, 'a', 6, 'o', 'r', 'd', 'e', 'r', 's', 4, 't', 'e', 's', 't', 0,
                                      0x00, 0x01, 0x00, 0x01};
    bool up = false;
    for (int i = 0; i < 100 && !up; i++) {
        unsigned char ans[512];
        if (sendto(fd, q, sizeof q, 0, (struct sockaddr *)&sa, sizeof sa) == (ssize_t)sizeof q &&
            recv(fd, ans, sizeof ans, 0) >= 12 && ans[0] == 0x74 && ans[1] == 0x65)
            up = true;
        else
            usleep(50 * 1000);
    }
    close(fd);
    if (!up) {
        fprintf(stderr, "dnsmasq did not answer on %s within 15 s: see %s/dnsmasq.log\n", servers, dir);
        abort();
    }
}

static void dns_stop(void)
{
    if (dns_pid > 0) {
        kill(dns_pid, SIGTERM);
        waitpid(dns_pid, NULL, 0);
        dns_pid = 0;
    }
}

static tern_resolver *follow(const char *target, bool srv, tern_balancer **b)
{
    tern_resolver_dns_options o = {.srv = srv, .family = AF_INET, .servers = servers,
                                   .min_refresh = 100 * TERN_MS, .max_refresh = 1 * TERN_SEC,
                                   .timeout = 400 * TERN_MS};
    tern_resolver *r;
    CHECK_EQ(tern_resolver_dns_new(target, &o, &r), 0);
    CHECK_EQ(tern_balancer_new(NULL, b), 0);
    CHECK_EQ(tern_balancer_follow(*b, r), 0);
    return r;
}

static int a_records_body(void *arg)
{
    (void)arg;
    tern_balancer *b;
    tern_resolver *r = follow("orders.test:8080", false, &b);
    CHECK_EQ(tern_resolver_wait(r, NULL), 0);
    CHECK(becomes(b, "127.0.0.11:8080/1 127.0.0.12:8080/1"));
    /* a third replica: dnsmasq re-reads its hosts file on SIGHUP, and the
     * resolver sees it when the 1 s TTL runs out */
    write_hosts("127.0.0.11 orders.test\n127.0.0.12 orders.test\n127.0.0.13 orders.test\n"
                "127.0.1.1 a.orders.test\n127.0.1.2 b.orders.test\n127.0.1.3 c.orders.test\n");
    CHECK_EQ(kill(dns_pid, SIGHUP), 0);
    CHECK(becomes(b, "127.0.0.11:8080/1 127.0.0.12:8080/1 127.0.0.13:8080/1"));
    tern_resolver_free(r);
    tern_balancer_free(b);
    return 0;
}

static void a_records_are_followed_by_ttl(void)
{
    run_ok(a_records_body, NULL, 2);
}

static int srv_body(void *arg)
{
    (void)arg;
    tern_balancer *b;
    tern_resolver *r = follow("_grpc._tcp.orders.test", true, &b);
    CHECK_EQ(tern_resolver_wait(r, NULL), 0);
    /* priority 0 only (c.orders.test is priority 1: a fallback), weights kept */
    CHECK(becomes(b, "127.0.1.1:50051/10 127.0.1.2:50052/20"));
    tern_resolver_free(r);
    tern_balancer_free(b);
    return 0;
}

static void srv_records_give_endpoints_and_weights(void)
{
    run_ok(srv_body, NULL, 2);
}

static int errors_body(void *arg)
{
    (void)arg;
    tern_balancer *b;
    tern_resolver *r = follow("nosuch.test:80", false, &b);
    CHECK_EQ(tern_resolver_wait(r, NULL), -ENOENT);
    tern_resolver_free(r);
    tern_balancer_free(b);
    /* a server that stops answering: lookups time out, the set stays */
    r = follow("orders.test:9090", false, &b);
    CHECK_EQ(tern_resolver_wait(r, NULL), 0);
    CHECK(becomes(b, "127.0.0.11:9090/1 127.0.0.12:9090/1 127.0.0.13:9090/1"));
    dns_stop();
    tern_sleep(2500 * TERN_MS);     /* past the TTL and a timed-out lookup */
    CHECK(becomes(b, "127.0.0.11:9090/1 127.0.0.12:9090/1 127.0.0.13:9090/1"));
    tern_resolver_free(r);
    tern_balancer_free(b);
    /* bad targets and options */
    CHECK_EQ(tern_resolver_dns_new("orders.test", NULL, &r), -EINVAL);
    CHECK_EQ(tern_resolver_dns_new("orders.test:0", NULL, &r), -EINVAL);
    CHECK_EQ(tern_resolver_dns_new("orders.test:99999", NULL, &r), -EINVAL);
    CHECK_EQ(tern_resolver_dns_new("[::1:80", NULL, &r), -EINVAL);
    tern_resolver_dns_options o = {.family = 12345};
    CHECK_EQ(tern_resolver_dns_new("orders.test:80", &o, &r), -EINVAL);
    o = (tern_resolver_dns_options){.servers = "not a server list"};
    CHECK_EQ(tern_resolver_dns_new("orders.test:80", &o, &r), -EINVAL);
    return 0;
}

static void lookup_errors_keep_the_last_set(void)
{
    run_ok(errors_body, NULL, 2);
}

static void dns_resolver_against_dnsmasq(void)
{
    if (access(DNSMASQ, X_OK) != 0) {
        fprintf(stderr, "skipped: no %s (Debian: dnsmasq-base)\n", DNSMASQ);
        exit(77);
    }
    snprintf(dir, sizeof dir, "/tmp/tern-dns-XXXXXX");
    CHECK(mkdtemp(dir));
    CHECK_EQ(chmod(dir, 0755), 0);
    snprintf(hosts, sizeof hosts, "%s/hosts", dir);
    write_hosts("127.0.0.11 orders.test\n127.0.0.12 orders.test\n"
                "127.0.1.1 a.orders.test\n127.0.1.2 b.orders.test\n127.0.1.3 c.orders.test\n");
    dns_start();
    a_records_are_followed_by_ttl();
    srv_records_give_endpoints_and_weights();
    lookup_errors_keep_the_last_set();
    dns_stop();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK_EQ(system(cmd), 0);
}

TESTS(T(dns_resolver_against_dnsmasq))
