/*
 * http.c - the "http" sink: each batch is one HTTP request to one URL,
 * its items encoded in one body (body.c), answered by the status code
 * or item by item from a JSON reply (reply.c). See sinks/README.md for
 * the options and the exact verdicts, and http.h for the files.
 *
 * Verdicts (DESIGN 4 and 9):
 *   curl error (connect, timeout, reset)        RETRY the batch
 *   408, 429, 5xx                               RETRY the batch; Retry-After
 *                                               is the least wait (host->retry_after)
 *   other non-2xx                               FAIL: "404 Not Found: <body start>"
 *   2xx, reply = status                         every item OK (the body with reply_body)
 *   2xx, reply = items                          per item; a reply that does not
 *                                               parse FAILs the batch (see README)
 * Items the format refuses FAIL alone and are never sent. When some were
 * refused, the batch verdict goes to each sent item instead, so that the
 * refused ones keep their own FAIL.
 *
 * One log line per outage: the first failed request after a good one
 * logs a warning, the first good one after failures logs that it is back.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http.h"

#define HTTP_SNIPPET 200        /* body bytes quoted in a FAIL/RETRY message */
#define HTTP_MSG_MAX 512

struct http_state {
    const struct batchd_host *host; /* lent until shutdown */
    struct http_conf conf;    /* parsed options; owned */
    struct http_pool *pool;   /* easy handles; owned */
    atomic_int down;          /* the last request failed (for the outage log) */
};

/* The response of one request. */
struct http_resp {
    char *data;               /* body, malloc'd, NUL-terminated when not NULL */
    size_t len;
    size_t cap;
    size_t max;               /* max_response_bytes */
    int too_big;              /* the body passed max: transfer aborted */
    char status_line[128];    /* last "HTTP/..." line, without CRLF */
    char retry_after[96];     /* Retry-After value, "" when none */
};

/* curl_global_init/cleanup are not reentrant: count the sinks using them. */
static pthread_mutex_t global_mu = PTHREAD_MUTEX_INITIALIZER;
static unsigned global_users;

static int global_ref(void)
{
    int rc = 0;

    pthread_mutex_lock(&global_mu);
    if (global_users == 0 && curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
        rc = -1;
    else
        global_users++;
    pthread_mutex_unlock(&global_mu);
    return rc;
}

static void global_unref(void)
{
    pthread_mutex_lock(&global_mu);
    if (--global_users == 0)
        curl_global_cleanup();
    pthread_mutex_unlock(&global_mu);
}

/* ---- receiving ------------------------------------------------------------ */

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    struct http_resp *r = arg;
    size_t len = size * n;

    if (len > r->max - r->len) {
        r->too_big = 1;
        return 0; /* aborts the transfer: CURLE_WRITE_ERROR */
    }
    if (r->cap - r->len < len + 1) {
        size_t cap = r->cap ? r->cap : 4096;
        char *d;

        while (cap - r->len < len + 1)
            cap *= 2;
        d = realloc(r->data, cap);
        if (d == NULL)
            return 0;
        r->data = d;
        r->cap = cap;
    }
    memcpy(r->data + r->len, p, len);
    r->len += len;
    r->data[r->len] = '\0';
    return len;
}

/* Copy header line p[0..n) without its line end into dst. */
static void keep_line(char *dst, size_t dstlen, const char *p, size_t n)
{
    while (n > 0 && (p[n - 1] == '\r' || p[n - 1] == '\n'))
        n--;
    if (n >= dstlen)
        n = dstlen - 1;
    memcpy(dst, p, n);
    dst[n] = '\0';
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
    struct http_resp *r = arg;
    size_t len = size * n;
    static const char ra[] = "retry-after:";

    if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) {
        /* A new response (after a 100 Continue, say): start over. */
        keep_line(r->status_line, sizeof(r->status_line), p, len);
        r->retry_after[0] = '\0';
    } else if (len > sizeof(ra) - 1 && strncasecmp(p, ra, sizeof(ra) - 1) == 0) {
        keep_line(r->retry_after, sizeof(r->retry_after), p + sizeof(ra) - 1,
                  len - (sizeof(ra) - 1));
    }
    return len;
}

/* ---- verdicts ---------------------------------------------------------------- */

/* "404 Not Found: <start of body>" for messages. */
static void describe(const struct http_resp *r, long status, char *buf,
                     size_t n)
{
    const char *sp = strchr(r->status_line, ' ');
    int blen = (int)(r->len > HTTP_SNIPPET ? HTTP_SNIPPET : r->len);

    if (sp != NULL)
        snprintf(buf, n, "http: %s%s%.*s%s", sp + 1, blen ? ": " : "", blen,
                 blen ? r->data : "", r->len > HTTP_SNIPPET ? "..." : "");
    else
        snprintf(buf, n, "http: status %ld%s%.*s", status, blen ? ": " : "",
                 blen, blen ? r->data : "");
}

