/*
 * test_gateway_config.c - configurations the gateway refuses, each with
 * the sentence that names the key, and the ones it takes: YAML and JSON
 * text, a .json and a .yaml file, durations, a file resolver named
 * relative to the configuration's folder.
 */
#include "check.h"
#include "gateway_fixture.h"

#include <unistd.h>

static const struct {
    const char *text;
    const char *error;
} bad[] = {
    {"", "config: not a mapping of sections"},
    {"- a\n- b\n", "config: not a mapping of sections"},
    {"upstreams: {a: 1}\nroutes: [\n", "config: line 3 column 1: did not find expected node content"},
    {"{\"routes\": [}", "config: line 1 column 13:"},
    {"listen: 8080\n", "config: unknown key \"listen\" (known: redis, jwt, upstreams, routes)"},
    {"upstreams: [a]\n", "config: upstreams: must be a mapping of names to upstreams"},
    {"upstreams: {a: {}}\n", "config: upstreams.a: needs exactly one of endpoints and resolver"},
    {"upstreams: {a: {endpoints: []}}\n", "config: upstreams.a: endpoints: must be a non-empty list"},
    {"upstreams: {a: {endpoints: [\"localhost\"]}}\n", "config: upstreams.a: endpoints[0]: \"localhost\" has no port"},
    {"upstreams: {a: {endpoints: [{addr: \"h:1\", weight: 0}]}}\n",
     "config: upstreams.a: endpoints[0].weight: must be an integer from 1 to 10000"},
    {"upstreams: {a: {endpoints: [\"h:1\"], protocol: http3}}\n",
     "config: upstreams.a: protocol: \"http3\" is not http1, h2c or grpc"},
    {"upstreams: {a: {endpoints: [\"h:1\"], policy: random}}\n",
     "config: upstreams.a: policy: \"random\" is not p2c, round_robin"},
    {"upstreams: {a: {endpoints: [\"h:1\"], timeout: 2x}}\n",
     "config: upstreams.a: timeout: \"2x\" is not a duration"},
    {"upstreams: {a: {endpoints: [\"h:1\"], retries: 3}}\n",
     "config: upstreams.a: unknown key \"retries\""},
    {"upstreams: {a: {endpoints: [\"h:1\"], breaker: {failure_ratio: 2}}}\n",
     "config: upstreams.a.breaker: failure_ratio: must be a number in (0, 1]"},
    {"upstreams: {a: {endpoints: [\"h:1\"], health_check: {interval: 1s}}}\n",
     "config: upstreams.a.health_check: path: required, starting with '/' (or grpc: true)"},
    {"upstreams: {a: {endpoints: [\"h:1\"], health_check: {grpc: true, path: /h}}}\n",
     "config: upstreams.a.health_check: path: a gRPC health check has none (grpc.health.v1.Health/Check)"},
    {"upstreams: {a: {endpoints: [\"h:1\"], health_check: {grpc: yes please}}}\n",
     "config: upstreams.a.health_check: grpc: must be true or false"},
    {"upstreams: {a: {endpoints: [\"h:1\"], health_check: {grpc: false, grpc_service: x.Y}}}\n",
     "config: upstreams.a.health_check: grpc_service: needs grpc"},
    {"upstreams: {a: {endpoints: [\"h:1\", \"h:1\"]}}\n", "config: upstreams.a: endpoints: duplicate addresses"},
    {"upstreams: {a: {resolver: {consul: x}}}\n", "config: upstreams.a: resolver: unknown kind \"consul\""},
    {"routes: {a: 1}\n", "config: routes: must be a list"},
    {"routes: [{upstream: a}]\n", "config: routes[0]: match: required"},
    {"routes: [{match: {path: /a, prefix: /b}, upstream: a}]\n",
     "config: routes[0].match: needs exactly one of path and prefix"},
    {"routes: [{match: {path: a}, upstream: a}]\n", "config: routes[0].match: path: \"a\" must start with '/'"},
    {"routes: [{match: {prefix: /a/:x}, upstream: a}]\n", "config: routes[0].match: prefix: \"/a/:x\" may hold no :param"},
    {"routes: [{match: {path: /a, methods: [get]}, upstream: a}]\n",
     "config: routes[0].match: methods[0]: must be a method in capitals"},
    {"routes: [{match: {path: /a}}]\n",
     "config: routes[0]: needs exactly one of upstream, split, grpc and aggregate"},
    {"upstreams: {a: {endpoints: [\"h:1\"]}}\nroutes: [{match: {path: /a}, upstream: a, split: []}]\n",
     "config: routes[0]: needs exactly one of upstream, split, grpc and aggregate"},
    {"routes: [{match: {path: /a}, upstream: b}]\n", "config: routes[0]: upstream: no upstream called \"b\""},
    {"upstreams: {a: {endpoints: [\"h:1\"]}}\nroutes: [{match: {path: /a}, upstream: a, retries: {attempts: 9}}]\n",
     "config: routes[0].retries: attempts: must be an integer from 1 to 5"},
    {"upstreams: {a: {endpoints: [\"h:1\"]}}\nroutes: [{match: {path: /a}, upstream: a, retries: {attempts: 2, on: [500]}}]\n",
     "config: routes[0].retries: on[0]: not one of connect, reset, 502, 503, 504"},
    {"upstreams: {a: {endpoints: [\"h:1\"]}}\nroutes: [{match: {path: /a}, upstream: a, auth: maybe}]\n",
     "config: routes[0]: auth: \"maybe\" is not required, optional or none"},
    {"upstreams: {a: {endpoints: [\"h:1\"]}}\nroutes: [{match: {path: /a}, upstream: a, auth: required}]\n",
     "config: routes[0]: auth: required needs a top-level jwt section"},
    {"upstreams: {a: {endpoints: [\"h:1\"]}}\nroutes: [{match: {path: /a}, upstream: a, rewrite: {strip_prefix: /a, path: /b}}]\n",
     "config: routes[0].rewrite: strip_prefix and path exclude each other"},
    {"upstreams: {a: {endpoints: [\"h:1\"]}, b: {endpoints: [\"h:2\"]}}\n"
     "routes: [{match: {prefix: /}, split: [{upstream: a, weight: 70}, {upstream: b, weight: 20}]}]\n",
     "config: routes[0].split: weights add up to 90, not 100"},
    {"upstreams: {a: {endpoints: [\"h:1\"]}}\n"
     "routes: [{match: {prefix: /}, split: [{upstream: a, weight: 100}], split_override: {cookie: 1}}]\n",
     "config: routes[0].split_override: cookie: must be a non-empty string"},
    {"upstreams: {a: {endpoints: [\"h:1\"]}}\n"
     "routes: [{match: {path: /a/:id}, upstream: a}, {match: {path: /a/:name/x}, upstream: a}]\n",
     "config: routes[1].match: \"/a/:name/x\" conflicts with another route"},
    {"upstreams: {a: {endpoints: [\"h:1\"]}}\nroutes: [{match: {path: /a}, upstream: a, timeout: -1}]\n",
     "config: routes[0]: timeout: -1 is not a duration"},
    /* the policies' sentences (policy.h) get the file and the route */
    {"upstreams: {a: {endpoints: [\"h:1\"]}}\nroutes: [{match: {path: /a}, upstream: a},\n"
     "  {match: {path: /b}, upstream: a, ratelimit: {key: ip, rate: 0}}]\n",
     "config: routes[1].ratelimit.rate: "},
    {"jwt: {isuser: x, hs256_secret_env: HOME}\nupstreams: {a: {endpoints: [\"h:1\"]}}\n"
     "routes: [{match: {path: /a}, upstream: a}]\n",
     "config: jwt.isuser: unknown key"},
    {"upstreams: {a: {endpoints: [\"h:1\"], protocol: grpc}}\n"
     "routes: [{match: {path: /a}, grpc: {upstream: a, method: \"no.Such/Method\"}}]\n",
     "config: routes[0]: "},
};

