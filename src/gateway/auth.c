/*
 * auth.c - the gateway's bearer-token check (policy.h): the top-level
 * "jwt" section builds one key set and one set of claim rules per
 * configuration generation; every route with "auth" required or optional
 * calls tern__gw_auth_check, which finds the token (Authorization:
 * Bearer, else the configured cookie), verifies it with tern/jwt.h and
 * lists the claims to forward upstream as headers.
 *
 * A token that verified is remembered, by its exact bytes, with what the
 * request needs from it (subject, forwarded header values, the claims
 * when a limiter wants them) and the wall-clock interval in which it
 * verifies (tern_jwt_validity: exp, nbf, iat and the leeway).  The same
 * token again inside that interval is answered from the cache: verifying
 * was most of what the full gateway added to a request (base64url, two
 * JSON parses, the HMAC, the claims copied out: 43 thousand instructions
 * of bench/compare.sh gateway's 57), a lookup is a hash of the token and
 * a compare.  That is exact, not an approximation: the keys and rules are
 * the policy's own and do not change while it lives (a reload builds a
 * new policy with an empty cache), and everything else verification
 * checks is a function of the token's bytes and of the time.  Only tokens
 * that verified are entered, so a client without one cannot fill it.  The
 * cache is set-associative ("token_cache" entries, 4096 by default, 0 for
 * none; CACHE_WAYS per set, each set behind its own spinlock on its own
 * cache line): bounded, and an insert evicts an expired entry, else the
 * set's next in turn.
 *
 * Apart from the cache (its sets have their own locks) the policy holds
 * nothing that changes after it is built.  Keys come from a JWK Set
 * file (relative to the configuration's folder, read on the blocking
 * pool) and/or a shared HS256 secret from the environment; a new key is
 * picked up by the gateway's reload, which builds a new policy.
 *
 * A claim forwarded as a header is sent only if its text is a valid
 * header value (no control characters): a token's signer is trusted to
 * vouch for the claims, not to write arbitrary bytes into upstream
 * requests.  (The core drops these header names from every client
 * request itself, or a request with no token on an optional route could
 * carry its own X-User-Id.)
 */
#define _GNU_SOURCE /* strdup */

#include "gateway/auth_cfg.h"
#include "gateway/auth_claims.h"
#include "gateway/policy.h"

#include "base/check.h"
#include "base/spin.h"
#include "base/wall.h"

#include <errno.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tern/error.h"
#include "tern/jwt.h"
#include "tern/runtime.h"

#define CACHE_WAYS 4
#define CACHE_DEFAULT 4096
#define CACHE_MAX (1 << 20)

/* A token that verified and what a request presenting it gets: one
 * allocation, the strings in text after the token. */
typedef struct tok_entry {
    uint64_t hash;
    int64_t from, until;        /* wall ns: the token verifies while from <= now < until */
    bool claims_kept;           /* claims wanted when it verified: `claims` is the set */
    const char *sub;            /* the "sub" string; NULL: none */
    const char *claims;         /* the claims as compact JSON; NULL: not kept */
    const char *fwd[TERN__GW_FWD_MAX / 2]; /* the policy's claim[i] as a header value; NULL: not sent */
    size_t tok_len;
    char text[];                /* the token (tok_len bytes), then the strings */
} tok_entry;

typedef struct tok_set {
    alignas(64) tern__spin lock;        /* guards the rest */
    unsigned next;              /* the way evicted next when none is free or expired */
    uint64_t hits;              /* lookups answered (tests, through the stats) */
    tok_entry *way[CACHE_WAYS];
} tok_set;

struct tern__gw_auth {
    tern_jwt_keys *keys;
    tern_jwt_verify_options vo;
    char *issuer;
    char **audiences;
    size_t n_audiences;
    char *cookie;
    size_t n_fwd;
    char **claim;               /* forward claim[i] as header[i] */
    char **header;
    tok_set *sets;              /* the verified-token cache; NULL: none */
    size_t set_mask;            /* sets - 1 */
};

