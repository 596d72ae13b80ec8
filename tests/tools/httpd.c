/*
 * httpd.c - the scripted HTTP server of the http sink's tests and
 * benchmark (see httpd.h). The child runs one libevent loop with evhttp;
 * every request is written to the record (one write(2) per request on
 * an O_APPEND descriptor) before it is answered, so the record holds
 * every request the server saw, answered or not.
 *
 * Record format, per request:
 *   "REQ <seq> <conn> <t_ms> <answer> <method> <uri> <hlen> <blen>\n"
 *   <hlen bytes of "Name: value\n" lines><blen bytes of body>"\n"
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <jansson.h>

#include "httpd.h"

#define CONN_MAX 4096         /* live connections tracked (ids) */

struct bd_httpd {
    pid_t pid;                /* the server child */
    char url[128];            /* base URL */
};

/* A connection's id: the bufferevent evhttp made through on_bev. */
struct conn_slot {
    struct bufferevent *bev;  /* NULL = free slot */
    unsigned id;
};

/* An answer waiting for its delay. */
struct pending {
    struct pending *next;
    struct evhttp_request *req;
    struct evhttp_connection *evcon;
    struct event *timer;
    int status;
    struct evbuffer *out;     /* the body, owned */
    struct srv *srv;
};

struct srv {
    const struct bd_httpd_conf *c;
    struct event_base *base;
    int rec_fd;               /* the record, -1 = none */
    unsigned seq;             /* requests so far */
    unsigned nconn;           /* connections so far */
    struct conn_slot conns[CONN_MAX];
    struct pending *pending;  /* delayed answers */
};

static double now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

/* ---- connections ------------------------------------------------------- */

static struct bufferevent *on_bev(struct event_base *base, void *arg)
{
    struct srv *s = arg;
    struct bufferevent *bev = bufferevent_socket_new(base, -1,
                                                     BEV_OPT_CLOSE_ON_FREE);

    s->nconn++;
    for (size_t i = 0; bev != NULL && i < CONN_MAX; i++) {
        if (s->conns[i].bev == NULL) {
            s->conns[i].bev = bev;
            s->conns[i].id = s->nconn;
            break;
        }
    }
    return bev;
}

static unsigned conn_id(struct srv *s, struct evhttp_connection *evcon)
{
    struct bufferevent *bev = evhttp_connection_get_bufferevent(evcon);

    for (size_t i = 0; i < CONN_MAX; i++)
        if (s->conns[i].bev == bev)
            return s->conns[i].id;
    return 0;
}

/* evhttp frees the connection and its unanswered requests after this:
 * forget both. */
static void on_close(struct evhttp_connection *evcon, void *arg)
{
    struct srv *s = arg;
    struct bufferevent *bev = evhttp_connection_get_bufferevent(evcon);
    struct pending **pp = &s->pending;

    for (size_t i = 0; i < CONN_MAX; i++)
        if (s->conns[i].bev == bev)
            s->conns[i].bev = NULL;
    while (*pp != NULL) {
        struct pending *p = *pp;

        if (p->evcon != evcon) {
            pp = &p->next;
            continue;
        }
        *pp = p->next;
        event_free(p->timer);
        evbuffer_free(p->out);
        free(p);
    }
}

/* ---- answers --------------------------------------------------------- */

/* The per-item verdict for one item's text t[0..n). */
static json_t *item_reply(const char *t, size_t n)
{
    char *s = strndup(t, n);
    json_t *o;

    if (s == NULL)
        return NULL;
    if (strstr(s, "bad") != NULL)
        o = json_pack("{s:i, s:s}", "status", 400, "error", "bad item");
    else if (strstr(s, "later") != NULL)
        o = json_pack("{s:i}", "status", 429);
    else
        o = json_pack("{s:i, s:s+}", "status", 201, "body", "ok:", s);
    free(s);
    return o;
}

/* The per-item reply for a request body of type ctype, into out. */
static void items_body(const char *ctype, const char *body, size_t len,
                       struct evbuffer *out)
{
    json_t *arr = json_array(), *in;
    char *dump;

