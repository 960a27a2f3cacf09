/*
 * test_http_file.c - tern_http_resp_file and tern_http_static_dir through a
 * real server: types, validators and 304s, single ranges and 416, HEAD,
 * sendfile of large files, and a static tree that no path, escape or
 * symlink can leave (with openat2, and with its realpath fallback under a
 * seccomp filter that makes openat2 ENOSYS).
 */
#include "check.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdatomic.h>
#include <stddef.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>

#include <tern/http.h>
#include <tern/http_mw.h>
#include <tern/http_router.h>
#include <tern/net.h>

#include "http_raw.h"

/* ---- the tree served -------------------------------------------------------- */

static char base[64];           /* tmp dir: root/ inside, secret.txt beside it */
static char root[80];

static void put_file(const char *rel, const void *data, size_t len)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    FILE *f = fopen(path, "wb");
    CHECK(f);
    CHECK_EQ(fwrite(data, 1, len, f), len);
    CHECK_EQ(fclose(f), 0);
}

static void put_str(const char *rel, const char *s)
{
    put_file(rel, s, strlen(s));
}

static void under(char *out, size_t n, const char *rel)
{
    snprintf(out, n, "%s/%s", root, rel);
}

#define BIG (1 << 20)

static unsigned char big_byte(size_t i)
{
    return (unsigned char)(i * 7 % 251);
}

static void tree_make(void)
{
    snprintf(base, sizeof base, "/tmp/tern-file-XXXXXX");
    CHECK(mkdtemp(base));
    snprintf(root, sizeof root, "%s/root", base);
    CHECK_EQ(mkdir(root, 0755), 0);
    char p[256], q[256];
    snprintf(p, sizeof p, "%s/secret.txt", base);
    FILE *f = fopen(p, "w");
    CHECK(f && fputs("SECRET", f) >= 0 && fclose(f) == 0);

    put_str("a.txt", "hello, world\n");
    put_str("page.html", "<p>hi</p>");
    put_str("style.CSS", "p{}");
    put_str("app.js", "1");
    put_str("x.wasm", "w");
    put_str("data.json", "{}");
    put_str("noext", "n");
    put_str("data.unknown", "u");
    put_str("zero.txt", "");
    put_str("..hidden", "dots");
    put_str("a b.txt", "space");
    unsigned char *b = malloc(BIG);
    CHECK(b);
    for (size_t i = 0; i < BIG; i++)
        b[i] = big_byte(i);
    put_file("big.bin", b, BIG);
    free(b);
    under(p, sizeof p, "sub");
    CHECK_EQ(mkdir(p, 0755), 0);
    put_str("sub/index.html", "<h1>sub</h1>");
    put_str("sub/b.css", "b{}");
    under(p, sizeof p, "empty");
    CHECK_EQ(mkdir(p, 0755), 0);
    under(p, sizeof p, "fifo");
    CHECK_EQ(mkfifo(p, 0644), 0);
    /* symlinks: out by absolute path, out of a directory, out by "..",
     * and one that stays inside */
    under(p, sizeof p, "link_out");
    CHECK_EQ(symlink("/etc/passwd", p), 0);
    under(p, sizeof p, "link_dir");
    CHECK_EQ(symlink("/etc", p), 0);
    under(p, sizeof p, "rel_out");
    CHECK_EQ(symlink("../secret.txt", p), 0);
    under(p, sizeof p, "sub/up_in");
    CHECK_EQ(symlink("../a.txt", p), 0);
    under(p, sizeof p, "link_in");
    snprintf(q, sizeof q, "a.txt");
    CHECK_EQ(symlink(q, p), 0);
}

static void tree_remove(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", base);
    CHECK_EQ(system(cmd), 0);
}

/* ---- the routes --------------------------------------------------------------- */