/* tern__gw_auth_claim's request value: the key is the address. */
static const char claims_key;
static atomic_bool claims_wanted;

void tern__gw_auth_want_claims(void)
{
    atomic_store(&claims_wanted, true);
}

int tern__gw_auth_claim(tern_http_req *r, const char *name, char *buf, size_t len)
{
    const char *text = tern_http_req_value(r, &claims_key);
    if (!text || len == 0)
        return -ENOENT;
    json_t *claims = json_loads(text, 0, NULL);
    const json_t *v = json_object_get(claims, name);
    int rc = -ENOENT;
    if (json_is_string(v)) {
        snprintf(buf, len, "%s", json_string_value(v));
        rc = 0;
    } else if (v && !json_is_null(v)) {
        char *dump = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        if (dump) {
            snprintf(buf, len, "%s", dump);
            free(dump);
            rc = 0;
        }
    }
    json_decref(claims);
    return rc;
}

static const char *const jwt_keys[] = {"jwks_file", "hs256_secret_env", "issuer", "audiences", "leeway",
                                       "cookie", "forward_claims", "require_exp", "token_cache", NULL};

void tern__gw_auth_free(tern__gw_auth *a)
{
    if (!a)
        return;
    for (size_t i = 0; a->sets && i <= a->set_mask; i++)
        for (size_t w = 0; w < CACHE_WAYS; w++)
            free(a->sets[i].way[w]);
    free(a->sets);
    tern_jwt_keys_free(a->keys);
    free(a->issuer);
    for (size_t i = 0; i < a->n_audiences; i++)
        free(a->audiences[i]);
    free(a->audiences);
    free(a->cookie);
    for (size_t i = 0; i < a->n_fwd; i++) {
        free(a->claim[i]);
        free(a->header[i]);
    }
    free(a->claim);
    free(a->header);
    free(a);
}

/* RFC 9110 5.6.2: a header name is a token. */
static bool is_token(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              strchr("!#$%&'*+-.^_`|~", c)))
            return false;
    }
    return true;
}

typedef struct jwks_load {
    tern_jwt_keys *keys;
    const char *path;
    char *err;
    size_t errlen;
    int rc;
} jwks_load;

static int load_jwks(void *arg)
{
    jwks_load *l = arg;
    l->rc = tern_jwt_keys_load_jwks_file(l->keys, l->path, l->err, l->errlen);
    return 0;
}