    if (ctype != NULL && strstr(ctype, "application/json") != NULL) {
        size_t i;
        json_t *el;

        in = json_loadb(body, len, 0, NULL);
        json_array_foreach(in, i, el) {
            char *t = json_dumps(el, JSON_COMPACT | JSON_ENCODE_ANY);

            json_array_append_new(arr, item_reply(t ? t : "", t ? strlen(t) : 0));
            free(t);
        }
        json_decref(in);
    } else {
        for (size_t i = 0; i < len;) {
            const char *nl = memchr(body + i, '\n', len - i);
            size_t end = nl ? (size_t)(nl - body) : len;

            json_array_append_new(arr, item_reply(body + i, end - i));
            i = end + 1;
        }
    }
    dump = json_dumps(arr, JSON_COMPACT);
    evbuffer_add(out, dump ? dump : "[]", dump ? strlen(dump) : 2);
    free(dump);
    json_decref(arr);
}

static void send_now(struct evhttp_request *req, int status, struct evbuffer *out)
{
    evhttp_send_reply(req, status, status == 200 ? "OK" :
                      status == 429 ? "Too Many Requests" :
                      status == 503 ? "Service Unavailable" :
                      status == 500 ? "Internal Server Error" :
                      status == 400 ? "Bad Request" : "Scripted", out);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct pending *p = arg, **pp;

    (void)fd;
    (void)what;
    for (pp = &p->srv->pending; *pp != p; pp = &(*pp)->next)
        ;
    *pp = p->next;
    send_now(p->req, p->status, p->out);
    event_free(p->timer);
    evbuffer_free(p->out);
    free(p);
}

static void answer_later(struct srv *s, struct evhttp_request *req, int status,
                         struct evbuffer *out, int delay_ms)
{
    struct pending *p = calloc(1, sizeof(*p));
    struct timeval tv = {delay_ms / 1000, (delay_ms % 1000) * 1000};

    if (p == NULL) {
        send_now(req, status, out);
        evbuffer_free(out);
        return;
    }
    p->req = req;
    p->evcon = evhttp_request_get_connection(req);
    p->status = status;
    p->out = out;
    p->srv = s;
    p->timer = evtimer_new(s->base, on_timer, p);
    p->next = s->pending;
    s->pending = p;
    evtimer_add(p->timer, &tv);
}

/* ---- the record ---------------------------------------------------------- */

static void record(struct srv *s, struct evhttp_request *req, unsigned conn,
                   int answer, const char *body, size_t len)
{
    struct evkeyvalq *h = evhttp_request_get_input_headers(req);
    struct evbuffer *hb = evbuffer_new(), *rec = evbuffer_new();
    static const char *const methods[] = {"GET", "POST", "HEAD", "PUT",
                                          "DELETE", "OPTIONS", "TRACE",
                                          "CONNECT", "PATCH"};
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    const char *m = "OTHER";
    struct evkeyval *kv;

    for (unsigned i = 0; i < 9; i++)
        if (cmd == (enum evhttp_cmd_type)(1 << i))
            m = methods[i];
    for (kv = h->tqh_first; kv != NULL; kv = kv->next.tqe_next)
        evbuffer_add_printf(hb, "%s: %s\n", kv->key, kv->value);
    evbuffer_add_printf(rec, "REQ %u %u %.3f %d %s %s %zu %zu\n", s->seq, conn,
                        now_ms(), answer, m, evhttp_request_get_uri(req),
                        evbuffer_get_length(hb), len);
    evbuffer_add_buffer(rec, hb);
    evbuffer_add(rec, body, len);
    evbuffer_add(rec, "\n", 1);
    if (s->rec_fd >= 0) {
        size_t n = evbuffer_get_length(rec);

        if (write(s->rec_fd, evbuffer_pullup(rec, -1), n) != (ssize_t)n)
            fprintf(stderr, "httpd: record write: %s\n", strerror(errno));
    }
    evbuffer_free(hb);
    evbuffer_free(rec);
}

