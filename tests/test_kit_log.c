/* test_kit_log.c - structured JSON log lines: exact output, escaping, levels,
 * trace ids, truncation, the drop policy and its report, flush, fork. */
#include "check.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>
#include <stdatomic.h>
#include <sys/wait.h>

#include <jansson.h>
#include <tern/log.h>

static int pfd[2];
static char got[4 << 20];
static size_t got_len;

/* A logger writing into a pipe that the test reads. */
static void start(size_t ring, tern_log_level level)
{
    CHECK(pipe(pfd) == 0);
    CHECK(fcntl(pfd[0], F_SETFL, O_NONBLOCK) == 0);
    tern_log_options o = {.fd = pfd[1], .ring_bytes = ring, .level = level};
    CHECK_EQ(tern_log_init(&o), 0);
    got_len = 0;
    got[0] = 0;
}

static void stop(void)
{
    tern_log_shutdown();
    close(pfd[0]);
    close(pfd[1]);
}

/* tern_log_flush bounded by ns from a thread with no runtime, where no
 * timer can end a context: an ended one makes each flush check once, and
 * this polls until ns have passed. */
static int flush_within(int64_t ns)
{
    tern_ctx *ended;
    CHECK_EQ(tern_ctx_with_cancel(NULL, &ended), 0);
    tern_ctx_cancel(ended);
    int64_t deadline = tern_now() + ns;
    int r;
    while ((r = tern_log_flush(ended)) == -ECANCELED && tern_now() < deadline)
        usleep(100);
    tern_ctx_free(ended);
    return r == -ECANCELED ? -ETIMEDOUT : r;
}

/* Everything logged so far: read while flushing, as the pipe may fill. */
static const char *collect(void)
{
    int64_t deadline = tern_now() + 5 * TERN_SEC;
    int r;
    do {
        r = flush_within(10 * TERN_MS);
        ssize_t n;
        while ((n = read(pfd[0], got + got_len, sizeof got - 1 - got_len)) > 0)
            got_len += (size_t)n;
    } while (r == -ETIMEDOUT && tern_now() < deadline);
    CHECK_EQ(r, 0);
    got[got_len] = 0;
    return got;
}

/* Check line i's time field and return what follows it (after the comma),
 * up to and including the newline, in a static buffer. */
static const char *after_time(const char *text, int i)
{
    static char rest[4096];
    const char *p = text;
    for (; i > 0; i--) {
        p = strchr(p, '\n');
        CHECK(p != NULL);
        p++;
    }
    CHECK(strncmp(p, "{\"time\":\"", 9) == 0);
    const char *t = p + 9;
    const char *pat = "dddd-dd-ddTdd:dd:dd.dddZ";
    for (size_t k = 0; pat[k]; k++) {
        if (pat[k] == 'd')
            CHECK(isdigit((unsigned char)t[k]));
        else
            CHECK(t[k] == pat[k]);
    }
    CHECK(strncmp(t + 24, "\",", 2) == 0);
    const char *end = strchr(t, '\n');
    CHECK(end != NULL);
    size_t n = (size_t)(end + 1 - (t + 26));
    CHECK(n < sizeof rest);
    memcpy(rest, t + 26, n);
    rest[n] = 0;
    return rest;
}

#define CHECK_STR(a, b)                                                                  \
    do {                                                                                 \
        const char *a_ = (a), *b_ = (b);                                                 \
        if (strcmp(a_, b_) != 0) {                                                       \
            fprintf(stderr, "%s:%d: got      %s\n%*s expected %s\n", __FILE__, __LINE__, \
                    a_, (int)strlen(__FILE__) + 6, "", b_);                              \
            abort();                                                                     \
        }                                                                                \
    } while (0)

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

static void log_exact_line_for_typed_fields(void)
{
    start(0, TERN_LOG_DEBUG);
    tern_log_info("request done", TERN_LOG_STR("path", "/users/42"), TERN_LOG_INT("status", 200),
                  TERN_LOG_INT("neg", INT64_MIN), TERN_LOG_DOUBLE("ms", 1.5),
                  TERN_LOG_DOUBLE("third", 1.0 / 3), TERN_LOG_DOUBLE("big", 1e300),
                  TERN_LOG_DOUBLE("whole", -42.0), TERN_LOG_DOUBLE("nan", 0.0 / 0.0),
                  TERN_LOG_BOOL("cached", true), TERN_LOG_BOOL("hit", false),
                  TERN_LOG_STR("none", NULL));
    tern_log_error("no fields");
    tern_log_field f[2] = {TERN_LOG_INT("a", 1), TERN_LOG_STR("b", "x")};
    tern_log_fields(TERN_LOG_DEBUG, "array", f, 2);
    const char *out = collect();
    CHECK_EQ(count_lines(out), 3);
    CHECK_STR(after_time(out, 0),
              "\"level\":\"info\",\"msg\":\"request done\",\"path\":\"/users/42\",\"status\":200,"
              "\"neg\":-9223372036854775808,\"ms\":1.5,\"third\":0.33333333333333331,"
              "\"big\":1e+300,\"whole\":-42,\"nan\":null,\"cached\":true,\"hit\":false,"
              "\"none\":null}\n");
    CHECK_STR(after_time(out, 1), "\"level\":\"error\",\"msg\":\"no fields\"}\n");
    CHECK_STR(after_time(out, 2), "\"level\":\"debug\",\"msg\":\"array\",\"a\":1,\"b\":\"x\"}\n");
    /* Every line is JSON that reads back. */
    json_error_t je;
    json_t *j = json_loadb(out, strchr(out, '\n') - out, 0, &je);
    CHECK(j != NULL);
    CHECK(json_real_value(json_object_get(j, "third")) == 1.0 / 3);
    CHECK_EQ(json_integer_value(json_object_get(j, "neg")), INT64_MIN);
    json_decref(j);
    stop();
}

/* Keys and messages: a literal's length is known to the macros (key_len,
 * and tern_log passes the message's), and such a string goes in with one
 * 16-byte copy; any other is measured.  Both ways must write the same
 * JSON, escape what needs it, and never take bytes past the string's end. */
