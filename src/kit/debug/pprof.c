/*
 * pprof.c - CPU profiles as Go's pprof reads them: profile.proto
 * (github.com/google/pprof/proto/profile.proto), gzipped, encoded by hand
 * with only the messages and fields pprof needs.
 *
 * Locations are the unique sampled addresses.  Each carries the mapping
 * (from /proc/self/maps) it falls in, so `go tool pprof` can symbolize it
 * from the binary on disk, and a Function with its name when one is known
 * here: from dladdr (what shared libraries export), else from the
 * executable's own symbol table (symtab.c), so that the profile
 * names our functions even where pprof's symbolizer cannot.  Each sample
 * is written as it was taken (values: 1 sample, period ns); pprof merges
 * equal stacks itself.
 */
#define _GNU_SOURCE
#include "kit/debug/internal.h"

#include <ctype.h>
#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <link.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "base/buf.h"
#include "base/check.h"
#include "tern/chan.h"
#include "tern/context.h"
#include "tern/debug.h"
#include "tern/runtime.h"

/* Samples a profile keeps at most (about 33 MiB of buffer): 30 s on 20
 * busy CPUs at 100 Hz.  Beyond it samples are dropped. */
#define MAX_SAMPLES ((size_t)60000)

/* ---- a protobuf writer ------------------------------------------------------------ */

typedef tern__buf pbuf;

/* an empty message may have no buffer yet: tern__buf_put takes n == 0 */
static void pb_put(pbuf *b, const void *data, size_t n) { tern__buf_put(b, data, n); }

static void pb_varint(pbuf *b, uint64_t v)
{
    uint8_t tmp[10];
    size_t n = 0;
    do {
        tmp[n++] = (uint8_t)((v & 0x7f) | (v >= 0x80 ? 0x80 : 0));
        v >>= 7;
    } while (v);
    pb_put(b, tmp, n);
}

enum { WIRE_VARINT = 0, WIRE_LEN = 2 };

static void pb_uint(pbuf *b, unsigned field, uint64_t v)
{
    pb_varint(b, (uint64_t)field << 3 | WIRE_VARINT);
    pb_varint(b, v);
}

static void pb_bytes(pbuf *b, unsigned field, const void *data, size_t n)
{
    pb_varint(b, (uint64_t)field << 3 | WIRE_LEN);
    pb_varint(b, n);
    pb_put(b, data, n);
}

/* Append sub as field of b, and empty sub for reuse. */
static void pb_msg(pbuf *b, unsigned field, pbuf *sub)
{
    pb_bytes(b, field, sub->p, sub->len);
    b->oom |= sub->oom;
    sub->len = 0;
}

/* ---- the string table ----------------------------------------------------------- */

typedef struct strtab {
    char **s;
    size_t n, cap;
    bool oom;
} strtab;

/* The index of s, added if new.  Tables stay small (units, function and
 * file names), so a linear search is enough. */
static uint64_t str_index(strtab *t, const char *s)
{
    for (size_t i = 0; i < t->n; i++)
        if (!strcmp(t->s[i], s))
            return i;
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 64;
        char **p = realloc(t->s, cap * sizeof *p);
        if (!p) {
            t->oom = true;
            return 0;
        }
        t->s = p;
        t->cap = cap;
    }
    if (!(t->s[t->n] = strdup(s))) {
        t->oom = true;
        return 0;
    }
    return t->n++;
}

/* ---- mappings ------------------------------------------------------------------------ */

typedef struct mapping {
    uintptr_t start, limit, offset;
    uint64_t file;              /* string index */
    bool named;                 /* its functions named from the executable's symbols */
} mapping;

/* The executable mappings of files, in address order (as the kernel lists
 * them).  *n = 0 when /proc is not there: pprof then shows addresses. */
static mapping *read_maps(strtab *t, size_t *n)
{
    *n = 0;
    FILE *f = fopen("/proc/self/maps", "re");
    if (!f)
        return NULL;
    mapping *m = NULL;
    size_t cap = 0;
    char *line = NULL;
    size_t ll = 0;
    while (getline(&line, &ll, f) > 0) {
        uintptr_t start, end, off;
        char perms[8];
        int path_at = 0;
        if (sscanf(line, "%" SCNxPTR "-%" SCNxPTR " %7s %" SCNxPTR " %*s %*s %n", &start, &end,
                   perms, &off, &path_at) < 4 ||
            !strchr(perms, 'x') || !path_at || line[path_at] != '/')
            continue;
        line[strcspn(line, "\n")] = '\0';
        if (*n == cap) {
            cap = cap ? cap * 2 : 32;
            mapping *p = realloc(m, cap * sizeof *p);
            if (!p)
                break;
            m = p;
        }
        m[(*n)++] = (mapping){.start = start, .limit = end, .offset = off,
                              .file = str_index(t, line + path_at)};
    }
    free(line);
    fclose(f);
    return m;
}

