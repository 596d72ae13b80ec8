/*
 * server.c - the event loop, the listening socket, accept, the
 * end-of-pass flush and the shutdown sequence (see server.h).
 *
 * One pass of the loop: libevent runs the read handlers of every ready
 * connection (each decodes its frames and queues items on their keys),
 * then flush_cb, activated once per pass, dispatches the keys touched in
 * that pass and writes every connection's replies with one write() each.
 */
#include <errno.h>
#include <signal.h>
#include <grp.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <dirent.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <systemd/sd-daemon.h>

#include "access.h"
#include "alloc.h"
#include "batch.h"
#include "call.h"
#include "clock.h"
#include "conn.h"
#include "durable.h"
#include "gen.h"
#include "series.h"
#include "log.h"
#include "metrics.h"
#include "msg.h"
#include "server.h"
#include "sink.h"
#include "worker.h"

#define ACCEPT_PER_EVENT 64    /* accepts per readable event: fairness */
#define EMFILE_PAUSE_MS 100    /* listener pause when out of descriptors */

/* The core's end-of-pass hook. */
static void core_wants_flush(void *arg)
{
    bd_server_want_flush(arg);
}

/* Finished sink calls (worker.c's callback): outcomes, then shutdown
 * progress. */
static void calls_done(void *arg, struct bd_batch *list)
{
    struct bd_server *srv = arg;

    bd_core_complete_list(&srv->core, list);
    bd_server_check_done(srv);
}

void bd_server_want_flush(struct bd_server *srv)
{
    if (srv->flush_pending)
        return;
    srv->flush_pending = 1;
    event_active(srv->flush_ev, EV_TIMEOUT, 0);
}

static int output_pending(const struct bd_server *srv)
{
    for (const struct bd_conn *c = srv->conns; c; c = c->next)
        if (c->out.len > 0)
            return 1;
    return 0;
}

/* Every request already in a client's socket gets its answer before
 * the daemon leaves (PROTOCOL.md 8.3): each conn stops its client's
 * writes and reads what is there (bd_conn_drain_input). */
static void drain_all_input(struct bd_server *srv)
{
    struct bd_conn *c, *next;

    srv->input_drained = 1;
    for (c = srv->conns; c; c = next) {
        next = c->next; /* a drain only marks; closes happen in the flush */
        bd_conn_drain_input(c);
    }
}

void bd_server_check_done(struct bd_server *srv)
{
    if (srv->core.state != BD_STATE_STOPPING)
        return;
    if (srv->core.nqueued != 0 || srv->core.nretry != 0 || srv->core.inflight != 0)
        return;
    if (bd_durable_busy(&srv->core))
        return; /* a commit's ACCEPTEDs are still to come (durable.c) */
    /* Nothing can be queued any more (new items are refused): read and
     * answer the last requests, then leave once every answer is out. */
    if (!srv->input_drained) {
        drain_all_input(srv);
        bd_server_want_flush(srv);
        return;
    }
    if (!output_pending(srv))
        event_base_loopbreak(srv->base);
}

static void flush_cb(evutil_socket_t fd, short what, void *arg)
{
    struct bd_server *srv = arg;

    (void)fd;
    (void)what;
    bd_server_tick(srv);
    srv->flush_pending = 0;
    bd_batch_run_dirty(&srv->core);
    bd_durable_end_pass(&srv->core); /* group commit, before the replies */
    while (srv->pending != NULL) {
        struct bd_conn *c = srv->pending;

        srv->pending = c->pnext;
        bd_conn_flush(c);
    }
    if (srv->core.reap != NULL) /* a reload removed them; calls are over */
        bd_gen_reap(&srv->core);
    bd_server_check_done(srv);
}

/* ---- the listening socket -------------------------------------------- */

static void accept_cb(evutil_socket_t fd, short what, void *arg);

static void refuse_conn(int fd, int status, const char *msg)
{
    struct bd_buf b;

    /* Best effort: one non-blocking write of the error frame. */
    bd_buf_init(&b);
    if (bd_msg_encode_reply(&b, BD_MSG_ERROR, 0, status, msg, strlen(msg), 1) == 0 &&
        write(fd, bd_buf_head(&b), b.len) < 0) {
        /* the client is gone already */
    }
    bd_buf_destroy(&b);
    close(fd);
}