static void log_keys_known_and_measured_write_the_same(void)
{
    /* the macros fold a literal's length, and leave 0 for a variable */
    const char *var = getenv("TERN_TEST_NO_SUCH_VARIABLE") ? "x" : "status";
    tern_log_field lit = TERN_LOG_INT("status", 1), dyn = TERN_LOG_INT(var, 1);
    CHECK_EQ(lit.key_len, 6);
    CHECK_EQ(dyn.key_len, 0);
    CHECK_EQ(TERN_LOG_STR("", "v").key_len, 0);

    start(0, TERN_LOG_DEBUG);
    /* 1, 15, 16 (the longest copied whole) and 17 bytes; a quote and a
     * control character (known length, but escaped the long way); a key
     * followed in memory by bytes that would need escaping */
    static const char k16[] = "abcdefghijklmnop", k17[] = "abcdefghijklmnopq";
    static const char tail[] = "key\0\"\\\n\x01 more bytes after the NUL";
    tern_log_info("keys", TERN_LOG_INT("a", 1), TERN_LOG_INT("abcdefghijklmno", 2),
                  TERN_LOG_INT(k16, 3), TERN_LOG_INT(k17, 4), TERN_LOG_INT("q\"t", 5),
                  TERN_LOG_INT("c\tl", 6), TERN_LOG_INT(tail, 7));
    /* the same fields with key_len 0: measured */
    tern_log_field f[7] = {TERN_LOG_INT("a", 1), TERN_LOG_INT("abcdefghijklmno", 2),
                           TERN_LOG_INT(k16, 3), TERN_LOG_INT(k17, 4), TERN_LOG_INT("q\"t", 5),
                           TERN_LOG_INT("c\tl", 6), TERN_LOG_INT(tail, 7)};
    for (int i = 0; i < 7; i++)
        f[i].key_len = 0;
    tern_log_fields(TERN_LOG_INFO, "keys", f, 7);
    /* messages: the macros pass a literal's length too */
    tern_log_info("abcdefghijklmnop");
    tern_log_info("abcdefghijklmnopq");
    tern_log_info("q\"t\x01");
    tern_log_fields(TERN_LOG_INFO, "abcdefghijklmnop", NULL, 0);
    tern_log_fields(TERN_LOG_INFO, "abcdefghijklmnopq", NULL, 0);
    tern_log_fields(TERN_LOG_INFO, "q\"t\x01", NULL, 0);
    /* set by hand, for a key on the heap */
    char *heap = strdup("heap");
    tern_log_field h = {.key = heap, .kind = TERN_LOG_KIND_INT, .key_len = 4, .v.i = 8};
    tern_log_fields(TERN_LOG_INFO, "keys", &h, 1);
    free(heap);
    const char *out = collect();
    CHECK_EQ(count_lines(out), 9);
    static const char *const msgs[] = {
        "\"level\":\"info\",\"msg\":\"abcdefghijklmnop\"}\n",
        "\"level\":\"info\",\"msg\":\"abcdefghijklmnopq\"}\n",
        "\"level\":\"info\",\"msg\":\"q\\\"t\\u0001\"}\n"};
    for (int i = 0; i < 3; i++) {
        CHECK_STR(after_time(out, 2 + i), msgs[i]);
        CHECK_STR(after_time(out, 5 + i), msgs[i]);
    }
    const char *want = "\"level\":\"info\",\"msg\":\"keys\",\"a\":1,\"abcdefghijklmno\":2,"
                       "\"abcdefghijklmnop\":3,\"abcdefghijklmnopq\":4,\"q\\\"t\":5,"
                       "\"c\\tl\":6,\"key\":7}\n";
    CHECK_STR(after_time(out, 0), want);
    CHECK_STR(after_time(out, 1), want);
    CHECK_STR(after_time(out, 8), "\"level\":\"info\",\"msg\":\"keys\",\"heap\":8}\n");
    stop();
}

static void log_double_reads_back_exactly(void)
{
    start(0, TERN_LOG_DEBUG);
    tern_log_info("d", TERN_LOG_DOUBLE("x", 0.1), TERN_LOG_DOUBLE("y", 0.1 + 0.2),
                  TERN_LOG_DOUBLE("negz", -0.0), TERN_LOG_DOUBLE("e9", 1e9),
                  TERN_LOG_DOUBLE("mixed", 123456.789), TERN_LOG_DOUBLE("tiny", 1e-7),
                  TERN_LOG_DOUBLE("neg", -2.5), TERN_LOG_DOUBLE("inf", 1.0 / 0.0));
    /* the in-place decimals: a fraction below 1 (leading 0), negative,
     * six places, zeros inside the fraction, the largest in range */
    tern_log_info("d", TERN_LOG_DOUBLE("a", 0.25), TERN_LOG_DOUBLE("b", -0.25),
                  TERN_LOG_DOUBLE("c", 0.000001), TERN_LOG_DOUBLE("d", 10.05),
                  TERN_LOG_DOUBLE("e", 999999999.5), TERN_LOG_DOUBLE("f", -1000000.000001),
                  TERN_LOG_DOUBLE("g", 0.0));
    const char *out = collect();
    CHECK_STR(after_time(out, 0),
              "\"level\":\"info\",\"msg\":\"d\",\"x\":0.1,\"y\":0.30000000000000004,"
              "\"negz\":-0,\"e9\":1000000000,\"mixed\":123456.789,\"tiny\":1e-07,"
              "\"neg\":-2.5,\"inf\":null}\n");
    CHECK_STR(after_time(out, 1),
              "\"level\":\"info\",\"msg\":\"d\",\"a\":0.25,\"b\":-0.25,\"c\":0.000001,"
              "\"d\":10.05,\"e\":999999999.5,\"f\":-1000000.000001,\"g\":0}\n");
    /* Each reads back as the same double. */
    json_error_t je;
    json_t *j = json_loads(out, JSON_DISABLE_EOF_CHECK, &je);
    CHECK(j != NULL);
    CHECK(json_number_value(json_object_get(j, "y")) == 0.1 + 0.2);
    CHECK(json_number_value(json_object_get(j, "mixed")) == 123456.789);
    CHECK(json_number_value(json_object_get(j, "tiny")) == 1e-7);
    json_decref(j);
    stop();
}

static void log_escapes_json_and_replaces_bad_utf8(void)
{
    start(0, TERN_LOG_DEBUG);
    tern_log_info("q\"b\\n\nt\tc\x01\x1f\r\b\f",
                  TERN_LOG_STR("utf8", "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"),
                  TERN_LOG_STR("bad", "a\xff" "b"),
                  TERN_LOG_STR("cut3", "\xe2\x82" "A"),
                  TERN_LOG_STR("overlong", "\xc0\xaf"),
                  TERN_LOG_STR("surrogate", "\xed\xa0\x80"),
                  TERN_LOG_STR("too_big", "\xf4\x90\x80\x80"),
                  TERN_LOG_STR("end", "x\xf0\x9f"),
                  TERN_LOG_STR("k\"ey", "del\x7f"));
    const char *out = collect();
    CHECK_STR(after_time(out, 0),
              "\"level\":\"info\",\"msg\":\"q\\\"b\\\\n\\nt\\tc\\u0001\\u001f\\r\\b\\f\","
              "\"utf8\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\","
              "\"bad\":\"a\xef\xbf\xbd" "b\","
              "\"cut3\":\"\xef\xbf\xbd" "A\","
              "\"overlong\":\"\xef\xbf\xbd\xef\xbf\xbd\","
              "\"surrogate\":\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\","
              "\"too_big\":\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\","
              "\"end\":\"x\xef\xbf\xbd\","
              "\"k\\\"ey\":\"del\x7f\"}\n");
    json_error_t je;
    json_t *j = json_loads(out, JSON_DISABLE_EOF_CHECK, &je);
    CHECK(j != NULL);
    CHECK_STR(json_string_value(json_object_get(j, "msg")), "q\"b\\n\nt\tc\x01\x1f\r\b\f");
    json_decref(j);
    stop();
}

/* The word-at-a-time scan must find a special byte at any position and
 * any alignment: every string of 0..24 plain bytes with one special byte
 * put anywhere, starting at each of 8 offsets in a word, reads back as
 * itself. */
