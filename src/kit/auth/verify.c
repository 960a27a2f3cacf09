/*
 * verify.c - a compact JWS token checked in the order that spends the
 * least on a bad one: its size and shape, its header (alg, kid, crit),
 * the key its algorithm and kid select, the signature, and only then its
 * claims (RFC 7519 section 7.2; exp, nbf, iat, iss, aud per 4.1).
 *
 * The claims are parsed (jansson, after the depth scan) only from a
 * token whose signature holds, so an unauthenticated caller can make the
 * verifier parse at most a small header.
 */
#define _GNU_SOURCE /* strdup */

#include "kit/auth/internal.h"

#include "base/check.h"
#include "base/json_depth.h"
#include "base/wall.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define NS_PER_S 1000000000LL

struct tern_jwt {
    json_t *header;
    json_t *claims;
    const char *alg;
    const char *kid;
};

/* A base64url part decoded and parsed as a JSON object; NULL if it is not
 * one (or no memory). */
static json_t *part_object(const char *p, size_t n)
{
    unsigned char *buf = malloc(n * 3 / 4 + 1);
    if (!buf)
        return NULL;
    long len = tern__b64url_decode(p, n, buf);
    json_t *v = NULL;
    if (len > 0 && tern__json_depth_ok((const char *)buf, (size_t)len, TERN__JWT_DEPTH_MAX))
        v = json_loadb((const char *)buf, (size_t)len, JSON_REJECT_DUPLICATES, NULL);
    free(buf);
    if (v && !json_is_object(v)) {
        json_decref(v);
        v = NULL;
    }
    return v;
}

/* A NumericDate (seconds, maybe with a fraction) as ns, saturated: 0, or
 * -EINVAL when v is not a number. */
static int numeric_date(const json_t *v, int64_t *ns)
{
    double s;
    if (json_is_integer(v))
        s = (double)json_integer_value(v);
    else if (json_is_real(v))
        s = json_real_value(v);
    else
        return -EINVAL;
    if (!isfinite(s))
        return -EINVAL;
    if (s >= (double)INT64_MAX / NS_PER_S)
        *ns = INT64_MAX;
    else if (s <= (double)INT64_MIN / NS_PER_S)
        *ns = INT64_MIN;
    else
        *ns = (int64_t)(s * NS_PER_S);
    return 0;
}

static int64_t sat_add(int64_t a, int64_t b)
{
    int64_t r;
    if (__builtin_add_overflow(a, b, &r))
        return b > 0 ? INT64_MAX : INT64_MIN;
    return r;
}

static bool audience_ok(const json_t *aud, const tern_jwt_verify_options *o)
{
    for (size_t i = 0; i < o->n_audiences; i++) {
        if (json_is_string(aud) && strcmp(json_string_value(aud), o->audiences[i]) == 0)
            return true;
        size_t j;
        const json_t *a;
        json_array_foreach(aud, j, a) if (json_is_string(a) && strcmp(json_string_value(a), o->audiences[i]) == 0)
            return true;
    }
    return false;
}

/* The registered claims against o: NULL, or why they fail. */
static const char *claims_fail(const json_t *c, const tern_jwt_verify_options *o)
{
    int64_t now = o->now ? o->now : tern__wall_ns();
    int64_t leeway = o->leeway > 0 ? o->leeway : 0;
    int64_t t;
    const json_t *v;
    if ((v = json_object_get(c, "exp"))) {
        if (numeric_date(v, &t) != 0)
            return "malformed exp";
        /* RFC 7519 4.1.4: valid only before exp */
        if (now >= sat_add(t, leeway))
            return "token expired";
    } else if (o->require_exp)
        return "token has no exp";
    if ((v = json_object_get(c, "nbf"))) {
        if (numeric_date(v, &t) != 0)
            return "malformed nbf";
        if (sat_add(now, leeway) < t)
            return "token not yet valid";
    }
    if ((v = json_object_get(c, "iat"))) {
        if (numeric_date(v, &t) != 0)
            return "malformed iat";
        if (sat_add(now, leeway) < t)
            return "token issued in the future";
    }
    if (o->issuer) {
        const char *iss = json_string_value(json_object_get(c, "iss"));
        if (!iss || strcmp(iss, o->issuer) != 0)
            return "wrong issuer";
    }
    if (o->n_audiences && !audience_ok(json_object_get(c, "aud"), o))
        return "wrong audience";
    return NULL;
}

void tern_jwt_validity(const tern_jwt *t, const tern_jwt_verify_options *o, int64_t *from, int64_t *until)
{
    TERN_CHECK_ARG(t);
    TERN_CHECK_ARG(from);
    TERN_CHECK_ARG(until);
    int64_t leeway = o && o->leeway > 0 ? o->leeway : 0;
    int64_t v;
    *from = INT64_MIN;
    *until = INT64_MAX;
    /* claims_fail's tests solved for now: now < exp + leeway, and
     * now + leeway >= nbf (iat) -> now >= nbf - leeway, both saturated as
     * there; a verified token's dates are numbers */
    if (numeric_date(json_object_get(t->claims, "exp"), &v) == 0)
        *until = sat_add(v, leeway);
    static const char *const lower[] = {"nbf", "iat"};
    for (size_t i = 0; i < 2; i++)
        if (numeric_date(json_object_get(t->claims, lower[i]), &v) == 0 && sat_add(v, -leeway) > *from)
            *from = sat_add(v, -leeway);
}

/* Whether the signature holds under a key the token may use: *why says
 * why not. */
