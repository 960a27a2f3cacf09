/*
 * file.c - files as HTTP responses: tern_http_resp_file (validators,
 * conditional requests, a single byte range, sendfile) and
 * tern_http_static_dir (a directory tree served under a route, with no way
 * out of it).
 *
 * Opening and stat-ing run on the blocking pool: a cold disk or a hung
 * network mount then parks one coroutine, never a worker.  The body goes
 * out with sendfile(2) through the response core's hook
 * (resp_file_internal.h), which owns the connection.
 *
 * Validators are cheap and weak: the ETag is the size and the modification
 * time, W/"<size>-<mtime ns>" in hex, as nginx and Go's FileServer do,
 * rather than a hash of the content (which would mean reading the file).
 * Being weak, it serves If-None-Match (304) but never If-Range or
 * If-Match, which need a strong one (RFC 9110 8.8.1).
 *
 * Traversal: the static handler never hands a client's path to open(2).
 * It refuses ".." outright, cleans the rest, and resolves it relative to
 * the root directory with openat2(2) RESOLVE_BENEATH, so the kernel itself
 * refuses any ".." or symlink that would leave the root.
 */
#define _GNU_SOURCE
#include "tern/http_mw.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "base/check.h"
#include "resp_file_internal.h"
#include "tern/http_parse.h"
#include "tern/runtime.h"

#define OPEN_FLAGS (O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)

/* ---- content types ------------------------------------------------------ */

static const struct {
    const char *ext, *type;
} types[] = {
    {"html", "text/html; charset=utf-8"},
    {"htm", "text/html; charset=utf-8"},
    {"css", "text/css; charset=utf-8"},
    {"js", "text/javascript; charset=utf-8"},
    {"mjs", "text/javascript; charset=utf-8"},
    {"json", "application/json"},
    {"txt", "text/plain; charset=utf-8"},
    {"svg", "image/svg+xml"},
    {"png", "image/png"},
    {"jpg", "image/jpeg"},
    {"jpeg", "image/jpeg"},
    {"gif", "image/gif"},
    {"webp", "image/webp"},
    {"ico", "image/vnd.microsoft.icon"},
    {"wasm", "application/wasm"},
    {"pdf", "application/pdf"},
    {"xml", "application/xml"},
};

static const char *content_type(const char *name)
{
    const char *base = strrchr(name, '/');
    const char *dot = strrchr(base ? base : name, '.');
    if (dot)
        for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
            if (strcasecmp(dot + 1, types[i].ext) == 0)
                return types[i].type;
    return "application/octet-stream";
}

/* ---- dates and entity tags ---------------------------------------------- */

static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

/* IMF-fixdate (RFC 9110 5.6.7): "Sun, 06 Nov 1994 08:49:37 GMT".  Not
 * strftime: its names follow the locale. */