static int read_keys(tern__gw_auth *a, const json_t *cfg, const tern__gw_env *env, char *err,
                     size_t errlen)
{
    const json_t *file = json_object_get(cfg, "jwks_file");
    const json_t *envname = json_object_get(cfg, "hs256_secret_env");
    if (!file && !envname)
        return tern__gw_policy_err(err, errlen, "jwt: needs jwks_file or hs256_secret_env");
    if (file) {
        const char *f = json_string_value(file);
        if (!f || !*f)
            return tern__gw_policy_err(err, errlen, "jwt.jwks_file: must be a file name");
        char path[4096];
        if (f[0] == '/' || !env->config_dir || !*env->config_dir)
            snprintf(path, sizeof path, "%s", f);
        else
            snprintf(path, sizeof path, "%s/%s", env->config_dir, f);
        char why[512] = "";
        jwks_load l = {.keys = a->keys, .path = path, .err = why, .errlen = sizeof why};
        int rc = tern_blocking(load_jwks, &l);
        if (rc == 0)
            rc = l.rc;
        if (rc == -ENOMEM)
            return rc;
        if (rc != 0)
            return tern__gw_policy_err(err, errlen, "jwt.jwks_file: %s", why[0] ? why : tern_strerror(rc));
    }
    if (envname) {
        const char *name = json_string_value(envname);
        if (!name || !*name)
            return tern__gw_policy_err(err, errlen, "jwt.hs256_secret_env: must be a variable name");
        const char *secret = getenv(name);
        if (!secret || !*secret)
            return tern__gw_policy_err(err, errlen, "jwt.hs256_secret_env: %s is not set", name);
        int rc = tern_jwt_keys_add_hmac(a->keys, NULL, secret, strlen(secret));
        if (rc == -EINVAL)
            return tern__gw_policy_err(err, errlen,
                                       "jwt.hs256_secret_env: %s holds %zu bytes, HS256 needs 32 or more",
                                       name, strlen(secret));
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int read_rules(tern__gw_auth *a, const json_t *cfg, char *err, size_t errlen)
{
    const json_t *v;
    a->vo.require_exp = true;
    if ((v = json_object_get(cfg, "issuer"))) {
        if (!json_is_string(v) || !(a->issuer = strdup(json_string_value(v))))
            return json_is_string(v) ? -ENOMEM : tern__gw_policy_err(err, errlen, "jwt.issuer: must be a string");
        a->vo.issuer = a->issuer;
    }
    if ((v = json_object_get(cfg, "audiences"))) {
        /* a list, or one audience as a string */
        size_t n = json_is_array(v) ? json_array_size(v) : 1;
        if ((!json_is_array(v) && !json_is_string(v)) || n == 0)
            return tern__gw_policy_err(err, errlen, "jwt.audiences: must be a list of strings");
        if (!(a->audiences = calloc(n, sizeof *a->audiences)))
            return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
            const json_t *s = json_is_array(v) ? json_array_get(v, i) : v;
            if (!json_is_string(s))
                return tern__gw_policy_err(err, errlen, "jwt.audiences[%zu]: must be a string", i);
            if (!(a->audiences[i] = strdup(json_string_value(s))))
                return -ENOMEM;
            a->n_audiences++;
        }
        a->vo.audiences = (const char *const *)a->audiences;
        a->vo.n_audiences = a->n_audiences;
    }
    if ((v = json_object_get(cfg, "leeway")) && tern__gw_policy_duration(v, &a->vo.leeway) != 0)
        return tern__gw_policy_err(err, errlen, "jwt.leeway: must be a duration (\"30s\")");
    if ((v = json_object_get(cfg, "require_exp"))) {
        if (!json_is_boolean(v))
            return tern__gw_policy_err(err, errlen, "jwt.require_exp: must be true or false");
        a->vo.require_exp = json_is_true(v);
    }
    if ((v = json_object_get(cfg, "cookie"))) {
        if (!json_is_string(v) || !is_token(json_string_value(v)))
            return tern__gw_policy_err(err, errlen, "jwt.cookie: must be a cookie name");
        if (!(a->cookie = strdup(json_string_value(v))))
            return -ENOMEM;
    }
    size_t cache = CACHE_DEFAULT;
    if ((v = json_object_get(cfg, "token_cache"))) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > CACHE_MAX)
            return tern__gw_policy_err(err, errlen, "jwt.token_cache: must be a number of tokens from 0 to %d",
                                       CACHE_MAX);
        cache = (size_t)json_integer_value(v);
    }
    if (cache > 0) {
        size_t sets = 1;
        while (sets * CACHE_WAYS < cache)
            sets <<= 1;
        if (!(a->sets = aligned_alloc(alignof(tok_set), sets * sizeof *a->sets)))
            return -ENOMEM;
        memset(a->sets, 0, sets * sizeof *a->sets);
        a->set_mask = sets - 1;
    }
    if ((v = json_object_get(cfg, "forward_claims"))) {
        if (!json_is_object(v))
            return tern__gw_policy_err(err, errlen, "jwt.forward_claims: must map claims to header names");
        size_t n = json_object_size(v);
        if (n > TERN__GW_FWD_MAX / 2)
            return tern__gw_policy_err(err, errlen, "jwt.forward_claims: at most %d claims",
                                       TERN__GW_FWD_MAX / 2);
        a->claim = calloc(n ? n : 1, sizeof *a->claim);
        a->header = calloc(n ? n : 1, sizeof *a->header);
        if (!a->claim || !a->header)
            return -ENOMEM;
        const char *claim;
        const json_t *h;
        json_object_foreach((json_t *)v, claim, h) {
            if (!json_is_string(h) || !is_token(json_string_value(h)))
                return tern__gw_policy_err(err, errlen, "jwt.forward_claims.%s: must be a header name", claim);
            a->claim[a->n_fwd] = strdup(claim);
            a->header[a->n_fwd] = strdup(json_string_value(h));
            a->n_fwd++;
            if (!a->claim[a->n_fwd - 1] || !a->header[a->n_fwd - 1])
                return -ENOMEM;
        }
    }
    return 0;
}

