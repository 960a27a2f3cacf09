/* test_kit_config.c - layered configuration: precedence, types and their
 * errors, limits, nested JSON, unknown keys, flags, --help, reloads by API,
 * by SIGHUP and by watching the file (in place, rename, a Kubernetes
 * ConfigMap swap, bad writes, touch, a directory that comes back, a
 * symlink elsewhere), readers racing reloads, and files never to read:
 * a FIFO (at load, and swapped in under the watcher, which must block no
 * worker), a directory, one over the size limit. */
#include "check.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/stat.h>

#include <tern/config.h>

#define CHECK_STR(a, b)                                                                  \
    do {                                                                                 \
        const char *a_ = (a), *b_ = (b);                                                 \
        if (!a_ || strcmp(a_, b_) != 0) {                                                \
            fprintf(stderr, "%s:%d: got      [%s]\n    expected [%s]\n", __FILE__,       \
                    __LINE__, a_ ? a_ : "(null)", b_);                                   \
            abort();                                                                     \
        }                                                                                \
    } while (0)

static char path[64];

static void write_file(const char *text)
{
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    fputs(text, f);
    CHECK(fclose(f) == 0);
}

static void new_path(void)
{
    if (path[0])
        unlink(path);
    strcpy(path, "/tmp/tern_cfg_test_XXXXXX");
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    close(fd);
}

/* A config from keys, the file text (NULL: no file) and flags. */
static int make(const tern_config_key *keys, size_t n, const char *prefix, const char *file,
                int argc, char **argv, tern_config **cfg, tern_config_error *err)
{
    new_path();
    if (file)
        write_file(file);
    tern_config_options o = {.keys = keys, .nkeys = n, .env_prefix = prefix,
                             .file = file ? path : NULL};
    return tern_config_new(argc, argv, err, &o, cfg);
}

static char ebuf[1024];
static const char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static const char *fmt(const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    vsnprintf(ebuf, sizeof ebuf, f, ap);
    va_end(ap);
    return ebuf;
}

/* ---- precedence ---------------------------------------------------------------- */

static const tern_config_key layer_keys[] = {
    TERN_CONFIG_KEY("a", TERN_CONFIG_STRING, .def = "def-a", .help = "only a default"),
    TERN_CONFIG_KEY("b", TERN_CONFIG_STRING, .def = "def-b", .help = "file wins"),
    TERN_CONFIG_KEY("c", TERN_CONFIG_STRING, .def = "def-c", .help = "env wins"),
    TERN_CONFIG_KEY("d", TERN_CONFIG_STRING, .def = "def-d", .help = "flag wins"),
    TERN_CONFIG_KEY("e", TERN_CONFIG_INT, .def = NULL, .help = "no default"),
};

static void config_each_layer_overrides_the_one_below(void)
{
    setenv("L1_C", "env-c", 1);
    setenv("L1_D", "env-d", 1);
    char *argv[] = {"prog", "--d=flag-d", NULL};
    tern_config *cfg;
    tern_config_error err;
    CHECK_EQ(make(layer_keys, 5, "L1", "{\"b\":\"file-b\",\"c\":\"file-c\",\"d\":\"file-d\"}", 2,
                  argv, &cfg, &err), 0);
    CHECK_EQ(err.count, 0);
    CHECK_STR(err.msg, "");
    CHECK_STR(tern_config_str(cfg, "a"), "def-a");
    CHECK_STR(tern_config_str(cfg, "b"), "file-b");
    CHECK_STR(tern_config_str(cfg, "c"), "env-c");
    CHECK_STR(tern_config_str(cfg, "d"), "flag-d");
    CHECK_EQ(tern_config_int(cfg, "e"), 0);
    CHECK_STR(tern_config_source(cfg, "a"), "default");
    CHECK_STR(tern_config_source(cfg, "b"), "file");
    CHECK_STR(tern_config_source(cfg, "c"), "env");
    CHECK_STR(tern_config_source(cfg, "d"), "flag");
    CHECK_EQ(tern_config_generation(cfg), 0);
    tern_config_free(cfg);
    /* Without a prefix there is no env layer; a missing optional file is fine. */
    tern_config_options o = {.keys = layer_keys, .nkeys = 5, .file = "/nonexistent/x.json",
                             .file_optional = true};
    CHECK_EQ(tern_config_new(0, NULL, &err, &o, &cfg), 0);
    CHECK_STR(tern_config_str(cfg, "c"), "def-c");
    tern_config_free(cfg);
    o.file_optional = false;
    CHECK_EQ(tern_config_new(0, NULL, &err, &o, &cfg), -EINVAL);
    CHECK(cfg == NULL);
    CHECK_STR(err.msg, "config: cannot read file /nonexistent/x.json: No such file or directory");
    unsetenv("L1_C");
    unsetenv("L1_D");
}

/* ---- types ---------------------------------------------------------------------- */

static const tern_config_key type_keys[] = {
    TERN_CONFIG_KEY("s", TERN_CONFIG_STRING),
    TERN_CONFIG_KEY("i", TERN_CONFIG_INT),
    TERN_CONFIG_KEY("f", TERN_CONFIG_DOUBLE),
    TERN_CONFIG_KEY("b", TERN_CONFIG_BOOL),
    TERN_CONFIG_KEY("t", TERN_CONFIG_DURATION),
    TERN_CONFIG_KEY("l", TERN_CONFIG_LIST),
};

static tern_config *with_flag(const char *flag)
{
    char *argv[] = {"prog", (char *)flag, NULL};
    tern_config *cfg;
    tern_config_error err;
    int r = make(type_keys, 6, NULL, NULL, 2, argv, &cfg, &err);
    if (r != 0)
        fprintf(stderr, "%s: %s\n", flag, err.msg);
    CHECK_EQ(r, 0);
    return cfg;
}

static int64_t dur(const char *text)
{
    char flag[64];
    snprintf(flag, sizeof flag, "--t=%s", text);
    tern_config *cfg = with_flag(flag);
    int64_t v = tern_config_duration(cfg, "t");
    tern_config_free(cfg);
    return v;
}

static void config_parses_every_type(void)
{
    tern_config *cfg = with_flag("--i=-42");
    CHECK_EQ(tern_config_int(cfg, "i"), -42);
    CHECK_STR(tern_config_str(cfg, "s"), "");           /* zero defaults */
    CHECK(tern_config_double(cfg, "f") == 0);
    CHECK(!tern_config_bool(cfg, "b"));
    CHECK_EQ(tern_config_duration(cfg, "t"), 0);
    size_t n = 9;
    const char *const *l = tern_config_list(cfg, "l", &n);
    CHECK_EQ(n, 0);
    CHECK(l[0] == NULL);
    tern_config_free(cfg);

    cfg = with_flag("--i=9223372036854775807");
    CHECK_EQ(tern_config_int(cfg, "i"), INT64_MAX);
    tern_config_free(cfg);
    cfg = with_flag("--f=2.5e-3");
    CHECK(tern_config_double(cfg, "f") == 2.5e-3);
    tern_config_free(cfg);
    const char *yes[] = {"--b", "--b=true", "--b=1", "--b=YES", "--b=on"};
    for (int i = 0; i < 5; i++) {
        cfg = with_flag(yes[i]);
        CHECK(tern_config_bool(cfg, "b"));
        tern_config_free(cfg);
    }
    const char *no[] = {"--b=false", "--b=0", "--b=No", "--b=off"};
    for (int i = 0; i < 4; i++) {
        cfg = with_flag(no[i]);
        CHECK(!tern_config_bool(cfg, "b"));
        tern_config_free(cfg);
    }
    CHECK_EQ(dur("250ms"), 250 * TERN_MS);
    CHECK_EQ(dur("5s"), 5 * TERN_SEC);
    CHECK_EQ(dur("1m30s"), 90 * TERN_SEC);
    CHECK_EQ(dur("1.5h"), 5400 * TERN_SEC);
    CHECK_EQ(dur("1h2m3.5s"), 3723 * TERN_SEC + 500 * TERN_MS);
    CHECK_EQ(dur("100us"), 100 * TERN_US);
    CHECK_EQ(dur("7\xc2\xb5s"), 7 * TERN_US);
    CHECK_EQ(dur("10ns"), 10);
    CHECK_EQ(dur("-2s"), -2 * TERN_SEC);
    CHECK_EQ(dur(".5s"), 500 * TERN_MS);
    CHECK_EQ(dur("0"), 0);
    CHECK_EQ(dur("2562047h"), 2562047LL * 3600 * TERN_SEC);

    cfg = with_flag("--l= a, b ,c,, d");
    l = tern_config_list(cfg, "l", &n);
    CHECK_EQ(n, 5);
    CHECK_STR(l[0], "a");
    CHECK_STR(l[1], "b");
    CHECK_STR(l[2], "c");
    CHECK_STR(l[3], "");
    CHECK_STR(l[4], "d");
    CHECK(l[5] == NULL);
    tern_config_free(cfg);
}

