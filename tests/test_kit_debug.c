/*
 * test_kit_debug.c - the /debug endpoints through a real server on
 * 127.0.0.1:0: the coroutine dump, /vars with runtime and published
 * variables, and a CPU profile taken while a coroutine spins, decoded
 * here (gzip, then the protobuf fields pprof relies on) and, where Go is
 * installed, read by `go tool pprof`.
 */
#include "check.h"
#include "http_raw.h"

#include <errno.h>
#include <stdatomic.h>
#include <zlib.h>

#include <tern/debug.h>

/* TSan runs a signal's handler only when the thread reaches one of its
 * safe points (an intercepted call), so a thread spinning in plain code is
 * not sampled, and a late handler walks a stack that has moved on since
 * the registers it is given were saved: no stacks to check there. */
#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#endif
#endif

/* ---- a server, a client and a test body ---------------------------------------- */

/* Serve the /debug routes on sv; the router returned is the caller's to free. */
static tern_http_router *debug_serve(server *sv)
{
    tern_http_router *rt;
    CHECK_EQ(tern_http_router_new(NULL, &rt), 0);
    CHECK_EQ(tern_debug_mount(rt, NULL), 0);
    server_start(sv, &(tern_http_link){tern_http_router_serve, rt}, 1);
    return rt;
}

typedef struct reply {
    int status;
    char type[128];
    char *body;                 /* malloc'd, NUL-terminated */
    size_t len;
} reply;

/* GET base+path with tern's client.  The second profile's 200 ms sleep
 * may sit on the P the spinner holds: an idle P fires it (idle.c's
 * sleep_deadline), so it does not wait for the first profile to end. */
static void debug_get(const char *base, const char *path, reply *out)
{
    tern_http_client *c;
    CHECK_EQ(tern_http_client_new(&(tern_http_client_options){.max_idle_per_host = -1}, &c), 0);
    char url[256];
    snprintf(url, sizeof url, "%s%s", base, path);
    tern_ctx *ctx;
    CHECK_EQ(tern_ctx_with_timeout(NULL, 30 * TERN_SEC, &ctx), 0);
    tern_http_client_response *r;
    CHECK_EQ(tern_http_client_get(c, url, &r, ctx), 0);
    out->status = tern_http_client_response_status(r);
    const char *t = tern_http_client_response_header(r, "Content-Type");
    snprintf(out->type, sizeof out->type, "%s", t ? t : "");
    const char *body;
    CHECK_EQ(tern_http_client_response_body(r, 64 << 20, &body, &out->len), 0);
    CHECK(out->body = malloc(out->len + 1));
    memcpy(out->body, body, out->len);
    out->body[out->len] = '\0';
    tern_http_client_response_free(r);
    tern_ctx_free(ctx);
    tern_http_client_free(c);
}

/* A test body without the long-run monitor (the profile test spins on purpose). */
static void run_debug_test(tern_fn *fn, void *arg)
{
    run_test_opts(fn, arg, &(tern_run_options){.procs = 2, .monitor_threshold = -1});
}

/* ---- /coroutines ----------------------------------------------------------------- */

static tern_chan *hold;

static int sleeper(void *arg)
{
    (void)arg;
    int v;
    bool ok;
    tern_chan_recv(hold, &v, &ok, NULL);
    return 0;
}

static int coroutines_body(void *arg)
{
    (void)arg;
    CHECK_EQ(tern_chan_new(sizeof(int), 0, &hold), 0);
    CHECK_EQ(tern_go_opts(sleeper, NULL, &(tern_go_options){.name = "sleeper-7f3a"}, NULL), 0);
    tern_sleep(10 * TERN_MS);
    server sv = {0};
    tern_http_router *router = debug_serve(&sv);
    reply rp;
    debug_get(sv.url, "/debug/coroutines", &rp);
    CHECK_EQ(rp.status, 200);
    CHECK(!strncmp(rp.type, "text/plain", 10));
    CHECK(strstr(rp.body, "sleeper-7f3a"));
    CHECK(strstr(rp.body, "test"));     /* the body's own coroutine */
    free(rp.body);
    tern_chan_close(hold);
    server_stop(&sv);
    tern_http_router_free(router);
    tern_sleep(10 * TERN_MS);
    tern_chan_free(hold);
    return 0;
}

