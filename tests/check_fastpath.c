/*
 * check_fastpath.c - the hand-written hot-path codecs against their
 * references: bd_msg_decode_fast against bd_msg_decode (msgpack-c),
 * bd_msg_encode_reply against msgpack-c's packer, and proto/bytes.h
 * against memcmp and a byte-by-byte scan.
 *
 * Every input is copied into a heap block of exactly its size, so the
 * ASan build catches any read past the end (the word-at-a-time helpers
 * and the decoder's bounds are the point of these tests).
 */
#include <check.h>
#include <msgpack.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "bytes.h"
#include "frame.h"
#include "msg.h"

static const uint64_t ids[] = {
    0, 1, 127, 128, 255, 256, 65535, 65536, UINT32_MAX,
    (uint64_t)UINT32_MAX + 1, UINT64_MAX,
};
static const size_t payload_lens[] = { 0, 1, 31, 32, 255, 256, 65535, 65536 };

/* A heap copy of exactly n bytes (at least 1 allocated byte for n 0,
 * never read). */
static uint8_t *exact_copy(const void *p, size_t n)
{
    uint8_t *c = malloc(n ? n : 1);

    ck_assert_ptr_nonnull(c);
    if (n)
        memcpy(c, p, n);
    return c;
}

/* ---- bytes.h -------------------------------------------------------------- */

static int ref_plain(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] == 0 || p[i] >= 0x80)
            return 0;
    return 1;
}

START_TEST(test_bytes_eq_every_length_and_position)
{
    for (size_t n = 0; n <= 40; n++) {
        uint8_t base[40] = { 0 };

        for (size_t i = 0; i < n; i++)
            base[i] = (uint8_t)('a' + i % 26);
        uint8_t *a = exact_copy(base, n), *b = exact_copy(base, n);

        ck_assert_msg(bd_bytes_eq(a, b, n), "len %zu: equal strings differ", n);
        for (size_t i = 0; i < n; i++) {
            static const uint8_t flips[] = { 0x01, 0x80, 0xff };

            for (size_t f = 0; f < sizeof(flips); f++) {
                b[i] ^= flips[f];
                ck_assert_msg(!bd_bytes_eq(a, b, n),
                              "len %zu: byte %zu ^ 0x%02x not seen", n, i,
                              flips[f]);
                ck_assert_int_eq(bd_bytes_eq(a, b, n),
                                 memcmp(a, b, n) == 0);
                b[i] ^= flips[f];
            }
        }
        free(a);
        free(b);
    }
}
END_TEST

START_TEST(test_bytes_plain_ascii_every_length_and_position)
{
    static const uint8_t bad[] = { 0x00, 0x80, 0xc3, 0xff };

    for (size_t n = 0; n <= 40; n++) {
        uint8_t base[40] = { 0 };

        for (size_t i = 0; i < n; i++)
            base[i] = (uint8_t)(1 + (i * 37) % 127); /* all of 1..0x7f */
        uint8_t *a = exact_copy(base, n);

        ck_assert_int_eq(bd_bytes_plain_ascii(a, n), 1);
        for (size_t i = 0; i < n; i++) {
            uint8_t keep = a[i];

            for (size_t j = 0; j < sizeof(bad); j++) {
                a[i] = bad[j];
                ck_assert_msg(bd_bytes_plain_ascii(a, n) == ref_plain(a, n),
                              "len %zu: byte %zu = 0x%02x", n, i, bad[j]);
                ck_assert_int_eq(bd_bytes_plain_ascii(a, n), 0);
            }
            a[i] = keep;
        }
        free(a);
    }
}
END_TEST

START_TEST(test_bytes_plain_ascii_random)
{
    unsigned seed = 12345;

    for (int round = 0; round < 20000; round++) {
        uint8_t buf[48];
        size_t n = (size_t)(rand_r(&seed) % 49);

        for (size_t i = 0; i < n; i++) {
            int r = rand_r(&seed);

            /* mostly plain bytes, so that many strings pass */
            buf[i] = (uint8_t)(r % 50 == 0 ? r >> 8 : 1 + (r >> 8) % 127);
        }
        uint8_t *a = exact_copy(buf, n);

        ck_assert_int_eq(bd_bytes_plain_ascii(a, n), ref_plain(a, n));
        free(a);
    }
}
END_TEST