/* The 1-based id of the mapping holding addr, or 0. */
static uint64_t mapping_of(const mapping *m, size_t n, uintptr_t addr)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (addr < m[mid].start)
            hi = mid;
        else if (addr >= m[mid].limit)
            lo = mid + 1;
        else
            return mid + 1;
    }
    return 0;
}

/* ---- the profile ------------------------------------------------------------------------ */

static int cmp_addr(const void *a, const void *b)
{
    uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
    return x < y ? -1 : x > y;
}

/* The 1-based location id of addr among the sorted unique addresses. */
static uint64_t location_of(const uintptr_t *addrs, size_t n, uintptr_t addr)
{
    const uintptr_t *p = bsearch(&addr, addrs, n, sizeof *addrs, cmp_addr);
    return p ? (uint64_t)(p - addrs) + 1 : 0;
}

static void value_type(pbuf *b, unsigned field, pbuf *tmp, uint64_t type, uint64_t unit)
{
    pb_uint(tmp, 1, type);
    pb_uint(tmp, 2, unit);
    pb_msg(b, field, tmp);
}

/* Profile fields. */
enum {
    P_SAMPLE_TYPE = 1, P_SAMPLE = 2, P_MAPPING = 3, P_LOCATION = 4, P_FUNCTION = 5,
    P_STRING_TABLE = 6, P_TIME_NANOS = 9, P_DURATION_NANOS = 10, P_PERIOD_TYPE = 11,
    P_PERIOD = 12,
};

/* dl_iterate_phdr lists the executable first: its load bias. */
static int exe_bias(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    *(uintptr_t *)arg = (uintptr_t)info->dlpi_addr;
    return 1;
}

/* The Location of each unique address (ids 1..n in address order) and a
 * Function for each symbol name found (dladdr, else exe), written after
 * them: each function once, however many locations lie in it. */
static void locations(pbuf *out, strtab *t, const uintptr_t *addrs, size_t nu,
                      mapping *maps, size_t nmaps, const tern__symtab *exe)
{
    pbuf tmp = {0}, tmp2 = {0};
    /* Functions get ids in the order first seen, remembered per name. */
    uint64_t *fid_of_str = NULL;
    size_t fid_cap = 0;
    uint64_t nfuncs = 0;
    pbuf funcs = {0};
    for (size_t i = 0; i < nu; i++) {
        pb_uint(&tmp, 1, i + 1);            /* Location.id */
        uint64_t m = mapping_of(maps, nmaps, addrs[i]);
        if (m)
            pb_uint(&tmp, 2, m);
        pb_uint(&tmp, 3, addrs[i]);
        Dl_info info;
        const char *sym = NULL, *file = NULL;
        if (dladdr((void *)addrs[i], &info) && info.dli_sname) {
            sym = info.dli_sname;
            file = info.dli_fname;
        } else if ((sym = tern__symtab_find(exe, addrs[i])) && m) {
            maps[m - 1].named = true;
        }
        if (sym) {
            uint64_t name = str_index(t, sym);
            if (name >= fid_cap) {
                size_t cap = fid_cap ? fid_cap : 64;
                while (cap <= name)
                    cap *= 2;
                uint64_t *p = realloc(fid_of_str, cap * sizeof *p);
                if (!p) {
                    t->oom = true;
                    break;
                }
                memset(p + fid_cap, 0, (cap - fid_cap) * sizeof *p);
                fid_of_str = p;
                fid_cap = cap;
            }
            if (!fid_of_str[name]) {
                fid_of_str[name] = ++nfuncs;
                pb_uint(&tmp2, 1, nfuncs);  /* Function.id */
                pb_uint(&tmp2, 2, name);    /* name */
                pb_uint(&tmp2, 3, name);    /* system_name */
                if (file)
                    pb_uint(&tmp2, 4, str_index(t, file));
                pb_msg(&funcs, P_FUNCTION, &tmp2);
            }
            pb_uint(&tmp2, 1, fid_of_str[name]);    /* Line.function_id */
            pb_msg(&tmp, 4, &tmp2);                 /* Location.line */
        }
        pb_msg(out, P_LOCATION, &tmp);
    }
    pb_put(out, funcs.p, funcs.len);
    out->oom |= funcs.oom | tmp.oom | tmp2.oom;
    free(fid_of_str);
    free(funcs.p);
    free(tmp.p);
    free(tmp2.p);
}

