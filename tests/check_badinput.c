/*
 * check_badinput.c - hostile bytes over a raw socket (redis protocol.tcl
 * style: one named test per malformed frame).
 *
 * Each test gets its own daemon (checked fixture) and checks three things:
 * the documented answer (exact status, error frame or request reply, and
 * a word of the message naming the field), whether the connection stays
 * or is closed, and that a normal client is served right after by the
 * same daemon process.
 *
 * "core":      framing and field errors.
 * "limits":    the length limits at their edges (max_frame, pre-HELLO
 *              4 KiB, 256-byte keys) and the count of refusals in a row.
 * "malformed": msgpack that lies (nesting, counts, lengths).
 *
 * Expected statuses and messages are those of proto/PROTOCOL.md
 * (sections 3, 7 and 8).
 *
 * Frames that are valid msgpack are built with msgpack-c's packer or the
 * proto/ encoders; only deliberately broken bytes are written by hand.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <check.h>
#include <msgpack.h>

#include "batchd.h"
#include "buf.h"
#include "frame.h"
#include "helpers.h"
#include "msg.h"

#define MAX_FRAME 262144        /* room for a 100 000-deep nesting */

static const char *const conf =
    "[daemon]\nmax_frame = 262144\n\n"
    "[sink.e]\nplugin = echo\n\n"
    "[route.all]\nmatch = *\nsink = e\npolicy = immediate\nmax_items = 64\n"
    "max_bytes = 1048576\n";

static struct bd_test_daemon *d;

static void setup(void)
{
    d = bd_test_daemon_start(conf);
}

static void teardown(void)
{
    bd_test_daemon_stop(d);
    d = NULL;
}

/* ---- helpers -------------------------------------------------------------------- */

/* A normal client on a new connection is served by the same process. */
static void served(void)
{
    bd_test_daemon_assert_alive(d);
    bd_test_assert_load(d, "after.attack", "still-serving", BATCHD_OK);
    bd_test_daemon_assert_alive(d);
}

/* A connection after HELLO. */
static int hello_conn(void)
{
    int fd = bd_test_raw_connect(d);

    bd_test_raw_hello(fd);
    return fd;
}

/* The same connection still works: a LOAD on it is echoed. */
static void conn_still_works(int fd, uint64_t req_id)
{
    struct bd_test_frame f;

    ck_assert_int_eq(bd_test_raw_write_item(fd, BD_MSG_LOAD, req_id, "same.conn",
                                            "again", 5), 0);
    bd_test_raw_expect(fd, BATCHD_OK, NULL, &f);
    ck_assert_int_eq(f.req_id, req_id);
    ck_assert_str_eq(f.body, "again");
    bd_test_frame_free(&f);
}

/* Expect the connection-level error frame [15, 0, status, msg]. */
static void expect_error_frame(int fd, int status, const char *substr)
{
    struct bd_test_frame f;

    bd_test_raw_expect(fd, status, substr, &f);
    ck_assert_msg(f.type == BD_MSG_ERROR, "error frame of type %d, want 15", f.type);
    ck_assert_int_eq(f.req_id, 0);
    bd_test_frame_free(&f);
}

/* Expect a reply of the given type for req_id with status; the message
 * names field (PROTOCOL.md section 7). */
static void expect_reply(int fd, int type, uint64_t req_id, int status,
                         const char *field)
{
    struct bd_test_frame f;

    bd_test_raw_expect(fd, status, field, &f);
    ck_assert_msg(f.req_id == req_id, "reply for req_id %llu, want %llu",
                  (unsigned long long)f.req_id, (unsigned long long)req_id);
    ck_assert_msg(f.type == type, "reply of type %d, want %d (%s)", f.type, type, f.body);
    bd_test_frame_free(&f);
}

/* A *_MANY refused as a whole: one reply per id first..first+n-1, any order. */
static void expect_many_refused(int fd, int type, uint64_t first, int n, const char *msg)
{
    int seen[16] = {0};

    ck_assert_int_le(n, 16);
    for (int i = 0; i < n; i++) {
        struct bd_test_frame f;
        int rc = bd_test_raw_read(fd, 5000, &f);

        ck_assert_msg(rc == 1, "%d of %d ids answered, then %s", i, n,
                      rc == -1 ? "nothing" : "the connection closed");
        ck_assert_msg(f.status == BATCHD_BAD_REQUEST && strstr(f.body, msg) != NULL,
                      "id %llu: %s '%s', want BAD_REQUEST '%s'",
                      (unsigned long long)f.req_id, batchd_status_name(f.status),
                      f.body, msg);
        ck_assert_int_eq(f.type, type);
        ck_assert_msg(f.req_id >= first && f.req_id < first + (uint64_t)n &&
                      !seen[f.req_id - first], "unexpected or repeated id %llu",
                      (unsigned long long)f.req_id);
        seen[f.req_id - first] = 1;
        bd_test_frame_free(&f);
    }
}