/* ---- bd_msg_decode_fast ------------------------------------------------- */

/* The body (no length prefix) of one encoded LOAD/SEND. */
static uint8_t *encode_body(int type, uint64_t id, const char *key,
                            size_t klen, const uint8_t *payload, size_t plen,
                            const struct bd_opts *opts, size_t *len)
{
    struct bd_buf b;
    uint8_t *body;

    bd_buf_init(&b);
    ck_assert_int_eq(bd_msg_encode_item(&b, type, id, key, klen, payload, plen,
                                        opts), 0);
    *len = b.len - BD_FRAME_HDR;
    body = exact_copy(bd_buf_head(&b) + BD_FRAME_HDR, *len);
    bd_buf_destroy(&b);
    return body;
}

/* decode_fast must take body and agree with msgpack-c; every strict
 * prefix and one extra byte must be refused. */
static void assert_fast_agrees(const uint8_t *body, size_t len)
{
    struct bd_msg_item f;
    struct bd_msg m;
    msgpack_zone zone;
    char err[200];

    msgpack_zone_init(&zone, 1024);
    ck_assert_int_eq(bd_msg_decode_fast(body, len, &f), 1);
    ck_assert_int_eq(bd_msg_decode(body, len, &zone, &m, err, sizeof(err)),
                     BATCHD_OK);
    ck_assert_int_eq(f.type, m.type);
    ck_assert_uint_eq(f.req_id, m.req_id);
    ck_assert_uint_eq(f.key_len, m.key_len);
    ck_assert_mem_eq(f.key, m.key, m.key_len);
    ck_assert_uint_eq(f.payload_len, m.payload_len);
    if (m.payload_len)
        ck_assert_mem_eq(f.payload, m.payload, m.payload_len);
    msgpack_zone_destroy(&zone);

    for (size_t cut = 0; cut < len; cut++) {
        uint8_t *p = exact_copy(body, cut);

        ck_assert_msg(bd_msg_decode_fast(p, cut, &f) == 0,
                      "prefix of %zu of %zu bytes taken", cut, len);
        free(p);
    }
    uint8_t *longer = malloc(len + 1);

    ck_assert_ptr_nonnull(longer);
    memcpy(longer, body, len);
    longer[len] = 0xc0;
    ck_assert_int_eq(bd_msg_decode_fast(longer, len + 1, &f), 0);
    free(longer);
}

START_TEST(test_fast_decode_ids_and_payload_sizes)
{
    static uint8_t payload[65536];
    static const int types[] = { BD_MSG_LOAD, BD_MSG_SEND };

    for (size_t i = 0; i < sizeof(payload); i++)
        payload[i] = (uint8_t)(i * 7);
    for (size_t t = 0; t < 2; t++)
        for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++)
            for (size_t j = 0; j < sizeof(payload_lens) / sizeof(payload_lens[0]); j++) {
                size_t len, plen = payload_lens[j];
                uint8_t *body;

                /* the prefix scan of a 64 KiB body is slow: shorter ones */
                if (plen > 256 && i % 4 != 0)
                    continue;
                body = encode_body(types[t], ids[i], "users.42", 8, payload,
                                   plen, NULL, &len);
                if (plen > 256) {
                    struct bd_msg_item f;

                    ck_assert_int_eq(bd_msg_decode_fast(body, len, &f), 1);
                    ck_assert_uint_eq(f.req_id, ids[i]);
                    ck_assert_uint_eq(f.payload_len, plen);
                    ck_assert_mem_eq(f.payload, payload, plen);
                    ck_assert_int_eq(bd_msg_decode_fast(body, len - 1, &f), 0);
                } else {
                    assert_fast_agrees(body, len);
                }
                free(body);
            }
}
END_TEST

