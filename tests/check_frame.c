/*
 * check_frame.c - unit tests for proto/frame.c: the length prefix
 * (bd_frame_peek), the bounded msgpack walk (bd_frame_check) and frame
 * encoding (bd_frame_begin/end).
 *
 * No sockets: bytes are fed whole, split at every offset, and malformed,
 * and every rejection is checked against its exact reason (hiredis
 * test_reply_reader). The walk is cross-checked against msgpack-c: random
 * objects from its packer must pass, and random bytes must never pass
 * unless msgpack_unpack reads them as exactly one object. The random
 * tests print their seed; BD_TEST_SEED=<n> replays one.
 */
#include <check.h>
#include <inttypes.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "buf.h"
#include "frame.h"

/* The reasons bd_frame_check gives, spelled out once. */
#define E_C1        "invalid msgpack type byte 0xc1"
#define E_HDR       "truncated msgpack header"
#define E_TRUNC     "truncated msgpack object"
#define E_PAST      "msgpack length runs past the end of the frame"
#define E_COUNT     "msgpack container count exceeds the frame"
#define E_DEEP      "msgpack nesting deeper than 8"
#define E_TRAILING  "trailing bytes after the msgpack object"

static const char *const known_errors[] = {
    E_C1, E_HDR, E_TRUNC, E_PAST, E_COUNT, E_DEEP, E_TRAILING,
};

/* ---- helpers ------------------------------------------------------------ */

/* msgpack-c's verdict: 1 when body[0..len) is exactly one object. */
static int msgpack_c_accepts(const uint8_t *body, size_t len)
{
    msgpack_zone zone;
    msgpack_object obj;
    size_t off = 0;
    msgpack_unpack_return rc;

    msgpack_zone_init(&zone, 2048);
    rc = msgpack_unpack((const char *)body, len, &off, &zone, &obj);
    msgpack_zone_destroy(&zone);
    return rc == MSGPACK_UNPACK_SUCCESS && off == len;
}

static void expect_ok_at(const uint8_t *b, size_t n, int line)
{
    const char *err = NULL;
    int rc = bd_frame_check(b, n, &err);

    ck_assert_msg(rc == 0, "line %d: rejected (%s), want accepted", line,
                  err ? err : "no reason");
    /* Whatever the walk lets through, msgpack-c must read whole. */
    ck_assert_msg(msgpack_c_accepts(b, n),
                  "line %d: accepted, but msgpack-c does not read it whole",
                  line);
}

static void expect_err_at(const uint8_t *b, size_t n, const char *want,
                          int line)
{
    const char *err = NULL;
    int rc = bd_frame_check(b, n, &err);

    ck_assert_msg(rc == -1, "line %d: accepted, want \"%s\"", line, want);
    ck_assert_msg(err != NULL, "line %d: rejected without a reason", line);
    ck_assert_msg(strcmp(err, want) == 0, "line %d: got \"%s\", want \"%s\"",
                  line, err, want);
}

#define ACCEPT(...) do { \
        const uint8_t b_[] = { __VA_ARGS__ }; \
        expect_ok_at(b_, sizeof(b_), __LINE__); \
    } while (0)

#define REJECT(why, ...) do { \
        const uint8_t b_[] = { __VA_ARGS__ }; \
        expect_err_at(b_, sizeof(b_), why, __LINE__); \
    } while (0)

/* A body of hdr[0..hlen) followed by fill bytes of 'x'; free with free(). */
static uint8_t *with_fill(const uint8_t *hdr, size_t hlen, size_t fill,
                          size_t *len)
{
    uint8_t *b = malloc(hlen + fill + 1);

    ck_assert_ptr_nonnull(b);
    memcpy(b, hdr, hlen);
    memset(b + hlen, 'x', fill);
    *len = hlen + fill;
    return b;
}

#define FILLED_OK(fill, ...) do { \
        const uint8_t h_[] = { __VA_ARGS__ }; \
        size_t n_; \
        uint8_t *b_ = with_fill(h_, sizeof(h_), fill, &n_); \
        expect_ok_at(b_, n_, __LINE__); \
        free(b_); \
    } while (0)

#define FILLED_ERR(why, fill, ...) do { \
        const uint8_t h_[] = { __VA_ARGS__ }; \
        size_t n_; \
        uint8_t *b_ = with_fill(h_, sizeof(h_), fill, &n_); \
        expect_err_at(b_, n_, why, __LINE__); \
        free(b_); \
    } while (0)

/* depth nested one-element containers around a leaf: arrays (0x91) or
 * maps (0x81 with key 0). 'leaf' is the innermost byte; tail extra bytes
 * of 'tailbyte' follow it. Free with free(). */
static uint8_t *nested(size_t depth, int maps, uint8_t leaf, size_t tail,
                       uint8_t tailbyte, size_t *len)
{
    size_t per = maps ? 2 : 1;
    size_t n = depth * per + 1 + tail;
    uint8_t *b = malloc(n);
    size_t pos = 0;

    ck_assert_ptr_nonnull(b);
    for (size_t i = 0; i < depth; i++) {
        if (maps) {
            b[pos++] = 0x81;
            b[pos++] = 0x00;
        } else {
            b[pos++] = 0x91;
        }
    }
    b[pos++] = leaf;
    memset(b + pos, tailbyte, tail);
    *len = n;
    return b;
}

/* ---- a reader in the style of hiredis read.c --------------------------- */

enum { R_NEED = 0, R_FRAME = 1, R_BAD_LENGTH = -1, R_BAD_BODY = -2 };

/* What a connection does with its input buffer: peek, wait for the whole
 * body, check it. Never looks at a byte past the frame it decides on. */
struct reader {
    struct bd_buf in;     /* bytes fed and not yet taken */
    size_t max_frame;     /* limit handed to bd_frame_peek */
    uint8_t *last;        /* copy of the last body taken (malloc) */
    size_t last_len;
    const char *err;      /* reason of the last R_BAD_BODY */
};

static void reader_init(struct reader *r, size_t max_frame)
{
    memset(r, 0, sizeof(*r));
    bd_buf_init(&r->in);
    r->max_frame = max_frame;
}

static void reader_destroy(struct reader *r)
{
    bd_buf_destroy(&r->in);
    free(r->last);
}

static void reader_feed(struct reader *r, const uint8_t *p, size_t n)
{
    ck_assert_int_eq(bd_buf_append(&r->in, p, n), 0);
}