/*
 * The batch verdict rc (with msg) for every item sent. A RETRY is a
 * whole-batch answer when all items were sent (the daemon then retries
 * them together and can split out a poison item); else, and for every
 * FAIL, it goes item by item, so that items refused by the format keep
 * their own FAIL and a FAIL is final whatever the daemon does with a
 * whole-batch FAIL.
 */
static int whole(const struct http_state *st, struct batchd_batch *b,
                 const struct http_body *body, struct http_verdict *v, int rc,
                 const char *msg)
{
    int code = rc == BATCHD_SINK_RETRY ? BATCHD_RESULT_RETRY : BATCHD_RESULT_FAIL;

    if (rc == BATCHD_SINK_RETRY && body->nsent == b->nitems) {
        st->host->batch_error(b, msg);
        return rc;
    }
    for (size_t k = 0; k < body->nsent; k++)
        http_verdict_set(&v[body->sent[k]], code,
                         code == BATCHD_RESULT_FAIL ? msg : NULL,
                         code == BATCHD_RESULT_FAIL ? strlen(msg) : 0);
    return BATCHD_SINK_DONE;
}

/* A 2xx: the sent items' verdicts into v. */
static int good(const struct http_state *st, struct batchd_batch *b,
                const struct http_body *body, const struct http_resp *r,
                long status, struct http_verdict *v)
{
    struct http_verdict *iv;
    char why[256], msg[HTTP_MSG_MAX];

    if (st->conf.reply == HTTP_REPLY_STATUS) {
        /* Every item gets its own copy of the body: bound the total. */
        int with_body = st->conf.reply_body &&
                        r->len <= st->conf.max_response / body->nsent;

        if (st->conf.reply_body && !with_body)
            st->host->log(st->host, BATCHD_LOG_WARN, "reply_body: a %zu-byte "
                          "body for %zu items is over max_response_bytes in "
                          "all; the items are OK without it", r->len,
                          body->nsent);
        for (size_t k = 0; k < body->nsent; k++)
            http_verdict_set(&v[body->sent[k]], BATCHD_RESULT_OK,
                             with_body ? r->data : NULL, with_body ? r->len : 0);
        return BATCHD_SINK_DONE;
    }
    iv = calloc(body->nsent, sizeof(*iv));
    if (iv == NULL)
        return whole(st, b, body, v, BATCHD_SINK_RETRY, "http sink: out of memory");
    if (http_reply_items(r->data ? r->data : "", r->len, body->nsent, iv, why,
                         sizeof(why)) != 0) {
        free(iv);
        snprintf(msg, sizeof(msg), "http: the %ld reply does not parse as "
                 "per-item replies (the items may have been applied): %s",
                 status, why);
        return whole(st, b, body, v, BATCHD_SINK_FAIL, msg);
    }
    for (size_t k = 0; k < body->nsent; k++)
        v[body->sent[k]] = iv[k]; /* moves the data */
    free(iv);
    return BATCHD_SINK_DONE;
}

/* Retry-After, when the outcome has a RETRY in it (ABI 2 hosts only). */
static void hint(const struct http_state *st, struct batchd_batch *b,
                 const struct http_resp *r)
{
    uint64_t ms;

    if (r->retry_after[0] == '\0' || st->host->abi_version < 2)
        return;
    if (http_retry_after_ms(r->retry_after, strlen(r->retry_after),
                            time(NULL), &ms) != 0) {
        st->host->log(st->host, BATCHD_LOG_DEBUG, "ignoring Retry-After '%s'",
                      r->retry_after);
        return;
    }
    st->host->retry_after(b, ms);
}

static int any_retry(const struct http_verdict *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (v[i].code == BATCHD_RESULT_RETRY)
            return 1;
    return 0;
}

/* The outage log: one line when requests start failing, one when back. */
static void outage(struct http_state *st, int failed, const char *msg)
{
    if (failed && atomic_exchange(&st->down, 1) == 0)
        st->host->log(st->host, BATCHD_LOG_WARN, "%s: %s; batches are "
                      "retried until it answers", st->conf.url, msg);
    else if (!failed && atomic_exchange(&st->down, 0) == 1)
        st->host->log(st->host, BATCHD_LOG_INFO, "%s answers again",
                      st->conf.url);
}

/* ---- the request ----------------------------------------------------------------- */

static CURLcode perform(CURL *h, const struct http_body *body,
                        struct http_resp *r, char *errbuf)
{
    CURLcode rc = CURLE_OK;

#define SET(opt, val) \
    do { if (rc == CURLE_OK) rc = curl_easy_setopt(h, opt, val); } while (0)
    SET(CURLOPT_POSTFIELDS, body->data);
    SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body->len);
    SET(CURLOPT_WRITEFUNCTION, on_body);
    SET(CURLOPT_WRITEDATA, r);
    SET(CURLOPT_HEADERFUNCTION, on_header);
    SET(CURLOPT_HEADERDATA, r);
    SET(CURLOPT_ERRORBUFFER, errbuf);
#undef SET
    if (rc != CURLE_OK)
        return rc;
    errbuf[0] = '\0';
    return curl_easy_perform(h);
}

