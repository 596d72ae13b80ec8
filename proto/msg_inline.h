/*
 * msg_inline.h - the two per-item codecs, inline: the fast decoder of a
 * plain LOAD/SEND (bd_msg_decode_fast) and the reply encoder
 * (bd_msg_encode_reply). msg.c exports them as functions; the daemon's
 * request and reply paths include this to save a call per item.
 */
#ifndef BD_MSG_INLINE_H
#define BD_MSG_INLINE_H

#include <stdint.h>
#include <string.h>

#include "buf.h"
#include "bytes.h"
#include "frame.h"
#include "msg.h"

/* Smallest msgpack encoding of v, as msgpack-c's packer writes it. */
static inline uint8_t *put_uint(uint8_t *p, uint64_t v)
{
    unsigned n;

    if (v < 128) {
        *p++ = (uint8_t)v;
        return p;
    }
    if (v < 256) {
        *p++ = 0xcc;
        n = 1;
    } else if (v < 65536) {
        *p++ = 0xcd;
        n = 2;
    } else if (v <= UINT32_MAX) {
        *p++ = 0xce;
        n = 4;
    } else {
        *p++ = 0xcf;
        n = 8;
    }
    return bd_put_be(p, v, n);
}

static inline uint8_t *put_raw(uint8_t *p, const void *data, size_t n, int is_str)
{
    unsigned lb;

    if (is_str && n < 32) {
        *p++ = (uint8_t)(0xa0 | n);
        lb = 0;
    } else if (n < 256) {
        *p++ = is_str ? 0xd9 : 0xc4;
        lb = 1;
    } else if (n < 65536) {
        *p++ = is_str ? 0xda : 0xc5;
        lb = 2;
    } else {
        *p++ = is_str ? 0xdb : 0xc6;
        lb = 4;
    }
    p = bd_put_be(p, n, lb);
    if (n)
        memcpy(p, data, n);
    return p + n;
}

/*
 * Replies are the daemon's hottest output, one per item, and always the
 * same shape, so they are written straight into the buffer instead of
 * through the packer's per-element callback. The bytes are the ones
 * msgpack-c would write (check_fastpath compares them). Inline here so
 * that the daemon's reply path (conn.c) needs no call per item;
 * bd_msg_encode_reply is the same code for everyone else.
 */
static inline int bd_msg_put_reply(struct bd_buf *out, int type,
                                   uint64_t req_id, int status,
                                   const void *body, size_t body_len,
                                   int body_is_str)
{
    /* length prefix, fixarray, type, req_id, status, body header */
    size_t max = BD_FRAME_HDR + 1 + 9 + 9 + 9 + 5 + body_len;
    uint8_t *start, *p;
    uint32_t n;

    if (body_len > UINT32_MAX - 64 || bd_buf_reserve(out, max) != 0)
        return -1;
    start = p = bd_buf_tail(out);
    p += BD_FRAME_HDR;
    *p++ = 0x94;
    p = put_uint(p, (uint64_t)(uint32_t)type);
    p = put_uint(p, req_id);
    p = put_uint(p, (uint64_t)(uint32_t)status);
    if (body == NULL)
        *p++ = 0xc0;
    else
        p = put_raw(p, body, body_len, body_is_str);
    n = (uint32_t)(p - start - BD_FRAME_HDR);
    bd_put_be(start, n, 4);
    out->len += (size_t)(p - start);
    return 0;
}

/* ---- the fast path for plain LOAD/SEND -------------------------------- */

/* Read a msgpack unsigned int at p (end bounds it). */
static inline const uint8_t *get_uint(const uint8_t *p, const uint8_t *end,
                                      uint64_t *v)
{
    int n;

    if (p >= end)
        return NULL;
    if (*p < 0x80) {
        *v = *p;
        return p + 1;
    }
    switch (*p) {
    case 0xcc: n = 1; break;
    case 0xcd: n = 2; break;
    case 0xce: n = 4; break;
    case 0xcf: n = 8; break;
    default: return NULL;
    }
    if (end - p - 1 < n)
        return NULL;
    *v = bd_get_be(p + 1, n);
    return p + 1 + n;
}

/* Read a str or bin header at p; *len is checked against end. */
static inline const uint8_t *get_raw(const uint8_t *p, const uint8_t *end,
                                     int want_str_only, size_t *len)
{
    int lb;

    if (p >= end)
        return NULL;
    if ((*p & 0xe0) == 0xa0) {
        *len = *p & 0x1f;
        lb = 0;
    } else {
        switch (*p) {
        case 0xd9: lb = 1; break;
        case 0xda: lb = 2; break;
        case 0xdb: lb = 4; break;
        case 0xc4: lb = want_str_only ? -1 : 1; break;
        case 0xc5: lb = want_str_only ? -1 : 2; break;
        case 0xc6: lb = want_str_only ? -1 : 4; break;
        default: return NULL;
        }
        if (lb < 0 || end - p - 1 < lb)
            return NULL;
        *len = (size_t)bd_get_be(p + 1, lb);
    }
    p += 1 + lb;
    if ((size_t)(end - p) < *len)
        return NULL;
    return p;
}

/* bd_msg_decode_fast (see msg.h), inline for the daemon's request loop. */
static inline int bd_msg_get_item(const uint8_t *body, size_t len,
                                  struct bd_msg_item *f)
{
    const uint8_t *p = body, *end = body + len;
    uint64_t type, id;
    size_t klen, plen;
    const uint8_t *key, *payload;

    if (len < 5 || (p[0] != 0x94 && p[0] != 0x95))
        return 0;
    if ((p = get_uint(p + 1, end, &type)) == NULL ||
        (type != BD_MSG_LOAD && type != BD_MSG_SEND) ||
        (p = get_uint(p, end, &id)) == NULL ||
        (key = get_raw(p, end, 1, &klen)) == NULL ||
        (payload = get_raw(key + klen, end, 0, &plen)) == NULL)
        return 0;
    /* The usual plain ASCII key settled inline; others get the full check. */
    if (!(klen > 0 && klen <= BD_KEY_MAX && bd_bytes_plain_ascii(key, klen)) &&
        bd_msg_check_key((const char *)key, klen) != NULL)
        return 0;
    p = payload + plen;
    /* opts: only "none" (nil or an empty map) takes the fast path */
    if (body[0] == 0x95 && p < end && (*p == 0xc0 || *p == 0x80))
        p++;
    else if (body[0] == 0x95)
        return 0;
    if (p != end)
        return 0;
    f->type = (int)type;
    f->req_id = id;
    f->key = (const char *)key;
    f->key_len = klen;
    f->payload = payload;
    f->payload_len = plen;
    return 1;
}

#endif