static int reader_next(struct reader *r)
{
    size_t body_len = 0;
    int rc = bd_frame_peek(bd_buf_head(&r->in), r->in.len, r->max_frame,
                           &body_len);

    if (rc == BD_FRAME_NEED)
        return R_NEED;
    if (rc == BD_FRAME_BAD_LENGTH)
        return R_BAD_LENGTH;
    ck_assert_int_eq(rc, BD_FRAME_OK);
    if (r->in.len - BD_FRAME_HDR < body_len) {
        /* A strict prefix of an object is never an object. */
        const char *err = NULL;

        ck_assert_int_eq(bd_frame_check(bd_buf_head(&r->in) + BD_FRAME_HDR,
                                        r->in.len - BD_FRAME_HDR, &err), -1);
        return R_NEED;
    }
    if (bd_frame_check(bd_buf_head(&r->in) + BD_FRAME_HDR, body_len,
                       &r->err) != 0)
        return R_BAD_BODY;
    free(r->last);
    r->last = malloc(body_len);
    ck_assert_ptr_nonnull(r->last);
    memcpy(r->last, bd_buf_head(&r->in) + BD_FRAME_HDR, body_len);
    r->last_len = body_len;
    bd_buf_consume(&r->in, BD_FRAME_HDR + body_len);
    return R_FRAME;
}

/* Two frames, back to back, built with msgpack-c's packer:
 * [1, 42, "users", bin(300), {"priority": 3}] and [9, 7, "ping", nil]. */
struct two_frames {
    msgpack_sbuffer sb;
    size_t end1;          /* offset where frame 1 ends */
    size_t body1, body2;  /* body lengths */
};

static void put_len(msgpack_sbuffer *sb, size_t at)
{
    uint32_t n = (uint32_t)(sb->size - at - 4);

    sb->data[at] = (char)(n >> 24);
    sb->data[at + 1] = (char)(n >> 16);
    sb->data[at + 2] = (char)(n >> 8);
    sb->data[at + 3] = (char)n;
}

static void two_frames_init(struct two_frames *t)
{
    msgpack_packer pk;
    char payload[300];

    memset(payload, 0xab, sizeof(payload));
    msgpack_sbuffer_init(&t->sb);
    msgpack_packer_init(&pk, &t->sb, msgpack_sbuffer_write);
    msgpack_sbuffer_write(&t->sb, "\0\0\0\0", 4);
    msgpack_pack_array(&pk, 5);
    msgpack_pack_uint32(&pk, 1);
    msgpack_pack_uint64(&pk, 42);
    msgpack_pack_str_with_body(&pk, "users", 5);
    msgpack_pack_bin_with_body(&pk, payload, sizeof(payload));
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str_with_body(&pk, "priority", 8);
    msgpack_pack_uint32(&pk, 3);
    put_len(&t->sb, 0);
    t->end1 = t->sb.size;
    t->body1 = t->end1 - 4;
    msgpack_sbuffer_write(&t->sb, "\0\0\0\0", 4);
    msgpack_pack_array(&pk, 4);
    msgpack_pack_uint32(&pk, 9);
    msgpack_pack_uint64(&pk, 7);
    msgpack_pack_str_with_body(&pk, "ping", 4);
    msgpack_pack_nil(&pk);
    put_len(&t->sb, t->end1);
    t->body2 = t->sb.size - t->end1 - 4;
}

/* ---- random numbers ----------------------------------------------------- */

static uint64_t rng_state;

static uint64_t rnd(void)
{
    /* xorshift64*: small, fast, and the same on every machine. */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1DULL;
}

static size_t rnd_below(size_t n)
{
    return (size_t)(rnd() % n);
}

static uint64_t seed_for(const char *test, uint64_t fixed)
{
    const char *env = getenv("BD_TEST_SEED");
    uint64_t seed = fixed;

    if (env != NULL && *env != '\0')
        seed = strtoull(env, NULL, 0);
    if (seed == 0)
        seed = 1;
    printf("check_frame: %s: seed %" PRIu64 " (replay with BD_TEST_SEED=%"
           PRIu64 ")\n", test, seed, seed);
    fflush(stdout);
    rng_state = seed;
    return seed;
}

/* A raw length that often sits on a boundary of the msgpack encodings. */
static size_t rnd_raw_len(void)
{
    static const size_t edge[] = { 0, 1, 31, 32, 255, 256, 65535, 65536 };

    switch (rnd_below(16)) {
    case 0:
        return edge[rnd_below(sizeof(edge) / sizeof(edge[0]))];
    case 1:
        return 200 + rnd_below(400);
    default:
        return rnd_below(40);
    }
}

/*
 * Pack one random object at container depth 'depth' (0 = top level), no
 * container deeper than 'limit'. Returns the deepest container depth
 * used (a top-level container is depth 1), 0 for a scalar.
 */
static int pack_random(msgpack_packer *pk, int depth, int limit)
{
    static char junk[70000];
    size_t n;
    int deepest = 0;
    int kind = (int)rnd_below(depth < limit ? 16 : 12);

    switch (kind) {
    case 0:
        msgpack_pack_nil(pk);
        break;
    case 1:
        if (rnd() & 1)
            msgpack_pack_true(pk);
        else
            msgpack_pack_false(pk);
        break;
    case 2:
        msgpack_pack_uint64(pk, rnd() >> rnd_below(64));
        break;
    case 3:
        msgpack_pack_int64(pk, -(int64_t)(rnd() >> (1 + rnd_below(63))) - 1);
        break;
    case 4:
        msgpack_pack_float(pk, (float)rnd_below(1000) / 7.0f);
        break;
    case 5:
        msgpack_pack_double(pk, (double)rnd() / 3.0);
        break;
    case 6:
    case 7:
        n = rnd_raw_len();
        msgpack_pack_str_with_body(pk, junk, n);
        break;
    case 8:
    case 9:
        n = rnd_raw_len();
        msgpack_pack_bin_with_body(pk, junk, n);
        break;
    case 10:
    case 11: {
        static const size_t ext_len[] = { 0, 1, 2, 3, 4, 5, 8, 16, 17, 255,
                                          256, 300 };

        n = ext_len[rnd_below(sizeof(ext_len) / sizeof(ext_len[0]))];
        msgpack_pack_ext_with_body(pk, junk, n, (int8_t)rnd());
        break;
    }
    case 12:
    case 13:
        n = rnd_below(8) == 0 ? 14 + rnd_below(5) : rnd_below(5);
        msgpack_pack_array(pk, n);
        deepest = depth + 1;
        for (size_t i = 0; i < n; i++) {
            int d = pack_random(pk, depth + 1, limit);

            if (d > deepest)
                deepest = d;
        }
        break;
    default:
        n = rnd_below(8) == 0 ? 15 + rnd_below(3) : rnd_below(4);
        msgpack_pack_map(pk, n);
        deepest = depth + 1;
        for (size_t i = 0; i < 2 * n; i++) {
            int d = pack_random(pk, depth + 1, limit);

            if (d > deepest)
                deepest = d;
        }
        break;
    }
    return deepest;
}