static void parse_error(const char *flag, const char *want)
{
    char *argv[] = {"prog", (char *)flag, NULL};
    tern_config *cfg = (tern_config *)1;
    tern_config_error err;
    CHECK_EQ(make(type_keys, 6, NULL, NULL, 2, argv, &cfg, &err), -EINVAL);
    CHECK(cfg == NULL);
    CHECK_EQ(err.count, 1);
    CHECK_STR(err.msg, want);
}

static void config_parse_errors_name_the_key_and_the_source(void)
{
    parse_error("--i=abc", "config: i: \"abc\" is not an integer (from flag --i)");
    parse_error("--i=12x", "config: i: \"12x\" is not an integer (from flag --i)");
    parse_error("--i=", "config: i: \"\" is not an integer (from flag --i)");
    parse_error("--i= 1", "config: i: \" 1\" is not an integer (from flag --i)");
    parse_error("--i=9223372036854775808",
                "config: i: \"9223372036854775808\" is out of the int64 range (from flag --i)");
    parse_error("--f=1.2.3", "config: f: \"1.2.3\" is not a number (from flag --f)");
    parse_error("--f=inf", "config: f: \"inf\" is not a number (from flag --f)");
    parse_error("--b=maybe", "config: b: \"maybe\" is not a boolean (true or false) (from flag --b)");
    const char *bad_durations[] = {"5", "5 s", "s", "1x", "1.s5", "", "-", "1h-2m"};
    for (int i = 0; i < 8; i++) {
        char flag[32];
        snprintf(flag, sizeof flag, "--t=%s", bad_durations[i]);
        char want[160];
        snprintf(want, sizeof want,
                 "config: t: \"%s\" is not a duration (like 250ms or 1m30s) (from flag --t)",
                 bad_durations[i]);
        parse_error(flag, want);
    }
    parse_error("--t=3000000h", "config: t: \"3000000h\" is out of the duration range (from flag --t)");

    /* From the environment, several at once: every problem is reported. */
    setenv("P2_I", "abc", 1);
    setenv("P2_T", "5 s", 1);
    tern_config *cfg;
    tern_config_error err;
    CHECK_EQ(make(type_keys, 6, "P2", NULL, 0, NULL, &cfg, &err), -EINVAL);
    CHECK_EQ(err.count, 2);
    CHECK_STR(err.msg, "config: i: \"abc\" is not an integer (from env P2_I)\n"
                       "config: t: \"5 s\" is not a duration (like 250ms or 1m30s) (from env P2_T)");
    unsetenv("P2_I");
    unsetenv("P2_T");
}

/* ---- limits ------------------------------------------------------------------------- */

static const char *const levels[] = {"debug", "info", "warn", NULL};
static const tern_config_key limit_keys[] = {
    TERN_CONFIG_KEY("http.port", TERN_CONFIG_INT, .def = "8080", .help = "port", .min = "1",
                    .max = "65535"),
    TERN_CONFIG_KEY("timeout", TERN_CONFIG_DURATION, .def = "5s", .help = "timeout", .min = "100ms",
                    .max = "1m"),
    TERN_CONFIG_KEY("ratio", TERN_CONFIG_DOUBLE, .def = "0.5", .help = "ratio", .min = "0",
                    .max = "1"),
    TERN_CONFIG_KEY("level", TERN_CONFIG_STRING, .def = "info", .help = "log level",
                    .one_of = levels),
};

static void config_limits_are_checked_on_the_winning_value(void)
{
    setenv("SVC_HTTP_PORT", "70000", 1);
    char *argv[] = {"prog", "--timeout", "50ms", "--level=loud", NULL};
    tern_config *cfg;
    tern_config_error err;
    CHECK_EQ(make(limit_keys, 4, "SVC", "{\"ratio\": 1.5}", 4, argv, &cfg, &err), -EINVAL);
    CHECK_EQ(err.count, 4);
    CHECK_STR(err.msg,
              fmt("config: http.port: \"70000\" is above the maximum 65535 (from env SVC_HTTP_PORT)\n"
                  "config: timeout: \"50ms\" is below the minimum 100ms (from flag --timeout)\n"
                  "config: ratio: \"1.5\" is above the maximum 1 (from file %s)\n"
                  "config: level: \"loud\" is not one of debug, info, warn (from flag --level)",
                  path));
    /* A bad file value overridden by a good env value is fine. */
    setenv("SVC_HTTP_PORT", "443", 1);
    char *argv2[] = {"prog", "--timeout=1m", NULL};
    CHECK_EQ(make(limit_keys, 4, "SVC", "{\"http\": {\"port\": 0}}", 2, argv2, &cfg, &err), 0);
    CHECK_EQ(tern_config_int(cfg, "http.port"), 443);
    CHECK_EQ(tern_config_duration(cfg, "timeout"), 60 * TERN_SEC);
    CHECK(tern_config_double(cfg, "ratio") == 0.5);
    CHECK_STR(tern_config_str(cfg, "level"), "info");
    tern_config_free(cfg);
    unsetenv("SVC_HTTP_PORT");
    /* A default out of its own limits is reported as such. */
    static const tern_config_key bad_def[] = {TERN_CONFIG_KEY("n", TERN_CONFIG_INT, .def = "0",
                                                              .help = "", .min = "1")};
    CHECK_EQ(make(bad_def, 1, NULL, NULL, 0, NULL, &cfg, &err), -EINVAL);
    CHECK_STR(err.msg, "config: n: \"0\" is below the minimum 1 (from default)");
}

/* ---- the file ------------------------------------------------------------------------- */

static const tern_config_key nested_keys[] = {
    TERN_CONFIG_KEY("http.listen", TERN_CONFIG_STRING, .def = ":80"),
    TERN_CONFIG_KEY("http.port", TERN_CONFIG_INT, .def = "80"),
    TERN_CONFIG_KEY("http.tls.on", TERN_CONFIG_BOOL),
    TERN_CONFIG_KEY("http.timeout", TERN_CONFIG_DURATION, .def = "1s"),
    TERN_CONFIG_KEY("name", TERN_CONFIG_STRING),
    TERN_CONFIG_KEY("hosts", TERN_CONFIG_LIST),
    TERN_CONFIG_KEY("ratio", TERN_CONFIG_DOUBLE),
};

