/* test_http_url.c - percent-decoding, query strings, cookies, path cleaning and URL parsing. */
#include "check.h"

#include <errno.h>

#define CHECK_STR(p, n, lit) CHECK((n) == strlen(lit) && memcmp((p), (lit), (n)) == 0)

static ssize_t unescape(const char *s, char *dst, size_t size, bool plus)
{
    return tern_http_unescape(s, strlen(s), dst, size, plus);
}

static void unescape_decodes_percent_escapes_and_plus_in_forms(void)
{
    char d[64];
    CHECK_EQ(unescape("a%20b", d, sizeof d, false), 3);
    CHECK(strcmp(d, "a b") == 0);
    CHECK_EQ(unescape("%41%4a%4A%7e", d, sizeof d, false), 4);
    CHECK(strcmp(d, "AJJ~") == 0);
    CHECK_EQ(unescape("%E2%82%AC", d, sizeof d, false), 3);
    CHECK(strcmp(d, "\xe2\x82\xac") == 0);
    CHECK_EQ(unescape("a+b", d, sizeof d, true), 3);
    CHECK(strcmp(d, "a b") == 0);
    CHECK_EQ(unescape("a+b", d, sizeof d, false), 3);
    CHECK(strcmp(d, "a+b") == 0);
    CHECK_EQ(unescape("%2B+", d, sizeof d, true), 2);   /* an escaped '+' stays '+' */
    CHECK(strcmp(d, "+ ") == 0);
    CHECK_EQ(unescape("%25%32%30", d, sizeof d, false), 3);  /* decoded once only */
    CHECK(strcmp(d, "%20") == 0);
    d[0] = 'x';
    CHECK_EQ(unescape("", d, 1, false), 0);
    CHECK_EQ(d[0], 0);
    /* in place */
    char s[] = "x%3Dy+z";
    CHECK_EQ(tern_http_unescape(s, strlen(s), s, sizeof s, true), 5);
    CHECK(strcmp(s, "x=y z") == 0);
}

