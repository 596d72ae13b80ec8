/*
 * fuzz_frame.c - libFuzzer target for the framing layer (proto/frame.c).
 *
 * The input is a byte stream as it arrives on a socket: frames of a
 * 4-byte length and a body. Each frame goes through bd_frame_peek (with
 * the pre-HELLO and the default limit) and its body, or whatever part of
 * it the input holds, through bd_frame_check. The walk is then compared
 * with two oracles:
 *
 *   - ref_walk below, a plain recursive reading of the msgpack spec that
 *     says whether the body is exactly one object, how deep it nests,
 *     and the largest count it declares;
 *   - msgpack-c's msgpack_unpack, run whenever every declared count is
 *     within the bytes at hand (msgpack-c allocates for declared counts,
 *     see DESIGN section 8, so it is never handed a lying count here).
 *
 * Any disagreement aborts: a walk that accepts what msgpack-c rejects
 * lets hostile input through, and one that refuses a well-formed object
 * within the limits breaks honest clients.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Nesting msgpack-c handles (MSGPACK_EMBED_STACK_SIZE is 32); deeper
 * bodies are not compared with it. */
#define REF_MSGPACK_DEPTH 24
#define REF_STOP_DEPTH 40       /* ref_walk gives up below this */

enum ref_verdict {
    REF_OK = 0,               /* one complete object, maybe trailing bytes */
    REF_TRUNCATED = 1,        /* the object runs past the end */
    REF_INVALID = 2,          /* a 0xc1 byte */
    REF_TOO_DEEP = 3,         /* nesting past REF_STOP_DEPTH: not judged */
};

struct ref {
    const uint8_t *p;
    size_t len;
    size_t pos;
    int max_depth;            /* deepest container seen, top level = 1 */
    uint64_t max_count;       /* largest element count declared */
};