/* /f?p=<name under root>: tern_http_resp_file */
static int file_handler(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)arg;
    const char *name = tern_http_req_query(r, "p");
    CHECK(name);
    char *path = tern_http_req_alloc(r, strlen(root) + strlen(name) + 2);
    CHECK(path);
    sprintf(path, "%s/%s", root, name);
    return tern_http_resp_file(w, r, path);
}

static tern_http_static_options static_opts;
static const tern_http_gzip_options gz_all = {.min_size = 1};

static tern_http_router *routes(void)
{
    static_opts = (tern_http_static_options){.root = root};
    tern_http_router *rt;
    CHECK_EQ(tern_http_router_new(NULL, &rt), 0);
    CHECK_EQ(tern_http_router_handle(rt, "GET", "/f", file_handler, NULL), 0);
    CHECK_EQ(tern_http_router_handle(rt, "*", "/static/*path", tern_http_static_dir, &static_opts),
             0);
    tern_http_group *g;
    CHECK_EQ(tern_http_group_new(tern_http_router_root(rt), "/gz", &g), 0);
    CHECK_EQ(tern_http_group_use(g, tern_http_mw_gzip, (void *)&gz_all), 0);
    CHECK_EQ(tern_http_group_handle(g, "GET", "/*path", tern_http_static_dir, &static_opts), 0);
    return rt;
}

typedef struct fixture {
    server sv;
    tern_http_router *rt;
} fixture;

static void fixture_start(fixture *fx)
{
    memset(fx, 0, sizeof *fx);
    fx->rt = routes();
    server_start(&fx->sv, &(tern_http_link){tern_http_router_serve, fx->rt}, 1);
}

static void fixture_stop(fixture *fx)
{
    server_stop(&fx->sv);
    tern_http_router_free(fx->rt);
}