/* ---- core --------------------------------------------------------------- */

START_TEST(test_peek_need_under_four_bytes)
{
    const uint8_t hdr[4] = { 0x00, 0x00, 0x00, 0x05 };

    for (size_t avail = 0; avail < BD_FRAME_HDR; avail++) {
        size_t body_len = 12345;

        ck_assert_int_eq(bd_frame_peek(hdr, avail, BD_FRAME_DEFAULT_MAX,
                                       &body_len), BD_FRAME_NEED);
        ck_assert_uint_eq(body_len, 12345); /* untouched */
    }
}
END_TEST

START_TEST(test_peek_ok)
{
    const uint8_t one[] = { 0x00, 0x00, 0x00, 0x01 };
    const uint8_t mixed[] = { 0x00, 0x0a, 0x0b, 0x0c, 0xc0, 0xc0 };
    size_t body_len = 0;

    ck_assert_int_eq(bd_frame_peek(one, 4, BD_FRAME_DEFAULT_MAX, &body_len),
                     BD_FRAME_OK);
    ck_assert_uint_eq(body_len, 1);
    /* Big-endian, and bytes after the prefix are not its business. */
    ck_assert_int_eq(bd_frame_peek(mixed, sizeof(mixed), BD_FRAME_DEFAULT_MAX,
                                   &body_len), BD_FRAME_OK);
    ck_assert_uint_eq(body_len, 0x000a0b0c);
}
END_TEST

START_TEST(test_check_scalars)
{
    ACCEPT(0x00);                                     /* positive fixint */
    ACCEPT(0x7f);
    ACCEPT(0xe0);                                     /* negative fixint */
    ACCEPT(0xff);
    ACCEPT(0xc0);                                     /* nil */
    ACCEPT(0xc2);                                     /* false */
    ACCEPT(0xc3);                                     /* true */
    ACCEPT(0xca, 0x3f, 0x80, 0x00, 0x00);             /* float32 1.0 */
    ACCEPT(0xcb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0);       /* float64 1.0 */
    ACCEPT(0xcc, 0xff);                               /* uint8 */
    ACCEPT(0xcd, 0xff, 0xff);                         /* uint16 */
    ACCEPT(0xce, 0xff, 0xff, 0xff, 0xff);             /* uint32 */
    ACCEPT(0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff); /* uint64 */
    ACCEPT(0xd0, 0x80);                               /* int8 */
    ACCEPT(0xd1, 0x80, 0x00);                         /* int16 */
    ACCEPT(0xd2, 0x80, 0, 0, 0);                      /* int32 */
    ACCEPT(0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0);          /* int64 */
    ACCEPT(0xa0);                                     /* fixstr "" */
    ACCEPT(0xa3, 'a', 'b', 'c');
    ACCEPT(0xd4, 0x01, 0xaa);                         /* fixext1 */
    ACCEPT(0xd5, 0x01, 0xaa, 0xbb);                   /* fixext2 */
    ACCEPT(0xd6, 0xff, 1, 2, 3, 4);                   /* fixext4 (timestamp) */
    ACCEPT(0xd7, 0xff, 1, 2, 3, 4, 5, 6, 7, 8);       /* fixext8 */
    ACCEPT(0xd8, 0x05, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16);
    ACCEPT(0x90);                                     /* fixarray [] */
    ACCEPT(0x80);                                     /* fixmap {} */
    ACCEPT(0xdc, 0x00, 0x00);                         /* array16 [] */
    ACCEPT(0xdd, 0x00, 0x00, 0x00, 0x00);             /* array32 [] */
    ACCEPT(0xde, 0x00, 0x00);                         /* map16 {} */
    ACCEPT(0xdf, 0x00, 0x00, 0x00, 0x00);             /* map32 {} */
}
END_TEST

START_TEST(test_check_raw_headers)
{
    /* str/bin/ext 8/16/32, empty and with bytes, body exactly to the end. */
    ACCEPT(0xd9, 0x00);
    ACCEPT(0xd9, 0x02, 'h', 'i');
    ACCEPT(0xda, 0x00, 0x00);
    ACCEPT(0xda, 0x00, 0x01, 'z');
    ACCEPT(0xdb, 0x00, 0x00, 0x00, 0x00);
    ACCEPT(0xdb, 0x00, 0x00, 0x00, 0x01, 'z');
    ACCEPT(0xc4, 0x00);
    ACCEPT(0xc4, 0x02, 0x00, 0xff);
    ACCEPT(0xc5, 0x00, 0x00);
    ACCEPT(0xc5, 0x00, 0x02, 0x00, 0xff);
    ACCEPT(0xc6, 0x00, 0x00, 0x00, 0x00);
    ACCEPT(0xc6, 0x00, 0x00, 0x00, 0x01, 0x00);
    ACCEPT(0xc7, 0x00, 0x07);                         /* ext8, type only */
    ACCEPT(0xc7, 0x02, 0x07, 0xaa, 0xbb);
    ACCEPT(0xc8, 0x00, 0x00, 0x07);
    ACCEPT(0xc8, 0x00, 0x01, 0x07, 0xaa);
    ACCEPT(0xc9, 0x00, 0x00, 0x00, 0x00, 0x07);
    ACCEPT(0xc9, 0x00, 0x00, 0x00, 0x01, 0x80, 0xaa);
    /* Realistic sizes: 300 bytes (16-bit length), 70000 (32-bit). */
    FILLED_OK(300, 0xda, 0x01, 0x2c);
    FILLED_OK(300, 0xc5, 0x01, 0x2c);
    FILLED_OK(301, 0xc8, 0x01, 0x2c);                 /* + the type byte */
    FILLED_OK(70000, 0xdb, 0x00, 0x01, 0x11, 0x70);
    FILLED_OK(70000, 0xc6, 0x00, 0x01, 0x11, 0x70);
    FILLED_OK(70001, 0xc9, 0x00, 0x01, 0x11, 0x70);
}
END_TEST

