/*
 * test_kit_trace.c - tracing: the W3C headers, the samplers, a span's
 * lifecycle, the current span, the server middleware and the client call
 * against real tern servers, and the OTLP exporter against a receiver
 * that parses what it gets and checks it field by field.
 */
#include "check.h"
#include "http_raw.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <fcntl.h>
#include <pthread.h>

#include <jansson.h>
#include <tern/http.h>
#include <tern/http_client.h>
#include <tern/http_router.h>
#include <tern/trace.h>

#define TP "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

/* ---- traceparent / tracestate ------------------------------------------------- */

static void traceparent_valid(void)
{
    tern_trace_span_context sc;
    CHECK_EQ(tern_trace_parse_traceparent(TP, &sc), 0);
    char hex[33];
    tern_trace_hex(sc.trace_id, 16, hex);
    CHECK(strcmp(hex, "4bf92f3577b34da6a3ce929d0e0e4736") == 0);
    tern_trace_hex(sc.span_id, 8, hex);
    CHECK(strcmp(hex, "00f067aa0ba902b7") == 0);
    CHECK_EQ(sc.flags, 1);
    CHECK(sc.remote);
    CHECK_EQ(sc.tracestate[0], 0);

    char out[TERN_TRACE_PARENT_LEN + 1];
    CHECK_EQ(tern_trace_format_traceparent(&sc, out, sizeof out), 0);
    CHECK(strcmp(out, TP) == 0);
    CHECK_EQ(tern_trace_format_traceparent(&sc, out, TERN_TRACE_PARENT_LEN), -EINVAL);

    CHECK_EQ(tern_trace_parse_traceparent(
                 "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", &sc), 0);
    CHECK_EQ(sc.flags, 0);
    /* unknown flags of version 00 are kept as received */
    CHECK_EQ(tern_trace_parse_traceparent(
                 "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09", &sc), 0);
    CHECK_EQ(sc.flags, 9);
    /* a later version: its 00 prefix, only the sampled flag, more fields allowed */
    CHECK_EQ(tern_trace_parse_traceparent(
                 "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03", &sc), 0);
    CHECK_EQ(sc.flags, 1);
    CHECK_EQ(tern_trace_parse_traceparent(
                 "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future", &sc),
             0);

    memset(sc.trace_id, 0, 16);
    CHECK_EQ(tern_trace_format_traceparent(&sc, out, sizeof out), -EINVAL);
}

static void traceparent_invalid_each_form(void)
{
    static const char *const bad[] = {
        "",
        "00",
        /* uppercase hex in each field */
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",
        "0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0A",
        /* version ff is forbidden */
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        /* all-zero ids */
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        /* lengths */
        "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-010",
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
        /* separators and characters */
        "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7_01",
        "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902bz-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
        " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tern_trace_span_context sc = {.flags = 0x77};
        int rc = tern_trace_parse_traceparent(bad[i], &sc);
        if (rc != -EINVAL)
            fprintf(stderr, "accepted: \"%s\"\n", bad[i]);
        CHECK_EQ(rc, -EINVAL);
        CHECK_EQ(sc.flags, 0x77);   /* untouched */
    }
    CHECK_EQ(tern_trace_parse_traceparent(NULL, &(tern_trace_span_context){0}), -EINVAL);
}

static void tracestate_bounds(void)
{
    tern_trace_span_context sc;
    CHECK_EQ(tern_trace_parse_tracestate("congo=t61rcWkgMzE,rojo=00f067aa0ba902b7", &sc), 0);
    CHECK(strcmp(sc.tracestate, "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7") == 0);
    CHECK_EQ(tern_trace_parse_tracestate(" a=1 ,, b@sys=x y ,", &sc), 0);   /* OWS, empty members */
    CHECK_EQ(tern_trace_parse_tracestate("7tenant@vendor=v", &sc), 0);
    CHECK_EQ(tern_trace_parse_tracestate(NULL, &sc), 0);
    CHECK_EQ(sc.tracestate[0], 0);

    static const char *const bad[] = {"A=1", "a", "a=", "=1", "a=1,a=2", "a=x=y", "a=\x01",
                                      "1a=1", "a@=1", "a@Sys=1", "a=1 ,b"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        strcpy(sc.tracestate, "old");
        CHECK_EQ(tern_trace_parse_tracestate(bad[i], &sc), -EINVAL);
        CHECK_EQ(sc.tracestate[0], 0);
    }
    char many[1024] = "";
    for (int i = 0; i < 33; i++)
        sprintf(many + strlen(many), "%sk%d=v", i ? "," : "", i);
    CHECK_EQ(tern_trace_parse_tracestate(many, &sc), -EINVAL);     /* 33 members */
    *strrchr(many, ',') = 0;
    CHECK_EQ(tern_trace_parse_tracestate(many, &sc), 0);          /* 32 */
    char big[600];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = 0;
    big[0] = 'k', big[1] = '=';
    big[255] = 0;       /* a 253-byte value: fine */
    CHECK_EQ(tern_trace_parse_tracestate(big, &sc), 0);
    big[255] = 'x';
    CHECK_EQ(tern_trace_parse_tracestate(big, &sc), -E2BIG);
}

/* ---- samplers -------------------------------------------------------------------- */

/* A trace id whose first 8 bytes are all ones (they must not matter) and
 * whose last 8 are x, big-endian. */
static void tid(uint8_t id[16], uint64_t x)
{
    memset(id, 0xff, 8);
    for (int i = 15; i >= 8; i--, x >>= 8)
        id[i] = (uint8_t)x;
}

