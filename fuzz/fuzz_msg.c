/*
 * fuzz_msg.c - libFuzzer target for message decoding (proto/msg.c).
 *
 * The input is one frame as on the wire (4-byte length, body); when the
 * length disagrees with the input, the bytes after the prefix are the
 * body. A body that passes bd_frame_check goes to bd_msg_decode and to
 * bd_msg_decode_reply. Every request that decodes is encoded again with
 * its own encoder and decoded once more: the second decode must succeed
 * and give the same fields (type, req_id, key, payload, items, opts,
 * name, args). A reply is checked the same way. Every body the fast
 * decoder of plain LOAD/SEND takes (bd_msg_decode_fast, the daemon's hot
 * path, which runs before any walk) must pass the walk and decode to the
 * same fields, with no options.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "frame.h"
#include "msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what, const uint8_t *body, size_t len)
{
    fprintf(stderr, "fuzz_msg: %s; body of %zu bytes:", what, len);
    for (size_t i = 0; i < len && i < 96; i++)
        fprintf(stderr, " %02x", body[i]);
    fprintf(stderr, "%s\n", len > 96 ? " ..." : "");
    abort();
}

static int same_bytes(const void *a, size_t alen, const void *b, size_t blen)
{
    return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

static const void *raw_ptr(const msgpack_object *o)
{
    return o->type == MSGPACK_OBJECT_BIN ? (const void *)o->via.bin.ptr
                                         : (const void *)o->via.str.ptr;
}

static size_t raw_len(const msgpack_object *o)
{
    return o->type == MSGPACK_OBJECT_BIN ? o->via.bin.size : o->via.str.size;
}

/* A NUL-terminated copy of a str, or NULL when it holds a NUL (the
 * HELLO and CONTROL encoders take C strings). Free with free(). */