static void resume_listener(struct bd_server *srv)
{
    if (!srv->listen_paused)
        return;
    srv->listen_paused = 0;
    evtimer_del(srv->listen_retry_ev);
    if (srv->listen_fd >= 0)
        event_add(srv->listen_ev, NULL);
}

static void listen_retry_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    resume_listener(arg);
}

/* Out of descriptors: stop accepting until a connection closes or a
 * moment has passed, instead of spinning on a listener that stays
 * readable. */
static void pause_listener(struct bd_server *srv)
{
    struct timeval tv = {0, EMFILE_PAUSE_MS * 1000};

    if (srv->listen_paused)
        return;
    srv->listen_paused = 1;
    event_del(srv->listen_ev);
    evtimer_add(srv->listen_retry_ev, &tv);
}

void bd_server_conn_closed(struct bd_server *srv)
{
    resume_listener(srv);
}

/* The peer's credentials, as the kernel saw them at connect(). */
static int peer_cred(int fd, struct ucred *uc)
{
    socklen_t len = sizeof(*uc);

    return getsockopt(fd, SOL_SOCKET, SO_PEERCRED, uc, &len);
}

/* Admit one accepted fd, or refuse it with an error frame. */
static void admit_conn(struct bd_server *srv, int fd)
{
    struct ucred uc = {.pid = 0, .uid = (uid_t)-1, .gid = (gid_t)-1};
    struct bd_conn *c;

    if (peer_cred(fd, &uc) != 0 ||
        !bd_access_allowed(srv->access, uc.uid, uc.gid)) {
        srv->core.ctr.conns_dropped++;
        bd_log_warn("connection refused: uid %d gid %d pid %d not allowed",
                    (int)uc.uid, (int)uc.gid, (int)uc.pid);
        refuse_conn(fd, BATCHD_PERMISSION_DENIED,
                    "this user may not use batchd (allow_uids/allow_gids)");
        return;
    }
    if (srv->nconns >= srv->cfg->max_conns || srv->nconns >= srv->fd_budget) {
        srv->core.ctr.conns_dropped++;
        bd_log_warn("connection refused (uid %d pid %d): %s reached",
                    (int)uc.uid, (int)uc.pid,
                    srv->nconns >= srv->cfg->max_conns ? "max_conns" :
                    "the descriptor limit (RLIMIT_NOFILE)");
        refuse_conn(fd, BATCHD_TOO_MANY_CONNECTIONS,
                    "too many connections; try again later");
        return;
    }
    c = bd_conn_new(srv, fd);
    if (c != NULL) {
        c->uid = uc.uid;
        c->gid = uc.gid;
        c->pid = uc.pid;
    }
}

static void accept_cb(evutil_socket_t lfd, short what, void *arg)
{
    struct bd_server *srv = arg;

    (void)what;
    bd_server_tick(srv);
    for (int i = 0; i < ACCEPT_PER_EVENT; i++) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
                errno == ENOMEM) {
                bd_log_warn("accept: %s; pausing the listener for %d ms",
                            strerror(errno), EMFILE_PAUSE_MS);
                pause_listener(srv);
            } else if (errno != EAGAIN && errno != EINTR &&
                       errno != ECONNABORTED) {
                bd_log_error("accept: %s", strerror(errno));
            }
            return;
        }
        admit_conn(srv, fd);
    }
}

/* A socket file at path: stale (nobody listening) is removed; a live
 * one or anything that is not a socket stops the start-up. */
static int clear_stale(const char *path, char *err, size_t errlen)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    struct stat st;
    int fd, rc;

    if (lstat(path, &st) != 0)
        return errno == ENOENT ? 0 : (snprintf(err, errlen, "socket %s: %s",
                                               path, strerror(errno)), -1);
    if (!S_ISSOCK(st.st_mode)) {
        snprintf(err, errlen, "socket %s: exists and is not a socket; "
                 "refusing to replace it", path);
        return -1;
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    strcpy(sa.sun_path, path);
    rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
    close(fd);
    if (rc == 0) {
        snprintf(err, errlen, "socket %s: in use by another daemon", path);
        return -1;
    }
    if (errno != ECONNREFUSED) {
        snprintf(err, errlen, "socket %s: %s", path, strerror(errno));
        return -1;
    }
    bd_log_info("socket %s: removing a stale socket file", path);
    unlink(path);
    return 0;
}