static void sampler_parse_names(void)
{
    tern_trace_sampler s;
    CHECK_EQ(tern_trace_sampler_parse(NULL, NULL, &s), 0);
    CHECK_EQ(s.kind, TERN_TRACE_SAMPLER_PARENTBASED_ALWAYS_ON);
    CHECK_EQ(tern_trace_sampler_parse("always_off", "0.3", &s), 0);
    CHECK_EQ(s.kind, TERN_TRACE_SAMPLER_ALWAYS_OFF);
    CHECK_EQ(tern_trace_sampler_parse("traceidratio", "0.25", &s), 0);
    CHECK_EQ(s.kind, TERN_TRACE_SAMPLER_TRACEIDRATIO);
    CHECK(s.ratio == 0.25);
    CHECK_EQ(tern_trace_sampler_parse("parentbased_traceidratio", NULL, &s), 0);
    CHECK(s.ratio == 1.0);
    CHECK_EQ(tern_trace_sampler_parse("parentbased_always_off", NULL, &s), 0);
    CHECK_EQ(s.kind, TERN_TRACE_SAMPLER_PARENTBASED_ALWAYS_OFF);
    static const char *const bad[][2] = {{"jaeger_remote", NULL}, {"ALWAYS_ON", NULL},
                                         {"traceidratio", "1.5"}, {"traceidratio", "-0.1"},
                                         {"traceidratio", "half"}, {"traceidratio", "nan"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_EQ(tern_trace_sampler_parse(bad[i][0], bad[i][1], &s), -EINVAL);
        CHECK_EQ(s.kind, TERN_TRACE_SAMPLER_PARENTBASED_ALWAYS_ON);
    }
}

static void sampler_ratio_boundary_on_low_bytes(void)
{
    uint8_t id[16];
    tern_trace_sampler half = {TERN_TRACE_SAMPLER_TRACEIDRATIO, 0.5};
    tid(id, 0x7fffffffffffffffULL);
    CHECK(tern_trace_sampler_decide(&half, NULL, id));
    tid(id, 0x8000000000000000ULL);
    CHECK(!tern_trace_sampler_decide(&half, NULL, id));
    tern_trace_sampler quarter = {TERN_TRACE_SAMPLER_TRACEIDRATIO, 0.25};
    tid(id, 0x3fffffffffffffffULL);
    CHECK(tern_trace_sampler_decide(&quarter, NULL, id));
    tid(id, 0x4000000000000000ULL);
    CHECK(!tern_trace_sampler_decide(&quarter, NULL, id));
    /* the high bytes do not matter */
    memset(id, 0, 8);
    CHECK(!tern_trace_sampler_decide(&quarter, NULL, id));
    tern_trace_sampler none = {TERN_TRACE_SAMPLER_TRACEIDRATIO, 0.0};
    tern_trace_sampler all = {TERN_TRACE_SAMPLER_TRACEIDRATIO, 1.0};
    tid(id, 0);
    CHECK(!tern_trace_sampler_decide(&none, NULL, id));
    tid(id, UINT64_MAX);
    CHECK(tern_trace_sampler_decide(&all, NULL, id));
    /* plain traceidratio ignores a parent */
    tern_trace_span_context sampled = {.flags = TERN_TRACE_FLAG_SAMPLED};
    tid(id, 0x9000000000000000ULL);
    CHECK(!tern_trace_sampler_decide(&half, &sampled, id));
}

static void sampler_parent_based_honours_flag(void)
{
    uint8_t lo[16], hi[16];
    tid(lo, 1);
    tid(hi, UINT64_MAX - 1);
    tern_trace_span_context on = {.flags = TERN_TRACE_FLAG_SAMPLED}, off = {.flags = 0};
    tern_trace_sampler pon = {TERN_TRACE_SAMPLER_PARENTBASED_ALWAYS_ON, 1};
    tern_trace_sampler poff = {TERN_TRACE_SAMPLER_PARENTBASED_ALWAYS_OFF, 1};
    tern_trace_sampler pratio = {TERN_TRACE_SAMPLER_PARENTBASED_TRACEIDRATIO, 0.5};
    CHECK(tern_trace_sampler_decide(&pon, NULL, hi));
    CHECK(!tern_trace_sampler_decide(&pon, &off, hi));
    CHECK(tern_trace_sampler_decide(&pon, &on, hi));
    CHECK(!tern_trace_sampler_decide(&poff, NULL, lo));
    CHECK(tern_trace_sampler_decide(&poff, &on, lo));
    CHECK(tern_trace_sampler_decide(&pratio, NULL, lo));
    CHECK(!tern_trace_sampler_decide(&pratio, NULL, hi));
    CHECK(tern_trace_sampler_decide(&pratio, &on, hi));     /* parent overrides the ratio */
    CHECK(!tern_trace_sampler_decide(&pratio, &off, lo));
    tern_trace_sampler aon = {TERN_TRACE_SAMPLER_ALWAYS_ON, 1};
    CHECK(tern_trace_sampler_decide(&aon, &off, lo));
}

/* ---- span lifecycle ------------------------------------------------------------------- */

static bool is_hex(const char *s, size_t n)
{
    if (strlen(s) != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isxdigit((unsigned char)s[i]) || isupper((unsigned char)s[i]))
            return false;
    return true;
}

static void span_lifecycle(void)
{
    tern_trace_span *s;
    CHECK_EQ(tern_trace_span_start("work", TERN_TRACE_KIND_INTERNAL, NULL, &s), 0);
    CHECK(tern_trace_span_recording(s));
    CHECK(is_hex(tern_trace_span_trace_id(s), 32));
    CHECK(is_hex(tern_trace_span_span_id(s), 16));
    CHECK_EQ(tern_trace_span_context_of(s)->flags, TERN_TRACE_FLAG_SAMPLED);
    uint8_t pid[8];
    CHECK(!tern_trace_span_parent_id(s, pid));

    CHECK_EQ(tern_trace_span_set(s, &TERN_TRACE_STR("k", "v1")), 0);
    CHECK_EQ(tern_trace_span_set(s, &TERN_TRACE_INT("n", -5)), 0);
    CHECK_EQ(tern_trace_span_set(s, &TERN_TRACE_STR("k", "v2")), 0);   /* replaces */
    CHECK_EQ(tern_trace_span_attr_count(s), 2);
    CHECK(strcmp(tern_trace_span_attr(s, "k")->v.s, "v2") == 0);
    CHECK_EQ(tern_trace_span_attr(s, "n")->v.i, -5);
    CHECK(tern_trace_span_attr(s, "nope") == NULL);
    CHECK_EQ(tern_trace_span_set(s, &TERN_TRACE_STR(NULL, "x")), -EINVAL);
    for (int i = 2; i < TERN_TRACE_MAX_ATTRS; i++) {
        char key[16];
        snprintf(key, sizeof key, "a%d", i);
        CHECK_EQ(tern_trace_span_set(s, &TERN_TRACE_BOOL(key, true)), 0);
    }
    CHECK_EQ(tern_trace_span_set(s, &TERN_TRACE_BOOL("one.too.many", true)), -ENOSPC);
    CHECK_EQ(tern_trace_span_set(s, &TERN_TRACE_INT("n", 6)), 0);      /* replacing still works */

    tern_trace_attr ea[] = {TERN_TRACE_DOUBLE("d", 1.5)};
    CHECK_EQ(tern_trace_span_add_event(s, "retry", ea, 1), 0);
    CHECK_EQ(tern_trace_span_event_count(s), 1);

    CHECK_EQ(tern_trace_span_set_status(s, TERN_TRACE_STATUS_ERROR, "boom"), 0);
    CHECK_EQ(tern_trace_span_status(s), TERN_TRACE_STATUS_ERROR);
    CHECK_EQ(tern_trace_span_set_status(s, TERN_TRACE_STATUS_OK, NULL), 0);
    CHECK_EQ(tern_trace_span_status(s), TERN_TRACE_STATUS_OK);
    CHECK_EQ(tern_trace_span_set_status(s, TERN_TRACE_STATUS_ERROR, "late"), 0);
    CHECK_EQ(tern_trace_span_status(s), TERN_TRACE_STATUS_OK);          /* OK is final */

    tern_trace_span *child;
    CHECK_EQ(tern_trace_span_start("child", TERN_TRACE_KIND_CLIENT, tern_trace_span_context_of(s),
                                   &child), 0);
    CHECK(strcmp(tern_trace_span_trace_id(child), tern_trace_span_trace_id(s)) == 0);
    CHECK(strcmp(tern_trace_span_span_id(child), tern_trace_span_span_id(s)) != 0);
    CHECK(tern_trace_span_parent_id(child, pid));
    CHECK(memcmp(pid, tern_trace_span_context_of(s)->span_id, 8) == 0);

    CHECK_EQ(tern_trace_span_end(s), 0);
    CHECK_EQ(tern_trace_span_end(s), -EALREADY);                       /* once */
    CHECK_EQ(tern_trace_span_set(s, &TERN_TRACE_INT("after", 1)), -EALREADY);
    CHECK_EQ(tern_trace_span_add_event(s, "after", NULL, 0), -EALREADY);
    CHECK_EQ(tern_trace_span_set_status(s, TERN_TRACE_STATUS_ERROR, NULL), -EALREADY);
    CHECK_EQ(tern_trace_span_set_name(s, "renamed"), -EALREADY);
    CHECK(strcmp(tern_trace_span_name(s), "work") == 0);
    CHECK(tern_trace_span_attr(s, "after") == NULL);
    tern_trace_span_free(s);
    tern_trace_span_free(child);    /* freed unended: fine */
}

/* A name short enough is kept in the span, a longer one allocated, one
 * over TERN_TRACE_STR_MAX cut; renaming moves between the two (ASan
 * checks that nothing leaks or is freed twice); an unsampled span takes
 * names too. */
static void span_names_short_long_and_cut(void)
{
    char longname[TERN_TRACE_STR_MAX + 100];
    memset(longname, 'n', sizeof longname - 1);
    longname[sizeof longname - 1] = 0;
    tern_trace_span *s;
    CHECK_EQ(tern_trace_span_start(longname, TERN_TRACE_KIND_INTERNAL, NULL, &s), 0);
    CHECK_EQ(strlen(tern_trace_span_name(s)), TERN_TRACE_STR_MAX);
    CHECK_EQ(tern_trace_span_set_name(s, "short"), 0);
    CHECK(strcmp(tern_trace_span_name(s), "short") == 0);
    CHECK_EQ(tern_trace_span_set_name(s, "0123456789012345678901234567890"), 0);   /* 31 */
    CHECK(strcmp(tern_trace_span_name(s), "0123456789012345678901234567890") == 0);
    CHECK_EQ(tern_trace_span_set_name(s, "01234567890123456789012345678901"), 0);  /* 32 */
    CHECK(strcmp(tern_trace_span_name(s), "01234567890123456789012345678901") == 0);
    CHECK_EQ(tern_trace_span_set_name(s, longname + 900), 0);
    CHECK_EQ(strlen(tern_trace_span_name(s)), sizeof longname - 1 - 900);
    CHECK_EQ(tern_trace_span_set_name(s, NULL), -EINVAL);
    tern_trace_span_free(s);

    tern_trace_span_context off = {.trace_id = {1}, .span_id = {2}, .flags = 0};
    CHECK_EQ(tern_trace_span_start("x", TERN_TRACE_KIND_SERVER, &off, &s), 0);
    CHECK(!tern_trace_span_recording(s));
    CHECK_EQ(tern_trace_span_set_name(s, longname), 0);
    CHECK_EQ(strlen(tern_trace_span_name(s)), TERN_TRACE_STR_MAX);
    CHECK_EQ(tern_trace_span_set(s, &TERN_TRACE_INT("ignored", 1)), 0);
    CHECK_EQ(tern_trace_span_attr_count(s), 0);
    CHECK_EQ(tern_trace_span_end(s), 0);
    tern_trace_span_free(s);
}

/* The ids of a fresh root span: trace id, '-', span id. */
static void fresh_ids(char out[50])
{
    tern_trace_span *s;
    CHECK_EQ(tern_trace_span_start("ids", TERN_TRACE_KIND_INTERNAL, NULL, &s), 0);
    snprintf(out, 50, "%s-%s", tern_trace_span_trace_id(s), tern_trace_span_span_id(s));
    tern_trace_span_free(s);
}

/* A forked child's thread inherits its parent's PRNG state; it must
 * reseed, or parent and children hand out the same trace ids.  Two
 * children, so that siblings differ too; one of them forks a grandchild
 * after drawing, whose first ids must differ from the child's next ones. */
static void span_ids_differ_after_fork(void)
{
    enum { N = 4 };             /* child 0, child 1 twice, the grandchild */
    char ids[N + 2][50];
    fresh_ids(ids[N]);          /* this thread's state is seeded */
    int pfd[2];
    CHECK(pipe(pfd) == 0);
    pid_t pids[2];
    for (int k = 0; k < 2; k++) {
        fflush(NULL);
        pids[k] = fork();
        CHECK(pids[k] >= 0);
        if (pids[k] == 0) {
            alarm(10);
            char mine[50];
            fresh_ids(mine);
            if (write(pfd[1], mine, 50) != 50)
                _exit(1);
            if (k == 1) {
                pid_t g = fork();
                if (g == 0) {
                    fresh_ids(mine);
                    _exit(write(pfd[1], mine, 50) == 50 ? 0 : 1);
                }
                int st;
                if (g < 0 || waitpid(g, &st, 0) != g || !WIFEXITED(st) || WEXITSTATUS(st))
                    _exit(2);
                fresh_ids(mine);
                if (write(pfd[1], mine, 50) != 50)
                    _exit(1);
            }
            _exit(0);
        }
    }
    fresh_ids(ids[N + 1]);
    close(pfd[1]);
    for (int k = 0; k < N; k++)
        CHECK(read(pfd[0], ids[k], 50) == 50);
    close(pfd[0]);
    for (int k = 0; k < 2; k++) {
        int st;
        CHECK(waitpid(pids[k], &st, 0) == pids[k]);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    for (int k = 0; k < N + 2; k++)
        for (int j = 0; j < k; j++)
            CHECK(strcmp(ids[k], ids[j]) != 0);
}

static void span_unsampled_parent_propagates(void)
{
    tern_trace_span_context parent;
    CHECK_EQ(tern_trace_parse_traceparent(
                 "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", &parent), 0);
    tern_trace_span *s;
    CHECK_EQ(tern_trace_span_start("x", TERN_TRACE_KIND_SERVER, &parent, &s), 0);
    CHECK(!tern_trace_span_recording(s));
    CHECK_EQ(tern_trace_span_context_of(s)->flags, 0);
    CHECK(strcmp(tern_trace_span_trace_id(s), "4bf92f3577b34da6a3ce929d0e0e4736") == 0);
    CHECK_EQ(tern_trace_span_set(s, &TERN_TRACE_INT("ignored", 1)), 0);
    CHECK_EQ(tern_trace_span_attr_count(s), 0);
    CHECK_EQ(tern_trace_span_end(s), 0);
    CHECK_EQ(tern_trace_span_end(s), -EALREADY);
    tern_trace_span_free(s);
}

/* ---- the current span is per coroutine ------------------------------------------------- */

typedef struct peek {
    tern_trace_span *seen;
    tern_chan *go, *done;
} peek;

static int peek_co(void *arg)
{
    peek *p = arg;
    char c;
    bool ok;
    tern_chan_recv(p->go, &c, &ok, NULL);
    p->seen = tern_trace_span_current();
    tern_log_ids ids;
    CHECK(!tern_trace_log_ids(&ids));
    tern_chan_send(p->done, &c, NULL);
    return 0;
}

static int current_span_body(void *arg)
{
    (void)arg;
    CHECK(tern_trace_span_current() == NULL);
    tern_trace_span *a, *b;
    CHECK_EQ(tern_trace_span_start("a", TERN_TRACE_KIND_INTERNAL, NULL, &a), 0);
    CHECK_EQ(tern_trace_span_start("b", TERN_TRACE_KIND_INTERNAL, NULL, &b), 0);
    tern_trace_scope *sa = malloc(sizeof *sa), *sb = malloc(sizeof *sb);
    tern_trace_span_enter(sa, a);
    CHECK(tern_trace_span_current() == a);
    tern_trace_span_enter(sb, b);
    CHECK(tern_trace_span_current() == b);

    peek p = {.seen = a};
    CHECK_EQ(tern_chan_new(1, 0, &p.go), 0);
    CHECK_EQ(tern_chan_new(1, 0, &p.done), 0);
    CHECK_EQ(tern_go(peek_co, &p), 0);
    char c = 1;
    bool ok;
    tern_chan_send(p.go, &c, NULL);
    tern_chan_recv(p.done, &c, &ok, NULL);
    CHECK(p.seen == NULL);                  /* another coroutine sees none */
    tern_sleep(TERN_MS);                    /* park; may resume on another thread */
    CHECK(tern_trace_span_current() == b);
    tern_log_ids ids;
    CHECK(tern_trace_log_ids(&ids));
    CHECK(strcmp(ids.trace_id, tern_trace_span_trace_id(b)) == 0);
    CHECK(strcmp(ids.span_id, tern_trace_span_span_id(b)) == 0);

    tern_trace_span_exit(sb);
    CHECK(tern_trace_span_current() == a);
    tern_trace_span_exit(sa);
    CHECK(tern_trace_span_current() == NULL);
    CHECK(!tern_trace_log_ids(&ids));
    tern_chan_free(p.go);
    tern_chan_free(p.done);
    free(sa);
    free(sb);
    tern_trace_span_free(a);
    tern_trace_span_free(b);
    return 0;
}

static void current_span_is_per_coroutine(void) { run_test(current_span_body, NULL); }

/* ---- the traced application ---------------------------------------------------------------- */

/* What the last handler saw (requests are sequential in these tests). */
static struct {
    char trace_id[33], span_id[33], parent_id[17], tracestate[TERN_TRACE_STATE_MAX + 1];
    bool has_parent, recording, log_ids_match, after_cleared;
    bool log_line;              /* also write a log line from the handler */
} seen;

static int users_h(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)arg;
    tern_trace_span *s = tern_trace_span_from_ctx(tern_http_req_ctx(r));
    CHECK(s);
    CHECK(tern_trace_span_current() == s);
    snprintf(seen.trace_id, sizeof seen.trace_id, "%s", tern_trace_span_trace_id(s));
    snprintf(seen.span_id, sizeof seen.span_id, "%s", tern_trace_span_span_id(s));
    uint8_t pid[8];
    seen.has_parent = tern_trace_span_parent_id(s, pid);
    tern_trace_hex(pid, 8, seen.parent_id);
    seen.recording = tern_trace_span_recording(s);
    snprintf(seen.tracestate, sizeof seen.tracestate, "%s", tern_trace_span_context_of(s)->tracestate);
    tern_sleep(TERN_MS);        /* park: the ids must follow the coroutine */
    tern_log_ids ids;
    seen.log_ids_match = tern_trace_log_ids(&ids) && strcmp(ids.trace_id, seen.trace_id) == 0 &&
                         strcmp(ids.span_id, seen.span_id) == 0;
    if (seen.log_line)
        tern_log_info("in handler", TERN_LOG_INT("n", 1));

    tern_trace_span *db;
    CHECK_EQ(tern_trace_span_start("db", TERN_TRACE_KIND_INTERNAL, tern_trace_span_context_of(s),
                                   &db), 0);
    tern_trace_span_set(db, &TERN_TRACE_DOUBLE("db.ms", 2.5));
    tern_trace_span_set(db, &TERN_TRACE_BOOL("db.cached", true));
    /* what JSON must escape or cannot hold: a quote, a backslash, a
     * control character, a byte that is not UTF-8, a NaN */
    tern_trace_span_set(db, &TERN_TRACE_STR("db.stmt", "a\"b\\c\x01" "d\xff" "e\xc3\xa9"));
    tern_trace_span_set(db, &TERN_TRACE_DOUBLE("db.nan", NAN));
    tern_trace_span_set(db, &TERN_TRACE_DOUBLE("db.tiny", 1e-300));
    /* 5 above and 30 more: 3 over TERN_TRACE_MAX_ATTRS, counted as dropped */
    for (int i = 0; i < 30; i++) {
        char key[16];
        snprintf(key, sizeof key, "fill.%d", i);
        tern_trace_span_set(db, &TERN_TRACE_INT(key, i));
    }
    tern_trace_attr ea[] = {TERN_TRACE_INT("k", 7)};
    tern_trace_span_add_event(db, "cache miss", ea, 1);
    tern_trace_span_set_status(db, TERN_TRACE_STATUS_ERROR, "db down");
    tern_trace_span_end(db);
    tern_trace_span_free(db);
    return tern_http_resp_text(w, 200, "ok");
}

static int fail_h(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)r, (void)arg;
    return tern_http_resp_text(w, 503, "busy");
}