static void make_case(char *s, size_t len, size_t at, const char *special)
{
    memset(s, 'a', len);
    size_t sl = strlen(special);
    memmove(s + at + sl, s + at, len - at);
    memcpy(s + at, special, sl);
    s[len + sl] = 0;
}

static void log_escaping_finds_special_bytes_at_every_position(void)
{
    static const char *special[] = {"\"", "\\", "\n", "\x01", "\x1f", "\xc3\xa9", "\x7f", "\xff"};
    static const char *decoded[] = {"\"", "\\", "\n", "\x01", "\x1f", "\xc3\xa9", "\x7f", "\xef\xbf\xbd"};
    start(4 << 20, TERN_LOG_INFO);
    _Alignas(8) char buf[48];
    int lines = 0;
    for (size_t shift = 0; shift < 8; shift++)
        for (size_t len = 0; len <= 24; len++)
            for (size_t at = 0; at <= len; at++)
                for (size_t k = 0; k < sizeof special / sizeof special[0]; k++) {
                    make_case(buf + shift, len, at, special[k]);
                    tern_log_info(buf + shift);
                    lines++;
                }
    const char *out = collect();
    CHECK_EQ(count_lines(out), lines);
    const char *p = out;
    json_error_t je;
    char want[48];
    for (size_t shift = 0; shift < 8; shift++)
        for (size_t len = 0; len <= 24; len++)
            for (size_t at = 0; at <= len; at++)
                for (size_t k = 0; k < sizeof special / sizeof special[0]; k++) {
                    make_case(want, len, at, decoded[k]);
                    json_t *j = json_loads(p, JSON_DISABLE_EOF_CHECK, &je);
                    CHECK(j != NULL);
                    CHECK_STR(json_string_value(json_object_get(j, "msg")), want);
                    json_decref(j);
                    p = strchr(p, '\n') + 1;
                }
    stop();
}

/* A string that ends at the end of a page, before one that cannot be
 * read: the scan reads whole words, and must never cross into it. */
