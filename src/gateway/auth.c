/*
 * auth.c - the gateway's bearer-token check (policy.h): the top-level
 * "jwt" section builds one key set and one set of claim rules per
 * configuration generation; every route with "auth" required or optional
 * calls tern__gw_auth_check, which finds the token (Authorization:
 * Bearer, else the configured cookie), verifies it with tern/jwt.h and
 * lists the claims to forward upstream as headers.
 *
 * The policy holds nothing that changes after it is built, so any number
 * of requests check at once without a lock.  Keys come from a JWK Set
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

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tern/error.h"
#include "tern/jwt.h"
#include "tern/runtime.h"

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
                                       "cookie", "forward_claims", "require_exp", NULL};

void tern__gw_auth_free(tern__gw_auth *a)
{
    if (!a)
        return;
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
    tern_jwt *t;
    const char *reason = NULL;
    int rc = tern_jwt_verify(a->keys, tok, strlen(tok), &a->vo, &t, &reason);
    if (rc != 0) {
        if (why)
            *why = rc == -EACCES ? reason : "out of memory";
        return rc;
    }
    rc = 0;
    if (atomic_load_explicit(&claims_wanted, memory_order_relaxed)) {
        /* kept as text in the request's memory: a tern_jwt would need
         * freeing when the request ends, and nothing runs then */
        char *text;
        rc = tern_jwt_claims_json(t, &text);
        char *kept = rc == 0 ? tern_http_req_strdup(r, text) : NULL;
        if (rc == 0)
            free(text);
        if (rc == 0 && (!kept || tern_http_req_set_value(r, &claims_key, kept) != 0))
            rc = -ENOMEM;
    }
    const char *sub = tern_jwt_claim_string(t, "sub");
    if (rc == 0 && sub && subject && !(*subject = tern_http_req_strdup(r, sub)))
        rc = -ENOMEM;
    for (size_t i = 0; rc == 0 && i < a->n_fwd; i++) {
        char *text;
        int got = tern_jwt_claim_text(t, a->claim[i], &text);
        if (got == -ENOENT)
            continue;
        if (got != 0) {
            rc = got;
            break;
        }
        const char *v = header_value_ok(text) ? tern_http_req_strdup(r, text) : NULL;
        free(text);
        if (v && tern__gw_fwd_add(fwd, a->header[i], v) != 0)
            break;      /* the core's own headers filled it: the rest stay out */
    }
    tern_jwt_free(t);
    if (rc != 0 && why)
        *why = "out of memory";
    return rc;
}