/* Raw bytes as one frame. */
static void write_frame(int fd, const void *body, size_t n)
{
    ck_assert_int_eq(bd_test_raw_write_frame(fd, body, n), 0);
}

static void write_header(int fd, uint32_t n)
{
    uint8_t h[4] = {(uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n};

    ck_assert_int_eq(bd_test_raw_write(fd, h, 4), 0);
}

/* msgpack-c packer into an sbuffer, for valid msgpack with wrong fields. */
struct pk {
    msgpack_sbuffer sb;
    msgpack_packer p;
};

static void pk_init(struct pk *k)
{
    msgpack_sbuffer_init(&k->sb);
    msgpack_packer_init(&k->p, &k->sb, msgpack_sbuffer_write);
}

static void pk_str(struct pk *k, const char *s)
{
    msgpack_pack_str(&k->p, strlen(s));
    msgpack_pack_str_body(&k->p, s, strlen(s));
}

static void pk_bin(struct pk *k, const char *s)
{
    msgpack_pack_bin(&k->p, strlen(s));
    msgpack_pack_bin_body(&k->p, s, strlen(s));
}

static void pk_send(struct pk *k, int fd)
{
    write_frame(fd, k->sb.data, k->sb.size);
    msgpack_sbuffer_destroy(&k->sb);
}

/* LOAD with a key of exactly these bytes (proto encoder). */
static void write_load_key(int fd, uint64_t req_id, const char *key, size_t key_len)
{
    struct bd_buf b;

    bd_buf_init(&b);
    ck_assert_int_eq(bd_msg_encode_item(&b, BD_MSG_LOAD, req_id, key, key_len, "p", 1,
                                        NULL), 0);
    ck_assert_int_eq(bd_test_raw_write(fd, bd_buf_head(&b), b.len), 0);
    bd_buf_destroy(&b);
}

/* ---- framing ---------------------------------------------------------------------- */

START_TEST(test_garbage_bytes)
{
    static const char http[] = "GET / HTTP/1.1\r\nHost: batchd\r\n\r\n";
    int fd = bd_test_raw_connect(d);

    /* "GET " read as a length is 0x47455420: far over the 4 KiB pre-HELLO limit. */
    ck_assert_int_eq(bd_test_raw_write(fd, http, sizeof(http) - 1), 0);
    expect_error_frame(fd, BATCHD_FRAME_TOO_LARGE, "before HELLO");
    bd_test_raw_expect_close(fd, 5000);
    bd_test_raw_close(fd);
    served();
}
END_TEST

START_TEST(test_length_zero)
{
    int fd = hello_conn();

    write_header(fd, 0);
    expect_error_frame(fd, BATCHD_FRAME_TOO_LARGE, "frame length 0");
    bd_test_raw_expect_close(fd, 5000);
    bd_test_raw_close(fd);
    served();
}
END_TEST

/* Only the 4 length bytes are sent: the daemon must answer without
 * waiting for a body. */
START_TEST(test_length_max_frame_plus_one)
{
    int fd = hello_conn();

    write_header(fd, MAX_FRAME + 1);
    expect_error_frame(fd, BATCHD_FRAME_TOO_LARGE, "262145");
    bd_test_raw_expect_close(fd, 5000);
    bd_test_raw_close(fd);
    served();
}
END_TEST

START_TEST(test_length_ffffffff)
{
    int fd = hello_conn();

    write_header(fd, 0xffffffffu);
    expect_error_frame(fd, BATCHD_FRAME_TOO_LARGE, "4294967295");
    bd_test_raw_expect_close(fd, 5000);
    bd_test_raw_close(fd);
    served();
}
END_TEST

START_TEST(test_pre_hello_frame_over_4096)
{
    int fd = bd_test_raw_connect(d);

    write_header(fd, BD_FRAME_PRE_HELLO_MAX + 1);
    expect_error_frame(fd, BATCHD_FRAME_TOO_LARGE, "before HELLO");
    bd_test_raw_expect_close(fd, 5000);
    bd_test_raw_close(fd);
    served();
}
END_TEST

/* Whatever the daemon says (nothing is promised), it must close. */
static void drain_until_close(int fd)
{
    struct bd_test_frame f;
    int rc;

    while ((rc = bd_test_raw_read(fd, 5000, &f)) == 1)
        bd_test_frame_free(&f);
    ck_assert_msg(rc == 0 || rc == -2, "the daemon kept a half-closed connection open");
}

START_TEST(test_truncated_body_then_eof)
{
    static const uint8_t part[10] = {0x94, 0x01, 0x01, 0xa1, 'k'};
    int fd = hello_conn();
    int fd2 = bd_test_raw_connect(d);

    write_header(fd, 100);
    ck_assert_int_eq(bd_test_raw_write(fd, part, sizeof(part)), 0);
    shutdown(fd, SHUT_WR);
    drain_until_close(fd);
    bd_test_raw_close(fd);
    /* The same before HELLO, closed outright. */
    write_header(fd2, 50);
    ck_assert_int_eq(bd_test_raw_write(fd2, part, 3), 0);
    bd_test_raw_close(fd2);
    served();
}
END_TEST

START_TEST(test_body_not_msgpack)
{
    static const uint8_t c1[] = {0xc1};                 /* never-used type byte */
    int fd = hello_conn();

    write_frame(fd, c1, sizeof(c1));
    expect_error_frame(fd, BATCHD_BAD_REQUEST, "0xc1");
    conn_still_works(fd, 41);
    bd_test_raw_close(fd);
    served();
}
END_TEST

START_TEST(test_body_two_objects)
{
    static const uint8_t two[] = {0x01, 0x02};          /* trailing bytes */
    int fd = hello_conn();

    write_frame(fd, two, sizeof(two));
    expect_error_frame(fd, BATCHD_BAD_REQUEST, "trailing bytes");
    conn_still_works(fd, 42);
    bd_test_raw_close(fd);
    served();
}
END_TEST

START_TEST(test_body_truncated_object)
{
    static const uint8_t half[] = {0x92, 0x91, 0x01};   /* array of 2, 1 given */
    int fd = hello_conn();

    write_frame(fd, half, sizeof(half));
    expect_error_frame(fd, BATCHD_BAD_REQUEST, "truncated msgpack object");
    conn_still_works(fd, 43);
    bd_test_raw_close(fd);
    served();
}
END_TEST

/* ---- fields ------------------------------------------------------------------------- */

START_TEST(test_field_type_wrong_type)
{
    int fd = hello_conn();
    struct pk k;

    pk_init(&k);
    msgpack_pack_array(&k.p, 4);
    pk_str(&k, "LOAD");                                 /* type must be an integer */
    msgpack_pack_uint64(&k.p, 7);
    pk_str(&k, "key");
    pk_bin(&k, "payload");
    pk_send(&k, fd);
    expect_reply(fd, BD_MSG_ERROR, 7, BATCHD_BAD_REQUEST, "type: must be");
    conn_still_works(fd, 8);
    bd_test_raw_close(fd);
    served();
}
END_TEST

START_TEST(test_field_req_id_wrong_type)
{
    int fd = hello_conn();
    struct pk k;

    pk_init(&k);
    msgpack_pack_array(&k.p, 4);
    msgpack_pack_uint32(&k.p, BD_MSG_LOAD);
    pk_str(&k, "seven");                                /* req_id must be an integer */
    pk_str(&k, "key");
    pk_bin(&k, "payload");
    pk_send(&k, fd);
    expect_reply(fd, BD_MSG_ERROR, 0, BATCHD_BAD_REQUEST, "req_id: must be");
    conn_still_works(fd, 9);
    bd_test_raw_close(fd);
    served();
}
END_TEST

START_TEST(test_field_req_id_negative)
{
    int fd = hello_conn();
    struct pk k;

    pk_init(&k);
    msgpack_pack_array(&k.p, 4);
    msgpack_pack_uint32(&k.p, BD_MSG_LOAD);
    msgpack_pack_int64(&k.p, -5);
    pk_str(&k, "key");
    pk_bin(&k, "payload");
    pk_send(&k, fd);
    expect_reply(fd, BD_MSG_ERROR, 0, BATCHD_BAD_REQUEST, "req_id: must be");
    conn_still_works(fd, 10);
    bd_test_raw_close(fd);
    served();
}
END_TEST

START_TEST(test_field_key_wrong_type)
{
    int fd = hello_conn();
    struct pk k;

    pk_init(&k);
    msgpack_pack_array(&k.p, 4);
    msgpack_pack_uint32(&k.p, BD_MSG_LOAD);
    msgpack_pack_uint64(&k.p, 11);
    msgpack_pack_uint32(&k.p, 42);                      /* key must be a str */
    pk_bin(&k, "payload");
    pk_send(&k, fd);
    expect_reply(fd, BD_MSG_LOAD, 11, BATCHD_BAD_REQUEST, "key: must be a str");
    conn_still_works(fd, 12);
    bd_test_raw_close(fd);
    served();
}
END_TEST

START_TEST(test_field_payload_wrong_type)
{
    int fd = hello_conn();
    struct pk k;

    pk_init(&k);
    msgpack_pack_array(&k.p, 4);
    msgpack_pack_uint32(&k.p, BD_MSG_LOAD);
    msgpack_pack_uint64(&k.p, 13);
    pk_str(&k, "key");
    msgpack_pack_map(&k.p, 0);                          /* payload must be bin/str */
    pk_send(&k, fd);
    expect_reply(fd, BD_MSG_LOAD, 13, BATCHD_BAD_REQUEST, "payload: must be");
    conn_still_works(fd, 14);
    bd_test_raw_close(fd);
    served();
}
END_TEST

START_TEST(test_field_opts_wrong_type)
{
    int fd = hello_conn();
    struct pk k;

    pk_init(&k);
    msgpack_pack_array(&k.p, 5);
    msgpack_pack_uint32(&k.p, BD_MSG_LOAD);
    msgpack_pack_uint64(&k.p, 15);
    pk_str(&k, "key");
    pk_bin(&k, "payload");
    msgpack_pack_uint32(&k.p, 42);                      /* opts must be a map */
    pk_send(&k, fd);
    expect_reply(fd, BD_MSG_LOAD, 15, BATCHD_BAD_REQUEST, "opts: must be");

    pk_init(&k);
    msgpack_pack_array(&k.p, 5);
    msgpack_pack_uint32(&k.p, BD_MSG_SEND);
    msgpack_pack_uint64(&k.p, 16);
    pk_str(&k, "key");
    pk_bin(&k, "payload");
    msgpack_pack_map(&k.p, 1);
    pk_str(&k, "deadline_ms");
    pk_str(&k, "soon");                                 /* must be an integer */
    pk_send(&k, fd);
    expect_reply(fd, BD_MSG_SEND, 16, BATCHD_BAD_REQUEST, "opts.deadline_ms");
    conn_still_works(fd, 17);
    bd_test_raw_close(fd);
    served();
}
END_TEST

START_TEST(test_field_many_payloads_wrong_type)
{
    int fd = hello_conn();
    struct pk k;

    pk_init(&k);
    msgpack_pack_array(&k.p, 4);
    msgpack_pack_uint32(&k.p, BD_MSG_LOAD_MANY);
    msgpack_pack_uint64(&k.p, 18);
    pk_str(&k, "key");
    msgpack_pack_array(&k.p, 2);
    pk_bin(&k, "ok");
    msgpack_pack_uint32(&k.p, 3);                       /* items must be bin/str */
    pk_send(&k, fd);
    /* Refused as a whole, answered once per id: 18 and 19. */
    expect_many_refused(fd, BD_MSG_LOAD_MANY, 18, 2, "payloads: items must be bin or str");
    conn_still_works(fd, 20);
    bd_test_raw_close(fd);
    served();
}
END_TEST

START_TEST(test_unknown_message_type)
{
    int fd = hello_conn();
    struct pk k;

    pk_init(&k);
    msgpack_pack_array(&k.p, 4);
    msgpack_pack_uint32(&k.p, 7);                       /* no such type */
    msgpack_pack_uint64(&k.p, 21);
    pk_str(&k, "key");
    pk_bin(&k, "payload");
    pk_send(&k, fd);
    expect_reply(fd, 7, 21, BATCHD_UNSUPPORTED, "type: unknown message type 7");
    conn_still_works(fd, 22);
    bd_test_raw_close(fd);
    served();
}
END_TEST

/* Type 15 is the daemon's; a client sending it is refused like any
 * unknown type. Types over 255 come back as 255. */
START_TEST(test_unknown_type_15_and_300)
{
    int fd = hello_conn();
    struct pk k;

    pk_init(&k);
    msgpack_pack_array(&k.p, 4);
    msgpack_pack_uint32(&k.p, BD_MSG_ERROR);
    msgpack_pack_uint64(&k.p, 25);
    msgpack_pack_uint32(&k.p, 0);
    pk_str(&k, "forged");
    pk_send(&k, fd);
    expect_reply(fd, BD_MSG_ERROR, 25, BATCHD_UNSUPPORTED, "type: unknown message type 15");

    pk_init(&k);
    msgpack_pack_array(&k.p, 4);
    msgpack_pack_uint32(&k.p, 300);
    msgpack_pack_uint64(&k.p, 26);
    pk_str(&k, "key");
    pk_bin(&k, "payload");
    pk_send(&k, fd);
    expect_reply(fd, 255, 26, BATCHD_UNSUPPORTED, "type: unknown message type 300");
    conn_still_works(fd, 27);
    bd_test_raw_close(fd);
    served();
}
END_TEST

START_TEST(test_hello_twice)
{
    int fd = hello_conn();
    struct bd_buf b;

    bd_buf_init(&b);
    ck_assert_int_eq(bd_msg_encode_hello(&b, 28, BD_PROTO_VERSION, "again"), 0);
    ck_assert_int_eq(bd_test_raw_write(fd, bd_buf_head(&b), b.len), 0);
    bd_buf_destroy(&b);
    expect_reply(fd, BD_MSG_HELLO, 28, BATCHD_BAD_REQUEST, "HELLO: sent twice");
    conn_still_works(fd, 29);
    bd_test_raw_close(fd);
    served();
}
END_TEST

/* A *_MANY refused as a whole (bad key) is answered once per id. */
START_TEST(test_many_bad_key_answered_per_id)
{
    static const char *const items[] = {"a", "b", "c"};
    const void *data[3] = {items[0], items[1], items[2]};
    size_t lens[3] = {1, 1, 1};
    int fd = hello_conn();
    struct bd_buf b;

    bd_buf_init(&b);
    ck_assert_int_eq(bd_msg_encode_many(&b, BD_MSG_SEND_MANY, 50, "", 0, data, lens, 3,
                                        NULL), 0);
    ck_assert_int_eq(bd_test_raw_write(fd, bd_buf_head(&b), b.len), 0);
    bd_buf_destroy(&b);
    expect_many_refused(fd, BD_MSG_SEND_MANY, 50, 3, "key: must not be empty");
    conn_still_works(fd, 53);
    bd_test_raw_close(fd);
    served();
}
END_TEST

START_TEST(test_unknown_control_command)
{
    int fd = hello_conn();
    struct bd_buf b;
    struct bd_test_frame f;

    bd_buf_init(&b);
    ck_assert_int_eq(bd_msg_encode_control(&b, 23, "frobnicate", NULL, 0), 0);
    ck_assert_int_eq(bd_test_raw_write(fd, bd_buf_head(&b), b.len), 0);
    bd_buf_destroy(&b);
    bd_test_raw_expect(fd, BATCHD_UNSUPPORTED, "command", &f);
    ck_assert_int_eq(f.req_id, 23);
    ck_assert_int_eq(f.type, BD_MSG_CONTROL);
    bd_test_frame_free(&f);
    conn_still_works(fd, 24);
    bd_test_raw_close(fd);
    served();
}
END_TEST

START_TEST(test_hello_version_2)
{
    int fd = bd_test_raw_connect(d);
    struct bd_buf b;

    bd_buf_init(&b);
    ck_assert_int_eq(bd_msg_encode_hello(&b, 1, 2, "from-the-future"), 0);
    ck_assert_int_eq(bd_test_raw_write(fd, bd_buf_head(&b), b.len), 0);
    bd_buf_destroy(&b);
    expect_reply(fd, BD_MSG_HELLO, 1, BATCHD_UNSUPPORTED, "version");
    /* Still before HELLO: the client may try again. */
    bd_test_raw_hello(fd);
    conn_still_works(fd, 2);
    bd_test_raw_close(fd);
    served();
}
END_TEST

START_TEST(test_request_before_hello)
{
    int fd = bd_test_raw_connect(d);

    ck_assert_int_eq(bd_test_raw_write_item(fd, BD_MSG_LOAD, 5, "early", "bird", 4), 0);
    expect_reply(fd, BD_MSG_LOAD, 5, BATCHD_BAD_REQUEST, "expected HELLO first");
    bd_test_raw_hello(fd);                      /* the connection stayed */
    conn_still_works(fd, 6);
    bd_test_raw_close(fd);
    served();
}
END_TEST

/* ---- keys ------------------------------------------------------------------------------ */

static void bad_key(const char *key, size_t len, const char *why)
{
    int fd = hello_conn();
    struct bd_test_frame f;

    write_load_key(fd, 30, key, len);
    bd_test_raw_expect(fd, BATCHD_BAD_REQUEST, "key", &f);
    ck_assert_int_eq(f.req_id, 30);
    ck_assert_msg(why == NULL || strstr(f.body, why) != NULL,
                  "message '%s' does not say '%s'", f.body, why);
    bd_test_frame_free(&f);
    conn_still_works(fd, 31);
    bd_test_raw_close(fd);
    served();
}

START_TEST(test_key_empty)
{
    bad_key("", 0, NULL);
}
END_TEST

START_TEST(test_key_257_bytes)
{
    char key[257];

    memset(key, 'k', sizeof(key));
    bad_key(key, sizeof(key), "256");
}
END_TEST

START_TEST(test_key_with_nul)
{
    bad_key("ab\0cd", 5, "NUL");
}
END_TEST

START_TEST(test_key_invalid_utf8)
{
    bad_key("user.\xc3\x28", 7, "UTF-8");
}
END_TEST

START_TEST(test_key_overlong_utf8)
{
    bad_key("\xc0\xaf", 2, "UTF-8");            /* overlong "/" */
}
END_TEST

/* ---- limits at their edges ------------------------------------------------------------ */

START_TEST(test_key_256_bytes_ok)
{
    int fd = hello_conn();
    struct bd_test_frame f;
    char key[256];

    memset(key, 'k', sizeof(key));
    write_load_key(fd, 32, key, sizeof(key));
    bd_test_raw_expect(fd, BATCHD_OK, NULL, &f);
    ck_assert_int_eq(f.req_id, 32);
    ck_assert_str_eq(f.body, "p");
    bd_test_frame_free(&f);
    bd_test_raw_close(fd);
    served();
}
END_TEST

/* Encode a LOAD whose body is exactly body_len bytes into b. */
static void load_of_size(struct bd_buf *b, uint64_t req_id, size_t body_len)
{
    static char payload[MAX_FRAME];

    memset(payload, 'x', sizeof(payload));
    for (size_t plen = body_len > 64 ? body_len - 64 : 0; plen < body_len; plen++) {
        bd_buf_init(b);
        ck_assert_int_eq(bd_msg_encode_item(b, BD_MSG_LOAD, req_id, "edge", 4, payload,
                                            plen, NULL), 0);
        if (b->len == BD_FRAME_HDR + body_len)
            return;
        bd_buf_destroy(b);
    }
    ck_abort_msg("no LOAD of exactly %zu bytes", body_len);
}

START_TEST(test_frame_of_max_frame_ok)
{
    int fd = hello_conn();
    struct bd_test_frame f;
    struct bd_buf b;

    load_of_size(&b, 33, MAX_FRAME);
    ck_assert_int_eq(bd_test_raw_write(fd, bd_buf_head(&b), b.len), 0);
    bd_buf_destroy(&b);
    bd_test_raw_expect(fd, BATCHD_OK, NULL, &f);
    ck_assert_int_eq(f.req_id, 33);
    ck_assert_int_gt(f.body_len, MAX_FRAME - 64);
    bd_test_frame_free(&f);
    conn_still_works(fd, 34);
    bd_test_raw_close(fd);
    served();
}
END_TEST

/* A 4096-byte frame before HELLO is read (and refused as a request), so
 * the connection stays. */
START_TEST(test_pre_hello_frame_of_4096_read)
{
    int fd = bd_test_raw_connect(d);
    struct bd_buf b;

    load_of_size(&b, 35, BD_FRAME_PRE_HELLO_MAX);
    ck_assert_int_eq(bd_test_raw_write(fd, bd_buf_head(&b), b.len), 0);
    bd_buf_destroy(&b);
    expect_reply(fd, BD_MSG_LOAD, 35, BATCHD_BAD_REQUEST, "expected HELLO first");
    bd_test_raw_hello(fd);
    conn_still_works(fd, 36);
    bd_test_raw_close(fd);
    served();
}
END_TEST

/* More than 16 refusals in a row: an ERROR frame, then the daemon closes
 * (PROTOCOL.md section 8.2) and reads nothing more. */
START_TEST(test_too_many_bad_requests_in_a_row)
{
    int fd = hello_conn();
    struct bd_test_frame f;
    struct bd_buf b;
    int replies = 0, rc;

    /* One write: the daemon closes part way through the 30. */
    bd_buf_init(&b);
    for (int i = 0; i < 30; i++)
        ck_assert_int_eq(bd_msg_encode_item(&b, BD_MSG_LOAD, 100 + (uint64_t)i, "", 0,
                                            "p", 1, NULL), 0);
    ck_assert_int_eq(bd_test_raw_write(fd, bd_buf_head(&b), b.len), 0);
    bd_buf_destroy(&b);
    while ((rc = bd_test_raw_read(fd, 5000, &f)) == 1 && f.type != BD_MSG_ERROR) {
        ck_assert_int_eq(f.status, BATCHD_BAD_REQUEST);
        ck_assert_int_eq(f.req_id, 100 + (uint64_t)replies);
        replies++;
        bd_test_frame_free(&f);
    }
    ck_assert_msg(rc == 1, "no ERROR frame after %d refusals (the connection %s)",
                  replies, rc == -1 ? "stays open" : "closed");
    ck_assert_int_eq(f.req_id, 0);
    ck_assert_int_eq(f.status, BATCHD_BAD_REQUEST);
    ck_assert_msg(strstr(f.body, "too many bad requests") != NULL, "ERROR '%s'", f.body);
    bd_test_frame_free(&f);
    ck_assert_msg(replies == 16 || replies == 17, "%d refusals before closing", replies);
    bd_test_raw_expect_close(fd, 5000);
    bd_test_raw_close(fd);
    served();
}
END_TEST

/* A well-formed request resets the count of refusals in a row. */
START_TEST(test_good_request_resets_bad_count)
{
    int fd = hello_conn();
    struct bd_test_frame f;

    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 12; i++) {
            write_load_key(fd, 200 + (uint64_t)i, "", 0);
            bd_test_raw_expect(fd, BATCHD_BAD_REQUEST, "key", &f);
            bd_test_frame_free(&f);
        }
        conn_still_works(fd, 300 + (uint64_t)round);
    }
    bd_test_raw_close(fd);
    served();
}
END_TEST

