/*
 * test_http_mw.c - the built-in middleware, each driven through a real
 * server on 127.0.0.1 with raw requests, checking the exact fields and
 * bytes that reach the client.
 */
#include "check.h"

#include <errno.h>
#include <pthread.h>
#include <regex.h>
#include <stdatomic.h>
#include <strings.h>
#include <time.h>
#include <zlib.h>

#include <tern/http.h>
#include <tern/http_mw.h>
#include <tern/log.h>
#include <tern/net.h>

#include "http_raw.h"

/* ---- handlers ------------------------------------------------------------- */

static atomic_int calls;

static int hello(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)r, (void)arg;
    atomic_fetch_add(&calls, 1);
    return tern_http_resp_text(w, 200, "hello");
}

/* ---- request id ----------------------------------------------------------- */

static char seen_id[256];

static int record_id(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)arg;
    const char *id = tern_http_request_id(r);
    snprintf(seen_id, sizeof seen_id, "%s", id ? id : "(null)");
    return tern_http_resp_text(w, 200, "ok");
}

static bool is_hex32(const char *s)
{
    return s && strlen(s) == 32 && strspn(s, "0123456789abcdef") == 32;
}

static int request_id_generated_entry(void *arg)
{
    (void)arg;
    server sv = {0};
    server_start(&sv, (tern_http_link[]){{tern_http_mw_request_id, NULL}, {record_id, NULL}}, 2);
    resp a, b;
    get(sv.addr, "/", NULL, &a);
    CHECK_EQ(a.status, 200);
    CHECK(is_hex32(hdr(&a, "X-Request-Id")));
    CHECK(strcmp(seen_id, hdr(&a, "X-Request-Id")) == 0);
    get(sv.addr, "/", NULL, &b);
    CHECK(is_hex32(hdr(&b, "X-Request-Id")));
    CHECK(strcmp(hdr(&a, "X-Request-Id"), hdr(&b, "X-Request-Id")) != 0);
    resp_free(&a);
    resp_free(&b);
    server_stop(&sv);
    return 0;
}

static void request_id_generated_is_128_bit_hex_and_seen_by_handler(void)
{
    run_test(request_id_generated_entry, NULL);
}

/* ids made on every thread, many of them: no repeats */
static int request_id_unique_entry(void *arg)
{
    (void)arg;
    server sv = {0};
    server_start(&sv, (tern_http_link[]){{tern_http_mw_request_id, NULL}, {hello, NULL}}, 2);
    enum { N = 300 };
    static char ids[N][33];
    client *cl = client_dial(sv.addr);
    for (int i = 0; i < N; i++) {
        resp p;
        send_raw(cl, "GET / HTTP/1.1\r\nHost: t\r\n\r\n");
        read_resp(cl, &p, false);
        CHECK(is_hex32(hdr(&p, "X-Request-Id")));
        memcpy(ids[i], hdr(&p, "X-Request-Id"), 33);
        for (int j = 0; j < i; j++)
            CHECK(strcmp(ids[i], ids[j]) != 0);
        resp_free(&p);
    }
    client_close(cl);
    server_stop(&sv);
    return 0;
}

static void request_id_many_are_distinct(void)
{
    run_test(request_id_unique_entry, NULL);
}

static int request_id_incoming_entry(void *arg)
{
    (void)arg;
    static const tern_http_request_id_options ignore = {.ignore_incoming = true};
    static const tern_http_request_id_options custom = {.header = "X-Trace"};
    server sv = {0}, sv2 = {0}, sv3 = {0};
    server_start(&sv, (tern_http_link[]){{tern_http_mw_request_id, NULL}, {record_id, NULL}}, 2);
    server_start(&sv2,
                 (tern_http_link[]){{tern_http_mw_request_id, (void *)&ignore}, {hello, NULL}}, 2);
    server_start(&sv3,
                 (tern_http_link[]){{tern_http_mw_request_id, (void *)&custom}, {hello, NULL}}, 2);
    resp p;

    get(sv.addr, "/", "X-Request-Id: abc-123_x.y:z+/=\r\n", &p);
    CHECK(strcmp(hdr(&p, "X-Request-Id"), "abc-123_x.y:z+/=") == 0);
    CHECK(strcmp(seen_id, "abc-123_x.y:z+/=") == 0);
    resp_free(&p);

    char req[512], id128[129];
    memset(id128, 'a', 128);
    id128[128] = '\0';
    snprintf(req, sizeof req, "X-Request-Id: %s\r\n", id128);
    get(sv.addr, "/", req, &p);
    CHECK(strcmp(hdr(&p, "X-Request-Id"), id128) == 0);
    resp_free(&p);

    /* refused, so regenerated: too long, a quote, a space, empty */
    const char *bad[] = {"X-Request-Id: a\"b\r\n", "X-Request-Id: a b\r\n", "X-Request-Id: \r\n",
                         "X-Request-Id: {\"x\":1}\r\n", NULL};
    snprintf(req, sizeof req, "X-Request-Id: %sa\r\n", id128);
    get(sv.addr, "/", req, &p);
    CHECK(is_hex32(hdr(&p, "X-Request-Id")));
    resp_free(&p);
    for (int i = 0; bad[i]; i++) {
        get(sv.addr, "/", bad[i], &p);
        CHECK(is_hex32(hdr(&p, "X-Request-Id")));
        CHECK(strcmp(seen_id, hdr(&p, "X-Request-Id")) == 0);
        resp_free(&p);
    }

    get(sv2.addr, "/", "X-Request-Id: abc\r\n", &p);
    CHECK(is_hex32(hdr(&p, "X-Request-Id")));
    resp_free(&p);

    get(sv3.addr, "/", "X-Request-Id: abc\r\nX-Trace: t-1\r\n", &p);
    CHECK(strcmp(hdr(&p, "X-Trace"), "t-1") == 0);
    CHECK(hdr(&p, "X-Request-Id") == NULL);
    resp_free(&p);

    server_stop(&sv);
    server_stop(&sv2);
    server_stop(&sv3);
    return 0;
}

