/*
 * check_msg.c - unit tests for proto/msg.c: every encoder against its
 * decoder, every decode error with its exact text and status, key and
 * option limits, status names, and allocation failures in the encoders.
 *
 * No sockets. Requests are written in a small msgpack literal language
 * (see "literals" below) so each hostile request is one readable line;
 * every body first passes bd_frame_check, as it would in the daemon.
 */
#include <check.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "batchd_status.h"
#include "buf.h"
#include "frame.h"
#include "msg.h"

/* ---- literals ------------------------------------------------------------
 *
 *   nil true false 12 -5 1.5          scalars (integers packed minimally)
 *   'text'                            str (no escapes; no ' inside)
 *   b'text'                           bin
 *   s:c3a9  b:00ff                    str / bin from hex bytes
 *   s*300   b*300                     300 bytes of 'x'
 *   s*64%f09f9880                     the hex bytes repeated 64 times
 *   x:d30000000000000005              raw msgpack bytes, as they are
 *   [a, b]  {k: v}                    array, map (',' and ':' are spacing)
 */

struct lit {
    const char *src;      /* the whole literal, for messages */
    const char *p;        /* next character */
};

static void lit_fail(const struct lit *l, const char *why)
{
    ck_abort_msg("literal \"%s\" at offset %d: %s", l->src,
                 (int)(l->p - l->src), why);
}

