/*
 * metrics.c - the Prometheus endpoint (see metrics.h).
 *
 * A scrape is rendered on the loop thread, like `batchctl stats`, from
 * the same counter table; evhttp does the HTTP (parsing, keep-alive,
 * timeouts). Only GET and HEAD are allowed, on /metrics.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "alloc.h"
#include "buf.h"
#include "log.h"
#include "metrics.h"
#include "prom.h"
#include "state.h"

#define METRICS_TIMEOUT_S 10  /* a scrape connection idle this long is closed */
#define METRICS_MAX_HEADERS 8192 /* request header bytes */

struct bd_metrics {
    struct bd_server *srv;    /* borrowed */
    struct evhttp *http;      /* owned */
    char *unix_path;          /* the socket file we made, or NULL; owned */
};

/* Does the request ask for /metrics (a query string is ignored)? */
static int wants_metrics(struct evhttp_request *req)
{
    const char *uri = evhttp_request_get_uri(req);
    size_t n = strcspn(uri, "?");

    return n == strlen("/metrics") && strncmp(uri, "/metrics", n) == 0;
}

static void scrape_cb(struct evhttp_request *req, void *arg)
{
    struct bd_metrics *m = arg;
    struct evbuffer *evb;
    struct bd_buf b;

    if (!wants_metrics(req)) {
        evhttp_send_error(req, HTTP_NOTFOUND, "try /metrics");
        return;
    }
    bd_server_tick(m->srv);
    bd_buf_init(&b);
    evb = evbuffer_new();
    if (evb == NULL || bd_prom_render(m->srv, &b) != 0 ||
        evbuffer_add(evb, bd_buf_head(&b), b.len) != 0) {
        evhttp_send_error(req, HTTP_INTERNAL, "out of memory");
    } else {
        evhttp_add_header(evhttp_request_get_output_headers(req),
                          "Content-Type", BD_PROM_CONTENT_TYPE);
        evhttp_send_reply(req, HTTP_OK, "OK", evb);
    }
    if (evb != NULL)
        evbuffer_free(evb);
    bd_buf_destroy(&b);
}

/* "unix:/path": a socket file, replaced when a stale one is there. */
static int listen_unix(struct bd_metrics *m, const char *path, char *err,
                       size_t errlen)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    struct stat st;
    int fd;

    if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
        unlink(path); /* ours from a previous run: nobody else binds it */
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "metrics_listen unix:%s: %s", path, strerror(errno));
        return -1;
    }
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        listen(fd, 64) != 0) {
        snprintf(err, errlen, "metrics_listen unix:%s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    m->unix_path = bd_strdup(path);
    if (m->unix_path == NULL ||
        evhttp_accept_socket_with_handle(m->http, fd) == NULL) {
        snprintf(err, errlen, "metrics_listen unix:%s: cannot serve it", path);
        close(fd);
        return -1;
    }
    return 0;
}

/* "HOST:PORT", HOST a loopback name or address ("[::1]" for IPv6). */
static int listen_tcp(struct bd_metrics *m, const char *addr, char *err,
                      size_t errlen)
{
    const char *colon = strrchr(addr, ':');
    char host[64];
    size_t n = (size_t)(colon - addr);

    if (addr[0] == '[' && n >= 2) { /* [::1] */
        addr++;
        n -= 2;
    }
    snprintf(host, sizeof(host), "%.*s", (int)n, addr);
    if (strcmp(host, "localhost") == 0)
        snprintf(host, sizeof(host), "127.0.0.1");
    if (evhttp_bind_socket_with_handle(m->http, host,
                                       (uint16_t)atoi(colon + 1)) == NULL) {
        snprintf(err, errlen, "metrics_listen %s:%s: cannot listen: %s", host,
                 colon + 1, strerror(errno));
        return -1;
    }
    return 0;
}

struct bd_metrics *bd_metrics_start(struct bd_server *srv, const char *addr,
                                    char *err, size_t errlen)
{
    struct bd_metrics *m = bd_calloc(1, sizeof(*m));
    int rc;

    if (m == NULL || (m->http = evhttp_new(srv->base)) == NULL) {
        snprintf(err, errlen, "metrics: out of memory");
        bd_free(m);
        return NULL;
    }
    m->srv = srv;
    evhttp_set_allowed_methods(m->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
    evhttp_set_timeout(m->http, METRICS_TIMEOUT_S);
    evhttp_set_max_headers_size(m->http, METRICS_MAX_HEADERS);
    evhttp_set_max_body_size(m->http, 0);
    evhttp_set_gencb(m->http, scrape_cb, m);
    rc = strncmp(addr, "unix:", 5) == 0 ?
         listen_unix(m, addr + 5, err, errlen) :
         listen_tcp(m, addr, err, errlen);
    if (rc != 0) {
        bd_metrics_free(m);
        return NULL;
    }
    bd_log_info("metrics: serving Prometheus text on %s/metrics", addr);
    return m;
}

void bd_metrics_free(struct bd_metrics *m)
{
    if (m == NULL)
        return;
    evhttp_free(m->http); /* closes the listeners and connections */
    if (m->unix_path != NULL) {
        unlink(m->unix_path);
        bd_free(m->unix_path);
    }
    bd_free(m);
}