static void on_request(struct evhttp_request *req, void *arg)
{
    struct srv *s = arg;
    const struct bd_httpd_conf *c = s->c;
    struct evbuffer *in = evhttp_request_get_input_buffer(req), *out;
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    const struct bd_httpd_step *st;
    size_t len = evbuffer_get_length(in);
    const char *body = len ? (const char *)evbuffer_pullup(in, -1) : "";
    int items, status;

    s->seq++;
    st = s->seq <= c->nscript ? &c->script[s->seq - 1] : &c->dflt;
    items = s->seq <= c->nscript ? st->status == 0 : c->dflt_items;
    status = st->drop ? 0 : (items || st->status == 0) ? 200 : st->status;
    evhttp_connection_set_closecb(evcon, on_close, s);
    record(s, req, conn_id(s, evcon), status, body, len);
    if (st->drop) {
        /* The client sees the connection end with no answer at all. */
        shutdown(bufferevent_getfd(evhttp_connection_get_bufferevent(evcon)),
                 SHUT_RDWR);
        return;
    }
    out = evbuffer_new();
    if (items)
        items_body(evhttp_find_header(evhttp_request_get_input_headers(req),
                                      "Content-Type"), body, len, out);
    else if (st->body != NULL)
        evbuffer_add(out, st->body, strlen(st->body));
    if (st->retry_after != NULL)
        evhttp_add_header(evhttp_request_get_output_headers(req),
                          "Retry-After", st->retry_after);
    if (st->delay_ms > 0) {
        answer_later(s, req, status, out, st->delay_ms);
        return;
    }
    send_now(req, status, out);
    evbuffer_free(out);
}

/* ---- the child -------------------------------------------------------------- */

static void on_term(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    event_base_loopbreak(arg);
}

/* A listening socket: the Unix path, or 127.0.0.1 on a free port. */
static int listen_on(const char *path, int *port)
{
    int fd;

    if (path != NULL) {
        struct sockaddr_un a = {.sun_family = AF_UNIX};

        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
        unlink(path);
        if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
            listen(fd, 1024) != 0)
            return -1;
        *port = 0;
        return fd;
    } else {
        struct sockaddr_in a = {.sin_family = AF_INET,
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t alen = sizeof(a);
        int one = 1;

        fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
            return -1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
            listen(fd, 1024) != 0 ||
            getsockname(fd, (struct sockaddr *)&a, &alen) != 0)
            return -1;
        *port = ntohs(a.sin_port);
        return fd;
    }
}

static int child_main(const struct bd_httpd_conf *c, int ready_fd)
{
    static struct srv s; /* big (the connection table): not on the stack */
    struct evhttp *http;
    struct event *term;
    int fd, port = -1;

    signal(SIGPIPE, SIG_IGN);
    s.c = c;
    s.rec_fd = c->record ? open(c->record, O_WRONLY | O_CREAT | O_APPEND |
                                O_CLOEXEC, 0644) : -1;
    s.base = event_base_new();
    http = s.base ? evhttp_new(s.base) : NULL;
    fd = listen_on(c->unix_path, &port);
    if (http == NULL || fd < 0 || evhttp_accept_socket(http, fd) != 0) {
        fprintf(stderr, "httpd: cannot listen: %s\n", strerror(errno));
        port = -1;
    }
    if (write(ready_fd, &port, sizeof(port)) != sizeof(port) || port < 0)
        return 1;
    close(ready_fd);
    evhttp_set_bevcb(http, on_bev, &s);
    evhttp_set_gencb(http, on_request, &s);
    evhttp_set_max_body_size(http, 256u << 20);
    evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST |
                               EVHTTP_REQ_PUT | EVHTTP_REQ_PATCH);
    term = evsignal_new(s.base, SIGTERM, on_term, s.base);
    event_add(term, NULL);
    event_base_dispatch(s.base);
    return 0;
}