static void lit_skip(struct lit *l)
{
    while (*l->p != '\0' && strchr(" \t\n,:", *l->p) != NULL)
        l->p++;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Hex digits at l->p into a new buffer (free with free()). */
static char *lit_hex(struct lit *l, size_t *n)
{
    const char *q = l->p;
    char *out;
    size_t len = 0;

    while (hexval(*q) >= 0)
        q++;
    if ((q - l->p) % 2 != 0)
        lit_fail(l, "odd number of hex digits");
    out = malloc((size_t)(q - l->p) / 2 + 1);
    ck_assert_ptr_nonnull(out);
    for (; l->p < q; l->p += 2)
        out[len++] = (char)(hexval(l->p[0]) << 4 | hexval(l->p[1]));
    *n = len;
    return out;
}

/* The bytes of a s.../b... raw literal (after the s or b). */
static char *lit_raw(struct lit *l, size_t *n)
{
    char *out;

    if (*l->p == '\'') {
        const char *end = strchr(l->p + 1, '\'');

        if (end == NULL)
            lit_fail(l, "unterminated quote");
        *n = (size_t)(end - l->p - 1);
        out = malloc(*n + 1);
        ck_assert_ptr_nonnull(out);
        memcpy(out, l->p + 1, *n);
        l->p = end + 1;
        return out;
    }
    if (*l->p == ':') {
        l->p++;
        return lit_hex(l, n);
    }
    if (*l->p == '*') {
        char *end;
        unsigned long times = strtoul(l->p + 1, &end, 10);
        char *unit = NULL;
        size_t ulen = 1;

        l->p = end;
        if (*l->p == '%') {
            l->p++;
            unit = lit_hex(l, &ulen);
        }
        out = malloc(times * ulen + 1);
        ck_assert_ptr_nonnull(out);
        for (size_t i = 0; i < times; i++)
            memcpy(out + i * ulen, unit ? unit : "x", ulen);
        free(unit);
        *n = times * ulen;
        return out;
    }
    lit_fail(l, "expected ', : or * after s/b/x");
    return NULL;
}

static int lit_value(struct lit *l, msgpack_packer *pk);

static void lit_container(struct lit *l, msgpack_packer *pk)
{
    char open = *l->p++;
    msgpack_sbuffer sub;
    msgpack_packer spk;
    size_t n = 0;

    msgpack_sbuffer_init(&sub);
    msgpack_packer_init(&spk, &sub, msgpack_sbuffer_write);
    while (lit_value(l, &spk))
        n++;
    if (*l->p != (open == '[' ? ']' : '}'))
        lit_fail(l, "unbalanced bracket");
    l->p++;
    if (open == '[') {
        msgpack_pack_array(pk, n);
    } else {
        if (n % 2 != 0)
            lit_fail(l, "map with a key and no value");
        msgpack_pack_map(pk, n / 2);
    }
    if (sub.size > 0)
        pk->callback(pk->data, sub.data, sub.size);
    msgpack_sbuffer_destroy(&sub);
}

static void lit_number(struct lit *l, msgpack_packer *pk)
{
    const char *q = l->p + (*l->p == '-');
    char *end;

    while (isdigit((unsigned char)*q))
        q++;
    errno = 0;
    if (*q == '.') {
        msgpack_pack_double(pk, strtod(l->p, &end));
    } else if (*l->p == '-') {
        msgpack_pack_int64(pk, strtoll(l->p, &end, 10));
    } else {
        msgpack_pack_uint64(pk, strtoull(l->p, &end, 10));
    }
    if (errno != 0)
        lit_fail(l, "number out of range");
    l->p = end;
}

/* Pack one value; 0 at a closing bracket or at the end. */
static int lit_value(struct lit *l, msgpack_packer *pk)
{
    char *raw;
    size_t n;

    lit_skip(l);
    switch (*l->p) {
    case '\0': case ']': case '}':
        return 0;
    case '[': case '{':
        lit_container(l, pk);
        return 1;
    case '\'':
        raw = lit_raw(l, &n);
        msgpack_pack_str_with_body(pk, raw, n);
        free(raw);
        return 1;
    case 's': case 'b': case 'x': {
        char kind = *l->p++;

        raw = lit_raw(l, &n);
        if (kind == 's')
            msgpack_pack_str_with_body(pk, raw, n);
        else if (kind == 'b')
            msgpack_pack_bin_with_body(pk, raw, n);
        else
            pk->callback(pk->data, raw, n);
        free(raw);
        return 1;
    }
    default:
        break;
    }
    if (strncmp(l->p, "nil", 3) == 0) {
        msgpack_pack_nil(pk);
        l->p += 3;
    } else if (strncmp(l->p, "true", 4) == 0) {
        msgpack_pack_true(pk);
        l->p += 4;
    } else if (strncmp(l->p, "false", 5) == 0) {
        msgpack_pack_false(pk);
        l->p += 5;
    } else if (*l->p == '-' || isdigit((unsigned char)*l->p)) {
        lit_number(l, pk);
    } else {
        lit_fail(l, "unexpected character");
    }
    return 1;
}

/* Pack exactly one value from src into sb (cleared first). */
static void lit_pack(const char *src, msgpack_sbuffer *sb)
{
    struct lit l = { src, src };
    msgpack_packer pk;

    msgpack_sbuffer_clear(sb);
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    if (!lit_value(&l, &pk))
        lit_fail(&l, "no value");
    lit_skip(&l);
    if (*l.p != '\0')
        lit_fail(&l, "more than one value");
}

/* ---- fixture -------------------------------------------------------------
 * Decoded structs point into the body and the zone, so both live here. */

static msgpack_sbuffer body;
static msgpack_zone zone;
static char err[256];

static void setup(void)
{
    bd_alloc_fail_after(0);
    msgpack_sbuffer_init(&body);
    ck_assert(msgpack_zone_init(&zone, 4096));
    err[0] = '\0';
}

static void teardown(void)
{
    bd_alloc_fail_after(0);
    msgpack_sbuffer_destroy(&body);
    msgpack_zone_destroy(&zone);
}

/* Decode body[0..len) as the daemon does: bounded walk first. */
static int decode_bytes(const void *p, size_t len, struct bd_msg *m)
{
    const char *why = NULL;

    ck_assert_msg(bd_frame_check(p, len, &why) == 0,
                  "body fails the frame walk: %s", why);
    msgpack_zone_clear(&zone);
    err[0] = '\0';
    return bd_msg_decode(p, len, &zone, m, err, sizeof(err));
}

static int decode_lit(const char *src, struct bd_msg *m)
{
    lit_pack(src, &body);
    return decode_bytes(body.data, body.size, m);
}

/* Check the frame at b[at..) and decode its body as a request. */
static int decode_frame(const struct bd_buf *b, size_t at, struct bd_msg *m,
                        size_t *frame_len)
{
    size_t blen = 0;

    ck_assert_uint_ge(b->len - at, BD_FRAME_HDR);
    ck_assert_int_eq(bd_frame_peek(bd_buf_head(b) + at, b->len - at,
                                   BD_FRAME_DEFAULT_MAX, &blen), BD_FRAME_OK);
    ck_assert_uint_ge(b->len - at - BD_FRAME_HDR, blen);
    if (frame_len)
        *frame_len = BD_FRAME_HDR + blen;
    return decode_bytes(bd_buf_head(b) + at + BD_FRAME_HDR, blen, m);
}

static int decode_reply_frame(const struct bd_buf *b, size_t at,
                              struct bd_reply_msg *r, size_t *frame_len)
{
    size_t blen = 0;
    const char *why = NULL;
    const uint8_t *p = bd_buf_head(b) + at + BD_FRAME_HDR;

    ck_assert_int_eq(bd_frame_peek(bd_buf_head(b) + at, b->len - at,
                                   BD_FRAME_DEFAULT_MAX, &blen), BD_FRAME_OK);
    ck_assert_uint_ge(b->len - at - BD_FRAME_HDR, blen);
    ck_assert_msg(bd_frame_check(p, blen, &why) == 0, "reply walk: %s", why);
    if (frame_len)
        *frame_len = BD_FRAME_HDR + blen;
    msgpack_zone_clear(&zone);
    err[0] = '\0';
    return bd_msg_decode_reply(p, blen, &zone, r, err, sizeof(err));
}

static void assert_raw(const msgpack_object *o, const void *want, size_t n)
{
    ck_assert(o->type == MSGPACK_OBJECT_BIN || o->type == MSGPACK_OBJECT_STR);
    if (o->type == MSGPACK_OBJECT_BIN) {
        ck_assert_uint_eq(o->via.bin.size, n);
        if (n)
            ck_assert_mem_eq(o->via.bin.ptr, want, n);
    } else {
        ck_assert_uint_eq(o->via.str.size, n);
        if (n)
            ck_assert_mem_eq(o->via.str.ptr, want, n);
    }
}

static void assert_bytes(const void *got, size_t got_len, const void *want,
                         size_t want_len)
{
    ck_assert_uint_eq(got_len, want_len);
    if (want_len)
        ck_assert_mem_eq(got, want, want_len);
}

/* ---- core: round trips ---------------------------------------------------- */

START_TEST(test_hello_round_trip)
{
    struct bd_buf b;
    struct bd_msg m;
    size_t flen;

    bd_buf_init(&b);
    ck_assert_int_eq(bd_msg_encode_hello(&b, 1, BD_PROTO_VERSION,
                                         "batchctl/0.1.0"), 0);
    ck_assert_int_eq(decode_frame(&b, 0, &m, &flen), BATCHD_OK);
    ck_assert_uint_eq(flen, b.len);
    ck_assert_int_eq(m.type, BD_MSG_HELLO);
    ck_assert_int_eq(m.has_id, 1);
    ck_assert_uint_eq(m.req_id, 1);
    ck_assert_uint_eq(m.version, 1);
    assert_bytes(m.name, m.name_len, "batchctl/0.1.0", 14);
    /* An empty client name is allowed. */
    ck_assert_int_eq(bd_msg_encode_hello(&b, 0, 1, ""), 0);
    ck_assert_int_eq(decode_frame(&b, flen, &m, NULL), BATCHD_OK);
    ck_assert_uint_eq(m.name_len, 0);
    ck_assert_uint_eq(m.req_id, 0);
    bd_buf_destroy(&b);
}
END_TEST

START_TEST(test_item_round_trip)
{
    static const int types[] = { BD_MSG_LOAD, BD_MSG_SEND };
    const uint8_t payload[] = { 0x00, 0xff, 0x00, 'a', 0xc1 };

    for (int i = 0; i < 2; i++) {
        struct bd_buf b;
        struct bd_msg m;

        bd_buf_init(&b);
        ck_assert_int_eq(bd_msg_encode_item(&b, types[i], 42, "users", 5,
                                            payload, sizeof(payload), NULL), 0);
        ck_assert_int_eq(decode_frame(&b, 0, &m, NULL), BATCHD_OK);
        ck_assert_int_eq(m.type, types[i]);
        ck_assert_uint_eq(m.req_id, 42);
        ck_assert_int_eq(m.has_id, 1);
        assert_bytes(m.key, m.key_len, "users", 5);
        assert_bytes(m.payload, m.payload_len, payload, sizeof(payload));
        ck_assert_ptr_null(m.items);
        ck_assert_uint_eq(m.nitems, 0);
        ck_assert(!m.opts.has_deadline && !m.opts.has_priority);
        ck_assert_ptr_null(m.opts.dedup_id);
        ck_assert_ptr_null(m.opts.trace);
        bd_buf_destroy(&b);
    }
}
END_TEST

START_TEST(test_item_round_trip_opts)
{
    static const char trace[] =
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    struct bd_opts o = { 0 };
    struct bd_buf b;
    struct bd_msg m;

    o.has_deadline = 1;
    o.deadline_ms = 4294967295u;
    o.has_priority = 1;
    o.priority = 255;
    o.dedup_id = "order-17";
    o.dedup_len = 8;
    o.trace = trace;
    o.trace_len = strlen(trace);
    bd_buf_init(&b);
    ck_assert_int_eq(bd_msg_encode_item(&b, BD_MSG_SEND, UINT64_MAX, "k", 1,
                                        "p", 1, &o), 0);
    ck_assert_int_eq(decode_frame(&b, 0, &m, NULL), BATCHD_OK);
    ck_assert_uint_eq(m.req_id, UINT64_MAX);
    ck_assert(m.opts.has_deadline);
    ck_assert_uint_eq(m.opts.deadline_ms, 4294967295u);
    ck_assert(m.opts.has_priority);
    ck_assert_uint_eq(m.opts.priority, 255);
    assert_bytes(m.opts.dedup_id, m.opts.dedup_len, "order-17", 8);
    assert_bytes(m.opts.trace, m.opts.trace_len, trace, strlen(trace));
    /* Only some options: the others stay unset. */
    memset(&o, 0, sizeof(o));
    o.has_priority = 1;
    o.priority = 0;
    b.len = 0;
    ck_assert_int_eq(bd_msg_encode_item(&b, BD_MSG_LOAD, 3, "k", 1, "", 0, &o),
                     0);
    ck_assert_int_eq(decode_frame(&b, 0, &m, NULL), BATCHD_OK);
    ck_assert(m.opts.has_priority && !m.opts.has_deadline);
    ck_assert_uint_eq(m.opts.priority, 0);
    ck_assert_ptr_null(m.opts.dedup_id);
    ck_assert_uint_eq(m.payload_len, 0);
    /* No option at all, as an empty map. */
    memset(&o, 0, sizeof(o));
    b.len = 0;
    ck_assert_int_eq(bd_msg_encode_item(&b, BD_MSG_LOAD, 3, "k", 1, "", 0, &o),
                     0);
    ck_assert_int_eq(decode_frame(&b, 0, &m, NULL), BATCHD_OK);
    ck_assert(!m.opts.has_priority && !m.opts.has_deadline);
    bd_buf_destroy(&b);
}
END_TEST

START_TEST(test_item_empty_payload_null)
{
    struct bd_buf b;
    struct bd_msg m;

    /* An empty payload may come as (NULL, 0): no memcpy from NULL (UBSan
     * in the asan build), and it decodes as an empty bin. */
    bd_buf_init(&b);
    ck_assert_int_eq(bd_msg_encode_item(&b, BD_MSG_LOAD, 1, "k", 1, NULL, 0,
                                        NULL), 0);
    ck_assert_int_eq(decode_frame(&b, 0, &m, NULL), BATCHD_OK);
    ck_assert_uint_eq(m.payload_len, 0);
    b.len = 0;
    ck_assert_int_eq(bd_msg_encode_reply(&b, BD_MSG_LOAD, 1, BATCHD_OK, "", 0,
                                         0), 0);
    bd_buf_destroy(&b);
}
END_TEST

START_TEST(test_many_round_trip)
{
    static const int types[] = { BD_MSG_LOAD_MANY, BD_MSG_SEND_MANY };
    const void *p[4] = { "alpha", "", "\x00\x01", "delta-delta" };
    const size_t n[4] = { 5, 0, 2, 11 };
    struct bd_opts o = { 0 };

    o.has_deadline = 1;
    o.deadline_ms = 1500;
    o.dedup_id = "\x00\xff";
    o.dedup_len = 2;
    for (int i = 0; i < 2; i++) {
        struct bd_buf b;
        struct bd_msg m;
        size_t flen;

        bd_buf_init(&b);
        ck_assert_int_eq(bd_msg_encode_many(&b, types[i], 100, "orders", 6, p,
                                            n, 4, &o), 0);
        ck_assert_int_eq(decode_frame(&b, 0, &m, &flen), BATCHD_OK);
        ck_assert_int_eq(m.type, types[i]);
        ck_assert_uint_eq(m.req_id, 100);
        assert_bytes(m.key, m.key_len, "orders", 6);
        ck_assert_uint_eq(m.nitems, 4);
        for (int j = 0; j < 4; j++)
            assert_raw(&m.items[j], p[j], n[j]);
        ck_assert(m.opts.has_deadline);
        ck_assert_uint_eq(m.opts.deadline_ms, 1500);
        assert_bytes(m.opts.dedup_id, m.opts.dedup_len, "\x00\xff", 2);
        /* One item, no opts. */
        ck_assert_int_eq(bd_msg_encode_many(&b, types[i], 7, "k", 1, p, n, 1,
                                            NULL), 0);
        ck_assert_int_eq(decode_frame(&b, flen, &m, NULL), BATCHD_OK);
        ck_assert_uint_eq(m.nitems, 1);
        assert_raw(&m.items[0], "alpha", 5);
        bd_buf_destroy(&b);
    }
}
END_TEST

START_TEST(test_control_round_trip)
{
    const char *kv[] = { "format", "json", "key", "users" };
    struct bd_buf b;
    struct bd_msg m;
    size_t flen;
    const msgpack_object_kv *e;

    bd_buf_init(&b);
    ck_assert_int_eq(bd_msg_encode_control(&b, 9, "stats", kv, 2), 0);
    ck_assert_int_eq(decode_frame(&b, 0, &m, &flen), BATCHD_OK);
    ck_assert_int_eq(m.type, BD_MSG_CONTROL);
    ck_assert_uint_eq(m.req_id, 9);
    assert_bytes(m.name, m.name_len, "stats", 5);
    ck_assert_ptr_nonnull(m.args);
    ck_assert_int_eq(m.args->type, MSGPACK_OBJECT_MAP);
    ck_assert_uint_eq(m.args->via.map.size, 2);
    e = m.args->via.map.ptr;
    ck_assert_int_eq(e[0].key.type, MSGPACK_OBJECT_STR);
    assert_raw(&e[0].key, "format", 6);
    assert_raw(&e[0].val, "json", 4);
    assert_raw(&e[1].key, "key", 3);
    assert_raw(&e[1].val, "users", 5);
    /* No args: encoded as nil, decoded as NULL. */
    ck_assert_int_eq(bd_msg_encode_control(&b, 10, "ping", NULL, 0), 0);
    ck_assert_int_eq(decode_frame(&b, flen, &m, NULL), BATCHD_OK);
    assert_bytes(m.name, m.name_len, "ping", 4);
    ck_assert_ptr_null(m.args);
    bd_buf_destroy(&b);
}
END_TEST

START_TEST(test_reply_round_trip)
{
    const uint8_t bin[] = { 0x00, 0x01, 0xc1, 0xff };

    for (int st = 0; st < BATCHD_STATUS_COUNT; st++) {
        struct bd_buf b;
        struct bd_reply_msg r;
        size_t at = 0, flen;

        bd_buf_init(&b);
        ck_assert_int_eq(bd_msg_encode_reply(&b, BD_MSG_LOAD, 77, st, bin,
                                             sizeof(bin), 0), 0);
        ck_assert_int_eq(bd_msg_encode_reply(&b, BD_MSG_CONTROL, 78, st,
                                             "{\"a\":1}", 7, 1), 0);
        ck_assert_int_eq(bd_msg_encode_reply(&b, BD_MSG_SEND, 79, st, NULL, 0,
                                             0), 0);
        ck_assert_int_eq(bd_msg_encode_reply(&b, BD_MSG_ERROR, 0, st, "", 0, 1),
                         0);
        ck_assert_int_eq(decode_reply_frame(&b, at, &r, &flen), 0);
        ck_assert_int_eq(r.type, BD_MSG_LOAD);
        ck_assert_uint_eq(r.req_id, 77);
        ck_assert_int_eq(r.status, st);
        assert_bytes(r.body, r.body_len, bin, sizeof(bin));
        at += flen;
        ck_assert_int_eq(decode_reply_frame(&b, at, &r, &flen), 0);
        ck_assert_int_eq(r.type, BD_MSG_CONTROL);
        ck_assert_uint_eq(r.req_id, 78);
        assert_bytes(r.body, r.body_len, "{\"a\":1}", 7);
        at += flen;
        ck_assert_int_eq(decode_reply_frame(&b, at, &r, &flen), 0);
        ck_assert_int_eq(r.type, BD_MSG_SEND);
        ck_assert_ptr_null(r.body);
        ck_assert_uint_eq(r.body_len, 0);
        at += flen;
        ck_assert_int_eq(decode_reply_frame(&b, at, &r, &flen), 0);
        ck_assert_int_eq(r.type, BD_MSG_ERROR);
        ck_assert_uint_eq(r.req_id, 0);
        /* msgpack-c hands out a NULL pointer for an empty str, so an
         * empty body and nil both read as (NULL, 0) here. */
        ck_assert_uint_eq(r.body_len, 0);
        ck_assert_uint_eq(at + flen, b.len);
        bd_buf_destroy(&b);
    }
}
END_TEST

/* b[0..len) must be exactly the bytes written in hex (spaces ignored). */
static void assert_hex(const struct bd_buf *b, const char *hex, int line)
{
    uint8_t want[256];
    size_t n = 0;

    for (const char *p = hex; *p != '\0'; p++) {
        if (*p == ' ' || *p == '\n')
            continue;
        ck_assert(hexval(p[0]) >= 0 && hexval(p[1]) >= 0 && n < sizeof(want));
        want[n++] = (uint8_t)(hexval(p[0]) << 4 | hexval(p[1]));
        p++;
    }
    ck_assert_msg(b->len == n, "line %d: %zu bytes, want %zu", line, b->len, n);
    ck_assert_msg(memcmp(bd_buf_head(b), want, n) == 0,
                  "line %d: bytes differ from the example", line);
}

/* The worked examples in proto/PROTOCOL.md, byte for byte: change one
 * and the other in the same commit. */
START_TEST(test_protocol_md_examples)
{
    static const char hello[] =
        "00 00 00 12 94 00 01 01 ad 65 78 61 6d 70 6c 65 2f 31 2e 30 2e 30";
    static const char hello_ok[] =
        "00 00 00 11 94 00 01 00 ac 62 61 74 63 68 64 20 30 2e 31 2e 30";
    static const char load[] =
        "00 00 00 20 95 01 02 a5 75 73 65 72 73 c4 05 68 65 6c 6c 6f"
        "81 ab 64 65 61 64 6c 69 6e 65 5f 6d 73 cd 01 f4";
    static const char load_ok[] =
        "00 00 00 0b 94 01 02 00 c4 05 68 65 6c 6c 6f";
    static const char bad[] =
        "00 00 00 31 94 01 03 0a d9 2b 6f 70 74 73 2e 70 72 69 6f 72 69 74 79"
        "3a 20 6d 75 73 74 20 62 65 20 61 6e 20 69 6e 74 65 67 65 72 20 69 6e"
        "20 30 2e 2e 32 35 35";
    static const char send_many[] =
        "00 00 00 0d 94 04 0a a1 6b 92 c4 01 61 c4 02 62 63";
    static const char accepted[] = "00 00 00 05 94 04 0a 01 c0";
    static const char overloaded[] =
        "00 00 00 28 94 04 0b 04 d9 22 6b 65 79 20 71 75 65 75 65 20 66 75 6c"
        "6c 3a 20 6b 65 79 5f 6d 61 78 5f 69 74 65 6d 73 3d 31 30 30 30";
    static const char ping[] = "00 00 00 09 94 09 04 a4 70 69 6e 67 c0";
    static const char pong[] = "00 00 00 09 94 09 04 00 a4 70 6f 6e 67";
    static const char error[] =
        "00 00 00 3b 94 0f 00 0b d9 35 66 72 61 6d 65 20 6c 65 6e 67 74 68 20"
        "34 32 39 34 39 36 37 32 39 35 3a 20 6d 75 73 74 20 62 65 20 31 2e 2e"
        "34 30 39 36 20 62 65 66 6f 72 65 20 48 45 4c 4c 4f";
    static const char too_big[] =
        "frame length 4294967295: must be 1..4096 before HELLO";
    static const char full[] = "key queue full: key_max_items=1000";
    static const char why[] = "opts.priority: must be an integer in 0..255";
    const void *items[2] = { "a", "bc" };
    const size_t lens[2] = { 1, 2 };
    struct bd_opts o = { 0 };
    struct bd_buf b;

    bd_buf_init(&b);
    ck_assert_int_eq(bd_msg_encode_hello(&b, 1, 1, "example/1.0.0"), 0);
    assert_hex(&b, hello, __LINE__);
    b.len = 0;
    ck_assert_int_eq(bd_msg_encode_reply(&b, BD_MSG_HELLO, 1, BATCHD_OK,
                                         "batchd 0.1.0", 12, 1), 0);
    assert_hex(&b, hello_ok, __LINE__);
    b.len = 0;
    o.has_deadline = 1;
    o.deadline_ms = 500;
    ck_assert_int_eq(bd_msg_encode_item(&b, BD_MSG_LOAD, 2, "users", 5,
                                        "hello", 5, &o), 0);
    assert_hex(&b, load, __LINE__);
    b.len = 0;
    ck_assert_int_eq(bd_msg_encode_reply(&b, BD_MSG_LOAD, 2, BATCHD_OK,
                                         "hello", 5, 0), 0);
    assert_hex(&b, load_ok, __LINE__);
    b.len = 0;
    ck_assert_int_eq(bd_msg_encode_reply(&b, BD_MSG_LOAD, 3,
                                         BATCHD_BAD_REQUEST, why, strlen(why),
                                         1), 0);
    assert_hex(&b, bad, __LINE__);
    b.len = 0;
    ck_assert_int_eq(bd_msg_encode_many(&b, BD_MSG_SEND_MANY, 10, "k", 1,
                                        items, lens, 2, NULL), 0);
    assert_hex(&b, send_many, __LINE__);
    b.len = 0;
    ck_assert_int_eq(bd_msg_encode_reply(&b, BD_MSG_SEND_MANY, 10,
                                         BATCHD_ACCEPTED, NULL, 0, 0), 0);
    assert_hex(&b, accepted, __LINE__);
    b.len = 0;
    ck_assert_int_eq(bd_msg_encode_reply(&b, BD_MSG_SEND_MANY, 11,
                                         BATCHD_OVERLOADED, full, strlen(full),
                                         1), 0);
    assert_hex(&b, overloaded, __LINE__);
    b.len = 0;
    ck_assert_int_eq(bd_msg_encode_control(&b, 4, "ping", NULL, 0), 0);
    assert_hex(&b, ping, __LINE__);
    b.len = 0;
    ck_assert_int_eq(bd_msg_encode_reply(&b, BD_MSG_CONTROL, 4, BATCHD_OK,
                                         "pong", 4, 1), 0);
    assert_hex(&b, pong, __LINE__);
    b.len = 0;
    ck_assert_int_eq(bd_msg_encode_reply(&b, BD_MSG_ERROR, 0,
                                         BATCHD_FRAME_TOO_LARGE, too_big,
                                         strlen(too_big), 1), 0);
    assert_hex(&b, error, __LINE__);
    bd_buf_destroy(&b);
}
END_TEST

START_TEST(test_decode_accepts)
{
    /* Requests a client in another language might well send. */
    static const char *const ok[] = {
        "[1, 5, 'k', 'text payload']",              /* payload as str */
        "[1, 5, 'k', b'']",                         /* empty payload */
        "[1, 5, 'k', b'p', nil]",                   /* opts nil */
        "[1, 5, 'k', b'p', {}]",                    /* opts empty */
        "[2, 0, 'k', b'p']",                        /* req_id 0 */
        "[1, 18446744073709551615, 'k', b'p']",
        "[x:d001, x:d30000000000000005, 'k', b'p']", /* signed encodings */
        "[x:cf0000000000000001, x:ce00000005, 'k', b'p']",
        "[1, 5, 'k', b'p', {'deadline_ms': 1, 'priority': 0}]",
        "[1, 5, 'k', b'p', {'deadline_ms': 4294967295, 'priority': 255}]",
        "[1, 5, 'k', b'p', {'dedup_id': s*256, 'trace': '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'}]",
        "[1, 5, 'k', b'p', {'trace': '01-4bf92f3577b34da6a3ce929d0e0e4736-"
        "00f067aa0ba902b7-01-later'}]",
        "[1, 5, 'k', b'p', {'dedup_id': b*256}]",
        "[1, 5, 'k', b'p', {'dedup_id': b:00}]",
        "[1, 5, 'k', b'p', {'trace': ''}]",
        "[3, 5, 'k', [b'a', 'b', b'']]",            /* str and bin items */
        "[4, 5, 'k', [b'a'], nil]",
        "[3, 18446744073709551615, 'k', [b'a']]",
        "[3, 18446744073709551614, 'k', [b'a', b'b']]",
        "[0, 1, 1, s*128]",
        "[0, 1, x:cd0001, 'c']",                    /* version as uint16 */
        "[9, 5, 'ping']",
        "[9, 5, 'ping', nil]",
        "[9, 5, s*128, {}]",
        "[9, 5, 'stats', {'format': 'text'}]",
    };

    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        struct bd_msg m;
        int rc = decode_lit(ok[i], &m);

        ck_assert_msg(rc == BATCHD_OK, "%s: %d \"%s\"", ok[i], rc, err);
        ck_assert_msg(m.has_id, "%s: has_id not set", ok[i]);
    }
}
END_TEST

