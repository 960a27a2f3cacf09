/*
 * tern/jwt.h - JSON Web Tokens (RFC 7519) signed with HS256, RS256 or
 * ES256 (RFC 7518): a key set, a verifier and a signer.
 *
 *     tern_jwt_keys *keys;
 *     tern_jwt_keys_new(&keys);
 *     tern_jwt_keys_load_jwks_file(keys, "keys.json", err, sizeof err);
 *     const char *auds[] = {"shop"};
 *     tern_jwt_verify_options o = {.issuer = "shop-users", .audiences = auds,
 *                                  .n_audiences = 1, .leeway = 30000000000};
 *     tern_jwt *t;
 *     const char *why;
 *     if (tern_jwt_verify(keys, token, len, &o, &t, &why) == 0) {
 *         const char *sub = tern_jwt_claim_string(t, "sub");
 *         ...
 *         tern_jwt_free(t);
 *     } else  401 with why
 *
 * What is refused, always: "alg": "none"; an algorithm other than the
 * three; an algorithm that does not fit the key it names (HS256 against an
 * RSA public key, the classic confusion, is a signature made with the
 * public key as an HMAC secret); a "crit" header (no extension is
 * understood); base64url that is not canonical (padding, stray bits), so
 * a token has one spelling.  The algorithm is always taken from the key:
 * an HMAC key only verifies HS256, an RSA key RS256, a P-256 key ES256.
 *
 * Key ids: a token with a "kid" is verified with the key of that id, or,
 * when the set has none of that id, with the keys added without one; a
 * token without a "kid" with every key of its algorithm's type.
 *
 * Threads: a key set is built once (the adds are not synchronized), then
 * any number of threads verify and sign with it at once.  Nothing here
 * blocks but tern_jwt_keys_load_jwks_file, which reads a file in the
 * caller's thread (configuration time).
 *
 * Ownership: the key set copies every key, secret and id it is given and
 * frees them with tern_jwt_keys_free.  A verified token (tern_jwt) is the
 * caller's, freed with tern_jwt_free; the strings its accessors return
 * live as long as it.  Errors are negative errno (tern_strerror).
 */
#ifndef TERN_JWT_H
#define TERN_JWT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tern_jwt_keys tern_jwt_keys;
typedef struct tern_jwt tern_jwt;

/** An empty key set: 0 or -ENOMEM. */
int tern_jwt_keys_new(tern_jwt_keys **out);
/** Free a key set and its keys (NULL: a no-op). */
void tern_jwt_keys_free(tern_jwt_keys *k);

/**
 * Add an HS256 secret of len bytes (copied) under kid (NULL: no id).
 * 0; -EINVAL for a secret shorter than 32 bytes (RFC 7518 3.2: at least
 * the hash's size); -EEXIST when kid is already in the set; -ENOMEM.
 */
int tern_jwt_keys_add_hmac(tern_jwt_keys *k, const char *kid, const void *secret, size_t len);

/**
 * Add a PEM key (len bytes): an RSA key of at least 2048 bits or an EC
 * P-256 key, public ("PUBLIC KEY", "RSA PUBLIC KEY", "CERTIFICATE") or
 * private (PKCS#8 or traditional; a private key also verifies), under kid
 * (NULL: no id).  0; -EINVAL for text that holds no such key; -ENOTSUP
 * for another key type or curve; -EEXIST; -ENOMEM.
 */
int tern_jwt_keys_add_pem(tern_jwt_keys *k, const char *kid, const char *pem, size_t len);

/**
 * Add the keys of a JWK Set (RFC 7517: {"keys": [...]}): "kty" "RSA" (n,
 * e; d, p, q, dp, dq, qi make it private), "EC" with "crv" "P-256" (x, y;
 * d) or "oct" (k).  A key with "use" other than "sig" or an "alg" other
 * than its type's is skipped, as is a key of another type; a key with a
 * "alg" is verified only with that algorithm.  0 when at least one key was
 * added; -EINVAL with the reason in err (errlen bytes, may be 0) for text
 * that is not a JWK Set, a key that is malformed, or no usable key;
 * -EEXIST for a repeated kid; -ENOMEM.
 */