/* The profile, not yet compressed. */
static int encode(const tern__prof_buf *b, int64_t period, int64_t time_nanos,
                  int64_t duration_nanos, pbuf *out)
{
    size_t ns = atomic_load(&b->next);
    if (ns > b->cap)
        ns = b->cap;
    size_t nframes = 0;
    for (size_t i = 0; i < ns; i++)
        if (atomic_load_explicit(&b->s[i].ready, memory_order_acquire))
            nframes += b->s[i].depth;
    uintptr_t *addrs = malloc((nframes ? nframes : 1) * sizeof *addrs);
    if (!addrs)
        return -ENOMEM;
    size_t na = 0;
    for (size_t i = 0; i < ns; i++)
        if (atomic_load_explicit(&b->s[i].ready, memory_order_acquire))
            for (uint32_t d = 0; d < b->s[i].depth; d++)
                addrs[na++] = b->s[i].pc[d];
    qsort(addrs, na, sizeof *addrs, cmp_addr);
    size_t nu = 0;
    for (size_t i = 0; i < na; i++)
        if (nu == 0 || addrs[nu - 1] != addrs[i])
            addrs[nu++] = addrs[i];

    strtab t = {0};
    str_index(&t, "");      /* string_table[0] must be "" */
    uint64_t s_samples = str_index(&t, "samples"), s_count = str_index(&t, "count");
    uint64_t s_cpu = str_index(&t, "cpu"), s_ns = str_index(&t, "nanoseconds");
    size_t nmaps;
    mapping *maps = read_maps(&t, &nmaps);
    pbuf tmp = {0}, tmp2 = {0};

    value_type(out, P_SAMPLE_TYPE, &tmp, s_samples, s_count);
    value_type(out, P_SAMPLE_TYPE, &tmp, s_cpu, s_ns);

    for (size_t i = 0; i < ns; i++) {
        const tern__prof_sample *s = &b->s[i];
        if (!atomic_load_explicit(&s->ready, memory_order_acquire))
            continue;
        for (uint32_t d = 0; d < s->depth; d++)
            pb_varint(&tmp2, location_of(addrs, nu, s->pc[d]));
        pb_msg(&tmp, 1, &tmp2);             /* Sample.location_id, packed */
        pb_varint(&tmp2, 1);
        pb_varint(&tmp2, (uint64_t)period);
        pb_msg(&tmp, 2, &tmp2);             /* Sample.value, packed */
        pb_msg(out, P_SAMPLE, &tmp);
    }

    /* the executable's functions, for what dladdr cannot name; none if
     * its file cannot be read (pprof may still symbolize from disk) */
    uintptr_t bias = 0;
    dl_iterate_phdr(exe_bias, &bias);
    tern__symtab exe;
    (void)tern__symtab_load(&exe, "/proc/self/exe", bias);
    locations(out, &t, addrs, nu, maps, nmaps, &exe);
    tern__symtab_free(&exe);

    /* After the locations (protobuf fields may come in any order): a
     * mapping whose functions this profile names says so, and pprof then
     * keeps those names rather than symbolizing it again from the binary,
     * which with gcc's link-time optimization yields no names at all with
     * Debian's llvm-symbolizer.  The price is source lines for it: `go
     * tool pprof -symbolize=force` asks for them from the binary. */
    for (size_t i = 0; i < nmaps; i++) {
        pb_uint(&tmp, 1, i + 1);            /* id */
        pb_uint(&tmp, 2, maps[i].start);
        pb_uint(&tmp, 3, maps[i].limit);
        pb_uint(&tmp, 4, maps[i].offset);
        pb_uint(&tmp, 5, maps[i].file);
        if (maps[i].named)
            pb_uint(&tmp, 7, 1);            /* has_functions */
        pb_msg(out, P_MAPPING, &tmp);
    }

    for (size_t i = 0; i < t.n; i++)
        pb_bytes(out, P_STRING_TABLE, t.s[i], strlen(t.s[i]));
    pb_uint(out, P_TIME_NANOS, (uint64_t)time_nanos);
    pb_uint(out, P_DURATION_NANOS, (uint64_t)duration_nanos);
    value_type(out, P_PERIOD_TYPE, &tmp, s_cpu, s_ns);
    pb_uint(out, P_PERIOD, (uint64_t)period);

    bool oom = out->oom || t.oom || tmp.oom || tmp2.oom;
    for (size_t i = 0; i < t.n; i++)
        free(t.s[i]);
    free(t.s);
    free(maps);
    free(addrs);
    free(tmp.p);
    free(tmp2.p);
    return oom ? -ENOMEM : 0;
}