static void request_id_reuses_only_safe_incoming_ids(void)
{
    run_test(request_id_incoming_entry, NULL);
}

/* ---- access log ----------------------------------------------------------- */

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static char log_lines[16][8192];
static int nlog;

static void log_sink(const char *line, size_t len, void *arg)
{
    CHECK(arg == (void *)log_lines);
    pthread_mutex_lock(&log_mu);
    CHECK(nlog < 16 && len < sizeof log_lines[0]);
    memcpy(log_lines[nlog], line, len);
    log_lines[nlog][len] = '\0';
    nlog++;
    pthread_mutex_unlock(&log_mu);
}

/* The i-th line, parsed; it must be one JSON object and one line. */
static json_t *log_line(int i)
{
    pthread_mutex_lock(&log_mu);
    CHECK(i < nlog);
    char *s = log_lines[i];
    pthread_mutex_unlock(&log_mu);
    size_t n = strlen(s);
    CHECK(n > 2 && s[n - 1] == '\n' && memchr(s, '\n', n) == s + n - 1);
    json_error_t err;
    json_t *j = json_loads(s, 0, &err);
    if (!j)
        fprintf(stderr, "not JSON (%s): %s", err.text, s);
    CHECK(j && json_is_object(j));
    return j;
}

static const char *jstr(json_t *j, const char *key)
{
    return json_string_value(json_object_get(j, key));
}

static long long jint(json_t *j, const char *key)
{
    json_t *v = json_object_get(j, key);
    CHECK(json_is_integer(v));
    return json_integer_value(v);
}

static int fail_eio(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)r, (void)arg;
    tern_http_resp_write(w, "half", 4);
    return -EIO;
}

static int sized(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)arg;
    const char *n = tern_http_req_query(r, "n");
    size_t len = n ? (size_t)atol(n) : 0;
    char *b = malloc(len + 1);
    CHECK(b);
    memset(b, 'x', len);
    int rc = tern_http_resp_send(w, 201, "text/plain", b, len);
    free(b);
    return rc;
}

static int access_log_entry(void *arg)
{
    (void)arg;
    static const tern_http_access_log_options lo = {.fn = log_sink, .fn_arg = log_lines};
    server sv = {0}, bad = {0}, plain = {0};
    server_start(&sv, (tern_http_link[]){{tern_http_mw_access_log, (void *)&lo},
                                         {tern_http_mw_request_id, NULL},
                                         {sized, NULL}},
                 3);
    server_start(&bad, (tern_http_link[]){{tern_http_mw_access_log, (void *)&lo},
                                          {tern_http_mw_request_id, NULL},
                                          {fail_eio, NULL}},
                 3);
    server_start(&plain, (tern_http_link[]){{tern_http_mw_access_log, (void *)&lo}, {fail_eio, NULL}},
                 2);
    nlog = 0;
    resp p;
    int64_t t0 = tern_now();
    get(sv.addr, "/a%20b?n=1234&secret=1", "User-Agent: curl/8.0\r\n", &p);
    int64_t took_us = (tern_now() - t0) / TERN_US;
    CHECK_EQ(p.status, 201);
    json_t *j = log_line(0);
    CHECK(strcmp(jstr(j, "method"), "GET") == 0);
    CHECK(strcmp(jstr(j, "proto"), "HTTP/1.1") == 0);
    CHECK(strcmp(jstr(j, "path"), "/a b") == 0);   /* decoded, no query */
    CHECK_EQ(jint(j, "status"), 201);
    CHECK_EQ(jint(j, "bytes"), 1234);
    CHECK(jint(j, "duration_us") >= 0 && jint(j, "duration_us") <= took_us);
    CHECK(strncmp(jstr(j, "remote"), "127.0.0.1:", 10) == 0);
    CHECK(strcmp(jstr(j, "request_id"), hdr(&p, "X-Request-Id")) == 0);
    CHECK(strcmp(jstr(j, "user_agent"), "curl/8.0") == 0);
    CHECK(json_object_get(j, "error") == NULL);
    /* a tern_log line like any other */
    CHECK(strcmp(jstr(j, "level"), "info") == 0);
    CHECK(strcmp(jstr(j, "msg"), "request") == 0);
    regex_t re;
    CHECK_EQ(regcomp(&re, "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z$",
                     REG_EXTENDED | REG_NOSUB),
             0);
    CHECK_EQ(regexec(&re, jstr(j, "time"), 0, NULL, 0), 0);
    regfree(&re);
    /* the logged time is the request's start, within a second of now */
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    struct tm tm = {0};
    CHECK(strptime(jstr(j, "time"), "%Y-%m-%dT%H:%M:%S", &tm));
    CHECK(llabs((long long)(timegm(&tm) - now.tv_sec)) <= 1);
    json_decref(j);
    resp_free(&p);

    /* a handler's error: logged as the 500 the client gets, with why;
     * with a request id and a user agent too, every field is there */
    get(bad.addr, "/x", "User-Agent: curl/8.0\r\n", &p);
    CHECK_EQ(p.status, 500);
    j = log_line(1);
    CHECK_EQ(jint(j, "status"), 500);
    CHECK(strcmp(jstr(j, "error"), tern_strerror(-EIO)) == 0);
    CHECK(strcmp(jstr(j, "user_agent"), "curl/8.0") == 0);
    CHECK_EQ(strlen(jstr(j, "request_id")), 32);
    CHECK(strcmp(jstr(j, "path"), "/x") == 0);
    json_decref(j);
    resp_free(&p);

    /* without a request id middleware or a user agent, neither is written */
    get(plain.addr, "/x", NULL, &p);
    CHECK_EQ(p.status, 500);
    j = log_line(2);
    CHECK(strcmp(jstr(j, "error"), tern_strerror(-EIO)) == 0);
    CHECK(json_object_get(j, "user_agent") == NULL);
    CHECK(json_object_get(j, "request_id") == NULL);
    json_decref(j);
    resp_free(&p);

    server_stop(&sv);
    server_stop(&bad);
    server_stop(&plain);
    return 0;
}

