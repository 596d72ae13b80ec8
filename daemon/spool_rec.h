/*
 * spool_rec.h - the spool's on-disk records (spool layer; see
 * daemon/LAYERS.md and README "Durability"): CRC-32C, encode, decode,
 * and the damage-tolerant scan that recovery runs over a segment.
 *
 * A record, little-endian:
 *
 *     off  0  u32 magic  BD_REC_MAGIC
 *     off  4  u32 body length (bytes after the 24-byte header)
 *     off  8  u32 CRC-32C of the whole record with this field zeroed
 *     off 12  u8  type (enum bd_rec_type), then 3 zero bytes
 *     off 16  u64 id (the spool id of the item)
 *     off 24  body:
 *        ITEM: u16 key length, key, payload (the rest)
 *        DONE: empty (the item with this id is final)
 *        DEAD: u16 key length, key, u32 attempts, u64 unix time (s),
 *              u16 error length, error, payload (the rest)
 *
 * Pure functions on memory: no files, no allocation (fuzzed by
 * fuzz/fuzz_spool.c, unit-tested in tests/check_spool.c).
 */
#ifndef BD_SPOOL_REC_H
#define BD_SPOOL_REC_H

#include <stddef.h>
#include <stdint.h>

#define BD_REC_MAGIC 0x31534442u  /* "BDS1" as bytes on disk */
#define BD_REC_HDR 24             /* header bytes */
#define BD_REC_MAX_BODY (256u << 20) /* larger lengths are damage */

enum bd_rec_type {
    BD_REC_ITEM = 1,          /* an accepted durable SEND */
    BD_REC_DONE = 2,          /* the item with this id reached a final state */
    BD_REC_DEAD = 3,          /* a dead letter (deadletter file only) */
};

/* One record, decoded. Pointers borrow the buffer it was decoded from. */
struct bd_rec {
    int type;                 /* enum bd_rec_type */
    uint64_t id;              /* spool id */
    const char *key;          /* ITEM, DEAD: not NUL-terminated */
    size_t key_len;
    const uint8_t *payload;   /* ITEM, DEAD */
    size_t len;               /* payload bytes */
    uint32_t attempts;        /* DEAD: sink calls made */
    uint64_t time_s;          /* DEAD: when it was dead-lettered (unix) */
    const char *err;          /* DEAD: the last error, not NUL-terminated */
    size_t err_len;
};

/* CRC-32C (Castagnoli): the CPU instruction where there is one (x86-64
 * SSE4.2), else table-driven; crc is the running value (0 to
 * start). crc32c("123456789") = 0xE3069283. */
uint32_t bd_crc32c(uint32_t crc, const void *p, size_t n);

/* The table version alone (unit tests compare the two), and whether
 * bd_crc32c uses the CPU's instruction (x86-64 SSE4.2). */
uint32_t bd_crc32c_sw(uint32_t crc, const void *p, size_t n);
int bd_crc32c_hw(void);

/* Bytes r takes on disk; 0 when a field is too long for its width. */
size_t bd_rec_size(const struct bd_rec *r);

/* Write r to out (bd_rec_size(r) bytes of room). Returns the size. */
size_t bd_rec_encode(const struct bd_rec *r, uint8_t *out);

enum bd_rec_rc {
    BD_REC_OK = 0,            /* *r and *used set */
    BD_REC_SHORT = 1,         /* fewer bytes than the header or its length say */
    BD_REC_BAD = 2,           /* bad magic, checksum, type or body */
};

/* Decode the record at p (n bytes available). */
int bd_rec_decode(const uint8_t *p, size_t n, struct bd_rec *r, size_t *used);

/* What a scan found. */
struct bd_rec_scan {
    uint64_t records;         /* valid records */
    uint64_t damaged;         /* damaged regions (each lost one record or more) */
    uint64_t damaged_bytes;   /* bytes in them */
    size_t first_bad;         /* offset of the first damage; == n when none */
};

/*
 * Call fn for every valid record of buf[0..n) in order. After damage
 * (a bad record, or a torn tail) the scan looks for the next offset
 * where a valid record starts and goes on from there, so one flipped
 * bit costs one record, not the rest of the file. fn returning nonzero
 * stops the scan (returns that value); otherwise returns 0.
 */
int bd_rec_scan(const uint8_t *buf, size_t n,
                int (*fn)(const struct bd_rec *r, size_t off, void *arg),
                void *arg, struct bd_rec_scan *out);

#endif
