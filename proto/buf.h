/*
 * buf.h - a growable byte buffer with a consumed prefix, used for
 * connection input/output and for encoding frames.
 */
#ifndef BD_BUF_H
#define BD_BUF_H

#include <stddef.h>
#include <stdint.h>

struct bd_buf {
    uint8_t *data;  /* storage, NULL until first use */
    size_t cap;     /* bytes allocated at data */
    size_t off;     /* bytes at the front already consumed */
    size_t len;     /* bytes after off that hold data */
};

/* Embedded object: bd_buf_init / bd_buf_destroy. */
void bd_buf_init(struct bd_buf *b);
void bd_buf_destroy(struct bd_buf *b);

/* The slow half of bd_buf_reserve: slide or grow. */
int bd_buf_make_room(struct bd_buf *b, size_t n);

/* Append n bytes. Returns 0 or -1 (nothing appended). */
int bd_buf_append(struct bd_buf *b, const void *p, size_t n);

/* Drop n consumed bytes from the front (n <= len). */
void bd_buf_consume(struct bd_buf *b, size_t n);

/* Pointer to the first unconsumed byte, and where new bytes go. */
static inline uint8_t *bd_buf_head(const struct bd_buf *b) { return b->data + b->off; }
static inline uint8_t *bd_buf_tail(const struct bd_buf *b) { return b->data + b->off + b->len; }
static inline size_t bd_buf_room(const struct bd_buf *b) { return b->cap - b->off - b->len; }

/* Make room for n more bytes after the data; may move the data to the
 * front. Returns 0, or -1 when memory is short (b unchanged). Inline:
 * every reply reserves, and there is nearly always room. */
static inline int bd_buf_reserve(struct bd_buf *b, size_t n)
{
    return bd_buf_room(b) >= n ? 0 : bd_buf_make_room(b, n);
}

/* Release storage when the buffer is empty and larger than keep bytes,
 * so an idle connection does not pin a burst-sized buffer. */
void bd_buf_shrink(struct bd_buf *b, size_t keep);

/* Append printf-style text (no NUL counted in len). Returns 0, or -1 on
 * a bad format or no memory (then b is unchanged). */
int bd_buf_printf(struct bd_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