static int bad_main(void *arg)
{
    (void)arg;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tern_gateway_options o = {.config_text = bad[i].text, .config_len = strlen(bad[i].text)};
        tern_metrics_registry *reg;
        CHECK_EQ(tern_metrics_registry_new(&reg), 0);
        o.metrics = reg;
        tern_gateway *gw = (tern_gateway *)1;
        char err[512] = "";
        int rc = tern_gateway_new(&o, &gw, err, sizeof err);
        if (rc != -EINVAL || !strstr(err, bad[i].error)) {
            fprintf(stderr, "config %zu:\n%s\n gave %d \"%s\", expected \"%s\"\n", i, bad[i].text, rc, err,
                    bad[i].error);
            abort();
        }
        CHECK(gw == NULL);
        tern_metrics_registry_free(reg);
    }
    /* the error buffer may be absent */
    tern_gateway_options o = {.config_text = "x: 1", .config_len = 4};
    tern_gateway *gw;
    CHECK_EQ(tern_gateway_new(&o, &gw, NULL, 0), -EINVAL);
    tern_gateway_options none = {0};
    char err[128];
    CHECK_EQ(tern_gateway_new(&none, &gw, err, sizeof err), -EINVAL);
    CHECK_STR(err, "config: neither config_path nor config_text given");
    return 0;
}