static void debug_coroutines_dumps_every_coroutine(void)
{
    run_debug_test(coroutines_body, NULL);
}

/* ---- /vars ----------------------------------------------------------------------------- */

static json_t *var_answer(void *arg)
{
    return json_integer(*(int *)arg);
}

static json_t *var_absent(void *arg)
{
    (void)arg;
    return NULL;
}

static int answer = 42;

static int vars_body(void *arg)
{
    (void)arg;
    CHECK_EQ(tern_debug_publish("answer", var_answer, &answer), 0);
    CHECK_EQ(tern_debug_publish("absent", var_absent, NULL), 0);
    server sv = {0};
    tern_http_router *router = debug_serve(&sv);
    reply rp;
    debug_get(sv.url, "/debug/vars", &rp);
    CHECK_EQ(rp.status, 200);
    CHECK(!strncmp(rp.type, "application/json", 16));
    json_error_t err;
    json_t *v = json_loads(rp.body, 0, &err);
    CHECK(v && json_is_object(v));
    CHECK_EQ(json_integer_value(json_object_get(v, "answer")), 42);
    CHECK(!json_object_get(v, "absent"));
    json_t *rt = json_object_get(v, "runtime");
    CHECK(json_is_object(rt));
    CHECK_EQ(json_integer_value(json_object_get(rt, "procs")), 2);
    CHECK(json_integer_value(json_object_get(rt, "coroutines")) >= 3);
    CHECK(json_integer_value(json_object_get(rt, "switches")) > 0);
    CHECK(json_is_string(json_object_get(rt, "stack_guard")));
    CHECK(json_is_integer(json_object_get(rt, "blocked_syscalls")));
    CHECK(json_is_integer(json_object_get(rt, "monitor_ticks")));
    json_t *csp = json_object_get(v, "csp");
    CHECK(json_is_object(csp));
    CHECK(json_integer_value(json_object_get(csp, "chans")) >= 0);
    CHECK(json_is_integer(json_object_get(csp, "contexts")));
    CHECK(json_is_integer(json_object_get(csp, "timers")));
    CHECK(json_is_integer(json_object_get(csp, "pools")));
    json_t *per = json_object_get(rt, "per_proc");
    CHECK_EQ(json_array_size(per), 2);
    CHECK(json_is_integer(json_object_get(json_array_get(per, 1), "switches")));
    json_decref(v);
    free(rp.body);

    /* Values are read at each request. */
    answer = 43;
    debug_get(sv.url, "/debug/vars", &rp);
    CHECK(strstr(rp.body, "\"answer\": 43") || strstr(rp.body, "\"answer\":43"));
    free(rp.body);

    CHECK_EQ(tern_debug_unpublish("answer"), 0);
    CHECK_EQ(tern_debug_unpublish("absent"), 0);
    debug_get(sv.url, "/debug/vars", &rp);
    CHECK(!strstr(rp.body, "\"answer\""));
    free(rp.body);
    server_stop(&sv);
    tern_http_router_free(router);
    return 0;
}

static void debug_vars_shows_runtime_and_published_variables(void)
{
    run_debug_test(vars_body, NULL);
}

static void debug_publish_rejects_duplicates_and_reserved_names(void)
{
    CHECK_EQ(tern_debug_publish("x", var_answer, &answer), 0);
    CHECK_EQ(tern_debug_publish("x", var_answer, &answer), -EEXIST);
    CHECK_EQ(tern_debug_publish("runtime", var_answer, &answer), -EEXIST);
    CHECK_EQ(tern_debug_publish("csp", var_answer, &answer), -EEXIST);
    CHECK_EQ(tern_debug_publish("", var_answer, &answer), -EINVAL);
    CHECK_EQ(tern_debug_publish("y", NULL, NULL), -EINVAL);
    CHECK_EQ(tern_debug_unpublish("x"), 0);
    CHECK_EQ(tern_debug_unpublish("x"), -ENOENT);
    /* Outside a runtime "runtime" is empty, not an error. */
    json_t *v;
    CHECK_EQ(tern_debug_vars_json(&v), 0);
    CHECK(v);
    CHECK_EQ(json_object_size(json_object_get(v, "runtime")), 0);
    json_decref(v);
}

