/*
 * msg.c - batchd message encoding and decoding (see msg.h).
 */
#include <endian.h>
#include <stdio.h>
#include <string.h>

#include "bytes.h"
#include "enc.h"
#include "frame.h"
#include "msg.h"
#include "msg_inline.h"

/* n lowercase hex digits at s, not all of them '0' when nonzero. */
static int hex_run(const char *s, size_t n, int nonzero)
{
    int any = 0;

    for (size_t i = 0; i < n; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
        any |= s[i] != '0';
    }
    return any || !nonzero;
}

int bd_trace_valid(const char *s, size_t n)
{
    /* version "-" trace-id "-" parent-id "-" flags: 55 bytes; a later
     * version may append "-..." fields, version ff is invalid. */
    if (n < 55 || (n > 55 && (s[0] == '0' && s[1] == '0')) ||
        (n > 55 && s[55] != '-'))
        return 0;
    return hex_run(s, 2, 0) && !(s[0] == 'f' && s[1] == 'f') &&
           s[2] == '-' && hex_run(s + 3, 32, 1) && s[35] == '-' &&
           hex_run(s + 36, 16, 1) && s[52] == '-' && hex_run(s + 53, 2, 0);
}

static const char *const status_names[BATCHD_STATUS_COUNT] = {
    [BATCHD_OK] = "OK",
    [BATCHD_ACCEPTED] = "ACCEPTED",
    [BATCHD_FAIL] = "FAIL",
    [BATCHD_RETRY_EXHAUSTED] = "RETRY_EXHAUSTED",
    [BATCHD_OVERLOADED] = "OVERLOADED",
    [BATCHD_DEADLINE_EXCEEDED] = "DEADLINE_EXCEEDED",
    [BATCHD_SINK_TIMEOUT] = "SINK_TIMEOUT",
    [BATCHD_SINK_UNAVAILABLE] = "SINK_UNAVAILABLE",
    [BATCHD_CANCELLED] = "CANCELLED",
    [BATCHD_SHUTTING_DOWN] = "SHUTTING_DOWN",
    [BATCHD_BAD_REQUEST] = "BAD_REQUEST",
    [BATCHD_FRAME_TOO_LARGE] = "FRAME_TOO_LARGE",
    [BATCHD_UNSUPPORTED] = "UNSUPPORTED",
    [BATCHD_NO_ROUTE] = "NO_ROUTE",
    [BATCHD_PERMISSION_DENIED] = "PERMISSION_DENIED",
    [BATCHD_TOO_MANY_CONNECTIONS] = "TOO_MANY_CONNECTIONS",
};

const char *bd_status_name(int status)
{
    if (status < 0 || status >= BATCHD_STATUS_COUNT)
        return "UNKNOWN";
    return status_names[status];
}

/* ---- decoding ---------------------------------------------------------- */

static int bad(char *err, size_t errlen, const char *field, const char *why)
{
    snprintf(err, errlen, "%s: %s", field, why);
    return BATCHD_BAD_REQUEST;
}

/* UTF-8 check per RFC 3629: no overlongs, no surrogates, max U+10FFFF. */
static int utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;

    while (i < n) {
        unsigned char c = s[i];
        size_t k;
        uint32_t cp;

        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            k = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            k = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            k = 3;
            cp = c & 0x07;
        } else {
            return 0;
        }
        if (n - i <= k)
            return 0;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xc0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + j] & 0x3f);
        }
        if ((k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000) ||
            cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += k + 1;
    }
    return 1;
}

const char *bd_msg_check_key(const char *key, size_t len)
{
    if (len == 0)
        return "must not be empty";
    if (len > BD_KEY_MAX)
        return "longer than 256 bytes";
    /* Most keys are plain ASCII: one pass settles them. */
    if (bd_bytes_plain_ascii(key, len))
        return NULL;
    if (memchr(key, '\0', len) != NULL)
        return "contains a NUL byte";
    if (!utf8_valid((const unsigned char *)key, len))
        return "is not valid UTF-8";
    return NULL;
}

