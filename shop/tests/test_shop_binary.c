/*
 * test_shop_binary.c - the `shop` program itself: `shop all` started as a
 * process on free loopback ports, configured by the environment
 * (SHOP_DATA_DIR, SHOP_<ROLE>_ADDR), serving gRPC and probes on each
 * role's port, stopping with exit status 0 on SIGTERM, and finding its
 * data on the next start; a role without events (catalog) starts with
 * events.nats naming a NATS that is not there (production's shared
 * configuration: only orders and payments talk to NATS); bad arguments
 * and configuration: a sentence and exit status 2.
 */
#include "check.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "catalog.tern-grpc.h"
#include "common/shop.h"
#include "inventory.tern-grpc.h"
#include "orders.tern-grpc.h"

/* (the gateway's too, where it is built: `all` runs it) */
static const char *const env_keys[] = {"SHOP_USERS_ADDR", "SHOP_CATALOG_ADDR", "SHOP_INVENTORY_ADDR",
                                       "SHOP_ORDERS_ADDR", "SHOP_PAYMENTS_ADDR", "SHOP_GATEWAY_ADDR"};
_Static_assert(sizeof env_keys / sizeof env_keys[0] >= SHOP_NROLES, "an address for every role");
static char addrs[SHOP_NROLES][64];

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK(bind(fd, (struct sockaddr *)&a, sizeof a) == 0);
    socklen_t len = sizeof a;
    CHECK(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* shop with args, its stdout and stderr into log; the pid.  The child's
 * environment and arguments are made before the fork: the child of a
 * threaded process may only make async-signal-safe calls until it execs
 * (a setenv there took malloc's lock, held at the fork by another thread:
 * the child hung, its log empty, in a TSan run on a loaded machine). */
static pid_t spawn(const char *dir, const char *log, const char *const *args)
{
    extern char **environ;
    enum { OURS = 3 + 2 * SHOP_NROLES };
    static char mine[OURS][512];
    int k = 0;
    snprintf(mine[k++], sizeof mine[0], "SHOP_DATA_DIR=%s", dir);
    for (int i = 0; i < SHOP_NROLES; i++)
        snprintf(mine[k++], sizeof mine[0], "%s=%s", env_keys[i], addrs[i]);
    snprintf(mine[k++], sizeof mine[0], "SHOP_PAYMENTS_LATENCY=1ms");
    for (int i = 0; i < SHOP_NROLES; i++)
        snprintf(mine[k++], sizeof mine[0], "%.*s_ADMIN=127.0.0.1:0", (int)(strlen(env_keys[i]) - 5),
                 env_keys[i]);
    snprintf(mine[k++], sizeof mine[0], "SHOP_GATEWAY_CONFIG=%s", SHOP_SOURCE_DIR "/config/gateway.yaml");
    CHECK_EQ(k, OURS);
    size_t n = 0;
    while (environ[n])
        n++;
    char **envp = calloc(n + OURS + 1, sizeof *envp);
    CHECK(envp != NULL);
    size_t m = 0;
    for (int i = 0; i < OURS; i++)
        envp[m++] = mine[i];
    for (size_t i = 0; i < n; i++) {
        /* ours first and only once: drop the inherited ones of the same names */
        bool shadowed = false;
        for (int j = 0; j < OURS && !shadowed; j++) {
            size_t klen = (size_t)(strchr(mine[j], '=') - mine[j]) + 1;
            shadowed = strncmp(environ[i], mine[j], klen) == 0;
        }
        if (!shadowed)
            envp[m++] = environ[i];
    }
    char *argv[16] = {(char *)SHOP_BINARY};
    for (int i = 0; args[i]; i++)
        argv[i + 1] = (char *)args[i];
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        dup2(fd, 1);
        dup2(fd, 2);
        execve(SHOP_BINARY, argv, envp);
        _exit(127);
    }
    free(envp);
    return pid;
}