static void debug_mount_rejects_bad_prefixes(void)
{
    tern_http_router *rt;
    CHECK_EQ(tern_http_router_new(NULL, &rt), 0);
    CHECK_EQ(tern_debug_mount(rt, "debug"), -EINVAL);
    CHECK_EQ(tern_debug_mount(rt, "/debug/"), -EINVAL);
    CHECK_EQ(tern_debug_mount(rt, "/internal/debug"), 0);
    CHECK_EQ(tern_debug_mount(rt, "/internal/debug"), -EEXIST);
    tern_http_router_free(rt);
}

/* ---- /pprof/profile ------------------------------------------------------------------ */

static atomic_bool spin_stop;
static atomic_ulong spin_count;

/* Where the profile must find the CPU going. */
__attribute__((noinline)) static unsigned long spin_here(unsigned long x)
{
    for (int i = 0; i < 1000; i++)
        x = x * 6364136223846793005UL + 1442695040888963407UL;
    return x;
}

/* Half its time in spin_here, half in libc's rand_r: a symbol dladdr
 * names, so the profile carries Functions as well as bare addresses. */
static int spinner(void *arg)
{
    (void)arg;
    unsigned long x = 1;
    unsigned seed = 1;
    while (!atomic_load_explicit(&spin_stop, memory_order_relaxed)) {
        x = spin_here(x);
        for (int i = 0; i < 1000; i++)
            x += (unsigned long)rand_r(&seed);
    }
    atomic_store(&spin_count, x);
    return 0;
}

typedef struct prof_run {
    reply main, second, bad;
    const char *url;
    tern_waitgroup wg;
} prof_run;

static int second_profile(void *arg)
{
    prof_run *pr = arg;
    tern_sleep(200 * TERN_MS);
    debug_get(pr->url, "/debug/pprof/profile?seconds=1", &pr->second);
    tern_waitgroup_done(&pr->wg);
    return 0;
}

static int profile_body(void *arg)
{
    prof_run *pr = arg;
    server sv = {0};
    tern_http_router *router = debug_serve(&sv);
    pr->url = sv.url;
    debug_get(sv.url, "/debug/pprof/profile?seconds=0", &pr->bad);
    CHECK_EQ(pr->bad.status, 400);
    free(pr->bad.body);
    debug_get(sv.url, "/debug/pprof/profile?seconds=x", &pr->bad);
    CHECK_EQ(pr->bad.status, 400);
    free(pr->bad.body);

    atomic_store(&spin_stop, false);
    CHECK_EQ(tern_go_opts(spinner, NULL, &(tern_go_options){.name = "spinner"}, NULL), 0);
    tern_waitgroup_add(&pr->wg, 1);
    CHECK_EQ(tern_go_opts(second_profile, pr, &(tern_go_options){.stack_size = 1 << 20}, NULL), 0);
    debug_get(sv.url, "/debug/pprof/profile?seconds=1", &pr->main);
    atomic_store(&spin_stop, true);
    tern_waitgroup_wait(&pr->wg, NULL);
    server_stop(&sv);
    tern_http_router_free(router);
    return 0;
}

/* A protobuf reader over one message. */
typedef struct pb {
    const uint8_t *p, *end;
} pb;

static uint64_t pb_varint(pb *b)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        CHECK(b->p < b->end);
        uint8_t c = *b->p++;
        v |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80))
            return v;
    }
    CHECK(!"varint too long");
    return 0;
}

/* The next field: its number and wire type; a length-delimited field's
 * bytes in *sub, a varint's value in *v.  false at the end. */
static bool pb_next(pb *b, unsigned *field, pb *sub, uint64_t *v)
{
    if (b->p >= b->end)
        return false;
    uint64_t key = pb_varint(b);
    *field = (unsigned)(key >> 3);
    switch (key & 7) {
    case 0:
        *v = pb_varint(b);
        return true;
    case 2: {
        uint64_t n = pb_varint(b);
        CHECK(n <= (uint64_t)(b->end - b->p));
        *sub = (pb){b->p, b->p + n};
        b->p += n;
        return true;
    }
    default:
        CHECK(!"unexpected wire type");
        return false;
    }
}

