/*
 * sign.c - a token from a claim set: header {"alg", "typ": "JWT", "kid"}
 * with the algorithm the key dictates, the claims as given (checked to be
 * one JSON object and written compact), the signature.
 */
#include "kit/auth/internal.h"

#include "base/check.h"
#include "base/json_depth.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static const tern__jwt_key *signing_key(const tern_jwt_keys *k, const char *kid)
{
    if (kid) {
        for (size_t i = 0; i < k->n; i++)
            if (k->v[i].kid && strcmp(k->v[i].kid, kid) == 0)
                return &k->v[i];
        return NULL;
    }
    const tern__jwt_key *only = NULL;
    size_t signers = 0;
    for (size_t i = 0; i < k->n; i++)
        if (k->v[i].can_sign) {
            signers++;
            only = &k->v[i];
        }
    if (signers == 1)
        return only;
    for (size_t i = 0; i < k->n; i++)
        if (!k->v[i].kid)
            return &k->v[i];
    return NULL;
}

/* Append part as base64url at *p. */
static void put(char **p, const void *part, size_t n)
{
    *p += tern__b64url_encode(part, n, *p);
}

int tern_jwt_sign(const tern_jwt_keys *k, const char *kid, const char *claims_json, char **out)
{
    TERN_CHECK_ARG(k);
    TERN_CHECK_ARG(claims_json);
    TERN_CHECK_ARG(out);
    *out = NULL;
    const tern__jwt_key *key = signing_key(k, kid);
    if (!key)
        return -ENOENT;
    if (!key->can_sign)
        return -EINVAL;
    size_t clen = strlen(claims_json);
    if (!tern__json_depth_ok(claims_json, clen, TERN__JWT_DEPTH_MAX))
        return -EINVAL;
    json_t *claims = json_loadb(claims_json, clen, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(claims)) {
        json_decref(claims);
        return -EINVAL;
    }
    json_t *hdr = json_pack("{s:s, s:s}", "alg", tern__jwt_alg_name(key->kind), "typ", "JWT");
    if (hdr && key->kid)
        json_object_set_new(hdr, "kid", json_string(key->kid));
    char *htext = hdr ? json_dumps(hdr, JSON_COMPACT) : NULL;
    char *ctext = json_dumps(claims, JSON_COMPACT);
    json_decref(hdr);
    json_decref(claims);
    char *tok = NULL;
    int rc = -ENOMEM;
    if (htext && ctext) {
        size_t hl = strlen(htext), cl = strlen(ctext);
        /* header.claims.signature; a signature is at most 512 bytes
         * (RSA 4096) */
        size_t cap = tern__b64url_len(hl) + 1 + tern__b64url_len(cl) + 1 + tern__b64url_len(1024) + 1;
        tok = malloc(cap);
        if (tok) {
            char *p = tok;
            put(&p, htext, hl);
            *p++ = '.';
            put(&p, ctext, cl);
            unsigned char *sig = NULL;
            size_t siglen = 0;
            rc = tern__jwt_sig_make(key, tok, (size_t)(p - tok), &sig, &siglen);
            if (rc == 0 && siglen <= 1024) {
                *p++ = '.';
                put(&p, sig, siglen);
                *p = '\0';
            } else if (rc == 0)
                rc = -EINVAL;
            free(sig);
        }
    }
    free(htext);
    free(ctext);
    if (rc != 0) {
        free(tok);
        return rc;
    }
    *out = tok;
    return 0;
}