/* ---- msgpack that lies ----------------------------------------------------------------- */

static void nested_frame(int fd, size_t depth)
{
    uint8_t *body = malloc(depth + 1);

    ck_assert_ptr_nonnull(body);
    memset(body, 0x91, depth);                  /* fixarray of one, depth times */
    body[depth] = 0x01;
    write_frame(fd, body, depth + 1);
    free(body);
}

static void expect_nesting_error(int fd)
{
    struct bd_test_frame f;

    bd_test_raw_expect(fd, BATCHD_BAD_REQUEST, "nesting deeper than 8", &f);
    ck_assert_int_eq(f.type, BD_MSG_ERROR);
    ck_assert_int_eq(f.req_id, 0);
    bd_test_frame_free(&f);
}

START_TEST(test_nesting_8_is_walked)
{
    int fd = hello_conn();
    struct bd_test_frame f;

    /* Depth 8 passes the walk; it is then a bad request, not a bad frame. */
    nested_frame(fd, 8);
    bd_test_raw_expect(fd, BATCHD_BAD_REQUEST, NULL, &f);
    ck_assert_msg(strstr(f.body, "nesting") == NULL,
                  "depth 8 refused as too deep: '%s'", f.body);
    ck_assert_msg(strstr(f.body, "request") != NULL, "depth 8: '%s'", f.body);
    bd_test_frame_free(&f);
    conn_still_works(fd, 37);
    bd_test_raw_close(fd);
    served();
}
END_TEST