static void config_reads_nested_json(void)
{
    tern_config *cfg;
    tern_config_error err;
    CHECK_EQ(make(nested_keys, 7, NULL,
                  "{\"http\": {\"listen\": \"0.0.0.0:8080\", \"port\": 8080,\n"
                  "          \"tls\": {\"on\": true}, \"timeout\": \"250ms\"},\n"
                  " \"name\": \"svc\", \"hosts\": [\"a\", \"b\"], \"ratio\": 0.25}",
                  0, NULL, &cfg, &err), 0);
    CHECK_STR(tern_config_str(cfg, "http.listen"), "0.0.0.0:8080");
    CHECK_EQ(tern_config_int(cfg, "http.port"), 8080);
    CHECK(tern_config_bool(cfg, "http.tls.on"));
    CHECK_EQ(tern_config_duration(cfg, "http.timeout"), 250 * TERN_MS);
    CHECK_STR(tern_config_str(cfg, "name"), "svc");
    size_t n;
    const char *const *l = tern_config_list(cfg, "hosts", &n);
    CHECK_EQ(n, 2);
    CHECK_STR(l[0], "a");
    CHECK_STR(l[1], "b");
    CHECK(tern_config_double(cfg, "ratio") == 0.25);
    tern_config_free(cfg);
    /* Dotted names in the file work too, strings stand for numbers, null
     * means "not set", and a list may be one comma-separated string. */
    CHECK_EQ(make(nested_keys, 7, NULL,
                  "{\"http.port\": \"81\", \"http\": {\"tls.on\": \"yes\"}, \"name\": null,"
                  " \"hosts\": \"x,y\"}",
                  0, NULL, &cfg, &err), 0);
    CHECK_EQ(tern_config_int(cfg, "http.port"), 81);
    CHECK(tern_config_bool(cfg, "http.tls.on"));
    CHECK_STR(tern_config_source(cfg, "name"), "default");
    l = tern_config_list(cfg, "hosts", &n);
    CHECK_EQ(n, 2);
    CHECK_STR(l[1], "y");
    tern_config_free(cfg);
}

static void config_file_errors_are_reported(void)
{
    tern_config *cfg;
    tern_config_error err;
    CHECK_EQ(make(nested_keys, 7, NULL,
                  "{\"http\": {\"prot\": 1, \"tls\": {\"of\": true}}, \"typo\": 1, \"name\": 42,"
                  " \"hosts\": [\"a\", 1], \"http.port\": [1], \"ratio\": {\"x\": 1}}",
                  0, NULL, &cfg, &err), -EINVAL);
    CHECK_EQ(err.count, 7);
    CHECK_STR(err.msg, fmt("config: http.prot: unknown key (from file %s)\n"
                           "config: http.tls.of: unknown key (from file %s)\n"
                           "config: typo: unknown key (from file %s)\n"
                           "config: name: 42 is not a string (from file %s)\n"
                           "config: hosts: [\"a\",1] is not a list of strings (from file %s)\n"
                           "config: http.port: [1] is not an integer (from file %s)\n"
                           "config: ratio: {\"x\":1} is not a number (from file %s)",
                           path, path, path, path, path, path, path));
    CHECK_EQ(make(nested_keys, 7, NULL, "{\"http\": {\"port\": 1,}}", 0, NULL, &cfg, &err),
             -EINVAL);
    CHECK_EQ(err.count, 1);
    CHECK_STR(err.msg, fmt("config: file %s: line 1 column 21: string or '}' expected near '}'", path));
    CHECK_EQ(make(nested_keys, 7, NULL, "[1]", 0, NULL, &cfg, &err), -EINVAL);
    CHECK_STR(err.msg, fmt("config: file %s: not a JSON object", path));
    CHECK_EQ(make(nested_keys, 7, NULL, "{\"http.port\": \"x\", \"http.port\": 2}", 0, NULL, &cfg,
                  &err), -EINVAL);
    CHECK_STR(err.msg, fmt("config: file %s: line 1 column 30: duplicate object key near '\"http.port\"'", path));
}

/* {"ratio": [[...]]}: the object and n-1 arrays, n levels in all. */
static char *deep_file(size_t n)
{
    char *t = malloc(2 * n + 64);
    CHECK(t != NULL);
    size_t len = (size_t)sprintf(t, "{\"ratio\": ");
    memset(t + len, '[', n - 1);
    memset(t + len + n - 1, ']', n - 1);
    len += 2 * (n - 1);
    strcpy(t + len, "}");
    return t;
}

static int deep_reload_main(void *arg)
{
    tern_config *cfg = arg;
    tern_config_error err;
    /* a reload runs on a coroutine's stack (64 KiB by default), as the
     * watchers' do: 800 levels used to overflow it inside jansson */
    char *t = deep_file(800);
    write_file(t);
    free(t);
    CHECK_EQ(tern_config_reload(cfg, &err), -EINVAL);
    CHECK_STR(err.msg, fmt("config: file %s: nested deeper than %d", path, TERN_CONFIG_MAX_DEPTH));
    CHECK(tern_config_double(cfg, "ratio") == 0.5);     /* the old values stay */
    return 0;
}

static void config_file_nested_too_deep_is_refused(void)
{
    tern_config *cfg;
    tern_config_error err;
    char *t = deep_file(100000);
    CHECK_EQ(make(nested_keys, 7, NULL, t, 0, NULL, &cfg, &err), -EINVAL);
    free(t);
    CHECK_EQ(err.count, 1);
    CHECK_STR(err.msg, fmt("config: file %s: nested deeper than %d", path, TERN_CONFIG_MAX_DEPTH));
    /* exactly at the limit: parsed (and refused for what it holds) */
    t = deep_file(TERN_CONFIG_MAX_DEPTH);
    CHECK_EQ(make(nested_keys, 7, NULL, t, 0, NULL, &cfg, &err), -EINVAL);
    free(t);
    CHECK(strstr(err.msg, "config: ratio: [[[") == err.msg);
    CHECK(strstr(err.msg, "is not a number (from file"));
    /* one more: refused before parsing */
    t = deep_file(TERN_CONFIG_MAX_DEPTH + 1);
    CHECK_EQ(make(nested_keys, 7, NULL, t, 0, NULL, &cfg, &err), -EINVAL);
    free(t);
    CHECK_STR(err.msg, fmt("config: file %s: nested deeper than %d", path, TERN_CONFIG_MAX_DEPTH));
    /* brackets in strings do not count */
    t = malloc(1000);
    CHECK(t != NULL);
    strcpy(t, "{\"name\": \"");
    memset(t + strlen(t), '[', 500);
    strcpy(t + 10 + 500, "\", \"ratio\": 0.5}");
    CHECK_EQ(make(nested_keys, 7, NULL, t, 0, NULL, &cfg, &err), 0);
    free(t);
    CHECK_EQ(strlen(tern_config_str(cfg, "name")), 500);
    run_ok(deep_reload_main, cfg, 1);
    tern_config_free(cfg);
}

/* ---- flags, declarations, help ------------------------------------------------------------ */

static const tern_config_key flag_keys[] = {
    TERN_CONFIG_KEY("name", TERN_CONFIG_STRING, .def = "x", .help = "the name"),
    TERN_CONFIG_KEY("verbose", TERN_CONFIG_BOOL, .def = NULL, .help = "say more"),
    TERN_CONFIG_KEY("n", TERN_CONFIG_INT, .def = "1", .help = "how many", .min = "1"),
};

static void config_flags_forms_and_errors(void)
{
    tern_config *cfg;
    tern_config_error err;
    char *a1[] = {"prog", "--name", "spaced", "--verbose", "--n=3", "--", "--name=ignored", "pos"};
    CHECK_EQ(make(flag_keys, 3, NULL, NULL, 8, a1, &cfg, &err), 0);
    CHECK_STR(tern_config_str(cfg, "name"), "spaced");
    CHECK(tern_config_bool(cfg, "verbose"));
    CHECK_EQ(tern_config_int(cfg, "n"), 3);
    tern_config_free(cfg);
    /* Later flags win; a bool flag never takes the next argument. */
    char *a2[] = {"prog", "--name=a", "--name=b", "--verbose=false", "--verbose"};
    CHECK_EQ(make(flag_keys, 3, NULL, NULL, 5, a2, &cfg, &err), 0);
    CHECK_STR(tern_config_str(cfg, "name"), "b");
    CHECK(tern_config_bool(cfg, "verbose"));
    tern_config_free(cfg);
    char *a3[] = {"prog", "--nme=a", "pos", "-v", "--verbose", "--n"};
    CHECK_EQ(make(flag_keys, 3, NULL, NULL, 6, a3, &cfg, &err), -EINVAL);
    CHECK_STR(err.msg, "config: nme: unknown flag (from flag --nme)\n"
                       "config: pos: unexpected argument (from flags)\n"
                       "config: -v: unexpected argument (from flags)\n"
                       "config: n: no value (from flag --n)");
    char *a4[] = {"prog", "--help"};
    CHECK_EQ(make(flag_keys, 3, "APP", NULL, 2, a4, &cfg, &err), 1);
    char help[1024];
    size_t len = tern_config_help(cfg, help, sizeof help);
    const char *want =
        "Options (a flag beats env, env beats the file, the file beats the default):\n"
        "  --config FILE  read the file layer (JSON) from FILE\n"
        "  --name string  the name (default x, env APP_NAME)\n"
        "  --verbose bool  say more (env APP_VERBOSE)\n"
        "  --n int  how many (default 1, env APP_N, 1..)\n";
    CHECK_STR(help, want);
    CHECK_EQ(len, strlen(want));
    char small[10];
    CHECK_EQ(tern_config_help(cfg, small, sizeof small), strlen(want));
    CHECK_STR(small, "Options (");
    tern_config_free(cfg);
    tern_config_options o = {.keys = limit_keys, .nkeys = 4, .env_prefix = "SVC"};
    CHECK_EQ(tern_config_new(0, NULL, &err, &o, &cfg), 0);
    tern_config_help(cfg, help, sizeof help);
    CHECK_STR(strchr(help, '\n') + 1,
              "  --config FILE  read the file layer (JSON) from FILE\n"
              "  --http.port int  port (default 8080, env SVC_HTTP_PORT, 1..65535)\n"
              "  --timeout duration  timeout (default 5s, env SVC_TIMEOUT, 100ms..1m)\n"
              "  --ratio double  ratio (default 0.5, env SVC_RATIO, 0..1)\n"
              "  --level string  log level (default info, env SVC_LEVEL, one of debug|info|warn)\n");
    tern_config_free(cfg);
}