START_TEST(test_check_containers)
{
    ACCEPT(0x92, 0x01, 0xa1, 'x');                    /* [1, "x"] */
    ACCEPT(0x82, 0xa1, 'a', 0x01, 0xa1, 'b', 0x90);   /* {"a":1, "b":[]} */
    ACCEPT(0x81, 0x90, 0x80);                         /* {[]: {}} */
    ACCEPT(0x93, 0x90, 0x80, 0x91, 0x90);             /* [[], {}, [[]]] */
    /* Longer-than-needed headers are valid msgpack. */
    ACCEPT(0xdc, 0x00, 0x01, 0xc0);
    ACCEPT(0xdd, 0x00, 0x00, 0x00, 0x02, 0xc0, 0xc0);
    ACCEPT(0xde, 0x00, 0x01, 0xc0, 0xc0);
    ACCEPT(0xdf, 0x00, 0x00, 0x00, 0x01, 0xa0, 0xc4, 0x00);
    /* A LOAD request as a client would send it. */
    ACCEPT(0x95, 0x01, 0x2a, 0xa5, 'u', 's', 'e', 'r', 's',
           0xc4, 0x03, 'a', 'b', 'c', 0x81, 0xa8, 'p', 'r', 'i', 'o', 'r',
           'i', 't', 'y', 0x03);
}
END_TEST

START_TEST(test_split_every_offset)
{
    struct two_frames t;
    const uint8_t *all;
    size_t total;

    two_frames_init(&t);
    all = (const uint8_t *)t.sb.data;
    total = t.sb.size;
    for (size_t cut = 0; cut <= total; cut++) {
        struct reader r;
        int got = 0;
        int want = (cut >= t.end1) + (cut == total);

        reader_init(&r, BD_FRAME_DEFAULT_MAX);
        reader_feed(&r, all, cut);
        while (reader_next(&r) == R_FRAME)
            got++;
        ck_assert_msg(got == want, "cut %zu: %d frames, want %d", cut, got,
                      want);
        reader_feed(&r, all + cut, total - cut);
        while (reader_next(&r) == R_FRAME)
            got++;
        ck_assert_msg(got == 2, "cut %zu: %d frames in all", cut, got);
        ck_assert_uint_eq(r.last_len, t.body2);
        ck_assert_mem_eq(r.last, all + t.end1 + 4, t.body2);
        ck_assert_uint_eq(r.in.len, 0);
        reader_destroy(&r);
    }
    msgpack_sbuffer_destroy(&t.sb);
}
END_TEST

START_TEST(test_byte_at_a_time)
{
    struct two_frames t;
    const uint8_t *all;
    struct reader r;
    int frames = 0;

    two_frames_init(&t);
    all = (const uint8_t *)t.sb.data;
    reader_init(&r, BD_FRAME_DEFAULT_MAX);
    for (size_t i = 0; i < t.sb.size; i++) {
        size_t body = frames == 0 ? t.body1 : t.body2;
        size_t body_len = 0;
        int rc;

        reader_feed(&r, all + i, 1);
        /* peek says NEED exactly until the 4 length bytes are in. */
        rc = bd_frame_peek(bd_buf_head(&r.in), r.in.len, BD_FRAME_DEFAULT_MAX,
                           &body_len);
        if (r.in.len < BD_FRAME_HDR) {
            ck_assert_int_eq(rc, BD_FRAME_NEED);
        } else {
            ck_assert_int_eq(rc, BD_FRAME_OK);
            ck_assert_uint_eq(body_len, body);
        }
        /* The reader says NEED until the last body byte, then a frame. */
        rc = reader_next(&r);
        if (r.in.len == 0) {
            ck_assert_msg(rc == R_FRAME, "byte %zu: %d, want a frame", i, rc);
            ck_assert_uint_eq(r.last_len, body);
            frames++;
        } else {
            ck_assert_msg(rc == R_NEED, "byte %zu: %d, want NEED", i, rc);
        }
    }
    ck_assert_int_eq(frames, 2);
    reader_destroy(&r);
    msgpack_sbuffer_destroy(&t.sb);
}
END_TEST

START_TEST(test_random_packed_objects_pass)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    int deep = 0;

    seed_for("random packed objects", 0x5eed0001);
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    for (int i = 0; i < 20000; i++) {
        /* Mostly within the limit; now and then one or two levels over. */
        int limit = rnd_below(10) == 0 ? 10 : BD_FRAME_MAX_DEPTH;
        const char *err = NULL;
        int depth, rc;

        msgpack_sbuffer_clear(&sb);
        depth = pack_random(&pk, 0, limit);
        rc = bd_frame_check((const uint8_t *)sb.data, sb.size, &err);
        ck_assert(msgpack_c_accepts((const uint8_t *)sb.data, sb.size));
        if (depth <= BD_FRAME_MAX_DEPTH) {
            ck_assert_msg(rc == 0, "object %d (%zu bytes, depth %d): %s", i,
                          sb.size, depth, err);
        } else {
            deep++;
            ck_assert_msg(rc == -1, "object %d: depth %d accepted", i, depth);
            ck_assert_str_eq(err, E_DEEP);
        }
    }
    ck_assert_int_gt(deep, 0); /* the generator did reach past the limit */
    msgpack_sbuffer_destroy(&sb);
}
END_TEST

START_TEST(test_encode_begin_end)
{
    struct bd_buf b;
    size_t m1, m2;
    static const uint8_t want[] = {
        0x00, 0x00, 0x00, 0x03, 'a', 'b', 'c',
        0x00, 0x00, 0x00, 0x01, 0xc0,
    };

    bd_buf_init(&b);
    ck_assert_int_eq(bd_frame_begin(&b, &m1), 0);
    ck_assert_uint_eq(m1, 0);
    ck_assert_uint_eq(b.len, BD_FRAME_HDR);
    ck_assert_int_eq(bd_buf_append(&b, "abc", 3), 0);
    bd_frame_end(&b, m1);
    ck_assert_int_eq(bd_frame_begin(&b, &m2), 0);
    ck_assert_uint_eq(m2, 7);
    ck_assert_int_eq(bd_buf_append(&b, "\xc0", 1), 0);
    bd_frame_end(&b, m2);
    ck_assert_uint_eq(b.len, sizeof(want));
    ck_assert_mem_eq(bd_buf_head(&b), want, sizeof(want));
    bd_buf_destroy(&b);
}
END_TEST