static int echo_h(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)arg;
    tern_trace_span *s = tern_trace_span_from_ctx(tern_http_req_ctx(r));
    uint8_t pid[8];
    CHECK(s && tern_trace_span_parent_id(s, pid));
    tern_trace_hex(pid, 8, seen.parent_id);
    snprintf(seen.trace_id, sizeof seen.trace_id, "%s", tern_trace_span_trace_id(s));
    const char *tp = tern_http_req_header(r, "traceparent");
    const char *ts = tern_http_req_header(r, "tracestate");
    return tern_http_resp_printf(w, "%s|%s", tp ? tp : "", ts ? ts : "");
}

/* Outside the trace middleware: the request's span is gone by now. */
static int outer_h(tern_http_req *r, tern_http_resp *w, void *router)
{
    int rc = tern_http_next(r, w);
    seen.after_cleared = tern_trace_span_from_ctx(tern_http_req_ctx(r)) == NULL;
    (void)router;
    return rc;
}

typedef struct app {
    tern_http_router *rt;
    server sv;
} app;

static void app_start(app *a)
{
    CHECK_EQ(tern_http_router_new(NULL, &a->rt), 0);
    CHECK_EQ(tern_http_router_use(a->rt, tern_http_mw_trace, NULL), 0);
    CHECK_EQ(tern_http_router_handle(a->rt, "GET", "/users/:id", users_h, NULL), 0);
    CHECK_EQ(tern_http_router_handle(a->rt, "GET", "/fail", fail_h, NULL), 0);
    CHECK_EQ(tern_http_router_handle(a->rt, "GET", "/echo", echo_h, NULL), 0);
    server_start(&a->sv, (tern_http_link[]){{outer_h, NULL}, {tern_http_router_serve, a->rt}},
                 2);
}