static void access_log_writes_one_json_line_with_every_field(void)
{
    run_test(access_log_entry, NULL);
}

static int access_log_escape_entry(void *arg)
{
    (void)arg;
    static const tern_http_access_log_options lo = {.fn = log_sink, .fn_arg = log_lines};
    server sv = {0};
    server_start(&sv, (tern_http_link[]){{tern_http_mw_access_log, (void *)&lo}, {hello, NULL}}, 2);
    nlog = 0;
    resp p;
    /* quote, backslash, tab, an invalid byte, a valid 2-byte character, an
     * overlong '/' (C0 AF) and a UTF-16 surrogate (ED A0 80) */
    /* (a path that decodes to invalid UTF-8 is refused with 400 before
     * any middleware runs; the header carries the invalid bytes) */
    get(sv.addr, "/p%0a%22%5c%c3%a9",
        "User-Agent: a\"b\\c\td\xff\xc3\xa9\xc0\xaf\xed\xa0\x80z\r\n", &p);
    CHECK_EQ(p.status, 200);
    json_t *j = log_line(0);
    CHECK(strcmp(jstr(j, "path"), "/p\n\"\\\xc3\xa9") == 0);
    CHECK(strcmp(jstr(j, "user_agent"),
                 "a\"b\\c\td\xef\xbf\xbd\xc3\xa9\xef\xbf\xbd\xef\xbf\xbd"
                 "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbdz") == 0);
    json_decref(j);
    resp_free(&p);

    /* long strings are cut, the line stays whole JSON */
    char ua[3000], req[4000];
    memset(ua, 'u', sizeof ua - 1);
    ua[sizeof ua - 1] = '\0';
    snprintf(req, sizeof req, "User-Agent: %s\r\n", ua);
    get(sv.addr, "/", req, &p);
    j = log_line(1);
    CHECK_EQ(strlen(jstr(j, "user_agent")), 256);
    json_decref(j);
    resp_free(&p);

    /* the bound is on the client's bytes, before escaping: 300 quotes
     * keep 256, escaped as 512 bytes, and the line stays whole JSON */
    memset(ua, '"', 300);
    ua[300] = '\0';
    snprintf(req, sizeof req, "User-Agent: %s\r\n", ua);
    get(sv.addr, "/", req, &p);
    j = log_line(2);
    CHECK_EQ(strlen(jstr(j, "user_agent")), 256);
    json_decref(j);
    resp_free(&p);

    /* a cut never splits a character: 255 bytes and a 2-byte one keep 255 */
    memset(ua, 'u', 255);
    memcpy(ua + 255, "\xc3\xa9tail", 7);
    snprintf(req, sizeof req, "User-Agent: %s\r\n", ua);
    get(sv.addr, "/", req, &p);
    j = log_line(3);
    CHECK_EQ(strlen(jstr(j, "user_agent")), 255);
    json_decref(j);
    resp_free(&p);
    server_stop(&sv);
    return 0;
}

static void access_log_escapes_and_bounds_client_strings(void)
{
    run_test(access_log_escape_entry, NULL);
}

/* With a context hook (the tracing module's, in a service) the access
 * line carries the current trace and span ids; without one it has none. */
static bool fake_ids(tern_log_ids *ids)
{
    ids->trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    ids->span_id = "00f067aa0ba902b7";
    return true;
}

static int access_log_ids_entry(void *arg)
{
    (void)arg;
    static const tern_http_access_log_options lo = {.fn = log_sink, .fn_arg = log_lines};
    server sv = {0};
    server_start(&sv, (tern_http_link[]){{tern_http_mw_access_log, (void *)&lo}, {hello, NULL}}, 2);
    nlog = 0;
    resp p;
    get(sv.addr, "/", NULL, &p);
    resp_free(&p);
    tern_log_set_context_hook(fake_ids);
    get(sv.addr, "/", NULL, &p);
    resp_free(&p);
    tern_log_set_context_hook(NULL);
    json_t *j = log_line(0);
    CHECK(json_object_get(j, "trace_id") == NULL);
    json_decref(j);
    j = log_line(1);
    CHECK(strcmp(jstr(j, "trace_id"), "4bf92f3577b34da6a3ce929d0e0e4736") == 0);
    CHECK(strcmp(jstr(j, "span_id"), "00f067aa0ba902b7") == 0);
    json_decref(j);
    server_stop(&sv);
    return 0;
}

static void access_log_carries_trace_ids_from_the_hook(void)
{
    run_test(access_log_ids_entry, NULL);
}

static int access_log_file_entry(void *arg)
{
    FILE *f = arg;
    tern_http_access_log_options lo = {.out = f};
    server sv = {0};
    server_start(&sv, (tern_http_link[]){{tern_http_mw_access_log, &lo}, {hello, NULL}}, 2);
    resp p;
    for (int i = 0; i < 3; i++) {
        get(sv.addr, "/f", NULL, &p);
        resp_free(&p);
    }
    server_stop(&sv);
    return 0;
}

static void access_log_writes_to_a_file(void)
{
    FILE *f = tmpfile();
    CHECK(f);
    run_test(access_log_file_entry, f);
    CHECK_EQ(fflush(f), 0);
    rewind(f);
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        json_t *j = json_loads(line, 0, NULL);
        CHECK(j);
        CHECK(strcmp(jstr(j, "path"), "/f") == 0);
        CHECK_EQ(jint(j, "status"), 200);
        CHECK_EQ(jint(j, "bytes"), 5);
        json_decref(j);
        n++;
    }
    CHECK_EQ(n, 3);
    fclose(f);
}

/* ---- CORS ------------------------------------------------------------------ */

static const char *const two_origins[] = {"https://a.example", "https://B.example", NULL};

