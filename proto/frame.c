/*
 * frame.c - length prefix and the bounded msgpack walk (see frame.h).
 */
#include <string.h>

#include "frame.h"

/*
 * Classify the header at p (with left bytes available, left >= 1).
 * Sets *hdr to the header size, *skip to the payload bytes that follow,
 * *children to the number of nested objects (2 per map pair).
 * Returns 0, or -1 with *err.
 */
static int walk_header(const uint8_t *p, size_t left, size_t *hdr,
                       uint64_t *skip, uint64_t *children, const char **err)
{
    uint8_t c = p[0];
    unsigned lenbytes = 0;
    int kind = 0; /* 0 scalar, 1 raw (skip=len), 2 array, 3 map, 4 ext */

    *skip = 0;
    *children = 0;
    *hdr = 1;
    if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3)
        return 0;
    if (c >= 0x80 && c <= 0x8f) {
        *children = 2u * (c & 0x0f);
        return 0;
    }
    if (c >= 0x90 && c <= 0x9f) {
        *children = c & 0x0f;
        return 0;
    }
    if (c >= 0xa0 && c <= 0xbf) {
        *skip = c & 0x1f;
        return 0;
    }
    switch (c) {
    case 0xc4: lenbytes = 1; kind = 1; break;         /* bin8 */
    case 0xc5: lenbytes = 2; kind = 1; break;         /* bin16 */
    case 0xc6: lenbytes = 4; kind = 1; break;         /* bin32 */
    case 0xc7: lenbytes = 1; kind = 4; break;         /* ext8 */
    case 0xc8: lenbytes = 2; kind = 4; break;         /* ext16 */
    case 0xc9: lenbytes = 4; kind = 4; break;         /* ext32 */
    case 0xca: *skip = 4; return 0;                   /* float32 */
    case 0xcb: *skip = 8; return 0;                   /* float64 */
    case 0xcc: case 0xd0: *skip = 1; return 0;
    case 0xcd: case 0xd1: *skip = 2; return 0;
    case 0xce: case 0xd2: *skip = 4; return 0;
    case 0xcf: case 0xd3: *skip = 8; return 0;
    case 0xd4: *skip = 2; return 0;                   /* fixext1: type + 1 */
    case 0xd5: *skip = 3; return 0;
    case 0xd6: *skip = 5; return 0;
    case 0xd7: *skip = 9; return 0;
    case 0xd8: *skip = 17; return 0;
    case 0xd9: lenbytes = 1; kind = 1; break;         /* str8 */
    case 0xda: lenbytes = 2; kind = 1; break;         /* str16 */
    case 0xdb: lenbytes = 4; kind = 1; break;         /* str32 */
    case 0xdc: lenbytes = 2; kind = 2; break;         /* array16 */
    case 0xdd: lenbytes = 4; kind = 2; break;         /* array32 */
    case 0xde: lenbytes = 2; kind = 3; break;         /* map16 */
    case 0xdf: lenbytes = 4; kind = 3; break;         /* map32 */
    default:
        *err = "invalid msgpack type byte 0xc1";
        return -1;
    }
    if (left < 1 + lenbytes) {
        *err = "truncated msgpack header";
        return -1;
    }
    *hdr = 1 + lenbytes;
    if (kind == 1)
        *skip = bd_get_be(p + 1, lenbytes);
    else if (kind == 4)
        *skip = bd_get_be(p + 1, lenbytes) + 1; /* the ext type byte */
    else if (kind == 2)
        *children = bd_get_be(p + 1, lenbytes);
    else
        *children = 2 * bd_get_be(p + 1, lenbytes);
    return 0;
}

/* fixmap, fixarray, array16/32, map16/32. An empty one still sits one
 * level deeper than its parent, so it counts against the depth limit. */
static int is_container(uint8_t c)
{
    return (c >= 0x80 && c <= 0x9f) || (c >= 0xdc && c <= 0xdf);
}

int bd_frame_check(const uint8_t *body, size_t len, const char **err)
{
    uint64_t pending[BD_FRAME_MAX_DEPTH + 1]; /* objects still owed per level */
    int depth = 0;
    size_t pos = 0;

    pending[0] = 1;
    for (;;) {
        size_t hdr;
        uint64_t skip, children;
        uint8_t c;

        while (depth > 0 && pending[depth] == 0)
            depth--;
        if (pending[depth] == 0)
            break;
        if (pos >= len) {
            *err = "truncated msgpack object";
            return -1;
        }
        c = body[pos];
        if (walk_header(body + pos, len - pos, &hdr, &skip, &children,
                        err) != 0)
            return -1;
        pending[depth]--;
        pos += hdr;
        if (skip > len - pos) {
            *err = "msgpack length runs past the end of the frame";
            return -1;
        }
        pos += (size_t)skip;
        if (!is_container(c))
            continue;
        /* Every child takes at least one byte: a count larger than the
         * bytes left is a lie, refused before anyone allocates for it. */
        if (children > len - pos) {
            *err = "msgpack container count exceeds the frame";
            return -1;
        }
        if (depth + 1 > BD_FRAME_MAX_DEPTH) {
            *err = "msgpack nesting deeper than 8";
            return -1;
        }
        pending[++depth] = children;
    }
    if (pos != len) {
        *err = "trailing bytes after the msgpack object";
        return -1;
    }
    return 0;
}

int bd_frame_begin(struct bd_buf *b, size_t *mark)
{
    static const uint8_t zero[BD_FRAME_HDR];

    *mark = b->len;
    return bd_buf_append(b, zero, sizeof(zero));
}

void bd_frame_end(struct bd_buf *b, size_t mark)
{
    bd_put_be(bd_buf_head(b) + mark, (uint32_t)(b->len - mark - BD_FRAME_HDR),
              BD_FRAME_HDR);
}