int tern__gw_auth_new(const json_t *cfg, const tern__gw_env *env, tern__gw_auth **out, char *err,
                      size_t errlen)
{
    TERN_CHECK_ARG(env);
    TERN_CHECK_ARG(out);
    *out = NULL;
    if (err && errlen)
        err[0] = '\0';
    int rc = tern__gw_policy_keys(cfg, "jwt", jwt_keys, err, errlen);
    if (rc != 0)
        return rc;
    tern__gw_auth *a = calloc(1, sizeof *a);
    if (!a)
        return -ENOMEM;
    rc = tern_jwt_keys_new(&a->keys);
    if (rc == 0)
        rc = read_rules(a, cfg, err, errlen);
    if (rc == 0)
        rc = read_keys(a, cfg, env, err, errlen);
    if (rc != 0) {
        tern__gw_auth_free(a);
        return rc;
    }
    *out = a;
    return 0;
}

/* The token in r: from "Authorization: Bearer <token>" (RFC 6750 2.1; the
 * scheme's case does not matter), else the cookie.  NULL if neither. */
static const char *find_token(const tern__gw_auth *a, tern_http_req *r)
{
    const char *h = tern_http_req_header(r, "Authorization");
    if (h && strncasecmp(h, "Bearer", 6) == 0 && (h[6] == ' ' || h[6] == '\0')) {
        h += 6;
        while (*h == ' ')
            h++;
        return h;
    }
    if (a->cookie)
        return tern_http_req_cookie(r, a->cookie);
    return NULL;
}

/* Whether s can be sent as a header value (RFC 9110 5.5: visible
 * characters, spaces and tabs inside, obs-text). */
static bool header_value_ok(const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return false;
    }
    return true;
}

/* ---- the verified-token cache ---------------------------------------------- */

