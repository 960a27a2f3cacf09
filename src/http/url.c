/*
 * url.c - the small text formats around HTTP messages: percent-encoding
 * (RFC 3986 2.1), query strings and urlencoded forms, Cookie header values
 * (RFC 6265 4.2), URL path cleaning, and absolute http(s) URLs for the
 * client.
 *
 * Nothing allocates and nothing copies unless asked to: spans point into
 * the caller's strings, and unescaping and path cleaning may work in
 * place because their output is never longer than their input.
 */
#include "parse_internal.h"

#include <errno.h>
#include <stdio.h>

#include "base/check.h"
#include "base/dec.h"

ssize_t tern_http_unescape(const char *src, size_t len, char *dst, size_t dst_size,
                           bool plus_as_space)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++, o++) {
        unsigned char c = (unsigned char)src[i];
        if (c == '%') {
            int hi = i + 2 < len ? tern_http_hexval((unsigned char)src[i + 1]) : -1;
            int lo = hi >= 0 ? tern_http_hexval((unsigned char)src[i + 2]) : -1;
            if (lo < 0)
                return -EINVAL;
            c = (unsigned char)(hi << 4 | lo);
            i += 2;
        } else if (c == '+' && plus_as_space) {
            c = ' ';
        }
        if (c == 0)
            return -EINVAL;     /* it would cut the C string short */
        /* o <= i: writing never overtakes reading when dst is src */
        TERN_ASSERT(o <= i);
        if (o + 1 < dst_size)
            dst[o] = (char)c;
    }
    if (o + 1 > dst_size)
        return -ENOSPC;
    dst[o] = 0;
    return (ssize_t)o;
}

int tern_http_form_next(const char *s, size_t len, size_t *pos, const char **key,
                        size_t *key_len, const char **val, size_t *val_len)
{
    size_t i = *pos;
    while (i < len && s[i] == '&')
        i++;
    if (i >= len) {
        *pos = len;
        return 0;
    }
    const char *pair = s + i, *amp = memchr(pair, '&', len - i);
    size_t n = amp ? (size_t)(amp - pair) : len - i;
    const char *eq = memchr(pair, '=', n);
    *key = pair;
    *key_len = eq ? (size_t)(eq - pair) : n;
    *val = eq ? eq + 1 : pair + n;
    *val_len = eq ? n - *key_len - 1 : 0;
    *pos = i + n;
    return 1;
}

static void trim(const char **s, const char **e)
{
    while (*s < *e && (**s == ' ' || **s == '\t'))
        (*s)++;
    while (*e > *s && ((*e)[-1] == ' ' || (*e)[-1] == '\t'))
        (*e)--;
}

int tern_http_cookie_find(const char *header, size_t len, const char *name, const char **val,
                          size_t *val_len)
{
    size_t name_len = strlen(name);
    const char *p = header, *end = header + len;
    while (p < end) {
        const char *semi = memchr(p, ';', (size_t)(end - p));
        const char *pe = semi ? semi : end;
        const char *eq = memchr(p, '=', (size_t)(pe - p));
        if (eq) {
            const char *ns = p, *ne = eq, *vs = eq + 1, *ve = pe;
            trim(&ns, &ne);
            trim(&vs, &ve);
            if (name_len > 0 && (size_t)(ne - ns) == name_len && memcmp(ns, name, name_len) == 0) {
                if (ve - vs >= 2 && *vs == '"' && ve[-1] == '"') {
                    vs++;
                    ve--;
                }
                *val = vs;
                *val_len = (size_t)(ve - vs);
                return 1;
            }
        }
        p = semi ? semi + 1 : end;
    }
    return 0;
}

/*
 * Go's path.Clean, for rooted paths only.  out[0..w) is the cleaned prefix;
 * it is written in place over path, which is safe because every byte kept
 * was read before it is written: each '/' written stands for at least one
 * '/' already read.  dotdot is where ".." may not back up past: the root.
 */
size_t tern_http_path_clean(char *path, size_t len)
{
    TERN_ASSERT(len > 0 && path[0] == '/');     /* the caller's promise */
    if (len == 0 || path[0] != '/')
        return len;
    size_t r = 1, w = 1;
    while (r < len) {
        if (path[r] == '/') {
            r++;                                        /* empty element */
        } else if (path[r] == '.' && (r + 1 == len || path[r + 1] == '/')) {
            r++;                                        /* "." */
        } else if (path[r] == '.' && path[r + 1] == '.' && (r + 2 == len || path[r + 2] == '/')) {
            r += 2;                                     /* "..": drop the last element */
            while (w > 1 && path[--w] != '/')
                ;
        } else {
            if (w != 1)
                path[w++] = '/';
            TERN_ASSERT(w <= r);    /* a '/' written stands for one already read */
            while (r < len && path[r] != '/')
                path[w++] = path[r++];
        }
        TERN_ASSERT(w >= 1 && w <= r);
    }
    TERN_ASSERT(w >= 1 && w <= len && path[0] == '/');
    return w;
}

/* A host name's characters leave out '@' and '%': userinfo and escapes are
 * refused with everything else.  1 for an IPv6 literal, 0, or -EINVAL. */