static int cors_list_entry(void *arg)
{
    (void)arg;
    static const tern_http_cors_options o = {
        .origins = two_origins,
        .methods = "GET, PUT",
        .expose_headers = "X-Total",
        .credentials = true,
        .max_age = 600 * TERN_SEC,
    };
    server sv = {0};
    server_start(&sv, (tern_http_link[]){{tern_http_mw_cors, (void *)&o}, {hello, NULL}}, 2);
    resp p;
    atomic_store(&calls, 0);

    /* allowed origin, simple request */
    get(sv.addr, "/", "Origin: https://a.example\r\n", &p);
    CHECK_EQ(p.status, 200);
    CHECK(strcmp(p.body, "hello") == 0);
    CHECK(strcmp(hdr(&p, "Access-Control-Allow-Origin"), "https://a.example") == 0);
    CHECK(strcmp(hdr(&p, "Access-Control-Allow-Credentials"), "true") == 0);
    CHECK(strcmp(hdr(&p, "Access-Control-Expose-Headers"), "X-Total") == 0);
    CHECK_EQ(hdr_count(&p, "Vary", "Origin"), 1);
    CHECK(hdr(&p, "Access-Control-Allow-Methods") == NULL);
    resp_free(&p);
    CHECK_EQ(atomic_load(&calls), 1);

    /* case-insensitive match, echoed as sent */
    get(sv.addr, "/", "Origin: https://b.example\r\n", &p);
    CHECK(strcmp(hdr(&p, "Access-Control-Allow-Origin"), "https://b.example") == 0);
    resp_free(&p);

    /* preflight: answered here */
    fetch(sv.addr,
          "OPTIONS /x HTTP/1.1\r\nHost: t\r\nOrigin: https://a.example\r\n"
          "Access-Control-Request-Method: PUT\r\n"
          "Access-Control-Request-Headers: content-type, x-token\r\n\r\n",
          &p);
    CHECK_EQ(p.status, 204);
    CHECK_EQ(p.body_len, 0);
    CHECK(strcmp(hdr(&p, "Access-Control-Allow-Origin"), "https://a.example") == 0);
    CHECK(strcmp(hdr(&p, "Access-Control-Allow-Methods"), "GET, PUT") == 0);
    CHECK(strcmp(hdr(&p, "Access-Control-Allow-Headers"), "content-type, x-token") == 0);
    CHECK(strcmp(hdr(&p, "Access-Control-Max-Age"), "600") == 0);
    CHECK(strcmp(hdr(&p, "Access-Control-Allow-Credentials"), "true") == 0);
    CHECK(hdr(&p, "Access-Control-Expose-Headers") == NULL);
    CHECK_EQ(hdr_count(&p, "Vary", "Origin"), 1);
    CHECK_EQ(hdr_count(&p, "Vary", "Access-Control-Request-Method"), 1);
    resp_free(&p);
    CHECK_EQ(atomic_load(&calls), 2);

    /* a stranger: no CORS fields, preflight not passed on either */
    get(sv.addr, "/", "Origin: https://evil.example\r\n", &p);
    CHECK_EQ(p.status, 200);
    CHECK(hdr(&p, "Access-Control-Allow-Origin") == NULL);
    CHECK(hdr(&p, "Access-Control-Allow-Credentials") == NULL);
    CHECK_EQ(hdr_count(&p, "Vary", "Origin"), 1);
    resp_free(&p);
    fetch(sv.addr,
          "OPTIONS /x HTTP/1.1\r\nHost: t\r\nOrigin: https://evil.example\r\n"
          "Access-Control-Request-Method: PUT\r\n\r\n",
          &p);
    CHECK_EQ(p.status, 204);
    CHECK(hdr(&p, "Access-Control-Allow-Origin") == NULL);
    CHECK(hdr(&p, "Access-Control-Allow-Methods") == NULL);
    resp_free(&p);
    CHECK_EQ(atomic_load(&calls), 3);

    /* OPTIONS that is no preflight reaches the handler; so does no Origin */
    fetch(sv.addr, "OPTIONS /x HTTP/1.1\r\nHost: t\r\nOrigin: https://a.example\r\n\r\n", &p);
    CHECK_EQ(p.status, 200);
    resp_free(&p);
    get(sv.addr, "/", NULL, &p);
    CHECK_EQ(p.status, 200);
    CHECK(hdr(&p, "Access-Control-Allow-Origin") == NULL);
    CHECK_EQ(hdr_count(&p, "Vary", "Origin"), 1);
    resp_free(&p);
    CHECK_EQ(atomic_load(&calls), 5);
    server_stop(&sv);
    return 0;
}

static void cors_allowed_origins_preflight_and_strangers(void)
{
    run_test(cors_list_entry, NULL);
}

static int cors_any_entry(void *arg)
{
    (void)arg;
    static const tern_http_cors_options cred = {.credentials = true};
    server any = {0}, withcred = {0};
    server_start(&any, (tern_http_link[]){{tern_http_mw_cors, NULL}, {hello, NULL}}, 2);
    server_start(&withcred, (tern_http_link[]){{tern_http_mw_cors, (void *)&cred}, {hello, NULL}},
                 2);
    resp p;
    get(any.addr, "/", "Origin: https://x.example\r\n", &p);
    CHECK(strcmp(hdr(&p, "Access-Control-Allow-Origin"), "*") == 0);
    CHECK(hdr(&p, "Vary") == NULL);
    CHECK(hdr(&p, "Access-Control-Allow-Credentials") == NULL);
    resp_free(&p);
    get(any.addr, "/", NULL, &p);
    CHECK(strcmp(hdr(&p, "Access-Control-Allow-Origin"), "*") == 0);
    CHECK(hdr(&p, "Vary") == NULL);
    resp_free(&p);
    /* defaults: every common method, requested headers echoed, no max age */
    fetch(any.addr,
          "OPTIONS / HTTP/1.1\r\nHost: t\r\nOrigin: https://x.example\r\n"
          "Access-Control-Request-Method: DELETE\r\n\r\n",
          &p);
    CHECK_EQ(p.status, 204);
    CHECK(strcmp(hdr(&p, "Access-Control-Allow-Methods"), "GET, HEAD, POST, PUT, PATCH, DELETE") ==
          0);
    CHECK(hdr(&p, "Access-Control-Allow-Headers") == NULL);
    CHECK(hdr(&p, "Access-Control-Max-Age") == NULL);
    resp_free(&p);

    /* credentials: never "*", the origin is echoed and varies */
    get(withcred.addr, "/", "Origin: https://x.example\r\n", &p);
    CHECK(strcmp(hdr(&p, "Access-Control-Allow-Origin"), "https://x.example") == 0);
    CHECK(strcmp(hdr(&p, "Access-Control-Allow-Credentials"), "true") == 0);
    CHECK_EQ(hdr_count(&p, "Vary", "Origin"), 1);
    resp_free(&p);
    server_stop(&any);
    server_stop(&withcred);
    return 0;
}

