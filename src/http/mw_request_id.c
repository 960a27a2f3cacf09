/*
 * mw_request_id.c - the request id middleware: one id per request, taken
 * from the client when it is harmless or made here, put on the response
 * and handed to later links as a request value.
 *
 * Ids are made often (every request), so they come from a per-thread
 * xoshiro256** generator seeded once from getrandom(2) rather than from a
 * syscall each: 128 bits of a good PRNG make collisions across a fleet
 * vanishingly unlikely, which is all an id needs.  The generator runs
 * without parking, so a coroutine moving between threads never sees
 * another thread's state half-updated.
 */
#define _GNU_SOURCE
#include "tern/http_mw.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define RID_MAX 128

const char tern_http_request_id_key = 0;

typedef struct rng {
    uint64_t s[4];
    bool seeded;
} rng;

static __thread rng tls_rng;

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

/* splitmix64 spreads a weak fallback seed over the whole state */
static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static void rng_seed(rng *g)
{
    if (getrandom(g->s, sizeof g->s, GRND_NONBLOCK) != (ssize_t)sizeof g->s) {
        /* no entropy yet (early boot) or no getrandom: ids must still
         * differ between threads and processes, not be unguessable */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t x = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
        x ^= (uint64_t)getpid() << 32 ^ (uint64_t)(uintptr_t)g;
        for (int i = 0; i < 4; i++)
            g->s[i] = splitmix(&x);
    }
    if ((g->s[0] | g->s[1] | g->s[2] | g->s[3]) == 0)
        g->s[0] = 1;            /* the one state xoshiro never leaves */
    g->seeded = true;
}

static uint64_t rng_next(rng *g)
{
    uint64_t *s = g->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

/* noinline: the thread-local's address is taken here, on the thread that
 * runs this call, never cached by a caller across a park */
static __attribute__((noinline)) void make_id(char out[33])
{
    static const char hex[] = "0123456789abcdef";
    rng *g = &tls_rng;
    if (!g->seeded)
        rng_seed(g);
    uint64_t v[2] = {rng_next(g), rng_next(g)};
    for (int i = 0; i < 32; i++)
        out[i] = hex[(v[i / 16] >> (60 - 4 * (i % 16))) & 0xf];
    out[32] = '\0';
}

/* Harmless in a header, a log line and a shell: no quotes, spaces or
 * controls, bounded. */
static bool valid_id(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++) {
        unsigned char c = (unsigned char)s[n];
        bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                  (c && strchr("._:+/=-", c));
        if (!ok || n >= RID_MAX)
            return false;
    }
    return n > 0;
}

int tern_http_mw_request_id(tern_http_req *r, tern_http_resp *w, void *opts)
{
    const tern_http_request_id_options *o = opts;
    const char *header = o && o->header ? o->header : "X-Request-Id";
    const char *in = o && o->ignore_incoming ? NULL : tern_http_req_header(r, header);
    char made[33];
    char *id;
    if (in && valid_id(in)) {
        id = (char *)in;        /* lives as long as the request */
    } else {
        make_id(made);
        if (!(id = tern_http_req_strdup(r, made)))
            return -ENOMEM;
    }
    int rc = tern_http_req_set_value(r, &tern_http_request_id_key, id);
    if (rc == 0)
        rc = tern_http_resp_set_header(w, header, id);
    if (rc < 0)
        return rc;
    return tern_http_next(r, w);
}

const char *tern_http_request_id(const tern_http_req *r)
{
    return tern_http_req_value(r, &tern_http_request_id_key);
}