static void unescape_refuses_malformed_and_nul(void)
{
    char d[64];
    const char *bad[] = {"%", "%4", "a%", "%zz", "%4g", "%g4", "%%41", "% 41", "%-1", "%00", "a%00b"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_EQ(unescape(bad[i], d, sizeof d, false), -EINVAL);
    CHECK_EQ(tern_http_unescape("a\0b", 3, d, sizeof d, false), -EINVAL);   /* a raw NUL */
}

static void unescape_checks_the_room(void)
{
    char d[8];
    CHECK_EQ(unescape("%41%42", d, 3, false), 2);        /* decoded length + NUL is enough */
    CHECK(strcmp(d, "AB") == 0);
    CHECK_EQ(unescape("abc", d, 3, false), -ENOSPC);
    CHECK_EQ(unescape("abc", d, 4, false), 3);
    CHECK_EQ(unescape("", d, 0, false), -ENOSPC);
    CHECK_EQ(unescape("abcd%zz", d, 2, false), -EINVAL);  /* malformed wins over room */
    memset(d, 'x', sizeof d);
    CHECK_EQ(unescape("abcdef", d, 4, false), -ENOSPC);
    CHECK_EQ(d[4], 'x');                                  /* nothing written past dst_size */
}

typedef struct pair {
    const char *k, *v;
} pair;

static void check_form(const char *s, const pair *want, size_t n)
{
    size_t pos = 0, i = 0, kl, vl;
    const char *k, *v;
    while (tern_http_form_next(s, strlen(s), &pos, &k, &kl, &v, &vl)) {
        CHECK(i < n);
        if (kl != strlen(want[i].k) || memcmp(k, want[i].k, kl) || vl != strlen(want[i].v) ||
            memcmp(v, want[i].v, vl)) {
            fprintf(stderr, "in \"%s\" pair %zu: got %.*s=%.*s\n", s, i, (int)kl, k, (int)vl, v);
            abort();
        }
        i++;
    }
    CHECK_EQ(i, n);
    CHECK_EQ(pos, strlen(s));
    CHECK_EQ(tern_http_form_next(s, strlen(s), &pos, &k, &kl, &v, &vl), 0);   /* stays at the end */
}

static void form_pairs_split_on_ampersand_and_stay_raw(void)
{
    check_form("a=1&b=2", (pair[]){{"a", "1"}, {"b", "2"}}, 2);
    check_form("a=1&&b", (pair[]){{"a", "1"}, {"b", ""}}, 2);
    check_form("&&a=1&", (pair[]){{"a", "1"}}, 1);
    check_form("k", (pair[]){{"k", ""}}, 1);
    check_form("k=", (pair[]){{"k", ""}}, 1);
    check_form("=v", (pair[]){{"", "v"}}, 1);
    check_form("a==b&c=d=e", (pair[]){{"a", "=b"}, {"c", "d=e"}}, 2);
    check_form("a%20b=c+d;e", (pair[]){{"a%20b", "c+d;e"}}, 1);  /* raw; ';' is no separator */
    check_form("", NULL, 0);
    check_form("&&&", NULL, 0);
}

static void cookie(const char *h, const char *name, const char *want)
{
    const char *v;
    size_t n;
    int r = tern_http_cookie_find(h, strlen(h), name, &v, &n);
    if (want ? (r != 1 || n != strlen(want) || memcmp(v, want, n) != 0) : r != 0) {
        fprintf(stderr, "cookie %s in \"%s\": got %d \"%.*s\", expected %s\n", name, h, r,
                r ? (int)n : 0, r ? v : "", want ? want : "none");
        abort();
    }
}

static void cookie_lookup_matches_whole_case_sensitive_names_first_wins(void)
{
    cookie("a=1; b=2", "a", "1");
    cookie("a=1; b=2", "b", "2");
    cookie("a=1; b=2", "c", NULL);
    cookie("a=1;b=2", "b", "2");
    cookie("ab=1; b=2", "b", "2");          /* whole names only */
    cookie("a=1; ab=2", "b", NULL);
    cookie("bc=1; b=2", "b", "2");
    cookie("B=1", "b", NULL);               /* names are case-sensitive */
    cookie("  a = 1 ; b=\"q v\"", "b", "q v");
    cookie("  a = 1 ; b=\"q v\"", "a", "1");
    cookie("a=\"", "a", "\"");              /* one quote is not a quoted value */
    cookie("a=\"\"", "a", "");
    cookie("a=", "a", "");
    cookie("a=1; a=2", "a", "1");           /* the first wins */
    cookie("t=x=y", "t", "x=y");
    cookie("b; b=3", "b", "3");             /* "b" alone is a value with no name */
    cookie("b", "b", NULL);
    cookie("=v", "", NULL);
    cookie("", "a", NULL);
}

static void path_clean_like_go(void)
{
    /* Go's path.Clean table for rooted paths, and its relative cases made
     * rooted: there ".." at the root stays at the root. */
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"/", "/"}, {"/abc", "/abc"}, {"/abc/def", "/abc/def"}, {"/a/b/c", "/a/b/c"},
        {"/.", "/"}, {"/..", "/"}, {"/../..", "/"}, {"/../../abc", "/abc"},
        {"/abc/", "/abc"}, {"/abc/def/", "/abc/def"}, {"/a/b/c/", "/a/b/c"}, {"/./", "/"},
        {"/../", "/"}, {"/../../", "/"},
        {"/abc//def//ghi", "/abc/def/ghi"}, {"//abc", "/abc"}, {"///abc", "/abc"},
        {"//abc//", "/abc"}, {"/abc//", "/abc"},
        {"/abc/./def", "/abc/def"}, {"/./abc/def", "/abc/def"}, {"/abc/.", "/abc"},
        {"/abc/def/ghi/../jkl", "/abc/def/jkl"}, {"/abc/def/../ghi/../jkl", "/abc/jkl"},
        {"/abc/def/..", "/abc"}, {"/abc/def/../..", "/"}, {"/abc/def/../../..", "/"},
        {"/abc/def/../../../ghi/jkl/../../../mno", "/mno"},
        {"/abc/./../def", "/def"}, {"/abc//./../def", "/def"}, {"/abc/../../././../def", "/def"},
        /* dots that are names */
        {"/...", "/..."}, {"/..a/b", "/..a/b"}, {"/a../b", "/a../b"}, {"/.a/", "/.a"},
        {"/a/.../..", "/a"}, {"/a/b/.hidden/../c", "/a/b/c"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[128];
        size_t len = strlen(cases[i].in);
        memcpy(buf, cases[i].in, len);
        buf[len] = '#';
        size_t n = tern_http_path_clean(buf, len);
        if (n != strlen(cases[i].out) || memcmp(buf, cases[i].out, n) != 0) {
            fprintf(stderr, "clean(%s) = %.*s, expected %s\n", cases[i].in, (int)n, buf, cases[i].out);
            abort();
        }
        CHECK_EQ(buf[len], '#');
    }
}

