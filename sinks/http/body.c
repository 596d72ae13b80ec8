/*
 * body.c - one request body per batch (see http.h):
 *
 *   ndjson   payload "\n" payload "\n" ...       application/x-ndjson
 *   json     [payload,payload,...]               application/json
 *   msgpack  array32 header, then each payload   application/msgpack
 *
 * A payload is copied as it is: json wants each to be one JSON document
 * (checked with jansson), msgpack one msgpack object (checked with the
 * daemon's bounded walker, proto/frame.c, linked into this sink), ndjson
 * only that it holds no line break. An item that fails its check is left
 * out of the body and FAILs alone, so that one bad item never costs its
 * neighbours their request.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "bytes.h"
#include "frame.h"
#include "http.h"

int http_verdict_set(struct http_verdict *v, int code, const void *data,
                     size_t len)
{
    free(v->data);
    v->data = NULL;
    v->len = 0;
    v->code = code;
    if (len == 0)
        return 0;
    v->data = malloc(len);
    if (v->data == NULL) {
        v->code = BATCHD_RESULT_FAIL;
        return -1;
    }
    memcpy(v->data, data, len);
    v->len = len;
    return 0;
}

void http_verdicts_clear(struct http_verdict *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i].data);
        v[i].data = NULL;
        v[i].len = 0;
        v[i].code = 0;
    }
}

const char *http_body_content_type(int format)
{
    switch (format) {
    case HTTP_FMT_JSON:
        return "application/json";
    case HTTP_FMT_MSGPACK:
        return "application/msgpack";
    default:
        return "application/x-ndjson";
    }
}

static int put(struct http_body *body, const void *p, size_t n)
{
    if (body->cap - body->len < n) {
        size_t cap = body->cap ? body->cap : 4096;
        char *d;

        while (cap - body->len < n)
            cap *= 2;
        d = realloc(body->data, cap);
        if (d == NULL)
            return -1;
        body->data = d;
        body->cap = cap;
    }
    if (n > 0)
        memcpy(body->data + body->len, p, n);
    body->len += n;
    return 0;
}

/* Why item it cannot go in this format, or NULL when it can. The
 * message is static or in buf. */
static const char *refuse(int format, const struct batchd_item *it, char *buf,
                          size_t n)
{
    const char *why = NULL;
    json_error_t je;
    json_t *j;

    switch (format) {
    case HTTP_FMT_NDJSON:
        if (memchr(it->data, '\n', it->len) != NULL)
            return "http sink: an ndjson payload must not hold a line break";
        return NULL;
    case HTTP_FMT_JSON:
        if (it->len == 0)
            return "http sink: not a JSON document: empty payload";
        j = json_loadb(it->data, it->len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
        if (j != NULL) {
            json_decref(j);
            return NULL;
        }
        snprintf(buf, n, "http sink: not a JSON document: %s at byte %d",
                 je.text, je.position);
        return buf;
    default:
        if (it->len == 0)
            return "http sink: not a msgpack object: empty payload";
        if (bd_frame_check(it->data, it->len, &why) == 0)
            return NULL;
        snprintf(buf, n, "http sink: not one msgpack object: %s", why);
        return buf;
    }
}

/* The opening of the body; the msgpack count is patched in at the end. */
static int open_body(struct http_body *body, int format)
{
    static const uint8_t arr32[5] = {0xdd, 0, 0, 0, 0};

    if (format == HTTP_FMT_JSON)
        return put(body, "[", 1);
    if (format == HTTP_FMT_MSGPACK)
        return put(body, arr32, sizeof(arr32));
    return 0;
}

static int close_body(struct http_body *body, int format)
{
    if (format == HTTP_FMT_JSON)
        return put(body, "]", 1);
    if (format == HTTP_FMT_MSGPACK)
        bd_put_be((uint8_t *)body->data + 1, body->nsent, 4);
    return 0;
}

/* One item that passed its check. */
static int add_item(struct http_body *body, int format,
                    const struct batchd_item *it)
{
    if (format == HTTP_FMT_JSON && body->nsent > 0 && put(body, ",", 1) != 0)
        return -1;
    if (put(body, it->data, it->len) != 0)
        return -1;
    if (format == HTTP_FMT_NDJSON && put(body, "\n", 1) != 0)
        return -1;
    return 0;
}

int http_body_build(struct http_body *body, int format,
                    const struct batchd_batch *b, struct http_verdict *v)
{
    char why[256];

    memset(body, 0, sizeof(*body));
    body->sent = malloc(b->nitems * sizeof(*body->sent));
    if (body->sent == NULL || open_body(body, format) != 0)
        goto out_nomem;
    for (size_t i = 0; i < b->nitems; i++) {
        const struct batchd_item *it = &b->items[i];
        const char *no = refuse(format, it, why, sizeof(why));

        if (no != NULL) {
            http_verdict_set(&v[i], BATCHD_RESULT_FAIL, no, strlen(no));
            continue;
        }
        if (add_item(body, format, it) != 0)
            goto out_nomem;
        body->sent[body->nsent++] = i;
    }
    if (close_body(body, format) != 0)
        goto out_nomem;
    return 0;

out_nomem:
    http_body_free(body);
    return -1;
}

void http_body_free(struct http_body *body)
{
    free(body->data);
    free(body->sent);
    memset(body, 0, sizeof(*body));
}