static int is_raw(const msgpack_object *o)
{
    return o->type == MSGPACK_OBJECT_BIN || o->type == MSGPACK_OBJECT_STR;
}

/* str and bin keep their bytes in the same place in msgpack_object. */
static const uint8_t *raw_ptr(const msgpack_object *o)
{
    return o->type == MSGPACK_OBJECT_BIN ? (const uint8_t *)o->via.bin.ptr
                                         : (const uint8_t *)o->via.str.ptr;
}

static size_t raw_len(const msgpack_object *o)
{
    return o->type == MSGPACK_OBJECT_BIN ? o->via.bin.size : o->via.str.size;
}

static int decode_opts(const msgpack_object *o, struct bd_opts *opts,
                       char *err, size_t errlen)
{
    memset(opts, 0, sizeof(*opts));
    if (o->type == MSGPACK_OBJECT_NIL)
        return BATCHD_OK;
    if (o->type != MSGPACK_OBJECT_MAP)
        return bad(err, errlen, "opts", "must be a map or nil");
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const msgpack_object *k = &o->via.map.ptr[i].key;
        const msgpack_object *v = &o->via.map.ptr[i].val;
        char name[32];

        if (k->type != MSGPACK_OBJECT_STR || k->via.str.size >= sizeof(name))
            return bad(err, errlen, "opts", "keys must be short strings");
        /* Printable ASCII only: the name is echoed in a str reply, and a
         * NUL must not let "deadline_ms\0x" pass for deadline_ms. */
        for (uint32_t j = 0; j < k->via.str.size; j++) {
            unsigned char ch = (unsigned char)k->via.str.ptr[j];

            name[j] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
        }
        name[k->via.str.size] = '\0';
        if (strcmp(name, "deadline_ms") == 0) {
            if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
                v->via.u64 == 0 || v->via.u64 > UINT32_MAX)
                return bad(err, errlen, "opts.deadline_ms",
                           "must be an integer in 1..4294967295");
            opts->has_deadline = 1;
            opts->deadline_ms = v->via.u64;
        } else if (strcmp(name, "priority") == 0) {
            if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER || v->via.u64 > 255)
                return bad(err, errlen, "opts.priority",
                           "must be an integer in 0..255");
            opts->has_priority = 1;
            opts->priority = (uint32_t)v->via.u64;
        } else if (strcmp(name, "dedup_id") == 0) {
            if (!is_raw(v) || raw_len(v) == 0 || raw_len(v) > BD_DEDUP_MAX)
                return bad(err, errlen, "opts.dedup_id",
                           "must be a str or bin of 1..256 bytes");
            opts->dedup_id = (const char *)raw_ptr(v);
            opts->dedup_len = raw_len(v);
        } else if (strcmp(name, "trace") == 0) {
            if (v->type != MSGPACK_OBJECT_STR || v->via.str.size > BD_TRACE_MAX)
                return bad(err, errlen, "opts.trace",
                           "must be a str of at most 128 bytes");
            if (v->via.str.size > 0 &&
                !bd_trace_valid(v->via.str.ptr, v->via.str.size))
                return bad(err, errlen, "opts.trace",
                           "must be a W3C traceparent "
                           "(00-<32 hex>-<16 hex>-<2 hex>)");
            /* An empty str is the same as no trace. */
            opts->trace = v->via.str.size ? v->via.str.ptr : NULL;
            opts->trace_len = v->via.str.size;
        } else {
            snprintf(err, errlen, "opts: unknown option '%s'", name);
            return BATCHD_BAD_REQUEST;
        }
    }
    return BATCHD_OK;
}

static int decode_key(const msgpack_object *o, struct bd_msg *m, char *err,
                      size_t errlen)
{
    const char *why;

    if (o->type != MSGPACK_OBJECT_STR)
        return bad(err, errlen, "key", "must be a str");
    why = bd_msg_check_key(o->via.str.ptr, o->via.str.size);
    if (why != NULL)
        return bad(err, errlen, "key", why);
    m->key = o->via.str.ptr;
    m->key_len = o->via.str.size;
    return BATCHD_OK;
}

