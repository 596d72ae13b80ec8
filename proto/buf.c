/*
 * buf.c - growable byte buffer (see buf.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "buf.h"

void bd_buf_init(struct bd_buf *b)
{
    memset(b, 0, sizeof(*b));
}

void bd_buf_destroy(struct bd_buf *b)
{
    bd_free(b->data);
    memset(b, 0, sizeof(*b));
}

int bd_buf_make_room(struct bd_buf *b, size_t n)
{
    size_t need, ncap;
    uint8_t *nd;

    if (bd_buf_room(b) >= n)
        return 0;
    /* Slide the data to the front before growing: cheap and common. */
    if (b->off > 0) {
        memmove(b->data, b->data + b->off, b->len);
        b->off = 0;
        if (bd_buf_room(b) >= n)
            return 0;
    }
    if (n > SIZE_MAX - b->len)
        return -1;
    need = b->len + n;
    ncap = b->cap ? b->cap : 256;
    while (ncap < need)
        ncap = ncap > SIZE_MAX / 2 ? need : ncap * 2;
    nd = bd_realloc(b->data, ncap);
    if (nd == NULL)
        return -1;
    b->data = nd;
    b->cap = ncap;
    return 0;
}

int bd_buf_append(struct bd_buf *b, const void *p, size_t n)
{
    /* p may be NULL when n is 0 (an empty payload): memcpy may not see it. */
    if (n == 0)
        return 0;
    if (bd_buf_reserve(b, n) != 0)
        return -1;
    memcpy(bd_buf_tail(b), p, n);
    b->len += n;
    return 0;
}

void bd_buf_consume(struct bd_buf *b, size_t n)
{
    b->off += n;
    b->len -= n;
    if (b->len == 0)
        b->off = 0;
}

void bd_buf_shrink(struct bd_buf *b, size_t keep)
{
    if (b->len == 0 && b->cap > keep) {
        bd_free(b->data);
        b->data = NULL;
        b->cap = 0;
        b->off = 0;
    }
}

int bd_buf_printf(struct bd_buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || bd_buf_reserve(b, (size_t)n + 1) != 0)
        return -1;
    va_start(ap, fmt);
    vsnprintf((char *)bd_buf_tail(b), (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}
