/*
 * pool.c - libcurl easy handles, configured once and lent one per batch
 * (see http.h). An easy handle keeps its connection alive between
 * transfers, so a handle that goes back to the pool and out again
 * reuses its connection: with key_concurrency calls in flight there are
 * at most that many handles and connections per key, never one per
 * batch. Handles are made on demand (the first batches) and kept until
 * shutdown; a handle whose connection broke reconnects by itself on its
 * next transfer.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

struct http_pool {
    const struct http_conf *conf; /* borrowed, outlives the pool */
    pthread_mutex_t mu;       /* guards idle and nidle */
    CURL **idle;              /* handles not lent, last in first out */
    size_t nidle;
    size_t cap;               /* room in idle */
};

struct http_pool *http_pool_new(const struct http_conf *conf)
{
    struct http_pool *p = calloc(1, sizeof(*p));

    if (p == NULL)
        return NULL;
    p->conf = conf;
    pthread_mutex_init(&p->mu, NULL);
    return p;
}

/* Every setting that is the same for every request of this sink. */
static CURLcode configure(CURL *h, const struct http_conf *c)
{
    CURLcode rc = CURLE_OK;

#define SET(opt, val) \
    do { if (rc == CURLE_OK) rc = curl_easy_setopt(h, opt, val); } while (0)
    SET(CURLOPT_URL, c->url);
    SET(CURLOPT_NOSIGNAL, 1L); /* worker threads: no SIGALRM for timeouts */
    SET(CURLOPT_CONNECTTIMEOUT_MS, c->connect_timeout_ms);
    SET(CURLOPT_TIMEOUT_MS, c->timeout_ms);
    SET(CURLOPT_HTTPHEADER, c->headers);
    SET(CURLOPT_FORBID_REUSE, c->keepalive ? 0L : 1L);
    SET(CURLOPT_TCP_KEEPALIVE, 1L);
    SET(CURLOPT_SSL_VERIFYPEER, c->tls_verify ? 1L : 0L);
    SET(CURLOPT_SSL_VERIFYHOST, c->tls_verify ? 2L : 0L);
    SET(CURLOPT_PROTOCOLS_STR, "http,https"); /* no file://, no gopher:// */
    if (c->ca_file != NULL)
        SET(CURLOPT_CAINFO, c->ca_file);
    if (c->tls_cert != NULL)
        SET(CURLOPT_SSLCERT, c->tls_cert);
    if (c->tls_key != NULL)
        SET(CURLOPT_SSLKEY, c->tls_key);
    if (c->unix_socket != NULL)
        SET(CURLOPT_UNIX_SOCKET_PATH, c->unix_socket);
    if (c->auth == HTTP_AUTH_BASIC) {
        SET(CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        SET(CURLOPT_USERPWD, c->secret);
    } else if (c->auth == HTTP_AUTH_BEARER) {
        SET(CURLOPT_HTTPAUTH, (long)CURLAUTH_BEARER);
        SET(CURLOPT_XOAUTH2_BEARER, c->secret);
    }
    if (strcmp(c->method, "POST") != 0)
        SET(CURLOPT_CUSTOMREQUEST, c->method);
#undef SET
    return rc;
}

CURL *http_pool_get(struct http_pool *p, char *err, size_t errlen)
{
    CURL *h = NULL;
    CURLcode rc;

    pthread_mutex_lock(&p->mu);
    if (p->nidle > 0)
        h = p->idle[--p->nidle];
    pthread_mutex_unlock(&p->mu);
    if (h != NULL)
        return h;
    h = curl_easy_init();
    if (h == NULL) {
        snprintf(err, errlen, "http sink: curl_easy_init failed");
        return NULL;
    }
    rc = configure(h, p->conf);
    if (rc != CURLE_OK) {
        snprintf(err, errlen, "http sink: libcurl refused a setting: %s",
                 curl_easy_strerror(rc));
        curl_easy_cleanup(h);
        return NULL;
    }
    return h;
}

void http_pool_put(struct http_pool *p, CURL *h)
{
    pthread_mutex_lock(&p->mu);
    if (p->nidle == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 8;
        CURL **n = realloc(p->idle, cap * sizeof(*n));

        if (n == NULL) { /* keep going without this handle */
            pthread_mutex_unlock(&p->mu);
            curl_easy_cleanup(h);
            return;
        }
        p->idle = n;
        p->cap = cap;
    }
    p->idle[p->nidle++] = h;
    pthread_mutex_unlock(&p->mu);
}

void http_pool_free(struct http_pool *p)
{
    if (p == NULL)
        return;
    for (size_t i = 0; i < p->nidle; i++)
        curl_easy_cleanup(p->idle[i]);
    free(p->idle);
    pthread_mutex_destroy(&p->mu);
    free(p);
}