static void config_bad_declarations_are_reported(void)
{
    static const tern_config_key bad[] = {
        TERN_CONFIG_KEY("dup", TERN_CONFIG_INT),
        TERN_CONFIG_KEY("Bad Name", TERN_CONFIG_INT),
        TERN_CONFIG_KEY("t", (tern_config_type)42),
        TERN_CONFIG_KEY("lim", TERN_CONFIG_INT, .def = "5", .help = "", .min = "x"),
        TERN_CONFIG_KEY("slim", TERN_CONFIG_STRING, .def = "", .help = "", .max = "z"),
        TERN_CONFIG_KEY("dup", TERN_CONFIG_INT),
    };
    tern_config *cfg;
    tern_config_error err;
    CHECK_EQ(make(bad, 6, NULL, NULL, 0, NULL, &cfg, &err), -EINVAL);
    CHECK_STR(err.msg, "config: Bad Name: bad key name (use a-z 0-9 _ - and dots)\n"
                       "config: t: unknown type 42\n"
                       "config: lim: min \"x\" is not an integer (in the declaration)\n"
                       "config: slim: max \"z\" is a limit on a type without order (in the declaration)\n"
                       "config: dup: declared twice");
    static const tern_config_key bad_default[] = {TERN_CONFIG_KEY("n", TERN_CONFIG_INT,
                                                                  .def = "ten")};
    CHECK_EQ(make(bad_default, 1, NULL, NULL, 0, NULL, &cfg, &err), -EINVAL);
    CHECK_STR(err.msg, "config: n: \"ten\" is not an integer (from default)");
}

static void unknown_key_getter(void)
{
    tern_config *cfg;
    tern_config_error err;
    CHECK_EQ(make(flag_keys, 3, NULL, NULL, 0, NULL, &cfg, &err), 0);
    tern_config_int(cfg, "nope");
}

static void wrong_type_getter(void)
{
    tern_config *cfg;
    tern_config_error err;
    CHECK_EQ(make(flag_keys, 3, NULL, NULL, 0, NULL, &cfg, &err), 0);
    tern_config_int(cfg, "name");
}

static void config_getter_misuse_aborts_with_a_message(void)
{
    child_result r = run_child(unknown_key_getter);
    CHECK(!r.exited && r.sig == SIGABRT);
    CHECK(strstr(r.err, "tern_config: no key \"nope\" was declared\n") != NULL);
    r = run_child(wrong_type_getter);
    CHECK(!r.exited && r.sig == SIGABRT);
    CHECK(strstr(r.err, "tern_config: key \"name\" is a string, not an integer\n") != NULL);
}

/* ---- reloading ---------------------------------------------------------------------------- */

static const tern_config_key reload_keys[] = {
    TERN_CONFIG_KEY("port", TERN_CONFIG_INT, .def = "1"),
    TERN_CONFIG_KEY("timeout", TERN_CONFIG_DURATION, .def = "5s"),
    TERN_CONFIG_KEY("name", TERN_CONFIG_STRING, .def = "a"),
    TERN_CONFIG_KEY("flagged", TERN_CONFIG_STRING, .def = "d"),
};

static char changes[512];
static int change_calls;

static void on_change(tern_config *cfg, const tern_config_change *ch, size_t n, void *arg)
{
    (void)cfg;
    CHECK(arg == &changes);
    change_calls++;
    changes[0] = 0;
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(changes);
        snprintf(changes + l, sizeof changes - l, "%s:%s->%s;", ch[i].key, ch[i].old_value,
                 ch[i].new_value);
    }
}

static void config_reload_swaps_and_reports_changes(void)
{
    tern_config *cfg;
    tern_config_error err;
    char *argv[] = {"prog", "--flagged=f"};
    CHECK_EQ(make(reload_keys, 4, NULL, "{\"port\": 80, \"timeout\": \"5s\"}", 2, argv, &cfg, &err),
             0);
    CHECK_EQ(tern_config_on_change(cfg, on_change, &changes), 0);
    const char *old_name = tern_config_str(cfg, "name");
    change_calls = 0;
    /* timeout: same value in other words, not a change; flags stay. */
    write_file("{\"port\": 81, \"timeout\": \"5000ms\", \"name\": \"b\", \"flagged\": \"file\"}");
    CHECK_EQ(tern_config_reload(cfg, &err), 0);
    CHECK_EQ(change_calls, 1);
    CHECK_STR(changes, "port:80->81;name:a->b;");
    CHECK_EQ(tern_config_int(cfg, "port"), 81);
    CHECK_STR(tern_config_str(cfg, "flagged"), "f");
    CHECK_STR(old_name, "a");                   /* old strings stay valid */
    CHECK_EQ(tern_config_generation(cfg), 1);
    /* No change: no call. */
    CHECK_EQ(tern_config_reload(cfg, NULL), 0);
    CHECK_EQ(change_calls, 1);
    CHECK_EQ(tern_config_generation(cfg), 2);
    /* A bad file keeps everything as it was. */
    write_file("{\"port\": \"eighty\"}");
    CHECK_EQ(tern_config_reload(cfg, &err), -EINVAL);
    CHECK_STR(err.msg, fmt("config: port: \"eighty\" is not an integer (from file %s)", path));
    CHECK_EQ(tern_config_int(cfg, "port"), 81);
    CHECK_STR(tern_config_str(cfg, "name"), "b");
    CHECK_EQ(tern_config_generation(cfg), 2);
    CHECK_EQ(change_calls, 1);
    for (int i = 0; i < 16 - 1; i++)
        CHECK_EQ(tern_config_on_change(cfg, on_change, &changes), 0);
    CHECK_EQ(tern_config_on_change(cfg, on_change, &changes), -ENOSPC);
    tern_config_free(cfg);
}

static char reload_error[1024];
static atomic_int errors_seen;

static void on_error(tern_config *cfg, const char *msg, void *arg)
{
    (void)cfg;
    (void)arg;
    snprintf(reload_error, sizeof reload_error, "%s", msg);
    atomic_fetch_add(&errors_seen, 1);
}