START_TEST(test_decode_signed_ints)
{
    struct bd_msg m;

    /* msgpack lets a writer use a signed format for a non-negative value;
     * the protocol cares about the value only. */
    ck_assert_int_eq(decode_lit("[x:d001, x:d30000000000000005, 'k', b'p', "
                                "{'priority': x:d00a, 'deadline_ms': "
                                "x:d200000064}]", &m), BATCHD_OK);
    ck_assert_int_eq(m.type, BD_MSG_LOAD);
    ck_assert_uint_eq(m.req_id, 5);
    ck_assert_uint_eq(m.opts.priority, 10);
    ck_assert_uint_eq(m.opts.deadline_ms, 100);
}
END_TEST

START_TEST(test_decode_duplicate_option)
{
    struct bd_msg m;

    /* Decided: a repeated option is not an error; the last one wins. */
    ck_assert_int_eq(decode_lit("[1, 5, 'k', b'p', {'priority': 1, "
                                "'priority': 2}]", &m), BATCHD_OK);
    ck_assert_uint_eq(m.opts.priority, 2);
}
END_TEST

START_TEST(test_multibyte_keys)
{
    static const char *const ok[] = {
        "s:c3a9",                 /* é, 2 bytes */
        "s:e282ac",               /* €, 3 bytes */
        "s:f09f9880",             /* U+1F600, 4 bytes */
        "s:c280",                 /* U+0080, lowest 2-byte */
        "s:e0a080",               /* U+0800, lowest 3-byte */
        "s:f0908080",             /* U+10000, lowest 4-byte */
        "s:ed9fbf",               /* U+D7FF, just below the surrogates */
        "s:ee8080",               /* U+E000, just above */
        "s:efbfbf",               /* U+FFFF */
        "s:f48fbfbf",             /* U+10FFFF, the last code point */
        "s:7f",                   /* DEL is ASCII */
        "s*64%f09f9880",          /* 256 bytes of 4-byte characters */
        "s*128%c3a9",             /* 256 bytes of 2-byte characters */
        "s:6b65792fe282ac2fc3a9", /* mixed: key/€/é */
    };

    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        char src[128];
        struct bd_msg m;
        int rc;

        snprintf(src, sizeof(src), "[1, 5, %s, b'p']", ok[i]);
        rc = decode_lit(src, &m);
        ck_assert_msg(rc == BATCHD_OK, "%s: %d \"%s\"", ok[i], rc, err);
    }
}
END_TEST