static int decode_items(const msgpack_object *a, size_t n, struct bd_msg *m,
                        char *err, size_t errlen)
{
    int rc;

    if (n < 4 || n > 5)
        return bad(err, errlen, "request", "must have 4 or 5 elements");
    /* Count the items first, so that a request refused as a whole can
     * still be answered once per item id. */
    if ((m->type == BD_MSG_LOAD_MANY || m->type == BD_MSG_SEND_MANY) &&
        a[3].type == MSGPACK_OBJECT_ARRAY && a[3].via.array.size > 0 &&
        a[3].via.array.size <= BD_MANY_MAX &&
        a[3].via.array.size - 1 <= UINT64_MAX - m->req_id)
        m->fanout = a[3].via.array.size;
    rc = decode_key(&a[2], m, err, errlen);
    if (rc != BATCHD_OK)
        return rc;
    if (m->type == BD_MSG_LOAD || m->type == BD_MSG_SEND) {
        if (!is_raw(&a[3]))
            return bad(err, errlen, "payload", "must be a bin or str");
        m->payload = raw_ptr(&a[3]);
        m->payload_len = raw_len(&a[3]);
    } else {
        const msgpack_object *p = &a[3];

        if (p->type != MSGPACK_OBJECT_ARRAY)
            return bad(err, errlen, "payloads", "must be an array");
        if (p->via.array.size == 0 || p->via.array.size > BD_MANY_MAX)
            return bad(err, errlen, "payloads", "must hold 1..65536 items");
        for (uint32_t i = 0; i < p->via.array.size; i++)
            if (!is_raw(&p->via.array.ptr[i]))
                return bad(err, errlen, "payloads", "items must be bin or str");
        if (p->via.array.size - 1 > UINT64_MAX - m->req_id)
            return bad(err, errlen, "req_id", "too large for this many items");
        m->items = p->via.array.ptr;
        m->nitems = p->via.array.size;
    }
    if (n == 5)
        return decode_opts(&a[4], &m->opts, err, errlen);
    memset(&m->opts, 0, sizeof(m->opts));
    return BATCHD_OK;
}

static int decode_hello(const msgpack_object *a, size_t n, struct bd_msg *m,
                        char *err, size_t errlen)
{
    if (n != 4)
        return bad(err, errlen, "HELLO", "must have 4 elements");
    if (a[2].type != MSGPACK_OBJECT_POSITIVE_INTEGER || a[2].via.u64 > UINT32_MAX)
        return bad(err, errlen, "version", "must be a positive integer");
    if (a[3].type != MSGPACK_OBJECT_STR || a[3].via.str.size > BD_NAME_MAX)
        return bad(err, errlen, "client_name", "must be a str of at most 128 bytes");
    m->version = (uint32_t)a[2].via.u64;
    m->name = a[3].via.str.ptr;
    m->name_len = a[3].via.str.size;
    if (m->version != BD_PROTO_VERSION) {
        snprintf(err, errlen, "version: protocol %u not supported, daemon speaks %d",
                 m->version, BD_PROTO_VERSION);
        return BATCHD_UNSUPPORTED;
    }
    return BATCHD_OK;
}

static int decode_control(const msgpack_object *a, size_t n, struct bd_msg *m,
                          char *err, size_t errlen)
{
    if (n < 3 || n > 4)
        return bad(err, errlen, "CONTROL", "must have 3 or 4 elements");
    if (a[2].type != MSGPACK_OBJECT_STR || a[2].via.str.size == 0 ||
        a[2].via.str.size > BD_NAME_MAX)
        return bad(err, errlen, "command", "must be a str of 1..128 bytes");
    m->name = a[2].via.str.ptr;
    m->name_len = a[2].via.str.size;
    if (n == 4 && a[3].type != MSGPACK_OBJECT_NIL) {
        if (a[3].type != MSGPACK_OBJECT_MAP)
            return bad(err, errlen, "args", "must be a map or nil");
        m->args = &a[3];
    }
    return BATCHD_OK;
}