static int gzip_bytes(const uint8_t *in, size_t n, void **out, size_t *len)
{
    z_stream z = {0};
    if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) !=
        Z_OK)
        return -ENOMEM;
    size_t cap = deflateBound(&z, n);
    uint8_t *buf = malloc(cap);
    if (!buf) {
        deflateEnd(&z);
        return -ENOMEM;
    }
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)n;
    z.next_out = buf;
    z.avail_out = (uInt)cap;
    int zr = deflate(&z, Z_FINISH);
    size_t got = cap - z.avail_out;
    deflateEnd(&z);
    if (zr != Z_STREAM_END) {
        free(buf);
        return -ENOMEM;
    }
    *out = buf;
    *len = got;
    return 0;
}

int tern__pprof_encode(const tern__prof_buf *b, int64_t period, int64_t time_nanos,
                       int64_t duration_nanos, void **out, size_t *len)
{
    pbuf raw = {0};
    int rc = encode(b, period, time_nanos, duration_nanos, &raw);
    if (rc == 0)
        rc = gzip_bytes((const uint8_t *)raw.p, raw.len, out, len);
    free(raw.p);
    return rc;
}

/* ---- profiling for a while --------------------------------------------------------- */

int tern_debug_cpu_profile(int64_t ns, void **out, size_t *len, tern_ctx *ctx)
{
    TERN_CHECK_ARG(out);
    TERN_CHECK_ARG(len);
    *out = NULL;
    *len = 0;
    if (ns <= 0)
        return -EINVAL;
    /* ITIMER_PROF counts the process's CPU time, so samples come at most at
     * the rate times the CPUs. */
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    double want = (double)ns / TERN_SEC * TERN_DEBUG_PROFILE_HZ * (cpus > 0 ? cpus : 1) + 64;
    size_t cap = want > (double)MAX_SAMPLES ? MAX_SAMPLES : (size_t)want;
    struct timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    int64_t t0 = tern_now();
    int rc = tern__prof_start(cap);
    if (rc < 0)
        return rc;
    int slept = tern_ctx_sleep(ns, ctx);
    tern__prof_buf *b = tern__prof_stop();
    if (slept < 0) {
        free(b);
        return slept;           /* nobody wants a cut-short profile */
    }
    int64_t dur = tern_now() - t0;
    rc = tern__pprof_encode(b, TERN_SEC / TERN_DEBUG_PROFILE_HZ,
                            (int64_t)wall.tv_sec * TERN_SEC + wall.tv_nsec, dur, out, len);
    free(b);
    return rc;
}

int tern_debug_pprof_profile(tern_http_req *r, tern_http_resp *w, void *arg)
{
    (void)arg;
    long secs = 30;
    const char *q = tern_http_req_query(r, "seconds");
    if (q) {
        char *end;
        errno = 0;
        secs = strtol(q, &end, 10);
        /* digits only: strtol alone would also take " 5" and "+5" */
        if (errno || !isdigit((unsigned char)*q) || *end || secs < 1 || secs > 3600)
            return tern_http_resp_error(w, 400, "seconds must be an integer from 1 to 3600\n");
    }
    void *data;
    size_t len;
    int rc = tern_debug_cpu_profile(secs * TERN_SEC, &data, &len, tern_http_req_ctx(r));
    if (rc == -EBUSY)
        return tern_http_resp_error(w, 409, "a CPU profile is already running\n");
    if (rc < 0)
        return rc;
    tern_http_resp_set_header(w, "Content-Disposition", "attachment; filename=\"profile\"");
    tern_http_resp_set_header(w, "Cache-Control", "no-store");
    rc = tern_http_resp_send(w, 200, "application/octet-stream", data, len);
    free(data);
    return rc;
}