static void log_scan_stops_at_the_end_of_a_page(void)
{
    long page = sysconf(_SC_PAGESIZE);
    char *m = mmap(NULL, 2 * (size_t)page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(m != MAP_FAILED);
    CHECK_EQ(mprotect(m + page, (size_t)page, PROT_NONE), 0);
    start(1 << 20, TERN_LOG_INFO);
    for (size_t len = 0; len <= 17; len++) {
        char *s = m + page - 1 - len;
        memset(s, 'p', len);
        s[len] = 0;
        tern_log_info("page", TERN_LOG_STR(s, s));
    }
    const char *out = collect();
    CHECK_EQ(count_lines(out), 18);
    const char *p = out;
    json_error_t je;
    for (size_t len = 0; len <= 17; len++) {
        json_t *j = json_loads(p, JSON_DISABLE_EOF_CHECK, &je);
        CHECK(j != NULL);
        char want[20];
        memset(want, 'p', len);
        want[len] = 0;
        CHECK_STR(json_string_value(json_object_get(j, want)), want);
        json_decref(j);
        p = strchr(p, '\n') + 1;
    }
    stop();
    munmap(m, 2 * (size_t)page);
}

/* A filtered-out level costs the check only: the macros evaluate no
 * other argument (the fields' values, the context). */
static int evaluated;

static const char *counted(void)
{
    evaluated++;
    return "v";
}

static tern_ctx *counted_ctx(void)
{
    evaluated++;
    return NULL;
}

static void log_macros_skip_arguments_below_the_level(void)
{
    start(0, TERN_LOG_INFO);
    evaluated = 0;
    tern_log_debug("d", TERN_LOG_STR("k", counted()));
    tern_log_ctx(counted_ctx(), TERN_LOG_DEBUG, "d", TERN_LOG_STR("k", counted()));
    CHECK_EQ(evaluated, 0);
    tern_log_info("i", TERN_LOG_STR("k", counted()));
    tern_log_ctx(counted_ctx(), TERN_LOG_WARN, "w", TERN_LOG_STR("k", counted()));
    CHECK_EQ(evaluated, 3);
    const char *out = collect();
    CHECK_EQ(count_lines(out), 2);
    CHECK_STR(after_time(out, 0), "\"level\":\"info\",\"msg\":\"i\",\"k\":\"v\"}\n");
    stop();
}

static void log_levels_filter_and_change_at_run_time(void)
{
    start(0, TERN_LOG_WARN);
    CHECK_EQ(tern_log_get_level(), TERN_LOG_WARN);
    CHECK(!tern_log_enabled(TERN_LOG_INFO));
    CHECK(tern_log_enabled(TERN_LOG_ERROR));
    tern_log_debug("d");
    tern_log_info("i");
    tern_log_warn("w");
    tern_log_error("e");
    tern_log_set_level(TERN_LOG_DEBUG);
    tern_log_debug("d2");
    tern_log_set_level(TERN_LOG_OFF);
    tern_log_error("never");
    CHECK(!tern_log_enabled(TERN_LOG_OFF));
    tern_log_set_level((tern_log_level)99);        /* ignored */
    CHECK_EQ(tern_log_get_level(), TERN_LOG_OFF);
    const char *out = collect();
    CHECK_EQ(count_lines(out), 3);
    CHECK_STR(after_time(out, 0), "\"level\":\"warn\",\"msg\":\"w\"}\n");
    CHECK_STR(after_time(out, 1), "\"level\":\"error\",\"msg\":\"e\"}\n");
    CHECK_STR(after_time(out, 2), "\"level\":\"debug\",\"msg\":\"d2\"}\n");
    struct tern_log_stats st;
    CHECK_EQ(tern_log_stats(&st), 0);
    CHECK_EQ(st.lines, 3);
    CHECK_EQ(st.dropped, 0);
    stop();

    CHECK_EQ(tern_log_level_parse("DEBUG"), TERN_LOG_DEBUG);
    CHECK_EQ(tern_log_level_parse("Warning"), TERN_LOG_WARN);
    CHECK_EQ(tern_log_level_parse("off"), TERN_LOG_OFF);
    CHECK_EQ(tern_log_level_parse("loud"), -EINVAL);
    CHECK_EQ(tern_log_level_parse(NULL), -EINVAL);
    CHECK_STR(tern_log_level_name(TERN_LOG_ERROR), "error");
    CHECK_STR(tern_log_level_name((tern_log_level)0), "?");
}

static void log_level_from_env(void)
{
    setenv("TERN_LOG_LEVEL", "error", 1);
    start(0, 0);
    CHECK_EQ(tern_log_get_level(), TERN_LOG_ERROR);
    stop();
    setenv("TERN_LOG_LEVEL", "chatty", 1);
    tern_log_options o = {.fd = 2};
    CHECK_EQ(tern_log_init(&o), -EINVAL);
    unsetenv("TERN_LOG_LEVEL");
    CHECK_EQ(tern_log_init(&o), 0);
    CHECK_EQ(tern_log_get_level(), TERN_LOG_INFO);
    CHECK_EQ(tern_log_init(&o), -EALREADY);
    tern_log_shutdown();
    o.ring_bytes = 100;
    CHECK_EQ(tern_log_init(&o), -EINVAL);
    CHECK_EQ(tern_log_flush(NULL), -ESRCH);
}

static void log_appends_to_a_file(void)
{
    char path[] = "/tmp/tern_log_test_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    CHECK(write(fd, "old\n", 4) == 4);
    close(fd);
    tern_log_options o = {.path = path, .level = TERN_LOG_INFO};
    CHECK_EQ(tern_log_init(&o), 0);
    tern_log_info("to file", TERN_LOG_INT("n", 7));
    tern_log_shutdown();        /* flushes */
    FILE *f = fopen(path, "r");
    CHECK(f != NULL);
    char buf[512];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    unlink(path);
    CHECK(strncmp(buf, "old\n", 4) == 0);
    CHECK_STR(after_time(buf, 1), "\"level\":\"info\",\"msg\":\"to file\",\"n\":7}\n");
    o.path = "/nonexistent-dir/x.log";
    CHECK_EQ(tern_log_init(&o), -ENOENT);
}

/* A preformatted line goes through the same ring, as it is. */
static void log_write_line_passes_lines_through(void)
{
    CHECK_EQ(tern_log_write_line("{\"x\":1}\n", 8), -ESRCH);     /* no logger yet */
    start(0, TERN_LOG_INFO);
    CHECK_EQ(tern_log_write_line("{\"a\":\"b\"}\n", 10), 0);
    CHECK_EQ(tern_log_write_line("no newline", 10), -EINVAL);
    CHECK_EQ(tern_log_write_line("\n", 0), -EINVAL);
    static char big[TERN_LOG_LINE_MAX + 2];
    memset(big, 'x', sizeof big);
    big[sizeof big - 1] = '\n';
    CHECK_EQ(tern_log_write_line(big, sizeof big), -EINVAL);
    tern_log_info("after");
    const char *out = collect();
    CHECK(strncmp(out, "{\"a\":\"b\"}\n", 10) == 0);
    CHECK_STR(after_time(out, 1), "\"level\":\"info\",\"msg\":\"after\"}\n");
    stop();
}

static bool hook_ids(tern_log_ids *ids)
{
    ids->trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    ids->span_id = "00f067aa0ba902b7";
    return true;
}

static void log_adds_trace_ids_from_context_and_hook(void)
{
    start(0, TERN_LOG_INFO);
    tern_log_ids ids = {.trace_id = "t1", .span_id = "s1"};
    tern_ctx *ctx;
    CHECK_EQ(tern_log_ctx_with_ids(NULL, &ids, &ctx), 0);
    CHECK(ctx != NULL);
    tern_ctx *child;
    CHECK_EQ(tern_ctx_with_cancel(ctx, &child), 0);
    tern_log_ctx(child, TERN_LOG_INFO, "from ctx", TERN_LOG_INT("n", 1));
    tern_log_ctx(NULL, TERN_LOG_INFO, "no ctx");
    tern_log_ids only_trace = {.trace_id = "t2"};
    tern_ctx *c2;
    CHECK_EQ(tern_log_ctx_with_ids(NULL, &only_trace, &c2), 0);
    tern_log_ctx(c2, TERN_LOG_INFO, "trace only");
    tern_log_ctx(ctx, TERN_LOG_DEBUG, "filtered");
    tern_log_set_context_hook(hook_ids);
    tern_log_info("hooked");
    tern_log_ctx(ctx, TERN_LOG_INFO, "ctx wins");
    tern_log_set_context_hook(NULL);
    tern_log_info("unhooked");
    const char *out = collect();
    CHECK_EQ(count_lines(out), 6);
    CHECK_STR(after_time(out, 0), "\"level\":\"info\",\"msg\":\"from ctx\",\"trace_id\":\"t1\","
                                  "\"span_id\":\"s1\",\"n\":1}\n");
    CHECK_STR(after_time(out, 1), "\"level\":\"info\",\"msg\":\"no ctx\"}\n");
    CHECK_STR(after_time(out, 2), "\"level\":\"info\",\"msg\":\"trace only\",\"trace_id\":\"t2\"}\n");
    CHECK_STR(after_time(out, 3),
              "\"level\":\"info\",\"msg\":\"hooked\",\"trace_id\":\"4bf92f3577b34da6a3ce929d0e0e4736\","
              "\"span_id\":\"00f067aa0ba902b7\"}\n");
    CHECK_STR(after_time(out, 4), "\"level\":\"info\",\"msg\":\"ctx wins\",\"trace_id\":\"t1\","
                                  "\"span_id\":\"s1\"}\n");
    CHECK_STR(after_time(out, 5), "\"level\":\"info\",\"msg\":\"unhooked\"}\n");
    tern_ctx_free(child);
    tern_ctx_free(ctx);
    tern_ctx_free(c2);
    stop();
}

/* tern_log_ctx_fields itself, not through the macro: exactly n fields of
 * the array, the ctx's ids, and a ctx without ids as tern_log_fields. */
static void log_ctx_fields_takes_n_fields_and_the_ctx_ids(void)
{
    start(0, TERN_LOG_INFO);
    tern_log_ids ids = {.trace_id = "t9", .span_id = "s9"};
    tern_ctx *with;
    CHECK_EQ(tern_log_ctx_with_ids(NULL, &ids, &with), 0);
    CHECK(with != NULL);
    tern_ctx *plain;
    CHECK_EQ(tern_ctx_with_cancel(NULL, &plain), 0);
    CHECK(plain != NULL);
    const tern_log_field f[] = {TERN_LOG_STR("a", "x"), TERN_LOG_INT("b", -2),
                                TERN_LOG_BOOL("c", true)};
    tern_log_ctx_fields(with, TERN_LOG_WARN, "two of three", f, 2);
    tern_log_ctx_fields(with, TERN_LOG_ERROR, "none", NULL, 0);
    tern_log_ctx_fields(NULL, TERN_LOG_INFO, "null ctx", f + 2, 1);
    tern_log_ctx_fields(with, TERN_LOG_DEBUG, "filtered", f, 3);
    tern_log_ctx_fields(plain, TERN_LOG_INFO, "plain ctx", f, 1);
    /* a ctx without ids leaves the hook its say, as tern_log_fields does */
    tern_log_set_context_hook(hook_ids);
    tern_log_ctx_fields(plain, TERN_LOG_INFO, "plain hooked", NULL, 0);
    tern_log_ctx_fields(with, TERN_LOG_INFO, "ids win", NULL, 0);
    tern_log_set_context_hook(NULL);
    const char *out = collect();
    CHECK_EQ(count_lines(out), 6);
    CHECK_STR(after_time(out, 0), "\"level\":\"warn\",\"msg\":\"two of three\",\"trace_id\":\"t9\","
                                  "\"span_id\":\"s9\",\"a\":\"x\",\"b\":-2}\n");
    CHECK_STR(after_time(out, 1), "\"level\":\"error\",\"msg\":\"none\",\"trace_id\":\"t9\","
                                  "\"span_id\":\"s9\"}\n");
    CHECK_STR(after_time(out, 2), "\"level\":\"info\",\"msg\":\"null ctx\",\"c\":true}\n");
    CHECK_STR(after_time(out, 3), "\"level\":\"info\",\"msg\":\"plain ctx\",\"a\":\"x\"}\n");
    CHECK_STR(after_time(out, 4),
              "\"level\":\"info\",\"msg\":\"plain hooked\",\"trace_id\":\"4bf92f3577b34da6a3ce929d0e0e4736\","
              "\"span_id\":\"00f067aa0ba902b7\"}\n");
    CHECK_STR(after_time(out, 5), "\"level\":\"info\",\"msg\":\"ids win\",\"trace_id\":\"t9\","
                                  "\"span_id\":\"s9\"}\n");
    tern_ctx_free(plain);
    tern_ctx_free(with);
    stop();
}

static void log_truncates_long_lines_at_the_limit(void)
{
    start(0, TERN_LOG_INFO);
    static char big[3000];
    memset(big, 'a', sizeof big - 1);
    tern_log_info(big, TERN_LOG_INT("lost", 1));
    static char mid[1900];
    memset(mid, 'b', sizeof mid - 1);
    /* The second field does not fit: it goes whole, the first stays. */
    tern_log_info("m", TERN_LOG_STR("keep", mid), TERN_LOG_STR("drop", mid));
    /* An escaped string cut inside never splits an escape or a character. */
    static char esc[1500];
    for (size_t i = 0; i + 1 < sizeof esc; i++)
        esc[i] = i % 2 ? '"' : 'x';
    tern_log_info("e", TERN_LOG_STR("s", esc));
    const char *out = collect();
    CHECK_EQ(count_lines(out), 3);
    const char *l0 = after_time(out, 0);
    const char *tail = "\",\"truncated\":true}\n";
    CHECK(strlen(l0) + 35 <= TERN_LOG_LINE_MAX);
    CHECK(strlen(l0) + 35 > TERN_LOG_LINE_MAX - 40);
    CHECK_STR(l0 + strlen(l0) - strlen(tail), tail);
    CHECK(strstr(l0, "lost") == NULL);
    const char *l1 = after_time(out, 1);
    CHECK(strstr(l1, "\"keep\":\"bbbb") != NULL);
    CHECK(strstr(l1, "drop") == NULL);
    CHECK_STR(l1 + strlen(l1) - strlen(tail), tail);
    json_error_t je;
    const char *p = out;
    for (int i = 0; i < 3; i++) {
        json_t *j = json_loads(p, JSON_DISABLE_EOF_CHECK, &je);
        CHECK(j != NULL);
        CHECK(json_is_true(json_object_get(j, "truncated")));
        json_decref(j);
        p = strchr(p, '\n') + 1;
    }
    stop();
}

/* Wherever the limit falls (inside a string, on its closing quote, on
 * the field after it) the line stays one JSON object. */
static void log_line_is_json_wherever_the_limit_falls(void)
{
    start(4 << 20, TERN_LOG_INFO);
    static char v[TERN_LOG_LINE_MAX];
    int lines = 0;
    for (size_t n = TERN_LOG_LINE_MAX - 140; n < TERN_LOG_LINE_MAX - 20; n++) {
        memset(v, n % 3 ? 'v' : '"', n);
        v[n] = 0;
        tern_log_info("m", TERN_LOG_STR("s", v), TERN_LOG_INT("after", 1));
        lines++;
    }
    const char *out = collect();
    CHECK_EQ(count_lines(out), lines);
    const char *p = out;
    json_error_t je;
    for (int i = 0; i < lines; i++) {
        const char *nl = strchr(p, '\n');
        CHECK(nl && nl - p < TERN_LOG_LINE_MAX);
        json_t *j = json_loadb(p, (size_t)(nl - p), 0, &je);
        if (!j)
            fprintf(stderr, "line %d is not JSON (%s): %.*s\n", i, je.text, (int)(nl - p), p);
        CHECK(j != NULL);
        json_decref(j);
        p = nl + 1;
    }
    stop();
}

/* ---- the drop policy ------------------------------------------------------- */

static void log_drops_when_full_and_reports_the_count(void)
{
    /* The smallest ring, and a one-page pipe nobody reads yet: the writer
     * soon blocks in write(2) and the ring fills. */
    CHECK(pipe(pfd) == 0);
    CHECK(fcntl(pfd[1], F_SETPIPE_SZ, 4096) >= 0);
    CHECK(fcntl(pfd[0], F_SETFL, O_NONBLOCK) == 0);
    tern_log_options o = {.fd = pfd[1], .ring_bytes = 4096, .level = TERN_LOG_INFO};
    CHECK_EQ(tern_log_init(&o), 0);
    got_len = 0;
    got[0] = 0;
    enum { N = 2000 };
    for (int i = 0; i < N; i++)
        tern_log_info("filler line to fill the ring quickly", TERN_LOG_INT("i", i));
    struct tern_log_stats st;
    CHECK_EQ(tern_log_stats(&st), 0);
    CHECK_EQ(st.lines + st.dropped, N);
    CHECK(st.dropped > N / 2);
    /* Blocked writer: a flush cannot finish. */
    CHECK_EQ(flush_within(20 * TERN_MS), -ETIMEDOUT);
    /* Now read: the writer catches up and reports. */
    int64_t deadline = tern_now() + 5 * TERN_SEC;
    while (!strstr(got, "log lines dropped") && tern_now() < deadline) {
        ssize_t n = read(pfd[0], got + got_len, sizeof got - 1 - got_len);
        if (n > 0)
            got_len += (size_t)n;
        got[got_len] = 0;
        usleep(1000);
    }
    const char *out = collect();
    int lines = count_lines(out);
    /* The lines that made it are whole and in order; the reports (one, or
     * more if the writer caught up for a moment before the pipe filled)
     * add up to the drops.  Which line is last depends on when the writer
     * last found the ring empty (timing: slow under qemu), so it is not
     * checked. */
    long prev = -1, reported = 0;
    int reports = 0;
    for (int i = 0; i < lines; i++) {
        const char *l = after_time(out, i);
        long v;
        if (sscanf(l, "\"level\":\"info\",\"msg\":\"filler line to fill the ring quickly\","
                      "\"i\":%ld", &v) == 1) {
            char want[128];
            snprintf(want, sizeof want,
                     "\"level\":\"info\",\"msg\":\"filler line to fill the ring quickly\","
                     "\"i\":%ld}\n", v);
            CHECK_STR(l, want);
            CHECK(v > prev);
            prev = v;
        } else {
            CHECK(sscanf(l, "\"level\":\"warn\",\"msg\":\"log lines dropped\",\"dropped\":%ld",
                         &v) == 1);
            char want[128];
            snprintf(want, sizeof want,
                     "\"level\":\"warn\",\"msg\":\"log lines dropped\",\"dropped\":%ld}\n", v);
            CHECK_STR(l, want);
            CHECK(v > 0);
            reported += v;
            reports++;
        }
    }
    CHECK_EQ(lines, (int)st.lines + reports);
    CHECK_EQ(reported, (long)st.dropped);
    CHECK(reports >= 1);
    /* Later lines go through again, with no second report. */
    tern_log_info("after");
    out = collect();
    CHECK_STR(after_time(out, lines), "\"level\":\"info\",\"msg\":\"after\"}\n");
    CHECK_EQ(tern_log_stats(&st), 0);
    CHECK_EQ(st.write_errors, 0);
    stop();
}

/* ---- from coroutines --------------------------------------------------------- */

enum { CO = 8, PER = 400 };
static tern_waitgroup wg;
static bool pace_logging;       /* sleep now and then: a small ring keeps up */

static int logger_co(void *arg)
{
    long id = (long)arg;
    for (int i = 0; i < PER; i++) {
        tern_log_info("from a coroutine", TERN_LOG_INT("co", id), TERN_LOG_INT("i", i),
                      TERN_LOG_STR("pad", "some text to make the line longer"));
        if (pace_logging && i % 16 == 0)
            tern_sleep(50 * TERN_US);
        else if (i % 2 == 0)
            tern_yield();       /* and maybe move to another P */
    }
    tern_waitgroup_done(&wg);
    return 0;
}

static int many_main(void *arg)
{
    (void)arg;
    tern_waitgroup_add(&wg, CO);
    for (long c = 0; c < CO; c++)
        CHECK_EQ(tern_go(logger_co, (void *)c), 0);
    tern_waitgroup_wait(&wg, NULL);
    CHECK_EQ(tern_log_flush(NULL), 0);      /* parks */
    return 0;
}

static void *pipe_reader(void *arg)
{
    (void)arg;
    int fl = fcntl(pfd[0], F_GETFL);
    fcntl(pfd[0], F_SETFL, fl & ~O_NONBLOCK);
    ssize_t n;
    while ((n = read(pfd[0], got + got_len, sizeof got - 1 - got_len)) > 0)
        got_len += (size_t)n;
    got[got_len] = 0;
    return NULL;
}

/* Lines whole, counted, and each coroutine's in order, with a ring of
 * `ring` bytes (0: the default). */
static void many_coroutines(size_t ring)
{
    start(ring, TERN_LOG_INFO);
    pthread_t rd;
    CHECK(pthread_create(&rd, NULL, pipe_reader, NULL) == 0);
    run_ok(many_main, NULL, 4);
    struct tern_log_stats st;
    CHECK_EQ(tern_log_stats(&st), 0);
    tern_log_shutdown();
    close(pfd[1]);
    pthread_join(rd, NULL);
    close(pfd[0]);
    CHECK_EQ(st.lines + st.dropped, CO * PER);
    int seen[CO] = {0}, reports = 0;
    long last[CO];
    for (int c = 0; c < CO; c++)
        last[c] = -1;
    long reported = 0;
    const char *p = got;
    json_error_t je;
    int lines = count_lines(got);
    for (int i = 0; i < lines; i++) {
        json_t *j = json_loads(p, JSON_DISABLE_EOF_CHECK, &je);
        CHECK(j != NULL);
        json_t *co = json_object_get(j, "co");
        if (co) {
            long c = (long)json_integer_value(co);
            long n = (long)json_integer_value(json_object_get(j, "i"));
            CHECK(c >= 0 && c < CO);
            /* each coroutine's lines in the order it logged them, though
             * it moved between Ps */
            CHECK(n > last[c]);
            last[c] = n;
            seen[c]++;
        } else {
            CHECK_STR(json_string_value(json_object_get(j, "msg")), "log lines dropped");
            reported += (long)json_integer_value(json_object_get(j, "dropped"));
            reports++;
        }
        json_decref(j);
        p = strchr(p, '\n') + 1;
    }
    int total = 0;
    for (int c = 0; c < CO; c++)
        total += seen[c];
    CHECK_EQ(total, (int)st.lines);
    CHECK_EQ(reported, (long)st.dropped);
    CHECK_EQ(lines, total + reports);
    fprintf(stderr, "   %llu lines, %llu dropped\n", (unsigned long long)st.lines,
            (unsigned long long)st.dropped);
}

static void log_from_many_coroutines_keeps_lines_whole(void)
{
    many_coroutines(0);
    /* a small ring: lines dropped, the rest still whole and in order */
    pace_logging = true;
    many_coroutines(48 << 10);
    pace_logging = false;
}

/* ---- fork ------------------------------------------------------------------- */

/* A forked child that starts a thread (its fresh writer) kills qemu-user
 * (below) and GCC 12's TSan runtime: the latter still counts the parent's
 * threads as live there, and dies ("dup thread with used id") when glibc
 * hands the new thread a dead one's stack, hence its pthread_t.  Newer runtimes forget those ids at
 * fork (LLVM's ThreadRegistry::OnFork: in clang 14's libtsan, not in GCC
 * 12's).  TSan checks nothing in such a child anyway; clang's TSan build
 * still runs these tests for the parent's side. */
static bool fork_untestable(void)
{
    /* Debian 12's qemu-user (7.2) aborts in a forked child that starts a
     * thread (qemu_plugin_vcpu_init_hook: assertion failed): the emulator's
     * bug, not ours; the native runs cover these tests. */
    if (getenv("TERN_TEST_UNDER_QEMU")) {
        fprintf(stderr, "   skipped: qemu-user aborts when a forked child starts a thread\n");
        return true;
    }
#if defined(__SANITIZE_THREAD__) && !defined(__clang__) && __GNUC__ < 13
    fprintf(stderr, "   skipped: GCC %d's TSan dies when a forked child starts a thread\n",
            __GNUC__);
    return true;
#else
    return false;
#endif
}

/* Sanitizer runtimes whose allocator a fork can copy locked: if another
 * thread is allocating when one forks, the child hangs at its first
 * allocation (here: starting its writer).  glibc's malloc takes its locks
 * around fork; ASan's allocator does since LLVM 18 (llvm-project#75290),
 * TSan's since LLVM 19 (#96600).  Which GCC releases carry those changes
 * is not checked: GCC's runtimes count as unsafe.  Tests that fork while
 * another thread may allocate skip there; the others first let every
 * thread get past its start (ASan's thread start allocates). */
static bool fork_copies_allocator_locks(void)
{
#if defined(__clang__)
#if __has_feature(address_sanitizer)
    bool unsafe = __clang_major__ < 18;
#elif __has_feature(thread_sanitizer)
    bool unsafe = __clang_major__ < 19;
#else
    bool unsafe = false;
#endif
#elif defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    bool unsafe = true;
#else
    bool unsafe = false;
#endif
    if (unsafe)
        fprintf(stderr, "   skipped: this sanitizer's allocator is not fork-safe\n");
    return unsafe;
}

/* Fork; the child runs fn under a watchdog (a hang fails the test) and
 * exits 0 if fn returns.  Meanwhile the parent drains the pipe into got
 * when read_pipe (the child's writer may need room), then checks the
 * child's status. */
static void in_child(void (*fn)(void), bool read_pipe)
{
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        alarm(10);
        fn();
        _exit(0);
    }
    int st;
    pid_t w;
    while ((w = waitpid(pid, &st, read_pipe ? WNOHANG : 0)) == 0) {
        ssize_t n;
        while ((n = read(pfd[0], got + got_len, sizeof got - 1 - got_len)) > 0)
            got_len += (size_t)n;
        usleep(1000);
    }
    CHECK_EQ(w, pid);
    if (!WIFEXITED(st))
        fprintf(stderr, "   child killed by signal %d\n", WTERMSIG(st));
    CHECK(WIFEXITED(st));
    CHECK_EQ(WEXITSTATUS(st), 0);
}