static char *cstr(const char *p, size_t n)
{
    char *s;

    if (n > 0 && memchr(p, '\0', n) != NULL)
        return NULL;
    s = malloc(n + 1);
    if (s == NULL)
        abort();
    if (n > 0)
        memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

/* The frame the encoder wrote must pass the same checks as client input. */
static const uint8_t *reframe(const struct bd_buf *b, size_t *len)
{
    const uint8_t *p = bd_buf_head(b);
    const char *why;
    size_t body;

    if (bd_frame_peek(p, b->len, UINT32_MAX, &body) != BD_FRAME_OK ||
        body != b->len - BD_FRAME_HDR ||
        bd_frame_check(p + BD_FRAME_HDR, body, &why) != 0)
        fail("an encoder wrote a frame that does not pass the walk", p, b->len);
    *len = body;
    return p + BD_FRAME_HDR;
}

static int same_opts(const struct bd_opts *a, const struct bd_opts *b)
{
    if (a->has_deadline != b->has_deadline || a->has_priority != b->has_priority)
        return 0;
    if (a->has_deadline && a->deadline_ms != b->deadline_ms)
        return 0;
    if (a->has_priority && a->priority != b->priority)
        return 0;
    if ((a->dedup_id == NULL) != (b->dedup_id == NULL) ||
        (a->trace == NULL) != (b->trace == NULL))
        return 0;
    if (a->dedup_id && !same_bytes(a->dedup_id, a->dedup_len, b->dedup_id,
                                   b->dedup_len))
        return 0;
    if (a->trace && !same_bytes(a->trace, a->trace_len, b->trace, b->trace_len))
        return 0;
    return 1;
}

/* A CONTROL's args as 2n C strings in *kv (free with free_kv(kv, n)).
 * Returns 0, or -1 when they are not all str without NUL: the encoder
 * takes nothing else. */
static int control_kv(const msgpack_object *args, char ***kv, size_t *n)
{
    *n = args ? args->via.map.size : 0;
    *kv = calloc(2 * *n + 1, sizeof(**kv));
    if (*kv == NULL)
        abort();
    for (size_t i = 0; i < *n; i++) {
        const msgpack_object *k = &args->via.map.ptr[i].key;
        const msgpack_object *v = &args->via.map.ptr[i].val;

        if (k->type != MSGPACK_OBJECT_STR || v->type != MSGPACK_OBJECT_STR ||
            ((*kv)[2 * i] = cstr(k->via.str.ptr, k->via.str.size)) == NULL ||
            ((*kv)[2 * i + 1] = cstr(v->via.str.ptr, v->via.str.size)) == NULL)
            return -1;
    }
    return 0;
}

static void free_kv(char **kv, size_t n)
{
    for (size_t i = 0; i < 2 * n; i++)
        free(kv[i]);
    free(kv);
}

static int same_args(const msgpack_object *a, const msgpack_object *b)
{
    uint32_t na = a ? a->via.map.size : 0, nb = b ? b->via.map.size : 0;

    if (na != nb)
        return 0;
    for (uint32_t i = 0; i < na; i++) {
        const msgpack_object *ka = &a->via.map.ptr[i].key;
        const msgpack_object *va = &a->via.map.ptr[i].val;
        const msgpack_object *kb = &b->via.map.ptr[i].key;
        const msgpack_object *vb = &b->via.map.ptr[i].val;

        if (!same_bytes(ka->via.str.ptr, ka->via.str.size, kb->via.str.ptr,
                        kb->via.str.size) ||
            !same_bytes(va->via.str.ptr, va->via.str.size, vb->via.str.ptr,
                        vb->via.str.size))
            return 0;
    }
    return 1;
}

/* Encode m again. Returns 0, 1 when the encoder cannot express m (a
 * NUL in a C-string field: not compared), or aborts on an encoder error. */
static int reencode(const struct bd_msg *m, struct bd_buf *out,
                    const uint8_t *body, size_t len)
{
    static const struct bd_opts none;
    /* No opts and empty opts decode alike; encode both shapes. */
    const struct bd_opts *opts =
        memcmp(&m->opts, &none, sizeof(none)) == 0 && (m->req_id & 1) ? NULL
                                                                        : &m->opts;
    int rc = 0;

    switch (m->type) {
    case BD_MSG_HELLO: {
        char *name = cstr(m->name, m->name_len);

        if (name == NULL)
            return 1;
        rc = bd_msg_encode_hello(out, m->req_id, m->version, name);
        free(name);
        break;
    }
    case BD_MSG_LOAD:
    case BD_MSG_SEND:
        rc = bd_msg_encode_item(out, m->type, m->req_id, m->key, m->key_len,
                                m->payload, m->payload_len, opts);
        break;
    case BD_MSG_LOAD_MANY:
    case BD_MSG_SEND_MANY: {
        const void **p = calloc(m->nitems, sizeof(*p));
        size_t *l = calloc(m->nitems, sizeof(*l));

        if (p == NULL || l == NULL)
            abort();
        for (uint32_t i = 0; i < m->nitems; i++) {
            p[i] = raw_ptr(&m->items[i]);
            l[i] = raw_len(&m->items[i]);
        }
        rc = bd_msg_encode_many(out, m->type, m->req_id, m->key, m->key_len,
                                p, l, m->nitems, opts);
        free(p);
        free(l);
        break;
    }
    case BD_MSG_CONTROL: {
        char *cmd = cstr(m->name, m->name_len);
        char **kv;
        size_t n;
        int ok = control_kv(m->args, &kv, &n) == 0 && cmd != NULL;

        if (ok)
            rc = bd_msg_encode_control(out, m->req_id, cmd,
                                       (const char *const *)kv, n);
        free(cmd);
        free_kv(kv, n);
        if (!ok)
            return 1;
        break;
    }
    default:
        fail("bd_msg_decode returned OK for an unknown type", body, len);
    }
    if (rc != 0)
        fail("an encoder failed on a decoded request", body, len);
    return 0;
}

static void roundtrip_request(const struct bd_msg *m, const uint8_t *body,
                              size_t len)
{
    struct bd_buf out;
    msgpack_zone zone;
    struct bd_msg m2;
    char err[256];
    const uint8_t *b2;
    size_t l2;

    bd_buf_init(&out);
    if (reencode(m, &out, body, len) != 0) {
        bd_buf_destroy(&out);
        return;
    }
    b2 = reframe(&out, &l2);
    msgpack_zone_init(&zone, 1024);
    if (bd_msg_decode(b2, l2, &zone, &m2, err, sizeof(err)) != BATCHD_OK) {
        fprintf(stderr, "fuzz_msg: re-decode: %s\n", err);
        fail("a re-encoded request does not decode", body, len);
    }
    if (m2.type != m->type || m2.req_id != m->req_id || !m2.has_id)
        fail("type or req_id changed in a round trip", body, len);
    switch (m->type) {
    case BD_MSG_HELLO:
        if (m2.version != m->version ||
            !same_bytes(m2.name, m2.name_len, m->name, m->name_len))
            fail("HELLO changed in a round trip", body, len);
        break;
    case BD_MSG_LOAD:
    case BD_MSG_SEND:
        if (!same_bytes(m2.key, m2.key_len, m->key, m->key_len) ||
            !same_bytes(m2.payload, m2.payload_len, m->payload, m->payload_len))
            fail("key or payload changed in a round trip", body, len);
        if (!same_opts(&m2.opts, &m->opts))
            fail("opts changed in a round trip", body, len);
        break;
    case BD_MSG_LOAD_MANY:
    case BD_MSG_SEND_MANY:
        if (!same_bytes(m2.key, m2.key_len, m->key, m->key_len) ||
            m2.nitems != m->nitems)
            fail("key or item count changed in a round trip", body, len);
        for (uint32_t i = 0; i < m->nitems; i++)
            if (!same_bytes(raw_ptr(&m2.items[i]), raw_len(&m2.items[i]),
                            raw_ptr(&m->items[i]), raw_len(&m->items[i])))
                fail("an item changed in a round trip", body, len);
        if (!same_opts(&m2.opts, &m->opts))
            fail("opts changed in a round trip", body, len);
        break;
    case BD_MSG_CONTROL:
        if (!same_bytes(m2.name, m2.name_len, m->name, m->name_len) ||
            !same_args(m2.args, m->args))
            fail("CONTROL changed in a round trip", body, len);
        break;
    }
    msgpack_zone_destroy(&zone);
    bd_buf_destroy(&out);
}

/* What a decoded request must look like, whatever the input was. */
static void check_request(const struct bd_msg *m, const uint8_t *body,
                          size_t len)
{
    if (!m->has_id)
        fail("decoded without a req_id", body, len);
    if (m->type == BD_MSG_LOAD || m->type == BD_MSG_SEND ||
        m->type == BD_MSG_LOAD_MANY || m->type == BD_MSG_SEND_MANY) {
        if (m->key == NULL || bd_msg_check_key(m->key, m->key_len) != NULL)
            fail("a request decoded with a bad key", body, len);
        if ((m->type == BD_MSG_LOAD_MANY || m->type == BD_MSG_SEND_MANY) &&
            (m->nitems == 0 || m->nitems > BD_MANY_MAX ||
             m->nitems - 1 > UINT64_MAX - m->req_id))
            fail("a *_MANY decoded with a bad item count", body, len);
        if (m->opts.trace_len > BD_TRACE_MAX || m->opts.dedup_len > BD_DEDUP_MAX ||
            (m->opts.has_priority && m->opts.priority > 255) ||
            (m->opts.has_deadline && m->opts.deadline_ms == 0))
            fail("opts decoded out of range", body, len);
    }
    if (m->type == BD_MSG_HELLO && m->version != BD_PROTO_VERSION)
        fail("HELLO of another version decoded as OK", body, len);
}

static void roundtrip_reply(const struct bd_reply_msg *r, const uint8_t *body,
                            size_t len)
{
    struct bd_buf out;
    msgpack_zone zone;
    struct bd_reply_msg r2;
    char err[256];
    const uint8_t *b2;
    size_t l2;

#ifdef BD_STATUS_WIRE_MAX
    /* Newer status codes are passed on, up to the wire maximum. */
    if (r->status < 0 || r->status > BD_STATUS_WIRE_MAX)
#else
    if (r->status < 0 || r->status >= BATCHD_STATUS_COUNT)
#endif
        fail("a reply decoded with a status out of range", body, len);
    bd_buf_init(&out);
    if (bd_msg_encode_reply(&out, r->type, r->req_id, r->status, r->body,
                            r->body_len, 0) != 0)
        fail("bd_msg_encode_reply failed", body, len);
    b2 = reframe(&out, &l2);
    msgpack_zone_init(&zone, 1024);
    if (bd_msg_decode_reply(b2, l2, &zone, &r2, err, sizeof(err)) != 0) {
        fprintf(stderr, "fuzz_msg: re-decode reply: %s\n", err);
        fail("a re-encoded reply does not decode", body, len);
    }
    if (r2.type != r->type || r2.req_id != r->req_id || r2.status != r->status ||
        (r2.body == NULL) != (r->body == NULL) ||
        !same_bytes(r2.body, r2.body_len, r->body, r->body_len))
        fail("a reply changed in a round trip", body, len);
    msgpack_zone_destroy(&zone);
    bd_buf_destroy(&out);
}

/* The fast decoder may take a body only when the full one agrees. */
static void check_fast(const uint8_t *body, size_t len)
{
    struct bd_msg_item f;
    struct bd_msg m;
    msgpack_zone zone;
    const char *why;
    char err[256];

    if (!bd_msg_decode_fast(body, len, &f))
        return;
    if (bd_frame_check(body, len, &why) != 0)
        fail("the fast decoder took a body the walk refuses", body, len);
    msgpack_zone_init(&zone, 1024);
    if (bd_msg_decode(body, len, &zone, &m, err, sizeof(err)) != BATCHD_OK)
        fail("the fast decoder took a body the full decoder refuses", body, len);
    if (m.type != f.type || m.req_id != f.req_id ||
        !same_bytes(m.key, m.key_len, f.key, f.key_len) ||
        !same_bytes(m.payload, m.payload_len, f.payload, f.payload_len))
        fail("the fast and the full decoder disagree", body, len);
    if (m.opts.has_deadline || m.opts.has_priority || m.opts.dedup_id != NULL ||
        m.opts.trace != NULL)
        fail("the fast decoder took a request with options", body, len);
    msgpack_zone_destroy(&zone);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *body;
    size_t len;
    const char *why;
    msgpack_zone zone;
    struct bd_msg m;
    struct bd_reply_msg r;
    char err[256];
    int st;

    if (size < BD_FRAME_HDR)
        return 0;
    body = data + BD_FRAME_HDR;
    if (bd_frame_peek(data, size, BD_FRAME_DEFAULT_MAX, &len) != BD_FRAME_OK ||
        len > size - BD_FRAME_HDR)
        len = size - BD_FRAME_HDR;
    check_fast(body, len);
    if (bd_frame_check(body, len, &why) != 0)
        return 0;

    msgpack_zone_init(&zone, 1024);
    err[0] = '\0';
    st = bd_msg_decode(body, len, &zone, &m, err, sizeof(err));
    if (st == BATCHD_OK) {
        check_request(&m, body, len);
        roundtrip_request(&m, body, len);
    } else {
        if (st != BATCHD_BAD_REQUEST && st != BATCHD_UNSUPPORTED)
            fail("bd_msg_decode returned an unexpected status", body, len);
        if (err[0] == '\0' || memchr(err, '\0', sizeof(err)) == NULL)
            fail("a refused request has no reason", body, len);
    }
    msgpack_zone_clear(&zone);
    err[0] = '\0';
    if (bd_msg_decode_reply(body, len, &zone, &r, err, sizeof(err)) == 0)
        roundtrip_reply(&r, body, len);
    else if (err[0] == '\0')
        fail("a refused reply has no reason", body, len);
    msgpack_zone_destroy(&zone);
    return 0;
}