static int sighup_main(void *arg)
{
    tern_config *cfg = arg;
    CHECK_EQ(tern_config_watch_sighup(cfg), 0);
    CHECK_EQ(tern_config_watch_sighup(cfg), -EALREADY);
    write_file("{\"port\": 8080, \"name\": \"new\"}");
    raise(SIGHUP);
    int64_t deadline = tern_now() + 5 * TERN_SEC;
    while (tern_config_generation(cfg) < 1 && tern_now() < deadline)
        tern_sleep(TERN_MS);
    CHECK_EQ(tern_config_generation(cfg), 1);
    CHECK_EQ(change_calls, 1);
    CHECK_STR(changes, "port:80->8080;name:a->new;");
    CHECK_EQ(tern_config_int(cfg, "port"), 8080);
    /* A bad file: reported, old values kept. */
    write_file("{\"port\": 8080, \"nmae\": \"typo\"}");
    raise(SIGHUP);
    while (atomic_load(&errors_seen) < 1 && tern_now() < deadline)
        tern_sleep(TERN_MS);
    CHECK_EQ(atomic_load(&errors_seen), 1);
    CHECK_STR(reload_error, fmt("config: nmae: unknown key (from file %s)", path));
    CHECK_STR(tern_config_str(cfg, "name"), "new");
    CHECK_EQ(tern_config_generation(cfg), 1);
    tern_config_watch_stop(cfg);
    tern_config_watch_stop(cfg);                /* a no-op */
    CHECK_EQ(tern_config_watch_sighup(cfg), 0); /* may start again */
    tern_config_watch_stop(cfg);
    return 0;
}

static void config_sighup_reloads_and_keeps_old_values_on_error(void)
{
    tern_config *cfg;
    tern_config_error err;
    CHECK_EQ(make(reload_keys, 4, NULL, "{\"port\": 80}", 0, NULL, &cfg, &err), 0);
    CHECK_EQ(tern_config_on_change(cfg, on_change, &changes), 0);
    tern_config_on_error(cfg, on_error, NULL);
    change_calls = 0;
    run_ok(sighup_main, cfg, 2);
    tern_config_free(cfg);
}

/* ---- watching the file ----------------------------------------------------------------------- */

#define SETTLE_MS 100           /* the watcher's debounce */

/* Poll cond every millisecond for up to ms: a regression fails, never hangs. */
#define WAIT_FOR(cond, ms)                                                               \
    do {                                                                                 \
        int64_t dl_ = tern_now() + (ms) * TERN_MS;                                       \
        while (!(cond) && tern_now() < dl_)                                              \
            tern_sleep(TERN_MS);                                                         \
        if (!(cond)) {                                                                   \
            fprintf(stderr, "%s:%d: not within %d ms: %s\n", __FILE__, __LINE__, (ms),   \
                    #cond);                                                              \
            abort();                                                                     \
        }                                                                                \
    } while (0)

static char wdir[64], wfile[128];

/* Write in place (truncate and write, as `cp` and most programs do). */
static void put(const char *file, const char *text)
{
    FILE *f = fopen(file, "w");
    CHECK(f != NULL);
    fputs(text, f);
    CHECK(fclose(f) == 0);
}

static const char *in_wdir(const char *name)
{
    static char p[4][192];
    static int i;
    i = (i + 1) % 4;
    snprintf(p[i], sizeof p[i], "%s/%s", wdir, name);
    return p[i];
}

static void new_wdir(void)
{
    strcpy(wdir, "/tmp/tern_cfgw_XXXXXX");
    CHECK(mkdtemp(wdir) != NULL);
    snprintf(wfile, sizeof wfile, "%s/config.json", wdir);
}

static int rm_one(const char *p, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)type;
    (void)ftw;
    remove(p);
    return 0;
}

static void rm_tree(const char *dir)
{
    nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
}

/* A config over reload_keys from wfile (made by the caller), with the
 * callbacks counting; run body on a runtime with it, then clean up. */
static void with_watched(tern_fn *body)
{
    tern_config_options o = {.keys = reload_keys, .nkeys = 4, .file = wfile};
    tern_config *cfg;
    tern_config_error err;
    CHECK_EQ(tern_config_new(0, NULL, &err, &o, &cfg), 0);
    CHECK_EQ(tern_config_on_change(cfg, on_change, &changes), 0);
    tern_config_on_error(cfg, on_error, NULL);
    change_calls = 0;
    changes[0] = 0;
    atomic_store(&errors_seen, 0);
    reload_error[0] = 0;
    run_ok(body, cfg, 2);
    tern_config_free(cfg);
    rm_tree(wdir);
}

/* Start the watcher and let the check it makes at start pass, so that
 * what a test changes next is seen through events. */
static void start_watch(tern_config *cfg)
{
    CHECK_EQ(tern_config_watch_file(cfg), 0);
    tern_sleep(2 * SETTLE_MS * TERN_MS);
}

static int rewrite_main(void *arg)
{
    tern_config *cfg = arg;
    start_watch(cfg);
    CHECK_EQ(tern_config_watch_file(cfg), -EALREADY);
    put(wfile, "{\"port\": 81, \"name\": \"a\"}");
    WAIT_FOR(tern_config_generation(cfg) == 1, 3000);
    CHECK_EQ(change_calls, 1);
    CHECK_STR(changes, "port:80->81;");
    CHECK_EQ(tern_config_int(cfg, "port"), 81);
    tern_sleep(3 * SETTLE_MS * TERN_MS);        /* one save, one reload */
    CHECK_EQ(tern_config_generation(cfg), 1);
    CHECK_EQ(change_calls, 1);
    tern_config_watch_stop(cfg);
    return 0;
}

static void config_watch_file_reloads_a_file_rewritten_in_place(void)
{
    tern_config_options none = {.keys = reload_keys, .nkeys = 4};
    tern_config *cfg;
    tern_config_error err;
    CHECK_EQ(tern_config_new(0, NULL, &err, &none, &cfg), 0);
    CHECK_EQ(tern_config_watch_file(cfg), -EINVAL);    /* no file to watch */
    tern_config_free(cfg);
    new_wdir();
    put(wfile, "{\"port\": 80, \"name\": \"a\"}");
    with_watched(rewrite_main);
}

static int rename_main(void *arg)
{
    tern_config *cfg = arg;
    start_watch(cfg);
    put(in_wdir(".config.json.swp"), "{\"port\": 82}");
    CHECK(rename(in_wdir(".config.json.swp"), wfile) == 0);
    WAIT_FOR(tern_config_generation(cfg) == 1, 3000);
    CHECK_EQ(change_calls, 1);
    CHECK_STR(changes, "port:80->82;");
    /* Deleted, then written anew within the settle time: one reload, and
     * no error for the moment the file was missing. */
    CHECK(unlink(wfile) == 0);
    tern_sleep(SETTLE_MS / 4 * TERN_MS);
    put(wfile, "{\"port\": 83}");
    WAIT_FOR(tern_config_generation(cfg) == 2, 3000);
    CHECK_STR(changes, "port:82->83;");
    CHECK_EQ(atomic_load(&errors_seen), 0);
    tern_config_watch_stop(cfg);
    return 0;
}

static void config_watch_file_sees_a_temp_file_renamed_over_it(void)
{
    new_wdir();
    put(wfile, "{\"port\": 80}");
    with_watched(rename_main);
}

/* The kubelet's layout for a ConfigMap volume, and its update: a new
 * timestamped directory, ..data swapped to it by a rename, then the old
 * one removed.  config.json itself never changes. */
static void k8s_version(const char *version, const char *text)
{
    CHECK(mkdir(in_wdir(version), 0755) == 0);
    char file[256];
    snprintf(file, sizeof file, "%s/config.json", in_wdir(version));
    put(file, text);
}

static void k8s_swap(const char *to)
{
    CHECK(symlink(to, in_wdir("..data_tmp")) == 0);
    CHECK(rename(in_wdir("..data_tmp"), in_wdir("..data")) == 0);
}

static void k8s_remove(const char *version)
{
    char file[256];
    snprintf(file, sizeof file, "%s/config.json", in_wdir(version));
    CHECK(unlink(file) == 0);
    CHECK(rmdir(in_wdir(version)) == 0);
}