static uint64_t tok_hash(const char *s, size_t n)
{
    uint64_t h = 0x9e3779b97f4a7c15ull ^ n, w;
    for (; n >= 8; s += 8, n -= 8) {
        memcpy(&w, s, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdull;
        h ^= h >> 32;
    }
    w = 0;
    memcpy(&w, s, n);
    h = (h ^ w) * 0xc4ceb9fe1a85ec53ull;
    return h ^ (h >> 29);
}

static bool same_token(const tok_entry *e, uint64_t h, const char *tok, size_t len)
{
    return e && e->hash == h && e->tok_len == len && memcmp(e->text, tok, len) == 0;
}

/* What e grants, into r and fwd: 0 or -ENOMEM. */
static int apply(const tern__gw_auth *a, const tok_entry *e, tern_http_req *r, tern__gw_fwd *fwd,
                 const char **subject, bool want_claims)
{
    if (want_claims && e->claims) {
        /* kept as text in the request's memory: a tern_jwt would need
         * freeing when the request ends, and nothing runs then */
        char *kept = tern_http_req_strdup(r, e->claims);
        if (!kept || tern_http_req_set_value(r, &claims_key, kept) != 0)
            return -ENOMEM;
    }
    if (e->sub && subject && !(*subject = tern_http_req_strdup(r, e->sub)))
        return -ENOMEM;
    for (size_t i = 0; i < a->n_fwd; i++) {
        if (!e->fwd[i])
            continue;
        const char *v = tern_http_req_strdup(r, e->fwd[i]);
        if (!v)
            return -ENOMEM;
        if (tern__gw_fwd_add(fwd, a->header[i], v) != 0)
            break;      /* the core's own headers filled it: the rest stay out */
    }
    return 0;
}

/* Answer from the cache: 0 (applied), -ENOENT (not there: verify), or
 * -ENOMEM.  An entry past its interval is dropped; one made before claims
 * were wanted does not answer a request that wants them. */
static int cache_serve(tern__gw_auth *a, uint64_t h, const char *tok, size_t len, int64_t now,
                       bool want_claims, tern_http_req *r, tern__gw_fwd *fwd, const char **subject)
{
    tok_set *set = &a->sets[h & a->set_mask];
    tok_entry *gone = NULL;
    int rc = -ENOENT;
    tern__spin_lock(&set->lock);
    for (size_t w = 0; w < CACHE_WAYS; w++) {
        tok_entry *e = set->way[w];
        if (!same_token(e, h, tok, len))
            continue;
        if (now >= e->until) {
            gone = e;
            set->way[w] = NULL;
        } else if (now >= e->from && (e->claims_kept || !want_claims)) {
            /* copied under the lock, as the entry may be evicted once it
             * is released: a few small copies into the request's arena */
            rc = apply(a, e, r, fwd, subject, want_claims);
            set->hits++;
        }
        break;
    }
    tern__spin_unlock(&set->lock);
    free(gone);
    return rc;
}

/* Take e into the cache (the cache's from here): it replaces the same
 * token's entry, else fills a free way, else an expired one's, else the
 * set's next in turn. */
static void cache_add(tern__gw_auth *a, tok_entry *e, int64_t now)
{
    tok_set *set = &a->sets[e->hash & a->set_mask];
    size_t victim = CACHE_WAYS;
    tern__spin_lock(&set->lock);
    for (size_t w = 0; w < CACHE_WAYS && victim == CACHE_WAYS; w++)
        if (same_token(set->way[w], e->hash, e->text, e->tok_len))
            victim = w;
    for (size_t w = 0; w < CACHE_WAYS && victim == CACHE_WAYS; w++)
        if (!set->way[w])
            victim = w;
    for (size_t w = 0; w < CACHE_WAYS && victim == CACHE_WAYS; w++)
        if (now >= set->way[w]->until)
            victim = w;
    if (victim == CACHE_WAYS)
        victim = set->next++ % CACHE_WAYS;
    tok_entry *old = set->way[victim];
    set->way[victim] = e;
    tern__spin_unlock(&set->lock);
    free(old);
}

void tern__gw_auth_cache_stats(tern__gw_auth *a, size_t *entries, uint64_t *hits)
{
    TERN_CHECK_ARG(a);
    size_t n = 0;
    uint64_t h = 0;
    for (size_t i = 0; a->sets && i <= a->set_mask; i++) {
        tern__spin_lock(&a->sets[i].lock);
        for (size_t w = 0; w < CACHE_WAYS; w++)
            n += a->sets[i].way[w] != NULL;
        h += a->sets[i].hits;
        tern__spin_unlock(&a->sets[i].lock);
    }
    if (entries)
        *entries = n;
    if (hits)
        *hits = h;
}

void tern__gw_auth_set_clock(tern__gw_auth *a, int64_t wall_ns)
{
    TERN_CHECK_ARG(a);
    a->vo.now = wall_ns;
}

/* The entry for a token t that verified: NULL for no memory. */
static tok_entry *entry_of(const tern__gw_auth *a, const tern_jwt *t, uint64_t h, const char *tok,
                           size_t len, bool want_claims)
{
    const char *sub = tern_jwt_claim_string(t, "sub");
    char *claims = NULL, *fwd[TERN__GW_FWD_MAX / 2] = {0};
    size_t size = len + 1 + (sub ? strlen(sub) + 1 : 0);
    bool ok = !want_claims || tern_jwt_claims_json(t, &claims) == 0;
    if (claims)
        size += strlen(claims) + 1;
    TERN_ASSERT(a->n_fwd <= TERN__GW_FWD_MAX / 2);  /* read_rules' bound */
    for (size_t i = 0; ok && i < a->n_fwd; i++) {
        int got = tern_jwt_claim_text(t, a->claim[i], &fwd[i]);
        ok = got == 0 || got == -ENOENT;
        if (fwd[i] && !header_value_ok(fwd[i])) {
            free(fwd[i]);
            fwd[i] = NULL;
        }
        if (fwd[i])
            size += strlen(fwd[i]) + 1;
    }
    tok_entry *e = ok ? malloc(sizeof *e + size) : NULL;
    if (e) {
        memset(e, 0, sizeof *e);
        e->hash = h;
        e->tok_len = len;
        e->claims_kept = want_claims;
        tern_jwt_validity(t, &a->vo, &e->from, &e->until);
        char *p = e->text;
        memcpy(p, tok, len);
        p[len] = '\0';
        p += len + 1;
#define KEEP(dst, src)                        \
    do {                                      \
        size_t n_ = strlen(src) + 1;          \
        memcpy(p, (src), n_);                 \
        (dst) = p;                            \
        p += n_;                              \
    } while (0)
        if (sub)
            KEEP(e->sub, sub);
        if (claims)
            KEEP(e->claims, claims);
        for (size_t i = 0; i < a->n_fwd; i++)
            if (fwd[i])
                KEEP(e->fwd[i], fwd[i]);
#undef KEEP
        TERN_ASSERT(p == e->text + size);
    }
    free(claims);
    for (size_t i = 0; i < a->n_fwd; i++)
        free(fwd[i]);
    return e;
}

int tern__gw_auth_check(tern__gw_auth *a, tern_http_req *r, tern__gw_fwd *fwd, const char **subject,
                        const char **why)
{
    TERN_CHECK_ARG(a);
    TERN_CHECK_ARG(r);
    TERN_CHECK_ARG(fwd);
    if (subject)
        *subject = NULL;
    const char *tok = find_token(a, r);
    if (!tok)
        return -ENOENT;
    if (!*tok) {
        if (why)
            *why = "empty bearer token";
        return -EACCES;
    }
    size_t len = strlen(tok);
    bool want_claims = atomic_load_explicit(&claims_wanted, memory_order_relaxed);
    int64_t now = a->vo.now ? a->vo.now : tern__wall_ns();
    uint64_t h = tok_hash(tok, len);
    int rc = a->sets ? cache_serve(a, h, tok, len, now, want_claims, r, fwd, subject) : -ENOENT;
    if (rc != -ENOENT) {
        if (rc != 0 && why)
            *why = "out of memory";
        return rc;
    }
    tern_jwt *t;
    const char *reason = NULL;
    /* verified at `now`, the instant the cache compares with */
    tern_jwt_verify_options vo = a->vo;
    vo.now = now;
    rc = tern_jwt_verify(a->keys, tok, len, &vo, &t, &reason);
    if (rc != 0) {
        if (why)
            *why = rc == -EACCES ? reason : "out of memory";
        return rc;
    }
    tok_entry *e = entry_of(a, t, h, tok, len, want_claims);
    tern_jwt_free(t);
    rc = e ? apply(a, e, r, fwd, subject, want_claims) : -ENOMEM;
    if (e && rc == 0 && a->sets)
        cache_add(a, e, now);
    else
        free(e);
    if (rc != 0 && why)
        *why = "out of memory";
    return rc;
}