static void cors_any_origin_is_star_unless_credentials(void)
{
    run_test(cors_any_entry, NULL);
}

/* ---- gzip ------------------------------------------------------------------ */

/* A body that compresses well, deterministic. */
static char *text_body(size_t n)
{
    char *b = malloc(n + 1);
    CHECK(b);
    for (size_t i = 0; i < n; i++)
        b[i] = "the quick brown fox jumps over the lazy dog\n"[i % 44];
    b[n] = '\0';
    return b;
}

/* A body that does not compress. */
static char *noise_body(size_t n)
{
    char *b = malloc(n + 1);
    CHECK(b);
    uint32_t x = 12345;
    for (size_t i = 0; i < n; i++) {
        x = x * 1103515245 + 12345;
        b[i] = (char)(x >> 24);
    }
    b[n] = '\0';
    return b;
}

typedef struct gz_case {
    const char *type;           /* Content-Type to answer with */
    const char *encoding;       /* Content-Encoding to set, or NULL */
    const char *etag;
    const char *cache_control;
    size_t len;
    bool noise;
    bool stream;                /* flush first: no longer buffered */
    int status;
} gz_case;

static gz_case gz_cases[] = {
    {"text/plain; charset=utf-8", NULL, "\"v1\"", NULL, 4000, false, false, 200},     /* 0 */
    {"image/png", NULL, NULL, NULL, 4000, false, false, 200},                         /* 1 */
    {"text/html", NULL, NULL, NULL, 1023, false, false, 200},                         /* 2 */
    {"text/html", NULL, NULL, NULL, 1024, false, false, 200},                         /* 3 */
    {"text/plain", "br", NULL, NULL, 4000, false, false, 200},                        /* 4 */
    {"text/plain", NULL, NULL, NULL, 4000, true, false, 200},                         /* 5 */
    {"text/plain", NULL, NULL, NULL, 100000, false, true, 200},                       /* 6 */
    {"application/json", NULL, NULL, NULL, 4000, false, false, 200},                  /* 7 */
    {"image/svg+xml", NULL, NULL, NULL, 4000, false, false, 200},                     /* 8 */
    {"application/vnd.api+json", NULL, "W/\"w\"", NULL, 4000, false, false, 200},     /* 9 */
    {"application/javascript", NULL, NULL, NULL, 4000, false, false, 200},            /* 10 */
    {"text/plain", NULL, NULL, "public, no-transform", 4000, false, false, 200},      /* 11 */
    {"text/plain", NULL, NULL, NULL, 4000, false, false, 206},                        /* 12 */
    {"text/plain", NULL, NULL, NULL, 4000, false, false, 404},                        /* 13 */
    {"application/octet-stream", NULL, NULL, NULL, 4000, false, false, 200},          /* 14 */
};

static int gz_handler(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)arg;
    gz_case *c = &gz_cases[atoi(tern_http_req_query(r, "c"))];
    char *b = c->noise ? noise_body(c->len) : text_body(c->len);
    if (c->encoding)
        tern_http_resp_set_header(w, "Content-Encoding", c->encoding);
    if (c->etag)
        tern_http_resp_set_header(w, "ETag", c->etag);
    if (c->cache_control)
        tern_http_resp_set_header(w, "Cache-Control", c->cache_control);
    tern_http_resp_set_header(w, "Content-Type", c->type);
    tern_http_resp_set_status(w, c->status);
    if (c->stream)
        tern_http_resp_flush(w);
    ssize_t n = tern_http_resp_write(w, b, c->len);
    free(b);
    return n < 0 ? (int)n : 0;
}

static char *gunzip(const char *data, size_t len, size_t *out_len)
{
    size_t cap = 1 << 20;
    char *out = malloc(cap);
    CHECK(out);
    z_stream zs = {0};
    CHECK_EQ(inflateInit2(&zs, 16 + 15), Z_OK);   /* gzip only */
    zs.next_in = (Bytef *)data;
    zs.avail_in = (uInt)len;
    zs.next_out = (Bytef *)out;
    zs.avail_out = (uInt)cap;
    CHECK_EQ(inflate(&zs, Z_FINISH), Z_STREAM_END);
    CHECK_EQ(zs.avail_in, 0);
    *out_len = zs.total_out;
    inflateEnd(&zs);
    return out;
}

/* Fetch case c with this Accept-Encoding; check whether it came gzipped
 * and with Vary, and that the bytes are the body's either way. */