START_TEST(test_nesting_9)
{
    int fd = hello_conn();

    nested_frame(fd, 9);
    expect_nesting_error(fd);
    conn_still_works(fd, 38);
    bd_test_raw_close(fd);
    served();
}
END_TEST

START_TEST(test_nesting_100000)
{
    int fd = hello_conn();

    nested_frame(fd, 100000);
    expect_nesting_error(fd);
    conn_still_works(fd, 39);
    bd_test_raw_close(fd);
    served();
}
END_TEST

START_TEST(test_array32_huge_count)
{
    /* array32 declaring 2^32-1 elements in a 6-byte frame: msgpack-c
     * alone would try to allocate for them (DESIGN section 8). */
    static const uint8_t body[] = {0xdd, 0xff, 0xff, 0xff, 0xff, 0x01};
    int fd = hello_conn();

    write_frame(fd, body, sizeof(body));
    expect_error_frame(fd, BATCHD_BAD_REQUEST, "container count exceeds the frame");
    conn_still_works(fd, 40);
    bd_test_raw_close(fd);
    served();
}
END_TEST

START_TEST(test_array32_million_count)
{
    /* 1M declared elements: msgpack-c answers CONTINUE, not an error. */
    static const uint8_t body[] = {0xdd, 0x00, 0x0f, 0x42, 0x40, 0x01, 0x01};
    int fd = hello_conn();

    write_frame(fd, body, sizeof(body));
    expect_error_frame(fd, BATCHD_BAD_REQUEST, "container count exceeds the frame");
    conn_still_works(fd, 44);
    bd_test_raw_close(fd);
    served();
}
END_TEST