int tern_jwt_keys_load_jwks(tern_jwt_keys *k, const char *json, size_t len, char *err,
                            size_t errlen);
/** tern_jwt_keys_load_jwks on a file's contents (at most 1 MiB); also
 *  -errno of open/read (-ENOENT, ...) with err naming the file. */
int tern_jwt_keys_load_jwks_file(tern_jwt_keys *k, const char *path, char *err, size_t errlen);

/** How many keys the set holds. */
size_t tern_jwt_keys_count(const tern_jwt_keys *k);

/** What a token's claims must satisfy beyond its signature.  The zero
 *  value (or NULL) checks exp and nbf on the wall clock and nothing else. */
typedef struct tern_jwt_verify_options {
    const char *issuer;                 /* "iss" must equal it; NULL: not checked */
    const char *const *audiences;       /* "aud" (a string or an array) must hold */
    size_t n_audiences;                 /* one of these; 0: not checked */
    int64_t leeway;                     /* ns of clock skew allowed on exp, nbf, iat */
    int64_t now;                        /* unix time in ns; 0: the wall clock */
    bool require_exp;                   /* refuse a token without "exp" */
} tern_jwt_verify_options;

/**
 * Verify token (len bytes, the compact serialization header.payload.sig)
 * against the key set and o (NULL: the defaults).  0 with *out the parsed
 * token (the caller's; out may be NULL when only the verdict matters);
 * -EACCES for a token that fails, with *why (may be NULL) a short static
 * sentence for a log and a 401 ("bad signature", "token expired", "unknown
 * key id", "alg none refused", ...); -ENOMEM.  No check leaks timing about
 * an HMAC (the comparison is constant-time).
 */
int tern_jwt_verify(const tern_jwt_keys *k, const char *token, size_t len,
                    const tern_jwt_verify_options *o, tern_jwt **out, const char **why);

/** The claim name's value if it is a string, else NULL. */
const char *tern_jwt_claim_string(const tern_jwt *t, const char *name);
/** The claim name's value as an integer (a JSON number with no fraction
 *  part): 0, -ENOENT when absent, -EINVAL when not such a number. */
int tern_jwt_claim_int(const tern_jwt *t, const char *name, int64_t *out);
/** The claim name's value as text for a header: a string as it is, a
 *  number, true/false as JSON writes them, an array or object as compact
 *  JSON.  0 with *out malloc'd (the caller frees it), -ENOENT, -ENOMEM. */
int tern_jwt_claim_text(const tern_jwt *t, const char *name, char **out);
/** The whole claim set as compact JSON text, malloc'd (the caller frees
 *  it): 0 or -ENOMEM. */
int tern_jwt_claims_json(const tern_jwt *t, char **out);
/** The wall-clock interval, in ns since the epoch, in which a verified
 *  token's time claims pass under o's leeway (exp, nbf, iat, computed as
 *  tern_jwt_verify does): the token verifies again while
 *  *from <= now < *until, and at no other time (INT64_MIN, INT64_MAX: no
 *  bound).  Everything else verify checks does not change with time, so
 *  this is what a cache of verified tokens must honour. */
void tern_jwt_validity(const tern_jwt *t, const tern_jwt_verify_options *o, int64_t *from, int64_t *until);
/** The token's "alg" ("HS256", "RS256", "ES256"). */
const char *tern_jwt_alg(const tern_jwt *t);
/** The token's "kid", or NULL when it had none. */
const char *tern_jwt_kid(const tern_jwt *t);
/** Free a token (NULL: a no-op). */
void tern_jwt_free(tern_jwt *t);

/**
 * Sign claims_json (a JSON object's text, NUL-terminated) with the key of
 * id kid (NULL: the set's only signing key, or its first key without an
 * id), with the key's algorithm (HMAC: HS256, RSA: RS256, EC: ES256); the
 * header carries "kid" when the key has one.  0 with *out the token,
 * malloc'd (the caller frees it); -ENOENT: no such key; -EINVAL: claims
 * that are not a JSON object, or a public key (it cannot sign); -ENOMEM.
 */
int tern_jwt_sign(const tern_jwt_keys *k, const char *kid, const char *claims_json, char **out);

#ifdef __cplusplus
}
#endif

#endif