static void gz_check(const char *addr, int c, const char *ae, bool want_gzip, bool want_vary)
{
    char path[32], extra[256];
    snprintf(path, sizeof path, "/?c=%d", c);
    snprintf(extra, sizeof extra, "%s%s%s", ae ? "Accept-Encoding: " : "", ae ? ae : "",
             ae ? "\r\n" : "");
    resp p;
    get(addr, path, extra, &p);
    gz_case *k = &gz_cases[c];
    if (p.status != k->status || (hdr(&p, "Content-Encoding") && !k->encoding) != want_gzip ||
        (hdr_count(&p, "Vary", "Accept-Encoding") == 1) != want_vary) {
        fprintf(stderr, "case %d, Accept-Encoding %s: status %d, encoding %s, vary %s\n", c,
                ae ? ae : "(none)", p.status, hdr(&p, "Content-Encoding"), hdr(&p, "Vary"));
        abort();
    }
    char *want = k->noise ? noise_body(k->len) : text_body(k->len);
    if (want_gzip) {
        CHECK(strcmp(hdr(&p, "Content-Encoding"), "gzip") == 0);
        CHECK(p.body_len < k->len);
        CHECK_EQ(atol(hdr(&p, "Content-Length")), p.body_len);
        size_t n;
        char *plain = gunzip(p.body, p.body_len, &n);
        CHECK_EQ(n, k->len);
        CHECK(memcmp(plain, want, n) == 0);
        free(plain);
    } else {
        CHECK_EQ(p.body_len, k->len);
        CHECK(memcmp(p.body, want, k->len) == 0);
    }
    free(want);
    resp_free(&p);
}

static int gzip_entry(void *arg)
{
    (void)arg;
    server sv = {0};
    server_start(&sv, (tern_http_link[]){{tern_http_mw_gzip, NULL}, {gz_handler, NULL}}, 2);
    /* Accept-Encoding and q-values */
    gz_check(sv.addr, 0, "gzip", true, true);
    gz_check(sv.addr, 0, "deflate, gzip;q=0.5, br", true, true);
    gz_check(sv.addr, 0, "GZIP;Q=1.000", true, true);
    gz_check(sv.addr, 0, "x-gzip", true, true);
    gz_check(sv.addr, 0, "gzip;q=0.001", true, true);
    gz_check(sv.addr, 0, "br, *", true, true);
    gz_check(sv.addr, 0, "*;q=0.1", true, true);
    gz_check(sv.addr, 0, NULL, false, true);
    gz_check(sv.addr, 0, "identity", false, true);
    gz_check(sv.addr, 0, "gzip;q=0", false, true);
    gz_check(sv.addr, 0, "gzip;q=0.000, *", false, true);
    gz_check(sv.addr, 0, "*, gzip ; q=0", false, true);
    gz_check(sv.addr, 0, "*;q=0", false, true);
    gz_check(sv.addr, 0, "gzip;q=2", false, true);         /* malformed q refuses */
    gz_check(sv.addr, 0, "gzip;q=1.5", false, true);
    gz_check(sv.addr, 0, "gzipx, xgzip", false, true);
    /* what is compressible */
    gz_check(sv.addr, 1, "gzip", false, false);            /* image/png */
    gz_check(sv.addr, 14, "gzip", false, false);           /* octet-stream */
    gz_check(sv.addr, 2, "gzip", false, false);            /* under min_size */
    gz_check(sv.addr, 3, "gzip", true, true);              /* at min_size */
    gz_check(sv.addr, 4, "gzip", false, false);            /* already encoded */
    gz_check(sv.addr, 5, "gzip", false, true);             /* does not shrink */
    gz_check(sv.addr, 6, "gzip", false, false);            /* streamed */
    gz_check(sv.addr, 7, "gzip", true, true);              /* JSON */
    gz_check(sv.addr, 8, "gzip", true, true);              /* SVG */
    gz_check(sv.addr, 9, "gzip", true, true);              /* +json */
    gz_check(sv.addr, 10, "gzip", true, true);             /* javascript */
    gz_check(sv.addr, 11, "gzip", false, false);           /* no-transform */
    gz_check(sv.addr, 12, "gzip", false, false);           /* 206 */
    gz_check(sv.addr, 13, "gzip", false, false);           /* an error page */

    /* an ETag names the identity bytes: weakened when compressed */
    resp p;
    get(sv.addr, "/?c=0", "Accept-Encoding: gzip\r\n", &p);
    CHECK(strcmp(hdr(&p, "ETag"), "W/\"v1\"") == 0);
    resp_free(&p);
    get(sv.addr, "/?c=0", NULL, &p);
    CHECK(strcmp(hdr(&p, "ETag"), "\"v1\"") == 0);
    resp_free(&p);
    get(sv.addr, "/?c=9", "Accept-Encoding: gzip\r\n", &p);
    CHECK(strcmp(hdr(&p, "ETag"), "W/\"w\"") == 0);
    resp_free(&p);

    /* HEAD: nothing to compress, same fields as identity GET */
    fetch(sv.addr, "HEAD /?c=0 HTTP/1.1\r\nHost: t\r\nAccept-Encoding: gzip\r\n\r\n", &p);
    CHECK_EQ(p.status, 200);
    CHECK(hdr(&p, "Content-Encoding") == NULL);
    resp_free(&p);
    server_stop(&sv);
    return 0;
}

static void gzip_compresses_by_accept_encoding_type_and_size(void)
{
    run_test(gzip_entry, NULL);
}

static int gzip_level_entry(void *arg)
{
    (void)arg;
    static const tern_http_gzip_options fast = {.min_size = 10, .level = 1};
    static const tern_http_gzip_options best = {.min_size = 10, .level = 9};
    server a = {0}, b = {0};
    server_start(&a, (tern_http_link[]){{tern_http_mw_gzip, (void *)&fast}, {gz_handler, NULL}}, 2);
    server_start(&b, (tern_http_link[]){{tern_http_mw_gzip, (void *)&best}, {gz_handler, NULL}}, 2);
    gz_check(a.addr, 2, "gzip", true, true);   /* 1023 bytes: over this min_size */
    gz_check(b.addr, 2, "gzip", true, true);
    resp p, q;
    get(a.addr, "/?c=7", "Accept-Encoding: gzip\r\n", &p);
    get(b.addr, "/?c=7", "Accept-Encoding: gzip\r\n", &q);
    /* the gzip header's XFL byte says which level family compressed it */
    CHECK_EQ((unsigned char)p.body[8], 4);     /* fastest */
    CHECK_EQ((unsigned char)q.body[8], 2);     /* best */
    resp_free(&p);
    resp_free(&q);
    server_stop(&a);
    server_stop(&b);
    return 0;
}