struct bd_httpd *bd_httpd_start(const struct bd_httpd_conf *c)
{
    struct bd_httpd *h = calloc(1, sizeof(*h));
    int pfd[2], port = -1;

    if (h == NULL || pipe(pfd) != 0) {
        free(h);
        return NULL;
    }
    fflush(NULL);
    h->pid = fork();
    if (h->pid == 0) {
        close(pfd[0]);
        _exit(child_main(c, pfd[1]));
    }
    close(pfd[1]);
    if (h->pid < 0 || read(pfd[0], &port, sizeof(port)) != sizeof(port) ||
        port < 0) {
        close(pfd[0]);
        if (h->pid > 0) {
            kill(h->pid, SIGKILL);
            waitpid(h->pid, NULL, 0);
        }
        free(h);
        fprintf(stderr, "httpd: the server did not start\n");
        return NULL;
    }
    close(pfd[0]);
    if (c->unix_path != NULL)
        snprintf(h->url, sizeof(h->url), "http://localhost");
    else
        snprintf(h->url, sizeof(h->url), "http://127.0.0.1:%d", port);
    return h;
}

const char *bd_httpd_base_url(const struct bd_httpd *h)
{
    return h->url;
}

int bd_httpd_stop(struct bd_httpd *h)
{
    int st = 0, rc = -1;

    if (h == NULL)
        return -1;
    kill(h->pid, SIGTERM);
    if (waitpid(h->pid, &st, 0) == h->pid && WIFEXITED(st))
        rc = WEXITSTATUS(st);
    free(h);
    return rc;
}

/* ---- reading the record --------------------------------------------------------- */

long bd_httpd_read(const char *path, struct bd_httpd_req **out)
{
    FILE *f = fopen(path, "re");
    struct bd_httpd_req *v = NULL;
    long n = 0;

    *out = NULL;
    if (f == NULL)
        return errno == ENOENT ? 0 : -1;
    for (;;) {
        struct bd_httpd_req r = {0}, *nv;
        size_t hlen, blen;

        if (fscanf(f, "REQ %u %u %lf %d %15s %255s %zu %zu", &r.seq, &r.conn,
                   &r.t_ms, &r.answer, r.method, r.uri, &hlen, &blen) != 8)
            break;
        if (fgetc(f) != '\n')
            goto out_bad;
        r.headers = calloc(1, hlen + 1);
        r.body = calloc(1, blen + 1);
        nv = realloc(v, (size_t)(n + 1) * sizeof(*v));
        if (r.headers == NULL || r.body == NULL || nv == NULL ||
            fread(r.headers, 1, hlen, f) != hlen ||
            fread(r.body, 1, blen, f) != blen || fgetc(f) != '\n') {
            free(r.headers);
            free(r.body);
            if (nv != NULL)
                v = nv;
            goto out_bad;
        }
        r.len = blen;
        v = nv;
        v[n++] = r;
    }
    fclose(f);
    *out = v;
    return n;

out_bad:
    fclose(f);
    bd_httpd_reqs_free(v, n);
    fprintf(stderr, "httpd: record %s: bad entry after %ld\n", path, n);
    return -1;
}

void bd_httpd_reqs_free(struct bd_httpd_req *r, long n)
{
    for (long i = 0; i < n; i++) {
        free(r[i].headers);
        free(r[i].body);
    }
    free(r);
}

const char *bd_httpd_header(const struct bd_httpd_req *r, const char *name,
                            char *buf, size_t n)
{
    size_t nl = strlen(name);

    for (const char *p = r->headers; p != NULL && *p != '\0';) {
        const char *e = strchr(p, '\n');
        size_t ll = e ? (size_t)(e - p) : strlen(p);

        if (ll > nl + 1 && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            size_t vl = ll - nl - 2;

            if (vl >= n)
                vl = n - 1;
            memcpy(buf, p + nl + 2, vl);
            buf[vl] = '\0';
            return buf;
        }
        p = e ? e + 1 : NULL;
    }
    return NULL;
}
