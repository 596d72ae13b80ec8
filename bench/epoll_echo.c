/*
 * epoll_echo.c - the floor of DESIGN section 7: the least a server on
 * this machine can do per request over AF_UNIX.
 *
 * One thread, one epoll set (level-triggered), non-blocking sockets.
 * Each readable event does one read() into a shared buffer and writes
 * the same bytes straight back; nothing is parsed. That mirrors what
 * batchd's loop does per event (one read, one write per pass) minus all
 * of its work, so "x floor" in the bench table is the price of batchd
 * itself. A short write parks the rest on the connection and stops
 * reading it until the backlog is gone (never happens with the bench's
 * bounded in-flight load, but the floor must not lose bytes).
 *
 *   usage: epoll_echo SOCKET_PATH
 *
 * Runs until SIGTERM/SIGINT; unlinks the socket on the way out.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_EVENTS 256
#define RBUF_SIZE (64 * 1024)  /* same as batchd's shared read buffer */

struct echo_conn {
    struct echo_conn *next;   /* list of open conns, freed at exit */
    struct echo_conn *prev;
    int fd;
    char *pend;               /* bytes not yet written back, or NULL */
    size_t pend_len;
    size_t pend_cap;
};

static volatile sig_atomic_t stop;
static struct echo_conn *conns;
static char rbuf[RBUF_SIZE];

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static int listen_on(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd;

    if (strlen(path) >= sizeof(sa.sun_path)) {
        fprintf(stderr, "epoll_echo: %s: path too long\n", path);
        return -1;
    }
    strcpy(sa.sun_path, path);
    unlink(path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        listen(fd, 1024) != 0) {
        fprintf(stderr, "epoll_echo: %s: %s\n", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

static void conn_close(int ep, struct echo_conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c->pend);
    free(c);
}

static int set_events(int ep, struct echo_conn *c, uint32_t ev)
{
    struct epoll_event e = {.events = ev, .data.ptr = c};

    return epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e);
}

/* Keep bytes the socket did not take; reading pauses until they go. */
static int park(int ep, struct echo_conn *c, const char *p, size_t n)
{
    if (c->pend_len + n > c->pend_cap) {
        size_t cap = (c->pend_len + n) * 2;
        char *np = realloc(c->pend, cap);

        if (np == NULL)
            return -1;
        c->pend = np;
        c->pend_cap = cap;
    }
    memcpy(c->pend + c->pend_len, p, n);
    c->pend_len += n;
    return set_events(ep, c, EPOLLOUT);
}

/* Write p[0..n); returns bytes written, or -1 on a dead peer. */
static ssize_t write_some(int fd, const char *p, size_t n)
{
    size_t off = 0;

    while (off < n) {
        ssize_t w = write(fd, p + off, n - off);

        if (w > 0) {
            off += (size_t)w;
        } else if (w < 0 && errno == EINTR) {
            continue;
        } else if (w < 0 && errno == EAGAIN) {
            break;
        } else {
            return -1;
        }
    }
    return (ssize_t)off;
}

static void on_readable(int ep, struct echo_conn *c)
{
    ssize_t n = read(c->fd, rbuf, sizeof(rbuf)), w;

    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        conn_close(ep, c);
        return;
    }
    if (n < 0)
        return;
    w = write_some(c->fd, rbuf, (size_t)n);
    if (w < 0 || (w < n && park(ep, c, rbuf + w, (size_t)(n - w)) != 0))
        conn_close(ep, c);
}

static void on_writable(int ep, struct echo_conn *c)
{
    ssize_t w = write_some(c->fd, c->pend, c->pend_len);

    if (w < 0) {
        conn_close(ep, c);
        return;
    }
    memmove(c->pend, c->pend + w, c->pend_len - (size_t)w);
    c->pend_len -= (size_t)w;
    if (c->pend_len == 0 && set_events(ep, c, EPOLLIN) != 0)
        conn_close(ep, c);
}

static void on_accept(int ep, int lfd)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        struct echo_conn *c;
        struct epoll_event e = {.events = EPOLLIN};

        if (fd < 0)
            return;
        c = calloc(1, sizeof(*c));
        if (c == NULL) {
            close(fd);
            continue;
        }
        c->fd = fd;
        e.data.ptr = c;
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e) != 0) {
            close(fd);
            free(c);
            continue;
        }
        c->next = conns;
        if (conns)
            conns->prev = c;
        conns = c;
    }
}

int main(int argc, char **argv)
{
    struct epoll_event evs[MAX_EVENTS];
    struct epoll_event le = {.events = EPOLLIN, .data.ptr = NULL};
    struct sigaction sa = {.sa_handler = on_signal};
    int lfd, ep;

    if (argc != 2) {
        fprintf(stderr, "usage: epoll_echo SOCKET_PATH\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    lfd = listen_on(argv[1]);
    if (lfd < 0)
        return 1;
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &le) != 0) {
        fprintf(stderr, "epoll_echo: epoll: %s\n", strerror(errno));
        return 1;
    }
    while (!stop) {
        int n = epoll_wait(ep, evs, MAX_EVENTS, -1);

        for (int i = 0; i < n; i++) {
            struct echo_conn *c = evs[i].data.ptr;

            if (c == NULL)
                on_accept(ep, lfd);
            else if (evs[i].events & EPOLLOUT)
                on_writable(ep, c);
            else
                on_readable(ep, c);
        }
    }
    while (conns)
        conn_close(ep, conns);
    close(ep);
    close(lfd);
    unlink(argv[1]);
    return 0;
}