static void app_stop(app *a)
{
    server_stop(&a->sv);
    tern_http_router_free(a->rt);
}

/* GET base+path with optional extra headers; the status, the body in buf. */
static int app_get(tern_http_client *c, const char *base, const char *path,
                   const char *const *hdrs, char *buf, size_t len, bool *has_traceresponse)
{
    char url[128];
    snprintf(url, sizeof url, "%s%s", base, path);
    tern_http_client_request req = {.url = url, .headers = hdrs};
    tern_http_client_response *resp;
    CHECK_EQ(tern_http_client_do(c, &req, &resp, NULL), 0);
    int st = tern_http_client_response_status(resp);
    const char *body;
    size_t n;
    CHECK_EQ(tern_http_client_response_body(resp, 1 << 16, &body, &n), 0);
    snprintf(buf, len, "%s", body);
    if (has_traceresponse)
        *has_traceresponse = tern_http_client_response_header(resp, "traceresponse") != NULL;
    tern_http_client_response_free(resp);
    return st;
}

/* tern_trace_shutdown bounded by a ctx that ends ns from now. */
static int trace_shutdown_within(int64_t ns)
{
    tern_ctx *ctx;
    CHECK_EQ(tern_ctx_with_timeout(NULL, ns, &ctx), 0);
    int rc = tern_trace_shutdown(ctx);
    tern_ctx_free(ctx);
    return rc;
}

