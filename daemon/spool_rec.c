/*
 * spool_rec.c - records: CRC-32C, encode, decode, scan (spool_rec.h).
 */
#include <string.h>

#include "spool_rec.h"

/* ---- CRC-32C ------------------------------------------------------------ */

static uint32_t crc_table[256];
static int crc_ready;

/* Reflected Castagnoli polynomial. Built on first use: tiny, and it
 * keeps a 1 KiB literal table out of the source. Loop thread only at
 * run time (recovery and commits), so no race on crc_ready. */
static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;

        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        crc_table[i] = c;
    }
    crc_ready = 1;
}

static uint32_t crc_sw(uint32_t crc, const uint8_t *b, size_t n)
{
    while (n--)
        crc = crc_table[(crc ^ *b++) & 0xff] ^ (crc >> 8);
    return crc;
}

#if defined(__x86_64__)
/* SSE4.2's crc32 instruction computes exactly CRC-32C, 8 bytes a step:
 * the table loop was a third of the daemon's CPU on durable SENDs. */
__attribute__((target("sse4.2")))
static uint32_t crc_hw(uint32_t crc, const uint8_t *b, size_t n)
{
    uint64_t c = crc;

    for (; n >= 8; n -= 8, b += 8) {
        uint64_t w;

        memcpy(&w, b, 8);
        c = __builtin_ia32_crc32di(c, w);
    }
    crc = (uint32_t)c;
    while (n--)
        crc = __builtin_ia32_crc32qi(crc, *b++);
    return crc;
}

static int crc_has_hw(void)
{
    static int hw = -1;

    if (hw < 0)
        hw = __builtin_cpu_supports("sse4.2") ? 1 : 0;
    return hw;
}
#else
static uint32_t crc_hw(uint32_t crc, const uint8_t *b, size_t n)
{
    return crc_sw(crc, b, n);
}

static int crc_has_hw(void)
{
    return 0;
}
#endif

uint32_t bd_crc32c(uint32_t crc, const void *p, size_t n)
{
    if (crc_has_hw())
        return ~crc_hw(~crc, p, n);
    if (!crc_ready)
        crc_init();
    return ~crc_sw(~crc, p, n);
}

int bd_crc32c_hw(void)
{
    return crc_has_hw();
}

uint32_t bd_crc32c_sw(uint32_t crc, const void *p, size_t n)
{
    if (!crc_ready)
        crc_init();
    return ~crc_sw(~crc, p, n);
}

/* ---- little-endian fields ------------------------------------------------ */