/* Wait (polling, the runtime goes on) for pid's exit status, at most 20 s. */
static int wait_exit(pid_t pid)
{
    for (int i = 0; i < 2000; i++) {
        int st;
        pid_t r = waitpid(pid, &st, WNOHANG);
        CHECK(r >= 0);
        if (r == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        tern_sleep(10 * TERN_MS);
    }
    kill(pid, SIGKILL);
    CHECK(!"the shop did not exit within 20 s");
    return -1;
}

static int run_system(void *cmd)
{
    return system(cmd);
}

/* Whether the file holds text, read whole: the log is appended to by every
 * start, and one under TSan on a busy machine passed 16 KiB (its seed's
 * calls retried), which hid the last start's lines from a fixed buffer. */
static bool file_has(const char *path, const char *text)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    CHECK(buf != NULL);
    size_t got;
    while ((got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (n == cap - 1) {
            cap *= 2;
            buf = realloc(buf, cap);
            CHECK(buf != NULL);
        }
    }
    fclose(f);
    buf[n] = 0;
    bool has = strstr(buf, text) != NULL;
    free(buf);
    return has;
}

static int64_t mug_available(tern_grpc_channel *inv)
{
    Shop__Inventory__V1__GetStockRequest req = SHOP__INVENTORY__V1__GET_STOCK_REQUEST__INIT;
    req.product_id = "mug";
    Shop__Inventory__V1__Stock *s = NULL;
    tern_ctx *ctx;
    tern_ctx_with_timeout(NULL, 20 * TERN_SEC, &ctx);
    tern_grpc_call_options wait = {.wait_for_ready = true};
    CHECK_EQ(shop_inventory_v1_inventory_get_stock(inv, &req, &s, &wait, NULL, ctx), 0);
    tern_ctx_free(ctx);
    int64_t v = s->available;
    protobuf_c_message_free_unpacked(&s->base, NULL);
    return v;
}

static int body(void *arg)
{
    (void)arg;
    char dir[] = "/tmp/shop-bin-XXXXXX", log[300];
    CHECK(mkdtemp(dir) != NULL);
    snprintf(log, sizeof log, "%s/shop.log", dir);
    for (int i = 0; i < SHOP_NROLES; i++)
        snprintf(addrs[i], sizeof addrs[i], "127.0.0.1:%d", free_port());

    const char *all[] = {"all", NULL};
    pid_t pid = spawn(dir, log, all);
    tern_grpc_channel *inv, *orders;
    CHECK_EQ(tern_grpc_channel_new(addrs[SHOP_INVENTORY], NULL, &inv), 0);
    CHECK_EQ(tern_grpc_channel_new(addrs[SHOP_ORDERS], NULL, &orders), 0);
    /* the seed lands shortly after the services are up */
    int64_t avail = 0;
    for (int i = 0; i < 200 && (avail = mug_available(inv)) == 0; i++)
        tern_sleep(10 * TERN_MS);
    CHECK_EQ(avail, 100);

    /* an order through the process: the saga runs there */
    Shop__Orders__V1__CreateOrderRequest__Line line = SHOP__ORDERS__V1__CREATE_ORDER_REQUEST__LINE__INIT;
    line.product_id = "mug";
    line.quantity = 4;
    Shop__Orders__V1__CreateOrderRequest__Line *lines[] = {&line};
    Shop__Orders__V1__CreateOrderRequest req = SHOP__ORDERS__V1__CREATE_ORDER_REQUEST__INIT;
    req.user_id = "u-bin";
    req.items = lines;
    req.n_items = 1;
    Shop__Orders__V1__Order *o = NULL;
    tern_ctx *ctx;
    tern_ctx_with_timeout(NULL, 10 * TERN_SEC, &ctx);
    CHECK_EQ(shop_orders_v1_orders_create_order(orders, &req, &o, NULL, NULL, ctx), 0);
    char id[64];
    snprintf(id, sizeof id, "%s", o->id);
    protobuf_c_message_free_unpacked(&o->base, NULL);
    int status = 0;
    for (int i = 0; i < 500 && status != SHOP__ORDERS__V1__ORDER_STATUS__ORDER_STATUS_PAID; i++) {
        Shop__Orders__V1__GetOrderRequest gr = SHOP__ORDERS__V1__GET_ORDER_REQUEST__INIT;
        gr.order_id = id;
        CHECK_EQ(shop_orders_v1_orders_get_order(orders, &gr, &o, NULL, NULL, ctx), 0);
        status = (int)o->status;
        protobuf_c_message_free_unpacked(&o->base, NULL);
        tern_sleep(10 * TERN_MS);
    }
    tern_ctx_free(ctx);
    CHECK_EQ(status, SHOP__ORDERS__V1__ORDER_STATUS__ORDER_STATUS_PAID);
    CHECK_EQ(mug_available(inv), 96);

    /* the probes on a role's port, beside gRPC */
    tern_http_client *hc;
    CHECK_EQ(tern_http_client_new(NULL, &hc), 0);
    char url[128];
    snprintf(url, sizeof url, "http://%s/readyz?verbose", addrs[SHOP_CATALOG]);
    tern_http_client_response *resp;
    CHECK_EQ(tern_http_client_do(hc, &(tern_http_client_request){.url = url}, &resp, NULL), 0);
    CHECK_EQ(tern_http_client_response_status(resp), 200);
    const char *body;
    size_t len;
    CHECK_EQ(tern_http_client_response_body(resp, 1 << 16, &body, &len), 0);
    CHECK(strstr(body, "db"));          /* the database's readiness check ran */
    tern_http_client_response_free(resp);
    snprintf(url, sizeof url, "http://%s/metrics", addrs[SHOP_ORDERS]);
    CHECK_EQ(tern_http_client_do(hc, &(tern_http_client_request){.url = url}, &resp, NULL), 0);
    CHECK_EQ(tern_http_client_response_body(resp, 1 << 22, &body, &len), 0);
    CHECK(strstr(body, "grpc_server_handled_total{grpc_type=\"unary\",grpc_service=\"shop.orders.v1.Orders\","
                       "grpc_method=\"CreateOrder\",grpc_code=\"OK\"}"));
    tern_http_client_response_free(resp);
    tern_http_client_free(hc);

    /* SIGTERM: a graceful stop, exit status 0 */
    CHECK_EQ(kill(pid, SIGTERM), 0);
    CHECK_EQ(wait_exit(pid), 0);
    CHECK(file_has(log, "\"shop: stopped\""));

    /* started again: the data is there, nothing seeded twice */
    pid = spawn(dir, log, all);
    CHECK_EQ(mug_available(inv), 96);
    CHECK_EQ(kill(pid, SIGINT), 0);
    CHECK_EQ(wait_exit(pid), 0);
    tern_grpc_channel_free(inv);
    tern_grpc_channel_free(orders);

    /* catalog alone with events.nats at a port nobody listens on: it has
     * no events, so it serves (readiness 200) and stops cleanly */
    char nats[64];
    snprintf(nats, sizeof nats, "--events.nats=nats://127.0.0.1:%d", free_port());
    const char *catalog[] = {"catalog", nats, NULL};
    pid = spawn(dir, log, catalog);
    CHECK_EQ(tern_http_client_new(NULL, &hc), 0);
    snprintf(url, sizeof url, "http://%s/readyz", addrs[SHOP_CATALOG]);
    int ready = 0;
    for (int i = 0; i < 500 && ready != 200; i++) {
        tern_sleep(10 * TERN_MS);
        if (tern_http_client_do(hc, &(tern_http_client_request){.url = url}, &resp, NULL) == 0) {
            ready = tern_http_client_response_status(resp);
            tern_http_client_response_free(resp);
        }
    }
    tern_http_client_free(hc);
    CHECK_EQ(ready, 200);
    CHECK_EQ(kill(pid, SIGTERM), 0);
    CHECK_EQ(wait_exit(pid), 0);

    /* bad arguments: a sentence, status 2 */
    const char *bad_role[] = {"shipping", NULL};
    CHECK_EQ(wait_exit(spawn(dir, log, bad_role)), 2);
    CHECK(file_has(log, "unknown role \"shipping\""));
    const char *bad_value[] = {"all", "--payments.failure_rate=2", NULL};
    CHECK_EQ(wait_exit(spawn(dir, log, bad_value)), 2);
    CHECK(file_has(log, "payments.failure_rate"));
    /* a secret too short for HS256: refused at start, saying why */
    const char *short_secret[] = {"users", "--users.jwt_secret=short", NULL};
    CHECK_EQ(wait_exit(spawn(dir, log, short_secret)), 1);
    CHECK(file_has(log, "users.jwt_secret: at least 32 bytes"));

    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(tern_blocking(run_system, cmd) == 0);
    return 0;
}

static void shop_all_serves_stops_on_sigterm_and_keeps_its_data(void)
{
    run_ok(body, NULL, 2);
}

TESTS(T(shop_all_serves_stops_on_sigterm_and_keeps_its_data))
