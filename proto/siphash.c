/*
 * siphash.c - SipHash-1-3 and SipHash-2-4 (see siphash.h), after the
 * reference implementation's structure: 8-byte little-endian words,
 * the tail and the length in the last word.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "siphash.h"

#define ROTL(x, b) (((x) << (b)) | ((x) >> (64 - (b))))

static inline uint64_t le64(const uint8_t *p)
{
    uint64_t v;

    memcpy(&v, p, sizeof(v)); /* one load; unaligned is fine */
    return le64toh(v);
}

struct sip_state {
    uint64_t v0, v1, v2, v3;
};

static inline void sip_round(struct sip_state *s)
{
    s->v0 += s->v1;
    s->v1 = ROTL(s->v1, 13);
    s->v1 ^= s->v0;
    s->v0 = ROTL(s->v0, 32);
    s->v2 += s->v3;
    s->v3 = ROTL(s->v3, 16);
    s->v3 ^= s->v2;
    s->v0 += s->v3;
    s->v3 = ROTL(s->v3, 21);
    s->v3 ^= s->v0;
    s->v2 += s->v1;
    s->v1 = ROTL(s->v1, 17);
    s->v1 ^= s->v2;
    s->v2 = ROTL(s->v2, 32);
}

static inline void sip_word(struct sip_state *s, uint64_t m, int crounds)
{
    s->v3 ^= m;
    for (int i = 0; i < crounds; i++)
        sip_round(s);
    s->v0 ^= m;
}

/* Inlined with constant rounds into each variant, so the loops unroll. */
static inline uint64_t siphash(const struct bd_sipkey *key, const void *data,
                               size_t n, int crounds, int drounds)
{
    const uint8_t *p = data, *end = p + (n & ~(size_t)7);
    struct sip_state s = {
        key->k0 ^ 0x736f6d6570736575ull, key->k1 ^ 0x646f72616e646f6dull,
        key->k0 ^ 0x6c7967656e657261ull, key->k1 ^ 0x7465646279746573ull,
    };
    uint64_t last = (uint64_t)n << 56;

    for (; p != end; p += 8)
        sip_word(&s, le64(p), crounds);
    switch (n & 7) { /* the tail, as the reference code reads it */
    case 7: last |= (uint64_t)p[6] << 48; /* fall through */
    case 6: last |= (uint64_t)p[5] << 40; /* fall through */
    case 5: last |= (uint64_t)p[4] << 32; /* fall through */
    case 4: last |= (uint64_t)p[3] << 24; /* fall through */
    case 3: last |= (uint64_t)p[2] << 16; /* fall through */
    case 2: last |= (uint64_t)p[1] << 8;  /* fall through */
    case 1: last |= (uint64_t)p[0];       /* fall through */
    default: break;
    }
    sip_word(&s, last, crounds);
    s.v2 ^= 0xff;
    for (int i = 0; i < drounds; i++)
        sip_round(&s);
    return s.v0 ^ s.v1 ^ s.v2 ^ s.v3;
}

uint64_t bd_siphash13(const struct bd_sipkey *key, const void *p, size_t n)
{
    return siphash(key, p, n, 1, 3);
}

uint64_t bd_siphash24(const struct bd_sipkey *key, const void *p, size_t n)
{
    return siphash(key, p, n, 2, 4);
}

void bd_sipkey_from_bytes(struct bd_sipkey *key, const uint8_t b[16])
{
    key->k0 = le64(b);
    key->k1 = le64(b + 8);
}

/* /dev/urandom never blocks, even before the pool is initialised. */
static int urandom(uint8_t *b, size_t n)
{
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    size_t got = 0;

    if (fd < 0)
        return -1;
    while (got < n) {
        ssize_t r = read(fd, b + got, n - got);

        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            close(fd);
            errno = r == 0 ? EIO : errno;
            return -1;
        }
        got += (size_t)r;
    }
    close(fd);
    return 0;
}

int bd_sipkey_random(struct bd_sipkey *key)
{
    uint8_t b[16];
    ssize_t r;

    do
        r = getrandom(b, sizeof(b), GRND_NONBLOCK);
    while (r < 0 && errno == EINTR);
    if (r != (ssize_t)sizeof(b) && urandom(b, sizeof(b)) != 0)
        return -1;
    bd_sipkey_from_bytes(key, b);
    return 0;
}