static int set_group(const char *path, const char *group, char *err,
                     size_t errlen)
{
    struct group *gr = getgrnam(group);

    if (gr == NULL) {
        snprintf(err, errlen, "socket_group %s: no such group", group);
        return -1;
    }
    if (chown(path, (uid_t)-1, gr->gr_gid) != 0) {
        snprintf(err, errlen, "socket %s: chown to group %s: %s", path, group,
                 strerror(errno));
        return -1;
    }
    return 0;
}

/* A missing directory is the usual first-run failure (the default
 * /run/batchd exists only under systemd): say how to get past it. */
static void bind_error(const char *path, int e, char *err, size_t errlen)
{
    if (e == ENOENT)
        snprintf(err, errlen, "socket %s: bind: the directory does not exist; "
                 "create it (mkdir -p and chown it to the daemon's user), "
                 "start batchd through batchd.socket/batchd.service "
                 "(RuntimeDirectory=batchd), or pass --socket PATH", path);
    else if (e == EACCES)
        snprintf(err, errlen, "socket %s: bind: %s: uid %d may not create "
                 "files in its directory; chown the directory to this user "
                 "or pass --socket PATH", path, strerror(e), (int)geteuid());
    else
        snprintf(err, errlen, "socket %s: bind: %s", path, strerror(e));
}

static int listen_unix(struct bd_server *srv, char *err, size_t errlen)
{
    const struct bd_config *cfg = srv->cfg;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    mode_t old;
    int fd, rc;

    if (strlen(cfg->socket) >= sizeof(sa.sun_path)) {
        snprintf(err, errlen, "socket %s: path longer than %zu bytes",
                 cfg->socket, sizeof(sa.sun_path) - 1);
        return -1;
    }
    strcpy(sa.sun_path, cfg->socket);
    if (clear_stale(cfg->socket, err, errlen) != 0)
        return -1;
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    /* bind creates the file with 0777 & ~umask: with this umask it is
     * never looser than socket_mode, not even for an instant. */
    old = umask(~cfg->socket_mode & 0777);
    rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
    umask(old);
    if (rc != 0) {
        bind_error(cfg->socket, errno, err, errlen);
        goto out_close;
    }
    srv->socket_owned = 1;
    if (chmod(cfg->socket, cfg->socket_mode) != 0 ||
        (cfg->socket_group && set_group(cfg->socket, cfg->socket_group, err,
                                        errlen) != 0)) {
        if (!err[0])
            snprintf(err, errlen, "socket %s: chmod: %s", cfg->socket,
                     strerror(errno));
        goto out_close;
    }
    if (listen(fd, 1024) != 0) {
        snprintf(err, errlen, "socket %s: listen: %s", cfg->socket, strerror(errno));
        goto out_close;
    }
    srv->listen_fd = fd;
    return 0;

out_close:
    close(fd);
    return -1;
}

/* The path of the socket we listen on, read back from the socket
 * itself: under socket activation it is the one systemd handed us,
 * which need not be the config's. */
static const char *listen_name(const struct bd_server *srv, char *buf,
                               size_t len)
{
    struct sockaddr_un sa;
    socklen_t salen = sizeof(sa);

    memset(&sa, 0, sizeof(sa));
    if (srv->listen_fd < 0 ||
        getsockname(srv->listen_fd, (struct sockaddr *)&sa, &salen) != 0 ||
        sa.sun_family != AF_UNIX || salen <= offsetof(struct sockaddr_un, sun_path))
        snprintf(buf, len, "%s", srv->cfg->socket);
    else if (sa.sun_path[0] == '\0')   /* abstract namespace */
        snprintf(buf, len, "@%.*s", (int)(salen - offsetof(struct sockaddr_un,
                 sun_path) - 1), sa.sun_path + 1);
    else
        snprintf(buf, len, "%.*s", (int)sizeof(sa.sun_path), sa.sun_path);
    return buf;
}

