/*
 * siphash.h - SipHash (Aumasson and Bernstein), a keyed hash for tables
 * indexed by client data: without the 128-bit key, which the daemon
 * draws at start-up, a client cannot compute which keys collide, so it
 * cannot make the table degrade into one long chain (hash flooding).
 *
 * SipHash-1-3 is the table hash (as in CPython, Rust and Redis);
 * SipHash-2-4, the paper's variant, is here for its published test
 * vectors, which check the shared rounds.
 */
#ifndef BD_SIPHASH_H
#define BD_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

struct bd_sipkey {
    uint64_t k0, k1;          /* the secret: little-endian halves of 16 bytes */
};

/* SipHash-c-d of p[0..n) under key. */
uint64_t bd_siphash13(const struct bd_sipkey *key, const void *p, size_t n);
uint64_t bd_siphash24(const struct bd_sipkey *key, const void *p, size_t n);

/* The key from 16 bytes, as the reference code reads them. */
void bd_sipkey_from_bytes(struct bd_sipkey *key, const uint8_t b[16]);

/* A fresh random key: getrandom(2), or /dev/urandom when the kernel's
 * pool is not ready yet (early boot), so start-up never blocks.
 * Returns 0, or -1 with errno set. */
int bd_sipkey_random(struct bd_sipkey *key);

#endif