static int k8s_main(void *arg)
{
    tern_config *cfg = arg;
    start_watch(cfg);
    k8s_version("..2026_01", "{\"port\": 90, \"name\": \"k8s\"}");
    k8s_swap("..2026_01");                      /* seen as ..data replaced, alone */
    WAIT_FOR(tern_config_generation(cfg) == 1, 3000);
    CHECK_EQ(change_calls, 1);
    CHECK_STR(changes, "port:80->90;name:a->k8s;");
    k8s_remove("..2026_00");
    /* Again: the watch follows the new target. */
    k8s_version("..2026_02", "{\"port\": 91, \"name\": \"k8s\"}");
    k8s_swap("..2026_02");
    k8s_remove("..2026_01");                    /* as the kubelet does, at once */
    WAIT_FOR(tern_config_generation(cfg) == 2, 3000);
    CHECK_EQ(change_calls, 2);
    CHECK_STR(changes, "port:90->91;");
    tern_sleep(3 * SETTLE_MS * TERN_MS);
    CHECK_EQ(tern_config_generation(cfg), 2);   /* one update, one reload */
    tern_config_watch_stop(cfg);
    return 0;
}

static void config_watch_file_sees_a_kubernetes_configmap_update(void)
{
    new_wdir();
    k8s_version("..2026_00", "{\"port\": 80}");
    CHECK(symlink("..2026_00", in_wdir("..data")) == 0);
    CHECK(symlink("..data/config.json", wfile) == 0);
    with_watched(k8s_main);
}

static int invalid_main(void *arg)
{
    tern_config *cfg = arg;
    start_watch(cfg);
    put(wfile, "{\"port\": 8");                /* half written */
    WAIT_FOR(atomic_load(&errors_seen) == 1, 3000);
    CHECK_STR(reload_error,
              fmt("config: file %s: line 1 column 10: '}' expected near end of file", wfile));
    CHECK_EQ(tern_config_int(cfg, "port"), 80);
    CHECK_EQ(tern_config_generation(cfg), 0);
    /* The same broken bytes again (a touch) are not reported again. */
    CHECK(utimensat(AT_FDCWD, wfile, NULL, 0) == 0);
    put(wfile, "{\"port\": 81, \"nmae\": \"typo\"}");   /* valid JSON, bad config */
    WAIT_FOR(atomic_load(&errors_seen) == 2, 3000);
    CHECK_STR(reload_error, fmt("config: nmae: unknown key (from file %s)", wfile));
    CHECK_EQ(tern_config_int(cfg, "port"), 80);
    put(wfile, "{\"port\": 81}");
    WAIT_FOR(tern_config_generation(cfg) == 1, 3000);
    CHECK_EQ(tern_config_int(cfg, "port"), 81);
    CHECK_EQ(change_calls, 1);
    CHECK_STR(changes, "port:80->81;");
    CHECK_EQ(atomic_load(&errors_seen), 2);
    tern_config_watch_stop(cfg);
    return 0;
}

static void config_watch_file_keeps_old_values_on_a_bad_write(void)
{
    new_wdir();
    put(wfile, "{\"port\": 80}");
    with_watched(invalid_main);
}

static int touch_main(void *arg)
{
    tern_config *cfg = arg;
    start_watch(cfg);
    CHECK(utimensat(AT_FDCWD, wfile, NULL, 0) == 0);
    put(wfile, "{\"port\": 80}");               /* saved without changes */
    tern_sleep(4 * SETTLE_MS * TERN_MS);
    CHECK_EQ(tern_config_generation(cfg), 0);   /* not even a reload that changes nothing */
    CHECK_EQ(change_calls, 0);
    put(wfile, "{\"port\": 85}");               /* and it still watches */
    WAIT_FOR(tern_config_generation(cfg) == 1, 3000);
    CHECK_STR(changes, "port:80->85;");
    tern_config_watch_stop(cfg);
    return 0;
}

static void config_watch_file_ignores_a_touch(void)
{
    new_wdir();
    put(wfile, "{\"port\": 80}");
    with_watched(touch_main);
}

static int stop_main(void *arg)
{
    tern_config *cfg = arg;
    CHECK_EQ(tern_config_watch_sighup(cfg), 0);
    CHECK_EQ(tern_config_watch_file(cfg), 0);
    int64_t t0 = tern_now();
    tern_config_watch_stop(cfg);                /* both */
    int64_t took = tern_now() - t0;
    fprintf(stderr, "   stop took %.1f ms\n", (double)took / TERN_MS);
    CHECK(took < 500 * TERN_MS);
    put(wfile, "{\"port\": 86}");
    tern_sleep(3 * SETTLE_MS * TERN_MS);
    CHECK_EQ(tern_config_generation(cfg), 0);   /* really gone */
    CHECK_EQ(tern_config_watch_file(cfg), 0);   /* may start again, and checks at once */
    WAIT_FOR(tern_config_generation(cfg) == 1, 3000);
    CHECK_EQ(tern_config_int(cfg, "port"), 86);
    tern_config_watch_stop(cfg);
    return 0;
}

static void config_watch_stop_returns_promptly(void)
{
    new_wdir();
    put(wfile, "{\"port\": 80}");
    with_watched(stop_main);
}

static int rearm_main(void *arg)
{
    tern_config *cfg = arg;
    start_watch(cfg);
    CHECK(unlink(wfile) == 0);
    CHECK(rmdir(wdir) == 0);
    WAIT_FOR(atomic_load(&errors_seen) == 1, 3000);
    CHECK_STR(reload_error, fmt("config: cannot read file %s: No such file or directory", wfile));
    CHECK(mkdir(wdir, 0700) == 0);
    put(wfile, "{\"port\": 87}");
    WAIT_FOR(tern_config_generation(cfg) == 1, 3000);
    CHECK_STR(changes, "port:80->87;");
    put(wfile, "{\"port\": 88}");               /* watched again */
    WAIT_FOR(tern_config_generation(cfg) == 2, 3000);
    CHECK_EQ(atomic_load(&errors_seen), 1);
    tern_config_watch_stop(cfg);
    return 0;
}

static void config_watch_file_rearms_when_the_directory_comes_back(void)
{
    new_wdir();
    put(wfile, "{\"port\": 80}");
    with_watched(rearm_main);
}

static char other[64];

static int target_main(void *arg)
{
    tern_config *cfg = arg;
    char a[128], b[128];
    snprintf(a, sizeof a, "%s/a.json", other);
    snprintf(b, sizeof b, "%s/b.json", other);
    start_watch(cfg);
    put(a, "{\"port\": 81}");                   /* the target, edited in place */
    WAIT_FOR(tern_config_generation(cfg) == 1, 3000);
    CHECK_STR(changes, "port:80->81;");
    put(b, "{\"port\": 82}");                   /* repointed */
    CHECK(symlink(b, in_wdir("config.json.new")) == 0);
    CHECK(rename(in_wdir("config.json.new"), wfile) == 0);
    WAIT_FOR(tern_config_generation(cfg) == 2, 3000);
    CHECK_STR(changes, "port:81->82;");
    put(a, "{\"port\": 1}");                    /* not the file any more */
    put(b, "{\"port\": 83}");
    WAIT_FOR(tern_config_generation(cfg) == 3, 3000);
    CHECK_STR(changes, "port:82->83;");
    tern_config_watch_stop(cfg);
    return 0;
}

static void config_watch_file_follows_a_symlink_to_another_directory(void)
{
    new_wdir();
    strcpy(other, "/tmp/tern_cfgw_XXXXXX");
    CHECK(mkdtemp(other) != NULL);
    char a[128];
    snprintf(a, sizeof a, "%s/a.json", other);
    put(a, "{\"port\": 80}");
    CHECK(symlink(a, wfile) == 0);
    with_watched(target_main);
    rm_tree(other);
}

/* ---- readers racing reloads ----------------------------------------------------------------- */

static const tern_config_key race_keys[] = {
    TERN_CONFIG_KEY("n", TERN_CONFIG_INT, .def = "0"),
    TERN_CONFIG_KEY("s", TERN_CONFIG_STRING, .def = "v0-v0"),
    TERN_CONFIG_KEY("l", TERN_CONFIG_LIST, .def = "0,0,0"),
    TERN_CONFIG_KEY("t", TERN_CONFIG_DURATION, .def = "0s"),
};

enum { READERS = 8, RELOADS = 200 };
static atomic_bool race_done;
static tern_waitgroup race_wg;
static atomic_long reads;