static void put16(uint8_t *p, uint32_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void put32(uint8_t *p, uint32_t v) { put16(p, v); put16(p + 2, v >> 16); }
static void put64(uint8_t *p, uint64_t v) { put32(p, (uint32_t)v); put32(p + 4, (uint32_t)(v >> 32)); }
static uint32_t get16(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }
static uint32_t get32(const uint8_t *p) { return get16(p) | get16(p + 2) << 16; }
static uint64_t get64(const uint8_t *p) { return get32(p) | (uint64_t)get32(p + 4) << 32; }

/* ---- encode --------------------------------------------------------------- */

static size_t body_size(const struct bd_rec *r)
{
    switch (r->type) {
    case BD_REC_ITEM:
        return 2 + r->key_len + r->len;
    case BD_REC_DEAD:
        return 2 + r->key_len + 4 + 8 + 2 + r->err_len + r->len;
    default:
        return 0;
    }
}

size_t bd_rec_size(const struct bd_rec *r)
{
    size_t body = body_size(r);

    if (r->key_len > 0xffff || r->err_len > 0xffff || body > BD_REC_MAX_BODY)
        return 0;
    return BD_REC_HDR + body;
}

size_t bd_rec_encode(const struct bd_rec *r, uint8_t *out)
{
    size_t body = body_size(r), n = BD_REC_HDR + body;
    uint8_t *p = out + BD_REC_HDR;

    put32(out, BD_REC_MAGIC);
    put32(out + 4, (uint32_t)body);
    put32(out + 8, 0);
    out[12] = (uint8_t)r->type;
    out[13] = out[14] = out[15] = 0;
    put64(out + 16, r->id);
    if (r->type == BD_REC_ITEM || r->type == BD_REC_DEAD) {
        put16(p, (uint32_t)r->key_len);
        if (r->key_len)
            memcpy(p + 2, r->key, r->key_len);
        p += 2 + r->key_len;
    }
    if (r->type == BD_REC_DEAD) {
        put32(p, r->attempts);
        put64(p + 4, r->time_s);
        put16(p + 12, (uint32_t)r->err_len);
        if (r->err_len)
            memcpy(p + 14, r->err, r->err_len);
        p += 14 + r->err_len;
    }
    if (r->type != BD_REC_DONE && r->len)
        memcpy(p, r->payload, r->len);
    put32(out + 8, bd_crc32c(0, out, n));
    return n;
}

/* ---- decode --------------------------------------------------------------- */

/* The body of an ITEM or DEAD record; -1 when its lengths do not add up. */
static int decode_body(const uint8_t *p, size_t n, struct bd_rec *r)
{
    if (n < 2 || get16(p) > n - 2)
        return -1;
    r->key_len = get16(p);
    r->key = (const char *)p + 2;
    p += 2 + r->key_len;
    n -= 2 + r->key_len;
    if (r->type == BD_REC_DEAD) {
        if (n < 14 || get16(p + 12) > n - 14)
            return -1;
        r->attempts = get32(p);
        r->time_s = get64(p + 4);
        r->err_len = get16(p + 12);
        r->err = (const char *)p + 14;
        p += 14 + r->err_len;
        n -= 14 + r->err_len;
    }
    r->payload = p;
    r->len = n;
    return 0;
}

int bd_rec_decode(const uint8_t *p, size_t n, struct bd_rec *r, size_t *used)
{
    uint8_t hdr[BD_REC_HDR];
    uint32_t body, crc;

    if (n < BD_REC_HDR)
        return BD_REC_SHORT;
    if (get32(p) != BD_REC_MAGIC)
        return BD_REC_BAD;
    body = get32(p + 4);
    if (body > BD_REC_MAX_BODY || p[12] < BD_REC_ITEM || p[12] > BD_REC_DEAD ||
        p[13] || p[14] || p[15])
        return BD_REC_BAD;
    if (body > n - BD_REC_HDR)
        return BD_REC_SHORT;
    memcpy(hdr, p, BD_REC_HDR);
    put32(hdr + 8, 0);
    crc = bd_crc32c(bd_crc32c(0, hdr, BD_REC_HDR), p + BD_REC_HDR, body);
    if (crc != get32(p + 8))
        return BD_REC_BAD;
    memset(r, 0, sizeof(*r));
    r->type = p[12];
    r->id = get64(p + 16);
    if (r->type == BD_REC_DONE ? body != 0 :
        decode_body(p + BD_REC_HDR, body, r) != 0)
        return BD_REC_BAD;
    *used = BD_REC_HDR + body;
    return BD_REC_OK;
}

/* ---- scan ----------------------------------------------------------------- */

/* The next offset after off where a valid record starts, or n. Each
 * candidate costs a checksum over its claimed length: *budget bounds
 * those bytes over a whole scan, so a file crafted with a magic every
 * few bytes cannot make recovery quadratic (past it, the rest of the
 * file counts as damaged). */
static size_t resync(const uint8_t *buf, size_t n, size_t off, size_t *budget)
{
    static const uint8_t magic[4] = {0x42, 0x44, 0x53, 0x31};
    struct bd_rec r;
    size_t used;

    for (size_t i = off + 1; i + BD_REC_HDR <= n; i++) {
        const uint8_t *m = memchr(buf + i, magic[0], n - i);

        if (m == NULL)
            break;
        i = (size_t)(m - buf);
        if (i + BD_REC_HDR > n)
            break;
        if (memcmp(m, magic, 4) != 0)
            continue;
        used = BD_REC_HDR + (size_t)get32(m + 4);
        if (used > n - i)
            continue;  /* cannot be whole: no checksum to pay for */
        if (used > *budget)
            return n;
        *budget -= used;
        if (bd_rec_decode(m, n - i, &r, &used) == BD_REC_OK)
            return i;
    }
    return n;
}

int bd_rec_scan(const uint8_t *buf, size_t n,
                int (*fn)(const struct bd_rec *r, size_t off, void *arg),
                void *arg, struct bd_rec_scan *out)
{
    size_t off = 0, budget = 8 * n + (1u << 20);

    memset(out, 0, sizeof(*out));
    out->first_bad = n;
    while (off < n) {
        struct bd_rec r;
        size_t used, next;
        int rc = bd_rec_decode(buf + off, n - off, &r, &used);

        if (rc == BD_REC_OK) {
            int stop;

            out->records++;
            stop = fn ? fn(&r, off, arg) : 0;
            if (stop)
                return stop;
            off += used;
            continue;
        }
        next = resync(buf, n, off, &budget);
        if (out->damaged == 0)
            out->first_bad = off;
        out->damaged++;
        out->damaged_bytes += next - off;
        off = next;
    }
    return 0;
}