START_TEST(test_encode_after_grow)
{
    struct bd_buf b;
    size_t mark, body_len = 0;
    uint8_t chunk[1000];

    /* The body grows the buffer many times over: the length still lands
     * in the (moved) prefix. */
    memset(chunk, 0x5a, sizeof(chunk));
    bd_buf_init(&b);
    ck_assert_int_eq(bd_buf_append(&b, "xyz", 3), 0);
    ck_assert_int_eq(bd_frame_begin(&b, &mark), 0);
    ck_assert_uint_eq(mark, 3);
    for (int i = 0; i < 70; i++)
        ck_assert_int_eq(bd_buf_append(&b, chunk, sizeof(chunk)), 0);
    bd_frame_end(&b, mark);
    ck_assert_mem_eq(bd_buf_head(&b), "xyz", 3);
    ck_assert_int_eq(bd_frame_peek(bd_buf_head(&b) + mark, 4, UINT32_MAX,
                                   &body_len), BD_FRAME_OK);
    ck_assert_uint_eq(body_len, 70000);
    bd_buf_destroy(&b);
}
END_TEST

START_TEST(test_encode_after_slide)
{
    struct bd_buf b;
    uint8_t junk[200], body[100];
    size_t mark, body_len = 0;

    /* 150 bytes consumed at the front: the body's reserve slides the data
     * to the front (off -> 0) without growing. The mark is relative to
     * the head, so it still points at the prefix. */
    memset(junk, 'j', sizeof(junk));
    memset(body, 'b', sizeof(body));
    bd_buf_init(&b);
    ck_assert_int_eq(bd_buf_append(&b, junk, sizeof(junk)), 0);
    ck_assert_uint_eq(b.cap, 256);
    bd_buf_consume(&b, 150);
    ck_assert_int_eq(bd_frame_begin(&b, &mark), 0);
    ck_assert_uint_eq(mark, 50);
    ck_assert_uint_eq(b.off, 150);
    ck_assert_int_eq(bd_buf_append(&b, body, sizeof(body)), 0);
    ck_assert_uint_eq(b.off, 0);
    ck_assert_uint_eq(b.cap, 256);
    bd_frame_end(&b, mark);
    ck_assert_int_eq(bd_frame_peek(bd_buf_head(&b) + mark, 4,
                                   BD_FRAME_DEFAULT_MAX, &body_len),
                     BD_FRAME_OK);
    ck_assert_uint_eq(body_len, 100);
    ck_assert_mem_eq(bd_buf_head(&b), junk, 50);
    ck_assert_mem_eq(bd_buf_head(&b) + 54, body, 100);
    bd_buf_destroy(&b);
}
END_TEST

START_TEST(test_encode_all_length_bytes)
{
    struct bd_buf b;
    size_t mark;
    const size_t n = 0x01020304;
    static const uint8_t want[] = { 0x01, 0x02, 0x03, 0x04 };

    bd_buf_init(&b);
    ck_assert_int_eq(bd_frame_begin(&b, &mark), 0);
    ck_assert_int_eq(bd_buf_reserve(&b, n), 0);
    memset(bd_buf_tail(&b), 0, n);
    b.len += n;
    bd_frame_end(&b, mark);
    ck_assert_mem_eq(bd_buf_head(&b), want, 4);
    bd_buf_destroy(&b);
}
END_TEST

START_TEST(test_encode_begin_no_memory)
{
    struct bd_buf b;
    size_t mark = 99;

    bd_buf_init(&b);
    bd_alloc_fail_after(1);
    ck_assert_int_eq(bd_frame_begin(&b, &mark), -1);
    bd_alloc_fail_after(0);
    ck_assert_uint_eq(b.len, 0);
    ck_assert_ptr_null(b.data);
    /* And it works once memory is back. */
    ck_assert_int_eq(bd_frame_begin(&b, &mark), 0);
    ck_assert_uint_eq(b.len, 4);
    bd_buf_destroy(&b);
}
END_TEST

/* ---- limits ------------------------------------------------------------- */

START_TEST(test_peek_length_limits)
{
    static const struct {
        uint8_t hdr[4];
        size_t max;
        int rc;
        size_t len;
    } t[] = {
        { { 0x00, 0x00, 0x00, 0x00 }, BD_FRAME_DEFAULT_MAX, BD_FRAME_BAD_LENGTH, 0 },
        { { 0x00, 0x10, 0x00, 0x00 }, BD_FRAME_DEFAULT_MAX, BD_FRAME_OK, 1u << 20 },
        { { 0x00, 0x10, 0x00, 0x01 }, BD_FRAME_DEFAULT_MAX, BD_FRAME_BAD_LENGTH, 0 },
        { { 0xff, 0xff, 0xff, 0xff }, BD_FRAME_DEFAULT_MAX, BD_FRAME_BAD_LENGTH, 0 },
        { { 0x80, 0x00, 0x00, 0x00 }, BD_FRAME_DEFAULT_MAX, BD_FRAME_BAD_LENGTH, 0 },
        { { 0x00, 0x00, 0x10, 0x00 }, BD_FRAME_PRE_HELLO_MAX, BD_FRAME_OK, 4096 },
        { { 0x00, 0x00, 0x10, 0x01 }, BD_FRAME_PRE_HELLO_MAX, BD_FRAME_BAD_LENGTH, 0 },
        { { 0x00, 0x00, 0x00, 0x01 }, BD_FRAME_PRE_HELLO_MAX, BD_FRAME_OK, 1 },
        { { 0xff, 0xff, 0xff, 0xff }, UINT32_MAX, BD_FRAME_OK, UINT32_MAX },
        { { 0x00, 0x00, 0x00, 0x01 }, 0, BD_FRAME_BAD_LENGTH, 0 },
    };

    ck_assert_uint_eq(BD_FRAME_DEFAULT_MAX, 1048576);
    ck_assert_uint_eq(BD_FRAME_PRE_HELLO_MAX, 4096);
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        size_t body_len = 7777;
        /* Decided from the 4 length bytes alone: no body byte is given. */
        int rc = bd_frame_peek(t[i].hdr, 4, t[i].max, &body_len);

        ck_assert_msg(rc == t[i].rc, "case %zu: rc %d, want %d", i, rc, t[i].rc);
        if (rc == BD_FRAME_OK)
            ck_assert_uint_eq(body_len, t[i].len);
        else
            ck_assert_uint_eq(body_len, 7777);
    }
}
END_TEST