static int url_host(const char *s, size_t n, tern_http_url *out)
{
    bool v6 = n >= 2 && s[0] == '[' && s[n - 1] == ']';
    if (v6) {
        s++;
        n -= 2;
    }
    if (n == 0 || n >= sizeof out->host)
        return -EINVAL;
    bool colon = false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = tern_http_hexval((unsigned char)c) >= 0 || c == '.' || c == ':';
        if (!v6)
            ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                 c == '-' || c == '.' || c == '_' || c == '~';
        if (!ok)
            return -EINVAL;
        colon |= c == ':';
    }
    if (v6 && !colon)
        return -EINVAL;
    memcpy(out->host, s, n);
    out->host[n] = 0;
    return v6;
}

/* 1..65535 in at most 5 digits; "h:" with none reads as 0, refused like "h:0". */
static int url_port(const char *s, size_t n)
{
    if (n > 5)
        return -EINVAL;
    int port = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -EINVAL;
        port = port * 10 + (s[i] - '0');
    }
    TERN_ASSERT(port >= 0 && port <= 99999);
    return port >= 1 && port <= 65535 ? port : -EINVAL;
}

int tern_http_url_parse(const char *url, tern_http_url *out)
{
    tern__http_chars_init();
    const char *sep = strstr(url, "://");
    if (!sep)
        return -EINVAL;
    size_t slen = (size_t)(sep - url);
    if (tern_http_ieq(url, slen, "http")) {
        memcpy(out->scheme, "http", 5);
        out->port = 80;
    } else if (tern_http_ieq(url, slen, "https")) {
        memcpy(out->scheme, "https", 6);
        out->port = 443;
    } else {
        return -EINVAL;
    }

    const char *auth = sep + 3, *aend = auth + strcspn(auth, "/?#");
    if (*aend == '?')
        return -EINVAL;         /* a query with no path to carry it */
    /* The port follows the last ':', unless that is inside an IPv6 literal. */
    const char *colon = NULL;
    for (const char *p = auth; p < aend; p++) {
        if (*p == ':')
            colon = p;
        else if (*p == ']')
            colon = NULL;
    }
    const char *hend = colon ? colon : aend;
    int v6 = url_host(auth, (size_t)(hend - auth), out);
    if (v6 < 0)
        return -EINVAL;
    if (colon && (out->port = url_port(colon + 1, (size_t)(aend - colon - 1))) < 0)
        return -EINVAL;
    /* host (an IPv6 literal in brackets), ':', port: by hand, as snprintf
     * was a tenth of a proxied request's client instructions */
    char port[TERN__DEC_MAX];
    size_t nhost = strlen(out->host), nport = tern__dec_u64(port, (uint64_t)out->port);
    if (nhost + (v6 ? 2 : 0) + 1 + nport >= sizeof out->hostport)
        return -EINVAL;
    char *o = out->hostport;
    if (v6)
        *o++ = '[';
    memcpy(o, out->host, nhost);
    o += nhost;
    if (v6)
        *o++ = ']';
    *o++ = ':';
    memcpy(o, port, nport + 1);

    const char *path = aend, *pend = path + strcspn(path, "#");
    for (const char *p = path; p < pend; p++)
        if (!tern_http_is((unsigned char)*p, TERN_HTTP_VCHAR))
            return -EINVAL;     /* a space or CRLF would end the request line */
    if (path == pend) {
        out->path = "/";
        out->path_len = 1;
    } else {
        out->path = path;
        out->path_len = (size_t)(pend - path);
    }
    return 0;
}

/* Append n bytes of s at *o, keeping the NUL; false once buf is full. */
static bool redact_put(char *buf, size_t len, size_t *o, const char *s, size_t n)
{
    size_t room = len - 1 - *o;
    size_t k = n < room ? n : room;
    memcpy(buf + *o, s, k);
    *o += k;
    buf[*o] = 0;
    return k == n;
}

int tern_http_url_redact(const char *url, char *buf, size_t len)
{
    if (len == 0)
        return -ENOSPC;
    TERN_CHECK_ARG(buf);
    size_t o = 0;
    buf[0] = 0;
    if (!url)
        return 0;
    /* The authority starts after "scheme://" when "://" comes before any
     * '/', '?' or '#' (so a "://" inside the path is not taken for it),
     * after a leading "//", or at the start (no scheme: "u:p@host/x"). */
    const char *auth = url;
    size_t first = strcspn(url, "/?#");
    const char *sep = strstr(url, "://");
    if (sep && (size_t)(sep - url) <= first && sep > url)
        auth = sep + 3;
    else if (url[0] == '/' && url[1] == '/')
        auth = url + 2;
    size_t alen = strcspn(auth, "/?#");
    const char *at = NULL;
    for (const char *p = auth; p < auth + alen; p++)
        if (*p == '@')
            at = p;                 /* the last one: a password may hold '@' */
    const char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
    if (!colon)
        return redact_put(buf, len, &o, url, strlen(url)) ? 0 : -ENOSPC;
    bool ok = redact_put(buf, len, &o, url, (size_t)(colon + 1 - url)) &&
              redact_put(buf, len, &o, "xxxxx", 5) && redact_put(buf, len, &o, at, strlen(at));
    return ok ? 0 : -ENOSPC;
}
