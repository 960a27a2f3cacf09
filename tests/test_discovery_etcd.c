/*
 * test_discovery_etcd.c - registration and discovery against a real etcd
 * (Debian's etcd-server, started here on free loopback ports with a data
 * directory of the test's own): instances appear and vanish (revoked on
 * free, expired with their lease), a lease lost behind a registration's
 * back is registered again, the watch resumes after etcd restarts, and a
 * compaction past the watcher's revision makes it read the range again.
 * Skipped (77) where etcd is not installed.
 */
#include "check.h"
#include "lb_set.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <tern/context.h>
#include <tern/discovery.h>
#include <tern/http_client.h>
#include <tern/runtime.h>

#define ETCD "/usr/bin/etcd"

static char dir[64], client_url[64], peer_url[64];
static pid_t etcd_pid;

static int free_tcp_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK_EQ(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    socklen_t len = sizeof sa;
    CHECK_EQ(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    close(fd);
    return ntohs(sa.sin_port);
}

/* A raw call to etcd's gateway: the answer's text into out. */
static int raw(const char *path, const char *json, char *out, size_t size)
{
    tern_http_client *c;
    CHECK_EQ(tern_http_client_new(NULL, &c), 0);
    char url[128];
    snprintf(url, sizeof url, "%s%s", client_url, path);
    tern_http_client_request rq = {.method = "POST", .url = url, .body = json, .body_len = strlen(json)};
    tern_http_client_response *r;
    tern_ctx *ctx;
    CHECK_EQ(tern_ctx_with_timeout(NULL, 2 * TERN_SEC, &ctx), 0);
    int rc = tern_http_client_do(c, &rq, &r, ctx);
    if (rc == 0) {
        const char *body;
        size_t len;
        rc = tern_http_client_response_body(r, size - 1, &body, &len);
        if (rc == 0) {
            memcpy(out, body, len);
            out[len] = 0;
            rc = tern_http_client_response_status(r) == 200 ? 0 : -EIO;
        }
        tern_http_client_response_free(r);
    }
    tern_ctx_free(ctx);
    tern_http_client_free(c);
    return rc;
}

static void b64(const char *s, char *out)
{
    EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)s, (int)strlen(s));
}

static void put(const char *key, const char *value, const char *lease)
{
    char k[256], v[256], json[768], out[1024];
    b64(key, k);
    b64(value, v);
    snprintf(json, sizeof json, "{\"key\":\"%s\",\"value\":\"%s\"%s%s%s}", k, v,
             lease ? ",\"lease\":\"" : "", lease ? lease : "", lease ? "\"" : "");
    CHECK_EQ(raw("/v3/kv/put", json, out, sizeof out), 0);
}

static void del(const char *key)
{
    char k[256], json[512], out[1024];
    b64(key, k);
    snprintf(json, sizeof json, "{\"key\":\"%s\"}", k);
    CHECK_EQ(raw("/v3/kv/deleterange", json, out, sizeof out), 0);
}

/* The store's current revision. */
static long revision(void)
{
    char out[1024];
    CHECK_EQ(raw("/v3/kv/range", "{\"key\":\"AA==\"}", out, sizeof out), 0);
    const char *p = strstr(out, "\"revision\":\"");
    CHECK(p);
    return atol(p + 12);
}

static void etcd_start(void)
{
    char data[128], listen_client[128], listen_peer[128], cluster[128];
    snprintf(data, sizeof data, "--data-dir=%s/data", dir);
    snprintf(listen_client, sizeof listen_client, "--listen-client-urls=%s", client_url);
    snprintf(listen_peer, sizeof listen_peer, "--listen-peer-urls=%s", peer_url);
    snprintf(cluster, sizeof cluster, "--initial-cluster=default=%s", peer_url);
    char adv_client[128], adv_peer[128], log[128];
    snprintf(adv_client, sizeof adv_client, "--advertise-client-urls=%s", client_url);
    snprintf(adv_peer, sizeof adv_peer, "--initial-advertise-peer-urls=%s", peer_url);
    snprintf(log, sizeof log, "%s/etcd.log", dir);
    etcd_pid = fork();
    CHECK(etcd_pid >= 0);
    if (etcd_pid == 0) {
        freopen(log, "a", stderr);
        freopen("/dev/null", "w", stdout);
        char *argv[] = {ETCD, "--name=default", data, listen_client, adv_client, listen_peer, adv_peer,
                        cluster, NULL};
        execv(ETCD, argv);
        _exit(127);
    }
    char out[1024];
    for (int k = 0; k < 300; k++) {
        if (raw("/v3/kv/range", "{\"key\":\"AA==\"}", out, sizeof out) == 0)
            return;
        tern_sleep(50 * TERN_MS);
    }
    fprintf(stderr, "etcd did not come up: see %s\n", log);
    abort();
}