START_TEST(test_map32_huge_count)
{
    static const uint8_t body[] = {0xdf, 0xff, 0xff, 0xff, 0xff, 0x01, 0x01};
    int fd = hello_conn();

    write_frame(fd, body, sizeof(body));
    expect_error_frame(fd, BATCHD_BAD_REQUEST, "container count exceeds the frame");
    conn_still_works(fd, 45);
    bd_test_raw_close(fd);
    served();
}
END_TEST

START_TEST(test_str32_length_past_frame)
{
    /* [1, 46, "k", str32 of 0xfffffff0 bytes] with 2 bytes present */
    static const uint8_t body[] = {0x94, 0x01, 0x2e, 0xa1, 'k',
                                   0xdb, 0xff, 0xff, 0xff, 0xf0, 'a', 'b'};
    int fd = hello_conn();

    write_frame(fd, body, sizeof(body));
    expect_error_frame(fd, BATCHD_BAD_REQUEST, "runs past the end of the frame");
    conn_still_works(fd, 47);
    bd_test_raw_close(fd);
    served();
}
END_TEST

/* ---- suite -------------------------------------------------------------------------------- */

static Suite *badinput_suite(void)
{
    Suite *s = suite_create("badinput");
    TCase *core = tcase_create("core");
    TCase *limits = tcase_create("limits");
    TCase *malformed = tcase_create("malformed");

    tcase_add_checked_fixture(core, setup, teardown);
    tcase_set_timeout(core, 30);
    bd_test_add(core, test_garbage_bytes);
    bd_test_add(core, test_length_zero);
    bd_test_add(core, test_length_max_frame_plus_one);
    bd_test_add(core, test_length_ffffffff);
    bd_test_add(core, test_pre_hello_frame_over_4096);
    bd_test_add(core, test_truncated_body_then_eof);
    bd_test_add(core, test_body_not_msgpack);
    bd_test_add(core, test_body_two_objects);
    bd_test_add(core, test_body_truncated_object);
    bd_test_add(core, test_field_type_wrong_type);
    bd_test_add(core, test_field_req_id_wrong_type);
    bd_test_add(core, test_field_req_id_negative);
    bd_test_add(core, test_field_key_wrong_type);
    bd_test_add(core, test_field_payload_wrong_type);
    bd_test_add(core, test_field_opts_wrong_type);
    bd_test_add(core, test_field_many_payloads_wrong_type);
    bd_test_add(core, test_unknown_message_type);
    bd_test_add(core, test_unknown_type_15_and_300);
    bd_test_add(core, test_hello_twice);
    bd_test_add(core, test_many_bad_key_answered_per_id);
    bd_test_add(core, test_unknown_control_command);
    bd_test_add(core, test_hello_version_2);
    bd_test_add(core, test_request_before_hello);
    bd_test_add(core, test_key_empty);
    bd_test_add(core, test_key_257_bytes);
    bd_test_add(core, test_key_with_nul);
    bd_test_add(core, test_key_invalid_utf8);
    bd_test_add(core, test_key_overlong_utf8);
    suite_add_tcase(s, core);

    tcase_add_checked_fixture(limits, setup, teardown);
    tcase_set_timeout(limits, 30);
    bd_test_add(limits, test_key_256_bytes_ok);
    bd_test_add(limits, test_frame_of_max_frame_ok);
    bd_test_add(limits, test_pre_hello_frame_of_4096_read);
    bd_test_add(limits, test_too_many_bad_requests_in_a_row);
    bd_test_add(limits, test_good_request_resets_bad_count);
    suite_add_tcase(s, limits);

    tcase_add_checked_fixture(malformed, setup, teardown);
    tcase_set_timeout(malformed, 30);
    bd_test_add(malformed, test_nesting_8_is_walked);
    bd_test_add(malformed, test_nesting_9);
    bd_test_add(malformed, test_nesting_100000);
    bd_test_add(malformed, test_array32_huge_count);
    bd_test_add(malformed, test_array32_million_count);
    bd_test_add(malformed, test_map32_huge_count);
    bd_test_add(malformed, test_str32_length_past_frame);
    suite_add_tcase(s, malformed);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(badinput_suite());
    int failed;

    srunner_run_all(sr, CK_ENV);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