/* Few enough that each process's lines fit one pipe write (PIPE_BUF),
 * which the kernel never splits: longer writes from two processes to one
 * pipe may interleave mid-line. */
enum { FORK_PARENT_LINES = 40, FORK_CHILD_LINES = 20 };

static void child_logs(void)
{
    tern_log_debug("hidden");          /* the level came along */
    for (int i = 0; i < FORK_CHILD_LINES; i++)
        tern_log_info("child", TERN_LOG_INT("i", i));
    CHECK_EQ(tern_log_write_line("{\"raw\":\"child\"}\n", 16), 0);
    CHECK_EQ(tern_log_flush(NULL), 0);
    struct tern_log_stats st;
    CHECK_EQ(tern_log_stats(&st), 0);
    CHECK_EQ(st.lines, FORK_CHILD_LINES + 1);      /* its own only */
    CHECK_EQ(st.dropped, 0);
}

/* Count the lines of out by msg ("parent", "child") and field i, the raw
 * child lines and the filler lines; every line must be one of those. */
static void count_fork_lines(const char *out, int parent[FORK_PARENT_LINES],
                             int child[FORK_CHILD_LINES], int *raw, int *fill)
{
    json_error_t je;
    for (const char *p = out; *p; p = strchr(p, '\n') + 1) {
        json_t *j = json_loads(p, JSON_DISABLE_EOF_CHECK, &je);
        CHECK(j != NULL);
        const char *msg = json_string_value(json_object_get(j, "msg"));
        json_int_t i = json_integer_value(json_object_get(j, "i"));
        if (json_object_get(j, "fill")) {
            ++*fill;
        } else if (!msg) {
            CHECK_STR(json_string_value(json_object_get(j, "raw")), "child");
            ++*raw;
        } else if (strcmp(msg, "parent") == 0) {
            CHECK(i >= 0 && i < FORK_PARENT_LINES);
            parent[i]++;
        } else {
            CHECK_STR(msg, "child");
            CHECK(i >= 0 && i < FORK_CHILD_LINES);
            child[i]++;
        }
        json_decref(j);
    }
}