#define MAX_STRINGS 4096

typedef struct decoded {
    char *strings[MAX_STRINGS];
    size_t nstrings;
    uint64_t sample_type[2][2];     /* type, unit string indexes */
    size_t nsample_types;
    size_t nsamples, nlocations, nmappings, nfunctions;
    uint64_t max_location_ref;
    int64_t cpu_ns;                 /* sum of the second values */
    uint64_t period, period_type[2], duration;
    bool exe_mapped;
} decoded;

static void value_type(pb m, uint64_t out[2])
{
    unsigned f;
    pb sub;
    uint64_t v;
    while (pb_next(&m, &f, &sub, &v))
        if (f == 1 || f == 2)
            out[f - 1] = v;
}

static void decode(const uint8_t *data, size_t len, decoded *d)
{
    pb m = {data, data + len};
    unsigned f;
    pb sub;
    uint64_t v;
    while (pb_next(&m, &f, &sub, &v)) {
        switch (f) {
        case 1:
            CHECK(d->nsample_types < 2);
            value_type(sub, d->sample_type[d->nsample_types++]);
            break;
        case 2: {
            d->nsamples++;
            unsigned sf;
            pb ssub;
            uint64_t sv;
            int nvalues = 0;
            while (pb_next(&sub, &sf, &ssub, &sv)) {
                if (sf == 1) {
                    while (ssub.p < ssub.end) {
                        uint64_t id = pb_varint(&ssub);
                        CHECK(id > 0);
                        if (id > d->max_location_ref)
                            d->max_location_ref = id;
                    }
                } else if (sf == 2) {
                    while (ssub.p < ssub.end) {
                        uint64_t x = pb_varint(&ssub);
                        if (nvalues++ == 1)
                            d->cpu_ns += (int64_t)x;
                    }
                }
            }
            CHECK_EQ(nvalues, 2);
            break;
        }
        case 3:
            d->nmappings++;
            break;
        case 4:
            d->nlocations++;
            break;
        case 5:
            d->nfunctions++;
            break;
        case 6:
            CHECK(d->nstrings < MAX_STRINGS);
            CHECK(d->strings[d->nstrings] = strndup((const char *)sub.p, (size_t)(sub.end - sub.p)));
            d->nstrings++;
            break;
        case 10:
            d->duration = v;
            break;
        case 11:
            value_type(sub, d->period_type);
            break;
        case 12:
            d->period = v;
            break;
        }
    }
}

static uint8_t *gunzip(const char *in, size_t n, size_t *out_len)
{
    z_stream z = {0};
    CHECK_EQ(inflateInit2(&z, 15 + 16), Z_OK);
    size_t cap = 1 << 20, len = 0;
    uint8_t *out = malloc(cap);
    CHECK(out);
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)n;
    int zr;
    do {
        if (cap - len < 65536) {
            cap *= 2;
            CHECK(out = realloc(out, cap));
        }
        z.next_out = out + len;
        z.avail_out = (uInt)(cap - len);
        zr = inflate(&z, Z_NO_FLUSH);
        CHECK(zr == Z_OK || zr == Z_STREAM_END);
        len = cap - z.avail_out;
    } while (zr != Z_STREAM_END);
    inflateEnd(&z);
    *out_len = len;
    return out;
}