START_TEST(test_check_key_direct)
{
    char k[300];

    memset(k, 'k', sizeof(k));
    ck_assert_str_eq(bd_msg_check_key(k, 0), "must not be empty");
    ck_assert_ptr_null(bd_msg_check_key(k, 1));
    ck_assert_ptr_null(bd_msg_check_key(k, BD_KEY_MAX));
    ck_assert_str_eq(bd_msg_check_key(k, BD_KEY_MAX + 1), "longer than 256 bytes");
    ck_assert_str_eq(bd_msg_check_key("a\0b", 3), "contains a NUL byte");
    ck_assert_str_eq(bd_msg_check_key("\xc3", 1), "is not valid UTF-8");
    /* Length is checked before content: 257 NULs are "too long". */
    memset(k, 0, sizeof(k));
    ck_assert_str_eq(bd_msg_check_key(k, 257), "longer than 256 bytes");
}
END_TEST

START_TEST(test_status_names)
{
    static const char *const want[BATCHD_STATUS_COUNT] = {
        "OK", "ACCEPTED", "FAIL", "RETRY_EXHAUSTED", "OVERLOADED",
        "DEADLINE_EXCEEDED", "SINK_TIMEOUT", "SINK_UNAVAILABLE", "CANCELLED",
        "SHUTTING_DOWN", "BAD_REQUEST", "FRAME_TOO_LARGE", "UNSUPPORTED",
        "NO_ROUTE", "PERMISSION_DENIED", "TOO_MANY_CONNECTIONS",
    };
    static const int out[] = { -1, BATCHD_STATUS_COUNT, 255, 1000, INT_MAX,
                               INT_MIN };

    ck_assert_int_eq(BATCHD_STATUS_COUNT, 16);
    ck_assert_int_eq(BATCHD_TOO_MANY_CONNECTIONS, BATCHD_STATUS_COUNT - 1);
    for (int i = 0; i < BATCHD_STATUS_COUNT; i++)
        ck_assert_str_eq(bd_status_name(i), want[i]);
    /* Wire values are fixed: spot-check the enum against PROTOCOL.md. */
    ck_assert_int_eq(BATCHD_OK, 0);
    ck_assert_int_eq(BATCHD_BAD_REQUEST, 10);
    ck_assert_int_eq(BATCHD_UNSUPPORTED, 12);
    for (size_t i = 0; i < sizeof(out) / sizeof(out[0]); i++)
        ck_assert_str_eq(bd_status_name(out[i]), "UNKNOWN");
}
END_TEST

START_TEST(test_message_constants)
{
    /* Wire values from PROTOCOL.md: a change here breaks every client. */
    ck_assert_int_eq(BD_MSG_HELLO, 0);
    ck_assert_int_eq(BD_MSG_LOAD, 1);
    ck_assert_int_eq(BD_MSG_SEND, 2);
    ck_assert_int_eq(BD_MSG_LOAD_MANY, 3);
    ck_assert_int_eq(BD_MSG_SEND_MANY, 4);
    ck_assert_int_eq(BD_MSG_CONTROL, 9);
    ck_assert_int_eq(BD_MSG_ERROR, 15);
    ck_assert_int_eq(BD_PROTO_VERSION, 1);
    ck_assert_int_eq(BD_KEY_MAX, 256);
    ck_assert_int_eq(BD_DEDUP_MAX, 256);
    ck_assert_int_eq(BD_TRACE_MAX, 128);
    ck_assert_int_eq(BD_NAME_MAX, 128);
    ck_assert_int_eq(BD_MANY_MAX, 65536);
}
END_TEST