START_TEST(test_bad_length_in_reader)
{
    struct reader r;
    const uint8_t huge[] = { 0xff, 0xff, 0xff, 0xff };
    const uint8_t zero[] = { 0x00, 0x00, 0x00, 0x00, 0xc0 };

    /* The reader decides the moment the 4th byte is in: it does not wait
     * for (or buffer room for) a body. */
    reader_init(&r, BD_FRAME_DEFAULT_MAX);
    reader_feed(&r, huge, 3);
    ck_assert_int_eq(reader_next(&r), R_NEED);
    reader_feed(&r, huge + 3, 1);
    ck_assert_int_eq(reader_next(&r), R_BAD_LENGTH);
    ck_assert_uint_le(r.in.cap, 256);
    reader_destroy(&r);
    reader_init(&r, BD_FRAME_DEFAULT_MAX);
    reader_feed(&r, zero, sizeof(zero));
    ck_assert_int_eq(reader_next(&r), R_BAD_LENGTH);
    reader_destroy(&r);
}
END_TEST

START_TEST(test_nesting_eight_ok)
{
    uint8_t *b;
    size_t n;

    b = nested(8, 0, 0x01, 0, 0, &n);        /* [[[[[[[[1]]]]]]]] */
    expect_ok_at(b, n, __LINE__);
    free(b);
    b = nested(8, 1, 0x01, 0, 0, &n);        /* {0:{0:...{0:1}}} */
    expect_ok_at(b, n, __LINE__);
    free(b);
    b = nested(7, 0, 0x90, 0, 0, &n);        /* innermost empty array is 8th */
    expect_ok_at(b, n, __LINE__);
    free(b);
    b = nested(7, 1, 0x80, 0, 0, &n);
    expect_ok_at(b, n, __LINE__);
    free(b);
    /* Mixed: array, map, array, ... 8 levels. */
    ACCEPT(0x91, 0x81, 0x00, 0x91, 0x81, 0x00, 0x91, 0x81, 0x00, 0x91, 0x81,
           0x00, 0xc0);
    /* Going back up and down again does not add up. */
    ACCEPT(0x92, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x00,
           0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x00);
}
END_TEST

START_TEST(test_nesting_nine_rejected)
{
    uint8_t *b;
    size_t n;

    b = nested(9, 0, 0x01, 0, 0, &n);
    expect_err_at(b, n, E_DEEP, __LINE__);
    free(b);
    b = nested(9, 1, 0x01, 0, 0, &n);
    expect_err_at(b, n, E_DEEP, __LINE__);
    free(b);
    REJECT(E_DEEP, 0x91, 0x81, 0x00, 0x91, 0x81, 0x00, 0x91, 0x81, 0x00, 0x91,
           0x81, 0x00, 0x91, 0xc0);
    /* A 9th level counts even when it is empty: depth is a property of
     * the container, not of what it holds. */
    b = nested(8, 0, 0x90, 0, 0, &n);        /* innermost [] is the 9th */
    expect_err_at(b, n, E_DEEP, __LINE__);
    free(b);
    b = nested(8, 1, 0x80, 0, 0, &n);
    expect_err_at(b, n, E_DEEP, __LINE__);
    free(b);
    REJECT(E_DEEP, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91,
           0xdc, 0x00, 0x00);
    REJECT(E_DEEP, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91,
           0xdf, 0x00, 0x00, 0x00, 0x00);
}
END_TEST

START_TEST(test_nesting_very_deep)
{
    static const size_t depths[] = { 1000, 100000 };

    for (size_t i = 0; i < 2; i++) {
        uint8_t *b;
        size_t n;

        b = nested(depths[i], 0, 0x01, 0, 0, &n);
        expect_err_at(b, n, E_DEEP, __LINE__);
        free(b);
        b = nested(depths[i], 1, 0x01, 0, 0, &n);
        expect_err_at(b, n, E_DEEP, __LINE__);
        free(b);
        /* The walk stops at level 9: make everything after it poison
         * (0xc1) and the reason is still the depth, so no byte past the
         * 9th header was read and no stack grew with the input. */
        b = nested(depths[i], 0, 0x01, 0, 0, &n);
        memset(b + 9, 0xc1, n - 9);
        expect_err_at(b, n, E_DEEP, __LINE__);
        free(b);
    }
}
END_TEST

START_TEST(test_huge_declared_counts)
{
    /* array32 of 2^32-1 elements in 5 bytes. */
    REJECT(E_COUNT, 0xdd, 0xff, 0xff, 0xff, 0xff);
    /* The same in 6 bytes: the frame DESIGN says msgpack-c answers NOMEM. */
    REJECT(E_COUNT, 0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0);
    /* map32 of 2^31 pairs (2^32 objects), and of 2^32-1 pairs. */
    REJECT(E_COUNT, 0xdf, 0x80, 0x00, 0x00, 0x00);
    REJECT(E_COUNT, 0xdf, 0xff, 0xff, 0xff, 0xff, 0xc0, 0xc0);
    /* array16 of 65535 in 3 bytes; map16 of 65535. */
    REJECT(E_COUNT, 0xdc, 0xff, 0xff);
    REJECT(E_COUNT, 0xde, 0xff, 0xff);
    /* 1M declared elements (msgpack-c answers CONTINUE and allocates). */
    REJECT(E_COUNT, 0xdd, 0x00, 0x0f, 0x42, 0x40, 0xc0, 0xc0, 0xc0);
    FILLED_ERR(E_COUNT, 1000, 0xdd, 0x00, 0x0f, 0x42, 0x40);
    /* Nested lies are caught at their own level too. */
    REJECT(E_COUNT, 0x92, 0x00, 0xdd, 0x00, 0x0f, 0x42, 0x40);
    REJECT(E_COUNT, 0x81, 0xa1, 'k', 0xdc, 0xff, 0xff, 0xc0);
    /* fixarray/fixmap counts are bounded too. */
    REJECT(E_COUNT, 0x9f, 0xc0, 0xc0);
    REJECT(E_COUNT, 0x8f, 0xc0, 0xc0);
    REJECT(E_COUNT, 0x81, 0xc0);                      /* map: 2 per pair */
}
END_TEST

