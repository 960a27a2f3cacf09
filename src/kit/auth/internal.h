/*
 * kit/auth/internal.h - what the JWT files share: the key set's layout
 * and base64url (RFC 4648 section 5, no padding) both ways.
 */
#ifndef TERN_KIT_AUTH_INTERNAL_H
#define TERN_KIT_AUTH_INTERNAL_H

#include <openssl/evp.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "tern/jwt.h"

/* Tokens and JWK Sets from outside are refused past these sizes before
 * anything is decoded or parsed. */
#define TERN__JWT_TOKEN_MAX  16384
#define TERN__JWKS_MAX       (1024 * 1024)
/* How deep a token's header or claims may nest (json_depth.h). */
#define TERN__JWT_DEPTH_MAX  16

/* The key's type decides the one algorithm it verifies and signs with. */
typedef enum tern__jwt_kind {
    TERN__JWT_HS256,
    TERN__JWT_RS256,
    TERN__JWT_ES256,
} tern__jwt_kind;

typedef struct tern__jwt_key {
    char *kid;                  /* NULL: added without an id */
    tern__jwt_kind kind;
    unsigned char *secret;      /* HS256 */
    size_t secret_len;
    /* HS256: keyed at the first use (not when added: that would start
     * OpenSSL's provider, algorithm tables and config in every process
     * that holds a key, ~1.8 MB of a static binary's pages and some ms
     * before a service is ready, when no request needs them yet), then
     * duplicated per use */
    _Atomic(EVP_MAC_CTX *) mac;
    EVP_PKEY *pkey;             /* RS256, ES256 */
    bool can_sign;              /* a secret or a private key */
} tern__jwt_key;

struct tern_jwt_keys {
    tern__jwt_key *v;
    size_t n, cap;
};

/* The algorithm's name, and the kind a name stands for (-1: not one of the
 * three). */
const char *tern__jwt_alg_name(tern__jwt_kind kind);
int tern__jwt_alg_kind(const char *alg);

/* Take a key into the set: kid copied; pkey or secret owned by the set
 * from here on, also on failure (-EEXIST, -ENOMEM). */
int tern__jwt_keys_take(tern_jwt_keys *k, const char *kid, tern__jwt_kind kind, EVP_PKEY *pkey,
                        unsigned char *secret, size_t secret_len, bool can_sign);
/* Whether pkey is an RSA key of at least 2048 bits (RS256) or a P-256 key
 * (ES256): 0 with *kind, -ENOTSUP otherwise. */
int tern__jwt_pkey_kind(EVP_PKEY *pkey, tern__jwt_kind *kind);

/* SHA-256, fetched from the default provider once: an implicit fetch
 * (EVP_sha256()) looks the algorithm up again on every use. */
const EVP_MD *tern__jwt_sha256(void);
/* An HMAC-SHA256 context keyed with secret: NULL for no memory. */
EVP_MAC_CTX *tern__jwt_mac_new(const unsigned char *secret, size_t len);
/* An HS256 key's keyed context, made at the first call (threads racing
 * there each make one, the first stored wins): NULL for no memory. */
EVP_MAC_CTX *tern__jwt_key_mac(const tern__jwt_key *key);

/* Encoded length of n bytes. */
size_t tern__b64url_len(size_t n);
/* Write n bytes of src as base64url to dst (tern__b64url_len(n) bytes, no
 * NUL); returns the length written. */
size_t tern__b64url_encode(const void *src, size_t n, char *dst);
/* Decode n chars of src into dst (at least n * 3 / 4 bytes): the decoded
 * length, or -1 for text that is not canonical unpadded base64url (a
 * character outside the alphabet, padding, a length of 4k+1, or bits set
 * in the last character that no byte uses). */
long tern__b64url_decode(const char *src, size_t n, unsigned char *dst);

/* Sign or verify the signing input with a key (signature in JWS form:
 * ES256 as the raw 64-byte r || s).  sign: 0 with *sig malloc'd. */
int tern__jwt_sig_make(const tern__jwt_key *key, const void *in, size_t n, unsigned char **sig,
                       size_t *siglen);
bool tern__jwt_sig_check(const tern__jwt_key *key, const void *in, size_t n,
                         const unsigned char *sig, size_t siglen);

#endif