static tern_http_url parse_ok(const char *s)
{
    tern_http_url u;
    memset(&u, 0x55, sizeof u);
    int r = tern_http_url_parse(s, &u);
    if (r != 0) {
        fprintf(stderr, "url_parse(%s) = %d\n", s, r);
        abort();
    }
    return u;
}

static void url_parse_splits_scheme_host_port_and_path(void)
{
    tern_http_url u = parse_ok("http://example.com/a/b?c=d&e");
    CHECK(strcmp(u.scheme, "http") == 0);
    CHECK(strcmp(u.host, "example.com") == 0);
    CHECK_EQ(u.port, 80);
    CHECK(strcmp(u.hostport, "example.com:80") == 0);
    CHECK_STR(u.path, u.path_len, "/a/b?c=d&e");
    u = parse_ok("HTTPS://Example.COM");
    CHECK(strcmp(u.scheme, "https") == 0);
    CHECK(strcmp(u.host, "Example.COM") == 0);
    CHECK_EQ(u.port, 443);
    CHECK(strcmp(u.hostport, "Example.COM:443") == 0);
    CHECK_STR(u.path, u.path_len, "/");
    u = parse_ok("http://h:8080");
    CHECK_EQ(u.port, 8080);
    CHECK(strcmp(u.hostport, "h:8080") == 0);
    u = parse_ok("http://127.0.0.1:1/");
    CHECK_EQ(u.port, 1);
    CHECK(strcmp(u.hostport, "127.0.0.1:1") == 0);
    u = parse_ok("https://h:65535/x");
    CHECK_EQ(u.port, 65535);
    u = parse_ok("https://h:00443/x");
    CHECK_EQ(u.port, 443);
    u = parse_ok("http://[::1]:8443/x");
    CHECK(strcmp(u.host, "::1") == 0);
    CHECK_EQ(u.port, 8443);
    CHECK(strcmp(u.hostport, "[::1]:8443") == 0);
    u = parse_ok("https://[2001:db8::ffff:1.2.3.4]");
    CHECK(strcmp(u.host, "2001:db8::ffff:1.2.3.4") == 0);
    CHECK(strcmp(u.hostport, "[2001:db8::ffff:1.2.3.4]:443") == 0);
    u = parse_ok("http://h/p%20q#frag ment");
    CHECK_STR(u.path, u.path_len, "/p%20q");
    u = parse_ok("http://h#f");
    CHECK_STR(u.path, u.path_len, "/");
    u = parse_ok("http://h/@x");                          /* '@' in the path is no userinfo */
    CHECK_STR(u.path, u.path_len, "/@x");
    u = parse_ok("http://a-b.c_d~e/");
    CHECK(strcmp(u.host, "a-b.c_d~e") == 0);
    char longest[300];
    memset(longest, 0, sizeof longest);
    memcpy(longest, "http://", 7);
    memset(longest + 7, 'a', 255);
    strcat(longest, ":65535/");
    u = parse_ok(longest);
    CHECK_EQ(strlen(u.host), 255);
    CHECK_EQ(strlen(u.hostport), 261);
}