START_TEST(test_counts_at_the_edge)
{
    size_t n;

    /* One byte per element is the floor: exactly enough bytes passes,
     * one short fails. */
    ACCEPT(0x93, 0xc0, 0xc0, 0xc0);
    REJECT(E_COUNT, 0x93, 0xc0, 0xc0);
    ACCEPT(0x82, 0xc0, 0xc0, 0xc0, 0xc0);
    REJECT(E_COUNT, 0x82, 0xc0, 0xc0, 0xc0);
    /* 65535 nils in an array16, 65536 in an array32. */
    {
        uint8_t h16[] = { 0xdc, 0xff, 0xff };
        uint8_t h32[] = { 0xdd, 0x00, 0x01, 0x00, 0x00 };
        uint8_t *p;

        p = with_fill(h16, sizeof(h16), 65535, &n);
        memset(p + 3, 0xc0, 65535);
        expect_ok_at(p, n, __LINE__);
        expect_err_at(p, n - 1, E_COUNT, __LINE__);
        free(p);
        p = with_fill(h32, sizeof(h32), 65536, &n);
        memset(p + 5, 0xc0, 65536);
        expect_ok_at(p, n, __LINE__);
        free(p);
    }
    /* A count that fits the bytes but whose children do not: the lie is
     * found when the children run out. */
    REJECT(E_TRUNC, 0x92, 0x91, 0x00);
    REJECT(E_PAST, 0x92, 0xc0, 0xa2, 'x');
}
END_TEST

START_TEST(test_lengths_at_the_edge)
{
    /* Exactly to the end passes (core); one byte more fails. */
    REJECT(E_PAST, 0xa3, 'a', 'b');
    REJECT(E_PAST, 0xd9, 0x03, 'a', 'b');
    REJECT(E_PAST, 0xda, 0x00, 0x03, 'a', 'b');
    REJECT(E_PAST, 0xdb, 0x00, 0x00, 0x00, 0x03, 'a', 'b');
    REJECT(E_PAST, 0xc4, 0x03, 'a', 'b');
    REJECT(E_PAST, 0xc5, 0x00, 0x03, 'a', 'b');
    REJECT(E_PAST, 0xc6, 0x00, 0x00, 0x00, 0x03, 'a', 'b');
    REJECT(E_PAST, 0xc7, 0x02, 0x01, 'a');            /* type + 2 wanted */
    REJECT(E_PAST, 0xc7, 0x00);                       /* the type byte */
    REJECT(E_PAST, 0xc8, 0x00, 0x02, 0x01, 'a');
    REJECT(E_PAST, 0xc9, 0x00, 0x00, 0x00, 0x02, 0x01, 'a');
    FILLED_ERR(E_PAST, 299, 0xda, 0x01, 0x2c);
    FILLED_ERR(E_PAST, 300, 0xc8, 0x01, 0x2c);
    /* Lengths near 2^32 do not wrap around. */
    REJECT(E_PAST, 0xdb, 0xff, 0xff, 0xff, 0xff, 'a');
    REJECT(E_PAST, 0xc6, 0xff, 0xff, 0xff, 0xff, 'a');
    REJECT(E_PAST, 0xc9, 0xff, 0xff, 0xff, 0xff, 0x01, 'a');
    REJECT(E_PAST, 0xc9, 0xff, 0xff, 0xff, 0xfe);
}
END_TEST

/* ---- malformed ---------------------------------------------------------- */

START_TEST(test_reserved_c1)
{
    REJECT(E_C1, 0xc1);
    REJECT(E_C1, 0xc1, 0x00);
    REJECT(E_C1, 0x92, 0x00, 0xc1);
    REJECT(E_C1, 0x81, 0xc1, 0x00);                   /* as a map key */
    REJECT(E_C1, 0x81, 0x00, 0xc1);                   /* as a map value */
}
END_TEST

START_TEST(test_truncated_headers)
{
    REJECT(E_HDR, 0xc4);
    REJECT(E_HDR, 0xc5, 0x00);
    REJECT(E_HDR, 0xc6, 0x00, 0x00, 0x00);
    REJECT(E_HDR, 0xc7);
    REJECT(E_HDR, 0xc8, 0x00);
    REJECT(E_HDR, 0xc9, 0x00, 0x00);
    REJECT(E_HDR, 0xd9);
    REJECT(E_HDR, 0xda, 0x00);
    REJECT(E_HDR, 0xdb, 0x00, 0x00, 0x00);
    REJECT(E_HDR, 0xdc, 0x00);
    REJECT(E_HDR, 0xdd);
    REJECT(E_HDR, 0xde);
    REJECT(E_HDR, 0xdf, 0x00, 0x00, 0x00);
    REJECT(E_HDR, 0x91, 0xdc, 0x00);                  /* inside a container */
}
END_TEST