static int race_reader(void *arg)
{
    tern_config *cfg = arg;
    while (!atomic_load(&race_done)) {
        for (int k = 0; k < 50; k++) {
            int64_t n = tern_config_int(cfg, "n");
            CHECK(n >= 0 && n <= RELOADS);
            const char *s = tern_config_str(cfg, "s");
            int a, b;
            CHECK(sscanf(s, "v%d-v%d", &a, &b) == 2 && a == b);
            size_t ln;
            const char *const *l = tern_config_list(cfg, "l", &ln);
            CHECK_EQ(ln, 3);
            CHECK(strcmp(l[0], l[1]) == 0 && strcmp(l[1], l[2]) == 0);
            CHECK_EQ(tern_config_duration(cfg, "t") % TERN_SEC, 0);
            atomic_fetch_add_explicit(&reads, 1, memory_order_relaxed);
        }
        tern_yield();
    }
    tern_waitgroup_done(&race_wg);
    return 0;
}

static int race_main(void *arg)
{
    tern_config *cfg = arg;
    tern_waitgroup_add(&race_wg, READERS);
    for (int i = 0; i < READERS; i++)
        CHECK_EQ(tern_go(race_reader, cfg), 0);
    for (int i = 1; i <= RELOADS; i++) {
        char text[256];
        snprintf(text, sizeof text,
                 "{\"n\": %d, \"s\": \"v%d-v%d\", \"l\": [\"%d\", \"%d\", \"%d\"], \"t\": \"%ds\"}",
                 i, i, i, i, i, i, i);
        write_file(text);
        tern_config_error err;
        CHECK_EQ(tern_config_reload(cfg, &err), 0);
        tern_yield();
    }
    atomic_store(&race_done, true);
    tern_waitgroup_wait(&race_wg, NULL);
    CHECK_EQ(tern_config_int(cfg, "n"), RELOADS);
    CHECK_EQ(tern_config_generation(cfg), RELOADS);
    return 0;
}

static void config_readers_never_see_torn_values_during_reloads(void)
{
    tern_config *cfg;
    tern_config_error err;
    CHECK_EQ(make(race_keys, 4, NULL, "{}", 0, NULL, &cfg, &err), 0);
    run_ok(race_main, cfg, 4);
    fprintf(stderr, "   %ld reads during %d reloads\n", atomic_load(&reads), RELOADS);
    CHECK(atomic_load(&reads) > 0);
    tern_config_free(cfg);
}

/* --config FILE and --config=FILE name the file layer, over options.file,
 * without the program's help: every program used to copy that argv loop. */
static void config_flag_config_names_the_file_layer(void)
{
    tern_config *cfg;
    tern_config_error err;
    new_path();
    write_file("{\"name\": \"from-file\", \"n\": 7}");
    tern_config_options o = {.keys = flag_keys, .nkeys = 3, .file = "/nonexistent/default.json"};
    char *a1[] = {"prog", "--n", "2", "--config", path};
    CHECK_EQ(tern_config_new(5, a1, &err, &o, &cfg), 0);
    CHECK_STR(tern_config_str(cfg, "name"), "from-file");
    CHECK_STR(tern_config_source(cfg, "name"), "file");
    CHECK_EQ(tern_config_int(cfg, "n"), 2);             /* a flag still beats the file */
    CHECK_STR(tern_config_file(cfg), path);
    /* A reload reads the same file again. */
    write_file("{\"name\": \"rewritten\"}");
    CHECK_EQ(tern_config_reload(cfg, &err), 0);
    CHECK_STR(tern_config_str(cfg, "name"), "rewritten");
    tern_config_free(cfg);

    char eq[96];
    snprintf(eq, sizeof eq, "--config=%s", path);
    char *a2[] = {"prog", eq, "--verbose"};
    CHECK_EQ(tern_config_new(3, a2, &err, &o, &cfg), 0);
    CHECK_STR(tern_config_str(cfg, "name"), "rewritten");
    CHECK(tern_config_bool(cfg, "verbose"));
    CHECK_STR(tern_config_file(cfg), path);
    tern_config_free(cfg);

    /* Without the flag, options.file; without either, none. */
    o.file = path;
    CHECK_EQ(tern_config_new(0, NULL, &err, &o, &cfg), 0);
    CHECK_STR(tern_config_file(cfg), path);
    tern_config_free(cfg);
    o.file = NULL;
    CHECK_EQ(tern_config_new(0, NULL, &err, &o, &cfg), 0);
    CHECK(tern_config_file(cfg) == NULL);
    tern_config_free(cfg);

    /* A key's value that reads "--config" is the key's; after "--" it is
     * the program's. */
    char *a3[] = {"prog", "--name", "--config", "--", "--config", "/nonexistent/y.json"};
    CHECK_EQ(tern_config_new(6, a3, &err, &o, &cfg), 0);
    CHECK_STR(tern_config_str(cfg, "name"), "--config");
    CHECK(tern_config_file(cfg) == NULL);
    tern_config_free(cfg);

    /* --config with no file, or an empty one, is an error. */
    char *a4[] = {"prog", "--config"};
    CHECK_EQ(tern_config_new(2, a4, &err, &o, &cfg), -EINVAL);
    CHECK(cfg == NULL);
    CHECK_STR(err.msg, "config: --config: no file given (from flags)");
    char *a5[] = {"prog", "--config="};
    CHECK_EQ(tern_config_new(2, a5, &err, &o, &cfg), -EINVAL);
    CHECK_STR(err.msg, "config: --config: empty file name (from flags)");
    /* The flag's file must exist (file_optional is for options.file's). */
    char *a6[] = {"prog", "--config", "/nonexistent/z.json"};
    CHECK_EQ(tern_config_new(3, a6, &err, &o, &cfg), -EINVAL);
    CHECK_STR(err.msg, "config: cannot read file /nonexistent/z.json: No such file or directory");

    /* "config" cannot be declared: it is the flag's. */
    static const tern_config_key taken[] = {TERN_CONFIG_KEY("config", TERN_CONFIG_STRING)};
    tern_config_options t = {.keys = taken, .nkeys = 1};
    CHECK_EQ(tern_config_new(0, NULL, &err, &t, &cfg), -EINVAL);
    CHECK_STR(err.msg, "config: config: the name is --config FILE's (declare another)");
}

static void config_help_lists_the_config_flag_with_its_default(void)
{
    tern_config *cfg;
    tern_config_error err;
    tern_config_options o = {.keys = flag_keys, .nkeys = 1, .file = "/etc/app/config.json",
                             .file_optional = true};
    char *a[] = {"prog", "--help"};
    CHECK_EQ(tern_config_new(2, a, &err, &o, &cfg), 1);
    char help[512];
    tern_config_help(cfg, help, sizeof help);
    CHECK_STR(help, "Options (a flag beats env, env beats the file, the file beats the default):\n"
                    "  --config FILE  read the file layer (JSON) from FILE (default "
                    "/etc/app/config.json)\n"
                    "  --name string  the name (default x)\n");
    tern_config_free(cfg);
}

/* ---- files that must not be read: FIFOs, huge ones (issue 15) ------------------------------ */

/* Aborts the test (SIGALRM's default) instead of letting a regression hang it. */
#define WITHIN_SECONDS(n) alarm(n)

static void config_a_fifo_or_a_directory_is_refused_without_blocking(void)
{
    /* Before the fix: open(2) waited for a writer forever. */
    new_path();
    unlink(path);
    CHECK(mkfifo(path, 0600) == 0);
    tern_config_options o = {.keys = reload_keys, .nkeys = 4, .file = path};
    tern_config *cfg;
    tern_config_error err;
    WITHIN_SECONDS(10);
    CHECK_EQ(tern_config_new(0, NULL, &err, &o, &cfg), -EINVAL);
    alarm(0);
    CHECK(cfg == NULL);
    CHECK_STR(err.msg, fmt("config: %s: not a regular file (a FIFO)", path));
    /* file_optional excuses a missing file, not a wrong one. */
    o.file_optional = true;
    CHECK_EQ(tern_config_new(0, NULL, &err, &o, &cfg), -EINVAL);
    unlink(path);
    path[0] = 0;
    o.file = "/tmp";
    CHECK_EQ(tern_config_new(0, NULL, &err, &o, &cfg), -EINVAL);
    CHECK_STR(err.msg, "config: /tmp: not a regular file (a directory)");
}