static bool signature_ok(const tern_jwt_keys *k, int kind, const char *kid, const char *in, size_t n,
                         const unsigned char *sig, size_t siglen, const char **why)
{
    /* A kid names its key; a kid the set lacks falls to the keys added
     * without one (a single shared secret); no kid tries every key. */
    bool named = false;
    if (kid)
        for (size_t i = 0; i < k->n; i++)
            named |= k->v[i].kid && strcmp(k->v[i].kid, kid) == 0;
    bool any_kind = false, tried = false;
    for (size_t i = 0; i < k->n; i++) {
        const tern__jwt_key *key = &k->v[i];
        if (kid && named && (!key->kid || strcmp(key->kid, kid) != 0))
            continue;
        if (kid && !named && key->kid)
            continue;
        tried = true;
        if ((int)key->kind != kind)
            continue;
        any_kind = true;
        if (tern__jwt_sig_check(key, in, n, sig, siglen))
            return true;
    }
    *why = !tried ? "unknown key id" : !any_kind ? "alg does not match the key" : "bad signature";
    return false;
}

int tern_jwt_verify(const tern_jwt_keys *k, const char *token, size_t len,
                    const tern_jwt_verify_options *o, tern_jwt **out, const char **why)
{
    TERN_CHECK_ARG(k);
    TERN_CHECK_ARG(token);
    static const tern_jwt_verify_options defaults;
    const char *reason = NULL;
    if (out)
        *out = NULL;
    if (!o)
        o = &defaults;
    if (len > TERN__JWT_TOKEN_MAX) {
        reason = "token too long";
        goto refuse;
    }
    const char *dot1 = memchr(token, '.', len);
    const char *dot2 = dot1 ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token)) : NULL;
    if (!dot2 || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token))) {
        reason = "malformed token";
        goto refuse;
    }
    tern_jwt *t = calloc(1, sizeof *t);
    if (!t)
        return -ENOMEM;
    t->header = part_object(token, (size_t)(dot1 - token));
    if (!t->header) {
        reason = "malformed token header";
        goto refuse_t;
    }
    const json_t *algv = json_object_get(t->header, "alg");
    const json_t *kidv = json_object_get(t->header, "kid");
    t->alg = json_string_value(algv);
    t->kid = json_string_value(kidv);
    if (!t->alg || (kidv && !t->kid)) {
        reason = "malformed token header";
        goto refuse_t;
    }
    int kind = tern__jwt_alg_kind(t->alg);
    if (kind < 0) {
        reason = strcmp(t->alg, "none") == 0 ? "alg none refused" : "unsupported alg";
        goto refuse_t;
    }
    /* RFC 7515 4.1.11: a critical extension we do not know fails */
    if (json_object_get(t->header, "crit")) {
        reason = "unsupported critical header";
        goto refuse_t;
    }
    size_t siglen_text = len - (size_t)(dot2 + 1 - token);
    unsigned char sig[512];
    long siglen = siglen_text <= sizeof sig * 4 / 3 ? tern__b64url_decode(dot2 + 1, siglen_text, sig) : -1;
    if (siglen <= 0) {
        reason = "malformed signature";
        goto refuse_t;
    }
    if (!signature_ok(k, kind, t->kid, token, (size_t)(dot2 - token), sig, (size_t)siglen, &reason))
        goto refuse_t;
    t->claims = part_object(dot1 + 1, (size_t)(dot2 - dot1 - 1));
    if (!t->claims) {
        reason = "malformed claims";
        goto refuse_t;
    }
    if ((reason = claims_fail(t->claims, o)))
        goto refuse_t;
    if (out)
        *out = t;
    else
        tern_jwt_free(t);
    return 0;
refuse_t:
    tern_jwt_free(t);
refuse:
    if (why)
        *why = reason;
    return -EACCES;
}

void tern_jwt_free(tern_jwt *t)
{
    if (!t)
        return;
    json_decref(t->header);
    json_decref(t->claims);
    free(t);
}

const char *tern_jwt_alg(const tern_jwt *t)
{
    TERN_CHECK_ARG(t);
    return t->alg;
}

const char *tern_jwt_kid(const tern_jwt *t)
{
    TERN_CHECK_ARG(t);
    return t->kid;
}

const char *tern_jwt_claim_string(const tern_jwt *t, const char *name)
{
    TERN_CHECK_ARG(t);
    TERN_CHECK_ARG(name);
    return json_string_value(json_object_get(t->claims, name));
}

int tern_jwt_claim_int(const tern_jwt *t, const char *name, int64_t *out)
{
    TERN_CHECK_ARG(t);
    TERN_CHECK_ARG(name);
    const json_t *v = json_object_get(t->claims, name);
    if (!v)
        return -ENOENT;
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return 0;
    }
    double d = json_real_value(v);
    /* 2^63 is exact as a double; anything below it converts */
    if (!json_is_real(v) || d != floor(d) || d < -9223372036854775808.0 || d >= 9223372036854775808.0)
        return -EINVAL;
    *out = (int64_t)d;
    return 0;
}

int tern_jwt_claim_text(const tern_jwt *t, const char *name, char **out)
{
    TERN_CHECK_ARG(t);
    TERN_CHECK_ARG(name);
    TERN_CHECK_ARG(out);
    *out = NULL;
    const json_t *v = json_object_get(t->claims, name);
    if (!v)
        return -ENOENT;
    if (json_is_string(v))
        *out = strdup(json_string_value(v));
    else
        *out = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    return *out ? 0 : -ENOMEM;
}

int tern_jwt_claims_json(const tern_jwt *t, char **out)
{
    TERN_CHECK_ARG(t);
    TERN_CHECK_ARG(out);
    *out = json_dumps(t->claims, JSON_COMPACT);
    return *out ? 0 : -ENOMEM;
}
