/*
 * msg_put.h - the reply encoder, inline (see msg.h: bd_msg_encode_reply).
 * Only msg.c and the daemon's per-item reply path include this.
 */
#ifndef BD_MSG_PUT_H
#define BD_MSG_PUT_H

#include <endian.h>
#include <stdint.h>
#include <string.h>

#include "buf.h"
#include "frame.h"

/* The low nbytes (0, 1, 2, 4 or 8) of v, big-endian. */
static inline uint8_t *put_be(uint8_t *p, uint64_t v, unsigned nbytes)
{
    uint16_t v16;
    uint32_t v32;

    switch (nbytes) {
    case 0:
        break;
    case 1:
        *p = (uint8_t)v;
        break;
    case 2:
        v16 = htobe16((uint16_t)v);
        memcpy(p, &v16, 2);
        break;
    case 4:
        v32 = htobe32((uint32_t)v);
        memcpy(p, &v32, 4);
        break;
    default:
        v = htobe64(v);
        memcpy(p, &v, 8);
        break;
    }
    return p + nbytes;
}

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
    return put_be(p, v, n);
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
    p = put_be(p, n, lb);
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
    put_be(start, n, 4);
    out->len += (size_t)(p - start);
    return 0;
}

#endif