/* {"name": "xxx..."} of exactly size bytes. */
static void write_sized(size_t size)
{
    const char *head = "{\"name\": \"", *tail = "\"}";
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    fputs(head, f);
    for (size_t i = strlen(head) + strlen(tail); i < size; i++)
        fputc('x', f);
    fputs(tail, f);
    CHECK(fclose(f) == 0);
}

static void config_a_file_over_the_size_limit_is_refused(void)
{
    /* Before the fix: a 200 MB file was read whole. */
    tern_config *cfg;
    tern_config_error err;
    new_path();
    write_sized(TERN_CONFIG_MAX_FILE_BYTES + 1);
    tern_config_options o = {.keys = reload_keys, .nkeys = 4, .file = path};
    CHECK_EQ(tern_config_new(0, NULL, &err, &o, &cfg), -EINVAL);
    CHECK_STR(err.msg, fmt("config: %s: 1048577 bytes, over the limit of 1048576 (max_file_bytes)",
                           path));
    write_sized(TERN_CONFIG_MAX_FILE_BYTES);                /* the limit itself is fine */
    CHECK_EQ(tern_config_new(0, NULL, &err, &o, &cfg), 0);
    CHECK_EQ(strlen(tern_config_str(cfg, "name")), TERN_CONFIG_MAX_FILE_BYTES - 12);
    /* An option sets the limit; a reload is held to it too. */
    write_sized(100);
    o.max_file_bytes = 100;
    tern_config_free(cfg);
    CHECK_EQ(tern_config_new(0, NULL, &err, &o, &cfg), 0);
    write_sized(101);
    CHECK_EQ(tern_config_reload(cfg, &err), -EINVAL);
    CHECK_STR(err.msg, fmt("config: %s: 101 bytes, over the limit of 100 (max_file_bytes)", path));
    CHECK_EQ(strlen(tern_config_str(cfg, "name")), 100 - 12);
    tern_config_free(cfg);
}

static atomic_long ticks;
static atomic_bool fifo_done, worker_stuck;

/* Some other work of the service: it must keep running while the file
 * watcher meets the FIFO. */
static int ticker(void *arg)
{
    (void)arg;
    while (!atomic_load(&fifo_done)) {
        atomic_fetch_add(&ticks, 1);
        tern_sleep(TERN_MS);
    }
    return 0;
}

/* The test's own guard, a plain thread: if nothing was reported after
 * 3 s, a worker is stuck in open(2) on the FIFO; open its other end to
 * release it (so the test fails instead of hanging) and say so. */
static void *fifo_guard(void *arg)
{
    (void)arg;
    for (int i = 0; i < 3000 && !atomic_load(&fifo_done) && !atomic_load(&errors_seen); i++)
        usleep(1000);
    while (!atomic_load(&fifo_done) && !atomic_load(&errors_seen)) {
        int fd = open(wfile, O_WRONLY | O_NONBLOCK);
        if (fd >= 0) {
            atomic_store(&worker_stuck, true);
            close(fd);
        }
        usleep(10000);
    }
    return NULL;
}

static int fifo_main(void *arg)
{
    tern_config *cfg = arg;
    start_watch(cfg);
    atomic_store(&fifo_done, false);
    atomic_store(&worker_stuck, false);
    atomic_store(&ticks, 0);
    CHECK_EQ(tern_go(ticker, NULL), 0);
    pthread_t guard;
    CHECK(pthread_create(&guard, NULL, fifo_guard, NULL) == 0);
    tern_sleep(20 * TERN_MS);
    CHECK(unlink(wfile) == 0);
    CHECK(mkfifo(wfile, 0600) == 0);
    long before = atomic_load(&ticks);
    WAIT_FOR(atomic_load(&errors_seen) >= 1, 5000);
    CHECK(!atomic_load(&worker_stuck));
    CHECK_STR(reload_error, fmt("config: %s: not a regular file (a FIFO)", wfile));
    /* The settle time (100 ms) passed between: the ticker ran through it
     * (a loose bound: a loaded machine sleeps longer than asked). */
    CHECK(atomic_load(&ticks) - before >= 5);
    CHECK_EQ(tern_config_int(cfg, "port"), 80);
    CHECK_EQ(tern_config_generation(cfg), 0);
    /* A reload by hand (SIGHUP's path) on a coroutine: the same error. */
    tern_config_error err;
    CHECK_EQ(tern_config_reload(cfg, &err), -EINVAL);
    CHECK_STR(err.msg, fmt("config: %s: not a regular file (a FIFO)", wfile));
    /* A regular file back: loaded. */
    CHECK(unlink(wfile) == 0);
    put(wfile, "{\"port\": 81}");
    WAIT_FOR(tern_config_generation(cfg) == 1, 3000);
    CHECK_EQ(tern_config_int(cfg, "port"), 81);
    atomic_store(&fifo_done, true);
    pthread_join(guard, NULL);
    tern_config_watch_stop(cfg);
    return 0;
}

static void config_watch_file_refuses_a_fifo_swapped_in_and_keeps_running(void)
{
    /* Before the fix: the watcher's open(2) blocked its worker thread, and
     * with it every coroutine of that P (one P here: all of them). */
    new_wdir();
    put(wfile, "{\"port\": 80}");
    tern_config_options o = {.keys = reload_keys, .nkeys = 4, .file = wfile};
    tern_config *cfg;
    tern_config_error err;
    CHECK_EQ(tern_config_new(0, NULL, &err, &o, &cfg), 0);
    tern_config_on_error(cfg, on_error, NULL);
    atomic_store(&errors_seen, 0);
    reload_error[0] = 0;
    run_ok(fifo_main, cfg, 1);
    tern_config_free(cfg);
    rm_tree(wdir);
}

static void null_config_getter(void)
{
    tern_config_int(NULL, "n");
}

static void null_config_reload(void)
{
    tern_config_reload(NULL, NULL);
}

static void config_null_config_aborts_naming_the_function(void)
{
    child_result r = run_child(null_config_getter);
    CHECK(!r.exited && r.sig == SIGABRT);
    CHECK(strstr(r.err, "tern: tern_config_int: cfg is NULL") != NULL);
    r = run_child(null_config_reload);
    CHECK(!r.exited && r.sig == SIGABRT);
    CHECK(strstr(r.err, "tern: tern_config_reload: cfg is NULL") != NULL);
}

TESTS(T(config_each_layer_overrides_the_one_below), T(config_parses_every_type),
      T(config_parse_errors_name_the_key_and_the_source),
      T(config_limits_are_checked_on_the_winning_value), T(config_reads_nested_json),
      T(config_file_errors_are_reported), T(config_file_nested_too_deep_is_refused),
      T(config_flags_forms_and_errors),
      T(config_bad_declarations_are_reported), T(config_getter_misuse_aborts_with_a_message),
      T(config_reload_swaps_and_reports_changes),
      T(config_sighup_reloads_and_keeps_old_values_on_error),
      T(config_watch_file_reloads_a_file_rewritten_in_place),
      T(config_watch_file_sees_a_temp_file_renamed_over_it),
      T(config_watch_file_sees_a_kubernetes_configmap_update),
      T(config_watch_file_keeps_old_values_on_a_bad_write), T(config_watch_file_ignores_a_touch),
      T(config_watch_stop_returns_promptly),
      T(config_watch_file_rearms_when_the_directory_comes_back),
      T(config_watch_file_follows_a_symlink_to_another_directory),
      T(config_readers_never_see_torn_values_during_reloads),
      T(config_flag_config_names_the_file_layer),
      T(config_help_lists_the_config_flag_with_its_default),
      T(config_null_config_aborts_naming_the_function),
      T(config_a_fifo_or_a_directory_is_refused_without_blocking),
      T(config_a_file_over_the_size_limit_is_refused),
      T(config_watch_file_refuses_a_fifo_swapped_in_and_keeps_running))
