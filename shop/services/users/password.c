/*
 * password.c - passwords kept as scrypt hashes (OpenSSL's EVP_PBE_scrypt),
 * a memory-hard KDF: a stolen table costs an attacker N * 1 KiB of memory
 * per guess.  The cost N is stored with each hash, so raising
 * users.scrypt_n affects new passwords and old ones still verify.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <tern/runtime.h>

#include "users/users.h"

#define SALT_LEN 16
#define HASH_LEN 32
#define SCRYPT_R 8
#define SCRYPT_P 1

typedef struct kdf {
    const char *password;
    const uint8_t *salt;
    uint64_t n;
    uint8_t out[HASH_LEN];
} kdf;

static int run_kdf(void *arg)
{
    kdf *k = arg;
    /* scrypt needs 128 * r * N bytes (and a little more): allow that */
    uint64_t maxmem = 128ull * SCRYPT_R * (k->n + SCRYPT_P + 2) + (1u << 20);
    return EVP_PBE_scrypt(k->password, strlen(k->password), k->salt, SALT_LEN, k->n, SCRYPT_R, SCRYPT_P, maxmem,
                          k->out, HASH_LEN) == 1 ? 0 : -EIO;
}

static void hex(const uint8_t *b, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", b[i]);
}

static int unhex(const char *s, size_t n, uint8_t *out)
{
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        if (sscanf(s + 2 * i, "%2x", &v) != 1)
            return -EINVAL;
        out[i] = (uint8_t)v;
    }
    return 0;
}

int shop_password_hash(const char *password, int64_t n, char *out)
{
    if (n < 2 || (n & (n - 1)))
        return -EINVAL;
    uint8_t salt[SALT_LEN];
    if (RAND_bytes(salt, sizeof salt) != 1)
        return -EIO;
    kdf k = {.password = password, .salt = salt, .n = (uint64_t)n};
    int rc = tern_blocking(run_kdf, &k);
    if (rc < 0)
        return rc;
    char s[2 * SALT_LEN + 1], h[2 * HASH_LEN + 1];
    hex(salt, SALT_LEN, s);
    hex(k.out, HASH_LEN, h);
    snprintf(out, SHOP_PASSWORD_MAX, "%" PRId64 "$%s$%s", n, s, h);
    return 0;
}

int shop_password_check(const char *password, const char *stored)
{
    char *end;
    unsigned long long n = strtoull(stored, &end, 10);
    uint8_t salt[SALT_LEN], want[HASH_LEN];
    if (*end != '$' || n < 2 || (n & (n - 1)) || n > (1ull << 20) || strlen(end) != 2 + 2 * SALT_LEN + 2 * HASH_LEN ||
        end[1 + 2 * SALT_LEN] != '$' || unhex(end + 1, SALT_LEN, salt) < 0 ||
        unhex(end + 2 + 2 * SALT_LEN, HASH_LEN, want) < 0)
        return -EINVAL;
    kdf k = {.password = password, .salt = salt, .n = n};
    int rc = tern_blocking(run_kdf, &k);
    if (rc < 0)
        return rc;
    return CRYPTO_memcmp(k.out, want, HASH_LEN) == 0;
}