/* Send the body and turn the outcome into verdicts (v) or a batch rc. */
static int exchange(struct http_state *st, CURL *h, struct batchd_batch *b,
                    const struct http_body *body, struct http_verdict *v)
{
    struct http_resp r = {.max = st->conf.max_response};
    char errbuf[CURL_ERROR_SIZE], msg[HTTP_MSG_MAX];
    CURLcode cc = perform(h, body, &r, errbuf);
    long status = 0;
    int rc, verdict;

    if (cc != CURLE_OK) {
        if (r.too_big)
            snprintf(msg, sizeof(msg), "http: the response is over "
                     "max_response_bytes (%zu)", st->conf.max_response);
        else
            snprintf(msg, sizeof(msg), "http: %s%s%s", curl_easy_strerror(cc),
                     errbuf[0] ? ": " : "", errbuf);
        outage(st, !r.too_big, msg);
        rc = whole(st, b, body, v, r.too_big ? BATCHD_SINK_FAIL :
                   BATCHD_SINK_RETRY, msg);
        free(r.data);
        return rc;
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    verdict = http_status_verdict(status);
    outage(st, verdict == BATCHD_RESULT_RETRY, r.status_line);
    if (verdict == BATCHD_RESULT_OK) {
        rc = good(st, b, body, &r, status, v);
    } else {
        describe(&r, status, msg, sizeof(msg));
        rc = whole(st, b, body, v, verdict == BATCHD_RESULT_RETRY ?
                   BATCHD_SINK_RETRY : BATCHD_SINK_FAIL, msg);
    }
    if (rc == BATCHD_SINK_RETRY || any_retry(v, b->nitems))
        hint(st, b, &r);
    free(r.data);
    return rc;
}

/* ---- the sink table ------------------------------------------------------------------ */

static void *http_init(const struct batchd_host *host,
                       const struct batchd_kv *kv, size_t nkv, char *err,
                       size_t errlen)
{
    struct http_state *st = calloc(1, sizeof(*st));

    if (st == NULL) {
        snprintf(err, errlen, "http sink: out of memory");
        return NULL;
    }
    st->host = host;
    if (http_conf_parse(&st->conf, kv, nkv, err, errlen) != 0) {
        free(st);
        return NULL;
    }
    if (global_ref() != 0) {
        snprintf(err, errlen, "http sink: curl_global_init failed");
        goto out_conf;
    }
    st->pool = http_pool_new(&st->conf);
    if (st->pool == NULL) {
        snprintf(err, errlen, "http sink: out of memory");
        global_unref();
        goto out_conf;
    }
    host->log(host, BATCHD_LOG_INFO, "%s %s, %s body, reply by %s%s",
              st->conf.method, st->conf.url,
              http_body_content_type(st->conf.format),
              st->conf.reply == HTTP_REPLY_ITEMS ? "item" : "status",
              st->conf.unix_socket ? " (Unix socket)" : "");
    return st;

out_conf:
    http_conf_free(&st->conf);
    free(st);
    return NULL;
}

static void *http_acquire(void *state, const char *key, size_t key_len,
                          char *err, size_t errlen)
{
    struct http_state *st = state;

    (void)key;
    (void)key_len;
    return http_pool_get(st->pool, err, errlen);
}

static void http_release(void *state, void *res)
{
    struct http_state *st = state;

    http_pool_put(st->pool, res);
}

static int http_process(void *state, void *res, struct batchd_batch *b)
{
    struct http_state *st = state;
    struct http_verdict *v = calloc(b->nitems, sizeof(*v));
    struct http_body body;
    int rc = BATCHD_SINK_DONE;

    if (v == NULL || http_body_build(&body, st->conf.format, b, v) != 0) {
        free(v);
        st->host->batch_error(b, "http sink: out of memory for the body");
        return BATCHD_SINK_RETRY;
    }
    if (body.nsent > 0)
        rc = exchange(st, res, b, &body, v);
    for (size_t i = 0; rc == BATCHD_SINK_DONE && i < b->nitems; i++)
        st->host->result(b, i, v[i].code ? v[i].code : BATCHD_RESULT_FAIL,
                         v[i].data ? v[i].data : "", v[i].len);
    http_verdicts_clear(v, b->nitems);
    free(v);
    http_body_free(&body);
    return rc;
}

static void http_shutdown(void *state)
{
    struct http_state *st = state;

    http_pool_free(st->pool);
    http_conf_free(&st->conf);
    global_unref();
    free(st);
}

static const struct batchd_sink http_sink = {
    .abi_version = BATCHD_SINK_ABI_VERSION,
    .flags = 0,
    .name = "http",
    .options = http_options,
    .init = http_init,
    .acquire = http_acquire,
    .release = http_release,
    .process = http_process,
    .shutdown = http_shutdown,
};

BATCHD_SINK_EXPORT const struct batchd_sink *batchd_sink_entry(void)
{
    return &http_sink;
}