/* The parent's writer is stuck on a full pipe, so its ring holds lines
 * when it forks: the child must write its own lines, once, through a
 * fresh ring on the same fd, and never the parent's. */
static void log_forked_child_logs_its_lines_once(void)
{
    if (fork_untestable())
        return;
    CHECK(pipe(pfd) == 0);
    CHECK(fcntl(pfd[1], F_SETPIPE_SZ, 4096) >= 0);
    CHECK(fcntl(pfd[0], F_SETFL, O_NONBLOCK) == 0);
    tern_log_options o = {.fd = pfd[1], .ring_bytes = 64 << 10, .level = TERN_LOG_INFO};
    CHECK_EQ(tern_log_init(&o), 0);
    got_len = 0;
    got[0] = 0;
    tern_log_info("parent", TERN_LOG_INT("i", 0));
    CHECK_EQ(tern_log_flush(NULL), 0);     /* the writer is past its start */
    /* Fill the rest of the pipe with whole lines (short writes never
     * split), then the writer blocks on the next lines. */
    CHECK(fcntl(pfd[1], F_SETFL, O_NONBLOCK) == 0);
    int fills = 0;
    while (write(pfd[1], "{\"fill\":\"1234\"}\n", 16) == 16)
        fills++;
    CHECK(errno == EAGAIN && fills > 0);
    CHECK(fcntl(pfd[1], F_SETFL, 0) == 0);
    for (int i = 1; i < FORK_PARENT_LINES; i++)
        tern_log_info("parent", TERN_LOG_INT("i", i));
    CHECK_EQ(flush_within(20 * TERN_MS), -ETIMEDOUT);   /* lines wait in the ring */
    in_child(child_logs, true);
    const char *out = collect();
    int parent[FORK_PARENT_LINES] = {0}, child[FORK_CHILD_LINES] = {0}, raw = 0, fill = 0;
    count_fork_lines(out, parent, child, &raw, &fill);
    for (int i = 0; i < FORK_PARENT_LINES; i++)
        CHECK_EQ(parent[i], 1);
    for (int i = 0; i < FORK_CHILD_LINES; i++)
        CHECK_EQ(child[i], 1);
    CHECK_EQ(raw, 1);
    CHECK_EQ(fill, fills);
    CHECK_EQ(count_lines(out), fills + FORK_PARENT_LINES + FORK_CHILD_LINES + 1);
    struct tern_log_stats st;
    CHECK_EQ(tern_log_stats(&st), 0);
    CHECK_EQ(st.lines, FORK_PARENT_LINES);
    CHECK_EQ(st.dropped, 0);
    stop();
}