static void http_date(time_t t, char out[40])
{
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(out, 40, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday], tm.tm_mday,
             months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

static int two_digits(const char *s)
{
    if (s[0] < '0' || s[0] > '9' || s[1] < '0' || s[1] > '9')
        return -1;
    return (s[0] - '0') * 10 + (s[1] - '0');
}

/* Parse an IMF-fixdate.  The two obsolete forms RFC 9110 also asks
 * recipients to read are not: a date that does not parse makes the
 * condition ignored, so the client gets a full 200, never a wrong 304. */
static bool parse_http_date(const char *s, time_t *out)
{
    if (strlen(s) != 29 || s[3] != ',' || s[4] != ' ' || s[7] != ' ' || s[11] != ' ' ||
        s[16] != ' ' || s[19] != ':' || s[22] != ':' || s[25] != ' ' || strcmp(s + 26, "GMT"))
        return false;
    struct tm tm = {0};
    int mon = -1;
    for (int i = 0; i < 12; i++)
        if (memcmp(s + 8, months[i], 3) == 0)
            mon = i;
    int d = two_digits(s + 5), y1 = two_digits(s + 12), y2 = two_digits(s + 14);
    int h = two_digits(s + 17), mi = two_digits(s + 20), sec = two_digits(s + 23);
    if (mon < 0 || d < 1 || d > 31 || y1 < 0 || y2 < 0 || h < 0 || h > 23 || mi < 0 || mi > 59 ||
        sec < 0 || sec > 60)
        return false;
    tm.tm_mday = d;
    tm.tm_mon = mon;
    tm.tm_year = y1 * 100 + y2 - 1900;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    *out = timegm(&tm);
    return true;
}

static void make_etag(const struct stat *st, char out[64])
{
    uint64_t mtime = (uint64_t)st->st_mtim.tv_sec * 1000000000u + (uint64_t)st->st_mtim.tv_nsec;
    snprintf(out, 64, "W/\"%" PRIx64 "-%" PRIx64 "\"", (uint64_t)st->st_size, mtime);
}

/* Whether the entity-tag list (If-None-Match) holds etag by the weak
 * comparison: opaque tags equal, W/ ignored.  An opaque tag may contain
 * commas, so the list is read tag by tag, not split. */
static bool etag_list_has(const char *list, const char *etag)
{
    const char *want = etag + 2;        /* our own tag is always W/"..." */
    size_t want_len = strlen(want);
    const char *p = list;
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (*p == '\0')
            return false;
        if (*p == '*')
            return true;
        if (p[0] == 'W' && p[1] == '/')
            p += 2;
        if (*p != '"')
            return false;       /* malformed: stop, as if it matched nothing */
        const char *close = strchr(p + 1, '"');
        if (!close)
            return false;
        if ((size_t)(close + 1 - p) == want_len && memcmp(p, want, want_len) == 0)
            return true;
        p = close + 1;
    }
}

/* ---- ranges ------------------------------------------------------------- */

enum { RANGE_NONE, RANGE_ONE, RANGE_UNSATISFIABLE };

/* Digits at *p into *v, saturating; false when there are none. */
static bool digits(const char **p, uint64_t *v)
{
    const char *s = *p;
    *v = 0;
    for (; **p >= '0' && **p <= '9'; (*p)++)
        *v = *v > (UINT64_MAX - 9) / 10 ? UINT64_MAX : *v * 10 + (uint64_t)(**p - '0');
    return *p > s;
}

/* A Range value (RFC 9110 14.1.2) against a file of `size` bytes.  Only a
 * single range is served: several, a malformed value or another unit make
 * the Range ignored (a full 200 is always a valid answer, 14.2), which
 * also spares us multipart/byteranges and its overlapping-range abuse. */
static int parse_range(const char *v, uint64_t size, uint64_t *off, uint64_t *len)
{
    if (strncasecmp(v, "bytes=", 6) != 0 || strchr(v, ','))
        return RANGE_NONE;
    const char *p = v + 6;
    while (*p == ' ' || *p == '\t')
        p++;
    uint64_t first, last;
    bool has_first = digits(&p, &first);
    if (*p++ != '-')
        return RANGE_NONE;
    bool has_last = digits(&p, &last);
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p || (!has_first && !has_last) || (has_first && has_last && last < first))
        return RANGE_NONE;
    if (!has_first) {           /* "-n": the last n bytes */
        if (last == 0 || size == 0)
            return RANGE_UNSATISFIABLE;
        *len = last < size ? last : size;
        *off = size - *len;
        TERN_ASSERT(*len > 0 && *off + *len == size);
        return RANGE_ONE;
    }
    if (first >= size)
        return RANGE_UNSATISFIABLE;
    if (!has_last || last >= size)
        last = size - 1;
    *off = first;
    *len = last - first + 1;
    /* a served range is never empty and never past the end */
    TERN_ASSERT(*len > 0 && *off < size && *len <= size - *off);
    return RANGE_ONE;
}

/* ---- serving an open file ----------------------------------------------- */

static int set_date_header(tern_http_resp *w, const char *name, time_t t)
{
    char d[40];
    http_date(t, d);
    return tern_http_resp_set_header(w, name, d);
}

/* The conditional-request answer (RFC 9110 13.2.2), or 0 to go on:
 * 304 for a cached copy that is still good, 412 for a failed
 * precondition.  Every date compares at one-second resolution, the
 * resolution of the header. */