static void gzip_options_set_min_size_and_level(void)
{
    run_test(gzip_level_entry, NULL);
}

typedef struct curl_job {
    char cmd[512];
    int status;
} curl_job;

static int run_cmd(void *arg)
{
    curl_job *j = arg;
    j->status = system(j->cmd);
    return 0;
}

static int gzip_curl_entry(void *arg)
{
    const char *dir = arg;
    server sv = {0};
    server_start(&sv, (tern_http_link[]){{tern_http_mw_gzip, NULL}, {gz_handler, NULL}}, 2);
    curl_job *j = malloc(sizeof *j);
    CHECK(j);
    snprintf(j->cmd, sizeof j->cmd,
             "curl -sS --compressed -D %s/h -o %s/b 'http://%s/?c=0' && "
             "grep -qi '^content-encoding: gzip' %s/h",
             dir, dir, sv.addr, dir);
    CHECK_EQ(tern_blocking(run_cmd, j), 0);
    CHECK_EQ(j->status, 0);
    free(j);
    server_stop(&sv);
    return 0;
}

static void gzip_curl_compressed_gets_the_body(void)
{
    if (system("curl --version >/dev/null 2>&1") != 0) {
        fprintf(stderr, "   skipped: no curl\n");
        return;
    }
    char dir[] = "/tmp/tern-gz-XXXXXX";
    CHECK(mkdtemp(dir));
    run_test(gzip_curl_entry, dir);
    char path[64];
    snprintf(path, sizeof path, "%s/b", dir);
    FILE *f = fopen(path, "rb");
    CHECK(f);
    char *want = text_body(4000), got[8192];
    size_t n = fread(got, 1, sizeof got, f);
    fclose(f);
    CHECK_EQ(n, 4000);
    CHECK(memcmp(got, want, n) == 0);
    free(want);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK_EQ(system(cmd), 0);
}

/* ---- body limit ------------------------------------------------------------ */

static atomic_int body_rc;

static int read_body(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)arg;
    atomic_fetch_add(&calls, 1);
    const char *data;
    size_t len;
    int rc = tern_http_req_body(r, &data, &len);
    atomic_store(&body_rc, rc);
    if (rc == -EMSGSIZE)
        return tern_http_resp_error(w, 413, "too big\n");
    if (rc < 0)
        return rc;
    return tern_http_resp_send(w, 200, "text/plain", data, len);
}

static int body_limit_entry(void *arg)
{
    (void)arg;
    static const tern_http_body_limit_options lim = {.max = 10};
    server sv = {0};
    server_start(&sv,
                 (tern_http_link[]){{tern_http_mw_body_limit, (void *)&lim}, {read_body, NULL}}, 2);
    atomic_store(&calls, 0);
    resp p;
    /* declared too large: 413 before the handler; with Expect the client
     * never gets "100 Continue", so not a byte of the body is asked for */
    client *cl = client_dial(sv.addr);
    send_raw(cl, "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n"
                 "Expect: 100-continue\r\n\r\n");
    read_resp(cl, &p, false);
    CHECK_EQ(p.status, 413);
    CHECK(strcmp(p.body, "413 Content Too Large\n") == 0);
    CHECK_EQ(atomic_load(&calls), 0);
    resp_free(&p);
    client_close(cl);
    /* a client that sent it anyway keeps its connection */
    cl = client_dial(sv.addr);
    send_raw(cl, "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\n0123456789a");
    read_resp(cl, &p, false);
    CHECK_EQ(p.status, 413);
    resp_free(&p);
    send_raw(cl, "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nok");
    read_resp(cl, &p, false);
    CHECK_EQ(p.status, 200);
    CHECK(strcmp(p.body, "ok") == 0);
    resp_free(&p);
    client_close(cl);
    CHECK_EQ(atomic_load(&calls), 1);

    /* at the limit: read */
    fetch(sv.addr, "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n0123456789", &p);
    CHECK_EQ(p.status, 200);
    CHECK(strcmp(p.body, "0123456789") == 0);
    resp_free(&p);
    CHECK_EQ(atomic_load(&calls), 2);

    /* chunked: no declared length, the read stops at the limit */
    fetch(sv.addr,
          "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
          "8\r\n01234567\r\n8\r\n89abcdef\r\n0\r\n\r\n",
          &p);
    CHECK_EQ(p.status, 413);
    CHECK(strcmp(p.body, "too big\n") == 0);
    CHECK_EQ(atomic_load(&body_rc), -EMSGSIZE);
    resp_free(&p);
    CHECK_EQ(atomic_load(&calls), 3);
    server_stop(&sv);
    return 0;
}

static void body_limit_refuses_declared_and_stops_chunked(void)
{
    run_test(body_limit_entry, NULL);
}

/* ---- timeout ----------------------------------------------------------------- */

static atomic_llong seen_deadline;

/* Waits for the request's context; "?self" returns -ETIMEDOUT at once
 * (its own business), "?fast" answers at once, "?flush" starts the body
 * first. */
static int slow(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)arg;
    tern_ctx *ctx = tern_http_req_ctx(r);
    int64_t deadline;
    tern_ctx_deadline(ctx, &deadline);
    atomic_store(&seen_deadline, deadline);
    const char *q = tern_http_req_raw_query(r);
    if (strcmp(q, "self") == 0)
        return -ETIMEDOUT;
    if (strcmp(q, "fast") == 0)
        return tern_http_resp_text(w, 200, "fast");
    tern_http_resp_set_header(w, "Content-Type", "application/json");
    tern_http_resp_write(w, "partial", 7);
    if (strcmp(q, "flush") == 0)
        tern_http_resp_flush(w);
    tern_chan *never;
    CHECK_EQ(tern_chan_new(1, 0, &never), 0);
    char c;
    bool ok;
    int rc = tern_chan_recv(never, &c, &ok, ctx);
    tern_chan_free(never);
    CHECK(rc == -ETIMEDOUT);
    return rc;
}