/* systemd socket activation: use the passed socket when there is one. */
static int listen_activated(struct bd_server *srv, char *err, size_t errlen)
{
    char name[sizeof(((struct sockaddr_un *)0)->sun_path) + 2];

    int n = sd_listen_fds(1);

    if (n <= 0)
        return 0;
    if (n > 1 || sd_is_socket_unix(SD_LISTEN_FDS_START, SOCK_STREAM, 1,
                                   NULL, 0) <= 0) {
        snprintf(err, errlen, "socket activation: expected one listening "
                 "AF_UNIX stream socket, got %d descriptors", n);
        return -1;
    }
    srv->listen_fd = SD_LISTEN_FDS_START;
    evutil_make_socket_nonblocking(srv->listen_fd);
    evutil_make_socket_closeonexec(srv->listen_fd);
    bd_log_info("using the socket passed by systemd: %s",
                listen_name(srv, name, sizeof(name)));
    return 1;
}

static void close_listener(struct bd_server *srv)
{
    if (srv->listen_fd < 0)
        return;
    event_del(srv->listen_ev);
    evtimer_del(srv->listen_retry_ev);
    close(srv->listen_fd);
    srv->listen_fd = -1;
    if (srv->socket_owned)
        unlink(srv->cfg->socket);
}

/* ---- signals, shutdown, watchdog ------------------------------------- */

static void grace_cb(evutil_socket_t fd, short what, void *arg)
{
    struct bd_server *srv = arg;
    static const char msg[] = "daemon stopped before the item was delivered";

    (void)fd;
    (void)what;
    bd_log_warn("shutdown_grace over: %llu queued, %llu waiting to retry and "
                "%u running batches answered SHUTTING_DOWN",
                (unsigned long long)srv->core.nqueued,
                (unsigned long long)srv->core.nretry, srv->core.inflight);
    bd_batch_fail_all_queued(&srv->core, BATCHD_SHUTTING_DOWN, msg);
    bd_call_abandon_all(&srv->core, BATCHD_SHUTTING_DOWN, msg);
    if (!srv->input_drained)
        drain_all_input(srv);
    bd_durable_commit_now(&srv->core); /* held ACCEPTEDs into the buffers */
    /* Write what we can, then leave: hung sink calls keep their threads. */
    for (struct bd_conn *c = srv->conns; c; c = c->next)
        if (c->out.len > 0 && write(c->fd, bd_buf_head(&c->out), c->out.len) < 0) {
            /* the client is gone */
        }
    srv->exit_code = 0;
    event_base_loopbreak(srv->base);
}

void bd_server_stop(struct bd_server *srv)
{
    struct timeval tv;

    if (srv->core.state == BD_STATE_STOPPING)
        return;
    srv->core.state = BD_STATE_STOPPING;
    sd_notifyf(0, "STOPPING=1\nSTATUS=draining %llu queued items, %u "
               "running batches", (unsigned long long)srv->core.nqueued,
               srv->core.inflight);
    bd_log_info("stopping: %llu items queued, %u batches running",
                (unsigned long long)srv->core.nqueued, srv->core.inflight);
    close_listener(srv);
    bd_batch_flush_all(&srv->core);
    tv.tv_sec = srv->cfg->shutdown_grace_ms / 1000;
    tv.tv_usec = (srv->cfg->shutdown_grace_ms % 1000) * 1000;
    evtimer_add(srv->grace_ev, &tv);
    bd_server_want_flush(srv);
}

static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
    struct bd_server *srv = arg;

    (void)what;
    if (sig == SIGHUP) {
        char report[4096];

        bd_server_tick(srv);
        bd_log_info("SIGHUP received: reloading the configuration");
        bd_server_reload(srv, report, sizeof(report)); /* logs the outcome */
        return;
    }
    bd_log_info("%s received", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    bd_server_stop(srv);
}

static void watchdog_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    sd_notify(0, "WATCHDOG=1");
}

static void sweep_cb(evutil_socket_t fd, short what, void *arg)
{
    struct bd_server *srv = arg;
    uint64_t now = bd_server_tick(srv);
    struct bd_conn *c, *next;

    (void)fd;
    (void)what;
    for (c = srv->conns; c; c = next) {
        next = c->next; /* checks only mark; closes happen in the flush */
        bd_conn_check_timeouts(c, now);
    }
    bd_batch_sweep_idle(&srv->core);
    if (srv->core.reap != NULL) /* the last key of an old config went */
        bd_gen_reap(&srv->core);
}

/* One sweep every 100 ms over all connections is cheaper than a timer
 * per connection re-armed on every read, and precise enough for
 * timeouts counted in seconds. It also frees keys idle for a second. */