/* ---- limits --------------------------------------------------------------- */

/* A *_MANY request with n empty bin payloads, packed by hand. */
static void pack_many(int type, uint64_t req_id, size_t n)
{
    msgpack_packer pk;

    msgpack_sbuffer_clear(&body);
    msgpack_packer_init(&pk, &body, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 4);
    msgpack_pack_int(&pk, type);
    msgpack_pack_uint64(&pk, req_id);
    msgpack_pack_str_with_body(&pk, "k", 1);
    msgpack_pack_array(&pk, n);
    for (size_t i = 0; i < n; i++)
        msgpack_pack_bin_with_body(&pk, "", 0);
}

START_TEST(test_many_item_count)
{
    struct bd_msg m;

    pack_many(BD_MSG_LOAD_MANY, 1, BD_MANY_MAX);
    ck_assert_int_eq(decode_bytes(body.data, body.size, &m), BATCHD_OK);
    ck_assert_uint_eq(m.nitems, BD_MANY_MAX);
    pack_many(BD_MSG_SEND_MANY, 1, BD_MANY_MAX + 1);
    ck_assert_int_eq(decode_bytes(body.data, body.size, &m), BATCHD_BAD_REQUEST);
    ck_assert_str_eq(err, "payloads: must hold 1..65536 items");
    ck_assert_int_eq(m.has_id, 1);
    ck_assert_uint_eq(m.req_id, 1);
}
END_TEST

START_TEST(test_many_req_id_overflow)
{
    struct bd_msg m;

    /* req_id + n - 1 must fit in 64 bits: the last item's id. */
    pack_many(BD_MSG_LOAD_MANY, UINT64_MAX - 99, 100);
    ck_assert_int_eq(decode_bytes(body.data, body.size, &m), BATCHD_OK);
    pack_many(BD_MSG_LOAD_MANY, UINT64_MAX - 99, 101);
    ck_assert_int_eq(decode_bytes(body.data, body.size, &m), BATCHD_BAD_REQUEST);
    ck_assert_str_eq(err, "req_id: too large for this many items");
    ck_assert_int_eq(m.has_id, 1);
    ck_assert_uint_eq(m.req_id, UINT64_MAX - 99);
    pack_many(BD_MSG_SEND_MANY, UINT64_MAX, 2);
    ck_assert_int_eq(decode_bytes(body.data, body.size, &m), BATCHD_BAD_REQUEST);
    ck_assert_str_eq(err, "req_id: too large for this many items");
}
END_TEST

START_TEST(test_err_buffer_is_bounded)
{
    struct bd_msg m;
    char small[12];

    /* The reason is cut to the caller's buffer and stays terminated. */
    lit_pack("[1, 5, 'k', b'p', {'priority': 256}]", &body);
    memset(small, '#', sizeof(small));
    ck_assert_int_eq(bd_msg_decode((const uint8_t *)body.data, body.size, &zone,
                                   &m, small, 8), BATCHD_BAD_REQUEST);
    ck_assert_str_eq(small, "opts.pr");
    ck_assert_int_eq(small[8], '#');
    lit_pack("[7, 5]", &body);
    ck_assert_int_eq(bd_msg_decode((const uint8_t *)body.data, body.size, &zone,
                                   &m, small, 1), BATCHD_UNSUPPORTED);
    ck_assert_int_eq(small[0], '\0');
}
END_TEST

/* ---- malformed: one line per bad request ---------------------------------- */

#define BAD BATCHD_BAD_REQUEST
#define UNS BATCHD_UNSUPPORTED
#define U64MAX "18446744073709551615"