/* IMF-fixdate, independent of the library's own formatting */
static void http_date(time_t t, char out[64])
{
    static const char *d[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *m[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                              "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(out, 64, "%s, %02d %s %d %02d:%02d:%02d GMT", d[tm.tm_wday], tm.tm_mday, m[tm.tm_mon],
             tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

static struct stat stat_of(const char *rel)
{
    char p[256];
    under(p, sizeof p, rel);
    struct stat st;
    CHECK_EQ(stat(p, &st), 0);
    return st;
}

/* ---- tern_http_resp_file ------------------------------------------------------- */

static int file_basic_entry(void *arg)
{
    (void)arg;
    fixture fx;
    fixture_start(&fx);
    resp p;
    get(fx.sv.addr, "/f?p=a.txt", NULL, &p);
    CHECK_EQ(p.status, 200);
    CHECK(strcmp(p.body, "hello, world\n") == 0);
    CHECK(strcmp(hdr(&p, "Content-Length"), "13") == 0);
    CHECK(strcmp(hdr(&p, "Content-Type"), "text/plain; charset=utf-8") == 0);
    CHECK(strcmp(hdr(&p, "Accept-Ranges"), "bytes") == 0);
    struct stat st = stat_of("a.txt");
    char want[128];
    http_date(st.st_mtim.tv_sec, want);
    CHECK(strcmp(hdr(&p, "Last-Modified"), want) == 0);
    snprintf(want, sizeof want, "W/\"d-%llx\"",
             (unsigned long long)st.st_mtim.tv_sec * 1000000000ull +
                 (unsigned long long)st.st_mtim.tv_nsec);
    CHECK(strcmp(hdr(&p, "ETag"), want) == 0);
    resp_free(&p);

    /* a megabyte through sendfile, byte for byte */
    get(fx.sv.addr, "/f?p=big.bin", NULL, &p);
    CHECK_EQ(p.status, 200);
    CHECK_EQ(p.body_len, BIG);
    CHECK(strcmp(hdr(&p, "Content-Type"), "application/octet-stream") == 0);
    for (size_t i = 0; i < BIG; i++)
        CHECK_EQ((unsigned char)p.body[i], big_byte(i));
    resp_free(&p);

    get(fx.sv.addr, "/f?p=zero.txt", NULL, &p);
    CHECK_EQ(p.status, 200);
    CHECK(strcmp(hdr(&p, "Content-Length"), "0") == 0);
    CHECK_EQ(p.body_len, 0);
    resp_free(&p);

    /* absent, a directory, a FIFO (opened without blocking, then refused) */
    get(fx.sv.addr, "/f?p=nope.txt", NULL, &p);
    CHECK_EQ(p.status, 404);
    resp_free(&p);
    get(fx.sv.addr, "/f?p=a.txt/x", NULL, &p);
    CHECK_EQ(p.status, 404);
    resp_free(&p);
    get(fx.sv.addr, "/f?p=sub", NULL, &p);
    CHECK_EQ(p.status, 403);
    resp_free(&p);
    get(fx.sv.addr, "/f?p=fifo", NULL, &p);
    CHECK_EQ(p.status, 403);
    resp_free(&p);
    fixture_stop(&fx);
    return 0;
}

static void file_serves_body_type_and_validators(void)
{
    run_test(file_basic_entry, NULL);
}

static int file_types_entry(void *arg)
{
    (void)arg;
    fixture fx;
    fixture_start(&fx);
    static const char *cases[][2] = {
        {"page.html", "text/html; charset=utf-8"},
        {"style.CSS", "text/css; charset=utf-8"},
        {"app.js", "text/javascript; charset=utf-8"},
        {"x.wasm", "application/wasm"},
        {"data.json", "application/json"},
        {"noext", "application/octet-stream"},
        {"data.unknown", "application/octet-stream"},
        {"..hidden", "application/octet-stream"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[64];
        snprintf(path, sizeof path, "/f?p=%s", cases[i][0]);
        resp p;
        get(fx.sv.addr, path, NULL, &p);
        CHECK_EQ(p.status, 200);
        if (strcmp(hdr(&p, "Content-Type"), cases[i][1]) != 0) {
            fprintf(stderr, "%s: %s\n", cases[i][0], hdr(&p, "Content-Type"));
            abort();
        }
        resp_free(&p);
    }
    fixture_stop(&fx);
    return 0;
}

static void file_content_type_by_extension(void)
{
    run_test(file_types_entry, NULL);
}

/* GET /f?p=a.txt with these extra fields: the status */
static int status_with(const char *addr, const char *extra, resp *keep)
{
    resp p;
    get(addr, "/f?p=a.txt", extra, &p);
    int st = p.status;
    if (st == 304 || st == 412)
        CHECK(p.body_len == 0 || st == 412);
    if (st == 304) {
        CHECK(hdr(&p, "Content-Length") == NULL);
        CHECK(hdr(&p, "ETag") != NULL);
    }
    if (keep)
        *keep = p;
    else
        resp_free(&p);
    return st;
}

static int file_conditional_entry(void *arg)
{
    (void)arg;
    fixture fx;
    fixture_start(&fx);
    const char *a = fx.sv.addr;
    resp p;
    get(a, "/f?p=a.txt", NULL, &p);
    char etag[128], lm[128], x[512];
    snprintf(etag, sizeof etag, "%s", must(&p, "ETag"));
    snprintf(lm, sizeof lm, "%s", must(&p, "Last-Modified"));
    resp_free(&p);
    time_t mtime = stat_of("a.txt").st_mtim.tv_sec;
    char before[64], after[64];
    http_date(mtime - 10, before);
    http_date(mtime + 10, after);

    snprintf(x, sizeof x, "If-None-Match: %s\r\n", etag);
    CHECK_EQ(status_with(a, x, &p), 304);
    CHECK(strcmp(hdr(&p, "ETag"), etag) == 0);
    CHECK(strcmp(hdr(&p, "Last-Modified"), lm) == 0);
    resp_free(&p);
    /* weak comparison: the tag without W/ matches; a list; "*" */
    snprintf(x, sizeof x, "If-None-Match: %s\r\n", etag + 2);
    CHECK_EQ(status_with(a, x, NULL), 304);
    snprintf(x, sizeof x, "If-None-Match: \"a,b\", W/\"zz\" ,%s\r\n", etag);
    CHECK_EQ(status_with(a, x, NULL), 304);
    CHECK_EQ(status_with(a, "If-None-Match: *\r\n", NULL), 304);
    CHECK_EQ(status_with(a, "If-None-Match: W/\"d-1\", \"x\"\r\n", NULL), 200);
    CHECK_EQ(status_with(a, "If-None-Match: garbage\r\n", NULL), 200);

    snprintf(x, sizeof x, "If-Modified-Since: %s\r\n", lm);
    CHECK_EQ(status_with(a, x, NULL), 304);
    snprintf(x, sizeof x, "If-Modified-Since: %s\r\n", after);
    CHECK_EQ(status_with(a, x, NULL), 304);
    snprintf(x, sizeof x, "If-Modified-Since: %s\r\n", before);
    CHECK_EQ(status_with(a, x, NULL), 200);
    CHECK_EQ(status_with(a, "If-Modified-Since: yesterday\r\n", NULL), 200);
    /* If-None-Match decides alone when both are sent */
    snprintf(x, sizeof x, "If-None-Match: \"other\"\r\nIf-Modified-Since: %s\r\n", lm);
    CHECK_EQ(status_with(a, x, NULL), 200);

    /* preconditions: a weak tag never matches If-Match; only "*" */
    snprintf(x, sizeof x, "If-Match: %s\r\n", etag);
    CHECK_EQ(status_with(a, x, NULL), 412);
    CHECK_EQ(status_with(a, "If-Match: *\r\n", NULL), 200);
    snprintf(x, sizeof x, "If-Unmodified-Since: %s\r\n", before);
    CHECK_EQ(status_with(a, x, NULL), 412);
    snprintf(x, sizeof x, "If-Unmodified-Since: %s\r\n", lm);
    CHECK_EQ(status_with(a, x, NULL), 200);
    fixture_stop(&fx);
    return 0;
}

static void file_conditional_requests(void)
{
    run_test(file_conditional_entry, NULL);
}

/* GET with a Range: check status, Content-Range and the exact bytes */
static void range_check(const char *addr, const char *file, const char *range, int want_status,
                        const char *want_cr, size_t off, size_t len)
{
    char path[64], x[256];
    snprintf(path, sizeof path, "/f?p=%s", file);
    snprintf(x, sizeof x, "Range: %s\r\n", range);
    resp p;
    get(addr, path, x, &p);
    const char *cr = hdr(&p, "Content-Range");
    if (p.status != want_status || (want_cr ? !cr || strcmp(cr, want_cr) : cr != NULL)) {
        fprintf(stderr, "Range %s on %s: status %d, Content-Range %s\n", range, file, p.status,
                cr ? cr : "(none)");
        abort();
    }
    if (want_status == 416) {
        resp_free(&p);
        return;
    }
    CHECK_EQ(p.body_len, len);
    CHECK_EQ(atol(hdr(&p, "Content-Length")), len);
    if (strcmp(file, "big.bin") == 0) {
        for (size_t i = 0; i < len; i++)
            CHECK_EQ((unsigned char)p.body[i], big_byte(off + i));
    } else {
        CHECK(memcmp(p.body, &"hello, world\n"[off], len) == 0);
    }
    resp_free(&p);
}

static int file_range_entry(void *arg)
{
    (void)arg;
    fixture fx;
    fixture_start(&fx);
    const char *a = fx.sv.addr;
    range_check(a, "a.txt", "bytes=0-4", 206, "bytes 0-4/13", 0, 5);
    range_check(a, "a.txt", "bytes=7-", 206, "bytes 7-12/13", 7, 6);
    range_check(a, "a.txt", "bytes=-6", 206, "bytes 7-12/13", 7, 6);
    range_check(a, "a.txt", "bytes=-100", 206, "bytes 0-12/13", 0, 13);
    range_check(a, "a.txt", "bytes=12-99999999999999999999999", 206, "bytes 12-12/13", 12, 1);
    range_check(a, "a.txt", "BYTES= 3-3 ", 206, "bytes 3-3/13", 3, 1);
    range_check(a, "big.bin", "bytes=500000-699999", 206, "bytes 500000-699999/1048576", 500000,
                200000);
    range_check(a, "big.bin", "bytes=1048575-", 206, "bytes 1048575-1048575/1048576", 1048575, 1);
    /* unsatisfiable */
    range_check(a, "a.txt", "bytes=13-", 416, "bytes */13", 0, 0);
    range_check(a, "a.txt", "bytes=100-200", 416, "bytes */13", 0, 0);
    range_check(a, "a.txt", "bytes=-0", 416, "bytes */13", 0, 0);
    range_check(a, "zero.txt", "bytes=0-", 416, "bytes */0", 0, 0);
    /* ignored: the whole file, 200 */
    range_check(a, "a.txt", "bytes=0-1,3-4", 200, NULL, 0, 13);
    range_check(a, "a.txt", "bytes=5-2", 200, NULL, 0, 13);
    range_check(a, "a.txt", "bytes=-", 200, NULL, 0, 13);
    range_check(a, "a.txt", "bytes=x-1", 200, NULL, 0, 13);
    range_check(a, "a.txt", "bytes=1-2x", 200, NULL, 0, 13);
    range_check(a, "a.txt", "items=0-1", 200, NULL, 0, 13);

    /* If-Range: the Last-Modified date keeps the range, anything else
     * (our ETag is weak, an old date) gets the whole file */
    resp p;
    get(a, "/f?p=a.txt", NULL, &p);
    char x[256], x2[256], x3[256];
    snprintf(x, sizeof x, "Range: bytes=0-1\r\nIf-Range: %s\r\n", must(&p, "Last-Modified"));
    snprintf(x2, sizeof x2, "Range: bytes=0-1\r\nIf-Range: %s\r\n", must(&p, "ETag"));
    resp_free(&p);
    char old[64];
    http_date(stat_of("a.txt").st_mtim.tv_sec - 60, old);
    snprintf(x3, sizeof x3, "Range: bytes=0-1\r\nIf-Range: %s\r\n", old);
    get(a, "/f?p=a.txt", x, &p);
    CHECK_EQ(p.status, 206);
    CHECK(strcmp(p.body, "he") == 0);
    resp_free(&p);
    get(a, "/f?p=a.txt", x2, &p);
    CHECK_EQ(p.status, 200);
    CHECK_EQ(p.body_len, 13);
    resp_free(&p);
    get(a, "/f?p=a.txt", x3, &p);
    CHECK_EQ(p.status, 200);
    resp_free(&p);
    fixture_stop(&fx);
    return 0;
}

static void file_single_ranges_206_416_or_whole(void)
{
    run_test(file_range_entry, NULL);
}

static int file_head_entry(void *arg)
{
    (void)arg;
    fixture fx;
    fixture_start(&fx);
    /* on one connection: a HEAD must leave no body bytes behind */
    client *cl = client_dial(fx.sv.addr);
    resp p;
    send_raw(cl, "HEAD /f?p=big.bin HTTP/1.1\r\nHost: t\r\n\r\n");
    read_resp(cl, &p, true);
    CHECK_EQ(p.status, 200);
    CHECK(strcmp(hdr(&p, "Content-Length"), "1048576") == 0);
    CHECK(hdr(&p, "ETag") && hdr(&p, "Last-Modified"));
    resp_free(&p);
    send_raw(cl, "HEAD /f?p=a.txt HTTP/1.1\r\nHost: t\r\nRange: bytes=2-5\r\n\r\n");
    read_resp(cl, &p, true);
    CHECK_EQ(p.status, 206);
    CHECK(strcmp(hdr(&p, "Content-Length"), "4") == 0);
    CHECK(strcmp(hdr(&p, "Content-Range"), "bytes 2-5/13") == 0);
    resp_free(&p);
    send_raw(cl, "GET /f?p=a.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    read_resp(cl, &p, false);
    CHECK_EQ(p.status, 200);
    CHECK(strcmp(p.body, "hello, world\n") == 0);
    resp_free(&p);
    client_close(cl);
    fixture_stop(&fx);
    return 0;
}

static void file_head_sends_fields_only(void)
{
    run_test(file_head_entry, NULL);
}

/* ---- tern_http_static_dir -------------------------------------------------------- */

static int static_serve_entry(void *arg)
{
    (void)arg;
    fixture fx;
    fixture_start(&fx);
    const char *a = fx.sv.addr;
    resp p;
    get(a, "/static/a.txt", NULL, &p);
    CHECK_EQ(p.status, 200);
    CHECK(strcmp(p.body, "hello, world\n") == 0);
    resp_free(&p);
    get(a, "/static/sub/b.css", NULL, &p);
    CHECK_EQ(p.status, 200);
    CHECK(strcmp(p.body, "b{}") == 0);
    CHECK(strcmp(hdr(&p, "Content-Type"), "text/css; charset=utf-8") == 0);
    resp_free(&p);
    get(a, "/static/a%20b.txt", NULL, &p);      /* decoded once, by the server */
    CHECK_EQ(p.status, 200);
    CHECK(strcmp(p.body, "space") == 0);
    resp_free(&p);
    get(a, "/static/.//sub//./b.css", NULL, &p);  /* cleaned */
    CHECK_EQ(p.status, 200);
    CHECK(strcmp(p.body, "b{}") == 0);
    resp_free(&p);
    get(a, "/static/..hidden", NULL, &p);          /* dots, but no ".." element */
    CHECK_EQ(p.status, 200);
    CHECK(strcmp(p.body, "dots") == 0);
    resp_free(&p);
    get(a, "/static/link_in", NULL, &p);           /* a symlink that stays inside */
    CHECK_EQ(p.status, 200);
    CHECK(strcmp(p.body, "hello, world\n") == 0);
    resp_free(&p);
    get(a, "/static/sub/up_in", NULL, &p);         /* "../a.txt" inside the root */
    CHECK_EQ(p.status, 200);
    CHECK(strcmp(p.body, "hello, world\n") == 0);
    resp_free(&p);

    /* directories: redirected to the slash, then their index; no listing */
    get(a, "/static/sub", NULL, &p);
    CHECK_EQ(p.status, 301);
    CHECK(strcmp(hdr(&p, "Location"), "sub/") == 0);
    resp_free(&p);
    get(a, "/static/sub/", NULL, &p);
    CHECK_EQ(p.status, 200);
    CHECK(strcmp(p.body, "<h1>sub</h1>") == 0);
    CHECK(strcmp(hdr(&p, "Content-Type"), "text/html; charset=utf-8") == 0);
    resp_free(&p);
    get(a, "/static/empty/", NULL, &p);
    CHECK_EQ(p.status, 404);
    resp_free(&p);
    get(a, "/static/", NULL, &p);
    CHECK_EQ(p.status, 404);
    resp_free(&p);
    get(a, "/static/nope", NULL, &p);
    CHECK_EQ(p.status, 404);
    resp_free(&p);
    get(a, "/static/fifo", NULL, &p);
    CHECK_EQ(p.status, 403);
    resp_free(&p);

    /* ranges and validators come with it */
    get(a, "/static/big.bin", "Range: bytes=10-19\r\n", &p);
    CHECK_EQ(p.status, 206);
    CHECK_EQ(p.body_len, 10);
    for (size_t i = 0; i < 10; i++)
        CHECK_EQ((unsigned char)p.body[i], big_byte(10 + i));
    resp_free(&p);

    /* only GET and HEAD */
    fetch(a, "POST /static/a.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n", &p);
    CHECK_EQ(p.status, 405);
    CHECK(strcmp(hdr(&p, "Allow"), "GET, HEAD") == 0);
    resp_free(&p);
    fetch(a, "HEAD /static/a.txt HTTP/1.1\r\nHost: t\r\n\r\n", &p);
    CHECK_EQ(p.status, 200);
    CHECK(strcmp(hdr(&p, "Content-Length"), "13") == 0);
    resp_free(&p);

    /* gzip leaves a file alone: it went out with sendfile, not buffered */
    get(a, "/gz/page.html", "Accept-Encoding: gzip\r\n", &p);
    CHECK_EQ(p.status, 200);
    CHECK(hdr(&p, "Content-Encoding") == NULL);
    CHECK(strcmp(p.body, "<p>hi</p>") == 0);
    resp_free(&p);
    fixture_stop(&fx);
    return 0;
}

static void static_dir_serves_files_indexes_and_redirects(void)
{
    run_test(static_serve_entry, NULL);
}

/* Targets that must never reach anything outside the root; each is
 * refused with 400 (a ".." the client sent) or 404 (nothing there). */
static const struct {
    const char *target;
    int status;
} escapes[] = {
    {"/static/../../etc/passwd", 400},
    {"/static/../secret.txt", 400},
    {"/static/sub/../../secret.txt", 400},
    {"/static/%2e%2e/%2e%2e/etc/passwd", 400},
    {"/static/%2E%2E/secret.txt", 400},
    {"/static/..%2f..%2fetc%2fpasswd", 400},
    {"/static/sub/..%2F..%2Fsecret.txt", 400},
    {"/static/..", 400},
    {"/static/a.txt/..", 400},
    {"/static/%2e%2e%5c%2e%2e%5cetc%5cpasswd", 404},  /* backslashes are just bytes */
    {"/static/%252e%252e/secret.txt", 404},            /* decoded once only */
    {"/static/a.txt%00", 400},                          /* a NUL: the server refuses the path */
    {"/static/a.txt%00.png", 400},
    {"/static/%00/../../etc/passwd", 400},            /* undecodable, kept raw: ".." still seen */
    {"/static//etc/passwd", 404},
    {"/static/%2fetc%2fpasswd", 404},
    {"/static/link_out", 404},
    {"/static/link_dir/passwd", 404},
    {"/static/rel_out", 404},
    {"/static/...", 404},
};

static void check_escapes(const char *addr)
{
    for (size_t i = 0; i < sizeof escapes / sizeof escapes[0]; i++) {
        char req[512];
        snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", escapes[i].target);
        resp p;
        fetch(addr, req, &p);
        if (p.status != escapes[i].status || strstr(p.body, "root:") ||
            strstr(p.body, "SECRET")) {
            fprintf(stderr, "%s: status %d, body %.80s\n", escapes[i].target, p.status, p.body);
            abort();
        }
        resp_free(&p);
    }
}

static int static_escape_entry(void *arg)
{
    (void)arg;
    fixture fx;
    fixture_start(&fx);
    check_escapes(fx.sv.addr);
    /* still serving what is inside */
    resp p;
    get(fx.sv.addr, "/static/link_in", NULL, &p);
    CHECK_EQ(p.status, 200);
    CHECK(strcmp(p.body, "hello, world\n") == 0);
    resp_free(&p);
    fixture_stop(&fx);
    return 0;
}

static void static_dir_never_leaves_its_root(void)
{
    run_test(static_escape_entry, NULL);
}

/* The same, on a "kernel" without openat2: a seccomp filter answers it
 * ENOSYS, so the realpath fallback does the confining. */
static void no_openat2_child(void)
{
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_openat2, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {.len = sizeof f / sizeof f[0], .filter = f};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) {
        fprintf(stderr, "no seccomp here: %s\n", strerror(errno));
        _exit(77);
    }
    CHECK(syscall(SYS_openat2, AT_FDCWD, "/", NULL, 0) == -1 && errno == ENOSYS);
    run_test(static_escape_entry, NULL);
    run_test(static_serve_entry, NULL);
}

static void static_dir_without_openat2_falls_back_safely(void)
{
    child_result r = run_child(no_openat2_child);
    if (r.exited && r.code == 77) {
        fprintf(stderr, "   skipped: no seccomp\n");
        return;
    }
    CHECK(r.exited && r.code == 0);
}

typedef struct curl_job {
    char cmd[1024];
    int status;
} curl_job;

static int run_cmd(void *arg)
{
    curl_job *j = arg;
    j->status = system(j->cmd);
    return 0;
}

/* curl as a real client: a range, and a traversal sent as-is */
static int static_curl_entry(void *arg)
{
    (void)arg;
    fixture fx;
    fixture_start(&fx);
    curl_job *j = malloc(sizeof *j);
    CHECK(j);
    snprintf(j->cmd, sizeof j->cmd,
             "test \"$(curl -sS -r 0-4 http://%s/static/a.txt)\" = hello && "
             "test \"$(curl -sS -o /dev/null -w '%%{http_code}' --path-as-is "
             "http://%s/static/../../../../etc/passwd)\" = 400 && "
             "test \"$(curl -sS -o /dev/null -w '%%{http_code}' "
             "-H \"If-None-Match: $(curl -sS -o /dev/null -w '%%header{etag}' "
             "http://%s/static/a.txt)\" http://%s/static/a.txt)\" = 304",
             fx.sv.addr, fx.sv.addr, fx.sv.addr, fx.sv.addr);
    CHECK_EQ(tern_blocking(run_cmd, j), 0);
    if (j->status != 0)
        fprintf(stderr, "failed: %s\n", j->cmd);
    CHECK_EQ(j->status, 0);
    free(j);
    fixture_stop(&fx);
    return 0;
}

static void static_dir_with_curl(void)
{
    if (system("curl --version >/dev/null 2>&1") != 0) {
        fprintf(stderr, "   skipped: no curl\n");
        return;
    }
    run_test(static_curl_entry, NULL);
}

/* Every test gets a fresh tree. */
#define WITH_TREE(name)                                                                            \
    static void name##_t(void)                                                                     \
    {                                                                                              \
        tree_make();                                                                               \
        name();                                                                                    \
        tree_remove();                                                                             \
    }
WITH_TREE(file_serves_body_type_and_validators)
WITH_TREE(file_content_type_by_extension)
WITH_TREE(file_conditional_requests)
WITH_TREE(file_single_ranges_206_416_or_whole)
WITH_TREE(file_head_sends_fields_only)
WITH_TREE(static_dir_serves_files_indexes_and_redirects)
WITH_TREE(static_dir_never_leaves_its_root)
WITH_TREE(static_dir_without_openat2_falls_back_safely)
WITH_TREE(static_dir_with_curl)

TESTS({"file_serves_body_type_and_validators", file_serves_body_type_and_validators_t},
      {"file_content_type_by_extension", file_content_type_by_extension_t},
      {"file_conditional_requests", file_conditional_requests_t},
      {"file_single_ranges_206_416_or_whole", file_single_ranges_206_416_or_whole_t},
      {"file_head_sends_fields_only", file_head_sends_fields_only_t},
      {"static_dir_serves_files_indexes_and_redirects",
       static_dir_serves_files_indexes_and_redirects_t},
      {"static_dir_never_leaves_its_root", static_dir_never_leaves_its_root_t},
      {"static_dir_without_openat2_falls_back_safely",
       static_dir_without_openat2_falls_back_safely_t},
      {"static_dir_with_curl", static_dir_with_curl_t})