static void debug_profile_is_pprof_readable_and_sees_the_spinner(void)
{
#ifdef UNDER_TSAN
    fprintf(stderr, "   skipped: SIGPROF sampling is not reliable under TSan\n");
    (void)profile_body, (void)gunzip, (void)decode;
    return;
#else
    prof_run *pr = calloc(1, sizeof *pr);
    CHECK(pr);
    run_debug_test(profile_body, pr);
    CHECK_EQ(pr->second.status, 409);
    free(pr->second.body);
    CHECK_EQ(pr->main.status, 200);
    CHECK(!strcmp(pr->main.type, "application/octet-stream"));
    CHECK(pr->main.len > 2 && (uint8_t)pr->main.body[0] == 0x1f &&
          (uint8_t)pr->main.body[1] == 0x8b);

    size_t raw_len;
    uint8_t *raw = gunzip(pr->main.body, pr->main.len, &raw_len);
    decoded *d = calloc(1, sizeof *d);
    CHECK(d);
    decode(raw, raw_len, d);
    CHECK(d->nstrings > 4);
    CHECK(!strcmp(d->strings[0], ""));
    CHECK_EQ(d->nsample_types, 2);
    CHECK(!strcmp(d->strings[d->sample_type[0][0]], "samples"));
    CHECK(!strcmp(d->strings[d->sample_type[0][1]], "count"));
    CHECK(!strcmp(d->strings[d->sample_type[1][0]], "cpu"));
    CHECK(!strcmp(d->strings[d->sample_type[1][1]], "nanoseconds"));
    CHECK(!strcmp(d->strings[d->period_type[0]], "cpu"));
    CHECK(!strcmp(d->strings[d->period_type[1]], "nanoseconds"));
    CHECK_EQ(d->period, 10 * TERN_MS);
    CHECK(d->duration >= 1 * TERN_SEC);
    /* One spinning coroutine for a second at 100 Hz: about 100 samples. */
    fprintf(stderr, "   %zu samples, %zu locations, %zu mappings, %zu functions\n", d->nsamples,
            d->nlocations, d->nmappings, d->nfunctions);
    CHECK(d->nsamples >= 10);     /* lenient: the CPUs are shared */
    CHECK_EQ(d->cpu_ns, (int64_t)d->nsamples * 10 * TERN_MS);
    CHECK(d->nlocations > 0);
    CHECK(d->max_location_ref <= d->nlocations);
    CHECK(d->nmappings > 0);
    char exe[4096];
    ssize_t el = readlink("/proc/self/exe", exe, sizeof exe - 1);
    CHECK(el > 0);
    exe[el] = '\0';
    bool exe_named = false;
    for (size_t i = 0; i < d->nstrings; i++)
        exe_named |= !strcmp(d->strings[i], exe);
    CHECK(exe_named);
    bool rand_named = false;
    for (size_t i = 0; i < d->nstrings; i++)
        rand_named |= !strcmp(d->strings[i], "rand_r");
    CHECK(rand_named);
    /* the test's own static functions, which dladdr cannot name: from the
     * executable's symbol table (gcc may add a suffix, spin_here.lto_priv.0) */
    bool own_named = false;
    for (size_t i = 0; i < d->nstrings; i++)
        own_named |= !strncmp(d->strings[i], "spin_here", 9) || !strncmp(d->strings[i], "spinner", 7);
    CHECK(own_named);
    CHECK(d->nfunctions >= 1);

    /* Go's own reader, where Go is installed: it must accept the profile
     * and, symbolizing from this binary, find the spinning function. */
    if (system("command -v go >/dev/null 2>&1") == 0) {
        char path[] = "/tmp/tern-profile-XXXXXX";
        int fd = mkstemp(path);
        CHECK(fd >= 0);
        CHECK_EQ(write(fd, pr->main.body, pr->main.len), (ssize_t)pr->main.len);
        close(fd);
        char cmd[8192];
        snprintf(cmd, sizeof cmd, "HOME=${HOME:-/tmp} go tool pprof -top '%s' '%s' 2>&1", exe,
                 path);
        FILE *p = popen(cmd, "r");
        CHECK(p);
        char *out = calloc(1, 1 << 20);
        CHECK(out);
        size_t n = fread(out, 1, (1 << 20) - 1, p);
        out[n] = '\0';
        int st = pclose(p);
        fprintf(stderr, "   go tool pprof -top (exit %d):\n%.2000s\n", st, out);
        CHECK_EQ(st, 0);
        /* our code named from the binary (which of the two functions
         * takes the samples depends on the compiler: clang makes
         * spin_here's loop cheap enough to vanish from -top) */
        CHECK(strstr(out, "spin_here") || strstr(out, "spinner"));
        CHECK(strstr(out, "rand_r"));
        free(out);
        unlink(path);
    } else {
        fprintf(stderr, "   go not installed: pprof check skipped\n");
    }
    for (size_t i = 0; i < d->nstrings; i++)
        free(d->strings[i]);
    free(d);
    free(raw);
    free(pr->main.body);
    free(pr);
#endif
}

