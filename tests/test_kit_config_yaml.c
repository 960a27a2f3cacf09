/*
 * test_kit_config_yaml.c - YAML configuration: tern_config_parse_yaml's
 * mapping to JSON values (scalars resolved as the YAML 1.2 core schema
 * says, quoted ones always strings, anchors, flow and block styles), what
 * it refuses with the line and column, and the kit's config reading a
 * .yaml file as it reads a JSON one.
 */
#include "check.h"

#include <errno.h>
#include <jansson.h>
#include <unistd.h>

#define CHECK_STR(a, b)                                                                  \
    do {                                                                                 \
        const char *sa_ = (a), *sb_ = (b);                                               \
        if (!sa_ || strcmp(sa_, sb_) != 0) {                                             \
            fprintf(stderr, "%s:%d: CHECK_STR failed: %s is \"%s\", expected \"%s\"\n",  \
                    __FILE__, __LINE__, #a, sa_ ? sa_ : "(null)", sb_);                  \
            abort();                                                                     \
        }                                                                                \
    } while (0)

/* The YAML text as compact JSON with sorted keys. */
static char *as_json(const char *yaml)
{
    json_t *v;
    char err[256];
    int rc = tern_config_parse_yaml(yaml, strlen(yaml), &v, err, sizeof err);
    if (rc < 0) {
        fprintf(stderr, "parse failed: %s\n", err);
        abort();
    }
    char *s = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    json_decref(v);
    return s;
}

static void check_json(const char *yaml, const char *want)
{
    char *got = as_json(yaml);
    CHECK_STR(got, want);
    free(got);
}

static void yaml_scalars_follow_the_core_schema(void)
{
    check_json("a: 1\nb: -12\nc: 0x1f\nd: 0o17\ne: 1.5\nf: 1e3\ng: true\nh: False\ni: null\nj: ~\nk:\n"
               "l: 250ms\nm: \"12\"\nn: 'true'\no: 1.2.3\np: 99999999999999999999\n",
               "{\"a\":1,\"b\":-12,\"c\":31,\"d\":15,\"e\":1.5,\"f\":1000.0,\"g\":true,\"h\":false,"
               "\"i\":null,\"j\":null,\"k\":null,\"l\":\"250ms\",\"m\":\"12\",\"n\":\"true\","
               "\"o\":\"1.2.3\",\"p\":\"99999999999999999999\"}");
}

static void yaml_structures_and_anchors(void)
{
    check_json("upstreams:\n"
               "  a:\n"
               "    endpoints:\n"
               "      - 127.0.0.1:1\n"
               "      - {addr: \"127.0.0.1:2\", weight: 2}\n"
               "  b: &x [1, 2]\n"
               "  c: *x\n"
               "text: |\n"
               "  two\n"
               "  lines\n",
               "{\"text\":\"two\\nlines\\n\",\"upstreams\":{\"a\":{\"endpoints\":[\"127.0.0.1:1\","
               "{\"addr\":\"127.0.0.1:2\",\"weight\":2}]},\"b\":[1,2],\"c\":[1,2]}}");
    check_json("", "null");
    check_json("--- [a, b]\n...\n", "[\"a\",\"b\"]");
    /* JSON is YAML */
    check_json("{\"a\": [1, {\"b\": \"c\"}]}", "{\"a\":[1,{\"b\":\"c\"}]}");
}

static void refuse(const char *yaml, const char *want)
{
    json_t *v = (json_t *)1;
    char err[256];
    CHECK_EQ(tern_config_parse_yaml(yaml, strlen(yaml), &v, err, sizeof err), -EINVAL);
    CHECK(v == NULL);
    if (!strstr(err, want)) {
        fprintf(stderr, "\"%s\" gave \"%s\", expected \"%s\"\n", yaml, err, want);
        abort();
    }
}

static void yaml_refusals_say_where(void)
{
    refuse("a: 1\na: 2\n", "line 2 column 1: duplicate key \"a\"");
    refuse("a: [1, 2\n", "line 2 column 1:");
    refuse("a: *nope\n", "line 1 column 4: alias *nope names no anchor before it");
    refuse("base: &b {x: 1}\nc:\n  <<: *b\n", "line 3 column 3: merge keys (<<) are not supported");
    refuse("? [a]\n: 1\n", "a mapping key that is not a scalar");
    refuse("a: 1\n---\nb: 2\n", "more than one document");
    refuse("\tx: 1\n", "line 1 column 1:");
    /* nesting is capped as for JSON files */
    char deep[1024] = "";
    for (int i = 0; i < 200; i++)
        strcat(deep, "[");
    refuse(deep, "nested deeper than 128");
    /* no error buffer is fine */
    json_t *v;
    CHECK_EQ(tern_config_parse_yaml("a: [", 4, &v, NULL, 0), -EINVAL);
    CHECK_EQ(tern_config_parse_yaml(NULL, 1, &v, NULL, 0), -EINVAL);
}

static const tern_config_key keys[] = {
    TERN_CONFIG_KEY("http.listen", TERN_CONFIG_STRING, .def = ":80"),
    TERN_CONFIG_KEY("http.port", TERN_CONFIG_INT, .def = "80"),
    TERN_CONFIG_KEY("http.timeout", TERN_CONFIG_DURATION, .def = "1s"),
    TERN_CONFIG_KEY("debug", TERN_CONFIG_BOOL),
    TERN_CONFIG_KEY("hosts", TERN_CONFIG_LIST),
};

static void put(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    CHECK(f);
    fputs(text, f);
    fclose(f);
}

static void config_reads_a_yaml_file(void)
{
    char path[64];
    snprintf(path, sizeof path, "/tmp/tern-cfg-%d.yaml", (int)getpid());
    put(path, "# the service\nhttp:\n  listen: 0.0.0.0:8080\n  port: 8080\n  timeout: 250ms\n"
              "debug: yes\nhosts: [a, b]\n");
    tern_config_options o = {.keys = keys, .nkeys = 5, .file = path};
    tern_config *cfg;
    tern_config_error err;
    CHECK_EQ(tern_config_new(0, NULL, &err, &o, &cfg), 0);
    CHECK_STR(tern_config_str(cfg, "http.listen"), "0.0.0.0:8080");
    CHECK_EQ(tern_config_int(cfg, "http.port"), 8080);
    CHECK_EQ(tern_config_duration(cfg, "http.timeout"), 250 * 1000000LL);
    CHECK(tern_config_bool(cfg, "debug"));
    size_t n;
    const char *const *l = tern_config_list(cfg, "hosts", &n);
    CHECK_EQ(n, 2);
    CHECK_STR(l[1], "b");
    /* a reload reads it again; a broken file keeps the old values */
    put(path, "http: {port: 9090}\n");
    CHECK_EQ(tern_config_reload(cfg, &err), 0);
    CHECK_EQ(tern_config_int(cfg, "http.port"), 9090);
    put(path, "http: {port: 1\n");
    CHECK_EQ(tern_config_reload(cfg, &err), -EINVAL);
    CHECK(strstr(err.msg, path) && strstr(err.msg, "line 2 column 1"));
    CHECK_EQ(tern_config_int(cfg, "http.port"), 9090);
    put(path, "- a\n");
    CHECK_EQ(tern_config_reload(cfg, &err), -EINVAL);
    CHECK(strstr(err.msg, "not a YAML mapping"));
    put(path, "nope: 1\n");
    CHECK_EQ(tern_config_reload(cfg, &err), -EINVAL);
    CHECK(strstr(err.msg, "nope"));
    tern_config_free(cfg);
    /* .yml is YAML too */
    char yml[64];
    snprintf(yml, sizeof yml, "/tmp/tern-cfg-%d.yml", (int)getpid());
    put(yml, "http: {port: 7}\n");
    o.file = yml;
    CHECK_EQ(tern_config_new(0, NULL, &err, &o, &cfg), 0);
    CHECK_EQ(tern_config_int(cfg, "http.port"), 7);
    tern_config_free(cfg);
    unlink(path);
    unlink(yml);
}

TESTS(T(yaml_scalars_follow_the_core_schema), T(yaml_structures_and_anchors), T(yaml_refusals_say_where),
      T(config_reads_a_yaml_file))