START_TEST(test_truncated_scalars)
{
    /* Fixed-size scalars whose bytes run out. */
    REJECT(E_PAST, 0xca, 0x00, 0x00, 0x00);
    REJECT(E_PAST, 0xcb, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00);
    REJECT(E_PAST, 0xcc);
    REJECT(E_PAST, 0xcd, 0x00);
    REJECT(E_PAST, 0xce, 0x00, 0x00, 0x00);
    REJECT(E_PAST, 0xcf, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00);
    REJECT(E_PAST, 0xd0);
    REJECT(E_PAST, 0xd3, 0x00);
    REJECT(E_PAST, 0xd4, 0x01);
    REJECT(E_PAST, 0xd8, 0x01, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
}
END_TEST

START_TEST(test_truncated_objects)
{
    const char *err = NULL;
    const uint8_t one = 0xc0;

    /* An empty body is not an object. */
    ck_assert_int_eq(bd_frame_check(&one, 0, &err), -1);
    ck_assert_str_eq(err, E_TRUNC);
    REJECT(E_TRUNC, 0x92, 0x91, 0x00);
    REJECT(E_TRUNC, 0x82, 0x00, 0x91, 0x00, 0x00);    /* last value missing */
}
END_TEST

START_TEST(test_trailing_bytes)
{
    REJECT(E_TRAILING, 0xc0, 0xc0);
    REJECT(E_TRAILING, 0x00, 0x00);
    REJECT(E_TRAILING, 0x91, 0x00, 0x00);
    REJECT(E_TRAILING, 0xa1, 'a', 'b');
    REJECT(E_TRAILING, 0x90, 0xc1);                   /* not even looked at */
    /* Two whole frames' worth of objects in one body. */
    REJECT(E_TRAILING, 0x92, 0x01, 0x02, 0x92, 0x01, 0x02);
}
END_TEST

START_TEST(test_bad_body_in_reader)
{
    struct reader r;
    const uint8_t bad[] = { 0x00, 0x00, 0x00, 0x02, 0xc0, 0xc0,
                            0x00, 0x00, 0x00, 0x01, 0xc0 };

    reader_init(&r, BD_FRAME_DEFAULT_MAX);
    reader_feed(&r, bad, sizeof(bad));
    ck_assert_int_eq(reader_next(&r), R_BAD_BODY);
    ck_assert_str_eq(r.err, E_TRAILING);
    reader_destroy(&r);
}
END_TEST

static int known_error(const char *err)
{
    for (size_t i = 0; i < sizeof(known_errors) / sizeof(known_errors[0]); i++)
        if (err != NULL && strcmp(err, known_errors[i]) == 0)
            return 1;
    return 0;
}

/* Check one hostile body; returns 1 when it was accepted. */
static int fuzz_one(const uint8_t *b, size_t n, const char *what, long i)
{
    const char *err = NULL;
    int rc = bd_frame_check(b, n, &err);

    if (rc == 0) {
        ck_assert_msg(msgpack_c_accepts(b, n),
                      "%s %ld: %zu bytes accepted, msgpack-c disagrees", what,
                      i, n);
        return 1;
    }
    ck_assert_msg(rc == -1 && known_error(err), "%s %ld: rc %d, reason %s",
                  what, i, rc, err ? err : "(null)");
    return 0;
}

/* A byte likely to be a header, or a small length. */
static uint8_t rnd_byte(void)
{
    static const uint8_t hdr[] = {
        0x00, 0x01, 0x02, 0x7f, 0x80, 0x81, 0x82, 0x8f, 0x90, 0x91, 0x92,
        0x9f, 0xa0, 0xa1, 0xa5, 0xbf, 0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xc5,
        0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xcb, 0xcc, 0xcd, 0xce, 0xcf, 0xd0,
        0xd1, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda, 0xdb,
        0xdc, 0xdd, 0xde, 0xdf, 0xe0, 0xff,
    };

    if (rnd() & 1)
        return (uint8_t)rnd();
    return hdr[rnd_below(sizeof(hdr))];
}

START_TEST(test_random_bytes)
{
    uint8_t b[48];
    long accepted = 0;
    const long rounds = 300000;

    seed_for("random bytes", 0x5eed0002);
    for (long i = 0; i < rounds; i++) {
        size_t n = rnd_below(sizeof(b) + 1);

        for (size_t j = 0; j < n; j++)
            b[j] = rnd_byte();
        accepted += fuzz_one(b, n, "random body", i);
    }
    printf("check_frame: random bytes: %ld of %ld accepted\n", accepted,
           rounds);
    ck_assert_int_gt(accepted, 0);
}
END_TEST

START_TEST(test_random_mutations)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    long accepted = 0;
    const long rounds = 30000;

    /* Start from a valid object and break it a little: flips, cuts,
     * inserted and appended bytes. These reach deep into the walk. */
    seed_for("random mutations", 0x5eed0003);
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    for (long i = 0; i < rounds; i++) {
        int edits = 1 + (int)rnd_below(3);

        msgpack_sbuffer_clear(&sb);
        pack_random(&pk, 0, BD_FRAME_MAX_DEPTH);
        if (sb.size > 4096)
            continue;
        for (int e = 0; e < edits; e++) {
            size_t at = rnd_below(sb.size + 1);

            switch (rnd_below(4)) {
            case 0:
                if (at < sb.size)
                    sb.data[at] = (char)rnd_byte();
                break;
            case 1:
                sb.size = at;
                break;
            case 2: {
                char c = (char)rnd_byte();

                msgpack_sbuffer_write(&sb, &c, 1);
                memmove(sb.data + at + 1, sb.data + at, sb.size - at - 1);
                sb.data[at] = c;
                break;
            }
            default:
                if (at < sb.size)
                    sb.data[at] ^= (char)(1u << rnd_below(8));
                break;
            }
        }
        accepted += fuzz_one((const uint8_t *)sb.data, sb.size, "mutation", i);
    }
    printf("check_frame: random mutations: %ld of %ld accepted\n", accepted,
           rounds);
    ck_assert_int_gt(accepted, 0);
    msgpack_sbuffer_destroy(&sb);
}
END_TEST

/* ---- suite -------------------------------------------------------------- */

static void setup(void)
{
    bd_alloc_fail_after(0);
}

static void teardown(void)
{
    bd_alloc_fail_after(0);
}

Suite *frame_suite(void);

Suite *frame_suite(void)
{
    Suite *s = suite_create("frame");
    TCase *tc_core = tcase_create("core");
    TCase *tc_limits = tcase_create("limits");
    TCase *tc_malformed = tcase_create("malformed");

    tcase_add_checked_fixture(tc_core, setup, teardown);
    tcase_add_test(tc_core, test_peek_need_under_four_bytes);
    tcase_add_test(tc_core, test_peek_ok);
    tcase_add_test(tc_core, test_check_scalars);
    tcase_add_test(tc_core, test_check_raw_headers);
    tcase_add_test(tc_core, test_check_containers);
    tcase_add_test(tc_core, test_split_every_offset);
    tcase_add_test(tc_core, test_byte_at_a_time);
    tcase_add_test(tc_core, test_random_packed_objects_pass);
    tcase_add_test(tc_core, test_encode_begin_end);
    tcase_add_test(tc_core, test_encode_after_grow);
    tcase_add_test(tc_core, test_encode_after_slide);
    tcase_add_test(tc_core, test_encode_all_length_bytes);
    tcase_add_test(tc_core, test_encode_begin_no_memory);
    suite_add_tcase(s, tc_core);

    tcase_add_checked_fixture(tc_limits, setup, teardown);
    tcase_add_test(tc_limits, test_peek_length_limits);
    tcase_add_test(tc_limits, test_bad_length_in_reader);
    tcase_add_test(tc_limits, test_nesting_eight_ok);
    tcase_add_test(tc_limits, test_nesting_nine_rejected);
    tcase_add_test(tc_limits, test_nesting_very_deep);
    tcase_add_test(tc_limits, test_huge_declared_counts);
    tcase_add_test(tc_limits, test_counts_at_the_edge);
    tcase_add_test(tc_limits, test_lengths_at_the_edge);
    suite_add_tcase(s, tc_limits);

    tcase_add_checked_fixture(tc_malformed, setup, teardown);
    tcase_add_test(tc_malformed, test_reserved_c1);
    tcase_add_test(tc_malformed, test_truncated_headers);
    tcase_add_test(tc_malformed, test_truncated_scalars);
    tcase_add_test(tc_malformed, test_truncated_objects);
    tcase_add_test(tc_malformed, test_trailing_bytes);
    tcase_add_test(tc_malformed, test_bad_body_in_reader);
    tcase_add_test(tc_malformed, test_random_bytes);
    tcase_add_test(tc_malformed, test_random_mutations);
    suite_add_tcase(s, tc_malformed);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(frame_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