static void url_parse_refuses_malformed_urls(void)
{
    const char *bad[] = {
        "", "example.com/", "ftp://h/", "httpx://h/", "http:/h/", "://h/", "http:", "http://",
        "http:///p", "http://u@h/", "http://u:p@h/", "http://h:0/", "http://h:65536/",
        "http://h:/", "http://h:8x/", "http://h:123456/", "http://h:-1/", "http://h:+80/",
        "http://[::1/", "http://::1/", "http://[]/", "http://[zz::]/", "http://[1.2.3.4]/",
        "http://[::1]x/", "http://[::1]:/", "http://h h/", "http://h/a b", "http://h/a\r\nX: y",
        "http://h/\x7f", "http://h/caf\xc3\xa9", "http://h?q=1", "http://h%41/", "http://h:80:80/",
        "http://h\t/",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tern_http_url u;
        int r = tern_http_url_parse(bad[i], &u);
        if (r != -EINVAL) {
            fprintf(stderr, "url_parse(%s) = %d, expected -EINVAL\n", bad[i], r);
            abort();
        }
    }
    char toolong[300];
    memset(toolong, 0, sizeof toolong);
    memcpy(toolong, "http://", 7);
    memset(toolong + 7, 'a', 256);
    tern_http_url u;
    CHECK_EQ(tern_http_url_parse(toolong, &u), -EINVAL);
}

static void redacted(const char *url, const char *want)
{
    char buf[256];
    int r = tern_http_url_redact(url, buf, sizeof buf);
    if (r != 0 || strcmp(buf, want) != 0) {
        fprintf(stderr, "url_redact(%s) = %d \"%s\", expected \"%s\"\n", url, r, buf, want);
        abort();
    }
}

/* Issue 15: svc logged and published "http://admin:s3cret@host/..." as is. */
static void url_redact_hides_the_password_only(void)
{
    redacted("http://h:8080/x?q=1", "http://h:8080/x?q=1");
    redacted("http://admin:s3cret@host/x", "http://admin:xxxxx@host/x");
    redacted("https://admin:s3cret@host:8443", "https://admin:xxxxx@host:8443");
    redacted("http://admin@host/x", "http://admin@host/x");              /* user only */
    redacted("http://admin:@host/", "http://admin:xxxxx@host/");         /* empty password */
    redacted("http://:pw@host/", "http://:xxxxx@host/");
    redacted("http://u:p@ss:w@rd@host/p", "http://u:xxxxx@host/p");      /* '@' in the password */
    redacted("http://host/a@b:c", "http://host/a@b:c");                  /* '@' in the path */
    redacted("http://host/?u=a:b@c", "http://host/?u=a:b@c");            /* ... and the query */
    redacted("http://host#a:b@c", "http://host#a:b@c");
    redacted("http://u:p@[::1]:80/x", "http://u:xxxxx@[::1]:80/x");      /* IPv6 */
    redacted("http://[::1]:80/a@b", "http://[::1]:80/a@b");
    redacted("u:p@host:80/x", "u:xxxxx@host:80/x");                      /* no scheme */
    redacted("//u:p@host/x", "//u:xxxxx@host/x");
    redacted("host/x://u:p@y", "host/x://u:p@y");     /* "://" in the path is not a scheme's */
    redacted("127.0.0.1:8081", "127.0.0.1:8081");
    redacted("", "");
    redacted(NULL, "");
    redacted("http://", "http://");
    redacted("http://@", "http://@");
    redacted("http://:@", "http://:xxxxx@");
    /* too small: cut short, NUL-terminated, never any of the password */
    char small[16];
    CHECK_EQ(tern_http_url_redact("http://admin:s3cret@host/x", small, sizeof small), -ENOSPC);
    CHECK(strcmp(small, "http://admin:xx") == 0);
    char tiny[10];
    CHECK_EQ(tern_http_url_redact("http://admin:s3cret@host/x", tiny, sizeof tiny), -ENOSPC);
    CHECK(strcmp(tiny, "http://ad") == 0);
    CHECK_EQ(tern_http_url_redact("http://h/", NULL, 0), -ENOSPC);
    char exact[10];
    CHECK_EQ(tern_http_url_redact("http://h/", exact, sizeof exact), 0);
    CHECK_EQ(tern_http_url_redact("http://h/x", exact, sizeof exact), -ENOSPC);
}

TESTS(T(unescape_decodes_percent_escapes_and_plus_in_forms), T(unescape_refuses_malformed_and_nul),
      T(unescape_checks_the_room), T(form_pairs_split_on_ampersand_and_stay_raw),
      T(cookie_lookup_matches_whole_case_sensitive_names_first_wins), T(path_clean_like_go),
      T(url_parse_splits_scheme_host_port_and_path), T(url_parse_refuses_malformed_urls),
      T(url_redact_hides_the_password_only))