static const struct bad_case {
    const char *lit;      /* the request body */
    int status;           /* BAD_REQUEST or UNSUPPORTED */
    const char *err;      /* the exact reason */
    int has_id;           /* req_id was readable */
    uint64_t req_id;      /* its value when has_id */
} bad_cases[] = {
    /* The envelope. */
    { "{'a': 1}", BAD, "request: must be an array [type, req_id, ...]", 0, 0 },
    { "5", BAD, "request: must be an array [type, req_id, ...]", 0, 0 },
    { "'hello'", BAD, "request: must be an array [type, req_id, ...]", 0, 0 },
    { "b'hello'", BAD, "request: must be an array [type, req_id, ...]", 0, 0 },
    { "nil", BAD, "request: must be an array [type, req_id, ...]", 0, 0 },
    { "[]", BAD, "request: must be an array [type, req_id, ...]", 0, 0 },
    { "[1]", BAD, "request: must be an array [type, req_id, ...]", 0, 0 },
    { "[1, -1, 'k', b'p']", BAD, "req_id: must be a non-negative integer", 0, 0 },
    { "[1, -9223372036854775808, 'k', b'p']", BAD,
      "req_id: must be a non-negative integer", 0, 0 },
    { "[1, '5', 'k', b'p']", BAD, "req_id: must be a non-negative integer", 0, 0 },
    { "[1, nil, 'k', b'p']", BAD, "req_id: must be a non-negative integer", 0, 0 },
    { "[1, 5.0, 'k', b'p']", BAD, "req_id: must be a non-negative integer", 0, 0 },
    { "[1, [5], 'k', b'p']", BAD, "req_id: must be a non-negative integer", 0, 0 },
    { "['1', 5, 'k', b'p']", BAD, "type: must be a non-negative integer", 1, 5 },
    { "[-1, 5, 'k', b'p']", BAD, "type: must be a non-negative integer", 1, 5 },
    { "[nil, 5]", BAD, "type: must be a non-negative integer", 1, 5 },
    { "[1.0, 5, 'k', b'p']", BAD, "type: must be a non-negative integer", 1, 5 },
    /* Unknown message types. */
    { "[7, 5, 'k', b'p']", UNS, "type: unknown message type 7", 1, 5 },
    { "[5, 5]", UNS, "type: unknown message type 5", 1, 5 },
    { "[6, 5, 'k', b'p']", UNS, "type: unknown message type 6", 1, 5 },
    { "[8, 5, 'k', b'p']", UNS, "type: unknown message type 8", 1, 5 },
    { "[10, 5, 'ping']", UNS, "type: unknown message type 10", 1, 5 },
    { "[15, 0, 0, nil]", UNS, "type: unknown message type 15", 1, 0 },
    { "[255, 5]", UNS, "type: unknown message type 255", 1, 5 },
    { "[256, 5]", UNS, "type: unknown message type 256", 1, 5 },
    { "[" U64MAX ", 5]", UNS, "type: unknown message type " U64MAX, 1, 5 },
    /* HELLO [0, req_id, version, client_name]. */
    { "[0, 1, 1]", BAD, "HELLO: must have 4 elements", 1, 1 },
    { "[0, 1, 1, 'c', nil]", BAD, "HELLO: must have 4 elements", 1, 1 },
    { "[0, 1]", BAD, "HELLO: must have 4 elements", 1, 1 },
    { "[0, 1, 2, 'c']", UNS, "version: protocol 2 not supported, daemon speaks 1",
      1, 1 },
    { "[0, 1, 0, 'c']", UNS, "version: protocol 0 not supported, daemon speaks 1",
      1, 1 },
    { "[0, 1, 4294967295, 'c']", UNS,
      "version: protocol 4294967295 not supported, daemon speaks 1", 1, 1 },
    { "[0, 1, 4294967296, 'c']", BAD, "version: must be a positive integer", 1, 1 },
    { "[0, 1, '1', 'c']", BAD, "version: must be a positive integer", 1, 1 },
    { "[0, 1, -1, 'c']", BAD, "version: must be a positive integer", 1, 1 },
    { "[0, 1, nil, 'c']", BAD, "version: must be a positive integer", 1, 1 },
    { "[0, 1, 1, b'c']", BAD, "client_name: must be a str of at most 128 bytes",
      1, 1 },
    { "[0, 1, 1, nil]", BAD, "client_name: must be a str of at most 128 bytes",
      1, 1 },
    { "[0, 1, 1, s*129]", BAD, "client_name: must be a str of at most 128 bytes",
      1, 1 },
    { "[0, 1, 2, 5]", BAD, "client_name: must be a str of at most 128 bytes",
      1, 1 },
    /* LOAD/SEND [type, req_id, key, payload, opts?]. */
    { "[1, 5, 'k']", BAD, "request: must have 4 or 5 elements", 1, 5 },
    { "[1, 5, 'k', b'p', nil, nil]", BAD, "request: must have 4 or 5 elements",
      1, 5 },
    { "[2, 5]", BAD, "request: must have 4 or 5 elements", 1, 5 },
    { "[1, 5, b'k', b'p']", BAD, "key: must be a str", 1, 5 },
    { "[2, 5, 7, b'p']", BAD, "key: must be a str", 1, 5 },
    { "[1, 5, nil, b'p']", BAD, "key: must be a str", 1, 5 },
    { "[1, 5, ['k'], b'p']", BAD, "key: must be a str", 1, 5 },
    { "[1, 5, 'k', 7]", BAD, "payload: must be a bin or str", 1, 5 },
    { "[1, 5, 'k', nil]", BAD, "payload: must be a bin or str", 1, 5 },
    { "[2, 5, 'k', [b'p']]", BAD, "payload: must be a bin or str", 1, 5 },
    { "[1, 5, 'k', x:d40100]", BAD, "payload: must be a bin or str", 1, 5 },
    /* Keys. */
    { "[1, 5, '', b'p']", BAD, "key: must not be empty", 1, 5 },
    { "[1, 5, s*257, b'p']", BAD, "key: longer than 256 bytes", 1, 5 },
    { "[1, 5, s*65%f09f9880, b'p']", BAD, "key: longer than 256 bytes", 1, 5 },
    { "[1, 5, s:610062, b'p']", BAD, "key: contains a NUL byte", 1, 5 },
    { "[1, 5, s:00, b'p']", BAD, "key: contains a NUL byte", 1, 5 },
    { "[1, 5, s:c080, b'p']", BAD, "key: is not valid UTF-8", 1, 5 },
    { "[1, 5, s:c0af, b'p']", BAD, "key: is not valid UTF-8", 1, 5 },
    { "[1, 5, s:c1bf, b'p']", BAD, "key: is not valid UTF-8", 1, 5 },
    { "[1, 5, s:e080af, b'p']", BAD, "key: is not valid UTF-8", 1, 5 },
    { "[1, 5, s:e09fbf, b'p']", BAD, "key: is not valid UTF-8", 1, 5 },
    { "[1, 5, s:f08080af, b'p']", BAD, "key: is not valid UTF-8", 1, 5 },
    { "[1, 5, s:f08fbfbf, b'p']", BAD, "key: is not valid UTF-8", 1, 5 },
    { "[1, 5, s:eda080, b'p']", BAD, "key: is not valid UTF-8", 1, 5 },
    { "[1, 5, s:edbfbf, b'p']", BAD, "key: is not valid UTF-8", 1, 5 },
    { "[1, 5, s:eda0bdedb880, b'p']", BAD, "key: is not valid UTF-8", 1, 5 },
    { "[1, 5, s:e282, b'p']", BAD, "key: is not valid UTF-8", 1, 5 },
    { "[1, 5, s:61e282, b'p']", BAD, "key: is not valid UTF-8", 1, 5 },
    { "[1, 5, s:e28261, b'p']", BAD, "key: is not valid UTF-8", 1, 5 },
    { "[1, 5, s:f09f98, b'p']", BAD, "key: is not valid UTF-8", 1, 5 },
    { "[1, 5, s:c3, b'p']", BAD, "key: is not valid UTF-8", 1, 5 },
    { "[1, 5, s:ff, b'p']", BAD, "key: is not valid UTF-8", 1, 5 },
    { "[1, 5, s:fe, b'p']", BAD, "key: is not valid UTF-8", 1, 5 },
    { "[1, 5, s:6bff6b, b'p']", BAD, "key: is not valid UTF-8", 1, 5 },
    { "[1, 5, s:80, b'p']", BAD, "key: is not valid UTF-8", 1, 5 },
    { "[1, 5, s:bf, b'p']", BAD, "key: is not valid UTF-8", 1, 5 },
    { "[1, 5, s:f4908080, b'p']", BAD, "key: is not valid UTF-8", 1, 5 },
    { "[1, 5, s:f5808080, b'p']", BAD, "key: is not valid UTF-8", 1, 5 },
    { "[1, 5, s:f880808080, b'p']", BAD, "key: is not valid UTF-8", 1, 5 },
    { "[1, 5, s:c3a9c3, b'p']", BAD, "key: is not valid UTF-8", 1, 5 },
    /* opts. */
    { "[1, 5, 'k', b'p', 7]", BAD, "opts: must be a map or nil", 1, 5 },
    { "[1, 5, 'k', b'p', []]", BAD, "opts: must be a map or nil", 1, 5 },
    { "[1, 5, 'k', b'p', 'priority']", BAD, "opts: must be a map or nil", 1, 5 },
    { "[1, 5, 'k', b'p', {1: 2}]", BAD, "opts: keys must be short strings", 1, 5 },
    { "[1, 5, 'k', b'p', {b'priority': 2}]", BAD,
      "opts: keys must be short strings", 1, 5 },
    { "[1, 5, 'k', b'p', {s*32: 2}]", BAD, "opts: keys must be short strings",
      1, 5 },
    { "[1, 5, 'k', b'p', {'prio': 1}]", BAD, "opts: unknown option 'prio'", 1, 5 },
    { "[1, 5, 'k', b'p', {'Priority': 1}]", BAD,
      "opts: unknown option 'Priority'", 1, 5 },
    { "[1, 5, 'k', b'p', {'': 1}]", BAD, "opts: unknown option ''", 1, 5 },
    { "[1, 5, 'k', b'p', {'priority': 1, 'bogus': 2}]", BAD,
      "opts: unknown option 'bogus'", 1, 5 },
    { "[1, 5, 'k', b'p', {s*31: 1}]", BAD,
      "opts: unknown option 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'", 1, 5 },
    /* The name is echoed into a str reply: printable ASCII only, and a
     * NUL must not make "deadline_ms\0x" pass for deadline_ms. */
    { "[1, 5, 'k', b'p', {s:646561646c696e655f6d730078: 9}]", BAD,
      "opts: unknown option 'deadline_ms?x'", 1, 5 },
    { "[1, 5, 'k', b'p', {s:7072696f7269747900: 9}]", BAD,
      "opts: unknown option 'priority?'", 1, 5 },
    { "[1, 5, 'k', b'p', {s:ff0a41: 1}]", BAD, "opts: unknown option '?\?A'", 1, 5 },
    { "[1, 5, 'k', b'p', {s:c3a9: 1}]", BAD, "opts: unknown option '?\?'", 1, 5 },
    { "[1, 5, 'k', b'p', {'deadline_ms': 0}]", BAD,
      "opts.deadline_ms: must be an integer in 1..4294967295", 1, 5 },
    { "[1, 5, 'k', b'p', {'deadline_ms': 4294967296}]", BAD,
      "opts.deadline_ms: must be an integer in 1..4294967295", 1, 5 },
    { "[1, 5, 'k', b'p', {'deadline_ms': -1}]", BAD,
      "opts.deadline_ms: must be an integer in 1..4294967295", 1, 5 },
    { "[1, 5, 'k', b'p', {'deadline_ms': '100'}]", BAD,
      "opts.deadline_ms: must be an integer in 1..4294967295", 1, 5 },
    { "[1, 5, 'k', b'p', {'deadline_ms': 100.0}]", BAD,
      "opts.deadline_ms: must be an integer in 1..4294967295", 1, 5 },
    { "[1, 5, 'k', b'p', {'deadline_ms': nil}]", BAD,
      "opts.deadline_ms: must be an integer in 1..4294967295", 1, 5 },
    { "[1, 5, 'k', b'p', {'priority': 256}]", BAD,
      "opts.priority: must be an integer in 0..255", 1, 5 },
    { "[1, 5, 'k', b'p', {'priority': -1}]", BAD,
      "opts.priority: must be an integer in 0..255", 1, 5 },
    { "[1, 5, 'k', b'p', {'priority': '1'}]", BAD,
      "opts.priority: must be an integer in 0..255", 1, 5 },
    { "[1, 5, 'k', b'p', {'priority': true}]", BAD,
      "opts.priority: must be an integer in 0..255", 1, 5 },
    { "[1, 5, 'k', b'p', {'dedup_id': s*257}]", BAD,
      "opts.dedup_id: must be a str or bin of 1..256 bytes", 1, 5 },
    { "[1, 5, 'k', b'p', {'dedup_id': b*257}]", BAD,
      "opts.dedup_id: must be a str or bin of 1..256 bytes", 1, 5 },
    { "[1, 5, 'k', b'p', {'dedup_id': ''}]", BAD,
      "opts.dedup_id: must be a str or bin of 1..256 bytes", 1, 5 },
    { "[1, 5, 'k', b'p', {'dedup_id': b''}]", BAD,
      "opts.dedup_id: must be a str or bin of 1..256 bytes", 1, 5 },
    { "[1, 5, 'k', b'p', {'dedup_id': 17}]", BAD,
      "opts.dedup_id: must be a str or bin of 1..256 bytes", 1, 5 },
    { "[1, 5, 'k', b'p', {'trace': s*129}]", BAD,
      "opts.trace: must be a str of at most 128 bytes", 1, 5 },
    { "[1, 5, 'k', b'p', {'trace': b'00-ab'}]", BAD,
      "opts.trace: must be a str of at most 128 bytes", 1, 5 },
    { "[1, 5, 'k', b'p', {'trace': '00-ab'}]", BAD,
      "opts.trace: must be a W3C traceparent (00-<32 hex>-<16 hex>-<2 hex>)",
      1, 5 },
    { "[1, 5, 'k', b'p', {'trace': '00-00000000000000000000000000000000-"
      "00f067aa0ba902b7-01'}]", BAD,
      "opts.trace: must be a W3C traceparent (00-<32 hex>-<16 hex>-<2 hex>)",
      1, 5 },
    { "[1, 5, 'k', b'p', {'trace': '00-4BF92F3577B34DA6A3CE929D0E0E4736-"
      "00f067aa0ba902b7-01'}]", BAD,
      "opts.trace: must be a W3C traceparent (00-<32 hex>-<16 hex>-<2 hex>)",
      1, 5 },
    { "[1, 5, 'k', b'p', {'trace': 'ff-4bf92f3577b34da6a3ce929d0e0e4736-"
      "00f067aa0ba902b7-01'}]", BAD,
      "opts.trace: must be a W3C traceparent (00-<32 hex>-<16 hex>-<2 hex>)",
      1, 5 },
    { "[1, 5, 'k', b'p', {'trace': '00-4bf92f3577b34da6a3ce929d0e0e4736-"
      "00f067aa0ba902b7-01-x'}]", BAD,
      "opts.trace: must be a W3C traceparent (00-<32 hex>-<16 hex>-<2 hex>)",
      1, 5 },
    { "[1, 5, 'k', b'p', {'trace': nil}]", BAD,
      "opts.trace: must be a str of at most 128 bytes", 1, 5 },
    /* LOAD_MANY/SEND_MANY [type, req_id, key, [payload...], opts?]. */
    { "[3, 5, 'k']", BAD, "request: must have 4 or 5 elements", 1, 5 },
    { "[4, 5, 'k', [b'a'], nil, nil]", BAD, "request: must have 4 or 5 elements",
      1, 5 },
    { "[3, 5, 'k', []]", BAD, "payloads: must hold 1..65536 items", 1, 5 },
    { "[4, 5, 'k', x:dc0000]", BAD, "payloads: must hold 1..65536 items", 1, 5 },
    { "[3, 5, 'k', b'p']", BAD, "payloads: must be an array", 1, 5 },
    { "[4, 5, 'k', {b'a': b'b'}]", BAD, "payloads: must be an array", 1, 5 },
    { "[3, 5, 'k', [b'a', 7]]", BAD, "payloads: items must be bin or str", 1, 5 },
    { "[3, 5, 'k', [nil]]", BAD, "payloads: items must be bin or str", 1, 5 },
    { "[4, 5, 'k', [b'a', [b'b']]]", BAD, "payloads: items must be bin or str",
      1, 5 },
    { "[3, 5, '', [b'a']]", BAD, "key: must not be empty", 1, 5 },
    { "[4, 5, s:ff, [b'a']]", BAD, "key: is not valid UTF-8", 1, 5 },
    { "[3, 5, b'k', [b'a']]", BAD, "key: must be a str", 1, 5 },
    { "[3, " U64MAX ", 'k', [b'a', b'b']]", BAD,
      "req_id: too large for this many items", 1, UINT64_MAX },
    { "[4, 18446744073709551614, 'k', [b'a', b'b', b'c']]", BAD,
      "req_id: too large for this many items", 1, UINT64_MAX - 1 },
    { "[3, 5, 'k', [b'a'], {'trace': 5}]", BAD,
      "opts.trace: must be a str of at most 128 bytes", 1, 5 },
    { "[4, 5, 'k', [b'a'], {'nope': 1}]", BAD, "opts: unknown option 'nope'",
      1, 5 },
    /* CONTROL [9, req_id, command, args?]. */
    { "[9, 5]", BAD, "CONTROL: must have 3 or 4 elements", 1, 5 },
    { "[9, 5, 'ping', nil, nil]", BAD, "CONTROL: must have 3 or 4 elements", 1, 5 },
    { "[9, 5, 7]", BAD, "command: must be a str of 1..128 bytes", 1, 5 },
    { "[9, 5, '']", BAD, "command: must be a str of 1..128 bytes", 1, 5 },
    { "[9, 5, s*129]", BAD, "command: must be a str of 1..128 bytes", 1, 5 },
    { "[9, 5, b'ping']", BAD, "command: must be a str of 1..128 bytes", 1, 5 },
    { "[9, 5, 'stats', []]", BAD, "args: must be a map or nil", 1, 5 },
    { "[9, 5, 'stats', 'json']", BAD, "args: must be a map or nil", 1, 5 },
};