static char fork_path[] = "/tmp/tern_log_fork_XXXXXX";

/* The way the header used to prescribe: shut the inherited logger down
 * (before logging: it has nothing to flush) and start another. */
static void child_restarts(void)
{
    tern_log_options o = {.path = fork_path, .level = TERN_LOG_INFO};
    CHECK_EQ(tern_log_init(&o), -EALREADY);        /* the inherited one counts */
    CHECK_EQ(tern_log_flush(NULL), 0);        /* nothing of the child's waits */
    tern_log_shutdown();
    CHECK_EQ(tern_log_flush(NULL), -ESRCH);
    CHECK_EQ(tern_log_init(&o), 0);
    tern_log_info("child", TERN_LOG_INT("i", 0));
    tern_log_shutdown();
}

static void log_forked_child_can_shut_down_and_init_again(void)
{
    if (fork_untestable())
        return;
    int fd = mkstemp(fork_path);
    CHECK(fd >= 0);
    close(fd);
    tern_log_options o = {.path = fork_path, .level = TERN_LOG_INFO};
    CHECK_EQ(tern_log_init(&o), 0);
    for (int i = 0; i < FORK_PARENT_LINES / 2; i++)
        tern_log_info("parent", TERN_LOG_INT("i", i));
    CHECK_EQ(tern_log_flush(NULL), 0);     /* the writer is past its start */
    in_child(child_restarts, false);
    /* The child closed its copy of the file's fd, not ours. */
    for (int i = FORK_PARENT_LINES / 2; i < FORK_PARENT_LINES; i++)
        tern_log_info("parent", TERN_LOG_INT("i", i));
    tern_log_shutdown();
    FILE *f = fopen(fork_path, "r");
    CHECK(f != NULL);
    got_len = fread(got, 1, sizeof got - 1, f);
    got[got_len] = 0;
    fclose(f);
    unlink(fork_path);
    int parent[FORK_PARENT_LINES] = {0}, child[FORK_CHILD_LINES] = {0}, raw = 0, fill = 0;
    count_fork_lines(got, parent, child, &raw, &fill);
    for (int i = 0; i < FORK_PARENT_LINES; i++)
        CHECK_EQ(parent[i], 1);
    CHECK_EQ(child[0], 1);
    CHECK_EQ(count_lines(got), FORK_PARENT_LINES + 1);
}