START_TEST(test_fast_decode_key_lengths)
{
    char key[BD_KEY_MAX + 1];

    for (size_t n = 1; n <= BD_KEY_MAX; n += (n < 48 ? 1 : 13)) {
        size_t len;
        uint8_t *body;

        for (size_t i = 0; i < n; i++)
            key[i] = (char)('A' + i % 57);
        body = encode_body(BD_MSG_LOAD, 9, key, n, (const uint8_t *)"p", 1,
                           NULL, &len);
        assert_fast_agrees(body, len);
        free(body);
    }
}
END_TEST

/* Keys the fast path must not take (the slow path answers them with the
 * proper error), and multibyte keys it must take. */
START_TEST(test_fast_decode_key_rules)
{
    static const struct { const char *key; size_t len; int fast; } cases[] = {
        { "", 0, 0 },
        { "a\0b", 3, 0 },
        { "\0", 1, 0 },
        { "abcdefgh\0", 9, 0 },
        { "\xc3", 1, 0 },                   /* truncated sequence */
        { "abcdefghij\x80", 11, 0 },        /* stray continuation */
        { "\xed\xa0\x80", 3, 0 },           /* surrogate */
        { "caf\xc3\xa9", 5, 1 },            /* café */
        { "\xe2\x82\xac-euro-key", 12, 1 }, /* € in a longer key */
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct bd_msg_item f;
        size_t len;
        uint8_t *body = encode_body(BD_MSG_LOAD, 1, cases[i].key, cases[i].len,
                                    (const uint8_t *)"x", 1, NULL, &len);

        ck_assert_msg(bd_msg_decode_fast(body, len, &f) == cases[i].fast,
                      "case %zu", i);
        if (cases[i].fast)
            assert_fast_agrees(body, len);
        free(body);
    }
}
END_TEST

/* With opts only nil or {} is fast; anything else goes the slow way. */
START_TEST(test_fast_decode_opts)
{
    struct bd_opts o = { 0 };
    struct bd_msg_item f;
    size_t len;
    uint8_t *body;

    o.has_deadline = 1;
    o.deadline_ms = 10;
    body = encode_body(BD_MSG_LOAD, 3, "k", 1, (const uint8_t *)"x", 1, &o, &len);
    ck_assert_int_eq(bd_msg_decode_fast(body, len, &f), 0);
    free(body);
    /* [1, 3, "k", h'78', {}] and [1, 3, "k", h'78', nil] */
    static const uint8_t empty_map[] = { 0x95, 0x01, 0x03, 0xa1, 'k', 0xc4, 0x01, 'x', 0x80 };
    static const uint8_t nil[] = { 0x95, 0x01, 0x03, 0xa1, 'k', 0xc4, 0x01, 'x', 0xc0 };

    body = exact_copy(empty_map, sizeof(empty_map));
    assert_fast_agrees(body, sizeof(empty_map));
    free(body);
    body = exact_copy(nil, sizeof(nil));
    assert_fast_agrees(body, sizeof(nil));
    free(body);
}
END_TEST

/* ---- bd_msg_encode_reply ------------------------------------------------ */

static void pack_body(msgpack_packer *pk, const void *body, size_t len, int is_str)
{
    if (body == NULL) {
        msgpack_pack_nil(pk);
    } else if (is_str) {
        msgpack_pack_str(pk, len);
        msgpack_pack_str_body(pk, body, len);
    } else {
        msgpack_pack_bin(pk, len);
        msgpack_pack_bin_body(pk, body, len);
    }
}

