/*
 * test_gateway_limit.c - the gateway's rate limits (src/gateway/limit.c)
 * called as the core calls them: a real tern HTTP server whose handler
 * runs tern__gw_limit_take for each request (the limiter named by the
 * X-L header, the subject by X-Sub), tern's HTTP client in front.  Local
 * buckets per key; global buckets in a real redis-server shared by two
 * limiters (two gateways), and what happens when that Redis is killed
 * (the local bucket decides, counted, no request fails) and when it hangs
 * (SIGSTOP: one request pays redis_timeout, the rest go straight to the
 * local bucket until the next probe).
 */
#include "check.h"
#include "http_raw.h"
#include "redis_server.h"

#include <errno.h>
#include <signal.h>

#include <tern/http_client.h>
#include <tern/redis.h>

#include "gateway/policy.h"

static tern__gw_limit *limiters[2];

/* "ok", or "429 <retry_after ns>" */
static int limit_handler(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)arg;
    const char *which = tern_http_req_header(r, "X-L");
    tern__gw_limit *l = limiters[which && strcmp(which, "b") == 0];
    int64_t ra = -1;
    int rc = tern__gw_limit_take(l, r, tern_http_req_header(r, "X-Sub"), &ra, tern_http_req_ctx(r));
    if (rc == 0)
        return tern_http_resp_text(w, 200, "ok");
    CHECK_EQ(rc, -EAGAIN);
    char body[64];
    snprintf(body, sizeof body, "429 %lld", (long long)ra);
    return tern_http_resp_text(w, 429, body);
}

typedef struct lclient {
    tern_http_client *c;
    char url[64];
} lclient;

/* One request with up to two headers (name, value pairs; NULL ends):
 * the status, and the Retry-After ns of a 429 in *ra. */
static int req(lclient *cl, const char *h1, const char *v1, const char *h2, const char *v2, int64_t *ra)
{
    const char *hdrs[] = {h1, v1, h2, v2, NULL};
    tern_http_client_request rq = {.url = cl->url, .headers = h1 ? hdrs : NULL};
    tern_http_client_response *resp;
    CHECK_EQ(tern_http_client_do(cl->c, &rq, &resp, NULL), 0);
    int status = tern_http_client_response_status(resp);
    const char *body;
    size_t len;
    CHECK_EQ(tern_http_client_response_body(resp, 1 << 16, &body, &len), 0);
    if (status == 429 && ra)
        *ra = strtoll(body + 4, NULL, 10);
    else
        CHECK(status == 200 && len == 2 && memcmp(body, "ok", 2) == 0);
    tern_http_client_response_free(resp);
    return status;
}

static json_t *cfg_of(const char *text)
{
    json_error_t je;
    json_t *v = json_loads(text, JSON_DECODE_ANY, &je);
    if (!v) {
        fprintf(stderr, "bad test JSON %s: %s\n", text, je.text);
        abort();
    }
    return v;
}

static tern__gw_limit *limit_of(const char *text, const tern__gw_env *env)
{
    json_t *cfg = cfg_of(text);
    char err[256] = "";
    tern__gw_limit *l;
    int rc = tern__gw_limit_new(cfg, env, &l, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "tern__gw_limit_new(%s): %d %s\n", text, rc, err);
        abort();
    }
    json_decref(cfg);
    return l;
}

static void start(server *sv, lclient *cl)
{
    server_start(sv, (tern_http_link[]){{limit_handler, NULL}}, 1);
    CHECK_EQ(tern_http_client_new(NULL, &cl->c), 0);
    snprintf(cl->url, sizeof cl->url, "%s/x", sv->url);
}

static void stop(server *sv, lclient *cl)
{
    server_stop(sv);
    tern_http_client_free(cl->c);
}

/* ---- local buckets ---------------------------------------------------------- */