static int preconditions(tern_http_req *r, const char *etag, time_t mtime)
{
    const char *m = tern_http_req_method(r);
    bool get = strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0;
    const char *v;
    time_t t;
    if ((v = tern_http_req_header(r, "If-Match"))) {
        /* strong comparison: a weak ETag never matches, only "*" */
        if (strcmp(v, "*") != 0)
            return 412;
    } else if ((v = tern_http_req_header(r, "If-Unmodified-Since")) && parse_http_date(v, &t) &&
               mtime > t) {
        return 412;
    }
    if ((v = tern_http_req_header(r, "If-None-Match"))) {
        if (etag_list_has(v, etag))
            return get ? 304 : 412;
    } else if (get && (v = tern_http_req_header(r, "If-Modified-Since")) &&
               parse_http_date(v, &t) && mtime <= t) {
        return 304;
    }
    return 0;
}

/* Whether a Range may be honoured: without If-Range, or when it names this
 * Last-Modified exactly (an entity-tag would have to match strongly, and
 * ours is weak). */
static bool if_range_holds(tern_http_req *r, time_t mtime)
{
    const char *v = tern_http_req_header(r, "If-Range");
    time_t t;
    return !v || (parse_http_date(v, &t) && t == mtime);
}

static int serve_fd(tern_http_resp *w, tern_http_req *r, int fd, const struct stat *st,
                    const char *name)
{
    char etag[64];
    make_etag(st, etag);
    int rc = tern_http_resp_set_header(w, "ETag", etag);
    if (rc == 0)
        rc = set_date_header(w, "Last-Modified", st->st_mtim.tv_sec);
    if (rc == 0)
        rc = tern_http_resp_set_header(w, "Accept-Ranges", "bytes");
    if (rc < 0)
        return rc;

    int cond = preconditions(r, etag, st->st_mtim.tv_sec);
    if (cond == 304)
        return tern_http_resp_set_status(w, 304);
    if (cond)
        return tern_http_resp_error(w, cond, NULL);

    uint64_t size = (uint64_t)st->st_size, off = 0, len = size;
    const char *range = tern_http_req_header(r, "Range");
    int kind = range && if_range_holds(r, st->st_mtim.tv_sec)
                   ? parse_range(range, size, &off, &len)
                   : RANGE_NONE;
    char cr[80];
    if (kind == RANGE_UNSATISFIABLE) {
        snprintf(cr, sizeof cr, "bytes */%" PRIu64, size);
        rc = tern_http_resp_set_header(w, "Content-Range", cr);
        return rc < 0 ? rc : tern_http_resp_error(w, 416, NULL);
    }
    if (!tern_http_resp_header(w, "Content-Type") &&
        (rc = tern_http_resp_set_header(w, "Content-Type", content_type(name))) < 0)
        return rc;
    if (kind == RANGE_ONE) {
        snprintf(cr, sizeof cr, "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, off, off + len - 1, size);
        if ((rc = tern_http_resp_set_header(w, "Content-Range", cr)) < 0 ||
            (rc = tern_http_resp_set_status(w, 206)) < 0)
            return rc;
    }
    return tern__http_resp_send_file(w, fd, (off_t)off, (size_t)len);
}

/* ---- opening, on the blocking pool -------------------------------------- */

typedef struct open_job {
    /* in */
    const char *path;           /* resp_file: the path; static: relative to root */
    const char *root;           /* static only */
    const char *index;          /* static only: NULL or "" for none */
    /* out */
    int fd;
    struct stat st;
    bool was_dir;               /* static: path named a directory (fd: its index) */
    int err;                    /* -errno */
} open_job;

static int open_file(void *arg)
{
    open_job *j = arg;
    j->fd = open(j->path, OPEN_FLAGS);
    if (j->fd < 0)
        return j->err = -errno;
    if (fstat(j->fd, &j->st) < 0) {
        j->err = -errno;
        close(j->fd);
        j->fd = -1;
    }
    return j->err;
}

/* Set once openat2 has said ENOSYS: then every later open uses the
 * fallback without asking again. */
static atomic_bool no_openat2;

/* Without openat2: resolve every symlink and ".." with realpath and check
 * the result is still under the root's own real path.  A symlink swapped
 * between the check and the open can win that race; O_NOFOLLOW at least
 * makes the last component's swap fail. */
static int open_beneath_fallback(const char *root, const char *rel)
{
    char *rroot = realpath(root, NULL);
    if (!rroot)
        return -errno;
    size_t rlen = strlen(rroot);
    char *full = malloc(rlen + strlen(rel) + 2);
    char *real = NULL;
    int rc = -ENOMEM;
    if (full) {
        sprintf(full, "%s/%s", rroot, rel);
        real = realpath(full, NULL);
        rc = real ? 0 : -errno;
    }
    if (rc == 0) {
        bool inside = strncmp(real, rroot, rlen) == 0 &&
                      (real[rlen] == '/' || real[rlen] == '\0' || (rlen == 1 && rroot[0] == '/'));
        rc = !inside ? -EXDEV : open(real, OPEN_FLAGS | O_NOFOLLOW);
        if (rc < 0 && inside)
            rc = -errno;
    }
    free(real);
    free(full);
    free(rroot);
    return rc;
}

/* Open rel (relative, cleaned) under the root directory rootfd / root,
 * never outside it.  Returns an fd or -errno (-EXDEV: it would escape). */
static int open_beneath(int rootfd, const char *root, const char *rel)
{
    if (!atomic_load_explicit(&no_openat2, memory_order_relaxed)) {
        struct open_how how = {
            .flags = OPEN_FLAGS,
            /* no ".." or symlink above the root, no /proc magic links */
            .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
        };
        long fd = syscall(SYS_openat2, rootfd, *rel ? rel : ".", &how, sizeof how);
        if (fd >= 0)
            return (int)fd;
        if (errno != ENOSYS)
            return -errno;
        atomic_store_explicit(&no_openat2, true, memory_order_relaxed);
    }
    return open_beneath_fallback(root, rel);
}

static int open_static(void *arg)
{
    open_job *j = arg;
    int rootfd = open(j->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0)
        return j->err = -errno;
    j->fd = open_beneath(rootfd, j->root, j->path);
    if (j->fd >= 0 && fstat(j->fd, &j->st) < 0)
        j->err = -errno;
    else if (j->fd < 0)
        j->err = j->fd;
    if (j->err == 0 && S_ISDIR(j->st.st_mode)) {
        j->was_dir = true;
        close(j->fd);
        j->fd = -1;
        j->err = -ENOENT;       /* unless an index says otherwise */
        if (j->index && *j->index) {
            size_t n = strlen(j->path), m = strlen(j->index);
            char *idx = malloc(n + m + 2);
            if (!idx) {
                j->err = -ENOMEM;
            } else {
                sprintf(idx, "%s%s%s", j->path, n ? "/" : "", j->index);
                j->fd = open_beneath(rootfd, j->root, idx);
                j->err = j->fd < 0 ? j->fd : fstat(j->fd, &j->st) < 0 ? -errno : 0;
                free(idx);
            }
        }
    }
    if (j->err < 0 && j->fd >= 0) {
        close(j->fd);
        j->fd = -1;
    }
    close(rootfd);
    return j->err;
}

/* ---- the public faces ---------------------------------------------------- */

static int serve_job(tern_http_resp *w, tern_http_req *r, open_job *j, const char *name)
{
    int rc;
    if (!S_ISREG(j->st.st_mode))
        rc = tern_http_resp_error(w, 403, NULL);   /* a directory, a FIFO, a device */
    else
        rc = serve_fd(w, r, j->fd, &j->st, name);
    close(j->fd);
    return rc;
}

int tern_http_resp_file(tern_http_resp *w, tern_http_req *r, const char *path)
{
    TERN_CHECK_ARG(w);
    if (tern_http_resp_committed(w))
        return -EALREADY;
    /* on the request's heap: a shared-stack coroutine may not lend its
     * stack to the blocking pool */
    open_job *j = tern_http_req_alloc(r, sizeof *j);
    if (!j)
        return -ENOMEM;
    *j = (open_job){.path = path, .fd = -1};
    int rc = tern_blocking(open_file, j);
    if (rc == -ENOENT || rc == -ENOTDIR)
        return tern_http_resp_error(w, 404, NULL);
    if (rc == -EACCES || rc == -EPERM)
        return tern_http_resp_error(w, 403, NULL);
    if (rc < 0)
        return rc;
    return serve_job(w, r, j, path);
}

/* Whether any element of path is "..".  Refused rather than cleaned away:
 * no browser sends one (they resolve dot segments first), so it is an
 * attempt, and 400 says so. */
static bool has_dotdot(const char *path)
{
    for (const char *p = path; (p = strstr(p, "..")); p += 2)
        if ((p == path || p[-1] == '/') && (p[2] == '/' || p[2] == '\0'))
            return true;
    return false;
}

/* Redirect a directory named without its trailing '/' to the same name
 * with one, relative ("docs/"), so the route's prefix needs no knowing
 * and no Location can point off-site; every byte that is not unreserved
 * is escaped, ':' included (it would read as a scheme). */
static int redirect_to_dir(tern_http_req *r, tern_http_resp *w)
{
    const char *path = tern_http_req_path(r);
    const char *last = strrchr(path, '/');
    last = last ? last + 1 : path;
    size_t n = strlen(last);
    char *loc = tern_http_req_alloc(r, 3 * n + 2);
    if (!loc)
        return -ENOMEM;
    static const char hex[] = "0123456789ABCDEF";
    char *o = loc;
    for (const unsigned char *p = (const unsigned char *)last; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '.' || *p == '_' || *p == '~') {
            *o++ = (char)*p;
        } else {
            *o++ = '%';
            *o++ = hex[*p >> 4];
            *o++ = hex[*p & 15];
        }
    }
    *o++ = '/';
    *o = '\0';
    int rc = tern_http_resp_set_header(w, "Location", loc);
    return rc < 0 ? rc : tern_http_resp_error(w, 301, NULL);
}

