/*
 * frame.h - batchd framing: a 4-byte big-endian length, then exactly one
 * msgpack object of that length. No I/O here (like hiredis read.c):
 * callers feed bytes in and get verdicts out.
 */
#ifndef BD_FRAME_H
#define BD_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "bytes.h"

#define BD_FRAME_HDR 4                 /* bytes of the length prefix */
#define BD_FRAME_MAX_DEPTH 8           /* deepest container nesting accepted */
#define BD_FRAME_PRE_HELLO_MAX 4096    /* max body before HELLO */
#define BD_FRAME_DEFAULT_MAX (1u << 20) /* default max_frame */

enum bd_frame_rc {
    BD_FRAME_OK = 0,          /* length is valid; *body_len set */
    BD_FRAME_NEED = 1,        /* fewer than 4 bytes available */
    BD_FRAME_BAD_LENGTH = -1, /* 0, or more than max_frame */
};

/*
 * Read the length prefix at buf[0..avail). Decides on the 4 length bytes
 * alone, so a hostile length is refused before any body byte is awaited
 * or any memory is reserved for it.
 */
static inline int bd_frame_peek(const uint8_t *buf, size_t avail,
                                size_t max_frame, size_t *body_len)
{
    uint64_t n;

    if (avail < BD_FRAME_HDR)
        return BD_FRAME_NEED;
    n = bd_get_be(buf, BD_FRAME_HDR);
    if (n == 0 || n > max_frame)
        return BD_FRAME_BAD_LENGTH;
    *body_len = n;
    return BD_FRAME_OK;
}

/*
 * Walk the msgpack object in body[0..len) without allocating: every
 * container count and str/bin/ext length is checked against the bytes
 * left, depth is at most BD_FRAME_MAX_DEPTH, and the object must fill the
 * body exactly. Only a body that passes may be handed to msgpack-c,
 * which trusts declared counts. Returns 0, or -1 with *err pointed at a
 * static reason.
 */
int bd_frame_check(const uint8_t *body, size_t len, const char **err);

/*
 * Encoding: bd_frame_begin reserves the length prefix at the end of b and
 * returns its position in *mark; append the body; bd_frame_end writes the
 * length. Returns 0 or -1 (no memory).
 */
int bd_frame_begin(struct bd_buf *b, size_t *mark);
void bd_frame_end(struct bd_buf *b, size_t mark);

#endif