static int unpack(const uint8_t *body, size_t len, msgpack_zone *zone,
                  msgpack_object *obj)
{
    size_t off = 0;

    /* The body passed bd_frame_check, so declared sizes are honest; NOMEM
     * here still means hostile input, never a reason to abort. */
    if (msgpack_unpack((const char *)body, len, &off, zone, obj) !=
        MSGPACK_UNPACK_SUCCESS || off != len)
        return -1;
    return 0;
}

int bd_msg_decode(const uint8_t *body, size_t len, msgpack_zone *zone,
                  struct bd_msg *m, char *err, size_t errlen)
{
    msgpack_object obj;
    const msgpack_object *a;
    size_t n;

    memset(m, 0, sizeof(*m));
    m->type = -1;
    m->fanout = 1;
    if (unpack(body, len, zone, &obj) != 0)
        return bad(err, errlen, "frame", "not one msgpack object");
    if (obj.type != MSGPACK_OBJECT_ARRAY || obj.via.array.size < 2)
        return bad(err, errlen, "request", "must be an array [type, req_id, ...]");
    a = obj.via.array.ptr;
    n = obj.via.array.size;
    if (a[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return bad(err, errlen, "req_id", "must be a non-negative integer");
    m->req_id = a[1].via.u64;
    m->has_id = 1;
    if (a[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return bad(err, errlen, "type", "must be a non-negative integer");
    m->type = a[0].via.u64 > 255 ? 255 : (int)a[0].via.u64;
    switch (m->type) {
    case BD_MSG_HELLO:
        return decode_hello(a, n, m, err, errlen);
    case BD_MSG_LOAD:
    case BD_MSG_SEND:
    case BD_MSG_LOAD_MANY:
    case BD_MSG_SEND_MANY:
        return decode_items(a, n, m, err, errlen);
    case BD_MSG_CONTROL:
        return decode_control(a, n, m, err, errlen);
    default:
        snprintf(err, errlen, "type: unknown message type %llu",
                 (unsigned long long)a[0].via.u64);
        return BATCHD_UNSUPPORTED;
    }
}

int bd_msg_decode_reply(const uint8_t *body, size_t len, msgpack_zone *zone,
                        struct bd_reply_msg *r, char *err, size_t errlen)
{
    msgpack_object obj;
    const msgpack_object *a;

    memset(r, 0, sizeof(*r));
    if (unpack(body, len, zone, &obj) != 0) {
        snprintf(err, errlen, "reply: not one msgpack object");
        return -1;
    }
    if (obj.type != MSGPACK_OBJECT_ARRAY || obj.via.array.size != 4) {
        snprintf(err, errlen, "reply: must be an array of 4 elements");
        return -1;
    }
    a = obj.via.array.ptr;
    if (a[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
        a[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
        a[2].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
        a[2].via.u64 > BD_STATUS_WIRE_MAX) {
        snprintf(err, errlen, "reply: type, req_id and status must be integers");
        return -1;
    }
    r->type = (int)(a[0].via.u64 & 0xff);
    r->req_id = a[1].via.u64;
    r->status = (int)a[2].via.u64;
    if (is_raw(&a[3])) {
        r->body = raw_ptr(&a[3]);
        r->body_len = raw_len(&a[3]);
    } else if (a[3].type != MSGPACK_OBJECT_NIL) {
        snprintf(err, errlen, "reply: body must be bin, str or nil");
        return -1;
    }
    return 0;
}

/* ---- encoding ---------------------------------------------------------- */

static void enc_opts(struct bd_enc *e, const struct bd_opts *o)
{
    size_t n = o->has_deadline + o->has_priority + (o->dedup_id != NULL) +
               (o->trace != NULL);

    BD_ENC(e, msgpack_pack_map(&e->pk, n));
    if (o->has_deadline) {
        bd_enc_str(e, "deadline_ms", 11);
        BD_ENC(e, msgpack_pack_uint64(&e->pk, o->deadline_ms));
    }
    if (o->has_priority) {
        bd_enc_str(e, "priority", 8);
        BD_ENC(e, msgpack_pack_uint32(&e->pk, o->priority));
    }
    if (o->dedup_id != NULL) {
        bd_enc_str(e, "dedup_id", 8);
        bd_enc_bin(e, o->dedup_id, o->dedup_len);
    }
    if (o->trace != NULL) {
        bd_enc_str(e, "trace", 5);
        bd_enc_str(e, o->trace, o->trace_len);
    }
}

static void enc_head(struct bd_enc *e, size_t n, int type, uint64_t req_id)
{
    BD_ENC(e, msgpack_pack_array(&e->pk, n));
    BD_ENC(e, msgpack_pack_uint32(&e->pk, (uint32_t)type));
    BD_ENC(e, msgpack_pack_uint64(&e->pk, req_id));
}

int bd_msg_encode_hello(struct bd_buf *out, uint64_t req_id, uint32_t version,
                        const char *name)
{
    struct bd_enc e;

    bd_enc_begin(&e, out);
    enc_head(&e, 4, BD_MSG_HELLO, req_id);
    BD_ENC(&e, msgpack_pack_uint32(&e.pk, version));
    bd_enc_str(&e, name, strlen(name));
    return bd_enc_end(&e);
}

int bd_msg_encode_item(struct bd_buf *out, int type, uint64_t req_id,
                       const char *key, size_t key_len, const void *payload,
                       size_t len, const struct bd_opts *opts)
{
    struct bd_enc e;

    bd_enc_begin(&e, out);
    enc_head(&e, opts ? 5 : 4, type, req_id);
    bd_enc_str(&e, key, key_len);
    bd_enc_bin(&e, payload, len);
    if (opts)
        enc_opts(&e, opts);
    return bd_enc_end(&e);
}

int bd_msg_encode_many(struct bd_buf *out, int type, uint64_t req_id,
                       const char *key, size_t key_len,
                       const void *const *payloads, const size_t *lens,
                       size_t n, const struct bd_opts *opts)
{
    struct bd_enc e;

    bd_enc_begin(&e, out);
    enc_head(&e, opts ? 5 : 4, type, req_id);
    bd_enc_str(&e, key, key_len);
    BD_ENC(&e, msgpack_pack_array(&e.pk, n));
    for (size_t i = 0; i < n; i++)
        bd_enc_bin(&e, payloads[i], lens[i]);
    if (opts)
        enc_opts(&e, opts);
    return bd_enc_end(&e);
}

int bd_msg_encode_control(struct bd_buf *out, uint64_t req_id, const char *cmd,
                          const char *const *kv, size_t nkv)
{
    struct bd_enc e;

    bd_enc_begin(&e, out);
    enc_head(&e, 4, BD_MSG_CONTROL, req_id);
    bd_enc_str(&e, cmd, strlen(cmd));
    if (nkv == 0) {
        BD_ENC(&e, msgpack_pack_nil(&e.pk));
    } else {
        BD_ENC(&e, msgpack_pack_map(&e.pk, nkv));
        for (size_t i = 0; i < 2 * nkv; i++)
            bd_enc_str(&e, kv[i], strlen(kv[i]));
    }
    return bd_enc_end(&e);
}

int bd_msg_encode_reply(struct bd_buf *out, int type, uint64_t req_id,
                        int status, const void *body, size_t body_len,
                        int body_is_str)
{
    return bd_msg_put_reply(out, type, req_id, status, body, body_len,
                            body_is_str);
}

/* ---- the fast path for plain LOAD/SEND -------------------------------- */

int bd_msg_decode_fast(const uint8_t *body, size_t len, struct bd_msg_item *f)
{
    return bd_msg_get_item(body, len, f);
}

void bd_msg_from_item(struct bd_msg *m, const struct bd_msg_item *f)
{
    memset(m, 0, sizeof(*m));
    m->type = f->type;
    m->req_id = f->req_id;
    m->has_id = 1;
    m->fanout = 1;
    m->key = f->key;
    m->key_len = f->key_len;
    m->payload = f->payload;
    m->payload_len = f->payload_len;
}