static void bad_configs_name_the_key(void) { run_ok(bad_main, NULL, 2); }

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    CHECK(f);
    fputs(text, f);
    fclose(f);
}

static int files_main(void *arg)
{
    (void)arg;
    upstream A = {0};
    upstream_start(&A, "A");
    char dir[] = "/tmp/tern-gwc-XXXXXX";
    CHECK(mkdtemp(dir));
    char eps[256], json[256], yaml[256], missing[256], text[1024];
    snprintf(eps, sizeof eps, "%s/a.endpoints", dir);
    snprintf(json, sizeof json, "%s/gw.json", dir);
    snprintf(yaml, sizeof yaml, "%s/gw.yml", dir);
    snprintf(missing, sizeof missing, "%s/none.yaml", dir);
    write_file(eps, A.addr);
    /* JSON, with the endpoints from a file named relative to the config */
    snprintf(text, sizeof text,
             "{\"upstreams\": {\"a\": {\"resolver\": {\"file\": \"a.endpoints\"}, \"timeout\": 1500000000}},"
             " \"routes\": [{\"match\": {\"prefix\": \"/\"}, \"upstream\": \"a\", \"timeout\": \"1m30s\"}]}");
    write_file(json, text);
    /* YAML with anchors: the same mapping twice */
    snprintf(text, sizeof text,
             "upstreams:\n"
             "  a: &ep {endpoints: [\"%s\"], timeout: 250ms}\n"
             "  b: *ep\n"
             "routes:\n"
             "  - {match: {prefix: /b/}, upstream: b}\n"
             "  - {match: {prefix: /}, upstream: a}\n", A.addr);
    write_file(yaml, text);
    const char *paths[] = {json, yaml};
    for (int i = 0; i < 2; i++) {
        gwsrv s;
        memset(&s, 0, sizeof s);
        CHECK_EQ(tern_metrics_registry_new(&s.reg), 0);
        tern_gateway_options o = {.config_path = paths[i], .metrics = s.reg};
        char err[512];
        int rc = tern_gateway_new(&o, &s.gw, err, sizeof err);
        if (rc < 0)
            fprintf(stderr, "%s: %s\n", paths[i], err);
        CHECK_EQ(rc, 0);
        tern_http_server_options so = {.handler = tern_gateway_handler, .arg = s.gw};
        CHECK_EQ(tern_http_server_new(&so, &s.srv), 0);
        CHECK_EQ(tern_http_server_listen(s.srv, "127.0.0.1:0"), 0);
        snprintf(s.base, sizeof s.base, "http://%s", tern_http_server_addr(s.srv));
        CHECK_EQ(tern_go(gw_serve_co, &s), 0);
        CHECK_EQ(tern_http_client_new(NULL, &s.c), 0);
        reply r;
        bool up = false;
        for (int t = 0; t < 100 && !up; t++) {      /* the file resolver's first set */
            CHECK_EQ(gw_get(&s, "/b/x", &r), 0);
            up = r.status == 200;
            if (!up)
                tern_sleep(10 * MS);
        }
        CHECK_STR(r.body, "A GET /b/x");
        gw_stop(&s);
    }
    /* a resolver whose first answer is an error refuses the configuration */
    snprintf(text, sizeof text, "upstreams: {a: {resolver: {file: nowhere.endpoints}}}\n");
    write_file(yaml, text);
    tern_gateway_options ro = {.config_path = yaml};
    char rerr[512];
    tern_gateway *rgw;
    CHECK_EQ(tern_gateway_new(&ro, &rgw, rerr, sizeof rerr), -EINVAL);
    CHECK_HAS(rerr, "gw.yml: upstreams.a: resolver: no endpoints: ");
    tern_gateway_options o = {.config_path = missing};
    tern_gateway *gw;
    char err[512];
    CHECK_EQ(tern_gateway_new(&o, &gw, err, sizeof err), -EINVAL);
    CHECK_HAS(err, "none.yaml: cannot read: ");
    unlink(eps);
    unlink(json);
    unlink(yaml);
    rmdir(dir);
    upstream_stop(&A);
    return 0;
}

static void json_and_yaml_files(void) { run_ok(files_main, NULL, 2); }

TESTS(T(bad_configs_name_the_key), T(json_and_yaml_files))