START_TEST(test_reply_bytes_match_packer)
{
    static uint8_t body[65536];
    static const int statuses[] = { 0, 1, 15, 127 };
    static const int types[] = { BD_MSG_LOAD, BD_MSG_SEND_MANY, BD_MSG_ERROR };

    memset(body, 'r', sizeof(body));
    for (size_t t = 0; t < 3; t++)
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++)
    for (size_t s = 0; s < 4; s++)
    for (size_t j = 0; j < sizeof(payload_lens) / sizeof(payload_lens[0]); j++)
    for (int form = 0; form < 3; form++) { /* bin, str, nil */
        const void *p = form == 2 ? NULL : body;
        size_t plen = form == 2 ? 0 : payload_lens[j];
        msgpack_sbuffer sb;
        msgpack_packer pk;
        struct bd_buf b;
        uint8_t hdr[4];

        if (form == 2 && j > 0)
            continue;
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_array(&pk, 4);
        msgpack_pack_uint32(&pk, (uint32_t)types[t]);
        msgpack_pack_uint64(&pk, ids[i]);
        msgpack_pack_uint32(&pk, (uint32_t)statuses[s]);
        pack_body(&pk, p, plen, form == 1);
        bd_buf_init(&b);
        ck_assert_int_eq(bd_msg_encode_reply(&b, types[t], ids[i], statuses[s],
                                             p, plen, form == 1), 0);
        hdr[0] = (uint8_t)(sb.size >> 24);
        hdr[1] = (uint8_t)(sb.size >> 16);
        hdr[2] = (uint8_t)(sb.size >> 8);
        hdr[3] = (uint8_t)sb.size;
        ck_assert_uint_eq(b.len, sb.size + 4);
        ck_assert_mem_eq(bd_buf_head(&b), hdr, 4);
        ck_assert_msg(memcmp(bd_buf_head(&b) + 4, sb.data, sb.size) == 0,
                      "type %d id %llu status %d len %zu form %d", types[t],
                      (unsigned long long)ids[i], statuses[s], plen, form);
        bd_buf_destroy(&b);
        msgpack_sbuffer_destroy(&sb);
    }
}
END_TEST

/* Count and consume the whole frames at the head of b. */
static size_t take_frames(struct bd_buf *b)
{
    size_t n = 0, blen;

    while (bd_frame_peek(bd_buf_head(b), b->len, BD_FRAME_DEFAULT_MAX,
                         &blen) == BD_FRAME_OK &&
           b->len - BD_FRAME_HDR >= blen) {
        bd_buf_consume(b, BD_FRAME_HDR + blen);
        n++;
    }
    return n;
}

/* Replies appended back to back stay well framed while the buffer grows
 * and, with a consumed prefix, slides (the inline reserve's slow half). */
START_TEST(test_replies_append)
{
    struct bd_buf b;
    size_t n = 0, extra = 0;

    bd_buf_init(&b);
    for (uint64_t id = 0; id < 5000; id++) {
        ck_assert_int_eq(bd_msg_encode_reply(&b, BD_MSG_LOAD, id, 0, "xyz",
                                             (size_t)(id % 4), 0), 0);
        if (id % 700 == 350) {
            /* leave part of a frame behind: the next reserve slides it */
            ck_assert_int_eq(bd_msg_encode_reply(&b, BD_MSG_LOAD, 0, 0, NULL,
                                                 0, 0), 0);
            extra++;
            b.len -= 3;
            n += take_frames(&b);
            ck_assert_uint_gt(b.off, 0);
            b.len += 3;
        }
    }
    n += take_frames(&b);
    ck_assert_uint_eq(b.len, 0);
    ck_assert_uint_eq(n, 5000 + extra);
    bd_buf_destroy(&b);
}
END_TEST

static Suite *fastpath_suite(void)
{
    Suite *s = suite_create("fastpath");
    TCase *tc_bytes = tcase_create("bytes");
    TCase *tc_decode = tcase_create("decode");
    TCase *tc_reply = tcase_create("reply");

    tcase_add_test(tc_bytes, test_bytes_eq_every_length_and_position);
    tcase_add_test(tc_bytes, test_bytes_plain_ascii_every_length_and_position);
    tcase_add_test(tc_bytes, test_bytes_plain_ascii_random);
    suite_add_tcase(s, tc_bytes);

    tcase_set_timeout(tc_decode, 60);
    tcase_add_test(tc_decode, test_fast_decode_ids_and_payload_sizes);
    tcase_add_test(tc_decode, test_fast_decode_key_lengths);
    tcase_add_test(tc_decode, test_fast_decode_key_rules);
    tcase_add_test(tc_decode, test_fast_decode_opts);
    suite_add_tcase(s, tc_decode);

    tcase_set_timeout(tc_reply, 60);
    tcase_add_test(tc_reply, test_reply_bytes_match_packer);
    tcase_add_test(tc_reply, test_replies_append);
    suite_add_tcase(s, tc_reply);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(fastpath_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