static void etcd_kill(void)
{
    kill(etcd_pid, SIGKILL);
    waitpid(etcd_pid, NULL, 0);
}

static tern_etcd_registration *reg(const char *key, const char *value, int64_t ttl)
{
    tern_etcd_registration_options o = {.endpoint = client_url, .key = key, .value = value, .ttl = ttl};
    tern_etcd_registration *r;
    CHECK_EQ(tern_etcd_registration_new(&o, &r, NULL), 0);
    return r;
}

static int body(void *arg)
{
    (void)arg;
    etcd_start();
    tern_etcd_registration *a = reg("/svc/orders/a", "127.0.0.1:7001", 3 * TERN_SEC);
    tern_etcd_registration *b = reg("/svc/orders/b", "{\"addr\": \"127.0.0.1:7002\", \"weight\": 3}", 0);
    put("/svc/ordersX", "127.0.0.1:9999", NULL);        /* beside the prefix, not under it */
    put("/svc/orders/junk", "not an endpoint", NULL);   /* skipped */

    tern_resolver_etcd_options ro = {.endpoint = client_url, .prefix = "/svc/orders/",
                                     .retry_min = 1500 * TERN_MS, .retry_max = 1500 * TERN_MS};
    tern_resolver *r;
    CHECK_EQ(tern_resolver_etcd_new(&ro, &r), 0);
    tern_balancer *bal;
    CHECK_EQ(tern_balancer_new(NULL, &bal), 0);
    CHECK_EQ(tern_balancer_follow(bal, r), 0);
    CHECK_EQ(tern_resolver_wait(r, NULL), 0);
    CHECK(becomes(bal, "127.0.0.1:7001/1 127.0.0.1:7002/3"));

    /* freed: revoked, gone at once */
    tern_etcd_registration_free(b);
    CHECK(becomes(bal, "127.0.0.1:7001/1"));

    /* a lease nobody keeps alive: the key goes with it */
    char out[1024];
    CHECK_EQ(raw("/v3/lease/grant", "{\"TTL\":2}", out, sizeof out), 0);
    const char *id = strstr(out, "\"ID\":\"");
    CHECK(id);
    char lease[32];
    snprintf(lease, sizeof lease, "%.*s", (int)strcspn(id + 6, "\""), id + 6);
    put("/svc/orders/c", "127.0.0.1:7003", lease);
    CHECK(becomes(bal, "127.0.0.1:7001/1 127.0.0.1:7003/1"));
    CHECK(becomes(bal, "127.0.0.1:7001/1"));          /* within 5 s: TTL 2 s */

    /* a's lease revoked behind its back: its keepalive puts it back */
    char json[128];
    snprintf(json, sizeof json, "{\"ID\":\"%lld\"}", (long long)tern_etcd_registration_lease(a));
    CHECK_EQ(raw("/v3/lease/revoke", json, out, sizeof out), 0);
    CHECK(becomes(bal, ""));
    CHECK(becomes(bal, "127.0.0.1:7001/1"));          /* keepalive every ttl/3: 1 s */
    /* the put is seen (the watch) before its answer reaches the
     * registration, which counts it then: a slow machine (qemu) shows it */
    for (int i = 0; i < 300 && tern_etcd_registration_count(a) != 2; i++)
        tern_sleep(10 * TERN_MS);
    CHECK_EQ(tern_etcd_registration_count(a), 2);

    /* etcd restarts: the watch resumes, later changes arrive */
    etcd_kill();
    etcd_start();
    put("/svc/orders/d", "127.0.0.1:7004", NULL);
    CHECK(becomes(bal, "127.0.0.1:7001/1 127.0.0.1:7004/1"));

    /* again, and this time etcd compacts past the watcher's revision
     * before it comes back: it must read the range again */
    etcd_kill();
    etcd_start();
    put("/svc/orders/e", "127.0.0.1:7005", NULL);
    del("/svc/orders/d");
    snprintf(json, sizeof json, "{\"revision\":\"%ld\"}", revision());
    CHECK_EQ(raw("/v3/kv/compaction", json, out, sizeof out), 0);
    CHECK(becomes(bal, "127.0.0.1:7001/1 127.0.0.1:7005/1"));

    tern_resolver_free(r);
    tern_balancer_free(bal);
    tern_etcd_registration_free(a);

    /* several members: one that is down first in the list is passed over,
     * by the registration and by the resolver */
    char members[300];
    snprintf(members, sizeof members, "http://127.0.0.1:%d/, %s", free_tcp_port(), client_url);
    tern_etcd_registration_options mo = {.endpoint = members, .key = "/svc/pay/m", .value = "127.0.0.1:7101"};
    tern_etcd_registration *m;
    CHECK_EQ(tern_etcd_registration_new(&mo, &m, NULL), 0);
    tern_resolver_etcd_options mro = {.endpoint = members, .prefix = "/svc/pay/"};
    CHECK_EQ(tern_resolver_etcd_new(&mro, &r), 0);
    CHECK_EQ(tern_balancer_new(NULL, &bal), 0);
    CHECK_EQ(tern_balancer_follow(bal, r), 0);
    CHECK_EQ(tern_resolver_wait(r, NULL), 0);
    CHECK(becomes(bal, "127.0.0.1:7101/1"));
    tern_etcd_registration_free(m);
    CHECK(becomes(bal, ""));
    tern_resolver_free(r);
    tern_balancer_free(bal);
    tern_resolver_etcd_options mbad = {.endpoint = "http://127.0.0.1:1,ftp://x", .prefix = "/p/"};
    CHECK_EQ(tern_resolver_etcd_new(&mbad, &r), -EINVAL);
    mbad.endpoint = "http://127.0.0.1:1,";
    CHECK_EQ(tern_resolver_etcd_new(&mbad, &r), -EINVAL);

    /* bad options */
    tern_etcd_registration_options bad = {.endpoint = "ftp://x", .key = "/k", .value = "v"};
    tern_etcd_registration *x;
    CHECK_EQ(tern_etcd_registration_new(&bad, &x, NULL), -EINVAL);
    bad = (tern_etcd_registration_options){.endpoint = client_url, .key = "", .value = "v"};
    CHECK_EQ(tern_etcd_registration_new(&bad, &x, NULL), -EINVAL);
    tern_resolver_etcd_options rbad = {.endpoint = client_url};
    CHECK_EQ(tern_resolver_etcd_new(&rbad, &r), -EINVAL);
    etcd_kill();
    /* etcd away: registering fails with the connection's error */
    tern_etcd_registration_options gone = {.endpoint = client_url, .key = "/k", .value = "v"};
    CHECK_EQ(tern_etcd_registration_new(&gone, &x, NULL), -ECONNREFUSED);
    return 0;
}

static void registration_and_discovery_against_etcd(void)
{
    if (access(ETCD, X_OK) != 0) {
        fprintf(stderr, "skipped: no %s (Debian: etcd-server)\n", ETCD);
        exit(77);
    }
    snprintf(dir, sizeof dir, "/tmp/tern-etcd-XXXXXX");
    CHECK(mkdtemp(dir));
    snprintf(client_url, sizeof client_url, "http://127.0.0.1:%d", free_tcp_port());
    snprintf(peer_url, sizeof peer_url, "http://127.0.0.1:%d", free_tcp_port());
    run_ok(body, NULL, 2);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK_EQ(system(cmd), 0);
}

TESTS(T(registration_and_discovery_against_etcd))