static int start_sweep(struct bd_server *srv)
{
    struct timeval tv = {0, 100000};
    const struct bd_config *cfg = srv->cfg;

    (void)cfg;
    srv->sweep_ev = event_new(srv->base, -1, EV_PERSIST, sweep_cb, srv);
    return srv->sweep_ev ? event_add(srv->sweep_ev, &tv) : -1;
}

/* How many connections fit under RLIMIT_NOFILE with BD_FD_RESERVE
 * descriptors left over, given those open now (sinks, logs, workers). */
static uint32_t fd_budget(void)
{
    struct rlimit rl;
    DIR *d = opendir("/proc/self/fd");
    long open_now = 0;

    if (d != NULL) {
        while (readdir(d) != NULL)
            open_now++;
        closedir(d);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
        return UINT32_MAX;
    if ((long)rl.rlim_cur <= open_now + BD_FD_RESERVE)
        return 0;
    rl.rlim_cur -= (rlim_t)(open_now + BD_FD_RESERVE);
    return rl.rlim_cur > UINT32_MAX ? UINT32_MAX : (uint32_t)rl.rlim_cur;
}

static int start_watchdog(struct bd_server *srv)
{
    uint64_t usec;
    struct timeval tv;

    if (sd_watchdog_enabled(0, &usec) <= 0)
        return 0;
    usec /= 2; /* ping twice per period */
    tv.tv_sec = (time_t)(usec / 1000000);
    tv.tv_usec = (suseconds_t)(usec % 1000000);
    srv->watchdog_ev = event_new(srv->base, -1, EV_PERSIST, watchdog_cb, srv);
    return srv->watchdog_ev ? event_add(srv->watchdog_ev, &tv) : -1;
}

/* ---- life cycle -------------------------------------------------------- */

static int setup_events(struct bd_server *srv)
{
    static const int sigs[3] = {SIGTERM, SIGINT, SIGHUP};

    srv->flush_ev = event_new(srv->base, -1, 0, flush_cb, srv);
    srv->grace_ev = evtimer_new(srv->base, grace_cb, srv);
    srv->listen_retry_ev = evtimer_new(srv->base, listen_retry_cb, srv);
    if (!srv->flush_ev || !srv->grace_ev || !srv->listen_retry_ev)
        return -1;
    for (int i = 0; i < 3; i++) {
        srv->sig_ev[i] = evsignal_new(srv->base, sigs[i], signal_cb, srv);
        if (srv->sig_ev[i] == NULL || event_add(srv->sig_ev[i], NULL) != 0)
            return -1;
    }
    return 0;
}

/*
 * Plain epoll timers, counted in milliseconds (rounded up): the precise
 * (timerfd) flag cost a timerfd_settime syscall on every loop pass while
 * any timer was pending. key_arm_timer refreshes libevent's clock cache
 * before arming, so a delay never fires early.
 */
static struct event_base *new_base(void)
{
    return event_base_new();
}

struct bd_server *bd_server_new(struct bd_gen *gen, char *err, size_t errlen)
{
    struct bd_server *srv = bd_calloc(1, sizeof(*srv));
    struct bd_config *cfg = gen->cfg;
    int rc;

    if (srv == NULL) {
        snprintf(err, errlen, "out of memory");
        bd_gen_release(NULL, gen);
        return NULL;
    }
    srv->cfg = cfg;
    srv->listen_fd = -1;
    msgpack_zone_init(&srv->zone, 4096);
    err[0] = '\0';
    srv->base = new_base();
    rc = bd_core_init(&srv->core, srv->base, cfg, gen->sinks, NULL, bd_now_ns,
                      core_wants_flush, srv);
    srv->core.gen = gen; /* the core holds gen's first reference */
    if (rc != 0) {
        snprintf(err, errlen, "no random bytes for the key table's hash: %s",
                 strerror(errno));
        goto out_free;
    }
    if (bd_series_bind(&srv->core, gen) != 0) {
        snprintf(err, errlen, "out of memory for the counters");
        goto out_free;
    }
    srv->start_ns = srv->core.clock.now_ns;
    if (srv->base == NULL || setup_events(srv) != 0) {
        snprintf(err, errlen, "libevent: cannot set up the event loop");
        goto out_free;
    }
    srv->access = bd_access_new(cfg, err, errlen);
    if (srv->access == NULL)
        goto out_free;
    srv->workers = bd_workers_new(srv->base, cfg->max_concurrency, calls_done,
                                  srv, err, errlen);
    if (srv->workers == NULL)
        goto out_free;
    srv->core.workers = srv->workers;
    /* Items a previous run left in the spool are queued before the
     * listener exists (and so before READY=1). */
    if (bd_durable_start(&srv->core, err, errlen) != 0)
        goto out_free;
    rc = listen_activated(srv, err, errlen);
    if (rc < 0 || (rc == 0 && listen_unix(srv, err, errlen) != 0))
        goto out_free;
    srv->listen_ev = event_new(srv->base, srv->listen_fd, EV_READ | EV_PERSIST,
                               accept_cb, srv);
    if (srv->listen_ev == NULL || event_add(srv->listen_ev, NULL) != 0) {
        snprintf(err, errlen, "libevent: cannot watch the listening socket");
        goto out_free;
    }
    if (cfg->metrics_listen != NULL &&
        (srv->metrics = bd_metrics_start(srv, cfg->metrics_listen, err,
                                         errlen)) == NULL)
        goto out_free;
    if (start_watchdog(srv) != 0 || start_sweep(srv) != 0) {
        snprintf(err, errlen, "libevent: cannot start a timer");
        goto out_free;
    }
    srv->fd_budget = fd_budget();
    if (srv->fd_budget < cfg->max_conns)
        bd_log_warn("RLIMIT_NOFILE leaves room for %u connections, fewer "
                    "than max_conns=%u", srv->fd_budget, cfg->max_conns);
    return srv;

out_free:
    bd_server_free(srv);
    return NULL;
}

int bd_server_run(struct bd_server *srv)
{
    char name[sizeof(((struct sockaddr_un *)0)->sun_path) + 2];

    listen_name(srv, name, sizeof(name));
    bd_log_info("ready: listening on %s (%zu sinks, %zu routes, %u workers)",
                name, srv->cfg->nsinks, srv->cfg->nroutes,
                srv->cfg->max_concurrency);
    sd_notifyf(0, "READY=1\nSTATUS=listening on %s", name);
    event_base_dispatch(srv->base);
    bd_log_info("stopped: %llu items in, %llu batches, %llu replies",
                (unsigned long long)srv->core.ctr.items_in,
                (unsigned long long)srv->core.ctr.batches,
                (unsigned long long)srv->core.ctr.replies);
    return srv->exit_code;
}

void bd_server_free(struct bd_server *srv)
{
    int idle;

    if (srv == NULL)
        return;
    /* A call abandoned at sink_timeout_ms may still be stuck in its
     * sink: then neither its thread nor the plugin can be waited for. */
    idle = srv->core.inflight == 0 && srv->core.abandoned == 0;
    close_listener(srv);
    bd_metrics_free(srv->metrics);
    while (srv->conns)
        bd_conn_close(srv->conns);
    /* Running batches (grace expired) still belong to their sink calls:
     * leave them, the workers and the plugin code alone. */
    bd_workers_free(srv->workers, idle);
    bd_durable_stop(&srv->core); /* the last DONE records, then close */
    /* The loop is over: keys and queued items are ours to free even
     * when a stuck call still holds its own batch (and its items). */
    bd_batch_destroy_all(&srv->core);
    /* The last generation goes with the config; its sinks only when no
     * call can still be inside one. */
    bd_gen_release(&srv->core, srv->core.gen);
    srv->core.gen = NULL;
    srv->cfg = NULL;
    if (idle)
        bd_gen_reap(&srv->core);
    else
        bd_gen_keep_stuck(&srv->core);
    bd_series_free_all(&srv->core);
    for (int i = 0; i < 3; i++)
        if (srv->sig_ev[i])
            event_free(srv->sig_ev[i]);
    if (srv->flush_ev)
        event_free(srv->flush_ev);
    if (srv->grace_ev)
        event_free(srv->grace_ev);
    if (srv->listen_retry_ev)
        event_free(srv->listen_retry_ev);
    if (srv->listen_ev)
        event_free(srv->listen_ev);
    if (srv->watchdog_ev)
        event_free(srv->watchdog_ev);
    if (srv->sweep_ev)
        event_free(srv->sweep_ev);
    bd_access_free(srv->access);
    msgpack_zone_destroy(&srv->zone);
    if (idle && srv->base)
        event_base_free(srv->base);
    bd_free(srv);
}