static int server_middleware_body(void *arg)
{
    (void)arg;
    app a = {0};
    app_start(&a);
    tern_http_client *c;
    CHECK_EQ(tern_http_client_new(NULL, &c), 0);
    char body[256];
    bool tr = true;

    /* log lines inside the request carry its ids: the hook tern_trace_init installs */
    int pfd[2];
    CHECK(pipe(pfd) == 0);
    CHECK(fcntl(pfd[0], F_SETFL, O_NONBLOCK) == 0);
    CHECK_EQ(tern_log_init(&(tern_log_options){.fd = pfd[1]}), 0);
    CHECK_EQ(tern_trace_init(&(tern_trace_options){.no_export = true}), 0);

    static const char *const with_tp[] = {"traceparent", TP, "tracestate", "congo=t61", NULL};
    memset(&seen, 0, sizeof seen);
    seen.log_line = true;
    CHECK_EQ(app_get(c, a.sv.url, "/users/42", with_tp, body, sizeof body, &tr), 200);
    seen.log_line = false;
    tern_log_info("outside", TERN_LOG_INT("n", 2));
    CHECK_EQ(tern_log_flush(NULL), 0);
    char logs[4096];
    ssize_t ln = read(pfd[0], logs, sizeof logs - 1);
    CHECK(ln > 0);
    logs[ln] = 0;
    char want[128];
    snprintf(want, sizeof want, "\"msg\":\"in handler\",\"trace_id\":\"%s\",\"span_id\":\"%s\"",
             seen.trace_id, seen.span_id);
    if (!strstr(logs, want))
        fprintf(stderr, "logs: %s\nwanted: %s\n", logs, want);
    CHECK(strstr(logs, want));
    char *outside = strstr(logs, "\"outside\"");
    CHECK(outside && !strstr(outside, "trace_id"));
    CHECK_EQ(trace_shutdown_within(TERN_SEC), 0);
    tern_log_shutdown();
    close(pfd[0]);
    close(pfd[1]);

    CHECK(strcmp(seen.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736") == 0);
    CHECK(seen.has_parent);
    CHECK(strcmp(seen.parent_id, "00f067aa0ba902b7") == 0);
    CHECK(strcmp(seen.span_id, "00f067aa0ba902b7") != 0);
    CHECK(seen.recording);
    CHECK(strcmp(seen.tracestate, "congo=t61") == 0);
    CHECK(seen.log_ids_match);
    CHECK(seen.after_cleared);
    CHECK(!tr);                 /* no traceresponse: a documented choice */

    /* an unsampled caller: ids continue, nothing recorded */
    static const char *const unsampled[] = {
        "traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", NULL};
    CHECK_EQ(app_get(c, a.sv.url, "/users/1", unsampled, body, sizeof body, NULL), 200);
    CHECK(strcmp(seen.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736") == 0);
    CHECK(!seen.recording);

    /* no traceparent, then a malformed one: a new trace each time */
    CHECK_EQ(app_get(c, a.sv.url, "/users/42", NULL, body, sizeof body, NULL), 200);
    CHECK(!seen.has_parent);
    CHECK(is_hex(seen.trace_id, 32));
    CHECK(strcmp(seen.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736") != 0);
    char first[33];
    strcpy(first, seen.trace_id);
    static const char *const bad_tp[] = {
        "traceparent", "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", NULL};
    CHECK_EQ(app_get(c, a.sv.url, "/users/42", bad_tp, body, sizeof body, NULL), 200);
    CHECK(!seen.has_parent);
    CHECK(strcmp(seen.trace_id, first) != 0);
    CHECK(seen.recording);
    CHECK(seen.tracestate[0] == 0);

    tern_http_client_free(c);
    app_stop(&a);
    return 0;
}

static void server_middleware_extracts(void) { run_test(server_middleware_body, NULL); }

static int client_injection_body(void *arg)
{
    (void)arg;
    app a = {0};
    app_start(&a);
    tern_http_client *c;
    CHECK_EQ(tern_http_client_new(NULL, &c), 0);

    tern_trace_span_context remote;
    CHECK_EQ(tern_trace_parse_traceparent(TP, &remote), 0);
    CHECK_EQ(tern_trace_parse_tracestate("rojo=1", &remote), 0);
    tern_trace_span *parent;
    CHECK_EQ(tern_trace_span_start("caller", TERN_TRACE_KIND_INTERNAL, &remote, &parent), 0);

    char url[128];
    snprintf(url, sizeof url, "%s/echo", a.sv.url);
    /* a stale traceparent of the caller's is replaced, not duplicated */
    static const char *const hdrs[] = {"X-A", "1", "traceparent", "junk", NULL};
    tern_ctx *ctx;
    CHECK_EQ(tern_trace_ctx_with_span(NULL, parent, &ctx), 0);
    tern_http_client_request req = {.url = url, .headers = hdrs};
    tern_http_client_response *resp;
    CHECK_EQ(tern_trace_http_client_do(c, NULL, &req, &resp, ctx), 0);   /* parent from ctx */
    CHECK_EQ(tern_http_client_response_status(resp), 200);
    const char *body;
    size_t n;
    CHECK_EQ(tern_http_client_response_body(resp, 4096, &body, &n), 0);
    char got[256];
    snprintf(got, sizeof got, "%s", body);
    tern_http_client_response_free(resp);

    char *bar = strchr(got, '|');
    CHECK(bar);
    *bar = 0;
    CHECK(strcmp(bar + 1, "rojo=1") == 0);
    tern_trace_span_context sc;
    CHECK_EQ(tern_trace_parse_traceparent(got, &sc), 0);
    CHECK(memcmp(sc.trace_id, remote.trace_id, 16) == 0);
    CHECK(memcmp(sc.span_id, remote.span_id, 8) != 0);                              /* the client span */
    CHECK(memcmp(sc.span_id, tern_trace_span_context_of(parent)->span_id, 8) != 0);
    CHECK_EQ(sc.flags, TERN_TRACE_FLAG_SAMPLED);
    /* and the server continued that trace: its parent is the client span */
    CHECK(strcmp(seen.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736") == 0);
    char hex[17];
    tern_trace_hex(sc.span_id, 8, hex);
    CHECK(strcmp(seen.parent_id, hex) == 0);

    tern_ctx_free(ctx);
    tern_trace_span_end(parent);
    tern_trace_span_free(parent);
    tern_http_client_free(c);
    app_stop(&a);
    return 0;
}

static void client_injects_traceparent(void) { run_test(client_injection_body, NULL); }

/* ---- the OTLP receiver ---------------------------------------------------------------------- */

static struct {
    pthread_mutex_t mu;
    json_t *docs;               /* every ExportTraceServiceRequest received */
    int bad_content_type;
    int64_t delay;              /* ns to sleep before answering */
} rx = {.mu = PTHREAD_MUTEX_INITIALIZER};

static int traces_h(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)arg;
    const char *ct = tern_http_req_header(r, "Content-Type");
    json_t *doc;
    CHECK_EQ(tern_http_req_json(r, &doc), 0);
    pthread_mutex_lock(&rx.mu);
    if (!ct || strcmp(ct, "application/json") != 0)
        rx.bad_content_type++;
    json_array_append_new(rx.docs, doc);
    int64_t delay = rx.delay;
    pthread_mutex_unlock(&rx.mu);
    if (delay)
        tern_sleep(delay);
    return tern_http_resp_send(w, 200, "application/json", "{}", 2);
}

typedef struct receiver {
    tern_http_router *rt;
    server sv;
} receiver;

static void receiver_start(receiver *rv, int64_t delay)
{
    rx.docs = json_array();
    rx.bad_content_type = 0;
    rx.delay = delay;
    CHECK_EQ(tern_http_router_new(NULL, &rv->rt), 0);
    CHECK_EQ(tern_http_router_handle(rv->rt, "POST", "/v1/traces", traces_h, NULL), 0);
    server_start(&rv->sv, &(tern_http_link){tern_http_router_serve, rv->rt}, 1);
}

static void receiver_stop(receiver *rv)
{
    server_stop(&rv->sv);
    tern_http_router_free(rv->rt);
    json_decref(rx.docs);
    rx.docs = NULL;
}

/* Every span received, in order (borrowed from rx.docs). */
static size_t received_spans(json_t **out, size_t max)
{
    size_t n = 0, i, j, k;
    json_t *doc, *rs, *ss, *sp;
    json_array_foreach(rx.docs, i, doc) {
        json_array_foreach(json_object_get(doc, "resourceSpans"), j, rs) {
            json_array_foreach(json_object_get(rs, "scopeSpans"), k, ss) {
                size_t m;
                json_array_foreach(json_object_get(ss, "spans"), m, sp) {
                    if (n < max)
                        out[n] = sp;
                    n++;
                }
            }
        }
    }
    return n;
}

static json_t *span_named(const char *name)
{
    json_t *all[64];
    size_t n = received_spans(all, 64);
    for (size_t i = 0; i < n && i < 64; i++)
        if (strcmp(json_string_value(json_object_get(all[i], "name")), name) == 0)
            return all[i];
    fprintf(stderr, "no span named %s\n", name);
    CHECK(0);
    return NULL;
}

/* The attribute's value object ({"stringValue": ...}), or NULL. */
static json_t *attr_of(json_t *attrs, const char *key)
{
    size_t i;
    json_t *a;
    json_array_foreach(attrs, i, a) {
        CHECK_EQ(json_object_size(a), 2);
        if (strcmp(json_string_value(json_object_get(a, "key")), key) == 0)
            return json_object_get(a, "value");
    }
    return NULL;
}

static void check_str_attr(json_t *attrs, const char *key, const char *want)
{
    json_t *v = attr_of(attrs, key);
    CHECK(v && json_object_size(v) == 1);
    CHECK(json_is_string(json_object_get(v, "stringValue")));
    CHECK(strcmp(json_string_value(json_object_get(v, "stringValue")), want) == 0);
}

/* intValue is an int64, so a decimal string in proto3 JSON */
static void check_int_attr(json_t *attrs, const char *key, const char *want)
{
    json_t *v = attr_of(attrs, key);
    CHECK(v && json_object_size(v) == 1);
    CHECK(json_is_string(json_object_get(v, "intValue")));
    CHECK(strcmp(json_string_value(json_object_get(v, "intValue")), want) == 0);
}

static bool is_digits(const char *s)
{
    if (!s || !*s)
        return false;
    for (; *s; s++)
        if (!isdigit((unsigned char)*s))
            return false;
    return true;
}

static const char *str_field(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    CHECK(json_is_string(v));
    return json_string_value(v);
}

/* The fields every span has, with their JSON types. */
static void check_span_shape(json_t *sp, int kind)
{
    CHECK(is_hex(str_field(sp, "traceId"), 32));
    CHECK(is_hex(str_field(sp, "spanId"), 16));
    CHECK(json_is_integer(json_object_get(sp, "kind")));
    CHECK_EQ(json_integer_value(json_object_get(sp, "kind")), kind);
    const char *start = str_field(sp, "startTimeUnixNano"), *end = str_field(sp, "endTimeUnixNano");
    CHECK(is_digits(start) && is_digits(end));
    unsigned long long s = strtoull(start, NULL, 10), e = strtoull(end, NULL, 10);
    CHECK(s > 1700000000ULL * 1000000000ULL);       /* Unix ns, not monotonic */
    CHECK(e >= s);
    CHECK(json_is_array(json_object_get(sp, "attributes")));
    json_t *st = json_object_get(sp, "status");
    CHECK(json_is_object(st) && json_is_integer(json_object_get(st, "code")));
}

static int exporter_body(void *arg)
{
    (void)arg;
    receiver rv = {0};
    receiver_start(&rv, 0);
    char ep[80];
    snprintf(ep, sizeof ep, "%s/", rv.sv.url);     /* a trailing '/' is tolerated */
    setenv("OTEL_SERVICE_NAME", "trace-test", 1);
    setenv("OTEL_EXPORTER_OTLP_ENDPOINT", ep, 1);
    unsetenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
    setenv("OTEL_TRACES_SAMPLER", "parentbased_always_off", 1);   /* roots off, parents rule */
    struct tern_trace_stats before, after;
    CHECK_EQ(tern_trace_stats(&before), 0);
    CHECK_EQ(tern_trace_init(&(tern_trace_options){.batch_delay = 20 * TERN_MS}), 0);
    CHECK_EQ(tern_trace_init(NULL), -EALREADY);

    app a = {0};
    app_start(&a);
    tern_http_client *c;
    CHECK_EQ(tern_http_client_new(NULL, &c), 0);
    char body[64];
    static const char *const with_tp[] = {"traceparent", TP, "tracestate", "congo=t61", NULL};
    CHECK_EQ(app_get(c, a.sv.url, "/users/42", with_tp, body, sizeof body, NULL), 200);
    CHECK_EQ(app_get(c, a.sv.url, "/fail", with_tp, body, sizeof body, NULL), 503);
    CHECK_EQ(app_get(c, a.sv.url, "/users/7", NULL, body, sizeof body, NULL), 200);   /* root: off */

    /* a traced call: caller -> CLIENT span -> the server's span */
    tern_trace_span_context remote;
    CHECK_EQ(tern_trace_parse_traceparent(TP, &remote), 0);
    tern_trace_span *caller;
    CHECK_EQ(tern_trace_span_start("caller", TERN_TRACE_KIND_INTERNAL, &remote, &caller), 0);
    char url[128];
    snprintf(url, sizeof url, "%s/echo", a.sv.url);
    tern_http_client_request req = {.url = url};
    tern_http_client_response *resp;
    CHECK_EQ(tern_trace_http_client_do(c, caller, &req, &resp, NULL), 0);
    const char *rb;
    size_t rn;
    CHECK_EQ(tern_http_client_response_body(resp, 4096, &rb, &rn), 0);
    tern_http_client_response_free(resp);
    /* and one that fails: the CLIENT span says so */
    /* with a password, which url.full must not show (issue 15) */
    tern_http_client_request refused = {.method = "DELETE", .url = "http://admin:s3cret@127.0.0.1:1/x"};
    CHECK(tern_trace_http_client_do(c, caller, &refused, &resp, NULL) < 0);
    tern_trace_span_end(caller);
    tern_trace_span_free(caller);
    tern_http_client_free(c);
    app_stop(&a);
    CHECK_EQ(trace_shutdown_within(2 * TERN_SEC), 0);
    CHECK_EQ(trace_shutdown_within(TERN_SEC), -ESRCH);
    CHECK_EQ(tern_trace_stats(&after), 0);
    CHECK_EQ(after.exported - before.exported, 7);
    CHECK_EQ(after.dropped - before.dropped, 0);
    CHECK_EQ(after.failed - before.failed, 0);
    CHECK_EQ(after.queued, 0);

    CHECK_EQ(rx.bad_content_type, 0);
    json_t *all[8];
    CHECK_EQ(received_spans(all, 8), 7);
    json_t *doc = json_array_get(rx.docs, 0);
    CHECK_EQ(json_object_size(doc), 1);
    json_t *rs = json_array_get(json_object_get(doc, "resourceSpans"), 0);
    check_str_attr(json_object_get(json_object_get(rs, "resource"), "attributes"), "service.name",
                   "trace-test");
    json_t *ss = json_array_get(json_object_get(rs, "scopeSpans"), 0);
    CHECK(strcmp(str_field(json_object_get(ss, "scope"), "name"), "tern") == 0);

    json_t *srv = span_named("GET /users/:id");
    check_span_shape(srv, 2);
    CHECK(strcmp(str_field(srv, "traceId"), "4bf92f3577b34da6a3ce929d0e0e4736") == 0);
    CHECK(strcmp(str_field(srv, "parentSpanId"), "00f067aa0ba902b7") == 0);
    CHECK(strcmp(str_field(srv, "traceState"), "congo=t61") == 0);
    json_t *attrs = json_object_get(srv, "attributes");
    check_str_attr(attrs, "http.request.method", "GET");
    check_str_attr(attrs, "url.path", "/users/42");
    check_str_attr(attrs, "http.route", "/users/:id");
    check_int_attr(attrs, "http.response.status_code", "200");
    CHECK_EQ(json_integer_value(json_object_get(json_object_get(srv, "status"), "code")), 0);

    json_t *db = span_named("db");
    check_span_shape(db, 1);
    CHECK(strcmp(str_field(db, "parentSpanId"), str_field(srv, "spanId")) == 0);
    CHECK(strcmp(str_field(db, "traceId"), str_field(srv, "traceId")) == 0);
    attrs = json_object_get(db, "attributes");
    json_t *d = json_object_get(attr_of(attrs, "db.ms"), "doubleValue");
    CHECK(json_is_real(d) && json_real_value(d) == 2.5);
    CHECK(json_is_true(json_object_get(attr_of(attrs, "db.cached"), "boolValue")));
    check_str_attr(attrs, "db.stmt", "a\"b\\c\x01" "d\xef\xbf\xbd" "e\xc3\xa9");
    CHECK(strcmp(str_field(attr_of(attrs, "db.nan"), "doubleValue"), "NaN") == 0);
    d = json_object_get(attr_of(attrs, "db.tiny"), "doubleValue");
    CHECK(json_is_real(d) && json_real_value(d) == 1e-300);
    CHECK_EQ(json_array_size(attrs), TERN_TRACE_MAX_ATTRS);
    CHECK_EQ(json_integer_value(json_object_get(db, "droppedAttributesCount")), 3);
    CHECK(json_object_get(srv, "droppedAttributesCount") == NULL);  /* none dropped: absent */
    json_t *ev = json_array_get(json_object_get(db, "events"), 0);
    CHECK_EQ(json_array_size(json_object_get(db, "events")), 1);
    CHECK(strcmp(str_field(ev, "name"), "cache miss") == 0);
    CHECK(is_digits(str_field(ev, "timeUnixNano")));
    check_int_attr(json_object_get(ev, "attributes"), "k", "7");
    json_t *st = json_object_get(db, "status");
    CHECK_EQ(json_integer_value(json_object_get(st, "code")), 2);
    CHECK(strcmp(str_field(st, "message"), "db down") == 0);

    json_t *fail = span_named("GET /fail");
    check_span_shape(fail, 2);
    check_int_attr(json_object_get(fail, "attributes"), "http.response.status_code", "503");
    CHECK_EQ(json_integer_value(json_object_get(json_object_get(fail, "status"), "code")), 2);

    json_t *cl = span_named("GET"), *echo = span_named("GET /echo"), *cs = span_named("caller");
    check_span_shape(cl, 3);
    CHECK(strcmp(str_field(cl, "parentSpanId"), str_field(cs, "spanId")) == 0);
    CHECK(strcmp(str_field(echo, "parentSpanId"), str_field(cl, "spanId")) == 0);
    CHECK(strcmp(str_field(echo, "traceId"), "4bf92f3577b34da6a3ce929d0e0e4736") == 0);
    attrs = json_object_get(cl, "attributes");
    check_str_attr(attrs, "http.request.method", "GET");
    check_str_attr(attrs, "url.full", url);
    check_int_attr(attrs, "http.response.status_code", "200");
    json_t *del = span_named("DELETE");
    check_span_shape(del, 3);
    CHECK(attr_of(json_object_get(del, "attributes"), "http.response.status_code") == NULL);
    st = json_object_get(del, "status");
    CHECK_EQ(json_integer_value(json_object_get(st, "code")), 2);
    CHECK(strlen(str_field(st, "message")) > 0);
    check_str_attr(json_object_get(del, "attributes"), "url.full", "http://admin:xxxxx@127.0.0.1:1/x");
    for (size_t i = 0; i < json_array_size(rx.docs); i++) {
        char *text = json_dumps(json_array_get(rx.docs, i), 0);
        CHECK(text && !strstr(text, "s3cret"));
        free(text);
    }

    receiver_stop(&rv);
    unsetenv("OTEL_TRACES_SAMPLER");
    return 0;
}

static void exporter_sends_otlp_json(void) { run_test(exporter_body, NULL); }

static int queue_full_body(void *arg)
{
    (void)arg;
    receiver rv = {0};
    receiver_start(&rv, 0);
    char ep[96];
    snprintf(ep, sizeof ep, "%s/v1/traces", rv.sv.url);
    CHECK_EQ(tern_trace_init(&(tern_trace_options){.endpoint = "ftp://x/v1/traces"}), -EINVAL);
    tern_trace_sampler on = {TERN_TRACE_SAMPLER_ALWAYS_ON, 1};
    /* a batch never fills and the timer is far: the queue only grows */
    CHECK_EQ(tern_trace_init(&(tern_trace_options){.endpoint = ep, .sampler = &on, .queue_size = 4,
                                                   .batch_size = 100, .batch_delay = 10 * TERN_SEC}),
             0);
    struct tern_trace_stats before, mid, after;
    CHECK_EQ(tern_trace_stats(&before), 0);
    for (int i = 0; i < 10; i++) {
        tern_trace_span *s;
        CHECK_EQ(tern_trace_span_start("s", TERN_TRACE_KIND_INTERNAL, NULL, &s), 0);
        CHECK_EQ(tern_trace_span_end(s), 0);
        tern_trace_span_free(s);
    }
    CHECK_EQ(tern_trace_stats(&mid), 0);
    CHECK_EQ(mid.dropped - before.dropped, 6);
    CHECK_EQ(mid.queued, 4);
    CHECK_EQ(trace_shutdown_within(2 * TERN_SEC), 0);   /* flushes */
    CHECK_EQ(tern_trace_stats(&after), 0);
    CHECK_EQ(after.exported - before.exported, 4);
    CHECK_EQ(after.dropped - before.dropped, 6);
    json_t *all[8];
    CHECK_EQ(received_spans(all, 8), 4);
    receiver_stop(&rv);
    return 0;
}

static void exporter_queue_full_drops_counted(void) { run_test(queue_full_body, NULL); }

static int traces_endpoint_body(void *arg)
{
    (void)arg;
    receiver rv = {0};
    receiver_start(&rv, 0);
    char ep[96];
    snprintf(ep, sizeof ep, "%s/v1/traces", rv.sv.url);
    /* the signal's own variable is used as is and wins over the base one */
    setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", ep, 1);
    setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1", 1);
    unsetenv("OTEL_SERVICE_NAME");
    setenv("OTEL_TRACES_SAMPLER", "traceidratio", 1);
    setenv("OTEL_TRACES_SAMPLER_ARG", "0", 1);
    CHECK_EQ(tern_trace_init(&(tern_trace_options){.batch_delay = 10 * TERN_MS}), 0);
    struct tern_trace_stats before, after;
    CHECK_EQ(tern_trace_stats(&before), 0);
    tern_trace_span *s;
    CHECK_EQ(tern_trace_span_start("never", TERN_TRACE_KIND_INTERNAL, NULL, &s), 0);
    CHECK(!tern_trace_span_recording(s));      /* ratio 0 from the environment */
    tern_trace_span_end(s);
    tern_trace_span_free(s);
    tern_trace_span_context remote;
    CHECK_EQ(tern_trace_parse_traceparent(TP, &remote), 0);
    /* traceidratio is not parent-based: the sampled parent does not count */
    CHECK_EQ(tern_trace_span_start("child", TERN_TRACE_KIND_INTERNAL, &remote, &s), 0);
    CHECK(!tern_trace_span_recording(s));
    tern_trace_span_end(s);
    tern_trace_span_free(s);
    setenv("OTEL_TRACES_SAMPLER_ARG", "1", 1);
    CHECK_EQ(trace_shutdown_within(TERN_SEC), 0);
    CHECK_EQ(tern_trace_init(&(tern_trace_options){.batch_delay = 10 * TERN_MS}), 0);
    CHECK_EQ(tern_trace_span_start("kept", TERN_TRACE_KIND_INTERNAL, NULL, &s), 0);
    CHECK(tern_trace_span_recording(s));
    tern_trace_span_end(s);
    tern_trace_span_free(s);
    CHECK_EQ(trace_shutdown_within(2 * TERN_SEC), 0);
    CHECK_EQ(tern_trace_stats(&after), 0);
    CHECK_EQ(after.exported - before.exported, 1);
    json_t *all[4];
    CHECK_EQ(received_spans(all, 4), 1);
    json_t *rs = json_array_get(json_object_get(json_array_get(rx.docs, 0), "resourceSpans"), 0);
    check_str_attr(json_object_get(json_object_get(rs, "resource"), "attributes"), "service.name",
                   "unknown_service");
    receiver_stop(&rv);
    unsetenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
    unsetenv("OTEL_EXPORTER_OTLP_ENDPOINT");
    unsetenv("OTEL_TRACES_SAMPLER");
    unsetenv("OTEL_TRACES_SAMPLER_ARG");
    return 0;
}

static void exporter_env_traces_endpoint_and_sampler(void) { run_test(traces_endpoint_body, NULL); }

/* With nothing queued the exporter waits for the first span, not a tick
 * every batch_delay (20 ms here: ~15 wake-ups in the 300 ms measured),
 * and that span still goes out within its batch delay. */
static int idle_exporter_body(void *arg)
{
    (void)arg;
    receiver rv = {0};
    receiver_start(&rv, 0);
    unsetenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
    setenv("OTEL_EXPORTER_OTLP_ENDPOINT", rv.sv.url, 1);
    unsetenv("OTEL_TRACES_SAMPLER");
    struct tern_trace_stats before, after;
    CHECK_EQ(tern_trace_stats(&before), 0);
    CHECK_EQ(tern_trace_init(&(tern_trace_options){.batch_delay = 20 * TERN_MS}), 0);
    tern_sleep(50 * TERN_MS);                   /* into its wait */
    struct tern_runtime_stats a, b;
    CHECK(tern_runtime_stats(&a, NULL, 0) > 0);
    tern_sleep(300 * TERN_MS);
    CHECK(tern_runtime_stats(&b, NULL, 0) > 0);
    fprintf(stderr, "idle exporter: %llu worker wake-ups in 300 ms\n",
            (unsigned long long)(b.wakeups - a.wakeups));
    /* 1 or 2 here alone (the sleep's own wake-up, sometimes a timer's), 3
     * once under CI's parallel load; the bug this guards against made 15 */
    CHECK(b.wakeups - a.wakeups <= idle_wakeups_allowed(5, 300 * TERN_MS, b.procs));
    tern_trace_span *s;
    CHECK_EQ(tern_trace_span_start("late", TERN_TRACE_KIND_INTERNAL, NULL, &s), 0);
    int64_t t0 = tern_now();
    tern_trace_span_end(s);
    tern_trace_span_free(s);
    do {
        tern_sleep(5 * TERN_MS);
        CHECK_EQ(tern_trace_stats(&after), 0);
    } while (after.exported == before.exported && tern_now() - t0 < 5 * TERN_SEC);
    CHECK_EQ(after.exported - before.exported, 1);
    CHECK(tern_now() - t0 < 2 * TERN_SEC);     /* the batch delay (20 ms) and a POST */
    CHECK_EQ(trace_shutdown_within(2 * TERN_SEC), 0);
    receiver_stop(&rv);
    unsetenv("OTEL_EXPORTER_OTLP_ENDPOINT");
    return 0;
}

static void exporter_sleeps_while_nothing_is_queued(void) { run_test(idle_exporter_body, NULL); }

static int slow_receiver_body(void *arg)
{
    (void)arg;
    receiver rv = {0};
    receiver_start(&rv, 500 * TERN_MS);
    char ep[96];
    snprintf(ep, sizeof ep, "%s/v1/traces", rv.sv.url);
    tern_trace_sampler on = {TERN_TRACE_SAMPLER_ALWAYS_ON, 1};
    CHECK_EQ(tern_trace_init(&(tern_trace_options){.endpoint = ep, .sampler = &on, .queue_size = 8,
                                                   .batch_size = 1, .batch_delay = 5 * TERN_MS,
                                                   .export_timeout = 2 * TERN_SEC}),
             0);
    struct tern_trace_stats before, after;
    CHECK_EQ(tern_trace_stats(&before), 0);
    app a = {0};
    app_start(&a);
    tern_http_client *c;
    CHECK_EQ(tern_http_client_new(NULL, &c), 0);
    char body[64];
    int64_t t0 = tern_now(), worst = 0;
    for (int i = 0; i < 20; i++) {
        int64_t t = tern_now();
        CHECK_EQ(app_get(c, a.sv.url, "/users/1", NULL, body, sizeof body, NULL), 200);
        if (tern_now() - t > worst)
            worst = tern_now() - t;
    }
    int64_t total = tern_now() - t0;
    fprintf(stderr, "   20 requests in %lld us, the slowest %lld us\n", (long long)(total / 1000),
            (long long)(worst / 1000));
    /* one export alone takes 500 ms */
    CHECK(worst < 200 * TERN_MS);
    CHECK(total < 450 * TERN_MS);
    tern_http_client_free(c);
    app_stop(&a);
    struct tern_trace_stats mid;
    CHECK_EQ(tern_trace_stats(&mid), 0);
    CHECK(mid.dropped > before.dropped);
    /* the POST in flight finishes; what waits behind it misses the deadline */
    CHECK_EQ(trace_shutdown_within(100 * TERN_MS), -ETIMEDOUT);
    CHECK_EQ(tern_trace_stats(&after), 0);
    /* every recorded span is accounted for: 20 server spans + 20 "db" */
    CHECK_EQ((after.exported - before.exported) + (after.failed - before.failed) +
                 (after.dropped - before.dropped),
             40);
    receiver_stop(&rv);
    return 0;
}

static void export_never_blocks_requests(void) { run_test(slow_receiver_body, NULL); }

/* tern_trace_hex against snprintf for every byte value, at every length
 * and offset the eight-at-a-time path and its tail can meet. */
static void hex_matches_printf(void)
{
    uint8_t in[40];
    for (size_t start = 0; start < 256; start += 37) {
        for (size_t i = 0; i < sizeof in; i++)
            in[i] = (uint8_t)(start + i * 7);
        for (size_t off = 0; off < 4; off++)
            for (size_t n = 0; n + off <= 36; n++) {
                char got[80], want[80];
                memset(got, 'X', sizeof got);
                tern_trace_hex(in + off, n, got);
                for (size_t i = 0; i < n; i++)
                    snprintf(want + 2 * i, 3, "%02x", in[off + i]);
                want[2 * n] = 0;
                CHECK(strcmp(got, want) == 0);
                CHECK(got[2 * n + 1] == 'X');   /* nothing written past the NUL */
            }
    }
    for (int b = 0; b < 256; b++) {
        uint8_t one[8] = {(uint8_t)b, (uint8_t)b, (uint8_t)b, (uint8_t)b,
                          (uint8_t)b, (uint8_t)b, (uint8_t)b, (uint8_t)b};
        char got[17], want[3];
        tern_trace_hex(one, 8, got);
        snprintf(want, sizeof want, "%02x", b);
        for (int i = 0; i < 8; i++)
            CHECK(got[2 * i] == want[0] && got[2 * i + 1] == want[1]);
    }
}

TESTS(T(hex_matches_printf), T(traceparent_valid), T(traceparent_invalid_each_form), T(tracestate_bounds),
      T(sampler_parse_names), T(sampler_ratio_boundary_on_low_bytes),
      T(sampler_parent_based_honours_flag), T(span_lifecycle), T(span_names_short_long_and_cut), T(span_ids_differ_after_fork),
      T(span_unsampled_parent_propagates),
      T(current_span_is_per_coroutine), T(server_middleware_extracts),
      T(client_injects_traceparent), T(exporter_sends_otlp_json),
      T(exporter_queue_full_drops_counted), T(exporter_env_traces_endpoint_and_sampler),
      T(export_never_blocks_requests), T(exporter_sleeps_while_nothing_is_queued))
