/*
 * bytes.h - byte-level helpers shared by proto/ and the daemon:
 * big-endian integers (the frame length prefix, msgpack's multi-byte
 * ints and lengths), and word-at-a-time checks of short byte strings
 * (keys). Keys are a few bytes to a few dozen and are looked at once per
 * item, so a libc call or a byte loop (which gcc -O2 vectorizes, with a
 * costly prologue) costs more than the work.
 */
#ifndef BD_BYTES_H
#define BD_BYTES_H

#include <endian.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* The low nbytes (0, 1, 2, 4 or 8) of v, big-endian. */
static inline uint8_t *bd_put_be(uint8_t *p, uint64_t v, unsigned nbytes)
{
    uint16_t v16;
    uint32_t v32;

    switch (nbytes) {
    case 0:
        break;
    case 1:
        *p = (uint8_t)v;
        break;
    case 2:
        v16 = htobe16((uint16_t)v);
        memcpy(p, &v16, 2);
        break;
    case 4:
        v32 = htobe32((uint32_t)v);
        memcpy(p, &v32, 4);
        break;
    default:
        v = htobe64(v);
        memcpy(p, &v, 8);
        break;
    }
    return p + nbytes;
}

/* The nbytes (1, 2, 4 or 8) big-endian bytes at p. */
static inline uint64_t bd_get_be(const uint8_t *p, unsigned nbytes)
{
    uint16_t v16;
    uint32_t v32;
    uint64_t v64;

    switch (nbytes) {
    case 1:
        return *p;
    case 2:
        memcpy(&v16, p, 2);
        return be16toh(v16);
    case 4:
        memcpy(&v32, p, 4);
        return be32toh(v32);
    default:
        memcpy(&v64, p, 8);
        return be64toh(v64);
    }
}

static inline uint64_t bd_load64(const uint8_t *p)
{
    uint64_t w;

    memcpy(&w, p, 8);
    return w;
}

static inline uint32_t bd_load32(const uint8_t *p)
{
    uint32_t w;

    memcpy(&w, p, 4);
    return w;
}

/*
 * The n <= 8 bytes at p folded into one word without reading past p + n:
 * 4..8 bytes as two overlapping 4-byte loads, 1..3 as three single bytes
 * (first, middle, last); unused byte lanes hold 0x01. Every byte lands
 * in some lane, and two strings of the same length fold the same way, so
 * folds compare like the strings and carry every byte for a scan.
 */
static inline uint64_t bd_load_small(const uint8_t *p, size_t n)
{
    if (n >= 4)
        return bd_load32(p) | (uint64_t)bd_load32(p + n - 4) << 32;
    if (n == 0)
        return 0x0101010101010101ull;
    return 0x0101010101000000ull | p[0] | (uint64_t)p[n / 2] << 8 |
           (uint64_t)p[n - 1] << 16;
}

/* memcmp(a, b, n) == 0. */
static inline int bd_bytes_eq(const void *a, const void *b, size_t n)
{
    const uint8_t *x = a, *y = b;

    if (n <= 8)
        return bd_load_small(x, n) == bd_load_small(y, n);
    for (size_t i = 0; i + 8 < n; i += 8)
        if (bd_load64(x + i) != bd_load64(y + i))
            return 0;
    return bd_load64(x + n - 8) == bd_load64(y + n - 8);
}

/*
 * Nonzero when any of the 8 bytes of w is 0 or >= 0x80. A byte b in
 * 1..0x7f leaves no high bit in (b - 1) | b; a 0 borrows (0xff) and a
 * high byte carries its own. A borrow only follows a byte that is
 * already caught, so no bad byte is missed.
 */
static inline uint64_t bd_word_not_plain(uint64_t w)
{
    return ((w - 0x0101010101010101ull) | w) & 0x8080808080808080ull;
}

/* Every byte of p[0..n) in 1..0x7f (plain ASCII, no NUL). */
static inline int bd_bytes_plain_ascii(const void *p, size_t n)
{
    const uint8_t *s = p;

    if (n <= 8)
        return bd_word_not_plain(bd_load_small(s, n)) == 0;
    for (size_t i = 0; i + 8 < n; i += 8)
        if (bd_word_not_plain(bd_load64(s + i)))
            return 0;
    return bd_word_not_plain(bd_load64(s + n - 8)) == 0;
}

#endif