START_TEST(test_decode_bad)
{
    const struct bad_case *t = &bad_cases[_i];
    struct bd_msg m;
    int rc;

    memset(&m, 0xa5, sizeof(m)); /* decode must set every field it reports */
    rc = decode_lit(t->lit, &m);
    ck_assert_msg(rc == t->status, "%s: status %d (%s), want %d", t->lit, rc,
                  bd_status_name(rc), t->status);
    ck_assert_msg(strcmp(err, t->err) == 0, "%s: got \"%s\", want \"%s\"",
                  t->lit, err, t->err);
    ck_assert_msg(m.has_id == t->has_id, "%s: has_id %d, want %d", t->lit,
                  m.has_id, t->has_id);
    if (t->has_id)
        ck_assert_msg(m.req_id == t->req_id, "%s: req_id %llu, want %llu",
                      t->lit, (unsigned long long)m.req_id,
                      (unsigned long long)t->req_id);
}
END_TEST

START_TEST(test_decode_type_field)
{
    struct bd_msg m;

    /* What a reply to a refused request can carry as its type. */
    decode_lit("[7, 5]", &m);
    ck_assert_int_eq(m.type, 7);
    decode_lit("[100000, 5]", &m);
    ck_assert_int_eq(m.type, 255);
    decode_lit("['x', 5]", &m);
    ck_assert_int_eq(m.type, -1);
    decode_lit("[1, -5]", &m);
    ck_assert_int_eq(m.type, -1);
    decode_lit("[3, 5, 'k', []]", &m);
    ck_assert_int_eq(m.type, BD_MSG_LOAD_MANY);
}
END_TEST

START_TEST(test_decode_not_one_object)
{
    static const uint8_t two[] = { 0x91, 0x01, 0xc0 };
    static const uint8_t cut[] = { 0x94, 0x01, 0x05 };
    struct bd_msg m;
    struct bd_reply_msg r;

    /* Bodies that skipped bd_frame_check are still refused, not read. */
    ck_assert_int_eq(bd_msg_decode(two, sizeof(two), &zone, &m, err,
                                   sizeof(err)), BATCHD_BAD_REQUEST);
    ck_assert_str_eq(err, "frame: not one msgpack object");
    ck_assert_int_eq(m.has_id, 0);
    ck_assert_int_eq(bd_msg_decode(cut, sizeof(cut), &zone, &m, err,
                                   sizeof(err)), BATCHD_BAD_REQUEST);
    ck_assert_str_eq(err, "frame: not one msgpack object");
    ck_assert_int_eq(bd_msg_decode_reply(two, sizeof(two), &zone, &r, err,
                                         sizeof(err)), -1);
    ck_assert_str_eq(err, "reply: not one msgpack object");
}
END_TEST

static const struct bad_reply {
    const char *lit;
    const char *err;
} bad_replies[] = {
    { "{}", "reply: must be an array of 4 elements" },
    { "[1, 2, 0]", "reply: must be an array of 4 elements" },
    { "[1, 2, 0, nil, nil]", "reply: must be an array of 4 elements" },
    { "'OK'", "reply: must be an array of 4 elements" },
    { "['1', 2, 0, nil]", "reply: type, req_id and status must be integers" },
    { "[1, -2, 0, nil]", "reply: type, req_id and status must be integers" },
    { "[1, 2, -1, nil]", "reply: type, req_id and status must be integers" },
    { "[1, 2, 256, nil]", "reply: type, req_id and status must be integers" },
    { "[1, 2, 'OK', nil]", "reply: type, req_id and status must be integers" },
    { "[1, 2, 0, 5]", "reply: body must be bin, str or nil" },
    { "[1, 2, 0, [b'x']]", "reply: body must be bin, str or nil" },
    { "[1, 2, 0, {}]", "reply: body must be bin, str or nil" },
};

START_TEST(test_decode_reply_bad)
{
    const struct bad_reply *t = &bad_replies[_i];
    struct bd_reply_msg r;
    const char *why = NULL;

    lit_pack(t->lit, &body);
    ck_assert(bd_frame_check((const uint8_t *)body.data, body.size, &why) == 0);
    ck_assert_msg(bd_msg_decode_reply((const uint8_t *)body.data, body.size,
                                      &zone, &r, err, sizeof(err)) == -1,
                  "%s: accepted", t->lit);
    ck_assert_msg(strcmp(err, t->err) == 0, "%s: got \"%s\", want \"%s\"",
                  t->lit, err, t->err);
}
END_TEST