int tern_http_static_dir(tern_http_req *r, tern_http_resp *w, void *opts)
{
    const tern_http_static_options *o = opts;
    if (!o || !o->root)
        return -EINVAL;
    const char *m = tern_http_req_method(r);
    if (strcmp(m, "GET") != 0 && strcmp(m, "HEAD") != 0) {
        int rc = tern_http_resp_set_header(w, "Allow", "GET, HEAD");
        return rc < 0 ? rc : tern_http_resp_error(w, 405, NULL);
    }
    const char *name = tern_http_req_param(r, o->param ? o->param : "path");
    if (!name)
        name = tern_http_req_path(r);

    /* "/" + name, cleaned, then the leading '/' dropped: relative to root */
    size_t n = strlen(name);
    char *clean = tern_http_req_alloc(r, n + 2);
    if (!clean)
        return -ENOMEM;
    clean[0] = '/';
    memcpy(clean + 1, name, n + 1);
    if (has_dotdot(clean))
        return tern_http_resp_error(w, 400, NULL);
    clean[tern_http_path_clean(clean, n + 1)] = '\0';

    open_job *j = tern_http_req_alloc(r, sizeof *j);
    if (!j)
        return -ENOMEM;
    *j = (open_job){
        .path = clean + 1,
        .root = o->root,
        .index = o->index ? o->index : "index.html",
        .fd = -1,
    };
    int rc = tern_blocking(open_static, j);
    if (j->was_dir && rc == 0) {
        size_t pl = strlen(tern_http_req_path(r));
        if (pl == 0 || tern_http_req_path(r)[pl - 1] != '/') {
            close(j->fd);
            return redirect_to_dir(r, w);
        }
    }
    if (rc == -EACCES || rc == -EPERM)
        return tern_http_resp_error(w, 403, NULL);
    /* not there, not a directory, or out of bounds (EXDEV, ELOOP): all
     * look alike from outside */
    if (rc == -ENOENT || rc == -ENOTDIR || rc == -EXDEV || rc == -ELOOP || rc == -ENAMETOOLONG)
        return tern_http_resp_error(w, 404, NULL);
    if (rc < 0)
        return rc;
    return serve_job(w, r, j, j->was_dir ? j->index : j->path);
}
