/*
 * fuzz_http_url.c - libFuzzer target for the small text formats a client
 * controls around a request (src/http/url.c): percent-decoding, query
 * strings and forms, Cookie values, path cleaning, and absolute URLs (the
 * client's, but a downstream URL can come from configuration).
 *
 * Each input goes through all of them.  Beyond "no crash": decoding never
 * grows the text and in place equals out of place, and with room to spare
 * never says -ENOSPC; form pairs and cookie values are spans inside the
 * input, and the iteration always moves forward; a cleaned path is
 * rooted, no longer, without "//", and cleaning it again changes nothing;
 * a parsed URL's path points into it and its hostport is a C string.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <tern/http_parse.h>

static void check(int cond)
{
    if (!cond)
        abort();
}

static int inside(const char *p, size_t n, const char *buf, size_t len)
{
    return p >= buf && p + n <= buf + len;
}

static void unescape(const char *s, size_t n, bool plus)
{
    char *out = malloc(n + 1), *inplace = malloc(n + 1);
    check(out && inplace);
    ssize_t a = tern_http_unescape(s, n, out, n + 1, plus);
    check(a == -EINVAL || (a >= 0 && (size_t)a <= n));
    if (a >= 0)
        check(out[a] == 0 && strlen(out) == (size_t)a);
    memcpy(inplace, s, n);
    ssize_t b = tern_http_unescape(inplace, n, inplace, n + 1, plus);
    check(a == b);
    if (a >= 0)
        check(memcmp(out, inplace, (size_t)a + 1) == 0);
    if (a > 0) {
        /* one byte short of the room it needs */
        ssize_t c = tern_http_unescape(s, n, out, (size_t)a, plus);
        check(c == -ENOSPC);
    }
    free(out);
    free(inplace);
}

static void form(const char *s, size_t n)
{
    size_t pos = 0, pairs = 0;
    const char *k, *v;
    size_t kl, vl;
    for (;;) {
        size_t before = pos;
        if (!tern_http_form_next(s, n, &pos, &k, &kl, &v, &vl))
            break;
        check(pos > before && pos <= n);
        check(inside(k, kl, s, n) && inside(v, vl, s, n));
        check(!memchr(k, '&', kl) && !memchr(k, '=', kl) && !memchr(v, '&', vl));
        check(++pairs <= n);
    }
    check(pos == n);
}

static void cookies(const char *s, size_t n)
{
    /* a name the input itself proposes (its first bytes), and two fixed */
    char name[16];
    size_t nl = 0;
    while (nl < n && nl < sizeof name - 1 && s[nl] != '=' && s[nl] != ';' && s[nl] != 0)
        nl++;
    memcpy(name, s, nl);
    name[nl] = 0;
    const char *names[] = {name, "a", "sess"};
    for (size_t i = 0; i < 3; i++) {
        const char *v;
        size_t vl;
        if (tern_http_cookie_find(s, n, names[i], &v, &vl))
            check(names[i][0] && inside(v, vl, s, n) && !memchr(v, ';', vl));
    }
}

static void path(const char *s, size_t n)
{
    char *p = malloc(n + 2);
    check(p != NULL);
    p[0] = '/';
    memcpy(p + 1, s, n);
    size_t w = tern_http_path_clean(p, n + 1);
    check(w >= 1 && w <= n + 1 && p[0] == '/');
    for (size_t i = 0; i + 1 < w; i++)
        check(!(p[i] == '/' && p[i + 1] == '/'));
    char *q = malloc(w);
    check(q != NULL);
    memcpy(q, p, w);
    check(tern_http_path_clean(q, w) == w && memcmp(p, q, w) == 0);
    free(q);
    free(p);
}

static void url(const char *s, size_t n)
{
    char *z = malloc(n + 1);
    check(z != NULL);
    memcpy(z, s, n);
    z[n] = 0;
    tern_http_url u;
    if (tern_http_url_parse(z, &u) == 0) {
        check(u.path_len >= 1 && u.path[0] == '/');
        check(inside(u.path, u.path_len, z, strlen(z)) || (u.path_len == 1 && !strcmp(u.path, "/")));
        check(memchr(u.hostport, 0, sizeof u.hostport) != NULL);
        check(memchr(u.host, 0, sizeof u.host) != NULL && u.host[0]);
        check(u.port >= 1 && u.port <= 65535);
    }
    free(z);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    unescape(s, size, false);
    unescape(s, size, true);
    form(s, size);
    cookies(s, size);
    path(s, size);
    url(s, size);
    return 0;
}
