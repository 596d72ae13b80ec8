/*
 * http.h - the http sink's internal interfaces (one file per concern):
 *
 *   options.c      [sink.NAME] keys -> struct http_conf (init, --check-config words)
 *   body.c         a batch -> one request body (ndjson, json, msgpack),
 *                  refusing the items that cannot be encoded
 *   reply.c        a response -> per-item verdicts (pure: fuzzed)
 *   retry_after.c  a Retry-After header value -> milliseconds (pure: fuzzed)
 *   pool.c         configured libcurl easy handles, lent per batch
 *   http.c         the sink table: init, acquire, process, release, shutdown
 *
 * The sink is blocking (sink worker threads). A batch borrows one easy
 * handle from the pool through acquire/release, so the key's concurrency
 * slot covers the handle and its kept-alive connection (DESIGN 9).
 */
#ifndef BD_HTTP_SINK_H
#define BD_HTTP_SINK_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <curl/curl.h>

#include "batchd_sink.h"

/* ---- options.c ---------------------------------------------------------- */

enum http_format {
    HTTP_FMT_NDJSON = 0,      /* one payload per line */
    HTTP_FMT_JSON = 1,        /* a JSON array of the payloads (JSON documents) */
    HTTP_FMT_MSGPACK = 2,     /* a msgpack array of the payloads (msgpack objects) */
};

enum http_reply_mode {
    HTTP_REPLY_STATUS = 0,    /* the status code answers every item */
    HTTP_REPLY_ITEMS = 1,     /* a JSON array answers item by item */
};

enum http_auth {
    HTTP_AUTH_NONE = 0,
    HTTP_AUTH_BASIC = 1,      /* auth_file holds user:password */
    HTTP_AUTH_BEARER = 2,     /* auth_file holds the token */
};

struct http_conf {
    char *url;                /* owned */
    char *method;             /* owned; "POST" unless set */
    struct curl_slist *headers; /* header.* lines + Content-Type + "Expect:"; owned */
    long connect_timeout_ms;  /* CURLOPT_CONNECTTIMEOUT_MS */
    long timeout_ms;          /* CURLOPT_TIMEOUT_MS: the whole request */
    int keepalive;            /* reuse connections between batches */
    int tls_verify;           /* verify peer and host name (default on) */
    char *ca_file;            /* CURLOPT_CAINFO, NULL = system default; owned */
    char *tls_cert;           /* client certificate (PEM), NULL = none; owned */
    char *tls_key;            /* its key, NULL = in tls_cert; owned */
    int auth;                 /* enum http_auth */
    char *secret;             /* user:password or token from auth_file; owned, wiped */
    char *unix_socket;        /* CURLOPT_UNIX_SOCKET_PATH, NULL = TCP; owned */
    int format;               /* enum http_format */
    int reply;                /* enum http_reply_mode */
    int reply_body;           /* status mode: OK items carry the response body */
    size_t max_response;      /* response bytes kept; more fails the batch */
};

/* Parse the sink's options. Returns 0, or -1 with one line in err naming
 * the option. On failure c holds nothing to free. */
int http_conf_parse(struct http_conf *c, const struct batchd_kv *kv,
                    size_t nkv, char *err, size_t errlen);
void http_conf_free(struct http_conf *c);

/* The option table (for the daemon's key check and the docs). */
extern const struct batchd_sink_option http_options[];

/* ---- verdicts (body.c, reply.c) ----------------------------------------- */

/* One item's answer before it goes to host->result. */
struct http_verdict {
    int code;                 /* 0 none yet, else enum batchd_result_code */
    char *data;               /* malloc'd payload or message, or NULL */
    size_t len;
};

/* Set v (replacing what it held) to code with a copy of data[0..len).
 * Returns 0 or -1 (no memory: v becomes FAIL without a message). */
int http_verdict_set(struct http_verdict *v, int code, const void *data,
                     size_t len);
void http_verdicts_clear(struct http_verdict *v, size_t n);

/* ---- body.c ------------------------------------------------------------- */

/* One request body and which items it holds. */
struct http_body {
    char *data;               /* malloc'd; NULL when empty */
    size_t len;
    size_t cap;
    size_t *sent;             /* item index of each element in the body */
    size_t nsent;
};

/*
 * Encode b's items in format. An item that cannot be encoded (not a JSON
 * document for json, not one msgpack object for msgpack, a newline in
 * ndjson) is left out and gets FAIL in v[i] with the reason; the others
 * are listed in body->sent. Returns 0, or -1 when memory is short.
 */
int http_body_build(struct http_body *body, int format,
                    const struct batchd_batch *b, struct http_verdict *v);
void http_body_free(struct http_body *body);

/* The Content-Type of a format. */
const char *http_body_content_type(int format);

/* ---- reply.c (pure) ----------------------------------------------------- */

/* What a status code means for the items: BATCHD_RESULT_OK (2xx),
 * _RETRY (429, 5xx, and 408), else _FAIL. */
int http_status_verdict(long status);

/*
 * The items reply (sinks/README.md "http"): a JSON array with one
 * element per item sent, in order (or an object whose "items" member is
 * that array, as Elasticsearch's _bulk answers). Each element is an
 * object with "status" (an HTTP-like code, or "ok" / "retry" / "error"),
 * or an object with a single member holding such an object ({"index":
 * {"status": 201, ...}}). OK items carry "body" (a string as it is, any
 * other JSON value as compact JSON; none: empty); FAIL items carry
 * "error" (same rules), else "body", else "status N". Fills v[0..n).
 * Returns 0, or -1 with the reason in err (and v cleared).
 */
int http_reply_items(const char *body, size_t len, size_t n,
                     struct http_verdict *v, char *err, size_t errlen);

/* ---- retry_after.c (pure) ----------------------------------------------- */

#define HTTP_RETRY_AFTER_MAX_MS (86400ull * 1000) /* a day: longer is clamped */

/*
 * A Retry-After value (RFC 9110: delta-seconds, or an HTTP-date read
 * with curl_getdate) as milliseconds from now (wall clock, seconds).
 * A date in the past is 0. Returns 0 with *ms, or -1 when the value is
 * neither.
 */
int http_retry_after_ms(const char *value, size_t len, time_t now,
                        uint64_t *ms);

/* ---- pool.c ------------------------------------------------------------- */

struct http_pool;

/* A pool of easy handles configured from conf (borrowed for the pool's
 * life). NULL when memory is short. */
struct http_pool *http_pool_new(const struct http_conf *conf);

/* An idle handle (its connection kept alive), or a new one; NULL with
 * err when none can be made. Any thread. */
CURL *http_pool_get(struct http_pool *p, char *err, size_t errlen);

/* Give a handle back; broken ones may be given back too (curl reconnects). */
void http_pool_put(struct http_pool *p, CURL *h);

/* Clean up every handle (closing its connection). Only when none is lent. */
void http_pool_free(struct http_pool *p);

#endif