static atomic_bool busy_stop;

static void *busy_logger(void *arg)
{
    (void)arg;
    while (!atomic_load(&busy_stop))
        tern_log_info("busy", TERN_LOG_STR("pad", "a line to keep the producers' lock busy"));
    return NULL;
}

static void child_logs_one(void)
{
    CHECK_EQ(tern_log_write_line("{\"x\":1}\n", 8), 0);
    CHECK_EQ(tern_log_flush(NULL), 0);
    struct tern_log_stats st;
    CHECK_EQ(tern_log_stats(&st), 0);
    CHECK_EQ(st.lines, 1);
}

enum { BUSY_FORKS = 20 };

/* Forks that land while another thread holds the producers' lock: the
 * child must not find it taken (it never uses the inherited ring). */
static void log_fork_while_another_thread_logs(void)
{
    if (fork_untestable())
        return;
    int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    CHECK(devnull >= 0);
    tern_log_options o = {.fd = devnull, .ring_bytes = 4096, .level = TERN_LOG_INFO};
    CHECK_EQ(tern_log_init(&o), 0);
    tern_log_info("first");
    CHECK_EQ(tern_log_flush(NULL), 0);     /* the writer is past its start */
    atomic_store(&busy_stop, false);
    pthread_t th;
    CHECK(pthread_create(&th, NULL, busy_logger, NULL) == 0);
    struct tern_log_stats st;
    do {                                            /* and so is the busy thread */
        usleep(100);
        CHECK_EQ(tern_log_stats(&st), 0);
    } while (st.lines + st.dropped < 2);
    for (int k = 0; k < BUSY_FORKS; k++)
        in_child(child_logs_one, false);
    atomic_store(&busy_stop, true);
    pthread_join(th, NULL);
    tern_log_shutdown();
    close(devnull);
}

static void *busy_starter(void *arg)
{
    tern_log_options *o = arg;
    while (!atomic_load(&busy_stop)) {
        CHECK_EQ(tern_log_init(o), 0);
        tern_log_shutdown();
    }
    return NULL;
}

/* The logger may or may not run when the child starts: whatever it
 * finds, nothing hangs. */
static void child_logs_one_if_any(void)
{
    int r = tern_log_write_line("{\"x\":1}\n", 8);
    CHECK(r == 0 || r == -ESRCH);
    CHECK_EQ(tern_log_flush(NULL), r);
    tern_log_shutdown();
}

/* Forks that land while another thread starts or stops the logger: the
 * child must not find start_mu taken, nor a half-made logger. */
static void log_fork_while_another_thread_starts_and_stops(void)
{
    if (fork_untestable() || fork_copies_allocator_locks())
        return;
    int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    CHECK(devnull >= 0);
    tern_log_options o = {.fd = devnull, .ring_bytes = 4096, .level = TERN_LOG_INFO};
    atomic_store(&busy_stop, false);
    pthread_t th;
    CHECK(pthread_create(&th, NULL, busy_starter, &o) == 0);
    for (int k = 0; k < BUSY_FORKS; k++)
        in_child(child_logs_one_if_any, false);
    atomic_store(&busy_stop, true);
    pthread_join(th, NULL);
    close(devnull);
}

/* ---- flush bounded by a ctx, on and off a coroutine ------------------------- */

typedef struct flush_off {
    int rc;
    int64_t took;
} flush_off;

static void *flush_thread(void *arg)
{
    flush_off *f = arg;
    tern_ctx *ctx;
    CHECK_EQ(tern_ctx_with_timeout(NULL, 50 * TERN_MS, &ctx), 0);
    int64_t t0 = tern_now();
    f->rc = tern_log_flush(ctx);
    f->took = tern_now() - t0;
    tern_ctx_free(ctx);
    return NULL;
}

static int flush_ctx_entry(void *arg)
{
    (void)arg;
    /* A plain thread (no coroutine): the ctx's deadline ends its wait. */
    flush_off f = {0};
    pthread_t t;
    CHECK(pthread_create(&t, NULL, flush_thread, &f) == 0);
    CHECK(pthread_join(t, NULL) == 0);
    CHECK_EQ(f.rc, -ETIMEDOUT);
    CHECK(f.took >= 45 * TERN_MS);
    CHECK(f.took < TERN_SEC);
    /* A coroutine: parks until its ctx ends, with the ctx's error. */
    tern_ctx *ctx;
    CHECK_EQ(tern_ctx_with_timeout(NULL, 50 * TERN_MS, &ctx), 0);
    int64_t t0 = tern_now();
    CHECK_EQ(tern_log_flush(ctx), -ETIMEDOUT);
    CHECK(tern_now() - t0 >= 45 * TERN_MS);
    tern_ctx_free(ctx);
    tern_ctx *gone;
    CHECK_EQ(tern_ctx_with_cancel(NULL, &gone), 0);
    tern_ctx_cancel(gone);
    CHECK_EQ(tern_log_flush(gone), -ECANCELED);
    tern_ctx_free(gone);
    return 0;
}

static void log_flush_is_bounded_by_its_ctx_on_and_off_a_coroutine(void)
{
    /* A one-page pipe nobody reads: the writer blocks and lines wait. */
    CHECK(pipe(pfd) == 0);
    CHECK(fcntl(pfd[1], F_SETPIPE_SZ, 4096) >= 0);
    CHECK(fcntl(pfd[0], F_SETFL, O_NONBLOCK) == 0);
    tern_log_options o = {.fd = pfd[1], .ring_bytes = 64 << 10, .level = TERN_LOG_INFO};
    CHECK_EQ(tern_log_init(&o), 0);
    got_len = 0;
    got[0] = 0;
    for (int i = 0; i < 200; i++)
        tern_log_info("a line long enough to fill a one-page pipe soon", TERN_LOG_INT("i", i));
    run_ok(flush_ctx_entry, NULL, 2);
    /* Once read, the lines go out and an unbounded flush returns. */
    const char *out = collect();
    CHECK_EQ(count_lines(out), 200);
    stop();
}

TESTS(T(log_write_line_passes_lines_through), T(log_exact_line_for_typed_fields),
      T(log_keys_known_and_measured_write_the_same), T(log_double_reads_back_exactly),
      T(log_escapes_json_and_replaces_bad_utf8),
      T(log_escaping_finds_special_bytes_at_every_position),
      T(log_macros_skip_arguments_below_the_level),
      T(log_scan_stops_at_the_end_of_a_page), T(log_line_is_json_wherever_the_limit_falls),
      T(log_levels_filter_and_change_at_run_time),
      T(log_level_from_env), T(log_appends_to_a_file), T(log_adds_trace_ids_from_context_and_hook),
      T(log_ctx_fields_takes_n_fields_and_the_ctx_ids),
      T(log_truncates_long_lines_at_the_limit), T(log_drops_when_full_and_reports_the_count),
      T(log_from_many_coroutines_keeps_lines_whole), T(log_forked_child_logs_its_lines_once),
      T(log_forked_child_can_shut_down_and_init_again), T(log_fork_while_another_thread_logs),
      T(log_fork_while_another_thread_starts_and_stops),
      T(log_flush_is_bounded_by_its_ctx_on_and_off_a_coroutine))