static int local_entry(void *arg)
{
    (void)arg;
    tern_metrics_registry *reg;
    CHECK_EQ(tern_metrics_registry_new(&reg), 0);
    tern__gw_env env = {.metrics = reg};
    server sv = {0};
    lclient cl;
    start(&sv, &cl);
    int64_t ra = 0;

    /* by IP (the default key): two a second, two at once */
    limiters[0] = limit_of("{\"rate\": 2, \"per\": \"1s\", \"burst\": 2}", &env);
    CHECK_EQ(req(&cl, NULL, NULL, NULL, NULL, &ra), 200);
    CHECK_EQ(req(&cl, NULL, NULL, NULL, NULL, &ra), 200);
    CHECK_EQ(req(&cl, NULL, NULL, NULL, NULL, &ra), 429);
    CHECK(ra > 0 && ra <= 500 * TERN_MS);       /* the next token, half a second apart */
    /* a header names the client: each value its own bucket */
    tern__gw_limit_free(limiters[0]);
    limiters[0] = limit_of("{\"key\": \"header:X-Key\", \"rate\": 1, \"per\": \"10s\", \"burst\": 2}", &env);
    CHECK_EQ(req(&cl, "X-Key", "alice", NULL, NULL, &ra), 200);
    CHECK_EQ(req(&cl, "X-Key", "alice", NULL, NULL, &ra), 200);
    CHECK_EQ(req(&cl, "X-Key", "alice", NULL, NULL, &ra), 429);
    CHECK(ra > 9 * TERN_SEC && ra <= 10 * TERN_SEC);
    CHECK_EQ(req(&cl, "X-Key", "bob", NULL, NULL, &ra), 200);
    /* requests without the header share one bucket */
    CHECK_EQ(req(&cl, NULL, NULL, NULL, NULL, &ra), 200);
    CHECK_EQ(req(&cl, NULL, NULL, NULL, NULL, &ra), 200);
    CHECK_EQ(req(&cl, NULL, NULL, NULL, NULL, &ra), 429);
    /* claim:sub: the subject the JWT policy found; without one, the IP */
    tern__gw_limit_free(limiters[0]);
    limiters[0] = limit_of("{\"key\": \"claim:sub\", \"rate\": 1, \"per\": \"1m\", \"burst\": 1}", &env);
    CHECK_EQ(req(&cl, "X-Sub", "alice", NULL, NULL, &ra), 200);
    CHECK_EQ(req(&cl, "X-Sub", "alice", NULL, NULL, &ra), 429);
    CHECK_EQ(req(&cl, "X-Sub", "bob", NULL, NULL, &ra), 200);
    CHECK_EQ(req(&cl, NULL, NULL, NULL, NULL, &ra), 200);
    CHECK_EQ(req(&cl, NULL, NULL, NULL, NULL, &ra), 429);
    /* a subject that looks like an IP is still a subject ("sub:" vs "ip:") */
    CHECK_EQ(req(&cl, "X-Sub", "127.0.0.1", NULL, NULL, &ra), 200);
    /* a fractional rate: one every 2 s */
    tern__gw_limit_free(limiters[0]);
    limiters[0] = limit_of("{\"rate\": 0.5}", &env);
    CHECK_EQ(req(&cl, NULL, NULL, NULL, NULL, &ra), 200);
    CHECK_EQ(req(&cl, NULL, NULL, NULL, NULL, &ra), 429);
    CHECK(ra > 1900 * TERN_MS && ra <= 2 * TERN_SEC);
    tern__gw_limit_free(limiters[0]);
    limiters[0] = NULL;
    stop(&sv, &cl);
    tern_metrics_registry_free(reg);
    return 0;
}

static void limit_local_buckets_per_ip_header_and_subject(void)
{
    run_test(local_entry, NULL);
}

/* ---- configuration errors ---------------------------------------------------- */