static uint64_t ref_be(const uint8_t *p, size_t n)
{
    uint64_t v = 0;

    for (size_t i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

static int ref_need(struct ref *r, uint64_t n)
{
    return n <= r->len - r->pos ? REF_OK : REF_TRUNCATED;
}

/* Read n-byte big-endian integer into *v; REF_TRUNCATED if short. */
static int ref_uint(struct ref *r, size_t n, uint64_t *v)
{
    if (ref_need(r, n) != REF_OK)
        return REF_TRUNCATED;
    *v = ref_be(r->p + r->pos, n);
    r->pos += n;
    return REF_OK;
}

static int ref_skip(struct ref *r, uint64_t n)
{
    if (ref_need(r, n) != REF_OK)
        return REF_TRUNCATED;
    r->pos += (size_t)n;
    return REF_OK;
}

static int ref_object(struct ref *r, int depth);

static int ref_container(struct ref *r, int depth, uint64_t n)
{
    if (depth + 1 > REF_STOP_DEPTH)
        return REF_TOO_DEEP;
    if (depth + 1 > r->max_depth)
        r->max_depth = depth + 1;
    if (n > r->max_count)
        r->max_count = n;
    for (uint64_t i = 0; i < n; i++) {
        int rc = ref_object(r, depth + 1);

        if (rc != REF_OK)
            return rc;
    }
    return REF_OK;
}

/* One object at r->pos, following the msgpack spec table by table. */
static int ref_object(struct ref *r, int depth)
{
    uint64_t n;
    uint8_t c;

    if (r->pos >= r->len)
        return REF_TRUNCATED;
    c = r->p[r->pos++];
    if (c <= 0x7f || c >= 0xe0)                       /* fixint */
        return REF_OK;
    if (c <= 0x8f)                                    /* fixmap */
        return ref_container(r, depth, 2u * (c & 0x0fu));
    if (c <= 0x9f)                                    /* fixarray */
        return ref_container(r, depth, c & 0x0fu);
    if (c <= 0xbf)                                    /* fixstr */
        return ref_skip(r, c & 0x1fu);
    switch (c) {
    case 0xc0: case 0xc2: case 0xc3:
        return REF_OK;
    case 0xc1:
        return REF_INVALID;
    case 0xc4: case 0xd9:
        return ref_uint(r, 1, &n) ? REF_TRUNCATED : ref_skip(r, n);
    case 0xc5: case 0xda:
        return ref_uint(r, 2, &n) ? REF_TRUNCATED : ref_skip(r, n);
    case 0xc6: case 0xdb:
        return ref_uint(r, 4, &n) ? REF_TRUNCATED : ref_skip(r, n);
    case 0xc7:
        return ref_uint(r, 1, &n) ? REF_TRUNCATED : ref_skip(r, n + 1);
    case 0xc8:
        return ref_uint(r, 2, &n) ? REF_TRUNCATED : ref_skip(r, n + 1);
    case 0xc9:
        return ref_uint(r, 4, &n) ? REF_TRUNCATED : ref_skip(r, n + 1);
    case 0xca: return ref_skip(r, 4);
    case 0xcb: return ref_skip(r, 8);
    case 0xcc: case 0xd0: return ref_skip(r, 1);
    case 0xcd: case 0xd1: return ref_skip(r, 2);
    case 0xce: case 0xd2: return ref_skip(r, 4);
    case 0xcf: case 0xd3: return ref_skip(r, 8);
    case 0xd4: return ref_skip(r, 2);
    case 0xd5: return ref_skip(r, 3);
    case 0xd6: return ref_skip(r, 5);
    case 0xd7: return ref_skip(r, 9);
    case 0xd8: return ref_skip(r, 17);
    case 0xdc:
        return ref_uint(r, 2, &n) ? REF_TRUNCATED : ref_container(r, depth, n);
    case 0xdd:
        return ref_uint(r, 4, &n) ? REF_TRUNCATED : ref_container(r, depth, n);
    case 0xde:
        return ref_uint(r, 2, &n) ? REF_TRUNCATED : ref_container(r, depth, 2 * n);
    case 0xdf:
        return ref_uint(r, 4, &n) ? REF_TRUNCATED : ref_container(r, depth, 2 * n);
    }
    abort(); /* every byte value is handled above */
}

static void fail(const char *what, const uint8_t *body, size_t len,
                 const char *err)
{
    fprintf(stderr, "fuzz_frame: %s (walk: %s), body of %zu bytes:",
            what, err ? err : "accepted", len);
    for (size_t i = 0; i < len && i < 64; i++)
        fprintf(stderr, " %02x", body[i]);
    fprintf(stderr, "%s\n", len > 64 ? " ..." : "");
    abort();
}

/* Compare the walk on body[0..len) with both oracles. */
static void check_body(const uint8_t *body, size_t len)
{
    struct ref r = {.p = body, .len = len};
    const char *err = NULL;
    int walk_ok = bd_frame_check(body, len, &err) == 0;
    int v = ref_object(&r, 0);
    int ref_ok = v == REF_OK && r.pos == len &&
                 r.max_depth <= BD_FRAME_MAX_DEPTH;

    if (!walk_ok && (err == NULL || err[0] == '\0'))
        fail("walk refused without a reason", body, len, err);
    if (v == REF_TOO_DEEP) {
        if (walk_ok)
            fail("walk accepted nesting deeper than 40", body, len, err);
        return;
    }
    if (walk_ok != ref_ok)
        fail(walk_ok ? "walk accepted a body the reference refuses"
                     : "walk refused a body the reference accepts",
             body, len, err);

    /* msgpack-c only when no count can make it allocate past the input,
     * and within the nesting its fixed stack takes. */
    if (r.max_count > len || r.max_depth > REF_MSGPACK_DEPTH)
        return;
    {
        msgpack_zone zone;
        msgpack_object obj;
        size_t off = 0;
        msgpack_unpack_return mrc;

        msgpack_zone_init(&zone, 256);
        mrc = msgpack_unpack((const char *)body, len, &off, &zone, &obj);
        msgpack_zone_destroy(&zone);
        if (walk_ok && (mrc != MSGPACK_UNPACK_SUCCESS || off != len))
            fail("walk accepted a body msgpack-c does not take whole",
                 body, len, err);
        if (v == REF_OK && r.pos == len && mrc != MSGPACK_UNPACK_SUCCESS)
            fail("msgpack-c refused a complete object", body, len, err);
        if (v == REF_OK && r.pos < len &&
            (mrc != MSGPACK_UNPACK_EXTRA_BYTES || off != r.pos))
            fail("msgpack-c disagrees about where the object ends",
                 body, len, err);
        /* msgpack-c says PARSE_ERROR rather than CONTINUE for an ext32
         * of length 0xffffffff (its length + 1 wraps to 0): both refuse. */
        if (v == REF_TRUNCATED && (mrc == MSGPACK_UNPACK_SUCCESS ||
                                   mrc == MSGPACK_UNPACK_EXTRA_BYTES))
            fail("msgpack-c took a truncated object", body, len, err);
        if (v == REF_INVALID && mrc != MSGPACK_UNPACK_PARSE_ERROR)
            fail("msgpack-c took a 0xc1 byte", body, len, err);
    }
}

/* bd_frame_peek must decide on the 4 length bytes alone. */
static int peek(const uint8_t *p, size_t avail, size_t max, size_t *body)
{
    uint32_t n;
    int rc;

    *body = (size_t)-1;
    rc = bd_frame_peek(p, avail, max, body);
    if (avail < BD_FRAME_HDR) {
        if (rc != BD_FRAME_NEED)
            abort();
        return rc;
    }
    n = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
    if (n == 0 || n > max) {
        if (rc != BD_FRAME_BAD_LENGTH)
            abort();
    } else if (rc != BD_FRAME_OK || *body != n) {
        abort();
    }
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t pos = 0;

    for (;;) {
        size_t body, small;
        int rc = peek(data + pos, size - pos, BD_FRAME_DEFAULT_MAX, &body);

        (void)peek(data + pos, size - pos, BD_FRAME_PRE_HELLO_MAX, &small);
        if (rc == BD_FRAME_NEED)
            break;
        pos += BD_FRAME_HDR;
        if (rc != BD_FRAME_OK || body > size - pos) {
            /* A bad length or a truncated body: walk what is there. */
            check_body(data + pos, size - pos);
            break;
        }
        check_body(data + pos, body);
        pos += body;
    }
    return 0;
}