/* ---- the handlers and the profiler called directly ------------------------------- */

static int debug_by_path(tern_http_req *r, tern_http_resp *w, void *arg)
{
    const char *p = tern_http_req_path(r);
    if (!strcmp(p, "/c"))
        return tern_debug_coroutines(r, w, arg);
    if (!strcmp(p, "/v"))
        return tern_debug_vars(r, w, arg);
    if (!strcmp(p, "/p"))
        return tern_debug_pprof_profile(r, w, arg);
    return tern_http_resp_error(w, 404, NULL);
}

#ifndef UNDER_TSAN
typedef struct holder {
    int rc;
    void *data;
    size_t len;
    tern_waitgroup wg;
} holder;

/* Hold the profiler for 500 ms (retrying while the prober's own tiny
 * profiles hold it). */
static int hold_profiler(void *arg)
{
    holder *h = arg;
    while ((h->rc = tern_debug_cpu_profile(500 * TERN_MS, &h->data, &h->len, NULL)) == -EBUSY)
        tern_sleep(TERN_MS);
    tern_waitgroup_done(&h->wg);
    return 0;
}
#endif

static int direct_body(void *arg)
{
    (void)arg;
    server sv = {0};
    server_start(&sv, &(tern_http_link){debug_by_path, NULL}, 1);
    resp rp;

    get(sv.addr, "/c", NULL, &rp);
    CHECK_EQ(rp.status, 200);
    CHECK(!strcmp(must(&rp, "Content-Type"), "text/plain; charset=utf-8"));
    CHECK(!strcmp(must(&rp, "Cache-Control"), "no-store"));
    CHECK(strstr(rp.body, "test"));         /* the body's own coroutine */
    resp_free(&rp);

    CHECK_EQ(tern_debug_publish("direct", var_answer, &answer), 0);
    get(sv.addr, "/v", NULL, &rp);
    CHECK_EQ(rp.status, 200);
    CHECK(!strcmp(must(&rp, "Content-Type"), "application/json"));
    CHECK(!strcmp(must(&rp, "Cache-Control"), "no-store"));
    json_error_t err;
    json_t *v = json_loads(rp.body, 0, &err);
    CHECK(v && json_is_object(v));
    CHECK_EQ(json_integer_value(json_object_get(v, "direct")), answer);
    CHECK_EQ(json_integer_value(json_object_get(json_object_get(v, "runtime"), "procs")), 2);
    json_decref(v);
    resp_free(&rp);
    CHECK_EQ(tern_debug_unpublish("direct"), 0);
    fetch(sv.addr, "HEAD /v HTTP/1.1\r\nHost: t\r\n\r\n", &rp);
    CHECK_EQ(rp.status, 200);
    CHECK(atoi(must(&rp, "Content-Length")) > 2);
    CHECK_EQ(rp.body_len, 0);
    resp_free(&rp);

    /* ?seconds: an integer 1..3600, nothing else (answered before any profiling) */
    const char *bad[] = {"/p?seconds=0", "/p?seconds=3601", "/p?seconds=-1", "/p?seconds=",
                         "/p?seconds=1x", "/p?seconds=%201", "/p?seconds=+1",
                         "/p?seconds=99999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        get(sv.addr, bad[i], NULL, &rp);
        if (rp.status != 400)
            fprintf(stderr, "%s: %d\n", bad[i], rp.status);
        CHECK_EQ(rp.status, 400);
        CHECK(!strcmp(rp.body, "seconds must be an integer from 1 to 3600\n"));
        resp_free(&rp);
    }

    /* tern_debug_cpu_profile: bad durations, and nothing is left running */
    void *data = (void *)1;
    size_t len = 7;
    CHECK_EQ(tern_debug_cpu_profile(0, &data, &len, NULL), -EINVAL);
    CHECK_EQ(tern_debug_cpu_profile(-TERN_SEC, &data, &len, NULL), -EINVAL);
    CHECK(data == NULL && len == 0);
#ifndef UNDER_TSAN
    /* a short profile: gzipped profile.proto with pprof's fields */
    int64_t t0 = tern_now();
    CHECK_EQ(tern_debug_cpu_profile(50 * TERN_MS, &data, &len, NULL), 0);
    CHECK(tern_now() - t0 >= 50 * TERN_MS);
    CHECK(data && len > 2 && ((uint8_t *)data)[0] == 0x1f && ((uint8_t *)data)[1] == 0x8b);
    size_t raw_len;
    uint8_t *raw = gunzip(data, len, &raw_len);
    decoded *d = calloc(1, sizeof *d);
    CHECK(d);
    decode(raw, raw_len, d);
    CHECK_EQ(d->nsample_types, 2);
    CHECK(!strcmp(d->strings[d->sample_type[1][0]], "cpu"));
    CHECK_EQ(d->period, TERN_SEC / TERN_DEBUG_PROFILE_HZ);
    CHECK(d->duration >= 50 * TERN_MS && d->duration < 50 * TERN_MS + 5 * TERN_SEC);
    CHECK_EQ(d->cpu_ns, (int64_t)d->nsamples * 10 * TERN_MS);
    for (size_t i = 0; i < d->nstrings; i++)
        free(d->strings[i]);
    free(d);
    free(raw);
    free(data);

    /* one at a time: -EBUSY to a second caller, 409 from the handler */
    holder h = {.wg = TERN_WAITGROUP_INIT};
    tern_waitgroup_add(&h.wg, 1);
    CHECK_EQ(tern_go(hold_profiler, &h), 0);
    int rc;
    int64_t until = tern_now() + 2 * TERN_SEC;
    while ((rc = tern_debug_cpu_profile(1, &data, &len, NULL)) == 0 && tern_now() < until) {
        free(data);                     /* ours ran first: try again */
        tern_sleep(TERN_MS);
    }
    CHECK_EQ(rc, -EBUSY);               /* the holder's is running now */
    get(sv.addr, "/p?seconds=1", NULL, &rp);
    CHECK_EQ(rp.status, 409);
    CHECK(!strcmp(rp.body, "a CPU profile is already running\n"));
    resp_free(&rp);
    tern_waitgroup_wait(&h.wg, NULL);
    CHECK_EQ(h.rc, 0);
    CHECK(h.len > 2 && ((uint8_t *)h.data)[0] == 0x1f);
    free(h.data);
    /* and free again once it is done */
    CHECK_EQ(tern_debug_cpu_profile(1, &data, &len, NULL), 0);
    free(data);

    /* A ctx that ends first ends the profile at once, with its error and
     * no profile, and frees the profiler for the next. */
    tern_ctx *soon;
    CHECK_EQ(tern_ctx_with_timeout(NULL, 100 * TERN_MS, &soon), 0);
    t0 = tern_now();
    data = (void *)1;
    CHECK_EQ(tern_debug_cpu_profile(10 * TERN_SEC, &data, &len, soon), -ETIMEDOUT);
    CHECK(tern_now() - t0 >= 90 * TERN_MS);
    CHECK(tern_now() - t0 < 2 * TERN_SEC);
    CHECK(data == NULL && len == 0);
    tern_ctx_free(soon);
    tern_ctx *gone;
    CHECK_EQ(tern_ctx_with_cancel(NULL, &gone), 0);
    tern_ctx_cancel(gone);
    CHECK_EQ(tern_debug_cpu_profile(10 * TERN_SEC, &data, &len, gone), -ECANCELED);
    tern_ctx_free(gone);
    CHECK_EQ(tern_debug_cpu_profile(1, &data, &len, NULL), 0);
    free(data);
#endif
    server_stop(&sv);
    return 0;
}

static void debug_handlers_and_profiler_called_directly(void)
{
    run_debug_test(direct_body, NULL);
}

TESTS(T(debug_coroutines_dumps_every_coroutine),
      T(debug_vars_shows_runtime_and_published_variables),
      T(debug_publish_rejects_duplicates_and_reserved_names),
      T(debug_mount_rejects_bad_prefixes),
      T(debug_profile_is_pprof_readable_and_sees_the_spinner),
      T(debug_handlers_and_profiler_called_directly))