static int timeout_entry(void *arg)
{
    (void)arg;
    static const tern_http_timeout_options t50 = {.timeout = 50 * TERN_MS};
    static const tern_http_timeout_options msg = {.timeout = 20 * TERN_MS, .message = "busy\n"};
    static const tern_http_timeout_options t10s = {.timeout = 10 * TERN_SEC};
    server sv = {0}, sv2 = {0}, nested = {0};
    server_start(&sv, (tern_http_link[]){{tern_http_mw_timeout, (void *)&t50}, {slow, NULL}}, 2);
    server_start(&sv2, (tern_http_link[]){{tern_http_mw_timeout, (void *)&msg}, {slow, NULL}}, 2);
    /* the outer, shorter deadline fires: the inner passes it through and
     * the outer answers */
    server_start(&nested, (tern_http_link[]){{tern_http_mw_timeout, (void *)&t50},
                                             {tern_http_mw_timeout, (void *)&t10s},
                                             {slow, NULL}},
                 3);
    resp p;
    int64_t t0 = tern_now();
    get(sv.addr, "/", NULL, &p);
    int64_t took = tern_now() - t0;
    CHECK_EQ(p.status, 503);
    CHECK(strcmp(p.body, "503 Service Unavailable\n") == 0);   /* not "partial" */
    CHECK(strncmp(hdr(&p, "Content-Type"), "text/plain", 10) == 0);
    CHECK(took >= 50 * TERN_MS && took < 5 * TERN_SEC);
    int64_t dl = atomic_load(&seen_deadline);
    CHECK(dl != TERN_FOREVER && dl >= t0 + 50 * TERN_MS && dl <= t0 + took);
    resp_free(&p);

    get(sv2.addr, "/", NULL, &p);
    CHECK_EQ(p.status, 503);
    CHECK(strcmp(p.body, "busy\n") == 0);
    resp_free(&p);

    get(sv.addr, "/?fast", NULL, &p);
    CHECK_EQ(p.status, 200);
    CHECK(strcmp(p.body, "fast") == 0);
    resp_free(&p);

    /* -ETIMEDOUT that is not this deadline's goes to the server, which
     * answers it its own way (not with this middleware's 503) */
    get(sv.addr, "/?self", NULL, &p);
    CHECK(p.status >= 400 && p.status != 503);
    CHECK(strcmp(p.body, "503 Service Unavailable\n") != 0);
    resp_free(&p);

    t0 = tern_now();
    get(nested.addr, "/", NULL, &p);
    CHECK_EQ(p.status, 503);
    CHECK(tern_now() - t0 < 5 * TERN_SEC);
    CHECK(strcmp(p.body, "503 Service Unavailable\n") == 0);
    resp_free(&p);

    /* already streaming: too late for a 503; the body is cut short */
    get(sv.addr, "/?flush", NULL, &p);
    CHECK_EQ(p.status, 200);
    CHECK(p.chunked && p.eof);
    CHECK(strcmp(p.body, "partial") == 0);
    resp_free(&p);
    server_stop(&sv);
    server_stop(&sv2);
    server_stop(&nested);
    return 0;
}

static void timeout_answers_503_when_its_deadline_ends_the_handler(void)
{
    run_test(timeout_entry, NULL);
}

/* ---- everything at once ----------------------------------------------------- */

static int stack_entry(void *arg)
{
    (void)arg;
    static const tern_http_access_log_options lo = {.fn = log_sink, .fn_arg = log_lines};
    static const tern_http_timeout_options to = {.timeout = TERN_SEC};
    server sv = {0};
    server_start(&sv, (tern_http_link[]){{tern_http_mw_access_log, (void *)&lo},
                                         {tern_http_mw_request_id, NULL},
                                         {tern_http_mw_cors, NULL},
                                         {tern_http_mw_gzip, NULL},
                                         {tern_http_mw_timeout, (void *)&to},
                                         {gz_handler, NULL}},
                 6);
    nlog = 0;
    resp p;
    get(sv.addr, "/?c=0", "Accept-Encoding: gzip\r\nOrigin: https://o.example\r\n", &p);
    CHECK_EQ(p.status, 200);
    CHECK(strcmp(hdr(&p, "Content-Encoding"), "gzip") == 0);
    CHECK(strcmp(hdr(&p, "Access-Control-Allow-Origin"), "*") == 0);
    CHECK(is_hex32(hdr(&p, "X-Request-Id")));
    json_t *j = log_line(0);
    CHECK(strcmp(jstr(j, "request_id"), hdr(&p, "X-Request-Id")) == 0);
    CHECK_EQ(jint(j, "bytes"), p.body_len);    /* as sent: compressed */
    json_decref(j);
    resp_free(&p);
    server_stop(&sv);
    return 0;
}

static void middleware_compose_in_one_chain(void)
{
    run_test(stack_entry, NULL);
}

TESTS(T(request_id_generated_is_128_bit_hex_and_seen_by_handler), T(request_id_many_are_distinct),
      T(request_id_reuses_only_safe_incoming_ids),
      T(access_log_writes_one_json_line_with_every_field),
      T(access_log_escapes_and_bounds_client_strings), T(access_log_writes_to_a_file),
      T(access_log_carries_trace_ids_from_the_hook),
      T(cors_allowed_origins_preflight_and_strangers),
      T(cors_any_origin_is_star_unless_credentials),
      T(gzip_compresses_by_accept_encoding_type_and_size), T(gzip_options_set_min_size_and_level),
      T(gzip_curl_compressed_gets_the_body), T(body_limit_refuses_declared_and_stops_chunked),
      T(timeout_answers_503_when_its_deadline_ends_the_handler),
      T(middleware_compose_in_one_chain))