/* A status newer than this build is passed on, not a protocol error. */
START_TEST(test_decode_reply_future_status)
{
    struct bd_reply_msg r;
    const char *why = NULL;

    lit_pack("[1, 2, 200, 'from the future']", &body);
    ck_assert(bd_frame_check((const uint8_t *)body.data, body.size, &why) == 0);
    ck_assert_int_eq(bd_msg_decode_reply((const uint8_t *)body.data, body.size,
                                         &zone, &r, err, sizeof(err)), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(bd_status_name(r.status), "UNKNOWN");
}
END_TEST

/* A *_MANY refused as a whole still tells how many ids it covered. */
START_TEST(test_many_fanout_on_error)
{
    struct bd_msg m;

    ck_assert_int_eq(decode_lit("[3, 10, '', [b'a', b'b', b'c']]", &m),
                     BATCHD_BAD_REQUEST);
    ck_assert_uint_eq(m.fanout, 3);
    ck_assert_int_eq(decode_lit("[4, 10, 'k', [b'a', 5]]", &m),
                     BATCHD_BAD_REQUEST);
    ck_assert_uint_eq(m.fanout, 2);
    ck_assert_int_eq(decode_lit("[3, 10, 'k', 'notarray']", &m),
                     BATCHD_BAD_REQUEST);
    ck_assert_uint_eq(m.fanout, 1);
    ck_assert_int_eq(decode_lit("[1, 10, '', b'x']", &m), BATCHD_BAD_REQUEST);
    ck_assert_uint_eq(m.fanout, 1);
}
END_TEST

/* ---- allocation failures in the encoders ---------------------------------- */

static char big[1500];

static int enc_hello(struct bd_buf *b)
{
    return bd_msg_encode_hello(b, 1, 1, "a client name that is long enough");
}

static int enc_load(struct bd_buf *b)
{
    struct bd_opts o = { 0 };

    o.has_deadline = 1;
    o.deadline_ms = 100;
    o.has_priority = 1;
    o.priority = 3;
    o.dedup_id = big;
    o.dedup_len = 200;
    o.trace = big;
    o.trace_len = 100;
    return bd_msg_encode_item(b, BD_MSG_LOAD, 2, "users", 5, big, 600, &o);
}

static int enc_send(struct bd_buf *b)
{
    return bd_msg_encode_item(b, BD_MSG_SEND, 3, big, 256, big, 1400, NULL);
}

static int enc_many(struct bd_buf *b)
{
    const void *p[5] = { big, big, big, big, big };
    const size_t n[5] = { 100, 300, 0, 700, 1500 };
    struct bd_opts o = { 0 };

    o.has_priority = 1;
    o.priority = 9;
    return bd_msg_encode_many(b, BD_MSG_LOAD_MANY, 4, "k", 1, p, n, 5, &o);
}

static int enc_control(struct bd_buf *b)
{
    const char *kv[] = { "format", "json", "key", "users", "pad",
                         "................................................" };

    return bd_msg_encode_control(b, 5, "stats", kv, 3);
}

static int enc_reply_bin(struct bd_buf *b)
{
    return bd_msg_encode_reply(b, BD_MSG_LOAD, 6, BATCHD_OK, big, 1000, 0);
}

static int enc_reply_str(struct bd_buf *b)
{
    return bd_msg_encode_reply(b, BD_MSG_CONTROL, 7, BATCHD_OK, big, 600, 1);
}

static int enc_reply_nil(struct bd_buf *b)
{
    return bd_msg_encode_reply(b, BD_MSG_SEND, 8, BATCHD_ACCEPTED, NULL, 0, 0);
}

static const struct {
    const char *name;
    int (*fn)(struct bd_buf *);
} encoders[] = {
    { "hello", enc_hello },
    { "load", enc_load },
    { "send", enc_send },
    { "many", enc_many },
    { "control", enc_control },
    { "reply bin", enc_reply_bin },
    { "reply str", enc_reply_str },
    { "reply nil", enc_reply_nil },
};

#define NENC (sizeof(encoders) / sizeof(encoders[0]))

/* Buffer states before the encoder runs. */
enum { ST_EMPTY, ST_ALMOST_FULL, ST_CONSUMED, ST_ROOMY, ST_COUNT };

static void prefill(struct bd_buf *b, int state)
{
    uint8_t fill[250];

    for (size_t i = 0; i < sizeof(fill); i++)
        fill[i] = (uint8_t)i;
    bd_buf_init(b);
    switch (state) {
    case ST_ALMOST_FULL:                 /* 6 bytes of room left */
        ck_assert_int_eq(bd_buf_append(b, fill, 250), 0);
        break;
    case ST_CONSUMED:                    /* the encoder slides, then grows */
        ck_assert_int_eq(bd_buf_append(b, fill, 200), 0);
        bd_buf_consume(b, 150);
        break;
    case ST_ROOMY:                       /* no allocation needed at all */
        ck_assert_int_eq(bd_buf_reserve(b, 1 << 16), 0);
        ck_assert_int_eq(bd_buf_append(b, fill, 10), 0);
        break;
    default:
        break;
    }
}

START_TEST(test_encoders_alloc_failure)
{
    int (*fn)(struct bd_buf *) = encoders[_i / ST_COUNT].fn;
    const char *name = encoders[_i / ST_COUNT].name;
    int state = _i % ST_COUNT;
    struct bd_buf ref, probe;
    int failures = 0, done = 0, need_alloc;

    memset(big, 'y', sizeof(big));
    bd_buf_init(&ref);
    ck_assert_int_eq(fn(&ref), 0);
    prefill(&probe, state);
    need_alloc = probe.len + ref.len > probe.cap;
    bd_buf_destroy(&probe);
    for (unsigned long n = 1; n <= 64 && !done; n++) {
        struct bd_buf b;
        uint8_t *before;
        size_t len0;
        int rc;

        prefill(&b, state);
        len0 = b.len;
        before = malloc(len0 + 1);
        ck_assert_ptr_nonnull(before);
        if (len0 > 0)
            memcpy(before, bd_buf_head(&b), len0);
        bd_alloc_fail_after(n);
        rc = fn(&b);
        bd_alloc_fail_after(0);
        if (rc == -1) {
            failures++;
            /* Undone: length and earlier bytes as they were. */
            ck_assert_msg(b.len == len0, "%s/%d n=%lu: len %zu, was %zu", name,
                          state, n, b.len, len0);
            if (len0 > 0)
                ck_assert_mem_eq(bd_buf_head(&b), before, len0);
            /* And the buffer is still good for the same frame. */
            ck_assert_int_eq(fn(&b), 0);
        } else {
            ck_assert_msg(rc == 0, "%s/%d n=%lu: rc %d", name, state, n, rc);
            done = 1;
        }
        ck_assert_uint_eq(b.len, len0 + ref.len);
        if (len0 > 0)
            ck_assert_mem_eq(bd_buf_head(&b), before, len0);
        ck_assert_mem_eq(bd_buf_head(&b) + len0, bd_buf_head(&ref), ref.len);
        free(before);
        bd_buf_destroy(&b);
    }
    ck_assert_msg(done, "%s/%d: never succeeded", name, state);
    /* Failures happen exactly when the frame does not fit the storage. */
    ck_assert_msg((failures > 0) == need_alloc, "%s/%d: %d failures, %s", name,
                  state, failures, need_alloc ? "must grow" : "fits");
    bd_buf_destroy(&ref);
}
END_TEST

/* ---- suite ---------------------------------------------------------------- */

Suite *msg_suite(void);

Suite *msg_suite(void)
{
    Suite *s = suite_create("msg");
    TCase *tc_core = tcase_create("core");
    TCase *tc_limits = tcase_create("limits");
    TCase *tc_malformed = tcase_create("malformed");

    tcase_add_checked_fixture(tc_core, setup, teardown);
    tcase_add_test(tc_core, test_hello_round_trip);
    tcase_add_test(tc_core, test_item_round_trip);
    tcase_add_test(tc_core, test_item_round_trip_opts);
    tcase_add_test(tc_core, test_item_empty_payload_null);
    tcase_add_test(tc_core, test_many_round_trip);
    tcase_add_test(tc_core, test_control_round_trip);
    tcase_add_test(tc_core, test_reply_round_trip);
    tcase_add_test(tc_core, test_protocol_md_examples);
    tcase_add_test(tc_core, test_decode_accepts);
    tcase_add_test(tc_core, test_decode_signed_ints);
    tcase_add_test(tc_core, test_decode_duplicate_option);
    tcase_add_test(tc_core, test_status_names);
    tcase_add_test(tc_core, test_message_constants);
    suite_add_tcase(s, tc_core);

    tcase_add_checked_fixture(tc_limits, setup, teardown);
    tcase_add_test(tc_limits, test_multibyte_keys);
    tcase_add_test(tc_limits, test_check_key_direct);
    tcase_add_test(tc_limits, test_many_item_count);
    tcase_add_test(tc_limits, test_many_req_id_overflow);
    tcase_add_test(tc_limits, test_err_buffer_is_bounded);
    tcase_add_loop_test(tc_limits, test_encoders_alloc_failure, 0,
                        (int)(NENC * ST_COUNT));
    suite_add_tcase(s, tc_limits);

    tcase_add_checked_fixture(tc_malformed, setup, teardown);
    tcase_add_loop_test(tc_malformed, test_decode_bad, 0,
                        (int)(sizeof(bad_cases) / sizeof(bad_cases[0])));
    tcase_add_test(tc_malformed, test_decode_type_field);
    tcase_add_test(tc_malformed, test_decode_not_one_object);
    tcase_add_test(tc_malformed, test_decode_reply_future_status);
    tcase_add_test(tc_malformed, test_many_fanout_on_error);
    tcase_add_loop_test(tc_malformed, test_decode_reply_bad, 0,
                        (int)(sizeof(bad_replies) / sizeof(bad_replies[0])));
    suite_add_tcase(s, tc_malformed);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(msg_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