static int config_entry(void *arg)
{
    tern_redis_client *redis = arg;
    tern_metrics_registry *reg;
    CHECK_EQ(tern_metrics_registry_new(&reg), 0);
    tern__gw_env env = {.metrics = reg};
    struct {
        const char *cfg, *err;
    } cases[] = {
        {"7", "ratelimit: must be an object"},
        {"{}", "ratelimit.rate: must be a positive number"},
        {"{\"rate\": 0}", "ratelimit.rate: must be a positive number"},
        {"{\"rate\": \"100\"}", "ratelimit.rate: must be a positive number"},
        {"{\"rate\": 1, \"per\": \"soon\"}", "ratelimit.per: must be a positive duration"},
        {"{\"rate\": 1, \"per\": 0}", "ratelimit.per: must be a positive duration"},
        {"{\"rate\": 1e9, \"per\": \"1s\"}", "ratelimit.rate: 1e+09 per 1 s is outside"},
        {"{\"rate\": 1, \"per\": \"1h\"}", "ratelimit.rate: 1 per 3600 s is outside"},
        {"{\"rate\": 1, \"burst\": 0}", "ratelimit.burst: must be a whole number >= 1"},
        {"{\"rate\": 1, \"burst\": 1.5}", "ratelimit.burst: must be a whole number >= 1"},
        {"{\"rate\": 1, \"key\": \"claim:\"}", "ratelimit.key: must be ip, header:<name> or claim:<name>, not claim:"},
        {"{\"rate\": 1, \"key\": \"cookie:s\"}", "ratelimit.key: must be ip, header:<name> or claim:<name>, not cookie:s"},
        {"{\"rate\": 1, \"key\": \"header:\"}", "ratelimit.key: must be ip"},
        {"{\"rate\": 1, \"global\": \"yes\"}", "ratelimit.global: must be true or false"},
        {"{\"rate\": 1, \"global\": true}", "ratelimit.global: needs the top-level redis address"},
        {"{\"rate\": 1, \"rates\": 2}", "ratelimit.rates: unknown key"},
        {"{\"rate\": 1, \"redis_timeout\": \"-1ms\"}", "ratelimit.redis_timeout: must be a positive duration"},
        {"{\"rate\": 1, \"max_keys\": 0}", "ratelimit.max_keys: must be a whole number >= 1"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *cfg = cfg_of(cases[i].cfg);
        char err[256] = "";
        tern__gw_limit *l = (tern__gw_limit *)1;
        CHECK_EQ(tern__gw_limit_new(cfg, &env, &l, err, sizeof err), -EINVAL);
        CHECK(l == NULL);
        if (strncmp(err, cases[i].err, strlen(cases[i].err)) != 0) {
            fprintf(stderr, "case %zu: err \"%s\", expected \"%s...\"\n", i, err, cases[i].err);
            abort();
        }
        json_decref(cfg);
    }
    /* with a Redis, global is fine; the bucket must be a string */
    env.redis = redis;
    tern__gw_limit *l = limit_of("{\"rate\": 1, \"global\": true, \"bucket\": \"api\"}", &env);
    tern__gw_limit_free(l);
    json_t *cfg = cfg_of("{\"rate\": 1, \"global\": true, \"bucket\": 1}");
    char err[256];
    CHECK_EQ(tern__gw_limit_new(cfg, &env, &l, err, sizeof err), -EINVAL);
    CHECK(strcmp(err, "ratelimit.bucket: must be a string") == 0);
    json_decref(cfg);
    tern__gw_limit_free(NULL);
    tern_metrics_registry_free(reg);
    return 0;
}

/* ---- global buckets in Redis -------------------------------------------------- */

static redis_server rs;

static uint64_t fallbacks(tern_metrics_registry *reg)
{
    char *text;
    size_t len;
    CHECK_EQ(tern_metrics_format(reg, &text, &len), 0);
    const char *p = strstr(text, "\ntern_gateway_ratelimit_fallback_total ");
    CHECK(p);
    uint64_t n = strtoull(p + strlen("\ntern_gateway_ratelimit_fallback_total "), NULL, 10);
    free(text);
    return n;
}

/* redis_server.h's calls sleep and wait for the child: off the workers */
static int redis_up_blocking(void *arg)
{
    (void)arg;
    redis_server_up(&rs);
    return 0;
}

static int redis_kill_blocking(void *arg)
{
    (void)arg;
    redis_server_kill(&rs);
    return 0;
}

static void wait_redis(tern_redis_client *redis)
{
    for (int i = 0; i < 500; i++) {
        tern_redis_reply *rp;
        if (tern_redis_command(redis, 1, (const char *[]){"PING"}, NULL, &rp, NULL) == 0) {
            tern_redis_reply_free(rp);
            return;
        }
        tern_sleep(10 * TERN_MS);
    }
    CHECK(!"redis did not come up");
}

/* n requests for key alternating between the two limiters: how many
 * were allowed. */
static int alternate(lclient *cl, const char *key, int n)
{
    int allowed = 0;
    int64_t ra;
    for (int i = 0; i < n; i++)
        allowed += req(cl, "X-L", i % 2 ? "b" : "a", "X-Key", key, &ra) == 200;
    return allowed;
}

static int global_entry(void *arg)
{
    tern_redis_client *redis = arg;
    wait_redis(redis);
    tern_metrics_registry *reg;
    CHECK_EQ(tern_metrics_registry_new(&reg), 0);
    tern__gw_env env = {.metrics = reg, .redis = redis};
    /* five per 10 s, five at once; two gateways with the same route */
    const char *cfg = "{\"key\": \"header:X-Key\", \"rate\": 5, \"per\": \"10s\", \"burst\": 5, \"global\": true,"
                      " \"redis_timeout\": \"200ms\"}";
    limiters[0] = limit_of(cfg, &env);
    limiters[1] = limit_of(cfg, &env);
    server sv = {0};
    lclient cl;
    start(&sv, &cl);
    char key[64];
    snprintf(key, sizeof key, "k1-%d", (int)getpid());

    /* one bucket in Redis for both */
    uint64_t f0 = fallbacks(reg);
    CHECK_EQ(alternate(&cl, key, 10), 5);
    int64_t ra = 0;
    CHECK_EQ(req(&cl, "X-Key", key, NULL, NULL, &ra), 429);
    CHECK(ra > 1 * TERN_SEC && ra <= 2 * TERN_SEC);     /* Redis's GCRA: 2 s a token */
    CHECK_EQ(fallbacks(reg), f0);

    /* Redis killed: each gateway decides alone with its local bucket;
     * no request fails, each is counted */
    CHECK_EQ(tern_blocking(redis_kill_blocking, NULL), 0);
    snprintf(key, sizeof key, "k2-%d", (int)getpid());
    int64_t t0 = tern_now();
    CHECK_EQ(alternate(&cl, key, 20), 10);
    CHECK(tern_now() - t0 < 2 * TERN_SEC);
    CHECK_EQ(fallbacks(reg), f0 + 20);

    /* Redis back: within a probe interval (1 s) and the client's
     * reconnect, the bucket is Redis's again */
    CHECK_EQ(tern_blocking(redis_up_blocking, NULL), 0);
    wait_redis(redis);
    uint64_t f1 = fallbacks(reg);
    int back = 0;
    for (int i = 0; i < 60 && !back; i++) {
        char probe[64];
        snprintf(probe, sizeof probe, "probe-%d-%d", (int)getpid(), i);
        req(&cl, "X-L", "a", "X-Key", probe, &ra);
        req(&cl, "X-L", "b", "X-Key", probe, &ra);
        back = fallbacks(reg) == f1;
        f1 = fallbacks(reg);
        if (!back)
            tern_sleep(100 * TERN_MS);
    }
    CHECK(back);
    snprintf(key, sizeof key, "k3-%d", (int)getpid());
    CHECK_EQ(alternate(&cl, key, 10), 5);
    CHECK_EQ(fallbacks(reg), f1);

    /* Redis hangs (SIGSTOP): the first request waits redis_timeout, the
     * next ones within the probe interval do not wait at all */
    CHECK_EQ(kill(rs.pid, SIGSTOP), 0);
    snprintf(key, sizeof key, "k4-%d", (int)getpid());
    t0 = tern_now();
    CHECK_EQ(req(&cl, "X-Key", key, NULL, NULL, &ra), 200);
    int64_t first = tern_now() - t0;
    CHECK(first >= 190 * TERN_MS && first < 1 * TERN_SEC);
    t0 = tern_now();
    CHECK_EQ(req(&cl, "X-Key", key, NULL, NULL, &ra), 200);
    CHECK(tern_now() - t0 < 150 * TERN_MS);
    CHECK_EQ(fallbacks(reg), f1 + 2);
    CHECK_EQ(kill(rs.pid, SIGCONT), 0);

    stop(&sv, &cl);
    tern__gw_limit_free(limiters[0]);
    tern__gw_limit_free(limiters[1]);
    limiters[0] = limiters[1] = NULL;
    tern_metrics_registry_free(reg);
    return 0;
}

typedef struct with_redis {
    tern_fn *fn;
} with_redis;

static int redis_entry(void *arg)
{
    with_redis *w = arg;
    tern_redis_client *redis;
    tern_redis_client_options o = {.addr = rs.sock, .backoff_max = 200 * TERN_MS};
    CHECK_EQ(tern_redis_client_new(&o, &redis), 0);
    CHECK_EQ(w->fn(redis), 0);
    tern_redis_client_free(redis);
    return 0;
}

static void limit_new_names_the_key_in_each_error(void)
{
    memset(&rs, 0, sizeof rs);
    redis_server_start(&rs);
    run_test(redis_entry, &(with_redis){config_entry});
    redis_server_stop(&rs);
}

static void limit_global_bucket_is_shared_and_falls_back_when_redis_fails(void)
{
    memset(&rs, 0, sizeof rs);
    redis_server_start(&rs);
    run_test(redis_entry, &(with_redis){global_entry});
    redis_server_stop(&rs);
}

TESTS(T(limit_local_buckets_per_ip_header_and_subject), T(limit_new_names_the_key_in_each_error),
      T(limit_global_bucket_is_shared_and_falls_back_when_redis_fails))
