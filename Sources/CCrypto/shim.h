#ifndef CCRYPTO_SHIM_H
#define CCRYPTO_SHIM_H
// OpenSSL 3 libcrypto (Debian libssl-dev, pkg-config libcrypto): AES-256-GCM through EVP,
// HMAC-SHA256, SHA-256, RAND_bytes. Only the Crypto target imports this module, and only
// internally: no OpenSSL type reaches the public API.
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stddef.h>

// EVP_CIPHER_CTX_ctrl takes the GCM commands as macros and the tag as a void * whose
// constness depends on the command. One typed wrapper per use, so Swift passes neither a
// raw command number nor a casted pointer.
static inline int ccrypto_gcm_set_ivlen(EVP_CIPHER_CTX *ctx, int length) {
    return EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, length, NULL);
}
static inline int ccrypto_gcm_get_tag(EVP_CIPHER_CTX *ctx, unsigned char *tag, int length) {
    return EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, length, tag);
}
// EVP_CTRL_GCM_SET_TAG copies the tag; it never writes through the pointer.
static inline int ccrypto_gcm_set_tag(EVP_CIPHER_CTX *ctx, const unsigned char *tag, int length) {
    return EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, length, (void *)tag);
}

// Swift hands a NULL base address for an empty array; some OpenSSL entry points treat
// NULL as "no key" or "no data" rather than "zero bytes". A static byte stands in.
static const unsigned char ccrypto_empty_byte = 0;

// One-shot HMAC-SHA256 (RFC 2104); out must hold 32 bytes. Returns 1 on success.
static inline int ccrypto_hmac_sha256(const unsigned char *key, size_t key_length,
                                      const unsigned char *message, size_t message_length,
                                      unsigned char *out) {
    if (key_length > 0x7fffffff) return 0;
    unsigned int out_length = 0;
    if (HMAC(EVP_sha256(), key ? key : &ccrypto_empty_byte, (int)key_length,
             message ? message : &ccrypto_empty_byte, message_length, out, &out_length) == NULL) return 0;
    return out_length == 32;
}

// One-shot SHA-256 (FIPS 180-4); out must hold 32 bytes. Returns 1 on success.
static inline int ccrypto_sha256(const unsigned char *data, size_t length, unsigned char *out) {
    unsigned int out_length = 0;
    if (EVP_Digest(data ? data : &ccrypto_empty_byte, length, out, &out_length, EVP_sha256(), NULL) != 1) return 0;
    return out_length == 32;
}
#endif
